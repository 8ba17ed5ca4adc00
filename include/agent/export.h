/* Parsers for Rossum export files.
 *
 * A parser reads a downloaded export from a local file and hands the
 * output items one by one to a sink: one object per annotation for XML,
 * one object per data row for CSV. The sink owns the output format; the
 * parser owns the meaning of the input. A parser returns AG_EPARSE for any
 * malformed input, with a message that gives the position (line, or byte
 * offset) and what was wrong; the caller adds the file name. */
#ifndef AGENT_EXPORT_H
#define AGENT_EXPORT_H

#include <jansson.h>

#include "agent/error.h"

enum export_format { EXPORT_UNKNOWN, EXPORT_XML, EXPORT_CSV };

struct export_sink {
  /* Called once, before any item, with the name of the item list:
   * "annotations" for XML, "records" for CSV. */
  enum ag_code (*begin)(void *ctx, const char *list_name, struct ag_error *err);
  /* Called for each item. item is borrowed: take a reference to keep it. */
  enum ag_code (*item)(void *ctx, json_t *item, struct ag_error *err);
  void *ctx;
};

/* Return the format for a remote base name by its extension (".xml",
 * ".csv", any case), or EXPORT_UNKNOWN. */
enum export_format export_format_of(const char *name);

/* Return "xml", "csv" or "unknown". */
const char *export_format_name(enum export_format format);

/* Parse the Rossum XML export at path. Each annotation object has the
 * keys id, url, status, arrived_at, exported_at, file_name, document_url,
 * modifier, automated, fields, tables and metadata (docs/formats.md).
 * The parser loads no DTD, substitutes no entities and opens no network
 * connection. */
enum ag_code export_parse_xml(const char *path, const struct export_sink *sink,
                              struct ag_error *err);

/* Parse the comma-separated export at path: the first row is the header,
 * and each further row becomes one object keyed by header cells. A UTF-8
 * BOM is stripped. */
enum ag_code export_parse_csv(const char *path, const struct export_sink *sink,
                              struct ag_error *err);

#endif
