/* Unit tests for the Windows platform layer (src/win/). They cover files
 * with UTF-8 and long paths, replacing a file that another program has
 * open, the lock, path helpers, the glob matcher, the stop and reload
 * flags, and the hook runner with its job object. Only Windows builds
 * have them, and the cross build runs them under wine.
 *
 * The program is also its own hook: started with "--child MODE" it acts as
 * the child process that the hook tests need. */
#include "agent/platform.h"
#include "agent/signals.h"
#include "agent/textconv.h"

#include "win_internal.h"

#include <aclapi.h>
#include <sddl.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The path of this program, for hooks that start it again. */
static char self_path[MAX_PATH * 4];

/* ---- Child modes ---- */

/* Print each argument after "--child args" in brackets. */
static int child_args(int argc, char **argv)
{
  for (int i = 3; i < argc; i++)
    printf("[%s]", argv[i]);
  return 0;
}

/* Start this program again as "--child sleep", print its process id, and
 * sleep, so that a timeout must end both. */
static int child_spawn(void)
{
  wchar_t line[MAX_PATH * 4 + 32];
  wchar_t *self = win_utf16(self_path);
  STARTUPINFOW startup = {.cb = sizeof(startup)};
  PROCESS_INFORMATION info;

  _snwprintf(line, sizeof(line) / sizeof(line[0]), L"\"%ls\" --child sleep",
             self);
  line[sizeof(line) / sizeof(line[0]) - 1] = L'\0';
  if (!CreateProcessW(self, line, NULL, NULL, FALSE, 0, NULL, NULL, &startup,
                      &info))
    return 90;
  printf("%lu\n", (unsigned long)info.dwProcessId);
  fflush(stdout);
  Sleep(60000);
  return 0;
}

static int run_child(int argc, char **argv)
{
  const char *mode = argv[2];

  if (strcmp(mode, "exit") == 0) {
    printf("out\n");
    fprintf(stderr, "err\n");
    return 7;
  }
  if (strcmp(mode, "args") == 0)
    return child_args(argc, argv);
  if (strcmp(mode, "sleep") == 0) {
    Sleep(60000);
    return 0;
  }
  if (strcmp(mode, "spawn") == 0)
    return child_spawn();
  if (strcmp(mode, "flood") == 0) {
    for (int i = 0; i < 20000; i++)
      fputs("0123456789", stdout);
    return 0;
  }
  if (strcmp(mode, "stdin") == 0) {
    int c = getchar();
    printf("%s\n", c == EOF ? "eof" : "data");
    return 0;
  }
  return 99;
}

/* ---- Fixture: a fresh folder below the temporary folder ---- */

struct fixture {
  char dir[MAX_PATH * 2];
  struct ag_error err;
};

static void remove_tree(const char *path)
{
  struct plat_dir *dir = plat_dir_open(path);

  if (dir != NULL) {
    for (const char *name = plat_dir_next(dir); name != NULL;
         name = plat_dir_next(dir)) {
      char child[MAX_PATH * 4];
      snprintf(child, sizeof(child), "%s\\%s", path, name);
      if (plat_unlink(child) != 0)
        remove_tree(child);
    }
    plat_dir_close(dir);
  }
  wchar_t *wide = win_path(path);
  if (wide != NULL)
    RemoveDirectoryW(wide);
  free(wide);
}

static int setup(void **state)
{
  static unsigned counter;
  wchar_t temp[MAX_PATH];
  struct fixture *f = calloc(1, sizeof(*f));

  if (f == NULL || GetTempPathW(MAX_PATH, temp) == 0)
    return -1;
  char *base = win_utf8(temp);
  snprintf(f->dir, sizeof(f->dir), "%sagent-test-%lu-%u", base,
           (unsigned long)GetCurrentProcessId(), counter++);
  free(base);
  if (plat_mkdirs(f->dir, &f->err) != AG_OK)
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;

  remove_tree(f->dir);
  free(f);
  return 0;
}

static void path_in(const struct fixture *f, const char *name, char *out,
                    size_t size)
{
  snprintf(out, size, "%s\\%s", f->dir, name);
}

static void write_text(const char *path, const char *text)
{
  FILE *file = plat_fopen(path, "wb");

  assert_non_null(file);
  assert_int_equal(fputs(text, file) >= 0, 1);
  assert_int_equal(fclose(file), 0);
}

static char *read_text(const char *path)
{
  static char buffer[4096];
  FILE *file = plat_fopen(path, "rb");

  assert_non_null(file);
  size_t len = fread(buffer, 1, sizeof(buffer) - 1, file);
  buffer[len] = '\0';
  fclose(file);
  return buffer;
}

/* ---- Files ---- */

static void utf8_names_round_trip(void **state)
{
  struct fixture *f = *state;
  const char *name =
      "\xC5\xBDlu\xC5\xA5ou\xC4\x8Dk\xC3\xBD k\xC5\xAF\xC5\x88.txt";
  char path[MAX_PATH * 4];
  int64_t size = -1;

  path_in(f, name, path, sizeof(path));
  write_text(path, "hello");
  assert_int_equal(plat_exists(path), 1);
  assert_int_equal(plat_file_size(path, &size), 0);
  assert_int_equal(size, 5);

  struct plat_dir *dir = plat_dir_open(f->dir);
  assert_non_null(dir);
  const char *listed = plat_dir_next(dir);
  assert_non_null(listed);
  assert_string_equal(listed, name);
  assert_null(plat_dir_next(dir));
  plat_dir_close(dir);

  assert_int_equal(plat_unlink(path), 0);
  assert_int_equal(plat_exists(path), 0);
  assert_int_equal(plat_unlink(path), ENOENT);
  assert_int_equal(plat_file_size(path, &size), ENOENT);
}

static void missing_folder_is_enoent(void **state)
{
  struct fixture *f = *state;
  char path[MAX_PATH * 4];

  path_in(f, "missing", path, sizeof(path));
  assert_null(plat_dir_open(path));
  assert_int_equal(errno, ENOENT);
  assert_null(plat_fopen(path, "rb"));
  assert_int_equal(errno, ENOENT);
}

static void mkdirs_both_separators(void **state)
{
  struct fixture *f = *state;
  char path[MAX_PATH * 4];

  path_in(f, "a/b\\c/", path, sizeof(path));
  assert_int_equal(plat_mkdirs(path, &f->err), AG_OK);
  path_in(f, "a\\b\\c", path, sizeof(path));
  assert_int_equal(plat_exists(path), 1);
  assert_int_equal(plat_mkdirs(path, &f->err), AG_OK);

  char file[MAX_PATH * 4];
  path_in(f, "plain", file, sizeof(file));
  write_text(file, "x");
  assert_int_equal(plat_mkdirs(file, &f->err), AG_ELOCAL);
  assert_non_null(strstr(f->err.message, "not a folder"));
}

static void long_path_works(void **state)
{
  struct fixture *f = *state;
  char dir[MAX_PATH * 4];
  char path[MAX_PATH * 4];
  char segment[61];

  /* Five folders of 60 characters pass the 260-character limit. */
  memset(segment, 'd', 60);
  segment[60] = '\0';
  snprintf(dir, sizeof(dir), "%s", f->dir);
  for (int i = 0; i < 5; i++) {
    size_t len = strlen(dir);
    snprintf(dir + len, sizeof(dir) - len, "/%s", segment);
  }
  assert_true(strlen(dir) > MAX_PATH);
  assert_int_equal(plat_mkdirs(dir, &f->err), AG_OK);

  FILE *file = NULL;
  char *temp = NULL;
  assert_int_equal(plat_create_temp(dir, ".incoming", &file, &temp, &f->err),
                   AG_OK);
  fputs("long", file);
  assert_int_equal(plat_sync_close(file, temp, &f->err), AG_OK);
  snprintf(path, sizeof(path), "%s/out.json", dir);
  assert_int_equal(plat_replace(temp, path, &f->err), AG_OK);
  assert_string_equal(read_text(path), "long");
  free(temp);
}

/* Return whether the system renames with POSIX semantics
 * (FileRenameInfoEx, Windows 10 1809 and later on NTFS), by renaming a
 * probe file that way. wine 8 does not. */
static bool has_posix_rename(const char *dir)
{
  char path[MAX_PATH * 4];
  char target[MAX_PATH * 4];

  snprintf(path, sizeof(path), "%s\\probe", dir);
  snprintf(target, sizeof(target), "%s\\probe-renamed", dir);
  write_text(path, "x");
  wchar_t *wide = win_path(path);
  wchar_t *wide_target = win_path(target);
  size_t len = wcslen(wide_target);
  size_t size = sizeof(FILE_RENAME_INFO) + len * sizeof(wchar_t);
  FILE_RENAME_INFO *info = calloc(1, size);
  HANDLE handle =
      CreateFileW(wide, DELETE, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
  assert_true(handle != INVALID_HANDLE_VALUE);
  info->Flags = FILE_RENAME_FLAG_POSIX_SEMANTICS;
  info->FileNameLength = (DWORD)(len * sizeof(wchar_t));
  memcpy(info->FileName, wide_target, (len + 1) * sizeof(wchar_t));
  BOOL renamed = SetFileInformationByHandle(
      handle, (FILE_INFO_BY_HANDLE_CLASS)22, info, (DWORD)size);
  CloseHandle(handle);
  free(info);
  free(wide);
  free(wide_target);
  plat_unlink(path);
  plat_unlink(target);
  return renamed;
}

static void replace_target_open_with_delete_sharing(void **state)
{
  struct fixture *f = *state;
  char from[MAX_PATH * 4];
  char to[MAX_PATH * 4];

  if (!has_posix_rename(f->dir))
    skip();
  path_in(f, "new", from, sizeof(from));
  path_in(f, "doc.json", to, sizeof(to));
  write_text(from, "new");
  write_text(to, "old");

  /* A reader that opened the target through plat_fopen() shares delete
   * access, so the replace goes through while it reads. */
  FILE *reader = plat_fopen(to, "rb");
  assert_non_null(reader);
  assert_int_equal(plat_replace(from, to, &f->err), AG_OK);
  char old[8] = "";
  assert_int_equal(fread(old, 1, 3, reader), 3);
  assert_string_equal(old, "old");
  fclose(reader);
  assert_string_equal(read_text(to), "new");
}

static void replace_target_locked_fails(void **state)
{
  struct fixture *f = *state;
  char from[MAX_PATH * 4];
  char to[MAX_PATH * 4];

  path_in(f, "new", from, sizeof(from));
  path_in(f, "doc.json", to, sizeof(to));
  write_text(from, "new");
  write_text(to, "old");

  /* A reader without FILE_SHARE_DELETE blocks the replace. The retries
   * give up after about 2.5 s and name the cause. */
  wchar_t *wide = win_path(to);
  HANDLE reader = CreateFileW(wide, GENERIC_READ, FILE_SHARE_READ, NULL,
                              OPEN_EXISTING, 0, NULL);
  free(wide);
  assert_true(reader != INVALID_HANDLE_VALUE);
  int64_t started = plat_monotonic_ms();
  assert_int_equal(plat_replace(from, to, &f->err), AG_ELOCAL);
  assert_true(plat_monotonic_ms() - started >= 1000);
  assert_non_null(strstr(f->err.message, "without delete sharing"));
  CloseHandle(reader);
  assert_string_equal(read_text(to), "old");
  assert_int_equal(plat_exists(from), 1);
}

static void stale_temps_removed(void **state)
{
  struct fixture *f = *state;
  FILE *file = NULL;
  char *temp = NULL;
  char other[MAX_PATH * 4];

  assert_int_equal(plat_create_temp(f->dir, ".incoming", &file, &temp, &f->err),
                   AG_OK);
  fclose(file);
  path_in(f, ".incoming.keep", other, sizeof(other));
  write_text(other, "x");
  assert_int_equal(plat_remove_stale_temps(f->dir, ".incoming"), 1);
  assert_int_equal(plat_exists(temp), 0);
  assert_int_equal(plat_exists(other), 1);
  free(temp);
}

static void lock_names_holder(void **state)
{
  struct fixture *f = *state;
  struct plat_lock *first = NULL;
  struct plat_lock *second = NULL;
  char path[MAX_PATH * 4];
  char expected[64];

  path_in(f, "lock", path, sizeof(path));
  assert_int_equal(plat_lock(path, &first, &f->err), AG_OK);
  assert_int_equal(plat_lock(path, &second, &f->err), AG_ELOCKED);
  assert_null(second);
  snprintf(expected, sizeof(expected), "(process %ld)", plat_process_id());
  assert_non_null(strstr(f->err.message, expected));

  plat_unlock(first);
  ag_error_clear(&f->err);
  assert_int_equal(plat_lock(path, &second, &f->err), AG_OK);
  plat_unlock(second);
  plat_unlock(NULL);
}

/* Return whether the access list of path, as SDDL, has the entries that
 * sddl has (compare_all), or contains the text sddl. */
static bool acl_matches(const char *path, const wchar_t *sddl, bool compare_all)
{
  PSECURITY_DESCRIPTOR descriptor = NULL;
  PACL dacl = NULL;
  wchar_t *text = NULL;
  wchar_t *wide = win_path(path);

  assert_int_equal(GetNamedSecurityInfoW(wide, SE_FILE_OBJECT,
                                         DACL_SECURITY_INFORMATION, NULL, NULL,
                                         &dacl, NULL, &descriptor),
                   ERROR_SUCCESS);
  free(wide);
  assert_true(ConvertSecurityDescriptorToStringSecurityDescriptorW(
      descriptor, SDDL_REVISION_1, DACL_SECURITY_INFORMATION, &text, NULL));
  const wchar_t *got = wcschr(text, L'(');
  const wchar_t *expected = wcschr(sddl, L'(');
  bool same = compare_all ? got != NULL && expected != NULL &&
                                wcscmp(got, expected) == 0
                          : wcsstr(text, sddl) != NULL;
  LocalFree(text);
  LocalFree(descriptor);
  return same;
}

/* Give path the access list sddl, in which "%ls" stands for this
 * process's user. Returns false when the system does not keep it: wine
 * derives a file's list from its Unix mode bits instead. */
static bool set_acl(const char *path, const wchar_t *sddl_format)
{
  HANDLE token = NULL;
  char buffer[256];
  DWORD size = 0;
  wchar_t *user = NULL;
  wchar_t sddl[512];
  PSECURITY_DESCRIPTOR descriptor = NULL;
  BOOL present = FALSE;
  BOOL defaulted = FALSE;
  PACL dacl = NULL;

  assert_true(OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token));
  assert_true(
      GetTokenInformation(token, TokenUser, buffer, sizeof(buffer), &size));
  CloseHandle(token);
  assert_true(ConvertSidToStringSidW(((TOKEN_USER *)buffer)->User.Sid, &user));
  _snwprintf(sddl, sizeof(sddl) / sizeof(sddl[0]), sddl_format, user);
  sddl[sizeof(sddl) / sizeof(sddl[0]) - 1] = L'\0';
  LocalFree(user);
  assert_true(ConvertStringSecurityDescriptorToSecurityDescriptorW(
      sddl, SDDL_REVISION_1, &descriptor, NULL));
  assert_true(
      GetSecurityDescriptorDacl(descriptor, &present, &dacl, &defaulted));
  wchar_t *wide = win_path(path);
  DWORD rc = SetNamedSecurityInfoW(wide, SE_FILE_OBJECT,
                                   DACL_SECURITY_INFORMATION |
                                       PROTECTED_DACL_SECURITY_INFORMATION,
                                   NULL, NULL, dacl, NULL);
  free(wide);
  LocalFree(descriptor);
  assert_int_equal(rc, ERROR_SUCCESS);
  return acl_matches(path, sddl, true);
}

static void secret_read_and_checked(void **state)
{
  struct fixture *f = *state;
  char path[MAX_PATH * 4];
  char *secret = NULL;

  /* Only SYSTEM, Administrators and this user, as icacls would set it. */
  path_in(f, "password", path, sizeof(path));
  write_text(path, "s3cret\r\nsecond line");
  if (!set_acl(path, L"D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;%ls)"))
    skip();
  if (plat_read_secret(path, &secret, &f->err) != AG_OK)
    fail_msg("%s", f->err.message);
  assert_string_equal(secret, "s3cret");
  free(secret);
  assert_int_equal(plat_check_private_file(path, &f->err), AG_OK);

  write_text(path, "\n");
  assert_int_equal(plat_read_secret(path, &secret, &f->err), AG_ECONFIG);
  assert_null(secret);
  assert_non_null(strstr(f->err.message, "must hold one line"));
}

static void secret_folder_rejected(void **state)
{
  struct fixture *f = *state;
  char *secret = NULL;

  assert_int_equal(plat_read_secret(f->dir, &secret, &f->err), AG_ECONFIG);
  assert_non_null(strstr(f->err.message, "is not a regular file"));
  ag_error_clear(&f->err);
  assert_int_equal(plat_check_private_file(f->dir, &f->err), AG_ECONFIG);
  assert_non_null(strstr(f->err.message, "private key"));
}

static void secret_open_to_everyone_rejected(void **state)
{
  struct fixture *f = *state;
  char path[MAX_PATH * 4];
  char *secret = NULL;

  path_in(f, "shared", path, sizeof(path));
  write_text(path, "s3cret");
  /* Read access for Everyone (WD), as a careless copy might give. wine
   * grants it by itself from the Unix mode 0644. */
  set_acl(path, L"D:P(A;;FA;;;SY)(A;;FA;;;%ls)(A;;FR;;;WD)");
  if (!acl_matches(path, L";WD)", false))
    skip();

  assert_int_equal(plat_read_secret(path, &secret, &f->err), AG_ECONFIG);
  assert_null(secret);
  assert_non_null(strstr(f->err.message, "is accessible by other users"));
  assert_non_null(strstr(f->err.message, "icacls"));
}

static void log_file_appends(void **state)
{
  struct fixture *f = *state;
  char path[MAX_PATH * 4];

  path_in(f, "agent.log", path, sizeof(path));
  int fd = plat_open_log(path);
  assert_true(fd >= 0);
  assert_true(plat_write_all(fd, "one\n", 4));
  /* A rename while the log is open works, as log rotation needs. */
  char rotated[MAX_PATH * 4];
  path_in(f, "agent.log.1", rotated, sizeof(rotated));
  assert_int_equal(plat_replace(path, rotated, &f->err), AG_OK);
  assert_true(plat_write_all(fd, "two\n", 4));
  plat_close_log(fd);
  assert_string_equal(read_text(rotated), "one\ntwo\n");

  fd = plat_open_log(path);
  assert_true(fd >= 0);
  assert_true(plat_write_all(fd, "three\n", 6));
  plat_close_log(fd);
  assert_string_equal(read_text(path), "three\n");

  /* The event log takes a message without an installed source too. */
  plat_system_log_write(4, "test_platform_win: a warning for the event log");
  plat_system_log_close();
}

/* ---- Paths, clocks and the data folder ---- */

static void path_helpers(void **state)
{
  (void)state;
  assert_true(plat_path_is_absolute("C:\\ProgramData"));
  assert_true(plat_path_is_absolute("c:/x"));
  assert_true(plat_path_is_absolute("\\\\server\\share\\x"));
  assert_true(plat_path_is_absolute("//server/share"));
  assert_false(plat_path_is_absolute("/etc/x"));
  assert_false(plat_path_is_absolute("C:x"));
  assert_false(plat_path_is_absolute("x\\y"));
  assert_false(plat_path_is_absolute(""));
  assert_string_equal(plat_path_base("C:\\a\\b.prom"), "b.prom");
  assert_string_equal(plat_path_base("C:/a/b.prom"), "b.prom");
  assert_string_equal(plat_path_base("C:b.prom"), "b.prom");
  assert_string_equal(plat_path_base("b.prom"), "b.prom");

  const char *config = plat_default_config_path();
  const char *tail = "\\rossum-sftp-agent\\agent.conf";
  assert_true(strlen(config) > strlen(tail));
  assert_string_equal(config + strlen(config) - strlen(tail), tail);
  assert_true(plat_path_is_absolute(config));
}

static void clocks_advance(void **state)
{
  (void)state;
  int64_t start = plat_monotonic_ms();
  int64_t wall = plat_wall_time_ms();

  plat_sleep_ms(50);
  assert_true(plat_monotonic_ms() - start >= 40);
  /* After 2020-01-01 and within a second of plat_wall_time(). */
  assert_true(wall > 1577836800000LL);
  assert_true(plat_wall_time() - wall / 1000 <= 1);
}

static void glob_matches_like_fnmatch(void **state)
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
      {"*.xml", "dir/a.xml", 1},
      {"?.csv", "a.csv", 1},
      {"?.csv", "ab.csv", 0},
      {"[ab]*", "b1", 1},
      {"[ab]*", "c1", 0},
      {"[!a]*", "b", 1},
      {"[!a]*", "A", 0},
      {"[^a]*", "b", 1},
      {"a\\*", "a*", 1},
      {"a\\*", "ab", 0},
      {"*", "", 1},
      {"exact", "EXACT", 1},
      {"exact", "exact2", 0},
      {"[a-c]x", "BX", 1},
      {"[]]", "]", 1},
      {"[", "[", 1},
      {"[[:digit:]]*", "1a", 1},
      {"[[:upper:]]", "q", 0},
      {"*a*b*c*", "xxaxxbxxcxx", 1},
      {"*a*b*c*d", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbccccccccc",
       0},
  };

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int matched = plat_glob_match(cases[i].pattern, cases[i].name);
    if (matched != cases[i].expected)
      fail_msg("pattern \"%s\" on \"%s\": got %d, expected %d",
               cases[i].pattern, cases[i].name, matched, cases[i].expected);
  }
}

/* ---- Text conversion ---- */

static void undefined_bytes_rejected(void **state)
{
  static const struct {
    const char *encoding;
    unsigned char byte;
  } cases[] = {
      {"windows-1250", 0x81}, {"windows-1250", 0x98}, {"windows-1251", 0x98},
      {"windows-1252", 0x81}, {"windows-1252", 0x9D}, {"windows-1257", 0xA1},
      {"windows-1257", 0x9F},
  };

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct textconv *conv = NULL;
    struct ag_error err = {0};
    const char *text = NULL;
    size_t len = 0;
    char input[3] = {'a', (char)cases[i].byte, 'b'};
    char expected[128];

    assert_int_equal(textconv_open(cases[i].encoding, &conv, &err), AG_OK);
    assert_int_equal(textconv_convert(conv, input, 3, true, &text, &len, &err),
                     AG_EPARSE);
    snprintf(expected, sizeof(expected),
             "byte offset 1: invalid %s byte 0x%02X", cases[i].encoding,
             cases[i].byte);
    assert_string_equal(err.message, expected);
    assert_int_equal(len, 1);
    textconv_close(conv);
  }
}

static void iso_8859_controls_defined(void **state)
{
  struct textconv *conv = NULL;
  struct ag_error err = {0};
  const char *text = NULL;
  size_t len = 0;

  (void)state;
  assert_int_equal(textconv_open("ISO-8859-2", &conv, &err), AG_OK);
  assert_int_equal(
      textconv_convert(conv, "\x81\xA9", 2, true, &text, &len, &err), AG_OK);
  assert_int_equal(len, 4);
  assert_memory_equal(text, "\xC2\x81\xC5\xA0", 4);
  textconv_close(conv);
}

static void utf8_invalid_after_cut(void **state)
{
  struct textconv *conv = NULL;
  struct ag_error err = {0};
  const char *text = NULL;
  size_t len = 0;

  (void)state;
  assert_int_equal(textconv_open("utf-8", &conv, &err), AG_OK);
  assert_int_equal(
      textconv_convert(conv, "ab\xE2", 3, false, &text, &len, &err), AG_OK);
  assert_int_equal(len, 2);
  /* 0x41 cannot continue the sequence that 0xE2 started. */
  assert_int_equal(textconv_convert(conv, "\x41", 1, false, &text, &len, &err),
                   AG_EPARSE);
  assert_string_equal(err.message, "byte offset 2: invalid utf-8 byte 0xE2");
  assert_int_equal(textconv_offset(conv), 2);
  textconv_close(conv);
}

/* ---- Stop and reload requests ---- */

static DWORD WINAPI request_stop_later(void *unused)
{
  (void)unused;
  Sleep(200);
  signals_win_request_stop("SERVICE_CONTROL_STOP");
  return 0;
}

static void requests_wake_the_wait(void **state)
{
  struct ag_error err = {0};

  (void)state;
  assert_int_equal(signals_install(&err), AG_OK);
  assert_false(signals_stop_requested());
  assert_string_equal(signals_stop_name(), "no signal");

  signals_win_request_reload();
  int64_t started = plat_monotonic_ms();
  signals_wait(5000);
  assert_true(plat_monotonic_ms() - started < 1000);
  assert_true(signals_take_reload());
  assert_false(signals_take_reload());

  HANDLE thread = CreateThread(NULL, 0, request_stop_later, NULL, 0, NULL);
  assert_non_null(thread);
  started = plat_monotonic_ms();
  signals_wait(10000);
  assert_true(plat_monotonic_ms() - started < 5000);
  assert_true(signals_stop_requested());
  assert_string_equal(signals_stop_name(), "SERVICE_CONTROL_STOP");
  WaitForSingleObject(thread, INFINITE);
  CloseHandle(thread);

  /* A new install clears the requests. */
  assert_int_equal(signals_install(&err), AG_OK);
  assert_false(signals_stop_requested());
  signals_restore();
}

/* ---- The hook runner ---- */

static void run_self(const char *mode, const char *const extra[], int timeout,
                     const struct plat_hook_watch *watch,
                     struct plat_hook_result *result)
{
  const char *argv[16] = {self_path, "--child", mode};
  size_t count = 3;
  struct ag_error err = {0};

  for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
    argv[count++] = extra[i];
  argv[count] = NULL;
  if (plat_run_hook(argv, timeout, watch, result, &err) != AG_OK)
    fail_msg("plat_run_hook failed: %s", err.message);
}

static void hook_exit_status_and_output(void **state)
{
  struct plat_hook_result *result = malloc(sizeof(*result));

  (void)state;
  run_self("exit", NULL, 30, NULL, result);
  assert_int_equal(result->outcome, PLAT_HOOK_EXITED);
  assert_int_equal(result->status, 7);
  assert_non_null(strstr(result->output, "out"));
  assert_non_null(strstr(result->output, "err"));
  free(result);
}

static void hook_arguments_quoted(void **state)
{
  static const char *const extra[] = {
      "plain", "with space", "quote\"inside", "trailing\\", "back\\\\slash",
      "",      "tab\there",  "\xC5\xBD",      NULL};
  struct plat_hook_result *result = malloc(sizeof(*result));

  (void)state;
  run_self("args", extra, 30, NULL, result);
  assert_int_equal(result->outcome, PLAT_HOOK_EXITED);
  assert_int_equal(result->status, 0);
  assert_string_equal(result->output,
                      "[plain][with space][quote\"inside][trailing\\]"
                      "[back\\\\slash][][tab\there][\xC5\xBD]");
  free(result);
}

static void hook_stdin_is_empty(void **state)
{
  struct plat_hook_result *result = malloc(sizeof(*result));

  (void)state;
  run_self("stdin", NULL, 30, NULL, result);
  assert_int_equal(result->status, 0);
  assert_non_null(strstr(result->output, "eof"));
  free(result);
}

static void hook_output_cut_at_maximum(void **state)
{
  struct plat_hook_result *result = malloc(sizeof(*result));

  (void)state;
  run_self("flood", NULL, 60, NULL, result);
  assert_int_equal(result->outcome, PLAT_HOOK_EXITED);
  assert_int_equal(result->output_len, PLAT_HOOK_OUTPUT_MAX);
  assert_int_equal(result->output_total, 200000);
  free(result);
}

static void hook_timeout_ends_tree(void **state)
{
  struct plat_hook_result *result = malloc(sizeof(*result));

  (void)state;
  run_self("spawn", NULL, 2, NULL, result);
  assert_int_equal(result->outcome, PLAT_HOOK_TIMED_OUT);
  assert_true(result->elapsed_ms >= 2000);
  assert_true(result->elapsed_ms < 15000);

  /* The grandchild, which printed its id, was ended with the job. */
  unsigned long grandchild = strtoul(result->output, NULL, 10);
  assert_true(grandchild > 0);
  HANDLE process = OpenProcess(SYNCHRONIZE, FALSE, (DWORD)grandchild);
  if (process != NULL) {
    assert_int_equal(WaitForSingleObject(process, 5000), WAIT_OBJECT_0);
    CloseHandle(process);
  }
  free(result);
}

static bool stop_now(void *ctx)
{
  int *calls = ctx;

  return ++*calls >= 3;
}

static void hook_stop_request_ends_it(void **state)
{
  struct plat_hook_result *result = malloc(sizeof(*result));
  int calls = 0;
  struct plat_hook_watch watch = {.stop_requested = stop_now, .ctx = &calls};

  (void)state;
  run_self("sleep", NULL, 60, &watch, result);
  assert_int_equal(result->outcome, PLAT_HOOK_STOPPED);
  assert_true(result->elapsed_ms < 10000);
  free(result);
}

static void hook_missing_program(void **state)
{
  struct plat_hook_result *result = malloc(sizeof(*result));
  struct ag_error err = {0};
  const char *argv[] = {"C:\\no\\such\\program.exe", NULL};

  (void)state;
  assert_int_equal(plat_run_hook(argv, 5, NULL, result, &err), AG_ELOCAL);
  assert_non_null(
      strstr(err.message, "cannot start 'C:\\no\\such\\program.exe'"));
  free(result);
}

int main(int argc, char **argv)
{
  wchar_t self[MAX_PATH * 2];

  plat_init_process(&argc, &argv);
  GetModuleFileNameW(NULL, self, sizeof(self) / sizeof(self[0]));
  char *narrow = win_utf8(self);
  if (narrow != NULL)
    snprintf(self_path, sizeof(self_path), "%s", narrow);
  free(narrow);
  if (argc >= 3 && strcmp(argv[1], "--child") == 0)
    return run_child(argc, argv);

  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(utf8_names_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(missing_folder_is_enoent, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(mkdirs_both_separators, setup, teardown),
      cmocka_unit_test_setup_teardown(long_path_works, setup, teardown),
      cmocka_unit_test_setup_teardown(replace_target_open_with_delete_sharing,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(replace_target_locked_fails, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(stale_temps_removed, setup, teardown),
      cmocka_unit_test_setup_teardown(lock_names_holder, setup, teardown),
      cmocka_unit_test_setup_teardown(secret_read_and_checked, setup, teardown),
      cmocka_unit_test_setup_teardown(secret_folder_rejected, setup, teardown),
      cmocka_unit_test_setup_teardown(secret_open_to_everyone_rejected, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(log_file_appends, setup, teardown),
      cmocka_unit_test(path_helpers),
      cmocka_unit_test(clocks_advance),
      cmocka_unit_test(glob_matches_like_fnmatch),
      cmocka_unit_test(undefined_bytes_rejected),
      cmocka_unit_test(iso_8859_controls_defined),
      cmocka_unit_test(utf8_invalid_after_cut),
      cmocka_unit_test(requests_wake_the_wait),
      cmocka_unit_test(hook_exit_status_and_output),
      cmocka_unit_test(hook_arguments_quoted),
      cmocka_unit_test(hook_stdin_is_empty),
      cmocka_unit_test(hook_output_cut_at_maximum),
      cmocka_unit_test(hook_timeout_ends_tree),
      cmocka_unit_test(hook_stop_request_ends_it),
      cmocka_unit_test(hook_missing_program),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
