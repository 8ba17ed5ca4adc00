/* Text conversion to UTF-8 with iconv(3).
 *
 * The converter is opened without //TRANSLIT or //IGNORE, so iconv stops
 * at the first byte that the source encoding does not define (EILSEQ)
 * instead of replacing or dropping it. A sequence cut by the end of a
 * block (EINVAL) is kept and converted together with the next block. */
#include "agent/textconv.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Maximum bytes of an unfinished sequence kept between blocks. The
 * longest sequences iconv reads are 4 bytes (UTF-8, GB18030) plus shift
 * codes of stateful encodings, so 16 leaves room. */
#define CARRY_MAX 16

struct textconv {
  iconv_t cd;
  char *name;
  char *input; /* the carried bytes followed by the current block */
  size_t input_size;
  size_t carry_len; /* bytes at the start of input kept from the last call */
  char *output;
  size_t output_size;
  unsigned long long offset; /* stream offset of input[0] */
  bool failed;
};

enum ag_code textconv_open(const char *name, struct textconv **out,
                           struct ag_error *err)
{
  struct textconv *conv = calloc(1, sizeof(*conv));
  enum ag_code code = AG_OK;

  *out = NULL;
  if (conv == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  conv->cd = (iconv_t)-1;
  conv->name = strdup(name);
  if (conv->name == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }

  conv->cd = iconv_open("UTF-8", name);
  if (conv->cd == (iconv_t)-1) {
    int saved = errno;
    if (saved == EINVAL)
      code = ag_error_set(err, AG_ECONFIG,
                          "cannot convert from '%s': the system's iconv does "
                          "not support this encoding",
                          name);
    else
      code = ag_error_set(err, saved == ENOMEM ? AG_ENOMEM : AG_ELOCAL,
                          "cannot open a converter from '%s': %s", name,
                          strerror(saved));
  }

out:
  if (code != AG_OK) {
    textconv_close(conv);
    return code;
  }
  *out = conv;
  return AG_OK;
}

/* Make room for size bytes in *buffer. */
static bool reserve(char **buffer, size_t *capacity, size_t size)
{
  if (*capacity >= size)
    return true;
  char *grown = realloc(*buffer, size);
  if (grown == NULL)
    return false;
  *buffer = grown;
  *capacity = size;
  return true;
}

/* Put the carried bytes and the new block side by side, so that iconv
 * gets a cut sequence whole. */
static bool stage_input(struct textconv *conv, const void *in, size_t len)
{
  if (len > SIZE_MAX - conv->carry_len)
    return false;
  if (!reserve(&conv->input, &conv->input_size, conv->carry_len + len))
    return false;
  if (len > 0)
    memcpy(conv->input + conv->carry_len, in, len);
  return true;
}

/* Make room for the UTF-8 text of len input bytes. A character of a
 * single-byte encoding takes at most 3 bytes in UTF-8, so 4 bytes per
 * input byte rarely needs a second try. */
static bool reserve_output(struct textconv *conv, size_t len)
{
  if (len > (SIZE_MAX - 64) / 4)
    return false;
  return reserve(&conv->output, &conv->output_size, 4 * len + 64);
}

/* Double the output buffer after iconv reported E2BIG. */
static bool grow_output(struct textconv *conv)
{
  if (conv->output_size > SIZE_MAX / 2)
    return false;
  return reserve(&conv->output, &conv->output_size, 2 * conv->output_size);
}

/* Run iconv over *src until it is consumed or stops at a sequence it
 * cannot finish. src NULL flushes the shift state at the end. Returns 0,
 * or the errno that stopped it (EILSEQ, EINVAL, ENOMEM). */
static int run_iconv(struct textconv *conv, char **src, size_t *src_left,
                     size_t *out_used)
{
  for (;;) {
    char *dst = conv->output + *out_used;
    size_t dst_left = conv->output_size - *out_used;
    size_t result = iconv(conv->cd, src, src_left, &dst, &dst_left);
    *out_used = (size_t)(dst - conv->output);

    if (result != (size_t)-1)
      return 0;
    if (errno != E2BIG)
      return errno;
    if (!grow_output(conv))
      return ENOMEM;
  }
}

/* Turn the reason iconv stopped into a result. src_left bytes at src
 * were not converted. */
static enum ag_code check_stop(const struct textconv *conv, int stop,
                               const char *src, size_t src_left, bool at_end,
                               struct ag_error *err)
{
  if ((stop == EILSEQ && src_left > 0) ||
      (stop == EINVAL && src_left > CARRY_MAX))
    return ag_error_set(
        err, AG_EPARSE, "byte offset %llu: invalid %s byte 0x%02X",
        conv->offset, conv->name, (unsigned)(unsigned char)src[0]);
  if (stop != 0 && stop != EINVAL)
    return ag_error_set(err, AG_EPARSE,
                        "byte offset %llu: conversion from %s failed: %s",
                        conv->offset, conv->name, strerror(stop));
  if (src_left > 0 && at_end)
    return ag_error_set(err, AG_EPARSE,
                        "byte offset %llu: the text ends inside a %s "
                        "multibyte sequence",
                        conv->offset, conv->name);
  return AG_OK;
}

enum ag_code textconv_convert(struct textconv *conv, const void *in, size_t len,
                              bool at_end, const char **out, size_t *out_len,
                              struct ag_error *err)
{
  size_t out_used = 0;

  *out = conv->output;
  *out_len = 0;
  if (conv->failed)
    return ag_error_set(err, AG_EPARSE,
                        "byte offset %llu: conversion from %s stopped at an "
                        "earlier error",
                        conv->offset, conv->name);
  if (!stage_input(conv, in, len) ||
      !reserve_output(conv, conv->carry_len + len))
    return ag_error_set(err, AG_ENOMEM, "out of memory");

  size_t total = conv->carry_len + len;
  char *src = conv->input;
  size_t src_left = total;
  int stop = run_iconv(conv, &src, &src_left, &out_used);
  if (stop == 0 && at_end)
    stop = run_iconv(conv, NULL, NULL, &out_used);

  *out = conv->output;
  *out_len = out_used;
  if (stop == ENOMEM)
    return ag_error_set(err, AG_ENOMEM, "out of memory");

  /* Everything before src is converted, so the offset moves past it. */
  conv->offset += total - src_left;
  enum ag_code code = check_stop(conv, stop, src, src_left, at_end, err);
  if (code != AG_OK) {
    conv->failed = true;
    return code;
  }

  if (src_left > 0)
    memmove(conv->input, src, src_left);
  conv->carry_len = src_left;
  return AG_OK;
}

unsigned long long textconv_offset(const struct textconv *conv)
{
  return conv->offset;
}

const char *textconv_name(const struct textconv *conv)
{
  return conv->name;
}

void textconv_close(struct textconv *conv)
{
  if (conv == NULL)
    return;
  if (conv->cd != (iconv_t)-1)
    iconv_close(conv->cd);
  free(conv->name);
  free(conv->input);
  free(conv->output);
  free(conv);
}
