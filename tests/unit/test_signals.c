/* Unit tests for agent/signals.h: SIGTERM and SIGINT set the stop request,
 * SIGHUP a reload request that is taken once, and signals_wait() ends
 * early for a request that is pending or that arrives during the wait. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/platform.h"
#include "agent/signals.h"

static int install(void **state)
{
  struct ag_error err = {0};

  (void)state;
  return signals_install(&err) == AG_OK ? 0 : -1;
}

static int restore(void **state)
{
  (void)state;
  signals_restore();
  return 0;
}

static void signals_start_without_requests(void **state)
{
  (void)state;
  assert_false(signals_stop_requested());
  assert_false(signals_take_reload());
  assert_string_equal(signals_stop_name(), "no signal");
}

static void sighup_requests_one_reload(void **state)
{
  (void)state;
  assert_int_equal(raise(SIGHUP), 0);

  assert_true(signals_take_reload());
  assert_false(signals_take_reload());
  assert_false(signals_stop_requested());
}

static void sigterm_requests_stop(void **state)
{
  (void)state;
  assert_int_equal(raise(SIGTERM), 0);

  assert_true(signals_stop_requested());
  assert_string_equal(signals_stop_name(), "SIGTERM");
}

static void sigint_requests_stop(void **state)
{
  (void)state;
  assert_int_equal(raise(SIGINT), 0);

  assert_true(signals_stop_requested());
  assert_string_equal(signals_stop_name(), "SIGINT");
}

/* The bounds below are far from the 60 s wait, so that a slow machine
 * cannot fail them while a wait that ignores the request always does. */
static void wait_returns_for_pending_stop(void **state)
{
  (void)state;
  assert_int_equal(raise(SIGTERM), 0);

  int64_t start = plat_monotonic_ms();
  signals_wait(60000);
  assert_true(plat_monotonic_ms() - start < 10000);
}

static void wait_returns_for_signal_during_wait(void **state)
{
  (void)state;
  pid_t parent = getpid();
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    plat_sleep_ms(200);
    kill(parent, SIGHUP);
    _exit(0);
  }

  int64_t start = plat_monotonic_ms();
  signals_wait(60000);
  int64_t waited = plat_monotonic_ms() - start;
  int status = 0;
  waitpid(child, &status, 0);

  assert_true(waited < 30000);
  assert_true(signals_take_reload());
  assert_false(signals_stop_requested());
}

static void wait_sleeps_without_request(void **state)
{
  (void)state;
  int64_t start = plat_monotonic_ms();
  signals_wait(100);

  assert_true(plat_monotonic_ms() - start >= 100);
  assert_false(signals_stop_requested());
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(signals_start_without_requests, install,
                                      restore),
      cmocka_unit_test_setup_teardown(sighup_requests_one_reload, install,
                                      restore),
      cmocka_unit_test_setup_teardown(sigterm_requests_stop, install, restore),
      cmocka_unit_test_setup_teardown(sigint_requests_stop, install, restore),
      cmocka_unit_test_setup_teardown(wait_returns_for_pending_stop, install,
                                      restore),
      cmocka_unit_test_setup_teardown(wait_returns_for_signal_during_wait,
                                      install, restore),
      cmocka_unit_test_setup_teardown(wait_sleeps_without_request, install,
                                      restore),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
