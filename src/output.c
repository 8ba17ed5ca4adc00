/* Writes one JSON document per source file, item by item, into an
 * atomic_file, which publishes it with write-to-temp, fsync, rename and
 * folder fsync. */
#include "agent/output.h"

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "agent/atomic_file.h"
#include "agent/json_text.h"
#include "agent/names.h"
#include "agent/platform.h"
#include "agent/rpath.h"
#include "agent/utf8.h"

/* Bytes of JSON text collected before they go to the file in one fwrite.
 * json_dumpf() calls fwrite once per token, and those calls took a fifth
 * of the instructions of a CSV parse (callgrind, glibc 2.36). The document
 * stays below 64 KiB, because glibc's free() of a chunk of 64 KiB or more
 * sorts all small free chunks first (malloc_consolidate()). */
#define OUTPUT_BUFFER_SIZE (32 * 1024)

/* Nesting down to which write_value() writes values itself. The items of
 * every parser stay far above it, and anything deeper goes to jansson. */
#define OUTPUT_NATIVE_DEPTH 64

/* The bytes that a JSON string cannot contain as they are: control
 * characters, '"' and '\\'. */
struct output_doc {
  struct atomic_file *output;
  FILE *file; /* the stream of output */
  const char *temp_path;
  long sha256_at;    /* file offset of the source's SHA-256, or -1 */
  size_t lists;      /* lists begun */
  size_t items;      /* items of the first list */
  size_t list_items; /* items of the list being written */
  int list_open;     /* the current list's '[' has been written */
  struct export_sink sink;
  size_t buffered; /* bytes in buffer, not yet written to file */
  char buffer[OUTPUT_BUFFER_SIZE];
};

/* Write the buffered bytes to the file. Returns 0, or -1 when fwrite
 * fails. */
static int flush_buffer(struct output_doc *doc)
{
  size_t len = doc->buffered;

  doc->buffered = 0;
  if (len == 0)
    return 0;
  return fwrite(doc->buffer, 1, len, doc->file) == len ? 0 : -1;
}

/* Append text to the buffer, flushing it first when text does not fit. A
 * text longer than the whole buffer goes to the file directly. This is the
 * callback of json_dump_callback(). Returns 0, or -1 when a write fails. */
static int buffer_text(const char *text, size_t len, void *ctx)
{
  struct output_doc *doc = ctx;

  if (len > OUTPUT_BUFFER_SIZE - doc->buffered) {
    if (flush_buffer(doc) != 0)
      return -1;
    if (len > OUTPUT_BUFFER_SIZE)
      return fwrite(text, 1, len, doc->file) == len ? 0 : -1;
  }
  memcpy(doc->buffer + doc->buffered, text, len);
  doc->buffered += len;
  return 0;
}

/* Append one byte, as buffer_text() does, without its call for the common
 * case of room in the buffer. */
static int put_byte(struct output_doc *doc, char c)
{
  if (doc->buffered < OUTPUT_BUFFER_SIZE) {
    doc->buffer[doc->buffered++] = c;
    return 0;
  }
  return buffer_text(&c, 1, doc);
}

/* Append text of len bytes as a JSON string. Every string in an item is
 * valid UTF-8, because jansson checked it when it was made or the parser
 * checked its input (export_csv.c), so the bytes are copied without the
 * second UTF-8 check that json_dump_callback() makes. */
static int write_string(struct output_doc *doc, const char *text, size_t len)
{
  size_t start = 0;
  char escape[6];

  /* Most strings are short, fit in the buffer and need no escape. They
   * are copied there in one pass, which saves three calls per string. */
  if (len + 2 <= OUTPUT_BUFFER_SIZE - doc->buffered) {
    char *out = doc->buffer + doc->buffered;
    size_t i = 0;

    out[0] = '"';
    for (; i < len && !json_text_needs_escape((unsigned char)text[i]); i++)
      out[i + 1] = text[i];
    if (i == len) {
      out[len + 1] = '"';
      doc->buffered += len + 2;
      return 0;
    }
  }

  if (buffer_text("\"", 1, doc) != 0)
    return -1;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];

    if (!json_text_needs_escape(c))
      continue;
    if (buffer_text(text + start, i - start, doc) != 0 ||
        buffer_text(escape, json_text_escape(c, escape), doc) != 0)
      return -1;
    start = i + 1;
  }
  if (buffer_text(text + start, len - start, doc) != 0)
    return -1;
  return put_byte(doc, '"');
}

static int write_value(struct output_doc *doc, const json_t *value, int depth);

/* Append the members of object in the order they were added, the order
 * that jansson 2.14 writes too. */
static int write_object(struct output_doc *doc, const json_t *object, int depth)
{
  bool first = true;

  if (put_byte(doc, '{') != 0)
    return -1;
  for (void *iter = json_object_iter((json_t *)object); iter != NULL;
       iter = json_object_iter_next((json_t *)object, iter)) {
    if ((!first && put_byte(doc, ',') != 0) ||
        write_string(doc, json_object_iter_key(iter),
                     json_object_iter_key_len(iter)) != 0 ||
        put_byte(doc, ':') != 0 ||
        write_value(doc, json_object_iter_value(iter), depth + 1) != 0)
      return -1;
    first = false;
  }
  return put_byte(doc, '}');
}

static int write_array(struct output_doc *doc, const json_t *array, int depth)
{
  size_t count = json_array_size(array);

  if (put_byte(doc, '[') != 0)
    return -1;
  for (size_t i = 0; i < count; i++) {
    if ((i > 0 && put_byte(doc, ',') != 0) ||
        write_value(doc, json_array_get(array, i), depth + 1) != 0)
      return -1;
  }
  return put_byte(doc, ']');
}

/* Append value as compact JSON text, byte for byte as json_dumps() with
 * JSON_COMPACT writes it (tests/unit/test_output.c compares the two).
 * json_dump_callback() in jansson 2.14 checks the UTF-8 of every string
 * again and records each object and array in a table to find cycles.
 * Writing the common types here cut the instructions of a CSV parse by
 * about 40 % (callgrind). Reals and values nested deeper than
 * OUTPUT_NATIVE_DEPTH go to jansson. Returns 0, or -1 when a write
 * fails. */
static int write_value(struct output_doc *doc, const json_t *value, int depth)
{
  char number[32];

  if (depth < OUTPUT_NATIVE_DEPTH) {
    switch (json_typeof(value)) {
    case JSON_OBJECT:
      return write_object(doc, value, depth);
    case JSON_ARRAY:
      return write_array(doc, value, depth);
    case JSON_STRING:
      return write_string(doc, json_string_value(value),
                          json_string_length(value));
    case JSON_INTEGER:
      snprintf(number, sizeof(number), "%" JSON_INTEGER_FORMAT,
               json_integer_value(value));
      return buffer_text(number, strlen(number), doc);
    case JSON_TRUE:
      return buffer_text("true", 4, doc);
    case JSON_FALSE:
      return buffer_text("false", 5, doc);
    case JSON_NULL:
      return buffer_text("null", 4, doc);
    case JSON_REAL:
      break;
    }
  }
  return json_dump_callback(value, buffer_text, doc,
                            JSON_COMPACT | JSON_ENCODE_ANY);
}

/* The items are written by write_value(); only the document's frame is
 * written here, so that items can go out one at a time. */
static enum ag_code write_text(struct output_doc *doc, const char *text,
                               struct ag_error *err)
{
  if (buffer_text(text, strlen(text), doc) != 0)
    return ag_error_set(err, AG_ELOCAL, "cannot write '%s'", doc->temp_path);
  return AG_OK;
}

static enum ag_code write_json(struct output_doc *doc, const json_t *value,
                               struct ag_error *err)
{
  if (write_value(doc, value, 0) != 0)
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
  /* The text goes into the buffer, so it starts at the file's position
   * plus what the buffer holds. */
  long start = ftell(doc->file);
  enum ag_code code = AG_OK;

  if (start >= 0)
    start += (long)doc->buffered;
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
  /* Only the fields are zeroed: clearing the buffer cost a tenth of the
   * instructions of a small export's parse. */
  struct output_doc *doc = malloc(sizeof(*doc));
  struct output_source known = *src;
  json_t *source = NULL;
  enum ag_code code = AG_OK;

  *out = NULL;
  if (doc == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  memset(doc, 0, offsetof(struct output_doc, buffer));
  doc->sha256_at = -1;
  if (unhashed)
    known.sha256 = unknown_sha256;
  source = output_source_object(&known);
  if (source == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  code = atomic_file_create(dir, ".incoming", ATOMIC_FILE_GROUP_READ,
                            &doc->output, err);
  if (code != AG_OK)
    goto out;
  doc->file = atomic_file_stream(doc->output);
  doc->temp_path = atomic_file_temp_path(doc->output);

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
  if (flush_buffer(doc) != 0 || fgetpos(doc->file, &end) != 0 ||
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

enum ag_code output_finish(struct output_doc *doc, struct atomic_file **out,
                           struct ag_error *err)
{
  enum ag_code code = AG_OK;

  *out = NULL;
  if (!doc->list_open)
    code = ag_error_set(err, AG_EPARSE, "the parser produced no item list");
  if (code == AG_OK)
    code = write_text(doc, "]}\n", err);
  if (code == AG_OK && flush_buffer(doc) != 0)
    code = ag_error_set(err, AG_ELOCAL, "cannot write '%s'", doc->temp_path);
  if (code == AG_OK)
    code = atomic_file_flush(doc->output, err);
  if (code != AG_OK) {
    output_abort(doc);
    return code;
  }
  *out = doc->output;
  free(doc);
  return AG_OK;
}

enum ag_code output_commit(struct output_doc *doc, const char *final_name,
                           struct ag_error *err)
{
  struct atomic_file *output = NULL;
  enum ag_code code = output_finish(doc, &output, err);

  if (code == AG_OK)
    code = atomic_file_publish(output, final_name, err);
  atomic_file_free(output);
  return code;
}

void output_abort(struct output_doc *doc)
{
  if (doc == NULL)
    return;
  atomic_file_free(doc->output);
  free(doc);
}
