/*
** submit.c — engine:submit's half that reads a call (request.h): its
** arguments checked (aigc_request_read_args), then the request userdata
** made with its per-call options, callbacks and body (aigc_request_new),
** and held by the engine (request.c aigc_request_hold). The rest of a
** request's life is request.c's.
**
** THE RE-ENTRANCY RULE: see request.h and aigc.h.
*/
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "jsonlua.h"
#include "form.h"
#include "request.h"

/*
** {======================================================
** Making a request (engine:submit)
** =======================================================
*/

/*
** The keys a call's params and opts may hold for the core. A call names a
** few of the ~25, and each lua_getfield costs ~250 instructions (the key
** string looked up, then the table): one lua_next walk over the table
** finds those present, and only those are read (get_key). A table with a
** metatable is read key by key as before (its __index may answer).
*/
typedef struct key_name {
  const char *name;
  size_t len;
} key_name;

#define KEY(s) { s, sizeof(s) - 1 }

enum {   /* bits of aigc_submit.params_keys: params_names' order */
  AIGC_PK_STREAM = 1 << 0, AIGC_PK_TIMEOUT = 1 << 1, AIGC_PK_CONNECT_TIMEOUT = 1 << 2,
  AIGC_PK_DEADLINE = 1 << 3, AIGC_PK_MAX_RETRIES = 1 << 4, AIGC_PK_MAX_RESPONSE_BYTES = 1 << 5,
  AIGC_PK_MAX_JSON_VALUES = 1 << 6, AIGC_PK_MAX_JSON_CONTAINERS = 1 << 7,
  AIGC_PK_ON_DONE = 1 << 8, AIGC_PK_ON_ERROR = 1 << 9, AIGC_PK_PRIORITY = 1 << 10,
  AIGC_PK_ON_STREAM_END = 1 << 11
};
static const key_name params_names[] = {
  KEY("stream"), KEY("timeout"), KEY("connect_timeout"), KEY("deadline"), KEY("max_retries"),
  KEY("max_response_bytes"), KEY("max_json_values"), KEY("max_json_containers"),
  KEY("on_done"), KEY("on_error"), KEY("priority"), KEY("on_stream_end"), { NULL, 0 }
};

enum {   /* bits of aigc_submit.opts_keys: opts_names' order */
  AIGC_OK_PATH = 1 << 0, AIGC_OK_QUERY = 1 << 1, AIGC_OK_FNAME = 1 << 2, AIGC_OK_ARG = 1 << 3,
  AIGC_OK_EVENTS = 1 << 4, AIGC_OK_STREAM_FIELD = 1 << 5, AIGC_OK_DEADLINE = 1 << 6,
  AIGC_OK_HEADERS = 1 << 7, AIGC_OK_METHOD = 1 << 8, AIGC_OK_ABSOLUTE = 1 << 9,
  AIGC_OK_FORM = 1 << 10, AIGC_OK_SINK = 1 << 11, AIGC_OK_ON_DONE = 1 << 12,
  AIGC_OK_ON_ERROR = 1 << 13, AIGC_OK_WATCH = 1 << 14, AIGC_OK_SECRETS = 1 << 15,
  AIGC_OK_STREAM_USAGE = 1 << 16, AIGC_OK_STARTING_AFTER = 1 << 17, AIGC_OK_LOG_SECRETS = 1 << 18,
  AIGC_OK_OBSERVE = 1 << 19,
  /* what aigc_form_read reads (form.c) */
  AIGC_OK_BODY = AIGC_OK_METHOD | AIGC_OK_ABSOLUTE | AIGC_OK_FORM | AIGC_OK_EVENTS | AIGC_OK_SINK
};
static const key_name opts_names[] = {
  KEY("path"), KEY("query"), KEY("fname"), KEY("arg"), KEY("events"), KEY("stream_field"),
  KEY("deadline"), KEY("headers"), KEY("method"), KEY("absolute"), KEY("form"), KEY("sink"),
  KEY("on_done"), KEY("on_error"), KEY("watch"), KEY("secrets"), KEY("stream_usage"),
  KEY("starting_after"), KEY("log_secrets"), KEY("observe"), { NULL, 0 }
};

/* The bit of `names` that names the key k[0..len), or 0. */
static unsigned key_bit (const key_name *names, const char *k, size_t len) {
  size_t i;
  for (i = 0; names[i].name != NULL; i++)   /* (the first byte spares most memcmp calls) */
    if (names[i].len == len && names[i].name[0] == k[0] && memcmp(names[i].name, k, len) == 0)
      return 1u << i;
  return 0;
}

unsigned aigc_params_key_bit (const char *k, size_t len) {
  return key_bit(params_names, k, len);
}

/* The bits of `names` present as keys of the table at t (every bit when
   it has a metatable). Allocates nothing, runs no Lua. */
static unsigned scan_keys (lua_State *L, int t, const key_name *names) {
  unsigned mask = 0;
  if (lua_getmetatable(L, t)) {
    lua_pop(L, 1);
    return ~0u;
  }
  t = lua_absindex(L, t);
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      size_t len;
      const char *k = lua_tolstring(L, -2, &len);
      mask |= key_bit(names, k, len);
    }
    lua_pop(L, 1);
  }
  return mask;
}

unsigned aigc_opts_keys (lua_State *L, int t) {
  return scan_keys(L, t, opts_names);
}

/*
** The keys of the table at t (`names`' bits): the caller's `hint` (the
** argument at h, a number), else a walk. A hint is taken for a table
** without a metatable only (one with a metatable is read key by key).
*/
static unsigned hinted_keys (lua_State *L, int t, int h, const key_name *names) {
  if (lua_type(L, h) == LUA_TNUMBER) {
    if (!lua_getmetatable(L, t))
      return (unsigned)lua_tointeger(L, h);
    lua_pop(L, 1);
  }
  return scan_keys(L, t, names);
}

/* lua_getfield(L, t, name) for a key scan_keys saw; nil pushed for one
   it did not (the table has no such key). */
static int get_key (lua_State *L, int t, unsigned keys, unsigned bit, const char *name) {
  if (keys & bit)
    return lua_getfield(L, t, name);
  lua_pushnil(L);
  return LUA_TNIL;
}

/* opts (at 4): path, query, and who the user called (fname, arg). */
static void read_opts (lua_State *L, aigc_submit *s) {
  unsigned k;
  if (lua_isnil(L, 4))
    return;
  k = s->opts_keys = hinted_keys(L, 4, 6, opts_names);
  if (get_key(L, 4, k, AIGC_OK_PATH, "path") != LUA_TNIL)
    s->path = luaL_checkstring(L, -1);   /* anchored by opts until we return */
  lua_pop(L, 1);
  if (get_key(L, 4, k, AIGC_OK_QUERY, "query") != LUA_TNIL)
    s->query = luaL_checkstring(L, -1);
  lua_pop(L, 1);
  /* Misuse is reported as the caller's (client:chat...). */
  if (get_key(L, 4, k, AIGC_OK_FNAME, "fname") == LUA_TSTRING)
    s->cx.fname = lua_tostring(L, -1);
  lua_pop(L, 1);
  if (get_key(L, 4, k, AIGC_OK_ARG, "arg") == LUA_TNUMBER)
    s->cx.arg = (int)lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (get_key(L, 4, k, AIGC_OK_EVENTS, "events") == LUA_TFUNCTION)   /* typed events (form.h) */
    s->stream = 1;
  lua_pop(L, 1);
  if (get_key(L, 4, k, AIGC_OK_STREAM_FIELD, "stream_field") == LUA_TBOOLEAN)
    s->quiet_stream = !lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (get_key(L, 4, k, AIGC_OK_STREAM_USAGE, "stream_usage") == LUA_TBOOLEAN)
    s->no_stream_usage = !lua_toboolean(L, -1);
  lua_pop(L, 1);
}

/* Whether params.stream asks for a stream (true, or a callable). */
static int read_stream (lua_State *L, const aigc_submit *s) {
  int t = get_key(L, 3, s->params_keys, AIGC_PK_STREAM, "stream"), stream = 0;
  if (t == LUA_TFUNCTION || (t == LUA_TBOOLEAN && lua_toboolean(L, -1)))
    stream = 1;
  else if (t == LUA_TTABLE && luaL_getmetafield(L, -1, "__call") != LUA_TNIL) {
    lua_pop(L, 1);
    stream = 1;
  }
  else if (t != LUA_TNIL && t != LUA_TBOOLEAN)
    aigc_argerror(L, s->cx.arg, s->cx.fname, "params.stream: a boolean or a function expected, "
                  "got %s", luaL_typename(L, -1));
  lua_pop(L, 1);
  return stream;
}

void aigc_request_read_args (lua_State *L, aigc_submit *s) {
  memset(s, 0, sizeof *s);
  s->kind = (aigc_kind)luaL_checkoption(L, 2, NULL, aigc_request_kind_names);
  /* The kind read, its slot keeps the `into` table (7, or nil): eng_submit
     stores the request there (no allocation: the stack has room). */
  lua_settop(L, 7);
  if (!lua_isnil(L, 7))
    luaL_checktype(L, 7, LUA_TTABLE);
  lua_pushvalue(L, 7);
  lua_replace(L, 2);
  s->has_params = !lua_isnoneornil(L, 3);
  s->cx.fname = "submit";
  s->cx.arg = 2;
  s->cx.what = "params";
  if (!aigc_kind_bodiless(s->kind) || s->has_params)
    luaL_checktype(L, 3, LUA_TTABLE);
  if (!lua_isnoneornil(L, 4))
    luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 6);
  if (s->has_params)
    s->params_keys = hinted_keys(L, 3, 5, params_names);
  read_opts(L, s);
  lua_settop(L, 4);
  if (s->path == NULL) {
    if (s->kind == AIGC_KIND_CHAT)
      s->path = "/chat/completions";
    else if (s->kind == AIGC_KIND_COMPLETION)
      s->path = "/completions";
    else if (s->kind == AIGC_KIND_RESPONSES)
      s->path = "/responses";
    else
      luaL_argerror(L, 4, "opts.path is required for this kind");
  }
  if (s->has_params && (s->kind == AIGC_KIND_CHAT || s->kind == AIGC_KIND_COMPLETION
                        || s->kind == AIGC_KIND_RESPONSES))
    s->stream = read_stream(L, s);
}

/* Reads an optional callback t[field] (t at `from`: params at 3, opts at
   4) into the request's slot. */
static int opt_callback (lua_State *L, int ridx, const aigc_argctx *cx, int from, const char *field,
                         int slot) {
  int type = lua_getfield(L, from, field);
  if (type == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  if (type != LUA_TFUNCTION) {
    if (luaL_getmetafield(L, -1, "__call") == LUA_TNIL)
      aigc_argerror(L, cx->arg, cx->fname, "%s.%s: a function expected, got %s", cx->what, field,
                    luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  lua_setiuservalue(L, ridx, slot);
  return 1;
}

/* Whether the stream callback at idx declares a second parameter (chunk). */
static int wants_chunk (lua_State *L, int idx) {
  int nparams, isvararg;
  if (lua_type(L, idx) != LUA_TFUNCTION || !aigc_nparams(L, idx, &nparams, &isvararg))
    return 1;   /* a callable, or a Lua that cannot tell: give it the chunk */
  return isvararg || nparams >= 2;
}

/* params.priority (params at 3): its class, AIGC_PRIO_NORMAL if absent. */
static int read_priority (lua_State *L, const aigc_argctx *cx) {
  int p, type = lua_getfield(L, 3, "priority");
  const char *name = type == LUA_TSTRING ? lua_tostring(L, -1) : NULL;   /* (a number stays one) */
  for (p = 0; type == LUA_TSTRING && p < AIGC_NPRIO; p++)
    if (strcmp(name, aigc_priority_names[p]) == 0)
      break;
  if (type == LUA_TNIL)
    p = AIGC_PRIO_NORMAL;
  else if (type != LUA_TSTRING || p == AIGC_NPRIO)
    aigc_argerror(L, cx->arg, cx->fname, "%s.priority: 'interactive', 'normal' or 'background' "
                  "expected, got %s", cx->what, type == LUA_TSTRING ? name : luaL_typename(L, -1));
  lua_pop(L, 1);
  return p;
}

/*
** The call's own settings (params at 3; opts at 4 may carry a deadline
** from the Lua layer) over the client's, and its callbacks. Returns
** whether someone expects to hear from it (callbacks).
*/
static int read_call_options (lua_State *L, int ridx, aigc_request *r, const aigc_submit *s) {
  const aigc_argctx *cx = &s->cx;
  int64_t huge = (int64_t)1 << 40;
  unsigned k = s->params_keys;   /* (only the keys params holds are read) */
  int strong = 0;
  if (s->opts_keys & AIGC_OK_DEADLINE)
    r->deadline = aigc_opt_deadline(L, 4, cx, r->deadline);
  if (!s->has_params)
    return 0;
  if (k & AIGC_PK_TIMEOUT)
    r->timeout = aigc_opt_seconds(L, 3, cx, "timeout", r->timeout);
  if (k & AIGC_PK_CONNECT_TIMEOUT)
    r->connect_timeout = aigc_opt_seconds(L, 3, cx, "connect_timeout", r->connect_timeout);
  if (k & AIGC_PK_DEADLINE)
    r->deadline = aigc_opt_deadline(L, 3, cx, r->deadline);
  if (k & AIGC_PK_MAX_RETRIES)
    r->max_retries = (int)aigc_opt_integer(L, 3, cx, "max_retries", r->max_retries, 0, 100);
  if (k & AIGC_PK_MAX_RESPONSE_BYTES)
    r->max_bytes = (size_t)aigc_opt_integer(L, 3, cx, "max_response_bytes",
                                            (int64_t)r->max_bytes, 1, huge);
  r->sse_parser.max_event = r->max_bytes;
  /* What decoding one reply (or stream event) may build. */
  if (k & AIGC_PK_MAX_JSON_VALUES)
    r->arena.limits.max_values = (size_t)aigc_opt_integer(L, 3, cx, "max_json_values",
        (int64_t)r->arena.limits.max_values, 1, huge);
  if (k & AIGC_PK_MAX_JSON_CONTAINERS)
    r->arena.limits.max_containers = (size_t)aigc_opt_integer(L, 3, cx, "max_json_containers",
        (int64_t)r->arena.limits.max_containers, 1, huge);
  r->accum.limits = r->arena.limits;
  r->raccum.limits = r->arena.limits;
  if (s->stream && get_key(L, 3, k, AIGC_PK_STREAM, "stream") != LUA_TBOOLEAN) {
    r->want_chunk = wants_chunk(L, -1);
    lua_setiuservalue(L, ridx, AIGC_RQ_STREAM);
    strong = 1;
  }
  else if (s->stream)
    lua_pop(L, 1);
  if (k & AIGC_PK_ON_DONE)
    strong |= opt_callback(L, ridx, cx, 3, "on_done", AIGC_RQ_ON_DONE);
  if (k & AIGC_PK_ON_ERROR)
    strong |= opt_callback(L, ridx, cx, 3, "on_error", AIGC_RQ_ON_ERROR);
  if (k & AIGC_PK_ON_STREAM_END) {   /* (checked always; heard by streams only) */
    r->has_stream_end = opt_callback(L, ridx, cx, 3, "on_stream_end", AIGC_RQ_STREAM_END);
    strong |= r->has_stream_end;
  }
  /* opts.on_done / opts.on_error (the engine's own callers') take their
     place: the params are then submitted without a copy. */
  if (s->opts_keys & AIGC_OK_ON_DONE)
    strong |= opt_callback(L, ridx, cx, 4, "on_done", AIGC_RQ_ON_DONE);
  if (s->opts_keys & AIGC_OK_ON_ERROR)
    strong |= opt_callback(L, ridx, cx, 4, "on_error", AIGC_RQ_ON_ERROR);
  /* (the usage hook's observer of a call with callbacks: it hears the end
     before them, and a watchdog that cuts it does not lose them) */
  if (s->opts_keys & AIGC_OK_OBSERVE)
    strong |= opt_callback(L, ridx, cx, 4, "observe", AIGC_RQ_OBSERVE);
  if (s->opts_keys & AIGC_OK_WATCH) {   /* (the usage hook's: see note_watched_end) */
    lua_getfield(L, 4, "watch");
    r->watched = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  r->entry.priority = k & AIGC_PK_PRIORITY ? read_priority(L, cx) : AIGC_PRIO_NORMAL;
  return strong;
}

/*
** Pushes the client's default model as a Lua string, or nil (none, or the
** client closed meanwhile). The C string is freed when the client closes,
** and a finalizer may close it at any allocation, including the one that
** makes the Lua string: Lua 5.1, 5.2 and LuaJIT run the collector BEFORE
** copying the bytes (5.3+ after). So the bytes are copied first into
** memory that no finalizer can free: the C stack, or for a long name a
** userdata made first (then the model is read again: it may be gone).
*/
static void push_default_model (lua_State *L, aigc_roster *ro) {
  char small[128];
  size_t len;
  char *copy;
  if (ro->config.model == NULL) {
    lua_pushnil(L);
    return;
  }
  len = strlen(ro->config.model);
  if (len < sizeof small) {
    memcpy(small, ro->config.model, len);
    lua_pushlstring(L, small, len);
    return;
  }
  copy = (char *)lua_newuserdatauv(L, len, 0);   /* allocates */
  if (ro->config.model == NULL || strlen(ro->config.model) != len)
    lua_pushnil(L);
  else {
    memcpy(copy, ro->config.model, len);
    lua_pushlstring(L, copy, len);
  }
  lua_remove(L, -2);
}

/*
** Pushes a new request's finalizer (slots.c, "The request's three
** objects"), its core (the C state, returned) in its first user value and
** the engine (at 1) in its second: both stay alive while its __gc runs.
** The core is zeroed before the finalizer can run, then set up "closed".
*/
/* The two metatables' keys (kept: a lookup by name per request on 5.1 and
   LuaJIT, see compat.h). */
static const char core_mt_key = 'c', request_mt_key = 'q';

static aigc_request *new_core (lua_State *L, aigc_roster *ro, const aigc_submit *s) {
  aigc_request *r = (aigc_request *)lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  *(aigc_request **)lua_newuserdatauv(L, sizeof r, 2) = r;
  aigc_set_kept_metatable(L, AIGC_REQUEST_CORE_MT, &core_mt_key);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 2);
  aigc_transfer_init(r, ro, s->kind, s->stream);   /* "closed" until it is linked */
  return r;
}

aigc_request *aigc_request_new (lua_State *L, aigc_roster *ro, const aigc_submit *s) {
  aigc_request *r;
  int ridx, strong;
  int usage = (s->kind == AIGC_KIND_CHAT || s->kind == AIGC_KIND_COMPLETION) && !s->no_stream_usage
              && !ro->config.no_stream_options;
  /* The default model as a Lua string (index 5), made before anything
     else: a finalizer may close the client and free it. */
  if (!aigc_kind_bodiless(s->kind))
    push_default_model(L, ro);
  else
    lua_pushnil(L);
  /* The core and its finalizer first, so that they are anchored while
     the request allocates. */
  r = new_core(L, ro, s);
  *(aigc_request **)lua_newuserdatauv(L, sizeof r, AIGC_RQ_NSLOTS) = r;
  aigc_set_kept_metatable(L, AIGC_REQUEST_MT, &request_mt_key);
  ridx = lua_gettop(L);
  lua_pushvalue(L, ridx - 1);
  lua_setiuservalue(L, ridx, AIGC_RQ_CORE);
  lua_remove(L, ridx - 1);
  ridx--;
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, ridx, AIGC_RQ_ENGINE);
  strong = read_call_options(L, ridx, r, s);
  if ((s->opts_keys & AIGC_OK_BODY) && aigc_form_read(L, 4, &r->xb, &s->cx)) {   /* a sink function */
    lua_setiuservalue(L, ridx, AIGC_RQ_STREAM);
    strong = 1;
  }
  /* A resumed Responses stream: its events follow sequence number N. */
  if (get_key(L, 4, s->opts_keys, AIGC_OK_STARTING_AFTER, "starting_after") != LUA_TNIL)
    aigc_raccum_resume(&r->raccum,
                       aigc_opt_integer(L, 4, &s->cx, "starting_after", 0, 0, (int64_t)1 << 53));
  lua_pop(L, 1);
  if (r->xb.has_reader) {   /* the function that feeds the upload */
    if (lua_getfield(L, 4, "reader") != LUA_TFUNCTION)
      luaL_error(L, "opts.reader: a function expected for the form's reader part");
    lua_setiuservalue(L, ridx, AIGC_RQ_READER);
    strong = 1;
  }
  if (s->opts_keys & (AIGC_OK_HEADERS | AIGC_OK_SECRETS)) {
    int hidx = 0, sidx = 0;
    if (get_key(L, 4, s->opts_keys, AIGC_OK_HEADERS, "headers") == LUA_TTABLE) {
      hidx = lua_gettop(L);
      r->headers = aigc_build_headers(L, hidx);
    }
    if (get_key(L, 4, s->opts_keys, AIGC_OK_SECRETS, "secrets") == LUA_TTABLE)
      sidx = lua_gettop(L);   /* a call's query credentials (the Lua layer finds them) */
    /* A credential of the call's own (a per-user key in a header or the
       query) is a secret of this request: its errors and log lines are
       scrubbed of it too. */
    r->own_secrets = aigc_secrets_with_call(L, hidx, sidx, r->secrets);
    if (r->own_secrets != NULL)
      r->secrets = r->own_secrets;
    lua_pop(L, 2);
  }
  /* More secrets for its log lines only (a download's hop: its URLs'
     credentials; its error keeps them, the Lua layer scrubs it later). */
  if (get_key(L, 4, s->opts_keys, AIGC_OK_LOG_SECRETS, "log_secrets") == LUA_TTABLE)
    r->log_secrets = aigc_secrets_with_call(L, 0, lua_gettop(L), r->secrets);
  lua_pop(L, 1);
  /* May run Lua (metamethods) and allocates: anything may happen to the
     engine meanwhile, which is why nothing of it is read after this. */
  if (r->xb.mime != NULL || r->xb.method == AIGC_METHOD_GET)
    ;   /* the form is the body; a GET has none */
  else if (!aigc_kind_bodiless(s->kind) && s->has_params)
    r->default_so_len = aigc_jsonlua_encode_params(L, 3, &r->body, lua_tostring(L, 5),
                                                   s->stream && !s->quiet_stream, usage, &s->cx)
                        ? AIGC_JSONLUA_STREAM_OPTIONS_LEN : 0;
  else if (!aigc_kind_bodiless(s->kind) && aigc_buf_append(&r->body, "{}", 2) != 0)
    luaL_error(L, "not enough memory");
  /* The last Lua allocation (it may grow the engine's tables). */
  aigc_request_hold(L, 1, r, ridx, strong);
  return r;
}

/* }====================================================== */
