/* Original documents that the agent copies into the output folder
 * unchanged.
 *
 * Rossum's SFTP export can put the original documents (the PDFs or images
 * behind the annotations) beside the export files, under names without an
 * extension such as "invoice_file-4410021". Files whose base name matches a
 * [remote] passthrough pattern are not parsed: each is copied byte for
 * byte as "<local name>.<first 16 hex digits of its SHA-256>.bin", with a
 * sidecar "<that name>.json" that describes where it came from. */
#ifndef AGENT_PASSTHROUGH_H
#define AGENT_PASSTHROUGH_H

#include <stdbool.h>

#include "agent/atomic_file.h"
#include "agent/config.h"
#include "agent/error.h"
#include "agent/output.h"

/* Return whether a remote base name matches a passthrough pattern and no
 * exclude pattern. The include patterns play no part, and a name that
 * matches both include and passthrough is a passthrough file. */
bool passthrough_selected(const struct config *config, const char *name);

/* Publish the local file at copy_path, the downloaded bytes of src, into
 * dir: first the copy, then the sidecar {"format_version":1,"source":{...}}
 * with the same source object as an export's output document. Each is
 * written to a temporary ".incoming.XXXXXX.tmp" file, synced and renamed
 * into place, so a reader that waits for the sidecar finds a complete
 * copy. A file of the same name is replaced; by how names are built, it
 * has the same content. src->format should be "passthrough".
 *
 * On success stores the copy's file name (malloc'd, the caller frees it)
 * in *name_out; the sidecar's name is that name plus ".json". On failure
 * returns AG_ELOCAL or AG_ENOMEM, and no temporary file remains, although
 * the copy stays published when only the sidecar failed. */
enum ag_code passthrough_publish(const char *dir,
                                 const struct output_source *src,
                                 const char *copy_path, char **name_out,
                                 struct ag_error *err);

/* The two written files of a passthrough publication. */
struct passthrough_files {
  struct atomic_file *copy;    /* publish as name */
  struct atomic_file *sidecar; /* publish as name + ".json", after copy */
  char *name;                  /* the copy's file name, malloc'd */
};

/* Write the copy and the sidecar that passthrough_publish() would
 * publish (atomic_file_flush()), without syncing or renaming either, and
 * store them in *out. The caller makes them durable (atomic_file_prepare())
 * or has them synced with a batch of other files, publishes copy
 * first and frees *out with passthrough_files_free(). On failure nothing
 * remains and *out is empty. Errors as passthrough_publish(). */
enum ag_code passthrough_prepare(const char *dir,
                                 const struct output_source *src,
                                 const char *copy_path,
                                 struct passthrough_files *out,
                                 struct ag_error *err);

/* Free both files (removing temporary files that were neither published
 * nor kept) and the name, and reset files to zeros. */
void passthrough_files_free(struct passthrough_files *files);

#endif
