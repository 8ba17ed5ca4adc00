/* SFTP operations on single files and folders: stat, rename, delete,
 * create folders and create a new file. Downloads are in
 * remote_download.c. */
#include "remote_internal.h"

#include "agent/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool status_is_missing(unsigned long status)
{
  return status == LIBSSH2_FX_NO_SUCH_FILE || status == LIBSSH2_FX_NO_SUCH_PATH;
}

/* libssh2_sftp_stat_ex() within one deadline. Returns its result. */
static int stat_path(struct remote *remote, const char *path, size_t len,
                     int stat_type, LIBSSH2_SFTP_ATTRIBUTES *attrs)
{
  int64_t deadline = remote_deadline(remote);
  int rc;

  do
    rc = libssh2_sftp_stat_ex(remote->sftp, path, (unsigned)len, stat_type,
                              attrs);
  while (remote_wait(remote, rc, deadline));
  return rc;
}

LIBSSH2_SFTP_HANDLE *remote_open_wait(struct remote *remote, const char *path,
                                      size_t len, unsigned long flags,
                                      long mode, int open_type, int *rc)
{
  int64_t deadline = remote_deadline(remote);
  LIBSSH2_SFTP_HANDLE *handle;

  *rc = 0;
  do {
    handle = libssh2_sftp_open_ex(remote->sftp, path, (unsigned)len, flags,
                                  mode, open_type);
    if (handle == NULL)
      *rc = libssh2_session_last_errno(remote->session);
  } while (handle == NULL && remote_wait(remote, *rc, deadline));
  return handle;
}

LIBSSH2_SFTP_HANDLE *remote_open_handle(struct remote *remote, const char *path,
                                        size_t len, unsigned long flags,
                                        long mode, int open_type, int *rc)
{
  bool reads = open_type == LIBSSH2_SFTP_OPENFILE &&
               flags == LIBSSH2_FXF_READ && mode == 0;
  bool found = false;
  LIBSSH2_SFTP_HANDLE *handle =
      remote_take_opened(remote, reads ? path : NULL, len, &found, rc);

  if (found)
    return handle;
  return remote_open_wait(remote, path, len, flags, mode, open_type, rc);
}

int remote_close_handle(struct remote *remote, LIBSSH2_SFTP_HANDLE *handle)
{
  int64_t deadline = remote_deadline(remote);
  int rc;

  do
    rc = libssh2_sftp_close_handle(handle);
  while (remote_wait(remote, rc, deadline));
  /* After a timeout the session is broken, so this call fails at once
   * and frees the handle. */
  if (rc == LIBSSH2_ERROR_EAGAIN)
    (void)libssh2_sftp_close_handle(handle);
  return rc;
}

enum ag_code remote_stat(struct remote *remote, const char *path,
                         struct remote_entry *entry, struct ag_error *err)
{
  LIBSSH2_SFTP_ATTRIBUTES attrs;
  enum ag_code code = remote_check_path(remote, "stat", path, err);
  if (code != AG_OK)
    return code;

  int rc = stat_path(remote, path, strlen(path), LIBSSH2_SFTP_LSTAT, &attrs);
  if (rc != 0)
    return remote_fail_path(remote, rc, "stat", path, err);
  remote_fill_entry(entry, NULL, 0, &attrs);
  return AG_OK;
}

/* Store in *exists whether path exists, without following a final
 * symbolic link. */
static enum ag_code path_exists(struct remote *remote, const char *path,
                                bool *exists, struct ag_error *err)
{
  LIBSSH2_SFTP_ATTRIBUTES attrs;
  int rc = stat_path(remote, path, strlen(path), LIBSSH2_SFTP_LSTAT, &attrs);

  *exists = rc == 0;
  if (rc == 0 || (rc == LIBSSH2_ERROR_SFTP_PROTOCOL &&
                  status_is_missing(libssh2_sftp_last_error(remote->sftp))))
    return AG_OK;
  return remote_fail_path(remote, rc, "stat", path, err);
}

/* Record that to exists, so from cannot be renamed onto it. */
static enum ag_code report_target_exists(struct remote *remote,
                                         const char *from, const char *to,
                                         struct ag_error *err)
{
  char shown_from[REMOTE_SHOWN_PATH_SIZE];
  char shown_to[REMOTE_SHOWN_PATH_SIZE];

  log_escape(shown_from, sizeof(shown_from), from, strlen(from));
  log_escape(shown_to, sizeof(shown_to), to, strlen(to));
  return ag_error_set(err, AG_EEXIST,
                      "cannot rename '%s' to '%s' on %s: the target exists. "
                      "The agent never replaces remote files, so move or "
                      "delete the target on the server",
                      shown_from, shown_to, remote->endpoint);
}

/* Record the failure rc of renaming from to to. status is the SFTP status
 * reply, or LIBSSH2_FX_OK when the call failed without one. */
static enum ag_code fail_rename(struct remote *remote, int rc,
                                unsigned long status, const char *from,
                                const char *to, struct ag_error *err)
{
  char shown_from[REMOTE_SHOWN_PATH_SIZE];
  char shown_to[REMOTE_SHOWN_PATH_SIZE];
  char what[2 * REMOTE_SHOWN_PATH_SIZE + 32];

  log_escape(shown_from, sizeof(shown_from), from, strlen(from));
  log_escape(shown_to, sizeof(shown_to), to, strlen(to));
  snprintf(what, sizeof(what), "rename '%s' to '%s'", shown_from, shown_to);
  if (status != LIBSSH2_FX_OK)
    return remote_fail_status(remote, status, what, err);
  return remote_fail_call(remote, rc, what, AG_EREMOTE, err);
}

int remote_rename_wait(struct remote *remote, const char *from, const char *to,
                       unsigned long *status)
{
  int64_t deadline = remote_deadline(remote);
  int rc;

  /* Flags 0: no OVERWRITE. SFTP version 3 servers ignore the flags. */
  do
    rc = libssh2_sftp_rename_ex(remote->sftp, from, (unsigned)strlen(from), to,
                                (unsigned)strlen(to), 0);
  while (remote_wait(remote, rc, deadline));
  *status = rc == LIBSSH2_ERROR_SFTP_PROTOCOL
                ? libssh2_sftp_last_error(remote->sftp)
                : LIBSSH2_FX_OK;
  return rc;
}

/* Report the failure rc, with SFTP status, of renaming from to to. OpenSSH
 * reports an existing target as SSH_FX_FAILURE, so a failure with the
 * target present means that the target exists. */
static enum ag_code report_failed_rename(struct remote *remote, int rc,
                                         unsigned long status, const char *from,
                                         const char *to, struct ag_error *err)
{
  bool exists = false;

  if (status == LIBSSH2_FX_FAILURE ||
      status == LIBSSH2_FX_FILE_ALREADY_EXISTS) {
    enum ag_code code = path_exists(remote, to, &exists, err);
    if (code != AG_OK)
      return code;
    if (exists)
      return report_target_exists(remote, from, to, err);
  }
  return fail_rename(remote, rc, status, from, to, err);
}

enum ag_code remote_rename(struct remote *remote, const char *from,
                           const char *to, struct ag_error *err)
{
  bool exists = false;
  unsigned long status = LIBSSH2_FX_OK;
  int rc = 0;
  enum ag_code code = remote_check_path(remote, "rename", from, err);
  if (code == AG_OK)
    code = remote_check_path(remote, "rename to", to, err);
  if (code != AG_OK)
    return code;

  /* A rename that remote_rename_ahead() sent only needs its reply. It is
   * sent only where the server rejects an existing target. */
  if (remote_take_moved(remote, from, to, &rc, &status))
    return rc == 0 ? AG_OK
                   : report_failed_rename(remote, rc, status, from, to, err);

  /* OpenSSH's server rejects a rename onto an existing file, as SFTP version
   * 3 requires, but servers that map SFTP rename to POSIX rename() replace
   * it silently, so on those look first.
   * NOTE: a file created at the target between this check and the rename
   * is still replaced on such servers. */
  if (!remote->rename_rejects_existing) {
    code = path_exists(remote, to, &exists, err);
    if (code != AG_OK)
      return code;
    if (exists)
      return report_target_exists(remote, from, to, err);
  }

  rc = remote_rename_wait(remote, from, to, &status);
  if (rc == 0)
    return AG_OK;
  return report_failed_rename(remote, rc, status, from, to, err);
}

/* libssh2_sftp_unlink_ex() within one deadline. Returns its result. */
static int unlink_path(struct remote *remote, const char *path)
{
  int64_t deadline = remote_deadline(remote);
  int rc;

  do
    rc = libssh2_sftp_unlink_ex(remote->sftp, path, (unsigned)strlen(path));
  while (remote_wait(remote, rc, deadline));
  return rc;
}

enum ag_code remote_unlink(struct remote *remote, const char *path,
                           struct ag_error *err)
{
  enum ag_code code = remote_check_path(remote, "delete", path, err);
  if (code != AG_OK)
    return code;

  int rc = unlink_path(remote, path);
  if (rc != 0)
    return remote_fail_path(remote, rc, "delete", path, err);
  return AG_OK;
}

/* Create the folder path unless it exists. Existing components are
 * checked with stat, which follows symbolic links, because an archive
 * folder is often a link to another volume. */
static enum ag_code make_folder(struct remote *remote, const char *path,
                                struct ag_error *err)
{
  LIBSSH2_SFTP_ATTRIBUTES attrs;
  unsigned len = (unsigned)strlen(path);

  for (int attempt = 0; attempt < 2; attempt++) {
    int rc = stat_path(remote, path, len, LIBSSH2_SFTP_STAT, &attrs);
    if (rc == 0) {
      /* Without permission bits the type is unknown, and a later mkdir
       * below a file fails with its own error. */
      if (!(attrs.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) ||
          LIBSSH2_SFTP_S_ISDIR(attrs.permissions))
        return AG_OK;
      char shown[REMOTE_SHOWN_PATH_SIZE];
      log_escape(shown, sizeof(shown), path, len);
      return ag_error_set(err, AG_EREMOTE,
                          "cannot create folder '%s' on %s: it exists and "
                          "is not a folder. Remove it on the server or "
                          "choose another folder in the config",
                          shown, remote->endpoint);
    }
    if (rc != LIBSSH2_ERROR_SFTP_PROTOCOL ||
        !status_is_missing(libssh2_sftp_last_error(remote->sftp)))
      return remote_fail_path(remote, rc, "stat", path, err);

    int64_t deadline = remote_deadline(remote);
    do
      rc = libssh2_sftp_mkdir_ex(remote->sftp, path, len, 0750);
    while (remote_wait(remote, rc, deadline));
    if (rc == 0)
      return AG_OK;
    /* Another client may have created it since the stat, so look again
     * once before reporting the mkdir error. */
    if (attempt == 1 || rc != LIBSSH2_ERROR_SFTP_PROTOCOL ||
        libssh2_sftp_last_error(remote->sftp) != LIBSSH2_FX_FAILURE)
      return remote_fail_path(remote, rc, "create folder", path, err);
  }
  return AG_OK;
}

enum ag_code remote_mkdirs(struct remote *remote, const char *dir,
                           struct ag_error *err)
{
  char path[REMOTE_PATH_MAX + 1];
  enum ag_code code = remote_check_path(remote, "create folder", dir, err);
  if (code != AG_OK)
    return code;

  size_t len = strlen(dir);
  memcpy(path, dir, len + 1);
  while (len > 1 && path[len - 1] == '/')
    path[--len] = '\0';

  /* The folder usually exists already, which one request confirms. */
  LIBSSH2_SFTP_ATTRIBUTES attrs;
  int rc = stat_path(remote, path, len, LIBSSH2_SFTP_STAT, &attrs);
  if (rc == 0 && (attrs.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
      LIBSSH2_SFTP_S_ISDIR(attrs.permissions))
    return AG_OK;

  for (size_t i = 1; i <= len && code == AG_OK; i++) {
    if (path[i] != '/' && path[i] != '\0')
      continue;
    if (path[i - 1] == '/')
      continue;
    char saved = path[i];
    path[i] = '\0';
    code = make_folder(remote, path, err);
    path[i] = saved;
  }
  return code;
}

/* Write all of data to an open handle. */
static enum ag_code write_all(struct remote *remote,
                              LIBSSH2_SFTP_HANDLE *handle, const char *path,
                              const void *data, size_t len,
                              struct ag_error *err)
{
  const char *next = data;
  size_t left = len;

  while (left > 0) {
    int64_t deadline = remote_deadline(remote);
    ssize_t written;
    do
      written = libssh2_sftp_write(handle, next, left);
    while (remote_wait(remote, (int)written, deadline));
    if (written < 0)
      return remote_fail_path(remote, (int)written, "write", path, err);
    if (written == 0)
      return remote_fail_path(remote, LIBSSH2_ERROR_SOCKET_SEND, "write", path,
                              err);
    next += written;
    left -= (size_t)written;
  }
  return AG_OK;
}

/* Record the failure to open path with O_EXCL. OpenSSH reports an
 * existing file as SSH_FX_FAILURE, so look whether path exists. */
static enum ag_code fail_create(struct remote *remote, const char *path, int rc,
                                struct ag_error *err)
{
  unsigned long status = rc == LIBSSH2_ERROR_SFTP_PROTOCOL
                             ? libssh2_sftp_last_error(remote->sftp)
                             : LIBSSH2_FX_OK;
  char shown[REMOTE_SHOWN_PATH_SIZE];
  char what[REMOTE_SHOWN_PATH_SIZE + 32];
  bool exists = false;

  log_escape(shown, sizeof(shown), path, strlen(path));
  snprintf(what, sizeof(what), "create file '%s'", shown);
  if (status != LIBSSH2_FX_FAILURE && status != LIBSSH2_FX_FILE_ALREADY_EXISTS)
    return remote_fail_call(remote, rc, what, AG_EREMOTE, err);

  enum ag_code code = path_exists(remote, path, &exists, err);
  if (code != AG_OK)
    return code;
  if (exists)
    return ag_error_set(err, AG_EEXIST,
                        "cannot create file '%s' on %s: it already exists",
                        shown, remote->endpoint);
  return remote_fail_status(remote, status, what, err);
}

enum ag_code remote_write_new(struct remote *remote, const char *path,
                              const void *data, size_t len,
                              struct ag_error *err)
{
  enum ag_code code = remote_check_path(remote, "create file", path, err);
  if (code != AG_OK)
    return code;

  int rc = 0;
  LIBSSH2_SFTP_HANDLE *handle = remote_open_handle(
      remote, path, strlen(path),
      LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL, 0640,
      LIBSSH2_SFTP_OPENFILE, &rc);
  if (handle == NULL)
    return fail_create(remote, path, rc, err);

  code = write_all(remote, handle, path, data, len, err);
  rc = remote_close_handle(remote, handle);
  if (code == AG_OK && rc != 0)
    code = remote_fail_path(remote, rc, "close", path, err);

  /* A partial file would make every retry fail with AG_EEXIST.
   * NOTE: when the connection is lost or timed out, this delete fails at
   * once and the partial file stays. */
  if (code != AG_OK && unlink_path(remote, path) != 0)
    log_warn("cannot delete the partial file left by a failed write on %s",
             remote->endpoint);
  return code;
}
