/* POSIX implementation of plat_run_hook(): posix_spawn() into a new
 * process group, stdout and stderr through one pipe, and a wait with a
 * deadline that ends the whole group. */

/* pipe2() and posix_spawn_file_actions_addclosefrom_np() are extensions
 * that glibc declares only for GNU builds. */
#define _GNU_SOURCE
#include "agent/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Time from SIGTERM to SIGKILL when a hook's process group is ended. */
#define KILL_GRACE_MS 2000

/* Maximum wait between two checks of the child and the watch callbacks. */
#define TICK_MS 100

/* Reads of one chunk per call of read_output(), so that a process that
 * writes without pause cannot keep the wait loop from its checks. */
#define READS_PER_CALL 16

extern char **environ;

/* A started hook. Its process id is also its process group id. */
struct child {
  pid_t pid;
  int output_fd; /* read end of the output pipe, -1 once it reached its end */
  bool reaped;
  int wait_status; /* from waitpid(), once reaped */
  int wait_errno;  /* set when waitpid() failed, so the status is unknown */
  struct plat_hook_result *result;
};

/* With SIGCHLD ignored, the kernel reaps children by itself and waitpid()
 * cannot return the hook's status. A parent process can leave SIGCHLD
 * ignored across exec, so that disposition is reset to the default. */
static void keep_child_status(void)
{
  struct sigaction action;

  if (sigaction(SIGCHLD, NULL, &action) == 0 && action.sa_handler == SIG_IGN) {
    action.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &action, NULL);
  }
}

/* Set up the child's descriptors: stdin from /dev/null, stdout and stderr
 * into the pipe, and nothing else open where glibc can close the rest.
 * Elsewhere, the agent's own descriptors are all opened with O_CLOEXEC. */
static int set_file_actions(posix_spawn_file_actions_t *actions, int pipe_write)
{
  int rc = posix_spawn_file_actions_addopen(actions, STDIN_FILENO, "/dev/null",
                                            O_RDONLY, 0);

  if (rc == 0)
    rc = posix_spawn_file_actions_adddup2(actions, pipe_write, STDOUT_FILENO);
  if (rc == 0)
    rc = posix_spawn_file_actions_adddup2(actions, pipe_write, STDERR_FILENO);
#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  if (rc == 0)
    rc = posix_spawn_file_actions_addclosefrom_np(actions, STDERR_FILENO + 1);
#endif
  return rc;
}

/* Give the child its own process group, so that a timeout can end the
 * hook together with the processes it started, and an empty signal mask
 * with default handlers, whatever the agent blocks or ignores.
 * NOTE: the terminal's SIGINT and a SIGTERM that ends sync do not reach
 * that group, so the hook runs on until it exits by itself. systemd still
 * ends it, because it stops every process in the unit's cgroup. */
static int set_attributes(posix_spawnattr_t *attributes)
{
  sigset_t empty;
  sigset_t all;

  sigemptyset(&empty);
  sigfillset(&all);
  int rc = posix_spawnattr_setflags(attributes, POSIX_SPAWN_SETPGROUP |
                                                    POSIX_SPAWN_SETSIGMASK |
                                                    POSIX_SPAWN_SETSIGDEF);
  if (rc == 0)
    rc = posix_spawnattr_setpgroup(attributes, 0);
  if (rc == 0)
    rc = posix_spawnattr_setsigmask(attributes, &empty);
  if (rc == 0)
    rc = posix_spawnattr_setsigdefault(attributes, &all);
  return rc;
}

static enum ag_code spawn_child(const char *const argv[], int pipe_write,
                                pid_t *pid, struct ag_error *err)
{
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  enum ag_code code = AG_OK;

  if (posix_spawn_file_actions_init(&actions) != 0)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  if (posix_spawnattr_init(&attributes) != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  }

  int rc = set_file_actions(&actions, pipe_write);
  if (rc == 0)
    rc = set_attributes(&attributes);
  if (rc != 0) {
    code = ag_error_set(err, AG_ELOCAL, "cannot prepare to start '%s': %s",
                        argv[0], strerror(rc));
    goto out;
  }

  /* glibc 2.24 and later report a failed exec here, with its errno. */
  rc = posix_spawn(pid, argv[0], &actions, &attributes, (char *const *)argv,
                   environ);
  if (rc != 0)
    code = ag_error_set(err, AG_ELOCAL, "cannot start '%s': %s", argv[0],
                        strerror(rc));

out:
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  return code;
}

static void keep_output(struct plat_hook_result *result, const char *data,
                        size_t len)
{
  size_t room = PLAT_HOOK_OUTPUT_MAX - result->output_len;
  size_t kept = len < room ? len : room;

  memcpy(result->output + result->output_len, data, kept);
  result->output_len += kept;
  result->output[result->output_len] = '\0';
  result->output_total += len;
}

/* Read what the pipe holds now, without blocking, and close it at its
 * end. */
static void read_output(struct child *child)
{
  char buffer[4096];

  for (int i = 0; i < READS_PER_CALL && child->output_fd >= 0; i++) {
    ssize_t got = read(child->output_fd, buffer, sizeof(buffer));

    if (got > 0) {
      keep_output(child->result, buffer, (size_t)got);
      continue;
    }
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0 && errno == EAGAIN)
      return;
    close(child->output_fd);
    child->output_fd = -1;
  }
}

/* Reap the child if it has exited. With wait, block until it does. */
static void reap(struct child *child, bool wait)
{
  pid_t got;

  do {
    got = waitpid(child->pid, &child->wait_status, wait ? 0 : WNOHANG);
  } while (got < 0 && errno == EINTR);
  if (got == child->pid) {
    child->reaped = true;
  } else if (got < 0) {
    child->wait_errno = errno;
    child->reaped = true;
  }
}

/* Return whether the child has exited, without reaping it, so that its
 * process group id stays reserved for the kill that follows. */
static bool has_exited(const struct child *child)
{
  siginfo_t info;

  memset(&info, 0, sizeof(info));
  if (waitid(P_PID, (id_t)child->pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
    return true;
  return info.si_pid == child->pid;
}

/* Sleep up to ms, or less when output arrives, and read it. */
static void wait_for_output(struct child *child, int64_t ms)
{
  struct pollfd entry = {.fd = child->output_fd, .events = POLLIN};

  if (child->output_fd < 0) {
    poll(NULL, 0, (int)ms);
    return;
  }
  if (poll(&entry, 1, (int)ms) > 0)
    read_output(child);
}

/* Wait until the child exits by itself, the deadline passes or the watch
 * requests a stop. Returns the outcome, where PLAT_HOOK_EXITED covers both
 * ways of ending by itself. */
static enum plat_hook_outcome wait_child(struct child *child,
                                         int64_t deadline_ms,
                                         const struct plat_hook_watch *watch)
{
  for (;;) {
    reap(child, false);
    if (child->reaped) {
      read_output(child);
      return PLAT_HOOK_EXITED;
    }
    int64_t left = deadline_ms - plat_monotonic_ms();
    if (left <= 0)
      return PLAT_HOOK_TIMED_OUT;
    if (watch != NULL && watch->stop_requested != NULL &&
        watch->stop_requested(watch->ctx))
      return PLAT_HOOK_STOPPED;
    if (watch != NULL && watch->progress != NULL)
      watch->progress(watch->ctx);
    wait_for_output(child, left < TICK_MS ? left : TICK_MS);
  }
}

/* End the child's process group: SIGTERM to all of it, up to
 * KILL_GRACE_MS for the child to exit, then SIGKILL to whatever is left.
 * The child is reaped only after the SIGKILL, because until then its
 * zombie keeps the group id from being given to another process. */
static void end_group(struct child *child)
{
  int64_t deadline_ms = plat_monotonic_ms() + KILL_GRACE_MS;

  kill(-child->pid, SIGTERM);
  while (!has_exited(child) && plat_monotonic_ms() < deadline_ms)
    wait_for_output(child, TICK_MS / 2);
  kill(-child->pid, SIGKILL);
  reap(child, true);
  read_output(child);
}

/* Fill in the status from the child's wait status. A timed-out or stopped
 * hook keeps that outcome. */
static void finish_result(const struct child *child,
                          struct plat_hook_result *result)
{
  int status = child->wait_status;

  if (WIFSIGNALED(status)) {
    result->status = WTERMSIG(status);
    if (result->outcome == PLAT_HOOK_EXITED)
      result->outcome = PLAT_HOOK_SIGNALED;
  } else {
    result->status = WEXITSTATUS(status);
  }
}

enum ag_code plat_run_hook(const char *const argv[], int timeout_s,
                           const struct plat_hook_watch *watch,
                           struct plat_hook_result *out, struct ag_error *err)
{
  struct child child = {.pid = -1, .output_fd = -1, .result = out};
  int fds[2] = {-1, -1};
  int64_t started_ms = plat_monotonic_ms();
  enum ag_code code = AG_OK;

  memset(out, 0, sizeof(*out));
  keep_child_status();
  if (pipe2(fds, O_CLOEXEC) != 0 || fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0) {
    code = ag_error_set(err, AG_ELOCAL, "cannot create a pipe for '%s': %s",
                        argv[0], strerror(errno));
    goto out;
  }
  code = spawn_child(argv, fds[1], &child.pid, err);
  close(fds[1]);
  fds[1] = -1;
  if (code != AG_OK)
    goto out;
  child.output_fd = fds[0];
  fds[0] = -1;

  out->outcome =
      wait_child(&child, started_ms + (int64_t)timeout_s * 1000, watch);
  if (!child.reaped)
    end_group(&child);
  out->elapsed_ms = plat_monotonic_ms() - started_ms;
  if (child.wait_errno != 0)
    code = ag_error_set(err, AG_ELOCAL, "cannot wait for '%s': %s", argv[0],
                        strerror(child.wait_errno));
  else
    finish_result(&child, out);

out:
  for (int i = 0; i < 2; i++) {
    if (fds[i] >= 0)
      close(fds[i]);
  }
  if (child.output_fd >= 0)
    close(child.output_fd);
  return code;
}
