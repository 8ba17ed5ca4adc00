/* Rossum CSV export parser.
 *
 * The file comes in as UTF-8 text block by block (export_csv_input.c) and
 * is fed to libcsv in strict mode one physical line at a time, so every
 * row can be reported with the line it starts on. The first row is the
 * header. Each later row becomes one JSON object keyed by the header cells
 * and goes to the sink straight away, so memory is bounded by the longest
 * row, not by the file. With group_by a second pass over the file builds
 * the documents (export_csv_group.c). */
#include "agent/export.h"

#include "export_csv_internal.h"

#include "agent/log.h"
#include "agent/platform.h"

#include <csv.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Maximum length of one field in bytes, the same as libxml2's default
 * limit for one XML text node, so both formats accept the same values. */
#define FIELD_MAX 10000000

/* NOTE: a guessed limit. The sample exports have about 20 columns, and
 * the limit only keeps a hostile header from using unbounded memory. */
#define COLUMN_MAX 10000

/* Longest untrusted text (header names) quoted in a message. */
#define QUOTE_MAX 160

/* The two passes over a file: the second one runs only with group_by. */
enum csv_pass { PASS_RECORDS, PASS_DOCUMENTS };

struct csv_state {
  const struct export_sink *sink;
  struct ag_error *err;
  enum ag_code code; /* first failure, also when err is NULL */
  enum csv_pass pass;
  struct csv_input *input;
  struct csv_group *group;   /* NULL without group_by */
  unsigned long line;        /* physical line being fed, from 1 */
  unsigned long row_line;    /* line where the current row starts, or 0 */
  unsigned long long offset; /* file offset of the next byte to feed */
  json_t *header;            /* array of header cells, NULL until read */
  size_t column_count;       /* named header cells */
  bool trailing_empty;       /* whether the header ends with an empty cell */
  json_t *row;               /* header cells or record being built */
  size_t field_count;        /* fields seen in the current row */
  bool unnamed_value;        /* whether a value is under that empty cell */
};

/* Record a failure in state->err unless one is already recorded. */
static void fail(struct csv_state *state, enum ag_code code, const char *format,
                 ...) __attribute__((format(printf, 3, 4)));

static void fail(struct csv_state *state, enum ag_code code, const char *format,
                 ...)
{
  char message[AG_ERROR_MESSAGE_MAX];
  va_list args;

  va_start(args, format);
  vsnprintf(message, sizeof(message), format, args);
  va_end(args);

  if (state->code == AG_OK)
    state->code = ag_error_set(state->err, code, "%s", message);
}

/* Keep spaces and tabs around unquoted values, which libcsv trims by
 * default. */
static int is_never_space(unsigned char c)
{
  (void)c;
  return 0;
}

static void collect_header_cell(struct csv_state *state, const char *data,
                                size_t len)
{
  if (state->field_count > COLUMN_MAX) {
    fail(state, AG_EPARSE, "line %lu: the header has more than %d columns",
         state->row_line, COLUMN_MAX);
    return;
  }
  if (memchr(data, '\0', len) != NULL) {
    fail(state, AG_EPARSE, "line %lu: header column %zu contains a NUL byte",
         state->row_line, state->field_count);
    return;
  }
  if (json_array_append_new(state->row, json_stringn(data, len)) != 0)
    fail(state, AG_ENOMEM, "out of memory while reading the header");
}

static void collect_record_value(struct csv_state *state, const char *data,
                                 size_t len)
{
  size_t index = state->field_count - 1;

  /* Extra fields are only counted, and the row end reports the mismatch. */
  if (index > state->column_count)
    return;
  if (index == state->column_count) {
    if (state->trailing_empty && len > 0)
      state->unnamed_value = true;
    return;
  }

  /* The key is a header cell, which jansson checked when the header was
   * read, and csv_input passes on only valid UTF-8, so neither needs
   * jansson's UTF-8 check again. The two checks took about a tenth of the
   * instructions of a parse (callgrind, jansson 2.14). */
  const char *key = json_string_value(json_array_get(state->header, index));
  if (json_object_set_new_nocheck(state->row, key,
                                  json_stringn_nocheck(data, len)) != 0)
    fail(state, AG_ENOMEM, "out of memory while reading line %lu",
         state->row_line);
}

/* libcsv field callback. */
static void on_field(void *data, size_t len, void *context)
{
  struct csv_state *state = context;

  if (state->code != AG_OK)
    return;

  /* A row can start after a bare CR in the middle of a fed line. */
  if (state->row_line == 0)
    state->row_line = state->line;

  if (len > FIELD_MAX) {
    fail(state, AG_EPARSE, "line %lu: field %zu is longer than %d bytes",
         state->row_line, state->field_count + 1, FIELD_MAX);
    return;
  }

  if (state->row == NULL) {
    state->row = state->header == NULL ? json_array() : json_object();
    if (state->row == NULL) {
      fail(state, AG_ENOMEM, "out of memory while reading line %lu",
           state->row_line);
      return;
    }
  }

  /* libcsv passes NULL only with CSV_EMPTY_IS_NULL, which is not set. */
  const char *text = data != NULL ? data : "";
  state->field_count++;
  if (state->header == NULL)
    collect_header_cell(state, text, len);
  else
    collect_record_value(state, text, len);
}

/* Check the header cells. One empty cell at the end is allowed, because
 * some exports end the header line with a delimiter that data rows lack. */
static void check_header(struct csv_state *state, json_t *cells)
{
  char shown[QUOTE_MAX];
  size_t count = json_array_size(cells);

  if (count == 0) {
    fail(state, AG_EPARSE, "line %lu: the header row is empty",
         state->row_line);
    return;
  }
  const char *last = json_string_value(json_array_get(cells, count - 1));

  state->trailing_empty = count > 1 && last[0] == '\0';
  state->column_count = state->trailing_empty ? count - 1 : count;

  for (size_t i = 0; i < state->column_count; i++) {
    const char *name = json_string_value(json_array_get(cells, i));
    if (name[0] == '\0') {
      fail(state, AG_EPARSE, "line %lu: header column %zu is empty",
           state->row_line, i + 1);
      return;
    }
    for (size_t j = 0; j < i; j++) {
      if (strcmp(name, json_string_value(json_array_get(cells, j))) == 0) {
        fail(state, AG_EPARSE,
             "line %lu: header column %zu repeats the name \"%s\" of "
             "column %zu",
             state->row_line, i + 1,
             log_escape(shown, sizeof(shown), name, strlen(name)), j + 1);
        return;
      }
    }
  }
}

/* Record a code that a callee already stored in state->err. */
static void keep(struct csv_state *state, enum ag_code code)
{
  if (code != AG_OK && state->code == AG_OK)
    state->code = code;
}

static void finish_header(struct csv_state *state)
{
  check_header(state, state->row);
  if (state->code != AG_OK)
    return;

  state->header = state->row;
  state->row = NULL;

  /* The second pass reads the same header again and starts no list. */
  if (state->pass == PASS_DOCUMENTS)
    return;
  if (state->group != NULL)
    keep(state,
         csv_group_set_header(state->group, state->header, state->column_count,
                              state->row_line, state->err));

  /* Call begin now, so a file with only a header still gets a list. */
  if (state->code == AG_OK)
    keep(state, state->sink->begin(state->sink->ctx, "records", state->err));
}

static void finish_record(struct csv_state *state)
{
  size_t count = state->field_count;
  size_t expected = state->column_count;

  if (count != expected && !(state->trailing_empty && count == expected + 1)) {
    if (state->trailing_empty)
      fail(state, AG_EPARSE,
           "line %lu: found %zu fields, expected %zu or %zu as in the header",
           state->row_line, count, expected, expected + 1);
    else
      fail(state, AG_EPARSE,
           "line %lu: found %zu fields, expected %zu as in the header",
           state->row_line, count, expected);
    return;
  }
  if (state->unnamed_value) {
    fail(state, AG_EPARSE,
         "line %lu: field %zu has a value, but its header cell is empty",
         state->row_line, expected + 1);
    return;
  }

  if (state->pass == PASS_DOCUMENTS) {
    keep(state, csv_group_place(state->group, state->row, state->sink,
                                state->row_line, state->err));
    return;
  }
  keep(state, state->sink->item(state->sink->ctx, state->row, state->err));
  if (state->group != NULL && state->code == AG_OK)
    keep(state,
         csv_group_scan(state->group, state->row, state->row_line, state->err));
}

/* libcsv row callback. */
static void on_row(int terminator, void *context)
{
  struct csv_state *state = context;

  (void)terminator;
  if (state->code == AG_OK) {
    if (state->header == NULL)
      finish_header(state);
    else
      finish_record(state);
  }

  json_decref(state->row);
  state->row = NULL;
  state->field_count = 0;
  state->unnamed_value = false;
  state->row_line = 0;
}

static bool has_content(const unsigned char *data, size_t len)
{
  for (size_t i = 0; i < len; i++) {
    if (data[i] != '\r' && data[i] != '\n')
      return true;
  }
  return false;
}

/* Report why libcsv stopped at byte consumed of the current line. */
static void fail_csv(struct csv_state *state, struct csv_parser *parser,
                     const unsigned char *data, size_t consumed)
{
  int status = csv_error(parser);

  if (status == CSV_EPARSE)
    fail(state, AG_EPARSE,
         "line %lu, byte offset %llu: misplaced quote (a quote inside an "
         "unquoted field, or text after a closing quote)",
         state->line,
         state->offset + csv_input_span(state->input, data, consumed));
  else if (status == CSV_ENOMEM)
    fail(state, AG_ENOMEM, "out of memory while reading line %lu", state->line);
  else
    fail(state, AG_EPARSE, "line %lu: %s", state->line, csv_strerror(status));
}

/* Feed data to libcsv one physical line at a time, which lets the
 * callbacks know the line number.
 * NOTE: lines are counted at LF. libcsv also ends a row at a bare CR, so
 * in a file with CR-only line endings every message names line 1. */
static void feed_lines(struct csv_state *state, struct csv_parser *parser,
                       const unsigned char *data, size_t len)
{
  while (len > 0 && state->code == AG_OK) {
    const unsigned char *newline = memchr(data, '\n', len);
    size_t piece = newline != NULL ? (size_t)(newline - data) + 1 : len;

    /* libcsv skips blank lines, so only a line with content opens a row. */
    if (state->row_line == 0 && has_content(data, piece))
      state->row_line = state->line;

    size_t consumed = csv_parse(parser, data, piece, on_field, on_row, state);
    if (consumed != piece) {
      fail_csv(state, parser, data, consumed);
      return;
    }

    /* The field in progress stays in libcsv's buffer, so stop it from
     * growing past the limit before the field ends. */
    if (csv_get_buffer_size(parser) >
        (size_t)FIELD_MAX + 2 * CSV_READ_BLOCK_SIZE) {
      fail(state, AG_EPARSE, "line %lu: field longer than %d bytes",
           state->row_line, FIELD_MAX);
      return;
    }

    state->offset += csv_input_span(state->input, data, piece);
    if (newline != NULL)
      state->line++;
    data += piece;
    len -= piece;
  }
}

/* Read the file block by block and feed it to libcsv. */
static void feed_input(struct csv_state *state, struct csv_parser *parser)
{
  struct csv_text text;

  do {
    keep(state, csv_input_read(state->input, &text, state->err));
    if (state->code != AG_OK)
      return;
    state->offset = text.offset;
    feed_lines(state, parser, text.data, text.len);
    if (text.invalid)
      fail(state, AG_EPARSE, "line %lu, %s", state->line, text.reason);
  } while (state->code == AG_OK && !text.last);
}

/* Finish the last row (a file may lack the final newline) and check that
 * there was a header. */
static void finish_input(struct csv_state *state, struct csv_parser *parser)
{
  if (csv_fini(parser, on_field, on_row, state) != 0) {
    fail(state, AG_EPARSE,
         "the quoted field in the row that starts on line %lu is not closed "
         "at the end of the file",
         state->row_line);
    return;
  }
  if (state->code == AG_OK && state->header == NULL)
    fail(state, AG_EPARSE,
         "no header row: the file contains only blank lines or a BOM");
}

/* Read the whole input once: the records, or with PASS_DOCUMENTS the
 * documents of group. */
static enum ag_code run_pass(struct csv_input *input, char delimiter,
                             enum csv_pass pass, struct csv_group *group,
                             const struct export_sink *sink,
                             struct ag_error *err)
{
  struct csv_state state = {
      .sink = sink,
      .err = err,
      .pass = pass,
      .input = input,
      .group = group,
      .line = 1,
  };
  struct csv_parser parser;

  if (csv_init(&parser, CSV_STRICT | CSV_APPEND_NULL | CSV_STRICT_FINI) != 0)
    return ag_error_set(err, AG_ENOMEM, "cannot initialise the CSV parser");
  csv_set_delim(&parser, (unsigned char)delimiter);
  csv_set_space_func(&parser, is_never_space);
  csv_set_blk_size(&parser, CSV_READ_BLOCK_SIZE);

  feed_input(&state, &parser);
  if (state.code == AG_OK)
    finish_input(&state, &parser);

  csv_free(&parser);
  json_decref(state.row);
  json_decref(state.header);
  return state.code;
}

static char delimiter_char(enum csv_delimiter delimiter)
{
  switch (delimiter) {
  case CSV_DELIMITER_SEMICOLON:
    return ';';
  case CSV_DELIMITER_TAB:
    return '\t';
  case CSV_DELIMITER_COMMA:
  case CSV_DELIMITER_AUTO:
    break;
  }
  return ',';
}

/* Run the second pass, which sends the list "documents". */
static enum ag_code run_documents_pass(struct csv_input *input, char delimiter,
                                       struct csv_group *group,
                                       const struct export_sink *sink,
                                       struct ag_error *err)
{
  enum ag_code code = csv_input_rewind(input, err);

  if (code == AG_OK)
    code = sink->begin(sink->ctx, "documents", err);
  if (code == AG_OK)
    code = run_pass(input, delimiter, PASS_DOCUMENTS, group, sink, err);
  if (code == AG_OK)
    code = csv_group_finish(group, err);
  return code;
}

enum ag_code export_parse_csv(const char *path,
                              const struct export_csv_options *options,
                              const struct export_sink *sink,
                              struct ag_error *err)
{
  static const struct export_csv_options defaults = {.delimiter =
                                                         CSV_DELIMITER_COMMA};
  struct csv_input *input = NULL;
  struct csv_group *group = NULL;
  enum ag_code code = AG_OK;
  FILE *file = NULL;

  if (options == NULL)
    options = &defaults;
  char delimiter = delimiter_char(options->delimiter);

  file = plat_fopen(path, "rb");
  if (file == NULL) {
    code = ag_error_set(err, AG_ELOCAL, "open failed: %s", strerror(errno));
    goto done;
  }
  code = csv_input_open(file, options->encoding, &input, err);
  if (code == AG_OK && options->group_by != NULL)
    code = csv_group_new(options->group_by, &group, err);
  if (code == AG_OK && options->delimiter == CSV_DELIMITER_AUTO)
    code = csv_input_sniff_delimiter(input, &delimiter, err);

  if (code == AG_OK)
    code = run_pass(input, delimiter, PASS_RECORDS, group, sink, err);
  if (code == AG_OK && group != NULL)
    code = run_documents_pass(input, delimiter, group, sink, err);

done:
  csv_group_free(group);
  csv_input_close(input);
  if (file != NULL)
    fclose(file);
  return code;
}
