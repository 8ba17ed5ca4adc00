/* Windows implementation of plat_run_hook(): CreateProcessW() into a job
 * object and a process group of its own, stdout and stderr through one
 * pipe, stdin from NUL, and a wait with a deadline that ends the whole
 * job.
 *
 * Differences from POSIX, where the contract in agent/platform.h speaks of
 * signals: on a timeout or a stop request the hook's process group gets
 * CTRL_BREAK_EVENT when it shares the agent's console (a service has
 * none), and the whole job is ended with TerminateJobObject() as soon as
 * the hook has exited or 2 s have passed. These two steps replace SIGTERM
 * and SIGKILL. The outcome is never PLAT_HOOK_SIGNALED: a crashed program
 * exits with its exception code, such as 0xC0000005, as its status.
 * Processes that the hook started and left behind stay in the job but are
 * not waited for, as on POSIX. */
#include "agent/platform.h"

#include "win_internal.h"

#include <stdlib.h>
#include <string.h>

/* Time from CTRL_BREAK_EVENT to TerminateJobObject(). */
#define KILL_GRACE_MS 2000

/* Maximum wait between two checks of the child, its output and the watch
 * callbacks. An anonymous pipe cannot be waited on, so the output is read
 * at each check. */
#define TICK_MS 20

/* Checks between two calls of the watch callbacks: about every 100 ms. */
#define TICKS_PER_WATCH 5

/* Size of the output pipe's buffer. The child blocks when it is full until
 * the next check reads it. */
#define PIPE_BUFFER_SIZE 65536

/* Exit code that TerminateJobObject() gives the processes it ends. */
#define TERMINATED_EXIT_CODE 1

/* A started hook. */
struct child {
  HANDLE process;
  HANDLE job;
  DWORD process_id;
  HANDLE output; /* read end of the pipe, NULL once it reached its end */
  struct plat_hook_result *result;
};

/* Append text to the command line at *line, quoted the way
 * CommandLineToArgvW() and the C runtime split it again. Returns false
 * when out of memory. */
static bool append_argument(wchar_t **line, size_t *used, size_t *size,
                            const wchar_t *argument)
{
  size_t len = wcslen(argument);
  /* Worst case: every character a backslash doubled, quotes, a space. */
  size_t need = *used + 2 * len + 4;

  if (need > *size) {
    size_t grown_size = need * 2;
    wchar_t *grown = realloc(*line, grown_size * sizeof(**line));
    if (grown == NULL)
      return false;
    *line = grown;
    *size = grown_size;
  }
  wchar_t *out = *line + *used;
  if (*used > 0)
    *out++ = L' ';

  bool quote = len == 0 || wcspbrk(argument, L" \t\n\v\"") != NULL;
  if (quote)
    *out++ = L'"';
  for (size_t i = 0; i < len; i++) {
    size_t backslashes = 0;
    while (i < len && argument[i] == L'\\') {
      backslashes++;
      i++;
    }
    /* Backslashes are literal unless a quote follows them: then each is
     * doubled, and a quote inside the text gets one of its own. */
    size_t copies = backslashes;
    if (i == len && quote)
      copies = 2 * backslashes;
    else if (i < len && argument[i] == L'"')
      copies = 2 * backslashes + 1;
    for (size_t k = 0; k < copies; k++)
      *out++ = L'\\';
    if (i < len)
      *out++ = argument[i];
  }
  if (quote)
    *out++ = L'"';
  *out = L'\0';
  *used = (size_t)(out - *line);
  return true;
}

/* Build the UTF-16 command line for argv. Returns NULL when out of memory
 * or when an argument is not valid UTF-8. */
static wchar_t *build_command_line(const char *const argv[])
{
  wchar_t *line = NULL;
  size_t used = 0;
  size_t size = 0;

  for (size_t i = 0; argv[i] != NULL; i++) {
    wchar_t *argument = win_utf16(argv[i]);
    bool ok =
        argument != NULL && append_argument(&line, &used, &size, argument);
    free(argument);
    if (!ok) {
      free(line);
      return NULL;
    }
  }
  return line;
}

/* Open the child's ends: stdin from NUL, and one pipe for stdout and
 * stderr whose write end the child inherits. */
static bool open_handles(HANDLE *null_in, HANDLE *pipe_read, HANDLE *pipe_write)
{
  SECURITY_ATTRIBUTES inherit = {.nLength = sizeof(inherit),
                                 .bInheritHandle = TRUE};

  *null_in =
      CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE,
                  &inherit, OPEN_EXISTING, 0, NULL);
  if (*null_in == INVALID_HANDLE_VALUE) {
    *null_in = NULL;
    return false;
  }
  if (!CreatePipe(pipe_read, pipe_write, &inherit, PIPE_BUFFER_SIZE))
    return false;
  /* The agent's end must not reach the child, or the pipe never ends. */
  return SetHandleInformation(*pipe_read, HANDLE_FLAG_INHERIT, 0);
}

/* Start the child suspended, put it into a new job, then let it run, so
 * that every process it starts belongs to the job. Only the two handles in
 * the list are inherited, whatever else the agent has open. */
static DWORD start_child(const char *const argv[], HANDLE null_in,
                         HANDLE pipe_write, struct child *child)
{
  wchar_t *program = win_utf16(argv[0]);
  wchar_t *line = build_command_line(argv);
  HANDLE inherited[] = {null_in, pipe_write};
  LPPROC_THREAD_ATTRIBUTE_LIST attributes = NULL;
  SIZE_T attributes_size = 0;
  PROCESS_INFORMATION info = {0};
  DWORD error = 0;

  InitializeProcThreadAttributeList(NULL, 1, 0, &attributes_size);
  attributes = malloc(attributes_size);
  if (program == NULL || line == NULL || attributes == NULL) {
    error = ERROR_NOT_ENOUGH_MEMORY;
    goto out;
  }
  if (!InitializeProcThreadAttributeList(attributes, 1, 0, &attributes_size) ||
      !UpdateProcThreadAttribute(attributes, 0,
                                 PROC_THREAD_ATTRIBUTE_HANDLE_LIST, inherited,
                                 sizeof(inherited), NULL, NULL)) {
    error = GetLastError();
    goto out;
  }

  STARTUPINFOEXW startup = {0};
  startup.StartupInfo.cb = sizeof(startup);
  startup.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  startup.StartupInfo.hStdInput = null_in;
  startup.StartupInfo.hStdOutput = pipe_write;
  startup.StartupInfo.hStdError = pipe_write;
  startup.lpAttributeList = attributes;

  /* Without a console of the agent's (a service), a console program would
   * get a console window of its own. */
  DWORD flags = CREATE_SUSPENDED | CREATE_NEW_PROCESS_GROUP |
                CREATE_UNICODE_ENVIRONMENT | EXTENDED_STARTUPINFO_PRESENT;
  if (GetConsoleWindow() == NULL)
    flags |= CREATE_NO_WINDOW;

  child->job = CreateJobObjectW(NULL, NULL);
  if (child->job == NULL) {
    error = GetLastError();
    goto out;
  }
  if (!CreateProcessW(program, line, NULL, NULL, TRUE, flags, NULL, NULL,
                      &startup.StartupInfo, &info)) {
    error = GetLastError();
    goto out;
  }
  if (!AssignProcessToJobObject(child->job, info.hProcess)) {
    error = GetLastError();
    TerminateProcess(info.hProcess, TERMINATED_EXIT_CODE);
    WaitForSingleObject(info.hProcess, INFINITE);
    CloseHandle(info.hProcess);
    CloseHandle(info.hThread);
    goto out;
  }
  ResumeThread(info.hThread);
  CloseHandle(info.hThread);
  child->process = info.hProcess;
  child->process_id = info.dwProcessId;

out:
  if (attributes != NULL && attributes_size > 0)
    DeleteProcThreadAttributeList(attributes);
  free(attributes);
  free(line);
  free(program);
  return error;
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

/* Read what the pipe holds now without blocking, and close it at its
 * end, when every process that had the write end closed it. */
static void read_output(struct child *child)
{
  char buffer[4096];

  while (child->output != NULL) {
    DWORD available = 0;
    DWORD got = 0;

    if (!PeekNamedPipe(child->output, NULL, 0, NULL, &available, NULL)) {
      CloseHandle(child->output);
      child->output = NULL;
      return;
    }
    if (available == 0)
      return;
    if (!ReadFile(child->output, buffer,
                  available < sizeof(buffer) ? available : sizeof(buffer), &got,
                  NULL) ||
        got == 0) {
      CloseHandle(child->output);
      child->output = NULL;
      return;
    }
    keep_output(child->result, buffer, got);
  }
}

static bool has_exited(const struct child *child, DWORD wait_ms)
{
  return WaitForSingleObject(child->process, wait_ms) == WAIT_OBJECT_0;
}

/* Wait until the child exits by itself, the deadline passes or the watch
 * requests a stop. */
static enum plat_hook_outcome wait_child(struct child *child,
                                         int64_t deadline_ms,
                                         const struct plat_hook_watch *watch)
{
  for (unsigned tick = 0;; tick++) {
    read_output(child);
    if (has_exited(child, 0)) {
      read_output(child);
      return PLAT_HOOK_EXITED;
    }
    int64_t left = deadline_ms - plat_monotonic_ms();
    if (left <= 0)
      return PLAT_HOOK_TIMED_OUT;
    if (tick % TICKS_PER_WATCH == 0 && watch != NULL) {
      if (watch->stop_requested != NULL && watch->stop_requested(watch->ctx))
        return PLAT_HOOK_STOPPED;
      if (watch->progress != NULL)
        watch->progress(watch->ctx);
    }
    has_exited(child, left < TICK_MS ? (DWORD)left : TICK_MS);
  }
}

/* End the hook: CTRL_BREAK_EVENT to its process group, up to
 * KILL_GRACE_MS for the process to exit, then every process of the job. */
static void end_job(struct child *child)
{
  int64_t deadline_ms = plat_monotonic_ms() + KILL_GRACE_MS;

  GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, child->process_id);
  while (!has_exited(child, TICK_MS) && plat_monotonic_ms() < deadline_ms)
    read_output(child);
  TerminateJobObject(child->job, TERMINATED_EXIT_CODE);
  WaitForSingleObject(child->process, INFINITE);
  read_output(child);
}

enum ag_code plat_run_hook(const char *const argv[], int timeout_s,
                           const struct plat_hook_watch *watch,
                           struct plat_hook_result *out, struct ag_error *err)
{
  struct child child = {.result = out};
  HANDLE null_in = NULL;
  HANDLE pipe_write = NULL;
  int64_t started_ms = plat_monotonic_ms();
  enum ag_code code = AG_OK;
  char text[256];

  memset(out, 0, sizeof(*out));
  if (!open_handles(&null_in, &child.output, &pipe_write)) {
    code = ag_error_set(err, AG_ELOCAL, "cannot create a pipe for '%s': %s",
                        argv[0],
                        win_error_text(GetLastError(), text, sizeof(text)));
    goto out;
  }
  DWORD error = start_child(argv, null_in, pipe_write, &child);
  CloseHandle(pipe_write);
  pipe_write = NULL;
  if (error != 0) {
    code = ag_error_set(
        err, error == ERROR_NOT_ENOUGH_MEMORY ? AG_ENOMEM : AG_ELOCAL,
        "cannot start '%s': %s", argv[0],
        win_error_text(error, text, sizeof(text)));
    goto out;
  }

  out->outcome =
      wait_child(&child, started_ms + (int64_t)timeout_s * 1000, watch);
  if (out->outcome != PLAT_HOOK_EXITED)
    end_job(&child);
  out->elapsed_ms = plat_monotonic_ms() - started_ms;
  DWORD status = 0;
  if (!GetExitCodeProcess(child.process, &status))
    code = ag_error_set(err, AG_ELOCAL, "cannot wait for '%s': %s", argv[0],
                        win_error_text(GetLastError(), text, sizeof(text)));
  else
    out->status = (int)status;

out:
  if (null_in != NULL)
    CloseHandle(null_in);
  if (pipe_write != NULL)
    CloseHandle(pipe_write);
  if (child.output != NULL)
    CloseHandle(child.output);
  if (child.process != NULL)
    CloseHandle(child.process);
  if (child.job != NULL)
    CloseHandle(child.job);
  return code;
}
