/* The status command: counts by state, the last successful pass, the
 * backlog it left and the failed files, read from the manifest without
 * taking the state folder's lock. agent_record_pass() stores the values
 * that only a pass can measure in the manifest's meta table. */
#include "agent_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent/hook.h"
#include "agent/log.h"
#include "agent/output.h"

/* Maximum failures in the text form. The JSON form lists all of them. */
#define STATUS_FAILURES_SHOWN 10

/* One failed file, or one delivered file that waits for its hook or whose
 * remote step failed, with its texts escaped for the terminal and JSON. */
struct failure {
  char *name;       /* path below the inbox, as retry and forget take it */
  char *reason;     /* why it failed; for a hook, why its last run failed */
  char *error_path; /* where it is in the error folder, or NULL */
  int64_t when;     /* Unix seconds of the failure; for a hook, of the
                       next run */
  uint32_t attempts;
};

/* The content of the status output. A negative last_success or backlog
 * is unknown. */
struct status_report {
  const struct config *config;
  size_t counts[MANIFEST_STATE_COUNT];
  struct failure *failures; /* newest first */
  size_t failure_count;
  size_t failure_capacity;
  struct failure *hooks; /* delivered files whose hook is pending */
  size_t hook_count;
  size_t hook_capacity;
  struct failure *moves; /* delivered files whose remote step failed */
  size_t move_count;
  size_t move_capacity;
  int64_t last_success;
  int64_t backlog;
};

/* Return a malloc'd printable copy of len bytes, escaped as log_escape()
 * does, without cutting it. */
static char *escape_copy(const void *text, size_t len)
{
  size_t size = 4 * len + 8;
  char *copy = malloc(size);

  if (copy != NULL)
    log_escape(copy, size, text, len);
  return copy;
}

static char *escape_text(const char *text)
{
  return text != NULL ? escape_copy(text, strlen(text)) : NULL;
}

static void free_items(struct failure *items, size_t count)
{
  for (size_t i = 0; i < count; i++) {
    free(items[i].name);
    free(items[i].reason);
    free(items[i].error_path);
  }
  free(items);
}

static void free_report(struct status_report *report)
{
  free_items(report->failures, report->failure_count);
  free_items(report->hooks, report->hook_count);
  free_items(report->moves, report->move_count);
}

/* Return a new, zeroed item at the end of items, or NULL when out of
 * memory. */
static struct failure *add_item(struct failure **items, size_t *count,
                                size_t *capacity)
{
  if (*count == *capacity) {
    size_t grown_capacity = *capacity == 0 ? 16 : *capacity * 2;
    struct failure *grown = realloc(*items, grown_capacity * sizeof(*grown));
    if (grown == NULL)
      return NULL;
    *items = grown;
    *capacity = grown_capacity;
  }
  struct failure *item = &(*items)[(*count)++];
  memset(item, 0, sizeof(*item));
  return item;
}

/* Keep a delivered record whose hook is pending. */
static enum ag_code collect_hook(struct status_report *report, const void *key,
                                 size_t key_len,
                                 const struct manifest_record *record)
{
  struct failure *item =
      add_item(&report->hooks, &report->hook_count, &report->hook_capacity);

  if (item == NULL)
    return AG_ENOMEM;
  item->name = escape_copy(key, key_len);
  /* hook.c stores the hook's output already escaped. */
  item->reason = record->hook_error != NULL ? strdup(record->hook_error) : NULL;
  item->when = record->hook_retry_at;
  item->attempts = record->hook_attempts;
  if (item->name == NULL ||
      (record->hook_error != NULL && item->reason == NULL))
    return AG_ENOMEM;
  return AG_OK;
}

/* Keep a delivered record whose remote step (move or delete) failed. */
static enum ag_code collect_move(struct status_report *report, const void *key,
                                 size_t key_len,
                                 const struct manifest_record *record)
{
  struct failure *item =
      add_item(&report->moves, &report->move_count, &report->move_capacity);

  if (item == NULL)
    return AG_ENOMEM;
  item->name = escape_copy(key, key_len);
  item->reason = escape_text(record->archive_error);
  item->when = record->updated;
  item->attempts = record->archive_attempts;
  if (item->name == NULL ||
      (record->archive_error != NULL && item->reason == NULL))
    return AG_ENOMEM;
  return AG_OK;
}

/* Count every record by state and keep each failed one, each one that
 * waits for its hook and each one whose remote step failed. */
static enum ag_code collect_record(void *ctx, const void *key, size_t key_len,
                                   const struct manifest_record *record)
{
  struct status_report *report = ctx;

  report->counts[record->state]++;
  if (hook_is_pending(report->config, record))
    return collect_hook(report, key, key_len, record);
  if (record->state == MANIFEST_DELIVERED && record->archive_attempts > 0)
    return collect_move(report, key, key_len, record);
  if (record->state != MANIFEST_FAILED)
    return AG_OK;

  struct failure *item = add_item(&report->failures, &report->failure_count,
                                  &report->failure_capacity);
  if (item == NULL)
    return AG_ENOMEM;
  item->name = escape_copy(key, key_len);
  item->reason = escape_text(record->reason != NULL ? record->reason : "");
  item->error_path = escape_text(record->archive_path);
  item->when = record->updated;
  item->attempts = record->attempts;
  if (item->name == NULL || item->reason == NULL ||
      (record->archive_path != NULL && item->error_path == NULL))
    return AG_ENOMEM;
  return AG_OK;
}

/* Newest first, then by name. */
static int compare_failures(const void *a, const void *b)
{
  const struct failure *left = a;
  const struct failure *right = b;

  if (left->when != right->when)
    return left->when > right->when ? -1 : 1;
  return strcmp(left->name, right->name);
}

/* Read a decimal meta value into *value, or -1 when it is not set or not
 * a number that is 0 or more. */
static enum ag_code read_meta_number(struct manifest *manifest, const char *key,
                                     int64_t *value, struct ag_error *err)
{
  char *text = NULL;
  char *end = NULL;
  enum ag_code code = manifest_get_meta(manifest, key, &text, err);

  *value = -1;
  if (code != AG_OK || text == NULL)
    return code;
  errno = 0;
  long long number = strtoll(text, &end, 10);
  if (errno == 0 && end != text && *end == '\0' && number >= 0)
    *value = (int64_t)number;
  free(text);
  return AG_OK;
}

static enum ag_code read_report(struct manifest *manifest,
                                struct status_report *report,
                                struct ag_error *err)
{
  enum ag_code code = manifest_foreach(manifest, collect_record, report, err);

  if (code == AG_ENOMEM)
    return ag_error_set(err, code, "out of memory");
  if (code == AG_OK)
    code = read_meta_number(manifest, AGENT_META_LAST_SUCCESS,
                            &report->last_success, err);
  if (code == AG_OK)
    code =
        read_meta_number(manifest, AGENT_META_BACKLOG, &report->backlog, err);
  if (code == AG_OK)
    qsort(report->failures, report->failure_count, sizeof(*report->failures),
          compare_failures);
  return code;
}

/* ---- Text ---- */

static void print_last_success(FILE *out, const struct status_report *report)
{
  char stamp[32];

  if (report->last_success < 0) {
    fprintf(out, "last successful poll: none yet\n");
    return;
  }
  output_format_time(report->last_success, stamp, sizeof(stamp));
  fprintf(out, "last successful poll: %s (%lld s ago)\n", stamp,
          (long long)(plat_wall_time() - report->last_success));
  if (report->backlog >= 0)
    fprintf(out, "backlog after it: %lld files listed but not yet taken\n",
            (long long)report->backlog);
}

/* Print the delivered files whose remote step failed, by name. */
static void print_moves(FILE *out, const struct status_report *report)
{
  size_t printed = report->move_count < STATUS_FAILURES_SHOWN
                       ? report->move_count
                       : STATUS_FAILURES_SHOWN;

  if (printed == 0)
    return;
  fprintf(out,
          "the remote step failed for %zu of them, and each pass tries it "
          "again:\n",
          report->move_count);
  for (size_t i = 0; i < printed; i++) {
    const struct failure *item = &report->moves[i];

    fprintf(out, "  %s: %u failed attempts, the last: %s\n", item->name,
            item->attempts,
            item->reason != NULL ? item->reason : "no reason recorded");
  }
  if (report->move_count > printed)
    fprintf(out, "  and %zu more; status --json lists all\n",
            report->move_count - printed);
}

/* Print the delivered files that wait for their hook, by name. */
static void print_hooks(FILE *out, const struct status_report *report)
{
  char stamp[32];
  size_t printed = report->hook_count < STATUS_FAILURES_SHOWN
                       ? report->hook_count
                       : STATUS_FAILURES_SHOWN;

  if (printed == 0)
    return;
  fprintf(out,
          "%zu delivered files wait for their hook before the remote "
          "move:\n",
          report->hook_count);
  for (size_t i = 0; i < printed; i++) {
    const struct failure *item = &report->hooks[i];

    if (item->attempts == 0) {
      fprintf(out, "  %s: not run yet\n", item->name);
      continue;
    }
    output_format_time(item->when, stamp, sizeof(stamp));
    fprintf(out,
            "  %s: %u failed runs, the next on the first pass after %s: "
            "%s\n",
            item->name, item->attempts, stamp,
            item->reason != NULL ? item->reason : "no reason recorded");
  }
  if (report->hook_count > printed)
    fprintf(out, "  and %zu more; status --json lists all\n",
            report->hook_count - printed);
}

static void print_text(FILE *out, const char *path,
                       const struct status_report *report)
{
  char stamp[32];
  size_t printed = report->failure_count < STATUS_FAILURES_SHOWN
                       ? report->failure_count
                       : STATUS_FAILURES_SHOWN;

  fprintf(out, "manifest %s\n", path);
  for (int state = MANIFEST_SEEN; state <= MANIFEST_FAILED; state++)
    fprintf(out, "  %-10s %zu\n", manifest_state_name(state),
            report->counts[state]);
  print_last_success(out, report);
  if (report->counts[MANIFEST_DELIVERED] > 0)
    fprintf(out, "%zu delivered files wait for their remote move\n",
            report->counts[MANIFEST_DELIVERED]);
  print_moves(out, report);
  print_hooks(out, report);
  if (printed == 0)
    return;

  fprintf(out, "latest failures:\n");
  for (size_t i = 0; i < printed; i++) {
    output_format_time(report->failures[i].when, stamp, sizeof(stamp));
    fprintf(out, "  %s  %s: %s\n", stamp, report->failures[i].name,
            report->failures[i].reason);
  }
  if (report->failure_count > printed)
    fprintf(out, "  and %zu more; status --json lists all\n",
            report->failure_count - printed);
}

/* ---- JSON ---- */

/* Return a JSON string of text, escaped when it is not UTF-8, or null for
 * NULL. */
static json_t *text_value(const char *text)
{
  if (text == NULL)
    return json_null();
  json_t *value = json_string(text);
  if (value != NULL)
    return value;

  char *escaped = escape_text(text);
  value = escaped != NULL ? json_string(escaped) : NULL;
  free(escaped);
  return value;
}

static json_t *time_value(int64_t t)
{
  char stamp[32];

  if (t < 0)
    return json_null();
  output_format_time(t, stamp, sizeof(stamp));
  return json_string(stamp);
}

static json_t *number_value(int64_t n)
{
  return n < 0 ? json_null() : json_integer((json_int_t)n);
}

static json_t *failures_value(const struct status_report *report)
{
  json_t *list = json_array();

  for (size_t i = 0; list != NULL && i < report->failure_count; i++) {
    const struct failure *item = &report->failures[i];
    json_t *entry = json_pack(
        "{s:s, s:s, s:o, s:o, s:I}", "name", item->name, "reason", item->reason,
        "failed_at", time_value(item->when), "error_path",
        text_value(item->error_path), "attempts", (json_int_t)item->attempts);

    if (json_array_append_new(list, entry) != 0) {
      json_decref(list);
      return NULL;
    }
  }
  return list;
}

static json_t *hooks_value(const struct status_report *report)
{
  json_t *list = json_array();

  for (size_t i = 0; list != NULL && i < report->hook_count; i++) {
    const struct failure *item = &report->hooks[i];
    json_t *entry =
        json_pack("{s:s, s:I, s:o, s:o}", "name", item->name, "attempts",
                  (json_int_t)item->attempts, "retry_at",
                  time_value(item->attempts > 0 ? item->when : -1), "error",
                  text_value(item->reason));

    if (json_array_append_new(list, entry) != 0) {
      json_decref(list);
      return NULL;
    }
  }
  return list;
}

static json_t *moves_value(const struct status_report *report)
{
  json_t *list = json_array();

  for (size_t i = 0; list != NULL && i < report->move_count; i++) {
    const struct failure *item = &report->moves[i];
    json_t *entry =
        json_pack("{s:s, s:I, s:o, s:o}", "name", item->name, "attempts",
                  (json_int_t)item->attempts, "last_attempt",
                  time_value(item->when), "error", text_value(item->reason));

    if (json_array_append_new(list, entry) != 0) {
      json_decref(list);
      return NULL;
    }
  }
  return list;
}

static json_t *records_value(const struct status_report *report)
{
  json_t *records = json_object();

  for (int state = MANIFEST_SEEN; records != NULL && state <= MANIFEST_FAILED;
       state++) {
    if (json_object_set_new(records, manifest_state_name(state),
                            json_integer((json_int_t)report->counts[state])) !=
        0) {
      json_decref(records);
      return NULL;
    }
  }
  return records;
}

/* Print the report as one JSON object. path and agent_id are NULL when
 * the agent has not run yet. */
static enum ag_code print_json(FILE *out, const char *path,
                               const char *agent_id,
                               const struct status_report *report,
                               struct ag_error *err)
{
  json_t *root = json_pack(
      "{s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o}", "manifest",
      text_value(path), "agent_id", text_value(agent_id), "records",
      records_value(report), "last_success", time_value(report->last_success),
      "last_success_unix", number_value(report->last_success), "backlog",
      number_value(report->backlog), "pending_archive",
      (json_int_t)report->counts[MANIFEST_DELIVERED], "archive_failures",
      moves_value(report), "pending_hooks", hooks_value(report), "failures",
      failures_value(report));

  if (root == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  int rc = json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  fputc('\n', out);
  if (rc != 0)
    return ag_error_set(err, AG_ELOCAL, "cannot write the status");
  return AG_OK;
}

/* Return whether the state folder has the marker of earlier runs. */
static bool has_marker(const char *state_dir)
{
  size_t size = strlen(state_dir) + sizeof("/agent-id");
  char *marker = malloc(size);
  bool present = false;

  if (marker != NULL) {
    snprintf(marker, size, "%s/agent-id", state_dir);
    present = plat_exists(marker) != 0;
  }
  free(marker);
  return present;
}

/* ---- Entry points ---- */

enum ag_code agent_status(const struct config *config,
                          enum agent_status_format format, FILE *out,
                          struct ag_error *err)
{
  struct status_report report = {
      .config = config, .last_success = -1, .backlog = -1};
  struct manifest *manifest = NULL;
  size_t dir_len = strlen(config->state_dir);
  char *path = malloc(dir_len + sizeof("/manifest.mdb"));
  enum ag_code code = AG_OK;

  if (path == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  snprintf(path, dir_len + sizeof("/manifest.mdb"), "%s/manifest.mdb",
           config->state_dir);

  /* With neither the manifest nor the marker, a first run is reported
   * without opening the manifest, which a read-only open cannot create. A
   * marker alone is a lost manifest, which manifest_open_read_only()
   * reports. */
  bool never_ran = plat_exists(path) != 1 && !has_marker(config->state_dir);
  if (never_ran && format == AGENT_STATUS_TEXT) {
    fprintf(out, "no manifest in %s yet: the agent has not run\n",
            config->state_dir);
    goto out;
  }
  if (!never_ran) {
    code = manifest_open_read_only(config->state_dir, &manifest, err);
    if (code == AG_OK)
      code = read_report(manifest, &report, err);
  }
  if (code != AG_OK)
    goto out;

  if (format == AGENT_STATUS_JSON)
    code = print_json(out, never_ran ? NULL : path,
                      manifest != NULL && manifest_agent_id(manifest)[0] != '\0'
                          ? manifest_agent_id(manifest)
                          : NULL,
                      &report, err);
  else
    print_text(out, path, &report);

out:
  manifest_close(manifest);
  free_report(&report);
  free(path);
  return code;
}

enum ag_code agent_record_pass(struct agent *agent,
                               struct agent_summary *summary, enum ag_code code,
                               struct ag_error *err)
{
  struct ag_error read_err = {0};
  int64_t previous = -1;
  char text[32];

  if (code != AG_OK) {
    /* The pass already failed, and a second error would hide its cause. */
    read_meta_number(agent->manifest, AGENT_META_LAST_SUCCESS, &previous,
                     &read_err);
    summary->last_success = previous > 0 ? previous : 0;
    return code;
  }

  summary->last_success = plat_wall_time();
  snprintf(text, sizeof(text), "%" PRId64, summary->last_success);
  code = manifest_set_meta(agent->manifest, AGENT_META_LAST_SUCCESS, text, err);
  if (code == AG_OK) {
    snprintf(text, sizeof(text), "%zu", summary->backlog);
    code = manifest_set_meta(agent->manifest, AGENT_META_BACKLOG, text, err);
  }
  return code;
}
