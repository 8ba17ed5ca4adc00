/* Private interface of the XML export parser, shared by its files:
 *   export_xml.c             parser set-up, failures and error handlers
 *   export_xml_scan.c        libxml2's read callback and the raw-byte scan
 *                            for a DOCTYPE and start tags with too many
 *                            attributes
 *   export_xml_sax.c         libxml2's SAX callbacks: the document's
 *                            structure, the limits, the annotation tree
 *   export_xml_arena.c       the bump allocator of the annotation tree
 *   export_xml_annotation.c  one annotation tree to JSON
 * Not part of the public API. */
#ifndef AGENT_EXPORT_XML_INTERNAL_H
#define AGENT_EXPORT_XML_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>

#include "agent/error.h"
#include "agent/export.h"

/* Longest untrusted text (schema ids, URLs, values) quoted in a message. */
#define QUOTE_MAX 160

/* Maximum element nesting, counting <export> as level 1. The deepest path
 * of a Rossum export, export/results/annotation/content/section/
 * multivalue/tuple/datapoint, has 8 levels. libxml2 2.9.14 stops at 256
 * levels by itself. The lower limit also bounds the stack of open elements
 * in struct xml_parse and the recursion in collect_content. */
#define EXPORT_XML_MAX_DEPTH 64

/* Maximum size of one text node or CDATA section in bytes: a run of
 * character data that no element, comment or processing instruction
 * interrupts, as libxml2's tree builder would store it. It equals libxml2's
 * XML_MAX_TEXT_LENGTH and the field limit of the CSV parser. Values are
 * never truncated. libxml2 2.9.14 itself rejects a single CDATA section
 * above the same size. */
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

/* ---- Arena (export_xml_arena.c) ---- */

/* Alignment of every allocation: enough for the tree's pointers and
 * sizes. */
#define XML_ARENA_ALIGN                                                        \
  (sizeof(void *) > sizeof(size_t) ? sizeof(void *) : sizeof(size_t))

struct xml_arena_block;

/* A bump allocator. Everything allocated from it is freed at once by
 * xml_arena_reset, which keeps the blocks for the next annotation, so the
 * memory it holds is bounded by the largest annotation of the file. */
struct xml_arena {
  struct xml_arena_block *first;
  struct xml_arena_block *current;
  unsigned char *next; /* the free bytes of the current block */
  unsigned char *end;
};

static inline size_t xml_arena_align(size_t size)
{
  return (size + XML_ARENA_ALIGN - 1) & ~(size_t)(XML_ARENA_ALIGN - 1);
}

/* Return size bytes from a kept or a new block, or NULL when out of
 * memory. xml_arena_alloc calls it when the current block is full. */
void *xml_arena_alloc_block(struct xml_arena *arena, size_t size);

/* Return size bytes aligned to XML_ARENA_ALIGN, or NULL when out of
 * memory. */
static inline void *xml_arena_alloc(struct xml_arena *arena, size_t size)
{
  size = xml_arena_align(size);
  if ((uintptr_t)arena->end - (uintptr_t)arena->next < size)
    return xml_arena_alloc_block(arena, size);

  void *data = arena->next;
  arena->next += size;
  return data;
}

/* Grow the allocation at data, of used bytes, by extra bytes and return its
 * new address. It grows in place when it is the last allocation and its
 * block has room, and moves otherwise. Returns NULL when out of memory,
 * and data then stays valid. */
void *xml_arena_grow(struct xml_arena *arena, void *data, size_t used,
                     size_t extra);

/* Forget every allocation but keep the blocks for reuse. */
void xml_arena_reset(struct xml_arena *arena);

/* Free the blocks. */
void xml_arena_free(struct xml_arena *arena);

/* ---- The annotation tree ---- */

/* Element names that the converter looks for. Inside an annotation only the
 * local name counts, as in libxml2's xmlNode.name: <x:datapoint> is a
 * datapoint. */
enum xml_name {
  XML_NAME_OTHER,
  XML_NAME_DATAPOINT,
  XML_NAME_MULTIVALUE,
  XML_NAME_TUPLE,
  XML_NAME_CONTENT,
  XML_NAME_METADATA,
  XML_NAME_ITEM,
  XML_NAME_STATUS,
  XML_NAME_ARRIVED_AT,
  XML_NAME_EXPORTED_AT,
  XML_NAME_DOCUMENT,
  XML_NAME_FILE_NAME,
  XML_NAME_MODIFIER,
  XML_NAME_USERNAME,
  XML_NAME_AUTOMATED,
  XML_NAME_COUNT
};

/* A child of an element in the tree: an element, or under <automated> a
 * run of text that follows a child element. */
struct xml_node {
  struct xml_node *next; /* next sibling */
  bool is_text;
};

/* Character data after a child element of <automated> or of an element
 * in it, up to the next child element. */
struct xml_text {
  struct xml_node node;
  size_t len;
  char *data; /* len bytes and a NUL */
};

/* An attribute value, decoded and NUL-terminated. data is NULL when the
 * element has no such attribute. */
struct xml_value {
  const char *data;
  size_t len;
};

/* An element below <annotation>, or the annotation itself. Its character
 * data before the first child element is text, with text and CDATA
 * sections joined and comments and processing instructions left out, as
 * libxml2's xmlNodeGetContent() returns it. The converter reads no other
 * character data except under <automated>, whose whole content counts, so
 * only there the tree keeps the text between child elements. Only the
 * three attributes that the converter reads are kept: the first whose
 * local name is url, schema_id or key, as libxml2's xmlGetProp() finds
 * it. */
struct xml_element {
  struct xml_node node;
  struct xml_node *children;   /* first child */
  struct xml_node *last_child; /* where the next child is linked */
  bool has_child_elements;
  enum xml_name kind;
  const xmlChar *name; /* local name, owned by the parser's dictionary */
  long line;           /* line of the end of the start tag */
  char *text;          /* NULL when there is none */
  size_t text_len;
  struct xml_value url;
  struct xml_value schema_id;
  struct xml_value key;
};

/* ---- Parse state ---- */

/* States of the raw scan, which reads the bytes before libxml2 does. */
enum raw_state {
  RAW_TEXT,      /* character data between markup */
  RAW_LESS_THAN, /* after '<' */
  RAW_BANG,      /* after "<!" */
  RAW_DOCTYPE,   /* after "<!D", matching the rest of "DOCTYPE" */
  RAW_START_TAG, /* in a start tag, outside attribute values */
  RAW_QUOTED,    /* in an attribute value of a start tag */
  RAW_UNTIL_END, /* in a comment, CDATA section, PI or declaration */
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

/* Kinds of character data, to tell where libxml2 would start a new text
 * node. */
enum xml_run {
  XML_RUN_NONE,  /* after markup other than character data */
  XML_RUN_TEXT,  /* in text */
  XML_RUN_CDATA, /* in CDATA sections that follow each other */
};

struct xml_parse {
  FILE *file;                       /* the input, or NULL with input */
  const struct export_input *input; /* the input, or NULL with file */
  xmlParserCtxtPtr ctxt;            /* libxml2's parser */
  const struct export_sink *sink;
  struct ag_error *err;
  enum ag_code code; /* first failure, also when err is NULL */
  bool begun;        /* sink->begin has been called */
  bool saw_results;  /* export/results was found */
  int level;         /* nesting of the open element, <export> is 1 */
  int passing_level; /* level of an element passed over, or 0 */
  enum xml_run run;  /* kind of the current run of character data */
  size_t run_bytes;  /* its size so far */

  /* Names interned in the parser's dictionary. libxml2 passes element
   * and attribute names to the SAX2 callbacks as strings of that
   * dictionary, so comparing pointers compares names. */
  const xmlChar *names[XML_NAME_COUNT]; /* by enum xml_name */
  const xmlChar *url_name;
  const xmlChar *schema_id_name;
  const xmlChar *key_name;

  /* The annotation being read, from its start tag to its end tag. */
  bool in_annotation;
  struct xml_element *open[EXPORT_XML_MAX_DEPTH + 1]; /* by level */
  int automated_level;        /* level of an open <automated>, or 0 */
  const char *annotation_url; /* its url attribute, or NULL */
  struct xml_arena arena;     /* its tree */

  struct raw_scan scan;
};

/* ---- Failures and messages (export_xml.c) ---- */

/* Record a failure in parse->err unless one is already recorded, and
 * return the first recorded code. The first failure also stops libxml2's
 * callbacks. */
enum ag_code xml_fail(struct xml_parse *parse, enum ag_code code,
                      const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Record AG_EPARSE for a node on line inside the current annotation. The
 * message names the line and the annotation URL, because compact exports
 * put the whole document on one line. */
enum ag_code xml_fail_at(struct xml_parse *parse, long line, const char *format,
                         ...) __attribute__((format(printf, 3, 4)));

/* Copy untrusted text into out as a printable, length-limited quote.
 * Returns out, or "(none)" for NULL text. */
const char *xml_quote(char *out, size_t out_size, const xmlChar *text);

/* ---- Raw input (export_xml_scan.c) ---- */

/* Read up to len bytes of parse->file or parse->input into buffer and run
 * the raw scan over them. This is the read callback of libxml2's input.
 * Returns the byte count, 0 at the end of the input, or -1 after recording
 * the failure or once a failure is recorded. */
int xml_read_input(void *context, char *buffer, int len);

/* ---- SAX callbacks (export_xml_sax.c) ---- */

/* Fill handler with the callbacks that read an export into parse, which
 * becomes libxml2's user data. No callback loads, declares or expands
 * anything: a DOCTYPE fails the parse, and the handlers for entities and
 * the DTD stay NULL. */
void xml_sax_init(xmlSAXHandler *handler);

/* Prepare parse for the callbacks once parse->ctxt exists: intern the
 * names that they compare. Returns AG_OK, or AG_ENOMEM after recording the
 * failure. */
enum ag_code xml_sax_start(struct xml_parse *parse);

/* Check the end of the document: an export needs a <results> element.
 * Begins the list of the sink when no annotation has. */
enum ag_code xml_sax_finish(struct xml_parse *parse);

/* ---- Annotations (export_xml_annotation.c) ---- */

/* Convert the tree of an annotation to its JSON object. The caller sets
 * parse->annotation_url to its url attribute, or NULL when it has none.
 * Returns NULL after recording the failure. */
json_t *xml_convert_annotation(struct xml_parse *parse,
                               const struct xml_element *annotation);

#endif
