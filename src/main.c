/* Command-line front end: parses the command and options, loads the
 * config and calls the core. Exit codes are listed in usage(). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <openssl/crypto.h>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/daemon.h"
#include "agent/error.h"
#include "agent/log.h"
#include "agent/metrics.h"
#include "agent/platform.h"
#include "agent/progress.h"
#ifdef _WIN32
#include "agent/service.h"
#endif

enum exit_code {
  EXIT_FILES_FAILED = 1,
  EXIT_USAGE = 2,
};

struct options {
  const char *command;
  const char *config_path;
  int verbose;
  int rebuild_manifest;
  int json;         /* status --json */
  int dry_run;      /* sync --dry-run */
  int force;        /* backup --force */
  const char *name; /* the file of retry and forget, the DEST of backup */
};

static void usage(FILE *out)
{
  fprintf(out,
          "Usage: rossum-sftp-agent COMMAND [OPTIONS] [NAME | DEST]\n"
          "\n"
          "Collects Rossum export files from an SFTP server, writes one JSON\n"
          "file per export and archives the remote files.\n"
          "\n"
          "Commands:\n"
          "  sync     run one pass: take every stable file, then exit\n"
          "  run      run as a service: a pass every poll_interval seconds\n"
          "           until SIGTERM or SIGINT; SIGHUP reloads the config\n"
#ifdef _WIN32
          "  install    register the Windows service (run as an\n"
          "             administrator); -c sets the config it uses\n"
          "  uninstall  remove the Windows service; data and config stay\n"
          "  service    the entry point that the Service Control Manager\n"
          "             starts; not for use from a console\n"
#endif
          "  check    validate the config, the server and the folders\n"
          "  status   summarize the manifest: counts, the last successful\n"
          "           poll, its backlog and the failed files\n"
          "  retry NAME   move the failed file NAME back into the inbox, so\n"
          "               that the next pass takes it again\n"
          "  forget NAME  remove the manifest record of NAME\n"
          "  NAME is the path below the inbox as status shows it. While an\n"
          "  agent runs, retry and forget are queued for its next pass.\n"
          "  backup DEST  write a compacted copy of the manifest to the new\n"
          "               file DEST; works while the agent runs\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE  config file (default: %s)\n"
          "  -v, --verbose      log protocol detail (log_level = debug)\n"
          "  --rebuild-manifest with sync: when the manifest is lost, set it\n"
          "                     aside and start a new one; files still in\n"
          "                     the inbox are delivered again\n"
          "  --dry-run          with sync: list what would be taken, skipped\n"
          "                     or retried, and change nothing\n"
          "  --json             with status: print one JSON object\n"
          "  --force            with backup: replace an existing DEST\n"
          "  --                 end of options, for a NAME starting with '-'\n"
          "  -h, --help         show this help\n"
          "  -V, --version      show the version\n"
          "\n"
          "Exit codes:\n"
          "  0  success, including nothing to do and files still settling;\n"
          "     for run, a clean stop\n"
          "  1  a file failed (moved to the error folder) or waits for a "
          "retry\n"
          "  2  usage or configuration error\n"
          "  3  connection, host key or authentication failure\n"
          "  4  local failure (state store, disk)\n"
          "  5  another agent holds the state folder's lock\n"
          "  6  the manifest is missing although earlier runs left state\n",
          plat_default_config_path());
}

/* Take a word that is not an option: the command, then the NAME of retry
 * and forget. Returns 0, or EXIT_USAGE after printing why. */
static int add_positional(struct options *opts, const char *arg)
{
  if (opts->command == NULL) {
    opts->command = arg;
    return 0;
  }
  if (opts->name == NULL && (strcmp(opts->command, "retry") == 0 ||
                             strcmp(opts->command, "forget") == 0 ||
                             strcmp(opts->command, "backup") == 0)) {
    opts->name = arg;
    return 0;
  }
  if (strcmp(opts->command, "help") == 0 ||
      strcmp(opts->command, "version") == 0)
    return 0;
  fprintf(stderr, "rossum-sftp-agent: unexpected argument '%s'; see --help\n",
          arg);
  return EXIT_USAGE;
}

/* Parse argv into opts. Returns 0, or EXIT_USAGE after printing why. */
static int parse_arguments(int argc, char **argv, struct options *opts)
{
  bool options_ended = false;

  opts->config_path = plat_default_config_path();
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (options_ended) {
      if (add_positional(opts, arg) != 0)
        return EXIT_USAGE;
    } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
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
    } else if (strcmp(arg, "--json") == 0) {
      opts->json = 1;
    } else if (strcmp(arg, "--dry-run") == 0) {
      opts->dry_run = 1;
    } else if (strcmp(arg, "--force") == 0) {
      opts->force = 1;
    } else if (strcmp(arg, "--") == 0) {
      options_ended = true;
    } else if (arg[0] == '-') {
      fprintf(stderr, "rossum-sftp-agent: unknown option '%s'; see --help\n",
              arg);
      return EXIT_USAGE;
    } else if (add_positional(opts, arg) != 0) {
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

/* Write the metrics file for one pass, when one is configured. A failure
 * is only logged, because the pass itself is done. */
static void write_metrics(const struct config *config,
                          const struct agent_summary *summary,
                          enum ag_code code)
{
  struct metrics metrics = {0};
  struct ag_error err = {0};

  if (config->metrics_file == NULL)
    return;
  metrics_add_pass(&metrics, summary, code);
  if (metrics_write(config->metrics_file, &metrics, &err) != AG_OK)
    log_warn("cannot write metrics file '%s': %s", config->metrics_file,
             err.message);
}

/* Return whether a person watches: stdout and stderr are terminals. */
static bool on_terminal(void)
{
  return plat_is_terminal(stdout) && plat_is_terminal(stderr);
}

static int run_sync(const struct config *config, const struct options *opts,
                    struct ag_error *err)
{
  struct agent *agent = NULL;
  struct agent_summary summary = {0};
  unsigned flags = opts->rebuild_manifest ? AGENT_REBUILD_MANIFEST : 0;

  if (opts->dry_run)
    return ag_exit_code(agent_plan(config, stdout, err));
  if (agent_open(config, flags, &agent, err) != AG_OK)
    return ag_exit_code(err->code);
  if (on_terminal())
    agent_set_progress_display(agent, progress_show, NULL);
  enum ag_code code = agent_sync(agent, &summary, err);
  progress_clear();
  agent_close(agent);
  write_metrics(config, &summary, code);
  print_summary(&summary);
  if (code != AG_OK)
    return ag_exit_code(code);
  if (summary.failed > 0 || summary.pending > 0)
    return EXIT_FILES_FAILED;
  return 0;
}

static int run_service(const struct options *opts)
{
  struct daemon_options daemon_opts = {.verbose = opts->verbose != 0};
  struct ag_error err = {0};

  if (opts->verbose)
    log_set_level(LOG_LEVEL_DEBUG);
  if (daemon_run(opts->config_path, &daemon_opts, &err) != AG_OK) {
    log_error("run failed: %s", err.message);
    return ag_exit_code(err.code);
  }
  return 0;
}

/* Carry out retry or forget, at once or queued for the running agent. */
static int run_request(const struct config *config, const struct options *opts,
                       struct ag_error *err)
{
  enum agent_request_action action = strcmp(opts->command, "retry") == 0
                                         ? AGENT_REQUEST_RETRY
                                         : AGENT_REQUEST_FORGET;
  bool queued = false;

  if (agent_request(config, action, opts->name, &queued, err) != AG_OK)
    return ag_exit_code(err->code);
  if (queued)
    printf("%s '%s': queued; the agent that holds the state folder carries "
           "it out at the start of its next pass\n",
           opts->command, opts->name);
  else
    printf("%s '%s': done\n", opts->command, opts->name);
  return 0;
}

/* Return whether a command changes state, so that its log belongs in the
 * configured log target. The others report to the person at the terminal
 * and keep logging to stderr. */
static bool changes_state(const struct options *opts)
{
  if (strcmp(opts->command, "sync") == 0)
    return !opts->dry_run;
  return strcmp(opts->command, "retry") == 0 ||
         strcmp(opts->command, "forget") == 0;
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
  if (changes_state(opts) && log_configure(config, &err) != AG_OK) {
    log_error("%s", err.message);
    config_free(config);
    return ag_exit_code(err.code);
  }
  log_set_level(opts->verbose ? LOG_LEVEL_DEBUG : config->log_level);

  enum agent_status_format format =
      opts->json ? AGENT_STATUS_JSON : AGENT_STATUS_TEXT;
  if (strcmp(opts->command, "sync") == 0)
    status = run_sync(config, opts, &err);
  else if (strcmp(opts->command, "check") == 0)
    status = ag_exit_code(agent_check(config, stdout, &err));
  else if (strcmp(opts->command, "status") == 0)
    status = ag_exit_code(agent_status(config, format, stdout, &err));
  else if (strcmp(opts->command, "backup") == 0)
    status = ag_exit_code(
        agent_backup(config, opts->name, opts->force != 0, stdout, &err));
  else
    status = run_request(config, opts, &err);

  /* check prints each failure in its report already. */
  if (err.code != AG_OK && strcmp(opts->command, "check") != 0)
    log_error("%s failed: %s", opts->command, err.message);
  log_close();
  config_free(config);
  return status;
}

/* Reject options given to a command that does not take them. Returns 0,
 * or EXIT_USAGE after printing why. */
static int check_option_use(const struct options *opts)
{
  const char *problem = NULL;
  bool takes_name = strcmp(opts->command, "retry") == 0 ||
                    strcmp(opts->command, "forget") == 0;

  if (opts->rebuild_manifest && strcmp(opts->command, "sync") != 0)
    problem = "--rebuild-manifest works only with sync";
  else if (opts->dry_run && strcmp(opts->command, "sync") != 0)
    problem = "--dry-run works only with sync";
  else if (opts->dry_run && opts->rebuild_manifest)
    problem = "--dry-run changes nothing, so it cannot rebuild the manifest";
  else if (opts->json && strcmp(opts->command, "status") != 0)
    problem = "--json works only with status";
  else if (opts->force && strcmp(opts->command, "backup") != 0)
    problem = "--force works only with backup";
  else if (takes_name && opts->name == NULL)
    problem = "retry and forget need the NAME of a file as status shows it";
  else if (strcmp(opts->command, "backup") == 0 && opts->name == NULL)
    problem = "backup needs DEST, the file to write the copy to";
  if (problem == NULL)
    return 0;
  fprintf(stderr, "rossum-sftp-agent: %s; see --help\n", problem);
  return EXIT_USAGE;
}

int main(int argc, char **argv)
{
  struct options opts = {0};

  /* Never read an OpenSSL config file: the agent needs none, and a
   * cross-built libcrypto would look for one in a folder that ordinary
   * users can create on Windows. */
  OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
  xmlInitParser();
  plat_init_process(&argc, &argv);

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
  if (check_option_use(&opts) != 0)
    return EXIT_USAGE;
  if (strcmp(opts.command, "run") == 0)
    return run_service(&opts);
#ifdef _WIN32
  if (strcmp(opts.command, "install") == 0)
    return service_install(opts.config_path);
  if (strcmp(opts.command, "uninstall") == 0)
    return service_uninstall();
  if (strcmp(opts.command, "service") == 0)
    return service_start(opts.config_path, opts.verbose != 0);
#endif
  if (strcmp(opts.command, "sync") != 0 && strcmp(opts.command, "check") != 0 &&
      strcmp(opts.command, "status") != 0 &&
      strcmp(opts.command, "retry") != 0 &&
      strcmp(opts.command, "forget") != 0 &&
      strcmp(opts.command, "backup") != 0) {
    fprintf(stderr, "rossum-sftp-agent: unknown command '%s'; see --help\n",
            opts.command);
    return EXIT_USAGE;
  }
  return run_command(&opts);
}
