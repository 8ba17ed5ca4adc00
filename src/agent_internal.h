/* State shared by the core's source files; not part of the public API. */
#ifndef AGENT_AGENT_INTERNAL_H
#define AGENT_AGENT_INTERNAL_H

#include <stdbool.h>

#include "agent/agent.h"
#include "agent/manifest.h"
#include "agent/platform.h"
#include "agent/remote.h"
#include "agent/stable.h"

/* Callbacks with which a long-running front end follows a pass and ends it
 * early. Both functions may be NULL. Only the thread that runs the pass
 * calls them; in a parallel pass it does so every 100 ms (pipeline.c). */
struct agent_hooks {
  /* Returns whether the front end wants the pass to end. Checked between
   * files, after each downloaded block and during the wait for settling
   * files. */
  bool (*stop_requested)(void *ctx);
  /* Called at the same points, so that the front end can tell a watchdog
   * that the pass is making progress. */
  void (*progress)(void *ctx);
  void *ctx;
};

struct agent {
  const struct config *config;
  struct agent_hooks hooks;
  struct plat_lock *lock;
  struct manifest *manifest;
  struct remote *remote; /* NULL while disconnected */
  struct stable *stable;
  struct stable *skipped; /* skipped entries already logged, by key */
  char *download_dir;     /* <state_dir>/tmp */
  agent_progress_fn progress_display; /* see agent_set_progress_display() */
  void *progress_display_ctx;
  struct claim_state *claims; /* claim_internal.h; NULL until first used */

  /* Set only in a worker's copy of the agent during a parallel pass, whose
   * records go through the pass's recorder (pipeline.c). */
  struct worker *worker;
  /* The remote folder that the last move created or found, so the next
   * move into it needs no check (dispose.c); malloc'd, or NULL. */
  char *known_folder;
};

/* Keys in the manifest's meta table that agent_record_pass() writes and
 * the status command reads, both as decimal text. */
#define AGENT_META_LAST_SUCCESS "last_success" /* Unix seconds */
#define AGENT_META_BACKLOG "backlog"           /* files */
/* Unix seconds of the last retention run that examined both tables to
 * the end, as decimal text. */
#define AGENT_META_PRUNED_AT "pruned_at"

/* A stable file picked for processing in this pass. */
struct candidate {
  char *rel; /* path relative to the inbox, raw bytes, NUL-terminated */
  size_t rel_len;
  uint64_t size;
  int64_t mtime;
  bool claimed; /* found in this agent's claim folder, not in the inbox */
};

/* Take one stable file through download, parse, output and the remote
 * move. Per-file outcomes go to summary; the return value is an error only
 * when the pass must stop (connection or local failure). */
enum ag_code ingest_file(struct agent *agent, const struct candidate *file,
                         struct agent_summary *summary, struct ag_error *err);

/* Finish every publication that a crash interrupted after its intent was
 * recorded (manifest_record.output_temp): a temporary output that still
 * exists is renamed into place, one that is gone was renamed before. Each
 * such record becomes DELIVERED, so the remote step follows and nothing
 * is published twice. Must run before the temporary files of the output
 * folder are cleaned up. Errors: AG_ELOCAL (the output folder), AG_ESTATE,
 * AG_ENOMEM. */
enum ag_code recover_publications(struct agent *agent, struct ag_error *err);

/* A publication whose intent is queued and whose renames wait for that
 * intent to be durable; see ingest_deliver(). */
struct ingest_pending;

/* The first part of ingest_file(): every step up to and including the
 * DELIVERED record, and dispose_failed() for a file that cannot be parsed.
 * Sets *delivered when the file reached DELIVERED and dispose_delivered()
 * must follow, with record as filled here; the caller clears record in
 * every case. Errors as ingest_file().
 *
 * In a worker of a parallel pass (agent_defers_output_sync()) with pending
 * not NULL, a file to be published stops once its publication intent is
 * queued. *pending then gets the publication, *delivered stays false, and
 * the caller finishes it with ingest_publish() once the intent is durable.
 * In every other case *pending, if given, is set to NULL, and the
 * publication is finished here after a wait for the intent's commit. */
enum ag_code ingest_deliver(struct agent *agent, const struct candidate *file,
                            struct manifest_record *record, bool *delivered,
                            struct ingest_pending **pending,
                            struct agent_summary *summary,
                            struct ag_error *err);

/* Send the open of file's remote path ahead of ingest_deliver() of file
 * (remote_open_ahead()), so that the open shares a round trip with the
 * requests sent in between, such as the archive moves of earlier files.
 * Does nothing for a file that is read from a claim folder. */
void ingest_open_ahead(struct agent *agent, const struct candidate *file);

/* Finish a publication that ingest_deliver() left pending, whose intent
 * must be durable: rename its files into output_dir, log the delivery and
 * queue the DELIVERED record, after which dispose_delivered() follows as
 * for *delivered. Frees pending in every case. On an error the intent
 * stays, and crash recovery (recover_publications()) finishes it. */
enum ag_code ingest_publish(struct agent *agent, const struct candidate *file,
                            struct manifest_record *record,
                            struct ingest_pending *pending,
                            struct agent_summary *summary,
                            struct ag_error *err);

/* Free a publication that will not be finished. Its temporary files stay
 * for crash recovery, or for the start-up cleanup when the intent never
 * reached the disk. Accepts NULL. */
void ingest_pending_free(struct ingest_pending *pending);

/* Send the archive move of a delivered file ahead of its
 * dispose_delivered() (remote_rename_ahead()), so that the move shares a
 * round trip with the requests sent next. Only for the plain case: the
 * file is moved, its target is recorded in record, no hook is pending,
 * it is not claimed, and the target's folder is known to exist. Reports
 * nothing; dispose_delivered() takes the result and acts on it. */
void dispose_move_ahead(struct agent *agent, const char *rel, size_t rel_len,
                        const struct manifest_record *record);

/* Run the delivered file's pending hook (hook_run_pending()), then, once
 * it has succeeded or when none is pending, finish the remote step (move,
 * delete or keep) and record the file as archived. */
enum ag_code dispose_delivered(struct agent *agent, const char *rel,
                               size_t rel_len, struct manifest_record *record,
                               struct agent_summary *summary,
                               struct ag_error *err);

/* Finish the hook and the remote step for a file that an earlier pass
 * delivered but did not move. The file on the server may no longer be
 * the delivered version, because a new upload replaced it. Then the
 * delivered version is recorded as done without a move once its hook has
 * succeeded, and the next listing takes the new version as a new file. */
enum ag_code dispose_resume(struct agent *agent, const char *rel,
                            size_t rel_len, struct manifest_record *record,
                            struct agent_summary *summary,
                            struct ag_error *err);

/* Move a file that could not be processed into the error folder with a
 * reason file beside it, and record it as failed. */
enum ag_code dispose_failed(struct agent *agent, const struct candidate *file,
                            struct manifest_record *record, const char *reason,
                            struct agent_summary *summary,
                            struct ag_error *err);

/* Rename from into planned on the server, creating planned's folder, or
 * into the first free alternative name with ".<tag>" or ".<tag>-<n>" put
 * before the extension. Never replaces a file. Stores the name used in
 * *final (malloc'd). Errors as remote_rename(), and AG_EEXIST when every
 * name is taken. */
enum ag_code dispose_move(struct agent *agent, const char *from,
                          const char *planned, const char *tag, char **final,
                          struct ag_error *err);

/* Finish a failure that an interrupted run recorded (state SEEN or
 * DOWNLOADED with reason and archive_path set, see dispose_failed()):
 * when the file left the inbox, write its reason file if it is missing
 * and record it as FAILED. A file still in the inbox is left for the
 * listing, which takes it again. */
enum ag_code dispose_resume_failed(struct agent *agent, const char *rel,
                                   size_t rel_len,
                                   struct manifest_record *record,
                                   struct agent_summary *summary,
                                   struct ag_error *err);

/* Return the planned archive path for rel (archive folder, optional date
 * layout, relative path), malloc'd. The real target may get a suffix when
 * that path is taken. */
char *dispose_archive_target(const struct config *config, const char *rel,
                             size_t rel_len, int64_t now);

/* Return whether the error is one that ends the pass rather than only the
 * current file. */
bool agent_error_is_fatal(enum ag_code code);

/* Finish summary at the end of a pass that ended with code: set
 * last_success, and after a pass without an error store it and the
 * backlog in the manifest. Returns code, or the error of that write. */
enum ag_code agent_record_pass(struct agent *agent,
                               struct agent_summary *summary, enum ag_code code,
                               struct ag_error *err);

/* Apply the [manifest] retention at the Unix time now. Removes the records
 * not changed for retention_days: those of archived files (except with
 * on_success = keep, where the record keeps a kept file from being taken
 * again) and those of seen or downloaded files, which vanished. Removes
 * the delivered versions older than delivered_hash_retention_days. Failed
 * and delivered records stay. Runs at most once an hour and starts no
 * batch after about a second. A run that is cut short goes on at the next
 * pass. Errors: those of the manifest. */
enum ag_code agent_apply_retention(struct agent *agent, int64_t now,
                                   struct ag_error *err);

/* Call the progress display, if one is set, with these counts. */
void agent_show_progress(const struct agent *agent, size_t files_done,
                         size_t files_total, uint64_t bytes,
                         int64_t started_ms);

/* Print the queued requests in <state_dir>/requests/ to out as
 * sync --dry-run does, one line each, and return how many there are.
 * Files that cannot be read are printed as such. */
size_t agent_print_requests(const struct config *config, FILE *out);

/* ---- Service support (agent_service.c) -------------------------------- */

/* Install hooks for the passes that follow. */
void agent_set_hooks(struct agent *agent, const struct agent_hooks *hooks);

/* Use config from now on, for example after a reload. config must outlive
 * the agent or the next agent_set_config() call. The caller keeps
 * state_dir and output_dir unchanged, because the lock, the manifest and
 * the download folder stay where agent_open() put them. */
void agent_set_config(struct agent *agent, const struct config *config);

/* Return whether the hooks ask the pass to end. */
bool agent_stop_requested(const struct agent *agent);

/* Call the progress hook, if any. */
void agent_report_progress(const struct agent *agent);

/* Sleep for ms milliseconds in short steps, calling the progress hook at
 * each step and returning early when the hooks ask the pass to end. */
void agent_pause(const struct agent *agent, int64_t ms);

/* Connect unless a connection is open. Errors as remote_connect(). */
enum ag_code agent_connect(struct agent *agent, struct ag_error *err);

/* Close the connection, if any, so that the next pass connects afresh. */
void agent_disconnect(struct agent *agent);

/* Return whether a connection is open. */
bool agent_is_connected(const struct agent *agent);

/* Send a keepalive on the open connection when keepalive_interval seconds
 * have passed since the last one, and store the seconds until the next one
 * in *next_seconds (0 when keepalives are off or no connection is open).
 * When the send fails, closes the connection and returns the error of
 * remote_keepalive(). */
enum ag_code agent_keepalive(struct agent *agent, int *next_seconds,
                             struct ag_error *err);

#endif
