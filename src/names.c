/* Local file names, display copies, base64 and remote path checks for
 * names that come from the SFTP server. */
#include "agent/names.h"

#include "agent/utf8.h"

#include <openssl/evp.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Longest escaped name, in bytes, before the hash and the suffix. Windows
 * allows 255 UTF-16 units per component. 200 bytes leaves room for the
 * 17-byte hash tail and a suffix such as ".3f2a9c01d4e5b677.json". */
#define LOCAL_NAME_MAX 200

/* Length of the "~" and 16 hex digits that mark a shortened name. */
#define HASH_TAIL_LEN 17

static const char hex_digits[] = "0123456789ABCDEF";

/* Write byte as '%' and two uppercase hex digits and return 3. */
static size_t put_escape(char *out, unsigned char byte)
{
  out[0] = '%';
  out[1] = hex_digits[byte >> 4];
  out[2] = hex_digits[byte & 0x0F];
  return 3;
}

/* Return whether an ASCII byte can never appear unescaped in a local name,
 * wherever it sits. */
static bool is_unsafe_ascii(unsigned char byte)
{
  if (byte < 0x20 || byte == 0x7F)
    return true;
  return strchr("/\\:*?\"<>|%", byte) != NULL && byte != '\0';
}

/* Return whether the digit after "COM" or "LPT" at s makes a device name.
 * Windows also treats the superscripts ¹ ² ³ (U+00B9, U+00B2, U+00B3) as
 * digits there. Stores the digit's length in bytes in *digit_len. */
static bool is_device_digit(const unsigned char *s, size_t len,
                            size_t *digit_len)
{
  if (len >= 1 && s[0] >= '0' && s[0] <= '9') {
    *digit_len = 1;
    return true;
  }
  if (len >= 2 && s[0] == 0xC2 &&
      (s[1] == 0xB9 || s[1] == 0xB2 || s[1] == 0xB3)) {
    *digit_len = 2;
    return true;
  }
  return false;
}

static bool prefix_equals_nocase(const unsigned char *s, const char *word)
{
  for (size_t i = 0; word[i] != '\0'; i++) {
    unsigned char c = s[i];

    if (c >= 'a' && c <= 'z')
      c = (unsigned char)(c - 'a' + 'A');
    if (c != (unsigned char)word[i])
      return false;
  }
  return true;
}

/* Return whether name opens a Windows device instead of a file. Windows
 * looks at the part before the first '.', without trailing spaces, so
 * "con.txt" and "CON .xml" are both the console. */
static bool is_reserved_windows_name(const unsigned char *name, size_t len)
{
  static const char *const plain[] = {"CON", "PRN", "AUX", "NUL"};
  static const char *const numbered[] = {"COM", "LPT"};
  size_t stem = 0;
  size_t digit_len = 0;

  while (stem < len && name[stem] != '.')
    stem++;
  while (stem > 0 && name[stem - 1] == ' ')
    stem--;

  for (size_t i = 0; i < 4; i++) {
    if (stem == 3 && prefix_equals_nocase(name, plain[i]))
      return true;
  }
  for (size_t i = 0; i < 2; i++) {
    if (stem < 4 || !prefix_equals_nocase(name, numbered[i]))
      continue;
    if (is_device_digit(name + 3, stem - 3, &digit_len) &&
        3 + digit_len == stem)
      return true;
  }
  return false;
}

/* Write the escaped form of rel into out, which has room for at least
 * 3 * rel_len bytes. Returns the length written. Stores in *cut the length
 * of the longest prefix of whole characters and escapes that fits in
 * LOCAL_NAME_MAX bytes, and in *has_case whether the result keeps a
 * character that has another case: an ASCII capital or any non-ASCII
 * character. */
static size_t escape_name(const unsigned char *rel, size_t rel_len, char *out,
                          size_t *cut, bool *has_case)
{
  bool reserved = is_reserved_windows_name(rel, rel_len);
  size_t used = 0;
  size_t i = 0;

  *cut = 0;
  *has_case = false;
  while (i < rel_len) {
    size_t seq = utf8_sequence_length(rel + i, rel_len - i);
    bool first = i == 0;
    bool last = i + 1 == rel_len;
    unsigned char byte = rel[i];

    if (seq == 0) {
      used += put_escape(out + used, byte);
      seq = 1;
    } else if (seq > 1) {
      memcpy(out + used, rel + i, seq);
      used += seq;
      *has_case = true;
    } else if (is_unsafe_ascii(byte) || (first && (byte == '.' || reserved)) ||
               (last && (byte == '.' || byte == ' '))) {
      used += put_escape(out + used, byte);
    } else {
      out[used++] = (char)byte;
      *has_case = *has_case || (byte >= 'A' && byte <= 'Z');
    }
    i += seq;
    if (used <= LOCAL_NAME_MAX)
      *cut = used;
  }
  return used;
}

/* Write '~' and the first 16 hex digits of the SHA-256 of data into out,
 * which has room for HASH_TAIL_LEN bytes. Returns false if OpenSSL fails. */
static bool put_hash_tail(char *out, const void *data, size_t len)
{
  static const char lower_hex[] = "0123456789abcdef";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;

  if (EVP_Digest(data, len, digest, &digest_len, EVP_sha256(), NULL) != 1)
    return false;

  out[0] = '~';
  for (size_t i = 0; i < 8; i++) {
    out[1 + 2 * i] = lower_hex[digest[i] >> 4];
    out[2 + 2 * i] = lower_hex[digest[i] & 0x0F];
  }
  return true;
}

char *names_local_file(const void *rel, size_t rel_len, const char *suffix)
{
  size_t suffix_len = suffix != NULL ? strlen(suffix) : 0;
  char *escaped = NULL;
  char *result = NULL;
  size_t cut = 0;

  if (rel_len > (SIZE_MAX - suffix_len - HASH_TAIL_LEN - 1) / 3)
    return NULL;
  escaped = malloc(3 * rel_len + HASH_TAIL_LEN + suffix_len + 1);
  if (escaped == NULL)
    return NULL;

  bool has_case = false;
  size_t used = escape_name(rel, rel_len, escaped, &cut, &has_case);

  /* A shortened name ends in a hash of the whole path, so two long paths
   * that share the first 200 bytes still get different names. So does a
   * name with characters that have another case, because Windows and
   * macOS fold case (and macOS normalizes Unicode) in file names: "A.xml"
   * and "a.xml" would otherwise be one file there. */
  if (used > LOCAL_NAME_MAX || has_case) {
    size_t at = used > LOCAL_NAME_MAX ? cut : used;
    if (!put_hash_tail(escaped + at, rel, rel_len))
      goto done;
    used = at + HASH_TAIL_LEN;
  }

  if (suffix_len > 0)
    memcpy(escaped + used, suffix, suffix_len);
  escaped[used + suffix_len] = '\0';
  result = escaped;
  escaped = NULL;

done:
  free(escaped);
  return result;
}

char *names_display(const void *name, size_t len)
{
  const unsigned char *in = name;
  char *out = NULL;
  size_t used = 0;
  size_t i = 0;

  if (len > (SIZE_MAX - 1) / 3)
    return NULL;
  out = malloc(3 * len + 1);
  if (out == NULL)
    return NULL;

  while (i < len) {
    size_t seq = utf8_sequence_length(in + i, len - i);

    /* A NUL byte is valid UTF-8 but would end the C string early. */
    if (seq == 0 || in[i] == '\0') {
      used += put_escape(out + used, in[i]);
      seq = 1;
    } else {
      memcpy(out + used, in + i, seq);
      used += seq;
    }
    i += seq;
  }
  out[used] = '\0';
  return out;
}

char *names_base64(const void *data, size_t len)
{
  /* EVP_EncodeBlock takes an int length, so long input is encoded in
   * pieces. The piece size is a multiple of 3 so that no padding appears
   * in the middle. */
  const size_t piece_max = 3 * 1024 * 1024;
  const unsigned char *in = data;
  size_t groups = len / 3 + (len % 3 != 0);
  char *out = NULL;
  size_t used = 0;

  if (groups > (SIZE_MAX - 1) / 4)
    return NULL;
  out = malloc(4 * groups + 1);
  if (out == NULL)
    return NULL;

  out[0] = '\0';
  for (size_t done = 0; done < len;) {
    size_t piece = len - done < piece_max ? len - done : piece_max;
    int written =
        EVP_EncodeBlock((unsigned char *)out + used, in + done, (int)piece);

    if (written < 0) {
      free(out);
      return NULL;
    }
    used += (size_t)written;
    done += piece;
  }
  return out;
}

bool names_remote_relative_ok(const void *rel, size_t rel_len)
{
  const unsigned char *path = rel;
  size_t start = 0;

  if (rel_len == 0 || memchr(path, '\0', rel_len) != NULL)
    return false;

  /* Check each component between slashes, including the last one. A
   * leading, doubled or trailing '/' shows up as an empty component. */
  while (start <= rel_len) {
    const unsigned char *slash = memchr(path + start, '/', rel_len - start);
    size_t end = slash != NULL ? (size_t)(slash - path) : rel_len;
    size_t part = end - start;

    if (part == 0)
      return false;
    if (part == 1 && path[start] == '.')
      return false;
    if (part == 2 && path[start] == '.' && path[start + 1] == '.')
      return false;
    start = end + 1;
  }
  return true;
}
