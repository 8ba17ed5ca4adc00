/* Ingest one stable file: download it while hashing, parse it into a JSON
 * output, publish that, then hand over to the remote step. Each step is
 * recorded in the manifest only after it has happened. */
#include "agent_internal.h"
#include "claim_internal.h"

#include <stdlib.h>
#include <string.h>

#include "agent/atomic_file.h"
#include "agent/export.h"
#include "agent/fault.h"
#include "agent/log.h"
#include "agent/mapping.h"
#include "agent/names.h"
#include "agent/output.h"
#include "agent/passthrough.h"
#include "agent/rpath.h"
#include "ingest_download.h"
#include "live_parse.h"
#include "pipeline.h"

/* The manifest's format of a passthrough file, as in its sidecar. */
#define PASSTHROUGH_RECORD_FORMAT "passthrough"

/* The outputs of a remote file of at least this size are synced by the
 * worker that wrote them rather than by the recorder (record_intent()). */
#define WORKER_SYNC_BYTES ((uint64_t)1024 * 1024)

/* Feeds a parser from a download held in memory (struct export_input). */
struct memory_input {
  const unsigned char *data;
  size_t size;
  size_t offset;
};

static long read_memory(void *ctx, void *buffer, size_t size,
                        struct ag_error *err)
{
  struct memory_input *input = ctx;
  size_t left = input->size - input->offset;
  size_t count = size < left ? size : left;

  (void)err;
  memcpy(buffer, input->data + input->offset, count);
  input->offset += count;
  return (long)count;
}

static enum ag_code record_step(struct agent *agent,
                                const struct candidate *file,
                                struct manifest_record *record,
                                enum manifest_state state, struct ag_error *err)
{
  record->state = state;
  record->updated = plat_wall_time();
  return agent_put_record(agent, file->rel, file->rel_len, record, err);
}

/* Parse the downloaded file with the parser for format into sink, through
 * the [mapping] when the config has one. */
static enum ag_code parse_export(const struct config *config,
                                 enum export_format format,
                                 const struct download *download,
                                 const struct export_sink *sink,
                                 struct ag_error *err)
{
  struct memory_input memory = {
      .data = download->memory,
      .size = (size_t)download->bytes,
  };
  struct export_input input = {.read = read_memory, .ctx = &memory};
  const char *path = download->path;
  struct export_csv_options csv = {
      .delimiter = config->delimiter,
      .encoding = config->encoding,
      .group_by = config->group_by,
  };
  struct mapping *mapping = NULL;
  enum ag_code code = AG_OK;

  if (config->mapping_count > 0) {
    code = mapping_new(config->mapping, config->mapping_count, sink, &mapping,
                       err);
    if (code != AG_OK)
      return code;
    sink = mapping_sink(mapping);
  }

  if (format == EXPORT_XML && download->in_memory)
    code = export_parse_xml_input(&input, sink, err);
  else if (format == EXPORT_XML)
    code = export_parse_xml(path, sink, err);
  else if (format == EXPORT_JSON)
    code = export_parse_json(path, sink, err);
  else
    code = export_parse_csv(path, &csv, sink, err);
  mapping_free(mapping);
  return code;
}

/* The prepared output files of one file, with their final names in
 * output_dir: the document, or the passthrough copy and its sidecar. */
struct publication {
  struct atomic_file *files[2];
  char *names[2];
  size_t count;
};

static void publication_free(struct publication *pub)
{
  for (size_t i = 0; i < pub->count; i++) {
    atomic_file_free(pub->files[i]);
    free(pub->names[i]);
  }
  memset(pub, 0, sizeof(*pub));
}

/* Parse the downloaded copy into a new output document and prepare it for
 * publication. On AG_EPARSE, err contains the reason and nothing is left
 * in the output folder. */
static enum ag_code
parse_and_prepare(struct agent *agent, const struct candidate *file,
                  struct download *download, enum export_format format,
                  struct publication *pub, size_t *items, struct ag_error *err)
{
  struct output_source source = download_source(
      agent, file, export_format_name(format), download->sha256);
  struct output_doc *doc = NULL;
  char suffix[32];
  enum ag_code code;

  /* A live parse wrote the document while the file downloaded, with a
   * placeholder SHA-256 that it now gets. */
  if (download->live != NULL) {
    code = live_parse_finish(download->live, true, download->sha256, &doc,
                             items, err);
    download->live = NULL;
    if (code != AG_OK)
      return code;
  } else {
    code = output_begin(agent->config->output_dir, &source, &doc, err);
    if (code != AG_OK)
      return code;
    code = parse_export(agent->config, format, download, output_sink(doc), err);
    if (code != AG_OK) {
      output_abort(doc);
      return code;
    }
  }
  *items = output_item_count(doc);

  /* The name depends only on the path and the content, so publishing again
   * after a crash replaces the same file instead of adding a second. */
  snprintf(suffix, sizeof(suffix), ".%.16s.json", download->sha256);
  pub->names[0] = names_local_file(file->rel, file->rel_len, suffix);
  pub->count = 1;
  if (pub->names[0] == NULL) {
    output_abort(doc);
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  }
  return output_finish(doc, &pub->files[0], err);
}

/* Prepare an unchanged copy of the downloaded file and its sidecar. */
static enum ag_code prepare_original(struct agent *agent,
                                     const struct candidate *file,
                                     const struct download *download,
                                     struct publication *pub,
                                     struct ag_error *err)
{
  struct output_source source =
      download_source(agent, file, PASSTHROUGH_RECORD_FORMAT, download->sha256);
  struct passthrough_files files;
  enum ag_code code = passthrough_prepare(agent->config->output_dir, &source,
                                          download->path, &files, err);

  if (code != AG_OK)
    return code;
  size_t size = strlen(files.name) + sizeof(".json");
  pub->files[0] = files.copy;
  pub->files[1] = files.sidecar;
  pub->names[0] = files.name;
  pub->names[1] = malloc(size);
  pub->count = 2;
  if (pub->names[1] == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  snprintf(pub->names[1], size, "%s.json", files.name);
  return AG_OK;
}

/* A publication between its queued intent and its renames: the prepared
 * output files and what the log line of the delivery names. */
struct ingest_pending {
  struct publication pub;
  enum export_format format;
  bool passthrough;
  size_t items;
};

void ingest_pending_free(struct ingest_pending *pending)
{
  if (pending == NULL)
    return;
  publication_free(&pending->pub);
  free(pending);
}

/* Record the publication intent (the temporary and final names) in a
 * DOWNLOADED record. The temporary files' data and names must be durable
 * first. Here a file and folder sync do that. In a parallel pass the
 * recorder syncs them before it commits the intent (recorder.h). A worker
 * syncs a large file itself, so that one long sync does not hold up every
 * worker's batch. From here on the temporary files
 * stay, and crash recovery (recover_publications()) decides their fate
 * when the publication does not finish. */
static enum ag_code record_intent(struct agent *agent,
                                  const struct candidate *file,
                                  struct manifest_record *record,
                                  struct publication *pub, struct ag_error *err)
{
  bool deferred = agent_defers_output_sync(agent);
  enum ag_code code = AG_OK;

  for (size_t i = 0; i < pub->count && code == AG_OK; i++) {
    if (!deferred)
      code = atomic_file_prepare(pub->files[i], err);
    else if (file->size >= WORKER_SYNC_BYTES)
      code = atomic_file_sync(pub->files[i], err);
  }
  if (code != AG_OK)
    return code;

  FAULT_POINT("output_written");
  free(record->output);
  record->output = strdup(pub->names[0]);
  record->output_temp = strdup(atomic_file_temp_name(pub->files[0]));
  if (pub->count > 1)
    record->sidecar_temp = strdup(atomic_file_temp_name(pub->files[1]));
  if (record->output == NULL || record->output_temp == NULL ||
      (pub->count > 1 && record->sidecar_temp == NULL))
    return ag_error_set(err, AG_ENOMEM, "out of memory");

  /* A failed commit may still have reached the disk, so from here on the
   * temporary files stay; the next start removes those of no intent. */
  for (size_t i = 0; i < pub->count; i++)
    atomic_file_keep_temp(pub->files[i]);
  record->state = MANIFEST_DOWNLOADED;
  record->updated = plat_wall_time();
  return agent_put_intent(agent, file->rel, file->rel_len, record, pub->files,
                          pub->count, err);
}

/* Rename the prepared files into place, which their durable intent
 * allows, and clear the temporary names from record.
 *
 * A worker of a parallel pass renames the last file without a folder
 * sync, and the recorder syncs the output folder before it commits the
 * DELIVERED record (recorder.h). A crash before that sync leaves either
 * the output or its temporary name, which crash recovery renames. The copy
 * goes before its sidecar, so a reader that waits for the sidecar finds
 * the copy whole: only the last rename may wait for the recorder's folder
 * sync. */
static enum ag_code rename_outputs(struct agent *agent,
                                   struct manifest_record *record,
                                   struct publication *pub,
                                   struct ag_error *err)
{
  bool defer_sync = agent_defers_output_sync(agent);
  enum ag_code code = AG_OK;

  FAULT_POINT("after_publish_intent");
  for (size_t i = 0; i < pub->count && code == AG_OK; i++) {
    if (defer_sync && i + 1 == pub->count)
      code = atomic_file_publish_unsynced(pub->files[i], pub->names[i], err);
    else
      code = atomic_file_publish(pub->files[i], pub->names[i], err);
  }
  if (code != AG_OK)
    return code;
  free(record->output_temp);
  free(record->sidecar_temp);
  record->output_temp = NULL;
  record->sidecar_temp = NULL;
  return AG_OK;
}

/* Plan the archive path and record DELIVERED. The planned archive path
 * goes into the DELIVERED record, so that after a crash during the move
 * the next pass can tell whether it happened. */
static enum ag_code record_delivered(struct agent *agent,
                                     const struct candidate *file,
                                     struct manifest_record *record,
                                     struct ag_error *err)
{
  enum ag_code code = AG_OK;

  if (agent->config->on_success == ON_SUCCESS_MOVE) {
    free(record->archive_path);
    record->archive_path = dispose_archive_target(
        agent->config, file->rel, file->rel_len, plat_wall_time());
    if (record->archive_path == NULL)
      code = ag_error_set(err, AG_ENOMEM, "out of memory");
  }
  FAULT_POINT("before_delivered_commit");
  if (code == AG_OK)
    code = record_step(agent, file, record, MANIFEST_DELIVERED, err);
  FAULT_POINT("after_delivered_commit");
  return code;
}

static void log_delivery(const struct agent *agent,
                         const struct candidate *file,
                         const struct manifest_record *record,
                         const struct ingest_pending *pending)
{
  char shown[512];

  log_escape(shown, sizeof(shown), file->rel, file->rel_len);
  if (pending->passthrough)
    log_info("delivered '%s' (original document, %llu bytes) as '%s/%s' "
             "with its sidecar '%s.json'",
             shown, (unsigned long long)file->size, agent->config->output_dir,
             record->output, record->output);
  else
    log_info("delivered '%s' (%s, %zu %s, %llu bytes) as '%s/%s'", shown,
             record->format, pending->items,
             pending->format == EXPORT_CSV
                 ? (pending->items == 1 ? "record" : "records")
                 : (pending->items == 1 ? "annotation" : "annotations"),
             (unsigned long long)file->size, agent->config->output_dir,
             record->output);
}

enum ag_code ingest_publish(struct agent *agent, const struct candidate *file,
                            struct manifest_record *record,
                            struct ingest_pending *pending,
                            struct agent_summary *summary, struct ag_error *err)
{
  enum ag_code code = rename_outputs(agent, record, &pending->pub, err);

  if (code == AG_OK) {
    summary->delivered++;
    summary->delivered_by_format[agent_format_of(record->format)]++;
    log_delivery(agent, file, record, pending);
    code = record_delivered(agent, file, record, err);
  }
  ingest_pending_free(pending);
  return code;
}

/* Return the reason a file cannot be taken before it is even parsed, or
 * NULL when it looks like an export or is a passthrough file, which may
 * also be empty. */
static const char *precheck(const struct candidate *file,
                            enum export_format format, bool passthrough)
{
  if (passthrough)
    return NULL;
  if (format == EXPORT_UNKNOWN)
    return "unsupported file type: the name must end in .xml, .csv or .json, "
           "or match a [remote] passthrough pattern to be copied unchanged";
  if (file->size == 0)
    return "empty file";
  return NULL;
}

/* Start the record for this attempt, keeping what an earlier attempt at
 * the same name recorded about its history. The earlier record, if any,
 * is stored in *earlier (state 0 when there was none); the caller clears
 * it. */
static enum ag_code
start_record(struct agent *agent, const struct candidate *file,
             const char *format_name, struct manifest_record *record,
             struct manifest_record *earlier, struct ag_error *err)
{
  bool found = false;
  enum ag_code code = manifest_get(agent->manifest, file->rel, file->rel_len,
                                   earlier, &found, err);

  if (code != AG_OK)
    return code;
  record->first_seen = found ? earlier->first_seen : plat_wall_time();
  record->attempts = found ? earlier->attempts + 1 : 1;
  record->size = file->size;
  record->mtime = file->mtime;
  snprintf(record->format, sizeof(record->format), "%s", format_name);
  return record_step(agent, file, record, MANIFEST_SEEN, err);
}

/* Undo start_record() for a file that vanished before its download: put
 * the earlier record back, or remove the new one, so that the manifest
 * shows nothing half done for a file that no longer exists. */
static enum ag_code forget_vanished(struct agent *agent,
                                    const struct candidate *file,
                                    const struct manifest_record *earlier,
                                    struct ag_error *err)
{
  bool found = false;

  if (earlier->state != 0)
    return agent_put_record(agent, file->rel, file->rel_len, earlier, err);
  return agent_delete_record(agent, file->rel, file->rel_len, &found, err);
}

/* Decide what a failed download means for this file: a fatal error ends
 * the pass, a file that changed or vanished waits for the next pass. */
static enum ag_code handle_download_error(struct agent *agent,
                                          const struct candidate *file,
                                          const struct manifest_record *earlier,
                                          const struct ag_error *file_err,
                                          struct agent_summary *summary,
                                          struct ag_error *err)
{
  char shown[512];

  log_escape(shown, sizeof(shown), file->rel, file->rel_len);
  if (agent_error_is_fatal(file_err->code))
    return ag_error_set(err, file_err->code, "%s", file_err->message);

  stable_forget(agent->stable, file->rel, file->rel_len);
  if (file_err->code == AG_ENOENT) {
    summary->vanished++;
    log_info("'%s' vanished from the inbox before it was downloaded; "
             "nothing to do",
             shown);
    return forget_vanished(agent, file, earlier, err);
  }
  if (file_err->code == AG_ECHANGED) {
    summary->vanished++;
    log_info("'%s' changed during download, so the copy was discarded; it "
             "is taken again once it is stable: %s",
             shown, file_err->message);
    return AG_OK;
  }
  summary->pending++;
  log_error("cannot download '%s': %s; retrying next pass", shown,
            file_err->message);
  return AG_OK;
}

/* Parse or copy the downloaded file into prepared output files and record
 * their publication intent. Stores the publication in *out for
 * ingest_publish(). A file that cannot be parsed goes to dispose_failed()
 * instead, and *out stays NULL. */
static enum ag_code
prepare_publication(struct agent *agent, const struct candidate *file,
                    struct manifest_record *record, struct download *download,
                    enum export_format format, bool passthrough,
                    struct ingest_pending **out, struct agent_summary *summary,
                    struct ag_error *err)
{
  struct ingest_pending *pending = calloc(1, sizeof(*pending));
  struct ag_error file_err = {0};
  enum ag_code code = AG_OK;

  *out = NULL;
  if (pending == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  pending->format = format;
  pending->passthrough = passthrough;
  if (passthrough)
    code = prepare_original(agent, file, download, &pending->pub, &file_err);
  else
    code = parse_and_prepare(agent, file, download, format, &pending->pub,
                             &pending->items, &file_err);
  if (code == AG_EPARSE) {
    ingest_pending_free(pending);
    return dispose_failed(agent, file, record, file_err.message, summary, err);
  }

  if (code == AG_OK)
    code = record_intent(agent, file, record, &pending->pub, &file_err);
  if (code != AG_OK) {
    ingest_pending_free(pending);
    return ag_error_set(err, code, "%s", file_err.message);
  }
  *out = pending;
  return AG_OK;
}

void ingest_open_ahead(struct agent *agent, const struct candidate *file)
{
  if (agent->remote == NULL || agent->config->claim_dir != NULL ||
      file->claimed)
    return;
  char *path = claim_source_path(agent->config, file->rel, file->rel_len, NULL);
  if (path != NULL)
    remote_open_ahead(agent->remote, path);
  free(path);
}

enum ag_code ingest_deliver(struct agent *agent, const struct candidate *file,
                            struct manifest_record *record, bool *delivered,
                            struct ingest_pending **pending,
                            struct agent_summary *summary, struct ag_error *err)
{
  const char *base = file->rel + rpath_base_offset(file->rel, file->rel_len);
  bool passthrough = passthrough_selected(agent->config, base);
  enum export_format format =
      passthrough ? EXPORT_UNKNOWN : export_format_of(base);
  struct manifest_record earlier = {0};
  struct download download = {0};
  struct ingest_pending *publication = NULL;
  struct ag_error file_err = {0};
  bool duplicate = false;
  char shown[512];

  const char *format_name = "";
  if (passthrough)
    format_name = PASSTHROUGH_RECORD_FORMAT;
  else if (format != EXPORT_UNKNOWN)
    format_name = export_format_name(format);

  *delivered = false;
  if (pending != NULL)
    *pending = NULL;
  log_escape(shown, sizeof(shown), file->rel, file->rel_len);
  bool taken = false;
  enum ag_code code =
      claim_take(agent, file, &record->claim_path, &taken, summary, err);
  if (code != AG_OK || !taken)
    goto out;
  code = start_record(agent, file, format_name, record, &earlier, err);
  if (code != AG_OK)
    goto out;
  const char *refusal = precheck(file, format, passthrough);
  if (refusal != NULL) {
    code = dispose_failed(agent, file, record, refusal, summary, err);
    goto out;
  }

  download.parse_live = !passthrough && live_parse_applies(format, file->size);
  download_choose_memory(&download, file, format, passthrough);
  if (download_fetch(agent, file, record, &download, &file_err) != AG_OK) {
    if (download.cancelled) {
      /* download_discard() removes the partial copy (a worker's reused
       * copy at the end of the pass), and the record stays SEEN, so the
       * next pass downloads the file from the start. */
      summary->deferred++;
      log_info("stopped downloading '%s' because the agent is stopping; it "
               "is downloaded again on the next run",
               shown);
      goto out;
    }
    code =
        handle_download_error(agent, file, &earlier, &file_err, summary, err);
    goto out;
  }
  FAULT_POINT("after_download");
  summary->bytes += download.bytes;
  memcpy(record->sha256, download.sha256, sizeof(record->sha256));
  code = record_step(agent, file, record, MANIFEST_DOWNLOADED, err);
  if (code == AG_OK)
    code = manifest_was_delivered(agent->manifest, record->sha256, file->rel,
                                  file->rel_len, &duplicate, err);
  if (code != AG_OK)
    goto out;

  if (duplicate) {
    summary->duplicates++;
    log_info("'%s' is identical to the version delivered before (sha256 "
             "%.16s); archiving it without a second delivery",
             shown, record->sha256);
    code = record_delivered(agent, file, record, err);
    *delivered = code == AG_OK;
    goto out;
  }

  code = prepare_publication(agent, file, record, &download, format,
                             passthrough, &publication, summary, err);
  if (code != AG_OK || publication == NULL)
    goto out;
  if (pending != NULL && agent_defers_output_sync(agent)) {
    *pending = publication;
    goto out;
  }
  code = agent_wait_records(agent, err);
  if (code == AG_OK) {
    code = ingest_publish(agent, file, record, publication, summary, err);
    *delivered = code == AG_OK;
  } else {
    ingest_pending_free(publication);
  }

out:
  download_discard(&download);
  manifest_record_clear(&earlier);
  return code;
}

enum ag_code ingest_file(struct agent *agent, const struct candidate *file,
                         struct agent_summary *summary, struct ag_error *err)
{
  struct manifest_record record = {0};
  bool delivered = false;
  enum ag_code code =
      ingest_deliver(agent, file, &record, &delivered, NULL, summary, err);

  if (code == AG_OK && delivered)
    code = dispose_delivered(agent, file->rel, file->rel_len, &record, summary,
                             err);
  manifest_record_clear(&record);
  return code;
}
