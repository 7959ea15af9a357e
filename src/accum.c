/*
** accum.c — see accum.h.
**
** Two trees live in the accumulator. a->root is the merged state exactly
** as the chunks built it: choices in arrival order, each with its "index",
** tool calls still carrying theirs, nothing defaulted. aigc_accum_finish
** never touches it; it builds the shaped result as a separate owned tree,
** so finishing between adds changes nothing about later merges, and two
** finishes of the same state give the same tree.
**
** The shaped tree is kept in the one slot of root's member array past the
** last member (members[root.cap - 1], key NULL): a->root stays a plain
** owned object for anything that reads it, and the accumulator needs no
** field the header does not have. members_reserve keeps that slot in place
** when root grows; aigc_accum_free releases it.
**
** Every add is all or nothing. Each change to the tree is an append (to a
** string, an array or an object) or a replacement, and each is logged
** first: the length before an append, the old value of a replacement. If
** the chunk turns out malformed or memory runs out, the log is undone in
** reverse, which restores the tree exactly; otherwise the replaced values
** are freed. A log entry names its target by its path from the root (member
** and item positions), not by pointer, because a later append in the same
** chunk may move the array that holds it; positions of existing children
** never change, so the path stays valid.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "accum.h"

#define NOPOS ((size_t)-1)

static const char *chunk_object (aigc_accum_kind kind) {
  return kind == AIGC_ACCUM_CHAT ? "chat.completion.chunk" : "text_completion";
}

static const char *result_object (aigc_accum_kind kind) {
  return kind == AIGC_ACCUM_CHAT ? "chat.completion" : "text_completion";
}

static int key_is (const aj_member *m, const char *key) {
  size_t n = strlen(key);
  return m->key_len == n && memcmp(m->key, key, n) == 0;
}

/* Position of the last member named key[0..n), or NOPOS. */
static size_t find (const aj_value *obj, const char *key, size_t n) {
  size_t i;
  for (i = obj->len; i-- > 0; ) {
    const aj_member *m = &obj->u.members[i];
    if (m->key_len == n && memcmp(m->key, key, n) == 0)
      return i;
  }
  return NOPOS;
}

#define FIND(obj, lit)  find((obj), (lit), sizeof(lit) - 1)

/*
** An index in 0..AIGC_ACCUM_MAX_INDEX from an "index" member: the index,
** -1 if it is absent or null (the caller decides the default), -2 if it
** is anything else.
*/
static int index_of (const aj_value *obj) {
  const aj_value *iv = aj_get(obj, "index");
  if (iv == NULL || iv->type == AJ_NULL)
    return -1;
  if (iv->type != AJ_INT || iv->u.i < 0 || iv->u.i > AIGC_ACCUM_MAX_INDEX)
    return -2;
  return (int)iv->u.i;
}

/*
** Members whose delta value replaces the accumulated one instead of being
** appended: identifiers and enumerations a server may repeat per chunk.
*/
static int replaces (const aj_member *m) {
  switch (m->key_len) {
    case 2: return key_is(m, "id");
    case 4: return key_is(m, "type") || key_is(m, "name") || key_is(m, "role");
    case 5: return key_is(m, "index");
    case 13: return key_is(m, "finish_reason");
    default: return 0;
  }
}

/* An array merged item by item on "index": non-empty, every item an
** object with an integer "index". */
static int indexed_array (const aj_value *v) {
  size_t i;
  if (v->type != AJ_ARRAY || v->len == 0)
    return 0;
  for (i = 0; i < v->len; i++) {
    const aj_value *iv = aj_get(&v->u.items[i], "index");
    if (iv == NULL || iv->type != AJ_INT)
      return 0;
  }
  return 1;
}

/*
** Equal scalars (strings included). Replacing a value by an equal one is
** skipped: servers repeat id, model, created, role... in every chunk, and
** copying them each time would cost allocations on every chunk.
*/
static int same_scalar (const aj_value *a, const aj_value *b) {
  if (a->type != b->type)
    return 0;
  switch (a->type) {
    case AJ_NULL: case AJ_FALSE: case AJ_TRUE:
      return 1;
    case AJ_INT:
      return a->u.i == b->u.i;
    case AJ_FLOAT:
      return memcmp(&a->u.d, &b->u.d, sizeof(double)) == 0;
    case AJ_STRING:
      return a->len == b->len && memcmp(a->u.s, b->u.s, a->len) == 0;
    default:
      return 0;
  }
}

/* An empty value of the type: {}, [] or a scalar with no payload. */
static void empty (aj_value *v, aj_type type) {
  v->type = type;
  v->len = v->cap = 0;
  if (type == AJ_OBJECT)
    v->u.members = NULL;
  else if (type == AJ_ARRAY)
    v->u.items = NULL;
  else
    v->u.i = 0;
}

static int new_string (aj_value *v, const char *s) {
  size_t n = strlen(s);
  empty(v, AJ_NULL);
  if ((v->u.s = (char *)malloc(n + 1)) == NULL)
    return -1;
  memcpy(v->u.s, s, n + 1);
  v->type = AJ_STRING;
  v->len = n;
  v->cap = n + 1;
  return 0;
}


/* {====================================================================
** Growing owned nodes
** ===================================================================== */

/* New capacity for at least `need` elements of size elem, doubling. */
static int next_cap (size_t cap, size_t need, size_t elem, size_t *ncap) {
  size_t c = cap < 4 ? 4 : cap;
  while (c < need) {
    if (c > ((size_t)-1 / 2) / elem)
      return -1;
    c *= 2;
  }
  if (c > (size_t)-1 / elem)
    return -1;
  *ncap = c;
  return 0;
}

/*
** Room for `extra` more members in obj. For the accumulator's root one
** more slot is kept at the very end, the shaped-result slot, which moves to
** the new end when the array grows (and is created empty the first time).
*/
static int members_reserve (aigc_accum *a, aj_value *obj, size_t extra) {
  int is_root = (obj == &a->root);
  size_t need, ncap;
  aj_member *m;
  if (extra > (size_t)-1 - obj->len - 1)
    return -1;
  need = obj->len + extra + (size_t)is_root;
  if (need <= obj->cap)
    return 0;
  if (next_cap(obj->cap, need, sizeof(aj_member), &ncap) != 0)
    return -1;
  m = (aj_member *)realloc(obj->u.members, ncap * sizeof(aj_member));
  if (m == NULL)
    return -1;
  if (is_root) {
    if (obj->cap > 0)
      m[ncap - 1] = m[obj->cap - 1];
    else {
      m[ncap - 1].key = NULL;
      m[ncap - 1].key_len = 0;
      empty(&m[ncap - 1].value, AJ_NULL);
    }
  }
  obj->u.members = m;
  obj->cap = ncap;
  return 0;
}

static int items_reserve (aj_value *arr, size_t extra) {
  size_t ncap;
  aj_value *items;
  if (extra > (size_t)-1 - arr->len)
    return -1;
  if (arr->len + extra <= arr->cap)
    return 0;
  if (next_cap(arr->cap, arr->len + extra, sizeof(aj_value), &ncap) != 0)
    return -1;
  items = (aj_value *)realloc(arr->u.items, ncap * sizeof(aj_value));
  if (items == NULL)
    return -1;
  arr->u.items = items;
  arr->cap = ncap;
  return 0;
}

/* Room for `extra` more bytes (and the NUL) in an owned string. Doubling
** keeps appending deltas amortized O(1) per chunk. */
static int bytes_reserve (aj_value *str, size_t extra) {
  size_t ncap;
  char *s;
  if (extra > (size_t)-1 - str->len - 1)
    return -1;
  if (str->len + extra + 1 <= str->cap)
    return 0;
  if (next_cap(str->cap, str->len + extra + 1, 1, &ncap) != 0)
    return -1;
  s = (char *)realloc(str->u.s, ncap);
  if (s == NULL)
    return -1;
  str->u.s = s;
  str->cap = ncap;
  return 0;
}

/* The shaped-result slot, or NULL before root has a member array. */
static aj_value *shaped_slot (aigc_accum *a) {
  if (a->root.cap == 0)
    return NULL;
  return &a->root.u.members[a->root.cap - 1].value;
}

static void shaped_clear (aigc_accum *a) {
  aj_value *sh = shaped_slot(a);
  if (sh != NULL)
    aj_free(sh);
}

/* }==================================================================== */


/* {====================================================================
** The undo log
** ===================================================================== */

enum { U_LEN, U_REPLACE };

typedef struct undo {
  int kind;
  size_t path;       /* where its path starts in merge.paths */
  size_t depth;      /* the path's length */
  size_t old_len;    /* U_LEN: the length to cut the target back to */
  aj_value old;      /* U_REPLACE: the replaced value (owned by the log) */
} undo;

#define PATH_LOCAL  16
#define LOG_LOCAL   8
#define PATHS_LOCAL 48

/*
** One add in progress. `path` is where the merge currently is: the
** positions leading from root to the node being changed. The log and the
** saved paths start in local arrays; only unusual chunks spill to the heap.
*/
typedef struct merge {
  aigc_accum *a;
  size_t *path;
  size_t depth, cpath;
  undo *log;
  size_t nlog, clog;
  size_t *paths;
  size_t npaths, cpaths;
  size_t path_local[PATH_LOCAL];
  undo log_local[LOG_LOCAL];
  size_t paths_local[PATHS_LOCAL];
} merge;

/* Grows *p (cap items of elem bytes, first `local`) to hold `need`. */
static int grow (void **p, size_t *cap, size_t need, size_t elem,
                 void *local) {
  size_t ncap;
  void *np;
  if (need <= *cap)
    return 0;
  if (next_cap(*cap, need, elem, &ncap) != 0)
    return -1;
  if (*p == local) {
    np = malloc(ncap * elem);
    if (np != NULL)
      memcpy(np, *p, *cap * elem);
  }
  else
    np = realloc(*p, ncap * elem);
  if (np == NULL)
    return -1;
  *p = np;
  *cap = ncap;
  return 0;
}

static void merge_init (merge *M, aigc_accum *a) {
  M->a = a;
  M->path = M->path_local;
  M->depth = 0;
  M->cpath = PATH_LOCAL;
  M->log = M->log_local;
  M->nlog = 0;
  M->clog = LOG_LOCAL;
  M->paths = M->paths_local;
  M->npaths = 0;
  M->cpaths = PATHS_LOCAL;
}

static void merge_release (merge *M) {
  if (M->path != M->path_local) free(M->path);
  if (M->log != M->log_local) free(M->log);
  if (M->paths != M->paths_local) free(M->paths);
}

static int push (merge *M, size_t pos) {
  if (grow((void **)&M->path, &M->cpath, M->depth + 1, sizeof(size_t),
           M->path_local) != 0)
    return AIGC_ACCUM_NOMEM;
  M->path[M->depth++] = pos;
  return AIGC_ACCUM_OK;
}

static void pop (merge *M) {
  M->depth--;
}

/* Records a change about to be made to the node at the current path. */
static int log_change (merge *M, int kind, size_t old_len,
                       const aj_value *old) {
  undo *u;
  if (grow((void **)&M->log, &M->clog, M->nlog + 1, sizeof(undo),
           M->log_local) != 0 ||
      grow((void **)&M->paths, &M->cpaths, M->npaths + M->depth,
           sizeof(size_t), M->paths_local) != 0)
    return -1;
  u = &M->log[M->nlog++];
  u->kind = kind;
  u->path = M->npaths;
  u->depth = M->depth;
  if (M->depth > 0)
    memcpy(M->paths + M->npaths, M->path, M->depth * sizeof(size_t));
  M->npaths += M->depth;
  u->old_len = old_len;
  if (old != NULL)
    u->old = *old;
  else
    empty(&u->old, AJ_NULL);
  return 0;
}

static aj_value *resolve (aigc_accum *a, const size_t *path, size_t depth) {
  aj_value *v = &a->root;
  size_t i;
  for (i = 0; i < depth; i++)
    v = (v->type == AJ_OBJECT) ? &v->u.members[path[i]].value
                               : &v->u.items[path[i]];
  return v;
}

/* Cuts an appended-to node back to n bytes, items or members. */
static void truncate_to (aj_value *v, size_t n) {
  size_t i;
  switch (v->type) {
    case AJ_STRING:
      v->len = n;
      v->u.s[n] = '\0';
      break;
    case AJ_ARRAY:
      for (i = n; i < v->len; i++)
        aj_free(&v->u.items[i]);
      v->len = n;
      break;
    case AJ_OBJECT:
      for (i = n; i < v->len; i++) {
        free(v->u.members[i].key);
        aj_free(&v->u.members[i].value);
      }
      v->len = n;
      break;
    default:
      break;
  }
}

/*
** Undoes the log newest first. Each entry finds the tree exactly as it was
** right after its own change, so its path leads to its target.
*/
static void rollback (merge *M) {
  while (M->nlog > 0) {
    undo *u = &M->log[--M->nlog];
    aj_value *v = resolve(M->a, M->paths + u->path, u->depth);
    if (u->kind == U_REPLACE) {
      aj_free(v);
      *v = u->old;
    }
    else
      truncate_to(v, u->old_len);
  }
}

static void commit (merge *M) {
  size_t i;
  for (i = 0; i < M->nlog; i++)
    if (M->log[i].kind == U_REPLACE)
      aj_free(&M->log[i].old);
  M->nlog = 0;
}

static int badshape (merge *M, const char *msg) {
  size_t n = strlen(msg);
  if (n >= sizeof(M->a->error))
    n = sizeof(M->a->error) - 1;
  memcpy(M->a->error, msg, n);
  M->a->error[n] = '\0';
  return AIGC_ACCUM_BADSHAPE;
}

/* }==================================================================== */


/* {====================================================================
** Logged changes. Each acts on the node at the current path; those that
** add a value take ownership of it (freeing it if they fail).
** ===================================================================== */

static int obj_append (merge *M, aj_value *obj, const char *key,
                       size_t key_len, aj_value *val, size_t *pos) {
  char *k = (key_len < (size_t)-1) ? (char *)malloc(key_len + 1) : NULL;
  aj_member *m;
  if (k == NULL || log_change(M, U_LEN, obj->len, NULL) != 0 ||
      members_reserve(M->a, obj, 1) != 0) {
    free(k);
    aj_free(val);
    return AIGC_ACCUM_NOMEM;
  }
  if (key_len > 0)
    memcpy(k, key, key_len);
  k[key_len] = '\0';
  m = &obj->u.members[obj->len];
  m->key = k;
  m->key_len = key_len;
  m->value = *val;
  *pos = obj->len++;
  return AIGC_ACCUM_OK;
}

static int arr_append (merge *M, aj_value *arr, aj_value *val, size_t *pos) {
  if (log_change(M, U_LEN, arr->len, NULL) != 0 ||
      items_reserve(arr, 1) != 0) {
    aj_free(val);
    return AIGC_ACCUM_NOMEM;
  }
  arr->u.items[arr->len] = *val;
  *pos = arr->len++;
  return AIGC_ACCUM_OK;
}

static int str_append (merge *M, aj_value *str, const char *s, size_t n) {
  if (n == 0)
    return AIGC_ACCUM_OK;
  if (log_change(M, U_LEN, str->len, NULL) != 0 || bytes_reserve(str, n) != 0)
    return AIGC_ACCUM_NOMEM;
  memcpy(str->u.s + str->len, s, n);
  str->len += n;
  str->u.s[str->len] = '\0';
  return AIGC_ACCUM_OK;
}

static int replace (merge *M, aj_value *slot, aj_value *val) {
  if (log_change(M, U_REPLACE, 0, slot) != 0) {
    aj_free(val);
    return AIGC_ACCUM_NOMEM;
  }
  *slot = *val;
  return AIGC_ACCUM_OK;
}

/* }==================================================================== */


/* {====================================================================
** Key lookup for big merges
** ===================================================================== */

/*
** Merging a delta object looks up each of its keys in the accumulated
** object. A linear search is the fastest thing for the handful of members
** real chunks have, but a hostile chunk with n keys would cost O(n^2); so
** from KI_MIN delta members on, the accumulated object gets a temporary
** hash index (open addressing, member position + 1 per slot, at most half
** full: each delta member adds at most one member). It lives for one merge
** of one object, so it never has to survive a rollback.
*/
#define KI_MIN 16

typedef struct keyindex {
  size_t *slot;      /* NULL: no index, search linearly */
  size_t mask;
} keyindex;

static size_t key_hash (const char *key, size_t n) {
  uint64_t h = UINT64_C(14695981039346656037);   /* FNV-1a */
  size_t i;
  for (i = 0; i < n; i++)
    h = (h ^ (unsigned char)key[i]) * UINT64_C(1099511628211);
  return (size_t)(h ^ (h >> 32));
}

/* Records member pos of obj; a later position wins, as in find(). */
static void ki_add (keyindex *ix, const aj_value *obj, size_t pos) {
  const aj_member *m = &obj->u.members[pos];
  size_t h;
  if (ix == NULL || ix->slot == NULL)
    return;
  for (h = key_hash(m->key, m->key_len) & ix->mask; ix->slot[h] != 0;
       h = (h + 1) & ix->mask) {
    const aj_member *o = &obj->u.members[ix->slot[h] - 1];
    if (o->key_len == m->key_len && memcmp(o->key, m->key, m->key_len) == 0)
      break;
  }
  ix->slot[h] = pos + 1;
}

/* Prepares to merge `more` delta members into obj. */
static int ki_open (keyindex *ix, const aj_value *obj, size_t more) {
  size_t want, cap = 32, i;
  ix->slot = NULL;
  if (more < KI_MIN)
    return AIGC_ACCUM_OK;
  if (more > ((size_t)-1 / 4) - obj->len)
    return AIGC_ACCUM_NOMEM;
  want = 2 * (obj->len + more);
  while (cap < want)
    cap *= 2;
  if (cap > (size_t)-1 / sizeof(size_t) ||
      (ix->slot = (size_t *)calloc(cap, sizeof(size_t))) == NULL)
    return AIGC_ACCUM_NOMEM;
  ix->mask = cap - 1;
  for (i = 0; i < obj->len; i++)
    ki_add(ix, obj, i);
  return AIGC_ACCUM_OK;
}

static void ki_close (keyindex *ix) {
  free(ix->slot);
  ix->slot = NULL;
}

/* find(), through the index when there is one. */
static size_t ki_find (const keyindex *ix, const aj_value *obj,
                       const char *key, size_t n) {
  size_t h;
  if (ix == NULL || ix->slot == NULL)
    return find(obj, key, n);
  for (h = key_hash(key, n) & ix->mask; ix->slot[h] != 0;
       h = (h + 1) & ix->mask) {
    const aj_member *o = &obj->u.members[ix->slot[h] - 1];
    if (o->key_len == n && memcmp(o->key, key, n) == 0)
      return ix->slot[h] - 1;
  }
  return NOPOS;
}

/* }==================================================================== */


/* {====================================================================
** Merging
** ===================================================================== */

static int merge_member (merge *M, aj_value *obj, const aj_member *dm,
                         keyindex *ix);

/*
** Merges every member of the delta object into the object at the current
** path; drop_obfuscation at the delta level (the "obfuscation" padding).
*/
static int merge_object (merge *M, aj_value *obj, const aj_value *delta,
                         int drop_obfuscation) {
  keyindex ix;
  size_t i;
  int rc = ki_open(&ix, obj, delta->len);
  for (i = 0; i < delta->len && rc == AIGC_ACCUM_OK; i++) {
    const aj_member *dm = &delta->u.members[i];
    if (!(drop_obfuscation && key_is(dm, "obfuscation")))
      rc = merge_member(M, obj, dm, &ix);
  }
  ki_close(&ix);
  return rc;
}

/*
** The value a delta value starts as where nothing was accumulated yet.
** Objects and index-merged arrays start empty and are then filled by
** merging (*fill set), so what they hold obeys the same rules as later
** deltas: a tool call index out of range is refused on the first chunk
** too, and two items with one index in a delta become one. Anything else
** is a deep copy.
*/
static int fresh (const aj_value *dv, aj_value *out, int *fill) {
  if (dv->type == AJ_OBJECT || indexed_array(dv)) {
    empty(out, dv->type);
    *fill = 1;
    return AIGC_ACCUM_OK;
  }
  *fill = 0;
  return aj_copy(out, dv) == 0 ? AIGC_ACCUM_OK : AIGC_ACCUM_NOMEM;
}

static int merge_indexed (merge *M, aj_value *arr, const aj_value *dv);

/* Merges dv into the empty node that fresh() made for it, at the current
** path. */
static int fill (merge *M, aj_value *v, const aj_value *dv) {
  if (dv->type == AJ_ARRAY)
    return merge_indexed(M, v, dv);
  return merge_object(M, v, dv, 0);
}

/* Replaces the node at the current path with a fresh value for dv. */
static int set (merge *M, aj_value *slot, const aj_value *dv) {
  aj_value nv;
  int want_fill, rc;
  if ((rc = fresh(dv, &nv, &want_fill)) != AIGC_ACCUM_OK ||
      (rc = replace(M, slot, &nv)) != AIGC_ACCUM_OK)
    return rc;
  return want_fill ? fill(M, slot, dv) : AIGC_ACCUM_OK;
}

/*
** Arrays whose delta items carry an integer "index" (tool calls) merge
** item by item: the accumulated item with the same index, or a new one.
** The map is built once per merge; appending never moves existing items'
** positions, so it stays right as items are added.
*/
static int merge_indexed (merge *M, aj_value *arr, const aj_value *dv) {
  size_t map[AIGC_ACCUM_MAX_INDEX + 1];
  size_t i, pos;
  int rc;
  for (i = 0; i <= AIGC_ACCUM_MAX_INDEX; i++)
    map[i] = NOPOS;
  for (i = 0; i < arr->len; i++) {
    int k = index_of(&arr->u.items[i]);
    if (arr->u.items[i].type == AJ_OBJECT && k >= 0 && map[k] == NOPOS)
      map[k] = i;
  }
  for (i = 0; i < dv->len; i++) {
    const aj_value *d = &dv->u.items[i];
    aj_value *item;
    int k = index_of(d);
    if (k < 0)
      return badshape(M, "array item \"index\" out of 0..127");
    if (map[k] == NOPOS) {
      aj_value nv;
      empty(&nv, AJ_OBJECT);
      if ((rc = arr_append(M, arr, &nv, &pos)) != AIGC_ACCUM_OK)
        return rc;
      map[k] = pos;
    }
    if ((rc = push(M, map[k])) != AIGC_ACCUM_OK)
      return rc;
    item = &arr->u.items[map[k]];
    rc = merge_object(M, item, d, 0);
    pop(M);
    if (rc != AIGC_ACCUM_OK)
      return rc;
  }
  return AIGC_ACCUM_OK;
}

/* Both arrays: merged by index, or the delta's items appended. */
static int merge_array (merge *M, aj_value *arr, const aj_value *dv) {
  size_t i, pos;
  int rc;
  if (indexed_array(dv))
    return merge_indexed(M, arr, dv);
  for (i = 0; i < dv->len; i++) {
    aj_value nv;
    if (aj_copy(&nv, &dv->u.items[i]) != 0)
      return AIGC_ACCUM_NOMEM;
    if ((rc = arr_append(M, arr, &nv, &pos)) != AIGC_ACCUM_OK)
      return rc;
  }
  return AIGC_ACCUM_OK;
}

/*
** Merges one delta member into the object at the current path, by the
** rules in accum.h: absent -> added; null -> nothing; identifiers ->
** replaced; strings -> appended; objects -> merged; arrays -> merged by
** index or appended; anything else -> replaced.
*/
static int merge_member (merge *M, aj_value *obj, const aj_member *dm,
                         keyindex *ix) {
  const aj_value *dv = &dm->value;
  size_t pos = ki_find(ix, obj, dm->key, dm->key_len);
  aj_value *av;
  int rc;
  if (pos == NOPOS) {
    aj_value nv;
    int want_fill;
    if ((rc = fresh(dv, &nv, &want_fill)) != AIGC_ACCUM_OK ||
        (rc = obj_append(M, obj, dm->key, dm->key_len, &nv, &pos))
          != AIGC_ACCUM_OK)
      return rc;
    ki_add(ix, obj, pos);
    if (!want_fill)
      return AIGC_ACCUM_OK;
    if ((rc = push(M, pos)) != AIGC_ACCUM_OK)
      return rc;
    rc = fill(M, &obj->u.members[pos].value, dv);
    pop(M);
    return rc;
  }
  if (dv->type == AJ_NULL)
    return AIGC_ACCUM_OK;
  if ((rc = push(M, pos)) != AIGC_ACCUM_OK)
    return rc;
  av = &obj->u.members[pos].value;
  if (replaces(dm))
    rc = same_scalar(av, dv) ? AIGC_ACCUM_OK : set(M, av, dv);
  else if (av->type == AJ_STRING && dv->type == AJ_STRING)
    rc = str_append(M, av, dv->u.s, dv->len);
  else if (av->type == AJ_OBJECT && dv->type == AJ_OBJECT)
    rc = merge_object(M, av, dv, 0);
  else if (av->type == AJ_ARRAY && dv->type == AJ_ARRAY)
    rc = merge_array(M, av, dv);
  else
    rc = set(M, av, dv);
  pop(M);
  return rc;
}

/* A chat delta merges into the choice's "message" (an object). */
static int merge_delta (merge *M, aj_value *choice, const aj_value *delta,
                        keyindex *cix) {
  size_t pos = ki_find(cix, choice, "message", 7);
  aj_value *msg;
  int rc = AIGC_ACCUM_OK;
  if (pos == NOPOS) {
    aj_value nv;
    empty(&nv, AJ_OBJECT);
    if ((rc = obj_append(M, choice, "message", 7, &nv, &pos)) != AIGC_ACCUM_OK)
      return rc;
    ki_add(cix, choice, pos);
  }
  if ((rc = push(M, pos)) != AIGC_ACCUM_OK)
    return rc;
  msg = &choice->u.members[pos].value;
  if (msg->type != AJ_OBJECT) {
    aj_value nv;
    empty(&nv, AJ_OBJECT);
    rc = replace(M, msg, &nv);
  }
  if (rc == AIGC_ACCUM_OK)
    rc = merge_object(M, msg, delta, 1);
  pop(M);
  return rc;
}

/* Position of the accumulated choice with index k, or NOPOS. Every
** accumulated choice is an object whose first member is its "index". */
static size_t find_choice (const aj_value *choices, int k) {
  size_t i;
  for (i = 0; i < choices->len; i++) {
    const aj_value *c = &choices->u.items[i];
    if (c->u.members[0].value.u.i == k)
      return i;
  }
  return NOPOS;
}

static int new_choice (aj_value *v, int k) {
  aj_member *m = (aj_member *)malloc(4 * sizeof(aj_member));
  char *key = (char *)malloc(sizeof("index"));
  if (m == NULL || key == NULL) {
    free(m);
    free(key);
    return AIGC_ACCUM_NOMEM;
  }
  memcpy(key, "index", sizeof("index"));
  m[0].key = key;
  m[0].key_len = 5;
  m[0].value.type = AJ_INT;
  m[0].value.len = m[0].value.cap = 0;
  m[0].value.u.i = k;
  v->type = AJ_OBJECT;
  v->len = 1;
  v->cap = 4;
  v->u.members = m;
  return AIGC_ACCUM_OK;
}

/* The chunk's "choices" into the accumulated array at the current path. */
static int merge_choices (merge *M, aj_value *acc, const aj_value *choices) {
  int chat = (M->a->kind == AIGC_ACCUM_CHAT);
  size_t i, j, pos;
  int rc;
  for (i = 0; i < choices->len; i++) {
    const aj_value *ch = &choices->u.items[i];
    aj_value *c;
    keyindex cix;
    int k;
    if (ch->type != AJ_OBJECT)
      return badshape(M, "choice is not an object");
    k = index_of(ch);
    if (k == -2)
      return badshape(M, "choice \"index\" out of 0..127");
    if (k == -1)
      k = 0;
    pos = find_choice(acc, k);
    if (pos == NOPOS) {
      aj_value nv;
      if ((rc = new_choice(&nv, k)) != AIGC_ACCUM_OK ||
          (rc = arr_append(M, acc, &nv, &pos)) != AIGC_ACCUM_OK)
        return rc;
    }
    c = &acc->u.items[pos];
    if ((rc = push(M, pos)) != AIGC_ACCUM_OK ||
        (rc = ki_open(&cix, c, ch->len)) != AIGC_ACCUM_OK)
      return rc;
    for (j = 0; j < ch->len && rc == AIGC_ACCUM_OK; j++) {
      const aj_member *m = &ch->u.members[j];
      if (key_is(m, "index") || key_is(m, "obfuscation"))
        continue;
      if (chat && key_is(m, "delta")) {
        if (m->value.type == AJ_NULL)
          continue;
        if (m->value.type != AJ_OBJECT)
          rc = badshape(M, "\"delta\" is not an object");
        else
          rc = merge_delta(M, c, &m->value, &cix);
      }
      else
        rc = merge_member(M, c, m, &cix);
    }
    ki_close(&cix);
    pop(M);
    if (rc != AIGC_ACCUM_OK)
      return rc;
  }
  return AIGC_ACCUM_OK;
}

/* The top level: choices merged, other members replaced whole. */
static int merge_chunk (merge *M, const aj_value *chunk) {
  aj_value *root = &M->a->root;
  keyindex rix;
  size_t i, pos;
  int rc = ki_open(&rix, root, chunk->len);
  for (i = 0; i < chunk->len && rc == AIGC_ACCUM_OK; i++) {
    const aj_member *m = &chunk->u.members[i];
    const aj_value *dv = &m->value;
    aj_value nv;
    if (key_is(m, "obfuscation"))
      continue;
    if (key_is(m, "choices")) {
      if (dv->type == AJ_NULL)
        continue;
      if (dv->type != AJ_ARRAY) {
        rc = badshape(M, "\"choices\" is not an array");
        break;
      }
      pos = ki_find(&rix, root, "choices", 7);
      if (pos == NOPOS) {
        empty(&nv, AJ_ARRAY);
        if ((rc = obj_append(M, root, "choices", 7, &nv, &pos))
              != AIGC_ACCUM_OK)
          break;
        ki_add(&rix, root, pos);
      }
      if ((rc = push(M, pos)) != AIGC_ACCUM_OK)
        break;
      rc = merge_choices(M, &root->u.members[pos].value, dv);
      pop(M);
    }
    else if (key_is(m, "object")) {
      if (ki_find(&rix, root, "object", 6) == NOPOS) {
        if (new_string(&nv, result_object(M->a->kind)) != 0)
          rc = AIGC_ACCUM_NOMEM;
        else if ((rc = obj_append(M, root, "object", 6, &nv, &pos))
                   == AIGC_ACCUM_OK)
          ki_add(&rix, root, pos);
      }
    }
    else {
      pos = ki_find(&rix, root, m->key, m->key_len);
      if (pos != NOPOS && (dv->type == AJ_NULL ||
                           same_scalar(&root->u.members[pos].value, dv)))
        continue;
      if (aj_copy(&nv, dv) != 0)
        rc = AIGC_ACCUM_NOMEM;
      else if (pos == NOPOS) {
        if ((rc = obj_append(M, root, m->key, m->key_len, &nv, &pos))
              == AIGC_ACCUM_OK)
          ki_add(&rix, root, pos);
      }
      else if ((rc = push(M, pos)) == AIGC_ACCUM_OK) {
        rc = replace(M, &root->u.members[pos].value, &nv);
        pop(M);
      }
      else
        aj_free(&nv);
    }
  }
  ki_close(&rix);
  return rc;
}

/* }==================================================================== */


/* {====================================================================
** Shaping (aigc_accum_finish): a new tree built from root
** ===================================================================== */

/* Appends (key, *val) to an owned object; takes *val. */
static int put (aj_value *obj, const char *key, size_t key_len,
                aj_value *val) {
  char *k = (key_len < (size_t)-1) ? (char *)malloc(key_len + 1) : NULL;
  size_t ncap;
  if (k == NULL)
    goto nomem;
  if (obj->len == obj->cap) {
    aj_member *m;
    if (next_cap(obj->cap, obj->len + 1, sizeof(aj_member), &ncap) != 0 ||
        (m = (aj_member *)realloc(obj->u.members,
                                  ncap * sizeof(aj_member))) == NULL)
      goto nomem;
    obj->u.members = m;
    obj->cap = ncap;
  }
  if (key_len > 0)
    memcpy(k, key, key_len);
  k[key_len] = '\0';
  obj->u.members[obj->len].key = k;
  obj->u.members[obj->len].key_len = key_len;
  obj->u.members[obj->len].value = *val;
  obj->len++;
  return 0;
nomem:
  free(k);
  aj_free(val);
  return -1;
}

#define PUT(obj, lit, val)  put((obj), (lit), sizeof(lit) - 1, (val))

static int put_copy (aj_value *obj, const aj_member *m) {
  aj_value nv;
  if (aj_copy(&nv, &m->value) != 0)
    return -1;
  return put(obj, m->key, m->key_len, &nv);
}

/* Copies obj's member `key` (when present and not null) or else *dflt. */
static int put_or (aj_value *out, const aj_value *obj, const char *key,
                   aj_value *dflt) {
  const aj_value *v = aj_get(obj, key);
  aj_value nv;
  if (v != NULL && v->type != AJ_NULL) {
    aj_free(dflt);
    if (aj_copy(&nv, v) != 0)
      return -1;
  }
  else
    nv = *dflt;
  return put(out, key, strlen(key), &nv);
}

/* Is m one of the NULL-terminated keys? */
static int among (const aj_member *m, const char *const *keys) {
  for (; *keys != NULL; keys++)
    if (key_is(m, *keys))
      return 1;
  return 0;
}

/* Appends items[order] to an owned array; takes *val. */
static int push_item (aj_value *arr, aj_value *val) {
  if (items_reserve(arr, 1) != 0) {
    aj_free(val);
    return -1;
  }
  arr->u.items[arr->len++] = *val;
  return 0;
}

/*
** The shape_* functions build *out from scratch; on failure they free what
** they built (leaving *out null) and return -1.
*/

/*
** Tool calls as a non-streamed response has them: in index order, without
** the "index" member. Items without a valid index keep their order after
** the rest (a stable counting sort on index, 128 standing for "none").
*/
static int shape_tool_calls (const aj_value *tc, aj_value *out) {
  size_t count[AIGC_ACCUM_MAX_INDEX + 3];
  size_t *order = NULL, i, j;
  if (tc->type != AJ_ARRAY)
    return aj_copy(out, tc);
  empty(out, AJ_ARRAY);
  if (tc->len == 0)
    return 0;
  if (tc->len > (size_t)-1 / sizeof(size_t) ||
      (order = (size_t *)malloc(tc->len * sizeof(size_t))) == NULL)
    goto nomem;
  memset(count, 0, sizeof(count));
  for (i = 0; i < tc->len; i++) {
    int k = index_of(&tc->u.items[i]);
    count[(k < 0 ? AIGC_ACCUM_MAX_INDEX + 1 : k) + 1]++;
  }
  for (i = 1; i < AIGC_ACCUM_MAX_INDEX + 3; i++)
    count[i] += count[i - 1];
  for (i = 0; i < tc->len; i++) {
    int k = index_of(&tc->u.items[i]);
    order[count[k < 0 ? AIGC_ACCUM_MAX_INDEX + 1 : k]++] = i;
  }
  for (i = 0; i < tc->len; i++) {
    const aj_value *item = &tc->u.items[order[i]];
    aj_value nv;
    if (item->type != AJ_OBJECT) {
      if (aj_copy(&nv, item) != 0)
        goto nomem;
    }
    else {
      empty(&nv, AJ_OBJECT);
      for (j = 0; j < item->len; j++) {
        if (!key_is(&item->u.members[j], "index") &&
            put_copy(&nv, &item->u.members[j]) != 0) {
          aj_free(&nv);
          goto nomem;
        }
      }
    }
    if (push_item(out, &nv) != 0)
      goto nomem;
  }
  free(order);
  return 0;
nomem:
  free(order);
  aj_free(out);
  return -1;
}

/* A chat message: "role" and "content" first, always present. */
static int shape_message (const aj_value *msg, aj_value *out) {
  static const char *const fixed[] = {"role", "content", NULL};
  aj_value nv;
  size_t i;
  empty(out, AJ_OBJECT);
  if (new_string(&nv, "assistant") != 0 || put_or(out, msg, "role", &nv) != 0)
    goto nomem;
  empty(&nv, AJ_NULL);
  if (put_or(out, msg, "content", &nv) != 0)
    goto nomem;
  if (msg == NULL || msg->type != AJ_OBJECT)
    return 0;
  for (i = 0; i < msg->len; i++) {
    const aj_member *m = &msg->u.members[i];
    if (among(m, fixed))
      continue;
    if (key_is(m, "tool_calls")) {
      if (shape_tool_calls(&m->value, &nv) != 0 ||
          put(out, m->key, m->key_len, &nv) != 0)
        goto nomem;
    }
    else if (put_copy(out, m) != 0)
      goto nomem;
  }
  return 0;
nomem:
  aj_free(out);
  return -1;
}

/*
** A choice in the order a non-streamed response writes it — chat: index,
** message, logprobs, finish_reason; completions: text, index, logprobs,
** finish_reason — then anything else the stream carried. Its first member
** is its "index" (see merge_choices).
*/
static int shape_choice (aigc_accum_kind kind, const aj_value *ch,
                         aj_value *out) {
  static const char *const fixed_chat[] =
    {"index", "message", "logprobs", "finish_reason", NULL};
  static const char *const fixed_text[] =
    {"text", "index", "logprobs", "finish_reason", NULL};
  aj_value nv;
  size_t i;
  empty(out, AJ_OBJECT);
  if (kind == AIGC_ACCUM_CHAT) {
    if (put_copy(out, &ch->u.members[0]) != 0 ||
        shape_message(aj_get(ch, "message"), &nv) != 0 ||
        PUT(out, "message", &nv) != 0)
      goto nomem;
  }
  else {
    if (new_string(&nv, "") != 0 || put_or(out, ch, "text", &nv) != 0 ||
        put_copy(out, &ch->u.members[0]) != 0)
      goto nomem;
  }
  empty(&nv, AJ_NULL);
  if (put_or(out, ch, "logprobs", &nv) != 0)
    goto nomem;
  empty(&nv, AJ_NULL);
  if (put_or(out, ch, "finish_reason", &nv) != 0)
    goto nomem;
  for (i = 0; i < ch->len; i++) {
    const aj_member *m = &ch->u.members[i];
    if (!among(m, kind == AIGC_ACCUM_CHAT ? fixed_chat : fixed_text) &&
        put_copy(out, m) != 0)
      goto nomem;
  }
  return 0;
nomem:
  aj_free(out);
  return -1;
}

/* Choices in index order (indexes are unique in root). */
static int shape_choices (aigc_accum_kind kind, const aj_value *choices,
                          aj_value *out) {
  size_t at[AIGC_ACCUM_MAX_INDEX + 1];
  size_t i;
  empty(out, AJ_ARRAY);
  for (i = 0; i <= AIGC_ACCUM_MAX_INDEX; i++)
    at[i] = NOPOS;
  for (i = 0; i < choices->len; i++)
    at[choices->u.items[i].u.members[0].value.u.i] = i;
  for (i = 0; i <= AIGC_ACCUM_MAX_INDEX; i++) {
    aj_value nv;
    if (at[i] == NOPOS)
      continue;
    if (shape_choice(kind, &choices->u.items[at[i]], &nv) != 0 ||
        push_item(out, &nv) != 0) {
      aj_free(out);
      return -1;
    }
  }
  return 0;
}

/*
** The whole response: root's members in order, "object" right after "id"
** when no chunk named it, "choices" and "usage" always present.
*/
static int shape (const aigc_accum *a, aj_value *out) {
  const aj_value *root = &a->root;
  int need_object = FIND(root, "object") == NOPOS;
  aj_value nv;
  size_t i;
  empty(out, AJ_OBJECT);
  if (need_object && FIND(root, "id") == NOPOS) {
    if (new_string(&nv, result_object(a->kind)) != 0 ||
        PUT(out, "object", &nv) != 0)
      goto nomem;
    need_object = 0;
  }
  for (i = 0; i < root->len; i++) {
    const aj_member *m = &root->u.members[i];
    if (key_is(m, "choices")) {
      if (shape_choices(a->kind, &m->value, &nv) != 0 ||
          put(out, m->key, m->key_len, &nv) != 0)
        goto nomem;
    }
    else if (put_copy(out, m) != 0)
      goto nomem;
    if (need_object && key_is(m, "id")) {
      if (new_string(&nv, result_object(a->kind)) != 0 ||
          PUT(out, "object", &nv) != 0)
        goto nomem;
      need_object = 0;
    }
  }
  if (FIND(root, "choices") == NOPOS) {
    empty(&nv, AJ_ARRAY);
    if (PUT(out, "choices", &nv) != 0)
      goto nomem;
  }
  if (FIND(root, "usage") == NOPOS) {
    empty(&nv, AJ_NULL);
    if (PUT(out, "usage", &nv) != 0)
      goto nomem;
  }
  return 0;
nomem:
  aj_free(out);
  return -1;
}

/* }==================================================================== */


void aigc_accum_init (aigc_accum *a, aigc_accum_kind kind) {
  a->kind = kind;
  empty(&a->root, AJ_OBJECT);
  a->chunks = 0;
  a->error[0] = '\0';
}

int aigc_accum_add (aigc_accum *a, const aj_value *chunk) {
  merge M;
  const aj_value *ov;
  int rc;
  a->error[0] = '\0';
  if (chunk == NULL || chunk->type != AJ_OBJECT) {
    strcpy(a->error, "chunk is not an object");
    return AIGC_ACCUM_BADSHAPE;
  }
  ov = aj_get(chunk, "object");
  if (ov != NULL && ov->type == AJ_STRING &&
      (ov->len != strlen(chunk_object(a->kind)) ||
       memcmp(ov->u.s, chunk_object(a->kind), ov->len) != 0))
    return AIGC_ACCUM_OK;   /* e.g. Azure's content-filter results */
  merge_init(&M, a);
  rc = merge_chunk(&M, chunk);
  if (rc == AIGC_ACCUM_OK) {
    commit(&M);
    shaped_clear(a);
    a->chunks++;
  }
  else {
    rollback(&M);
    if (rc == AIGC_ACCUM_NOMEM)
      strcpy(a->error, "not enough memory");
  }
  merge_release(&M);
  return rc;
}

/*
** The shaped tree is cached in its slot until an add changes root, so
** calling finish again without an add in between costs nothing. (A
** refused add leaves root, hence the cache, as it was.)
*/
const aj_value *aigc_accum_finish (aigc_accum *a) {
  aj_value *sh;
  if (members_reserve(a, &a->root, 0) != 0)
    return NULL;
  sh = shaped_slot(a);
  if (sh->type == AJ_OBJECT)
    return sh;
  if (shape(a, sh) != 0)
    return NULL;
  return sh;
}

int aigc_accum_incomplete (const aigc_accum *a) {
  const aj_value *choices = aj_get(&a->root, "choices");
  size_t i;
  if (choices == NULL || choices->type != AJ_ARRAY || choices->len == 0)
    return 1;
  for (i = 0; i < choices->len; i++) {
    const aj_value *fr = aj_get(&choices->u.items[i], "finish_reason");
    if (fr == NULL || fr->type == AJ_NULL)
      return 1;
  }
  return 0;
}

void aigc_accum_free (aigc_accum *a) {
  shaped_clear(a);
  aj_free(&a->root);
  aigc_accum_init(a, a->kind);
}
