/* A hash table of file observations for the stability rule. */
#include "agent/stable.h"

#include "agent/platform.h"

#include <stdlib.h>
#include <string.h>

struct observation {
  struct observation *next;
  uint64_t size;
  int64_t mtime;
  int64_t since_ms;    /* when this size and mtime were first seen */
  unsigned generation; /* last listing that reported the key */
  size_t key_len;
  unsigned char key[]; /* raw bytes, not NUL-terminated */
};

struct stable {
  struct plat_mutex *lock; /* workers of a parallel pass forget keys */
  struct observation **buckets;
  size_t bucket_count; /* a power of two */
  size_t count;
  unsigned generation;
};

/* FNV-1a; remote names are not chosen to attack this table's balance,
 * and a bad spread costs only time. */
static size_t hash_key(const void *key, size_t len)
{
  const unsigned char *p = key;
  uint64_t hash = 1469598103934665603ULL;

  for (size_t i = 0; i < len; i++) {
    hash ^= p[i];
    hash *= 1099511628211ULL;
  }
  return (size_t)hash;
}

struct stable *stable_new(void)
{
  struct stable *tracker = calloc(1, sizeof(*tracker));

  if (tracker == NULL)
    return NULL;
  tracker->bucket_count = 64;
  tracker->buckets = calloc(tracker->bucket_count, sizeof(*tracker->buckets));
  if (tracker->buckets == NULL) {
    free(tracker);
    return NULL;
  }
  struct ag_error err = {0};
  if (plat_mutex_new(&tracker->lock, &err) != AG_OK) {
    free(tracker->buckets);
    free(tracker);
    return NULL;
  }
  return tracker;
}

void stable_free(struct stable *tracker)
{
  if (tracker == NULL)
    return;
  for (size_t i = 0; i < tracker->bucket_count; i++) {
    struct observation *node = tracker->buckets[i];
    while (node != NULL) {
      struct observation *next = node->next;
      free(node);
      node = next;
    }
  }
  free(tracker->buckets);
  plat_mutex_free(tracker->lock);
  free(tracker);
}

static struct observation **find_slot(struct stable *tracker, const void *key,
                                      size_t key_len)
{
  size_t index = hash_key(key, key_len) & (tracker->bucket_count - 1);
  struct observation **slot = &tracker->buckets[index];

  while (*slot != NULL && ((*slot)->key_len != key_len ||
                           memcmp((*slot)->key, key, key_len) != 0))
    slot = &(*slot)->next;
  return slot;
}

/* Double the table when it averages more than one key per bucket. A failed
 * resize leaves the table as it was, only slower. */
static void grow(struct stable *tracker)
{
  size_t new_count = tracker->bucket_count * 2;
  struct observation **buckets = calloc(new_count, sizeof(*buckets));

  if (buckets == NULL)
    return;
  for (size_t i = 0; i < tracker->bucket_count; i++) {
    struct observation *node = tracker->buckets[i];
    while (node != NULL) {
      struct observation *next = node->next;
      size_t index = hash_key(node->key, node->key_len) & (new_count - 1);
      node->next = buckets[index];
      buckets[index] = node;
      node = next;
    }
  }
  free(tracker->buckets);
  tracker->buckets = buckets;
  tracker->bucket_count = new_count;
}

static int observe(struct stable *tracker, const void *key, size_t key_len,
                   uint64_t size, int64_t mtime, int64_t now_ms,
                   int64_t stable_ms)
{
  struct observation **slot = find_slot(tracker, key, key_len);
  struct observation *node = *slot;

  if (node == NULL) {
    node = malloc(sizeof(*node) + key_len);
    if (node == NULL)
      return -1;
    node->next = NULL;
    node->key_len = key_len;
    memcpy(node->key, key, key_len);
    node->size = size;
    node->mtime = mtime;
    node->since_ms = now_ms;
    *slot = node;
    tracker->count++;
    if (tracker->count > tracker->bucket_count)
      grow(tracker);
  } else if (node->size != size || node->mtime != mtime) {
    node->size = size;
    node->mtime = mtime;
    node->since_ms = now_ms;
  }
  node->generation = tracker->generation;
  return now_ms - node->since_ms >= stable_ms ? 1 : 0;
}

bool stable_contains(struct stable *tracker, const void *key, size_t key_len)
{
  plat_mutex_lock(tracker->lock);
  bool found = *find_slot(tracker, key, key_len) != NULL;
  plat_mutex_unlock(tracker->lock);
  return found;
}

int stable_observe(struct stable *tracker, const void *key, size_t key_len,
                   uint64_t size, int64_t mtime, int64_t now_ms,
                   int64_t stable_ms)
{
  plat_mutex_lock(tracker->lock);
  int stable = observe(tracker, key, key_len, size, mtime, now_ms, stable_ms);
  plat_mutex_unlock(tracker->lock);
  return stable;
}

void stable_forget(struct stable *tracker, const void *key, size_t key_len)
{
  plat_mutex_lock(tracker->lock);
  struct observation **slot = find_slot(tracker, key, key_len);
  struct observation *node = *slot;

  if (node != NULL) {
    *slot = node->next;
    free(node);
    tracker->count--;
  }
  plat_mutex_unlock(tracker->lock);
}

void stable_next_generation(struct stable *tracker)
{
  plat_mutex_lock(tracker->lock);
  for (size_t i = 0; i < tracker->bucket_count; i++) {
    struct observation **slot = &tracker->buckets[i];
    while (*slot != NULL) {
      struct observation *node = *slot;
      if (node->generation != tracker->generation) {
        *slot = node->next;
        free(node);
        tracker->count--;
      } else {
        slot = &node->next;
      }
    }
  }
  tracker->generation++;
  plat_mutex_unlock(tracker->lock);
}

size_t stable_count(const struct stable *tracker)
{
  return tracker->count;
}
