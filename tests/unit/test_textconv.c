/* Unit tests for textconv_posix.c and textconv_win.c: exact byte vectors
 * from each encoding the config accepts, invalid bytes with their offsets,
 * and sequences cut between blocks. */
#include "agent/textconv.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One whole input and the UTF-8 it must give. */
struct conversion_case {
  const char *encoding;
  const char *input;
  const char *expected;
};

/* Convert input (one block, at_end) from encoding into out, which holds
 * out_size bytes, and return the code. */
static enum ag_code convert_all(const char *encoding, const char *input,
                                size_t input_len, char *out, size_t out_size,
                                struct ag_error *err)
{
  struct textconv *conv = NULL;
  const char *text = NULL;
  size_t text_len = 0;

  assert_int_equal(textconv_open(encoding, &conv, err), AG_OK);
  enum ag_code code =
      textconv_convert(conv, input, input_len, true, &text, &text_len, err);
  if (text_len >= out_size)
    fail_msg("%s: %zu bytes of output do not fit in %zu", encoding, text_len,
             out_size);
  memcpy(out, text, text_len);
  out[text_len] = '\0';
  textconv_close(conv);
  return code;
}

static void encodings_exact_bytes(void **state)
{
  static const struct conversion_case cases[] = {
      /* "Žluťoučký kůň" */
      {"windows-1250", "\x8Elu\x9Dou\xE8k\xFD k\xF9\xF2",
       "\xC5\xBDlu\xC5\xA5ou\xC4\x8Dk\xC3\xBD k\xC5\xAF\xC5\x88"},
      /* "Привет" */
      {"windows-1251", "\xCF\xF0\xE8\xE2\xE5\xF2",
       "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82"},
      /* 0x80 is the euro sign in windows-1252 */
      {"windows-1252", "\x80 5", "\xE2\x82\xAC 5"},
      /* "ą" */
      {"windows-1257", "\xE0", "\xC4\x85"},
      /* "Müller" */
      {"iso-8859-1", "M\xFCller", "M\xC3\xBCller"},
      /* "Š" */
      {"iso-8859-2", "\xA9", "\xC5\xA0"},
      /* 0xA4 is the euro sign in iso-8859-15, not the currency sign */
      {"iso-8859-15", "\xA4", "\xE2\x82\xAC"},
      /* Names match without regard to case. */
      {"WINDOWS-1250", "\x8A", "\xC5\xA0"},
  };
  (void)state;

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct ag_error err = {0};
    char out[64];

    enum ag_code code =
        convert_all(cases[i].encoding, cases[i].input, strlen(cases[i].input),
                    out, sizeof(out), &err);
    if (code != AG_OK)
      fail_msg("%s: conversion failed: %s", cases[i].encoding, err.message);
    if (strcmp(out, cases[i].expected) != 0)
      fail_msg("%s: wrong UTF-8 for case %zu", cases[i].encoding, i);
  }
}

static void nul_and_controls_kept(void **state)
{
  struct ag_error err = {0};
  char out[16];
  (void)state;

  /* NUL and the C1 control 0x85 are characters in ISO 8859-1. */
  assert_int_equal(
      convert_all("iso-8859-1", "a\0\x85", 3, out, sizeof(out), &err), AG_OK);
  assert_memory_equal(out, "a\0\xC2\x85", 4);
}

static void undefined_byte_rejected(void **state)
{
  struct textconv *conv = NULL;
  struct ag_error err = {0};
  const char *text = NULL;
  size_t text_len = 0;
  (void)state;

  /* 0x81 has no character in windows-1252. The text before it comes out,
   * and nothing replaces the byte. */
  assert_int_equal(textconv_open("windows-1252", &conv, &err), AG_OK);
  assert_int_equal(
      textconv_convert(conv, "ab\x81z", 4, false, &text, &text_len, &err),
      AG_EPARSE);
  assert_string_equal(err.message,
                      "byte offset 2: invalid windows-1252 byte 0x81");
  assert_int_equal(text_len, 2);
  assert_memory_equal(text, "ab", 2);
  assert_int_equal(textconv_offset(conv), 2);
  textconv_close(conv);
}

static void offset_counts_earlier_blocks(void **state)
{
  struct textconv *conv = NULL;
  struct ag_error err = {0};
  const char *text = NULL;
  size_t text_len = 0;
  (void)state;

  assert_int_equal(textconv_open("windows-1250", &conv, &err), AG_OK);
  assert_int_equal(
      textconv_convert(conv, "\x8E\x9D", 2, false, &text, &text_len, &err),
      AG_OK);
  assert_int_equal(text_len, 4);
  assert_int_equal(textconv_offset(conv), 2);

  /* 0x98 is undefined in windows-1250; it is byte 5 of the stream. */
  assert_int_equal(
      textconv_convert(conv, "abc\x98", 4, true, &text, &text_len, &err),
      AG_EPARSE);
  assert_string_equal(err.message,
                      "byte offset 5: invalid windows-1250 byte 0x98");
  assert_int_equal(text_len, 3);
  assert_memory_equal(text, "abc", 3);
  assert_int_equal(textconv_offset(conv), 5);

  /* After an error the converter takes no more input. */
  struct ag_error later = {0};
  assert_int_equal(
      textconv_convert(conv, "d", 1, true, &text, &text_len, &later),
      AG_EPARSE);
  assert_int_equal(text_len, 0);
  textconv_close(conv);
}

static void cut_sequence_carried(void **state)
{
  struct textconv *conv = NULL;
  struct ag_error err = {0};
  const char *text = NULL;
  size_t text_len = 0;
  (void)state;

  /* None of the single-byte encodings can cut a character, so UTF-8 as
   * the source shows the carry: "Ž" is C5 BD, split over two blocks. */
  assert_int_equal(textconv_open("utf-8", &conv, &err), AG_OK);
  assert_int_equal(
      textconv_convert(conv, "x\xC5", 2, false, &text, &text_len, &err), AG_OK);
  assert_int_equal(text_len, 1);
  assert_memory_equal(text, "x", 1);
  assert_int_equal(textconv_offset(conv), 1);

  assert_int_equal(
      textconv_convert(conv, "\xBDy", 2, false, &text, &text_len, &err), AG_OK);
  assert_int_equal(text_len, 3);
  assert_memory_equal(text, "\xC5\xBDy", 3);
  assert_int_equal(textconv_offset(conv), 4);

  /* A sequence still open at the end of the stream is an error. */
  assert_int_equal(
      textconv_convert(conv, "\xE2\x82", 2, false, &text, &text_len, &err),
      AG_OK);
  assert_int_equal(text_len, 0);
  assert_int_equal(textconv_convert(conv, "", 0, true, &text, &text_len, &err),
                   AG_EPARSE);
  assert_string_equal(
      err.message,
      "byte offset 4: the text ends inside a utf-8 multibyte sequence");
  textconv_close(conv);
}

static void large_block(void **state)
{
  /* Every byte becomes two bytes of UTF-8. */
  const size_t len = 200000;
  struct textconv *conv = NULL;
  struct ag_error err = {0};
  const char *text = NULL;
  size_t text_len = 0;
  (void)state;

  char *input = malloc(len);
  assert_non_null(input);
  memset(input, '\xE9', len);
  assert_int_equal(textconv_open("iso-8859-1", &conv, &err), AG_OK);
  assert_int_equal(
      textconv_convert(conv, input, len, true, &text, &text_len, &err), AG_OK);
  free(input);
  assert_int_equal(text_len, 2 * len);
  assert_memory_equal(text, "\xC3\xA9", 2);
  assert_memory_equal(text + 2 * len - 2, "\xC3\xA9", 2);
  assert_int_equal(textconv_offset(conv), len);
  textconv_close(conv);
}

static void empty_input(void **state)
{
  struct textconv *conv = NULL;
  struct ag_error err = {0};
  const char *text = NULL;
  size_t text_len = 1;
  (void)state;

  assert_int_equal(textconv_open("windows-1252", &conv, &err), AG_OK);
  assert_int_equal(textconv_convert(conv, "", 0, true, &text, &text_len, &err),
                   AG_OK);
  assert_int_equal(text_len, 0);
  assert_int_equal(textconv_offset(conv), 0);
  assert_string_equal(textconv_name(conv), "windows-1252");
  textconv_close(conv);
}

static void unknown_encoding(void **state)
{
  struct textconv *conv = NULL;
  struct ag_error err = {0};
  (void)state;

  assert_int_equal(textconv_open("no-such-encoding", &conv, &err), AG_ECONFIG);
  assert_null(conv);
#ifdef _WIN32
  assert_string_equal(err.message,
                      "cannot convert from 'no-such-encoding': no Windows "
                      "code page is known for this encoding");
#else
  assert_string_equal(err.message,
                      "cannot convert from 'no-such-encoding': the system's "
                      "iconv does not support this encoding");
#endif
  textconv_close(NULL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(encodings_exact_bytes),
      cmocka_unit_test(nul_and_controls_kept),
      cmocka_unit_test(undefined_byte_rejected),
      cmocka_unit_test(offset_counts_earlier_blocks),
      cmocka_unit_test(cut_sequence_carried),
      cmocka_unit_test(large_block),
      cmocka_unit_test(empty_input),
      cmocka_unit_test(unknown_encoding),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
