/* Folder listing for remote_list(): a depth-first walk that passes each
 * entry to the caller's callback. */
#include "remote_internal.h"

#include "agent/log.h"

#include <stdlib.h>
#include <string.h>

/* Maximum number of folder levels that a recursive listing enters below
 * the listed folder. It stops runaway walks, for example through a server
 * that follows symbolic links to folders in its listings. */
#define LIST_DEPTH_MAX 32

/* SFTP version 3 attributes carry the file type in the permission bits,
 * which a server may leave out. */
static enum remote_kind kind_of(const LIBSSH2_SFTP_ATTRIBUTES *attrs)
{
  if (!(attrs->flags & LIBSSH2_SFTP_ATTR_PERMISSIONS))
    return REMOTE_OTHER;
  if (LIBSSH2_SFTP_S_ISREG(attrs->permissions))
    return REMOTE_FILE;
  if (LIBSSH2_SFTP_S_ISDIR(attrs->permissions))
    return REMOTE_DIR;
  if (LIBSSH2_SFTP_S_ISLNK(attrs->permissions))
    return REMOTE_SYMLINK;
  return REMOTE_OTHER;
}

void remote_fill_entry(struct remote_entry *entry, const char *rel,
                       size_t rel_len, const LIBSSH2_SFTP_ATTRIBUTES *attrs)
{
  entry->rel = rel;
  entry->rel_len = rel_len;
  entry->kind = kind_of(attrs);
  entry->size = (attrs->flags & LIBSSH2_SFTP_ATTR_SIZE) ? attrs->filesize : 0;
  entry->mtime =
      (attrs->flags & LIBSSH2_SFTP_ATTR_ACMODTIME) ? (int64_t)attrs->mtime : 0;
}

struct list_walk {
  struct remote *remote;
  bool recursive;
  const char *const *skip;
  size_t skip_count;
  remote_list_fn fn;
  void *ctx;
  char path[REMOTE_PATH_MAX + 1]; /* absolute path of the current entry */
  size_t rel_start;               /* where the relative path starts */
  char name[1024];                /* one readdir name */
};

static bool is_skipped(const struct list_walk *walk, size_t path_len)
{
  for (size_t i = 0; i < walk->skip_count; i++) {
    size_t len = strlen(walk->skip[i]);
    while (len > 1 && walk->skip[i][len - 1] == '/')
      len--;
    if (len == path_len && memcmp(walk->skip[i], walk->path, len) == 0)
      return true;
  }
  return false;
}

static bool is_dot_name(const char *name, size_t len)
{
  return (len == 1 && name[0] == '.') ||
         (len == 2 && name[0] == '.' && name[1] == '.');
}

/* Return whether a name from the server can be used as a path component.
 * A hostile server could send names with '/' or NUL to make the walk
 * leave the listed folder or confuse path handling. */
static bool is_plain_name(const char *name, size_t len)
{
  return memchr(name, '/', len) == NULL && memchr(name, '\0', len) == NULL;
}

static enum ag_code walk_folder(struct list_walk *walk, size_t path_len,
                                int depth, struct ag_error *err);

/* Report one readdir entry whose name is in walk->name, and walk into it
 * when it is a folder and the listing is recursive. */
static enum ag_code visit_entry(struct list_walk *walk, size_t path_len,
                                size_t name_len,
                                const LIBSSH2_SFTP_ATTRIBUTES *attrs, int depth,
                                struct ag_error *err)
{
  struct remote_entry entry;
  size_t separator = walk->path[path_len - 1] == '/' ? 0 : 1;
  size_t full_len = path_len + separator + name_len;

  if (full_len > REMOTE_PATH_MAX) {
    char shown[REMOTE_SHOWN_PATH_SIZE];
    log_escape(shown, sizeof(shown), walk->path, path_len);
    return ag_error_set(err, AG_EREMOTE,
                        "cannot list an entry of '%s' on %s: its path would "
                        "be longer than %d bytes",
                        shown, walk->remote->endpoint, REMOTE_PATH_MAX);
  }
  if (separator)
    walk->path[path_len] = '/';
  memcpy(walk->path + path_len + separator, walk->name, name_len);
  walk->path[full_len] = '\0';

  remote_fill_entry(&entry, walk->path + walk->rel_start,
                    full_len - walk->rel_start, attrs);
  if (entry.kind == REMOTE_DIR && is_skipped(walk, full_len))
    return AG_OK;

  enum ag_code code = walk->fn(walk->ctx, &entry);
  if (code != AG_OK || !walk->recursive || entry.kind != REMOTE_DIR)
    return code;
  if (depth >= LIST_DEPTH_MAX) {
    char shown[REMOTE_SHOWN_PATH_SIZE];
    log_escape(shown, sizeof(shown), walk->path, full_len);
    return ag_error_set(err, AG_EREMOTE,
                        "cannot list '%s' on %s: folders nest more than %d "
                        "levels deep below the listed folder. Move the files "
                        "to a shallower folder",
                        shown, walk->remote->endpoint, LIST_DEPTH_MAX);
  }
  return walk_folder(walk, full_len, depth + 1, err);
}

/* List the folder at walk->path[0..path_len). */
static enum ag_code walk_folder(struct list_walk *walk, size_t path_len,
                                int depth, struct ag_error *err)
{
  struct remote *remote = walk->remote;
  enum ag_code code = AG_OK;
  size_t rejected = 0;
  LIBSSH2_SFTP_ATTRIBUTES attrs;

  int rc = 0;
  LIBSSH2_SFTP_HANDLE *handle = remote_open_handle(
      remote, walk->path, path_len, 0, 0, LIBSSH2_SFTP_OPENDIR, &rc);
  if (handle == NULL)
    return remote_fail_path(remote, rc, "list folder", walk->path, err);

  /* OpenSSH's server fills readdir attributes with lstat(), so symbolic
   * links arrive as links. A server that follows them instead makes the
   * walk enter linked folders, bounded by LIST_DEPTH_MAX. */
  for (;;) {
    int64_t deadline = remote_deadline(remote);
    do
      rc = libssh2_sftp_readdir_ex(handle, walk->name, sizeof(walk->name), NULL,
                                   0, &attrs);
    while (remote_wait(remote, rc, deadline));
    walk->path[path_len] = '\0';
    if (rc == 0)
      break;
    if (rc < 0) {
      code = remote_fail_path(remote, rc, "list folder", walk->path, err);
      goto out;
    }
    if (is_dot_name(walk->name, (size_t)rc))
      continue;
    if (!is_plain_name(walk->name, (size_t)rc)) {
      rejected++;
      continue;
    }
    code = visit_entry(walk, path_len, (size_t)rc, &attrs, depth, err);
    if (code != AG_OK)
      goto out;
  }

out:
  walk->path[path_len] = '\0';
  if (rejected > 0) {
    char shown[REMOTE_SHOWN_PATH_SIZE];
    log_escape(shown, sizeof(shown), walk->path, path_len);
    log_warn("skipped %zu entries of '%s' on %s whose names contain '/' or "
             "NUL",
             rejected, shown, remote->endpoint);
  }
  (void)remote_close_handle(remote, handle);
  return code;
}

enum ag_code remote_list(struct remote *remote, const char *dir, bool recursive,
                         const char *const *skip, size_t skip_count,
                         remote_list_fn fn, void *ctx, struct ag_error *err)
{
  enum ag_code code = remote_check_path(remote, "list", dir, err);
  if (code != AG_OK)
    return code;

  /* The walk state contains 5 KiB of path buffers, allocated once rather
   * than on the stack of every level. */
  struct list_walk *walk = calloc(1, sizeof(*walk));
  if (walk == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory listing a folder");
  walk->remote = remote;
  walk->recursive = recursive;
  walk->skip = skip;
  walk->skip_count = skip_count;
  walk->fn = fn;
  walk->ctx = ctx;

  size_t len = strlen(dir);
  memcpy(walk->path, dir, len + 1);
  walk->rel_start = dir[len - 1] == '/' ? len : len + 1;
  code = walk_folder(walk, len, 0, err);
  free(walk);
  return code;
}
