/* The run command's service loop: a pass every poll_interval seconds over
 * a connection kept open between passes, reconnects with exponential
 * backoff, config reloads, and reports to the service manager.
 *
 * Every failure after start-up is retried, including a rejected host key
 * or login: an operator can fix known_hosts or the credentials while the
 * service keeps running, and a reload (SIGHUP) retries at once. Those two
 * are logged as errors on every attempt, an unreachable server as a
 * warning. Once the delay has grown to reconnect_max, a repeated error is
 * logged once per reconnect_max seconds. */
#include "agent/daemon.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent/config.h"
#include "agent/log.h"
#include "agent/metrics.h"
#include "agent/notify.h"
#include "agent/signals.h"
#include "agent_internal.h"
#include "daemon_internal.h"

#define STATUS_SIZE 256

struct daemon {
  const struct daemon_options *options;
  struct config *config;
  struct agent *agent;
  char endpoint[300];        /* "host:port" of the server, for messages */
  char status[STATUS_SIZE];  /* the last status line sent */
  int64_t next_poll_ms;      /* monotonic time of the next pass */
  int64_t next_keepalive_ms; /* monotonic time of the next keepalive, or 0 */
  int64_t ping_step_ms;      /* time between watchdog pings, or 0 */
  int64_t last_ping_ms;
  unsigned failures;      /* consecutive failed attempts */
  bool server_failing;    /* the last failure was a server failure */
  bool notify_failed;     /* a failed notification was logged */
  unsigned long passes;   /* passes run since start */
  size_t delivered_total; /* outputs published since start */
  size_t failed_total;    /* files moved to the error folder since start */
  struct metrics metrics; /* counters since start, for metrics_file */
};

/* Switch logging to the config's target and level; -v keeps debug. */
static enum ag_code apply_logging(const struct daemon *daemon,
                                  struct ag_error *err)
{
  enum ag_code code = log_configure(daemon->config, err);

  if (daemon->options->verbose)
    log_set_level(LOG_LEVEL_DEBUG);
  return code;
}

static void set_endpoint(struct daemon *daemon)
{
  const struct config *config = daemon->config;
  char host[256];

  log_escape(host, sizeof(host), config->host, strlen(config->host));
  snprintf(daemon->endpoint, sizeof(daemon->endpoint),
           strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d", host, config->port);
}

/* Log the first failed notification only, because a missing or full
 * socket would otherwise add a line to every poll. */
static void check_notified(struct daemon *daemon, int error, const char *what)
{
  if (error == 0 || daemon->notify_failed)
    return;
  daemon->notify_failed = true;
  log_warn("cannot send %s to the service manager (NOTIFY_SOCKET): %s; "
           "later failures are not logged",
           what, strerror(error));
}

static void set_status(struct daemon *daemon, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void set_status(struct daemon *daemon, const char *format, ...)
{
  va_list args;

  va_start(args, format);
  vsnprintf(daemon->status, sizeof(daemon->status), format, args);
  va_end(args);
  check_notified(daemon, notify_status(daemon->status), "the status");
}

/* Ping the watchdog when a quarter of its timeout has passed since the
 * last ping, so that a ping is never more than half the timeout late even
 * when the callers run a little apart.
 * NOTE: nothing pings during one blocking libssh2 call (connect, listing,
 * one block), which may last up to config->timeout, so WatchdogSec must be
 * well above timeout. */
static void ping_watchdog(struct daemon *daemon)
{
  int64_t now = plat_monotonic_ms();

  if (daemon->ping_step_ms == 0 ||
      now - daemon->last_ping_ms < daemon->ping_step_ms)
    return;
  check_notified(daemon, notify_watchdog(), "a watchdog ping");
  daemon->last_ping_ms = now;
}

static bool hook_stop_requested(void *ctx)
{
  (void)ctx;
  return signals_stop_requested();
}

static void hook_progress(void *ctx)
{
  ping_watchdog(ctx);
}

/* Schedule the first keepalive keepalive_interval seconds after the
 * connection was last used. */
static void schedule_keepalive(struct daemon *daemon)
{
  int interval = daemon->config->keepalive_interval;

  daemon->next_keepalive_ms = 0;
  if (interval > 0 && agent_is_connected(daemon->agent))
    daemon->next_keepalive_ms = plat_monotonic_ms() + (int64_t)interval * 1000;
}

static void send_keepalive(struct daemon *daemon)
{
  struct ag_error err = {0};
  int next_seconds = 0;

  if (daemon->next_keepalive_ms == 0 ||
      plat_monotonic_ms() < daemon->next_keepalive_ms)
    return;
  if (agent_keepalive(daemon->agent, &next_seconds, &err) != AG_OK) {
    log_warn("%s; reconnecting at the next poll", err.message);
    daemon->next_keepalive_ms = 0;
    return;
  }
  if (next_seconds < 1)
    next_seconds = 1;
  daemon->next_keepalive_ms =
      plat_monotonic_ms() + (int64_t)next_seconds * 1000;
  log_debug("keepalive to %s done; the next one is due in %d s",
            daemon->endpoint, next_seconds);
}

/* Seconds to wait after the given number of consecutive failures:
 * reconnect_base, doubled for each further failure, at most
 * reconnect_max. */
static int backoff_seconds(const struct config *config, unsigned failures)
{
  int64_t delay = config->reconnect_base;

  for (unsigned i = 1; i < failures && delay < config->reconnect_max; i++)
    delay *= 2;
  return delay > config->reconnect_max ? config->reconnect_max : (int)delay;
}

/* Return whether code means that the server could not be reached, its
 * host key verified or the login completed. */
static bool is_server_failure(enum ag_code code)
{
  return code == AG_ECONNECT || code == AG_ETIMEDOUT || code == AG_EHOSTKEY ||
         code == AG_EAUTH;
}

static void log_failure(const struct daemon *daemon, enum ag_code code,
                        const struct ag_error *err, int delay)
{
  if (code == AG_ECONNECT || code == AG_ETIMEDOUT)
    log_warn("attempt %u to reach %s failed: %s; retrying in %d s",
             daemon->failures, daemon->endpoint, err->message, delay);
  else if (code == AG_EHOSTKEY || code == AG_EAUTH)
    log_error("attempt %u to log in to %s failed: %s; retrying in %d s "
              "(send SIGHUP after a fix to retry at once)",
              daemon->failures, daemon->endpoint, err->message, delay);
  else
    log_error("pass %lu failed (attempt %u): %s; retrying in %d s",
              daemon->passes, daemon->failures, err->message, delay);
}

/* Schedule the next attempt after a failure. A connection that worked
 * until this pass is made again at once, because the usual cause is a
 * server restart or an idle session that the server closed. Only further
 * failures back off. */
static void handle_failure(struct daemon *daemon, enum ag_code code,
                           const struct ag_error *err, bool was_connected)
{
  int64_t now = plat_monotonic_ms();

  if (was_connected && !agent_is_connected(daemon->agent)) {
    daemon->metrics.reconnects++;
    log_warn("lost the connection to %s: %s; reconnecting", daemon->endpoint,
             err->message);
    daemon->next_poll_ms = now;
    set_status(daemon, "reconnecting to %s", daemon->endpoint);
    return;
  }

  daemon->failures++;
  daemon->server_failing = is_server_failure(code);
  int delay = backoff_seconds(daemon->config, daemon->failures);
  daemon->next_poll_ms = now + (int64_t)delay * 1000;
  log_failure(daemon, code, err, delay);
  set_status(daemon, "%s (%s), attempt %u; next attempt in %d s",
             daemon->server_failing ? "cannot use the server"
                                    : "the last pass failed",
             ag_code_name(code), daemon->failures, delay);
}

static void handle_success(struct daemon *daemon,
                           const struct agent_summary *summary,
                           int64_t started_ms)
{
  int64_t now = plat_monotonic_ms();

  if (daemon->failures > 0 && daemon->server_failing)
    log_info("connected to %s again after %u failed attempts", daemon->endpoint,
             daemon->failures);
  else if (daemon->failures > 0)
    log_info("pass %lu succeeded after %u failed attempts", daemon->passes,
             daemon->failures);
  daemon->failures = 0;
  daemon->server_failing = false;

  /* Polls start poll_interval apart, or at once after a longer pass. */
  daemon->next_poll_ms =
      started_ms + (int64_t)daemon->config->poll_interval * 1000;
  if (daemon->next_poll_ms < now)
    daemon->next_poll_ms = now;
  schedule_keepalive(daemon);

  set_status(daemon,
             "poll %lu: %zu delivered, %zu failed, %zu pending, %zu settling; "
             "%zu delivered and %zu failed since start",
             daemon->passes, summary->delivered, summary->failed,
             summary->pending, summary->settling, daemon->delivered_total,
             daemon->failed_total);
}

/* Add the pass to the process's counters and rewrite metrics_file. */
static void write_metrics(struct daemon *daemon,
                          const struct agent_summary *summary,
                          enum ag_code code)
{
  struct ag_error err = {0};
  const char *path = daemon->config->metrics_file;

  metrics_add_pass(&daemon->metrics, summary, code);
  if (path != NULL && metrics_write(path, &daemon->metrics, &err) != AG_OK)
    log_warn("cannot write metrics file '%s': %s", path, err.message);
}

static void run_pass(struct daemon *daemon)
{
  struct agent_summary summary = {0};
  struct ag_error err = {0};
  bool was_connected = agent_is_connected(daemon->agent);
  int64_t started_ms = plat_monotonic_ms();

  ping_watchdog(daemon);
  enum ag_code code = agent_sync(daemon->agent, &summary, &err);
  daemon->passes++;
  daemon->delivered_total += summary.delivered;
  daemon->failed_total += summary.failed;

  if (code != AG_OK)
    handle_failure(daemon, code, &err, was_connected);
  else
    handle_success(daemon, &summary, started_ms);
  write_metrics(daemon, &summary, code);
  log_debug("poll %lu done; %s", daemon->passes, daemon->status);
}

static void reload(struct daemon *daemon)
{
  struct config *fresh = NULL;
  struct ag_error err = {0};
  bool server_changed = false;

  /* Reopen first, so that after a log rotation the reload's own lines go
   * to the new file already. */
  if (log_reopen(&err) != AG_OK) {
    log_error("%s", err.message);
    ag_error_clear(&err);
  }
  log_info("SIGHUP: reloading the config from '%s'", daemon->config->path);
  if (daemon_reload_config(daemon->config, &fresh, &server_changed, &err) !=
      AG_OK) {
    log_error("reload failed, so the agent keeps the config it runs with: %s",
              err.message);
    return;
  }

  agent_set_config(daemon->agent, fresh);
  config_free(daemon->config);
  daemon->config = fresh;
  if (apply_logging(daemon, &err) != AG_OK)
    log_error("%s", err.message);
  set_endpoint(daemon);
  if (server_changed && agent_is_connected(daemon->agent)) {
    agent_disconnect(daemon->agent);
    log_info("the server settings changed; reconnecting to %s",
             daemon->endpoint);
  }

  /* After a failure the operator has likely fixed something, so try at
   * once; otherwise keep the schedule, shortened to the new interval. */
  int64_t now = plat_monotonic_ms();
  int64_t latest = now + (int64_t)fresh->poll_interval * 1000;
  if (daemon->failures > 0 || server_changed)
    daemon->next_poll_ms = now;
  else if (daemon->next_poll_ms > latest)
    daemon->next_poll_ms = latest;
  daemon->failures = 0;
  schedule_keepalive(daemon);
  log_info("reloaded the config from '%s'", fresh->path);
}

/* Sleep until the next poll is due, sending keepalives and watchdog pings
 * meanwhile and handling reload requests. Returns early when a stop is
 * requested. */
static void wait_for_poll(struct daemon *daemon)
{
  for (;;) {
    if (signals_stop_requested())
      return;
    if (signals_take_reload())
      reload(daemon);
    ping_watchdog(daemon);
    send_keepalive(daemon);

    int64_t now = plat_monotonic_ms();
    if (now >= daemon->next_poll_ms)
      return;
    int64_t wake = daemon->next_poll_ms;
    if (daemon->ping_step_ms > 0 &&
        daemon->last_ping_ms + daemon->ping_step_ms < wake)
      wake = daemon->last_ping_ms + daemon->ping_step_ms;
    if (daemon->next_keepalive_ms > 0 && daemon->next_keepalive_ms < wake)
      wake = daemon->next_keepalive_ms;
    signals_wait(wake > now ? wake - now : 1);
  }
}

/* Install the hooks, connect for the first time and report readiness,
 * whether or not the server could be reached. */
static void start(struct daemon *daemon)
{
  struct agent_hooks hooks = {.stop_requested = hook_stop_requested,
                              .progress = hook_progress,
                              .ctx = daemon};
  struct ag_error err = {0};

  agent_set_hooks(daemon->agent, &hooks);
  set_endpoint(daemon);
  daemon->ping_step_ms = notify_watchdog_timeout_ms() / 4;
  daemon->last_ping_ms = plat_monotonic_ms();
  log_info("started: polling '%s' on %s every %d s with config '%s'",
           daemon->config->inbox, daemon->endpoint,
           daemon->config->poll_interval, daemon->config->path);
  if (daemon->ping_step_ms > 0)
    log_info("systemd watchdog enabled; pinging every %lld ms",
             (long long)daemon->ping_step_ms);

  enum ag_code code = agent_connect(daemon->agent, &err);
  if (code == AG_OK) {
    daemon->next_poll_ms = plat_monotonic_ms();
    schedule_keepalive(daemon);
    set_status(daemon, "connected to %s; polling every %d s", daemon->endpoint,
               daemon->config->poll_interval);
  } else {
    handle_failure(daemon, code, &err, false);
  }
  check_notified(daemon, notify_ready(daemon->status), "the readiness");
}

enum ag_code daemon_run(const char *config_path,
                        const struct daemon_options *options,
                        struct ag_error *err)
{
  struct daemon daemon = {.options = options};
  enum ag_code code = signals_install(err);

  if (code == AG_OK)
    code = config_load(config_path, &daemon.config, err);
  if (code == AG_OK)
    code = apply_logging(&daemon, err);
  if (code == AG_OK)
    code = agent_open(daemon.config, 0, &daemon.agent, err);
  if (code != AG_OK)
    goto out;

  start(&daemon);
  for (;;) {
    wait_for_poll(&daemon);
    if (signals_stop_requested())
      break;
    run_pass(&daemon);
  }
  log_info("stopping on %s", signals_stop_name());
  check_notified(&daemon, notify_stopping(), "the shutdown");

out:
  agent_close(daemon.agent);
  config_free(daemon.config);
  signals_restore();
  if (code == AG_OK)
    log_info("stopped");
  /* Back to stderr, where main() reports a start-up error. */
  log_close();
  return code;
}
