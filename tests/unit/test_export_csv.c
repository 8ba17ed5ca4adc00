/* Unit tests for export_csv.c: the sample CSV exports described in
 * tests/data/README.md, line endings, quoting, header rules and broken
 * files. */
#include "agent/export.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A sink that collects every record into a JSON array. */
struct collector {
  int begin_calls;
  char list_name[32];
  json_t *items;
  int fail_after; /* item calls before returning an error, or -1 */
};

static enum ag_code collect_begin(void *ctx, const char *list_name,
                                  struct ag_error *err)
{
  struct collector *collector = ctx;

  (void)err;
  collector->begin_calls++;
  snprintf(collector->list_name, sizeof(collector->list_name), "%s", list_name);
  return AG_OK;
}

static enum ag_code collect_item(void *ctx, json_t *item, struct ag_error *err)
{
  struct collector *collector = ctx;

  if (collector->fail_after >= 0 &&
      json_array_size(collector->items) >= (size_t)collector->fail_after)
    return ag_error_set(err, AG_ELOCAL, "sink is full");
  json_array_append(collector->items, item);
  return AG_OK;
}

struct parse_result {
  enum ag_code code;
  struct ag_error err;
  struct collector collector;
};

static void parse_file_until(const char *path, int fail_after,
                             struct parse_result *result)
{
  struct export_sink sink = {collect_begin, collect_item, NULL};

  memset(result, 0, sizeof(*result));
  result->collector.items = json_array();
  result->collector.fail_after = fail_after;
  sink.ctx = &result->collector;
  result->code = export_parse_csv(path, &sink, &result->err);
}

static void parse_file(const char *path, struct parse_result *result)
{
  parse_file_until(path, -1, result);
}

static void parse_sample(const char *name, struct parse_result *result)
{
  char path[1024];

  snprintf(path, sizeof(path), "%s/%s", TEST_DATA_DIR, name);
  parse_file(path, result);
}

/* Write len bytes to a new temporary file and parse it. */
static void parse_bytes(const char *bytes, size_t len,
                        struct parse_result *result)
{
  char path[] = "/tmp/test_export_csv.XXXXXX";
  int fd = mkstemp(path);

  assert_true(fd >= 0);
  assert_int_equal(write(fd, bytes, len), (ssize_t)len);
  close(fd);
  parse_file(path, result);
  unlink(path);
}

static void parse_text(const char *text, struct parse_result *result)
{
  parse_bytes(text, strlen(text), result);
}

static void release(struct parse_result *result)
{
  json_decref(result->collector.items);
}

static json_t *record(struct parse_result *result, size_t index)
{
  json_t *item = json_array_get(result->collector.items, index);

  assert_non_null(item);
  return item;
}

static size_t record_count(struct parse_result *result)
{
  return json_array_size(result->collector.items);
}

/* Return the string at object[key], failing the test if it is not one. */
static const char *text_of(json_t *object, const char *key)
{
  json_t *value = json_object_get(object, key);

  if (!json_is_string(value))
    fail_msg("\"%s\" is not a string", key);
  return json_string_value(value);
}

/* Check that the record's keys are exactly keys, in that order. */
static void assert_keys(json_t *item, const char *const *keys, size_t count)
{
  size_t i = 0;
  const char *key;
  json_t *value;

  json_object_foreach(item, key, value)
  {
    (void)value;
    assert_true(i < count);
    assert_string_equal(key, keys[i]);
    i++;
  }
  assert_int_equal(i, count);
}

/* Check a record's values in column order. */
static void assert_values(json_t *item, const char *const *keys,
                          const char *const *values, size_t count)
{
  for (size_t i = 0; i < count; i++)
    assert_string_equal(text_of(item, keys[i]), values[i]);
}

static void assert_failure(struct parse_result *result, enum ag_code code,
                           const char *message_part)
{
  assert_int_equal(result->code, code);
  assert_int_equal(result->err.code, code);
  if (strstr(result->err.message, message_part) == NULL)
    fail_msg("message \"%s\" lacks \"%s\"", result->err.message, message_part);
}

/* --- samples --- */

static const char *const single_header[16] = {
    "Invoice number", "Issue date",    "Due date",          "PO number",
    "Vendor name",    "Customer name", "Total without tax", "Tax total",
    "Total amount",   "Currency",      "Item code",         "Description",
    "Quantity",       "Unit",          "Unit price",        "Line total"};

static void single_sample(void **state)
{
  static const char *const first[16] = {"2024-0042",
                                        "2024-10-28",
                                        "2024-11-27",
                                        "PO-77801",
                                        "Bluefin Office Supplies B.V.",
                                        "Acme Demo s.r.o.",
                                        "1250.00",
                                        "262.50",
                                        "1512.50",
                                        "eur",
                                        "PAP-A4-80",
                                        "Copy paper A4 80 g/m2, 500 sheets",
                                        "100",
                                        "pack",
                                        "4.50",
                                        "450.00"};
  static const char *const second[16] = {"2024-0042",
                                         "2024-10-28",
                                         "2024-11-27",
                                         "PO-77801",
                                         "Bluefin Office Supplies B.V.",
                                         "Acme Demo s.r.o.",
                                         "1250.00",
                                         "262.50",
                                         "1512.50",
                                         "eur",
                                         "TNR-K-220",
                                         "Toner cartridge black K220",
                                         "8",
                                         "pcs",
                                         "100.00",
                                         "800.00"};
  struct parse_result result;
  (void)state;

  parse_sample("rossum_export_single.csv", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result.collector.begin_calls, 1);
  assert_string_equal(result.collector.list_name, "records");
  assert_int_equal(record_count(&result), 2);

  assert_keys(record(&result, 0), single_header, 16);
  assert_values(record(&result, 0), single_header, first, 16);
  assert_keys(record(&result, 1), single_header, 16);
  assert_values(record(&result, 1), single_header, second, 16);
  release(&result);
}

static const char *const multi_header[21] = {"meta_file_name",
                                             "Invoice number",
                                             "Issue date",
                                             "Due date",
                                             "PO number",
                                             "Vendor name",
                                             "Vendor VAT number",
                                             "Customer name",
                                             "Total without tax",
                                             "Tax total",
                                             "Total amount",
                                             "Currency",
                                             "Notes",
                                             "Item code",
                                             "Description",
                                             "Quantity",
                                             "Unit",
                                             "Unit price",
                                             "Line total",
                                             "meta_status",
                                             "meta_url"};

static void multi_sample(void **state)
{
  static const char *const freight[21] = {
      "NFF_2024_10_0917.pdf",
      "NFF/2024/10/0917",
      "2024-10-31",
      "2024-11-30",
      "PO-88120",
      "Northwind Freight Forwarding",
      "",
      "Acme Demo Inc.",
      "2850.00",
      "0.00",
      "2850.00",
      "usd",
      "",
      "",
      "Ocean freight Rotterdam - Newark, 1x40HC",
      "1",
      "",
      "2850.00",
      "2850.00",
      "confirmed",
      "https://acme-demo.rossum.app/api/v1/annotations/4410022"};
  static const char *const subscription[21] = {
      "Quillon invoice QS-INV-5531.pdf",
      "QS-INV-5531",
      "2024-11-01",
      "",
      "",
      "Quillon Software Inc.",
      "IE0000000QS",
      "Acme Demo s.r.o.",
      "1999.00",
      "399.80",
      "2398.80",
      "eur",
      "Annual subscription; 25 seats, billed yearly",
      "",
      "",
      "",
      "",
      "",
      "",
      "exported",
      "https://acme-demo.rossum.app/api/v1/annotations/4410023"};
  struct parse_result result;
  (void)state;

  parse_sample("rossum_export_multi.csv", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result.collector.begin_calls, 1);
  assert_int_equal(record_count(&result), 5);
  for (size_t i = 0; i < 5; i++)
    assert_keys(record(&result, i), multi_header, 21);

  json_t *first = record(&result, 0);
  assert_string_equal(text_of(first, "Invoice number"), "GC-118230");
  assert_string_equal(text_of(first, "Description"),
                      "Sandwich platter (12 pcs)");
  assert_string_equal(text_of(first, "Quantity"), "4");
  assert_string_equal(text_of(first, "Line total"), "144.00");
  assert_string_equal(text_of(first, "Total amount"), "394.80");
  assert_string_equal(text_of(first, "Notes"), "");
  assert_string_equal(text_of(record(&result, 1), "Description"),
                      "Fresh fruit bowl");
  assert_string_equal(text_of(record(&result, 2), "Line total"), "110.00");
  assert_values(record(&result, 3), multi_header, freight, 21);
  assert_values(record(&result, 4), multi_header, subscription, 21);
  release(&result);
}

static void bom_quoted_sample(void **state)
{
  static const char *const header[19] = {
      "meta_file_name", "Invoice number", "Document type",
      "Issue date",     "Due date",       "Vendor name",
      "Vendor address", "Customer name",  "Total without tax",
      "Tax total",      "Total amount",   "Currency",
      "Notes",          "Item code",      "Description",
      "Quantity",       "Unit price",     "Line total",
      "meta_url"};
  static const char address[] =
      "N\xC3\xA1m\xC4\x9Bst\xC3\xAD M\xC3\xADru 1234/56\n120 00 Praha 2\n"
      "\xC4\x8C"
      "esk\xC3\xA1 republika";
  static const char notes[] =
      "Dod\xC3\xA1vka dle obj. \xC4\x8D. 42 \xE2\x80\x93 \"expres\" "
      "<urgentn\xC3\xAD> & 5 % sleva; splatnost 14 dn\xC3\xAD, cena "
      "1 234,50 \xE2\x82\xAC";
  struct parse_result result;
  (void)state;

  parse_sample("rossum_export_bom_quoted.csv", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(record_count(&result), 3);
  for (size_t i = 0; i < 3; i++)
    assert_keys(record(&result, i), header, 19);

  json_t *first = record(&result, 0);
  assert_string_equal(text_of(first, "meta_file_name"),
                      "Faktura FV-2024-0815 (kopie).pdf");
  assert_string_equal(text_of(first, "Vendor name"),
                      "\xC5\xBDlu\xC5\xA5ou\xC4\x8Dk\xC3\xBD k\xC5\xAF\xC5\x88 "
                      "s.r.o.");
  assert_string_equal(text_of(first, "Vendor address"), address);
  assert_string_equal(text_of(first, "Customer name"),
                      "M\xC3\xBCller & S\xC3\xB6hne GmbH");
  assert_string_equal(text_of(first, "Notes"), notes);
  assert_string_equal(text_of(first, "Item code"), "\xC5\xA0R-PH2-6");
  assert_string_equal(text_of(first, "Description"),
                      "\xC5\xA0roubov\xC3\xA1k k\xC5\x99\xC3\xAD\xC5\xBEov"
                      "\xC3\xBD PH2 \xE2\x80\x93 sada 6 ks, \"Profi\"");
  assert_string_equal(text_of(first, "Total amount"), "2870.12");
  assert_string_equal(text_of(first, "Due date"), "");
  assert_string_equal(
      text_of(first, "meta_url"),
      "https://acme-demo.rossum.app/api/v1/annotations/4410031");

  json_t *second = record(&result, 1);
  assert_string_equal(text_of(second, "Notes"), notes);
  assert_string_equal(text_of(second, "Item code"), "");
  assert_string_equal(text_of(second, "Description"),
                      "Mont\xC3\xA1\xC5\xBEn\xC3\xAD pr\xC3\xA1"
                      "ce (hod.)");
  assert_string_equal(text_of(second, "Quantity"), "2.5");

  json_t *third = record(&result, 2);
  assert_string_equal(text_of(third, "Document type"), "credit_note");
  assert_string_equal(text_of(third, "Vendor address"),
                      "12 rue de l'Exemple\n69002 Lyon\nFrance");
  assert_string_equal(text_of(third, "Total amount"), "-144.00");
  assert_string_equal(text_of(third, "Total without tax"), "-120.00");
  assert_string_equal(text_of(third, "Notes"),
                      "Remboursement de l'acompte (120,00 \xE2\x82\xAC) "
                      "\xE2\x80\x93 annulation du 03/11");
  assert_string_equal(
      text_of(third, "Description"),
      "Remboursement acompte \xC2\xAB r\xC3\xA9servation salle \xC2\xBB");
  assert_string_equal(
      text_of(third, "meta_url"),
      "https://acme-demo.rossum.app/api/v1/annotations/4410032");
  release(&result);
}

/* --- layout rules --- */

static void line_endings_agree(void **state)
{
  static const char *const inputs[] = {
      "a,b\r\n1,2\r\n3,4\r\n",   /* CRLF */
      "a,b\n1,2\n3,4\n",         /* LF */
      "a,b\n1,2\r\n3,4",         /* mixed, no final newline */
      "a,b\r\n1,2\r\n3,4",       /* CRLF, no final newline */
      "a,b\n\n1,2\n\r\n3,4\n\n", /* blank lines */
  };
  static const char *const keys[] = {"a", "b"};
  static const char *const first[] = {"1", "2"};
  static const char *const second[] = {"3", "4"};
  (void)state;

  for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
    struct parse_result result;
    parse_text(inputs[i], &result);
    assert_int_equal(result.code, AG_OK);
    assert_int_equal(record_count(&result), 2);
    assert_keys(record(&result, 0), keys, 2);
    assert_values(record(&result, 0), keys, first, 2);
    assert_values(record(&result, 1), keys, second, 2);
    release(&result);
  }
}

static void quoted_values_kept(void **state)
{
  static const char *const keys[] = {"a", "b", "c"};
  struct parse_result result;
  (void)state;

  parse_text("a,b,c\r\n"
             "\"x\r\ny\",\"say \"\"hi\"\", then, go\", \t padded \r\n"
             "\"\",,\"\"\"\"\r\n",
             &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(record_count(&result), 2);

  json_t *first = record(&result, 0);
  assert_keys(first, keys, 3);
  assert_string_equal(text_of(first, "a"), "x\r\ny");
  assert_string_equal(text_of(first, "b"), "say \"hi\", then, go");
  assert_string_equal(text_of(first, "c"), " \t padded ");

  json_t *second = record(&result, 1);
  assert_string_equal(text_of(second, "a"), "");
  assert_string_equal(text_of(second, "b"), "");
  assert_string_equal(text_of(second, "c"), "\"");
  release(&result);
}

static void header_only(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("a,b\r\n", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result.collector.begin_calls, 1);
  assert_string_equal(result.collector.list_name, "records");
  assert_int_equal(record_count(&result), 0);
  release(&result);

  parse_bytes("\xEF\xBB\xBF"
              "a",
              4, &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result.collector.begin_calls, 1);
  release(&result);
}

static void trailing_empty_header_cell(void **state)
{
  static const char *const keys[] = {"a", "b"};
  struct parse_result result;
  (void)state;

  parse_text("a,b,\r\n1,2\r\n3,4,\r\n", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(record_count(&result), 2);
  assert_keys(record(&result, 0), keys, 2);
  assert_keys(record(&result, 1), keys, 2);
  assert_string_equal(text_of(record(&result, 1), "b"), "4");
  release(&result);

  parse_text("a,b,\r\n1,2\r\n3,4,5\r\n", &result);
  assert_failure(&result, AG_EPARSE,
                 "line 3: field 3 has a value, but its header cell is empty");
  release(&result);

  parse_text("a,b,\r\n1\r\n", &result);
  assert_failure(&result, AG_EPARSE,
                 "line 2: found 1 fields, expected 2 or 3 as in the header");
  release(&result);
}

static void bom_only_first(void **state)
{
  struct parse_result result;
  (void)state;

  /* A BOM later in the file is data, not stripped. */
  parse_text("\xEF\xBB\xBF"
             "a\r\n\xEF\xBB\xBF"
             "x\r\n",
             &result);
  assert_int_equal(result.code, AG_OK);
  assert_string_equal(text_of(record(&result, 0), "a"), "\xEF\xBB\xBF"
                                                        "x");
  release(&result);
}

static void long_file_blocks(void **state)
{
  /* More than three 64 KiB read blocks, so rows continue across block
   * boundaries. */
  const size_t rows = 20000;
  struct parse_result result;
  (void)state;

  size_t size = 16 + rows * 16;
  char *text = malloc(size);
  assert_non_null(text);
  size_t len = (size_t)snprintf(text, size, "n,v\n");
  for (size_t i = 0; i < rows; i++)
    len +=
        (size_t)snprintf(text + len, size - len, "%zu,\xC3\xA9t\xC3\xA9\n", i);
  parse_bytes(text, len, &result);
  free(text);

  assert_int_equal(result.code, AG_OK);
  assert_int_equal(record_count(&result), rows);
  for (size_t i = 0; i < rows; i++)
    assert_string_equal(text_of(record(&result, i), "v"), "\xC3\xA9t\xC3\xA9");
  assert_string_equal(text_of(record(&result, rows - 1), "n"), "19999");
  release(&result);
}

static void block_cuts_character(void **state)
{
  /* The first 64 KiB block ends after the first byte of "é". */
  const size_t size = 2 + 65533 + 2 + 1;
  struct parse_result result;
  (void)state;

  char *text = malloc(size);
  assert_non_null(text);
  memcpy(text, "v\n", 2);
  memset(text + 2, 'x', 65533);
  memcpy(text + 2 + 65533, "\xC3\xA9\n", 3);
  parse_bytes(text, size, &result);
  free(text);

  assert_int_equal(result.code, AG_OK);
  assert_int_equal(record_count(&result), 1);
  const char *value = text_of(record(&result, 0), "v");
  assert_int_equal(strlen(value), 65535);
  assert_string_equal(value + 65533, "\xC3\xA9");
  release(&result);
}

/* --- broken files --- */

static void wrong_field_count(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("a,b,c\r\n1,2,3\r\n1,2\r\n", &result);
  assert_failure(&result, AG_EPARSE,
                 "line 3: found 2 fields, expected 3 as in the header");
  assert_int_equal(record_count(&result), 1);
  release(&result);

  parse_text("a,b\n1,2,3\n", &result);
  assert_failure(&result, AG_EPARSE,
                 "line 2: found 3 fields, expected 2 as in the header");
  release(&result);

  /* The line is where the row starts, after a multi-line value and
   * blank lines. */
  parse_text("a,b\r\n\"x\r\ny\r\nz\",1\r\n\r\n\r\n1,2,3\r\n", &result);
  assert_failure(&result, AG_EPARSE, "line 7: found 3 fields");
  release(&result);

  parse_text("a,b\n1,\"multi\nline\",3\n", &result);
  assert_failure(&result, AG_EPARSE, "line 2: found 3 fields");
  release(&result);
}

static void bad_header(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("a,,c\r\n1,2,3\r\n", &result);
  assert_failure(&result, AG_EPARSE, "line 1: header column 2 is empty");
  release(&result);

  parse_text("\r\n\r\nid,name,id\r\n1,2,3\r\n", &result);
  assert_failure(&result, AG_EPARSE,
                 "line 3: header column 3 repeats the name \"id\" of "
                 "column 1");
  release(&result);

  parse_text("\"\"\r\n1\r\n", &result);
  assert_failure(&result, AG_EPARSE, "line 1: header column 1 is empty");
  release(&result);

  parse_text("a,b,,\r\n1,2\r\n", &result);
  assert_failure(&result, AG_EPARSE, "line 1: header column 3 is empty");
  release(&result);
}

static void invalid_utf8_offset(void **state)
{
  static const char latin1[] = "a,b\r\n1,M\xFCller\r\n";
  static const char truncated[] = "a,b\r\n1,\xC3";
  struct parse_result result;
  (void)state;

  parse_bytes(latin1, sizeof(latin1) - 1, &result);
  assert_failure(&result, AG_EPARSE, "line 2, byte offset 8: invalid UTF-8");
  release(&result);

  parse_bytes(truncated, sizeof(truncated) - 1, &result);
  assert_failure(&result, AG_EPARSE, "line 2, byte offset 7: invalid UTF-8");
  release(&result);

  /* The offset counts the BOM, so it matches the file's bytes. */
  parse_bytes("\xEF\xBB\xBF"
              "a\n\xED\xA0\x80\n",
              9, &result);
  assert_failure(&result, AG_EPARSE, "line 2, byte offset 5: invalid UTF-8");
  release(&result);
}

static void invalid_utf8_after_block(void **state)
{
  /* An invalid byte past the first 64 KiB block, right after a valid
   * character that the block boundary cuts (bytes 65535 and 65536). */
  const size_t size = 70000;
  struct parse_result result;
  (void)state;

  char *text = malloc(size);
  assert_non_null(text);
  memset(text, 'x', size);
  memcpy(text, "v\n", 2);
  text[65535] = '\xC3';
  text[65536] = '\xA9';
  text[65537] = '\xFF';
  parse_bytes(text, size, &result);
  free(text);

  assert_failure(&result, AG_EPARSE,
                 "line 2, byte offset 65537: invalid UTF-8");
  release(&result);
}

static void malformed_quotes(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("a,b\r\n1,x\"y\r\n", &result);
  assert_failure(&result, AG_EPARSE, "line 2, byte offset 8: misplaced quote");
  release(&result);

  parse_text("a,b\r\n1,\"x\"y\r\n", &result);
  assert_failure(&result, AG_EPARSE, "line 2, byte offset 10: misplaced quote");
  release(&result);

  parse_text("a,b\r\n1,2\r\n3,\"open\r\nstill open\r\n", &result);
  assert_failure(&result, AG_EPARSE,
                 "the quoted field in the row that starts on line 3 is not "
                 "closed at the end of the file");
  release(&result);
}

static void empty_input(void **state)
{
  struct parse_result result;
  (void)state;

  parse_bytes("", 0, &result);
  assert_failure(&result, AG_EPARSE, "empty file");
  assert_int_equal(result.collector.begin_calls, 0);
  release(&result);

  parse_text("\r\n\n\r\n", &result);
  assert_failure(&result, AG_EPARSE, "no header row");
  release(&result);

  parse_bytes("\xEF\xBB\xBF", 3, &result);
  assert_failure(&result, AG_EPARSE, "no header row");
  release(&result);
}

static void field_too_long(void **state)
{
  /* The limit is 10,000,000 bytes per field. */
  const size_t value_len = 10000001;
  struct parse_result result;
  (void)state;

  char *text = malloc(value_len + 16);
  assert_non_null(text);
  memcpy(text, "a\n\"", 3);
  memset(text + 3, 'x', value_len);
  memcpy(text + 3 + value_len, "\"\n", 2);
  parse_bytes(text, value_len + 5, &result);
  assert_failure(&result, AG_EPARSE,
                 "line 2: field 1 is longer than 10000000 bytes");
  release(&result);

  /* A quoted field that never ends is stopped while it grows. */
  memset(text + 3 + value_len, 'x', 2);
  size_t runaway_len = value_len + 5;
  char *runaway = realloc(text, runaway_len + 200000);
  assert_non_null(runaway);
  memset(runaway + runaway_len, 'y', 200000);
  parse_bytes(runaway, runaway_len + 200000, &result);
  free(runaway);
  assert_failure(&result, AG_EPARSE,
                 "line 2: field longer than 10000000 bytes");
  release(&result);
}

static void too_many_columns(void **state)
{
  /* The limit is 10,000 header columns. */
  const size_t columns = 10001;
  struct parse_result result;
  (void)state;

  size_t size = columns * 8 + 16;
  char *text = malloc(size);
  assert_non_null(text);
  size_t len = 0;
  for (size_t i = 0; i < columns; i++)
    len += (size_t)snprintf(text + len, size - len, "%sc%zu", i == 0 ? "" : ",",
                            i);
  len += (size_t)snprintf(text + len, size - len, "\n");
  parse_bytes(text, len, &result);
  free(text);
  assert_failure(&result, AG_EPARSE,
                 "line 1: the header has more than 10000 columns");
  release(&result);
}

static void sink_error_stops(void **state)
{
  struct parse_result result;
  char path[1024];
  (void)state;

  snprintf(path, sizeof(path), "%s/%s", TEST_DATA_DIR,
           "rossum_export_multi.csv");
  parse_file_until(path, 2, &result);
  assert_failure(&result, AG_ELOCAL, "sink is full");
  assert_int_equal(record_count(&result), 2);
  release(&result);
}

static void missing_file(void **state)
{
  struct parse_result result;
  (void)state;

  parse_file("/nonexistent/export.csv", &result);
  assert_failure(&result, AG_ELOCAL, "open failed: ");
  release(&result);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(single_sample),
      cmocka_unit_test(multi_sample),
      cmocka_unit_test(bom_quoted_sample),
      cmocka_unit_test(line_endings_agree),
      cmocka_unit_test(quoted_values_kept),
      cmocka_unit_test(header_only),
      cmocka_unit_test(trailing_empty_header_cell),
      cmocka_unit_test(bom_only_first),
      cmocka_unit_test(long_file_blocks),
      cmocka_unit_test(block_cuts_character),
      cmocka_unit_test(wrong_field_count),
      cmocka_unit_test(bad_header),
      cmocka_unit_test(invalid_utf8_offset),
      cmocka_unit_test(invalid_utf8_after_block),
      cmocka_unit_test(malformed_quotes),
      cmocka_unit_test(empty_input),
      cmocka_unit_test(field_too_long),
      cmocka_unit_test(too_many_columns),
      cmocka_unit_test(sink_error_stops),
      cmocka_unit_test(missing_file),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
