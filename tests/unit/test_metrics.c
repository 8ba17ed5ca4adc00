/* Unit tests for metrics.c: adding passes up and writing the Prometheus
 * text file atomically into a fresh temporary folder. */
#include "agent/metrics.h"

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DIR_SIZE 4096
#define PATH_SIZE 4200

static int setup_folder(void **state)
{
  char *dir = malloc(DIR_SIZE);

  if (dir == NULL)
    return -1;
  if (make_temp_dir("test_metrics", dir, DIR_SIZE) != 0) {
    free(dir);
    return -1;
  }
  *state = dir;
  return 0;
}

static int teardown_folder(void **state)
{
  char *dir = *state;
  int rc = remove_tree(dir);

  free(dir);
  return rc;
}

static void write_ok(const char *path, const struct metrics *metrics)
{
  struct ag_error err = {0};
  enum ag_code code = metrics_write(path, metrics, &err);

  if (code != AG_OK)
    print_error("metrics_write: %s\n", err.message);
  assert_int_equal(code, AG_OK);
}

/* Fail unless text contains line as a whole line. */
static void assert_line(const char *text, const char *line)
{
  char needle[512];

  format_text(needle, sizeof(needle), "\n%s\n", line);
  if (strncmp(text, needle + 1, strlen(needle) - 1) != 0 &&
      strstr(text, needle) == NULL)
    fail_msg("line '%s' not found in:\n%s", line, text);
}

/* ---- Adding passes ---- */

static void test_formats_named(void **state)
{
  (void)state;
  assert_int_equal(agent_format_of("xml"), AGENT_FORMAT_XML);
  assert_int_equal(agent_format_of("csv"), AGENT_FORMAT_CSV);
  assert_int_equal(agent_format_of("json"), AGENT_FORMAT_JSON);
  assert_int_equal(agent_format_of(""), AGENT_FORMAT_OTHER);
  assert_int_equal(agent_format_of("passthrough"), AGENT_FORMAT_OTHER);
  assert_string_equal(agent_format_name(AGENT_FORMAT_XML), "xml");
  assert_string_equal(agent_format_name(AGENT_FORMAT_CSV), "csv");
  assert_string_equal(agent_format_name(AGENT_FORMAT_JSON), "json");
  assert_string_equal(agent_format_name(AGENT_FORMAT_OTHER), "other");
  assert_string_equal(agent_format_name(AGENT_FORMAT_COUNT), "other");
}

/* Counters add up over passes. Gauges take the last pass's value, and a
 * failed pass keeps the last success time. */
static void test_add_passes(void **state)
{
  struct metrics metrics = {0};
  struct agent_summary first = {0};
  struct agent_summary second = {0};

  (void)state;
  first.delivered_by_format[AGENT_FORMAT_XML] = 2;
  first.failed_by_format[AGENT_FORMAT_CSV] = 1;
  first.duplicates = 1;
  first.claimed_elsewhere = 5;
  first.bytes = 1000;
  first.backlog = 4;
  first.pending_archive = 2;
  first.duration_ms = 1500;
  first.last_success = 1700000000;
  second.delivered_by_format[AGENT_FORMAT_XML] = 1;
  second.delivered_by_format[AGENT_FORMAT_JSON] = 3;
  second.bytes = 24;
  second.claimed_elsewhere = 2;
  second.backlog = 1;
  second.duration_ms = 250;
  second.last_success = 1600000000;

  metrics_add_pass(&metrics, &first, AG_OK);
  metrics_add_pass(&metrics, &second, AG_ECONNECT);

  assert_int_equal(metrics.delivered[AGENT_FORMAT_XML], 3);
  assert_int_equal(metrics.delivered[AGENT_FORMAT_JSON], 3);
  assert_int_equal(metrics.delivered[AGENT_FORMAT_CSV], 0);
  assert_int_equal(metrics.failed[AGENT_FORMAT_CSV], 1);
  assert_int_equal(metrics.duplicates, 1);
  assert_int_equal(metrics.claimed_elsewhere, 7);
  assert_int_equal(metrics.bytes, 1024);
  assert_int_equal(metrics.polls, 2);
  assert_int_equal(metrics.poll_errors, 1);
  assert_int_equal(metrics.backlog, 1);
  assert_int_equal(metrics.pending_archive, 0);
  assert_int_equal(metrics.last_success, 1700000000);
  assert_true(metrics.poll_duration > 0.2499 && metrics.poll_duration < 0.2501);
}

/* ---- Writing ---- */

static void test_write_values(void **state)
{
  char path[PATH_SIZE];
  struct metrics metrics = {0};

  join_path(path, sizeof(path), *state, "agent.prom");
  metrics.delivered[AGENT_FORMAT_XML] = 2;
  metrics.delivered[AGENT_FORMAT_CSV] = 1;
  metrics.failed[AGENT_FORMAT_OTHER] = 4;
  metrics.duplicates = 5;
  metrics.claimed_elsewhere = 8;
  metrics.bytes = 123456789012ULL;
  metrics.polls = 7;
  metrics.poll_errors = 1;
  metrics.reconnects = 3;
  metrics.last_success = 1733300000;
  metrics.poll_duration = 1.25;
  metrics.backlog = 6;
  metrics.pending_archive = 2;
  write_ok(path, &metrics);

  char *text = read_file(path, NULL);
  assert_line(text, "# TYPE rossum_sftp_agent_files_delivered_total counter");
  assert_line(text,
              "rossum_sftp_agent_files_delivered_total{format=\"xml\"} 2");
  assert_line(text,
              "rossum_sftp_agent_files_delivered_total{format=\"csv\"} 1");
  assert_line(text,
              "rossum_sftp_agent_files_delivered_total{format=\"json\"} 0");
  assert_line(text, "rossum_sftp_agent_files_failed_total{format=\"xml\"} 0");
  assert_line(text, "rossum_sftp_agent_files_failed_total{format=\"other\"} 4");
  assert_line(text, "rossum_sftp_agent_files_duplicate_total 5");
  assert_line(text, "rossum_sftp_agent_files_claimed_elsewhere_total 8");
  assert_line(text, "rossum_sftp_agent_downloaded_bytes_total 123456789012");
  assert_line(text, "rossum_sftp_agent_polls_total 7");
  assert_line(text, "rossum_sftp_agent_poll_errors_total 1");
  assert_line(text, "rossum_sftp_agent_reconnects_total 3");
  assert_line(text,
              "# TYPE rossum_sftp_agent_last_success_timestamp_seconds gauge");
  assert_line(text, "rossum_sftp_agent_last_success_timestamp_seconds "
                    "1733300000");
  assert_line(text, "rossum_sftp_agent_poll_duration_seconds 1.250");
  assert_line(text, "rossum_sftp_agent_backlog_files 6");
  assert_line(text, "rossum_sftp_agent_pending_archive_files 2");
  assert_int_equal(text[strlen(text) - 1], '\n');
  free(text);
}

/* Each metric has one HELP and one TYPE line before its samples. */
static void test_write_help_before_samples(void **state)
{
  char path[PATH_SIZE];
  struct metrics metrics = {0};
  char *text;
  char *line;
  char *next;
  char declared[128] = "";
  size_t samples = 0;

  join_path(path, sizeof(path), *state, "agent.prom");
  write_ok(path, &metrics);
  text = read_file(path, NULL);
  for (line = text; *line != '\0'; line = next + 1) {
    next = strchr(line, '\n');
    assert_non_null(next);
    *next = '\0';
    if (strncmp(line, "# HELP ", 7) == 0) {
      char *name_end = strchr(line + 7, ' ');
      assert_non_null(name_end);
      format_text(declared, sizeof(declared), "%.*s",
                  (int)(name_end - (line + 7)), line + 7);
      continue;
    }
    if (strncmp(line, "# TYPE ", 7) == 0) {
      assert_int_equal(strncmp(line + 7, declared, strlen(declared)), 0);
      continue;
    }
    assert_int_equal(strncmp(line, declared, strlen(declared)), 0);
    assert_true(line[strlen(declared)] == ' ' || line[strlen(declared)] == '{');
    samples++;
  }
  assert_int_equal(samples, 2 * AGENT_FORMAT_COUNT + 10);
  free(text);
}

/* A new file replaces the old one whole, leaves no temporary file, removes
 * temporary files of a crashed write, and can be read by the group. */
static void test_write_replaces_atomically(void **state)
{
  char path[PATH_SIZE];
  char stale[PATH_SIZE];
  char names[4][ENTRY_NAME_SIZE];
  struct metrics metrics = {0};
  struct stat info;

  join_path(path, sizeof(path), *state, "agent.prom");
  join_path(stale, sizeof(stale), *state, ".agent.prom.AbC123.tmp");
  write_file(path, "old content\n", 12);
  write_file(stale, "partial", 7);
  metrics.polls = 1;
  write_ok(path, &metrics);

  char *text = read_file(path, NULL);
  assert_not_contains(text, "old content");
  assert_contains(text, "rossum_sftp_agent_polls_total 1\n");
  assert_int_equal(list_dir(*state, names, 4), 1);
  assert_string_equal(names[0], "agent.prom");
  assert_int_equal(stat(path, &info), 0);
  assert_int_equal(info.st_mode & 0777, 0640);
  free(text);
}

static void test_write_missing_folder(void **state)
{
  char path[PATH_SIZE];
  char dir[PATH_SIZE];
  struct metrics metrics = {0};
  struct ag_error err = {0};

  join_path(dir, sizeof(dir), *state, "missing");
  join_path(path, sizeof(path), dir, "agent.prom");
  assert_int_equal(metrics_write(path, &metrics, &err), AG_ELOCAL);
  assert_contains(err.message, dir);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_formats_named),
      cmocka_unit_test(test_add_passes),
      cmocka_unit_test_setup_teardown(test_write_values, setup_folder,
                                      teardown_folder),
      cmocka_unit_test_setup_teardown(test_write_help_before_samples,
                                      setup_folder, teardown_folder),
      cmocka_unit_test_setup_teardown(test_write_replaces_atomically,
                                      setup_folder, teardown_folder),
      cmocka_unit_test_setup_teardown(test_write_missing_folder, setup_folder,
                                      teardown_folder),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
