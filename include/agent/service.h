/* The Windows service front end: the install, uninstall and service
 * commands. src/win/service_win.c implements this header, and only
 * Windows builds have these commands.
 *
 * The service runs the same loop as the run command (daemon_run()). The
 * Service Control Manager's STOP and SHUTDOWN requests end it like SIGTERM,
 * and PARAMCHANGE reloads the config like SIGHUP. The service reports
 * SERVICE_RUNNING once the config is loaded, the state folder locked and
 * the first connection tried, and SERVICE_STOPPED only after the loop has
 * ended and the state is closed. */
#ifndef AGENT_SERVICE_H
#define AGENT_SERVICE_H

#include <stdbool.h>

/* The name under which the service and its event log source are
 * registered. */
#define SERVICE_NAME "rossum-sftp-agent"

/* Register the service with the Service Control Manager: automatic start,
 * restart after a failure, a description, and the executable of this
 * process with "service -c config_path" as its command line. Also register
 * the event log source, create the data folder (%ProgramData%\
 * rossum-sftp-agent), limit its ACL to Administrators, SYSTEM and the
 * service's account, and write an example config at config_path when none
 * exists. Needs an administrator. Prints what it did to stdout and errors
 * to stderr. Returns an exit code: 0, 2 for a config path that is not
 * absolute, 4 when a step failed. */
int service_install(const char *config_path);

/* Stop the service when it runs, remove it and its event log source. The
 * data folder, the config and the state stay. Returns an exit code: 0, or
 * 4 when a step failed. */
int service_uninstall(void);

/* Connect to the Service Control Manager and run the service with the
 * config at config_path until it is stopped. Only the Service Control
 * Manager starts this. Returns the process exit code: 0 after a clean
 * stop, or the exit code of the start-up error (see the run command),
 * which is also reported to the Service Control Manager as the
 * service-specific exit code. From a console it prints that the command is
 * for the Service Control Manager and returns 2. */
int service_start(const char *config_path, bool verbose);

#endif
