/*
** jsonout.c — JSON out of C (json.h): the writer (strings, numbers, whole
** trees), and owned trees (deep copy, free). The parser is json.c.
*/
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "utf8.h"

#define IS_DIGIT(c)  ((unsigned)((c) - '0') < 10u)

/* {====================================================================
** Writer
** ===================================================================== */

/*
** What aigc_json_write_string does with each byte: 0 copy, 1 a short escape,
** 2 a \u00XX escape, 3 the start of a multibyte sequence (validated, then
** copied).
*/
#define W2 2, 2, 2, 2, 2, 2, 2, 2
#define W0 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
#define W3 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3
static const unsigned char wrclass[256] = {
  2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 1, 1, 2, 2,   /* \b \t \n \f \r */
  W2, W2,
  0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* '"' */
  W0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,   /* '\\' */
  W0, W0,
  W3, W3, W3, W3, W3, W3, W3, W3
};
#undef W0
#undef W2
#undef W3

/*
** One pass: runs of bytes that need no escaping (valid UTF-8 sequences
** included) are appended whole, plain ASCII skipped eight bytes at a time.
** A string with nothing to escape (nearly every key and value of a
** request) is one memcpy into the room reserved first. On invalid UTF-8
** the buffer's length is put back, so nothing appears to have been
** appended.
*/
int aigc_json_write_string (aigc_buf *out, const char *str, size_t len,
                     size_t *bad_offset) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *)str;
  size_t start_len = out->len, i = 0, run = 0;
  if (len > (size_t)-1 - 3 || aigc_buf_reserve(out, len + 2) != 0)
    return -1;
  out->data[out->len++] = '"';
  for (;;) {
    unsigned c;
    char esc[6];
    size_t n;
    while (len - i >= 8) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (AIGC_JSON_STR_SPECIAL(w) != 0)
        break;
      i += 8;
    }
    if (i >= len)
      break;
    c = s[i];
    switch (wrclass[c]) {
      case 0:
        i++;
        continue;
      case 3:
        n = aigc_utf8_seq(s + i, len - i);
        if (n == 0) {
          out->len = start_len;
          out->data[start_len] = '\0';
          if (bad_offset != NULL)
            *bad_offset = i;
          return -2;
        }
        i += n;
        continue;
      case 1:
        esc[0] = '\\';
        switch (c) {
          case '\b': esc[1] = 'b'; break;
          case '\t': esc[1] = 't'; break;
          case '\n': esc[1] = 'n'; break;
          case '\f': esc[1] = 'f'; break;
          case '\r': esc[1] = 'r'; break;
          default: esc[1] = (char)c; break;   /* '"' and '\\' */
        }
        n = 2;
        break;
      default:
        memcpy(esc, "\\u00", 4);
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 15];
        n = 6;
        break;
    }
    if (aigc_buf_append(out, s + run, i - run) != 0 ||
        aigc_buf_append(out, esc, n) != 0)
      goto nomem;
    run = ++i;
  }
  if (run == 0) {   /* nothing escaped: the room reserved above holds it */
    if (len > 0)
      memcpy(out->data + out->len, s, len);
    out->len += len;
    out->data[out->len++] = '"';
    out->data[out->len] = '\0';
    return 0;
  }
  if (aigc_buf_append(out, s + run, i - run) != 0 ||
      aigc_buf_putc(out, '"') != 0)
    goto nomem;
  return 0;
nomem:
  out->len = start_len;
  out->data[start_len] = '\0';
  return -1;
}

/*
** A string that is not valid UTF-8 (only a hand-built tree can hold one)
** is written with each bad byte replaced by U+FFFD, so the output is
** always valid JSON.
*/
static int write_str (aigc_buf *out, const char *s, size_t len) {
  aigc_buf tmp = AIGC_BUF_INIT;
  size_t bad = 0, i = 0;
  int rc = aigc_json_write_string(out, s, len, &bad);
  if (rc != -2)
    return rc;
  while (i < len) {
    if (!aigc_json_utf8_valid(s + i, len - i, &bad))
      bad += i;
    else
      bad = len;
    if (aigc_buf_append(&tmp, s + i, bad - i) != 0 ||
        (bad < len && aigc_buf_append(&tmp, "\xEF\xBF\xBD", 3) != 0)) {
      aigc_buf_free(&tmp);
      return -1;
    }
    i = bad + 1;
  }
  rc = aigc_json_write_string(out, tmp.data, tmp.len, NULL);
  aigc_buf_free(&tmp);
  return rc;
}

static int write_value (aigc_buf *out, const aigc_json_value *v) {
  char num[32];
  size_t i;
  switch (v->type) {
    case AIGC_JSON_NULL: return aigc_buf_append(out, "null", 4);
    case AIGC_JSON_FALSE: return aigc_buf_append(out, "false", 5);
    case AIGC_JSON_TRUE: return aigc_buf_append(out, "true", 4);
    case AIGC_JSON_INT:
      return aigc_buf_append(out, num, (size_t)aigc_json_format_int(num, v->u.i));
    case AIGC_JSON_FLOAT:
      if (!isfinite(v->u.d))   /* JSON has no form for these */
        return aigc_buf_append(out, "null", 4);
      return aigc_buf_append(out, num, (size_t)aigc_json_format_double(num, v->u.d));
    case AIGC_JSON_STRING:
      return write_str(out, v->u.s, v->len);
    case AIGC_JSON_ARRAY:
      if (aigc_buf_putc(out, '[') != 0)
        return -1;
      for (i = 0; i < v->len; i++) {
        if ((i > 0 && aigc_buf_putc(out, ',') != 0) ||
            write_value(out, &v->u.items[i]) != 0)
          return -1;
      }
      return aigc_buf_putc(out, ']');
    case AIGC_JSON_OBJECT:
      if (aigc_buf_putc(out, '{') != 0)
        return -1;
      for (i = 0; i < v->len; i++) {
        const aigc_json_member *m = &v->u.members[i];
        if ((i > 0 && aigc_buf_putc(out, ',') != 0) ||
            write_str(out, m->key, m->key_len) != 0 ||
            aigc_buf_putc(out, ':') != 0 ||
            write_value(out, &m->value) != 0)
          return -1;
      }
      return aigc_buf_putc(out, '}');
  }
  return -1;
}

int aigc_json_write (aigc_buf *out, const aigc_json_value *v) {
  size_t start_len = out->len;
  if (write_value(out, v) != 0) {
    out->len = start_len;
    if (out->data != NULL)
      out->data[start_len] = '\0';
    return -1;
  }
  return 0;
}

/*
** %.15g first: it reads back exactly for almost every value people write
** (0.7, 1e-5), and only the rest need 16 or 17 digits. Both run in the C
** locale (uselocale, json.h): under the process's, another thread's
** setlocale between snprintf and strtod made the test fail and the same
** number came out as 15 or 17 digits by chance (a cache key that missed).
** Should no C locale exist, the locale's decimal point is replaced by '.'.
*/
int aigc_json_format_double (char *buf, double d) {
  char tmp[40];
  int prec, n = 0, i, j, dot = 0;
  locale_t cloc = aigc_json_c_locale(), saved = (locale_t)0;
  if (cloc != (locale_t)0)
    saved = uselocale(cloc);
  for (prec = 15; prec <= 17; prec++) {
    n = snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
    if (prec == 17 || strtod(tmp, NULL) == d)
      break;
  }
  if (saved != (locale_t)0)
    uselocale(saved);
  for (i = j = 0; i < n; ) {   /* copy, normalising the decimal point */
    unsigned char c = (unsigned char)tmp[i];
    if (IS_DIGIT(c) || c == '-' || c == '+' || c == 'e' || c == 'E' ||
        c == 'i' || c == 'n' || c == 'f' || c == 'a') {
      if (c == 'e' || c == 'n')
        dot = 1;   /* an exponent, or inf/nan: no ".0" to add */
      buf[j++] = (char)c;
      i++;
    }
    else {
      buf[j++] = '.';
      dot = 1;
      while (i < n && !IS_DIGIT((unsigned char)tmp[i]))
        i++;
    }
  }
  if (!dot) {
    buf[j++] = '.';
    buf[j++] = '0';
  }
  buf[j] = '\0';
  return j;
}

int aigc_json_format_int (char *buf, int64_t i) {
  static const char pairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233"
    "34353637383940414243444546474849505152535455565758596061626364656667"
    "6869707172737475767778798081828384858687888990919293949596979899";
  char tmp[24];
  char *p = tmp + sizeof(tmp);
  uint64_t u = (i < 0) ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
  int n;
  while (u >= 100) {
    unsigned r = (unsigned)(u % 100);
    u /= 100;
    p -= 2;
    memcpy(p, pairs + 2 * r, 2);
  }
  if (u >= 10) {
    p -= 2;
    memcpy(p, pairs + 2 * u, 2);
  }
  else
    *--p = (char)('0' + u);
  if (i < 0)
    *--p = '-';
  n = (int)(tmp + sizeof(tmp) - p);
  memcpy(buf, p, (size_t)n);
  buf[n] = '\0';
  return n;
}

/* }==================================================================== */


/* {====================================================================
** Owned trees
** ===================================================================== */

/*
** Copies src into dst. On failure dst is still a well-formed owned tree
** holding what was copied so far (so aigc_json_free can release it): len only
** ever counts fully initialised children.
*/
static int copy_value (aigc_json_value *dst, const aigc_json_value *src) {
  size_t i, n = src->len;
  dst->type = src->type;
  dst->len = dst->cap = 0;
  dst->u = src->u;
  switch (src->type) {
    case AIGC_JSON_STRING:
      dst->u.s = (n < (size_t)-1) ? (char *)malloc(n + 1) : NULL;
      if (dst->u.s == NULL)
        return -1;
      if (n > 0)
        memcpy(dst->u.s, src->u.s, n);
      dst->u.s[n] = '\0';
      dst->len = n;
      dst->cap = n + 1;
      return 0;
    case AIGC_JSON_ARRAY:
      dst->u.items = NULL;
      if (n == 0)
        return 0;
      if (n > (size_t)-1 / sizeof(aigc_json_value) ||
          (dst->u.items = (aigc_json_value *)malloc(n * sizeof(aigc_json_value))) == NULL)
        return -1;
      dst->cap = n;
      for (i = 0; i < n; i++) {
        dst->len = i + 1;
        if (copy_value(&dst->u.items[i], &src->u.items[i]) != 0)
          return -1;
      }
      return 0;
    case AIGC_JSON_OBJECT:
      dst->u.members = NULL;
      if (n == 0)
        return 0;
      if (n > (size_t)-1 / sizeof(aigc_json_member) ||
          (dst->u.members = (aigc_json_member *)malloc(n * sizeof(aigc_json_member))) == NULL)
        return -1;
      dst->cap = n;
      for (i = 0; i < n; i++) {
        const aigc_json_member *sm = &src->u.members[i];
        aigc_json_member *dm = &dst->u.members[i];
        dm->key_len = sm->key_len;
        dm->key = (sm->key_len < (size_t)-1) ? (char *)malloc(sm->key_len + 1)
                                             : NULL;
        if (dm->key == NULL)
          return -1;
        if (sm->key_len > 0)
          memcpy(dm->key, sm->key, sm->key_len);
        dm->key[sm->key_len] = '\0';
        dm->value.type = AIGC_JSON_NULL;
        dst->len = i + 1;
        if (copy_value(&dm->value, &sm->value) != 0)
          return -1;
      }
      return 0;
    default:
      return 0;
  }
}

int aigc_json_copy (aigc_json_value *dst, const aigc_json_value *src) {
  if (copy_value(dst, src) != 0) {
    aigc_json_free(dst);
    return -1;
  }
  return 0;
}

void aigc_json_free (aigc_json_value *v) {
  size_t i;
  switch (v->type) {
    case AIGC_JSON_STRING:
      free(v->u.s);
      break;
    case AIGC_JSON_ARRAY:
      for (i = 0; i < v->len; i++)
        aigc_json_free(&v->u.items[i]);
      free(v->u.items);
      break;
    case AIGC_JSON_OBJECT:
      for (i = 0; i < v->len; i++) {
        free(v->u.members[i].key);
        aigc_json_free(&v->u.members[i].value);
      }
      free(v->u.members);
      break;
    default:
      break;
  }
  v->type = AIGC_JSON_NULL;
  v->len = v->cap = 0;
  v->u.i = 0;
}

/* }==================================================================== */
