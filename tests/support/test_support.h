/* Helpers shared by the cmocka test programs in tests/unit and
 * tests/integration: temporary folders, whole-file reads and writes,
 * asserts that report the caller's line, and a sink that collects what an
 * export parser produces.
 *
 * Every helper fails the running test on an error, except make_temp_dir(),
 * remove_tree() and the folder fixture functions. cmocka setup and teardown
 * functions call those, so they return -1 instead. */
#ifndef TEST_SUPPORT_H
#define TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "agent/error.h"
#include "agent/export.h"
#include "agent/manifest.h"

/* ---- Text and paths ---- */

/* Format into out as snprintf() does, and fail the test when the text does
 * not fit in size bytes. */
void format_text(char *out, size_t size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Store "dir/name" in out, and fail the test when it does not fit. */
void join_path(char *out, size_t size, const char *dir, const char *name);

/* ---- Folders ---- */

/* Size of one name that list_dir() stores, with its NUL. */
#define ENTRY_NAME_SIZE 256

/* Create a new folder "PREFIX.XXXXXX" with mkdtemp() (mode 0700) below
 * $TMPDIR, or below /tmp when TMPDIR is unset or empty, and store its path
 * in out. Returns 0, or -1 when the path does not fit in size or mkdtemp()
 * fails. */
int make_temp_dir(const char *prefix, char *out, size_t size);

/* Remove path and, when it is a folder, everything below it. Symbolic links
 * are removed, not followed. Returns 0 when all of it is gone, or -1 when
 * path is missing or an entry could not be removed. The entries that can
 * be removed are removed in either case. */
int remove_tree(const char *path);

/* Store the names in dir, except "." and "..", and return how many there
 * are. Stores at most name_count names, each cut to ENTRY_NAME_SIZE - 1
 * bytes. names may be NULL when name_count is 0. */
size_t list_dir(const char *dir, char names[][ENTRY_NAME_SIZE],
                size_t name_count);

/* Return the number of entries in dir, except "." and "..". */
size_t count_dir_entries(const char *dir);

/* ---- Fixture for tests that work in a temporary folder ---- */

/* The state of one test: its own temporary folder, and an error for the
 * calls under test. */
struct folder_fixture {
  char dir[256];
  struct ag_error err;
};

/* A cmocka setup function: store a new folder_fixture, whose folder is a
 * fresh "test.XXXXXX" from make_temp_dir(), in *state. Returns -1 when
 * either cannot be made. */
int folder_fixture_setup(void **state);

/* A cmocka teardown function: remove the fixture's folder tree and free the
 * fixture. Returns -1, which fails the test, when the tree could not be
 * removed. */
int folder_fixture_teardown(void **state);

/* A cmocka setup function: store a fresh temporary folder (a malloc'd
 * path from make_temp_dir()) in *state, for tests that open a manifest
 * there. Returns -1 when it cannot be made. */
int manifest_dir_setup(void **state);

/* A cmocka teardown function: remove the folder of manifest_dir_setup()
 * and free its path. Returns -1 when the tree could not be removed. */
int manifest_dir_teardown(void **state);

/* Open or create the manifest in dir and fail the test, printing the
 * error, unless that succeeds. */
struct manifest *manifest_open_ok(const char *dir);

/* ---- Files ---- */

/* Create or truncate path and write len bytes of data to it. The mode is
 * what fopen() gives a new file under the process umask. */
void write_file(const char *path, const void *data, size_t len);

/* Create or truncate path, write text without its NUL, and chmod() the
 * file to mode. */
void write_text_file(const char *path, const char *text, mode_t mode);

/* Read the whole file into a new NUL-terminated buffer and store its length
 * in len unless len is NULL. The caller frees the buffer. */
char *read_file(const char *path, size_t *len);

/* Fail at the caller's line unless the file at path contains exactly the
 * string expected. */
#define assert_file_content(path, expected)                                    \
  check_file_content(path, expected, __FILE__, __LINE__)
void check_file_content(const char *path, const char *expected,
                        const char *file, int line);

/* ---- Strings and JSON ---- */

/* Fail at the caller's line, with both strings shown, unless needle occurs
 * in text (assert_contains) or does not occur (assert_not_contains). */
#define assert_contains(text, needle)                                          \
  check_contains(text, needle, true, __FILE__, __LINE__)
#define assert_not_contains(text, needle)                                      \
  check_contains(text, needle, false, __FILE__, __LINE__)
void check_contains(const char *text, const char *needle, bool expected,
                    const char *file, int line);

/* Return the string at object[key], and fail the test if it is not one. */
const char *text_of(json_t *object, const char *key);

/* Fail at the caller's line unless the keys of object are exactly the
 * count strings in keys, in that order. */
#define assert_keys(object, keys, count)                                       \
  check_keys(object, keys, count, __FILE__, __LINE__)
void check_keys(json_t *object, const char *const *keys, size_t count,
                const char *file, int line);

/* ---- Export parsing ---- */

/* An export sink that appends every item to a JSON array. */
struct collector {
  int begin_calls;
  char list_name[32];
  json_t *items;
  int fail_after; /* item calls to accept before returning AG_ELOCAL, or -1 */
};

/* Release the collected items, if any, and start again with no items and
 * no begin() calls. The collector must be zeroed or reset before. */
void collector_reset(struct collector *collector, int fail_after);

/* The begin() and item() callbacks of the sink. ctx is a collector. */
enum ag_code collect_begin(void *ctx, const char *list_name,
                           struct ag_error *err);
enum ag_code collect_item(void *ctx, json_t *item, struct ag_error *err);

/* The signature of export_parse_xml() and export_parse_csv(). */
typedef enum ag_code (*export_parser)(const char *path,
                                      const struct export_sink *sink,
                                      struct ag_error *err);

/* The outcome of one parse: its code, its message and what the sink got. */
struct parse_result {
  enum ag_code code;
  struct ag_error err;
  struct collector collector;
  long stderr_bytes; /* bytes written to stderr during the parse */
};

/* Parse path into a fresh result. stderr is redirected to a temporary file
 * during the parse, so that a test can check that the parser's libraries
 * printed nothing. fail_after is as in struct collector. */
void parse_export_file(export_parser parse, const char *path, int fail_after,
                       struct parse_result *result);

/* Write len bytes to a new temporary file, parse it with parse_export_file()
 * and remove the file. */
void parse_export_bytes(export_parser parse, const void *bytes, size_t len,
                        struct parse_result *result);

/* Release the items that the parse collected. */
void parse_result_release(struct parse_result *result);

/* Return the item at index, and fail the test when the parse collected
 * fewer items. */
json_t *result_item(const struct parse_result *result, size_t index);

/* Return the number of items that the parse collected. */
size_t result_item_count(const struct parse_result *result);

/* Fail at the caller's line unless the parse returned code, stored code
 * with a message that contains message_part, and printed nothing to
 * stderr. */
#define assert_parse_failure(result, code, message_part)                       \
  check_parse_failure(result, code, message_part, NULL, __FILE__, __LINE__)

/* The same, and name the case in the failure message unless case_name is
 * NULL. */
void check_parse_failure(const struct parse_result *result, enum ag_code code,
                         const char *message_part, const char *case_name,
                         const char *file, int line);

/* One input that a parser must reject. */
struct parse_failure_case {
  const char *name;         /* shown when the case fails */
  const char *text;         /* the whole file, without its NUL */
  const char *message_part; /* expected in the error message */
};

/* Parse the text of each case in the array cases and check it as
 * assert_parse_failure() does, with the case's name in any failure. */
#define assert_parse_failures(parse, cases, code)                              \
  check_parse_failures(parse, cases, sizeof(cases) / sizeof((cases)[0]), code, \
                       __FILE__, __LINE__)
void check_parse_failures(export_parser parse,
                          const struct parse_failure_case *cases, size_t count,
                          enum ag_code code, const char *file, int line);

#endif
