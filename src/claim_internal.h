/* Claims: several agents on one inbox, with [remote] claim_dir.
 *
 * An agent claims a stable file by renaming it from the inbox to
 * <claim_dir>/<agent id>/<path below the inbox> before it downloads it.
 * A rename never replaces a file, so when agents race for a file, one
 * rename succeeds and the others find the source gone and skip it. The
 * manifest key stays the path below the inbox, and the record's claim_path
 * is where the file is now. The agent id is manifest_agent_id().
 *
 * Beside its claim folder, each agent keeps in claim_dir:
 * - <agent id>.alive.<n>, its heartbeat: a small file written again every
 *   claim_timeout / 4 seconds while the agent makes passes. Its mtime, set
 *   by the server's clock, shows when the agent last ran.
 * - <agent id>.delivered/, the delivered files whose hook or archive move
 *   is still to do.
 *
 * When an agent's newest heartbeat is older than claim_timeout by the
 * server's clock, the agent has stopped, and any other agent returns the
 * files of its claim folder to the inbox and archives the files of its
 * delivered folder without delivering them again.
 *
 * NOTE: an agent that stops for good between publishing an output and
 * moving its file out of the claim folder (into the archive, or into the
 * delivered folder before a hook) leaves the file to be returned to the
 * inbox and delivered again by another agent. So does a running agent
 * that writes no heartbeat for longer than claim_timeout. The output's
 * content hash lets a receiver ignore the repeat.
 *
 * Every function here does nothing and returns AG_OK (or the inbox path)
 * when claim_dir is not set. */
#ifndef AGENT_CLAIM_INTERNAL_H
#define AGENT_CLAIM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agent_internal.h"

/* Length of an agent id: 32 lowercase hex digits. */
#define CLAIM_ID_LEN 32

/* The suffixes of an agent's delivered folder and heartbeat files. */
#define CLAIM_DELIVERED_SUFFIX ".delivered"
#define CLAIM_HEARTBEAT_INFIX ".alive."

/* Kinds of names listed in claim_dir. */
enum claim_entry {
  CLAIM_ENTRY_OTHER,     /* not an agent's: ignored */
  CLAIM_ENTRY_CLAIMS,    /* "<id>": the agent's claim folder */
  CLAIM_ENTRY_DELIVERED, /* "<id>.delivered": its delivered folder */
  CLAIM_ENTRY_HEARTBEAT  /* "<id>.alive.<decimal number>" */
};

/* Classify name[0..len), a name listed in claim_dir. For an agent's entry,
 * copies the agent id with a terminating NUL into id. */
enum claim_entry claim_classify(const char *name, size_t len,
                                char id[CLAIM_ID_LEN + 1]);

/* Return whether an agent whose last heartbeat has mtime last_alive has
 * stopped at now, both Unix seconds by the server's clock. A heartbeat
 * from the future (a clock that was set back) counts as recent. */
bool claim_is_stale(int64_t last_alive, int64_t now, int timeout);

/* Return the milliseconds between two heartbeats for claim_timeout
 * timeout seconds: a quarter of it, so that a running agent is never
 * close to the timeout. */
int64_t claim_heartbeat_interval_ms(int timeout);

/* A claim folder's listing: files and folders below it, recursively. */
struct claim_item {
  char *rel; /* path below the listed folder, NUL-terminated */
  size_t rel_len;
  enum remote_kind kind;
  uint64_t size;
  int64_t mtime;
};

struct claim_listing {
  struct claim_item *items;
  size_t count;
  size_t capacity;
};

/* List dir into listing, recursively when recursive is set. A folder that
 * does not exist gives an empty listing. Errors as remote_list(). */
enum ag_code claim_list(struct agent *agent, const char *dir, bool recursive,
                        struct claim_listing *listing, struct ag_error *err);

/* Free the items of listing and empty it. */
void claim_listing_free(struct claim_listing *listing);

/* Return <claim_dir>/<id><suffix>, malloc'd, or NULL when out of memory.
 * suffix is "" for the claim folder or CLAIM_DELIVERED_SUFFIX. */
char *claim_folder(const struct config *config, const char *id,
                   const char *suffix);

/* Return <claim_dir>/<id><suffix>/<rel>, malloc'd, or NULL when out of
 * memory. */
char *claim_path_for(const struct config *config, const char *id,
                     const char *suffix, const char *rel, size_t rel_len);

/* Rename from to to on the server without replacing a file. When from
 * exists but the folder of to does not, create that folder and try once
 * more. Sets *source_gone when from does not exist, which is the case when
 * another agent moved it first. Errors as remote_rename(). */
enum ag_code claim_rename(struct agent *agent, const char *from, const char *to,
                          bool *source_gone, struct ag_error *err);

/* Per-agent state of the claim module, made by the first call that needs
 * it and freed by agent_close(). */
struct claim_state {
  struct stable *settling;  /* claimed files that changed after the claim */
  char *heartbeat;          /* remote path of the last heartbeat, or NULL */
  int64_t heartbeat_number; /* its <n> */
  int64_t heartbeat_ms;     /* when it was written, monotonic clock */
};

/* Return the agent's claim state, made on the first call, or NULL when
 * out of memory. */
struct claim_state *claim_state_get(struct agent *agent);

/* Free the state. Accepts NULL. */
void claim_state_free(struct claim_state *state);

/* Check that claim_dir exists on the server, so that a typo fails the pass
 * instead of creating a folder tree. Error: AG_ENOENT naming the key. */
enum ag_code claim_check_folder(struct agent *agent, struct ag_error *err);

/* Start a pass. When a heartbeat is due, check claim_dir, write the
 * heartbeat and return the claims of stopped agents (claim_peers.c).
 * Errors: AG_ENOENT for a missing claim_dir, and a heartbeat that cannot
 * be written ends the pass, because other agents would take this agent's
 * claims back while it works on them. */
enum ag_code claim_begin_pass(struct agent *agent, struct ag_error *err);

/* Write a heartbeat when one is due, or at once with force. Errors as
 * claim_begin_pass(). */
enum ag_code claim_heartbeat(struct agent *agent, bool force,
                             struct ag_error *err);

/* Take the files in this agent's claim folder: claimed before a crash,
 * with or without a record, or taken over from a stopped agent. Files
 * that are delivered are left to resume_unfinished(). Per-file outcomes go
 * to summary as with ingest_file(). */
enum ag_code claim_resume(struct agent *agent, struct agent_summary *summary,
                          struct ag_error *err);

/* Claim file for this agent before it is downloaded. Sets *taken when the
 * agent may go on, and then stores in *claim_path the file's path in the
 * claim folder (malloc'd), or NULL without claim_dir. A file that another
 * agent claimed first, or that must wait, is counted in summary and logged,
 * and leaves *taken false. Errors: only those that end the pass. */
enum ag_code claim_take(struct agent *agent, const struct candidate *file,
                        char **claim_path, bool *taken,
                        struct agent_summary *summary, struct ag_error *err);

/* Return the remote path of the file of rel (malloc'd): the record's
 * claim_path when it has one, else the path in the inbox. record may be
 * NULL. Returns NULL when out of memory. */
char *claim_source_path(const struct config *config, const char *rel,
                        size_t rel_len, const struct manifest_record *record);

/* Move a delivered file from this agent's claim folder into its delivered
 * folder and record the new claim_path. Call it before a step that may
 * wait (the hook, a failed archive move), because other agents archive a
 * stopped agent's delivered files instead of returning them to the inbox.
 * A move that fails is logged, and the file stays where it is. Errors:
 * only those that end the pass. */
enum ag_code claim_stage_delivered(struct agent *agent, const char *rel,
                                   size_t rel_len,
                                   struct manifest_record *record,
                                   struct ag_error *err);

/* For sync --dry-run: print to out where files are claimed, the files in
 * this agent's claim folder that a pass would finish, and the other agents
 * with the age of their heartbeat by this host's clock. Adds the files to
 * finish to *retries. */
enum ag_code claim_plan(struct agent *agent, FILE *out, size_t *retries,
                        struct ag_error *err);

#endif
