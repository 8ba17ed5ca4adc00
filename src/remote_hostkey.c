/* Server host key verification: known_hosts and a pinned SHA-256
 * fingerprint. There is no mode that accepts an unverified key. */
#include "remote_internal.h"

#include "agent/log.h"
#include "agent/platform.h"

#include <openssl/evp.h>

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Size of the known_hosts line buffer. Longer lines are rejected. An entry
 * for an RSA key of 16384 bits takes about 2.8 KB. */
#define KNOWN_HOSTS_LINE_MAX 16384

/* A key string that matches no known_hosts entry, because '-' is not a
 * base64 character. Checking it returns MISMATCH exactly when known_hosts
 * lists some key of the probed type for the host. */
#define PROBE_KEY "-"

struct key_type {
  int known_host_type;    /* LIBSSH2_KNOWNHOST_KEY_* */
  int host_key_type;      /* LIBSSH2_HOSTKEY_TYPE_* */
  const char *name;       /* key type as written in known_hosts */
  const char *algorithms; /* LIBSSH2_METHOD_HOSTKEY names for this type */
};

/* Supported key types in the order of the default HostKeyAlgorithms of
 * OpenSSH 9.2 (`ssh -G`), without certificate and security key types. That
 * default has no SHA-1 "ssh-rsa" signature, so RSA keys are accepted with
 * SHA-2 signatures only here too. */
static const struct key_type key_types[] = {
    {LIBSSH2_KNOWNHOST_KEY_ED25519, LIBSSH2_HOSTKEY_TYPE_ED25519, "ssh-ed25519",
     "ssh-ed25519"},
    {LIBSSH2_KNOWNHOST_KEY_ECDSA_256, LIBSSH2_HOSTKEY_TYPE_ECDSA_256,
     "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"},
    {LIBSSH2_KNOWNHOST_KEY_ECDSA_384, LIBSSH2_HOSTKEY_TYPE_ECDSA_384,
     "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384"},
    {LIBSSH2_KNOWNHOST_KEY_ECDSA_521, LIBSSH2_HOSTKEY_TYPE_ECDSA_521,
     "ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521"},
    {LIBSSH2_KNOWNHOST_KEY_SSHRSA, LIBSSH2_HOSTKEY_TYPE_RSA, "ssh-rsa",
     "rsa-sha2-512,rsa-sha2-256"},
};

#define KEY_TYPE_COUNT (sizeof(key_types) / sizeof(key_types[0]))

static const struct key_type *find_key_type(int host_key_type)
{
  for (size_t i = 0; i < KEY_TYPE_COUNT; i++) {
    if (key_types[i].host_key_type == host_key_type)
      return &key_types[i];
  }
  return NULL;
}

/* Store "SHA256:" and the unpadded base64 SHA-256 of blob in out, as
 * ssh-keygen -l prints it. Returns 0, or -1 if OpenSSL fails. */
static int fingerprint_blob(const void *blob, size_t len, char *out,
                            size_t out_size)
{
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  unsigned char encoded[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];

  if (EVP_Digest(blob, len, digest, &digest_len, EVP_sha256(), NULL) != 1)
    return -1;

  int encoded_len = EVP_EncodeBlock(encoded, digest, (int)digest_len);
  while (encoded_len > 0 && encoded[encoded_len - 1] == '=')
    encoded_len--;
  snprintf(out, out_size, "SHA256:%.*s", encoded_len, (char *)encoded);
  return 0;
}

/* Fingerprint a base64 key blob as stored in known_hosts. */
static int fingerprint_base64(const char *base64, char *out, size_t out_size)
{
  size_t len = strlen(base64);
  unsigned char *blob = malloc(len / 4 * 3 + 3);
  int result = -1;

  if (blob == NULL || len == 0 || len % 4 != 0 || len > INT32_MAX)
    goto out;

  int decoded = EVP_DecodeBlock(blob, (const unsigned char *)base64, (int)len);
  if (decoded < 0)
    goto out;

  /* EVP_DecodeBlock counts the padding as zero bytes. */
  size_t padding = 0;
  while (padding < 2 && base64[len - 1 - padding] == '=')
    padding++;
  result = fingerprint_blob(blob, (size_t)decoded - padding, out, out_size);

out:
  free(blob);
  return result;
}

/* Base64-encode blob into a new string, or return NULL. */
static char *encode_base64(const void *blob, size_t len)
{
  if (len > INT32_MAX / 2)
    return NULL;

  char *out = malloc(4 * ((len + 2) / 3) + 1);
  if (out != NULL)
    EVP_EncodeBlock((unsigned char *)out, blob, (int)len);
  return out;
}

/* Build the name OpenSSH uses for host in known_hosts. OpenSSH compares
 * host names in lower case and writes "[host]:port" for any port but 22,
 * so entries for port 22 never match another port. */
static enum ag_code set_lookup_name(struct remote_known_hosts *known,
                                    const struct config *config,
                                    struct ag_error *err)
{
  char host[256];
  size_t len = strlen(config->host);

  if (len >= sizeof(host)) {
    return ag_error_set(err, AG_EHOSTKEY,
                        "host name is longer than %zu bytes, so it cannot "
                        "be looked up in known_hosts",
                        sizeof(host) - 1);
  }
  for (size_t i = 0; i <= len; i++)
    host[i] = (char)tolower((unsigned char)config->host[i]);

  if (config->port == 22)
    snprintf(known->lookup_name, sizeof(known->lookup_name), "%s", host);
  else
    snprintf(known->lookup_name, sizeof(known->lookup_name), "[%s]:%d", host,
             config->port);
  return AG_OK;
}

/* Remember the key of an "@revoked <hosts> <type> <key>" line. */
static enum ag_code add_revoked(struct remote_known_hosts *known,
                                const char *line, struct ag_error *err)
{
  char marker[16], hosts[1024], type[64];
  char key[KNOWN_HOSTS_LINE_MAX];

  if (sscanf(line, "%15s %1023s %63s %16383s", marker, hosts, type, key) != 4)
    return AG_OK;

  char **grown =
      realloc(known->revoked, (known->revoked_count + 1) * sizeof(*grown));
  if (grown == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory reading known_hosts");
  known->revoked = grown;

  known->revoked[known->revoked_count] = strdup(key);
  if (known->revoked[known->revoked_count] == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory reading known_hosts");
  known->revoked_count++;
  return AG_OK;
}

/* Add one known_hosts line. Lines that libssh2 cannot parse are skipped
 * with a warning, as OpenSSH skips them, so one odd line does not stop the
 * agent. */
static enum ag_code add_line(struct remote_known_hosts *known,
                             LIBSSH2_SESSION *session, const char *path,
                             unsigned line_number, const char *line,
                             struct ag_error *err)
{
  if (strncmp(line, "@revoked", 8) == 0 && isspace((unsigned char)line[8]))
    return add_revoked(known, line, err);

  /* NOTE: certificate authorities are not supported, so host certificates
   * never verify. Use plain host key entries instead. */
  if (line[0] == '@') {
    log_warn("known_hosts file '%s' line %u: ignoring an entry with an "
             "unsupported marker; only @revoked is supported",
             path, line_number);
    return AG_OK;
  }

  if (libssh2_knownhost_readline(known->entries, line, strlen(line),
                                 LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0) {
    char *reason = NULL;
    libssh2_session_last_error(session, &reason, NULL, 0);
    log_warn("known_hosts file '%s' line %u: ignoring an invalid entry (%s)",
             path, line_number, reason != NULL ? reason : "unknown error");
  }
  return AG_OK;
}

/* Read the known_hosts file line by line rather than with
 * libssh2_knownhost_readfile(), which stops at the first line it cannot
 * parse, cuts lines at 4 KB and has no "@revoked" support. */
static enum ag_code load_known_hosts(struct remote_known_hosts *known,
                                     LIBSSH2_SESSION *session, const char *path,
                                     struct ag_error *err)
{
  enum ag_code code = AG_OK;
  char *line = malloc(KNOWN_HOSTS_LINE_MAX);
  FILE *file = NULL;
  unsigned line_number = 0;

  if (line == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory reading known_hosts");

  file = plat_fopen(path, "r");
  if (file == NULL) {
    code = ag_error_set(err, AG_EHOSTKEY,
                        "cannot open known_hosts file '%s': %s. Check the "
                        "known_hosts setting in the config",
                        path, strerror(errno));
    goto out;
  }

  while (fgets(line, KNOWN_HOSTS_LINE_MAX, file) != NULL) {
    size_t len = strlen(line);
    line_number++;

    if (len > 0 && line[len - 1] != '\n' && !feof(file)) {
      code = ag_error_set(err, AG_EHOSTKEY,
                          "known_hosts file '%s' line %u is longer than %d "
                          "bytes",
                          path, line_number, KNOWN_HOSTS_LINE_MAX - 1);
      goto out;
    }
    while (len > 0 && isspace((unsigned char)line[len - 1]))
      line[--len] = '\0';

    const char *text = line + strspn(line, " \t");
    if (*text == '\0' || *text == '#')
      continue;
    code = add_line(known, session, path, line_number, text, err);
    if (code != AG_OK)
      goto out;
  }
  if (ferror(file)) {
    code =
        ag_error_set(err, AG_EHOSTKEY, "cannot read known_hosts file '%s': %s",
                     path, strerror(errno));
  }

out:
  if (file != NULL)
    fclose(file);
  free(line);
  return code;
}

/* Record in known->listed_types which key types known_hosts lists for the
 * host, and return the host key algorithm preference: those types first,
 * then the others, each group in key_types order. */
static void order_algorithms(struct remote_known_hosts *known, char *algorithms,
                             size_t size)
{
  bool listed[KEY_TYPE_COUNT] = {false};

  for (size_t i = 0; i < KEY_TYPE_COUNT && known->entries != NULL; i++) {
    int mask = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_BASE64 |
               key_types[i].known_host_type;
    int rc = libssh2_knownhost_checkp(known->entries, known->lookup_name, -1,
                                      PROBE_KEY, strlen(PROBE_KEY), mask, NULL);
    listed[i] = rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH;
  }

  algorithms[0] = '\0';
  known->listed_types[0] = '\0';
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < KEY_TYPE_COUNT; i++) {
      if (listed[i] != (pass == 0))
        continue;
      size_t used = strlen(algorithms);
      snprintf(algorithms + used, size - used, "%s%s", used > 0 ? "," : "",
               key_types[i].algorithms);
      if (listed[i]) {
        used = strlen(known->listed_types);
        snprintf(known->listed_types + used, sizeof(known->listed_types) - used,
                 "%s%s", used > 0 ? "," : "", key_types[i].name);
      }
    }
  }
}

enum ag_code remote_hostkey_prepare(LIBSSH2_SESSION *session,
                                    const struct config *config,
                                    const char *endpoint,
                                    struct remote_known_hosts *known,
                                    struct ag_error *err)
{
  char algorithms[256];
  enum ag_code code = set_lookup_name(known, config, err);
  if (code != AG_OK)
    return code;

  if (config->known_hosts != NULL) {
    known->entries = libssh2_knownhost_init(session);
    if (known->entries == NULL)
      return ag_error_set(err, AG_ENOMEM, "out of memory for known_hosts");
    code = load_known_hosts(known, session, config->known_hosts, err);
    if (code != AG_OK)
      return code;
  }

  order_algorithms(known, algorithms, sizeof(algorithms));
  log_debug("host key algorithms for %s: %s", endpoint, algorithms);
  if (libssh2_session_method_pref(session, LIBSSH2_METHOD_HOSTKEY,
                                  algorithms) != 0) {
    char *reason = NULL;
    libssh2_session_last_error(session, &reason, NULL, 0);
    return ag_error_set(
        err, AG_EHOSTKEY, "cannot set host key algorithms '%s' for %s: %s",
        algorithms, endpoint, reason != NULL ? reason : "unknown error");
  }
  return AG_OK;
}

static enum ag_code check_revoked(const struct remote_known_hosts *known,
                                  const struct config *config,
                                  const char *endpoint, const char *blob,
                                  size_t blob_len,
                                  const struct remote_host_key *key,
                                  struct ag_error *err)
{
  if (known->revoked_count == 0)
    return AG_OK;

  char *encoded = encode_base64(blob, blob_len);
  if (encoded == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory checking host key");

  bool revoked = false;
  for (size_t i = 0; i < known->revoked_count && !revoked; i++)
    revoked = strcmp(encoded, known->revoked[i]) == 0;
  free(encoded);
  if (!revoked)
    return AG_OK;

  return ag_error_set(err, AG_EHOSTKEY,
                      "host key verification failed for %s: the server "
                      "presented %s key %s, which known_hosts file '%s' "
                      "marks as @revoked. Ask the server's administrator "
                      "for the current key",
                      endpoint, key->type, key->fingerprint,
                      config->known_hosts);
}

static enum ag_code report_unknown_host(const struct remote_known_hosts *known,
                                        const struct config *config,
                                        const char *endpoint,
                                        const struct remote_host_key *key,
                                        struct ag_error *err)
{
  char listed[sizeof(known->listed_types) + 64] = "";

  if (known->listed_types[0] != '\0')
    snprintf(listed, sizeof(listed), " (it lists only %s keys for this host)",
             known->listed_types);

  return ag_error_set(
      err, AG_EHOSTKEY,
      "host key verification failed for %s: known_hosts file '%s' has no "
      "%s key for '%s'%s. The server presented %s key %s. Confirm this "
      "fingerprint with the server's administrator, then run "
      "`ssh-keyscan -p %d %s >> %s` or set host_key_sha256 = %s",
      endpoint, config->known_hosts, key->type, known->lookup_name, listed,
      key->type, key->fingerprint, config->port, config->host,
      config->known_hosts, key->fingerprint);
}

static enum ag_code check_known_hosts(const struct remote_known_hosts *known,
                                      const struct config *config,
                                      const char *endpoint, const char *blob,
                                      size_t blob_len, int host_key_type,
                                      const struct remote_host_key *key,
                                      struct ag_error *err)
{
  const struct key_type *type = find_key_type(host_key_type);
  struct libssh2_knownhost *entry = NULL;
  char expected[REMOTE_FINGERPRINT_SIZE] = "(unreadable key)";

  /* The key type is part of the lookup so that a key of another type for
   * this host counts as unknown, not as changed. */
  int mask =
      LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
      (type != NULL ? type->known_host_type : LIBSSH2_KNOWNHOST_KEY_UNKNOWN);
  int rc = libssh2_knownhost_checkp(known->entries, known->lookup_name, -1,
                                    blob, blob_len, mask, &entry);

  switch (rc) {
  case LIBSSH2_KNOWNHOST_CHECK_MATCH:
    return AG_OK;
  case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
    return report_unknown_host(known, config, endpoint, key, err);
  case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
    if (entry != NULL && entry->key != NULL)
      fingerprint_base64(entry->key, expected, sizeof(expected));
    return ag_error_set(
        err, AG_EHOSTKEY,
        "host key verification failed for %s: the %s key changed. "
        "known_hosts file '%s' expects %s, but the server presented %s. "
        "The server may have a new key, or someone may be intercepting the "
        "connection. Confirm the new fingerprint with the server's "
        "administrator before you replace the entry for '%s'",
        endpoint, key->type, config->known_hosts, expected, key->fingerprint,
        known->lookup_name);
  default:
    return ag_error_set(err, AG_EHOSTKEY,
                        "host key verification failed for %s: libssh2 "
                        "cannot check known_hosts file '%s'",
                        endpoint, config->known_hosts);
  }
}

/* Return whether pin, as configured, names fingerprint. Trailing base64
 * padding in the pin is accepted. */
static bool pin_matches(const char *pin, const char *fingerprint)
{
  size_t len = strlen(pin);

  while (len > 0 && pin[len - 1] == '=')
    len--;
  return len == strlen(fingerprint) && memcmp(pin, fingerprint, len) == 0;
}

enum ag_code remote_hostkey_verify(LIBSSH2_SESSION *session,
                                   const struct config *config,
                                   const char *endpoint,
                                   const struct remote_known_hosts *known,
                                   struct remote_host_key *key,
                                   struct ag_error *err)
{
  size_t blob_len = 0;
  int host_key_type = LIBSSH2_HOSTKEY_TYPE_UNKNOWN;
  const char *blob =
      libssh2_session_hostkey(session, &blob_len, &host_key_type);

  if (blob == NULL || blob_len == 0)
    return ag_error_set(err, AG_EHOSTKEY, "server %s sent no host key",
                        endpoint);

  const struct key_type *type = find_key_type(host_key_type);
  snprintf(key->type, sizeof(key->type), "%s",
           type != NULL ? type->name : "unknown");
  if (fingerprint_blob(blob, blob_len, key->fingerprint,
                       sizeof(key->fingerprint)) != 0)
    return ag_error_set(err, AG_ENOMEM, "cannot hash the host key of %s",
                        endpoint);
  log_debug("%s presented %s host key %s", endpoint, key->type,
            key->fingerprint);

  if (known->entries == NULL && config->host_key_sha256 == NULL) {
    return ag_error_set(err, AG_EHOSTKEY,
                        "cannot verify the host key of %s: the config sets "
                        "neither known_hosts nor host_key_sha256. The server "
                        "presented %s key %s",
                        endpoint, key->type, key->fingerprint);
  }

  enum ag_code code =
      check_revoked(known, config, endpoint, blob, blob_len, key, err);
  if (code == AG_OK && known->entries != NULL)
    code = check_known_hosts(known, config, endpoint, blob, blob_len,
                             host_key_type, key, err);
  if (code != AG_OK)
    return code;

  if (config->host_key_sha256 != NULL &&
      !pin_matches(config->host_key_sha256, key->fingerprint)) {
    return ag_error_set(
        err, AG_EHOSTKEY,
        "host key verification failed for %s: host_key_sha256 expects %s, "
        "but the server presented %s key %s. Unless known_hosts lists other "
        "types for the host, the agent asks for ssh-ed25519, then "
        "ecdsa-sha2-nistp256/384/521, then ssh-rsa, so pin the first type "
        "the server has. If the key changed, confirm the new fingerprint "
        "with the server's administrator",
        endpoint, config->host_key_sha256, key->type, key->fingerprint);
  }
  return AG_OK;
}

void remote_known_hosts_free(struct remote_known_hosts *known)
{
  if (known->entries != NULL)
    libssh2_knownhost_free(known->entries);
  for (size_t i = 0; i < known->revoked_count; i++)
    free(known->revoked[i]);
  free(known->revoked);
  known->entries = NULL;
  known->revoked = NULL;
  known->revoked_count = 0;
}
