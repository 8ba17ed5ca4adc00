/* Rossum XML export parser.
 *
 * The export has the shape export/results/annotation. The parser streams
 * the file with libxml2's xmlTextReader and expands one <annotation> at a
 * time into a small tree, converts it to a JSON object and hands it to the
 * sink. The reader frees each subtree once it moves past it, so memory is
 * bounded by the largest annotation, not by the file.
 *
 * Security: the reader runs without XML_PARSE_NOENT, XML_PARSE_DTDLOAD,
 * XML_PARSE_DTDATTR and XML_PARSE_XINCLUDE, with XML_PARSE_NONET, and any
 * DOCTYPE is rejected. Export files never carry a DTD, and without one no
 * entity can be declared, so entity expansion attacks and external
 * entities are ruled out. Predefined entities (&amp;) and character
 * references (&#8364;) need no DTD and are decoded as usual.
 *
 * Limits: element nesting, the size of one text node and the attributes
 * of one element are bounded by the EXPORT_XML_MAX_* values below, and
 * each violation fails the file with a message that names the limit and
 * the line. libxml2 enforces its own depth and size limits too; its
 * messages for them are reworded to name the agent's limits. */
#include "agent/export.h"

#include "agent/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlreader.h>
#include <libxml/xmlversion.h>

/* libxml2 2.12 made the error argument of structured handlers const. */
#if LIBXML_VERSION >= 21200
#define XML_ERROR_QUALIFIER const
#else
#define XML_ERROR_QUALIFIER
#endif

/* Longest untrusted text (schema ids, URLs, values) quoted in a message. */
#define QUOTE_MAX 160

/* Maximum element nesting, counting <export> as level 1. The deepest path
 * of a Rossum export, export/results/annotation/content/section/
 * multivalue/tuple/datapoint, has 8 levels. libxml2 2.9.14 stops at 256
 * levels by itself. The lower limit also bounds the recursion in
 * check_subtree and collect_content. */
#define EXPORT_XML_MAX_DEPTH 64

/* Maximum size of one text node or CDATA section in bytes. It equals libxml2's
 * XML_MAX_TEXT_LENGTH, which libxml2 enforces without XML_PARSE_HUGE, and
 * the field limit of the CSV parser. Values are never truncated.
 * NOTE: libxml2 2.9.14 rejects a CDATA section somewhat shorter than this
 * already ("Huge input lookup"), because its push parser buffers at most
 * XML_MAX_LOOKUP_LIMIT bytes of unfinished markup, the section included. */
#define EXPORT_XML_MAX_TEXT_BYTES 10000000

/* Maximum number of attributes of one element, namespace declarations
 * included. Rossum elements carry a few. libxml2 has no such limit, and
 * 2.9.14 checks attribute names for duplicates in quadratic time, so a
 * start tag with 100,000 attributes took about 100 s to parse (x86-64,
 * 2 cores). The raw scan therefore counts attributes before libxml2 reads
 * the tag. */
#define EXPORT_XML_MAX_ATTRIBUTES 64

_Static_assert(EXPORT_XML_MAX_TEXT_BYTES <= XML_MAX_TEXT_LENGTH,
               "libxml2 would reject text nodes below the documented limit");

/* States of the raw scan, which reads the bytes before libxml2 does. */
enum raw_state {
  RAW_TEXT,      /* character data between markup */
  RAW_LESS_THAN, /* after '<' */
  RAW_BANG,      /* after "<!" */
  RAW_DOCTYPE,   /* after "<!D", matching the rest of "DOCTYPE" */
  RAW_START_TAG, /* in a start tag, outside attribute values */
  RAW_QUOTED,    /* in an attribute value of a start tag */
  RAW_UNTIL_END, /* in a comment, CDATA section, PI or end tag */
};

/* Position of the raw scan. The scan runs only on input in an
 * ASCII-compatible encoding, where each markup character is one byte. */
struct raw_scan {
  bool encoding_checked; /* the first bytes have been examined */
  bool ascii_compatible; /* scanning is meaningful for this input */
  enum raw_state state;
  long line;              /* line of the byte being scanned */
  char quote;             /* quote character that ends the value */
  int attributes;         /* attributes seen in the current start tag */
  const char *terminator; /* "-->", "]]>", "?>" or ">" in RAW_UNTIL_END */
  size_t matched;         /* bytes of the terminator or "DOCTYPE" seen */
};

struct xml_parse {
  FILE *file;
  xmlTextReaderPtr reader;
  const struct export_sink *sink;
  struct ag_error *err;
  enum ag_code code;             /* first failure, also when err is NULL */
  bool begun;                    /* sink->begin has been called */
  bool saw_results;              /* export/results was found */
  bool skip_subtree;             /* move on with xmlTextReaderNext, not Read */
  int passing_depth;             /* depth of an element passed over, or -1 */
  bool in_annotation;            /* an annotation is being converted */
  const xmlChar *annotation_url; /* its URL, or NULL */
  struct raw_scan scan;
};

/* Remove a UTF-8 character that snprintf() cut at the end of text. Long
 * element names and libxml2 messages can fill a message buffer, and a
 * half character would make the log line and the reason file invalid
 * UTF-8. */
static void trim_cut_character(char *text)
{
  size_t len = strlen(text);
  size_t start = len;

  while (start > 0 && ((unsigned char)text[start - 1] & 0xC0) == 0x80)
    start--;
  if (start == 0)
    return;

  /* The lead byte gives the length of its sequence. */
  unsigned char lead = (unsigned char)text[start - 1];
  size_t need = 1;
  if (lead >= 0xF0)
    need = 4;
  else if (lead >= 0xE0)
    need = 3;
  else if (lead >= 0xC0)
    need = 2;
  if (len - (start - 1) < need)
    text[start - 1] = '\0';
}

/* Record a failure in parse->err unless one is already recorded. */
static enum ag_code fail(struct xml_parse *parse, enum ag_code code,
                         const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static enum ag_code fail(struct xml_parse *parse, enum ag_code code,
                         const char *format, ...)
{
  char message[AG_ERROR_MESSAGE_MAX];
  va_list args;

  va_start(args, format);
  vsnprintf(message, sizeof(message), format, args);
  va_end(args);
  trim_cut_character(message);

  if (parse->code == AG_OK)
    parse->code = ag_error_set(parse->err, code, "%s", message);
  return parse->code;
}

/* Copy untrusted text into out as a printable, length-limited quote. */
static const char *quote(char *out, size_t out_size, const xmlChar *text)
{
  if (text == NULL)
    return "(none)";
  return log_escape(out, out_size, text, strlen((const char *)text));
}

/* Record AG_EPARSE for a node inside the current annotation. The message
 * names the line and the annotation URL, because compact exports put the
 * whole document on one line. */
static enum ag_code fail_at(struct xml_parse *parse, const xmlNode *node,
                            const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static enum ag_code fail_at(struct xml_parse *parse, const xmlNode *node,
                            const char *format, ...)
{
  char detail[AG_ERROR_MESSAGE_MAX / 2];
  char url[QUOTE_MAX];
  va_list args;

  va_start(args, format);
  vsnprintf(detail, sizeof(detail), format, args);
  va_end(args);
  trim_cut_character(detail);

  return fail(parse, AG_EPARSE, "line %ld: %s (annotation %s)",
              xmlGetLineNo(node), detail,
              quote(url, sizeof(url), parse->annotation_url));
}

/* Store in out the message for a libxml2 error whose cleaned text is
 * detail. libxml2 2.9.14 words its limits in terms of options the operator
 * cannot set ("use XML_PARSE_HUGE option") or as an allocation failure, so
 * those errors are reworded to name the limit. A truncated document gets
 * "Extra content at the end of the document", and a file that does not
 * start with markup, such as an image, "Document is empty". Neither names
 * the cause, so both are explained and libxml2's text kept. Other messages
 * stay as they are. */
static void explain_error(const xmlError *error, const char *detail, char *out,
                          size_t size)
{
  bool parser = error->domain == XML_FROM_PARSER;

  if (parser && error->code == XML_ERR_INTERNAL_ERROR &&
      strncmp(detail, "Excessive depth", strlen("Excessive depth")) == 0)
    snprintf(out, size, "element nesting deeper than the limit of %d levels",
             EXPORT_XML_MAX_DEPTH);
  else if (parser && error->code == XML_ERR_NO_MEMORY &&
           strstr(detail, "huge text node") != NULL)
    snprintf(out, size, "text node longer than the limit of %d bytes",
             EXPORT_XML_MAX_TEXT_BYTES);
  else if (parser && error->code == XML_ERR_INTERNAL_ERROR &&
           strstr(detail, "Huge input lookup") != NULL)
    snprintf(out, size,
             "start tag, CDATA section or comment longer than libxml2's "
             "input limit of %d bytes",
             XML_MAX_LOOKUP_LIMIT);
  else if (parser && (error->code == XML_ERR_DOCUMENT_END ||
                      error->code == XML_ERR_TAG_NOT_FINISHED))
    snprintf(out, size, "truncated or malformed XML: %s", detail);
  else if (parser && error->code == XML_ERR_DOCUMENT_EMPTY)
    snprintf(out, size, "not an XML document (no root element): %s", detail);
  else
    snprintf(out, size, "%s", detail);
}

/* Receive libxml2 errors and warnings. The first error becomes the parse
 * failure. Warnings are dropped, because they do not make the document
 * invalid. */
static void on_xml_error(void *context, XML_ERROR_QUALIFIER xmlError *error)
{
  struct xml_parse *parse = context;

  if (error == NULL || error->level < XML_ERR_ERROR)
    return;

  /* libxml2 messages end with a newline and some span two lines. */
  char detail[AG_ERROR_MESSAGE_MAX / 2];
  snprintf(detail, sizeof(detail), "%s",
           error->message != NULL ? error->message : "unknown XML error");
  for (char *c = detail; *c != '\0'; c++) {
    if (*c == '\n' || *c == '\r')
      *c = ' ';
  }
  trim_cut_character(detail);
  size_t len = strlen(detail);
  while (len > 0 && detail[len - 1] == ' ')
    detail[--len] = '\0';

  char message[AG_ERROR_MESSAGE_MAX / 2];
  explain_error(error, detail, message, sizeof(message));
  trim_cut_character(message);

  /* Errors raised outside the parser context (encoding conversion) carry
   * no line, so take the reader's position. */
  int line = error->line;
  if (line <= 0 && parse->reader != NULL)
    line = xmlTextReaderGetParserLineNumber(parse->reader);
  if (line > 0)
    fail(parse, AG_EPARSE, "line %d: %s", line, message);
  else
    fail(parse, AG_EPARSE, "%s", message);
}

/* Receive libxml2 messages that bypass the structured handlers, such as
 * "xmlParseChunk: encoder error". */
static void on_generic_error(void *context, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void on_generic_error(void *context, const char *format, ...)
{
  struct xml_parse *parse = context;
  xmlError error;
  char message[AG_ERROR_MESSAGE_MAX / 2];
  va_list args;

  va_start(args, format);
  vsnprintf(message, sizeof(message), format, args);
  va_end(args);

  memset(&error, 0, sizeof(error));
  error.level = XML_ERR_FATAL;
  error.message = message;
  on_xml_error(parse, &error);
}

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
static enum ag_code scan_start_tag(struct xml_parse *parse, char c)
{
  struct raw_scan *scan = &parse->scan;

  if (c == '"' || c == '\'') {
    scan->state = RAW_QUOTED;
    scan->quote = c;
  } else if (c == '>') {
    scan->state = RAW_TEXT;
  } else if (c == '=' && ++scan->attributes > EXPORT_XML_MAX_ATTRIBUTES) {
    return fail(parse, AG_EPARSE,
                "line %ld: start tag with more than the limit of %d "
                "attributes",
                scan->line, EXPORT_XML_MAX_ATTRIBUTES);
  }
  return AG_OK;
}

/* Advance over byte c after "<", which decides the kind of markup. */
static enum ag_code scan_less_than(struct xml_parse *parse, char c)
{
  struct raw_scan *scan = &parse->scan;

  if (c == '!') {
    scan->state = RAW_BANG;
  } else if (c == '?') {
    expect_end(scan, "?>");
  } else if (c == '/') {
    expect_end(scan, ">");
  } else {
    scan->state = RAW_START_TAG;
    scan->attributes = 0;
    return scan_start_tag(parse, c);
  }
  return AG_OK;
}

/* Advance over byte c after "<!" and after each matched byte of
 * "<!DOCTYPE". */
static enum ag_code scan_declaration(struct xml_parse *parse, char c)
{
  static const char doctype[] = "DOCTYPE";
  struct raw_scan *scan = &parse->scan;

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
    return fail(parse, AG_EPARSE,
                "line %ld: DOCTYPE is not allowed in an export file, "
                "because it can declare entities",
                scan->line);
  }
  return AG_OK;
}

/* Advance the scan over byte c, one that next_significant stopped at. */
static enum ag_code scan_markup(struct xml_parse *parse, char c)
{
  struct raw_scan *scan = &parse->scan;

  switch (scan->state) {
  case RAW_TEXT:
    if (c == '<')
      scan->state = RAW_LESS_THAN;
    return AG_OK;
  case RAW_LESS_THAN:
    return scan_less_than(parse, c);
  case RAW_BANG:
  case RAW_DOCTYPE:
    return scan_declaration(parse, c);
  case RAW_START_TAG:
    return scan_start_tag(parse, c);
  case RAW_QUOTED:
    if (c == scan->quote)
      scan->state = RAW_START_TAG;
    return AG_OK;
  case RAW_UNTIL_END:
    scan_until_end(scan, c);
    return AG_OK;
  }
  return AG_OK;
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
      char c = data[i];
      if (c == '"' || c == '\'' || c == '>' || c == '=')
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

  while (i < len) {
    size_t next = next_significant(scan, data, i, len);
    scan->line += count_newlines(data + i, next - i);
    if (next == len)
      break;
    if (data[next] == '\n')
      scan->line++;
    if (scan_markup(parse, data[next]) != AG_OK)
      return parse->code;
    i = next + 1;
  }
  return AG_OK;
}

/* Feed libxml2 from the open file. A read failure or a failed raw scan is
 * recorded first, so the I/O error that libxml2 raises next is ignored. */
static int read_input(void *context, char *buffer, int len)
{
  struct xml_parse *parse = context;

  if (len <= 0)
    return 0;

  size_t got = fread(buffer, 1, (size_t)len, parse->file);
  if (got == 0 && ferror(parse->file)) {
    fail(parse, AG_ELOCAL, "read failed: %s", strerror(errno));
    return -1;
  }
  if (scan_raw(parse, buffer, got) != AG_OK)
    return -1;
  return (int)got;
}

static int reader_options(void)
{
  /* XML_PARSE_BIG_LINES keeps node line numbers right past line 65535. */
  int options = XML_PARSE_NONET | XML_PARSE_BIG_LINES;

  /* libxml2 2.13 added XML_PARSE_NO_XXE as an enum value, not a macro, so
   * the version decides. */
#if LIBXML_VERSION >= 21300
  options |= XML_PARSE_NO_XXE;
#endif
  return options;
}

static bool is_element(const xmlNode *node, const char *name)
{
  return node->type == XML_ELEMENT_NODE &&
         xmlStrEqual(node->name, (const xmlChar *)name);
}

/* Record AG_EPARSE for a limit exceeded at node. Inside an annotation the
 * message also names the annotation, as fail_at does. */
static enum ag_code fail_limit(struct xml_parse *parse, const xmlNode *node,
                               const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static enum ag_code fail_limit(struct xml_parse *parse, const xmlNode *node,
                               const char *format, ...)
{
  char detail[AG_ERROR_MESSAGE_MAX / 2];
  va_list args;

  va_start(args, format);
  vsnprintf(detail, sizeof(detail), format, args);
  va_end(args);
  trim_cut_character(detail);

  if (parse->in_annotation)
    return fail_at(parse, node, "%s", detail);
  return fail(parse, AG_EPARSE, "line %ld: %s", xmlGetLineNo(node), detail);
}

/* Check the nesting level (<export> is level 1) and the attribute count
 * of element. */
static enum ag_code check_element(struct xml_parse *parse,
                                  const xmlNode *element, int level)
{
  char shown[QUOTE_MAX];
  int attributes = 0;

  if (level > EXPORT_XML_MAX_DEPTH)
    return fail_limit(parse, element,
                      "element nesting deeper than the limit of %d levels",
                      EXPORT_XML_MAX_DEPTH);

  for (const xmlAttr *attribute = element->properties; attribute != NULL;
       attribute = attribute->next)
    attributes++;
  for (const xmlNs *ns = element->nsDef; ns != NULL; ns = ns->next)
    attributes++;
  if (attributes > EXPORT_XML_MAX_ATTRIBUTES)
    return fail_limit(parse, element,
                      "<%s> has %d attributes, more than the limit of %d",
                      quote(shown, sizeof(shown), element->name), attributes,
                      EXPORT_XML_MAX_ATTRIBUTES);
  return AG_OK;
}

/* Check the size of a text or CDATA node. In tests with libxml2 2.9.14
 * its own check at the same size failed the parse first; this one keeps
 * the limit where libxml2's differs. */
static enum ag_code check_text(struct xml_parse *parse, const xmlNode *text)
{
  size_t len = text->content != NULL ? strlen((const char *)text->content) : 0;

  if (len > EXPORT_XML_MAX_TEXT_BYTES)
    return fail_limit(parse, text,
                      "text node of %zu bytes, longer than the limit of %d "
                      "bytes",
                      len, EXPORT_XML_MAX_TEXT_BYTES);
  return AG_OK;
}

/* Check the limits on every node below parent, an element at level. The
 * recursion stops at EXPORT_XML_MAX_DEPTH. */
static enum ag_code check_subtree(struct xml_parse *parse,
                                  const xmlNode *parent, int level)
{
  for (const xmlNode *child = parent->children; child != NULL;
       child = child->next) {
    if (child->type == XML_ELEMENT_NODE) {
      if (check_element(parse, child, level + 1) == AG_OK)
        check_subtree(parse, child, level + 1);
    } else if (child->type == XML_TEXT_NODE ||
               child->type == XML_CDATA_SECTION_NODE) {
      check_text(parse, child);
    }
    if (parse->code != AG_OK)
      break;
  }
  return parse->code;
}

/* Check the limits on the node under the reader, which is at depth (the
 * reader counts <export> as depth 0). */
static enum ag_code check_reader_node(struct xml_parse *parse, int type,
                                      int depth)
{
  const xmlNode *node = xmlTextReaderCurrentNode(parse->reader);

  if (node == NULL)
    return AG_OK;
  if (type == XML_READER_TYPE_ELEMENT)
    return check_element(parse, node, depth + 1);
  if (type == XML_READER_TYPE_TEXT || type == XML_READER_TYPE_CDATA ||
      type == XML_READER_TYPE_WHITESPACE ||
      type == XML_READER_TYPE_SIGNIFICANT_WHITESPACE)
    return check_text(parse, node);
  return AG_OK;
}

/* Return the child element called name, or NULL when there is none. A
 * second one is recorded as AG_EPARSE, because keeping either would
 * silently drop the other. Accepts a NULL parent. */
static xmlNode *single_child(struct xml_parse *parse, const xmlNode *parent,
                             const char *name)
{
  xmlNode *first = NULL;

  if (parent == NULL)
    return NULL;
  for (xmlNode *child = parent->children; child != NULL; child = child->next) {
    if (!is_element(child, name))
      continue;
    if (first != NULL) {
      fail_at(parse, child, "<%s> appears twice in <%s>", name,
              (const char *)parent->name);
      return NULL;
    }
    first = child;
  }
  return first;
}

/* Return the text of element as a JSON string, or JSON null when element
 * is NULL. An element with child elements is recorded as AG_EPARSE, because
 * flattening it would silently join texts. libxml2 has already rejected
 * invalid UTF-8. Returns NULL on failure. */
static json_t *text_or_null(struct xml_parse *parse, const xmlNode *element)
{
  char shown[QUOTE_MAX];

  if (element == NULL)
    return json_null();
  for (const xmlNode *child = element->children; child != NULL;
       child = child->next) {
    if (child->type == XML_ELEMENT_NODE) {
      fail_at(parse, child, "<%s> contains the element <%s>; expected text",
              (const char *)element->name,
              quote(shown, sizeof(shown), child->name));
      return NULL;
    }
  }

  xmlChar *text = xmlNodeGetContent(element);
  if (text == NULL)
    return NULL;
  json_t *value = json_string((const char *)text);
  xmlFree(text);
  return value;
}

static json_t *attribute_or_null(const xmlNode *element, const char *name)
{
  if (element == NULL)
    return json_null();

  xmlChar *text = xmlGetProp(element, (const xmlChar *)name);
  if (text == NULL)
    return json_null();
  json_t *value = json_string((const char *)text);
  xmlFree(text);
  return value;
}

/* Return the schema_id of element, recording AG_EPARSE when it has none.
 * The caller frees the result with xmlFree. */
static xmlChar *require_schema_id(struct xml_parse *parse,
                                  const xmlNode *element)
{
  xmlChar *schema_id = xmlGetProp(element, (const xmlChar *)"schema_id");

  if (schema_id == NULL)
    fail_at(parse, element, "<%s> without schema_id attribute",
            (const char *)element->name);
  return schema_id;
}

/* Store the text of a datapoint under its schema_id in object. Rossum
 * schema ids are unique within a schema, so a repeated id means a broken
 * file, and keeping either value would silently lose the other. */
static enum ag_code add_datapoint(struct xml_parse *parse,
                                  const xmlNode *datapoint, json_t *object)
{
  char shown[QUOTE_MAX];
  xmlChar *schema_id = require_schema_id(parse, datapoint);

  if (schema_id == NULL)
    return parse->code;

  const char *key = (const char *)schema_id;
  if (json_object_get(object, key) != NULL) {
    fail_at(parse, datapoint, "duplicate datapoint schema_id \"%s\"",
            quote(shown, sizeof(shown), schema_id));
  } else if (json_object_set_new(object, key, text_or_null(parse, datapoint)) !=
             0) {
    fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
  }
  xmlFree(schema_id);
  return parse->code;
}

/* Convert a tuple to an object of its datapoints. A tuple with no
 * datapoints becomes {}. */
static json_t *convert_tuple(struct xml_parse *parse, const xmlNode *tuple)
{
  json_t *object = json_object();

  if (object == NULL) {
    fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
    return NULL;
  }

  for (const xmlNode *child = tuple->children; child != NULL;
       child = child->next) {
    if (child->type != XML_ELEMENT_NODE)
      continue;
    if (!is_element(child, "datapoint")) {
      fail_at(parse, child, "unexpected element <%s> in <tuple>",
              (const char *)child->name);
      break;
    }
    if (add_datapoint(parse, child, object) != AG_OK)
      break;
  }

  if (parse->code != AG_OK) {
    json_decref(object);
    return NULL;
  }
  return object;
}

/* Convert one child of a multivalue: a tuple becomes an object, a bare
 * datapoint its text. */
static json_t *convert_row(struct xml_parse *parse, const xmlNode *child)
{
  if (is_element(child, "tuple"))
    return convert_tuple(parse, child);

  if (is_element(child, "datapoint")) {
    json_t *value = text_or_null(parse, child);
    if (value == NULL)
      fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
    return value;
  }

  fail_at(parse, child, "unexpected element <%s> in <multivalue>",
          (const char *)child->name);
  return NULL;
}

/* Store a multivalue in tables as an array under its schema_id. */
static enum ag_code add_table(struct xml_parse *parse,
                              const xmlNode *multivalue, json_t *tables)
{
  char shown[QUOTE_MAX];
  json_t *rows = NULL;
  xmlChar *schema_id = require_schema_id(parse, multivalue);

  if (schema_id == NULL)
    goto done;
  if (json_object_get(tables, (const char *)schema_id) != NULL) {
    fail_at(parse, multivalue, "duplicate multivalue schema_id \"%s\"",
            quote(shown, sizeof(shown), schema_id));
    goto done;
  }

  rows = json_array();
  if (rows == NULL) {
    fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
    goto done;
  }
  for (const xmlNode *child = multivalue->children; child != NULL;
       child = child->next) {
    if (child->type != XML_ELEMENT_NODE)
      continue;
    json_t *row = convert_row(parse, child);
    if (row == NULL)
      goto done;
    if (json_array_append_new(rows, row) != 0) {
      fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
      goto done;
    }
  }

  if (json_object_set_new(tables, (const char *)schema_id, rows) != 0)
    fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
  rows = NULL;

done:
  json_decref(rows);
  xmlFree(schema_id);
  return parse->code;
}

/* Collect the datapoints and multivalues below parent. Sections and any
 * other wrapper elements are walked through. check_subtree has already
 * bounded the depth to EXPORT_XML_MAX_DEPTH levels. */
static enum ag_code collect_content(struct xml_parse *parse,
                                    const xmlNode *parent, json_t *fields,
                                    json_t *tables)
{
  for (const xmlNode *child = parent->children; child != NULL;
       child = child->next) {
    if (child->type != XML_ELEMENT_NODE)
      continue;

    if (is_element(child, "datapoint"))
      add_datapoint(parse, child, fields);
    else if (is_element(child, "multivalue"))
      add_table(parse, child, tables);
    else
      collect_content(parse, child, fields, tables);

    if (parse->code != AG_OK)
      break;
  }
  return parse->code;
}

/* Store one metadata <item key="..."> in metadata. */
static enum ag_code add_metadata_item(struct xml_parse *parse,
                                      const xmlNode *item, json_t *metadata)
{
  char shown[QUOTE_MAX];
  xmlChar *key = xmlGetProp(item, (const xmlChar *)"key");

  if (key == NULL)
    return fail_at(parse, item, "metadata <item> without key attribute");

  if (json_object_get(metadata, (const char *)key) != NULL) {
    fail_at(parse, item, "duplicate metadata key \"%s\"",
            quote(shown, sizeof(shown), key));
  } else if (xmlFirstElementChild((xmlNode *)item) != NULL) {
    /* NOTE: Rossum does not document how nested metadata values look in
     * XML. Flattening child elements into one string would alter the
     * value, so such an item is rejected. */
    fail_at(parse, item, "metadata item \"%s\" has child elements",
            quote(shown, sizeof(shown), key));
  } else if (json_object_set_new(metadata, (const char *)key,
                                 text_or_null(parse, item)) != 0) {
    fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
  }
  xmlFree(key);
  return parse->code;
}

static enum ag_code collect_metadata(struct xml_parse *parse,
                                     const xmlNode *element, json_t *metadata)
{
  if (element == NULL)
    return parse->code;

  for (const xmlNode *child = element->children; child != NULL;
       child = child->next) {
    if (child->type != XML_ELEMENT_NODE)
      continue;
    if (!is_element(child, "item"))
      return fail_at(parse, child, "unexpected element <%s> in <metadata>",
                     (const char *)child->name);
    if (add_metadata_item(parse, child, metadata) != AG_OK)
      break;
  }
  return parse->code;
}

/* Return JSON true or false from <automated>. An absent or empty element
 * means false. The rossum-sdk sample export has no <automated> at all. */
static json_t *convert_automated(struct xml_parse *parse,
                                 const xmlNode *element)
{
  char shown[QUOTE_MAX];

  if (element == NULL)
    return json_false();

  xmlChar *text = xmlNodeGetContent(element);
  json_t *value = NULL;
  if (text == NULL)
    fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
  else if (xmlStrEqual(text, (const xmlChar *)"true"))
    value = json_true();
  else if (text[0] == '\0' || xmlStrEqual(text, (const xmlChar *)"false"))
    value = json_false();
  else
    fail_at(parse, element, "<automated> is \"%s\", expected true or false",
            quote(shown, sizeof(shown), text));
  xmlFree(text);
  return value;
}

/* Return modifier/username as a string, or null when there is none. */
static json_t *convert_modifier(struct xml_parse *parse,
                                const xmlNode *annotation)
{
  const xmlNode *modifier = single_child(parse, annotation, "modifier");

  if (parse->code != AG_OK)
    return NULL;
  return text_or_null(parse, single_child(parse, modifier, "username"));
}

/* Add the scalar keys, id to automated, in the documented order. */
static enum ag_code add_scalars(struct xml_parse *parse,
                                const xmlNode *annotation, json_t *object)
{
  const xmlNode *document = single_child(parse, annotation, "document");
  const xmlNode *file_name = single_child(parse, document, "file_name");
  int failed = 0;

  failed |= json_object_set_new(
      object, "id", export_annotation_id((const char *)parse->annotation_url));
  failed |=
      json_object_set_new(object, "url", attribute_or_null(annotation, "url"));
  failed |= json_object_set_new(
      object, "status",
      text_or_null(parse, single_child(parse, annotation, "status")));
  failed |= json_object_set_new(
      object, "arrived_at",
      text_or_null(parse, single_child(parse, annotation, "arrived_at")));
  failed |= json_object_set_new(
      object, "exported_at",
      text_or_null(parse, single_child(parse, annotation, "exported_at")));
  failed |=
      json_object_set_new(object, "file_name", text_or_null(parse, file_name));
  failed |= json_object_set_new(object, "document_url",
                                attribute_or_null(document, "url"));
  failed |= json_object_set_new(object, "modifier",
                                convert_modifier(parse, annotation));
  if (failed != 0)
    return fail(parse, AG_ENOMEM,
                "out of memory while converting an annotation");

  json_t *automated =
      convert_automated(parse, single_child(parse, annotation, "automated"));
  if (automated == NULL)
    return parse->code;
  if (json_object_set_new(object, "automated", automated) != 0)
    return fail(parse, AG_ENOMEM,
                "out of memory while converting an annotation");
  return AG_OK;
}

/* Add fields, tables and metadata to object. */
static enum ag_code add_collections(struct xml_parse *parse,
                                    const xmlNode *annotation, json_t *object)
{
  json_t *fields = json_object();
  json_t *tables = json_object();
  json_t *metadata = json_object();
  int failed = 0;

  /* json_object_set_new takes each reference, also when it fails. */
  failed |= json_object_set_new(object, "fields", fields);
  failed |= json_object_set_new(object, "tables", tables);
  failed |= json_object_set_new(object, "metadata", metadata);
  if (failed != 0)
    return fail(parse, AG_ENOMEM,
                "out of memory while converting an annotation");

  /* The three objects are borrowed from object from here on. */
  const xmlNode *content = single_child(parse, annotation, "content");
  const xmlNode *metadata_element = single_child(parse, annotation, "metadata");
  if (parse->code != AG_OK)
    return parse->code;
  if (content != NULL &&
      collect_content(parse, content, fields, tables) != AG_OK)
    return parse->code;
  return collect_metadata(parse, metadata_element, metadata);
}

/* Convert the expanded annotation subtree to its JSON object. */
static json_t *convert_annotation(struct xml_parse *parse,
                                  const xmlNode *annotation)
{
  json_t *object = json_object();

  if (object == NULL) {
    fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
    return NULL;
  }

  if (add_scalars(parse, annotation, object) != AG_OK ||
      add_collections(parse, annotation, object) != AG_OK) {
    json_decref(object);
    return NULL;
  }
  return object;
}

static enum ag_code begin_list(struct xml_parse *parse)
{
  if (parse->begun)
    return AG_OK;

  parse->begun = true;
  enum ag_code code =
      parse->sink->begin(parse->sink->ctx, "annotations", parse->err);
  if (code != AG_OK && parse->code == AG_OK)
    parse->code = code;
  return parse->code;
}

/* Expand the <annotation> under the reader, convert it and pass it to the
 * sink.
 * NOTE: nothing bounds the size of one annotation. Its tree takes about
 * ten times its size in the file: 100,000 line items of seven datapoints
 * (63 MB) peaked at about 810 MB with the JSON output. Expanding one
 * multivalue row at a time would bound the tree to one row. */
static enum ag_code emit_annotation(struct xml_parse *parse)
{
  xmlNode *annotation = xmlTextReaderExpand(parse->reader);
  int level = xmlTextReaderDepth(parse->reader) + 1;
  xmlChar *url = NULL;
  json_t *object = NULL;
  enum ag_code code;

  if (annotation == NULL) {
    /* The error handler has normally recorded the cause already. */
    fail(parse, AG_EPARSE, "line %d: invalid <annotation> element",
         xmlTextReaderGetParserLineNumber(parse->reader));
    goto done;
  }

  url = xmlGetProp(annotation, (const xmlChar *)"url");
  parse->annotation_url = url;
  parse->in_annotation = true;
  if (check_subtree(parse, annotation, level) != AG_OK)
    goto done;
  object = convert_annotation(parse, annotation);
  if (object == NULL)
    goto done;
  if (begin_list(parse) != AG_OK)
    goto done;

  code = parse->sink->item(parse->sink->ctx, object, parse->err);
  if (code != AG_OK && parse->code == AG_OK)
    parse->code = code;

done:
  json_decref(object);
  parse->in_annotation = false;
  parse->annotation_url = NULL;
  xmlFree(url);
  return parse->code;
}

/* Handle an element at the reader's position. Only export, export/results
 * and export/results/annotation are converted. Every other element below
 * <export>, such as <pagination>, is passed over node by node: the reader
 * frees each node as it moves on, and only the limits are checked. */
static enum ag_code visit_element(struct xml_parse *parse)
{
  char shown[QUOTE_MAX];
  const xmlChar *name = xmlTextReaderConstName(parse->reader);
  int depth = xmlTextReaderDepth(parse->reader);
  long line = xmlGetLineNo(xmlTextReaderCurrentNode(parse->reader));

  if (depth == 0) {
    if (!xmlStrEqual(name, (const xmlChar *)"export"))
      return fail(parse, AG_EPARSE,
                  "line %ld: root element is <%s>, expected <export>", line,
                  quote(shown, sizeof(shown), name));
    return AG_OK;
  }

  if (depth == 1) {
    bool results = xmlStrEqual(name, (const xmlChar *)"results");
    if (results && parse->saw_results)
      return fail(parse, AG_EPARSE, "line %ld: a second <results> element",
                  line);
    parse->saw_results |= results;
    if (!results)
      parse->passing_depth = depth;
    return AG_OK;
  }

  /* Depth 2 is inside <results>. Deeper nodes are never reached, because
   * each annotation is skipped whole. */
  if (!xmlStrEqual(name, (const xmlChar *)"annotation"))
    return fail(parse, AG_EPARSE,
                "line %ld: unexpected element <%s> in <results>", line,
                quote(shown, sizeof(shown), name));
  parse->skip_subtree = true;
  return emit_annotation(parse);
}

static enum ag_code visit_node(struct xml_parse *parse)
{
  int type = xmlTextReaderNodeType(parse->reader);
  int depth = xmlTextReaderDepth(parse->reader);

  parse->skip_subtree = false;
  /* The DTD node has no line number of its own. */
  if (type == XML_READER_TYPE_DOCUMENT_TYPE)
    return fail(parse, AG_EPARSE,
                "DOCTYPE is not allowed in an export file, because it can "
                "declare entities");
  if (check_reader_node(parse, type, depth) != AG_OK)
    return parse->code;

  /* Below an element that is passed over, only the limits matter. */
  if (parse->passing_depth >= 0 && depth > parse->passing_depth)
    return AG_OK;
  parse->passing_depth = -1;
  if (type == XML_READER_TYPE_ELEMENT)
    return visit_element(parse);
  return AG_OK;
}

/* Walk the document node by node until the end or the first failure. */
static enum ag_code walk_document(struct xml_parse *parse)
{
  int status = xmlTextReaderRead(parse->reader);

  while (status == 1 && parse->code == AG_OK) {
    if (visit_node(parse) != AG_OK)
      break;
    if (parse->skip_subtree)
      status = xmlTextReaderNext(parse->reader);
    else
      status = xmlTextReaderRead(parse->reader);
  }

  if (parse->code != AG_OK)
    return parse->code;
  if (status < 0)
    return fail(parse, AG_EPARSE, "line %d: invalid XML",
                xmlTextReaderGetParserLineNumber(parse->reader));

  if (!parse->saw_results)
    return fail(parse, AG_EPARSE,
                "no <results> element in <export>, so this is not a Rossum "
                "export; check the queue's export settings");

  /* An export without annotations still gets an (empty) list. */
  return begin_list(parse);
}

enum ag_code export_parse_xml(const char *path, const struct export_sink *sink,
                              struct ag_error *err)
{
  struct xml_parse parse = {.sink = sink,
                            .err = err,
                            .code = AG_OK,
                            .passing_depth = -1,
                            .scan = {.state = RAW_TEXT, .line = 1}};

  /* Errors raised outside the parser context, such as failed encoding
   * conversion, go to libxml2's handlers for this thread (for the whole
   * process if libxml2 was built without threads). They point at this
   * parse for the duration of the call, so nothing reaches stderr. */
  xmlStructuredErrorFunc saved_handler = xmlStructuredError;
  void *saved_context = xmlStructuredErrorContext;
  xmlGenericErrorFunc saved_generic = xmlGenericError;
  void *saved_generic_context = xmlGenericErrorContext;
  xmlSetStructuredErrorFunc(&parse, on_xml_error);
  xmlSetGenericErrorFunc(&parse, on_generic_error);

  parse.file = fopen(path, "rb");
  if (parse.file == NULL) {
    fail(&parse, AG_ELOCAL, "open failed: %s", strerror(errno));
    goto done;
  }

  parse.reader =
      xmlReaderForIO(read_input, NULL, &parse, NULL, NULL, reader_options());
  if (parse.reader == NULL) {
    fail(&parse, AG_ENOMEM, "cannot create the XML reader");
    goto done;
  }
  xmlTextReaderSetStructuredErrorHandler(parse.reader, on_xml_error, &parse);

  walk_document(&parse);

done:
  if (parse.reader != NULL)
    xmlFreeTextReader(parse.reader);
  if (parse.file != NULL)
    fclose(parse.file);
  xmlSetGenericErrorFunc(saved_generic_context, saved_generic);
  xmlSetStructuredErrorFunc(saved_context, saved_handler);
  return parse.code;
}
