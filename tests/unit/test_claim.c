/* Unit tests for the pure parts of claim.c: how names in claim_dir are
 * classified, when an agent counts as stopped, the heartbeat interval,
 * and where a claimed file is found. */
#include "../../src/claim_internal.h"

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#define ID "0123456789abcdef0123456789abcdef"

static enum claim_entry classify(const char *name, char *id)
{
  return claim_classify(name, strlen(name), id);
}

static void classify_agent_entries(void **state)
{
  char id[CLAIM_ID_LEN + 1] = "";

  (void)state;
  assert_int_equal(classify(ID, id), CLAIM_ENTRY_CLAIMS);
  assert_string_equal(id, ID);

  memset(id, 0, sizeof(id));
  assert_int_equal(classify(ID ".delivered", id), CLAIM_ENTRY_DELIVERED);
  assert_string_equal(id, ID);

  memset(id, 0, sizeof(id));
  assert_int_equal(classify(ID ".alive.1733356800", id), CLAIM_ENTRY_HEARTBEAT);
  assert_string_equal(id, ID);
  assert_int_equal(classify(ID ".alive.0", id), CLAIM_ENTRY_HEARTBEAT);
}

static void classify_other_names(void **state)
{
  char id[CLAIM_ID_LEN + 1] = "untouched";

  (void)state;
  /* Too short, upper case, a non-hex letter, unknown suffixes, a
   * heartbeat without or with a non-decimal number, and a number longer
   * than an int64_t can have. */
  assert_int_equal(classify("0123456789abcdef", id), CLAIM_ENTRY_OTHER);
  assert_int_equal(classify("0123456789ABCDEF0123456789ABCDEF", id),
                   CLAIM_ENTRY_OTHER);
  assert_int_equal(classify("0123456789abcdeg0123456789abcdef", id),
                   CLAIM_ENTRY_OTHER);
  assert_int_equal(classify(ID "x", id), CLAIM_ENTRY_OTHER);
  assert_int_equal(classify(ID ".delivered2", id), CLAIM_ENTRY_OTHER);
  assert_int_equal(classify(ID ".alive.", id), CLAIM_ENTRY_OTHER);
  assert_int_equal(classify(ID ".alive.12a", id), CLAIM_ENTRY_OTHER);
  assert_int_equal(classify(ID ".alive.-1", id), CLAIM_ENTRY_OTHER);
  assert_int_equal(classify(ID ".alive.12345678901234567890", id),
                   CLAIM_ENTRY_OTHER);
  assert_int_equal(classify(".rossum-sftp-agent-check-42", id),
                   CLAIM_ENTRY_OTHER);
  assert_int_equal(classify("", id), CLAIM_ENTRY_OTHER);
  assert_string_equal(id, "untouched");
}

static void classify_uses_length(void **state)
{
  char id[CLAIM_ID_LEN + 1] = "";

  (void)state;
  /* Only len bytes count, so a longer buffer does not change the kind. */
  assert_int_equal(claim_classify(ID ".delivered", CLAIM_ID_LEN, id),
                   CLAIM_ENTRY_CLAIMS);
  assert_int_equal(claim_classify(ID, CLAIM_ID_LEN - 1, id), CLAIM_ENTRY_OTHER);
}

static void stale_after_timeout(void **state)
{
  (void)state;
  assert_false(claim_is_stale(1000, 1000, 60));
  assert_false(claim_is_stale(1000, 1060, 60));
  assert_true(claim_is_stale(1000, 1061, 60));
  assert_true(claim_is_stale(INT64_MIN, 0, 60));
}

static void stale_future_heartbeat(void **state)
{
  (void)state;
  /* A heartbeat newer than now means the server's clock went back. */
  assert_false(claim_is_stale(5000, 1000, 60));
}

static void heartbeat_interval_quarter(void **state)
{
  (void)state;
  assert_int_equal(claim_heartbeat_interval_ms(900), 225000);
  assert_int_equal(claim_heartbeat_interval_ms(10), 2500);
}

static void source_path_prefers_claim(void **state)
{
  struct config config = {.inbox = "/export"};
  struct manifest_record record = {0};

  (void)state;
  char *path = claim_source_path(&config, "sub/x.xml", 9, NULL);
  assert_string_equal(path, "/export/sub/x.xml");
  free(path);

  path = claim_source_path(&config, "sub/x.xml", 9, &record);
  assert_string_equal(path, "/export/sub/x.xml");
  free(path);

  record.claim_path = "/claims/" ID "/sub/x.xml";
  path = claim_source_path(&config, "sub/x.xml", 9, &record);
  assert_string_equal(path, "/claims/" ID "/sub/x.xml");
  free(path);
}

static void claim_paths_built(void **state)
{
  struct config config = {.claim_dir = "/claims"};
  struct config root = {.claim_dir = "/"};

  (void)state;
  char *path = claim_folder(&config, ID, "");
  assert_string_equal(path, "/claims/" ID);
  free(path);

  path = claim_path_for(&config, ID, CLAIM_DELIVERED_SUFFIX, "a/b.xml", 7);
  assert_string_equal(path, "/claims/" ID ".delivered/a/b.xml");
  free(path);

  path = claim_path_for(&root, ID, "", "b.xml", 5);
  assert_string_equal(path, "/" ID "/b.xml");
  free(path);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(classify_agent_entries),
      cmocka_unit_test(classify_other_names),
      cmocka_unit_test(classify_uses_length),
      cmocka_unit_test(stale_after_timeout),
      cmocka_unit_test(stale_future_heartbeat),
      cmocka_unit_test(heartbeat_interval_quarter),
      cmocka_unit_test(source_path_prefers_claim),
      cmocka_unit_test(claim_paths_built),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
