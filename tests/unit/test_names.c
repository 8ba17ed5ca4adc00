/* Unit tests for names.c: local file names, display copies, base64 and
 * remote path checks. */
#include "agent/names.h"

#include "agent/utf8.h"

#include <openssl/evp.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUFFIX ".3f2a9c01d4e5b677.json"

/* Input bytes and the expected result. Inputs with a NUL byte are tested
 * apart from the tables. */
struct name_case {
  const char *input;
  const char *expected;
};

/* A remote path and its expected local name without the suffix. tailed
 * marks a name that ends in '~' and 16 hex digits of the SHA-256 of the
 * path, because it keeps a letter whose case matters. */
struct local_case {
  const char *input;
  const char *expected;
  bool tailed;
};

/* Octal escapes such as "\001" stop after three digits, where a hex escape
 * would take the next letter. */
static const struct local_case name_cases[] = {
    {"x.xml", "x.xml", false},
    {"sub/x.xml", "sub%2Fx.xml", false},
    {"a:b*c?.xml", "a%3Ab%2Ac%3F.xml", false},
    {"back\\slash|\"<>.csv", "back%5Cslash%7C%22%3C%3E.csv", false},
    {"CON.xml", "%43ON.xml", true},
    {"con", "%63on", false},
    {"Con.xml", "%43on.xml", false},
    {"Lpt1.txt", "%4Cpt1.txt", false},
    {"COM9", "%43OM9", true},
    {"com0.xml", "%63om0.xml", false},
    {"nul.tar.gz", "%6Eul.tar.gz", false},
    {"aux", "%61ux", false},
    {"prn.csv", "%70rn.csv", false},
    {"CON .xml", "%43ON .xml", true},
    {"COM\xc2\xb9.txt", "%43OM\xc2\xb9.txt", true},
    {"lpt\xc2\xb3", "%6Cpt\xc2\xb3", true},
    {"CONSOLE.xml", "CONSOLE.xml", true},
    {"COM10.xml", "COM10.xml", true},
    {"LPT.xml", "LPT.xml", true},
    {"xCON.xml", "xCON.xml", true},
    {"sub/CON.xml", "sub%2FCON.xml", true},
    {"sub/con.xml", "sub%2Fcon.xml", false},
    {".hidden", "%2Ehidden", false},
    {"..", "%2E%2E", false},
    {".", "%2E", false},
    {"name.", "name%2E", false},
    {"name ", "name%20", false},
    {"name. ", "name.%20", false},
    {"name..", "name.%2E", false},
    {"a b.xml", "a b.xml", false},
    {"%41", "%2541", false},
    {"~", "%7E", false},
    {"a~b.xml", "a%7Eb.xml", false},
    {"invoic~1.xml", "invoic%7E1.xml", false},
    {"a\001b\037c\177", "a%01b%1Fc%7F", false},
    {"tab\there\nnewline", "tab%09here%0Anewline", false},
    {"\xff", "%FF", false},
    {"\xc3", "%C3", false},
    {"a\xc3", "a%C3", false},
    {"\xc3(", "%C3(", false},
    {"\xc0\xaf", "%C0%AF", false},
    {"\xed\xa0\x80", "%ED%A0%80", false},
    {"Invoice.xml", "Invoice.xml", true},
    {"invoice.XML", "invoice.XML", true},
    {"\xc5\xbe.xml", "\xc5\xbe.xml", true},
    {"\xc5\xbdlu\xc5\xa5ou\xc4\x8dk\xc3\xbd k\xc5\xaf\xc5\x88.xml",
     "\xc5\xbdlu\xc5\xa5ou\xc4\x8dk\xc3\xbd k\xc5\xaf\xc5\x88.xml", true},
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

/* Store the '~' and 16 hex digits expected after a shortened or tailed
 * name, NUL-terminated. */
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

static void local_file_table(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
    const struct local_case *c = &name_cases[i];
    char *name = names_local_file(c->input, strlen(c->input), SUFFIX);
    char expected[256];
    char tail[18] = "";

    if (c->tailed)
      expected_hash_tail(c->input, strlen(c->input), tail);
    snprintf(expected, sizeof(expected), "%s%s%s", c->expected, tail, SUFFIX);
    if (name == NULL || strcmp(name, expected) != 0)
      print_error("case %zu: expected '%s', got '%s'\n", i, expected,
                  name != NULL ? name : "(null)");
    assert_non_null(name);
    assert_string_equal(name, expected);
    free(name);
  }
}

/* Decoding the part before the tail gives the path back, and the tail is
 * the hash of the path. */
static void local_file_reversible(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
    const struct local_case *c = &name_cases[i];
    char *name = names_local_file(c->input, strlen(c->input), SUFFIX);
    size_t decoded_len = 0;

    assert_non_null(name);
    size_t stem = stem_length(name);
    const char *tilde = memchr(name, '~', stem);
    size_t body = tilde != NULL ? (size_t)(tilde - name) : stem;
    if (c->tailed) {
      char tail[18];

      expected_hash_tail(c->input, strlen(c->input), tail);
      assert_int_equal(stem - body, 17);
      assert_memory_equal(name + body, tail, 17);
    } else {
      assert_null(tilde);
    }
    unsigned char *decoded = percent_decode(name, body, &decoded_len);
    assert_int_equal(decoded_len, strlen(c->input));
    assert_memory_equal(decoded, c->input, strlen(c->input));
    free(decoded);
    free(name);
  }
}

/* Exact names for one content under paths that differ only in case. */
static void local_file_case_exact(void **state)
{
  (void)state;
  static const struct name_case cases[] = {
      {"invoice.xml", "invoice.xml" SUFFIX},
      {"Invoice.xml", "Invoice.xml~889e536893cf48fa" SUFFIX},
      {"INVOICE.XML", "INVOICE.XML~7bf0fd00c139b2fc" SUFFIX},
      {"\xc5\xbe.xml", "\xc5\xbe.xml~257097765ea4c67d" SUFFIX},
      {"\xc5\xbd.xml", "\xc5\xbd.xml~612c2b6e9c5d3ac8" SUFFIX},
      /* The tail that "ABC" gets, spelled out in a lowercase path. */
      {"abc~b5d4045c3f466fa9", "abc%7Eb5d4045c3f466fa9" SUFFIX},
      {"ABC", "ABC~b5d4045c3f466fa9" SUFFIX},
  };

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *name =
        names_local_file(cases[i].input, strlen(cases[i].input), SUFFIX);

    assert_non_null(name);
    assert_string_equal(name, cases[i].expected);
    free(name);
  }
}

/* Fold ASCII letters to lowercase, as NTFS does for ASCII names. */
static void fold_ascii(char *text)
{
  for (; *text != '\0'; text++) {
    if (*text >= 'A' && *text <= 'Z')
      *text = (char)(*text - 'A' + 'a');
  }
}

/* Paths that differ only in case, or that spell another path's escape or
 * tail, never give names that a case-insensitive file system confuses. */
static void local_file_case_insensitive_unique(void **state)
{
  (void)state;
  static const char *const paths[] = {
      "a.xml",       "A.xml",        "a.XML",        "A.XML",
      "con.xml",     "Con.xml",      "cON.xml",      "CON.xml",
      "%43on.xml",   "%63on.xml",    "a%7eb",        "a~b",
      "A~b",         "\xc5\xbe.xml", "\xc5\xbd.xml", "abc~b5d4045c3f466fa9",
      "ABC",         "abc",          "sub/a.xml",    "SUB/a.xml",
      "sub%2Fa.xml",
  };
  enum { COUNT = sizeof(paths) / sizeof(paths[0]) };
  char *names[COUNT];

  for (size_t i = 0; i < COUNT; i++) {
    names[i] = names_local_file(paths[i], strlen(paths[i]), SUFFIX);
    assert_non_null(names[i]);
    fold_ascii(names[i]);
  }
  for (size_t i = 0; i < COUNT; i++) {
    for (size_t j = i + 1; j < COUNT; j++) {
      if (strcmp(names[i], names[j]) == 0)
        print_error("'%s' and '%s' both give '%s'\n", paths[i], paths[j],
                    names[i]);
      assert_string_not_equal(names[i], names[j]);
    }
  }
  for (size_t i = 0; i < COUNT; i++)
    free(names[i]);
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
      cmocka_unit_test(local_file_case_exact),
      cmocka_unit_test(local_file_case_insensitive_unique),
      cmocka_unit_test(local_file_nul_byte),
      cmocka_unit_test(local_file_null_suffix),
      cmocka_unit_test(local_file_long_ascii),
      cmocka_unit_test(local_file_long_utf8_boundary),
      cmocka_unit_test(local_file_long_escapes_whole),
      cmocka_unit_test(local_file_long_names_differ),
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
