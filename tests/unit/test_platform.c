/* Unit tests for the POSIX platform layer and rpath.c: folders, temporary
 * files, durable replace, the state lock, secret files, wildcard matching,
 * clocks and remote path arithmetic. Every test that touches the file
 * system works in a fresh temporary folder. */
#include "agent/platform.h"

#include "agent/rpath.h"

#include "test_support.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PATH_SIZE 512

/* Store dir/name in out. */
static void path_in(const struct folder_fixture *f, const char *name, char *out,
                    size_t out_size)
{
  join_path(out, out_size, f->dir, name);
}

static void test_mkdirs_nested(void **state)
{
  struct folder_fixture *f = *state;
  char path[PATH_SIZE];
  struct stat info;

  path_in(f, "a/b/c", path, sizeof(path));
  assert_int_equal(plat_mkdirs(path, &f->err), AG_OK);
  assert_int_equal(stat(path, &info), 0);
  assert_true(S_ISDIR(info.st_mode));
  assert_int_equal(info.st_mode & 0777, 0750);

  path_in(f, "a", path, sizeof(path));
  assert_int_equal(stat(path, &info), 0);
  assert_int_equal(info.st_mode & 0777, 0750);
}

static void test_mkdirs_existing(void **state)
{
  struct folder_fixture *f = *state;
  char path[PATH_SIZE];

  path_in(f, "a/b", path, sizeof(path));
  assert_int_equal(plat_mkdirs(path, &f->err), AG_OK);
  assert_int_equal(plat_mkdirs(path, &f->err), AG_OK);
  assert_int_equal(plat_mkdirs(f->dir, &f->err), AG_OK);
  assert_int_equal(f->err.code, AG_OK);
}

static void test_mkdirs_trailing_slash(void **state)
{
  struct folder_fixture *f = *state;
  char path[PATH_SIZE];
  struct stat info;

  path_in(f, "a/b/", path, sizeof(path));
  assert_int_equal(plat_mkdirs(path, &f->err), AG_OK);
  assert_int_equal(stat(path, &info), 0);
  assert_true(S_ISDIR(info.st_mode));
}

static void test_mkdirs_file_in_way(void **state)
{
  struct folder_fixture *f = *state;
  char file[PATH_SIZE];
  char path[PATH_SIZE];

  path_in(f, "file", file, sizeof(file));
  write_text_file(file, "x", 0600);
  path_in(f, "file/sub", path, sizeof(path));
  assert_int_equal(plat_mkdirs(path, &f->err), AG_ELOCAL);
  assert_contains(f->err.message, path);
  assert_contains(f->err.message, "Not a directory");
}

static void test_mkdirs_file_is_target(void **state)
{
  struct folder_fixture *f = *state;
  char file[PATH_SIZE];

  path_in(f, "file", file, sizeof(file));
  write_text_file(file, "x", 0600);
  assert_int_equal(plat_mkdirs(file, &f->err), AG_ELOCAL);
  assert_contains(f->err.message, file);
  assert_contains(f->err.message, "not a folder");
}

static void test_mkdirs_empty(void **state)
{
  struct folder_fixture *f = *state;

  assert_int_equal(plat_mkdirs("", &f->err), AG_ELOCAL);
  assert_contains(f->err.message, "path is empty");
}

static void test_mkdirs_root(void **state)
{
  struct folder_fixture *f = *state;

  assert_int_equal(plat_mkdirs("/", &f->err), AG_OK);
}

static void test_exists(void **state)
{
  struct folder_fixture *f = *state;
  char file[PATH_SIZE];
  char path[PATH_SIZE];

  path_in(f, "file", file, sizeof(file));
  write_text_file(file, "x", 0600);
  assert_int_equal(plat_exists(file), 1);
  assert_int_equal(plat_exists(f->dir), 1);
  path_in(f, "missing", path, sizeof(path));
  assert_int_equal(plat_exists(path), 0);
  path_in(f, "file/below", path, sizeof(path));
  assert_int_equal(plat_exists(path), -1);
}

static void test_temp_unique(void **state)
{
  struct folder_fixture *f = *state;
  FILE *first = NULL;
  FILE *second = NULL;
  char *first_path = NULL;
  char *second_path = NULL;
  char prefix[PATH_SIZE];
  struct stat info;

  assert_int_equal(
      plat_create_temp(f->dir, ".doc", &first, &first_path, &f->err), AG_OK);
  assert_int_equal(
      plat_create_temp(f->dir, ".doc", &second, &second_path, &f->err), AG_OK);
  assert_non_null(first);
  assert_non_null(second);
  assert_string_not_equal(first_path, second_path);
  assert_int_equal(count_dir_entries(f->dir), 2);

  path_in(f, ".doc.", prefix, sizeof(prefix));
  assert_memory_equal(first_path, prefix, strlen(prefix));
  assert_string_equal(first_path + strlen(first_path) - 4, ".tmp");
  assert_int_equal(stat(first_path, &info), 0);
  assert_true(S_ISREG(info.st_mode));
  assert_int_equal(info.st_mode & 0777, 0600);
  assert_int_equal(info.st_size, 0);

  fclose(first);
  fclose(second);
  free(first_path);
  free(second_path);
}

static void test_temp_missing_folder(void **state)
{
  struct folder_fixture *f = *state;
  char dir[PATH_SIZE];
  FILE *file = NULL;
  char *path = NULL;

  path_in(f, "missing", dir, sizeof(dir));
  assert_int_equal(plat_create_temp(dir, "x", &file, &path, &f->err),
                   AG_ELOCAL);
  assert_null(file);
  assert_null(path);
  assert_contains(f->err.message, dir);
}

static void test_sync_close(void **state)
{
  struct folder_fixture *f = *state;
  FILE *file = NULL;
  char *path = NULL;

  assert_int_equal(plat_create_temp(f->dir, "x", &file, &path, &f->err), AG_OK);
  assert_true(fputs("{\"a\":1}\n", file) >= 0);
  assert_int_equal(plat_sync_close(file, path, &f->err), AG_OK);
  assert_file_content(path, "{\"a\":1}\n");
  free(path);
}

static void test_replace_existing(void **state)
{
  struct folder_fixture *f = *state;
  char from[PATH_SIZE];
  char to[PATH_SIZE];

  path_in(f, "from", from, sizeof(from));
  path_in(f, "to", to, sizeof(to));
  write_text_file(from, "new", 0600);
  write_text_file(to, "old", 0600);
  assert_int_equal(plat_replace(from, to, &f->err), AG_OK);
  assert_file_content(to, "new");
  assert_int_equal(plat_exists(from), 0);
  assert_int_equal(count_dir_entries(f->dir), 1);
}

static void test_replace_new(void **state)
{
  struct folder_fixture *f = *state;
  char from[PATH_SIZE];
  char to[PATH_SIZE];

  path_in(f, "from", from, sizeof(from));
  path_in(f, "to", to, sizeof(to));
  write_text_file(from, "new", 0600);
  assert_int_equal(plat_replace(from, to, &f->err), AG_OK);
  assert_file_content(to, "new");
  assert_int_equal(plat_exists(from), 0);
}

static void test_replace_missing_source(void **state)
{
  struct folder_fixture *f = *state;
  char from[PATH_SIZE];
  char to[PATH_SIZE];

  path_in(f, "from", from, sizeof(from));
  path_in(f, "to", to, sizeof(to));
  assert_int_equal(plat_replace(from, to, &f->err), AG_ELOCAL);
  assert_contains(f->err.message, from);
  assert_contains(f->err.message, to);
}

static void test_remove(void **state)
{
  struct folder_fixture *f = *state;
  char path[PATH_SIZE];

  path_in(f, "file", path, sizeof(path));
  write_text_file(path, "x", 0600);
  plat_remove(path);
  assert_int_equal(plat_exists(path), 0);
  plat_remove(path);
  assert_int_equal(plat_exists(path), 0);
}

/* The outcome of plat_lock() in a child process. */
struct lock_result {
  enum ag_code code;
  char message[AG_ERROR_MESSAGE_MAX];
};

/* Run plat_lock(path) in a forked child, which exits at once and so
 * releases any lock it took, and return its outcome. */
static struct lock_result lock_in_child(const char *path)
{
  struct lock_result result = {.code = AG_ECODE_COUNT};
  int fds[2];

  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct ag_error err = {AG_OK, ""};
    struct plat_lock *lock = NULL;

    close(fds[0]);
    result.code = plat_lock(path, &lock, &err);
    memcpy(result.message, err.message, sizeof(result.message));
    ssize_t written = write(fds[1], &result, sizeof(result));
    _exit(written == (ssize_t)sizeof(result) ? 0 : 1);
  }

  close(fds[1]);
  assert_int_equal(read(fds[0], &result, sizeof(result)), sizeof(result));
  close(fds[0]);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  return result;
}

static void test_lock_held_by_parent(void **state)
{
  struct folder_fixture *f = *state;
  char path[PATH_SIZE];
  char pid_text[32];
  struct plat_lock *lock = NULL;

  path_in(f, "agent.lock", path, sizeof(path));
  assert_int_equal(plat_lock(path, &lock, &f->err), AG_OK);
  assert_non_null(lock);
  snprintf(pid_text, sizeof(pid_text), "%ld\n", (long)getpid());
  assert_file_content(path, pid_text);

  struct lock_result result = lock_in_child(path);
  assert_int_equal(result.code, AG_ELOCKED);
  snprintf(pid_text, sizeof(pid_text), "process %ld)", (long)getpid());
  assert_contains(result.message, pid_text);
  assert_contains(result.message, path);

  /* The failed attempt must not overwrite the holder's process id. */
  snprintf(pid_text, sizeof(pid_text), "%ld\n", (long)getpid());
  assert_file_content(path, pid_text);
  plat_unlock(lock);
}

static void test_lock_after_unlock(void **state)
{
  struct folder_fixture *f = *state;
  char path[PATH_SIZE];
  struct plat_lock *lock = NULL;

  path_in(f, "agent.lock", path, sizeof(path));
  assert_int_equal(plat_lock(path, &lock, &f->err), AG_OK);
  plat_unlock(lock);

  struct lock_result result = lock_in_child(path);
  assert_int_equal(result.code, AG_OK);
  assert_string_equal(result.message, "");

  /* The child has exited, which released its lock. */
  assert_int_equal(plat_lock(path, &lock, &f->err), AG_OK);
  plat_unlock(lock);
}

static void test_lock_same_process(void **state)
{
  struct folder_fixture *f = *state;
  char path[PATH_SIZE];
  char pid_text[32];
  struct plat_lock *first = NULL;
  struct plat_lock *second = NULL;

  path_in(f, "agent.lock", path, sizeof(path));
  assert_int_equal(plat_lock(path, &first, &f->err), AG_OK);
  assert_int_equal(plat_lock(path, &second, &f->err), AG_ELOCKED);
  assert_null(second);
  snprintf(pid_text, sizeof(pid_text), "process %ld)", (long)getpid());
  assert_contains(f->err.message, pid_text);
  plat_unlock(first);
}

static void test_lock_missing_folder(void **state)
{
  struct folder_fixture *f = *state;
  char path[PATH_SIZE];
  struct plat_lock *lock = NULL;

  path_in(f, "missing/agent.lock", path, sizeof(path));
  assert_int_equal(plat_lock(path, &lock, &f->err), AG_ELOCAL);
  assert_null(lock);
  assert_contains(f->err.message, path);
}

static void test_unlock_null(void **state)
{
  (void)state;
  plat_unlock(NULL);
}

static void test_secret_read(void **state)
{
  struct folder_fixture *f = *state;
  char path[PATH_SIZE];
  char *secret = NULL;

  path_in(f, "secret", path, sizeof(path));
  write_text_file(path, "p@ss word\r\nsecond\n", 0600);
  assert_int_equal(plat_read_secret(path, &secret, &f->err), AG_OK);
  assert_string_equal(secret, "p@ss word");
  free(secret);
}

/* Write length bytes of 'a' and a newline to dir/secret with mode 0600,
 * and store its path in path. */
static void write_long_secret(const struct folder_fixture *f, size_t length,
                              char *path, size_t path_size)
{
  char *text = malloc(length + 2);

  assert_non_null(text);
  memset(text, 'a', length);
  text[length] = '\n';
  text[length + 1] = '\0';
  path_in(f, "secret", path, path_size);
  write_text_file(path, text, 0600);
  free(text);
}

static void test_secret_max_length(void **state)
{
  struct folder_fixture *f = *state;
  char path[PATH_SIZE];
  char *secret = NULL;

  write_long_secret(f, 4096, path, sizeof(path));
  assert_int_equal(plat_read_secret(path, &secret, &f->err), AG_OK);
  assert_int_equal(strlen(secret), 4096);
  free(secret);
}

static void test_secret_too_long(void **state)
{
  struct folder_fixture *f = *state;
  char path[PATH_SIZE];
  char *secret = NULL;

  write_long_secret(f, 4097, path, sizeof(path));
  assert_int_equal(plat_read_secret(path, &secret, &f->err), AG_ECONFIG);
  assert_null(secret);
  assert_contains(f->err.message, "1 to 4096 bytes");
  assert_not_contains(f->err.message, "aaaa");
}

static void test_secret_mode(void **state)
{
  struct folder_fixture *f = *state;
  char path[PATH_SIZE];
  char *secret = NULL;

  path_in(f, "secret", path, sizeof(path));
  write_text_file(path, "Tr0ub4dor\n", 0604);
  assert_int_equal(plat_read_secret(path, &secret, &f->err), AG_ECONFIG);
  assert_null(secret);
  assert_contains(f->err.message, "mode 0604");
  assert_contains(f->err.message, "chmod 600");
  assert_not_contains(f->err.message, "Tr0ub4dor");
}

static void test_secret_not_regular(void **state)
{
  struct folder_fixture *f = *state;
  char *secret = NULL;

  assert_int_equal(plat_read_secret(f->dir, &secret, &f->err), AG_ECONFIG);
  assert_null(secret);
  assert_contains(f->err.message, "not a regular file");
}

static void test_secret_symlink(void **state)
{
  struct folder_fixture *f = *state;
  char target[PATH_SIZE];
  char link[PATH_SIZE];
  char *secret = NULL;

  path_in(f, "secret", target, sizeof(target));
  path_in(f, "link", link, sizeof(link));
  write_text_file(target, "Tr0ub4dor\n", 0600);
  assert_int_equal(symlink(target, link), 0);
  assert_int_equal(plat_read_secret(link, &secret, &f->err), AG_ECONFIG);
  assert_null(secret);
  assert_contains(f->err.message, link);
}

static void test_wipe(void **state)
{
  char buffer[8] = "secret!";

  (void)state;
  plat_wipe(buffer, sizeof(buffer));
  for (size_t i = 0; i < sizeof(buffer); i++)
    assert_int_equal(buffer[i], 0);
}

static void test_glob_match(void **state)
{
  static const struct {
    const char *pattern;
    const char *name;
    int expected;
  } cases[] = {
      {"*.xml", "a.xml", 1},
      {"*.xml", "a.xmlx", 0},
      {"*.xml", "A.XML", 1},
      {"*.xml", ".xml", 1},
      {"*.xml", ".hidden.xml", 1},
      {"*.xml", "dir/a.xml", 1},
      {"?.csv", "a.csv", 1},
      {"?.csv", "ab.csv", 0},
      {"[ab]*", "b1", 1},
      {"[ab]*", "c1", 0},
      {"[!a]*", "b", 1},
      {"[!a]*", "a", 0},
      {"a\\*", "a*", 1},
      {"a\\*", "ab", 0},
      {"*", "", 1},
      {"exact", "exact", 1},
      {"exact", "exact2", 0},
  };

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int matched = plat_glob_match(cases[i].pattern, cases[i].name);
    if (matched != cases[i].expected)
      fail_msg("pattern \"%s\" on \"%s\": got %d, expected %d",
               cases[i].pattern, cases[i].name, matched, cases[i].expected);
  }
}

static void test_clocks(void **state)
{
  (void)state;
  int64_t start = plat_monotonic_ms();
  plat_sleep_ms(20);
  int64_t end = plat_monotonic_ms();
  assert_true(end - start >= 20);

  int64_t wall = plat_wall_time();
  int64_t now = (int64_t)time(NULL);
  assert_true(wall <= now);
  assert_true(now - wall <= 1);
}

static void test_join_root(void **state)
{
  (void)state;
  char *path = rpath_join("/", "x.xml", 5);
  assert_string_equal(path, "/x.xml");
  free(path);
}

static void test_join_folder(void **state)
{
  (void)state;
  char *path = rpath_join("/export", "sub/x.xml", 9);
  assert_string_equal(path, "/export/sub/x.xml");
  free(path);
}

static void test_join_uses_length(void **state)
{
  static const char rel[] = {'a', '\0', 'b'};

  (void)state;
  char *path = rpath_join("/export", "sub/x.xml", 3);
  assert_string_equal(path, "/export/sub");
  free(path);

  /* The relative path is raw bytes, so a NUL is copied, not a stop. */
  path = rpath_join("/in", rel, sizeof(rel));
  assert_memory_equal(path, "/in/a\0b", 8);
  free(path);
}

static void test_base_offset(void **state)
{
  (void)state;
  assert_int_equal(rpath_base_offset("a/b/c.xml", 9), 4);
  assert_int_equal(rpath_base_offset("c.xml", 5), 0);
  assert_int_equal(rpath_base_offset("/c.xml", 6), 1);
  assert_int_equal(rpath_base_offset("dir/", 4), 4);
  assert_int_equal(rpath_base_offset("", 0), 0);
  /* Only the first len bytes count. */
  assert_int_equal(rpath_base_offset("ab/cd", 2), 0);
  assert_int_equal(rpath_base_offset("a\xff/\xfe", 4), 3);
}

#define TEST(name)                                                             \
  cmocka_unit_test_setup_teardown(name, folder_fixture_setup,                  \
                                  folder_fixture_teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
      TEST(test_mkdirs_nested),
      TEST(test_mkdirs_existing),
      TEST(test_mkdirs_trailing_slash),
      TEST(test_mkdirs_file_in_way),
      TEST(test_mkdirs_file_is_target),
      TEST(test_mkdirs_empty),
      TEST(test_mkdirs_root),
      TEST(test_exists),
      TEST(test_temp_unique),
      TEST(test_temp_missing_folder),
      TEST(test_sync_close),
      TEST(test_replace_existing),
      TEST(test_replace_new),
      TEST(test_replace_missing_source),
      TEST(test_remove),
      TEST(test_lock_held_by_parent),
      TEST(test_lock_after_unlock),
      TEST(test_lock_same_process),
      TEST(test_lock_missing_folder),
      TEST(test_unlock_null),
      TEST(test_secret_read),
      TEST(test_secret_max_length),
      TEST(test_secret_too_long),
      TEST(test_secret_mode),
      TEST(test_secret_not_regular),
      TEST(test_secret_symlink),
      cmocka_unit_test(test_wipe),
      cmocka_unit_test(test_glob_match),
      cmocka_unit_test(test_clocks),
      cmocka_unit_test(test_join_root),
      cmocka_unit_test(test_join_folder),
      cmocka_unit_test(test_join_uses_length),
      cmocka_unit_test(test_base_offset),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
