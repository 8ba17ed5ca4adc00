/* SFTP access through libssh2: connection, authentication and the file
 * operations the agent needs. Host key checks are in remote_hostkey.c.
 *
 * All libssh2 calls of the agent are in these two files. The session runs
 * in libssh2's blocking mode, where libssh2_session_set_timeout() bounds
 * each call. */
#include "agent/remote.h"

#include "agent/log.h"
#include "remote_internal.h"

#include <libssh2.h>
#include <libssh2_sftp.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Maximum length of a remote path in bytes. Linux, where most SFTP servers
 * run, limits paths to 4096 bytes including the NUL. */
#define REMOTE_PATH_MAX 4095

/* Maximum number of folder levels that a recursive listing enters below
 * the listed folder. It stops runaway walks, for example through a server
 * that follows symbolic links to folders in its listings. */
#define LIST_DEPTH_MAX 32

/* Bytes handed to the download callback at a time. libssh2 turns one read
 * of this size into several pipelined 30000-byte SFTP requests, which
 * hides the round trip time. */
#define DOWNLOAD_BLOCK_SIZE (256 * 1024)

/* Used when a hand-built config has no timeout. config_load() requires a
 * positive one. */
#define DEFAULT_TIMEOUT_SECONDS 30

/* Escaped remote paths in messages are cut to this size. */
#define SHOWN_PATH_SIZE 320

struct remote {
  LIBSSH2_SESSION *session;
  LIBSSH2_SFTP *sftp;
  int socket;
  bool handshake_done;
  int timeout;        /* seconds */
  char endpoint[300]; /* "host:port" for messages, escaped */
  char user[128];     /* user name for messages, escaped */
  struct remote_host_key host_key;
};

/* NOTE: libssh2_init() is not thread-safe, so the first remote_connect()
 * must not run in two threads at once. */
static bool library_ready;

/* ---- Error mapping ---------------------------------------------------- */

struct sftp_status {
  unsigned long status;
  enum ag_code code;
  const char *reason;
};

static const struct sftp_status sftp_statuses[] = {
    {LIBSSH2_FX_NO_SUCH_FILE, AG_ENOENT, "no such file or folder"},
    {LIBSSH2_FX_NO_SUCH_PATH, AG_ENOENT, "no such file or folder"},
    {LIBSSH2_FX_PERMISSION_DENIED, AG_EREMOTE, "permission denied"},
    {LIBSSH2_FX_WRITE_PROTECT, AG_EREMOTE,
     "permission denied (write protected)"},
    {LIBSSH2_FX_FILE_ALREADY_EXISTS, AG_EEXIST, "the file already exists"},
    {LIBSSH2_FX_FAILURE, AG_EREMOTE,
     "the server reported a failure without details (SSH_FX_FAILURE)"},
    {LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM, AG_EREMOTE,
     "no space left on the server"},
    {LIBSSH2_FX_QUOTA_EXCEEDED, AG_EREMOTE,
     "the user's disk quota on the server is exceeded"},
    {LIBSSH2_FX_NOT_A_DIRECTORY, AG_EREMOTE,
     "a component of the path is not a folder"},
    {LIBSSH2_FX_DIR_NOT_EMPTY, AG_EREMOTE, "the folder is not empty"},
    {LIBSSH2_FX_INVALID_FILENAME, AG_EREMOTE, "the server rejects the name"},
    {LIBSSH2_FX_LINK_LOOP, AG_EREMOTE, "too many levels of symbolic links"},
    {LIBSSH2_FX_LOCK_CONFLICT, AG_EREMOTE, "the file is locked on the server"},
    {LIBSSH2_FX_OP_UNSUPPORTED, AG_EREMOTE,
     "the server does not support this operation"},
    {LIBSSH2_FX_BAD_MESSAGE, AG_EREMOTE,
     "the server rejected the request as malformed"},
    {LIBSSH2_FX_NO_CONNECTION, AG_ECONNECT, "the server has no connection"},
    {LIBSSH2_FX_CONNECTION_LOST, AG_ECONNECT, "the connection was lost"},
};

static bool status_is_missing(unsigned long status)
{
  return status == LIBSSH2_FX_NO_SUCH_FILE || status == LIBSSH2_FX_NO_SUCH_PATH;
}

/* Record an SFTP status reply for the request described by what, such as
 * "stat '/inbox/a.xml'". */
static enum ag_code fail_status(struct remote *remote, unsigned long status,
                                const char *what, struct ag_error *err)
{
  const struct sftp_status *known = NULL;

  for (size_t i = 0; i < sizeof(sftp_statuses) / sizeof(sftp_statuses[0]);
       i++) {
    if (sftp_statuses[i].status == status)
      known = &sftp_statuses[i];
  }
  if (known == NULL) {
    return ag_error_set(err, AG_EREMOTE, "cannot %s on %s: SFTP status %lu",
                        what, remote->endpoint, status);
  }
  if (status == LIBSSH2_FX_PERMISSION_DENIED ||
      status == LIBSSH2_FX_WRITE_PROTECT) {
    return ag_error_set(err, known->code,
                        "cannot %s on %s: %s. Check that user '%s' has the "
                        "access rights for this on the server",
                        what, remote->endpoint, known->reason, remote->user);
  }
  return ag_error_set(err, known->code, "cannot %s on %s: %s", what,
                      remote->endpoint, known->reason);
}

static bool is_connection_error(int rc)
{
  switch (rc) {
  case LIBSSH2_ERROR_SOCKET_NONE:
  case LIBSSH2_ERROR_BANNER_RECV:
  case LIBSSH2_ERROR_BANNER_SEND:
  case LIBSSH2_ERROR_INVALID_MAC:
  case LIBSSH2_ERROR_KEX_FAILURE:
  case LIBSSH2_ERROR_SOCKET_SEND:
  case LIBSSH2_ERROR_KEY_EXCHANGE_FAILURE:
  case LIBSSH2_ERROR_DECRYPT:
  case LIBSSH2_ERROR_SOCKET_DISCONNECT:
  case LIBSSH2_ERROR_PROTO:
  case LIBSSH2_ERROR_CHANNEL_FAILURE:
  case LIBSSH2_ERROR_CHANNEL_CLOSED:
  case LIBSSH2_ERROR_CHANNEL_EOF_SENT:
  case LIBSSH2_ERROR_SOCKET_TIMEOUT:
  case LIBSSH2_ERROR_SOCKET_RECV:
  case LIBSSH2_ERROR_BAD_SOCKET:
  case LIBSSH2_ERROR_MAC_FAILURE:
    return true;
  default:
    return false;
  }
}

/* Record the failure rc of a libssh2 call for the request described by
 * what. Codes that name no connection, timeout or SFTP status become
 * fallback. */
static enum ag_code fail_call(struct remote *remote, int rc, const char *what,
                              enum ag_code fallback, struct ag_error *err)
{
  char *text = NULL;
  char reason[256];

  if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL && remote->sftp != NULL)
    return fail_status(remote, libssh2_sftp_last_error(remote->sftp), what,
                       err);

  libssh2_session_last_error(remote->session, &text, NULL, 0);
  if (text == NULL || text[0] == '\0')
    text = "unknown error";
  log_escape(reason, sizeof(reason), text, strlen(text));

  if (rc == LIBSSH2_ERROR_TIMEOUT) {
    return ag_error_set(err, AG_ETIMEDOUT,
                        "cannot %s on %s: no response within %d s. Check "
                        "the network and the server, or raise timeout in "
                        "the config",
                        what, remote->endpoint, remote->timeout);
  }
  if (rc == LIBSSH2_ERROR_ALLOC)
    return ag_error_set(err, AG_ENOMEM, "cannot %s on %s: out of memory", what,
                        remote->endpoint);
  if (is_connection_error(rc)) {
    return ag_error_set(err, AG_ECONNECT,
                        "cannot %s on %s: the connection failed (%s). Close "
                        "the session and connect again",
                        what, remote->endpoint, reason);
  }
  return ag_error_set(err, fallback, "cannot %s on %s: %s (libssh2 error %d)",
                      what, remote->endpoint, reason, rc);
}

/* Record the failure of an SFTP request of the given kind on path. */
static enum ag_code fail_path(struct remote *remote, int rc,
                              const char *operation, const char *path,
                              struct ag_error *err)
{
  char shown[SHOWN_PATH_SIZE];
  char what[SHOWN_PATH_SIZE + 64];

  log_escape(shown, sizeof(shown), path, strlen(path));
  snprintf(what, sizeof(what), "%s '%s'", operation, shown);
  return fail_call(remote, rc, what, AG_EREMOTE, err);
}

/* Reject paths that are empty or longer than the SFTP calls accept. */
static enum ag_code check_path(struct remote *remote, const char *operation,
                               const char *path, struct ag_error *err)
{
  size_t len = strlen(path);

  if (len == 0)
    return ag_error_set(err, AG_EREMOTE, "cannot %s an empty path on %s",
                        operation, remote->endpoint);
  if (len > REMOTE_PATH_MAX) {
    char shown[64];
    log_escape(shown, sizeof(shown), path, len);
    return ag_error_set(err, AG_EREMOTE,
                        "cannot %s '%s' on %s: the path is longer than %d "
                        "bytes",
                        operation, shown, remote->endpoint, REMOTE_PATH_MAX);
  }
  return AG_OK;
}

/* ---- Connection ------------------------------------------------------- */

/* libssh2 sends with plain send(), so a peer that closed the connection
 * would raise SIGPIPE and end the process. MSG_NOSIGNAL makes that an
 * EPIPE error. The return values follow libssh2's own send function:
 * -errno on failure, with EINTR reported as EAGAIN. */
static ssize_t send_without_sigpipe(libssh2_socket_t fd, const void *buffer,
                                    size_t length, int flags, void **abstract)
{
  (void)abstract;
  ssize_t sent = send(fd, buffer, length, flags | MSG_NOSIGNAL);

  if (sent >= 0)
    return sent;
  if (errno == EINTR || errno == EWOULDBLOCK)
    return -EAGAIN;
  return -errno;
}

static int64_t monotonic_ms(void)
{
  struct timespec now;

  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Wait for a non-blocking connect() to finish. Returns 0 or an errno. */
static int wait_connected(int fd, int timeout_ms)
{
  int64_t deadline = monotonic_ms() + timeout_ms;

  for (;;) {
    int64_t left = deadline - monotonic_ms();
    if (left <= 0)
      return ETIMEDOUT;

    struct pollfd entry = {.fd = fd, .events = POLLOUT};
    int ready = poll(&entry, 1, (int)left);
    if (ready < 0 && errno == EINTR)
      continue;
    if (ready < 0)
      return errno;
    if (ready == 0)
      return ETIMEDOUT;

    int error = 0;
    socklen_t size = sizeof(error);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0)
      return errno;
    return error;
  }
}

/* Connect a blocking TCP socket to address within timeout_ms. Returns 0
 * and stores the socket in *out, or returns an errno. */
static int connect_address(const struct addrinfo *address, int timeout_ms,
                           int *out)
{
  int fd = socket(address->ai_family,
                  address->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                  address->ai_protocol);
  if (fd < 0)
    return errno;

  int error = 0;
  if (connect(fd, address->ai_addr, address->ai_addrlen) != 0)
    error = errno == EINPROGRESS ? wait_connected(fd, timeout_ms) : errno;

  if (error == 0) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
      error = errno;
  }
  if (error != 0) {
    close(fd);
    return error;
  }

  /* SFTP waits for a reply to each small request, so Nagle's algorithm
   * would only add delay. A failure here costs speed, not correctness. */
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  *out = fd;
  return 0;
}

/* Resolve the configured host and connect to the first address that
 * accepts, giving each address the full timeout as OpenSSH does. */
static enum ag_code connect_socket(struct remote *remote,
                                   const struct config *config,
                                   struct ag_error *err)
{
  struct addrinfo hints;
  struct addrinfo *addresses = NULL;
  char port[16];
  char shown_address[NI_MAXHOST] = "none";
  int error = 0;

  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  snprintf(port, sizeof(port), "%d", config->port);

  int rc = getaddrinfo(config->host, port, &hints, &addresses);
  if (rc != 0) {
    char host[256];
    log_escape(host, sizeof(host), config->host, strlen(config->host));
    return ag_error_set(err, AG_ECONNECT,
                        "cannot resolve host '%s': %s. Check host in the "
                        "config",
                        host,
                        rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
  }

  for (struct addrinfo *address = addresses; address != NULL;
       address = address->ai_next) {
    getnameinfo(address->ai_addr, address->ai_addrlen, shown_address,
                sizeof(shown_address), NULL, 0, NI_NUMERICHOST);
    error = connect_address(address, remote->timeout * 1000, &remote->socket);
    if (error == 0)
      break;
    log_debug("cannot connect to %s at address %s: %s", remote->endpoint,
              shown_address, strerror(error));
  }
  freeaddrinfo(addresses);

  if (remote->socket >= 0)
    return AG_OK;
  if (error == ETIMEDOUT) {
    return ag_error_set(err, AG_ECONNECT,
                        "cannot connect to %s (address %s): timed out after "
                        "%d s. Check that the server is reachable from this "
                        "machine and that no firewall drops the connection",
                        remote->endpoint, shown_address, remote->timeout);
  }
  return ag_error_set(err, AG_ECONNECT,
                      "cannot connect to %s (address %s): %s. Check that the "
                      "SSH server is running and that host and port in the "
                      "config are right",
                      remote->endpoint, shown_address, strerror(error));
}

/* Create the libssh2 session and run the SSH handshake, after loading
 * known_hosts so that the host key algorithms can be chosen first. */
static enum ag_code start_session(struct remote *remote,
                                  const struct config *config,
                                  struct remote_known_hosts *known,
                                  struct ag_error *err)
{
  remote->session = libssh2_session_init_ex(NULL, NULL, NULL, remote);
  if (remote->session == NULL)
    return ag_error_set(err, AG_ENOMEM,
                        "cannot create an SSH session for "
                        "%s: out of memory",
                        remote->endpoint);

  libssh2_session_set_blocking(remote->session, 1);
  libssh2_session_set_timeout(remote->session, remote->timeout * 1000L);
  libssh2_session_set_read_timeout(remote->session, remote->timeout);
  libssh2_session_callback_set2(remote->session, LIBSSH2_CALLBACK_SEND,
                                (libssh2_cb_generic *)send_without_sigpipe);

  enum ag_code code = remote_hostkey_prepare(remote->session, config,
                                             remote->endpoint, known, err);
  if (code != AG_OK)
    return code;

  int rc = libssh2_session_handshake(remote->session, remote->socket);
  if (rc != 0)
    return fail_call(remote, rc, "complete the SSH handshake", AG_ECONNECT,
                     err);
  remote->handshake_done = true;
  return AG_OK;
}

/* Return whether the comma-separated list methods contains method. */
static bool method_offered(const char *methods, const char *method)
{
  size_t len = strlen(method);
  const char *item = methods;

  while (*item != '\0') {
    const char *comma = strchr(item, ',');
    size_t item_len = comma != NULL ? (size_t)(comma - item) : strlen(item);
    if (item_len == len && memcmp(item, method, len) == 0)
      return true;
    if (comma == NULL)
      break;
    item = comma + 1;
  }
  return false;
}

/* Append "<method> (<libssh2 reason>)" to the list of tried methods. */
static void note_attempt(struct remote *remote, char *tried, size_t size,
                         const char *method)
{
  char *text = NULL;
  char reason[256];
  size_t used = strlen(tried);

  libssh2_session_last_error(remote->session, &text, NULL, 0);
  if (text == NULL || text[0] == '\0')
    text = "rejected";
  log_escape(reason, sizeof(reason), text, strlen(text));
  snprintf(tried + used, size - used, "%s%s (%s)", used > 0 ? ", " : "", method,
           reason);
}

/* Handle the result rc of one authentication attempt. Stores in *done
 * whether it succeeded and notes a rejection in tried. Returns an error
 * only when the connection failed. */
static enum ag_code finish_attempt(struct remote *remote, int rc,
                                   const char *method, char *tried,
                                   size_t tried_size, bool *done,
                                   struct ag_error *err)
{
  *done = rc == 0;
  if (rc == 0)
    return AG_OK;
  if (is_connection_error(rc) || rc == LIBSSH2_ERROR_TIMEOUT ||
      rc == LIBSSH2_ERROR_ALLOC)
    return fail_call(remote, rc, "authenticate", AG_EAUTH, err);

  note_attempt(remote, tried, tried_size, method);
  return AG_OK;
}

/* Try public key, then password authentication, as configured and as the
 * server offers them. Stores in *done whether the session is
 * authenticated. */
static enum ag_code try_methods(struct remote *remote,
                                const struct config *config,
                                const char *offered, char *tried,
                                size_t tried_size, bool *done,
                                struct ag_error *err)
{
  unsigned user_len = (unsigned)strlen(config->user);
  enum ag_code code = AG_OK;

  *done = false;
  if (config->private_key != NULL && method_offered(offered, "publickey")) {
    /* libssh2 passes the passphrase to strlen() when it decrypts a PEM
     * key, so an empty one stands for "no passphrase". libssh2 1.11
     * derives the public key from the private key file. */
    const char *passphrase =
        config->passphrase != NULL ? config->passphrase : "";
    char method[SHOWN_PATH_SIZE + 32];
    char shown[SHOWN_PATH_SIZE];

    log_escape(shown, sizeof(shown), config->private_key,
               strlen(config->private_key));
    snprintf(method, sizeof(method), "publickey with key '%s'", shown);
    int rc = libssh2_userauth_publickey_fromfile_ex(
        remote->session, config->user, user_len, NULL, config->private_key,
        passphrase);
    code = finish_attempt(remote, rc, method, tried, tried_size, done, err);
    if (code != AG_OK || *done)
      return code;
  }

  if (config->password != NULL && method_offered(offered, "password")) {
    int rc = libssh2_userauth_password_ex(
        remote->session, config->user, user_len, config->password,
        (unsigned)strlen(config->password), NULL);
    code = finish_attempt(remote, rc, "password", tried, tried_size, done, err);
  }
  return code;
}

/* Authenticate as config->user with the methods the config sets. The
 * error names the methods tried and those the server allows, and never
 * the passphrase or password. */
static enum ag_code authenticate(struct remote *remote,
                                 const struct config *config,
                                 struct ag_error *err)
{
  char offered[256];
  char tried[768] = "";
  bool done = false;

  char *list = libssh2_userauth_list(remote->session, config->user,
                                     (unsigned)strlen(config->user));
  if (list == NULL) {
    /* A NULL list with success means the server accepted "none". */
    if (libssh2_userauth_authenticated(remote->session))
      return AG_OK;
    return fail_call(remote, libssh2_session_last_errno(remote->session),
                     "request the authentication methods", AG_EAUTH, err);
  }
  /* Copy the list, because the next libssh2 call frees it. */
  log_escape(offered, sizeof(offered), list, strlen(list));

  enum ag_code code =
      try_methods(remote, config, offered, tried, sizeof(tried), &done, err);
  if (code != AG_OK || done)
    return code;

  if (tried[0] == '\0') {
    return ag_error_set(err, AG_EAUTH,
                        "cannot authenticate as user '%s' on %s: the server "
                        "allows %s, and the config sets none of these. Set "
                        "private_key or password_file",
                        remote->user, remote->endpoint, offered);
  }
  return ag_error_set(err, AG_EAUTH,
                      "authentication as user '%s' on %s failed. Tried: %s. "
                      "The server allows: %s. Check the user name, that the "
                      "public key is in the user's authorized_keys on the "
                      "server, and the passphrase or password file",
                      remote->user, remote->endpoint, tried, offered);
}

static void set_endpoint(struct remote *remote, const struct config *config)
{
  char host[256];

  log_escape(host, sizeof(host), config->host, strlen(config->host));
  if (strchr(config->host, ':') != NULL)
    snprintf(remote->endpoint, sizeof(remote->endpoint), "[%s]:%d", host,
             config->port);
  else
    snprintf(remote->endpoint, sizeof(remote->endpoint), "%s:%d", host,
             config->port);
  log_escape(remote->user, sizeof(remote->user), config->user,
             strlen(config->user));
}

enum ag_code remote_connect(const struct config *config, struct remote **out,
                            struct ag_error *err)
{
  struct remote_known_hosts known;
  enum ag_code code = AG_OK;
  struct remote *remote = calloc(1, sizeof(*remote));

  *out = NULL;
  memset(&known, 0, sizeof(known));
  if (remote == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory connecting");
  if (config->host == NULL || config->user == NULL) {
    free(remote);
    return ag_error_set(err, AG_ECONFIG,
                        "cannot connect: the config sets "
                        "no host or no user");
  }
  remote->socket = -1;
  remote->timeout =
      config->timeout > 0 ? config->timeout : DEFAULT_TIMEOUT_SECONDS;
  set_endpoint(remote, config);

  if (!library_ready) {
    if (libssh2_init(0) != 0) {
      code = ag_error_set(err, AG_ENOMEM, "cannot initialize libssh2");
      goto out;
    }
    library_ready = true;
  }

  code = connect_socket(remote, config, err);
  if (code == AG_OK)
    code = start_session(remote, config, &known, err);
  if (code == AG_OK)
    code = remote_hostkey_verify(remote->session, config, remote->endpoint,
                                 &known, &remote->host_key, err);
  if (code == AG_OK)
    code = authenticate(remote, config, err);
  if (code != AG_OK)
    goto out;

  remote->sftp = libssh2_sftp_init(remote->session);
  if (remote->sftp == NULL) {
    code = fail_call(remote, libssh2_session_last_errno(remote->session),
                     "start the SFTP subsystem", AG_ECONNECT, err);
    goto out;
  }
  log_debug("connected to %s as user '%s' (%s host key %s)", remote->endpoint,
            remote->user, remote->host_key.type, remote->host_key.fingerprint);
  *out = remote;
  remote = NULL;

out:
  remote_known_hosts_free(&known);
  remote_close(remote);
  return code;
}

void remote_close(struct remote *remote)
{
  if (remote == NULL)
    return;

  if (remote->sftp != NULL)
    libssh2_sftp_shutdown(remote->sftp);
  if (remote->session != NULL) {
    if (remote->handshake_done)
      libssh2_session_disconnect(remote->session, "normal shutdown");
    libssh2_session_free(remote->session);
  }
  if (remote->socket >= 0)
    close(remote->socket);
  free(remote);
}

const char *remote_host_key_fingerprint(const struct remote *remote)
{
  return remote->host_key.fingerprint;
}

const char *remote_host_key_type(const struct remote *remote)
{
  return remote->host_key.type;
}

/* ---- Listing ---------------------------------------------------------- */

/* SFTP version 3 attributes carry the file type in the permission bits,
 * which a server may leave out. */
static enum remote_kind kind_of(const LIBSSH2_SFTP_ATTRIBUTES *attrs)
{
  if (!(attrs->flags & LIBSSH2_SFTP_ATTR_PERMISSIONS))
    return REMOTE_OTHER;
  if (LIBSSH2_SFTP_S_ISREG(attrs->permissions))
    return REMOTE_FILE;
  if (LIBSSH2_SFTP_S_ISDIR(attrs->permissions))
    return REMOTE_DIR;
  if (LIBSSH2_SFTP_S_ISLNK(attrs->permissions))
    return REMOTE_SYMLINK;
  return REMOTE_OTHER;
}

/* Fill entry from attrs. Missing size or mtime become 0. */
static void fill_entry(struct remote_entry *entry, const char *rel,
                       size_t rel_len, const LIBSSH2_SFTP_ATTRIBUTES *attrs)
{
  entry->rel = rel;
  entry->rel_len = rel_len;
  entry->kind = kind_of(attrs);
  entry->size = (attrs->flags & LIBSSH2_SFTP_ATTR_SIZE) ? attrs->filesize : 0;
  entry->mtime =
      (attrs->flags & LIBSSH2_SFTP_ATTR_ACMODTIME) ? (int64_t)attrs->mtime : 0;
}

struct list_walk {
  struct remote *remote;
  bool recursive;
  const char *const *skip;
  size_t skip_count;
  remote_list_fn fn;
  void *ctx;
  char path[REMOTE_PATH_MAX + 1]; /* absolute path of the current entry */
  size_t rel_start;               /* where the relative path starts */
  char name[1024];                /* one readdir name */
};

static bool is_skipped(const struct list_walk *walk, size_t path_len)
{
  for (size_t i = 0; i < walk->skip_count; i++) {
    size_t len = strlen(walk->skip[i]);
    while (len > 1 && walk->skip[i][len - 1] == '/')
      len--;
    if (len == path_len && memcmp(walk->skip[i], walk->path, len) == 0)
      return true;
  }
  return false;
}

static bool is_dot_name(const char *name, size_t len)
{
  return (len == 1 && name[0] == '.') ||
         (len == 2 && name[0] == '.' && name[1] == '.');
}

/* Return whether a name from the server can be used as a path component.
 * A hostile server could send names with '/' or NUL to make the walk
 * leave the listed folder or confuse path handling. */
static bool is_plain_name(const char *name, size_t len)
{
  return memchr(name, '/', len) == NULL && memchr(name, '\0', len) == NULL;
}

static enum ag_code walk_folder(struct list_walk *walk, size_t path_len,
                                int depth, struct ag_error *err);

/* Report one readdir entry whose name is in walk->name, and walk into it
 * when it is a folder and the listing is recursive. */
static enum ag_code visit_entry(struct list_walk *walk, size_t path_len,
                                size_t name_len,
                                const LIBSSH2_SFTP_ATTRIBUTES *attrs, int depth,
                                struct ag_error *err)
{
  struct remote_entry entry;
  size_t separator = walk->path[path_len - 1] == '/' ? 0 : 1;
  size_t full_len = path_len + separator + name_len;

  if (full_len > REMOTE_PATH_MAX) {
    char shown[SHOWN_PATH_SIZE];
    log_escape(shown, sizeof(shown), walk->path, path_len);
    return ag_error_set(err, AG_EREMOTE,
                        "cannot list an entry of '%s' on %s: its path would "
                        "be longer than %d bytes",
                        shown, walk->remote->endpoint, REMOTE_PATH_MAX);
  }
  if (separator)
    walk->path[path_len] = '/';
  memcpy(walk->path + path_len + separator, walk->name, name_len);
  walk->path[full_len] = '\0';

  fill_entry(&entry, walk->path + walk->rel_start, full_len - walk->rel_start,
             attrs);
  if (entry.kind == REMOTE_DIR && is_skipped(walk, full_len))
    return AG_OK;

  enum ag_code code = walk->fn(walk->ctx, &entry);
  if (code != AG_OK || !walk->recursive || entry.kind != REMOTE_DIR)
    return code;
  if (depth >= LIST_DEPTH_MAX) {
    char shown[SHOWN_PATH_SIZE];
    log_escape(shown, sizeof(shown), walk->path, full_len);
    return ag_error_set(err, AG_EREMOTE,
                        "cannot list '%s' on %s: folders nest more than %d "
                        "levels deep below the listed folder. Move the files "
                        "to a shallower folder",
                        shown, walk->remote->endpoint, LIST_DEPTH_MAX);
  }
  return walk_folder(walk, full_len, depth + 1, err);
}

/* List the folder at walk->path[0..path_len). */
static enum ag_code walk_folder(struct list_walk *walk, size_t path_len,
                                int depth, struct ag_error *err)
{
  struct remote *remote = walk->remote;
  enum ag_code code = AG_OK;
  size_t rejected = 0;
  LIBSSH2_SFTP_ATTRIBUTES attrs;

  LIBSSH2_SFTP_HANDLE *handle = libssh2_sftp_open_ex(
      remote->sftp, walk->path, (unsigned)path_len, 0, 0, LIBSSH2_SFTP_OPENDIR);
  if (handle == NULL)
    return fail_path(remote, libssh2_session_last_errno(remote->session),
                     "list folder", walk->path, err);

  /* OpenSSH's server fills readdir attributes with lstat(), so symbolic
   * links arrive as links. A server that follows them instead makes the
   * walk enter linked folders, bounded by LIST_DEPTH_MAX. */
  for (;;) {
    int rc = libssh2_sftp_readdir_ex(handle, walk->name, sizeof(walk->name),
                                     NULL, 0, &attrs);
    walk->path[path_len] = '\0';
    if (rc == 0)
      break;
    if (rc < 0) {
      code = fail_path(remote, rc, "list folder", walk->path, err);
      goto out;
    }
    if (is_dot_name(walk->name, (size_t)rc))
      continue;
    if (!is_plain_name(walk->name, (size_t)rc)) {
      rejected++;
      continue;
    }
    code = visit_entry(walk, path_len, (size_t)rc, &attrs, depth, err);
    if (code != AG_OK)
      goto out;
  }

out:
  walk->path[path_len] = '\0';
  if (rejected > 0) {
    char shown[SHOWN_PATH_SIZE];
    log_escape(shown, sizeof(shown), walk->path, path_len);
    log_warn("skipped %zu entries of '%s' on %s whose names contain '/' or "
             "NUL",
             rejected, shown, remote->endpoint);
  }
  libssh2_sftp_close_handle(handle);
  return code;
}

enum ag_code remote_list(struct remote *remote, const char *dir, bool recursive,
                         const char *const *skip, size_t skip_count,
                         remote_list_fn fn, void *ctx, struct ag_error *err)
{
  enum ag_code code = check_path(remote, "list", dir, err);
  if (code != AG_OK)
    return code;

  /* The walk state contains 5 KiB of path buffers, allocated once rather
   * than on the stack of every level. */
  struct list_walk *walk = calloc(1, sizeof(*walk));
  if (walk == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory listing a folder");
  walk->remote = remote;
  walk->recursive = recursive;
  walk->skip = skip;
  walk->skip_count = skip_count;
  walk->fn = fn;
  walk->ctx = ctx;

  size_t len = strlen(dir);
  memcpy(walk->path, dir, len + 1);
  walk->rel_start = dir[len - 1] == '/' ? len : len + 1;
  code = walk_folder(walk, len, 0, err);
  free(walk);
  return code;
}

/* ---- Single-file operations ------------------------------------------- */

enum ag_code remote_stat(struct remote *remote, const char *path,
                         struct remote_entry *entry, struct ag_error *err)
{
  LIBSSH2_SFTP_ATTRIBUTES attrs;
  enum ag_code code = check_path(remote, "stat", path, err);
  if (code != AG_OK)
    return code;

  int rc = libssh2_sftp_stat_ex(remote->sftp, path, (unsigned)strlen(path),
                                LIBSSH2_SFTP_LSTAT, &attrs);
  if (rc != 0)
    return fail_path(remote, rc, "stat", path, err);
  fill_entry(entry, NULL, 0, &attrs);
  return AG_OK;
}

/* Store in *exists whether path exists, without following a final
 * symbolic link. */
static enum ag_code path_exists(struct remote *remote, const char *path,
                                bool *exists, struct ag_error *err)
{
  LIBSSH2_SFTP_ATTRIBUTES attrs;
  int rc = libssh2_sftp_stat_ex(remote->sftp, path, (unsigned)strlen(path),
                                LIBSSH2_SFTP_LSTAT, &attrs);

  *exists = rc == 0;
  if (rc == 0 || (rc == LIBSSH2_ERROR_SFTP_PROTOCOL &&
                  status_is_missing(libssh2_sftp_last_error(remote->sftp))))
    return AG_OK;
  return fail_path(remote, rc, "stat", path, err);
}

/* Fill block with up to DOWNLOAD_BLOCK_SIZE bytes. *filled is less than
 * that only at the end of the file. */
static enum ag_code read_block(struct remote *remote,
                               LIBSSH2_SFTP_HANDLE *handle, const char *path,
                               char *block, size_t *filled,
                               struct ag_error *err)
{
  *filled = 0;
  while (*filled < DOWNLOAD_BLOCK_SIZE) {
    ssize_t got = libssh2_sftp_read(handle, block + *filled,
                                    DOWNLOAD_BLOCK_SIZE - *filled);
    if (got < 0)
      return fail_path(remote, (int)got, "read", path, err);
    if (got == 0)
      break;
    *filled += (size_t)got;
  }
  return AG_OK;
}

/* Compare what was read and the open file's attributes with the listing.
 * An attribute the server does not report is not compared. */
static enum ag_code check_unchanged(struct remote *remote,
                                    LIBSSH2_SFTP_HANDLE *handle,
                                    const char *path, uint64_t read_size,
                                    uint64_t expect_size, int64_t expect_mtime,
                                    struct ag_error *err)
{
  LIBSSH2_SFTP_ATTRIBUTES attrs;
  char shown[SHOWN_PATH_SIZE];

  log_escape(shown, sizeof(shown), path, strlen(path));
  if (read_size != expect_size) {
    return ag_error_set(err, AG_ECHANGED,
                        "'%s' on %s changed during the download: read %" PRIu64
                        " bytes, expected %" PRIu64,
                        shown, remote->endpoint, read_size, expect_size);
  }

  int rc = libssh2_sftp_fstat_ex(handle, &attrs, 0);
  if (rc != 0)
    return fail_path(remote, rc, "fstat", path, err);

  if ((attrs.flags & LIBSSH2_SFTP_ATTR_SIZE) && attrs.filesize != expect_size) {
    return ag_error_set(err, AG_ECHANGED,
                        "'%s' on %s changed during the download: size is "
                        "now %" PRIu64 " bytes, expected %" PRIu64,
                        shown, remote->endpoint, (uint64_t)attrs.filesize,
                        expect_size);
  }
  if ((attrs.flags & LIBSSH2_SFTP_ATTR_ACMODTIME) &&
      (int64_t)attrs.mtime != expect_mtime) {
    return ag_error_set(err, AG_ECHANGED,
                        "'%s' on %s changed during the download: mtime is "
                        "now %" PRId64 ", expected %" PRId64,
                        shown, remote->endpoint, (int64_t)attrs.mtime,
                        expect_mtime);
  }
  return AG_OK;
}

enum ag_code remote_download(struct remote *remote, const char *path,
                             uint64_t expect_size, int64_t expect_mtime,
                             remote_data_fn fn, void *ctx, struct ag_error *err)
{
  LIBSSH2_SFTP_HANDLE *handle = NULL;
  uint64_t total = 0;
  size_t filled = DOWNLOAD_BLOCK_SIZE;
  char *block = NULL;
  enum ag_code code = check_path(remote, "download", path, err);
  if (code != AG_OK)
    return code;

  block = malloc(DOWNLOAD_BLOCK_SIZE);
  if (block == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory for a download");

  handle = libssh2_sftp_open_ex(remote->sftp, path, (unsigned)strlen(path),
                                LIBSSH2_FXF_READ, 0, LIBSSH2_SFTP_OPENFILE);
  if (handle == NULL) {
    code = fail_path(remote, libssh2_session_last_errno(remote->session),
                     "open", path, err);
    goto out;
  }

  /* A block shorter than DOWNLOAD_BLOCK_SIZE marks the end of the file. */
  while (filled == DOWNLOAD_BLOCK_SIZE) {
    code = read_block(remote, handle, path, block, &filled, err);
    if (code != AG_OK)
      goto out;
    total += filled;
    /* Stop early instead of reading a file that keeps growing. */
    if (total > expect_size)
      break;
    if (filled > 0)
      code = fn(ctx, block, filled, err);
    if (code != AG_OK)
      goto out;
  }
  code = check_unchanged(remote, handle, path, total, expect_size, expect_mtime,
                         err);

out:
  if (handle != NULL)
    libssh2_sftp_close_handle(handle);
  free(block);
  return code;
}

/* Record that to exists, so from cannot be renamed onto it. */
static enum ag_code report_target_exists(struct remote *remote,
                                         const char *from, const char *to,
                                         struct ag_error *err)
{
  char shown_from[SHOWN_PATH_SIZE];
  char shown_to[SHOWN_PATH_SIZE];

  log_escape(shown_from, sizeof(shown_from), from, strlen(from));
  log_escape(shown_to, sizeof(shown_to), to, strlen(to));
  return ag_error_set(err, AG_EEXIST,
                      "cannot rename '%s' to '%s' on %s: the target exists. "
                      "The agent never replaces remote files, so move or "
                      "delete the target on the server",
                      shown_from, shown_to, remote->endpoint);
}

enum ag_code remote_rename(struct remote *remote, const char *from,
                           const char *to, struct ag_error *err)
{
  bool exists = false;
  enum ag_code code = check_path(remote, "rename", from, err);
  if (code == AG_OK)
    code = check_path(remote, "rename to", to, err);
  if (code != AG_OK)
    return code;

  /* OpenSSH's server refuses to replace a file on rename, but servers that
   * map SFTP rename to POSIX rename() replace it silently, so look first.
   * NOTE: a file created at the target between this check and the rename
   * is still replaced on such servers. */
  code = path_exists(remote, to, &exists, err);
  if (code != AG_OK)
    return code;
  if (exists)
    return report_target_exists(remote, from, to, err);

  /* Flags 0: no OVERWRITE. SFTP version 3 servers ignore the flags. */
  int rc = libssh2_sftp_rename_ex(remote->sftp, from, (unsigned)strlen(from),
                                  to, (unsigned)strlen(to), 0);
  if (rc == 0)
    return AG_OK;

  /* OpenSSH reports an existing target as SSH_FX_FAILURE, so a failure
   * with the target present means the target appeared meanwhile. */
  unsigned long status = rc == LIBSSH2_ERROR_SFTP_PROTOCOL
                             ? libssh2_sftp_last_error(remote->sftp)
                             : LIBSSH2_FX_OK;
  if (status == LIBSSH2_FX_FAILURE ||
      status == LIBSSH2_FX_FILE_ALREADY_EXISTS) {
    code = path_exists(remote, to, &exists, err);
    if (code != AG_OK)
      return code;
    if (exists)
      return report_target_exists(remote, from, to, err);
  }

  char shown_from[SHOWN_PATH_SIZE];
  char shown_to[SHOWN_PATH_SIZE];
  char what[2 * SHOWN_PATH_SIZE + 32];
  log_escape(shown_from, sizeof(shown_from), from, strlen(from));
  log_escape(shown_to, sizeof(shown_to), to, strlen(to));
  snprintf(what, sizeof(what), "rename '%s' to '%s'", shown_from, shown_to);
  if (status != LIBSSH2_FX_OK)
    return fail_status(remote, status, what, err);
  return fail_call(remote, rc, what, AG_EREMOTE, err);
}

enum ag_code remote_unlink(struct remote *remote, const char *path,
                           struct ag_error *err)
{
  enum ag_code code = check_path(remote, "delete", path, err);
  if (code != AG_OK)
    return code;

  int rc = libssh2_sftp_unlink_ex(remote->sftp, path, (unsigned)strlen(path));
  if (rc != 0)
    return fail_path(remote, rc, "delete", path, err);
  return AG_OK;
}

/* Create the folder path unless it exists. Existing components are
 * checked with stat, which follows symbolic links, because an archive
 * folder is often a link to another volume. */
static enum ag_code make_folder(struct remote *remote, const char *path,
                                struct ag_error *err)
{
  LIBSSH2_SFTP_ATTRIBUTES attrs;
  unsigned len = (unsigned)strlen(path);

  for (int attempt = 0; attempt < 2; attempt++) {
    int rc = libssh2_sftp_stat_ex(remote->sftp, path, len, LIBSSH2_SFTP_STAT,
                                  &attrs);
    if (rc == 0) {
      /* Without permission bits the type is unknown, and a later mkdir
       * below a file fails with its own error. */
      if (!(attrs.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) ||
          LIBSSH2_SFTP_S_ISDIR(attrs.permissions))
        return AG_OK;
      char shown[SHOWN_PATH_SIZE];
      log_escape(shown, sizeof(shown), path, len);
      return ag_error_set(err, AG_EREMOTE,
                          "cannot create folder '%s' on %s: it exists and "
                          "is not a folder. Remove it on the server or "
                          "choose another folder in the config",
                          shown, remote->endpoint);
    }
    if (rc != LIBSSH2_ERROR_SFTP_PROTOCOL ||
        !status_is_missing(libssh2_sftp_last_error(remote->sftp)))
      return fail_path(remote, rc, "stat", path, err);

    rc = libssh2_sftp_mkdir_ex(remote->sftp, path, len, 0750);
    if (rc == 0)
      return AG_OK;
    /* Another client may have created it since the stat, so look again
     * once before reporting the mkdir error. */
    if (attempt == 1 || rc != LIBSSH2_ERROR_SFTP_PROTOCOL ||
        libssh2_sftp_last_error(remote->sftp) != LIBSSH2_FX_FAILURE)
      return fail_path(remote, rc, "create folder", path, err);
  }
  return AG_OK;
}

enum ag_code remote_mkdirs(struct remote *remote, const char *dir,
                           struct ag_error *err)
{
  char path[REMOTE_PATH_MAX + 1];
  enum ag_code code = check_path(remote, "create folder", dir, err);
  if (code != AG_OK)
    return code;

  size_t len = strlen(dir);
  memcpy(path, dir, len + 1);
  while (len > 1 && path[len - 1] == '/')
    path[--len] = '\0';

  /* The folder usually exists already, which one request confirms. */
  LIBSSH2_SFTP_ATTRIBUTES attrs;
  int rc = libssh2_sftp_stat_ex(remote->sftp, path, (unsigned)len,
                                LIBSSH2_SFTP_STAT, &attrs);
  if (rc == 0 && (attrs.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
      LIBSSH2_SFTP_S_ISDIR(attrs.permissions))
    return AG_OK;

  for (size_t i = 1; i <= len && code == AG_OK; i++) {
    if (path[i] != '/' && path[i] != '\0')
      continue;
    if (path[i - 1] == '/')
      continue;
    char saved = path[i];
    path[i] = '\0';
    code = make_folder(remote, path, err);
    path[i] = saved;
  }
  return code;
}

/* Write all of data to an open handle. */
static enum ag_code write_all(struct remote *remote,
                              LIBSSH2_SFTP_HANDLE *handle, const char *path,
                              const void *data, size_t len,
                              struct ag_error *err)
{
  const char *next = data;
  size_t left = len;

  while (left > 0) {
    ssize_t written = libssh2_sftp_write(handle, next, left);
    if (written < 0)
      return fail_path(remote, (int)written, "write", path, err);
    if (written == 0)
      return fail_path(remote, LIBSSH2_ERROR_SOCKET_SEND, "write", path, err);
    next += written;
    left -= (size_t)written;
  }
  return AG_OK;
}

/* Record the failure to open path with O_EXCL. OpenSSH reports an
 * existing file as SSH_FX_FAILURE, so look whether path exists. */
static enum ag_code fail_create(struct remote *remote, const char *path,
                                struct ag_error *err)
{
  int rc = libssh2_session_last_errno(remote->session);
  unsigned long status = rc == LIBSSH2_ERROR_SFTP_PROTOCOL
                             ? libssh2_sftp_last_error(remote->sftp)
                             : LIBSSH2_FX_OK;
  char shown[SHOWN_PATH_SIZE];
  char what[SHOWN_PATH_SIZE + 32];
  bool exists = false;

  log_escape(shown, sizeof(shown), path, strlen(path));
  snprintf(what, sizeof(what), "create file '%s'", shown);
  if (status != LIBSSH2_FX_FAILURE && status != LIBSSH2_FX_FILE_ALREADY_EXISTS)
    return fail_call(remote, rc, what, AG_EREMOTE, err);

  enum ag_code code = path_exists(remote, path, &exists, err);
  if (code != AG_OK)
    return code;
  if (exists)
    return ag_error_set(err, AG_EEXIST,
                        "cannot create file '%s' on %s: it already exists",
                        shown, remote->endpoint);
  return fail_status(remote, status, what, err);
}

enum ag_code remote_write_new(struct remote *remote, const char *path,
                              const void *data, size_t len,
                              struct ag_error *err)
{
  enum ag_code code = check_path(remote, "create file", path, err);
  if (code != AG_OK)
    return code;

  LIBSSH2_SFTP_HANDLE *handle = libssh2_sftp_open_ex(
      remote->sftp, path, (unsigned)strlen(path),
      LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL, 0640,
      LIBSSH2_SFTP_OPENFILE);
  if (handle == NULL)
    return fail_create(remote, path, err);

  code = write_all(remote, handle, path, data, len, err);
  int rc = libssh2_sftp_close_handle(handle);
  if (code == AG_OK && rc != 0)
    code = fail_path(remote, rc, "close", path, err);

  /* A partial file would make every retry fail with AG_EEXIST.
   * NOTE: when the connection is lost, this delete fails too and the
   * partial file stays. */
  if (code != AG_OK &&
      libssh2_sftp_unlink_ex(remote->sftp, path, (unsigned)strlen(path)) != 0)
    log_warn("cannot delete the partial file left by a failed write on %s",
             remote->endpoint);
  return code;
}
