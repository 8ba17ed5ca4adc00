/* POSIX implementation of the process, terminal and log target parts of
 * agent/platform.h. */
#include "agent/platform.h"

#include "agent/config.h"

#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

void plat_init_process(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
}

const char *plat_default_config_path(void)
{
  return CONFIG_DEFAULT_PATH;
}

long plat_process_id(void)
{
  return (long)getpid();
}

bool plat_is_terminal(FILE *stream)
{
  return isatty(fileno(stream)) == 1;
}

int plat_open_log(const char *path)
{
  return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

void plat_close_log(int fd)
{
  close(fd);
}

void plat_system_log_open(void)
{
  /* LOG_NDELAY connects now, before a sandbox could block the socket. */
  openlog("rossum-sftp-agent", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void plat_system_log_write(int severity, const char *text)
{
  syslog(severity, "%s", text);
}

void plat_system_log_close(void)
{
  closelog();
}
