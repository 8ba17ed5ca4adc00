/* Unit tests for progress.c: the text of the progress line. */
#include "agent/progress.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

static void test_format_cases(void **state)
{
  static const struct {
    const char *name;
    struct agent_progress progress;
    const char *expected;
  } cases[] = {
      {"start", {0, 3, 0, 0}, "sync: 0/3 files, 0 B"},
      {"bytes", {1, 3, 1023, 1000}, "sync: 1/3 files, 1023 B, 1023 B/s"},
      {"kibibytes", {2, 3, 1536, 1000}, "sync: 2/3 files, 1.5 KiB, 1.5 KiB/s"},
      {"mebibytes",
       {3, 3, 5 << 20, 2000},
       "sync: 3/3 files, 5.0 MiB, 2.5 MiB/s"},
      {"gibibytes",
       {9, 10, 3ULL << 30, 1000},
       "sync: 9/10 files, 3.0 GiB, 3.0 GiB/s"},
  };
  char out[128];

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    progress_format(&cases[i].progress, out, sizeof(out));
    if (strcmp(out, cases[i].expected) != 0)
      fail_msg("case '%s': expected '%s', got '%s'", cases[i].name,
               cases[i].expected, out);
  }
}

static void test_format_cut_to_buffer(void **state)
{
  struct agent_progress progress = {1, 2, 100, 1000};
  char out[10];

  (void)state;
  progress_format(&progress, out, sizeof(out));
  assert_string_equal(out, "sync: 1/2");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_format_cases),
      cmocka_unit_test(test_format_cut_to_buffer),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
