/* The backup command: a copy of the manifest, taken without the state
 * folder's lock, so that it works while the service runs. */
#include "agent_internal.h"

enum ag_code agent_backup(const struct config *config, const char *dest,
                          bool replace, FILE *out, struct ag_error *err)
{
  struct manifest *manifest = NULL;
  uint64_t bytes = 0;
  enum ag_code code =
      manifest_open_read_only(config->state_dir, &manifest, err);

  if (code == AG_OK)
    code = manifest_backup(manifest, dest,
                           replace ? MANIFEST_BACKUP_REPLACE : 0, &bytes, err);
  manifest_close(manifest);
  if (code != AG_OK)
    return code;
  fprintf(out,
          "backup: wrote a copy of the manifest in '%s' to '%s' (%llu "
          "bytes)\n",
          config->state_dir, dest, (unsigned long long)bytes);
  return AG_OK;
}
