/* Unit tests for passthrough.c: which names are passthrough files, and the
 * copy and sidecar that passthrough_publish() writes. */
#include "agent/passthrough.h"

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

#define SHA256_HEX                                                             \
  "9c1e44a0b2d37f58aa11bb22cc33dd44ee55ff660011223344556677889900aa"

/* A temporary folder with the downloaded file and the output folder. */
struct fixture {
  char dir[512];
  char download[600];
  char out[600];
};

static int setup(void **state)
{
  struct fixture *fixture = calloc(1, sizeof(*fixture));

  if (fixture == NULL || make_temp_dir("test_passthrough", fixture->dir,
                                       sizeof(fixture->dir)) != 0) {
    free(fixture);
    return -1;
  }
  snprintf(fixture->download, sizeof(fixture->download), "%s/download",
           fixture->dir);
  snprintf(fixture->out, sizeof(fixture->out), "%s/out", fixture->dir);
  if (mkdir(fixture->out, 0750) != 0) {
    remove_tree(fixture->dir);
    free(fixture);
    return -1;
  }
  *state = fixture;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *fixture = *state;
  int result = remove_tree(fixture->dir);

  free(fixture);
  return result;
}

static struct output_source source_for(const char *rel, size_t rel_len,
                                       uint64_t size)
{
  struct output_source source = {
      .inbox = "/exports/inbox",
      .rel = rel,
      .rel_len = rel_len,
      .size = size,
      .mtime = 1730801577, /* 2024-11-05T10:12:57Z */
      .sha256 = SHA256_HEX,
      .format = "passthrough",
  };
  return source;
}

static json_t *load_json(const char *path)
{
  json_error_t error;
  json_t *value = json_load_file(path, 0, &error);

  if (value == NULL)
    fail_msg("%s is not JSON: %s", path, error.text);
  return value;
}

static void selection_rules(void **state)
{
  struct config *config = calloc(1, sizeof(*config));
  static char pattern[] = "invoice_file-*";
  static char excluded[] = "*.part";
  (void)state;

  assert_non_null(config);
  assert_false(passthrough_selected(config, "invoice_file-1"));

  config->passthrough[0] = pattern;
  config->passthrough_count = 1;
  assert_true(passthrough_selected(config, "invoice_file-1"));
  assert_true(passthrough_selected(config, "invoice_file-1.xml"));
  assert_false(passthrough_selected(config, "export.xml"));
  /* Patterns ignore case, like include and exclude. */
  assert_true(passthrough_selected(config, "INVOICE_FILE-1"));

  config->exclude[0] = excluded;
  config->exclude_count = 1;
  assert_false(passthrough_selected(config, "invoice_file-1.part"));
  assert_true(passthrough_selected(config, "invoice_file-1"));
  free(config);
}

static void copy_and_sidecar(void **state)
{
  struct fixture *fixture = *state;
  static const char content[] = "%PDF-1.7\n\0\xff\xfe binary\r\n";
  size_t size = sizeof(content) - 1;
  struct output_source source =
      source_for("2024/invoice_file-4410021", 25, size);
  struct ag_error err = {0};
  char *name = NULL;
  char path[1024];
  struct stat info;

  write_file(fixture->download, content, size);
  assert_int_equal(passthrough_publish(fixture->out, &source, fixture->download,
                                       &name, &err),
                   AG_OK);
  assert_string_equal(name, "2024%2Finvoice_file-4410021.9c1e44a0b2d37f58.bin");

  join_path(path, sizeof(path), fixture->out, name);
  size_t copied = 0;
  char *bytes = read_file(path, &copied);
  assert_int_equal(copied, size);
  assert_memory_equal(bytes, content, size);
  free(bytes);
  assert_int_equal(stat(path, &info), 0);
  assert_int_equal(info.st_mode & 0777, 0640);

  format_text(path, sizeof(path), "%s/%s.json", fixture->out, name);
  json_t *sidecar = load_json(path);
  static const char *const keys[] = {"format_version", "source"};
  assert_keys(sidecar, keys, 2);
  assert_int_equal(
      json_integer_value(json_object_get(sidecar, "format_version")), 1);
  json_t *src = json_object_get(sidecar, "source");
  assert_string_equal(text_of(src, "path"),
                      "/exports/inbox/2024/invoice_file-4410021");
  assert_string_equal(text_of(src, "name"), "invoice_file-4410021");
  assert_int_equal(json_integer_value(json_object_get(src, "size")), size);
  assert_string_equal(text_of(src, "mtime"), "2024-11-05T10:12:57Z");
  assert_string_equal(text_of(src, "sha256"), SHA256_HEX);
  assert_string_equal(text_of(src, "format"), "passthrough");
  assert_null(json_object_get(src, "name_raw"));
  json_decref(sidecar);
  assert_int_equal(stat(path, &info), 0);
  assert_int_equal(info.st_mode & 0777, 0640);

  assert_int_equal(count_dir_entries(fixture->out), 2);
  free(name);
}

/* A name that is not UTF-8 is shown escaped, and name_raw keeps it. */
static void name_not_utf8(void **state)
{
  struct fixture *fixture = *state;
  struct output_source source = source_for("caf\xe9", 4, 1);
  struct ag_error err = {0};
  char *name = NULL;
  char path[1024];

  write_file(fixture->download, "x", 1);
  assert_int_equal(passthrough_publish(fixture->out, &source, fixture->download,
                                       &name, &err),
                   AG_OK);
  assert_string_equal(name, "caf%E9.9c1e44a0b2d37f58.bin");

  format_text(path, sizeof(path), "%s/%s.json", fixture->out, name);
  json_t *sidecar = load_json(path);
  json_t *src = json_object_get(sidecar, "source");
  assert_string_equal(text_of(src, "name"), "caf%E9");
  assert_string_equal(text_of(src, "name_raw"), "Y2Fm6Q==");
  json_decref(sidecar);
  free(name);
}

/* Publishing again replaces both files instead of adding new ones. */
static void publish_twice_replaces(void **state)
{
  struct fixture *fixture = *state;
  struct output_source source = source_for("invoice_file-1", 14, 3);
  struct ag_error err = {0};
  char *first = NULL;
  char *second = NULL;

  write_file(fixture->download, "abc", 3);
  assert_int_equal(passthrough_publish(fixture->out, &source, fixture->download,
                                       &first, &err),
                   AG_OK);
  assert_int_equal(passthrough_publish(fixture->out, &source, fixture->download,
                                       &second, &err),
                   AG_OK);
  assert_string_equal(first, second);
  assert_int_equal(count_dir_entries(fixture->out), 2);
  free(first);
  free(second);
}

/* A download whose size is not the recorded one is not published, and no
 * temporary file stays behind. */
static void size_mismatch_fails(void **state)
{
  struct fixture *fixture = *state;
  struct output_source source = source_for("invoice_file-2", 14, 10);
  struct ag_error err = {0};
  char *name = NULL;

  write_file(fixture->download, "abc", 3);
  assert_int_equal(passthrough_publish(fixture->out, &source, fixture->download,
                                       &name, &err),
                   AG_ELOCAL);
  assert_null(name);
  assert_contains(err.message, "has 3 bytes, but 10 were downloaded");
  assert_int_equal(count_dir_entries(fixture->out), 0);
}

static void missing_download_fails(void **state)
{
  struct fixture *fixture = *state;
  struct output_source source = source_for("invoice_file-3", 14, 1);
  struct ag_error err = {0};
  char *name = NULL;

  assert_int_equal(passthrough_publish(fixture->out, &source, fixture->download,
                                       &name, &err),
                   AG_ELOCAL);
  assert_contains(err.message, "cannot open");
  assert_int_equal(count_dir_entries(fixture->out), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(selection_rules),
      cmocka_unit_test_setup_teardown(copy_and_sidecar, setup, teardown),
      cmocka_unit_test_setup_teardown(name_not_utf8, setup, teardown),
      cmocka_unit_test_setup_teardown(publish_twice_replaces, setup, teardown),
      cmocka_unit_test_setup_teardown(size_mismatch_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(missing_download_fails, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
