/* Remote path arithmetic. */
#include "agent/rpath.h"

#include <stdlib.h>
#include <string.h>

char *rpath_join(const char *dir, const void *rel, size_t rel_len)
{
  size_t dir_len = strcmp(dir, "/") == 0 ? 0 : strlen(dir);
  char *path = malloc(dir_len + 1 + rel_len + 1);

  if (path == NULL)
    return NULL;
  memcpy(path, dir, dir_len);
  path[dir_len] = '/';
  memcpy(path + dir_len + 1, rel, rel_len);
  path[dir_len + 1 + rel_len] = '\0';
  return path;
}

size_t rpath_base_offset(const void *path, size_t len)
{
  const char *p = path;

  while (len > 0 && p[len - 1] != '/')
    len--;
  return len;
}
