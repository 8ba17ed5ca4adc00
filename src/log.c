/* Leveled logging: the targets (stderr, journal, syslog, file), the limit
 * on repeated messages and the status line on a terminal. */
#include "agent/log.h"

#include "agent/config.h"
#include "agent/platform.h"
#include "agent/utf8.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Maximum size in bytes of a message after escaping, and of one line. */
#define MESSAGE_SIZE 4096
#define LINE_SIZE (MESSAGE_SIZE + 512)
#define STATUS_SIZE 256

/* Distinct messages tracked for the repeat limit at one time. When all
 * slots are in use, the one with the oldest window is reused. */
#define REPEAT_SLOTS 64
#define REPEAT_EXCERPT_SIZE 200
#define DEFAULT_MAX_REPEATS 10
#define DEFAULT_WINDOW_MS 60000

/* One message that the repeat limit tracks in its current window. */
struct repeat_slot {
  uint64_t hash;        /* of level and text; 0 marks a free slot */
  int64_t window_start; /* monotonic milliseconds */
  unsigned count;       /* copies logged in this window, written or not */
  unsigned suppressed;  /* copies not written */
  enum log_level level;
  char excerpt[REPEAT_EXCERPT_SIZE]; /* start of the text, for the count */
};

/* The logger is process-wide, like the stderr stream it replaces. */
static struct {
  enum log_level level;
  enum log_target target;
  int journal; /* stderr is a journal stream: 1 yes, 0 no, -1 not checked */
  int file_fd; /* the log file with LOG_TARGET_FILE, otherwise -1 */
  char *file_path;
  bool syslog_open;
  int system_copy_level; /* copy to the system log up to this level, or -1 */
  unsigned max_repeats;
  int64_t window_ms;
  struct repeat_slot slots[REPEAT_SLOTS];
  char status[STATUS_SIZE];
  bool status_shown;
} logger = {
    .level = LOG_LEVEL_INFO,
    .target = LOG_TARGET_STDERR,
    .journal = -1,
    .file_fd = -1,
    .system_copy_level = -1,
    .max_repeats = DEFAULT_MAX_REPEATS,
    .window_ms = DEFAULT_WINDOW_MS,
};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* Serialises log_msg() and log_set_status_line() across threads, so that
 * the repeat slots and the status line stay whole and lines never mix. It
 * is created at the first call, and the threads that race to create it
 * agree on one with a compare-and-swap. */
static _Atomic(struct plat_mutex *) logger_lock;

/* Return the logger's lock, or NULL when it cannot be created. Logging
 * then goes on without it, as it did before threads existed. */
static struct plat_mutex *get_logger_lock(void)
{
  struct plat_mutex *lock = atomic_load(&logger_lock);
  struct plat_mutex *created = NULL;
  struct ag_error err = {0};

  if (lock != NULL || plat_mutex_new(&created, &err) != AG_OK)
    return lock;
  if (atomic_compare_exchange_strong(&logger_lock, &lock, created))
    return created;
  plat_mutex_free(created); /* another thread was first; lock is its */
  return lock;
}

/* Take the logger's lock and return it, for unlock_logger(). */
static struct plat_mutex *lock_logger(void)
{
  struct plat_mutex *lock = get_logger_lock();

  if (lock != NULL)
    plat_mutex_lock(lock);
  return lock;
}

static void unlock_logger(struct plat_mutex *held)
{
  if (held != NULL)
    plat_mutex_unlock(held);
}

/* ---- Operating-system services ---- */

/* syslog(3) severities, which the journal's "<N>" prefixes share. */
static const int level_priorities[] = {3, 4, 6, 7};

/* Return whether JOURNAL_STREAM contains the device and inode of stderr.
 * Comparing both matters: a child process can inherit the variable after
 * its stderr was redirected elsewhere. */
static bool stderr_is_journal(void)
{
  const char *stream = getenv("JOURNAL_STREAM");
  struct stat info;
  char *end = NULL;

  if (stream == NULL || fstat(STDERR_FILENO, &info) != 0)
    return false;
  errno = 0;
  unsigned long long device = strtoull(stream, &end, 10);
  if (errno != 0 || end == stream || *end != ':')
    return false;
  const char *inode_text = end + 1;
  unsigned long long inode = strtoull(inode_text, &end, 10);
  if (errno != 0 || end == inode_text || *end != '\0')
    return false;
  return (unsigned long long)info.st_dev == device &&
         (unsigned long long)info.st_ino == inode;
}

static bool stderr_is_terminal(void)
{
  return plat_is_terminal(stderr);
}

static void open_syslog(void)
{
  plat_system_log_open();
  logger.syslog_open = true;
}

static void close_syslog(void)
{
  plat_system_log_close();
  logger.syslog_open = false;
}

static void write_syslog(enum log_level level, const char *text)
{
  plat_system_log_write(level_priorities[level], text);
}

/* ---- Line assembly ---- */

/* Append text to buf (of size bytes, len used), cutting it when full. */
static void append(char *buf, size_t size, size_t *len, const char *text)
{
  size_t room = size - 1 - *len;
  size_t add = strlen(text);

  if (add > room)
    add = room;
  memcpy(buf + *len, text, add);
  *len += add;
  buf[*len] = '\0';
}

/* Format the current UTC time as "2024-05-01T12:00:00.123Z". */
static void format_stamp(char *out, size_t size)
{
  int64_t now_ms = plat_wall_time_ms();
  time_t seconds = (time_t)(now_ms / 1000);
  struct tm utc;

  out[0] = '\0';
  if (gmtime_r(&seconds, &utc) == NULL)
    return;
  size_t len = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &utc);
  snprintf(out + len, size - len, ".%03dZ", (int)(now_ms % 1000));
}

/* Copy text into out, with control characters and DEL as \xHH. A cut
 * never splits an escape or a UTF-8 sequence. */
static void escape_controls(char *out, size_t size, const char *text)
{
  const unsigned char *in = (const unsigned char *)text;
  size_t used = 0;
  size_t i = 0;

  for (; in[i] != '\0'; i++) {
    bool control = in[i] < 0x20 || in[i] == 0x7F;
    size_t need = control ? 4 : 1;

    if (used + need >= size)
      break;
    if (control)
      snprintf(out + used, 5, "\\x%02X", in[i]);
    else
      out[used] = (char)in[i];
    used += need;
  }

  /* When the cut falls inside a UTF-8 sequence, drop its copied part. */
  if ((in[i] & 0xC0) == 0x80) {
    while (used > 0 && ((unsigned char)out[used - 1] & 0xC0) == 0x80)
      used--;
    if (used > 0 && (unsigned char)out[used - 1] >= 0xC0)
      used--;
  }
  out[used] = '\0';
}

/* Drop an incomplete UTF-8 sequence that a cut left at the end of text. */
static void trim_cut_sequence(char *text)
{
  size_t len = strlen(text);
  size_t start = len;

  while (start > 0 && len - start < 3 &&
         ((unsigned char)text[start - 1] & 0xC0) == 0x80)
    start--;
  if (start == 0 || (unsigned char)text[start - 1] < 0xC0)
    return;
  start--;
  if (utf8_sequence_length((const unsigned char *)text + start, len - start) !=
      len - start)
    text[start] = '\0';
}

/* ---- Output ---- */

/* Write one line to stderr in the journal or the timestamped form. A
 * status line on the terminal is cleared first and drawn again below. */
static void write_stderr(enum log_level level, const char *text)
{
  char line[LINE_SIZE];
  char prefix[64];
  size_t len = 0;

  if (logger.journal < 0)
    logger.journal = stderr_is_journal();
  line[0] = '\0';
  if (logger.status_shown)
    append(line, sizeof(line), &len, "\r\033[K");
  if (logger.journal == 1) {
    snprintf(prefix, sizeof(prefix), "<%d>", level_priorities[level]);
  } else {
    char stamp[32];

    format_stamp(stamp, sizeof(stamp));
    snprintf(prefix, sizeof(prefix), "%s %s: ", stamp, level_names[level]);
  }
  append(line, sizeof(line), &len, prefix);
  append(line, sizeof(line), &len, text);
  append(line, sizeof(line), &len, "\n");
  if (logger.status_shown)
    append(line, sizeof(line), &len, logger.status);

  /* One buffer and one write per line keeps lines whole when several
   * processes share stderr. */
  fwrite(line, 1, len, stderr);
  fflush(stderr);
}

/* Append one timestamped line to the log file. Returns false when the
 * write failed, so that the line can go to stderr instead. */
static bool write_file(enum log_level level, const char *text)
{
  char line[LINE_SIZE];
  char stamp[32];

  format_stamp(stamp, sizeof(stamp));
  int len = snprintf(line, sizeof(line) - 1, "%s %s: %s", stamp,
                     level_names[level], text);
  if (len < 0)
    return false;
  if ((size_t)len > sizeof(line) - 2)
    len = (int)sizeof(line) - 2;
  line[len++] = '\n';
  return plat_write_all(logger.file_fd, line, (size_t)len);
}

static void emit(enum log_level level, const char *text)
{
  if (logger.target != LOG_TARGET_SYSLOG &&
      (int)level <= logger.system_copy_level) {
    if (!logger.syslog_open)
      open_syslog();
    write_syslog(level, text);
  }
  switch (logger.target) {
  case LOG_TARGET_SYSLOG:
    write_syslog(level, text);
    return;
  case LOG_TARGET_FILE:
    /* A full disk must not hide errors, so they reach stderr instead. */
    if (logger.file_fd >= 0 && write_file(level, text))
      return;
    break;
  case LOG_TARGET_STDERR:
    break;
  }
  write_stderr(level, text);
}

/* ---- Repeat limit ---- */

/* FNV-1a over the level and the text. */
static uint64_t hash_message(enum log_level level, const char *text)
{
  uint64_t hash = 14695981039346656037ULL;

  hash = (hash ^ (uint64_t)level) * 1099511628211ULL;
  for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++)
    hash = (hash ^ *p) * 1099511628211ULL;
  return hash != 0 ? hash : 1;
}

/* Write the count of the copies that slot left out, if any, and free it. */
static void release_slot(struct repeat_slot *slot)
{
  char text[REPEAT_EXCERPT_SIZE + 128];
  bool whole_seconds = logger.window_ms % 1000 == 0;

  if (slot->suppressed > 0) {
    snprintf(
        text, sizeof(text),
        "%u repeats of this message within %lld %s were not written: %s",
        slot->suppressed,
        (long long)(whole_seconds ? logger.window_ms / 1000 : logger.window_ms),
        whole_seconds ? "s" : "ms", slot->excerpt);
    emit(slot->level, text);
  }
  memset(slot, 0, sizeof(*slot));
}

/* Release the slots whose window has ended, or all of them. */
static void release_expired(int64_t now, bool all)
{
  for (size_t i = 0; i < REPEAT_SLOTS; i++) {
    struct repeat_slot *slot = &logger.slots[i];

    if (slot->hash != 0 &&
        (all || now - slot->window_start >= logger.window_ms))
      release_slot(slot);
  }
}

/* Return a free slot, or release and return the one with the oldest
 * window. */
static struct repeat_slot *claim_slot(void)
{
  struct repeat_slot *oldest = &logger.slots[0];

  for (size_t i = 0; i < REPEAT_SLOTS; i++) {
    struct repeat_slot *slot = &logger.slots[i];

    if (slot->hash == 0)
      return slot;
    if (slot->window_start < oldest->window_start)
      oldest = slot;
  }
  release_slot(oldest);
  return oldest;
}

/* Count one copy of text and return whether it may be written. */
static bool admit_message(enum log_level level, const char *text, int64_t now)
{
  uint64_t hash = hash_message(level, text);
  struct repeat_slot *slot = NULL;

  for (size_t i = 0; i < REPEAT_SLOTS && slot == NULL; i++) {
    if (logger.slots[i].hash == hash)
      slot = &logger.slots[i];
  }
  if (slot == NULL) {
    slot = claim_slot();
    slot->hash = hash;
    slot->window_start = now;
    slot->level = level;
    escape_controls(slot->excerpt, sizeof(slot->excerpt), text);
  }
  slot->count++;
  if (slot->count <= logger.max_repeats)
    return true;
  slot->suppressed++;
  return false;
}

/* ---- Public functions ---- */

void log_set_level(enum log_level level)
{
  logger.level = level;
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
  return level <= logger.level;
}

/* Close the file or syslog connection of the current target. */
static void close_target(void)
{
  if (logger.file_fd >= 0)
    plat_close_log(logger.file_fd);
  logger.file_fd = -1;
  free(logger.file_path);
  logger.file_path = NULL;
  if (logger.syslog_open)
    close_syslog();
}

static enum ag_code use_file(const char *path, struct ag_error *err)
{
  char *copy = strdup(path);
  int fd = plat_open_log(path);
  int saved_errno = errno;

  if (copy == NULL || fd < 0) {
    if (fd >= 0)
      plat_close_log(fd);
    free(copy);
    if (copy == NULL)
      return ag_error_set(err, AG_ENOMEM, "out of memory");
    return ag_error_set(err, AG_ELOCAL,
                        "cannot open log file '%s': %s. Check that its "
                        "folder exists and the agent's user can write to it",
                        path, strerror(saved_errno));
  }
  close_target();
  logger.file_fd = fd;
  logger.file_path = copy;
  logger.target = LOG_TARGET_FILE;
  return AG_OK;
}

enum ag_code log_configure(const struct config *config, struct ag_error *err)
{
  log_set_level(config->log_level);
  logger.journal = stderr_is_journal();
  switch (config->log_target) {
  case LOG_TARGET_FILE:
    return use_file(config->log_file, err);
  case LOG_TARGET_SYSLOG:
    log_set_status_line(NULL);
    close_target();
    open_syslog();
    logger.target = LOG_TARGET_SYSLOG;
    return AG_OK;
  case LOG_TARGET_STDERR:
    close_target();
    logger.target = LOG_TARGET_STDERR;
    return AG_OK;
  }
  return AG_OK;
}

enum ag_code log_reopen(struct ag_error *err)
{
  if (logger.target != LOG_TARGET_FILE || logger.file_path == NULL)
    return AG_OK;

  int fd = plat_open_log(logger.file_path);
  if (fd < 0)
    return ag_error_set(err, AG_ELOCAL,
                        "cannot reopen log file '%s': %s; logging continues "
                        "into the old file",
                        logger.file_path, strerror(errno));
  plat_close_log(logger.file_fd);
  logger.file_fd = fd;
  return AG_OK;
}

void log_close(void)
{
  release_expired(0, true);
  log_set_status_line(NULL);
  close_target();
  logger.target = LOG_TARGET_STDERR;
  logger.system_copy_level = -1;
}

void log_copy_to_system_log(enum log_level level)
{
  logger.system_copy_level = (int)level;
}

void log_set_rate_limit(unsigned max_repeats, int64_t window_ms)
{
  memset(logger.slots, 0, sizeof(logger.slots));
  logger.max_repeats = max_repeats;
  logger.window_ms = window_ms > 0 ? window_ms : 1;
}

static void set_status_line(const char *text)
{
  if (logger.journal < 0)
    logger.journal = stderr_is_journal();
  if (logger.target != LOG_TARGET_STDERR || logger.journal == 1 ||
      !stderr_is_terminal())
    return;

  if (text == NULL) {
    if (logger.status_shown)
      fputs("\r\033[K", stderr);
    fflush(stderr);
    logger.status_shown = false;
    logger.status[0] = '\0';
    return;
  }
  size_t used = 0;
  for (const char *p = text; *p != '\0' && used < sizeof(logger.status) - 1;
       p++) {
    if ((unsigned char)*p >= 0x20 && *p != 0x7F)
      logger.status[used++] = *p;
  }
  logger.status[used] = '\0';
  fprintf(stderr, "\r%s\033[K", logger.status);
  fflush(stderr);
  logger.status_shown = true;
}

void log_set_status_line(const char *text)
{
  struct plat_mutex *held = lock_logger();
  set_status_line(text);
  unlock_logger(held);
}

void log_msg(enum log_level level, const char *format, ...)
{
  char raw[MESSAGE_SIZE];
  char text[MESSAGE_SIZE];
  va_list args;

  if (!log_enabled(level))
    return;
  int saved_errno = errno;
  va_start(args, format);
  int full_len = vsnprintf(raw, sizeof(raw), format, args);
  va_end(args);
  if (full_len >= (int)sizeof(raw))
    trim_cut_sequence(raw);
  escape_controls(text, sizeof(text), raw);

  struct plat_mutex *held = lock_logger();
  bool admitted = true;
  if (level != LOG_LEVEL_DEBUG && logger.max_repeats > 0) {
    int64_t now = plat_monotonic_ms();

    release_expired(now, false);
    admitted = admit_message(level, text, now);
  }
  if (admitted)
    emit(level, text);
  unlock_logger(held);
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
