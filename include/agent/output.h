/* The JSON output document, written once per source file and published
 * atomically into the output folder.
 *
 * While it is written the document is a temporary file named
 * ".incoming.XXXXXX.tmp" in the output folder; a reader must ignore dot
 * files and *.tmp. output_commit() syncs it and renames it into place, so
 * a reader sees either nothing or the whole document. */
#ifndef AGENT_OUTPUT_H
#define AGENT_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agent/atomic_file.h"
#include "agent/error.h"
#include "agent/export.h"

struct output_source {
  const char *inbox; /* remote inbox folder */
  const void *rel;   /* path relative to the inbox, raw bytes */
  size_t rel_len;
  uint64_t size;
  int64_t mtime;      /* Unix seconds */
  const char *sha256; /* lowercase hex */
  const char *format; /* "xml", "csv" */
};

struct output_doc;

/* Build the "source" object that every output and sidecar starts with.
 * Names that are not valid UTF-8 are shown with their bad bytes written as
 * %XX, and name_raw contains the exact bytes in base64. Returns a new
 * reference, or NULL when out of memory. */
json_t *output_source_object(const struct output_source *src);

/* Start a document in dir for src: create the temporary file and write
 * the "format_version" and "source" members. On success stores the
 * document in *out; finish it with output_commit() or output_abort(). */
enum ag_code output_begin(const char *dir, const struct output_source *src,
                          struct output_doc **out, struct ag_error *err);

/* Like output_begin(), for a file whose SHA-256 is not known yet because
 * it is still being downloaded: src->sha256 is ignored, and 64 zeros
 * stand in its place until output_set_sha256() writes the real value,
 * which must come before output_finish() or output_commit(). */
enum ag_code output_begin_unhashed(const char *dir,
                                   const struct output_source *src,
                                   struct output_doc **out,
                                   struct ag_error *err);

/* Write sha256 (64 lowercase hex digits) into the source of a document
 * that output_begin_unhashed() started. Errors: AG_ELOCAL, also when doc
 * has no placeholder (it was started by output_begin(), or the value was
 * set already). */
enum ag_code output_set_sha256(struct output_doc *doc, const char *sha256,
                               struct ag_error *err);

/* Return the sink that a parser writes the document's items into. The
 * sink belongs to doc. Each begin() call starts a list after the ones
 * before it and closes the previous list. */
const struct export_sink *output_sink(struct output_doc *doc);

/* Return how many items the first list (annotations or records) got so
 * far. Items of a later list, such as the CSV "documents", do not count. */
size_t output_item_count(const struct output_doc *doc);

/* Close the last item list and write it out (atomic_file_flush()), then
 * hand the temporary file to the caller in *out, which publishes and frees
 * it. Neither its data nor its name is durable yet: a caller that records
 * the name makes both durable first (atomic_file_prepare()), or has them
 * synced with a batch of other files. Frees
 * doc in every case; on failure the temporary file is removed and *out is
 * NULL. */
enum ag_code output_finish(struct output_doc *doc, struct atomic_file **out,
                           struct ag_error *err);

/* Close the last item list, sync the file and rename it to dir/final_name,
 * replacing a file of that name (which, by how names are built, contains the
 * same content). Frees doc in every case; on failure the temporary file
 * is removed. */
enum ag_code output_commit(struct output_doc *doc, const char *final_name,
                           struct ag_error *err);

/* Remove the temporary file and free doc. Accepts NULL. */
void output_abort(struct output_doc *doc);

/* Format t (Unix seconds) as "YYYY-MM-DDTHH:MM:SSZ" into out, which must
 * hold at least 21 bytes. */
void output_format_time(int64_t t, char *out, size_t out_size);

#endif
