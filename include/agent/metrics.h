/* Prometheus metrics in a text file, for node_exporter's textfile
 * collector.
 *
 * A front end keeps one struct metrics for the life of the process, adds
 * each pass with metrics_add_pass() and then writes the file with
 * metrics_write(). Counters therefore count from the start of the process:
 * one pass for sync, every pass for a long-running agent. Every metric
 * name starts with rossum_sftp_agent_.
 *
 * NOTE: two sync runs with equal counts write equal counter values, which
 * Prometheus reads as no increase. Totals kept in the manifest would fix
 * that for the timer-driven sync. */
#ifndef AGENT_METRICS_H
#define AGENT_METRICS_H

#include <stdint.h>

#include "agent/agent.h"
#include "agent/error.h"

/* Totals since the process started, and gauges from the last pass. */
struct metrics {
  uint64_t delivered[AGENT_FORMAT_COUNT]; /* outputs published, by format */
  uint64_t failed[AGENT_FORMAT_COUNT];    /* failed files, by format */
  uint64_t duplicates;                    /* identical re-uploads archived */
  uint64_t bytes;                         /* bytes downloaded */
  uint64_t polls;                         /* passes */
  uint64_t poll_errors;                   /* passes that ended with an error */
  uint64_t reconnects;      /* counted by the front end that reconnects */
  int64_t last_success;     /* Unix seconds; 0 when no pass succeeded */
  double poll_duration;     /* seconds the last pass took */
  uint64_t backlog;         /* files the last pass listed but did not take */
  uint64_t pending_archive; /* delivered files whose move failed last pass */

  /* Files that another agent on the same inbox claimed first. */
  uint64_t claimed_elsewhere;
};

/* Add one pass that ended with code to metrics. The counters grow by the
 * summary's counts, and the gauges take its values. */
void metrics_add_pass(struct metrics *metrics,
                      const struct agent_summary *summary, enum ag_code code);

/* Write metrics to path in the Prometheus text format (version 0.0.4).
 * The write is atomic, because a temporary file in the same folder is
 * synced and then renamed onto path. Its name starts with '.' and ends in
 * ".tmp", so the textfile collector ignores it. The file can be read by
 * the owner's group (0640 on POSIX). Temporary files that a crash left are
 * removed first. Errors: AG_ELOCAL naming the file, AG_ENOMEM. */
enum ag_code metrics_write(const char *path, const struct metrics *metrics,
                           struct ag_error *err);

#endif
