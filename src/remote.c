/* SSH session lifecycle: TCP connection, handshake, host key check,
 * authentication and SFTP start in remote_connect(), then remote_close().
 * remote_internal.h lists the files that contain the other steps and the
 * SFTP operations.
 *
 * All libssh2 calls of the agent are in the remote*.c files. The session
 * runs in libssh2's blocking mode, where libssh2_session_set_timeout()
 * bounds each call. */
#include "agent/remote.h"

#include "agent/log.h"
#include "agent/platform.h"
#include "remote_internal.h"

#include <libssh2.h>
#include <libssh2_sftp.h>

#include <errno.h>
#include <fcntl.h>
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

/* Used when a hand-built config has no timeout. config_load() requires a
 * positive one. */
#define DEFAULT_TIMEOUT_SECONDS 30

/* NOTE: libssh2_init() is not thread-safe, so the first remote_connect()
 * must not run in two threads at once. */
static bool library_ready;

static enum ag_code init_library(struct ag_error *err)
{
  if (library_ready)
    return AG_OK;
  if (libssh2_init(0) != 0)
    return ag_error_set(err, AG_ENOMEM, "cannot initialize libssh2");
  library_ready = true;
  return AG_OK;
}

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

/* Record that no address accepted the connection. error is the errno of
 * the last attempt and shown_address that address in numeric form. */
static enum ag_code fail_connect(struct remote *remote, int error,
                                 const char *shown_address,
                                 struct ag_error *err)
{
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
  return fail_connect(remote, error, shown_address, err);
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
    return remote_fail_call(remote, rc, "complete the SSH handshake",
                            AG_ECONNECT, err);
  remote->handshake_done = true;
  return AG_OK;
}

/* Open the SFTP channel on the authenticated session. */
static enum ag_code start_sftp(struct remote *remote, struct ag_error *err)
{
  remote->sftp = libssh2_sftp_init(remote->session);
  if (remote->sftp == NULL)
    return remote_fail_call(remote, libssh2_session_last_errno(remote->session),
                            "start the SFTP subsystem", AG_ECONNECT, err);
  return AG_OK;
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

  /* A missing or exposed key is a config problem, so it is reported before
   * any network traffic instead of as a failed login. */
  if (config->private_key != NULL)
    code = plat_check_private_file(config->private_key, err);
  if (code == AG_OK)
    code = init_library(err);
  if (code == AG_OK)
    code = connect_socket(remote, config, err);
  if (code == AG_OK)
    code = start_session(remote, config, &known, err);
  if (code == AG_OK)
    code = remote_hostkey_verify(remote->session, config, remote->endpoint,
                                 &known, &remote->host_key, err);
  if (code == AG_OK)
    code = remote_authenticate(remote, config, err);
  if (code == AG_OK)
    code = start_sftp(remote, err);
  if (code != AG_OK)
    goto out;

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

enum ag_code remote_keepalive(struct remote *remote, int interval,
                              int *next_seconds, struct ag_error *err)
{
  *next_seconds = 0;
  if (interval <= 0)
    return AG_OK;

  /* Keepalives are configured for this call only. With an interval set,
   * libssh2 1.11 sends a due keepalive at the start of every blocking wait,
   * which breaks a key exchange in progress, and waits only until the next
   * one is due, so a slow reply would fail as a timeout long before
   * config->timeout. want_reply is 0 because libssh2 keeps every reply
   * that nobody reads in the session, where they would pile up. */
  libssh2_keepalive_config(remote->session, 0, (unsigned)interval);
  int rc = libssh2_keepalive_send(remote->session, next_seconds);
  libssh2_keepalive_config(remote->session, 0, 0);

  if (rc != 0)
    return remote_fail_call(remote, rc, "send a keepalive message", AG_ECONNECT,
                            err);
  return AG_OK;
}

const char *remote_host_key_fingerprint(const struct remote *remote)
{
  return remote->host_key.fingerprint;
}

const char *remote_host_key_type(const struct remote *remote)
{
  return remote->host_key.type;
}
