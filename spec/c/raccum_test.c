/*
** raccum_test.c — unit tests for src/raccum.c, the Responses API's stream
** accumulator.
**
** Streams are written as the events a server sends (data lines; the type
** is in each event's "type"); each is parsed into an arena that is reset
** before the next, as the request does, so the accumulator must copy
** everything it keeps. Results are compared as the compact JSON
** aigc_json_write produces.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctest.h"
#include "faultalloc.h"
#include "json_nodes.h"
#include "raccum.h"


/* {====================================================================
** Helpers
** ===================================================================== */

static aigc_json_arena arena;
static aigc_buf out = AIGC_BUF_INIT;

/*
** Parses one event into the (reset) arena and adds it. After every add the
** limits must have been charged for the whole tree, the slots the events
** made (nulls up to an index, items, lists) included: 98 when not.
*/
static int add (aigc_raccum *a, const char *event) {
  aigc_json_value v;
  aigc_json_error err;
  size_t values = 0, containers = 0;
  int rc;
  aigc_json_arena_reset(&arena);
  if (aigc_json_parse(&arena, event, strlen(event), 0, &v, &err) != 0) {
    fprintf(stderr, "  bad test event (%s at %zu): %s\n", err.message, err.offset, event);
    return 99;
  }
  rc = aigc_raccum_add(a, NULL, 0, &v);
  count_nodes(&a->root, &values, &containers);
  if (values - 1 > a->values || containers - 1 > a->containers) {   /* (the root is free) */
    fprintf(stderr, "  the tree holds %zu values, %zu containers; charged %zu, %zu after %s\n",
            values - 1, containers - 1, a->values, a->containers, event);
    return 98;
  }
  return rc;
}

/* Adds every event; 1 if all were accepted. */
static int add_all (aigc_raccum *a, const char *const *events) {
  int ok = 1;
  for (; *events != NULL; events++) {
    int rc = add(a, *events);
    if (rc != AIGC_RACCUM_OK) {
      fprintf(stderr, "  add returned %d (%s) for %s\n", rc, a->error, *events);
      ok = 0;
    }
  }
  return ok;
}

static const char *json (const aigc_json_value *v) {
  aigc_buf_clear(&out);
  if (aigc_json_write(&out, v) != 0)
    return "<ENOMEM>";
  return out.data;
}

/* The tree as JSON, malloc'ed (for before/after comparisons). */
static char *snapshot (const aigc_raccum *a) {
  const char *s = json(&a->root);
  char *copy = (char *)malloc(strlen(s) + 1);
  if (copy != NULL)
    memcpy(copy, s, strlen(s) + 1);
  return copy;
}

static int collect (void *ud, const char *s, size_t n) {
  return aigc_buf_append((aigc_buf *)ud, s, n);
}

/* The response's output_text, malloc'ed. */
static char *output_text (const aigc_json_value *resp) {
  aigc_buf b = AIGC_BUF_INIT;
  if (aigc_raccum_output_text(resp, collect, &b) != 0 || aigc_buf_append(&b, "", 0) != 0) {
    aigc_buf_free(&b);
    return NULL;
  }
  return b.data;
}

/* A response snapshot event. */
#define RESP(type, seq, status, output, extra) \
  "{\"type\":\"response." type "\",\"sequence_number\":" #seq ",\"response\":{\"id\":\"resp_1\"," \
  "\"object\":\"response\",\"status\":\"" status "\",\"output\":" output extra "}}"

/* A whole message stream: two parts of text, then completed. */
#define MSG_ITEM_DONE "{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"completed\",\"role\":\"assistant\"," \
  "\"content\":[{\"type\":\"output_text\",\"text\":\"Hello world\",\"annotations\":[],\"logprobs\":[]}]}"

static const char *const MESSAGE_STREAM[] = {
  RESP("created", 0, "in_progress", "[]", ""),
  RESP("in_progress", 1, "in_progress", "[]", ""),
  "{\"type\":\"response.output_item.added\",\"sequence_number\":2,\"output_index\":0,\"item\":"
  "{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}}",
  "{\"type\":\"response.content_part.added\",\"sequence_number\":3,\"output_index\":0,\"content_index\":0,"
  "\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}}",
  "{\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"output_index\":0,\"content_index\":0,"
  "\"item_id\":\"msg_1\",\"delta\":\"Hello\",\"logprobs\":[]}",
  "{\"type\":\"response.output_text.delta\",\"sequence_number\":5,\"output_index\":0,\"content_index\":0,"
  "\"item_id\":\"msg_1\",\"delta\":\" world\",\"logprobs\":[]}",
  "{\"type\":\"response.output_text.done\",\"sequence_number\":6,\"output_index\":0,\"content_index\":0,"
  "\"text\":\"Hello world\"}",
  "{\"type\":\"response.content_part.done\",\"sequence_number\":7,\"output_index\":0,\"content_index\":0,"
  "\"part\":{\"type\":\"output_text\",\"text\":\"Hello world\",\"annotations\":[],\"logprobs\":[]}}",
  "{\"type\":\"response.output_item.done\",\"sequence_number\":8,\"output_index\":0,\"item\":" MSG_ITEM_DONE "}",
  RESP("completed", 9, "completed", "[" MSG_ITEM_DONE "]", ",\"usage\":{\"total_tokens\":7}"),
  NULL
};

/* `a` initialised and fed the whole MESSAGE_STREAM: its JSON then,
   malloc'ed, the state the refusal tests compare with (NULL when an event
   failed, said on stderr). */
static char *message_snapshot (aigc_raccum *a) {
  aigc_raccum_init(a);
  return add_all(a, MESSAGE_STREAM) ? snapshot(a) : NULL;
}

#define MESSAGE_RESULT "{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"output\":[" \
  MSG_ITEM_DONE "],\"usage\":{\"total_tokens\":7}}"

/* }==================================================================== */


/* {====================================================================
** Tests
** ===================================================================== */

TEST(test_message_stream) {
  aigc_raccum a;
  char *text;
  aigc_raccum_init(&a);
  REQUIRE(add_all(&a, MESSAGE_STREAM));
  CHECK_EQ_STR(json(&a.root), MESSAGE_RESULT);
  CHECK_EQ_INT(a.end, AIGC_RACCUM_COMPLETED);
  CHECK_EQ_INT(a.events, 10);
  text = output_text(&a.root);
  REQUIRE(text != NULL);
  CHECK_EQ_STR(text, "Hello world");
  free(text);
  aigc_raccum_free(&a);
}

/* Deltas alone build the response: no done events, and a completed
   payload without output (a minimal server). */
TEST(test_deltas_alone) {
  static const char *const events[] = {
    RESP("created", 0, "in_progress", "[]", ""),
    "{\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"output_index\":0,\"content_index\":0,"
    "\"delta\":\"a\"}",
    "{\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"output_index\":0,\"content_index\":1,"
    "\"delta\":\"b\"}",
    "{\"type\":\"response.output_text.delta\",\"sequence_number\":3,\"output_index\":0,\"content_index\":0,"
    "\"delta\":\"c\"}",
    "{\"type\":\"response.completed\",\"sequence_number\":4,\"response\":{\"status\":\"completed\"}}",
    NULL
  };
  aigc_raccum a;
  aigc_raccum_init(&a);
  REQUIRE(add_all(&a, events));
  CHECK_EQ_STR(json(&a.root), "{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\","
               "\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"ac\"},"
               "{\"type\":\"output_text\",\"text\":\"b\"}]}]}");
  aigc_raccum_free(&a);
}

/* Done events fill what no delta built, and never replace what deltas built. */
TEST(test_done_fills) {
  static const char *const events[] = {
    "{\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"type\":\"function_call\","
    "\"status\":\"in_progress\",\"name\":\"f\"}}",
    "{\"type\":\"response.function_call_arguments.done\",\"output_index\":0,\"arguments\":\"{}\"}",
    "{\"type\":\"response.output_item.added\",\"output_index\":1,\"item\":{\"type\":\"function_call\","
    "\"status\":\"in_progress\",\"name\":\"g\"}}",
    "{\"type\":\"response.function_call_arguments.delta\",\"output_index\":1,\"delta\":\"[1\"}",
    "{\"type\":\"response.function_call_arguments.delta\",\"output_index\":1,\"delta\":\"]\"}",
    "{\"type\":\"response.function_call_arguments.done\",\"output_index\":1,\"arguments\":\"IGNORED\"}",
    "{\"type\":\"response.output_item.done\",\"output_index\":1,\"item\":{\"type\":\"function_call\","
    "\"status\":\"completed\",\"name\":\"g\",\"arguments\":\"ALSO IGNORED\",\"call_id\":\"c\"}}",
    NULL
  };
  aigc_raccum a;
  aigc_raccum_init(&a);
  REQUIRE(add_all(&a, events));
  CHECK_EQ_STR(json(&a.root), "{\"output\":[{\"type\":\"function_call\",\"status\":\"in_progress\","
               "\"name\":\"f\",\"arguments\":\"{}\"},{\"type\":\"function_call\",\"status\":\"completed\","
               "\"name\":\"g\",\"arguments\":\"[1]\",\"call_id\":\"c\"}]}");
  CHECK_EQ_INT(a.end, AIGC_RACCUM_PENDING);
  aigc_raccum_free(&a);
}

/* A server that sends added and done events and no delta: the done
   events' text fills the empty content and arguments the items came with. */
TEST(test_done_without_deltas) {
  static const char *const events[] = {
    "{\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"type\":\"message\","
    "\"content\":[]}}",
    "{\"type\":\"response.output_item.added\",\"output_index\":1,\"item\":{\"type\":\"function_call\","
    "\"arguments\":\"\"}}",
    "{\"type\":\"response.output_item.done\",\"output_index\":0,\"item\":{\"type\":\"message\","
    "\"content\":[{\"type\":\"output_text\",\"text\":\"whole\"}]}}",
    "{\"type\":\"response.function_call_arguments.done\",\"output_index\":1,\"arguments\":\"{}\"}",
    NULL
  };
  aigc_raccum a;
  aigc_raccum_init(&a);
  REQUIRE(add_all(&a, events));
  CHECK_EQ_STR(json(&a.root), "{\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\","
               "\"text\":\"whole\"}]},{\"type\":\"function_call\",\"arguments\":\"{}\"}]}");
  aigc_raccum_free(&a);
}

/* Items added empty, then only response.completed: its output completes
   them; what deltas built stays. */
TEST(test_completed_completes) {
  static const char *const events[] = {
    "{\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"type\":\"message\","
    "\"status\":\"in_progress\",\"content\":[]}}",
    "{\"type\":\"response.output_item.added\",\"output_index\":1,\"item\":{\"type\":\"function_call\","
    "\"arguments\":\"\"}}",
    "{\"type\":\"response.function_call_arguments.delta\",\"output_index\":1,\"delta\":\"[1]\"}",
    "{\"type\":\"response.completed\",\"response\":{\"status\":\"completed\",\"output\":["
    "{\"type\":\"message\",\"status\":\"completed\",\"content\":[{\"type\":\"output_text\",\"text\":\"hi\"}]},"
    "{\"type\":\"function_call\",\"arguments\":\"[2]\",\"call_id\":\"c\"},7]}}",
    NULL
  };
  aigc_raccum a;
  aigc_raccum_init(&a);
  REQUIRE(add_all(&a, events));
  CHECK_EQ_STR(json(&a.root), "{\"output\":[{\"type\":\"message\",\"status\":\"completed\",\"content\":["
               "{\"type\":\"output_text\",\"text\":\"hi\"}]},{\"type\":\"function_call\",\"arguments\":\"[1]\","
               "\"call_id\":\"c\"}],\"status\":\"completed\"}");
  aigc_raccum_free(&a);
}

/* Parts added empty whose text came with no delta (no text or part done
   event either): the item's done event (or the completed response) fills
   them part by part; a part its deltas built keeps their text. */
TEST(test_item_done_fills_empty_parts) {
  static const char *const events[] = {
    "{\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"type\":\"message\","
    "\"content\":[]}}",
    "{\"type\":\"response.content_part.added\",\"output_index\":0,\"content_index\":0,"
    "\"part\":{\"type\":\"output_text\",\"text\":\"\"}}",
    "{\"type\":\"response.content_part.added\",\"output_index\":0,\"content_index\":1,"
    "\"part\":{\"type\":\"output_text\",\"text\":\"\"}}",
    "{\"type\":\"response.output_text.delta\",\"output_index\":0,\"content_index\":1,\"delta\":\"b\"}",
    "{\"type\":\"response.output_item.done\",\"output_index\":0,\"item\":{\"type\":\"message\","
    "\"content\":[{\"type\":\"output_text\",\"text\":\"A\",\"annotations\":[]},"
    "{\"type\":\"output_text\",\"text\":\"IGNORED\"},{\"type\":\"refusal\",\"refusal\":\"no\"}]}}",
    "{\"type\":\"response.output_item.added\",\"output_index\":1,\"item\":{\"type\":\"reasoning\","
    "\"summary\":[]}}",
    "{\"type\":\"response.reasoning_summary_part.added\",\"output_index\":1,\"summary_index\":0,"
    "\"part\":{\"type\":\"summary_text\",\"text\":\"\"}}",
    "{\"type\":\"response.completed\",\"response\":{\"output\":[{\"type\":\"message\"},"
    "{\"type\":\"reasoning\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"S\"}]}]}}",
    NULL
  };
  aigc_raccum a;
  aigc_raccum_init(&a);
  REQUIRE(add_all(&a, events));
  CHECK_EQ_STR(json(&a.root), "{\"output\":[{\"type\":\"message\",\"content\":["
               "{\"type\":\"output_text\",\"text\":\"A\",\"annotations\":[]},"
               "{\"type\":\"output_text\",\"text\":\"b\"},{\"type\":\"refusal\",\"refusal\":\"no\"}]},"
               "{\"type\":\"reasoning\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"S\"}]}]}");
  aigc_raccum_free(&a);
}

/* Parallel calls whose argument deltas interleave: keyed by output_index. */
TEST(test_interleaved_calls) {
  static const char *const events[] = {
    "{\"type\":\"response.function_call_arguments.delta\",\"output_index\":1,\"delta\":\"{\\\"b\\\"\"}",
    "{\"type\":\"response.function_call_arguments.delta\",\"output_index\":0,\"delta\":\"{\\\"a\\\"\"}",
    "{\"type\":\"response.function_call_arguments.delta\",\"output_index\":1,\"delta\":\":2}\"}",
    "{\"type\":\"response.function_call_arguments.delta\",\"output_index\":0,\"delta\":\":1}\"}",
    NULL
  };
  aigc_raccum a;
  aigc_raccum_init(&a);
  REQUIRE(add_all(&a, events));
  CHECK_EQ_STR(json(&a.root), "{\"output\":[{\"type\":\"function_call\",\"arguments\":\"{\\\"a\\\":1}\"},"
               "{\"type\":\"function_call\",\"arguments\":\"{\\\"b\\\":2}\"}]}");
  aigc_raccum_free(&a);
}

TEST(test_reasoning_refusal_annotations) {
  static const char *const events[] = {
    "{\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"type\":\"reasoning\",\"summary\":[]}}",
    "{\"type\":\"response.reasoning_summary_part.added\",\"output_index\":0,\"summary_index\":0,"
    "\"part\":{\"type\":\"summary_text\",\"text\":\"\"}}",
    "{\"type\":\"response.reasoning_summary_text.delta\",\"output_index\":0,\"summary_index\":0,\"delta\":\"Think\"}",
    "{\"type\":\"response.reasoning_summary_text.delta\",\"output_index\":0,\"summary_index\":1,\"delta\":\"More\"}",
    "{\"type\":\"response.reasoning_text.delta\",\"output_index\":0,\"content_index\":0,\"delta\":\"raw\"}",
    "{\"type\":\"response.refusal.delta\",\"output_index\":1,\"content_index\":0,\"delta\":\"No\"}",
    "{\"type\":\"response.refusal.done\",\"output_index\":1,\"content_index\":0,\"refusal\":\"IGNORED\"}",
    "{\"type\":\"response.output_text.annotation.added\",\"output_index\":2,\"content_index\":0,"
    "\"annotation_index\":1,\"annotation\":{\"type\":\"url_citation\"}}",
    NULL
  };
  aigc_raccum a;
  aigc_raccum_init(&a);
  REQUIRE(add_all(&a, events));
  CHECK_EQ_STR(json(&a.root), "{\"output\":[{\"type\":\"reasoning\",\"summary\":["
               "{\"type\":\"summary_text\",\"text\":\"Think\"},{\"type\":\"summary_text\",\"text\":\"More\"}],"
               "\"content\":[{\"type\":\"reasoning_text\",\"text\":\"raw\"}]},"
               "{\"type\":\"message\",\"content\":[{\"type\":\"refusal\",\"refusal\":\"No\"}]},"
               "{\"type\":\"message\",\"content\":[{\"type\":\"output_text\","
               "\"annotations\":[null,{\"type\":\"url_citation\"}]}]}]}");
  aigc_raccum_free(&a);
}

TEST(test_sequence) {
  aigc_raccum a;
  char *before;
  aigc_raccum_init(&a);
  CHECK_EQ_INT(add(&a, "{\"type\":\"x\",\"sequence_number\":7}"), AIGC_RACCUM_OK);   /* any first */
  CHECK_EQ_INT(add(&a, "{\"type\":\"x\",\"sequence_number\":8}"), AIGC_RACCUM_OK);
  before = snapshot(&a);
  REQUIRE(before != NULL);
  CHECK_EQ_INT(add(&a, "{\"type\":\"response.output_text.delta\",\"output_index\":0,\"content_index\":0,"
                       "\"delta\":\"x\",\"sequence_number\":10}"), AIGC_RACCUM_SEQUENCE);
  CHECK(strstr(a.error, "10 came after 8 (events are missing)") != NULL);
  CHECK_EQ_STR(json(&a.root), before);   /* the event was not merged */
  CHECK_EQ_INT(add(&a, "{\"type\":\"x\",\"sequence_number\":9}"), AIGC_RACCUM_SEQUENCE);
  CHECK(strstr(a.error, "out of order") != NULL);
  CHECK_EQ_INT(add(&a, "{\"type\":\"x\",\"sequence_number\":10}"), AIGC_RACCUM_OK);
  CHECK_EQ_INT(add(&a, "{\"type\":\"x\",\"sequence_number\":9223372036854775807}"), AIGC_RACCUM_SEQUENCE);
  CHECK_EQ_INT(add(&a, "{\"type\":\"x\"}"), AIGC_RACCUM_OK);   /* none: not checked */
  free(before);
  aigc_raccum_free(&a);
}

/* A stream resumed after event 4 (GET /responses/{id}?stream=true
   &starting_after=4): the first event must be 5, the built output is only
   the text's end, the final snapshot's output replaces it; a reset (a new
   attempt) resumes after 4 again. */
/* A server that does not count: the same number on every event passes
   until the numbers once step by one; a response.failed passes whatever
   its number (the failure is what is reported). */
TEST(test_sequence_not_counted) {
  aigc_raccum a;
  aigc_raccum_init(&a);
  CHECK_EQ_INT(add(&a, "{\"type\":\"x\",\"sequence_number\":0}"), AIGC_RACCUM_OK);
  CHECK_EQ_INT(add(&a, "{\"type\":\"x\",\"sequence_number\":0}"), AIGC_RACCUM_OK);
  CHECK_EQ_INT(add(&a, "{\"type\":\"x\",\"sequence_number\":0}"), AIGC_RACCUM_OK);
  CHECK_EQ_INT(add(&a, "{\"type\":\"x\",\"sequence_number\":1}"), AIGC_RACCUM_OK);
  CHECK_EQ_INT(add(&a, "{\"type\":\"x\",\"sequence_number\":1}"), AIGC_RACCUM_SEQUENCE);
  CHECK_EQ_INT(add(&a, "{\"type\":\"x\",\"sequence_number\":2}"), AIGC_RACCUM_OK);
  CHECK_EQ_INT(add(&a, "{\"type\":\"response.failed\",\"sequence_number\":0,"
                       "\"response\":{\"status\":\"failed\"}}"), AIGC_RACCUM_OK);
  CHECK_EQ_INT(a.end, AIGC_RACCUM_FAILED);
  aigc_raccum_free(&a);
}

/* A shell call's commands and its output's stdout / stderr, from their
   events alone (a stream cut before output_item.done keeps them). */
TEST(test_shell_call) {
  static const char *const events[] = {
    "{\"type\":\"response.shell_call_command.added\",\"output_index\":0,\"command_index\":0,\"command\":\"\"}",
    "{\"type\":\"response.shell_call_command.delta\",\"output_index\":0,\"command_index\":0,\"delta\":\"ls \"}",
    "{\"type\":\"response.shell_call_command.delta\",\"output_index\":0,\"command_index\":0,\"delta\":\"-l\"}",
    "{\"type\":\"response.shell_call_command.done\",\"output_index\":0,\"command_index\":0,\"command\":\"ls -x\"}",
    "{\"type\":\"response.shell_call_command.done\",\"output_index\":0,\"command_index\":1,\"command\":\"pwd\"}",
    "{\"type\":\"response.shell_call_output_content.delta\",\"output_index\":1,\"command_index\":0,"
    "\"delta\":{\"stdout\":\"a\"}}",
    "{\"type\":\"response.shell_call_output_content.delta\",\"output_index\":1,\"command_index\":0,"
    "\"delta\":{\"stdout\":\"b\",\"stderr\":\"oops\"}}",
    NULL
  };
  aigc_raccum a;
  aigc_raccum_init(&a);
  CHECK(add_all(&a, events));
  CHECK_EQ_STR(json(&a.root), "{\"output\":[{\"type\":\"shell_call\",\"action\":{\"commands\":"
               "[\"ls -l\",\"pwd\"]}},{\"type\":\"shell_call_output\",\"output\":[{\"stdout\":\"ab\","
               "\"stderr\":\"oops\"}]}]}");
  CHECK_EQ_INT(add(&a, "{\"type\":\"response.shell_call_command.delta\",\"output_index\":0,"
                       "\"command_index\":0}"), AIGC_RACCUM_BADSHAPE);
  CHECK_EQ_INT(add(&a, "{\"type\":\"response.shell_call_output_content.delta\",\"output_index\":1,"
                       "\"command_index\":0,\"delta\":\"x\"}"), AIGC_RACCUM_BADSHAPE);
  aigc_raccum_free(&a);
}

TEST(test_resumed) {
  aigc_raccum a;
  int i;
  aigc_raccum_init(&a);
  aigc_raccum_resume(&a, 4);
  CHECK_EQ_INT(add(&a, MESSAGE_STREAM[0]), AIGC_RACCUM_SEQUENCE);   /* from the start: refused */
  CHECK(strstr(a.error, "0 came after 4 (out of order)") != NULL);
  CHECK_EQ_INT(a.events, 0);
  aigc_raccum_reset(&a);
  CHECK_EQ_INT(add(&a, MESSAGE_STREAM[6]), AIGC_RACCUM_SEQUENCE);   /* 6: event 5 missing */
  aigc_raccum_reset(&a);
  for (i = 5; MESSAGE_STREAM[i] != NULL; i++) {
    if (MESSAGE_STREAM[i + 1] == NULL)   /* before completed: only " world" was built */
      CHECK(strstr(json(&a.root), "\"text\":\" world\"") != NULL);
    CHECK_EQ_INT(add(&a, MESSAGE_STREAM[i]), AIGC_RACCUM_OK);
  }
  CHECK_EQ_INT(a.end, AIGC_RACCUM_COMPLETED);
  /* the whole response ("output" first: the deltas made it before the snapshot came) */
  CHECK_EQ_STR(json(&a.root), "{\"output\":[" MSG_ITEM_DONE "],\"id\":\"resp_1\",\"object\":\"response\","
                              "\"status\":\"completed\",\"usage\":{\"total_tokens\":7}}");
  aigc_raccum_free(&a);
}

/* Unknown and other events change nothing; the SSE name stands in for a
   missing "type". */
TEST(test_unknown_and_sse_type) {
  aigc_raccum a;
  aigc_json_value v;
  aigc_json_error err;
  static const char ev[] = "{\"output_index\":0,\"content_index\":0,\"delta\":\"hi\"}";
  aigc_raccum_init(&a);
  CHECK_EQ_INT(add(&a, "{\"type\":\"response.future_thing\",\"output_index\":0,\"item\":[]}"), AIGC_RACCUM_OK);
  CHECK_EQ_INT(add(&a, "{\"type\":\"keepalive\"}"), AIGC_RACCUM_OK);
  CHECK_EQ_STR(json(&a.root), "{}");
  CHECK_EQ_INT(a.events, 2);
  aigc_json_arena_reset(&arena);
  REQUIRE(aigc_json_parse(&arena, ev, strlen(ev), 0, &v, &err) == 0);
  CHECK_EQ_INT(aigc_raccum_add(&a, "response.output_text.delta", 26, &v), AIGC_RACCUM_OK);
  CHECK_EQ_STR(json(&a.root), "{\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\","
               "\"text\":\"hi\"}]}]}");
  aigc_raccum_free(&a);
}

/* A malformed event is refused whole: the tree is as it was. */
TEST(test_badshape_unchanged) {
  static const char *const bad[] = {
    "[]",
    "{\"type\":\"response.created\"}",
    "{\"type\":\"response.created\",\"response\":[]}",
    "{\"type\":\"response.output_item.added\",\"output_index\":0}",
    "{\"type\":\"response.output_item.added\",\"output_index\":-1,\"item\":{}}",
    "{\"type\":\"response.output_item.added\",\"output_index\":1024,\"item\":{}}",
    "{\"type\":\"response.output_item.added\",\"output_index\":1.0,\"item\":{}}",
    "{\"type\":\"response.output_text.delta\",\"output_index\":3,\"content_index\":0,\"delta\":7}",
    "{\"type\":\"response.output_text.delta\",\"output_index\":3,\"content_index\":\"0\",\"delta\":\"x\"}",
    "{\"type\":\"response.output_text.delta\",\"output_index\":3,\"delta\":\"x\"}",
    "{\"type\":\"response.function_call_arguments.delta\",\"output_index\":3}",
    "{\"type\":\"response.content_part.added\",\"output_index\":3,\"content_index\":0,\"part\":\"x\"}",
    "{\"type\":\"response.output_text.annotation.added\",\"output_index\":3,\"content_index\":0,"
    "\"annotation\":{}}",
    NULL
  };
  aigc_raccum a;
  char *before = message_snapshot(&a);
  size_t i;
  REQUIRE(before != NULL);
  for (i = 0; bad[i] != NULL; i++) {
    CHECK_EQ_INT(add(&a, bad[i]), AIGC_RACCUM_BADSHAPE);
    CHECK(a.error[0] != '\0');
    CHECK_EQ_STR(json(&a.root), before);
  }
  free(before);
  aigc_raccum_free(&a);
}

TEST(test_limits) {
  aigc_raccum a;
  char *before;
  aigc_raccum_init(&a);
  a.limits.max_values = 40;
  REQUIRE(add(&a, MESSAGE_STREAM[0]) == AIGC_RACCUM_OK);   /* 6 values */
  before = snapshot(&a);
  REQUIRE(before != NULL);
  CHECK_EQ_INT(add(&a, "{\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":"
                       "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,"
                       "29,30,31,32,33,34,35]}"), AIGC_RACCUM_LIMIT);
  CHECK_EQ_STR(a.error, "more than 40 values");
  CHECK_EQ_STR(json(&a.root), before);
  a.limits.max_containers = 3;
  CHECK_EQ_INT(add(&a, "{\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"a\":[[]]}}"),
               AIGC_RACCUM_LIMIT);
  CHECK_EQ_STR(a.error, "more than 3 arrays and objects");
  CHECK_EQ_STR(json(&a.root), before);
  free(before);
  aigc_raccum_free(&a);
}

/* An event: head, then n members "kI":1 (from I = first), then tail. */
static const char *members_event (char *buf, size_t size, const char *head, int first, int n,
                                  const char *tail) {
  size_t len = (size_t)snprintf(buf, size, "%s", head);
  int i;
  for (i = first; i < first + n && len < size; i++)
    len += (size_t)snprintf(buf + len, size - len, "%s\"k%d\":1", i > first ? "," : "", i);
  if (len < size)
    snprintf(buf + len, size - len, "%s", tail);
  return buf;
}

#define ITEM_DONE_HEAD \
  "{\"type\":\"response.output_item.done\",\"output_index\":0,\"item\":{\"type\":\"message\","
#define OVER_MEMBERS "an object of more than 128 members"

/* The objects keys are merged into (the response, items, parts) cannot
   grow past the bound: one output_item.done per new key was merged by a
   linear search each, quadratic (40,000 events: 6.75 s). The item stops
   growing, refused whole, and holds at most twice the bound. */
TEST(test_members_bounded_by_events) {
  static char buf[8192];
  aigc_raccum a;
  const aigc_json_value *item;
  char *before = NULL;
  int i, rc = AIGC_RACCUM_OK;
  aigc_raccum_init(&a);
  REQUIRE(add(&a, MESSAGE_STREAM[0]) == AIGC_RACCUM_OK);
  for (i = 0; i < 1000 && rc == AIGC_RACCUM_OK; i++) {
    free(before);
    before = snapshot(&a);
    REQUIRE(before != NULL);
    rc = add(&a, members_event(buf, sizeof buf, ITEM_DONE_HEAD, i, 1, "}}"));
  }
  CHECK_EQ_INT(rc, AIGC_RACCUM_LIMIT);
  CHECK_EQ_STR(a.error, OVER_MEMBERS);
  CHECK_EQ_STR(json(&a.root), before);   /* (refused whole) */
  CHECK(i > 128);   /* (an item of 128 members is merged into) */
  item = &aigc_json_get(&a.root, "output")->u.items[0];
  CHECK(item->len <= 2 * AIGC_RACCUM_MAX_MEMBERS + 14);
  /* the deltas, each a member the event names, are still merged */
  CHECK_EQ_INT(add(&a, "{\"type\":\"response.output_text.delta\",\"output_index\":0,"
                       "\"content_index\":0,\"delta\":\"Hi\"}"), AIGC_RACCUM_OK);
  free(before);
  aigc_raccum_free(&a);
}

/* One event of too many members is refused before anything changes (its
   keys merged one by one cost n^2 / 2; an item of 100,000 keys made every
   later delta search them all); the bound itself is merged. */
TEST(test_members_bounded_in_one_event) {
  static char buf[8192];
  static const struct { const char *head, *tail; } over[] = {
    { "{\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{", "}}" },
    { ITEM_DONE_HEAD, "}}" },
    { "{\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"content\":[{", "}]}}" },
    { "{\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"action\":{", "}}}" },
    { "{\"type\":\"response.content_part.added\",\"output_index\":0,\"content_index\":0,\"part\":{",
      "}}" },
    { "{\"type\":\"response.in_progress\",\"response\":{", "}}" },
    { "{\"type\":\"response.completed\",\"response\":{\"output\":[{\"type\":\"message\",", "}]}}" },
  };
  aigc_raccum a;
  char *before = message_snapshot(&a);
  size_t i;
  REQUIRE(before != NULL);
  for (i = 0; i < sizeof over / sizeof over[0]; i++) {
    CHECK_EQ_INT(add(&a, members_event(buf, sizeof buf, over[i].head, 0, 129, over[i].tail)),
                 AIGC_RACCUM_LIMIT);
    CHECK_EQ_STR(a.error, OVER_MEMBERS);
    CHECK_EQ_STR(json(&a.root), before);
  }
  free(before);
  aigc_raccum_free(&a);
  for (i = 0; i < sizeof over / sizeof over[0]; i++) {   /* 128 (an item's "type" too) */
    aigc_raccum_init(&a);
    CHECK_EQ_INT(add(&a, members_event(buf, sizeof buf, over[i].head, 0,
                                       i == 1 || i == 6 ? 127 : 128, over[i].tail)),
                 AIGC_RACCUM_OK);
    aigc_raccum_free(&a);
  }
}

/* Nulls up to a far index count against the limits: a few events at index
   1023 cannot build thousands of slots the limits never saw. */
TEST(test_index_slots_charged) {
  static const char *const far[] = {
    "{\"type\":\"response.output_text.annotation.added\",\"output_index\":1023,\"content_index\":1023,"
    "\"annotation_index\":1023,\"annotation\":{}}",
    "{\"type\":\"response.output_text.delta\",\"output_index\":1023,\"content_index\":1023,\"delta\":\"x\"}",
    "{\"type\":\"response.reasoning_summary_part.added\",\"output_index\":1023,\"summary_index\":1023,"
    "\"part\":{}}",
    "{\"type\":\"response.function_call_arguments.delta\",\"output_index\":1023,\"delta\":\"{\"}",
    "{\"type\":\"response.custom_tool_call_input.delta\",\"output_index\":1022,\"delta\":\"x\"}",
    "{\"type\":\"response.code_interpreter_call_code.delta\",\"output_index\":1021,\"delta\":\"x\"}",
    "{\"type\":\"response.mcp_call_arguments.done\",\"output_index\":1020,\"arguments\":\"{}\"}",
    "{\"type\":\"response.shell_call_command.delta\",\"output_index\":1019,\"command_index\":1023,"
    "\"delta\":\"ls\"}",
    "{\"type\":\"response.shell_call_output_content.delta\",\"output_index\":1018,\"command_index\":1023,"
    "\"delta\":{\"stdout\":\"x\",\"stderr\":\"y\"}}",
    "{\"type\":\"response.output_item.added\",\"output_index\":1023,\"item\":{}}",
    NULL
  };
  aigc_raccum a;
  char *before;
  size_t i;
  aigc_raccum_init(&a);
  a.limits.max_values = 1000;
  REQUIRE(add(&a, MESSAGE_STREAM[0]) == AIGC_RACCUM_OK);
  before = snapshot(&a);
  REQUIRE(before != NULL);
  for (i = 0; far[i] != NULL; i++) {
    CHECK_EQ_INT(add(&a, far[i]), AIGC_RACCUM_LIMIT);
    CHECK_EQ_STR(a.error, "more than 1000 values");
    CHECK_EQ_STR(json(&a.root), before);
  }
  /* under the limits the same events are merged, and charged (add checks) */
  a.limits.max_values = 0;
  CHECK(add_all(&a, far));
  CHECK(a.values > 3 * 1024);
  /* a path met again makes nothing new: a second delta costs nothing (the
     first rebuilds the content the last event's empty item replaced) */
  CHECK_EQ_INT(add(&a, far[1]), AIGC_RACCUM_OK);
  {
    size_t v = a.values, c = a.containers;
    CHECK_EQ_INT(add(&a, far[1]), AIGC_RACCUM_OK);
    CHECK_EQ_INT(a.values, v);
    CHECK_EQ_INT(a.containers, c);
  }
  free(before);
  aigc_raccum_free(&a);
}

/* Every allocation of every event fails in turn: NOMEM each time, nothing
   leaks, and merging the event again gives the result of a run with no
   failure. */
TEST(test_nomem) {
  aigc_raccum a;
  size_t i;
  long live0, failures = 0;
  if (!faults_work())
    SKIP("allocation failures need glibc's malloc (no ASan, no valgrind)");
  aigc_json_arena_free(&arena);   /* from nothing: every block counted is this test's */
  aigc_buf_free(&out);
  live0 = live;
  aigc_raccum_init(&a);
  for (i = 0; MESSAGE_STREAM[i] != NULL; i++) {
    aigc_json_value v;
    aigc_json_error err;
    long n;
    int rc = AIGC_RACCUM_NOMEM;
    aigc_json_arena_reset(&arena);
    REQUIRE(aigc_json_parse(&arena, MESSAGE_STREAM[i], strlen(MESSAGE_STREAM[i]), 0, &v, &err) == 0);
    for (n = 0; rc == AIGC_RACCUM_NOMEM && n < 10000; n++) {
      a.have_seq = i > 0;   /* the failed attempts took the sequence number */
      a.last_seq = (int64_t)i - 1;
      fault_after = n;
      rc = aigc_raccum_add(&a, NULL, 0, &v);
      fault_after = -1;
      failures += rc == AIGC_RACCUM_NOMEM;
    }
    CHECK_EQ_INT(rc, AIGC_RACCUM_OK);
  }
  CHECK_EQ_STR(json(&a.root), MESSAGE_RESULT);
  CHECK(failures > 30);   /* the failures happened (39 allocations in all) */
  aigc_raccum_free(&a);
  aigc_json_arena_free(&arena);
  aigc_buf_free(&out);
  CHECK_EQ_INT(live, live0);
}

TEST(test_output_text) {
  static const char resp[] = "{\"output\":[{\"type\":\"reasoning\",\"content\":[{\"type\":\"output_text\","
    "\"text\":\"no\"}]},{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"a\"},"
    "{\"type\":\"refusal\",\"refusal\":\"r\"},{\"type\":\"output_text\",\"text\":\"b\"}]},"
    "{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"c\"}]},7]}";
  aigc_json_value v;
  aigc_json_error err;
  char *text;
  aigc_json_arena_reset(&arena);
  REQUIRE(aigc_json_parse(&arena, resp, strlen(resp), 0, &v, &err) == 0);
  text = output_text(&v);
  REQUIRE(text != NULL);
  CHECK_EQ_STR(text, "abc");
  free(text);
  REQUIRE(aigc_json_parse(&arena, "{}", 2, 0, &v, &err) == 0);
  text = output_text(&v);
  REQUIRE(text != NULL);
  CHECK_EQ_STR(text, "");
  free(text);
}

/* }==================================================================== */


int main (void) {
  aigc_json_arena_init(&arena);
  RUN(test_message_stream);
  RUN(test_deltas_alone);
  RUN(test_done_fills);
  RUN(test_done_without_deltas);
  RUN(test_completed_completes);
  RUN(test_item_done_fills_empty_parts);
  RUN(test_interleaved_calls);
  RUN(test_reasoning_refusal_annotations);
  RUN(test_sequence);
  RUN(test_sequence_not_counted);
  RUN(test_shell_call);
  RUN(test_resumed);
  RUN(test_unknown_and_sse_type);
  RUN(test_badshape_unchanged);
  RUN(test_limits);
  RUN(test_index_slots_charged);
  RUN(test_members_bounded_by_events);
  RUN(test_members_bounded_in_one_event);
  RUN(test_nomem);
  RUN(test_output_text);
  aigc_json_arena_free(&arena);
  aigc_buf_free(&out);
  return ctest_report("raccum");
}
