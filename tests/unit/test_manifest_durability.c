/* Unit tests for the manifest's durability features: damaged files that
 * count as lost, read-only opens, the schema migration, map growth seen by
 * a second process, the remote-step fields of a record and backups. Each
 * test works on real LMDB files in its own temporary folder. */
#include "agent/manifest.h"

#include <lmdb.h>

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define PATH_SIZE 4096

/* ---- Fixtures and helpers ---- */

static struct manifest *open_read_only_ok(const char *dir)
{
  struct ag_error err = {0};
  struct manifest *manifest = NULL;
  enum ag_code code = manifest_open_read_only(dir, &manifest, &err);

  if (code != AG_OK)
    print_error("manifest_open_read_only: %s\n", err.message);
  assert_int_equal(code, AG_OK);
  return manifest;
}

static void put_ok(struct manifest *manifest, const char *key,
                   const struct manifest_record *record)
{
  struct ag_error err = {0};
  enum ag_code code = manifest_put(manifest, key, strlen(key), record, &err);

  if (code != AG_OK)
    print_error("manifest_put: %s\n", err.message);
  assert_int_equal(code, AG_OK);
}

/* Store a delivered record of key with content hash sha256. */
static void put_delivered(struct manifest *manifest, const char *key,
                          const char *sha256)
{
  struct manifest_record record = {.state = MANIFEST_DELIVERED};

  snprintf(record.sha256, sizeof(record.sha256), "%s", sha256);
  put_ok(manifest, key, &record);
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

static size_t record_count(struct manifest *manifest)
{
  struct ag_error err = {0};
  size_t counts[MANIFEST_STATE_COUNT];
  size_t total = 0;

  assert_int_equal(manifest_counts(manifest, counts, &err), AG_OK);
  for (size_t i = 0; i < MANIFEST_STATE_COUNT; i++)
    total += counts[i];
  return total;
}

/* Return the meta value of key; the caller frees it. */
static char *meta_of(struct manifest *manifest, const char *key)
{
  struct ag_error err = {0};
  char *value = NULL;

  assert_int_equal(manifest_get_meta(manifest, key, &value, &err), AG_OK);
  return value;
}

/* Fill the manifest in dir with count failed records of about 2 KiB, so
 * that the file has many pages. */
static void fill_manifest(const char *dir, size_t count)
{
  struct manifest *manifest = manifest_open_ok(dir);
  struct manifest_record record = {.state = MANIFEST_FAILED};
  char reason[2048];
  char key[32];

  memset(reason, 'r', sizeof(reason) - 1);
  reason[sizeof(reason) - 1] = '\0';
  record.reason = reason;
  for (size_t i = 0; i < count; i++) {
    snprintf(key, sizeof(key), "file-%04zu.xml", i);
    put_ok(manifest, key, &record);
  }
  manifest_close(manifest);
}

static off_t size_of(const char *path)
{
  struct stat info;

  assert_int_equal(stat(path, &info), 0);
  return info.st_size;
}

/* Open dir both ways and expect AG_ESTATELOST with both ways out named. */
static void expect_lost(const char *dir)
{
  struct ag_error err = {0};
  struct manifest *manifest = NULL;

  assert_int_equal(manifest_open(dir, &manifest, &err), AG_ESTATELOST);
  assert_null(manifest);
  assert_contains(err.message, "Restore the manifest from a backup");
  assert_contains(err.message, "sync --rebuild-manifest");
  ag_error_clear(&err);
  assert_int_equal(manifest_open_read_only(dir, &manifest, &err),
                   AG_ESTATELOST);
  assert_null(manifest);
  assert_contains(err.message, "--rebuild-manifest");
}

/* ---- Damaged files ---- */

static void lost_when_truncated(void **state)
{
  const char *dir = *state;
  char db[PATH_SIZE];

  join_path(db, sizeof(db), dir, "manifest.mdb");
  fill_manifest(dir, 200);
  off_t full = size_of(db);
  assert_true(full > 64 * 1024);

  /* Cut in the middle: LMDB would open it and fault on a page past the
   * end of the file. */
  assert_int_equal(truncate(db, full / 2), 0);
  expect_lost(dir);

  /* Only the two meta pages are left. */
  assert_int_equal(truncate(db, 8192), 0);
  expect_lost(dir);

  /* Shorter than the meta pages. */
  assert_int_equal(truncate(db, 100), 0);
  expect_lost(dir);
}

static void lost_when_pages_overwritten(void **state)
{
  const char *dir = *state;
  char db[PATH_SIZE];

  join_path(db, sizeof(db), dir, "manifest.mdb");
  fill_manifest(dir, 50);
  off_t full = size_of(db);

  /* Keep the meta pages and overwrite every data page with zeros, as a
   * disk that lost its data would show them. */
  size_t len = 0;
  char *bytes = read_file(db, &len);
  assert_int_equal((off_t)len, full);
  memset(bytes + 8192, 0, len - 8192);
  write_file(db, bytes, len);
  free(bytes);
  expect_lost(dir);
}

static void invalid_schema_version_lost(void **state)
{
  const char *dir = *state;
  char db[PATH_SIZE];
  MDB_env *env = NULL;
  MDB_txn *txn = NULL;
  MDB_dbi meta;

  manifest_close(manifest_open_ok(dir));
  join_path(db, sizeof(db), dir, "manifest.mdb");
  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 3), 0);
  assert_int_equal(mdb_env_open(env, db, MDB_NOSUBDIR, 0600), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
  MDB_val key = {14, "schema_version"};
  MDB_val value = {3, "two"};
  assert_int_equal(mdb_put(txn, meta, &key, &value, 0), 0);
  assert_int_equal(mdb_txn_commit(txn), 0);
  mdb_env_close(env);

  expect_lost(dir);
}

/* ---- Read-only opens ---- */

static void read_only_creates_nothing(void **state)
{
  const char *dir = *state;
  struct ag_error err = {0};
  struct manifest *manifest = NULL;

  assert_int_equal(manifest_open_read_only(dir, &manifest, &err), AG_ESTATE);
  assert_null(manifest);
  assert_contains(err.message, "has not run");
  assert_int_equal(count_dir_entries(dir), 0);
}

static void read_only_keeps_marker_missing(void **state)
{
  const char *dir = *state;
  char marker[PATH_SIZE];
  struct manifest_record record = {.state = MANIFEST_ARCHIVED};

  join_path(marker, sizeof(marker), dir, "agent-id");
  struct manifest *manifest = manifest_open_ok(dir);
  put_ok(manifest, "a.xml", &record);
  manifest_close(manifest);
  assert_int_equal(unlink(marker), 0);

  manifest = open_read_only_ok(dir);
  assert_string_equal(manifest_agent_id(manifest), "");
  assert_int_equal(record_count(manifest), 1);
  manifest_close(manifest);
  assert_int_equal(access(marker, F_OK), -1);
}

static void read_only_rejects_writes(void **state)
{
  const char *dir = *state;
  struct manifest_record record = {.state = MANIFEST_SEEN};
  struct manifest_prune_limits limits = {16, 0};
  struct ag_error err = {0};
  size_t removed = 0;
  bool complete = false;

  manifest_close(manifest_open_ok(dir));
  struct manifest *manifest = open_read_only_ok(dir);
  assert_int_equal(manifest_put(manifest, "a", 1, &record, &err), AG_ESTATE);
  ag_error_clear(&err);
  assert_int_equal(manifest_set_meta(manifest, "k", "v", &err), AG_ESTATE);
  ag_error_clear(&err);
  assert_int_equal(manifest_prune_versions(manifest, INT64_MAX, &limits,
                                           &removed, &complete, &err),
                   AG_ESTATE);
  assert_int_equal(removed, 0);
  manifest_close(manifest);

  manifest = manifest_open_ok(dir);
  assert_int_equal(record_count(manifest), 0);
  manifest_close(manifest);
}

/* ---- Schema migration ---- */

/* Turn the closed manifest in dir into schema version 1: the version text
 * is "1" and each delivered version's value is a file key. */
static void downgrade_to_schema_1(const char *dir)
{
  char db[PATH_SIZE];
  MDB_env *env = NULL;
  MDB_txn *txn = NULL;
  MDB_cursor *cursor = NULL;
  MDB_dbi meta;
  MDB_dbi delivered;
  MDB_val key;
  MDB_val value;

  join_path(db, sizeof(db), dir, "manifest.mdb");
  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 3), 0);
  assert_int_equal(mdb_env_open(env, db, MDB_NOSUBDIR, 0600), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
  assert_int_equal(mdb_dbi_open(txn, "delivered", 0, &delivered), 0);

  MDB_val version_key = {14, "schema_version"};
  MDB_val version = {1, "1"};
  assert_int_equal(mdb_put(txn, meta, &version_key, &version, 0), 0);

  assert_int_equal(mdb_cursor_open(txn, delivered, &cursor), 0);
  int rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
  while (rc == 0) {
    unsigned char key_copy[32];
    MDB_val old_value = {9, "in/a.xml"};

    /* The put moves the page's bytes, which key points into. */
    assert_int_equal(key.mv_size, sizeof(key_copy));
    memcpy(key_copy, key.mv_data, sizeof(key_copy));
    key.mv_data = key_copy;
    assert_int_equal(mdb_cursor_put(cursor, &key, &old_value, MDB_CURRENT), 0);
    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT);
  }
  assert_int_equal(rc, MDB_NOTFOUND);
  mdb_cursor_close(cursor);
  assert_int_equal(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

static void schema_1_migrated_on_open(void **state)
{
  const char *dir = *state;
  struct manifest_prune_limits limits = {16, 0};
  struct ag_error err = {0};
  size_t removed = 0;
  bool complete = false;

  struct manifest *manifest = manifest_open_ok(dir);
  put_delivered(manifest, "in/a.xml", SHA_A);
  put_delivered(manifest, "in/b.xml", SHA_B);
  manifest_close(manifest);
  downgrade_to_schema_1(dir);

  /* A reader neither migrates nor rejects the older version. */
  manifest = open_read_only_ok(dir);
  char *version = meta_of(manifest, "schema_version");
  assert_string_equal(version, "1");
  free(version);
  assert_true(was_delivered(manifest, SHA_A, "in/a.xml"));
  manifest_close(manifest);

  int64_t before_open = (int64_t)time(NULL);
  manifest = manifest_open_ok(dir);
  version = meta_of(manifest, "schema_version");
  assert_string_equal(version, "2");
  free(version);
  assert_true(was_delivered(manifest, SHA_A, "in/a.xml"));
  assert_true(was_delivered(manifest, SHA_B, "in/b.xml"));

  /* Each migrated version counts as delivered at the migration. */
  assert_int_equal(manifest_prune_versions(manifest, before_open - 1, &limits,
                                           &removed, &complete, &err),
                   AG_OK);
  assert_int_equal(removed, 0);
  assert_true(complete);
  assert_int_equal(manifest_prune_versions(manifest, before_open + 60, &limits,
                                           &removed, &complete, &err),
                   AG_OK);
  assert_int_equal(removed, 2);
  assert_false(was_delivered(manifest, SHA_A, "in/a.xml"));
  manifest_close(manifest);
}

/* ---- Map growth seen by another process ---- */

/* Records of 1 MiB each: 24 of them need more than the initial 16 MiB. */
#define BIG_RECORDS 24
#define BIG_REASON ((size_t)1 << 20)

static void write_big_records(const char *dir)
{
  struct manifest *manifest = manifest_open_ok(dir);
  struct manifest_record record = {.state = MANIFEST_FAILED};
  char *reason = malloc(BIG_REASON + 1);
  char key[32];

  assert_non_null(reason);
  memset(reason, 'x', BIG_REASON);
  reason[BIG_REASON] = '\0';
  record.reason = reason;
  for (int i = 0; i < BIG_RECORDS; i++) {
    snprintf(key, sizeof(key), "big-%02d.xml", i);
    put_ok(manifest, key, &record);
  }
  free(reason);
  manifest_close(manifest);
}

static void map_growth_seen_by_reader(void **state)
{
  const char *dir = *state;
  char db[PATH_SIZE];

  join_path(db, sizeof(db), dir, "manifest.mdb");
  manifest_close(manifest_open_ok(dir));
  struct manifest *reader = open_read_only_ok(dir);
  assert_int_equal(record_count(reader), 0);

  /* Another process grows the map past the size this one mapped. LMDB
   * allows one open environment per file and process, so the writer is a
   * child process. */
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    write_big_records(dir);
    _exit(0);
  }
  int status = 0;
  assert_int_equal(waitpid(child, &status, 0), child);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_true(size_of(db) > 16 * 1024 * 1024);

  /* The reader adopts the larger map and reads the new records. */
  assert_int_equal(record_count(reader), BIG_RECORDS);
  struct manifest_record out = {0};
  struct ag_error err = {0};
  bool found = false;
  assert_int_equal(manifest_get(reader, "big-23.xml", 10, &out, &found, &err),
                   AG_OK);
  assert_true(found);
  assert_int_equal(strlen(out.reason), BIG_REASON);
  manifest_record_clear(&out);
  manifest_close(reader);
}

/* ---- Remote-step fields ---- */

static void record_archive_fields(void **state)
{
  const char *dir = *state;
  struct manifest *manifest = manifest_open_ok(dir);
  struct manifest_record in = {.state = MANIFEST_DELIVERED};
  struct manifest_record out = {0};
  struct ag_error err = {0};
  bool found = false;

  memcpy(in.sha256, SHA_A, 65);
  in.archive_attempts = 7;
  in.archive_error = "permission denied on 'archive/caf\xe9.xml'";
  put_ok(manifest, "x.xml", &in);
  manifest_close(manifest);

  manifest = manifest_open_ok(dir);
  assert_int_equal(manifest_get(manifest, "x.xml", 5, &out, &found, &err),
                   AG_OK);
  assert_true(found);
  assert_int_equal(out.archive_attempts, 7);
  assert_string_equal(out.archive_error, in.archive_error);
  manifest_record_clear(&out);

  /* A record without them reads 0 and NULL. */
  in.archive_attempts = 0;
  in.archive_error = NULL;
  put_ok(manifest, "x.xml", &in);
  assert_int_equal(manifest_get(manifest, "x.xml", 5, &out, &found, &err),
                   AG_OK);
  assert_int_equal(out.archive_attempts, 0);
  assert_null(out.archive_error);
  manifest_record_clear(&out);
  manifest_close(manifest);
}

/* ---- Backups ---- */

static enum ag_code backup(const char *dir, const char *dest, unsigned flags,
                           uint64_t *bytes, struct ag_error *err)
{
  struct manifest *manifest = open_read_only_ok(dir);
  enum ag_code code = manifest_backup(manifest, dest, flags, bytes, err);

  manifest_close(manifest);
  return code;
}

/* Put the file at backup into a new state folder below dir as its
 * manifest, and return that folder's path in out. */
static void restore_into(const char *dir, const char *backup_path,
                         const char *name, char *out, size_t size)
{
  char db[PATH_SIZE];
  size_t len = 0;

  join_path(out, size, dir, name);
  assert_int_equal(mkdir(out, 0700), 0);
  join_path(db, sizeof(db), out, "manifest.mdb");
  char *bytes = read_file(backup_path, &len);
  write_file(db, bytes, len);
  free(bytes);
}

static void backup_copies_and_restores(void **state)
{
  const char *dir = *state;
  char state_dir[PATH_SIZE];
  char dest[PATH_SIZE];
  char restored[PATH_SIZE];
  struct ag_error err = {0};
  uint64_t bytes = 0;

  join_path(state_dir, sizeof(state_dir), dir, "state");
  assert_int_equal(mkdir(state_dir, 0700), 0);
  join_path(dest, sizeof(dest), dir, "manifest.backup");
  fill_manifest(state_dir, 100);
  struct manifest *manifest = manifest_open_ok(state_dir);
  put_delivered(manifest, "in/a.xml", SHA_A);
  manifest_close(manifest);

  assert_int_equal(backup(state_dir, dest, 0, &bytes, &err), AG_OK);
  assert_int_equal((off_t)bytes, size_of(dest));
  struct stat info;
  assert_int_equal(stat(dest, &info), 0);
  assert_int_equal(info.st_mode & 0777, 0600);

  /* Only the backup is new in the folder: no temporary file is left. */
  assert_int_equal(count_dir_entries(dir), 2);

  restore_into(dir, dest, "restored", restored, sizeof(restored));
  manifest = manifest_open_ok(restored);
  assert_int_equal(record_count(manifest), 101);
  assert_true(was_delivered(manifest, SHA_A, "in/a.xml"));
  manifest_close(manifest);
}

static void backup_never_overwrites(void **state)
{
  const char *dir = *state;
  char state_dir[PATH_SIZE];
  char dest[PATH_SIZE];
  struct ag_error err = {0};
  uint64_t bytes = 0;

  join_path(state_dir, sizeof(state_dir), dir, "state");
  assert_int_equal(mkdir(state_dir, 0700), 0);
  join_path(dest, sizeof(dest), dir, "taken.mdb");
  manifest_close(manifest_open_ok(state_dir));
  write_file(dest, "keep me", 7);

  assert_int_equal(backup(state_dir, dest, 0, &bytes, &err), AG_EUSAGE);
  assert_contains(err.message, dest);
  assert_contains(err.message, "--force");
  assert_file_content(dest, "keep me");
  assert_int_equal(count_dir_entries(dir), 2);

  ag_error_clear(&err);
  assert_int_equal(
      backup(state_dir, dest, MANIFEST_BACKUP_REPLACE, &bytes, &err), AG_OK);
  assert_int_equal((off_t)bytes, size_of(dest));
  assert_true(bytes > 7);
}

static void backup_into_missing_folder(void **state)
{
  const char *dir = *state;
  char state_dir[PATH_SIZE];
  char dest[PATH_SIZE];
  struct ag_error err = {0};
  uint64_t bytes = 0;

  join_path(state_dir, sizeof(state_dir), dir, "state");
  assert_int_equal(mkdir(state_dir, 0700), 0);
  manifest_close(manifest_open_ok(state_dir));
  join_path(dest, sizeof(dest), dir, "absent/copy.mdb");

  assert_int_equal(backup(state_dir, dest, 0, &bytes, &err), AG_ELOCAL);
  assert_contains(err.message, "absent");
  assert_int_equal(bytes, 0);
}

/* Records written in key order by a child while the parent takes backups:
 * every backup must contain a prefix of them, which shows that it is one
 * snapshot. */
#define RACE_RECORDS 150

static void write_in_order(const char *dir)
{
  struct manifest *manifest = manifest_open_ok(dir);
  struct manifest_record record = {.state = MANIFEST_ARCHIVED};
  char key[32];

  for (int i = 0; i < RACE_RECORDS; i++) {
    snprintf(key, sizeof(key), "r%04d", i);
    put_ok(manifest, key, &record);
  }
  manifest_close(manifest);
}

struct prefix_check {
  int next;   /* the index that the next key must have */
  bool holes; /* a key was out of order */
};

static enum ag_code check_prefix(void *ctx, const void *key, size_t key_len,
                                 const struct manifest_record *record)
{
  struct prefix_check *check = ctx;
  char expected[32];

  (void)record;
  snprintf(expected, sizeof(expected), "r%04d", check->next);
  if (key_len != strlen(expected) || memcmp(key, expected, key_len) != 0)
    check->holes = true;
  check->next++;
  return AG_OK;
}

static void backup_during_writes(void **state)
{
  const char *dir = *state;
  char state_dir[PATH_SIZE];
  char dest[PATH_SIZE];
  char restored[PATH_SIZE];
  char name[32];
  int taken = 0;

  join_path(state_dir, sizeof(state_dir), dir, "state");
  assert_int_equal(mkdir(state_dir, 0700), 0);
  manifest_close(manifest_open_ok(state_dir));

  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    write_in_order(state_dir);
    _exit(0);
  }

  int status = 0;
  pid_t done = 0;
  while (done == 0 && taken < 50) {
    struct ag_error err = {0};
    uint64_t bytes = 0;

    snprintf(name, sizeof(name), "copy-%02d.mdb", taken);
    join_path(dest, sizeof(dest), dir, name);
    assert_int_equal(backup(state_dir, dest, 0, &bytes, &err), AG_OK);
    taken++;
    done = waitpid(child, &status, WNOHANG);
  }
  if (done == 0)
    assert_int_equal(waitpid(child, &status, 0), child);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);

  for (int i = 0; i < taken; i++) {
    struct prefix_check check = {0};
    struct ag_error err = {0};

    snprintf(name, sizeof(name), "copy-%02d.mdb", i);
    join_path(dest, sizeof(dest), dir, name);
    snprintf(name, sizeof(name), "restored-%02d", i);
    restore_into(dir, dest, name, restored, sizeof(restored));
    struct manifest *manifest = open_read_only_ok(restored);
    assert_int_equal(manifest_foreach(manifest, check_prefix, &check, &err),
                     AG_OK);
    assert_false(check.holes);
    assert_true(check.next <= RACE_RECORDS);
    manifest_close(manifest);
  }
}

#define FOLDER_TEST(name)                                                      \
  cmocka_unit_test_setup_teardown(name, manifest_dir_setup,                    \
                                  manifest_dir_teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
      FOLDER_TEST(lost_when_truncated),
      FOLDER_TEST(lost_when_pages_overwritten),
      FOLDER_TEST(invalid_schema_version_lost),
      FOLDER_TEST(read_only_creates_nothing),
      FOLDER_TEST(read_only_keeps_marker_missing),
      FOLDER_TEST(read_only_rejects_writes),
      FOLDER_TEST(schema_1_migrated_on_open),
      FOLDER_TEST(map_growth_seen_by_reader),
      FOLDER_TEST(record_archive_fields),
      FOLDER_TEST(backup_copies_and_restores),
      FOLDER_TEST(backup_never_overwrites),
      FOLDER_TEST(backup_into_missing_folder),
      FOLDER_TEST(backup_during_writes),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
