/* Internals shared by the manifest's source files; not part of the public
 * API. manifest.c opens the LMDB environment and stores records,
 * manifest_record.c is the JSON record format, manifest_schema.c checks
 * and migrates the schema version, manifest_prune.c applies retention and
 * manifest_backup.c writes backup copies. */
#ifndef AGENT_MANIFEST_INTERNAL_H
#define AGENT_MANIFEST_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <lmdb.h>

#include "agent/manifest.h"
#include "agent/platform.h"

#define AGENT_ID_BYTES 16

/* Room for a key escaped with log_escape() in a message. */
#define KEY_TEXT_MAX 256

/* The two ways out of a lost or unreadable manifest, for messages. */
#define MANIFEST_REBUILD_ADVICE                                                \
  "Restore the manifest from a backup, or run `rossum-sftp-agent sync "        \
  "--rebuild-manifest` to start afresh, which delivers files still in the "    \
  "inbox again."

/* The schema version that this agent writes. Version 1 stored the file key
 * as the value of each delivered version; version 2 stores the delivery
 * time, which delivered-hash retention needs. */
#define MANIFEST_SCHEMA_VERSION 2

/* Keys in the meta table that belong to the manifest itself. */
#define META_SCHEMA_KEY "schema_version"
#define META_CREATED_KEY "created_at"

/* Bytes of a delivered version's value: its delivery time in Unix seconds,
 * as a big-endian signed 64-bit integer. */
#define MANIFEST_DELIVERED_VALUE_SIZE 8

struct manifest {
  MDB_env *env;
  MDB_dbi files;
  MDB_dbi delivered;
  MDB_dbi meta;
  size_t map_size;
  /* The gate that lets a map resize wait until no thread of this process
   * has a transaction open (manifest.c, gate_enter()). Every transaction
   * of manifest.c, manifest_prune.c and manifest_schema.c passes it. */
  struct plat_mutex *gate_lock;
  struct plat_cond *gate_changed;
  size_t open_txns; /* transactions open in any thread */
  bool resizing;    /* a thread waits for open_txns 0 or resizes */
  char *state_dir;
  char *db_path;
  char *marker_path;
  char agent_id[2 * AGENT_ID_BYTES + 1];
  bool read_only;     /* opened by manifest_open_read_only() */
  int schema_version; /* as stored in the meta table */
};

/* A step that runs inside a write transaction and returns an LMDB code. */
typedef int (*write_step_fn)(struct manifest *manifest, MDB_txn *txn,
                             const void *ctx);

/* ---- manifest.c ---- */

/* Run step in a write transaction and commit it durably. When the map is
 * full, the transaction is aborted, the map grows and step runs again, so
 * step must start from the same state each time. Returns an LMDB code;
 * EACCES for a manifest opened read-only. */
int manifest_write(struct manifest *manifest, write_step_fn step,
                   const void *ctx);

/* Record the LMDB or errno code rc as AG_ESTATE, or as AG_ESTATELOST for
 * a code that means the file is damaged. action describes what failed, such as
 * "open manifest '/x/manifest.mdb'". Returns the code recorded. */
enum ag_code manifest_fail_mdb(struct ag_error *err, int rc,
                               const char *action);

/* ---- manifest_record.c ---- */

/* Return the JSON text of record (malloc'd), or NULL when out of memory. */
char *manifest_record_encode(const struct manifest_record *record);

/* Reject a record that the format cannot store or that would corrupt the
 * delivered table, with AG_ESTATE naming key_text. */
enum ag_code manifest_record_check(const struct manifest_record *record,
                                   const char *key_text, struct ag_error *err);

/* Decode the stored value of key into record. On failure the record is
 * left cleared and err names the key: AG_ESTATE or AG_ENOMEM. */
enum ag_code manifest_record_decode(const struct manifest *manifest,
                                    const MDB_val *key, const MDB_val *value,
                                    struct manifest_record *record,
                                    struct ag_error *err);

/* Return whether text is 64 lowercase hex digits and a NUL. */
bool manifest_is_sha256_hex(const char *text);

/* ---- manifest_schema.c ---- */

/* Read the schema version from the meta table into
 * manifest->schema_version, or write the current one into a new manifest
 * when create is set. A missing version means a lost manifest when
 * has_marker is set. A version newer than this agent's gives AG_ESTATE. */
enum ag_code manifest_schema_read(struct manifest *manifest, MDB_txn *txn,
                                  bool has_marker, bool create,
                                  struct ag_error *err);

/* Bring a manifest of an older schema version up to the current one in a
 * single durable transaction, so that a crash leaves either the old or the
 * new form. Does nothing when the version is current. Errors: AG_ESTATE,
 * AG_ESTATELOST. */
enum ag_code manifest_schema_migrate(struct manifest *manifest,
                                     struct ag_error *err);

/* Store t as a delivered version's value. */
void manifest_encode_time(int64_t t,
                          unsigned char out[MANIFEST_DELIVERED_VALUE_SIZE]);

/* Read a delivered version's value into *t. Returns false when the value
 * does not have MANIFEST_DELIVERED_VALUE_SIZE bytes. */
bool manifest_decode_time(const MDB_val *value, int64_t *t);

#endif
