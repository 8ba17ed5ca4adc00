/* Manifest retention at the end of a pass: old records and delivered
 * versions are removed at most once an hour, in short batches, so that the
 * manifest does not grow without bound and no pass waits long for it. */
#include "agent_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "agent/log.h"

/* Seconds between two retention runs. */
#define RETENTION_INTERVAL_S 3600

/* Entries examined per write transaction, and the time after which a run
 * starts no further batch, so that a pass waits about that long at most
 * (one batch more on a slow disk). */
#define RETENTION_BATCH 256
#define RETENTION_BUDGET_MS 1000

#define SECONDS_PER_DAY 86400

/* Return the time of the last complete run, or -1 when there was none. */
static enum ag_code read_pruned_at(struct manifest *manifest, int64_t *out,
                                   struct ag_error *err)
{
  char *text = NULL;
  char *end = NULL;
  enum ag_code code =
      manifest_get_meta(manifest, AGENT_META_PRUNED_AT, &text, err);

  *out = -1;
  if (code != AG_OK || text == NULL)
    return code;
  errno = 0;
  long long value = strtoll(text, &end, 10);
  if (errno == 0 && end != text && *end == '\0' && value >= 0)
    *out = (int64_t)value;
  free(text);
  return AG_OK;
}

/* Return whether a run is due at now. A last run in the future means that
 * the wall clock was set back, and then a run is due as well. */
static bool run_is_due(int64_t last, int64_t now)
{
  return last < 0 || now < last || now - last >= RETENTION_INTERVAL_S;
}

/* The states of the records that retention removes. */
static unsigned expiring_states(const struct config *config)
{
  unsigned states = MANIFEST_STATE_BIT(MANIFEST_SEEN) |
                    MANIFEST_STATE_BIT(MANIFEST_DOWNLOADED);

  if (config->on_success != ON_SUCCESS_KEEP)
    states |= MANIFEST_STATE_BIT(MANIFEST_ARCHIVED);
  return states;
}

enum ag_code agent_apply_retention(struct agent *agent, int64_t now,
                                   struct ag_error *err)
{
  const struct config *config = agent->config;
  struct manifest_prune_limits limits = {
      RETENTION_BATCH, plat_monotonic_ms() + RETENTION_BUDGET_MS};
  size_t records = 0;
  size_t versions = 0;
  bool records_done = true;
  bool versions_done = true;
  int64_t last = -1;

  if (config->retention_days == 0 && config->delivered_hash_retention_days == 0)
    return AG_OK;
  enum ag_code code = read_pruned_at(agent->manifest, &last, err);
  if (code != AG_OK || !run_is_due(last, now))
    return code;

  if (config->retention_days > 0)
    code = manifest_prune_records(agent->manifest, expiring_states(config),
                                  now - (int64_t)config->retention_days *
                                            SECONDS_PER_DAY,
                                  &limits, &records, &records_done, err);
  if (code == AG_OK && config->delivered_hash_retention_days > 0)
    code = manifest_prune_versions(
        agent->manifest,
        now - (int64_t)config->delivered_hash_retention_days * SECONDS_PER_DAY,
        &limits, &versions, &versions_done, err);
  if (code != AG_OK)
    return code;

  if (records > 0 || versions > 0)
    log_info("retention: removed %zu manifest records older than %d days "
             "and %zu delivered versions older than %d days",
             records, config->retention_days, versions,
             config->delivered_hash_retention_days);
  if (!records_done || !versions_done) {
    log_debug("retention: stopped after %d ms; the next pass goes on",
              RETENTION_BUDGET_MS);
    return AG_OK;
  }

  char stamp[32];
  snprintf(stamp, sizeof(stamp), "%" PRId64, now);
  return manifest_set_meta(agent->manifest, AGENT_META_PRUNED_AT, stamp, err);
}
