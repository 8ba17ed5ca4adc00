/* The agent's core: one pass over the inbox, shared by every front end.
 *
 * The sync command runs one pass; the daemon and the Windows service run
 * passes in a loop. A pass lists the inbox, waits for files that are still
 * changing, then takes each stable file through download, parse, output,
 * manifest and the remote move, recording every step after it happened. */
#ifndef AGENT_AGENT_H
#define AGENT_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agent/config.h"
#include "agent/error.h"

struct agent;

/* Input formats, the index of the per-format counts in a summary.
 * AGENT_FORMAT_OTHER counts files whose name has no supported extension. */
enum agent_format {
  AGENT_FORMAT_XML,
  AGENT_FORMAT_CSV,
  AGENT_FORMAT_JSON,
  AGENT_FORMAT_OTHER,
  AGENT_FORMAT_COUNT
};

/* Return the format for a manifest record's format field: "xml", "csv"
 * and "json" have their own, anything else is AGENT_FORMAT_OTHER. */
enum agent_format agent_format_of(const char *name);

/* Return "xml", "csv", "json" or "other". */
const char *agent_format_name(enum agent_format format);

/* Counts of one pass, for the summary line and the exit code. */
struct agent_summary {
  size_t delivered;  /* new JSON outputs published */
  size_t duplicates; /* identical re-uploads archived without delivery */
  size_t completed;  /* remote moves finished (archive, delete or keep) */
  size_t failed;     /* moved to the error folder */
  size_t pending;    /* delivered but not yet moved; retried next pass */
  size_t settling;   /* still changing when the pass ended */
  size_t deferred;   /* left for the next pass by max_files_per_poll */
  size_t vanished;   /* deleted or changed between listing and download */
  size_t skipped;    /* entries that are not regular files */
  uint64_t bytes;    /* bytes downloaded */
  size_t delivered_by_format[AGENT_FORMAT_COUNT]; /* delivered, by format */
  size_t failed_by_format[AGENT_FORMAT_COUNT];    /* failed, by format */
  size_t pending_archive; /* delivered files whose remote move failed */
  size_t backlog;         /* listed files not taken: settling, or not yet
                             reached when the pass ended */
  int64_t duration_ms;    /* how long the pass took, by the monotonic clock */
  int64_t last_success;   /* Unix seconds at the end of the last pass
                             without an error, this one included; 0 if none */

  /* Files that another agent on the same inbox claimed first. */
  size_t claimed_elsewhere;
};

/* Flags for agent_open(). */
enum agent_open_flags {
  /* When the manifest is lost or unreadable, set it aside and start a new
   * one. Files still in the inbox are then delivered again. */
  AGENT_REBUILD_MANIFEST = 1
};

/* Prepare the agent for config: create the state and output folders,
 * lock the state folder and open the manifest. flags is 0 or
 * AGENT_REBUILD_MANIFEST. config must outlive the agent. Errors:
 * AG_ELOCKED when another agent holds the lock, AG_ESTATELOST, AG_ESTATE,
 * AG_ELOCAL. */
enum ag_code agent_open(const struct config *config, unsigned flags,
                        struct agent **out, struct ag_error *err);

/* Disconnect, close the manifest and release the lock. Accepts NULL. */
void agent_close(struct agent *agent);

/* Run one pass: carry out the queued retry and forget requests, connect
 * if needed, then take the files. Per-file problems are counted in summary
 * and logged, and do not fail the pass. Returns an error when the pass
 * could not go on: connection, host key or authentication failures, local
 * disk or manifest failures. After a pass without an error, its end time
 * and backlog are stored in the manifest for the status command. */
enum ag_code agent_sync(struct agent *agent, struct agent_summary *summary,
                        struct ag_error *err);

/* List to out what agent_sync() would do with config, changing nothing:
 * the files it would take, those it would skip with the reason, and the
 * remote moves and queued requests it would retry. Like a pass, it waits
 * stable_seconds when files are new. Reads the manifest without taking the
 * state folder's lock, and creates no file or folder. Errors as
 * agent_sync(), and AG_ESTATELOST as agent_open(). */
enum ag_code agent_plan(const struct config *config, FILE *out,
                        struct ag_error *err);

/* Counts of the pass in progress, for a progress display. */
struct agent_progress {
  size_t files_done;  /* files taken so far in this pass */
  size_t files_total; /* files that this pass takes */
  uint64_t bytes;     /* bytes downloaded so far in this pass */
  int64_t elapsed_ms; /* since the pass started */
};

typedef void (*agent_progress_fn)(void *ctx,
                                  const struct agent_progress *progress);

/* Call fn with the counts of the pass before each file that agent_sync()
 * takes and once after the last. fn NULL turns the display off. */
void agent_set_progress_display(struct agent *agent, agent_progress_fn fn,
                                void *ctx);

/* Actions of the retry and forget commands on one manifest record. */
enum agent_request_action { AGENT_REQUEST_RETRY, AGENT_REQUEST_FORGET };

/* Retry or forget the file name: its path below the inbox as status shows
 * it, where \xHH stands for the byte HH. retry moves a failed file from
 * the error folder back into the inbox under that path, removes its reason
 * file and resets the record, so that the next pass takes the file again.
 * A file that failed with on_success = delete or keep never left the
 * inbox, so only its record is reset. forget removes the record.
 *
 * When no agent holds the state folder's lock, this takes the lock, does
 * the work (connecting for a retry) and sets *queued to false. When
 * another agent holds it, the record is checked without the lock, a
 * request file is published in <state_dir>/requests/ and *queued is set to
 * true; that agent carries it out at the start of its next pass.
 *
 * Errors: AG_EUSAGE when name has no record, or for retry when the record
 * is not failed. AG_ENOENT when the file is gone from the error folder.
 * AG_EEXIST when the inbox already has a file of that name. Otherwise as
 * agent_open() and agent_sync(). */
enum ag_code agent_request(const struct config *config,
                           enum agent_request_action action, const char *name,
                           bool *queued, struct ag_error *err);

/* Carry out the request files in <state_dir>/requests/ in the order they
 * were made, log each outcome and remove each file. A request that fails
 * for its own reason (no record, file missing) is logged and removed. An
 * error that ends the pass (connection, manifest) is returned and leaves
 * that request and the later ones for the next pass. Creates the folder
 * when it is missing, so that it belongs to the agent's user. */
enum ag_code agent_process_requests(struct agent *agent, struct ag_error *err);

/* Validate the connection and folders for config and print one line per
 * check to out: host key, login, inbox, archive and error folders, and the
 * local state and output folders. Creates nothing except a probe file in
 * each folder that must be writable, which it removes again. */
enum ag_code agent_check(const struct config *config, FILE *out,
                         struct ag_error *err);

/* Write a consistent, compacted copy of config's manifest to the file dest
 * (manifest_backup()) and print one line about it to out. Works while
 * another agent holds the state folder's lock and writes the manifest,
 * because it reads the manifest without the lock and changes nothing.
 * With replace, an existing dest is replaced. Errors: AG_ESTATELOST as
 * agent_open(); AG_ESTATE when the agent has not run yet; AG_EUSAGE when
 * dest exists and replace is false; AG_ELOCAL for dest. */
enum ag_code agent_backup(const struct config *config, const char *dest,
                          bool replace, FILE *out, struct ag_error *err);

enum agent_status_format { AGENT_STATUS_TEXT, AGENT_STATUS_JSON };

/* Print to out the manifest's counts by state, the time of the last pass
 * without an error and the backlog it left. Then print the delivered files
 * that wait for their remote move (with the failed attempts of each whose
 * move failed), those that wait for their hook (with the end of its last
 * run), and the failed files with their reasons. The text form shows 10
 * of each list, the newest failures first, and the JSON form (one object,
 * described in the README) all of them. Reads the manifest without taking the
 * state folder's lock. Errors: AG_ESTATELOST, AG_ESTATE, AG_ENOMEM. */
enum ag_code agent_status(const struct config *config,
                          enum agent_status_format format, FILE *out,
                          struct ag_error *err);

#endif
