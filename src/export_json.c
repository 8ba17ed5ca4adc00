/* Rossum JSON export parser.
 *
 * The export is one object: {"pagination": {...}, "results": [annotation,
 * ...]}. Each annotation's "content" is a tree of nodes whose "category"
 * is section, multivalue, tuple or datapoint. The parser converts each
 * annotation into the same object as the XML parser and hands it to the
 * sink.
 *
 * jansson has no streaming reader, so the file is loaded whole, with limits
 * on its size and on the number of values in it (export.h gives the
 * reasons). jansson rejects invalid UTF-8, "\u0000" in strings (because
 * JSON_ALLOW_NUL is not set), nesting deeper than 2048 arrays and objects
 * (its fixed limit in 2.14) and trailing data after the document. With
 * JSON_REJECT_DUPLICATES it also rejects a repeated key in one object.
 * Numbers are decoded to json_int_t or double, which lose the text of the
 * file ("1.10" becomes the double 1.1, "-0" the integer 0), so a datapoint
 * value that is a JSON number is rejected rather than altered. */
#include "agent/export.h"

#include "agent/log.h"
#include "agent/platform.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Longest untrusted text (schema ids, URLs, keys) quoted in a message. */
#define QUOTE_MAX 160

/* The position of a node below the top-level object, as a chain of stack
 * frames. Messages print it as results[1].content[0].children[2]; it is
 * only formatted when something fails. */
struct node_path {
  const struct node_path *parent;
  const char *key; /* member name (a literal), or NULL for an array index */
  size_t index;
};

struct json_parse {
  const struct export_sink *sink;
  struct ag_error *err;
  enum ag_code code;          /* first failure, also when err is NULL */
  const char *annotation_url; /* annotation being converted, or NULL */
};

/* The file being loaded and what went wrong while reading it. */
struct json_input {
  FILE *file;
  long long bytes_read;
  long long values; /* '{', '[', ',' and ':' outside strings so far */
  bool in_string;   /* the last byte read is inside a string */
  bool escaped;     /* ... and follows a backslash */
  bool too_large;   /* more than EXPORT_JSON_MAX_BYTES */
  bool too_many;    /* more than EXPORT_JSON_MAX_VALUES */
  int read_errno;   /* errno of a failed read, or 0 */
};

/* Record a failure unless one is already recorded. */
static enum ag_code fail(struct json_parse *parse, enum ag_code code,
                         const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static enum ag_code fail(struct json_parse *parse, enum ag_code code,
                         const char *format, ...)
{
  char message[AG_ERROR_MESSAGE_MAX];
  va_list args;

  va_start(args, format);
  vsnprintf(message, sizeof(message), format, args);
  va_end(args);

  if (parse->code == AG_OK)
    parse->code = ag_error_set(parse->err, code, "%s", message);
  return parse->code;
}

static enum ag_code fail_memory(struct json_parse *parse)
{
  return fail(parse, AG_ENOMEM, "out of memory while converting an annotation");
}

/* Copy untrusted text into out as a printable, length-limited quote. */
static const char *quote(char *out, size_t out_size, const char *text)
{
  if (text == NULL)
    return "(none)";
  return log_escape(out, out_size, text, strlen(text));
}

/* Append the text of path to out, whose first used bytes are taken. */
static size_t format_path(const struct node_path *path, char *out,
                          size_t out_size, size_t used)
{
  if (path == NULL)
    return used;
  used = format_path(path->parent, out, out_size, used);
  if (used >= out_size)
    return used;

  int n;
  if (path->key == NULL)
    n = snprintf(out + used, out_size - used, "[%zu]", path->index);
  else
    n = snprintf(out + used, out_size - used, "%s%s",
                 path->parent == NULL ? "" : ".", path->key);
  return n < 0 ? out_size : used + (size_t)n;
}

/* Record AG_EPARSE for the node at path. Inside an annotation the message
 * also names its URL, which is easier to look up than an index. */
static enum ag_code fail_at(struct json_parse *parse,
                            const struct node_path *path, const char *format,
                            ...) __attribute__((format(printf, 3, 4)));

static enum ag_code fail_at(struct json_parse *parse,
                            const struct node_path *path, const char *format,
                            ...)
{
  char detail[AG_ERROR_MESSAGE_MAX / 2];
  char where[256] = "";
  char url[QUOTE_MAX];
  va_list args;

  va_start(args, format);
  vsnprintf(detail, sizeof(detail), format, args);
  va_end(args);
  format_path(path, where, sizeof(where), 0);

  if (parse->annotation_url == NULL)
    return fail(parse, AG_EPARSE, "%s: %s", where, detail);
  return fail(parse, AG_EPARSE, "%s: %s (annotation %s)", where, detail,
              quote(url, sizeof(url), parse->annotation_url));
}

/* Name a JSON type the way the JSON specification does. */
static const char *type_name(const json_t *value)
{
  switch (json_typeof(value)) {
  case JSON_OBJECT:
    return "an object";
  case JSON_ARRAY:
    return "an array";
  case JSON_STRING:
    return "a string";
  case JSON_INTEGER:
  case JSON_REAL:
    return "a number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "a boolean";
  case JSON_NULL:
    break;
  }
  return "null";
}

/* ---- Loading ---- */

/* Classes of input bytes for count_values(). */
enum byte_class {
  BYTE_PLAIN,       /* changes nothing */
  BYTE_QUOTE,       /* starts or ends a string */
  BYTE_BACKSLASH,   /* escapes the next byte in a string */
  BYTE_VALUE_START, /* '{', '[', ',' or ':' outside strings counts a value */
};

static const unsigned char byte_classes[256] = {
    ['"'] = BYTE_QUOTE,       ['\\'] = BYTE_BACKSLASH,
    ['{'] = BYTE_VALUE_START, ['['] = BYTE_VALUE_START,
    [','] = BYTE_VALUE_START, [':'] = BYTE_VALUE_START,
};

/* Count the values that start in block, an upper bound of the json_t
 * values and object keys that jansson will allocate for it. Invalid JSON
 * may be miscounted, but jansson rejects it anyway. The class table lets
 * the loop pass over most bytes with one test. That takes about 40 % fewer
 * instructions than comparing each byte with the five characters
 * (callgrind, gcc 12 -O2). */
static void count_values(struct json_input *input, const unsigned char *block,
                         size_t len)
{
  bool in_string = input->in_string;
  long long values = input->values;
  size_t i = 0;

  /* A backslash at the end of the last block escapes the first byte. */
  if (input->escaped && len > 0) {
    input->escaped = false;
    i = 1;
  }
  while (i < len) {
    unsigned char kind = byte_classes[block[i++]];

    if (kind == BYTE_PLAIN)
      continue;
    if (kind == BYTE_QUOTE) {
      in_string = !in_string;
    } else if (kind == BYTE_BACKSLASH) {
      if (!in_string)
        continue;
      if (i == len)
        input->escaped = true;
      else
        i++;
    } else if (!in_string) {
      values++;
    }
  }
  input->in_string = in_string;
  input->values = values;
}

static size_t read_input(void *buffer, size_t size, void *data)
{
  struct json_input *input = data;
  size_t got = fread(buffer, 1, size, input->file);

  if (got == 0 && ferror(input->file)) {
    input->read_errno = errno != 0 ? errno : EIO;
    return (size_t)-1;
  }
  /* The size was checked before loading; this also covers a file that
   * grows while it is read. */
  input->bytes_read += (long long)got;
  if (input->bytes_read > EXPORT_JSON_MAX_BYTES) {
    input->too_large = true;
    return (size_t)-1;
  }
  count_values(input, buffer, got);
  if (input->values > EXPORT_JSON_MAX_VALUES) {
    input->too_many = true;
    return (size_t)-1;
  }
  return got;
}

/* Skip a UTF-8 byte order mark, which RFC 8259 lets a parser ignore and
 * jansson does not. Returns the number of bytes skipped. */
static int skip_bom(FILE *file)
{
  unsigned char head[3];
  size_t got = fread(head, 1, sizeof(head), file);

  if (got == 3 && head[0] == 0xEF && head[1] == 0xBB && head[2] == 0xBF)
    return 3;
  rewind(file);
  return 0;
}

static enum ag_code fail_too_large(struct json_parse *parse, long long size)
{
  return fail(parse, AG_EPARSE,
              "the file has %lld bytes, more than the %lld bytes (%lld MiB) "
              "that a JSON export may have, because it is loaded into "
              "memory whole; export fewer annotations per file",
              size, EXPORT_JSON_MAX_BYTES, EXPORT_JSON_MAX_BYTES >> 20);
}

/* Turn a jansson load error into the parse failure. */
static enum ag_code fail_syntax(struct json_parse *parse,
                                const json_error_t *error, int bom)
{
  char text[JSON_ERROR_TEXT_LENGTH * 4];

  if (json_error_code(error) == json_error_null_character)
    snprintf(text, sizeof(text), "%s",
             "a string contains \\u0000, which is not allowed");
  else
    log_escape(text, sizeof(text), error->text, strlen(error->text));

  /* jansson counts the position from the first byte it read, which is
   * after a byte order mark. */
  return fail(parse, AG_EPARSE, "line %d, column %d (byte offset %d): %s",
              error->line, error->column, error->position + bom, text);
}

/* Load the document at path into *root. */
static enum ag_code load_document(struct json_parse *parse, const char *path,
                                  json_t **root)
{
  struct json_input input = {0};
  struct stat info;
  json_error_t error;

  *root = NULL;
  input.file = plat_fopen(path, "rb");
  if (input.file == NULL)
    return fail(parse, AG_ELOCAL, "open failed: %s", strerror(errno));
  if (fstat(fileno(input.file), &info) != 0) {
    fail(parse, AG_ELOCAL, "stat failed: %s", strerror(errno));
    goto done;
  }
  if ((long long)info.st_size > EXPORT_JSON_MAX_BYTES) {
    fail_too_large(parse, (long long)info.st_size);
    goto done;
  }

  int bom = skip_bom(input.file);
  *root =
      json_load_callback(read_input, &input, JSON_REJECT_DUPLICATES, &error);
  if (input.read_errno != 0)
    fail(parse, AG_ELOCAL, "read failed: %s", strerror(input.read_errno));
  else if (input.too_large)
    fail_too_large(parse, input.bytes_read + bom);
  else if (input.too_many)
    fail(parse, AG_EPARSE,
         "the file has more than %d JSON values in its first %lld bytes, "
         "the limit for a JSON export, because it is loaded into memory "
         "whole; export fewer annotations per file",
         EXPORT_JSON_MAX_VALUES, input.bytes_read + bom);
  else if (*root == NULL)
    fail_syntax(parse, &error, bom);

done:
  fclose(input.file);
  if (parse->code != AG_OK) {
    json_decref(*root);
    *root = NULL;
  }
  return parse->code;
}

/* ---- Annotation members ---- */

/* Return member key of object as a new reference: the string, or JSON null
 * when the member is absent or null. Any other type is an error. */
static json_t *string_or_null(struct json_parse *parse,
                              const struct node_path *parent,
                              const json_t *object, const char *key)
{
  json_t *value = json_object_get(object, key);
  struct node_path path = {parent, key, 0};

  if (value == NULL || json_is_null(value))
    return json_null();
  if (!json_is_string(value)) {
    fail_at(parse, &path, "\"%s\" is %s, expected a string or null", key,
            type_name(value));
    return NULL;
  }
  return json_incref(value);
}

/* Store the file name and URL of "document". An API-style export gives the
 * document as its URL alone, so then the file name is unknown. */
static enum ag_code add_document(struct json_parse *parse,
                                 const struct node_path *parent,
                                 const json_t *annotation, json_t *object)
{
  const json_t *document = json_object_get(annotation, "document");
  struct node_path path = {parent, "document", 0};
  json_t *file_name = NULL;
  json_t *url = NULL;

  if (document == NULL || json_is_null(document)) {
    file_name = json_null();
    url = json_null();
  } else if (json_is_string(document)) {
    file_name = json_null();
    url = json_incref((json_t *)document);
  } else if (json_is_object(document)) {
    file_name = string_or_null(parse, &path, document, "file_name");
    url = string_or_null(parse, &path, document, "url");
  } else {
    fail_at(parse, &path, "\"document\" is %s, expected an object",
            type_name(document));
  }

  if (parse->code == AG_OK &&
      (json_object_set(object, "file_name", file_name) != 0 ||
       json_object_set(object, "document_url", url) != 0))
    fail_memory(parse);
  json_decref(file_name);
  json_decref(url);
  return parse->code;
}

/* Return modifier.username, or null when there is no modifier or only its
 * URL (as the API gives it without sideloading). */
static json_t *convert_modifier(struct json_parse *parse,
                                const struct node_path *parent,
                                const json_t *annotation)
{
  const json_t *modifier = json_object_get(annotation, "modifier");
  struct node_path path = {parent, "modifier", 0};

  if (modifier == NULL || json_is_null(modifier) || json_is_string(modifier))
    return json_null();
  if (!json_is_object(modifier)) {
    fail_at(parse, &path, "\"modifier\" is %s, expected an object",
            type_name(modifier));
    return NULL;
  }
  return string_or_null(parse, &path, modifier, "username");
}

/* Return "automated" as true or false; absent or null means false, as an
 * absent or empty <automated> does in XML. */
static json_t *convert_automated(struct json_parse *parse,
                                 const struct node_path *parent,
                                 const json_t *annotation)
{
  const json_t *automated = json_object_get(annotation, "automated");
  struct node_path path = {parent, "automated", 0};

  if (automated == NULL || json_is_null(automated))
    return json_false();
  if (!json_is_boolean(automated)) {
    fail_at(parse, &path, "\"automated\" is %s, expected true or false",
            type_name(automated));
    return NULL;
  }
  return json_incref((json_t *)automated);
}

/* Add the scalar keys, id to automated, in the documented order. */
static enum ag_code add_scalars(struct json_parse *parse,
                                const struct node_path *path,
                                const json_t *annotation, json_t *object)
{
  static const char *const texts[] = {"status", "arrived_at", "exported_at"};

  json_t *url = string_or_null(parse, path, annotation, "url");
  if (url == NULL)
    return parse->code;
  parse->annotation_url = json_string_value(url);
  int failed =
      json_object_set_new(object, "id",
                          export_annotation_id(parse->annotation_url)) != 0;
  failed |= json_object_set_new(object, "url", url) != 0;

  for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]) && !failed; i++) {
    json_t *value = string_or_null(parse, path, annotation, texts[i]);
    if (value == NULL)
      return parse->code;
    failed = json_object_set_new(object, texts[i], value) != 0;
  }
  if (failed)
    return fail_memory(parse);
  if (add_document(parse, path, annotation, object) != AG_OK)
    return parse->code;

  json_t *modifier = convert_modifier(parse, path, annotation);
  if (modifier == NULL)
    return parse->code;
  if (json_object_set_new(object, "modifier", modifier) != 0)
    return fail_memory(parse);
  json_t *automated = convert_automated(parse, path, annotation);
  if (automated == NULL)
    return parse->code;
  if (json_object_set_new(object, "automated", automated) != 0)
    return fail_memory(parse);
  return AG_OK;
}

/* ---- Content ---- */

/* Store the "children" array of node in *children, or NULL when node has
 * none or null (jansson treats NULL as an empty array). Returns false
 * with a failure recorded when "children" is not an array. */
static bool children_of(struct json_parse *parse, const struct node_path *path,
                        const json_t *node, const json_t **children)
{
  struct node_path member = {path, "children", 0};

  *children = json_object_get(node, "children");
  if (*children == NULL || json_is_null(*children)) {
    *children = NULL;
    return true;
  }
  if (!json_is_array(*children)) {
    fail_at(parse, &member, "\"children\" is %s, expected an array",
            type_name(*children));
    return false;
  }
  return true;
}

/* Return the category of a content node, or NULL with a failure recorded. */
static const char *category_of(struct json_parse *parse,
                               const struct node_path *path, const json_t *node)
{
  if (!json_is_object(node)) {
    fail_at(parse, path, "content node is %s, expected an object",
            type_name(node));
    return NULL;
  }

  const json_t *category = json_object_get(node, "category");
  if (!json_is_string(category)) {
    fail_at(parse, path, "content node without a \"category\" string");
    return NULL;
  }
  return json_string_value(category);
}

/* Return the schema_id of a datapoint or multivalue, or NULL with a
 * failure recorded. */
static const char *schema_id_of(struct json_parse *parse,
                                const struct node_path *path,
                                const json_t *node, const char *category)
{
  const json_t *schema_id = json_object_get(node, "schema_id");

  if (schema_id == NULL || json_is_null(schema_id)) {
    fail_at(parse, path, "%s without schema_id", category);
    return NULL;
  }
  if (!json_is_string(schema_id)) {
    fail_at(parse, path, "%s schema_id is %s, expected a string", category,
            type_name(schema_id));
    return NULL;
  }
  return json_string_value(schema_id);
}

/* Return the value of a datapoint as a new reference: its string, or ""
 * when it is null or absent. */
static json_t *datapoint_value(struct json_parse *parse,
                               const struct node_path *path,
                               const json_t *datapoint, const char *schema_id)
{
  const json_t *value = json_object_get(datapoint, "value");
  char shown[QUOTE_MAX];

  if (value == NULL || json_is_null(value)) {
    json_t *empty = json_string("");
    if (empty == NULL)
      fail_memory(parse);
    return empty;
  }
  if (json_is_number(value)) {
    fail_at(parse, path,
            "datapoint \"%s\" has a JSON number as its value; values must be "
            "strings, because the agent keeps their exact text and a number "
            "loses it (1.10 would become 1.1)",
            quote(shown, sizeof(shown), schema_id));
    return NULL;
  }
  if (!json_is_string(value)) {
    fail_at(parse, path,
            "datapoint \"%s\" has %s as its value, expected a "
            "string or null",
            quote(shown, sizeof(shown), schema_id), type_name(value));
    return NULL;
  }
  return json_incref((json_t *)value);
}

/* Store the value of a datapoint under its schema_id in object. Rossum
 * schema ids are unique within a schema, so a repeated id means a broken
 * file, and keeping either value would silently lose the other. */
static enum ag_code add_datapoint(struct json_parse *parse,
                                  const struct node_path *path,
                                  const json_t *datapoint, json_t *object)
{
  char shown[QUOTE_MAX];
  const char *schema_id = schema_id_of(parse, path, datapoint, "datapoint");

  if (schema_id == NULL)
    return parse->code;
  if (json_object_get(object, schema_id) != NULL)
    return fail_at(parse, path, "duplicate datapoint schema_id \"%s\"",
                   quote(shown, sizeof(shown), schema_id));

  json_t *value = datapoint_value(parse, path, datapoint, schema_id);
  if (value == NULL)
    return parse->code;
  if (json_object_set_new(object, schema_id, value) != 0)
    return fail_memory(parse);
  return AG_OK;
}

/* Convert a tuple to an object of its datapoints. A tuple with no
 * datapoints becomes {}. */
static json_t *convert_tuple(struct json_parse *parse,
                             const struct node_path *path, const json_t *tuple)
{
  const json_t *children = NULL;
  json_t *object = json_object();
  size_t index;
  const json_t *child;

  if (!children_of(parse, path, tuple, &children))
    goto failed;
  if (object == NULL) {
    fail_memory(parse);
    goto failed;
  }
  json_array_foreach(children, index, child)
  {
    struct node_path child_path = {path, "children", 0};
    struct node_path item = {&child_path, NULL, index};
    const char *category = category_of(parse, &item, child);

    if (category == NULL)
      goto failed;
    if (strcmp(category, "datapoint") != 0) {
      char shown[QUOTE_MAX];
      fail_at(parse, &item, "unexpected category \"%s\" in a tuple",
              quote(shown, sizeof(shown), category));
      goto failed;
    }
    if (add_datapoint(parse, &item, child, object) != AG_OK)
      goto failed;
  }
  return object;

failed:
  json_decref(object);
  return NULL;
}

/* Convert one child of a multivalue: a tuple becomes an object, a bare
 * datapoint its value. */
static json_t *convert_row(struct json_parse *parse,
                           const struct node_path *path, const json_t *child)
{
  char shown[QUOTE_MAX];
  const char *category = category_of(parse, path, child);

  if (category == NULL)
    return NULL;
  if (strcmp(category, "tuple") == 0)
    return convert_tuple(parse, path, child);
  if (strcmp(category, "datapoint") == 0) {
    const char *schema_id = schema_id_of(parse, path, child, "datapoint");
    return schema_id == NULL ? NULL
                             : datapoint_value(parse, path, child, schema_id);
  }
  fail_at(parse, path, "unexpected category \"%s\" in a multivalue",
          quote(shown, sizeof(shown), category));
  return NULL;
}

/* Store a multivalue in tables as an array under its schema_id. */
static enum ag_code add_table(struct json_parse *parse,
                              const struct node_path *path,
                              const json_t *multivalue, json_t *tables)
{
  char shown[QUOTE_MAX];
  const char *schema_id = schema_id_of(parse, path, multivalue, "multivalue");
  const json_t *children = NULL;
  json_t *rows = NULL;
  size_t index;
  const json_t *child;

  if (schema_id == NULL)
    return parse->code;
  if (json_object_get(tables, schema_id) != NULL)
    return fail_at(parse, path, "duplicate multivalue schema_id \"%s\"",
                   quote(shown, sizeof(shown), schema_id));
  if (!children_of(parse, path, multivalue, &children))
    return parse->code;

  rows = json_array();
  if (rows == NULL)
    return fail_memory(parse);
  json_array_foreach(children, index, child)
  {
    struct node_path child_path = {path, "children", 0};
    struct node_path item = {&child_path, NULL, index};
    json_t *row = convert_row(parse, &item, child);

    if (row == NULL)
      goto done;
    if (json_array_append_new(rows, row) != 0) {
      fail_memory(parse);
      goto done;
    }
  }
  if (json_object_set_new(tables, schema_id, rows) != 0)
    fail_memory(parse);
  rows = NULL;

done:
  json_decref(rows);
  return parse->code;
}

/* Collect the datapoints and multivalues in the array nodes, walking
 * through sections. jansson's nesting limit bounds the recursion. */
static enum ag_code collect_content(struct json_parse *parse,
                                    const struct node_path *path,
                                    const json_t *nodes, json_t *fields,
                                    json_t *tables)
{
  size_t index;
  const json_t *node;

  json_array_foreach(nodes, index, node)
  {
    struct node_path item = {path, NULL, index};
    const char *category = category_of(parse, &item, node);
    char shown[QUOTE_MAX];

    if (category == NULL)
      break;
    if (strcmp(category, "datapoint") == 0) {
      add_datapoint(parse, &item, node, fields);
    } else if (strcmp(category, "multivalue") == 0) {
      add_table(parse, &item, node, tables);
    } else if (strcmp(category, "section") == 0) {
      struct node_path children_path = {&item, "children", 0};
      const json_t *children = NULL;
      if (children_of(parse, &item, node, &children))
        collect_content(parse, &children_path, children, fields, tables);
    } else {
      fail_at(parse, &item, "unexpected category \"%s\" outside a multivalue",
              quote(shown, sizeof(shown), category));
    }
    if (parse->code != AG_OK)
      break;
  }
  return parse->code;
}

/* Copy the string members of "metadata". Other values are rejected: the
 * XML parser rejects nested metadata too, and a number or boolean turned
 * into text would no longer be the value Rossum stored. */
static enum ag_code collect_metadata(struct json_parse *parse,
                                     const struct node_path *parent,
                                     const json_t *annotation, json_t *metadata)
{
  const json_t *source = json_object_get(annotation, "metadata");
  struct node_path path = {parent, "metadata", 0};
  char shown[QUOTE_MAX];
  const char *key;
  json_t *value;

  if (source == NULL || json_is_null(source))
    return AG_OK;
  if (!json_is_object(source))
    return fail_at(parse, &path, "\"metadata\" is %s, expected an object",
                   type_name(source));

  /* NOTE: Rossum metadata may hold any JSON value. Only strings are taken
   * until the XML form of other values is known, so both formats agree. */
  json_object_foreach((json_t *)source, key, value)
  {
    if (!json_is_string(value))
      return fail_at(parse, &path,
                     "metadata \"%s\" is %s; only string values are supported",
                     quote(shown, sizeof(shown), key), type_name(value));
    if (json_object_set(metadata, key, value) != 0)
      return fail_memory(parse);
  }
  return AG_OK;
}

/* Add fields, tables and metadata to object. */
static enum ag_code add_collections(struct json_parse *parse,
                                    const struct node_path *path,
                                    const json_t *annotation, json_t *object)
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
    return fail_memory(parse);

  /* The three objects are borrowed from object from here on. */
  const json_t *content = json_object_get(annotation, "content");
  struct node_path content_path = {path, "content", 0};
  if (json_is_array(content)) {
    if (collect_content(parse, &content_path, content, fields, tables) != AG_OK)
      return parse->code;
  } else if (content != NULL && !json_is_null(content)) {
    return fail_at(parse, &content_path, "\"content\" is %s, expected an array",
                   type_name(content));
  }
  return collect_metadata(parse, path, annotation, metadata);
}

/* Convert one element of "results" to its annotation object. */
static json_t *convert_annotation(struct json_parse *parse,
                                  const struct node_path *path,
                                  const json_t *annotation)
{
  json_t *object = NULL;

  if (!json_is_object(annotation)) {
    fail_at(parse, path, "annotation is %s, expected an object",
            type_name(annotation));
    return NULL;
  }
  object = json_object();
  if (object == NULL) {
    fail_memory(parse);
    return NULL;
  }

  if (add_scalars(parse, path, annotation, object) != AG_OK ||
      add_collections(parse, path, annotation, object) != AG_OK) {
    json_decref(object);
    return NULL;
  }
  return object;
}

/* ---- Document ---- */

/* Return the "results" array of the top-level value, or NULL with a
 * failure recorded. */
static const json_t *results_of(struct json_parse *parse, const json_t *root)
{
  if (!json_is_object(root)) {
    fail(parse, AG_EPARSE,
         "the top-level value is %s, expected an object with a \"results\" "
         "array",
         type_name(root));
    return NULL;
  }

  const json_t *results = json_object_get(root, "results");
  if (results == NULL) {
    fail(parse, AG_EPARSE, "the top-level object has no \"results\" array");
    return NULL;
  }
  if (!json_is_array(results)) {
    fail(parse, AG_EPARSE, "\"results\" is %s, expected an array",
         type_name(results));
    return NULL;
  }
  return results;
}

/* Convert each annotation and pass it to the sink, in file order. */
static enum ag_code emit_annotations(struct json_parse *parse,
                                     const json_t *results)
{
  const struct export_sink *sink = parse->sink;
  struct node_path results_path = {NULL, "results", 0};
  size_t index;
  const json_t *annotation;

  /* The sink records its own message in err. */
  parse->code = sink->begin(sink->ctx, "annotations", parse->err);
  if (parse->code != AG_OK)
    return parse->code;

  json_array_foreach(results, index, annotation)
  {
    struct node_path path = {&results_path, NULL, index};
    json_t *object = convert_annotation(parse, &path, annotation);

    parse->annotation_url = NULL;
    if (object == NULL)
      break;
    parse->code = sink->item(sink->ctx, object, parse->err);
    json_decref(object);
    if (parse->code != AG_OK)
      break;
  }
  return parse->code;
}

enum ag_code export_parse_json(const char *path, const struct export_sink *sink,
                               struct ag_error *err)
{
  struct json_parse parse = {.sink = sink, .err = err, .code = AG_OK};
  json_t *root = NULL;

  if (load_document(&parse, path, &root) != AG_OK)
    return parse.code;

  const json_t *results = results_of(&parse, root);
  if (results != NULL)
    emit_annotations(&parse, results);
  json_decref(root);
  return parse.code;
}
