/* Shared parts of the export parser fuzzers: the input file and the
 * checks that every parse must pass, whatever the input.
 *
 * The parsers take a path, so each input is written to a memfd and opened
 * through /proc/self/fd, which keeps the disk out of the loop. A broken
 * rule calls abort(), which libFuzzer reports as a crash with the input
 * that caused it. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agent/export.h"

/* Most item lists in one output document: CSV with grouping writes
 * "records", then "documents". */
#define FUZZ_LIST_MAX 2

/* State of the checking sink for one parse. */
struct fuzz_sink {
  const char *lists[FUZZ_LIST_MAX]; /* names begin() must receive, in order */
  size_t list_count;                /* lists a successful parse opens */
  size_t begin_calls;
  size_t items;       /* items of the list opened last */
  json_t *first_keys; /* CSV: keys of the first record, in order */
};

/* Create the memfd that receives each input. Aborts on failure. */
void fuzz_open_input(void);

/* Replace the input file's content with data and return its path. */
const char *fuzz_write_input(const uint8_t *data, size_t size);

/* Print message and the parser's error to stderr, then abort(). */
void fuzz_fail(const char *message, const struct ag_error *err)
    __attribute__((noreturn));

/* Check begin(): called for each expected list in order, and once each. */
enum ag_code fuzz_check_begin(struct fuzz_sink *state, const char *list_name);

/* Serialize item as the output writer does (compact, keys in order) and
 * check that the text parses back to an equal value. */
void fuzz_check_serializes(const json_t *item);

/* Check the outcome of one parse: AG_OK with every list begun, or AG_EPARSE
 * with a message that is non-empty valid UTF-8 free of control
 * characters, because the agent logs it as it is. */
void fuzz_check_result(const struct fuzz_sink *state, enum ag_code code,
                       const struct ag_error *err);

#endif
