/* Helpers shared by the cmocka test programs; see test_support.h. */
#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef _WIN32
#include <direct.h>

/* The POSIX functions below that the mingw-w64 C runtime lacks. Windows
 * has no symbolic links in the test folders, so lstat() is stat(). */
#define lstat stat

static char *mkdtemp(char *template)
{
  if (_mktemp_s(template, strlen(template) + 1) != 0)
    return NULL;
  return _mkdir(template) == 0 ? template : NULL;
}
#endif

/* Return $TMPDIR, or /tmp when it is unset or empty ($TEMP on Windows). */
static const char *temp_root(void)
{
  const char *tmp = getenv("TMPDIR");

#ifdef _WIN32
  if (tmp == NULL || tmp[0] == '\0')
    tmp = getenv("TEMP");
#endif
  return tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp";
}

/* ---- Text and paths ---- */

void format_text(char *out, size_t size, const char *format, ...)
{
  va_list args;

  va_start(args, format);
  int len = vsnprintf(out, size, format, args);
  va_end(args);
  if (len < 0 || (size_t)len >= size)
    fail_msg("text does not fit in %zu bytes: %s", size, out);
}

void join_path(char *out, size_t size, const char *dir, const char *name)
{
  format_text(out, size, "%s/%s", dir, name);
}

/* ---- Folders ---- */

int make_temp_dir(const char *prefix, char *out, size_t size)
{
  int len = snprintf(out, size, "%s/%s.XXXXXX", temp_root(), prefix);

  if (len < 0 || (size_t)len >= size)
    return -1;
  return mkdtemp(out) != NULL ? 0 : -1;
}

int remove_tree(const char *path)
{
  struct stat info;

  if (lstat(path, &info) != 0)
    return -1;
  if (!S_ISDIR(info.st_mode))
    return unlink(path) == 0 ? 0 : -1;

  int result = 0;
  DIR *dir = opendir(path);
  struct dirent *entry;

  if (dir == NULL)
    result = -1;
  while (dir != NULL && (entry = readdir(dir)) != NULL) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
      continue;

    size_t child_size = strlen(path) + strlen(entry->d_name) + 2;
    char *child = malloc(child_size);

    if (child == NULL) {
      result = -1;
      continue;
    }
    snprintf(child, child_size, "%s/%s", path, entry->d_name);
    if (remove_tree(child) != 0)
      result = -1;
    free(child);
  }
  if (dir != NULL)
    closedir(dir);
  if (rmdir(path) != 0)
    result = -1;
  return result;
}

size_t list_dir(const char *dir, char names[][ENTRY_NAME_SIZE],
                size_t name_count)
{
  DIR *handle = opendir(dir);
  struct dirent *entry;
  size_t count = 0;

  if (handle == NULL)
    fail_msg("failed to open folder %s: %s", dir, strerror(errno));
  while ((entry = readdir(handle)) != NULL) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
      continue;
    if (count < name_count)
      snprintf(names[count], ENTRY_NAME_SIZE, "%s", entry->d_name);
    count++;
  }
  closedir(handle);
  return count;
}

size_t count_dir_entries(const char *dir)
{
  return list_dir(dir, NULL, 0);
}

/* ---- Fixture for tests that work in a temporary folder ---- */

int folder_fixture_setup(void **state)
{
  struct folder_fixture *fixture = calloc(1, sizeof(*fixture));

  if (fixture == NULL)
    return -1;
  if (make_temp_dir("test", fixture->dir, sizeof(fixture->dir)) != 0) {
    free(fixture);
    return -1;
  }
  *state = fixture;
  return 0;
}

int folder_fixture_teardown(void **state)
{
  struct folder_fixture *fixture = *state;
  int result = remove_tree(fixture->dir);

  free(fixture);
  return result;
}

/* Room for a manifest folder's path. */
#define MANIFEST_DIR_SIZE 4096

int manifest_dir_setup(void **state)
{
  char *dir = malloc(MANIFEST_DIR_SIZE);

  if (dir == NULL)
    return -1;
  if (make_temp_dir("test_manifest", dir, MANIFEST_DIR_SIZE) != 0) {
    free(dir);
    return -1;
  }
  *state = dir;
  return 0;
}

int manifest_dir_teardown(void **state)
{
  char *dir = *state;
  int rc = remove_tree(dir);

  free(dir);
  return rc;
}

struct manifest *manifest_open_ok(const char *dir)
{
  struct ag_error err = {0};
  struct manifest *manifest = NULL;
  enum ag_code code = manifest_open(dir, &manifest, &err);

  if (code != AG_OK)
    print_error("manifest_open: %s\n", err.message);
  assert_int_equal(code, AG_OK);
  return manifest;
}

/* ---- Files ---- */

void write_file(const char *path, const void *data, size_t len)
{
  FILE *file = fopen(path, "wb");

  if (file == NULL)
    fail_msg("failed to create %s: %s", path, strerror(errno));
  assert_int_equal(fwrite(data, 1, len, file), len);
  assert_int_equal(fclose(file), 0);
}

void write_text_file(const char *path, const char *text, mode_t mode)
{
  write_file(path, text, strlen(text));
  assert_int_equal(chmod(path, mode), 0);
}

char *read_file(const char *path, size_t *len)
{
  FILE *file = fopen(path, "rb");

  if (file == NULL)
    fail_msg("failed to open %s: %s", path, strerror(errno));

  size_t size = 4096;
  size_t used = 0;
  char *text = malloc(size);

  assert_non_null(text);

  /* Grow the buffer until a read stops short of filling it, which leaves
   * room for the NUL. */
  for (;;) {
    used += fread(text + used, 1, size - 1 - used, file);
    if (used < size - 1)
      break;
    size *= 2;
    char *grown = realloc(text, size);
    assert_non_null(grown);
    text = grown;
  }
  assert_int_equal(ferror(file), 0);
  fclose(file);

  text[used] = '\0';
  if (len != NULL)
    *len = used;
  return text;
}

void check_file_content(const char *path, const char *expected,
                        const char *file, int line)
{
  size_t len = 0;
  char *actual = read_file(path, &len);
  bool equal = len == strlen(expected) && memcmp(actual, expected, len) == 0;

  if (!equal)
    print_error("%s contains \"%s\", expected \"%s\"\n", path, actual,
                expected);
  free(actual);
  if (!equal)
    _fail(file, line);
}

/* ---- Strings and JSON ---- */

void check_contains(const char *text, const char *needle, bool expected,
                    const char *file, int line)
{
  if ((strstr(text, needle) != NULL) == expected)
    return;
  print_error("%s \"%s\" in \"%s\"\n", expected ? "expected" : "unexpected",
              needle, text);
  _fail(file, line);
}

const char *text_of(json_t *object, const char *key)
{
  json_t *value = json_object_get(object, key);

  if (!json_is_string(value))
    fail_msg("\"%s\" is not a string", key);
  return json_string_value(value);
}

void check_keys(json_t *object, const char *const *keys, size_t count,
                const char *file, int line)
{
  size_t i = 0;
  const char *key;
  json_t *value;

  json_object_foreach(object, key, value)
  {
    (void)value;
    if (i >= count) {
      print_error("unexpected key \"%s\" after the %zu expected keys\n", key,
                  count);
      _fail(file, line);
      return;
    }
    if (strcmp(key, keys[i]) != 0) {
      print_error("key %zu is \"%s\", expected \"%s\"\n", i, key, keys[i]);
      _fail(file, line);
      return;
    }
    i++;
  }
  if (i != count) {
    print_error("found %zu keys, expected %zu\n", i, count);
    _fail(file, line);
  }
}

/* ---- Export parsing ---- */

void collector_reset(struct collector *collector, int fail_after)
{
  json_decref(collector->items);
  memset(collector, 0, sizeof(*collector));
  collector->items = json_array();
  assert_non_null(collector->items);
  collector->fail_after = fail_after;
}

enum ag_code collect_begin(void *ctx, const char *list_name,
                           struct ag_error *err)
{
  struct collector *collector = ctx;

  (void)err;
  collector->begin_calls++;
  snprintf(collector->list_name, sizeof(collector->list_name), "%s", list_name);
  return AG_OK;
}

enum ag_code collect_item(void *ctx, json_t *item, struct ag_error *err)
{
  struct collector *collector = ctx;

  if (collector->fail_after >= 0 &&
      json_array_size(collector->items) >= (size_t)collector->fail_after)
    return ag_error_set(err, AG_ELOCAL, "sink is full");
  json_array_append(collector->items, item);
  return AG_OK;
}

void parse_export_file(export_parser parse, const char *path, int fail_after,
                       struct parse_result *result)
{
  struct export_sink sink = {collect_begin, collect_item, NULL};
  FILE *capture = tmpfile();
  int saved_stderr = dup(STDERR_FILENO);

  memset(result, 0, sizeof(*result));
  collector_reset(&result->collector, fail_after);
  sink.ctx = &result->collector;
  assert_non_null(capture);
  assert_true(saved_stderr >= 0);

  fflush(stderr);
  assert_true(dup2(fileno(capture), STDERR_FILENO) >= 0);
  result->code = parse(path, &sink, &result->err);
  fflush(stderr);
  assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
  close(saved_stderr);

  fseek(capture, 0, SEEK_END);
  result->stderr_bytes = ftell(capture);
  fclose(capture);
}

void parse_export_bytes(export_parser parse, const void *bytes, size_t len,
                        struct parse_result *result)
{
  char path[4096];

  format_text(path, sizeof(path), "%s/test_export.XXXXXX", temp_root());
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, bytes, len), (ssize_t)len);
  close(fd);
  parse_export_file(parse, path, -1, result);
  unlink(path);
}

void parse_result_release(struct parse_result *result)
{
  json_decref(result->collector.items);
  result->collector.items = NULL;
}

json_t *result_item(const struct parse_result *result, size_t index)
{
  json_t *item = json_array_get(result->collector.items, index);

  if (item == NULL)
    fail_msg("no item %zu: the parse collected %zu", index,
             json_array_size(result->collector.items));
  return item;
}

size_t result_item_count(const struct parse_result *result)
{
  return json_array_size(result->collector.items);
}

void check_parse_failure(const struct parse_result *result, enum ag_code code,
                         const char *message_part, const char *case_name,
                         const char *file, int line)
{
  const char *prefix = case_name != NULL ? case_name : "parse";

  if (result->code != code) {
    print_error("%s: returned %d (%s), expected %d (%s), message \"%s\"\n",
                prefix, result->code, ag_code_name(result->code), code,
                ag_code_name(code), result->err.message);
    _fail(file, line);
    return;
  }
  if (result->err.code != code) {
    print_error("%s: stored %d (%s), expected %d (%s)\n", prefix,
                result->err.code, ag_code_name(result->err.code), code,
                ag_code_name(code));
    _fail(file, line);
    return;
  }
  if (strstr(result->err.message, message_part) == NULL) {
    print_error("%s: message \"%s\" lacks \"%s\"\n", prefix,
                result->err.message, message_part);
    _fail(file, line);
    return;
  }
  if (result->stderr_bytes != 0) {
    print_error("%s: %ld bytes written to stderr, expected none\n", prefix,
                result->stderr_bytes);
    _fail(file, line);
  }
}

void check_parse_failures(export_parser parse,
                          const struct parse_failure_case *cases, size_t count,
                          enum ag_code code, const char *file, int line)
{
  for (size_t i = 0; i < count; i++) {
    struct parse_result result;

    parse_export_bytes(parse, cases[i].text, strlen(cases[i].text), &result);
    check_parse_failure(&result, code, cases[i].message_part, cases[i].name,
                        file, line);
    parse_result_release(&result);
  }
}
