/* Group commit of manifest records: workers fill one batch while the
 * recorder thread commits the other. */
#include "recorder.h"

#include <stdlib.h>

#include "agent/atomic_file.h"
#include "agent/fault.h"
#include "agent/log.h"
#include "agent/platform.h"

struct recorder {
  struct manifest *manifest;
  const char *output_dir;
  /* The output folder's file system, opened before any output of the
   * pass was written, or NULL where it cannot be synced as a whole. */
  struct plat_file_system *output_fs;
  struct plat_thread *thread;

  struct plat_mutex *lock;     /* guards every field below */
  struct plat_cond *queued;    /* a put arrived, or stop was requested */
  struct plat_cond *committed; /* durable or failure changed, or room */

  struct manifest_batch *filling;     /* puts that wait for the next commit */
  struct atomic_file **filling_files; /* files to sync before that commit */
  size_t filling_file_count;
  struct atomic_file **spare_files; /* the list of the batch in commit */
  size_t waiters;                   /* threads in recorder_wait() */
  bool filling_syncs_output; /* filling has an intent or delivered output */
  uint64_t next_ticket;      /* ticket of the next put */
  uint64_t durable;          /* puts up to this ticket are committed */
  bool stopping;
  enum ag_code failure; /* the first failed commit, or AG_OK */
  struct ag_error failure_err;
  uint64_t commits;
  uint64_t records;
};

/* The files of one batch that the recorder syncs before its commit. */
struct batch_files {
  struct atomic_file **list;
  size_t count;
};

/* Take the filled batch, its files and the ticket of its last put, leaving
 * an empty batch and list in their place. Called with the lock held. */
static struct manifest_batch *take_batch(struct recorder *recorder,
                                         struct manifest_batch *empty,
                                         struct batch_files *files,
                                         bool *sync_output, uint64_t *last)
{
  struct manifest_batch *full = recorder->filling;

  recorder->filling = empty;
  files->list = recorder->filling_files;
  files->count = recorder->filling_file_count;
  recorder->filling_files = recorder->spare_files;
  recorder->filling_file_count = 0;
  recorder->spare_files = files->list;
  *sync_output = recorder->filling_syncs_output;
  recorder->filling_syncs_output = false;
  *last = recorder->next_ticket - 1;
  plat_cond_broadcast(recorder->committed); /* the new batch has room */
  return full;
}

/* Make one batch durable: its temporary outputs' data, then the output
 * folder when the batch records temporary outputs or renames that were
 * not synced (see recorder.h), then the records. The writers started
 * writing the outputs out (atomic_file_flush()). One sync of the output
 * folder's file system makes the outputs of a large batch and the folder
 * durable. A small batch gets an fsync of each output instead, and on
 * ext4 with a journal the first one commits the block allocations of all
 * (docs/performance.md). */
static enum ag_code commit_batch(struct recorder *recorder,
                                 struct manifest_batch *batch,
                                 const struct batch_files *files,
                                 bool sync_output, struct ag_error *err)
{
  bool dir_synced = false;
  enum ag_code code =
      atomic_file_sync_group(files->list, files->count, recorder->output_dir,
                             recorder->output_fs, &dir_synced, err);

  if (sync_output && !dir_synced && code == AG_OK)
    code = plat_sync_dir(recorder->output_dir, err);
  FAULT_POINT("before_batch_commit");
  if (code == AG_OK)
    code = manifest_batch_commit(batch, err);
  FAULT_POINT("after_batch_commit");
  return code;
}

/* Return whether committing record relies on the output folder being
 * synced: a publication intent names temporary files, and a DELIVERED
 * record with an output follows a rename. */
static bool needs_output_sync(const struct manifest_record *record)
{
  if (record->state == MANIFEST_DOWNLOADED)
    return record->output_temp != NULL;
  return record->state == MANIFEST_DELIVERED && record->output != NULL;
}

/* Let the batch grow for up to RECORDER_GATHER_MS after its first put, so
 * that one commit serves more files, unless a thread waits for a commit,
 * the batch is large enough or the recorder stops. Called with the lock
 * held. */
static void gather(struct recorder *recorder)
{
  int64_t until = plat_monotonic_ms() + RECORDER_GATHER_MS;

  while (!recorder->stopping && recorder->waiters == 0 &&
         manifest_batch_count(recorder->filling) < RECORDER_GATHER_PUTS) {
    int64_t left = until - plat_monotonic_ms();
    if (left <= 0 || !plat_cond_wait_ms(recorder->queued, recorder->lock, left))
      break;
  }
}

static void recorder_main(void *arg)
{
  struct recorder *recorder = arg;
  struct manifest_batch *spare = NULL;
  struct ag_error err = {0};
  enum ag_code code = manifest_batch_new(recorder->manifest, &spare, &err);

  plat_mutex_lock(recorder->lock);
  while (code == AG_OK) {
    while (manifest_batch_count(recorder->filling) == 0 && !recorder->stopping)
      plat_cond_wait(recorder->queued, recorder->lock);
    if (manifest_batch_count(recorder->filling) == 0)
      break;
    gather(recorder);

    struct batch_files files = {0};
    bool sync_output = false;
    uint64_t last = 0;
    struct manifest_batch *batch =
        take_batch(recorder, spare, &files, &sync_output, &last);
    size_t count = manifest_batch_count(batch);
    plat_mutex_unlock(recorder->lock);

    code = commit_batch(recorder, batch, &files, sync_output, &err);
    spare = batch;

    plat_mutex_lock(recorder->lock);
    if (code == AG_OK) {
      recorder->durable = last;
      recorder->commits++;
      recorder->records += count;
    }
    plat_cond_broadcast(recorder->committed);
  }

  if (code != AG_OK) {
    recorder->failure = code;
    recorder->failure_err = err;
    plat_cond_broadcast(recorder->committed);
  }
  plat_mutex_unlock(recorder->lock);
  manifest_batch_free(spare);
}

/* Free what recorder_start() made. Accepts a half-built recorder whose
 * thread never started. */
static void free_recorder(struct recorder *recorder)
{
  plat_cond_free(recorder->committed);
  plat_cond_free(recorder->queued);
  plat_mutex_free(recorder->lock);
  manifest_batch_free(recorder->filling);
  free(recorder->filling_files);
  free(recorder->spare_files);
  plat_file_system_close(recorder->output_fs);
  free(recorder);
}

enum ag_code recorder_start(struct manifest *manifest, const char *output_dir,
                            struct recorder **out, struct ag_error *err)
{
  struct recorder *recorder = calloc(1, sizeof(*recorder));

  *out = NULL;
  if (recorder == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  recorder->manifest = manifest;
  recorder->output_dir = output_dir;
  recorder->next_ticket = 1;

  enum ag_code code = manifest_batch_new(manifest, &recorder->filling, err);
  recorder->filling_files =
      calloc(RECORDER_BATCH_FILES_MAX, sizeof(*recorder->filling_files));
  recorder->spare_files =
      calloc(RECORDER_BATCH_FILES_MAX, sizeof(*recorder->spare_files));
  if (code == AG_OK &&
      (recorder->filling_files == NULL || recorder->spare_files == NULL))
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
  /* Without it, each output is synced on its own, which reports a missing
   * output folder as well. */
  struct ag_error fs_err = {0};
  if (code == AG_OK)
    (void)plat_file_system_open(output_dir, &recorder->output_fs, &fs_err);
  if (code == AG_OK)
    code = plat_mutex_new(&recorder->lock, err);
  if (code == AG_OK)
    code = plat_cond_new(&recorder->queued, err);
  if (code == AG_OK)
    code = plat_cond_new(&recorder->committed, err);
  if (code == AG_OK)
    code = plat_thread_start(recorder_main, recorder, &recorder->thread, err);
  if (code != AG_OK) {
    free_recorder(recorder);
    return code;
  }
  *out = recorder;
  return AG_OK;
}

enum ag_code recorder_put(struct recorder *recorder, const void *key,
                          size_t key_len, const struct manifest_record *record,
                          uint64_t *ticket, struct ag_error *err)
{
  return recorder_put_synced(recorder, key, key_len, record, NULL, 0, ticket,
                             err);
}

enum ag_code recorder_put_synced(struct recorder *recorder, const void *key,
                                 size_t key_len,
                                 const struct manifest_record *record,
                                 struct atomic_file *const *files,
                                 size_t file_count, uint64_t *ticket,
                                 struct ag_error *err)
{
  enum ag_code code = AG_OK;

  /* More would overrun the batch's file list: a bug in the caller. */
  if (file_count > RECORDER_PUT_FILES_MAX)
    abort();

  plat_mutex_lock(recorder->lock);
  while (recorder->failure == AG_OK &&
         manifest_batch_count(recorder->filling) >= RECORDER_BATCH_MAX)
    plat_cond_wait(recorder->committed, recorder->lock);
  if (recorder->failure != AG_OK) {
    code = ag_error_set(err, recorder->failure, "%s",
                        recorder->failure_err.message);
    goto out;
  }

  /* Adding under the lock keeps ticket order and batch order the same. It
   * only copies the record; the recorder thread encodes it when it
   * commits. */
  code = manifest_batch_put(recorder->filling, key, key_len, record, err);
  if (code != AG_OK)
    goto out;
  if (needs_output_sync(record))
    recorder->filling_syncs_output = true;
  for (size_t i = 0; i < file_count; i++)
    recorder->filling_files[recorder->filling_file_count++] = files[i];
  *ticket = recorder->next_ticket++;

  /* The recorder waits for the first put of a batch and, while it
   * gathers, for a batch large enough to commit. */
  size_t count = manifest_batch_count(recorder->filling);
  if (count == 1 || count == RECORDER_GATHER_PUTS)
    plat_cond_signal(recorder->queued);

out:
  plat_mutex_unlock(recorder->lock);
  return code;
}

bool recorder_is_durable(struct recorder *recorder, uint64_t ticket)
{
  plat_mutex_lock(recorder->lock);
  bool durable = recorder->durable >= ticket;
  plat_mutex_unlock(recorder->lock);
  return durable;
}

enum ag_code recorder_wait(struct recorder *recorder, uint64_t ticket,
                           struct ag_error *err)
{
  enum ag_code code = AG_OK;

  plat_mutex_lock(recorder->lock);
  bool waiting = recorder->durable < ticket;
  if (waiting) {
    recorder->waiters++;
    plat_cond_signal(recorder->queued); /* no more gathering: commit now */
  }
  while (recorder->durable < ticket && recorder->failure == AG_OK)
    plat_cond_wait(recorder->committed, recorder->lock);
  if (waiting)
    recorder->waiters--;
  if (recorder->durable < ticket)
    code = ag_error_set(err, recorder->failure, "%s",
                        recorder->failure_err.message);
  plat_mutex_unlock(recorder->lock);
  return code;
}

enum ag_code recorder_stop(struct recorder *recorder, struct ag_error *err)
{
  if (recorder == NULL)
    return AG_OK;

  plat_mutex_lock(recorder->lock);
  recorder->stopping = true;
  plat_cond_signal(recorder->queued);
  plat_mutex_unlock(recorder->lock);
  plat_thread_join(recorder->thread);

  log_debug("manifest writer: %llu records in %llu commits",
            (unsigned long long)recorder->records,
            (unsigned long long)recorder->commits);
  enum ag_code code = recorder->failure;
  if (code != AG_OK)
    ag_error_set(err, code, "%s", recorder->failure_err.message);
  free_recorder(recorder);
  return code;
}
