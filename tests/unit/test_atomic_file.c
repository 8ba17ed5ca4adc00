/* Unit tests for atomic_file.c: a published file appears whole under its
 * name, a failed or abandoned one leaves nothing behind, and a kept
 * temporary file stays for crash recovery. */
#include "agent/atomic_file.h"
#include "agent/platform.h"

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PATH_SIZE 512

static void publish_writes_file(void **state)
{
  struct folder_fixture *f = *state;
  struct atomic_file *file = NULL;
  char path[PATH_SIZE];
  struct stat info;
  size_t len = 0;

  assert_int_equal(atomic_file_create(f->dir, ".incoming",
                                      ATOMIC_FILE_GROUP_READ, &file, &f->err),
                   AG_OK);
  assert_true(strncmp(atomic_file_temp_name(file), ".incoming.", 10) == 0);
  fputs("{\"a\":1}\n", atomic_file_stream(file));
  assert_int_equal(count_dir_entries(f->dir), 1);
  assert_int_equal(atomic_file_publish(file, "doc.json", &f->err), AG_OK);
  atomic_file_free(file);

  join_path(path, sizeof(path), f->dir, "doc.json");
  char *text = read_file(path, &len);
  assert_string_equal(text, "{\"a\":1}\n");
  free(text);
  assert_int_equal(stat(path, &info), 0);
#ifndef _WIN32
  /* Windows has no group mode: the folder's inherited ACL applies. */
  assert_int_equal(info.st_mode & 0777, 0640);
#endif
  assert_int_equal(count_dir_entries(f->dir), 1);
}

static void free_removes_temp(void **state)
{
  struct folder_fixture *f = *state;
  struct atomic_file *file = NULL;

  assert_int_equal(atomic_file_create(f->dir, "request", ATOMIC_FILE_PRIVATE,
                                      &file, &f->err),
                   AG_OK);
  fputs("partial", atomic_file_stream(file));
  assert_int_equal(atomic_file_prepare(file, &f->err), AG_OK);
  assert_null(atomic_file_stream(file));
  atomic_file_free(file);
  assert_int_equal(count_dir_entries(f->dir), 0);
}

static void kept_temp_survives(void **state)
{
  struct folder_fixture *f = *state;
  struct atomic_file *file = NULL;
  char path[PATH_SIZE];
  char name[ENTRY_NAME_SIZE];
  size_t len = 0;

  assert_int_equal(atomic_file_create(f->dir, ".incoming",
                                      ATOMIC_FILE_GROUP_READ, &file, &f->err),
                   AG_OK);
  fputs("whole", atomic_file_stream(file));
  assert_int_equal(atomic_file_prepare(file, &f->err), AG_OK);
  snprintf(name, sizeof(name), "%s", atomic_file_temp_name(file));
  atomic_file_keep_temp(file);
  atomic_file_free(file);

  /* The kept file is complete, so crash recovery can rename it. */
  join_path(path, sizeof(path), f->dir, name);
  char *text = read_file(path, &len);
  assert_string_equal(text, "whole");
  free(text);
}

/* atomic_file_sync() closes the temporary file with its content, and the
 * unsynced publication that follows renames it without preparing it
 * again. */
static void sync_then_publish_unsynced(void **state)
{
  struct folder_fixture *f = *state;
  struct atomic_file *file = NULL;
  char path[PATH_SIZE];
  char name[ENTRY_NAME_SIZE];
  size_t len = 0;

  assert_int_equal(atomic_file_create(f->dir, ".incoming",
                                      ATOMIC_FILE_GROUP_READ, &file, &f->err),
                   AG_OK);
  fputs("synced", atomic_file_stream(file));
  assert_int_equal(atomic_file_sync(file, &f->err), AG_OK);
  assert_null(atomic_file_stream(file));
  assert_int_equal(atomic_file_sync(file, &f->err), AG_OK);
  snprintf(name, sizeof(name), "%s", atomic_file_temp_name(file));
  join_path(path, sizeof(path), f->dir, name);
  char *text = read_file(path, &len);
  assert_string_equal(text, "synced");
  free(text);

  assert_int_equal(atomic_file_publish_unsynced(file, "doc.json", &f->err),
                   AG_OK);
  atomic_file_free(file);
  join_path(path, sizeof(path), f->dir, "doc.json");
  text = read_file(path, &len);
  assert_string_equal(text, "synced");
  free(text);
  assert_int_equal(count_dir_entries(f->dir), 1);
}

static void publish_fails_into_missing(void **state)
{
  struct folder_fixture *f = *state;
  struct atomic_file *file = NULL;

  assert_int_equal(atomic_file_create(f->dir, ".incoming",
                                      ATOMIC_FILE_GROUP_READ, &file, &f->err),
                   AG_OK);
  fputs("x", atomic_file_stream(file));
  assert_int_equal(atomic_file_publish(file, "no/such/folder.json", &f->err),
                   AG_ELOCAL);
  assert_non_null(strstr(f->err.message, "cannot rename"));
  atomic_file_free(file);
  assert_int_equal(count_dir_entries(f->dir), 0);
}

/* Create count files in f->dir, each containing its number. */
static void create_group(struct folder_fixture *f, struct atomic_file **files,
                         size_t count)
{
  for (size_t i = 0; i < count; i++) {
    assert_int_equal(atomic_file_create(f->dir, ".group",
                                        ATOMIC_FILE_GROUP_READ, &files[i],
                                        &f->err),
                     AG_OK);
    fprintf(atomic_file_stream(files[i]), "%zu\n", i);
    assert_int_equal(atomic_file_flush(files[i], &f->err), AG_OK);
  }
}

/* A group large enough for one sync of the file system is closed and
 * synced as a whole, and each file then publishes its content. */
static void sync_group_then_publish(void **state)
{
  struct folder_fixture *f = *state;
  struct atomic_file *files[ATOMIC_FILE_GROUP_MIN + 2];
  const size_t count = sizeof(files) / sizeof(files[0]);
  char name[32], path[PATH_SIZE], expected[32];
  struct plat_file_system *fs = NULL;
  bool dir_synced = false;
  size_t len = 0;

  assert_int_equal(plat_file_system_open(f->dir, &fs, &f->err), AG_OK);
  create_group(f, files, count);
  assert_int_equal(
      atomic_file_sync_group(files, count, f->dir, fs, &dir_synced, &f->err),
      AG_OK);
  /* Windows has no sync of a whole file system, so each file is synced. */
  assert_int_equal(dir_synced, fs != NULL);
  plat_file_system_close(fs);
  for (size_t i = 0; i < count; i++) {
    assert_null(atomic_file_stream(files[i]));
    snprintf(name, sizeof(name), "doc%zu.json", i);
    assert_int_equal(atomic_file_publish_unsynced(files[i], name, &f->err),
                     AG_OK);
    atomic_file_free(files[i]);

    join_path(path, sizeof(path), f->dir, name);
    char *text = read_file(path, &len);
    snprintf(expected, sizeof(expected), "%zu\n", i);
    assert_string_equal(text, expected);
    free(text);
  }
  assert_int_equal(count_dir_entries(f->dir), count);
}

/* A write error that one file's stream kept fails the group's sync and
 * names that file. */
static void sync_group_reports_write_error(void **state)
{
  struct folder_fixture *f = *state;
  struct atomic_file *files[ATOMIC_FILE_GROUP_MIN];
  const size_t count = sizeof(files) / sizeof(files[0]);
  struct plat_file_system *fs = NULL;
  bool dir_synced = true;

  assert_int_equal(plat_file_system_open(f->dir, &fs, &f->err), AG_OK);
  create_group(f, files, count);
  FILE *broken = atomic_file_stream(files[3]);
  (void)fgetc(broken); /* reading a write-only stream sets its error flag */
  if (!ferror(broken)) {
    for (size_t i = 0; i < count; i++)
      atomic_file_free(files[i]);
    plat_file_system_close(fs);
    skip();
  }
  assert_int_equal(
      atomic_file_sync_group(files, count, f->dir, fs, &dir_synced, &f->err),
      AG_ELOCAL);
  plat_file_system_close(fs);
  assert_false(dir_synced);
  assert_non_null(strstr(f->err.message, atomic_file_temp_name(files[3])));
  for (size_t i = 0; i < count; i++)
    atomic_file_free(files[i]);
  assert_int_equal(count_dir_entries(f->dir), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(publish_writes_file, folder_fixture_setup,
                                      folder_fixture_teardown),
      cmocka_unit_test_setup_teardown(free_removes_temp, folder_fixture_setup,
                                      folder_fixture_teardown),
      cmocka_unit_test_setup_teardown(kept_temp_survives, folder_fixture_setup,
                                      folder_fixture_teardown),
      cmocka_unit_test_setup_teardown(sync_then_publish_unsynced,
                                      folder_fixture_setup,
                                      folder_fixture_teardown),
      cmocka_unit_test_setup_teardown(sync_group_then_publish,
                                      folder_fixture_setup,
                                      folder_fixture_teardown),
      cmocka_unit_test_setup_teardown(sync_group_reports_write_error,
                                      folder_fixture_setup,
                                      folder_fixture_teardown),
      cmocka_unit_test_setup_teardown(publish_fails_into_missing,
                                      folder_fixture_setup,
                                      folder_fixture_teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
