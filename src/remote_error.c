/* Translation of libssh2 errors and SFTP status replies into the agent's
 * error codes and messages, and the path checks that run before each
 * SFTP request. */
#include "remote_internal.h"

#include "agent/log.h"

#include <stdio.h>
#include <string.h>

struct sftp_status {
  unsigned long status;
  enum ag_code code;
  const char *reason;
};

static const struct sftp_status sftp_statuses[] = {
    {LIBSSH2_FX_NO_SUCH_FILE, AG_ENOENT, "no such file or folder"},
    {LIBSSH2_FX_NO_SUCH_PATH, AG_ENOENT, "no such file or folder"},
    {LIBSSH2_FX_PERMISSION_DENIED, AG_EREMOTE, "permission denied"},
    {LIBSSH2_FX_WRITE_PROTECT, AG_EREMOTE,
     "permission denied (write protected)"},
    {LIBSSH2_FX_FILE_ALREADY_EXISTS, AG_EEXIST, "the file already exists"},
    {LIBSSH2_FX_FAILURE, AG_EREMOTE,
     "the server reported a failure without details (SSH_FX_FAILURE)"},
    {LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM, AG_EREMOTE,
     "no space left on the server"},
    {LIBSSH2_FX_QUOTA_EXCEEDED, AG_EREMOTE,
     "the user's disk quota on the server is exceeded"},
    {LIBSSH2_FX_NOT_A_DIRECTORY, AG_EREMOTE,
     "a component of the path is not a folder"},
    {LIBSSH2_FX_DIR_NOT_EMPTY, AG_EREMOTE, "the folder is not empty"},
    {LIBSSH2_FX_INVALID_FILENAME, AG_EREMOTE, "the server rejects the name"},
    {LIBSSH2_FX_LINK_LOOP, AG_EREMOTE, "too many levels of symbolic links"},
    {LIBSSH2_FX_LOCK_CONFLICT, AG_EREMOTE, "the file is locked on the server"},
    {LIBSSH2_FX_OP_UNSUPPORTED, AG_EREMOTE,
     "the server does not support this operation"},
    {LIBSSH2_FX_BAD_MESSAGE, AG_EREMOTE,
     "the server rejected the request as malformed"},
    {LIBSSH2_FX_NO_CONNECTION, AG_ECONNECT, "the server has no connection"},
    {LIBSSH2_FX_CONNECTION_LOST, AG_ECONNECT, "the connection was lost"},
};

enum ag_code remote_fail_status(struct remote *remote, unsigned long status,
                                const char *what, struct ag_error *err)
{
  const struct sftp_status *known = NULL;

  for (size_t i = 0; i < sizeof(sftp_statuses) / sizeof(sftp_statuses[0]);
       i++) {
    if (sftp_statuses[i].status == status)
      known = &sftp_statuses[i];
  }
  if (known == NULL) {
    return ag_error_set(err, AG_EREMOTE, "cannot %s on %s: SFTP status %lu",
                        what, remote->endpoint, status);
  }
  if (status == LIBSSH2_FX_PERMISSION_DENIED ||
      status == LIBSSH2_FX_WRITE_PROTECT) {
    return ag_error_set(err, known->code,
                        "cannot %s on %s: %s. Check that user '%s' has the "
                        "access rights for this on the server",
                        what, remote->endpoint, known->reason, remote->user);
  }
  return ag_error_set(err, known->code, "cannot %s on %s: %s", what,
                      remote->endpoint, known->reason);
}

bool remote_is_connection_error(int rc)
{
  switch (rc) {
  case LIBSSH2_ERROR_SOCKET_NONE:
  case LIBSSH2_ERROR_BANNER_RECV:
  case LIBSSH2_ERROR_BANNER_SEND:
  case LIBSSH2_ERROR_INVALID_MAC:
  case LIBSSH2_ERROR_KEX_FAILURE:
  case LIBSSH2_ERROR_SOCKET_SEND:
  case LIBSSH2_ERROR_KEY_EXCHANGE_FAILURE:
  case LIBSSH2_ERROR_DECRYPT:
  case LIBSSH2_ERROR_SOCKET_DISCONNECT:
  case LIBSSH2_ERROR_PROTO:
  case LIBSSH2_ERROR_CHANNEL_FAILURE:
  case LIBSSH2_ERROR_CHANNEL_CLOSED:
  case LIBSSH2_ERROR_CHANNEL_EOF_SENT:
  case LIBSSH2_ERROR_SOCKET_TIMEOUT:
  case LIBSSH2_ERROR_SOCKET_RECV:
  case LIBSSH2_ERROR_BAD_SOCKET:
  case LIBSSH2_ERROR_MAC_FAILURE:
    return true;
  default:
    return false;
  }
}

enum ag_code remote_fail_call(struct remote *remote, int rc, const char *what,
                              enum ag_code fallback, struct ag_error *err)
{
  char *text = NULL;
  char reason[256];

  if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL && remote->sftp != NULL)
    return remote_fail_status(remote, libssh2_sftp_last_error(remote->sftp),
                              what, err);

  libssh2_session_last_error(remote->session, &text, NULL, 0);
  if (text == NULL || text[0] == '\0')
    text = "unknown error";
  log_escape(reason, sizeof(reason), text, strlen(text));

  if (rc == LIBSSH2_ERROR_EAGAIN || rc == LIBSSH2_ERROR_TIMEOUT) {
    return ag_error_set(err, AG_ETIMEDOUT,
                        "cannot %s on %s: no response within %d s. Check "
                        "the network and the server, or raise timeout in "
                        "the config",
                        what, remote->endpoint, remote->timeout);
  }
  if (rc == LIBSSH2_ERROR_ALLOC)
    return ag_error_set(err, AG_ENOMEM, "cannot %s on %s: out of memory", what,
                        remote->endpoint);
  if (remote_is_connection_error(rc)) {
    remote_break(remote);
    return ag_error_set(err, AG_ECONNECT,
                        "cannot %s on %s: the connection failed (%s). Close "
                        "the session and connect again",
                        what, remote->endpoint, reason);
  }
  return ag_error_set(err, fallback, "cannot %s on %s: %s (libssh2 error %d)",
                      what, remote->endpoint, reason, rc);
}

enum ag_code remote_fail_path(struct remote *remote, int rc,
                              const char *operation, const char *path,
                              struct ag_error *err)
{
  char shown[REMOTE_SHOWN_PATH_SIZE];
  char what[REMOTE_SHOWN_PATH_SIZE + 64];

  log_escape(shown, sizeof(shown), path, strlen(path));
  snprintf(what, sizeof(what), "%s '%s'", operation, shown);
  return remote_fail_call(remote, rc, what, AG_EREMOTE, err);
}

enum ag_code remote_check_path(struct remote *remote, const char *operation,
                               const char *path, struct ag_error *err)
{
  size_t len = strlen(path);

  if (remote->broken)
    return ag_error_set(err, AG_ECONNECT,
                        "cannot %s on %s: the connection was closed after an "
                        "earlier failure. Connect again",
                        operation, remote->endpoint);
  if (len == 0)
    return ag_error_set(err, AG_EREMOTE, "cannot %s an empty path on %s",
                        operation, remote->endpoint);
  if (len > REMOTE_PATH_MAX) {
    char shown[64];
    log_escape(shown, sizeof(shown), path, len);
    return ag_error_set(err, AG_EREMOTE,
                        "cannot %s '%s' on %s: the path is longer than %d "
                        "bytes",
                        operation, shown, remote->endpoint, REMOTE_PATH_MAX);
  }
  return AG_OK;
}
