/* Downloads for ingest.c: into memory or a local copy, hashed as they
 * arrive. See ingest_download.h. */
#include "ingest_download.h"

#include <stdlib.h>
#include <string.h>

#include "agent/fault.h"
#include "agent/log.h"
#include "agent/output.h"
#include "agent/platform.h"
#include "agent/remote.h"
#include "claim_internal.h"
#include "live_parse.h"
#include "pipeline.h"

/* Largest XML export that is downloaded into memory and parsed from there
 * instead of from a local copy, which saves the copy's writes and the
 * parser's open and reads. Each worker keeps at most one such download. */
#define DOWNLOAD_MEMORY_MAX ((uint64_t)1024 * 1024)

/* Append a block to a download held in memory. The buffer starts at the
 * listed size, which remote_download() never reads past, plus one byte so
 * that malloc() never gets 0. It grows only if a block goes beyond. */
static enum ag_code append_to_memory(struct download *download,
                                     const void *data, size_t len,
                                     struct ag_error *err)
{
  size_t needed = (size_t)download->bytes + len;

  if (needed > download->memory_capacity) {
    size_t capacity = download->memory_capacity * 2;
    if (capacity < needed)
      capacity = needed;
    unsigned char *grown = realloc(download->memory, capacity);
    if (grown == NULL)
      return ag_error_set(err, AG_ENOMEM, "out of memory");
    download->memory = grown;
    download->memory_capacity = capacity;
  }
  memcpy(download->memory + download->bytes, data, len);
  return AG_OK;
}

static enum ag_code write_block(void *ctx, const void *data, size_t len,
                                struct ag_error *err)
{
  struct download *download = ctx;

  if (download->in_memory) {
    enum ag_code code = append_to_memory(download, data, len, err);
    if (code != AG_OK)
      return code;
  } else if (fwrite(data, 1, len, download->file) != len) {
    return ag_error_set(err, AG_ELOCAL, "cannot write '%s'", download->path);
  }
  if (EVP_DigestUpdate(download->hash, data, len) != 1)
    return ag_error_set(err, AG_ENOMEM, "SHA-256 update failed");
  download->bytes += len;

  /* The live parser reads the copy, so each block must reach the file. */
  if (download->live != NULL) {
    if (fflush(download->file) != 0)
      return ag_error_set(err, AG_ELOCAL, "cannot write '%s'", download->path);
    live_parse_grew(download->live, download->bytes);
  }

  /* NOTE: the request is checked between blocks only. A read that the
   * server leaves unanswered delays the stop by up to config->timeout. */
  agent_report_progress(download->agent);
  if (agent_stop_requested(download->agent)) {
    /* Any error code ends the download. ingest_deliver() checks cancelled
     * first; a fatal code makes sure that a caller that does not still
     * ends the pass instead of taking the partial copy. */
    download->cancelled = true;
    return ag_error_set(err, AG_ELOCAL,
                        "download cancelled because the agent is stopping");
  }
  return AG_OK;
}

void download_discard(struct download *download)
{
  if (download->live != NULL)
    live_parse_finish(download->live, false, NULL, NULL, NULL, NULL);
  if (download->file != NULL && !download->reused)
    fclose(download->file);
  if (download->path != NULL && !download->reused)
    plat_remove(download->path);
  free(download->path);
  free(download->memory);
  EVP_MD_CTX_free(download->hash);
  memset(download, 0, sizeof(*download));
}

void download_choose_memory(struct download *download,
                            const struct candidate *file,
                            enum export_format format, bool passthrough)
{
  if (passthrough || format != EXPORT_XML || download->parse_live ||
      file->size > DOWNLOAD_MEMORY_MAX)
    return;
  download->memory_capacity = (size_t)file->size + 1;
  download->memory = malloc(download->memory_capacity);
  download->in_memory = download->memory != NULL;
}

struct output_source download_source(const struct agent *agent,
                                     const struct candidate *file,
                                     const char *format, const char *sha256)
{
  struct output_source source = {
      .inbox = agent->config->inbox,
      .rel = file->rel,
      .rel_len = file->rel_len,
      .size = file->size,
      .mtime = file->mtime,
      .sha256 = sha256,
      .format = format,
  };

  return source;
}

/* Open the local copy: the worker's reused download file, written again
 * from its start, or a new temporary file in the state folder. */
static enum ag_code open_copy(struct agent *agent, struct download *download,
                              struct ag_error *err)
{
  const char *reused_path = NULL;
  FILE *reused = agent_reused_download(agent, &reused_path);

  if (reused == NULL)
    return plat_create_temp(agent->download_dir, "download", &download->file,
                            &download->path, err);
  download->path = strdup(reused_path);
  if (download->path == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  download->reused = true;
  download->file = reused;
  rewind(reused);
  return AG_OK;
}

/* Start parsing the copy while it downloads. A failure to start only
 * means that the file is parsed afterwards, as a small one is. */
static void start_live_parse(struct agent *agent, const struct candidate *file,
                             struct download *download)
{
  struct output_source source =
      download_source(agent, file, export_format_name(EXPORT_XML), NULL);
  struct ag_error live_err = {0};

  if (live_parse_start(agent->config, download->path, &source, &download->live,
                       &live_err) != AG_OK)
    log_warn("cannot parse '%s' while it downloads, so it is parsed "
             "afterwards: %s",
             download->path, live_err.message);
}

enum ag_code download_fetch(struct agent *agent, const struct candidate *file,
                            const struct manifest_record *record,
                            struct download *download, struct ag_error *err)
{
  unsigned char digest[32];
  char *remote_path =
      claim_source_path(agent->config, file->rel, file->rel_len, record);
  enum ag_code code = AG_OK;

  download->agent = agent;
  download->hash = EVP_MD_CTX_new();
  if (remote_path == NULL || download->hash == NULL ||
      EVP_DigestInit_ex(download->hash, EVP_sha256(), NULL) != 1) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  if (!download->in_memory)
    code = open_copy(agent, download, err);
  if (code == AG_OK && download->parse_live)
    start_live_parse(agent, file, download);
  FAULT_POINT("before_download");
  if (code == AG_OK)
    code = remote_download(agent->remote, remote_path, file->size, file->mtime,
                           write_block, download, err);
  if (code != AG_OK)
    goto out;

  /* Parsers read a local copy by name, so the buffered tail must reach
   * it (a download in memory has no copy). A reused file is cut to this
   * download's length instead of emptied before it, because on ext4 a
   * file cut to 0 bytes is written to disk when it is closed
   * (auto_da_alloc), which costs a write per file. */
  if (download->reused)
    code = plat_set_file_size(download->file, download->path, download->bytes,
                              err);
  else if (download->file != NULL && fflush(download->file) != 0)
    code = ag_error_set(err, AG_ELOCAL, "cannot write '%s'", download->path);
  if (code != AG_OK)
    goto out;
  if (EVP_DigestFinal_ex(download->hash, digest, NULL) != 1) {
    code = ag_error_set(err, AG_ENOMEM, "SHA-256 failed");
    goto out;
  }
  for (size_t i = 0; i < sizeof(digest); i++)
    snprintf(download->sha256 + 2 * i, 3, "%02x", digest[i]);

out:
  free(remote_path);
  return code;
}
