/* Escapes in JSON strings, written the way jansson 2.14 writes them
 * without JSON_ENSURE_ASCII, so that text the agent writes by hand (the
 * outputs in output.c, the manifest records in manifest_record.c) is byte
 * for byte what json_dumps() would write. */
#ifndef AGENT_JSON_TEXT_H
#define AGENT_JSON_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Return whether byte c must be escaped inside a JSON string: the quote,
 * the backslash and the control characters below 0x20. Other bytes,
 * UTF-8 sequences included, are written as they are. */
static inline bool json_text_needs_escape(unsigned char c)
{
  return c < 0x20 || c == '"' || c == '\\';
}

/* Store in out the escape of a byte c for which json_text_needs_escape()
 * is true: \" \\ \b \f \n \r \t, or \u00XX with uppercase hex digits.
 * Returns its length, 2 or 6. */
size_t json_text_escape(unsigned char c, char out[6]);

#endif
