/* Operating-system services behind one interface.
 *
 * src/posix/ and src/win/ each implement this header; CMake builds one of
 * them. Paths are UTF-8 on every platform. */
#ifndef AGENT_PLATFORM_H
#define AGENT_PLATFORM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "agent/error.h"

/* Milliseconds from an arbitrary start that never jumps backwards. */
int64_t plat_monotonic_ms(void);

/* Seconds since the Unix epoch, wall clock. */
int64_t plat_wall_time(void);

/* Milliseconds since the Unix epoch, wall clock. */
int64_t plat_wall_time_ms(void);

/* Sleep for ms milliseconds. */
void plat_sleep_ms(int64_t ms);

/* Create dir and its missing parents, readable by the owner's group (0750
 * on POSIX) so that a target system in that group can read the outputs.
 * An existing folder is fine and keeps its permissions. */
enum ag_code plat_mkdirs(const char *dir, struct ag_error *err);

/* Return 1 if path exists, 0 if not, and -1 on any other error. */
int plat_exists(const char *path);

/* Open a new file for writing in dir with a unique name starting with
 * prefix. Stores the full path in path_out (malloc'd, caller frees). The
 * file is created exclusively with owner-only permissions. */
enum ag_code plat_create_temp(const char *dir, const char *prefix,
                              FILE **file_out, char **path_out,
                              struct ag_error *err);

/* Let the owner's group read file (0640 on POSIX), for outputs that a
 * target system in that group collects. */
enum ag_code plat_share_with_group(FILE *file, const char *path,
                                   struct ag_error *err);

/* Remove the files in dir that plat_create_temp() made with prefix and
 * that a crashed run left behind. Returns how many were removed, or -1
 * when dir cannot be read. */
int plat_remove_stale_temps(const char *dir, const char *prefix);

/* Flush stdio buffers into the file and, where the system allows it,
 * start writing its data to disk without waiting, so that a later
 * plat_sync_close() of many files finds their data written and their
 * blocks allocated in one journal transaction. Error: AG_ELOCAL naming
 * path when the stream has a write error. */
enum ag_code plat_flush(FILE *file, const char *path, struct ag_error *err);

/* Flush stdio buffers, fsync and close file. The file is closed in every
 * case. Error messages name path. */
enum ag_code plat_sync_close(FILE *file, const char *path,
                             struct ag_error *err);

/* Flush stdio buffers and close file without syncing it. The file is
 * closed in every case. Error messages name path. */
enum ag_code plat_close(FILE *file, const char *path, struct ag_error *err);

/* The file system of a folder, opened for plat_file_system_sync(). */
struct plat_file_system;

/* Open the file system of dir. Where the system cannot sync a
 * whole file system (Windows), set *out to NULL and return AG_OK. Error:
 * AG_ELOCAL naming dir, AG_ENOMEM. */
enum ag_code plat_file_system_open(const char *dir,
                                   struct plat_file_system **out,
                                   struct ag_error *err);

/* Make every file and folder of fs durable, as an fsync of each of them
 * would, in one call: syncfs() on Linux. It also reports the write errors
 * of the file system since plat_file_system_open() or the last call (Linux
 * 5.8 and later), so open fs before the files to sync are written. Error:
 * AG_ELOCAL naming the folder. */
enum ag_code plat_file_system_sync(struct plat_file_system *fs,
                                   struct ag_error *err);

/* Close fs. Accepts NULL. */
void plat_file_system_close(struct plat_file_system *fs);

/* Sync the folder dir, so that files created, renamed or removed in it
 * survive a power loss. Error: AG_ELOCAL naming the folder. */
enum ag_code plat_sync_dir(const char *dir, struct ag_error *err);

/* Rename from onto to, replacing to if it exists, then make the rename
 * durable by syncing the folder that contains to. */
enum ag_code plat_replace(const char *from, const char *to,
                          struct ag_error *err);

/* Give the file from the name to, which must not exist yet, then make the
 * rename durable by syncing the folder that contains to. Errors:
 * AG_EEXIST when to exists (from stays as it was), AG_ELOCAL. */
enum ag_code plat_rename_new(const char *from, const char *to,
                             struct ag_error *err);

/* Flush file's buffer and set its size to size bytes, dropping what lies
 * beyond. Error: AG_ELOCAL, naming path. */
enum ag_code plat_set_file_size(FILE *file, const char *path, uint64_t size,
                                struct ag_error *err);

/* Rename from onto to, replacing to if it exists, without syncing the
 * folder. The rename is durable only after plat_sync_dir() on the folder
 * that contains to, so that one folder sync can cover several renames.
 * Error: AG_ELOCAL. */
enum ag_code plat_rename(const char *from, const char *to,
                         struct ag_error *err);

/* Write all len bytes of data to the file descriptor fd, retrying after
 * signals and short writes. Returns false on any other failure, with
 * errno set. */
bool plat_write_all(int fd, const void *data, size_t len);

/* Remove a file; a missing file is not an error. */
void plat_remove(const char *path);

/* Read a secret (password or passphrase) from the first line of path,
 * without its line ending, into a malloc'd string stored in *secret_out.
 * Rejects a file that other users can read or write (POSIX mode bits),
 * an empty secret and one longer than 4096 bytes. Error: AG_ECONFIG,
 * naming the file but never its content. */
enum ag_code plat_read_secret(const char *path, char **secret_out,
                              struct ag_error *err);

/* Check that path is a regular file that only its owner can access, as
 * OpenSSH requires of private keys. Error: AG_ECONFIG, naming the file and
 * the fix. */
enum ag_code plat_check_private_file(const char *path, struct ag_error *err);

/* Open path like fopen() with mode, where path is UTF-8 on every platform
 * (Windows converts it to UTF-16) and the file is not inherited by child
 * processes. Returns NULL with errno set on failure, ENOENT for a missing
 * file. */
FILE *plat_fopen(const char *path, const char *mode);

/* Store the size in bytes of the file at path in *size_out. Returns 0, or
 * an errno value (ENOENT when the file is missing). */
int plat_file_size(const char *path, int64_t *size_out);

/* Remove the file at path. Returns 0, or an errno value (ENOENT when it
 * was missing). */
int plat_unlink(const char *path);

/* Return whether path is absolute: it starts with '/' on POSIX, and with
 * a drive letter and a separator ("C:\", "C:/") or two separators (a UNC
 * path) on Windows. */
bool plat_path_is_absolute(const char *path);

/* Return a pointer to the last component of path, after its last
 * separator ('/', on Windows also '\\' and a drive's ':'), or path itself
 * when it has none. */
const char *plat_path_base(const char *path);

/* A folder being listed. */
struct plat_dir;

/* Open the folder at path for plat_dir_next(). Returns NULL with errno
 * set on failure, ENOENT when the folder is missing. */
struct plat_dir *plat_dir_open(const char *path);

/* Return the name (UTF-8) of the next entry, skipping "." and "..", or
 * NULL after the last one. The name stays valid until the next call. */
const char *plat_dir_next(struct plat_dir *dir);

/* Close a listing. Accepts NULL. */
void plat_dir_close(struct plat_dir *dir);

/* Overwrite len bytes at p with zeros in a way the compiler keeps. */
void plat_wipe(void *p, size_t len);

/* Return whether name matches the shell wildcard pattern ('*', '?' and
 * bracket expressions), ignoring case, with no special meaning for '/' or
 * a leading '.'. Case is ignored because Windows-side exporters write
 * ".XML" as often as ".xml". */
int plat_glob_match(const char *pattern, const char *name);

/* An exclusive lock on a file, held until plat_unlock() or process exit. */
struct plat_lock;

/* Take the lock on path without waiting, writing this process's id into
 * the file. If another process has it, returns AG_ELOCKED with a message
 * that names the holder's process id. */
enum ag_code plat_lock(const char *path, struct plat_lock **lock_out,
                       struct ag_error *err);

/* Release and free a lock. Accepts NULL. */
void plat_unlock(struct plat_lock *lock);

/* ---- The process and its terminal ---- */

/* Prepare the process at the start of main(). On Windows, replace *argc
 * and *argv with the command line in UTF-8, whatever the ANSI code page,
 * and let the console show UTF-8 output. Nothing on POSIX. */
void plat_init_process(int *argc, char ***argv);

/* Return the default config file: /etc/rossum-sftp-agent/agent.conf on
 * POSIX, and agent.conf in the folder rossum-sftp-agent below
 * %ProgramData% (usually C:\ProgramData) on Windows. */
const char *plat_default_config_path(void);

/* Return this process's id. */
long plat_process_id(void);

/* Return whether stream is a terminal (a console on Windows). */
bool plat_is_terminal(FILE *stream);

/* ---- Log targets ---- */

/* Open path for appending log lines, creating it when missing (readable by
 * the owner's group on POSIX). Returns a descriptor for plat_write_all()
 * and plat_close_log(), or -1 with errno set. Another program may rename
 * or delete the file while it is open, so that log rotation works. */
int plat_open_log(const char *path);

/* Close a descriptor from plat_open_log(). */
void plat_close_log(int fd);

/* Open the system log: syslog(3) with facility daemon on POSIX, the
 * Application event log with the source "rossum-sftp-agent" on Windows. */
void plat_system_log_open(void);

/* Write one message to the system log at a syslog severity: 3 error,
 * 4 warning, 6 informational, 7 debug. Windows maps these to the event
 * types error, warning and information. Opens the log when needed. */
void plat_system_log_write(int severity, const char *text);

/* Close the system log. Accepts a log that is not open. */
void plat_system_log_close(void);

/* ---- Threads ----
 *
 * Threads, mutexes and condition variables for the parallel pass. Timed
 * waits follow the monotonic clock, so setting the wall clock does not
 * change them. A failure of lock, unlock, wait or signal is a bug in the
 * agent and ends the process. */

struct plat_thread;
struct plat_mutex;
struct plat_cond;

/* Start a thread that runs fn(arg) and store it in *out. Error: AG_ELOCAL
 * when the system cannot start another thread. */
enum ag_code plat_thread_start(void (*fn)(void *arg), void *arg,
                               struct plat_thread **out, struct ag_error *err);

/* Wait until thread has ended, then free it. */
void plat_thread_join(struct plat_thread *thread);

/* Create a mutex. Error: AG_ENOMEM. */
enum ag_code plat_mutex_new(struct plat_mutex **out, struct ag_error *err);

/* Free a mutex that no thread holds. Accepts NULL. */
void plat_mutex_free(struct plat_mutex *mutex);

void plat_mutex_lock(struct plat_mutex *mutex);
void plat_mutex_unlock(struct plat_mutex *mutex);

/* Create a condition variable. Error: AG_ENOMEM. */
enum ag_code plat_cond_new(struct plat_cond **out, struct ag_error *err);

/* Free a condition variable that no thread waits on. Accepts NULL. */
void plat_cond_free(struct plat_cond *cond);

/* Release mutex, which the caller holds, wait until cond is signalled, and
 * take mutex again. As with every condition variable, a wait may also end
 * without a signal, so the caller checks its condition in a loop. */
void plat_cond_wait(struct plat_cond *cond, struct plat_mutex *mutex);

/* Like plat_cond_wait(), but wait at most ms milliseconds. Returns false
 * when the time ran out. */
bool plat_cond_wait_ms(struct plat_cond *cond, struct plat_mutex *mutex,
                       int64_t ms);

/* Wake one thread, or every thread, that waits on cond. */
void plat_cond_signal(struct plat_cond *cond);
void plat_cond_broadcast(struct plat_cond *cond);

/* ---- Running the post-delivery hook ---- */

/* Bytes of the hook's output that plat_run_hook() keeps. */
#define PLAT_HOOK_OUTPUT_MAX 4096

/* Outcome of a hook run. */
enum plat_hook_outcome {
  PLAT_HOOK_EXITED,    /* it exited by itself; status is its exit status */
  PLAT_HOOK_SIGNALED,  /* a signal ended it; status is the signal number */
  PLAT_HOOK_TIMED_OUT, /* it ran past the timeout and was ended */
  PLAT_HOOK_STOPPED    /* the caller asked to stop, so it was ended */
};

/* The result of one hook run. */
struct plat_hook_result {
  enum plat_hook_outcome outcome;
  int status;
  int64_t elapsed_ms;    /* from the start to the end, monotonic clock */
  uint64_t output_total; /* bytes written to stdout and stderr together */
  size_t output_len;     /* bytes kept in output, at most the maximum */
  char output[PLAT_HOOK_OUTPUT_MAX + 1]; /* the first bytes, NUL-terminated;
                                            may contain other NUL bytes */
};

/* Callbacks during plat_run_hook()'s wait, each called about every 100 ms.
 * Either may be NULL. */
struct plat_hook_watch {
  bool (*stop_requested)(void *ctx); /* true ends the hook at once */
  void (*progress)(void *ctx);       /* for a service watchdog */
  void *ctx;
};

/* Run argv[0] (an absolute path; no shell, no PATH search) with the
 * arguments argv[1..] up to a NULL pointer, and wait for it. The process
 * gets stdin from /dev/null, a pipe for stdout and stderr together, the
 * agent's environment and default signal handling, and its own process
 * group. The first PLAT_HOOK_OUTPUT_MAX bytes of its output are kept in
 * out, and the rest is read and dropped, so the hook never blocks on a
 * full pipe.
 *
 * When it runs longer than timeout_s seconds, or watch->stop_requested
 * returns true, its whole process group gets SIGTERM, then SIGKILL as
 * soon as the process has exited or 2 s have passed. Processes that the
 * hook leaves behind after it exits by itself are not waited for, and
 * they may still hold the pipe open.
 *
 * Returns AG_OK once the process ran and ended, whatever its outcome.
 * Errors: AG_ELOCAL when it cannot be started (the program is missing or
 * not executable, or no pipe or process is available), with a message
 * naming argv[0]; AG_ENOMEM.
 *
 * Windows has no signals: src/win/process_win.c runs the hook in a job
 * object, sends CTRL_BREAK_EVENT in place of SIGTERM and ends the whole job
 * in place of SIGKILL, and stdin comes from NUL. */
enum ag_code plat_run_hook(const char *const argv[], int timeout_s,
                           const struct plat_hook_watch *watch,
                           struct plat_hook_result *out, struct ag_error *err);

#endif
