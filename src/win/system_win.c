/* Windows implementation of the process, terminal and log target parts of
 * agent/platform.h. The system log is the Application event log, written
 * with ReportEventW() under the source that the install command registers
 * with this executable as its message file (messages.mc). */
#include "agent/platform.h"

#include "win_internal.h"
#include "messages.h"

#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <shellapi.h>
#include <stdlib.h>
#include <string.h>

/* The event log source handle, or NULL while it is closed. */
static HANDLE event_source;

/* Switch a console output to the escape sequences that the status line of
 * sync uses. Consoles older than Windows 10 reject the mode and show the
 * sequences as text. */
static void prepare_console(DWORD which)
{
  HANDLE handle = GetStdHandle(which);
  DWORD mode = 0;

  if (handle != NULL && handle != INVALID_HANDLE_VALUE &&
      GetConsoleMode(handle, &mode))
    SetConsoleMode(handle, mode | ENABLE_VIRTUAL_TERMINAL_PROCESSING);
}

void plat_init_process(int *argc, char ***argv)
{
  int count = 0;
  wchar_t **wide = CommandLineToArgvW(GetCommandLineW(), &count);

  /* No message box for a missing disk or a crash, because a service runs
   * where no user can close it. */
  SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX |
               SEM_NOOPENFILEERRORBOX);
  SetConsoleOutputCP(CP_UTF8);
  prepare_console(STD_OUTPUT_HANDLE);
  prepare_console(STD_ERROR_HANDLE);

  /* main() received the arguments in the ANSI code page, which cannot
   * hold every path. The UTF-8 copies live as long as the process. */
  if (wide == NULL)
    return;
  char **utf8 = calloc((size_t)count + 1, sizeof(*utf8));
  for (int i = 0; utf8 != NULL && i < count; i++) {
    utf8[i] = win_utf8(wide[i]);
    if (utf8[i] == NULL) {
      for (int j = 0; j < i; j++)
        free(utf8[j]);
      free(utf8);
      utf8 = NULL;
    }
  }
  LocalFree(wide);
  if (utf8 == NULL)
    return;
  *argc = count;
  *argv = utf8;
}

const char *plat_default_config_path(void)
{
  static char *path;

  if (path == NULL) {
    const char *dir = win_data_dir();
    size_t size = strlen(dir) + sizeof("\\agent.conf");
    path = malloc(size);
    if (path == NULL)
      return "C:\\ProgramData\\" WIN_DATA_FOLDER "\\agent.conf";
    snprintf(path, size, "%s\\agent.conf", dir);
  }
  return path;
}

long plat_process_id(void)
{
  return (long)GetCurrentProcessId();
}

bool plat_is_terminal(FILE *stream)
{
  HANDLE handle = (HANDLE)_get_osfhandle(_fileno(stream));
  DWORD mode = 0;

  /* _isatty() is also true for the NUL device, GetConsoleMode() only for
   * a console. */
  return handle != INVALID_HANDLE_VALUE && GetConsoleMode(handle, &mode);
}

int plat_open_log(const char *path)
{
  wchar_t *wide = win_path(path);

  if (wide == NULL)
    return -1;
  /* FILE_APPEND_DATA without FILE_WRITE_DATA makes every write go to the
   * end of the file in one piece, also with several writers. */
  HANDLE handle =
      CreateFileW(wide, FILE_APPEND_DATA | SYNCHRONIZE,
                  FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                  OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
  DWORD error = GetLastError();
  free(wide);
  if (handle == INVALID_HANDLE_VALUE) {
    errno = win_errno(error);
    return -1;
  }
  int fd = _open_osfhandle((intptr_t)handle, _O_WRONLY | _O_BINARY);
  if (fd < 0) {
    CloseHandle(handle);
    errno = EMFILE;
  }
  return fd;
}

void plat_close_log(int fd)
{
  _close(fd);
}

void plat_system_log_open(void)
{
  if (event_source == NULL)
    event_source = RegisterEventSourceW(NULL, WIN_EVENT_SOURCE);
}

void plat_system_log_write(int severity, const char *text)
{
  WORD type = EVENTLOG_INFORMATION_TYPE;
  DWORD event_id = MSG_AGENT_INFO;

  if (severity <= 3) {
    type = EVENTLOG_ERROR_TYPE;
    event_id = MSG_AGENT_ERROR;
  } else if (severity == 4) {
    type = EVENTLOG_WARNING_TYPE;
    event_id = MSG_AGENT_WARNING;
  }
  plat_system_log_open();
  wchar_t *wide = win_utf16(text);
  if (event_source == NULL || wide == NULL) {
    free(wide);
    return;
  }
  const wchar_t *strings[] = {wide};
  ReportEventW(event_source, type, 0, event_id, NULL, 1, 0, strings, NULL);
  free(wide);
}

void plat_system_log_close(void)
{
  if (event_source != NULL)
    DeregisterEventSource(event_source);
  event_source = NULL;
}
