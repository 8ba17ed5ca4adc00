/* Unit tests for the batch API of manifest.c and for its use by several
 * threads at once, against real LMDB files in a fresh folder per test. */
#include "agent/manifest.h"

#include "agent/platform.h"
#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

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

static struct manifest_batch *batch_ok(struct manifest *manifest)
{
  struct ag_error err = {0};
  struct manifest_batch *batch = NULL;

  assert_int_equal(manifest_batch_new(manifest, &batch, &err), AG_OK);
  assert_non_null(batch);
  assert_int_equal(manifest_batch_count(batch), 0);
  return batch;
}

static void batch_put_ok(struct manifest_batch *batch, const char *key,
                         const struct manifest_record *record)
{
  struct ag_error err = {0};

  enum ag_code code = manifest_batch_put(batch, key, strlen(key), record, &err);
  if (code != AG_OK)
    print_error("manifest_batch_put: %s\n", err.message);
  assert_int_equal(code, AG_OK);
}

static void commit_ok(struct manifest_batch *batch)
{
  struct ag_error err = {0};

  enum ag_code code = manifest_batch_commit(batch, &err);
  if (code != AG_OK)
    print_error("manifest_batch_commit: %s\n", err.message);
  assert_int_equal(code, AG_OK);
}

/* Return whether key has a record, filling record when it has. */
static bool get_record(struct manifest *manifest, const char *key,
                       struct manifest_record *record)
{
  struct ag_error err = {0};
  bool found = false;

  assert_int_equal(
      manifest_get(manifest, key, strlen(key), record, &found, &err), AG_OK);
  return found;
}

static bool was_delivered(struct manifest *manifest, const char *sha256,
                          const char *key)
{
  struct ag_error err = {0};
  bool found = false;

  assert_int_equal(
      manifest_was_delivered(manifest, sha256, key, strlen(key), &found, &err),
      AG_OK);
  return found;
}

/* Puts are stored only by the commit, all of them, in order: the last put
 * of a key wins, and a DELIVERED put adds its version. */
static void batch_commit_stores_all(void **state)
{
  struct folder_fixture *fixture = *state;
  struct manifest *manifest = open_ok(fixture->dir);
  struct manifest_batch *batch = batch_ok(manifest);
  struct manifest_record record = {.state = MANIFEST_SEEN, .size = 10};
  struct manifest_record out = {0};

  batch_put_ok(batch, "a.xml", &record);
  record.state = MANIFEST_DOWNLOADED;
  memcpy(record.sha256, SHA_A, sizeof(SHA_A));
  batch_put_ok(batch, "a.xml", &record);
  record.state = MANIFEST_DELIVERED;
  record.output = "a.0123456789abcdef.json";
  batch_put_ok(batch, "a.xml", &record);
  record.state = MANIFEST_FAILED;
  record.output = NULL;
  record.sha256[0] = '\0';
  record.reason = "empty file";
  batch_put_ok(batch, "b.xml", &record);
  assert_int_equal(manifest_batch_count(batch), 4);

  /* Nothing is visible before the commit. */
  assert_false(get_record(manifest, "a.xml", &out));
  assert_false(was_delivered(manifest, SHA_A, "a.xml"));

  commit_ok(batch);
  assert_int_equal(manifest_batch_count(batch), 0);
  assert_true(get_record(manifest, "a.xml", &out));
  assert_int_equal(out.state, MANIFEST_DELIVERED);
  assert_string_equal(out.sha256, SHA_A);
  assert_string_equal(out.output, "a.0123456789abcdef.json");
  manifest_record_clear(&out);
  assert_true(get_record(manifest, "b.xml", &out));
  assert_int_equal(out.state, MANIFEST_FAILED);
  assert_string_equal(out.reason, "empty file");
  manifest_record_clear(&out);
  assert_true(was_delivered(manifest, SHA_A, "a.xml"));
  assert_false(was_delivered(manifest, SHA_A, "b.xml"));

  /* An empty batch commits nothing and stays usable. */
  commit_ok(batch);
  record.state = MANIFEST_ARCHIVED;
  record.reason = NULL;
  memcpy(record.sha256, SHA_B, sizeof(SHA_B));
  batch_put_ok(batch, "a.xml", &record);
  commit_ok(batch);
  assert_true(get_record(manifest, "a.xml", &out));
  assert_int_equal(out.state, MANIFEST_ARCHIVED);
  assert_string_equal(out.sha256, SHA_B);
  manifest_record_clear(&out);

  manifest_batch_free(batch);
  manifest_close(manifest);
}

/* A DELIVERED put that a later put of the same key replaces in the same
 * batch still records its delivered version, so an identical re-upload is
 * recognised. */
static void batch_keeps_replaced_version(void **state)
{
  struct folder_fixture *fixture = *state;
  struct manifest *manifest = open_ok(fixture->dir);
  struct manifest_batch *batch = batch_ok(manifest);
  struct manifest_record record = {.state = MANIFEST_DELIVERED};
  struct manifest_record out = {0};

  memcpy(record.sha256, SHA_A, sizeof(SHA_A));
  record.output = "c.0123456789abcdef.json";
  batch_put_ok(batch, "c.xml", &record);
  record.state = MANIFEST_ARCHIVED;
  record.archive_path = "/archive/c.xml";
  batch_put_ok(batch, "c.xml", &record);
  batch_put_ok(batch, "d.xml", &record);
  commit_ok(batch);

  assert_true(get_record(manifest, "c.xml", &out));
  assert_int_equal(out.state, MANIFEST_ARCHIVED);
  assert_string_equal(out.archive_path, "/archive/c.xml");
  assert_string_equal(out.output, "c.0123456789abcdef.json");
  manifest_record_clear(&out);
  assert_true(was_delivered(manifest, SHA_A, "c.xml"));
  assert_false(was_delivered(manifest, SHA_A, "d.xml"));

  struct ag_error err = {0};
  size_t counts[MANIFEST_STATE_COUNT];
  assert_int_equal(manifest_counts(manifest, counts, &err), AG_OK);
  assert_int_equal(counts[MANIFEST_ARCHIVED], 2);
  assert_int_equal(counts[MANIFEST_DELIVERED], 0);
  manifest_batch_free(batch);
  manifest_close(manifest);
}

/* The batch copies what it is given, so the caller may reuse its record
 * and key at once. */
static void batch_put_copies_record(void **state)
{
  struct folder_fixture *fixture = *state;
  struct manifest *manifest = open_ok(fixture->dir);
  struct manifest_batch *batch = batch_ok(manifest);
  struct manifest_record record = {.state = MANIFEST_FAILED};
  struct manifest_record out = {0};
  char key[16] = "first.csv";
  char reason[32] = "first reason";

  record.reason = reason;
  batch_put_ok(batch, key, &record);
  snprintf(key, sizeof(key), "second.csv");
  snprintf(reason, sizeof(reason), "second reason");
  batch_put_ok(batch, key, &record);
  memset(key, 'x', sizeof(key) - 1);
  memset(reason, 'y', sizeof(reason) - 1);
  commit_ok(batch);

  assert_true(get_record(manifest, "first.csv", &out));
  assert_string_equal(out.reason, "first reason");
  manifest_record_clear(&out);
  assert_true(get_record(manifest, "second.csv", &out));
  assert_string_equal(out.reason, "second reason");
  manifest_record_clear(&out);
  manifest_batch_free(batch);
  manifest_close(manifest);
}

/* A put that manifest_put() would reject is rejected when it is added,
 * and leaves the batch as it was. */
static void batch_put_rejects_invalid(void **state)
{
  struct folder_fixture *fixture = *state;
  struct manifest *manifest = open_ok(fixture->dir);
  struct manifest_batch *batch = batch_ok(manifest);
  struct manifest_record record = {.state = MANIFEST_SEEN};
  struct ag_error err = {0};
  char long_key[MANIFEST_KEY_MAX + 2];

  memset(long_key, 'k', sizeof(long_key) - 1);
  long_key[sizeof(long_key) - 1] = '\0';
  assert_int_equal(
      manifest_batch_put(batch, long_key, strlen(long_key), &record, &err),
      AG_ESTATE);
  assert_non_null(strstr(err.message, "Shorten the path"));
  struct ag_error empty_err = {0};
  assert_int_equal(manifest_batch_put(batch, "", 0, &record, &empty_err),
                   AG_ESTATE);
  struct ag_error sha_err = {0};
  snprintf(record.sha256, sizeof(record.sha256), "not hex");
  assert_int_equal(manifest_batch_put(batch, "a.xml", 5, &record, &sha_err),
                   AG_ESTATE);
  assert_non_null(strstr(sha_err.message, "sha256"));
  assert_int_equal(manifest_batch_count(batch), 0);

  manifest_batch_free(batch);
  manifest_close(manifest);
}

/* A batch that is freed without a commit stores nothing. */
static void batch_free_discards(void **state)
{
  struct folder_fixture *fixture = *state;
  struct manifest *manifest = open_ok(fixture->dir);
  struct manifest_batch *batch = batch_ok(manifest);
  struct manifest_record record = {.state = MANIFEST_SEEN};
  struct manifest_record out = {0};

  batch_put_ok(batch, "a.xml", &record);
  manifest_batch_free(batch);
  manifest_batch_free(NULL);
  assert_false(get_record(manifest, "a.xml", &out));
  manifest_close(manifest);
}

/* ---- Several threads ---- */

#define READER_THREADS 3
#define GROWTH_BATCHES 40
#define GROWTH_BATCH_RECORDS 125
#define GROWTH_REASON 4096

struct reader {
  struct manifest *manifest;
  atomic_bool *done;
  size_t reads;
  size_t failures;
};

/* Read the record "seed.xml" until the writer is done. Every read must
 * succeed, also while the writer grows the map. */
static void read_until_done(void *arg)
{
  struct reader *reader = arg;

  while (!atomic_load(reader->done)) {
    struct manifest_record record = {0};
    struct ag_error err = {0};
    bool found = false;

    if (manifest_get(reader->manifest, "seed.xml", 8, &record, &found, &err) !=
            AG_OK ||
        !found || record.attempts != 7)
      reader->failures++;
    manifest_record_clear(&record);
    reader->reads++;
  }
}

/* Batches that need more than the initial 16 MiB map grow it while other
 * threads read: the map is resized only while no transaction is open, so
 * every read succeeds and every record is stored. */
static void map_grows_while_threads_read(void **state)
{
  struct folder_fixture *fixture = *state;
  struct manifest *manifest = open_ok(fixture->dir);
  struct manifest_record record = {.state = MANIFEST_FAILED, .attempts = 7};
  struct reader readers[READER_THREADS];
  struct plat_thread *threads[READER_THREADS];
  atomic_bool done;
  struct ag_error err = {0};
  char *reason = malloc(GROWTH_REASON + 1);
  char key[32];

  assert_non_null(reason);
  memset(reason, 'r', GROWTH_REASON);
  reason[GROWTH_REASON] = '\0';
  assert_int_equal(manifest_put(manifest, "seed.xml", 8, &record, &err), AG_OK);
  atomic_init(&done, false);
  for (size_t i = 0; i < READER_THREADS; i++) {
    readers[i] = (struct reader){.manifest = manifest, .done = &done};
    assert_int_equal(
        plat_thread_start(read_until_done, &readers[i], &threads[i], &err),
        AG_OK);
  }

  struct manifest_batch *batch = batch_ok(manifest);
  record.reason = reason;
  for (size_t b = 0; b < GROWTH_BATCHES; b++) {
    for (size_t i = 0; i < GROWTH_BATCH_RECORDS; i++) {
      snprintf(key, sizeof(key), "file-%06zu.xml",
               b * GROWTH_BATCH_RECORDS + i);
      batch_put_ok(batch, key, &record);
    }
    commit_ok(batch);
  }
  atomic_store(&done, true);
  for (size_t i = 0; i < READER_THREADS; i++) {
    plat_thread_join(threads[i]);
    assert_true(readers[i].reads > 0);
    assert_int_equal(readers[i].failures, 0);
  }

  size_t counts[MANIFEST_STATE_COUNT];
  assert_int_equal(manifest_counts(manifest, counts, &err), AG_OK);
  assert_int_equal(counts[MANIFEST_FAILED],
                   GROWTH_BATCHES * GROWTH_BATCH_RECORDS + 1);
  char db[512];
  struct stat info;
  join_path(db, sizeof(db), fixture->dir, "manifest.mdb");
  assert_int_equal(stat(db, &info), 0);
  assert_true(info.st_size > 16 * 1024 * 1024);

  manifest_batch_free(batch);
  manifest_close(manifest);
  free(reason);
}

#define FOLDER_TEST(name)                                                      \
  cmocka_unit_test_setup_teardown(name, folder_fixture_setup,                  \
                                  folder_fixture_teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
      FOLDER_TEST(batch_commit_stores_all),
      FOLDER_TEST(batch_keeps_replaced_version),
      FOLDER_TEST(batch_put_copies_record),
      FOLDER_TEST(batch_put_rejects_invalid),
      FOLDER_TEST(batch_free_discards),
      FOLDER_TEST(map_grows_while_threads_read),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
