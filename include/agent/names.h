/* Names that cross from the remote server into local files and JSON.
 *
 * A remote name never chooses a local path. Local file names are built by
 * names_local_file(), which escapes every byte that could act as a
 * separator or be unsafe on Windows, the same way on every platform, so
 * the same remote path always gives the same local name. */
#ifndef AGENT_NAMES_H
#define AGENT_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* Build a flat local file name from a remote path relative to the inbox
 * (raw bytes, '/'-separated) and a suffix that the caller controls, such
 * as ".3f2a9c01d4e5b677.json". Returns a malloc'd NUL-terminated string,
 * or NULL when out of memory.
 *
 * Escaping is '%' followed by two uppercase hex digits, and it is
 * reversible. It applies to '/', '\\', ':', '*', '?', '"', '<', '>', '|',
 * '%', control characters, DEL, bytes that are not valid UTF-8, a leading
 * '.', a trailing '.' or ' ' of the whole name, and the first character of
 * a name whose part before the first '.', without trailing spaces, is
 * reserved on Windows (CON, PRN, AUX, NUL, COM0-COM9, LPT0-LPT9, and COM or
 * LPT followed by a superscript 1, 2 or 3, in any case). Valid non-ASCII
 * UTF-8 is kept.
 * A result longer than 200 bytes (before the suffix) is cut at a character
 * boundary and gets '~' and the first 16 hex digits of the SHA-256 of the
 * full relative path appended, so it stays unique. A shorter result that
 * keeps an ASCII capital letter or a non-ASCII character gets the same
 * tail, so that names that differ only in case or Unicode normalization
 * stay apart on file systems that fold them (Windows, macOS). */
char *names_local_file(const void *rel, size_t rel_len, const char *suffix);

/* Return a malloc'd UTF-8 copy of name in which every byte that is not
 * part of valid UTF-8, and every NUL byte, is written as '%' and two
 * uppercase hex digits. Other input is copied unchanged. Returns NULL when
 * out of memory. */
char *names_display(const void *name, size_t len);

/* Return a malloc'd standard base64 (RFC 4648, with padding) encoding of
 * data, or NULL when out of memory. */
char *names_base64(const void *data, size_t len);

/* Return whether a path relative to the inbox is safe to use as a remote
 * path below another folder: not empty, not absolute, with no "." or ".."
 * component, no empty component and no NUL byte. */
bool names_remote_relative_ok(const void *rel, size_t rel_len);

#endif
