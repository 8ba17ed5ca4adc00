/* SFTP access to the export server through libssh2.
 *
 * A struct remote is one authenticated SSH session with one SFTP channel.
 * remote_connect() always verifies the server's host key, against
 * known_hosts or a pinned SHA-256 fingerprint, before it authenticates.
 * Remote paths are raw bytes as the server sent them (NUL-terminated,
 * since SFTP names cannot contain NUL); they are never reinterpreted.
 *
 * Every wait for the server is bounded by config->timeout, as
 * docs/architecture.md describes. After a timeout (AG_ETIMEDOUT) or a
 * lost connection (AG_ECONNECT) the session is broken: later calls fail
 * at once with AG_ECONNECT, and remote_close() frees it without waiting.
 * The module keeps no global mutable state, so several sessions may be
 * used at the same time, each by one thread at a time. */
#ifndef AGENT_REMOTE_H
#define AGENT_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/config.h"
#include "agent/error.h"

struct remote;

enum remote_kind {
  REMOTE_FILE,    /* regular file */
  REMOTE_DIR,     /* folder */
  REMOTE_SYMLINK, /* symbolic link; never followed */
  REMOTE_OTHER    /* device, socket, or a kind the server did not report */
};

struct remote_entry {
  const char *rel; /* path relative to the listed folder, '/'-separated */
  size_t rel_len;
  enum remote_kind kind;
  uint64_t size;
  int64_t mtime; /* seconds since the Unix epoch */
};

/* Called for each listed entry. entry and its strings are valid only
 * during the call. Return AG_OK to go on; any other code stops the
 * listing and is returned by remote_list(). */
typedef enum ag_code (*remote_list_fn)(void *ctx,
                                       const struct remote_entry *entry);

/* Called with each block of downloaded data, in order. */
typedef enum ag_code (*remote_data_fn)(void *ctx, const void *data, size_t len,
                                       struct ag_error *err);

/* Connect to the server in config, verify its host key, authenticate and
 * open the SFTP channel. On success stores the session in *out.
 * Errors: AG_ECONNECT (resolve, TCP or handshake; the message names
 * host:port), AG_EHOSTKEY (unknown or changed key; the message gives the
 * presented fingerprint and, for a changed key, the expected one),
 * AG_EAUTH (every configured method was rejected), AG_ETIMEDOUT. */
enum ag_code remote_connect(const struct config *config, struct remote **out,
                            struct ag_error *err);

/* Close the session and free it. Accepts NULL. */
void remote_close(struct remote *remote);

/* Send an SSH keepalive message when interval seconds have passed since
 * the last one, so that firewalls and NAT keep an idle connection open.
 * Stores the seconds until the next one is due in *next_seconds. An
 * interval of 0 or less sends nothing and stores 0. The server is not
 * asked to reply, so this detects only a connection that the network or
 * the server reset. A server that went silent is detected by the next
 * request, within config->timeout. Errors: AG_ECONNECT, AG_ETIMEDOUT. */
enum ag_code remote_keepalive(struct remote *remote, int interval,
                              int *next_seconds, struct ag_error *err);

/* Return the verified host key's fingerprint ("SHA256:<base64>") and its
 * type name ("ssh-ed25519", ...). Valid while remote is open. */
const char *remote_host_key_fingerprint(const struct remote *remote);
const char *remote_host_key_type(const struct remote *remote);

/* Return the name of the cipher that encrypts what the server sends, such
 * as "aes128-gcm@openssh.com". Valid while remote is open. */
const char *remote_cipher(const struct remote *remote);

/* List dir. With recursive, walk its subfolders depth first, reporting
 * each file under its path relative to dir; folders whose absolute path
 * equals one of skip[0..skip_count) are neither reported nor entered.
 * Without recursive, subfolders are reported as REMOTE_DIR entries and not
 * entered. "." and ".." are never reported. Symbolic links are reported as
 * REMOTE_SYMLINK and never followed. */
enum ag_code remote_list(struct remote *remote, const char *dir, bool recursive,
                         const char *const *skip, size_t skip_count,
                         remote_list_fn fn, void *ctx, struct ag_error *err);

/* Stat path without following a final symlink. entry->rel is set to NULL.
 * Returns AG_ENOENT when path does not exist. */
enum ag_code remote_stat(struct remote *remote, const char *path,
                         struct remote_entry *entry, struct ag_error *err);

/* Send the request that opens path for reading, and return without
 * waiting for the reply. The kernel delays it until the next request, so
 * both reach the server together, and a remote_download() of path takes
 * the handle, usually without waiting. Keeps two such opens: the handle
 * of the one before, and this one in progress. An older handle that no
 * download took is closed. Nothing is reported here: when the open fails,
 * the download opens path again and reports why. */
void remote_open_ahead(struct remote *remote, const char *path);

/* Send the rename of from to to, and return without waiting for the
 * reply; the kernel delays it until the next request. The remote_rename()
 * of the same pair then takes its result and reports it as its own. Does
 * nothing while an earlier rename sent ahead has not been taken, or when
 * the server is not known to reject an existing target by itself, because
 * the agent must not replace a remote file. */
void remote_rename_ahead(struct remote *remote, const char *from,
                         const char *to);

/* Download path, passing each block to fn. Reads expect_size bytes and no
 * more, then stats path without following a final symlink. Fails with
 * AG_ECHANGED when the file ends before expect_size. Fails with
 * AG_ECHANGED too when the file at path then is no regular file, or when
 * its size or mtime differ from the expected values. Fails with AG_ENOENT
 * when the file is gone, before or after the read. fn may have received
 * data before any error. */
enum ag_code remote_download(struct remote *remote, const char *path,
                             uint64_t expect_size, int64_t expect_mtime,
                             remote_data_fn fn, void *ctx,
                             struct ag_error *err);

/* Rename from to to. Never replaces an existing file: returns AG_EEXIST
 * when to exists. */
enum ag_code remote_rename(struct remote *remote, const char *from,
                           const char *to, struct ag_error *err);

/* Delete a file. Returns AG_ENOENT when it does not exist. */
enum ag_code remote_unlink(struct remote *remote, const char *path,
                           struct ag_error *err);

/* Create dir and its missing parents. An existing folder is fine. */
enum ag_code remote_mkdirs(struct remote *remote, const char *dir,
                           struct ag_error *err);

/* Create a new file at path holding data. Returns AG_EEXIST when path
 * exists; the existing file is left as it is. */
enum ag_code remote_write_new(struct remote *remote, const char *path,
                              const void *data, size_t len,
                              struct ag_error *err);

#endif
