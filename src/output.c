/* Writes one JSON document per source file, item by item, and publishes
 * it with write-to-temp, fsync, rename and folder fsync. */
#include "agent/output.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "agent/names.h"
#include "agent/platform.h"
#include "agent/rpath.h"
#include "agent/utf8.h"

struct output_doc {
  FILE *file;
  char *temp_path;
  char *dir;
  long sha256_at;    /* file offset of the source's SHA-256, or -1 */
  size_t lists;      /* lists begun */
  size_t items;      /* items of the first list */
  size_t list_items; /* items of the list being written */
  int list_open;     /* the current list's '[' has been written */
  struct export_sink sink;
};

/* jansson writes every value; only the document's frame is written here,
 * so that items can go out one at a time. */
static enum ag_code write_text(struct output_doc *doc, const char *text,
                               struct ag_error *err)
{
  if (fputs(text, doc->file) == EOF)
    return ag_error_set(err, AG_ELOCAL, "cannot write '%s'", doc->temp_path);
  return AG_OK;
}

static enum ag_code write_json(struct output_doc *doc, const json_t *value,
                               struct ag_error *err)
{
  if (json_dumpf(value, doc->file,
                 JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) != 0)
    return ag_error_set(err, AG_ELOCAL, "cannot write '%s'", doc->temp_path);
  return AG_OK;
}

static enum ag_code sink_begin(void *ctx, const char *list_name,
                               struct ag_error *err)
{
  struct output_doc *doc = ctx;
  json_t *key = json_string(list_name);
  enum ag_code code;

  if (key == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");

  /* A second list, such as the CSV "documents", closes the first one. */
  code = write_text(doc, doc->list_open ? "]," : ",", err);
  if (code == AG_OK)
    code = write_json(doc, key, err);
  if (code == AG_OK)
    code = write_text(doc, ":[", err);
  json_decref(key);
  doc->list_open = code == AG_OK;
  doc->lists++;
  doc->list_items = 0;
  return code;
}

static enum ag_code sink_item(void *ctx, json_t *item, struct ag_error *err)
{
  struct output_doc *doc = ctx;
  enum ag_code code = AG_OK;

  if (doc->list_items > 0)
    code = write_text(doc, ",", err);
  if (code == AG_OK)
    code = write_json(doc, item, err);
  if (code != AG_OK)
    return code;
  if (doc->lists == 1)
    doc->items++;
  doc->list_items++;
  return code;
}

void output_format_time(int64_t t, char *out, size_t out_size)
{
  time_t seconds = (time_t)t;
  struct tm utc;

  if (gmtime_r(&seconds, &utc) == NULL ||
      strftime(out, out_size, "%Y-%m-%dT%H:%M:%SZ", &utc) == 0)
    snprintf(out, out_size, "%s", "1970-01-01T00:00:00Z");
}

json_t *output_source_object(const struct output_source *src)
{
  const char *rel = src->rel;
  size_t base_at = rpath_base_offset(rel, src->rel_len);
  const char *base = rel + base_at;
  size_t base_len = src->rel_len - base_at;
  char mtime[32];
  json_t *source = NULL;
  char *path_text = NULL;
  char *name_text = NULL;
  char *name_raw = NULL;

  char *path = rpath_join(src->inbox, rel, src->rel_len);
  if (path == NULL)
    goto out;
  /* rel may contain a NUL byte, so the length of the joined path comes
   * from its parts, as rpath_join() builds it, and not from strlen(). */
  size_t inbox_len = strcmp(src->inbox, "/") == 0 ? 0 : strlen(src->inbox);
  path_text = names_display(path, inbox_len + 1 + src->rel_len);
  name_text = names_display(base, base_len);
  if (path_text == NULL || name_text == NULL)
    goto out;

  output_format_time(src->mtime, mtime, sizeof(mtime));
  source = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "path", path_text,
                     "name", name_text, "size", (json_int_t)src->size, "mtime",
                     mtime, "sha256", src->sha256, "format", src->format);
  if (source == NULL || utf8_valid(base, base_len, NULL))
    goto out;
  name_raw = names_base64(base, base_len);
  if (name_raw == NULL ||
      json_object_set_new(source, "name_raw", json_string(name_raw)) != 0) {
    json_decref(source);
    source = NULL;
  }

out:
  free(path);
  free(path_text);
  free(name_text);
  free(name_raw);
  return source;
}

/* 64 zeros: the SHA-256 of a document that output_begin_unhashed()
 * starts, until output_set_sha256() writes the real one. */
static const char unknown_sha256[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* Write the source object, and remember where its SHA-256 starts when it
 * is the placeholder. The key is searched with its quotes, which a string
 * value can only contain escaped, so a name full of zeros cannot match. */
static enum ag_code write_source(struct output_doc *doc, const json_t *source,
                                 bool unhashed, struct ag_error *err)
{
  static const char key[] = "\"sha256\":\"";

  if (!unhashed)
    return write_json(doc, source, err);

  char *text = json_dumps(source, JSON_COMPACT | JSON_PRESERVE_ORDER);
  const char *at = text != NULL ? strstr(text, key) : NULL;
  long start = ftell(doc->file);
  enum ag_code code = AG_OK;

  if (text == NULL || at == NULL || start < 0)
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
  else
    code = write_text(doc, text, err);
  if (code == AG_OK)
    doc->sha256_at = start + (long)(at - text) + (long)(sizeof(key) - 1);
  free(text);
  return code;
}

/* output_begin(), with the placeholder SHA-256 when unhashed is set. */
static enum ag_code begin_doc(const char *dir, const struct output_source *src,
                              bool unhashed, struct output_doc **out,
                              struct ag_error *err)
{
  struct output_doc *doc = calloc(1, sizeof(*doc));
  struct output_source known = *src;
  json_t *source = NULL;
  enum ag_code code = AG_OK;

  *out = NULL;
  if (doc == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  doc->sha256_at = -1;
  doc->dir = strdup(dir);
  if (unhashed)
    known.sha256 = unknown_sha256;
  source = output_source_object(&known);
  if (doc->dir == NULL || source == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  code = plat_create_temp(dir, ".incoming", &doc->file, &doc->temp_path, err);
  if (code == AG_OK)
    code = plat_share_with_group(doc->file, doc->temp_path, err);
  if (code != AG_OK)
    goto out;

  doc->sink.begin = sink_begin;
  doc->sink.item = sink_item;
  doc->sink.ctx = doc;
  code = write_text(doc, "{\"format_version\":1,\"source\":", err);
  if (code == AG_OK)
    code = write_source(doc, source, unhashed, err);

out:
  json_decref(source);
  if (code != AG_OK) {
    output_abort(doc);
    return code;
  }
  *out = doc;
  return AG_OK;
}

enum ag_code output_begin(const char *dir, const struct output_source *src,
                          struct output_doc **out, struct ag_error *err)
{
  return begin_doc(dir, src, false, out, err);
}

enum ag_code output_begin_unhashed(const char *dir,
                                   const struct output_source *src,
                                   struct output_doc **out,
                                   struct ag_error *err)
{
  return begin_doc(dir, src, true, out, err);
}

enum ag_code output_set_sha256(struct output_doc *doc, const char *sha256,
                               struct ag_error *err)
{
  fpos_t end; /* fpos_t, because a document can outgrow a 32-bit long */

  if (doc->sha256_at < 0 || strlen(sha256) != sizeof(unknown_sha256) - 1)
    return ag_error_set(err, AG_ELOCAL,
                        "cannot set the SHA-256 of '%s': the document has no "
                        "place for it. This is a bug in the agent.",
                        doc->temp_path);
  if (fgetpos(doc->file, &end) != 0 ||
      fseek(doc->file, doc->sha256_at, SEEK_SET) != 0 ||
      fwrite(sha256, 1, sizeof(unknown_sha256) - 1, doc->file) !=
          sizeof(unknown_sha256) - 1 ||
      fsetpos(doc->file, &end) != 0)
    return ag_error_set(err, AG_ELOCAL, "cannot write '%s'", doc->temp_path);
  doc->sha256_at = -1;
  return AG_OK;
}

const struct export_sink *output_sink(struct output_doc *doc)
{
  return &doc->sink;
}

size_t output_item_count(const struct output_doc *doc)
{
  return doc->items;
}

/* Finish doc and rename it to dir/final_name, syncing the folder after
 * the rename when sync_folder is set. */
static enum ag_code commit_doc(struct output_doc *doc, const char *final_name,
                               bool sync_folder, struct ag_error *err)
{
  enum ag_code code = AG_OK;
  char *final_path = NULL;

  if (!doc->list_open)
    code = ag_error_set(err, AG_EPARSE, "the parser produced no item list");
  if (code == AG_OK)
    code = write_text(doc, "]}\n", err);
  if (code != AG_OK)
    goto out;

  FILE *file = doc->file;
  doc->file = NULL;
  code = plat_sync_close(file, doc->temp_path, err);
  if (code != AG_OK)
    goto out;

  size_t size = strlen(doc->dir) + 1 + strlen(final_name) + 1;
  final_path = malloc(size);
  if (final_path == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  snprintf(final_path, size, "%s/%s", doc->dir, final_name);
  if (sync_folder)
    code = plat_replace(doc->temp_path, final_path, err);
  else
    code = plat_rename(doc->temp_path, final_path, err);

out:
  free(final_path);
  if (code != AG_OK) {
    output_abort(doc);
    return code;
  }
  free(doc->temp_path);
  free(doc->dir);
  free(doc);
  return AG_OK;
}

enum ag_code output_commit(struct output_doc *doc, const char *final_name,
                           struct ag_error *err)
{
  return commit_doc(doc, final_name, true, err);
}

enum ag_code output_commit_unsynced(struct output_doc *doc,
                                    const char *final_name,
                                    struct ag_error *err)
{
  return commit_doc(doc, final_name, false, err);
}

void output_abort(struct output_doc *doc)
{
  if (doc == NULL)
    return;
  if (doc->file != NULL)
    fclose(doc->file);
  if (doc->temp_path != NULL)
    plat_remove(doc->temp_path);
  free(doc->temp_path);
  free(doc->dir);
  free(doc);
}
