/* Claims of one agent: take a file from the inbox into its claim folder,
 * finish the files in that folder after a crash, and move a delivered
 * file into its delivered folder. See claim_internal.h for the layout. */
#include "claim_internal.h"
#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "agent/log.h"
#include "agent/rpath.h"

/* ---- Names and times ---- */

static bool is_agent_id(const char *name, size_t len)
{
  if (len < CLAIM_ID_LEN)
    return false;
  for (size_t i = 0; i < CLAIM_ID_LEN; i++) {
    if (strchr("0123456789abcdef", name[i]) == NULL || name[i] == '\0')
      return false;
  }
  return true;
}

enum claim_entry claim_classify(const char *name, size_t len,
                                char id[CLAIM_ID_LEN + 1])
{
  size_t infix_len = strlen(CLAIM_HEARTBEAT_INFIX);
  enum claim_entry entry = CLAIM_ENTRY_OTHER;

  if (!is_agent_id(name, len))
    return CLAIM_ENTRY_OTHER;
  const char *rest = name + CLAIM_ID_LEN;
  size_t rest_len = len - CLAIM_ID_LEN;
  if (rest_len == 0) {
    entry = CLAIM_ENTRY_CLAIMS;
  } else if (rest_len == strlen(CLAIM_DELIVERED_SUFFIX) &&
             memcmp(rest, CLAIM_DELIVERED_SUFFIX, rest_len) == 0) {
    entry = CLAIM_ENTRY_DELIVERED;
  } else if (rest_len > infix_len && rest_len <= infix_len + 19 &&
             memcmp(rest, CLAIM_HEARTBEAT_INFIX, infix_len) == 0) {
    entry = CLAIM_ENTRY_HEARTBEAT;
    for (size_t i = infix_len; i < rest_len; i++) {
      if (rest[i] < '0' || rest[i] > '9')
        entry = CLAIM_ENTRY_OTHER;
    }
  }
  if (entry != CLAIM_ENTRY_OTHER) {
    memcpy(id, name, CLAIM_ID_LEN);
    id[CLAIM_ID_LEN] = '\0';
  }
  return entry;
}

bool claim_is_stale(int64_t last_alive, int64_t now, int timeout)
{
  /* now is a real time, so subtracting the timeout cannot overflow. */
  return last_alive < now - (int64_t)timeout;
}

int64_t claim_heartbeat_interval_ms(int timeout)
{
  return (int64_t)timeout * 1000 / 4;
}

/* ---- Listings and state ---- */

static enum ag_code add_item(void *ctx, const struct remote_entry *entry)
{
  struct claim_listing *listing = ctx;

  if (listing->count == listing->capacity) {
    size_t capacity = listing->capacity == 0 ? 16 : listing->capacity * 2;
    struct claim_item *items =
        realloc(listing->items, capacity * sizeof(*items));
    if (items == NULL)
      return AG_ENOMEM;
    listing->items = items;
    listing->capacity = capacity;
  }
  struct claim_item *item = &listing->items[listing->count];
  item->rel = strndup(entry->rel, entry->rel_len);
  if (item->rel == NULL)
    return AG_ENOMEM;
  item->rel_len = entry->rel_len;
  item->kind = entry->kind;
  item->size = entry->size;
  item->mtime = entry->mtime;
  listing->count++;
  return AG_OK;
}

enum ag_code claim_list(struct agent *agent, const char *dir, bool recursive,
                        struct claim_listing *listing, struct ag_error *err)
{
  struct ag_error list_err = {0};
  enum ag_code code = remote_list(agent->remote, dir, recursive, NULL, 0,
                                  add_item, listing, &list_err);

  if (code == AG_ENOMEM)
    return ag_error_set(err, code, "out of memory");
  if (code == AG_ENOENT) {
    claim_listing_free(listing);
    return AG_OK;
  }
  if (code != AG_OK)
    return ag_error_set(err, code, "%s", list_err.message);
  return AG_OK;
}

void claim_listing_free(struct claim_listing *listing)
{
  for (size_t i = 0; i < listing->count; i++)
    free(listing->items[i].rel);
  free(listing->items);
  memset(listing, 0, sizeof(*listing));
}

char *claim_folder(const struct config *config, const char *id,
                   const char *suffix)
{
  char name[CLAIM_ID_LEN + 32];

  snprintf(name, sizeof(name), "%s%s", id, suffix);
  return rpath_join(config->claim_dir, name, strlen(name));
}

char *claim_path_for(const struct config *config, const char *id,
                     const char *suffix, const char *rel, size_t rel_len)
{
  char *folder = claim_folder(config, id, suffix);
  char *path = folder != NULL ? rpath_join(folder, rel, rel_len) : NULL;

  free(folder);
  return path;
}

/* Return the path of rel in this agent's folder with suffix, malloc'd. */
static char *own_path(const struct agent *agent, const char *suffix,
                      const char *rel, size_t rel_len)
{
  return claim_path_for(agent->config, manifest_agent_id(agent->manifest),
                        suffix, rel, rel_len);
}

struct claim_state *claim_state_get(struct agent *agent)
{
  if (agent->claims != NULL)
    return agent->claims;
  agent->claims = calloc(1, sizeof(*agent->claims));
  if (agent->claims == NULL)
    return NULL;
  agent->claims->settling = stable_new();
  if (agent->claims->settling == NULL) {
    free(agent->claims);
    agent->claims = NULL;
  }
  return agent->claims;
}

void claim_state_free(struct claim_state *state)
{
  if (state == NULL)
    return;
  stable_free(state->settling);
  free(state->heartbeat);
  free(state);
}

char *claim_source_path(const struct config *config, const char *rel,
                        size_t rel_len, const struct manifest_record *record)
{
  if (record != NULL && record->claim_path != NULL)
    return strdup(record->claim_path);
  return rpath_join(config->inbox, rel, rel_len);
}

/* Return a malloc'd copy of the folder part of path. */
static char *parent_folder(const char *path)
{
  size_t base = rpath_base_offset(path, strlen(path));

  return strndup(path, base > 1 ? base - 1 : 1);
}

/* ---- Claiming a file ---- */

/* A rename that fails with AG_ENOENT while from exists lacks the target's
 * folder: a subfolder of a recursive inbox, or a claim folder removed by
 * hand. */
enum ag_code claim_rename(struct agent *agent, const char *from, const char *to,
                          bool *source_gone, struct ag_error *err)
{
  struct remote_entry entry;
  struct ag_error rename_err = {0};
  struct ag_error stat_err = {0};
  enum ag_code code = remote_rename(agent->remote, from, to, &rename_err);

  *source_gone = false;
  if (code != AG_OK && code != AG_ENOENT)
    return ag_error_set(err, code, "%s", rename_err.message);
  if (code == AG_OK)
    return AG_OK;
  code = remote_stat(agent->remote, from, &entry, &stat_err);
  if (code == AG_ENOENT) {
    *source_gone = true;
    return ag_error_set(err, AG_ENOENT, "%s", rename_err.message);
  }
  if (code != AG_OK)
    return ag_error_set(err, code, "%s", stat_err.message);

  char *folder = parent_folder(to);
  if (folder == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  code = remote_mkdirs(agent->remote, folder, err);
  free(folder);
  if (code == AG_OK)
    code = remote_rename(agent->remote, from, to, err);
  return code;
}

/* Decide what a failed claim means: another agent was first, the claim
 * folder has a file of that name, or the server refused. */
static enum ag_code handle_claim_error(const struct candidate *file,
                                       enum ag_code code, bool source_gone,
                                       const struct ag_error *claim_err,
                                       struct agent_summary *summary,
                                       struct ag_error *err)
{
  char shown[512];

  log_escape(shown, sizeof(shown), file->rel, file->rel_len);
  if (agent_error_is_fatal(code))
    return ag_error_set(err, code, "%s", claim_err->message);
  if (source_gone) {
    summary->claimed_elsewhere++;
    log_debug("'%s' was claimed by another agent first; skipped", shown);
    return AG_OK;
  }
  if (code == AG_EEXIST) {
    summary->deferred++;
    log_info("'%s' waits in the inbox: this agent's claim folder still has "
             "a file of that name, which it finishes first",
             shown);
    return AG_OK;
  }
  summary->pending++;
  log_error("cannot claim '%s': %s; retrying next pass", shown,
            claim_err->message);
  return AG_OK;
}

enum ag_code claim_take(struct agent *agent, const struct candidate *file,
                        char **claim_path, bool *taken,
                        struct agent_summary *summary, struct ag_error *err)
{
  struct ag_error claim_err = {0};
  bool source_gone = false;

  *claim_path = NULL;
  *taken = agent->config->claim_dir == NULL;
  if (*taken)
    return AG_OK;

  /* Long passes write heartbeats between files, so that other agents
   * never take this one for stopped while it works. */
  enum ag_code code = claim_heartbeat(agent, false, err);
  if (code != AG_OK)
    return code;
  char *target = own_path(agent, "", file->rel, file->rel_len);
  char *source = rpath_join(agent->config->inbox, file->rel, file->rel_len);
  if (target == NULL || source == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }

  if (!file->claimed)
    code = claim_rename(agent, source, target, &source_gone, &claim_err);
  if (code != AG_OK) {
    code =
        handle_claim_error(file, code, source_gone, &claim_err, summary, err);
    goto out;
  }
  *claim_path = target;
  target = NULL;
  *taken = true;

out:
  free(target);
  free(source);
  return code;
}

/* ---- Files already in the claim folder ---- */

/* Decide whether the claimed file item is taken now. A delivered file
 * belongs to resume_unfinished(). A file that changed after its claim (a
 * writer that still had it open) must hold still for stable_seconds, as
 * in the inbox. */
static enum ag_code resume_decision(struct agent *agent,
                                    const struct claim_item *item,
                                    int64_t now_ms, bool *take,
                                    struct ag_error *err)
{
  struct manifest_record record = {0};
  bool found = false;
  char shown[512];
  enum ag_code code = manifest_get(agent->manifest, item->rel, item->rel_len,
                                   &record, &found, err);

  *take = false;
  if (code != AG_OK)
    return code;
  bool started = found && (record.state == MANIFEST_SEEN ||
                           record.state == MANIFEST_DOWNLOADED);
  bool changed =
      started && (record.size != item->size || record.mtime != item->mtime);
  *take = !found || record.state != MANIFEST_DELIVERED;
  manifest_record_clear(&record);
  if (!*take || !changed)
    return AG_OK;

  int stable = stable_observe(agent->claims->settling, item->rel, item->rel_len,
                              item->size, item->mtime, now_ms,
                              (int64_t)agent->config->stable_seconds * 1000);
  if (stable < 0)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  *take = stable == 1;
  if (!*take)
    log_info("'%s' in this agent's claim folder changed after it was "
             "claimed; it is taken once its size and mtime hold still for "
             "%d s",
             log_escape(shown, sizeof(shown), item->rel, item->rel_len),
             agent->config->stable_seconds);
  return AG_OK;
}

/* Take one file of the claim folder through ingest_file(). */
static enum ag_code resume_item(struct agent *agent,
                                const struct claim_item *item,
                                struct agent_summary *summary,
                                struct ag_error *err)
{
  struct candidate file = {
      .rel = item->rel,
      .rel_len = item->rel_len,
      .size = item->size,
      .mtime = item->mtime,
      .claimed = true,
  };
  char shown[512];

  log_info("taking '%s' from this agent's claim folder",
           log_escape(shown, sizeof(shown), item->rel, item->rel_len));
  return ingest_file(agent, &file, summary, err);
}

enum ag_code claim_resume(struct agent *agent, struct agent_summary *summary,
                          struct ag_error *err)
{
  struct claim_listing listing = {0};
  enum ag_code code = AG_OK;
  char *folder = NULL;

  if (agent->config->claim_dir == NULL)
    return AG_OK;
  if (claim_state_get(agent) == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  folder = claim_folder(agent->config, manifest_agent_id(agent->manifest), "");
  if (folder == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  code = claim_list(agent, folder, true, &listing, err);
  stable_next_generation(agent->claims->settling);

  int64_t now_ms = plat_monotonic_ms();
  for (size_t i = 0; i < listing.count && code == AG_OK; i++) {
    const struct claim_item *item = &listing.items[i];
    bool take = false;

    if (agent_stop_requested(agent))
      break;
    if (item->kind != REMOTE_FILE || item->rel_len > MANIFEST_KEY_MAX)
      continue;
    code = resume_decision(agent, item, now_ms, &take, err);
    if (code == AG_OK && take)
      code = resume_item(agent, item, summary, err);
  }

  claim_listing_free(&listing);
  free(folder);
  return code;
}

/* ---- Delivered files ---- */

/* Record that the delivered file of rel now is at path. */
static enum ag_code record_moved(struct agent *agent, const char *rel,
                                 size_t rel_len, struct manifest_record *record,
                                 char *path, struct ag_error *err)
{
  free(record->claim_path);
  record->claim_path = path;
  record->updated = plat_wall_time();
  return agent_put_record(agent, rel, rel_len, record, err);
}

enum ag_code claim_stage_delivered(struct agent *agent, const char *rel,
                                   size_t rel_len,
                                   struct manifest_record *record,
                                   struct ag_error *err)
{
  struct ag_error move_err = {0};
  struct remote_entry entry;
  char shown[512];
  bool source_gone = false;

  if (agent->config->claim_dir == NULL || record->claim_path == NULL)
    return AG_OK;
  char *claimed = own_path(agent, "", rel, rel_len);
  char *staged = own_path(agent, CLAIM_DELIVERED_SUFFIX, rel, rel_len);
  enum ag_code code = AG_OK;
  if (claimed == NULL || staged == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  if (strcmp(record->claim_path, claimed) != 0)
    goto out;

  code = claim_rename(agent, claimed, staged, &source_gone, &move_err);

  /* After a crash between this move and its record, the file is found in
   * the delivered folder. A file that is in neither folder is left to the
   * remote step, which reports it. */
  if (source_gone) {
    struct ag_error stat_err = {0};
    code = remote_stat(agent->remote, staged, &entry, &stat_err);
    if (code == AG_ENOENT) {
      code = AG_OK;
      goto out;
    }
    ag_error_clear(&move_err);
    if (code != AG_OK)
      ag_error_set(&move_err, code, "%s", stat_err.message);
  }
  if (code == AG_OK) {
    code = record_moved(agent, rel, rel_len, record, staged, err);
    staged = NULL;
  } else if (agent_error_is_fatal(code)) {
    ag_error_set(err, code, "%s", move_err.message);
  } else {
    log_warn("cannot move delivered '%s' into this agent's delivered "
             "folder: %s; it stays in the claim folder, from which other "
             "agents return it to the inbox if this agent stops for longer "
             "than claim_timeout",
             log_escape(shown, sizeof(shown), rel, rel_len), move_err.message);
    code = AG_OK;
  }

out:
  free(claimed);
  free(staged);
  return code;
}
