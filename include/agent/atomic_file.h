/* Local files published atomically: every file that the agent writes for
 * others to read (outputs, sidecars, the metrics file, queued requests)
 * goes through this one helper.
 *
 * The content goes into a temporary file "<prefix>.XXXXXX.tmp" in the
 * target folder. atomic_file_sync() flushes, syncs and closes it, so that
 * its data survives a crash. atomic_file_prepare() also syncs the folder,
 * so that its name survives too. atomic_file_publish() renames it onto its
 * final name and syncs the folder again, so a reader sees either the old
 * file or the whole new one, also after a power loss.
 *
 * Between the two steps a caller may record the temporary name (see
 * atomic_file_keep_temp()). After a crash, a temporary file that still
 * exists was never published, and one that is gone was renamed, because
 * only the agent removes its temporary files. */
#ifndef AGENT_ATOMIC_FILE_H
#define AGENT_ATOMIC_FILE_H

#include <stdbool.h>
#include <stdio.h>

#include "agent/error.h"

/* The read permission of the published file. */
enum atomic_file_mode {
  ATOMIC_FILE_PRIVATE,   /* the owner only (0600 on POSIX) */
  ATOMIC_FILE_GROUP_READ /* the owner's group too (0640 on POSIX) */
};

struct atomic_file;
struct plat_file_system;

/* Create the temporary file "<prefix>.XXXXXX.tmp" in dir and store a
 * handle in *out, which the caller frees with atomic_file_free(). Error:
 * AG_ELOCAL naming dir, AG_ENOMEM. */
enum ag_code atomic_file_create(const char *dir, const char *prefix,
                                enum atomic_file_mode mode,
                                struct atomic_file **out, struct ag_error *err);

/* Return the stream to write the content into, or NULL once the file is
 * prepared. The stream belongs to file. */
FILE *atomic_file_stream(struct atomic_file *file);

/* Return the temporary file's full path, or its name within the folder. */
const char *atomic_file_temp_path(const struct atomic_file *file);
const char *atomic_file_temp_name(const struct atomic_file *file);

/* Write what the stream buffers into the temporary file and start writing
 * it to disk without waiting (plat_flush()), so that a write error shows
 * now and a later atomic_file_sync() takes less time. The stream stays
 * open. Calling it after the sync does nothing. Error: AG_ELOCAL naming
 * the file. */
enum ag_code atomic_file_flush(struct atomic_file *file, struct ag_error *err);

/* Flush, sync and close the temporary file, without syncing its folder:
 * the data is durable, the temporary name not yet. A write error that the
 * stream kept is reported here. Calling it again does nothing. Error:
 * AG_ELOCAL naming the file. */
enum ag_code atomic_file_sync(struct atomic_file *file, struct ag_error *err);

/* Sync files[0..count) as atomic_file_sync() does, and set *dir_synced
 * when the names in dir became durable as well. One sync of fs, the file
 * system of dir (plat_file_system_open()), serves the whole group when
 * all files are in dir and at least ATOMIC_FILE_GROUP_MIN of them wait
 * for their sync. Each is then closed, and the group costs one journal
 * commit and one disk cache flush instead of one per file. Otherwise each
 * file is synced on its own. Stops at the first error, which names the
 * file, or the folder for the sync of fs. */
#define ATOMIC_FILE_GROUP_MIN 8
enum ag_code atomic_file_sync_group(struct atomic_file *const *files,
                                    size_t count, const char *dir,
                                    struct plat_file_system *fs,
                                    bool *dir_synced, struct ag_error *err);

/* Sync the file (atomic_file_sync()) if that has not happened, then sync
 * its folder, so that the temporary name is durable as well. Calling it
 * again does nothing. Error: AG_ELOCAL naming the file or the folder. */
enum ag_code atomic_file_prepare(struct atomic_file *file,
                                 struct ag_error *err);

/* Prepare the file if that has not happened, rename it onto name in the
 * same folder, replacing a file of that name, and sync the folder. Error:
 * AG_ELOCAL; the temporary file then still exists unless the rename
 * happened and only the folder sync failed. */
enum ag_code atomic_file_publish(struct atomic_file *file, const char *name,
                                 struct ag_error *err);

/* Like atomic_file_publish(), but without any folder sync: the file is
 * synced (atomic_file_sync()) if that has not happened and renamed. After
 * a power loss it may still have its temporary name. The caller must have
 * recorded the temporary name durably first, after a folder sync that
 * made that name durable (see atomic_file_keep_temp()), so that crash
 * recovery can finish a rename that was lost. It makes the rename durable
 * with plat_sync_dir() on the folder before it relies on it, so that one
 * sync serves several files. */
enum ag_code atomic_file_publish_unsynced(struct atomic_file *file,
                                          const char *name,
                                          struct ag_error *err);

/* Make atomic_file_free() leave the temporary file in place, for a caller
 * that recorded its name and lets crash recovery decide its fate. */
void atomic_file_keep_temp(struct atomic_file *file);

/* Close the file, remove the temporary file unless it was published or
 * kept, and free the handle. Accepts NULL. */
void atomic_file_free(struct atomic_file *file);

#endif
