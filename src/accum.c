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
**
** Every add is also linear in its chunk, however long the stream was
** before it (a hostile server may send a million tiny chunks within
** max_response_bytes): accumulated objects are searched through a
** persistent hash table once they are big (accum_keys.c), a
** chunk's own duplicate keys through a temporary one, choices and indexed
** items through 128-entry maps. And the tree counts its values, so that a
** stream cannot build more than the limits allow (accum.h).
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accum.h"
#include "accum_tree.h"

/* Whether v is the "object" of a chunk of this kind: "text_completion" for
** completions; for chat "chat.completion.chunk", or "text_completion" as
** Hugging Face TGI 1.4 to 2.0 sent it in chat chunks (its PR #2089). */
static int chunk_object (aigc_accum_kind kind, const aigc_json_value *v) {
  static const char chat[] = "chat.completion.chunk", text[] = "text_completion";
  return (kind == AIGC_ACCUM_CHAT && v->len == sizeof chat - 1 && memcmp(v->u.s, chat, v->len) == 0)
      || (v->len == sizeof text - 1 && memcmp(v->u.s, text, v->len) == 0);
}

/*
** Members whose delta value replaces the accumulated one instead of being
** appended: identifiers and enumerations a server may repeat per chunk.
*/
static int replaces (const aigc_json_member *m) {
  switch (m->key_len) {
    case 2: return key_is(m, "id");
    case 4: return key_is(m, "type") || key_is(m, "name") || key_is(m, "role");
    case 5: return key_is(m, "index");
    case 6: return key_is(m, "format");   /* OpenRouter's reasoning_details items */
    case 13: return key_is(m, "finish_reason");
    default: return 0;
  }
}

/* An array merged item by item on "index": non-empty, every item an
** object with a non-null "index" (merge_indexed refuses one that is not
** an integer in 0..127: 0.5, 1e300 or "3" were each a new call). */
static int indexed_array (const aigc_json_value *v) {
  size_t i;
  if (v->type != AIGC_JSON_ARRAY || v->len == 0)
    return 0;
  for (i = 0; i < v->len; i++) {
    const aigc_json_value *iv = aigc_json_get(&v->u.items[i], "index");
    if (iv == NULL || iv->type == AIGC_JSON_NULL)
      return 0;
  }
  return 1;
}

/*
** Equal scalars (strings included). Replacing a value by an equal one is
** skipped: servers repeat id, model, created, role... in every chunk, and
** copying them each time would cost allocations on every chunk.
*/
static int same_scalar (const aigc_json_value *a, const aigc_json_value *b) {
  if (a->type != b->type)
    return 0;
  switch (a->type) {
    case AIGC_JSON_NULL: case AIGC_JSON_FALSE: case AIGC_JSON_TRUE:
      return 1;
    case AIGC_JSON_INT:
      return a->u.i == b->u.i;
    case AIGC_JSON_FLOAT:
      return memcmp(&a->u.d, &b->u.d, sizeof(double)) == 0;
    case AIGC_JSON_STRING:
      return a->len == b->len && memcmp(a->u.s, b->u.s, a->len) == 0;
    default:
      return 0;
  }
}



/* {====================================================================
** Growing owned nodes
** ===================================================================== */

/*
** Room for `extra` more members in obj. For the accumulator's root one
** more slot is kept at the very end, the shaped-result slot, which moves to
** the new end when the array grows (and is created empty the first time).
*/
static int members_reserve (aigc_accum *a, aigc_json_value *obj, size_t extra) {
  int is_root = (obj == &a->root);
  size_t need, ncap;
  aigc_json_member *m;
  if (extra > (size_t)-1 - obj->len - 1)
    return -1;
  need = obj->len + extra + (size_t)is_root;
  if (need <= obj->cap)
    return 0;
  if (next_cap(obj->cap, need, sizeof(aigc_json_member), &ncap) != 0)
    return -1;
  m = (aigc_json_member *)realloc(obj->u.members, ncap * sizeof(aigc_json_member));
  if (m == NULL)
    return -1;
  if (is_root) {
    if (obj->cap > 0)
      m[ncap - 1] = m[obj->cap - 1];
    else {
      m[ncap - 1].key = NULL;
      m[ncap - 1].key_len = 0;
      empty(&m[ncap - 1].value, AIGC_JSON_NULL);
    }
  }
  obj->u.members = m;
  obj->cap = ncap;
  return 0;
}

/* Room for `extra` more bytes (and the NUL) in an owned string. Doubling
** keeps appending deltas amortized O(1) per chunk. */
static int bytes_reserve (aigc_json_value *str, size_t extra) {
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
static aigc_json_value *shaped_slot (aigc_accum *a) {
  if (a->root.cap == 0)
    return NULL;
  return &a->root.u.members[a->root.cap - 1].value;
}

static void shaped_clear (aigc_accum *a) {
  aigc_json_value *sh = shaped_slot(a);
  if (sh != NULL)
    aigc_json_free(sh);
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
  aigc_json_value old;      /* U_REPLACE: the replaced value (owned by the log) */
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
  size_t added_values, added_containers;   /* nodes this add put in */
  int labels;   /* merging a choice's member outside its text: strings replace */
  int annotation;   /* an Azure annotation chunk ("object": ""): no identity */
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
  M->added_values = M->added_containers = 0;
  M->labels = M->annotation = 0;
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

/* The hash of the path to child `pos` of the node whose path hashes to h. */
static uint64_t child_hash (uint64_t h, size_t pos) {
  return mix64(h ^ (UINT64_C(0x9E3779B97F4A7C15) * ((uint64_t)pos + 1)));
}

/* The hash of the current path (for the key table: computed only when a
   big object is searched or a member noted, so paths stay cheap). */
static uint64_t path_hash (const merge *M) {
  uint64_t h = mix64(M->a->keys.seed);
  size_t i;
  for (i = 0; i < M->depth; i++)
    h = child_hash(h, M->path[i]);
  return h;
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
                       const aigc_json_value *old) {
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
    empty(&u->old, AIGC_JSON_NULL);
  return 0;
}

static aigc_json_value *resolve (aigc_accum *a, const size_t *path, size_t depth) {
  aigc_json_value *v = &a->root;
  size_t i;
  for (i = 0; i < depth; i++)
    v = (v->type == AIGC_JSON_OBJECT) ? &v->u.members[path[i]].value
                               : &v->u.items[path[i]];
  return v;
}

/* Cuts an appended-to node back to n bytes, items or members. */
static void truncate_to (aigc_json_value *v, size_t n) {
  size_t i;
  switch (v->type) {
    case AIGC_JSON_STRING:
      v->len = n;
      v->u.s[n] = '\0';
      break;
    case AIGC_JSON_ARRAY:
      for (i = n; i < v->len; i++)
        aigc_json_free(&v->u.items[i]);
      v->len = n;
      break;
    case AIGC_JSON_OBJECT:
      for (i = n; i < v->len; i++) {
        free(v->u.members[i].key);
        aigc_json_free(&v->u.members[i].value);
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
    aigc_json_value *v = resolve(M->a, M->paths + u->path, u->depth);
    if (u->kind == U_REPLACE) {
      aigc_json_free(v);
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
      aigc_json_free(&M->log[i].old);
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
** add a value take ownership of it (freeing it if they fail) and count
** its nodes.
** ===================================================================== */

/* Adds the values and containers of the tree v (v included) to the counts. */
static void count_nodes (const aigc_json_value *v, size_t *values,
                         size_t *containers) {
  size_t i;
  *values += 1;
  if (v->type == AIGC_JSON_ARRAY) {
    *containers += 1;
    for (i = 0; i < v->len; i++)
      count_nodes(&v->u.items[i], values, containers);
  }
  else if (v->type == AIGC_JSON_OBJECT) {
    *containers += 1;
    for (i = 0; i < v->len; i++)
      count_nodes(&v->u.members[i].value, values, containers);
  }
}

static void count_added (merge *M, const aigc_json_value *v) {
  count_nodes(v, &M->added_values, &M->added_containers);
}

static int keys_note (merge *M, const aigc_json_value *obj, size_t pos);

static int obj_append (merge *M, aigc_json_value *obj, const char *key,
                       size_t key_len, aigc_json_value *val, size_t *pos) {
  char *k = (key_len < (size_t)-1) ? (char *)malloc(key_len + 1) : NULL;
  aigc_json_member *m;
  if (k == NULL || log_change(M, U_LEN, obj->len, NULL) != 0 ||
      members_reserve(M->a, obj, 1) != 0) {
    free(k);
    aigc_json_free(val);
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
  count_added(M, val);
  return keys_note(M, obj, *pos);   /* on failure the log undoes the append */
}

static int arr_append (merge *M, aigc_json_value *arr, aigc_json_value *val, size_t *pos) {
  if (log_change(M, U_LEN, arr->len, NULL) != 0 ||
      items_reserve(arr, 1) != 0) {
    aigc_json_free(val);
    return AIGC_ACCUM_NOMEM;
  }
  arr->u.items[arr->len] = *val;
  *pos = arr->len++;
  count_added(M, val);
  return AIGC_ACCUM_OK;
}

static int str_append (merge *M, aigc_json_value *str, const char *s, size_t n) {
  if (n == 0)
    return AIGC_ACCUM_OK;
  if (log_change(M, U_LEN, str->len, NULL) != 0 || bytes_reserve(str, n) != 0)
    return AIGC_ACCUM_NOMEM;
  memcpy(str->u.s + str->len, s, n);
  str->len += n;
  str->u.s[str->len] = '\0';
  return AIGC_ACCUM_OK;
}

/* The replaced value goes to the log; its nodes stop counting when the
   add commits (see aigc_accum_add). */
static int replace (merge *M, aigc_json_value *slot, aigc_json_value *val) {
  if (log_change(M, U_REPLACE, 0, slot) != 0) {
    aigc_json_free(val);
    return AIGC_ACCUM_NOMEM;
  }
  *slot = *val;
  count_added(M, val);
  return AIGC_ACCUM_OK;
}

/* Replaces member pos of obj, at the current path, with nv (owned). */
static int replace_member (merge *M, aigc_json_value *obj, size_t pos, aigc_json_value *nv) {
  int rc = push(M, pos);
  if (rc != AIGC_ACCUM_OK) {
    aigc_json_free(nv);
    return rc;
  }
  rc = replace(M, &obj->u.members[pos].value, nv);
  pop(M);
  return rc;
}

/* }==================================================================== */


/* {====================================================================
** Where members are (the tables: accum_keys.c)
** ===================================================================== */

/* Position of key[0..n) in the accumulated object obj, or NOPOS: obj is
   at the current path, or its child `child` (NOPOS: itself). */
static size_t find_at (const merge *M, const aigc_json_value *obj, size_t child,
                       const char *key, size_t n) {
  uint64_t h;
  if (obj->len < KEYS_LINEAR || M->a->keys.slot == NULL)
    return find(obj, key, n);
  h = path_hash(M);
  if (child != NOPOS)
    h = child_hash(h, child);
  return aigc_keytable_find(&M->a->keys, obj, h, key, n);
}

/* find_at for the object at the current path. */
static size_t acc_find (const merge *M, const aigc_json_value *obj, const char *key,
                        size_t n) {
  return find_at(M, obj, NOPOS, key, n);
}

/* Records that member pos of the object at the current path is there. */
static int keys_note (merge *M, const aigc_json_value *obj, size_t pos) {
  return aigc_keytable_note(&M->a->keys, obj, path_hash(M), pos) == 0
         ? AIGC_ACCUM_OK : AIGC_ACCUM_NOMEM;
}

/* }==================================================================== */


/* {====================================================================
** Merging
** ===================================================================== */

static int merge_member (merge *M, aigc_json_value *obj, const aigc_json_member *dm);

/* The member of part p that a part of its type continues: "text" of a
   {"type": "text"} part (a string), "thinking" of a {"type": "thinking"}
   one (a list of text parts); NULL for another part. */
static const char *part_key (const aigc_json_value *p) {
  const aigc_json_value *t = aigc_json_get(p, "type"), *v;   /* (NULL for a non-object) */
  const char *key = t == NULL || t->type != AIGC_JSON_STRING ? NULL
                  : (t->len == 4 && memcmp(t->u.s, "text", 4) == 0) ? "text"
                  : (t->len == 8 && memcmp(t->u.s, "thinking", 8) == 0) ? "thinking" : NULL;
  v = key != NULL ? aigc_json_get(p, key) : NULL;
  return v != NULL && v->type == (key[4] == '\0' ? AIGC_JSON_STRING : AIGC_JSON_ARRAY) ? key : NULL;
}

/* The members of a part that continues the last one, `last` (at the
   current path), but its type and its continued `key`: each replaces the
   last one's (Mistral's "closed" of a thinking part: the newest counts). */
static int merge_part_labels (merge *M, aigc_json_value *last, const aigc_json_value *p, const char *key) {
  size_t j, pos;
  int rc = AIGC_ACCUM_OK;
  for (j = 0; j < p->len && rc == AIGC_ACCUM_OK; j++) {
    const aigc_json_member *dm = &p->u.members[j];
    aigc_json_value nv;
    if (key_is(dm, "type") || key_is(dm, key))
      continue;
    pos = find(last, dm->key, dm->key_len);
    if (pos != NOPOS && same_scalar(&last->u.members[pos].value, &dm->value))
      continue;
    if (aigc_json_copy(&nv, &dm->value) != 0)
      return AIGC_ACCUM_NOMEM;
    rc = pos == NOPOS ? obj_append(M, last, dm->key, dm->key_len, &nv, &pos)
                      : replace_member(M, last, pos, &nv);
  }
  return rc;
}

/*
** Content parts (Mistral's Magistral models stream their thinking as
** [{"type": "thinking", "thinking": [{"type": "text", ...}]}], their answer
** as text parts or strings) into the accumulated list at the current path:
** a part that continues the last one's type extends it (text appended,
** thinking merged alike, other members replaced), as a non-streamed reply
** has them; another is appended. (Parts are copies: searched with find().)
*/
static int merge_parts (merge *M, aigc_json_value *arr, const aigc_json_value *parts) {
  size_t i, pos;
  int rc = AIGC_ACCUM_OK;
  for (i = 0; i < parts->len && rc == AIGC_ACCUM_OK; i++) {
    const aigc_json_value *p = &parts->u.items[i];
    const char *key = part_key(p);
    aigc_json_value *last = arr->len > 0 ? &arr->u.items[arr->len - 1] : NULL, nv;
    if (key != NULL && last != NULL && last->len <= 8 && part_key(last) == key) {
      const aigc_json_value *dv = aigc_json_get(p, key);
      pos = find(last, key, strlen(key));
      if ((rc = push(M, arr->len - 1)) != AIGC_ACCUM_OK || (rc = push(M, pos)) != AIGC_ACCUM_OK)
        return rc;
      rc = dv->type == AIGC_JSON_STRING ? str_append(M, &last->u.members[pos].value, dv->u.s, dv->len)
                                        : merge_parts(M, &last->u.members[pos].value, dv);
      pop(M);
      if (rc == AIGC_ACCUM_OK)
        rc = merge_part_labels(M, last, p, key);
      pop(M);
    }
    else if (p->type != AIGC_JSON_NULL)
      rc = aigc_json_copy(&nv, p) != 0 ? AIGC_ACCUM_NOMEM : arr_append(M, arr, &nv, &pos);
  }
  return rc;
}

/*
** A delta's "content" when parts are involved: a list of parts, or a string
** after parts (it is a text part then). The accumulated text so far becomes
** the first text part. Returns -1 (nothing done) for two strings.
*/
static int merge_content (merge *M, aigc_json_value *msg, const aigc_json_member *dm, int *rc) {
  char type_key[] = "type", text_key[] = "text", text_type[] = "text";   /* (no globals) */
  aigc_json_member fields[2];
  aigc_json_value part, list, nv, *av;
  size_t pos = acc_find(M, msg, "content", 7);
  const aigc_json_value *dv = &dm->value;
  av = pos == NOPOS ? NULL : &msg->u.members[pos].value;
  if (dv->type != AIGC_JSON_ARRAY && !(dv->type == AIGC_JSON_STRING && av != NULL && av->type == AIGC_JSON_ARRAY))
    return -1;
  if (dv->type == AIGC_JSON_ARRAY && dv->len == 0) {   /* (no part: the text stays a string) */
    *rc = AIGC_ACCUM_OK;
    return av == NULL ? -1 : 0;
  }
  /* {"type": "text", "text": <a string>}, read only (copied where kept) */
  fields[0].key = type_key;
  fields[1].key = text_key;
  fields[0].key_len = fields[1].key_len = 4;
  fields[0].value.type = AIGC_JSON_STRING;
  fields[0].value.len = 4;
  fields[0].value.cap = part.cap = 0;
  fields[0].value.u.s = text_type;
  part.type = AIGC_JSON_OBJECT;
  part.len = 2;
  part.u.members = fields;
  *rc = AIGC_ACCUM_OK;
  if (av == NULL || av->type != AIGC_JSON_ARRAY) {   /* the list starts */
    empty(&nv, AIGC_JSON_ARRAY);
    if (av != NULL && av->type == AIGC_JSON_STRING && av->len > 0) {
      fields[1].value = *av;
      if (items_reserve(&nv, 1) != 0 || aigc_json_copy(&nv.u.items[0], &part) != 0)
        *rc = AIGC_ACCUM_NOMEM;
      else
        nv.len = 1;
    }
    if (*rc != AIGC_ACCUM_OK)
      aigc_json_free(&nv);
    else
      *rc = av == NULL ? obj_append(M, msg, "content", 7, &nv, &pos) : replace_member(M, msg, pos, &nv);
  }
  if (*rc == AIGC_ACCUM_OK && (*rc = push(M, pos)) == AIGC_ACCUM_OK) {
    if (dv->type == AIGC_JSON_STRING) {
      fields[1].value = *dv;
      list = part;
      list.type = AIGC_JSON_ARRAY;
      list.len = dv->len > 0;
      list.u.items = &part;
      dv = &list;
    }
    *rc = merge_parts(M, &msg->u.members[pos].value, dv);
    pop(M);
  }
  return 0;
}

/*
** Merges every member of the delta object into the object at the current
** path, a repeated key once, with its last value; drop_obfuscation at the
** delta level (the "obfuscation" padding).
*/
static int merge_object (merge *M, aigc_json_value *obj, const aigc_json_value *delta,
                         int drop_obfuscation) {
  lastkeys lk;
  size_t i;
  int rc = lk_open(&lk, delta, M->a->keys.seed);
  for (i = 0; i < delta->len && rc == AIGC_ACCUM_OK; i++) {
    const aigc_json_member *dm = &delta->u.members[i];
    if ((drop_obfuscation && key_is(dm, "obfuscation")) || !lk_last(&lk, delta, i))
      continue;
    if (!(drop_obfuscation && key_is(dm, "content") && merge_content(M, obj, dm, &rc) == 0))
      rc = merge_member(M, obj, dm);
  }
  lk_close(&lk);
  return rc;
}

/*
** The value a delta value starts as where nothing was accumulated yet.
** Objects and index-merged arrays start empty and are then filled by
** merging (*fill set), so what they hold obeys the same rules as later
** deltas: a tool call index out of range is refused on the first chunk
** too, and two items with one index in a delta become one. Anything else
** is a deep copy. So every object that merging later searches was built
** member by member (each recorded in the key table): the objects inside a
** copied array are never merged into (index_mode() sees to that).
*/
static int fresh (const aigc_json_value *dv, aigc_json_value *out, int *fill) {
  if (dv->type == AIGC_JSON_OBJECT || indexed_array(dv)) {
    empty(out, dv->type);
    *fill = 1;
    return AIGC_ACCUM_OK;
  }
  *fill = 0;
  return aigc_json_copy(out, dv) == 0 ? AIGC_ACCUM_OK : AIGC_ACCUM_NOMEM;
}

static int merge_indexed (merge *M, aigc_json_value *arr, const aigc_json_value *dv);

/* Merges dv into the empty node that fresh() made for it, at the current
** path. */
static int fill (merge *M, aigc_json_value *v, const aigc_json_value *dv) {
  if (dv->type == AIGC_JSON_ARRAY)
    return merge_indexed(M, v, dv);
  return merge_object(M, v, dv, 0);
}

/* Replaces the node at the current path with a fresh value for dv. */
static int set (merge *M, aigc_json_value *slot, const aigc_json_value *dv) {
  aigc_json_value nv;
  int want_fill, rc;
  if ((rc = fresh(dv, &nv, &want_fill)) != AIGC_ACCUM_OK ||
      (rc = replace(M, slot, &nv)) != AIGC_ACCUM_OK)
    return rc;
  return want_fill ? fill(M, slot, dv) : AIGC_ACCUM_OK;
}

/* The index of item i of the accumulated array at the current path, as
   index_of() reads it, found through the key table when the item is big. */
static int acc_index (const merge *M, const aigc_json_value *arr, size_t i) {
  const aigc_json_value *item = &arr->u.items[i], *iv;
  size_t pos;
  if (item->type != AIGC_JSON_OBJECT)
    return -2;
  pos = find_at(M, item, i, "index", 5);
  if (pos == NOPOS)
    return -1;
  iv = &item->u.members[pos].value;
  if (iv->type != AIGC_JSON_INT || iv->u.i < 0 || iv->u.i > AIGC_ACCUM_MAX_INDEX)
    return -2;
  return (int)iv->u.i;
}

/*
** Whether the accumulated array at the current path is merged by index:
** every item it holds is an object with a valid "index". Only
** merge_indexed() makes such items (an appended delta that was not all
** indexed brought at least one item that is not), so there are at most
** 128 of them, each built member by member.
*/
static int index_mode (const merge *M, const aigc_json_value *arr) {
  size_t i;
  if (arr->len > AIGC_ACCUM_MAX_INDEX + 1)
    return 0;
  for (i = 0; i < arr->len; i++)
    if (acc_index(M, arr, i) < 0)
      return 0;
  return 1;
}

/* A non-empty string "id" (NULL: none; "" is no id, see replaces()). */
static const aigc_json_value *nonempty_id (const aigc_json_value *v) {
  return v != NULL && v->type == AIGC_JSON_STRING && v->len > 0 ? v : NULL;
}

/*
** Whether delta item d, whose index holds accumulated item `at` of the
** array at the current path, is another call: both have an id and they
** differ. Ollama (since 0.4.7), LiteLLM's and Plexus's Responses bridges,
** SGLang and Dynamo versions send every parallel call at index 0, told
** apart only by its id. While the array has room for one more item.
*/
static int another_call (const merge *M, const aigc_json_value *arr, size_t at,
                         const aigc_json_value *d) {
  const aigc_json_value *item = &arr->u.items[at], *id = nonempty_id(aigc_json_get(d, "id"));
  size_t pos;
  if (id == NULL || arr->len > AIGC_ACCUM_MAX_INDEX)
    return 0;
  pos = find_at(M, item, at, "id", 2);
  return pos != NOPOS && nonempty_id(&item->u.members[pos].value) != NULL &&
         !same_scalar(id, &item->u.members[pos].value);
}

/*
** Arrays whose delta items carry an integer "index" (tool calls) merge
** item by item: the accumulated item with the same index, or a new one
** (also when the index holds a call with another id: another_call). The
** map, index -> the newest item with it, is built once per merge;
** appending never moves existing items' positions, so it stays right as
** items are added. The caller made sure the array is in index mode (or
** empty). Items sharing an index keep their arrival order in the result
** (accum_shape.c sorts stably).
*/
static int merge_indexed (merge *M, aigc_json_value *arr, const aigc_json_value *dv) {
  size_t map[AIGC_ACCUM_MAX_INDEX + 1];
  size_t i, pos;
  int rc;
  for (i = 0; i <= AIGC_ACCUM_MAX_INDEX; i++)
    map[i] = NOPOS;
  for (i = 0; i < arr->len; i++) {
    int k = acc_index(M, arr, i);
    if (k >= 0)
      map[k] = i;
  }
  for (i = 0; i < dv->len; i++) {
    const aigc_json_value *d = &dv->u.items[i];
    aigc_json_value *item;
    int k = index_of(d);
    if (k < 0)
      return bad_index(M->a->error, sizeof M->a->error, "array item", d);
    if (map[k] == NOPOS || another_call(M, arr, map[k], d)) {
      aigc_json_value nv;
      empty(&nv, AIGC_JSON_OBJECT);
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
static int merge_array (merge *M, aigc_json_value *arr, const aigc_json_value *dv) {
  size_t i, pos;
  int rc;
  if (indexed_array(dv) && index_mode(M, arr))
    return merge_indexed(M, arr, dv);
  for (i = 0; i < dv->len; i++) {
    aigc_json_value nv;
    if (aigc_json_copy(&nv, &dv->u.items[i]) != 0)
      return AIGC_ACCUM_NOMEM;
    if ((rc = arr_append(M, arr, &nv, &pos)) != AIGC_ACCUM_OK)
      return rc;
  }
  return AIGC_ACCUM_OK;
}

/* Whether every item of dv is an object without "index" (or a null one). */
static int unindexed_array (const aigc_json_value *dv) {
  size_t i;
  if (dv->type != AIGC_JSON_ARRAY || dv->len == 0 || dv->len > AIGC_ACCUM_MAX_INDEX + 1)
    return 0;
  for (i = 0; i < dv->len; i++)
    if (dv->u.items[i].type != AIGC_JSON_OBJECT || index_of(&dv->u.items[i]) != -1)
      return 0;
  return 1;
}

/* The index each item of a tool call delta without indexes means (Ollama
** before 0.5, Gemini's OpenAI layer, proxies send none): a new "id" starts
** a call, the last call's continues it; with no id (or ""), a function name
** starts one and a piece without continues. `arr`: the calls so far (NULL:
** none), at the current path. 0, or -1 when they cannot be merged by index. */
static int implied_indexes (const merge *M, const aigc_json_value *arr,
                            const aigc_json_value *dv, int *idx) {
  const aigc_json_value *last_id = NULL;
  int last = -1, top = -1;
  size_t i;
  if (arr != NULL && arr->len > 0) {
    const aigc_json_value *item = &arr->u.items[arr->len - 1];
    size_t pos;
    if (arr->type != AIGC_JSON_ARRAY || !index_mode(M, arr))
      return -1;
    for (i = 0; i < arr->len; i++)
      if (acc_index(M, arr, i) > top)
        top = acc_index(M, arr, i);
    last = acc_index(M, arr, arr->len - 1);
    pos = find_at(M, item, arr->len - 1, "id", 2);
    last_id = pos == NOPOS ? NULL : &item->u.members[pos].value;
  }
  for (i = 0; i < dv->len; i++) {
    const aigc_json_value *id = aigc_json_get(&dv->u.items[i], "id");
    const aigc_json_value *name = aigc_json_get(aigc_json_get(&dv->u.items[i], "function"), "name");
    int has_id = id != NULL && id->type != AIGC_JSON_NULL && !(id->type == AIGC_JSON_STRING && id->len == 0);
    if (last < 0 || (has_id ? last_id == NULL || !same_scalar(id, last_id)
                            : name != NULL && name->type == AIGC_JSON_STRING && name->len > 0)) {
      if (top >= AIGC_ACCUM_MAX_INDEX)
        return -1;
      last = ++top;
      last_id = has_id ? id : NULL;
    }
    idx[i] = last;
  }
  return 0;
}

/* Merges a tool call delta without indexes (dm, into obj at the current
** path) as though each item had the index it means; -1 (nothing done) when
** that cannot be told: the delta is then appended as any other array. */
static int merge_unindexed_calls (merge *M, aigc_json_value *obj, const aigc_json_member *dm,
                                  int *rc) {
  char index_key[] = "index";   /* (the merge copies keys; no global) */
  const aigc_json_value *dv = &dm->value;
  int idx[AIGC_ACCUM_MAX_INDEX + 1];
  size_t pos = acc_find(M, obj, dm->key, dm->key_len), i;
  aigc_json_value items, *arr = NULL;
  aigc_json_member patched = *dm;
  int ok;
  if (pos != NOPOS) {
    if ((*rc = push(M, pos)) != AIGC_ACCUM_OK)
      return 0;
    arr = &obj->u.members[pos].value;
  }
  ok = implied_indexes(M, arr, dv, idx) == 0;
  if (pos != NOPOS)
    pop(M);
  if (!ok)
    return -1;
  /* A shallow copy of the delta, each item with its "index" last (the
     last of repeated keys counts: a null one is overridden). */
  items = *dv;
  items.u.items = (aigc_json_value *)calloc(dv->len, sizeof(aigc_json_value));
  for (i = 0; items.u.items != NULL && i < dv->len; i++) {
    const aigc_json_value *d = &dv->u.items[i];
    aigc_json_member *m = (aigc_json_member *)malloc((d->len + 1) * sizeof *m);
    if (m == NULL)
      break;
    memcpy(m, d->u.members, d->len * sizeof *m);
    m[d->len].key = index_key;
    m[d->len].key_len = 5;
    m[d->len].value.type = AIGC_JSON_INT;
    m[d->len].value.len = m[d->len].value.cap = 0;
    m[d->len].value.u.i = idx[i];
    items.u.items[i] = *d;
    items.u.items[i].len = d->len + 1;
    items.u.items[i].u.members = m;
  }
  patched.value = items;
  *rc = (items.u.items != NULL && i == dv->len) ? merge_member(M, obj, &patched) : AIGC_ACCUM_NOMEM;
  for (i = 0; items.u.items != NULL && i < dv->len; i++)
    free(items.u.items[i].u.members);
  free(items.u.items);
  return 0;
}

/*
** Merges one delta member into the object at the current path, by the
** rules in accum.h: absent -> added; null -> nothing; identifiers ->
** replaced; strings -> appended; objects -> merged; arrays -> merged by
** index or appended; anything else -> replaced.
*/
static int merge_member (merge *M, aigc_json_value *obj, const aigc_json_member *dm) {
  const aigc_json_value *dv = &dm->value;
  size_t pos;
  aigc_json_value *av;
  int rc;
  if (dm->key_len == 10 && key_is(dm, "tool_calls") && dv->type == AIGC_JSON_OBJECT) {
    /* TGI up to 3.1 streamed its one call as an object, not a list of
       calls (its PR #3075): merged as that list, else the reply's
       tool_calls were an object that no list reader found a call in. */
    aigc_json_value call = *dv;   /* (a shallow copy: its members are only read) */
    aigc_json_member listed = *dm;
    listed.value.type = AIGC_JSON_ARRAY;
    listed.value.len = dv->len > 0;   /* ({}: none, as [] -- a cjson proxy's [], 0 calls) */
    listed.value.cap = 0;
    listed.value.u.items = &call;
    return merge_member(M, obj, &listed);
  }
  if (dm->key_len == 10 && key_is(dm, "tool_calls") && unindexed_array(dv)
      && merge_unindexed_calls(M, obj, dm, &rc) == 0)
    return rc;
  pos = acc_find(M, obj, dm->key, dm->key_len);
  if (pos == NOPOS) {
    aigc_json_value nv;
    int want_fill;
    if ((rc = fresh(dv, &nv, &want_fill)) != AIGC_ACCUM_OK ||
        (rc = obj_append(M, obj, dm->key, dm->key_len, &nv, &pos))
          != AIGC_ACCUM_OK)
      return rc;
    if (!want_fill)
      return AIGC_ACCUM_OK;
    if ((rc = push(M, pos)) != AIGC_ACCUM_OK)
      return rc;
    rc = fill(M, &obj->u.members[pos].value, dv);
    pop(M);
    return rc;
  }
  if (dv->type == AIGC_JSON_NULL)
    return AIGC_ACCUM_OK;
  if ((rc = push(M, pos)) != AIGC_ACCUM_OK)
    return rc;
  av = &obj->u.members[pos].value;
  if (replaces(dm))   /* ("" keeps a string: a call's pieces with "id": "", "name": "") */
    rc = same_scalar(av, dv) || (dv->type == AIGC_JSON_STRING && dv->len == 0
                                 && av->type == AIGC_JSON_STRING) ? AIGC_ACCUM_OK : set(M, av, dv);
  else if (av->type == AIGC_JSON_STRING && dv->type == AIGC_JSON_STRING)
    rc = !M->labels ? str_append(M, av, dv->u.s, dv->len)
                    : same_scalar(av, dv) ? AIGC_ACCUM_OK : set(M, av, dv);
  else if (av->type == AIGC_JSON_OBJECT && dv->type == AIGC_JSON_OBJECT)
    rc = merge_object(M, av, dv, 0);
  else if (av->type == AIGC_JSON_ARRAY && dv->type == AIGC_JSON_ARRAY)
    rc = merge_array(M, av, dv);
  else
    rc = set(M, av, dv);
  pop(M);
  return rc;
}

/* A chat delta merges into the choice's "message" (an object); the choice
   is at the current path. */
static int merge_delta (merge *M, aigc_json_value *choice, const aigc_json_value *delta) {
  size_t pos = acc_find(M, choice, "message", 7);
  aigc_json_value *msg;
  int rc = AIGC_ACCUM_OK;
  if (pos == NOPOS) {
    aigc_json_value nv;
    empty(&nv, AIGC_JSON_OBJECT);
    if ((rc = obj_append(M, choice, "message", 7, &nv, &pos)) != AIGC_ACCUM_OK)
      return rc;
  }
  if ((rc = push(M, pos)) != AIGC_ACCUM_OK)
    return rc;
  msg = &choice->u.members[pos].value;
  if (msg->type != AIGC_JSON_OBJECT) {
    aigc_json_value nv;
    empty(&nv, AIGC_JSON_OBJECT);
    rc = replace(M, msg, &nv);
  }
  if (rc == AIGC_ACCUM_OK)
    rc = merge_object(M, msg, delta, 1);
  pop(M);
  return rc;
}

/* An accumulated choice: an object whose first member is its "index". */
static int new_choice (aigc_json_value *v, int k) {
  aigc_json_member *m = (aigc_json_member *)malloc(4 * sizeof(aigc_json_member));
  char *key = (char *)malloc(sizeof("index"));
  if (m == NULL || key == NULL) {
    free(m);
    free(key);
    return AIGC_ACCUM_NOMEM;
  }
  memcpy(key, "index", sizeof("index"));
  m[0].key = key;
  m[0].key_len = 5;
  m[0].value.type = AIGC_JSON_INT;
  m[0].value.len = m[0].value.cap = 0;
  m[0].value.u.i = k;
  v->type = AIGC_JSON_OBJECT;
  v->len = 1;
  v->cap = 4;
  v->u.members = m;
  return AIGC_ACCUM_OK;
}

/* Position of the accumulated choice with index k, or NOPOS. Every
** accumulated choice is an object whose first member is its "index". */
static size_t find_choice (const aigc_json_value *choices, int k) {
  size_t i;
  for (i = 0; i < choices->len; i++)
    if (choices->u.items[i].u.members[0].value.u.i == k)
      return i;
  return NOPOS;
}

/* Chunks with more choices than this find them through a map. */
#define CHOICES_LINEAR 4

/*
** The chunk's "choices" into the accumulated array at the current path.
** The accumulated choices (at most 128, one per index) are searched
** linearly for the usual one or few choices of a chunk, through a map
** built once per chunk for more, so a chunk of many choices costs its size.
*/
static int merge_choices (merge *M, aigc_json_value *acc, const aigc_json_value *choices) {
  int chat = (M->a->kind == AIGC_ACCUM_CHAT);
  int mapped = choices->len > CHOICES_LINEAR;
  size_t at[AIGC_ACCUM_MAX_INDEX + 1];
  size_t i, j, pos;
  int rc;
  if (mapped) {
    for (i = 0; i <= AIGC_ACCUM_MAX_INDEX; i++)
      at[i] = NOPOS;
    for (i = 0; i < acc->len; i++)
      at[acc->u.items[i].u.members[0].value.u.i] = i;
  }
  for (i = 0; i < choices->len; i++) {
    const aigc_json_value *ch = &choices->u.items[i];
    aigc_json_value *c;
    lastkeys lk;
    int k, created = 0;
    if (ch->type != AIGC_JSON_OBJECT)
      return badshape(M, "choice is not an object");
    k = index_of(ch);
    if (k == -2)
      return bad_index(M->a->error, sizeof M->a->error, "choice", ch);
    if (k == -1)
      k = 0;
    pos = mapped ? at[k] : find_choice(acc, k);
    if (pos == NOPOS) {
      aigc_json_value nv;
      if ((rc = new_choice(&nv, k)) != AIGC_ACCUM_OK ||
          (rc = arr_append(M, acc, &nv, &pos)) != AIGC_ACCUM_OK)
        return rc;
      if (mapped)
        at[k] = pos;
      created = 1;
    }
    c = &acc->u.items[pos];
    if ((rc = push(M, pos)) != AIGC_ACCUM_OK)
      return rc;
    if (created && (rc = keys_note(M, c, 0)) != AIGC_ACCUM_OK)
      return rc;
    if ((rc = lk_open(&lk, ch, M->a->keys.seed)) != AIGC_ACCUM_OK)
      return rc;
    for (j = 0; j < ch->len && rc == AIGC_ACCUM_OK; j++) {
      const aigc_json_member *m = &ch->u.members[j];
      if (key_is(m, "index") || key_is(m, "obfuscation") ||
          !lk_last(&lk, ch, j))
        continue;
      c = &acc->u.items[pos];
      if (chat && key_is(m, "delta")) {
        if (m->value.type == AIGC_JSON_NULL)
          continue;
        if (m->value.type != AIGC_JSON_OBJECT)
          rc = badshape(M, "\"delta\" is not an object");
        else
          rc = merge_delta(M, c, &m->value);
      }
      else {
        /* Beside its text (delta, text; a "message" some servers stream
           instead of delta) and logprobs, a choice's members are labels
           each chunk says again (Azure's content_filter_results {"hate":
           {"severity": "safe"}} in every chunk): not appended. */
        M->labels = !key_is(m, "text") && !key_is(m, "logprobs") && !key_is(m, "message");
        rc = merge_member(M, c, m);
        M->labels = 0;
      }
    }
    lk_close(&lk);
    pop(M);
    if (rc != AIGC_ACCUM_OK)
      return rc;
  }
  return AIGC_ACCUM_OK;
}

/* The top level: choices merged, other members replaced whole. */
static int merge_chunk (merge *M, const aigc_json_value *chunk) {
  aigc_json_value *root = &M->a->root;
  lastkeys lk;
  size_t i, pos;
  int rc = lk_open(&lk, chunk, M->a->keys.seed);
  for (i = 0; i < chunk->len && rc == AIGC_ACCUM_OK; i++) {
    const aigc_json_member *m = &chunk->u.members[i];
    const aigc_json_value *dv = &m->value;
    aigc_json_value nv;
    if (key_is(m, "obfuscation") || !lk_last(&lk, chunk, i))
      continue;
    if (M->annotation && (key_is(m, "id") || key_is(m, "object") || key_is(m, "created") ||
                          key_is(m, "model") || key_is(m, "system_fingerprint")))
      continue;   /* ("", 0: the reply's are the chunks') */
    if (key_is(m, "choices")) {
      if (dv->type == AIGC_JSON_NULL || (dv->type == AIGC_JSON_OBJECT && dv->len == 0))
        continue;   /* ({}: a cjson gateway's [], a usage chunk's; as for tool_calls) */
      if (dv->type != AIGC_JSON_ARRAY) {
        rc = badshape(M, "\"choices\" is not an array");
        break;
      }
      pos = acc_find(M, root, "choices", 7);
      if (pos == NOPOS) {
        empty(&nv, AIGC_JSON_ARRAY);
        if ((rc = obj_append(M, root, "choices", 7, &nv, &pos))
              != AIGC_ACCUM_OK)
          break;
      }
      if ((rc = push(M, pos)) != AIGC_ACCUM_OK)
        break;
      rc = merge_choices(M, &root->u.members[pos].value, dv);
      pop(M);
    }
    else if (key_is(m, "object")) {
      if (acc_find(M, root, "object", 6) == NOPOS) {
        if (new_string(&nv, result_object(M->a->kind)) != 0)
          rc = AIGC_ACCUM_NOMEM;
        else
          rc = obj_append(M, root, "object", 6, &nv, &pos);
      }
    }
    else {
      pos = acc_find(M, root, m->key, m->key_len);
      if (pos != NOPOS && (dv->type == AIGC_JSON_NULL ||
                           same_scalar(&root->u.members[pos].value, dv)))
        continue;
      if (aigc_json_copy(&nv, dv) != 0)
        rc = AIGC_ACCUM_NOMEM;
      else if (pos == NOPOS)
        rc = obj_append(M, root, m->key, m->key_len, &nv, &pos);
      else
        rc = replace_member(M, root, pos, &nv);
    }
  }
  lk_close(&lk);
  return rc;
}

/* }==================================================================== */


void aigc_accum_init (aigc_accum *a, aigc_accum_kind kind) {
  a->kind = kind;
  memset(&a->limits, 0, sizeof a->limits);
  a->values = a->containers = 0;
  empty(&a->root, AIGC_JSON_OBJECT);
  a->chunks = 0;
  a->error[0] = '\0';
  aigc_keytable_init(&a->keys, a);
  memset(&a->memo, 0, sizeof a->memo);
}

/*
** The nodes an add would leave in the tree: those it put in, less the
** replaced ones it would free. Refuses (LIMIT, a->error set) past the
** limits.
*/
static int check_limits (merge *M, size_t *values, size_t *containers) {
  aigc_accum *a = M->a;
  aigc_json_limits lim = aigc_json_limits_of(&a->limits);
  size_t gone_values = 0, gone_containers = 0, i;
  for (i = 0; i < M->nlog; i++)
    if (M->log[i].kind == U_REPLACE)
      count_nodes(&M->log[i].old, &gone_values, &gone_containers);
  *values = a->values + M->added_values - gone_values;
  *containers = a->containers + M->added_containers - gone_containers;
  if (*values > lim.max_values) {
    snprintf(a->error, sizeof(a->error),
             "more than %zu values", lim.max_values);
    return AIGC_ACCUM_LIMIT;
  }
  if (*containers > lim.max_containers) {
    snprintf(a->error, sizeof(a->error),
             "more than %zu arrays and objects", lim.max_containers);
    return AIGC_ACCUM_LIMIT;
  }
  return AIGC_ACCUM_OK;
}

int aigc_accum_add (aigc_accum *a, const aigc_json_value *chunk) {
  merge M;
  const aigc_json_value *ov;
  size_t values = 0, containers = 0, keys_before = a->keys.used;
  int rc;
  a->error[0] = '\0';
  a->memo.valid = 0;   /* the tree may change: accum_scan's template is stale */
  if (chunk == NULL || chunk->type != AIGC_JSON_OBJECT) {
    strcpy(a->error, "chunk is not an object");
    return AIGC_ACCUM_BADSHAPE;
  }
  ov = aigc_json_get(chunk, "object");
  merge_init(&M, a);
  if (ov != NULL && ov->type == AIGC_JSON_STRING && !chunk_object(a->kind, ov)) {
    /* Azure's content filter annotations say "object": "" (and "id": "",
       "model": ""): the prompt's results first, then the reply's, the last
       one with "finish_reason": "content_filter" when its async filter cut
       the reply. Merged, but not a chunk (not given to the callback).
       Another object is skipped. */
    if (ov->len != 0)
      return AIGC_ACCUM_OK;
    M.annotation = 1;
  }
  rc = merge_chunk(&M, chunk);
  if (rc == AIGC_ACCUM_OK)
    rc = check_limits(&M, &values, &containers);
  if (rc == AIGC_ACCUM_OK) {
    commit(&M);
    a->values = values;
    a->containers = containers;
    shaped_clear(a);
    if (!M.annotation)
      a->chunks++;
  }
  else {
    rollback(&M);
    if (keys_before == 0 && a->keys.slot != NULL)
      /* made by this add: it holds only entries the rollback made stale */
      aigc_keytable_free(&a->keys);
    if (rc == AIGC_ACCUM_NOMEM)
      strcpy(a->error, "not enough memory");
  }
  merge_release(&M);
  return rc;
}

aigc_json_value *aigc_accum_result_slot (aigc_accum *a) {
  if (members_reserve(a, &a->root, 0) != 0)
    return NULL;
  return shaped_slot(a);
}

int aigc_accum_incomplete (const aigc_accum *a) {
  const aigc_json_value *choices = aigc_json_get(&a->root, "choices");
  size_t i;
  if (choices == NULL || choices->type != AIGC_JSON_ARRAY || choices->len == 0)
    return 1;
  for (i = 0; i < choices->len; i++) {
    const aigc_json_value *fr = aigc_json_get(&choices->u.items[i], "finish_reason");
    if (fr == NULL || fr->type == AIGC_JSON_NULL)
      return 1;
  }
  return 0;
}

void aigc_accum_free (aigc_accum *a) {
  aigc_json_limits limits = a->limits;
  shaped_clear(a);
  aigc_json_free(&a->root);
  aigc_keytable_free(&a->keys);
  free(a->memo.bytes);
  aigc_accum_init(a, a->kind);
  a->limits = limits;
}
