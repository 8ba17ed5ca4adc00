/* Copies original documents into the output folder, each with a JSON
 * sidecar, and publishes both with write-to-temp, fsync, rename and folder
 * fsync. */
#include "agent/passthrough.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent/names.h"
#include "agent/platform.h"
#include "agent/rpath.h"
#include "agent/utf8.h"

#define COPY_BLOCK_SIZE (64 * 1024)

/* Writes the content of a file that publish_file() is creating. */
typedef enum ag_code (*content_writer)(FILE *file, const char *temp_path,
                                       const void *ctx, struct ag_error *err);

bool passthrough_selected(const struct config *config, const char *name)
{
  bool selected = false;

  for (size_t i = 0; i < config->passthrough_count && !selected; i++)
    selected = plat_glob_match(config->passthrough[i], name);
  for (size_t i = 0; i < config->exclude_count && selected; i++)
    selected = !plat_glob_match(config->exclude[i], name);
  return selected;
}

static char *join_local(const char *dir, const char *name)
{
  size_t size = strlen(dir) + 1 + strlen(name) + 1;
  char *path = malloc(size);

  if (path != NULL)
    snprintf(path, size, "%s/%s", dir, name);
  return path;
}

/* Create dir/name through a temporary file that write fills, syncs and
 * renames into place. On failure the temporary file is removed. */
static enum ag_code publish_file(const char *dir, const char *name,
                                 content_writer write, const void *ctx,
                                 struct ag_error *err)
{
  char *temp_path = NULL;
  char *final_path = join_local(dir, name);
  FILE *file = NULL;
  enum ag_code code = AG_OK;

  if (final_path == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  code = plat_create_temp(dir, ".incoming", &file, &temp_path, err);
  if (code == AG_OK)
    code = plat_share_with_group(file, temp_path, err);
  if (code == AG_OK)
    code = write(file, temp_path, ctx, err);
  if (code != AG_OK)
    goto out;

  /* plat_sync_close() closes the file in every case. */
  FILE *written = file;
  file = NULL;
  code = plat_sync_close(written, temp_path, err);
  if (code == AG_OK)
    code = plat_replace(temp_path, final_path, err);

out:
  if (file != NULL)
    fclose(file);
  if (code != AG_OK && temp_path != NULL)
    plat_remove(temp_path);
  free(temp_path);
  free(final_path);
  return code;
}

/* The copy's content: the downloaded file, whose size must still be the
 * one that was downloaded and hashed. */
struct copy_source {
  const char *path;
  uint64_t size;
};

static enum ag_code write_copy(FILE *file, const char *temp_path,
                               const void *ctx, struct ag_error *err)
{
  const struct copy_source *source = ctx;
  FILE *in = plat_fopen(source->path, "rb");
  char *block = malloc(COPY_BLOCK_SIZE);
  uint64_t copied = 0;
  enum ag_code code = AG_OK;

  if (in == NULL || block == NULL) {
    code = in == NULL ? ag_error_set(err, AG_ELOCAL, "cannot open '%s': %s",
                                     source->path, strerror(errno))
                      : ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  for (;;) {
    size_t got = fread(block, 1, COPY_BLOCK_SIZE, in);
    if (got > 0 && fwrite(block, 1, got, file) != got) {
      code = ag_error_set(err, AG_ELOCAL, "cannot write '%s': %s", temp_path,
                          strerror(errno));
      goto out;
    }
    copied += got;
    if (got < COPY_BLOCK_SIZE)
      break;
  }
  if (ferror(in))
    code = ag_error_set(err, AG_ELOCAL, "cannot read '%s'", source->path);
  else if (copied != source->size)
    code = ag_error_set(err, AG_ELOCAL,
                        "'%s' has %llu bytes, but %llu were downloaded; it "
                        "changed on the local disk",
                        source->path, (unsigned long long)copied,
                        (unsigned long long)source->size);

out:
  free(block);
  if (in != NULL)
    fclose(in);
  return code;
}

static enum ag_code write_sidecar(FILE *file, const char *temp_path,
                                  const void *ctx, struct ag_error *err)
{
  const json_t *sidecar = ctx;

  if (json_dumpf(sidecar, file, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 ||
      fputc('\n', file) == EOF)
    return ag_error_set(err, AG_ELOCAL, "cannot write '%s'", temp_path);
  return AG_OK;
}

enum ag_code passthrough_publish(const char *dir,
                                 const struct output_source *src,
                                 const char *copy_path, char **name_out,
                                 struct ag_error *err)
{
  struct copy_source copy = {.path = copy_path, .size = src->size};
  char suffix[32];
  char *name = NULL;
  char *sidecar_name = NULL;
  json_t *sidecar = NULL;
  enum ag_code code = AG_OK;

  *name_out = NULL;
  /* Like an output document's name, this depends only on the path and the
   * content, so publishing again after a crash replaces the same files.
   * The fixed ".bin" keeps a copy from ending in ".json" like a
   * document. */
  snprintf(suffix, sizeof(suffix), ".%.16s.bin", src->sha256);
  name = names_local_file(src->rel, src->rel_len, suffix);
  sidecar_name = name != NULL ? malloc(strlen(name) + sizeof(".json")) : NULL;
  json_t *source = output_source_object(src);
  if (source != NULL)
    sidecar = json_pack("{s:i, s:o}", "format_version", 1, "source", source);
  if (sidecar_name == NULL || sidecar == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  snprintf(sidecar_name, strlen(name) + sizeof(".json"), "%s.json", name);

  /* The sidecar goes last, so a reader that waits for it finds the copy
   * whole. */
  code = publish_file(dir, name, write_copy, &copy, err);
  if (code == AG_OK)
    code = publish_file(dir, sidecar_name, write_sidecar, sidecar, err);

out:
  json_decref(sidecar);
  free(sidecar_name);
  if (code != AG_OK) {
    free(name);
    return code;
  }
  *name_out = name;
  return AG_OK;
}
