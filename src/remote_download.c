/* remote_download(): read a remote file of the listed size, then check
 * that the file at its path did not change, with as few SFTP requests and
 * round trips as the checks allow.
 *
 * A download sends open, the read requests, lstat of the path and close.
 * The lstat and the close go out together and their replies are
 * collected together, so a small file costs three round trips. */
#include "remote_internal.h"

#include "agent/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes handed to the download callback at a time. libssh2 1.11 keeps
 * requests for up to four times the buffer of a libssh2_sftp_read() call
 * in flight, in SFTP read requests of at most 30000 bytes, which hides the
 * round trip time. So the block and the replies to those requests bound a
 * download's memory to about 5 MiB. */
#define DOWNLOAD_BLOCK_SIZE (1024 * 1024)

/* Return the buffer size for one libssh2_sftp_read() call into space
 * bytes when left bytes of the file are still unread. libssh2 requests up
 * to four times the buffer size ahead, so a quarter of what is left keeps
 * the requests within 3 bytes of the file's end. A file of up to 30000
 * bytes then takes a single read request, without a second one past its
 * end, to which the server would reply only with an end-of-file status. */
static size_t read_buffer_size(size_t space, uint64_t left)
{
  uint64_t quarter = left / 4 + (left % 4 != 0 ? 1 : 0);

  if (quarter == 0)
    quarter = 1;
  return quarter < space ? (size_t)quarter : space;
}

/* Fill block with limit bytes, left of which are still unread in the
 * file. *filled is less than limit only at the end of the file. Each read
 * gets its own deadline and returns as soon as some data has arrived, so
 * only a timeout without any data fails. */
static enum ag_code read_block(struct remote *remote,
                               LIBSSH2_SFTP_HANDLE *handle, const char *path,
                               char *block, size_t limit, uint64_t left,
                               size_t *filled, struct ag_error *err)
{
  *filled = 0;
  while (*filled < limit) {
    size_t size = read_buffer_size(limit - *filled, left - *filled);
    int64_t deadline = remote_deadline(remote);
    ssize_t got;
    do
      got = libssh2_sftp_read(handle, block + *filled, size);
    while (remote_wait(remote, (int)got, deadline));
    if (got < 0)
      return remote_fail_path(remote, (int)got, "read", path, err);
    if (got == 0)
      break;
    *filled += (size_t)got;
  }
  return AG_OK;
}

/* Read expect_size bytes from handle and pass them to fn block by block.
 * Stores the bytes read in *total, which is less than expect_size when
 * the file ended early. Never reads past expect_size, so a file that
 * grows stops the download at the listed size. */
static enum ag_code read_file(struct remote *remote,
                              LIBSSH2_SFTP_HANDLE *handle, const char *path,
                              uint64_t expect_size, remote_data_fn fn,
                              void *ctx, uint64_t *total, struct ag_error *err)
{
  size_t block_size = expect_size < DOWNLOAD_BLOCK_SIZE ? (size_t)expect_size
                                                        : DOWNLOAD_BLOCK_SIZE;
  char *block = malloc(block_size > 0 ? block_size : 1);
  enum ag_code code = AG_OK;

  *total = 0;
  if (block == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory for a download");
  while (*total < expect_size) {
    uint64_t left = expect_size - *total;
    size_t limit = left < block_size ? (size_t)left : block_size;
    size_t filled = 0;
    code = read_block(remote, handle, path, block, limit, left, &filled, err);
    if (code == AG_OK && filled > 0)
      code = fn(ctx, block, filled, err);
    *total += filled;
    if (code != AG_OK || filled < limit)
      break;
  }
  free(block);
  return code;
}

/* Send lstat of path and the close of handle back to back, then collect
 * both replies, so that they take one round trip. Stores path's
 * attributes in attrs. Frees handle in every case.
 *
 * The order of the steps avoids two hazards of interleaved libssh2 calls.
 * libssh2 sends no other packet while it keeps the unsent rest of one, so
 * a request that did not fit into the socket's send buffer is finished by
 * calling the same function again before the next one starts. And a
 * finished close frees the handle, which the lstat of the path does not
 * use. */
static enum ag_code stat_and_close(struct remote *remote,
                                   LIBSSH2_SFTP_HANDLE *handle,
                                   const char *path,
                                   LIBSSH2_SFTP_ATTRIBUTES *attrs,
                                   struct ag_error *err)
{
  unsigned len = (unsigned)strlen(path);
  int64_t deadline = remote_deadline(remote);
  int stat_rc;
  int close_rc = LIBSSH2_ERROR_EAGAIN;

  do
    stat_rc = libssh2_sftp_stat_ex(remote->sftp, path, len, LIBSSH2_SFTP_LSTAT,
                                   attrs);
  while (!remote_request_sent(remote, stat_rc) &&
         remote_wait(remote, stat_rc, deadline));
  /* A failure is recorded at once, because the close resets the SFTP
   * status that the message reads. */
  enum ag_code code = AG_OK;
  if (stat_rc != 0 && stat_rc != LIBSSH2_ERROR_EAGAIN)
    code = remote_fail_path(remote, stat_rc, "stat", path, err);
  if (!remote->broken) {
    do
      close_rc = libssh2_sftp_close_handle(handle);
    while (!remote_request_sent(remote, close_rc) &&
           remote_wait(remote, close_rc, deadline));
  }

  /* Each call comes before its wait, because the other call may already
   * have received this reply into libssh2's buffers. A broken session
   * keeps EAGAIN, which reports the timeout. */
  if (stat_rc == LIBSSH2_ERROR_EAGAIN && !remote->broken) {
    do
      stat_rc = libssh2_sftp_stat_ex(remote->sftp, path, len,
                                     LIBSSH2_SFTP_LSTAT, attrs);
    while (remote_wait(remote, stat_rc, deadline));
  }
  if (code == AG_OK && stat_rc != 0)
    code = remote_fail_path(remote, stat_rc, "stat", path, err);

  if (close_rc == LIBSSH2_ERROR_EAGAIN)
    (void)remote_close_handle(remote, handle);
  return code;
}

/* Record that path changed during its download, with detail saying how. */
static enum ag_code report_changed(struct remote *remote, const char *path,
                                   const char *detail, struct ag_error *err)
{
  char shown[REMOTE_SHOWN_PATH_SIZE];

  log_escape(shown, sizeof(shown), path, strlen(path));
  return ag_error_set(err, AG_ECHANGED,
                      "'%s' on %s changed during the download: %s", shown,
                      remote->endpoint, detail);
}

/* Check that path has no byte after the first size ones, for a server
 * whose attributes have no size: open it again and read one byte there. */
static enum ag_code check_no_more_data(struct remote *remote, const char *path,
                                       uint64_t size, struct ag_error *err)
{
  int rc = 0;
  LIBSSH2_SFTP_HANDLE *handle =
      remote_open_handle(remote, path, strlen(path), LIBSSH2_FXF_READ, 0,
                         LIBSSH2_SFTP_OPENFILE, &rc);
  if (handle == NULL)
    return remote_fail_path(remote, rc, "open", path, err);

  char extra;
  size_t filled = 0;
  libssh2_sftp_seek64(handle, size);
  enum ag_code code =
      read_block(remote, handle, path, &extra, 1, 1, &filled, err);
  (void)remote_close_handle(remote, handle);
  if (code == AG_OK && filled > 0) {
    char detail[96];
    snprintf(detail, sizeof(detail),
             "it has more than the %" PRIu64 " bytes expected", size);
    code = report_changed(remote, path, detail, err);
  }
  return code;
}

/* Compare the attributes of path after the download with the listing. An
 * attribute the server does not report is not compared, except the size,
 * which check_no_more_data() then checks. */
static enum ag_code check_unchanged(struct remote *remote, const char *path,
                                    const LIBSSH2_SFTP_ATTRIBUTES *attrs,
                                    uint64_t expect_size, int64_t expect_mtime,
                                    struct ag_error *err)
{
  char detail[128];

  if ((attrs->flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
      !LIBSSH2_SFTP_S_ISREG(attrs->permissions))
    return report_changed(remote, path, "it is no longer a regular file", err);
  if ((attrs->flags & LIBSSH2_SFTP_ATTR_SIZE) &&
      attrs->filesize != expect_size) {
    snprintf(detail, sizeof(detail),
             "size is now %" PRIu64 " bytes, expected %" PRIu64,
             (uint64_t)attrs->filesize, expect_size);
    return report_changed(remote, path, detail, err);
  }
  if ((attrs->flags & LIBSSH2_SFTP_ATTR_ACMODTIME) &&
      (int64_t)attrs->mtime != expect_mtime) {
    snprintf(detail, sizeof(detail),
             "mtime is now %" PRId64 ", expected %" PRId64,
             (int64_t)attrs->mtime, expect_mtime);
    return report_changed(remote, path, detail, err);
  }
  /* NOTE: OpenSSH's server always reports the size, so the tests never
   * run this check. */
  if (!(attrs->flags & LIBSSH2_SFTP_ATTR_SIZE))
    return check_no_more_data(remote, path, expect_size, err);
  return AG_OK;
}

enum ag_code remote_download(struct remote *remote, const char *path,
                             uint64_t expect_size, int64_t expect_mtime,
                             remote_data_fn fn, void *ctx, struct ag_error *err)
{
  LIBSSH2_SFTP_ATTRIBUTES attrs;
  uint64_t total = 0;
  enum ag_code code = remote_check_path(remote, "download", path, err);
  if (code != AG_OK)
    return code;

  int rc = 0;
  LIBSSH2_SFTP_HANDLE *handle =
      remote_open_handle(remote, path, strlen(path), LIBSSH2_FXF_READ, 0,
                         LIBSSH2_SFTP_OPENFILE, &rc);
  if (handle == NULL)
    return remote_fail_path(remote, rc, "open", path, err);

  code = read_file(remote, handle, path, expect_size, fn, ctx, &total, err);
  if (code == AG_OK && total != expect_size) {
    char detail[96];
    snprintf(detail, sizeof(detail),
             "read %" PRIu64 " bytes, expected %" PRIu64, total, expect_size);
    code = report_changed(remote, path, detail, err);
  }
  if (code != AG_OK) {
    (void)remote_close_handle(remote, handle);
    return code;
  }

  /* The lstat of the path comes after every read request, because the
   * server has replied to all of them. It checks the file that the later
   * move will take, so a file replaced by another one during the download
   * counts as changed too. */
  code = stat_and_close(remote, handle, path, &attrs, err);
  if (code == AG_OK)
    code =
        check_unchanged(remote, path, &attrs, expect_size, expect_mtime, err);
  return code;
}
