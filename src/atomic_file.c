/* Atomic publication of local files: temporary file, sync, rename, folder
 * sync. See agent/atomic_file.h. */
#include "agent/atomic_file.h"

#include <stdlib.h>
#include <string.h>

#include "agent/platform.h"
#include "agent/rpath.h"

struct atomic_file {
  FILE *stream; /* NULL once synced */
  char *dir;
  char *temp_path;
  bool synced;   /* the data is durable */
  bool prepared; /* the temporary name is durable too */
  bool published;
  bool keep_temp;
};

enum ag_code atomic_file_create(const char *dir, const char *prefix,
                                enum atomic_file_mode mode,
                                struct atomic_file **out, struct ag_error *err)
{
  struct atomic_file *file = calloc(1, sizeof(*file));
  enum ag_code code = AG_OK;

  *out = NULL;
  if (file == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  file->dir = strdup(dir);
  if (file->dir == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  code = plat_create_temp(dir, prefix, &file->stream, &file->temp_path, err);
  if (code == AG_OK && mode == ATOMIC_FILE_GROUP_READ)
    code = plat_share_with_group(file->stream, file->temp_path, err);

out:
  if (code != AG_OK) {
    atomic_file_free(file);
    return code;
  }
  *out = file;
  return AG_OK;
}

FILE *atomic_file_stream(struct atomic_file *file)
{
  return file->stream;
}

const char *atomic_file_temp_path(const struct atomic_file *file)
{
  return file->temp_path;
}

const char *atomic_file_temp_name(const struct atomic_file *file)
{
  return file->temp_path +
         rpath_base_offset(file->temp_path, strlen(file->temp_path));
}

/* Report that the stream of file is gone because an earlier sync failed,
 * naming what the caller wanted to do. */
static enum ag_code stream_closed(const struct atomic_file *file,
                                  const char *action, struct ag_error *err)
{
  return ag_error_set(err, AG_ELOCAL,
                      "cannot %s '%s': an earlier sync failed and closed it",
                      action, file->temp_path);
}

enum ag_code atomic_file_flush(struct atomic_file *file, struct ag_error *err)
{
  if (file->synced)
    return AG_OK;
  if (file->stream == NULL)
    return stream_closed(file, "write", err);
  return plat_flush(file->stream, file->temp_path, err);
}

enum ag_code atomic_file_sync(struct atomic_file *file, struct ag_error *err)
{
  if (file->synced)
    return AG_OK;
  if (file->stream == NULL)
    return stream_closed(file, "sync", err);

  /* plat_sync_close() closes the stream in every case. */
  FILE *stream = file->stream;
  file->stream = NULL;
  enum ag_code code = plat_sync_close(stream, file->temp_path, err);

  file->synced = code == AG_OK;
  return code;
}

/* Return whether the group's files qualify for one sync of their file
 * system: enough of them wait for a sync, and all are in dir.
 * NOTE: that sync also writes out other programs' files on the same file
 * system, which can make it slower than the fsyncs it replaces. */
static bool group_syncs_file_system(struct atomic_file *const *files,
                                    size_t count, const char *dir,
                                    const struct plat_file_system *fs)
{
  size_t waiting = 0;

  if (fs == NULL)
    return false;
  for (size_t i = 0; i < count; i++) {
    if (files[i]->synced)
      continue;
    if (strcmp(files[i]->dir, dir) != 0)
      return false;
    waiting++;
  }
  return waiting >= ATOMIC_FILE_GROUP_MIN;
}

enum ag_code atomic_file_sync_group(struct atomic_file *const *files,
                                    size_t count, const char *dir,
                                    struct plat_file_system *fs,
                                    bool *dir_synced, struct ag_error *err)
{
  enum ag_code code = AG_OK;

  *dir_synced = false;
  if (!group_syncs_file_system(files, count, dir, fs)) {
    for (size_t i = 0; i < count && code == AG_OK; i++)
      code = atomic_file_sync(files[i], err);
    return code;
  }

  /* A closed file's data stays in the page cache, where the sync of the
   * file system finds it. */
  for (size_t i = 0; i < count && code == AG_OK; i++) {
    struct atomic_file *file = files[i];
    if (file->synced)
      continue;
    if (file->stream == NULL)
      return stream_closed(file, "sync", err);
    code = plat_close(file->stream, file->temp_path, err);
    file->stream = NULL;
  }
  if (code == AG_OK)
    code = plat_file_system_sync(fs, err);
  for (size_t i = 0; i < count && code == AG_OK; i++)
    files[i]->synced = true;
  *dir_synced = code == AG_OK;
  return code;
}

enum ag_code atomic_file_prepare(struct atomic_file *file, struct ag_error *err)
{
  if (file->prepared)
    return AG_OK;

  /* The folder sync makes the temporary file's name durable, so that after
   * a power loss "the temporary file is gone" still means "renamed". */
  enum ag_code code = atomic_file_sync(file, err);
  if (code == AG_OK)
    code = plat_sync_dir(file->dir, err);
  file->prepared = code == AG_OK;
  return code;
}

/* atomic_file_publish() with sync_folder set: the temporary name is made
 * durable before the rename and the rename after it. Without it, neither
 * (atomic_file_publish_unsynced()). */
static enum ag_code publish(struct atomic_file *file, const char *name,
                            bool sync_folder, struct ag_error *err)
{
  size_t size = strlen(file->dir) + 1 + strlen(name) + 1;
  char *final_path = NULL;
  enum ag_code code = sync_folder ? atomic_file_prepare(file, err)
                                  : atomic_file_sync(file, err);

  if (code != AG_OK)
    return code;
  final_path = malloc(size);
  if (final_path == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  snprintf(final_path, size, "%s/%s", file->dir, name);

  if (sync_folder)
    code = plat_replace(file->temp_path, final_path, err);
  else
    code = plat_rename(file->temp_path, final_path, err);
  /* plat_replace() fails after the rename only when the folder sync
   * fails; the temporary name is gone then and must not be removed. */
  file->published = code == AG_OK || plat_exists(file->temp_path) == 0;
  free(final_path);
  return code;
}

enum ag_code atomic_file_publish(struct atomic_file *file, const char *name,
                                 struct ag_error *err)
{
  return publish(file, name, true, err);
}

enum ag_code atomic_file_publish_unsynced(struct atomic_file *file,
                                          const char *name,
                                          struct ag_error *err)
{
  return publish(file, name, false, err);
}

void atomic_file_keep_temp(struct atomic_file *file)
{
  file->keep_temp = true;
}

void atomic_file_free(struct atomic_file *file)
{
  if (file == NULL)
    return;
  if (file->stream != NULL)
    fclose(file->stream);
  if (file->temp_path != NULL && !file->published && !file->keep_temp)
    plat_remove(file->temp_path);
  free(file->temp_path);
  free(file->dir);
  free(file);
}
