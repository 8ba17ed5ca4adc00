/* The manifest in LMDB: opening and creating it, the agent-id marker that
 * reveals a lost manifest, the JSON record format and map growth.
 *
 * Files in the state folder: manifest.mdb (the LMDB environment, opened
 * with MDB_NOSUBDIR), manifest.mdb-lock (LMDB's lock file) and agent-id.
 * Named databases: "files" (relative path -> record), "delivered"
 * (SHA-256 hex -> relative path) and "meta" (schema_version, created_at,
 * both as decimal text, and the values of manifest_set_meta()). */
#include "agent/manifest.h"

#include "agent/log.h"
#include "agent/names.h"
#include "agent/platform.h"
#include "agent/utf8.h"

#include <jansson.h>
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
#define SCHEMA_VERSION 1
#define RECORD_VERSION 1
#define AGENT_ID_BYTES 16

/* The map starts at 16 MiB and doubles when full, up to 1 GiB. LMDB
 * reserves address space, not disk, for the map. */
#define MAP_SIZE_INITIAL ((size_t)16 << 20)
#define MAP_SIZE_MAX ((size_t)1 << 30)

/* Room for a key escaped with log_escape() in a message. */
#define KEY_TEXT_MAX 256

static const char rebuild_advice[] =
    "Restore the manifest from a backup, or run `rossum-sftp-agent sync "
    "--rebuild-manifest` to start afresh, which delivers files still in the "
    "inbox again.";

struct manifest {
  MDB_env *env;
  MDB_dbi files;
  MDB_dbi delivered;
  MDB_dbi meta;
  size_t map_size;
  /* The gate that lets a map resize wait until no thread of this process
   * has a transaction open (see gate_enter()). */
  struct plat_mutex *gate_lock;
  struct plat_cond *gate_changed;
  size_t open_txns; /* transactions open in any thread */
  bool resizing;    /* a thread waits for open_txns 0 or resizes */
  char *state_dir;
  char *db_path;
  char *marker_path;
  char agent_id[2 * AGENT_ID_BYTES + 1];
};

/* A step that runs inside a write transaction and returns an LMDB code. */
typedef int (*write_step_fn)(struct manifest *manifest, MDB_txn *txn,
                             const void *ctx);

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

/* Record an LMDB failure as AG_ESTATE. The format describes the action
 * that failed, such as "open manifest '/x/manifest.mdb'". */
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
  return ag_error_set(err, AG_ESTATE, "failed to %s: %s. %s", action,
                      mdb_strerror(rc), advice_for(rc));
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
  FILE *file = fopen(manifest->marker_path, "rb");

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

/* Sync a folder so that a rename inside it survives a crash. */
static bool sync_folder(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd < 0)
    return false;
  bool ok = fsync(fd) == 0;
  int saved_errno = errno;
  close(fd);
  errno = saved_errno;
  return ok;
}

/* Write text to the marker atomically and durably: a temporary file that is
 * synced and renamed onto the marker, then a sync of the state folder.
 * NOTE: POSIX calls (open, fsync, rename, a synced folder). The Windows
 * port replaces them with plat_create_temp, plat_sync_close and
 * plat_replace. */
static enum ag_code write_marker_file(struct manifest *manifest,
                                      const char *text, struct ag_error *err)
{
  char *temp_path = join_path(manifest->state_dir, MARKER_FILE ".tmp");
  const char *step = NULL;
  const char *step_path = NULL;
  enum ag_code code = AG_OK;
  int fd = -1;

  if (temp_path == NULL)
    return fail_nomem(err, "writing the agent-id marker");
  step_path = temp_path;

  fd = open(temp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    step = "create";
    goto done;
  }
  if (!plat_write_all(fd, text, strlen(text))) {
    step = "write";
    goto done;
  }
  if (fsync(fd) != 0) {
    step = "sync";
    goto done;
  }
  int closed = close(fd);
  fd = -1;
  if (closed != 0) {
    step = "close";
    goto done;
  }

  if (rename(temp_path, manifest->marker_path) != 0) {
    step = "rename";
    goto done;
  }
  if (!sync_folder(manifest->state_dir)) {
    step = "sync";
    step_path = manifest->state_dir;
  }

done:
  if (step != NULL) {
    int saved_errno = errno;

    code = ag_error_set(err, AG_ELOCAL,
                        "failed to %s '%s' while writing marker '%s': %s. "
                        "Check that the state folder is writable and its "
                        "file system has free space.",
                        step, step_path, manifest->marker_path,
                        strerror(saved_errno));
  }
  if (fd >= 0)
    close(fd);
  if (code != AG_OK)
    unlink(temp_path);
  free(temp_path);
  return code;
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

/* Fail with AG_ESTATELOST when the manifest file is missing or empty.
 * LMDB would silently create a fresh environment in both cases.
 * NOTE: stat() is POSIX. The Windows port needs its own check. */
static enum ag_code check_manifest_file(const struct manifest *manifest,
                                        struct ag_error *err)
{
  struct stat info;

  if (stat(manifest->db_path, &info) != 0) {
    int saved_errno = errno;

    if (saved_errno == ENOENT)
      return fail_lost(manifest, "is missing", err);
    return ag_error_set(err, AG_ESTATE, "failed to check manifest '%s': %s. %s",
                        manifest->db_path, strerror(saved_errno),
                        advice_for(saved_errno));
  }
  if (info.st_size == 0)
    return fail_lost(manifest, "is empty", err);
  return AG_OK;
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

  rc = mdb_env_open(manifest->env, manifest->db_path, MDB_NOSUBDIR, 0600);
  if ((rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH) && has_marker)
    return fail_lost(manifest, "is not a valid LMDB file", err);
  if (rc != MDB_SUCCESS)
    return fail_mdb(err, rc, "open manifest '%s'", manifest->db_path);

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

#define META_SCHEMA_KEY "schema_version"
#define META_CREATED_KEY "created_at"

/* Return whether value is the decimal text of SCHEMA_VERSION. */
static bool is_current_schema(const MDB_val *value)
{
  char expected[16];
  int len = snprintf(expected, sizeof(expected), "%d", SCHEMA_VERSION);

  return value->mv_size == (size_t)len &&
         memcmp(value->mv_data, expected, (size_t)len) == 0;
}

/* Store schema_version and created_at in a new manifest. */
static int write_meta(struct manifest *manifest, MDB_txn *txn)
{
  char version[16];
  char created[32];

  snprintf(version, sizeof(version), "%d", SCHEMA_VERSION);
  snprintf(created, sizeof(created), "%" PRId64, (int64_t)time(NULL));

  MDB_val version_key = {sizeof(META_SCHEMA_KEY) - 1, META_SCHEMA_KEY};
  MDB_val version_value = {strlen(version), version};
  MDB_val created_key = {sizeof(META_CREATED_KEY) - 1, META_CREATED_KEY};
  MDB_val created_value = {strlen(created), created};

  int rc = mdb_put(txn, manifest->meta, &version_key, &version_value, 0);
  if (rc == MDB_SUCCESS)
    rc = mdb_put(txn, manifest->meta, &created_key, &created_value, 0);
  return rc;
}

/* Check the schema version in "meta", or write it into a new manifest. */
static enum ag_code check_schema(struct manifest *manifest, MDB_txn *txn,
                                 bool has_marker, struct ag_error *err)
{
  MDB_val key = {sizeof(META_SCHEMA_KEY) - 1, META_SCHEMA_KEY};
  MDB_val value;
  char shown[32];

  int rc = mdb_get(txn, manifest->meta, &key, &value);
  if (rc == MDB_NOTFOUND && has_marker)
    return fail_lost(manifest, "has no schema version", err);
  if (rc == MDB_NOTFOUND)
    rc = write_meta(manifest, txn);
  else if (rc == MDB_SUCCESS && !is_current_schema(&value))
    return ag_error_set(
        err, AG_ESTATE,
        "manifest '%s' has schema version '%s', but this "
        "agent reads only version %d. Run the agent release "
        "that wrote it.",
        manifest->db_path,
        log_escape(shown, sizeof(shown), value.mv_data, value.mv_size),
        SCHEMA_VERSION);
  if (rc != MDB_SUCCESS)
    return fail_mdb(err, rc, "set up the schema version of manifest '%s'",
                    manifest->db_path);
  return AG_OK;
}

/* Open the three tables. Without a marker, missing tables and metadata
 * are created. With one, they must exist, or the manifest counts as lost. */
static enum ag_code open_tables(struct manifest *manifest, bool has_marker,
                                struct ag_error *err)
{
  static const char *const names[] = {"files", "delivered", "meta"};
  MDB_dbi *handles[] = {&manifest->files, &manifest->delivered,
                        &manifest->meta};
  unsigned int flags = has_marker ? 0 : MDB_CREATE;
  enum ag_code code = AG_OK;
  MDB_txn *txn = NULL;
  char problem[64];

  int rc = begin_txn(manifest, 0, &txn);
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

  code = check_schema(manifest, txn, has_marker, err);
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

/* ---- Record format ----
 *
 * A record is a compact JSON object: {"v":1,"state":"delivered","size":...,
 * "mtime":...,"sha256":"...","format":"xml","output":"...",
 * "archive_path":"...","reason":"...","first_seen":...,"updated":...,
 * "attempts":...,"hook_done":true,"hook_attempts":...,"hook_retry_at":...,
 * "hook_error":"..."}. NULL strings and an empty sha256 or format are left
 * out, and so are the hook fields while they are false or 0, so a record
 * without a hook is stored as before the hook existed. An output,
 * archive_path, reason or hook_error that is not valid UTF-8 (a remote
 * path in a legacy encoding) is stored as base64 under its name plus
 * "_b64", because JSON strings must be UTF-8. Readers ignore keys that
 * they do not know.
 * NOTE: the hook fields did not raise RECORD_VERSION, so an older agent
 * reads a record whose hook is pending and archives the file without
 * running the hook. */

/* Room for the description of a problem in a stored record. */
#define PROBLEM_MAX 256

static bool set_field(json_t *object, const char *name, json_t *value)
{
  return json_object_set_new(object, name, value) == 0;
}

/* Store text under name, or under name + "_b64" when it is not UTF-8.
 * NULL text is left out. */
static bool set_text_field(json_t *object, const char *name, const char *text)
{
  char b64_name[32];

  if (text == NULL)
    return true;
  if (utf8_valid(text, strlen(text), NULL))
    return set_field(object, name, json_string(text));

  char *encoded = names_base64(text, strlen(text));
  if (encoded == NULL)
    return false;
  snprintf(b64_name, sizeof(b64_name), "%s_b64", name);
  bool ok = set_field(object, b64_name, json_string(encoded));
  free(encoded);
  return ok;
}

/* Return the JSON text of record (malloc'd), or NULL when out of memory. */
static char *encode_record(const struct manifest_record *record)
{
  json_t *object = json_object();
  char *text = NULL;
  bool ok = object != NULL;

  ok = ok && set_field(object, "v", json_integer(RECORD_VERSION));
  ok = ok && set_field(object, "state",
                       json_string(manifest_state_name(record->state)));
  ok = ok && set_field(object, "size", json_integer((json_int_t)record->size));
  ok = ok && set_field(object, "mtime", json_integer(record->mtime));
  if (record->sha256[0] != '\0')
    ok = ok && set_field(object, "sha256", json_string(record->sha256));
  if (record->format[0] != '\0')
    ok = ok && set_field(object, "format", json_string(record->format));
  ok = ok && set_text_field(object, "output", record->output);
  ok = ok && set_text_field(object, "archive_path", record->archive_path);
  ok = ok && set_text_field(object, "reason", record->reason);
  ok = ok && set_field(object, "first_seen", json_integer(record->first_seen));
  ok = ok && set_field(object, "updated", json_integer(record->updated));
  ok = ok && set_field(object, "attempts", json_integer(record->attempts));
  if (record->hook_done)
    ok = ok && set_field(object, "hook_done", json_true());
  if (record->hook_attempts > 0)
    ok = ok && set_field(object, "hook_attempts",
                         json_integer(record->hook_attempts));
  if (record->hook_retry_at != 0)
    ok = ok && set_field(object, "hook_retry_at",
                         json_integer(record->hook_retry_at));
  ok = ok && set_text_field(object, "hook_error", record->hook_error);

  if (ok)
    text = json_dumps(object, JSON_COMPACT);
  json_decref(object);
  return text;
}

static bool is_sha256_hex(const char *text)
{
  for (size_t i = 0; i < 64; i++) {
    if (strchr("0123456789abcdef", text[i]) == NULL || text[i] == '\0')
      return false;
  }
  return text[64] == '\0';
}

/* Reject a record that the format cannot store or that would corrupt the
 * delivered table. */
static enum ag_code check_record(const struct manifest_record *record,
                                 const char *key_text, struct ag_error *err)
{
  const char *problem = NULL;

  if (record->state < MANIFEST_SEEN || record->state > MANIFEST_FAILED)
    problem = "its state is unknown";
  else if (record->sha256[0] != '\0' && !is_sha256_hex(record->sha256))
    problem = "its sha256 is not 64 lowercase hex digits";
  else if (memchr(record->format, '\0', sizeof(record->format)) == NULL)
    problem = "its format is not a terminated string";
  else if (!utf8_valid(record->format, strlen(record->format), NULL))
    problem = "its format is not UTF-8";
  else if (record->size > (uint64_t)INT64_MAX)
    problem = "its size is above 2^63 - 1";
  if (problem == NULL)
    return AG_OK;
  return ag_error_set(err, AG_ESTATE,
                      "failed to store the manifest record for '%s' because "
                      "%s. This is a bug in the agent.",
                      key_text, problem);
}

/* Read an integer field into *out, where a missing field reads as 0.
 * Returns false and describes the problem when the value is not an integer
 * from min to max. */
static bool read_integer(json_t *object, const char *name, int64_t min,
                         int64_t max, int64_t *out, char *problem)
{
  json_t *value = json_object_get(object, name);

  *out = 0;
  if (value == NULL)
    return true;
  if (!json_is_integer(value) || json_integer_value(value) < min ||
      json_integer_value(value) > max) {
    snprintf(problem, PROBLEM_MAX,
             "field '%s' is not an integer from "
             "%" PRId64 " to %" PRId64,
             name, min, max);
    return false;
  }
  *out = json_integer_value(value);
  return true;
}

/* Read a boolean field into *out, where a missing field reads as false. */
static bool read_boolean(json_t *object, const char *name, bool *out,
                         char *problem)
{
  json_t *value = json_object_get(object, name);

  *out = false;
  if (value == NULL)
    return true;
  if (!json_is_boolean(value)) {
    snprintf(problem, PROBLEM_MAX, "field '%s' is not true or false", name);
    return false;
  }
  *out = json_is_true(value);
  return true;
}

/* Copy a string field of fewer than out_size bytes into out, where a
 * missing field reads as "". */
static bool read_short_text(json_t *object, const char *name, char *out,
                            size_t out_size, char *problem)
{
  json_t *value = json_object_get(object, name);

  out[0] = '\0';
  if (value == NULL)
    return true;
  if (!json_is_string(value) || json_string_length(value) >= out_size) {
    snprintf(problem, PROBLEM_MAX,
             "field '%s' is not a string shorter than %zu bytes", name,
             out_size);
    return false;
  }
  memcpy(out, json_string_value(value), json_string_length(value) + 1);
  return true;
}

/* Decode base64 text into a malloc'd C string. Returns AG_ESTATE when the
 * text is not base64 of a string without NUL bytes. */
static enum ag_code decode_base64_text(const char *text, size_t len, char **out)
{
  size_t padding = 0;

  if (len % 4 != 0 || len > INT_MAX)
    return AG_ESTATE;
  unsigned char *bytes = malloc(len / 4 * 3 + 1);
  if (bytes == NULL)
    return AG_ENOMEM;

  /* EVP_DecodeBlock counts the padding as zero bytes. */
  int decoded = EVP_DecodeBlock(bytes, (const unsigned char *)text, (int)len);
  while (padding < len && padding < 2 && text[len - 1 - padding] == '=')
    padding++;
  if (decoded < 0 || (size_t)decoded < padding ||
      memchr(bytes, '\0', (size_t)decoded - padding) != NULL) {
    free(bytes);
    return AG_ESTATE;
  }
  bytes[(size_t)decoded - padding] = '\0';
  *out = (char *)bytes;
  return AG_OK;
}

/* Read a text field stored under name or name + "_b64" into a malloc'd
 * string, where a missing field reads as NULL. Returns AG_ESTATE with
 * problem set, or AG_ENOMEM. */
static enum ag_code read_text(json_t *object, const char *name, char **out,
                              char *problem)
{
  char b64_name[32];
  json_t *value = json_object_get(object, name);
  bool is_b64 = value == NULL;
  enum ag_code code;

  *out = NULL;
  snprintf(b64_name, sizeof(b64_name), "%s_b64", name);
  if (is_b64)
    value = json_object_get(object, b64_name);
  if (value == NULL)
    return AG_OK;
  if (!json_is_string(value)) {
    snprintf(problem, PROBLEM_MAX, "field '%s' is not a string",
             is_b64 ? b64_name : name);
    return AG_ESTATE;
  }

  if (is_b64) {
    code = decode_base64_text(json_string_value(value),
                              json_string_length(value), out);
  } else {
    size_t len = json_string_length(value);

    *out = malloc(len + 1);
    code = *out != NULL ? AG_OK : AG_ENOMEM;
    if (*out != NULL)
      memcpy(*out, json_string_value(value), len + 1);
  }
  if (code == AG_ESTATE)
    snprintf(problem, PROBLEM_MAX, "field '%s' is not valid base64 text",
             b64_name);
  return code;
}

/* Read "v" and "state", which every record must have. */
static bool read_version_and_state(json_t *object,
                                   struct manifest_record *record,
                                   char *problem)
{
  json_t *version = json_object_get(object, "v");
  const char *state = json_string_value(json_object_get(object, "state"));

  if (!json_is_integer(version) || json_integer_value(version) < 1) {
    snprintf(problem, PROBLEM_MAX, "it has no valid format version 'v'");
    return false;
  }
  if (json_integer_value(version) > RECORD_VERSION) {
    snprintf(problem, PROBLEM_MAX,
             "its format version %" JSON_INTEGER_FORMAT
             " is newer than this agent reads (%d)",
             json_integer_value(version), RECORD_VERSION);
    return false;
  }

  for (int i = MANIFEST_SEEN; state != NULL && i <= MANIFEST_FAILED; i++) {
    if (strcmp(state, manifest_state_name((enum manifest_state)i)) == 0) {
      record->state = (enum manifest_state)i;
      return true;
    }
  }
  snprintf(problem, PROBLEM_MAX, "it has no known state");
  return false;
}

/* Fill record from a JSON object. Returns AG_ESTATE with problem set, or
 * AG_ENOMEM. */
static enum ag_code read_fields(json_t *object, struct manifest_record *record,
                                char *problem)
{
  int64_t size = 0;
  int64_t attempts = 0;
  int64_t hook_attempts = 0;

  if (!read_version_and_state(object, record, problem) ||
      !read_integer(object, "size", 0, INT64_MAX, &size, problem) ||
      !read_integer(object, "mtime", INT64_MIN, INT64_MAX, &record->mtime,
                    problem) ||
      !read_integer(object, "first_seen", INT64_MIN, INT64_MAX,
                    &record->first_seen, problem) ||
      !read_integer(object, "updated", INT64_MIN, INT64_MAX, &record->updated,
                    problem) ||
      !read_integer(object, "attempts", 0, UINT32_MAX, &attempts, problem) ||
      !read_short_text(object, "sha256", record->sha256, sizeof(record->sha256),
                       problem) ||
      !read_short_text(object, "format", record->format, sizeof(record->format),
                       problem) ||
      !read_boolean(object, "hook_done", &record->hook_done, problem) ||
      !read_integer(object, "hook_attempts", 0, UINT32_MAX, &hook_attempts,
                    problem) ||
      !read_integer(object, "hook_retry_at", INT64_MIN, INT64_MAX,
                    &record->hook_retry_at, problem))
    return AG_ESTATE;
  record->size = (uint64_t)size;
  record->attempts = (uint32_t)attempts;
  record->hook_attempts = (uint32_t)hook_attempts;

  if (record->sha256[0] != '\0' && !is_sha256_hex(record->sha256)) {
    snprintf(problem, PROBLEM_MAX,
             "field 'sha256' is not 64 lowercase hex digits");
    return AG_ESTATE;
  }

  enum ag_code code = read_text(object, "output", &record->output, problem);
  if (code == AG_OK)
    code = read_text(object, "archive_path", &record->archive_path, problem);
  if (code == AG_OK)
    code = read_text(object, "reason", &record->reason, problem);
  if (code == AG_OK)
    code = read_text(object, "hook_error", &record->hook_error, problem);
  return code;
}

/* Decode the stored value of key into record. On failure the record is
 * left cleared and err names the key. */
static enum ag_code decode_record(const struct manifest *manifest,
                                  const MDB_val *key, const MDB_val *value,
                                  struct manifest_record *record,
                                  struct ag_error *err)
{
  char problem[PROBLEM_MAX] = "";
  char key_text[KEY_TEXT_MAX];
  json_error_t json_error;
  enum ag_code code = AG_ESTATE;

  memset(record, 0, sizeof(*record));
  json_t *object = json_loadb(value->mv_data, value->mv_size, 0, &json_error);
  if (object == NULL)
    snprintf(problem, sizeof(problem), "it is not JSON (%s)", json_error.text);
  else if (!json_is_object(object))
    snprintf(problem, sizeof(problem), "it is not a JSON object");
  else
    code = read_fields(object, record, problem);
  json_decref(object);
  if (code == AG_OK)
    return AG_OK;

  manifest_record_clear(record);
  log_escape(key_text, sizeof(key_text), key->mv_data, key->mv_size);
  if (code == AG_ENOMEM)
    return ag_error_set(err, AG_ENOMEM,
                        "out of memory while reading the manifest record "
                        "for '%s'",
                        key_text);
  return ag_error_set(err, AG_ESTATE,
                      "manifest '%s' has an invalid record for '%s' because "
                      "%s. %s",
                      manifest->db_path, key_text, problem, rebuild_advice);
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

enum ag_code manifest_open(const char *state_dir, struct manifest **out,
                           struct ag_error *err)
{
  struct manifest *manifest = calloc(1, sizeof(*manifest));
  bool has_marker = false;
  enum ag_code code = AG_OK;

  *out = NULL;
  if (manifest == NULL)
    return fail_nomem(err, "opening the manifest");
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
  if (code == AG_OK && has_marker)
    code = check_manifest_file(manifest, err);
  if (code == AG_OK)
    code = open_env(manifest, has_marker, err);
  if (code == AG_OK)
    code = open_tables(manifest, has_marker, err);
  if (code != AG_OK)
    goto fail;

  /* The marker comes after the manifest's first commit, so a crash in
   * between leaves a manifest without a marker, which is safe. */
  if (!has_marker) {
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
    code = decode_record(manifest, &lookup, &value, record, err);
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
  MDB_val version; /* mv_data is NULL unless the delivered table changes */
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

  int rc = mdb_put(txn, manifest->files, &key, &value, 0);
  if (rc != MDB_SUCCESS || version.mv_data == NULL)
    return rc;
  return mdb_put(txn, manifest->delivered, &version, &key, 0);
}

enum ag_code manifest_put(struct manifest *manifest, const void *key,
                          size_t key_len, const struct manifest_record *record,
                          struct ag_error *err)
{
  struct put_request request = {{key_len, (void *)key}, {0, NULL}, {0, NULL}};
  char key_text[KEY_TEXT_MAX];

  log_escape(key_text, sizeof(key_text), key, key_len);
  enum ag_code code = check_key(manifest, key, key_len, err);
  if (code == AG_OK)
    code = check_record(record, key_text, err);
  if (code != AG_OK)
    return code;

  char *text = encode_record(record);
  if (text == NULL)
    return fail_nomem(err, "encoding a manifest record");
  request.value.mv_size = strlen(text);
  request.value.mv_data = text;
  unsigned char version[32];
  if (record->state == MANIFEST_DELIVERED && record->sha256[0] != '\0') {
    if (version_key(record->sha256, key, key_len, version) != 0) {
      free(text);
      return fail_nomem(err, "hashing a delivered version");
    }
    request.version.mv_size = sizeof(version);
    request.version.mv_data = version;
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
  return copy_text(record->output, &out->output) &&
         copy_text(record->archive_path, &out->archive_path) &&
         copy_text(record->reason, &out->reason) &&
         copy_text(record->hook_error, &out->hook_error);
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
    code = check_record(record, key_text, err);
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
      put->value = encode_record(record);
      if (put->value == NULL)
        return fail_nomem(err, "encoding a manifest record");
    }
    put->has_version =
        record->state == MANIFEST_DELIVERED && record->sha256[0] != '\0';
    if (put->has_version &&
        version_key(record->sha256, put->key, put->key_len, put->version) != 0)
      return fail_nomem(err, "hashing a delivered version");
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

    if (!put->superseded) {
      MDB_val value = {strlen(put->value), put->value};
      rc = mdb_put(txn, manifest->files, &key, &value, 0);
    }
    if (rc == MDB_SUCCESS && put->has_version)
      rc = mdb_put(txn, manifest->delivered, &version, &key, 0);
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
  if (strnlen(sha256, 65) != 64 || !is_sha256_hex(sha256))
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
    code = decode_record(manifest, &key, &value, &record, err);
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
  if (rename(path, target) != 0 && errno != ENOENT)
    code = ag_error_set(err, AG_ELOCAL, "cannot rename '%s' to '%s': %s", path,
                        target, strerror(errno));
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

  if (db_path == NULL || lock_path == NULL || marker_path == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  snprintf(suffix, sizeof(suffix), ".broken-%lld", (long long)time(NULL));
  code = rename_aside(db_path, suffix, err);
  if (code == AG_OK)
    code = rename_aside(lock_path, suffix, err);
  if (code == AG_OK && unlink(marker_path) != 0 && errno != ENOENT)
    code = ag_error_set(err, AG_ELOCAL, "cannot remove '%s': %s", marker_path,
                        strerror(errno));

out:
  free(db_path);
  free(lock_path);
  free(marker_path);
  return code;
}
