/* Configuration: one table of keys, an INI parser that reports file and
 * line, and whole-config validation. */
#include "agent/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "agent/hook.h"
#include "agent/mapping.h"
#include "agent/platform.h"

enum key_type {
  KEY_STRING,      /* free text */
  KEY_LOCAL_PATH,  /* absolute local path */
  KEY_REMOTE_PATH, /* absolute remote path, stored without trailing '/' */
  KEY_INT,         /* integer within [min, max] */
  KEY_BOOL,        /* yes/no, true/false, on/off, 1/0 */
  KEY_PATTERNS,    /* space-separated wildcard patterns */
  KEY_CHOICE,      /* one word of a list, stored as its index in an int */
  KEY_FINGERPRINT, /* SHA256:<base64> */
  KEY_ALGORITHMS,  /* comma-separated SSH algorithm names */
  KEY_LAYOUT       /* strftime subset for archive date folders */
};

struct key_spec {
  const char *section;
  const char *name;
  enum key_type type;
  size_t offset;   /* of the value in struct config */
  size_t count_at; /* KEY_PATTERNS: offset of the count */
  long min;        /* KEY_INT bounds */
  long max;
  const char *fallback;       /* default as config text, or NULL for none */
  const char *const *choices; /* KEY_CHOICE: NULL-terminated words */
};

#define FIELD(name) offsetof(struct config, name)
#define STRING(section, name, type)                                            \
  {                                                                            \
    section, #name, type, FIELD(name), 0, 0, 0, NULL, NULL                     \
  }
#define NUMBER(section, name, min, max, fallback)                              \
  {                                                                            \
    section, #name, KEY_INT, FIELD(name), 0, min, max, fallback, NULL          \
  }
#define BOOLEAN(section, name, fallback)                                       \
  {                                                                            \
    section, #name, KEY_BOOL, FIELD(name), 0, 0, 0, fallback, NULL             \
  }
#define PATTERNS(section, name, fallback)                                      \
  {                                                                            \
    section, #name, KEY_PATTERNS, FIELD(name), FIELD(name##_count), 0, 0,      \
        fallback, NULL                                                         \
  }
#define CHOICE(section, name, words, fallback)                                 \
  {                                                                            \
    section, #name, KEY_CHOICE, FIELD(name), 0, 0, 0, fallback, words          \
  }

/* Words of each KEY_CHOICE key, in the order of the matching enum. */
static const char *const on_success_words[] = {"move", "delete", "keep", NULL};
static const char *const log_level_words[] = {"error", "warn", "info", "debug",
                                              NULL};
static const char *const log_target_words[] = {"stderr", "syslog", "file",
                                               NULL};
/* Words, because inih reads " ;" as the start of a comment; "," and ";"
 * written without a space before them are accepted too. */
static const char *const delimiter_words[] = {"comma", "semicolon", "tab",
                                              "auto", NULL};

/* Every key the agent reads. Anything else is rejected, so a typo never
 * silently falls back to a default. */
static const struct key_spec keys[] = {
    STRING("server", host, KEY_STRING),
    NUMBER("server", port, 1, 65535, "22"),
    STRING("server", user, KEY_STRING),
    STRING("server", private_key, KEY_LOCAL_PATH),
    STRING("server", passphrase_file, KEY_LOCAL_PATH),
    STRING("server", password_file, KEY_LOCAL_PATH),
    STRING("server", known_hosts, KEY_LOCAL_PATH),
    STRING("server", host_key_sha256, KEY_FINGERPRINT),
    NUMBER("server", timeout, 1, 3600, "30"),
    STRING("server", ciphers, KEY_ALGORITHMS),
    STRING("remote", inbox, KEY_REMOTE_PATH),
    STRING("remote", archive, KEY_REMOTE_PATH),
    STRING("remote", error, KEY_REMOTE_PATH),
    PATTERNS("remote", include, "*.xml *.csv"),
    PATTERNS("remote", exclude, NULL),
    PATTERNS("remote", passthrough, NULL),
    NUMBER("remote", stable_seconds, 0, 86400, "10"),
    BOOLEAN("remote", recursive, "no"),
    NUMBER("remote", max_files_per_poll, 0, 1000000, "0"),
    NUMBER("remote", parallel, 1, 16, "4"),
    STRING("remote", archive_layout, KEY_LAYOUT),
    CHOICE("remote", on_success, on_success_words, "move"),
    NUMBER("remote", archive_alert_after, 1, 1000000, "5"),
    STRING("remote", claim_dir, KEY_REMOTE_PATH),
    NUMBER("remote", claim_timeout, 10, 604800, "900"),
    STRING("local", state_dir, KEY_LOCAL_PATH),
    STRING("local", output_dir, KEY_LOCAL_PATH),
    NUMBER("agent", poll_interval, 1, 86400, "30"),
    CHOICE("agent", log_level, log_level_words, "info"),
    CHOICE("agent", log_target, log_target_words, "stderr"),
    STRING("agent", log_file, KEY_LOCAL_PATH),
    STRING("agent", metrics_file, KEY_LOCAL_PATH),
    NUMBER("agent", keepalive_interval, 0, 3600, "30"),
    NUMBER("agent", reconnect_base, 1, 3600, "1"),
    NUMBER("agent", reconnect_max, 1, 86400, "300"),
    CHOICE("csv", delimiter, delimiter_words, "comma"),
    STRING("csv", encoding, KEY_STRING),
    STRING("csv", group_by, KEY_STRING),
    {"hook", "exec", KEY_STRING, FIELD(hook_exec), 0, 0, 0, NULL, NULL},
    {"hook", "timeout", KEY_INT, FIELD(hook_timeout), 0, 1, 86400, "60", NULL},
    NUMBER("manifest", retention_days, 0, 36500, "90"),
    NUMBER("manifest", delivered_hash_retention_days, 0, 36500, "365"),
};

#define KEY_COUNT (sizeof(keys) / sizeof(keys[0]))

/* Keys that would put a secret into the config text, with the key that
 * replaces each. */
static const char *const secret_keys[][2] = {
    {"password", "password_file"},
    {"passphrase", "passphrase_file"},
};

struct parse_state {
  struct config *config;
  struct ag_error *err;
  FILE *file;
  int line;            /* line the current chunk started on */
  int at_line_start;   /* the next chunk starts a new line */
  int too_long;        /* a line exceeded INI_MAX_LINE */
  int error_line;      /* line of the first error set_error() recorded */
  int seen[KEY_COUNT]; /* line where each key was set, or 0 */
};

/* Read one line for inih and count lines, because Debian's libinih is
 * built without passing line numbers to the handler. */
static char *read_line(char *buffer, int size, void *stream)
{
  struct parse_state *state = stream;

  if (fgets(buffer, size, state->file) == NULL)
    return NULL;
  if (state->at_line_start)
    state->line++;
  size_t len = strlen(buffer);
  state->at_line_start = len > 0 && buffer[len - 1] == '\n';
  if (!state->at_line_start && !feof(state->file)) {
    state->too_long = 1;
    return NULL;
  }

  /* inih reads an indented line as the continuation of the previous
   * value, which would report an indented key as a duplicate of the key
   * above it. With the indent removed, inih parses each line on its own. */
  size_t indent = strspn(buffer, " \t");
  if (indent > 0)
    memmove(buffer, buffer + indent, len - indent + 1);
  return buffer;
}

/* Record a config error at the current line; returns 0 so that inih's
 * handler can `return set_error(...)`. */
static int set_error(struct parse_state *state, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static int set_error(struct parse_state *state, const char *format, ...)
{
  char detail[512];
  va_list args;

  va_start(args, format);
  vsnprintf(detail, sizeof(detail), format, args);
  va_end(args);
  if (state->err->code == AG_OK)
    state->error_line = state->line;
  ag_error_set(state->err, AG_ECONFIG, "%s:%d: %s", state->config->path,
               state->line, detail);
  return 0;
}

static int parse_bool(const char *value, bool *out)
{
  static const char *const yes[] = {"yes", "true", "on", "1"};
  static const char *const no[] = {"no", "false", "off", "0"};

  for (size_t i = 0; i < 4; i++) {
    if (strcmp(value, yes[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcmp(value, no[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  return -1;
}

/* Split value at spaces into the pattern array of spec. */
static int store_patterns(struct parse_state *state,
                          const struct key_spec *spec, const char *value)
{
  char **patterns = (char **)((char *)state->config + spec->offset);
  size_t *count = (size_t *)((char *)state->config + spec->count_at);
  const char *p = value;

  for (size_t i = 0; i < *count; i++) {
    free(patterns[i]);
    patterns[i] = NULL;
  }
  *count = 0;
  while (*p != '\0') {
    size_t len = strcspn(p, " \t");
    if (len > 0) {
      if (*count == CONFIG_MAX_PATTERNS)
        return set_error(state,
                         "too many patterns for '%s' (the maximum is "
                         "32)",
                         spec->name);
      patterns[*count] = strndup(p, len);
      if (patterns[*count] == NULL)
        return set_error(state, "out of memory");
      (*count)++;
    }
    p += len;
    p += strspn(p, " \t");
  }
  /* An empty include would select every file, which is never what a
   * blank value means. */
  if (*count == 0)
    return set_error(state,
                     "'%s' has no pattern; give at least one, or remove the "
                     "line for the default",
                     spec->name);
  return 1;
}

static int check_fingerprint(struct parse_state *state, const char *value)
{
  const char *prefix = "SHA256:";
  size_t len = strlen(value);

  if (strncmp(value, prefix, 7) != 0 || len != 7 + 43)
    return set_error(state,
                     "invalid host_key_sha256 '%s': expected 'SHA256:' and 43 "
                     "base64 characters, as 'ssh-keygen -lf KEY' prints",
                     value);
  for (size_t i = 7; i < len; i++) {
    if (!isalnum((unsigned char)value[i]) && value[i] != '+' && value[i] != '/')
      return set_error(state,
                       "invalid base64 character in host_key_sha256 "
                       "'%s'",
                       value);
  }
  return 1;
}

/* Check the form of a list of SSH algorithm names: names of 1 to 64
 * printable ASCII characters without spaces, separated by single commas,
 * none twice (RFC 4251, section 6). Whether libssh2 supports each name is
 * checked when the agent connects. */
static int check_algorithms(struct parse_state *state,
                            const struct key_spec *spec, const char *value)
{
  const char *name = value;

  for (;;) {
    size_t len = strcspn(name, ",");
    if (len == 0 || len > 64)
      return set_error(state,
                       "invalid %s '%s': expected names of 1 to 64 "
                       "characters separated by single commas, such as "
                       "'aes128-gcm@openssh.com,aes256-ctr'",
                       spec->name, value);
    for (size_t i = 0; i < len; i++) {
      if (name[i] <= ' ' || name[i] > '~')
        return set_error(state,
                         "invalid %s '%s': names may contain only "
                         "printable ASCII characters, no spaces",
                         spec->name, value);
    }
    for (const char *earlier = value; earlier < name;) {
      size_t earlier_len = strcspn(earlier, ",");
      if (earlier_len == len && memcmp(earlier, name, len) == 0)
        return set_error(state, "invalid %s '%s': '%.*s' is listed twice",
                         spec->name, value, (int)len, name);
      earlier += earlier_len + 1;
    }
    if (name[len] == '\0')
      return 1;
    name += len + 1;
  }
}

/* Allow only the date conversions that make sense as folder names. */
static int check_layout(struct parse_state *state, const char *value)
{
  for (const char *p = value; *p != '\0'; p++) {
    if (*p == '%') {
      p++;
      if (*p == '\0' || strchr("YmdHj", *p) == NULL)
        return set_error(state,
                         "invalid archive_layout '%s': only %%Y %%m %%d %%H "
                         "%%j, '/', letters, digits, '-' and '_' are "
                         "allowed",
                         value);
    } else if (!isalnum((unsigned char)*p) && strchr("/-_", *p) == NULL) {
      return set_error(state,
                       "invalid archive_layout '%s': only %%Y %%m %%d %%H %%j, "
                       "'/', letters, digits, '-' and '_' are allowed",
                       value);
    }
  }
  if (value[0] == '/' || strstr(value, "//") != NULL)
    return set_error(state,
                     "invalid archive_layout '%s': it is relative to "
                     "the archive folder and has no empty parts",
                     value);
  return 1;
}

static int store_int(struct parse_state *state, const struct key_spec *spec,
                     const char *value)
{
  char *end = NULL;

  errno = 0;
  long number = strtol(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || number < spec->min ||
      number > spec->max) {
    return set_error(state,
                     "invalid value '%s' for '%s': expected a whole number "
                     "from %ld to %ld",
                     value, spec->name, spec->min, spec->max);
  }
  *(int *)((char *)state->config + spec->offset) = (int)number;
  return 1;
}

static int store_string(struct parse_state *state, const struct key_spec *spec,
                        const char *value)
{
  char **slot = (char **)((char *)state->config + spec->offset);
  size_t len = strlen(value);

  if (len == 0)
    return set_error(state,
                     "'%s' is empty; give a value or remove the "
                     "line",
                     spec->name);
  if (spec->type == KEY_LOCAL_PATH && !plat_path_is_absolute(value))
    return set_error(state, "'%s' must be an absolute path, not '%s'",
                     spec->name, value);
  if (spec->type == KEY_REMOTE_PATH) {
    if (value[0] != '/')
      return set_error(state, "'%s' must be an absolute remote path, not '%s'",
                       spec->name, value);
    while (len > 1 && value[len - 1] == '/')
      len--;
  }
  if (spec->type == KEY_FINGERPRINT && !check_fingerprint(state, value))
    return 0;
  if (spec->type == KEY_LAYOUT && !check_layout(state, value))
    return 0;
  if (spec->type == KEY_ALGORITHMS && !check_algorithms(state, spec, value))
    return 0;

  free(*slot);
  *slot = strndup(value, len);
  if (*slot == NULL)
    return set_error(state, "out of memory");
  return 1;
}

static int store_choice(struct parse_state *state, const struct key_spec *spec,
                        const char *value)
{
  char words[128] = "";

  if (spec->choices == delimiter_words && strcmp(value, ",") == 0)
    value = "comma";
  else if (spec->choices == delimiter_words && strcmp(value, ";") == 0)
    value = "semicolon";

  for (int i = 0; spec->choices[i] != NULL; i++) {
    if (strcmp(value, spec->choices[i]) == 0) {
      *(int *)((char *)state->config + spec->offset) = i;
      return 1;
    }
    snprintf(words + strlen(words), sizeof(words) - strlen(words), "%s%s",
             i == 0 ? "" : ", ", spec->choices[i]);
  }
  return set_error(state, "invalid value '%s' for '%s': use one of %s", value,
                   spec->name, words);
}

static int store_value(struct parse_state *state, const struct key_spec *spec,
                       const char *value)
{
  char *base = (char *)state->config;

  switch (spec->type) {
  case KEY_INT:
    return store_int(state, spec, value);
  case KEY_BOOL:
    if (parse_bool(value, (bool *)(base + spec->offset)) != 0)
      return set_error(state, "invalid value '%s' for '%s': use yes or no",
                       value, spec->name);
    return 1;
  case KEY_PATTERNS:
    return store_patterns(state, spec, value);
  case KEY_CHOICE:
    return store_choice(state, spec, value);
  case KEY_STRING:
  case KEY_LOCAL_PATH:
  case KEY_REMOTE_PATH:
  case KEY_FINGERPRINT:
  case KEY_ALGORITHMS:
  case KEY_LAYOUT:
    return store_string(state, spec, value);
  }
  return 0;
}

/* Store one [mapping] line: "name = new_name", or "name = -" to drop. */
static int store_mapping(struct parse_state *state, const char *name,
                         const char *value)
{
  struct config *config = state->config;

  if (value[0] == '\0')
    return set_error(state,
                     "mapping for '%s' is empty; give the new name, or '-' "
                     "to drop the field",
                     name);
  for (size_t i = 0; i < config->mapping_count; i++) {
    if (strcmp(config->mapping[i].from, name) == 0)
      return set_error(state, "mapping for '%s' is given twice", name);
  }
  if (config->mapping_count == CONFIG_MAX_MAPPINGS)
    return set_error(state, "too many [mapping] entries (the maximum is %d)",
                     CONFIG_MAX_MAPPINGS);

  struct config_mapping *entry = &config->mapping[config->mapping_count];
  entry->from = strdup(name);
  entry->to = strcmp(value, "-") == 0 ? NULL : strdup(value);
  if (entry->from == NULL || (entry->to == NULL && strcmp(value, "-") != 0)) {
    free(entry->from);
    free(entry->to);
    return set_error(state, "out of memory");
  }
  config->mapping_count++;
  return 1;
}

static int handle_key(void *user, const char *section, const char *name,
                      const char *value)
{
  struct parse_state *state = user;

  if (state->err->code != AG_OK)
    return 0;
  for (size_t i = 0; i < sizeof(secret_keys) / sizeof(secret_keys[0]); i++) {
    if (strcmp(name, secret_keys[i][0]) == 0)
      return set_error(state,
                       "secrets are not allowed in the config text; put the "
                       "%s in a file only the agent can read and set '%s'",
                       name, secret_keys[i][1]);
  }

  if (strcmp(section, "mapping") == 0)
    return store_mapping(state, name, value);

  for (size_t i = 0; i < KEY_COUNT; i++) {
    if (strcmp(section, keys[i].section) != 0 ||
        strcmp(name, keys[i].name) != 0)
      continue;
    if (state->seen[i] != 0)
      return set_error(state, "'%s' is set twice (first on line %d)", name,
                       state->seen[i]);
    state->seen[i] = state->line;
    return store_value(state, &keys[i], value);
  }

  for (size_t i = 0; i < KEY_COUNT; i++) {
    if (strcmp(name, keys[i].name) == 0)
      return set_error(state, "key '%s' belongs in section [%s], not [%s]",
                       name, keys[i].section, section);
  }
  return set_error(state,
                   "unknown key '%s' in section [%s]; see "
                   "conf/agent.conf.example for the valid keys",
                   name, section);
}

/* Fill in defaults for keys the file did not set. */
static enum ag_code apply_defaults(struct parse_state *state)
{
  int saved_line = state->line;

  state->line = 0;
  for (size_t i = 0; i < KEY_COUNT; i++) {
    if (state->seen[i] == 0 && keys[i].fallback != NULL &&
        !store_value(state, &keys[i], keys[i].fallback))
      break;
  }
  state->line = saved_line;
  return state->err->code;
}

static bool path_is_within(const char *path, const char *dir)
{
  size_t len = strlen(dir);

  if (strcmp(dir, "/") == 0)
    return true;
  return strncmp(path, dir, len) == 0 &&
         (path[len] == '/' || path[len] == '\0');
}

/* The CSV encodings the agent converts, by their iconv names. Windows
 * builds map each to its code page. */
static const char *const encodings[] = {
    "utf-8",        "windows-1250", "windows-1251", "windows-1252",
    "windows-1257", "iso-8859-1",   "iso-8859-2",   "iso-8859-15",
};

static bool encoding_supported(const char *name)
{
  for (size_t i = 0; i < sizeof(encodings) / sizeof(encodings[0]); i++) {
    if (strcasecmp(name, encodings[i]) == 0)
      return true;
  }
  return false;
}

/* Check that [hook] exec, when set, splits into a command as it will run.
 * NOTE: the program is not looked up here, so a missing or non-executable
 * one shows only when it runs, as a failed run. */
static enum ag_code validate_hook(const struct config *config,
                                  struct ag_error *err)
{
  struct ag_error split_err = {0};
  char **words = NULL;
  size_t count = 0;

  if (config->hook_exec == NULL)
    return AG_OK;
  enum ag_code code =
      hook_split_command(config->hook_exec, &words, &count, &split_err);
  free(words);
  if (code != AG_OK)
    return ag_error_set(err, code, "%s: %s", config->path, split_err.message);
  return AG_OK;
}

/* Check what no single key can check: required keys and how keys relate. */
static enum ag_code validate(struct config *config, struct ag_error *err)
{
  static const struct {
    size_t offset;
    const char *name;
  } required[] = {
      {FIELD(host), "[server] host"},
      {FIELD(user), "[server] user"},
      {FIELD(inbox), "[remote] inbox"},
      {FIELD(archive), "[remote] archive"},
      {FIELD(error), "[remote] error"},
      {FIELD(state_dir), "[local] state_dir"},
      {FIELD(output_dir), "[local] output_dir"},
  };
  const char *file = config->path;

  for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
    if (*(char **)((char *)config + required[i].offset) == NULL)
      return ag_error_set(err, AG_ECONFIG, "%s: %s is missing", file,
                          required[i].name);
  }
  if (config->private_key == NULL && config->password_file == NULL)
    return ag_error_set(err, AG_ECONFIG,
                        "%s: no login method; set [server] private_key or "
                        "password_file",
                        file);
  if (config->known_hosts == NULL && config->host_key_sha256 == NULL)
    return ag_error_set(err, AG_ECONFIG,
                        "%s: the server's host key cannot be verified; set "
                        "[server] known_hosts or host_key_sha256",
                        file);
  if (config->passphrase_file != NULL && config->private_key == NULL)
    return ag_error_set(err, AG_ECONFIG,
                        "%s: passphrase_file is set but private_key is not",
                        file);

  if (strcmp(config->archive, config->inbox) == 0 ||
      strcmp(config->error, config->inbox) == 0 ||
      strcmp(config->archive, config->error) == 0)
    return ag_error_set(err, AG_ECONFIG,
                        "%s: inbox, archive and error must be three different "
                        "folders",
                        file);
  if (path_is_within(config->inbox, config->archive) ||
      path_is_within(config->inbox, config->error))
    return ag_error_set(err, AG_ECONFIG,
                        "%s: the inbox cannot be inside the archive or error "
                        "folder",
                        file);
  if (config->log_target == LOG_TARGET_FILE && config->log_file == NULL)
    return ag_error_set(err, AG_ECONFIG,
                        "%s: log_target = file needs [agent] log_file", file);
  if (config->reconnect_max < config->reconnect_base)
    return ag_error_set(err, AG_ECONFIG,
                        "%s: reconnect_max (%d) is less than reconnect_base "
                        "(%d)",
                        file, config->reconnect_max, config->reconnect_base);
  if (config->encoding != NULL && !encoding_supported(config->encoding))
    return ag_error_set(err, AG_ECONFIG,
                        "%s: unsupported [csv] encoding '%s'; use one of %s",
                        file, config->encoding, CONFIG_ENCODINGS);
  if (strcmp(config->output_dir, config->state_dir) == 0)
    return ag_error_set(err, AG_ECONFIG,
                        "%s: output_dir must differ from state_dir", file);
  return validate_hook(config, err);
}

/* Return the line where [section] name was set, or 0 when the file did
 * not set it. */
static int key_line(const struct parse_state *state, const char *section,
                    const char *name)
{
  for (size_t i = 0; i < KEY_COUNT; i++) {
    if (strcmp(keys[i].section, section) == 0 &&
        strcmp(keys[i].name, name) == 0)
      return state->seen[i];
  }
  return 0;
}

/* Check claim_dir and claim_timeout against the other keys, and report a
 * problem on the line of the key at fault. */
static enum ag_code validate_claims(struct parse_state *state)
{
  const struct config *config = state->config;
  int dir_line = key_line(state, "remote", "claim_dir");
  int timeout_line = key_line(state, "remote", "claim_timeout");

  if (config->claim_dir == NULL) {
    state->line = timeout_line;
    if (timeout_line != 0)
      set_error(state, "claim_timeout is set but claim_dir is not; set "
                       "[remote] claim_dir or remove claim_timeout");
    return state->err->code;
  }

  state->line = dir_line;
  if (path_is_within(config->claim_dir, config->inbox))
    set_error(state,
              "claim_dir '%s' is inside the inbox '%s', where agents would "
              "list claimed files as new ones; choose a folder outside it",
              config->claim_dir, config->inbox);
  else if (path_is_within(config->claim_dir, config->archive) ||
           path_is_within(config->claim_dir, config->error))
    set_error(state,
              "claim_dir '%s' is inside the archive or error folder; choose "
              "a folder of its own",
              config->claim_dir);
  else if (config->on_success != ON_SUCCESS_MOVE)
    set_error(state,
              "claim_dir needs on_success = move, because a file that is "
              "kept, or left in place after a failure, would stay in the "
              "claim folder and other agents would take it again");
  if (state->err->code != AG_OK)
    return state->err->code;

  /* A running agent writes a heartbeat once a quarter of claim_timeout
   * has passed, at the start of a pass or before a file. Passes come
   * poll_interval apart and the settle wait writes none, so with this
   * minimum a running agent's heartbeat is at most 7/12 of the timeout
   * old, plus the time one file takes. */
  int longest = config->poll_interval > config->stable_seconds
                    ? config->poll_interval
                    : config->stable_seconds;
  if (config->claim_timeout < 3 * longest) {
    state->line = timeout_line != 0 ? timeout_line : dir_line;
    set_error(state,
              "claim_timeout = %d%s is too short: it must be at least 3 times "
              "the longer of poll_interval and stable_seconds, here %d s",
              config->claim_timeout, timeout_line != 0 ? "" : " (the default)",
              3 * longest);
  }
  return state->err->code;
}

static enum ag_code read_secrets(struct config *config, struct ag_error *err)
{
  enum ag_code code = AG_OK;

  if (config->passphrase_file != NULL)
    code = plat_read_secret(config->passphrase_file, &config->passphrase, err);
  if (code == AG_OK && config->password_file != NULL)
    code = plat_read_secret(config->password_file, &config->password, err);
  return code;
}

enum ag_code config_load(const char *path, struct config **out,
                         struct ag_error *err)
{
  struct parse_state state = {.err = err, .at_line_start = 1};
  enum ag_code code = AG_OK;

  *out = NULL;
  state.config = calloc(1, sizeof(*state.config));
  if (state.config == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  state.config->path = strdup(path);
  if (state.config->path == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }

  state.file = plat_fopen(path, "r");
  if (state.file == NULL) {
    code = ag_error_set(err, AG_ECONFIG,
                        "cannot read config file '%s': %s; give another one "
                        "with --config FILE",
                        path, strerror(errno));
    goto out;
  }
  int failed_line = ini_parse_stream(read_line, &state, handle_key, &state);
  fclose(state.file);
  if (failed_line != 0 && failed_line != state.error_line) {
    /* A syntax error came first. inih kept parsing after it, so an error
     * recorded on a later line gives way to it. */
    ag_error_clear(err);
    code = ag_error_set(err, AG_ECONFIG,
                        "%s:%d: syntax error; expected '[section]', "
                        "'key = value' or a comment",
                        path, failed_line);
  } else if (state.too_long) {
    code = ag_error_set(err, AG_ECONFIG,
                        "%s:%d: line is longer than %d characters", path,
                        state.line, INI_MAX_LINE - 2);
  } else if (failed_line != 0) {
    code = err->code;
  }
  if (code != AG_OK)
    goto out;

  code = apply_defaults(&state);
  if (code == AG_OK)
    code = validate(state.config, err);
  if (code == AG_OK)
    code = validate_claims(&state);
  if (code == AG_OK)
    code = mapping_validate(state.config, err);
  if (code == AG_OK)
    code = read_secrets(state.config, err);

out:
  if (code != AG_OK) {
    config_free(state.config);
    return code;
  }
  *out = state.config;
  return AG_OK;
}

static void free_secret(char *secret)
{
  if (secret == NULL)
    return;
  plat_wipe(secret, strlen(secret));
  free(secret);
}

void config_free(struct config *config)
{
  if (config == NULL)
    return;
  free_secret(config->passphrase);
  free_secret(config->password);
  for (size_t i = 0; i < KEY_COUNT; i++) {
    char *base = (char *)config;
    switch (keys[i].type) {
    case KEY_STRING:
    case KEY_LOCAL_PATH:
    case KEY_REMOTE_PATH:
    case KEY_FINGERPRINT:
    case KEY_ALGORITHMS:
    case KEY_LAYOUT:
      free(*(char **)(base + keys[i].offset));
      break;
    case KEY_PATTERNS: {
      char **patterns = (char **)(base + keys[i].offset);
      size_t count = *(size_t *)(base + keys[i].count_at);
      for (size_t j = 0; j < count; j++)
        free(patterns[j]);
      break;
    }
    case KEY_INT:
    case KEY_BOOL:
    case KEY_CHOICE:
      break;
    }
  }
  for (size_t i = 0; i < config->mapping_count; i++) {
    free(config->mapping[i].from);
    free(config->mapping[i].to);
  }
  free(config->path);
  free(config);
}

bool config_name_selected(const struct config *config, const char *name)
{
  bool selected = config->include_count == 0;

  for (size_t i = 0; i < config->include_count && !selected; i++)
    selected = plat_glob_match(config->include[i], name);
  for (size_t i = 0; i < config->exclude_count && selected; i++)
    selected = !plat_glob_match(config->exclude[i], name);
  return selected;
}
