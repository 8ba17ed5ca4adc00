/* Private interface between remote.c (session and SFTP) and
 * remote_hostkey.c (host key verification). Not part of the public API. */
#ifndef AGENT_REMOTE_INTERNAL_H
#define AGENT_REMOTE_INTERNAL_H

#include <libssh2.h>

#include <stddef.h>

#include "agent/config.h"
#include "agent/error.h"

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

#endif
