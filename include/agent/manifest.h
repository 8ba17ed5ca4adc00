/* The manifest: what the agent has done with each remote file, in LMDB.
 *
 * The key is the file's path relative to the inbox, in the raw bytes the
 * server sent. Every write is one committed, synced LMDB transaction, so a
 * record on disk always describes a step that has already happened. A
 * batch (manifest_batch_new()) stores the records of several files in one
 * such transaction.
 *
 * A second table contains each (key, content SHA-256) pair delivered, with
 * its delivery time, so an identical re-upload under the same name is
 * recognised even after the name's record was replaced by other versions
 * or removed by retention (manifest_prune_records()). That table has a
 * retention of its own (manifest_prune_versions()).
 *
 * The state folder also contains a marker (agent-id) written once the
 * manifest exists. A marker without a readable manifest means the
 * manifest was lost, and manifest_open() refuses to start afresh.
 *
 * Threads: a manifest may be used by several threads at once. Reads run
 * side by side; writes wait for each other (LMDB allows one write
 * transaction at a time). manifest_close() must come after the last call
 * of every thread. */
#ifndef AGENT_MANIFEST_H
#define AGENT_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/error.h"

enum manifest_state {
  MANIFEST_SEEN = 1,   /* listed and stable; processing has started */
  MANIFEST_DOWNLOADED, /* content downloaded and hashed (sha256 set) */
  MANIFEST_DELIVERED,  /* output published; remote move still to do */
  MANIFEST_ARCHIVED,   /* moved, deleted or kept as configured: done */
  MANIFEST_FAILED      /* moved to the error folder with a reason */
};

/* Size of an array indexed by enum manifest_state, where index 0 is unused. */
#define MANIFEST_STATE_COUNT (MANIFEST_FAILED + 1)

struct manifest_record {
  enum manifest_state state;
  uint64_t size;      /* remote size when taken */
  int64_t mtime;      /* remote mtime when taken, Unix seconds */
  char sha256[65];    /* lowercase hex of the content, "" if not known */
  char format[16];    /* "xml", "csv", "json", "passthrough", or "" */
  char *output;       /* output file name in output_dir, or NULL */
  char *archive_path; /* remote path it was (or is being) moved to */
  char *reason;       /* why it failed, or NULL */
  int64_t first_seen; /* wall clock, Unix seconds */
  int64_t updated;    /* wall clock of the last change */
  uint32_t attempts;  /* how many times processing was started */

  /* The post-delivery hook ([hook] exec) of a delivered output. Records
   * written before the hook existed read as false, 0, 0 and NULL. */
  bool hook_done;         /* the hook succeeded for this output */
  uint32_t hook_attempts; /* failed runs of the hook */
  int64_t hook_retry_at;  /* wall clock, Unix seconds: no run before it */
  char *hook_error;       /* why the last run failed, printable, or NULL */

  /* The remote step (move to the archive, or delete) of a delivered file.
   * Records written before these fields existed read as 0 and NULL. */
  uint32_t archive_attempts; /* failed attempts at the remote step */
  char *archive_error;       /* why the last attempt failed, or NULL */
  /* With [remote] claim_dir: the remote path of the file in the agent's
   * claim folder, where it is downloaded and moved from. NULL when the
   * file was taken from the inbox without a claim. */
  char *claim_path;
  /* The publication intent: set in a DOWNLOADED record whose output is
   * written and synced under these temporary names in output_dir, just
   * before they are renamed to output (and output + ".json" for the
   * sidecar of a passthrough copy). After a crash, a temporary file that
   * is gone was renamed. NULL otherwise. */
  char *output_temp;
  char *sidecar_temp;
};

struct manifest;

/* Open or create the manifest in state_dir (which must exist), and write
 * the marker if it is missing. Errors: AG_ESTATELOST when state_dir has the
 * marker but the manifest is missing or unreadable (the message names both
 * ways out), AG_ELOCAL when the marker cannot be read or written, AG_ESTATE
 * for other LMDB failures. */
enum ag_code manifest_open(const char *state_dir, struct manifest **out,
                           struct ag_error *err);

/* Open the existing manifest in state_dir for reading, without the state
 * folder's lock and without changing anything: no marker is written, no
 * table is created, and an older schema version is read as it is instead
 * of being migrated. Functions that write fail with AG_ESTATE. For status,
 * sync --dry-run, backup and requests queued for a running agent. Errors
 * as for manifest_open(), and AG_ESTATE when neither the manifest nor the
 * marker exists yet. */
enum ag_code manifest_open_read_only(const char *state_dir,
                                     struct manifest **out,
                                     struct ag_error *err);

/* Move a lost or unreadable manifest out of the way so that the next
 * manifest_open() starts afresh: manifest.mdb and its lock file are
 * renamed with the suffix ".broken-<Unix time>", and the marker is
 * removed. Files that are missing are fine. Must not be called while the
 * manifest is open. Error: AG_ELOCAL, naming the file. */
enum ag_code manifest_set_aside(const char *state_dir, struct ag_error *err);

/* Close the manifest. Accepts NULL. */
void manifest_close(struct manifest *manifest);

/* Maximum key length in bytes: LMDB's default maximum key size. */
#define MANIFEST_KEY_MAX 511

/* Look up key. Sets *found and, when found, fills record; the caller frees
 * it with manifest_record_clear(). Keys are 1 to 511 bytes, LMDB's maximum
 * key size, and other lengths give AG_ESTATE, also in manifest_put(). A
 * stored record that cannot be decoded gives AG_ESTATE naming the key. */
enum ag_code manifest_get(struct manifest *manifest, const void *key,
                          size_t key_len, struct manifest_record *record,
                          bool *found, struct ag_error *err);

/* Store record under key (replacing any earlier record) in one durable
 * transaction. When record->state is MANIFEST_DELIVERED and sha256 is set,
 * the same transaction adds the hash to the delivered-versions table, or
 * renews it there, with record->updated (the current time when 0) as its
 * delivery time. The map grows when it is full, up to 1 GiB, and beyond
 * that the put fails with AG_ESTATE. */
enum ag_code manifest_put(struct manifest *manifest, const void *key,
                          size_t key_len, const struct manifest_record *record,
                          struct ag_error *err);

/* Writes collected for one durable transaction, so that one commit (and
 * its syncs) serves the records of many files. A batch belongs to one
 * thread at a time. */
struct manifest_batch;

/* Start an empty batch for manifest. Error: AG_ENOMEM. */
enum ag_code manifest_batch_new(struct manifest *manifest,
                                struct manifest_batch **out,
                                struct ag_error *err);

/* Add a put of record under key, checked now as manifest_put() does, with
 * the same errors. The batch keeps its own copy, so record may change
 * after the call. Puts are stored in the order they were added, so a
 * later put of the same key replaces an earlier one; the commit skips the
 * replaced record, but keeps the delivered version of a DELIVERED put. */
enum ag_code manifest_batch_put(struct manifest_batch *batch, const void *key,
                                size_t key_len,
                                const struct manifest_record *record,
                                struct ag_error *err);

/* Return the number of puts added since the last commit. */
size_t manifest_batch_count(const struct manifest_batch *batch);

/* Store every put of batch in one durable transaction and empty the batch.
 * An empty batch commits nothing. On failure nothing is stored, the batch
 * keeps its puts and the error is AG_ESTATE, as for manifest_put(). */
enum ag_code manifest_batch_commit(struct manifest_batch *batch,
                                   struct ag_error *err);

/* Free a batch and the puts it still holds. Accepts NULL. */
void manifest_batch_free(struct manifest_batch *batch);

/* Set *found to whether the content with this SHA-256 (lowercase hex) was
 * delivered under key, even if the key's record was replaced or removed
 * since, unless manifest_prune_versions() removed the version. */
enum ag_code manifest_was_delivered(struct manifest *manifest,
                                    const char *sha256, const void *key,
                                    size_t key_len, bool *found,
                                    struct ag_error *err);

/* Called for each record in key order. Return AG_OK to go on. */
typedef enum ag_code (*manifest_each_fn)(void *ctx, const void *key,
                                         size_t key_len,
                                         const struct manifest_record *record);

/* Call fn for each record, inside one read transaction. fn must not call
 * other manifest functions, because LMDB allows one transaction per thread.
 * A code other than AG_OK from fn stops the walk and is returned without
 * touching err. */
enum ag_code manifest_foreach(struct manifest *manifest, manifest_each_fn fn,
                              void *ctx, struct ag_error *err);

/* Free the strings of a record and reset it to zeros. */
void manifest_record_clear(struct manifest_record *record);

/* Return the lowercase name of a state ("seen", "delivered", ...). */
const char *manifest_state_name(enum manifest_state state);

/* Return the agent id: 32 lowercase hex digits, stored in the marker. The
 * string belongs to the manifest and is valid until manifest_close(). */
const char *manifest_agent_id(const struct manifest *manifest);

/* Count the records in each state, for the status command. counts is
 * indexed by enum manifest_state, and counts[0] is set to 0. Errors as for
 * manifest_foreach(). */
enum ag_code manifest_counts(struct manifest *manifest,
                             size_t counts[MANIFEST_STATE_COUNT],
                             struct ag_error *err);

/* Maximum sizes in bytes of a key and of a value in the meta table. */
#define MANIFEST_META_KEY_MAX 64
#define MANIFEST_META_VALUE_MAX 1024

/* Store the text value under key in the meta table, replacing an earlier
 * value, in one durable transaction. key is 1 to 64 bytes and value at
 * most 1024 bytes. The keys schema_version and created_at belong to the
 * manifest itself and give AG_ESTATE, as do other LMDB failures. */
enum ag_code manifest_set_meta(struct manifest *manifest, const char *key,
                               const char *value, struct ag_error *err);

/* Look up key in the meta table. Stores a malloc'd, NUL-terminated copy of
 * its value in *value_out, which the caller frees, or NULL when the key is
 * not set. Errors: AG_ESTATE, AG_ENOMEM. */
enum ag_code manifest_get_meta(struct manifest *manifest, const char *key,
                               char **value_out, struct ag_error *err);

/* Remove the record of key in one durable transaction, and set *found to
 * whether there was one. The delivered-versions table keeps what was
 * delivered under key, so identical content uploaded again under that name
 * is still archived without a second delivery. Key limits and errors as
 * for manifest_get(). */
enum ag_code manifest_delete(struct manifest *manifest, const void *key,
                             size_t key_len, bool *found, struct ag_error *err);

/* ---- Retention (manifest_prune.c) ---- */

/* Bounds of one manifest_prune_records() or manifest_prune_versions()
 * call, so that no write transaction of it lasts long. */
struct manifest_prune_limits {
  size_t batch_size;   /* entries examined per write transaction, 1 or more */
  int64_t deadline_ms; /* plat_monotonic_ms() after which no further batch
                          starts, or 0 for none */
};

/* The bit of state in a mask for manifest_prune_records(). */
#define MANIFEST_STATE_BIT(state) (1u << (state))

/* Remove the records whose state is in the mask states (built with
 * MANIFEST_STATE_BIT()) and whose updated time is before the Unix time
 * before. The delivered-versions table is not touched. Works in batches,
 * each examining up to limits->batch_size records in its own durable
 * write transaction, and starts no batch after limits->deadline_ms. Adds
 * the number removed to *removed and sets *complete to whether the whole
 * table was examined. A record that cannot be decoded is kept, because
 * status and manifest_foreach() report it. Errors: AG_ESTATE,
 * AG_ESTATELOST, AG_ENOMEM. */
enum ag_code manifest_prune_records(struct manifest *manifest, unsigned states,
                                    int64_t before,
                                    const struct manifest_prune_limits *limits,
                                    size_t *removed, bool *complete,
                                    struct ag_error *err);

/* Remove the delivered versions whose delivery time is before the Unix
 * time before, in batches as manifest_prune_records() does. An identical
 * re-upload of a removed version is delivered again. Adds the number
 * removed to *removed and sets *complete. Errors as for
 * manifest_prune_records(). */
enum ag_code manifest_prune_versions(struct manifest *manifest, int64_t before,
                                     const struct manifest_prune_limits *limits,
                                     size_t *removed, bool *complete,
                                     struct ag_error *err);

/* ---- Backup (manifest_backup.c) ---- */

/* Flags for manifest_backup(). */
enum manifest_backup_flags {
  MANIFEST_BACKUP_REPLACE = 1 /* replace an existing file at dest */
};

/* Write a consistent, compacted copy of the manifest to the file dest, a
 * complete LMDB file that can replace manifest.mdb. The copy reads one
 * snapshot in a read transaction, so it works while another process (the
 * running agent) writes, without blocking that writer. When LMDB cannot
 * compact, a plain copy is written, which holds LMDB's writer lock only
 * while it reads the meta pages. The copy goes to a temporary file beside
 * dest (mode 0600), which is synced and then renamed to dest, and the
 * folder is synced. An existing dest is replaced
 * only with MANIFEST_BACKUP_REPLACE. Stores the size of the copy in
 * *bytes. Errors: AG_EUSAGE when dest exists (or is a folder), AG_ELOCAL
 * for the file, AG_ESTATE or AG_ESTATELOST for the manifest. */
enum ag_code manifest_backup(struct manifest *manifest, const char *dest,
                             unsigned flags, uint64_t *bytes,
                             struct ag_error *err);

#endif
