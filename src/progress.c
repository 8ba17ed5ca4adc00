/* The progress display of a pass: the agent's side, which reports counts,
 * and the terminal side, which draws them as the log's status line. */
#include "agent/progress.h"

#include <stdio.h>

#include "agent/log.h"
#include "agent/platform.h"
#include "agent_internal.h"

void agent_set_progress_display(struct agent *agent, agent_progress_fn fn,
                                void *ctx)
{
  agent->progress_display = fn;
  agent->progress_display_ctx = ctx;
}

void agent_show_progress(const struct agent *agent, size_t files_done,
                         size_t files_total, uint64_t bytes, int64_t started_ms)
{
  struct agent_progress progress = {
      .files_done = files_done,
      .files_total = files_total,
      .bytes = bytes,
      .elapsed_ms = plat_monotonic_ms() - started_ms,
  };

  if (agent->progress_display != NULL)
    agent->progress_display(agent->progress_display_ctx, &progress);
}

/* Format bytes with a binary unit, such as "1.2 MiB". */
static void format_bytes(double bytes, const char *suffix, char *out,
                         size_t out_size)
{
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t unit = 0;

  while (bytes >= 1024.0 && unit + 1 < sizeof(units) / sizeof(units[0])) {
    bytes /= 1024.0;
    unit++;
  }
  if (unit == 0)
    snprintf(out, out_size, "%.0f %s%s", bytes, units[unit], suffix);
  else
    snprintf(out, out_size, "%.1f %s%s", bytes, units[unit], suffix);
}

void progress_format(const struct agent_progress *progress, char *out,
                     size_t out_size)
{
  char amount[32];
  char rate[32] = "";

  format_bytes((double)progress->bytes, "", amount, sizeof(amount));
  if (progress->elapsed_ms > 0) {
    double per_second =
        (double)progress->bytes * 1000.0 / (double)progress->elapsed_ms;
    format_bytes(per_second, "/s", rate, sizeof(rate));
  }
  snprintf(out, out_size, "sync: %zu/%zu files, %s%s%s", progress->files_done,
           progress->files_total, amount, rate[0] != '\0' ? ", " : "", rate);
}

void progress_show(void *ctx, const struct agent_progress *progress)
{
  char line[128];

  (void)ctx;
  progress_format(progress, line, sizeof(line));
  log_set_status_line(line);
}

void progress_clear(void)
{
  log_set_status_line(NULL);
}
