/* Private interface of the service loop, shared by daemon.c and
 * daemon_reload.c. Not part of the public API. */
#ifndef AGENT_DAEMON_INTERNAL_H
#define AGENT_DAEMON_INTERNAL_H

#include <stdbool.h>

#include "agent/config.h"
#include "agent/error.h"

/* Load the config again from current->path, for a reload request.
 *
 * state_dir and output_dir keep their current values, because the lock,
 * the manifest and the download folder stay where the service opened
 * them. A change of either is logged as needing a restart. On success
 * stores the new config in *out, which the caller frees with
 * config_free(), and sets *server_changed when a setting that the SSH
 * connection depends on changed (server, credentials, host key or
 * timeout). On failure returns the error of config_load() in err, stores
 * NULL in *out, and current stays valid. */
enum ag_code daemon_reload_config(const struct config *current,
                                  struct config **out, bool *server_changed,
                                  struct ag_error *err);

#endif
