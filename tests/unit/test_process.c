/* Unit tests for process_posix.c: plat_run_hook() with /bin/sh commands,
 * covering exit status, signals, kept output, stdin, process groups, open
 * descriptors, signal state, timeouts that end the whole group, stop
 * requests and programs that cannot start. */
#include "agent/platform.h"

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Run "/bin/sh -c script" with the timeout and watch, expecting AG_OK,
 * into a new result that the caller frees. */
static struct plat_hook_result *run_shell(const char *script, int timeout_s,
                                          const struct plat_hook_watch *watch)
{
  const char *argv[] = {"/bin/sh", "-c", script, NULL};
  struct plat_hook_result *result = malloc(sizeof(*result));
  struct ag_error err = {0};

  assert_non_null(result);
  enum ag_code code = plat_run_hook(argv, timeout_s, watch, result, &err);
  if (code != AG_OK)
    print_error("plat_run_hook(\"%s\"): %s\n", script, err.message);
  assert_int_equal(code, AG_OK);
  return result;
}

/* Return whether process pid runs: it exists and is not a zombie that
 * waits for its parent (or, in a container, for a PID 1 that does not
 * reap). */
static bool process_runs(long pid)
{
  char path[64];
  char text[512];
  snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
  FILE *file = fopen(path, "r");

  if (file == NULL)
    return false;
  size_t len = fread(text, 1, sizeof(text) - 1, file);
  fclose(file);
  text[len] = '\0';
  const char *end = strrchr(text, ')');
  return end != NULL && end[1] == ' ' && end[2] != 'Z';
}

/* Return whether process pid still runs after up to 1 s. A process that
 * got SIGKILL ends once the kernel schedules it, shortly after kill()
 * returned. */
static bool process_stays(long pid)
{
  for (int i = 0; i < 100 && process_runs(pid); i++)
    usleep(10000);
  return process_runs(pid);
}

static void exit_status_returned(void **state)
{
  (void)state;
  struct plat_hook_result *result = run_shell("exit 7", 10, NULL);

  assert_int_equal(result->outcome, PLAT_HOOK_EXITED);
  assert_int_equal(result->status, 7);
  assert_int_equal(result->output_len, 0);
  assert_int_equal(result->output_total, 0);
  assert_string_equal(result->output, "");
  assert_true(result->elapsed_ms >= 0);
  assert_true(result->elapsed_ms < 5000);
  free(result);

  result = run_shell("true", 10, NULL);
  assert_int_equal(result->outcome, PLAT_HOOK_EXITED);
  assert_int_equal(result->status, 0);
  free(result);
}

static void signal_reported(void **state)
{
  (void)state;
  struct plat_hook_result *result = run_shell("kill -USR1 $$", 10, NULL);

  assert_int_equal(result->outcome, PLAT_HOOK_SIGNALED);
  assert_int_equal(result->status, SIGUSR1);
  free(result);
}

static void stdout_and_stderr_kept(void **state)
{
  (void)state;
  struct plat_hook_result *result = run_shell(
      "printf 'out\\n'; printf 'err\\t\\n' >&2; printf end", 10, NULL);

  assert_int_equal(result->outcome, PLAT_HOOK_EXITED);
  assert_string_equal(result->output, "out\nerr\t\nend");
  assert_int_equal(result->output_len, 12);
  assert_int_equal(result->output_total, 12);
  free(result);
}

static void output_cut_at_maximum(void **state)
{
  (void)state;
  /* 200000 bytes, more than a pipe holds, so the writer would block
   * unless the rest is read and dropped. */
  struct plat_hook_result *result = run_shell(
      "head -c 200000 /dev/zero | tr '\\0' x; echo done >&2", 10, NULL);

  assert_int_equal(result->outcome, PLAT_HOOK_EXITED);
  assert_int_equal(result->status, 0);
  assert_int_equal(result->output_len, PLAT_HOOK_OUTPUT_MAX);
  assert_int_equal(result->output_total, 200005);
  assert_int_equal(result->output[0], 'x');
  assert_int_equal(result->output[PLAT_HOOK_OUTPUT_MAX - 1], 'x');
  assert_int_equal(result->output[PLAT_HOOK_OUTPUT_MAX], '\0');
  free(result);
}

static void stdin_is_dev_null(void **state)
{
  (void)state;
  struct plat_hook_result *result =
      run_shell("readlink /proc/$$/fd/0; cat; echo read-end", 10, NULL);

  assert_string_equal(result->output, "/dev/null\nread-end\n");
  free(result);
}

static void own_process_group(void **state)
{
  (void)state;
  /* Field 5 of /proc/PID/stat is the process group; the command name in
   * field 2 is "(sh)", without spaces. */
  struct plat_hook_result *result = run_shell(
      "test \"$(cut -d' ' -f5 /proc/$$/stat)\" = $$ && echo leader", 10, NULL);

  assert_string_equal(result->output, "leader\n");
  free(result);
}

static void only_standard_descriptors(void **state)
{
  (void)state;
  /* A descriptor that the agent left without O_CLOEXEC. */
  int fd = open("/dev/null", O_RDONLY);
  assert_true(fd > 2);

  /* No pipeline, whose pipe the shell would hold while ls runs. */
  struct plat_hook_result *result = run_shell("ls /proc/$$/fd", 10, NULL);
  assert_string_equal(result->output, "0\n1\n2\n");
  free(result);
  close(fd);
}

/* Return the hex mask after "name:\t" in /proc/PID/status text. */
static unsigned long long status_mask(const char *text, const char *name)
{
  const char *line = strstr(text, name);

  assert_non_null(line);
  return strtoull(line + strlen(name), NULL, 16);
}

static void default_signal_state(void **state)
{
  sigset_t blocked;
  sigset_t previous;
  struct sigaction ignore = {.sa_handler = SIG_IGN};
  struct sigaction saved;
  (void)state;

  /* The agent blocks and ignores signals that a hook must still get. */
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigprocmask(SIG_BLOCK, &blocked, &previous);
  sigaction(SIGINT, &ignore, &saved);

  /* Bit n - 1 stands for signal n. glibc's posix_spawn() leaves its own
   * signals 32 and 33 ignored, so only the standard ones are checked. */
  /* cat reads its own status: the shell may block signals for a moment
   * while it forks and waits, so its own mask is not the hook's. */
  struct plat_hook_result *result =
      run_shell("exec cat /proc/self/status", 10, NULL);
  unsigned long long standard = 0x7FFFFFFFULL;
  assert_int_equal(status_mask(result->output, "SigBlk:") & standard, 0);
  assert_int_equal(status_mask(result->output, "SigIgn:") & standard, 0);
  free(result);

  sigaction(SIGINT, &saved, NULL);
  sigprocmask(SIG_SETMASK, &previous, NULL);
}

/* Read the process ids that a script printed, one per line. */
static size_t read_pids(const char *output, long pids[], size_t max)
{
  size_t count = 0;
  const char *p = output;

  while (count < max && *p != '\0') {
    char *end = NULL;
    long pid = strtol(p, &end, 10);
    if (end == p)
      break;
    pids[count++] = pid;
    p = end + strspn(end, "\n");
  }
  return count;
}

static void timeout_ends_group(void **state)
{
  (void)state;
  long pids[2];
  struct plat_hook_result *result =
      run_shell("echo $$; sleep 30 & echo $!; wait", 1, NULL);

  assert_int_equal(result->outcome, PLAT_HOOK_TIMED_OUT);
  assert_int_equal(result->status, SIGTERM);
  assert_true(result->elapsed_ms >= 1000);
  assert_true(result->elapsed_ms < 1900);
  assert_int_equal(read_pids(result->output, pids, 2), 2);
  assert_false(process_stays(pids[0]));
  assert_false(process_stays(pids[1]));
  free(result);
}

static void timeout_kills_after_grace(void **state)
{
  (void)state;
  long pids[2];
  /* The ignored SIGTERM is inherited by the sleep, so only SIGKILL ends
   * either process. */
  struct plat_hook_result *result =
      run_shell("trap '' TERM; echo $$; sleep 30 & echo $!; wait", 1, NULL);

  assert_int_equal(result->outcome, PLAT_HOOK_TIMED_OUT);
  assert_int_equal(result->status, SIGKILL);
  assert_true(result->elapsed_ms >= 3000);
  assert_true(result->elapsed_ms < 3900);
  assert_int_equal(read_pids(result->output, pids, 2), 2);
  assert_false(process_stays(pids[0]));
  assert_false(process_stays(pids[1]));
  free(result);
}

struct watch_counts {
  int stop_checks;
  int stop_after; /* stop_requested returns true from this check on */
  int progress_calls;
};

static bool count_stop(void *ctx)
{
  struct watch_counts *counts = ctx;

  return ++counts->stop_checks >= counts->stop_after;
}

static void count_progress(void *ctx)
{
  struct watch_counts *counts = ctx;

  counts->progress_calls++;
}

static void stop_request_ends_hook(void **state)
{
  (void)state;
  struct watch_counts counts = {.stop_after = 3};
  struct plat_hook_watch watch = {
      .stop_requested = count_stop, .progress = count_progress, .ctx = &counts};
  long pid = 0;
  struct plat_hook_result *result =
      run_shell("echo $$; exec sleep 30", 60, &watch);

  assert_int_equal(result->outcome, PLAT_HOOK_STOPPED);
  assert_int_equal(result->status, SIGTERM);
  assert_int_equal(counts.stop_checks, 3);
  assert_int_equal(counts.progress_calls, 2);
  assert_true(result->elapsed_ms < 1000);
  assert_int_equal(read_pids(result->output, &pid, 1), 1);
  assert_false(process_stays(pid));
  free(result);
}

static void missing_program_fails(void **state)
{
  (void)state;
  const char *argv[] = {"/nonexistent/hook", "a", NULL};
  struct plat_hook_result result;
  struct ag_error err = {0};

  assert_int_equal(plat_run_hook(argv, 10, NULL, &result, &err), AG_ELOCAL);
  assert_contains(err.message, "cannot start '/nonexistent/hook'");
  assert_contains(err.message, "No such file or directory");
}

static void program_not_executable(void **state)
{
  struct folder_fixture *f = *state;
  char path[512];

  join_path(path, sizeof(path), f->dir, "hook.sh");
  write_file(path, "#!/bin/sh\nexit 0\n", 17);
  assert_int_equal(chmod(path, 0644), 0);
  const char *argv[] = {path, NULL};
  struct plat_hook_result result;

  assert_int_equal(plat_run_hook(argv, 10, NULL, &result, &f->err), AG_ELOCAL);
  assert_contains(f->err.message, "Permission denied");
}

static void arguments_passed_unchanged(void **state)
{
  struct folder_fixture *f = *state;
  char path[512];
  static const char script[] = "#!/bin/sh\nprintf '[%s]' \"$@\"\n";

  join_path(path, sizeof(path), f->dir, "hook.sh");
  write_file(path, script, sizeof(script) - 1);
  assert_int_equal(chmod(path, 0755), 0);
  const char *argv[] = {path, "two words", "", "$HOME;*", "\xc3\xa9", NULL};
  struct plat_hook_result result;

  assert_int_equal(plat_run_hook(argv, 10, NULL, &result, &f->err), AG_OK);
  assert_int_equal(result.outcome, PLAT_HOOK_EXITED);
  assert_string_equal(result.output, "[two words][][$HOME;*][\xc3\xa9]");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(exit_status_returned),
      cmocka_unit_test(signal_reported),
      cmocka_unit_test(stdout_and_stderr_kept),
      cmocka_unit_test(output_cut_at_maximum),
      cmocka_unit_test(stdin_is_dev_null),
      cmocka_unit_test(own_process_group),
      cmocka_unit_test(only_standard_descriptors),
      cmocka_unit_test(default_signal_state),
      cmocka_unit_test(timeout_ends_group),
      cmocka_unit_test(timeout_kills_after_grace),
      cmocka_unit_test(stop_request_ends_hook),
      cmocka_unit_test(missing_program_fails),
      cmocka_unit_test_setup_teardown(program_not_executable,
                                      folder_fixture_setup,
                                      folder_fixture_teardown),
      cmocka_unit_test_setup_teardown(arguments_passed_unchanged,
                                      folder_fixture_setup,
                                      folder_fixture_teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
