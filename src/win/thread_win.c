/* Windows threads behind the thread functions of agent/platform.h:
 * _beginthreadex() threads, critical sections and condition variables. */
#include "agent/platform.h"

#include "win_internal.h"

#include <errno.h>
#include <process.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct plat_thread {
  HANDLE handle;
  void (*fn)(void *arg);
  void *arg;
};

/* A critical section, because SleepConditionVariableCS() waits on one. */
struct plat_mutex {
  CRITICAL_SECTION section;
};

struct plat_cond {
  CONDITION_VARIABLE cond;
};

/* A failed wait means a destroyed or corrupted object, which only a bug
 * in the agent can cause. Going on would risk a second delivery, so the
 * process ends, as in thread_posix.c. */
static void die_on_failure(const char *call)
{
  char text[256];

  fprintf(stderr,
          "rossum-sftp-agent: %s failed: %s. This is a bug in the "
          "agent.\n",
          call, win_error_text(GetLastError(), text, sizeof(text)));
  abort();
}

static unsigned __stdcall run_thread(void *arg)
{
  struct plat_thread *thread = arg;

  thread->fn(thread->arg);
  return 0;
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
  /* _beginthreadex(), not CreateThread(), so that the C runtime sets up
   * its per-thread state (errno, strtok) for the thread. */
  uintptr_t handle = _beginthreadex(NULL, 0, run_thread, thread, 0, NULL);
  if (handle == 0) {
    int saved_errno = errno;
    free(thread);
    return ag_error_set(err, AG_ELOCAL, "cannot start a thread: %s",
                        strerror(saved_errno));
  }
  thread->handle = (HANDLE)handle;
  *out = thread;
  return AG_OK;
}

void plat_thread_join(struct plat_thread *thread)
{
  if (WaitForSingleObject(thread->handle, INFINITE) != WAIT_OBJECT_0)
    die_on_failure("WaitForSingleObject");
  CloseHandle(thread->handle);
  free(thread);
}

enum ag_code plat_mutex_new(struct plat_mutex **out, struct ag_error *err)
{
  struct plat_mutex *mutex = malloc(sizeof(*mutex));

  *out = NULL;
  if (mutex == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory for a mutex");
  InitializeCriticalSection(&mutex->section);
  *out = mutex;
  return AG_OK;
}

void plat_mutex_free(struct plat_mutex *mutex)
{
  if (mutex == NULL)
    return;
  DeleteCriticalSection(&mutex->section);
  free(mutex);
}

void plat_mutex_lock(struct plat_mutex *mutex)
{
  EnterCriticalSection(&mutex->section);
}

void plat_mutex_unlock(struct plat_mutex *mutex)
{
  LeaveCriticalSection(&mutex->section);
}

enum ag_code plat_cond_new(struct plat_cond **out, struct ag_error *err)
{
  struct plat_cond *cond = malloc(sizeof(*cond));

  *out = NULL;
  if (cond == NULL)
    return ag_error_set(err, AG_ENOMEM,
                        "out of memory for a condition variable");
  InitializeConditionVariable(&cond->cond);
  *out = cond;
  return AG_OK;
}

void plat_cond_free(struct plat_cond *cond)
{
  /* A condition variable owns no resources on Windows. */
  free(cond);
}

void plat_cond_wait(struct plat_cond *cond, struct plat_mutex *mutex)
{
  if (!SleepConditionVariableCS(&cond->cond, &mutex->section, INFINITE))
    die_on_failure("SleepConditionVariableCS");
}

bool plat_cond_wait_ms(struct plat_cond *cond, struct plat_mutex *mutex,
                       int64_t ms)
{
  /* The timeout is relative and follows the tick count, not the wall
   * clock, so setting the clock does not change it. A wait that ends
   * early is reported as a wake-up, which callers check in a loop. */
  DWORD timeout = ms <= 0                         ? 0
                  : ms >= (int64_t)(INFINITE - 1) ? INFINITE - 1
                                                  : (DWORD)ms;

  if (SleepConditionVariableCS(&cond->cond, &mutex->section, timeout))
    return true;
  if (GetLastError() == ERROR_TIMEOUT)
    return false;
  die_on_failure("SleepConditionVariableCS");
  return false;
}

void plat_cond_signal(struct plat_cond *cond)
{
  WakeConditionVariable(&cond->cond);
}

void plat_cond_broadcast(struct plat_cond *cond)
{
  WakeAllConditionVariable(&cond->cond);
}
