/* Export formats: recognition by file name extension and their names,
 * and helpers that more than one parser uses. */
#include "agent/export.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Compare an extension with a lower-case ASCII pattern, ignoring ASCII
 * case only, so the result does not depend on the locale. */
static bool extension_equals(const char *extension, const char *pattern)
{
  size_t i = 0;

  for (; extension[i] != '\0' && pattern[i] != '\0'; i++) {
    char c = extension[i];
    if (c >= 'A' && c <= 'Z')
      c = (char)(c - 'A' + 'a');
    if (c != pattern[i])
      return false;
  }
  return extension[i] == '\0' && pattern[i] == '\0';
}

enum export_format export_format_of(const char *name)
{
  if (name == NULL)
    return EXPORT_UNKNOWN;

  /* A name that is only an extension (".xml") is a hidden file, not an
   * export. */
  const char *dot = strrchr(name, '.');
  if (dot == NULL || dot == name)
    return EXPORT_UNKNOWN;

  if (extension_equals(dot, ".xml"))
    return EXPORT_XML;
  if (extension_equals(dot, ".csv"))
    return EXPORT_CSV;
  if (extension_equals(dot, ".json"))
    return EXPORT_JSON;
  return EXPORT_UNKNOWN;
}

const char *export_format_name(enum export_format format)
{
  switch (format) {
  case EXPORT_XML:
    return "xml";
  case EXPORT_CSV:
    return "csv";
  case EXPORT_JSON:
    return "json";
  case EXPORT_UNKNOWN:
    break;
  }
  return "unknown";
}

json_t *export_annotation_id(const char *url)
{
  if (url == NULL)
    return json_null();

  size_t end = strlen(url);
  if (end > 0 && url[end - 1] == '/')
    end--;
  size_t start = end;
  while (start > 0 && url[start - 1] != '/')
    start--;

  /* At most 18 digits always fit in json_int_t, so a canonical decimal
   * becomes an integer and anything else stays text, unaltered. */
  const char *segment = url + start;
  size_t len = end - start;
  bool canonical = len > 0 && len <= 18 && (segment[0] != '0' || len == 1);
  for (size_t i = 0; canonical && i < len; i++)
    canonical = segment[i] >= '0' && segment[i] <= '9';
  if (!canonical)
    return json_stringn(segment, len);

  json_int_t id = 0;
  for (size_t i = 0; i < len; i++)
    id = id * 10 + (segment[i] - '0');
  return json_integer(id);
}
