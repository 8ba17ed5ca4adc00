/* Unit tests for manifest.c against real LMDB files in a fresh temporary
 * folder per test. */
#include "agent/manifest.h"

#include <jansson.h>
#include <lmdb.h>

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

/* ---- Fixtures and helpers ---- */

#define DIR_SIZE 4096

static int setup_folder(void **state)
{
  char *dir = malloc(DIR_SIZE);

  if (dir == NULL)
    return -1;
  if (make_temp_dir("test_manifest", dir, DIR_SIZE) != 0) {
    free(dir);
    return -1;
  }
  *state = dir;
  return 0;
}

/* Remove dir and everything in it. A failed removal fails the test. */
static int teardown_folder(void **state)
{
  char *dir = *state;
  int rc = remove_tree(dir);

  free(dir);
  return rc;
}

static char *path_in(const char *dir, const char *name)
{
  size_t size = strlen(dir) + strlen(name) + 2;
  char *path = malloc(size);

  assert_non_null(path);
  snprintf(path, size, "%s/%s", dir, name);
  return path;
}

static struct manifest *open_ok(const char *dir)
{
  struct ag_error err = {0};
  struct manifest *manifest = NULL;

  enum ag_code code = manifest_open(dir, &manifest, &err);
  if (code != AG_OK)
    print_error("manifest_open: %s\n", err.message);
  assert_int_equal(code, AG_OK);
  assert_non_null(manifest);
  return manifest;
}

static void put_ok(struct manifest *manifest, const void *key, size_t key_len,
                   const struct manifest_record *record)
{
  struct ag_error err = {0};

  enum ag_code code = manifest_put(manifest, key, key_len, record, &err);
  if (code != AG_OK)
    print_error("manifest_put: %s\n", err.message);
  assert_int_equal(code, AG_OK);
}

/* Look up key, which must exist, into record. */
static void get_ok(struct manifest *manifest, const void *key, size_t key_len,
                   struct manifest_record *record)
{
  struct ag_error err = {0};
  bool found = false;

  enum ag_code code =
      manifest_get(manifest, key, key_len, record, &found, &err);
  if (code != AG_OK)
    print_error("manifest_get: %s\n", err.message);
  assert_int_equal(code, AG_OK);
  assert_true(found);
}

static bool file_exists(const char *dir, const char *name)
{
  char *path = path_in(dir, name);
  struct stat info;
  bool exists = stat(path, &info) == 0;

  free(path);
  return exists;
}

/* Change the closed manifest in dir with LMDB directly: store value under
 * key in table, or delete key when value is NULL, or drop the whole table
 * when key is NULL. */
static void raw_edit(const char *dir, const char *table, const void *key,
                     size_t key_len, const char *value)
{
  char *path = path_in(dir, "manifest.mdb");
  MDB_env *env = NULL;
  MDB_txn *txn = NULL;
  MDB_dbi dbi;

  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 3), 0);
  assert_int_equal(mdb_env_open(env, path, MDB_NOSUBDIR, 0600), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, table, 0, &dbi), 0);

  MDB_val lookup = {key_len, (void *)key};
  if (key == NULL) {
    assert_int_equal(mdb_drop(txn, dbi, 1), 0);
  } else if (value == NULL) {
    assert_int_equal(mdb_del(txn, dbi, &lookup, NULL), 0);
  } else {
    MDB_val stored = {strlen(value), (void *)value};
    assert_int_equal(mdb_put(txn, dbi, &lookup, &stored, 0), 0);
  }
  assert_int_equal(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
  free(path);
}

/* Return a malloc'd copy of the value stored under key in table, as text. */
static char *raw_read(const char *dir, const char *table, const void *key,
                      size_t key_len)
{
  char *path = path_in(dir, "manifest.mdb");
  MDB_env *env = NULL;
  MDB_txn *txn = NULL;
  MDB_dbi dbi;
  MDB_val lookup = {key_len, (void *)key};
  MDB_val stored;

  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 3), 0);
  assert_int_equal(mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY, 0600), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, table, 0, &dbi), 0);
  assert_int_equal(mdb_get(txn, dbi, &lookup, &stored), 0);
  char *text = calloc(1, stored.mv_size + 1);
  assert_non_null(text);
  memcpy(text, stored.mv_data, stored.mv_size);
  mdb_txn_abort(txn);
  mdb_env_close(env);
  free(path);
  return text;
}

/* Open dir, expect AG_ESTATELOST and check that the message names the
 * state folder and both ways out. */
static void expect_lost(const char *dir)
{
  struct ag_error err = {0};
  struct manifest *manifest = NULL;

  enum ag_code code = manifest_open(dir, &manifest, &err);
  assert_int_equal(code, AG_ESTATELOST);
  assert_null(manifest);
  assert_int_equal(err.code, AG_ESTATELOST);
  assert_contains(err.message, dir);
  assert_contains(err.message, "Restore the manifest from a backup");
  assert_contains(err.message, "rossum-sftp-agent sync --rebuild-manifest");
  assert_contains(err.message, "delivers files still in the inbox");
}

/* Close and reopen, so that the next reads come from the file. */
static struct manifest *reopen(struct manifest *manifest, const char *dir)
{
  manifest_close(manifest);
  return open_ok(dir);
}

/* ---- Records ---- */

static void record_round_trip(void **state)
{
  const char *dir = *state;
  struct manifest *manifest = open_ok(dir);
  struct manifest_record in = {0};
  struct manifest_record out = {0};

  in.state = MANIFEST_DELIVERED;
  in.size = 1234567890123ULL;
  in.mtime = 1700000000;
  memcpy(in.sha256, SHA_A, 65);
  memcpy(in.format, "xml", 4);
  in.output = "sub%2Fx.xml.3f2a9c01d4e5b677.json";
  in.archive_path = "archive/sub/x.xml";
  in.reason = "\xc5\xbdlu\xc5\xa5ou\xc4\x8dk\xc3\xbd \"quoted\"\n";
  in.first_seen = 1700000100;
  in.updated = 1700000200;
  in.attempts = 3;
  put_ok(manifest, "sub/x.xml", 9, &in);
  manifest = reopen(manifest, dir);

  get_ok(manifest, "sub/x.xml", 9, &out);
  assert_int_equal(out.state, MANIFEST_DELIVERED);
  assert_int_equal(out.size, 1234567890123ULL);
  assert_int_equal(out.mtime, 1700000000);
  assert_string_equal(out.sha256, SHA_A);
  assert_string_equal(out.format, "xml");
  assert_string_equal(out.output, in.output);
  assert_string_equal(out.archive_path, in.archive_path);
  assert_string_equal(out.reason, in.reason);
  assert_int_equal(out.first_seen, 1700000100);
  assert_int_equal(out.updated, 1700000200);
  assert_int_equal(out.attempts, 3);
  manifest_record_clear(&out);
  manifest_close(manifest);
}

static void record_hook_fields(void **state)
{
  const char *dir = *state;
  struct manifest *manifest = open_ok(dir);
  struct manifest_record in = {0};
  struct manifest_record out = {0};

  in.state = MANIFEST_DELIVERED;
  memcpy(in.sha256, SHA_A, 65);
  in.output = "x.xml.0123456789abcdef.json";
  in.hook_attempts = 4;
  in.hook_retry_at = 1700000300;
  in.hook_error = "exit status 3 after 0.1 s. Its output: no\x0A";
  put_ok(manifest, "x.xml", 5, &in);
  manifest = reopen(manifest, dir);
  get_ok(manifest, "x.xml", 5, &out);
  assert_false(out.hook_done);
  assert_int_equal(out.hook_attempts, 4);
  assert_int_equal(out.hook_retry_at, 1700000300);
  assert_string_equal(out.hook_error, in.hook_error);
  manifest_record_clear(&out);

  /* A success keeps the count of failed runs and drops the error. */
  in.hook_done = true;
  in.hook_retry_at = 0;
  in.hook_error = NULL;
  put_ok(manifest, "x.xml", 5, &in);
  get_ok(manifest, "x.xml", 5, &out);
  assert_true(out.hook_done);
  assert_int_equal(out.hook_attempts, 4);
  assert_int_equal(out.hook_retry_at, 0);
  assert_null(out.hook_error);
  manifest_record_clear(&out);
  manifest_close(manifest);
}

/* The publication intent's temporary names survive a reopen, and a record
 * without them reads them as NULL. */
static void record_intent_fields(void **state)
{
  const char *dir = *state;
  struct manifest *manifest = open_ok(dir);
  struct manifest_record in = {0};
  struct manifest_record out = {0};

  in.state = MANIFEST_DOWNLOADED;
  memcpy(in.sha256, SHA_A, 65);
  in.output = "x.bin.0123456789abcdef.bin";
  in.output_temp = ".incoming.AbC123.tmp";
  in.sidecar_temp = ".incoming.XyZ789.tmp";
  put_ok(manifest, "x.bin", 5, &in);
  manifest = reopen(manifest, dir);
  get_ok(manifest, "x.bin", 5, &out);
  assert_int_equal(out.state, MANIFEST_DOWNLOADED);
  assert_string_equal(out.output_temp, in.output_temp);
  assert_string_equal(out.sidecar_temp, in.sidecar_temp);
  manifest_record_clear(&out);

  in.state = MANIFEST_DELIVERED;
  in.output_temp = NULL;
  in.sidecar_temp = NULL;
  put_ok(manifest, "x.bin", 5, &in);
  get_ok(manifest, "x.bin", 5, &out);
  assert_null(out.output_temp);
  assert_null(out.sidecar_temp);
  manifest_record_clear(&out);
  manifest_close(manifest);
}

/* A record written before the hook existed reads with the hook's
 * defaults: not done, no failed runs, no retry time and no error. */
static void record_without_hook_fields(void **state)
{
  const char *dir = *state;
  struct manifest *manifest = NULL;
  struct manifest_record out = {0};

  manifest_close(open_ok(dir));
  raw_edit(dir, "files", "old.xml", 7,
           "{\"v\":1,\"state\":\"delivered\",\"size\":9,\"mtime\":5,"
           "\"sha256\":\"" SHA_B "\",\"format\":\"xml\","
           "\"output\":\"old.xml.fedcba9876543210.json\",\"first_seen\":6,"
           "\"updated\":7,\"attempts\":1}");
  manifest = open_ok(dir);
  get_ok(manifest, "old.xml", 7, &out);
  assert_int_equal(out.state, MANIFEST_DELIVERED);
  assert_string_equal(out.output, "old.xml.fedcba9876543210.json");
  assert_false(out.hook_done);
  assert_int_equal(out.hook_attempts, 0);
  assert_int_equal(out.hook_retry_at, 0);
  assert_null(out.hook_error);
  manifest_record_clear(&out);
  manifest_close(manifest);
}

/* The claim path round-trips, also when it is not UTF-8, and a record
 * without one reads as NULL. */
static void record_claim_path(void **state)
{
  const char *dir = *state;
  struct manifest *manifest = open_ok(dir);
  struct manifest_record in = {0};
  struct manifest_record out = {0};

  in.state = MANIFEST_SEEN;
  in.claim_path = "/claims/0123456789abcdef0123456789abcdef/sub/x.xml";
  put_ok(manifest, "sub/x.xml", 9, &in);
  in.claim_path = "/claims/0123456789abcdef0123456789abcdef/caf\xe9.xml";
  put_ok(manifest, "caf\xe9.xml", 8, &in);
  in.claim_path = NULL;
  put_ok(manifest, "plain.xml", 9, &in);
  manifest = reopen(manifest, dir);

  get_ok(manifest, "sub/x.xml", 9, &out);
  assert_string_equal(out.claim_path,
                      "/claims/0123456789abcdef0123456789abcdef/sub/x.xml");
  manifest_record_clear(&out);
  get_ok(manifest, "caf\xe9.xml", 8, &out);
  assert_string_equal(out.claim_path,
                      "/claims/0123456789abcdef0123456789abcdef/caf\xe9.xml");
  manifest_record_clear(&out);
  get_ok(manifest, "plain.xml", 9, &out);
  assert_null(out.claim_path);
  manifest_record_clear(&out);
  manifest_close(manifest);
}

static void record_extreme_values(void **state)
{
  const char *dir = *state;
  struct manifest *manifest = open_ok(dir);
  struct manifest_record in = {0};
  struct manifest_record out = {0};

  /* Integers at their limits, no optional strings, and an archive path in
   * a legacy encoding that JSON cannot hold as a string. */
  in.state = MANIFEST_FAILED;
  in.size = (uint64_t)INT64_MAX;
  in.mtime = INT64_MIN;
  in.archive_path = "error/caf\xe9.xml";
  in.first_seen = -1;
  in.updated = INT64_MAX;
  in.attempts = UINT32_MAX;
  put_ok(manifest, "k", 1, &in);

  get_ok(manifest, "k", 1, &out);
  assert_int_equal(out.state, MANIFEST_FAILED);
  assert_true(out.size == (uint64_t)INT64_MAX);
  assert_true(out.mtime == INT64_MIN);
  assert_string_equal(out.sha256, "");
  assert_string_equal(out.format, "");
  assert_null(out.output);
  assert_null(out.reason);
  assert_string_equal(out.archive_path, "error/caf\xe9.xml");
  assert_true(out.first_seen == -1);
  assert_true(out.updated == INT64_MAX);
  assert_true(out.attempts == UINT32_MAX);
  manifest_record_clear(&out);
  manifest_close(manifest);
}

/* Records are written by hand, and their text is byte for byte what
 * jansson writes for the same object, escapes included. */
static void record_text_is_what_jansson_writes(void **state)
{
  const char *dir = *state;
  struct manifest *manifest = open_ok(dir);
  struct manifest_record in = {0};

  in.state = MANIFEST_DELIVERED;
  in.size = 7700;
  in.mtime = 1700000000;
  memcpy(in.sha256, SHA_A, 65);
  memcpy(in.format, "xml", 4);
  in.output = "a \"quoted\" \\ name/with\tcontrols\x01\x1f\x7f.json";
  in.archive_path = "archive/caf\xc3\xa9 \xe2\x9c\x93.xml";
  in.reason = "line one\nline two\r\b\f";
  in.first_seen = -5;
  in.updated = 1700000001;
  in.attempts = 2;
  in.hook_done = true;
  in.hook_attempts = 1;
  in.hook_retry_at = 9;
  in.hook_error = "exit status 1";
  in.archive_attempts = 3;
  in.archive_error = "caf\xe9";
  in.claim_path = "/claims/a.xml";
  in.output_temp = ".a.json.tmp";
  in.sidecar_temp = ".a.pdf.tmp";
  put_ok(manifest, "k", 1, &in);
  manifest_close(manifest);

  char *text = raw_read(dir, "files", "k", 1);
  json_error_t error;
  json_t *object = json_loads(text, 0, &error);
  assert_non_null(object);
  char *dumped = json_dumps(object, JSON_COMPACT);
  assert_non_null(dumped);
  assert_string_equal(text, dumped);
  assert_non_null(strstr(text,
                         "\"output\":\"a \\\"quoted\\\" \\\\ "
                         "name/with\\tcontrols\\u0001\\u001F\x7f.json\""));
  assert_non_null(strstr(text, "\"archive_error_b64\":"));
  const char start[] = "{\"v\":1,\"state\":\"delivered\",\"size\":7700,";
  assert_int_equal(strncmp(text, start, sizeof(start) - 1), 0);
  free(dumped);
  json_decref(object);
  free(text);
}

static void record_every_state(void **state)
{
  const char *dir = *state;
  struct manifest *manifest = open_ok(dir);
  struct manifest_record in = {0};
  struct manifest_record out = {0};

  for (int s = MANIFEST_SEEN; s <= MANIFEST_FAILED; s++) {
    in.state = (enum manifest_state)s;
    put_ok(manifest, "k", 1, &in);
    get_ok(manifest, "k", 1, &out);
    assert_int_equal(out.state, s);
    manifest_record_clear(&out);
  }
  assert_string_equal(manifest_state_name(MANIFEST_SEEN), "seen");
  assert_string_equal(manifest_state_name(MANIFEST_DOWNLOADED), "downloaded");
  assert_string_equal(manifest_state_name(MANIFEST_DELIVERED), "delivered");
  assert_string_equal(manifest_state_name(MANIFEST_ARCHIVED), "archived");
  assert_string_equal(manifest_state_name(MANIFEST_FAILED), "failed");
  assert_string_equal(manifest_state_name((enum manifest_state)0), "unknown");
  manifest_close(manifest);
}

static void record_replace(void **state)
{
  const char *dir = *state;
  struct manifest *manifest = open_ok(dir);
  struct manifest_record first = {0};
  struct manifest_record second = {0};
  struct manifest_record out = {0};

  first.state = MANIFEST_FAILED;
  first.reason = "parse error";
  first.attempts = 1;
  put_ok(manifest, "a.xml", 5, &first);
  second.state = MANIFEST_ARCHIVED;
  second.archive_path = "done/a.xml";
  second.attempts = 2;
  put_ok(manifest, "a.xml", 5, &second);

  get_ok(manifest, "a.xml", 5, &out);
  assert_int_equal(out.state, MANIFEST_ARCHIVED);
  assert_null(out.reason);
  assert_string_equal(out.archive_path, "done/a.xml");
  assert_int_equal(out.attempts, 2);
  manifest_record_clear(&out);
  manifest_close(manifest);
}

static void get_missing_key(void **state)
{
  struct manifest *manifest = open_ok(*state);
  struct manifest_record out = {0};
  struct ag_error err = {0};
  bool found = true;

  assert_int_equal(manifest_get(manifest, "nope", 4, &out, &found, &err),
                   AG_OK);
  assert_false(found);
  assert_int_equal(err.code, AG_OK);
  manifest_close(manifest);
}

static void put_rejects_bad_sha256(void **state)
{
  struct manifest *manifest = open_ok(*state);
  struct manifest_record in = {0};
  struct ag_error err = {0};

  in.state = MANIFEST_DELIVERED;
  memcpy(in.sha256, "ABC", 4);
  assert_int_equal(manifest_put(manifest, "k", 1, &in, &err), AG_ESTATE);
  assert_contains(err.message, "sha256");
  manifest_close(manifest);
}

/* ---- Delivered table ---- */

static bool was_delivered(struct manifest *manifest, const char *sha256,
                          const char *key, size_t key_len)
{
  struct ag_error err = {0};
  bool found = false;

  assert_int_equal(
      manifest_was_delivered(manifest, sha256, key, key_len, &found, &err),
      AG_OK);
  return found;
}

static void delivered_lookup(void **state)
{
  struct manifest *manifest = open_ok(*state);
  struct manifest_record record = {0};
  struct ag_error err = {0};
  bool found = false;

  /* Only a DELIVERED record with a hash adds to the table. */
  record.state = MANIFEST_DOWNLOADED;
  memcpy(record.sha256, SHA_B, 65);
  put_ok(manifest, "b.xml", 5, &record);
  assert_false(was_delivered(manifest, SHA_B, "b.xml", 5));

  record.state = MANIFEST_DELIVERED;
  memcpy(record.sha256, SHA_A, 65);
  put_ok(manifest, "in/a\xff.xml", 9, &record);
  assert_true(was_delivered(manifest, SHA_A, "in/a\xff.xml", 9));

  /* The same content under another name is another delivery. */
  assert_false(was_delivered(manifest, SHA_A, "b.xml", 5));

  /* Replacing the record, even by another delivered version, keeps the
   * earlier version. */
  memcpy(record.sha256, SHA_B, 65);
  put_ok(manifest, "in/a\xff.xml", 9, &record);
  record.state = MANIFEST_ARCHIVED;
  record.sha256[0] = '\0';
  put_ok(manifest, "in/a\xff.xml", 9, &record);
  assert_true(was_delivered(manifest, SHA_A, "in/a\xff.xml", 9));
  assert_true(was_delivered(manifest, SHA_B, "in/a\xff.xml", 9));

  assert_int_equal(
      manifest_was_delivered(manifest, "xyz", "k", 1, &found, &err), AG_ESTATE);
  assert_false(found);
  manifest_close(manifest);
}

/* ---- Walking and counting ---- */

struct walk {
  char keys[16][8];
  size_t key_lens[16];
  size_t count;
  size_t stop_after;
};

static enum ag_code collect_key(void *ctx, const void *key, size_t key_len,
                                const struct manifest_record *record)
{
  struct walk *walk = ctx;

  assert_non_null(record);
  assert_true(key_len <= sizeof(walk->keys[0]));
  memcpy(walk->keys[walk->count], key, key_len);
  walk->key_lens[walk->count] = key_len;
  walk->count++;
  if (walk->count == walk->stop_after)
    return AG_EPARSE;
  return AG_OK;
}

static void foreach_order_and_counts(void **state)
{
  static const char *const keys[] = {"m", "b/2", "\xff", "a", "b/1", "Z"};
  static const enum manifest_state states[] = {
      MANIFEST_SEEN,     MANIFEST_DELIVERED, MANIFEST_DELIVERED,
      MANIFEST_ARCHIVED, MANIFEST_FAILED,    MANIFEST_DOWNLOADED};
  static const char *const sorted[] = {"Z", "a", "b/1", "b/2", "m", "\xff"};
  struct manifest *manifest = open_ok(*state);
  struct manifest_record record = {0};
  struct ag_error err = {0};
  struct walk walk = {0};
  size_t counts[MANIFEST_STATE_COUNT];

  for (size_t i = 0; i < 6; i++) {
    record.state = states[i];
    put_ok(manifest, keys[i], strlen(keys[i]), &record);
  }

  /* LMDB orders keys by their bytes. */
  assert_int_equal(manifest_foreach(manifest, collect_key, &walk, &err), AG_OK);
  assert_int_equal(walk.count, 6);
  for (size_t i = 0; i < 6; i++) {
    assert_int_equal(walk.key_lens[i], strlen(sorted[i]));
    assert_memory_equal(walk.keys[i], sorted[i], strlen(sorted[i]));
  }

  memset(counts, 0xff, sizeof(counts));
  assert_int_equal(manifest_counts(manifest, counts, &err), AG_OK);
  assert_int_equal(counts[0], 0);
  assert_int_equal(counts[MANIFEST_SEEN], 1);
  assert_int_equal(counts[MANIFEST_DOWNLOADED], 1);
  assert_int_equal(counts[MANIFEST_DELIVERED], 2);
  assert_int_equal(counts[MANIFEST_ARCHIVED], 1);
  assert_int_equal(counts[MANIFEST_FAILED], 1);
  manifest_close(manifest);
}

static void foreach_stops_on_callback_error(void **state)
{
  struct manifest *manifest = open_ok(*state);
  struct manifest_record record = {.state = MANIFEST_SEEN};
  struct ag_error err = {0};
  struct walk walk = {.stop_after = 2};

  put_ok(manifest, "a", 1, &record);
  put_ok(manifest, "b", 1, &record);
  put_ok(manifest, "c", 1, &record);
  assert_int_equal(manifest_foreach(manifest, collect_key, &walk, &err),
                   AG_EPARSE);
  assert_int_equal(walk.count, 2);
  assert_int_equal(err.code, AG_OK);
  manifest_close(manifest);
}

static void counts_empty_manifest(void **state)
{
  struct manifest *manifest = open_ok(*state);
  struct ag_error err = {0};
  size_t counts[MANIFEST_STATE_COUNT];

  memset(counts, 0xff, sizeof(counts));
  assert_int_equal(manifest_counts(manifest, counts, &err), AG_OK);
  for (size_t i = 0; i < MANIFEST_STATE_COUNT; i++)
    assert_int_equal(counts[i], 0);
  manifest_close(manifest);
}

/* ---- Durability, marker and lost manifests ---- */

static void reopen_keeps_data_and_id(void **state)
{
  const char *dir = *state;
  struct manifest *manifest = open_ok(dir);
  struct manifest_record record = {.state = MANIFEST_SEEN, .size = 42};
  struct manifest_record out = {0};
  char id[33];

  const char *first_id = manifest_agent_id(manifest);
  assert_int_equal(strlen(first_id), 32);
  assert_int_equal(strspn(first_id, "0123456789abcdef"), 32);
  memcpy(id, first_id, sizeof(id));
  put_ok(manifest, "kept.xml", 8, &record);
  manifest = reopen(manifest, dir);

  get_ok(manifest, "kept.xml", 8, &out);
  assert_int_equal(out.size, 42);
  assert_string_equal(manifest_agent_id(manifest), id);

  /* The marker contains the id and a newline. */
  char *marker = path_in(dir, "agent-id");
  size_t len = 0;
  char *text = read_file(marker, &len);
  assert_int_equal(len, 33);
  assert_memory_equal(text, id, 32);
  assert_int_equal(text[32], '\n');
  assert_true(file_exists(dir, "manifest.mdb-lock"));
  assert_false(file_exists(dir, "agent-id.tmp"));

  free(text);
  free(marker);
  manifest_record_clear(&out);
  manifest_close(manifest);
}

static void lost_when_manifest_removed(void **state)
{
  const char *dir = *state;
  char *db = path_in(dir, "manifest.mdb");

  manifest_close(open_ok(dir));
  assert_int_equal(unlink(db), 0);
  expect_lost(dir);
  /* The failed open must not leave a fresh manifest behind. */
  assert_false(file_exists(dir, "manifest.mdb"));
  expect_lost(dir);
  free(db);
}

static void lost_when_manifest_empty(void **state)
{
  const char *dir = *state;
  char *db = path_in(dir, "manifest.mdb");

  manifest_close(open_ok(dir));
  write_file(db, "", 0);
  expect_lost(dir);
  free(db);
}

static void lost_when_manifest_garbage(void **state)
{
  const char *dir = *state;
  char *db = path_in(dir, "manifest.mdb");
  char garbage[16384];

  manifest_close(open_ok(dir));
  for (size_t i = 0; i < sizeof(garbage); i++)
    garbage[i] = (char)('a' + i % 26);
  write_file(db, garbage, sizeof(garbage));
  expect_lost(dir);

  /* A file shorter than LMDB's header. */
  write_file(db, "not lmdb", 8);
  expect_lost(dir);
  free(db);
}

static void lost_when_table_missing(void **state)
{
  const char *dir = *state;

  manifest_close(open_ok(dir));
  raw_edit(dir, "delivered", NULL, 0, NULL);
  expect_lost(dir);
}

static void lost_when_schema_missing(void **state)
{
  const char *dir = *state;

  manifest_close(open_ok(dir));
  raw_edit(dir, "meta", "schema_version", 14, NULL);
  expect_lost(dir);
}

static void newer_schema_rejected(void **state)
{
  const char *dir = *state;
  struct ag_error err = {0};
  struct manifest *manifest = NULL;

  manifest_close(open_ok(dir));
  raw_edit(dir, "meta", "schema_version", 14, "3");
  assert_int_equal(manifest_open(dir, &manifest, &err), AG_ESTATE);
  assert_null(manifest);
  assert_contains(err.message, "schema version '3'");
  assert_contains(err.message, "reads versions 1 to 2");

  /* A reader rejects it as well, because the format may differ. */
  ag_error_clear(&err);
  assert_int_equal(manifest_open_read_only(dir, &manifest, &err), AG_ESTATE);
  assert_null(manifest);
  assert_contains(err.message, "schema version '3'");
}

static void garbage_without_marker_fails(void **state)
{
  const char *dir = *state;
  char *db = path_in(dir, "manifest.mdb");
  struct ag_error err = {0};
  struct manifest *manifest = NULL;
  char garbage[8192];

  /* Without a marker the file is still unreadable, so sync
   * --rebuild-manifest may set it aside, but nothing overwrites it. */
  memset(garbage, 'x', sizeof(garbage));
  write_file(db, garbage, sizeof(garbage));
  assert_int_equal(manifest_open(dir, &manifest, &err), AG_ESTATELOST);
  assert_null(manifest);
  assert_contains(err.message, db);
  assert_contains(err.message, "--rebuild-manifest");
  assert_false(file_exists(dir, "agent-id"));
  size_t len = 0;
  char *kept = read_file(db, &len);
  assert_int_equal(len, sizeof(garbage));
  assert_memory_equal(kept, garbage, sizeof(garbage));
  free(kept);
  free(db);
}

static void marker_rewritten_when_missing(void **state)
{
  const char *dir = *state;
  char *marker = path_in(dir, "agent-id");
  struct manifest *manifest = open_ok(dir);
  struct manifest_record record = {.state = MANIFEST_ARCHIVED};
  struct manifest_record out = {0};

  put_ok(manifest, "old.xml", 7, &record);
  manifest_close(manifest);
  assert_int_equal(unlink(marker), 0);

  manifest = open_ok(dir);
  assert_true(file_exists(dir, "agent-id"));
  assert_int_equal(strlen(manifest_agent_id(manifest)), 32);
  get_ok(manifest, "old.xml", 7, &out);
  assert_int_equal(out.state, MANIFEST_ARCHIVED);
  manifest_record_clear(&out);
  manifest_close(manifest);
  free(marker);
}

static void invalid_marker_rejected(void **state)
{
  const char *dir = *state;
  char *marker = path_in(dir, "agent-id");
  struct ag_error err = {0};
  struct manifest *manifest = NULL;

  manifest_close(open_ok(dir));
  write_file(marker, "not-an-id\n", 10);
  assert_int_equal(manifest_open(dir, &manifest, &err), AG_ELOCAL);
  assert_null(manifest);
  assert_contains(err.message, marker);
  free(marker);
}

static void missing_state_folder_fails(void **state)
{
  char *dir = path_in(*state, "absent");
  struct ag_error err = {0};
  struct manifest *manifest = NULL;

  assert_int_equal(manifest_open(dir, &manifest, &err), AG_ESTATE);
  assert_null(manifest);
  assert_contains(err.message, dir);
  free(dir);
}

/* ---- Stored records from other writers ---- */

static void unknown_fields_ignored(void **state)
{
  const char *dir = *state;
  struct manifest *manifest = NULL;
  struct manifest_record out = {0};

  manifest_close(open_ok(dir));
  raw_edit(dir, "files", "k", 1,
           "{\"v\":1,\"state\":\"seen\",\"size\":7,\"later\":[1,2],"
           "\"extra\":{\"a\":null}}");
  manifest = open_ok(dir);
  get_ok(manifest, "k", 1, &out);
  assert_int_equal(out.state, MANIFEST_SEEN);
  assert_int_equal(out.size, 7);
  manifest_record_clear(&out);
  manifest_close(manifest);
}

/* Store value under a key with a control byte, then expect both a lookup
 * and a walk to fail with AG_ESTATE naming the escaped key and problem. */
static void expect_bad_record(const char *dir, const char *value,
                              const char *problem)
{
  struct manifest *manifest = NULL;
  struct manifest_record out = {0};
  struct ag_error err = {0};
  struct walk walk = {0};
  bool found = true;

  raw_edit(dir, "files", "bad\x01key", 7, value);
  manifest = open_ok(dir);
  assert_int_equal(manifest_get(manifest, "bad\x01key", 7, &out, &found, &err),
                   AG_ESTATE);
  assert_false(found);
  assert_contains(err.message, "bad\\x01key");
  assert_contains(err.message, problem);
  assert_null(out.output);

  ag_error_clear(&err);
  assert_int_equal(manifest_foreach(manifest, collect_key, &walk, &err),
                   AG_ESTATE);
  assert_contains(err.message, "bad\\x01key");
  manifest_close(manifest);
}

static void undecodable_records_rejected(void **state)
{
  const char *dir = *state;

  manifest_close(open_ok(dir));
  expect_bad_record(dir, "{not json", "not JSON");
  expect_bad_record(dir, "[1,2]", "not a JSON object");
  expect_bad_record(dir, "{\"state\":\"seen\"}", "format version");
  expect_bad_record(dir, "{\"v\":2,\"state\":\"seen\"}", "newer");
  expect_bad_record(dir, "{\"v\":1,\"state\":\"gone\"}", "no known state");
  expect_bad_record(dir, "{\"v\":1,\"state\":\"seen\",\"size\":-1}", "'size'");
  expect_bad_record(dir, "{\"v\":1,\"state\":\"seen\",\"attempts\":4294967296}",
                    "'attempts'");
  expect_bad_record(dir, "{\"v\":1,\"state\":\"seen\",\"sha256\":\"xyz\"}",
                    "'sha256'");
  expect_bad_record(dir, "{\"v\":1,\"state\":\"seen\",\"output\":5}",
                    "'output'");
  expect_bad_record(dir, "{\"v\":1,\"state\":\"seen\",\"reason_b64\":\"@@\"}",
                    "'reason_b64'");
  expect_bad_record(dir, "{\"v\":1,\"state\":\"seen\",\"hook_done\":1}",
                    "'hook_done' is not true or false");
  expect_bad_record(dir, "{\"v\":1,\"state\":\"seen\",\"hook_attempts\":-1}",
                    "'hook_attempts'");
  expect_bad_record(dir, "{\"v\":1,\"state\":\"seen\",\"hook_retry_at\":\"x\"}",
                    "'hook_retry_at'");
  expect_bad_record(dir, "{\"v\":1,\"state\":\"seen\",\"hook_error\":[]}",
                    "'hook_error'");
}

/* ---- Keys ---- */

static void raw_and_absolute_keys(void **state)
{
  const char *dir = *state;
  static const char raw_key[] = "in/\xff\xfe\xc3(/x.xml";
  static const char absolute_key[] = "/abs/path.xml";
  static const char nul_key[] = "a\0b";
  struct manifest *manifest = open_ok(dir);
  struct manifest_record record = {0};
  struct manifest_record out = {0};

  record.state = MANIFEST_SEEN;
  record.size = 1;
  put_ok(manifest, raw_key, sizeof(raw_key) - 1, &record);
  record.size = 2;
  put_ok(manifest, absolute_key, sizeof(absolute_key) - 1, &record);
  record.size = 3;
  put_ok(manifest, nul_key, sizeof(nul_key) - 1, &record);
  manifest = reopen(manifest, dir);

  get_ok(manifest, raw_key, sizeof(raw_key) - 1, &out);
  assert_int_equal(out.size, 1);
  get_ok(manifest, absolute_key, sizeof(absolute_key) - 1, &out);
  assert_int_equal(out.size, 2);
  get_ok(manifest, nul_key, sizeof(nul_key) - 1, &out);
  assert_int_equal(out.size, 3);

  /* "a" is a prefix of the NUL key and must not match it. */
  struct ag_error err = {0};
  bool found = true;
  assert_int_equal(manifest_get(manifest, "a", 1, &out, &found, &err), AG_OK);
  assert_false(found);
  manifest_close(manifest);
}

static void key_length_limits(void **state)
{
  struct manifest *manifest = open_ok(*state);
  struct manifest_record record = {.state = MANIFEST_SEEN};
  struct manifest_record out = {0};
  struct ag_error err = {0};
  char key[512];
  bool found = true;

  memset(key, 'k', sizeof(key));
  put_ok(manifest, key, 511, &record);
  get_ok(manifest, key, 511, &out);

  assert_int_equal(manifest_put(manifest, key, 512, &record, &err), AG_ESTATE);
  assert_contains(err.message, "512 bytes");
  ag_error_clear(&err);
  assert_int_equal(manifest_get(manifest, key, 512, &out, &found, &err),
                   AG_ESTATE);
  assert_false(found);
  ag_error_clear(&err);
  assert_int_equal(manifest_put(manifest, "", 0, &record, &err), AG_ESTATE);
  assert_contains(err.message, "empty");
  manifest_close(manifest);
}

/* ---- Map growth ---- */

/* 5,000 records with 4 KiB reasons are about 20 MiB, more than the
 * initial 16 MiB map. Each put is a synced commit, so fewer, larger
 * records keep the test short on slow disks. */
#define GROWTH_RECORDS 5000
#define GROWTH_REASON 4096

static void fill_reason(char *reason, size_t i)
{
  memset(reason, 'r', GROWTH_REASON);
  snprintf(reason, GROWTH_REASON, "record %zu:", i);
  reason[strlen(reason)] = 'r';
  reason[GROWTH_REASON] = '\0';
}

static void map_grows_past_initial_size(void **state)
{
  const char *dir = *state;
  struct manifest *manifest = open_ok(dir);
  struct manifest_record record = {.state = MANIFEST_FAILED};
  struct manifest_record out = {0};
  char reason[GROWTH_REASON + 1];
  char key[32];

  record.reason = reason;
  for (size_t i = 0; i < GROWTH_RECORDS; i++) {
    fill_reason(reason, i);
    snprintf(key, sizeof(key), "file-%06zu.xml", i);
    record.attempts = (uint32_t)i;
    put_ok(manifest, key, strlen(key), &record);
  }
  manifest = reopen(manifest, dir);

  char *db = path_in(dir, "manifest.mdb");
  struct stat info;
  assert_int_equal(stat(db, &info), 0);
  assert_true(info.st_size > 16 * 1024 * 1024);
  free(db);

  for (size_t i = 0; i < GROWTH_RECORDS; i++) {
    fill_reason(reason, i);
    snprintf(key, sizeof(key), "file-%06zu.xml", i);
    get_ok(manifest, key, strlen(key), &out);
    assert_int_equal(out.attempts, i);
    assert_string_equal(out.reason, reason);
    manifest_record_clear(&out);
  }

  struct ag_error err = {0};
  size_t counts[MANIFEST_STATE_COUNT];
  assert_int_equal(manifest_counts(manifest, counts, &err), AG_OK);
  assert_int_equal(counts[MANIFEST_FAILED], GROWTH_RECORDS);
  manifest_close(manifest);
}

#define FOLDER_TEST(name)                                                      \
  cmocka_unit_test_setup_teardown(name, setup_folder, teardown_folder)

int main(void)
{
  const struct CMUnitTest tests[] = {
      FOLDER_TEST(record_round_trip),
      FOLDER_TEST(record_hook_fields),
      FOLDER_TEST(record_intent_fields),
      FOLDER_TEST(record_without_hook_fields),
      FOLDER_TEST(record_claim_path),
      FOLDER_TEST(record_extreme_values),
      FOLDER_TEST(record_text_is_what_jansson_writes),
      FOLDER_TEST(record_every_state),
      FOLDER_TEST(record_replace),
      FOLDER_TEST(get_missing_key),
      FOLDER_TEST(put_rejects_bad_sha256),
      FOLDER_TEST(delivered_lookup),
      FOLDER_TEST(foreach_order_and_counts),
      FOLDER_TEST(foreach_stops_on_callback_error),
      FOLDER_TEST(counts_empty_manifest),
      FOLDER_TEST(reopen_keeps_data_and_id),
      FOLDER_TEST(lost_when_manifest_removed),
      FOLDER_TEST(lost_when_manifest_empty),
      FOLDER_TEST(lost_when_manifest_garbage),
      FOLDER_TEST(lost_when_table_missing),
      FOLDER_TEST(lost_when_schema_missing),
      FOLDER_TEST(newer_schema_rejected),
      FOLDER_TEST(garbage_without_marker_fails),
      FOLDER_TEST(marker_rewritten_when_missing),
      FOLDER_TEST(invalid_marker_rejected),
      FOLDER_TEST(missing_state_folder_fails),
      FOLDER_TEST(unknown_fields_ignored),
      FOLDER_TEST(undecodable_records_rejected),
      FOLDER_TEST(raw_and_absolute_keys),
      FOLDER_TEST(key_length_limits),
      FOLDER_TEST(map_grows_past_initial_size),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
