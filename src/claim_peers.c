/* Claims between agents: the heartbeat that shows this agent is running,
 * and the return of the claims of agents that stopped. See
 * claim_internal.h for the layout of claim_dir. */
#include "claim_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "agent/log.h"
#include "agent/output.h"
#include "agent/rpath.h"

/* Names tried for a new heartbeat file before giving up. */
#define HEARTBEAT_NAME_ATTEMPTS 10

enum ag_code claim_check_folder(struct agent *agent, struct ag_error *err)
{
  const char *folder = agent->config->claim_dir;
  struct remote_entry entry;
  struct ag_error stat_err = {0};

  if (folder == NULL)
    return AG_OK;
  enum ag_code code = remote_stat(agent->remote, folder, &entry, &stat_err);
  if (code == AG_OK && entry.kind == REMOTE_DIR)
    return AG_OK;
  if (code == AG_OK || code == AG_ENOENT)
    return ag_error_set(err, AG_ENOENT,
                        "the claim folder '%s' does not exist on the server; "
                        "create it or correct [remote] claim_dir",
                        folder);
  return ag_error_set(err, code, "%s", stat_err.message);
}

/* ---- Heartbeat ---- */

/* Write a new heartbeat file, trying the next number when a name is
 * taken. Stores its path in *path (malloc'd) and its number in *number. */
static enum ag_code write_heartbeat(struct agent *agent, int64_t first,
                                    char **path, int64_t *number,
                                    struct ag_error *err)
{
  const char *id = manifest_agent_id(agent->manifest);
  char stamp[32];
  char text[128];
  char name[CLAIM_ID_LEN + 48];
  enum ag_code code = AG_EEXIST;

  output_format_time(plat_wall_time(), stamp, sizeof(stamp));
  int len = snprintf(text, sizeof(text), "agent %s\nwritten %s\n", id, stamp);
  *path = NULL;
  for (int i = 0; i < HEARTBEAT_NAME_ATTEMPTS && code == AG_EEXIST; i++) {
    struct ag_error write_err = {0};

    *number = first + i;
    snprintf(name, sizeof(name), "%s" CLAIM_HEARTBEAT_INFIX "%" PRId64, id,
             *number);
    free(*path);
    *path = rpath_join(agent->config->claim_dir, name, strlen(name));
    if (*path == NULL)
      return ag_error_set(err, AG_ENOMEM, "out of memory");
    code =
        remote_write_new(agent->remote, *path, text, (size_t)len, &write_err);
    if (code != AG_OK && code != AG_EEXIST)
      ag_error_set(err, code, "%s", write_err.message);
  }
  if (code == AG_EEXIST)
    ag_error_set(err, code, "%d names up to '%s' are all taken",
                 HEARTBEAT_NAME_ATTEMPTS, *path);
  if (code != AG_OK) {
    free(*path);
    *path = NULL;
  }
  return code;
}

/* Remove an earlier heartbeat file of this agent. Failing to is only
 * logged, because the newer one already shows that the agent runs. */
static void remove_heartbeat(struct agent *agent, const char *path)
{
  struct ag_error unlink_err = {0};
  enum ag_code code = remote_unlink(agent->remote, path, &unlink_err);

  if (code != AG_OK && code != AG_ENOENT)
    log_warn("cannot remove the earlier heartbeat '%s': %s", path,
             unlink_err.message);
}

enum ag_code claim_heartbeat(struct agent *agent, bool force,
                             struct ag_error *err)
{
  struct claim_state *state = NULL;
  char *folder = NULL;
  char *path = NULL;
  int64_t number = 0;
  enum ag_code code = AG_OK;

  if (agent->config->claim_dir == NULL)
    return AG_OK;
  state = claim_state_get(agent);
  if (state == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  int64_t now_ms = plat_monotonic_ms();
  if (!force && state->heartbeat != NULL &&
      now_ms - state->heartbeat_ms <
          claim_heartbeat_interval_ms(agent->config->claim_timeout))
    return AG_OK;

  /* The claim folder exists before the first claim. Numbers start at the
   * wall clock, so that they grow across restarts. */
  struct ag_error write_err = {0};
  folder = claim_folder(agent->config, manifest_agent_id(agent->manifest), "");
  if (folder == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  code = remote_mkdirs(agent->remote, folder, &write_err);
  int64_t first = plat_wall_time();
  if (first <= state->heartbeat_number)
    first = state->heartbeat_number + 1;
  if (code == AG_OK)
    code = write_heartbeat(agent, first, &path, &number, &write_err);
  if (code != AG_OK) {
    ag_error_set(err, code,
                 "cannot write this agent's heartbeat into '%s': %s; the "
                 "pass stops, because other agents take back the claims of "
                 "an agent without a heartbeat",
                 agent->config->claim_dir, write_err.message);
    goto out;
  }

  if (state->heartbeat != NULL)
    remove_heartbeat(agent, state->heartbeat);
  free(state->heartbeat);
  state->heartbeat = path;
  state->heartbeat_number = number;
  state->heartbeat_ms = now_ms;

out:
  free(folder);
  return code;
}

/* ---- Other agents ---- */

/* One agent's entries in claim_dir. */
struct peer {
  char id[CLAIM_ID_LEN + 1];
  char *heartbeat;         /* name of its newest heartbeat file, or NULL */
  int64_t heartbeat_mtime; /* that file's mtime */
  int64_t folder_mtime;    /* newest mtime of its two folders */
  bool has_folder;         /* it has a claim or delivered folder */
};

struct peers {
  struct peer *list;
  size_t count;
};

static void peers_free(struct peers *peers)
{
  for (size_t i = 0; i < peers->count; i++)
    free(peers->list[i].heartbeat);
  free(peers->list);
  memset(peers, 0, sizeof(*peers));
}

static struct peer *find_peer(struct peers *peers, const char *id)
{
  for (size_t i = 0; i < peers->count; i++) {
    if (strcmp(peers->list[i].id, id) == 0)
      return &peers->list[i];
  }
  struct peer *peer = &peers->list[peers->count++];
  memset(peer, 0, sizeof(*peer));
  memcpy(peer->id, id, sizeof(peer->id));
  peer->heartbeat_mtime = INT64_MIN;
  peer->folder_mtime = INT64_MIN;
  return peer;
}

/* Fold one entry of claim_dir into peers. */
static enum ag_code add_to_peers(struct peers *peers,
                                 const struct claim_item *item)
{
  char id[CLAIM_ID_LEN + 1];
  enum claim_entry entry = claim_classify(item->rel, item->rel_len, id);
  bool is_folder =
      entry == CLAIM_ENTRY_CLAIMS || entry == CLAIM_ENTRY_DELIVERED;

  if (entry == CLAIM_ENTRY_OTHER || (is_folder && item->kind != REMOTE_DIR) ||
      (entry == CLAIM_ENTRY_HEARTBEAT && item->kind != REMOTE_FILE))
    return AG_OK;
  struct peer *peer = find_peer(peers, id);
  if (is_folder) {
    peer->has_folder = true;
    if (item->mtime > peer->folder_mtime)
      peer->folder_mtime = item->mtime;
    return AG_OK;
  }
  if (item->mtime > peer->heartbeat_mtime || peer->heartbeat == NULL) {
    char *name = strdup(item->rel);
    if (name == NULL)
      return AG_ENOMEM;
    free(peer->heartbeat);
    peer->heartbeat = name;
    peer->heartbeat_mtime = item->mtime;
  }
  return AG_OK;
}

/* List claim_dir and collect what it shows about each agent. The entries
 * stay in *listing, for the caller's own heartbeat files. */
static enum ag_code find_peers(struct agent *agent,
                               struct claim_listing *listing,
                               struct peers *peers, struct ag_error *err)
{
  enum ag_code code =
      claim_list(agent, agent->config->claim_dir, false, listing, err);

  if (code != AG_OK)
    return code;
  peers->list = calloc(listing->count + 1, sizeof(*peers->list));
  if (peers->list == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  for (size_t i = 0; i < listing->count && code == AG_OK; i++)
    code = add_to_peers(peers, &listing->items[i]);
  if (code != AG_OK)
    return ag_error_set(err, code, "out of memory");
  return AG_OK;
}

/* Return the time of peer's last sign of life: its newest heartbeat, or
 * without one, the newest change of its folders. */
static int64_t last_alive(const struct peer *peer)
{
  return peer->heartbeat != NULL ? peer->heartbeat_mtime : peer->folder_mtime;
}

/* Set *stopped to whether peer still shows no sign of life: its newest
 * heartbeat file is still there, unchanged. A running agent replaces that
 * file at its next heartbeat, so this check just before each move keeps
 * the window in which an agent that starts again loses a file to the
 * recovery to one request. */
static enum ag_code peer_still_stopped(struct agent *agent,
                                       const struct peer *peer, bool *stopped,
                                       struct ag_error *err)
{
  struct remote_entry entry;
  struct ag_error stat_err = {0};

  /* NOTE: an agent without any heartbeat file (removed by hand) cannot
   * be checked again, so its claims are moved without this check. */
  *stopped = true;
  if (peer->heartbeat == NULL)
    return AG_OK;
  char *path = rpath_join(agent->config->claim_dir, peer->heartbeat,
                          strlen(peer->heartbeat));
  if (path == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  enum ag_code code = remote_stat(agent->remote, path, &entry, &stat_err);
  free(path);
  if (code != AG_OK && agent_error_is_fatal(code))
    return ag_error_set(err, code, "%s", stat_err.message);
  *stopped = code == AG_OK && entry.mtime == peer->heartbeat_mtime;
  if (!*stopped)
    log_info("agent %s shows a new heartbeat; the rest of its claims stay "
             "with it",
             peer->id);
  return AG_OK;
}

/* Archive a file that the stopped agent peer delivered but did not
 * archive. Its output exists on that agent's host, so delivering it here
 * would make a second copy. */
static enum ag_code archive_for_peer(struct agent *agent,
                                     const struct peer *peer,
                                     const struct claim_item *item,
                                     struct ag_error *err)
{
  struct ag_error move_err = {0};
  char shown[512];
  char target[1024];
  char tag[9];
  char *final = NULL;
  char *from = claim_path_for(agent->config, peer->id, CLAIM_DELIVERED_SUFFIX,
                              item->rel, item->rel_len);
  char *planned = dispose_archive_target(agent->config, item->rel,
                                         item->rel_len, plat_wall_time());
  enum ag_code code = AG_OK;

  if (from == NULL || planned == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  log_escape(shown, sizeof(shown), item->rel, item->rel_len);
  snprintf(tag, sizeof(tag), "%.8s", peer->id);
  code = dispose_move(agent, from, planned, tag, &final, &move_err);
  if (code == AG_OK) {
    log_warn("archived '%s' as '%s' for stopped agent %s, which delivered "
             "it but did not archive it; that agent's hook may not have run "
             "for it",
             shown, log_escape(target, sizeof(target), final, strlen(final)),
             peer->id);
  } else if (code == AG_ENOENT) {
    log_debug("'%s' of stopped agent %s was moved by another agent first",
              shown, peer->id);
    code = AG_OK;
  } else if (agent_error_is_fatal(code)) {
    ag_error_set(err, code, "%s", move_err.message);
  } else {
    log_error("cannot archive '%s' for stopped agent %s: %s; retrying at "
              "the next heartbeat",
              shown, peer->id, move_err.message);
    code = AG_OK;
  }

out:
  free(final);
  free(from);
  free(planned);
  return code;
}

/* When the inbox already has a file of that name, a newer upload, take
 * the stopped agent's older version into this agent's claim folder
 * instead. claim_resume() then delivers it before the newer one is
 * claimed, and no name changes. Sets *source_gone as claim_rename(). */
static enum ag_code take_over(struct agent *agent, const struct peer *peer,
                              const struct claim_item *item, const char *from,
                              bool *source_gone, struct ag_error *move_err)
{
  char *to = claim_path_for(agent->config, manifest_agent_id(agent->manifest),
                            "", item->rel, item->rel_len);
  char shown[512];

  if (to == NULL)
    return ag_error_set(move_err, AG_ENOMEM, "out of memory");
  ag_error_clear(move_err);
  enum ag_code code = claim_rename(agent, from, to, source_gone, move_err);
  free(to);
  log_escape(shown, sizeof(shown), item->rel, item->rel_len);
  if (code == AG_OK)
    log_info("the inbox has a newer '%s', so this agent takes the version "
             "claimed by stopped agent %s into its own claim folder and "
             "delivers it first",
             shown, peer->id);
  if (code != AG_EEXIST)
    return code;
  log_warn("'%s' stays in the claim folder of stopped agent %s, because "
           "the inbox and this agent's claim folder both have a file of "
           "that name; it is returned once the name is free",
           shown, peer->id);
  return AG_OK;
}

/* Return a file that the stopped agent peer claimed but did not deliver
 * to the inbox under its original name. */
static enum ag_code return_to_inbox(struct agent *agent,
                                    const struct peer *peer,
                                    const struct claim_item *item,
                                    struct ag_error *err)
{
  struct ag_error move_err = {0};
  char shown[512];
  bool source_gone = false;
  char *from =
      claim_path_for(agent->config, peer->id, "", item->rel, item->rel_len);
  char *to = rpath_join(agent->config->inbox, item->rel, item->rel_len);
  enum ag_code code = AG_OK;

  if (from == NULL || to == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  log_escape(shown, sizeof(shown), item->rel, item->rel_len);
  code = claim_rename(agent, from, to, &source_gone, &move_err);
  if (code == AG_OK)
    log_info("returned '%s' from the claim folder of stopped agent %s to "
             "the inbox",
             shown, peer->id);
  else if (code == AG_EEXIST)
    code = take_over(agent, peer, item, from, &source_gone, &move_err);

  if (code == AG_OK) {
    goto out;
  } else if (source_gone) {
    log_debug("'%s' of stopped agent %s was moved by another agent first",
              shown, peer->id);
    code = AG_OK;
  } else if (agent_error_is_fatal(code)) {
    ag_error_set(err, code, "%s", move_err.message);
  } else {
    log_error("cannot return '%s' of stopped agent %s to the inbox: %s; "
              "retrying at the next heartbeat",
              shown, peer->id, move_err.message);
    code = AG_OK;
  }

out:
  free(from);
  free(to);
  return code;
}

/* List the files in peer's folder with suffix. */
static enum ag_code list_peer_folder(struct agent *agent,
                                     const struct peer *peer,
                                     const char *suffix,
                                     struct claim_listing *listing,
                                     struct ag_error *err)
{
  char *folder = claim_folder(agent->config, peer->id, suffix);

  if (folder == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  enum ag_code code = claim_list(agent, folder, true, listing, err);
  free(folder);
  return code;
}

static size_t count_files(const struct claim_listing *listing)
{
  size_t files = 0;

  for (size_t i = 0; i < listing->count; i++)
    files += listing->items[i].kind == REMOTE_FILE;
  return files;
}

/* Archive the delivered files of the stopped agent peer, then return its
 * claimed files to the inbox. Stops as soon as peer shows a heartbeat. */
static enum ag_code recover_peer(struct agent *agent, const struct peer *peer,
                                 int64_t age, struct ag_error *err)
{
  struct claim_listing delivered = {0};
  struct claim_listing claimed = {0};
  bool stopped = true;
  enum ag_code code =
      list_peer_folder(agent, peer, CLAIM_DELIVERED_SUFFIX, &delivered, err);

  if (code == AG_OK)
    code = list_peer_folder(agent, peer, "", &claimed, err);
  if (code != AG_OK || count_files(&delivered) + count_files(&claimed) == 0)
    goto out;
  log_warn("agent %s wrote its last heartbeat %" PRId64 " s ago, more than "
           "claim_timeout = %d s, so it has stopped; returning its %zu "
           "claimed files to the inbox and archiving its %zu delivered files",
           peer->id, age, agent->config->claim_timeout, count_files(&claimed),
           count_files(&delivered));

  for (size_t i = 0; i < delivered.count && code == AG_OK && stopped; i++) {
    if (delivered.items[i].kind != REMOTE_FILE)
      continue;
    code = peer_still_stopped(agent, peer, &stopped, err);
    if (code == AG_OK && stopped)
      code = archive_for_peer(agent, peer, &delivered.items[i], err);
  }
  for (size_t i = 0; i < claimed.count && code == AG_OK && stopped; i++) {
    if (claimed.items[i].kind != REMOTE_FILE)
      continue;
    code = peer_still_stopped(agent, peer, &stopped, err);
    if (code == AG_OK && stopped)
      code = return_to_inbox(agent, peer, &claimed.items[i], err);
  }

out:
  claim_listing_free(&delivered);
  claim_listing_free(&claimed);
  return code;
}

/* Remove this agent's heartbeat files other than the current one: those
 * that an earlier run left. */
static void remove_old_heartbeats(struct agent *agent,
                                  const struct claim_listing *listing)
{
  const char *own_id = manifest_agent_id(agent->manifest);
  const char *current = agent->claims->heartbeat;
  const char *current_name =
      current + rpath_base_offset(current, strlen(current));
  char id[CLAIM_ID_LEN + 1];

  for (size_t i = 0; i < listing->count; i++) {
    const struct claim_item *item = &listing->items[i];
    if (claim_classify(item->rel, item->rel_len, id) != CLAIM_ENTRY_HEARTBEAT ||
        strcmp(id, own_id) != 0 || strcmp(item->rel, current_name) == 0)
      continue;
    char *path = rpath_join(agent->config->claim_dir, item->rel, item->rel_len);
    if (path != NULL)
      remove_heartbeat(agent, path);
    free(path);
  }
}

/* Return the claims of every agent that stopped. The time now is the
 * mtime of this agent's newest heartbeat, so that every age is measured by
 * the server's clock, and the clocks of the agents' hosts do not matter. */
static enum ag_code recover_stopped_agents(struct agent *agent,
                                           struct ag_error *err)
{
  const char *own_id = manifest_agent_id(agent->manifest);
  struct claim_listing listing = {0};
  struct peers peers = {0};
  enum ag_code code = find_peers(agent, &listing, &peers, err);

  if (code != AG_OK)
    goto out;
  remove_old_heartbeats(agent, &listing);
  struct peer *self = find_peer(&peers, own_id);
  if (self->heartbeat == NULL || self->heartbeat_mtime <= 0) {
    log_warn("the server reports no mtime for this agent's heartbeat in "
             "'%s', so the claims of stopped agents cannot be returned",
             agent->config->claim_dir);
    goto out;
  }

  int64_t now = self->heartbeat_mtime;
  for (size_t i = 0; i < peers.count && code == AG_OK; i++) {
    const struct peer *peer = &peers.list[i];
    if (peer == self || !peer->has_folder ||
        !claim_is_stale(last_alive(peer), now, agent->config->claim_timeout))
      continue;
    code = recover_peer(agent, peer, now - last_alive(peer), err);
  }

out:
  peers_free(&peers);
  claim_listing_free(&listing);
  return code;
}

enum ag_code claim_begin_pass(struct agent *agent, struct ag_error *err)
{
  struct claim_state *state = NULL;

  if (agent->config->claim_dir == NULL)
    return AG_OK;
  state = claim_state_get(agent);
  if (state == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");

  /* The folder and the other agents are looked at as often as the
   * heartbeat is written, so that an idle poll costs few requests. */
  int64_t interval = claim_heartbeat_interval_ms(agent->config->claim_timeout);
  if (state->heartbeat != NULL &&
      plat_monotonic_ms() - state->heartbeat_ms < interval)
    return AG_OK;
  enum ag_code code = claim_check_folder(agent, err);
  if (code == AG_OK)
    code = claim_heartbeat(agent, true, err);
  if (code == AG_OK)
    code = recover_stopped_agents(agent, err);
  return code;
}

/* ---- sync --dry-run ---- */

/* Print the files in this agent's claim folder that a pass would take. */
static enum ag_code plan_own_claims(struct agent *agent, FILE *out,
                                    size_t *retries, struct ag_error *err)
{
  struct claim_listing listing = {0};
  char shown[4 * MANIFEST_KEY_MAX + 8];
  char *folder =
      claim_folder(agent->config, manifest_agent_id(agent->manifest), "");
  enum ag_code code = AG_OK;

  if (folder == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  code = claim_list(agent, folder, true, &listing, err);
  for (size_t i = 0; i < listing.count && code == AG_OK; i++) {
    const struct claim_item *item = &listing.items[i];
    struct manifest_record record = {0};
    bool found = false;

    if (item->kind != REMOTE_FILE || item->rel_len > MANIFEST_KEY_MAX)
      continue;
    code = manifest_get(agent->manifest, item->rel, item->rel_len, &record,
                        &found, err);
    if (code == AG_OK && (!found || record.state != MANIFEST_DELIVERED)) {
      fprintf(out,
              "retry  %s: in this agent's claim folder since an earlier run; "
              "the pass takes it\n",
              log_escape(shown, sizeof(shown), item->rel, item->rel_len));
      (*retries)++;
    }
    manifest_record_clear(&record);
  }
  claim_listing_free(&listing);
  free(folder);
  return code;
}

/* Print each other agent with the age of its last heartbeat. Without a
 * heartbeat of its own, the dry run measures ages by this host's clock. */
static enum ag_code plan_peers(struct agent *agent, const char *own_id,
                               FILE *out, struct ag_error *err)
{
  struct claim_listing listing = {0};
  struct peers peers = {0};
  enum ag_code code = find_peers(agent, &listing, &peers, err);
  int64_t now = plat_wall_time();

  for (size_t i = 0; i < peers.count && code == AG_OK; i++) {
    const struct peer *peer = &peers.list[i];
    if (own_id != NULL && strcmp(peer->id, own_id) == 0)
      continue;
    bool stale =
        claim_is_stale(last_alive(peer), now, agent->config->claim_timeout);
    fprintf(out,
            "peer   %s: last heartbeat %" PRId64 " s ago by this host's "
            "clock; %s\n",
            peer->id, now - last_alive(peer),
            stale ? "stopped, so a pass returns its claimed files to the "
                    "inbox and archives its delivered files"
                  : "running");
  }
  peers_free(&peers);
  claim_listing_free(&listing);
  return code;
}

enum ag_code claim_plan(struct agent *agent, FILE *out, size_t *retries,
                        struct ag_error *err)
{
  const char *own_id = NULL;

  if (agent->config->claim_dir == NULL)
    return AG_OK;
  enum ag_code code = claim_check_folder(agent, err);
  if (code != AG_OK)
    return code;
  if (agent->manifest != NULL)
    own_id = manifest_agent_id(agent->manifest);
  if (own_id == NULL) {
    fprintf(out,
            "claims: files are claimed into '%s/<agent id>' before download; "
            "the agent id is made on the first run\n",
            agent->config->claim_dir);
  } else {
    fprintf(out, "claims: files are claimed into '%s/%s' before download\n",
            agent->config->claim_dir, own_id);
    code = plan_own_claims(agent, out, retries, err);
  }
  if (code == AG_OK)
    code = plan_peers(agent, own_id, out, err);
  return code;
}
