/* A one-line progress display of a sync pass on a terminal: files done of
 * the total, bytes downloaded and the download rate. It is drawn as the
 * log's status line (log_set_status_line()), so log lines still appear
 * above it. */
#ifndef AGENT_PROGRESS_H
#define AGENT_PROGRESS_H

#include <stddef.h>

#include "agent/agent.h"

/* Format progress as "sync: 3/10 files, 1.2 MiB, 340.5 KiB/s" into out,
 * which is always NUL-terminated. The rate is left out until 1 ms has
 * passed. */
void progress_format(const struct agent_progress *progress, char *out,
                     size_t out_size);

/* An agent_progress_fn that shows progress as the log's status line. ctx
 * is not used. */
void progress_show(void *ctx, const struct agent_progress *progress);

/* Remove the progress line. */
void progress_clear(void);

#endif
