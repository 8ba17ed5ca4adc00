/* One error space for the whole agent.
 *
 * Every module translates errno, libssh2, LMDB, libxml2 and OpenSSL codes
 * into an ag_code at its boundary and records a message for the operator in
 * a struct ag_error. The first error recorded wins: later calls to
 * ag_error_set() on the same struct are ignored, so cleanup code can never
 * hide the cause. */
#ifndef AGENT_ERROR_H
#define AGENT_ERROR_H

#include <stddef.h>

enum ag_code {
  AG_OK = 0,
  AG_EUSAGE,     /* bad command line */
  AG_ECONFIG,    /* invalid configuration or unreadable secret file */
  AG_ENOMEM,     /* out of memory */
  AG_ELOCAL,     /* local file system failure (disk full, permissions) */
  AG_ESTATE,     /* manifest (LMDB) failure */
  AG_ESTATELOST, /* manifest missing though earlier runs left a marker */
  AG_ELOCKED,    /* another agent holds the state directory lock */
  AG_ECONNECT,   /* TCP connect or SSH handshake failed */
  AG_EHOSTKEY,   /* server host key unknown or changed */
  AG_EAUTH,      /* authentication rejected */
  AG_ETIMEDOUT,  /* a remote operation made no progress within the timeout */
  AG_EREMOTE,    /* an SFTP request failed (permission, I/O, protocol) */
  AG_ENOENT,     /* remote file or folder does not exist */
  AG_EEXIST,     /* remote target already exists */
  AG_ECHANGED,   /* remote file changed while it was being downloaded */
  AG_EPARSE,     /* export file is malformed or not of the expected format */
  AG_ECODE_COUNT
};

/* Message buffer size; longer messages are cut at a UTF-8 boundary. */
#define AG_ERROR_MESSAGE_MAX 1024

struct ag_error {
  enum ag_code code;
  char message[AG_ERROR_MESSAGE_MAX];
};

/* Record an error unless one is already recorded. The message is formatted
 * with printf rules. Returns the code now stored in err (which is the first
 * one), so callers can write `return ag_error_set(err, ...)`. err may be
 * NULL, in which case only the code is returned. */
enum ag_code ag_error_set(struct ag_error *err, enum ag_code code,
                          const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Forget any recorded error. */
void ag_error_clear(struct ag_error *err);

/* Return a short constant name for code, such as "timed out". */
const char *ag_code_name(enum ag_code code);

/* Map an error code to the process exit code documented in the README:
 * 2 usage or configuration, 3 connection, authentication or host key,
 * 4 local failure, 5 lock held, 6 manifest lost. AG_OK maps to 0. Per-file
 * failures (parse, changed) are not process failures and map to 1. */
int ag_exit_code(enum ag_code code);

#endif
