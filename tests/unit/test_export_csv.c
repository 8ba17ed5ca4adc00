/* Unit tests for export_csv.c: the sample CSV exports described in
 * tests/data/README.md, line endings, quoting, header rules and broken
 * files. */
#include "agent/export.h"

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parsers with fixed options, in the form that the test_support.h
 * helpers take. */
static enum ag_code parse_csv(const char *path, const struct export_sink *sink,
                              struct ag_error *err)
{
  return export_parse_csv(path, NULL, sink, err);
}

static enum ag_code parse_semicolon(const char *path,
                                    const struct export_sink *sink,
                                    struct ag_error *err)
{
  static const struct export_csv_options options = {
      .delimiter = CSV_DELIMITER_SEMICOLON};

  return export_parse_csv(path, &options, sink, err);
}

static enum ag_code parse_tab(const char *path, const struct export_sink *sink,
                              struct ag_error *err)
{
  static const struct export_csv_options options = {.delimiter =
                                                        CSV_DELIMITER_TAB};

  return export_parse_csv(path, &options, sink, err);
}

static enum ag_code parse_auto(const char *path, const struct export_sink *sink,
                               struct ag_error *err)
{
  static const struct export_csv_options options = {.delimiter =
                                                        CSV_DELIMITER_AUTO};

  return export_parse_csv(path, &options, sink, err);
}

static enum ag_code parse_windows_1250(const char *path,
                                       const struct export_sink *sink,
                                       struct ag_error *err)
{
  static const struct export_csv_options options = {.encoding = "windows-1250"};

  return export_parse_csv(path, &options, sink, err);
}

static enum ag_code parse_windows_1252(const char *path,
                                       const struct export_sink *sink,
                                       struct ag_error *err)
{
  static const struct export_csv_options options = {.encoding = "windows-1252"};

  return export_parse_csv(path, &options, sink, err);
}

static enum ag_code parse_grouped(const char *path,
                                  const struct export_sink *sink,
                                  struct ag_error *err)
{
  static const struct export_csv_options options = {.group_by = "meta_url"};

  return export_parse_csv(path, &options, sink, err);
}

static enum ag_code parse_semicolon_grouped(const char *path,
                                            const struct export_sink *sink,
                                            struct ag_error *err)
{
  static const struct export_csv_options options = {
      .delimiter = CSV_DELIMITER_SEMICOLON, .group_by = "meta_url"};

  return export_parse_csv(path, &options, sink, err);
}

static enum ag_code parse_windows_1250_grouped(const char *path,
                                               const struct export_sink *sink,
                                               struct ag_error *err)
{
  static const struct export_csv_options options = {.encoding = "windows-1250",
                                                    .group_by = "meta_url"};

  return export_parse_csv(path, &options, sink, err);
}

/* Group by column "k", for the small made-up files below. */
static enum ag_code parse_grouped_by_k(const char *path,
                                       const struct export_sink *sink,
                                       struct ag_error *err)
{
  static const struct export_csv_options options = {.group_by = "k"};

  return export_parse_csv(path, &options, sink, err);
}

static void sample_path(const char *name, char *path, size_t size)
{
  snprintf(path, size, "%s/%s", TEST_DATA_DIR, name);
}

static void parse_sample_with(export_parser parse, const char *name,
                              struct parse_result *result)
{
  char path[1024];

  sample_path(name, path, sizeof(path));
  parse_export_file(parse, path, -1, result);
}

static void parse_sample(const char *name, struct parse_result *result)
{
  parse_sample_with(parse_csv, name, result);
}

static void parse_bytes(const char *bytes, size_t len,
                        struct parse_result *result)
{
  parse_export_bytes(parse_csv, bytes, len, result);
}

static void parse_text(const char *text, struct parse_result *result)
{
  parse_bytes(text, strlen(text), result);
}

/* Check a record's values in column order. */
static void assert_values(json_t *item, const char *const *keys,
                          const char *const *values, size_t count)
{
  for (size_t i = 0; i < count; i++)
    assert_string_equal(text_of(item, keys[i]), values[i]);
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
  assert_int_equal(result_item_count(&result), 2);

  assert_keys(result_item(&result, 0), single_header, 16);
  assert_values(result_item(&result, 0), single_header, first, 16);
  assert_keys(result_item(&result, 1), single_header, 16);
  assert_values(result_item(&result, 1), single_header, second, 16);
  parse_result_release(&result);
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
  assert_int_equal(result_item_count(&result), 5);
  for (size_t i = 0; i < 5; i++)
    assert_keys(result_item(&result, i), multi_header, 21);

  json_t *first = result_item(&result, 0);
  assert_string_equal(text_of(first, "Invoice number"), "GC-118230");
  assert_string_equal(text_of(first, "Description"),
                      "Sandwich platter (12 pcs)");
  assert_string_equal(text_of(first, "Quantity"), "4");
  assert_string_equal(text_of(first, "Line total"), "144.00");
  assert_string_equal(text_of(first, "Total amount"), "394.80");
  assert_string_equal(text_of(first, "Notes"), "");
  assert_string_equal(text_of(result_item(&result, 1), "Description"),
                      "Fresh fruit bowl");
  assert_string_equal(text_of(result_item(&result, 2), "Line total"), "110.00");
  assert_values(result_item(&result, 3), multi_header, freight, 21);
  assert_values(result_item(&result, 4), multi_header, subscription, 21);
  parse_result_release(&result);
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
  assert_int_equal(result_item_count(&result), 3);
  for (size_t i = 0; i < 3; i++)
    assert_keys(result_item(&result, i), header, 19);

  json_t *first = result_item(&result, 0);
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

  json_t *second = result_item(&result, 1);
  assert_string_equal(text_of(second, "Notes"), notes);
  assert_string_equal(text_of(second, "Item code"), "");
  assert_string_equal(text_of(second, "Description"),
                      "Mont\xC3\xA1\xC5\xBEn\xC3\xAD pr\xC3\xA1"
                      "ce (hod.)");
  assert_string_equal(text_of(second, "Quantity"), "2.5");

  json_t *third = result_item(&result, 2);
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
  parse_result_release(&result);
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
    assert_int_equal(result_item_count(&result), 2);
    assert_keys(result_item(&result, 0), keys, 2);
    assert_values(result_item(&result, 0), keys, first, 2);
    assert_values(result_item(&result, 1), keys, second, 2);
    parse_result_release(&result);
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
  assert_int_equal(result_item_count(&result), 2);

  json_t *first = result_item(&result, 0);
  assert_keys(first, keys, 3);
  assert_string_equal(text_of(first, "a"), "x\r\ny");
  assert_string_equal(text_of(first, "b"), "say \"hi\", then, go");
  assert_string_equal(text_of(first, "c"), " \t padded ");

  json_t *second = result_item(&result, 1);
  assert_string_equal(text_of(second, "a"), "");
  assert_string_equal(text_of(second, "b"), "");
  assert_string_equal(text_of(second, "c"), "\"");
  parse_result_release(&result);
}

static void header_only(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("a,b\r\n", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result.collector.begin_calls, 1);
  assert_string_equal(result.collector.list_name, "records");
  assert_int_equal(result_item_count(&result), 0);
  parse_result_release(&result);

  parse_bytes("\xEF\xBB\xBF"
              "a",
              4, &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result.collector.begin_calls, 1);
  parse_result_release(&result);
}

static void trailing_empty_header_cell(void **state)
{
  static const char *const keys[] = {"a", "b"};
  struct parse_result result;
  (void)state;

  parse_text("a,b,\r\n1,2\r\n3,4,\r\n", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result_item_count(&result), 2);
  assert_keys(result_item(&result, 0), keys, 2);
  assert_keys(result_item(&result, 1), keys, 2);
  assert_string_equal(text_of(result_item(&result, 1), "b"), "4");
  parse_result_release(&result);

  parse_text("a,b,\r\n1,2\r\n3,4,5\r\n", &result);
  assert_parse_failure(
      &result, AG_EPARSE,
      "line 3: field 3 has a value, but its header cell is empty");
  parse_result_release(&result);

  parse_text("a,b,\r\n1\r\n", &result);
  assert_parse_failure(
      &result, AG_EPARSE,
      "line 2: found 1 fields, expected 2 or 3 as in the header");
  parse_result_release(&result);
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
  assert_string_equal(text_of(result_item(&result, 0), "a"), "\xEF\xBB\xBF"
                                                             "x");
  parse_result_release(&result);
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
  assert_int_equal(result_item_count(&result), rows);
  for (size_t i = 0; i < rows; i++)
    assert_string_equal(text_of(result_item(&result, i), "v"),
                        "\xC3\xA9t\xC3\xA9");
  assert_string_equal(text_of(result_item(&result, rows - 1), "n"), "19999");
  parse_result_release(&result);
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
  assert_int_equal(result_item_count(&result), 1);
  const char *value = text_of(result_item(&result, 0), "v");
  assert_int_equal(strlen(value), 65535);
  assert_string_equal(value + 65533, "\xC3\xA9");
  parse_result_release(&result);
}

/* --- broken files --- */

static void wrong_field_count(void **state)
{
  static const struct parse_failure_case cases[] = {
      {"too many fields", "a,b\n1,2,3\n",
       "line 2: found 3 fields, expected 2 as in the header"},
      /* The line is where the row starts, after a multi-line value and
       * blank lines. */
      {"after multi-line value",
       "a,b\r\n\"x\r\ny\r\nz\",1\r\n\r\n\r\n1,2,3\r\n",
       "line 7: found 3 fields"},
      {"multi-line value in the row", "a,b\n1,\"multi\nline\",3\n",
       "line 2: found 3 fields"},
  };
  struct parse_result result;
  (void)state;

  /* The rows before the short one reach the sink. */
  parse_text("a,b,c\r\n1,2,3\r\n1,2\r\n", &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "line 3: found 2 fields, expected 3 as in the header");
  assert_int_equal(result_item_count(&result), 1);
  parse_result_release(&result);

  assert_parse_failures(parse_csv, cases, AG_EPARSE);
}

static void bad_header(void **state)
{
  static const struct parse_failure_case cases[] = {
      {"empty middle column", "a,,c\r\n1,2,3\r\n",
       "line 1: header column 2 is empty"},
      {"repeated name after blank lines", "\r\n\r\nid,name,id\r\n1,2,3\r\n",
       "line 3: header column 3 repeats the name \"id\" of column 1"},
      {"empty quoted column", "\"\"\r\n1\r\n",
       "line 1: header column 1 is empty"},
      {"empty column before the last", "a,b,,\r\n1,2\r\n",
       "line 1: header column 3 is empty"},
  };
  (void)state;

  assert_parse_failures(parse_csv, cases, AG_EPARSE);
}

static void invalid_utf8_offset(void **state)
{
  static const struct parse_failure_case cases[] = {
      {"Latin-1 byte", "a,b\r\n1,M\xFCller\r\n",
       "line 2, byte offset 8: invalid UTF-8"},
      {"truncated sequence at the end", "a,b\r\n1,\xC3",
       "line 2, byte offset 7: invalid UTF-8"},
      /* The offset counts the BOM, so it matches the file's bytes. */
      {"surrogate after a BOM",
       "\xEF\xBB\xBF"
       "a\n\xED\xA0\x80\n",
       "line 2, byte offset 5: invalid UTF-8"},
  };
  (void)state;

  assert_parse_failures(parse_csv, cases, AG_EPARSE);
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

  assert_parse_failure(&result, AG_EPARSE,
                       "line 2, byte offset 65537: invalid UTF-8");
  parse_result_release(&result);
}

static void malformed_quotes(void **state)
{
  static const struct parse_failure_case cases[] = {
      {"quote inside a bare field", "a,b\r\n1,x\"y\r\n",
       "line 2, byte offset 8: misplaced quote"},
      {"text after a closing quote", "a,b\r\n1,\"x\"y\r\n",
       "line 2, byte offset 10: misplaced quote"},
      {"quote never closed", "a,b\r\n1,2\r\n3,\"open\r\nstill open\r\n",
       "the quoted field in the row that starts on line 3 is not closed at "
       "the end of the file"},
  };
  (void)state;

  assert_parse_failures(parse_csv, cases, AG_EPARSE);
}

static void empty_input(void **state)
{
  struct parse_result result;
  (void)state;

  parse_bytes("", 0, &result);
  assert_parse_failure(&result, AG_EPARSE, "empty file");
  assert_int_equal(result.collector.begin_calls, 0);
  parse_result_release(&result);

  parse_text("\r\n\n\r\n", &result);
  assert_parse_failure(&result, AG_EPARSE, "no header row");
  parse_result_release(&result);

  parse_bytes("\xEF\xBB\xBF", 3, &result);
  assert_parse_failure(&result, AG_EPARSE, "no header row");
  parse_result_release(&result);
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
  assert_parse_failure(&result, AG_EPARSE,
                       "line 2: field 1 is longer than 10000000 bytes");
  parse_result_release(&result);

  /* A quoted field that never ends is stopped while it grows. */
  memset(text + 3 + value_len, 'x', 2);
  size_t runaway_len = value_len + 5;
  char *runaway = realloc(text, runaway_len + 200000);
  assert_non_null(runaway);
  memset(runaway + runaway_len, 'y', 200000);
  parse_bytes(runaway, runaway_len + 200000, &result);
  free(runaway);
  assert_parse_failure(&result, AG_EPARSE,
                       "line 2: field longer than 10000000 bytes");
  parse_result_release(&result);
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
  assert_parse_failure(&result, AG_EPARSE,
                       "line 1: the header has more than 10000 columns");
  parse_result_release(&result);
}

static void sink_error_stops(void **state)
{
  struct parse_result result;
  char path[1024];
  (void)state;

  snprintf(path, sizeof(path), "%s/%s", TEST_DATA_DIR,
           "rossum_export_multi.csv");
  parse_export_file(parse_csv, path, 2, &result);
  assert_parse_failure(&result, AG_ELOCAL, "sink is full");
  assert_int_equal(result_item_count(&result), 2);
  parse_result_release(&result);
}

static void missing_file(void **state)
{
  struct parse_result result;
  (void)state;

  parse_export_file(parse_csv, "/nonexistent/export.csv", -1, &result);
  assert_parse_failure(&result, AG_ELOCAL, "open failed: ");
  parse_result_release(&result);
}

/* --- options: delimiters --- */

/* Fail unless both parses gave equal items in the same order. */
static void assert_same_items(const struct parse_result *actual,
                              const struct parse_result *expected,
                              const char *what)
{
  size_t count = result_item_count(expected);

  if (result_item_count(actual) != count)
    fail_msg("%s: %zu items, expected %zu", what, result_item_count(actual),
             count);
  for (size_t i = 0; i < count; i++) {
    if (!json_equal(result_item(actual, i), result_item(expected, i)))
      fail_msg("%s: item %zu differs from the expected parse", what, i);
  }
}

/* Fail with both values shown unless they are equal. */
static void assert_json_equal(json_t *actual, json_t *expected)
{
  if (json_equal(actual, expected))
    return;

  char *actual_text = json_dumps(actual, JSON_PRESERVE_ORDER);
  char *expected_text = json_dumps(expected, JSON_PRESERVE_ORDER);
  print_error("actual:   %s\nexpected: %s\n", actual_text, expected_text);
  free(actual_text);
  free(expected_text);
  fail();
}

/* Return a copy of the sample name with every from outside quotes
 * replaced by to. The caller frees it, and *len gets its length. */
static char *sample_with_delimiter(const char *name, char from, char to,
                                   size_t *len)
{
  char path[1024];
  bool quoted = false;

  sample_path(name, path, sizeof(path));
  char *text = read_file(path, len);
  for (size_t i = 0; i < *len; i++) {
    if (text[i] == '"')
      quoted = !quoted;
    else if (!quoted && text[i] == from)
      text[i] = to;
  }
  return text;
}

static void semicolon_sample_matches_comma(void **state)
{
  struct parse_result comma;
  struct parse_result result;
  (void)state;

  parse_sample("rossum_export_multi.csv", &comma);
  assert_int_equal(comma.code, AG_OK);
  assert_int_equal(result_item_count(&comma), 5);

  parse_sample_with(parse_semicolon, "rossum_export_multi_semicolon.csv",
                    &result);
  assert_int_equal(result.code, AG_OK);
  assert_same_items(&result, &comma, "delimiter ;");
  assert_string_equal(text_of(result_item(&result, 4), "Notes"),
                      "Annual subscription; 25 seats, billed yearly");
  parse_result_release(&result);

  parse_sample_with(parse_auto, "rossum_export_multi_semicolon.csv", &result);
  assert_int_equal(result.code, AG_OK);
  assert_same_items(&result, &comma, "delimiter auto on the ; file");
  parse_result_release(&result);

  parse_sample_with(parse_auto, "rossum_export_multi.csv", &result);
  assert_int_equal(result.code, AG_OK);
  assert_same_items(&result, &comma, "delimiter auto on the , file");
  parse_result_release(&result);
  parse_result_release(&comma);
}

static void tab_sample_matches_comma(void **state)
{
  struct parse_result comma;
  struct parse_result result;
  size_t len;
  (void)state;

  parse_sample("rossum_export_multi.csv", &comma);
  assert_int_equal(comma.code, AG_OK);
  char *text = sample_with_delimiter("rossum_export_multi_semicolon.csv", ';',
                                     '\t', &len);

  parse_export_bytes(parse_tab, text, len, &result);
  assert_int_equal(result.code, AG_OK);
  assert_same_items(&result, &comma, "delimiter tab");
  parse_result_release(&result);

  parse_export_bytes(parse_auto, text, len, &result);
  assert_int_equal(result.code, AG_OK);
  assert_same_items(&result, &comma, "delimiter auto on the tab file");
  parse_result_release(&result);

  free(text);
  parse_result_release(&comma);
}

static void auto_delimiter_rules(void **state)
{
  static const struct {
    const char *name;
    const char *text;
    const char *keys[3];
    size_t key_count;
  } cases[] = {
      {"tab", "a\tb\n1\t2\n", {"a", "b"}, 2},
      {"quoted comma ignored", "\"q,r\";s;t\n1;2;3\n", {"q,r", "s", "t"}, 3},
      {"comma wins a tie", "a;b,c\n1;2,3\n", {"a;b", "c"}, 2},
      {"semicolon wins a tie with tab", "a;b\tc\n1;2\t3\n", {"a", "b\tc"}, 2},
      {"no delimiter", "single\nv\n", {"single"}, 1},
      {"blank lines before the header",
       "\r\n\r\na;b\r\n1;2\r\n",
       {"a", "b"},
       2},
      {"BOM",
       "\xEF\xBB\xBF"
       "a;b\n1;2\n",
       {"a", "b"},
       2},
      /* Only the first record counts, so data rows may differ. */
      {"header decides", "a;b\n1,5;2,5\n", {"a", "b"}, 2},
  };
  (void)state;

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct parse_result result;

    parse_export_bytes(parse_auto, cases[i].text, strlen(cases[i].text),
                       &result);
    if (result.code != AG_OK)
      fail_msg("case '%s': parse failed: %s", cases[i].name,
               result.err.message);
    assert_int_equal(result_item_count(&result), 1);
    assert_keys(result_item(&result, 0), cases[i].keys, cases[i].key_count);
    parse_result_release(&result);
  }
}

static void auto_delimiter_empty_file(void **state)
{
  struct parse_result result;
  (void)state;

  parse_export_bytes(parse_auto, "", 0, &result);
  assert_parse_failure(&result, AG_EPARSE, "empty file");
  parse_result_release(&result);
}

/* --- options: encodings --- */

/* Convert len bytes of UTF-8 to encoding with iconv(3). The caller frees
 * the result, and *out_len gets its length. */
static char *encode_utf8(const char *text, size_t len, const char *encoding,
                         size_t *out_len)
{
  iconv_t cd = iconv_open(encoding, "UTF-8");
  size_t size = len + 1;
  char *out = malloc(size);

  if (cd == (iconv_t)-1 || out == NULL)
    fail_msg("cannot set up iconv from UTF-8 to %s", encoding);
  char *src = (char *)text;
  size_t src_left = len;
  char *dst = out;
  size_t dst_left = size;
  if (iconv(cd, &src, &src_left, &dst, &dst_left) == (size_t)-1)
    fail_msg("the sample cannot be written in %s: byte %zu", encoding,
             len - src_left);
  iconv_close(cd);
  *out_len = size - dst_left;
  return out;
}

/* The BOM-and-quotes sample without its BOM, written in windows-1250. */
static char *encode_sample_1250(size_t *len)
{
  char path[1024];
  size_t utf8_len;

  sample_path("rossum_export_bom_quoted.csv", path, sizeof(path));
  char *utf8 = read_file(path, &utf8_len);
  assert_true(utf8_len > 3);
  char *encoded = encode_utf8(utf8 + 3, utf8_len - 3, "WINDOWS-1250", len);
  free(utf8);
  return encoded;
}

static void windows_1250_sample(void **state)
{
  struct parse_result expected;
  struct parse_result result;
  size_t len;
  (void)state;

  char *encoded = encode_sample_1250(&len);

  /* The file contains the single-byte forms: "Ž" is 0x8E and "€" 0x80. */
  assert_non_null(memchr(encoded, '\x8E', len));
  assert_non_null(memchr(encoded, '\x80', len));
  assert_null(memchr(encoded, '\xC5', len));

  parse_sample("rossum_export_bom_quoted.csv", &expected);
  assert_int_equal(expected.code, AG_OK);
  parse_export_bytes(parse_windows_1250, encoded, len, &result);
  assert_int_equal(result.code, AG_OK);
  assert_same_items(&result, &expected, "windows-1250");
  assert_string_equal(text_of(result_item(&result, 0), "Vendor name"),
                      "\xC5\xBDlu\xC5\xA5ou\xC4\x8Dk\xC3\xBD k\xC5\xAF\xC5\x88 "
                      "s.r.o.");
  parse_result_release(&result);
  parse_result_release(&expected);
  free(encoded);
}

static void windows_1252_values(void **state)
{
  static const char *const keys[] = {"name", "price"};
  static const char text[] = "name,price\r\nM\xFCller,\x80 5\r\n";
  struct parse_result result;
  (void)state;

  parse_export_bytes(parse_windows_1252, text, sizeof(text) - 1, &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result_item_count(&result), 1);
  assert_keys(result_item(&result, 0), keys, 2);
  assert_string_equal(text_of(result_item(&result, 0), "name"),
                      "M\xC3\xBCller");
  assert_string_equal(text_of(result_item(&result, 0), "price"),
                      "\xE2\x82\xAC 5");
  parse_result_release(&result);
}

static void invalid_byte_in_encoding(void **state)
{
  static const struct parse_failure_case windows_1252_cases[] = {
      {"undefined byte", "a,b\r\n1,x\x81y\r\n",
       "line 2, byte offset 8: invalid windows-1252 byte 0x81"},
      {"UTF-8 BOM",
       "\xEF\xBB\xBF"
       "a\r\n1\r\n",
       "line 1, byte offset 0: the file starts with a UTF-8 byte order mark, "
       "but [csv] encoding is windows-1252"},
  };
  static const struct parse_failure_case windows_1250_cases[] = {
      /* Offsets are file bytes: each "Ž" is one byte in the file and two
       * in the converted text. */
      {"misplaced quote after letters", "a,b\r\n\x8E\x8E,x\"y\r\n",
       "line 2, byte offset 9: misplaced quote"},
      {"undefined byte on a later line", "a\r\n\x8E\r\n\x98\r\n",
       "line 3, byte offset 6: invalid windows-1250 byte 0x98"},
  };
  struct parse_result result;
  (void)state;

  assert_parse_failures(parse_windows_1252, windows_1252_cases, AG_EPARSE);
  assert_parse_failures(parse_windows_1250, windows_1250_cases, AG_EPARSE);

  parse_export_bytes(parse_windows_1252, "", 0, &result);
  assert_parse_failure(&result, AG_EPARSE, "empty file");
  parse_result_release(&result);
}

static void invalid_byte_after_block_converted(void **state)
{
  /* An undefined byte past the first 64 KiB block, on line 3. */
  const size_t size = 70000;
  struct parse_result result;
  (void)state;

  char *text = malloc(size);
  assert_non_null(text);
  memset(text, 'x', size);
  memcpy(text, "v\n", 2);
  text[100] = '\n';
  text[65537] = '\x81';
  parse_export_bytes(parse_windows_1252, text, size, &result);
  free(text);

  assert_parse_failure(&result, AG_EPARSE,
                       "line 3, byte offset 65537: invalid windows-1252 byte "
                       "0x81");
  assert_int_equal(result_item_count(&result), 1);
  parse_result_release(&result);
}

/* --- options: group_by --- */

static const char *const multi_fields[15] = {"meta_file_name",
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
                                             "meta_status",
                                             "meta_url"};
static const char *const multi_item_keys[6] = {
    "Item code", "Description", "Quantity", "Unit", "Unit price", "Line total"};

/* Return document index of a grouped parse with record_count records. */
static json_t *document_at(const struct parse_result *result,
                           size_t record_count, size_t index)
{
  return result_item(result, record_count + index);
}

static json_t *fields_of(json_t *document)
{
  json_t *fields = json_object_get(document, "fields");

  if (!json_is_object(fields))
    fail_msg("the document has no \"fields\" object");
  return fields;
}

static json_t *items_of(json_t *document)
{
  json_t *items = json_object_get(document, "items");

  if (!json_is_array(items))
    fail_msg("the document has no \"items\" array");
  return items;
}

static void grouped_multi_sample(void **state)
{
  static const char *const document_keys[] = {"fields", "items"};
  struct parse_result records;
  struct parse_result result;
  (void)state;

  parse_sample("rossum_export_multi.csv", &records);
  parse_sample_with(parse_grouped, "rossum_export_multi.csv", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result.collector.begin_calls, 2);
  assert_string_equal(result.collector.list_name, "documents");
  assert_int_equal(result_item_count(&result), 5 + 3);

  /* The records come first and are the same as without grouping. */
  for (size_t i = 0; i < 5; i++)
    assert_true(json_equal(result_item(&result, i), result_item(&records, i)));

  json_t *catering = document_at(&result, 5, 0);
  assert_keys(catering, document_keys, 2);
  assert_keys(fields_of(catering), multi_fields, 15);
  assert_string_equal(text_of(fields_of(catering), "Invoice number"),
                      "GC-118230");
  assert_string_equal(text_of(fields_of(catering), "Total amount"), "394.80");
  assert_string_equal(
      text_of(fields_of(catering), "meta_url"),
      "https://acme-demo.rossum.app/api/v1/annotations/4410021");
  json_t *catering_items = items_of(catering);
  assert_int_equal(json_array_size(catering_items), 3);
  for (size_t i = 0; i < 3; i++)
    assert_keys(json_array_get(catering_items, i), multi_item_keys, 6);
  assert_string_equal(text_of(json_array_get(catering_items, 0), "Description"),
                      "Sandwich platter (12 pcs)");
  assert_string_equal(text_of(json_array_get(catering_items, 0), "Quantity"),
                      "4");
  assert_string_equal(text_of(json_array_get(catering_items, 1), "Line total"),
                      "75.00");
  assert_string_equal(text_of(json_array_get(catering_items, 2), "Item code"),
                      "CAT-COF");

  json_t *freight = document_at(&result, 5, 1);
  assert_string_equal(text_of(fields_of(freight), "meta_status"), "confirmed");
  json_t *freight_items = items_of(freight);
  assert_int_equal(json_array_size(freight_items), 1);
  assert_string_equal(text_of(json_array_get(freight_items, 0), "Description"),
                      "Ocean freight Rotterdam - Newark, 1x40HC");
  assert_string_equal(text_of(json_array_get(freight_items, 0), "Item code"),
                      "");
  assert_string_equal(text_of(json_array_get(freight_items, 0), "Unit"), "");

  /* A document without line items has one row with empty item cells,
   * which gives no item. */
  json_t *subscription = document_at(&result, 5, 2);
  assert_int_equal(json_array_size(items_of(subscription)), 0);
  assert_string_equal(text_of(fields_of(subscription), "Notes"),
                      "Annual subscription; 25 seats, billed yearly");
  assert_string_equal(text_of(fields_of(subscription), "Due date"), "");
  parse_result_release(&result);
  parse_result_release(&records);
}

static void grouped_semicolon_matches_comma(void **state)
{
  struct parse_result comma;
  struct parse_result result;
  (void)state;

  parse_sample_with(parse_grouped, "rossum_export_multi.csv", &comma);
  assert_int_equal(comma.code, AG_OK);
  parse_sample_with(parse_semicolon_grouped,
                    "rossum_export_multi_semicolon.csv", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result.collector.begin_calls, 2);
  assert_same_items(&result, &comma, "grouped, delimiter ;");
  parse_result_release(&result);
  parse_result_release(&comma);
}

static void grouped_bom_quoted_sample(void **state)
{
  static const char *const item_keys[5] = {
      "Item code", "Description", "Quantity", "Unit price", "Line total"};
  struct parse_result result;
  (void)state;

  parse_sample_with(parse_grouped, "rossum_export_bom_quoted.csv", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result_item_count(&result), 3 + 2);

  json_t *invoice = document_at(&result, 3, 0);
  assert_int_equal(json_object_size(fields_of(invoice)), 14);
  assert_string_equal(text_of(fields_of(invoice), "Vendor address"),
                      "N\xC3\xA1m\xC4\x9Bst\xC3\xAD M\xC3\xADru 1234/56\n"
                      "120 00 Praha 2\n\xC4\x8C"
                      "esk\xC3\xA1 republika");
  assert_string_equal(text_of(fields_of(invoice), "Total amount"), "2870.12");
  json_t *invoice_items = items_of(invoice);
  assert_int_equal(json_array_size(invoice_items), 2);
  assert_keys(json_array_get(invoice_items, 0), item_keys, 5);
  assert_string_equal(text_of(json_array_get(invoice_items, 0), "Item code"),
                      "\xC5\xA0R-PH2-6");
  assert_string_equal(text_of(json_array_get(invoice_items, 1), "Quantity"),
                      "2.5");

  json_t *credit_note = document_at(&result, 3, 1);
  assert_string_equal(text_of(fields_of(credit_note), "Document type"),
                      "credit_note");
  json_t *credit_items = items_of(credit_note);
  assert_int_equal(json_array_size(credit_items), 1);
  assert_string_equal(text_of(json_array_get(credit_items, 0), "Line total"),
                      "-120.00");
  parse_result_release(&result);
}

static void grouped_windows_1250(void **state)
{
  struct parse_result expected;
  struct parse_result result;
  size_t len;
  (void)state;

  /* The second pass converts the file again from the start. */
  char *encoded = encode_sample_1250(&len);
  parse_sample_with(parse_grouped, "rossum_export_bom_quoted.csv", &expected);
  parse_export_bytes(parse_windows_1250_grouped, encoded, len, &result);
  free(encoded);
  assert_int_equal(result.code, AG_OK);
  assert_same_items(&result, &expected, "grouped windows-1250");
  parse_result_release(&result);
  parse_result_release(&expected);
}

/* Parse text grouped by column "k" and return the documents as an array,
 * after record_count records. The caller releases the array. */
static json_t *grouped_documents(const char *text, size_t record_count)
{
  struct parse_result result;
  json_t *documents = json_array();

  parse_export_bytes(parse_grouped_by_k, text, strlen(text), &result);
  if (result.code != AG_OK)
    fail_msg("grouped parse failed: %s", result.err.message);
  assert_int_equal(result.collector.begin_calls, 2);
  for (size_t i = record_count; i < result_item_count(&result); i++)
    json_array_append(documents, result_item(&result, i));
  parse_result_release(&result);
  return documents;
}

static void grouped_rows_apart(void **state)
{
  (void)state;

  /* Rows of one document need not be next to each other. Documents keep
   * the order in which their values first appear. */
  json_t *documents = grouped_documents("k,v\r\n1,a\r\n2,b\r\n1,c\r\n", 3);
  json_t *expected = json_pack(
      "[{s:{s:s}, s:[{s:s}, {s:s}]}, {s:{s:s}, s:[{s:s}]}]", "fields", "k", "1",
      "items", "v", "a", "v", "c", "fields", "k", "2", "items", "v", "b");
  assert_json_equal(documents, expected);
  json_decref(expected);
  json_decref(documents);
}

static void grouped_empty_item_row(void **state)
{
  (void)state;

  /* v and w differ within document 1, so they are item columns, and the
   * row with both empty gives no item. */
  json_t *documents = grouped_documents("k,h,v,w\n1,x,a,b\n1,x,,\n2,y,,\n", 3);
  json_t *expected =
      json_pack("[{s:{s:s, s:s}, s:[{s:s, s:s}]}, {s:{s:s, s:s}, s:[]}]",
                "fields", "k", "1", "h", "x", "items", "v", "a", "w", "b",
                "fields", "k", "2", "h", "y", "items");
  assert_json_equal(documents, expected);
  json_decref(expected);
  json_decref(documents);
}

static void grouped_single_rows(void **state)
{
  (void)state;

  /* With one row per document no column differs within a document, so
   * every value is a field and there are no items. */
  json_t *documents = grouped_documents("k,v\n1,a\n2,b\n", 2);
  json_t *expected =
      json_pack("[{s:{s:s, s:s}, s:[]}, {s:{s:s, s:s}, s:[]}]", "fields", "k",
                "1", "v", "a", "items", "fields", "k", "2", "v", "b", "items");
  assert_json_equal(documents, expected);
  json_decref(expected);
  json_decref(documents);
}

static void grouped_header_only(void **state)
{
  json_t *documents = grouped_documents("k,v\r\n", 0);
  (void)state;

  assert_int_equal(json_array_size(documents), 0);
  json_decref(documents);
}

static void grouped_missing_column(void **state)
{
  struct parse_result result;
  (void)state;

  parse_sample_with(parse_grouped, "rossum_export_single.csv", &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "line 1: the header has no column \"meta_url\" to group "
                       "rows by; set [csv] group_by to one of its columns");
  assert_int_equal(result.collector.begin_calls, 0);
  parse_result_release(&result);
}

static void grouped_sink_error_stops(void **state)
{
  struct parse_result result;
  char path[1024];
  (void)state;

  /* 5 records and the first document go through, the second fails. */
  sample_path("rossum_export_multi.csv", path, sizeof(path));
  parse_export_file(parse_grouped, path, 6, &result);
  assert_parse_failure(&result, AG_ELOCAL, "sink is full");
  assert_int_equal(result_item_count(&result), 6);
  parse_result_release(&result);
}

static void group_document_limit(void **state)
{
  /* The limit is 100,000 documents. */
  const size_t rows = 100001;
  struct parse_result result;
  (void)state;

  size_t size = 4 + rows * 8;
  char *text = malloc(size);
  assert_non_null(text);
  size_t len = (size_t)snprintf(text, size, "k\n");
  for (size_t i = 0; i < rows; i++)
    len += (size_t)snprintf(text + len, size - len, "%zu\n", i);
  parse_export_bytes(parse_grouped_by_k, text, len, &result);
  free(text);

  assert_parse_failure(&result, AG_EPARSE,
                       "line 100002: more than 100000 documents (different "
                       "values of column \"k\")");
  parse_result_release(&result);
}

/* Return a file with a header "k,v" and rows of key_count different keys
 * (row i has key i % key_count), each with a value of value_len bytes that
 * differs from row to row. */
static char *big_rows(size_t rows, size_t key_count, size_t value_len,
                      size_t *len)
{
  size_t size = 8 + rows * (value_len + 32);
  char *text = malloc(size);

  assert_non_null(text);
  *len = (size_t)snprintf(text, size, "k,v\n");
  for (size_t i = 0; i < rows; i++) {
    *len +=
        (size_t)snprintf(text + *len, size - *len, "%zu,%zu", i % key_count, i);
    memset(text + *len, 'x', value_len);
    *len += value_len;
    text[(*len)++] = '\n';
  }
  return text;
}

static void group_memory_limits(void **state)
{
  /* The limit is 64 MiB of estimated memory: 70 rows of 1 MiB exceed it. */
  const size_t value_len = 1024 * 1024;
  struct parse_result result;
  size_t len;
  (void)state;

  /* First pass: the first rows of 70 documents. */
  char *text = big_rows(70, 70, value_len, &len);
  parse_export_bytes(parse_grouped_by_k, text, len, &result);
  free(text);
  assert_parse_failure(&result, AG_EPARSE,
                       "the documents grouped by column \"k\" take more than "
                       "64 MiB of memory");
  parse_result_release(&result);

  /* Second pass: the items of one document with 70 rows. */
  text = big_rows(70, 1, value_len, &len);
  parse_export_bytes(parse_grouped_by_k, text, len, &result);
  free(text);
  assert_parse_failure(&result, AG_EPARSE,
                       "the line items of documents not yet complete take "
                       "more than 64 MiB of memory");
  assert_int_equal(result.collector.begin_calls, 2);
  parse_result_release(&result);
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
      cmocka_unit_test(semicolon_sample_matches_comma),
      cmocka_unit_test(tab_sample_matches_comma),
      cmocka_unit_test(auto_delimiter_rules),
      cmocka_unit_test(auto_delimiter_empty_file),
      cmocka_unit_test(windows_1250_sample),
      cmocka_unit_test(windows_1252_values),
      cmocka_unit_test(invalid_byte_in_encoding),
      cmocka_unit_test(invalid_byte_after_block_converted),
      cmocka_unit_test(grouped_multi_sample),
      cmocka_unit_test(grouped_semicolon_matches_comma),
      cmocka_unit_test(grouped_bom_quoted_sample),
      cmocka_unit_test(grouped_windows_1250),
      cmocka_unit_test(grouped_rows_apart),
      cmocka_unit_test(grouped_empty_item_row),
      cmocka_unit_test(grouped_single_rows),
      cmocka_unit_test(grouped_header_only),
      cmocka_unit_test(grouped_missing_column),
      cmocka_unit_test(grouped_sink_error_stops),
      cmocka_unit_test(group_document_limit),
      cmocka_unit_test(group_memory_limits),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
