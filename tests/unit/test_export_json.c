/* Unit tests for export_json.c: the JSON sample export described in
 * tests/data/README.md, its agreement with the XML parser, and hostile or
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
#include <unistd.h>

/* A whole export with one annotation whose members after "url" are
 * members, which must start with a comma. */
#define ANNOTATION_URL "https://acme-demo.rossum.app/api/v1/annotations/7"
#define ONE_ANNOTATION(members)                                                \
  "{\"results\":[{\"url\":\"" ANNOTATION_URL "\"" members "}]}"
/* The same with content, a list of nodes. */
#define WITH_CONTENT(nodes) ONE_ANNOTATION(",\"content\":[" nodes "]")
#define DATAPOINT(schema_id, value)                                            \
  "{\"category\":\"datapoint\",\"schema_id\":\"" schema_id                     \
  "\",\"value\":" value ",\"type\":\"string\"}"

static void parse_sample(const char *name, struct parse_result *result)
{
  char path[1024];

  format_text(path, sizeof(path), "%s/%s", TEST_DATA_DIR, name);
  parse_export_file(export_parse_json, path, -1, result);
}

static void parse_text(const char *text, struct parse_result *result)
{
  parse_export_bytes(export_parse_json, text, strlen(text), result);
}

static json_t *fields_of(json_t *item)
{
  json_t *fields = json_object_get(item, "fields");

  assert_true(json_is_object(fields));
  return fields;
}

static const char *field(json_t *item, const char *schema_id)
{
  return text_of(fields_of(item), schema_id);
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

/* Check the description, quantity and total of one line item. */
static void assert_line_item(json_t *item, size_t row, const char *description,
                             const char *quantity, const char *total)
{
  assert_string_equal(cell(item, "line_items", row, "item_description"),
                      description);
  assert_string_equal(cell(item, "line_items", row, "item_quantity"), quantity);
  assert_string_equal(cell(item, "line_items", row, "item_amount_total"),
                      total);
}

/* --- format recognition --- */

static void format_of_json(void **state)
{
  (void)state;
  assert_int_equal(export_format_of("a.json"), EXPORT_JSON);
  assert_int_equal(export_format_of("A.JSON"), EXPORT_JSON);
  assert_int_equal(export_format_of("export.2024.Json"), EXPORT_JSON);
  assert_int_equal(export_format_of(".json"), EXPORT_UNKNOWN);
  assert_int_equal(export_format_of("a.json.part"), EXPORT_UNKNOWN);
  assert_int_equal(export_format_of("a.jsonl"), EXPORT_UNKNOWN);
  assert_string_equal(export_format_name(EXPORT_JSON), "json");
}

static void annotation_id_rules(void **state)
{
  struct {
    const char *url;
    const char *text; /* expected string id, or NULL for an integer */
    json_int_t number;
  } cases[] = {
      {"https://x/api/v1/annotations/4410021", NULL, 4410021},
      {"https://x/api/v1/annotations/4410021/", NULL, 4410021},
      {"https://x/annotations/0", NULL, 0},
      {"https://x/annotations/007", "007", 0},
      {"https://x/annotations/1234567890123456789", "1234567890123456789", 0},
      {"https://x/annotations/12a", "12a", 0},
      {"plain", "plain", 0},
      {"https://x/annotations//", "", 0},
  };
  (void)state;

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    json_t *id = export_annotation_id(cases[i].url);
    if (cases[i].text == NULL) {
      assert_true(json_is_integer(id));
      assert_int_equal(json_integer_value(id), cases[i].number);
    } else {
      assert_true(json_is_string(id));
      assert_string_equal(json_string_value(id), cases[i].text);
    }
    json_decref(id);
  }
  json_t *none = export_annotation_id(NULL);
  assert_true(json_is_null(none));
  json_decref(none);
}

/* --- the sample --- */

static void multi_sample(void **state)
{
  struct parse_result result;
  (void)state;

  parse_sample("rossum_export_multi.json", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result.stderr_bytes, 0);
  assert_int_equal(result.collector.begin_calls, 1);
  assert_string_equal(result.collector.list_name, "annotations");
  assert_int_equal(result_item_count(&result), 3);

  json_t *first = result_item(&result, 0);
  assert_int_equal(json_integer_value(json_object_get(first, "id")), 4410021);
  assert_string_equal(text_of(first, "status"), "exported");
  assert_string_equal(text_of(first, "exported_at"),
                      "2024-11-05T10:12:55.871004Z");
  assert_string_equal(text_of(first, "file_name"), "greenleaf_GC-118230.pdf");
  assert_string_equal(text_of(first, "document_url"),
                      "https://acme-demo.rossum.app/api/v1/documents/5520021");
  assert_string_equal(text_of(first, "modifier"), "ap.clerk@example.com");
  assert_true(json_is_false(json_object_get(first, "automated")));
  assert_string_equal(field(first, "document_id"), "GC-118230");
  assert_string_equal(field(first, "amount_total"), "394.80");
  assert_string_equal(field(first, "currency"), "gbp");
  assert_string_equal(field(first, "sender_address"),
                      "Unit 4, Mill Lane\nReading RG1 2ZZ\nUnited Kingdom");
  assert_string_equal(field(first, "sender_ic"), "");
  assert_null(json_object_get(fields_of(first), "item_code"));
  assert_int_equal(json_array_size(table(first, "line_items")), 3);
  assert_line_item(first, 0, "Sandwich platter (12 pcs)", "4", "144.00");
  assert_line_item(first, 1, "Fresh fruit bowl", "6", "75.00");
  assert_line_item(first, 2, "Coffee service per person", "40", "110.00");
  assert_int_equal(json_array_size(table(first, "tax_details")), 1);
  assert_string_equal(cell(first, "tax_details", 0, "tax_detail_rate"), "20");
  assert_string_equal(cell(first, "tax_details", 0, "tax_detail_base"),
                      "329.00");
  assert_string_equal(cell(first, "tax_details", 0, "tax_detail_tax"), "65.80");
  assert_int_equal(json_object_size(json_object_get(first, "metadata")), 0);

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
  assert_line_item(second, 0, "Ocean freight Rotterdam - Newark, 1x40HC", "1",
                   "2850.00");
  assert_string_equal(cell(second, "line_items", 0, "item_code"), "");
  assert_string_equal(cell(second, "line_items", 0, "item_uom"), "");

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

static void key_order(void **state)
{
  static const char *const keys[] = {"id",           "url",         "status",
                                     "arrived_at",   "exported_at", "file_name",
                                     "document_url", "modifier",    "automated",
                                     "fields",       "tables",      "metadata"};
  struct parse_result result;
  (void)state;

  parse_sample("rossum_export_multi.json", &result);
  assert_int_equal(result.code, AG_OK);

  for (size_t i = 0; i < result_item_count(&result); i++)
    assert_keys(result_item(&result, i), keys, sizeof(keys) / sizeof(keys[0]));
  parse_result_release(&result);
}

/* The JSON and XML samples hold the same annotations, so both parsers
 * must give equal objects, item by item. */
static void same_as_xml(void **state)
{
  struct parse_result from_json;
  struct parse_result from_xml;
  char path[1024];
  (void)state;

  parse_sample("rossum_export_multi.json", &from_json);
  format_text(path, sizeof(path), "%s/%s", TEST_DATA_DIR,
              "rossum_export_multi.xml");
  parse_export_file(export_parse_xml, path, -1, &from_xml);
  assert_int_equal(from_json.code, AG_OK);
  assert_int_equal(from_xml.code, AG_OK);
  assert_int_equal(result_item_count(&from_json), result_item_count(&from_xml));

  for (size_t i = 0; i < result_item_count(&from_xml); i++) {
    json_t *json_item = result_item(&from_json, i);
    json_t *xml_item = result_item(&from_xml, i);
    if (!json_equal(json_item, xml_item)) {
      char *json_text = json_dumps(json_item, JSON_SORT_KEYS);
      char *xml_text = json_dumps(xml_item, JSON_SORT_KEYS);
      print_error("annotation %zu differs:\nJSON %s\nXML  %s\n", i, json_text,
                  xml_text);
      free(json_text);
      free(xml_text);
      fail();
    }
  }
  parse_result_release(&from_json);
  parse_result_release(&from_xml);
}

/* --- documents that are valid but unusual --- */

static void empty_results(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("{\"pagination\":{\"total\":0},\"results\":[]}", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result.collector.begin_calls, 1);
  assert_string_equal(result.collector.list_name, "annotations");
  assert_int_equal(result_item_count(&result), 0);
  parse_result_release(&result);
}

static void absent_members_null(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("{\"results\":[{\"status\":null}]}", &result);
  assert_int_equal(result.code, AG_OK);

  json_t *item = result_item(&result, 0);
  static const char *const nulls[] = {
      "id",          "url",       "status",       "arrived_at",
      "exported_at", "file_name", "document_url", "modifier"};
  for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
    if (!json_is_null(json_object_get(item, nulls[i])))
      fail_msg("\"%s\" is not null", nulls[i]);
  }
  assert_true(json_is_false(json_object_get(item, "automated")));
  assert_int_equal(json_object_size(json_object_get(item, "fields")), 0);
  assert_int_equal(json_object_size(json_object_get(item, "tables")), 0);
  assert_int_equal(json_object_size(json_object_get(item, "metadata")), 0);
  parse_result_release(&result);
}

static void datapoint_values(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text(
      WITH_CONTENT(DATAPOINT(
          "text", "\"  -1.10 \\u20ac \"") ","
                                          "{\"category\":\"datapoint\","
                                          "\"schema_id\":\"none\"}," DATAPOINT(
                                              "null",
                                              "null") "," DATAPOINT("empty",
                                                                    "\"\"")),
      &result);
  assert_int_equal(result.code, AG_OK);

  json_t *item = result_item(&result, 0);
  assert_string_equal(field(item, "text"), "  -1.10 \xe2\x82\xac ");
  assert_string_equal(field(item, "none"), "");
  assert_string_equal(field(item, "null"), "");
  assert_string_equal(field(item, "empty"), "");
  parse_result_release(&result);
}

/* A tuple without children is {}, a bare datapoint in a multivalue its
 * value, and sections may nest and be empty. */
static void content_shapes(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text(
      WITH_CONTENT(
          "{\"category\":\"section\",\"schema_id\":\"s\",\"children\":["
          "{\"category\":\"section\",\"schema_id\":\"inner\",\"children\":"
          "[" DATAPOINT(
              "deep",
              "\"d\"") "]},"
                       "{\"category\":\"section\",\"schema_id\":\"bare\"},"
                       "{\"category\":\"multivalue\",\"schema_id\":\"tax_"
                       "details\","
                       "\"children\":[{\"category\":\"tuple\",\"schema_id\":"
                       "\"t\"}]},"
                       "{\"category\":\"multivalue\",\"schema_id\":\"po_"
                       "numbers\","
                       "\"children\":[" DATAPOINT(
                           "po",
                           "\"PO-1\"") "," DATAPOINT("po",
                                                     "null") "]},"
                                                             "{\"category\":"
                                                             "\"multivalue\","
                                                             "\"schema_id\":"
                                                             "\"empty\","
                                                             "\"children\":[]}]"
                                                             "}"),
      &result);
  assert_int_equal(result.code, AG_OK);

  json_t *item = result_item(&result, 0);
  assert_string_equal(field(item, "deep"), "d");
  assert_int_equal(json_object_size(fields_of(item)), 1);
  assert_int_equal(json_array_size(table(item, "tax_details")), 1);
  json_t *tuple = json_array_get(table(item, "tax_details"), 0);
  assert_true(json_is_object(tuple));
  assert_int_equal(json_object_size(tuple), 0);
  assert_int_equal(json_array_size(table(item, "po_numbers")), 2);
  assert_string_equal(
      json_string_value(json_array_get(table(item, "po_numbers"), 0)), "PO-1");
  assert_string_equal(
      json_string_value(json_array_get(table(item, "po_numbers"), 1)), "");
  assert_int_equal(json_array_size(table(item, "empty")), 0);
  parse_result_release(&result);
}

/* The API's unexpanded forms: document and modifier as URLs. */
static void url_only_references(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text(ONE_ANNOTATION(",\"document\":\"https://x/documents/5\","
                            "\"modifier\":\"https://x/users/9\","
                            "\"automated\":null"),
             &result);
  assert_int_equal(result.code, AG_OK);

  json_t *item = result_item(&result, 0);
  assert_int_equal(json_integer_value(json_object_get(item, "id")), 7);
  assert_string_equal(text_of(item, "document_url"), "https://x/documents/5");
  assert_true(json_is_null(json_object_get(item, "file_name")));
  assert_true(json_is_null(json_object_get(item, "modifier")));
  assert_true(json_is_false(json_object_get(item, "automated")));
  parse_result_release(&result);
}

static void unknown_keys_ignored(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("{\"extra\":[1,2.5,{\"x\":null}],\"results\":[{\"url\":\"u/1\","
             "\"schema\":{\"url\":\"s\"},\"assigned_at\":3.25,\"content\":[{"
             "\"category\":\"datapoint\",\"schema_id\":\"a\",\"value\":\"v\","
             "\"rir_confidence\":0.981098,\"options\":[1]}]}]}",
             &result);
  assert_int_equal(result.code, AG_OK);

  json_t *item = result_item(&result, 0);
  assert_string_equal(field(item, "a"), "v");
  assert_int_equal(json_object_size(item), 12);
  parse_result_release(&result);
}

static void byte_order_mark_skipped(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("\xef\xbb\xbf{\"results\":[{\"url\":\"u/3\"}]}", &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(result_item_count(&result), 1);
  parse_result_release(&result);

  /* Positions still count from the first byte of the file. */
  parse_text("\xef\xbb\xbf{\"results\":[}", &result);
  assert_parse_failure(&result, AG_EPARSE, "byte offset 16");
  parse_result_release(&result);
}

/* --- broken and hostile documents --- */

static void broken_documents(void **state)
{
  static const struct parse_failure_case cases[] = {
      {"not JSON", "<export><results/></export>", "line 1, column 1"},
      {"empty file", "", "'[' or '{' expected"},
      {"top-level array", "[{\"results\":[]}]",
       "the top-level value is an array, expected an object"},
      {"top-level string", "\"results\"", "'[' or '{' expected"},
      {"results missing", "{\"pagination\":{}}",
       "the top-level object has no \"results\" array"},
      {"results not an array", "{\"results\":{\"url\":\"u\"}}",
       "\"results\" is an object, expected an array"},
      {"results null", "{\"results\":null}",
       "\"results\" is null, expected an array"},
      {"annotation not an object", "{\"results\":[{},3]}",
       "results[1]: annotation is a number, expected an object"},
      {"truncated", "{\"results\":[{\"url\":\"u/1\",\"content\":[",
       "expected near end of file"},
      {"trailing data", "{\"results\":[]} {}", "end of file expected"},
      {"invalid UTF-8 in a value",
       WITH_CONTENT(DATAPOINT("name", "\"caf\xe9\"")), "unable to decode byte"},
      {"invalid UTF-8 in a key", "{\"results\":[],\"\xc3\x28\":1}",
       "unable to decode byte 0xc3"},
      {"NUL in a string", WITH_CONTENT(DATAPOINT("name", "\"a\\u0000b\"")),
       "a string contains \\u0000, which is not allowed"},
      {"duplicate JSON key", "{\"results\":[],\"results\":[]}",
       "duplicate object key"},
  };
  (void)state;

  assert_parse_failures(export_parse_json, cases, AG_EPARSE);
}

static void broken_annotations(void **state)
{
  static const struct parse_failure_case cases[] = {
      {"datapoint without schema_id",
       WITH_CONTENT("{\"category\":\"datapoint\",\"value\":\"1\"}"),
       "results[0].content[0]: datapoint without schema_id (annotation "
       "https://acme-demo.rossum.app/api/v1/annotations/7)"},
      {"schema_id not a string",
       WITH_CONTENT("{\"category\":\"datapoint\",\"schema_id\":5}"),
       "datapoint schema_id is a number, expected a string"},
      {"multivalue without schema_id",
       WITH_CONTENT("{\"category\":\"multivalue\",\"children\":[]}"),
       "multivalue without schema_id"},
      {"node without category", WITH_CONTENT("{\"schema_id\":\"a\"}"),
       "content node without a \"category\" string"},
      {"node not an object", WITH_CONTENT("\"a\""),
       "content node is a string, expected an object"},
      {"unknown category",
       WITH_CONTENT("{\"category\":\"button\",\"schema_id\":\"b\"}"),
       "unexpected category \"button\" outside a multivalue"},
      {"tuple outside a multivalue",
       WITH_CONTENT("{\"category\":\"tuple\",\"children\":[]}"),
       "unexpected category \"tuple\" outside a multivalue"},
      {"section in a tuple",
       WITH_CONTENT("{\"category\":\"multivalue\",\"schema_id\":\"m\","
                    "\"children\":[{\"category\":\"tuple\",\"children\":["
                    "{\"category\":\"section\"}]}]}"),
       "results[0].content[0].children[0].children[0]: unexpected category "
       "\"section\" in a tuple"},
      {"multivalue in a multivalue",
       WITH_CONTENT("{\"category\":\"multivalue\",\"schema_id\":\"m\","
                    "\"children\":[{\"category\":\"multivalue\"}]}"),
       "unexpected category \"multivalue\" in a multivalue"},
      {"children not an array",
       WITH_CONTENT("{\"category\":\"section\",\"children\":{}}"),
       "results[0].content[0].children: \"children\" is an object"},
      {"content not an array", ONE_ANNOTATION(",\"content\":{}"),
       "results[0].content: \"content\" is an object, expected an array"},
      {"duplicate datapoint",
       WITH_CONTENT(
           DATAPOINT("amount", "\"1\"") "," DATAPOINT("amount", "\"2\"")),
       "results[0].content[1]: duplicate datapoint schema_id \"amount\""},
      {"duplicate datapoint in a tuple",
       WITH_CONTENT(
           "{\"category\":\"multivalue\",\"schema_id\":\"m\","
           "\"children\":[{\"category\":\"tuple\",\"children\":[" DATAPOINT(
               "a", "\"1\"") "," DATAPOINT("a", "\"2\"") "]}]}"),
       "duplicate datapoint schema_id \"a\""},
      {"duplicate multivalue",
       WITH_CONTENT("{\"category\":\"multivalue\",\"schema_id\":\"m\"},"
                    "{\"category\":\"multivalue\",\"schema_id\":\"m\"}"),
       "duplicate multivalue schema_id \"m\""},
      {"integer value", WITH_CONTENT(DATAPOINT("item_quantity", "4")),
       "datapoint \"item_quantity\" has a JSON number as its value"},
      {"real value", WITH_CONTENT(DATAPOINT("amount_total", "394.80")),
       "datapoint \"amount_total\" has a JSON number as its value"},
      {"boolean value", WITH_CONTENT(DATAPOINT("flag", "true")),
       "datapoint \"flag\" has a boolean as its value"},
      {"object value", WITH_CONTENT(DATAPOINT("nested", "{}")),
       "datapoint \"nested\" has an object as its value"},
      {"url not a string", "{\"results\":[{\"url\":7}]}",
       "results[0].url: \"url\" is a number, expected a string or null"},
      {"status not a string", ONE_ANNOTATION(",\"status\":[]"),
       "\"status\" is an array, expected a string or null"},
      {"document a number", ONE_ANNOTATION(",\"document\":5"),
       "\"document\" is a number, expected an object"},
      {"file_name a number", ONE_ANNOTATION(",\"document\":{\"file_name\":1}"),
       "results[0].document.file_name: \"file_name\" is a number"},
      {"modifier an array", ONE_ANNOTATION(",\"modifier\":[]"),
       "\"modifier\" is an array, expected an object"},
      {"automated a string", ONE_ANNOTATION(",\"automated\":\"true\""),
       "\"automated\" is a string, expected true or false"},
      {"metadata an array", ONE_ANNOTATION(",\"metadata\":[]"),
       "\"metadata\" is an array, expected an object"},
      {"metadata value a number",
       ONE_ANNOTATION(",\"metadata\":{\"erp_id\":12345}"),
       "metadata \"erp_id\" is a number; only string values are supported"},
      {"metadata value nested", ONE_ANNOTATION(",\"metadata\":{\"a\":{}}"),
       "metadata \"a\" is an object"},
  };
  (void)state;

  assert_parse_failures(export_parse_json, cases, AG_EPARSE);
}

/* The failing annotation is named in the message, and the annotations
 * before it have already gone to the sink. */
static void failure_names_annotation(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("{\"results\":[{\"url\":\"u/1\"},{\"url\":\"u/2\",\"content\":["
             "{\"category\":\"section\",\"children\":[{\"category\":"
             "\"datapoint\",\"schema_id\":\"a\"},{\"category\":\"datapoint\","
             "\"schema_id\":\"b\",\"value\":1.5}]}]}]}",
             &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "results[1].content[0].children[1]: datapoint \"b\" has "
                       "a JSON number");
  assert_parse_failure(&result, AG_EPARSE, "(annotation u/2)");
  assert_int_equal(result_item_count(&result), 1);
  parse_result_release(&result);
}

static void message_escapes_input(void **state)
{
  struct parse_result result;
  (void)state;

  parse_text("{\"results\":[{\"url\":\"u\\n\\u001b[31m\",\"content\":[{"
             "\"category\":\"x\\ty\"}]}]}",
             &result);
  assert_parse_failure(&result, AG_EPARSE, "unexpected category \"x\\x09y\"");
  assert_parse_failure(&result, AG_EPARSE, "(annotation u\\x0A\\x1B[31m)");
  parse_result_release(&result);
}

static void nesting_limit(void **state)
{
  size_t depth = 3000;
  size_t len = 2 * depth + 64;
  char *text = malloc(len);
  struct parse_result result;
  (void)state;

  assert_non_null(text);
  size_t used = (size_t)snprintf(text, len, "{\"results\":");
  for (size_t i = 0; i < depth; i++)
    text[used++] = '[';
  for (size_t i = 0; i < depth; i++)
    text[used++] = ']';
  text[used++] = '}';
  parse_export_bytes(export_parse_json, text, used, &result);
  assert_parse_failure(&result, AG_EPARSE, "maximum parsing depth reached");
  parse_result_release(&result);
  free(text);
}

/* Sections nested as deep as jansson allows are walked through. */
static void deep_sections(void **state)
{
  static const char open[] = "{\"category\":\"section\",\"children\":[";
  size_t depth = 1000;
  size_t len = depth * (sizeof(open) + 2) + 256;
  char *text = malloc(len);
  struct parse_result result;
  (void)state;

  assert_non_null(text);
  size_t used = (size_t)snprintf(text, len, "{\"results\":[{\"content\":[");
  for (size_t i = 0; i < depth; i++) {
    memcpy(text + used, open, sizeof(open) - 1);
    used += sizeof(open) - 1;
  }
  used += (size_t)snprintf(text + used, len - used, "%s",
                           DATAPOINT("deep", "\"d\""));
  for (size_t i = 0; i < depth; i++) {
    memcpy(text + used, "]}", 2);
    used += 2;
  }
  used += (size_t)snprintf(text + used, len - used, "]}]}");
  parse_export_bytes(export_parse_json, text, used, &result);
  assert_int_equal(result.code, AG_OK);
  assert_string_equal(field(result_item(&result, 0), "deep"), "d");
  parse_result_release(&result);
  free(text);
}

/* A file over the limit is rejected by its size, before it is read. The
 * file is sparse, so the test writes almost nothing. */
static void size_limit(void **state)
{
  char dir[512];
  char path[600];
  struct parse_result result;
  (void)state;

  assert_int_equal(make_temp_dir("test_export_json", dir, sizeof(dir)), 0);
  join_path(path, sizeof(path), dir, "big.json");
  write_file(path, "{", 1);
  assert_int_equal(truncate(path, EXPORT_JSON_MAX_BYTES + 1), 0);

  parse_export_file(export_parse_json, path, -1, &result);
  assert_parse_failure(&result, AG_EPARSE, "the file has 67108865 bytes");
  assert_parse_failure(&result, AG_EPARSE, "(64 MiB)");
  assert_int_equal(result.collector.begin_calls, 0);
  parse_result_release(&result);
  assert_int_equal(remove_tree(dir), 0);
}

/* A file of tiny values is stopped by its value count, long before the
 * byte limit. */
static void value_limit(void **state)
{
  size_t count = EXPORT_JSON_MAX_VALUES + 10;
  size_t len = 2 * count + 64;
  char *text = malloc(len);
  struct parse_result result;
  (void)state;

  assert_non_null(text);
  size_t used = (size_t)snprintf(text, len, "{\"results\":[");
  for (size_t i = 0; i < count; i++) {
    text[used++] = '0';
    text[used++] = ',';
  }
  text[used - 1] = ']';
  text[used++] = '}';
  parse_export_bytes(export_parse_json, text, used, &result);
  assert_parse_failure(&result, AG_EPARSE,
                       "the file has more than 4000000 JSON values");
  assert_int_equal(result.collector.begin_calls, 0);
  parse_result_release(&result);
  free(text);
}

/* Brackets, commas and colons inside strings, also after an escaped
 * quote, are not values: counted, they would pass the limit. */
static void value_count_skips_strings(void **state)
{
  static const char piece[] = "{[,:]}\\\""; /* {[,:]}\" in the file */
  size_t count = EXPORT_JSON_MAX_VALUES / 4 + 10;
  size_t piece_len = sizeof(piece) - 1;
  size_t len = piece_len * count + 128;
  char *text = malloc(len);
  struct parse_result result;
  (void)state;

  assert_non_null(text);
  size_t used = (size_t)snprintf(
      text, len, "{\"results\":[{\"url\":\"u/1\",\"status\":\"");
  for (size_t i = 0; i < count; i++) {
    memcpy(text + used, piece, piece_len);
    used += piece_len;
  }
  used += (size_t)snprintf(text + used, len - used, "\"}]}");
  parse_export_bytes(export_parse_json, text, used, &result);
  assert_int_equal(result.code, AG_OK);
  assert_int_equal(strlen(text_of(result_item(&result, 0), "status")),
                   (piece_len - 1) * count);
  parse_result_release(&result);
  free(text);
}

static void sink_error_stops(void **state)
{
  struct parse_result result;
  (void)state;

  parse_export_file(export_parse_json,
                    TEST_DATA_DIR "/rossum_export_multi.json", 1, &result);
  assert_int_equal(result.code, AG_ELOCAL);
  assert_string_equal(result.err.message, "sink is full");
  assert_int_equal(result_item_count(&result), 1);
  parse_result_release(&result);
}

static void missing_file(void **state)
{
  struct parse_result result;
  (void)state;

  parse_export_file(export_parse_json, TEST_DATA_DIR "/no_such_export.json", -1,
                    &result);
  assert_parse_failure(&result, AG_ELOCAL, "open failed");
  parse_result_release(&result);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(format_of_json),
      cmocka_unit_test(annotation_id_rules),
      cmocka_unit_test(multi_sample),
      cmocka_unit_test(key_order),
      cmocka_unit_test(same_as_xml),
      cmocka_unit_test(empty_results),
      cmocka_unit_test(absent_members_null),
      cmocka_unit_test(datapoint_values),
      cmocka_unit_test(content_shapes),
      cmocka_unit_test(url_only_references),
      cmocka_unit_test(unknown_keys_ignored),
      cmocka_unit_test(byte_order_mark_skipped),
      cmocka_unit_test(broken_documents),
      cmocka_unit_test(broken_annotations),
      cmocka_unit_test(failure_names_annotation),
      cmocka_unit_test(message_escapes_input),
      cmocka_unit_test(nesting_limit),
      cmocka_unit_test(deep_sections),
      cmocka_unit_test(size_limit),
      cmocka_unit_test(value_limit),
      cmocka_unit_test(value_count_skips_strings),
      cmocka_unit_test(sink_error_stops),
      cmocka_unit_test(missing_file),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
