/* Core support for long-running front ends, beyond agent_sync(): hooks
 * that follow and end a pass, a config swap after a reload, and the
 * connection kept open between passes. */
#include "agent_internal.h"

/* Maximum sleep between two checks of the hooks during a wait, so that a
 * stop request ends the wait within this time. */
#define PAUSE_STEP_MS 200

void agent_set_hooks(struct agent *agent, const struct agent_hooks *hooks)
{
  agent->hooks = *hooks;
}

void agent_set_config(struct agent *agent, const struct config *config)
{
  agent->config = config;
}

bool agent_stop_requested(const struct agent *agent)
{
  if (agent->hooks.stop_requested == NULL)
    return false;
  return agent->hooks.stop_requested(agent->hooks.ctx);
}

void agent_report_progress(const struct agent *agent)
{
  if (agent->hooks.progress != NULL)
    agent->hooks.progress(agent->hooks.ctx);
}

void agent_pause(const struct agent *agent, int64_t ms)
{
  int64_t end = plat_monotonic_ms() + ms;

  for (;;) {
    agent_report_progress(agent);
    if (agent_stop_requested(agent))
      return;
    int64_t left = end - plat_monotonic_ms();
    if (left <= 0)
      return;
    plat_sleep_ms(left < PAUSE_STEP_MS ? left : PAUSE_STEP_MS);
  }
}

enum ag_code agent_connect(struct agent *agent, struct ag_error *err)
{
  if (agent->remote != NULL)
    return AG_OK;
  return remote_connect(agent->config, &agent->remote, err);
}

void agent_disconnect(struct agent *agent)
{
  remote_close(agent->remote);
  agent->remote = NULL;
}

bool agent_is_connected(const struct agent *agent)
{
  return agent->remote != NULL;
}

enum ag_code agent_keepalive(struct agent *agent, int *next_seconds,
                             struct ag_error *err)
{
  *next_seconds = 0;
  if (agent->remote == NULL)
    return AG_OK;

  enum ag_code code = remote_keepalive(
      agent->remote, agent->config->keepalive_interval, next_seconds, err);
  if (code != AG_OK) {
    agent_disconnect(agent);
    *next_seconds = 0;
  }
  return code;
}
