/* Test helper that counts TCP connections to a loopback port.
 *
 * Usage: tcp_listen SECONDS
 *
 * Listens on 127.0.0.1 at a port that the kernel picks, prints
 * "port N" on the first line and flushes, then accepts and closes every
 * connection until SECONDS seconds have passed or SIGTERM or SIGINT
 * arrives, and then the connections still waiting. Before it exits 0 it
 * prints "connections N", the number of connections it accepted. A test points
 * URLs in hostile input at the port and expects 0. The deadline makes sure that
 * a test that failed to stop it cannot leave it running. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

/* Listen on 127.0.0.1 at a free port and store the port. Returns the
 * socket or -1. */
static int listen_loopback(unsigned *port)
{
  struct sockaddr_in address;
  socklen_t size = sizeof(address);

  memset(&address, 0, sizeof(address));
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&address, size) != 0 ||
      listen(fd, 16) != 0 ||
      getsockname(fd, (struct sockaddr *)&address, &size) != 0) {
    fprintf(stderr, "tcp_listen: cannot listen on 127.0.0.1: %s\n",
            strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  *port = ntohs(address.sin_port);
  return fd;
}

/* Accept and close every connection that is waiting, without blocking,
 * and return how many there were. */
static long accept_pending(int fd)
{
  struct pollfd entry = {.fd = fd, .events = POLLIN};
  long count = 0;

  while (poll(&entry, 1, 0) == 1 && (entry.revents & POLLIN) != 0) {
    int client = accept(fd, NULL, NULL);
    if (client < 0)
      break;
    close(client);
    count++;
  }
  return count;
}

int main(int argc, char **argv)
{
  struct sigaction action;
  unsigned port = 0;
  long connections = 0;

  if (argc != 2 || atoi(argv[1]) <= 0) {
    fprintf(stderr, "usage: tcp_listen SECONDS\n");
    return 2;
  }
  memset(&action, 0, sizeof(action));
  action.sa_handler = on_stop;
  sigaction(SIGTERM, &action, NULL);
  sigaction(SIGINT, &action, NULL);

  int fd = listen_loopback(&port);
  if (fd < 0)
    return 1;
  printf("port %u\n", port);
  fflush(stdout);
  long long deadline = monotonic_ms() + atoi(argv[1]) * 1000LL;

  while (!stop_requested) {
    long long left = deadline - monotonic_ms();
    if (left <= 0)
      break;
    struct pollfd entry = {.fd = fd, .events = POLLIN};
    if (poll(&entry, 1, (int)left) > 0)
      connections += accept_pending(fd);
  }
  /* A connection that completed just before the stop is still waiting in
   * the backlog. */
  connections += accept_pending(fd);

  close(fd);
  printf("connections %ld\n", connections);
  return 0;
}
