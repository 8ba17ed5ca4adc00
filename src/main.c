/* Command-line front end: parses the command and options, loads the
 * config and calls the core. Exit codes are listed in usage(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <openssl/crypto.h>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/error.h"
#include "agent/log.h"

enum exit_code {
  EXIT_FILES_FAILED = 1,
  EXIT_USAGE = 2,
};

struct options {
  const char *command;
  const char *config_path;
  int verbose;
  int rebuild_manifest;
};

static void usage(FILE *out)
{
  fprintf(out,
          "Usage: rossum-sftp-agent COMMAND [-c FILE]\n"
          "\n"
          "Collects Rossum export files from an SFTP server, writes one JSON\n"
          "file per export and archives the remote files.\n"
          "\n"
          "Commands:\n"
          "  sync     run one pass: take every stable file, then exit\n"
          "  check    validate the config, the server and the folders\n"
          "  status   summarize the manifest\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE  config file (default: %s)\n"
          "  -v, --verbose      log protocol detail (log_level = debug)\n"
          "  --rebuild-manifest with sync: when the manifest is lost, set it\n"
          "                     aside and start a new one; files still in\n"
          "                     the inbox are delivered again\n"
          "  -h, --help         show this help\n"
          "  -V, --version      show the version\n"
          "\n"
          "Exit codes:\n"
          "  0  success, including nothing to do and files still settling\n"
          "  1  a file failed (moved to the error folder) or waits for a "
          "retry\n"
          "  2  usage or configuration error\n"
          "  3  connection, host key or authentication failure\n"
          "  4  local failure (state store, disk)\n"
          "  5  another agent holds the state folder's lock\n"
          "  6  the manifest is missing although earlier runs left state\n",
          CONFIG_DEFAULT_PATH);
}

/* Parse argv into opts. Returns 0, or EXIT_USAGE after printing why. */
static int parse_arguments(int argc, char **argv, struct options *opts)
{
  opts->config_path = CONFIG_DEFAULT_PATH;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      opts->command = "help";
    } else if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
      opts->command = "version";
    } else if (strcmp(arg, "-v") == 0 || strcmp(arg, "--verbose") == 0) {
      opts->verbose = 1;
    } else if (strcmp(arg, "-c") == 0 || strcmp(arg, "--config") == 0) {
      if (i + 1 == argc) {
        fprintf(stderr, "rossum-sftp-agent: %s needs a file name\n", arg);
        return EXIT_USAGE;
      }
      opts->config_path = argv[++i];
    } else if (strcmp(arg, "--rebuild-manifest") == 0) {
      opts->rebuild_manifest = 1;
    } else if (strncmp(arg, "--config=", 9) == 0) {
      opts->config_path = arg + 9;
    } else if (arg[0] == '-') {
      fprintf(stderr, "rossum-sftp-agent: unknown option '%s'; see --help\n",
              arg);
      return EXIT_USAGE;
    } else if (opts->command == NULL) {
      opts->command = arg;
    } else if (strcmp(opts->command, "help") != 0 &&
               strcmp(opts->command, "version") != 0) {
      fprintf(stderr,
              "rossum-sftp-agent: unexpected argument '%s'; see --help\n", arg);
      return EXIT_USAGE;
    }
  }
  if (opts->command == NULL) {
    usage(stderr);
    return EXIT_USAGE;
  }
  return 0;
}

static void print_summary(const struct agent_summary *summary)
{
  printf("sync: %zu delivered, %zu duplicates, %zu archived, %zu failed, "
         "%zu pending, %zu settling, %zu deferred, %zu vanished, "
         "%zu skipped, %llu bytes downloaded\n",
         summary->delivered, summary->duplicates, summary->completed,
         summary->failed, summary->pending, summary->settling,
         summary->deferred, summary->vanished, summary->skipped,
         (unsigned long long)summary->bytes);
}

static int run_sync(const struct config *config, const struct options *opts,
                    struct ag_error *err)
{
  struct agent *agent = NULL;
  struct agent_summary summary = {0};
  unsigned flags = opts->rebuild_manifest ? AGENT_REBUILD_MANIFEST : 0;

  if (agent_open(config, flags, &agent, err) != AG_OK)
    return ag_exit_code(err->code);
  enum ag_code code = agent_sync(agent, &summary, err);
  agent_close(agent);
  print_summary(&summary);
  if (code != AG_OK)
    return ag_exit_code(code);
  if (summary.failed > 0 || summary.pending > 0)
    return EXIT_FILES_FAILED;
  return 0;
}

static int run_command(const struct options *opts)
{
  struct ag_error err = {0};
  struct config *config = NULL;
  int status;

  if (config_load(opts->config_path, &config, &err) != AG_OK) {
    log_error("%s", err.message);
    return ag_exit_code(err.code);
  }
  log_set_level(opts->verbose ? LOG_LEVEL_DEBUG : config->log_level);

  if (strcmp(opts->command, "sync") == 0)
    status = run_sync(config, opts, &err);
  else if (strcmp(opts->command, "check") == 0)
    status = ag_exit_code(agent_check(config, stdout, &err));
  else
    status = ag_exit_code(agent_status(config, stdout, &err));

  if (err.code != AG_OK)
    log_error("%s failed: %s", opts->command, err.message);
  config_free(config);
  return status;
}

int main(int argc, char **argv)
{
  struct options opts = {0};

  /* Never read an OpenSSL config file: the agent needs none, and a
   * cross-built libcrypto would look for one in a folder that ordinary
   * users can create on Windows. */
  OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
  xmlInitParser();

  int status = parse_arguments(argc, argv, &opts);
  if (status != 0)
    return status;
  if (strcmp(opts.command, "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(opts.command, "version") == 0) {
    printf("rossum-sftp-agent %s\n", AGENT_VERSION);
    return 0;
  }
  if (opts.rebuild_manifest && strcmp(opts.command, "sync") != 0) {
    fprintf(stderr,
            "rossum-sftp-agent: --rebuild-manifest works only with sync\n");
    return EXIT_USAGE;
  }
  if (strcmp(opts.command, "sync") != 0 && strcmp(opts.command, "check") != 0 &&
      strcmp(opts.command, "status") != 0) {
    fprintf(stderr, "rossum-sftp-agent: unknown command '%s'; see --help\n",
            opts.command);
    return EXIT_USAGE;
  }
  return run_command(&opts);
}
