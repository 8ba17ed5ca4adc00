/* Test helper that replaces systemd's notification socket.
 *
 * Usage: notify_listen SOCKET SECONDS
 *
 * Binds an AF_UNIX datagram socket at SOCKET (a file system path, or a
 * name in the abstract namespace when it starts with '@') and prints each
 * message it receives, followed by an empty line, flushing after each one.
 * A message contains one VARIABLE=value line per assignment, like READY=1.
 * Exits 0 after SECONDS seconds or on SIGTERM, so that a test that
 * failed to stop it cannot leave it running. Removes a socket file that
 * it created. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_stop(int signal_number)
{
  (void)signal_number;
  stop_requested = 1;
}

static long long monotonic_ms(void)
{
  struct timespec now;

  clock_gettime(CLOCK_MONOTONIC, &now);
  return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Bind a datagram socket at name. Returns the socket or -1. */
static int bind_socket(const char *name)
{
  struct sockaddr_un address;
  size_t len = strlen(name);
  socklen_t size;

  if (len == 0 || len >= sizeof(address.sun_path)) {
    fprintf(stderr,
            "notify_listen: socket name '%s' is empty or longer "
            "than %zu bytes\n",
            name, sizeof(address.sun_path) - 1);
    return -1;
  }
  memset(&address, 0, sizeof(address));
  address.sun_family = AF_UNIX;
  memcpy(address.sun_path, name, len);
  size = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
  if (name[0] == '@') {
    address.sun_path[0] = '\0';
    size = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  }

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&address, size) != 0) {
    fprintf(stderr, "notify_listen: cannot bind '%s': %s\n", name,
            strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}

int main(int argc, char **argv)
{
  struct sigaction action;
  char message[4096];

  if (argc != 3 || atoi(argv[2]) <= 0) {
    fprintf(stderr, "usage: notify_listen SOCKET SECONDS\n");
    return 2;
  }
  memset(&action, 0, sizeof(action));
  action.sa_handler = on_stop;
  sigaction(SIGTERM, &action, NULL);
  sigaction(SIGINT, &action, NULL);

  int fd = bind_socket(argv[1]);
  if (fd < 0)
    return 1;
  long long deadline = monotonic_ms() + atoi(argv[2]) * 1000LL;

  while (!stop_requested) {
    long long left = deadline - monotonic_ms();
    if (left <= 0)
      break;
    struct pollfd entry = {.fd = fd, .events = POLLIN};
    if (poll(&entry, 1, (int)left) <= 0)
      continue;
    ssize_t got = recv(fd, message, sizeof(message) - 1, 0);
    if (got < 0)
      continue;
    message[got] = '\0';
    printf("%s\n\n", message);
    fflush(stdout);
  }

  close(fd);
  if (argv[1][0] != '@')
    unlink(argv[1]);
  return 0;
}
