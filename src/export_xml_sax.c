/* libxml2 SAX callbacks of the XML export parser. They follow the
 * structure export/results/annotation, check the limits on every element
 * and text node, and build the tree of one annotation at a time in
 * parse->arena. At the end tag of an annotation the tree is converted,
 * handed to the sink and dropped. Elements outside <results>, such as
 * <pagination>, are passed over: only their limits are checked. */
#include "export_xml_internal.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "agent/utf8.h"

/* Level of <annotation>: export/results/annotation. */
#define ANNOTATION_LEVEL 3

/* Line of libxml2's current position, which in a start tag callback is
 * the end of the tag, as in the nodes of libxml2's own tree builder. */
static long current_line(const struct xml_parse *parse)
{
  return parse->ctxt->input->line;
}

/* Record AG_EPARSE for a limit exceeded on line. Inside an annotation the
 * message also names the annotation, as xml_fail_at does. */
static enum ag_code fail_limit(struct xml_parse *parse, long line,
                               const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static enum ag_code fail_limit(struct xml_parse *parse, long line,
                               const char *format, ...)
{
  char detail[AG_ERROR_MESSAGE_MAX / 2];
  va_list args;

  va_start(args, format);
  vsnprintf(detail, sizeof(detail), format, args);
  va_end(args);
  utf8_trim_cut(detail);

  if (parse->in_annotation)
    return xml_fail_at(parse, line, "%s", detail);
  return xml_fail(parse, AG_EPARSE, "line %ld: %s", line, detail);
}

static enum ag_code fail_memory(struct xml_parse *parse)
{
  return xml_fail(parse, AG_ENOMEM,
                  "out of memory while reading an annotation");
}

/* Check the nesting level and the attribute count of the element that
 * starts at the current level. */
static enum ag_code check_element(struct xml_parse *parse, const xmlChar *name,
                                  long line, int attributes)
{
  char shown[QUOTE_MAX];

  if (parse->level > EXPORT_XML_MAX_DEPTH)
    return fail_limit(parse, line,
                      "element nesting deeper than the limit of %d levels",
                      EXPORT_XML_MAX_DEPTH);
  if (attributes > EXPORT_XML_MAX_ATTRIBUTES)
    return fail_limit(parse, line,
                      "<%s> has %d attributes, more than the limit of %d",
                      xml_quote(shown, sizeof(shown), name), attributes,
                      EXPORT_XML_MAX_ATTRIBUTES);
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

/* ---- The annotation tree ---- */

/* The names of enum xml_name, most frequent in exports first. */
static const struct {
  const char *name;
  enum xml_name kind;
} known_names[] = {
    {"datapoint", XML_NAME_DATAPOINT},     {"tuple", XML_NAME_TUPLE},
    {"multivalue", XML_NAME_MULTIVALUE},   {"content", XML_NAME_CONTENT},
    {"metadata", XML_NAME_METADATA},       {"item", XML_NAME_ITEM},
    {"status", XML_NAME_STATUS},           {"arrived_at", XML_NAME_ARRIVED_AT},
    {"exported_at", XML_NAME_EXPORTED_AT}, {"document", XML_NAME_DOCUMENT},
    {"file_name", XML_NAME_FILE_NAME},     {"modifier", XML_NAME_MODIFIER},
    {"username", XML_NAME_USERNAME},       {"automated", XML_NAME_AUTOMATED},
};

#define KNOWN_NAME_COUNT (sizeof(known_names) / sizeof(known_names[0]))

_Static_assert(KNOWN_NAME_COUNT == XML_NAME_COUNT - 1,
               "every enum xml_name but XML_NAME_OTHER needs its name");

/* Return the interned string of name in the parser's dictionary, or NULL
 * when out of memory. */
static const xmlChar *intern(struct xml_parse *parse, const char *name)
{
  return xmlDictLookup(parse->ctxt->dict, (const xmlChar *)name,
                       (int)strlen(name));
}

enum ag_code xml_sax_start(struct xml_parse *parse)
{
  bool interned = true;

  for (size_t i = 0; i < KNOWN_NAME_COUNT; i++) {
    parse->names[known_names[i].kind] = intern(parse, known_names[i].name);
    interned &= parse->names[known_names[i].kind] != NULL;
  }
  parse->url_name = intern(parse, "url");
  parse->schema_id_name = intern(parse, "schema_id");
  parse->key_name = intern(parse, "key");
  if (!interned || parse->url_name == NULL || parse->schema_id_name == NULL ||
      parse->key_name == NULL)
    return xml_fail(parse, AG_ENOMEM, "out of memory in the XML parser");
  return AG_OK;
}

/* Return the converter's name for a local name, an interned string. The
 * most frequent name, datapoint, is compared first. */
static enum xml_name classify(const struct xml_parse *parse,
                              const xmlChar *local_name)
{
  for (size_t i = 0; i < KNOWN_NAME_COUNT; i++) {
    if (parse->names[known_names[i].kind] == local_name)
      return known_names[i].kind;
  }
  return XML_NAME_OTHER;
}

/* Store a copy of the attribute value from value to end in out. libxml2
 * 2.9.14 hands over a value that contained a reference as a copy that
 * ends in NUL, with each '&' written as "&#38;" and every other reference
 * already replaced, because entity substitution is off
 * (xmlParseAttValueComplex). Any other value points into its input, ends
 * at the closing quote and contains no '&'. libxml2's tree builder relies
 * on the same (xmlSAX2AttributeNs) and decodes "&#38;" again, and so does
 * this copy. */
static enum ag_code copy_value(struct xml_parse *parse, const xmlChar *value,
                               const xmlChar *end, struct xml_value *out)
{
  size_t len = (size_t)(end - value);
  char *copy = xml_arena_alloc(&parse->arena, len + 1);

  if (copy == NULL)
    return fail_memory(parse);

  size_t out_len = 0;
  const xmlChar *amp = *end == '\0' ? memchr(value, '&', len) : NULL;
  if (amp == NULL) {
    memcpy(copy, value, len);
    out_len = len;
  } else {
    for (size_t i = 0; i < len;) {
      bool reference =
          value[i] == '&' && len - i >= 5 && memcmp(value + i, "&#38;", 5) == 0;
      copy[out_len++] = (char)value[i];
      i += reference ? 5 : 1;
    }
  }
  copy[out_len] = '\0';
  out->data = copy;
  out->len = out_len;
  return AG_OK;
}

/* Keep the first url, schema_id and key attribute of element, matched by
 * local name in any namespace, as libxml2's xmlGetProp() does. Each
 * attribute is five pointers: local name, prefix, URI, value, value
 * end. */
static enum ag_code keep_attributes(struct xml_parse *parse,
                                    struct xml_element *element, int count,
                                    const xmlChar **attributes)
{
  for (int i = 0; i < count; i++) {
    const xmlChar **attribute = attributes + 5 * i;
    const xmlChar *name = attribute[0];
    struct xml_value *slot = NULL;

    if (name == parse->schema_id_name)
      slot = &element->schema_id;
    else if (name == parse->url_name)
      slot = &element->url;
    else if (name == parse->key_name)
      slot = &element->key;
    if (slot != NULL && slot->data == NULL &&
        copy_value(parse, attribute[3], attribute[4], slot) != AG_OK)
      return parse->code;
  }
  return AG_OK;
}

/* Link node as the last child of parent. */
static void link_child(struct xml_element *parent, struct xml_node *node)
{
  if (parent->last_child == NULL)
    parent->children = node;
  else
    parent->last_child->next = node;
  parent->last_child = node;
}

/* Add an element to the tree as the last child of parent, or as the root
 * when parent is NULL, and make it the open element of the current
 * level. */
static enum ag_code add_element(struct xml_parse *parse,
                                struct xml_element *parent, const xmlChar *name,
                                long line, int count,
                                const xmlChar **attributes)
{
  struct xml_element *element =
      xml_arena_alloc(&parse->arena, sizeof(*element));

  if (element == NULL)
    return fail_memory(parse);
  *element = (struct xml_element){
      .kind = classify(parse, name), .name = name, .line = line};
  if (keep_attributes(parse, element, count, attributes) != AG_OK)
    return parse->code;

  if (parent != NULL) {
    link_child(parent, &element->node);
    parent->has_child_elements = true;
  }
  parse->open[parse->level] = element;
  if (element->kind == XML_NAME_AUTOMATED && parse->automated_level == 0)
    parse->automated_level = parse->level;
  return AG_OK;
}

/* Append len bytes to the text *data of *used bytes, which must be the
 * arena's last allocation unless *data is NULL. */
static inline enum ag_code append_bytes(struct xml_parse *parse, char **data,
                                        size_t *used, const xmlChar *bytes,
                                        size_t len)
{
  char *grown = *data == NULL
                    ? xml_arena_alloc(&parse->arena, len + 1)
                    : xml_arena_grow(&parse->arena, *data, *used + 1, len);

  if (grown == NULL)
    return fail_memory(parse);
  memcpy(grown + *used, bytes, len);
  *used += len;
  grown[*used] = '\0';
  *data = grown;
  return AG_OK;
}

/* Keep character data of the open element of the current level where
 * the converter reads it: before its first child element, or under
 * <automated> in a text child. Either grows in place while no other node
 * comes between the pieces, because it is the arena's last allocation. */
static enum ag_code append_text(struct xml_parse *parse, const xmlChar *data,
                                size_t len)
{
  struct xml_element *element = parse->open[parse->level];

  if (!element->has_child_elements)
    return append_bytes(parse, &element->text, &element->text_len, data, len);
  if (parse->automated_level == 0)
    return AG_OK;

  struct xml_node *last = element->last_child;
  if (!last->is_text) {
    struct xml_text *text = xml_arena_alloc(&parse->arena, sizeof(*text));
    if (text == NULL)
      return fail_memory(parse);
    *text = (struct xml_text){.node = {.is_text = true}};
    link_child(element, &text->node);
    last = &text->node;
  }
  struct xml_text *text = (struct xml_text *)last;
  return append_bytes(parse, &text->data, &text->len, data, len);
}

/* Convert the finished annotation, pass it to the sink and drop its
 * tree.
 * NOTE: nothing bounds the size of one annotation. An 87 MB export of one
 * annotation with 100,000 line items of seven datapoints peaked at
 * 263 MiB: its tree and its JSON object take about 1.5 times its size each
 * (GNU time, bench/parse_driver.c, x86-64). */
static enum ag_code emit_annotation(struct xml_parse *parse)
{
  json_t *object = xml_convert_annotation(parse, parse->open[ANNOTATION_LEVEL]);

  if (object != NULL && begin_list(parse) == AG_OK) {
    enum ag_code code = parse->sink->item(parse->sink->ctx, object, parse->err);
    if (code != AG_OK && parse->code == AG_OK)
      parse->code = code;
  }
  json_decref(object);
  parse->in_annotation = false;
  parse->annotation_url = NULL;
  xml_arena_reset(&parse->arena);
  return parse->code;
}

/* ---- The document's structure ---- */

/* Return whether an element without a namespace prefix is called name.
 * Outside annotations the prefix counts, so <x:export> is not <export>,
 * while inside them only the local name does. */
static bool is_named(const xmlChar *prefix, const xmlChar *local_name,
                     const char *name)
{
  return prefix == NULL && strcmp((const char *)local_name, name) == 0;
}

/* Store prefix:local_name, or local_name alone, in out as a quote for a
 * message. */
static const char *quote_name(char *out, size_t size, const xmlChar *prefix,
                              const xmlChar *local_name)
{
  char name[2 * QUOTE_MAX];

  if (prefix == NULL)
    return xml_quote(out, size, local_name);
  snprintf(name, sizeof(name), "%s:%s", (const char *)prefix,
           (const char *)local_name);
  return xml_quote(out, size, (const xmlChar *)name);
}

/* Handle an element at levels 1 to 3 outside the passed-over elements:
 * <export>, its children and the children of <results>. */
static enum ag_code visit_element(struct xml_parse *parse,
                                  const xmlChar *local_name,
                                  const xmlChar *prefix, long line, int count,
                                  const xmlChar **attributes)
{
  char shown[QUOTE_MAX];

  if (parse->level == 1) {
    if (!is_named(prefix, local_name, "export"))
      return xml_fail(parse, AG_EPARSE,
                      "line %ld: root element is <%s>, expected <export>", line,
                      quote_name(shown, sizeof(shown), prefix, local_name));
    return AG_OK;
  }

  if (parse->level == 2) {
    bool results = is_named(prefix, local_name, "results");
    if (results && parse->saw_results)
      return xml_fail(parse, AG_EPARSE, "line %ld: a second <results> element",
                      line);
    parse->saw_results |= results;
    if (!results)
      parse->passing_level = parse->level;
    return AG_OK;
  }

  /* Level 3 is inside <results>. */
  if (!is_named(prefix, local_name, "annotation"))
    return xml_fail(parse, AG_EPARSE,
                    "line %ld: unexpected element <%s> in <results>", line,
                    quote_name(shown, sizeof(shown), prefix, local_name));
  xml_arena_reset(&parse->arena);
  if (add_element(parse, NULL, local_name, line, count, attributes) != AG_OK)
    return parse->code;
  parse->in_annotation = true;
  parse->annotation_url = parse->open[ANNOTATION_LEVEL]->url.data;
  return AG_OK;
}

static void on_start_element(void *context, const xmlChar *local_name,
                             const xmlChar *prefix, const xmlChar *uri,
                             int namespace_count, const xmlChar **namespaces,
                             int attribute_count, int defaulted_count,
                             const xmlChar **attributes)
{
  struct xml_parse *parse = context;
  (void)uri;
  (void)namespaces;
  (void)defaulted_count;

  if (parse->code != AG_OK)
    return;

  long line = current_line(parse);
  parse->run = XML_RUN_NONE;
  parse->level++;
  if (check_element(parse, local_name, line,
                    attribute_count + namespace_count) != AG_OK)
    return;

  if (parse->in_annotation)
    add_element(parse, parse->open[parse->level - 1], local_name, line,
                attribute_count, attributes);
  else if (parse->passing_level == 0)
    visit_element(parse, local_name, prefix, line, attribute_count, attributes);
}

static void on_end_element(void *context, const xmlChar *local_name,
                           const xmlChar *prefix, const xmlChar *uri)
{
  struct xml_parse *parse = context;
  (void)local_name;
  (void)prefix;
  (void)uri;

  if (parse->code != AG_OK)
    return;

  parse->run = XML_RUN_NONE;
  if (parse->automated_level == parse->level)
    parse->automated_level = 0;
  if (parse->in_annotation && parse->level == ANNOTATION_LEVEL &&
      emit_annotation(parse) != AG_OK)
    return;
  if (parse->passing_level == parse->level)
    parse->passing_level = 0;
  parse->level--;
}

/* Count character data of one kind towards the text node that libxml2's
 * tree builder would make of it, and keep it when it is in an
 * annotation. */
static void add_character_data(struct xml_parse *parse, enum xml_run run,
                               const xmlChar *data, int len)
{
  if (parse->code != AG_OK || len <= 0)
    return;

  if (parse->run != run) {
    parse->run = run;
    parse->run_bytes = 0;
  }
  parse->run_bytes += (size_t)len;
  if (parse->run_bytes > EXPORT_XML_MAX_TEXT_BYTES) {
    fail_limit(parse, current_line(parse),
               "text node longer than the limit of %d bytes",
               EXPORT_XML_MAX_TEXT_BYTES);
    return;
  }
  if (parse->in_annotation)
    append_text(parse, data, (size_t)len);
}

/* Receive text and white space. The handler for ignorable white space is
 * this one too, so libxml2 does not tell the two apart. */
static void on_characters(void *context, const xmlChar *data, int len)
{
  add_character_data(context, XML_RUN_TEXT, data, len);
}

static void on_cdata(void *context, const xmlChar *data, int len)
{
  add_character_data(context, XML_RUN_CDATA, data, len);
}

/* A comment or processing instruction ends a text node. */
static void on_comment(void *context, const xmlChar *text)
{
  struct xml_parse *parse = context;
  (void)text;

  parse->run = XML_RUN_NONE;
}

static void on_processing_instruction(void *context, const xmlChar *target,
                                      const xmlChar *data)
{
  struct xml_parse *parse = context;
  (void)target;
  (void)data;

  parse->run = XML_RUN_NONE;
}

/* libxml2 reports <!DOCTYPE name ...> here before it reads the internal
 * subset. The failure stops the callbacks, and with no handler for
 * declarations and entities nothing that follows is stored or loaded. The
 * raw scan normally rejects the DOCTYPE first, and this catches input that
 * it cannot read, such as UTF-16. */
static void on_internal_subset(void *context, const xmlChar *name,
                               const xmlChar *external_id,
                               const xmlChar *system_id)
{
  struct xml_parse *parse = context;
  (void)name;
  (void)external_id;
  (void)system_id;

  xml_fail(parse, AG_EPARSE,
           "line %ld: DOCTYPE is not allowed in an export file, because it "
           "can declare entities",
           current_line(parse));
}

void xml_sax_init(xmlSAXHandler *handler)
{
  memset(handler, 0, sizeof(*handler));
  handler->initialized = XML_SAX2_MAGIC;
  handler->startElementNs = on_start_element;
  handler->endElementNs = on_end_element;
  handler->characters = on_characters;
  handler->ignorableWhitespace = on_characters;
  handler->cdataBlock = on_cdata;
  handler->comment = on_comment;
  handler->processingInstruction = on_processing_instruction;
  handler->internalSubset = on_internal_subset;
}

enum ag_code xml_sax_finish(struct xml_parse *parse)
{
  if (!parse->saw_results)
    return xml_fail(parse, AG_EPARSE,
                    "no <results> element in <export>, so this is not a Rossum "
                    "export; check the queue's export settings");

  /* An export without annotations still gets an (empty) list. */
  return begin_list(parse);
}
