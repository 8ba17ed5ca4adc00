/* State shared by the core's source files; not part of the public API. */
#ifndef AGENT_AGENT_INTERNAL_H
#define AGENT_AGENT_INTERNAL_H

#include <stdbool.h>

#include "agent/agent.h"
#include "agent/manifest.h"
#include "agent/platform.h"
#include "agent/remote.h"
#include "agent/stable.h"

struct agent {
  const struct config *config;
  struct plat_lock *lock;
  struct manifest *manifest;
  struct remote *remote; /* NULL while disconnected */
  struct stable *stable;
  char *download_dir; /* <state_dir>/tmp */
};

/* A stable file picked for processing in this pass. */
struct candidate {
  char *rel; /* path relative to the inbox, raw bytes, NUL-terminated */
  size_t rel_len;
  uint64_t size;
  int64_t mtime;
};

/* Take one stable file through download, parse, output and the remote
 * move. Per-file outcomes go to summary; the return value is an error only
 * when the pass must stop (connection or local failure). */
enum ag_code ingest_file(struct agent *agent, const struct candidate *file,
                         struct agent_summary *summary, struct ag_error *err);

/* Finish the remote step for a delivered file (move, delete or keep) and
 * record it as archived. */
enum ag_code dispose_delivered(struct agent *agent, const char *rel,
                               size_t rel_len, struct manifest_record *record,
                               struct agent_summary *summary,
                               struct ag_error *err);

/* Move a file that could not be processed into the error folder with a
 * reason file beside it, and record it as failed. */
enum ag_code dispose_failed(struct agent *agent, const struct candidate *file,
                            struct manifest_record *record, const char *reason,
                            struct agent_summary *summary,
                            struct ag_error *err);

/* Return the planned archive path for rel (archive folder, optional date
 * layout, relative path), malloc'd. The real target may get a suffix when
 * that path is taken. */
char *dispose_archive_target(const struct config *config, const char *rel,
                             size_t rel_len, int64_t now);

/* Return whether the error is one that ends the pass rather than only the
 * current file. */
bool agent_error_is_fatal(enum ag_code code);

#endif
