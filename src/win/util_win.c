/* Text, path and error helpers for the Windows implementations, and the
 * POSIX functions of compat_win.h. */
#include "compat_win.h"
#include "win_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shlobj.h>

char *strndup(const char *s, size_t n)
{
  size_t len = strnlen(s, n);
  char *copy = malloc(len + 1);

  if (copy == NULL)
    return NULL;
  memcpy(copy, s, len);
  copy[len] = '\0';
  return copy;
}

wchar_t *win_utf16(const char *text)
{
  int count =
      MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, text, -1, NULL, 0);
  if (count <= 0) {
    errno = EILSEQ;
    return NULL;
  }
  wchar_t *wide = malloc((size_t)count * sizeof(*wide));
  if (wide == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, text, -1, wide, count);
  return wide;
}

/* Return a malloc'd extended-length form of the absolute path full:
 * "\\?\" before a drive path, "\\?\UNC\" in place of the two leading
 * separators of a UNC path. A path that already is one is copied. */
static wchar_t *extended_path(const wchar_t *full)
{
  bool unc = full[0] == L'\\' && full[1] == L'\\';
  const wchar_t *prefix = unc ? L"\\\\?\\UNC\\" : L"\\\\?\\";
  const wchar_t *rest = unc ? full + 2 : full;

  if (wcsncmp(full, L"\\\\?\\", 4) == 0) {
    prefix = L"";
    rest = full;
  }
  size_t size = wcslen(prefix) + wcslen(rest) + 1;
  wchar_t *path = malloc(size * sizeof(*path));
  if (path == NULL)
    return NULL;
  wcscpy(path, prefix);
  wcscat(path, rest);
  return path;
}

wchar_t *win_path(const char *path)
{
  wchar_t *wide = win_utf16(path);

  if (wide == NULL || wcslen(wide) < MAX_PATH)
    return wide;

  /* The "\\?\" form skips all normalization, so '/' separators and "."
   * or ".." components must be resolved before the prefix goes on. */
  DWORD size = GetFullPathNameW(wide, 0, NULL, NULL);
  wchar_t *full = size > 0 ? malloc(size * sizeof(*full)) : NULL;
  wchar_t *result = NULL;
  if (full != NULL && GetFullPathNameW(wide, size, full, NULL) < size)
    result = extended_path(full);
  free(full);
  free(wide);
  if (result == NULL)
    errno = ENOMEM;
  return result;
}

char *win_utf8(const wchar_t *text)
{
  int size = WideCharToMultiByte(CP_UTF8, 0, text, -1, NULL, 0, NULL, NULL);
  if (size <= 0)
    return NULL;
  char *narrow = malloc((size_t)size);
  if (narrow == NULL)
    return NULL;
  WideCharToMultiByte(CP_UTF8, 0, text, -1, narrow, size, NULL, NULL);
  return narrow;
}

const char *win_error_text(DWORD code, char *buffer, size_t size)
{
  wchar_t text[512];
  DWORD len =
      FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                     NULL, code, 0, text, sizeof(text) / sizeof(text[0]), NULL);

  /* System messages end in ".\r\n", which would break a log line. */
  while (len > 0 && (text[len - 1] == L'\r' || text[len - 1] == L'\n' ||
                     text[len - 1] == L'.' || text[len - 1] == L' '))
    len--;
  text[len] = L'\0';
  char *narrow = len > 0 ? win_utf8(text) : NULL;
  snprintf(buffer, size, "%s (error %lu)",
           narrow != NULL ? narrow : "unknown error", (unsigned long)code);
  free(narrow);
  return buffer;
}

int win_errno(DWORD code)
{
  switch (code) {
  case ERROR_FILE_NOT_FOUND:
  case ERROR_PATH_NOT_FOUND:
  case ERROR_INVALID_DRIVE:
  case ERROR_BAD_NETPATH:
  case ERROR_BAD_NET_NAME:
    return ENOENT;
  case ERROR_ACCESS_DENIED:
  case ERROR_SHARING_VIOLATION:
  case ERROR_LOCK_VIOLATION:
  case ERROR_PRIVILEGE_NOT_HELD:
    return EACCES;
  case ERROR_FILE_EXISTS:
  case ERROR_ALREADY_EXISTS:
    return EEXIST;
  case ERROR_DIRECTORY:
    return ENOTDIR;
  case ERROR_DIR_NOT_EMPTY:
    return ENOTEMPTY;
  case ERROR_DISK_FULL:
  case ERROR_HANDLE_DISK_FULL:
    return ENOSPC;
  case ERROR_NOT_ENOUGH_MEMORY:
  case ERROR_OUTOFMEMORY:
    return ENOMEM;
  case ERROR_INVALID_NAME:
  case ERROR_BAD_PATHNAME:
  case ERROR_INVALID_PARAMETER:
    return EINVAL;
  case ERROR_FILENAME_EXCED_RANGE:
    return ENAMETOOLONG;
  case ERROR_WRITE_PROTECT:
    return EROFS;
  case ERROR_TOO_MANY_OPEN_FILES:
    return EMFILE;
  default:
    return EIO;
  }
}

const char *win_data_dir(void)
{
  static char *dir;
  wchar_t *base = NULL;

  if (dir != NULL)
    return dir;

  /* SHGetKnownFolderPath() follows a relocated ProgramData, which the
   * environment variable of a service may not show. */
  char *base_text = NULL;
  if (SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, NULL, &base) == S_OK)
    base_text = win_utf8(base);
  CoTaskMemFree(base);

  const char *root = base_text != NULL ? base_text : "C:\\ProgramData";
  size_t size = strlen(root) + sizeof("\\" WIN_DATA_FOLDER);
  dir = malloc(size);
  if (dir != NULL)
    snprintf(dir, size, "%s\\%s", root, WIN_DATA_FOLDER);
  free(base_text);
  return dir != NULL ? dir : "C:\\ProgramData\\" WIN_DATA_FOLDER;
}
