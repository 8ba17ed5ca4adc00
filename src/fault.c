/* Fault points for test builds; see agent/fault.h. CMake builds this file
 * only with -DAGENT_FAULT_INJECTION=ON. */
#include "agent/fault.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hits of the selected point so far in this process. Workers of a
 * parallel pass pass the same points, so the count is atomic. */
static atomic_ulong fault_hits;

void fault_point(const char *name)
{
  const char *selected = getenv("AGENT_FAULT_POINT");
  const char *hit_text = getenv("AGENT_FAULT_HIT");
  unsigned long hit = 1;

  if (selected == NULL || strcmp(selected, name) != 0)
    return;
  if (hit_text != NULL && hit_text[0] != '\0')
    hit = strtoul(hit_text, NULL, 10);
  unsigned long this_hit = atomic_fetch_add(&fault_hits, 1) + 1;
  if (this_hit != hit)
    return;

  /* AGENT_FAULT_ACTION=stop pauses the process instead, so that a test
   * can change the remote file at this moment and then send SIGCONT. */
  const char *action = getenv("AGENT_FAULT_ACTION");
  if (action != NULL && strcmp(action, "stop") == 0) {
    fprintf(stderr, "fault injection: stopping the agent at %s, hit %lu\n",
            name, this_hit);
#ifdef SIGSTOP
    raise(SIGSTOP);
#endif
    return;
  }

  /* The test reads this line to know that the crash was the injected one.
   * stderr is unbuffered, so nothing else of the process is flushed. */
  fprintf(stderr, "fault injection: killing the agent at %s, hit %lu\n", name,
          this_hit);
#ifdef SIGKILL
  raise(SIGKILL);
#endif
  _Exit(137);
}
