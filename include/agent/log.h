/* Leveled logging to stderr, the systemd journal, syslog or a file.
 *
 * Levels: error (the agent could not do something it should), warn
 * (something unusual that the agent handled), info (one line per file
 * outcome and per pass that did work), debug (protocol detail). Text that
 * comes from outside (remote names, XML values, server banners) must go
 * through log_escape() or the "%s"-safe helpers before it is logged.
 *
 * Targets, chosen by log_configure():
 * - stderr (the default): "<UTC time> <level>: <message>" per line. When
 *   stderr is a stream to the systemd journal, each line is "<N><message>"
 *   with the syslog priority N (error 3, warn 4, info 6, debug 7) and no
 *   time, because the journal stamps lines itself. systemd sets
 *   JOURNAL_STREAM to "<device>:<inode>" of that stream in decimal
 *   (systemd.exec(5)), and the agent compares it with stderr.
 * - syslog: syslog(3) with facility daemon and the same priorities, or on
 *   Windows the Application event log (agent/platform.h).
 * - file: appended to a file, with UTC ISO-8601 times. log_reopen()
 *   switches to a new file at the same path after logrotate renamed it.
 *
 * Repeats: a message whose formatted text was written max_repeats times
 * within the current window (default 10 in 60 s) is not written again
 * until the window ends. The first log call after that writes one line
 * with the number of repeats that were left out. Debug messages are not
 * limited, because the operator asked for all of them.
 *
 * Threads: log_msg() (and the macros) and log_set_status_line() may be
 * called from several threads at once; one lock keeps each line whole.
 * The other functions change the target and must not run while another
 * thread logs. No function is async-signal-safe: a signal handler only
 * sets a flag, and the main loop calls log_reopen(). */
#ifndef AGENT_LOG_H
#define AGENT_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "agent/error.h"

enum log_level {
  LOG_LEVEL_ERROR,
  LOG_LEVEL_WARN,
  LOG_LEVEL_INFO,
  LOG_LEVEL_DEBUG
};

struct config;

/* Set the most verbose level that is written. Default: info. */
void log_set_level(enum log_level level);

/* Parse "error", "warn", "info" or "debug". Returns 0 on success, -1 if the
 * name is not a level. */
int log_level_parse(const char *name, enum log_level *level);

/* Return whether a message at this level would be written. */
int log_enabled(enum log_level level);

/* Switch to config's log_target (for the file target, log_file) and set
 * config's log_level. The previous file or syslog connection is closed
 * after the new target is ready. Checks again whether stderr is a journal
 * stream. Returns AG_OK, or AG_ELOCAL when log_file cannot be opened. Then
 * the message names the file, and logging stays on the previous target. */
enum ag_code log_configure(const struct config *config, struct ag_error *err);

/* Open the log file again by its path and close the old one, so that
 * lines go to a new file once logrotate has renamed the old one. Does
 * nothing for the other targets. On failure, returns AG_ELOCAL with a
 * message that names the file, and logging continues into the old file. */
enum ag_code log_reopen(struct ag_error *err);

/* Write the pending repeat counts, close the log file or the syslog
 * connection, remove the status line and go back to stderr. */
void log_close(void);

/* Also write every message at level or a more severe one to the system
 * log (syslog, or the Event Log on Windows), whatever the target is. The
 * Windows service uses it, so that its warnings and errors reach the Event
 * Viewer while the log file keeps every line. log_close() ends the copy. */
void log_copy_to_system_log(enum log_level level);

/* Write at most max_repeats copies of the same message per window_ms
 * milliseconds. max_repeats 0 turns the limit off. Forgets the repeats
 * counted so far without writing their counts. */
void log_set_rate_limit(unsigned max_repeats, int64_t window_ms);

/* Show text as a status line below the log lines, redrawn in place with
 * '\r', such as a progress display. NULL removes it. Only has an effect
 * when the target is stderr, stderr is a terminal and not the journal.
 * Otherwise the call is ignored. Control characters in text are dropped. */
void log_set_status_line(const char *text);

/* Write one line. Control characters in the formatted message become
 * \xHH escapes, so one call always gives one line. No newline is needed in
 * format. Preserves errno. */
void log_msg(enum log_level level, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* Copy len bytes of untrusted text into out as printable text: control
 * characters, DEL, backslash and bytes that are not valid UTF-8 become
 * \xHH escapes. out is always NUL-terminated, and the copy is cut with
 * "..." when it does not fit. Returns out. An uncut copy can be turned
 * back into the original bytes, because a backslash is escaped too. */
char *log_escape(char *out, size_t out_size, const void *text, size_t len);

#endif
