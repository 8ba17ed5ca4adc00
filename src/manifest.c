/* The manifest in LMDB: opening and creating it, the agent-id marker that
 * reveals a lost manifest, map growth, and the records and meta values.
 *
 * Files in the state folder: manifest.mdb (the LMDB environment, opened
 * with MDB_NOSUBDIR), manifest.mdb-lock (LMDB's lock file) and agent-id.
 * Named databases: "files" (relative path -> record, manifest_record.c),
 * "delivered" (hash of SHA-256 hex and relative path -> delivery time,
 * manifest_schema.c) and "meta" (schema_version, created_at, both as
 * decimal text, and the values of manifest_set_meta()). */
#include "manifest_internal.h"

#include "agent/log.h"
#include "agent/platform.h"

#include <lmdb.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MANIFEST_FILE "manifest.mdb"
#define MARKER_FILE "agent-id"

/* The map starts at 16 MiB and doubles when full, up to 1 GiB. LMDB
 * reserves address space, not disk, for the map. */
#define MAP_SIZE_INITIAL ((size_t)16 << 20)
#define MAP_SIZE_MAX ((size_t)1 << 30)

static const char rebuild_advice[] = MANIFEST_REBUILD_ADVICE;

/* ---- Messages ---- */

/* Return what the operator can do about an LMDB or errno code. */
static const char *advice_for(int rc)
{
  switch (rc) {
  case EACCES:
  case EPERM:
  case EROFS:
  case ENOENT:
    return "Check that the state folder exists and that the agent's user "
           "can write to it.";
  case ENOSPC:
#ifdef EDQUOT
  case EDQUOT:
#endif
    return "Free space on the file system that contains the state folder.";
  case MDB_READERS_FULL:
    return "Stop other programs that have the manifest open.";
  case MDB_MAP_FULL:
    return "The manifest reached its maximum size of 1 GiB. Run "
           "`rossum-sftp-agent sync --rebuild-manifest` to start afresh, "
           "which delivers files still in the inbox again.";
  case MDB_CORRUPTED:
  case MDB_PAGE_NOTFOUND:
  case MDB_INVALID:
    return rebuild_advice;
  default:
    return "Check the state folder and its file system.";
  }
}

/* Record an LMDB failure as AG_ESTATE, or as AG_ESTATELOST when the code
 * means that the file is damaged. The format describes the action that
 * failed, such as "open manifest '/x/manifest.mdb'". */
static enum ag_code fail_mdb(struct ag_error *err, int rc, const char *format,
                             ...) __attribute__((format(printf, 3, 4)));

static enum ag_code fail_mdb(struct ag_error *err, int rc, const char *format,
                             ...)
{
  char action[AG_ERROR_MESSAGE_MAX];
  va_list args;

  va_start(args, format);
  vsnprintf(action, sizeof(action), format, args);
  va_end(args);
  bool damaged =
      rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID;
  return ag_error_set(err, damaged ? AG_ESTATELOST : AG_ESTATE,
                      "failed to %s: %s. %s", action, mdb_strerror(rc),
                      advice_for(rc));
}

enum ag_code manifest_fail_mdb(struct ag_error *err, int rc, const char *action)
{
  return fail_mdb(err, rc, "%s", action);
}

/* Record AG_ESTATELOST: the marker shows earlier runs, but the manifest
 * beside it cannot be used. problem completes "its manifest.mdb ...". */
static enum ag_code fail_lost(const struct manifest *manifest,
                              const char *problem, struct ag_error *err)
{
  return ag_error_set(err, AG_ESTATELOST,
                      "state folder '%s' has the agent-id marker of earlier "
                      "runs, but its " MANIFEST_FILE " %s. %s",
                      manifest->state_dir, problem, rebuild_advice);
}

static enum ag_code fail_nomem(struct ag_error *err, const char *action)
{
  return ag_error_set(err, AG_ENOMEM, "out of memory while %s", action);
}

/* ---- Paths and the marker ---- */

/* Return a malloc'd "dir/name", or NULL when out of memory. Windows also
 * accepts '/' as the separator. */
static char *join_path(const char *dir, const char *name)
{
  size_t dir_len = strlen(dir);
  size_t name_len = strlen(name);
  char *path = malloc(dir_len + 1 + name_len + 1);

  if (path == NULL)
    return NULL;
  memcpy(path, dir, dir_len);
  path[dir_len] = '/';
  memcpy(path + dir_len + 1, name, name_len + 1);
  return path;
}

static char *copy_string(const char *text)
{
  size_t size = strlen(text) + 1;
  char *copy = malloc(size);

  if (copy != NULL)
    memcpy(copy, text, size);
  return copy;
}

static bool is_hex_text(const char *text, size_t len)
{
  for (size_t i = 0; i < len; i++) {
    if (strchr("0123456789abcdefABCDEF", text[i]) == NULL || text[i] == '\0')
      return false;
  }
  return true;
}

/* Read the marker into manifest->agent_id. Sets *present to false when
 * the marker does not exist. */
static enum ag_code read_marker(struct manifest *manifest, bool *present,
                                struct ag_error *err)
{
  char text[64];
  FILE *file = plat_fopen(manifest->marker_path, "rb");

  *present = false;
  if (file == NULL && errno == ENOENT)
    return AG_OK;
  if (file == NULL)
    return ag_error_set(err, AG_ELOCAL,
                        "failed to read marker '%s': %s. Check that the "
                        "agent's user can read the state folder.",
                        manifest->marker_path, strerror(errno));

  size_t len = fread(text, 1, sizeof(text), file);
  bool failed = ferror(file) != 0;
  fclose(file);

  /* Accept a line ending added by an editor. */
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
    len--;
  if (failed || len != 2 * AGENT_ID_BYTES || !is_hex_text(text, len))
    return ag_error_set(err, AG_ELOCAL,
                        "marker '%s' does not contain an agent id of %d hex "
                        "digits. Restore it from a backup, or delete it if "
                        "the manifest beside it is intact, so that the agent "
                        "writes a new one.",
                        manifest->marker_path, 2 * AGENT_ID_BYTES);

  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    manifest->agent_id[i] = c >= 'A' && c <= 'F' ? (char)(c - 'A' + 'a') : c;
  }
  manifest->agent_id[len] = '\0';
  *present = true;
  return AG_OK;
}

/* Write text to the marker atomically and durably: a temporary file that is
 * synced and renamed onto the marker, then a sync of the state folder. */
static enum ag_code write_marker_file(struct manifest *manifest,
                                      const char *text, struct ag_error *err)
{
  struct ag_error step = {0};
  FILE *file = NULL;
  char *temp_path = NULL;

  enum ag_code code = plat_create_temp(manifest->state_dir, MARKER_FILE, &file,
                                       &temp_path, &step);
  if (code == AG_OK) {
    /* plat_sync_close() reports a failed write and closes in every case. */
    fputs(text, file);
    code = plat_sync_close(file, temp_path, &step);
  }
  if (code == AG_OK)
    code = plat_replace(temp_path, manifest->marker_path, &step);

  if (code == AG_ENOMEM)
    fail_nomem(err, "writing the agent-id marker");
  else if (code != AG_OK)
    ag_error_set(err, AG_ELOCAL,
                 "failed to write marker '%s': %s. Check that the state "
                 "folder is writable and its file system has free space.",
                 manifest->marker_path, step.message);
  if (code != AG_OK && temp_path != NULL)
    plat_remove(temp_path);
  free(temp_path);
  return code == AG_OK ? AG_OK : err->code;
}

/* Create the marker with a new random agent id. */
static enum ag_code create_marker(struct manifest *manifest,
                                  struct ag_error *err)
{
  static const char lower_hex[] = "0123456789abcdef";
  unsigned char id[AGENT_ID_BYTES];
  char text[2 * AGENT_ID_BYTES + 2];

  if (RAND_bytes(id, sizeof(id)) != 1)
    return ag_error_set(err, AG_ELOCAL,
                        "failed to generate an agent id for '%s': OpenSSL "
                        "RAND_bytes failed. Check that the system's random "
                        "source is available.",
                        manifest->marker_path);

  for (size_t i = 0; i < AGENT_ID_BYTES; i++) {
    text[2 * i] = lower_hex[id[i] >> 4];
    text[2 * i + 1] = lower_hex[id[i] & 0x0F];
  }
  text[2 * AGENT_ID_BYTES] = '\n';
  text[2 * AGENT_ID_BYTES + 1] = '\0';

  enum ag_code code = write_marker_file(manifest, text, err);
  if (code != AG_OK)
    return code;
  memcpy(manifest->agent_id, text, 2 * AGENT_ID_BYTES);
  manifest->agent_id[2 * AGENT_ID_BYTES] = '\0';
  return AG_OK;
}

/* Fail with AG_ESTATELOST when the marker exists but the manifest file is
 * missing or empty. LMDB would silently create a fresh environment in
 * both cases. Without the marker (only for a read-only open), a missing or
 * empty file gives AG_ESTATE.
 * NOTE: stat() is POSIX. The Windows port needs its own check. */
static enum ag_code check_manifest_file(const struct manifest *manifest,
                                        bool has_marker, struct ag_error *err)
{
  struct stat info;

  if (stat(manifest->db_path, &info) != 0) {
    int saved_errno = errno;

    if (saved_errno == ENOENT && has_marker)
      return fail_lost(manifest, "is missing", err);
    if (saved_errno == ENOENT)
      return ag_error_set(err, AG_ESTATE,
                          "manifest '%s' does not exist, because the agent "
                          "has not run with this state folder yet",
                          manifest->db_path);
    return ag_error_set(err, AG_ESTATE, "failed to check manifest '%s': %s. %s",
                        manifest->db_path, strerror(saved_errno),
                        advice_for(saved_errno));
  }
  if (info.st_size == 0 && has_marker)
    return fail_lost(manifest, "is empty", err);
  if (info.st_size == 0)
    return ag_error_set(err, AG_ESTATE, "manifest '%s' is empty. %s",
                        manifest->db_path, rebuild_advice);
  return AG_OK;
}

/* Fail with AG_ESTATELOST when the file ends before the last page that its
 * newest meta page uses, as a copy that was cut short does. Reading such a
 * page through the map would end the process with SIGBUS. LMDB writes the
 * data pages before the meta page that refers to them, so an intact file
 * is never shorter, not even during another process's commit.
 * NOTE: stat() is POSIX. The Windows port needs its own check. */
static enum ag_code check_not_truncated(const struct manifest *manifest,
                                        struct ag_error *err)
{
  MDB_envinfo env_info;
  MDB_stat env_stat;
  struct stat file_info;

  int rc = mdb_env_info(manifest->env, &env_info);
  if (rc == MDB_SUCCESS)
    rc = mdb_env_stat(manifest->env, &env_stat);
  if (rc != MDB_SUCCESS)
    return fail_mdb(err, rc, "read the size of manifest '%s'",
                    manifest->db_path);
  if (stat(manifest->db_path, &file_info) != 0)
    return ag_error_set(err, AG_ESTATE, "failed to check manifest '%s': %s. %s",
                        manifest->db_path, strerror(errno), advice_for(errno));

  uint64_t needed = ((uint64_t)env_info.me_last_pgno + 1) * env_stat.ms_psize;
  if ((uint64_t)file_info.st_size >= needed)
    return AG_OK;
  return ag_error_set(err, AG_ESTATELOST,
                      "manifest '%s' is truncated: it has %lld bytes, but "
                      "its pages reach byte %llu. %s",
                      manifest->db_path, (long long)file_info.st_size,
                      (unsigned long long)needed, rebuild_advice);
}

/* ---- Environment, tables and map growth ---- */

static void update_map_size(struct manifest *manifest)
{
  MDB_envinfo info;

  if (mdb_env_info(manifest->env, &info) == MDB_SUCCESS)
    manifest->map_size = info.me_mapsize;
}

/* Transactions in several threads: LMDB allows one write transaction and
 * any number of read transactions at a time, each in its own thread, but
 * mdb_env_set_mapsize() only while no transaction of this process is open.
 * Every transaction therefore passes a gate that counts the open ones, and
 * a resize closes the gate and waits until the count is 0. */
static void gate_enter(struct manifest *manifest)
{
  plat_mutex_lock(manifest->gate_lock);
  while (manifest->resizing)
    plat_cond_wait(manifest->gate_changed, manifest->gate_lock);
  manifest->open_txns++;
  plat_mutex_unlock(manifest->gate_lock);
}

static void gate_leave(struct manifest *manifest)
{
  plat_mutex_lock(manifest->gate_lock);
  manifest->open_txns--;
  if (manifest->open_txns == 0)
    plat_cond_broadcast(manifest->gate_changed);
  plat_mutex_unlock(manifest->gate_lock);
}

/* Set the map size to size (0 adopts the size another process set) while
 * no transaction is open. With seen_size other than 0, the map is left as
 * it is when another thread already changed it from seen_size. Sets
 * *resized when this call changed the size. The caller must not have a
 * transaction open. Returns an LMDB code. */
static int gate_resize(struct manifest *manifest, size_t size, size_t seen_size,
                       bool *resized)
{
  int rc = MDB_SUCCESS;

  *resized = false;

  plat_mutex_lock(manifest->gate_lock);
  while (manifest->resizing)
    plat_cond_wait(manifest->gate_changed, manifest->gate_lock);
  manifest->resizing = true;
  while (manifest->open_txns > 0)
    plat_cond_wait(manifest->gate_changed, manifest->gate_lock);
  if (seen_size == 0 || manifest->map_size == seen_size) {
    rc = mdb_env_set_mapsize(manifest->env, size);
    if (rc == MDB_SUCCESS)
      update_map_size(manifest);
    *resized = rc == MDB_SUCCESS;
  }
  manifest->resizing = false;
  plat_cond_broadcast(manifest->gate_changed);
  plat_mutex_unlock(manifest->gate_lock);
  return rc;
}

/* Begin a transaction, to be ended with end_txn() or commit_txn(). If
 * another process grew the map, LMDB returns MDB_MAP_RESIZED once, and
 * adopting the new size fixes it. */
static int begin_txn(struct manifest *manifest, unsigned int flags,
                     MDB_txn **txn)
{
  gate_enter(manifest);
  int rc = mdb_txn_begin(manifest->env, NULL, flags, txn);
  if (rc == MDB_SUCCESS)
    return rc;
  gate_leave(manifest);
  if (rc != MDB_MAP_RESIZED)
    return rc;

  bool resized = false;
  rc = gate_resize(manifest, 0, 0, &resized);
  if (rc != MDB_SUCCESS)
    return rc;
  gate_enter(manifest);
  rc = mdb_txn_begin(manifest->env, NULL, flags, txn);
  if (rc != MDB_SUCCESS)
    gate_leave(manifest);
  return rc;
}

static enum ag_code init_gate(struct manifest *manifest, struct ag_error *err)
{
  enum ag_code code = plat_mutex_new(&manifest->gate_lock, err);

  if (code == AG_OK)
    code = plat_cond_new(&manifest->gate_changed, err);
  return code;
}

/* Abort txn, which begin_txn() began. Accepts NULL. */
static void end_txn(struct manifest *manifest, MDB_txn *txn)
{
  if (txn == NULL)
    return;
  mdb_txn_abort(txn);
  gate_leave(manifest);
}

/* Commit txn, which begin_txn() began. txn is freed also on failure.
 * Returns an LMDB code. */
static int commit_txn(struct manifest *manifest, MDB_txn *txn)
{
  int rc = mdb_txn_commit(txn);

  gate_leave(manifest);
  return rc;
}

/* Double the map from seen_size, up to MAP_SIZE_MAX, unless another thread
 * grew it meanwhile. Returns MDB_MAP_FULL at the limit. */
static int grow_map(struct manifest *manifest, size_t seen_size)
{
  size_t next = seen_size * 2;

  if (seen_size >= MAP_SIZE_MAX)
    return MDB_MAP_FULL;
  if (next > MAP_SIZE_MAX)
    next = MAP_SIZE_MAX;

  bool resized = false;
  int rc = gate_resize(manifest, next, seen_size, &resized);
  if (rc == MDB_SUCCESS && resized)
    log_info("manifest '%s' was full, so its map grew to %zu MiB",
             manifest->db_path, next >> 20);
  return rc;
}

/* Run step in a write transaction and commit it. LMDB does not grow the
 * map by itself: a put that needs more room fails with MDB_MAP_FULL, and
 * so can the commit. Then the transaction is aborted, the map doubled with
 * mdb_env_set_mapsize (allowed only while this process has no transaction
 * open) and step runs again. Returns an LMDB code. */
static int run_write(struct manifest *manifest, write_step_fn step,
                     const void *ctx)
{
  for (;;) {
    MDB_txn *txn = NULL;
    int rc = begin_txn(manifest, 0, &txn);

    if (rc != MDB_SUCCESS)
      return rc;
    /* Read under the write transaction, so no other thread resizes now. */
    size_t seen_size = manifest->map_size;
    rc = step(manifest, txn, ctx);
    if (rc == MDB_SUCCESS)
      rc = commit_txn(manifest, txn);
    else
      end_txn(manifest, txn);

    if (rc != MDB_MAP_FULL)
      return rc;
    rc = grow_map(manifest, seen_size);
    if (rc != MDB_SUCCESS)
      return rc;
  }
}

int manifest_write(struct manifest *manifest, write_step_fn step,
                   const void *ctx)
{
  if (manifest->read_only)
    return EACCES;
  return run_write(manifest, step, ctx);
}

/* Create the LMDB environment and open manifest.mdb. Invalid files mean a
 * lost manifest when the marker exists. */
static enum ag_code open_env(struct manifest *manifest, bool has_marker,
                             struct ag_error *err)
{
  int rc = mdb_env_create(&manifest->env);

  if (rc == MDB_SUCCESS)
    rc = mdb_env_set_maxdbs(manifest->env, 3);
  if (rc != MDB_SUCCESS)
    return fail_mdb(err, rc, "set up LMDB for manifest '%s'",
                    manifest->db_path);

  unsigned int flags = MDB_NOSUBDIR | (manifest->read_only ? MDB_RDONLY : 0);
  rc = mdb_env_open(manifest->env, manifest->db_path, flags, 0600);
  if ((rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH) && has_marker)
    return fail_lost(manifest, "is not a valid LMDB file", err);
  if (rc != MDB_SUCCESS)
    return fail_mdb(err, rc, "open manifest '%s'", manifest->db_path);
  enum ag_code code = check_not_truncated(manifest, err);
  if (code != AG_OK)
    return code;

  /* A file that grew in an earlier run keeps its larger map size. */
  update_map_size(manifest);
  if (manifest->map_size < MAP_SIZE_INITIAL) {
    rc = mdb_env_set_mapsize(manifest->env, MAP_SIZE_INITIAL);
    if (rc != MDB_SUCCESS)
      return fail_mdb(err, rc, "set the map size of manifest '%s'",
                      manifest->db_path);
    update_map_size(manifest);
  }

  /* Free the reader slots of processes that died with a transaction open,
   * which would otherwise keep old pages from being reused. */
  int dead = 0;
  if (mdb_reader_check(manifest->env, &dead) == MDB_SUCCESS && dead > 0)
    log_info("manifest '%s': cleared %d reader slots of ended processes",
             manifest->db_path, dead);
  return AG_OK;
}

/* Open the three tables. Without a marker, missing tables and metadata
 * are created, unless the manifest is opened read-only. With a marker,
 * they must exist, or the manifest counts as lost. */
static enum ag_code open_tables(struct manifest *manifest, bool has_marker,
                                struct ag_error *err)
{
  static const char *const names[] = {"files", "delivered", "meta"};
  MDB_dbi *handles[] = {&manifest->files, &manifest->delivered,
                        &manifest->meta};
  bool create = !has_marker && !manifest->read_only;
  unsigned int flags = create ? MDB_CREATE : 0;
  enum ag_code code = AG_OK;
  MDB_txn *txn = NULL;
  char problem[64];

  /* Handles opened in a read-only transaction stay valid after it commits
   * (but not after an abort). */
  int rc = begin_txn(manifest, manifest->read_only ? MDB_RDONLY : 0, &txn);
  if (rc != MDB_SUCCESS)
    return fail_mdb(err, rc, "open manifest '%s'", manifest->db_path);

  for (size_t i = 0; i < 3 && rc == MDB_SUCCESS; i++) {
    rc = mdb_dbi_open(txn, names[i], flags, handles[i]);
    if ((rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) && has_marker) {
      snprintf(problem, sizeof(problem), "has no \"%s\" table", names[i]);
      code = fail_lost(manifest, problem, err);
      goto done;
    }
  }
  if (rc != MDB_SUCCESS) {
    code = fail_mdb(err, rc, "open the tables of manifest '%s'",
                    manifest->db_path);
    goto done;
  }

  code = manifest_schema_read(manifest, txn, has_marker, create, err);
  if (code != AG_OK)
    goto done;

  rc = commit_txn(manifest, txn);
  txn = NULL;
  if (rc != MDB_SUCCESS)
    code = fail_mdb(err, rc, "commit the tables of manifest '%s'",
                    manifest->db_path);

done:
  end_txn(manifest, txn);
  return code;
}

/* ---- Public functions ---- */

/* Fail unless LMDB can store a key of key_len bytes. */
static enum ag_code check_key(const struct manifest *manifest, const void *key,
                              size_t key_len, struct ag_error *err)
{
  int max = mdb_env_get_maxkeysize(manifest->env);
  char key_text[KEY_TEXT_MAX];

  if (key_len > 0 && key_len <= (size_t)max)
    return AG_OK;
  if (key_len == 0)
    return ag_error_set(err, AG_ESTATE,
                        "invalid empty manifest key. This is a bug in the "
                        "agent.");

  /* NOTE: paths longer than LMDB's key limit (511 bytes by default) cannot
   * be tracked. Storing a hash of such paths as the key would lift it. */
  log_escape(key_text, sizeof(key_text), key, key_len);
  return ag_error_set(err, AG_ESTATE,
                      "remote path '%s' is %zu bytes long, but the manifest "
                      "stores paths of 1 to %d bytes. Shorten the path on the "
                      "server.",
                      key_text, key_len, max);
}

/* Open the manifest in state_dir for manifest_open(), or, with read_only,
 * for manifest_open_read_only(). */
static enum ag_code open_manifest(const char *state_dir, bool read_only,
                                  struct manifest **out, struct ag_error *err)
{
  struct manifest *manifest = calloc(1, sizeof(*manifest));
  bool has_marker = false;
  enum ag_code code = AG_OK;

  *out = NULL;
  if (manifest == NULL)
    return fail_nomem(err, "opening the manifest");
  manifest->read_only = read_only;
  manifest->state_dir = copy_string(state_dir);
  manifest->db_path = join_path(state_dir, MANIFEST_FILE);
  manifest->marker_path = join_path(state_dir, MARKER_FILE);
  if (manifest->state_dir == NULL || manifest->db_path == NULL ||
      manifest->marker_path == NULL) {
    code = fail_nomem(err, "opening the manifest");
    goto fail;
  }
  code = init_gate(manifest, err);
  if (code != AG_OK)
    goto fail;

  code = read_marker(manifest, &has_marker, err);
  if (code == AG_OK && (has_marker || read_only))
    code = check_manifest_file(manifest, has_marker, err);
  if (code == AG_OK)
    code = open_env(manifest, has_marker, err);
  if (code == AG_OK)
    code = open_tables(manifest, has_marker, err);
  if (code == AG_OK && !read_only)
    code = manifest_schema_migrate(manifest, err);
  if (code != AG_OK)
    goto fail;

  /* The marker comes after the manifest's first commit, so a crash in
   * between leaves a manifest without a marker, which is safe. */
  if (!has_marker && !read_only) {
    code = create_marker(manifest, err);
    if (code != AG_OK)
      goto fail;
    log_info("created agent id %s in '%s'", manifest->agent_id,
             manifest->marker_path);
  }
  *out = manifest;
  return AG_OK;

fail:
  manifest_close(manifest);
  return code;
}

enum ag_code manifest_open(const char *state_dir, struct manifest **out,
                           struct ag_error *err)
{
  return open_manifest(state_dir, false, out, err);
}

enum ag_code manifest_open_read_only(const char *state_dir,
                                     struct manifest **out,
                                     struct ag_error *err)
{
  return open_manifest(state_dir, true, out, err);
}

void manifest_close(struct manifest *manifest)
{
  if (manifest == NULL)
    return;
  if (manifest->env != NULL)
    mdb_env_close(manifest->env);
  plat_cond_free(manifest->gate_changed);
  plat_mutex_free(manifest->gate_lock);
  free(manifest->state_dir);
  free(manifest->db_path);
  free(manifest->marker_path);
  free(manifest);
}

enum ag_code manifest_get(struct manifest *manifest, const void *key,
                          size_t key_len, struct manifest_record *record,
                          bool *found, struct ag_error *err)
{
  MDB_val lookup = {key_len, (void *)key};
  MDB_val value;
  MDB_txn *txn = NULL;
  char key_text[KEY_TEXT_MAX];

  *found = false;
  enum ag_code code = check_key(manifest, key, key_len, err);
  if (code != AG_OK)
    return code;

  int rc = begin_txn(manifest, MDB_RDONLY, &txn);
  if (rc == MDB_SUCCESS)
    rc = mdb_get(txn, manifest->files, &lookup, &value);
  if (rc == MDB_SUCCESS) {
    code = manifest_record_decode(manifest, &lookup, &value, record, err);
    *found = code == AG_OK;
  } else if (rc != MDB_NOTFOUND) {
    log_escape(key_text, sizeof(key_text), key, key_len);
    code = fail_mdb(err, rc, "read the record for '%s' from manifest '%s'",
                    key_text, manifest->db_path);
  }
  end_txn(manifest, txn);
  return code;
}

/* The writes of one manifest_put(). */
struct put_request {
  MDB_val key;
  MDB_val value;
  MDB_val version;      /* mv_data is NULL unless the delivered table changes */
  MDB_val delivered_at; /* the version's value: its delivery time */
};

/* Store in out the delivered table's key for a version: the SHA-256 of the
 * content hash, a NUL byte and the file key. One fixed-size key per (name,
 * content) pair keeps every version a name ever had, whatever its length. */
static int version_key(const char *sha256, const void *key, size_t key_len,
                       unsigned char out[32])
{
  EVP_MD_CTX *hash = EVP_MD_CTX_new();
  int ok = hash != NULL && EVP_DigestInit_ex(hash, EVP_sha256(), NULL) == 1 &&
           EVP_DigestUpdate(hash, sha256, 65) == 1 &&
           EVP_DigestUpdate(hash, key, key_len) == 1 &&
           EVP_DigestFinal_ex(hash, out, NULL) == 1;

  EVP_MD_CTX_free(hash);
  return ok ? 0 : -1;
}

static int put_step(struct manifest *manifest, MDB_txn *txn, const void *ctx)
{
  const struct put_request *request = ctx;
  MDB_val key = request->key;
  MDB_val value = request->value;
  MDB_val version = request->version;
  MDB_val delivered_at = request->delivered_at;

  int rc = mdb_put(txn, manifest->files, &key, &value, 0);
  if (rc != MDB_SUCCESS || version.mv_data == NULL)
    return rc;
  return mdb_put(txn, manifest->delivered, &version, &delivered_at, 0);
}

enum ag_code manifest_put(struct manifest *manifest, const void *key,
                          size_t key_len, const struct manifest_record *record,
                          struct ag_error *err)
{
  struct put_request request = {
      {key_len, (void *)key}, {0, NULL}, {0, NULL}, {0, NULL}};
  char key_text[KEY_TEXT_MAX];

  log_escape(key_text, sizeof(key_text), key, key_len);
  enum ag_code code = check_key(manifest, key, key_len, err);
  if (code == AG_OK)
    code = manifest_record_check(record, key_text, err);
  if (code != AG_OK)
    return code;

  char *text = manifest_record_encode(record);
  if (text == NULL)
    return fail_nomem(err, "encoding a manifest record");
  request.value.mv_size = strlen(text);
  request.value.mv_data = text;
  unsigned char version[32];
  unsigned char delivered_at[MANIFEST_DELIVERED_VALUE_SIZE];
  if (record->state == MANIFEST_DELIVERED && record->sha256[0] != '\0') {
    if (version_key(record->sha256, key, key_len, version) != 0) {
      free(text);
      return fail_nomem(err, "hashing a delivered version");
    }
    request.version.mv_size = sizeof(version);
    request.version.mv_data = version;
    manifest_encode_time(
        record->updated > 0 ? record->updated : plat_wall_time(), delivered_at);
    request.delivered_at.mv_size = sizeof(delivered_at);
    request.delivered_at.mv_data = delivered_at;
  }

  int rc = run_write(manifest, put_step, &request);
  if (rc != MDB_SUCCESS)
    code = fail_mdb(err, rc, "store the record for '%s' in manifest '%s'",
                    key_text, manifest->db_path);
  free(text);
  return code;
}

/* ---- Batches ---- */

/* One put of a batch: the key and a copy of the record. The record is
 * encoded only when the batch is committed, so a put that a later put of
 * the same key replaces costs no encoding and no write. */
struct batch_put {
  unsigned char *key;
  size_t key_len;
  uint64_t key_hash;
  struct manifest_record record;
  char *value;               /* the record's JSON text, during a commit */
  bool superseded;           /* a later put of the batch has the same key */
  bool has_version;          /* the put adds a delivered version */
  unsigned char version[32]; /* delivered-table key, when has_version */
  /* delivered-table value, when has_version: the delivery time */
  unsigned char delivered_at[MANIFEST_DELIVERED_VALUE_SIZE];
};

struct manifest_batch {
  struct manifest *manifest;
  struct batch_put *puts;
  size_t count;
  size_t capacity;
};

enum ag_code manifest_batch_new(struct manifest *manifest,
                                struct manifest_batch **out,
                                struct ag_error *err)
{
  struct manifest_batch *batch = calloc(1, sizeof(*batch));

  *out = NULL;
  if (batch == NULL)
    return fail_nomem(err, "starting a manifest batch");
  batch->manifest = manifest;
  *out = batch;
  return AG_OK;
}

static void free_put(struct batch_put *put)
{
  free(put->key);
  free(put->value);
  manifest_record_clear(&put->record);
}

/* Free the puts of batch and empty it, keeping its array. */
static void batch_clear(struct manifest_batch *batch)
{
  for (size_t i = 0; i < batch->count; i++)
    free_put(&batch->puts[i]);
  batch->count = 0;
}

void manifest_batch_free(struct manifest_batch *batch)
{
  if (batch == NULL)
    return;
  batch_clear(batch);
  free(batch->puts);
  free(batch);
}

size_t manifest_batch_count(const struct manifest_batch *batch)
{
  return batch->count;
}

/* Make room for one more put. */
static bool batch_reserve(struct manifest_batch *batch)
{
  if (batch->count < batch->capacity)
    return true;
  size_t capacity = batch->capacity == 0 ? 16 : batch->capacity * 2;
  struct batch_put *puts = realloc(batch->puts, capacity * sizeof(*puts));
  if (puts == NULL)
    return false;
  batch->puts = puts;
  batch->capacity = capacity;
  return true;
}

/* Copy text into *out; NULL stays NULL. Returns false when out of memory. */
static bool copy_text(const char *text, char **out)
{
  *out = text != NULL ? copy_string(text) : NULL;
  return text == NULL || *out != NULL;
}

/* Copy record with its strings into out. */
static bool copy_record(const struct manifest_record *record,
                        struct manifest_record *out)
{
  *out = *record;
  out->output = NULL;
  out->archive_path = NULL;
  out->reason = NULL;
  out->hook_error = NULL;
  out->archive_error = NULL;
  out->claim_path = NULL;
  out->output_temp = NULL;
  out->sidecar_temp = NULL;
  return copy_text(record->output, &out->output) &&
         copy_text(record->archive_path, &out->archive_path) &&
         copy_text(record->reason, &out->reason) &&
         copy_text(record->hook_error, &out->hook_error) &&
         copy_text(record->archive_error, &out->archive_error) &&
         copy_text(record->claim_path, &out->claim_path) &&
         copy_text(record->output_temp, &out->output_temp) &&
         copy_text(record->sidecar_temp, &out->sidecar_temp);
}

/* FNV-1a of a key, to find the puts of a batch that share one. */
static uint64_t hash_bytes(const unsigned char *bytes, size_t len)
{
  uint64_t hash = 14695981039346656037ULL;

  for (size_t i = 0; i < len; i++)
    hash = (hash ^ bytes[i]) * 1099511628211ULL;
  return hash;
}

enum ag_code manifest_batch_put(struct manifest_batch *batch, const void *key,
                                size_t key_len,
                                const struct manifest_record *record,
                                struct ag_error *err)
{
  struct manifest *manifest = batch->manifest;
  struct batch_put put = {0};
  char key_text[KEY_TEXT_MAX];

  log_escape(key_text, sizeof(key_text), key, key_len);
  enum ag_code code = check_key(manifest, key, key_len, err);
  if (code == AG_OK)
    code = manifest_record_check(record, key_text, err);
  if (code != AG_OK)
    return code;

  put.key = malloc(key_len);
  put.key_len = key_len;
  if (put.key == NULL || !copy_record(record, &put.record) ||
      !batch_reserve(batch)) {
    free_put(&put);
    return fail_nomem(err, "adding a record to a manifest batch");
  }
  memcpy(put.key, key, key_len);
  put.key_hash = hash_bytes(put.key, key_len);
  batch->puts[batch->count++] = put;
  return AG_OK;
}

/* Mark each put that a later put of the same key replaces. The batch is
 * walked from its end with an open-addressing table of the keys seen. */
static bool mark_superseded(struct manifest_batch *batch)
{
  size_t slots = 16;
  while (slots < 2 * batch->count)
    slots *= 2;
  size_t *seen = malloc(slots * sizeof(*seen)); /* put index + 1, or 0 */
  if (seen == NULL)
    return false;
  memset(seen, 0, slots * sizeof(*seen));

  for (size_t i = batch->count; i-- > 0;) {
    struct batch_put *put = &batch->puts[i];
    size_t slot = (size_t)put->key_hash & (slots - 1);

    put->superseded = false;
    while (seen[slot] != 0) {
      const struct batch_put *later = &batch->puts[seen[slot] - 1];
      if (later->key_len == put->key_len &&
          memcmp(later->key, put->key, put->key_len) == 0) {
        put->superseded = true;
        break;
      }
      slot = (slot + 1) & (slots - 1);
    }
    if (!put->superseded)
      seen[slot] = i + 1;
  }
  free(seen);
  return true;
}

/* Encode what the commit writes: the record of each put that is not
 * superseded, and the delivered version of every DELIVERED put, which the
 * delivered table keeps even when a later put replaces the record. */
static enum ag_code encode_batch(struct manifest_batch *batch,
                                 struct ag_error *err)
{
  if (!mark_superseded(batch))
    return fail_nomem(err, "committing a manifest batch");
  for (size_t i = 0; i < batch->count; i++) {
    struct batch_put *put = &batch->puts[i];
    const struct manifest_record *record = &put->record;

    if (!put->superseded && put->value == NULL) {
      put->value = manifest_record_encode(record);
      if (put->value == NULL)
        return fail_nomem(err, "encoding a manifest record");
    }
    put->has_version =
        record->state == MANIFEST_DELIVERED && record->sha256[0] != '\0';
    if (!put->has_version)
      continue;
    if (version_key(record->sha256, put->key, put->key_len, put->version) != 0)
      return fail_nomem(err, "hashing a delivered version");
    manifest_encode_time(record->updated > 0 ? record->updated
                                             : plat_wall_time(),
                         put->delivered_at);
  }
  return AG_OK;
}

static int batch_step(struct manifest *manifest, MDB_txn *txn, const void *ctx)
{
  const struct manifest_batch *batch = ctx;
  int rc = MDB_SUCCESS;

  for (size_t i = 0; i < batch->count && rc == MDB_SUCCESS; i++) {
    const struct batch_put *put = &batch->puts[i];
    MDB_val key = {put->key_len, put->key};
    MDB_val version = {sizeof(put->version), (void *)put->version};
    MDB_val delivered_at = {sizeof(put->delivered_at),
                            (void *)put->delivered_at};

    if (!put->superseded) {
      MDB_val value = {strlen(put->value), put->value};
      rc = mdb_put(txn, manifest->files, &key, &value, 0);
    }
    if (rc == MDB_SUCCESS && put->has_version)
      rc = mdb_put(txn, manifest->delivered, &version, &delivered_at, 0);
  }
  return rc;
}

enum ag_code manifest_batch_commit(struct manifest_batch *batch,
                                   struct ag_error *err)
{
  struct manifest *manifest = batch->manifest;

  if (batch->count == 0)
    return AG_OK;
  enum ag_code code = encode_batch(batch, err);
  if (code != AG_OK)
    return code;
  int rc = run_write(manifest, batch_step, batch);
  if (rc != MDB_SUCCESS)
    return fail_mdb(err, rc, "store %zu records in manifest '%s'", batch->count,
                    manifest->db_path);
  batch_clear(batch);
  return AG_OK;
}

enum ag_code manifest_was_delivered(struct manifest *manifest,
                                    const char *sha256, const void *key,
                                    size_t key_len, bool *found,
                                    struct ag_error *err)
{
  unsigned char version[32];
  MDB_val lookup = {sizeof(version), version};
  MDB_val value;
  MDB_txn *txn = NULL;
  char shown[80];

  *found = false;
  if (strnlen(sha256, 65) != 64 || !manifest_is_sha256_hex(sha256))
    return ag_error_set(
        err, AG_ESTATE,
        "invalid SHA-256 '%s' in a delivered-version lookup: "
        "expected 64 lowercase hex digits. This is a bug in "
        "the agent.",
        log_escape(shown, sizeof(shown), sha256, strnlen(sha256, 65)));
  if (version_key(sha256, key, key_len, version) != 0)
    return fail_nomem(err, "hashing a delivered version");

  int rc = begin_txn(manifest, MDB_RDONLY, &txn);
  if (rc == MDB_SUCCESS)
    rc = mdb_get(txn, manifest->delivered, &lookup, &value);
  end_txn(manifest, txn);
  if (rc == MDB_SUCCESS) {
    *found = true;
    return AG_OK;
  }
  if (rc == MDB_NOTFOUND)
    return AG_OK;
  return fail_mdb(err, rc, "look up delivered version %s in manifest '%s'",
                  sha256, manifest->db_path);
}

enum ag_code manifest_foreach(struct manifest *manifest, manifest_each_fn fn,
                              void *ctx, struct ag_error *err)
{
  struct manifest_record record = {0};
  MDB_txn *txn = NULL;
  MDB_cursor *cursor = NULL;
  MDB_val key;
  MDB_val value;
  enum ag_code code = AG_OK;

  int rc = begin_txn(manifest, MDB_RDONLY, &txn);
  if (rc == MDB_SUCCESS)
    rc = mdb_cursor_open(txn, manifest->files, &cursor);
  if (rc == MDB_SUCCESS)
    rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);

  while (rc == MDB_SUCCESS) {
    code = manifest_record_decode(manifest, &key, &value, &record, err);
    if (code != AG_OK)
      goto done;
    code = fn(ctx, key.mv_data, key.mv_size, &record);
    manifest_record_clear(&record);
    if (code != AG_OK)
      goto done;
    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT);
  }
  if (rc != MDB_NOTFOUND)
    code = fail_mdb(err, rc, "read the records of manifest '%s'",
                    manifest->db_path);

done:
  if (cursor != NULL)
    mdb_cursor_close(cursor);
  end_txn(manifest, txn);
  return code;
}

void manifest_record_clear(struct manifest_record *record)
{
  free(record->output);
  free(record->archive_path);
  free(record->reason);
  free(record->hook_error);
  free(record->archive_error);
  free(record->claim_path);
  free(record->output_temp);
  free(record->sidecar_temp);
  memset(record, 0, sizeof(*record));
}

const char *manifest_state_name(enum manifest_state state)
{
  switch (state) {
  case MANIFEST_SEEN:
    return "seen";
  case MANIFEST_DOWNLOADED:
    return "downloaded";
  case MANIFEST_DELIVERED:
    return "delivered";
  case MANIFEST_ARCHIVED:
    return "archived";
  case MANIFEST_FAILED:
    return "failed";
  }
  return "unknown";
}

const char *manifest_agent_id(const struct manifest *manifest)
{
  return manifest->agent_id;
}

static enum ag_code count_record(void *ctx, const void *key, size_t key_len,
                                 const struct manifest_record *record)
{
  size_t *counts = ctx;

  (void)key;
  (void)key_len;
  counts[record->state]++;
  return AG_OK;
}

enum ag_code manifest_counts(struct manifest *manifest,
                             size_t counts[MANIFEST_STATE_COUNT],
                             struct ag_error *err)
{
  for (size_t i = 0; i < MANIFEST_STATE_COUNT; i++)
    counts[i] = 0;
  return manifest_foreach(manifest, count_record, counts, err);
}

/* ---- Meta values and deletion ---- */

/* The writes of one manifest_set_meta(). */
struct meta_request {
  MDB_val key;
  MDB_val value;
};

static int put_meta_step(struct manifest *manifest, MDB_txn *txn,
                         const void *ctx)
{
  const struct meta_request *request = ctx;
  MDB_val key = request->key;
  MDB_val value = request->value;

  return mdb_put(txn, manifest->meta, &key, &value, 0);
}

static enum ag_code check_meta_key(const char *key, struct ag_error *err)
{
  size_t len = strlen(key);
  char shown[KEY_TEXT_MAX];

  if (len > 0 && len <= MANIFEST_META_KEY_MAX)
    return AG_OK;
  return ag_error_set(err, AG_ESTATE,
                      "invalid manifest meta key '%s' of %zu bytes: "
                      "expected 1 to %d. This is a bug in the agent.",
                      log_escape(shown, sizeof(shown), key, len), len,
                      MANIFEST_META_KEY_MAX);
}

enum ag_code manifest_set_meta(struct manifest *manifest, const char *key,
                               const char *value, struct ag_error *err)
{
  enum ag_code code = check_meta_key(key, err);
  size_t value_len = strlen(value);

  if (code != AG_OK)
    return code;
  if (strcmp(key, META_SCHEMA_KEY) == 0 || strcmp(key, META_CREATED_KEY) == 0)
    return ag_error_set(err, AG_ESTATE,
                        "manifest meta key '%s' is written only when the "
                        "manifest is created. This is a bug in the agent.",
                        key);
  if (value_len > MANIFEST_META_VALUE_MAX)
    return ag_error_set(err, AG_ESTATE,
                        "manifest meta value for '%s' is %zu bytes, more "
                        "than %d. This is a bug in the agent.",
                        key, value_len, MANIFEST_META_VALUE_MAX);

  struct meta_request request = {{strlen(key), (void *)key},
                                 {value_len, (void *)value}};
  int rc = run_write(manifest, put_meta_step, &request);
  if (rc != MDB_SUCCESS)
    return fail_mdb(err, rc, "store '%s' in the meta table of manifest '%s'",
                    key, manifest->db_path);
  return AG_OK;
}

enum ag_code manifest_get_meta(struct manifest *manifest, const char *key,
                               char **value_out, struct ag_error *err)
{
  MDB_val lookup = {strlen(key), (void *)key};
  MDB_val value;
  MDB_txn *txn = NULL;
  enum ag_code code = check_meta_key(key, err);

  *value_out = NULL;
  if (code != AG_OK)
    return code;
  int rc = begin_txn(manifest, MDB_RDONLY, &txn);
  if (rc == MDB_SUCCESS)
    rc = mdb_get(txn, manifest->meta, &lookup, &value);

  /* value points into the map, which is valid only inside txn. */
  if (rc == MDB_SUCCESS) {
    *value_out = malloc(value.mv_size + 1);
    if (*value_out == NULL) {
      code = fail_nomem(err, "reading a manifest meta value");
    } else {
      memcpy(*value_out, value.mv_data, value.mv_size);
      (*value_out)[value.mv_size] = '\0';
    }
  } else if (rc != MDB_NOTFOUND) {
    code = fail_mdb(err, rc, "read '%s' from the meta table of manifest '%s'",
                    key, manifest->db_path);
  }
  end_txn(manifest, txn);
  return code;
}

static int delete_step(struct manifest *manifest, MDB_txn *txn, const void *ctx)
{
  MDB_val key = *(const MDB_val *)ctx;

  return mdb_del(txn, manifest->files, &key, NULL);
}

enum ag_code manifest_delete(struct manifest *manifest, const void *key,
                             size_t key_len, bool *found, struct ag_error *err)
{
  MDB_val lookup = {key_len, (void *)key};
  char key_text[KEY_TEXT_MAX];
  enum ag_code code = check_key(manifest, key, key_len, err);

  *found = false;
  if (code != AG_OK)
    return code;
  int rc = run_write(manifest, delete_step, &lookup);
  if (rc == MDB_NOTFOUND)
    return AG_OK;
  if (rc != MDB_SUCCESS) {
    log_escape(key_text, sizeof(key_text), key, key_len);
    return fail_mdb(err, rc, "remove the record for '%s' from manifest '%s'",
                    key_text, manifest->db_path);
  }
  *found = true;
  return AG_OK;
}

/* Rename path to path + suffix when it exists. */
static enum ag_code rename_aside(const char *path, const char *suffix,
                                 struct ag_error *err)
{
  size_t size = strlen(path) + strlen(suffix) + 1;
  char *target = malloc(size);
  enum ag_code code = AG_OK;

  if (target == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  snprintf(target, size, "%s%s", path, suffix);
  if (plat_exists(path) != 0)
    code = plat_replace(path, target, err);
  free(target);
  return code;
}

enum ag_code manifest_set_aside(const char *state_dir, struct ag_error *err)
{
  char suffix[40];
  char *db_path = join_path(state_dir, MANIFEST_FILE);
  char *lock_path = join_path(state_dir, MANIFEST_FILE "-lock");
  char *marker_path = join_path(state_dir, MARKER_FILE);
  enum ag_code code = AG_OK;
  int error = 0;

  if (db_path == NULL || lock_path == NULL || marker_path == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  snprintf(suffix, sizeof(suffix), ".broken-%lld", (long long)time(NULL));
  code = rename_aside(db_path, suffix, err);
  if (code == AG_OK)
    code = rename_aside(lock_path, suffix, err);
  if (code == AG_OK)
    error = plat_unlink(marker_path);
  if (error != 0 && error != ENOENT)
    code = ag_error_set(err, AG_ELOCAL, "cannot remove '%s': %s", marker_path,
                        strerror(error));

out:
  free(db_path);
  free(lock_path);
  free(marker_path);
  return code;
}
