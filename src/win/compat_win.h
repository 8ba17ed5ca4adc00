/* POSIX functions that the core uses and the mingw-w64 C runtime lacks.
 * CMake includes this header ahead of every source file of a Windows
 * build (-include), so the core keeps calling the POSIX names. */
#ifndef AGENT_COMPAT_WIN_H
#define AGENT_COMPAT_WIN_H

#include <stddef.h>

/* C11 has code test __STDC_NO_THREADS__ before it includes <threads.h>.
 * GCC leaves that macro to the C library, and mingw-w64 with the win32
 * thread model neither defines it nor ships the header. */
#if !defined(__STDC_NO_THREADS__) && defined(__has_include)
#if !__has_include(<threads.h>)
#define __STDC_NO_THREADS__ 1
#endif
#endif

/* Return a malloc'd copy of at most n bytes of s, NUL-terminated, or NULL
 * when out of memory (POSIX.1-2008). */
char *strndup(const char *s, size_t n);

#endif
