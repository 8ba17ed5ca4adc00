/* The post-delivery hook: splitting [hook] exec into words, running it for
 * a delivered output through plat_run_hook(), and recording the outcome
 * with the retry time of the next run. */
#include "agent/hook.h"

#include <stdlib.h>
#include <string.h>

#include "agent_internal.h"
#include "pipeline.h"
#include "agent/log.h"

/* Arguments that the agent appends to the words of [hook] exec. */
#define HOOK_ADDED_ARGUMENTS 3

/* Sizes of the escaped output in the manifest record, which the status
 * command shows, and in the log line, which log_msg() cuts at 4096
 * bytes. */
#define RECORD_OUTPUT_MAX 512
#define LOG_OUTPUT_MAX 3000

static bool is_blank(char c)
{
  return c == ' ' || c == '\t';
}

/* Copy the word that starts at *text into out, without its quotes, and
 * advance both past it. Returns the quote character that is not closed,
 * or '\0'. */
static char copy_word(const char **text, char **out)
{
  const char *p = *text;
  char *end = *out;

  while (*p != '\0' && !is_blank(*p)) {
    if (*p != '\'' && *p != '"') {
      *end++ = *p++;
      continue;
    }
    char quote = *p++;
    const char *close = strchr(p, quote);
    if (close == NULL)
      return quote;
    memcpy(end, p, (size_t)(close - p));
    end += close - p;
    p = close + 1;
  }
  *end++ = '\0';
  *text = p;
  *out = end;
  return '\0';
}

enum ag_code hook_split_command(const char *text, char ***words_out,
                                size_t *count_out, struct ag_error *err)
{
  /* One block: the pointers, then the words. Without its quotes, and with
   * a NUL where a blank or a closing quote was, no word is longer than
   * its text, so the word area needs strlen(text) + 1 bytes. */
  size_t pointers = (HOOK_WORDS_MAX + 1) * sizeof(char *);
  char **words = malloc(pointers + strlen(text) + 1);
  const char *p = text;
  size_t count = 0;
  enum ag_code code = AG_OK;

  *words_out = NULL;
  *count_out = 0;
  if (words == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  char *next = (char *)words + pointers;

  for (;;) {
    while (is_blank(*p))
      p++;
    if (*p == '\0')
      break;
    if (count == HOOK_WORDS_MAX) {
      code = ag_error_set(err, AG_ECONFIG,
                          "[hook] exec has more than %d words; put the "
                          "command into a script",
                          HOOK_WORDS_MAX);
      goto out;
    }
    words[count++] = next;
    char open_quote = copy_word(&p, &next);
    if (open_quote != '\0') {
      code = ag_error_set(err, AG_ECONFIG,
                          "[hook] exec has a %c quote that is not closed",
                          open_quote);
      goto out;
    }
  }
  words[count] = NULL;

  if (count == 0)
    code = ag_error_set(err, AG_ECONFIG,
                        "[hook] exec is empty; give the program to run");
  else if (!plat_path_is_absolute(words[0]))
    code = ag_error_set(err, AG_ECONFIG,
                        "[hook] exec must start with the absolute path of a "
                        "program, not '%s', because no PATH search is done",
                        words[0]);

out:
  if (code != AG_OK) {
    free(words);
    return code;
  }
  *words_out = words;
  *count_out = count;
  return AG_OK;
}

int64_t hook_retry_delay(uint32_t failures)
{
  int64_t delay = HOOK_RETRY_BASE_SECONDS;

  if (failures <= 1)
    return 0;
  for (uint32_t i = 2; i < failures && delay < HOOK_RETRY_MAX_SECONDS; i++)
    delay *= 2;
  return delay < HOOK_RETRY_MAX_SECONDS ? delay : HOOK_RETRY_MAX_SECONDS;
}

bool hook_is_pending(const struct config *config,
                     const struct manifest_record *record)
{
  return config->hook_exec != NULL && record->state == MANIFEST_DELIVERED &&
         record->output != NULL && !record->hook_done;
}

/* The delivered file that a hook run is for. */
struct hook_target {
  const char *rel; /* manifest key */
  size_t rel_len;
  const char *name; /* rel as the status command shows it */
  const char *path; /* the output, the hook's first argument */
  struct manifest_record *record;
};

/* Return the full path of the record's output (malloc'd), the sidecar
 * for a passthrough copy. */
static char *output_path(const struct config *config,
                         const struct manifest_record *record)
{
  const char *suffix =
      strcmp(record->format, "passthrough") == 0 ? ".json" : "";
  size_t size = strlen(config->output_dir) + 1 + strlen(record->output) +
                strlen(suffix) + 1;
  char *path = malloc(size);

  if (path != NULL)
    snprintf(path, size, "%s/%s%s", config->output_dir, record->output, suffix);
  return path;
}

static bool watch_stop_requested(void *ctx)
{
  return agent_stop_requested(ctx);
}

static void watch_progress(void *ctx)
{
  agent_report_progress(ctx);
}

/* Run the hook once for target. An error in run_err means that it could
 * not start; AG_ENOMEM is also returned in err. */
static enum ag_code run_command(struct agent *agent,
                                const struct hook_target *target,
                                struct plat_hook_result *result,
                                struct ag_error *run_err, struct ag_error *err)
{
  const struct plat_hook_watch watch = {.stop_requested = watch_stop_requested,
                                        .progress = watch_progress,
                                        .ctx = agent};
  const char **argv = NULL;
  char **words = NULL;
  size_t count = 0;

  /* config_load() checked the command, so only memory can fail here. */
  enum ag_code code =
      hook_split_command(agent->config->hook_exec, &words, &count, err);
  if (code == AG_OK) {
    argv = malloc((count + HOOK_ADDED_ARGUMENTS + 1) * sizeof(*argv));
    if (argv == NULL)
      code = ag_error_set(err, AG_ENOMEM, "out of memory");
  }
  if (code != AG_OK)
    goto out;

  memcpy(argv, words, count * sizeof(*argv));
  argv[count] = target->path;
  argv[count + 1] = target->name;
  argv[count + 2] = target->record->sha256;
  argv[count + 3] = NULL;
  log_debug("running the hook for '%s': %s '%s' '%s' %s", target->name,
            agent->config->hook_exec, target->path, target->name,
            target->record->sha256);
  code =
      plat_run_hook(argv, agent->config->hook_timeout, &watch, result, run_err);
  if (code == AG_ENOMEM)
    ag_error_set(err, code, "%s", run_err->message);

out:
  free(argv);
  free(words);
  return code;
}

/* Describe how a run ended, such as "exit status 3 after 0.2 s". */
static void describe_run(const struct plat_hook_result *result, int timeout,
                         char *out, size_t size)
{
  double seconds = (double)result->elapsed_ms / 1000.0;

  switch (result->outcome) {
  case PLAT_HOOK_EXITED:
    snprintf(out, size, "exit status %d after %.1f s", result->status, seconds);
    break;
  case PLAT_HOOK_SIGNALED:
    snprintf(out, size, "ended by signal %d after %.1f s", result->status,
             seconds);
    break;
  case PLAT_HOOK_TIMED_OUT:
    snprintf(out, size,
             "timed out after %d s and was ended with its process group "
             "(%.1f s in all)",
             timeout, seconds);
    break;
  case PLAT_HOOK_STOPPED:
    snprintf(out, size, "stopped after %.1f s because the agent is stopping",
             seconds);
    break;
  }
}

/* Describe the kept output in a sentence, escaped, with the total size
 * when not all of it was kept. max_escaped bounds the escaped text, which
 * log_escape() cuts with "...". */
static void describe_output(const struct plat_hook_result *result,
                            size_t max_escaped, char *out, size_t size)
{
  char escaped[LOG_OUTPUT_MAX];
  size_t room = max_escaped < sizeof(escaped) ? max_escaped : sizeof(escaped);

  if (result->output_total == 0) {
    snprintf(out, size, "It wrote no output.");
    return;
  }
  log_escape(escaped, room, result->output, result->output_len);
  if (result->output_total > result->output_len)
    snprintf(out, size, "Its output (first %zu of %llu bytes): %s",
             result->output_len, (unsigned long long)result->output_total,
             escaped);
  else
    snprintf(out, size, "Its output: %s", escaped);
}

static enum ag_code record_hook(struct agent *agent,
                                const struct hook_target *target,
                                struct ag_error *err)
{
  target->record->updated = plat_wall_time();
  return agent_put_record(agent, target->rel, target->rel_len, target->record,
                          err);
}

/* Record and log a failed run, with the time of the next one. how
 * describes the end of the run, and result is NULL when it could not
 * start. */
static enum ag_code record_failure(struct agent *agent,
                                   const struct hook_target *target,
                                   const char *how,
                                   const struct plat_hook_result *result,
                                   struct ag_error *err)
{
  struct manifest_record *record = target->record;
  char logged[LOG_OUTPUT_MAX + 128] = "";
  char stored[RECORD_OUTPUT_MAX + 128] = "";
  char next[64] = "on the next pass";

  if (result != NULL) {
    describe_output(result, LOG_OUTPUT_MAX, logged, sizeof(logged));
    describe_output(result, RECORD_OUTPUT_MAX, stored, sizeof(stored));
  }
  if (record->hook_attempts < UINT32_MAX)
    record->hook_attempts++;
  int64_t delay = hook_retry_delay(record->hook_attempts);
  record->hook_retry_at = plat_wall_time() + delay;
  if (delay > 0)
    snprintf(next, sizeof(next), "on the first pass after %lld s",
             (long long)delay);

  size_t size = strlen(how) + strlen(stored) + 3;
  free(record->hook_error);
  record->hook_error = malloc(size);
  if (record->hook_error == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  snprintf(record->hook_error, size, "%s%s%s", how, result != NULL ? ". " : "",
           stored);

  log_error("hook failed for '%s' (output '%s'): %s, failed run %u. The file "
            "stays delivered and is not archived, and the hook runs again "
            "%s.%s%s",
            target->name, target->path, how, record->hook_attempts, next,
            result != NULL ? " " : "", logged);
  return record_hook(agent, target, err);
}

/* Record a successful run, so that the remote step may follow. */
static enum ag_code record_success(struct agent *agent,
                                   const struct hook_target *target,
                                   const struct plat_hook_result *result,
                                   struct ag_error *err)
{
  struct manifest_record *record = target->record;

  record->hook_done = true;
  record->hook_retry_at = 0;
  free(record->hook_error);
  record->hook_error = NULL;
  enum ag_code code = record_hook(agent, target, err);
  if (code == AG_OK)
    log_info("hook succeeded for '%s' in %.1f s", target->name,
             (double)result->elapsed_ms / 1000.0);
  return code;
}

/* Run the hook now and record the outcome. */
static enum ag_code run_and_record(struct agent *agent,
                                   struct hook_target *target,
                                   struct agent_summary *summary,
                                   bool *finished, struct ag_error *err)
{
  struct plat_hook_result *result = malloc(sizeof(*result));
  struct ag_error run_err = {0};
  char *path = output_path(agent->config, target->record);
  char how[256];
  enum ag_code code = AG_OK;

  if (result == NULL || path == NULL) {
    code = ag_error_set(err, AG_ENOMEM, "out of memory");
    goto out;
  }
  target->path = path;
  code = run_command(agent, target, result, &run_err, err);
  if (code == AG_ENOMEM)
    goto out;
  if (code != AG_OK) {
    summary->pending++;
    code = record_failure(agent, target, run_err.message, NULL, err);
    goto out;
  }

  describe_run(result, agent->config->hook_timeout, how, sizeof(how));
  if (result->outcome == PLAT_HOOK_STOPPED) {
    summary->deferred++;
    log_info("hook for '%s' %s; it runs again on the next pass", target->name,
             how);
  } else if (result->outcome != PLAT_HOOK_EXITED || result->status != 0) {
    summary->pending++;
    code = record_failure(agent, target, how, result, err);
  } else {
    code = record_success(agent, target, result, err);
    *finished = code == AG_OK;
  }

out:
  target->path = NULL;
  free(result);
  free(path);
  return code;
}

enum ag_code hook_run_pending(struct agent *agent, const char *rel,
                              size_t rel_len, struct manifest_record *record,
                              struct agent_summary *summary, bool *finished,
                              struct ag_error *err)
{
  char name[4 * MANIFEST_KEY_MAX + 8];
  int64_t now = plat_wall_time();

  *finished = !hook_is_pending(agent->config, record);
  if (*finished)
    return AG_OK;
  log_escape(name, sizeof(name), rel, rel_len);

  /* A retry time further ahead than the longest delay means that the wall
   * clock was set back, and then the run is due now. */
  int64_t wait = record->hook_retry_at - now;
  if (wait > 0 && wait <= HOOK_RETRY_MAX_SECONDS) {
    /* Debug only: the failure itself was logged as an error, and status
     * shows the wait, so an info line per poll would only flood the log. */
    summary->pending++;
    log_debug("'%s' waits for its hook, which failed %u times; the next run "
              "is on the first pass after %lld s",
              name, record->hook_attempts, (long long)wait);
    return AG_OK;
  }
  struct hook_target target = {
      .rel = rel, .rel_len = rel_len, .name = name, .record = record};
  return run_and_record(agent, &target, summary, finished, err);
}
