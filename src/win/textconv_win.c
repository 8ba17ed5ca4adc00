/* Windows implementation of agent/textconv.h with code pages.
 *
 * Every encoding that the config accepts besides UTF-8 is single-byte, so
 * textconv_open() calls MultiByteToWideChar() once for each of the 256
 * bytes and keeps a table of their UTF-8 forms. Conversion is then a table
 * lookup with nothing carried between blocks. UTF-8 input is checked and
 * copied, and a sequence cut by the end of a block is carried into the
 * next one, as iconv does on POSIX.
 *
 * Windows maps the bytes that the windows-125x code pages leave undefined
 * to the C1 control characters, where iconv rejects them. The tables below
 * list those bytes, so that both builds reject the same files. */
#include "agent/textconv.h"

#include "agent/utf8.h"
#include "win_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Bytes that are undefined in Unicode's mapping tables of the windows-125x
 * code pages (unicode.org MAPPINGS/VENDORS/MICSFT/WINDOWS/CP125x.TXT),
 * which glibc's iconv rejects too. */
static const unsigned char undefined_1250[] = {0x81, 0x83, 0x88, 0x90, 0x98};
static const unsigned char undefined_1251[] = {0x98};
static const unsigned char undefined_1252[] = {0x81, 0x8D, 0x8F, 0x90, 0x9D};
static const unsigned char undefined_1257[] = {
    0x81, 0x83, 0x88, 0x8A, 0x8C, 0x90, 0x98, 0x9A, 0x9C, 0x9F, 0xA1, 0xA5};

struct encoding {
  const char *name;
  UINT code_page;
  const unsigned char *undefined;
  size_t undefined_count;
};

#define UNDEFINED(list) list, sizeof(list)

static const struct encoding encodings[] = {
    {"utf-8", CP_UTF8, NULL, 0},
    {"windows-1250", 1250, UNDEFINED(undefined_1250)},
    {"windows-1251", 1251, UNDEFINED(undefined_1251)},
    {"windows-1252", 1252, UNDEFINED(undefined_1252)},
    {"windows-1257", 1257, UNDEFINED(undefined_1257)},
    {"iso-8859-1", 28591, NULL, 0},
    {"iso-8859-2", 28592, NULL, 0},
    {"iso-8859-15", 28605, NULL, 0},
};

/* Longest UTF-8 form of one byte: a character of the Basic Multilingual
 * Plane, at most 3 bytes. */
#define BYTE_UTF8_MAX 3

struct textconv {
  char *name;
  bool utf8; /* the source is UTF-8: check and copy */
  unsigned char forms[256][BYTE_UTF8_MAX]; /* single-byte: UTF-8 per byte */
  unsigned char form_len[256];             /* 0 marks an undefined byte */
  unsigned char carry[4]; /* UTF-8: the start of a cut sequence */
  size_t carry_len;
  char *output;
  size_t output_size;
  unsigned long long offset; /* stream offset of the first byte not done */
  bool failed;
};

static bool names_equal(const char *a, const char *b)
{
  for (; *a != '\0' && *b != '\0'; a++, b++) {
    char x = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
    char y = *b >= 'A' && *b <= 'Z' ? (char)(*b - 'A' + 'a') : *b;
    if (x != y)
      return false;
  }
  return *a == *b;
}

/* Fill conv's table from the code page. Returns false when Windows has no
 * such code page. */
static bool load_table(struct textconv *conv, const struct encoding *encoding)
{
  for (unsigned value = 0; value < 256; value++) {
    char byte = (char)value;
    wchar_t wide[2];
    int count = MultiByteToWideChar(encoding->code_page, MB_ERR_INVALID_CHARS,
                                    &byte, 1, wide, 2);
    if (count == 0 && GetLastError() == ERROR_INVALID_PARAMETER)
      return false;
    if (count != 1)
      continue;
    conv->form_len[value] = (unsigned char)WideCharToMultiByte(
        CP_UTF8, 0, wide, 1, (char *)conv->forms[value], BYTE_UTF8_MAX, NULL,
        NULL);
  }
  for (size_t i = 0; i < encoding->undefined_count; i++)
    conv->form_len[encoding->undefined[i]] = 0;
  return true;
}

enum ag_code textconv_open(const char *name, struct textconv **out,
                           struct ag_error *err)
{
  const struct encoding *encoding = NULL;

  *out = NULL;
  for (size_t i = 0; i < sizeof(encodings) / sizeof(encodings[0]); i++) {
    if (names_equal(name, encodings[i].name))
      encoding = &encodings[i];
  }
  if (encoding == NULL)
    return ag_error_set(err, AG_ECONFIG,
                        "cannot convert from '%s': no Windows code page is "
                        "known for this encoding",
                        name);

  struct textconv *conv = calloc(1, sizeof(*conv));
  if (conv == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  conv->name = strdup(name);
  if (conv->name == NULL) {
    textconv_close(conv);
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  }
  conv->utf8 = encoding->code_page == CP_UTF8;
  if (!conv->utf8 && !load_table(conv, encoding)) {
    textconv_close(conv);
    return ag_error_set(err, AG_ECONFIG,
                        "cannot convert from '%s': Windows lacks code page %u",
                        name, encoding->code_page);
  }
  *out = conv;
  return AG_OK;
}

/* Make room for size bytes of output. */
static bool reserve_output(struct textconv *conv, size_t size)
{
  if (conv->output_size >= size)
    return true;
  char *grown = realloc(conv->output, size);
  if (grown == NULL)
    return false;
  conv->output = grown;
  conv->output_size = size;
  return true;
}

/* Convert len single-byte characters at in. Returns the number converted,
 * less than len when in[result] is undefined. */
static size_t convert_table(struct textconv *conv, const unsigned char *in,
                            size_t len, size_t *out_used)
{
  char *out = conv->output + *out_used;
  size_t i = 0;

  for (; i < len; i++) {
    size_t form_len = conv->form_len[in[i]];
    if (form_len == 0)
      break;
    memcpy(out, conv->forms[in[i]], form_len);
    out += form_len;
  }
  *out_used = (size_t)(out - conv->output);
  return i;
}

/* Return whether the len bytes at s start a valid UTF-8 sequence that
 * the next bytes could finish. A second byte of 0x80 or 0xA0 finishes
 * every valid start, whatever range its lead byte allows. */
static bool is_cut_sequence(const unsigned char *s, size_t len)
{
  static const unsigned char second[] = {0x80, 0xA0};
  unsigned char padded[4];

  if (len >= 4)
    return false;
  for (size_t k = 0; k < sizeof(second); k++) {
    memcpy(padded, s, len);
    for (size_t i = len; i < 4; i++)
      padded[i] = i == 1 ? second[k] : 0x80;
    size_t need = utf8_sequence_length(padded, 4);
    if (need > len)
      return true;
  }
  return false;
}

/* Check and copy UTF-8 from the carried bytes and the len bytes at in.
 * Returns the number of bytes of in consumed, into the output or the
 * carry. Stops before the first invalid sequence, and stores in
 * *invalid_byte its first byte. */
static size_t convert_utf8(struct textconv *conv, const unsigned char *in,
                           size_t len, size_t *out_used, int *invalid_byte)
{
  size_t i = 0;

  *invalid_byte = -1;
  /* Finish a sequence that the last block cut. */
  while (conv->carry_len > 0 && i < len) {
    conv->carry[conv->carry_len++] = in[i++];
    size_t need = utf8_sequence_length(conv->carry, conv->carry_len);
    if (need == conv->carry_len) {
      memcpy(conv->output + *out_used, conv->carry, need);
      *out_used += need;
      conv->offset += need;
      conv->carry_len = 0;
    } else if (need == 0 && !is_cut_sequence(conv->carry, conv->carry_len)) {
      *invalid_byte = conv->carry[0];
      return i;
    }
  }

  size_t start = i;
  while (i < len) {
    size_t seq = utf8_sequence_length(in + i, len - i);
    if (seq == 0) {
      if (!is_cut_sequence(in + i, len - i)) {
        *invalid_byte = in[i];
        break;
      }
      /* A valid start cut by the end of the block. */
      memcpy(conv->carry, in + i, len - i);
      conv->carry_len = len - i;
      memcpy(conv->output + *out_used, in + start, i - start);
      *out_used += i - start;
      conv->offset += i - start;
      return len;
    }
    i += seq;
  }
  memcpy(conv->output + *out_used, in + start, i - start);
  *out_used += i - start;
  conv->offset += i - start;
  return i;
}

enum ag_code textconv_convert(struct textconv *conv, const void *in, size_t len,
                              bool at_end, const char **out, size_t *out_len,
                              struct ag_error *err)
{
  const unsigned char *bytes = in;
  size_t out_used = 0;
  int invalid_byte = -1;

  *out = conv->output;
  *out_len = 0;
  if (conv->failed)
    return ag_error_set(err, AG_EPARSE,
                        "byte offset %llu: conversion from %s stopped at an "
                        "earlier error",
                        conv->offset, conv->name);
  if (len > (SIZE_MAX - 64) / BYTE_UTF8_MAX ||
      !reserve_output(conv, BYTE_UTF8_MAX * len + 64))
    return ag_error_set(err, AG_ENOMEM, "out of memory");

  if (conv->utf8) {
    convert_utf8(conv, bytes, len, &out_used, &invalid_byte);
  } else {
    size_t done = convert_table(conv, bytes, len, &out_used);
    conv->offset += done;
    if (done < len)
      invalid_byte = bytes[done];
  }
  *out = conv->output;
  *out_len = out_used;

  if (invalid_byte >= 0) {
    conv->failed = true;
    return ag_error_set(err, AG_EPARSE,
                        "byte offset %llu: invalid %s byte 0x%02X",
                        conv->offset, conv->name, (unsigned)invalid_byte);
  }
  if (at_end && conv->carry_len > 0) {
    conv->failed = true;
    return ag_error_set(err, AG_EPARSE,
                        "byte offset %llu: the text ends inside a %s "
                        "multibyte sequence",
                        conv->offset, conv->name);
  }
  return AG_OK;
}

unsigned long long textconv_offset(const struct textconv *conv)
{
  return conv->offset;
}

const char *textconv_name(const struct textconv *conv)
{
  return conv->name;
}

void textconv_close(struct textconv *conv)
{
  if (conv == NULL)
    return;
  free(conv->name);
  free(conv->output);
  free(conv);
}
