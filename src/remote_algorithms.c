/* Cipher and MAC preferences for the SSH handshake, and the log line that
 * names the algorithms the server chose. Key exchange and host key
 * algorithms are left to libssh2 and remote_hostkey.c. */
#include "remote_internal.h"

#include "agent/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for any preference list: libssh2 1.11.1 supports 15 ciphers and 13
 * MACs, each name at most 29 bytes. */
#define ALGORITHM_LIST_SIZE 1024

/* Ciphers the agent offers first, most preferred first. The server takes
 * the first one in this order that it supports too. libssh2 1.11.1 runs
 * chacha20-poly1305 in portable C over whole packets, but AES through one
 * OpenSSL call per 16-byte block. So AES took more CPU time per byte in
 * spite of the processor's AES instructions: downloading 80 MiB cost the
 * agent 0.39 s with chacha20-poly1305, 0.55 s with AES-CTR and 0.75 s
 * with AES-GCM (docs/performance.md). AES-CTR goes with the
 * encrypt-then-MAC MACs below. */
static const char *const preferred_ciphers[] = {
    "chacha20-poly1305@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
};

/* MACs the agent offers first. The encrypt-then-MAC variants authenticate
 * the ciphertext. The MAC is unused with AES-GCM and chacha20-poly1305. */
static const char *const preferred_macs[] = {
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
};

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

static bool is_listed(const char *name, const char *const *names, size_t count)
{
  for (size_t i = 0; i < count; i++) {
    if (strcmp(names[i], name) == 0)
      return true;
  }
  return false;
}

/* Append name to the comma-separated list. Returns false when it does not
 * fit. */
static bool append_name(char *list, size_t size, const char *name)
{
  size_t used = strlen(list);
  int written =
      snprintf(list + used, size - used, "%s%s", used > 0 ? "," : "", name);

  return written >= 0 && (size_t)written < size - used;
}

/* Write into list the preferred names that libssh2 supports, then every
 * other supported name in libssh2's own order, so that the agent offers
 * the same algorithms as libssh2 does by default, only ordered. */
static void order_supported(const char *const *supported,
                            size_t supported_count,
                            const char *const *preferred,
                            size_t preferred_count, char *list, size_t size)
{
  list[0] = '\0';
  for (size_t i = 0; i < preferred_count; i++) {
    if (is_listed(preferred[i], supported, supported_count))
      (void)append_name(list, size, preferred[i]);
  }
  for (size_t i = 0; i < supported_count; i++) {
    if (!is_listed(supported[i], preferred, preferred_count))
      (void)append_name(list, size, supported[i]);
  }
}

/* Check that each name of the config's comma-separated list is one that
 * libssh2 supports, and copy the list. */
static enum ag_code check_configured(const char *configured,
                                     const char *const *supported,
                                     size_t supported_count, char *list,
                                     size_t size, struct ag_error *err)
{
  char supported_text[ALGORITHM_LIST_SIZE] = "";
  char name[128];
  const char *next = configured;

  for (size_t i = 0; i < supported_count; i++) {
    size_t used = strlen(supported_text);
    snprintf(supported_text + used, sizeof(supported_text) - used, "%s%s",
             i > 0 ? ", " : "", supported[i]);
  }

  while (*next != '\0') {
    size_t len = strcspn(next, ",");
    snprintf(name, sizeof(name), "%.*s", (int)len, next);
    if (len >= sizeof(name) || !is_listed(name, supported, supported_count))
      return ag_error_set(err, AG_ECONFIG,
                          "[server] ciphers names '%s', which this build's "
                          "libssh2 does not support. Use names from: %s",
                          name, supported_text);
    next += len;
    if (*next == ',')
      next++;
  }
  if (strlen(configured) >= size)
    return ag_error_set(err, AG_ECONFIG, "[server] ciphers is too long");
  snprintf(list, size, "%s", configured);
  return AG_OK;
}

/* Set the preference of both directions of one kind of algorithm. */
static enum ag_code set_preference(LIBSSH2_SESSION *session, int to_server,
                                   int from_server, const char *kind,
                                   const char *list, const char *endpoint,
                                   struct ag_error *err)
{
  if (libssh2_session_method_pref(session, to_server, list) == 0 &&
      libssh2_session_method_pref(session, from_server, list) == 0)
    return AG_OK;

  char *reason = NULL;
  libssh2_session_last_error(session, &reason, NULL, 0);
  return ag_error_set(err, AG_ECONNECT, "cannot set the %s '%s' for %s: %s",
                      kind, list, endpoint,
                      reason != NULL ? reason : "unknown error");
}

/* Build the list of one kind of algorithm: the configured one when
 * configured is not NULL, otherwise the supported ones in the order of
 * preferred. */
static enum ag_code build_list(LIBSSH2_SESSION *session, int method,
                               const char *configured,
                               const char *const *preferred,
                               size_t preferred_count, char *list, size_t size,
                               struct ag_error *err)
{
  const char **supported = NULL;
  int count = libssh2_session_supported_algs(session, method, &supported);
  if (count <= 0)
    return ag_error_set(err, AG_ENOMEM,
                        "cannot read the algorithms libssh2 supports: out of "
                        "memory");

  enum ag_code code = AG_OK;
  if (configured != NULL)
    code =
        check_configured(configured, supported, (size_t)count, list, size, err);
  else
    order_supported(supported, (size_t)count, preferred, preferred_count, list,
                    size);
  libssh2_free(session, (void *)supported);
  return code;
}

enum ag_code remote_algorithms_prepare(LIBSSH2_SESSION *session,
                                       const struct config *config,
                                       const char *endpoint,
                                       struct ag_error *err)
{
  char ciphers[ALGORITHM_LIST_SIZE];
  char macs[ALGORITHM_LIST_SIZE];

  enum ag_code code = build_list(
      session, LIBSSH2_METHOD_CRYPT_CS, config->ciphers, preferred_ciphers,
      COUNT_OF(preferred_ciphers), ciphers, sizeof(ciphers), err);
  if (code == AG_OK)
    code = build_list(session, LIBSSH2_METHOD_MAC_CS, NULL, preferred_macs,
                      COUNT_OF(preferred_macs), macs, sizeof(macs), err);
  if (code != AG_OK)
    return code;

  log_debug("ciphers offered to %s: %s", endpoint, ciphers);
  code =
      set_preference(session, LIBSSH2_METHOD_CRYPT_CS, LIBSSH2_METHOD_CRYPT_SC,
                     "ciphers", ciphers, endpoint, err);
  if (code == AG_OK)
    code = set_preference(session, LIBSSH2_METHOD_MAC_CS, LIBSSH2_METHOD_MAC_SC,
                          "MACs", macs, endpoint, err);
  return code;
}

static const char *method_name(LIBSSH2_SESSION *session, int method)
{
  const char *name = libssh2_session_methods(session, method);

  return name != NULL ? name : "none";
}

/* Return the MAC of one direction as OpenSSH shows it: "<implicit>" for
 * the AEAD ciphers, which authenticate the packets themselves. libssh2
 * names a made-up MAC for AES-GCM and the unused negotiated one for
 * chacha20-poly1305. */
static const char *mac_name(LIBSSH2_SESSION *session, int cipher_method,
                            int mac_method)
{
  const char *cipher = method_name(session, cipher_method);

  if (strstr(cipher, "-gcm@") != NULL ||
      strcmp(cipher, "chacha20-poly1305@openssh.com") == 0)
    return "<implicit>";
  return method_name(session, mac_method);
}

void remote_algorithms_log(LIBSSH2_SESSION *session, const char *endpoint)
{
  if (!log_enabled(LOG_LEVEL_DEBUG))
    return;

  log_debug("negotiated with %s: key exchange %s, client->server cipher %s "
            "MAC %s, server->client cipher %s MAC %s",
            endpoint, method_name(session, LIBSSH2_METHOD_KEX),
            method_name(session, LIBSSH2_METHOD_CRYPT_CS),
            mac_name(session, LIBSSH2_METHOD_CRYPT_CS, LIBSSH2_METHOD_MAC_CS),
            method_name(session, LIBSSH2_METHOD_CRYPT_SC),
            mac_name(session, LIBSSH2_METHOD_CRYPT_SC, LIBSSH2_METHOD_MAC_SC));
}
