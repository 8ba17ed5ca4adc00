/* Operating-system services behind one interface.
 *
 * src/posix/ and src/win/ each implement this header; CMake builds one of
 * them. Paths are UTF-8 on every platform. */
#ifndef AGENT_PLATFORM_H
#define AGENT_PLATFORM_H

#include <stdint.h>
#include <stdio.h>

#include "agent/error.h"

/* Milliseconds from an arbitrary start that never jumps backwards. */
int64_t plat_monotonic_ms(void);

/* Seconds since the Unix epoch, wall clock. */
int64_t plat_wall_time(void);

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

/* Flush stdio buffers, fsync and close file. The file is closed in every
 * case. Error messages name path. */
enum ag_code plat_sync_close(FILE *file, const char *path,
                             struct ag_error *err);

/* Rename from onto to, replacing to if it exists, then make the rename
 * durable by syncing the folder that contains to. */
enum ag_code plat_replace(const char *from, const char *to,
                          struct ag_error *err);

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
 * the file. If another process holds it, returns AG_ELOCKED with a message
 * that names the holder's process id. */
enum ag_code plat_lock(const char *path, struct plat_lock **lock_out,
                       struct ag_error *err);

/* Release and free a lock. Accepts NULL. */
void plat_unlock(struct plat_lock *lock);

#endif
