/* Config reload for the service: load the file again, keep the keys that
 * only a restart can change, and tell whether the connection must be made
 * again. */
#include "daemon_internal.h"

#include <stdlib.h>
#include <string.h>

#include "agent/log.h"

static bool same_text(const char *a, const char *b)
{
  if (a == NULL || b == NULL)
    return a == b;
  return strcmp(a, b) == 0;
}

/* Return whether the settings that remote_connect() reads differ. The
 * secrets are compared too, because a new password or passphrase file
 * content needs a new login. */
static bool server_settings_differ(const struct config *a,
                                   const struct config *b)
{
  return !same_text(a->host, b->host) || a->port != b->port ||
         !same_text(a->user, b->user) ||
         !same_text(a->private_key, b->private_key) ||
         !same_text(a->passphrase_file, b->passphrase_file) ||
         !same_text(a->password_file, b->password_file) ||
         !same_text(a->passphrase, b->passphrase) ||
         !same_text(a->password, b->password) ||
         !same_text(a->known_hosts, b->known_hosts) ||
         !same_text(a->host_key_sha256, b->host_key_sha256) ||
         a->timeout != b->timeout || !same_text(a->ciphers, b->ciphers);
}

/* Replace *fresh by a copy of current when they differ, and log that the
 * new value of key takes a restart. */
static enum ag_code keep_current_path(const char *key, const char *current,
                                      char **fresh, struct ag_error *err)
{
  if (same_text(current, *fresh))
    return AG_OK;

  log_warn("reload: %s changed from '%s' to '%s', which takes effect only "
           "after a restart; until then the agent keeps using '%s'",
           key, current, *fresh, current);
  char *copy = strdup(current);
  if (copy == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  free(*fresh);
  *fresh = copy;
  return AG_OK;
}

enum ag_code daemon_reload_config(const struct config *current,
                                  struct config **out, bool *server_changed,
                                  struct ag_error *err)
{
  struct config *fresh = NULL;
  enum ag_code code = config_load(current->path, &fresh, err);

  *out = NULL;
  *server_changed = false;
  if (code == AG_OK)
    code = keep_current_path("state_dir", current->state_dir, &fresh->state_dir,
                             err);
  if (code == AG_OK)
    code = keep_current_path("output_dir", current->output_dir,
                             &fresh->output_dir, err);
  if (code != AG_OK) {
    config_free(fresh);
    return code;
  }

  *server_changed = server_settings_differ(current, fresh);
  *out = fresh;
  return AG_OK;
}
