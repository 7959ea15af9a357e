/*
** server_error.c — what a server sent as an error made into an error
** object (server_error.h): an error body of any provider's shape (OpenAI's
** {"error": {...}}, Gemini's list, Ollama's and TGI's strings, vLLM's bare
** object, FastAPI's detail list, KoboldCpp's detail object, Cloudflare's
** errors list, Azure's filtered choice), an "error" stream event, a
** redirect, a page that is not JSON.
**
** Strings a server sent are scrubbed of the client's secrets as they are
** made into an error (and the whole error object is scrubbed again when
** the request ends, request.c).
*/
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "jsonlua.h"
#include "server_error.h"
#include "utf8.h"

/* Kept bodies and echoed data: at most this many bytes in an error. */
#define KEPT_BODY_MAX 65536

/*
** How many bytes of s[0..len) to quote when at most max are, cut at a
** character (aigc_utf8_cut), when more text follows: a secret the cut splits
** would not end the message, so the scrub (pieces of 12 bytes, or a cut
** start at the very end) would miss 8 to 11 bytes of it: left out.
*/
size_t aigc_server_error_quote_len (aigc_request *r, const char *s, size_t len, size_t max) {
  return len <= max ? len : aigc_secrets_cut(r->secrets, s, aigc_utf8_cut(s, len, max));
}

/* Pushes a new error whose message is built from a server string, scrubbed. */
void aigc_server_error_new (lua_State *L, aigc_request *r, const char *kind,
                            const char *msg, size_t len) {
  aigc_error_new(L, kind, "");
  aigc_error_push_scrubbed(L, msg, len, r->secrets);
  lua_setfield(L, -2, "message");
}

/* Sets err.body on the error on top: at most KEPT_BODY_MAX bytes, scrubbed. */
void aigc_server_error_set_body (lua_State *L, aigc_request *r, const char *s, size_t len) {
  aigc_error_push_scrubbed(L, s, len > KEPT_BODY_MAX ? KEPT_BODY_MAX : len, r->secrets);
  lua_setfield(L, -2, "body");
}

/* Pushes the server's text s[0..len) scrubbed, cut at a character to at
   most KEPT_BODY_MAX bytes (a server's 10 MB message went whole into
   err.message). A message (or detail) cut says so, "… (N bytes more)": a
   log holding it, or a user reading it, sees that it is not all (the whole
   text stays in err.body). Code, type and param are names: cut silently. */
static void push_kept_text (lua_State *L, aigc_request *r, const char *s, size_t len,
                            const char *as) {
  size_t kept = aigc_utf8_cut(s, len, KEPT_BODY_MAX);
  aigc_error_push_scrubbed(L, s, kept, r->secrets);
  if (kept < len && (strcmp(as, "message") == 0 || strcmp(as, "detail") == 0)) {
    char more[64];
    snprintf(more, sizeof more, "\xe2\x80\xa6 (%lu bytes more)", (unsigned long)(len - kept));
    lua_pushstring(L, more);
    lua_concat(L, 2);
  }
}

/* Copies the string-or-number member `key` of object v into the error on
   top, as its field `as` (a string: push_kept_text). */
static void copy_member_as (lua_State *L, aigc_request *r, const aigc_json_value *v,
                            const char *key, const char *as) {
  const aigc_json_value *m = aigc_json_get(v, key);
  if (m == NULL)
    return;
  if (m->type == AIGC_JSON_STRING)
    push_kept_text(L, r, m->u.s, m->len, as);
  else if (m->type == AIGC_JSON_INT)
    aigc_push_int64(L, m->u.i);
  else if (m->type == AIGC_JSON_FLOAT)
    lua_pushnumber(L, (lua_Number)m->u.d);
  else
    return;
  lua_setfield(L, -2, as);
}

void aigc_server_error_copy_member (lua_State *L, aigc_request *r, const aigc_json_value *v,
                                    const char *key) {
  copy_member_as(L, r, v, key, key);
}

/*
** FastAPI's own validation error (servers built on it that do not replace
** it, text-generation-webui's among them): {"detail": [{"loc": ["body",
** "messages"], "msg": "field required", ...}]}. Its first item is the
** message, "field required (body.messages)"; the list stays in err.body.
*/
static void copy_first_detail (lua_State *L, aigc_request *r, const aigc_json_value *v) {
  const aigc_json_value *d = aigc_json_get(v, "detail"), *msg, *loc;
  char text[512];
  size_t n, i, parts = 0;
  if (d == NULL || d->type != AIGC_JSON_ARRAY || d->len == 0 || d->u.items[0].type != AIGC_JSON_OBJECT)
    return;
  msg = aigc_json_get(&d->u.items[0], "msg");
  loc = aigc_json_get(&d->u.items[0], "loc");
  if (msg == NULL || msg->type != AIGC_JSON_STRING)
    return;
  n = (size_t)snprintf(text, sizeof text, "%.*s", (int)aigc_server_error_quote_len(r, msg->u.s, msg->len, 400),
                       msg->u.s);
  for (i = 0; loc != NULL && loc->type == AIGC_JSON_ARRAY && i < loc->len && n < sizeof text - 64; i++) {
    const aigc_json_value *part = &loc->u.items[i];
    const char *sep = parts == 0 ? " (" : ".";
    if (part->type == AIGC_JSON_STRING)
      n += (size_t)snprintf(text + n, sizeof text - n, "%s%.*s", sep,
                            (int)aigc_server_error_quote_len(r, part->u.s, part->len, 40), part->u.s);
    else if (part->type == AIGC_JSON_INT)
      n += (size_t)snprintf(text + n, sizeof text - n, "%s%lld", sep, (long long)part->u.i);
    else
      continue;
    parts++;
  }
  if (parts > 0)
    text[n++] = ')';   /* (n < sizeof text - 64 + 42: room) */
  aigc_error_push_scrubbed(L, text, n < sizeof text ? n : sizeof text - 1, r->secrets);
  lua_setfield(L, -2, "message");
}

/*
** KoboldCpp's 503 while it serves another caller (all its endpoints, its
** OpenAI-compatible ones too): {"detail": {"msg": "Server is busy; please
** try again later.", "type": "service_unavailable"}}. Its msg is the
** message and its type the type.
*/
static void copy_detail_object (lua_State *L, aigc_request *r, const aigc_json_value *v) {
  const aigc_json_value *d = aigc_json_get(v, "detail"), *msg;
  int has_type;
  if (d == NULL || d->type != AIGC_JSON_OBJECT)
    return;
  msg = aigc_json_get(d, "msg");
  if (msg == NULL || msg->type != AIGC_JSON_STRING)
    return;
  copy_member_as(L, r, d, "msg", "message");
  has_type = lua_getfield(L, -1, "type") != LUA_TNIL;
  lua_pop(L, 1);
  if (!has_type)
    aigc_server_error_copy_member(L, r, d, "type");
}

/*
** Cloudflare's API envelope, which its Workers AI OpenAI-compatible
** endpoint and AI Gateway answer errors in: {"result": null, "success":
** false, "errors": [{"code": 7003, "message": "Could not route to ..."}],
** "messages": []}. Its first error gives the message and code (the whole
** message was "HTTP status 404"); the list stays in err.body.
*/
static void copy_first_error_item (lua_State *L, aigc_request *r, const aigc_json_value *v) {
  const aigc_json_value *e = aigc_json_get(v, "errors"), *msg;
  int has_code;
  if (e == NULL || e->type != AIGC_JSON_ARRAY || e->len == 0 || e->u.items[0].type != AIGC_JSON_OBJECT)
    return;
  msg = aigc_json_get(&e->u.items[0], "message");
  if (msg == NULL || msg->type != AIGC_JSON_STRING)
    return;
  aigc_server_error_copy_member(L, r, &e->u.items[0], "message");
  has_code = lua_getfield(L, -1, "code") != LUA_TNIL;
  lua_pop(L, 1);
  if (!has_code)
    aigc_server_error_copy_member(L, r, &e->u.items[0], "code");
}

/*
** Azure AI Foundry answers a reply its content filter blocked with a 400
** whose body is the chat completion, no "error" in it: {"choices": [{
** "finish_reason": "content_filter", "content_filter_results": {"error":
** {"code", "message"}}}]}. The first choice's verdict is the error: the
** filter's message and code, else its finish_reason as the code.
*/
static void copy_choice_verdict (lua_State *L, aigc_request *r, const aigc_json_value *v) {
  const aigc_json_value *ch = aigc_json_get(v, "choices"), *c, *fr, *cf, *e;
  int has_code;
  if (ch == NULL || ch->type != AIGC_JSON_ARRAY || ch->len == 0 || ch->u.items[0].type != AIGC_JSON_OBJECT)
    return;
  c = &ch->u.items[0];
  fr = aigc_json_get(c, "finish_reason");
  if (fr == NULL || fr->type != AIGC_JSON_STRING)
    return;
  cf = aigc_json_get(c, "content_filter_results");
  e = cf != NULL && cf->type == AIGC_JSON_OBJECT ? aigc_json_get(cf, "error") : NULL;
  if (e != NULL && e->type == AIGC_JSON_OBJECT) {
    aigc_server_error_copy_member(L, r, e, "message");
    aigc_server_error_copy_member(L, r, e, "code");
  }
  has_code = lua_getfield(L, -1, "code") != LUA_TNIL;
  lua_pop(L, 1);
  if (!has_code)
    copy_member_as(L, r, c, "finish_reason", "code");
  if (e == NULL || aigc_json_get(e, "message") == NULL) {
    lua_pushfstring(L, "the reply ended with finish_reason ");
    aigc_error_push_scrubbed(L, fr->u.s, fr->len > 40 ? 40 : fr->len, r->secrets);
    lua_concat(L, 2);
    lua_setfield(L, -2, "message");
  }
}

/*
** Pushes an error object for an API error found in a JSON value `v` (the
** body of an HTTP error, an "error" stream event, a 200 body with an
** "error" member): unwraps {"error": {...}} as the SDKs do, and keeps the
** whole decoded body in err.body.
*/
void aigc_server_error_push (lua_State *L, aigc_request *r, const char *kind,
                             const aigc_json_value *body, const char *fallback) {
  const aigc_json_value *v = body, *inner;
  /* Gemini's OpenAI layer wraps its error in a list: [{"error": {...}}] */
  if (v->type == AIGC_JSON_ARRAY && v->len > 0 && v->u.items[0].type == AIGC_JSON_OBJECT
      && aigc_json_get(&v->u.items[0], "error") != NULL)
    v = &v->u.items[0];
  inner = aigc_json_get(v, "error");
  aigc_error_new(L, kind, fallback);
  if (inner != NULL && inner->type == AIGC_JSON_OBJECT) {
    aigc_server_error_copy_member(L, r, inner, "message");
    aigc_server_error_copy_member(L, r, inner, "type");
    aigc_server_error_copy_member(L, r, inner, "code");
    aigc_server_error_copy_member(L, r, inner, "param");
  }
  else if (inner != NULL && inner->type == AIGC_JSON_STRING) {
    copy_member_as(L, r, v, "error", "message");   /* {"error": "text"} (Ollama, LM Studio) */
    copy_member_as(L, r, v, "error_type", "type");   /* TGI's {"error", "error_type"} */
  }
  else if (v->type == AIGC_JSON_OBJECT) {
    /* No "error" member: the body is the error, as the SDKs read it (vLLM's
       {"object": "error", "message", "type", "param", "code"}). A "type" of
       "error" names the object (a Responses stream's error event), not the
       error's type. */
    const aigc_json_value *t = aigc_json_get(v, "type");
    aigc_server_error_copy_member(L, r, v, "message");
    if (t == NULL || t->type != AIGC_JSON_STRING || t->len != 5 || memcmp(t->u.s, "error", 5) != 0)
      aigc_server_error_copy_member(L, r, v, "type");
    aigc_server_error_copy_member(L, r, v, "code");
    aigc_server_error_copy_member(L, r, v, "param");
    aigc_server_error_copy_member(L, r, v, "detail");   /* FastAPI-style servers */
    if (lua_getfield(L, -1, "detail") == LUA_TSTRING) {
      lua_setfield(L, -2, "message");
    }
    else {
      const aigc_json_value *m = aigc_json_get(v, "message");
      lua_pop(L, 1);
      copy_first_detail(L, r, v);
      copy_detail_object(L, r, v);
      /* Mistral's validation error: FastAPI's list inside the message,
         {"object": "error", "message": {"detail": [...]}, "type": ...} */
      if (m != NULL && m->type == AIGC_JSON_OBJECT)
        copy_first_detail(L, r, m);
    }
    if (aigc_json_get(v, "message") == NULL && aigc_json_get(v, "detail") == NULL) {
      copy_first_error_item(L, r, v);
      copy_choice_verdict(L, r, v);
    }
  }
  /* {"message": ""} says nothing: the fallback stays, as openai-python puts
     its own words for an error event whose message is empty or missing. */
  if (lua_getfield(L, -1, "message") == LUA_TSTRING && lua_rawlen(L, -1) == 0) {
    lua_pushstring(L, fallback);
    lua_setfield(L, -3, "message");
  }
  lua_pop(L, 1);
  aigc_jsonlua_push(L, body);
  lua_setfield(L, -2, "body");
}

/*
** A 3xx with a Location: an API call never follows one (transfer.c), nor a
** download's request (aigc.download follows, or replaces this message), so
** the error says where it led, whatever the body says ("Found"). The
** Location is scrubbed: it may echo a key sent in the URL; and shown
** without its query ("?..."): a redirect to storage carries the signature
** of a signed URL there (sig=, X-Amz-Signature=), a credential no secret
** list holds, and the message reaches log lines. err.headers has it whole.
*/
static int push_redirect_error (lua_State *L, aigc_request *r, long status) {
  char head[64];
  size_t n = 0, shown = 0;
  int query;
  const char *loc = status >= 300 && status < 400 ? aigc_headers_find(&r->hdrs, "location", &n) : NULL;
  if (loc == NULL || n == 0)
    return 0;
  while (shown < n && loc[shown] != '?' && loc[shown] != '#')
    shown++;
  query = shown < n && loc[shown] == '?';   /* (read before any allocation) */
  aigc_error_new(L, "http", "");
  snprintf(head, sizeof head, "HTTP status %ld: a redirect to ", status);
  lua_pushstring(L, head);
  aigc_error_push_scrubbed(L, loc, shown < 500 ? shown : 500, r->secrets);
  lua_pushstring(L, query ? "?..." : "");
  lua_pushstring(L, r->xb.absolute ? ", not followed" : ", which API calls never follow");
  lua_concat(L, 4);
  lua_setfield(L, -2, "message");
  if (r->resp.len > 0)
    aigc_server_error_set_body(L, r, r->resp.data, r->resp.len);
  return 1;
}

/* Pushes the error for an HTTP status outside 2xx, from the body kept. */
void aigc_server_error_push_http (lua_State *L, aigc_request *r, long status) {
  aigc_json_value v;
  aigc_json_error perr;
  char fallback[64];
  snprintf(fallback, sizeof fallback, "HTTP status %ld", status);
  aigc_json_arena_reset(&r->arena);
  if (push_redirect_error(L, r, status))
    ;
  else if (r->resp.len > 0
      && aigc_json_parse(&r->arena, r->resp.data, r->resp.len, AIGC_JSON_DEFAULT_MAX_DEPTH, &v, &perr) == 0
      && (v.type == AIGC_JSON_OBJECT || v.type == AIGC_JSON_ARRAY)) {
    aigc_server_error_push(L, r, "http", &v, fallback);
  }
  else {
    /* Not JSON (a proxy's HTML page, plain text): keep it as text. */
    char msg[256];
    size_t i, n = 0;
    int space = 0;
    aigc_error_new(L, "http", "");
    for (i = 0; i < r->resp.len && n < 200; i++) {   /* one line, collapsed */
      unsigned char c = (unsigned char)r->resp.data[i];
      if (c <= ' ') {
        space = n > 0;
        continue;
      }
      if (space && n < sizeof msg - 1)
        msg[n++] = ' ';
      space = 0;
      msg[n++] = (char)c;
    }
    if (n == 0) {
      lua_pushstring(L, fallback);
      lua_setfield(L, -2, "message");
    }
    else {
      lua_pushfstring(L, "%s: ", fallback);
      aigc_error_push_scrubbed(L, msg, n, r->secrets);
      lua_concat(L, 2);
      lua_setfield(L, -2, "message");
    }
    if (r->resp.len > 0)
      aigc_server_error_set_body(L, r, r->resp.data, r->resp.len);
  }
  aigc_error_setint(L, "status", (lua_Integer)status);
  {
    double ra = aigc_headers_retry_after(&r->hdrs);
    if (ra == ra) {
      lua_pushnumber(L, ra);
      lua_setfield(L, -2, "retry_after");
    }
  }
}
