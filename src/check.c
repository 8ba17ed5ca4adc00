/* The check command: prove that the config, the server and the folders
 * work, one printed line per check, without taking any file. */
#include "agent_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/log.h"
#include "agent/rpath.h"

struct folder_count {
  const struct config *config;
  size_t entries;
  size_t selected;
};

static enum ag_code count_entry(void *ctx, const struct remote_entry *entry)
{
  struct folder_count *count = ctx;
  const char *base = entry->rel + rpath_base_offset(entry->rel, entry->rel_len);

  count->entries++;
  if (entry->kind == REMOTE_FILE && config_name_selected(count->config, base))
    count->selected++;
  return AG_OK;
}

/* Create and delete a probe file, proving the folder is writable. */
static enum ag_code probe_remote_folder(struct remote *remote,
                                        const char *folder,
                                        struct ag_error *err)
{
  char name[64];
  snprintf(name, sizeof(name), ".rossum-sftp-agent-check-%ld", (long)getpid());
  char *path = rpath_join(folder, name, strlen(name));
  enum ag_code code;

  if (path == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  code = remote_write_new(remote, path, "check\n", 6, err);
  if (code == AG_OK)
    code = remote_unlink(remote, path, err);
  free(path);
  return code;
}

static enum ag_code check_remote_folder(struct remote *remote, FILE *out,
                                        const char *label, const char *folder,
                                        bool writable, struct ag_error *err)
{
  struct remote_entry entry;
  struct ag_error step = {0};
  enum ag_code code = remote_stat(remote, folder, &entry, &step);

  if (code == AG_OK && entry.kind != REMOTE_DIR)
    code = ag_error_set(&step, AG_EREMOTE, "'%s' is not a folder", folder);
  if (code == AG_OK && writable)
    code = probe_remote_folder(remote, folder, &step);
  if (code == AG_OK) {
    fprintf(out, "ok    %-8s %s (%s)\n", label, folder,
            writable ? "exists, writable" : "exists");
    return AG_OK;
  }
  fprintf(out, "FAIL  %-8s %s: %s\n", label, folder, step.message);
  return ag_error_set(err, code, "%s folder '%s': %s", label, folder,
                      step.message);
}

static enum ag_code check_local_folder(FILE *out, const char *label,
                                       const char *folder, struct ag_error *err)
{
  struct ag_error step = {0};
  FILE *file = NULL;
  char *path = NULL;
  enum ag_code code = plat_mkdirs(folder, &step);

  if (code == AG_OK)
    code = plat_create_temp(folder, ".check", &file, &path, &step);
  if (code == AG_OK) {
    fclose(file);
    plat_remove(path);
    free(path);
    fprintf(out, "ok    %-8s %s (writable)\n", label, folder);
    return AG_OK;
  }
  fprintf(out, "FAIL  %-8s %s: %s\n", label, folder, step.message);
  return ag_error_set(err, code, "%s", step.message);
}

/* Check the claim folder like the archive, and that a file renamed from
 * the inbox can go there, which fails when the two are on different file
 * systems of the server. */
static enum ag_code check_claim_folder(struct remote *remote,
                                       const struct config *config, FILE *out,
                                       struct ag_error *err)
{
  char name[64];
  struct ag_error step = {0};
  enum ag_code code =
      check_remote_folder(remote, out, "claims", config->claim_dir, true, err);

  if (code != AG_OK)
    return code;
  snprintf(name, sizeof(name), ".rossum-sftp-agent-check-%ld", (long)getpid());
  char *from = rpath_join(config->inbox, name, strlen(name));
  char *to = rpath_join(config->claim_dir, name, strlen(name));
  if (from == NULL || to == NULL)
    code = ag_error_set(&step, AG_ENOMEM, "out of memory");
  if (code == AG_OK)
    code = remote_write_new(remote, from, "check\n", 6, &step);
  if (code == AG_OK) {
    code = remote_rename(remote, from, to, &step);
    /* The probe is removed from wherever it is now. */
    struct ag_error unlink_err = {0};
    remote_unlink(remote, code == AG_OK ? to : from, &unlink_err);
  }

  if (code == AG_OK)
    fprintf(out, "ok    claims   a file in the inbox can be renamed into %s\n",
            config->claim_dir);
  else
    fprintf(out, "FAIL  claims   rename from %s into %s: %s\n", config->inbox,
            config->claim_dir, step.message);
  free(from);
  free(to);
  if (code != AG_OK)
    return ag_error_set(err, code, "claim folder '%s': %s", config->claim_dir,
                        step.message);
  return AG_OK;
}

static enum ag_code check_inbox(struct remote *remote,
                                const struct config *config, FILE *out,
                                struct ag_error *err)
{
  struct folder_count count = {.config = config};
  const char *skip[] = {config->archive, config->error};
  struct ag_error step = {0};
  bool writable = config->on_success != ON_SUCCESS_KEEP;
  enum ag_code code =
      check_remote_folder(remote, out, "inbox", config->inbox, writable, err);

  if (code != AG_OK)
    return code;
  code = remote_list(remote, config->inbox, config->recursive, skip, 2,
                     count_entry, &count, &step);
  if (code != AG_OK) {
    fprintf(out, "FAIL  listing  %s: %s\n", config->inbox, step.message);
    return ag_error_set(err, code, "%s", step.message);
  }
  fprintf(out, "ok    listing  %zu entries, %zu selected by include/exclude\n",
          count.entries, count.selected);
  return AG_OK;
}

enum ag_code agent_check(const struct config *config, FILE *out,
                         struct ag_error *err)
{
  struct remote *remote = NULL;
  enum ag_code code;

  fprintf(out, "ok    config   %s\n", config->path);
  code = remote_connect(config, &remote, err);
  if (code != AG_OK) {
    fprintf(out, "FAIL  server   %s:%d: %s\n", config->host, config->port,
            err->message);
    return code;
  }
  fprintf(out, "ok    host key %s %s verified\n", remote_host_key_type(remote),
          remote_host_key_fingerprint(remote));
  fprintf(out, "ok    login    %s@%s:%d\n", config->user, config->host,
          config->port);

  /* Check every folder even after a failure, so one run shows them all;
   * err keeps the first failure. */
  check_inbox(remote, config, out, err);
  if (config->on_success == ON_SUCCESS_MOVE) {
    check_remote_folder(remote, out, "archive", config->archive, true, err);
    check_remote_folder(remote, out, "error", config->error, true, err);
  }
  if (config->claim_dir != NULL)
    check_claim_folder(remote, config, out, err);
  check_local_folder(out, "state", config->state_dir, err);
  check_local_folder(out, "output", config->output_dir, err);
  remote_close(remote);
  return err->code;
}
