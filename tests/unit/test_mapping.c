/* Unit tests for mapping.c: renaming and dropping keys in annotations,
 * CSV records and CSV documents, name clashes, and the config check. */
#include "agent/mapping.h"

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A mapping in front of a collector, and what went through it. */
struct mapped {
  struct collector collector;
  struct export_sink next;
  struct mapping *mapping;
  struct ag_error err;
};

static void mapped_open(struct mapped *mapped,
                        const struct config_mapping *entries, size_t count,
                        int fail_after)
{
  memset(mapped, 0, sizeof(*mapped));
  collector_reset(&mapped->collector, fail_after);
  mapped->next.begin = collect_begin;
  mapped->next.item = collect_item;
  mapped->next.ctx = &mapped->collector;
  assert_int_equal(mapping_new(entries, count, &mapped->next, &mapped->mapping,
                               &mapped->err),
                   AG_OK);
}

static void mapped_close(struct mapped *mapped)
{
  mapping_free(mapped->mapping);
  json_decref(mapped->collector.items);
}

/* Send the items in text, a JSON array, through the mapping as the list
 * list_name. Returns the first failure, or AG_OK. */
static enum ag_code send_items(struct mapped *mapped, const char *list_name,
                               const char *text)
{
  const struct export_sink *sink = mapping_sink(mapped->mapping);
  json_error_t error;
  json_t *items = json_loads(text, 0, &error);
  size_t index;
  json_t *item;

  if (items == NULL)
    fail_msg("test input is not JSON: %s", error.text);
  enum ag_code code = sink->begin(sink->ctx, list_name, &mapped->err);
  json_array_foreach(items, index, item)
  {
    if (code == AG_OK)
      code = sink->item(sink->ctx, item, &mapped->err);
  }
  json_decref(items);
  return code;
}

static json_t *output_item(struct mapped *mapped, size_t index)
{
  json_t *item = json_array_get(mapped->collector.items, index);

  if (item == NULL)
    fail_msg("no output item %zu", index);
  return item;
}

/* Fail unless value, dumped compactly with its key order, is expected. */
#define assert_json_text(value, expected)                                      \
  check_json_text(value, expected, __FILE__, __LINE__)
static void check_json_text(json_t *value, const char *expected,
                            const char *file, int line)
{
  char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);

  assert_non_null(text);
  if (strcmp(text, expected) != 0) {
    print_error("%s:%d: JSON differs\n got      %s\n expected %s\n", file, line,
                text, expected);
    free(text);
    fail();
  }
  free(text);
}

static const char annotation[] =
    "[{\"id\":1,\"url\":\"https://x/annotations/1\",\"status\":\"exported\","
    "\"fields\":{\"document_id\":\"GC-1\",\"sender_ic\":\"\","
    "\"amount_total\":\"394.80\",\"url\":\"f\"},"
    "\"tables\":{\"tax_details\":[{\"tax_detail_rate\":\"20\"}],"
    "\"line_items\":[{\"item_code\":\"A\",\"item_amount_total\":\"1.00\"},"
    "{\"item_code\":\"B\",\"item_amount_total\":\"2.00\"}],"
    "\"po_numbers\":[\"PO-1\"]},"
    "\"metadata\":{\"document_id\":\"m\"}}]";

/* --- renaming --- */

static void annotation_keys_mapped(void **state)
{
  static const struct config_mapping entries[] = {
      {"document_id", "invoice_number"},
      {"sender_ic", NULL},
      {"line_items", "items"},
      {"item_code", "code"},
      {"tax_details", NULL},
      {"url", "link"},
      {"status", "state"},
  };
  struct mapped mapped;
  (void)state;

  mapped_open(&mapped, entries, sizeof(entries) / sizeof(entries[0]), -1);
  assert_int_equal(send_items(&mapped, "annotations", annotation), AG_OK);
  assert_int_equal(mapped.collector.begin_calls, 1);
  assert_string_equal(mapped.collector.list_name, "annotations");

  json_t *item = output_item(&mapped, 0);
  /* The agent's own keys stay; "url" in fields is an export name. */
  assert_json_text(json_object_get(item, "url"), "\"https://x/annotations/1\"");
  assert_json_text(json_object_get(item, "status"), "\"exported\"");
  assert_json_text(json_object_get(item, "fields"),
                   "{\"invoice_number\":\"GC-1\",\"amount_total\":\"394.80\","
                   "\"link\":\"f\"}");
  assert_json_text(json_object_get(item, "tables"),
                   "{\"items\":[{\"code\":\"A\",\"item_amount_total\":"
                   "\"1.00\"},{\"code\":\"B\",\"item_amount_total\":\"2.00\"}],"
                   "\"po_numbers\":[\"PO-1\"]}");
  assert_json_text(json_object_get(item, "metadata"),
                   "{\"document_id\":\"m\"}");
  static const char *const keys[] = {"id",     "url",    "status",
                                     "fields", "tables", "metadata"};
  assert_keys(item, keys, sizeof(keys) / sizeof(keys[0]));
  mapped_close(&mapped);
}

/* The parser's item is borrowed, so the mapping must not change it. */
static void input_item_unchanged(void **state)
{
  static const struct config_mapping entries[] = {{"a", "b"}, {"c", NULL}};
  const struct export_sink *sink;
  struct mapped mapped;
  json_t *item = json_pack("{s:{s:s, s:s}}", "fields", "a", "1", "c", "2");
  (void)state;

  mapped_open(&mapped, entries, 2, -1);
  sink = mapping_sink(mapped.mapping);
  assert_int_equal(sink->begin(sink->ctx, "annotations", &mapped.err), AG_OK);
  assert_int_equal(sink->item(sink->ctx, item, &mapped.err), AG_OK);
  assert_json_text(item, "{\"fields\":{\"a\":\"1\",\"c\":\"2\"}}");
  assert_json_text(output_item(&mapped, 0), "{\"fields\":{\"b\":\"1\"}}");
  json_decref(item);
  mapped_close(&mapped);
}

static void record_keys_mapped(void **state)
{
  static const struct config_mapping entries[] = {
      {"Invoice number", "invoice_number"},
      {"meta_url", NULL},
      {"Description", "Beschreibung"},
  };
  struct mapped mapped;
  (void)state;

  mapped_open(&mapped, entries, sizeof(entries) / sizeof(entries[0]), -1);
  assert_int_equal(send_items(&mapped, "records",
                              "[{\"meta_url\":\"u\",\"Invoice number\":\"1\","
                              "\"Description\":\"d\",\"Total\":\"9\"},"
                              "{\"meta_url\":\"v\",\"Invoice number\":\"2\","
                              "\"Description\":\"e\",\"Total\":\"8\"}]"),
                   AG_OK);
  assert_int_equal(json_array_size(mapped.collector.items), 2);
  assert_json_text(output_item(&mapped, 0),
                   "{\"invoice_number\":\"1\",\"Beschreibung\":\"d\","
                   "\"Total\":\"9\"}");
  assert_json_text(output_item(&mapped, 1),
                   "{\"invoice_number\":\"2\",\"Beschreibung\":\"e\","
                   "\"Total\":\"8\"}");
  mapped_close(&mapped);
}

/* A grouped CSV parse sends records first, then documents. */
static void document_keys_mapped(void **state)
{
  static const struct config_mapping entries[] = {
      {"Invoice number", "invoice_number"},
      {"Item code", "code"},
      {"meta_url", NULL},
  };
  struct mapped mapped;
  (void)state;

  mapped_open(&mapped, entries, sizeof(entries) / sizeof(entries[0]), -1);
  assert_int_equal(send_items(&mapped, "records",
                              "[{\"Invoice number\":\"1\",\"Item code\":\"A\","
                              "\"meta_url\":\"u\"}]"),
                   AG_OK);
  assert_int_equal(send_items(&mapped, "documents",
                              "[{\"fields\":{\"Invoice number\":\"1\","
                              "\"meta_url\":\"u\"},\"items\":[{\"Item code\":"
                              "\"A\"},{\"Item code\":\"B\"}]}]"),
                   AG_OK);
  assert_int_equal(mapped.collector.begin_calls, 2);
  assert_string_equal(mapped.collector.list_name, "documents");
  assert_json_text(output_item(&mapped, 0),
                   "{\"invoice_number\":\"1\",\"code\":\"A\"}");
  assert_json_text(output_item(&mapped, 1),
                   "{\"fields\":{\"invoice_number\":\"1\"},\"items\":[{"
                   "\"code\":\"A\"},{\"code\":\"B\"}]}");
  mapped_close(&mapped);
}

/* Entries do not chain, so two of them can swap names. */
static void entries_do_not_chain(void **state)
{
  static const struct config_mapping entries[] = {
      {"a", "b"}, {"b", "c"}, {"x", "y"}, {"y", "x"}};
  struct mapped mapped;
  (void)state;

  mapped_open(&mapped, entries, sizeof(entries) / sizeof(entries[0]), -1);
  assert_int_equal(
      send_items(&mapped, "records",
                 "[{\"a\":\"1\",\"b\":\"2\",\"x\":\"3\",\"y\":\"4\"}]"),
      AG_OK);
  assert_json_text(output_item(&mapped, 0),
                   "{\"b\":\"1\",\"c\":\"2\",\"y\":\"3\",\"x\":\"4\"}");
  mapped_close(&mapped);
}

/* One target name may serve several entries as long as they never meet in
 * one object, such as an XML schema id and a CSV header. */
static void shared_target_in_separate_objects(void **state)
{
  static const struct config_mapping entries[] = {{"document_id", "number"},
                                                  {"Invoice number", "number"}};
  struct mapped mapped;
  (void)state;

  mapped_open(&mapped, entries, 2, -1);
  assert_int_equal(send_items(&mapped, "annotations",
                              "[{\"fields\":{\"document_id\":\"1\"},"
                              "\"tables\":{\"t\":[{\"Invoice number\":\"2\"}]}"
                              "}]"),
                   AG_OK);
  assert_json_text(output_item(&mapped, 0),
                   "{\"fields\":{\"number\":\"1\"},\"tables\":{\"t\":[{"
                   "\"number\":\"2\"}]}}");
  mapped_close(&mapped);
}

static void empty_mapping_copies(void **state)
{
  struct mapped mapped;
  (void)state;

  mapped_open(&mapped, NULL, 0, -1);
  assert_int_equal(send_items(&mapped, "annotations", annotation), AG_OK);

  json_t *original = json_loads(annotation, 0, NULL);
  assert_true(json_equal(output_item(&mapped, 0), json_array_get(original, 0)));
  json_decref(original);
  mapped_close(&mapped);
}

/* --- failures --- */

static void rename_onto_existing_key(void **state)
{
  static const struct config_mapping entries[] = {
      {"document_id", "amount_total"}};
  struct mapped mapped;
  (void)state;

  mapped_open(&mapped, entries, 1, -1);
  assert_int_equal(send_items(&mapped, "annotations", annotation), AG_EPARSE);
  assert_string_equal(
      mapped.err.message,
      "[mapping] gives \"document_id\" and \"amount_total\" the same name "
      "\"amount_total\" in fields of annotation 1 (https://x/annotations/1); "
      "change the [mapping] entries so that the names in one object stay "
      "distinct");
  assert_int_equal(json_array_size(mapped.collector.items), 0);
  mapped_close(&mapped);
}

static void two_renames_onto_one_name(void **state)
{
  static const struct config_mapping entries[] = {{"item_code", "id"},
                                                  {"item_amount_total", "id"}};
  struct mapped mapped;
  (void)state;

  mapped_open(&mapped, entries, 2, -1);
  assert_int_equal(send_items(&mapped, "annotations", annotation), AG_EPARSE);
  assert_contains(mapped.err.message,
                  "gives \"item_code\" and \"item_amount_total\" the same name "
                  "\"id\" in a row of table \"line_items\" in tables of "
                  "annotation 1");
  mapped_close(&mapped);
}

static void record_clash_names_record(void **state)
{
  static const struct config_mapping entries[] = {{"b", "a"}};
  struct mapped mapped;
  (void)state;

  mapped_open(&mapped, entries, 1, -1);
  assert_int_equal(send_items(&mapped, "records",
                              "[{\"a\":\"1\"},{\"a\":\"1\",\"b\":\"2\"}]"),
                   AG_EPARSE);
  assert_contains(mapped.err.message, "the same name \"a\" in record 2;");
  assert_int_equal(json_array_size(mapped.collector.items), 1);
  mapped_close(&mapped);
}

static void clash_message_escapes_names(void **state)
{
  static const struct config_mapping entries[] = {{"a\tb", "c"}};
  struct mapped mapped;
  (void)state;

  mapped_open(&mapped, entries, 1, -1);
  assert_int_equal(
      send_items(&mapped, "records", "[{\"c\":\"1\",\"a\\tb\":\"2\"}]"),
      AG_EPARSE);
  assert_contains(mapped.err.message, "gives \"c\" and \"a\\x09b\"");
  mapped_close(&mapped);
}

static void unknown_list_rejected(void **state)
{
  struct mapped mapped;
  (void)state;

  mapped_open(&mapped, NULL, 0, -1);
  assert_int_equal(send_items(&mapped, "rows", "[]"), AG_ECONFIG);
  assert_string_equal(mapped.err.message,
                      "[mapping] cannot be applied to items of the list "
                      "\"rows\"; remove the [mapping] section");
  assert_int_equal(mapped.collector.begin_calls, 0);
  mapped_close(&mapped);
}

static void next_sink_error_passes(void **state)
{
  struct mapped mapped;
  (void)state;

  mapped_open(&mapped, NULL, 0, 1);
  assert_int_equal(
      send_items(&mapped, "records", "[{\"a\":\"1\"},{\"a\":\"2\"}]"),
      AG_ELOCAL);
  assert_string_equal(mapped.err.message, "sink is full");
  assert_int_equal(json_array_size(mapped.collector.items), 1);
  mapped_close(&mapped);
}

static void invalid_utf8_rejected(void **state)
{
  static const struct config_mapping from_bad[] = {{"caf\xe9", "cafe"}};
  static const struct config_mapping to_bad[] = {{"cafe", "caf\xe9"}};
  struct collector collector = {0};
  struct export_sink next = {collect_begin, collect_item, &collector};
  struct mapping *mapping = NULL;
  struct ag_error err = {0};
  (void)state;

  assert_int_equal(mapping_new(from_bad, 1, &next, &mapping, &err), AG_ECONFIG);
  assert_null(mapping);
  assert_string_equal(err.message,
                      "[mapping] has a name that is not valid UTF-8");
  ag_error_clear(&err);
  assert_int_equal(mapping_new(to_bad, 1, &next, &mapping, &err), AG_ECONFIG);
  assert_null(mapping);
}

/* --- mapping_validate --- */

static void validate_checks_utf8(void **state)
{
  static char path[] = "/etc/agent.conf";
  static char from[] = "caf\xe9";
  static char good[] = "cafe";
  struct config *config = calloc(1, sizeof(*config));
  struct ag_error err = {0};
  (void)state;

  assert_non_null(config);
  config->path = path;
  config->mapping[0].from = good;
  config->mapping[0].to = NULL;
  config->mapping_count = 1;
  assert_int_equal(mapping_validate(config, &err), AG_OK);

  config->mapping[1].from = good;
  config->mapping[1].to = from;
  config->mapping_count = 2;
  assert_int_equal(mapping_validate(config, &err), AG_ECONFIG);
  assert_string_equal(err.message,
                      "/etc/agent.conf: [mapping] name 'caf\\xE9' is not "
                      "valid UTF-8; output keys are JSON strings, so save the "
                      "config as UTF-8");

  ag_error_clear(&err);
  config->mapping[1].from = from;
  config->mapping[1].to = good;
  assert_int_equal(mapping_validate(config, &err), AG_ECONFIG);
  assert_contains(err.message, "'caf\\xE9'");
  free(config);
}

/* --- with a real parser --- */

static void xml_sample_through_mapping(void **state)
{
  static const struct config_mapping entries[] = {
      {"document_id", "invoice_number"},
      {"item_description", "description"},
      {"notes", NULL},
  };
  struct mapped mapped;
  (void)state;

  mapped_open(&mapped, entries, sizeof(entries) / sizeof(entries[0]), -1);
  assert_int_equal(export_parse_xml(TEST_DATA_DIR "/rossum_export_multi.xml",
                                    mapping_sink(mapped.mapping), &mapped.err),
                   AG_OK);
  assert_int_equal(json_array_size(mapped.collector.items), 3);

  json_t *first = output_item(&mapped, 0);
  json_t *fields = json_object_get(first, "fields");
  assert_string_equal(text_of(fields, "invoice_number"), "GC-118230");
  assert_null(json_object_get(fields, "document_id"));
  assert_null(json_object_get(fields, "notes"));
  json_t *row = json_array_get(
      json_object_get(json_object_get(first, "tables"), "line_items"), 0);
  assert_string_equal(text_of(row, "description"), "Sandwich platter (12 pcs)");
  assert_null(json_object_get(row, "item_description"));
  mapped_close(&mapped);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(annotation_keys_mapped),
      cmocka_unit_test(input_item_unchanged),
      cmocka_unit_test(record_keys_mapped),
      cmocka_unit_test(document_keys_mapped),
      cmocka_unit_test(entries_do_not_chain),
      cmocka_unit_test(shared_target_in_separate_objects),
      cmocka_unit_test(empty_mapping_copies),
      cmocka_unit_test(rename_onto_existing_key),
      cmocka_unit_test(two_renames_onto_one_name),
      cmocka_unit_test(record_clash_names_record),
      cmocka_unit_test(clash_message_escapes_names),
      cmocka_unit_test(unknown_list_rejected),
      cmocka_unit_test(next_sink_error_passes),
      cmocka_unit_test(invalid_utf8_rejected),
      cmocka_unit_test(validate_checks_utf8),
      cmocka_unit_test(xml_sample_through_mapping),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
