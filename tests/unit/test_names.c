/* Unit tests for names.c: local file names, display copies, base64 and
 * remote path checks. */
#include "agent/names.h"

#include "agent/utf8.h"

#include <openssl/evp.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SUFFIX ".3f2a9c01d4e5b677.json"

/* Input bytes and the expected result. Inputs with a NUL byte are tested
 * apart from the tables. */
struct name_case {
  const char *input;
  const char *expected;
};

/* Expected local names without the suffix. Octal escapes such as "\001"
 * stop after three digits, where a hex escape would take the next letter. */
static const struct name_case name_cases[] = {
    {"x.xml", "x.xml"},
    {"sub/x.xml", "sub%2Fx.xml"},
    {"a:b*c?.xml", "a%3Ab%2Ac%3F.xml"},
    {"back\\slash|\"<>.csv", "back%5Cslash%7C%22%3C%3E.csv"},
    {"CON.xml", "%43ON.xml"},
    {"con", "%63on"},
    {"Lpt1.txt", "%4Cpt1.txt"},
    {"COM9", "%43OM9"},
    {"com0.xml", "%63om0.xml"},
    {"nul.tar.gz", "%6Eul.tar.gz"},
    {"CON .xml", "%43ON .xml"},
    {"COM\xc2\xb9.txt", "%43OM\xc2\xb9.txt"},
    {"CONSOLE.xml", "CONSOLE.xml"},
    {"COM10.xml", "COM10.xml"},
    {"LPT.xml", "LPT.xml"},
    {"xCON.xml", "xCON.xml"},
    {"sub/CON.xml", "sub%2FCON.xml"},
    {".hidden", "%2Ehidden"},
    {"..", "%2E%2E"},
    {".", "%2E"},
    {"name.", "name%2E"},
    {"name ", "name%20"},
    {"name. ", "name.%20"},
    {"a b.xml", "a b.xml"},
    {"%41", "%2541"},
    {"a\001b\037c\177", "a%01b%1Fc%7F"},
    {"tab\there\nnewline", "tab%09here%0Anewline"},
    {"\xff", "%FF"},
    {"\xc3", "%C3"},
    {"a\xc3", "a%C3"},
    {"\xc3(", "%C3("},
    {"\xc0\xaf", "%C0%AF"},
    {"\xed\xa0\x80", "%ED%A0%80"},
    {"\xc5\xbdlu\xc5\xa5ou\xc4\x8dk\xc3\xbd k\xc5\xaf\xc5\x88.xml",
     "\xc5\xbdlu\xc5\xa5ou\xc4\x8dk\xc3\xbd k\xc5\xaf\xc5\x88.xml"},
};

static int hex_value(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Percent-decode text into a malloc'd buffer and store its length. */
static unsigned char *percent_decode(const char *text, size_t len,
                                     size_t *out_len)
{
  unsigned char *out = malloc(len + 1);
  size_t used = 0;

  assert_non_null(out);
  for (size_t i = 0; i < len; i++) {
    if (text[i] == '%') {
      assert_true(i + 2 < len);
      int high = hex_value(text[i + 1]);
      int low = hex_value(text[i + 2]);
      assert_true(high >= 0 && low >= 0);
      out[used++] = (unsigned char)(high * 16 + low);
      i += 2;
    } else {
      out[used++] = (unsigned char)text[i];
    }
  }
  *out_len = used;
  return out;
}

/* Return the length of name without SUFFIX, after checking that it ends
 * with SUFFIX. */
static size_t stem_length(const char *name)
{
  size_t len = strlen(name);
  size_t suffix_len = strlen(SUFFIX);

  assert_true(len >= suffix_len);
  assert_string_equal(name + len - suffix_len, SUFFIX);
  return len - suffix_len;
}

/* Return the '~' and 16 hex digits of the SHA-256 of data. */
static void expected_hash_tail(const void *data, size_t len, char tail[18])
{
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;

  assert_int_equal(
      EVP_Digest(data, len, digest, &digest_len, EVP_sha256(), NULL), 1);
  tail[0] = '~';
  for (size_t i = 0; i < 8; i++)
    snprintf(tail + 1 + 2 * i, 3, "%02x", digest[i]);
}

/* Return whether an expected escaped name keeps a character that has
 * another case (an ASCII capital outside the %XX escapes, or a non-ASCII
 * character), which gives a short name the hash tail. */
static bool has_case(const char *escaped)
{
  for (size_t i = 0; escaped[i] != '\0'; i++) {
    unsigned char byte = (unsigned char)escaped[i];

    if (byte == '%')
      i += 2;
    else if ((byte >= 'A' && byte <= 'Z') || byte >= 0x80)
      return true;
  }
  return false;
}

static void local_file_table(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
    const struct name_case *c = &name_cases[i];
    char *name = names_local_file(c->input, strlen(c->input), SUFFIX);
    char expected[256];
    char tail[18] = "";

    if (has_case(c->expected))
      expected_hash_tail(c->input, strlen(c->input), tail);
    snprintf(expected, sizeof(expected), "%s%.17s%s", c->expected, tail,
             SUFFIX);
    if (name == NULL || strcmp(name, expected) != 0)
      print_error("case %zu: expected '%s', got '%s'\n", i, expected,
                  name != NULL ? name : "(null)");
    assert_non_null(name);
    assert_string_equal(name, expected);
    free(name);
  }
}

static void local_file_reversible(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
    const struct name_case *c = &name_cases[i];
    char *name = names_local_file(c->input, strlen(c->input), SUFFIX);
    size_t decoded_len = 0;

    assert_non_null(name);
    size_t stem = stem_length(name) - (has_case(c->expected) ? 17 : 0);
    unsigned char *decoded = percent_decode(name, stem, &decoded_len);
    assert_int_equal(decoded_len, strlen(c->input));
    assert_memory_equal(decoded, c->input, strlen(c->input));
    free(decoded);
    free(name);
  }
}

static void local_file_nul_byte(void **state)
{
  (void)state;
  char *name = names_local_file("a\0b", 3, SUFFIX);

  assert_non_null(name);
  assert_string_equal(name, "a%00b" SUFFIX);
  free(name);
}

static void local_file_null_suffix(void **state)
{
  (void)state;
  char *name = names_local_file("a/b", 3, NULL);

  assert_non_null(name);
  assert_string_equal(name, "a%2Fb");
  free(name);
}

static void local_file_long_ascii(void **state)
{
  (void)state;
  char input[300];
  char tail[18];

  memset(input, 'a', sizeof(input));
  char *name = names_local_file(input, sizeof(input), SUFFIX);
  assert_non_null(name);

  size_t stem = stem_length(name);
  assert_int_equal(stem, 200 + 17);
  for (size_t i = 0; i < 200; i++)
    assert_int_equal(name[i], 'a');
  expected_hash_tail(input, sizeof(input), tail);
  assert_memory_equal(name + 200, tail, 17);
  free(name);
}

static void local_file_long_utf8_boundary(void **state)
{
  (void)state;
  /* "x" and 150 two-byte characters: 301 bytes, and byte 200 is in the
   * middle of a character, so the cut must stop at 199. */
  char input[301];

  input[0] = 'x';
  for (size_t i = 0; i < 150; i++) {
    input[1 + 2 * i] = '\xc5';
    input[2 + 2 * i] = '\xbe';
  }
  char *name = names_local_file(input, sizeof(input), SUFFIX);
  assert_non_null(name);

  size_t stem = stem_length(name);
  assert_true(stem <= 200 + 17);
  assert_int_equal(stem, 199 + 17);
  assert_memory_equal(name, input, 199);
  assert_int_equal(name[199], '~');
  assert_true(utf8_valid(name, strlen(name), NULL));
  free(name);
}

static void local_file_long_escapes_whole(void **state)
{
  (void)state;
  /* 100 '%' bytes escape to 300 bytes. The cut must keep whole "%25"
   * escapes: 66 of them are 198 bytes. */
  char input[100];

  memset(input, '%', sizeof(input));
  char *name = names_local_file(input, sizeof(input), SUFFIX);
  assert_non_null(name);

  size_t stem = stem_length(name);
  assert_int_equal(stem, 198 + 17);
  for (size_t i = 0; i < 198; i += 3)
    assert_memory_equal(name + i, "%25", 3);
  assert_int_equal(name[198], '~');
  free(name);
}

static void local_file_long_names_differ(void **state)
{
  (void)state;
  char first[300];
  char second[300];

  memset(first, 'b', sizeof(first));
  memcpy(second, first, sizeof(second));
  second[299] = 'c';
  char *first_name = names_local_file(first, sizeof(first), SUFFIX);
  char *second_name = names_local_file(second, sizeof(second), SUFFIX);

  assert_non_null(first_name);
  assert_non_null(second_name);
  assert_string_not_equal(first_name, second_name);
  assert_int_equal(strlen(first_name), strlen(second_name));
  free(first_name);
  free(second_name);
}

static void local_file_case_apart(void **state)
{
  (void)state;
  /* Names that one case-insensitive file system would take as one file
   * get names that differ in more than case. */
  static const char *const names[] = {"Same.xml", "same.xml", "SAME.XML",
                                      "\xc3\x89t\xc3\xa9.xml",
                                      "\xc3\xa9t\xc3\xa9.xml"};
  char *local[5];

  for (size_t i = 0; i < 5; i++) {
    local[i] = names_local_file(names[i], strlen(names[i]), SUFFIX);
    assert_non_null(local[i]);
  }
  for (size_t i = 0; i < 5; i++) {
    for (size_t j = i + 1; j < 5; j++)
      assert_true(strcasecmp(local[i], local[j]) != 0);
  }
  assert_string_equal(local[1], "same.xml" SUFFIX);
  for (size_t i = 0; i < 5; i++)
    free(local[i]);
}

static void local_file_limit_exact(void **state)
{
  (void)state;
  char input[201];

  /* 200 escaped bytes fit as they are; 201 get the hash. */
  memset(input, 'q', sizeof(input));
  char *fits = names_local_file(input, 200, "");
  char *cut = names_local_file(input, 201, "");

  assert_non_null(fits);
  assert_non_null(cut);
  assert_int_equal(strlen(fits), 200);
  assert_memory_equal(fits, input, 200);
  assert_int_equal(strlen(cut), 200 + 17);
  assert_int_equal(cut[200], '~');
  free(fits);
  free(cut);
}

/* ---- names_display ---- */

static void display_cases(void **state)
{
  (void)state;
  static const struct name_case cases[] = {
      {"plain.xml", "plain.xml"},
      {"a\377b", "a%FFb"},
      {"ab\xc5", "ab%C5"},
      {"\xc0\xaf", "%C0%AF"},
      {"100%.xml", "100%.xml"},
      {"tab\t", "tab\t"},
      {"\xc5\xbdlu\xc5\xa5", "\xc5\xbdlu\xc5\xa5"},
      {"", ""},
  };

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *displayed = names_display(cases[i].input, strlen(cases[i].input));

    if (displayed == NULL || strcmp(displayed, cases[i].expected) != 0)
      print_error("case %zu: expected '%s', got '%s'\n", i, cases[i].expected,
                  displayed != NULL ? displayed : "(null)");
    assert_non_null(displayed);
    assert_string_equal(displayed, cases[i].expected);
    assert_true(utf8_valid(displayed, strlen(displayed), NULL));
    free(displayed);
  }
}

static void display_nul_byte(void **state)
{
  (void)state;
  char *displayed = names_display("a\0b", 3);

  assert_non_null(displayed);
  assert_string_equal(displayed, "a%00b");
  free(displayed);
}

/* ---- names_base64 ---- */

static void base64_rfc4648_vectors(void **state)
{
  (void)state;
  static const struct name_case cases[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *encoded = names_base64(cases[i].input, strlen(cases[i].input));

    assert_non_null(encoded);
    assert_string_equal(encoded, cases[i].expected);
    free(encoded);
  }
}

static void base64_binary_bytes(void **state)
{
  (void)state;
  char *encoded = names_base64("\0\xff\xfe", 3);

  assert_non_null(encoded);
  assert_string_equal(encoded, "AP/+");
  free(encoded);
}

/* ---- names_remote_relative_ok ---- */

static void remote_relative_accepted(void **state)
{
  (void)state;
  static const char *const paths[] = {
      "a", "a/b", "sub/dir/x.xml", "...", ".a", "a..b", "a/.x", "a/..b",
  };

  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    if (!names_remote_relative_ok(paths[i], strlen(paths[i])))
      print_error("rejected '%s'\n", paths[i]);
    assert_true(names_remote_relative_ok(paths[i], strlen(paths[i])));
  }
}

static void remote_relative_rejected(void **state)
{
  (void)state;
  static const char *const paths[] = {
      "/a",     "a/",   "a//b", ".",   "..", "a/./b",
      "a/../b", "../a", "a/..", "a/.", "/",
  };

  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    if (names_remote_relative_ok(paths[i], strlen(paths[i])))
      print_error("accepted '%s'\n", paths[i]);
    assert_false(names_remote_relative_ok(paths[i], strlen(paths[i])));
  }
  assert_false(names_remote_relative_ok("", 0));
  assert_false(names_remote_relative_ok("a\0b", 3));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(local_file_table),
      cmocka_unit_test(local_file_reversible),
      cmocka_unit_test(local_file_nul_byte),
      cmocka_unit_test(local_file_null_suffix),
      cmocka_unit_test(local_file_long_ascii),
      cmocka_unit_test(local_file_long_utf8_boundary),
      cmocka_unit_test(local_file_long_escapes_whole),
      cmocka_unit_test(local_file_long_names_differ),
      cmocka_unit_test(local_file_case_apart),
      cmocka_unit_test(local_file_limit_exact),
      cmocka_unit_test(display_cases),
      cmocka_unit_test(display_nul_byte),
      cmocka_unit_test(base64_rfc4648_vectors),
      cmocka_unit_test(base64_binary_bytes),
      cmocka_unit_test(remote_relative_accepted),
      cmocka_unit_test(remote_relative_rejected),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
