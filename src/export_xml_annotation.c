/* Conversion of one annotation tree (export_xml_sax.c) to the JSON object
 * that export_parse_xml() hands to the sink: the scalar keys, fields,
 * tables and metadata (docs/formats.md).
 *
 * Strings and keys are made with jansson's _nocheck functions. libxml2 has
 * checked the input's UTF-8, or converted it from the declared encoding,
 * before a SAX callback gets it. Invalid input is a fatal error that stops
 * the callbacks before the annotation is complete. jansson's second UTF-8
 * check of keys and values took 6 % of the instructions of a whole parse
 * (callgrind, a 4 MiB generated export, jansson 2.14). */
#include "export_xml_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static enum ag_code fail_memory(struct xml_parse *parse)
{
  return xml_fail(parse, AG_ENOMEM,
                  "out of memory while converting an annotation");
}

static const struct xml_element *as_element(const struct xml_node *node)
{
  return node->is_text ? NULL : (const struct xml_element *)node;
}

static const struct xml_element *
first_child_element(const struct xml_element *parent)
{
  if (!parent->has_child_elements)
    return NULL;
  for (const struct xml_node *child = parent->children; child != NULL;
       child = child->next) {
    if (!child->is_text)
      return as_element(child);
  }
  return NULL;
}

/* Return the child element of kind, called name, or NULL when there is
 * none. A second one is recorded as AG_EPARSE, because keeping either
 * would silently drop the other. Accepts a NULL parent. */
static const struct xml_element *single_child(struct xml_parse *parse,
                                              const struct xml_element *parent,
                                              enum xml_name kind,
                                              const char *name)
{
  const struct xml_element *first = NULL;

  if (parent == NULL)
    return NULL;
  for (const struct xml_node *child = parent->children; child != NULL;
       child = child->next) {
    const struct xml_element *element = as_element(child);
    if (element == NULL || element->kind != kind)
      continue;
    if (first != NULL) {
      xml_fail_at(parse, element->line, "<%s> appears twice in <%s>", name,
                  (const char *)parent->name);
      return NULL;
    }
    first = element;
  }
  return first;
}

/* Return the text of element, which has no child elements, as a JSON
 * string. */
static json_t *text_value(const struct xml_element *element)
{
  return json_stringn_nocheck(element->text != NULL ? element->text : "",
                              element->text_len);
}

/* Return the text of element as a JSON string, or JSON null when element
 * is NULL. An element with child elements is recorded as AG_EPARSE,
 * because flattening it would silently join texts. Returns NULL on
 * failure. */
static json_t *text_or_null(struct xml_parse *parse,
                            const struct xml_element *element)
{
  char shown[QUOTE_MAX];

  if (element == NULL)
    return json_null();

  const struct xml_element *child = first_child_element(element);
  if (child != NULL) {
    xml_fail_at(parse, child->line,
                "<%s> contains the element <%s>; expected text",
                (const char *)element->name,
                xml_quote(shown, sizeof(shown), child->name));
    return NULL;
  }
  return text_value(element);
}

static json_t *attribute_or_null(const struct xml_element *element,
                                 const struct xml_value *value)
{
  if (element == NULL || value->data == NULL)
    return json_null();
  return json_stringn_nocheck(value->data, value->len);
}

/* Return the schema_id of element, recording AG_EPARSE when it has
 * none. */
static const struct xml_value *
require_schema_id(struct xml_parse *parse, const struct xml_element *element)
{
  if (element->schema_id.data == NULL) {
    xml_fail_at(parse, element->line, "<%s> without schema_id attribute",
                (const char *)element->name);
    return NULL;
  }
  return &element->schema_id;
}

/* Store value under key in object, which must not have key yet. A key that
 * is already there is recorded as AG_EPARSE with the message "duplicate
 * <what> \"key\"". Takes the reference to value, also when it fails. */
static enum ag_code set_new_key(struct xml_parse *parse, json_t *object,
                                const struct xml_value *key, json_t *value,
                                long line, const char *what)
{
  char shown[QUOTE_MAX];
  size_t size = json_object_size(object);

  /* Setting replaces an existing member, so a key that was there already
   * leaves the size as it was. This saves a second hash lookup per key. */
  if (value == NULL ||
      json_object_setn_new_nocheck(object, key->data, key->len, value) != 0)
    return fail_memory(parse);
  if (json_object_size(object) == size)
    return xml_fail_at(
        parse, line, "duplicate %s \"%s\"", what,
        xml_quote(shown, sizeof(shown), (const xmlChar *)key->data));
  return AG_OK;
}

/* Store the text of a datapoint under its schema_id in object. Rossum
 * schema ids are unique within a schema, so a repeated id means a broken
 * file, and keeping either value would silently lose the other. */
static enum ag_code add_datapoint(struct xml_parse *parse,
                                  const struct xml_element *datapoint,
                                  json_t *object)
{
  char shown[QUOTE_MAX];
  const struct xml_value *schema_id = require_schema_id(parse, datapoint);

  if (schema_id == NULL)
    return parse->code;

  /* A datapoint with child elements fails. A repeated schema_id is
   * reported first, as when the key is looked up before the text. */
  if (first_child_element(datapoint) != NULL) {
    if (json_object_getn(object, schema_id->data, schema_id->len) != NULL)
      return xml_fail_at(
          parse, datapoint->line, "duplicate datapoint schema_id \"%s\"",
          xml_quote(shown, sizeof(shown), (const xmlChar *)schema_id->data));
    text_or_null(parse, datapoint);
    return parse->code;
  }
  return set_new_key(parse, object, schema_id, text_value(datapoint),
                     datapoint->line, "datapoint schema_id");
}

/* Convert a tuple to an object of its datapoints. A tuple with no
 * datapoints becomes {}. */
static json_t *convert_tuple(struct xml_parse *parse,
                             const struct xml_element *tuple)
{
  json_t *object = json_object();

  if (object == NULL) {
    fail_memory(parse);
    return NULL;
  }

  for (const struct xml_node *node = tuple->children; node != NULL;
       node = node->next) {
    const struct xml_element *child = as_element(node);
    if (child == NULL)
      continue;
    if (child->kind != XML_NAME_DATAPOINT) {
      xml_fail_at(parse, child->line, "unexpected element <%s> in <tuple>",
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
static json_t *convert_row(struct xml_parse *parse,
                           const struct xml_element *child)
{
  if (child->kind == XML_NAME_TUPLE)
    return convert_tuple(parse, child);

  if (child->kind == XML_NAME_DATAPOINT) {
    json_t *value = text_or_null(parse, child);
    if (value == NULL)
      fail_memory(parse);
    return value;
  }

  xml_fail_at(parse, child->line, "unexpected element <%s> in <multivalue>",
              (const char *)child->name);
  return NULL;
}

/* Store a multivalue in tables as an array under its schema_id. */
static enum ag_code add_table(struct xml_parse *parse,
                              const struct xml_element *multivalue,
                              json_t *tables)
{
  char shown[QUOTE_MAX];
  const struct xml_value *schema_id = require_schema_id(parse, multivalue);

  if (schema_id == NULL)
    return parse->code;
  if (json_object_getn(tables, schema_id->data, schema_id->len) != NULL)
    return xml_fail_at(
        parse, multivalue->line, "duplicate multivalue schema_id \"%s\"",
        xml_quote(shown, sizeof(shown), (const xmlChar *)schema_id->data));

  json_t *rows = json_array();
  if (rows == NULL)
    return fail_memory(parse);
  for (const struct xml_node *node = multivalue->children; node != NULL;
       node = node->next) {
    const struct xml_element *child = as_element(node);
    if (child == NULL)
      continue;
    json_t *row = convert_row(parse, child);
    if (row == NULL || json_array_append_new(rows, row) != 0) {
      json_decref(rows);
      return fail_memory(parse);
    }
  }

  if (json_object_setn_new_nocheck(tables, schema_id->data, schema_id->len,
                                   rows) != 0)
    return fail_memory(parse);
  return AG_OK;
}

/* Collect the datapoints and multivalues below parent. Sections and any
 * other wrapper elements are walked through. The SAX callbacks have already
 * bounded the depth to EXPORT_XML_MAX_DEPTH levels. */
static enum ag_code collect_content(struct xml_parse *parse,
                                    const struct xml_element *parent,
                                    json_t *fields, json_t *tables)
{
  for (const struct xml_node *node = parent->children; node != NULL;
       node = node->next) {
    const struct xml_element *child = as_element(node);
    if (child == NULL)
      continue;

    if (child->kind == XML_NAME_DATAPOINT)
      add_datapoint(parse, child, fields);
    else if (child->kind == XML_NAME_MULTIVALUE)
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
                                      const struct xml_element *item,
                                      json_t *metadata)
{
  char shown[QUOTE_MAX];
  const struct xml_value *key = &item->key;

  if (key->data == NULL)
    return xml_fail_at(parse, item->line,
                       "metadata <item> without key attribute");

  if (json_object_getn(metadata, key->data, key->len) != NULL)
    return xml_fail_at(
        parse, item->line, "duplicate metadata key \"%s\"",
        xml_quote(shown, sizeof(shown), (const xmlChar *)key->data));
  /* NOTE: Rossum does not document how nested metadata values look in
   * XML. Flattening child elements into one string would alter the value,
   * so such an item is rejected. */
  if (first_child_element(item) != NULL)
    return xml_fail_at(
        parse, item->line, "metadata item \"%s\" has child elements",
        xml_quote(shown, sizeof(shown), (const xmlChar *)key->data));
  if (json_object_setn_new_nocheck(metadata, key->data, key->len,
                                   text_value(item)) != 0)
    return fail_memory(parse);
  return AG_OK;
}

static enum ag_code collect_metadata(struct xml_parse *parse,
                                     const struct xml_element *element,
                                     json_t *metadata)
{
  if (element == NULL)
    return parse->code;

  for (const struct xml_node *node = element->children; node != NULL;
       node = node->next) {
    const struct xml_element *child = as_element(node);
    if (child == NULL)
      continue;
    if (child->kind != XML_NAME_ITEM)
      return xml_fail_at(parse, child->line,
                         "unexpected element <%s> in <metadata>",
                         (const char *)child->name);
    if (add_metadata_item(parse, child, metadata) != AG_OK)
      break;
  }
  return parse->code;
}

/* Compare the text at *matched of expected with len bytes of data and
 * move *matched past them. Returns false when they differ. */
static bool match_piece(const char *expected, size_t expected_len,
                        size_t *matched, const char *data, size_t len)
{
  if (len == 0)
    return true;
  if (len > expected_len - *matched ||
      memcmp(data, expected + *matched, len) != 0)
    return false;
  *matched += len;
  return true;
}

/* Return whether the character data of element and its descendants, in
 * document order, continues expected at *matched, as xmlNodeGetContent()
 * would give it, and move *matched past it. The recursion is bounded by
 * EXPORT_XML_MAX_DEPTH. */
static bool content_equals(const struct xml_element *element,
                           const char *expected, size_t *matched)
{
  size_t expected_len = strlen(expected);

  if (!match_piece(expected, expected_len, matched, element->text,
                   element->text_len))
    return false;
  for (const struct xml_node *node = element->children; node != NULL;
       node = node->next) {
    if (!node->is_text) {
      if (!content_equals(as_element(node), expected, matched))
        return false;
      continue;
    }
    const struct xml_text *text = (const struct xml_text *)node;
    if (!match_piece(expected, expected_len, matched, text->data, text->len))
      return false;
  }
  return true;
}

static bool content_is(const struct xml_element *element, const char *expected)
{
  size_t matched = 0;

  return content_equals(element, expected, &matched) &&
         matched == strlen(expected);
}

/* Append the character data of element and its descendants, in document
 * order, to out of size bytes at *len, as far as it fits. The recursion is
 * bounded by EXPORT_XML_MAX_DEPTH. */
static void join_content(const struct xml_element *element, char *out,
                         size_t size, size_t *len)
{
  size_t take =
      element->text_len < size - *len ? element->text_len : size - *len;

  if (take > 0)
    memcpy(out + *len, element->text, take);
  *len += take;
  for (const struct xml_node *node = element->children;
       node != NULL && *len < size; node = node->next) {
    if (!node->is_text) {
      join_content(as_element(node), out, size, len);
      continue;
    }
    const struct xml_text *text = (const struct xml_text *)node;
    take = text->len < size - *len ? text->len : size - *len;
    memcpy(out + *len, text->data, take);
    *len += take;
  }
}

/* Store in out a quote of the character data of element and its
 * descendants, for a message. */
static void quote_content(const struct xml_element *element, char *out,
                          size_t size)
{
  /* The quote is cut to fewer than QUOTE_MAX bytes, so joining more than
   * that would not change it. */
  char joined[2 * QUOTE_MAX];
  size_t len = 0;

  join_content(element, joined, sizeof(joined) - 1, &len);
  joined[len] = '\0';
  xml_quote(out, size, (const xmlChar *)joined);
}

/* Return JSON true or false from <automated>. An absent or empty element
 * means false. The rossum-sdk sample export has no <automated> at all. As
 * before, the text of child elements counts too. */
static json_t *convert_automated(struct xml_parse *parse,
                                 const struct xml_element *element)
{
  char shown[QUOTE_MAX];

  if (element == NULL)
    return json_false();
  if (content_is(element, "true"))
    return json_true();
  if (content_is(element, "") || content_is(element, "false"))
    return json_false();

  quote_content(element, shown, sizeof(shown));
  xml_fail_at(parse, element->line,
              "<automated> is \"%s\", expected true or false", shown);
  return NULL;
}

/* Return modifier/username as a string, or null when there is none. */
static json_t *convert_modifier(struct xml_parse *parse,
                                const struct xml_element *annotation)
{
  const struct xml_element *modifier =
      single_child(parse, annotation, XML_NAME_MODIFIER, "modifier");

  if (parse->code != AG_OK)
    return NULL;
  return text_or_null(
      parse, single_child(parse, modifier, XML_NAME_USERNAME, "username"));
}

/* Return text_or_null of the single child of annotation of kind. */
static json_t *child_text(struct xml_parse *parse,
                          const struct xml_element *annotation,
                          enum xml_name kind, const char *name)
{
  return text_or_null(parse, single_child(parse, annotation, kind, name));
}

/* Add the scalar keys, id to automated, in the documented order. */
static enum ag_code add_scalars(struct xml_parse *parse,
                                const struct xml_element *annotation,
                                json_t *object)
{
  const struct xml_element *document =
      single_child(parse, annotation, XML_NAME_DOCUMENT, "document");
  const struct xml_element *file_name =
      single_child(parse, document, XML_NAME_FILE_NAME, "file_name");
  int failed = 0;

  failed |= json_object_set_new_nocheck(
      object, "id", export_annotation_id(parse->annotation_url));
  failed |= json_object_set_new_nocheck(
      object, "url", attribute_or_null(annotation, &annotation->url));
  failed |= json_object_set_new_nocheck(
      object, "status",
      child_text(parse, annotation, XML_NAME_STATUS, "status"));
  failed |= json_object_set_new_nocheck(
      object, "arrived_at",
      child_text(parse, annotation, XML_NAME_ARRIVED_AT, "arrived_at"));
  failed |= json_object_set_new_nocheck(
      object, "exported_at",
      child_text(parse, annotation, XML_NAME_EXPORTED_AT, "exported_at"));
  failed |= json_object_set_new_nocheck(object, "file_name",
                                        text_or_null(parse, file_name));
  failed |= json_object_set_new_nocheck(
      object, "document_url",
      attribute_or_null(document, document != NULL ? &document->url : NULL));
  failed |= json_object_set_new_nocheck(object, "modifier",
                                        convert_modifier(parse, annotation));
  if (failed != 0)
    return fail_memory(parse);

  json_t *automated = convert_automated(
      parse, single_child(parse, annotation, XML_NAME_AUTOMATED, "automated"));
  if (automated == NULL)
    return parse->code;
  if (json_object_set_new_nocheck(object, "automated", automated) != 0)
    return fail_memory(parse);
  return AG_OK;
}

/* Add fields, tables and metadata to object. */
static enum ag_code add_collections(struct xml_parse *parse,
                                    const struct xml_element *annotation,
                                    json_t *object)
{
  json_t *fields = json_object();
  json_t *tables = json_object();
  json_t *metadata = json_object();
  int failed = 0;

  /* json_object_set_new_nocheck takes each reference, also when it
   * fails. */
  failed |= json_object_set_new_nocheck(object, "fields", fields);
  failed |= json_object_set_new_nocheck(object, "tables", tables);
  failed |= json_object_set_new_nocheck(object, "metadata", metadata);
  if (failed != 0)
    return fail_memory(parse);

  /* The three objects are borrowed from object from here on. */
  const struct xml_element *content =
      single_child(parse, annotation, XML_NAME_CONTENT, "content");
  const struct xml_element *metadata_element =
      single_child(parse, annotation, XML_NAME_METADATA, "metadata");
  if (parse->code != AG_OK)
    return parse->code;
  if (content != NULL &&
      collect_content(parse, content, fields, tables) != AG_OK)
    return parse->code;
  return collect_metadata(parse, metadata_element, metadata);
}

json_t *xml_convert_annotation(struct xml_parse *parse,
                               const struct xml_element *annotation)
{
  json_t *object = json_object();

  if (object == NULL) {
    fail_memory(parse);
    return NULL;
  }

  if (add_scalars(parse, annotation, object) != AG_OK ||
      add_collections(parse, annotation, object) != AG_OK) {
    json_decref(object);
    return NULL;
  }
  return object;
}
