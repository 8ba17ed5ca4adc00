/* POSIX threads behind the thread functions of agent/platform.h. */
#include "agent/platform.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct plat_thread {
  pthread_t id;
  void (*fn)(void *arg);
  void *arg;
};

struct plat_mutex {
  pthread_mutex_t mutex;
};

struct plat_cond {
  pthread_cond_t cond;
};

/* A failed lock, unlock, wait or signal means a destroyed or corrupted
 * object, which only a bug in the agent can cause. Going on would risk a
 * second delivery, so the process ends. */
static void die_on(int rc, const char *call)
{
  if (rc == 0)
    return;
  fprintf(stderr,
          "rossum-sftp-agent: %s failed: %s. This is a bug in the "
          "agent.\n",
          call, strerror(rc));
  abort();
}

static void *run_thread(void *arg)
{
  struct plat_thread *thread = arg;

  thread->fn(thread->arg);
  return NULL;
}

enum ag_code plat_thread_start(void (*fn)(void *arg), void *arg,
                               struct plat_thread **out, struct ag_error *err)
{
  struct plat_thread *thread = malloc(sizeof(*thread));

  *out = NULL;
  if (thread == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  thread->fn = fn;
  thread->arg = arg;
  int rc = pthread_create(&thread->id, NULL, run_thread, thread);
  if (rc != 0) {
    free(thread);
    return ag_error_set(err, AG_ELOCAL, "cannot start a thread: %s",
                        strerror(rc));
  }
  *out = thread;
  return AG_OK;
}

void plat_thread_join(struct plat_thread *thread)
{
  die_on(pthread_join(thread->id, NULL), "pthread_join");
  free(thread);
}

enum ag_code plat_mutex_new(struct plat_mutex **out, struct ag_error *err)
{
  struct plat_mutex *mutex = malloc(sizeof(*mutex));

  *out = NULL;
  if (mutex == NULL || pthread_mutex_init(&mutex->mutex, NULL) != 0) {
    free(mutex);
    return ag_error_set(err, AG_ENOMEM, "out of memory for a mutex");
  }
  *out = mutex;
  return AG_OK;
}

void plat_mutex_free(struct plat_mutex *mutex)
{
  if (mutex == NULL)
    return;
  pthread_mutex_destroy(&mutex->mutex);
  free(mutex);
}

void plat_mutex_lock(struct plat_mutex *mutex)
{
  die_on(pthread_mutex_lock(&mutex->mutex), "pthread_mutex_lock");
}

void plat_mutex_unlock(struct plat_mutex *mutex)
{
  die_on(pthread_mutex_unlock(&mutex->mutex), "pthread_mutex_unlock");
}

enum ag_code plat_cond_new(struct plat_cond **out, struct ag_error *err)
{
  struct plat_cond *cond = malloc(sizeof(*cond));
  pthread_condattr_t attr;
  bool ready = false;

  *out = NULL;
  if (cond != NULL && pthread_condattr_init(&attr) == 0) {
    ready = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
            pthread_cond_init(&cond->cond, &attr) == 0;
    pthread_condattr_destroy(&attr);
  }
  if (!ready) {
    free(cond);
    return ag_error_set(err, AG_ENOMEM,
                        "out of memory for a condition variable");
  }
  *out = cond;
  return AG_OK;
}

void plat_cond_free(struct plat_cond *cond)
{
  if (cond == NULL)
    return;
  pthread_cond_destroy(&cond->cond);
  free(cond);
}

void plat_cond_wait(struct plat_cond *cond, struct plat_mutex *mutex)
{
  die_on(pthread_cond_wait(&cond->cond, &mutex->mutex), "pthread_cond_wait");
}

bool plat_cond_wait_ms(struct plat_cond *cond, struct plat_mutex *mutex,
                       int64_t ms)
{
  struct timespec until;

  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += (time_t)(ms / 1000);
  until.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  int rc = pthread_cond_timedwait(&cond->cond, &mutex->mutex, &until);
  if (rc == ETIMEDOUT)
    return false;
  die_on(rc, "pthread_cond_timedwait");
  return true;
}

void plat_cond_signal(struct plat_cond *cond)
{
  die_on(pthread_cond_signal(&cond->cond), "pthread_cond_signal");
}

void plat_cond_broadcast(struct plat_cond *cond)
{
  die_on(pthread_cond_broadcast(&cond->cond), "pthread_cond_broadcast");
}
