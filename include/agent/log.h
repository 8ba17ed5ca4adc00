/* Leveled logging to stderr.
 *
 * Levels: error (the agent could not do something it should), warn
 * (something unusual that the agent handled), info (one line per file
 * outcome and per pass that did work), debug (protocol detail). Text that
 * comes from outside (remote names, XML values, server banners) must go
 * through log_escape() or the "%s"-safe helpers before it is logged. */
#ifndef AGENT_LOG_H
#define AGENT_LOG_H

#include <stddef.h>

enum log_level {
  LOG_LEVEL_ERROR,
  LOG_LEVEL_WARN,
  LOG_LEVEL_INFO,
  LOG_LEVEL_DEBUG
};

/* Set the most verbose level that is written. Default: info. */
void log_set_level(enum log_level level);

/* Parse "error", "warn", "info" or "debug". Returns 0 on success, -1 if the
 * name is not a level. */
int log_level_parse(const char *name, enum log_level *level);

/* Return whether a message at this level would be written. */
int log_enabled(enum log_level level);

/* Write one line. The line gets a UTC timestamp and level prefix, and no
 * newline is needed in format. Preserves errno. */
void log_msg(enum log_level level, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* Copy len bytes of untrusted text into out as printable text: control
 * characters, DEL, backslash and bytes that are not valid UTF-8 become
 * \xHH escapes. out is always NUL-terminated, and the copy is cut with
 * "..." when it does not fit. Returns out. */
char *log_escape(char *out, size_t out_size, const void *text, size_t len);

#endif
