/* Windows implementation of the clock, file and lock parts of
 * agent/platform.h. Paths arrive in UTF-8 and go to the W functions as
 * UTF-16 (win_path()).
 *
 * Files that the agent opens share read, write and delete access, so the
 * agent never keeps a reader from moving a document away, and a reader
 * that shares delete access too never keeps the agent from replacing one.
 * Access rights come from the folder's inherited ACL, which the install command
 * limits to Administrators, SYSTEM and the service's account. The POSIX modes
 * 0600, 0640 and 0750 have no Windows counterpart here. */
#define _CRT_RAND_S
#include "agent/platform.h"

#include "win_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Attempts and the first pause of plat_replace() while another program
 * has the target open without delete sharing, as virus scanners and
 * indexers do for a moment after a file appears. The pause doubles, so
 * the attempts span about 2.5 s. */
#define REPLACE_ATTEMPTS 8
#define REPLACE_FIRST_PAUSE_MS 20

/* Attempts of plat_create_temp() to find an unused name. */
#define TEMP_ATTEMPTS 100

/* The time from 1601-01-01 (FILETIME) to 1970-01-01 (Unix), in 100 ns
 * units. */
#define FILETIME_UNIX_OFFSET 116444736000000000LL

#define SHARE_ALL (FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)

/* FileRenameInfoEx of FILE_INFO_BY_HANDLE_CLASS (Windows 10 1809), which
 * the mingw-w64 headers hide behind a version test that never passes. */
#define RENAME_INFO_EX ((FILE_INFO_BY_HANDLE_CLASS)22)

int64_t plat_monotonic_ms(void)
{
  static LARGE_INTEGER frequency;
  LARGE_INTEGER now;

  /* QueryPerformanceCounter() is exact to the millisecond, where
   * GetTickCount64() moves in steps of about 16 ms. Both always succeed
   * since Windows XP. */
  if (frequency.QuadPart == 0)
    QueryPerformanceFrequency(&frequency);
  QueryPerformanceCounter(&now);
  return (int64_t)(now.QuadPart / frequency.QuadPart * 1000 +
                   now.QuadPart % frequency.QuadPart * 1000 /
                       frequency.QuadPart);
}

int64_t plat_wall_time(void)
{
  return plat_wall_time_ms() / 1000;
}

int64_t plat_wall_time_ms(void)
{
  FILETIME now;
  ULARGE_INTEGER ticks;

  GetSystemTimeAsFileTime(&now);
  ticks.LowPart = now.dwLowDateTime;
  ticks.HighPart = now.dwHighDateTime;
  return ((int64_t)ticks.QuadPart - FILETIME_UNIX_OFFSET) / 10000;
}

void plat_sleep_ms(int64_t ms)
{
  if (ms > 0)
    Sleep(ms > (int64_t)INFINITE - 1 ? INFINITE - 1 : (DWORD)ms);
}

static bool is_separator(char c)
{
  return c == '/' || c == '\\';
}

/* Return the length of the part of path that cannot be created: "C:\",
 * "\\server\share\" or a leading separator. */
static size_t root_length(const char *path)
{
  if (path[0] != '\0' && path[1] == ':')
    return is_separator(path[2]) ? 3 : 2;
  if (is_separator(path[0]) && is_separator(path[1])) {
    size_t i = 2;
    for (int parts = 0; parts < 2 && path[i] != '\0'; parts++) {
      while (path[i] != '\0' && !is_separator(path[i]))
        i++;
      if (path[i] != '\0')
        i++;
    }
    return i;
  }
  return is_separator(path[0]) ? 1 : 0;
}

/* Create the folder at path unless it exists. Returns 0 or a Win32 error
 * code. */
static DWORD make_folder(const char *path)
{
  wchar_t *wide = win_path(path);
  DWORD error = 0;

  if (wide == NULL)
    return errno == ENOMEM ? ERROR_NOT_ENOUGH_MEMORY : ERROR_INVALID_NAME;
  if (!CreateDirectoryW(wide, NULL)) {
    error = GetLastError();
    if (error == ERROR_ALREADY_EXISTS || error == ERROR_ACCESS_DENIED) {
      /* An existing folder is fine, and so is a drive root or share that
       * rejects creation but exists. */
      DWORD attributes = GetFileAttributesW(wide);
      if (attributes != INVALID_FILE_ATTRIBUTES)
        error = 0;
    }
  }
  free(wide);
  return error;
}

enum ag_code plat_mkdirs(const char *dir, struct ag_error *err)
{
  char text[256];
  char *path = NULL;
  enum ag_code code = AG_OK;

  if (dir[0] == '\0')
    return ag_error_set(err, AG_ELOCAL,
                        "cannot create folder: the path is empty");
  path = strdup(dir);
  if (path == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");

  /* Create each component after the root in turn. */
  for (char *end = path + root_length(path);; end++) {
    char saved = *end;
    if (!is_separator(saved) && saved != '\0')
      continue;
    if (end > path && !is_separator(end[-1])) {
      *end = '\0';
      DWORD error = make_folder(path);
      if (error != 0) {
        code = ag_error_set(err, AG_ELOCAL, "cannot create folder '%s': %s",
                            path, win_error_text(error, text, sizeof(text)));
        goto out;
      }
      *end = saved;
    }
    if (saved == '\0')
      break;
  }

  wchar_t *wide = win_path(dir);
  DWORD attributes = wide != NULL ? GetFileAttributesW(wide) : 0;
  free(wide);
  if (attributes == INVALID_FILE_ATTRIBUTES ||
      (attributes & FILE_ATTRIBUTE_DIRECTORY) == 0)
    code = ag_error_set(err, AG_ELOCAL, "'%s' exists but is not a folder", dir);
out:
  free(path);
  return code;
}

int plat_exists(const char *path)
{
  wchar_t *wide = win_path(path);

  if (wide == NULL)
    return -1;
  DWORD attributes = GetFileAttributesW(wide);
  DWORD error = GetLastError();
  free(wide);
  if (attributes != INVALID_FILE_ATTRIBUTES)
    return 1;
  return win_errno(error) == ENOENT ? 0 : -1;
}

/* Wrap a file handle in a stdio stream with mode. Closes the handle when
 * that fails. */
static FILE *stream_from_handle(HANDLE handle, int flags, const char *mode)
{
  int fd = _open_osfhandle((intptr_t)handle, flags);

  if (fd < 0) {
    CloseHandle(handle);
    errno = EMFILE;
    return NULL;
  }
  FILE *file = _fdopen(fd, mode);
  if (file == NULL)
    _close(fd);
  return file;
}

enum ag_code plat_create_temp(const char *dir, const char *prefix,
                              FILE **file_out, char **path_out,
                              struct ag_error *err)
{
  static const char letters[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  size_t size = strlen(dir) + strlen(prefix) + sizeof("/.XXXXXX.tmp");
  char *path = malloc(size);
  DWORD error = ERROR_FILE_EXISTS;
  char text[256];

  *file_out = NULL;
  *path_out = NULL;
  if (path == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");

  for (int attempt = 0; attempt < TEMP_ATTEMPTS && error == ERROR_FILE_EXISTS;
       attempt++) {
    char tag[7];
    for (size_t i = 0; i < 6; i++) {
      unsigned int value = 0;
      rand_s(&value);
      tag[i] = letters[value % (sizeof(letters) - 1)];
    }
    tag[6] = '\0';
    snprintf(path, size, "%s/%s.%s.tmp", dir, prefix, tag);

    wchar_t *wide = win_path(path);
    if (wide == NULL) {
      error = ERROR_INVALID_NAME;
      break;
    }
    /* CREATE_NEW fails on an existing name, like O_EXCL. */
    HANDLE handle = CreateFileW(wide, GENERIC_WRITE, SHARE_ALL, NULL,
                                CREATE_NEW, FILE_ATTRIBUTE_NORMAL, NULL);
    error = handle == INVALID_HANDLE_VALUE ? GetLastError() : 0;
    free(wide);
    if (error == 0) {
      *file_out = stream_from_handle(handle, _O_WRONLY | _O_BINARY, "wb");
      if (*file_out == NULL) {
        ag_error_set(err, AG_ELOCAL, "cannot open '%s': %s", path,
                     strerror(errno));
        plat_remove(path);
        free(path);
        return err->code;
      }
    }
  }
  if (error != 0) {
    ag_error_set(err, AG_ELOCAL, "cannot create a temporary file in '%s': %s",
                 dir, win_error_text(error, text, sizeof(text)));
    free(path);
    return err->code;
  }
  *path_out = path;
  return AG_OK;
}

/* Return whether name is "<prefix>.<anything>.tmp". */
static bool is_temp_name(const char *name, const char *prefix)
{
  size_t len = strlen(name);
  size_t prefix_len = strlen(prefix);

  return len > prefix_len + 4 && strncmp(name, prefix, prefix_len) == 0 &&
         name[prefix_len] == '.' && strcmp(name + len - 4, ".tmp") == 0;
}

int plat_remove_stale_temps(const char *dir, const char *prefix)
{
  struct plat_dir *folder = plat_dir_open(dir);
  size_t dir_len = strlen(dir);
  int removed = 0;

  if (folder == NULL)
    return -1;
  for (const char *name = plat_dir_next(folder); name != NULL;
       name = plat_dir_next(folder)) {
    if (!is_temp_name(name, prefix))
      continue;
    char *path = malloc(dir_len + strlen(name) + 2);
    if (path == NULL)
      break;
    sprintf(path, "%s/%s", dir, name);
    if (plat_unlink(path) == 0)
      removed++;
    free(path);
  }
  plat_dir_close(folder);
  return removed;
}

enum ag_code plat_share_with_group(FILE *file, const char *path,
                                   struct ag_error *err)
{
  /* NOTE: no group mode on Windows. The output folder's inherited ACL
   * decides who reads the file; grant the target system's account read
   * access to output_dir. */
  (void)file;
  (void)path;
  (void)err;
  return AG_OK;
}

/* NOTE: Windows has no call that starts the write-back of one file
 * without waiting for it, so only the stdio buffer is flushed here. */
enum ag_code plat_flush(FILE *file, const char *path, struct ag_error *err)
{
  if (fflush(file) != 0 || ferror(file))
    return ag_error_set(err, AG_ELOCAL, "cannot write '%s': %s", path,
                        strerror(errno));
  return AG_OK;
}

enum ag_code plat_sync_close(FILE *file, const char *path, struct ag_error *err)
{
  enum ag_code code = AG_OK;
  char text[256];

  if (fflush(file) != 0 || ferror(file)) {
    code = ag_error_set(err, AG_ELOCAL, "cannot write '%s': %s", path,
                        strerror(errno));
  } else {
    HANDLE handle = (HANDLE)_get_osfhandle(_fileno(file));
    if (!FlushFileBuffers(handle))
      code = ag_error_set(err, AG_ELOCAL, "cannot sync '%s' to disk: %s", path,
                          win_error_text(GetLastError(), text, sizeof(text)));
  }
  if (fclose(file) != 0 && code == AG_OK)
    code = ag_error_set(err, AG_ELOCAL, "cannot close '%s': %s", path,
                        strerror(errno));
  return code;
}

enum ag_code plat_close(FILE *file, const char *path, struct ag_error *err)
{
  enum ag_code code = AG_OK;

  if (fflush(file) != 0 || ferror(file))
    code = ag_error_set(err, AG_ELOCAL, "cannot write '%s': %s", path,
                        strerror(errno));
  if (fclose(file) != 0 && code == AG_OK)
    code = ag_error_set(err, AG_ELOCAL, "cannot close '%s': %s", path,
                        strerror(errno));
  return code;
}

/* NOTE: flushing a whole volume needs administrator rights on Windows, so
 * there is no file system to open, and files are flushed one by one. */
struct plat_file_system {
  int unused;
};

enum ag_code plat_file_system_open(const char *dir,
                                   struct plat_file_system **out,
                                   struct ag_error *err)
{
  (void)dir;
  (void)err;
  *out = NULL;
  return AG_OK;
}

enum ag_code plat_file_system_sync(struct plat_file_system *fs,
                                   struct ag_error *err)
{
  (void)fs;
  return ag_error_set(err, AG_ELOCAL,
                      "cannot sync a whole file system on Windows");
}

void plat_file_system_close(struct plat_file_system *fs)
{
  (void)fs;
}

/* Return whether a failed move may succeed when tried again, because
 * another program has the target open without FILE_SHARE_DELETE or a
 * scanner still reads the new file. */
static bool is_transient_move_error(DWORD error)
{
  return error == ERROR_SHARING_VIOLATION || error == ERROR_ACCESS_DENIED ||
         error == ERROR_LOCK_VIOLATION;
}

/* Rename from onto to with POSIX semantics (Windows 10 1809 and later, on
 * NTFS): a target that a reader has open with FILE_SHARE_DELETE is
 * replaced, and the reader keeps the old content. MoveFileExW() fails on
 * such a target. Returns 0 or a Win32 error code. */
static DWORD rename_posix(const wchar_t *from, const wchar_t *to)
{
  size_t to_len = wcslen(to);
  size_t size = sizeof(FILE_RENAME_INFO) + to_len * sizeof(wchar_t);
  FILE_RENAME_INFO *info = calloc(1, size);
  DWORD error = 0;

  if (info == NULL)
    return ERROR_NOT_ENOUGH_MEMORY;
  HANDLE handle = CreateFileW(from, DELETE | SYNCHRONIZE, SHARE_ALL, NULL,
                              OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
  if (handle == INVALID_HANDLE_VALUE) {
    free(info);
    return GetLastError();
  }
  info->Flags =
      FILE_RENAME_FLAG_REPLACE_IF_EXISTS | FILE_RENAME_FLAG_POSIX_SEMANTICS;
  info->FileNameLength = (DWORD)(to_len * sizeof(wchar_t));
  memcpy(info->FileName, to, (to_len + 1) * sizeof(wchar_t));
  if (!SetFileInformationByHandle(handle, RENAME_INFO_EX, info, (DWORD)size))
    error = GetLastError();
  CloseHandle(handle);
  free(info);
  return error;
}

/* Rename from onto to: with POSIX semantics where the system and file
 * system have them, otherwise with MoveFileExW(). */
static DWORD rename_once(const wchar_t *from, const wchar_t *to)
{
  DWORD error = rename_posix(from, to);

  if (error == 0 || is_transient_move_error(error) ||
      error == ERROR_FILE_NOT_FOUND || error == ERROR_PATH_NOT_FOUND)
    return error;
  /* Older systems and FAT volumes reject RENAME_INFO_EX. */
  if (MoveFileExW(from, to, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH))
    return 0;
  return GetLastError();
}

/* Flush the renamed file, so that NTFS writes the journal records of the
 * rename to disk. Windows cannot flush a folder as fsync() does on POSIX,
 * but the file's flush commits the journal up to the rename. A reader that
 * opened the file meanwhile without write sharing keeps it from being
 * opened, and then the flush is skipped. */
static DWORD flush_renamed(const wchar_t *to)
{
  HANDLE handle = CreateFileW(to, GENERIC_WRITE, SHARE_ALL, NULL, OPEN_EXISTING,
                              FILE_ATTRIBUTE_NORMAL, NULL);
  DWORD error = 0;

  if (handle == INVALID_HANDLE_VALUE)
    return GetLastError() == ERROR_SHARING_VIOLATION ? 0 : GetLastError();
  if (!FlushFileBuffers(handle))
    error = GetLastError();
  CloseHandle(handle);
  return error;
}

enum ag_code plat_sync_dir(const char *dir, struct ag_error *err)
{
  wchar_t *wide = win_path(dir);
  DWORD error = 0;
  char text[256];

  /* Windows has no fsync() for a folder. The documented way to flush a
   * handle's metadata is FlushFileBuffers() on a handle with write access,
   * which a folder gives with FILE_FLAG_BACKUP_SEMANTICS; NTFS then
   * commits its journal, renames and new names in the folder included.
   * Without the right to open the folder for writing (a service account
   * without it, or a network share), the renamed files' own flushes
   * (plat_replace()) remain, so that case is not an error. */
  if (wide == NULL)
    return ag_error_set(err, AG_ELOCAL, "cannot sync folder '%s': %s", dir,
                        strerror(errno));
  HANDLE handle = CreateFileW(wide, GENERIC_WRITE, SHARE_ALL, NULL,
                              OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
  free(wide);
  if (handle == INVALID_HANDLE_VALUE) {
    error = GetLastError();
    if (error == ERROR_ACCESS_DENIED)
      error = 0;
  } else {
    if (!FlushFileBuffers(handle) && GetLastError() != ERROR_ACCESS_DENIED &&
        GetLastError() != ERROR_INVALID_FUNCTION)
      error = GetLastError();
    CloseHandle(handle);
  }
  if (error == 0)
    return AG_OK;
  return ag_error_set(err, AG_ELOCAL, "cannot sync folder '%s': %s", dir,
                      win_error_text(error, text, sizeof(text)));
}

/* plat_replace() and plat_rename(): rename from onto to, retrying while
 * another program holds to open, then flush the renamed file when flush
 * is set. */
static enum ag_code replace_file(const char *from, const char *to, bool flush,
                                 struct ag_error *err)
{
  wchar_t *wide_from = win_path(from);
  wchar_t *wide_to = win_path(to);
  DWORD error = 0;
  DWORD pause = REPLACE_FIRST_PAUSE_MS;
  char text[256];

  if (wide_from == NULL || wide_to == NULL) {
    free(wide_from);
    free(wide_to);
    return ag_error_set(err, AG_ELOCAL, "cannot rename '%s' to '%s': %s", from,
                        to, strerror(errno));
  }

  for (int attempt = 1;; attempt++) {
    error = rename_once(wide_from, wide_to);
    if (error == 0 || !is_transient_move_error(error) ||
        attempt == REPLACE_ATTEMPTS)
      break;
    Sleep(pause);
    pause *= 2;
  }
  DWORD flush_error = error == 0 && flush ? flush_renamed(wide_to) : 0;
  free(wide_from);
  free(wide_to);

  if (flush_error != 0)
    return ag_error_set(err, AG_ELOCAL, "cannot sync '%s' to disk: %s", to,
                        win_error_text(flush_error, text, sizeof(text)));
  if (error == 0)
    return AG_OK;
  if (is_transient_move_error(error))
    return ag_error_set(err, AG_ELOCAL,
                        "cannot rename '%s' to '%s': %s. Another program may "
                        "hold '%s' open without delete sharing",
                        from, to, win_error_text(error, text, sizeof(text)),
                        to);
  return ag_error_set(err, AG_ELOCAL, "cannot rename '%s' to '%s': %s", from,
                      to, win_error_text(error, text, sizeof(text)));
}

enum ag_code plat_replace(const char *from, const char *to,
                          struct ag_error *err)
{
  return replace_file(from, to, true, err);
}

enum ag_code plat_rename(const char *from, const char *to, struct ag_error *err)
{
  return replace_file(from, to, false, err);
}

enum ag_code plat_set_file_size(FILE *file, const char *path, uint64_t size,
                                struct ag_error *err)
{
  if (fflush(file) != 0 || _chsize_s(_fileno(file), (__int64)size) != 0)
    return ag_error_set(err, AG_ELOCAL, "cannot write '%s': %s", path,
                        strerror(errno));
  return AG_OK;
}

enum ag_code plat_rename_new(const char *from, const char *to,
                             struct ag_error *err)
{
  wchar_t *wide_from = win_path(from);
  wchar_t *wide_to = win_path(to);
  DWORD error = 0;
  char text[256];

  /* Without MOVEFILE_REPLACE_EXISTING the move fails on an existing to,
   * in one step, as link() does on POSIX. */
  if (wide_from == NULL || wide_to == NULL)
    error = ERROR_INVALID_NAME;
  else if (!MoveFileExW(wide_from, wide_to, MOVEFILE_WRITE_THROUGH))
    error = GetLastError();
  if (error == 0)
    error = flush_renamed(wide_to);
  free(wide_from);
  free(wide_to);
  if (error == 0)
    return AG_OK;
  return ag_error_set(
      err,
      error == ERROR_ALREADY_EXISTS || error == ERROR_FILE_EXISTS ? AG_EEXIST
                                                                  : AG_ELOCAL,
      "cannot rename '%s' to '%s': %s", from, to,
      win_error_text(error, text, sizeof(text)));
}

bool plat_write_all(int fd, const void *data, size_t len)
{
  const char *next = data;

  while (len > 0) {
    unsigned int chunk = len > 0x40000000 ? 0x40000000 : (unsigned int)len;
    int written = _write(fd, next, chunk);

    if (written <= 0)
      return false;
    next += written;
    len -= (size_t)written;
  }
  return true;
}

void plat_remove(const char *path)
{
  plat_unlink(path);
}

int plat_unlink(const char *path)
{
  wchar_t *wide = win_path(path);

  if (wide == NULL)
    return errno;
  BOOL deleted = DeleteFileW(wide);
  DWORD error = GetLastError();
  free(wide);
  return deleted ? 0 : win_errno(error);
}

FILE *plat_fopen(const char *path, const char *mode)
{
  bool plus = strchr(mode, '+') != NULL;
  DWORD access = 0;
  DWORD disposition = 0;
  int flags = strchr(mode, 'b') != NULL ? _O_BINARY : _O_TEXT;

  switch (mode[0]) {
  case 'r':
    access = GENERIC_READ | (plus ? GENERIC_WRITE : 0);
    disposition = OPEN_EXISTING;
    flags |= plus ? _O_RDWR : _O_RDONLY;
    break;
  case 'w':
    access = GENERIC_WRITE | (plus ? GENERIC_READ : 0);
    disposition = CREATE_ALWAYS;
    flags |= plus ? _O_RDWR : _O_WRONLY;
    break;
  case 'a':
    access = FILE_APPEND_DATA | (plus ? GENERIC_READ : 0);
    disposition = OPEN_ALWAYS;
    flags |= (plus ? _O_RDWR : _O_WRONLY) | _O_APPEND;
    break;
  default:
    errno = EINVAL;
    return NULL;
  }

  wchar_t *wide = win_path(path);
  if (wide == NULL)
    return NULL;
  /* No SECURITY_ATTRIBUTES: the handle is not inherited by hooks. */
  HANDLE handle = CreateFileW(wide, access, SHARE_ALL, NULL, disposition,
                              FILE_ATTRIBUTE_NORMAL, NULL);
  DWORD error = GetLastError();
  free(wide);
  if (handle == INVALID_HANDLE_VALUE) {
    errno = win_errno(error);
    return NULL;
  }

  char stdio_mode[8];
  snprintf(stdio_mode, sizeof(stdio_mode), "%c%s%s", mode[0], plus ? "+" : "",
           (flags & _O_BINARY) != 0 ? "b" : "t");
  return stream_from_handle(handle, flags, stdio_mode);
}

int plat_file_size(const char *path, int64_t *size_out)
{
  WIN32_FILE_ATTRIBUTE_DATA data;
  wchar_t *wide = win_path(path);

  *size_out = 0;
  if (wide == NULL)
    return errno;
  BOOL found = GetFileAttributesExW(wide, GetFileExInfoStandard, &data);
  DWORD error = GetLastError();
  free(wide);
  if (!found)
    return win_errno(error);
  *size_out = (int64_t)(((uint64_t)data.nFileSizeHigh << 32) |
                        (uint64_t)data.nFileSizeLow);
  return 0;
}

bool plat_path_is_absolute(const char *path)
{
  bool drive = ((path[0] >= 'A' && path[0] <= 'Z') ||
                (path[0] >= 'a' && path[0] <= 'z')) &&
               path[1] == ':' && is_separator(path[2]);

  return drive || (is_separator(path[0]) && is_separator(path[1]));
}

const char *plat_path_base(const char *path)
{
  const char *base = path;

  for (const char *c = path; *c != '\0'; c++) {
    if (is_separator(*c) || *c == ':')
      base = c + 1;
  }
  return base;
}

struct plat_dir {
  HANDLE find;
  WIN32_FIND_DATAW entry;
  bool entry_pending; /* entry is the first result, not yet returned */
  char *name;         /* the last name returned, in UTF-8 */
};

struct plat_dir *plat_dir_open(const char *path)
{
  size_t len = strlen(path);
  char *pattern = malloc(len + 3);
  struct plat_dir *dir = calloc(1, sizeof(*dir));
  wchar_t *wide = NULL;

  if (pattern == NULL || dir == NULL) {
    free(pattern);
    free(dir);
    errno = ENOMEM;
    return NULL;
  }
  snprintf(pattern, len + 3, "%s\\*", path);
  wide = win_path(pattern);
  free(pattern);
  if (wide == NULL) {
    free(dir);
    return NULL;
  }
  dir->find = FindFirstFileExW(wide, FindExInfoBasic, &dir->entry,
                               FindExSearchNameMatch, NULL, 0);
  DWORD error = GetLastError();
  free(wide);
  if (dir->find == INVALID_HANDLE_VALUE) {
    free(dir);
    errno = win_errno(error);
    return NULL;
  }
  dir->entry_pending = true;
  return dir;
}

const char *plat_dir_next(struct plat_dir *dir)
{
  for (;;) {
    if (!dir->entry_pending && !FindNextFileW(dir->find, &dir->entry))
      return NULL;
    dir->entry_pending = false;
    const wchar_t *name = dir->entry.cFileName;
    if (wcscmp(name, L".") == 0 || wcscmp(name, L"..") == 0)
      continue;
    free(dir->name);
    dir->name = win_utf8(name);
    if (dir->name != NULL)
      return dir->name;
  }
}

void plat_dir_close(struct plat_dir *dir)
{
  if (dir == NULL)
    return;
  FindClose(dir->find);
  free(dir->name);
  free(dir);
}

struct plat_lock {
  HANDLE handle;
};

/* The byte that plat_lock() locks, far beyond the process id at the start
 * of the file. Windows locks are mandatory, so locking the id itself would
 * keep the next agent from reading who holds the lock. */
#define LOCK_OFFSET_HIGH 0x7FFFFFFFu

/* Read the process id that the current holder wrote into the lock file. */
static long read_holder_pid(HANDLE handle)
{
  char text[32] = "";
  DWORD got = 0;
  OVERLAPPED at = {0};

  if (!ReadFile(handle, text, sizeof(text) - 1, &got, &at) || got == 0)
    return 0;
  text[got] = '\0';
  return strtol(text, NULL, 10);
}

/* Replace the content of the lock file with this process's id. */
static bool write_own_pid(HANDLE handle)
{
  char text[32];
  DWORD written = 0;
  OVERLAPPED at = {0};
  int len = snprintf(text, sizeof(text), "%lu\n",
                     (unsigned long)GetCurrentProcessId());

  if (SetFilePointer(handle, 0, NULL, FILE_BEGIN) == INVALID_SET_FILE_POINTER ||
      !SetEndOfFile(handle))
    return false;
  return WriteFile(handle, text, (DWORD)len, &written, &at) &&
         written == (DWORD)len;
}

enum ag_code plat_lock(const char *path, struct plat_lock **lock_out,
                       struct ag_error *err)
{
  wchar_t *wide = win_path(path);
  char text[256];

  *lock_out = NULL;
  if (wide == NULL)
    return ag_error_set(err, AG_ELOCAL, "cannot open lock file '%s': %s", path,
                        strerror(errno));
  HANDLE handle = CreateFileW(wide, GENERIC_READ | GENERIC_WRITE, SHARE_ALL,
                              NULL, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
  DWORD error = GetLastError();
  free(wide);
  if (handle == INVALID_HANDLE_VALUE)
    return ag_error_set(err, AG_ELOCAL, "cannot open lock file '%s': %s", path,
                        win_error_text(error, text, sizeof(text)));

  /* Like flock(), the lock belongs to the handle and ends with the
   * process, so it never outlives a crash. */
  OVERLAPPED range = {.OffsetHigh = LOCK_OFFSET_HIGH};
  if (!LockFileEx(handle, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY,
                  0, 1, 0, &range)) {
    error = GetLastError();
    if (error == ERROR_LOCK_VIOLATION || error == ERROR_IO_PENDING)
      ag_error_set(err, AG_ELOCKED,
                   "another agent (process %ld) is using the state folder; "
                   "lock file '%s'. Wait for it to finish or stop it",
                   read_holder_pid(handle), path);
    else
      ag_error_set(err, AG_ELOCAL, "cannot lock '%s': %s", path,
                   win_error_text(error, text, sizeof(text)));
    CloseHandle(handle);
    return err->code;
  }

  if (!write_own_pid(handle)) {
    ag_error_set(err, AG_ELOCAL, "cannot write lock file '%s': %s", path,
                 win_error_text(GetLastError(), text, sizeof(text)));
    CloseHandle(handle);
    return err->code;
  }

  struct plat_lock *lock = malloc(sizeof(*lock));
  if (lock == NULL) {
    CloseHandle(handle);
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  }
  lock->handle = handle;
  *lock_out = lock;
  return AG_OK;
}

void plat_unlock(struct plat_lock *lock)
{
  if (lock == NULL)
    return;
  CloseHandle(lock->handle);
  free(lock);
}

void plat_wipe(void *p, size_t len)
{
  SecureZeroMemory(p, len);
}
