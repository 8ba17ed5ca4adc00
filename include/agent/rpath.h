/* Remote path arithmetic. Remote paths are '/'-separated byte strings. */
#ifndef AGENT_RPATH_H
#define AGENT_RPATH_H

#include <stddef.h>

/* Return dir + "/" + rel as a malloc'd NUL-terminated string, with no
 * doubled '/' when dir is "/". Returns NULL when out of memory. */
char *rpath_join(const char *dir, const void *rel, size_t rel_len);

/* Return the offset of the base name in path[0..len): the byte after the
 * last '/', or 0 when there is none. */
size_t rpath_base_offset(const void *path, size_t len);

#endif
