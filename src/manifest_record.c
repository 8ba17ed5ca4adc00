/* The manifest's record format, the value of each key in the "files"
 * table.
 *
 * A record is a compact JSON object: {"v":1,"state":"delivered","size":...,
 * "mtime":...,"sha256":"...","format":"xml","output":"...",
 * "archive_path":"...","reason":"...","first_seen":...,"updated":...,
 * "attempts":...,"hook_done":true,"hook_attempts":...,"hook_retry_at":...,
 * "hook_error":"...","archive_attempts":...,"archive_error":"..."}. NULL
 * strings and an empty sha256 or format are left out. So are the hook and
 * archive fields while they are false or 0, which stores a record without
 * a hook or a failed remote step as before those fields existed. An
 * output, archive_path, reason, hook_error or archive_error that is not
 * valid UTF-8 (a remote path in a legacy encoding) is stored as base64
 * under its name plus "_b64", because JSON strings must be UTF-8. Readers
 * ignore keys that they do not know. A record of a claimed file also has
 * "claim_path", stored like archive_path. A record with a publication
 * intent also has "output_temp" and, for a passthrough copy,
 * "sidecar_temp". An older agent ignores them and takes the file again,
 * which can publish its document a second time.
 * NOTE: the hook fields did not raise RECORD_VERSION, so an older agent
 * reads a record whose hook is pending and archives the file without
 * running the hook. Neither did claim_path, so an older agent looks for a
 * claimed file in the inbox. */
#include "manifest_internal.h"

#include "agent/json_text.h"
#include "agent/log.h"
#include "agent/names.h"
#include "agent/utf8.h"

#include <jansson.h>
#include <openssl/evp.h>

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_VERSION 1

/* Room for the description of a problem in a stored record. */
#define PROBLEM_MAX 256

/* A record's JSON text as it grows. Records are written by hand instead of
 * through jansson's object tree, which took about 28,000 instructions per
 * record, 5 records per file (docs/performance.md). The text is the same
 * as json_dumps() with JSON_COMPACT writes, which test_manifest checks. */
struct record_text {
  char *data;
  size_t len;
  size_t size;
  bool failed; /* out of memory */
};

static void put_bytes(struct record_text *text, const char *bytes, size_t len)
{
  if (text->failed)
    return;
  if (text->size - text->len <= len) {
    size_t size = text->size * 2 + len + 1;
    char *data = realloc(text->data, size);
    if (data == NULL) {
      text->failed = true;
      return;
    }
    text->data = data;
    text->size = size;
  }
  memcpy(text->data + text->len, bytes, len);
  text->len += len;
  text->data[text->len] = '\0';
}

/* Write value as a JSON string (agent/json_text.h). */
static void put_string(struct record_text *text, const char *value)
{
  const char *run = value;
  char escape[6];

  put_bytes(text, "\"", 1);
  for (const char *p = value; *p != '\0'; p++) {
    unsigned char c = (unsigned char)*p;
    if (!json_text_needs_escape(c))
      continue;
    put_bytes(text, run, (size_t)(p - run));
    put_bytes(text, escape, json_text_escape(c, escape));
    run = p + 1;
  }
  put_bytes(text, run, strlen(run));
  put_bytes(text, "\"", 1);
}

/* Write the separator and the key of the field name. */
static void put_key(struct record_text *text, const char *name)
{
  put_bytes(text, text->len > 1 ? "," : "", text->len > 1 ? 1 : 0);
  put_string(text, name);
  put_bytes(text, ":", 1);
}

static void put_integer(struct record_text *text, const char *name,
                        int64_t value)
{
  char digits[24];

  put_key(text, name);
  put_bytes(text, digits,
            (size_t)snprintf(digits, sizeof(digits), "%" PRId64, value));
}

static void put_text(struct record_text *text, const char *name,
                     const char *value)
{
  put_key(text, name);
  put_string(text, value);
}

/* Store value under name, or under name + "_b64" when it is not UTF-8.
 * NULL value is left out. */
static void put_text_field(struct record_text *text, const char *name,
                           const char *value)
{
  char b64_name[32];

  if (value == NULL)
    return;
  if (utf8_valid(value, strlen(value), NULL)) {
    put_text(text, name, value);
    return;
  }

  char *encoded = names_base64(value, strlen(value));
  if (encoded == NULL) {
    text->failed = true;
    return;
  }
  snprintf(b64_name, sizeof(b64_name), "%s_b64", name);
  put_text(text, b64_name, encoded);
  free(encoded);
}

/* Return the JSON text of record (malloc'd), or NULL when out of memory. */
char *manifest_record_encode(const struct manifest_record *record)
{
  struct record_text text = {0};

  put_bytes(&text, "{", 1);
  put_integer(&text, "v", RECORD_VERSION);
  put_text(&text, "state", manifest_state_name(record->state));
  put_integer(&text, "size", (int64_t)record->size);
  put_integer(&text, "mtime", record->mtime);
  if (record->sha256[0] != '\0')
    put_text(&text, "sha256", record->sha256);
  if (record->format[0] != '\0')
    put_text(&text, "format", record->format);
  put_text_field(&text, "output", record->output);
  put_text_field(&text, "archive_path", record->archive_path);
  put_text_field(&text, "reason", record->reason);
  put_integer(&text, "first_seen", record->first_seen);
  put_integer(&text, "updated", record->updated);
  put_integer(&text, "attempts", record->attempts);
  if (record->hook_done)
    put_bytes(&text, ",\"hook_done\":true", 17);
  if (record->hook_attempts > 0)
    put_integer(&text, "hook_attempts", record->hook_attempts);
  if (record->hook_retry_at != 0)
    put_integer(&text, "hook_retry_at", record->hook_retry_at);
  put_text_field(&text, "hook_error", record->hook_error);
  if (record->archive_attempts > 0)
    put_integer(&text, "archive_attempts", record->archive_attempts);
  put_text_field(&text, "archive_error", record->archive_error);
  put_text_field(&text, "claim_path", record->claim_path);
  put_text_field(&text, "output_temp", record->output_temp);
  put_text_field(&text, "sidecar_temp", record->sidecar_temp);
  put_bytes(&text, "}", 1);

  if (text.failed) {
    free(text.data);
    return NULL;
  }
  return text.data;
}

bool manifest_is_sha256_hex(const char *text)
{
  for (size_t i = 0; i < 64; i++) {
    if (strchr("0123456789abcdef", text[i]) == NULL || text[i] == '\0')
      return false;
  }
  return text[64] == '\0';
}

/* Reject a record that the format cannot store or that would corrupt the
 * delivered table. */
enum ag_code manifest_record_check(const struct manifest_record *record,
                                   const char *key_text, struct ag_error *err)
{
  const char *problem = NULL;

  if (record->state < MANIFEST_SEEN || record->state > MANIFEST_FAILED)
    problem = "its state is unknown";
  else if (record->sha256[0] != '\0' && !manifest_is_sha256_hex(record->sha256))
    problem = "its sha256 is not 64 lowercase hex digits";
  else if (memchr(record->format, '\0', sizeof(record->format)) == NULL)
    problem = "its format is not a terminated string";
  else if (!utf8_valid(record->format, strlen(record->format), NULL))
    problem = "its format is not UTF-8";
  else if (record->size > (uint64_t)INT64_MAX)
    problem = "its size is above 2^63 - 1";
  if (problem == NULL)
    return AG_OK;
  return ag_error_set(err, AG_ESTATE,
                      "failed to store the manifest record for '%s' because "
                      "%s. This is a bug in the agent.",
                      key_text, problem);
}

/* Read an integer field into *out, where a missing field reads as 0.
 * Returns false and describes the problem when the value is not an integer
 * from min to max. */
static bool read_integer(json_t *object, const char *name, int64_t min,
                         int64_t max, int64_t *out, char *problem)
{
  json_t *value = json_object_get(object, name);

  *out = 0;
  if (value == NULL)
    return true;
  if (!json_is_integer(value) || json_integer_value(value) < min ||
      json_integer_value(value) > max) {
    snprintf(problem, PROBLEM_MAX,
             "field '%s' is not an integer from "
             "%" PRId64 " to %" PRId64,
             name, min, max);
    return false;
  }
  *out = json_integer_value(value);
  return true;
}

/* Read a boolean field into *out, where a missing field reads as false. */
static bool read_boolean(json_t *object, const char *name, bool *out,
                         char *problem)
{
  json_t *value = json_object_get(object, name);

  *out = false;
  if (value == NULL)
    return true;
  if (!json_is_boolean(value)) {
    snprintf(problem, PROBLEM_MAX, "field '%s' is not true or false", name);
    return false;
  }
  *out = json_is_true(value);
  return true;
}

/* Copy a string field of fewer than out_size bytes into out, where a
 * missing field reads as "". */
static bool read_short_text(json_t *object, const char *name, char *out,
                            size_t out_size, char *problem)
{
  json_t *value = json_object_get(object, name);

  out[0] = '\0';
  if (value == NULL)
    return true;
  if (!json_is_string(value) || json_string_length(value) >= out_size) {
    snprintf(problem, PROBLEM_MAX,
             "field '%s' is not a string shorter than %zu bytes", name,
             out_size);
    return false;
  }
  memcpy(out, json_string_value(value), json_string_length(value) + 1);
  return true;
}

/* Decode base64 text into a malloc'd C string. Returns AG_ESTATE when the
 * text is not base64 of a string without NUL bytes. */
static enum ag_code decode_base64_text(const char *text, size_t len, char **out)
{
  size_t padding = 0;

  if (len % 4 != 0 || len > INT_MAX)
    return AG_ESTATE;
  unsigned char *bytes = malloc(len / 4 * 3 + 1);
  if (bytes == NULL)
    return AG_ENOMEM;

  /* EVP_DecodeBlock counts the padding as zero bytes. */
  int decoded = EVP_DecodeBlock(bytes, (const unsigned char *)text, (int)len);
  while (padding < len && padding < 2 && text[len - 1 - padding] == '=')
    padding++;
  if (decoded < 0 || (size_t)decoded < padding ||
      memchr(bytes, '\0', (size_t)decoded - padding) != NULL) {
    free(bytes);
    return AG_ESTATE;
  }
  bytes[(size_t)decoded - padding] = '\0';
  *out = (char *)bytes;
  return AG_OK;
}

/* Read a text field stored under name or name + "_b64" into a malloc'd
 * string, where a missing field reads as NULL. Returns AG_ESTATE with
 * problem set, or AG_ENOMEM. */
static enum ag_code read_text(json_t *object, const char *name, char **out,
                              char *problem)
{
  char b64_name[32];
  json_t *value = json_object_get(object, name);
  bool is_b64 = value == NULL;
  enum ag_code code;

  *out = NULL;
  snprintf(b64_name, sizeof(b64_name), "%s_b64", name);
  if (is_b64)
    value = json_object_get(object, b64_name);
  if (value == NULL)
    return AG_OK;
  if (!json_is_string(value)) {
    snprintf(problem, PROBLEM_MAX, "field '%s' is not a string",
             is_b64 ? b64_name : name);
    return AG_ESTATE;
  }

  if (is_b64) {
    code = decode_base64_text(json_string_value(value),
                              json_string_length(value), out);
  } else {
    size_t len = json_string_length(value);

    *out = malloc(len + 1);
    code = *out != NULL ? AG_OK : AG_ENOMEM;
    if (*out != NULL)
      memcpy(*out, json_string_value(value), len + 1);
  }
  if (code == AG_ESTATE)
    snprintf(problem, PROBLEM_MAX, "field '%s' is not valid base64 text",
             b64_name);
  return code;
}

/* Read "v" and "state", which every record must have. */
static bool read_version_and_state(json_t *object,
                                   struct manifest_record *record,
                                   char *problem)
{
  json_t *version = json_object_get(object, "v");
  const char *state = json_string_value(json_object_get(object, "state"));

  if (!json_is_integer(version) || json_integer_value(version) < 1) {
    snprintf(problem, PROBLEM_MAX, "it has no valid format version 'v'");
    return false;
  }
  if (json_integer_value(version) > RECORD_VERSION) {
    snprintf(problem, PROBLEM_MAX,
             "its format version %" JSON_INTEGER_FORMAT
             " is newer than this agent reads (%d)",
             json_integer_value(version), RECORD_VERSION);
    return false;
  }

  for (int i = MANIFEST_SEEN; state != NULL && i <= MANIFEST_FAILED; i++) {
    if (strcmp(state, manifest_state_name((enum manifest_state)i)) == 0) {
      record->state = (enum manifest_state)i;
      return true;
    }
  }
  snprintf(problem, PROBLEM_MAX, "it has no known state");
  return false;
}

/* Fill record from a JSON object. Returns AG_ESTATE with problem set, or
 * AG_ENOMEM. */
static enum ag_code read_fields(json_t *object, struct manifest_record *record,
                                char *problem)
{
  int64_t size = 0;
  int64_t attempts = 0;
  int64_t hook_attempts = 0;
  int64_t archive_attempts = 0;

  if (!read_version_and_state(object, record, problem) ||
      !read_integer(object, "size", 0, INT64_MAX, &size, problem) ||
      !read_integer(object, "mtime", INT64_MIN, INT64_MAX, &record->mtime,
                    problem) ||
      !read_integer(object, "first_seen", INT64_MIN, INT64_MAX,
                    &record->first_seen, problem) ||
      !read_integer(object, "updated", INT64_MIN, INT64_MAX, &record->updated,
                    problem) ||
      !read_integer(object, "attempts", 0, UINT32_MAX, &attempts, problem) ||
      !read_short_text(object, "sha256", record->sha256, sizeof(record->sha256),
                       problem) ||
      !read_short_text(object, "format", record->format, sizeof(record->format),
                       problem) ||
      !read_boolean(object, "hook_done", &record->hook_done, problem) ||
      !read_integer(object, "hook_attempts", 0, UINT32_MAX, &hook_attempts,
                    problem) ||
      !read_integer(object, "hook_retry_at", INT64_MIN, INT64_MAX,
                    &record->hook_retry_at, problem) ||
      !read_integer(object, "archive_attempts", 0, UINT32_MAX,
                    &archive_attempts, problem))
    return AG_ESTATE;
  record->size = (uint64_t)size;
  record->attempts = (uint32_t)attempts;
  record->hook_attempts = (uint32_t)hook_attempts;
  record->archive_attempts = (uint32_t)archive_attempts;

  if (record->sha256[0] != '\0' && !manifest_is_sha256_hex(record->sha256)) {
    snprintf(problem, PROBLEM_MAX,
             "field 'sha256' is not 64 lowercase hex digits");
    return AG_ESTATE;
  }

  enum ag_code code = read_text(object, "output", &record->output, problem);
  if (code == AG_OK)
    code = read_text(object, "archive_path", &record->archive_path, problem);
  if (code == AG_OK)
    code = read_text(object, "reason", &record->reason, problem);
  if (code == AG_OK)
    code = read_text(object, "hook_error", &record->hook_error, problem);
  if (code == AG_OK)
    code = read_text(object, "archive_error", &record->archive_error, problem);
  if (code == AG_OK)
    code = read_text(object, "claim_path", &record->claim_path, problem);
  if (code == AG_OK)
    code = read_text(object, "output_temp", &record->output_temp, problem);
  if (code == AG_OK)
    code = read_text(object, "sidecar_temp", &record->sidecar_temp, problem);
  return code;
}

/* Decode the stored value of key into record. On failure the record is
 * left cleared and err names the key. */
enum ag_code manifest_record_decode(const struct manifest *manifest,
                                    const MDB_val *key, const MDB_val *value,
                                    struct manifest_record *record,
                                    struct ag_error *err)
{
  char problem[PROBLEM_MAX] = "";
  char key_text[KEY_TEXT_MAX];
  json_error_t json_error;
  enum ag_code code = AG_ESTATE;

  memset(record, 0, sizeof(*record));
  json_t *object = json_loadb(value->mv_data, value->mv_size, 0, &json_error);
  if (object == NULL)
    snprintf(problem, sizeof(problem), "it is not JSON (%s)", json_error.text);
  else if (!json_is_object(object))
    snprintf(problem, sizeof(problem), "it is not a JSON object");
  else
    code = read_fields(object, record, problem);
  json_decref(object);
  if (code == AG_OK)
    return AG_OK;

  manifest_record_clear(record);
  log_escape(key_text, sizeof(key_text), key->mv_data, key->mv_size);
  if (code == AG_ENOMEM)
    return ag_error_set(err, AG_ENOMEM,
                        "out of memory while reading the manifest record "
                        "for '%s'",
                        key_text);
  return ag_error_set(err, AG_ESTATE,
                      "manifest '%s' has an invalid record for '%s' because "
                      "%s. %s",
                      manifest->db_path, key_text, problem,
                      MANIFEST_REBUILD_ADVICE);
}
