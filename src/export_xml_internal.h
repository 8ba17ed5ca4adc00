/* Private interface of the XML export parser, shared by its files:
 *   export_xml.c             reader setup, the walk over the document,
 *                            limits on the reader's nodes, error handlers
 *   export_xml_scan.c        the raw-byte scan for a DOCTYPE and start tags
 *                            with too many attributes, the read callback
 *   export_xml_annotation.c  one expanded <annotation> subtree to JSON
 * Not part of the public API. */
#ifndef AGENT_EXPORT_XML_INTERNAL_H
#define AGENT_EXPORT_XML_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlreader.h>

#include "agent/error.h"
#include "agent/export.h"

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
  long line;              /* line on which the block being scanned starts */
  char quote;             /* quote character that ends the value */
  int attributes;         /* attributes seen in the current start tag */
  const char *terminator; /* "-->", "]]>", "?>" or ">" in RAW_UNTIL_END */
  size_t matched;         /* bytes of the terminator or "DOCTYPE" seen */
};

struct xml_parse {
  FILE *file;                       /* the input, or NULL with input */
  const struct export_input *input; /* the input, or NULL with file */
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

/* ---- Failures and messages (export_xml.c) ---- */

/* Record a failure in parse->err unless one is already recorded, and
 * return the first recorded code. */
enum ag_code xml_fail(struct xml_parse *parse, enum ag_code code,
                      const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Record AG_EPARSE for a node inside the current annotation. The message
 * names the line and the annotation URL, because compact exports put the
 * whole document on one line. */
enum ag_code xml_fail_at(struct xml_parse *parse, const xmlNode *node,
                         const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Copy untrusted text into out as a printable, length-limited quote.
 * Returns out, or "(none)" for NULL text. */
const char *xml_quote(char *out, size_t out_size, const xmlChar *text);

/* ---- Raw input (export_xml_scan.c) ---- */

/* Read up to len bytes of parse->file or parse->input into buffer and run
 * the raw scan
 * over them. This is the read callback of xmlReaderForIO. Returns the byte
 * count, 0 at the end of the file, or -1 after recording the failure. */
int xml_read_input(void *context, char *buffer, int len);

/* ---- Annotations (export_xml_annotation.c) ---- */

/* Convert the expanded annotation subtree to its JSON object. The caller
 * sets parse->annotation_url to its url attribute, or NULL when it has
 * none. Returns NULL after recording the failure. */
json_t *xml_convert_annotation(struct xml_parse *parse,
                               const xmlNode *annotation);

#endif
