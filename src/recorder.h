/* The recorder: a thread that writes the manifest records of a parallel
 * pass in batches, one durable LMDB transaction per batch, so that many
 * files share the syncs of one commit. Not part of the public API.
 *
 * Workers queue records with recorder_put() and go on. Each put gets a
 * ticket, a number that grows with every put; a commit makes every put
 * up to its last ticket durable. A record is queued only after its step
 * happened, so a batch, like a single put, never describes a step that
 * did not happen. A step that must not start before an earlier record is
 * on disk, such as the remote move after DELIVERED, waits for that
 * record's ticket with recorder_wait() or checks recorder_is_durable().
 *
 * In a parallel pass the recorder makes the output folder durable for the
 * publications, so that a batch of files shares one folder sync and one
 * commit instead of each file waiting for its own. Before it commits a
 * batch that contains a publication intent (a DOWNLOADED record with
 * output_temp) or a DELIVERED record with an output, it syncs the output
 * folder. The publication then keeps these rules:
 *
 * 1. A temporary output's data and its name in the folder are durable
 *    before its intent is committed: the worker queues the intent with
 *    its files (recorder_put_synced()), the recorder syncs them before
 *    the batch's folder sync, and that folder sync covers the name.
 * 2. The intent is durable before the rename into the output folder: the
 *    worker renames only once recorder_is_durable() holds for the
 *    intent's ticket.
 * 3. The rename is durable before DELIVERED is committed: the worker
 *    queues DELIVERED after the rename, so the folder sync of that
 *    record's batch covers it.
 * 4. The remote move starts only after DELIVERED is durable
 *    (pipeline.c waits for its ticket).
 * 5. A crash anywhere leaves a state that the next pass finishes. Without
 *    the intent on disk, the file is taken again and the start-up cleanup
 *    removes its temporary files. With the intent on disk, crash recovery
 *    (recover_publications()) renames the temporary file if it still
 *    exists, or finds it renamed, and records DELIVERED. With DELIVERED on
 *    disk, the remote step follows. */
#ifndef AGENT_RECORDER_H
#define AGENT_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/atomic_file.h"
#include "agent/error.h"
#include "agent/manifest.h"

/* Puts that one batch takes at most. A put waits while the batch being
 * filled has this many, which bounds the memory of a fast producer. */
#define RECORDER_BATCH_MAX 1024

/* A batch is committed RECORDER_GATHER_MS after its first put, once it has
 * RECORDER_GATHER_PUTS puts, or at once when a thread waits for it,
 * whichever comes first. Waiting a little lets one commit serve more
 * files; docs/performance.md has the measurements behind the values. */
#define RECORDER_GATHER_MS 5
#define RECORDER_GATHER_PUTS 256

/* Files that one put may ask the recorder to sync (an output and its
 * sidecar), and so the files of one batch at most. */
#define RECORDER_PUT_FILES_MAX 2
#define RECORDER_BATCH_FILES_MAX (RECORDER_PUT_FILES_MAX * RECORDER_BATCH_MAX)

struct recorder;

/* Start the recorder thread for manifest. output_dir is the folder that a
 * batch with an intent or a delivered output syncs; both must outlive the
 * recorder.
 * Errors: AG_ENOMEM, AG_ELOCAL when the thread cannot start. */
enum ag_code recorder_start(struct manifest *manifest, const char *output_dir,
                            struct recorder **out, struct ag_error *err);

/* Queue a put of record under key for the next commit and store its
 * ticket in *ticket. Any thread may call this. Errors: those of
 * manifest_batch_put(); after a failed commit, that commit's error, and
 * the put is not queued. */
enum ag_code recorder_put(struct recorder *recorder, const void *key,
                          size_t key_len, const struct manifest_record *record,
                          uint64_t *ticket, struct ag_error *err);

/* Queue a put as recorder_put() does, and let the recorder sync the
 * file_count (at most RECORDER_PUT_FILES_MAX) files first
 * (atomic_file_sync()), in the batch that commits the record, so that
 * their data is durable before the record is. The files belong to the
 * recorder until the put's ticket is durable or recorder_wait() for it has
 * failed: the caller must not use or free them before. A failed sync fails
 * the commit, and its error names the file. Errors: those of
 * recorder_put(). */
enum ag_code recorder_put_synced(struct recorder *recorder, const void *key,
                                 size_t key_len,
                                 const struct manifest_record *record,
                                 struct atomic_file *const *files,
                                 size_t file_count, uint64_t *ticket,
                                 struct ag_error *err);

/* Return whether the put with this ticket is committed. */
bool recorder_is_durable(struct recorder *recorder, uint64_t ticket);

/* Wait until the put with this ticket is committed. Error: the error of a
 * failed commit, which means that the put may never be stored. */
enum ag_code recorder_wait(struct recorder *recorder, uint64_t ticket,
                           struct ag_error *err);

/* Commit what is queued, stop the thread, log the number of records and
 * commits at debug level and free the recorder. Returns the first commit
 * error, if any. Accepts NULL. All other calls must have
 * returned before this one. */
enum ag_code recorder_stop(struct recorder *recorder, struct ag_error *err);

#endif
