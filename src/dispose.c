/* The remote step after a file was handled: move it to the archive (or
 * delete or keep it, as configured), or move it to the error folder with a
 * reason file. A remote file is never overwritten. */
#include "agent_internal.h"
#include "claim_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/fault.h"
#include "agent/hook.h"
#include "agent/log.h"
#include "agent/output.h"
#include "agent/rpath.h"
#include "pipeline.h"

/* How many distinct names to try before giving up on a move. */
#define MOVE_NAME_ATTEMPTS 100

char *dispose_archive_target(const struct config *config, const char *rel,
                             size_t rel_len, int64_t now)
{
  char folder[1024];
  time_t seconds = (time_t)now;
  struct tm utc;

  snprintf(folder, sizeof(folder), "%s", config->archive);
  if (config->archive_layout != NULL && gmtime_r(&seconds, &utc) != NULL) {
    size_t used = strlen(folder);
    folder[used++] = '/';
    /* config.c allows only a few date conversions in archive_layout. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    size_t added = strftime(folder + used, sizeof(folder) - used,
                            config->archive_layout, &utc);
#pragma GCC diagnostic pop
    if (added == 0)
      folder[used - 1] = '\0';
  }
  return rpath_join(folder, rel, rel_len);
}

/* Return target with ".<tag>" or ".<tag>-<attempt>" put before the base
 * name's extension: "a/x.xml" becomes "a/x.3f2a9c01.xml". */
static char *alternative_name(const char *target, const char *tag, int attempt)
{
  size_t len = strlen(target);
  size_t base = rpath_base_offset(target, len);
  const char *dot = strrchr(target + base, '.');
  size_t stem =
      dot == NULL || dot == target + base ? len : (size_t)(dot - target);
  char insert[48];
  char *name;

  if (attempt == 1)
    snprintf(insert, sizeof(insert), ".%s", tag);
  else
    snprintf(insert, sizeof(insert), ".%s-%d", tag, attempt);
  name = malloc(len + strlen(insert) + 1);
  if (name == NULL)
    return NULL;
  memcpy(name, target, stem);
  strcpy(name + stem, insert);
  strcat(name, target + stem);
  return name;
}

/* Escape a remote path for a log line; it contains remote names. */
static const char *escape_path(char *out, size_t size, const char *path)
{
  return log_escape(out, size, path, strlen(path));
}

static char *parent_of(const char *path)
{
  size_t base = rpath_base_offset(path, strlen(path));

  return strndup(path, base > 1 ? base - 1 : 1);
}

/* The record of a file that is being moved, and where its manifest record
 * is stored. Before each rename, the target goes into the record and the
 * record into the manifest, unless the manifest has it already, so that
 * after a crash the next pass can find the file. */
struct move_plan {
  struct agent *agent;
  const char *rel;
  size_t rel_len;
  struct manifest_record *record; /* NULL for a move without a record */
  bool stored;                    /* the manifest has record->archive_path */
  char *final; /* without a record: the name used, malloc'd */
};

/* Store target in the record, and the record in the manifest, durably: in
 * a parallel pass this waits for the recorder's commit, because the
 * rename that follows must not happen before its target is on disk. */
static enum ag_code store_target(struct move_plan *plan, const char *target,
                                 struct ag_error *err)
{
  struct manifest_record *record = plan->record;

  if (plan->stored && record->archive_path != NULL &&
      strcmp(record->archive_path, target) == 0)
    return AG_OK;
  char *copy = strdup(target);
  if (copy == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  free(record->archive_path);
  record->archive_path = copy;
  record->updated = plat_wall_time();
  enum ag_code code =
      agent_put_record(plan->agent, plan->rel, plan->rel_len, record, err);
  if (code == AG_OK)
    code = agent_wait_records(plan->agent, err);
  plan->stored = code == AG_OK;
  return code;
}

/* Create folder on the server unless this agent created or found it
 * before, which saves a request for each move into the same folder. */
static enum ag_code ensure_folder(struct agent *agent, const char *folder,
                                  bool *known, struct ag_error *err)
{
  *known =
      agent->known_folder != NULL && strcmp(agent->known_folder, folder) == 0;
  if (*known)
    return AG_OK;

  enum ag_code code = remote_mkdirs(agent->remote, folder, err);
  if (code == AG_OK) {
    char *copy = strdup(folder);
    if (copy == NULL)
      return ag_error_set(err, AG_ENOMEM, "out of memory");
    free(agent->known_folder);
    agent->known_folder = copy;
  }
  return code;
}

/* Rename from onto target, storing target in the manifest first when the
 * plan has a record. Takes target (malloc'd): it becomes plan->final for
 * a move without a record, and is freed otherwise. Errors of the rename
 * go to rename_err and are returned; errors of the manifest go to err and
 * set *stored_failed. */
static enum ag_code rename_to(struct move_plan *plan, const char *from,
                              char *target, struct ag_error *rename_err,
                              bool *stored_failed, struct ag_error *err)
{
  const char *to = target;

  *stored_failed = false;
  if (plan->record != NULL) {
    enum ag_code code = store_target(plan, target, err);
    free(target);
    target = NULL;
    if (code != AG_OK) {
      *stored_failed = true;
      return code;
    }
    to = plan->record->archive_path;
  }
  /* After dispose_move_ahead(), the server may have moved the file before
   * this point already, which recovery handles as a crash after it. */
  FAULT_POINT("before_remote_rename");
  enum ag_code code = remote_rename(plan->agent->remote, from, to, rename_err);
  FAULT_POINT("after_remote_rename");
  if (code == AG_OK)
    plan->final = target;
  else
    free(target);
  return code;
}

/* Rename from into planned, or into the first free alternative name,
 * storing each target in the manifest before its rename (see struct
 * move_plan). On success plan->record->archive_path, or plan->final for a
 * move without a record, is the name used. */
static enum ag_code move_without_overwrite(struct move_plan *plan,
                                           const char *from,
                                           const char *planned, const char *tag,
                                           struct ag_error *err)
{
  struct agent *agent = plan->agent;
  char *folder = parent_of(planned);
  bool known = false;
  bool moved = false;
  enum ag_code code = AG_OK;

  if (folder == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  code = ensure_folder(agent, folder, &known, err);

  for (int attempt = 0; code == AG_OK && !moved && attempt < MOVE_NAME_ATTEMPTS;
       attempt++) {
    char *target = attempt == 0 ? strdup(planned)
                                : alternative_name(planned, tag, attempt);
    if (target == NULL) {
      code = ag_error_set(err, AG_ENOMEM, "out of memory");
      break;
    }

    struct ag_error rename_err = {0};
    bool stored_failed = false;
    code = rename_to(plan, from, target, &rename_err, &stored_failed, err);
    moved = code == AG_OK;
    if (moved || stored_failed)
      break;

    /* A missing source and a missing folder give the same status. The
     * folder may have been removed since it was found, so create it and
     * try the same name once more. */
    if (code == AG_ENOENT && known) {
      free(agent->known_folder);
      agent->known_folder = NULL;
      code = ensure_folder(agent, folder, &known, err);
      attempt--;
      continue;
    }
    if (code != AG_EEXIST) {
      code = ag_error_set(err, code, "%s", rename_err.message);
      break;
    }

    /* A server may report the taken target before the missing source.
     * After a crash that happened after the move, the recorded target is
     * the file itself, so it must stay the recorded one. */
    struct remote_entry entry;
    struct ag_error stat_err = {0};
    code = remote_stat(agent->remote, from, &entry, &stat_err);
    if (code != AG_OK)
      code = ag_error_set(err, code, "%s", stat_err.message);
  }
  free(folder);
  if (code != AG_OK || moved)
    return code;
  return ag_error_set(err, AG_EEXIST,
                      "'%s' and %d alternative names are all taken", planned,
                      MOVE_NAME_ATTEMPTS - 1);
}

enum ag_code dispose_move(struct agent *agent, const char *from,
                          const char *planned, const char *tag, char **final,
                          struct ag_error *err)
{
  struct move_plan plan = {.agent = agent};
  enum ag_code code = move_without_overwrite(&plan, from, planned, tag, err);

  *final = plan.final;
  return code;
}

static enum ag_code record_done(struct agent *agent, const char *rel,
                                size_t rel_len, struct manifest_record *record,
                                enum manifest_state state, struct ag_error *err)
{
  /* The count of failed remote steps stays, but their last error is over
   * once the file is done. */
  free(record->archive_error);
  record->archive_error = NULL;
  record->state = state;
  record->updated = plat_wall_time();
  return agent_put_record(agent, rel, rel_len, record, err);
}

/* After a crash between the move and its record, the source is gone:
 * if the planned archive file is there, the move happened. */
static enum ag_code settle_vanished_source(struct agent *agent,
                                           const char *shown,
                                           struct manifest_record *record,
                                           struct ag_error *err)
{
  struct remote_entry entry;
  struct ag_error stat_err = {0};
  enum ag_code code = AG_OK;

  if (record->archive_path != NULL)
    code = remote_stat(agent->remote, record->archive_path, &entry, &stat_err);
  if (code != AG_OK && agent_error_is_fatal(code))
    return ag_error_set(err, code, "%s", stat_err.message);
  if (record->archive_path == NULL || code != AG_OK)
    log_warn("'%s' left the inbox after delivery, before the agent moved "
             "it; recording it as done",
             shown);
  return AG_OK;
}

/* Carry out on_success for a delivered file. Any error is returned in
 * err; the caller decides whether it ends the pass. */
static enum ag_code apply_on_success(struct agent *agent, const char *rel,
                                     size_t rel_len, const char *source,
                                     const char *shown,
                                     struct manifest_record *record,
                                     bool target_stored, struct ag_error *err)
{
  struct move_plan plan = {.agent = agent,
                           .rel = rel,
                           .rel_len = rel_len,
                           .record = record,
                           .stored = target_stored};
  enum ag_code code = AG_OK;
  const char *tag = record->sha256[0] != '\0' ? record->sha256 : "copy";
  char short_tag[9];
  char *planned = NULL;

  switch (agent->config->on_success) {
  case ON_SUCCESS_KEEP:
    free(record->archive_path);
    record->archive_path = NULL;
    return AG_OK;
  case ON_SUCCESS_DELETE:
    code = remote_unlink(agent->remote, source, err);
    break;
  case ON_SUCCESS_MOVE:
    snprintf(short_tag, sizeof(short_tag), "%.8s", tag);
    planned = strdup(record->archive_path);
    if (planned == NULL)
      return ag_error_set(err, AG_ENOMEM, "out of memory");
    code = move_without_overwrite(&plan, source, planned, short_tag, err);
    free(planned);
    break;
  }

  if (code == AG_ENOENT) {
    ag_error_clear(err);
    return settle_vanished_source(agent, shown, record, err);
  }
  return code;
}

/* Record a failed remote step of a delivered file and log it: as a warning
 * for the first failures, as an error from archive_alert_after failures
 * on, at every pass. The record stays DELIVERED, so the next pass tries
 * again and never delivers the file a second time. */
static enum ag_code record_step_failure(struct agent *agent, const char *rel,
                                        size_t rel_len, const char *shown,
                                        struct manifest_record *record,
                                        const struct ag_error *step_err,
                                        struct agent_summary *summary,
                                        struct ag_error *err)
{
  const struct config *config = agent->config;
  const char *verb =
      config->on_success == ON_SUCCESS_MOVE ? "archived" : "deleted";

  free(record->archive_error);
  record->archive_error = strdup(step_err->message);
  if (record->archive_error == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  record->archive_attempts++;
  record->updated = plat_wall_time();
  enum ag_code code = agent_put_record(agent, rel, rel_len, record, err);
  if (code != AG_OK)
    return code;

  summary->pending++;
  summary->pending_archive++;
  if (record->archive_attempts < (uint32_t)config->archive_alert_after)
    log_warn("'%s' was delivered but could not be %s (failed attempt %u): "
             "%s. The agent tries again at every pass and does not deliver "
             "it again",
             shown, verb, record->archive_attempts, step_err->message);
  else
    log_error("'%s' was delivered but could not be %s, and %u attempts have "
              "failed: %s. The agent tries again at every pass and does not "
              "deliver it again",
              shown, verb, record->archive_attempts, step_err->message);
  return AG_OK;
}

void dispose_move_ahead(struct agent *agent, const char *rel, size_t rel_len,
                        const struct manifest_record *record)
{
  const struct config *config = agent->config;

  if (config->on_success != ON_SUCCESS_MOVE || record->archive_path == NULL ||
      record->claim_path != NULL || hook_is_pending(config, record) ||
      agent->known_folder == NULL)
    return;
  char *folder = parent_of(record->archive_path);
  bool known = folder != NULL && strcmp(folder, agent->known_folder) == 0;
  free(folder);
  if (!known)
    return;

  char *source = claim_source_path(config, rel, rel_len, record);
  if (source != NULL)
    remote_rename_ahead(agent->remote, source, record->archive_path);
  free(source);
}

enum ag_code dispose_delivered(struct agent *agent, const char *rel,
                               size_t rel_len, struct manifest_record *record,
                               struct agent_summary *summary,
                               struct ag_error *err)
{
  struct ag_error step_err = {0};
  char shown[512];
  char target[1024];
  char *source = NULL;
  bool hook_finished = false;
  enum ag_code code = AG_OK;

  /* A hook may run long or fail for hours, so a claimed file waits for it
   * in the delivered folder, which other agents never return to the
   * inbox. */
  if (hook_is_pending(agent->config, record))
    code = claim_stage_delivered(agent, rel, rel_len, record, err);

  /* The remote file stays where it is until the hook has succeeded. */
  if (code == AG_OK)
    code = hook_run_pending(agent, rel, rel_len, record, summary,
                            &hook_finished, err);
  if (code != AG_OK || !hook_finished)
    return code;
  source = claim_source_path(agent->config, rel, rel_len, record);
  if (source == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  log_escape(shown, sizeof(shown), rel, rel_len);
  /* The DELIVERED record in the manifest contains the planned archive
   * path, unless it predates that field. */
  bool target_stored = record->archive_path != NULL;
  if (record->archive_path == NULL &&
      agent->config->on_success == ON_SUCCESS_MOVE) {
    record->archive_path =
        dispose_archive_target(agent->config, rel, rel_len, plat_wall_time());
    if (record->archive_path == NULL) {
      code = ag_error_set(err, AG_ENOMEM, "out of memory");
      goto out;
    }
  }

  code = apply_on_success(agent, rel, rel_len, source, shown, record,
                          target_stored, &step_err);
  if (code != AG_OK) {
    if (agent_error_is_fatal(code)) {
      ag_error_set(err, code, "%s", step_err.message);
      goto out;
    }
    code = record_step_failure(agent, rel, rel_len, shown, record, &step_err,
                               summary, err);
    if (code == AG_OK)
      code = claim_stage_delivered(agent, rel, rel_len, record, err);
    goto out;
  }

  code = record_done(agent, rel, rel_len, record, MANIFEST_ARCHIVED, err);
  if (code != AG_OK)
    goto out;
  summary->completed++;
  char retried[64] = "";
  if (record->archive_attempts > 0)
    snprintf(retried, sizeof(retried), " after %u failed attempts",
             record->archive_attempts);
  if (record->archive_path != NULL)
    log_info("archived '%s' as '%s'%s", shown,
             escape_path(target, sizeof(target), record->archive_path),
             retried);
  else
    log_info("%s '%s' on the server%s",
             agent->config->on_success == ON_SUCCESS_DELETE ? "deleted"
                                                            : "kept",
             shown, retried);

out:
  free(source);
  return code;
}

enum ag_code dispose_resume(struct agent *agent, const char *rel,
                            size_t rel_len, struct manifest_record *record,
                            struct agent_summary *summary, struct ag_error *err)
{
  struct remote_entry entry;
  struct ag_error stat_err = {0};
  char shown[512];
  char *source = claim_source_path(agent->config, rel, rel_len, record);

  if (source == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  enum ag_code code = remote_stat(agent->remote, source, &entry, &stat_err);
  free(source);
  if (code != AG_OK && code != AG_ENOENT)
    return agent_error_is_fatal(code)
               ? ag_error_set(err, code, "%s", stat_err.message)
               : dispose_delivered(agent, rel, rel_len, record, summary, err);

  bool replaced = code == AG_OK &&
                  (entry.size != record->size || entry.mtime != record->mtime);
  if (!replaced)
    return dispose_delivered(agent, rel, rel_len, record, summary, err);

  /* The delivered output still gets its hook, and the new version waits
   * in the inbox until then. */
  bool hook_finished = false;
  code = hook_run_pending(agent, rel, rel_len, record, summary, &hook_finished,
                          err);
  if (code != AG_OK || !hook_finished)
    return code;

  /* Moving now would archive content that was never delivered. */
  log_warn("'%s' was replaced on the server after its delivery and before "
           "it was archived; the delivered version is recorded as done and "
           "the new version is taken as a new file",
           log_escape(shown, sizeof(shown), rel, rel_len));
  free(record->archive_path);
  record->archive_path = NULL;
  return record_done(agent, rel, rel_len, record, MANIFEST_ARCHIVED, err);
}

/* Write "<failed file>.reason.txt" beside the moved file. A missing reason
 * file loses no data (the manifest and the log hold the reason too), so a
 * failure here is only logged. */
static void write_reason_file(struct agent *agent, const char *failed_path,
                              const char *shown, const char *reason)
{
  char text[AG_ERROR_MESSAGE_MAX + 256];
  char stamp[32];
  size_t size = strlen(failed_path) + sizeof(".reason.txt");
  char *path = malloc(size);
  struct ag_error write_err = {0};

  if (path == NULL)
    return;
  snprintf(path, size, "%s.reason.txt", failed_path);
  output_format_time(plat_wall_time(), stamp, sizeof(stamp));
  int len =
      snprintf(text, sizeof(text), "file: %s\nfailed at: %s\nreason: %s\n",
               shown, stamp, reason);
  if (len >= (int)sizeof(text))
    len = (int)sizeof(text) - 1;
  /* AG_EEXIST: an interrupted run wrote it before the crash. */
  enum ag_code code =
      remote_write_new(agent->remote, path, text, (size_t)len, &write_err);
  if (code != AG_OK && code != AG_EEXIST)
    log_warn("cannot write reason file '%s': %s", path, write_err.message);
  free(path);
}

enum ag_code dispose_failed(struct agent *agent, const struct candidate *file,
                            struct manifest_record *record, const char *reason,
                            struct agent_summary *summary, struct ag_error *err)
{
  const struct config *config = agent->config;
  struct ag_error move_err = {0};
  char shown[512];
  char *source = NULL;
  char *planned = NULL;
  enum ag_code code = AG_OK;

  log_escape(shown, sizeof(shown), file->rel, file->rel_len);
  free(record->reason);
  record->reason = strdup(reason);
  if (record->reason == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");

  /* Servers that do not allow moving (on_success = delete or keep) keep
   * failed files in place; the manifest remembers them so they are not
   * taken again until they change. */
  if (config->on_success == ON_SUCCESS_MOVE) {
    source = claim_source_path(config, file->rel, file->rel_len, record);
    planned = rpath_join(config->error, file->rel, file->rel_len);
    if (source == NULL || planned == NULL) {
      code = ag_error_set(err, AG_ENOMEM, "out of memory");
      goto out;
    }
    /* The reason and the target go into the manifest before the move, so
     * that dispose_resume_failed() can finish the job after a crash. */
    struct move_plan plan = {.agent = agent,
                             .rel = file->rel,
                             .rel_len = file->rel_len,
                             .record = record};
    code = move_without_overwrite(&plan, source, planned, "failed", &move_err);
    if (code != AG_OK) {
      if (agent_error_is_fatal(code)) {
        ag_error_set(err, code, "%s", move_err.message);
        goto out;
      }
      summary->pending++;
      log_error("'%s' failed (%s) and could not be moved to the error "
                "folder: %s; retrying next pass",
                shown, reason, move_err.message);
      code = AG_OK;
      goto out;
    }
    write_reason_file(agent, record->archive_path, shown, reason);
  }

  code = record_done(agent, file->rel, file->rel_len, record, MANIFEST_FAILED,
                     err);
  if (code != AG_OK)
    goto out;
  summary->failed++;
  summary->failed_by_format[agent_format_of(record->format)]++;
  char target[1024] = "";
  if (record->archive_path != NULL)
    escape_path(target, sizeof(target), record->archive_path);
  log_error("failed '%s': %s; %s%s", shown, reason,
            record->archive_path != NULL ? "moved to " : "left in place",
            target);

out:
  free(source);
  free(planned);
  return code;
}

enum ag_code dispose_resume_failed(struct agent *agent, const char *rel,
                                   size_t rel_len,
                                   struct manifest_record *record,
                                   struct agent_summary *summary,
                                   struct ag_error *err)
{
  struct remote_entry entry;
  struct ag_error stat_err = {0};
  char shown[512];
  char target[1024];
  char *source = rpath_join(agent->config->inbox, rel, rel_len);

  if (source == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  enum ag_code code = remote_stat(agent->remote, source, &entry, &stat_err);
  free(source);

  /* A file still in the inbox was not moved; the listing takes it again. */
  if (code != AG_ENOENT)
    return code == AG_OK || !agent_error_is_fatal(code)
               ? AG_OK
               : ag_error_set(err, code, "%s", stat_err.message);

  log_escape(shown, sizeof(shown), rel, rel_len);
  escape_path(target, sizeof(target), record->archive_path);
  code = remote_stat(agent->remote, record->archive_path, &entry, &stat_err);
  if (code == AG_OK) {
    write_reason_file(agent, record->archive_path, shown, record->reason);
    log_error("failed '%s': %s; moved to %s by an interrupted run", shown,
              record->reason, target);
  } else if (code == AG_ENOENT) {
    log_warn("'%s' failed (%s) and left the inbox, but it is not at '%s', "
             "where an interrupted run was moving it; recording it as failed",
             shown, record->reason, target);
    free(record->archive_path);
    record->archive_path = NULL;
  } else {
    return agent_error_is_fatal(code)
               ? ag_error_set(err, code, "%s", stat_err.message)
               : AG_OK;
  }

  code = record_done(agent, rel, rel_len, record, MANIFEST_FAILED, err);
  if (code == AG_OK) {
    summary->failed++;
    summary->failed_by_format[agent_format_of(record->format)]++;
  }
  return code;
}
