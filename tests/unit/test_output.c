/* Unit tests for output.c: the JSON document frame, the source object
 * (with names that are not valid UTF-8), atomic publishing and abort.
 * Every test writes into a fresh temporary folder. */
#include "agent/output.h"

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#define PATH_SIZE 512

#define SHA256_HEX                                                             \
  "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

/* A source for rel (raw bytes) below inbox, with fixed size and time. */
static struct output_source make_source(const char *inbox, const void *rel,
                                        size_t rel_len)
{
  struct output_source src = {
      .inbox = inbox,
      .rel = rel,
      .rel_len = rel_len,
      .size = 5000000000ULL,
      .mtime = 1700000000,
      .sha256 = SHA256_HEX,
      .format = "xml",
  };

  return src;
}

/* Write a document with the given items and commit it as name. */
static void write_document(struct folder_fixture *f,
                           const struct output_source *src,
                           const char *list_name, json_t *const items[],
                           size_t item_count, const char *name)
{
  struct output_doc *doc = NULL;

  assert_int_equal(output_begin(f->dir, src, &doc, &f->err), AG_OK);
  assert_non_null(doc);
  const struct export_sink *sink = output_sink(doc);
  assert_int_equal(sink->begin(sink->ctx, list_name, &f->err), AG_OK);
  for (size_t i = 0; i < item_count; i++)
    assert_int_equal(sink->item(sink->ctx, items[i], &f->err), AG_OK);
  assert_int_equal(output_item_count(doc), item_count);
  assert_int_equal(output_commit(doc, name, &f->err), AG_OK);
}

/* Load dir/name as JSON. The caller releases the value. */
static json_t *load_document(const struct folder_fixture *f, const char *name)
{
  char path[PATH_SIZE];
  json_error_t error;

  join_path(path, sizeof(path), f->dir, name);
  json_t *document = json_load_file(path, 0, &error);
  if (document == NULL)
    fail_msg("%s is not valid JSON: %s at line %d", path, error.text,
             error.line);
  return document;
}

/* Fail with both documents shown unless they are equal. */
static void assert_json_equal(json_t *actual, json_t *expected)
{
  if (json_equal(actual, expected))
    return;

  char *actual_text = json_dumps(actual, JSON_SORT_KEYS);
  char *expected_text = json_dumps(expected, JSON_SORT_KEYS);
  print_error("actual:   %s\nexpected: %s\n", actual_text, expected_text);
  free(actual_text);
  free(expected_text);
  fail();
}

/* The source object for the fixed size, time and hash of make_source(). */
static json_t *expected_source(const char *path, const char *name)
{
  return json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "path", path, "name", name,
                   "size", (json_int_t)5000000000LL, "mtime",
                   "2023-11-14T22:13:20Z", "sha256", SHA256_HEX, "format",
                   "xml");
}

static void test_document_items(void **state)
{
  struct folder_fixture *f = *state;
  const char rel[] = "sub/invoice-1.xml";
  struct output_source src = make_source("/export", rel, sizeof(rel) - 1);
  json_t *items[] = {
      json_pack("{s:i, s:s}", "id", 1, "status", "exported"),
      json_pack("{s:i, s:s, s:[i, i]}", "id", 2, "note",
                "\xc4\x8d\xc3\xa1stka \"quoted\"\n", "pages", 1, 2),
      json_pack("{s:i, s:n}", "id", 3, "empty"),
  };

  write_document(f, &src, "annotations", items, 3, "invoice-1.json");

  json_t *document = load_document(f, "invoice-1.json");
  json_t *expected =
      json_pack("{s:i, s:o, s:[O, O, O]}", "format_version", 1, "source",
                expected_source("/export/sub/invoice-1.xml", "invoice-1.xml"),
                "annotations", items[0], items[1], items[2]);
  assert_json_equal(document, expected);
  json_decref(expected);
  json_decref(document);
  for (size_t i = 0; i < 3; i++)
    json_decref(items[i]);
}

static void test_document_frame(void **state)
{
  struct folder_fixture *f = *state;
  char path[PATH_SIZE];
  const char rel[] = "a.xml";
  struct output_source src = make_source("/export", rel, sizeof(rel) - 1);
  json_t *item = json_pack("{s:i}", "id", 1);

  write_document(f, &src, "annotations", &item, 1, "a.json");
  json_decref(item);

  /* format_version comes first, so a reader can check it before
   * anything else, and the file ends with a newline. */
  join_path(path, sizeof(path), f->dir, "a.json");
  char *text = read_file(path, NULL);
  const char *head = "{\"format_version\":1,\"source\":{\"path\":";
  assert_memory_equal(text, head, strlen(head));
  size_t len = strlen(text);
  assert_true(len > 0);
  assert_int_equal(text[len - 1], '\n');
  free(text);
}

static void test_document_no_items(void **state)
{
  struct folder_fixture *f = *state;
  const char rel[] = "empty.csv";
  struct output_source src = make_source("/in", rel, sizeof(rel) - 1);

  src.format = "csv";
  write_document(f, &src, "records", NULL, 0, "empty.json");

  json_t *document = load_document(f, "empty.json");
  json_t *source = expected_source("/in/empty.csv", "empty.csv");
  json_object_set_new(source, "format", json_string("csv"));
  json_t *expected = json_pack("{s:i, s:o, s:[]}", "format_version", 1,
                               "source", source, "records");
  assert_json_equal(document, expected);
  json_decref(expected);
  json_decref(document);
}

/* Write a document without items for rel (rel_len raw bytes) below inbox,
 * commit it as name and load it. The caller releases the document. */
static json_t *write_empty_document(struct folder_fixture *f, const char *inbox,
                                    const char *rel, size_t rel_len,
                                    const char *name)
{
  struct output_source src = make_source(inbox, rel, rel_len);

  write_document(f, &src, "annotations", NULL, 0, name);
  return load_document(f, name);
}

static void test_invalid_utf8_name(void **state)
{
  struct folder_fixture *f = *state;
  const char rel[] = "sub/bad\xffname.xml";

  json_t *document =
      write_empty_document(f, "/export", rel, sizeof(rel) - 1, "bad.json");
  json_t *source =
      expected_source("/export/sub/bad%FFname.xml", "bad%FFname.xml");
  /* base64 of the bytes "bad\xffname.xml" */
  json_object_set_new(source, "name_raw", json_string("YmFk/25hbWUueG1s"));
  json_t *expected = json_pack("{s:i, s:o, s:[]}", "format_version", 1,
                               "source", source, "annotations");
  assert_json_equal(document, expected);
  json_decref(expected);
  json_decref(document);
}

static void test_truncated_utf8_name(void **state)
{
  struct folder_fixture *f = *state;
  /* A two-byte sequence cut after its lead byte, at the end of the name. */
  const char rel[] = "x\xc3";

  json_t *document =
      write_empty_document(f, "/export", rel, sizeof(rel) - 1, "cut.json");
  json_t *source = json_object_get(document, "source");
  assert_string_equal(text_of(source, "name"), "x%C3");
  assert_string_equal(text_of(source, "path"), "/export/x%C3");
  assert_string_equal(text_of(source, "name_raw"), "eMM=");
  json_decref(document);
}

static void test_invalid_folder_only(void **state)
{
  struct folder_fixture *f = *state;
  const char rel[] = "b\xe9/x.xml";

  json_t *document =
      write_empty_document(f, "/export", rel, sizeof(rel) - 1, "folder.json");

  /* Only the base name gets name_raw, and the path shows the escape. */
  json_t *source = json_object_get(document, "source");
  assert_string_equal(text_of(source, "path"), "/export/b%E9/x.xml");
  assert_string_equal(text_of(source, "name"), "x.xml");
  assert_null(json_object_get(source, "name_raw"));
  json_decref(document);
}

static void test_valid_utf8_name(void **state)
{
  struct folder_fixture *f = *state;
  const char rel[] = "\xc5\xbd"
                     "aloba.xml";

  json_t *document =
      write_empty_document(f, "/export", rel, sizeof(rel) - 1, "valid.json");
  json_t *source = json_object_get(document, "source");
  assert_string_equal(text_of(source, "name"), "\xc5\xbd"
                                               "aloba.xml");
  assert_string_equal(text_of(source, "path"), "/export/\xc5\xbd"
                                               "aloba.xml");
  assert_null(json_object_get(source, "name_raw"));
  json_decref(document);
}

static void test_nul_in_name(void **state)
{
  struct folder_fixture *f = *state;
  const char rel[] = "a\0b.xml";

  json_t *document =
      write_empty_document(f, "/export", rel, sizeof(rel) - 1, "nul.json");

  /* A NUL byte must neither end the name early nor reach the JSON. */
  json_t *source = json_object_get(document, "source");
  assert_string_equal(text_of(source, "name"), "a%00b.xml");
  assert_string_equal(text_of(source, "path"), "/export/a%00b.xml");
  json_decref(document);
}

static void test_root_inbox(void **state)
{
  struct folder_fixture *f = *state;
  const char rel[] = "x.xml";

  json_t *document =
      write_empty_document(f, "/", rel, sizeof(rel) - 1, "x.json");
  json_t *source = json_object_get(document, "source");
  assert_string_equal(text_of(source, "path"), "/x.xml");
  assert_string_equal(text_of(source, "name"), "x.xml");
  json_decref(document);
}

static void test_invalid_utf8_inbox(void **state)
{
  struct folder_fixture *f = *state;
  const char rel[] = "x.xml";

  json_t *document =
      write_empty_document(f, "/in\xff", rel, sizeof(rel) - 1, "x.json");
  json_t *source = json_object_get(document, "source");
  assert_string_equal(text_of(source, "path"), "/in%FF/x.xml");
  assert_null(json_object_get(source, "name_raw"));
  json_decref(document);
}

static void test_temp_name_while_open(void **state)
{
  struct folder_fixture *f = *state;
  const char rel[] = "x.xml";
  struct output_source src = make_source("/export", rel, sizeof(rel) - 1);
  struct output_doc *doc = NULL;
  char names[4][ENTRY_NAME_SIZE];

  assert_int_equal(output_begin(f->dir, &src, &doc, &f->err), AG_OK);
  assert_int_equal(list_dir(f->dir, names, 4), 1);
  size_t len = strlen(names[0]);
  assert_int_equal(names[0][0], '.');
  assert_true(len > 4);
  assert_string_equal(names[0] + len - 4, ".tmp");

  const struct export_sink *sink = output_sink(doc);
  assert_int_equal(sink->begin(sink->ctx, "annotations", &f->err), AG_OK);
  assert_int_equal(output_commit(doc, "x.json", &f->err), AG_OK);
  assert_int_equal(list_dir(f->dir, names, 4), 1);
  assert_string_equal(names[0], "x.json");
}

static void test_output_mode(void **state)
{
  struct folder_fixture *f = *state;
  char path[PATH_SIZE];
  struct stat info;
  const char rel[] = "x.xml";
  struct output_source src = make_source("/export", rel, sizeof(rel) - 1);

  write_document(f, &src, "annotations", NULL, 0, "x.json");
  join_path(path, sizeof(path), f->dir, "x.json");
  assert_int_equal(stat(path, &info), 0);
  assert_int_equal(info.st_mode & 0777, 0640);
}

static void test_abort_removes_temp(void **state)
{
  struct folder_fixture *f = *state;
  const char rel[] = "x.xml";
  struct output_source src = make_source("/export", rel, sizeof(rel) - 1);
  struct output_doc *doc = NULL;
  json_t *item = json_pack("{s:i}", "id", 1);
  char names[4][ENTRY_NAME_SIZE];

  assert_int_equal(output_begin(f->dir, &src, &doc, &f->err), AG_OK);
  const struct export_sink *sink = output_sink(doc);
  assert_int_equal(sink->begin(sink->ctx, "annotations", &f->err), AG_OK);
  assert_int_equal(sink->item(sink->ctx, item, &f->err), AG_OK);
  json_decref(item);
  output_abort(doc);
  assert_int_equal(list_dir(f->dir, names, 4), 0);
}

static void test_abort_null(void **state)
{
  (void)state;
  output_abort(NULL);
}

static void test_commit_without_list(void **state)
{
  struct folder_fixture *f = *state;
  const char rel[] = "x.xml";
  struct output_source src = make_source("/export", rel, sizeof(rel) - 1);
  struct output_doc *doc = NULL;
  char names[4][ENTRY_NAME_SIZE];

  /* A parser that never called begin() produced no document. */
  assert_int_equal(output_begin(f->dir, &src, &doc, &f->err), AG_OK);
  assert_int_equal(output_commit(doc, "x.json", &f->err), AG_EPARSE);
  assert_int_equal(list_dir(f->dir, names, 4), 0);
}

static void test_commit_replaces(void **state)
{
  struct folder_fixture *f = *state;
  char path[PATH_SIZE];
  const char rel[] = "x.xml";
  struct output_source src = make_source("/export", rel, sizeof(rel) - 1);
  json_t *item = json_pack("{s:s}", "id", "new");
  char names[4][ENTRY_NAME_SIZE];
  static const char old_content[] = "old content";

  join_path(path, sizeof(path), f->dir, "x.json");
  write_file(path, old_content, sizeof(old_content) - 1);

  write_document(f, &src, "annotations", &item, 1, "x.json");
  json_decref(item);

  assert_int_equal(list_dir(f->dir, names, 4), 1);
  json_t *document = load_document(f, "x.json");
  json_t *items = json_object_get(document, "annotations");
  assert_int_equal(json_array_size(items), 1);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(items, 0), "id")),
      "new");
  json_decref(document);
}

static void test_second_list(void **state)
{
  struct folder_fixture *f = *state;
  const char rel[] = "grouped.csv";
  struct output_source src = make_source("/in", rel, sizeof(rel) - 1);
  struct output_doc *doc = NULL;
  json_t *records[] = {
      json_pack("{s:s}", "k", "1"),
      json_pack("{s:s}", "k", "2"),
  };
  json_t *document = json_pack("{s:{s:s}, s:[]}", "fields", "k", "1", "items");

  /* A second begin() closes "records" and opens "documents". */
  src.format = "csv";
  assert_int_equal(output_begin(f->dir, &src, &doc, &f->err), AG_OK);
  const struct export_sink *sink = output_sink(doc);
  assert_int_equal(sink->begin(sink->ctx, "records", &f->err), AG_OK);
  for (size_t i = 0; i < 2; i++)
    assert_int_equal(sink->item(sink->ctx, records[i], &f->err), AG_OK);
  assert_int_equal(sink->begin(sink->ctx, "documents", &f->err), AG_OK);
  assert_int_equal(sink->item(sink->ctx, document, &f->err), AG_OK);

  /* Only the first list counts as the document's items. */
  assert_int_equal(output_item_count(doc), 2);
  assert_int_equal(output_commit(doc, "grouped.json", &f->err), AG_OK);

  json_t *written = load_document(f, "grouped.json");
  json_t *source = expected_source("/in/grouped.csv", "grouped.csv");
  json_object_set_new(source, "format", json_string("csv"));
  json_t *expected = json_pack("{s:i, s:o, s:[O, O], s:[O]}", "format_version",
                               1, "source", source, "records", records[0],
                               records[1], "documents", document);
  assert_json_equal(written, expected);
  json_decref(expected);
  json_decref(written);
  json_decref(document);
  for (size_t i = 0; i < 2; i++)
    json_decref(records[i]);
}

static void test_empty_second_list(void **state)
{
  struct folder_fixture *f = *state;
  const char rel[] = "header-only.csv";
  struct output_source src = make_source("/in", rel, sizeof(rel) - 1);
  struct output_doc *doc = NULL;

  assert_int_equal(output_begin(f->dir, &src, &doc, &f->err), AG_OK);
  const struct export_sink *sink = output_sink(doc);
  assert_int_equal(sink->begin(sink->ctx, "records", &f->err), AG_OK);
  assert_int_equal(sink->begin(sink->ctx, "documents", &f->err), AG_OK);
  assert_int_equal(output_item_count(doc), 0);
  assert_int_equal(output_commit(doc, "header-only.json", &f->err), AG_OK);

  json_t *written = load_document(f, "header-only.json");
  assert_int_equal(json_array_size(json_object_get(written, "records")), 0);
  assert_true(json_is_array(json_object_get(written, "documents")));
  assert_int_equal(json_array_size(json_object_get(written, "documents")), 0);
  json_decref(written);
}

static void test_commit_missing_folder(void **state)
{
  struct folder_fixture *f = *state;
  char dir[PATH_SIZE];
  const char rel[] = "x.xml";
  struct output_source src = make_source("/export", rel, sizeof(rel) - 1);
  struct output_doc *doc = NULL;

  join_path(dir, sizeof(dir), f->dir, "missing");
  assert_int_equal(output_begin(dir, &src, &doc, &f->err), AG_ELOCAL);
  assert_null(doc);
  assert_contains(f->err.message, dir);
}

/* Append json_dumps(value) in compact form to text, which grows. */
static void append_dump(char **text, const json_t *value)
{
  char *dump =
      json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
  assert_non_null(dump);
  size_t len = strlen(*text);
  *text = realloc(*text, len + strlen(dump) + 1);
  assert_non_null(*text);
  memcpy(*text + len, dump, strlen(dump) + 1);
  free(dump);
}

static void append_literal(char **text, const char *literal)
{
  size_t len = strlen(*text);
  *text = realloc(*text, len + strlen(literal) + 1);
  assert_non_null(*text);
  memcpy(*text + len, literal, strlen(literal) + 1);
}

/* An item with every byte that JSON escapes, multibyte UTF-8, keys that
 * need escapes, all value types, empty containers, nesting deeper than
 * output.c writes itself, and a string longer than the write buffer. */
static json_t *tricky_item(void)
{
  char bytes[0x20 + 5];
  json_t *item = json_object();
  json_t *deep = json_string("bottom");

  for (int i = 0; i < 0x20; i++)
    bytes[i] = (char)i;
  memcpy(bytes + 0x20, "\"\\/\x7f", 4);
  bytes[0x24] = 'x';
  json_object_set_new(item, "bytes", json_stringn(bytes, sizeof(bytes)));
  json_object_set_new(item, "utf8",
                      json_string("\xc4\x8d\xc3\xa1 \xe2\x82\xac "
                                  "\xf0\x9f\x98\x80 \xe2\x80\xa8"));
  json_object_set_new(item, "k\"e\\y\n\x01", json_integer(INT64_MIN));
  json_object_setn_new(item, "nul\0key", 7, json_integer(INT64_MAX));
  json_object_set_new(item, "reals",
                      json_pack("[f, f, f, f]", 1.1, -0.0, 1e300, 0.5));
  json_object_set_new(item, "literals", json_pack("[b, b, n]", 1, 0));
  json_object_set_new(item, "empty", json_pack("[{}, [], \"\"]"));
  for (int i = 0; i < 70; i++)
    deep = json_pack("[o, {s:i}]", deep, "level", i);
  json_object_set_new(item, "deep", deep);

  size_t long_len = 200 * 1000;
  char *long_text = malloc(long_len);
  assert_non_null(long_text);
  for (size_t i = 0; i < long_len; i++)
    long_text[i] = i % 1000 == 999 ? '\n' : (char)('a' + i % 26);
  json_object_set_new(item, "long", json_stringn(long_text, long_len));
  free(long_text);
  return item;
}

/* output.c writes values itself instead of with jansson's dump, and its
 * text must be byte for byte what jansson writes. */
static void test_items_written_as_jansson(void **state)
{
  struct folder_fixture *f = *state;
  char path[PATH_SIZE];
  const char rel[] = "a.csv";
  struct output_source src = make_source("/export", rel, sizeof(rel) - 1);
  json_t *items[] = {tricky_item(), json_object(), tricky_item()};
  const size_t item_count = sizeof(items) / sizeof(items[0]);

  write_document(f, &src, "records", items, item_count, "a.json");

  char *expected = calloc(1, 1);
  assert_non_null(expected);
  json_t *source = output_source_object(&src);
  append_literal(&expected, "{\"format_version\":1,\"source\":");
  append_dump(&expected, source);
  append_literal(&expected, ",\"records\":[");
  for (size_t i = 0; i < item_count; i++) {
    if (i > 0)
      append_literal(&expected, ",");
    append_dump(&expected, items[i]);
  }
  append_literal(&expected, "]}\n");

  join_path(path, sizeof(path), f->dir, "a.json");
  size_t len = 0;
  char *text = read_file(path, &len);
  assert_int_equal(len, strlen(expected));
  assert_memory_equal(text, expected, len);
  free(text);
  free(expected);
  json_decref(source);
  for (size_t i = 0; i < item_count; i++)
    json_decref(items[i]);
}

static void test_format_time_epoch(void **state)
{
  char text[32];

  (void)state;
  output_format_time(0, text, sizeof(text));
  assert_string_equal(text, "1970-01-01T00:00:00Z");
}

static void test_format_time_known(void **state)
{
  char text[32];

  (void)state;
  output_format_time(1700000000, text, sizeof(text));
  assert_string_equal(text, "2023-11-14T22:13:20Z");
  output_format_time(951782400, text, sizeof(text));
  assert_string_equal(text, "2000-02-29T00:00:00Z");
  output_format_time(-1, text, sizeof(text));
  assert_string_equal(text, "1969-12-31T23:59:59Z");
}

static void test_format_time_min_buffer(void **state)
{
  char text[21];

  (void)state;
  output_format_time(1700000000, text, sizeof(text));
  assert_string_equal(text, "2023-11-14T22:13:20Z");
}

#define TEST(name)                                                             \
  cmocka_unit_test_setup_teardown(name, folder_fixture_setup,                  \
                                  folder_fixture_teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
      TEST(test_document_items),
      TEST(test_document_frame),
      TEST(test_document_no_items),
      TEST(test_invalid_utf8_name),
      TEST(test_truncated_utf8_name),
      TEST(test_invalid_folder_only),
      TEST(test_valid_utf8_name),
      TEST(test_nul_in_name),
      TEST(test_root_inbox),
      TEST(test_invalid_utf8_inbox),
      TEST(test_temp_name_while_open),
      TEST(test_output_mode),
      TEST(test_abort_removes_temp),
      TEST(test_abort_null),
      TEST(test_commit_without_list),
      TEST(test_commit_replaces),
      TEST(test_second_list),
      TEST(test_empty_second_list),
      TEST(test_commit_missing_folder),
      TEST(test_items_written_as_jansson),
      cmocka_unit_test(test_format_time_epoch),
      cmocka_unit_test(test_format_time_known),
      cmocka_unit_test(test_format_time_min_buffer),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
