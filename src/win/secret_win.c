/* Windows implementation of plat_read_secret() and
 * plat_check_private_file(). POSIX mode bits become a check of the file's
 * DACL, the way Win32-OpenSSH checks private keys: only the owner, this
 * process's account, SYSTEM, Administrators and the service's account
 * may have read or write access. */
#include "agent/platform.h"

#include "win_internal.h"

#include <aclapi.h>
#include <errno.h>
#include <sddl.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_MAX 4096

/* Rights that let an account read or change the file's content. */
#define CONTENT_RIGHTS                                                         \
  (FILE_READ_DATA | FILE_WRITE_DATA | FILE_APPEND_DATA | GENERIC_READ |        \
   GENERIC_WRITE | GENERIC_ALL | WRITE_DAC | WRITE_OWNER)

/* The accounts that may always access the file, besides its owner. */
struct trusted_sids {
  PSID system;
  PSID administrators;
  PSID service; /* NT SERVICE\rossum-sftp-agent, NULL when not installed */
  TOKEN_USER *user;
};

static void free_trusted(struct trusted_sids *trusted)
{
  LocalFree(trusted->system);
  LocalFree(trusted->administrators);
  free(trusted->service);
  free(trusted->user);
}

static TOKEN_USER *current_user(void)
{
  HANDLE token = NULL;
  DWORD size = 0;
  TOKEN_USER *user = NULL;

  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token))
    return NULL;
  GetTokenInformation(token, TokenUser, NULL, 0, &size);
  user = size > 0 ? malloc(size) : NULL;
  if (user != NULL &&
      !GetTokenInformation(token, TokenUser, user, size, &size)) {
    free(user);
    user = NULL;
  }
  CloseHandle(token);
  return user;
}

/* Return the SID of the service's virtual account, or NULL when the
 * service is not installed. */
static PSID service_sid(void)
{
  DWORD sid_size = 0;
  DWORD domain_size = 0;
  SID_NAME_USE use;
  wchar_t domain[256];

  LookupAccountNameW(NULL, L"NT SERVICE\\" WIN_EVENT_SOURCE, NULL, &sid_size,
                     NULL, &domain_size, &use);
  if (sid_size == 0 || domain_size > sizeof(domain) / sizeof(domain[0]))
    return NULL;
  PSID sid = malloc(sid_size);
  if (sid != NULL &&
      !LookupAccountNameW(NULL, L"NT SERVICE\\" WIN_EVENT_SOURCE, sid,
                          &sid_size, domain, &domain_size, &use)) {
    free(sid);
    sid = NULL;
  }
  return sid;
}

static bool load_trusted(struct trusted_sids *trusted)
{
  memset(trusted, 0, sizeof(*trusted));
  ConvertStringSidToSidW(L"S-1-5-18", &trusted->system);
  ConvertStringSidToSidW(L"S-1-5-32-544", &trusted->administrators);
  trusted->user = current_user();
  trusted->service = service_sid();
  return trusted->system != NULL && trusted->administrators != NULL &&
         trusted->user != NULL;
}

static bool is_trusted(const struct trusted_sids *trusted, PSID owner, PSID sid)
{
  return (owner != NULL && EqualSid(sid, owner)) ||
         EqualSid(sid, trusted->system) ||
         EqualSid(sid, trusted->administrators) ||
         EqualSid(sid, trusted->user->User.Sid) ||
         (trusted->service != NULL && EqualSid(sid, trusted->service));
}

/* Write the account name of sid, or its string form, into out. */
static void describe_sid(PSID sid, char *out, size_t size)
{
  wchar_t name[256];
  wchar_t domain[256];
  DWORD name_len = sizeof(name) / sizeof(name[0]);
  DWORD domain_len = sizeof(domain) / sizeof(domain[0]);
  SID_NAME_USE use;
  wchar_t *text = NULL;
  char *narrow = NULL;

  snprintf(out, size, "an unknown account");
  if (LookupAccountSidW(NULL, sid, name, &name_len, domain, &domain_len,
                        &use)) {
    wchar_t full[520];
    _snwprintf(full, sizeof(full) / sizeof(full[0]), L"%ls%ls%ls", domain,
               domain[0] != L'\0' ? L"\\" : L"", name);
    full[sizeof(full) / sizeof(full[0]) - 1] = L'\0';
    narrow = win_utf8(full);
  } else if (ConvertSidToStringSidW(sid, &text)) {
    narrow = win_utf8(text);
    LocalFree(text);
  }
  if (narrow != NULL)
    snprintf(out, size, "%s", narrow);
  free(narrow);
}

/* Check that no account beyond the trusted ones may read or write path.
 * what names the file in messages ("secret file", "private key"). */
static enum ag_code check_acl(const char *path, const char *what,
                              struct ag_error *err)
{
  wchar_t *wide = win_path(path);
  PSECURITY_DESCRIPTOR descriptor = NULL;
  PSID owner = NULL;
  PACL dacl = NULL;
  struct trusted_sids trusted;
  enum ag_code code = AG_OK;
  char text[256];

  if (wide == NULL)
    return ag_error_set(err, AG_ECONFIG, "cannot read %s '%s': %s", what, path,
                        strerror(errno));
  DWORD rc = GetNamedSecurityInfoW(wide, SE_FILE_OBJECT,
                                   OWNER_SECURITY_INFORMATION |
                                       DACL_SECURITY_INFORMATION,
                                   &owner, NULL, &dacl, NULL, &descriptor);
  free(wide);
  if (rc != ERROR_SUCCESS)
    return ag_error_set(err, AG_ECONFIG,
                        "cannot read the permissions of %s '%s': %s", what,
                        path, win_error_text(rc, text, sizeof(text)));
  if (!load_trusted(&trusted)) {
    code = ag_error_set(err, AG_ECONFIG,
                        "cannot check the permissions of %s '%s': the "
                        "accounts to compare with are not available",
                        what, path);
    goto out;
  }

  if (dacl == NULL) {
    code = ag_error_set(err, AG_ECONFIG,
                        "%s '%s' has no access list, so every user can read "
                        "it; give it one with 'icacls \"%s\" /inheritance:r "
                        "/grant:r Administrators:F SYSTEM:F'",
                        what, path, path);
    goto out;
  }
  for (DWORD i = 0; i < dacl->AceCount && code == AG_OK; i++) {
    ACE_HEADER *header = NULL;
    if (!GetAce(dacl, i, (void **)&header) ||
        header->AceType != ACCESS_ALLOWED_ACE_TYPE)
      continue;
    ACCESS_ALLOWED_ACE *ace = (ACCESS_ALLOWED_ACE *)header;
    PSID sid = (PSID)&ace->SidStart;
    if ((ace->Mask & CONTENT_RIGHTS) == 0 || is_trusted(&trusted, owner, sid))
      continue;
    describe_sid(sid, text, sizeof(text));
    code = ag_error_set(
        err, AG_ECONFIG,
        "%s '%s' is accessible by other users (%s has access); remove that "
        "access, for example with 'icacls \"%s\" /inheritance:r /remove "
        "\"%s\"'",
        what, path, text, path, text);
  }

out:
  free_trusted(&trusted);
  LocalFree(descriptor);
  return code;
}

/* Check that path names a regular file and not a folder, a device or a
 * link, which POSIX rejects through O_NOFOLLOW and S_ISREG. */
static enum ag_code check_regular(const char *path, const char *what,
                                  struct ag_error *err)
{
  wchar_t *wide = win_path(path);
  char text[256];

  if (wide == NULL)
    return ag_error_set(err, AG_ECONFIG, "cannot read %s '%s': %s", what, path,
                        strerror(errno));
  DWORD attributes = GetFileAttributesW(wide);
  DWORD error = GetLastError();
  free(wide);
  if (attributes == INVALID_FILE_ATTRIBUTES)
    return ag_error_set(err, AG_ECONFIG, "cannot read %s '%s': %s", what, path,
                        win_error_text(error, text, sizeof(text)));
  if ((attributes & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_DEVICE |
                     FILE_ATTRIBUTE_REPARSE_POINT)) != 0)
    return ag_error_set(err, AG_ECONFIG, "%s '%s' is not a regular file", what,
                        path);
  return AG_OK;
}

enum ag_code plat_read_secret(const char *path, char **secret_out,
                              struct ag_error *err)
{
  char buffer[SECRET_MAX + 2];
  enum ag_code code = AG_OK;
  FILE *file = NULL;

  *secret_out = NULL;
  code = check_regular(path, "secret file", err);
  if (code == AG_OK)
    code = check_acl(path, "secret file", err);
  if (code != AG_OK)
    return code;

  file = plat_fopen(path, "rb");
  if (file == NULL)
    return ag_error_set(err, AG_ECONFIG, "cannot read secret file '%s': %s",
                        path, strerror(errno));
  size_t len = fread(buffer, 1, sizeof(buffer) - 1, file);
  fclose(file);
  buffer[len] = '\0';
  len = strcspn(buffer, "\r\n");
  buffer[len] = '\0';
  if (len == 0 || len > SECRET_MAX) {
    code = ag_error_set(err, AG_ECONFIG,
                        "secret file '%s' must hold one line of 1 to %d bytes",
                        path, SECRET_MAX);
  } else {
    *secret_out = strdup(buffer);
    if (*secret_out == NULL)
      code = ag_error_set(err, AG_ENOMEM, "out of memory");
  }
  plat_wipe(buffer, sizeof(buffer));
  return code;
}

enum ag_code plat_check_private_file(const char *path, struct ag_error *err)
{
  enum ag_code code = check_regular(path, "private key", err);

  if (code == AG_OK)
    code = check_acl(path, "private key", err);
  return code;
}
