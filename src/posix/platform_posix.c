/* POSIX implementation of agent/platform.h. */

/* FNM_CASEFOLD is an extension that glibc declares only for GNU builds;
 * the BSDs and macOS have it too. */
#define _GNU_SOURCE
#include "agent/platform.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t plat_monotonic_ms(void)
{
  struct timespec now;

  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int64_t plat_wall_time(void)
{
  return (int64_t)time(NULL);
}

void plat_sleep_ms(int64_t ms)
{
  struct timespec left = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000};

  while (nanosleep(&left, &left) != 0 && errno == EINTR)
    continue;
}

enum ag_code plat_mkdirs(const char *dir, struct ag_error *err)
{
  char *path = NULL;
  enum ag_code code = AG_OK;

  /* The loop below starts after the first byte, which "" does not have. */
  if (dir[0] == '\0')
    return ag_error_set(err, AG_ELOCAL,
                        "cannot create folder: the path is empty");
  path = strdup(dir);
  if (path == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");

  /* Create each component in turn; EEXIST on a folder is fine. */
  for (char *slash = path + 1;; slash++) {
    char saved = *slash;
    if (saved != '/' && saved != '\0')
      continue;
    *slash = '\0';
    if (mkdir(path, 0750) != 0 && errno != EEXIST) {
      code = ag_error_set(err, AG_ELOCAL, "cannot create folder '%s': %s", path,
                          strerror(errno));
      goto out;
    }
    *slash = saved;
    if (saved == '\0')
      break;
  }

  struct stat info;
  if (stat(dir, &info) != 0 || !S_ISDIR(info.st_mode))
    code = ag_error_set(err, AG_ELOCAL, "'%s' exists but is not a folder", dir);
out:
  free(path);
  return code;
}

int plat_exists(const char *path)
{
  struct stat info;

  if (lstat(path, &info) == 0)
    return 1;
  return errno == ENOENT ? 0 : -1;
}

enum ag_code plat_create_temp(const char *dir, const char *prefix,
                              FILE **file_out, char **path_out,
                              struct ag_error *err)
{
  size_t size = strlen(dir) + strlen(prefix) + sizeof("/.XXXXXX.tmp");
  char *path = malloc(size);
  int fd = -1;

  *file_out = NULL;
  *path_out = NULL;
  if (path == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  snprintf(path, size, "%s/%s.XXXXXX.tmp", dir, prefix);

  /* mkstemps creates the file with O_EXCL and mode 0600. */
  fd = mkstemps(path, 4);
  if (fd < 0) {
    ag_error_set(err, AG_ELOCAL, "cannot create a temporary file in '%s': %s",
                 dir, strerror(errno));
    free(path);
    return err->code;
  }
  *file_out = fdopen(fd, "wb");
  if (*file_out == NULL) {
    ag_error_set(err, AG_ELOCAL, "cannot open '%s': %s", path, strerror(errno));
    close(fd);
    unlink(path);
    free(path);
    return err->code;
  }
  *path_out = path;
  return AG_OK;
}

int plat_remove_stale_temps(const char *dir, const char *prefix)
{
  DIR *folder = opendir(dir);
  size_t prefix_len = strlen(prefix);
  int removed = 0;

  if (folder == NULL)
    return -1;
  for (struct dirent *entry = readdir(folder); entry != NULL;
       entry = readdir(folder)) {
    size_t len = strlen(entry->d_name);
    if (len <= prefix_len + 4 ||
        strncmp(entry->d_name, prefix, prefix_len) != 0 ||
        entry->d_name[prefix_len] != '.' ||
        strcmp(entry->d_name + len - 4, ".tmp") != 0)
      continue;
    if (unlinkat(dirfd(folder), entry->d_name, 0) == 0)
      removed++;
  }
  closedir(folder);
  return removed;
}

enum ag_code plat_share_with_group(FILE *file, const char *path,
                                   struct ag_error *err)
{
  if (fchmod(fileno(file), 0640) != 0)
    return ag_error_set(err, AG_ELOCAL, "cannot set the mode of '%s': %s", path,
                        strerror(errno));
  return AG_OK;
}

enum ag_code plat_flush(FILE *file, const char *path, struct ag_error *err)
{
  if (fflush(file) != 0 || ferror(file))
    return ag_error_set(err, AG_ELOCAL, "cannot write '%s': %s", path,
                        strerror(errno));
#ifdef __linux__
  /* Best effort: a failure here shows again in the fsync that follows. */
  (void)sync_file_range(fileno(file), 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
  return AG_OK;
}

/* Flush stdio buffers, with sync also fsync, and close file. */
static enum ag_code close_stream(FILE *file, const char *path, bool sync,
                                 struct ag_error *err)
{
  enum ag_code code = AG_OK;

  if (fflush(file) != 0 || ferror(file))
    code = ag_error_set(err, AG_ELOCAL, "cannot write '%s': %s", path,
                        strerror(errno));
  else if (sync && fsync(fileno(file)) != 0)
    code = ag_error_set(err, AG_ELOCAL, "cannot sync '%s' to disk: %s", path,
                        strerror(errno));
  if (fclose(file) != 0 && code == AG_OK)
    code = ag_error_set(err, AG_ELOCAL, "cannot close '%s': %s", path,
                        strerror(errno));
  return code;
}

enum ag_code plat_sync_close(FILE *file, const char *path, struct ag_error *err)
{
  return close_stream(file, path, true, err);
}

enum ag_code plat_close(FILE *file, const char *path, struct ag_error *err)
{
  return close_stream(file, path, false, err);
}

struct plat_file_system {
  int fd; /* the folder, open for syncfs() */
  char *dir;
};

enum ag_code plat_file_system_open(const char *dir,
                                   struct plat_file_system **out,
                                   struct ag_error *err)
{
  *out = NULL;
#ifdef __linux__
  struct plat_file_system *fs = calloc(1, sizeof(*fs));
  if (fs == NULL || (fs->dir = strdup(dir)) == NULL) {
    free(fs);
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  }
  fs->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fs->fd < 0) {
    ag_error_set(err, AG_ELOCAL, "cannot open folder '%s': %s", dir,
                 strerror(errno));
    plat_file_system_close(fs);
    return err->code;
  }
  *out = fs;
#else
  (void)dir;
  (void)err;
#endif
  return AG_OK;
}

enum ag_code plat_file_system_sync(struct plat_file_system *fs,
                                   struct ag_error *err)
{
#ifdef __linux__
  if (syncfs(fs->fd) != 0)
    return ag_error_set(err, AG_ELOCAL,
                        "cannot sync the file system of '%s' to disk: %s",
                        fs->dir, strerror(errno));
  return AG_OK;
#else
  return ag_error_set(err, AG_ELOCAL,
                      "cannot sync the file system of '%s' to disk: this "
                      "system has no syncfs()",
                      fs->dir);
#endif
}

void plat_file_system_close(struct plat_file_system *fs)
{
  if (fs == NULL)
    return;
  if (fs->fd >= 0)
    close(fs->fd);
  free(fs->dir);
  free(fs);
}

enum ag_code plat_sync_dir(const char *dir, struct ag_error *err)
{
  enum ag_code code = AG_OK;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd < 0 || fsync(fd) != 0)
    code = ag_error_set(err, AG_ELOCAL, "cannot sync folder '%s': %s", dir,
                        strerror(errno));
  if (fd >= 0)
    close(fd);
  return code;
}

/* fsync the folder that contains path, so a rename into it survives a
 * power loss. */
static enum ag_code sync_parent(const char *path, struct ag_error *err)
{
  char *copy = strdup(path);
  enum ag_code code = AG_OK;

  if (copy == NULL)
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  code = plat_sync_dir(dirname(copy), err);
  free(copy);
  return code;
}

enum ag_code plat_replace(const char *from, const char *to,
                          struct ag_error *err)
{
  if (rename(from, to) != 0)
    return ag_error_set(err, AG_ELOCAL, "cannot rename '%s' to '%s': %s", from,
                        to, strerror(errno));
  return sync_parent(to, err);
}

enum ag_code plat_rename_new(const char *from, const char *to,
                             struct ag_error *err)
{
  /* rename() would replace to. link() fails when to exists, and the file
   * has both names until unlink() removes the first. */
  if (link(from, to) != 0) {
    int saved_errno = errno;

    return ag_error_set(err, saved_errno == EEXIST ? AG_EEXIST : AG_ELOCAL,
                        "cannot rename '%s' to '%s': %s", from, to,
                        strerror(saved_errno));
  }
  if (unlink(from) != 0)
    return ag_error_set(err, AG_ELOCAL,
                        "'%s' was written, but its temporary name '%s' "
                        "cannot be removed: %s",
                        to, from, strerror(errno));
  return sync_parent(to, err);
}

enum ag_code plat_set_file_size(FILE *file, const char *path, uint64_t size,
                                struct ag_error *err)
{
  if (fflush(file) != 0 || ftruncate(fileno(file), (off_t)size) != 0)
    return ag_error_set(err, AG_ELOCAL, "cannot write '%s': %s", path,
                        strerror(errno));
  return AG_OK;
}

enum ag_code plat_rename(const char *from, const char *to, struct ag_error *err)
{
  if (rename(from, to) != 0)
    return ag_error_set(err, AG_ELOCAL, "cannot rename '%s' to '%s': %s", from,
                        to, strerror(errno));
  return AG_OK;
}

bool plat_write_all(int fd, const void *data, size_t len)
{
  const char *next = data;

  while (len > 0) {
    ssize_t written = write(fd, next, len);

    if (written < 0 && errno == EINTR)
      continue;
    if (written <= 0)
      return false;
    next += written;
    len -= (size_t)written;
  }
  return true;
}

void plat_remove(const char *path)
{
  unlink(path);
}

struct plat_lock {
  int fd;
};

/* Read the process id that the current holder wrote into the lock file. */
static long read_holder_pid(int fd)
{
  char text[32] = "";
  ssize_t got = pread(fd, text, sizeof(text) - 1, 0);

  if (got <= 0)
    return 0;
  text[got] = '\0';
  return strtol(text, NULL, 10);
}

enum ag_code plat_lock(const char *path, struct plat_lock **lock_out,
                       struct ag_error *err)
{
  struct plat_lock *lock = NULL;
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

  *lock_out = NULL;
  if (fd < 0)
    return ag_error_set(err, AG_ELOCAL, "cannot open lock file '%s': %s", path,
                        strerror(errno));

  /* flock locks belong to the open file, so they vanish with the process
   * and never outlive a crash. */
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      ag_error_set(err, AG_ELOCKED,
                   "another agent (process %ld) is using the state folder; "
                   "lock file '%s'. Wait for it to finish or stop it",
                   read_holder_pid(fd), path);
    else
      ag_error_set(err, AG_ELOCAL, "cannot lock '%s': %s", path,
                   strerror(errno));
    close(fd);
    return err->code;
  }

  char text[32];
  int len = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)len, 0) != len) {
    ag_error_set(err, AG_ELOCAL, "cannot write lock file '%s': %s", path,
                 strerror(errno));
    close(fd);
    return err->code;
  }

  lock = malloc(sizeof(*lock));
  if (lock == NULL) {
    close(fd);
    return ag_error_set(err, AG_ENOMEM, "out of memory");
  }
  lock->fd = fd;
  *lock_out = lock;
  return AG_OK;
}

void plat_unlock(struct plat_lock *lock)
{
  if (lock == NULL)
    return;
  close(lock->fd);
  free(lock);
}

enum ag_code plat_read_secret(const char *path, char **secret_out,
                              struct ag_error *err)
{
  enum { SECRET_MAX = 4096 };
  char buffer[SECRET_MAX + 2];
  enum ag_code code = AG_OK;
  struct stat info;
  FILE *file = NULL;

  *secret_out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return ag_error_set(err, AG_ECONFIG, "cannot read secret file '%s': %s",
                        path, strerror(errno));
  if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    code = ag_error_set(err, AG_ECONFIG,
                        "secret file '%s' is not a regular file", path);
    goto out;
  }
  /* Like OpenSSH with private keys: a secret others can read is no
   * longer secret, so refuse it rather than use it. */
  if ((info.st_mode & 077) != 0) {
    code = ag_error_set(err, AG_ECONFIG,
                        "secret file '%s' is accessible by other users (mode "
                        "%04o); run 'chmod 600 %s'",
                        path, (unsigned)(info.st_mode & 07777), path);
    goto out;
  }

  file = fdopen(fd, "rb");
  if (file == NULL) {
    code = ag_error_set(err, AG_ECONFIG, "cannot read secret file '%s': %s",
                        path, strerror(errno));
    goto out;
  }
  fd = -1;
  size_t len = fread(buffer, 1, sizeof(buffer) - 1, file);
  buffer[len] = '\0';
  len = strcspn(buffer, "\r\n");
  buffer[len] = '\0';
  if (len == 0 || len > SECRET_MAX) {
    code = ag_error_set(err, AG_ECONFIG,
                        "secret file '%s' must hold one line of 1 to %d bytes",
                        path, SECRET_MAX);
    goto out;
  }
  *secret_out = strdup(buffer);
  if (*secret_out == NULL)
    code = ag_error_set(err, AG_ENOMEM, "out of memory");

out:
  plat_wipe(buffer, sizeof(buffer));
  if (file != NULL)
    fclose(file);
  if (fd >= 0)
    close(fd);
  return code;
}

enum ag_code plat_check_private_file(const char *path, struct ag_error *err)
{
  struct stat info;

  if (stat(path, &info) != 0)
    return ag_error_set(err, AG_ECONFIG, "cannot read private key '%s': %s",
                        path, strerror(errno));
  if (!S_ISREG(info.st_mode))
    return ag_error_set(err, AG_ECONFIG,
                        "private key '%s' is not a regular file", path);
  if ((info.st_mode & 077) != 0)
    return ag_error_set(err, AG_ECONFIG,
                        "private key '%s' is accessible by other users (mode "
                        "%04o); run 'chmod 600 %s'",
                        path, (unsigned)(info.st_mode & 07777), path);
  return AG_OK;
}

void plat_wipe(void *p, size_t len)
{
  explicit_bzero(p, len);
}

int plat_glob_match(const char *pattern, const char *name)
{
  return fnmatch(pattern, name, FNM_CASEFOLD) == 0;
}

int64_t plat_wall_time_ms(void)
{
  struct timespec now;

  clock_gettime(CLOCK_REALTIME, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

FILE *plat_fopen(const char *path, const char *mode)
{
  char flags[16];

  /* glibc's 'e' flag opens with O_CLOEXEC. */
  snprintf(flags, sizeof(flags), "%se", mode);
  return fopen(path, flags);
}

int plat_file_size(const char *path, int64_t *size_out)
{
  struct stat info;

  *size_out = 0;
  if (stat(path, &info) != 0)
    return errno;
  *size_out = (int64_t)info.st_size;
  return 0;
}

int plat_unlink(const char *path)
{
  return unlink(path) == 0 ? 0 : errno;
}

bool plat_path_is_absolute(const char *path)
{
  return path[0] == '/';
}

const char *plat_path_base(const char *path)
{
  const char *slash = strrchr(path, '/');

  return slash != NULL ? slash + 1 : path;
}

struct plat_dir {
  DIR *handle;
};

struct plat_dir *plat_dir_open(const char *path)
{
  struct plat_dir *dir = malloc(sizeof(*dir));

  if (dir == NULL)
    return NULL;
  dir->handle = opendir(path);
  if (dir->handle == NULL) {
    int saved = errno;
    free(dir);
    errno = saved;
    return NULL;
  }
  return dir;
}

const char *plat_dir_next(struct plat_dir *dir)
{
  for (struct dirent *entry = readdir(dir->handle); entry != NULL;
       entry = readdir(dir->handle)) {
    if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
      return entry->d_name;
  }
  return NULL;
}

void plat_dir_close(struct plat_dir *dir)
{
  if (dir == NULL)
    return;
  closedir(dir->handle);
  free(dir);
}
