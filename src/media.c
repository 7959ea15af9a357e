/*
** media.c — core.media (b64decode, f32, save, open_through) and core.vec
** (cosine, index).
**
** THE RE-ENTRANCY RULE (aigc.h): nothing here points into request or
** engine memory. Scratch memory is a Lua userdata (collected if an error
** escapes); an index's floats are read whole before any Lua allocation
** (a finalizer may add to the same index, which may move them).
*/
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "syserr.h"
#include "base64.h"
#include "body.h"
#include "home.h"
#include "media.h"
#include "vec.h"

/* Scratch memory of n bytes, pushed as a userdata (freed by the GC). */
static void *scratch (lua_State *L, size_t n) {
  return lua_newuserdatauv(L, n > 0 ? n : 1, 0);
}

/* Decodes the base64 string at idx into scratch (pushed); NULL and the
   message pushed instead when it is not base64. */
static unsigned char *decode_arg (lua_State *L, int idx, size_t *outlen) {
  size_t n, bad;
  const char *s = luaL_checklstring(L, idx, &n);
  unsigned char *out = (unsigned char *)scratch(L, aigc_base64_max(n));
  if (aigc_base64_decode(s, n, out, outlen, &bad) != 0) {
    lua_pop(L, 1);
    if (bad >= n)
      lua_pushliteral(L, "not base64: the text ends inside a byte");
    else
      lua_pushfstring(L, "not base64: byte value %d at byte %d", (int)(unsigned char)s[bad], (int)bad + 1);
    return NULL;
  }
  return out;
}

/* media.b64decode(s) -> bytes | nil, message */
static int media_b64decode (lua_State *L) {
  size_t len;
  unsigned char *out = decode_arg(L, 1, &len);
  if (out == NULL) {
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushlstring(L, (const char *)out, len);
  return 1;
}

/* media.f32(s [, "base64"]) -> {numbers} | nil, message: little-endian
   float32 values (an embedding), decoded exactly, straight into an array. */
static int media_f32 (lua_State *L) {
  size_t len, i, count;
  const unsigned char *bytes;
  double vals[64];
  int base64 = lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "base64") == 0;
  if (!base64 && !lua_isnoneornil(L, 2))
    return luaL_argerror(L, 2, "\"base64\" or nil expected");
  if (base64) {
    bytes = decode_arg(L, 1, &len);
    if (bytes == NULL) {
      luaL_pushfail(L);
      lua_insert(L, -2);
      return 2;
    }
  }
  else
    bytes = (const unsigned char *)luaL_checklstring(L, 1, &len);
  if (len % 4 != 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%d bytes is not a whole number of float32 values", (int)len);
    return 2;
  }
  count = len / 4;
  lua_createtable(L, count > 0x7fffffff ? 0x7fffffff : (int)count, 0);
  for (i = 0; i < count; i++) {   /* (bytes is anchored: argument 1 or the scratch) */
    if (i % 64 == 0)
      aigc_f32le_decode(bytes + 4 * i, count - i < 64 ? count - i : 64, vals);
    lua_pushnumber(L, (lua_Number)vals[i % 64]);
    lua_rawseti(L, -2, (lua_Integer)(i + 1));
  }
  return 1;
}

/*
** media.save(path, bytes) -> true | nil, message: bytes made a file as a
** download's `to = path` makes it (body.h): never over a folder, a FIFO or
** a device at path; written to a new "<path>.part" (whatever is under that
** name, a symbolic link or a FIFO too, unlinked first, never written
** through), renamed into place when whole. `res:save` opened path.part in
** Lua: it wrote through a link planted there (in a shared /tmp, another's
** file overwritten with the image) and blocked for ever on a FIFO. Nothing
** here allocates from Lua between the body's set-up and its free.
** media.save(path, bytes, mode): the file made with that mode (0600 for a
** private one), whatever the umask, before a byte is written (mode nil or
** 0: 0666 less the umask). media.save(path, bytes, mode, true): never over
** a file at path, whatever made it since the caller looked (body.c).
*/
static int media_save (lua_State *L) {
  size_t plen, n;
  const char *path = luaL_checklstring(L, 1, &plen);
  const char *bytes = luaL_checklstring(L, 2, &n);
  lua_Integer mode = luaL_optinteger(L, 3, 0);
  aigc_body b;
  char msg[1024], eb[AIGC_ERRBUF];
  int failed;
  if (plen == 0 || strlen(path) != plen)
    return luaL_argerror(L, 1, "an empty path or one with a NUL byte");
  luaL_argcheck(L, mode >= 0 && mode <= 07777, 3, "a file mode (0 to 4095) expected");
  memset(&b, 0, sizeof b);
  if (aigc_body_set_path(&b, path) != 0)
    return luaL_error(L, "not enough memory");
  b.part_mode = (unsigned)mode;
  b.no_replace = lua_toboolean(L, 4);
  failed = aigc_body_write_file(&b, bytes, n) != 0 || aigc_body_commit(&b) != 0;
  /* (the image's path: its part file is no name of the caller's; and not the
     sink's advice for a FIFO or a device, a function as `to`: save has none) */
  if (failed && b.sink_kind != NULL && b.sink_kind[0] == 'a' && b.sink_kind[1] == ' ')
    snprintf(msg, sizeof msg, "could not write %.700s: it is %s%s", b.path, b.sink_kind,
             strcmp(b.sink_kind, "a directory") == 0 ? "" : ", not a regular file");
  else if (failed)
    snprintf(msg, sizeof msg, "could not write %.700s: %s", b.path, aigc_body_sink_error(&b, eb, sizeof eb));
  aigc_body_free(&b);   /* (a part file left by a failed write: removed) */
  if (failed) {
    luaL_pushfail(L);
    lua_pushstring(L, msg);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/*
** {======================================================
** A device or a pipe named by path (media.open_through)
** =======================================================
*/

#define AIGC_THROUGH_MT "aigc.media.through"

typedef struct through {
  int fd;   /* -1: closed */
} through;

static through *check_through (lua_State *L) {
  return (through *)luaL_checkudata(L, 1, AIGC_THROUGH_MT);
}

/* nil, "could not write PATH: WHY" (two values pushed). */
static int through_fail (lua_State *L, const char *path, const char *why) {
  luaL_pushfail(L);
  lua_pushfstring(L, "could not write %s: %s", path, why);
  return 2;
}

/*
** media.open_through(path) -> writer | nil, message: path opened to be
** written as it is -- no "<path>.part", no rename -- for what cannot be
** replaced by a file: a FIFO, a character device (/dev/null), a name of a
** descriptor (/dev/stdout, /dev/fd/N of `-o >(player)`), as `curl -o`
** writes them. O_NONBLOCK at the open only: a FIFO that no process reads
** fails at once (ENXIO) instead of waiting for a reader for ever; the
** writes then block as any write to a pipe does. O_APPEND: a file reached
** through /dev/stdout (`> out.png`, `>> log`) is written after what its
** descriptor holds, as the shell's own descriptor would be. A terminal is
** refused (binary data) and so is a block device (a disk).
*/
static int media_open_through (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  through *t = (through *)lua_newuserdatauv(L, sizeof *t, 0);
  struct stat st;
  int flags;
  t->fd = -1;
  luaL_setmetatable(L, AIGC_THROUGH_MT);   /* (closed: __gc is safe at every step) */
  do
    t->fd = open(path, O_WRONLY | O_NONBLOCK | O_APPEND | O_NOCTTY | O_CLOEXEC);
  while (t->fd < 0 && errno == EINTR);
  if (t->fd < 0) {
    int e = errno;
    char eb[AIGC_ERRBUF];
    if (e == ENXIO && stat(path, &st) == 0 && S_ISSOCK(st.st_mode))   /* (stdout a socket: journald's) */
      return through_fail(L, path, "it is a socket, which cannot be opened by its name");
    return through_fail(L, path, e == ENXIO
                        ? "no process reads it (a FIFO or a pipe is written only while it is read)"
                        : aigc_strerror(e, eb, sizeof eb));
  }
  if (fstat(t->fd, &st) != 0 || (flags = fcntl(t->fd, F_GETFL)) < 0
      || fcntl(t->fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
    char eb[AIGC_ERRBUF];
    return through_fail(L, path, aigc_strerror(errno, eb, sizeof eb));
  }
  if (S_ISBLK(st.st_mode))
    return through_fail(L, path, "it is a block device, not a regular file");
  if (isatty(t->fd))
    return through_fail(L, path, "it is a terminal (binary data is not written there)");
  return 1;   /* (a failure's descriptor is closed by __gc) */
}

/* writer:write(s) -> true | nil, message: all of s, or why not. */
static int through_write (lua_State *L) {
  through *t = check_through(L);
  size_t n, done = 0;
  const char *s = luaL_checklstring(L, 2, &n);
  if (t->fd < 0)
    return luaL_error(L, "attempt to use a closed writer");
  while (done < n) {
    ssize_t w = write(t->fd, s + done, n - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      char eb[AIGC_ERRBUF];
      luaL_pushfail(L);
      lua_pushstring(L, aigc_strerror(w < 0 ? errno : EIO, eb, sizeof eb));
      return 2;
    }
    done += (size_t)w;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* writer:close() -> true | nil, message (close(2) checked: an NFS file
   reached through /dev/stdout tells a failed write only there). */
static int through_close (lua_State *L) {
  through *t = check_through(L);
  int fd = t->fd;
  t->fd = -1;
  if (fd >= 0 && close(fd) != 0 && errno != EINTR) {
    char eb[AIGC_ERRBUF];
    luaL_pushfail(L);
    lua_pushstring(L, aigc_strerror(errno, eb, sizeof eb));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int through_gc (lua_State *L) {
  through *t = check_through(L);
  if (t->fd >= 0)
    close(t->fd);
  t->fd = -1;
  return 0;
}

static const luaL_Reg through_methods[] = {
  {"write", through_write},
  {"close", through_close},
  {NULL, NULL}
};

/* }====================================================== */

/* The array of numbers at idx as float32 in scratch (pushed); its length
   in *dim (checked against want unless want is 0). A value that is not a
   finite float32 (NaN, inf, beyond FLT_MAX, which C may not even convert)
   is refused: NaN compares false with everything, so a NaN row would rank
   above every real one and a NaN query would rank them all as equal. */
static float *floats_arg (lua_State *L, int idx, size_t want, size_t *dim) {
  size_t n, i;
  float *v;
  luaL_checktype(L, idx, LUA_TTABLE);
  n = (size_t)lua_rawlen(L, idx);
  if (n == 0 || (want != 0 && n != want))
    luaL_argerror(L, idx, lua_pushfstring(L, "a vector of %d numbers expected, got %d",
                                          (int)(want ? want : 1), (int)n));
  v = (float *)scratch(L, n * sizeof *v);
  for (i = 0; i < n; i++) {
    int isnum;
    lua_rawgeti(L, idx, (lua_Integer)(i + 1));
    lua_Number d = lua_tonumberx(L, -1, &isnum);
    if (!isnum)
      luaL_argerror(L, idx, lua_pushfstring(L, "element %d is not a number", (int)(i + 1)));
    if (!(fabs((double)d) <= FLT_MAX))
      luaL_argerror(L, idx, lua_pushfstring(L, "element %d is %s", (int)(i + 1),
                                            d != d ? "NaN" : isinf((double)d) ? "inf"
                                            : "beyond float32's range (3.4e38)"));
    v[i] = (float)d;
    lua_pop(L, 1);
  }
  *dim = n;
  return v;
}

/* vec.cosine(a, b) -> similarity in [-1, 1] */
static int vec_cosine (lua_State *L) {
  size_t da, db;
  float *a = floats_arg(L, 1, 0, &da), *b = floats_arg(L, 2, da, &db);
  lua_pushnumber(L, (lua_Number)aigc_vec_cosine(a, b, da));
  return 1;
}

/* An index: n unit vectors of dim floats, one malloc'ed block. */
typedef struct vindex {
  float *data;
  size_t n, cap, dim;
} vindex;

static vindex *check_index (lua_State *L) {
  return (vindex *)luaL_checkudata(L, 1, AIGC_VECINDEX_MT);
}

/* Frees its rows; idempotent. Also the state's sentinel's (home.h), for
   an index made while lua_close runs the finalizers: no __gc of its own
   then, and its rows leaked with each closed state. */
static void index_free_c (lua_State *L, void *object) {
  vindex *x = (vindex *)object;
  (void)L;
  free(x->data);
  x->data = NULL;
  x->n = x->cap = x->dim = 0;
}

static const aigc_home_kind index_home = { index_free_c };

/* vec.index() -> an empty index */
static int vec_index (lua_State *L) {
  vindex *x = (vindex *)lua_newuserdatauv(L, sizeof *x, 0);
  memset(x, 0, sizeof *x);
  luaL_setmetatable(L, AIGC_VECINDEX_MT);
  aigc_home_join(L, -1, &index_home);
  return 1;
}

/* The length of the vector at idx (read while x->dim was 0: any length)
   checked again: floats_arg's allocation may have run a finalizer that
   added a first vector of another length to this index. Rows of two
   lengths would be read past their end (a heap overflow once it grows). */
static void same_dim (lua_State *L, int idx, const vindex *x, size_t dim) {
  if (x->dim != 0 && dim != x->dim)
    luaL_argerror(L, idx, lua_pushfstring(L, "a vector of %d numbers expected, got %d",
                                          (int)x->dim, (int)dim));
}

/* index:add(v) -> its position (1-based); every vector of an index has the
   length of the first. */
static int index_add (lua_State *L) {
  vindex *x = check_index(L);
  size_t dim;
  float *v = floats_arg(L, 2, x->dim, &dim);   /* (may allocate: x->data is read after) */
  same_dim(L, 2, x, dim);
  if (x->n == x->cap) {
    size_t cap = x->cap ? 2 * x->cap : 16;
    float *d = (float *)realloc(x->data, cap * dim * sizeof *d);
    if (d == NULL)
      return luaL_error(L, "not enough memory");
    x->data = d;
    x->cap = cap;
  }
  x->dim = dim;
  aigc_vec_normalize(v, dim);
  memcpy(x->data + x->n * dim, v, dim * sizeof *v);
  x->n++;
  lua_pushinteger(L, (lua_Integer)x->n);
  return 1;
}

/* The k at idx: a positive integer (a float with an integer value too, as
   5.1 and LuaJIT have no integers; 1.5, inf and NaN are not). Read before
   anything is pushed: the scratch memory would take its place when k is
   absent. */
static size_t k_arg (lua_State *L, int idx) {
  lua_Number d;
  if (lua_type(L, idx) != LUA_TNUMBER)
    return (size_t)luaL_argerror(L, idx, lua_pushfstring(L, "a positive integer k expected, got %s",
                                                         luaL_typename(L, idx)));
  d = lua_tonumber(L, idx);
  if (!(d >= 1 && d == floor(d) && d < HUGE_VAL)) {
    if (d == floor(d) && fabs(d) < 1e9)   /* (0, -1: as the integers they are, not 0.0) */
      lua_pushfstring(L, "%d", (int)d);
    else
      lua_pushfstring(L, "%f", d);
    return (size_t)luaL_argerror(L, idx, lua_pushfstring(L, "a positive integer k expected, got %s",
                                                         lua_tostring(L, -1)));
  }
  return d < 9007199254740992.0 ? (size_t)d : (size_t)9007199254740992.0;   /* (2^53: more than any index) */
}

/* index:topk(q, k) -> positions, scores: the k most similar, best first */
static int index_topk (lua_State *L) {
  vindex *x = check_index(L);
  size_t dim, i, found, k = k_arg(L, 3);
  float *q;
  size_t *idx;
  double *score;
  q = floats_arg(L, 2, x->dim, &dim);   /* (checked also when the index is empty: x->dim is 0) */
  same_dim(L, 2, x, dim);   /* (then x->dim is fixed: the allocations below only add rows) */
  if (x->n == 0) {
    lua_newtable(L);
    lua_newtable(L);
    return 2;
  }
  if (k > x->n)
    k = x->n;
  idx = (size_t *)scratch(L, k * sizeof *idx);
  score = (double *)scratch(L, k * sizeof *score);
  aigc_vec_normalize(q, dim);
  found = aigc_vec_topk(x->data, x->n, dim, q, k, idx, score);   /* no Lua in here */
  lua_createtable(L, (int)found, 0);
  lua_createtable(L, (int)found, 0);
  for (i = 0; i < found; i++) {
    lua_pushinteger(L, (lua_Integer)idx[i] + 1);
    lua_rawseti(L, -3, (lua_Integer)(i + 1));
    lua_pushnumber(L, (lua_Number)score[i]);
    lua_rawseti(L, -2, (lua_Integer)(i + 1));
  }
  return 2;
}

static int index_len (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_index(L)->n);
  return 1;
}

static int index_gc (lua_State *L) {
  index_free_c(L, check_index(L));
  return 0;
}

static const luaL_Reg media_funcs[] = {
  {"b64decode", media_b64decode},
  {"f32", media_f32},
  {"save", media_save},
  {"open_through", media_open_through},
  {NULL, NULL}
};

static const luaL_Reg vec_funcs[] = {
  {"cosine", vec_cosine},
  {"index", vec_index},
  {NULL, NULL}
};

static const luaL_Reg index_methods[] = {
  {"add", index_add},
  {"topk", index_topk},
  {"len", index_len},
  {NULL, NULL}
};

void aigc_media_open (lua_State *L) {
  luaL_newmetatable(L, AIGC_VECINDEX_MT);
  luaL_newlib(L, index_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, index_len);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, index_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, AIGC_THROUGH_MT);
  luaL_newlib(L, through_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, through_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newlib(L, media_funcs);
  luaL_newlib(L, vec_funcs);
}
