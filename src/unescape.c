/*
** unescape.c — a text's escapes decoded, for the search of secrets
** (redact.c): JSON, Java properties, HTML and percent escapes, and the
** way back from a decoded byte to the bytes of the text it came from.
** Pure C: no Lua, no allocation.
**
** A server may echo a secret inside a JSON string with any of its
** characters escaped: Gson writes '=' as "\u003d", .NET's encoder '+' as
** "\u002B", some gateways every character ("\u0073\u006b..."), PHP a
** '/' as "\/"; and the JSON text of an upstream's error that a gateway
** wraps in a string of its own keeps those escapes in what aigc decodes
** (err.message, err.body), as a cassette's raw bytes do. Alike, a Java
** properties text writes '=' and ':' as "\=", "\:"; an HTML error page
** a character as "&#x73;" or "&#115;", '&' as "&amp;"; a URL inside a
** URL's query has its percent-encoding encoded again ("%252F"). So a text
** holding such an escape is searched a second time unescaped (the JSON
** ones every level at once: an escape's backslash doubled by each string
** around it, see json_unit; the others one level), for the secrets, every
** form of them and the short ones, and each stretch found there is
** redacted in the text over all the bytes it came from. Linear in the
** text: one decoding, one scan, one walk mapping stretches back.
*/
#include <string.h>

#include "unescape.h"

static unsigned char fold (unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static int is_alnum (unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int hex_digit (unsigned char c) {
  c = fold(c);
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The code unit of the 4 hex digits at s[i..len), or -1. */
static long hex4 (const char *s, size_t len, size_t i) {
  long v = 0;
  size_t k;
  for (k = i; k < i + 4; k++) {
    int d = k < len ? hex_digit((unsigned char)s[k]) : -1;
    if (d < 0)
      return -1;
    v = v * 16 + d;
  }
  return v;
}

/* The end of the run of backslashes at s[i..len). */
static size_t backslashes (const char *s, size_t len, size_t i) {
  while (i < len && s[i] == '\\')
    i++;
  return i;
}

/* A run of r backslashes escaping nothing: one when it is two or more. */
static size_t backslash_run (char *out, size_t *nout, size_t r) {
  out[0] = '\\';
  *nout = r > 1;
  return r;
}

/* Writes the code point c (a valid one) to out as UTF-8; *nout its bytes. */
static void put_utf8 (long c, char *out, size_t *nout) {
  *nout = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  if (*nout == 1)
    out[0] = (char)c;
  else {
    size_t n;
    out[0] = (char)(((0xF00 >> *nout) & 0xFF) | (c >> (6 * (*nout - 1))));   /* 110xxxxx, 1110xxxx... */
    for (n = 1; n < *nout; n++)
      out[n] = (char)(0x80 | ((c >> (6 * (*nout - 1 - n))) & 63));
  }
}

/*
** The unit of text at s[i] ('\' there): a JSON escape, its backslash
** doubled by each JSON string it was wrapped in ("\u003d", "\\u003d",
** "\\\\/": one level or more, a gateway's string around an upstream's
** JSON text), or a backslash before another ASCII punctuation character
** (Java properties' "\=", "\:"), decoded into out (1 to 4 bytes, *nout:
** UTF-8; a surrogate pair is one character); or else the run of
** backslashes alone: one backslash when it is two or more ("\\" escaping
** one: "C:\\Users"), else *nout 0, text (a lone surrogate, "\x", a cut
** "\u00"). Returns its length in s.
*/
static size_t json_unit (const char *s, size_t len, size_t i, char *out, size_t *nout) {
  static const char from[] = "\"/bfnrt", to[] = "\"/\b\f\n\r\t";
  size_t j = backslashes(s, len, i), k;
  const char *p;
  long c, low;
  *nout = 0;
  if (j < len && s[j] != 'u' && s[j] != '\0' && (p = strchr(from, s[j])) != NULL) {
    out[0] = to[p - from];
    *nout = 1;
    return j + 1 - i;
  }
  if (j < len && s[j] > ' ' && s[j] < 127 && !is_alnum((unsigned char)s[j])) {
    out[0] = s[j];   /* "\=", "\:", "\-"... */
    *nout = 1;
    return j + 1 - i;
  }
  if (j >= len || s[j] != 'u' || (c = hex4(s, len, j + 1)) < 0 || (c >= 0xDC00 && c < 0xE000))
    return backslash_run(out, nout, j - i);
  k = j + 5;
  if (c >= 0xD800 && c < 0xDC00) {   /* a pair: its low half next */
    size_t m = backslashes(s, len, k);
    if (m == k || m >= len || s[m] != 'u' || (low = hex4(s, len, m + 1)) < 0xDC00 || low > 0xDFFF)
      return backslash_run(out, nout, j - i);
    c = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00);
    k = m + 5;
  }
  put_utf8(c, out, nout);
  return k - i;
}

/*
** The unit of text at s[i] ('&' there): an HTML character reference,
** "&#115;", "&#x73;" (a code point, not a surrogate) or one of "&amp;",
** "&lt;", "&gt;", "&quot;", "&apos;", decoded into out as json_unit does;
** else *nout 0, text. Returns its length in s.
*/
static size_t html_unit (const char *s, size_t len, size_t i, char *out, size_t *nout) {
  static const char *const names[] = {"amp;", "lt;", "gt;", "quot;", "apos;", NULL};
  size_t k = i + 1, digits = 0, m;
  int base = 10, d;
  long c = 0;
  *nout = 0;
  if (k < len && s[k] == '#') {
    if (++k < len && fold((unsigned char)s[k]) == 'x') {
      base = 16;
      k++;
    }
    for (; digits < 7 && k < len && (d = hex_digit((unsigned char)s[k])) >= 0 && d < base; k++, digits++)
      c = c * base + d;
    if (digits == 0 || k >= len || s[k] != ';' || c > 0x10FFFF || (c >= 0xD800 && c < 0xE000))
      return 1;
    put_utf8(c, out, nout);
    return k + 1 - i;
  }
  for (d = 0; names[d] != NULL; d++)
    if (k + (m = strlen(names[d])) <= len && memcmp(s + k, names[d], m) == 0) {
      out[0] = "&<>\"'"[d];
      *nout = 1;
      return m + 1;
    }
  return 1;
}

/*
** The unit of text at s[i]: an escape (a JSON one or a backslash before
** punctuation, json_unit; an HTML character reference, html_unit; a
** percent-encoded byte, "%2F", one level) decoded into out, *nout bytes;
** or else *nout 0, text. Returns its length in s.
*/
static size_t unit_at (const char *s, size_t len, size_t i, char *out, size_t *nout) {
  int hi, lo;
  if (s[i] == '\\')
    return json_unit(s, len, i, out, nout);
  if (s[i] == '&')
    return html_unit(s, len, i, out, nout);
  *nout = 0;
  if (i + 2 < len && (hi = hex_digit((unsigned char)s[i + 1])) >= 0
      && (lo = hex_digit((unsigned char)s[i + 2])) >= 0) {
    out[0] = (char)(hi * 16 + lo);
    *nout = 1;
    return 3;
  }
  return 1;
}

/* Whether c may start an escape (unit_at). */
static int escape_start (char c) {
  return c == '\\' || c == '&' || c == '%';
}

/* The first byte of s[i..len) that may start an escape, or len. */
static size_t next_escape (const char *s, size_t len, size_t i) {
  while (i < len && !escape_start(s[i]))
    i++;
  return i;
}

/* The JSON escape cut short at the end of d[0..dlen) ("\\u00", "\\"), or 0. */
static size_t cut_json (const char *d, size_t dlen) {
  size_t k = 0;
  while (k < 3 && k < dlen && hex_digit((unsigned char)d[dlen - 1 - k]) >= 0)
    k++;
  for (; k > 0 && !(k < dlen && d[dlen - 1 - k] == 'u'); k--)
    ;
  if (k > 0 || (dlen > 0 && d[dlen - 1] == 'u'))
    k = k > 0 ? k + 1 : 1;   /* and its 'u' */
  return k < dlen && d[dlen - 1 - k] == '\\' ? k + 1 : 0;
}

/* The HTML reference cut before its ';' at the end of d[0..dlen) ("&",
   "&#", "&#x6", "&#11", "&am", "&quo"), or 0. */
static size_t cut_html (const char *d, size_t dlen) {
  static const char *const names[] = {"amp", "lt", "gt", "quot", "apos", NULL};
  size_t k, i = 2;
  int base = 10, n;
  for (k = 1; k <= 10 && k <= dlen && d[dlen - k] != '&'; k++)
    ;
  if (k > 10 || k > dlen)
    return 0;
  d += dlen - k;   /* the k bytes from its '&' */
  if (k > 1 && d[1] == '#') {
    if (i < k && fold((unsigned char)d[i]) == 'x') {
      base = 16;
      i++;
    }
    while (i < k && hex_digit((unsigned char)d[i]) >= 0 && hex_digit((unsigned char)d[i]) < base)
      i++;
    return i == k ? k : 0;
  }
  for (n = 0; names[n] != NULL; n++)
    if (k - 1 <= strlen(names[n]) && memcmp(d + 1, names[n], k - 1) == 0)
      return k;
  return 0;
}

/*
** The bytes at the end of a text d[0..dlen) (or one unescaped) that are
** an escape cut short (a text cut at a limit inside one: a JSON "\\u00",
** "\\"; an HTML "&#x6", "&am"; a percent "%6", "%"), which cut_tail
** looks before.
*/
size_t aigc_cut_escape (const char *d, size_t dlen) {
  size_t k = cut_json(d, dlen);
  if (k == 0)
    k = cut_html(d, dlen);
  if (k == 0 && dlen >= 1 && d[dlen - 1] == '%')
    k = 1;
  if (k == 0 && dlen >= 2 && d[dlen - 2] == '%' && hex_digit((unsigned char)d[dlen - 1]) >= 0)
    k = 2;
  return k;
}

/* Whether s[0..len) holds an escape (one cut short at its end aside).
   (memchr for each kind: a text without one costs three fast passes) */
int aigc_escapes_in (const char *s, size_t len) {
  static const char starts[] = "\\&%";
  const char *p;
  char tmp[4];
  size_t n;
  int k;
  for (k = 0; k < 3; k++)
    for (p = s; (p = (const char *)memchr(p, starts[k], len - (size_t)(p - s))) != NULL; ) {
      p += unit_at(s, len, (size_t)(p - s), tmp, &n);
      if (n > 0)
        return 1;
    }
  return 0;
}

int aigc_has_escape (const char *s, size_t len) {
  return aigc_escapes_in(s, len) || aigc_cut_escape(s, len) > 0;
}

/* s[0..len) unescaped into out (len bytes: never longer); returns its
   length. What is no escape is kept as it is. */
size_t aigc_unescape (const char *s, size_t len, char *out) {
  size_t i = 0, m = 0, e, n;
  while (i < len) {
    size_t plain = next_escape(s, len, i) - i;
    memcpy(out + m, s + i, plain);
    m += plain;
    i += plain;
    if (i < len) {
      e = unit_at(s, len, i, out + m, &n);
      if (n == 0) {   /* a lone backslash, '&' or '%': as it is */
        out[m] = s[i];
        n = 1;
      }
      i += e;
      m += n;
    }
  }
  return m;
}

/* A walk of a text s[0..len) and its unescaped form together: at, the
   byte of s where the decoded byte dat comes from. */

/*
** Where decoded byte `to` (from U->dat on: calls go forward) lies in the
** text: the start of the escape (or byte) it comes from when `end` is 0,
** else the end of the one byte to - 1 comes from.
*/
static size_t text_at (aigc_unescaped *U, size_t to, int end) {
  char tmp[4];
  size_t e = 1, n = 1;
  while (U->dat < to) {
    if (escape_start(U->s[U->at]) && (e = unit_at(U->s, U->len, U->at, tmp, &n), n == 0))
      e = n = 1;   /* (a lone backslash, '&' or '%', as it is) */
    if (!end && U->dat + n > to)
      break;
    U->at += e;
    U->dat += n;
    e = n = 1;
  }
  return U->at;
}


/*
** Escapes nested: a key percent-encoded three times (a URL in a URL in a
** URL's query: "%25252F"), an HTML page quoting an escaped text
** ("&amp;#x73;"), a percent-encoded JSON escape ("%5Cu0073"). Each level
** is one more decoding of the one before; a stretch found at level k is
** mapped back through every level to the text's bytes.
*/
size_t aigc_unescape_levels (aigc_levels *V, const char *s, size_t len, char *d, int levels) {
  const char *t = s;
  size_t tlen = len;
  int k;
  for (k = 0; k < levels; k++) {
    if (k == 0 ? !aigc_has_escape(t, tlen) : !aigc_escapes_in(t, tlen))   /* (a cut one stays as it is) */
      return (size_t)-1;
    V->U[k].s = t;
    V->U[k].len = tlen;
    V->U[k].at = V->U[k].dat = 0;
    tlen = aigc_unescape(t, tlen, d + (size_t)k * len);
    t = d + (size_t)k * len;
  }
  V->n = levels;
  return tlen;
}

size_t aigc_levels_at (aigc_levels *V, size_t to, int end) {
  int k;
  for (k = V->n - 1; k >= 0; k--)
    to = text_at(&V->U[k], to, end);
  return to;
}
