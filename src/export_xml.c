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
 * of one element are bounded by the EXPORT_XML_MAX_* values in
 * export_xml_internal.h, and each violation fails the file with a message
 * that names the limit and the line. libxml2 enforces its own depth and size
 * limits too; its messages for them are reworded to name the agent's limits. */
#include "agent/export.h"

#include "export_xml_internal.h"

#include "agent/log.h"
#include "agent/platform.h"
#include "agent/utf8.h"

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
  return parse->code;
}

const char *xml_quote(char *out, size_t out_size, const xmlChar *text)
{
  if (text == NULL)
    return "(none)";
  return log_escape(out, out_size, text, strlen((const char *)text));
}

enum ag_code xml_fail_at(struct xml_parse *parse, const xmlNode *node,
                         const char *format, ...)
{
  char detail[AG_ERROR_MESSAGE_MAX / 2];
  char url[QUOTE_MAX];
  va_list args;

  va_start(args, format);
  vsnprintf(detail, sizeof(detail), format, args);
  va_end(args);
  utf8_trim_cut(detail);

  return xml_fail(parse, AG_EPARSE, "line %ld: %s (annotation %s)",
                  xmlGetLineNo(node), detail,
                  xml_quote(url, sizeof(url), parse->annotation_url));
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
  utf8_trim_cut(detail);
  size_t len = strlen(detail);
  while (len > 0 && detail[len - 1] == ' ')
    detail[--len] = '\0';

  char message[AG_ERROR_MESSAGE_MAX / 2];
  explain_error(error, detail, message, sizeof(message));
  utf8_trim_cut(message);

  /* Errors raised outside the parser context (encoding conversion) carry
   * no line, so take the reader's position. */
  int line = error->line;
  if (line <= 0 && parse->reader != NULL)
    line = xmlTextReaderGetParserLineNumber(parse->reader);
  if (line > 0)
    xml_fail(parse, AG_EPARSE, "line %d: %s", line, message);
  else
    xml_fail(parse, AG_EPARSE, "%s", message);
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

/* Record AG_EPARSE for a limit exceeded at node. Inside an annotation the
 * message also names the annotation, as xml_fail_at does. */
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
  utf8_trim_cut(detail);

  if (parse->in_annotation)
    return xml_fail_at(parse, node, "%s", detail);
  return xml_fail(parse, AG_EPARSE, "line %ld: %s", xmlGetLineNo(node), detail);
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
                      xml_quote(shown, sizeof(shown), element->name),
                      attributes, EXPORT_XML_MAX_ATTRIBUTES);
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
    xml_fail(parse, AG_EPARSE, "line %d: invalid <annotation> element",
             xmlTextReaderGetParserLineNumber(parse->reader));
    goto done;
  }

  url = xmlGetProp(annotation, (const xmlChar *)"url");
  parse->annotation_url = url;
  parse->in_annotation = true;
  if (check_subtree(parse, annotation, level) != AG_OK)
    goto done;
  object = xml_convert_annotation(parse, annotation);
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
      return xml_fail(parse, AG_EPARSE,
                      "line %ld: root element is <%s>, expected <export>", line,
                      xml_quote(shown, sizeof(shown), name));
    return AG_OK;
  }

  if (depth == 1) {
    bool results = xmlStrEqual(name, (const xmlChar *)"results");
    if (results && parse->saw_results)
      return xml_fail(parse, AG_EPARSE, "line %ld: a second <results> element",
                      line);
    parse->saw_results |= results;
    if (!results)
      parse->passing_depth = depth;
    return AG_OK;
  }

  /* Depth 2 is inside <results>. Deeper nodes are never reached, because
   * each annotation is skipped whole. */
  if (!xmlStrEqual(name, (const xmlChar *)"annotation"))
    return xml_fail(parse, AG_EPARSE,
                    "line %ld: unexpected element <%s> in <results>", line,
                    xml_quote(shown, sizeof(shown), name));
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
    return xml_fail(parse, AG_EPARSE,
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
    return xml_fail(parse, AG_EPARSE, "line %d: invalid XML",
                    xmlTextReaderGetParserLineNumber(parse->reader));

  if (!parse->saw_results)
    return xml_fail(parse, AG_EPARSE,
                    "no <results> element in <export>, so this is not a Rossum "
                    "export; check the queue's export settings");

  /* An export without annotations still gets an (empty) list. */
  return begin_list(parse);
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

  parse->reader =
      xmlReaderForIO(xml_read_input, NULL, parse, NULL, NULL, reader_options());
  if (parse->reader == NULL) {
    xml_fail(parse, AG_ENOMEM, "cannot create the XML reader");
    goto done;
  }
  xmlTextReaderSetStructuredErrorHandler(parse->reader, on_xml_error, parse);

  walk_document(parse);

done:
  if (parse->reader != NULL)
    xmlFreeTextReader(parse->reader);
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
                            .passing_depth = -1,
                            .scan = {.state = RAW_TEXT, .line = 1}};

  parse.file = plat_fopen(path, "rb");
  if (parse.file == NULL)
    return xml_fail(&parse, AG_ELOCAL, "open failed: %s", strerror(errno));
  parse_document(&parse);
  fclose(parse.file);
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
                            .passing_depth = -1,
                            .scan = {.state = RAW_TEXT, .line = 1}};

  return parse_document(&parse);
}
