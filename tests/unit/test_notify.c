/* Unit tests for agent/notify.h: messages arrive on path and abstract
 * sockets, line breaks in a status stay inside the STATUS= line, and the
 * watchdog timeout follows WATCHDOG_USEC and WATCHDOG_PID. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/notify.h"
#include "test_support.h"

/* Bind a datagram socket at name ('@' for the abstract namespace) and
 * point NOTIFY_SOCKET at it. */
static int listen_at(const char *name)
{
  struct sockaddr_un address;
  size_t len = strlen(name);
  socklen_t size = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);

  memset(&address, 0, sizeof(address));
  address.sun_family = AF_UNIX;
  assert_true(len < sizeof(address.sun_path));
  memcpy(address.sun_path, name, len);
  if (name[0] == '@')
    address.sun_path[0] = '\0';
  else
    size++;

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&address, size), 0);
  assert_int_equal(setenv("NOTIFY_SOCKET", name, 1), 0);
  return fd;
}

/* Receive one message, waiting at most 5 s. */
static void receive(int fd, char *out, size_t size)
{
  struct pollfd entry = {.fd = fd, .events = POLLIN};

  assert_int_equal(poll(&entry, 1, 5000), 1);
  ssize_t got = recv(fd, out, size - 1, 0);
  assert_true(got >= 0);
  out[got] = '\0';
}

static void notify_without_socket_sends_nothing(void **state)
{
  (void)state;
  unsetenv("NOTIFY_SOCKET");

  assert_int_equal(notify_ready("starting"), 0);
  assert_int_equal(notify_status("idle"), 0);
  assert_int_equal(notify_watchdog(), 0);
  assert_int_equal(notify_stopping(), 0);
}

static void notify_path_socket_receives_messages(void **state)
{
  struct folder_fixture *fixture = *state;
  char path[300];
  char message[1024];

  join_path(path, sizeof(path), fixture->dir, "notify.sock");
  int fd = listen_at(path);

  assert_int_equal(notify_ready("connected\nto server"), 0);
  receive(fd, message, sizeof(message));
  assert_string_equal(message, "READY=1\nSTATUS=connected to server");

  assert_int_equal(notify_status("poll 1:\r\n0 delivered"), 0);
  receive(fd, message, sizeof(message));
  assert_string_equal(message, "STATUS=poll 1:  0 delivered");

  assert_int_equal(notify_watchdog(), 0);
  receive(fd, message, sizeof(message));
  assert_string_equal(message, "WATCHDOG=1");

  assert_int_equal(notify_stopping(), 0);
  receive(fd, message, sizeof(message));
  assert_string_equal(message, "STOPPING=1");

  close(fd);
  unsetenv("NOTIFY_SOCKET");
}

static void notify_abstract_socket_receives_messages(void **state)
{
  char name[64];
  char message[1024];

  (void)state;
  format_text(name, sizeof(name), "@rossum-sftp-agent-unit-%ld",
              (long)getpid());
  int fd = listen_at(name);

  assert_int_equal(notify_stopping(), 0);
  receive(fd, message, sizeof(message));
  assert_string_equal(message, "STOPPING=1");

  close(fd);
  unsetenv("NOTIFY_SOCKET");
}

static void notify_long_status_is_cut(void **state)
{
  struct folder_fixture *fixture = *state;
  char path[300];
  char status[2000];
  char message[4096];

  join_path(path, sizeof(path), fixture->dir, "notify.sock");
  int fd = listen_at(path);
  memset(status, 'x', sizeof(status) - 1);
  status[sizeof(status) - 1] = '\0';

  assert_int_equal(notify_status(status), 0);
  receive(fd, message, sizeof(message));
  assert_memory_equal(message, "STATUS=xxx", 10);
  assert_true(strlen(message) < sizeof(status));

  close(fd);
  unsetenv("NOTIFY_SOCKET");
}

static void notify_missing_socket_reports_error(void **state)
{
  struct folder_fixture *fixture = *state;
  char path[300];

  join_path(path, sizeof(path), fixture->dir, "nobody-listens.sock");
  assert_int_equal(setenv("NOTIFY_SOCKET", path, 1), 0);
  assert_int_not_equal(notify_watchdog(), 0);

  assert_int_equal(setenv("NOTIFY_SOCKET", "relative.sock", 1), 0);
  assert_int_not_equal(notify_watchdog(), 0);
  unsetenv("NOTIFY_SOCKET");
}

static void watchdog_timeout_follows_environment(void **state)
{
  char pid[32];

  (void)state;
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  assert_int_equal(notify_watchdog_timeout_ms(), 0);

  assert_int_equal(setenv("WATCHDOG_USEC", "60000000", 1), 0);
  assert_int_equal(notify_watchdog_timeout_ms(), 60000);

  format_text(pid, sizeof(pid), "%ld", (long)getpid());
  assert_int_equal(setenv("WATCHDOG_PID", pid, 1), 0);
  assert_int_equal(notify_watchdog_timeout_ms(), 60000);

  format_text(pid, sizeof(pid), "%ld", (long)getpid() + 1);
  assert_int_equal(setenv("WATCHDOG_PID", pid, 1), 0);
  assert_int_equal(notify_watchdog_timeout_ms(), 0);

  unsetenv("WATCHDOG_PID");
  assert_int_equal(setenv("WATCHDOG_USEC", "sixty", 1), 0);
  assert_int_equal(notify_watchdog_timeout_ms(), 0);
  unsetenv("WATCHDOG_USEC");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(notify_without_socket_sends_nothing),
      cmocka_unit_test_setup_teardown(notify_path_socket_receives_messages,
                                      folder_fixture_setup,
                                      folder_fixture_teardown),
      cmocka_unit_test(notify_abstract_socket_receives_messages),
      cmocka_unit_test_setup_teardown(notify_long_status_is_cut,
                                      folder_fixture_setup,
                                      folder_fixture_teardown),
      cmocka_unit_test_setup_teardown(notify_missing_socket_reports_error,
                                      folder_fixture_setup,
                                      folder_fixture_teardown),
      cmocka_unit_test(watchdog_timeout_follows_environment),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
