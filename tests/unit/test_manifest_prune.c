/* Unit tests for retention: manifest_prune_records() and
 * manifest_prune_versions() on records and versions with old timestamps
 * written through the API, and agent_apply_retention(), which decides
 * what to remove and when, with the clock given as an argument. */
#include "agent/manifest.h"

#include <lmdb.h>

#include "../../src/agent_internal.h"
#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_SIZE 4096
#define DAY 86400
#define NOW ((int64_t)1700000000)

/* ---- Fixtures and helpers ---- */

/* Return the SHA-256 hex of a version: 64 copies of one hex digit. */
static const char *sha_of(char digit)
{
  static char sha[65];

  memset(sha, digit, 64);
  sha[64] = '\0';
  return sha;
}

/* Store a record of key in state, last changed at updated. A delivered
 * record with a hash also stores its version, delivered at updated. */
static void put_at(struct manifest *manifest, const char *key,
                   enum manifest_state state, char sha_digit, int64_t updated)
{
  struct manifest_record record = {.state = state, .updated = updated};
  struct ag_error err = {0};

  if (sha_digit != 0)
    memcpy(record.sha256, sha_of(sha_digit), 65);
  enum ag_code code = manifest_put(manifest, key, strlen(key), &record, &err);
  if (code != AG_OK)
    print_error("manifest_put: %s\n", err.message);
  assert_int_equal(code, AG_OK);
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

static bool was_delivered(struct manifest *manifest, char sha_digit,
                          const char *key)
{
  struct ag_error err = {0};
  bool found = false;

  assert_int_equal(manifest_was_delivered(manifest, sha_of(sha_digit), key,
                                          strlen(key), &found, &err),
                   AG_OK);
  return found;
}

/* Return whether key has a record, decodable or not. */
static bool has_record_raw(struct manifest *manifest, const char *key)
{
  struct manifest_record record = {0};
  struct ag_error err = {0};
  bool found = false;
  enum ag_code code =
      manifest_get(manifest, key, strlen(key), &record, &found, &err);

  manifest_record_clear(&record);
  return found || code == AG_ESTATE;
}

static size_t prune_records(struct manifest *manifest, unsigned states,
                            int64_t before, size_t batch, bool *complete)
{
  struct manifest_prune_limits limits = {batch, 0};
  struct ag_error err = {0};
  size_t removed = 0;

  enum ag_code code = manifest_prune_records(manifest, states, before, &limits,
                                             &removed, complete, &err);
  if (code != AG_OK)
    print_error("manifest_prune_records: %s\n", err.message);
  assert_int_equal(code, AG_OK);
  return removed;
}

static size_t prune_versions(struct manifest *manifest, int64_t before,
                             size_t batch, bool *complete)
{
  struct manifest_prune_limits limits = {batch, 0};
  struct ag_error err = {0};
  size_t removed = 0;

  enum ag_code code = manifest_prune_versions(manifest, before, &limits,
                                              &removed, complete, &err);
  if (code != AG_OK)
    print_error("manifest_prune_versions: %s\n", err.message);
  assert_int_equal(code, AG_OK);
  return removed;
}

#define ARCHIVED_BIT MANIFEST_STATE_BIT(MANIFEST_ARCHIVED)

/* ---- Records ---- */

static void prune_removes_old_in_states(void **state)
{
  struct manifest *manifest = manifest_open_ok(*state);
  bool complete = false;

  put_at(manifest, "old-archived", MANIFEST_ARCHIVED, 0, NOW - 100 * DAY);
  put_at(manifest, "new-archived", MANIFEST_ARCHIVED, 0, NOW - 1 * DAY);
  put_at(manifest, "old-failed", MANIFEST_FAILED, 0, NOW - 100 * DAY);
  put_at(manifest, "old-delivered", MANIFEST_DELIVERED, 'a', NOW - 100 * DAY);
  put_at(manifest, "old-seen", MANIFEST_SEEN, 0, NOW - 100 * DAY);

  size_t removed =
      prune_records(manifest, ARCHIVED_BIT | MANIFEST_STATE_BIT(MANIFEST_SEEN),
                    NOW - 90 * DAY, 100, &complete);
  assert_int_equal(removed, 2);
  assert_true(complete);
  assert_false(has_record(manifest, "old-archived"));
  assert_false(has_record(manifest, "old-seen"));
  assert_true(has_record(manifest, "new-archived"));
  assert_true(has_record(manifest, "old-failed"));
  assert_true(has_record(manifest, "old-delivered"));

  /* The delivered table is not touched. */
  assert_true(was_delivered(manifest, 'a', "old-delivered"));
  manifest_close(manifest);
}

static void prune_batches_cover_table(void **state)
{
  struct manifest *manifest = manifest_open_ok(*state);
  char key[32];
  bool complete = false;

  /* Old and new records alternate in runs, so that removals meet at the
   * edges of every batch of 7. */
  for (int i = 0; i < 100; i++) {
    snprintf(key, sizeof(key), "k%03d", i);
    put_at(manifest, key, MANIFEST_ARCHIVED, 0,
           i % 5 < 3 ? NOW - 10 * DAY : NOW);
  }
  size_t removed =
      prune_records(manifest, ARCHIVED_BIT, NOW - DAY, 7, &complete);
  assert_int_equal(removed, 60);
  assert_true(complete);
  for (int i = 0; i < 100; i++) {
    snprintf(key, sizeof(key), "k%03d", i);
    assert_int_equal(has_record(manifest, key), i % 5 >= 3);
  }

  /* A second run finds nothing more. */
  assert_int_equal(
      prune_records(manifest, ARCHIVED_BIT, NOW - DAY, 7, &complete), 0);
  assert_true(complete);
  manifest_close(manifest);
}

static void prune_stops_at_deadline(void **state)
{
  struct manifest *manifest = manifest_open_ok(*state);
  struct manifest_prune_limits limits = {10, 1};
  struct ag_error err = {0};
  size_t removed = 0;
  bool complete = true;
  char key[32];

  for (int i = 0; i < 50; i++) {
    snprintf(key, sizeof(key), "k%03d", i);
    put_at(manifest, key, MANIFEST_ARCHIVED, 0, NOW - 10 * DAY);
  }

  /* A deadline in the past allows one batch. */
  assert_int_equal(manifest_prune_records(manifest, ARCHIVED_BIT, NOW, &limits,
                                          &removed, &complete, &err),
                   AG_OK);
  assert_int_equal(removed, 10);
  assert_false(complete);
  assert_false(has_record(manifest, "k009"));
  assert_true(has_record(manifest, "k010"));

  /* Without a deadline the next call removes the rest. */
  assert_int_equal(prune_records(manifest, ARCHIVED_BIT, NOW, 10, &complete),
                   40);
  assert_true(complete);
  manifest_close(manifest);
}

/* Store value under key in the files table of the closed manifest in dir,
 * with LMDB directly. */
static void raw_put(const char *dir, const char *key, const char *value)
{
  char db[PATH_SIZE];
  MDB_env *env = NULL;
  MDB_txn *txn = NULL;
  MDB_dbi files;

  join_path(db, sizeof(db), dir, "manifest.mdb");
  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 3), 0);
  assert_int_equal(mdb_env_open(env, db, MDB_NOSUBDIR, 0600), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, "files", 0, &files), 0);
  MDB_val stored_key = {strlen(key), (void *)key};
  MDB_val stored_value = {strlen(value), (void *)value};
  assert_int_equal(mdb_put(txn, files, &stored_key, &stored_value, 0), 0);
  assert_int_equal(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

static void prune_keeps_undecodable(void **state)
{
  const char *dir = *state;
  struct manifest *manifest = manifest_open_ok(dir);
  bool complete = false;

  put_at(manifest, "a", MANIFEST_ARCHIVED, 0, NOW - 10 * DAY);
  put_at(manifest, "c", MANIFEST_ARCHIVED, 0, NOW - 10 * DAY);
  manifest_close(manifest);
  raw_put(dir, "b", "{not json");

  /* The walk goes past the bad record and keeps it for status to report. */
  manifest = manifest_open_ok(dir);
  assert_int_equal(prune_records(manifest, ARCHIVED_BIT, NOW, 1, &complete), 2);
  assert_true(complete);
  assert_false(has_record_raw(manifest, "a"));
  assert_true(has_record_raw(manifest, "b"));
  assert_false(has_record_raw(manifest, "c"));
  manifest_close(manifest);
}

/* ---- Delivered versions ---- */

static void versions_expire_by_delivery_time(void **state)
{
  struct manifest *manifest = manifest_open_ok(*state);
  bool complete = false;

  put_at(manifest, "x.xml", MANIFEST_DELIVERED, 'a', NOW - 400 * DAY);
  put_at(manifest, "x.xml", MANIFEST_DELIVERED, 'b', NOW - 10 * DAY);
  put_at(manifest, "y.xml", MANIFEST_DELIVERED, 'a', NOW - 500 * DAY);

  assert_int_equal(prune_versions(manifest, NOW - 365 * DAY, 1, &complete), 2);
  assert_true(complete);
  assert_false(was_delivered(manifest, 'a', "x.xml"));
  assert_false(was_delivered(manifest, 'a', "y.xml"));
  assert_true(was_delivered(manifest, 'b', "x.xml"));

  /* Records are not touched. */
  assert_true(has_record(manifest, "y.xml"));
  manifest_close(manifest);
}

static void redelivery_renews_version(void **state)
{
  struct manifest *manifest = manifest_open_ok(*state);
  bool complete = false;

  /* An identical re-upload writes the delivered record again, with a new
   * time, so the version lives on from then. */
  put_at(manifest, "x.xml", MANIFEST_DELIVERED, 'a', NOW - 400 * DAY);
  put_at(manifest, "x.xml", MANIFEST_DELIVERED, 'a', NOW - 1 * DAY);
  assert_int_equal(prune_versions(manifest, NOW - 365 * DAY, 64, &complete), 0);
  assert_true(was_delivered(manifest, 'a', "x.xml"));
  manifest_close(manifest);
}

static void version_outlives_record(void **state)
{
  struct manifest *manifest = manifest_open_ok(*state);
  bool complete = false;

  /* Delivered and archived 100 days ago. */
  put_at(manifest, "x.xml", MANIFEST_DELIVERED, 'a', NOW - 100 * DAY);
  put_at(manifest, "x.xml", MANIFEST_ARCHIVED, 'a', NOW - 100 * DAY);

  /* With 90 days for records and 365 for versions, the record goes and
   * the version stays, so an identical re-upload is still recognised. */
  assert_int_equal(
      prune_records(manifest, ARCHIVED_BIT, NOW - 90 * DAY, 64, &complete), 1);
  assert_int_equal(prune_versions(manifest, NOW - 365 * DAY, 64, &complete), 0);
  assert_false(has_record(manifest, "x.xml"));
  assert_true(was_delivered(manifest, 'a', "x.xml"));
  manifest_close(manifest);
}

/* ---- The agent's retention ---- */

/* An agent without a connection on a state folder below dir. */
struct retention_case {
  struct config config;
  char state_dir[PATH_SIZE];
  char output_dir[PATH_SIZE];
  struct agent *agent;
};

static void open_agent(struct retention_case *test, const char *dir,
                       enum on_success on_success)
{
  struct ag_error err = {0};

  memset(&test->config, 0, sizeof(test->config));
  join_path(test->state_dir, sizeof(test->state_dir), dir, "state");
  join_path(test->output_dir, sizeof(test->output_dir), dir, "out");
  test->config.state_dir = test->state_dir;
  test->config.output_dir = test->output_dir;
  test->config.on_success = on_success;
  test->config.retention_days = 90;
  test->config.delivered_hash_retention_days = 365;
  enum ag_code code = agent_open(&test->config, 0, &test->agent, &err);
  if (code != AG_OK)
    print_error("agent_open: %s\n", err.message);
  assert_int_equal(code, AG_OK);
}

static void apply_ok(struct retention_case *test, int64_t now)
{
  struct ag_error err = {0};
  enum ag_code code = agent_apply_retention(test->agent, now, &err);

  if (code != AG_OK)
    print_error("agent_apply_retention: %s\n", err.message);
  assert_int_equal(code, AG_OK);
}

/* Open the manifest of the closed agent's state folder. */
static struct manifest *reopen_manifest(struct retention_case *test)
{
  agent_close(test->agent);
  test->agent = NULL;
  return manifest_open_ok(test->state_dir);
}

static void fill_for_retention(const char *state_dir)
{
  struct manifest *manifest = manifest_open_ok(state_dir);

  put_at(manifest, "archived-old", MANIFEST_ARCHIVED, 'a', NOW - 100 * DAY);
  put_at(manifest, "archived-new", MANIFEST_ARCHIVED, 0, NOW - 10 * DAY);
  put_at(manifest, "seen-old", MANIFEST_SEEN, 0, NOW - 100 * DAY);
  put_at(manifest, "failed-old", MANIFEST_FAILED, 0, NOW - 1000 * DAY);
  put_at(manifest, "delivered-old", MANIFEST_DELIVERED, 'b', NOW - 1000 * DAY);
  put_at(manifest, "archived-old", MANIFEST_DELIVERED, 'c', NOW - 100 * DAY);
  put_at(manifest, "archived-old", MANIFEST_ARCHIVED, 'c', NOW - 100 * DAY);
  manifest_close(manifest);
}

static void retention_removes_what_expired(void **state)
{
  struct retention_case test;

  open_agent(&test, *state, ON_SUCCESS_MOVE);
  agent_close(test.agent);
  fill_for_retention(test.state_dir);
  open_agent(&test, *state, ON_SUCCESS_MOVE);
  apply_ok(&test, NOW);

  struct manifest *manifest = reopen_manifest(&test);
  assert_false(has_record(manifest, "archived-old"));
  assert_false(has_record(manifest, "seen-old"));
  assert_true(has_record(manifest, "archived-new"));
  assert_true(has_record(manifest, "failed-old"));
  assert_true(has_record(manifest, "delivered-old"));
  assert_true(was_delivered(manifest, 'c', "archived-old"));
  assert_false(was_delivered(manifest, 'b', "delivered-old"));

  struct ag_error err = {0};
  char *stamp = NULL;
  assert_int_equal(manifest_get_meta(manifest, "pruned_at", &stamp, &err),
                   AG_OK);
  assert_non_null(stamp);
  assert_string_equal(stamp, "1700000000");
  free(stamp);
  manifest_close(manifest);
}

static void retention_keeps_kept_files(void **state)
{
  struct retention_case test;

  /* With on_success = keep, the record is what keeps the file in the
   * inbox from being taken again. */
  open_agent(&test, *state, ON_SUCCESS_KEEP);
  agent_close(test.agent);
  fill_for_retention(test.state_dir);
  open_agent(&test, *state, ON_SUCCESS_KEEP);
  apply_ok(&test, NOW);

  struct manifest *manifest = reopen_manifest(&test);
  assert_true(has_record(manifest, "archived-old"));
  assert_false(has_record(manifest, "seen-old"));
  manifest_close(manifest);
}

static void retention_runs_hourly(void **state)
{
  struct retention_case test;
  struct manifest *manifest = NULL;

  open_agent(&test, *state, ON_SUCCESS_MOVE);
  apply_ok(&test, NOW);
  agent_close(test.agent);

  manifest = manifest_open_ok(test.state_dir);
  put_at(manifest, "late", MANIFEST_ARCHIVED, 0, NOW - 100 * DAY);
  manifest_close(manifest);

  /* Within the hour nothing runs; after it, the record goes. */
  open_agent(&test, *state, ON_SUCCESS_MOVE);
  apply_ok(&test, NOW + 3599);
  manifest = reopen_manifest(&test);
  assert_true(has_record(manifest, "late"));
  manifest_close(manifest);

  open_agent(&test, *state, ON_SUCCESS_MOVE);
  apply_ok(&test, NOW + 3600);
  manifest = reopen_manifest(&test);
  assert_false(has_record(manifest, "late"));

  /* A clock set back before the last run runs it at once. */
  put_at(manifest, "late", MANIFEST_ARCHIVED, 0, NOW - 200 * DAY);
  manifest_close(manifest);
  open_agent(&test, *state, ON_SUCCESS_MOVE);
  apply_ok(&test, NOW - 10);
  manifest = reopen_manifest(&test);
  assert_false(has_record(manifest, "late"));
  manifest_close(manifest);
}

static void retention_zero_keeps_all(void **state)
{
  struct retention_case test;

  open_agent(&test, *state, ON_SUCCESS_MOVE);
  agent_close(test.agent);
  fill_for_retention(test.state_dir);
  open_agent(&test, *state, ON_SUCCESS_MOVE);
  test.config.retention_days = 0;
  test.config.delivered_hash_retention_days = 0;
  apply_ok(&test, NOW);

  struct manifest *manifest = reopen_manifest(&test);
  assert_true(has_record(manifest, "archived-old"));
  assert_true(was_delivered(manifest, 'b', "delivered-old"));
  struct ag_error err = {0};
  char *stamp = NULL;
  assert_int_equal(manifest_get_meta(manifest, "pruned_at", &stamp, &err),
                   AG_OK);
  assert_null(stamp);
  manifest_close(manifest);
}

#define FOLDER_TEST(name)                                                      \
  cmocka_unit_test_setup_teardown(name, manifest_dir_setup,                    \
                                  manifest_dir_teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
      FOLDER_TEST(prune_removes_old_in_states),
      FOLDER_TEST(prune_batches_cover_table),
      FOLDER_TEST(prune_stops_at_deadline),
      FOLDER_TEST(prune_keeps_undecodable),
      FOLDER_TEST(versions_expire_by_delivery_time),
      FOLDER_TEST(redelivery_renews_version),
      FOLDER_TEST(version_outlives_record),
      FOLDER_TEST(retention_removes_what_expired),
      FOLDER_TEST(retention_keeps_kept_files),
      FOLDER_TEST(retention_runs_hourly),
      FOLDER_TEST(retention_zero_keeps_all),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
