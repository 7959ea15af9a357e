/*
** accum_scan_test.c — the chunk scanner (src/accum_scan.c) against the full
** path (aigc_json_parse + aigc_accum_add), through spec/c/scan_oracle.h:
** the bench's streams (today's OpenAI chunk shape too), the bundled
** server's shapes and faults (usage, n > 1, tool calls, a repeated key,
** logprobs), hand-made edge cases, and random mutations of real chunks.
** Each stream case also checks that the scanner took the chunks it is for,
** so a scanner that always declined would fail here, not pass.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "scan_oracle.h"

#define HEAD "{\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\"," \
  "\"created\":1741569952,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\"," \
  "\"system_fingerprint\":\"fp_06737a9306\",\"choices\":[{\"index\":0,\"delta\":"
#define ROLE HEAD "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}]}"
#define PIECE(text) HEAD "{\"content\":\"" text "\"},\"logprobs\":null,\"finish_reason\":null}]}"
#define FINISH HEAD "{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}"

/* Feeds the chunks (NULL-terminated) to a fresh oracle; returns how many
   the scanner merged, or -1 (and a failed check) on a mismatch. */
static long run_stream (const char *const *chunks) {
  scan_oracle o;
  long scanned;
  size_t i;
  oracle_init(&o);
  for (i = 0; chunks[i] != NULL; i++)
    oracle_chunk(&o, chunks[i], strlen(chunks[i]));
  oracle_finish(&o);
  CHECK_EQ_INT(o.failures, 0);
  scanned = o.failures == 0 ? (long)o.scanned : -1;
  oracle_free(&o);
  return scanned;
}

TEST(bench_stream) {
  static const char *const chunks[] = {
    ROLE, PIECE("Streaming"), PIECE(" lets"), PIECE(" a"), PIECE(" game"), PIECE(""), PIECE(" show"),
    FINISH, NULL
  };
  CHECK_EQ_INT(run_stream(chunks), 6);   /* every piece; the role and finish chunks change more */
}

TEST(openai_obfuscation) {
  static const char *const chunks[] = {
    HEAD "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,"
         "\"finish_reason\":null}],\"obfuscation\":\"pm\"}",
    HEAD "{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"eTqV\"}",
    HEAD "{\"content\":\" there\"},\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"x\"}",
    HEAD "{\"content\":\"!\",\"obfuscation\":\"abc\"},\"logprobs\":null,\"finish_reason\":null,"
         "\"obfuscation\":\"q\"}],\"obfuscation\":\"Zz9\"}",
    HEAD "{\"content\":\"?\",\"obfuscation\":\"abcdef\"},\"logprobs\":null,\"finish_reason\":null,"
         "\"obfuscation\":\"qq\"}],\"obfuscation\":\"Z\"}",
    HEAD "{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"obfuscation\":\"eTqVIj89y94\"}",
    NULL
  };
  CHECK_EQ_INT(run_stream(chunks), 4);
}

/* A template's string slots read inline (accum_scan.c plain_string_end),
   the padding's last bytes too: what that quick read must hand to
   scan_string (escapes, UTF-8, control bytes, a string cut short), at the
   end of a chunk and 1..9 bytes before it. */
#define TAILED(text, pad, tail) HEAD "{\"content\":\"" text "\"},\"logprobs\":null," \
  "\"finish_reason\":null}],\"obfuscation\":\"" pad tail
TEST(memo_slot_tails) {
  static const char *const chunks[] = {
    TAILED("a", "pm", "\"}"), TAILED("b", "pmx", "\"}"), TAILED("c", "x\\n", "\"}"),
    TAILED("d", "ok", "\"}"), TAILED("e", "\x01", "\"}"), TAILED("f", "ok", "\"}"),
    TAILED("g", "caf\xc3\xa9", "\"}"), TAILED("h", "bad\xc3", "\"}"), TAILED("i", "ok", "\"}"),
    TAILED("j", "cut", ""), TAILED("k", "ok", "\"}"), TAILED("l", "ok\x7f", "\"}"),
    TAILED("m", "ok", "\"} "), TAILED("n", "ok", "\"}"), TAILED("o", "ok\\", "\"}"),
    TAILED("p", "ok", "\"}"), TAILED("q\x1f", "ok", "\"}"), TAILED("r", "ok", "\"}"),
    TAILED("s\\t", "ok", "\"}"), TAILED("t", "ok", "\",\"x\":1}"), TAILED("u", "ok", "\"}"),
    TAILED("0123456789abcdef\xc3\xa9", "ok", "\"}"), TAILED("v\"", "o", "\"}"),
    TAILED("w", "0123456789abcde", "\"}"), TAILED("x", "", "\"}"), NULL
  };
  /* the first chunk has no choice to merge into; the others but the
     malformed, control-byte, bad-UTF-8, cut and extra-member ones merge */
  CHECK_EQ_INT(run_stream(chunks), 17);
}

/* The template's last slot read by words that end at its closing quote
   (accum_scan.c plain_last_string): paddings of 1 to 20 bytes with one
   byte that is not plain (control bytes, a lone UTF-8 lead, a backslash
   starting a bad escape, a quote) at every place; each such chunk (none of
   them merges) is followed by a plain one of the same length (all merge). */
TEST(memo_last_slot_words) {
  static const char specials[] = { '\x01', '\x1f', '\xc3', '\\', '"' };
  enum { MAX_PAD = 20, NCHUNKS = 1 + 2 * 5 * (MAX_PAD * (MAX_PAD + 1) / 2) };
  static char *chunks[NCHUNKS + 1];
  const char *head = HEAD "{\"content\":\"a\"},\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"";
  size_t n = 0, i, len, at, k;
  chunks[n++] = strdup(HEAD "{\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"q\"}");
  for (len = 1; len <= MAX_PAD; len++)
    for (at = 0; at < len; at++)
      for (k = 0; k < sizeof specials; k++) {
        char pad[MAX_PAD + 1];
        int plain;
        for (plain = 0; plain < 2; plain++) {
          char *c = (char *)malloc(strlen(head) + MAX_PAD + 3);
          memset(pad, 'x', len);
          pad[len] = '\0';
          if (!plain)
            pad[at] = specials[k];
          else
            pad[at] = (char)('A' + (int)((at + k) % 26));
          sprintf(c, "%s%s\"}", head, pad);
          chunks[n++] = c;
        }
      }
  chunks[n] = NULL;
  CHECK_EQ_INT((long)n, NCHUNKS);
  CHECK_EQ_INT(run_stream((const char *const *)chunks), (NCHUNKS - 1) / 2);
  for (i = 0; i < n; i++)
    free(chunks[i]);
}

/* Escapes, UTF-8 and what the scanner leaves to the parser (\u, bad UTF-8). */
TEST(strings) {
  static const char *const chunks[] = {
    ROLE, PIECE("a\\\"b\\\\c\\/d\\n\\r\\t\\b\\f"), PIECE("caf\xc3\xa9 \xf0\x9f\x98\x80"),
    PIECE("\\u00e9"), PIECE("\\ud83d\\ude00"), PIECE("\\ud800"), PIECE("bad \xc3"), PIECE("bad \xed\xa0\x80"),
    PIECE("ctl \x01"), PIECE("tab\tin"), PIECE("back\\x"), PIECE("x"), FINISH, NULL
  };
  CHECK_EQ_INT(run_stream(chunks), 3);   /* the escapes, the UTF-8, "x" */
}

/* Chunks the scanner must leave to the full path: what they change or mean
   differs from a text piece. */
TEST(declines) {
  static const char *const chunks[] = {
    ROLE,
    HEAD "{\"content\":\"a\",\"content\":\"b\"},\"logprobs\":null,\"finish_reason\":null}]}",   /* dup-key */
    HEAD "{\"content\":\"a\"},\"logprobs\":null,\"finish_reason\":null,\"index\":0}]}",         /* dup index */
    "{\"id\":\"other\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"c\"}}]}",
    "{\"id\":\"other\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"d\"}}]}",
    "{\"object\":\"chat.completion.chunk.x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"skip\"}}]}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"e\"}}],\"error\":null}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"f\"}}],\"usage\":null}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"g\"}}],\"usage\":null}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"h\"}}],\"created\":1.5}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"i\"}}],\"created\":-1}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"j\"}}],\"created\":01}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"k\"}}]} x",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"l\"}}],}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"m\"}}]",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":null,\"delta\":{\"content\":\"n\"}}]}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":128,\"delta\":{\"content\":\"o\"}}]}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":{\"content\":\"p\"}}]}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":null}]}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":null}}]}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":5}}]}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"tool\"}}]}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"no\"}}]}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"q\"}}]}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"r\"}}]}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"q\","
      "\"reasoning_content\":\"r\"}}]}",   /* the same string again appends: "rr" */
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"q\","
      "\"role\":\"assistant\"}}]}",   /* the same role replaces: nothing */
    "{\"object\":\"chat.completion.chunk\",\"choices\":[]}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"r\"}},"
      "{\"index\":1,\"delta\":{\"content\":\"s\"}}]}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"t\"}}]}",
    "{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"u\"}}]}",
    " \n{ \"object\" : \"chat.completion.chunk\" , \"choices\" : [ { \"index\" : 0 , \"delta\" : { \"content\" : "
      "\"v\" } } ] } \r\n\t",
    "[]", "", "null", "{}",
    NULL
  };
  CHECK(run_stream(chunks) >= 0);
}

/* The bundled server's shapes: include_usage, n = 2 round robin, tool calls, logprobs. */
TEST(devserver_shapes) {
#define DS "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000," \
  "\"model\":\"dev\",\"system_fingerprint\":\"fp_dev\",\"choices\":["
  static const char *const chunks[] = {
    DS "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,"
       "\"finish_reason\":null}],\"usage\":null}",
    DS "{\"index\":1,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,"
       "\"finish_reason\":null}],\"usage\":null}",
    DS "{\"index\":0,\"delta\":{\"content\":\"one\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}",
    DS "{\"index\":1,\"delta\":{\"content\":\"uno\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}",
    DS "{\"index\":0,\"delta\":{\"content\":\" two\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}",
    DS "{\"index\":1,\"delta\":{\"content\":\" dos\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}",
    DS "{\"index\":0,\"delta\":{\"content\":\" x\"},\"logprobs\":{\"content\":[{\"token\":\" x\",\"logprob\":-0.5}],"
       "\"refusal\":null},\"finish_reason\":null}],\"usage\":null}",
    DS "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\","
       "\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}",
    DS "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]},"
       "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}",
    DS "{\"index\":0,\"delta\":{\"content\":\" three\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}",
    DS "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}",
    DS "{\"index\":1,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"length\"}],\"usage\":null}",
    DS "{\"index\":0,\"delta\":{\"content\":\" late\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}",
    DS "],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}",
    NULL
  };
#undef DS
  CHECK(run_stream(chunks) >= 5);   /* one, uno, two, dos, three, late (index 1: no callback text) */
}

/* {====================================================================
** Random mutations of real chunks
** ===================================================================== */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static unsigned rnd (unsigned n) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (unsigned)(rng_state % n);
}

/* One random edit of buf[0..*len) (capacity cap): a byte replaced, put in
   or taken out, from JSON's own characters mostly. */
static void mutate (char *buf, size_t *len, size_t cap) {
  static const char alphabet[] = "{}[]\":,\\ nulltruefalse0123456789-.eEabcdu\xc3\xa9\x80\xff\t\n";
  char c = alphabet[rnd(sizeof alphabet - 1)];
  size_t at = *len ? rnd((unsigned)*len) : 0;
  switch (rnd(3)) {
    case 0:
      if (*len)
        buf[at] = c;
      break;
    case 1:
      if (*len + 1 < cap) {
        memmove(buf + at + 1, buf + at, *len - at);
        buf[at] = c;
        (*len)++;
      }
      break;
    default:
      if (*len) {
        memmove(buf + at, buf + at + 1, *len - at - 1);
        (*len)--;
      }
  }
}

TEST(random_mutations) {
  static const char *const bases[] = {
    PIECE("Hello"), PIECE(" world"), FINISH, ROLE,
    HEAD "{\"content\":\"x\"},\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"eTqV\"}",
  };
  long streams, failures = 0, scanned = 0;
  for (streams = 0; streams < 3000; streams++) {
    scan_oracle o;
    int i;
    oracle_init(&o);
    oracle_chunk(&o, ROLE, strlen(ROLE));
    for (i = 0; i < 12; i++) {
      char buf[600];
      const char *base = bases[rnd(sizeof bases / sizeof bases[0])];
      size_t len = strlen(base);
      int edits = (int)rnd(4);
      memcpy(buf, base, len);
      while (edits-- > 0)
        mutate(buf, &len, sizeof buf);
      oracle_chunk(&o, buf, len);
    }
    oracle_finish(&o);
    failures += (long)o.failures;
    scanned += (long)o.scanned;
    oracle_free(&o);
  }
  CHECK_EQ_INT(failures, 0);
  CHECK(scanned > 3000);   /* the unmutated and harmlessly mutated pieces went the fast way */
}

/* }==================================================================== */

/* A chunk merged by the scanner after a finish (its template is forgotten)
   and after a free: the same as the full path. */
TEST(after_finish_and_free) {
  scan_oracle o;
  oracle_init(&o);
  oracle_chunk(&o, ROLE, strlen(ROLE));
  oracle_chunk(&o, PIECE("a"), strlen(PIECE("a")));
  oracle_chunk(&o, PIECE("b"), strlen(PIECE("b")));
  oracle_finish(&o);
  oracle_chunk(&o, PIECE("c"), strlen(PIECE("c")));
  oracle_finish(&o);
  aigc_accum_free(&o.fast);
  aigc_accum_free(&o.full);
  oracle_chunk(&o, PIECE("d"), strlen(PIECE("d")));   /* no choice yet: declined */
  oracle_chunk(&o, ROLE, strlen(ROLE));
  oracle_chunk(&o, PIECE("e"), strlen(PIECE("e")));
  oracle_chunk(&o, PIECE("f"), strlen(PIECE("f")));
  oracle_finish(&o);
  CHECK_EQ_INT(o.failures, 0);
  CHECK_EQ_INT(o.scanned, 5);   /* a, b, c, e, f */
  oracle_free(&o);
}

/* Fills the stack below the caller with `byte`, where the scanner's next
   call puts its locals (noinline, volatile: the stores stay). */
static __attribute__((noinline)) void dirty_stack (int byte) {
  volatile unsigned char junk[16384];
  size_t i;
  for (i = 0; i < sizeof junk; i++)
    junk[i] = (unsigned char)byte;
}

/* A choice with no delta (a finish chunk without one): the scanner read
   the delta's member count although it scanned no delta (uninitialised:
   from the stack), so it declined such a chunk, or with a small count
   read past its members (fuzz_chunkscan, UBSan). Now the count is 0. */
#define NO_DELTA "{\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\"," \
  "\"created\":1741569952,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\"," \
  "\"system_fingerprint\":\"fp_06737a9306\",\"choices\":[{\"index\":0,\"logprobs\":null," \
  "\"finish_reason\":null}]}"
TEST(choice_without_delta) {
  int byte;
  for (byte = 0; byte < 256; byte += 17) {
    scan_oracle o;
    const char *text;
    size_t text_len;
    oracle_init(&o);
    oracle_chunk(&o, ROLE, strlen(ROLE));
    oracle_chunk(&o, PIECE("a"), strlen(PIECE("a")));
    dirty_stack(byte);
    CHECK_EQ_INT(aigc_accum_scan(&o.fast, NO_DELTA, strlen(NO_DELTA), &text, &text_len), 1);
    CHECK(text == NULL);
    aigc_accum_free(&o.fast);
    aigc_accum_free(&o.full);
    oracle_free(&o);
  }
}

/* max_json_values / max_json_containers: the parse refuses a chunk past
   them (kind "limit"); the scanner must not take it either. */
#define PADDED HEAD "{\"content\":\"p\",\"obfuscation\":\"x\"},\"logprobs\":null,\"finish_reason\":null," \
  "\"obfuscation\":\"y\"}],\"obfuscation\":\"z\"}"
TEST(limits) {
  size_t values, containers;
  long scanned = 0, failures = 0;
  for (values = 8; values <= 20; values++)
    for (containers = 2; containers <= 6; containers++) {
      scan_oracle o;
      oracle_init(&o);
      oracle_limits(&o, values, containers);
      oracle_chunk(&o, ROLE, strlen(ROLE));
      oracle_chunk(&o, PIECE("a"), strlen(PIECE("a")));
      oracle_chunk(&o, PADDED, strlen(PADDED));   /* 3 values more than the role chunk */
      oracle_chunk(&o, PIECE("b"), strlen(PIECE("b")));
      failures += (long)o.failures;
      scanned += (long)o.scanned;
      oracle_free(&o);
    }
  CHECK_EQ_INT(failures, 0);
  CHECK(scanned > 0);
}

int main (void) {
  RUN(bench_stream);
  RUN(openai_obfuscation);
  RUN(memo_slot_tails);
  RUN(memo_last_slot_words);
  RUN(strings);
  RUN(declines);
  RUN(devserver_shapes);
  RUN(random_mutations);
  RUN(after_finish_and_free);
  RUN(limits);
  RUN(choice_without_delta);
  return ctest_report("accum_scan");
}
