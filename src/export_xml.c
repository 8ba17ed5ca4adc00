/* Rossum XML export parser.
 *
 * The export has the shape export/results/annotation. libxml2's SAX2
 * parser reads the input through a read callback (export_xml_scan.c) and
 * reports it to the callbacks of export_xml_sax.c, which build a compact
 * tree of the current <annotation> in a bump allocator
 * (export_xml_arena.c). At the end tag of the annotation the tree is
 * converted to a JSON object (export_xml_annotation.c), handed to the sink
 * and dropped, so memory is bounded by the largest annotation, not by the
 * file. libxml2's xmlTextReader, used before, built an xmlNode tree with a
 * malloc per node and attribute, and the whole parse took about twice the
 * instructions (docs/benchmarks.md). libxml2 pulls the input here
 * (xmlParseDocument) instead of being pushed chunks (xmlParseChunk): with
 * libxml2 2.9.14 that took 3.5 % fewer instructions on a 4 MiB export
 * and the same on small ones (callgrind).
 *
 * Security: the parser runs without XML_PARSE_NOENT, XML_PARSE_DTDLOAD,
 * XML_PARSE_DTDATTR and XML_PARSE_XINCLUDE, with XML_PARSE_NONET, and any
 * DOCTYPE is rejected: by the raw scan of each block before libxml2 reads
 * it, and by the SAX callback for the internal subset in input that the
 * scan cannot read. The SAX handler has no callback that declares,
 * resolves or loads entities or a DTD. Export files never carry a DTD, and
 * without one no entity can be declared, so entity expansion attacks and
 * external entities are ruled out. Predefined entities (&amp;) and
 * character references (&#8364;) need no DTD and are decoded as usual.
 *
 * Limits: element nesting, the size of one text node and the attributes
 * of one element are bounded by the EXPORT_XML_MAX_* values in
 * export_xml_internal.h, and each violation fails the file with a message
 * that names the limit and the line. libxml2 enforces its own size limits
 * too, and its messages for them are reworded to name the limits. */
#include "agent/export.h"

#include "export_xml_internal.h"

#include "agent/log.h"
#include "agent/platform.h"
#include "agent/utf8.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlversion.h>

/* Bytes of the stdio buffer of an export file. */
#define XML_FILE_BUFFER_BYTES (64 * 1024)

/* libxml2 2.12 made the error argument of structured handlers const. */
#if LIBXML_VERSION >= 21200
#define XML_ERROR_QUALIFIER const
#else
#define XML_ERROR_QUALIFIER
#endif

enum ag_code xml_fail(struct xml_parse *parse, enum ag_code code,
                      const char *format, ...)
{
  char message[AG_ERROR_MESSAGE_MAX];
  va_list args;

  va_start(args, format);
  vsnprintf(message, sizeof(message), format, args);
  va_end(args);
  utf8_trim_cut(message);

  if (parse->code == AG_OK)
    parse->code = ag_error_set(parse->err, code, "%s", message);

  /* libxml2 makes no further callbacks, as after a fatal error of its
   * own, and xml_read_input ends the input, so libxml2 stops once it has
   * gone through the bytes it holds. A value other than 0 is libxml2's
   * own stop and stays. */
  if (parse->ctxt != NULL && parse->ctxt->disableSAX == 0)
    parse->ctxt->disableSAX = 1;
  return parse->code;
}

const char *xml_quote(char *out, size_t out_size, const xmlChar *text)
{
  if (text == NULL)
    return "(none)";
  return log_escape(out, out_size, text, strlen((const char *)text));
}

enum ag_code xml_fail_at(struct xml_parse *parse, long line, const char *format,
                         ...)
{
  char detail[AG_ERROR_MESSAGE_MAX / 2];
  char url[QUOTE_MAX];
  va_list args;

  va_start(args, format);
  vsnprintf(detail, sizeof(detail), format, args);
  va_end(args);
  utf8_trim_cut(detail);

  return xml_fail(
      parse, AG_EPARSE, "line %ld: %s (annotation %s)", line, detail,
      xml_quote(url, sizeof(url), (const xmlChar *)parse->annotation_url));
}

/* libxml2 2.9.14 words its size limits in terms of an option that the
 * operator cannot set ("use XML_PARSE_HUGE option") or without the limit
 * ("AttValue length too long"), so these errors are reworded to name it.
 * Each entry is a text in libxml2's message, the start of the message for
 * it and the limit in bytes that ends the message. */
static const struct {
  const char *libxml2_text;
  const char *message;
  int limit;
} size_limits[] = {
    {"Huge input lookup",
     "start tag or other markup longer than libxml2's input limit of",
     XML_MAX_LOOKUP_LIMIT},
    {"AttValue length too long",
     "attribute value longer than libxml2's limit of", XML_MAX_TEXT_LENGTH},
    {"CData section too big", "CDATA section longer than the limit of",
     EXPORT_XML_MAX_TEXT_BYTES},
    {"Comment too big", "comment longer than libxml2's limit of",
     XML_MAX_TEXT_LENGTH},
    {"too big found", "processing instruction longer than libxml2's limit of",
     XML_MAX_TEXT_LENGTH},
};

/* Store in out the message for a libxml2 error whose cleaned text is
 * detail. Size limits are reworded as size_limits lists. A truncated
 * document gets "Premature end of data in tag ..." or "Extra content at
 * the end of the document", and a file that does not start with markup,
 * such as an image, "Document is empty" or "Start tag expected". These do
 * not name the cause, so they are explained and libxml2's text kept. Other
 * messages stay as they are. */
static void explain_error(const xmlError *error, const char *detail, char *out,
                          size_t size)
{
  bool parser = error->domain == XML_FROM_PARSER;

  for (size_t i = 0; parser && i < sizeof(size_limits) / sizeof(size_limits[0]);
       i++) {
    if (strstr(detail, size_limits[i].libxml2_text) != NULL) {
      snprintf(out, size, "%s %d bytes", size_limits[i].message,
               size_limits[i].limit);
      return;
    }
  }

  if (parser && (error->code == XML_ERR_DOCUMENT_END ||
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
  char text[AG_ERROR_MESSAGE_MAX / 2];
  snprintf(text, sizeof(text), "%s",
           error->message != NULL ? error->message : "unknown XML error");
  for (char *c = text; *c != '\0'; c++) {
    if (*c == '\n' || *c == '\r')
      *c = ' ';
  }
  utf8_trim_cut(text);
  size_t len = strlen(text);
  while (len > 0 && text[len - 1] == ' ')
    text[--len] = '\0';

  /* Some messages quote the document: "CData section not finished" of
   * libxml2 2.9.14 adds up to 50 bytes of the section, which can hold
   * control characters or a cut UTF-8 character. Those are escaped. */
  char detail[AG_ERROR_MESSAGE_MAX / 2];
  log_escape(detail, sizeof(detail), text, len);

  char message[AG_ERROR_MESSAGE_MAX];
  explain_error(error, detail, message, sizeof(message));
  utf8_trim_cut(message);

  /* Errors raised outside the parser context (encoding conversion) carry
   * no line, so take the parser's position. */
  int line = error->line;
  if (line <= 0 && parse->ctxt != NULL && parse->ctxt->input != NULL)
    line = parse->ctxt->input->line;
  if (line > 0)
    xml_fail(parse, AG_EPARSE, "line %d: %s", line, message);
  else
    xml_fail(parse, AG_EPARSE, "%s", message);
}

/* Receive libxml2 messages that bypass the structured handlers, such as
 * "xmlParseChunk: encoder error" in libxml2 2.9.14. */
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

static int parser_options(void)
{
  int options = XML_PARSE_NONET;

  /* libxml2 2.13 added XML_PARSE_NO_XXE as an enum value, not a macro, so
   * the version decides. */
#if LIBXML_VERSION >= 21300
  options |= XML_PARSE_NO_XXE;
#endif
  return options;
}

/* Create libxml2's parser with the SAX callbacks of export_xml_sax.c and
 * parse the whole input. libxml2 reads the input through xml_read_input,
 * which scans each block before libxml2 parses it. */
static enum ag_code run_parser(struct xml_parse *parse)
{
  xmlSAXHandler handler;

  xml_sax_init(&handler);
  handler.serror = on_xml_error;
  parse->ctxt = xmlCreateIOParserCtxt(&handler, parse, xml_read_input, NULL,
                                      parse, XML_CHAR_ENCODING_NONE);
  if (parse->ctxt == NULL)
    return xml_fail(parse, AG_ENOMEM, "cannot create the XML parser");
  xmlCtxtUseOptions(parse->ctxt, parser_options());
  if (xml_sax_start(parse) != AG_OK)
    return parse->code;

  /* The error handler has normally recorded the cause of a failure. */
  if (xmlParseDocument(parse->ctxt) != 0 && parse->code == AG_OK)
    xml_fail(parse, AG_EPARSE, "line %d: invalid XML",
             parse->ctxt->input != NULL ? parse->ctxt->input->line : 0);
  if (parse->code != AG_OK)
    return parse->code;
  return xml_sax_finish(parse);
}

void export_init(void)
{
  xmlInitParser();
}

/* Parse the input of parse, which has parse->file or parse->input set. */
static enum ag_code parse_document(struct xml_parse *parse)
{
  /* Errors raised outside the parser context, such as failed encoding
   * conversion, go to libxml2's handlers for this thread (for the whole
   * process if libxml2 was built without threads). They point at this
   * parse for the duration of the call, so nothing reaches stderr. */
  xmlStructuredErrorFunc saved_handler = xmlStructuredError;
  void *saved_context = xmlStructuredErrorContext;
  xmlGenericErrorFunc saved_generic = xmlGenericError;
  void *saved_generic_context = xmlGenericErrorContext;
  xmlSetStructuredErrorFunc(parse, on_xml_error);
  xmlSetGenericErrorFunc(parse, on_generic_error);

  run_parser(parse);

  if (parse->ctxt != NULL)
    xmlFreeParserCtxt(parse->ctxt);
  parse->ctxt = NULL;
  xml_arena_free(&parse->arena);
  xmlSetGenericErrorFunc(saved_generic_context, saved_generic);
  xmlSetStructuredErrorFunc(saved_context, saved_handler);
  return parse->code;
}

enum ag_code export_parse_xml(const char *path, const struct export_sink *sink,
                              struct ag_error *err)
{
  struct xml_parse parse = {.sink = sink,
                            .err = err,
                            .code = AG_OK,
                            .scan = {.state = RAW_TEXT, .line = 1}};

  parse.file = plat_fopen(path, "rb");
  if (parse.file == NULL)
    return xml_fail(&parse, AG_ELOCAL, "open failed: %s", strerror(errno));

  /* libxml2 reads 4,000 bytes at a time. A larger buffer than the 4 KiB
   * that glibc picks saves most of the read calls, 20,500 for an 80 MiB
   * export. glibc ignores the size unless the buffer is given. */
  char *buffer = malloc(XML_FILE_BUFFER_BYTES);
  if (buffer != NULL)
    setvbuf(parse.file, buffer, _IOFBF, XML_FILE_BUFFER_BYTES);
  parse_document(&parse);
  fclose(parse.file);
  free(buffer);
  return parse.code;
}

enum ag_code export_parse_xml_input(const struct export_input *input,
                                    const struct export_sink *sink,
                                    struct ag_error *err)
{
  struct xml_parse parse = {.input = input,
                            .sink = sink,
                            .err = err,
                            .code = AG_OK,
                            .scan = {.state = RAW_TEXT, .line = 1}};

  return parse_document(&parse);
}
