/* Prometheus text-format metrics, accumulated over passes and published
 * atomically for node_exporter's textfile collector. */
#include "agent/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/atomic_file.h"
#include "agent/platform.h"

#define PREFIX "rossum_sftp_agent_"

void metrics_add_pass(struct metrics *metrics,
                      const struct agent_summary *summary, enum ag_code code)
{
  for (size_t i = 0; i < AGENT_FORMAT_COUNT; i++) {
    metrics->delivered[i] += summary->delivered_by_format[i];
    metrics->failed[i] += summary->failed_by_format[i];
  }
  metrics->duplicates += summary->duplicates;
  metrics->claimed_elsewhere += summary->claimed_elsewhere;
  metrics->bytes += summary->bytes;
  metrics->polls++;
  if (code != AG_OK)
    metrics->poll_errors++;
  if (summary->last_success > metrics->last_success)
    metrics->last_success = summary->last_success;
  metrics->poll_duration = (double)summary->duration_ms / 1000.0;
  metrics->backlog = summary->backlog;
  metrics->pending_archive = summary->pending_archive;
}

static void write_header(FILE *file, const char *name, const char *type,
                         const char *help)
{
  fprintf(file, "# HELP " PREFIX "%s %s\n# TYPE " PREFIX "%s %s\n", name, help,
          name, type);
}

static void write_counter(FILE *file, const char *name, const char *help,
                          uint64_t value)
{
  write_header(file, name, "counter", help);
  fprintf(file, PREFIX "%s %llu\n", name, (unsigned long long)value);
}

static void write_by_format(FILE *file, const char *name, const char *help,
                            const uint64_t *values)
{
  write_header(file, name, "counter", help);
  for (size_t i = 0; i < AGENT_FORMAT_COUNT; i++)
    fprintf(file, PREFIX "%s{format=\"%s\"} %llu\n", name,
            agent_format_name((enum agent_format)i),
            (unsigned long long)values[i]);
}

static void write_metrics(FILE *file, const struct metrics *metrics)
{
  write_by_format(file, "files_delivered_total",
                  "Export files delivered as JSON outputs, by input format.",
                  metrics->delivered);
  write_by_format(file, "files_failed_total",
                  "Export files that could not be processed and were moved "
                  "to the error folder or left in place, by input format.",
                  metrics->failed);
  write_counter(file, "files_duplicate_total",
                "Identical re-uploads archived without a second delivery.",
                metrics->duplicates);
  write_counter(file, "files_claimed_elsewhere_total",
                "Files that another agent on the same inbox claimed first "
                "([remote] claim_dir).",
                metrics->claimed_elsewhere);
  write_counter(file, "downloaded_bytes_total",
                "Bytes downloaded from the SFTP server.", metrics->bytes);
  write_counter(file, "polls_total", "Passes over the inbox.", metrics->polls);
  write_counter(file, "poll_errors_total",
                "Passes that ended early with an error (connection, state "
                "store or disk).",
                metrics->poll_errors);
  write_counter(file, "reconnects_total",
                "Connections made again after the previous one was lost.",
                metrics->reconnects);

  write_header(file, "last_success_timestamp_seconds", "gauge",
               "Unix time at the end of the last pass without an error, or "
               "0 if there was none.");
  fprintf(file, PREFIX "last_success_timestamp_seconds %lld\n",
          (long long)metrics->last_success);
  write_header(file, "poll_duration_seconds", "gauge",
               "How long the last pass took.");
  fprintf(file, PREFIX "poll_duration_seconds %.3f\n", metrics->poll_duration);
  write_header(file, "backlog_files", "gauge",
               "Files that the last pass listed but did not take: still "
               "changing, or over max_files_per_poll.");
  fprintf(file, PREFIX "backlog_files %llu\n",
          (unsigned long long)metrics->backlog);
  write_header(file, "pending_archive_files", "gauge",
               "Delivered files whose remote move failed in the last pass "
               "and is tried again in the next.");
  fprintf(file, PREFIX "pending_archive_files %llu\n",
          (unsigned long long)metrics->pending_archive);
}

/* Split path into its folder and a temporary-file prefix ".<base name>",
 * both malloc'd. */
static enum ag_code split_path(const char *path, char **dir, char **prefix,
                               struct ag_error *err)
{
  const char *base = plat_path_base(path);
  size_t dir_len = (size_t)(base - path);
  size_t prefix_size = strlen(base) + 2;

  /* dir keeps the separator only when it is the root ("/" or "C:\"). */
  if (dir_len == 0)
    *dir = strdup(".");
  else if (dir_len == 1 || (dir_len > 1 && path[dir_len - 2] == ':'))
    *dir = strndup(path, dir_len);
  else
    *dir = strndup(path, dir_len - 1);
  *prefix = malloc(prefix_size);
  if (*dir == NULL || *prefix == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  snprintf(*prefix, prefix_size, ".%s", base);
  return AG_OK;
}

enum ag_code metrics_write(const char *path, const struct metrics *metrics,
                           struct ag_error *err)
{
  char *dir = NULL;
  char *prefix = NULL;
  struct atomic_file *file = NULL;
  enum ag_code code = split_path(path, &dir, &prefix, err);

  if (code != AG_OK)
    goto out;
  plat_remove_stale_temps(dir, prefix);

  /* NOTE: 0640 lets only the owner's group read the file, so the
   * collector's user must be in the agent's group. */
  code = atomic_file_create(dir, prefix, ATOMIC_FILE_GROUP_READ, &file, err);
  if (code != AG_OK)
    goto out;
  write_metrics(atomic_file_stream(file), metrics);

  /* atomic_file_publish() reports a write error that fprintf() left in
   * the stream. */
  code = atomic_file_publish(file, prefix + 1, err);

out:
  atomic_file_free(file);
  free(prefix);
  free(dir);
  return code;
}
