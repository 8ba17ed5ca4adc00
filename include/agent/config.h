/* Agent configuration: an INI file, validated as a whole.
 *
 * The keys, their types, defaults and bounds live in one table in
 * config.c. Secrets (password, key passphrase) are never part of the
 * config text; the config names files that hold them, and config_load()
 * reads those files. */
#ifndef AGENT_CONFIG_H
#define AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "agent/error.h"
#include "agent/log.h"

/* The default config file on POSIX; plat_default_config_path() returns the
 * one of the running platform. */
#define CONFIG_DEFAULT_PATH "/etc/rossum-sftp-agent/agent.conf"
#define CONFIG_MAX_PATTERNS 32
#define CONFIG_MAX_MAPPINGS 256
#define CONFIG_ENCODINGS                                                       \
  "utf-8, windows-1250, windows-1251, windows-1252, windows-1257, "            \
  "iso-8859-1, iso-8859-2 and iso-8859-15"

enum on_success { ON_SUCCESS_MOVE, ON_SUCCESS_DELETE, ON_SUCCESS_KEEP };
enum log_target { LOG_TARGET_STDERR, LOG_TARGET_SYSLOG, LOG_TARGET_FILE };
enum csv_delimiter {
  CSV_DELIMITER_COMMA,
  CSV_DELIMITER_SEMICOLON,
  CSV_DELIMITER_TAB,
  CSV_DELIMITER_AUTO /* sniffed from the header line */
};

/* One [mapping] entry: output name `from` becomes `to`, or is dropped
 * when `to` is NULL (written as "-" in the file). */
struct config_mapping {
  char *from;
  char *to;
};

struct config {
  char *path; /* the file this was loaded from */

  /* [server] */
  char *host;
  int port;
  char *user;
  char *private_key;     /* path, or NULL */
  char *passphrase_file; /* path, or NULL */
  char *password_file;   /* path, or NULL */
  char *known_hosts;     /* path, or NULL */
  char
      *host_key_sha256; /* "SHA256:<base64>" as ssh-keygen -l prints, or NULL */
  int timeout;          /* seconds without progress before an operation fails */
  char *ciphers; /* comma-separated SSH cipher names in order of preference,
                    or NULL for the agent's default order */

  /* Secrets read from passphrase_file and password_file, or NULL. They are
   * wiped by config_free(). */
  char *passphrase;
  char *password;

  /* [remote] */
  char *inbox;   /* absolute, without trailing slash (except "/") */
  char *archive; /* absolute */
  char *error;   /* absolute */
  char *include[CONFIG_MAX_PATTERNS]; /* fnmatch patterns on the base name */
  size_t include_count;
  char *exclude[CONFIG_MAX_PATTERNS];
  size_t exclude_count;
  char *passthrough[CONFIG_MAX_PATTERNS]; /* copied as they are */
  size_t passthrough_count;
  int stable_seconds;
  bool recursive;
  int max_files_per_poll; /* 0 means no limit */
  int parallel;           /* files taken at once, each on its own session */
  char *archive_layout;   /* strftime pattern for UTC date folders, or NULL */
  enum on_success on_success;
  int archive_alert_after; /* failed remote steps of one file before each
                              further failure is logged as an error */
  char *claim_dir;         /* where several agents claim files, or NULL */
  int claim_timeout;       /* seconds of no heartbeat that mark it stopped */

  /* [local] */
  char *state_dir;
  char *output_dir;

  /* [agent] */
  int poll_interval;
  enum log_level log_level;
  enum log_target log_target;
  char *log_file;         /* with log_target = file */
  char *metrics_file;     /* Prometheus text file, or NULL */
  int keepalive_interval; /* seconds; 0 turns keepalives off */
  int reconnect_base;     /* first reconnect delay, seconds */
  int reconnect_max;      /* maximum reconnect delay, seconds */

  /* [csv] */
  enum csv_delimiter delimiter;
  char *encoding; /* NULL means UTF-8 */
  char *group_by; /* column that groups rows into documents, or NULL */

  /* [mapping] */
  struct config_mapping mapping[CONFIG_MAX_MAPPINGS];
  size_t mapping_count;

  /* [hook] */
  char *hook_exec;  /* command run for each delivered output, or NULL */
  int hook_timeout; /* seconds */

  /* [manifest]; 0 days keeps entries for ever */
  int retention_days; /* records of archived and abandoned files */
  int delivered_hash_retention_days; /* delivered versions */
};

/* Load and validate the config at path, then read the secret files it
 * names. On success stores a new config in *out, which the caller frees
 * with config_free(). On failure returns AG_ECONFIG (or AG_ENOMEM) with a
 * message that names the file, the line when there is one, and the fix. */
enum ag_code config_load(const char *path, struct config **out,
                         struct ag_error *err);

/* Free a config, wiping its secrets first. Accepts NULL. */
void config_free(struct config *config);

/* Return whether a remote base name is selected by include and not
 * rejected by exclude. A config with no include patterns selects every
 * name. */
bool config_name_selected(const struct config *config, const char *name);

#endif
