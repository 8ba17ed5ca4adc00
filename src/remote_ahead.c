/* Requests sent ahead of the call that needs their reply, so that they
 * share a round trip with the requests around them. A worker of a
 * parallel pass sends the open of its next file and the archive move of
 * an earlier one before the read of its current file, and all three reach
 * the server in one segment (docs/performance.md).
 *
 * libssh2 keeps one open and one rename in progress per SFTP channel, and
 * returns the reply of the one in progress to the next call of the same
 * kind, whatever path that call names. So every open and rename first
 * takes the reply of the one sent ahead: a handle is kept until the
 * download of its path takes it, and a rename's result until the
 * remote_rename() of the same pair takes it. */
#include "remote_internal.h"

#include <stdlib.h>
#include <string.h>

/* Return whether text equals the len bytes at other. */
static bool same_text(const char *text, const char *other, size_t len)
{
  return text != NULL && strlen(text) == len && memcmp(text, other, len) == 0;
}

/* A function that makes the libssh2 call sending one request, with ctx
 * naming the request, and returns the call's result. */
typedef int send_request_fn(struct remote *remote, void *ctx);

/* Send a request that the kernel delays until the next one (see
 * remote_watch_socket()), calling send_request until the whole request is
 * out. Returns what its last call returned. */
static int send_delayed(struct remote *remote, send_request_fn *send_request,
                        void *ctx)
{
  int64_t deadline = remote_deadline(remote);
  int rc;

  do {
    remote->delay_sends = true;
    rc = send_request(remote, ctx);
    remote->delay_sends = false;
  } while (!remote_request_sent(remote, rc) &&
           remote_wait(remote, rc, deadline));
  return rc;
}

/* ---- Opens ---- */

/* Close the handle kept for the open ahead, if any. */
static void close_opened(struct remote *remote)
{
  if (remote->opened_handle != NULL)
    (void)remote_close_handle(remote, remote->opened_handle);
  remote->opened_handle = NULL;
  free(remote->opened_path);
  remote->opened_path = NULL;
}

/* Take the reply of the open in progress, and keep its handle in place of
 * the one kept before, which is closed. */
static void settle_open(struct remote *remote)
{
  int rc = 0;
  char *path = remote->opening_path;

  if (path == NULL)
    return;
  remote->opening_path = NULL;
  LIBSSH2_SFTP_HANDLE *handle =
      remote_open_wait(remote, path, strlen(path), LIBSSH2_FXF_READ, 0,
                       LIBSSH2_SFTP_OPENFILE, &rc);
  close_opened(remote);
  if (handle == NULL) {
    free(path);
    return;
  }
  remote->opened_path = path;
  remote->opened_handle = handle;
}

/* An open to send, and its handle when the reply came at once. */
struct open_request {
  const char *path;
  LIBSSH2_SFTP_HANDLE *handle;
};

static int send_open(struct remote *remote, void *ctx)
{
  struct open_request *request = ctx;

  request->handle = libssh2_sftp_open_ex(
      remote->sftp, request->path, (unsigned)strlen(request->path),
      LIBSSH2_FXF_READ, 0, LIBSSH2_SFTP_OPENFILE);
  return request->handle != NULL ? 0
                                 : libssh2_session_last_errno(remote->session);
}

void remote_open_ahead(struct remote *remote, const char *path)
{
  struct open_request request = {path, NULL};
  size_t len = strlen(path);

  settle_open(remote);
  if (remote->broken || len == 0 || len > REMOTE_PATH_MAX)
    return;
  char *copy = strdup(path);
  if (copy == NULL)
    return;

  int rc = send_delayed(remote, send_open, &request);
  if (remote_request_sent(remote, rc)) {
    remote->opening_path = copy;
  } else if (request.handle != NULL) {
    close_opened(remote);
    remote->opened_path = copy;
    remote->opened_handle = request.handle;
  } else {
    /* The download's own open finds the failure again and reports it. */
    free(copy);
  }
}

LIBSSH2_SFTP_HANDLE *remote_take_opened(struct remote *remote, const char *path,
                                        size_t len, bool *found, int *rc)
{
  LIBSSH2_SFTP_HANDLE *handle = NULL;

  *found = false;
  *rc = 0;
  if (path != NULL && same_text(remote->opened_path, path, len)) {
    handle = remote->opened_handle;
    remote->opened_handle = NULL;
    free(remote->opened_path);
    remote->opened_path = NULL;
    *found = true;
  } else if (path != NULL && same_text(remote->opening_path, path, len)) {
    handle = remote_open_wait(remote, path, len, LIBSSH2_FXF_READ, 0,
                              LIBSSH2_SFTP_OPENFILE, rc);
    free(remote->opening_path);
    remote->opening_path = NULL;
    *found = true;
  } else {
    settle_open(remote);
  }
  return handle;
}

/* ---- Renames ---- */

/* The pair of a rename to send. */
struct move_pair {
  const char *from;
  const char *to;
};

static int send_rename(struct remote *remote, void *ctx)
{
  const struct move_pair *pair = ctx;

  return libssh2_sftp_rename_ex(remote->sftp, pair->from,
                                (unsigned)strlen(pair->from), pair->to,
                                (unsigned)strlen(pair->to), 0);
}

/* Take the reply of the rename in progress and keep its result. */
static void settle_move(struct remote *remote)
{
  if (remote->move_from == NULL || remote->move_settled)
    return;
  remote->move_rc = remote_rename_wait(remote, remote->move_from,
                                       remote->move_to, &remote->move_status);
  remote->move_settled = true;
}

/* Forget the rename sent ahead and its result. */
static void forget_move(struct remote *remote)
{
  free(remote->move_from);
  free(remote->move_to);
  remote->move_from = NULL;
  remote->move_to = NULL;
  remote->move_settled = false;
}

void remote_rename_ahead(struct remote *remote, const char *from,
                         const char *to)
{
  /* One rename at a time, and only on a server that rejects an existing
   * target by itself, because a look first would need its own round
   * trip. */
  if (remote->move_from != NULL || remote->broken ||
      !remote->rename_rejects_existing)
    return;
  size_t from_len = strlen(from);
  size_t to_len = strlen(to);
  if (from_len == 0 || from_len > REMOTE_PATH_MAX || to_len == 0 ||
      to_len > REMOTE_PATH_MAX)
    return;
  remote->move_from = strdup(from);
  remote->move_to = strdup(to);
  if (remote->move_from == NULL || remote->move_to == NULL) {
    forget_move(remote);
    return;
  }

  struct move_pair pair = {from, to};
  int rc = send_delayed(remote, send_rename, &pair);
  if (remote_request_sent(remote, rc))
    return;
  /* The reply came at once, or the request failed: keep the result. */
  remote->move_rc = rc;
  remote->move_status = rc == LIBSSH2_ERROR_SFTP_PROTOCOL
                            ? libssh2_sftp_last_error(remote->sftp)
                            : LIBSSH2_FX_OK;
  remote->move_settled = true;
}

bool remote_take_moved(struct remote *remote, const char *from, const char *to,
                       int *rc, unsigned long *status)
{
  settle_move(remote);
  if (!same_text(remote->move_from, from, strlen(from)) ||
      !same_text(remote->move_to, to, strlen(to)))
    return false;
  *rc = remote->move_rc;
  *status = remote->move_status;
  forget_move(remote);
  return true;
}

void remote_drop_ahead(struct remote *remote)
{
  if (!remote->broken) {
    settle_open(remote);
    settle_move(remote);
  }
  free(remote->opening_path);
  remote->opening_path = NULL;
  close_opened(remote);
  forget_move(remote);
}
