/* Helpers shared by the Windows implementations in src/win/: text and
 * path conversion between UTF-8 and UTF-16, Win32 error texts, and the
 * links between the service front end, the stop flag and the status that
 * the Service Control Manager sees. Not part of the public API. */
#ifndef AGENT_WIN_INTERNAL_H
#define AGENT_WIN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <windows.h>

/* The folder below %ProgramData% that contains the default config, the state,
 * the outputs and the log. */
#define WIN_DATA_FOLDER "rossum-sftp-agent"

/* The event log source, registered by the install command. */
#define WIN_EVENT_SOURCE L"rossum-sftp-agent"

/* Return a malloc'd UTF-16 copy of the UTF-8 text, or NULL with errno set
 * to EILSEQ for invalid UTF-8 or ENOMEM. */
wchar_t *win_utf16(const char *text);

/* Return a malloc'd UTF-16 path for the UTF-8 path, or NULL with errno
 * set. A path of MAX_PATH characters or more becomes an extended-length
 * path ("\\?\C:\..." or "\\?\UNC\server\...") after GetFullPathNameW()
 * made it absolute and normalized it, so that the 260-character limit
 * does not apply. */
wchar_t *win_path(const char *path);

/* Return a malloc'd UTF-8 copy of the UTF-16 text, or NULL when out of
 * memory. */
char *win_utf8(const wchar_t *text);

/* Write the system's message for a Win32 error code into buffer, in
 * UTF-8 without a trailing line break and followed by the code, and
 * return buffer. */
const char *win_error_text(DWORD code, char *buffer, size_t size);

/* Return the errno value closest to a Win32 error code, such as ENOENT for
 * ERROR_FILE_NOT_FOUND and ERROR_PATH_NOT_FOUND, or EIO when none fits. */
int win_errno(DWORD code);

/* Return the data folder, %ProgramData%\rossum-sftp-agent, in UTF-8. The
 * text is computed once and lives as long as the process. */
const char *win_data_dir(void);

/* Record a stop request from the Service Control Manager (STOP, SHUTDOWN
 * or PRESHUTDOWN), named by control in signals_stop_name(), and wake
 * signals_wait(). Safe to call from any thread. */
void signals_win_request_stop(const char *control);

/* Record a reload request (PARAMCHANGE) and wake signals_wait(). Safe to
 * call from any thread. */
void signals_win_request_reload(void);

/* Return whether this process runs as a service, so that notify.h reports
 * to the Service Control Manager. */
bool service_win_active(void);

/* Report SERVICE_RUNNING, after start-up finished. */
void service_win_report_running(void);

/* Report SERVICE_STOP_PENDING, once the service loop has begun to stop. */
void service_win_report_stopping(void);

#endif
