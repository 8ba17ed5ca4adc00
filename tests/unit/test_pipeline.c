/* Unit tests for the pure parts of pipeline.c: how the counts of the
 * workers add up to the pass's summary. The parallel pass itself runs
 * against a real sshd in tests/integration/test_sync_parallel.sh. */
#include "../../src/pipeline.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

/* Every per-file count of a worker is added; the counts that describe the
 * pass as a whole are left as they are. */
static void summary_adds_worker_counts(void **state)
{
  (void)state;
  struct agent_summary total = {
      .delivered = 1,
      .settling = 4,
      .skipped = 5,
      .backlog = 6,
      .duration_ms = 700,
      .last_success = 800,
  };
  struct agent_summary part = {
      .delivered = 10,
      .duplicates = 11,
      .completed = 12,
      .failed = 13,
      .pending = 14,
      .settling = 99,
      .deferred = 15,
      .vanished = 16,
      .skipped = 99,
      .bytes = 1ULL << 40,
      .delivered_by_format = {1, 2, 3, 4},
      .failed_by_format = {5, 6, 7, 8},
      .pending_archive = 17,
      .backlog = 99,
      .duration_ms = 99,
      .last_success = 99,
  };

  pipeline_add_summary(&total, &part);
  pipeline_add_summary(&total, &part);

  assert_int_equal(total.delivered, 21);
  assert_int_equal(total.duplicates, 22);
  assert_int_equal(total.completed, 24);
  assert_int_equal(total.failed, 26);
  assert_int_equal(total.pending, 28);
  assert_int_equal(total.deferred, 30);
  assert_int_equal(total.vanished, 32);
  assert_int_equal(total.bytes, 2ULL << 40);
  assert_int_equal(total.delivered_by_format[AGENT_FORMAT_XML], 2);
  assert_int_equal(total.delivered_by_format[AGENT_FORMAT_OTHER], 8);
  assert_int_equal(total.failed_by_format[AGENT_FORMAT_CSV], 12);
  assert_int_equal(total.failed_by_format[AGENT_FORMAT_JSON], 14);
  assert_int_equal(total.pending_archive, 34);

  assert_int_equal(total.settling, 4);
  assert_int_equal(total.skipped, 5);
  assert_int_equal(total.backlog, 6);
  assert_int_equal(total.duration_ms, 700);
  assert_int_equal(total.last_success, 800);
}

/* Adding an empty summary changes nothing. */
static void summary_adds_nothing_from_empty(void **state)
{
  (void)state;
  struct agent_summary total = {.delivered = 3, .bytes = 9};
  struct agent_summary before = total;
  struct agent_summary empty = {0};

  pipeline_add_summary(&total, &empty);
  assert_memory_equal(&total, &before, sizeof(total));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(summary_adds_worker_counts),
      cmocka_unit_test(summary_adds_nothing_from_empty),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
