/* Stop and reload requests from the operating system to the service.
 *
 * On POSIX, SIGTERM and SIGINT request a stop and SIGHUP a config reload.
 * On Windows, Ctrl+C, Ctrl+Break, closing the console and the Service
 * Control Manager's STOP and SHUTDOWN request a stop, and its PARAMCHANGE
 * a reload. The handlers only record the request; the service loop reads
 * it with the functions below. src/posix/ and src/win/ implement this
 * header. */
#ifndef AGENT_SIGNALS_H
#define AGENT_SIGNALS_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/error.h"

/* Install the handlers for stop and reload requests and clear any request
 * recorded before. Errors: AG_ELOCAL when the operating system rejects a
 * handler. */
enum ag_code signals_install(struct ag_error *err);

/* Restore the default handling of the signals that signals_install()
 * took over. */
void signals_restore(void);

/* Return whether a stop was requested. Safe to call at any time, also
 * from deep inside a pass. */
bool signals_stop_requested(void);

/* Return the name of the signal that requested the stop, such as
 * "SIGTERM" (on Windows the event or control, such as "CTRL_C_EVENT" or
 * "SERVICE_CONTROL_STOP"), or "no signal" when no stop was requested. */
const char *signals_stop_name(void);

/* Return whether a reload was requested since the last call, and clear the
 * request. */
bool signals_take_reload(void);

/* Sleep for up to ms milliseconds, returning early when a stop or reload
 * request arrives. Returns at once when one is already pending. A request
 * that arrives just before the sleep starts still ends it. */
void signals_wait(int64_t ms);

#endif
