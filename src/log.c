/* Leveled logging to stderr with UTC timestamps. */
#include "agent/log.h"

#include "agent/utf8.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level current_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
  current_level = level;
}

int log_level_parse(const char *name, enum log_level *level)
{
  for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
    if (strcmp(name, level_names[i]) == 0) {
      *level = (enum log_level)i;
      return 0;
    }
  }
  return -1;
}

int log_enabled(enum log_level level)
{
  return level <= current_level;
}

void log_msg(enum log_level level, const char *format, ...)
{
  if (!log_enabled(level))
    return;

  int saved_errno = errno;
  char stamp[32] = "";
  struct timespec now;
  struct tm utc;
  if (clock_gettime(CLOCK_REALTIME, &now) == 0 &&
      gmtime_r(&now.tv_sec, &utc) != NULL) {
    size_t len = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(stamp + len, sizeof(stamp) - len, ".%03dZ",
             (int)(now.tv_nsec / 1000000));
  }

  /* One buffer and one write per line keeps lines whole when several
   * processes share stderr. */
  char line[4096];
  int prefix =
      snprintf(line, sizeof(line), "%s %s: ", stamp, level_names[level]);
  va_list args;
  va_start(args, format);
  vsnprintf(line + prefix, sizeof(line) - (size_t)prefix - 1, format, args);
  va_end(args);
  size_t len = strlen(line);
  line[len++] = '\n';
  fwrite(line, 1, len, stderr);
  fflush(stderr);
  errno = saved_errno;
}

char *log_escape(char *out, size_t out_size, const void *text, size_t len)
{
  const unsigned char *in = text;
  size_t used = 0;
  size_t i = 0;

  if (out_size == 0)
    return out;
  while (i < len) {
    char piece[8];
    size_t piece_len;
    size_t seq = utf8_sequence_length(in + i, len - i);

    if (seq == 1 && (in[i] < 0x20 || in[i] == 0x7F || in[i] == '\\')) {
      piece_len = (size_t)snprintf(piece, sizeof(piece), "\\x%02X", in[i]);
      seq = 1;
    } else if (seq == 0) {
      piece_len = (size_t)snprintf(piece, sizeof(piece), "\\x%02X", in[i]);
      seq = 1;
    } else {
      memcpy(piece, in + i, seq);
      piece_len = seq;
    }
    if (used + piece_len + 4 > out_size) {
      if (used + 4 <= out_size) {
        memcpy(out + used, "...", 3);
        used += 3;
      }
      break;
    }
    memcpy(out + used, piece, piece_len);
    used += piece_len;
    i += seq;
  }
  out[used] = '\0';
  return out;
}
