/* Integration tests for the remote module against the OpenSSH sshd that
 * tests/integration/sshd.sh starts on 127.0.0.1.
 *
 * Environment: SSHD_FIXTURE is the fixture folder (its env file names the
 * port, keys and SFTP area), TEST_TMP a scratch folder for this program.
 * The tests write below SFTP_ROOT on the local file system and read back
 * through SFTP, or the other way round, since the server runs here. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/config.h"
#include "agent/error.h"
#include "agent/remote.h"

#include "test_support.h"

#include <openssl/evp.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

#define PATH_SIZE 1024
#define LISTED_MAX 64

struct fixture {
  char host[64];
  char port[16];
  char user[128];
  char dir[PATH_SIZE];
  char root[PATH_SIZE];
  char key_ed25519[PATH_SIZE];
  char key_ecdsa[PATH_SIZE];
  char key_rsa[PATH_SIZE];
  char key_passphrase[PATH_SIZE];
  char passphrase_file[PATH_SIZE];
  char known_hosts[PATH_SIZE];
  char pin_ed25519[128];
  char tmp[PATH_SIZE];
  char passphrase[128];
};

static struct fixture fixture;

/* ---- Fixture and file helpers ----------------------------------------- */

/* Store the value of one KEY='value' line of the fixture's env file. */
static void set_env_value(const char *key, const char *value)
{
  static const struct {
    const char *key;
    size_t offset;
    size_t size;
  } fields[] = {
#define FIELD(name, member)                                                    \
  {name, offsetof(struct fixture, member),                                     \
   sizeof(((struct fixture *)0)->member)}
      FIELD("SSHD_HOST", host),
      FIELD("SSHD_PORT", port),
      FIELD("SSHD_USER", user),
      FIELD("SSHD_DIR", dir),
      FIELD("SFTP_ROOT", root),
      FIELD("KEY_ED25519", key_ed25519),
      FIELD("KEY_ECDSA", key_ecdsa),
      FIELD("KEY_RSA", key_rsa),
      FIELD("KEY_PASSPHRASE", key_passphrase),
      FIELD("PASSPHRASE_FILE", passphrase_file),
      FIELD("KNOWN_HOSTS", known_hosts),
      FIELD("HOSTKEY_SHA256_ED25519", pin_ed25519),
#undef FIELD
  };

  for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
    if (strcmp(fields[i].key, key) == 0)
      format_text((char *)&fixture + fields[i].offset, fields[i].size, "%s",
                  value);
  }
}

static int load_fixture(void **state)
{
  (void)state;
  const char *dir = getenv("SSHD_FIXTURE");
  const char *tmp = getenv("TEST_TMP");
  char path[PATH_SIZE];
  char line[PATH_SIZE + 64];

  if (dir == NULL || tmp == NULL) {
    fprintf(stderr, "SSHD_FIXTURE and TEST_TMP must be set; start a server "
                    "with tests/integration/sshd.sh start DIR\n");
    return -1;
  }
  format_text(path, sizeof(path), "%s/env", dir);
  FILE *file = fopen(path, "r");
  if (file == NULL) {
    fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  while (fgets(line, sizeof(line), file) != NULL) {
    char *equals = strchr(line, '=');
    if (equals == NULL)
      continue;
    *equals = '\0';
    char *value = equals + 1;
    value[strcspn(value, "\n")] = '\0';
    size_t len = strlen(value);
    if (len >= 2 && value[0] == '\'' && value[len - 1] == '\'') {
      value[len - 1] = '\0';
      value++;
    }
    set_env_value(line, value);
  }
  fclose(file);

  format_text(fixture.tmp, sizeof(fixture.tmp), "%s", tmp);
  format_text(line, sizeof(line), "mkdir -p '%s'", tmp);
  if (system(line) != 0)
    return -1;
  char *passphrase = read_file(fixture.passphrase_file, NULL);
  format_text(fixture.passphrase, sizeof(fixture.passphrase), "%s", passphrase);
  free(passphrase);
  return fixture.port[0] != '\0' && fixture.root[0] != '\0' ? 0 : -1;
}

/* Create SFTP_ROOT/name afresh and store its path in out. */
static void fresh_dir(const char *name, char *out, size_t size)
{
  join_path(out, size, fixture.root, name);
  /* The folder may not exist yet, and mkdir() below fails if anything of
   * it is left. */
  (void)remove_tree(out);
  assert_int_equal(mkdir(out, 0755), 0);
}

/* Return the size of the file, or -1 when it is missing. */
static long file_size(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void set_mtime(const char *path, time_t mtime)
{
  struct timespec times[2] = {{.tv_sec = mtime}, {.tv_sec = mtime}};
  assert_int_equal(utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW), 0);
}

/* Run a shell command and store the first line of its output. */
static void capture(const char *command, char *out, size_t size)
{
  FILE *pipe = popen(command, "r");
  assert_non_null(pipe);
  if (fgets(out, (int)size, pipe) == NULL)
    out[0] = '\0';
  out[strcspn(out, "\n")] = '\0';
  assert_int_equal(pclose(pipe), 0);
}

/* Store the fingerprint that ssh-keygen -l prints for a public key. */
static void fingerprint_of(const char *public_key, char *out, size_t size)
{
  char command[PATH_SIZE + 64];
  char line[512];

  format_text(command, sizeof(command), "ssh-keygen -l -f '%s'", public_key);
  capture(command, line, sizeof(line));
  assert_int_equal(sscanf(line, "%*s %127s", out), 1);
  assert_true(size > strlen(out));
}

/* Store "type base64" of a public key file. */
static void key_line_of(const char *public_key, char *out, size_t size)
{
  char type[64], blob[4096];
  char *text = read_file(public_key, NULL);

  assert_int_equal(sscanf(text, "%63s %4095s", type, blob), 2);
  free(text);
  format_text(out, size, "%s %s", type, blob);
}

static void host_key_path(const char *type, char *out, size_t size)
{
  format_text(out, size, "%s/ssh_host_%s_key.pub", fixture.dir, type);
}

/* Write a known_hosts file in TEST_TMP from printf-style text. */
static void write_known_hosts(const char *name, char *path, size_t size,
                              const char *format, ...)
{
  char text[16384];
  va_list args;

  va_start(args, format);
  vsnprintf(text, sizeof(text), format, args);
  va_end(args);
  format_text(path, size, "%s/%s", fixture.tmp, name);
  write_file(path, text, strlen(text));
}

static double seconds_since(const struct timespec *start)
{
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - start->tv_sec) +
         (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* ---- Connection helpers ----------------------------------------------- */

static void base_config(struct config *config, char *private_key)
{
  memset(config, 0, sizeof(*config));
  config->host = fixture.host;
  config->port = atoi(fixture.port);
  config->user = fixture.user;
  config->private_key = private_key;
  config->known_hosts = fixture.known_hosts;
  config->timeout = 10;
}

static struct remote *connect_ok(const struct config *config)
{
  struct ag_error err = {0};
  struct remote *remote = NULL;

  enum ag_code code = remote_connect(config, &remote, &err);
  if (code != AG_OK)
    print_error("remote_connect: %s\n", err.message);
  assert_int_equal(code, AG_OK);
  assert_non_null(remote);
  return remote;
}

static struct remote *connect_default(void)
{
  struct config config;
  base_config(&config, fixture.key_ed25519);
  return connect_ok(&config);
}

/* Connect and expect failure with code. The message goes to err. */
static void connect_fails(const struct config *config, enum ag_code code,
                          struct ag_error *err)
{
  struct remote *remote = (struct remote *)1;

  ag_error_clear(err);
  enum ag_code actual = remote_connect(config, &remote, err);
  print_message("message: %s\n", err->message);
  assert_int_equal(actual, code);
  assert_int_equal(err->code, code);
  assert_null(remote);
}

/* ---- Authentication --------------------------------------------------- */

/* Logging in with key must work, and the SFTP channel must respond. */
static void check_login(char *key)
{
  struct config config;
  struct remote_entry entry;
  struct ag_error err = {0};

  base_config(&config, key);
  if (key == fixture.key_passphrase)
    config.passphrase = fixture.passphrase;
  struct remote *remote = connect_ok(&config);

  assert_int_equal(remote_stat(remote, fixture.root, &entry, &err), AG_OK);
  assert_int_equal(entry.kind, REMOTE_DIR);
  assert_null(entry.rel);
  remote_close(remote);
}

static void login_ed25519_key(void **state)
{
  (void)state;
  check_login(fixture.key_ed25519);
}

static void login_ecdsa_key(void **state)
{
  (void)state;
  check_login(fixture.key_ecdsa);
}

static void login_rsa_key(void **state)
{
  (void)state;
  check_login(fixture.key_rsa);
}

static void login_passphrase_key(void **state)
{
  (void)state;
  check_login(fixture.key_passphrase);
}

static void login_wrong_passphrase_fails(void **state)
{
  (void)state;
  struct config config;
  struct ag_error err;

  base_config(&config, fixture.key_passphrase);
  config.passphrase = "not the passphrase";
  connect_fails(&config, AG_EAUTH, &err);
  assert_contains(err.message, fixture.user);
  assert_contains(err.message, "publickey");
  assert_contains(err.message, fixture.key_passphrase);
  assert_not_contains(err.message, "not the passphrase");
}

static void login_missing_passphrase_fails(void **state)
{
  (void)state;
  struct config config;
  struct ag_error err;

  base_config(&config, fixture.key_passphrase);
  connect_fails(&config, AG_EAUTH, &err);
  assert_contains(err.message, "publickey");
}

static void login_unauthorized_key_fails(void **state)
{
  (void)state;
  struct config config;
  struct ag_error err;
  char key[PATH_SIZE];
  char command[2 * PATH_SIZE];
  char output[64];

  format_text(key, sizeof(key), "%s/unauthorized_key", fixture.tmp);
  format_text(command, sizeof(command),
              "rm -f '%s' '%s.pub' && ssh-keygen -q -t ed25519 -N '' -f '%s' "
              "&& echo done",
              key, key, key);
  capture(command, output, sizeof(output));

  base_config(&config, key);
  connect_fails(&config, AG_EAUTH, &err);
  assert_contains(err.message, "authentication as user");
  assert_contains(err.message, "The server allows: publickey");
}

static void login_password_not_offered(void **state)
{
  (void)state;
  struct config config;
  struct ag_error err;

  /* The fixture disables password logins. */
  base_config(&config, NULL);
  config.password = "secret password";
  connect_fails(&config, AG_EAUTH, &err);
  assert_contains(err.message, "allows publickey");
  assert_not_contains(err.message, "secret password");
}

/* ---- Host key verification -------------------------------------------- */

static void host_key_fingerprint_matches_ssh_keygen(void **state)
{
  (void)state;
  char path[PATH_SIZE];
  char expected[128];

  host_key_path("ed25519", path, sizeof(path));
  fingerprint_of(path, expected, sizeof(expected));
  assert_string_equal(expected, fixture.pin_ed25519);

  struct remote *remote = connect_default();
  assert_string_equal(remote_host_key_fingerprint(remote), expected);
  assert_string_equal(remote_host_key_type(remote), "ssh-ed25519");
  remote_close(remote);
}

/* With only one key type in known_hosts, the server must present that
 * type, although it also has the others. */
static void check_single_type(const char *type, const char *type_name)
{
  struct config config;
  char public_key[PATH_SIZE];
  char key_line[4200];
  char expected[128];
  char known_hosts[PATH_SIZE];

  host_key_path(type, public_key, sizeof(public_key));
  key_line_of(public_key, key_line, sizeof(key_line));
  fingerprint_of(public_key, expected, sizeof(expected));
  write_known_hosts("known_hosts_single", known_hosts, sizeof(known_hosts),
                    "[%s]:%s %s\n", fixture.host, fixture.port, key_line);

  base_config(&config, fixture.key_ed25519);
  config.known_hosts = known_hosts;
  struct remote *remote = connect_ok(&config);
  assert_string_equal(remote_host_key_type(remote), type_name);
  assert_string_equal(remote_host_key_fingerprint(remote), expected);
  remote_close(remote);
}

static void known_hosts_ecdsa_only(void **state)
{
  (void)state;
  check_single_type("ecdsa", "ecdsa-sha2-nistp256");
}

static void known_hosts_rsa_only(void **state)
{
  (void)state;
  check_single_type("rsa", "ssh-rsa");
}

static void known_hosts_hashed(void **state)
{
  (void)state;
  struct config config;
  char known_hosts[PATH_SIZE];
  char command[3 * PATH_SIZE];
  char output[64];

  format_text(known_hosts, sizeof(known_hosts), "%s/known_hosts_hashed",
              fixture.tmp);
  format_text(command, sizeof(command),
              "cp '%s' '%s' && ssh-keygen -H -f '%s' >/dev/null 2>&1 && "
              "rm -f '%s.old' && echo done",
              fixture.known_hosts, known_hosts, known_hosts, known_hosts);
  capture(command, output, sizeof(output));
  char *hashed = read_file(known_hosts, NULL);
  assert_memory_equal(hashed, "|1|", 3);
  free(hashed);

  base_config(&config, fixture.key_ed25519);
  config.known_hosts = known_hosts;
  remote_close(connect_ok(&config));
}

static void known_hosts_unknown_host(void **state)
{
  (void)state;
  struct config config;
  struct ag_error err;
  char public_key[PATH_SIZE];
  char key_line[4200];
  char known_hosts[PATH_SIZE];
  char hint[128];

  host_key_path("ed25519", public_key, sizeof(public_key));
  key_line_of(public_key, key_line, sizeof(key_line));
  write_known_hosts("known_hosts_other", known_hosts, sizeof(known_hosts),
                    "# another server\n[%s]:1 %s\n", fixture.host, key_line);

  base_config(&config, fixture.key_ed25519);
  config.known_hosts = known_hosts;
  connect_fails(&config, AG_EHOSTKEY, &err);
  assert_contains(err.message, fixture.pin_ed25519);
  assert_contains(err.message, "ssh-ed25519");
  format_text(hint, sizeof(hint), "ssh-keyscan -p %s %s", fixture.port,
              fixture.host);
  assert_contains(err.message, hint);
  assert_contains(err.message, known_hosts);
}

/* OpenSSH stores keys for ports other than 22 as "[host]:port", so a plain
 * "host" entry must not vouch for this server. */
static void known_hosts_entry_without_port(void **state)
{
  (void)state;
  struct config config;
  struct ag_error err;
  char public_key[PATH_SIZE];
  char key_line[4200];
  char known_hosts[PATH_SIZE];

  host_key_path("ed25519", public_key, sizeof(public_key));
  key_line_of(public_key, key_line, sizeof(key_line));
  write_known_hosts("known_hosts_port22", known_hosts, sizeof(known_hosts),
                    "%s %s\n", fixture.host, key_line);

  base_config(&config, fixture.key_ed25519);
  config.known_hosts = known_hosts;
  connect_fails(&config, AG_EHOSTKEY, &err);
  assert_contains(err.message, fixture.pin_ed25519);
}

static void known_hosts_changed_key(void **state)
{
  (void)state;
  struct config config;
  struct ag_error err;
  char other[PATH_SIZE];
  char other_public[PATH_SIZE + 8];
  char command[3 * PATH_SIZE];
  char output[64];
  char key_line[4200];
  char other_fingerprint[128];
  char known_hosts[PATH_SIZE];

  format_text(other, sizeof(other), "%s/other_host_key", fixture.tmp);
  format_text(other_public, sizeof(other_public), "%s.pub", other);
  format_text(command, sizeof(command),
              "rm -f '%s' '%s' && ssh-keygen -q -t ed25519 -N '' -f '%s' && "
              "echo done",
              other, other_public, other);
  capture(command, output, sizeof(output));
  key_line_of(other_public, key_line, sizeof(key_line));
  fingerprint_of(other_public, other_fingerprint, sizeof(other_fingerprint));
  write_known_hosts("known_hosts_changed", known_hosts, sizeof(known_hosts),
                    "[%s]:%s %s\n", fixture.host, fixture.port, key_line);

  base_config(&config, fixture.key_ed25519);
  config.known_hosts = known_hosts;
  connect_fails(&config, AG_EHOSTKEY, &err);
  assert_contains(err.message, other_fingerprint);
  assert_contains(err.message, fixture.pin_ed25519);
  assert_contains(err.message, "changed");
}

static void known_hosts_revoked_key(void **state)
{
  (void)state;
  struct config config;
  struct ag_error err;
  char public_key[PATH_SIZE];
  char key_line[4200];
  char known_hosts[PATH_SIZE];

  host_key_path("ed25519", public_key, sizeof(public_key));
  key_line_of(public_key, key_line, sizeof(key_line));
  char *listed = read_file(fixture.known_hosts, NULL);
  write_known_hosts("known_hosts_revoked", known_hosts, sizeof(known_hosts),
                    "%s@revoked * %s\n", listed, key_line);
  free(listed);

  base_config(&config, fixture.key_ed25519);
  config.known_hosts = known_hosts;
  connect_fails(&config, AG_EHOSTKEY, &err);
  assert_contains(err.message, "revoked");
  assert_contains(err.message, fixture.pin_ed25519);
}

static void known_hosts_missing_file(void **state)
{
  (void)state;
  struct config config;
  struct ag_error err;
  char missing[PATH_SIZE];

  format_text(missing, sizeof(missing), "%s/no_such_known_hosts", fixture.tmp);
  base_config(&config, fixture.key_ed25519);
  config.known_hosts = missing;
  connect_fails(&config, AG_EHOSTKEY, &err);
  assert_contains(err.message, missing);
}

static void pin_correct_succeeds(void **state)
{
  (void)state;
  struct config config;

  base_config(&config, fixture.key_ed25519);
  config.known_hosts = NULL;
  config.host_key_sha256 = fixture.pin_ed25519;
  struct remote *remote = connect_ok(&config);
  assert_string_equal(remote_host_key_fingerprint(remote), fixture.pin_ed25519);
  remote_close(remote);

  /* Both sources configured and both match. */
  base_config(&config, fixture.key_ed25519);
  config.host_key_sha256 = fixture.pin_ed25519;
  remote_close(connect_ok(&config));
}

static void pin_wrong_fails(void **state)
{
  (void)state;
  struct config config;
  struct ag_error err;
  char *wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

  base_config(&config, fixture.key_ed25519);
  config.known_hosts = NULL;
  config.host_key_sha256 = wrong;
  connect_fails(&config, AG_EHOSTKEY, &err);
  assert_contains(err.message, wrong);
  assert_contains(err.message, fixture.pin_ed25519);

  /* known_hosts matches, but the pin must match too. */
  base_config(&config, fixture.key_ed25519);
  config.host_key_sha256 = wrong;
  connect_fails(&config, AG_EHOSTKEY, &err);
  assert_contains(err.message, wrong);
}

static void no_host_key_source_fails(void **state)
{
  (void)state;
  struct config config;
  struct ag_error err;

  base_config(&config, fixture.key_ed25519);
  config.known_hosts = NULL;
  connect_fails(&config, AG_EHOSTKEY, &err);
  assert_contains(err.message, fixture.pin_ed25519);
}

/* ---- Connection failures ---------------------------------------------- */

/* Bind a loopback TCP socket to a free port. With listening, the kernel
 * completes connections that no process ever reads from. Returns the
 * socket. */
static int bind_loopback(int *port, int listening)
{
  struct sockaddr_in address = {.sin_family = AF_INET};
  socklen_t size = sizeof(address);
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  assert_true(fd >= 0);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&address, sizeof(address)), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&address, &size), 0);
  if (listening)
    assert_int_equal(listen(fd, 4), 0);
  *port = ntohs(address.sin_port);
  return fd;
}

static void connect_closed_port_fails_fast(void **state)
{
  (void)state;
  struct config config;
  struct ag_error err;
  struct timespec start;
  int port = 0;

  /* A bound but not listening socket keeps the port closed and unused. */
  int fd = bind_loopback(&port, 0);
  base_config(&config, fixture.key_ed25519);
  config.port = port;
  clock_gettime(CLOCK_MONOTONIC, &start);
  connect_fails(&config, AG_ECONNECT, &err);
  assert_true(seconds_since(&start) < 2.0);
  assert_contains(err.message, "Connection refused");
  assert_contains(err.message, fixture.host);
  close(fd);
}

static void connect_silent_server_times_out(void **state)
{
  (void)state;
  struct config config;
  struct ag_error err;
  struct timespec start;
  int port = 0;

  int fd = bind_loopback(&port, 1);
  base_config(&config, fixture.key_ed25519);
  config.port = port;
  config.timeout = 1;
  clock_gettime(CLOCK_MONOTONIC, &start);
  connect_fails(&config, AG_ETIMEDOUT, &err);
  double elapsed = seconds_since(&start);
  assert_true(elapsed >= 0.9);
  assert_true(elapsed < 5.0);
  close(fd);
}

/* ---- Listing ---------------------------------------------------------- */

struct listed {
  char rel[256];
  size_t rel_len;
  enum remote_kind kind;
  uint64_t size;
  int64_t mtime;
};

struct listing {
  struct listed entries[LISTED_MAX];
  size_t count;
  enum ag_code stop_with; /* returned for every entry */
};

static enum ag_code collect_entry(void *ctx, const struct remote_entry *entry)
{
  struct listing *listing = ctx;

  assert_true(listing->count < LISTED_MAX);
  assert_true(entry->rel_len < sizeof(listing->entries[0].rel));
  assert_int_equal(entry->rel[entry->rel_len], '\0');

  struct listed *copy = &listing->entries[listing->count++];
  memcpy(copy->rel, entry->rel, entry->rel_len);
  copy->rel_len = entry->rel_len;
  copy->kind = entry->kind;
  copy->size = entry->size;
  copy->mtime = entry->mtime;
  return listing->stop_with;
}

static const struct listed *find_listed(const struct listing *listing,
                                        const char *rel, size_t rel_len)
{
  for (size_t i = 0; i < listing->count; i++) {
    if (listing->entries[i].rel_len == rel_len &&
        memcmp(listing->entries[i].rel, rel, rel_len) == 0)
      return &listing->entries[i];
  }
  return NULL;
}

static const struct listed *expect_listed(const struct listing *listing,
                                          const char *rel,
                                          enum remote_kind kind)
{
  const struct listed *entry = find_listed(listing, rel, strlen(rel));
  if (entry == NULL)
    fail_msg("'%s' was not listed", rel);
  assert_int_equal(entry->kind, kind);
  return entry;
}

static void list_flat_reports_kinds_and_attributes(void **state)
{
  (void)state;
  char dir[PATH_SIZE], path[PATH_SIZE + 64];
  static const char odd_name[] = "\xff\xfe-latin1-\xe9.xml";
  struct listing listing = {.count = 0};
  struct ag_error err = {0};

  fresh_dir("flat", dir, sizeof(dir));
  format_text(path, sizeof(path), "%s/a.xml", dir);
  write_file(path, "hello", 5);
  set_mtime(path, 1700000000);
  format_text(path, sizeof(path), "%s/sub", dir);
  assert_int_equal(mkdir(path, 0755), 0);
  format_text(path, sizeof(path), "%s/link", dir);
  assert_int_equal(symlink("a.xml", path), 0);
  format_text(path, sizeof(path), "%s/%s", dir, odd_name);
  write_file(path, "xyz", 3);
  format_text(path, sizeof(path), "%s/pipe", dir);
  assert_int_equal(mkfifo(path, 0644), 0);

  struct remote *remote = connect_default();
  enum ag_code code =
      remote_list(remote, dir, false, NULL, 0, collect_entry, &listing, &err);
  print_message("message: %s\n", err.message);
  assert_int_equal(code, AG_OK);
  assert_int_equal(listing.count, 5);

  const struct listed *file = expect_listed(&listing, "a.xml", REMOTE_FILE);
  assert_int_equal(file->size, 5);
  assert_int_equal(file->mtime, 1700000000);
  expect_listed(&listing, "sub", REMOTE_DIR);
  expect_listed(&listing, "link", REMOTE_SYMLINK);
  expect_listed(&listing, "pipe", REMOTE_OTHER);
  const struct listed *odd =
      find_listed(&listing, odd_name, sizeof(odd_name) - 1);
  assert_non_null(odd);
  assert_int_equal(odd->kind, REMOTE_FILE);
  assert_int_equal(odd->size, 3);
  remote_close(remote);
}

static void list_recursive_skips_and_stops(void **state)
{
  (void)state;
  char dir[PATH_SIZE], path[PATH_SIZE + 64], skip[PATH_SIZE + 16];
  static const char *const files[] = {"a.xml", "archive/x.xml", "sub/b.xml",
                                      "sub/deep/c.xml"};
  struct listing listing = {.count = 0};
  struct ag_error err = {0};

  fresh_dir("tree", dir, sizeof(dir));
  format_text(path, sizeof(path), "%s/archive", dir);
  assert_int_equal(mkdir(path, 0755), 0);
  format_text(path, sizeof(path), "%s/sub", dir);
  assert_int_equal(mkdir(path, 0755), 0);
  format_text(path, sizeof(path), "%s/sub/deep", dir);
  assert_int_equal(mkdir(path, 0755), 0);
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
    format_text(path, sizeof(path), "%s/%s", dir, files[i]);
    write_file(path, files[i], strlen(files[i]));
  }
  format_text(path, sizeof(path), "%s/dirlink", dir);
  assert_int_equal(symlink("sub", path), 0);

  /* The skip entry has a trailing slash, which must not matter. */
  format_text(skip, sizeof(skip), "%s/archive/", dir);
  const char *skips[] = {"/elsewhere", skip};
  struct remote *remote = connect_default();
  enum ag_code code =
      remote_list(remote, dir, true, skips, 2, collect_entry, &listing, &err);
  print_message("message: %s\n", err.message);
  assert_int_equal(code, AG_OK);
  assert_int_equal(listing.count, 6);
  assert_int_equal(expect_listed(&listing, "a.xml", REMOTE_FILE)->size, 5);
  expect_listed(&listing, "sub", REMOTE_DIR);
  assert_int_equal(expect_listed(&listing, "sub/b.xml", REMOTE_FILE)->size, 9);
  expect_listed(&listing, "sub/deep", REMOTE_DIR);
  expect_listed(&listing, "sub/deep/c.xml", REMOTE_FILE);
  expect_listed(&listing, "dirlink", REMOTE_SYMLINK);
  assert_null(find_listed(&listing, "archive", 7));
  assert_null(find_listed(&listing, "dirlink/b.xml", 13));

  /* A callback error stops the walk and is returned as it is. */
  memset(&listing, 0, sizeof(listing));
  listing.stop_with = AG_ELOCAL;
  code = remote_list(remote, dir, true, NULL, 0, collect_entry, &listing, &err);
  assert_int_equal(code, AG_ELOCAL);
  assert_int_equal(listing.count, 1);
  remote_close(remote);
}

/* Make a chain of levels nested folders below dir. */
static void make_chain(const char *dir, int levels)
{
  char path[PATH_SIZE];
  size_t len = (size_t)snprintf(path, sizeof(path), "%s", dir);

  for (int i = 0; i < levels; i++) {
    len += (size_t)snprintf(path + len, sizeof(path) - len, "/d");
    assert_int_equal(mkdir(path, 0755), 0);
  }
}

static void list_depth_is_bounded(void **state)
{
  (void)state;
  char dir[PATH_SIZE];
  struct listing listing = {.count = 0};
  struct ag_error err = {0};

  fresh_dir("depth32", dir, sizeof(dir));
  make_chain(dir, 32);
  struct remote *remote = connect_default();
  assert_int_equal(
      remote_list(remote, dir, true, NULL, 0, collect_entry, &listing, &err),
      AG_OK);
  assert_int_equal(listing.count, 32);

  fresh_dir("depth33", dir, sizeof(dir));
  make_chain(dir, 33);
  memset(&listing, 0, sizeof(listing));
  enum ag_code code =
      remote_list(remote, dir, true, NULL, 0, collect_entry, &listing, &err);
  print_message("message: %s\n", err.message);
  assert_int_equal(code, AG_EREMOTE);
  assert_contains(err.message, "more than 32 levels");
  remote_close(remote);
}

static void list_missing_folder_fails(void **state)
{
  (void)state;
  char dir[PATH_SIZE + 16];
  struct listing listing = {.count = 0};
  struct ag_error err = {0};

  format_text(dir, sizeof(dir), "%s/no-such-folder", fixture.root);
  struct remote *remote = connect_default();
  assert_int_equal(
      remote_list(remote, dir, false, NULL, 0, collect_entry, &listing, &err),
      AG_ENOENT);
  assert_contains(err.message, "no-such-folder");
  assert_int_equal(listing.count, 0);
  remote_close(remote);
}

/* ---- stat ------------------------------------------------------------- */

static void stat_reports_lstat_attributes(void **state)
{
  (void)state;
  char dir[PATH_SIZE], path[PATH_SIZE + 64];
  struct remote_entry entry;
  struct ag_error err = {0};

  fresh_dir("stat", dir, sizeof(dir));
  format_text(path, sizeof(path), "%s/file.csv", dir);
  write_file(path, "a;b\n", 4);
  set_mtime(path, 1600000000);
  struct remote *remote = connect_default();
  assert_int_equal(remote_stat(remote, path, &entry, &err), AG_OK);
  assert_int_equal(entry.kind, REMOTE_FILE);
  assert_int_equal(entry.size, 4);
  assert_int_equal(entry.mtime, 1600000000);
  assert_null(entry.rel);

  format_text(path, sizeof(path), "%s/link", dir);
  assert_int_equal(symlink("file.csv", path), 0);
  assert_int_equal(remote_stat(remote, path, &entry, &err), AG_OK);
  assert_int_equal(entry.kind, REMOTE_SYMLINK);

  /* Untrusted bytes in a path are escaped in the message. */
  format_text(path, sizeof(path), "%s/missing\nname", dir);
  assert_int_equal(remote_stat(remote, path, &entry, &err), AG_ENOENT);
  assert_contains(err.message, "missing\\x0Aname");
  assert_null(strchr(err.message, '\n'));
  remote_close(remote);
}

/* ---- Download --------------------------------------------------------- */

struct sink {
  EVP_MD_CTX *digest;
  uint64_t bytes;
  size_t blocks;
  size_t largest_block;
  char head[64];
};

static enum ag_code collect_data(void *ctx, const void *data, size_t len,
                                 struct ag_error *err)
{
  (void)err;
  struct sink *sink = ctx;

  if (sink->bytes < sizeof(sink->head) - 1) {
    size_t room = sizeof(sink->head) - 1 - (size_t)sink->bytes;
    memcpy(sink->head + sink->bytes, data, len < room ? len : room);
  }
  assert_int_equal(EVP_DigestUpdate(sink->digest, data, len), 1);
  sink->bytes += len;
  sink->blocks++;
  if (len > sink->largest_block)
    sink->largest_block = len;
  return AG_OK;
}

static enum ag_code reject_data(void *ctx, const void *data, size_t len,
                                struct ag_error *err)
{
  (void)ctx;
  (void)data;
  (void)len;
  return ag_error_set(err, AG_ELOCAL, "disk full (test)");
}

static void sha256(const void *data, size_t len, unsigned char *out)
{
  unsigned int size = 0;
  assert_int_equal(EVP_Digest(data, len, out, &size, EVP_sha256(), NULL), 1);
  assert_int_equal(size, 32);
}

static void download_small_file(void **state)
{
  (void)state;
  char dir[PATH_SIZE], path[PATH_SIZE + 64];
  struct sink sink = {.digest = EVP_MD_CTX_new()};
  struct ag_error err = {0};
  unsigned char expected[32], actual[32];

  fresh_dir("download", dir, sizeof(dir));
  format_text(path, sizeof(path), "%s/export.xml", dir);
  write_file(path, "<export/>\n", 10);
  set_mtime(path, 1650000000);
  sha256("<export/>\n", 10, expected);

  struct remote *remote = connect_default();
  assert_int_equal(EVP_DigestInit_ex(sink.digest, EVP_sha256(), NULL), 1);
  assert_int_equal(
      remote_download(remote, path, 10, 1650000000, collect_data, &sink, &err),
      AG_OK);
  assert_int_equal(EVP_DigestFinal_ex(sink.digest, actual, NULL), 1);
  assert_int_equal(sink.bytes, 10);
  assert_int_equal(sink.blocks, 1);
  assert_string_equal(sink.head, "<export/>\n");
  assert_memory_equal(actual, expected, 32);
  EVP_MD_CTX_free(sink.digest);
  remote_close(remote);
}

static void download_large_file(void **state)
{
  (void)state;
  const size_t size = 3 * 1024 * 1024;
  char dir[PATH_SIZE], path[PATH_SIZE + 64];
  struct sink sink = {.digest = EVP_MD_CTX_new()};
  struct ag_error err = {0};
  unsigned char expected[32], actual[32];
  unsigned char *data = malloc(size);
  uint32_t state32 = 12345;

  assert_non_null(data);
  for (size_t i = 0; i < size; i++) {
    state32 = state32 * 1103515245u + 12345u;
    data[i] = (unsigned char)(state32 >> 16);
  }
  fresh_dir("download-large", dir, sizeof(dir));
  format_text(path, sizeof(path), "%s/big.csv", dir);
  write_file(path, data, size);
  set_mtime(path, 1650000001);
  sha256(data, size, expected);
  free(data);

  struct remote *remote = connect_default();
  assert_int_equal(EVP_DigestInit_ex(sink.digest, EVP_sha256(), NULL), 1);
  enum ag_code code = remote_download(remote, path, size, 1650000001,
                                      collect_data, &sink, &err);
  print_message("message: %s\n", err.message);
  assert_int_equal(code, AG_OK);
  assert_int_equal(EVP_DigestFinal_ex(sink.digest, actual, NULL), 1);
  assert_int_equal(sink.bytes, size);
  assert_memory_equal(actual, expected, 32);
  /* 3 MiB arrive as three 1 MiB blocks. */
  assert_int_equal(sink.largest_block, 1024 * 1024);
  assert_int_equal(sink.blocks, 3);
  EVP_MD_CTX_free(sink.digest);
  remote_close(remote);
}

static void download_detects_change(void **state)
{
  (void)state;
  char dir[PATH_SIZE], path[PATH_SIZE + 64];
  struct sink sink = {.digest = EVP_MD_CTX_new()};
  struct ag_error err = {0};

  fresh_dir("download-changed", dir, sizeof(dir));
  format_text(path, sizeof(path), "%s/growing.csv", dir);
  write_file(path, "12345", 5);
  set_mtime(path, 1650000002);
  assert_int_equal(EVP_DigestInit_ex(sink.digest, EVP_sha256(), NULL), 1);
  struct remote *remote = connect_default();

  /* The file is longer than the listing reported. The download reads the
   * listed size and no more, and the lstat after it finds the growth. */
  assert_int_equal(
      remote_download(remote, path, 4, 1650000002, collect_data, &sink, &err),
      AG_ECHANGED);
  print_message("message: %s\n", err.message);
  assert_contains(err.message, "size is now 5 bytes, expected 4");
  assert_int_equal(sink.bytes, 4);

  /* The file is shorter than the listing reported. */
  ag_error_clear(&err);
  assert_int_equal(
      remote_download(remote, path, 6, 1650000002, collect_data, &sink, &err),
      AG_ECHANGED);
  assert_contains(err.message, "read 5 bytes, expected 6");

  /* The size matches but the mtime does not. */
  ag_error_clear(&err);
  assert_int_equal(
      remote_download(remote, path, 5, 1650000000, collect_data, &sink, &err),
      AG_ECHANGED);
  assert_contains(err.message, "mtime is now 1650000002, expected 1650000000");

  EVP_MD_CTX_free(sink.digest);
  remote_close(remote);
}

static void download_missing_and_callback_error(void **state)
{
  (void)state;
  char dir[PATH_SIZE], path[PATH_SIZE + 64];
  struct ag_error err = {0};

  fresh_dir("download-errors", dir, sizeof(dir));
  format_text(path, sizeof(path), "%s/gone.xml", dir);
  struct remote *remote = connect_default();
  assert_int_equal(remote_download(remote, path, 1, 0, reject_data, NULL, &err),
                   AG_ENOENT);
  assert_contains(err.message, "gone.xml");
  assert_contains(err.message, "no such file");

  write_file(path, "data", 4);
  ag_error_clear(&err);
  assert_int_equal(remote_download(remote, path, 4, 0, reject_data, NULL, &err),
                   AG_ELOCAL);
  assert_string_equal(err.message, "disk full (test)");
  remote_close(remote);
}

/* One session of download_parallel_sessions(), run in its own thread.
 * cmocka's asserts are not thread-safe, so the thread only records. */
struct parallel_job {
  char path[PATH_SIZE + 64];
  size_t size;
  enum ag_code code;
  struct sink sink;
  struct ag_error err;
};

static enum ag_code hash_data(void *ctx, const void *data, size_t len,
                              struct ag_error *err)
{
  struct sink *sink = ctx;

  if (EVP_DigestUpdate(sink->digest, data, len) != 1)
    return ag_error_set(err, AG_ENOMEM, "SHA-256 update failed");
  sink->bytes += len;
  return AG_OK;
}

static int run_parallel_job(void *arg)
{
  struct parallel_job *job = arg;
  struct config config;
  struct remote *remote = NULL;

  base_config(&config, fixture.key_ed25519);
  job->code = remote_connect(&config, &remote, &job->err);
  if (job->code == AG_OK)
    job->code = remote_download(remote, job->path, job->size, 1650000003,
                                hash_data, &job->sink, &job->err);
  remote_close(remote);
  return 0;
}

static void download_parallel_sessions(void **state)
{
  (void)state;
  enum { JOBS = 4 };
  struct parallel_job jobs[JOBS];
  thrd_t threads[JOBS];
  char dir[PATH_SIZE];
  unsigned char expected[JOBS][32];

  fresh_dir("download-parallel", dir, sizeof(dir));
  memset(jobs, 0, sizeof(jobs));
  for (int i = 0; i < JOBS; i++) {
    struct parallel_job *job = &jobs[i];
    job->size = (size_t)(2 + i) * 1024 * 1024 + (size_t)i;
    unsigned char *data = malloc(job->size);
    assert_non_null(data);
    for (size_t j = 0; j < job->size; j++)
      data[j] = (unsigned char)((j * 31 + (size_t)i * 7) >> 3);
    format_text(job->path, sizeof(job->path), "%s/file%d.bin", dir, i);
    write_file(job->path, data, job->size);
    set_mtime(job->path, 1650000003);
    sha256(data, job->size, expected[i]);
    free(data);
    job->sink.digest = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestInit_ex(job->sink.digest, EVP_sha256(), NULL),
                     1);
  }

  /* Each thread connects, downloads and closes its own session at the
   * same time as the others, the first remote_connect() included. */
  for (int i = 0; i < JOBS; i++)
    assert_int_equal(thrd_create(&threads[i], run_parallel_job, &jobs[i]),
                     thrd_success);
  for (int i = 0; i < JOBS; i++)
    assert_int_equal(thrd_join(threads[i], NULL), thrd_success);

  for (int i = 0; i < JOBS; i++) {
    unsigned char actual[32];
    if (jobs[i].code != AG_OK)
      print_error("job %d: %s\n", i, jobs[i].err.message);
    assert_int_equal(jobs[i].code, AG_OK);
    assert_int_equal(jobs[i].sink.bytes, jobs[i].size);
    assert_int_equal(EVP_DigestFinal_ex(jobs[i].sink.digest, actual, NULL), 1);
    assert_memory_equal(actual, expected[i], 32);
    EVP_MD_CTX_free(jobs[i].sink.digest);
  }
}

/* Send signal to every process below the fixture's sshd listener: the
 * processes that serve the open connections. Returns how many there
 * were. */
static int signal_sessions(int signal)
{
  enum { PIDS_MAX = 256 };
  char path[PATH_SIZE + 16];
  char text[64] = "";
  pid_t family[PIDS_MAX];
  int count = 1;
  int signalled = 0;

  format_text(path, sizeof(path), "%s/sshd.pid", fixture.dir);
  FILE *file = fopen(path, "r");
  assert_non_null(file);
  assert_non_null(fgets(text, sizeof(text), file));
  fclose(file);
  family[0] = (pid_t)atoi(text);
  assert_true(family[0] > 1);

  /* Each pass over /proc adds the children of the processes found so far
   * until no new one appears. */
  for (int added = 1; added > 0;) {
    added = 0;
    DIR *proc = opendir("/proc");
    assert_non_null(proc);
    struct dirent *entry;
    while ((entry = readdir(proc)) != NULL && count < PIDS_MAX) {
      pid_t pid = (pid_t)atoi(entry->d_name);
      if (pid <= 0)
        continue;
      format_text(path, sizeof(path), "/proc/%d/stat", (int)pid);
      char stat[512] = "";
      FILE *stat_file = fopen(path, "r");
      if (stat_file == NULL)
        continue;
      size_t got = fread(stat, 1, sizeof(stat) - 1, stat_file);
      fclose(stat_file);
      stat[got] = '\0';
      const char *after_name = strrchr(stat, ')');
      int parent = 0;
      if (after_name == NULL || sscanf(after_name, ") %*c %d", &parent) != 1)
        continue;
      bool known = false, child = false;
      for (int i = 0; i < count; i++) {
        known = known || family[i] == pid;
        child = child || family[i] == (pid_t)parent;
      }
      if (child && !known) {
        family[count++] = pid;
        added++;
      }
    }
    closedir(proc);
  }
  for (int i = 1; i < count; i++) {
    if (kill(family[i], signal) == 0)
      signalled++;
  }
  return signalled;
}

static enum ag_code freeze_server(void *ctx, const void *data, size_t len,
                                  struct ag_error *err)
{
  (void)data;
  (void)len;
  (void)err;
  int *frozen = ctx;
  *frozen = signal_sessions(SIGSTOP);
  return AG_OK;
}

/* A server that stops replying after the read: the lstat and the close
 * that follow it time out within the configured timeout, and the session
 * is broken. */
static void download_check_times_out(void **state)
{
  (void)state;
  char dir[PATH_SIZE], path[PATH_SIZE + 64];
  struct config config;
  struct ag_error err = {0};
  struct timespec start;
  int frozen = 0;

  fresh_dir("download-stall", dir, sizeof(dir));
  format_text(path, sizeof(path), "%s/export.xml", dir);
  write_file(path, "<export/>\n", 10);
  set_mtime(path, 1650000000);
  base_config(&config, fixture.key_ed25519);
  config.timeout = 1;
  struct remote *remote = connect_ok(&config);

  clock_gettime(CLOCK_MONOTONIC, &start);
  enum ag_code code = remote_download(remote, path, 10, 1650000000,
                                      freeze_server, &frozen, &err);
  double elapsed = seconds_since(&start);
  int thawed = signal_sessions(SIGCONT);
  print_message("message: %s (%.2f s)\n", err.message, elapsed);
  assert_true(frozen > 0);
  assert_true(thawed >= frozen);
  assert_int_equal(code, AG_ETIMEDOUT);
  assert_contains(err.message, "cannot stat '");
  assert_contains(err.message, "no response within 1 s");
  assert_true(elapsed >= 0.9);
  assert_true(elapsed < 5.0);

  /* The session is broken, so the next request fails at once. */
  struct remote_entry entry;
  ag_error_clear(&err);
  assert_int_equal(remote_stat(remote, path, &entry, &err), AG_ECONNECT);
  remote_close(remote);

  /* The server serves new sessions again. */
  remote = connect_default();
  ag_error_clear(&err);
  assert_int_equal(remote_stat(remote, path, &entry, &err), AG_OK);
  remote_close(remote);
}

/* ---- Ciphers --------------------------------------------------------- */

/* Write size bytes of pseudo-random data to path and store their SHA-256
 * in digest. */
static void write_random_file(const char *path, size_t size,
                              unsigned char *digest)
{
  unsigned char *data = malloc(size > 0 ? size : 1);
  uint32_t state32 = (uint32_t)size;

  assert_non_null(data);
  for (size_t i = 0; i < size; i++) {
    state32 = state32 * 1103515245u + 12345u;
    data[i] = (unsigned char)(state32 >> 16);
  }
  write_file(path, data, size);
  set_mtime(path, 1650000004);
  sha256(data, size, digest);
  free(data);
}

/* Download path of size bytes over remote and compare it with digest. */
static void check_download(struct remote *remote, const char *path, size_t size,
                           const unsigned char *digest)
{
  struct sink sink = {.digest = EVP_MD_CTX_new()};
  struct ag_error err = {0};
  unsigned char actual[32];

  assert_int_equal(EVP_DigestInit_ex(sink.digest, EVP_sha256(), NULL), 1);
  enum ag_code code = remote_download(remote, path, size, 1650000004,
                                      collect_data, &sink, &err);
  if (code != AG_OK)
    print_error("remote_download: %s\n", err.message);
  assert_int_equal(code, AG_OK);
  assert_int_equal(sink.bytes, size);
  assert_int_equal(EVP_DigestFinal_ex(sink.digest, actual, NULL), 1);
  assert_memory_equal(actual, digest, 32);
  EVP_MD_CTX_free(sink.digest);
}

/* libssh2 computes chacha20-poly1305 with less CPU time per byte than
 * AES-GCM, so the agent offers it first, and OpenSSH takes the client's
 * first choice. */
static void cipher_default_is_chacha20(void **state)
{
  (void)state;
  struct remote *remote = connect_default();

  assert_string_equal(remote_cipher(remote), "chacha20-poly1305@openssh.com");
  remote_close(remote);
}

/* Each cipher that [server] ciphers names is negotiated and carries a
 * download of many packets intact, and the first listed one wins. */
static void cipher_configured_is_used(void **state)
{
  (void)state;
  static const char *const cases[][2] = {
      {"aes128-gcm@openssh.com", "aes128-gcm@openssh.com"},
      {"aes256-gcm@openssh.com", "aes256-gcm@openssh.com"},
      {"aes128-ctr", "aes128-ctr"},
      {"aes256-ctr", "aes256-ctr"},
      {"chacha20-poly1305@openssh.com", "chacha20-poly1305@openssh.com"},
      {"aes256-ctr,aes128-gcm@openssh.com", "aes256-ctr"},
  };
  const size_t size = 200 * 1000 + 3;
  char dir[PATH_SIZE], path[PATH_SIZE + 64];
  unsigned char digest[32];

  fresh_dir("ciphers", dir, sizeof(dir));
  format_text(path, sizeof(path), "%s/data.bin", dir);
  write_random_file(path, size, digest);

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct config config;
    char ciphers[128];
    base_config(&config, fixture.key_ed25519);
    snprintf(ciphers, sizeof(ciphers), "%s", cases[i][0]);
    config.ciphers = ciphers;
    print_message("ciphers = %s\n", ciphers);
    struct remote *remote = connect_ok(&config);
    assert_string_equal(remote_cipher(remote), cases[i][1]);
    check_download(remote, path, size, digest);
    remote_close(remote);
  }
}

/* A name that libssh2 does not know is a config error, reported before
 * any network traffic with the names that work. */
static void cipher_unknown_name_fails(void **state)
{
  (void)state;
  struct config config;
  struct ag_error err = {0};
  char ciphers[] = "aes128-gcm@openssh.com,twofish-gcm";

  base_config(&config, fixture.key_ed25519);
  config.ciphers = ciphers;
  connect_fails(&config, AG_ECONFIG, &err);
  assert_contains(err.message, "[server] ciphers names 'twofish-gcm'");
  assert_contains(err.message, "chacha20-poly1305@openssh.com");
  assert_contains(err.message, "aes256-ctr");
}

/* A cipher that libssh2 supports and OpenSSH 9.2 does not offer by
 * default fails the handshake. */
static void cipher_not_offered_fails(void **state)
{
  (void)state;
  struct config config;
  struct ag_error err = {0};
  char ciphers[] = "3des-cbc";

  base_config(&config, fixture.key_ed25519);
  config.ciphers = ciphers;
  connect_fails(&config, AG_ECONNECT, &err);
  assert_contains(err.message, "cannot complete the SSH handshake");
  assert_contains(err.message, "none of the ciphers '3des-cbc'");
}

/* Files of sizes around libssh2's 30000-byte read request, around four
 * times it and around the 1 MiB block arrive intact, the empty file
 * included. */
static void download_sizes_intact(void **state)
{
  (void)state;
  static const size_t sizes[] = {0,     1,      3,      4,           5,
                                 7499,  7500,   7501,   29999,       30000,
                                 30001, 120001, 131072, 1024 * 1024, 4194307};
  char dir[PATH_SIZE], path[PATH_SIZE + 64];

  fresh_dir("download-sizes", dir, sizeof(dir));
  struct remote *remote = connect_default();
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    unsigned char digest[32];
    format_text(path, sizeof(path), "%s/file%zu.bin", dir, sizes[i]);
    write_random_file(path, sizes[i], digest);
    print_message("size %zu\n", sizes[i]);
    check_download(remote, path, sizes[i], digest);
  }
  remote_close(remote);
}

/* ---- Rename, delete, mkdirs, write_new -------------------------------- */

static void rename_moves_and_never_replaces(void **state)
{
  (void)state;
  char dir[PATH_SIZE], from[PATH_SIZE + 64], to[PATH_SIZE + 64];
  char other[PATH_SIZE + 64];
  struct ag_error err = {0};

  fresh_dir("rename", dir, sizeof(dir));
  format_text(from, sizeof(from), "%s/in.xml", dir);
  format_text(to, sizeof(to), "%s/done.xml", dir);
  format_text(other, sizeof(other), "%s/other.xml", dir);
  write_file(from, "first", 5);
  struct remote *remote = connect_default();

  assert_int_equal(remote_rename(remote, from, to, &err), AG_OK);
  assert_int_equal(file_size(from), -1);
  assert_file_content(to, "first");

  write_file(other, "second", 6);
  assert_int_equal(remote_rename(remote, other, to, &err), AG_EEXIST);
  print_message("message: %s\n", err.message);
  assert_contains(err.message, "done.xml");
  assert_file_content(other, "second");
  assert_file_content(to, "first");

  /* from was moved away above. */
  format_text(other, sizeof(other), "%s/new.xml", dir);
  ag_error_clear(&err);
  assert_int_equal(remote_rename(remote, from, other, &err), AG_ENOENT);
  assert_int_equal(file_size(other), -1);
  remote_close(remote);
}

static void unlink_deletes_once(void **state)
{
  (void)state;
  char dir[PATH_SIZE], path[PATH_SIZE + 64];
  struct ag_error err = {0};

  fresh_dir("unlink", dir, sizeof(dir));
  format_text(path, sizeof(path), "%s/old.csv", dir);
  write_file(path, "x", 1);
  struct remote *remote = connect_default();
  assert_int_equal(remote_unlink(remote, path, &err), AG_OK);
  assert_int_equal(file_size(path), -1);
  assert_int_equal(remote_unlink(remote, path, &err), AG_ENOENT);
  remote_close(remote);
}

static void mkdirs_creates_nested_folders(void **state)
{
  (void)state;
  char dir[PATH_SIZE], path[PATH_SIZE + 64], blocked[PATH_SIZE + 64];
  struct stat st;
  struct ag_error err = {0};

  fresh_dir("mkdirs", dir, sizeof(dir));
  format_text(path, sizeof(path), "%s/2024/05/17/", dir);
  struct remote *remote = connect_default();
  assert_int_equal(remote_mkdirs(remote, path, &err), AG_OK);
  assert_int_equal(stat(path, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(remote_mkdirs(remote, path, &err), AG_OK);

  format_text(blocked, sizeof(blocked), "%s/file", dir);
  write_file(blocked, "x", 1);
  format_text(path, sizeof(path), "%s/file/sub", dir);
  assert_int_equal(remote_mkdirs(remote, path, &err), AG_EREMOTE);
  print_message("message: %s\n", err.message);
  assert_contains(err.message, "not a folder");
  assert_int_equal(file_size(blocked), 1);
  remote_close(remote);
}

static void write_new_never_replaces(void **state)
{
  (void)state;
  char dir[PATH_SIZE], path[PATH_SIZE + 64], missing[PATH_SIZE + 64];
  struct stat st;
  struct ag_error err = {0};

  fresh_dir("write", dir, sizeof(dir));
  format_text(path, sizeof(path), "%s/marker.json", dir);
  struct remote *remote = connect_default();
  assert_int_equal(remote_write_new(remote, path, "{\"a\":1}", 7, &err), AG_OK);
  assert_file_content(path, "{\"a\":1}");
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0640);

  assert_int_equal(remote_write_new(remote, path, "{}", 2, &err), AG_EEXIST);
  print_message("message: %s\n", err.message);
  assert_contains(err.message, "marker.json");
  assert_file_content(path, "{\"a\":1}");

  format_text(missing, sizeof(missing), "%s/no-folder/x.json", dir);
  ag_error_clear(&err);
  assert_int_equal(remote_write_new(remote, missing, "{}", 2, &err), AG_ENOENT);
  remote_close(remote);
}

/* Download path with the expected size and mtime and check its content. */
static void expect_download(struct remote *remote, const char *path,
                            const char *content, int64_t mtime)
{
  struct sink sink = {.digest = EVP_MD_CTX_new()};
  struct ag_error err = {0};
  size_t len = strlen(content);

  assert_int_equal(EVP_DigestInit_ex(sink.digest, EVP_sha256(), NULL), 1);
  enum ag_code code =
      remote_download(remote, path, len, mtime, collect_data, &sink, &err);
  print_message("message: %s\n", err.message);
  assert_int_equal(code, AG_OK);
  assert_int_equal(sink.bytes, len);
  assert_string_equal(sink.head, content);
  EVP_MD_CTX_free(sink.digest);
}

static void open_ahead_is_taken_by_its_download(void **state)
{
  (void)state;
  char dir[PATH_SIZE], first[PATH_SIZE + 64], second[PATH_SIZE + 64];
  char archived[PATH_SIZE + 64];
  struct ag_error err = {0};

  fresh_dir("ahead", dir, sizeof(dir));
  format_text(first, sizeof(first), "%s/a.xml", dir);
  format_text(second, sizeof(second), "%s/b.xml", dir);
  format_text(archived, sizeof(archived), "%s/a.done", dir);
  write_file(first, "<a/>", 4);
  write_file(second, "<bb/>", 5);
  set_mtime(first, 1650000010);
  set_mtime(second, 1650000011);
  struct remote *remote = connect_default();

  remote_open_ahead(remote, first);
  expect_download(remote, first, "<a/>", 1650000010);

  /* The open of the next file goes out before a move, as in a pass, and
   * the move's reply does not stand in for the open's. */
  remote_open_ahead(remote, second);
  assert_int_equal(remote_rename(remote, first, archived, &err), AG_OK);
  assert_file_content(archived, "<a/>");
  expect_download(remote, second, "<bb/>", 1650000011);
  remote_close(remote);
}

static void open_ahead_not_taken_by_other_opens(void **state)
{
  (void)state;
  char dir[PATH_SIZE], path[PATH_SIZE + 64], other[PATH_SIZE + 64];
  char created[PATH_SIZE + 64];
  struct listing listing = {0};
  struct ag_error err = {0};

  fresh_dir("ahead-other", dir, sizeof(dir));
  format_text(path, sizeof(path), "%s/a.xml", dir);
  format_text(other, sizeof(other), "%s/b.xml", dir);
  format_text(created, sizeof(created), "%s/new.json", dir);
  write_file(path, "<a/>", 4);
  write_file(other, "<other/>", 8);
  set_mtime(other, 1650000012);
  struct remote *remote = connect_default();

  /* A download of another file gets its own handle. */
  remote_open_ahead(remote, path);
  expect_download(remote, other, "<other/>", 1650000012);

  /* So does a listing, which opens the folder. */
  remote_open_ahead(remote, path);
  assert_int_equal(
      remote_list(remote, dir, false, NULL, 0, collect_entry, &listing, &err),
      AG_OK);
  expect_listed(&listing, "a.xml", REMOTE_FILE);
  expect_listed(&listing, "b.xml", REMOTE_FILE);
  assert_int_equal(listing.count, 2);

  /* And the creation of a file that the open ahead did not find. */
  remote_open_ahead(remote, created);
  assert_int_equal(remote_write_new(remote, created, "{}", 2, &err), AG_OK);
  assert_file_content(created, "{}");

  /* A write to the path opened ahead still never replaces the file. */
  remote_open_ahead(remote, path);
  assert_int_equal(remote_write_new(remote, path, "{}", 2, &err), AG_EEXIST);
  assert_file_content(path, "<a/>");
  remote_open_ahead(remote, path);
  remote_close(remote);
}

static void open_ahead_missing_file_fails_download(void **state)
{
  (void)state;
  char dir[PATH_SIZE], path[PATH_SIZE + 64];
  struct ag_error err = {0};

  fresh_dir("ahead-missing", dir, sizeof(dir));
  format_text(path, sizeof(path), "%s/gone.xml", dir);
  struct remote *remote = connect_default();

  remote_open_ahead(remote, path);
  assert_int_equal(remote_download(remote, path, 1, 0, reject_data, NULL, &err),
                   AG_ENOENT);
  print_message("message: %s\n", err.message);
  assert_contains(err.message, "gone.xml");
  assert_contains(err.message, "no such file");

  /* The session stays usable. */
  write_file(path, "<back/>", 7);
  set_mtime(path, 1650000013);
  remote_open_ahead(remote, path);
  expect_download(remote, path, "<back/>", 1650000013);
  remote_close(remote);
}

static void rename_ahead_gets_its_own_result(void **state)
{
  (void)state;
  char dir[PATH_SIZE], first[PATH_SIZE + 64], second[PATH_SIZE + 64];
  char done_first[PATH_SIZE + 64], done_second[PATH_SIZE + 64];
  struct ag_error err = {0};

  fresh_dir("rename-ahead", dir, sizeof(dir));
  format_text(first, sizeof(first), "%s/a.xml", dir);
  format_text(second, sizeof(second), "%s/b.xml", dir);
  format_text(done_first, sizeof(done_first), "%s/a.done", dir);
  format_text(done_second, sizeof(done_second), "%s/b.done", dir);
  write_file(first, "first", 5);
  write_file(second, "second", 6);
  struct remote *remote = connect_default();

  remote_rename_ahead(remote, first, done_first);
  assert_int_equal(remote_rename(remote, first, done_first, &err), AG_OK);
  assert_file_content(done_first, "first");
  assert_int_equal(file_size(first), -1);

  /* Another rename first: each gets its own result. */
  write_file(first, "again", 5);
  remote_rename_ahead(remote, second, done_second);
  assert_int_equal(remote_rename(remote, first, done_first, &err), AG_EEXIST);
  print_message("message: %s\n", err.message);
  assert_contains(err.message, "a.done");
  assert_file_content(first, "again");
  ag_error_clear(&err);
  assert_int_equal(remote_rename(remote, second, done_second, &err), AG_OK);
  assert_file_content(done_second, "second");

  /* A rename sent ahead onto an existing file fails, and its rename
   * reports the taken target. */
  remote_rename_ahead(remote, first, done_first);
  assert_int_equal(remote_rename(remote, first, done_first, &err), AG_EEXIST);
  assert_contains(err.message, "the target exists");
  assert_file_content(first, "again");
  assert_file_content(done_first, "first");

  /* One that no rename took is dropped when the session closes. */
  remote_rename_ahead(remote, first, done_second);
  remote_close(remote);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(login_ed25519_key),
      cmocka_unit_test(login_ecdsa_key),
      cmocka_unit_test(login_rsa_key),
      cmocka_unit_test(login_passphrase_key),
      cmocka_unit_test(login_wrong_passphrase_fails),
      cmocka_unit_test(login_missing_passphrase_fails),
      cmocka_unit_test(login_unauthorized_key_fails),
      cmocka_unit_test(login_password_not_offered),
      cmocka_unit_test(host_key_fingerprint_matches_ssh_keygen),
      cmocka_unit_test(known_hosts_ecdsa_only),
      cmocka_unit_test(known_hosts_rsa_only),
      cmocka_unit_test(known_hosts_hashed),
      cmocka_unit_test(known_hosts_unknown_host),
      cmocka_unit_test(known_hosts_entry_without_port),
      cmocka_unit_test(known_hosts_changed_key),
      cmocka_unit_test(known_hosts_revoked_key),
      cmocka_unit_test(known_hosts_missing_file),
      cmocka_unit_test(pin_correct_succeeds),
      cmocka_unit_test(pin_wrong_fails),
      cmocka_unit_test(no_host_key_source_fails),
      cmocka_unit_test(connect_closed_port_fails_fast),
      cmocka_unit_test(connect_silent_server_times_out),
      cmocka_unit_test(list_flat_reports_kinds_and_attributes),
      cmocka_unit_test(list_recursive_skips_and_stops),
      cmocka_unit_test(list_depth_is_bounded),
      cmocka_unit_test(list_missing_folder_fails),
      cmocka_unit_test(stat_reports_lstat_attributes),
      cmocka_unit_test(download_small_file),
      cmocka_unit_test(download_large_file),
      cmocka_unit_test(download_detects_change),
      cmocka_unit_test(download_missing_and_callback_error),
      cmocka_unit_test(download_parallel_sessions),
      cmocka_unit_test(download_sizes_intact),
      cmocka_unit_test(download_check_times_out),
      cmocka_unit_test(cipher_default_is_chacha20),
      cmocka_unit_test(cipher_configured_is_used),
      cmocka_unit_test(cipher_unknown_name_fails),
      cmocka_unit_test(cipher_not_offered_fails),
      cmocka_unit_test(rename_moves_and_never_replaces),
      cmocka_unit_test(unlink_deletes_once),
      cmocka_unit_test(mkdirs_creates_nested_folders),
      cmocka_unit_test(write_new_never_replaces),
      cmocka_unit_test(open_ahead_is_taken_by_its_download),
      cmocka_unit_test(open_ahead_not_taken_by_other_opens),
      cmocka_unit_test(open_ahead_missing_file_fails_download),
      cmocka_unit_test(rename_ahead_gets_its_own_result),
  };

  return cmocka_run_group_tests(tests, load_fixture, NULL);
}
