/* Private interface of the CSV export parser, shared by its files:
 *   export_csv.c        libcsv rows, header checks, the passes over a file
 *   export_csv_input.c  the file as UTF-8 text: BOM, UTF-8 check,
 *                       conversion from other encodings, delimiter sniffing
 *   export_csv_group.c  rows grouped into documents by one column
 * Not part of the public API. */
#ifndef AGENT_EXPORT_CSV_INTERNAL_H
#define AGENT_EXPORT_CSV_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "agent/error.h"
#include "agent/export.h"

/* The file is read in blocks of this many bytes. */
#define CSV_READ_BLOCK_SIZE (64 * 1024)

/* ---- Input (export_csv_input.c) ---- */

struct csv_input;

/* Room for the message that explains why the input is invalid. */
#define CSV_REASON_SIZE AG_ERROR_MESSAGE_MAX

/* One block of the file as UTF-8 text. */
struct csv_text {
  const unsigned char *data; /* owned by the input, valid until the next read */
  size_t len;
  unsigned long long offset;    /* file offset where data starts */
  bool last;                    /* no block follows */
  bool invalid;                 /* the input is invalid right after data */
  char reason[CSV_REASON_SIZE]; /* when invalid: "byte offset N: ..." */
};

/* Start reading file, which the caller keeps open and closes after
 * csv_input_close(). encoding NULL or "utf-8" means UTF-8, checked as it is
 * read; any other name is converted to UTF-8 with textconv.h. Returns
 * AG_ECONFIG when the system cannot convert from encoding, or AG_ENOMEM. */
enum ag_code csv_input_open(FILE *file, const char *encoding,
                            struct csv_input **out, struct ag_error *err);

/* Read the next block into *text. A UTF-8 BOM at the start is skipped in
 * UTF-8 and rejected in other encodings. Invalid input is not an error
 * here: text ends before it and its reason gives the cause, so the
 * caller can report the line. Returns AG_EPARSE for an empty file, AG_ELOCAL
 * when reading fails, or AG_ENOMEM. */
enum ag_code csv_input_read(struct csv_input *input, struct csv_text *text,
                            struct ag_error *err);

/* Return how many bytes of the file the text data[0..len) came from. */
unsigned long long csv_input_span(const struct csv_input *input,
                                  const unsigned char *data, size_t len);

/* Go back to the start of the file for another pass. */
enum ag_code csv_input_rewind(struct csv_input *input, struct ag_error *err);

/* Free the input. Accepts NULL. */
void csv_input_close(struct csv_input *input);

/* Read the first record and return the delimiter that occurs most often
 * outside quotes: ',' ';' or '\t'. A tie goes to the earlier of ',' ';'
 * '\t', and a header without any to ','. Rewinds the input before it
 * returns. Returns AG_ELOCAL when reading fails, or AG_ENOMEM. An empty
 * or invalid file is not an error here; the parse reports it. */
enum ag_code csv_input_sniff_delimiter(struct csv_input *input, char *delimiter,
                                       struct ag_error *err);

/* ---- Grouping (export_csv_group.c) ---- */

struct csv_group;

/* Start grouping by the column called column. */
enum ag_code csv_group_new(const char *column, struct csv_group **out,
                           struct ag_error *err);

/* Take the header cells of the first pass: an array of column_count
 * names, of which group keeps a reference. Fails with AG_EPARSE when the
 * group column is not in it. line is the header's line for messages. */
enum ag_code csv_group_set_header(struct csv_group *group, json_t *cells,
                                  size_t column_count, unsigned long line,
                                  struct ag_error *err);

/* First pass: note the record's document and which columns differ from
 * the document's first row. */
enum ag_code csv_group_scan(struct csv_group *group, json_t *record,
                            unsigned long line, struct ag_error *err);

/* Second pass: add the record to its document and send every document
 * whose rows are all placed, in order of first appearance, to sink. */
enum ag_code csv_group_place(struct csv_group *group, json_t *record,
                             const struct export_sink *sink, unsigned long line,
                             struct ag_error *err);

/* Check that the second pass sent every document. */
enum ag_code csv_group_finish(const struct csv_group *group,
                              struct ag_error *err);

/* Free the group. Accepts NULL. */
void csv_group_free(struct csv_group *group);

#endif
