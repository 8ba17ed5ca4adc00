/* Conversion of one expanded <annotation> subtree to the JSON object
 * that export_parse_xml() hands to the sink: the scalar keys, fields,
 * tables and metadata (docs/formats.md). */
#include "export_xml_internal.h"

#include <stdbool.h>
#include <string.h>

#include <libxml/tree.h>

static bool is_element(const xmlNode *node, const char *name)
{
  return node->type == XML_ELEMENT_NODE &&
         xmlStrEqual(node->name, (const xmlChar *)name);
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
      xml_fail_at(parse, child, "<%s> appears twice in <%s>", name,
                  (const char *)parent->name);
      return NULL;
    }
    first = child;
  }
  return first;
}

/* Return the text of a node list when it is a single text node, which
 * is how libxml2 stores the text of an element without markup inside and
 * the value of an attribute. The text is borrowed from the tree, which
 * saves the copy that xmlNodeGetContent() and xmlGetProp() make. Those
 * copies took about 5 % of the instructions of an XML parse (callgrind,
 * libxml2 2.9.14). Returns NULL for any other list. */
static const xmlChar *single_text(const xmlNode *first)
{
  if (first != NULL && first->next == NULL && first->type == XML_TEXT_NODE)
    return first->content;
  return NULL;
}

/* Return the text content of element, borrowed when possible; a copy is
 * stored in *copy, which the caller frees with xmlFree. Returns NULL when
 * out of memory. */
static const xmlChar *element_text(const xmlNode *element, xmlChar **copy)
{
  const xmlChar *text = single_text(element->children);

  *copy = NULL;
  if (element->children == NULL)
    return (const xmlChar *)"";
  if (text != NULL)
    return text;
  *copy = xmlNodeGetContent(element);
  return *copy;
}

/* Return the value of the attribute name of element, or NULL when it has
 * none. As in element_text, a copy is stored in *copy when the value
 * cannot be borrowed. */
static const xmlChar *attribute_text(const xmlNode *element, const char *name,
                                     xmlChar **copy)
{
  const xmlAttr *attribute = xmlHasProp(element, (const xmlChar *)name);
  const xmlChar *text = NULL;

  *copy = NULL;
  if (attribute != NULL && attribute->type == XML_ATTRIBUTE_NODE)
    text = single_text(attribute->children);
  if (text != NULL || attribute == NULL)
    return text;
  *copy = xmlGetProp(element, (const xmlChar *)name);
  return *copy;
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
      xml_fail_at(parse, child, "<%s> contains the element <%s>; expected text",
                  (const char *)element->name,
                  xml_quote(shown, sizeof(shown), child->name));
      return NULL;
    }
  }

  xmlChar *copy;
  const xmlChar *text = element_text(element, &copy);
  if (text == NULL)
    return NULL;
  json_t *value = json_string((const char *)text);
  xmlFree(copy);
  return value;
}

static json_t *attribute_or_null(const xmlNode *element, const char *name)
{
  if (element == NULL)
    return json_null();

  xmlChar *copy;
  const xmlChar *text = attribute_text(element, name, &copy);
  if (text == NULL)
    return json_null();
  json_t *value = json_string((const char *)text);
  xmlFree(copy);
  return value;
}

/* Return the schema_id of element, recording AG_EPARSE when it has none.
 * As in element_text, a copy is stored in *copy when the value cannot be
 * borrowed. */
static const xmlChar *require_schema_id(struct xml_parse *parse,
                                        const xmlNode *element, xmlChar **copy)
{
  const xmlChar *schema_id = attribute_text(element, "schema_id", copy);

  if (schema_id == NULL)
    xml_fail_at(parse, element, "<%s> without schema_id attribute",
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
  xmlChar *copy;
  const xmlChar *schema_id = require_schema_id(parse, datapoint, &copy);

  if (schema_id == NULL)
    return parse->code;

  const char *key = (const char *)schema_id;
  if (json_object_get(object, key) != NULL) {
    xml_fail_at(parse, datapoint, "duplicate datapoint schema_id \"%s\"",
                xml_quote(shown, sizeof(shown), schema_id));
  } else if (json_object_set_new(object, key, text_or_null(parse, datapoint)) !=
             0) {
    xml_fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
  }
  xmlFree(copy);
  return parse->code;
}

/* Convert a tuple to an object of its datapoints. A tuple with no
 * datapoints becomes {}. */
static json_t *convert_tuple(struct xml_parse *parse, const xmlNode *tuple)
{
  json_t *object = json_object();

  if (object == NULL) {
    xml_fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
    return NULL;
  }

  for (const xmlNode *child = tuple->children; child != NULL;
       child = child->next) {
    if (child->type != XML_ELEMENT_NODE)
      continue;
    if (!is_element(child, "datapoint")) {
      xml_fail_at(parse, child, "unexpected element <%s> in <tuple>",
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
      xml_fail(parse, AG_ENOMEM,
               "out of memory while converting an annotation");
    return value;
  }

  xml_fail_at(parse, child, "unexpected element <%s> in <multivalue>",
              (const char *)child->name);
  return NULL;
}

/* Store a multivalue in tables as an array under its schema_id. */
static enum ag_code add_table(struct xml_parse *parse,
                              const xmlNode *multivalue, json_t *tables)
{
  char shown[QUOTE_MAX];
  json_t *rows = NULL;
  xmlChar *copy;
  const xmlChar *schema_id = require_schema_id(parse, multivalue, &copy);

  if (schema_id == NULL)
    goto done;
  if (json_object_get(tables, (const char *)schema_id) != NULL) {
    xml_fail_at(parse, multivalue, "duplicate multivalue schema_id \"%s\"",
                xml_quote(shown, sizeof(shown), schema_id));
    goto done;
  }

  rows = json_array();
  if (rows == NULL) {
    xml_fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
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
      xml_fail(parse, AG_ENOMEM,
               "out of memory while converting an annotation");
      goto done;
    }
  }

  if (json_object_set_new(tables, (const char *)schema_id, rows) != 0)
    xml_fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
  rows = NULL;

done:
  json_decref(rows);
  xmlFree(copy);
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
    return xml_fail_at(parse, item, "metadata <item> without key attribute");

  if (json_object_get(metadata, (const char *)key) != NULL) {
    xml_fail_at(parse, item, "duplicate metadata key \"%s\"",
                xml_quote(shown, sizeof(shown), key));
  } else if (xmlFirstElementChild((xmlNode *)item) != NULL) {
    /* NOTE: Rossum does not document how nested metadata values look in
     * XML. Flattening child elements into one string would alter the
     * value, so such an item is rejected. */
    xml_fail_at(parse, item, "metadata item \"%s\" has child elements",
                xml_quote(shown, sizeof(shown), key));
  } else if (json_object_set_new(metadata, (const char *)key,
                                 text_or_null(parse, item)) != 0) {
    xml_fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
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
      return xml_fail_at(parse, child, "unexpected element <%s> in <metadata>",
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
    xml_fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
  else if (xmlStrEqual(text, (const xmlChar *)"true"))
    value = json_true();
  else if (text[0] == '\0' || xmlStrEqual(text, (const xmlChar *)"false"))
    value = json_false();
  else
    xml_fail_at(parse, element, "<automated> is \"%s\", expected true or false",
                xml_quote(shown, sizeof(shown), text));
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
    return xml_fail(parse, AG_ENOMEM,
                    "out of memory while converting an annotation");

  json_t *automated =
      convert_automated(parse, single_child(parse, annotation, "automated"));
  if (automated == NULL)
    return parse->code;
  if (json_object_set_new(object, "automated", automated) != 0)
    return xml_fail(parse, AG_ENOMEM,
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
    return xml_fail(parse, AG_ENOMEM,
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
json_t *xml_convert_annotation(struct xml_parse *parse,
                               const xmlNode *annotation)
{
  json_t *object = json_object();

  if (object == NULL) {
    xml_fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
    return NULL;
  }

  if (add_scalars(parse, annotation, object) != AG_OK ||
      add_collections(parse, annotation, object) != AG_OK) {
    json_decref(object);
    return NULL;
  }
  return object;
}
