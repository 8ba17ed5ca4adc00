/* Escapes in JSON strings; see include/agent/json_text.h. */
#include "agent/json_text.h"

#include <string.h>

size_t json_text_escape(unsigned char c, char out[6])
{
  static const char hex_digits[] = "0123456789ABCDEF";

  out[0] = '\\';
  switch (c) {
  case '"':
  case '\\':
    out[1] = (char)c;
    return 2;
  case '\b':
    out[1] = 'b';
    return 2;
  case '\f':
    out[1] = 'f';
    return 2;
  case '\n':
    out[1] = 'n';
    return 2;
  case '\r':
    out[1] = 'r';
    return 2;
  case '\t':
    out[1] = 't';
    return 2;
  default:
    break;
  }
  memcpy(out + 1, "u00", 3);
  out[4] = hex_digits[c >> 4];
  out[5] = hex_digits[c & 0x0F];
  return 6;
}
