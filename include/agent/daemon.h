/* The long-running service behind the run command.
 *
 * daemon_run() opens the agent once, so the state folder stays locked for
 * the whole run, and runs a pass every poll_interval seconds. The SSH
 * connection stays open between passes. When the server cannot be reached
 * or the connection drops, the service reconnects with exponential backoff
 * and never exits for that reason. SIGHUP reloads the config; SIGTERM and
 * SIGINT stop the service between two recorded steps. Under systemd it
 * reports readiness, status, watchdog pings and shutdown (agent/notify.h). */
#ifndef AGENT_DAEMON_H
#define AGENT_DAEMON_H

#include <stdbool.h>

#include "agent/error.h"

struct daemon_options {
  bool verbose; /* log at debug level, whatever log_level the config sets */
};

/* Run the service with the config at config_path until SIGTERM or SIGINT
 * arrives. Returns AG_OK after a clean stop.
 *
 * Returns an error only when start-up fails, before readiness is reported:
 * AG_ECONFIG (invalid config), AG_ELOCKED (another agent has locked the
 * state folder, and the message names its process id), AG_ESTATELOST,
 * AG_ESTATE, AG_ELOCAL or AG_ENOMEM. err then contains the message. Failures
 * after start-up are logged and retried: an unreachable server, a rejected host
 * key or login, and a failed pass never end the run. */
enum ag_code daemon_run(const char *config_path,
                        const struct daemon_options *options,
                        struct ag_error *err);

#endif
