/* Parse one export file into a JSON document, as the agent does after a
 * download, for bench/parse_bench.sh and bench/parse_profile.sh. The
 * driver runs the real parser and the real output writer (temporary file,
 * fsync, rename) but no SFTP, no SHA-256 and no manifest, so its time is
 * parsing plus writing. Each NAME=NEW argument is a [mapping] entry
 * (NAME=- drops the key), and with any of them the items go through the
 * mapping as in the agent. --repeat N parses the file N times in one
 * process, each time into a new document, as the agent does for a backlog
 * of small exports. bench/parse_profile.sh takes the difference of two
 * such runs to count the instructions of one parse without those of the
 * process start.
 *
 * Usage: parse_driver [--repeat N] xml|csv|json FILE OUTPUT_DIR
 *                     [NAME=NEW ...]
 * Prints the number of items of each parse and exits 0, or prints the
 * error and exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/config.h"
#include "agent/error.h"
#include "agent/export.h"
#include "agent/mapping.h"
#include "agent/output.h"

/* The writer needs a hash for the "source" member. The driver does not
 * hash the file, so every document gets this placeholder. */
#define PLACEHOLDER_SHA256                                                     \
  "0000000000000000000000000000000000000000000000000000000000000000"

static enum ag_code parse(const char *format, const char *path,
                          const struct export_sink *sink, struct ag_error *err)
{
  if (strcmp(format, "xml") == 0)
    return export_parse_xml(path, sink, err);
  if (strcmp(format, "json") == 0)
    return export_parse_json(path, sink, err);
  return export_parse_csv(path, NULL, sink, err);
}

/* Split the NAME=NEW arguments into entries, in place. Returns the number
 * of entries, or -1 for an argument without '=' or too many. */
static int parse_mapping(char **args, int count, struct config_mapping *entries)
{
  if (count > CONFIG_MAX_MAPPINGS)
    return -1;
  for (int i = 0; i < count; i++) {
    char *equals = strchr(args[i], '=');
    if (equals == NULL || equals == args[i])
      return -1;
    *equals = '\0';
    entries[i].from = args[i];
    entries[i].to = strcmp(equals + 1, "-") == 0 ? NULL : equals + 1;
  }
  return count;
}

/* Parse into doc, through a mapping of the entries when there are any. */
static enum ag_code parse_mapped(const char *format, const char *path,
                                 const struct config_mapping *entries,
                                 int entry_count, struct output_doc *doc,
                                 struct ag_error *err)
{
  struct mapping *mapping = NULL;

  if (entry_count == 0)
    return parse(format, path, output_sink(doc), err);

  enum ag_code code = mapping_new(entries, (size_t)entry_count,
                                  output_sink(doc), &mapping, err);
  if (code == AG_OK)
    code = parse(format, path, mapping_sink(mapping), err);
  mapping_free(mapping);
  return code;
}

/* Parse path once into a new document in dir and publish it. Returns 0,
 * or 1 after printing the error. */
static int parse_once(const char *format, const char *path, const char *dir,
                      const struct config_mapping *entries, int entry_count,
                      const struct output_source *source)
{
  struct ag_error err;
  struct output_doc *doc = NULL;

  ag_error_clear(&err);
  enum ag_code code = output_begin(dir, source, &doc, &err);
  if (code == AG_OK)
    code = parse_mapped(format, path, entries, entry_count, doc, &err);
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

/* Return the value of "--repeat N" at argv[1], or 1 without it, and move
 * *argc and *argv past it. Returns 0 for an invalid N. */
static long take_repeat(int *argc, char ***argv)
{
  if (*argc < 3 || strcmp((*argv)[1], "--repeat") != 0)
    return 1;

  char *end;
  long repeat = strtol((*argv)[2], &end, 10);
  *argc -= 2;
  *argv += 2;
  return *end == '\0' && repeat > 0 ? repeat : 0;
}

int main(int argc, char **argv)
{
  static struct config_mapping entries[CONFIG_MAX_MAPPINGS];
  struct stat info;
  int entry_count = -1;
  long repeat = take_repeat(&argc, &argv);

  if (repeat > 0 && argc >= 4 &&
      (strcmp(argv[1], "xml") == 0 || strcmp(argv[1], "csv") == 0 ||
       strcmp(argv[1], "json") == 0))
    entry_count = parse_mapping(argv + 4, argc - 4, entries);
  if (entry_count < 0) {
    fprintf(stderr,
            "Usage: parse_driver [--repeat N] xml|csv|json FILE OUTPUT_DIR "
            "[NAME=NEW ...]\n"
            "NAME=- drops the key; at most %d entries. N is at least 1.\n",
            CONFIG_MAX_MAPPINGS);
    return 2;
  }
  const char *format = argv[1];
  const char *path = argv[2];
  const char *dir = argv[3];

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

  for (long i = 0; i < repeat; i++) {
    if (parse_once(format, path, dir, entries, entry_count, &source) != 0)
      return 1;
  }
  return 0;
}
