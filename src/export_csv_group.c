/* Rows of a CSV export grouped into documents by the value of one column.
 *
 * Rossum's CSV export writes one row per line item and repeats the
 * document's values on every row. The file does not say which columns
 * belong to line items, so the first pass finds out. A column is an item
 * column when its value differs between two rows of the same document, in
 * at least one document of the file. Every other column, the group column
 * included, has one value per document and goes into the document's
 * "fields" once.
 *
 * The first pass keeps the first row of each document to compare later
 * rows with. The second pass collects each document's items and sends the
 * document as soon as its last row is placed, so when a document's rows
 * are next to each other only one document's items are held at a time. */
#include "export_csv_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* NOTE: guessed limits. They keep a hostile or runaway file from using
 * unbounded memory. */
#define GROUP_DOCUMENT_MAX 100000
#define GROUP_MEMORY_MAX_MIB 64
#define GROUP_MEMORY_MAX ((size_t)GROUP_MEMORY_MAX_MIB * 1024 * 1024)

/* Estimated memory besides the cell text: per document for its entry in
 * the index and the document array, and per held item and item cell for
 * jansson's objects and strings. They match the peak RSS of parses of
 * 30,000-row files within about 10 % (jansson 2.14, glibc malloc, x86-64
 * Debian 12). */
#define DOCUMENT_OVERHEAD 160
#define ITEM_OVERHEAD 256
#define ITEM_CELL_OVERHEAD 160

/* A document's first row, packed into one allocation: the cell texts one
 * after the other, and where each one ends. */
struct packed_row {
  char *text;
  size_t ends[]; /* ends[i]: offset in text just past cell i */
};

struct group_document {
  struct packed_row *first_row; /* until the document is sent */
  size_t rows;                  /* rows counted by the first pass */
  size_t placed;                /* rows placed by the second pass */
  json_t *items;      /* items collected by the second pass, or NULL */
  size_t item_memory; /* estimated memory of items */
};

struct csv_group {
  char *column;
  json_t *cells; /* header names, one reference */
  size_t column_count;
  bool *is_item; /* per column: its value differs within a document */
  json_t *index; /* group value -> document number */
  struct group_document *documents;
  size_t count;
  size_t capacity;
  size_t first_row_memory; /* estimated memory of the first rows */
  size_t pending_memory;   /* estimated memory of the items not yet sent */
  size_t next_send;        /* first document not yet sent */
};

enum ag_code csv_group_new(const char *column, struct csv_group **out,
                           struct ag_error *err)
{
  struct csv_group *group = calloc(1, sizeof(*group));

  *out = NULL;
  if (group == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  group->column = strdup(column);
  group->index = json_object();
  if (group->column == NULL || group->index == NULL) {
    csv_group_free(group);
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  }
  *out = group;
  return AG_OK;
}

enum ag_code csv_group_set_header(struct csv_group *group, json_t *cells,
                                  size_t column_count, unsigned long line,
                                  struct ag_error *err)
{
  bool found = false;

  for (size_t i = 0; i < column_count && !found; i++)
    found =
        strcmp(json_string_value(json_array_get(cells, i)), group->column) == 0;
  if (!found)
    return ag_error_set(err, AG_EPARSE,
                        "line %lu: the header has no column \"%s\" to group "
                        "rows by; set [csv] group_by to one of its columns",
                        line, group->column);

  group->is_item = calloc(column_count > 0 ? column_count : 1, sizeof(bool));
  if (group->is_item == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  group->cells = json_incref(cells);
  group->column_count = column_count;
  return AG_OK;
}

/* Return the cell of record in column i. */
static json_t *cell(const struct csv_group *group, json_t *record, size_t i)
{
  const char *name = json_string_value(json_array_get(group->cells, i));

  return json_object_get(record, name);
}

/* Return cell i of a packed row and store its length in *len. */
static const char *packed_cell(const struct packed_row *row, size_t i,
                               size_t *len)
{
  size_t start = i == 0 ? 0 : row->ends[i - 1];

  *len = row->ends[i] - start;
  return row->text + start;
}

/* Return the size of the packed form of record. */
static size_t packed_size(const struct csv_group *group, json_t *record)
{
  size_t size = sizeof(struct packed_row) + 1;

  for (size_t i = 0; i < group->column_count; i++)
    size += sizeof(size_t) + json_string_length(cell(group, record, i));
  return size;
}

/* Pack the cells of record into one allocation of size bytes. */
static struct packed_row *pack_row(const struct csv_group *group,
                                   json_t *record, size_t size)
{
  struct packed_row *row = malloc(size);
  size_t end = 0;

  if (row == NULL)
    return NULL;
  row->text = (char *)&row->ends[group->column_count];
  for (size_t i = 0; i < group->column_count; i++) {
    json_t *value = cell(group, record, i);
    size_t len = json_string_length(value);

    memcpy(row->text + end, json_string_value(value), len);
    end += len;
    row->ends[i] = end;
  }
  return row;
}

/* Return whether cell i of record equals cell i of row. */
static bool same_cell(const struct csv_group *group, json_t *record,
                      const struct packed_row *row, size_t i)
{
  json_t *value = cell(group, record, i);
  size_t len;
  const char *text = packed_cell(row, i, &len);

  return json_string_length(value) == len &&
         memcmp(json_string_value(value), text, len) == 0;
}

/* Return the estimated memory of the item of record. */
static size_t item_memory(const struct csv_group *group, json_t *record)
{
  size_t memory = ITEM_OVERHEAD;

  for (size_t i = 0; i < group->column_count; i++) {
    if (group->is_item[i])
      memory += json_string_length(cell(group, record, i)) + ITEM_CELL_OVERHEAD;
  }
  return memory;
}

/* Return the document that record belongs to, or NULL for a new value. */
static struct group_document *find_document(struct csv_group *group,
                                            json_t *record)
{
  json_t *value = json_object_get(record, group->column);
  json_t *number = json_object_getn(group->index, json_string_value(value),
                                    json_string_length(value));

  if (number == NULL)
    return NULL;
  return &group->documents[json_integer_value(number)];
}

static enum ag_code add_document(struct csv_group *group, json_t *record,
                                 unsigned long line, struct ag_error *err)
{
  json_t *value = json_object_get(record, group->column);
  size_t size = packed_size(group, record);
  size_t memory = size + json_string_length(value) + DOCUMENT_OVERHEAD;

  if (group->count >= GROUP_DOCUMENT_MAX)
    return ag_error_set(err, AG_EPARSE,
                        "line %lu: more than %d documents (different values "
                        "of column \"%s\"); split the export into smaller "
                        "files or unset [csv] group_by",
                        line, GROUP_DOCUMENT_MAX, group->column);
  if (memory > GROUP_MEMORY_MAX - group->first_row_memory)
    return ag_error_set(err, AG_EPARSE,
                        "line %lu: the documents grouped by column \"%s\" "
                        "take more than %d MiB of memory; split the export "
                        "into smaller files or unset [csv] group_by",
                        line, group->column, GROUP_MEMORY_MAX_MIB);

  if (group->count == group->capacity) {
    size_t capacity = group->capacity == 0 ? 64 : 2 * group->capacity;
    struct group_document *grown =
        realloc(group->documents, capacity * sizeof(*grown));
    if (grown == NULL)
      return ag_error_set(err, AG_ENOMEM, "out of memory");
    group->documents = grown;
    group->capacity = capacity;
  }

  struct packed_row *first_row = pack_row(group, record, size);
  if (first_row == NULL ||
      json_object_setn_new(group->index, json_string_value(value),
                           json_string_length(value),
                           json_integer((json_int_t)group->count)) != 0) {
    free(first_row);
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  }
  group->documents[group->count] = (struct group_document){
      .first_row = first_row,
      .rows = 1,
  };
  group->count++;
  group->first_row_memory += memory;
  return AG_OK;
}

enum ag_code csv_group_scan(struct csv_group *group, json_t *record,
                            unsigned long line, struct ag_error *err)
{
  struct group_document *document = find_document(group, record);

  if (document == NULL)
    return add_document(group, record, line, err);

  /* NOTE: when no document has two rows, no column differs and every
   * document gets all values as fields and no items, although each row may
   * hold one line item. The records list still has every row. */
  for (size_t i = 0; i < group->column_count; i++) {
    if (!group->is_item[i] && !same_cell(group, record, document->first_row, i))
      group->is_item[i] = true;
  }
  document->rows++;
  return AG_OK;
}

/* Build the item of record into *item: its item columns, or NULL when
 * every item cell is empty (the row of a document without line items). */
static enum ag_code item_of(const struct csv_group *group, json_t *record,
                            json_t **item, struct ag_error *err)
{
  bool empty = true;

  *item = NULL;
  for (size_t i = 0; i < group->column_count; i++) {
    if (group->is_item[i] && json_string_length(cell(group, record, i)) > 0)
      empty = false;
  }
  if (empty)
    return AG_OK;

  *item = json_object();
  if (*item == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  for (size_t i = 0; i < group->column_count; i++) {
    if (!group->is_item[i])
      continue;
    const char *name = json_string_value(json_array_get(group->cells, i));
    if (json_object_set(*item, name, cell(group, record, i)) != 0) {
      json_decref(*item);
      *item = NULL;
      return ag_error_set(err, AG_ENOMEM, "out of memory");
    }
  }
  return AG_OK;
}

/* Build {"fields": ..., "items": [...]} for document, taking its items. */
static json_t *document_object(const struct csv_group *group,
                               struct group_document *document)
{
  json_t *object = json_object();
  json_t *fields = json_object();
  json_t *items = document->items != NULL ? document->items : json_array();
  bool built = object != NULL && fields != NULL && items != NULL;

  document->items = NULL;
  for (size_t i = 0; built && i < group->column_count; i++) {
    if (group->is_item[i])
      continue;
    const char *name = json_string_value(json_array_get(group->cells, i));
    size_t len;
    const char *text = packed_cell(document->first_row, i, &len);
    built = json_object_set_new(fields, name, json_stringn(text, len)) == 0;
  }
  if (built)
    built = json_object_set(object, "fields", fields) == 0 &&
            json_object_set(object, "items", items) == 0;

  json_decref(fields);
  json_decref(items);
  if (!built) {
    json_decref(object);
    return NULL;
  }
  return object;
}

/* Send every complete document at the front of the order to sink. */
static enum ag_code send_ready(struct csv_group *group,
                               const struct export_sink *sink,
                               struct ag_error *err)
{
  while (group->next_send < group->count) {
    struct group_document *document = &group->documents[group->next_send];
    if (document->placed < document->rows)
      break;

    json_t *object = document_object(group, document);
    if (object == NULL)
      return ag_error_set(err, AG_ENOMEM, "out of memory");
    enum ag_code code = sink->item(sink->ctx, object, err);
    json_decref(object);
    free(document->first_row);
    document->first_row = NULL;
    group->pending_memory -= document->item_memory;
    group->next_send++;
    if (code != AG_OK)
      return code;
  }
  return AG_OK;
}

/* Add item to document, within the memory limit. Takes item. */
static enum ag_code hold_item(struct csv_group *group,
                              struct group_document *document, json_t *item,
                              json_t *record, unsigned long line,
                              struct ag_error *err)
{
  size_t memory = item_memory(group, record);

  if (memory > GROUP_MEMORY_MAX - group->pending_memory) {
    json_decref(item);
    return ag_error_set(err, AG_EPARSE,
                        "line %lu: the line items of documents not yet "
                        "complete take more than %d MiB of memory (a document "
                        "has very many rows, or its rows are spread over the "
                        "file); split the export or unset [csv] group_by",
                        line, GROUP_MEMORY_MAX_MIB);
  }
  if (document->items == NULL)
    document->items = json_array();
  if (document->items == NULL ||
      json_array_append_new(document->items, item) != 0) {
    /* json_array_append_new() releases item even when it fails. */
    if (document->items == NULL)
      json_decref(item);
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  }
  document->item_memory += memory;
  group->pending_memory += memory;
  return AG_OK;
}

enum ag_code csv_group_place(struct csv_group *group, json_t *record,
                             const struct export_sink *sink, unsigned long line,
                             struct ag_error *err)
{
  struct group_document *document = find_document(group, record);

  /* Both passes read the same local file, so this means it changed. */
  if (document == NULL || document->placed == document->rows)
    return ag_error_set(err, AG_EPARSE,
                        "line %lu: the row differs from the first pass over "
                        "the file; the file changed while it was read",
                        line);
  document->placed++;

  json_t *item = NULL;
  enum ag_code code = item_of(group, record, &item, err);
  if (code == AG_OK && item != NULL)
    code = hold_item(group, document, item, record, line, err);
  if (code == AG_OK)
    code = send_ready(group, sink, err);
  return code;
}

enum ag_code csv_group_finish(const struct csv_group *group,
                              struct ag_error *err)
{
  if (group->next_send < group->count)
    return ag_error_set(err, AG_EPARSE,
                        "the second pass over the file found fewer rows than "
                        "the first; the file changed while it was read");
  return AG_OK;
}

void csv_group_free(struct csv_group *group)
{
  if (group == NULL)
    return;
  for (size_t i = 0; i < group->count; i++) {
    free(group->documents[i].first_row);
    json_decref(group->documents[i].items);
  }
  free(group->documents);
  json_decref(group->index);
  json_decref(group->cells);
  free(group->is_item);
  free(group->column);
  free(group);
}
