/* Unit tests for stable.c: the wait for a file's size and mtime to settle,
 * forgetting keys, listing generations and table growth. Times are in
 * milliseconds of a made-up monotonic clock. */
#include "agent/stable.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#define WAIT_MS 10000
#define SIZE 1234
#define MTIME 1700000000

static int setup(void **state)
{
  struct stable *tracker = stable_new();

  if (tracker == NULL)
    return -1;
  *state = tracker;
  return 0;
}

static int teardown(void **state)
{
  stable_free(*state);
  return 0;
}

/* Observe a NUL-terminated key with the default size and mtime. */
static int observe(struct stable *tracker, const char *key, int64_t now_ms)
{
  return stable_observe(tracker, key, strlen(key), SIZE, MTIME, now_ms,
                        WAIT_MS);
}

static void test_new_key_waits(void **state)
{
  struct stable *tracker = *state;

  assert_int_equal(observe(tracker, "a.xml", 5000), 0);
  assert_int_equal(stable_count(tracker), 1);
}

static void test_new_key_no_wait(void **state)
{
  struct stable *tracker = *state;

  assert_int_equal(stable_observe(tracker, "a.xml", 5, SIZE, MTIME, 5000, 0),
                   1);
}

static void test_stable_after_wait(void **state)
{
  struct stable *tracker = *state;

  assert_int_equal(observe(tracker, "a.xml", 1000), 0);
  assert_int_equal(observe(tracker, "a.xml", 1000 + WAIT_MS / 2), 0);
  assert_int_equal(observe(tracker, "a.xml", 1000 + WAIT_MS - 1), 0);
  assert_int_equal(observe(tracker, "a.xml", 1000 + WAIT_MS), 1);
  assert_int_equal(observe(tracker, "a.xml", 1000 + 5 * WAIT_MS), 1);
  assert_int_equal(stable_count(tracker), 1);
}

static void test_size_change_restarts(void **state)
{
  struct stable *tracker = *state;

  assert_int_equal(observe(tracker, "a.xml", 1000), 0);
  assert_int_equal(stable_observe(tracker, "a.xml", 5, SIZE + 1, MTIME,
                                  1000 + WAIT_MS, WAIT_MS),
                   0);
  assert_int_equal(stable_observe(tracker, "a.xml", 5, SIZE + 1, MTIME,
                                  1000 + 2 * WAIT_MS - 1, WAIT_MS),
                   0);
  assert_int_equal(stable_observe(tracker, "a.xml", 5, SIZE + 1, MTIME,
                                  1000 + 2 * WAIT_MS, WAIT_MS),
                   1);
}

static void test_size_back_restarts(void **state)
{
  struct stable *tracker = *state;

  /* Returning to the first size is still a change. */
  assert_int_equal(observe(tracker, "a.xml", 0), 0);
  assert_int_equal(
      stable_observe(tracker, "a.xml", 5, 0, MTIME, WAIT_MS / 2, WAIT_MS), 0);
  assert_int_equal(observe(tracker, "a.xml", WAIT_MS), 0);
  assert_int_equal(observe(tracker, "a.xml", 2 * WAIT_MS), 1);
}

static void test_mtime_change_restarts(void **state)
{
  struct stable *tracker = *state;

  assert_int_equal(observe(tracker, "a.xml", 1000), 0);
  assert_int_equal(stable_observe(tracker, "a.xml", 5, SIZE, MTIME - 60,
                                  1000 + WAIT_MS, WAIT_MS),
                   0);
  assert_int_equal(stable_observe(tracker, "a.xml", 5, SIZE, MTIME - 60,
                                  1000 + 2 * WAIT_MS, WAIT_MS),
                   1);
}

static void test_keys_independent(void **state)
{
  struct stable *tracker = *state;

  assert_int_equal(observe(tracker, "a.xml", 0), 0);
  assert_int_equal(observe(tracker, "b.xml", WAIT_MS / 2), 0);
  assert_int_equal(observe(tracker, "a.xml", WAIT_MS), 1);
  assert_int_equal(observe(tracker, "b.xml", WAIT_MS), 0);
  assert_int_equal(stable_count(tracker), 2);
}

static void test_forget(void **state)
{
  struct stable *tracker = *state;

  assert_int_equal(observe(tracker, "a.xml", 0), 0);
  assert_int_equal(observe(tracker, "b.xml", 0), 0);
  stable_forget(tracker, "a.xml", 5);
  assert_int_equal(stable_count(tracker), 1);

  /* A forgotten key starts a new wait, and the other key keeps its own. */
  assert_int_equal(observe(tracker, "a.xml", WAIT_MS), 0);
  assert_int_equal(observe(tracker, "b.xml", WAIT_MS), 1);
  assert_int_equal(observe(tracker, "a.xml", 2 * WAIT_MS), 1);
}

static void test_forget_unknown(void **state)
{
  struct stable *tracker = *state;

  assert_int_equal(observe(tracker, "a.xml", 0), 0);
  stable_forget(tracker, "b.xml", 5);
  stable_forget(tracker, "a.xm", 4);
  assert_int_equal(stable_count(tracker), 1);
}

static void test_generation_drops_unseen(void **state)
{
  struct stable *tracker = *state;

  assert_int_equal(observe(tracker, "kept.xml", 0), 0);
  assert_int_equal(observe(tracker, "gone.xml", 0), 0);
  stable_next_generation(tracker);
  assert_int_equal(stable_count(tracker), 2);

  /* The second listing reports only kept.xml. */
  assert_int_equal(observe(tracker, "kept.xml", WAIT_MS / 2), 0);
  stable_next_generation(tracker);
  assert_int_equal(stable_count(tracker), 1);

  /* kept.xml keeps its first observation time, but gone.xml starts
   * again. */
  assert_int_equal(observe(tracker, "kept.xml", WAIT_MS), 1);
  assert_int_equal(observe(tracker, "gone.xml", WAIT_MS), 0);
  assert_int_equal(stable_count(tracker), 2);
}

static void test_generation_empty_listing(void **state)
{
  struct stable *tracker = *state;

  assert_int_equal(observe(tracker, "a.xml", 0), 0);
  stable_next_generation(tracker);
  stable_next_generation(tracker);
  assert_int_equal(stable_count(tracker), 0);
  stable_next_generation(tracker);
  assert_int_equal(stable_count(tracker), 0);
}

#define MANY_KEYS 10000

static void many_key(char *key, size_t size, int i)
{
  snprintf(key, size, "folder-%d/export-%05d.xml", i % 7, i);
}

static void test_many_keys(void **state)
{
  struct stable *tracker = *state;
  char key[64];
  int settling = 0;
  int stable = 0;

  for (int i = 0; i < MANY_KEYS; i++) {
    many_key(key, sizeof(key), i);
    settling += observe(tracker, key, i) == 0;
  }
  assert_int_equal(settling, MANY_KEYS);
  assert_int_equal(stable_count(tracker), MANY_KEYS);

  /* Every key survives the growth with its own first observation. */
  for (int i = 0; i < MANY_KEYS; i++) {
    many_key(key, sizeof(key), i);
    stable += observe(tracker, key, MANY_KEYS / 2 + WAIT_MS) == 1;
  }
  assert_int_equal(stable, MANY_KEYS / 2 + 1);
  assert_int_equal(stable_count(tracker), MANY_KEYS);

  for (int i = 0; i < MANY_KEYS; i += 2) {
    many_key(key, sizeof(key), i);
    stable_forget(tracker, key, strlen(key));
  }
  assert_int_equal(stable_count(tracker), MANY_KEYS / 2);

  /* The next listing reports only keys 1, 5, 9 and so on, so the other
   * odd keys are dropped. */
  stable_next_generation(tracker);
  for (int i = 1; i < MANY_KEYS; i += 4) {
    many_key(key, sizeof(key), i);
    assert_int_equal(observe(tracker, key, 3 * WAIT_MS), 1);
  }
  stable_next_generation(tracker);
  assert_int_equal(stable_count(tracker), MANY_KEYS / 4);
}

static void test_raw_byte_keys(void **state)
{
  struct stable *tracker = *state;
  /* Invalid UTF-8, a Latin-1 'e' with acute, its UTF-8 form, and a key
   * that is a prefix of another. */
  static const unsigned char invalid[] = {0xff, 0xfe, 'x'};
  static const unsigned char latin1[] = {'f', 0xe9, '.', 'x', 'm', 'l'};
  static const unsigned char utf8[] = {'f', 0xc3, 0xa9, '.', 'x', 'm', 'l'};
  static const unsigned char longer[] = {0xff, 0xfe, 'x', 0x80};

  assert_int_equal(stable_observe(tracker, invalid, sizeof(invalid), SIZE,
                                  MTIME, 0, WAIT_MS),
                   0);
  assert_int_equal(
      stable_observe(tracker, latin1, sizeof(latin1), SIZE, MTIME, 0, WAIT_MS),
      0);
  assert_int_equal(stable_observe(tracker, utf8, sizeof(utf8), SIZE, MTIME,
                                  WAIT_MS / 2, WAIT_MS),
                   0);
  assert_int_equal(stable_observe(tracker, longer, sizeof(longer), SIZE, MTIME,
                                  WAIT_MS / 2, WAIT_MS),
                   0);
  assert_int_equal(stable_count(tracker), 4);

  assert_int_equal(stable_observe(tracker, invalid, sizeof(invalid), SIZE,
                                  MTIME, WAIT_MS, WAIT_MS),
                   1);
  assert_int_equal(stable_observe(tracker, latin1, sizeof(latin1), SIZE, MTIME,
                                  WAIT_MS, WAIT_MS),
                   1);
  assert_int_equal(stable_observe(tracker, utf8, sizeof(utf8), SIZE, MTIME,
                                  WAIT_MS, WAIT_MS),
                   0);
  assert_int_equal(stable_observe(tracker, longer, sizeof(longer), SIZE, MTIME,
                                  WAIT_MS, WAIT_MS),
                   0);

  stable_forget(tracker, invalid, sizeof(invalid));
  assert_int_equal(stable_count(tracker), 3);
  assert_int_equal(stable_observe(tracker, longer, sizeof(longer), SIZE, MTIME,
                                  WAIT_MS + WAIT_MS / 2, WAIT_MS),
                   1);
}

static void test_free_null(void **state)
{
  (void)state;
  stable_free(NULL);
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
      TEST(test_new_key_waits),
      TEST(test_new_key_no_wait),
      TEST(test_stable_after_wait),
      TEST(test_size_change_restarts),
      TEST(test_size_back_restarts),
      TEST(test_mtime_change_restarts),
      TEST(test_keys_independent),
      TEST(test_forget),
      TEST(test_forget_unknown),
      TEST(test_generation_drops_unseen),
      TEST(test_generation_empty_listing),
      TEST(test_many_keys),
      TEST(test_raw_byte_keys),
      TEST(test_free_null),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
