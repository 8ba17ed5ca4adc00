/* Windows implementation of plat_glob_match(). The C runtime has no
 * fnmatch(), so this matcher follows glibc's fnmatch() with FNM_CASEFOLD
 * in the "C" locale, which the agent runs in. Bytes are characters, ASCII
 * letters match either case, '*' and '?' also match '/' and a leading
 * '.', and a backslash makes the next character literal.
 * Bracket expressions take ranges, '!' or '^' for negation, a ']' first
 * as a literal, and the classes [:alpha:], [:digit:] and the like.
 * NOTE: collating symbols and equivalence classes ("[.a.]", "[=a=]") are
 * not supported; in a pattern they match as plain characters. */
#include "agent/platform.h"

#include <ctype.h>
#include <string.h>

static unsigned char fold(unsigned char c)
{
  return (unsigned char)tolower(c);
}

/* Return whether c belongs to the class named by name of len bytes, and
 * set *known to whether the name is a class at all. */
static bool in_class(const char *name, size_t len, unsigned char c, bool *known)
{
  static const struct {
    const char *name;
    int (*test)(int);
  } classes[] = {
      {"alnum", isalnum}, {"alpha", isalpha}, {"blank", isblank},
      {"cntrl", iscntrl}, {"digit", isdigit}, {"graph", isgraph},
      {"lower", islower}, {"print", isprint}, {"punct", ispunct},
      {"space", isspace}, {"upper", isupper}, {"xdigit", isxdigit},
  };

  for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
    if (strlen(classes[i].name) == len &&
        strncmp(classes[i].name, name, len) == 0) {
      *known = true;
      return classes[i].test(c) != 0;
    }
  }
  *known = false;
  return false;
}

/* Match c against the bracket expression that starts after '[' at *p.
 * On success moves *p past the closing ']' and returns 1 for a match or 0
 * for none. Returns -1 when the expression is not closed, so that '['
 * matches itself. */
static int match_bracket(const char **p, unsigned char c)
{
  const char *s = *p;
  bool negate = *s == '!' || *s == '^';
  bool matched = false;

  if (negate)
    s++;
  for (bool first = true; first || *s != ']'; first = false) {
    if (*s == '\0')
      return -1;
    if (s[0] == '[' && s[1] == ':') {
      const char *end = strstr(s + 2, ":]");
      bool known = false;
      if (end != NULL && in_class(s + 2, (size_t)(end - s - 2), c, &known) &&
          known)
        matched = true;
      if (end != NULL && known) {
        s = end + 2;
        continue;
      }
    }
    unsigned char low = (unsigned char)*s;
    if (low == '\\' && s[1] != '\0')
      low = (unsigned char)*++s;
    s++;
    unsigned char high = low;
    if (s[0] == '-' && s[1] != ']' && s[1] != '\0') {
      const char *end = s + 1;
      if (*end == '\\' && end[1] != '\0')
        end++;
      high = (unsigned char)*end;
      s = end + 1;
    }
    /* Like glibc, compare the folded character with the folded bounds. */
    if (fold(c) >= fold(low) && fold(c) <= fold(high))
      matched = true;
  }
  *p = s + 1;
  return matched != negate;
}

/* Match one pattern token at *p (a literal, an escaped character, '?' or
 * a bracket expression) against c. On a match moves *p past the token. */
static bool match_token(const char **p, unsigned char c)
{
  const char *s = *p;

  if (*s == '\0')
    return false;
  if (*s == '?') {
    *p = s + 1;
    return true;
  }
  if (*s == '[') {
    const char *after = s + 1;
    int result = match_bracket(&after, c);
    if (result >= 0) {
      if (result == 1)
        *p = after;
      return result == 1;
    }
  }
  if (*s == '\\' && s[1] != '\0')
    s++;
  if (fold((unsigned char)*s) != fold(c))
    return false;
  *p = s + 1;
  return true;
}

int plat_glob_match(const char *pattern, const char *name)
{
  const char *p = pattern;
  const char *n = name;
  const char *star_p = NULL; /* the pattern after the last '*' */
  const char *star_n = NULL; /* where that '*' stopped matching so far */

  /* Each token but '*' takes one character, so on a mismatch only the last
   * '*' needs to take one more, which keeps the match at O(len^2). */
  while (*n != '\0') {
    if (*p == '*') {
      while (*p == '*')
        p++;
      if (*p == '\0')
        return 1;
      star_p = p;
      star_n = n;
      continue;
    }
    if (match_token(&p, (unsigned char)*n)) {
      n++;
      continue;
    }
    if (star_p == NULL)
      return 0;
    p = star_p;
    n = ++star_n;
  }
  while (*p == '*')
    p++;
  return *p == '\0';
}
