/* Parallel passes: the stable files of a pass taken by several workers at
 * once, each over its own SSH session, with the manifest records of all
 * of them written in batches by one recorder thread. Not part of the
 * public API.
 *
 * Rules that keep a file delivered exactly once:
 * - Each file of the pass is taken by exactly one worker: the workers
 *   take the next index of the sorted list, oldest first, from one atomic
 *   counter, and a listing never names a key twice.
 * - A worker runs the same steps as a sequential pass (ingest_deliver(),
 *   ingest_publish() and dispose_delivered()). Its records are queued only
 *   after their step happened. The outputs of a file are renamed into
 *   place only after the commit that contains its publication intent, and
 *   the remote move starts only after the commit that contains its
 *   DELIVERED record. Meanwhile the worker takes its next files.
 * - The pass returns only after every worker has ended and every queued
 *   record is committed, so a pass never overlaps the next one. */
#ifndef AGENT_PIPELINE_H
#define AGENT_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agent/atomic_file.h"
#include "agent_internal.h"

/* Take files[0..count), sorted oldest first, with up to
 * agent->config->parallel workers. The first worker uses agent->remote,
 * which must be open; the others open their own sessions and close them
 * at the end of the pass. A session that cannot be opened leaves its
 * worker out, with a warning. started_ms is the start of the pass, for
 * the progress display.
 *
 * Per-file outcomes are added to summary, and *attempted is set to the
 * number of files that were taken. A stop request of the front end, or an
 * error that ends the pass in any worker, lets the workers finish the
 * files they have begun and take no more; the files not taken are counted
 * as deferred. Returns the first error that ended the pass, as
 * ingest_file() does. */
enum ag_code pipeline_run(struct agent *agent, const struct candidate *files,
                          size_t count, struct agent_summary *summary,
                          size_t *attempted, int64_t started_ms,
                          struct ag_error *err);

/* Store record under key: in a sequential pass at once, in one durable
 * transaction (manifest_put()); in a worker of a parallel pass, queued
 * for the recorder's next commit. Errors as manifest_put(). */
enum ag_code agent_put_record(struct agent *agent, const void *key,
                              size_t key_len,
                              const struct manifest_record *record,
                              struct ag_error *err);

/* Store a publication intent record under key, as agent_put_record()
 * does, once the data of the count temporary files it names is durable.
 * In a sequential pass the caller has synced them already
 * (atomic_file_prepare()). In a worker of a parallel pass the recorder
 * syncs them with the batch that commits the record
 * (recorder_put_synced()), and the caller leaves them alone until the
 * record is durable or the wait for it failed. Errors as agent_put_record(). */
enum ag_code agent_put_intent(struct agent *agent, const void *key,
                              size_t key_len,
                              const struct manifest_record *record,
                              struct atomic_file *const *files, size_t count,
                              struct ag_error *err);

/* Delete key's record: in a sequential pass at once (manifest_delete());
 * in a worker of a parallel pass after every record that this worker
 * queued is durable, so that no queued record of key is committed after
 * the delete. A key belongs to one worker for the whole pass. Sets *found
 * as manifest_delete() does. Errors as manifest_delete() and
 * agent_wait_records(). */
enum ag_code agent_delete_record(struct agent *agent, const void *key,
                                 size_t key_len, bool *found,
                                 struct ag_error *err);

/* Wait until every record that agent_put_record() queued for agent is
 * durable. In a sequential pass each record is durable at once, so this
 * returns at once. For a step that must not start before the records
 * queued so far are on disk. Error: the recorder's failed commit. */
enum ag_code agent_wait_records(struct agent *agent, struct ag_error *err);

/* Return whether the syncs of a publication are left to the recorder,
 * which syncs the temporary outputs of an intent (agent_put_intent()) and
 * then the folder before it commits a batch with a publication intent or
 * a DELIVERED output (recorder.h). Then outputs are renamed without a
 * folder sync (atomic_file_publish_unsynced()). True in a worker of a
 * parallel pass. */
bool agent_defers_output_sync(const struct agent *agent);

/* Return the open download file that a worker of a parallel pass writes
 * again for each of its files, and store its path in *path; or return
 * NULL in a sequential pass, where each download gets a new temporary
 * file. Reusing one file saves creating and removing a file for each
 * download. The file belongs to the worker. */
FILE *agent_reused_download(const struct agent *agent, const char **path);

/* Add the per-file counts of part to total: every count that a worker
 * changes. The counts of the pass as a whole (settling, skipped, backlog,
 * duration_ms, last_success) are left alone. */
void pipeline_add_summary(struct agent_summary *total,
                          const struct agent_summary *part);

#endif
