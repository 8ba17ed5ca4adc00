/* Renaming and dropping of output keys, as the [mapping] config section
 * sets them.
 *
 * A mapping sits between a parser and the output as a sink of its own. It
 * changes the names that an export defines and leaves the agent's own keys
 * and metadata keys alone. Those names are:
 * - in annotations, the keys of "fields", the keys of "tables" (the
 *   multivalue schema ids) and the keys of each tuple object in a table;
 * - in CSV records, the header keys;
 * - in CSV documents (with group_by), the keys of "fields" and of each
 *   object in "items".
 *
 * Each key is looked up once, under its name in the export, so the entries
 * do not chain: with "a = b" and "b = c", key a becomes b and key b becomes
 * c. Key order is kept. */
#ifndef AGENT_MAPPING_H
#define AGENT_MAPPING_H

#include <stddef.h>

#include "agent/config.h"
#include "agent/error.h"
#include "agent/export.h"

struct mapping;

/* Check the [mapping] entries of config as far as they can be checked
 * without an export: every name must be valid UTF-8, because output keys
 * are JSON strings. Whether two keys end up with the same name depends on
 * the keys of each object, so that is checked per item (see mapping_new).
 * Returns AG_OK, or AG_ECONFIG with a message that names the entry. */
enum ag_code mapping_validate(const struct config *config,
                              struct ag_error *err);

/* Create a mapping of the count entries and store it in *out. Items that
 * go into mapping_sink() come out of next renamed; next must outlive the
 * mapping. The entries are copied, so they need not outlive it.
 *
 * The sink fails an item with AG_EPARSE when two of its keys in one object
 * would get the same name (a rename onto a key the object already has, or
 * two renames onto one name). It fails begin() with AG_ECONFIG for a list
 * other than "annotations", "records" or "documents", whose items it
 * would not know how to map. Errors from next pass through. Free the
 * mapping with mapping_free(). */
enum ag_code mapping_new(const struct config_mapping *entries, size_t count,
                         const struct export_sink *next, struct mapping **out,
                         struct ag_error *err);

/* Return the sink that a parser writes into. It belongs to mapping. */
const struct export_sink *mapping_sink(struct mapping *mapping);

/* Free a mapping. Accepts NULL. */
void mapping_free(struct mapping *mapping);

#endif
