/* The download step of ingest.c: a remote file fetched into memory or a
 * local copy while its SHA-256 is computed, and, for a large XML export,
 * parsed while it arrives. Not part of the public API. */
#ifndef AGENT_INGEST_DOWNLOAD_H
#define AGENT_INGEST_DOWNLOAD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/evp.h>

#include "agent/error.h"
#include "agent/export.h"
#include "agent/manifest.h"
#include "agent/output.h"
#include "agent_internal.h"

struct live_parse;

/* A download in progress: the local copy or the content in memory, and
 * its running hash. */
struct download {
  const struct agent *agent;
  FILE *file;
  char *path;
  unsigned char *memory; /* the content, when in_memory is set */
  size_t memory_capacity;
  EVP_MD_CTX *hash;
  uint64_t bytes;
  bool in_memory;  /* kept in memory instead of a local copy */
  bool cancelled;  /* the agent's hooks asked to stop during the download */
  bool reused;     /* path is the worker's download file, kept for the next */
  bool parse_live; /* parse while downloading (live_parse_applies()) */
  struct live_parse *live; /* that parse, until parse_and_prepare() */
  char sha256[65];
};

/* Keep a small XML export in memory: the parser reads it from there, and
 * nothing else needs a local copy. A passthrough file needs one for its
 * copy, a live parse reads one, and the CSV and JSON parsers read files by
 * name. Without the memory, the download goes to a local copy as usual.
 * Call it on a zeroed download, after setting parse_live. */
void download_choose_memory(struct download *download,
                            const struct candidate *file,
                            enum export_format format, bool passthrough);

/* Download file (from its claim when record has one) into memory or a
 * local copy in the state folder, as download_choose_memory() decided,
 * and finish its SHA-256 in download->sha256. Sets download->cancelled
 * when the agent is stopping. Errors: those of remote_download(),
 * AG_ELOCAL for the local copy, AG_ENOMEM. */
enum ag_code download_fetch(struct agent *agent, const struct candidate *file,
                            const struct manifest_record *record,
                            struct download *download, struct ag_error *err);

/* Return the "source" of an output made from file: its inbox, path, size
 * and mtime, with format and sha256 (NULL while the download runs). */
struct output_source download_source(const struct agent *agent,
                                     const struct candidate *file,
                                     const char *format, const char *sha256);

/* End a live parse without its output, free the download's memory and
 * hash, and close and remove its local copy unless that is the worker's
 * reused download file. Leaves download zeroed. */
void download_discard(struct download *download);

#endif
