/* SSH session lifecycle: TCP connection, handshake, host key check,
 * authentication and SFTP start in remote_connect(), then remote_close().
 * remote_internal.h lists the files that contain the other steps and the
 * SFTP operations.
 *
 * All libssh2 calls of the agent are in the remote*.c files. The session
 * runs in libssh2's non-blocking mode, and remote_wait() bounds each call
 * by the configured timeout (remote_internal.h states the rule). The
 * socket comes from agent/sock.h. */
#include "agent/remote.h"

#include "agent/log.h"
#include "agent/platform.h"
#include "agent/sock.h"
#include "remote_internal.h"

#include <libssh2.h>
#include <libssh2_sftp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Used when a hand-built config has no timeout. config_load() requires a
 * positive one. */
#define DEFAULT_TIMEOUT_SECONDS 30

/* libssh2_init() counts its calls without a lock, so it runs once per
 * process, before the first session. */
#ifndef __STDC_NO_THREADS__
#include <threads.h>

static once_flag library_once = ONCE_FLAG_INIT;

static void init_library_once(void)
{
  /* libssh2 1.11 returns 0 in every case. */
  (void)libssh2_init(0);
}

static void init_library(void)
{
  call_once(&library_once, init_library_once);
}
#else
/* NOTE: without C11 threads the first remote_connect() must finish
 * before a second thread calls it. */
static void init_library(void)
{
  static bool library_ready;

  if (!library_ready)
    (void)libssh2_init(0);
  library_ready = true;
}
#endif

/* Return whether the server is OpenSSH, going by the version string it
 * sent. OpenSSH's SFTP server, like SFTP version 3 itself, fails a rename
 * whose target exists, and libssh2 speaks version 3 only.
 * NOTE: an OpenSSH sshd whose sftp subsystem is another program passes as
 * OpenSSH too. If that program replaces the target, the rule breaks. */
static bool server_rejects_existing_target(struct remote *remote)
{
  static const char openssh[] = "SSH-2.0-OpenSSH_";
  const char *banner = libssh2_session_banner_get(remote->session);
  bool rejects =
      banner != NULL && strncmp(banner, openssh, sizeof(openssh) - 1) == 0;

  log_debug("%s runs %s; renames %s", remote->endpoint,
            rejects ? "OpenSSH" : "another SSH server",
            rejects ? "rely on the server rejecting an existing target"
                    : "look for an existing target first");
  return rejects;
}

/* Create the libssh2 session and run the SSH handshake, after loading
 * known_hosts so that the host key algorithms can be chosen first. */
static enum ag_code start_session(struct remote *remote,
                                  const struct config *config,
                                  struct remote_known_hosts *known,
                                  struct ag_error *err)
{
  remote->session = libssh2_session_init_ex(NULL, NULL, NULL, remote);
  if (remote->session == NULL)
    return ag_error_set(err, AG_ENOMEM,
                        "cannot create an SSH session for "
                        "%s: out of memory",
                        remote->endpoint);
  remote_watch_socket(remote);

  enum ag_code code = remote_hostkey_prepare(remote->session, config,
                                             remote->endpoint, known, err);
  if (code == AG_OK)
    code = remote_algorithms_prepare(remote->session, config, remote->endpoint,
                                     err);
  if (code != AG_OK)
    return code;

  /* Every call from here on returns LIBSSH2_ERROR_EAGAIN instead of
   * waiting, and remote_wait() waits against the call's deadline. */
  libssh2_session_set_blocking(remote->session, 0);
  int64_t deadline = remote_deadline(remote);
  int rc;
  do
    rc = libssh2_session_handshake(remote->session, remote->socket);
  while (remote_wait(remote, rc, deadline));
  if (rc == LIBSSH2_ERROR_KEX_FAILURE && config->ciphers != NULL) {
    remote_break(remote);
    return ag_error_set(err, AG_ECONNECT,
                        "cannot complete the SSH handshake on %s: the "
                        "algorithm negotiation failed, and the server may "
                        "support none of the ciphers '%s' that [server] "
                        "ciphers sets. Add a cipher the server offers, or "
                        "remove the setting to offer the default list",
                        remote->endpoint, config->ciphers);
  }
  if (rc != 0)
    return remote_fail_call(remote, rc, "complete the SSH handshake",
                            AG_ECONNECT, err);
  remote->handshake_done = true;
  remote->rename_rejects_existing = server_rejects_existing_target(remote);
  remote_algorithms_log(remote->session, remote->endpoint);
  return AG_OK;
}

/* Open the SFTP channel on the authenticated session. */
static enum ag_code start_sftp(struct remote *remote, struct ag_error *err)
{
  int64_t deadline = remote_deadline(remote);
  int rc = 0;

  do {
    remote->sftp = libssh2_sftp_init(remote->session);
    if (remote->sftp == NULL)
      rc = libssh2_session_last_errno(remote->session);
  } while (remote->sftp == NULL && remote_wait(remote, rc, deadline));
  if (remote->sftp == NULL)
    return remote_fail_call(remote, rc, "start the SFTP subsystem", AG_ECONNECT,
                            err);
  return AG_OK;
}

static void set_endpoint(struct remote *remote, const struct config *config)
{
  char host[256];

  log_escape(host, sizeof(host), config->host, strlen(config->host));
  if (strchr(config->host, ':') != NULL)
    snprintf(remote->endpoint, sizeof(remote->endpoint), "[%s]:%d", host,
             config->port);
  else
    snprintf(remote->endpoint, sizeof(remote->endpoint), "%s:%d", host,
             config->port);
  log_escape(remote->user, sizeof(remote->user), config->user,
             strlen(config->user));
}

enum ag_code remote_connect(const struct config *config, struct remote **out,
                            struct ag_error *err)
{
  struct remote_known_hosts known;
  enum ag_code code = AG_OK;
  struct remote *remote = calloc(1, sizeof(*remote));

  *out = NULL;
  memset(&known, 0, sizeof(known));
  if (remote == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory connecting");
  if (config->host == NULL || config->user == NULL) {
    free(remote);
    return ag_error_set(err, AG_ECONFIG,
                        "cannot connect: the config sets "
                        "no host or no user");
  }
  remote->socket = SOCK_INVALID;
  remote->timeout =
      config->timeout > 0 ? config->timeout : DEFAULT_TIMEOUT_SECONDS;
  set_endpoint(remote, config);

  /* A missing or exposed key is a config problem, so it is reported before
   * any network traffic instead of as a failed login. */
  if (config->private_key != NULL)
    code = plat_check_private_file(config->private_key, err);
  init_library();
  if (code == AG_OK)
    code = sock_connect(config->host, config->port, remote->timeout * 1000,
                        &remote->socket, err);
  if (code == AG_OK)
    code = start_session(remote, config, &known, err);
  if (code == AG_OK)
    code = remote_hostkey_verify(remote->session, config, remote->endpoint,
                                 &known, &remote->host_key, err);
  if (code == AG_OK)
    code = remote_authenticate(remote, config, err);
  if (code == AG_OK)
    code = start_sftp(remote, err);
  if (code != AG_OK)
    goto out;

  log_debug("connected to %s as user '%s' (%s host key %s)", remote->endpoint,
            remote->user, remote->host_key.type, remote->host_key.fingerprint);
  *out = remote;
  remote = NULL;

out:
  remote_known_hosts_free(&known);
  remote_close(remote);
  return code;
}

/* Close the SFTP channel. After a timeout the session is broken, so a
 * second call fails at once and frees the channel. */
static void shutdown_sftp(struct remote *remote, int64_t deadline)
{
  int rc;

  do
    rc = libssh2_sftp_shutdown(remote->sftp);
  while (remote_wait(remote, rc, deadline));
  if (rc == LIBSSH2_ERROR_EAGAIN)
    (void)libssh2_sftp_shutdown(remote->sftp);
  remote->sftp = NULL;
}

/* Send SSH_MSG_DISCONNECT unless the session is broken, then free the
 * session. After a timeout, a second call frees it at once. */
static void free_session(struct remote *remote, int64_t deadline)
{
  int rc;

  if (remote->handshake_done && !remote->broken) {
    do
      rc = libssh2_session_disconnect(remote->session, "normal shutdown");
    while (remote_wait(remote, rc, deadline));
  }
  do
    rc = libssh2_session_free(remote->session);
  while (remote_wait(remote, rc, deadline));
  if (rc == LIBSSH2_ERROR_EAGAIN)
    (void)libssh2_session_free(remote->session);
  remote->session = NULL;
}

void remote_close(struct remote *remote)
{
  if (remote == NULL)
    return;

  /* The whole shutdown gets one timeout. On a broken session every step
   * fails at once without network traffic and only frees memory. */
  if (remote->sftp != NULL)
    remote_drop_ahead(remote);
  int64_t deadline = remote_deadline(remote);
  if (remote->sftp != NULL)
    shutdown_sftp(remote, deadline);
  if (remote->session != NULL)
    free_session(remote, deadline);
  sock_close(remote->socket);
  free(remote);
}

enum ag_code remote_keepalive(struct remote *remote, int interval,
                              int *next_seconds, struct ag_error *err)
{
  *next_seconds = 0;
  if (interval <= 0)
    return AG_OK;

  if (remote->broken)
    return ag_error_set(err, AG_ECONNECT,
                        "cannot send a keepalive message on %s: the "
                        "connection was closed after an earlier failure. "
                        "Connect again",
                        remote->endpoint);

  /* Keepalives are configured for this call only, so that the interval
   * can change from call to call and libssh2 sends none by itself.
   * want_reply is 0 because libssh2 keeps every reply that the agent does
   * not read in the session, where they would pile up.
   * libssh2_keepalive_send() never returns LIBSSH2_ERROR_EAGAIN, so there
   * is nothing to wait for.
   * NOTE: if the socket's send buffer is full, libssh2 keeps the rest of
   * the keepalive packet, and each later call returns EAGAIN until it
   * times out. The buffer fills only when the server stops reading. */
  libssh2_keepalive_config(remote->session, 0, (unsigned)interval);
  int rc = libssh2_keepalive_send(remote->session, next_seconds);
  libssh2_keepalive_config(remote->session, 0, 0);

  if (rc != 0)
    return remote_fail_call(remote, rc, "send a keepalive message", AG_ECONNECT,
                            err);
  return AG_OK;
}

const char *remote_host_key_fingerprint(const struct remote *remote)
{
  return remote->host_key.fingerprint;
}

const char *remote_host_key_type(const struct remote *remote)
{
  return remote->host_key.type;
}

const char *remote_cipher(const struct remote *remote)
{
  const char *name =
      libssh2_session_methods(remote->session, LIBSSH2_METHOD_CRYPT_SC);

  return name != NULL ? name : "";
}
