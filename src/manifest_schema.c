/* The manifest's schema version and the migration from older versions.
 *
 * The meta table stores schema_version as decimal text. Version 1 stored
 * the file key as the value of each delivered version. Version 2 stores
 * its delivery time instead (MANIFEST_DELIVERED_VALUE_SIZE bytes), so that
 * delivered versions can expire. An older manifest is migrated when the
 * agent opens it for writing. A newer one is rejected, because this agent
 * cannot know what the newer release changed. */
#include "manifest_internal.h"

#include "agent/log.h"
#include "agent/platform.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The oldest schema version that this agent can migrate. */
#define SCHEMA_OLDEST 1

void manifest_encode_time(int64_t t,
                          unsigned char out[MANIFEST_DELIVERED_VALUE_SIZE])
{
  uint64_t bits = (uint64_t)t;

  for (int i = MANIFEST_DELIVERED_VALUE_SIZE - 1; i >= 0; i--) {
    out[i] = (unsigned char)(bits & 0xFF);
    bits >>= 8;
  }
}

bool manifest_decode_time(const MDB_val *value, int64_t *t)
{
  const unsigned char *bytes = value->mv_data;
  uint64_t bits = 0;

  if (value->mv_size != MANIFEST_DELIVERED_VALUE_SIZE)
    return false;
  for (size_t i = 0; i < MANIFEST_DELIVERED_VALUE_SIZE; i++)
    bits = bits << 8 | bytes[i];
  *t = (int64_t)bits;
  return true;
}

/* Parse a stored schema version. Returns 0 when it is not a decimal
 * number from 1 to 9999. */
static int parse_version(const MDB_val *value)
{
  const char *text = value->mv_data;
  int version = 0;

  if (value->mv_size == 0 || value->mv_size > 4)
    return 0;
  for (size_t i = 0; i < value->mv_size; i++) {
    if (text[i] < '0' || text[i] > '9')
      return 0;
    version = version * 10 + (text[i] - '0');
  }
  return version;
}

static int put_version(struct manifest *manifest, MDB_txn *txn, int version)
{
  char text[16];

  snprintf(text, sizeof(text), "%d", version);
  MDB_val key = {sizeof(META_SCHEMA_KEY) - 1, META_SCHEMA_KEY};
  MDB_val value = {strlen(text), text};
  return mdb_put(txn, manifest->meta, &key, &value, 0);
}

/* Store schema_version and created_at in a new manifest. */
static int write_meta(struct manifest *manifest, MDB_txn *txn)
{
  char created[32];

  snprintf(created, sizeof(created), "%" PRId64, (int64_t)time(NULL));
  MDB_val created_key = {sizeof(META_CREATED_KEY) - 1, META_CREATED_KEY};
  MDB_val created_value = {strlen(created), created};

  int rc = put_version(manifest, txn, MANIFEST_SCHEMA_VERSION);
  if (rc == MDB_SUCCESS)
    rc = mdb_put(txn, manifest->meta, &created_key, &created_value, 0);
  return rc;
}

enum ag_code manifest_schema_read(struct manifest *manifest, MDB_txn *txn,
                                  bool has_marker, bool create,
                                  struct ag_error *err)
{
  MDB_val key = {sizeof(META_SCHEMA_KEY) - 1, META_SCHEMA_KEY};
  MDB_val value;
  char shown[32];
  char action[AG_ERROR_MESSAGE_MAX];

  int rc = mdb_get(txn, manifest->meta, &key, &value);
  if (rc == MDB_NOTFOUND && has_marker)
    return ag_error_set(err, AG_ESTATELOST,
                        "state folder '%s' has the agent-id marker of "
                        "earlier runs, but its manifest.mdb has no schema "
                        "version. " MANIFEST_REBUILD_ADVICE,
                        manifest->state_dir);
  if (rc == MDB_NOTFOUND && create) {
    rc = write_meta(manifest, txn);
    manifest->schema_version = MANIFEST_SCHEMA_VERSION;
  }
  if (rc != MDB_SUCCESS) {
    snprintf(action, sizeof(action), "read the schema version of manifest '%s'",
             manifest->db_path);
    return manifest_fail_mdb(err, rc, action);
  }
  if (manifest->schema_version != 0)
    return AG_OK;

  int version = parse_version(&value);
  if (version < SCHEMA_OLDEST)
    return ag_error_set(
        err, AG_ESTATELOST,
        "manifest '%s' has an invalid schema version '%s'. "
        "%s",
        manifest->db_path,
        log_escape(shown, sizeof(shown), value.mv_data, value.mv_size),
        MANIFEST_REBUILD_ADVICE);
  if (version > MANIFEST_SCHEMA_VERSION)
    return ag_error_set(
        err, AG_ESTATE,
        "manifest '%s' has schema version '%s', but this agent reads "
        "versions %d to %d. A newer agent release wrote it: run that "
        "release, or restore a backup that this release wrote.",
        manifest->db_path,
        log_escape(shown, sizeof(shown), value.mv_data, value.mv_size),
        SCHEMA_OLDEST, MANIFEST_SCHEMA_VERSION);
  manifest->schema_version = version;
  return AG_OK;
}

/* The state of one migration step. */
struct migration {
  int64_t now;       /* the delivery time given to every existing version */
  size_t *converted; /* versions rewritten, for the log */
};

/* Version 1 to 2: replace the file key stored as each delivered version's
 * value with a delivery time. The real time was not stored, so each
 * version counts as delivered at the migration, and delivered-hash
 * retention keeps it at least that long. */
static int migrate_step(struct manifest *manifest, MDB_txn *txn,
                        const void *ctx)
{
  const struct migration *migration = ctx;
  unsigned char stamp[MANIFEST_DELIVERED_VALUE_SIZE];
  MDB_cursor *cursor = NULL;
  MDB_val key;
  MDB_val value;

  *migration->converted = 0;
  manifest_encode_time(migration->now, stamp);
  int rc = mdb_cursor_open(txn, manifest->delivered, &cursor);
  if (rc == MDB_SUCCESS)
    rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
  while (rc == MDB_SUCCESS) {
    unsigned char key_copy[MANIFEST_KEY_MAX];
    MDB_val stamped = {sizeof(stamp), stamp};

    /* key points into the page that the put rewrites, so the put gets a
     * copy of it. */
    if (key.mv_size > sizeof(key_copy)) {
      rc = MDB_BAD_VALSIZE;
      break;
    }
    memcpy(key_copy, key.mv_data, key.mv_size);
    key.mv_data = key_copy;
    rc = mdb_cursor_put(cursor, &key, &stamped, MDB_CURRENT);
    if (rc == MDB_SUCCESS) {
      (*migration->converted)++;
      rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT);
    }
  }
  if (cursor != NULL)
    mdb_cursor_close(cursor);
  if (rc != MDB_NOTFOUND)
    return rc;
  return put_version(manifest, txn, MANIFEST_SCHEMA_VERSION);
}

enum ag_code manifest_schema_migrate(struct manifest *manifest,
                                     struct ag_error *err)
{
  size_t converted = 0;
  struct migration migration = {plat_wall_time(), &converted};
  char action[AG_ERROR_MESSAGE_MAX];
  int from = manifest->schema_version;

  if (from == MANIFEST_SCHEMA_VERSION)
    return AG_OK;

  /* NOTE: one transaction rewrites every delivered version. LMDB limits
   * the pages that one transaction may change, so by estimate a table of
   * millions of versions may fail with MDB_TXN_FULL, which changes
   * nothing. No test has tried that size. */
  int rc = manifest_write(manifest, migrate_step, &migration);
  if (rc != MDB_SUCCESS) {
    snprintf(action, sizeof(action),
             "migrate manifest '%s' from schema version %d to %d",
             manifest->db_path, from, MANIFEST_SCHEMA_VERSION);
    return manifest_fail_mdb(err, rc, action);
  }
  manifest->schema_version = MANIFEST_SCHEMA_VERSION;
  log_info("migrated manifest '%s' from schema version %d to %d; its %zu "
           "delivered versions count as delivered now for "
           "delivered_hash_retention_days",
           manifest->db_path, from, MANIFEST_SCHEMA_VERSION, converted);
  return AG_OK;
}
