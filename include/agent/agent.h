/* The agent's core: one pass over the inbox, shared by every front end.
 *
 * The sync command runs one pass; the daemon and the Windows service run
 * passes in a loop. A pass lists the inbox, waits for files that are still
 * changing, then takes each stable file through download, parse, output,
 * manifest and the remote move, recording every step after it happened. */
#ifndef AGENT_AGENT_H
#define AGENT_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agent/config.h"
#include "agent/error.h"

struct agent;

/* What one pass did, for the summary line and the exit code. */
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

/* Run one pass, connecting first if needed. Per-file problems are counted
 * in summary and logged, and do not fail the pass. Returns an error when
 * the pass could not go on: connection, host key or authentication
 * failures, local disk or manifest failures. */
enum ag_code agent_sync(struct agent *agent, struct agent_summary *summary,
                        struct ag_error *err);

/* Validate the connection and folders for config and print one line per
 * check to out: host key, login, inbox, archive and error folders, and the
 * local state and output folders. Creates nothing except a probe file in
 * each folder that must be writable, which it removes again. */
enum ag_code agent_check(const struct config *config, FILE *out,
                         struct ag_error *err);

/* Print the manifest's counts by state and the most recent failures. */
enum ag_code agent_status(const struct config *config, FILE *out,
                          struct ag_error *err);

#endif
