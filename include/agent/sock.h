/* TCP sockets for the SSH session: connect with a deadline, wait for
 * readiness, close.
 *
 * src/posix/sock_posix.c and src/win/sock_win.c implement this header;
 * CMake builds one of them. The remote module drives libssh2 in
 * non-blocking mode on a socket from sock_connect() and calls sock_wait()
 * whenever libssh2 returns LIBSSH2_ERROR_EAGAIN. The functions keep no
 * global mutable state beyond what the system's socket library needs, so
 * several threads may each use their own socket at the same time. */
#ifndef AGENT_SOCK_H
#define AGENT_SOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/error.h"

/* A connected TCP socket: a file descriptor on POSIX, a SOCKET (an
 * unsigned pointer-sized integer) on Windows. SOCK_INVALID is the value
 * that names no socket. */
#ifdef _WIN32
typedef uintptr_t sock_handle;
#define SOCK_INVALID ((sock_handle) ~(uintptr_t)0)
#else
typedef int sock_handle;
#define SOCK_INVALID (-1)
#endif

/* Resolve host (a name or a numeric IPv4 or IPv6 address) and connect to
 * port on the first address that accepts, trying the addresses in the
 * order the resolver returns them. Each address gets timeout_ms
 * milliseconds (at least 1), so a host with n unreachable addresses takes
 * up to n * timeout_ms. On success
 * stores in *out a socket that is non-blocking, not inherited by child
 * processes, and has Nagle's algorithm turned off. The caller releases it
 * with sock_close().
 *
 * Errors, with *out set to SOCK_INVALID and a message naming host and
 * port: AG_ECONNECT when the name cannot be resolved, when every address
 * refused or failed, or when the last address timed out (the message then
 * contains "timed out"); AG_ENOMEM when the resolver runs out of memory.
 *
 * NOTE: name resolution (getaddrinfo() and GetAddrInfoW()) blocks and
 * takes no deadline, so a resolver that does not answer delays this call
 * by the resolver's own timeouts (resolv.conf "timeout" and "attempts" on
 * Linux) before timeout_ms applies. A numeric address needs no lookup. */
enum ag_code sock_connect(const char *host, int port, int timeout_ms,
                          sock_handle *out, struct ag_error *err);

/* Wait until sock is readable (want_read) or writable (want_write), or
 * until timeout_ms milliseconds have passed. At least one direction must
 * be wanted. A timeout_ms of 0 or less checks without waiting. An error or
 * hang-up on the socket counts as ready, so that the next send or receive
 * reports it. A wait interrupted by a signal continues with the time left.
 *
 * Returns AG_OK when ready, and AG_ETIMEDOUT when the time passed, in
 * which case nothing is recorded in err because the caller knows which
 * request timed out. Returns AG_ECONNECT with a message when the wait
 * itself fails (an invalid socket). */
enum ag_code sock_wait(sock_handle sock, bool want_read, bool want_write,
                       int timeout_ms, struct ag_error *err);

/* Return the flags to add to a send() on a socket from sock_connect() so
 * that the kernel delays the data until a later send without them, which
 * lets several small requests leave in one TCP segment. 0 where the
 * system has no such flag (Windows). A caller that used them must end
 * with sock_push() or a send without them before it waits for replies. */
int sock_delay_flags(void);

/* Send the data that sends with sock_delay_flags() left in the kernel.
 * Does nothing where there is none, and on Windows. */
void sock_push(sock_handle sock);

/* Close sock. Returns at once, also when the peer is not responding.
 * Accepts SOCK_INVALID. */
void sock_close(sock_handle sock);

#endif
