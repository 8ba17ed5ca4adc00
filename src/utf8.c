/* UTF-8 validation shared by logging, names and parsers. */
#include "agent/utf8.h"

#include <string.h>

size_t utf8_sequence_length(const unsigned char *s, size_t len)
{
  unsigned char c = s[0];
  size_t need;
  unsigned int min;
  unsigned int cp;

  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
    min = 0x80;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    min = 0x800;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    min = 0x10000;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (len < need)
    return 0;
  for (size_t i = 1; i < need; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return need;
}

bool utf8_valid(const void *text, size_t len, size_t *bad_offset)
{
  const unsigned char *s = text;
  size_t i = 0;

  while (i < len) {
    size_t seq = utf8_sequence_length(s + i, len - i);
    if (seq == 0) {
      if (bad_offset != NULL)
        *bad_offset = i;
      return false;
    }
    i += seq;
  }
  return true;
}

void utf8_trim_cut(char *text)
{
  size_t len = strlen(text);
  size_t start = len;

  while (start > 0 && ((unsigned char)text[start - 1] & 0xC0) == 0x80)
    start--;
  if (start == 0)
    return;

  /* The lead byte gives the length of its sequence. */
  unsigned char lead = (unsigned char)text[start - 1];
  size_t need = 1;
  if (lead >= 0xF0)
    need = 4;
  else if (lead >= 0xE0)
    need = 3;
  else if (lead >= 0xC0)
    need = 2;
  if (len - (start - 1) < need)
    text[start - 1] = '\0';
}
