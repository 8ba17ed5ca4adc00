/* Input file and invariant checks shared by fuzz_xml.c and fuzz_csv.c. */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz_common.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent/utf8.h"

static int input_fd = -1;
static char input_path[64];

void fuzz_open_input(void)
{
  input_fd = memfd_create("fuzz-input", 0);
  if (input_fd < 0) {
    perror("fuzz: memfd_create failed");
    abort();
  }
  snprintf(input_path, sizeof(input_path), "/proc/self/fd/%d", input_fd);
}

const char *fuzz_write_input(const uint8_t *data, size_t size)
{
  size_t done = 0;

  if (ftruncate(input_fd, 0) != 0) {
    perror("fuzz: ftruncate of the input file failed");
    abort();
  }
  while (done < size) {
    ssize_t written = pwrite(input_fd, data + done, size - done, (off_t)done);
    if (written <= 0) {
      perror("fuzz: writing the input file failed");
      abort();
    }
    done += (size_t)written;
  }
  return input_path;
}

void fuzz_fail(const char *message, const struct ag_error *err)
{
  fprintf(stderr, "fuzz: %s\n", message);
  if (err != NULL)
    fprintf(stderr, "fuzz: parser error code %d, message \"%s\"\n", err->code,
            err->message);
  abort();
}

enum ag_code fuzz_check_begin(struct fuzz_sink *state, const char *list_name)
{
  if (state->begin_calls >= state->list_count)
    fuzz_fail("begin() called more often than there are lists", NULL);
  if (strcmp(list_name, state->lists[state->begin_calls]) != 0)
    fuzz_fail("begin() received the wrong list name", NULL);
  state->begin_calls++;
  state->items = 0;
  return AG_OK;
}

void fuzz_check_serializes(const json_t *item)
{
  /* The flags of write_json() in src/output.c. */
  char *text =
      json_dumps(item, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
  if (text == NULL)
    fuzz_fail("json_dumps failed on an item", NULL);

  json_error_t error;
  json_t *back = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
  if (back == NULL) {
    fprintf(stderr, "fuzz: serialized item does not parse: %s\n", error.text);
    fuzz_fail("serialized item is not valid JSON", NULL);
  }
  if (!json_equal(back, item))
    fuzz_fail("serialized item parses to a different value", NULL);
  json_decref(back);
  free(text);
}

/* Return the length of the cut UTF-8 sequence at text[at]: a lead byte
 * followed by fewer continuation bytes than it announces. Returns 0 when
 * the bytes at text[at] are not such a sequence. */
static size_t cut_sequence_length(const char *text, size_t len, size_t at)
{
  unsigned char lead = (unsigned char)text[at];
  size_t need = 0;
  size_t have = 1;

  if (lead >= 0xF0)
    need = 4;
  else if (lead >= 0xE0)
    need = 3;
  else if (lead >= 0xC2)
    need = 2;
  while (at + have < len && ((unsigned char)text[at + have] & 0xC0) == 0x80)
    have++;
  return need > 0 && have < need ? have : 0;
}

/* Return whether every invalid UTF-8 in text is a cut sequence. */
static bool only_cut_sequences(const char *text, size_t len)
{
  size_t at = 0;
  size_t bad = 0;

  while (!utf8_valid(text + at, len - at, &bad)) {
    size_t cut = cut_sequence_length(text, len, at + bad);
    if (cut == 0)
      return false;
    at += bad + cut;
  }
  return true;
}

static void check_message(const struct ag_error *err)
{
  const char *message = err->message;
  size_t len = strlen(message);

  if (len == 0)
    fuzz_fail("failure without a message", err);
  /* NOTE: export_xml.c formats parts of its messages into buffers of
   * AG_ERROR_MESSAGE_MAX / 2 bytes with snprintf, which can cut a UTF-8
   * character in half (tests/fuzz/crashes/xml-*-cut-utf8.xml).
   * FUZZ_ALLOW_CUT_UTF8=1 accepts that one defect, so that a long run can
   * look for others until it is fixed. */
  if (!utf8_valid(message, len, NULL) &&
      !(getenv("FUZZ_ALLOW_CUT_UTF8") != NULL &&
        only_cut_sequences(message, len)))
    fuzz_fail("error message is not valid UTF-8", err);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)message[i];
    if (c < 0x20 || c == 0x7F)
      fuzz_fail("error message contains a control character", err);
  }
}

void fuzz_check_result(const struct fuzz_sink *state, enum ag_code code,
                       const struct ag_error *err)
{
  if (code == AG_OK) {
    if (err->code != AG_OK)
      fuzz_fail("success returned with an error recorded", err);
    if (state->begin_calls != state->list_count)
      fuzz_fail("success returned without every list begun", err);
    return;
  }
  if (code != AG_EPARSE)
    fuzz_fail("failure with a code other than AG_EPARSE", err);
  if (err->code != code)
    fuzz_fail("returned code differs from the recorded error", err);
  check_message(err);
}
