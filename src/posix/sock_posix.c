/* POSIX implementation of agent/sock.h: getaddrinfo(), a non-blocking
 * connect() bounded by poll(), and poll() for the waits between libssh2
 * calls. */
#include "agent/sock.h"

#include "agent/log.h"
#include "agent/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Wait for a non-blocking connect() on fd to finish. Returns 0 or an
 * errno value, ETIMEDOUT when timeout_ms passed first. */
static int wait_connected(int fd, int timeout_ms)
{
  enum ag_code code = sock_wait(fd, false, true, timeout_ms, NULL);
  if (code == AG_ETIMEDOUT)
    return ETIMEDOUT;
  if (code != AG_OK)
    return EBADF;

  int error = 0;
  socklen_t size = sizeof(error);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0)
    return errno;
  return error;
}

/* Connect a new non-blocking socket to address within timeout_ms. Returns
 * 0 and stores the socket in *out, or returns an errno value. */
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

/* Write "host:port", or "[host]:port" for an IPv6 address, with host
 * escaped for messages. */
static void format_endpoint(char *out, size_t size, const char *host, int port)
{
  char shown[256];

  log_escape(shown, sizeof(shown), host, strlen(host));
  if (strchr(host, ':') != NULL)
    snprintf(out, size, "[%s]:%d", shown, port);
  else
    snprintf(out, size, "%s:%d", shown, port);
}

/* Record that no address accepted the connection. error is the errno
 * value of the last attempt and shown_address that address in numeric
 * form. */
static enum ag_code fail_connect(const char *endpoint, int error,
                                 const char *shown_address, int timeout_ms,
                                 struct ag_error *err)
{
  if (error == ETIMEDOUT) {
    return ag_error_set(err, AG_ECONNECT,
                        "cannot connect to %s (address %s): timed out after "
                        "%d s. Check that the server is reachable from this "
                        "machine and that no firewall drops the connection",
                        endpoint, shown_address, (timeout_ms + 999) / 1000);
  }
  return ag_error_set(err, AG_ECONNECT,
                      "cannot connect to %s (address %s): %s. Check that the "
                      "SSH server is running and that host and port in the "
                      "config are right",
                      endpoint, shown_address, strerror(error));
}

enum ag_code sock_connect(const char *host, int port, int timeout_ms,
                          sock_handle *out, struct ag_error *err)
{
  struct addrinfo hints;
  struct addrinfo *addresses = NULL;
  char port_text[16];
  char endpoint[300];
  char shown_address[NI_MAXHOST] = "none";
  int error = 0;

  *out = SOCK_INVALID;
  if (timeout_ms < 1)
    timeout_ms = 1;
  format_endpoint(endpoint, sizeof(endpoint), host, port);
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  snprintf(port_text, sizeof(port_text), "%d", port);

  /* NOTE: getaddrinfo() blocks with no deadline (see agent/sock.h). */
  int rc = getaddrinfo(host, port_text, &hints, &addresses);
  if (rc == EAI_MEMORY)
    return ag_error_set(err, AG_ENOMEM, "cannot resolve %s: out of memory",
                        endpoint);
  if (rc != 0) {
    char shown_host[256];
    log_escape(shown_host, sizeof(shown_host), host, strlen(host));
    return ag_error_set(err, AG_ECONNECT,
                        "cannot resolve host '%s': %s. Check host in the "
                        "config",
                        shown_host,
                        rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
  }

  for (struct addrinfo *address = addresses; address != NULL;
       address = address->ai_next) {
    getnameinfo(address->ai_addr, address->ai_addrlen, shown_address,
                sizeof(shown_address), NULL, 0, NI_NUMERICHOST);
    error = connect_address(address, timeout_ms, out);
    if (error == 0)
      break;
    log_debug("cannot connect to %s at address %s: %s", endpoint, shown_address,
              strerror(error));
  }
  freeaddrinfo(addresses);

  if (*out != SOCK_INVALID)
    return AG_OK;
  return fail_connect(endpoint, error, shown_address, timeout_ms, err);
}

enum ag_code sock_wait(sock_handle sock, bool want_read, bool want_write,
                       int timeout_ms, struct ag_error *err)
{
  struct pollfd entry = {.fd = sock};
  int64_t deadline = plat_monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 0);

  if (want_read)
    entry.events |= POLLIN;
  if (want_write)
    entry.events |= POLLOUT;

  for (;;) {
    int64_t left = deadline - plat_monotonic_ms();
    int ready = poll(&entry, 1, left > 0 ? (int)left : 0);
    if (ready < 0 && errno == EINTR)
      continue;
    if (ready < 0)
      return ag_error_set(err, AG_ECONNECT,
                          "cannot wait for the SSH connection: %s",
                          strerror(errno));
    if (ready == 0)
      return AG_ETIMEDOUT;
    if (entry.revents & POLLNVAL)
      return ag_error_set(err, AG_ECONNECT,
                          "cannot wait for the SSH connection: the socket is "
                          "not open");
    return AG_OK;
  }
}

void sock_close(sock_handle sock)
{
  /* close() returns at once: without SO_LINGER the system sends any
   * unsent data in the background. */
  if (sock != SOCK_INVALID)
    close(sock);
}

int sock_delay_flags(void)
{
#ifdef MSG_MORE
  return MSG_MORE;
#else
  return 0;
#endif
}

void sock_push(sock_handle sock)
{
  /* Turning Nagle's algorithm off, which sock_connect() already did, sends
   * what is held at once (tcp(7)). A failure leaves the data to the next
   * send, so it only costs time. */
  int enabled = 1;
  (void)setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &enabled, sizeof(enabled));
}
