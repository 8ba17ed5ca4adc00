/* Backup copies of the manifest. LMDB's compacting copy reads one snapshot
 * in a read transaction, so it needs none of the agent's locks and does
 * not block the agent's writes. The copy goes to a temporary file beside
 * the destination, which is renamed only once it is complete and synced. */
#include "manifest_internal.h"

#include "agent/log.h"
#include "agent/platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LMDB copies into a file descriptor on POSIX and into a HANDLE on
 * Windows. */
#ifdef _WIN32
#include <io.h>
#define FILE_HANDLE(file) ((mdb_filehandle_t)_get_osfhandle(_fileno(file)))
#else
#define FILE_HANDLE(file) fileno(file)
#endif

/* Split path into its folder and a temporary-file prefix ".<base name>",
 * both malloc'd. */
static enum ag_code split_dest(const char *path, char **dir, char **prefix,
                               struct ag_error *err)
{
  const char *slash = strrchr(path, '/');
  const char *base = slash != NULL ? slash + 1 : path;
  size_t prefix_size = strlen(base) + 2;

  *prefix = NULL;
  if (slash == NULL)
    *dir = strdup(".");
  else if (slash == path)
    *dir = strdup("/");
  else
    *dir = strndup(path, (size_t)(slash - path));
  if (*dir != NULL)
    *prefix = malloc(prefix_size);
  if (*dir == NULL || *prefix == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  snprintf(*prefix, prefix_size, ".%s", base);
  return AG_OK;
}

/* Copy the manifest into file. A compacting copy leaves out free pages.
 * LMDB documents that it fails on an environment that leaked pages, and
 * then a plain copy, which keeps every page, is written instead. The plain
 * copy holds LMDB's writer lock only while it reads the meta pages.
 * NOTE: no test makes LMDB leak pages, so the fallback has not run.
 * NOTE: mdb_env_copyfd2() opens its own read transaction, outside the gate
 * of manifest.c. Only the backup command calls this, on a read-only handle
 * of its own in a process without worker threads, so no map resize of
 * this process can happen meanwhile. */
static enum ag_code copy_into(struct manifest *manifest, FILE *file,
                              const char *temp_path, struct ag_error *err)
{
  char action[AG_ERROR_MESSAGE_MAX];

  int rc = mdb_env_copyfd2(manifest->env, FILE_HANDLE(file), MDB_CP_COMPACT);
  if (rc == MDB_INCOMPATIBLE) {
    log_warn("a compacting copy of manifest '%s' failed (%s), so the "
             "backup is a plain copy of the same size as the manifest",
             manifest->db_path, mdb_strerror(rc));
    if (fseek(file, 0, SEEK_SET) == 0)
      rc = mdb_env_copyfd2(manifest->env, FILE_HANDLE(file), 0);
  }
  if (rc == MDB_SUCCESS)
    return AG_OK;
  snprintf(action, sizeof(action), "copy manifest '%s' to '%s'",
           manifest->db_path, temp_path);
  return manifest_fail_mdb(err, rc, action);
}

/* Return the size of file after LMDB wrote it through its descriptor. */
static uint64_t file_size(FILE *file)
{
  if (fseek(file, 0, SEEK_END) != 0)
    return 0;
  long end = ftell(file);
  return end > 0 ? (uint64_t)end : 0;
}

/* Give the finished temporary file its final name. */
static enum ag_code publish(const char *temp_path, const char *dest,
                            unsigned flags, struct ag_error *err)
{
  struct ag_error rename_err = {0};

  if (flags & MANIFEST_BACKUP_REPLACE)
    return plat_replace(temp_path, dest, err);
  enum ag_code code = plat_rename_new(temp_path, dest, &rename_err);
  if (code == AG_EEXIST)
    return ag_error_set(err, AG_EUSAGE,
                        "backup file '%s' was created by someone else during "
                        "the copy; name a new file, or add --force to "
                        "replace it",
                        dest);
  if (code != AG_OK)
    return ag_error_set(err, code, "%s", rename_err.message);
  return AG_OK;
}

enum ag_code manifest_backup(struct manifest *manifest, const char *dest,
                             unsigned flags, uint64_t *bytes,
                             struct ag_error *err)
{
  char *dir = NULL;
  char *prefix = NULL;
  char *temp_path = NULL;
  FILE *file = NULL;
  enum ag_code code = AG_OK;

  *bytes = 0;
  if (!(flags & MANIFEST_BACKUP_REPLACE) && plat_exists(dest) == 1)
    return ag_error_set(err, AG_EUSAGE,
                        "backup file '%s' already exists; name a new file, "
                        "or add --force to replace it",
                        dest);

  code = split_dest(dest, &dir, &prefix, err);
  if (code == AG_OK)
    code = plat_create_temp(dir, prefix, &file, &temp_path, err);
  if (code == AG_OK)
    code = copy_into(manifest, file, temp_path, err);
  if (code == AG_OK)
    *bytes = file_size(file);

  /* plat_sync_close() closes the file in every case. */
  if (file != NULL) {
    enum ag_code closed = plat_sync_close(file, temp_path, err);
    if (code == AG_OK)
      code = closed;
  }
  if (code == AG_OK)
    code = publish(temp_path, dest, flags, err);

  if (code != AG_OK && temp_path != NULL)
    plat_remove(temp_path);
  free(temp_path);
  free(prefix);
  free(dir);
  return code;
}
