/* Copies original documents into the output folder, each with a JSON
 * sidecar, and publishes both through atomic_file (write-to-temp, fsync,
 * rename, folder fsync). */
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

/* Writes the content of a file that prepare_file() is creating. */
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

/* Create a temporary file in dir that write fills, and write it out
 * (atomic_file_flush()); the sync comes with its publication. On failure
 * the temporary file is removed and *out is NULL. */
static enum ag_code prepare_file(const char *dir, content_writer write,
                                 const void *ctx, struct atomic_file **out,
                                 struct ag_error *err)
{
  struct atomic_file *file = NULL;
  enum ag_code code =
      atomic_file_create(dir, ".incoming", ATOMIC_FILE_GROUP_READ, &file, err);

  *out = NULL;
  if (code == AG_OK)
    code =
        write(atomic_file_stream(file), atomic_file_temp_path(file), ctx, err);
  if (code == AG_OK)
    code = atomic_file_flush(file, err);
  if (code != AG_OK) {
    atomic_file_free(file);
    return code;
  }
  *out = file;
  return AG_OK;
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

enum ag_code passthrough_prepare(const char *dir,
                                 const struct output_source *src,
                                 const char *copy_path,
                                 struct passthrough_files *out,
                                 struct ag_error *err)
{
  struct copy_source copy = {.path = copy_path, .size = src->size};
  char suffix[32];
  json_t *sidecar = NULL;
  enum ag_code code = AG_OK;

  memset(out, 0, sizeof(*out));
  /* Like an output document's name, this depends only on the path and the
   * content, so publishing again after a crash replaces the same files.
   * The fixed ".bin" keeps a copy from ending in ".json" like a
   * document. */
  snprintf(suffix, sizeof(suffix), ".%.16s.bin", src->sha256);
  out->name = names_local_file(src->rel, src->rel_len, suffix);
  json_t *source = output_source_object(src);
  if (source != NULL)
    sidecar = json_pack("{s:i, s:o}", "format_version", 1, "source", source);
  if (out->name == NULL || sidecar == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }

  code = prepare_file(dir, write_copy, &copy, &out->copy, err);
  if (code == AG_OK)
    code = prepare_file(dir, write_sidecar, sidecar, &out->sidecar, err);

out:
  json_decref(sidecar);
  if (code != AG_OK)
    passthrough_files_free(out);
  return code;
}

void passthrough_files_free(struct passthrough_files *files)
{
  atomic_file_free(files->copy);
  atomic_file_free(files->sidecar);
  free(files->name);
  memset(files, 0, sizeof(*files));
}

enum ag_code passthrough_publish(const char *dir,
                                 const struct output_source *src,
                                 const char *copy_path, char **name_out,
                                 struct ag_error *err)
{
  struct passthrough_files files;
  char *sidecar_name = NULL;
  enum ag_code code = passthrough_prepare(dir, src, copy_path, &files, err);

  *name_out = NULL;
  if (code != AG_OK)
    return code;
  sidecar_name = malloc(strlen(files.name) + sizeof(".json"));
  if (sidecar_name == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  snprintf(sidecar_name, strlen(files.name) + sizeof(".json"), "%s.json",
           files.name);

  /* The sidecar goes last, so a reader that waits for it finds the copy
   * whole. */
  code = atomic_file_publish(files.copy, files.name, err);
  if (code == AG_OK)
    code = atomic_file_publish(files.sidecar, sidecar_name, err);
  if (code == AG_OK) {
    *name_out = files.name;
    files.name = NULL;
  }

out:
  free(sidecar_name);
  passthrough_files_free(&files);
  return code;
}
