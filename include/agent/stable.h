/* Tracks when each remote file last changed, by the agent's own clock.
 *
 * A file is stable once its size and mtime have stayed the same across
 * observations spanning at least stable_seconds of the monotonic clock.
 * The remote mtime alone is never trusted, because a writer can reset it;
 * after a restart every file waits again.
 *
 * Threads: every function but stable_new(), stable_free() and
 * stable_count() may be called from several threads at once. */
#ifndef AGENT_STABLE_H
#define AGENT_STABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stable;

/* Create an empty tracker. Returns NULL when out of memory. */
struct stable *stable_new(void);

/* Free a tracker. Accepts NULL. */
void stable_free(struct stable *tracker);

/* Record that key (raw bytes) was listed with size and mtime at now_ms on
 * the monotonic clock. Returns 1 when the file has been unchanged for at
 * least stable_ms, 0 when it is still settling, and -1 when out of memory.
 * A change of size or mtime restarts the wait. */
int stable_observe(struct stable *tracker, const void *key, size_t key_len,
                   uint64_t size, int64_t mtime, int64_t now_ms,
                   int64_t stable_ms);

/* Return whether key was observed and not forgotten or dropped since. */
bool stable_contains(struct stable *tracker, const void *key, size_t key_len);

/* Forget key, so that its next observation starts a new wait. */
void stable_forget(struct stable *tracker, const void *key, size_t key_len);

/* Start a new listing generation. Keys not observed since the previous
 * call are dropped, so files that vanished do not accumulate. */
void stable_next_generation(struct stable *tracker);

/* Return the number of keys tracked. */
size_t stable_count(const struct stable *tracker);

#endif
