/* The post-delivery hook: the [hook] exec command, run once for each
 * delivered output before the remote file is archived, deleted or kept.
 *
 * The command runs without a shell. hook_split_command() splits exec into
 * words, and the agent appends three arguments: the output file's full
 * path, the source name (the path below the inbox as the status command
 * shows it) and the SHA-256 of the content in lowercase hex. For a
 * passthrough file, the output is its sidecar ("<copy>.json").
 *
 * A run that exits non-zero, is ended by a signal, runs past [hook]
 * timeout or cannot start is a failure. The record then stays DELIVERED,
 * the remote step waits, and a later pass runs the hook again: the next
 * pass after the first failure, then after hook_retry_delay(). A success
 * is recorded before the remote step. After a crash between a success and
 * its record, the hook runs a second time for the same output. */
#ifndef AGENT_HOOK_H
#define AGENT_HOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/config.h"
#include "agent/error.h"
#include "agent/manifest.h"

struct agent;
struct agent_summary;

/* Maximum number of words in [hook] exec, program included. */
#define HOOK_WORDS_MAX 64

/* Delays between failed runs: 10 s after the second failure, doubling
 * up to 1 h. */
#define HOOK_RETRY_BASE_SECONDS 10
#define HOOK_RETRY_MAX_SECONDS 3600

/* Split text, the value of [hook] exec, into words. Spaces and tabs
 * separate words. Text in single or double quotes keeps its spaces and
 * loses the quotes, and a quote of the other kind inside it is an ordinary
 * character. Quoted and unquoted parts without a space between them form
 * one word, and '' or "" alone is an empty word. A backslash is an
 * ordinary character. The first word must be an absolute path, because
 * no PATH search is done.
 *
 * Stores in *words_out a NULL-terminated array of the words, allocated
 * as one block that the caller frees with free(), and the number of words
 * in *count_out. Errors: AG_ECONFIG for an empty command, a quote that is
 * not closed, more than HOOK_WORDS_MAX words or a program that is not an
 * absolute path, with a message that starts with "[hook] exec" and names
 * no file; AG_ENOMEM. */
enum ag_code hook_split_command(const char *text, char ***words_out,
                                size_t *count_out, struct ag_error *err);

/* Return the seconds from a failed run to the next one, after failures
 * failed runs in a row: 0 after the first, so the next pass runs the hook
 * again, then HOOK_RETRY_BASE_SECONDS doubling up to
 * HOOK_RETRY_MAX_SECONDS. */
int64_t hook_retry_delay(uint32_t failures);

/* Return whether record waits for the hook under config: exec is set,
 * the record is DELIVERED with an output, and no run has succeeded yet.
 * An identical re-upload has no output of its own, so it needs no hook. */
bool hook_is_pending(const struct config *config,
                     const struct manifest_record *record);

/* Run the hook for the delivered record of rel when it is pending and its
 * retry time has come, and record the outcome in the manifest. Sets
 * *finished to true when the remote step may follow: no hook is pending,
 * or the run succeeded and that was recorded. Otherwise the run failed,
 * waits for its retry time or was stopped because the agent is stopping,
 * and the outcome is logged and counted in summary as pending.
 *
 * A failed run is not an error of this function. Errors: AG_ESTATE when
 * the outcome cannot be recorded, AG_ENOMEM. */
enum ag_code hook_run_pending(struct agent *agent, const char *rel,
                              size_t rel_len, struct manifest_record *record,
                              struct agent_summary *summary, bool *finished,
                              struct ag_error *err);

#endif
