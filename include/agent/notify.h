/* Notifications to the service manager.
 *
 * On Linux these are systemd's sd_notify messages, sent to the socket named
 * by the NOTIFY_SOCKET environment variable: READY=1, STATUS=, WATCHDOG=1
 * and STOPPING=1. src/posix/notify_posix.c uses libsystemd when the build
 * found it and otherwise sends the datagrams itself. Every function does
 * nothing and returns 0 when NOTIFY_SOCKET is not set, so the service also
 * runs outside systemd. On Windows (src/win/notify_win.c), readiness and
 * the start of shutdown go to the Service Control Manager when the
 * process runs as a service, and the rest does nothing. */
#ifndef AGENT_NOTIFY_H
#define AGENT_NOTIFY_H

#include <stdint.h>

/* Report that start-up has finished (READY=1), with status as the first
 * status line. Returns 0, or an errno value when the message could not be
 * sent. */
int notify_ready(const char *status);

/* Replace the one-line status that the service manager shows (STATUS=).
 * Line breaks in status are sent as spaces. Returns 0 or an errno value. */
int notify_status(const char *status);

/* Tell the watchdog that the service is alive (WATCHDOG=1). Returns 0 or
 * an errno value. */
int notify_watchdog(void);

/* Report that the service has begun to shut down (STOPPING=1). Returns 0
 * or an errno value. */
int notify_stopping(void);

/* Return the watchdog timeout that the service manager set for this
 * process (WATCHDOG_USEC, when WATCHDOG_PID is unset or names this
 * process), in milliseconds, or 0 when there is no watchdog. */
int64_t notify_watchdog_timeout_ms(void);

#endif
