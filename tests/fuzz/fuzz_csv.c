/* libFuzzer harness for export_parse_csv(). The first input byte picks
 * the options (delimiter, encoding, grouping) and the rest is the file.
 * Every record must be an object of strings with the same keys in the same
 * order as the first record, every grouped document an object, and each
 * item must serialize to JSON that parses back to the same value. Built by
 * tests/fuzz/run.sh. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static enum ag_code on_begin(void *ctx, const char *list_name,
                             struct ag_error *err)
{
  (void)err;
  return fuzz_check_begin(ctx, list_name);
}

/* Return the keys of record as an array, in order. */
static json_t *record_keys(json_t *record)
{
  json_t *keys = json_array();
  const char *key;
  json_t *value;

  if (keys == NULL)
    fuzz_fail("out of memory", NULL);
  json_object_foreach(record, key, value)
  {
    if (!json_is_string(value))
      fuzz_fail("a record value is not a string", NULL);
    if (json_array_append_new(keys, json_string(key)) != 0)
      fuzz_fail("out of memory", NULL);
  }
  return keys;
}

static void check_record(struct fuzz_sink *state, json_t *item)
{
  json_t *keys = record_keys(item);

  if (state->first_keys == NULL) {
    state->first_keys = keys;
    return;
  }
  if (!json_equal(keys, state->first_keys))
    fuzz_fail("records differ in their keys or key order", NULL);
  json_decref(keys);
}

static enum ag_code on_item(void *ctx, json_t *item, struct ag_error *err)
{
  struct fuzz_sink *state = ctx;

  (void)err;
  if (state->begin_calls == 0)
    fuzz_fail("item before begin()", NULL);
  if (!json_is_object(item))
    fuzz_fail("item is not an object", NULL);
  /* Items of the first list are records, of the second grouped documents. */
  if (state->begin_calls == 1)
    check_record(state, item);
  fuzz_check_serializes(item);
  state->items++;
  return AG_OK;
}

/* Choose the parser options from the bits of selector. */
static void choose_options(uint8_t selector, struct export_csv_options *options)
{
  static const enum csv_delimiter delimiters[] = {
      CSV_DELIMITER_COMMA, CSV_DELIMITER_SEMICOLON, CSV_DELIMITER_TAB,
      CSV_DELIMITER_AUTO};
  static const char *const encodings[] = {NULL, "utf-8", "windows-1250",
                                          "iso-8859-1"};
  static const char *const group_columns[] = {NULL, "meta_url", "a", NULL};

  options->delimiter = delimiters[selector & 3];
  options->encoding = encodings[(selector >> 2) & 3];
  options->group_by = group_columns[(selector >> 4) & 3];
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  fuzz_open_input();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct export_csv_options options;
  struct fuzz_sink state = {.lists = {"records", "documents"}};
  struct export_sink sink = {.begin = on_begin, .item = on_item, .ctx = &state};
  struct ag_error err;

  if (size == 0)
    return 0;
  choose_options(data[0], &options);
  state.list_count = options.group_by != NULL ? 2 : 1;

  ag_error_clear(&err);
  const char *path = fuzz_write_input(data + 1, size - 1);
  enum ag_code code = export_parse_csv(path, &options, &sink, &err);
  fuzz_check_result(&state, code, &err);
  json_decref(state.first_keys);
  return 0;
}
