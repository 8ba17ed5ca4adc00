/* Unit tests for export.c and export_xml.c: format recognition, the
 * sample XML exports described in tests/data/README.md, and hostile or
 * broken documents. */
#include "agent/export.h"
#include "agent/utf8.h"

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void parse_sample(const char *name, struct parse_result *result)
{
  char path[1024];

  snprintf(path, sizeof(path), "%s/%s", TEST_DATA_DIR, name);
  parse_export_file(export_parse_xml, path, -1, result);
}

static void parse_bytes(const char *bytes, size_t len,
                        struct parse_result *result)
{
  parse_export_bytes(export_parse_xml, bytes, len, result);
}

static void parse_text(const char *text, struct parse_result *result)
{
  parse_bytes(text, strlen(text), result);
}

static const char *field(json_t *item, const char *schema_id)
{
  return text_of(json_object_get(item, "fields"), schema_id);
}

static json_t *table(json_t *item, const char *schema_id)
{
  json_t *rows = json_object_get(json_object_get(item, "tables"), schema_id);

  assert_true(json_is_array(rows));
  return rows;
}

static const char *cell(json_t *item, const char *schema_id, size_t row,
                        const char *column)
{
  return text_of(json_array_get(table(item, schema_id), row), column);
}

/* Check one line item: code, description, quantity, unit, unit price,
 * rate and total, in that order. */
static void assert_line_item(json_t *item, size_t row,
                             const char *const expected[7])
{
  static const char *const columns[7] = {
      "item_code",        "item_description", "item_quantity",    "item_uom",
      "item_amount_base", "item_rate",        "item_amount_total"};

  for (size_t i = 0; i < 7; i++) {
    if (expected[i] != NULL)
      assert_string_equal(cell(item, "line_items", row, columns[i]),
                          expected[i]);
  }
}

/* A document built in memory, for inputs too large for a literal. */
struct text_buffer {
  char *data;
  size_t len;
  size_t size;
};

static void buffer_reserve(struct text_buffer *buffer, size_t extra)
{
  if (buffer->len + extra + 1 <= buffer->size)
    return;
  size_t size = buffer->size > 0 ? buffer->size : 4096;
  while (size < buffer->len + extra + 1)
    size *= 2;
  buffer->data = realloc(buffer->data, size);
  assert_non_null(buffer->data);
  buffer->size = size;
}

static void buffer_append(struct text_buffer *buffer, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void buffer_append(struct text_buffer *buffer, const char *format, ...)
{
  va_list args;

  va_start(args, format);
  int len = vsnprintf(NULL, 0, format, args);
  va_end(args);
  assert_true(len >= 0);

  buffer_reserve(buffer, (size_t)len);
  va_start(args, format);
  vsnprintf(buffer->data + buffer->len, (size_t)len + 1, format, args);
  va_end(args);
  buffer->len += (size_t)len;
}

/* Append count copies of the byte c. */
static void buffer_fill(struct text_buffer *buffer, char c, size_t count)
{
  buffer_reserve(buffer, count);
  memset(buffer->data + buffer->len, c, count);
  buffer->len += count;
  buffer->data[buffer->len] = '\0';
}

static void parse_buffer(struct text_buffer *buffer,
                         struct parse_result *result)
{
  parse_bytes(buffer->data, buffer->len, result);
  free(buffer->data);
  memset(buffer, 0, sizeof(*buffer));
}

/* Convert ASCII text to UTF-16LE with a byte order mark, which the raw
 * scan of the parser does not read. The caller frees *out. */
static void to_utf16(const char *text, char **out, size_t *out_len)
{
  size_t len = strlen(text);
  char *utf16 = malloc(2 + 2 * len);

  assert_non_null(utf16);
  utf16[0] = '\xFF';
  utf16[1] = '\xFE';
  for (size_t i = 0; i < len; i++) {
    utf16[2 + 2 * i] = text[i];
    utf16[3 + 2 * i] = '\0';
  }
  *out = utf16;
  *out_len = 2 + 2 * len;
}

/* --- format recognition --- */

static void format_of_extension(void **state)
{
  (void)state;
  assert_int_equal(export_format_of("a.xml"), EXPORT_XML);
  assert_int_equal(export_format_of("A.XML"), EXPORT_XML);
  assert_int_equal(export_format_of("export.2024.Xml"), EXPORT_XML);
  assert_int_equal(export_format_of("b.csv"), EXPORT_CSV);
  assert_int_equal(export_format_of("B.CsV"), EXPORT_CSV);
  assert_int_equal(export_format_of("c.txt"), EXPORT_UNKNOWN);
  assert_int_equal(export_format_of("xml"), EXPORT_UNKNOWN);
  assert_int_equal(export_format_of(".xml"), EXPORT_UNKNOWN);
  assert_int_equal(export_format_of("a.xml.part"), EXPORT_UNKNOWN);
  assert_int_equal(export_format_of("a.xmlx"), EXPORT_UNKNOWN);
  assert_int_equal(export_format_of(""), EXPORT_UNKNOWN);
  assert_int_equal(export_format_of(NULL), EXPORT_UNKNOWN);
}

static void format_names(void **state)
{
  (void)state;
  assert_string_equal(export_format_name(EXPORT_XML), "xml");
  assert_string_equal(export_format_name(EXPORT_CSV), "csv");
  assert_string_equal(export_format_name(EXPORT_UNKNOWN), "unknown");
}

/* --- samples --- */

static void single_sample(void **state)
{
  struct parse_result result;
  (void)state;

  parse_sample("rossum_export_single.xml", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result.stderr_bytes, 0);
  assert_int_equal(result.collector.begin_calls, 1);
  assert_string_equal(result.collector.list_name, "annotations");
  assert_int_equal(json_array_size(result.collector.items), 1);

  json_t *item = result_item(&result, 0);
  assert_int_equal(json_integer_value(json_object_get(item, "id")), 4410001);
  assert_string_equal(
      text_of(item, "url"),
      "https://acme-demo.rossum.app/api/v1/annotations/4410001");
  assert_string_equal(text_of(item, "status"), "exported");
  assert_string_equal(text_of(item, "arrived_at"),
                      "2024-11-04T08:15:22.418203Z");
  assert_string_equal(text_of(item, "exported_at"),
                      "2024-11-04T09:02:47.009114Z");
  assert_string_equal(text_of(item, "file_name"), "INV-2024-0042.pdf");
  assert_string_equal(text_of(item, "document_url"),
                      "https://acme-demo.rossum.app/api/v1/documents/5520001");
  assert_string_equal(text_of(item, "modifier"), "ap.clerk@example.com");
  assert_true(json_is_false(json_object_get(item, "automated")));

  assert_string_equal(field(item, "document_id"), "2024-0042");
  assert_string_equal(field(item, "date_issue"), "2024-10-28");
  assert_string_equal(field(item, "date_due"), "2024-11-27");
  assert_string_equal(field(item, "order_id"), "PO-77801");
  assert_string_equal(field(item, "amount_total_base"), "1250.00");
  assert_string_equal(field(item, "amount_total_tax"), "262.50");
  assert_string_equal(field(item, "amount_total"), "1512.50");
  assert_string_equal(field(item, "currency"), "eur");
  assert_string_equal(field(item, "sender_name"),
                      "Bluefin Office Supplies B.V.");
  assert_string_equal(field(item, "sender_address"),
                      "Kanaalweg 88\n3526 KM Utrecht\nNetherlands");
  assert_string_equal(field(item, "iban"), "NL40BLFN0417285930");
  assert_string_equal(field(item, "sender_ic"), "");
  assert_string_equal(field(item, "var_sym"), "");
  assert_string_equal(field(item, "notes"), "");
  /* 20 header fields and notes; table cells are not fields. */
  assert_int_equal(json_object_size(json_object_get(item, "fields")), 21);
  assert_null(json_object_get(json_object_get(item, "fields"), "item_code"));

  assert_int_equal(json_array_size(table(item, "tax_details")), 1);
  assert_string_equal(cell(item, "tax_details", 0, "tax_detail_rate"), "21");
  assert_string_equal(cell(item, "tax_details", 0, "tax_detail_base"),
                      "1250.00");
  assert_string_equal(cell(item, "tax_details", 0, "tax_detail_tax"), "262.50");

  assert_int_equal(json_array_size(table(item, "line_items")), 2);
  const char *const first[7] = {
      "PAP-A4-80", "Copy paper A4 80 g/m2, 500 sheets",
      "100",       "pack",
      "4.50",      "21",
      "450.00"};
  const char *const second[7] = {
      "TNR-K-220", "Toner cartridge black K220", "8", "pcs", "100.00", "21",
      "800.00"};
  assert_line_item(item, 0, first);
  assert_line_item(item, 1, second);
  assert_int_equal(json_object_size(json_object_get(item, "metadata")), 0);
  parse_result_release(&result);
}

static void key_order(void **state)
{
  static const char *const keys[] = {"id",           "url",         "status",
                                     "arrived_at",   "exported_at", "file_name",
                                     "document_url", "modifier",    "automated",
                                     "fields",       "tables",      "metadata"};
  struct parse_result result;
  (void)state;

  parse_sample("rossum_export_single.xml", &result);
  assert_int_equal(result.code, AG_OK);

  assert_keys(result_item(&result, 0), keys, sizeof(keys) / sizeof(keys[0]));
  parse_result_release(&result);
}

static void multi_sample(void **state)
{
  struct parse_result result;
  (void)state;

  parse_sample("rossum_export_multi.xml", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result.collector.begin_calls, 1);
  assert_int_equal(json_array_size(result.collector.items), 3);

  json_t *first = result_item(&result, 0);
  assert_int_equal(json_integer_value(json_object_get(first, "id")), 4410021);
  assert_string_equal(text_of(first, "status"), "exported");
  assert_string_equal(field(first, "document_id"), "GC-118230");
  assert_string_equal(field(first, "amount_total"), "394.80");
  assert_string_equal(field(first, "currency"), "gbp");
  assert_int_equal(json_array_size(table(first, "line_items")), 3);
  const char *const platter[7] = {
      NULL, "Sandwich platter (12 pcs)", "4", NULL, NULL, NULL, "144.00"};
  const char *const fruit[7] = {
      NULL, "Fresh fruit bowl", "6", NULL, NULL, NULL, "75.00"};
  const char *const coffee[7] = {
      NULL, "Coffee service per person", "40", NULL, NULL, NULL, "110.00"};
  assert_line_item(first, 0, platter);
  assert_line_item(first, 1, fruit);
  assert_line_item(first, 2, coffee);
  assert_int_equal(json_array_size(table(first, "tax_details")), 1);
  assert_string_equal(cell(first, "tax_details", 0, "tax_detail_rate"), "20");
  assert_string_equal(cell(first, "tax_details", 0, "tax_detail_base"),
                      "329.00");
  assert_string_equal(cell(first, "tax_details", 0, "tax_detail_tax"), "65.80");

  json_t *second = result_item(&result, 1);
  assert_int_equal(json_integer_value(json_object_get(second, "id")), 4410022);
  assert_string_equal(text_of(second, "status"), "confirmed");
  assert_true(json_is_null(json_object_get(second, "exported_at")));
  assert_string_equal(field(second, "document_id"), "NFF/2024/10/0917");
  assert_string_equal(field(second, "amount_total"), "2850.00");
  assert_string_equal(field(second, "currency"), "usd");
  assert_string_equal(field(second, "iban"), "");
  assert_string_equal(field(second, "bic"), "");
  assert_string_equal(text_of(second, "modifier"), "ap.lead@example.com");
  assert_string_equal(text_of(json_object_get(second, "metadata"), "erp_batch"),
                      "B-2024-11-04");
  assert_int_equal(json_array_size(table(second, "line_items")), 1);
  const char *const freight[7] = {
      "",       "Ocean freight Rotterdam - Newark, 1x40HC", "1", "", NULL, NULL,
      "2850.00"};
  assert_line_item(second, 0, freight);

  json_t *third = result_item(&result, 2);
  assert_int_equal(json_integer_value(json_object_get(third, "id")), 4410023);
  assert_string_equal(text_of(third, "status"), "exported");
  assert_true(json_is_true(json_object_get(third, "automated")));
  assert_string_equal(field(third, "document_id"), "QS-INV-5531");
  assert_string_equal(field(third, "amount_total"), "2398.80");
  assert_string_equal(field(third, "currency"), "eur");
  assert_string_equal(field(third, "date_due"), "");
  assert_string_equal(field(third, "order_id"), "");
  assert_string_equal(field(third, "notes"),
                      "Annual subscription; 25 seats, billed yearly");
  assert_int_equal(json_array_size(table(third, "line_items")), 0);
  assert_int_equal(json_array_size(table(third, "tax_details")), 0);
  parse_result_release(&result);
}

static void edge_cases_first(void **state)
{
  struct parse_result result;
  (void)state;

  parse_sample("rossum_export_edge_cases.xml", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(json_array_size(result.collector.items), 2);

  json_t *item = result_item(&result, 0);
  assert_int_equal(json_integer_value(json_object_get(item, "id")), 4410031);
  assert_string_equal(text_of(item, "file_name"),
                      "Faktura FV-2024-0815 (kopie).pdf");
  assert_string_equal(field(item, "document_id"), "FV-2024/0815");
  assert_string_equal(field(item, "currency"), "czk");
  assert_string_equal(field(item, "amount_total"), "2870.12");
  assert_string_equal(field(item, "amount_total_base"), "2372.00");
  assert_string_equal(field(item, "amount_total_tax"), "498.12");
  assert_string_equal(field(item, "sender_name"),
                      "\xC5\xBDlu\xC5\xA5ou\xC4\x8Dk\xC3\xBD k\xC5\xAF\xC5\x88 "
                      "s.r.o.");
  assert_string_equal(field(item, "recipient_name"),
                      "M\xC3\xBCller & S\xC3\xB6hne GmbH");
  assert_string_equal(field(item, "sender_address"),
                      "N\xC3\xA1m\xC4\x9Bst\xC3\xAD M\xC3\xADru 1234/56\n"
                      "120 00 Praha 2\n\xC4\x8C"
                      "esk\xC3\xA1 republika");
  assert_string_equal(field(item, "language"), "ces");
  assert_string_equal(field(item, "document_type"), "tax_invoice");
  assert_string_equal(field(item, "date_due"), "");
  assert_string_equal(field(item, "order_id"), "");
  assert_string_equal(field(item, "bic"), "");
  /* U+2013 en dash, U+20AC euro sign and decoded &quot; &lt; &gt; &amp;. */
  assert_string_equal(field(item, "notes"),
                      "Dod\xC3\xA1vka dle obj. \xC4\x8D. 42 \xE2\x80\x93 "
                      "\"expres\" <urgentn\xC3\xAD> & 5 % sleva; splatnost 14 "
                      "dn\xC3\xAD, cena 1 234,50 \xE2\x82\xAC");

  assert_int_equal(json_array_size(table(item, "line_items")), 2);
  const char *const screwdriver[7] = {
      "\xC5\xA0R-PH2-6",
      "\xC5\xA0roubov\xC3\xA1k k\xC5\x99\xC3\xAD\xC5\xBEov\xC3\xBD PH2 "
      "\xE2\x80\x93 sada 6 ks, \"Profi\"",
      "3",
      NULL,
      NULL,
      NULL,
      "747.00"};
  const char *const labour[7] = {"",
                                 "Mont\xC3\xA1\xC5\xBEn\xC3\xAD pr\xC3\xA1"
                                 "ce (hod.)",
                                 "2.5",
                                 NULL,
                                 NULL,
                                 NULL,
                                 "1625.00"};
  assert_line_item(item, 0, screwdriver);
  assert_line_item(item, 1, labour);
  parse_result_release(&result);
}

static void edge_cases_credit_note(void **state)
{
  struct parse_result result;
  (void)state;

  parse_sample("rossum_export_edge_cases.xml", &result);
  assert_int_equal(result.code, AG_OK);

  json_t *item = result_item(&result, 1);
  assert_int_equal(json_integer_value(json_object_get(item, "id")), 4410032);
  assert_string_equal(field(item, "document_type"), "credit_note");
  assert_string_equal(field(item, "document_id"), "AV-2024-017");
  assert_string_equal(field(item, "currency"), "eur");
  assert_string_equal(field(item, "amount_total_base"), "-120.00");
  assert_string_equal(field(item, "amount_total_tax"), "-24.00");
  assert_string_equal(field(item, "amount_total"), "-144.00");
  assert_true(json_is_null(json_object_get(item, "modifier")));
  assert_true(json_is_true(json_object_get(item, "automated")));
  assert_string_equal(field(item, "sender_address"),
                      "12 rue de l'Exemple\n69002 Lyon\nFrance");
  assert_string_equal(field(item, "sender_name"),
                      "Caf\xC3\xA9 Ol\xC3\xA9 \xC3\x89v\xC3\xA9nements SARL");
  assert_string_equal(field(item, "notes"),
                      "Remboursement de l'acompte (120,00 \xE2\x82\xAC) "
                      "\xE2\x80\x93 annulation du 03/11");

  json_t *metadata = json_object_get(item, "metadata");
  assert_int_equal(json_object_size(metadata), 2);
  assert_string_equal(text_of(metadata, "source"), "email");
  assert_string_equal(text_of(metadata, "ticket"), "A&B \"quoted\" <x>");

  json_t *tax_details = table(item, "tax_details");
  assert_int_equal(json_array_size(tax_details), 1);
  assert_true(json_is_object(json_array_get(tax_details, 0)));
  assert_int_equal(json_object_size(json_array_get(tax_details, 0)), 0);

  assert_int_equal(json_array_size(table(item, "line_items")), 1);
  const char *const refund[7] = {
      "ACPT",
      "Remboursement acompte \xC2\xAB r\xC3\xA9servation salle \xC2\xBB",
      "1",
      "",
      "-120.00",
      "20",
      "-120.00"};
  assert_line_item(item, 0, refund);
  parse_result_release(&result);
}

static void empty_sample(void **state)
{
  struct parse_result result;
  (void)state;

  parse_sample("rossum_export_empty.xml", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result.collector.begin_calls, 1);
  assert_string_equal(result.collector.list_name, "annotations");
  assert_int_equal(json_array_size(result.collector.items), 0);
  parse_result_release(&result);
}

static void public_sdk_sample(void **state)
{
  struct parse_result result;
  (void)state;

  parse_sample("public/rossum_sdk_annotation_export.xml", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(json_array_size(result.collector.items), 1);

  json_t *item = result_item(&result, 0);
  assert_int_equal(json_integer_value(json_object_get(item, "id")), 315777);
  assert_string_equal(text_of(item, "status"), "exported");
  assert_string_equal(text_of(item, "file_name"), "template_invoice.pdf");
  assert_true(json_is_null(json_object_get(item, "modifier")));
  assert_true(json_is_false(json_object_get(item, "automated")));
  json_t *fields = json_object_get(item, "fields");
  assert_int_equal(json_object_size(fields), 1);
  assert_string_equal(text_of(fields, "document_id"), "12345");
  assert_int_equal(json_object_size(json_object_get(item, "tables")), 0);
  parse_result_release(&result);
}

/* --- value rules on small documents --- */

static void missing_elements_null(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("<export><results><annotation>"
             "<exported_at/><document/></annotation></results></export>",
             &result);
  assert_int_equal(result.code, AG_OK);

  json_t *item = result_item(&result, 0);
  assert_true(json_is_null(json_object_get(item, "id")));
  assert_true(json_is_null(json_object_get(item, "url")));
  assert_true(json_is_null(json_object_get(item, "status")));
  assert_true(json_is_null(json_object_get(item, "arrived_at")));
  assert_string_equal(text_of(item, "exported_at"), "");
  assert_true(json_is_null(json_object_get(item, "file_name")));
  assert_true(json_is_null(json_object_get(item, "document_url")));
  assert_true(json_is_null(json_object_get(item, "modifier")));
  assert_true(json_is_false(json_object_get(item, "automated")));
  assert_int_equal(json_object_size(json_object_get(item, "fields")), 0);
  assert_int_equal(json_object_size(json_object_get(item, "tables")), 0);
  assert_int_equal(json_object_size(json_object_get(item, "metadata")), 0);
  parse_result_release(&result);
}

static void id_not_numeric(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("<export><results>"
             "<annotation url='https://x.example/a/abc-12'/>"
             "<annotation url='https://x.example/a/0042'/>"
             "<annotation url='https://x.example/a/77/'/>"
             "<annotation url='https://x.example/a/12345678901234567890'/>"
             "</results></export>",
             &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(json_array_size(result.collector.items), 4);
  assert_string_equal(text_of(result_item(&result, 0), "id"), "abc-12");
  assert_string_equal(text_of(result_item(&result, 1), "id"), "0042");
  assert_int_equal(
      json_integer_value(json_object_get(result_item(&result, 2), "id")), 77);
  assert_string_equal(text_of(result_item(&result, 3), "id"),
                      "12345678901234567890");
  parse_result_release(&result);
}

static void bare_datapoint_in_multivalue(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("<export><results><annotation><content><section schema_id='s'>"
             "<multivalue schema_id='tags'>"
             "<datapoint schema_id='tag'>a</datapoint>"
             "<datapoint schema_id='tag'> b </datapoint>"
             "</multivalue>"
             "<multivalue schema_id='none'/>"
             "<datapoint schema_id='cdata'><![CDATA[<1 & 2>]]></datapoint>"
             "</section></content></annotation></results></export>",
             &result);
  assert_int_equal(result.code, AG_OK);

  json_t *item = result_item(&result, 0);
  json_t *tags = table(item, "tags");
  assert_int_equal(json_array_size(tags), 2);
  assert_string_equal(json_string_value(json_array_get(tags, 0)), "a");
  assert_string_equal(json_string_value(json_array_get(tags, 1)), " b ");
  assert_int_equal(json_array_size(table(item, "none")), 0);
  assert_string_equal(field(item, "cdata"), "<1 & 2>");
  parse_result_release(&result);
}

static void many_annotations(void **state)
{
  const int count = 2000;
  struct parse_result result;
  (void)state;

  size_t size = 64 + (size_t)count * 128;
  char *text = malloc(size);
  assert_non_null(text);
  size_t len = (size_t)snprintf(text, size, "<export><results>\n");
  for (int i = 0; i < count; i++)
    len += (size_t)snprintf(text + len, size - len,
                            "<annotation url='https://x.example/a/%d'>"
                            "<status>exported</status></annotation>\n",
                            i + 1);
  len += (size_t)snprintf(text + len, size - len, "</results></export>\n");

  parse_bytes(text, len, &result);
  free(text);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(json_array_size(result.collector.items), (size_t)count);
  assert_int_equal(
      json_integer_value(json_object_get(result_item(&result, 1999), "id")),
      2000);
  parse_result_release(&result);
}

static void attribute_references_decoded(void **state)
{
  struct parse_result result;
  (void)state;

  /* libxml2 passes a value that held a reference with each '&' written
   * as "&#38;". The values must come out decoded all the same. */
  parse_text("<export><results>\n"
             "<annotation url='https://x.example/a/12?a=1&amp;b=&#38;c&#x26;"
             "d&lt;&#62;&quot;'>"
             "<document url='https://x.example/d/1&#10;x\ty'/>"
             "<content><section schema_id='s'>"
             "<datapoint schema_id='a&amp;b'>1</datapoint>"
             "<datapoint schema_id='q&#38;&#38;'>v&#38;w</datapoint>"
             "</section></content>"
             "<metadata><item key='k&amp;'>m</item></metadata>"
             "</annotation></results></export>",
             &result);
  assert_int_equal(result.code, AG_OK);

  json_t *item = result_item(&result, 0);
  assert_string_equal(text_of(item, "url"),
                      "https://x.example/a/12?a=1&b=&c&d<>\"");
  assert_string_equal(text_of(item, "id"), "12?a=1&b=&c&d<>\"");
  /* A character reference keeps the newline, but a literal tab becomes a
   * space by attribute value normalization. */
  assert_string_equal(text_of(item, "document_url"),
                      "https://x.example/d/1\nx y");
  assert_string_equal(field(item, "a&b"), "1");
  assert_string_equal(field(item, "q&&"), "v&w");
  assert_string_equal(text_of(json_object_get(item, "metadata"), "k&"), "m");
  parse_result_release(&result);
}

static void namespaced_names(void **state)
{
  struct parse_result result;
  (void)state;

  /* Inside an annotation only local names count, and the first attribute
   * of a local name wins, whatever its namespace. A default namespace
   * keeps <export> an export. */
  parse_text("<export xmlns='urn:rossum' xmlns:q='urn:q'><results>\n"
             "<annotation q:url='https://x.example/a/7' url='https://x/a/8'>"
             "<q:status>exported</q:status>"
             "<document url='first' q:url='second'>"
             "<q:file_name>f.pdf</q:file_name></document>"
             "<content><q:section schema_id='s'>"
             "<q:datapoint q:schema_id='one' schema_id='two'>v</q:datapoint>"
             "</q:section></content>"
             "<q:automated>true</q:automated>"
             "</annotation></results></export>",
             &result);
  assert_int_equal(result.code, AG_OK);

  json_t *item = result_item(&result, 0);
  assert_int_equal(json_integer_value(json_object_get(item, "id")), 7);
  assert_string_equal(text_of(item, "status"), "exported");
  assert_string_equal(text_of(item, "file_name"), "f.pdf");
  assert_string_equal(text_of(item, "document_url"), "first");
  assert_string_equal(field(item, "one"), "v");
  assert_true(json_is_true(json_object_get(item, "automated")));
  parse_result_release(&result);

  parse_text("<x:export xmlns:x='urn:x'><results/></x:export>", &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "line 1: root element is <x:export>, expected "
                       "<export>");
  parse_result_release(&result);
}

static void mixed_character_data(void **state)
{
  struct parse_result result;
  (void)state;

  /* Text, CDATA sections and character references join, but comments and
   * processing instructions do not count. <automated> counts the text of
   * its child elements too. */
  parse_text("<export><results><annotation url='https://x.example/a/3'>\n"
             "<status><!-- c -->ex<![CDATA[por<ted>]]><?pi x?>&#116;ed"
             "</status>\n"
             "<arrived_at>  spaced  </arrived_at><exported_at/>\n"
             "<automated>t<x>ru</x><!-- c -->e</automated>\n"
             "<content> lead <section schema_id='s'> a\n"
             "<datapoint schema_id='d'> x <!-- y --> z </datapoint> b\n"
             "<multivalue schema_id='m'> t1 <tuple> t2 "
             "<datapoint schema_id='c'><![CDATA[2]]><![CDATA[3]]></datapoint>"
             "</tuple></multivalue></section></content>\n"
             "</annotation></results></export>",
             &result);
  assert_int_equal(result.code, AG_OK);

  json_t *item = result_item(&result, 0);
  assert_string_equal(text_of(item, "status"), "expor<ted>ted");
  assert_string_equal(text_of(item, "arrived_at"), "  spaced  ");
  assert_string_equal(text_of(item, "exported_at"), "");
  assert_true(json_is_true(json_object_get(item, "automated")));
  assert_string_equal(field(item, "d"), " x  z ");
  assert_string_equal(cell(item, "m", 0, "c"), "23");
  parse_result_release(&result);

  parse_text("<export><results><annotation>\n"
             "<automated>fa<x>l<y>s</y></x>x</automated>"
             "</annotation></results></export>",
             &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "line 2: <automated> is \"falsx\", expected true or "
                       "false");
  parse_result_release(&result);
}

/* --- hostile and broken documents --- */

static void doctype_entity_expansion(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("<?xml version=\"1.0\"?>\n"
             "<!DOCTYPE export [\n"
             " <!ENTITY a \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\">\n"
             " <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n"
             " <!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\n"
             " <!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">\n"
             " <!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">\n"
             " <!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\">\n"
             " <!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">\n"
             " <!ENTITY h \"&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;\">\n"
             " <!ENTITY i \"&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;\">\n"
             "]>\n"
             "<export><results><annotation><status>&i;</status>"
             "</annotation></results></export>\n",
             &result);
  assert_parse_failure(&result, AG_EPARSE, "DOCTYPE is not allowed");
  assert_int_equal(json_array_size(result.collector.items), 0);
  parse_result_release(&result);
}

static void doctype_external_entity(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("<?xml version=\"1.0\"?>\n"
             "<!DOCTYPE export [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n"
             "<export><results><annotation><status>&xxe;</status>"
             "</annotation></results></export>\n",
             &result);
  assert_parse_failure(&result, AG_EPARSE, "DOCTYPE is not allowed");
  assert_int_equal(json_array_size(result.collector.items), 0);
  assert_not_contains(result.err.message, "root:");
  parse_result_release(&result);
}

static void doctype_without_entities(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("<?xml version=\"1.0\"?>\n<!DOCTYPE export>\n<export/>", &result);
  assert_parse_failure(&result, AG_EPARSE, "line 2: DOCTYPE is not allowed");
  parse_result_release(&result);
}

static void doctype_in_utf16(void **state)
{
  static const char text[] =
      "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n"
      "<!DOCTYPE export [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n"
      "<export><results><annotation><status>&xxe;</status>"
      "</annotation></results></export>\n";
  struct parse_result result;
  char utf16[2 + 2 * sizeof(text)];
  (void)state;

  /* UTF-16LE with a BOM hides the ASCII bytes of "<!DOCTYPE", so the SAX
   * callback for the internal subset is what rejects the file. */
  size_t len = 0;
  utf16[len++] = '\xFF';
  utf16[len++] = '\xFE';
  for (size_t i = 0; i < sizeof(text) - 1; i++) {
    utf16[len++] = text[i];
    utf16[len++] = '\0';
  }
  parse_bytes(utf16, len, &result);
  assert_parse_failure(&result, AG_EPARSE, "DOCTYPE is not allowed");
  assert_int_equal(json_array_size(result.collector.items), 0);
  parse_result_release(&result);
}

static void wrong_root(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("<?xml version=\"1.0\"?>\n<annotations><results/></annotations>",
             &result);
  assert_parse_failure(
      &result, AG_EPARSE,
      "line 2: root element is <annotations>, expected <export>");
  assert_int_equal(result.collector.begin_calls, 0);
  parse_result_release(&result);
}

static void truncated_document(void **state)
{
  static const struct parse_failure_case cases[] = {
      {"cut inside a value",
       "<?xml version=\"1.0\"?>\n<export>\n<results>\n"
       "<annotation url='https://x.example/a/1'><status>exp",
       "line 4: truncated or malformed XML: Premature end of data in tag "
       "status line 4"},
      {"cut after the last annotation",
       "<export><results><annotation/></results>\n",
       "line 2: truncated or malformed XML: Premature end of data in tag "
       "export line 1"},
      {"second root element", "<export><results/></export>\n<export/>",
       "line 2: truncated or malformed XML: Extra content at the end of "
       "the document"},
  };
  struct parse_result result;
  (void)state;

  assert_parse_failures(export_parse_xml, cases, AG_EPARSE);

  /* Cut inside a start tag after a complete annotation: the first one may
   * reach the sink, but the parse still fails. */
  parse_text("<export><results><annotation/>\n<annot", &result);
  assert_parse_failure(&result, AG_EPARSE, "line 2: ");
  parse_result_release(&result);
}

static void invalid_utf8(void **state)
{
  static const struct parse_failure_case cases[] = {
      {"overlong sequence",
       "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<export><results>"
       "<annotation><status>\xC0\xAF</status></annotation></results>"
       "</export>",
       "line 2: Input is not proper UTF-8"},
      {"surrogate in an attribute",
       "<export><results><annotation url='\xED\xA0\x80'/></results></export>",
       "line 1: "},
  };
  (void)state;

  assert_parse_failures(export_parse_xml, cases, AG_EPARSE);
}

static void not_xml(void **state)
{
  /* The PNG signature contains NUL bytes, so it is parsed apart from the
   * text cases. */
  static const char binary[] = "\x89PNG\r\n\x1A\n\x00\x00\x00\rIHDR";
  static const struct parse_failure_case cases[] = {
      {"CSV export", "Invoice number,Total\r\n2024-0042,1.00\r\n", "line 1: "},
      /* Looks like EBCDIC to libxml2, whose conversion error is raised
       * outside the parser context. */
      {"EBCDIC-like bytes", "\x4C\x6F\xA7\x94\x93\x40garbage", "line "},
      {"empty file", "", "line 1: "},
  };
  struct parse_result result;
  (void)state;

  parse_bytes(binary, sizeof(binary) - 1, &result);
  assert_parse_failure(&result, AG_EPARSE, "line 1: ");
  parse_result_release(&result);

  assert_parse_failures(export_parse_xml, cases, AG_EPARSE);
}

static void datapoint_without_schema_id(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("<export>\n<results>\n"
             "<annotation url='https://x.example/a/9'><content>\n"
             "<section schema_id='s'>\n"
             "<datapoint schema_id='ok'>1</datapoint>\n"
             "<datapoint type='string'>2</datapoint>\n"
             "</section></content></annotation></results></export>",
             &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "line 6: <datapoint> without schema_id attribute "
                       "(annotation https://x.example/a/9)");
  assert_int_equal(json_array_size(result.collector.items), 0);
  parse_result_release(&result);
}

static void duplicate_schema_id(void **state)
{
  static const struct parse_failure_case cases[] = {
      {"datapoint in two sections",
       "<export><results><annotation><content>\n"
       "<section schema_id='a'><datapoint schema_id='x'>1</datapoint>"
       "</section>\n"
       "<section schema_id='b'><datapoint schema_id='x'>2</datapoint>"
       "</section>\n"
       "</content></annotation></results></export>",
       "line 3: duplicate datapoint schema_id \"x\""},
      {"metadata key",
       "<export><results><annotation><metadata>\n"
       "<item key='k'>1</item>\n<item key='k'>2</item>\n"
       "</metadata></annotation></results></export>",
       "line 3: duplicate metadata key \"k\""},
  };
  (void)state;

  assert_parse_failures(export_parse_xml, cases, AG_EPARSE);
}

static void unexpected_structure(void **state)
{
  static const struct parse_failure_case cases[] = {
      {"unknown element in results",
       "<export><results>\n<invoice/></results></export>",
       "line 2: unexpected element <invoice> in <results>"},
      {"section in a multivalue",
       "<export><results><annotation><content><section>\n"
       "<multivalue schema_id='m'><section/></multivalue>"
       "</section></content></annotation></results></export>",
       "line 2: unexpected element <section> in <multivalue>"},
      {"automated not a boolean",
       "<export><results><annotation>\n"
       "<automated>yes</automated></annotation></results></export>",
       "line 2: <automated> is \"yes\", expected true or false"},
      {"no results element",
       "<export>\n<annotation url='https://x.example/a/5'/></export>",
       "no <results> element in <export>"},
      {"status given twice",
       "<export><results><annotation>\n<status>a</status>\n"
       "<status>b</status></annotation></results></export>",
       "line 3: <status> appears twice in <annotation>"},
      {"element inside a datapoint",
       "<export><results><annotation><content><section>\n"
       "<datapoint schema_id='x'>12<i>34</i></datapoint></section>"
       "</content></annotation></results></export>",
       "line 2: <datapoint> contains the element <i>; expected text"},
  };
  (void)state;

  assert_parse_failures(export_parse_xml, cases, AG_EPARSE);
}

static void message_escapes_input(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("<export><results><annotation><content><section>"
             "<datapoint schema_id='a&#10;b'>1</datapoint>"
             "<datapoint schema_id='a&#10;b'>2</datapoint>"
             "</section></content></annotation></results></export>",
             &result);
  assert_parse_failure(&result, AG_EPARSE, "schema_id \"a\\x0Ab\"");
  parse_result_release(&result);
}

/* --- limits --- */

/* Append an export whose only annotation has a datapoint "value" with
 * value_len bytes of text from fill. */
static void build_value_export(struct text_buffer *buffer,
                               void (*fill)(struct text_buffer *, size_t),
                               size_t value_len)
{
  buffer_append(buffer, "<export>\n<results>\n"
                        "<annotation url='https://x.example/a/1'><content>"
                        "<section schema_id='s'>\n"
                        "<datapoint schema_id='value'>");
  fill(buffer, value_len);
  buffer_append(buffer, "</datapoint>\n</section></content></annotation>"
                        "</results></export>\n");
}

/* Append len bytes of mixed ASCII, two- and three-byte UTF-8 and line
 * breaks. len must be a multiple of the 32-byte pattern, so that no
 * character is cut. */
static void fill_mixed(struct text_buffer *buffer, size_t len)
{
  /* "Caf\u00e9 \u20ac 1 234,50 and padding.\n", 32 bytes in UTF-8. */
  static const char pattern[] =
      "Caf\xC3\xA9 \xE2\x82\xAC 1 234,50 and padding.\n";

  assert_int_equal(sizeof(pattern) - 1, 32);
  assert_int_equal(len % 32, 0);
  for (size_t done = 0; done < len; done += 32)
    buffer_append(buffer, "%s", pattern);
}

static void fill_letters(struct text_buffer *buffer, size_t len)
{
  buffer_fill(buffer, 'x', len);
}

/* Return the datapoint "value" of the only annotation. */
static json_t *only_value(struct parse_result *result)
{
  assert_int_equal(result->code, AG_OK);
  assert_int_equal(json_array_size(result->collector.items), 1);
  json_t *value = json_object_get(
      json_object_get(result_item(result, 0), "fields"), "value");
  assert_true(json_is_string(value));
  return value;
}

static void value_of_one_mebibyte(void **state)
{
  const size_t len = 1024 * 1024;
  struct text_buffer expected = {0};
  struct text_buffer document = {0};
  struct parse_result result;
  (void)state;

  fill_mixed(&expected, len);
  build_value_export(&document, fill_mixed, len);
  parse_buffer(&document, &result);

  json_t *value = only_value(&result);
  assert_int_equal(json_string_length(value), len);
  assert_memory_equal(json_string_value(value), expected.data, len);
  free(expected.data);
  parse_result_release(&result);
}

static void text_node_at_limit(void **state)
{
  const size_t len = 10000000;
  struct text_buffer document = {0};
  struct parse_result result;
  (void)state;

  build_value_export(&document, fill_letters, len);
  parse_buffer(&document, &result);

  json_t *value = only_value(&result);
  assert_int_equal(json_string_length(value), len);
  const char *text = json_string_value(value);
  assert_int_equal(strspn(text, "x"), len);
  parse_result_release(&result);
}

static void text_node_over_limit(void **state)
{
  struct text_buffer document = {0};
  struct parse_result result;
  (void)state;

  build_value_export(&document, fill_letters, 10000001);
  parse_buffer(&document, &result);
  assert_parse_failure(
      &result, AG_EPARSE,
      "line 4: text node longer than the limit of 10000000 bytes");
  assert_not_contains(result.err.message, "xmlSAX2Characters");
  assert_int_equal(json_array_size(result.collector.items), 0);
  parse_result_release(&result);

  /* Outside the annotations, in an element that is otherwise skipped. */
  buffer_append(&document, "<export>\n<pagination>\n");
  buffer_fill(&document, 'x', 10000001);
  buffer_append(&document, "</pagination><results/></export>");
  parse_buffer(&document, &result);
  assert_parse_failure(
      &result, AG_EPARSE,
      "line 3: text node longer than the limit of 10000000 bytes");
  parse_result_release(&result);

  /* Two adjacent CDATA sections of 6,000,000 bytes become one node. */
  buffer_append(&document, "<export><results><annotation><status>\n"
                           "<![CDATA[");
  buffer_fill(&document, 'a', 6000000);
  buffer_append(&document, "]]><![CDATA[");
  buffer_fill(&document, 'b', 6000000);
  buffer_append(&document, "]]></status></annotation></results></export>");
  parse_buffer(&document, &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "text node longer than the limit of 10000000 bytes");
  parse_result_release(&result);
}

static void markup_over_size_limits(void **state)
{
  struct text_buffer document = {0};
  struct parse_result result;
  (void)state;

  /* An attribute value longer than libxml2's XML_MAX_TEXT_LENGTH. */
  buffer_append(&document, "<export><results>\n<annotation url='");
  buffer_fill(&document, 'u', 11000000);
  buffer_append(&document, "'/></results></export>");
  parse_buffer(&document, &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "line 2: attribute value longer than libxml2's limit "
                       "of 10000000 bytes");
  assert_not_contains(result.err.message, "AttValue");
  parse_result_release(&result);

  buffer_append(&document, "<export><results/>\n<!--");
  buffer_fill(&document, 'c', 11000000);
  buffer_append(&document, "--></export>");
  parse_buffer(&document, &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "line 2: comment longer than libxml2's limit of "
                       "10000000 bytes");
  parse_result_release(&result);

  buffer_append(&document, "<export><results/>\n<?note ");
  buffer_fill(&document, 'p', 11000000);
  buffer_append(&document, "?></export>");
  parse_buffer(&document, &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "line 2: processing instruction longer than libxml2's "
                       "limit of 10000000 bytes");
  parse_result_release(&result);

  /* A start tag whose attribute values, each within the limit, do not
   * fit in libxml2's input buffer together. */
  buffer_append(&document, "<export><results>\n<annotation a='");
  buffer_fill(&document, 'a', 6000000);
  buffer_append(&document, "' b='");
  buffer_fill(&document, 'b', 6000000);
  buffer_append(&document, "'/></results></export>");
  parse_buffer(&document, &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "line 2: start tag or other markup longer than "
                       "libxml2's input limit of 10000000 bytes");
  assert_not_contains(result.err.message, "Huge input lookup");
  parse_result_release(&result);

  /* A single CDATA section one byte over the text limit. */
  buffer_append(&document, "<export><results><annotation><status>\n"
                           "<![CDATA[");
  buffer_fill(&document, 'a', 10000001);
  buffer_append(&document, "]]></status></annotation></results></export>");
  parse_buffer(&document, &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "line 2: CDATA section longer than the limit of "
                       "10000000 bytes");
  assert_int_equal(json_array_size(result.collector.items), 0);
  parse_result_release(&result);
}

static void cdata_at_limit(void **state)
{
  const size_t len = 10000000;
  struct text_buffer document = {0};
  struct parse_result result;
  (void)state;

  buffer_append(&document, "<export>\n<results>\n"
                           "<annotation url='https://x.example/a/1'><content>"
                           "<section schema_id='s'>\n"
                           "<datapoint schema_id='value'><![CDATA[");
  buffer_fill(&document, 'c', len);
  buffer_append(&document, "]]></datapoint>\n</section></content>"
                           "</annotation></results></export>\n");
  parse_buffer(&document, &result);

  json_t *value = only_value(&result);
  assert_int_equal(json_string_length(value), len);
  assert_int_equal(strspn(json_string_value(value), "c"), len);
  parse_result_release(&result);
}

static void many_line_items(void **state)
{
  const int count = 100000;
  struct text_buffer document = {0};
  struct parse_result result;
  (void)state;

  buffer_append(&document, "<export><results>"
                           "<annotation url='https://x.example/a/7'>"
                           "<content><section schema_id='items'>"
                           "<multivalue schema_id='line_items'>\n");
  for (int i = 0; i < count; i++)
    buffer_append(&document,
                  "<tuple schema_id='line_item'>"
                  "<datapoint schema_id='item_code'>C-%06d</datapoint>"
                  "<datapoint schema_id='item_amount_total'>%d.%02d"
                  "</datapoint></tuple>\n",
                  i, i / 100, i % 100);
  buffer_append(&document, "</multivalue></section></content></annotation>"
                           "</results></export>\n");
  parse_buffer(&document, &result);

  assert_int_equal(result.code, AG_OK);
  assert_int_equal(json_array_size(result.collector.items), 1);
  json_t *item = result_item(&result, 0);
  assert_int_equal(json_array_size(table(item, "line_items")), (size_t)count);
  assert_string_equal(cell(item, "line_items", 0, "item_code"), "C-000000");
  assert_string_equal(cell(item, "line_items", 0, "item_amount_total"), "0.00");
  assert_string_equal(cell(item, "line_items", 99999, "item_code"), "C-099999");
  assert_string_equal(cell(item, "line_items", 99999, "item_amount_total"),
                      "999.99");
  parse_result_release(&result);
}

/* Append an export in which the innermost element is at level levels
 * (<export> is level 1), one element per line from line 2 on. Inside
 * an annotation the innermost element is a datapoint; otherwise the
 * nesting is inside <pagination>. */
static void build_nested_export(struct text_buffer *buffer, int levels,
                                bool in_annotation)
{
  int wrappers;

  if (in_annotation) {
    /* export, results, annotation, content, sections..., datapoint */
    buffer_append(buffer, "<export><results>"
                          "<annotation url='https://x.example/a/3'>"
                          "<content>\n");
    wrappers = levels - 5;
  } else {
    buffer_append(buffer, "<export><pagination>\n");
    wrappers = levels - 2;
  }
  for (int i = 0; i < wrappers; i++)
    buffer_append(buffer, "<section schema_id='s%d'>\n", i);
  if (in_annotation)
    buffer_append(buffer, "<datapoint schema_id='deep'>v</datapoint>\n");
  for (int i = 0; i < wrappers; i++)
    buffer_append(buffer, "</section>");
  if (in_annotation)
    buffer_append(buffer, "</content></annotation></results></export>\n");
  else
    buffer_append(buffer, "</pagination><results/></export>\n");
}

static void depth_at_limit(void **state)
{
  struct text_buffer document = {0};
  struct parse_result result;
  (void)state;

  build_nested_export(&document, 64, true);
  parse_buffer(&document, &result);
  assert_int_equal(result.code, AG_OK);
  assert_string_equal(field(result_item(&result, 0), "deep"), "v");
  parse_result_release(&result);

  build_nested_export(&document, 64, false);
  parse_buffer(&document, &result);
  assert_int_equal(result.code, AG_OK);
  parse_result_release(&result);
}

static void depth_over_limit(void **state)
{
  struct text_buffer document = {0};
  struct parse_result result;
  (void)state;

  /* Sections at levels 5 to 64 are on lines 2 to 61, and the datapoint
   * at level 65 is on line 62. */
  build_nested_export(&document, 65, true);
  parse_buffer(&document, &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "line 62: element nesting deeper than the limit of 64 "
                       "levels (annotation https://x.example/a/3)");
  assert_int_equal(json_array_size(result.collector.items), 0);
  parse_result_release(&result);

  /* Levels 3 to 65 are sections on lines 2 to 64. */
  build_nested_export(&document, 65, false);
  parse_buffer(&document, &result);
  assert_parse_failure(
      &result, AG_EPARSE,
      "line 64: element nesting deeper than the limit of 64 levels");
  parse_result_release(&result);

  /* libxml2 2.9.14 stops at 256 levels by itself ("Excessive depth in
   * document"), but the parser's own limit comes first. */
  build_nested_export(&document, 300, true);
  parse_buffer(&document, &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "element nesting deeper than the limit of 64 levels");
  assert_not_contains(result.err.message, "XML_PARSE_HUGE");
  parse_result_release(&result);
}

/* Append a start tag <name schema_id="x=>y" a1='x=>y' ...> with count
 * attributes, of which the last is a namespace declaration. The values
 * contain '=' and '>', which the attribute count must ignore. */
static void append_start_tag(struct text_buffer *buffer, const char *name,
                             int count)
{
  buffer_append(buffer, "<%s schema_id=\"x=>y\"", name);
  for (int i = 1; i < count - 1; i++)
    buffer_append(buffer, i % 2 == 0 ? " a%d=\"x=>y\"" : " a%d='x=>y'", i);
  buffer_append(buffer, " xmlns:n%d='urn:x'>", count);
}

static void attributes_at_limit(void **state)
{
  struct text_buffer document = {0};
  struct parse_result result;
  (void)state;

  buffer_append(&document, "<?xml version=\"1.0\"?>\n"
                           "<!-- a=1 b=2 -->\n<export><results>\n");
  append_start_tag(&document, "annotation", 64);
  buffer_append(&document, "<?note a=\"1\" b='2'?><content>\n");
  append_start_tag(&document, "datapoint", 64);
  buffer_append(&document, "<![CDATA[<x a=1 b=2>]]></datapoint>"
                           "</content></annotation></results></export>");
  parse_buffer(&document, &result);
  assert_int_equal(result.code, AG_OK);
  assert_string_equal(field(result_item(&result, 0), "x=>y"), "<x a=1 b=2>");
  parse_result_release(&result);
}

static void attributes_over_limit(void **state)
{
  struct text_buffer document = {0};
  struct parse_result result;
  (void)state;

  buffer_append(&document, "<export><results><annotation><content>\n");
  append_start_tag(&document, "datapoint", 65);
  buffer_append(&document, "</datapoint></content></annotation>"
                           "</results></export>");
  parse_buffer(&document, &result);
  assert_parse_failure(
      &result, AG_EPARSE,
      "line 2: start tag with more than the limit of 64 attributes");
  assert_int_equal(json_array_size(result.collector.items), 0);
  parse_result_release(&result);
}

/* The raw scan counts lines per block of input, so a tag far into the
 * file must still be reported on its own line. */
static void attributes_over_limit_late_line(void **state)
{
  struct text_buffer document = {0};
  struct parse_result result;
  (void)state;

  buffer_append(&document, "<export><results><annotation><content>\n");
  for (int i = 0; i < 5000; i++)
    buffer_append(&document, "<section schema_id=\"s%d\"></section>\n", i);
  append_start_tag(&document, "datapoint", 65);
  buffer_append(&document, "</datapoint></content></annotation>"
                           "</results></export>");
  parse_buffer(&document, &result);
  assert_parse_failure(
      &result, AG_EPARSE,
      "line 5002: start tag with more than the limit of 64 attributes");
  parse_result_release(&result);
}

/* libxml2 2.9.14 checks attribute names for duplicates in quadratic time:
 * parsing this tag took it about 100 s (x86-64, 2 cores). The
 * raw scan must reject the tag before libxml2 reads it. */
static void attributes_rejected_before_parse(void **state)
{
  struct text_buffer document = {0};
  struct parse_result result;
  struct timespec start, end;
  (void)state;

  buffer_append(&document, "<export><results>\n<annotation");
  for (int i = 0; i < 100000; i++)
    buffer_append(&document, " a%d=''", i);
  buffer_append(&document, "/></results></export>");

  clock_gettime(CLOCK_MONOTONIC, &start);
  parse_buffer(&document, &result);
  clock_gettime(CLOCK_MONOTONIC, &end);

  assert_parse_failure(
      &result, AG_EPARSE,
      "line 2: start tag with more than the limit of 64 attributes");
  assert_true(end.tv_sec - start.tv_sec < 10);
  parse_result_release(&result);
}

static void attributes_over_limit_utf16(void **state)
{
  struct text_buffer document = {0};
  struct parse_result result;
  char *utf16;
  size_t len;
  (void)state;

  /* UTF-16 hides the attributes from the raw scan, so the element check
   * after parsing rejects them. */
  buffer_append(&document, "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n"
                           "<export><results><annotation "
                           "url='https://x.example/a/2'><content>\n");
  append_start_tag(&document, "section", 65);
  buffer_append(&document, "</section></content></annotation>"
                           "</results></export>");
  to_utf16(document.data, &utf16, &len);
  free(document.data);

  parse_bytes(utf16, len, &result);
  free(utf16);
  assert_parse_failure(&result, AG_EPARSE,
                       "line 3: <section> has 65 attributes, more than the "
                       "limit of 64 (annotation https://x.example/a/2)");
  parse_result_release(&result);
}

static void doctype_in_comment_accepted(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("<?xml version=\"1.0\"?>\n<!-- no <!DOCTYPE export> here -->\n"
             "<export><results/></export>",
             &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result.collector.begin_calls, 1);
  parse_result_release(&result);
}

static void doctype_after_other_markup(void **state)
{
  static const char *const accepted[] = {
      "<?pi <!DOCTYPE export>?>\n<export><results/></export>",
      "<!-- a -->\n<export><results><annotation><status>"
      "<![CDATA[<!DOCTYPE x>]]></status></annotation></results></export>",
      "<export><results/></export>\n<!-- ]]> <!DOCTYPE - -> -->",
  };
  struct parse_result result;
  (void)state;

  for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
    parse_text(accepted[i], &result);
    assert_int_equal(result.code, AG_OK);
    parse_result_release(&result);
  }

  /* "--->" ends the comment for the raw scan, which rejects the DOCTYPE
   * after it before libxml2 reads the comment. */
  parse_text("<!-- a --->\n<?pi ?\?>\n<!DOCTYPE export>\n<export/>", &result);
  assert_parse_failure(&result, AG_EPARSE, "line 3: DOCTYPE is not allowed");
  parse_result_release(&result);
}

/* Values full of '=' make the quick count of the raw scan exceed the
 * limit, so the scan counts again outside the quotes and must accept the
 * tag. */
static void attributes_with_equals_in_values(void **state)
{
  struct text_buffer document = {0};
  struct parse_result result;
  (void)state;

  buffer_append(&document, "<export><results><annotation><content>\n"
                           "<datapoint schema_id='x'");
  for (int i = 0; i < 10; i++)
    buffer_append(&document, " a%d='==========' b%d=\"a=b>c=d\"", i, i);
  buffer_append(&document, ">v</datapoint></content></annotation>"
                           "</results></export>");
  parse_buffer(&document, &result);
  assert_int_equal(result.code, AG_OK);
  assert_string_equal(field(result_item(&result, 0), "x"), "v");
  parse_result_release(&result);
}

/* libxml2 reads the input in blocks of about 4,000 bytes, and the raw
 * scan takes a start tag that a block boundary cuts apart by its bytes.
 * Tags at the limit and one over it are placed across the boundary at
 * many offsets. */
static void attributes_across_read_blocks(void **state)
{
  struct text_buffer document = {0};
  struct parse_result result;
  (void)state;

  for (int padding = 3300; padding < 4100; padding += 37) {
    for (int count = 64; count <= 65; count++) {
      buffer_append(&document, "<export><results><annotation><content>\n");
      buffer_fill(&document, ' ', (size_t)padding);
      append_start_tag(&document, "datapoint", count);
      buffer_append(&document, "v</datapoint></content></annotation>"
                               "</results></export>");
      parse_buffer(&document, &result);
      if (count == 64)
        assert_int_equal(result.code, AG_OK);
      else
        assert_parse_failure(&result, AG_EPARSE,
                             "line 2: start tag with more than the limit of "
                             "64 attributes");
      parse_result_release(&result);
    }
  }
}

/* --- network access --- */

/* A TCP listener on 127.0.0.1 that counts the connections a parse makes.
 * The kernel completes a connection into the backlog without accept(),
 * so a connection attempt shows as a pending connection afterwards. */
struct loopback_listener {
  int fd;
  unsigned port;
};

static void listener_open(struct loopback_listener *listener)
{
  struct sockaddr_in address;
  socklen_t size = sizeof(address);

  memset(&address, 0, sizeof(address));
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  listener->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(listener->fd >= 0);
  assert_int_equal(bind(listener->fd, (struct sockaddr *)&address, size), 0);
  assert_int_equal(listen(listener->fd, 16), 0);
  assert_int_equal(
      getsockname(listener->fd, (struct sockaddr *)&address, &size), 0);
  listener->port = ntohs(address.sin_port);
  assert_true(listener->port > 0);
}

/* Accept and close every pending connection without waiting, and return
 * how many there were. */
static int listener_take_connections(struct loopback_listener *listener)
{
  struct pollfd pending = {.fd = listener->fd, .events = POLLIN};
  int count = 0;

  while (poll(&pending, 1, 0) == 1 && (pending.revents & POLLIN) != 0) {
    int fd = accept(listener->fd, NULL, NULL);
    assert_true(fd >= 0);
    close(fd);
    count++;
  }
  return count;
}

/* Connect to the listener once, to show that it counts a connection. */
static void listener_self_check(struct loopback_listener *listener)
{
  struct sockaddr_in address;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  assert_true(fd >= 0);
  memset(&address, 0, sizeof(address));
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons((unsigned short)listener->port);
  assert_int_equal(connect(fd, (struct sockaddr *)&address, sizeof(address)),
                   0);
  assert_int_equal(listener_take_connections(listener), 1);
  close(fd);
}

/* Documents that name a URL on the listener, whose port replaces PORT. */
static const struct parse_failure_case network_rejected[] = {
    {"external general entity",
     "<?xml version=\"1.0\"?>\n"
     "<!DOCTYPE export [<!ENTITY x SYSTEM \"http://127.0.0.1:PORT/x\">]>\n"
     "<export><results><annotation><status>&x;</status></annotation>"
     "</results></export>\n",
     "line 2: DOCTYPE is not allowed"},
    {"external DTD",
     "<!DOCTYPE export SYSTEM \"http://127.0.0.1:PORT/export.dtd\">\n"
     "<export><results/></export>\n",
     "line 1: DOCTYPE is not allowed"},
    {"external parameter entity",
     "<!DOCTYPE export [<!ENTITY % p SYSTEM \"http://127.0.0.1:PORT/p\"> %p;]>"
     "\n<export><results/></export>\n",
     "line 1: DOCTYPE is not allowed"},
    {"XInclude in results",
     "<export><results>\n<xi:include "
     "xmlns:xi=\"http://www.w3.org/2001/XInclude\" "
     "href=\"http://127.0.0.1:PORT/a.xml\"/></results></export>\n",
     "line 2: unexpected element <xi:include> in <results>"},
    {"XInclude as a value",
     "<export><results><annotation><content><section>\n"
     "<datapoint schema_id='a'><xi:include parse=\"text\" "
     "xmlns:xi=\"http://www.w3.org/2001/XInclude\" "
     "href=\"http://127.0.0.1:PORT/a.txt\"/></datapoint>"
     "</section></content></annotation></results></export>\n",
     "line 2: <datapoint> contains the element <include>"},
};

/* Store text in out with each "PORT" replaced by port. */
static void insert_port(const char *text, unsigned port, char *out, size_t size)
{
  char digits[16];
  size_t len = 0;

  format_text(digits, sizeof(digits), "%u", port);
  while (*text != '\0') {
    const char *piece = text;
    size_t piece_len = 1;
    if (strncmp(text, "PORT", 4) == 0) {
      piece = digits;
      piece_len = strlen(digits);
    }
    assert_true(len + piece_len < size);
    memcpy(out + len, piece, piece_len);
    len += piece_len;
    text += piece == digits ? 4 : 1;
  }
  out[len] = '\0';
}

static void parse_with_port(const char *text, unsigned port,
                            struct parse_result *result)
{
  char document[1024];

  insert_port(text, port, document, sizeof(document));
  parse_text(document, result);
}

static void network_references_rejected(void **state)
{
  struct loopback_listener listener;
  struct parse_result result;
  (void)state;

  listener_open(&listener);
  for (size_t i = 0; i < sizeof(network_rejected) / sizeof(network_rejected[0]);
       i++) {
    parse_with_port(network_rejected[i].text, listener.port, &result);
    check_parse_failure(&result, AG_EPARSE, network_rejected[i].message_part,
                        network_rejected[i].name, __FILE__, __LINE__);
    assert_int_equal(listener_take_connections(&listener), 0);
    parse_result_release(&result);
  }
  listener_self_check(&listener);
  close(listener.fd);
}

static void network_entity_utf16(void **state)
{
  struct loopback_listener listener;
  struct parse_result result;
  char text[1024];
  char *utf16;
  size_t len;
  (void)state;

  /* UTF-16 hides the DOCTYPE from the raw scan, so libxml2 reads the
   * entity declaration and the reference before the parser rejects the
   * DOCTYPE node. */
  listener_open(&listener);
  insert_port("<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n"
              "<!DOCTYPE export [<!ENTITY x SYSTEM "
              "\"http://127.0.0.1:PORT/x\">]>\n"
              "<export><results><annotation><status>&x;</status>"
              "</annotation></results></export>\n",
              listener.port, text, sizeof(text));
  to_utf16(text, &utf16, &len);
  parse_bytes(utf16, len, &result);
  free(utf16);
  assert_parse_failure(&result, AG_EPARSE, "DOCTYPE is not allowed");
  assert_int_equal(listener_take_connections(&listener), 0);
  parse_result_release(&result);
  listener_self_check(&listener);
  close(listener.fd);
}

static void network_hints_ignored(void **state)
{
  static const char text[] =
      "<?xml version=\"1.0\"?>\n"
      "<?xml-stylesheet type=\"text/xsl\" href=\"http://127.0.0.1:PORT/s\"?>\n"
      "<export xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
      "xsi:schemaLocation=\"urn:rossum http://127.0.0.1:PORT/export.xsd\" "
      "xsi:noNamespaceSchemaLocation=\"http://127.0.0.1:PORT/plain.xsd\">"
      "<results><annotation><content><section>"
      "<datapoint schema_id='a'>1</datapoint>"
      "<xi:include xmlns:xi=\"http://www.w3.org/2001/XInclude\" "
      "href=\"http://127.0.0.1:PORT/more.xml\"/>"
      "</section></content></annotation></results></export>\n";
  struct loopback_listener listener;
  struct parse_result result;
  (void)state;

  /* Schema locations, a stylesheet and an XInclude between datapoints are
   * ordinary markup to the parser, so nothing is fetched or included. */
  listener_open(&listener);
  parse_with_port(text, listener.port, &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result.stderr_bytes, 0);
  json_t *item = result_item(&result, 0);
  json_t *fields = json_object_get(item, "fields");
  assert_int_equal(json_object_size(fields), 1);
  assert_string_equal(text_of(fields, "a"), "1");
  assert_int_equal(json_object_size(json_object_get(item, "tables")), 0);
  assert_int_equal(listener_take_connections(&listener), 0);
  parse_result_release(&result);
  listener_self_check(&listener);
  close(listener.fd);
}

static void message_cut_keeps_utf8(void **state)
{
  struct text_buffer document = {0};
  struct parse_result result;
  (void)state;

  /* An element name of 600 bytes fills the message buffers of both the
   * agent's messages and libxml2's, so each message is cut. */
  buffer_append(&document, "<export><results><annotation><content>"
                           "<multivalue schema_id='m'><ab");
  for (int i = 0; i < 300; i++)
    buffer_append(&document, "\xC3\xA9");
  buffer_append(&document, "/></multivalue></content></annotation>"
                           "</results></export>");
  parse_buffer(&document, &result);
  assert_parse_failure(&result, AG_EPARSE, "unexpected element <ab\xC3\xA9");
  assert_true(utf8_valid(result.err.message, strlen(result.err.message), NULL));
  parse_result_release(&result);

  buffer_append(&document, "<export><a");
  for (int i = 0; i < 300; i++)
    buffer_append(&document, "\xC3\xA9");
  buffer_append(&document, "></b></export>");
  parse_buffer(&document, &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "Opening and ending tag mismatch: a\xC3\xA9");
  assert_true(utf8_valid(result.err.message, strlen(result.err.message), NULL));
  parse_result_release(&result);
}

static void message_escapes_quoted_document(void **state)
{
  struct parse_result result;
  (void)state;

  /* libxml2 quotes up to 50 bytes of an unfinished CDATA section, here a
   * tab, DEL and a UTF-8 character that the 50 bytes cut apart. */
  parse_text("<export><results><annotation><status>\n<![CDATA[\t\x7F"
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\xC3\xA9 ...",
             &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "line 2: CData section not finished \\x09\\x7F");
  assert_non_null(strstr(result.err.message, "xxx\\xC3"));
  assert_true(utf8_valid(result.err.message, strlen(result.err.message), NULL));
  for (const char *c = result.err.message; *c != '\0'; c++)
    assert_false((unsigned char)*c < 0x20 || *c == 0x7F);
  parse_result_release(&result);
}

static void sink_error_stops(void **state)
{
  struct parse_result result;
  char path[1024];
  (void)state;

  snprintf(path, sizeof(path), "%s/%s", TEST_DATA_DIR,
           "rossum_export_multi.xml");
  parse_export_file(export_parse_xml, path, 1, &result);
  assert_parse_failure(&result, AG_ELOCAL, "sink is full");
  assert_int_equal(json_array_size(result.collector.items), 1);
  parse_result_release(&result);
}

static void missing_file(void **state)
{
  struct parse_result result;
  (void)state;

  parse_export_file(export_parse_xml, "/nonexistent/export.xml", -1, &result);
  assert_parse_failure(&result, AG_ELOCAL, "open failed: ");
  assert_int_equal(result.collector.begin_calls, 0);
  parse_result_release(&result);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(format_of_extension),
      cmocka_unit_test(format_names),
      cmocka_unit_test(single_sample),
      cmocka_unit_test(key_order),
      cmocka_unit_test(multi_sample),
      cmocka_unit_test(edge_cases_first),
      cmocka_unit_test(edge_cases_credit_note),
      cmocka_unit_test(empty_sample),
      cmocka_unit_test(public_sdk_sample),
      cmocka_unit_test(missing_elements_null),
      cmocka_unit_test(id_not_numeric),
      cmocka_unit_test(bare_datapoint_in_multivalue),
      cmocka_unit_test(many_annotations),
      cmocka_unit_test(attribute_references_decoded),
      cmocka_unit_test(namespaced_names),
      cmocka_unit_test(mixed_character_data),
      cmocka_unit_test(doctype_entity_expansion),
      cmocka_unit_test(doctype_external_entity),
      cmocka_unit_test(doctype_without_entities),
      cmocka_unit_test(doctype_in_utf16),
      cmocka_unit_test(wrong_root),
      cmocka_unit_test(truncated_document),
      cmocka_unit_test(invalid_utf8),
      cmocka_unit_test(not_xml),
      cmocka_unit_test(datapoint_without_schema_id),
      cmocka_unit_test(duplicate_schema_id),
      cmocka_unit_test(unexpected_structure),
      cmocka_unit_test(message_escapes_input),
      cmocka_unit_test(value_of_one_mebibyte),
      cmocka_unit_test(text_node_at_limit),
      cmocka_unit_test(text_node_over_limit),
      cmocka_unit_test(markup_over_size_limits),
      cmocka_unit_test(cdata_at_limit),
      cmocka_unit_test(many_line_items),
      cmocka_unit_test(depth_at_limit),
      cmocka_unit_test(depth_over_limit),
      cmocka_unit_test(attributes_at_limit),
      cmocka_unit_test(attributes_over_limit),
      cmocka_unit_test(attributes_over_limit_late_line),
      cmocka_unit_test(attributes_rejected_before_parse),
      cmocka_unit_test(attributes_over_limit_utf16),
      cmocka_unit_test(doctype_in_comment_accepted),
      cmocka_unit_test(doctype_after_other_markup),
      cmocka_unit_test(attributes_with_equals_in_values),
      cmocka_unit_test(attributes_across_read_blocks),
      cmocka_unit_test(network_references_rejected),
      cmocka_unit_test(network_entity_utf16),
      cmocka_unit_test(network_hints_ignored),
      cmocka_unit_test(message_cut_keeps_utf8),
      cmocka_unit_test(message_escapes_quoted_document),
      cmocka_unit_test(sink_error_stops),
      cmocka_unit_test(missing_file),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
