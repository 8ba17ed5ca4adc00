/* Fault points for the fault-injection tests (tests/faults/).
 *
 * FAULT_POINT(name) marks a place where a crash must leave the agent
 * recoverable. In a build configured with -DAGENT_FAULT_INJECTION=ON, the
 * process kills itself with SIGKILL when the environment variable
 * AGENT_FAULT_POINT names that point and the point is reached for the
 * AGENT_FAULT_HIT-th time (default 1); with AGENT_FAULT_ACTION=stop it
 * stops itself with SIGSTOP instead and goes on after SIGCONT. In every
 * other build, release binaries and the Debian package included, the
 * macro compiles to nothing and src/fault.c is not built.
 *
 * Point names: "before_download", "after_download", "output_written",
 * "after_publish_intent", "before_delivered_commit", "after_delivered_commit",
 * "before_remote_rename", "after_remote_rename", and in the recorder of a
 * parallel pass "before_batch_commit" (after the output folder sync) and
 * "after_batch_commit". */
#ifndef AGENT_FAULT_H
#define AGENT_FAULT_H

#ifdef AGENT_FAULT_INJECTION

/* Count a hit of the point name and kill the process without any cleanup
 * when the environment selects this hit. */
void fault_point(const char *name);

#define FAULT_POINT(name) fault_point(name)

#else

#define FAULT_POINT(name) ((void)0)

#endif

#endif
