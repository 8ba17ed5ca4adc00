/* Parallel passes: worker threads with their own SSH sessions, one shared
 * queue of files, and the recorder that commits their records in batches.
 * pipeline.h states the rules that keep deliveries exactly once. */
#include "pipeline.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/export.h"
#include "agent/log.h"
#include "agent/platform.h"
#include "recorder.h"

/* Files that a worker keeps while their publication intent or DELIVERED
 * record waits for a commit. Meanwhile it takes the next files, so it
 * never idles for a sync. When the list is full, it waits for the
 * oldest. A file stays in the list for about two commits of the
 * recorder, and with 32 the workers of a backlog often waited for a full
 * list (docs/performance.md). */
#define WAITING_MAX 128

/* Files of the list whose intent waits for its commit. Their temporary
 * outputs stay open until the recorder syncs them, so this bounds a
 * worker's open files: with more, the worker waits for those intents. */
#define PUBLISHING_MAX 32

/* A file of at least this size takes long enough to transfer that the
 * outputs waiting in its worker are published before the worker starts
 * it, instead of after it. The wait for their commit costs little next to
 * such a transfer. */
#define PUBLISH_FIRST_BYTES ((uint64_t)1024 * 1024)

/* How often the thread that runs the pass updates the progress display,
 * calls the front end's progress hook and checks for a stop request, and
 * how often it looks whether the workers have ended. */
#define WATCH_INTERVAL_MS 100
#define POLL_INTERVAL_MS 10

/* A file that waits for a commit: with publication set, for its
 * publication intent, after which the worker renames its outputs and
 * queues DELIVERED; then for its DELIVERED record, after which the remote
 * step follows. */
struct delivery {
  const struct candidate *file;
  struct manifest_record record;
  struct ingest_pending *publication; /* NULL once DELIVERED is queued */
  uint64_t ticket;                    /* the record that the next step needs */
  bool abandoned;  /* the publication failed and is left to the next pass */
  bool move_tried; /* send_next_move() passed it, its record committed */
};

struct worker {
  struct pipeline *pipeline;
  size_t number; /* 1 for the worker on the pass's own session */
  /* The worker's copy of the agent: its own session, hooks that follow
   * the pipeline, and no progress display. */
  struct agent view;
  struct agent_summary summary;
  struct delivery waiting[WAITING_MAX]; /* a ring, oldest first */
  size_t waiting_first;
  size_t waiting_count;
  uint64_t last_ticket; /* ticket of this worker's latest record */
  bool own_session;     /* view.remote was opened for this pass */
  FILE *download;       /* written again for each download, or NULL */
  char *download_path;
  struct plat_thread *thread;
};

struct pipeline {
  struct agent *agent;
  const struct candidate *files;
  size_t count;
  struct recorder *recorder;
  atomic_size_t next;          /* index of the next file to take */
  atomic_size_t taken;         /* files that a worker has taken */
  atomic_uint_least64_t bytes; /* bytes downloaded by all workers */
  atomic_bool stopping;        /* take no more files */
  atomic_size_t running;       /* workers whose thread has not ended */
  struct plat_mutex *lock;     /* guards code and err */
  enum ag_code code;
  struct ag_error err; /* the first error that ends the pass */
};

enum ag_code agent_put_record(struct agent *agent, const void *key,
                              size_t key_len,
                              const struct manifest_record *record,
                              struct ag_error *err)
{
  struct worker *worker = agent->worker;

  if (worker == NULL)
    return manifest_put(agent->manifest, key, key_len, record, err);
  return recorder_put(worker->pipeline->recorder, key, key_len, record,
                      &worker->last_ticket, err);
}

enum ag_code agent_put_intent(struct agent *agent, const void *key,
                              size_t key_len,
                              const struct manifest_record *record,
                              struct atomic_file *const *files, size_t count,
                              struct ag_error *err)
{
  struct worker *worker = agent->worker;

  if (worker == NULL)
    return manifest_put(agent->manifest, key, key_len, record, err);
  return recorder_put_synced(worker->pipeline->recorder, key, key_len, record,
                             files, count, &worker->last_ticket, err);
}

enum ag_code agent_wait_records(struct agent *agent, struct ag_error *err)
{
  struct worker *worker = agent->worker;

  if (worker == NULL || worker->last_ticket == 0)
    return AG_OK;
  return recorder_wait(worker->pipeline->recorder, worker->last_ticket, err);
}

enum ag_code agent_delete_record(struct agent *agent, const void *key,
                                 size_t key_len, bool *found,
                                 struct ag_error *err)
{
  enum ag_code code = agent_wait_records(agent, err);

  if (code != AG_OK)
    return code;
  return manifest_delete(agent->manifest, key, key_len, found, err);
}

bool agent_defers_output_sync(const struct agent *agent)
{
  return agent->worker != NULL;
}

FILE *agent_reused_download(const struct agent *agent, const char **path)
{
  struct worker *worker = agent->worker;

  if (worker == NULL || worker->download == NULL)
    return NULL;
  *path = worker->download_path;
  return worker->download;
}

void pipeline_add_summary(struct agent_summary *total,
                          const struct agent_summary *part)
{
  total->delivered += part->delivered;
  total->duplicates += part->duplicates;
  total->completed += part->completed;
  total->failed += part->failed;
  total->pending += part->pending;
  total->deferred += part->deferred;
  total->vanished += part->vanished;
  total->bytes += part->bytes;
  for (size_t i = 0; i < AGENT_FORMAT_COUNT; i++) {
    total->delivered_by_format[i] += part->delivered_by_format[i];
    total->failed_by_format[i] += part->failed_by_format[i];
  }
  total->pending_archive += part->pending_archive;
}

/* The workers' stop hook: a stop request of the front end, which the
 * pass's own thread forwards, or an error in another worker. */
static bool pipeline_stopping(void *ctx)
{
  struct pipeline *pipeline = ctx;

  return atomic_load(&pipeline->stopping);
}

/* Keep the first error that ends the pass and let the workers stop. */
static void pipeline_fail(struct pipeline *pipeline, enum ag_code code,
                          const struct ag_error *err)
{
  plat_mutex_lock(pipeline->lock);
  if (pipeline->code == AG_OK) {
    pipeline->code = code;
    pipeline->err = *err;
  }
  plat_mutex_unlock(pipeline->lock);
  atomic_store(&pipeline->stopping, true);
}

/* ---- One worker ---- */

static struct delivery *waiting_at(struct worker *worker, size_t position)
{
  return &worker->waiting[(worker->waiting_first + position) % WAITING_MAX];
}

static size_t publishing_count(struct worker *worker)
{
  size_t count = 0;

  for (size_t i = 0; i < worker->waiting_count; i++)
    if (waiting_at(worker, i)->publication != NULL)
      count++;
  return count;
}

static void pop_waiting(struct worker *worker)
{
  struct delivery *oldest = waiting_at(worker, 0);

  ingest_pending_free(oldest->publication);
  manifest_record_clear(&oldest->record);
  memset(oldest, 0, sizeof(*oldest));
  worker->waiting_first = (worker->waiting_first + 1) % WAITING_MAX;
  worker->waiting_count--;
}

/* Set *ready when the record with ticket is committed. With wait, wait
 * for that commit first, which makes the recorder commit at once. Error:
 * the recorder's failed commit. */
static enum ag_code ticket_ready(struct worker *worker, uint64_t ticket,
                                 bool wait, bool *ready, struct ag_error *err)
{
  struct recorder *recorder = worker->pipeline->recorder;

  *ready = recorder_is_durable(recorder, ticket);
  if (*ready || !wait)
    return AG_OK;
  enum ag_code code = recorder_wait(recorder, ticket, err);
  *ready = code == AG_OK;
  return code;
}

/* Rename the outputs of the waiting files whose publication intent is
 * committed, oldest first, and queue their DELIVERED records. With wait,
 * wait for the intents that are not committed yet; the first wait makes
 * the recorder commit every intent that this worker has queued. A failed
 * publication is marked abandoned, and its intent is left to crash
 * recovery. */
static enum ag_code publish_ready(struct worker *worker, bool wait,
                                  struct ag_error *err)
{
  for (size_t i = 0; i < worker->waiting_count; i++) {
    struct delivery *next = waiting_at(worker, i);
    bool ready = false;

    if (next->publication == NULL)
      continue;
    enum ag_code code = ticket_ready(worker, next->ticket, wait, &ready, err);
    if (code != AG_OK || !ready)
      return code;

    struct ingest_pending *publication = next->publication;
    next->publication = NULL;
    code = ingest_publish(&worker->view, next->file, &next->record, publication,
                          &worker->summary, err);
    if (code != AG_OK) {
      next->abandoned = true;
      return code;
    }
    next->ticket = worker->last_ticket;
  }
  return AG_OK;
}

/* Drop the abandoned files at the head of the waiting list and return the
 * first one left, or NULL. */
static struct delivery *first_waiting(struct worker *worker)
{
  while (worker->waiting_count > 0 && waiting_at(worker, 0)->abandoned)
    pop_waiting(worker);
  return worker->waiting_count > 0 ? waiting_at(worker, 0) : NULL;
}

/* Run the remote step of the oldest waiting files whose DELIVERED records
 * are committed. With wait, first wait for the oldest one's record, and
 * then take every one that is ready. Without, take at most one, and only
 * one that send_next_move() has passed: its move went out with the last
 * download, or cannot be sent ahead. */
static enum ag_code dispose_ready(struct worker *worker, bool wait,
                                  struct ag_error *err)
{
  bool every = wait;
  struct delivery *next;

  while ((next = first_waiting(worker)) != NULL && next->publication == NULL &&
         (every || next->move_tried)) {
    bool ready = false;
    enum ag_code code = ticket_ready(worker, next->ticket, wait, &ready, err);
    if (code != AG_OK || !ready)
      return code;
    wait = false;

    code =
        dispose_delivered(&worker->view, next->file->rel, next->file->rel_len,
                          &next->record, &worker->summary, err);
    pop_waiting(worker);
    if (code != AG_OK || !every)
      return code;
  }
  return AG_OK;
}

/* Take the waiting files as far as their commits allow: publish those
 * whose intent is durable, then dispose those whose DELIVERED record is.
 * With wait, wait until the oldest file has left the list. */
static enum ag_code advance_waiting(struct worker *worker, bool wait,
                                    struct ag_error *err)
{
  enum ag_code code = publish_ready(worker, wait, err);

  if (code == AG_OK)
    code = dispose_ready(worker, wait, err);
  return code;
}

/* Send the archive move of the file that the next dispose_ready() takes,
 * when its DELIVERED record is committed already, so that the move goes
 * out with the requests of the next download (dispose_move_ahead()). */
static void send_next_move(struct worker *worker)
{
  struct delivery *next = first_waiting(worker);

  if (next == NULL || next->publication != NULL ||
      !recorder_is_durable(worker->pipeline->recorder, next->ticket))
    return;
  dispose_move_ahead(&worker->view, next->file->rel, next->file->rel_len,
                     &next->record);
  next->move_tried = true;
}

/* Forget the waiting files after an error. Their records stay DOWNLOADED
 * with an intent, or DELIVERED, or never reach the manifest, so the next
 * pass finishes the publications, finishes the remote steps or takes the
 * files again. The recorder may still be syncing the outputs of intents
 * that are not durable yet, so their commit, or the recorder's failure,
 * comes before they are freed. */
static void drop_waiting(struct worker *worker)
{
  struct ag_error ignored = {0};

  if (worker->waiting_count > 0)
    (void)agent_wait_records(&worker->view, &ignored);
  while (worker->waiting_count > 0)
    pop_waiting(worker);
}

/* Finish the waiting files once the worker takes no more, after code ended
 * its loop. A stop request still lets them finish, as a sequential pass
 * finishes its current file. So does an error of a later file that left
 * the session usable (a full output folder), as a sequential pass has
 * finished the files before it. After an error of the session, only the
 * publications are finished, because they are local, and the remote steps
 * are left to the next pass. Returns the first error of this. */
static enum ag_code finish_waiting(struct worker *worker, enum ag_code code,
                                   struct ag_error *err)
{
  enum ag_code finish = AG_OK;

  if (code == AG_ECONNECT || code == AG_ETIMEDOUT)
    finish = publish_ready(worker, true, err);
  else
    while (finish == AG_OK && worker->waiting_count > 0)
      finish = advance_waiting(worker, true, err);
  drop_waiting(worker);
  return finish;
}

/* Take one file up to its queued publication intent, or to DELIVERED for
 * an identical re-upload, and keep it waiting for its commit. */
static enum ag_code take_file(struct worker *worker,
                              const struct candidate *file,
                              struct ag_error *err)
{
  struct pipeline *pipeline = worker->pipeline;
  struct manifest_record record = {0};
  struct ingest_pending *publication = NULL;
  uint64_t bytes_before = worker->summary.bytes;
  bool delivered = false;
  enum ag_code code = AG_OK;

  if (worker->waiting_count == WAITING_MAX)
    code = advance_waiting(worker, true, err);
  else if (file->size >= PUBLISH_FIRST_BYTES ||
           publishing_count(worker) >= PUBLISHING_MAX)
    code = publish_ready(worker, true, err);
  if (code != AG_OK)
    return code;

  code = ingest_deliver(&worker->view, file, &record, &delivered, &publication,
                        &worker->summary, err);
  atomic_fetch_add(&pipeline->taken, 1);
  atomic_fetch_add(&pipeline->bytes, worker->summary.bytes - bytes_before);
  if (code != AG_OK || (!delivered && publication == NULL)) {
    ingest_pending_free(publication);
    manifest_record_clear(&record);
    return code;
  }

  struct delivery *slot = waiting_at(worker, worker->waiting_count);
  slot->file = file;
  slot->record = record;
  slot->publication = publication;
  slot->ticket = worker->last_ticket;
  slot->abandoned = false;
  slot->move_tried = false;
  worker->waiting_count++;
  return AG_OK;
}

/* Create the file that this worker reuses for its downloads. Without it,
 * each download creates its own temporary file, as in a sequential pass. */
static void create_download_file(struct worker *worker)
{
  struct ag_error err = {0};

  plat_create_temp(worker->view.download_dir, "download", &worker->download,
                   &worker->download_path, &err);
}

/* Open this worker's own session unless it has one. A session that cannot
 * be opened only leaves this worker out, because the others go on. */
static bool open_session(struct worker *worker)
{
  struct ag_error err = {0};

  if (worker->view.remote != NULL)
    return true;
  if (remote_connect(worker->view.config, &worker->view.remote, &err) ==
      AG_OK) {
    worker->own_session = true;
    return true;
  }
  log_warn("cannot open SSH session %zu of %d for parallel transfers, so "
           "this pass uses fewer: %s. If the server limits logins per "
           "user, lower [remote] parallel",
           worker->number, worker->view.config->parallel, err.message);
  return false;
}

static void worker_main(void *arg)
{
  struct worker *worker = arg;
  struct pipeline *pipeline = worker->pipeline;
  struct ag_error err = {0};
  enum ag_code code = AG_OK;

  bool ready = open_session(worker);
  if (ready)
    create_download_file(worker);
  /* Each file's open goes out one file early, and the archive move of a
   * waiting file just before a download, so that the open of the next
   * file, the move and the current file's read reach the server together
   * (docs/performance.md). */
  size_t index = ready ? atomic_fetch_add(&pipeline->next, 1) : SIZE_MAX;
  if (index < pipeline->count)
    ingest_open_ahead(&worker->view, &pipeline->files[index]);
  while (index < pipeline->count && !atomic_load(&pipeline->stopping)) {
    size_t upcoming = atomic_fetch_add(&pipeline->next, 1);
    if (upcoming < pipeline->count)
      ingest_open_ahead(&worker->view, &pipeline->files[upcoming]);
    send_next_move(worker);
    code = take_file(worker, &pipeline->files[index], &err);
    if (code == AG_OK)
      code = advance_waiting(worker, false, &err);
    if (code != AG_OK)
      break;
    index = upcoming;
  }

  struct ag_error finish_err = {0};
  enum ag_code finish = finish_waiting(worker, code, &finish_err);
  if (code == AG_OK && finish != AG_OK) {
    code = finish;
    err = finish_err;
  }
  if (code != AG_OK)
    pipeline_fail(pipeline, code, &err);
  if (worker->own_session)
    remote_close(worker->view.remote);
  worker->view.remote = NULL;
  free(worker->view.known_folder);
  worker->view.known_folder = NULL;
  if (worker->download != NULL) {
    fclose(worker->download);
    plat_remove(worker->download_path);
  }
  free(worker->download_path);
  worker->download = NULL;
  worker->download_path = NULL;

  atomic_fetch_sub(&pipeline->running, 1);
}

/* ---- The pass ---- */

/* Give worker its view of the agent. The first worker uses the pass's
 * session; the others open their own in their thread. */
static void prepare_worker(struct pipeline *pipeline, struct worker *worker,
                           size_t number)
{
  struct agent *agent = pipeline->agent;

  worker->pipeline = pipeline;
  worker->number = number;
  worker->view = *agent;
  worker->view.remote = number == 1 ? agent->remote : NULL;
  worker->view.hooks.stop_requested = pipeline_stopping;
  worker->view.hooks.progress = NULL;
  worker->view.hooks.ctx = pipeline;
  worker->view.progress_display = NULL;
  worker->view.progress_display_ctx = NULL;
  worker->view.worker = worker;
  worker->view.known_folder = NULL;
}

/* Start up to requested workers. Returns how many started. */
static size_t start_workers(struct pipeline *pipeline, struct worker *workers,
                            size_t requested)
{
  size_t started = 0;

  for (size_t i = 0; i < requested; i++) {
    prepare_worker(pipeline, &workers[started], started + 1);
    struct ag_error err = {0};
    atomic_fetch_add(&pipeline->running, 1);
    if (plat_thread_start(worker_main, &workers[started],
                          &workers[started].thread, &err) == AG_OK) {
      started++;
      continue;
    }
    atomic_fetch_sub(&pipeline->running, 1);
    log_warn("cannot start worker thread %zu of %zu, so this pass uses "
             "fewer: %s",
             i + 1, requested, err.message);
  }
  return started;
}

/* Wait for the workers in the pass's own thread, which alone calls the
 * front end's hooks and the progress display: it shows progress, reports
 * to the front end that the pass is alive and forwards a stop request. */
static void watch_workers(struct pipeline *pipeline, int64_t started_ms)
{
  struct agent *agent = pipeline->agent;
  int64_t next_watch = 0;

  while (atomic_load(&pipeline->running) > 0) {
    int64_t now = plat_monotonic_ms();
    if (now >= next_watch) {
      agent_show_progress(agent, atomic_load(&pipeline->taken), pipeline->count,
                          atomic_load(&pipeline->bytes), started_ms);
      agent_report_progress(agent);
      if (agent_stop_requested(agent))
        atomic_store(&pipeline->stopping, true);
      next_watch = now + WATCH_INTERVAL_MS;
    }
    plat_sleep_ms(POLL_INTERVAL_MS);
  }
}

static enum ag_code init_pipeline(struct pipeline *pipeline,
                                  struct agent *agent,
                                  const struct candidate *files, size_t count,
                                  struct ag_error *err)
{
  memset(pipeline, 0, sizeof(*pipeline));
  pipeline->agent = agent;
  pipeline->files = files;
  pipeline->count = count;
  atomic_init(&pipeline->next, 0);
  atomic_init(&pipeline->taken, 0);
  atomic_init(&pipeline->bytes, 0);
  atomic_init(&pipeline->stopping, false);
  atomic_init(&pipeline->running, 0);
  return plat_mutex_new(&pipeline->lock, err);
}

enum ag_code pipeline_run(struct agent *agent, const struct candidate *files,
                          size_t count, struct agent_summary *summary,
                          size_t *attempted, int64_t started_ms,
                          struct ag_error *err)
{
  size_t requested = (size_t)agent->config->parallel;
  struct worker *workers = NULL;
  struct pipeline pipeline;
  size_t started = 0;

  *attempted = 0;
  if (requested > count)
    requested = count;
  enum ag_code code = init_pipeline(&pipeline, agent, files, count, err);
  if (code != AG_OK)
    return code;
  workers = calloc(requested, sizeof(*workers));
  if (workers == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }

  /* Libraries with global set-up must finish it before threads use them. */
  export_init();
  code = recorder_start(agent->manifest, agent->config->output_dir,
                        &pipeline.recorder, err);
  if (code != AG_OK)
    goto out;
  started = start_workers(&pipeline, workers, requested);
  if (started > 0)
    watch_workers(&pipeline, started_ms);
  for (size_t i = 0; i < started; i++)
    plat_thread_join(workers[i].thread);

  /* Every record the workers queued is committed before the pass ends. */
  struct ag_error stop_err = {0};
  enum ag_code stop_code = recorder_stop(pipeline.recorder, &stop_err);
  if (started == 0)
    code = ag_error_set(err, AG_ELOCAL, "cannot start any worker thread");
  else if (pipeline.code != AG_OK)
    code = ag_error_set(err, pipeline.code, "%s", pipeline.err.message);
  else if (stop_code != AG_OK)
    code = ag_error_set(err, stop_code, "%s", stop_err.message);

  for (size_t i = 0; i < started; i++)
    pipeline_add_summary(summary, &workers[i].summary);
  *attempted = atomic_load(&pipeline.taken);
  if (code == AG_OK && *attempted < count)
    summary->deferred += count - *attempted;

out:
  free(workers);
  plat_mutex_free(pipeline.lock);
  return code;
}
