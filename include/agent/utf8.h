/* UTF-8 validation. */
#ifndef AGENT_UTF8_H
#define AGENT_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Return the length (1 to 4) of the valid UTF-8 sequence that starts at s,
 * of which len bytes are available, or 0 if it is not valid. Overlong
 * forms, surrogates and code points above U+10FFFF are invalid. len must be
 * at least 1. */
size_t utf8_sequence_length(const unsigned char *s, size_t len);

/* Return whether text is entirely valid UTF-8. When it is not and
 * bad_offset is not NULL, stores the offset of the first invalid byte. */
bool utf8_valid(const void *text, size_t len, size_t *bad_offset);

/* Cut text back to its last whole UTF-8 character, for a message that
 * snprintf() truncated, so that a log line or a reason file never ends in
 * half a character. */
void utf8_trim_cut(char *text);

#endif
