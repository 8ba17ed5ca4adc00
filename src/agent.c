/* One pass over the inbox: resume unfinished work, list, wait for files
 * to settle, then ingest the stable ones oldest first. */
#include "agent_internal.h"
#include "claim_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "agent/hook.h"
#include "agent/log.h"
#include "agent/passthrough.h"
#include "agent/rpath.h"
#include "pipeline.h"

bool agent_error_is_fatal(enum ag_code code)
{
  switch (code) {
  case AG_ECONNECT:
  case AG_EHOSTKEY:
  case AG_EAUTH:
  case AG_ETIMEDOUT:
  case AG_ENOMEM:
  case AG_ELOCAL:
  case AG_ESTATE:
  case AG_ESTATELOST:
  case AG_ELOCKED:
  case AG_EUSAGE:
  case AG_ECONFIG:
    return true;
  case AG_OK:
  case AG_EREMOTE:
  case AG_ENOENT:
  case AG_EEXIST:
  case AG_ECHANGED:
  case AG_EPARSE:
  case AG_ECODE_COUNT:
    break;
  }
  return false;
}

static const char *const format_names[AGENT_FORMAT_COUNT] = {"xml", "csv",
                                                             "json", "other"};

enum agent_format agent_format_of(const char *name)
{
  for (size_t i = 0; i < AGENT_FORMAT_OTHER; i++) {
    if (strcmp(name, format_names[i]) == 0)
      return (enum agent_format)i;
  }
  return AGENT_FORMAT_OTHER;
}

const char *agent_format_name(enum agent_format format)
{
  if ((int)format < 0 || format >= AGENT_FORMAT_COUNT)
    return format_names[AGENT_FORMAT_OTHER];
  return format_names[format];
}

static char *join_local(const char *dir, const char *name)
{
  size_t size = strlen(dir) + 1 + strlen(name) + 1;
  char *path = malloc(size);

  if (path != NULL)
    snprintf(path, size, "%s/%s", dir, name);
  return path;
}

/* Finish the publications that a crashed run recorded, then remove the
 * downloads and outputs that it left half written. The state folder's lock
 * guarantees that no other agent is writing them. When the recovery fails,
 * the temporary outputs stay for the recovery at the start of the pass,
 * which reports the error. */
static void remove_stale_temps(struct agent *agent)
{
  struct ag_error recover_err = {0};

  if (recover_publications(agent, &recover_err) != AG_OK) {
    log_warn("cannot finish the publications of an interrupted run yet: %s",
             recover_err.message);
    return;
  }
  int downloads = plat_remove_stale_temps(agent->download_dir, "download");
  int outputs = plat_remove_stale_temps(agent->config->output_dir, ".incoming");

  if (downloads > 0 || outputs > 0)
    log_info("removed %d partial downloads and %d partial outputs left by "
             "an earlier run",
             downloads > 0 ? downloads : 0, outputs > 0 ? outputs : 0);
}

/* Open the manifest; with AGENT_REBUILD_MANIFEST, a lost one is set aside
 * and replaced by a new, empty one. */
static enum ag_code open_manifest(struct agent *agent, unsigned flags,
                                  struct ag_error *err)
{
  const char *state_dir = agent->config->state_dir;
  struct ag_error open_err = {0};
  enum ag_code code = manifest_open(state_dir, &agent->manifest, &open_err);

  if (code != AG_ESTATELOST || !(flags & AGENT_REBUILD_MANIFEST)) {
    if (code != AG_OK)
      ag_error_set(err, code, "%s", open_err.message);
    return code;
  }
  log_warn("%s", open_err.message);
  log_warn("--rebuild-manifest: setting the old manifest aside and starting "
           "a new one; files still in the inbox will be delivered again");
  code = manifest_set_aside(state_dir, err);
  if (code == AG_OK)
    code = manifest_open(state_dir, &agent->manifest, err);
  return code;
}

enum ag_code agent_open(const struct config *config, unsigned flags,
                        struct agent **out, struct ag_error *err)
{
  struct agent *agent = calloc(1, sizeof(*agent));
  char *lock_path = NULL;
  enum ag_code code = AG_OK;

  *out = NULL;
  if (agent == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  agent->config = config;
  agent->stable = stable_new();
  agent->skipped = stable_new();
  agent->download_dir = join_local(config->state_dir, "tmp");
  lock_path = join_local(config->state_dir, "lock");
  if (agent->stable == NULL || agent->skipped == NULL ||
      agent->download_dir == NULL || lock_path == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }

  code = plat_mkdirs(config->state_dir, err);
  if (code == AG_OK)
    code = plat_lock(lock_path, &agent->lock, err);
  if (code == AG_OK)
    code = plat_mkdirs(agent->download_dir, err);
  if (code == AG_OK)
    code = plat_mkdirs(config->output_dir, err);
  if (code == AG_OK)
    code = open_manifest(agent, flags, err);
  if (code == AG_OK)
    remove_stale_temps(agent);

out:
  free(lock_path);
  if (code != AG_OK) {
    agent_close(agent);
    return code;
  }
  *out = agent;
  return AG_OK;
}

void agent_close(struct agent *agent)
{
  if (agent == NULL)
    return;
  remote_close(agent->remote);
  manifest_close(agent->manifest);
  stable_free(agent->stable);
  claim_state_free(agent->claims);
  stable_free(agent->skipped);
  plat_unlock(agent->lock);
  free(agent->download_dir);
  free(agent->known_folder);
  free(agent);
}

/* Records left between two steps by an earlier pass or a crash: a file
 * that was delivered but not yet moved, or one that failed and was being
 * moved to the error folder. */
struct unfinished {
  char **keys;
  size_t *lengths;
  size_t count;
  size_t capacity;
  bool with_failed; /* also collect failures that were being moved */
};

static enum ag_code collect_unfinished(void *ctx, const void *key,
                                       size_t key_len,
                                       const struct manifest_record *record)
{
  struct unfinished *list = ctx;
  bool failing = list->with_failed &&
                 (record->state == MANIFEST_SEEN ||
                  record->state == MANIFEST_DOWNLOADED) &&
                 record->reason != NULL && record->archive_path != NULL;

  if (record->state != MANIFEST_DELIVERED && !failing)
    return AG_OK;
  if (list->count == list->capacity) {
    size_t capacity = list->capacity == 0 ? 16 : list->capacity * 2;
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
  list->keys[list->count] = strndup(key, key_len);
  if (list->keys[list->count] == NULL)
    return AG_ENOMEM;
  list->lengths[list->count++] = key_len;
  return AG_OK;
}

/* Finish the remote step of every delivered file before taking new ones,
 * so a crash or a refused move never leads to a second delivery. */
static enum ag_code resume_unfinished(struct agent *agent,
                                      struct agent_summary *summary,
                                      struct ag_error *err)
{
  struct unfinished list = {.with_failed = true};
  enum ag_code code =
      manifest_foreach(agent->manifest, collect_unfinished, &list, err);

  if (code == AG_ENOMEM)
    ag_error_set(err, code, "out of memory");
  for (size_t i = 0;
       i < list.count && code == AG_OK && !agent_stop_requested(agent); i++) {
    struct manifest_record record = {0};
    bool found = false;
    code = manifest_get(agent->manifest, list.keys[i], list.lengths[i], &record,
                        &found, err);
    if (code == AG_OK && found && record.state == MANIFEST_DELIVERED)
      code = dispose_resume(agent, list.keys[i], list.lengths[i], &record,
                            summary, err);
    else if (code == AG_OK && found && record.reason != NULL &&
             record.archive_path != NULL &&
             (record.state == MANIFEST_SEEN ||
              record.state == MANIFEST_DOWNLOADED))
      code = dispose_resume_failed(agent, list.keys[i], list.lengths[i],
                                   &record, summary, err);
    manifest_record_clear(&record);
  }

  for (size_t i = 0; i < list.count; i++)
    free(list.keys[i]);
  free(list.keys);
  free(list.lengths);
  return code;
}

struct listing {
  struct agent *agent;
  struct agent_summary *summary;
  struct candidate *files;
  size_t count;
  size_t capacity;
  int64_t now_ms;
  bool relisting;    /* the listing after the settle wait */
  FILE *plan;        /* sync --dry-run prints its decisions here, or NULL */
  size_t plan_skips; /* skip lines printed to plan */
  struct ag_error *err;
};

static enum ag_code add_candidate(struct listing *listing,
                                  const struct remote_entry *entry)
{
  if (listing->count == listing->capacity) {
    size_t capacity = listing->capacity == 0 ? 64 : listing->capacity * 2;
    struct candidate *files =
        realloc(listing->files, capacity * sizeof(*files));
    if (files == NULL)
      return ag_error_set(listing->err, AG_ENOMEM, "out of memory");
    listing->files = files;
    listing->capacity = capacity;
  }
  struct candidate *file = &listing->files[listing->count];
  file->rel = strndup(entry->rel, entry->rel_len);
  if (file->rel == NULL)
    return ag_error_set(listing->err, AG_ENOMEM, "out of memory");
  file->rel_len = entry->rel_len;
  file->size = entry->size;
  file->mtime = entry->mtime;
  file->claimed = false;
  listing->count++;
  return AG_OK;
}

/* Set *handled when the manifest shows that this listed file needs nothing
 * more. That is the case when it was delivered, because resume_unfinished()
 * then owns it. It is also the case for the same version that the agent
 * finished and left in place: kept after delivery, or failed on a server
 * where the agent does not move files. With on_success = move, a finished
 * file never stays in the inbox, so a file listed under its name is a new
 * upload even with the same size and mtime. */
static enum ag_code already_handled(struct listing *listing,
                                    const struct remote_entry *entry,
                                    bool *handled)
{
  struct manifest_record record = {0};
  bool found = false;
  enum ag_code code =
      manifest_get(listing->agent->manifest, entry->rel, entry->rel_len,
                   &record, &found, listing->err);

  *handled = false;
  if (code == AG_OK && found) {
    enum on_success mode = listing->agent->config->on_success;
    bool same = record.size == entry->size && record.mtime == entry->mtime;
    bool kept = record.state == MANIFEST_ARCHIVED && mode == ON_SUCCESS_KEEP;
    bool left = record.state == MANIFEST_FAILED && mode != ON_SUCCESS_MOVE;
    *handled = record.state == MANIFEST_DELIVERED || (same && (kept || left));
  }
  manifest_record_clear(&record);
  return code;
}

/* With sync --dry-run, print one decision about a listed entry. */
static void plan_line(struct listing *listing, const char *verb,
                      const struct remote_entry *entry, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

static void plan_line(struct listing *listing, const char *verb,
                      const struct remote_entry *entry, const char *format, ...)
{
  char shown[4 * MANIFEST_KEY_MAX + 8];
  va_list args;

  if (listing->plan == NULL)
    return;
  if (strcmp(verb, "skip") == 0)
    listing->plan_skips++;
  fprintf(listing->plan, "%-6s %s: ", verb,
          log_escape(shown, sizeof(shown), entry->rel, entry->rel_len));
  va_start(args, format);
  vfprintf(listing->plan, format, args);
  va_end(args);
  fputc('\n', listing->plan);
}

/* With sync --dry-run, say why the manifest lets a listed file be. A
 * delivered file is left out here, because its remote step is printed as a
 * retry. */
static void plan_handled(struct listing *listing,
                         const struct remote_entry *entry)
{
  struct manifest_record record = {0};
  struct ag_error get_err = {0};
  bool found = false;

  if (listing->plan == NULL ||
      manifest_get(listing->agent->manifest, entry->rel, entry->rel_len,
                   &record, &found, &get_err) != AG_OK ||
      !found)
    return;
  if (record.state == MANIFEST_ARCHIVED)
    plan_line(listing, "skip", entry,
              "delivered before and kept in place (on_success = keep); "
              "taken again once it changes");
  else if (record.state == MANIFEST_FAILED)
    plan_line(listing, "skip", entry,
              "failed before and left in place (%s); taken again once it "
              "changes, or after retry",
              record.reason != NULL ? record.reason : "no reason recorded");
  manifest_record_clear(&record);
}

/* Return whether a skipped entry is new to this process: not listed and
 * skipped by an earlier listing since it last left the inbox. A `run`
 * logs each skipped entry once, and each `sync` once. */
static bool first_skip(struct listing *listing,
                       const struct remote_entry *entry)
{
  struct stable *skipped = listing->agent->skipped;

  if (skipped == NULL)
    return !listing->relisting;
  bool known = stable_contains(skipped, entry->rel, entry->rel_len);
  stable_observe(skipped, entry->rel, entry->rel_len, 0, 0, 0, 0);
  return !known;
}

static enum ag_code on_listed(void *ctx, const struct remote_entry *entry)
{
  struct listing *listing = ctx;
  const struct config *config = listing->agent->config;
  const char *base = entry->rel + rpath_base_offset(entry->rel, entry->rel_len);
  char shown[512];

  if (entry->kind == REMOTE_DIR)
    return AG_OK;
  if (!config_name_selected(config, base) &&
      !passthrough_selected(config, base)) {
    plan_line(listing, "skip", entry, "not selected by include and exclude");
    return AG_OK;
  }
  /* Entries that are skipped are logged once while they stay listed (see
   * first_skip()), not at every pass. */
  if (entry->kind != REMOTE_FILE) {
    listing->summary->skipped++;
    plan_line(listing, "skip", entry, "not a regular file");
    if (first_skip(listing, entry))
      log_info("skipped '%s': not a regular file (symbolic links are never "
               "followed)",
               log_escape(shown, sizeof(shown), entry->rel, entry->rel_len));
    return AG_OK;
  }
  if (entry->rel_len > MANIFEST_KEY_MAX) {
    listing->summary->skipped++;
    plan_line(listing, "skip", entry,
              "its path is longer than the manifest's limit of %d bytes",
              MANIFEST_KEY_MAX);
    if (first_skip(listing, entry))
      log_error("skipped '%s': its path below the inbox is %zu bytes, more "
                "than the manifest's limit of %d; rename or move it",
                log_escape(shown, sizeof(shown), entry->rel, entry->rel_len),
                entry->rel_len, MANIFEST_KEY_MAX);
    return AG_OK;
  }

  /* sync --dry-run before the first run has no manifest, so nothing is
   * handled yet. */
  bool handled = false;
  enum ag_code code = AG_OK;
  if (listing->agent->manifest != NULL)
    code = already_handled(listing, entry, &handled);
  if (code == AG_OK && handled)
    plan_handled(listing, entry);
  if (code != AG_OK || handled)
    return code;

  int stable = stable_observe(
      listing->agent->stable, entry->rel, entry->rel_len, entry->size,
      entry->mtime, listing->now_ms, (int64_t)config->stable_seconds * 1000);
  if (stable < 0)
    return ag_error_set(listing->err, AG_ENOMEM, "out of memory");
  if (stable == 0) {
    listing->summary->settling++;
    plan_line(listing, "skip", entry,
              "still changing; taken once its size and mtime hold still for "
              "%d s",
              config->stable_seconds);
    if (listing->relisting)
      log_info("'%s' is still changing; it is taken once its size and mtime "
               "hold still for %d s",
               log_escape(shown, sizeof(shown), entry->rel, entry->rel_len),
               config->stable_seconds);
    return AG_OK;
  }
  return add_candidate(listing, entry);
}

static void free_listing(struct listing *listing)
{
  for (size_t i = 0; i < listing->count; i++)
    free(listing->files[i].rel);
  free(listing->files);
  listing->files = NULL;
  listing->count = 0;
  listing->capacity = 0;
}

static enum ag_code list_inbox(struct agent *agent, struct listing *listing)
{
  const struct config *config = agent->config;
  const char *skip[] = {config->archive, config->error};

  free_listing(listing);
  listing->summary->settling = 0;
  listing->summary->skipped = 0;
  listing->now_ms = plat_monotonic_ms();
  stable_next_generation(agent->stable);
  if (agent->skipped != NULL)
    stable_next_generation(agent->skipped);
  return remote_list(agent->remote, config->inbox, config->recursive, skip, 2,
                     on_listed, listing, listing->err);
}

/* Oldest first, then by name, so the order is the same on every run. */
static int compare_candidates(const void *a, const void *b)
{
  const struct candidate *left = a;
  const struct candidate *right = b;

  if (left->mtime != right->mtime)
    return left->mtime < right->mtime ? -1 : 1;
  return strcmp(left->rel, right->rel);
}

static enum ag_code ensure_connected(struct agent *agent, struct ag_error *err)
{
  if (agent->remote != NULL)
    return AG_OK;
  return remote_connect(agent->config, &agent->remote, err);
}

/* Check that the archive and error folders exist before moving anything,
 * so that a typo in the config fails the pass instead of creating a new
 * folder tree on the server. Subfolders below them are created as needed. */
static enum ag_code check_move_targets(struct agent *agent,
                                       struct ag_error *err)
{
  const struct config *config = agent->config;
  const char *folders[] = {config->archive, config->error};
  const char *keys[] = {"archive", "error"};

  if (config->on_success != ON_SUCCESS_MOVE)
    return AG_OK;
  for (size_t i = 0; i < 2; i++) {
    struct remote_entry entry;
    struct ag_error stat_err = {0};
    enum ag_code code =
        remote_stat(agent->remote, folders[i], &entry, &stat_err);
    if (code == AG_OK && entry.kind == REMOTE_DIR)
      continue;
    if (code == AG_OK || code == AG_ENOENT)
      return ag_error_set(err, AG_ENOENT,
                          "the %s folder '%s' does not exist on the server; "
                          "create it or correct [remote] %s",
                          keys[i], folders[i], keys[i]);
    return ag_error_set(err, code, "%s", stat_err.message);
  }
  return AG_OK;
}

static void log_pass(const struct agent_summary *summary)
{
  if (summary->claimed_elsewhere > 0)
    log_info("%zu files were claimed by other agents first",
             summary->claimed_elsewhere);
  if (summary->delivered + summary->duplicates + summary->failed +
          summary->pending + summary->completed ==
      0)
    return;
  log_info("pass done: %zu delivered, %zu duplicates, %zu archived, "
           "%zu failed, %zu pending, %zu settling, %zu deferred",
           summary->delivered, summary->duplicates, summary->completed,
           summary->failed, summary->pending, summary->settling,
           summary->deferred);
}

enum ag_code agent_sync(struct agent *agent, struct agent_summary *summary,
                        struct ag_error *err)
{
  struct listing listing = {.agent = agent, .summary = summary, .err = err};
  const struct config *config = agent->config;
  int64_t started_ms = plat_monotonic_ms();
  size_t attempted = 0;
  enum ag_code code;

  memset(summary, 0, sizeof(*summary));
  code = recover_publications(agent, err);
  if (code == AG_OK)
    code = agent_process_requests(agent, err);
  if (code == AG_OK)
    code = ensure_connected(agent, err);
  if (code == AG_OK)
    code = check_move_targets(agent, err);
  if (code == AG_OK)
    code = claim_begin_pass(agent, err);
  if (code == AG_OK)
    code = resume_unfinished(agent, summary, err);
  if (code == AG_OK)
    code = claim_resume(agent, summary, err);
  if (code == AG_OK)
    code = list_inbox(agent, &listing);

  /* A file seen for the first time is never stable yet; wait once, then
   * list again and take what held still. */
  if (code == AG_OK && summary->settling > 0 && config->stable_seconds > 0) {
    log_info("waiting %d s for %zu files to settle", config->stable_seconds,
             summary->settling);
    agent_pause(agent, (int64_t)config->stable_seconds * 1000);
    listing.relisting = true;
    if (!agent_stop_requested(agent))
      code = list_inbox(agent, &listing);
  }
  if (code != AG_OK)
    goto out;

  qsort(listing.files, listing.count, sizeof(*listing.files),
        compare_candidates);
  size_t take = listing.count;
  if (config->max_files_per_poll > 0 &&
      take > (size_t)config->max_files_per_poll)
    take = (size_t)config->max_files_per_poll;
  summary->deferred = listing.count - take;

  /* With parallel = 1, or a single file, the files go one by one.
   * NOTE: so do they with claim_dir, because the heartbeat state of the
   * claims (claim_internal.h) belongs to one thread. */
  bool one_by_one =
      config->parallel <= 1 || take <= 1 || config->claim_dir != NULL;
  if (!one_by_one)
    code = pipeline_run(agent, listing.files, take, summary, &attempted,
                        started_ms, err);
  for (size_t i = 0; i < take && code == AG_OK && one_by_one; i++) {
    /* A stop request ends the pass between two files; the rest wait for
     * the next run. */
    if (agent_stop_requested(agent)) {
      summary->deferred += take - i;
      break;
    }
    agent_show_progress(agent, i, take, summary->bytes, started_ms);
    code = ingest_file(agent, &listing.files[i], summary, err);
    attempted++;
  }
  agent_show_progress(agent, attempted, take, summary->bytes, started_ms);
  if (code == AG_OK && !agent_stop_requested(agent))
    code = agent_apply_retention(agent, plat_wall_time(), err);

out:
  summary->backlog = summary->settling + listing.count - attempted;
  free_listing(&listing);
  if (code == AG_ECONNECT || code == AG_ETIMEDOUT) {
    remote_close(agent->remote);
    agent->remote = NULL;
  }
  log_pass(summary);
  summary->duration_ms = plat_monotonic_ms() - started_ms;
  return agent_record_pass(agent, summary, code, err);
}

/* ---- sync --dry-run ---- */

/* Make an agent for agent_plan(): the manifest if there is one, opened
 * without the lock, and no local folder created. */
static enum ag_code open_for_plan(const struct config *config,
                                  struct agent **out, struct ag_error *err)
{
  struct agent *agent = calloc(1, sizeof(*agent));
  char *db_path = join_local(config->state_dir, "manifest.mdb");
  char *marker_path = join_local(config->state_dir, "agent-id");
  enum ag_code code = AG_OK;

  *out = NULL;
  if (agent != NULL) {
    agent->config = config;
    agent->stable = stable_new();
  }
  if (agent == NULL || agent->stable == NULL || db_path == NULL ||
      marker_path == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }

  /* With neither file this is a first run, with nothing to read. A marker
   * alone is a lost manifest, which manifest_open_read_only() reports. */
  if (plat_exists(db_path) == 1 || plat_exists(marker_path) == 1)
    code = manifest_open_read_only(config->state_dir, &agent->manifest, err);

out:
  free(db_path);
  free(marker_path);
  if (code != AG_OK) {
    agent_close(agent);
    return code;
  }
  *out = agent;
  return AG_OK;
}

/* Print the hook run that a pass would do first for the delivered file
 * key, or return false when its hook is not pending. */
static bool plan_hook(struct agent *agent, FILE *out, const char *key,
                      size_t key_len, const char *shown, const char *step)
{
  struct manifest_record record = {0};
  struct ag_error get_err = {0};
  bool found = false;
  bool pending = false;

  if (manifest_get(agent->manifest, key, key_len, &record, &found, &get_err) ==
          AG_OK &&
      found && hook_is_pending(agent->config, &record)) {
    pending = true;
    fprintf(out,
            "retry  %s: delivered, but its hook has not succeeded yet (%u "
            "failed runs); the pass runs it once its retry time has come, "
            "and then the file is %s\n",
            shown, record.hook_attempts, step);
  }
  manifest_record_clear(&record);
  return pending;
}

/* Print the delivered files whose remote step a pass would do again. */
static enum ag_code plan_unfinished(struct agent *agent, FILE *out,
                                    size_t *retries, struct ag_error *err)
{
  static const char *const steps[] = {
      [ON_SUCCESS_MOVE] = "moved to the archive",
      [ON_SUCCESS_DELETE] = "deleted",
      [ON_SUCCESS_KEEP] = "recorded as kept",
  };
  struct unfinished list = {0};
  char shown[4 * MANIFEST_KEY_MAX + 8];
  enum ag_code code = AG_OK;

  *retries = 0;
  if (agent->manifest != NULL)
    code = manifest_foreach(agent->manifest, collect_unfinished, &list, err);
  if (code == AG_ENOMEM)
    ag_error_set(err, code, "out of memory");
  for (size_t i = 0; i < list.count && code == AG_OK; i++) {
    const char *step = steps[agent->config->on_success];

    log_escape(shown, sizeof(shown), list.keys[i], list.lengths[i]);
    if (!plan_hook(agent, out, list.keys[i], list.lengths[i], shown, step))
      fprintf(out, "retry  %s: delivered, but not yet %s; the pass does that\n",
              shown, step);
  }
  *retries = list.count;

  for (size_t i = 0; i < list.count; i++)
    free(list.keys[i]);
  free(list.keys);
  free(list.lengths);
  return code;
}

/* Print the files that the last listing would take, and those it leaves
 * over max_files_per_poll. */
static void plan_takes(struct listing *listing, size_t take)
{
  char shown[4 * MANIFEST_KEY_MAX + 8];

  for (size_t i = 0; i < listing->count; i++) {
    const struct candidate *file = &listing->files[i];

    log_escape(shown, sizeof(shown), file->rel, file->rel_len);
    if (i < take) {
      fprintf(listing->plan, "take   %s: %llu bytes\n", shown,
              (unsigned long long)file->size);
    } else {
      fprintf(listing->plan,
              "skip   %s: over max_files_per_poll = %d; a later pass takes "
              "it\n",
              shown, listing->agent->config->max_files_per_poll);
      listing->plan_skips++;
    }
  }
}

enum ag_code agent_plan(const struct config *config, FILE *out,
                        struct ag_error *err)
{
  struct agent *agent = NULL;
  struct agent_summary summary = {0};
  struct listing listing = {.summary = &summary, .err = err};
  size_t retries = 0;
  enum ag_code code = open_for_plan(config, &agent, err);

  if (code != AG_OK)
    return code;
  listing.agent = agent;
  fprintf(out, "dry run: nothing is downloaded, recorded or moved\n");
  code = ensure_connected(agent, err);
  if (code == AG_OK)
    code = check_move_targets(agent, err);
  if (code == AG_OK)
    code = list_inbox(agent, &listing);
  if (code == AG_OK && summary.settling > 0 && config->stable_seconds > 0) {
    log_info("waiting %d s for %zu files to settle", config->stable_seconds,
             summary.settling);
    plat_sleep_ms((int64_t)config->stable_seconds * 1000);
  }

  /* The decisions come from the last listing, as in a pass. */
  listing.plan = out;
  listing.relisting = true;
  if (code == AG_OK)
    code = list_inbox(agent, &listing);
  if (code == AG_OK)
    code = plan_unfinished(agent, out, &retries, err);
  if (code == AG_OK)
    code = claim_plan(agent, out, &retries, err);
  if (code == AG_OK) {
    qsort(listing.files, listing.count, sizeof(*listing.files),
          compare_candidates);
    size_t take = listing.count;
    if (config->max_files_per_poll > 0 &&
        take > (size_t)config->max_files_per_poll)
      take = (size_t)config->max_files_per_poll;
    plan_takes(&listing, take);
    size_t requests = agent_print_requests(config, out);
    fprintf(out,
            "dry run: %zu to take, %zu to skip, %zu to retry, %zu queued "
            "requests\n",
            take, listing.plan_skips, retries, requests);
  }

  free_listing(&listing);
  agent_close(agent);
  return code;
}
