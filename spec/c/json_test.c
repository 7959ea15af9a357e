/*
** json_test.c — unit tests for src/json.c.
**
** Every parse goes through a heap copy of exactly the input's length, so
** under ASan any read past `len` is caught. Where the C library allows it
** (glibc, no sanitizer allocator), malloc is interposed to fail on demand
** and every allocation in a parse, copy or write is made to fail in turn.
*/
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "faultalloc.h"
#include "json.h"


/* {====================================================================
** Helpers
** ===================================================================== */

static aigc_json_arena arena;
static aigc_json_error err;
static aigc_buf out = AIGC_BUF_INIT;

/* Parses text[0..len) from a heap copy of exactly len bytes, into `arena`. */
static int parse_n (const char *text, size_t len, int max_depth, aigc_json_value *v) {
  char *copy = (char *)malloc(len > 0 ? len : 1);
  int rc;
  if (copy == NULL)
    return -2;
  memcpy(copy, text, len);
  rc = aigc_json_parse(&arena, copy, len, max_depth, v, &err);
  free(copy);   /* the tree must not point into the input */
  return rc;
}

static int parse (const char *text, aigc_json_value *v) {
  return parse_n(text, strlen(text), 0, v);
}

/* Does text[0..len) fail with exactly this message at this offset? */
static int fails_n (const char *text, size_t len, const char *msg,
                    size_t offset) {
  aigc_json_value v;
  int rc = parse_n(text, len, 0, &v);
  if (rc != -1 || strcmp(err.message, msg) != 0 || err.offset != offset) {
    fprintf(stderr, "  input %.*s: rc %d, \"%s\" at %zu; wanted \"%s\" at %zu\n",
            (int)(len < 40 ? len : 40), text, rc, rc ? err.message : "", rc ? err.offset : 0, msg, offset);
    return 0;
  }
  return v.type == AIGC_JSON_NULL;
}

static int fails (const char *text, const char *msg, size_t offset) {
  return fails_n(text, strlen(text), msg, offset);
}

/* v written as JSON (valid until the next call). */
static const char *w (const aigc_json_value *v) {
  aigc_buf_clear(&out);
  if (aigc_json_write(&out, v) != 0)
    return "<ENOMEM>";
  return out.data != NULL ? out.data : "";
}

/* Parses text, which must succeed and write back as `expect`; then the
** written form must parse and write to itself (a fixed point). */
static int writes_as (const char *text, const char *expect) {
  aigc_json_value v;
  char *first;
  int ok;
  if (parse(text, &v) != 0) {
    fprintf(stderr, "  parse of %.40s failed: %s\n", text, err.message);
    return 0;
  }
  first = strdup(w(&v));
  if (first == NULL)
    return 0;
  ok = strcmp(first, expect) == 0;
  if (!ok)
    fprintf(stderr, "  %s\n  wrote %s\n  wanted %s\n", text, first, expect);
  ok = ok && parse(first, &v) == 0 && strcmp(w(&v), first) == 0;
  free(first);
  return ok;
}

/* Parses a string literal's JSON and checks its decoded bytes. */
static int string_is (const char *json, const char *bytes, size_t n) {
  aigc_json_value v;
  if (parse(json, &v) != 0) {
    fprintf(stderr, "  parse of %s failed: %s at %zu\n", json, err.message,
            err.offset);
    return 0;
  }
  return v.type == AIGC_JSON_STRING && v.len == n && memcmp(v.u.s, bytes, n) == 0 &&
         v.u.s[n] == '\0';
}

/* }==================================================================== */


TEST(test_literals) {
  aigc_json_value v;
  CHECK(parse("null", &v) == 0 && v.type == AIGC_JSON_NULL);
  CHECK(parse("true", &v) == 0 && v.type == AIGC_JSON_TRUE);
  CHECK(parse("false", &v) == 0 && v.type == AIGC_JSON_FALSE);
  CHECK(parse(" \t\r\n null \t\r\n", &v) == 0 && v.type == AIGC_JSON_NULL);
  REQUIRE(parse("[true,false,null]", &v) == 0);
  CHECK(v.type == AIGC_JSON_ARRAY && v.len == 3 && v.cap == 0);
  CHECK(v.u.items[0].type == AIGC_JSON_TRUE);
  CHECK(v.u.items[1].type == AIGC_JSON_FALSE);
  CHECK(v.u.items[2].type == AIGC_JSON_NULL);
  CHECK(fails("nul", "unexpected end of input", 3));
  CHECK(fails("tru", "unexpected end of input", 3));
  CHECK(fails("fals", "unexpected end of input", 4));
  CHECK(fails("nulx", "invalid literal", 0));
  CHECK(fails("True", "unexpected character 'T'", 0));
  CHECK(fails("[nan]", "invalid literal", 1));
  CHECK(fails("NaN", "unexpected character 'N'", 0));
  CHECK(fails("Infinity", "unexpected character 'I'", 0));
  CHECK(fails("-Infinity", "unexpected character 'I'", 1));
  CHECK(fails("nullnull", "trailing characters after JSON value", 4));
  CHECK(fails("truex", "trailing characters after JSON value", 4));
}

TEST(test_integers) {
  aigc_json_value v;
  CHECK(parse("0", &v) == 0 && v.type == AIGC_JSON_INT && v.u.i == 0);
  CHECK(parse("-0", &v) == 0 && v.type == AIGC_JSON_INT && v.u.i == 0);
  CHECK(parse("7", &v) == 0 && v.type == AIGC_JSON_INT && v.u.i == 7);
  CHECK(parse("-42", &v) == 0 && v.type == AIGC_JSON_INT && v.u.i == -42);
  CHECK(parse("1718000000", &v) == 0 && v.type == AIGC_JSON_INT && v.u.i == 1718000000);
  CHECK(parse("9223372036854775807", &v) == 0);
  CHECK(v.type == AIGC_JSON_INT && v.u.i == INT64_MAX);
  CHECK(parse("-9223372036854775808", &v) == 0);
  CHECK(v.type == AIGC_JSON_INT && v.u.i == INT64_MIN);
  CHECK(parse("9007199254740993", &v) == 0);   /* 2^53 + 1: not a double */
  CHECK(v.type == AIGC_JSON_INT && v.u.i == INT64_C(9007199254740993));
  CHECK(parse("-9007199254740993", &v) == 0);
  CHECK(v.type == AIGC_JSON_INT && v.u.i == -INT64_C(9007199254740993));
  /* just past int64: floats */
  CHECK(parse("9223372036854775808", &v) == 0);
  CHECK(v.type == AIGC_JSON_FLOAT && v.u.d == 9223372036854775808.0);
  CHECK(parse("-9223372036854775809", &v) == 0);
  CHECK(v.type == AIGC_JSON_FLOAT && v.u.d == -9223372036854775808.0);
  CHECK(parse("18446744073709551615", &v) == 0);
  CHECK(v.type == AIGC_JSON_FLOAT && v.u.d == 18446744073709551615.0);
  CHECK(parse("18446744073709551616", &v) == 0);   /* past uint64 too */
  CHECK(v.type == AIGC_JSON_FLOAT && v.u.d == 18446744073709551616.0);
  CHECK(parse("123456789012345678901234567890", &v) == 0);
  CHECK(v.type == AIGC_JSON_FLOAT && v.u.d == 123456789012345678901234567890.0);
  CHECK(writes_as("[9223372036854775807,-9223372036854775808,9007199254740993]",
                  "[9223372036854775807,-9223372036854775808,9007199254740993]"));
  CHECK(writes_as("9223372036854775808", "9.223372036854776e+18"));
  CHECK(writes_as("-0", "0"));
}

TEST(test_floats) {
  aigc_json_value v;
  CHECK(parse("0.5", &v) == 0 && v.type == AIGC_JSON_FLOAT && v.u.d == 0.5);
  CHECK(parse("1.0", &v) == 0 && v.type == AIGC_JSON_FLOAT && v.u.d == 1.0);
  CHECK(parse("-0.0", &v) == 0 && v.type == AIGC_JSON_FLOAT && v.u.d == 0.0 &&
        signbit(v.u.d));
  CHECK(parse("1e10", &v) == 0 && v.type == AIGC_JSON_FLOAT && v.u.d == 1e10);
  CHECK(parse("1E-5", &v) == 0 && v.type == AIGC_JSON_FLOAT && v.u.d == 1e-5);
  CHECK(parse("-2.5e+3", &v) == 0 && v.type == AIGC_JSON_FLOAT && v.u.d == -2500.0);
  CHECK(parse("0e0", &v) == 0 && v.type == AIGC_JSON_FLOAT && v.u.d == 0.0);
  CHECK(parse("0.1", &v) == 0 && v.u.d == 0.1);
  CHECK(parse("1.7976931348623157e308", &v) == 0 && v.u.d == DBL_MAX);
  CHECK(parse("4.9406564584124654e-324", &v) == 0 && v.u.d == 5e-324);
  CHECK(parse("1e-400", &v) == 0 && v.type == AIGC_JSON_FLOAT && v.u.d == 0.0);
  CHECK(fails("1e400", "number out of range", 0));
  CHECK(fails("[1,-1e400]", "number out of range", 3));
  CHECK(fails("1.8e308", "number out of range", 0));
  {   /* longer than the on-stack conversion buffer */
    char big[200];
    memset(big, '0', sizeof(big));
    big[0] = '0';
    big[1] = '.';
    big[198] = '5';
    big[199] = '\0';
    CHECK(parse(big, &v) == 0 && v.type == AIGC_JSON_FLOAT && v.u.d == 5e-197);
    big[0] = '1';   /* a 199-digit integer: past int64, a float */
    big[1] = '0';
    big[198] = '0';
    CHECK(parse(big, &v) == 0 && v.type == AIGC_JSON_FLOAT && v.u.d == 1e198);
  }
  CHECK(writes_as("[0.5,1.0,-0.0,1e10,1E-5,2.5e+3]",
                  "[0.5,1.0,-0.0,10000000000.0,1e-05,2500.0]"));
}

TEST(test_number_grammar) {
  CHECK(fails("01", "leading zero in number", 1));
  CHECK(fails("-01", "leading zero in number", 2));
  CHECK(fails("00", "leading zero in number", 1));
  CHECK(fails("-", "unexpected end of input", 1));
  CHECK(fails("--1", "unexpected character '-'", 1));
  CHECK(fails("-a", "unexpected character 'a'", 1));
  CHECK(fails("1.", "unexpected end of input", 2));
  CHECK(fails("1.e3", "unexpected character 'e'", 2));
  CHECK(fails("[1.]", "unexpected character ']'", 3));
  CHECK(fails(".5", "unexpected character '.'", 0));
  CHECK(fails("+1", "unexpected character '+'", 0));
  CHECK(fails("1e", "unexpected end of input", 2));
  CHECK(fails("1e+", "unexpected end of input", 3));
  CHECK(fails("1e+a", "unexpected character 'a'", 3));
  CHECK(fails("0x10", "trailing characters after JSON value", 1));
  CHECK(fails("1_000", "trailing characters after JSON value", 1));
  CHECK(fails("[1.5.2]", "unexpected character '.'", 4));
  CHECK(fails("1 2", "trailing characters after JSON value", 2));
  CHECK(fails("[- 1]", "unexpected byte 0x20", 2));
}

TEST(test_strings_plain) {
  char json[80], want[80];
  size_t n, tail;
  aigc_json_value v;
  CHECK(string_is("\"\"", "", 0));
  CHECK(string_is("\"abc\"", "abc", 3));
  CHECK(string_is("\"a\x7f" "b\"", "a\x7f" "b", 3));
  CHECK(string_is("\"it's a 'test' / path\"", "it's a 'test' / path", 20));
  /* every length across the word-at-a-time paths, with and without bytes
  ** after the closing quote (those paths read ahead when they can) */
  for (tail = 0; tail < 20; tail += 19) {
    for (n = 0; n < 40; n++) {
      size_t i;
      for (i = 0; i < n; i++)
        want[i] = (char)('a' + (i % 26));
      json[0] = '"';
      memcpy(json + 1, want, n);
      json[n + 1] = '"';
      memset(json + n + 2, ' ', tail);
      CHECK(parse_n(json, n + 2 + tail, 0, &v) == 0);
      CHECK(v.type == AIGC_JSON_STRING && v.len == n && memcmp(v.u.s, want, n) == 0 &&
            v.u.s[n] == '\0');
      /* and unterminated at each length */
      CHECK(fails_n(json, n + 1, "unterminated string", n + 1));
    }
  }
  {   /* a long string, one memcpy */
    static char big[5002];
    memset(big, 'x', sizeof(big));
    big[0] = '"';
    big[5001] = '"';
    CHECK(parse_n(big, sizeof(big), 0, &v) == 0);
    CHECK(v.type == AIGC_JSON_STRING && v.len == 5000 && v.u.s[4999] == 'x' &&
          v.u.s[5000] == '\0');
  }
}

TEST(test_escapes) {
  CHECK(string_is("\"\\\"\"", "\"", 1));
  CHECK(string_is("\"\\\\\"", "\\", 1));
  CHECK(string_is("\"\\/\"", "/", 1));
  CHECK(string_is("\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t", 5));
  CHECK(string_is("\"\\u0041\\u00e9\\u20AC\"", "A\xC3\xA9\xE2\x82\xAC", 6));
  CHECK(string_is("\"a\\u0000b\"", "a\0b", 3));
  CHECK(string_is("\"\\u007f\\u0080\\u07ff\\u0800\\uffff\"",
                  "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf", 11));
  CHECK(string_is("\"line1\\nline2 and a long tail after the escape\"",
                  "line1\nline2 and a long tail after the escape", 44));
  CHECK(string_is("\"caf\xC3\xA9 \\\"ok\\\" \xE2\x82\xAC\"",
                  "caf\xC3\xA9 \"ok\" \xE2\x82\xAC", 14));
  CHECK(fails("\"\\x\"", "invalid escape in string", 1));
  CHECK(fails("\"\\U0041\"", "invalid escape in string", 1));
  CHECK(fails("\"\\'\"", "invalid escape in string", 1));
  CHECK(fails("\"\\u12\"", "invalid \\u escape", 1));
  CHECK(fails("\"ab\\u12G4\"", "invalid \\u escape", 3));
  CHECK(fails("\"\\u-123\"", "invalid \\u escape", 1));
  CHECK(fails("\"\\", "unterminated string", 2));
  CHECK(fails("\"\\\"", "unterminated string", 3));
  CHECK(fails("\"abc\\u00", "unterminated string", 8));
}

TEST(test_surrogates) {
  /* a pair combines; either case of hex */
  CHECK(string_is("\"\\ud83d\\ude00\"", "\xF0\x9F\x98\x80", 4));
  CHECK(string_is("\"\\uD83D\\uDE00\"", "\xF0\x9F\x98\x80", 4));
  CHECK(string_is("\"\\udbff\\udfff\"", "\xF4\x8F\xBF\xBF", 4));   /* U+10FFFF */
  CHECK(string_is("\"\\ud800\\udc00\"", "\xF0\x90\x80\x80", 4));   /* U+10000 */
  /* lone surrogates become U+FFFD */
  CHECK(string_is("\"\\ud800\"", "\xEF\xBF\xBD", 3));
  CHECK(string_is("\"\\udc00\"", "\xEF\xBF\xBD", 3));
  CHECK(string_is("\"x\\ud800y\"", "x\xEF\xBF\xBDy", 5));
  CHECK(string_is("\"\\ud800\\u0041\"", "\xEF\xBF\xBD" "A", 4));
  CHECK(string_is("\"\\ude00\\ud83d\"", "\xEF\xBF\xBD\xEF\xBF\xBD", 6));
  CHECK(string_is("\"\\ud800\\ud83d\\ude00\"",
                  "\xEF\xBF\xBD\xF0\x9F\x98\x80", 7));
  CHECK(string_is("\"\\ud800\\n\"", "\xEF\xBF\xBD\n", 4));
  /* a high surrogate followed by a bad escape: the escape is the error */
  CHECK(fails("\"\\ud800\\uZZZZ\"", "invalid \\u escape", 7));
}

TEST(test_utf8) {
  CHECK(string_is("\"\xC2\xA2\xE2\x82\xAC\xF0\x9F\x98\x80\"",
                  "\xC2\xA2\xE2\x82\xAC\xF0\x9F\x98\x80", 9));
  CHECK(string_is("\"\xEF\xBF\xBF\xF4\x8F\xBF\xBF\xED\x9F\xBF\xEE\x80\x80\"",
                  "\xEF\xBF\xBF\xF4\x8F\xBF\xBF\xED\x9F\xBF\xEE\x80\x80", 13));
  CHECK(fails("\"\xC0\x80\"", "invalid UTF-8 in string", 1));      /* overlong NUL */
  CHECK(fails("\"\xC1\xBF\"", "invalid UTF-8 in string", 1));      /* overlong */
  CHECK(fails("\"\xE0\x80\xAF\"", "invalid UTF-8 in string", 1));  /* overlong '/' */
  CHECK(fails("\"\xE0\x9F\xBF\"", "invalid UTF-8 in string", 1));
  CHECK(fails("\"\xF0\x80\x80\xAF\"", "invalid UTF-8 in string", 1));
  CHECK(fails("\"\xF0\x8F\xBF\xBF\"", "invalid UTF-8 in string", 1));
  CHECK(fails("\"\xED\xA0\x80\"", "invalid UTF-8 in string", 1));  /* U+D800 */
  CHECK(fails("\"\xED\xBF\xBF\"", "invalid UTF-8 in string", 1));  /* U+DFFF */
  CHECK(fails("\"\xF4\x90\x80\x80\"", "invalid UTF-8 in string", 1)); /* > U+10FFFF */
  CHECK(fails("\"\xF5\x80\x80\x80\"", "invalid UTF-8 in string", 1));
  CHECK(fails("\"\xFF\"", "invalid UTF-8 in string", 1));
  CHECK(fails("\"ab\x80\"", "invalid UTF-8 in string", 3));        /* stray */
  CHECK(fails("\"\xC3\"", "invalid UTF-8 in string", 1));          /* truncated */
  CHECK(fails("\"\xE2\x82\"", "invalid UTF-8 in string", 1));
  CHECK(fails("\"\xF0\x9F\x98\"", "invalid UTF-8 in string", 1));
  CHECK(fails_n("\"\xF0\x9F\x98", 4, "invalid UTF-8 in string", 1));  /* at EOF */
  CHECK(fails("\"\xC3x\"", "invalid UTF-8 in string", 1));
  /* the same on the escaped path and in keys */
  CHECK(fails("\"\\n\xC0\x80\"", "invalid UTF-8 in string", 3));
  CHECK(fails("\"\\n\xE2\x82\"", "invalid UTF-8 in string", 3));
  CHECK(fails("{\"k\xED\xA0\x80\":1}", "invalid UTF-8 in string", 3));
  CHECK(fails("\"a long plain prefix then \xF4\x90\x80\x80\"",
              "invalid UTF-8 in string", 26));
}

TEST(test_control_chars) {
  char json[8];
  int c;
  for (c = 0; c < 0x20; c++) {
    json[0] = '"';
    json[1] = 'a';
    json[2] = (char)c;
    json[3] = '"';
    CHECK(fails_n(json, 4, "control character in string", 2));
    json[1] = '\\';   /* and on the escaped path */
    json[2] = 'n';
    json[3] = (char)c;
    json[4] = '"';
    CHECK(fails_n(json, 5, "control character in string", 3));
  }
  CHECK(fails("\"tab\there\"", "control character in string", 4));
  CHECK(string_is("\"\x7f\"", "\x7f", 1));
}

TEST(test_deep_nesting) {
  size_t n = 100000, i;
  char *deep = (char *)malloc(2 * n + 1);
  aigc_json_value v;
  CHECK(deep != NULL);
  if (deep == NULL)
    return;
  memset(deep, '[', n);
  memset(deep + n, ']', n);
  deep[2 * n] = '\0';
  /* (the default: AIGC_JSON_DEFAULT_MAX_DEPTH, the encoder's limit too) */
  CHECK(fails_n(deep, 2 * n, "nesting deeper than 200", 200));
  CHECK(fails_n(deep, n, "nesting deeper than 200", 200));
  /* exactly at the limit is fine, one more is not */
  CHECK(parse_n(deep + n - 200, 400, 0, &v) == 0 && v.type == AIGC_JSON_ARRAY);
  CHECK(fails_n(deep + n - 201, 402, "nesting deeper than 200", 200));
  CHECK(parse_n(deep + n - 3, 6, 3, &v) == 0);
  CHECK(parse_n(deep + n - 4, 8, 3, &v) == -1 &&
        strcmp(err.message, "nesting deeper than 3") == 0);
  CHECK(parse_n(deep + n - 600, 1200, 1000, &v) == 0);
  for (i = 0; i < 600; i++)   /* the tree really is 600 deep */
    v = v.type == AIGC_JSON_ARRAY && v.len == 1 ? v.u.items[0] : v;
  CHECK(v.type == AIGC_JSON_ARRAY && v.len == 0);
  /* objects too */
  for (i = 0; i < n / 5; i++)
    memcpy(deep + 5 * i, "{\"a\":", 5);
  CHECK(fails_n(deep, n, "nesting deeper than 200", 200 * 5));
  free(deep);
}

TEST(test_trailing_and_empty) {
  aigc_json_value v;
  CHECK(fails("", "empty input", 0));
  CHECK(fails("   \n\t\r ", "empty input", 7));
  CHECK(fails("{}x", "trailing characters after JSON value", 2));
  CHECK(fails("[]]", "trailing characters after JSON value", 2));
  CHECK(fails("\"a\"\"b\"", "trailing characters after JSON value", 3));
  CHECK(fails("{} {}", "trailing characters after JSON value", 3));
  CHECK(fails_n("1\0", 2, "trailing characters after JSON value", 1));
  CHECK(parse(" \n{ \"a\" : [ 1 , 2 ] } \r\n\t", &v) == 0 && v.type == AIGC_JSON_OBJECT);
  CHECK(fails("\xEF\xBB\xBF{}", "unexpected byte 0xEF", 0));   /* no BOM */
  CHECK(fails("\f1", "unexpected byte 0x0C", 0));
  CHECK(fails("\v1", "unexpected byte 0x0B", 0));
  CHECK(fails("[1,\xC2\xA0" "2]", "unexpected byte 0xC2", 3));   /* NBSP */
}

TEST(test_malformed) {
  CHECK(fails("[", "unexpected end of input", 1));
  CHECK(fails("[1", "unexpected end of input", 2));
  CHECK(fails("[1,", "unexpected end of input", 3));
  CHECK(fails("[1,]", "unexpected character ']'", 3));
  CHECK(fails("[,1]", "unexpected character ','", 1));
  CHECK(fails("[1 2]", "unexpected character '2'", 3));
  CHECK(fails("[1;2]", "unexpected character ';'", 2));
  CHECK(fails("{", "unexpected end of input", 1));
  CHECK(fails("{\"a\"", "unexpected end of input", 4));
  CHECK(fails("{\"a\"}", "unexpected character '}'", 4));
  CHECK(fails("{\"a\" 1}", "unexpected character '1'", 5));
  CHECK(fails("{\"a\":}", "unexpected character '}'", 5));
  CHECK(fails("{\"a\":", "unexpected end of input", 5));
  CHECK(fails("{\"a\":1", "unexpected end of input", 6));
  CHECK(fails("{\"a\":1,}", "unexpected character '}'", 7));
  CHECK(fails("{,}", "unexpected character ','", 1));
  CHECK(fails("{a:1}", "unexpected character 'a'", 1));
  CHECK(fails("{'a':1}", "unexpected character '''", 1));
  CHECK(fails("{1:1}", "unexpected character '1'", 1));
  CHECK(fails("{\"a\":1]", "unexpected character ']'", 6));
  CHECK(fails("[1}", "unexpected character '}'", 2));
  CHECK(fails("{\"a\"::1}", "unexpected character ':'", 5));
  CHECK(fails("{\"a\":1 \"b\":2}", "unexpected character '\"'", 7));
  CHECK(fails("'a'", "unexpected character '''", 0));
  CHECK(fails("/*c*/1", "unexpected character '/'", 0));
  CHECK(fails("[1]//", "trailing characters after JSON value", 3));
  CHECK(fails("\"abc", "unterminated string", 4));
  CHECK(fails("[\"abc]", "unterminated string", 6));
  CHECK(fails("]", "unexpected character ']'", 0));
  CHECK(fails("}", "unexpected character '}'", 0));
  CHECK(fails(":", "unexpected character ':'", 0));
  CHECK(fails(",", "unexpected character ','", 0));
  CHECK(fails_n("\0", 1, "unexpected byte 0x00", 0));
  CHECK(fails("\x01", "unexpected byte 0x01", 0));
  CHECK(fails("\x80", "unexpected byte 0x80", 0));
}

/*
** Every prefix of a valid document, parsed from an exact-size buffer: each
** must fail cleanly (or succeed, where the prefix is itself a document),
** and under ASan none may read a byte past its end.
*/
TEST(test_prefixes) {
  static const char doc[] =
    "{\"id\":\"x\",\"n\":[1,-2.5e3,true,false,null,\"\\u00e9\\ud83d\\ude00\\n\"],"
    "\"o\":{\"k\":\"caf\xC3\xA9\",\"e\":{},\"a\":[]},\"big\":9223372036854775807}";
  size_t len = sizeof(doc) - 1, n;
  int ok = 1;
  aigc_json_value v;
  for (n = 0; n < len; n++) {
    int rc = parse_n(doc, n, 0, &v);
    if (rc != -1 || err.offset > n || err.message[0] == '\0')
      ok = 0;
  }
  CHECK(ok);
  CHECK(parse_n(doc, len, 0, &v) == 0 && v.type == AIGC_JSON_OBJECT && v.len == 4);
}

TEST(test_objects) {
  aigc_json_value v;
  const aigc_json_value *x;
  size_t n;
  CHECK(parse("{}", &v) == 0 && v.type == AIGC_JSON_OBJECT && v.len == 0);
  REQUIRE(parse("{\"b\":1,\"a\":2,\"b\":3}", &v) == 0);
  CHECK(v.type == AIGC_JSON_OBJECT && v.len == 3 && v.cap == 0);   /* duplicates kept */
  CHECK(strcmp(v.u.members[0].key, "b") == 0 && v.u.members[0].key_len == 1);
  CHECK(strcmp(v.u.members[1].key, "a") == 0);
  x = aigc_json_get(&v, "b");
  CHECK(x != NULL && x->type == AIGC_JSON_INT && x->u.i == 3);   /* last one wins */
  x = aigc_json_get(&v, "a");
  CHECK(x != NULL && x->u.i == 2);
  CHECK(aigc_json_get(&v, "c") == NULL);
  CHECK(aigc_json_get(&v, "") == NULL);
  CHECK(aigc_json_get(NULL, "a") == NULL);
  CHECK(writes_as("{\"b\":1,\"a\":2,\"b\":3}", "{\"b\":1,\"a\":2,\"b\":3}"));
  /* keys may hold NUL; aigc_json_get compares whole keys */
  REQUIRE(parse("{\"a\\u0000b\":1,\"\":2}", &v) == 0);
  CHECK(v.u.members[0].key_len == 3 && memcmp(v.u.members[0].key, "a\0b", 4) == 0);
  CHECK(aigc_json_get(&v, "a") == NULL);
  x = aigc_json_get(&v, "");
  CHECK(x != NULL && x->u.i == 2);
  CHECK(writes_as("{\"a\\u0000b\":1,\"\":2}", "{\"a\\u0000b\":1,\"\":2}"));
  /* aigc_json_get and aigc_json_str on other types */
  REQUIRE(parse("[\"s\"]", &v) == 0);
  CHECK(aigc_json_get(&v, "s") == NULL);
  CHECK(aigc_json_str(&v, &n) == NULL && n == 0);
  CHECK(aigc_json_str(&v.u.items[0], &n) != NULL && n == 1 &&
        strcmp(aigc_json_str(&v.u.items[0], NULL), "s") == 0);
  CHECK(aigc_json_str(NULL, &n) == NULL && n == 0);
  /* nesting and document order */
  REQUIRE(parse("{\"z\":{\"y\":[{\"x\":null}]},\"w\":[[],{}]}", &v) == 0);
  x = aigc_json_get(aigc_json_get(&v, "z"), "y");
  CHECK(x != NULL && x->type == AIGC_JSON_ARRAY && x->len == 1);
  CHECK(x != NULL && aigc_json_get(&x->u.items[0], "x") != NULL &&
        aigc_json_get(&x->u.items[0], "x")->type == AIGC_JSON_NULL);
  CHECK(strcmp(v.u.members[1].key, "w") == 0);
}

TEST(test_arrays) {
  aigc_json_value v;
  size_t i;
  char big[4000];
  CHECK(parse("[]", &v) == 0 && v.type == AIGC_JSON_ARRAY && v.len == 0);
  REQUIRE(parse("[[]]", &v) == 0 && v.len == 1 && v.u.items[0].type == AIGC_JSON_ARRAY &&
        v.u.items[0].len == 0);
  REQUIRE(parse("[1,\"two\",3.0,[4],{\"five\":5}]", &v) == 0 && v.len == 5);
  CHECK(v.u.items[0].type == AIGC_JSON_INT && v.u.items[1].type == AIGC_JSON_STRING &&
        v.u.items[2].type == AIGC_JSON_FLOAT && v.u.items[3].type == AIGC_JSON_ARRAY &&
        v.u.items[4].type == AIGC_JSON_OBJECT);
  /* more children than the on-stack scratch holds */
  big[0] = '[';
  {
    size_t p = 1;
    for (i = 0; i < 900; i++) {
      memcpy(big + p, "[7]", 3);
      p += 3;
      big[p++] = (i < 899) ? ',' : ']';
    }
    REQUIRE(parse_n(big, p, 0, &v) == 0 && v.type == AIGC_JSON_ARRAY && v.len == 900);
    CHECK(v.u.items[899].type == AIGC_JSON_ARRAY && v.u.items[899].u.items[0].u.i == 7);
  }
}

TEST(test_write_roundtrip) {
  static const char *const docs[] = {
    "null", "true", "false", "0", "-1", "\"\"", "[]", "{}", "[[],[[]],{}]",
    "{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}",
    "\"\\u0001\\u001f\\\"\\\\\\b\\f\\n\\r\\t\\u007f\"",
    "[0.1,0.7,1e300,5e-324,-0.0,2.0,123.456,1.5e-7]",
    "\"caf\\u00e9 \\ud83d\\ude00 \\u2028\\u2029\"",
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,"
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\\n\"},\"finish_reason\":null}]}",
    NULL
  };
  size_t i;
  for (i = 0; docs[i] != NULL; i++) {
    aigc_json_value v;
    char *a;
    CHECK(parse(docs[i], &v) == 0);
    a = strdup(w(&v));
    CHECK(a != NULL && parse(a, &v) == 0 && strcmp(w(&v), a) == 0);
    free(a);
  }
  CHECK(writes_as(" { \"a\" : [ 1 , 2 ] , \"b\" : { } } ", "{\"a\":[1,2],\"b\":{}}"));
  CHECK(writes_as("\"\\/\\u0041\"", "\"/A\""));
  CHECK(writes_as("\"\\u2028\"", "\"\xE2\x80\xA8\""));
  CHECK(writes_as("[1E2,1e-2,0.30000000000000004]",
                  "[100.0,0.01,0.30000000000000004]"));
}

TEST(test_write_special) {
  /* hand-built trees: non-finite floats and invalid UTF-8 still give JSON */
  aigc_json_value items[4], arr;
  char bad[] = "a\xFF" "b\xC3";
  aigc_json_member m;
  aigc_json_value obj;
  memset(items, 0, sizeof(items));
  memset(&arr, 0, sizeof(arr));
  memset(&m, 0, sizeof(m));
  memset(&obj, 0, sizeof(obj));
  items[0].type = AIGC_JSON_FLOAT;
  items[0].u.d = HUGE_VAL;
  items[1].type = AIGC_JSON_FLOAT;
  items[1].u.d = -HUGE_VAL;
  items[2].type = AIGC_JSON_FLOAT;
  items[2].u.d = NAN;
  items[3].type = AIGC_JSON_STRING;
  items[3].u.s = bad;
  items[3].len = 4;
  arr.type = AIGC_JSON_ARRAY;
  arr.len = 4;
  arr.u.items = items;
  CHECK_EQ_STR(w(&arr), "[null,null,null,\"a\xEF\xBF\xBD" "b\xEF\xBF\xBD\"]");
  m.key = bad;
  m.key_len = 4;
  m.value.type = AIGC_JSON_TRUE;
  obj.type = AIGC_JSON_OBJECT;
  obj.len = 1;
  obj.u.members = &m;
  CHECK_EQ_STR(w(&obj), "{\"a\xEF\xBF\xBD" "b\xEF\xBF\xBD\":true}");
  /* aigc_json_write appends */
  aigc_buf_clear(&out);
  CHECK(aigc_buf_append(&out, "x=", 2) == 0 && aigc_json_write(&out, &m.value) == 0);
  CHECK_EQ_STR(out.data, "x=true");
}

/* aigc_json_format_double's text must read back to exactly d. */
static int double_is (double d, const char *want) {
  char buf[32];
  int n = aigc_json_format_double(buf, d);
  int ok = (size_t)n == strlen(buf) && strtod(buf, NULL) == d &&
           (strchr(buf, '.') != NULL || strchr(buf, 'e') != NULL) &&
           signbit(strtod(buf, NULL)) == signbit(d);
  if (want != NULL && strcmp(buf, want) != 0)
    ok = 0;
  if (!ok)
    fprintf(stderr, "  %.17g formatted as %s (wanted %s)\n", d, buf,
            want ? want : "a round trip");
  return ok;
}

TEST(test_format_double) {
  int i;
  double x = 1.0;
  CHECK(double_is(0.7, "0.7"));
  CHECK(double_is(2.0, "2.0"));
  CHECK(double_is(-2.0, "-2.0"));
  CHECK(double_is(0.0, "0.0"));
  CHECK(double_is(-0.0, "-0.0"));
  CHECK(double_is(1e300, "1e+300"));
  CHECK(double_is(5e-324, "4.94065645841247e-324"));
  CHECK(double_is(0.1 + 0.2, "0.30000000000000004"));
  CHECK(double_is(1.0 / 3.0, "0.3333333333333333"));
  CHECK(double_is(100.0, "100.0"));
  CHECK(double_is(1e15, "1e+15"));
  CHECK(double_is(123456789012345.0, "123456789012345.0"));
  CHECK(double_is(1e21, "1e+21"));
  CHECK(double_is(1.5e-7, "1.5e-07"));
  CHECK(double_is(9007199254740993.0, "9007199254740992.0"));
  CHECK(double_is(DBL_MAX, "1.7976931348623157e+308"));
  CHECK(double_is(DBL_MIN, "2.2250738585072014e-308"));
  CHECK(double_is(-DBL_MIN, NULL));
  for (i = 0; i < 200; i++) {   /* a spread of magnitudes and digits */
    x = x * -1.37 + 0.001 * i;
    CHECK(double_is(x, NULL));
    CHECK(double_is(1.0 / (x == 0 ? 1 : x), NULL));
  }
}

static int int_is (int64_t i, const char *want) {
  char buf[21];
  int n = aigc_json_format_int(buf, i);
  return (size_t)n == strlen(want) && strcmp(buf, want) == 0;
}

TEST(test_format_int) {
  char buf[21], ref[32];
  int64_t i;
  CHECK(int_is(0, "0"));
  CHECK(int_is(7, "7"));
  CHECK(int_is(-7, "-7"));
  CHECK(int_is(10, "10"));
  CHECK(int_is(99, "99"));
  CHECK(int_is(100, "100"));
  CHECK(int_is(-100, "-100"));
  CHECK(int_is(1718000000, "1718000000"));
  CHECK(int_is(INT64_MAX, "9223372036854775807"));
  CHECK(int_is(INT64_MIN, "-9223372036854775808"));
  CHECK(int_is(INT64_MIN + 1, "-9223372036854775807"));
  for (i = 1; i < INT64_MAX / 3; i = i * 3 + 1) {
    snprintf(ref, sizeof(ref), "%lld", (long long)i);
    CHECK(aigc_json_format_int(buf, i) == (int)strlen(ref) && strcmp(buf, ref) == 0);
    snprintf(ref, sizeof(ref), "%lld", (long long)-i);
    CHECK(aigc_json_format_int(buf, -i) == (int)strlen(ref) && strcmp(buf, ref) == 0);
  }
}

/* aigc_json_write_string of s[0..n) gives exactly want. */
static int escapes_as (const char *s, size_t n, const char *want) {
  size_t bad = 12345;
  aigc_buf_clear(&out);
  if (aigc_json_write_string(&out, s, n, &bad) != 0 || bad != 12345)
    return 0;
  if (strcmp(out.data, want) != 0) {
    fprintf(stderr, "  escaped as %s, wanted %s\n", out.data, want);
    return 0;
  }
  return out.len == strlen(want);
}

TEST(test_write_string) {
  char all[32], want[300];
  size_t bad, i, p = 0;
  CHECK(escapes_as("", 0, "\"\""));
  CHECK(escapes_as("plain text", 10, "\"plain text\""));
  CHECK(escapes_as("\"\\/", 3, "\"\\\"\\\\/\""));
  CHECK(escapes_as("\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\""));
  CHECK(escapes_as("a\0b", 3, "\"a\\u0000b\""));
  CHECK(escapes_as("\x01\x1f\x0b\x7f", 4, "\"\\u0001\\u001f\\u000b\x7f\""));
  CHECK(escapes_as("\xE2\x80\xA8\xE2\x80\xA9", 6, "\"\xE2\x80\xA8\xE2\x80\xA9\""));
  CHECK(escapes_as("caf\xC3\xA9 \xF0\x9F\x98\x80", 10,
                   "\"caf\xC3\xA9 \xF0\x9F\x98\x80\""));
  /* every control character */
  want[p++] = '"';
  for (i = 0; i < 32; i++) {
    all[i] = (char)i;
    switch (i) {
      case '\b': memcpy(want + p, "\\b", 2); p += 2; break;
      case '\f': memcpy(want + p, "\\f", 2); p += 2; break;
      case '\n': memcpy(want + p, "\\n", 2); p += 2; break;
      case '\r': memcpy(want + p, "\\r", 2); p += 2; break;
      case '\t': memcpy(want + p, "\\t", 2); p += 2; break;
      default:
        snprintf(want + p, 7, "\\u%04zx", i);
        p += 6;
    }
  }
  want[p++] = '"';
  want[p] = '\0';
  CHECK(escapes_as(all, 32, want));
  /* invalid UTF-8: -2, the offset, and nothing appended */
  aigc_buf_clear(&out);
  CHECK(aigc_buf_append(&out, "keep", 4) == 0);
  CHECK(aigc_json_write_string(&out, "ok\n\xC0\x80", 5, &bad) == -2 && bad == 3);
  CHECK(out.len == 4 && strcmp(out.data, "keep") == 0);
  CHECK(aigc_json_write_string(&out, "\xED\xA0\x80", 3, &bad) == -2 && bad == 0);
  CHECK(aigc_json_write_string(&out, "abc\xF0\x9F\x98", 6, NULL) == -2);
  CHECK(aigc_json_write_string(&out, "\xF4\x90\x80\x80", 4, &bad) == -2 && bad == 0);
  CHECK(out.len == 4 && strcmp(out.data, "keep") == 0);
}

/* The writer's rules one byte at a time: the oracle of the word-at-a-time
   writer. NULL when s is not valid UTF-8 (then *bad is where). */
static const char *reference_escape (const unsigned char *s, size_t n, char *dst, size_t *bad) {
  size_t i, p = 0;
  if (!aigc_json_utf8_valid((const char *)s, n, bad))
    return NULL;
  dst[p++] = '"';
  for (i = 0; i < n; i++) {
    unsigned c = s[i];
    const char *short_esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t" : NULL;
    if (short_esc != NULL) {
      memcpy(dst + p, short_esc, 2);
      p += 2;
    }
    else if (c < 0x20) {
      snprintf(dst + p, 7, "\\u%04x", c);
      p += 6;
    }
    else
      dst[p++] = (char)c;
  }
  dst[p++] = '"';
  dst[p] = '\0';
  return dst;
}

/* Random strings of every length up to 40, a special byte at every
   offset of an 8-byte word (a quote, a backslash, a control character,
   valid and invalid UTF-8), written after a prefix already in the buffer:
   the same bytes as the oracle, the same offset on invalid UTF-8, and
   the prefix untouched either way. */
TEST(test_write_string_words) {
  static const char *const pieces[] = {
    "a", "Z", " ", "~", "\x7f", "\"", "\\", "\n", "\x01", "\x1f", "\xC3\xA9",
    "\xE2\x80\xA8", "\xF0\x9F\x98\x80", "\xC0\x80", "\xED\xA0\x80", "\xFF", "\x80"
  };
  const size_t npieces = sizeof pieces / sizeof pieces[0];
  unsigned rng = 12345;
  unsigned char s[64];
  char want[400];
  int round;
  for (round = 0; round < 20000; round++) {
    size_t n = 0, target, bad = 0, bad_ref = 0, pre;
    int rc;
    const char *ref;
    rng = rng * 1103515245u + 12345u;
    target = (rng >> 16) % 41;
    while (n < target) {
      const char *piece;
      rng = rng * 1103515245u + 12345u;
      /* mostly plain letters, so that long plain runs occur */
      piece = (rng >> 16) % 4 != 0 ? "x" : pieces[(rng >> 18) % npieces];
      if (n + strlen(piece) > sizeof s)
        break;
      memcpy(s + n, piece, strlen(piece));
      n += strlen(piece);
    }
    pre = round % 3;
    aigc_buf_clear(&out);
    CHECK(aigc_buf_append(&out, "pre", pre) == 0);
    rc = aigc_json_write_string(&out, (const char *)s, n, &bad);
    ref = reference_escape(s, n, want, &bad_ref);
    if (ref == NULL)
      CHECK(rc == -2 && bad == bad_ref && out.len == pre && memcmp(out.data, "pre", pre) == 0
            && out.data[pre] == '\0');
    else
      CHECK(rc == 0 && out.len == pre + strlen(want) && memcmp(out.data, "pre", pre) == 0
            && strcmp(out.data + pre, want) == 0);
  }
}

TEST(test_utf8_valid) {
  size_t bad = 99;
  CHECK(aigc_json_utf8_valid("", 0, &bad) && bad == 99);
  CHECK(aigc_json_utf8_valid("hello, world: plain ascii", 25, NULL));
  CHECK(aigc_json_utf8_valid("a\0b", 3, NULL));
  CHECK(aigc_json_utf8_valid("\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF\xF0\x90\x80\x80"
                      "\xF4\x8F\xBF\xBF", 18, NULL));
  CHECK(!aigc_json_utf8_valid("0123456789abc\x80" "def", 17, &bad) && bad == 13);
  CHECK(!aigc_json_utf8_valid("\xC0\xAF", 2, &bad) && bad == 0);
  CHECK(!aigc_json_utf8_valid("xx\xE0\x80\x80", 5, &bad) && bad == 2);
  CHECK(!aigc_json_utf8_valid("\xED\xA0\x80", 3, &bad) && bad == 0);
  CHECK(!aigc_json_utf8_valid("\xF4\x90\x80\x80", 4, &bad) && bad == 0);
  CHECK(!aigc_json_utf8_valid("abcdefgh\xE2\x82", 10, &bad) && bad == 8);
  CHECK(!aigc_json_utf8_valid("\xFE", 1, NULL));
}

TEST(test_copy_free) {
  static const char doc[] =
    "{\"s\":\"caf\xC3\xA9\",\"e\":\"\",\"a\":[1,2.5,true,null,[]],"
    "\"o\":{\"k\\u0000\":{}},\"n\":-9223372036854775808}";
  aigc_json_value v, c, s;
  char *text;
  REQUIRE(parse(doc, &v) == 0);
  text = strdup(w(&v));
  CHECK(text != NULL);
  CHECK(aigc_json_copy(&c, &v) == 0);
  aigc_json_arena_reset(&arena);   /* the copy owns everything */
  CHECK(parse("[\"overwrite the arena with something else\"]", &s) == 0);
  CHECK(text != NULL && strcmp(w(&c), text) == 0);
  CHECK(c.type == AIGC_JSON_OBJECT && c.len == 5 && c.cap == 5);
  CHECK(c.u.members[0].value.len == 5 && c.u.members[0].value.cap == 6);
  CHECK(c.u.members[1].value.len == 0 && c.u.members[1].value.cap == 1 &&
        c.u.members[1].value.u.s != NULL && c.u.members[1].value.u.s[0] == '\0');
  CHECK(c.u.members[2].value.cap == 5);
  CHECK(c.u.members[2].value.u.items[4].u.items == NULL &&
        c.u.members[2].value.u.items[4].cap == 0);
  CHECK(c.u.members[3].key_len == 1 && c.u.members[3].value.u.members[0].key_len == 2);
  aigc_json_free(&c);
  CHECK(c.type == AIGC_JSON_NULL && c.len == 0 && c.cap == 0);
  aigc_json_free(&c);   /* harmless twice */
  CHECK(parse("42", &v) == 0 && aigc_json_copy(&c, &v) == 0 && c.type == AIGC_JSON_INT &&
        c.u.i == 42);
  aigc_json_free(&c);
  free(text);
}

TEST(test_arena_reuse) {
  static const char chunk[] =
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},"
    "\"finish_reason\":null}]}";
  aigc_json_arena a;
  aigc_json_value v;
  aigc_json_block *head;
  char *big;
  size_t i;
  aigc_json_arena_init(&a);
  CHECK(a.head == NULL && a.used == 0);
  CHECK(aigc_json_parse(&a, chunk, sizeof(chunk) - 1, 0, &v, &err) == 0);
  head = a.head;
  CHECK(head != NULL && a.used > 0);
  for (i = 0; i < 100; i++) {   /* steady state: the same block, reused */
    aigc_json_arena_reset(&a);
    CHECK(a.used == 0);
    CHECK(aigc_json_parse(&a, chunk, sizeof(chunk) - 1, 0, &v, &err) == 0);
    CHECK(a.head == head);
  }
  /* a document bigger than one block chains blocks; reset merges them
  ** into one, so the next parse of that size allocates nothing */
  big = (char *)malloc(20001);
  CHECK(big != NULL);
  if (big == NULL)
    return;
  big[0] = '[';
  for (i = 0; i < 1999; i++)
    memcpy(big + 1 + 10 * i, "\"abcdefg\",", 10);
  memcpy(big + 1 + 10 * i, "\"abcdefg\"]", 10);
  REQUIRE(aigc_json_parse(&a, big, 20001, 0, &v, &err) == 0 && v.len == 2000);
  CHECK(a.head != head && strcmp(v.u.items[1999].u.s, "abcdefg") == 0);
  aigc_json_arena_reset(&a);
  CHECK(a.head != NULL && a.used == 0);
  head = a.head;
  REQUIRE(aigc_json_parse(&a, big, 20001, 0, &v, &err) == 0 && a.head == head);
  CHECK(strcmp(v.u.items[1234].u.s, "abcdefg") == 0);
  aigc_json_arena_reset(&a);
  CHECK(a.head == head);
  CHECK(aigc_json_parse(&a, chunk, sizeof(chunk) - 1, 0, &v, &err) == 0 && a.head == head);
  aigc_json_arena_free(&a);
  CHECK(a.head == NULL && a.used == 0);
  aigc_json_arena_free(&a);
  free(big);
}

/*
** Under a comma-decimal locale, numbers still parse and format with '.'.
** Needs such a locale installed (or LOCPATH pointing at one).
*/
static void locale_checks (void) {
  char buf[32];
  aigc_json_value v;
  CHECK(localeconv()->decimal_point[0] == ',');
  REQUIRE(parse("[0.5,-2.25e2,1e-3]", &v) == 0);
  CHECK(v.u.items[0].u.d == 0.5 && v.u.items[1].u.d == -225.0 &&
        v.u.items[2].u.d == 0.001);
  CHECK(aigc_json_format_double(buf, 0.7) == 3 && strcmp(buf, "0.7") == 0);
  CHECK(aigc_json_format_double(buf, 2.0) == 3 && strcmp(buf, "2.0") == 0);
  CHECK(aigc_json_format_double(buf, 0.1 + 0.2) == 19 &&
        strcmp(buf, "0.30000000000000004") == 0);
  CHECK(writes_as("[0.5,1e300]", "[0.5,1e+300]"));
}

TEST(test_locale) {
  static const char *const names[] = {
    "de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "de_DE", NULL
  };
  size_t i;
  const char *got = NULL;
  for (i = 0; names[i] != NULL && got == NULL; i++)
    got = setlocale(LC_NUMERIC, names[i]);
  if (got == NULL) {
    printf("note: no comma-decimal locale installed; locale test not run\n");
    return;
  }
  locale_checks();
  setlocale(LC_NUMERIC, "C");
}

/*
** Every allocation made by a parse, a copy and a write fails in turn: each
** must report it (-2 / -1), leave no leak, and then work when memory is
** back.
*/
TEST(test_nomem) {
  static const char doc[] =
    "{\"a\":[\"x\",\"y\\n\",1.5,{\"b\":[[[]]]}],\"long\":\"0123456789012345678901234567890123456789\"}";
  aigc_json_value v, c;
  long n;
  int saw_fail = 0, done = 0;
  if (!faults_work()) {
    printf("note: allocation-failure tests need glibc's malloc (no ASan, no "
           "valgrind); not run\n");
    return;
  }
  for (n = 0; n < 1000 && !done; n++) {
    aigc_json_arena a;
    long before = live;
    int rc;
    aigc_json_arena_init(&a);
    fault_after = n;
    rc = aigc_json_parse(&a, doc, sizeof(doc) - 1, 0, &v, &err);
    fault_after = -1;
    if (rc == 0)
      done = 1;
    else {
      CHECK(rc == -2 && v.type == AIGC_JSON_NULL);
      CHECK_EQ_STR(err.message, "not enough memory");
      saw_fail = 1;
    }
    aigc_json_arena_free(&a);
    CHECK_EQ_INT(live, before);
  }
  CHECK(done && saw_fail);
  /* the scratch stacks spill to the heap past 48 children / 32 levels */
  {
    char deep[400];
    size_t i;
    for (i = 0; i < 100; i++) {
      deep[i] = '[';
      deep[199 - i] = ']';
    }
    for (n = 0, done = 0; n < 1000 && !done; n++) {
      aigc_json_arena a;
      long before = live;
      int rc;
      aigc_json_arena_init(&a);
      fault_after = n;
      rc = aigc_json_parse(&a, deep, 200, 0, &v, &err);
      fault_after = -1;
      done = (rc == 0);
      CHECK(rc == 0 || (rc == -2 && strcmp(err.message, "not enough memory") == 0));
      aigc_json_arena_free(&a);
      CHECK_EQ_INT(live, before);
    }
    CHECK(done);
  }
  CHECK(parse(doc, &v) == 0);
  for (n = 0, done = 0; n < 1000 && !done; n++) {
    long before = live;
    fault_after = n;
    if (aigc_json_copy(&c, &v) == 0)
      done = 1;
    else {
      CHECK(c.type == AIGC_JSON_NULL);
      CHECK_EQ_INT(live, before);
    }
    fault_after = -1;
  }
  CHECK(done);
  CHECK_EQ_STR(w(&c), w(&v));
  aigc_json_free(&c);
  for (n = 0, done = 0; n < 1000 && !done; n++) {
    aigc_buf b = AIGC_BUF_INIT;
    long before = live;
    fault_after = n;
    if (aigc_json_write(&b, &v) == 0)
      done = 1;
    else
      CHECK(b.len == 0);
    fault_after = -1;
    aigc_buf_free(&b);
    CHECK_EQ_INT(live, before);
  }
  CHECK(done);
}

/* Fails with AIGC_JSON_ELIMIT, this message, at this offset, leaving AIGC_JSON_NULL? */
static int limited (const char *text, const char *msg, size_t offset) {
  aigc_json_value v;
  int rc = parse_n(text, strlen(text), 0, &v);
  if (rc != AIGC_JSON_ELIMIT || strcmp(err.message, msg) != 0 || err.offset != offset) {
    fprintf(stderr, "  input %.40s: rc %d, \"%s\" at %zu; wanted \"%s\" at %zu\n",
            text, rc, rc ? err.message : "", rc ? err.offset : 0, msg, offset);
    return 0;
  }
  return v.type == AIGC_JSON_NULL;
}

/*
** The arena's limits bound what one parse builds: values of every kind
** and containers, counted before the value costs anything; zero means
** the defaults; reset and free keep the limits.
*/
TEST(test_limits) {
  aigc_json_value v;
  aigc_json_limits d = aigc_json_limits_of(NULL);
  aigc_buf flood = AIGC_BUF_INIT;
  size_t i;
  CHECK_EQ_INT(d.max_values, AIGC_JSON_DEFAULT_MAX_VALUES);
  CHECK_EQ_INT(d.max_containers, AIGC_JSON_DEFAULT_MAX_CONTAINERS);
  CHECK_EQ_INT(arena.limits.max_values, 0);   /* init: the defaults */
  arena.limits.max_values = 5;
  CHECK(parse("[1,2,3,4]", &v) == 0 && v.len == 4);      /* 5 values */
  CHECK(limited("[1,2,3,4,5]", "more than 5 values", 9));
  CHECK(parse("{\"a\":1,\"b\":[2,3]}", &v) == 0);        /* keys not counted */
  CHECK(limited("{\"a\":1,\"b\":[2,3,{}]}", "more than 5 values", 16));
  CHECK(limited("[[[[[[]]]]]]", "more than 5 values", 5));
  CHECK(parse("\"one\"", &v) == 0);
  aigc_json_arena_reset(&arena);
  CHECK_EQ_INT(arena.limits.max_values, 5);   /* kept */
  arena.limits.max_values = 0;
  arena.limits.max_containers = 2;
  CHECK(parse("[[1,2,3,4,5,6,7,8,9]]", &v) == 0);
  CHECK(limited("[[],[]]", "more than 2 arrays and objects", 4));
  CHECK(limited("{\"a\":{},\"b\":{}}", "more than 2 arrays and objects", 12));
  CHECK(fails("[[], x", "unexpected character 'x'", 5));   /* syntax first */
  /* the defaults: the value flood of issue 10 stops at the first array
     past AIGC_JSON_DEFAULT_MAX_CONTAINERS, the one at offset 1 + 3 * that */
  arena.limits.max_containers = 0;
  CHECK(aigc_buf_putc(&flood, '[') == 0);
  for (i = 0; i < AIGC_JSON_DEFAULT_MAX_CONTAINERS + 10; i++)
    CHECK(aigc_buf_append(&flood, i ? ",[]" : "[]", i ? 3 : 2) == 0);
  CHECK(aigc_buf_putc(&flood, ']') == 0);
  CHECK(parse_n(flood.data, flood.len, 0, &v) == AIGC_JSON_ELIMIT);
  CHECK(strcmp(err.message, "more than 1048576 arrays and objects") == 0);
  CHECK_EQ_INT(err.offset, 1 + 3 * (AIGC_JSON_DEFAULT_MAX_CONTAINERS - 1));
  /* the same flood of numbers stops at the values limit only when longer */
  aigc_buf_clear(&flood);
  CHECK(aigc_buf_putc(&flood, '[') == 0);
  for (i = 0; i < AIGC_JSON_DEFAULT_MAX_VALUES; i++)
    CHECK(aigc_buf_append(&flood, i ? ",0" : "0", i ? 2 : 1) == 0);
  CHECK(aigc_buf_putc(&flood, ']') == 0);
  CHECK(parse_n(flood.data, flood.len, 0, &v) == AIGC_JSON_ELIMIT);
  CHECK(strcmp(err.message, "more than 8388608 values") == 0);
  CHECK(parse_n(flood.data + 2, flood.len - 2, 0, &v) == AIGC_JSON_ESYNTAX);
  flood.data[flood.len - 3] = ']';   /* one value fewer: within the limit */
  CHECK(parse_n(flood.data, flood.len - 2, 0, &v) == 0 &&
        v.len == AIGC_JSON_DEFAULT_MAX_VALUES - 1);
  aigc_buf_free(&flood);
  aigc_json_arena_free(&arena);
  aigc_json_arena_init(&arena);
}

/*
** Hash floods (Lua 5.1-5.3: limits.lua_hash): 5,000 keys of 64 bytes that
** differ only in bytes Lua does not hash, in one object (its table) or as
** strings anywhere (the string table); keys that differ where it does pass,
** and nothing is refused with lua_hash off (Lua 5.4, LuaJIT).
*/
static void flood_text (aigc_buf *b, int as_object, int hashed) {
  size_t i, at[3] = { 1, 2, 4 };   /* bytes Lua 5.1-5.3 do not hash */
  if (hashed) {                    /* bytes they do (63, 60, ... 3) */
    at[0] = 3;
    at[1] = 6;
    at[2] = 9;
  }
  aigc_buf_clear(b);
  CHECK(aigc_buf_putc(b, as_object ? '{' : '[') == 0);
  for (i = 0; i < 5000; i++) {
    char key[65];
    memset(key, 'x', 64);
    key[64] = '\0';
    key[at[0]] = (char)('a' + i % 26);
    key[at[1]] = (char)('a' + i / 26 % 26);
    key[at[2]] = (char)('a' + i / 676 % 26);
    if (i > 0)
      CHECK(aigc_buf_putc(b, ',') == 0);
    CHECK(aigc_buf_putc(b, '"') == 0 && aigc_buf_append(b, key, 64) == 0 && aigc_buf_putc(b, '"') == 0);
    if (as_object)
      CHECK(aigc_buf_append(b, ":1", 2) == 0);
  }
  CHECK(aigc_buf_putc(b, as_object ? '}' : ']') == 0);
}

TEST(test_hash_flood) {
  aigc_json_value v;
  aigc_buf b = AIGC_BUF_INIT;
  arena.limits.lua_hash = 1;
  flood_text(&b, 1, 0);
  CHECK(parse_n(b.data, b.len, 0, &v) == AIGC_JSON_ELIMIT);
  CHECK(strcmp(err.message, "an object whose keys Lua hashes alike (a hash flood)") == 0);
  flood_text(&b, 0, 0);
  CHECK(parse_n(b.data, b.len, 0, &v) == AIGC_JSON_ELIMIT);
  CHECK(strcmp(err.message, "strings that Lua hashes alike (a hash flood)") == 0);
  CHECK_EQ_INT(err.offset, b.len);
  flood_text(&b, 1, 1);
  CHECK(parse_n(b.data, b.len, 0, &v) == 0 && v.len == 5000);
  flood_text(&b, 0, 1);
  CHECK(parse_n(b.data, b.len, 0, &v) == 0 && v.len == 5000);
  arena.limits.lua_hash = 0;
  flood_text(&b, 1, 0);
  CHECK(parse_n(b.data, b.len, 0, &v) == 0 && v.len == 5000);
  aigc_buf_free(&b);
  aigc_json_arena_free(&arena);
  aigc_json_arena_init(&arena);
}

int main (void) {
  aigc_json_arena_init(&arena);
  RUN(test_literals);
  RUN(test_integers);
  RUN(test_floats);
  RUN(test_number_grammar);
  RUN(test_strings_plain);
  RUN(test_escapes);
  RUN(test_surrogates);
  RUN(test_utf8);
  RUN(test_control_chars);
  RUN(test_deep_nesting);
  RUN(test_trailing_and_empty);
  RUN(test_malformed);
  RUN(test_prefixes);
  RUN(test_objects);
  RUN(test_arrays);
  RUN(test_write_roundtrip);
  RUN(test_write_special);
  RUN(test_format_double);
  RUN(test_format_int);
  RUN(test_write_string);
  RUN(test_write_string_words);
  RUN(test_utf8_valid);
  RUN(test_copy_free);
  RUN(test_arena_reuse);
  RUN(test_locale);
  RUN(test_nomem);
  RUN(test_limits);
  RUN(test_hash_flood);
  aigc_json_arena_free(&arena);
  aigc_buf_free(&out);
  return ctest_report("json");
}
