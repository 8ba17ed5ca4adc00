/* Deadlines for libssh2 calls. The session runs in libssh2's
 * non-blocking mode, and every call that can wait for the server goes
 * through remote_wait(), which polls the socket until the call's deadline
 * on the agent's monotonic clock. A call that misses its deadline breaks
 * the session: its socket is closed at once and libssh2 can no longer
 * send or receive, so nothing after it waits for the server. */
#include "remote_internal.h"

#include "agent/platform.h"

#include <errno.h>

/* libssh2's send and receive callbacks after remote_break(). They fail
 * without touching the socket, which is closed, so libssh2 frees its
 * channels and the session without waiting, and a file descriptor number
 * that another thread has reused meanwhile is never written to. */
static ssize_t send_nothing(libssh2_socket_t sock, const void *buffer,
                            size_t length, int flags, void **abstract)
{
  (void)sock;
  (void)buffer;
  (void)length;
  (void)flags;
  (void)abstract;
  return -ECONNRESET;
}

static ssize_t receive_nothing(libssh2_socket_t sock, void *buffer,
                               size_t length, int flags, void **abstract)
{
  (void)sock;
  (void)buffer;
  (void)length;
  (void)flags;
  (void)abstract;
  return -ECONNRESET;
}

/* The type of libssh2's receive callbacks. */
typedef ssize_t receive_fn(libssh2_socket_t sock, void *buffer, size_t length,
                           int flags, void **abstract);

/* libssh2's receive callback while the session works. After each packet
 * libssh2 receives again until the socket has nothing more, and its
 * transport, channel and SFTP layers each try once more on their way up.
 * So the agent made 33 recv() calls per small file, most of them
 * returning EAGAIN, and 11 with this callback, which lets only the first
 * of them reach the socket. Data that arrives after it is found by
 * remote_wait()'s poll, which then returns at once. abstract points to
 * the session's abstract pointer, the remote. */
static ssize_t receive_polled(libssh2_socket_t sock, void *buffer,
                              size_t length, int flags, void **abstract)
{
  struct remote *remote = *abstract;

  if (remote->receive_drained)
    return -EAGAIN;

  receive_fn *receive = (receive_fn *)remote->receive_default;
  ssize_t got = receive(sock, buffer, length, flags, abstract);
  if (got == -EAGAIN)
    remote->receive_drained = true;
  return got;
}

/* The type of libssh2's send callbacks. */
typedef ssize_t send_fn(libssh2_socket_t sock, const void *buffer,
                        size_t length, int flags, void **abstract);

/* libssh2's send callback while the session works. While
 * remote->delay_sends is set, the kernel delays what is sent until the
 * next send without it, or until remote_wait() pushes it out, so that
 * requests sent one after another reach the server in one segment and
 * wake it once. */
static ssize_t send_grouped(libssh2_socket_t sock, const void *buffer,
                            size_t length, int flags, void **abstract)
{
  struct remote *remote = *abstract;
  send_fn *send_default = (send_fn *)remote->send_default;

  if (remote->delay_sends)
    flags |= sock_delay_flags();
  remote->sends_delayed = remote->delay_sends;
  return send_default(sock, buffer, length, flags, abstract);
}

void remote_watch_socket(struct remote *remote)
{
  remote->send_default =
      libssh2_session_callback_set2(remote->session, LIBSSH2_CALLBACK_SEND,
                                    (libssh2_cb_generic *)send_grouped);
  remote->receive_default =
      libssh2_session_callback_set2(remote->session, LIBSSH2_CALLBACK_RECV,
                                    (libssh2_cb_generic *)receive_polled);
}

void remote_break(struct remote *remote)
{
  if (remote->broken)
    return;
  remote->broken = true;
  sock_close(remote->socket);
  remote->socket = SOCK_INVALID;
  if (remote->session != NULL) {
    libssh2_session_callback_set2(remote->session, LIBSSH2_CALLBACK_SEND,
                                  (libssh2_cb_generic *)send_nothing);
    libssh2_session_callback_set2(remote->session, LIBSSH2_CALLBACK_RECV,
                                  (libssh2_cb_generic *)receive_nothing);
  }
}

int64_t remote_deadline(const struct remote *remote)
{
  return plat_monotonic_ms() + (int64_t)remote->timeout * 1000;
}

bool remote_request_sent(const struct remote *remote, int rc)
{
  return rc == LIBSSH2_ERROR_EAGAIN &&
         !(libssh2_session_block_directions(remote->session) &
           LIBSSH2_SESSION_BLOCK_OUTBOUND);
}

bool remote_wait(struct remote *remote, int rc, int64_t deadline_ms)
{
  if (rc != LIBSSH2_ERROR_EAGAIN || remote->broken)
    return false;

  int64_t left = deadline_ms - plat_monotonic_ms();
  if (left <= 0) {
    remote_break(remote);
    return false;
  }

  /* A request that the kernel delays must not wait through a poll for its
   * reply. */
  if (remote->sends_delayed) {
    sock_push(remote->socket);
    remote->sends_delayed = false;
  }

  /* When libssh2 names no direction, wait to read, so that the server's
   * next packet or the deadline ends the wait. */
  int directions = libssh2_session_block_directions(remote->session);
  bool want_read = (directions & LIBSSH2_SESSION_BLOCK_INBOUND) != 0;
  bool want_write = (directions & LIBSSH2_SESSION_BLOCK_OUTBOUND) != 0;
  if (!want_read && !want_write)
    want_read = true;

  enum ag_code code = sock_wait(remote->socket, want_read, want_write,
                                left > INT32_MAX ? INT32_MAX : (int)left, NULL);
  remote->receive_drained = false;
  if (code != AG_OK) {
    /* The call cannot finish after a timeout or a failed wait, so the
     * caller reports rc (still EAGAIN) as a timeout. */
    remote_break(remote);
    return false;
  }
  return true;
}
