/* Windows implementation of agent/signals.h. Ctrl+C, Ctrl+Break, closing
 * the console and a system shutdown request a stop, as SIGINT and SIGTERM
 * do on POSIX. The service front end adds the Service Control Manager's
 * STOP, SHUTDOWN and PRESHUTDOWN (a stop) and PARAMCHANGE (a reload, like
 * SIGHUP) through win_internal.h.
 *
 * Windows runs a console control handler on a thread of its own, and the
 * service control handler on the main thread while the service loop runs
 * on another. Both only store the request and set an event, which
 * signals_wait() waits on. */
#include "agent/signals.h"

#include "win_internal.h"

#include <stddef.h>

/* The name of what requested the stop, or NULL. */
static const char *volatile stop_name;
static volatile LONG stop_requested;
static volatile LONG reload_requested;

/* Set on every request so that signals_wait() returns. Auto-reset: a
 * request that arrives before the wait starts leaves it set, and the wait
 * returns at once. */
static HANDLE wake_event;

static void request_stop(const char *name)
{
  if (InterlockedCompareExchange(&stop_requested, 1, 0) == 0)
    stop_name = name;
  if (wake_event != NULL)
    SetEvent(wake_event);
}

static BOOL WINAPI on_console_event(DWORD event)
{
  switch (event) {
  case CTRL_C_EVENT:
    request_stop("CTRL_C_EVENT");
    return TRUE;
  case CTRL_BREAK_EVENT:
    request_stop("CTRL_BREAK_EVENT");
    return TRUE;
  case CTRL_CLOSE_EVENT:
    request_stop("CTRL_CLOSE_EVENT");
    return TRUE;
  case CTRL_SHUTDOWN_EVENT:
    request_stop("CTRL_SHUTDOWN_EVENT");
    return TRUE;
  case CTRL_LOGOFF_EVENT:
    /* Only services receive this, when any user logs off; it is no reason
     * for the service to stop. TRUE keeps the default handler from ending
     * the process. */
    return TRUE;
  default:
    return FALSE;
  }
}

enum ag_code signals_install(struct ag_error *err)
{
  char text[256];

  stop_requested = 0;
  reload_requested = 0;
  stop_name = NULL;
  if (wake_event == NULL)
    wake_event = CreateEventW(NULL, FALSE, FALSE, NULL);
  if (wake_event == NULL)
    return ag_error_set(err, AG_ELOCAL,
                        "cannot create the event for stop requests: %s",
                        win_error_text(GetLastError(), text, sizeof(text)));
  ResetEvent(wake_event);
  /* NOTE: after CTRL_CLOSE_EVENT and CTRL_SHUTDOWN_EVENT, Windows ends the
   * process about 5 s after the handler returns, which may come before the
   * loop has stopped; the manifest stays consistent, because every step
   * is recorded only after it happened. */
  if (!SetConsoleCtrlHandler(on_console_event, TRUE))
    return ag_error_set(err, AG_ELOCAL,
                        "cannot install the console control handler: %s",
                        win_error_text(GetLastError(), text, sizeof(text)));
  return AG_OK;
}

void signals_restore(void)
{
  SetConsoleCtrlHandler(on_console_event, FALSE);
}

bool signals_stop_requested(void)
{
  return stop_requested != 0;
}

const char *signals_stop_name(void)
{
  const char *name = stop_name;

  return stop_requested != 0 && name != NULL ? name : "no signal";
}

bool signals_take_reload(void)
{
  return InterlockedExchange(&reload_requested, 0) != 0;
}

void signals_wait(int64_t ms)
{
  DWORD wait_ms = ms > (int64_t)INFINITE - 1 ? INFINITE - 1 : (DWORD)ms;

  if (ms <= 0)
    return;
  /* Clear a wake-up left from a request that was already handled, then
   * check the flags: a request after the reset sets the event again, so
   * the wait below cannot miss it. */
  if (wake_event != NULL)
    ResetEvent(wake_event);
  if (stop_requested != 0 || reload_requested != 0)
    return;
  if (wake_event == NULL)
    Sleep(wait_ms);
  else
    WaitForSingleObject(wake_event, wait_ms);
}

void signals_win_request_stop(const char *control)
{
  request_stop(control);
}

void signals_win_request_reload(void)
{
  InterlockedExchange(&reload_requested, 1);
  if (wake_event != NULL)
    SetEvent(wake_event);
}
