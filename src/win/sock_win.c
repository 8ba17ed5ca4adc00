/* Windows implementation of agent/sock.h with Winsock 2: GetAddrInfoW(),
 * a non-blocking connect() bounded by select(), and select() for the
 * waits between libssh2 calls.
 *
 * select() and not WSAPoll(): before Windows 10 2004, WSAPoll() never
 * reports a connect that failed, and waits for the full timeout instead.
 * One socket per call stays far below FD_SETSIZE. */
/* winsock2.h must come before windows.h, which win_internal.h includes. */
#include <winsock2.h>
#include <ws2tcpip.h>

#include "agent/sock.h"

#include "agent/log.h"
#include "agent/platform.h"
#include "win_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* WSAStartup() runs once per process, on the first connect. Winsock is
 * never cleaned up: the process ends with it in use. */
static INIT_ONCE winsock_once = INIT_ONCE_STATIC_INIT;
static int winsock_error;

static BOOL CALLBACK start_winsock(INIT_ONCE *once, void *param, void **ctx)
{
  WSADATA data;

  (void)once;
  (void)param;
  (void)ctx;
  winsock_error = WSAStartup(MAKEWORD(2, 2), &data);
  return TRUE;
}

/* Wait for sock to become writable or report an error, up to timeout_ms.
 * Returns 0 when writable, WSAETIMEDOUT, or a Winsock error code. */
static int select_socket(SOCKET sock, bool want_read, bool want_write,
                         int timeout_ms)
{
  fd_set readable;
  fd_set writable;
  fd_set failed;
  struct timeval timeout = {.tv_sec = timeout_ms / 1000,
                            .tv_usec = (timeout_ms % 1000) * 1000};

  FD_ZERO(&readable);
  FD_ZERO(&writable);
  FD_ZERO(&failed);
  if (want_read)
    FD_SET(sock, &readable);
  if (want_write)
    FD_SET(sock, &writable);
  /* A connect that failed shows only in the exception set. */
  FD_SET(sock, &failed);
  int ready = select(0, &readable, &writable, &failed, &timeout);
  if (ready == SOCKET_ERROR)
    return WSAGetLastError();
  return ready == 0 ? WSAETIMEDOUT : 0;
}

/* Wait for a non-blocking connect() on sock to finish. Returns 0 or a
 * Winsock error code, WSAETIMEDOUT when timeout_ms passed first. */
static int wait_connected(SOCKET sock, int timeout_ms)
{
  int error = select_socket(sock, false, true, timeout_ms);

  if (error != 0)
    return error;
  int result = 0;
  int size = sizeof(result);
  if (getsockopt(sock, SOL_SOCKET, SO_ERROR, (char *)&result, &size) != 0)
    return WSAGetLastError();
  return result;
}

/* Connect a new non-blocking socket to address within timeout_ms. Returns
 * 0 and stores the socket in *out, or returns a Winsock error code. */
static int connect_address(const ADDRINFOW *address, int timeout_ms,
                           SOCKET *out)
{
  /* WSA_FLAG_NO_HANDLE_INHERIT keeps the socket from hook processes. */
  SOCKET sock =
      WSASocketW(address->ai_family, address->ai_socktype, address->ai_protocol,
                 NULL, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (sock == INVALID_SOCKET)
    return WSAGetLastError();

  u_long non_blocking = 1;
  int error = 0;
  if (ioctlsocket(sock, FIONBIO, &non_blocking) != 0)
    error = WSAGetLastError();
  if (error == 0 &&
      connect(sock, address->ai_addr, (int)address->ai_addrlen) != 0) {
    error = WSAGetLastError();
    if (error == WSAEWOULDBLOCK)
      error = wait_connected(sock, timeout_ms);
  }
  if (error != 0) {
    closesocket(sock);
    return error;
  }

  /* SFTP waits for a reply to each small request, so Nagle's algorithm
   * would only add delay. A failure here costs speed, not correctness. */
  BOOL one = TRUE;
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof(one));
  *out = sock;
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

/* Record that no address accepted the connection. error is the Winsock
 * error of the last attempt and shown_address that address. */
static enum ag_code fail_connect(const char *endpoint, int error,
                                 const char *shown_address, int timeout_ms,
                                 struct ag_error *err)
{
  char text[256];

  if (error == WSAETIMEDOUT)
    return ag_error_set(err, AG_ECONNECT,
                        "cannot connect to %s (address %s): timed out after "
                        "%d s. Check that the server is reachable from this "
                        "machine and that no firewall drops the connection",
                        endpoint, shown_address, (timeout_ms + 999) / 1000);
  return ag_error_set(err, AG_ECONNECT,
                      "cannot connect to %s (address %s): %s. Check that the "
                      "SSH server is running and that host and port in the "
                      "config are right",
                      endpoint, shown_address,
                      win_error_text((DWORD)error, text, sizeof(text)));
}

/* Write the numeric form of address into out. */
static void numeric_address(const ADDRINFOW *address, char *out, size_t size)
{
  wchar_t host[NI_MAXHOST];

  snprintf(out, size, "unknown");
  if (GetNameInfoW(address->ai_addr, (socklen_t)address->ai_addrlen, host,
                   NI_MAXHOST, NULL, 0, NI_NUMERICHOST) != 0)
    return;
  char *narrow = win_utf8(host);
  if (narrow != NULL)
    snprintf(out, size, "%s", narrow);
  free(narrow);
}

/* Resolve host and port into *addresses. Returns AG_OK, or AG_ECONNECT or
 * AG_ENOMEM with a message. */
static enum ag_code resolve(const char *host, int port, ADDRINFOW **addresses,
                            struct ag_error *err)
{
  ADDRINFOW hints;
  wchar_t port_text[16];
  char shown_host[256];
  char text[256];
  wchar_t *wide_host = win_utf16(host);

  if (wide_host == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV;
  _snwprintf(port_text, sizeof(port_text) / sizeof(port_text[0]), L"%d", port);
  port_text[sizeof(port_text) / sizeof(port_text[0]) - 1] = L'\0';

  /* NOTE: GetAddrInfoW() blocks with no deadline (see agent/sock.h). */
  int rc = GetAddrInfoW(wide_host, port_text, &hints, addresses);
  free(wide_host);
  if (rc == 0)
    return AG_OK;
  log_escape(shown_host, sizeof(shown_host), host, strlen(host));
  return ag_error_set(err, AG_ECONNECT,
                      "cannot resolve host '%s': %s. Check host in the config",
                      shown_host,
                      win_error_text((DWORD)rc, text, sizeof(text)));
}

enum ag_code sock_connect(const char *host, int port, int timeout_ms,
                          sock_handle *out, struct ag_error *err)
{
  ADDRINFOW *addresses = NULL;
  char endpoint[300];
  char shown_address[NI_MAXHOST] = "none";
  char text[256];
  SOCKET sock = INVALID_SOCKET;
  int error = 0;

  *out = SOCK_INVALID;
  if (timeout_ms < 1)
    timeout_ms = 1;
  InitOnceExecuteOnce(&winsock_once, start_winsock, NULL, NULL);
  if (winsock_error != 0)
    return ag_error_set(
        err, AG_ECONNECT, "cannot start Winsock 2.2: %s",
        win_error_text((DWORD)winsock_error, text, sizeof(text)));
  format_endpoint(endpoint, sizeof(endpoint), host, port);
  enum ag_code code = resolve(host, port, &addresses, err);
  if (code != AG_OK)
    return code;

  for (ADDRINFOW *address = addresses; address != NULL;
       address = address->ai_next) {
    numeric_address(address, shown_address, sizeof(shown_address));
    error = connect_address(address, timeout_ms, &sock);
    if (error == 0)
      break;
    log_debug("cannot connect to %s at address %s: %s", endpoint, shown_address,
              win_error_text((DWORD)error, text, sizeof(text)));
  }
  FreeAddrInfoW(addresses);

  if (sock != INVALID_SOCKET) {
    *out = (sock_handle)sock;
    return AG_OK;
  }
  return fail_connect(endpoint, error, shown_address, timeout_ms, err);
}

enum ag_code sock_wait(sock_handle sock, bool want_read, bool want_write,
                       int timeout_ms, struct ag_error *err)
{
  char text[256];
  int error = select_socket((SOCKET)sock, want_read, want_write,
                            timeout_ms > 0 ? timeout_ms : 0);

  /* select() is not interrupted by signals on Windows, so no retry. */
  if (error == WSAETIMEDOUT)
    return AG_ETIMEDOUT;
  if (error != 0)
    return ag_error_set(err, AG_ECONNECT,
                        "cannot wait for the SSH connection: %s",
                        win_error_text((DWORD)error, text, sizeof(text)));
  return AG_OK;
}

void sock_close(sock_handle sock)
{
  /* closesocket() returns at once: without SO_LINGER the system sends any
   * unsent data in the background. */
  if (sock != SOCK_INVALID)
    closesocket((SOCKET)sock);
}

int sock_delay_flags(void)
{
  return 0;
}

void sock_push(sock_handle sock)
{
  (void)sock;
}
