/* libFuzzer harness for export_parse_xml(). Every annotation object must
 * have the documented keys in the documented order and must serialize to
 * JSON that parses back to the same value. Built by tests/fuzz/run.sh. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

/* The keys of an annotation object, in output order (docs/formats.md). */
static const char *const annotation_keys[] = {
    "id",          "url",       "status",       "arrived_at",
    "exported_at", "file_name", "document_url", "modifier",
    "automated",   "fields",    "tables",       "metadata",
};

#define KEY_COUNT (sizeof(annotation_keys) / sizeof(annotation_keys[0]))

static enum ag_code on_begin(void *ctx, const char *list_name,
                             struct ag_error *err)
{
  (void)err;
  return fuzz_check_begin(ctx, list_name);
}

static void check_types(json_t *item)
{
  json_t *id = json_object_get(item, "id");
  if (!json_is_integer(id) && !json_is_string(id) && !json_is_null(id))
    fuzz_fail("id is neither integer, string nor null", NULL);
  if (json_is_integer(id) && json_integer_value(id) < 0)
    fuzz_fail("id is a negative integer", NULL);
  if (!json_is_boolean(json_object_get(item, "automated")))
    fuzz_fail("automated is not a boolean", NULL);

  static const char *const objects[] = {"fields", "tables", "metadata"};
  for (size_t i = 0; i < 3; i++) {
    if (!json_is_object(json_object_get(item, objects[i])))
      fuzz_fail("fields, tables or metadata is not an object", NULL);
  }

  const char *key;
  json_t *rows;
  json_object_foreach(json_object_get(item, "tables"), key, rows)
  {
    if (!json_is_array(rows))
      fuzz_fail("a table is not an array", NULL);
  }
}

static enum ag_code on_item(void *ctx, json_t *item, struct ag_error *err)
{
  struct fuzz_sink *state = ctx;
  size_t index = 0;
  const char *key;
  json_t *value;

  (void)err;
  if (state->begin_calls != 1)
    fuzz_fail("item before begin()", NULL);
  if (!json_is_object(item) || json_object_size(item) != KEY_COUNT)
    fuzz_fail("annotation is not an object with 12 keys", NULL);
  json_object_foreach(item, key, value)
  {
    if (strcmp(key, annotation_keys[index++]) != 0)
      fuzz_fail("annotation keys are not in the documented order", NULL);
  }
  check_types(item);
  fuzz_check_serializes(item);
  state->items++;
  return AG_OK;
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
  struct fuzz_sink state = {.lists = {"annotations"}, .list_count = 1};
  struct export_sink sink = {.begin = on_begin, .item = on_item, .ctx = &state};
  struct ag_error err;

  ag_error_clear(&err);
  const char *path = fuzz_write_input(data, size);
  enum ag_code code = export_parse_xml(path, &sink, &err);
  fuzz_check_result(&state, code, &err);
  return 0;
}
