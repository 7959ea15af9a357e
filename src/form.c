/*
** form.c — opts.method, opts.form and opts.sink into a request's body
** (form.h).
*/
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "syserr.h"
#include "form.h"

/* A string field of the part at p, or NULL; no NUL inside unless `bytes`. */
static const char *part_string (lua_State *L, int p, const aigc_argctx *cx, int i,
                                const char *field, int bytes, size_t *len) {
  const char *s;
  if (lua_getfield(L, p, field) == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  if (lua_type(L, -1) != LUA_TSTRING)
    aigc_argerror(L, cx->arg, cx->fname, "%s.form[%d].%s: a string expected, got %s", cx->what,
                  i, field, luaL_typename(L, -1));
  s = lua_tolstring(L, -1, len);
  if (!bytes && strlen(s) != *len)
    aigc_argerror(L, cx->arg, cx->fname, "%s.form[%d].%s: contains a NUL byte", cx->what, i, field);
  lua_pop(L, 1);   /* (still anchored: the part table holds it) */
  return s;
}

/* A reader part's size: a whole number >= 0 (the body gets a Content-Length),
   or -1 when not given (chunked). */
static curl_off_t reader_size (lua_State *L, int p, const aigc_argctx *cx, int i) {
  lua_Number n;
  int t = lua_getfield(L, p, "size");
  n = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (t == LUA_TNIL)
    return -1;
  if (t != LUA_TNUMBER || n < 0 || n != n || n > 9007199254740992.0 || n != (lua_Number)(curl_off_t)n)
    aigc_argerror(L, cx->arg, cx->fname, "%s.form[%d].size: a whole number >= 0 expected", cx->what, i);
  return (curl_off_t)n;
}

/*
** The caller's name for the path part at p (form[i]) in its errors, pushed:
** its `field` when the Lua layer gives one ("params.image[2]"), else its
** name when that is a field of the params (a part "file" is params.file).
** A list's item ("image[]") is named by its place in the form, which the
** core cannot map back to the list (aigc.media sorts the parts by name):
** params.form[i], as the other misuse of a part is.
*/
static const char *push_field (lua_State *L, int p, const aigc_argctx *cx, int i,
                               const char *name) {
  size_t len = strlen(name);
  if (lua_getfield(L, p, "field") == LUA_TSTRING)
    return lua_tostring(L, -1);
  lua_pop(L, 1);
  if (len >= 2 && strcmp(name + len - 2, "[]") == 0)
    return lua_pushfstring(L, "%s.form[%d]", cx->what, i);
  return lua_pushfstring(L, "%s.%s", cx->what, name);
}

/*
** The Content-Type libcurl gives a part read from a file (its table in
** Curl_mime_contenttype, else application/octet-stream). A path part is a
** read-callback part now (body.h), which libcurl sends with a type from
** that table or none: a .wav or .jsonl went with none.
*/
static const char *file_type (const char *filename) {
  static const char *const types[][2] = {
    {".gif", "image/gif"}, {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"},
    {".png", "image/png"}, {".svg", "image/svg+xml"}, {".txt", "text/plain"},
    {".htm", "text/html"}, {".html", "text/html"}, {".pdf", "application/pdf"},
    {".xml", "application/xml"}
  };
  size_t i, len = strlen(filename);
  for (i = 0; i < sizeof types / sizeof types[0]; i++) {
    size_t n = strlen(types[i][0]);
    if (len >= n && strcasecmp(filename + len - n, types[i][0]) == 0)
      return types[i][1];
  }
  return "application/octet-stream";
}

/*
** A part read from path: refused at the call when it is not a regular file
** (a FIFO or a device would block the loop when libcurl opens it); read
** when each attempt is sent (body.h). Its filename is the path's base
** name unless given. Returns libcurl's code.
*/
static CURLcode add_path_part (lua_State *L, int p, aigc_body *b, const aigc_argctx *cx, int i,
                               curl_mimepart *part, const char *name, const char *path) {
  const char *kind = NULL, *base = strrchr(path, '/');
  const char *field = push_field(L, p, cx, i, name);
  if (*path == '\0')
    aigc_argerror(L, cx->arg, cx->fname, "%s: an empty path", field);
  if (aigc_body_check_file(path, &kind) != 0) {
    int e = errno;
    char eb[AIGC_ERRBUF];
    if (kind != NULL)
      aigc_argerror(L, cx->arg, cx->fname, "%s: %s is %s (only a regular file can be uploaded)",
                    field, path, kind);
    aigc_argerror(L, cx->arg, cx->fname, "%s: %s: %s", field, path, aigc_strerror(e, eb, sizeof eb));
  }
  if (aigc_body_add_file(b, part, path, field) == NULL)
    luaL_error(L, "not enough memory");
  lua_pop(L, 1);
  return curl_mime_filename(part, base != NULL ? base + 1 : path);
}

/* One part, the table at p (form[i]), added to b's form. */
static void add_part (lua_State *L, int p, aigc_body *b, const aigc_argctx *cx, int i) {
  size_t len = 0, vlen = 0, dlen = 0, plen = 0;   /* (plen: a NUL inside is refused) */
  const char *name = part_string(L, p, cx, i, "name", 0, &len);
  const char *value = part_string(L, p, cx, i, "value", 0, &vlen);
  const char *data = part_string(L, p, cx, i, "data", 1, &dlen);
  const char *path = part_string(L, p, cx, i, "path", 0, &plen);
  int reader = lua_getfield(L, p, "reader") == LUA_TBOOLEAN && lua_toboolean(L, -1);
  const char *filename = part_string(L, p, cx, i, "filename", 0, &len);
  const char *type = part_string(L, p, cx, i, "type", 0, &len);
  curl_mimepart *part;
  CURLcode rc = CURLE_OK;
  lua_pop(L, 1);
  if (name == NULL)
    aigc_argerror(L, cx->arg, cx->fname, "%s.form[%d].name: a string expected, got nil", cx->what, i);
  if ((value != NULL) + (data != NULL) + (path != NULL) + reader != 1)
    aigc_argerror(L, cx->arg, cx->fname, "%s.form[%d]: exactly one of value, data, path or reader "
                  "expected", cx->what, i);
  if (reader && b->has_reader)
    aigc_argerror(L, cx->arg, cx->fname, "%s.form[%d]: one part fed by a function per call", cx->what, i);
  part = curl_mime_addpart(b->mime);
  if (part == NULL)
    luaL_error(L, "not enough memory");
  rc = curl_mime_name(part, name);
  if (rc == CURLE_OK && path != NULL)
    rc = add_path_part(L, p, b, cx, i, part, name, path);
  else if (rc == CURLE_OK && reader) {   /* size unknown: the body goes chunked */
    b->feed_size = reader_size(L, p, cx, i);
    rc = curl_mime_data_cb(part, b->feed_size, aigc_body_feed_read, aigc_body_feed_seek, NULL, b);
    b->has_reader = 1;
    /* libcurl never asks for a part of size 0: the loop asks the function
       at the request's first dispatch (its end at the latest, before the
       result), so one with bytes to give fails the call (request.c). */
    b->feed_wanted = b->feed_size == 0;
  }
  else if (rc == CURLE_OK)
    rc = value != NULL ? curl_mime_data(part, value, vlen) : curl_mime_data(part, data, dlen);
  if (rc == CURLE_OK && filename != NULL)
    rc = curl_mime_filename(part, filename);
  if (rc == CURLE_OK && (type != NULL || path != NULL))
    rc = curl_mime_type(part, type != NULL ? type : file_type(filename != NULL ? filename : path));
  if (rc != CURLE_OK)
    luaL_error(L, "could not build the form: %s", curl_easy_strerror(rc));
}

static void read_form (lua_State *L, int f, aigc_body *b, const aigc_argctx *cx) {
  int i, n = (int)lua_rawlen(L, f);
  b->mime = curl_mime_init(NULL);   /* (libcurl >= 7.87 needs no handle here) */
  if (b->mime == NULL)
    luaL_error(L, "not enough memory");
  for (i = 1; i <= n; i++) {
    if (lua_rawgeti(L, f, i) != LUA_TTABLE)
      aigc_argerror(L, cx->arg, cx->fname, "%s.form[%d]: a table expected, got %s", cx->what, i,
                    luaL_typename(L, -1));
    add_part(L, lua_gettop(L), b, cx, i);
    lua_pop(L, 1);
  }
}

/* opts.sink: "bytes", {path = ...} or a function. Returns 1 with the function pushed. */
static int read_sink (lua_State *L, int s, aigc_body *b, const aigc_argctx *cx) {
  int t = lua_type(L, s);
  if (t == LUA_TFUNCTION) {
    b->sink = AIGC_SINK_CHUNKS;
    lua_pushvalue(L, s);
    return 1;
  }
  if (t == LUA_TSTRING && strcmp(lua_tostring(L, s), "bytes") == 0) {
    b->sink = AIGC_SINK_BYTES;
    return 0;
  }
  if (t == LUA_TTABLE && lua_getfield(L, s, "path") == LUA_TSTRING) {
    size_t len;
    const char *path = lua_tolstring(L, -1, &len);
    if (strlen(path) != len || len == 0)
      aigc_argerror(L, cx->arg, cx->fname, "%s.sink.path: an empty path or one with a NUL byte",
                    cx->what);
    if (aigc_body_set_path(b, path) != 0)
      luaL_error(L, "not enough memory");
    lua_pop(L, 1);
    b->sink_audio = lua_getfield(L, s, "audio") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    /* (a download's overwrite = false: linked into place, never over a file there) */
    b->no_replace = lua_getfield(L, s, "no_replace") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    return 0;
  }
  return aigc_argerror(L, cx->arg, cx->fname, "%s.sink: \"bytes\", {path = ...} or a function "
                       "expected, got %s", cx->what, luaL_typename(L, s));
}

int aigc_form_read (lua_State *L, int o, aigc_body *b, const aigc_argctx *cx) {
  int pushed = 0;
  if (!lua_istable(L, o))
    return 0;
  o = lua_absindex(L, o);
  if (lua_getfield(L, o, "method") == LUA_TSTRING && strcmp(lua_tostring(L, -1), "DELETE") == 0)
    b->method = AIGC_METHOD_DELETE;
  else if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "GET") == 0)
    b->method = AIGC_METHOD_GET;
  else if (!lua_isnil(L, -1))
    luaL_error(L, "opts.method: only \"DELETE\" and \"GET\" are known");
  lua_pop(L, 1);
  if (lua_getfield(L, o, "absolute") == LUA_TBOOLEAN)
    b->absolute = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (lua_getfield(L, o, "form") == LUA_TTABLE)
    read_form(L, lua_gettop(L), b, cx);
  lua_pop(L, 1);
  if (lua_getfield(L, o, "events") == LUA_TFUNCTION) {   /* (request.c made it a stream) */
    b->sink = AIGC_SINK_EVENTS;
    b->events_text = lua_getfield(L, o, "sink") == LUA_TSTRING && strcmp(lua_tostring(L, -1), "bytes") == 0;
    lua_pop(L, 1);
    b->events_audio = lua_getfield(L, o, "audio") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);   /* (the events function stays pushed) */
    return 1;
  }
  lua_pop(L, 1);
  if (lua_getfield(L, o, "sink") != LUA_TNIL) {
    pushed = read_sink(L, lua_gettop(L), b, cx);
    if (pushed)
      lua_remove(L, -2);
    else
      lua_pop(L, 1);
  }
  else
    lua_pop(L, 1);
  if (b->sink == AIGC_SINK_CHUNKS) {   /* {sink = fn, audio = true}: as {path =, audio = true} */
    b->sink_audio = lua_getfield(L, o, "audio") == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  return pushed;
}
