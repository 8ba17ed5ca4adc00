/* User authentication: public key, then password, as the config sets and
 * the server offers them. */
#include "remote_internal.h"

#include "agent/log.h"

#include <stdio.h>
#include <string.h>

/* Return whether the comma-separated list methods contains method. */
static bool method_offered(const char *methods, const char *method)
{
  size_t len = strlen(method);
  const char *item = methods;

  while (*item != '\0') {
    const char *comma = strchr(item, ',');
    size_t item_len = comma != NULL ? (size_t)(comma - item) : strlen(item);
    if (item_len == len && memcmp(item, method, len) == 0)
      return true;
    if (comma == NULL)
      break;
    item = comma + 1;
  }
  return false;
}

/* Append "<method> (<libssh2 reason>)" to the list of tried methods. */
static void note_attempt(struct remote *remote, char *tried, size_t size,
                         const char *method)
{
  char *text = NULL;
  char reason[256];
  size_t used = strlen(tried);

  libssh2_session_last_error(remote->session, &text, NULL, 0);
  if (text == NULL || text[0] == '\0')
    text = "rejected";
  log_escape(reason, sizeof(reason), text, strlen(text));
  snprintf(tried + used, size - used, "%s%s (%s)", used > 0 ? ", " : "", method,
           reason);
}

/* Handle the result rc of one authentication attempt. Stores in *done
 * whether it succeeded and notes a rejection in tried. Returns an error
 * only when the connection failed. */
static enum ag_code finish_attempt(struct remote *remote, int rc,
                                   const char *method, char *tried,
                                   size_t tried_size, bool *done,
                                   struct ag_error *err)
{
  *done = rc == 0;
  if (rc == 0)
    return AG_OK;
  if (remote_is_connection_error(rc) || rc == LIBSSH2_ERROR_EAGAIN ||
      rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_ALLOC)
    return remote_fail_call(remote, rc, "authenticate", AG_EAUTH, err);

  note_attempt(remote, tried, tried_size, method);
  return AG_OK;
}

/* Try public key, then password authentication, as configured and as the
 * server offers them. Stores in *done whether the session is
 * authenticated. */
static enum ag_code try_methods(struct remote *remote,
                                const struct config *config,
                                const char *offered, char *tried,
                                size_t tried_size, bool *done,
                                struct ag_error *err)
{
  unsigned user_len = (unsigned)strlen(config->user);
  enum ag_code code = AG_OK;

  *done = false;
  if (config->private_key != NULL && method_offered(offered, "publickey")) {
    /* libssh2 passes the passphrase to strlen() when it decrypts a PEM
     * key, so an empty one stands for "no passphrase". libssh2 1.11
     * derives the public key from the private key file. */
    const char *passphrase =
        config->passphrase != NULL ? config->passphrase : "";
    char method[REMOTE_SHOWN_PATH_SIZE + 32];
    char shown[REMOTE_SHOWN_PATH_SIZE];

    log_escape(shown, sizeof(shown), config->private_key,
               strlen(config->private_key));
    snprintf(method, sizeof(method), "publickey with key '%s'", shown);
    int64_t deadline = remote_deadline(remote);
    int rc;
    do
      rc = libssh2_userauth_publickey_fromfile_ex(
          remote->session, config->user, user_len, NULL, config->private_key,
          passphrase);
    while (remote_wait(remote, rc, deadline));
    code = finish_attempt(remote, rc, method, tried, tried_size, done, err);
    if (code != AG_OK || *done)
      return code;
  }

  if (config->password != NULL && method_offered(offered, "password")) {
    int64_t deadline = remote_deadline(remote);
    int rc;
    do
      rc = libssh2_userauth_password_ex(
          remote->session, config->user, user_len, config->password,
          (unsigned)strlen(config->password), NULL);
    while (remote_wait(remote, rc, deadline));
    code = finish_attempt(remote, rc, "password", tried, tried_size, done, err);
  }
  return code;
}

enum ag_code remote_authenticate(struct remote *remote,
                                 const struct config *config,
                                 struct ag_error *err)
{
  char offered[256];
  char tried[768] = "";
  bool done = false;

  int64_t deadline = remote_deadline(remote);
  char *list = NULL;
  int rc = 0;

  do {
    list = libssh2_userauth_list(remote->session, config->user,
                                 (unsigned)strlen(config->user));
    if (list == NULL)
      rc = libssh2_session_last_errno(remote->session);
  } while (list == NULL && remote_wait(remote, rc, deadline));
  if (list == NULL) {
    /* A NULL list with success means the server accepted "none". */
    if (libssh2_userauth_authenticated(remote->session))
      return AG_OK;
    return remote_fail_call(remote, rc, "request the authentication methods",
                            AG_EAUTH, err);
  }
  /* Copy the list, because the next libssh2 call frees it. */
  log_escape(offered, sizeof(offered), list, strlen(list));

  enum ag_code code =
      try_methods(remote, config, offered, tried, sizeof(tried), &done, err);
  if (code != AG_OK || done)
    return code;

  if (tried[0] == '\0') {
    return ag_error_set(err, AG_EAUTH,
                        "cannot authenticate as user '%s' on %s: the server "
                        "allows %s, and the config sets none of these. Set "
                        "private_key or password_file",
                        remote->user, remote->endpoint, offered);
  }
  return ag_error_set(err, AG_EAUTH,
                      "authentication as user '%s' on %s failed. Tried: %s. "
                      "The server allows: %s. Check the user name, that the "
                      "public key is in the user's authorized_keys on the "
                      "server, and the passphrase or password file",
                      remote->user, remote->endpoint, tried, offered);
}
