/* The service command: the entry point that the Service Control Manager
 * starts. It runs daemon_run(), the loop of the run command, on the
 * service's thread and translates between the two worlds:
 *
 * - SERVICE_START_PENDING until daemon_run() reports readiness through
 *   notify_ready() (src/win/notify_win.c): the config is loaded, the state
 *   folder locked and the first connection tried. Then SERVICE_RUNNING.
 * - STOP, SHUTDOWN and PRESHUTDOWN set the stop flag that SIGTERM sets on
 *   POSIX, PARAMCHANGE the reload flag of SIGHUP (src/win/signals_win.c).
 * - SERVICE_STOPPED once daemon_run() has returned, so after the manifest
 *   and the lock are closed. A start-up error stops the service with
 *   ERROR_SERVICE_SPECIFIC_ERROR and the agent's exit code (2 for the
 *   config, 4 local, 5 locked, 6 lost manifest), which 'sc query' shows
 *   and which lets the recovery actions restart it.
 *
 * Warnings and errors also go to the Application event log, whatever
 * log_target sets, because a service has no console. */
#include "agent/service.h"

#include "agent/daemon.h"
#include "agent/error.h"
#include "agent/log.h"
#include "agent/platform.h"
#include "win_internal.h"

#include <stdio.h>
#include <string.h>

/* Wait hint for the pending states, and the interval at which the
 * checkpoint advances while the service starts or stops. A start takes up
 * to the config's timeout for the first connection, and a stop waits for
 * the file in progress to reach its next recorded step. */
#define PENDING_WAIT_HINT_MS 10000
#define CHECKPOINT_INTERVAL_MS 2000

static struct {
  const char *config_path;
  bool verbose;
  bool active;
  SERVICE_STATUS_HANDLE handle;
  SERVICE_STATUS status;
  CRITICAL_SECTION lock; /* guards status: the control handler and the
                            checkpoint thread report too */
  HANDLE ticker_stop;    /* set to end the checkpoint thread */
  int exit_code;
} service;

/* Send the status with state, its checkpoint and the controls that state
 * accepts. Takes the lock. */
static void report(DWORD state, DWORD win32_exit, DWORD specific_exit)
{
  EnterCriticalSection(&service.lock);
  service.status.dwCurrentState = state;
  service.status.dwWin32ExitCode = win32_exit;
  service.status.dwServiceSpecificExitCode = specific_exit;
  bool pending =
      state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING;
  service.status.dwWaitHint = pending ? PENDING_WAIT_HINT_MS : 0;
  service.status.dwCheckPoint = pending ? service.status.dwCheckPoint + 1 : 0;
  /* Controls only while running: a stop that came during start-up would
   * be lost when daemon_run() installs the handlers and clears requests. */
  service.status.dwControlsAccepted =
      state == SERVICE_RUNNING
          ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN |
                SERVICE_ACCEPT_PRESHUTDOWN | SERVICE_ACCEPT_PARAMCHANGE
          : 0;
  SetServiceStatus(service.handle, &service.status);
  LeaveCriticalSection(&service.lock);
}

/* Advance the checkpoint of a pending state every CHECKPOINT_INTERVAL_MS,
 * so that the Service Control Manager treats a start or stop that waits
 * for the network as alive.
 * NOTE: it also advances while daemon_run() hangs, so a hung start shows
 * as pending until the operator ends the process. */
static DWORD WINAPI advance_checkpoints(void *unused)
{
  (void)unused;
  while (WaitForSingleObject(service.ticker_stop, CHECKPOINT_INTERVAL_MS) ==
         WAIT_TIMEOUT) {
    EnterCriticalSection(&service.lock);
    DWORD state = service.status.dwCurrentState;
    if (state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING) {
      service.status.dwCheckPoint++;
      SetServiceStatus(service.handle, &service.status);
    }
    LeaveCriticalSection(&service.lock);
  }
  return 0;
}

bool service_win_active(void)
{
  return service.active;
}

void service_win_report_running(void)
{
  report(SERVICE_RUNNING, NO_ERROR, 0);
}

void service_win_report_stopping(void)
{
  report(SERVICE_STOP_PENDING, NO_ERROR, 0);
}

static DWORD WINAPI handle_control(DWORD control, DWORD event_type,
                                   void *event_data, void *context)
{
  (void)event_type;
  (void)event_data;
  (void)context;
  switch (control) {
  case SERVICE_CONTROL_STOP:
    signals_win_request_stop("SERVICE_CONTROL_STOP");
    report(SERVICE_STOP_PENDING, NO_ERROR, 0);
    return NO_ERROR;
  case SERVICE_CONTROL_SHUTDOWN:
    signals_win_request_stop("SERVICE_CONTROL_SHUTDOWN");
    report(SERVICE_STOP_PENDING, NO_ERROR, 0);
    return NO_ERROR;
  case SERVICE_CONTROL_PRESHUTDOWN:
    signals_win_request_stop("SERVICE_CONTROL_PRESHUTDOWN");
    report(SERVICE_STOP_PENDING, NO_ERROR, 0);
    return NO_ERROR;
  case SERVICE_CONTROL_PARAMCHANGE:
    signals_win_request_reload();
    return NO_ERROR;
  case SERVICE_CONTROL_INTERROGATE:
    return NO_ERROR;
  default:
    return ERROR_CALL_NOT_IMPLEMENTED;
  }
}

/* Run daemon_run() and return the exit code for the Service Control
 * Manager, 0 after a clean stop. */
static int run_loop(void)
{
  struct daemon_options options = {.verbose = service.verbose};
  struct ag_error err = {0};

  if (service.verbose)
    log_set_level(LOG_LEVEL_DEBUG);
  log_copy_to_system_log(LOG_LEVEL_WARN);
  if (daemon_run(service.config_path, &options, &err) == AG_OK)
    return 0;

  /* daemon_run() has closed the log file already. */
  char message[AG_ERROR_MESSAGE_MAX + 64];
  snprintf(message, sizeof(message), "the service failed to start: %s",
           err.message);
  plat_system_log_write(3, message);
  log_error("%s", message);
  return ag_exit_code(err.code);
}

static void WINAPI service_main(DWORD argc, wchar_t **argv)
{
  (void)argc;
  (void)argv;
  service.handle =
      RegisterServiceCtrlHandlerExW(WIN_EVENT_SOURCE, handle_control, NULL);
  if (service.handle == NULL)
    return;
  service.active = true;
  service.status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
  report(SERVICE_START_PENDING, NO_ERROR, 0);

  service.ticker_stop = CreateEventW(NULL, TRUE, FALSE, NULL);
  HANDLE ticker =
      service.ticker_stop != NULL
          ? CreateThread(NULL, 0, advance_checkpoints, NULL, 0, NULL)
          : NULL;

  service.exit_code = run_loop();

  if (ticker != NULL) {
    SetEvent(service.ticker_stop);
    WaitForSingleObject(ticker, INFINITE);
    CloseHandle(ticker);
  }
  if (service.ticker_stop != NULL)
    CloseHandle(service.ticker_stop);
  plat_system_log_close();
  if (service.exit_code == 0)
    report(SERVICE_STOPPED, NO_ERROR, 0);
  else
    report(SERVICE_STOPPED, ERROR_SERVICE_SPECIFIC_ERROR,
           (DWORD)service.exit_code);
}

int service_start(const char *config_path, bool verbose)
{
  SERVICE_TABLE_ENTRYW table[] = {
      {(wchar_t *)WIN_EVENT_SOURCE, service_main},
      {NULL, NULL},
  };
  char text[256];

  service.config_path = config_path;
  service.verbose = verbose;
  InitializeCriticalSection(&service.lock);

  /* Returns once the service has stopped. */
  if (!StartServiceCtrlDispatcherW(table)) {
    DWORD error = GetLastError();
    if (error == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT)
      fprintf(stderr,
              "rossum-sftp-agent: the service command is for the Service "
              "Control Manager; start the service with 'sc start %s', or "
              "use run in a console\n",
              SERVICE_NAME);
    else
      fprintf(stderr,
              "rossum-sftp-agent: cannot connect to the Service Control "
              "Manager: %s\n",
              win_error_text(error, text, sizeof(text)));
    return 2;
  }
  return service.exit_code;
}
