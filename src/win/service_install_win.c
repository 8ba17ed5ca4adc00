/* The install and uninstall commands: the service's registration with the
 * Service Control Manager, its event log source, its data folder and an
 * example config.
 *
 * The service runs as its virtual account, NT SERVICE\rossum-sftp-agent,
 * which Windows creates with the service and which needs no password. The
 * data folder (%ProgramData%\rossum-sftp-agent) is limited to
 * Administrators, SYSTEM and that account, because it contains the config,
 * the key files, the manifest and the outputs. */
#include "agent/service.h"

#include "agent/platform.h"
#include "win_internal.h"

#include <aclapi.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <openssl/sha.h>
#include <sddl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SERVICE_DISPLAY_NAME L"Rossum SFTP agent"
#define SERVICE_DESCRIPTION                                                    \
  L"Collects Rossum export files from an SFTP server, writes one JSON file "   \
  L"per export and archives the remote files."
#define SERVICE_ACCOUNT L"NT SERVICE\\" WIN_EVENT_SOURCE
#define EVENT_SOURCE_KEY                                                       \
  L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application"                \
  L"\\" WIN_EVENT_SOURCE

/* Recovery after a failure: restart after 10 s, then 60 s, then every 5
 * minutes; the count starts again after a day without failure. */
#define RESET_PERIOD_S 86400
static const DWORD restart_delays_ms[] = {10000, 60000, 300000};

/* Exit codes, as main() documents them. */
#define EXIT_OK 0
#define EXIT_USAGE 2
#define EXIT_LOCAL 4

/* Time that uninstall waits for a running service to stop. */
#define STOP_WAIT_MS 60000

/* Print what failed with the Win32 error text. Returns EXIT_LOCAL. */
static int fail(const char *what, DWORD error)
{
  char text[256];

  fprintf(stderr, "rossum-sftp-agent: %s: %s\n", what,
          win_error_text(error, text, sizeof(text)));
  if (error == ERROR_ACCESS_DENIED)
    fprintf(stderr, "rossum-sftp-agent: run the command in a console that "
                    "runs as an administrator\n");
  return EXIT_LOCAL;
}

/* Print a step that failed without failing the command. */
static void warn(const char *what, DWORD error)
{
  char text[256];

  fprintf(stderr, "rossum-sftp-agent: warning: %s: %s\n", what,
          win_error_text(error, text, sizeof(text)));
}

/* Return the malloc'd command line that starts the service:
 * "<this executable>" service -c "<config_path>". */
static wchar_t *service_command_line(const char *config_path)
{
  wchar_t program[MAX_PATH * 4];
  DWORD len =
      GetModuleFileNameW(NULL, program, sizeof(program) / sizeof(program[0]));
  wchar_t *config = win_utf16(config_path);

  if (len == 0 || len >= sizeof(program) / sizeof(program[0]) ||
      config == NULL) {
    free(config);
    return NULL;
  }
  size_t size = wcslen(program) + wcslen(config) + 32;
  wchar_t *line = malloc(size * sizeof(*line));
  if (line != NULL)
    _snwprintf(line, size, L"\"%ls\" service -c \"%ls\"", program, config);
  if (line != NULL)
    line[size - 1] = L'\0';
  free(config);
  return line;
}

/* Set the description, the recovery actions, the SID type that the
 * virtual account needs, and a longer time to stop at shutdown. */
static int configure_service(SC_HANDLE handle)
{
  SERVICE_DESCRIPTIONW description = {.lpDescription = SERVICE_DESCRIPTION};
  SC_ACTION actions[3];
  SERVICE_FAILURE_ACTIONSW failure = {
      .dwResetPeriod = RESET_PERIOD_S, .cActions = 3, .lpsaActions = actions};
  /* Without this flag, recovery acts only on a crash, not on a service
   * that stops with an error code after a failed start. */
  SERVICE_FAILURE_ACTIONS_FLAG on_error = {.fFailureActionsOnNonCrashFailures =
                                               TRUE};
  SERVICE_SID_INFO sid = {.dwServiceSidType = SERVICE_SID_TYPE_UNRESTRICTED};
  SERVICE_PRESHUTDOWN_INFO preshutdown = {.dwPreshutdownTimeout = 30000};

  for (size_t i = 0; i < 3; i++) {
    actions[i].Type = SC_ACTION_RESTART;
    actions[i].Delay = restart_delays_ms[i];
  }
  if (!ChangeServiceConfig2W(handle, SERVICE_CONFIG_DESCRIPTION, &description))
    return fail("cannot set the service description", GetLastError());
  if (!ChangeServiceConfig2W(handle, SERVICE_CONFIG_FAILURE_ACTIONS, &failure))
    return fail("cannot set the recovery actions", GetLastError());

  /* Windows sets the SID type of a virtual account's service by itself,
   * and the shutdown time only adds to the default. Without the flag,
   * recovery still restarts a crashed service. A system that rejects these
   * three (wine 8 does) still gets a working service. */
  if (!ChangeServiceConfig2W(handle, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG,
                             &on_error))
    warn("cannot make recovery restart a service that failed to start",
         GetLastError());
  if (!ChangeServiceConfig2W(handle, SERVICE_CONFIG_SERVICE_SID_INFO, &sid))
    warn("cannot set the service SID type", GetLastError());
  if (!ChangeServiceConfig2W(handle, SERVICE_CONFIG_PRESHUTDOWN_INFO,
                             &preshutdown))
    warn("cannot set the time the service gets to stop at shutdown",
         GetLastError());
  return EXIT_OK;
}

/* Create the service, or update its settings when it exists already. */
static int register_service(const char *config_path)
{
  wchar_t *line = service_command_line(config_path);
  SC_HANDLE manager = NULL;
  SC_HANDLE handle = NULL;
  int status = EXIT_OK;

  if (line == NULL) {
    fprintf(stderr, "rossum-sftp-agent: cannot build the service's command "
                    "line\n");
    return EXIT_LOCAL;
  }
  manager = OpenSCManagerW(NULL, NULL, SC_MANAGER_CREATE_SERVICE);
  if (manager == NULL) {
    status = fail("cannot open the Service Control Manager", GetLastError());
    goto out;
  }
  handle = CreateServiceW(manager, WIN_EVENT_SOURCE, SERVICE_DISPLAY_NAME,
                          SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS,
                          SERVICE_AUTO_START, SERVICE_ERROR_NORMAL, line, NULL,
                          NULL, NULL, SERVICE_ACCOUNT, NULL);
  if (handle == NULL && GetLastError() == ERROR_SERVICE_EXISTS) {
    handle = OpenServiceW(manager, WIN_EVENT_SOURCE, SERVICE_ALL_ACCESS);
    if (handle != NULL &&
        !ChangeServiceConfigW(handle, SERVICE_WIN32_OWN_PROCESS,
                              SERVICE_AUTO_START, SERVICE_ERROR_NORMAL, line,
                              NULL, NULL, NULL, SERVICE_ACCOUNT, L"",
                              SERVICE_DISPLAY_NAME)) {
      status = fail("cannot update the service", GetLastError());
      goto out;
    }
    if (handle != NULL)
      printf("updated the existing service '%s'\n", SERVICE_NAME);
  } else if (handle != NULL) {
    printf("registered the service '%s' (automatic start, account "
           "NT SERVICE\\%s)\n",
           SERVICE_NAME, SERVICE_NAME);
  }
  if (handle == NULL) {
    status = fail("cannot register the service", GetLastError());
    goto out;
  }
  status = configure_service(handle);

out:
  if (handle != NULL)
    CloseServiceHandle(handle);
  if (manager != NULL)
    CloseServiceHandle(manager);
  free(line);
  return status;
}

/* Register this executable as the message file of the event source. */
static int register_event_source(void)
{
  wchar_t program[MAX_PATH * 4];
  DWORD types =
      EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE | EVENTLOG_INFORMATION_TYPE;
  HKEY key = NULL;
  DWORD len =
      GetModuleFileNameW(NULL, program, sizeof(program) / sizeof(program[0]));

  if (len == 0 || len >= sizeof(program) / sizeof(program[0]))
    return fail("cannot find this program's path", GetLastError());
  LSTATUS rc = RegCreateKeyExW(HKEY_LOCAL_MACHINE, EVENT_SOURCE_KEY, 0, NULL, 0,
                               KEY_SET_VALUE, NULL, &key, NULL);
  if (rc == ERROR_SUCCESS)
    rc = RegSetValueExW(key, L"EventMessageFile", 0, REG_EXPAND_SZ,
                        (const BYTE *)program, (len + 1) * sizeof(wchar_t));
  if (rc == ERROR_SUCCESS)
    rc = RegSetValueExW(key, L"TypesSupported", 0, REG_DWORD,
                        (const BYTE *)&types, sizeof(types));
  if (key != NULL)
    RegCloseKey(key);
  if (rc != ERROR_SUCCESS)
    return fail("cannot register the event log source", (DWORD)rc);
  printf("registered the event log source '%s' in the Application log\n",
         SERVICE_NAME);
  return EXIT_OK;
}

/* Store the SID of the service's virtual account, NT SERVICE\<name>, as
 * text in out. Windows derives it without a lookup: S-1-5-80 followed by
 * the SHA-1 of the upper-case service name in UTF-16LE, read as five
 * little-endian 32-bit numbers. Computing it also works where the account
 * cannot be looked up, such as under wine, and before the SCM has made
 * the account known. Returns false when out is too small. */
static bool service_sid_text(wchar_t *out, size_t size)
{
  const char *name = SERVICE_NAME;
  unsigned char utf16[2 * 64];
  unsigned char digest[SHA_DIGEST_LENGTH];
  size_t len = strlen(name);

  if (len > sizeof(utf16) / 2)
    return false;
  for (size_t i = 0; i < len; i++) {
    utf16[2 * i] = (unsigned char)toupper((unsigned char)name[i]);
    utf16[2 * i + 1] = 0;
  }
  SHA1(utf16, 2 * len, digest);

  uint32_t part[5];
  for (int i = 0; i < 5; i++)
    part[i] = (uint32_t)digest[4 * i] | (uint32_t)digest[4 * i + 1] << 8 |
              (uint32_t)digest[4 * i + 2] << 16 |
              (uint32_t)digest[4 * i + 3] << 24;
  int written = _snwprintf(out, size, L"S-1-5-80-%lu-%lu-%lu-%lu-%lu",
                           (unsigned long)part[0], (unsigned long)part[1],
                           (unsigned long)part[2], (unsigned long)part[3],
                           (unsigned long)part[4]);
  return written > 0 && (size_t)written < size;
}

/* Limit the data folder to Administrators, SYSTEM and the service's
 * account, replacing the rights that %ProgramData% passes down to every
 * user. Files and folders below it inherit the same list. */
static int restrict_folder(const char *dir)
{
  wchar_t sid_text[128];
  PSECURITY_DESCRIPTOR descriptor = NULL;
  int status = EXIT_OK;

  if (!service_sid_text(sid_text, sizeof(sid_text) / sizeof(sid_text[0]))) {
    status = fail("cannot compute the SID of the service's account", 0);
    goto out;
  }

  /* Full control for Administrators and SYSTEM; modify (read, write,
   * create, delete) for the service, which may not change the rights. */
  wchar_t sddl[512];
  _snwprintf(sddl, sizeof(sddl) / sizeof(sddl[0]),
             L"D:P(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)(A;OICI;0x1301bf;;;%ls)",
             sid_text);
  sddl[sizeof(sddl) / sizeof(sddl[0]) - 1] = L'\0';
  BOOL present = FALSE;
  BOOL defaulted = FALSE;
  PACL dacl = NULL;
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(
          sddl, SDDL_REVISION_1, &descriptor, NULL) ||
      !GetSecurityDescriptorDacl(descriptor, &present, &dacl, &defaulted)) {
    status = fail("cannot build the folder's access list", GetLastError());
    goto out;
  }

  wchar_t *wide = win_path(dir);
  DWORD rc =
      wide != NULL
          ? SetNamedSecurityInfoW(wide, SE_FILE_OBJECT,
                                  DACL_SECURITY_INFORMATION |
                                      PROTECTED_DACL_SECURITY_INFORMATION,
                                  NULL, NULL, dacl, NULL)
          : ERROR_INVALID_NAME;
  free(wide);
  if (rc != ERROR_SUCCESS) {
    char what[600];
    snprintf(what, sizeof(what), "cannot set the access list of '%s'", dir);
    status = fail(what, rc);
    goto out;
  }
  printf("limited '%s' to Administrators, SYSTEM and NT SERVICE\\%s\n", dir,
         SERVICE_NAME);

out:
  LocalFree(descriptor);
  return status;
}

/* Write an example config at path, whose folder exists, naming files in
 * data_dir. */
static int write_example_config(const char *path, const char *data_dir)
{
  FILE *file = plat_fopen(path, "wb");

  if (file == NULL) {
    fprintf(stderr, "rossum-sftp-agent: cannot create '%s': %s\n", path,
            strerror(errno));
    return EXIT_LOCAL;
  }
  fprintf(file,
          "# rossum-sftp-agent configuration, written by 'rossum-sftp-agent "
          "install'.\r\n"
          "# Every key is described in agent.conf.example, which comes with "
          "the\r\n"
          "# program. Fill in the server, then check the config with\r\n"
          "#   rossum-sftp-agent check -c \"%s\"\r\n"
          "# and start the service with 'sc start %s'. After a change, "
          "'sc control\r\n"
          "# %s paramchange' reloads it.\r\n"
          "\r\n"
          "[server]\r\n"
          "# The SFTP server's name, port and user.\r\n"
          "host = 127.0.0.1\r\n"
          "port = 22\r\n"
          "user = rossum\r\n"
          "# A private key, readable only by Administrators, SYSTEM and the "
          "service.\r\n"
          "private_key = %s\\id_ed25519\r\n"
          "# The server's host key, for example from 'ssh-keyscan'.\r\n"
          "known_hosts = %s\\known_hosts\r\n"
          "\r\n"
          "[remote]\r\n"
          "inbox = /export\r\n"
          "archive = /export/archive\r\n"
          "error = /export/error\r\n"
          "include = *.xml *.csv\r\n"
          "\r\n"
          "[local]\r\n"
          "state_dir = %s\\state\r\n"
          "# Give the program that collects the outputs read access to this\r\n"
          "# folder, for example with icacls.\r\n"
          "output_dir = %s\\output\r\n"
          "\r\n"
          "[agent]\r\n"
          "poll_interval = 30\r\n"
          "log_level = info\r\n"
          "# Warnings and errors also go to the Application event log.\r\n"
          "log_target = file\r\n"
          "log_file = %s\\agent.log\r\n",
          path, SERVICE_NAME, SERVICE_NAME, data_dir, data_dir, data_dir,
          data_dir, data_dir);
  if (fclose(file) != 0) {
    fprintf(stderr, "rossum-sftp-agent: cannot write '%s': %s\n", path,
            strerror(errno));
    return EXIT_LOCAL;
  }
  printf("wrote an example config to '%s'; fill in the server before you "
         "start the service\n",
         path);
  return EXIT_OK;
}

/* Create the data folder and the config's folder, and an example config
 * when none exists. */
static int prepare_files(const char *config_path, const char *data_dir)
{
  struct ag_error err = {0};
  size_t folder_len = (size_t)(plat_path_base(config_path) - config_path);
  char *folder = strndup(config_path, folder_len);

  if (folder == NULL) {
    fprintf(stderr, "rossum-sftp-agent: out of memory\n");
    return EXIT_LOCAL;
  }
  if (plat_mkdirs(data_dir, &err) != AG_OK ||
      (folder_len > 0 && plat_mkdirs(folder, &err) != AG_OK)) {
    fprintf(stderr, "rossum-sftp-agent: %s\n", err.message);
    free(folder);
    return EXIT_LOCAL;
  }
  free(folder);
  if (plat_exists(config_path) == 1) {
    printf("kept the existing config '%s'\n", config_path);
    return EXIT_OK;
  }
  return write_example_config(config_path, data_dir);
}

int service_install(const char *config_path)
{
  const char *data_dir = win_data_dir();

  if (!plat_path_is_absolute(config_path)) {
    fprintf(stderr,
            "rossum-sftp-agent: the config path must be absolute, such as "
            "C:\\ProgramData\\%s\\agent.conf, not '%s'\n",
            SERVICE_NAME, config_path);
    return EXIT_USAGE;
  }
  int status = prepare_files(config_path, data_dir);
  if (status == EXIT_OK)
    status = register_service(config_path);
  if (status == EXIT_OK)
    status = register_event_source();
  if (status == EXIT_OK)
    status = restrict_folder(data_dir);
  if (status == EXIT_OK)
    printf("start the service with 'sc start %s'\n", SERVICE_NAME);
  return status;
}

/* Ask a running service to stop and wait until it has. */
static int stop_service(SC_HANDLE handle)
{
  SERVICE_STATUS status;
  int64_t deadline = plat_monotonic_ms() + STOP_WAIT_MS;

  if (!QueryServiceStatus(handle, &status))
    return fail("cannot query the service", GetLastError());
  if (status.dwCurrentState == SERVICE_STOPPED)
    return EXIT_OK;
  if (status.dwCurrentState != SERVICE_STOP_PENDING &&
      !ControlService(handle, SERVICE_CONTROL_STOP, &status) &&
      GetLastError() != ERROR_SERVICE_NOT_ACTIVE)
    return fail("cannot stop the service", GetLastError());
  printf("stopping the service '%s'\n", SERVICE_NAME);
  while (QueryServiceStatus(handle, &status) &&
         status.dwCurrentState != SERVICE_STOPPED) {
    if (plat_monotonic_ms() > deadline) {
      fprintf(stderr,
              "rossum-sftp-agent: the service did not stop within %d s; "
              "it is removed once it stops\n",
              STOP_WAIT_MS / 1000);
      return EXIT_OK;
    }
    Sleep(500);
  }
  return EXIT_OK;
}

int service_uninstall(void)
{
  SC_HANDLE manager = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
  SC_HANDLE handle = NULL;
  int status = EXIT_OK;

  if (manager == NULL)
    return fail("cannot open the Service Control Manager", GetLastError());
  handle = OpenServiceW(manager, WIN_EVENT_SOURCE,
                        SERVICE_STOP | SERVICE_QUERY_STATUS | DELETE);
  if (handle == NULL && GetLastError() == ERROR_SERVICE_DOES_NOT_EXIST) {
    printf("the service '%s' is not registered\n", SERVICE_NAME);
  } else if (handle == NULL) {
    status = fail("cannot open the service", GetLastError());
  } else {
    status = stop_service(handle);
    if (status == EXIT_OK && !DeleteService(handle) &&
        GetLastError() != ERROR_SERVICE_MARKED_FOR_DELETE)
      status = fail("cannot remove the service", GetLastError());
    else if (status == EXIT_OK)
      printf("removed the service '%s'\n", SERVICE_NAME);
    CloseServiceHandle(handle);
  }
  CloseServiceHandle(manager);

  LSTATUS rc = RegDeleteKeyW(HKEY_LOCAL_MACHINE, EVENT_SOURCE_KEY);
  if (rc != ERROR_SUCCESS && rc != ERROR_FILE_NOT_FOUND && status == EXIT_OK)
    status = fail("cannot remove the event log source", (DWORD)rc);
  if (status == EXIT_OK)
    printf("kept the config, the state and the outputs in '%s'\n",
           win_data_dir());
  return status;
}
