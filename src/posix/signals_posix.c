/* POSIX implementation of agent/signals.h: SIGTERM and SIGINT request a
 * stop, SIGHUP a reload. The handlers only store flags. */
#include "agent/signals.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

/* The signal that requested a stop, or 0. */
static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t reload_requested;

static const int handled_signals[] = {SIGTERM, SIGINT, SIGHUP};

#define HANDLED_COUNT (sizeof(handled_signals) / sizeof(handled_signals[0]))

static void on_stop(int signal_number)
{
  stop_signal = signal_number;
}

static void on_reload(int signal_number)
{
  (void)signal_number;
  reload_requested = 1;
}

static void fill_handled_set(sigset_t *set)
{
  sigemptyset(set);
  for (size_t i = 0; i < HANDLED_COUNT; i++)
    sigaddset(set, handled_signals[i]);
}

enum ag_code signals_install(struct ag_error *err)
{
  struct sigaction action;

  stop_signal = 0;
  reload_requested = 0;
  memset(&action, 0, sizeof(action));
  fill_handled_set(&action.sa_mask);
  /* SA_RESTART keeps reads and writes in libssh2, LMDB and stdio from
   * failing with EINTR. The waits in signals_wait() still return early,
   * because pselect() is never restarted. */
  action.sa_flags = SA_RESTART;

  for (size_t i = 0; i < HANDLED_COUNT; i++) {
    int signal_number = handled_signals[i];
    action.sa_handler = signal_number == SIGHUP ? on_reload : on_stop;
    if (sigaction(signal_number, &action, NULL) != 0) {
      int error = errno;
      signals_restore();
      return ag_error_set(err, AG_ELOCAL,
                          "cannot install the handler for signal %d: %s",
                          signal_number, strerror(error));
    }
  }
  return AG_OK;
}

void signals_restore(void)
{
  struct sigaction action;

  memset(&action, 0, sizeof(action));
  sigemptyset(&action.sa_mask);
  action.sa_handler = SIG_DFL;
  for (size_t i = 0; i < HANDLED_COUNT; i++)
    sigaction(handled_signals[i], &action, NULL);
}

bool signals_stop_requested(void)
{
  return stop_signal != 0;
}

const char *signals_stop_name(void)
{
  switch (stop_signal) {
  case SIGTERM:
    return "SIGTERM";
  case SIGINT:
    return "SIGINT";
  default:
    return "no signal";
  }
}

bool signals_take_reload(void)
{
  if (!reload_requested)
    return false;
  reload_requested = 0;
  return true;
}

void signals_wait(int64_t ms)
{
  sigset_t handled;
  sigset_t previous;

  if (ms <= 0)
    return;

  /* Block the signals while checking the flags, and let pselect() unblock
   * them atomically, so a signal between the check and the sleep cannot
   * be missed and leave the sleep running for its full length. */
  fill_handled_set(&handled);
  sigprocmask(SIG_BLOCK, &handled, &previous);
  if (stop_signal == 0 && reload_requested == 0) {
    struct timespec timeout = {.tv_sec = (time_t)(ms / 1000),
                               .tv_nsec = (long)(ms % 1000) * 1000000};
    pselect(0, NULL, NULL, NULL, &timeout, &previous);
  }
  sigprocmask(SIG_SETMASK, &previous, NULL);
}
