/*
** redact.c — the secrets of an engine (its block: the secrets, their
** other forms, an index of them) and their redaction from a text.
**
** No secret may reach an error or a log line. A server may echo the API key
** anywhere: in an error message, deep inside a JSON error body, in a
** header, in the request id, in a stream's error event, in a 200's text that
** a callback then raises. So redaction is not done field by field but on the
** finished object: aigc_error_scrub walks every string reachable from it
** (keys too, at any depth, cycles and all) and replaces each occurrence of
** each of the engine's secrets by "[redacted]"; the engine's log function
** only ever sees scrubbed lines (aigc_error_log). The Lua layer scrubs the
** errors it builds itself with engine:scrub(err).
**
** The secrets of an engine (the API key, an Azure key, an Azure AD token,
** the credential of a custom Authorization or api-key header) are kept as
** one block with their other forms (base64, hex...) and an index of them
** (aigc_secrets_from_config, see "The block of an engine's secrets"), for
** the life of the engine userdata: close() leaves it, __gc zeroes and
** frees it. So a pointer to it stays valid while the engine is on the
** stack, whatever a finalizer run by an allocation does (the re-entrancy
** rule: close() may run at any allocation); a scrub works on a copy of it
** in a Lua string.
**
** What is redacted: any run of 12 bytes or more of a secret, anywhere in a
** string (the whole secret when it is shorter): the secret whole, repeated,
** with its start or its end cut off, cut in the middle of a text, masked in
** its middle, split over two values joined (each piece of 12 bytes or
** more); the same for the characters of its base64 forms (whatever bytes
** are encoded with it: "Bearer <key>", "user:<password>"), its hex form
** and its percent-encoded forms (the reserved bytes or every byte as %XX);
** any of them in a JSON string with any character escaped ("\u003d"), in
** HTML ("&#x73;", "&amp;"), Java-escaped ("\="), percent-encoded again,
** these escapes nested up to three levels ("%25252F", "&amp;#x73;");
** all of it whatever the ASCII case (a gateway's "INVALID KEY SK-PROJ-...",
** and the base64 of the upper- or lower-cased secret); and, as before,
** a string that ends with the first 8 bytes or more of a secret (a secret
** cut by a truncation: a log line's 1 KiB, a body kept to 64 KiB; escaped,
** the text cut inside the escape after it: "&#x6", "%6", "\u00"). Each
** stretch becomes one "[redacted]". A secret of 4 to 7 bytes holding a
** letter and a digit (a local server's "sk-1") is redacted only whole and
** standing as a word (in any ASCII case: "SK-1"), touching no letter or digit (short_secret),
** in the text or unescaped ("\u0073k-1", "sk%2D1"), and so are its hex,
** its base64 and that of "Bearer <it>" (short_forms): a piece
** of it, or inside a word ("task-1"), is ordinary text. Other short ones
** (a placeholder word such as "EMPTY" or "ollama", a number, under 4
** bytes) are not searched for: as words they are ordinary text ("ollama
** pull"), which the redaction would mangle, and they are no real
** credentials. A secret transformed otherwise (reversed, base32, the
** base64 of a mix of cases no server makes, a short secret's base64
** form inside another's, as "user:sk-1": too short to tell from text) or
** cut into pieces
** shorter than 12 bytes is not found.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "peers.h"
#include "redact.h"
#include "unescape.h"

#define SECRET_MIN 8                 /* shorter secrets are not searched */
#define AIGC_MAX_SECRETS 16          /* more in one block are not searched */
#define REDACTED "[redacted]"

/* Case-insensitive equality of s[0..n) with the lower-case ASCII word w. */
static int word_is (const char *s, size_t n, const char *w) {
  size_t i;
  if (strlen(w) != n)
    return 0;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z')
      c = (char)(c + 32);
    if (c != w[i])
      return 0;
  }
  return 1;
}

/*
** Whether a header name names a credential: one ending in "key" or
** "token" (api-key, x-api-key, x-goog-api-key, Ocp-Apim-Subscription-Key,
** X-Auth-Token...) or with a word (between '-', '_', '.') among
** CREDENTIAL_WORDS (Authorization, Proxy-Authorization, Cookie,
** X-Secret, Cf-Access-Jwt-Assertion, X-Session-Id...); not Idempotency-Key (a request's random id, no secret)
** nor aigc's own x-aigc-* headers.
** The same rule as util.credential_header in the Lua layer.
*/
static const char *const CREDENTIAL_WORDS[] = {
  "authorization", "authentication", "auth", "secret", "password", "passwd",
  "credential", "credentials", "cookie", "sig", "signature", "jwt", "assertion", "session",
  "sessionid", NULL
};

static int credential_name (const char *s, size_t n) {
  size_t i = 0, j, k;
  if (word_is(s, n, "idempotency-key") || (n >= 7 && word_is(s, 7, "x-aigc-")))
    return 0;   /* (aigc's own: x-aigc-cassette-key holds the request's description) */
  if ((n >= 3 && word_is(s + n - 3, 3, "key")) || (n >= 5 && word_is(s + n - 5, 5, "token")))
    return 1;
  while (i < n) {
    for (j = i; j < n && s[j] != '-' && s[j] != '_' && s[j] != '.'; j++)
      ;
    for (k = 0; CREDENTIAL_WORDS[k] != NULL; k++)
      if (word_is(s + i, j - i, CREDENTIAL_WORDS[k]))
        return 1;
    i = j + 1;
  }
  return 0;
}

/*
** The names of HTTP auth schemes, the first word of a credential header's
** value ("Bearer X"): shown, not secrets. Any other first word is one.
*/
static const char *const AUTH_SCHEMES[] = {
  "bearer", "basic", "token", "digest", "negotiate", "ntlm", "apikey", "api-key", "key", "sharedkey",
  "sharedkeylite", "aws4-hmac-sha256", "hoba", "mutual", "oauth", "dpop", "ssws", "bot", "jwt", NULL
};

static int auth_scheme (const char *s, size_t n) {
  int k;
  for (k = 0; AUTH_SCHEMES[k] != NULL; k++)
    if (word_is(s, n, AUTH_SCHEMES[k]))
      return 1;
  return 0;
}

/*
** Adds to the list at `list` (a Lua table, n entries so far) the
** credentials of the header line at the top of the stack, if its name is
** a credential's (credential_name): each word of its value (between
** blanks), but the first when it names an auth scheme and more follow
** ("Bearer X" -> X; "KEY ORG" and "Bearer KEY ORG" -> KEY, ORG: a server
** may echo any of them). Pops the line.
*/
static void add_header_secret (lua_State *L, int list, lua_Integer *n) {
  size_t len;
  const char *line = lua_tolstring(L, -1, &len), *colon, *p, *end;
  int first = 1;
  if (line == NULL || lua_type(L, -1) != LUA_TSTRING ||
      (colon = (const char *)memchr(line, ':', len)) == NULL) {
    lua_pop(L, 1);
    return;
  }
  end = credential_name(line, (size_t)(colon - line)) ? line + len : colon;
  for (p = colon + 1; p < end; first = 0) {
    const char *w;
    while (p < end && (*p == ' ' || *p == '\t'))
      p++;
    for (w = p; p < end && *p != ' ' && *p != '\t'; p++)
      ;
    if (p > w && !(first && p < end && auth_scheme(w, (size_t)(p - w)))) {
      lua_pushlstring(L, w, (size_t)(p - w));
      lua_rawseti(L, list, ++*n);
    }
  }
  lua_pop(L, 1);
}

/*
** The block of an engine's secrets, built once (aigc_secrets_from_config)
** and read only here. It indexes what is searched: each secret of
** SECRET_MIN bytes or more (at most AIGC_MAX_SECRETS) and its other forms
** (form_of): three base64 ones, the characters of base64(X .. secret .. Y)
** that its bytes alone decide, for X of 0, 1 or 2 bytes mod 3 ("Bearer
** <key>" base64'd, an HTTP Basic credential holding a password), its hex
** form, its percent-encoded form when it differs.
**
** Layout, 32-bit fields in native order, read with memcpy (a copy in a Lua
** string need not be aligned):
**   [0] total bytes  [4] strings searched  [8] of them, secrets (first)
**   [12] 64 - log2(slots)  [16] offset of the table  [20] slots
**   [24] offset of the short secrets (a list "s1\0s2\0\0", short_secret)
**   [28] per string: offset, length   then the strings (NUL ended)
**   then the table: per slot, the offset of an indexed GRAM-byte piece of
**   a string (0: empty) and the string's number; linear probing.
**
** What is redacted is every run of RUN_MIN bytes or more of a searched
** string found anywhere in a text (the whole string when it is shorter).
** RUN_MIN = 12: 12 bytes of a random key (base62: 71 bits) occur in text
** by chance with a probability of ~1e-21 a position, so ordinary text is
** never blanked; what a leak can still show of a secret is at most 11
** bytes in a row (OpenAI's own "sk-proj-****...abcd" shows 12: the public
** 8-byte prefix and 4 more). Public prefixes of 12 bytes or more (a JWT's
** usual header) are blanked too, which costs nothing.
**
** A run of RUN_MIN bytes holds a piece of GRAM bytes that starts at a
** multiple of RUN_MIN - GRAM + 1 in the string, so only those pieces are
** indexed; each window of GRAM bytes of the text is looked up (one
** multiply), a hit is checked and extended both ways. Linear in the text.
*/
#define GRAM SECRET_MIN
#define RUN_MIN 12
#define H_TOTAL 0
#define H_NSTR 4
#define H_NSECRETS 8
#define H_SHIFT 12
#define H_TABLE 16
#define H_SLOTS 20
#define H_SHORT 24   /* the short secrets, then their forms: "s1\0s2\0\0f1\0f2\0\0" */
#define H_DIR 28

static uint32_t get32 (const char *b, size_t at) {
  uint32_t v;
  memcpy(&v, b + at, sizeof v);
  return v;
}

static void put32 (char *b, size_t at, size_t v) {
  uint32_t w = (uint32_t)v;
  memcpy(b + at, &w, sizeof w);
}

size_t aigc_secrets_len (const char *b) {
  return get32(b, H_TOTAL);
}

/*
** Matching ignores ASCII case: a gateway or a server upper-cases or
** lower-cases what it echoes ("INVALID KEY SK-PROJ-..."), and a hex form
** may be in either case. 12 letters or digits still hold ~62 bits. fold8
** lower-cases the 8 bytes of w at once (SWAR, no carry between bytes).
*/
static unsigned char fold (unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static uint64_t fold8 (const char *p) {
  const uint64_t ones = 0x0101010101010101u, high = ones * 0x80;
  uint64_t w, low;
  memcpy(&w, p, sizeof w);
  low = w & ~high;
  return w | ((((low + ones * (0x80 - 'A')) & ~(low + ones * (0x80 - 'Z' - 1))) & ~w & high) >> 2);
}

static int same_folded (const char *a, const char *b, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (fold((unsigned char)a[i]) != fold((unsigned char)b[i]))
      return 0;
  return 1;
}

static unsigned gram_hash (const char *p, unsigned shift) {
  return (unsigned)((fold8(p) * 0x9E3779B97F4A7C15u) >> shift);
}

/* Bytes of a string of length n a run must have; the step between its
   indexed pieces. */
static size_t run_min (size_t n) {
  return n < RUN_MIN ? n : RUN_MIN;
}

static size_t grams_of (size_t n) {
  return (n - GRAM) / (run_min(n) - GRAM + 1) + 1;
}

/*
** The characters of base64(X .. s[0..n) .. Y) that s alone decides, X
** being r bytes mod 3, written to out (when not NULL); returns how many.
** Character c covers bits [6c, 6c + 6) of the stream of r bytes then s.
*/
static unsigned recase (unsigned c, int kase) {   /* kase 1: upper, 2: lower, 0: as is */
  return kase == 1 && c >= 'a' && c <= 'z' ? c - 32 : kase == 2 && c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* (url: base64url's "-_" for "+/"; then 0 when no character is one of those) */
static size_t b64_inner (const unsigned char *s, size_t n, size_t r, int kase, int url, char *out) {
  static const char digits[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_";
  size_t c0 = (8 * r + 5) / 6, c1 = 8 * (r + n) / 6, c, high = 0;
  if (url && out != NULL && b64_inner(s, n, r, kase, url, NULL) == 0)
    return 0;   /* (nothing written: no room was made for it) */
  for (c = c0; c < c1; c++) {
    size_t bit = 6 * c, k = bit / 8;
    unsigned hi = (k >= r && k - r < n) ? recase(s[k - r], kase) : 0;
    unsigned lo = (k + 1 >= r && k + 1 - r < n) ? recase(s[k + 1 - r], kase) : 0;
    unsigned d = (((hi << 8) | lo) >> (10 - bit % 8)) & 63;
    high += d >= 62;
    if (out != NULL)
      out[c - c0] = digits[d >= 62 && url ? d + 2 : d];
  }
  return url && high == 0 ? 0 : c1 - c0;
}

/* Indexes the string number k (offset o, length n) of block b. */
static void index_string (char *b, size_t k, size_t o, size_t n) {
  unsigned shift = get32(b, H_SHIFT);
  size_t table = get32(b, H_TABLE), mask = get32(b, H_SLOTS) - 1, j;
  size_t step = run_min(n) - GRAM + 1;
  for (j = 0; j + GRAM <= n; j += step) {
    size_t slot = gram_hash(b + o + j, shift);
    while (get32(b, table + 8 * slot) != 0)
      slot = (slot + 1) & mask;
    put32(b, table + 8 * slot, o + j);
    put32(b, table + 8 * slot + 4, k);
  }
}

/*
** Whether a secret of n bytes, shorter than SECRET_MIN, is searched for as
** a whole word (see find_short): SHORT_MIN bytes or more, holding a letter
** and a digit ("sk-1", "key42": a local server's key). A word alone (a
** placeholder such as "EMPTY", "ollama", "no-key", "dummy") or a number is
** not: as whole words they are ordinary text ("ollama pull", "1234
** tokens"), and redacting them would mangle it; under 4 bytes, anything is.
*/
#define SHORT_MIN 4

static int is_alnum (unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int short_secret (const char *p, size_t n) {
  size_t i;
  int letter = 0, digit = 0;
  if (n < SHORT_MIN || n >= SECRET_MIN)
    return 0;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    digit |= c >= '0' && c <= '9';
    letter |= is_alnum(c) && !(c >= '0' && c <= '9');
  }
  return letter && digit;
}

/*
** The other forms a server may echo a secret in (form 0, 1, 2: the base64
** ones, b64_inner with r = form), written to out when not NULL; returns
** the length, 0 when the form is the secret itself:
**   3  hex ("736b2d..."; upper case too: matching ignores case), as a
**      gateway dumps a header it refused;
**   4  percent-encoded, all but RFC 3986's unreserved characters (a key
**      with '/', '+', '=' echoed in a URL or a form: "abc%2Fdef%2B...");
**   5  percent-encoded, every byte ("%73%6B%2D...", as some encoders do);
**   6-8, 9-11  the base64 ones of the secret upper-cased, lower-cased
**      (when that changes it): a gateway that folds the case of a header
**      before it encodes it. Matching ignores case, so these and the
**      forms above are enough for any echo folded to one case.
**   12-14, 15-20  the base64url ones of 0-2 and 6-11 ('-' and '_' for '+'
**      and '/'; when one is there): a JWT's, a URL-safe token's alphabet.
** Any of them in a JSON string, with any character escaped ("\u003d",
** "\/"), in HTML ("&#x73;", "&amp;"), percent-encoded once more ("%252F"),
** is found by searching the text unescaped (see "Escapes" and unescape.c).
*/
#define NFORMS 21

static int unreserved (unsigned char c) {
  return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Whether form (3-5) writes byte c as more than itself. */
static int escaped_in (int form, unsigned char c) {
  return form == 3 || form == 5 || (form == 4 && !unreserved(c));
}

static size_t form_of (const unsigned char *s, size_t n, int form, char *out) {
  static const char hex[] = "0123456789ABCDEF";
  size_t i, m = 0, escaped = 0;
  int url = form >= 12, cased;
  if (url)   /* 12-20: as 0-2, 6-11 in base64url */
    form = form - 12 < 3 ? form - 12 : form - 9;
  cased = form >= 6;
  if (form < 3)
    return b64_inner(s, n, (size_t)form, 0, url, out);
  for (i = 0; cased && i < n; i++)   /* 6-11: cased otherwise? */
    escaped += recase(s[i], form < 9 ? 1 : 2) != s[i];
  if (cased)
    return escaped == 0 ? 0 : b64_inner(s, n, (size_t)(form - 6) % 3, form < 9 ? 1 : 2, url, out);
  for (i = 0; i < n; i++)
    escaped += escaped_in(form, s[i]) ? (form == 3 ? 1 : 2) : 0;
  if (escaped == 0)
    return 0;
  for (i = 0; out != NULL && i < n; i++) {
    if (!escaped_in(form, s[i]))
      out[m++] = (char)s[i];
    else {
      if (form != 3)
        out[m++] = '%';
      out[m++] = hex[s[i] >> 4];
      out[m++] = hex[s[i] & 15];
    }
  }
  return n + escaped;
}

/*
** The block of the secrets in `plain` ("s1\0s2\0...\0\0", all SECRET_MIN
** bytes or more) and of the short ones in `shorts` (same form),
** malloc'ed, or NULL when out of memory. Pure C.
*/
static char *build_block (const char *plain, const char *shorts, size_t nshorts) {
  size_t nsec = 0, nstr = 0, bytes = 0, grams = 0, slots = 8, total, at, k = 0, i;
  unsigned bits = 3;
  int f;
  const char *p;
  char *b;
  for (p = plain; *p != '\0' && nsec < AIGC_MAX_SECRETS; p += strlen(p) + 1, nsec++) {
    size_t n = strlen(p);
    bytes += n + 1;
    grams += grams_of(n);
    nstr++;
    for (f = 0; f < NFORMS; f++) {
      size_t m = form_of((const unsigned char *)p, n, f, NULL);
      if (m == 0)
        continue;
      bytes += m + 1;
      grams += grams_of(m);   /* (m >= 10: n >= 8) */
      nstr++;
    }
  }
  while (slots < 4 * grams) {   /* a quarter full: most windows meet an empty slot */
    slots *= 2;
    bits++;
  }
  total = H_DIR + 8 * nstr + bytes + nshorts + 8 * slots;
  if (total > 0x7fffffff || (b = (char *)calloc(1, total)) == NULL)
    return NULL;
  put32(b, H_TOTAL, total);
  put32(b, H_NSTR, nstr);
  put32(b, H_NSECRETS, nsec);
  put32(b, H_SHIFT, 64 - bits);
  put32(b, H_TABLE, total - 8 * slots);
  put32(b, H_SLOTS, slots);
  put32(b, H_SHORT, H_DIR + 8 * nstr + bytes);   /* (calloc: an empty list when nshorts is 1) */
  memcpy(b + H_DIR + 8 * nstr + bytes, shorts, nshorts);
  at = H_DIR + 8 * nstr;
  for (p = plain; k < nsec; p += strlen(p) + 1, k++) {   /* the secrets first */
    size_t n = strlen(p);
    memcpy(b + at, p, n);
    put32(b, H_DIR + 8 * k, at);
    put32(b, H_DIR + 8 * k + 4, n);
    at += n + 1;
  }
  for (k = 0, i = nsec; k < nsec; k++) {   /* then their other forms */
    const char *s = b + get32(b, H_DIR + 8 * k);
    size_t n = get32(b, H_DIR + 8 * k + 4);
    for (f = 0; f < NFORMS; f++) {
      size_t m = form_of((const unsigned char *)s, n, f, b + at);
      if (m == 0)
        continue;
      put32(b, H_DIR + 8 * i, at);
      put32(b, H_DIR + 8 * i + 4, m);
      at += m + 1;
      i++;
    }
  }
  for (k = 0; k < nstr; k++)
    index_string(b, k, get32(b, H_DIR + 8 * k), get32(b, H_DIR + 8 * k + 4));
  return b;
}

/* s[0..n) in base64, padded, to out; returns its length. */
static size_t b64_full (const unsigned char *s, size_t n, char *out) {
  static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i, m = 0;
  for (i = 0; i < n; i += 3) {
    unsigned long v = (unsigned long)s[i] << 16 | (i + 1 < n ? (unsigned long)s[i + 1] << 8 : 0)
                      | (i + 2 < n ? s[i + 2] : 0);
    out[m++] = digits[v >> 18 & 63];
    out[m++] = digits[v >> 12 & 63];
    out[m++] = i + 1 < n ? digits[v >> 6 & 63] : '=';
    out[m++] = i + 2 < n ? digits[v & 63] : '=';
  }
  return m;
}

/*
** The other forms of the short secret p[0..n) (short_secret) a server may
** echo, each searched as a word as it is (find_short): its hex (matching
** ignores case), its base64 and that of "Bearer <it>" (an Authorization
** header dumped), padded and not: "736b2d31", "c2stMQ==", "c2stMQ",
** "QmVhcmVyIHNrLTE=", "QmVhcmVyIHNrLTE". Written to out as "f1\0f2\0...";
** returns their bytes.
*/
static size_t short_forms (const char *p, size_t n, char *out) {
  static const char hex[] = "0123456789abcdef";
  unsigned char bearer[7 + SECRET_MIN];
  size_t m = 0, i, k, w;
  for (i = 0; i < n; i++) {
    out[m++] = hex[(unsigned char)p[i] >> 4];
    out[m++] = hex[(unsigned char)p[i] & 15];
  }
  out[m++] = '\0';
  memcpy(bearer, "Bearer ", 7);
  memcpy(bearer + 7, p, n);
  for (k = 0; k < 2; k++) {
    char *f = out + m;
    w = b64_full(k == 0 ? (const unsigned char *)p : bearer, k == 0 ? n : n + 7, f);
    f[w] = '\0';
    m += w + 1;
    for (i = w; i > 0 && f[i - 1] == '='; i--)
      ;
    if (i < w) {   /* and without its padding */
      memcpy(out + m, f, i);
      out[m + i] = '\0';
      m += i + 1;
    }
  }
  return m;
}

/*
** The block of the plain list `plain` (malloc'ed, `len` bytes; zeroed and
** freed here), or NULL when it holds no secret searched for. Raises when
** out of memory (after freeing it).
*/
static char *finish_block (lua_State *L, char *plain, size_t len) {
  size_t room = 18 * len + 2;   /* (a short one's forms: 81 bytes at most, 18 times its 4-7 and NUL) */
  char *w = plain, *b = NULL, *shorts = (char *)malloc(room), *ws = shorts;
  const char *p;
  int failed = shorts == NULL, pass;
  for (pass = 0; !failed && pass < 2; pass++) {   /* the short ones aside, then their forms */
    for (p = plain; *p != '\0'; p += strlen(p) + 1) {
      size_t n = strlen(p);
      if (short_secret(p, n) && pass == 0) {
        memcpy(ws, p, n + 1);
        ws += n + 1;
      }
      else if (short_secret(p, n))
        ws += short_forms(p, n, ws);
    }
    *ws++ = '\0';
  }
  for (p = plain; !failed && *p != '\0'; p += strlen(p) + 1) {   /* keep the long enough */
    size_t n = strlen(p);
    if (n >= SECRET_MIN) {
      memmove(w, p, n + 1);
      w += n + 1;
    }
  }
  if (!failed) {
    *w = '\0';
    if (w > plain || ws > shorts + 2)
      failed = (b = build_block(plain, shorts, (size_t)(ws - shorts))) == NULL;
    memset(shorts, 0, room);
  }
  free(shorts);
  memset(plain, 0, len);
  free(plain);
  if (failed)
    luaL_error(L, "not enough memory");
  return b;
}

/*
** The block of the strings list[1..n] (the table at `list`, on top of the
** stack: popped), repeats and empty strings left out, or NULL when none is
** long enough. Raises when out of memory.
*/
static char *block_of_list (lua_State *L, int list, lua_Integer n) {
  size_t total = 1, len, at = 0;
  lua_Integer i;
  char *out;
  /* Sizes first, then one allocation and no Lua call until it is filled
     (lua_rawgeti of a string allocates nothing). */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    lua_tolstring(L, -1, &len);
    total += len + 1;
    lua_pop(L, 1);
  }
  if (n == 0 || (out = (char *)malloc(total)) == NULL) {
    lua_settop(L, list - 1);
    if (n > 0)
      luaL_error(L, "not enough memory");
    return NULL;
  }
  for (i = 1; i <= n; i++) {
    const char *s, *p;
    lua_rawgeti(L, list, i);
    s = lua_tolstring(L, -1, &len);
    for (p = out; p < out + at; p += strlen(p) + 1)   /* a repeat? */
      if (strlen(p) == len && memcmp(p, s, len) == 0)
        break;
    if (len > 0 && strlen(s) == len && p == out + at) {
      memcpy(out + at, s, len + 1);
      at += len + 1;
    }
    lua_pop(L, 1);
  }
  out[at] = '\0';
  lua_settop(L, list - 1);
  return finish_block(L, out, total);   /* frees out */
}

/*
** The secrets of the engine config at idx, as a malloc'ed block
** "s1\0s2\0...\0\0", or NULL when there are none: config.secrets (a list of
** strings; holes allowed), config.secret (one string), and the credential
** of every Authorization, api-key or x-api-key line of config.headers and
** config.stream_headers. Empty strings, strings with a NUL and repeats are
** left out. Raises on a value of the wrong type, before allocating. Free
** the block with aigc_secrets_free.
*/
char *aigc_secrets_from_config (lua_State *L, int idx) {
  int list, f;
  lua_Integer n = 0;
  static const char *const header_fields[] = {"headers", "stream_headers"};
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  list = lua_gettop(L);
  if (lua_getfield(L, idx, "secret") == LUA_TSTRING)
    lua_rawseti(L, list, ++n);
  else if (!lua_isnil(L, -1))
    aigc_argerror(L, 1, "engine", "config.secret: a string expected, got %s", luaL_typename(L, -1));
  else
    lua_pop(L, 1);
  if (lua_getfield(L, idx, "secrets") == LUA_TTABLE) {
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
      if (lua_type(L, -1) != LUA_TSTRING)
        aigc_argerror(L, 1, "engine", "config.secrets: a list of strings expected, found a %s",
                      luaL_typename(L, -1));
      lua_rawseti(L, list, ++n);
    }
  }
  else if (!lua_isnil(L, -1))
    aigc_argerror(L, 1, "engine", "config.secrets: a list of strings expected, got %s",
                  luaL_typename(L, -1));
  lua_pop(L, 1);
  for (f = 0; f < 2; f++) {
    if (lua_getfield(L, idx, header_fields[f]) == LUA_TTABLE) {
      int t = lua_gettop(L);
      lua_Integer k, nh = (lua_Integer)lua_rawlen(L, t);
      for (k = 1; k <= nh; k++) {
        lua_rawgeti(L, t, k);
        add_header_secret(L, list, &n);
      }
    }
    lua_pop(L, 1);
  }
  return block_of_list(L, list, n);
}

/*
** A request's own secrets block when the call's header lines at hidx (a
** list of "Name: value"; 0: none) carry a credential its engine's block
** `engine` does not hold (a per-call Authorization, api-key, x-api-key or
** Proxy-Authorization), or the list of strings at sidx (0: none) does
** (the values of the call's credential-like query parameters, as the Lua
** layer finds them): the engine's secrets and those, malloc'ed
** (aigc_secrets_free); else NULL. The request holds its engine (or the
** engine userdata is on the stack), so `engine` stays valid across the
** Lua calls here, whatever a finalizer does meanwhile.
*/
char *aigc_secrets_with_call (lua_State *L, int hidx, int sidx, const char *engine) {
  int list, fresh = 0, pass;
  lua_Integer n = 0, k, nh;
  size_t i, len, nsec = engine != NULL ? get32(engine, H_NSECRETS) : 0;
  hidx = hidx != 0 ? lua_absindex(L, hidx) : 0;
  sidx = sidx != 0 ? lua_absindex(L, sidx) : 0;
  lua_newtable(L);
  list = lua_gettop(L);
  for (i = 0; i < nsec; i++) {
    lua_pushlstring(L, engine + get32(engine, H_DIR + 8 * i), get32(engine, H_DIR + 8 * i + 4));
    lua_rawseti(L, list, ++n);
  }
  if (engine != NULL) {   /* and its short ones (after a Lua call, read anew: still valid) */
    size_t at = get32(engine, H_SHORT);
    for (; engine[at] != '\0'; at += strlen(engine + at) + 1) {
      lua_pushstring(L, engine + at);
      lua_rawseti(L, list, ++n);
    }
  }
  for (pass = 0; pass < 2; pass++) {
    int t = pass == 0 ? hidx : sidx;
    nh = t != 0 ? (lua_Integer)lua_rawlen(L, t) : 0;
    for (k = 1; k <= nh; k++) {
      lua_Integer before = n;
      const char *c;
      lua_rawgeti(L, t, k);
      if (pass == 0)
        add_header_secret(L, list, &n);
      else if (lua_type(L, -1) == LUA_TSTRING)
        lua_rawseti(L, list, ++n);
      else
        lua_pop(L, 1);
      for (; before < n; before++) {   /* each credential: one the engine searches already? */
        lua_rawgeti(L, list, before + 1);
        c = lua_tolstring(L, -1, &len);
        for (i = 0; i < nsec; i++)
          if (get32(engine, H_DIR + 8 * i + 4) == len
              && memcmp(engine + get32(engine, H_DIR + 8 * i), c, len) == 0)
            break;
        fresh |= i == nsec && (len >= SECRET_MIN || short_secret(c, len)) && strlen(c) == len;
        lua_pop(L, 1);
      }
    }
  }
  if (!fresh) {
    lua_settop(L, list - 1);
    return NULL;
  }
  return block_of_list(L, list, n);
}

/*
** A block made for one scrub (engine:scrub with a call's credentials)
** lives in a userdata box on the stack: a Lua error (memory) on the way
** lets its __gc zero and free it.
*/
void aigc_secrets_box_free (char **box) {
  aigc_secrets_free(*box);
  *box = NULL;
}

static int secrets_box_gc (lua_State *L) {
  aigc_secrets_box_free((char **)lua_touserdata(L, 1));
  return 0;
}

char **aigc_secrets_box (lua_State *L, int hidx, int sidx, const char *engine) {
  char **box;
  hidx = hidx != 0 ? lua_absindex(L, hidx) : 0;
  sidx = sidx != 0 ? lua_absindex(L, sidx) : 0;
  box = (char **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  aigc_push_box_mt(L, "aigc.secretsbox", secrets_box_gc);
  lua_setmetatable(L, -2);
  *box = aigc_secrets_with_call(L, hidx, sidx, engine);
  return box;
}

/* Zeroes and frees a block made by aigc_secrets_from_config (or NULL). */
void aigc_secrets_free (char *secrets) {
  if (secrets != NULL) {
    memset(secrets, 0, aigc_secrets_len(secrets));
    free(secrets);
  }
}

/* A scan of a text s[0..len) for the runs of the strings of block b. */
typedef struct scan {
  const char *b, *s;
  size_t len, table, mask, from;   /* from: where the text left to scrub starts */
  unsigned shift;
} scan;

static void scan_init (scan *S, const char *b, const char *s, size_t len) {
  S->b = b;
  S->s = s;
  S->len = len;
  S->table = get32(b, H_TABLE);
  S->mask = get32(b, H_SLOTS) - 1;
  S->shift = get32(b, H_SHIFT);
  S->from = 0;
}

/*
** Whether the window s[i..i + GRAM) lies in a run of a string of the
** block that is long enough (see the top of the block): then [*lo, *hi)
** is the union of those runs, counted from S->from at most. When
** `known` (a stretch [*lo, *hi) found already), a run that can neither
** pass *hi nor begin before *lo is not measured: so the work a stretch
** costs does not grow with its length. Pure C: allocates nothing.
*/
static int runs_at (const scan *S, size_t i, size_t *lo, size_t *hi, int known) {
  const char *b = S->b, *s = S->s;
  size_t slot = gram_hash(s + i, S->shift), off;
  int found = 0;
  for (; (off = get32(b, S->table + 8 * slot)) != 0; slot = (slot + 1) & S->mask) {
    size_t k = get32(b, S->table + 8 * slot + 4);
    size_t n = get32(b, H_DIR + 8 * k + 4), j = off - get32(b, H_DIR + 8 * k);
    size_t left = 0, right = GRAM, back = i - S->from;
    if (fold8(b + off) != fold8(s + i))
      continue;
    if (back > RUN_MIN)   /* (a run begins at most RUN_MIN bytes before its first window) */
      back = RUN_MIN;
    while (left < back && left < j
           && fold((unsigned char)s[i - left - 1]) == fold((unsigned char)b[off - left - 1]))
      left++;
    if (known && i - left >= *lo && i + n - j <= *hi)
      continue;
    while (i + right < S->len && j + right < n
           && fold((unsigned char)s[i + right]) == fold((unsigned char)b[off + right]))
      right++;
    if (left + right < run_min(n))
      continue;
    if ((!found && !known) || i - left < *lo)
      *lo = i - left;
    if ((!found && !known) || i + right > *hi)
      *hi = i + right;
    found = 1;
  }
  return found;
}

/* Whether the window s[i..i + GRAM) is an indexed piece: the test made
   at every byte of a text, kept to a hash, a load or two, a compare. */
static int indexed (const scan *S, size_t i) {
  uint64_t w = fold8(S->s + i);
  size_t slot = gram_hash(S->s + i, S->shift), off;
  for (; (off = get32(S->b, S->table + 8 * slot)) != 0; slot = (slot + 1) & S->mask) {
    if (fold8(S->b + off) == w)
      return 1;
  }
  return 0;
}

/*
** The first stretch of s[S->from..len) to redact, [*lo, *hi): a run and
** the runs overlapping it (a run that began before `from`, already
** redacted, counts from there). Returns 0 when there is none. Past the
** first RUN_MIN windows of a stretch, only its last RUN_MIN - 1 bytes are
** looked at again: a run that passes *hi has a window there.
*/
static int next_run (const scan *S, size_t *lo, size_t *hi) {
  size_t i, first;
  for (i = S->from; i + GRAM <= S->len; i++)
    if (indexed(S, i) && runs_at(S, i, lo, hi, 0))
      break;
  if (i + GRAM > S->len)
    return 0;
  for (first = i++; i < *hi && i + GRAM <= S->len; i++) {
    if (i >= first + RUN_MIN && i + RUN_MIN - 1 < *hi)
      i = *hi - RUN_MIN + 1;
    if (i + GRAM <= S->len)
      runs_at(S, i, lo, hi, 1);
  }
  return 1;
}

/* The length of the longest end of s[0..len) that is a start of a secret
   of block b, SECRET_MIN bytes or more and shorter than it (a secret cut
   short by a truncation), or 0. */
static size_t cut_tail (const char *b, const char *s, size_t len) {
  size_t k, nsec = get32(b, H_NSECRETS), best = 0;
  for (k = 0; k < nsec; k++) {
    const char *p = b + get32(b, H_DIR + 8 * k);
    size_t n = get32(b, H_DIR + 8 * k + 4), t = (n - 1 < len) ? n - 1 : len;
    for (; t >= SECRET_MIN && t > best; t--)
      if (same_folded(s + len - t, p, t))
        best = t;
  }
  return best;
}

/*
** How many bytes of s[0..len) a message may quote when the text goes on
** after them ("msg (loc)"): len less a tail that starts a secret (8 bytes
** or more), which only a string's end would show as cut. Pure C.
*/
size_t aigc_secrets_cut (const char *secrets, const char *s, size_t len) {
  return secrets != NULL && len >= SECRET_MIN ? len - cut_tail(secrets, s, len) : len;
}

/*
** The first short secret of block b (short_secret) standing as a whole
** word in s[from..len), in any ASCII case ("SK-1": an echo upper-cased), touching no ASCII letter or digit on either side
** ("req_sk-1", "key sk-1." but not "task-1"): *lo its start. 0: none.
** Pure C: allocates nothing.
*/
static int find_short (const char *b, const char *s, size_t len, size_t from, size_t *lo) {
  const char *p = b + get32(b, H_SHORT);
  int found = 0, list;
  for (list = 0; list < 2; list++, p++)   /* the short secrets, then their forms */
    for (; *p != '\0'; p += strlen(p) + 1) {
      size_t n = strlen(p), i;
      for (i = from; i + n <= len && (!found || i < *lo); i++)
        if (fold((unsigned char)s[i]) == fold((unsigned char)p[0]) && same_folded(s + i, p, n)
            && (i == 0 || !is_alnum((unsigned char)s[i - 1]))
            && (i + n == len || !is_alnum((unsigned char)s[i + n]))) {
          *lo = i;
          found = 1;
          break;
        }
    }
  return found;
}

/* The length of the short secret (or form) of block b at s + at (find_short found). */
static size_t short_at (const char *b, const char *s, size_t len, size_t at) {
  const char *p = b + get32(b, H_SHORT);
  size_t best = 0;
  int list;
  for (list = 0; list < 2; list++, p++)
    for (; *p != '\0'; p += strlen(p) + 1) {
      size_t n = strlen(p);
      if (n > best && at + n <= len && same_folded(s + at, p, n)
          && (at + n == len || !is_alnum((unsigned char)s[at + n])))
        best = n;
    }
  return best;
}

/*
** {======================================================
** Escapes
** =======================================================
** A text holding an escape (unescape.c: JSON, Java properties, HTML,
** percent) is searched a second time unescaped, and each stretch found
** there is redacted in the text over all the bytes it came from.
*/

/* Whether d[0..dlen) (a text, or one unescaped) holds a run or a cut secret. */
static int runs_found (const char *b, const char *d, size_t dlen) {
  size_t lo, hi;
  scan S;
  if (dlen < SECRET_MIN)
    return 0;
  scan_init(&S, b, d, dlen);
  return next_run(&S, &lo, &hi) || cut_tail(b, d, dlen - aigc_cut_escape(d, dlen)) > 0;
}

/* Whether the unescaped s[0..len), at any level, holds something to
   redact. No Lua allocation; a malloc failing says yes (the scrub then
   raises). */
static int escaped_found (const char *s, size_t len, const char *b) {
  const char *src = s;
  char *d, *dst, *other;
  size_t dlen = len, lo;
  int found = 0, k;
  if (!aigc_has_escape(s, len))
    return 0;
  if ((d = (char *)malloc(2 * len)) == NULL)
    return 1;
  for (k = 0, dst = d, other = d + len; !found && k < AIGC_LEVELS && (k == 0 || aigc_escapes_in(src, dlen)); k++) {
    dlen = aigc_unescape(src, dlen, dst);   /* (each level from the one before) */
    found = runs_found(b, dst, dlen) || find_short(b, dst, dlen, 0, &lo);
    src = dst;
    dst = other;
    other = d + (size_t)(dst == d) * len;
  }
  free(d);
  return found;
}

/*
** The text s[0..len) with each short secret standing as a word in its
** unescaped form d[0..dlen) (walked back by V) replaced by "[redacted]"
** over all the bytes it came from, added to buf.
*/
static void add_shorts_unescaped (luaL_Buffer *buf, const char *b, aigc_levels *V, const char *s,
                                  size_t len, const char *d, size_t dlen) {
  size_t at = 0, lo, from = 0;
  while (find_short(b, d, dlen, at, &lo)) {
    size_t t = aigc_levels_at(V, lo, 0);
    luaL_addlstring(buf, s + from, t - from);
    luaL_addstring(buf, REDACTED);
    at = lo + short_at(b, d, dlen, lo);
    from = aigc_levels_at(V, at, 1);
  }
  luaL_addlstring(buf, s + from, len - from);
}

/*
** Replaces the string at the top of the stack (the block just below it)
** by itself with each stretch found in it unescaped `levels` times (the
** short secrets when `shorts`, else the runs) replaced by "[redacted]",
** over all the text it came from. Both anchored there. Returns whether a
** level deeper may hold more (0: this one, or one before, holds no escape).
*/
static int scrub_escaped_top (lua_State *L, int shorts, int levels) {
  size_t len, dlen, lo, hi, tail, cut, from = 0;
  int deeper;
  const char *s = lua_tolstring(L, -1, &len), *b = lua_tostring(L, -2);
  aigc_levels V;
  luaL_Buffer buf;
  scan S;
  char *d;
  if ((shorts && b[get32(b, H_SHORT)] == '\0') || !aigc_has_escape(s, len))
    return 0;   /* (no short secret: no second decoding) */
  d = (char *)lua_newuserdatauv(L, len * (size_t)levels, 0);   /* (anchored below the buffer) */
  if ((dlen = aigc_unescape_levels(&V, s, len, d, levels)) == (size_t)-1) {
    lua_pop(L, 1);
    return 0;
  }
  d += (size_t)(levels - 1) * len;
  deeper = aigc_escapes_in(d, dlen);   /* (a redaction makes no escape: known now) */
  if (shorts ? !find_short(b, d, dlen, 0, &lo) : !runs_found(b, d, dlen)) {
    lua_pop(L, 1);
    return deeper;
  }
  luaL_buffinit(L, &buf);
  if (shorts)
    add_shorts_unescaped(&buf, b, &V, s, len, d, dlen);
  else {
    scan_init(&S, b, d, dlen);
    while (next_run(&S, &lo, &hi)) {
      size_t at = aigc_levels_at(&V, lo, 0);
      luaL_addlstring(&buf, s + from, at - from);
      luaL_addstring(&buf, REDACTED);
      from = aigc_levels_at(&V, hi, 1);
      S.from = hi;
    }
    cut = aigc_cut_escape(d + S.from, dlen - S.from);
    tail = dlen - S.from - cut >= SECRET_MIN ? cut_tail(b, d + S.from, dlen - S.from - cut) : 0;
    luaL_addlstring(&buf, s + from, (tail > 0 ? aigc_levels_at(&V, dlen - cut - tail, 0) : len) - from);
    if (tail > 0)
      luaL_addstring(&buf, REDACTED);
  }
  luaL_pushresult(&buf);
  lua_replace(L, -3);   /* over the original */
  lua_pop(L, 1);        /* the decoded text */
  return deeper;
}

/* }====================================================== */


/* Whether s[0..len) holds something to redact. Pure C: allocates no Lua
   memory. */
int aigc_secrets_found (const char *s, size_t len, const char *secrets) {
  size_t lo;
  if (secrets == NULL || find_short(secrets, s, len, 0, &lo))
    return secrets != NULL;
  return runs_found(secrets, s, len) || escaped_found(s, len, secrets);
}

/*
** Replaces the string at the top of the stack (the block just below it)
** by itself with each short secret standing as a word (find_short)
** replaced by "[redacted]". Both anchored on the stack.
*/
static void scrub_short_top (lua_State *L) {
  size_t len, from = 0, lo;
  const char *s = lua_tolstring(L, -1, &len);
  const char *b = lua_tostring(L, -2);
  luaL_Buffer buf;
  if (!find_short(b, s, len, 0, &lo))
    return;
  luaL_buffinit(L, &buf);
  do {
    luaL_addlstring(&buf, s + from, lo - from);
    luaL_addstring(&buf, REDACTED);
    from = lo + short_at(b, s, len, lo);
  } while (find_short(b, s, len, from, &lo));
  luaL_addlstring(&buf, s + from, len - from);
  luaL_pushresult(&buf);
  lua_replace(L, -2);   /* over the original */
}

/*
** Replaces the string at the top of the stack by its scrubbed form, the
** secrets block being the string just below it (both anchored there, so
** nothing a finalizer does can move them). Pops the block. Each stretch
** to redact becomes one "[redacted]".
*/
void aigc_secrets_scrub_top (lua_State *L) {
  size_t len, from, lo, hi, tail;
  int level;
  const char *s, *b = lua_tostring(L, -2);
  luaL_Buffer buf;
  scan S;
  scrub_short_top(L);
  for (level = 1; level <= AIGC_LEVELS && scrub_escaped_top(L, 1, level); level++)
    ;
  for (level = 1; level <= AIGC_LEVELS && scrub_escaped_top(L, 0, level); level++)
    ;   /* before the runs: a stretch is then one, escapes and all */
  s = lua_tolstring(L, -1, &len);
  scan_init(&S, b, s, len);
  luaL_buffinit(L, &buf);
  while (next_run(&S, &lo, &hi)) {
    luaL_addlstring(&buf, s + S.from, lo - S.from);
    luaL_addstring(&buf, REDACTED);
    S.from = hi;
  }
  from = S.from;
  tail = len - from >= SECRET_MIN ? cut_tail(b, s + from, len - from) : 0;
  luaL_addlstring(&buf, s + from, len - from - tail);
  if (tail > 0)
    luaL_addstring(&buf, REDACTED);
  luaL_pushresult(&buf);
  lua_replace(L, -3);   /* over the secrets */
  lua_pop(L, 1);        /* the original */
}

/*
** Replaces the text on top by its form scrubbed of the secrets of the
** state's other live engines (peers.h): a server serving several clients
** may echo one's key in another's error.
*/
static void scrub_peers_top (lua_State *L, const char *own) {
  size_t len;
  const char *s;
  int i, n = aigc_peers_push(L, own, own != NULL ? aigc_secrets_len(own) : 0);
  for (i = 1; i <= n; i++) {   /* text, list */
    lua_rawgeti(L, -1, i);
    s = lua_tolstring(L, -3, &len);
    if (!aigc_secrets_found(s, len, lua_tostring(L, -1))) {
      lua_pop(L, 1);
      continue;
    }
    lua_pushvalue(L, -3);
    aigc_secrets_scrub_top(L);   /* text, list, scrubbed */
    lua_replace(L, -3);
  }
  if (n > 0)
    lua_pop(L, 1);
}

/*
** Pushes s[0..len) with every secret of the block replaced by
** "[redacted]" (see the top of this file), and those of the state's other
** live engines. `secrets` is an engine's block (valid while the engine
** userdata lives) or NULL. s is copied into Lua first, so the caller's
** memory is not read after an allocation.
*/
void aigc_error_push_scrubbed (lua_State *L, const char *s, size_t len, const char *secrets) {
  lua_pushlstring(L, s, len);   /* copied before any collection step */
  s = lua_tolstring(L, -1, &len);
  if (aigc_secrets_found(s, len, secrets)) {
    lua_pushlstring(L, secrets, aigc_secrets_len(secrets));
    lua_insert(L, -2);
    aigc_secrets_scrub_top(L);
  }
  scrub_peers_top(L, secrets);
}
