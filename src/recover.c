/* Crash recovery of local publications: a DOWNLOADED record with a
 * publication intent (output_temp set) was interrupted between recording
 * the intent and recording DELIVERED. */
#include "agent_internal.h"

#include <stdlib.h>
#include <string.h>

#include "agent/log.h"

/* The keys of the records that carry an intent. */
struct intents {
  char **keys;
  size_t *lengths;
  size_t count;
  size_t capacity;
};

static enum ag_code collect_intent(void *ctx, const void *key, size_t key_len,
                                   const struct manifest_record *record)
{
  struct intents *list = ctx;

  if (record->state != MANIFEST_DOWNLOADED || record->output_temp == NULL ||
      record->output == NULL)
    return AG_OK;
  if (list->count == list->capacity) {
    size_t capacity = list->capacity == 0 ? 8 : list->capacity * 2;
    char **keys = realloc(list->keys, capacity * sizeof(*keys));
    if (keys == NULL)
      return AG_ENOMEM;
    list->keys = keys;
    size_t *lengths = realloc(list->lengths, capacity * sizeof(*lengths));
    if (lengths == NULL)
      return AG_ENOMEM;
    list->lengths = lengths;
    list->capacity = capacity;
  }
  list->keys[list->count] = malloc(key_len);
  if (list->keys[list->count] == NULL)
    return AG_ENOMEM;
  memcpy(list->keys[list->count], key, key_len);
  list->lengths[list->count++] = key_len;
  return AG_OK;
}

static char *join_local(const char *dir, const char *name)
{
  size_t size = strlen(dir) + 1 + strlen(name) + 1;
  char *path = malloc(size);

  if (path != NULL)
    snprintf(path, size, "%s/%s", dir, name);
  return path;
}

/* Rename output_dir/temp to output_dir/name unless temp is gone, which
 * proves that the rename happened, because only the agent removes its
 * temporary files and the start-up cleanup runs after this recovery. Sets
 * *renamed when this call did the rename. */
static enum ag_code finish_rename(const char *dir, const char *temp,
                                  const char *name, bool *renamed,
                                  struct ag_error *err)
{
  char *temp_path = join_local(dir, temp);
  char *final_path = join_local(dir, name);
  enum ag_code code = AG_OK;

  *renamed = false;
  if (temp_path == NULL || final_path == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  int exists = plat_exists(temp_path);
  if (exists < 0)
    code = ag_error_set(err, AG_ELOCAL,
                        "cannot check the temporary output '%s'; check that "
                        "the agent's user can read the output folder",
                        temp_path);
  else if (exists == 1)
    code = plat_replace(temp_path, final_path, err);
  *renamed = code == AG_OK && exists == 1;

out:
  free(temp_path);
  free(final_path);
  return code;
}

/* Return whether name is one that atomic_file_create() made in the output
 * folder, so that a damaged record cannot point the recovery elsewhere. */
static bool is_output_temp_name(const char *name)
{
  size_t len = strlen(name);

  return strncmp(name, ".incoming.", 10) == 0 && len > 14 &&
         strcmp(name + len - 4, ".tmp") == 0 && strchr(name, '/') == NULL &&
         strchr(name, '\\') == NULL;
}

/* Finish the publication of one record and record it as DELIVERED. */
static enum ag_code recover_one(struct agent *agent, const char *key,
                                size_t key_len, struct manifest_record *record,
                                struct ag_error *err)
{
  const char *dir = agent->config->output_dir;
  size_t sidecar_size = strlen(record->output) + sizeof(".json");
  char *sidecar = malloc(sidecar_size);
  bool renamed = false;
  bool sidecar_renamed = false;
  char shown[512];
  enum ag_code code = AG_OK;

  if (sidecar == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  log_escape(shown, sizeof(shown), key, key_len);
  if (!is_output_temp_name(record->output_temp) ||
      (record->sidecar_temp != NULL &&
       !is_output_temp_name(record->sidecar_temp)) ||
      strchr(record->output, '/') != NULL) {
    free(sidecar);
    return ag_error_set(err, AG_ESTATE,
                        "the manifest record of '%s' names an invalid "
                        "temporary output; this is a bug in the agent, or "
                        "the manifest was edited. Remove the record with "
                        "`rossum-sftp-agent forget`, which delivers the file "
                        "again",
                        shown);
  }
  snprintf(sidecar, sidecar_size, "%s.json", record->output);

  /* In publication order: the copy, then its sidecar. */
  code = finish_rename(dir, record->output_temp, record->output, &renamed, err);
  if (code == AG_OK && record->sidecar_temp != NULL)
    code = finish_rename(dir, record->sidecar_temp, sidecar, &sidecar_renamed,
                         err);
  free(sidecar);
  if (code != AG_OK)
    return code;

  free(record->output_temp);
  free(record->sidecar_temp);
  record->output_temp = NULL;
  record->sidecar_temp = NULL;
  if (agent->config->on_success == ON_SUCCESS_MOVE &&
      record->archive_path == NULL) {
    record->archive_path =
        dispose_archive_target(agent->config, key, key_len, plat_wall_time());
    if (record->archive_path == NULL)
      return ag_error_set(err, AG_ENOMEM, "out of memory");
  }
  record->state = MANIFEST_DELIVERED;
  record->updated = plat_wall_time();
  code = manifest_put(agent->manifest, key, key_len, record, err);
  if (code != AG_OK)
    return code;

  if (renamed || sidecar_renamed)
    log_info("finished publishing '%s' as '%s/%s', which an interrupted run "
             "had written but not renamed",
             shown, dir, record->output);
  else
    log_info("'%s' was published as '%s/%s' before the agent was "
             "interrupted; recording it as delivered without publishing it "
             "again",
             shown, dir, record->output);
  return AG_OK;
}

enum ag_code recover_publications(struct agent *agent, struct ag_error *err)
{
  struct intents list = {0};
  enum ag_code code =
      manifest_foreach(agent->manifest, collect_intent, &list, err);

  if (code == AG_ENOMEM)
    ag_error_set(err, code, "out of memory");
  for (size_t i = 0; i < list.count && code == AG_OK; i++) {
    struct manifest_record record = {0};
    bool found = false;

    code = manifest_get(agent->manifest, list.keys[i], list.lengths[i], &record,
                        &found, err);
    if (code == AG_OK && found && record.output_temp != NULL &&
        record.output != NULL && record.state == MANIFEST_DOWNLOADED)
      code = recover_one(agent, list.keys[i], list.lengths[i], &record, err);
    manifest_record_clear(&record);
  }

  for (size_t i = 0; i < list.count; i++)
    free(list.keys[i]);
  free(list.keys);
  free(list.lengths);
  return code;
}
