/* Unit tests for export.c and export_xml.c: format recognition, the
 * sample XML exports described in tests/data/README.md, and hostile or
 * broken documents. */
#include "agent/export.h"

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

  /* UTF-16LE with a BOM hides the ASCII bytes of "<!DOCTYPE", so the
   * reader's DOCTYPE node check is what rejects the file. */
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
  struct parse_result result;
  (void)state;

  parse_text("<?xml version=\"1.0\"?>\n<export>\n<results>\n"
             "<annotation url='https://x.example/a/1'><status>exp",
             &result);
  assert_parse_failure(&result, AG_EPARSE, "line 4: ");
  assert_int_equal(json_array_size(result.collector.items), 0);
  parse_result_release(&result);

  /* Cut after a complete annotation: the first one may reach the sink,
   * but the parse still fails. */
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
      cmocka_unit_test(sink_error_stops),
      cmocka_unit_test(missing_file),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
