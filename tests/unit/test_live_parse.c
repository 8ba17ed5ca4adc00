/* Unit tests for live_parse.c and the parts of output.c and export_xml.c
 * that it uses. An XML export parsed while a writer appends to its copy
 * gives the same document as a parse after the download, and the content
 * hash is set at the end. Every test writes into a fresh folder. */
#include "../../src/live_parse.h"

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define PATH_SIZE 512
#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define MULTI_XML TEST_DATA_DIR "/rossum_export_multi.xml"

static struct config *make_config(const char *output_dir)
{
  struct config *config = calloc(1, sizeof(*config));

  assert_non_null(config);
  config->output_dir = (char *)output_dir;
  return config;
}

static struct output_source make_source(void)
{
  struct output_source source = {
      .inbox = "/inbox",
      .rel = "multi.xml",
      .rel_len = 9,
      .size = 15933,
      .mtime = 1700000000,
      .format = "xml",
  };
  return source;
}

/* Load the JSON document at path. */
static json_t *load_json(const char *path)
{
  json_error_t error;
  json_t *value = json_load_file(path, 0, &error);

  if (value == NULL)
    print_error("%s: %s\n", path, error.text);
  assert_non_null(value);
  return value;
}

/* Parse MULTI_XML after the fact into "expected.json" in dir, the way a
 * small file is parsed, and return the document. */
static json_t *parse_afterwards(const char *dir)
{
  struct output_source source = make_source();
  struct output_doc *doc = NULL;
  struct ag_error err = {0};
  char path[PATH_SIZE];

  source.sha256 = SHA_A;
  assert_int_equal(output_begin(dir, &source, &doc, &err), AG_OK);
  assert_int_equal(export_parse_xml(MULTI_XML, output_sink(doc), &err), AG_OK);
  assert_int_equal(output_commit(doc, "expected.json", &err), AG_OK);
  join_path(path, sizeof(path), dir, "expected.json");
  return load_json(path);
}

/* Copy MULTI_XML into copy_path in pieces of chunk bytes, telling live
 * about each piece, as a download does. Stops after limit bytes. */
static size_t write_in_pieces(struct live_parse *live, const char *copy_path,
                              size_t chunk, size_t limit)
{
  size_t len = 0;
  char *data = read_file(MULTI_XML, &len);
  FILE *copy = fopen(copy_path, "wb");
  size_t written = 0;

  assert_non_null(copy);
  if (limit > len)
    limit = len;
  while (written < limit) {
    size_t piece = limit - written < chunk ? limit - written : chunk;
    assert_int_equal(fwrite(data + written, 1, piece, copy), piece);
    assert_int_equal(fflush(copy), 0);
    written += piece;
    live_parse_grew(live, written);
  }
  fclose(copy);
  free(data);
  return written;
}

/* A parse that follows the copy in small pieces gives the same document
 * as a parse after the download, with the hash written at the end. */
static void live_parse_matches_afterwards(void **state)
{
  struct folder_fixture *fixture = *state;
  struct config *config = make_config(fixture->dir);
  struct output_source source = make_source();
  struct live_parse *live = NULL;
  struct output_doc *doc = NULL;
  char copy_path[PATH_SIZE];
  char path[PATH_SIZE];
  size_t items = 0;

  join_path(copy_path, sizeof(copy_path), fixture->dir, "download.tmp");
  write_file(copy_path, "", 0);
  assert_int_equal(
      live_parse_start(config, copy_path, &source, &live, &fixture->err),
      AG_OK);
  write_in_pieces(live, copy_path, 777, SIZE_MAX);
  assert_int_equal(
      live_parse_finish(live, true, SHA_A, &doc, &items, &fixture->err), AG_OK);
  assert_non_null(doc);
  assert_int_equal(items, 3);
  assert_int_equal(output_commit(doc, "live.json", &fixture->err), AG_OK);

  join_path(path, sizeof(path), fixture->dir, "live.json");
  json_t *live_doc = load_json(path);
  json_t *expected = parse_afterwards(fixture->dir);
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(live_doc, "source"), "sha256")),
                      SHA_A);
  assert_true(json_equal(live_doc, expected));
  json_decref(live_doc);
  json_decref(expected);
  free(config);
}

/* A download that stops early stops the parse and leaves no output. */
static void live_parse_cut_off(void **state)
{
  struct folder_fixture *fixture = *state;
  struct config *config = make_config(fixture->dir);
  struct output_source source = make_source();
  struct live_parse *live = NULL;
  char copy_path[PATH_SIZE];

  join_path(copy_path, sizeof(copy_path), fixture->dir, "download.tmp");
  write_file(copy_path, "", 0);
  assert_int_equal(
      live_parse_start(config, copy_path, &source, &live, &fixture->err),
      AG_OK);
  write_in_pieces(live, copy_path, 1000, 3000);
  assert_int_equal(live_parse_finish(live, false, NULL, NULL, NULL, NULL),
                   AG_OK);
  assert_int_equal(count_dir_entries(fixture->dir), 1); /* the copy only */
  free(config);
}

/* A complete input that is not valid XML fails with AG_EPARSE, and the
 * document is removed. */
static void live_parse_bad_input(void **state)
{
  struct folder_fixture *fixture = *state;
  struct config *config = make_config(fixture->dir);
  struct output_source source = make_source();
  struct live_parse *live = NULL;
  struct output_doc *doc = NULL;
  char copy_path[PATH_SIZE];
  size_t items = 0;
  const char bad[] = "<?xml version=\"1.0\"?>\n<export><results><annotation>";

  join_path(copy_path, sizeof(copy_path), fixture->dir, "download.tmp");
  write_file(copy_path, bad, sizeof(bad) - 1);
  assert_int_equal(
      live_parse_start(config, copy_path, &source, &live, &fixture->err),
      AG_OK);
  live_parse_grew(live, sizeof(bad) - 1);
  assert_int_equal(
      live_parse_finish(live, true, SHA_A, &doc, &items, &fixture->err),
      AG_EPARSE);
  assert_null(doc);
  assert_non_null(strstr(fixture->err.message, "line"));
  assert_int_equal(count_dir_entries(fixture->dir), 1);
  free(config);
}

/* The placeholder hash can be set once, and only in a document that
 * output_begin_unhashed() started. */
static void unhashed_document_gets_hash_once(void **state)
{
  struct folder_fixture *fixture = *state;
  struct output_source source = make_source();
  struct output_doc *doc = NULL;
  struct ag_error twice_err = {0};
  struct ag_error hashed_err = {0};
  char path[PATH_SIZE];

  /* A name of zeros cannot be mistaken for the placeholder. */
  source.rel =
      "0000000000000000000000000000000000000000000000000000000000000000";
  source.rel_len = 64;
  assert_int_equal(
      output_begin_unhashed(fixture->dir, &source, &doc, &fixture->err), AG_OK);
  const struct export_sink *sink = output_sink(doc);
  assert_int_equal(sink->begin(sink->ctx, "annotations", &fixture->err), AG_OK);
  assert_int_equal(output_set_sha256(doc, SHA_A, &fixture->err), AG_OK);
  assert_int_equal(output_set_sha256(doc, SHA_A, &twice_err), AG_ELOCAL);
  assert_int_equal(output_commit(doc, "zeros.json", &fixture->err), AG_OK);

  join_path(path, sizeof(path), fixture->dir, "zeros.json");
  json_t *document = load_json(path);
  json_t *src = json_object_get(document, "source");
  assert_string_equal(json_string_value(json_object_get(src, "sha256")), SHA_A);
  assert_string_equal(json_string_value(json_object_get(src, "name")),
                      source.rel);
  json_decref(document);

  source.sha256 = SHA_A;
  assert_int_equal(output_begin(fixture->dir, &source, &doc, &fixture->err),
                   AG_OK);
  assert_int_equal(output_set_sha256(doc, SHA_A, &hashed_err), AG_ELOCAL);
  output_abort(doc);
}

#define FOLDER_TEST(name)                                                      \
  cmocka_unit_test_setup_teardown(name, folder_fixture_setup,                  \
                                  folder_fixture_teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
      FOLDER_TEST(live_parse_matches_afterwards),
      FOLDER_TEST(live_parse_cut_off),
      FOLDER_TEST(live_parse_bad_input),
      FOLDER_TEST(unhashed_document_gets_hash_once),
  };

  export_init();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
