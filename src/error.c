/* The agent's error space: codes, first-error-wins recording, names and
 * the exit codes they map to. */
#include "agent/error.h"
#include "agent/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum ag_code ag_error_set(struct ag_error *err, enum ag_code code,
                          const char *format, ...)
{
  if (err == NULL)
    return code;
  if (err->code != AG_OK)
    return err->code;

  err->code = code;
  va_list args;
  va_start(args, format);
  int written = vsnprintf(err->message, sizeof(err->message), format, args);
  va_end(args);
  if (written >= (int)sizeof(err->message))
    utf8_trim_cut(err->message);
  return code;
}

void ag_error_clear(struct ag_error *err)
{
  err->code = AG_OK;
  err->message[0] = '\0';
}

const char *ag_code_name(enum ag_code code)
{
  static const char *const names[AG_ECODE_COUNT] = {
      [AG_OK] = "success",
      [AG_EUSAGE] = "usage error",
      [AG_ECONFIG] = "configuration error",
      [AG_ENOMEM] = "out of memory",
      [AG_ELOCAL] = "local file system error",
      [AG_ESTATE] = "state store error",
      [AG_ESTATELOST] = "manifest lost",
      [AG_ELOCKED] = "state directory locked",
      [AG_ECONNECT] = "connection failed",
      [AG_EHOSTKEY] = "host key verification failed",
      [AG_EAUTH] = "authentication failed",
      [AG_ETIMEDOUT] = "timed out",
      [AG_EREMOTE] = "remote operation failed",
      [AG_ENOENT] = "remote file not found",
      [AG_EEXIST] = "remote file exists",
      [AG_ECHANGED] = "remote file changed",
      [AG_EPARSE] = "invalid export file",
  };

  if ((int)code < 0 || code >= AG_ECODE_COUNT || names[code] == NULL)
    return "unknown error";
  return names[code];
}

int ag_exit_code(enum ag_code code)
{
  switch (code) {
  case AG_OK:
    return 0;
  case AG_EUSAGE:
  case AG_ECONFIG:
    return 2;
  case AG_ECONNECT:
  case AG_EHOSTKEY:
  case AG_EAUTH:
  case AG_ETIMEDOUT:
  case AG_EREMOTE:
  case AG_ENOENT:
  case AG_EEXIST:
    return 3;
  case AG_ENOMEM:
  case AG_ELOCAL:
  case AG_ESTATE:
    return 4;
  case AG_ELOCKED:
    return 5;
  case AG_ESTATELOST:
    return 6;
  case AG_ECHANGED:
  case AG_EPARSE:
  case AG_ECODE_COUNT:
    break;
  }
  return 1;
}
