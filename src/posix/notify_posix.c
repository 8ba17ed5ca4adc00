/* POSIX implementation of agent/notify.h: systemd's notification protocol.
 *
 * With AGENT_HAVE_LIBSYSTEMD the messages go through sd_notify(). Without
 * it this file sends them itself, following sd_notify(3). Each message is
 * one AF_UNIX datagram to the socket in NOTIFY_SOCKET, which is a file
 * system path or, with a leading '@', a name in the abstract namespace. */
#include "agent/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef AGENT_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#else
#include <sys/socket.h>
#include <sys/un.h>
#endif

/* Status lines longer than this are cut. systemctl status shows one line. */
#define STATUS_MAX 512

#ifdef AGENT_HAVE_LIBSYSTEMD

static int send_message(const char *message)
{
  int rc = sd_notify(0, message);

  return rc < 0 ? -rc : 0;
}

int64_t notify_watchdog_timeout_ms(void)
{
  uint64_t usec = 0;

  if (sd_watchdog_enabled(0, &usec) <= 0)
    return 0;
  return (int64_t)(usec / 1000);
}

#else

/* Fill address from NOTIFY_SOCKET. Returns the address length, 0 when the
 * variable is unset, or -1 when it names no usable socket. */
static int socket_address(struct sockaddr_un *address)
{
  const char *name = getenv("NOTIFY_SOCKET");

  if (name == NULL || name[0] == '\0')
    return 0;
  size_t len = strlen(name);
  if ((name[0] != '/' && name[0] != '@') || len >= sizeof(address->sun_path))
    return -1;

  memset(address, 0, sizeof(*address));
  address->sun_family = AF_UNIX;
  memcpy(address->sun_path, name, len);
  /* An abstract name starts with a NUL byte and has no terminator, so its
   * length is exactly the bytes given. */
  if (name[0] == '@') {
    address->sun_path[0] = '\0';
    return (int)(offsetof(struct sockaddr_un, sun_path) + len);
  }
  return (int)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

static int send_message(const char *message)
{
  struct sockaddr_un address;
  int size = socket_address(&address);
  int error = 0;

  if (size == 0)
    return 0;
  if (size < 0)
    return EINVAL;

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return errno;
  /* MSG_DONTWAIT: a service manager that stopped reading must not stall
   * the agent; the message is lost instead and the caller logs that. */
  ssize_t sent =
      sendto(fd, message, strlen(message), MSG_NOSIGNAL | MSG_DONTWAIT,
             (const struct sockaddr *)&address, (socklen_t)size);
  if (sent < 0)
    error = errno;
  close(fd);
  return error;
}

/* Parse a positive decimal number. Returns 0 when text is not one. */
static uint64_t parse_positive(const char *text)
{
  char *end = NULL;

  if (text == NULL || text[0] < '0' || text[0] > '9')
    return 0;
  errno = 0;
  unsigned long long value = strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0')
    return 0;
  return (uint64_t)value;
}

int64_t notify_watchdog_timeout_ms(void)
{
  const char *pid_text = getenv("WATCHDOG_PID");
  uint64_t usec = parse_positive(getenv("WATCHDOG_USEC"));

  /* systemd sets WATCHDOG_PID to the process it watches; a child that
   * inherited the variables must not ping on its parent's behalf. */
  if (pid_text != NULL && parse_positive(pid_text) != (uint64_t)getpid())
    return 0;
  return (int64_t)(usec / 1000);
}

#endif

/* Write prefix, then status with its line breaks turned into spaces,
 * because a line break would start another assignment. */
static void compose(char *message, size_t size, const char *prefix,
                    const char *status)
{
  size_t used = (size_t)snprintf(message, size, "%s", prefix);

  if (used >= size)
    return;
  snprintf(message + used, size - used, "%s", status);
  for (char *c = message + used; *c != '\0'; c++)
    if (*c == '\n' || *c == '\r')
      *c = ' ';
}

int notify_ready(const char *status)
{
  char message[STATUS_MAX + 32];

  compose(message, sizeof(message), "READY=1\nSTATUS=", status);
  return send_message(message);
}

int notify_status(const char *status)
{
  char message[STATUS_MAX + 32];

  compose(message, sizeof(message), "STATUS=", status);
  return send_message(message);
}

int notify_watchdog(void)
{
  return send_message("WATCHDOG=1");
}

int notify_stopping(void)
{
  return send_message("STOPPING=1");
}
