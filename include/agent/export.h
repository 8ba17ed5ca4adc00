/* Parsers for Rossum export files.
 *
 * A parser reads a downloaded export from a local file and hands the
 * output items one by one to a sink: one object per annotation for XML
 * and JSON, one object per data row for CSV. The sink owns the output
 * format; the parser owns the meaning of the input. A parser returns
 * AG_EPARSE for any malformed input. Its message gives the position (line,
 * byte offset, or node path for JSON) and what was wrong, and the caller
 * adds the file name. */
#ifndef AGENT_EXPORT_H
#define AGENT_EXPORT_H

#include <jansson.h>

#include "agent/config.h"
#include "agent/error.h"

enum export_format { EXPORT_UNKNOWN, EXPORT_XML, EXPORT_CSV, EXPORT_JSON };

struct export_sink {
  /* Called before the items of each list with the list's name:
   * "annotations" for XML and JSON, "records" for CSV. A CSV parse with
   * group_by calls it a second time, with "documents", after the last
   * record; the sink then closes the first list. */
  enum ag_code (*begin)(void *ctx, const char *list_name, struct ag_error *err);
  /* Called for each item. item is borrowed: take a reference to keep it. */
  enum ag_code (*item)(void *ctx, json_t *item, struct ag_error *err);
  void *ctx;
};

/* Finish the global set-up of the parsers' libraries (libxml2), which
 * must happen in one thread before parsers run in several. Calling it
 * again does nothing. */
void export_init(void);

/* Return the format for a remote base name by its extension (".xml",
 * ".csv", ".json", any case), or EXPORT_UNKNOWN. */
enum export_format export_format_of(const char *name);

/* Return "xml", "csv", "json" or "unknown". */
const char *export_format_name(enum export_format format);

/* Parse the Rossum XML export at path. Each annotation object has the
 * keys id, url, status, arrived_at, exported_at, file_name, document_url,
 * modifier, automated, fields, tables and metadata (docs/formats.md).
 * The parser loads no DTD, substitutes no entities and opens no network
 * connection. */
enum ag_code export_parse_xml(const char *path, const struct export_sink *sink,
                              struct ag_error *err);

/* An input that a parser reads as it arrives, such as a file that is
 * still being downloaded. read stores up to size bytes in buffer and
 * returns how many, which is 0 only at the end of the input. It waits
 * while no byte is there yet. It returns -1 when the input failed, with
 * the reason in err, and the parser then fails with that error. */
struct export_input {
  long (*read)(void *ctx, void *buffer, size_t size, struct ag_error *err);
  void *ctx;
};

/* Parse a Rossum XML export from input, as export_parse_xml() does. */
enum ag_code export_parse_xml_input(const struct export_input *input,
                                    const struct export_sink *sink,
                                    struct ag_error *err);

/* Limits of export_parse_json(). jansson has no streaming reader, so the
 * whole document is held in memory. The byte limit alone would let a file
 * of tiny values such as {} take gigabytes, so the values are limited too;
 * a value is counted at each '{', '[', ',' and ':' outside strings. With
 * both limits, loading peaked at about 460 MB for synthetic files of
 * empty objects, arrays, strings, numbers or keys (peak RSS by GNU time,
 * jansson 2.14, x86-64). The sample export repeated in compact form
 * reaches the value limit at about 42 MB, where it took about 370 MB. */
#define EXPORT_JSON_MAX_BYTES ((long long)64 * 1024 * 1024)
#define EXPORT_JSON_MAX_VALUES 4000000

/* Parse the Rossum JSON export at path: a top-level object whose "results"
 * array contains the annotations. Each annotation becomes the same object as
 * export_parse_xml() gives for the same annotation in XML. The document is
 * loaded whole; a file larger than EXPORT_JSON_MAX_BYTES fails with
 * AG_EPARSE before it is read, and one with more than
 * EXPORT_JSON_MAX_VALUES values fails while it is read. Messages name the
 * line and column (syntax) or the path of the node, such as
 * results[1].content[0].children[2]. */
enum ag_code export_parse_json(const char *path, const struct export_sink *sink,
                               struct ag_error *err);

/* Return the annotation id for an annotation URL as a new reference. The
 * id is the last path segment, one trailing '/' ignored: a JSON integer
 * when it is a decimal number of 1 to 18 digits without a leading zero,
 * otherwise the segment as a string. Returns JSON null for a NULL url, and
 * NULL when out of memory. */
json_t *export_annotation_id(const char *url);

/* Options of export_parse_csv(), from the [csv] section of the config. */
struct export_csv_options {
  enum csv_delimiter delimiter; /* CSV_DELIMITER_AUTO sniffs the header */
  const char *encoding;         /* NULL or "utf-8" reads UTF-8 */
  const char *group_by;         /* column that groups rows, or NULL */
};

/* Parse the CSV export at path: the first row is the header, and each
 * further row becomes one object of the list "records", keyed by header
 * cells. options may be NULL for commas, UTF-8 and no grouping.
 *
 * A UTF-8 BOM is stripped. A file in another encoding is converted to
 * UTF-8 block by block with textconv.h. A byte that the encoding does not
 * define fails the parse with its byte offset. With group_by set, the file
 * is read a second time and the list "documents" follows: one object per
 * distinct value of that column, in order of first appearance, with
 * "fields" and "items" (docs/formats.md gives the rule). Grouping keeps
 * one row per document in memory and fails beyond the limits that
 * docs/formats.md states. Returns AG_ECONFIG when the system cannot
 * convert from the encoding. */
enum ag_code export_parse_csv(const char *path,
                              const struct export_csv_options *options,
                              const struct export_sink *sink,
                              struct ag_error *err);

#endif
