/* Download remote files through remote_download(), as the agent does, for
 * bench/download_probe.sh. The driver connects with the [server] settings
 * of a config file, then stats and downloads each file in turn over that
 * one session, and closes it. It parses nothing, hashes nothing and
 * renames nothing, so its time is the SSH session and the SFTP transfers
 * alone. With -o OUTPUT the data of every file is written to that file,
 * otherwise it is dropped.
 *
 * Usage: download_driver CONFIG [-o OUTPUT] REMOTE_PATH...
 * Prints "files bytes download_seconds MB/s cipher" (MB = 10^6 bytes; the
 * seconds leave out connecting) and exits 0, or prints the error and exits
 * 1. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent/config.h"
#include "agent/error.h"
#include "agent/log.h"
#include "agent/remote.h"

struct sink {
  FILE *file; /* NULL drops the data */
  uint64_t bytes;
};

static enum ag_code take_block(void *ctx, const void *data, size_t len,
                               struct ag_error *err)
{
  struct sink *sink = ctx;

  sink->bytes += len;
  if (sink->file != NULL && fwrite(data, 1, len, sink->file) != len)
    return ag_error_set(err, AG_ELOCAL, "cannot write the output file");
  return AG_OK;
}

static double now_seconds(void)
{
  struct timespec now;

  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* Stat and download each of the count paths on an open session. */
static enum ag_code download_all(struct remote *remote, char **paths, int count,
                                 struct sink *sink, struct ag_error *err)
{
  enum ag_code code = AG_OK;

  for (int i = 0; i < count && code == AG_OK; i++) {
    struct remote_entry entry;
    code = remote_stat(remote, paths[i], &entry, err);
    if (code == AG_OK)
      code = remote_download(remote, paths[i], entry.size, entry.mtime,
                             take_block, sink, err);
  }
  return code;
}

int main(int argc, char **argv)
{
  struct ag_error err = {0};
  struct config *config = NULL;
  struct remote *remote = NULL;
  struct sink sink = {0};
  const char *output = NULL;
  int first = 2;
  double seconds = 0;

  if (argc >= 4 && strcmp(argv[2], "-o") == 0) {
    output = argv[3];
    first = 4;
  }
  if (argc <= first) {
    fprintf(stderr,
            "usage: download_driver CONFIG [-o OUTPUT] REMOTE_PATH...\n");
    return 2;
  }
  log_set_level(LOG_LEVEL_WARN);

  enum ag_code code = config_load(argv[1], &config, &err);
  if (code == AG_OK && output != NULL) {
    sink.file = fopen(output, "wb");
    if (sink.file == NULL)
      code = ag_error_set(&err, AG_ELOCAL, "cannot create '%s'", output);
  }
  if (code == AG_OK)
    code = remote_connect(config, &remote, &err);
  if (code == AG_OK) {
    double start = now_seconds();
    code = download_all(remote, argv + first, argc - first, &sink, &err);
    seconds = now_seconds() - start;
  }
  if (code == AG_OK)
    printf("%d %llu %.3f %.1f %s\n", argc - first,
           (unsigned long long)sink.bytes, seconds,
           seconds > 0 ? (double)sink.bytes / seconds / 1e6 : 0.0,
           remote_cipher(remote));

  remote_close(remote);
  if (sink.file != NULL && fclose(sink.file) != 0 && code == AG_OK)
    code = ag_error_set(&err, AG_ELOCAL, "cannot write '%s'", output);
  config_free(config);
  if (code != AG_OK) {
    fprintf(stderr, "download_driver: %s\n", err.message);
    return 1;
  }
  return 0;
}
