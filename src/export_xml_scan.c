/* Raw-byte scan of XML export input. It runs on each block before libxml2
 * reads it, so that a DOCTYPE or a start tag with more than
 * EXPORT_XML_MAX_ATTRIBUTES attributes fails the parse before libxml2
 * reads those bytes. scan_raw gives the reason and the input it skips. */
#include "export_xml_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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

static long count_newlines(const char *data, size_t len)
{
  long count = 0;
  const char *end = data + len;

  for (const char *c = memchr(data, '\n', len); c != NULL;
       c = memchr(c + 1, '\n', (size_t)(end - c - 1)))
    count++;
  return count;
}

/* Enter markup that ends at terminator: "-->", "]]>", "?>" or ">". */
static void expect_end(struct raw_scan *scan, const char *terminator)
{
  scan->state = RAW_UNTIL_END;
  scan->terminator = terminator;
  scan->matched = 0;
}

/* Advance over byte c of markup that ends with the terminator. Each
 * terminator is a run of one repeated byte and then '>', so the run stays
 * matched while the byte repeats, as in "--->". */
static void scan_until_end(struct raw_scan *scan, char c)
{
  size_t run = strlen(scan->terminator) - 1;

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
    expect_end(scan, ">");
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
 * names and attribute values, which this skips without a state change. */
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
  case RAW_UNTIL_END:
    if (scan->terminator[1] != '\0')
      return start;
    found = memchr(data + start, '>', len - start);
    break;
  default:
    return start;
  }
  return found != NULL ? (size_t)(found - data) : len;
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
 * tags with too many attributes. The reader parses ahead of the node it
 * returns. By the time it reports a DOCTYPE node, it may already have
 * expanded entities from the same chunk, and by the time it reports an
 * element, libxml2 has already run its quadratic duplicate check over the
 * attributes.
 * NOTE: input in an encoding that is not ASCII-compatible, such as UTF-16,
 * is not scanned. visit_node and check_element still reject a DOCTYPE or
 * too many attributes there, but only after libxml2 has parsed them. */
static enum ag_code scan_raw(struct xml_parse *parse, const char *data,
                             size_t len)
{
  struct raw_scan *scan = &parse->scan;
  size_t i = 0;

  if (!scan->encoding_checked && len > 0)
    check_encoding(scan, data, len);
  if (!scan->ascii_compatible)
    return AG_OK;

  /* Lines are counted once per block, and up to the failing byte only
   * when the file fails, because counting them between the significant
   * bytes cost a third of the scan. */
  while (i < len) {
    size_t next = next_significant(scan, data, i, len);
    if (next == len)
      break;
    enum raw_violation violation = scan_markup(scan, data[next]);
    if (violation != RAW_NO_VIOLATION)
      return fail_violation(parse, violation,
                            scan->line + count_newlines(data, next));
    i = next + 1;
  }
  scan->line += count_newlines(data, len);
  return AG_OK;
}

/* Feed libxml2 from the open file. A read failure or a failed raw scan is
 * recorded first, so the I/O error that libxml2 raises next is ignored. */
int xml_read_input(void *context, char *buffer, int len)
{
  struct xml_parse *parse = context;

  if (len <= 0)
    return 0;

  size_t got = 0;
  if (parse->input != NULL) {
    struct ag_error read_err = {0};
    long read =
        parse->input->read(parse->input->ctx, buffer, (size_t)len, &read_err);
    if (read < 0) {
      xml_fail(parse, read_err.code != AG_OK ? read_err.code : AG_ELOCAL, "%s",
               read_err.message);
      return -1;
    }
    got = (size_t)read;
  } else {
    got = fread(buffer, 1, (size_t)len, parse->file);
    if (got == 0 && ferror(parse->file)) {
      xml_fail(parse, AG_ELOCAL, "read failed: %s", strerror(errno));
      return -1;
    }
  }
  if (scan_raw(parse, buffer, got) != AG_OK)
    return -1;
  return (int)got;
}
