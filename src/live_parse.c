/* A parser thread that follows a download: it reads the local copy up to
 * the bytes written so far and waits for more. */
#include "live_parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/mapping.h"
#include "agent/platform.h"

struct live_parse {
  const struct config *config;
  struct output_doc *doc;
  FILE *copy; /* the copy, read without a stdio buffer */
  char *copy_path;
  uint64_t read; /* bytes the parser has read; its thread only */
  struct plat_thread *thread;
  enum ag_code code; /* the parser's result, once the thread ended */
  struct ag_error err;

  struct plat_mutex *lock; /* guards the fields below */
  struct plat_cond *grew;
  uint64_t written; /* bytes the download has written and flushed */
  bool ended;       /* no more bytes will come */
  bool complete;    /* with ended: the download succeeded */
};

bool live_parse_applies(enum export_format format, uint64_t size)
{
  return format == EXPORT_XML && size >= LIVE_PARSE_MIN_BYTES;
}

/* The parser's read function: wait until the download has written more
 * than the parser read, then read at most that much. */
static long read_copy(void *ctx, void *buffer, size_t size,
                      struct ag_error *err)
{
  struct live_parse *live = ctx;

  plat_mutex_lock(live->lock);
  while (live->read >= live->written && !live->ended)
    plat_cond_wait(live->grew, live->lock);
  uint64_t available = live->written - live->read;
  bool complete = live->complete;
  plat_mutex_unlock(live->lock);

  if (available == 0) {
    if (complete)
      return 0;
    ag_error_set(err, AG_ELOCAL, "the download of '%s' stopped",
                 live->copy_path);
    return -1;
  }
  if (size > available)
    size = (size_t)available;

  /* The copy is unbuffered, so nothing beyond what the download wrote is
   * read ahead. A reused copy still has an older download's bytes there. */
  size_t got = fread(buffer, 1, size, live->copy);
  if (got != size) {
    ag_error_set(err, AG_ELOCAL, "cannot read '%s': %s", live->copy_path,
                 ferror(live->copy) ? strerror(errno) : "it is shorter");
    return -1;
  }
  live->read += got;
  return (long)got;
}

static void parse_thread(void *arg)
{
  struct live_parse *live = arg;
  struct export_input input = {.read = read_copy, .ctx = live};
  const struct export_sink *sink = output_sink(live->doc);
  struct mapping *mapping = NULL;

  live->code = AG_OK;
  if (live->config->mapping_count > 0) {
    live->code = mapping_new(live->config->mapping, live->config->mapping_count,
                             sink, &mapping, &live->err);
    if (live->code == AG_OK)
      sink = mapping_sink(mapping);
  }
  if (live->code == AG_OK)
    live->code = export_parse_xml_input(&input, sink, &live->err);
  mapping_free(mapping);
}

/* Free what live_parse_start() made. The thread must have ended. */
static void free_live(struct live_parse *live)
{
  output_abort(live->doc);
  if (live->copy != NULL)
    fclose(live->copy);
  free(live->copy_path);
  plat_cond_free(live->grew);
  plat_mutex_free(live->lock);
  free(live);
}

enum ag_code live_parse_start(const struct config *config,
                              const char *copy_path,
                              const struct output_source *source,
                              struct live_parse **out, struct ag_error *err)
{
  struct live_parse *live = calloc(1, sizeof(*live));

  *out = NULL;
  if (live == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  live->config = config;
  live->copy_path = strdup(copy_path);
  if (live->copy_path == NULL) {
    free_live(live);
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  }
  live->copy = plat_fopen(copy_path, "rb");
  if (live->copy == NULL || setvbuf(live->copy, NULL, _IONBF, 0) != 0) {
    ag_error_set(err, AG_ELOCAL, "cannot open '%s': %s", copy_path,
                 strerror(errno));
    free_live(live);
    return err->code;
  }

  enum ag_code code = plat_mutex_new(&live->lock, err);
  if (code == AG_OK)
    code = plat_cond_new(&live->grew, err);
  if (code == AG_OK)
    code = output_begin_unhashed(config->output_dir, source, &live->doc, err);
  if (code == AG_OK)
    code = plat_thread_start(parse_thread, live, &live->thread, err);
  if (code != AG_OK) {
    free_live(live);
    return code;
  }
  *out = live;
  return AG_OK;
}

void live_parse_grew(struct live_parse *live, uint64_t size)
{
  plat_mutex_lock(live->lock);
  live->written = size;
  plat_cond_signal(live->grew);
  plat_mutex_unlock(live->lock);
}

enum ag_code live_parse_finish(struct live_parse *live, bool complete,
                               const char *sha256, struct output_doc **doc,
                               size_t *items, struct ag_error *err)
{
  plat_mutex_lock(live->lock);
  live->ended = true;
  live->complete = complete;
  plat_cond_signal(live->grew);
  plat_mutex_unlock(live->lock);
  plat_thread_join(live->thread);

  enum ag_code code = AG_OK;
  if (complete && live->code != AG_OK)
    code = ag_error_set(err, live->code, "%s", live->err.message);
  if (complete && code == AG_OK)
    code = output_set_sha256(live->doc, sha256, err);
  if (complete && code == AG_OK) {
    *items = output_item_count(live->doc);
    *doc = live->doc;
    live->doc = NULL;
  }
  free_live(live);
  return code;
}
