/* Unit tests for config.c: defaults, stored values, parse errors with
 * file and line, whole-config validation, secret files and name
 * selection. Every test writes its config into a fresh temporary folder. */
#include "agent/config.h"

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXAMPLE_CONFIG TEST_DATA_DIR "/../../conf/agent.conf.example"

/* Sizes of the temporary folder's name and of paths built inside it. */
#define DIR_SIZE 256
#define PATH_SIZE 512

/* A fingerprint as 'ssh-keygen -lf KEY' prints it: "SHA256:" and 43
 * base64 characters. */
#define FINGERPRINT "SHA256:HGzYX5qtdehCdsZfOt/sAVru9AugXA1Jvu8vTf/PpQA"

struct fixture {
  char dir[DIR_SIZE];
  char config_path[PATH_SIZE];
  struct config *config;
  struct ag_error err;
};

/* The smallest valid config. Tests append lines to it or leave one key
 * out, so that each test shows only what it changes. */
static const char *const base_lines[] = {
    "[server]",
    "host = 127.0.0.1",
    "user = rossum",
    "private_key = /etc/agent/id_ed25519",
    "known_hosts = /etc/agent/known_hosts",
    "[remote]",
    "inbox = /export",
    "archive = /archive",
    "error = /error",
    "[local]",
    "state_dir = /var/lib/agent",
    "output_dir = /var/lib/agent/outbox",
};

#define BASE_LINE_COUNT ((int)(sizeof(base_lines) / sizeof(base_lines[0])))

static int setup(void **state)
{
  struct fixture *f = calloc(1, sizeof(*f));

  if (f == NULL)
    return -1;
  if (make_temp_dir("test_config", f->dir, sizeof(f->dir)) != 0) {
    free(f);
    return -1;
  }
  snprintf(f->config_path, sizeof(f->config_path), "%s/agent.conf", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;

  config_free(f->config);
  remove_tree(f->dir);
  free(f);
  return 0;
}

/* Write text to dir/name with the given mode and store the full path in
 * path_out. */
static void write_in_dir(const struct fixture *f, const char *name,
                         const char *text, mode_t mode, char *path_out,
                         size_t path_size)
{
  join_path(path_out, path_size, f->dir, name);
  write_text_file(path_out, text, mode);
}

/* Return whether a config line sets key. */
static int line_sets_key(const char *line, const char *key)
{
  size_t len = strlen(key);

  return strncmp(line, key, len) == 0 && line[len] == ' ';
}

/* Write the base config without the line that sets skip_key (if any),
 * followed by extra, and load it. */
static enum ag_code load_base(struct fixture *f, const char *skip_key,
                              const char *extra)
{
  char text[8192] = "";
  size_t used = 0;

  for (int i = 0; i < BASE_LINE_COUNT; i++) {
    if (skip_key != NULL && line_sets_key(base_lines[i], skip_key))
      continue;
    used += (size_t)snprintf(text + used, sizeof(text) - used, "%s\n",
                             base_lines[i]);
  }
  snprintf(text + used, sizeof(text) - used, "%s", extra);
  write_text_file(f->config_path, text, 0600);
  return config_load(f->config_path, &f->config, &f->err);
}

/* Return "CONFIG:LINE: ", the prefix of a parse error message. */
static const char *line_prefix(const struct fixture *f, int line)
{
  static char prefix[PATH_SIZE + 32];

  snprintf(prefix, sizeof(prefix), "%s:%d: ", f->config_path, line);
  return prefix;
}

/* Load the base config plus extra, which must fail at line (counted in
 * the whole file) with a message that contains detail. */
static void expect_line_error(struct fixture *f, const char *extra, int line,
                              const char *detail)
{
  assert_int_equal(load_base(f, NULL, extra), AG_ECONFIG);
  assert_null(f->config);
  assert_int_equal(f->err.code, AG_ECONFIG);
  assert_contains(f->err.message, line_prefix(f, line));
  assert_contains(f->err.message, detail);
}

/* Load the base config without skip_key plus extra, which must fail
 * validation with a message that names the file and contains detail. */
static void expect_invalid(struct fixture *f, const char *skip_key,
                           const char *extra, const char *detail)
{
  char file_prefix[PATH_SIZE + 4];

  assert_int_equal(load_base(f, skip_key, extra), AG_ECONFIG);
  assert_null(f->config);
  snprintf(file_prefix, sizeof(file_prefix), "%s: ", f->config_path);
  assert_contains(f->err.message, file_prefix);
  assert_contains(f->err.message, detail);
}

/* Replace every occurrence of from in text with to, into out. */
static void replace_all(const char *text, const char *from, const char *to,
                        char *out, size_t out_size)
{
  size_t from_len = strlen(from);
  size_t used = 0;

  while (*text != '\0') {
    if (strncmp(text, from, from_len) == 0) {
      used += (size_t)snprintf(out + used, out_size - used, "%s", to);
      text += from_len;
    } else {
      used += (size_t)snprintf(out + used, out_size - used, "%c", *text);
      text++;
    }
    assert_true(used < out_size);
  }
  out[used] = '\0';
}

static void test_example_loads(void **state)
{
  struct fixture *f = *state;
  char *example = read_file(EXAMPLE_CONFIG, NULL);
  char etc[PATH_SIZE + 2];
  char var[PATH_SIZE + 8];
  char step[65536];
  char text[65536];
  char expected[PATH_SIZE + 32];

  /* Move the example's local paths into the temporary folder. */
  snprintf(etc, sizeof(etc), "%s/", f->dir);
  snprintf(var, sizeof(var), "%s/state", f->dir);
  replace_all(example, "/etc/rossum-sftp-agent/", etc, step, sizeof(step));
  replace_all(step, "/var/lib/rossum-sftp-agent", var, text, sizeof(text));
  free(example);
  write_text_file(f->config_path, text, 0600);

  assert_int_equal(config_load(f->config_path, &f->config, &f->err), AG_OK);
  struct config *c = f->config;
  assert_string_equal(c->path, f->config_path);
  assert_string_equal(c->host, "sftp.example.com");
  assert_int_equal(c->port, 22);
  assert_string_equal(c->user, "rossum");
  snprintf(expected, sizeof(expected), "%s/id_ed25519", f->dir);
  assert_string_equal(c->private_key, expected);
  snprintf(expected, sizeof(expected), "%s/known_hosts", f->dir);
  assert_string_equal(c->known_hosts, expected);
  assert_null(c->passphrase_file);
  assert_null(c->password_file);
  assert_null(c->host_key_sha256);
  assert_null(c->passphrase);
  assert_null(c->password);
  assert_int_equal(c->timeout, 30);
  assert_string_equal(c->inbox, "/export");
  assert_string_equal(c->archive, "/export/archive");
  assert_string_equal(c->error, "/export/error");
  assert_int_equal(c->include_count, 2);
  assert_string_equal(c->include[0], "*.xml");
  assert_string_equal(c->include[1], "*.csv");
  assert_int_equal(c->exclude_count, 0);
  assert_int_equal(c->stable_seconds, 10);
  assert_false(c->recursive);
  assert_int_equal(c->max_files_per_poll, 0);
  assert_null(c->archive_layout);
  assert_int_equal(c->on_success, ON_SUCCESS_MOVE);
  snprintf(expected, sizeof(expected), "%s/state", f->dir);
  assert_string_equal(c->state_dir, expected);
  snprintf(expected, sizeof(expected), "%s/state/outbox", f->dir);
  assert_string_equal(c->output_dir, expected);
  assert_int_equal(c->poll_interval, 30);
  assert_int_equal(c->log_level, LOG_LEVEL_INFO);
}

static void test_defaults_minimal(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(load_base(f, NULL, ""), AG_OK);
  struct config *c = f->config;
  assert_int_equal(c->port, 22);
  assert_int_equal(c->timeout, 30);
  assert_int_equal(c->stable_seconds, 10);
  assert_int_equal(c->include_count, 2);
  assert_string_equal(c->include[0], "*.xml");
  assert_string_equal(c->include[1], "*.csv");
  assert_int_equal(c->exclude_count, 0);
  assert_false(c->recursive);
  assert_int_equal(c->on_success, ON_SUCCESS_MOVE);
  assert_int_equal(c->log_level, LOG_LEVEL_INFO);
  assert_int_equal(c->poll_interval, 30);
  assert_int_equal(c->max_files_per_poll, 0);
  assert_null(c->archive_layout);
  assert_null(c->host_key_sha256);
  assert_null(c->password_file);
  assert_null(c->passphrase_file);
}

static void test_every_key_stored(void **state)
{
  struct fixture *f = *state;
  char passphrase_path[PATH_SIZE];
  char password_path[PATH_SIZE];
  char text[8192];

  write_in_dir(f, "passphrase", "key phrase\n", 0600, passphrase_path,
               sizeof(passphrase_path));
  write_in_dir(f, "password", "pass word\n", 0400, password_path,
               sizeof(password_path));
  snprintf(text, sizeof(text),
           "; a comment\n"
           "[server]\n"
           "host = sftp.internal\n"
           "port = 2222\n"
           "user = exporter\n"
           "private_key = /keys/id_rsa\n"
           "passphrase_file = %s\n"
           "password_file = %s\n"
           "known_hosts = /keys/known_hosts\n"
           "host_key_sha256 = " FINGERPRINT "\n"
           "timeout = 3600\n"
           "[remote]\n"
           "inbox = /data/in/\n"
           "archive = /data/done//\n"
           "error = /data/failed/\n"
           "include = *.xml   invoice-?.csv\t[ab]*.XML\n"
           "exclude = *.tmp.xml draft-*\n"
           "stable_seconds = 0\n"
           "recursive = yes\n"
           "max_files_per_poll = 1000000\n"
           "archive_layout = %%Y/%%m/%%d\n"
           "on_success = keep\n"
           "[local]\n"
           "state_dir = /srv/agent/\n"
           "output_dir = /srv/out\n"
           "[agent]\n"
           "poll_interval = 86400\n"
           "log_level = debug\n",
           passphrase_path, password_path);
  write_text_file(f->config_path, text, 0600);

  assert_int_equal(config_load(f->config_path, &f->config, &f->err), AG_OK);
  struct config *c = f->config;
  assert_string_equal(c->host, "sftp.internal");
  assert_int_equal(c->port, 2222);
  assert_string_equal(c->user, "exporter");
  assert_string_equal(c->private_key, "/keys/id_rsa");
  assert_string_equal(c->passphrase_file, passphrase_path);
  assert_string_equal(c->password_file, password_path);
  assert_string_equal(c->known_hosts, "/keys/known_hosts");
  assert_string_equal(c->host_key_sha256, FINGERPRINT);
  assert_int_equal(c->timeout, 3600);
  assert_string_equal(c->passphrase, "key phrase");
  assert_string_equal(c->password, "pass word");
  assert_string_equal(c->inbox, "/data/in");
  assert_string_equal(c->archive, "/data/done");
  assert_string_equal(c->error, "/data/failed");
  assert_int_equal(c->include_count, 3);
  assert_string_equal(c->include[0], "*.xml");
  assert_string_equal(c->include[1], "invoice-?.csv");
  assert_string_equal(c->include[2], "[ab]*.XML");
  assert_int_equal(c->exclude_count, 2);
  assert_string_equal(c->exclude[0], "*.tmp.xml");
  assert_string_equal(c->exclude[1], "draft-*");
  assert_int_equal(c->stable_seconds, 0);
  assert_true(c->recursive);
  assert_int_equal(c->max_files_per_poll, 1000000);
  assert_string_equal(c->archive_layout, "%Y/%m/%d");
  assert_int_equal(c->on_success, ON_SUCCESS_KEEP);
  /* Local paths are stored as written. Only remote paths lose a
   * trailing '/'. */
  assert_string_equal(c->state_dir, "/srv/agent/");
  assert_string_equal(c->output_dir, "/srv/out");
  assert_int_equal(c->poll_interval, 86400);
  assert_int_equal(c->log_level, LOG_LEVEL_DEBUG);
}

static void test_remote_root_kept(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(load_base(f, "inbox", "[remote]\ninbox = /\n"), AG_OK);
  assert_string_equal(f->config->inbox, "/");
}

static void test_bool_spellings(void **state)
{
  struct fixture *f = *state;
  static const struct {
    const char *text;
    bool value;
  } cases[] = {
      {"yes", true}, {"true", true},   {"on", true},   {"1", true},
      {"no", false}, {"false", false}, {"off", false}, {"0", false},
  };

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char extra[64];

    snprintf(extra, sizeof(extra), "[remote]\nrecursive = %s\n", cases[i].text);
    assert_int_equal(load_base(f, NULL, extra), AG_OK);
    assert_int_equal(f->config->recursive, cases[i].value);
    config_free(f->config);
    f->config = NULL;
  }
}

static void test_on_success_values(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(load_base(f, NULL, "[remote]\non_success = delete\n"),
                   AG_OK);
  assert_int_equal(f->config->on_success, ON_SUCCESS_DELETE);
}

static void test_missing_file(void **state)
{
  struct fixture *f = *state;
  char path[PATH_SIZE + 16];

  snprintf(path, sizeof(path), "%s/absent.conf", f->dir);
  assert_int_equal(config_load(path, &f->config, &f->err), AG_ECONFIG);
  assert_null(f->config);
  assert_contains(f->err.message, path);
  assert_contains(f->err.message, "No such file");
}

static void test_unknown_key(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[agent]\ncolour = blue\n", BASE_LINE_COUNT + 2,
                    "unknown key 'colour' in section [agent]");
}

static void test_wrong_section(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[agent]\nport = 22\n", BASE_LINE_COUNT + 2,
                    "key 'port' belongs in section [server], not [agent]");
}

static void test_duplicate_key(void **state)
{
  struct fixture *f = *state;
  char detail[64];

  snprintf(detail, sizeof(detail), "'port' is set twice (first on line %d)",
           BASE_LINE_COUNT + 2);
  expect_line_error(f, "[server]\nport = 22\nport = 23\n", BASE_LINE_COUNT + 3,
                    detail);
}

static void test_duplicate_base_key(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[server]\nhost = other\n", BASE_LINE_COUNT + 2,
                    "'host' is set twice (first on line 2)");
}

static void test_invalid_int(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[server]\ntimeout = 10s\n", BASE_LINE_COUNT + 2,
                    "invalid value '10s' for 'timeout': expected a whole "
                    "number from 1 to 3600");
}

static void test_empty_int(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[remote]\nstable_seconds =\n", BASE_LINE_COUNT + 2,
                    "from 0 to 86400");
}

static void test_port_too_large(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[server]\nport = 65536\n", BASE_LINE_COUNT + 2,
                    "invalid value '65536' for 'port': expected a whole "
                    "number from 1 to 65535");
}

static void test_port_zero(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[server]\nport = 0\n", BASE_LINE_COUNT + 2,
                    "from 1 to 65535");
}

static void test_int_overflow(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[agent]\npoll_interval = 99999999999999999999\n",
                    BASE_LINE_COUNT + 2, "from 1 to 86400");
}

static void test_invalid_bool(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[remote]\nrecursive = maybe\n", BASE_LINE_COUNT + 2,
                    "invalid value 'maybe' for 'recursive': use yes or no");
}

static void test_invalid_on_success(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[remote]\non_success = copy\n", BASE_LINE_COUNT + 2,
                    "invalid value 'copy' for 'on_success': use one of move, "
                    "delete, keep");
}

static void test_invalid_log_level(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[agent]\nlog_level = verbose\n", BASE_LINE_COUNT + 2,
                    "invalid value 'verbose' for 'log_level': use one of "
                    "error, warn, info, debug");
}

static void test_relative_local_path(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[server]\npassphrase_file = secrets/phrase\n",
                    BASE_LINE_COUNT + 2,
                    "'passphrase_file' must be an absolute path, not "
                    "'secrets/phrase'");
}

static void test_relative_remote_path(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(load_base(f, "inbox", "[remote]\ninbox = export/in\n"),
                   AG_ECONFIG);
  assert_null(f->config);
  /* Leaving out one base line moves the appended lines up by one. */
  assert_contains(f->err.message, line_prefix(f, BASE_LINE_COUNT + 1));
  assert_contains(f->err.message, "'inbox' must be an absolute remote path, "
                                  "not 'export/in'");
}

static void test_empty_value(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[remote]\nexclude = x\narchive_layout =\n",
                    BASE_LINE_COUNT + 3, "'archive_layout' is empty");
}

static void test_password_rejected(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[server]\npassword = Tr0ub4dor-secret\n",
                    BASE_LINE_COUNT + 2, "password_file");
  assert_contains(f->err.message, "secrets are not allowed");
  assert_not_contains(f->err.message, "Tr0ub4dor");
}

static void test_passphrase_rejected(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[agent]\npassphrase = Tr0ub4dor-secret\n",
                    BASE_LINE_COUNT + 2, "passphrase_file");
  assert_not_contains(f->err.message, "Tr0ub4dor");
}

static void test_secret_in_bad_line(void **state)
{
  struct fixture *f = *state;

  /* A line without '=' is a syntax error, and the message must not echo
   * it, because it may hold a secret. */
  expect_line_error(f, "[server]\npassword Tr0ub4dor-secret\n",
                    BASE_LINE_COUNT + 2, "syntax error");
  assert_not_contains(f->err.message, "Tr0ub4dor");
}

/* Return "# xxx...\n" whose content (without the newline) is length
 * characters long. */
static char *comment_line(size_t length)
{
  char *line = malloc(length + 2);

  assert_non_null(line);
  line[0] = '#';
  memset(line + 1, 'x', length - 1);
  line[length] = '\n';
  line[length + 1] = '\0';
  return line;
}

static void test_line_at_limit(void **state)
{
  struct fixture *f = *state;
  char *line = comment_line(198);

  assert_int_equal(load_base(f, NULL, line), AG_OK);
  free(line);
}

static void test_line_too_long(void **state)
{
  struct fixture *f = *state;
  char extra[512];
  char *line = comment_line(199);

  snprintf(extra, sizeof(extra), "[agent]\n%s", line);
  free(line);
  expect_line_error(f, extra, BASE_LINE_COUNT + 2,
                    "line is longer than 198 characters");
}

static void test_last_line_at_limit(void **state)
{
  struct fixture *f = *state;
  char *line = comment_line(198);

  /* The final line has no newline, so the end of the file ends it. */
  line[198] = '\0';
  assert_int_equal(load_base(f, NULL, line), AG_OK);
  free(line);
}

static void test_syntax_error(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[agent]\n\nthis line has no equals sign\n",
                    BASE_LINE_COUNT + 3,
                    "syntax error; expected '[section]', 'key = value' or a "
                    "comment");
}

static void test_unclosed_section(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[agent\n", BASE_LINE_COUNT + 1, "syntax error");
}

static void test_first_error_wins(void **state)
{
  struct fixture *f = *state;

  /* inih keeps parsing after a syntax error, but the later invalid port
   * must not hide it. */
  expect_line_error(f, "[agent]\nbroken\n[server]\nport = x\n",
                    BASE_LINE_COUNT + 2, "syntax error");
}

static void test_key_error_before_syntax(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[server]\nport = x\nbroken\n", BASE_LINE_COUNT + 2,
                    "invalid value 'x' for 'port'");
}

static void test_syntax_before_long_line(void **state)
{
  struct fixture *f = *state;
  char extra[512];
  char *line = comment_line(250);

  snprintf(extra, sizeof(extra), "[agent]\nbroken\n%s", line);
  free(line);
  expect_line_error(f, extra, BASE_LINE_COUNT + 2, "syntax error");
}

static void test_indented_lines(void **state)
{
  struct fixture *f = *state;

  /* Indented keys are plain keys, not continuations of the value above. */
  assert_int_equal(load_base(f, NULL,
                             "  [server]\n"
                             "  port = 2222\n"
                             "\t timeout = 5\n"
                             "  # comment\n"),
                   AG_OK);
  assert_int_equal(f->config->port, 2222);
  assert_int_equal(f->config->timeout, 5);
}

static void test_continuation_rejected(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[remote]\ninclude = *.xml\n  *.csv\n",
                    BASE_LINE_COUNT + 3, "syntax error");
}

static void test_missing_host(void **state)
{
  struct fixture *f = *state;

  expect_invalid(f, "host", "", "[server] host is missing");
}

static void test_missing_user(void **state)
{
  struct fixture *f = *state;

  expect_invalid(f, "user", "", "[server] user is missing");
}

static void test_missing_output_dir(void **state)
{
  struct fixture *f = *state;

  expect_invalid(f, "output_dir", "", "[local] output_dir is missing");
}

static void test_missing_login(void **state)
{
  struct fixture *f = *state;

  expect_invalid(f, "private_key", "",
                 "no login method; set [server] private_key or "
                 "password_file");
}

static void test_missing_host_key(void **state)
{
  struct fixture *f = *state;

  expect_invalid(f, "known_hosts", "",
                 "set [server] known_hosts or "
                 "host_key_sha256");
}

static void test_passphrase_without_key(void **state)
{
  struct fixture *f = *state;
  char password_path[PATH_SIZE];
  char passphrase_path[PATH_SIZE];
  char extra[3 * PATH_SIZE];

  write_in_dir(f, "password", "pw\n", 0600, password_path,
               sizeof(password_path));
  write_in_dir(f, "passphrase", "pp\n", 0600, passphrase_path,
               sizeof(passphrase_path));
  snprintf(extra, sizeof(extra),
           "[server]\npassword_file = %s\npassphrase_file = %s\n",
           password_path, passphrase_path);
  expect_invalid(f, "private_key", extra,
                 "passphrase_file is set but private_key is not");
}

static void test_inbox_is_archive(void **state)
{
  struct fixture *f = *state;

  expect_invalid(f, "archive", "[remote]\narchive = /export/\n",
                 "inbox, archive and error must be three different folders");
}

static void test_error_is_archive(void **state)
{
  struct fixture *f = *state;

  expect_invalid(f, "error", "[remote]\nerror = /archive\n",
                 "three different folders");
}

static void test_inbox_in_archive(void **state)
{
  struct fixture *f = *state;

  expect_invalid(f, "inbox", "[remote]\ninbox = /archive/in\n",
                 "the inbox cannot be inside the archive or error folder");
}

static void test_inbox_in_error(void **state)
{
  struct fixture *f = *state;

  expect_invalid(f, "inbox", "[remote]\ninbox = /error/x/y\n",
                 "cannot be inside");
}

static void test_archive_in_inbox(void **state)
{
  struct fixture *f = *state;

  /* The reverse is allowed: the walk skips archive and error folders
   * inside the inbox. */
  assert_int_equal(
      load_base(f, "archive", "[remote]\narchive = /export/archive\n"), AG_OK);
}

static void test_sibling_prefix(void **state)
{
  struct fixture *f = *state;

  /* "/archive2" shares a prefix with "/archive" but is not inside it. */
  assert_int_equal(load_base(f, "inbox", "[remote]\ninbox = /archive2\n"),
                   AG_OK);
}

static void test_output_is_state(void **state)
{
  struct fixture *f = *state;

  expect_invalid(f, "output_dir", "[local]\noutput_dir = /var/lib/agent\n",
                 "output_dir must differ from state_dir");
}

/* Load the base config with password login from a secret file written
 * with the given content and mode. */
static enum ag_code load_password(struct fixture *f, const char *content,
                                  mode_t mode, char *path, size_t path_size)
{
  char extra[PATH_SIZE + 32];

  write_in_dir(f, "password", content, mode, path, path_size);
  snprintf(extra, sizeof(extra), "[server]\npassword_file = %s\n", path);
  return load_base(f, "private_key", extra);
}

static void test_password_file_read(void **state)
{
  struct fixture *f = *state;
  char path[PATH_SIZE];

  assert_int_equal(
      load_password(f, "s3cret pass\nsecond line\n", 0600, path, sizeof(path)),
      AG_OK);
  assert_string_equal(f->config->password, "s3cret pass");
  assert_null(f->config->passphrase);
}

static void test_password_file_crlf(void **state)
{
  struct fixture *f = *state;
  char path[PATH_SIZE];

  assert_int_equal(load_password(f, "s3cret\r\n", 0600, path, sizeof(path)),
                   AG_OK);
  assert_string_equal(f->config->password, "s3cret");
}

static void test_password_no_newline(void **state)
{
  struct fixture *f = *state;
  char path[PATH_SIZE];

  assert_int_equal(load_password(f, "s3cret", 0600, path, sizeof(path)), AG_OK);
  assert_string_equal(f->config->password, "s3cret");
}

static void test_secret_mode_0644(void **state)
{
  struct fixture *f = *state;
  char path[PATH_SIZE];

  assert_int_equal(load_password(f, "s3cret\n", 0644, path, sizeof(path)),
                   AG_ECONFIG);
  assert_null(f->config);
  assert_contains(f->err.message, path);
  assert_contains(f->err.message, "mode 0644");
  assert_contains(f->err.message, "chmod 600");
  assert_not_contains(f->err.message, "s3cret");
}

static void test_secret_group_write(void **state)
{
  struct fixture *f = *state;
  char path[PATH_SIZE];

  assert_int_equal(load_password(f, "s3cret\n", 0620, path, sizeof(path)),
                   AG_ECONFIG);
  assert_contains(f->err.message, "chmod 600");
}

static void test_secret_missing(void **state)
{
  struct fixture *f = *state;
  char path[PATH_SIZE + 16];
  char extra[PATH_SIZE + 64];

  snprintf(path, sizeof(path), "%s/no-such-secret", f->dir);
  snprintf(extra, sizeof(extra), "[server]\npassword_file = %s\n", path);
  assert_int_equal(load_base(f, "private_key", extra), AG_ECONFIG);
  assert_null(f->config);
  assert_contains(f->err.message, path);
  assert_contains(f->err.message, "No such file");
}

static void test_secret_empty(void **state)
{
  struct fixture *f = *state;
  char path[PATH_SIZE];

  assert_int_equal(load_password(f, "", 0600, path, sizeof(path)), AG_ECONFIG);
  assert_contains(f->err.message, path);
  assert_contains(f->err.message, "one line of 1 to 4096 bytes");
}

static void test_secret_blank_line(void **state)
{
  struct fixture *f = *state;
  char path[PATH_SIZE];

  assert_int_equal(load_password(f, "\nsecond\n", 0600, path, sizeof(path)),
                   AG_ECONFIG);
  assert_contains(f->err.message, "one line of 1 to 4096 bytes");
  assert_not_contains(f->err.message, "second");
}

static void test_passphrase_file_read(void **state)
{
  struct fixture *f = *state;
  char path[PATH_SIZE];
  char extra[PATH_SIZE + 32];

  write_in_dir(f, "passphrase", "key phrase\n", 0600, path, sizeof(path));
  snprintf(extra, sizeof(extra), "[server]\npassphrase_file = %s\n", path);
  assert_int_equal(load_base(f, NULL, extra), AG_OK);
  assert_string_equal(f->config->passphrase, "key phrase");
  assert_null(f->config->password);
}

static void test_fingerprint_only(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(load_base(f, "known_hosts",
                             "[server]\nhost_key_sha256 = " FINGERPRINT "\n"),
                   AG_OK);
  assert_string_equal(f->config->host_key_sha256, FINGERPRINT);
  assert_null(f->config->known_hosts);
}

static void test_fingerprint_invalid(void **state)
{
  struct fixture *f = *state;
  static const char *const values[] = {
      /* no prefix */
      "HGzYX5qtdehCdsZfOt/sAVru9AugXA1Jvu8vTf/PpQA",
      /* lowercase prefix */
      "sha256:HGzYX5qtdehCdsZfOt/sAVru9AugXA1Jvu8vTf/PpQA",
      /* one character short */
      "SHA256:HGzYX5qtdehCdsZfOt/sAVru9AugXA1Jvu8vTf/PpQ",
      /* with base64 padding, one character long */
      "SHA256:HGzYX5qtdehCdsZfOt/sAVru9AugXA1Jvu8vTf/PpQA=",
      /* a hex MD5 fingerprint */
      "MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48",
      /* base64url instead of base64 */
      "SHA256:HGzYX5qtdehCdsZfOt_sAVru9AugXA1Jvu8vTf-PpQA",
  };

  for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
    char extra[128];

    snprintf(extra, sizeof(extra), "[server]\nhost_key_sha256 = %s\n",
             values[i]);
    ag_error_clear(&f->err);
    expect_line_error(f, extra, BASE_LINE_COUNT + 2, "host_key_sha256");
    assert_contains(f->err.message, values[i]);
  }
}

static void test_layout_accepted(void **state)
{
  struct fixture *f = *state;
  static const char *const values[] = {"%Y/%m/%d", "%Y-%j", "y%Y/%H_x",
                                       "fixed"};

  for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
    char extra[128];

    snprintf(extra, sizeof(extra), "[remote]\narchive_layout = %s\n",
             values[i]);
    assert_int_equal(load_base(f, NULL, extra), AG_OK);
    assert_string_equal(f->config->archive_layout, values[i]);
    config_free(f->config);
    f->config = NULL;
  }
}

static void test_layout_rejected(void **state)
{
  struct fixture *f = *state;
  static const char *const values[] = {
      "%s", "../x", "%Y/../x", "/%Y", "%Y//%m", "%Y/%", "%%", "a b", "%Y\\%m"};

  for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
    char extra[128];

    snprintf(extra, sizeof(extra), "[remote]\narchive_layout = %s\n",
             values[i]);
    ag_error_clear(&f->err);
    expect_line_error(f, extra, BASE_LINE_COUNT + 2, "invalid archive_layout");
  }
}

static void test_ciphers_stored(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(load_base(f, NULL, ""), AG_OK);
  assert_null(f->config->ciphers);
  config_free(f->config);
  f->config = NULL;

  assert_int_equal(
      load_base(f, NULL,
                "[server]\nciphers = aes128-gcm@openssh.com,aes256-ctr\n"),
      AG_OK);
  assert_string_equal(f->config->ciphers, "aes128-gcm@openssh.com,aes256-ctr");
}

static void test_ciphers_rejected(void **state)
{
  struct fixture *f = *state;
  static const char *const cases[][2] = {
      {"aes128-gcm@openssh.com,,aes256-ctr", "separated by single commas"},
      {",aes256-ctr", "separated by single commas"},
      {"aes256-ctr,", "separated by single commas"},
      {"aes128-gcm@openssh.com, aes256-ctr", "no spaces"},
      {"aes256-ctr,aes128-ctr,aes256-ctr", "'aes256-ctr' is listed twice"},
      {"aes256-ctr,a\xc3\xa4s", "only printable ASCII"},
      {"aes256-ctr,"
       "a1234567890123456789012345678901234567890123456789012345678901234",
       "1 to 64 characters"},
  };

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char extra[256];

    snprintf(extra, sizeof(extra), "[server]\nciphers = %s\n", cases[i][0]);
    ag_error_clear(&f->err);
    expect_line_error(f, extra, BASE_LINE_COUNT + 2, "invalid ciphers");
    assert_contains(f->err.message, cases[i][1]);
  }
}

static void test_name_default_patterns(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(load_base(f, NULL, ""), AG_OK);
  assert_true(config_name_selected(f->config, "invoice.xml"));
  assert_true(config_name_selected(f->config, "rows.csv"));
  assert_true(config_name_selected(f->config, ".hidden.xml"));
  assert_false(config_name_selected(f->config, "invoice.xml.part"));
  assert_false(config_name_selected(f->config, "notes.txt"));
  assert_false(config_name_selected(f->config, "xml"));
}

static void test_name_include_exclude(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(load_base(f, NULL,
                             "[remote]\n"
                             "include = export-*.xml [ab]?.csv\n"
                             "exclude = *-draft.xml b*\n"),
                   AG_OK);
  assert_true(config_name_selected(f->config, "export-1.xml"));
  assert_true(config_name_selected(f->config, "a1.csv"));
  assert_false(config_name_selected(f->config, "b1.csv"));
  assert_false(config_name_selected(f->config, "c1.csv"));
  assert_false(config_name_selected(f->config, "a12.csv"));
  assert_false(config_name_selected(f->config, "export-1-draft.xml"));
  assert_false(config_name_selected(f->config, "other.xml"));
}

static void test_name_empty_include(void **state)
{
  struct fixture *f = *state;

  /* A blank include would select every file, so it is rejected. */
  assert_int_equal(load_base(f, NULL, "[remote]\ninclude =\nexclude = *.tmp\n"),
                   AG_ECONFIG);
  assert_contains(f->err.message, "'include' has no pattern");
}

static void test_delimiter_words(void **state)
{
  struct fixture *f = *state;
  static const struct {
    const char *text;
    enum csv_delimiter expected;
  } cases[] = {
      {"[csv]\ndelimiter = semicolon\n", CSV_DELIMITER_SEMICOLON},
      {"[csv]\ndelimiter =;\n", CSV_DELIMITER_SEMICOLON},
      {"[csv]\ndelimiter = ,\n", CSV_DELIMITER_COMMA},
      {"[csv]\ndelimiter = tab\n", CSV_DELIMITER_TAB},
      {"[csv]\ndelimiter = auto\n", CSV_DELIMITER_AUTO},
  };

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    config_free(f->config);
    f->config = NULL;
    assert_int_equal(load_base(f, NULL, cases[i].text), AG_OK);
    assert_int_equal(f->config->delimiter, cases[i].expected);
  }
}

static void test_name_case_ignored(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(load_base(f, NULL, "[remote]\ninclude = *.xml\n"), AG_OK);
  assert_true(config_name_selected(f->config, "EXPORT.XML"));
  assert_true(config_name_selected(f->config, "export.Xml"));
  assert_false(config_name_selected(f->config, "export.xml.part"));
}

static void test_too_many_patterns(void **state)
{
  struct fixture *f = *state;
  char extra[1024] = "[remote]\ninclude =";

  for (int i = 0; i <= CONFIG_MAX_PATTERNS; i++) {
    char pattern[16];

    snprintf(pattern, sizeof(pattern), " p%d", i);
    strcat(extra, pattern);
  }
  strcat(extra, "\n");
  expect_line_error(f, extra, BASE_LINE_COUNT + 2,
                    "too many patterns for 'include'");
}

static void test_hook_stored(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(load_base(f, NULL,
                             "[hook]\n"
                             "exec = /opt/hooks/notify 'two words' -v\n"
                             "timeout = 5\n"),
                   AG_OK);
  assert_string_equal(f->config->hook_exec, "/opt/hooks/notify 'two words' -v");
  assert_int_equal(f->config->hook_timeout, 5);
}

static void test_hook_defaults(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(load_base(f, NULL, ""), AG_OK);
  assert_null(f->config->hook_exec);
  assert_int_equal(f->config->hook_timeout, 60);
}

static void test_hook_relative_program(void **state)
{
  struct fixture *f = *state;

  expect_invalid(f, NULL, "[hook]\nexec = notify.sh --all\n",
                 "[hook] exec must start with the absolute path of a "
                 "program, not 'notify.sh'");
}

static void test_hook_unclosed_quote(void **state)
{
  struct fixture *f = *state;

  expect_invalid(f, NULL, "[hook]\nexec = /opt/notify \"to x\n",
                 "[hook] exec has a \" quote that is not closed");
}

static void test_hook_timeout_bounds(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[hook]\ntimeout = 0\n", BASE_LINE_COUNT + 2,
                    "expected a whole number from 1 to 86400");
}

static void test_claim_defaults(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(load_base(f, NULL, ""), AG_OK);
  assert_null(f->config->claim_dir);
  assert_int_equal(f->config->claim_timeout, 900);
}

static void test_claim_stored(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(
      load_base(f, NULL,
                "[remote]\nclaim_dir = /claims/\nclaim_timeout = 90\n"),
      AG_OK);
  assert_string_equal(f->config->claim_dir, "/claims");
  assert_int_equal(f->config->claim_timeout, 90);
}

static void test_claim_dir_in_inbox(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[remote]\nclaim_dir = /export/claims\n",
                    BASE_LINE_COUNT + 2,
                    "claim_dir '/export/claims' is inside the inbox "
                    "'/export'");
}

static void test_claim_dir_is_inbox(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[remote]\nclaim_dir = /export\n", BASE_LINE_COUNT + 2,
                    "is inside the inbox");
}

static void test_claim_dir_in_archive(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[remote]\nclaim_dir = /archive/claims\n",
                    BASE_LINE_COUNT + 2, "inside the archive or error folder");
}

static void test_claim_dir_beside_inbox(void **state)
{
  struct fixture *f = *state;

  /* "/export-claims" shares a prefix with "/export" but is not inside. */
  assert_int_equal(load_base(f, NULL, "[remote]\nclaim_dir = /export-claims\n"),
                   AG_OK);
}

static void test_claim_needs_move(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[remote]\non_success = delete\nclaim_dir = /claims\n",
                    BASE_LINE_COUNT + 3, "claim_dir needs on_success = move");
}

static void test_claim_timeout_short(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f,
                    "[remote]\nclaim_dir = /claims\nclaim_timeout = 89\n"
                    "[agent]\npoll_interval = 30\n",
                    BASE_LINE_COUNT + 3,
                    "claim_timeout = 89 is too short: it must be at least 3 "
                    "times the longer of poll_interval and stable_seconds, "
                    "here 90 s");
}

static void test_claim_timeout_at_minimum(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(load_base(f, NULL,
                             "[remote]\nclaim_dir = /claims\n"
                             "claim_timeout = 90\n[agent]\npoll_interval = "
                             "30\n"),
                   AG_OK);
}

static void test_claim_timeout_settle(void **state)
{
  struct fixture *f = *state;

  /* The settle wait counts like the poll interval. */
  expect_line_error(f,
                    "[remote]\nclaim_dir = /claims\nclaim_timeout = 200\n"
                    "stable_seconds = 100\n",
                    BASE_LINE_COUNT + 3, "here 300 s");
}

static void test_claim_default_timeout_short(void **state)
{
  struct fixture *f = *state;

  /* The default timeout is reported on the line of claim_dir. */
  expect_line_error(f,
                    "[remote]\nclaim_dir = /claims\n[agent]\npoll_interval "
                    "= 600\n",
                    BASE_LINE_COUNT + 2,
                    "claim_timeout = 900 (the default) is too short");
}

static void test_claim_timeout_without_dir(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[remote]\nclaim_timeout = 600\n", BASE_LINE_COUNT + 2,
                    "claim_timeout is set but claim_dir is not");
}

static void test_claim_timeout_bounds(void **state)
{
  struct fixture *f = *state;

  expect_line_error(f, "[remote]\nclaim_dir = /claims\nclaim_timeout = 9\n",
                    BASE_LINE_COUNT + 3,
                    "expected a whole number from 10 to 604800");
}

static void test_free_null(void **state)
{
  (void)state;
  config_free(NULL);
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
      TEST(test_example_loads),
      TEST(test_defaults_minimal),
      TEST(test_every_key_stored),
      TEST(test_remote_root_kept),
      TEST(test_bool_spellings),
      TEST(test_on_success_values),
      TEST(test_missing_file),
      TEST(test_unknown_key),
      TEST(test_wrong_section),
      TEST(test_duplicate_key),
      TEST(test_duplicate_base_key),
      TEST(test_invalid_int),
      TEST(test_empty_int),
      TEST(test_port_too_large),
      TEST(test_port_zero),
      TEST(test_int_overflow),
      TEST(test_invalid_bool),
      TEST(test_invalid_on_success),
      TEST(test_invalid_log_level),
      TEST(test_relative_local_path),
      TEST(test_relative_remote_path),
      TEST(test_empty_value),
      TEST(test_password_rejected),
      TEST(test_passphrase_rejected),
      TEST(test_secret_in_bad_line),
      TEST(test_line_at_limit),
      TEST(test_line_too_long),
      TEST(test_last_line_at_limit),
      TEST(test_syntax_error),
      TEST(test_unclosed_section),
      TEST(test_first_error_wins),
      TEST(test_key_error_before_syntax),
      TEST(test_syntax_before_long_line),
      TEST(test_indented_lines),
      TEST(test_continuation_rejected),
      TEST(test_missing_host),
      TEST(test_missing_user),
      TEST(test_missing_output_dir),
      TEST(test_missing_login),
      TEST(test_missing_host_key),
      TEST(test_passphrase_without_key),
      TEST(test_inbox_is_archive),
      TEST(test_error_is_archive),
      TEST(test_inbox_in_archive),
      TEST(test_inbox_in_error),
      TEST(test_archive_in_inbox),
      TEST(test_sibling_prefix),
      TEST(test_output_is_state),
      TEST(test_password_file_read),
      TEST(test_password_file_crlf),
      TEST(test_password_no_newline),
      TEST(test_secret_mode_0644),
      TEST(test_secret_group_write),
      TEST(test_secret_missing),
      TEST(test_secret_empty),
      TEST(test_secret_blank_line),
      TEST(test_passphrase_file_read),
      TEST(test_fingerprint_only),
      TEST(test_fingerprint_invalid),
      TEST(test_layout_accepted),
      TEST(test_layout_rejected),
      TEST(test_ciphers_stored),
      TEST(test_ciphers_rejected),
      TEST(test_name_default_patterns),
      TEST(test_name_include_exclude),
      TEST(test_name_empty_include),
      TEST(test_name_case_ignored),
      TEST(test_delimiter_words),
      TEST(test_too_many_patterns),
      TEST(test_hook_stored),
      TEST(test_hook_defaults),
      TEST(test_hook_relative_program),
      TEST(test_hook_unclosed_quote),
      TEST(test_hook_timeout_bounds),
      TEST(test_claim_defaults),
      TEST(test_claim_stored),
      TEST(test_claim_dir_in_inbox),
      TEST(test_claim_dir_is_inbox),
      TEST(test_claim_dir_in_archive),
      TEST(test_claim_dir_beside_inbox),
      TEST(test_claim_needs_move),
      TEST(test_claim_timeout_short),
      TEST(test_claim_timeout_at_minimum),
      TEST(test_claim_timeout_settle),
      TEST(test_claim_default_timeout_short),
      TEST(test_claim_timeout_without_dir),
      TEST(test_claim_timeout_bounds),
      TEST(test_free_null),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
