/* Export formats: recognition by file name extension and their names. */
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
  return EXPORT_UNKNOWN;
}

const char *export_format_name(enum export_format format)
{
  switch (format) {
  case EXPORT_XML:
    return "xml";
  case EXPORT_CSV:
    return "csv";
  case EXPORT_UNKNOWN:
    break;
  }
  return "unknown";
}
