/* Conversion of text from a legacy encoding to UTF-8, block by block.
 *
 * A converter turns a stream of bytes in a named source encoding (such as
 * "windows-1250" or "iso-8859-1") into UTF-8. The caller hands it the
 * stream in blocks of any size. A multibyte sequence that a block cuts
 * is kept inside the converter and finished with the next block. A byte
 * that the source encoding does not define is an error with its offset:
 * the converter never substitutes U+FFFD or guesses a character.
 *
 * The POSIX build uses iconv (src/posix/textconv_posix.c). A Windows build
 * provides the same functions in src/win/ and maps the names to code
 * pages. */
#ifndef AGENT_TEXTCONV_H
#define AGENT_TEXTCONV_H

#include <stdbool.h>
#include <stddef.h>

#include "agent/error.h"

struct textconv;

/* Open a converter from the encoding called name to UTF-8. Names are
 * matched without regard to ASCII case. On success stores the converter
 * in *out, which the caller closes with textconv_close(). Returns
 * AG_ECONFIG when the system cannot convert from name, or AG_ENOMEM. */
enum ag_code textconv_open(const char *name, struct textconv **out,
                           struct ag_error *err);

/* Convert the next len bytes of the stream. On success *out points to the
 * UTF-8 text converted so far that was not returned before, *out_len
 * bytes long. The text belongs to conv and stays valid until the next
 * call or textconv_close(). Bytes of an unfinished sequence at the end of
 * in are kept for the next call, unless at_end is true, which means that
 * no more input follows (in may then be empty).
 *
 * Returns AG_EPARSE when the stream contains a byte that is invalid in the
 * source encoding, or ends inside a sequence. The message gives the byte
 * offset, counted from the first byte of the stream, and the byte value.
 * *out and *out_len then hold the text before that byte, and
 * textconv_offset() returns its offset. After an error the converter
 * accepts no more input. Returns AG_ENOMEM when out of memory. */
enum ag_code textconv_convert(struct textconv *conv, const void *in, size_t len,
                              bool at_end, const char **out, size_t *out_len,
                              struct ag_error *err);

/* Return the offset in the stream of the first byte not yet converted:
 * the number of bytes converted so far, or after AG_EPARSE the offset of
 * the invalid byte. */
unsigned long long textconv_offset(const struct textconv *conv);

/* Return the encoding name as passed to textconv_open(). */
const char *textconv_name(const struct textconv *conv);

/* Close a converter and free its buffers. Accepts NULL. */
void textconv_close(struct textconv *conv);

#endif
