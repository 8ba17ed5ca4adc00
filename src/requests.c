/* The retry and forget commands. With no agent running they take the
 * state folder's lock and do the work at once. While an agent holds the
 * lock, they publish a request file in <state_dir>/requests/, and that
 * agent carries it out at the start of its next pass with the same code.
 *
 * A request file is one JSON object, published atomically:
 * {"v":1,"action":"retry","name":"a\\x5Cb.xml","requested_at":1733300000}.
 * "name" is the key as status shows it (log_escape() form), which is valid
 * UTF-8 for any key and turns back into the exact bytes. */
#include "agent_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent/atomic_file.h"
#include "agent/hook.h"
#include "agent/log.h"
#include "agent/rpath.h"

#define REQUESTS_DIR "requests"
#define REQUEST_VERSION 1

/* Maximum size in bytes of a request file. A real one is about 100 bytes
 * plus the name. */
#define REQUEST_FILE_MAX 16384

/* Maximum request files read in one pass. The rest wait for the next. */
#define REQUESTS_PER_PASS_MAX 1000

/* Room for a key as status shows it: at most 4 bytes per key byte. */
#define SHOWN_NAME_SIZE (4 * MANIFEST_KEY_MAX + 8)

static const char *const action_names[] = {"retry", "forget"};

/* One request: the action and the raw key it applies to. */
struct request {
  enum agent_request_action action;
  char *key; /* malloc'd, NUL-terminated */
  size_t key_len;
};

static char *join_path(const char *dir, const char *name)
{
  size_t size = strlen(dir) + 1 + strlen(name) + 1;
  char *path = malloc(size);

  if (path != NULL)
    snprintf(path, size, "%s/%s", dir, name);
  return path;
}

static int hex_value(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Turn a name as status shows it back into the raw key: "\xHH" becomes
 * the byte HH, and every other byte is kept. Stores a malloc'd key. */
static enum ag_code decode_name(const char *name, char **key_out,
                                size_t *len_out, struct ag_error *err)
{
  size_t len = strlen(name);
  char *key = malloc(len + 1);
  size_t used = 0;
  bool has_nul = false;

  *key_out = NULL;
  if (key == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  for (size_t i = 0; i < len; i++) {
    if (name[i] == '\\' && name[i + 1] == 'x' && hex_value(name[i + 2]) >= 0 &&
        hex_value(name[i + 3]) >= 0) {
      int byte = hex_value(name[i + 2]) * 16 + hex_value(name[i + 3]);
      has_nul = has_nul || byte == 0;
      key[used++] = (char)byte;
      i += 3;
    } else {
      key[used++] = name[i];
    }
  }
  key[used] = '\0';

  if (used == 0 || used > MANIFEST_KEY_MAX || has_nul) {
    free(key);
    return ag_error_set(err, AG_EUSAGE,
                        "invalid file name '%s': expected the path below the "
                        "inbox as status shows it, 1 to %d bytes without "
                        "\\x00",
                        name, MANIFEST_KEY_MAX);
  }
  *key_out = key;
  *len_out = used;
  return AG_OK;
}

/* ---- Carrying out a request ---- */

static enum ag_code load_record(struct manifest *manifest, const char *key,
                                size_t key_len, const char *shown,
                                struct manifest_record *record,
                                struct ag_error *err)
{
  bool found = false;
  enum ag_code code = manifest_get(manifest, key, key_len, record, &found, err);

  if (code == AG_OK && !found)
    code = ag_error_set(err, AG_EUSAGE,
                        "the manifest has no record of '%s'; `status` lists "
                        "failed files under the names that retry and forget "
                        "take",
                        shown);
  return code;
}

/* Check that action fits the record. Forgetting a file whose hook has not
 * succeeded is rejected, because its identical copy would then be archived
 * as a duplicate with no hook ever run. Retry runs such a hook again. */
static enum ag_code check_action(const struct config *config,
                                 enum agent_request_action action,
                                 const struct manifest_record *record,
                                 const char *shown, struct ag_error *err)
{
  bool hook_pending = hook_is_pending(config, record);

  if (action == AGENT_REQUEST_FORGET && hook_pending)
    return ag_error_set(err, AG_EUSAGE,
                        "'%s' waits for its post-delivery hook; forgetting "
                        "it would archive it without the hook. Fix the hook "
                        "and run 'retry %s' to run it at the next pass",
                        shown, shown);
  if (action != AGENT_REQUEST_RETRY || record->state == MANIFEST_FAILED ||
      hook_pending)
    return AG_OK;
  return ag_error_set(err, AG_EUSAGE,
                      "'%s' is %s, not failed; retry takes only failed files "
                      "and files whose hook failed",
                      shown, manifest_state_name(record->state));
}

/* The failed file is not at the path in its record. That is fine when it
 * is back in the inbox already, moved by hand. */
static enum ag_code accept_missing_source(struct agent *agent, const char *from,
                                          const char *target, const char *shown,
                                          struct ag_error *err)
{
  struct remote_entry entry;
  struct ag_error stat_err = {0};
  enum ag_code code = remote_stat(agent->remote, target, &entry, &stat_err);

  if (code == AG_OK) {
    log_info("retry: '%s' is already back in the inbox", shown);
    return AG_OK;
  }
  if (code != AG_ENOENT)
    return ag_error_set(err, code, "%s", stat_err.message);
  return ag_error_set(err, AG_ENOENT,
                      "'%s' is no longer in the error folder at '%s'; put "
                      "it back there or into the inbox, or use forget to "
                      "drop its record",
                      shown, from);
}

/* Remove "<from>.reason.txt", which dispose_failed() wrote beside the
 * failed file. The file is only a note, so a failure is only logged. */
static void remove_reason_file(struct agent *agent, const char *from)
{
  size_t size = strlen(from) + sizeof(".reason.txt");
  char *path = malloc(size);
  struct ag_error unlink_err = {0};

  if (path == NULL)
    return;
  snprintf(path, size, "%s.reason.txt", from);
  enum ag_code code = remote_unlink(agent->remote, path, &unlink_err);
  if (code != AG_OK && code != AG_ENOENT)
    log_warn("retry: cannot remove reason file '%s': %s", path,
             unlink_err.message);
  free(path);
}

/* Move the failed file from the error folder back to its path below the
 * inbox. Never replaces a file in the inbox. */
static enum ag_code move_back(struct agent *agent, const char *key,
                              size_t key_len, const char *shown,
                              const char *from, struct ag_error *err)
{
  struct ag_error move_err = {0};
  char *target = rpath_join(agent->config->inbox, key, key_len);
  char *folder = NULL;
  enum ag_code code = AG_OK;

  if (target != NULL) {
    size_t base = rpath_base_offset(target, strlen(target));
    folder = strndup(target, base > 1 ? base - 1 : 1);
  }
  if (target == NULL || folder == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  code = agent_connect(agent, err);
  if (code == AG_OK)
    code = remote_mkdirs(agent->remote, folder, err);
  if (code != AG_OK)
    goto out;

  code = remote_rename(agent->remote, from, target, &move_err);
  if (code == AG_OK) {
    remove_reason_file(agent, from);
    log_info("retry: moved '%s' back into the inbox from '%s'", shown, from);
  } else if (code == AG_ENOENT) {
    code = accept_missing_source(agent, from, target, shown, err);
  } else if (code == AG_EEXIST) {
    code = ag_error_set(err, AG_EEXIST,
                        "the inbox already has a file '%s', so '%s' stays in "
                        "the error folder; move the inbox file away first, "
                        "or use forget to drop the failed record",
                        target, from);
  } else {
    code = ag_error_set(err, code, "%s", move_err.message);
  }

out:
  free(folder);
  free(target);
  return code;
}

/* Put a failed file back in the inbox and reset its record to SEEN, which
 * no listing treats as handled, so the next pass takes the file again.
 * first_seen and attempts are kept. For a delivered file whose hook
 * failed, clear the hook's retry time instead, so the next pass runs it. */
static enum ag_code retry_record(struct agent *agent, const char *key,
                                 size_t key_len, const char *shown,
                                 struct manifest_record *record,
                                 struct ag_error *err)
{
  enum ag_code code = AG_OK;

  if (record->state == MANIFEST_DELIVERED) {
    record->hook_retry_at = 0;
    record->updated = plat_wall_time();
    code = manifest_put(agent->manifest, key, key_len, record, err);
    if (code == AG_OK)
      log_info("retry: the post-delivery hook of '%s' runs again at the next "
               "pass",
               shown);
    return code;
  }

  if (record->archive_path != NULL)
    code = move_back(agent, key, key_len, shown, record->archive_path, err);
  if (code != AG_OK)
    return code;

  free(record->reason);
  record->reason = NULL;
  free(record->archive_path);
  record->archive_path = NULL;
  record->state = MANIFEST_SEEN;
  record->updated = plat_wall_time();
  code = manifest_put(agent->manifest, key, key_len, record, err);
  if (code != AG_OK)
    return code;
  stable_forget(agent->stable, key, key_len);
  log_info("retry: reset the record of '%s'; the next pass takes it again",
           shown);
  return AG_OK;
}

static enum ag_code forget_record(struct agent *agent, const char *key,
                                  size_t key_len, const char *shown,
                                  const struct manifest_record *record,
                                  struct ag_error *err)
{
  bool found = false;
  enum ag_code code =
      manifest_delete(agent->manifest, key, key_len, &found, err);

  if (code != AG_OK)
    return code;
  stable_forget(agent->stable, key, key_len);
  log_info("forget: removed the %s record of '%s'; a file of that name in "
           "the inbox is now taken as a new file",
           manifest_state_name(record->state), shown);
  return AG_OK;
}

/* Carry out one request on an agent that holds the lock. */
static enum ag_code execute_request(struct agent *agent,
                                    enum agent_request_action action,
                                    const char *key, size_t key_len,
                                    struct ag_error *err)
{
  struct manifest_record record = {0};
  char shown[SHOWN_NAME_SIZE];
  enum ag_code code;

  log_escape(shown, sizeof(shown), key, key_len);
  code = load_record(agent->manifest, key, key_len, shown, &record, err);
  if (code == AG_OK)
    code = check_action(agent->config, action, &record, shown, err);
  if (code == AG_OK && action == AGENT_REQUEST_RETRY)
    code = retry_record(agent, key, key_len, shown, &record, err);
  else if (code == AG_OK)
    code = forget_record(agent, key, key_len, shown, &record, err);
  manifest_record_clear(&record);
  return code;
}

/* ---- Queued requests ---- */

/* Check the record without the lock, so that a request that cannot work
 * is rejected now instead of in the running agent's log. */
static enum ag_code check_unlocked(const struct config *config,
                                   enum agent_request_action action,
                                   const char *key, size_t key_len,
                                   struct ag_error *err)
{
  struct manifest *manifest = NULL;
  struct manifest_record record = {0};
  char shown[SHOWN_NAME_SIZE];
  enum ag_code code =
      manifest_open_read_only(config->state_dir, &manifest, err);

  log_escape(shown, sizeof(shown), key, key_len);
  if (code == AG_OK)
    code = load_record(manifest, key, key_len, shown, &record, err);
  if (code == AG_OK)
    code = check_action(config, action, &record, shown, err);
  manifest_record_clear(&record);
  manifest_close(manifest);
  return code;
}

/* Return the JSON text of a request, malloc'd, or NULL when out of
 * memory. */
static char *encode_request(enum agent_request_action action, const char *key,
                            size_t key_len)
{
  char shown[SHOWN_NAME_SIZE];
  json_t *object = json_pack("{s:i, s:s, s:s, s:I}", "v", REQUEST_VERSION,
                             "action", action_names[action], "name",
                             log_escape(shown, sizeof(shown), key, key_len),
                             "requested_at", (json_int_t)plat_wall_time());
  char *text = object != NULL ? json_dumps(object, JSON_COMPACT) : NULL;

  json_decref(object);
  return text;
}

/* Return the final name of a request file: "<Unix time>-<temp name>.json".
 * The zero-padded time makes name order the order of the requests, and
 * the random part of the temporary file's name keeps names unique. */
static char *final_request_path(const char *dir, const char *temp_path)
{
  const char *base =
      temp_path + rpath_base_offset(temp_path, strlen(temp_path));
  size_t stem_len = strlen(base) - (sizeof(".tmp") - 1);
  char name[64];

  snprintf(name, sizeof(name), "%020lld-%.*s.json", (long long)plat_wall_time(),
           (int)stem_len, base);
  return join_path(dir, name);
}

static enum ag_code queue_request(const struct config *config,
                                  enum agent_request_action action,
                                  const char *key, size_t key_len,
                                  struct ag_error *err)
{
  char *dir = join_path(config->state_dir, REQUESTS_DIR);
  char *text = encode_request(action, key, key_len);
  struct atomic_file *file = NULL;
  char *final_path = NULL;
  enum ag_code code = AG_OK;

  if (dir == NULL || text == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  code = plat_mkdirs(dir, err);
  if (code == AG_OK)
    code = atomic_file_create(dir, "request", ATOMIC_FILE_PRIVATE, &file, err);
  if (code != AG_OK)
    goto out;
  fprintf(atomic_file_stream(file), "%s\n", text);
  final_path = final_request_path(dir, atomic_file_temp_path(file));
  if (final_path == NULL)
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
  if (code == AG_OK)
    code = atomic_file_publish(
        file, final_path + rpath_base_offset(final_path, strlen(final_path)),
        err);
  if (code == AG_OK)
    log_info("another agent holds the state folder, so the %s request was "
             "queued as '%s'; that agent carries it out at the start of its "
             "next pass",
             action_names[action], final_path);

out:
  atomic_file_free(file);
  free(final_path);
  free(text);
  free(dir);
  return code;
}

enum ag_code agent_request(const struct config *config,
                           enum agent_request_action action, const char *name,
                           bool *queued, struct ag_error *err)
{
  struct agent *agent = NULL;
  struct ag_error open_err = {0};
  char *key = NULL;
  size_t key_len = 0;
  enum ag_code code = decode_name(name, &key, &key_len, err);

  *queued = false;
  if (code != AG_OK)
    return code;

  code = agent_open(config, 0, &agent, &open_err);
  if (code == AG_ELOCKED) {
    code = check_unlocked(config, action, key, key_len, err);
    if (code == AG_OK)
      code = queue_request(config, action, key, key_len, err);
    *queued = code == AG_OK;
  } else if (code != AG_OK) {
    ag_error_set(err, code, "%s", open_err.message);
  } else {
    code = execute_request(agent, action, key, key_len, err);
  }
  agent_close(agent);
  free(key);
  return code;
}

/* ---- Reading the queue ---- */

/* Names of request files in one folder, sorted. */
struct request_names {
  char **names;
  size_t count;
};

static void free_names(struct request_names *list)
{
  for (size_t i = 0; i < list->count; i++)
    free(list->names[i]);
  free(list->names);
  list->names = NULL;
  list->count = 0;
}

static int compare_names(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_request_name(const char *name)
{
  size_t len = strlen(name);

  return name[0] != '.' && len > 5 && strcmp(name + len - 5, ".json") == 0;
}

/* List the request files in dir, oldest first. A missing folder has none.
 * Files still being written end in ".tmp" and are left out. */
static enum ag_code list_requests(const char *dir, struct request_names *list,
                                  struct ag_error *err)
{
  struct plat_dir *folder = plat_dir_open(dir);
  enum ag_code code = AG_OK;

  list->names = NULL;
  list->count = 0;
  if (folder == NULL && errno == ENOENT)
    return AG_OK;
  if (folder == NULL)
    return ag_error_set(err, AG_ELOCAL, "cannot read folder '%s': %s", dir,
                        strerror(errno));
  list->names = calloc(REQUESTS_PER_PASS_MAX, sizeof(*list->names));
  if (list->names == NULL)
    code = ag_error_set(err, AG_ENOMEM, "out of memory");

  for (const char *name = plat_dir_next(folder);
       code == AG_OK && name != NULL && list->count < REQUESTS_PER_PASS_MAX;
       name = plat_dir_next(folder)) {
    if (!is_request_name(name))
      continue;
    list->names[list->count] = strdup(name);
    if (list->names[list->count] == NULL)
      code = ag_error_set(err, AG_ENOMEM, "out of memory");
    else
      list->count++;
  }
  plat_dir_close(folder);
  if (code != AG_OK)
    free_names(list);
  else
    qsort(list->names, list->count, sizeof(*list->names), compare_names);
  return code;
}

/* Read at most REQUEST_FILE_MAX bytes of path into a malloc'd buffer. */
static enum ag_code read_small_file(const char *path, char **text_out,
                                    size_t *len_out, struct ag_error *err)
{
  FILE *file = plat_fopen(path, "rb");
  char *text = NULL;

  *text_out = NULL;
  if (file == NULL)
    return ag_error_set(err, AG_EUSAGE,
                        "cannot read request file '%s': %s; run retry and "
                        "forget as the agent's user",
                        path, strerror(errno));
  text = malloc(REQUEST_FILE_MAX + 1);
  size_t len = text != NULL ? fread(text, 1, REQUEST_FILE_MAX + 1, file) : 0;
  bool failed = ferror(file) != 0;
  fclose(file);
  if (text == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  if (failed || len > REQUEST_FILE_MAX) {
    free(text);
    return ag_error_set(err, AG_EUSAGE,
                        "request file '%s' cannot be read or is larger than "
                        "%d bytes",
                        path, REQUEST_FILE_MAX);
  }
  *text_out = text;
  *len_out = len;
  return AG_OK;
}

/* Return the action named text, or -1. */
static int action_index(const char *text)
{
  for (int i = 0; text != NULL && i < 2; i++) {
    if (strcmp(text, action_names[i]) == 0)
      return i;
  }
  return -1;
}

static enum ag_code parse_request(const char *path, const char *text,
                                  size_t len, struct request *request,
                                  struct ag_error *err)
{
  json_error_t json_error;
  json_t *object = json_loadb(text, len, 0, &json_error);
  json_t *version = json_object_get(object, "v");
  int action =
      action_index(json_string_value(json_object_get(object, "action")));
  const char *name = json_string_value(json_object_get(object, "name"));
  enum ag_code code;

  if (object == NULL)
    code = ag_error_set(err, AG_EUSAGE, "request file '%s' is not JSON: %s",
                        path, json_error.text);
  else if (!json_is_integer(version) ||
           json_integer_value(version) != REQUEST_VERSION || action < 0 ||
           name == NULL)
    code = ag_error_set(err, AG_EUSAGE,
                        "request file '%s' needs \"v\": %d, \"action\": "
                        "\"retry\" or \"forget\", and \"name\"",
                        path, REQUEST_VERSION);
  else
    code = decode_name(name, &request->key, &request->key_len, err);
  if (code == AG_OK)
    request->action = (enum agent_request_action)action;
  json_decref(object);
  return code;
}

static enum ag_code read_request(const char *path, struct request *request,
                                 struct ag_error *err)
{
  char *text = NULL;
  size_t len = 0;
  enum ag_code code = read_small_file(path, &text, &len, err);

  if (code == AG_OK)
    code = parse_request(path, text, len, request, err);
  free(text);
  return code;
}

/* Return whether a request's error ends the pass. A request that is wrong
 * in itself (AG_EUSAGE) or whose file is missing or in the way does not. */
static bool ends_pass(enum ag_code code)
{
  return code != AG_EUSAGE && agent_error_is_fatal(code);
}

static enum ag_code process_request_file(struct agent *agent, const char *dir,
                                         const char *name, struct ag_error *err)
{
  struct request request = {0};
  struct ag_error request_err = {0};
  char *path = join_path(dir, name);
  enum ag_code code = AG_OK;

  if (path == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  code = read_request(path, &request, &request_err);
  bool valid = code == AG_OK;
  if (valid)
    code = execute_request(agent, request.action, request.key, request.key_len,
                           &request_err);
  if (code != AG_OK && ends_pass(code)) {
    /* The file stays, so the next pass carries the request out. */
    ag_error_set(err, code, "%s", request_err.message);
    goto out;
  }
  if (!valid)
    log_error("removing an invalid request: %s", request_err.message);
  else if (code != AG_OK)
    log_error("%s request '%s' failed: %s", action_names[request.action], path,
              request_err.message);
  int error = plat_unlink(path);
  if (error != 0 && error != ENOENT)
    log_error("cannot remove request file '%s': %s; the request is carried "
              "out again next pass",
              path, strerror(error));
  code = AG_OK;

out:
  free(request.key);
  free(path);
  return code;
}

enum ag_code agent_process_requests(struct agent *agent, struct ag_error *err)
{
  struct request_names list = {0};
  char *dir = join_path(agent->config->state_dir, REQUESTS_DIR);
  enum ag_code code = AG_OK;

  if (dir == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  code = plat_mkdirs(dir, err);
  if (code == AG_OK)
    code = list_requests(dir, &list, err);
  for (size_t i = 0; i < list.count && code == AG_OK; i++)
    code = process_request_file(agent, dir, list.names[i], err);
  free_names(&list);
  free(dir);
  return code;
}

size_t agent_print_requests(const struct config *config, FILE *out)
{
  struct request_names list = {0};
  struct ag_error err = {0};
  char *dir = join_path(config->state_dir, REQUESTS_DIR);
  char shown[SHOWN_NAME_SIZE];

  if (dir == NULL || list_requests(dir, &list, &err) != AG_OK) {
    free(dir);
    return 0;
  }
  for (size_t i = 0; i < list.count; i++) {
    struct request request = {0};
    struct ag_error request_err = {0};
    char *path = join_path(dir, list.names[i]);

    if (path != NULL && read_request(path, &request, &request_err) == AG_OK)
      fprintf(out, "%-6s %s: queued %s request\n", action_names[request.action],
              log_escape(shown, sizeof(shown), request.key, request.key_len),
              action_names[request.action]);
    else
      fprintf(out, "?      %s: unreadable request file: %s\n", list.names[i],
              request_err.message);
    free(request.key);
    free(path);
  }
  size_t count = list.count;
  free_names(&list);
  free(dir);
  return count;
}
