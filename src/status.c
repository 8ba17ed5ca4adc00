/* The status command: counts by state and the latest failures, read from
 * the manifest without taking the state folder's lock. */
#include "agent_internal.h"

#include <stdlib.h>
#include <string.h>

#include "agent/log.h"
#include "agent/output.h"

#define STATUS_FAILURES_SHOWN 10

struct failure {
  char name[512];
  char reason[512];
  int64_t when;
};

struct failure_list {
  struct failure latest[STATUS_FAILURES_SHOWN];
  size_t count;
  size_t pending;
};

/* Keep the most recent failures, newest first. */
static enum ag_code note_failure(void *ctx, const void *key, size_t key_len,
                                 const struct manifest_record *record)
{
  struct failure_list *list = ctx;
  struct failure item;
  size_t at;

  if (record->state == MANIFEST_DELIVERED)
    list->pending++;
  if (record->state != MANIFEST_FAILED)
    return AG_OK;
  log_escape(item.name, sizeof(item.name), key, key_len);
  log_escape(item.reason, sizeof(item.reason),
             record->reason != NULL ? record->reason : "",
             record->reason != NULL ? strlen(record->reason) : 0);
  item.when = record->updated;

  for (at = 0; at < list->count && list->latest[at].when >= item.when; at++)
    continue;
  if (at == STATUS_FAILURES_SHOWN)
    return AG_OK;
  size_t keep = list->count < STATUS_FAILURES_SHOWN ? list->count
                                                    : STATUS_FAILURES_SHOWN - 1;
  memmove(&list->latest[at + 1], &list->latest[at], (keep - at) * sizeof(item));
  list->latest[at] = item;
  if (list->count < STATUS_FAILURES_SHOWN)
    list->count++;
  return AG_OK;
}

static void print_failures(FILE *out, const struct failure_list *list)
{
  char stamp[32];

  if (list->count == 0)
    return;
  fprintf(out, "latest failures:\n");
  for (size_t i = 0; i < list->count; i++) {
    output_format_time(list->latest[i].when, stamp, sizeof(stamp));
    fprintf(out, "  %s  %s: %s\n", stamp, list->latest[i].name,
            list->latest[i].reason);
  }
}

enum ag_code agent_status(const struct config *config, FILE *out,
                          struct ag_error *err)
{
  struct manifest *manifest = NULL;
  struct failure_list *failures = calloc(1, sizeof(*failures));
  size_t counts[6] = {0};
  size_t dir_len = strlen(config->state_dir);
  char *path = malloc(dir_len + sizeof("/manifest.mdb"));
  enum ag_code code = AG_OK;

  if (failures == NULL || path == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  snprintf(path, dir_len + sizeof("/manifest.mdb"), "%s/manifest.mdb",
           config->state_dir);
  if (plat_exists(path) != 1 && plat_exists(config->state_dir) != 1) {
    fprintf(out,
            "state folder %s does not exist yet: the agent has not "
            "run\n",
            config->state_dir);
    goto out;
  }

  code = manifest_open(config->state_dir, &manifest, err);
  if (code == AG_OK)
    code = manifest_counts(manifest, counts, err);
  if (code == AG_OK)
    code = manifest_foreach(manifest, note_failure, failures, err);
  if (code != AG_OK)
    goto out;

  fprintf(out, "manifest %s\n", path);
  for (int state = MANIFEST_SEEN; state <= MANIFEST_FAILED; state++)
    fprintf(out, "  %-10s %zu\n", manifest_state_name(state), counts[state]);
  if (failures->pending > 0)
    fprintf(out, "%zu delivered files wait for their remote move\n",
            failures->pending);
  print_failures(out, failures);

out:
  manifest_close(manifest);
  free(failures);
  free(path);
  return code;
}
