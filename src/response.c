/*
** response.c — a request's transfer made into Lua values (response.h):
** result tables, error objects, stream events. An error body's shapes (and
** the other errors made from what a server sent): server_error.c.
**
** Strings a server sent are scrubbed of the client's secrets as they are
** made into an error (and the whole error object is scrubbed again when
** the request ends, request.c).
*/
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "syserr.h"
#include "error.h"
#include "jsonlua.h"
#include "response.h"
#include "retry.h"
#include "server_error.h"

static int is_chat_like (const aigc_request *r) {
  return r->kind == AIGC_KIND_CHAT || r->kind == AIGC_KIND_COMPLETION;
}

/*
** vLLM's error object, {"object": "error", "message", "type", "code"}
** (SGLang and FastChat send it too): what those servers send in place of
** a chunk when a stream fails after its 200 (then [DONE]). It has no
** "error" member, and a chunk of another object is skipped: the server's
** message was lost, the stream said only "incomplete".
*/
static int is_error_object (const aigc_json_value *v) {
  const aigc_json_value *o = aigc_json_get(v, "object");
  return o != NULL && o->type == AIGC_JSON_STRING && o->len == 5 && memcmp(o->u.s, "error", 5) == 0;
}


/*
** {======================================================
** Errors
** =======================================================
*/

void aigc_response_decorate_error (lua_State *L, aigc_request *r) {
  if (aigc_push_request_id(L, r))
    lua_setfield(L, -2, "request_id");
  if (r->status >= 200) {   /* (1xx: "100 Continue" before an upload, no answer yet) */
    if (lua_getfield(L, -1, "status") == LUA_TNIL) {
      lua_pop(L, 1);
      aigc_error_setint(L, "status", (lua_Integer)r->status);
    }
    else
      lua_pop(L, 1);
  }
  aigc_error_setint(L, "retries", r->retries);
  if (r->hdrs.buf.len > 0) {
    aigc_headers_push(L, &r->hdrs);
    lua_setfield(L, -2, "headers");
  }
}

/*
** Lua 5.1-5.3 (limits.lua_hash): whether a stream's accumulated tree floods
** Lua's string hash (json.c). Each event was checked when parsed, but a
** server can add one crafted key an event to one object: 20,000 events made
** the result cost 5 s on Lua 5.3, quadratic. 1 (*what set), 0, -1: no memory.
*/
static int stream_flood (const aigc_request *r, const aigc_json_value *v, const char **what) {
  return r->accum.limits.lua_hash ? aigc_json_flood(v, what) : 0;
}

/*
** A reply's "usage": null (a stream that got no usage chunk, a server that
** counts nothing) is nil in its table t, as the SDKs' None: aigc.null is
** truthy, and `if res.usage then print(res.usage.total_tokens) end` raised.
*/
static void drop_null_usage (lua_State *L, int t) {
  lua_pushliteral(L, "usage");
  lua_rawget(L, t);
  if (lua_type(L, -1) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL) {
    lua_pushliteral(L, "usage");
    lua_pushnil(L);
    lua_rawset(L, t);
  }
  lua_pop(L, 1);
}

/* }====================================================== */


/*
** {======================================================
** Outcomes
** =======================================================
*/

/*
** The content on top, a list of parts (Mistral's Magistral models:
** {"type": "thinking", ...}, then {"type": "text", "text": ...}), replaced
** by the text of its text parts joined; left as it is when it has none.
** Joined in a buffer: concatenating the text so far with each few parts
** copied it again each time, time as the square of the parts (6 s for a
** reply of 160,000 parts, the server's to choose).
*/
static void join_text_parts (lua_State *L) {
  int list = lua_gettop(L), n = 0;
  lua_Integer i;
  luaL_Buffer b;
  if (!lua_checkstack(L, 12))
    return;
  luaL_buffinit(L, &b);
  for (i = 1;; i++) {
    int top = lua_gettop(L);   /* (the buffer's own slots may move it on 5.1) */
    if (lua_rawgeti(L, list, i) == LUA_TNIL) {
      lua_pop(L, 1);
      break;
    }
    if (lua_type(L, -1) == LUA_TTABLE && lua_getfield(L, -1, "type") == LUA_TSTRING
        && strcmp(lua_tostring(L, -1), "text") == 0 && lua_getfield(L, -2, "text") == LUA_TSTRING) {
      lua_replace(L, -3);   /* (the part's slot: the text, right over the buffer) */
      lua_pop(L, 1);
      luaL_addvalue(&b);
      n++;
    }
    else
      lua_settop(L, top);
  }
  luaL_pushresult(&b);
  if (n > 0)
    lua_replace(L, list);
  else
    lua_pop(L, 1);
}

/* The text of choices[1]: message.content for chat, text for completions. */
static void set_text (lua_State *L, int res) {
  if (lua_getfield(L, res, "choices") == LUA_TTABLE
      && lua_rawgeti(L, -1, 1) == LUA_TTABLE) {
    if (lua_getfield(L, -1, "message") == LUA_TTABLE) {
      if (lua_getfield(L, -1, "content") == LUA_TTABLE)
        join_text_parts(L);
      lua_remove(L, -2);
    }
    else {
      lua_pop(L, 1);
      lua_getfield(L, -1, "text");
    }
    if (lua_type(L, -1) == LUA_TSTRING)
      lua_setfield(L, res, "text");
    else
      lua_pop(L, 1);
    lua_pop(L, 2);
    return;
  }
  lua_settop(L, res);
}

/* The fields decorate_result adds (and headers, when read): the table is
   made with room for them (adding them to an exactly sized table rehashed
   it twice). */
#define RESULT_FIELDS 4

/*
** A response's text (the SDKs' output_text: every output_text part of its
** messages, joined) as res.text, and as res.output_text for code written
** for the SDKs; tree is the response as C has it.
*/
static int add_text (void *ud, const char *s, size_t n) {
  luaL_addlstring((luaL_Buffer *)ud, s, n);
  return 0;
}

static void set_output_text (lua_State *L, int res, const aigc_json_value *tree) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  aigc_raccum_output_text(tree, add_text, &b);
  luaL_pushresult(&b);
  lua_pushvalue(L, -1);
  lua_setfield(L, res, "output_text");
  lua_setfield(L, res, "text");
}

/* err.partial of a failed stream: what came, with its text as a result
   has it (res.text; a Responses stream's output_text too), so a script
   keeps the words that arrived with err.partial.text. */
void aigc_response_add_partial (lua_State *L, aigc_request *r) {
  const aigc_json_value *acc;
  const char *what;
  if (r->sse && r->kind == AIGC_KIND_RESPONSES && r->raccum.events > 0) {
    if (stream_flood(r, &r->raccum.root, &what) != 0)
      return;   /* (no partial: the error stands without it) */
    aigc_jsonlua_push(L, &r->raccum.root);
    drop_null_usage(L, lua_gettop(L));
    set_output_text(L, lua_gettop(L), &r->raccum.root);
    lua_setfield(L, -2, "partial");
    return;
  }
  if (!r->sse || r->accum.chunks == 0)
    return;
  acc = aigc_accum_finish(&r->accum);
  if (acc == NULL || stream_flood(r, acc, &what) != 0)
    return;
  aigc_jsonlua_push(L, acc);
  drop_null_usage(L, lua_gettop(L));
  if (r->kind == AIGC_KIND_CHAT || r->kind == AIGC_KIND_COMPLETION)
    set_text(L, lua_gettop(L));
  lua_setfield(L, -2, "partial");
}

/* Adds text (made from tree, unless `has_text`: set already), request_id
   and retries to the result on top, and headers made when first read. */
static void decorate_result_as (lua_State *L, aigc_request *r, const aigc_json_value *tree, int has_text) {
  int res = lua_gettop(L);
  drop_null_usage(L, res);
  if (has_text)
    ;
  else if (r->kind == AIGC_KIND_CHAT || r->kind == AIGC_KIND_COMPLETION)
    set_text(L, res);
  else if (r->kind == AIGC_KIND_RESPONSES)
    set_output_text(L, res, tree);
  if (aigc_push_request_id(L, r))
    lua_setfield(L, res, "request_id");
  aigc_headers_set_lazy(L, &r->hdrs, res);   /* res.headers: made when read */
  lua_pushinteger(L, r->retries);
  lua_setfield(L, res, "retries");
}

static void decorate_result (lua_State *L, aigc_request *r, const aigc_json_value *tree) {
  decorate_result_as(L, r, tree, 0);
}

/*
** The string of a chat or completion reply's tree that set_text would
** read back from its tables as res.text: choices[1].message.content, or
** choices[1].text when message is not a table (the last of a repeated key,
** as in the tables). NULL for anything else (content parts to join, no
** text): set_text then reads the tables.
*/
static const aigc_json_value *text_node (const aigc_request *r, const aigc_json_value *choices) {
  const aigc_json_value *first, *msg, *t;
  if (!is_chat_like(r) || choices->len == 0 || choices->u.items[0].type != AIGC_JSON_OBJECT)
    return NULL;
  first = &choices->u.items[0];
  msg = aigc_json_get(first, "message");
  if (msg != NULL && (msg->type == AIGC_JSON_OBJECT || msg->type == AIGC_JSON_ARRAY))
    t = aigc_json_get(msg, "content");
  else
    t = aigc_json_get(first, "text");
  return t != NULL && t->type == AIGC_JSON_STRING ? t : NULL;
}

/* The result of a plain reply (its tree v) on top: res.text is the string
   kept as its tables were made (a read back through choices, message and
   content, three lua_getfield, cost more: issue 17). */
static void push_reply (lua_State *L, aigc_request *r, const aigc_json_value *v,
                        const aigc_json_value *choices) {
  aigc_jsonlua_push_keep(L, v, RESULT_FIELDS, text_node(r, choices));
  if (lua_type(L, -1) == LUA_TSTRING) {
    lua_setfield(L, -2, "text");
    decorate_result_as(L, r, v, 1);
  }
  else {
    lua_pop(L, 1);
    decorate_result(L, r, v);
  }
}

/*
** The error of an attempt aigc cut short (a limit, a timer): pushes it and
** returns 1; returns 0 when the attempt was not cut short.
*/
static int push_abort_error (lua_State *L, aigc_request *r, int *retryable) {
  char msg[CURL_ERROR_SIZE + 128];
  switch (r->abort_reason) {
    case AIGC_ABORT_DEADLINE:
      snprintf(msg, sizeof msg, "the call's deadline (%g s) passed", r->deadline);
      aigc_error_new(L, "timeout", msg);
      aigc_response_add_partial(L, r);
      return 1;
    case AIGC_ABORT_HEADERS:
      snprintf(msg, sizeof msg, "the response headers are larger than %zu KiB",
               AIGC_MAX_HEADER_BYTES >> 10);
      aigc_error_new(L, "limit", msg);
      return 1;
    case AIGC_ABORT_LIMIT:
      snprintf(msg, sizeof msg, "the response is larger than max_response_bytes (%zu bytes)",
               r->max_bytes);
      aigc_error_new(L, "limit", msg);
      aigc_response_add_partial(L, r);
      return 1;
    case AIGC_ABORT_NOMEM:
      aigc_error_new(L, "limit", "out of memory while receiving the response");
      return 1;
    case AIGC_ABORT_SINK: {
      char eb[AIGC_ERRBUF];
      snprintf(msg, sizeof msg, "could not write %.200s: %s",   /* (a FIFO...: the path itself) */
               r->xb.sink_kind != NULL ? r->xb.path : r->xb.part_path,
               aigc_body_sink_error(&r->xb, eb, sizeof eb));
      aigc_error_new(L, "io", msg);
      return 1;
    }
    case AIGC_ABORT_UPLOAD: {   /* (not retried: the file is as the caller left it) */
      char upmsg[1536];   /* (two paths' worth: the caller's field and its path) */
      aigc_body_upload_error(&r->xb, upmsg, sizeof upmsg);
      aigc_error_new(L, "io", upmsg);
      return 1;
    }
    case AIGC_ABORT_IDLE:
      snprintf(msg, sizeof msg, "no data from the server for %g s (the stream's idle timeout)",
               r->timeout);
      aigc_error_new(L, "timeout", msg);
      aigc_response_add_partial(L, r);
      *retryable = !r->delivered;
      return 1;
    default:
      return 0;
  }
}

/* (headers_too_large) libcurl's HTTP/2 header buffer overflowed: its
   nghttp2 callback failed (-902) while no header had reached aigc yet.
   (CURLINFO_HTTP_VERSION is still 0 then: no response was parsed.) */
static int h2_headers_overflow (const aigc_request *r) {
  return r->curl_code == CURLE_RECV_ERROR && r->received == 0
         && strstr(r->errbuf, "nghttp2_session_mem_recv() returned -902") != NULL;
}

/*
** Whether libcurl failed on headers too big for it, before they ended: its
** CURLE_TOO_LARGE (8.6 on); before, CURLE_OUT_OF_MEMORY, with no text, is
** how it refuses one header line over 100 KB. (The whole section is
** aigc's to refuse first: AIGC_MAX_HEADER_BYTES is below libcurl's limit.)
** Over HTTP/2, libcurl before 8.6 holds a header block in a buffer of
** 128 KiB (DYN_H2_HEADERS) and, when it is full, fails its nghttp2 header
** callback: CURLE_RECV_ERROR, "nghttp2_session_mem_recv() returned
** -902", before aigc saw any header (h2_headers_overflow).
*/
static int headers_too_large (const aigc_request *r) {
  if (r->hdrs.ended)
    return 0;
#if LIBCURL_VERSION_NUM >= 0x080600
  if (r->curl_code == CURLE_TOO_LARGE)
    return 1;
#endif
  return r->curl_code == CURLE_OUT_OF_MEMORY || h2_headers_overflow(r);
}

/*
** Trailers (header lines after a chunked body's last chunk) over libcurl's
** bound: libcurl 7.x fails the transfer as a receive error, "Out of memory
** in chunked-encoding" (8.6 on: CURLE_TOO_LARGE), which read as a
** connection failure, retried (the whole answer again), out of memory.
*/
static int trailers_too_large (const aigc_request *r) {
  if (!r->hdrs.ended)
    return 0;
#if LIBCURL_VERSION_NUM >= 0x080600
  if (r->curl_code == CURLE_TOO_LARGE)
    return 1;
#endif
  return r->curl_code == CURLE_RECV_ERROR && strstr(r->errbuf, "Out of memory in chunked-encoding") != NULL;
}

/*
** A non-2xx answer whose status and headers came whole, and whose body
** then broke (not the gzip it says, cut short, reset): the status decides,
** as for any HTTP error: kind "http", retried only as that status allows
** (a 400 is not sent again because its body broke).
*/
static void push_broken_http_error (lua_State *L, aigc_request *r, const char *detail,
                                    int *retryable) {
  char msg[CURL_ERROR_SIZE + 128];
  const char *ce = aigc_headers_find(&r->hdrs, "content-encoding", NULL);
  if (r->curl_code == CURLE_BAD_CONTENT_ENCODING)
    snprintf(msg, sizeof msg, "; the body could not be decoded (Content-Encoding: %.60s): %s",
             ce ? ce : "?", detail);
  else
    snprintf(msg, sizeof msg, "; the body could not be read whole: %s", detail);
  aigc_server_error_push_http(L, r, r->status);
  lua_getfield(L, -1, "message");
  aigc_error_push_scrubbed(L, msg, strlen(msg), r->secrets);
  lua_concat(L, 2);
  lua_setfield(L, -2, "message");
  *retryable = aigc_retry_status_retryable(r, r->status);
}

/*
** A timeout's text, detail (which may be buf) with the option that ended
** it: libcurl tells only milliseconds, which do not say whether to raise
** `timeout` or `connect_timeout`. Written in buf, returned.
*/
static const char *name_timeout (const aigc_request *r, const char *detail, char *buf,
                                 size_t size) {
  char named[CURL_ERROR_SIZE + 128];
  double connected = 0;
  if (r->easy != NULL)
    curl_easy_getinfo(r->easy, CURLINFO_CONNECT_TIME, &connected);
  if (connected <= 0 && (r->stream || r->connect_timeout < r->timeout))
    snprintf(named, sizeof named, "%.300s (connect_timeout: %g s per attempt)", detail,
             r->connect_timeout);
  else
    snprintf(named, sizeof named, "%.300s (timeout: %g s per attempt)", detail, r->timeout);
  snprintf(buf, size, "%s", named);
  return buf;
}

/* The error of a libcurl failure (r->curl_code != CURLE_OK). */
static void push_curl_error (lua_State *L, aigc_request *r, int *retryable) {
  const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->curl_code);
  char msg[CURL_ERROR_SIZE + 128];
  if (headers_too_large(r)) {
    if (h2_headers_overflow(r))
      snprintf(msg, sizeof msg, "the response headers are too large (libcurl takes at most "
               "128 KiB of HTTP/2 headers): %s", detail);
    else if (r->errbuf[0])
      snprintf(msg, sizeof msg, "the response headers are too large: %s", r->errbuf);
    else if (r->curl_code == CURLE_OUT_OF_MEMORY)   /* (libcurl's word for it: not memory) */
      snprintf(msg, sizeof msg, "the response headers are too large (libcurl takes a header "
               "line of at most 100 KB)");
    else
      snprintf(msg, sizeof msg, "the response headers are too large (libcurl takes a header "
               "line of at most 100 KB): %s", detail);
    aigc_server_error_new(L, r, "limit", msg, strlen(msg));
  }
  else if (r->curl_code == CURLE_OUT_OF_MEMORY) {
    aigc_error_new(L, "limit", "out of memory while receiving the response");
    return;
  }
  else if (r->hdrs.ended && (r->status < 200 || r->status >= 300))
    push_broken_http_error(L, r, detail, retryable);
  else if (trailers_too_large(r)) {   /* (the answer came whole: sending it again gets the same) */
    snprintf(msg, sizeof msg, "the response's trailer lines (after its chunked body) are larger "
             "than libcurl takes");
    aigc_server_error_new(L, r, "limit", msg, strlen(msg));
    if (r->delivered)
      aigc_response_add_partial(L, r);
  }
  else if (r->curl_code == CURLE_BAD_CONTENT_ENCODING && r->status >= 200 && r->status < 300) {
    /* The server answered, and what it sent cannot be decoded (a body
       that is not the gzip it says): not a connection failure, and
       sending the POST again would only get the same. */
    const char *ce = aigc_headers_find(&r->hdrs, "content-encoding", NULL);
    snprintf(msg, sizeof msg, "the response body could not be decoded (Content-Encoding: %s): %s",
             ce ? ce : "?", detail);
    aigc_server_error_new(L, r, "parse", msg, strlen(msg));
  }
  else if (r->delivered) {
    snprintf(msg, sizeof msg, "the stream was interrupted: %s", detail);
    aigc_server_error_new(L, r, "stream", msg, strlen(msg));
    aigc_response_add_partial(L, r);
  }
  else {
    /* Through a proxy, say so: libcurl names only the address it failed
       to reach ("Failed to connect to 10.0.0.1 port 3128"), which for a
       proxy variable left set in a shell names nothing the user chose. */
    const char *via = r->roster != NULL ? r->roster->config.proxy_shown : NULL;
    if (via != NULL && strstr(detail, "proxy") == NULL) {
      snprintf(msg, sizeof msg, "%s (through the proxy %.100s)", detail, via);
      detail = msg;
    }
    if (r->curl_code == CURLE_OPERATION_TIMEDOUT)
      detail = name_timeout(r, detail, msg, sizeof msg);
    aigc_server_error_new(L, r, r->curl_code == CURLE_OPERATION_TIMEDOUT ? "timeout" : "connect",
                          detail, strlen(detail));
    /* A ca_file that holds no certificate (or cannot be read) fails every
       attempt the same way, before any byte is sent: not retried. */
    *retryable = r->curl_code != CURLE_SSL_CACERT_BADFILE;
  }
  aigc_error_setint(L, "curl_code", (lua_Integer)r->curl_code);
}

/*
** OpenRouter ends a reply whose model (or provider) failed mid-way with a
** choice whose finish_reason is "error" -- the error object at the top
** (read as any "error" member), in the choice, or none at all: the cut
** text was a success. Pushes that error (kind "api"; what came, v, as
** err.partial) and returns 1, else 0.
*/
static int push_error_choice (lua_State *L, aigc_request *r, const aigc_json_value *v) {
  const aigc_json_value *ch = aigc_json_get(v, "choices");
  size_t i;
  if (!is_chat_like(r) || ch == NULL || ch->type != AIGC_JSON_ARRAY)
    return 0;
  for (i = 0; i < ch->len; i++) {
    const aigc_json_value *fr = aigc_json_get(&ch->u.items[i], "finish_reason");
    const aigc_json_value *e = aigc_json_get(&ch->u.items[i], "error");
    if (fr == NULL || fr->type != AIGC_JSON_STRING || fr->len != 5 || memcmp(fr->u.s, "error", 5) != 0)
      continue;
    aigc_error_new(L, "api", "the reply broke off: the server ended it with finish_reason \"error\" "
                   "(the model or its provider failed mid-reply)");
    if (e != NULL && e->type == AIGC_JSON_OBJECT) {
      aigc_server_error_copy_member(L, r, e, "message");
      aigc_server_error_copy_member(L, r, e, "code");
    }
    aigc_jsonlua_push(L, v);
    drop_null_usage(L, lua_gettop(L));
    lua_setfield(L, -2, "partial");
    return 1;
  }
  return 0;
}

/*
** A Responses stream that ended: the response when response.completed or
** response.incomplete came (response.failed failed the request at its
** event), else kind "stream" with what had come as err.partial.
*/
static int push_responses_outcome (lua_State *L, aigc_request *r) {
  const char *what;
  int flood;
  if (r->raccum.end == AIGC_RACCUM_PENDING) {
    aigc_error_new(L, "stream", r->raccum.events == 0
                   ? "the stream was incomplete: it ended before any event"
                   : "the stream was incomplete: it ended before response.completed");
    aigc_response_add_partial(L, r);
    return 0;
  }
  if ((flood = stream_flood(r, &r->raccum.root, &what)) != 0) {
    if (flood < 0)
      aigc_error_new(L, "limit", "out of memory while accumulating the stream");
    else
      aigc_error_json_limit(L, "the streamed response", what);
    return 0;
  }
  aigc_jsonlua_push_room(L, &r->raccum.root, RESULT_FIELDS);
  decorate_result(L, r, &r->raccum.root);
  return 1;
}

/* The choices the request asked for: its "n" (1 when it has none), times
   a completion's prompts when it sent a list of them (when its body cannot
   be read: more than any reply has). Plain C. */
static int64_t asked_choices (const aigc_request *r) {
  aigc_json_arena arena;
  aigc_json_value v;
  aigc_json_error err;
  const aigc_json_value *n, *p;
  int64_t asked = INT64_MAX;
  aigc_json_arena_init(&arena);
  if (r->body.len > 0 && aigc_json_parse(&arena, r->body.data, r->body.len, 0, &v, &err) == AIGC_JSON_OK) {
    n = aigc_json_get(&v, "n");   /* (over 128: more than a stream's choices can be) */
    asked = n != NULL && n->type == AIGC_JSON_INT && n->u.i > 1 ? (n->u.i > 128 ? 129 : n->u.i) : 1;
    p = aigc_json_get(&v, "prompt");
    if (p != NULL && p->type == AIGC_JSON_ARRAY && p->len > 0
        && (p->u.items[0].type == AIGC_JSON_STRING || p->u.items[0].type == AIGC_JSON_ARRAY))
      asked *= (int64_t)p->len;   /* (a list of token ids is one prompt) */
  }
  aigc_json_arena_free(&arena);
  return asked;
}

/*
** A chat or completion stream without [DONE] that is whole all the same,
** for a client made with require_done = false: its body ended well (no
** error from the connection, not inside an event) after every choice got
** its finish_reason. Hugging Face TGI before 2.2 ends every stream so (the
** SDKs read to the end of any body and ask for no [DONE]). By default such
** a stream is reported, never accepted silently (REFERENCE.md's rule: a
** proxy that closes cleanly before the usage chunk, or a server that ends
** early between events, is not taken for a whole reply). A stream cut
** before a finish_reason, or before every choice the request asked for (n)
** began, stays incomplete either way.
*/
static int ended_without_done (aigc_request *r) {
  const aigc_json_value *choices = aigc_json_get(&r->accum.root, "choices");
  size_t i;
  if (r->roster == NULL || !r->roster->config.done_optional || !r->eof_clean || !is_chat_like(r)
      || choices == NULL || choices->type != AIGC_JSON_ARRAY
      || choices->len == 0)
    return 0;
  for (i = 0; i < choices->len; i++) {   /* ("": some servers' "not yet") */
    const aigc_json_value *fr = aigc_json_get(&choices->u.items[i], "finish_reason");
    if (fr == NULL || fr->type != AIGC_JSON_STRING || fr->len == 0)
      return 0;
  }
  return (int64_t)choices->len >= asked_choices(r);
}

/* A stream that ended: its accumulated reply, or why it is incomplete. */
static int push_stream_outcome (lua_State *L, aigc_request *r) {
  const aigc_json_value *acc;
  const char *what;
  int flood = 0;
  if (r->kind == AIGC_KIND_RESPONSES)
    return push_responses_outcome(L, r);
  acc = aigc_accum_finish(&r->accum);
  if (acc == NULL || (flood = stream_flood(r, acc, &what)) < 0)
    aigc_error_new(L, "limit", "out of memory while accumulating the stream");
  else if (flood)   /* (no partial: it is the flood) */
    aigc_error_json_limit(L, "the streamed reply", what);
  else if (!r->saw_done && !ended_without_done(r)) {
    aigc_error_new(L, "stream", "the stream was incomplete: it ended before [DONE]");
    aigc_response_add_partial(L, r);
  }
  else if (is_chat_like(r) && aigc_accum_incomplete(&r->accum)) {
    aigc_error_new(L, "stream", r->accum.chunks == 0
                   ? "the stream was incomplete: [DONE] came before any choice"
                   : "the stream was incomplete: a choice has no finish_reason");
    aigc_response_add_partial(L, r);
  }
  else if (!push_error_choice(L, r, acc)) {
    aigc_jsonlua_push_room(L, acc, RESULT_FIELDS);
    decorate_result(L, r, acc);
    return 1;
  }
  return 0;
}

/* Whether a JSON value is present and true as the SDKs take an "error"
   (Python's truth: not null, false, 0, "", [] or {}; servers that fill
   every chunk's "error" with "" or {} send no error). */
static int truthy (const aigc_json_value *v) {
  if (v == NULL)
    return 0;
  switch (v->type) {
    case AIGC_JSON_NULL: case AIGC_JSON_FALSE: return 0;
    case AIGC_JSON_INT: return v->u.i != 0;
    case AIGC_JSON_FLOAT: return v->u.d != 0;
    case AIGC_JSON_STRING: case AIGC_JSON_ARRAY: case AIGC_JSON_OBJECT: return v->len > 0;
    default: return 1;
  }
}

/* A 2xx body read whole: the result, or why it is not one. */
static int push_body_outcome (lua_State *L, aigc_request *r) {
  aigc_json_value v;
  aigc_json_error perr;
  const aigc_json_value *choices = NULL;   /* (set where is_chat_like: gcc cannot see it) */
  int rc;
  aigc_roster_take_arena(r->roster, &r->arena);   /* (the last reply's block) */
  aigc_json_arena_reset(&r->arena);
  rc = aigc_json_parse(&r->arena, r->resp.data ? r->resp.data : "", r->resp.len,
                       AIGC_JSON_DEFAULT_MAX_DEPTH, &v, &perr);
  if (rc == AIGC_JSON_ENOMEM)
    aigc_error_new(L, "limit", "out of memory while parsing the response");
  else if (rc == AIGC_JSON_ELIMIT)   /* max_json_values / containers */
    aigc_error_json_limit(L, "the response", perr.message);
  else if (rc != AIGC_JSON_OK) {
    char msg[200];
    if (r->resp.len == 0)
      snprintf(msg, sizeof msg, "the response body is empty (HTTP %ld)", r->status);
    else
      snprintf(msg, sizeof msg, "the response is not valid JSON (at byte %zu: %s)",
               perr.offset + 1, perr.message);   /* (bytes counted from 1, as everywhere) */
    aigc_error_new(L, "parse", msg);
    if (r->resp.len > 0)
      aigc_server_error_set_body(L, r, r->resp.data, r->resp.len);
  }
  else if (v.type != AIGC_JSON_OBJECT)
    aigc_error_new(L, "parse", "the response is not a JSON object");
  else if (truthy(aigc_json_get(&v, "error")) || (is_chat_like(r) && is_error_object(&v)))
    aigc_server_error_push(L, r, "api", &v, "the server returned an error");
  else if (is_chat_like(r) && ((choices = aigc_json_get(&v, "choices")) == NULL
                               || choices->type != AIGC_JSON_ARRAY))
    aigc_error_new(L, "parse", choices == NULL ? "the response has no choices"
                                               : "the response's choices is not an array");
  else if (is_chat_like(r) && choices->len == 0) {
    /* "choices": [] (Gemini's OpenAI layer when its safety filter drops
       the candidates; a gateway's usage-only reply): no reply, as a stream
       with none is incomplete. The body, its usage or filter results, is
       err.partial. */
    aigc_error_new(L, "parse", "the response has no choices (an empty list: a content filter "
                   "may have dropped them)");
    aigc_jsonlua_push(L, &v);
    drop_null_usage(L, lua_gettop(L));
    lua_setfield(L, -2, "partial");
  }
  else if (!push_error_choice(L, r, &v)) {
    push_reply(L, r, &v, choices);
    return 1;
  }
  return 0;
}

/*
** A 2xx reply that is not JSON (body.h): { body = bytes } (the "bytes"
** sink), { path =, bytes = n } (a file, renamed into place now), or
** { bytes = n } (chunks, already delivered); with content_type.
*/
static int push_sink_outcome (lua_State *L, aigc_request *r) {
  const char *ct;
  if (r->xb.sink == AIGC_SINK_FILE && !r->xb.sink_diverted && aigc_body_commit(&r->xb) != 0) {
    char msg[1024], eb[AIGC_ERRBUF];
    snprintf(msg, sizeof msg, "could not write %.700s: %s", r->xb.path,
             aigc_body_sink_error(&r->xb, eb, sizeof eb));
    aigc_error_new(L, "io", msg);
    return 0;
  }
  lua_createtable(L, 0, 3 + RESULT_FIELDS);
  /* (r is pinned while it is delivered: its buffers stay where they are) */
  if (r->xb.sink == AIGC_SINK_BYTES || (r->xb.sink_diverted && !r->xb.events_raw)) {   /* (diverted:
       no file made; events_raw: its chunks were delivered) */
    lua_pushlstring(L, r->resp.data ? r->resp.data : "", r->resp.len);
    lua_setfield(L, -2, "body");
  }
  else if (r->xb.sink == AIGC_SINK_FILE) {
    lua_pushstring(L, r->xb.path);
    lua_setfield(L, -2, "path");
  }
  lua_pushinteger(L, (lua_Integer)r->received);
  lua_setfield(L, -2, "bytes");
  ct = aigc_headers_find(&r->hdrs, "content-type", NULL);
  if (ct != NULL) {
    lua_pushstring(L, ct);
    lua_setfield(L, -2, "content_type");
  }
  decorate_result(L, r, NULL);
  return 1;
}

/* A stream of typed events that ended: the last event is the result
   (whether it is the one that says "complete" is for the Lua layer). */
static int push_events_outcome (lua_State *L, aigc_request *r) {
  aigc_json_value v;
  aigc_json_error perr;
  size_t max_values = r->arena.limits.max_values;
  int rc;
  aigc_json_arena_reset(&r->arena);
  if (r->resp.len == 0) {
    aigc_error_new(L, "stream", "the stream ended before any event");
    return 0;
  }
  if (max_values > 0)   /* (parsed once already: the "type" keep_last_event added counts nothing) */
    r->arena.limits.max_values = max_values + 1;
  rc = aigc_json_parse(&r->arena, r->resp.data, r->resp.len, AIGC_JSON_DEFAULT_MAX_DEPTH, &v, &perr);
  r->arena.limits.max_values = max_values;
  if (rc != AIGC_JSON_OK) {
    aigc_error_new(L, "limit", "out of memory while parsing the last stream event");
    return 0;
  }
  aigc_jsonlua_push_room(L, &v, RESULT_FIELDS);
  decorate_result(L, r, &v);
  return 1;
}

/*
** Pushes s[0..n) for a message: runs of whitespace as one space, other
** control bytes and every byte >= 0x7F as \xHH (the cut may split a UTF-8
** character), at most `max` bytes shown, then scrubbed (a secret the cut
** splits ends the text: it is caught). Sets *cut when bytes were left out.
*/
static void push_escaped (lua_State *L, aigc_request *r, const char *s, size_t n, size_t max,
                          int *cut) {
  char out[4 * 128 + 8];
  size_t i, o = 0;
  int space = 0;
  if (max > 128)
    max = 128;
  for (i = 0; i < n && i < max; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      space = o > 0;
      continue;
    }
    if (space)
      out[o++] = ' ';
    space = 0;
    if (c < 0x20 || c >= 0x7F)
      o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02X", c);
    else
      out[o++] = (char)c;
  }
  *cut = i < n;
  aigc_error_push_scrubbed(L, out, o, r->secrets);
}

/*
** A stream answered 2xx whose body held no event, and that did not say
** text/event-stream: a captive portal's page, a proxy's, a server that
** does not stream. Kind "parse" saying what came (its content type, its
** first bytes), not "incomplete", which reads like a cut connection;
** err.body: the first bytes (r->head), scrubbed.
*/
static void push_not_event_stream (lua_State *L, aigc_request *r) {
  const char *ct = aigc_headers_find(&r->hdrs, "content-type", NULL);
  int cut;
  aigc_error_new(L, "parse", "");
  if (ct != NULL) {
    lua_pushliteral(L, "the server answered a stream with Content-Type ");
    aigc_error_push_scrubbed(L, ct, strlen(ct) > 100 ? 100 : strlen(ct), r->secrets);
    lua_pushliteral(L, ", not text/event-stream: ");
  }
  else {
    lua_pushliteral(L, "the server answered a stream with no Content-Type and no event: ");
    lua_pushliteral(L, "");
    lua_pushliteral(L, "");
  }
  push_escaped(L, r, r->head, r->head_len, 120, &cut);
  if (cut)
    lua_pushliteral(L, "...");
  else
    lua_pushliteral(L, "");
  lua_concat(L, 5);
  lua_setfield(L, -2, "message");
  aigc_server_error_set_body(L, r, r->head, r->head_len);
}

/* Whether the response said it is an event stream. */
static int says_event_stream (const aigc_request *r) {
  const char *ct = aigc_headers_find(&r->hdrs, "content-type", NULL);
  return aigc_body_type_has(ct, "event-stream");
}

/* A UTF-8 byte order mark before a JSON body (a Windows server's, a
   proxy's) is no part of the JSON: dropped, as both SDKs' decoders do
   (httpx's .json() reads bytes as utf-8-sig; fetch's .json() strips it).
   Bodies kept as bytes (downloads) are never looked at. After blanks too
   (keep-alives before the reply): the blanks stay, JSON's own. */
static void drop_bom (aigc_buf *b) {
  size_t i = 0;
  while (i < b->len && (b->data[i] == ' ' || b->data[i] == '\n' || b->data[i] == '\r' || b->data[i] == '\t'))
    i++;
  if (b->len - i >= 3 && memcmp(b->data + i, "\xEF\xBB\xBF", 3) == 0) {
    memmove(b->data + i, b->data + i + 3, b->len - i - 3);
    b->len -= 3;
  }
}

/*
** A 417 to "Expect: 100-continue" that came only after libcurl's 1 s wait,
** when a reader's bytes were sent and gone: the error (on top) says why the
** request was not sent again without it (retry.c), and how to avoid it.
*/
static void explain_late_expect (lua_State *L, const aigc_request *r) {
  char why[240];
  snprintf(why, sizeof why, ": the server refused \"Expect: 100-continue\" after the upload's reader gave "
           "%lu bytes (it answered after libcurl's 1 s wait), which cannot be read again, so the request "
           "was not sent again; headers = { Expect = \"\" } sends without asking", (unsigned long)r->xb.fed);
  if (lua_getfield(L, -1, "message") != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "HTTP status 417");
  }
  lua_pushstring(L, why);
  lua_concat(L, 2);
  lua_setfield(L, -2, "message");
}

/*
** A 2xx status line, maybe some header lines, then the connection closed
** before the blank line that ends them (a proxy's or a dying server's cut):
** libcurl calls that done. It was "the response body is empty" (kind parse,
** never retried) or a stream that "ended before [DONE]": it is a dropped
** connection, kind connect, retried as one.
*/
static void push_headers_cut (lua_State *L, aigc_request *r, int *retryable) {
  char msg[120];
  snprintf(msg, sizeof msg, "the connection closed before the response headers ended (after "
           "\"HTTP %ld\")", r->status);
  aigc_server_error_new(L, r, "connect", msg, strlen(msg));
  *retryable = 1;
}

int aigc_response_outcome (lua_State *L, aigc_request *r, int *retryable) {
  int ok = 0;
  *retryable = 0;
  if (!r->mode_decided && r->xb.events_audio && r->status >= 200 && r->status < 300
      && aigc_body_is_audio_type(aigc_headers_find(&r->hdrs, "content-type", NULL)))
    r->xb.sink_diverted = r->xb.events_raw = 1;   /* (no byte came: empty audio, body.h) */
  /* A stream answered 2xx text/event-stream that ended before its first
     byte (a proxy's or a crashed worker's cut): an event stream that ended
     before [DONE], kind "stream" as a Responses stream with no event is,
     not "the response body is empty" (kind "parse", a JSON reply's). */
  if (!r->mode_decided && r->stream && r->status >= 200 && r->status < 300 && says_event_stream(r))
    r->sse = 1;
  if (push_abort_error(L, r, retryable))
    ;
  else if (r->curl_code != CURLE_OK)
    push_curl_error(L, r, retryable);
  else if (!r->hdrs.ended && !r->mode_decided && r->status >= 200 && r->status < 300)
    push_headers_cut(L, r, retryable);
  else if (r->status < 200 || r->status >= 300) {
    drop_bom(&r->resp);
    aigc_server_error_push_http(L, r, r->status);
    *retryable = aigc_retry_status_retryable(r, r->status);
    if (aigc_retry_refused_expect_late(r))
      explain_late_expect(L, r);
  }
  else if (r->sse && !r->sse_events && !says_event_stream(r))
    push_not_event_stream(L, r);
  else if (r->sse && r->xb.sink == AIGC_SINK_EVENTS)
    ok = push_events_outcome(L, r);
  else if (r->sse)
    ok = push_stream_outcome(L, r);
  else if ((r->xb.sink != AIGC_SINK_JSON && r->xb.sink != AIGC_SINK_EVENTS) || r->xb.sink_diverted)
    ok = push_sink_outcome(L, r);   /* (events answered in one JSON piece: as JSON) */
  else {
    drop_bom(&r->resp);
    ok = push_body_outcome(L, r);
  }
  if (!ok)
    aigc_response_decorate_error(L, r);
  return ok;
}

/* }====================================================== */


/*
** {======================================================
** Stream events
** =======================================================
*/

/*
** The text delta of a chunk for the stream callback: choice 0's
** delta.content (chat) or text (completions). Choice 0 is the one with
** "index": 0 (or no index), wherever it sits in "choices": with n > 1 a
** server sends each choice's pieces in chunks of their own, and a
** one-parameter callback must not get the choices' words interleaved.
*/
static const aigc_json_value *chunk_delta (const aigc_json_value *chunk, aigc_kind kind) {
  const aigc_json_value *choices = aigc_json_get(chunk, "choices"), *c = NULL, *d;
  size_t i;
  if (choices == NULL || choices->type != AIGC_JSON_ARRAY)
    return NULL;
  for (i = 0; i < choices->len && c == NULL; i++) {
    const aigc_json_value *idx = aigc_json_get(&choices->u.items[i], "index");
    if (idx == NULL || (idx->type == AIGC_JSON_INT && idx->u.i == 0))
      c = &choices->u.items[i];
  }
  if (c == NULL)
    return NULL;
  if (kind == AIGC_KIND_COMPLETION)
    d = aigc_json_get(c, "text");
  else {
    d = aigc_json_get(c, "delta");
    d = d ? aigc_json_get(d, "content") : NULL;
    if (d != NULL && d->type == AIGC_JSON_ARRAY)
      return d;   /* (a list of parts: Mistral's Magistral models) */
  }
  return (d != NULL && d->type == AIGC_JSON_STRING) ? d : NULL;
}

/* The text of a delta's list of content parts, its "text" parts joined
   (a thinking part is not text); nil when it has none. */
static void push_parts_text (lua_State *L, const aigc_json_value *parts) {
  luaL_Buffer b;
  size_t i;
  int any = 0;
  luaL_buffinit(L, &b);
  for (i = 0; i < parts->len; i++) {
    const aigc_json_value *t = aigc_json_get(&parts->u.items[i], "type");
    const aigc_json_value *text = aigc_json_get(&parts->u.items[i], "text");
    if (t != NULL && t->type == AIGC_JSON_STRING && t->len == 4 && memcmp(t->u.s, "text", 4) == 0
        && text != NULL && text->type == AIGC_JSON_STRING) {
      luaL_addlstring(&b, text->u.s, text->len);
      any = 1;
    }
  }
  luaL_pushresult(&b);
  if (!any) {
    lua_pop(L, 1);
    lua_pushnil(L);
  }
}

/* An "error" event: the server's error object, or its text. */
static void push_error_event (lua_State *L, aigc_request *r, int parsed,
                              const aigc_json_value *chunk, const char *data, size_t dlen) {
  if (parsed && chunk->type == AIGC_JSON_OBJECT) {
    /* (the Responses API's: message, code, param at the top) */
    aigc_server_error_push(L, r, "api", chunk, "the server sent an error event");
    if (r->kind == AIGC_KIND_RESPONSES)
      aigc_response_add_partial(L, r);
  }
  else {
    aigc_server_error_new(L, r, "stream", data, dlen > 500 ? 500 : dlen);
    if (dlen == 0) {
      lua_pushliteral(L, "the server sent an error event");
      lua_setfield(L, -2, "message");
    }
  }
}

/* Merges a parsed chunk; pushes an error on failure (returns 0). */
static int merge_chunk (lua_State *L, aigc_request *r, const aigc_json_value *chunk) {
  int rc = aigc_accum_add(&r->accum, chunk);
  if (rc == AIGC_ACCUM_OK)
    return 1;
  if (rc == AIGC_ACCUM_NOMEM)
    aigc_error_new(L, "limit", "out of memory while accumulating the stream");
  else if (rc == AIGC_ACCUM_LIMIT)
    aigc_error_json_limit(L, "the streamed reply", r->accum.error);
  else {
    char msg[160];
    snprintf(msg, sizeof msg, "unexpected stream chunk: %s", r->accum.error);
    aigc_error_new(L, "parse", msg);
  }
  return 0;
}

/* Whether a Responses event type is one of the API's "response." types
   (response.failed aside, and a server's "response.error": their error
   ends the stream whatever its shape). */
static int api_event (const char *t, size_t len) {
  return t != NULL && len > 9 && memcmp(t, "response.", 9) == 0
         && !(len == 15 && memcmp(t, "response.failed", 15) == 0)
         && !(len == 14 && memcmp(t, "response.error", 14) == 0);
}

/*
** A Responses stream event (parsed into *ev), merged by the C accumulator:
** every event is delivered, unknown ones too; response.failed, "error"
** events and untyped events with an "error" member fail the request (kind "api"),
** a sequence_number gap or step back too (kind "stream"), all with
** err.partial. The API's own failure events (response.failed, "error")
** reach the callback first, as the SDKs' stream iterators yield them
** before they raise; a proxy's untyped {"error": ...} is no event.
*/
static int responses_event (lua_State *L, aigc_request *r, const char *type, size_t tlen,
                            const aigc_json_value *ev) {
  size_t len;
  const char *t = aigc_raccum_event_type(ev, type, tlen, &len);
  int rc;
  if ((len == 5 && memcmp(t, "error", 5) == 0) || (tlen == 5 && memcmp(type, "error", 5) == 0)) {
    push_error_event(L, r, 1, ev, NULL, 0);
    return AIGC_EVENT_FAILED;
  }
  if (truthy(aigc_json_get(ev, "error")) && !api_event(t, len)) {
    /* No event of the API has an "error" member (a proxy's mid-stream
       {"error": {...}}): the server's error, as in a chat stream. An
       event of the API's own "response." types (one of a later version,
       say a tool call's failure) is not a proxy's: it is passed on. */
    aigc_server_error_push(L, r, "api", ev, "the server sent an error in the stream");
    aigc_response_add_partial(L, r);
    return AIGC_EVENT_ERROR;
  }
  rc = aigc_raccum_add(&r->raccum, type, tlen, ev);
  if (rc == AIGC_RACCUM_OK && r->raccum.end == AIGC_RACCUM_FAILED) {
    const aigc_json_value *resp = aigc_json_get(ev, "response");
    aigc_server_error_push(L, r, "api", resp, "the response failed (response.failed)");
    aigc_response_add_partial(L, r);
    return AIGC_EVENT_FAILED;
  }
  if (rc == AIGC_RACCUM_OK) {
    r->delivered = 1;
    return AIGC_EVENT_CHUNK;
  }
  if (rc == AIGC_RACCUM_NOMEM)
    aigc_error_new(L, "limit", "out of memory while accumulating the stream");
  else if (rc == AIGC_RACCUM_LIMIT)
    aigc_error_json_limit(L, "the streamed response", r->raccum.error);
  else {
    /* (the event's type, which the server wrote: bounded, scrubbed) */
    char msg[300];
    snprintf(msg, sizeof msg, "%s (%.*s): %s", rc == AIGC_RACCUM_SEQUENCE
             ? "the stream lost its order" : "unexpected stream event",
             t != NULL ? (int)aigc_server_error_quote_len(r, t, len, 80) : 7, t != NULL ? t : "no type",
             r->raccum.error);
    aigc_server_error_new(L, r, rc == AIGC_RACCUM_SEQUENCE ? "stream" : "parse", msg, strlen(msg));
  }
  aigc_response_add_partial(L, r);
  return AIGC_EVENT_ERROR;
}

int aigc_response_event (lua_State *L, aigc_request *r, const char *type, size_t tlen,
                         const char *data, size_t dlen, aigc_json_value *chunk) {
  aigc_json_error perr;
  size_t before;
  int rc;
  if (r->kind == AIGC_KIND_CHAT && !r->want_chunk && !(tlen == 5 && memcmp(type, "error", 5) == 0)) {
    /* The common chunk, merged from its bytes (accum_scan.c): no tree. A
       callback that takes only the text gets it as the tree would give it. */
    const char *text;
    size_t text_len;
    if (aigc_accum_scan(&r->accum, data, dlen, &text, &text_len)) {
      chunk->type = text != NULL ? AIGC_JSON_STRING : AIGC_JSON_NULL;
      chunk->len = text_len;
      chunk->cap = 0;
      chunk->u.s = (char *)(uintptr_t)text;   /* (in r->accum: read before any allocation) */
      r->delivered = 1;
      return AIGC_EVENT_CHUNK;
    }
  }
  aigc_roster_take_arena(r->roster, &r->arena);   /* (the last reply's block: once a stream) */
  aigc_json_arena_reset(&r->arena);
  rc = aigc_json_parse(&r->arena, data, dlen, AIGC_JSON_DEFAULT_MAX_DEPTH, chunk, &perr);
  if (rc == AIGC_JSON_ENOMEM || rc == AIGC_JSON_ELIMIT) {
    if (rc == AIGC_JSON_ELIMIT)   /* max_json_values / containers */
      aigc_error_json_limit(L, "a stream event", perr.message);
    else
      aigc_error_new(L, "limit", "out of memory while parsing a stream event");
    return AIGC_EVENT_ERROR;
  }
  if (tlen == 5 && memcmp(type, "error", 5) == 0
      && !(r->kind == AIGC_KIND_RESPONSES && rc == AIGC_JSON_OK && chunk->type == AIGC_JSON_OBJECT)) {
    push_error_event(L, r, rc == AIGC_JSON_OK, chunk, data, dlen);
    return AIGC_EVENT_ERROR;
  }
  if (rc != AIGC_JSON_OK) {
    char msg[200];
    snprintf(msg, sizeof msg, "a stream event is not valid JSON (at byte %zu: %s)",
             perr.offset + 1, perr.message);   /* (bytes counted from 1) */
    aigc_error_new(L, "parse", msg);
    aigc_server_error_set_body(L, r, data, dlen);
    return AIGC_EVENT_ERROR;
  }
  if (r->kind == AIGC_KIND_RESPONSES)
    return responses_event(L, r, type, tlen, chunk);
  if (truthy(aigc_json_get(chunk, "error")) || is_error_object(chunk)) {
    aigc_server_error_push(L, r, "api", chunk, "the server sent an error in the stream");
    return AIGC_EVENT_ERROR;
  }
  before = r->accum.chunks;
  if (!merge_chunk(L, r, chunk))
    return AIGC_EVENT_ERROR;
  if (r->accum.chunks == before)
    return AIGC_EVENT_SKIP;   /* skipped (an Azure content-filter event) */
  r->delivered = 1;
  return AIGC_EVENT_CHUNK;
}

/*
** Keeps a typed event as the reply so far (r->resp is unused by a stream):
** its data, with the SSE event's name as its "type" when it has none, as
** the callback gets it (the result is read from here: a transcription's
** transcript.text.done named only by its "event:" line is the result).
*/
static int keep_last_event (aigc_request *r, const aigc_json_value *ev, const char *type, size_t tlen,
                            const char *data, size_t dlen) {
  const char *brace = (const char *)memchr(data, '{', dlen);
  aigc_buf_clear(&r->resp);
  if (tlen > 0 && aigc_json_get(ev, "type") == NULL && brace != NULL
      && aigc_json_utf8_valid(type, tlen, NULL)) {
    brace++;
    return aigc_buf_append(&r->resp, "{\"type\":", 8) != 0
           || aigc_json_write_string(&r->resp, type, tlen, NULL) != 0
           || (ev->len > 0 && aigc_buf_append(&r->resp, ",", 1) != 0)
           || aigc_buf_append(&r->resp, brace, dlen - (size_t)(brace - data)) != 0 ? -1 : 0;
  }
  return aigc_buf_append(&r->resp, data, dlen);
}

int aigc_response_typed_event (lua_State *L, aigc_request *r, const char *type, size_t tlen,
                               const char *data, size_t dlen) {
  aigc_json_value ev;
  aigc_json_error perr;
  int rc;
  aigc_roster_take_arena(r->roster, &r->arena);
  aigc_json_arena_reset(&r->arena);
  rc = aigc_json_parse(&r->arena, data, dlen, AIGC_JSON_DEFAULT_MAX_DEPTH, &ev, &perr);
  if (rc == AIGC_JSON_ENOMEM)
    aigc_error_new(L, "limit", "out of memory while parsing a stream event");
  else if (rc == AIGC_JSON_ELIMIT)
    aigc_error_json_limit(L, "a stream event", perr.message);
  else if (tlen == 5 && memcmp(type, "error", 5) == 0)
    push_error_event(L, r, rc == AIGC_JSON_OK, &ev, data, dlen);
  else if (rc != AIGC_JSON_OK || ev.type != AIGC_JSON_OBJECT) {
    aigc_error_new(L, "parse", "a stream event is not a JSON object");
    aigc_server_error_set_body(L, r, data, dlen);
  }
  else if (truthy(aigc_json_get(&ev, "error")))
    aigc_server_error_push(L, r, "api", &ev, "the server sent an error in the stream");
  else {
    if (keep_last_event(r, &ev, type, tlen, data, dlen) != 0) {
      aigc_error_new(L, "limit", "out of memory while keeping a stream event");
      return AIGC_EVENT_ERROR;
    }
    r->delivered = 1;   /* the callback has it: never retried from here */
    aigc_jsonlua_push_room(L, &ev, 1);
    if (aigc_json_get(&ev, "type") == NULL && tlen > 0) {
      lua_pushlstring(L, type, tlen);   /* (type is in `draining`: pinned) */
      lua_setfield(L, -2, "type");
    }
    return AIGC_EVENT_CHUNK;
  }
  return AIGC_EVENT_ERROR;
}

/* A Responses event's text delta: "delta" of response.output_text.delta
   (the type as the accumulator reads it: the "type" member, else the SSE
   event's name). */
static const aigc_json_value *event_delta (const aigc_json_value *ev, const char *type, size_t tlen) {
  static const char name[] = "response.output_text.delta";
  size_t len;
  const char *t = aigc_raccum_event_type(ev, type, tlen, &len);
  const aigc_json_value *d;
  if (t == NULL || len != sizeof name - 1 || memcmp(t, name, sizeof name - 1) != 0)
    return NULL;
  d = aigc_json_get(ev, "delta");
  return (d != NULL && d->type == AIGC_JSON_STRING) ? d : NULL;
}

int aigc_response_push_delta (lua_State *L, aigc_request *r, const aigc_json_value *chunk,
                              const char *type, size_t tlen) {
  const aigc_json_value *delta, *usage;
  if (r->kind == AIGC_KIND_CHAT && chunk->type != AIGC_JSON_OBJECT) {   /* merged by accum_scan */
    if (chunk->type == AIGC_JSON_STRING)
      lua_pushlstring(L, chunk->u.s, chunk->len);
    else
      lua_pushnil(L);
    return 1;
  }
  delta = r->kind == AIGC_KIND_RESPONSES ? event_delta(chunk, type, tlen) : chunk_delta(chunk, r->kind);
  if (delta != NULL && delta->type == AIGC_JSON_ARRAY)
    push_parts_text(L, delta);
  else if (delta != NULL)
    lua_pushlstring(L, delta->u.s, delta->len);
  else
    lua_pushnil(L);
  if (!r->want_chunk)
    return 1;
  usage = aigc_json_get(chunk, "usage");
  aigc_jsonlua_push(L, chunk);
  /* include_usage (sent by default) puts "usage": null in every chunk
     but the last: leave it out, so that `if chunk.usage then` works. */
  if (usage != NULL && usage->type == AIGC_JSON_NULL) {
    lua_pushnil(L);
    lua_setfield(L, -2, "usage");
  }
  return 2;
}

/* }====================================================== */
