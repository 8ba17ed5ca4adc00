/* Unit tests for the meta values and record deletion of manifest.c,
 * against real LMDB files in a fresh temporary folder per test. */
#include "agent/manifest.h"

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIR_SIZE 4096
#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static int setup_folder(void **state)
{
  char *dir = malloc(DIR_SIZE);

  if (dir == NULL)
    return -1;
  if (make_temp_dir("test_manifest_meta", dir, DIR_SIZE) != 0) {
    free(dir);
    return -1;
  }
  *state = dir;
  return 0;
}

static int teardown_folder(void **state)
{
  char *dir = *state;
  int rc = remove_tree(dir);

  free(dir);
  return rc;
}

static struct manifest *open_ok(const char *dir)
{
  struct ag_error err = {0};
  struct manifest *manifest = NULL;
  enum ag_code code = manifest_open(dir, &manifest, &err);

  if (code != AG_OK)
    print_error("manifest_open: %s\n", err.message);
  assert_int_equal(code, AG_OK);
  return manifest;
}

static void set_ok(struct manifest *manifest, const char *key,
                   const char *value)
{
  struct ag_error err = {0};
  enum ag_code code = manifest_set_meta(manifest, key, value, &err);

  if (code != AG_OK)
    print_error("manifest_set_meta: %s\n", err.message);
  assert_int_equal(code, AG_OK);
}

/* Return the value of key (the caller frees it), or NULL when unset. */
static char *get_ok(struct manifest *manifest, const char *key)
{
  struct ag_error err = {0};
  char *value = (char *)"sentinel";
  enum ag_code code = manifest_get_meta(manifest, key, &value, &err);

  if (code != AG_OK)
    print_error("manifest_get_meta: %s\n", err.message);
  assert_int_equal(code, AG_OK);
  return value;
}

static void put_record(struct manifest *manifest, const char *key,
                       enum manifest_state state, const char *sha256)
{
  struct manifest_record record = {0};
  struct ag_error err = {0};

  record.state = state;
  record.size = 10;
  snprintf(record.sha256, sizeof(record.sha256), "%s", sha256);
  assert_int_equal(manifest_put(manifest, key, strlen(key), &record, &err),
                   AG_OK);
}

static bool has_record(struct manifest *manifest, const char *key)
{
  struct manifest_record record = {0};
  struct ag_error err = {0};
  bool found = false;

  assert_int_equal(
      manifest_get(manifest, key, strlen(key), &record, &found, &err), AG_OK);
  manifest_record_clear(&record);
  return found;
}

/* ---- Meta values ---- */

static void test_meta_round_trip(void **state)
{
  struct manifest *manifest = open_ok(*state);

  assert_null(get_ok(manifest, "last_success"));
  set_ok(manifest, "last_success", "1733300000");
  set_ok(manifest, "backlog", "");
  char *value = get_ok(manifest, "last_success");
  assert_string_equal(value, "1733300000");
  free(value);
  value = get_ok(manifest, "backlog");
  assert_string_equal(value, "");
  free(value);

  set_ok(manifest, "last_success", "1733300060");
  value = get_ok(manifest, "last_success");
  assert_string_equal(value, "1733300060");
  free(value);
  manifest_close(manifest);
}

static void test_meta_survives_reopen(void **state)
{
  struct manifest *manifest = open_ok(*state);

  set_ok(manifest, "backlog", "42");
  manifest_close(manifest);
  manifest = open_ok(*state);
  char *value = get_ok(manifest, "backlog");
  assert_string_equal(value, "42");
  free(value);
  manifest_close(manifest);
}

/* The manifest's own keys can be read but not set, and keys and values
 * have limits. */
static void test_meta_rejects(void **state)
{
  struct manifest *manifest = open_ok(*state);
  struct ag_error err = {0};
  char long_key[MANIFEST_META_KEY_MAX + 2];
  char *long_value = malloc(MANIFEST_META_VALUE_MAX + 2);

  assert_non_null(long_value);
  memset(long_key, 'k', sizeof(long_key) - 1);
  long_key[sizeof(long_key) - 1] = '\0';
  memset(long_value, 'v', MANIFEST_META_VALUE_MAX + 1);
  long_value[MANIFEST_META_VALUE_MAX + 1] = '\0';

  assert_int_equal(manifest_set_meta(manifest, "schema_version", "2", &err),
                   AG_ESTATE);
  assert_contains(err.message, "schema_version");
  ag_error_clear(&err);
  assert_int_equal(manifest_set_meta(manifest, "created_at", "0", &err),
                   AG_ESTATE);
  ag_error_clear(&err);
  assert_int_equal(manifest_set_meta(manifest, long_key, "1", &err), AG_ESTATE);
  assert_contains(err.message, "1 to 64");
  ag_error_clear(&err);
  assert_int_equal(manifest_set_meta(manifest, "", "1", &err), AG_ESTATE);
  ag_error_clear(&err);
  assert_int_equal(manifest_set_meta(manifest, "big", long_value, &err),
                   AG_ESTATE);
  assert_contains(err.message, "1024");

  char *version = get_ok(manifest, "schema_version");
  assert_string_equal(version, "2");
  free(version);
  assert_null(get_ok(manifest, "big"));
  free(long_value);
  manifest_close(manifest);
}

/* ---- Deleting records ---- */

static void test_delete_one_record(void **state)
{
  struct manifest *manifest = open_ok(*state);
  struct ag_error err = {0};
  bool found = false;

  put_record(manifest, "a.xml", MANIFEST_FAILED, "");
  put_record(manifest, "b.xml", MANIFEST_ARCHIVED, "");
  assert_int_equal(manifest_delete(manifest, "a.xml", 5, &found, &err), AG_OK);
  assert_true(found);
  assert_false(has_record(manifest, "a.xml"));
  assert_true(has_record(manifest, "b.xml"));

  assert_int_equal(manifest_delete(manifest, "a.xml", 5, &found, &err), AG_OK);
  assert_false(found);
  manifest_close(manifest);
}

/* The delivered version stays known, so identical content is not
 * delivered a second time after forget. */
static void test_delete_keeps_delivered_version(void **state)
{
  struct manifest *manifest = open_ok(*state);
  struct ag_error err = {0};
  bool found = false;

  put_record(manifest, "a.xml", MANIFEST_DELIVERED, SHA_A);
  assert_int_equal(manifest_delete(manifest, "a.xml", 5, &found, &err), AG_OK);
  assert_true(found);
  found = false;
  assert_int_equal(
      manifest_was_delivered(manifest, SHA_A, "a.xml", 5, &found, &err), AG_OK);
  assert_true(found);
  manifest_close(manifest);
}

static void test_delete_rejects_empty_key(void **state)
{
  struct manifest *manifest = open_ok(*state);
  struct ag_error err = {0};
  bool found = true;

  assert_int_equal(manifest_delete(manifest, "", 0, &found, &err), AG_ESTATE);
  assert_false(found);
  manifest_close(manifest);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
#define FOLDER_TEST(fn)                                                        \
  cmocka_unit_test_setup_teardown(fn, setup_folder, teardown_folder)
      FOLDER_TEST(test_meta_round_trip),
      FOLDER_TEST(test_meta_survives_reopen),
      FOLDER_TEST(test_meta_rejects),
      FOLDER_TEST(test_delete_one_record),
      FOLDER_TEST(test_delete_keeps_delivered_version),
      FOLDER_TEST(test_delete_rejects_empty_key),
#undef FOLDER_TEST
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
