/* Input of the XML export parser: libxml2's read callback, which reads
 * the file or the live input, and the raw-byte scan of each block. The
 * scan runs before libxml2 reads the block, so that a DOCTYPE or a start
 * tag with more than EXPORT_XML_MAX_ATTRIBUTES attributes fails the parse
 * first. scan_block gives the reason and the input it skips. */
#include "export_xml_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Reasons for which the raw scan fails the file. */
enum raw_violation {
  RAW_NO_VIOLATION,
  RAW_VIOLATION_DOCTYPE,
  RAW_VIOLATION_ATTRIBUTES,
};

/* The bytes that can end a run of name and white space characters in a
 * start tag: a quote starts a value, '=' counts an attribute, '>' ends the
 * tag. */
static const bool start_tag_stops[256] = {
    ['"'] = true, ['\''] = true, ['='] = true, ['>'] = true};

/* Decide from the first bytes whether the raw scan can read the input.
 * ASCII-compatible input, such as UTF-8 or ISO-8859-1, starts with '<',
 * white space or the UTF-8 byte order mark, and its second byte is not
 * NUL as in UTF-16 without a byte order mark. Input that starts otherwise
 * is either in another encoding or not XML, which libxml2 reports. */
static void check_encoding(struct raw_scan *scan, const char *data, size_t len)
{
  unsigned char first = (unsigned char)data[0];

  scan->encoding_checked = true;
  scan->ascii_compatible = (first == '<' || first == 0xEF || first == ' ' ||
                            first == '\t' || first == '\r' || first == '\n') &&
                           (len < 2 || data[1] != '\0');
}

#if defined(__SSE2__)
/* Return the sum of the 16 byte counters. */
static size_t sum_counters(__m128i counters)
{
  __m128i sums = _mm_sad_epu8(counters, _mm_setzero_si128());

  return (size_t)_mm_cvtsi128_si32(sums) + (size_t)_mm_extract_epi16(sums, 4);
}
#endif

static long count_newlines(const char *data, size_t len)
{
  size_t count = 0;
  size_t i = 0;

#if defined(__SSE2__)
  /* Each step subtracts the compare result, -1 per newline, from byte
   * counters, which are summed before any of them can overflow. */
  const __m128i newline = _mm_set1_epi8('\n');
  while (len - i >= 32) {
    size_t steps = (len - i) / 32 < 127 ? (len - i) / 32 : 127;
    __m128i counters = _mm_setzero_si128();
    for (; steps > 0; steps--, i += 32) {
      __m128i low = _mm_loadu_si128((const __m128i *)(const void *)(data + i));
      __m128i high =
          _mm_loadu_si128((const __m128i *)(const void *)(data + i + 16));
      counters = _mm_sub_epi8(counters, _mm_cmpeq_epi8(low, newline));
      counters = _mm_sub_epi8(counters, _mm_cmpeq_epi8(high, newline));
    }
    count += sum_counters(counters);
  }
#endif
  for (; i < len; i++)
    count += data[i] == '\n';
  return (long)count;
}

/* Enter markup that ends at terminator: "-->", "]]>", "?>" or ">". */
static void expect_end(struct raw_scan *scan, const char *terminator)
{
  scan->state = RAW_UNTIL_END;
  scan->terminator = terminator;
  scan->matched = 0;
}

/* Return the length of the run of one repeated byte before the '>' of the
 * current terminator: 2 for "-->" and "]]>", 1 for "?>", 0 for ">". */
static size_t terminator_run(const struct raw_scan *scan)
{
  size_t run = 0;

  while (scan->terminator[run + 1] != '\0')
    run++;
  return run;
}

/* Advance over byte c of markup that ends with the terminator. Each
 * terminator is a run of one repeated byte and then '>', so the run stays
 * matched while the byte repeats, as in "--->". */
static void scan_until_end(struct raw_scan *scan, char c)
{
  size_t run = terminator_run(scan);

  if (c == '>' && scan->matched >= run)
    scan->state = RAW_TEXT;
  else if (run > 0 && c == scan->terminator[0])
    scan->matched = scan->matched < run ? scan->matched + 1 : run;
  else
    scan->matched = 0;
}

/* Advance over byte c of a start tag outside attribute values. Each
 * attribute has exactly one '=' outside its quoted value, so the '='
 * bytes count the attributes. */
static enum raw_violation scan_start_tag(struct raw_scan *scan, char c)
{
  if (c == '"' || c == '\'') {
    scan->state = RAW_QUOTED;
    scan->quote = c;
  } else if (c == '>') {
    scan->state = RAW_TEXT;
  } else if (c == '=' && ++scan->attributes > EXPORT_XML_MAX_ATTRIBUTES) {
    return RAW_VIOLATION_ATTRIBUTES;
  }
  return RAW_NO_VIOLATION;
}

/* Advance over byte c after "<", which decides the kind of markup. */
static enum raw_violation scan_less_than(struct raw_scan *scan, char c)
{
  if (c == '!') {
    scan->state = RAW_BANG;
  } else if (c == '?') {
    expect_end(scan, "?>");
  } else if (c == '/') {
    /* An end tag contains no markup, so the scan treats it as text. A
     * '<' inside it is malformed, and libxml2 stops there. */
    scan->state = RAW_TEXT;
  } else {
    scan->state = RAW_START_TAG;
    scan->attributes = 0;
    return scan_start_tag(scan, c);
  }
  return RAW_NO_VIOLATION;
}

/* Advance over byte c after "<!" and after each matched byte of
 * "<!DOCTYPE". */
static enum raw_violation scan_declaration(struct raw_scan *scan, char c)
{
  static const char doctype[] = "DOCTYPE";

  if (scan->state == RAW_BANG && c == '-') {
    expect_end(scan, "-->");
  } else if (scan->state == RAW_BANG && c == '[') {
    expect_end(scan, "]]>");
  } else if (scan->state == RAW_BANG && c == doctype[0]) {
    scan->state = RAW_DOCTYPE;
    scan->matched = 1;
  } else if (scan->state == RAW_BANG || c != doctype[scan->matched]) {
    /* Another declaration, which libxml2 rejects without a DTD. */
    expect_end(scan, ">");
    scan_until_end(scan, c);
  } else if (++scan->matched == sizeof(doctype) - 1) {
    return RAW_VIOLATION_DOCTYPE;
  }
  return RAW_NO_VIOLATION;
}

/* Advance the scan over byte c, one that next_significant stopped at. */
static enum raw_violation scan_markup(struct raw_scan *scan, char c)
{
  switch (scan->state) {
  case RAW_TEXT:
    if (c == '<')
      scan->state = RAW_LESS_THAN;
    return RAW_NO_VIOLATION;
  case RAW_LESS_THAN:
    return scan_less_than(scan, c);
  case RAW_BANG:
  case RAW_DOCTYPE:
    return scan_declaration(scan, c);
  case RAW_START_TAG:
    return scan_start_tag(scan, c);
  case RAW_QUOTED:
    if (c == scan->quote)
      scan->state = RAW_START_TAG;
    return RAW_NO_VIOLATION;
  case RAW_UNTIL_END:
    scan_until_end(scan, c);
    return RAW_NO_VIOLATION;
  }
  return RAW_NO_VIOLATION;
}

/* Return the index of the first byte from start on that can change the
 * scan's state, or len when there is none. Most bytes are character data,
 * names and attribute values, which this skips without a state change.
 * scan_to_terminator takes the bytes of comments, CDATA sections,
 * processing instructions and declarations. */
static size_t next_significant(const struct raw_scan *scan, const char *data,
                               size_t start, size_t len)
{
  const char *found = NULL;

  switch (scan->state) {
  case RAW_TEXT:
    found = memchr(data + start, '<', len - start);
    break;
  case RAW_QUOTED:
    found = memchr(data + start, scan->quote, len - start);
    break;
  case RAW_START_TAG:
    for (size_t i = start; i < len; i++) {
      if (start_tag_stops[(unsigned char)data[i]])
        return i;
    }
    return len;
  default:
    return start;
  }
  return found != NULL ? (size_t)(found - data) : len;
}

#if defined(__SSE2__)
/* Return the number of set bits of a 16-bit mask. */
static unsigned bits_set(unsigned mask)
{
  mask = mask - ((mask >> 1) & 0x5555u);
  mask = (mask & 0x3333u) + ((mask >> 2) & 0x3333u);
  mask = (mask + (mask >> 4)) & 0x0F0Fu;
  return (mask + (mask >> 8)) & 0x1Fu;
}
#endif

/* Scan a comment, CDATA section, processing instruction or other
 * declaration from start on, as scan_until_end does byte by byte, and
 * return the index after its terminator, or len. Only the '>' bytes and
 * the bytes before them matter, so the scan jumps from '>' to '>'. */
static size_t scan_to_terminator(struct raw_scan *scan, const char *data,
                                 size_t start, size_t len)
{
  size_t run = terminator_run(scan);
  char repeated = scan->terminator[0];
  size_t i = start;

  for (;;) {
    const char *found = memchr(data + i, '>', len - i);
    size_t end = found != NULL ? (size_t)(found - data) : len;

    /* The run of repeated bytes that ends at end continues the one
     * before i when it reaches back to i. */
    size_t count = 0;
    while (count < run && end - count > i && data[end - count - 1] == repeated)
      count++;
    if (count == end - i)
      count += scan->matched;
    scan->matched = count < run ? count : run;

    if (found == NULL)
      return len;
    if (scan->matched >= run) {
      scan->state = RAW_TEXT;
      return end + 1;
    }
    scan->matched = 0;
    i = end + 1;
  }
}

/* Return the index of the first '<' in data[start..len), or len when there
 * is none, and store in *over_limit whether more than
 * EXPORT_XML_MAX_ATTRIBUTES '=' come before it. The bytes are taken 16 at
 * a time with SSE2 where the compiler targets it. */
static size_t find_less_than(const char *data, size_t start, size_t len,
                             bool *over_limit)
{
  size_t i = start;
  size_t count = 0;

#if defined(__SSE2__)
  const __m128i less_than = _mm_set1_epi8('<');
  const __m128i equal_sign = _mm_set1_epi8('=');
  __m128i counters = _mm_setzero_si128();

  /* Each step subtracts the compare result, -1 per '=', from 16 byte
   * counters with signed saturation, so a counter stops at 127. Only
   * counts up to the limit must be exact, and a counter that stopped
   * already stands for more. */
  while (len - i >= 16) {
    __m128i bytes = _mm_loadu_si128((const __m128i *)(const void *)(data + i));
    __m128i equal = _mm_cmpeq_epi8(bytes, equal_sign);
    unsigned less =
        (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, less_than));
    if (less != 0) {
      /* The last step adds at most 15, so it only matters near the
       * limit. */
      count = sum_counters(counters);
      if (count + 16 > EXPORT_XML_MAX_ATTRIBUTES)
        count += bits_set((unsigned)_mm_movemask_epi8(equal) &
                          ((less & (0u - less)) - 1));
      *over_limit = count > EXPORT_XML_MAX_ATTRIBUTES;
      return i + (size_t)__builtin_ctz(less);
    }
    counters = _mm_subs_epi8(counters, equal);
    i += 16;
  }
  count = sum_counters(counters);
#endif
  for (; i < len && data[i] != '<'; i++)
    count += data[i] == '=';
  *over_limit = count > EXPORT_XML_MAX_ATTRIBUTES;
  return i;
}

/* Scan text from start on, where each '<' decides the markup that
 * follows, and return the index at which the byte-wise scan takes over,
 * or len.
 *
 * A start tag is counted without its quotes first. libxml2 ends a tag at
 * the first '<', which no attribute value may contain, so every attribute
 * of the tag has its '=' before the next '<'. When there are at most
 * EXPORT_XML_MAX_ATTRIBUTES of those, so are the attributes, and the scan
 * moves on to that '<'. Otherwise, and for a tag that reaches the end of
 * the block, the byte-wise scan counts the attributes outside the quotes.
 * An end tag contains no markup and is passed over. Comments, CDATA
 * sections, processing instructions and declarations go to the byte-wise
 * scan. */
static size_t scan_text(struct raw_scan *scan, const char *data, size_t start,
                        size_t len)
{
  size_t at = next_significant(scan, data, start, len);

  while (at < len) {
    char next = at + 1 < len ? data[at + 1] : '\0';

    if (at + 1 == len || next == '!' || next == '?') {
      scan->state = RAW_LESS_THAN;
      return at + 1;
    }

    bool over_limit;
    size_t following = find_less_than(data, at + 1, len, &over_limit);
    if (next != '/' && (following == len || over_limit)) {
      scan->state = RAW_START_TAG;
      scan->attributes = 0;
      return at + 1;
    }
    at = following;
  }
  return len;
}

static enum ag_code fail_violation(struct xml_parse *parse,
                                   enum raw_violation violation, long line)
{
  if (violation == RAW_VIOLATION_DOCTYPE)
    return xml_fail(parse, AG_EPARSE,
                    "line %ld: DOCTYPE is not allowed in an export file, "
                    "because it can declare entities",
                    line);
  return xml_fail(parse, AG_EPARSE,
                  "line %ld: start tag with more than the limit of %d "
                  "attributes",
                  line, EXPORT_XML_MAX_ATTRIBUTES);
}

/* Scan raw input before libxml2 reads it, for a DOCTYPE and for start
 * tags with too many attributes. libxml2 runs its quadratic duplicate
 * check over the attributes of a tag before it reports the element, so
 * the count must come first. A DOCTYPE is also rejected by the SAX
 * callback for the internal subset, but the scan names it before libxml2
 * reads any of the block.
 * NOTE: input in an encoding that is not ASCII-compatible, such as UTF-16,
 * is not scanned. The SAX callbacks still reject a DOCTYPE there before
 * libxml2 reads its declarations, but a start tag with too many
 * attributes only after libxml2 has parsed it, duplicate check included. */
static enum ag_code scan_block(struct xml_parse *parse, const char *data,
                               size_t len)
{
  struct raw_scan *scan = &parse->scan;
  size_t i = 0;

  if (!scan->encoding_checked && len > 0)
    check_encoding(scan, data, len);
  if (!scan->ascii_compatible)
    return AG_OK;

  /* The newlines are counted once per block, and up to the failing byte
   * only when the block fails. libxml2's own position cannot give the
   * line: it grows its buffer, moving it, before it calls for a block. */
  while (i < len) {
    if (scan->state == RAW_TEXT) {
      i = scan_text(scan, data, i, len);
      continue;
    }
    if (scan->state == RAW_UNTIL_END) {
      i = scan_to_terminator(scan, data, i, len);
      continue;
    }

    size_t at = next_significant(scan, data, i, len);
    if (at == len)
      break;
    enum raw_violation violation = scan_markup(scan, data[at]);
    if (violation != RAW_NO_VIOLATION)
      return fail_violation(parse, violation,
                            scan->line + count_newlines(data, at));
    i = at + 1;
  }
  scan->line += count_newlines(data, len);
  return AG_OK;
}

/* Read up to size bytes of parse->file or parse->input into buffer.
 * Returns the byte count, 0 at the end of the input, or -1 after recording
 * the failure. */
static long read_block(struct xml_parse *parse, char *buffer, size_t size)
{
  if (parse->input != NULL) {
    struct ag_error read_err = {0};
    long got = parse->input->read(parse->input->ctx, buffer, size, &read_err);
    if (got < 0)
      xml_fail(parse, read_err.code != AG_OK ? read_err.code : AG_ELOCAL, "%s",
               read_err.message);
    return got;
  }

  size_t got = fread(buffer, 1, size, parse->file);
  if (got == 0 && ferror(parse->file)) {
    xml_fail(parse, AG_ELOCAL, "read failed: %s", strerror(errno));
    return -1;
  }
  return (long)got;
}

/* A read failure or a failed raw scan is recorded first, so the I/O error
 * that libxml2 raises next is ignored. After any failure the input ends
 * at once, so libxml2 stops soon: it keeps parsing what it has buffered,
 * with its callbacks disabled. */
int xml_read_input(void *context, char *buffer, int len)
{
  struct xml_parse *parse = context;
  size_t got = 0;

  if (parse->code != AG_OK || len <= 0)
    return -1;

  /* libxml2 detects the encoding from the first 4 bytes and the raw scan
   * from 2, so the first block has 4 unless the input is shorter, also
   * when a live input has fewer ready. */
  size_t want = parse->scan.encoding_checked || len < 4 ? 1 : 4;
  while (got < want) {
    long read = read_block(parse, buffer + got, (size_t)len - got);
    if (read < 0)
      return -1;
    if (read == 0)
      break;
    got += (size_t)read;
  }

  if (scan_block(parse, buffer, got) != AG_OK)
    return -1;
  return (int)got;
}
