/* The CSV file as UTF-8 text, block by block.
 *
 * In UTF-8 the bytes are checked and passed on as they are, after a BOM
 * at the start is skipped. Any other encoding goes through a textconv.h
 * converter, which stops at the first byte the encoding does not define.
 * Either way the parser gets only valid UTF-8, and invalid input ends the
 * text just before the bad byte with its file offset. */
#include "export_csv_internal.h"

#include "agent/textconv.h"
#include "agent/utf8.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bytes carried from one block to the next in UTF-8: the start of a
 * sequence (at most 4 bytes) that the block cut. */
#define UTF8_CARRY_MAX 3

/* Text of the first record that sniffing reads at most. A header longer
 * than this is judged by its first 1 MiB. */
#define SNIFF_MAX (1024 * 1024)

static const unsigned char utf8_bom[] = {0xEF, 0xBB, 0xBF};

struct csv_input {
  FILE *file;
  char *encoding;            /* the configured name, NULL for UTF-8 */
  struct textconv *conv;     /* NULL for UTF-8 */
  unsigned char *buffer;     /* UTF8_CARRY_MAX + CSV_READ_BLOCK_SIZE bytes */
  size_t kept_from;          /* UTF-8: a cut sequence starts here in buffer */
  size_t kept_len;           /* and is this long; it starts the next block */
  unsigned long long offset; /* UTF-8: file offset of the kept bytes */
  bool started;              /* the first block has been read */
  bool finished;             /* the last block has been returned */
};

static bool is_utf8(const char *encoding)
{
  return encoding == NULL || strcasecmp(encoding, "utf-8") == 0;
}

enum ag_code csv_input_open(FILE *file, const char *encoding,
                            struct csv_input **out, struct ag_error *err)
{
  struct csv_input *input = calloc(1, sizeof(*input));
  enum ag_code code = AG_OK;

  *out = NULL;
  if (input == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  input->file = file;
  input->buffer = malloc(UTF8_CARRY_MAX + CSV_READ_BLOCK_SIZE);
  if (input->buffer == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory for the read buffer");
    goto out;
  }
  if (!is_utf8(encoding)) {
    input->encoding = strdup(encoding);
    if (input->encoding == NULL)
      code = ag_error_set(err, AG_ENOMEM, "out of memory");
    else
      code = textconv_open(encoding, &input->conv, err);
  }

out:
  if (code != AG_OK) {
    csv_input_close(input);
    return code;
  }
  *out = input;
  return AG_OK;
}

/* Read up to one block into at. Returns the byte count, or sets *code. */
static size_t read_block(struct csv_input *input, unsigned char *at,
                         enum ag_code *code, struct ag_error *err)
{
  size_t got = fread(at, 1, CSV_READ_BLOCK_SIZE, input->file);

  if (got < CSV_READ_BLOCK_SIZE && ferror(input->file))
    *code = ag_error_set(err, AG_ELOCAL, "read failed: %s", strerror(errno));
  return got;
}

static bool starts_with_bom(const unsigned char *data, size_t len)
{
  return len >= sizeof(utf8_bom) &&
         memcmp(data, utf8_bom, sizeof(utf8_bom)) == 0;
}

/* Return the length of the valid UTF-8 prefix of data. Unless at_eof, a
 * sequence that may be cut by the block end is left for the next block.
 * Sets *invalid when the prefix ends at an invalid byte. */
static size_t valid_utf8_prefix(const unsigned char *data, size_t len,
                                bool at_eof, bool *invalid)
{
  size_t i = 0;

  *invalid = false;
  while (i < len) {
    if (data[i] < 0x80) {
      i++;
      continue;
    }
    size_t sequence = utf8_sequence_length(data + i, len - i);
    if (sequence == 0) {
      if (!at_eof && len - i <= UTF8_CARRY_MAX)
        return i;
      *invalid = true;
      return i;
    }
    i += sequence;
  }
  return i;
}

static enum ag_code read_utf8(struct csv_input *input, struct csv_text *text,
                              struct ag_error *err)
{
  enum ag_code code = AG_OK;
  size_t carried = input->kept_len;

  memmove(input->buffer, input->buffer + input->kept_from, carried);
  size_t got = read_block(input, input->buffer + carried, &code, err);
  if (code != AG_OK)
    return code;
  bool at_eof = got < CSV_READ_BLOCK_SIZE;
  size_t len = carried + got;
  size_t start = 0;

  /* fread fills the whole block unless the file is shorter, so a BOM is
   * always within the first block. */
  if (!input->started) {
    input->started = true;
    if (len == 0)
      return ag_error_set(err, AG_EPARSE, "empty file");
    if (starts_with_bom(input->buffer, len))
      start = sizeof(utf8_bom);
  }

  bool invalid;
  size_t valid =
      valid_utf8_prefix(input->buffer + start, len - start, at_eof, &invalid);
  text->data = input->buffer + start;
  text->len = valid;
  text->offset = input->offset + start;
  text->invalid = invalid;
  text->last = at_eof || invalid;
  if (invalid)
    snprintf(text->reason, sizeof(text->reason),
             "byte offset %llu: invalid UTF-8", text->offset + valid);

  input->kept_from = start + valid;
  input->kept_len = len - start - valid;
  input->offset = text->offset + valid;
  return AG_OK;
}

static enum ag_code read_converted(struct csv_input *input,
                                   struct csv_text *text, struct ag_error *err)
{
  enum ag_code code = AG_OK;
  size_t got = read_block(input, input->buffer, &code, err);

  if (code != AG_OK)
    return code;
  bool at_eof = got < CSV_READ_BLOCK_SIZE;

  /* A UTF-8 file read as a single-byte encoding would turn every accented
   * letter into two wrong ones, and its BOM gives it away. */
  if (!input->started) {
    input->started = true;
    if (got == 0)
      return ag_error_set(err, AG_EPARSE, "empty file");
    if (starts_with_bom(input->buffer, got)) {
      text->invalid = true;
      text->last = true;
      snprintf(text->reason, sizeof(text->reason),
               "byte offset 0: the file starts with a UTF-8 byte order mark, "
               "but [csv] encoding is %s; set encoding = utf-8 for UTF-8 "
               "exports",
               input->encoding);
      return AG_OK;
    }
  }

  struct ag_error conv_err = {0};
  const char *converted = NULL;
  size_t converted_len = 0;
  text->offset = textconv_offset(input->conv);
  code = textconv_convert(input->conv, input->buffer, got, at_eof, &converted,
                          &converted_len, &conv_err);
  if (code != AG_OK && code != AG_EPARSE)
    return ag_error_set(err, code, "%s", conv_err.message);

  text->data = (const unsigned char *)converted;
  text->len = converted_len;
  text->invalid = code == AG_EPARSE;
  text->last = at_eof || text->invalid;
  if (text->invalid)
    snprintf(text->reason, sizeof(text->reason), "%s", conv_err.message);
  return AG_OK;
}

enum ag_code csv_input_read(struct csv_input *input, struct csv_text *text,
                            struct ag_error *err)
{
  enum ag_code code;

  memset(text, 0, sizeof(*text));
  if (input->finished) {
    text->last = true;
    return AG_OK;
  }
  if (input->conv != NULL)
    code = read_converted(input, text, err);
  else
    code = read_utf8(input, text, err);
  input->finished = code != AG_OK || text->last;
  return code;
}

unsigned long long csv_input_span(const struct csv_input *input,
                                  const unsigned char *data, size_t len)
{
  unsigned long long characters = 0;

  if (input->conv == NULL)
    return len;

  /* NOTE: this counts one file byte per character, which holds for every
   * encoding that the config accepts: all are single-byte. A multibyte
   * source encoding would need the offsets from the converter. */
  for (size_t i = 0; i < len; i++) {
    if ((data[i] & 0xC0) != 0x80)
      characters++;
  }
  return characters;
}

enum ag_code csv_input_rewind(struct csv_input *input, struct ag_error *err)
{
  if (fseek(input->file, 0, SEEK_SET) != 0)
    return ag_error_set(err, AG_ELOCAL, "cannot go back to the file start: %s",
                        strerror(errno));
  clearerr(input->file);
  input->kept_from = 0;
  input->kept_len = 0;
  input->offset = 0;
  input->started = false;
  input->finished = false;
  if (input->conv == NULL)
    return AG_OK;

  /* A fresh converter starts at offset 0 with no carried bytes. */
  textconv_close(input->conv);
  input->conv = NULL;
  return textconv_open(input->encoding, &input->conv, err);
}

void csv_input_close(struct csv_input *input)
{
  if (input == NULL)
    return;
  textconv_close(input->conv);
  free(input->encoding);
  free(input->buffer);
  free(input);
}

/* Counts of the candidate delimiters outside quotes in the first record. */
struct sniffer {
  size_t comma;
  size_t semicolon;
  size_t tab;
  size_t seen;    /* bytes of the record looked at */
  bool started;   /* the record has begun (blank lines are skipped) */
  bool in_quotes; /* inside a quoted field */
  bool done;      /* the record has ended */
};

static void sniff_text(struct sniffer *sniffer, const unsigned char *data,
                       size_t len)
{
  for (size_t i = 0; i < len && !sniffer->done; i++) {
    unsigned char c = data[i];
    bool line_end = c == '\r' || c == '\n';

    if (!sniffer->started && line_end)
      continue;
    sniffer->started = true;
    if (++sniffer->seen > SNIFF_MAX || (line_end && !sniffer->in_quotes)) {
      sniffer->done = true;
      break;
    }
    /* An escaped quote ("") toggles twice, so it leaves the state as is. */
    if (c == '"')
      sniffer->in_quotes = !sniffer->in_quotes;
    else if (sniffer->in_quotes)
      continue;
    else if (c == ',')
      sniffer->comma++;
    else if (c == ';')
      sniffer->semicolon++;
    else if (c == '\t')
      sniffer->tab++;
  }
}

static char sniffed_delimiter(const struct sniffer *sniffer)
{
  char delimiter = ',';
  size_t best = sniffer->comma;

  if (sniffer->semicolon > best) {
    delimiter = ';';
    best = sniffer->semicolon;
  }
  if (sniffer->tab > best)
    delimiter = '\t';
  return delimiter;
}

enum ag_code csv_input_sniff_delimiter(struct csv_input *input, char *delimiter,
                                       struct ag_error *err)
{
  struct sniffer sniffer = {0};
  struct ag_error read_err = {0};
  struct csv_text text;
  enum ag_code code;

  do {
    code = csv_input_read(input, &text, &read_err);
    if (code == AG_OK)
      sniff_text(&sniffer, text.data, text.len);
  } while (code == AG_OK && !sniffer.done && !text.last);

  /* An empty file is reported by the parse that follows, with the same
   * message as without sniffing. */
  if (code != AG_OK && code != AG_EPARSE)
    return ag_error_set(err, code, "%s", read_err.message);
  *delimiter = sniffed_delimiter(&sniffer);
  return csv_input_rewind(input, err);
}
