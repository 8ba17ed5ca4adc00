/* Parse one export file into a JSON document, as the agent does after a
 * download, for bench/parse_bench.sh. The driver runs the real parser and
 * the real output writer (temporary file, fsync, rename) but no SFTP, no
 * SHA-256 and no manifest, so its time is parsing plus writing.
 *
 * Usage: parse_driver xml|csv FILE OUTPUT_DIR
 * Prints the number of items and exits 0, or prints the error and exits
 * 1. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/error.h"
#include "agent/export.h"
#include "agent/output.h"

/* The writer needs a hash for the "source" member. The driver does not
 * hash the file, so every document gets this placeholder. */
#define PLACEHOLDER_SHA256                                                     \
  "0000000000000000000000000000000000000000000000000000000000000000"

static enum ag_code parse(const char *format, const char *path,
                          struct output_doc *doc, struct ag_error *err)
{
  const struct export_sink *sink = output_sink(doc);

  if (strcmp(format, "xml") == 0)
    return export_parse_xml(path, sink, err);
  return export_parse_csv(path, NULL, sink, err);
}

int main(int argc, char **argv)
{
  struct ag_error err;
  struct stat info;
  struct output_doc *doc = NULL;

  if (argc != 4 || (strcmp(argv[1], "xml") != 0 && strcmp(argv[1], "csv"))) {
    fprintf(stderr, "Usage: parse_driver xml|csv FILE OUTPUT_DIR\n");
    return 2;
  }
  const char *format = argv[1];
  const char *path = argv[2];
  const char *dir = argv[3];

  ag_error_clear(&err);
  if (stat(path, &info) != 0) {
    perror(path);
    return 1;
  }
  struct output_source source = {
      .inbox = "/bench",
      .rel = path,
      .rel_len = strlen(path),
      .size = (uint64_t)info.st_size,
      .mtime = (int64_t)info.st_mtime,
      .sha256 = PLACEHOLDER_SHA256,
      .format = format,
  };

  enum ag_code code = output_begin(dir, &source, &doc, &err);
  if (code == AG_OK)
    code = parse(format, path, doc, &err);
  if (code != AG_OK) {
    output_abort(doc);
    fprintf(stderr, "parse_driver: %s: %s\n", path, err.message);
    return 1;
  }

  size_t items = output_item_count(doc);
  code = output_commit(doc, "parse_driver.json", &err);
  if (code != AG_OK) {
    fprintf(stderr, "parse_driver: %s: %s\n", path, err.message);
    return 1;
  }
  printf("%zu items\n", items);
  return 0;
}
