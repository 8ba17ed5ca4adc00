/* Parsing a large XML export while it downloads: a thread parses the local
 * copy as the download writes it, so that the download and the parse
 * overlap instead of following each other. The output document is
 * started before the content hash is known and gets it at the end
 * (output_begin_unhashed()). Not part of the public API.
 *
 * Only XML takes this path. The CSV parser reads a file twice when it
 * groups rows, and the JSON parser loads the whole document anyway. */
#ifndef AGENT_LIVE_PARSE_H
#define AGENT_LIVE_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/config.h"
#include "agent/error.h"
#include "agent/export.h"
#include "agent/output.h"

/* Smallest file that is parsed while it downloads. Below it, a thread
 * costs more than the overlap saves. */
#define LIVE_PARSE_MIN_BYTES ((uint64_t)4 * 1024 * 1024)

struct live_parse;

/* Return whether a file of this format and expected size is parsed while
 * it downloads. */
bool live_parse_applies(enum export_format format, uint64_t size);

/* Start a thread that parses the file at copy_path, which the caller is
 * writing, as an XML export into a new output document in
 * config->output_dir for source, through the [mapping] when the config
 * has one. source->sha256 is ignored. The thread reads only what
 * live_parse_grew() allows. Errors: those of output_begin_unhashed(),
 * AG_ELOCAL when the copy cannot be opened or the thread cannot start. */
enum ag_code live_parse_start(const struct config *config,
                              const char *copy_path,
                              const struct output_source *source,
                              struct live_parse **out, struct ag_error *err);

/* Let the parser read the copy up to size bytes, which the caller has
 * written and flushed. */
void live_parse_grew(struct live_parse *live, uint64_t size);

/* End the input and wait for the parser, then free live.
 *
 * With complete set, the input ends at the size last given. On success
 * the document gets sha256 and is stored in *doc for the caller to commit
 * or abort, and *items is set to its item count. On failure the document
 * is removed and the parser's error is returned, such as AG_EPARSE for a
 * malformed export, with the reason in err.
 *
 * With complete not set, because the download failed, the parser is
 * stopped, the document removed and AG_OK returned; doc, items and sha256
 * are not used and may be NULL. */
enum ag_code live_parse_finish(struct live_parse *live, bool complete,
                               const char *sha256, struct output_doc **doc,
                               size_t *items, struct ag_error *err);

#endif
