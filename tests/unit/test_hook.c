/* Unit tests for hook.c without a server: how [hook] exec is split into
 * words, which values are rejected, the retry delays and which records
 * wait for the hook. */
#include "agent/hook.h"

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

/* Split text, which must succeed, and check the words against expected,
 * a NULL-terminated list. */
static void expect_words(const char *text, const char *const expected[])
{
  struct ag_error err = {0};
  char **words = NULL;
  size_t count = 99;
  size_t expected_count = 0;

  while (expected[expected_count] != NULL)
    expected_count++;
  enum ag_code code = hook_split_command(text, &words, &count, &err);
  if (code != AG_OK)
    print_error("hook_split_command(\"%s\"): %s\n", text, err.message);
  assert_int_equal(code, AG_OK);
  assert_non_null(words);
  assert_int_equal(count, expected_count);
  for (size_t i = 0; i < expected_count; i++)
    assert_string_equal(words[i], expected[i]);
  assert_null(words[count]);
  free(words);
}

/* Split text, which must fail with AG_ECONFIG and a message that contains
 * detail. */
static void expect_rejected(const char *text, const char *detail)
{
  struct ag_error err = {0};
  char **words = (char **)&err;
  size_t count = 99;

  assert_int_equal(hook_split_command(text, &words, &count, &err), AG_ECONFIG);
  assert_null(words);
  assert_int_equal(count, 0);
  assert_int_equal(err.code, AG_ECONFIG);
  assert_contains(err.message, "[hook] exec");
  assert_contains(err.message, detail);
}

static void split_program_only(void **state)
{
  (void)state;
  expect_words("/usr/local/bin/notify",
               (const char *[]){"/usr/local/bin/notify", NULL});
}

static void split_blanks_between_words(void **state)
{
  (void)state;
  expect_words("  /bin/hook\t-v   --to  x\t ",
               (const char *[]){"/bin/hook", "-v", "--to", "x", NULL});
}

static void split_quotes_keep_spaces(void **state)
{
  (void)state;
  expect_words(
      "/bin/hook 'two words' \"and  three\tmore\"",
      (const char *[]){"/bin/hook", "two words", "and  three\tmore", NULL});
  expect_words("'/opt/my hooks/run'",
               (const char *[]){"/opt/my hooks/run", NULL});
}

static void split_other_quote_is_literal(void **state)
{
  (void)state;
  expect_words("/bin/hook \"it's\" 'say \"hi\"'",
               (const char *[]){"/bin/hook", "it's", "say \"hi\"", NULL});
}

static void split_adjacent_parts_join(void **state)
{
  (void)state;
  expect_words("/bin/hook --name='a b'c x\"y\"'z'",
               (const char *[]){"/bin/hook", "--name=a bc", "xyz", NULL});
}

static void split_empty_quotes_are_words(void **state)
{
  (void)state;
  expect_words("/bin/hook '' \"\" end",
               (const char *[]){"/bin/hook", "", "", "end", NULL});
}

static void split_backslash_is_literal(void **state)
{
  (void)state;
  expect_words("/bin/hook a\\ b 'c\\'",
               (const char *[]){"/bin/hook", "a\\", "b", "c\\", NULL});
}

static void split_word_limit(void **state)
{
  char text[HOOK_WORDS_MAX * 2 + 16] = "/bin/hook";
  (void)state;

  /* The program and HOOK_WORDS_MAX - 1 arguments fit. */
  for (int i = 1; i < HOOK_WORDS_MAX; i++)
    strcat(text, " a");
  struct ag_error err = {0};
  char **words = NULL;
  size_t count = 0;
  assert_int_equal(hook_split_command(text, &words, &count, &err), AG_OK);
  assert_int_equal(count, HOOK_WORDS_MAX);
  assert_null(words[HOOK_WORDS_MAX]);
  free(words);

  strcat(text, " a");
  expect_rejected(text, "more than 64 words");
}

static void split_rejects_bad_values(void **state)
{
  (void)state;
  expect_rejected("", "is empty");
  expect_rejected(" \t ", "is empty");
  expect_rejected("hook.sh --flag", "not 'hook.sh'");
  expect_rejected("./hook.sh", "absolute path");
  expect_rejected("''", "absolute path");
  expect_rejected("/bin/hook 'open", "' quote that is not closed");
  expect_rejected("/bin/hook \"open 'inner'", "\" quote that is not closed");
}

static void retry_delay_doubles_to_limit(void **state)
{
  (void)state;
  assert_int_equal(hook_retry_delay(0), 0);
  assert_int_equal(hook_retry_delay(1), 0);
  assert_int_equal(hook_retry_delay(2), 10);
  assert_int_equal(hook_retry_delay(3), 20);
  assert_int_equal(hook_retry_delay(4), 40);
  assert_int_equal(hook_retry_delay(10), 2560);
  assert_int_equal(hook_retry_delay(11), 3600);
  assert_int_equal(hook_retry_delay(12), 3600);
  assert_int_equal(hook_retry_delay(UINT32_MAX), 3600);
}

static void pending_only_for_new_outputs(void **state)
{
  struct config config = {0};
  struct manifest_record record = {0};
  (void)state;

  record.state = MANIFEST_DELIVERED;
  record.output = "a.xml.0123456789abcdef.json";
  assert_false(hook_is_pending(&config, &record));

  config.hook_exec = "/bin/hook";
  assert_true(hook_is_pending(&config, &record));

  /* Done, a duplicate without an output, and other states. */
  record.hook_done = true;
  assert_false(hook_is_pending(&config, &record));
  record.hook_done = false;
  record.output = NULL;
  assert_false(hook_is_pending(&config, &record));
  record.output = "a.xml.0123456789abcdef.json";
  record.state = MANIFEST_ARCHIVED;
  assert_false(hook_is_pending(&config, &record));
  record.state = MANIFEST_DOWNLOADED;
  assert_false(hook_is_pending(&config, &record));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(split_program_only),
      cmocka_unit_test(split_blanks_between_words),
      cmocka_unit_test(split_quotes_keep_spaces),
      cmocka_unit_test(split_other_quote_is_literal),
      cmocka_unit_test(split_adjacent_parts_join),
      cmocka_unit_test(split_empty_quotes_are_words),
      cmocka_unit_test(split_backslash_is_literal),
      cmocka_unit_test(split_word_limit),
      cmocka_unit_test(split_rejects_bad_values),
      cmocka_unit_test(retry_delay_doubles_to_limit),
      cmocka_unit_test(pending_only_for_new_outputs),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
