/* Retention: removing old records and delivered versions in short write
 * transactions, so that a large removal never keeps other writers (the
 * agent's next record, a request from another process) waiting for long.
 * A pass that runs out of time stops between two batches, and the next
 * call examines the table again from its start. */
#include "manifest_internal.h"

#include "agent/platform.h"

#include <stdio.h>
#include <string.h>

/* The outcome of one batch, written by prune_step(). */
struct prune_progress {
  unsigned char next_key[MANIFEST_KEY_MAX]; /* where the next batch starts */
  size_t next_len;
  size_t removed;
  bool complete; /* the batch reached the end of the table */
};

/* The entries that one batch removes, and its starting point. */
struct prune_batch {
  bool versions;   /* the delivered table; otherwise the files table */
  unsigned states; /* files table: MANIFEST_STATE_BIT() mask */
  int64_t before;  /* Unix seconds: older entries are removed */
  size_t batch_size;
  const unsigned char *resume; /* key to start at, when resume_len > 0 */
  size_t resume_len;
  struct prune_progress *progress;
};

/* Return whether the entry key, value of the batch's table is old enough
 * to go. An entry that cannot be decoded is kept. */
static bool is_expired(const struct manifest *manifest,
                       const struct prune_batch *batch, const MDB_val *key,
                       const MDB_val *value)
{
  struct manifest_record record = {0};
  struct ag_error ignored = {0};
  int64_t delivered_at = 0;

  if (batch->versions)
    return manifest_decode_time(value, &delivered_at) &&
           delivered_at < batch->before;

  if (manifest_record_decode(manifest, key, value, &record, &ignored) != AG_OK)
    return false;
  bool expired = (batch->states & MANIFEST_STATE_BIT(record.state)) != 0 &&
                 record.updated < batch->before;
  manifest_record_clear(&record);
  return expired;
}

/* Examine up to batch_size entries from the resume key on and remove the
 * expired ones. It may run again after the map grew, so it resets its
 * progress first. */
static int prune_step(struct manifest *manifest, MDB_txn *txn, const void *ctx)
{
  const struct prune_batch *batch = ctx;
  struct prune_progress *progress = batch->progress;
  MDB_dbi table = batch->versions ? manifest->delivered : manifest->files;
  MDB_cursor *cursor = NULL;
  MDB_val key = {batch->resume_len, (void *)batch->resume};
  MDB_val value;
  size_t examined = 0;

  memset(progress, 0, sizeof(*progress));
  int rc = mdb_cursor_open(txn, table, &cursor);
  if (rc == MDB_SUCCESS)
    rc = mdb_cursor_get(cursor, &key, &value,
                        batch->resume_len > 0 ? MDB_SET_RANGE : MDB_FIRST);
  while (rc == MDB_SUCCESS && examined < batch->batch_size) {
    examined++;
    if (is_expired(manifest, batch, &key, &value)) {
      rc = mdb_cursor_del(cursor, 0);
      if (rc != MDB_SUCCESS)
        break;
      progress->removed++;
    }
    /* After mdb_cursor_del(), MDB_NEXT returns the entry that followed
     * the removed one. */
    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT);
  }

  if (rc == MDB_SUCCESS && key.mv_size > sizeof(progress->next_key)) {
    rc = MDB_BAD_VALSIZE;
  } else if (rc == MDB_SUCCESS) {
    memcpy(progress->next_key, key.mv_data, key.mv_size);
    progress->next_len = key.mv_size;
  } else if (rc == MDB_NOTFOUND) {
    progress->complete = true;
    rc = MDB_SUCCESS;
  }
  if (cursor != NULL)
    mdb_cursor_close(cursor);
  return rc;
}

/* Run batches over one table until it is done or the deadline passed.
 * versions, states and before are as in struct prune_batch. */
static enum ag_code prune_table(struct manifest *manifest, bool versions,
                                unsigned states, int64_t before,
                                const struct manifest_prune_limits *limits,
                                size_t *removed, bool *complete,
                                struct ag_error *err)
{
  unsigned char resume[MANIFEST_KEY_MAX];
  struct prune_progress progress = {0};
  struct prune_batch batch = {
      .versions = versions,
      .states = states,
      .before = before,
      .batch_size = limits->batch_size > 0 ? limits->batch_size : 1,
      .resume = resume,
      .resume_len = 0,
      .progress = &progress,
  };
  char action[AG_ERROR_MESSAGE_MAX];

  *complete = false;
  for (;;) {
    int rc = manifest_write(manifest, prune_step, &batch);
    if (rc != MDB_SUCCESS) {
      snprintf(action, sizeof(action), "remove expired %s from manifest '%s'",
               versions ? "delivered versions" : "records", manifest->db_path);
      return manifest_fail_mdb(err, rc, action);
    }
    *removed += progress.removed;
    if (progress.complete) {
      *complete = true;
      return AG_OK;
    }
    memcpy(resume, progress.next_key, progress.next_len);
    batch.resume_len = progress.next_len;
    if (limits->deadline_ms > 0 && plat_monotonic_ms() >= limits->deadline_ms)
      return AG_OK;
  }
}

enum ag_code manifest_prune_records(struct manifest *manifest, unsigned states,
                                    int64_t before,
                                    const struct manifest_prune_limits *limits,
                                    size_t *removed, bool *complete,
                                    struct ag_error *err)
{
  return prune_table(manifest, false, states, before, limits, removed, complete,
                     err);
}

enum ag_code manifest_prune_versions(struct manifest *manifest, int64_t before,
                                     const struct manifest_prune_limits *limits,
                                     size_t *removed, bool *complete,
                                     struct ag_error *err)
{
  return prune_table(manifest, true, 0, before, limits, removed, complete, err);
}
