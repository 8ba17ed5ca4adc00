/* Windows implementation of agent/notify.h. There is no systemd: outside
 * the service every function does nothing and returns 0. Under the
 * Service Control Manager, readiness becomes SERVICE_RUNNING and the
 * start of shutdown SERVICE_STOP_PENDING (src/win/service_win.c). The
 * status line has no place to go, and there is no watchdog. */
#include "agent/notify.h"

#include "win_internal.h"

int notify_ready(const char *status)
{
  (void)status;
  if (service_win_active())
    service_win_report_running();
  return 0;
}

int notify_status(const char *status)
{
  (void)status;
  return 0;
}

int notify_watchdog(void)
{
  return 0;
}

int notify_stopping(void)
{
  if (service_win_active())
    service_win_report_stopping();
  return 0;
}

int64_t notify_watchdog_timeout_ms(void)
{
  return 0;
}
