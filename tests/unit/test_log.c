/* Unit tests for log.c: the file target and its reopening, the journal
 * form of stderr, the repeat limit and escaping. Each test logs into files
 * in a fresh temporary folder, and stderr is redirected to a file where a
 * test needs it. */
#include "agent/log.h"

#include "agent/config.h"
#include "agent/platform.h"
#include "agent/utf8.h"

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DIR_SIZE 4096
#define PATH_SIZE 4200

/* ---- Fixtures and helpers ---- */

static int setup_folder(void **state)
{
  char *dir = malloc(DIR_SIZE);

  if (dir == NULL)
    return -1;
  if (make_temp_dir("test_log", dir, DIR_SIZE) != 0) {
    free(dir);
    return -1;
  }
  log_set_level(LOG_LEVEL_INFO);
  log_set_rate_limit(10, 60000);
  *state = dir;
  return 0;
}

/* Put the logger back to its defaults and remove the folder. */
static int teardown_folder(void **state)
{
  char *dir = *state;

  log_close();
  log_set_level(LOG_LEVEL_INFO);
  log_set_rate_limit(10, 60000);
  unsetenv("JOURNAL_STREAM");
  int rc = remove_tree(dir);
  free(dir);
  return rc;
}

/* Switch the logger to the file dir/name at level. */
static void use_log_file(const char *dir, const char *name,
                         enum log_level level, char *path, size_t path_size)
{
  struct config config = {0};
  struct ag_error err = {0};

  join_path(path, path_size, dir, name);
  config.log_target = LOG_TARGET_FILE;
  config.log_file = path;
  config.log_level = level;
  enum ag_code code = log_configure(&config, &err);
  if (code != AG_OK)
    print_error("log_configure: %s\n", err.message);
  assert_int_equal(code, AG_OK);
}

/* Count the lines of text. */
static size_t count_lines(const char *text)
{
  size_t lines = 0;

  for (const char *p = text; *p != '\0'; p++)
    lines += *p == '\n';
  return lines;
}

/* Count how often needle occurs in text. */
static size_t count_occurrences(const char *text, const char *needle)
{
  size_t count = 0;

  for (const char *p = strstr(text, needle); p != NULL;
       p = strstr(p + 1, needle))
    count++;
  return count;
}

/* Redirect stderr to path until restore_stderr(); returns the old stderr. */
static int redirect_stderr(const char *path)
{
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  FILE *file = fopen(path, "w");

  assert_true(saved >= 0);
  assert_non_null(file);
  assert_int_equal(dup2(fileno(file), STDERR_FILENO), STDERR_FILENO);
  fclose(file);
  return saved;
}

static void restore_stderr(int saved)
{
  fflush(stderr);
  assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
  close(saved);
}

/* Set JOURNAL_STREAM to "<device>:<inode>" of the current stderr, plus
 * inode_offset. */
static void set_journal_stream(long inode_offset)
{
  struct stat info;
  char value[64];

  assert_int_equal(fstat(STDERR_FILENO, &info), 0);
  format_text(
      value, sizeof(value), "%llu:%llu", (unsigned long long)info.st_dev,
      (unsigned long long)info.st_ino + (unsigned long long)inode_offset);
  assert_int_equal(setenv("JOURNAL_STREAM", value, 1), 0);
}

/* ---- File target ---- */

/* Each line is "<UTC ISO-8601 time with ms> <level>: <message>", and the
 * time is the current one. */
static void test_file_line_format(void **state)
{
  char path[PATH_SIZE];
  regex_t pattern;
  regmatch_t match[2];

  use_log_file(*state, "agent.log", LOG_LEVEL_INFO, path, sizeof(path));
  time_t before = time(NULL);
  log_info("delivered %d files", 3);
  log_warn("a warning");
  log_error("an error: %s", "disk full");
  log_debug("not written at level info");
  time_t after = time(NULL);
  log_close();

  char *text = read_file(path, NULL);
  assert_int_equal(count_lines(text), 3);
  assert_int_equal(
      regcomp(&pattern,
              "^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})"
              "\\.[0-9]{3}Z info: delivered 3 files\n"
              "[0-9T:.-]{23}Z warn: a warning\n"
              "[0-9T:.-]{23}Z error: an error: disk full\n$",
              REG_EXTENDED),
      0);
  int rc = regexec(&pattern, text, 2, match, 0);
  if (rc != 0)
    print_error("log file:\n%s", text);
  assert_int_equal(rc, 0);

  struct tm utc = {0};
  char stamp[32];
  memcpy(stamp, text + match[1].rm_so,
         (size_t)(match[1].rm_eo - match[1].rm_so));
  stamp[match[1].rm_eo - match[1].rm_so] = '\0';
  assert_int_equal(sscanf(stamp, "%4d-%2d-%2dT%2d:%2d:%2d", &utc.tm_year,
                          &utc.tm_mon, &utc.tm_mday, &utc.tm_hour, &utc.tm_min,
                          &utc.tm_sec),
                   6);
  utc.tm_year -= 1900;
  utc.tm_mon -= 1;
  time_t logged = timegm(&utc);
  assert_true(logged >= before && logged <= after);
  regfree(&pattern);
  free(text);
}

static void test_file_appends(void **state)
{
  char path[PATH_SIZE];

  join_path(path, sizeof(path), *state, "agent.log");
  write_file(path, "earlier line\n", 13);
  use_log_file(*state, "agent.log", LOG_LEVEL_INFO, path, sizeof(path));
  log_info("new line");
  log_close();

  char *text = read_file(path, NULL);
  assert_int_equal(strncmp(text, "earlier line\n", 13), 0);
  assert_contains(text + 13, " info: new line\n");
  assert_int_equal(count_lines(text), 2);
  free(text);
}

static void test_file_mode(void **state)
{
  char path[PATH_SIZE];
  struct stat info;
  mode_t old_mask = umask(0);

  use_log_file(*state, "agent.log", LOG_LEVEL_INFO, path, sizeof(path));
  umask(old_mask);
  assert_int_equal(stat(path, &info), 0);
  assert_int_equal(info.st_mode & 0777, 0640);
}

/* After logrotate renamed the file, lines go on into the renamed file until
 * log_reopen(), and then into a new file at the configured path. */
static void test_reopen_after_rename(void **state)
{
  char path[PATH_SIZE];
  char rotated[PATH_SIZE];
  struct ag_error err = {0};

  use_log_file(*state, "agent.log", LOG_LEVEL_INFO, path, sizeof(path));
  join_path(rotated, sizeof(rotated), *state, "agent.log.1");
  log_info("before rotation");
  assert_int_equal(rename(path, rotated), 0);
  log_info("after rename");
  assert_int_equal(log_reopen(&err), AG_OK);
  log_info("after reopen");
  log_close();

  char *old_text = read_file(rotated, NULL);
  char *new_text = read_file(path, NULL);
  assert_contains(old_text, "info: before rotation\n");
  assert_contains(old_text, "info: after rename\n");
  assert_not_contains(old_text, "after reopen");
  assert_int_equal(count_lines(old_text), 2);
  assert_contains(new_text, "info: after reopen\n");
  assert_int_equal(count_lines(new_text), 1);
  free(old_text);
  free(new_text);
}

/* When the path cannot be opened again, log_reopen() returns an error and
 * the lines keep going to the file that is open. */
static void test_reopen_failure_keeps_file(void **state)
{
  char sub[PATH_SIZE];
  char moved[PATH_SIZE];
  char path[PATH_SIZE];
  char moved_log[PATH_SIZE];
  struct ag_error err = {0};

  join_path(sub, sizeof(sub), *state, "logs");
  join_path(moved, sizeof(moved), *state, "logs.gone");
  assert_int_equal(mkdir(sub, 0700), 0);
  use_log_file(sub, "agent.log", LOG_LEVEL_INFO, path, sizeof(path));
  assert_int_equal(rename(sub, moved), 0);

  assert_int_equal(log_reopen(&err), AG_ELOCAL);
  assert_contains(err.message, path);
  assert_contains(err.message, "continues into the old file");
  log_info("still logged");
  log_close();

  join_path(moved_log, sizeof(moved_log), moved, "agent.log");
  char *text = read_file(moved_log, NULL);
  assert_contains(text, "info: still logged\n");
  free(text);
}

static void test_configure_missing_folder(void **state)
{
  char path[PATH_SIZE];
  struct config config = {0};
  struct ag_error err = {0};

  join_path(path, sizeof(path), *state, "no/such/agent.log");
  config.log_target = LOG_TARGET_FILE;
  config.log_file = path;
  assert_int_equal(log_configure(&config, &err), AG_ELOCAL);
  assert_contains(err.message, path);
  assert_contains(err.message, "No such file or directory");
}

static void test_reopen_other_targets(void **state)
{
  struct ag_error err = {0};

  (void)state;
  assert_int_equal(log_reopen(&err), AG_OK);
  assert_int_equal(err.code, AG_OK);
}

/* ---- stderr and the journal ---- */

/* With JOURNAL_STREAM naming stderr, each line is "<priority>message". */
static void test_journal_prefixes(void **state)
{
  char path[PATH_SIZE];
  struct config config = {0};
  struct ag_error err = {0};

  join_path(path, sizeof(path), *state, "stderr");
  int saved = redirect_stderr(path);
  set_journal_stream(0);
  config.log_target = LOG_TARGET_STDERR;
  config.log_level = LOG_LEVEL_DEBUG;
  enum ag_code code = log_configure(&config, &err);
  log_error("e %d", 1);
  log_warn("w");
  log_info("i");
  log_debug("d");
  restore_stderr(saved);

  assert_int_equal(code, AG_OK);
  assert_file_content(path, "<3>e 1\n<4>w\n<6>i\n<7>d\n");
}

/* A JOURNAL_STREAM of another stream, as a child process inherits it
 * after its stderr was redirected, keeps the timestamped form. */
static void test_journal_other_stream(void **state)
{
  char path[PATH_SIZE];
  struct config config = {0};
  struct ag_error err = {0};

  join_path(path, sizeof(path), *state, "stderr");
  int saved = redirect_stderr(path);
  set_journal_stream(1);
  config.log_target = LOG_TARGET_STDERR;
  config.log_level = LOG_LEVEL_INFO;
  log_configure(&config, &err);
  log_info("plain");
  restore_stderr(saved);

  char *text = read_file(path, NULL);
  assert_int_equal(text[0] != '<', 1);
  assert_contains(text, "Z info: plain\n");
  free(text);
}

/* The status line is for terminals only, so a file gets none of it. */
static void test_status_line_needs_terminal(void **state)
{
  char path[PATH_SIZE];

  join_path(path, sizeof(path), *state, "stderr");
  int saved = redirect_stderr(path);
  log_set_status_line("sync: 1/2 files");
  log_info("line");
  log_set_status_line(NULL);
  restore_stderr(saved);

  char *text = read_file(path, NULL);
  assert_not_contains(text, "sync: 1/2");
  assert_not_contains(text, "\r");
  assert_int_equal(count_lines(text), 1);
  free(text);
}

/* ---- Repeat limit ---- */

static void test_repeats_suppressed_and_counted(void **state)
{
  char path[PATH_SIZE];

  log_set_rate_limit(3, 200);
  use_log_file(*state, "agent.log", LOG_LEVEL_INFO, path, sizeof(path));
  for (int i = 0; i < 10; i++)
    log_warn("cannot reach %s", "server");
  log_info("other message");
  plat_sleep_ms(300);
  log_info("after the window");
  log_close();

  char *text = read_file(path, NULL);
  assert_int_equal(count_occurrences(text, "warn: cannot reach server\n"), 3);
  assert_contains(text, "warn: 7 repeats of this message within 200 ms were "
                        "not written: cannot reach server\n");
  assert_contains(text, "info: other message\n");
  assert_contains(text, "info: after the window\n");
  assert_int_equal(count_lines(text), 6);

  /* The count comes before the line that followed the window. */
  assert_true(strstr(text, "7 repeats") < strstr(text, "after the window"));
  free(text);
}

/* Messages that differ in their arguments are different messages. */
static void test_repeats_compare_arguments(void **state)
{
  char path[PATH_SIZE];

  log_set_rate_limit(2, 60000);
  use_log_file(*state, "agent.log", LOG_LEVEL_INFO, path, sizeof(path));
  for (int i = 0; i < 6; i++)
    log_info("file %d delivered", i);
  log_close();

  char *text = read_file(path, NULL);
  assert_int_equal(count_lines(text), 6);
  assert_not_contains(text, "repeats");
  free(text);
}

/* log_close() writes the counts of windows that have not ended. */
static void test_repeats_counted_on_close(void **state)
{
  char path[PATH_SIZE];

  log_set_rate_limit(2, 60000);
  use_log_file(*state, "agent.log", LOG_LEVEL_INFO, path, sizeof(path));
  for (int i = 0; i < 5; i++)
    log_error("same error");
  log_close();

  char *text = read_file(path, NULL);
  assert_int_equal(count_occurrences(text, "error: same error\n"), 2);
  assert_contains(text, "error: 3 repeats of this message within 60 s were "
                        "not written: same error\n");
  free(text);
}

static void test_repeats_debug_not_limited(void **state)
{
  char path[PATH_SIZE];

  log_set_rate_limit(2, 60000);
  use_log_file(*state, "agent.log", LOG_LEVEL_DEBUG, path, sizeof(path));
  for (int i = 0; i < 5; i++)
    log_debug("protocol detail");
  log_close();

  char *text = read_file(path, NULL);
  assert_int_equal(count_occurrences(text, "debug: protocol detail\n"), 5);
  free(text);
}

static void test_repeat_limit_off(void **state)
{
  char path[PATH_SIZE];

  log_set_rate_limit(0, 60000);
  use_log_file(*state, "agent.log", LOG_LEVEL_INFO, path, sizeof(path));
  for (int i = 0; i < 30; i++)
    log_info("again");
  log_close();

  char *text = read_file(path, NULL);
  assert_int_equal(count_occurrences(text, "info: again\n"), 30);
  free(text);
}

/* ---- Escaping ---- */

/* A message with line breaks or other control characters stays one line. */
static void test_message_controls_escaped(void **state)
{
  char path[PATH_SIZE];

  use_log_file(*state, "agent.log", LOG_LEVEL_INFO, path, sizeof(path));
  log_info("banner: %s", "line1\nline2\r\tend\x7f");
  log_info("keeps \\ and caf\xc3\xa9");
  log_close();

  char *text = read_file(path, NULL);
  assert_contains(text, "info: banner: line1\\x0Aline2\\x0D\\x09end\\x7F\n");
  assert_contains(text, "info: keeps \\ and caf\xc3\xa9\n");
  assert_int_equal(count_lines(text), 2);
  free(text);
}

/* A message longer than the line buffer is cut, but never inside a UTF-8
 * character. */
static void test_long_message_cut_at_character(void **state)
{
  char path[PATH_SIZE];
  char *message = malloc(10001);

  assert_non_null(message);
  for (size_t i = 0; i < 10000; i += 2)
    memcpy(message + i, "\xc3\xa9", 2);
  message[10000] = '\0';
  use_log_file(*state, "agent.log", LOG_LEVEL_INFO, path, sizeof(path));

  /* The prefixes put the formatting cut after a whole character and in
   * the middle of one. */
  log_info("x%s", message);
  log_info("xy%s", message);
  log_close();

  size_t len = 0;
  char *text = read_file(path, &len);
  assert_int_equal(count_lines(text), 2);
  assert_true(len < 2 * 4200);
  assert_true(utf8_valid(text, len, NULL));
  char *second = strchr(text, '\n') + 1;
  assert_int_equal((unsigned char)second[-3], 0xC3);
  assert_int_equal((unsigned char)second[-2], 0xA9);
  assert_int_equal((unsigned char)text[len - 3], 0xC3);
  assert_int_equal((unsigned char)text[len - 2], 0xA9);
  assert_int_equal(text[len - 1], '\n');
  free(message);
  free(text);
}

static void test_errno_preserved(void **state)
{
  char path[PATH_SIZE];

  use_log_file(*state, "agent.log", LOG_LEVEL_INFO, path, sizeof(path));
  errno = EACCES;
  log_info("message");
  assert_int_equal(errno, EACCES);
  errno = ENOSPC;
  log_debug("not written");
  assert_int_equal(errno, ENOSPC);
}

static void test_escape_cases(void **state)
{
  static const struct {
    const char *name;
    const char *input;
    size_t len;
    const char *expected;
  } cases[] = {
      {"plain", "a.xml", 5, "a.xml"},
      {"control", "a\nb\tc", 5, "a\\x0Ab\\x09c"},
      {"backslash", "a\\b", 3, "a\\x5Cb"},
      {"delete", "\x7f", 1, "\\x7F"},
      {"latin-1 byte", "caf\xe9.xml", 8, "caf\\xE9.xml"},
      {"utf-8 kept", "caf\xc3\xa9", 5, "caf\xc3\xa9"},
      {"nul byte", "a\0b", 3, "a\\x00b"},
      {"truncated sequence", "\xc3", 1, "\\xC3"},
  };
  char out[64];

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    log_escape(out, sizeof(out), cases[i].input, cases[i].len);
    if (strcmp(out, cases[i].expected) != 0)
      fail_msg("case '%s': expected '%s', got '%s'", cases[i].name,
               cases[i].expected, out);
  }
}

static void test_escape_cut_with_dots(void **state)
{
  char out[12];

  (void)state;
  log_escape(out, sizeof(out), "0123456789abcdef", 16);
  assert_string_equal(out, "01234567...");
  log_escape(out, sizeof(out), "\n\n\n\n", 4);
  assert_string_equal(out, "\\x0A\\x0A...");
  log_escape(out, 1, "abc", 3);
  assert_string_equal(out, "");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
#define FOLDER_TEST(fn)                                                        \
  cmocka_unit_test_setup_teardown(fn, setup_folder, teardown_folder)
      FOLDER_TEST(test_file_line_format),
      FOLDER_TEST(test_file_appends),
      FOLDER_TEST(test_file_mode),
      FOLDER_TEST(test_reopen_after_rename),
      FOLDER_TEST(test_reopen_failure_keeps_file),
      FOLDER_TEST(test_configure_missing_folder),
      FOLDER_TEST(test_reopen_other_targets),
      FOLDER_TEST(test_journal_prefixes),
      FOLDER_TEST(test_journal_other_stream),
      FOLDER_TEST(test_status_line_needs_terminal),
      FOLDER_TEST(test_repeats_suppressed_and_counted),
      FOLDER_TEST(test_repeats_compare_arguments),
      FOLDER_TEST(test_repeats_counted_on_close),
      FOLDER_TEST(test_repeats_debug_not_limited),
      FOLDER_TEST(test_repeat_limit_off),
      FOLDER_TEST(test_message_controls_escaped),
      FOLDER_TEST(test_long_message_cut_at_character),
      FOLDER_TEST(test_errno_preserved),
      cmocka_unit_test(test_escape_cases),
      cmocka_unit_test(test_escape_cut_with_dots),
#undef FOLDER_TEST
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
