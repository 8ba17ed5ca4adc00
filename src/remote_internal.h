/* Private interface of the remote module, shared by its files:
 *   remote.c             session lifecycle: TCP, handshake, connect, close
 *   remote_wait.c        deadlines for libssh2 calls, broken sessions
 *   remote_auth.c        user authentication
 *   remote_error.c       libssh2 and SFTP errors as ag_code and messages
 *   remote_algorithms.c  cipher and MAC preferences, negotiated algorithms
 *   remote_hostkey.c     host key verification
 *   remote_list.c        folder listing
 *   remote_sftp.c        stat, rename, delete, mkdir, create
 *   remote_download.c    download with its change check
 *   remote_ahead.c       opens and renames sent ahead of their use
 * Not part of the public API. */
#ifndef AGENT_REMOTE_INTERNAL_H
#define AGENT_REMOTE_INTERNAL_H

#include <libssh2.h>
#include <libssh2_sftp.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/config.h"
#include "agent/error.h"
#include "agent/remote.h"
#include "agent/sock.h"

/* Maximum length of a remote path in bytes. Linux, where most SFTP servers
 * run, limits paths to 4096 bytes including the NUL. */
#define REMOTE_PATH_MAX 4095

/* Escaped remote paths in messages are cut to this size. */
#define REMOTE_SHOWN_PATH_SIZE 320

/* "SHA256:" plus 43 base64 characters, the NUL and some room. */
#define REMOTE_FINGERPRINT_SIZE 64
#define REMOTE_KEY_TYPE_SIZE 32

/* The host key the server presented during the handshake. */
struct remote_host_key {
  char type[REMOTE_KEY_TYPE_SIZE];           /* "ssh-ed25519", ... */
  char fingerprint[REMOTE_FINGERPRINT_SIZE]; /* "SHA256:<base64>" */
};

/* Known host keys loaded before the handshake. */
struct remote_known_hosts {
  LIBSSH2_KNOWNHOSTS *entries; /* NULL when the config names no file */
  char **revoked;              /* base64 key blobs of "@revoked" lines */
  size_t revoked_count;
  /* The name OpenSSH stores for this server: "host" on port 22, otherwise
   * "[host]:port". */
  char lookup_name[270];
  /* Key type names that known_hosts lists for lookup_name, comma
   * separated, or "" when it lists none. */
  char listed_types[128];
};

/* Load config->known_hosts (when set) into known and set the session's
 * LIBSSH2_METHOD_HOSTKEY preference so that the server presents a key of a
 * type that known_hosts lists for this host, the way OpenSSH orders its
 * host key algorithms. Call before libssh2_session_handshake(). endpoint is
 * "host:port" as shown in messages. On failure returns AG_EHOSTKEY (the
 * file cannot be read or parsed, with file and line) or AG_ENOMEM. The
 * caller releases known with remote_known_hosts_free() in every case. */
enum ag_code remote_hostkey_prepare(LIBSSH2_SESSION *session,
                                    const struct config *config,
                                    const char *endpoint,
                                    struct remote_known_hosts *known,
                                    struct ag_error *err);

/* Verify the key the server presented in the handshake against known and
 * config->host_key_sha256. Each configured source must match. Stores the
 * presented key's type and fingerprint in key, also on failure. Returns
 * AG_EHOSTKEY for an unknown, changed or revoked key, or when neither
 * source is configured. */
enum ag_code remote_hostkey_verify(LIBSSH2_SESSION *session,
                                   const struct config *config,
                                   const char *endpoint,
                                   const struct remote_known_hosts *known,
                                   struct remote_host_key *key,
                                   struct ag_error *err);

/* Free what remote_hostkey_prepare() loaded. Accepts a zeroed struct. */
void remote_known_hosts_free(struct remote_known_hosts *known);

/* ---- Algorithms (remote_algorithms.c) ------------------------------- */

/* Set the session's cipher and MAC preferences for both directions. Call
 * before libssh2_session_handshake(). The ciphers are config->ciphers when
 * set, otherwise every cipher libssh2 supports, with chacha20-poly1305,
 * then AES-GCM, then AES-CTR first. The MACs are every MAC libssh2
 * supports, with the SHA-2 encrypt-then-MAC ones first. Returns AG_ECONFIG
 * when config->ciphers names a cipher that libssh2 does not support, with
 * the supported names in the message, and AG_ECONNECT or AG_ENOMEM when
 * libssh2 fails. */
enum ag_code remote_algorithms_prepare(LIBSSH2_SESSION *session,
                                       const struct config *config,
                                       const char *endpoint,
                                       struct ag_error *err);

/* Log at debug level the key exchange, cipher and MAC algorithms that the
 * handshake negotiated. */
void remote_algorithms_log(LIBSSH2_SESSION *session, const char *endpoint);

/* ---- Session (remote.c) ---------------------------------------------- */

/* One SSH session with its SFTP channel, the handle that agent/remote.h
 * declares opaque. */
struct remote {
  LIBSSH2_SESSION *session;
  LIBSSH2_SFTP *sftp;
  sock_handle socket; /* SOCK_INVALID once broken */
  bool handshake_done;
  /* A call timed out or the connection failed (remote_break()). Later
   * requests fail at once, and remote_close() waits for nothing. */
  bool broken;
  /* libssh2's own receive callback, which the agent's one calls. */
  libssh2_cb_generic *receive_default;
  /* A receive found the socket empty, and remote_wait() has not polled it
   * since, so the agent's receive callback reports EAGAIN without a system
   * call. */
  bool receive_drained;
  /* libssh2's own send callback, which the agent's one calls. */
  libssh2_cb_generic *send_default;
  /* The kernel may delay the next sends until a send without this flag
   * or a remote_wait(), so that requests leave in one segment. */
  bool delay_sends;
  /* The last send left data in the kernel, which remote_wait() pushes out
   * before it waits. */
  bool sends_delayed;
  /* The server follows SFTP version 3 in rejecting a rename onto an
   * existing file, so remote_rename() needs no look first. */
  bool rename_rejects_existing;
  /* Requests sent ahead (remote_ahead.c): an open whose reply no call
   * has taken, an open whose handle waits for its download, and a rename
   * with its result once taken (move_settled). */
  char *opening_path;
  char *opened_path;
  LIBSSH2_SFTP_HANDLE *opened_handle;
  char *move_from;
  char *move_to;
  bool move_settled;
  int move_rc;
  unsigned long move_status;
  int timeout;        /* seconds */
  char endpoint[300]; /* "host:port" for messages, escaped */
  char user[128];     /* user name for messages, escaped */
  struct remote_host_key host_key;
};

/* ---- Deadlines (remote_wait.c) -------------------------------------- */

/* The deadline rule: each libssh2 call gets the configured timeout from
 * its first attempt until it returns something other than
 * LIBSSH2_ERROR_EAGAIN. A call that returned EAGAIN is repeated with the
 * same arguments until then, as libssh2's non-blocking mode requires.
 * libssh2_sftp_read() returns as soon as any data has arrived (one SFTP
 * reply, at most 30000 bytes), so a download fails only after a whole
 * timeout without data. A slow link that keeps delivering never times
 * out, and a frozen server does. A single request such as stat, open or
 * rename gets one timeout for its reply. */

/* Return the deadline of a libssh2 call that starts now, in
 * plat_monotonic_ms() time. */
int64_t remote_deadline(const struct remote *remote);

/* Handle the result rc of a non-blocking libssh2 call (for calls that
 * return a pointer, libssh2_session_last_errno() after a NULL). When rc
 * is LIBSSH2_ERROR_EAGAIN, wait until the socket is ready in the
 * directions libssh2 is blocked on and return true: the caller then
 * repeats the call. Otherwise return false. When deadline_ms passes
 * first, or the session is broken, the session is broken with
 * remote_break() and false is returned with rc still EAGAIN, which
 * remote_fail_call() reports as AG_ETIMEDOUT. */
bool remote_wait(struct remote *remote, int rc, int64_t deadline_ms);

/* Return whether the libssh2 call that returned rc has sent its whole
 * request and waits for the reply. libssh2 sends no other packet while it
 * keeps the unsent rest of one, so a second request may only follow a
 * first one for which this is true. */
bool remote_request_sent(const struct remote *remote, int rc);

/* Route the session's sends and receives through the agent's callbacks.
 * The receive callback skips the recv() calls that cannot find data:
 * after one recv() found the socket empty, every further receive reports
 * EAGAIN at once until remote_wait() has polled the socket. The send
 * callback lets the kernel delay sends while remote->delay_sends is set.
 * Call once, right after libssh2_session_init_ex(). */
void remote_watch_socket(struct remote *remote);

/* Mark the session broken: close its socket at once and make libssh2's
 * send and receive fail without touching the socket, so that every later
 * libssh2 call, libssh2_sftp_close_handle() and remote_close() included,
 * fails or frees at once. Does nothing when already broken. */
void remote_break(struct remote *remote);

/* ---- Authentication (remote_auth.c) ----------------------------------- */

/* Authenticate as config->user with the methods the config sets. The
 * error names the methods tried and those the server allows, and never
 * the passphrase or password. Returns AG_EAUTH when no configured method
 * succeeds. A failed libssh2 call is reported by remote_fail_call(), as
 * AG_ECONNECT, AG_ETIMEDOUT, AG_ENOMEM or AG_EAUTH. */
enum ag_code remote_authenticate(struct remote *remote,
                                 const struct config *config,
                                 struct ag_error *err);

/* ---- Errors (remote_error.c) ------------------------------------------ */

/* Return whether the libssh2 error rc means the connection is unusable.
 * LIBSSH2_ERROR_EAGAIN and LIBSSH2_ERROR_TIMEOUT are not among them. */
bool remote_is_connection_error(int rc);

/* Record an SFTP status reply for the request described by what, such as
 * "stat '/inbox/a.xml'". Returns the code stored in err. */
enum ag_code remote_fail_status(struct remote *remote, unsigned long status,
                                const char *what, struct ag_error *err);

/* Record the failure rc of a libssh2 call for the request described by
 * what. LIBSSH2_ERROR_EAGAIN, which remote_wait() leaves when the
 * deadline passed, becomes AG_ETIMEDOUT. A connection error becomes
 * AG_ECONNECT and breaks the session. Codes that name no connection,
 * timeout or SFTP status become fallback. Returns the code stored in
 * err. */
enum ag_code remote_fail_call(struct remote *remote, int rc, const char *what,
                              enum ag_code fallback, struct ag_error *err);

/* Record the failure rc of an SFTP request of the given kind on path, as
 * remote_fail_call() with fallback AG_EREMOTE. */
enum ag_code remote_fail_path(struct remote *remote, int rc,
                              const char *operation, const char *path,
                              struct ag_error *err);

/* Reject paths that are empty or longer than REMOTE_PATH_MAX with
 * AG_EREMOTE, and any request on a broken session with AG_ECONNECT.
 * operation names the request in the message. */
enum ag_code remote_check_path(struct remote *remote, const char *operation,
                               const char *path, struct ag_error *err);

/* ---- Handles (remote_sftp.c) ----------------------------------------- */

/* Open path (len bytes) as libssh2_sftp_open_ex() does, within one
 * deadline. Returns NULL on failure, with the libssh2 error in *rc. Takes
 * the handle of an open of path for reading that remote_open_ahead()
 * sent. */
LIBSSH2_SFTP_HANDLE *remote_open_handle(struct remote *remote, const char *path,
                                        size_t len, unsigned long flags,
                                        long mode, int open_type, int *rc);

/* libssh2_sftp_open_ex() within one deadline, without looking at the
 * opens sent ahead. A call while an open is in progress takes that open's
 * reply. */
LIBSSH2_SFTP_HANDLE *remote_open_wait(struct remote *remote, const char *path,
                                      size_t len, unsigned long flags,
                                      long mode, int open_type, int *rc);

/* libssh2_sftp_rename_ex() of from to to within one deadline, without
 * overwrite. Returns its result, with the SFTP status reply in *status, or
 * LIBSSH2_FX_OK when there was none. */
int remote_rename_wait(struct remote *remote, const char *from, const char *to,
                       unsigned long *status);

/* Close handle within one deadline and free it in every case, also on a
 * broken session. Returns 0 or the libssh2 error. */
int remote_close_handle(struct remote *remote, LIBSSH2_SFTP_HANDLE *handle);

/* ---- Requests sent ahead (remote_ahead.c) ---------------------------- */

/* Take the handle of path (len bytes) that remote_open_ahead() opened:
 * set *found and return the handle, or NULL with the libssh2 error in
 * *rc. When path is NULL or was not opened ahead, *found stays false and
 * the reply of an open in progress is taken first, so that libssh2 can
 * start another open. */
LIBSSH2_SFTP_HANDLE *remote_take_opened(struct remote *remote, const char *path,
                                        size_t len, bool *found, int *rc);

/* Take the result of the rename of from to to that remote_rename_ahead()
 * sent: return true with its libssh2 result in *rc and its SFTP status in
 * *status. Otherwise return false, after taking the reply of a rename in
 * progress so that libssh2 can start another one. */
bool remote_take_moved(struct remote *remote, const char *from, const char *to,
                       int *rc, unsigned long *status);

/* Close the handles and forget the results of requests sent ahead. On a
 * broken session only free them. */
void remote_drop_ahead(struct remote *remote);

/* ---- Listing (remote_list.c) ------------------------------------------ */

/* Fill entry from attrs. rel is stored as given, not copied. Missing size
 * or mtime become 0, and missing permission bits make the kind
 * REMOTE_OTHER. */
void remote_fill_entry(struct remote_entry *entry, const char *rel,
                       size_t rel_len, const LIBSSH2_SFTP_ATTRIBUTES *attrs);

#endif
