/* The [mapping] sink: renames or drops export-defined keys in each item
 * before it reaches the output. */
#include "agent/mapping.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent/log.h"
#include "agent/utf8.h"

/* Longest key or URL quoted in a message, and the sizes of the texts that
 * locate a message in an item: the item, one of its members, and a row of
 * a table in that member. */
#define QUOTE_MAX 160
#define ITEM_WHERE_MAX (QUOTE_MAX + 64)
#define MEMBER_WHERE_MAX (ITEM_WHERE_MAX + 32)
#define ROW_WHERE_MAX (MEMBER_WHERE_MAX + QUOTE_MAX + 32)

/* Shape of the items in the current list. */
enum item_shape {
  SHAPE_NONE,
  SHAPE_ANNOTATION, /* "annotations" of XML and JSON */
  SHAPE_RECORD,     /* "records" of CSV: header keys at the top */
  SHAPE_DOCUMENT    /* "documents" of CSV with group_by */
};

struct mapping {
  json_t *names; /* name in the export -> new name (string) or null (drop) */
  const struct export_sink *next;
  struct export_sink sink;
  enum item_shape shape; /* set by the parser's begin() call */
  size_t items;          /* items of the current list, for messages */
};

enum ag_code mapping_validate(const struct config *config, struct ag_error *err)
{
  char shown[QUOTE_MAX];

  for (size_t i = 0; i < config->mapping_count; i++) {
    const struct config_mapping *entry = &config->mapping[i];
    const char *bad = NULL;

    if (!utf8_valid(entry->from, strlen(entry->from), NULL))
      bad = entry->from;
    else if (entry->to != NULL &&
             !utf8_valid(entry->to, strlen(entry->to), NULL))
      bad = entry->to;
    if (bad != NULL)
      return ag_error_set(err, AG_ECONFIG,
                          "%s: [mapping] name '%s' is not valid UTF-8; output "
                          "keys are JSON strings, so save the config as UTF-8",
                          config->path != NULL ? config->path : "config",
                          log_escape(shown, sizeof(shown), bad, strlen(bad)));
  }
  return AG_OK;
}

/* Rename or drop the keys of object into a new object, which is stored in
 * *out. tables is true for the "tables" object of an annotation, whose
 * values are arrays of rows: the keys of each tuple object in a row are
 * mapped as well. where names the object in messages. */
static enum ag_code map_keys(struct mapping *mapping, json_t *object,
                             bool tables, const char *where, json_t **out,
                             struct ag_error *err);

/* Map the keys of each object in the array rows into a new array. Other
 * elements, such as the string of a bare datapoint in a table, stay as
 * they are. */
static enum ag_code map_rows(struct mapping *mapping, json_t *rows,
                             const char *where, json_t **out,
                             struct ag_error *err)
{
  json_t *result = json_array();
  enum ag_code code = AG_OK;
  size_t index;
  json_t *row;

  if (result == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  json_array_foreach(rows, index, row)
  {
    json_t *mapped = NULL;

    if (json_is_object(row))
      code = map_keys(mapping, row, false, where, &mapped, err);
    else
      mapped = json_incref(row);
    if (code != AG_OK)
      break;
    if (json_array_append_new(result, mapped) != 0) {
      code = ag_error_set(err, AG_ENOMEM, "out of memory");
      break;
    }
  }

  if (code != AG_OK) {
    json_decref(result);
    return code;
  }
  *out = result;
  return AG_OK;
}

/* Return the name that key gets, or NULL when it is dropped. */
static const char *new_name(const struct mapping *mapping, const char *key)
{
  const json_t *target = json_object_get(mapping->names, key);

  if (target == NULL)
    return key;
  return json_string_value(target); /* NULL for a dropped key */
}

static enum ag_code fail_clash(const char *first, const char *second,
                               const char *name, const char *where,
                               struct ag_error *err)
{
  char shown_first[QUOTE_MAX];
  char shown_second[QUOTE_MAX];
  char shown_name[QUOTE_MAX];

  return ag_error_set(
      err, AG_EPARSE,
      "[mapping] gives \"%s\" and \"%s\" the same name \"%s\" in %s; change "
      "the [mapping] entries so that the names in one object stay distinct",
      log_escape(shown_first, sizeof(shown_first), first, strlen(first)),
      log_escape(shown_second, sizeof(shown_second), second, strlen(second)),
      log_escape(shown_name, sizeof(shown_name), name, strlen(name)), where);
}

/* Map the rows of the table called name, naming it in messages. */
static enum ag_code map_table(struct mapping *mapping, const char *name,
                              json_t *table, const char *where, json_t **out,
                              struct ag_error *err)
{
  char shown[QUOTE_MAX];
  char row_where[ROW_WHERE_MAX];

  snprintf(row_where, sizeof(row_where), "a row of table \"%s\" in %s",
           log_escape(shown, sizeof(shown), name, strlen(name)), where);
  return map_rows(mapping, table, row_where, out, err);
}

/* Return the key of object, before key, that gets the name name. */
static const char *origin_of(const struct mapping *mapping, json_t *object,
                             const char *name, const char *key)
{
  const char *other;
  json_t *value;

  json_object_foreach(object, other, value)
  {
    if (other == key)
      break;
    const char *other_name = new_name(mapping, other);
    if (other_name != NULL && strcmp(other_name, name) == 0)
      return other;
  }
  return "";
}

static enum ag_code map_keys(struct mapping *mapping, json_t *object,
                             bool tables, const char *where, json_t **out,
                             struct ag_error *err)
{
  json_t *result = json_object();
  enum ag_code code = AG_OK;
  const char *key;
  json_t *value;

  if (result == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  json_object_foreach(object, key, value)
  {
    const char *name = new_name(mapping, key);
    json_t *mapped = NULL;

    if (name == NULL)
      continue;
    /* result has a key for each key of object mapped so far, so a name
     * that it has already is a clash. The key that took the name first
     * is looked up only for the message. */
    if (json_object_get(result, name) != NULL) {
      code = fail_clash(origin_of(mapping, object, name, key), key, name, where,
                        err);
      break;
    }

    if (tables && json_is_array(value))
      code = map_table(mapping, key, value, where, &mapped, err);
    else
      mapped = json_incref(value);
    if (code != AG_OK)
      break;
    /* Both the keys of object and the names of mapping_new() are valid
     * UTF-8 already. */
    if (json_object_set_new_nocheck(result, name, mapped) != 0) {
      code = ag_error_set(err, AG_ENOMEM, "out of memory");
      break;
    }
  }

  if (code != AG_OK) {
    json_decref(result);
    return code;
  }
  *out = result;
  return AG_OK;
}

/* Map one member of an annotation or a CSV document into *out: "fields"
 * and "tables" of an annotation, "fields" and "items" of a document. Other
 * members are the agent's own and stay as they are. */
static enum ag_code map_member(struct mapping *mapping, const char *key,
                               json_t *value, const char *item_where,
                               json_t **out, struct ag_error *err)
{
  bool annotation = mapping->shape == SHAPE_ANNOTATION;
  char where[MEMBER_WHERE_MAX];

  snprintf(where, sizeof(where), "%s of %s", key, item_where);
  if (strcmp(key, "fields") == 0 && json_is_object(value))
    return map_keys(mapping, value, false, where, out, err);
  if (annotation && strcmp(key, "tables") == 0 && json_is_object(value))
    return map_keys(mapping, value, true, where, out, err);
  if (!annotation && strcmp(key, "items") == 0 && json_is_array(value))
    return map_rows(mapping, value, where, out, err);
  *out = json_incref(value);
  return AG_OK;
}

/* Map an annotation or a CSV document into a copy of it. */
static enum ag_code map_nested(struct mapping *mapping, json_t *item,
                               json_t **out, struct ag_error *err)
{
  const char *url = json_string_value(json_object_get(item, "url"));
  char shown[QUOTE_MAX];
  char where[ITEM_WHERE_MAX];
  json_t *result = json_object();
  enum ag_code code = AG_OK;
  const char *key;
  json_t *value;

  if (result == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  if (mapping->shape == SHAPE_DOCUMENT)
    snprintf(where, sizeof(where), "document %zu", mapping->items);
  else
    snprintf(where, sizeof(where), "annotation %zu (%s)", mapping->items,
             url != NULL ? log_escape(shown, sizeof(shown), url, strlen(url))
                         : "no url");

  json_object_foreach(item, key, value)
  {
    json_t *mapped = NULL;

    code = map_member(mapping, key, value, where, &mapped, err);
    if (code != AG_OK)
      break;
    if (json_object_set_new(result, key, mapped) != 0) {
      code = ag_error_set(err, AG_ENOMEM, "out of memory");
      break;
    }
  }

  if (code != AG_OK) {
    json_decref(result);
    return code;
  }
  *out = result;
  return AG_OK;
}

static enum ag_code sink_begin(void *ctx, const char *list_name,
                               struct ag_error *err)
{
  struct mapping *mapping = ctx;

  mapping->items = 0;
  if (strcmp(list_name, "annotations") == 0)
    mapping->shape = SHAPE_ANNOTATION;
  else if (strcmp(list_name, "records") == 0)
    mapping->shape = SHAPE_RECORD;
  else if (strcmp(list_name, "documents") == 0)
    mapping->shape = SHAPE_DOCUMENT;
  else
    return ag_error_set(err, AG_ECONFIG,
                        "[mapping] cannot be applied to items of the list "
                        "\"%s\"; remove the [mapping] section",
                        list_name);
  return mapping->next->begin(mapping->next->ctx, list_name, err);
}

static enum ag_code sink_item(void *ctx, json_t *item, struct ag_error *err)
{
  struct mapping *mapping = ctx;
  json_t *mapped = NULL;
  enum ag_code code;

  mapping->items++;
  if (mapping->shape != SHAPE_RECORD) {
    code = map_nested(mapping, item, &mapped, err);
  } else {
    char where[64];
    snprintf(where, sizeof(where), "record %zu", mapping->items);
    code = map_keys(mapping, item, false, where, &mapped, err);
  }
  if (code != AG_OK)
    return code;

  code = mapping->next->item(mapping->next->ctx, mapped, err);
  json_decref(mapped);
  return code;
}

enum ag_code mapping_new(const struct config_mapping *entries, size_t count,
                         const struct export_sink *next, struct mapping **out,
                         struct ag_error *err)
{
  struct mapping *mapping = calloc(1, sizeof(*mapping));
  enum ag_code code = AG_OK;

  *out = NULL;
  if (mapping == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  mapping->next = next;
  mapping->sink.begin = sink_begin;
  mapping->sink.item = sink_item;
  mapping->sink.ctx = mapping;
  mapping->names = json_object();
  if (mapping->names == NULL)
    code = ag_error_set(err, AG_ENOMEM, "out of memory");

  for (size_t i = 0; i < count && code == AG_OK; i++) {
    const char *from = entries[i].from;
    const char *to = entries[i].to;

    /* jansson takes only UTF-8 keys and strings. */
    if (!utf8_valid(from, strlen(from), NULL) ||
        (to != NULL && !utf8_valid(to, strlen(to), NULL))) {
      code = ag_error_set(err, AG_ECONFIG,
                          "[mapping] has a name that is not valid UTF-8");
      break;
    }
    if (json_object_set_new(mapping->names, from,
                            to != NULL ? json_string(to) : json_null()) != 0)
      code = ag_error_set(err, AG_ENOMEM, "out of memory");
  }

  if (code != AG_OK) {
    mapping_free(mapping);
    return code;
  }
  *out = mapping;
  return AG_OK;
}

const struct export_sink *mapping_sink(struct mapping *mapping)
{
  return &mapping->sink;
}

void mapping_free(struct mapping *mapping)
{
  if (mapping == NULL)
    return;
  json_decref(mapping->names);
  free(mapping);
}
