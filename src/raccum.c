/*
** raccum.c — the Responses API's stream accumulator (raccum.h): typed
** events merged into an owned json.h tree. Plain C, no Lua.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raccum.h"


/*
** {======================================================
** Owned trees: slots, strings, counting
** =======================================================
*/

static void set_null (aigc_json_value *v) {
  memset(v, 0, sizeof *v);
  v->type = AIGC_JSON_NULL;
}

/* Room for `need` elements of size elem in a block of capacity *cap. */
static int grow (void **block, size_t *cap, size_t need, size_t elem) {
  size_t ncap = *cap < 4 ? 4 : *cap;
  void *p;
  if (need <= *cap)
    return 0;
  while (ncap < need)
    ncap *= 2;   /* need is bounded by the indexes' range: no overflow */
  p = realloc(*block, ncap * elem);
  if (p == NULL)
    return -1;
  *block = p;
  *cap = ncap;
  return 0;
}

/* The member `key` of the owned object obj, added as null when absent;
   NULL on ENOMEM. */
static aigc_json_value *obj_slot (aigc_json_value *obj, const char *key, size_t klen) {
  size_t i;
  aigc_json_member *m;
  for (i = obj->len; i-- > 0; ) {
    m = &obj->u.members[i];
    if (m->key_len == klen && memcmp(m->key, key, klen) == 0)
      return &m->value;
  }
  if (grow((void **)&obj->u.members, &obj->cap, obj->len + 1, sizeof *m) != 0)
    return NULL;
  m = &obj->u.members[obj->len];
  if ((m->key = (char *)malloc(klen + 1)) == NULL)
    return NULL;
  memcpy(m->key, key, klen);
  m->key[klen] = '\0';
  m->key_len = klen;
  set_null(&m->value);
  obj->len++;
  return &m->value;
}

#define SLOT(obj, lit) obj_slot((obj), (lit), sizeof(lit) - 1)

/* Item idx of the owned array arr, the slots up to it added as null. */
static aigc_json_value *arr_slot (aigc_json_value *arr, size_t idx) {
  if (grow((void **)&arr->u.items, &arr->cap, idx + 1, sizeof(aigc_json_value)) != 0)
    return NULL;
  while (arr->len <= idx)
    set_null(&arr->u.items[arr->len++]);
  return &arr->u.items[idx];
}

/* Makes v an empty array or object unless it is one already. */
static void ensure (aigc_json_value *v, aigc_json_type type) {
  if (v->type == type)
    return;
  aigc_json_free(v);
  set_null(v);
  v->type = type;
}

/* Appends s[0..n) to the string v (null or anything else: made ""). */
static int str_append (aigc_json_value *v, const char *s, size_t n) {
  if (v->type != AIGC_JSON_STRING) {
    aigc_json_free(v);
    set_null(v);
    if ((v->u.s = (char *)malloc(n + 1)) == NULL)
      return -1;
    v->type = AIGC_JSON_STRING;
    v->cap = n + 1;
  }
  else if (grow((void **)&v->u.s, &v->cap, v->len + n + 1, 1) != 0)
    return -1;
  memcpy(v->u.s + v->len, s, n);
  v->len += n;
  v->u.s[v->len] = '\0';
  return 0;
}

/* Nodes an event makes besides the copies it takes (see "What an event makes
   besides its copies"). */
typedef struct cost {
  size_t values, containers;
} cost;

/* Counts the values of a tree (v itself included). */
static void count (const aigc_json_value *v, size_t *values, size_t *containers) {
  size_t i;
  (*values)++;
  if (v->type == AIGC_JSON_ARRAY) {
    (*containers)++;
    for (i = 0; i < v->len; i++)
      count(&v->u.items[i], values, containers);
  }
  else if (v->type == AIGC_JSON_OBJECT) {
    (*containers)++;
    for (i = 0; i < v->len; i++)
      count(&v->u.members[i].value, values, containers);
  }
}

/*
** Charges a copy of src (may be NULL) and `made` other new nodes to the
** limits; -1 (a->error set) when over.
*/
static int charge (aigc_raccum *a, const aigc_json_value *src, const cost *made) {
  aigc_json_limits l = aigc_json_limits_of(&a->limits);
  size_t v = made->values, c = made->containers;
  if (src != NULL)
    count(src, &v, &c);
  if (a->values + v > l.max_values) {
    snprintf(a->error, sizeof a->error, "more than %zu values", l.max_values);
    return -1;
  }
  if (a->containers + c > l.max_containers) {
    snprintf(a->error, sizeof a->error, "more than %zu arrays and objects", l.max_containers);
    return -1;
  }
  a->values += v;
  a->containers += c;
  return 0;
}

/* dst = a copy of src (charged before, by aigc_raccum_add). */
static int put_copy (aigc_raccum *a, aigc_json_value *dst, const aigc_json_value *src) {
  aigc_json_value tmp;
  (void)a;
  if (aigc_json_copy(&tmp, src) != 0)
    return AIGC_RACCUM_NOMEM;
  aigc_json_free(dst);
  *dst = tmp;
  return AIGC_RACCUM_OK;
}

/* Whether v holds what deltas built: a non-empty string or array. */
static int built (const aigc_json_value *v) {
  return (v->type == AIGC_JSON_STRING || v->type == AIGC_JSON_ARRAY) && v->len > 0;
}

static int key_in (const aigc_json_member *m, const char *const *keys) {
  for (; *keys != NULL; keys++)
    if (m->key_len == strlen(*keys) && memcmp(m->key, *keys, m->key_len) == 0)
      return 1;
  return 0;
}

static const char *const PART_BUILT[] = { "text", "refusal", NULL };

static int merge_members (aigc_raccum *a, aigc_json_value *dst, const aigc_json_value *src,
                          const char *const *keep);

/*
** An item's built list of parts (content, summary) completed by the done
** event's list, part by part: each part keeps the text its deltas built
** and takes the rest; a part the list lacks is copied. (A part added
** empty, whose text came with no delta, takes the done event's text.)
*/
static int merge_parts (aigc_raccum *a, aigc_json_value *dst, const aigc_json_value *src) {
  size_t i;
  for (i = 0; i < src->len && i <= AIGC_RACCUM_MAX_INDEX; i++) {
    const aigc_json_value *part = &src->u.items[i];
    aigc_json_value *slot = arr_slot(dst, i);
    int rc = AIGC_RACCUM_OK;
    if (slot == NULL)
      return AIGC_RACCUM_NOMEM;
    if (slot->type == AIGC_JSON_OBJECT && part->type == AIGC_JSON_OBJECT)
      rc = merge_members(a, slot, part, PART_BUILT);
    else if (slot->type == AIGC_JSON_NULL)
      rc = put_copy(a, slot, part);
    if (rc != AIGC_RACCUM_OK)
      return rc;
  }
  return AIGC_RACCUM_OK;
}

/*
** Copies every member of src into dst (an object), but those named in
** `keep` that dst already holds built (a non-empty string or array): what
** the deltas made stays (a list of parts is completed part by part); an
** empty one (an item added with "content": [] or "arguments": "", and no
** delta after) takes the done event's.
*/
static int merge_members (aigc_raccum *a, aigc_json_value *dst, const aigc_json_value *src,
                          const char *const *keep) {
  size_t i;
  ensure(dst, AIGC_JSON_OBJECT);
  for (i = 0; i < src->len; i++) {
    const aigc_json_member *m = &src->u.members[i];
    aigc_json_value *slot = obj_slot(dst, m->key, m->key_len);
    int rc = AIGC_RACCUM_OK;
    if (slot == NULL)
      return AIGC_RACCUM_NOMEM;
    if (keep != NULL && key_in(m, keep) && built(slot)) {
      if (slot->type == AIGC_JSON_ARRAY && m->value.type == AIGC_JSON_ARRAY && keep != PART_BUILT)
        rc = merge_parts(a, slot, &m->value);
    }
    else
      rc = put_copy(a, slot, &m->value);
    if (rc != AIGC_RACCUM_OK)
      return rc;
  }
  return AIGC_RACCUM_OK;
}

/* }====================================================== */


/*
** {======================================================
** Events
** =======================================================
*/

static int bad (aigc_raccum *a, const char *what) {
  snprintf(a->error, sizeof a->error, "%s", what);
  return AIGC_RACCUM_BADSHAPE;
}

/* An index member of the event: 0..MAX, or -1. */
static long index_of (const aigc_json_value *ev, const char *key) {
  const aigc_json_value *v = aigc_json_get(ev, key);
  if (v == NULL || v->type != AIGC_JSON_INT || v->u.i < 0 || v->u.i > AIGC_RACCUM_MAX_INDEX)
    return -1;
  return (long)v->u.i;
}

/* index_of, with a->error set when there is none. */
static long index_field (aigc_raccum *a, const aigc_json_value *ev, const char *key) {
  long i = index_of(ev, key);
  if (i < 0)
    snprintf(a->error, sizeof a->error, "%s is missing or not an integer in 0..%d", key,
             AIGC_RACCUM_MAX_INDEX);
  return i;
}

/* The type of the item that holds parts of this list and type. */
static const char *holder_type (const char *list, const char *part_type) {
  return strcmp(list, "summary") == 0 || strcmp(part_type, "reasoning_text") == 0
         ? "reasoning" : "message";
}

/*
** Makes v an object; one that is new (or was left half-made by a failed
** allocation) gets {"type": type}. 0, or -1 on ENOMEM.
*/
static int made_typed (aigc_json_value *v, const char *type) {
  const aigc_json_value *old = aigc_json_get(v, "type");
  aigc_json_value *t;
  int fresh = v->type != AIGC_JSON_OBJECT || v->len == 0 || (old != NULL && old->type == AIGC_JSON_NULL);
  ensure(v, AIGC_JSON_OBJECT);
  if (!fresh || type == NULL)
    return 0;
  if ((t = SLOT(v, "type")) == NULL)
    return -1;
  return str_append(t, type, strlen(type));
}

/*
** output[output_index] of the event, made as needed (a new item gets
** {"type": item_type}: "message" for text, "function_call" for
** arguments...); NULL with *rc set.
*/
static aigc_json_value *item_of (aigc_raccum *a, const aigc_json_value *ev, const char *item_type,
                                 int *rc) {
  long oi = index_field(a, ev, "output_index");
  aigc_json_value *output, *item;
  *rc = AIGC_RACCUM_BADSHAPE;
  if (oi < 0)
    return NULL;
  *rc = AIGC_RACCUM_NOMEM;
  if ((output = SLOT(&a->root, "output")) == NULL)
    return NULL;
  ensure(output, AIGC_JSON_ARRAY);
  if ((item = arr_slot(output, (size_t)oi)) == NULL || made_typed(item, item_type) != 0)
    return NULL;
  *rc = AIGC_RACCUM_OK;
  return item;
}

/*
** item[list][event[index_key]] (list "content" or "summary"), made as
** needed: a new part gets {"type": part_type, field: ""}.
*/
static aigc_json_value *part_of (aigc_raccum *a, const aigc_json_value *ev, const char *list,
                                 const char *index_key, const char *part_type, int *rc) {
  aigc_json_value *item, *parts, *part;
  long pi = index_field(a, ev, index_key);   /* (checked before anything is made) */
  if (pi < 0) {
    *rc = AIGC_RACCUM_BADSHAPE;
    return NULL;
  }
  if ((item = item_of(a, ev, holder_type(list, part_type), rc)) == NULL)
    return NULL;
  *rc = AIGC_RACCUM_NOMEM;
  if ((parts = obj_slot(item, list, strlen(list))) == NULL)
    return NULL;
  ensure(parts, AIGC_JSON_ARRAY);
  if ((part = arr_slot(parts, (size_t)pi)) == NULL || made_typed(part, part_type) != 0)
    return NULL;
  *rc = AIGC_RACCUM_OK;
  return part;
}

/* The event's "delta" string, or NULL (a->error set). */
static const aigc_json_value *delta_of (aigc_raccum *a, const aigc_json_value *ev) {
  const aigc_json_value *d = aigc_json_get(ev, "delta");
  if (d == NULL || d->type != AIGC_JSON_STRING) {
    bad(a, "delta is missing or not a string");
    return NULL;
  }
  return d;
}

/* Appends the delta d to target[field]. */
static int append_delta (aigc_json_value *target, const char *field, const aigc_json_value *d) {
  aigc_json_value *slot;
  if ((slot = obj_slot(target, field, strlen(field))) == NULL || str_append(slot, d->u.s, d->len) != 0)
    return AIGC_RACCUM_NOMEM;
  return AIGC_RACCUM_OK;
}

/* A ".done" event's final value ev[field] fills target[field] if no delta came. */
static int fill_done (aigc_raccum *a, aigc_json_value *target, const char *field,
                      const aigc_json_value *ev) {
  const aigc_json_value *v = aigc_json_get(ev, field);
  aigc_json_value *slot;
  if (v == NULL)
    return AIGC_RACCUM_OK;
  if ((slot = obj_slot(target, field, strlen(field))) == NULL)
    return AIGC_RACCUM_NOMEM;
  if (built(slot))
    return AIGC_RACCUM_OK;
  return put_copy(a, slot, v);
}

/* The object member `key` of the event, or NULL (a->error set). */
static const aigc_json_value *object_field (aigc_raccum *a, const aigc_json_value *ev,
                                            const char *key) {
  const aigc_json_value *v = aigc_json_get(ev, key);
  if (v == NULL || v->type != AIGC_JSON_OBJECT) {
    snprintf(a->error, sizeof a->error, "%s is missing or not an object", key);
    return NULL;
  }
  return v;
}

static const char *const ITEM_BUILT[] = { "content", "summary", "arguments", "input", "code", NULL };

/*
** The last snapshot's output completes the items built from the events, as
** an output_item.done would: what they lack is taken from it (an item added
** empty and never filled by events, a status), what deltas built stays.
*/
static int complete_output (aigc_raccum *a, aigc_json_value *built_output, const aigc_json_value *output) {
  size_t i;
  for (i = 0; i < output->len && i <= AIGC_RACCUM_MAX_INDEX; i++) {
    const aigc_json_value *src = &output->u.items[i];
    aigc_json_value *item;
    int rc;
    if (src->type != AIGC_JSON_OBJECT)
      continue;
    if ((item = arr_slot(built_output, i)) == NULL)
      return AIGC_RACCUM_NOMEM;
    rc = item->type == AIGC_JSON_OBJECT ? merge_members(a, item, src, ITEM_BUILT) : put_copy(a, item, src);
    if (rc != AIGC_RACCUM_OK)
      return rc;
  }
  return AIGC_RACCUM_OK;
}

/* A snapshot: the response's members but output replace the accumulated ones. */
static int snapshot (aigc_raccum *a, const aigc_json_value *ev, aigc_raccum_end end) {
  const aigc_json_value *resp = object_field(a, ev, "response");
  const aigc_json_value *output;
  aigc_json_value *slot;
  size_t i;
  int rc;
  if (resp == NULL)
    return AIGC_RACCUM_BADSHAPE;
  for (i = 0; i < resp->len; i++) {
    const aigc_json_member *m = &resp->u.members[i];
    if (m->key_len == 6 && memcmp(m->key, "output", 6) == 0)
      continue;
    if ((slot = obj_slot(&a->root, m->key, m->key_len)) == NULL)
      return AIGC_RACCUM_NOMEM;
    if ((rc = put_copy(a, slot, &m->value)) != AIGC_RACCUM_OK)
      return rc;
  }
  output = aigc_json_get(resp, "output");
  if ((slot = SLOT(&a->root, "output")) == NULL)
    return AIGC_RACCUM_NOMEM;
  if (slot->type != AIGC_JSON_ARRAY || slot->len == 0
      || (a->resumed && end != AIGC_RACCUM_PENDING)) {   /* (a resumed stream built a part) */
    if (output != NULL && output->type == AIGC_JSON_ARRAY) {
      if ((rc = put_copy(a, slot, output)) != AIGC_RACCUM_OK)
        return rc;
    }
    else
      ensure(slot, AIGC_JSON_ARRAY);
  }
  else if (end != AIGC_RACCUM_PENDING && output != NULL && output->type == AIGC_JSON_ARRAY
           && (rc = complete_output(a, slot, output)) != AIGC_RACCUM_OK)
    return rc;
  if (end != AIGC_RACCUM_PENDING)
    a->end = end;
  return AIGC_RACCUM_OK;
}

/* output_item.added (replace) and output_item.done (complete). */
static int item_event (aigc_raccum *a, const aigc_json_value *ev, int done) {
  const aigc_json_value *src = object_field(a, ev, "item");
  aigc_json_value *item;
  int rc;
  if (src == NULL)
    return AIGC_RACCUM_BADSHAPE;
  if ((item = item_of(a, ev, NULL, &rc)) == NULL)
    return rc;
  if (!done)
    return put_copy(a, item, src);
  return merge_members(a, item, src, ITEM_BUILT);
}

/* A part's "type" ("output_text" when it has none). */
static const char *part_type_of (const aigc_json_value *part) {
  const aigc_json_value *t = aigc_json_get(part, "type");
  return t != NULL && t->type == AIGC_JSON_STRING ? t->u.s : "output_text";
}

/* content_part / reasoning_summary_part .added and .done. */
static int part_event (aigc_raccum *a, const aigc_json_value *ev, const char *list,
                       const char *index_key, int done) {
  const aigc_json_value *src = object_field(a, ev, "part");
  aigc_json_value *part;
  int rc;
  if (src == NULL)
    return AIGC_RACCUM_BADSHAPE;
  /* (the part's type names the item made for it: a reasoning_text part's
     is a "reasoning" item, not a "message") */
  if ((part = part_of(a, ev, list, index_key, part_type_of(src), &rc)) == NULL)
    return rc;
  if (!done)
    return put_copy(a, part, src);
  return merge_members(a, part, src, PART_BUILT);
}

/* A text delta or done into a part: list/index_key/part_type say where. */
static int text_event (aigc_raccum *a, const aigc_json_value *ev, const char *list,
                       const char *index_key, const char *part_type, const char *field, int done) {
  const aigc_json_value *d = NULL;
  aigc_json_value *part;
  int rc;
  if (!done && (d = delta_of(a, ev)) == NULL)
    return AIGC_RACCUM_BADSHAPE;
  if ((part = part_of(a, ev, list, index_key, part_type, &rc)) == NULL)
    return rc;
  return done ? fill_done(a, part, field, ev) : append_delta(part, field, d);
}

/* A delta or done of an item's own text, item[field] (a new item gets
   {"type": item_type}). */
static int call_event (aigc_raccum *a, const aigc_json_value *ev, const char *item_type,
                       const char *field, int done) {
  const aigc_json_value *d = NULL;
  aigc_json_value *item;
  int rc;
  if (!done && (d = delta_of(a, ev)) == NULL)
    return AIGC_RACCUM_BADSHAPE;
  if ((item = item_of(a, ev, item_type, &rc)) == NULL)
    return rc;
  return done ? fill_done(a, item, field, ev) : append_delta(item, field, d);
}

static int annotation_event (aigc_raccum *a, const aigc_json_value *ev) {
  const aigc_json_value *ann = aigc_json_get(ev, "annotation");
  aigc_json_value *part, *list, *slot;
  long ai;
  int rc;
  if (ann == NULL)
    return bad(a, "annotation is missing");
  if ((ai = index_field(a, ev, "annotation_index")) < 0)
    return AIGC_RACCUM_BADSHAPE;
  if ((part = part_of(a, ev, "content", "content_index", "output_text", &rc)) == NULL)
    return rc;
  if ((list = SLOT(part, "annotations")) == NULL)
    return AIGC_RACCUM_NOMEM;
  ensure(list, AIGC_JSON_ARRAY);
  if ((slot = arr_slot(list, (size_t)ai)) == NULL)
    return AIGC_RACCUM_NOMEM;
  return put_copy(a, slot, ann);
}

/*
** A shell call's command (shell_call_command.added / delta / done):
** output[oi].action.commands[command_index], a string, made as needed in
** an item {"type": "shell_call"}. added sets it, a delta appends, done
** fills it when no delta came.
*/
static int command_event (aigc_raccum *a, const aigc_json_value *ev, int what) {
  const aigc_json_value *src = aigc_json_get(ev, what > 0 ? "delta" : "command");
  aigc_json_value *item, *action, *list, *slot;
  long ci = index_field(a, ev, "command_index");
  int rc;
  if (ci < 0)
    return AIGC_RACCUM_BADSHAPE;
  if (src == NULL || src->type != AIGC_JSON_STRING)
    return bad(a, what > 0 ? "delta is missing or not a string" : "command is missing or not a string");
  if ((item = item_of(a, ev, "shell_call", &rc)) == NULL)
    return rc;
  if ((action = SLOT(item, "action")) == NULL)
    return AIGC_RACCUM_NOMEM;
  ensure(action, AIGC_JSON_OBJECT);
  if ((list = SLOT(action, "commands")) == NULL)
    return AIGC_RACCUM_NOMEM;
  ensure(list, AIGC_JSON_ARRAY);
  if ((slot = arr_slot(list, (size_t)ci)) == NULL)
    return AIGC_RACCUM_NOMEM;
  if (what > 0)
    return str_append(slot, src->u.s, src->len) != 0 ? AIGC_RACCUM_NOMEM : AIGC_RACCUM_OK;
  return what < 0 && built(slot) ? AIGC_RACCUM_OK : put_copy(a, slot, src);
}

/* The part output[oi].output[command_index] of an item {"type":
   "shell_call_output"}, made as needed (an object), or NULL (*rc set). */
static aigc_json_value *shell_output_part (aigc_raccum *a, const aigc_json_value *ev, int *rc) {
  aigc_json_value *item, *list, *part;
  long ci = index_field(a, ev, "command_index");
  *rc = AIGC_RACCUM_BADSHAPE;
  if (ci < 0 || (item = item_of(a, ev, "shell_call_output", rc)) == NULL)
    return NULL;
  *rc = AIGC_RACCUM_NOMEM;
  if ((list = SLOT(item, "output")) == NULL)
    return NULL;
  ensure(list, AIGC_JSON_ARRAY);
  if ((part = arr_slot(list, (size_t)ci)) == NULL)
    return NULL;
  ensure(part, AIGC_JSON_OBJECT);
  *rc = AIGC_RACCUM_OK;
  return part;
}

/*
** A shell call output's delta (shell_call_output_content.delta): its
** {"stdout", "stderr"} appended to output[oi].output[command_index].
*/
static int output_content_event (aigc_raccum *a, const aigc_json_value *ev) {
  static const char *const fields[] = { "stdout", "stderr" };
  const aigc_json_value *d = object_field(a, ev, "delta");
  aigc_json_value *part;
  int rc, i;
  if (d == NULL)
    return AIGC_RACCUM_BADSHAPE;
  if ((part = shell_output_part(a, ev, &rc)) == NULL)
    return rc;
  for (i = 0; i < 2; i++) {
    const aigc_json_value *v = aigc_json_get(d, fields[i]);
    if (v != NULL && v->type == AIGC_JSON_STRING && (rc = append_delta(part, fields[i], v)) != AIGC_RACCUM_OK)
      return rc;
  }
  return AIGC_RACCUM_OK;
}

/* The content a shell_call_output_content.done event gives its command:
   its "output" list's one object, or NULL (none, or several: what these
   mean is not documented, so output_item.done completes the item). */
static const aigc_json_value *shell_done_content (const aigc_json_value *ev) {
  const aigc_json_value *out = aigc_json_get(ev, "output");
  if (out == NULL || out->type != AIGC_JSON_ARRAY || out->len != 1
      || out->u.items[0].type != AIGC_JSON_OBJECT)
    return NULL;
  return &out->u.items[0];
}

static const char *const SHELL_BUILT[] = { "stdout", "stderr", NULL };

/*
** shell_call_output_content.done: the final content completes the part,
** as output_item.done would (a stream cut before that kept none of it): the
** stdout and stderr the deltas built stay, the rest (outcome) is taken.
*/
static int output_content_done (aigc_raccum *a, const aigc_json_value *ev) {
  const aigc_json_value *src = shell_done_content(ev);
  aigc_json_value *part;
  int rc;
  if (src == NULL)
    return AIGC_RACCUM_OK;
  if ((part = shell_output_part(a, ev, &rc)) == NULL)
    return rc;
  return merge_members(a, part, src, SHELL_BUILT);
}

/* The event types, after "response.". */
typedef enum { EV_CREATED, EV_COMPLETED, EV_INCOMPLETE, EV_FAILED, EV_ITEM_ADDED, EV_ITEM_DONE,
  EV_PART_ADDED, EV_PART_DONE, EV_TEXT_DELTA, EV_TEXT_DONE, EV_REFUSAL_DELTA, EV_REFUSAL_DONE,
  EV_ARGS_DELTA, EV_ARGS_DONE, EV_SUMMARY_PART_ADDED, EV_SUMMARY_PART_DONE, EV_SUMMARY_DELTA,
  EV_SUMMARY_DONE, EV_REASONING_DELTA, EV_REASONING_DONE, EV_ANNOTATION, EV_INPUT_DELTA,
  EV_INPUT_DONE, EV_CODE_DELTA, EV_CODE_DONE, EV_MCP_DELTA, EV_MCP_DONE, EV_COMMAND_ADDED,
  EV_COMMAND_DELTA, EV_COMMAND_DONE, EV_SHELL_OUTPUT_DELTA, EV_SHELL_OUTPUT_DONE, EV_OTHER } ev_kind;

static const struct { const char *name; ev_kind kind; } EVENTS[] = {
  { "created", EV_CREATED }, { "queued", EV_CREATED }, { "in_progress", EV_CREATED },
  { "completed", EV_COMPLETED }, { "incomplete", EV_INCOMPLETE }, { "failed", EV_FAILED },
  { "output_item.added", EV_ITEM_ADDED }, { "output_item.done", EV_ITEM_DONE },
  { "content_part.added", EV_PART_ADDED }, { "content_part.done", EV_PART_DONE },
  { "output_text.delta", EV_TEXT_DELTA }, { "output_text.done", EV_TEXT_DONE },
  { "refusal.delta", EV_REFUSAL_DELTA }, { "refusal.done", EV_REFUSAL_DONE },
  { "function_call_arguments.delta", EV_ARGS_DELTA },
  { "function_call_arguments.done", EV_ARGS_DONE },
  { "reasoning_summary_part.added", EV_SUMMARY_PART_ADDED },
  { "reasoning_summary_part.done", EV_SUMMARY_PART_DONE },
  { "reasoning_summary_text.delta", EV_SUMMARY_DELTA },
  { "reasoning_summary_text.done", EV_SUMMARY_DONE },
  { "reasoning_text.delta", EV_REASONING_DELTA }, { "reasoning_text.done", EV_REASONING_DONE },
  { "output_text.annotation.added", EV_ANNOTATION },
  { "custom_tool_call_input.delta", EV_INPUT_DELTA }, { "custom_tool_call_input.done", EV_INPUT_DONE },
  { "code_interpreter_call_code.delta", EV_CODE_DELTA },
  { "code_interpreter_call_code.done", EV_CODE_DONE },
  { "mcp_call_arguments.delta", EV_MCP_DELTA }, { "mcp_call_arguments.done", EV_MCP_DONE },
  { "shell_call_command.added", EV_COMMAND_ADDED }, { "shell_call_command.delta", EV_COMMAND_DELTA },
  { "shell_call_command.done", EV_COMMAND_DONE },
  { "shell_call_output_content.delta", EV_SHELL_OUTPUT_DELTA },
  { "shell_call_output_content.done", EV_SHELL_OUTPUT_DONE },
};

/*
** The streamed text of an item itself (a function or MCP call's arguments,
** a custom tool call's input, a code interpreter call's code): its member,
** with the type an item made for it gets and whether the event is the
** ".done"; NULL for the other kinds.
*/
static const char *call_text (ev_kind k, const char **item_type, int *done) {
  *done = k == EV_ARGS_DONE || k == EV_INPUT_DONE || k == EV_CODE_DONE || k == EV_MCP_DONE;
  switch (k) {
    case EV_ARGS_DELTA: case EV_ARGS_DONE: *item_type = "function_call"; return "arguments";
    case EV_INPUT_DELTA: case EV_INPUT_DONE: *item_type = "custom_tool_call"; return "input";
    case EV_CODE_DELTA: case EV_CODE_DONE: *item_type = "code_interpreter_call"; return "code";
    case EV_MCP_DELTA: case EV_MCP_DONE: *item_type = "mcp_call"; return "arguments";
    default: return NULL;
  }
}

static ev_kind kind_of (const char *type, size_t len) {
  size_t i;
  if (type == NULL || len < 9 || memcmp(type, "response.", 9) != 0)
    return EV_OTHER;
  type += 9;
  len -= 9;
  for (i = 0; i < sizeof EVENTS / sizeof EVENTS[0]; i++)
    if (strlen(EVENTS[i].name) == len && memcmp(EVENTS[i].name, type, len) == 0)
      return EVENTS[i].kind;
  return EV_OTHER;
}

/*
** What an event of kind k may copy into the tree (charged before anything
** changes, so that a refused event changes nothing), or NULL.
*/
static const aigc_json_value *payload_of (ev_kind k, const aigc_json_value *ev) {
  int done;
  switch (k) {
    case EV_CREATED: case EV_COMPLETED: case EV_INCOMPLETE: case EV_FAILED:
      return aigc_json_get(ev, "response");
    case EV_ITEM_ADDED: case EV_ITEM_DONE: return aigc_json_get(ev, "item");
    case EV_PART_ADDED: case EV_PART_DONE: case EV_SUMMARY_PART_ADDED: case EV_SUMMARY_PART_DONE:
      return aigc_json_get(ev, "part");
    case EV_ANNOTATION: return aigc_json_get(ev, "annotation");
    case EV_TEXT_DONE: case EV_SUMMARY_DONE: case EV_REASONING_DONE: return aigc_json_get(ev, "text");
    case EV_REFUSAL_DONE: return aigc_json_get(ev, "refusal");
    case EV_COMMAND_ADDED: case EV_COMMAND_DONE: return aigc_json_get(ev, "command");
    case EV_SHELL_OUTPUT_DONE: return shell_done_content(ev);
    default: {
      const char *type, *field = call_text(k, &type, &done);
      return field != NULL && done ? aigc_json_get(ev, field) : NULL;
    }
  }
}

static int dispatch (aigc_raccum *a, ev_kind k, const aigc_json_value *ev) {
  int done;
  switch (k) {
    case EV_CREATED: return snapshot(a, ev, AIGC_RACCUM_PENDING);
    case EV_COMPLETED: return snapshot(a, ev, AIGC_RACCUM_COMPLETED);
    case EV_INCOMPLETE: return snapshot(a, ev, AIGC_RACCUM_INCOMPLETE);
    case EV_FAILED: return snapshot(a, ev, AIGC_RACCUM_FAILED);
    case EV_ITEM_ADDED: case EV_ITEM_DONE: return item_event(a, ev, k == EV_ITEM_DONE);
    case EV_PART_ADDED: case EV_PART_DONE:
      return part_event(a, ev, "content", "content_index", k == EV_PART_DONE);
    case EV_SUMMARY_PART_ADDED: case EV_SUMMARY_PART_DONE:
      return part_event(a, ev, "summary", "summary_index", k == EV_SUMMARY_PART_DONE);
    case EV_TEXT_DELTA: case EV_TEXT_DONE:
      return text_event(a, ev, "content", "content_index", "output_text", "text", k == EV_TEXT_DONE);
    case EV_REFUSAL_DELTA: case EV_REFUSAL_DONE:
      return text_event(a, ev, "content", "content_index", "refusal", "refusal", k == EV_REFUSAL_DONE);
    case EV_SUMMARY_DELTA: case EV_SUMMARY_DONE:
      return text_event(a, ev, "summary", "summary_index", "summary_text", "text", k == EV_SUMMARY_DONE);
    case EV_REASONING_DELTA: case EV_REASONING_DONE:
      return text_event(a, ev, "content", "content_index", "reasoning_text", "text",
                        k == EV_REASONING_DONE);
    case EV_ANNOTATION: return annotation_event(a, ev);
    case EV_COMMAND_ADDED: return command_event(a, ev, 0);
    case EV_COMMAND_DELTA: return command_event(a, ev, 1);
    case EV_COMMAND_DONE: return command_event(a, ev, -1);
    case EV_SHELL_OUTPUT_DELTA: return output_content_event(a, ev);
    case EV_SHELL_OUTPUT_DONE: return output_content_done(a, ev);
    default: {
      const char *type, *field = call_text(k, &type, &done);
      return field != NULL ? call_event(a, ev, type, field, done) : AIGC_RACCUM_OK;
    }
  }
}

/* Checks and takes the event's sequence_number (raccum.h: a server that
   does not count, and a failure, are not held to it). */
static int check_sequence (aigc_raccum *a, const aigc_json_value *ev, ev_kind k) {
  const aigc_json_value *s = aigc_json_get(ev, "sequence_number");
  int64_t prev = a->last_seq;
  if (s == NULL || s->type != AIGC_JSON_INT)
    return AIGC_RACCUM_OK;
  a->last_seq = s->u.i;
  if (!a->have_seq) {
    a->have_seq = 1;
    return AIGC_RACCUM_OK;
  }
  if (prev < INT64_MAX && s->u.i == prev + 1) {
    a->seq_counts = 1;
    return AIGC_RACCUM_OK;
  }
  if ((s->u.i == prev && !a->seq_counts) || k == EV_FAILED)
    return AIGC_RACCUM_OK;
  snprintf(a->error, sizeof a->error, "sequence_number %lld came after %lld (%s)",
           (long long)s->u.i, (long long)prev, s->u.i > prev ? "events are missing"
           : s->u.i == prev ? "an event repeated" : "out of order");
  return AIGC_RACCUM_SEQUENCE;
}

/* }====================================================== */


/*
** {======================================================
** What an event makes besides its copies
** =======================================================
** Its payload (payload_of) is not all an event puts in the tree: on the
** way to its target it makes the slots item_of, part_of, annotation_event
** and append_delta make -- the null items up to output_index, the item,
** its list and the null parts up to content_index, an "annotations" list
** and the nulls up to annotation_index, the member a delta goes to. They
** count against the limits as the copies do, or a few bytes of
** "output_index": 1023 would build a thousand nulls uncharged, and a
** stream of such events hundreds of megabytes whatever the limits say.
** They are counted before anything changes, so that a refused event
** changes nothing: the walk below reads the tree along the path those
** functions will make (NULL: a node not there yet) and counts one value
** per node they will make, one container more per array or object (a
** null slot made an object is one value; a value replaced by a new node
** counts again, as a replaced copy does; a slot the payload then fills
** counts twice). An event dispatch will refuse may be charged the path it
** would have made: the stream fails on it either way. The snapshots make
** no more than "output" and the slots their payload fills.
*/

/* A node replaced by a new one: charged again unless it is a null slot. */
static void cost_replace (cost *c, const aigc_json_value *v) {
  if (v != NULL && v->type != AIGC_JSON_NULL)
    c->values++;
}

/* obj[key] as obj_slot finds it, or NULL: made, a null. */
static const aigc_json_value *cost_member (cost *c, const aigc_json_value *obj, const char *key) {
  const aigc_json_value *v = aigc_json_get(obj, key);   /* (none in a NULL or new obj) */
  if (v == NULL)
    c->values++;
  return v;
}

/* v as ensure leaves it, or NULL: made empty. */
static const aigc_json_value *cost_ensure (cost *c, const aigc_json_value *v, aigc_json_type type) {
  if (v != NULL && v->type == type)
    return v;
  cost_replace(c, v);
  c->containers++;
  return NULL;
}

/* arr[idx] as arr_slot finds it, or NULL: made, with the nulls before it. */
static const aigc_json_value *cost_slot (cost *c, const aigc_json_value *arr, long idx) {
  size_t len = arr != NULL ? arr->len : 0;
  if (idx < 0)
    return NULL;   /* refused before anything is made */
  if ((size_t)idx < len)
    return &arr->u.items[idx];
  c->values += (size_t)idx + 1 - len;
  return NULL;
}

/* v as made_typed leaves it. */
static const aigc_json_value *cost_typed (cost *c, const aigc_json_value *v, const char *type) {
  const aigc_json_value *old = aigc_json_get(v, "type");
  int fresh = v == NULL || v->type != AIGC_JSON_OBJECT || v->len == 0
              || (old != NULL && old->type == AIGC_JSON_NULL);
  v = cost_ensure(c, v, AIGC_JSON_OBJECT);
  if (fresh && type != NULL)
    cost_member(c, v, "type");   /* its string fills that slot */
  return v;
}

static const aigc_json_value *cost_item (cost *c, const aigc_raccum *a, const aigc_json_value *ev,
                                         const char *item_type) {
  long oi = index_of(ev, "output_index");
  const aigc_json_value *output;
  if (oi < 0)
    return NULL;
  output = cost_ensure(c, cost_member(c, &a->root, "output"), AIGC_JSON_ARRAY);
  return cost_typed(c, cost_slot(c, output, oi), item_type);
}

static const aigc_json_value *cost_part (cost *c, const aigc_raccum *a, const aigc_json_value *ev,
                                         const char *list, const char *index_key,
                                         const char *part_type) {
  long pi = index_of(ev, index_key);
  const aigc_json_value *item, *parts;
  if (pi < 0)
    return NULL;
  item = cost_item(c, a, ev, holder_type(list, part_type));
  parts = cost_ensure(c, cost_member(c, item, list), AIGC_JSON_ARRAY);
  return cost_typed(c, cost_slot(c, parts, pi), part_type);
}

/* A delta appended to target[field]: the member, a string unless it is one. */
static void cost_delta (cost *c, const aigc_json_value *target, const char *field) {
  const aigc_json_value *v = cost_member(c, target, field);
  if (v != NULL && v->type != AIGC_JSON_STRING)
    cost_replace(c, v);
}

/* A snapshot's "output" when it has none to copy: made an empty array. */
static void cost_snapshot (cost *c, const aigc_raccum *a, const aigc_json_value *ev) {
  const aigc_json_value *output = aigc_json_get(aigc_json_get(ev, "response"), "output");
  const aigc_json_value *slot = cost_member(c, &a->root, "output");
  if ((slot == NULL || slot->type != AIGC_JSON_ARRAY || slot->len == 0)
      && (output == NULL || output->type != AIGC_JSON_ARRAY))
    cost_ensure(c, slot, AIGC_JSON_ARRAY);
}

/* A text event: the part, and for a delta the member it goes to (cost_part
   gives NULL for a part to be made and for a path refused: the indexes tell). */
static void cost_text (cost *c, const aigc_raccum *a, const aigc_json_value *ev, const char *list,
                       const char *index_key, const char *part_type, const char *field, int done) {
  const aigc_json_value *part = cost_part(c, a, ev, list, index_key, part_type);
  if (!done && index_of(ev, index_key) >= 0 && index_of(ev, "output_index") >= 0)
    cost_delta(c, part, field);
}

/* A shell call's command slot or output part (command_event,
   output_content_event): the item, its "action" (for a command), the list
   and the slot; for a delta, the slot made a string, or the members of
   the output part it appends to. */
static void cost_shell (cost *c, const aigc_raccum *a, const aigc_json_value *ev, ev_kind k) {
  int out = k == EV_SHELL_OUTPUT_DELTA || k == EV_SHELL_OUTPUT_DONE;
  const aigc_json_value *item, *holder, *slot, *d = aigc_json_get(ev, "delta");
  long ci = index_of(ev, "command_index");
  if (ci < 0 || index_of(ev, "output_index") < 0)
    return;   /* refused before anything is made */
  item = cost_item(c, a, ev, out ? "shell_call_output" : "shell_call");
  holder = out ? item : cost_ensure(c, cost_member(c, item, "action"), AIGC_JSON_OBJECT);
  slot = cost_slot(c, cost_ensure(c, cost_member(c, holder, out ? "output" : "commands"),
                                  AIGC_JSON_ARRAY), ci);
  if (!out) {   /* (added and done copy the command into the slot) */
    if (k == EV_COMMAND_DELTA && slot != NULL && slot->type != AIGC_JSON_STRING)
      cost_replace(c, slot);
    return;
  }
  slot = cost_ensure(c, slot, AIGC_JSON_OBJECT);
  if (k == EV_SHELL_OUTPUT_DELTA && d != NULL && d->type == AIGC_JSON_OBJECT) {
    const aigc_json_value *v = aigc_json_get(d, "stdout"), *w = aigc_json_get(d, "stderr");
    if (v != NULL && v->type == AIGC_JSON_STRING)
      cost_delta(c, slot, "stdout");
    if (w != NULL && w->type == AIGC_JSON_STRING)
      cost_delta(c, slot, "stderr");
  }
}

/* The nodes an event of kind k makes besides the copies of its payload. */
static cost made_by (const aigc_raccum *a, ev_kind k, const aigc_json_value *ev) {
  cost c = { 0, 0 };
  switch (k) {
    case EV_CREATED: case EV_COMPLETED: case EV_INCOMPLETE: case EV_FAILED:
      cost_snapshot(&c, a, ev);
      break;
    case EV_ITEM_ADDED: case EV_ITEM_DONE: cost_item(&c, a, ev, NULL); break;
    case EV_PART_ADDED: case EV_PART_DONE:
      cost_part(&c, a, ev, "content", "content_index", part_type_of(aigc_json_get(ev, "part")));
      break;
    case EV_SUMMARY_PART_ADDED: case EV_SUMMARY_PART_DONE:
      cost_part(&c, a, ev, "summary", "summary_index", "output_text");
      break;
    case EV_TEXT_DELTA: case EV_TEXT_DONE:
      cost_text(&c, a, ev, "content", "content_index", "output_text", "text", k == EV_TEXT_DONE);
      break;
    case EV_REFUSAL_DELTA: case EV_REFUSAL_DONE:
      cost_text(&c, a, ev, "content", "content_index", "refusal", "refusal", k == EV_REFUSAL_DONE);
      break;
    case EV_SUMMARY_DELTA: case EV_SUMMARY_DONE:
      cost_text(&c, a, ev, "summary", "summary_index", "summary_text", "text", k == EV_SUMMARY_DONE);
      break;
    case EV_REASONING_DELTA: case EV_REASONING_DONE:
      cost_text(&c, a, ev, "content", "content_index", "reasoning_text", "text",
                k == EV_REASONING_DONE);
      break;
    case EV_ANNOTATION: {
      const aigc_json_value *part = cost_part(&c, a, ev, "content", "content_index", "output_text");
      if (index_of(ev, "content_index") >= 0 && index_of(ev, "output_index") >= 0)
        cost_slot(&c, cost_ensure(&c, cost_member(&c, part, "annotations"), AIGC_JSON_ARRAY),
                  index_of(ev, "annotation_index"));
      break;
    }
    case EV_COMMAND_ADDED: case EV_COMMAND_DELTA: case EV_COMMAND_DONE: case EV_SHELL_OUTPUT_DELTA:
      cost_shell(&c, a, ev, k);
      break;
    case EV_SHELL_OUTPUT_DONE:   /* (the members of its content are copies) */
      if (shell_done_content(ev) != NULL)
        cost_shell(&c, a, ev, k);
      break;
    default: {
      int done;
      const char *type, *field = call_text(k, &type, &done);
      const aigc_json_value *item;
      if (field == NULL)
        break;
      item = cost_item(&c, a, ev, type);
      if (!done && index_of(ev, "output_index") >= 0)
        cost_delta(&c, item, field);
      break;
    }
  }
  return c;
}

/* }====================================================== */


/*
** {======================================================
** Members: how big the objects merged into may grow
** =======================================================
*/

/*
** A key merged into the response, its items, their parts or an action is
** found by a linear search (obj_slot): the fastest for the handful of
** members real objects have, but quadratic for objects a server lets grow
** without bound (an output_item.done adding one key each time, an item of
** 100,000 keys then a delta per letter: hours for a 64 MiB stream). So an
** event that would merge into, or copy to one of those places, an object
** of more than AIGC_RACCUM_MAX_MEMBERS members is refused before anything
** changes: they then hold at most twice that (one merge of two) plus the
** few members the events name, and a key costs that many comparisons at most.
*/

static int too_big (const aigc_json_value *v) {
  return v != NULL && v->type == AIGC_JSON_OBJECT && v->len > AIGC_RACCUM_MAX_MEMBERS;
}

/* v[idx] when v is an array that long, else NULL. */
static const aigc_json_value *item_at (const aigc_json_value *v, long idx) {
  if (v == NULL || v->type != AIGC_JSON_ARRAY || idx < 0 || (size_t)idx >= v->len)
    return NULL;
  return &v->u.items[idx];
}

/* The item src merged into dst (NULL: copied): the items, the parts of
   their lists at the same index, src's action. */
static int item_too_big (const aigc_json_value *dst, const aigc_json_value *src) {
  static const char *const lists[] = { "content", "summary", "output" };
  size_t i, j;
  if (too_big(dst) || too_big(src) || too_big(aigc_json_get(src, "action")))
    return 1;
  for (i = 0; i < 3; i++) {
    const aigc_json_value *s = aigc_json_get(src, lists[i]), *d = aigc_json_get(dst, lists[i]);
    for (j = 0; s != NULL && s->type == AIGC_JSON_ARRAY && j < s->len; j++)
      if (too_big(&s->u.items[j]) || too_big(item_at(d, (long)j)))
        return 1;
  }
  return 0;
}

/* The item of the response the event names by its output_index, or NULL. */
static const aigc_json_value *item_named (const aigc_raccum *a, const aigc_json_value *ev) {
  return item_at(aigc_json_get(&a->root, "output"), index_of(ev, "output_index"));
}

/* Whether the event merges or copies an object past the bound. (The
   look-ups run only for the events that bring objects: a delta, the
   stream's hot path, adds one member its event names.) */
static int members_over (const aigc_raccum *a, ev_kind k, const aigc_json_value *ev) {
  const aigc_json_value *output, *src;
  size_t i;
  switch (k) {
    case EV_CREATED: case EV_COMPLETED: case EV_INCOMPLETE: case EV_FAILED:
      src = aigc_json_get(ev, "response");
      if (too_big(&a->root) || too_big(src))
        return 1;
      output = aigc_json_get(&a->root, "output");
      src = aigc_json_get(src, "output");
      for (i = 0; src != NULL && src->type == AIGC_JSON_ARRAY && i < src->len; i++)
        if (item_too_big(item_at(output, (long)i), &src->u.items[i]))
          return 1;
      return 0;
    case EV_ITEM_ADDED: return item_too_big(NULL, aigc_json_get(ev, "item"));
    case EV_ITEM_DONE: return item_too_big(item_named(a, ev), aigc_json_get(ev, "item"));
    case EV_PART_DONE: case EV_SUMMARY_PART_DONE:
      if (too_big(item_at(aigc_json_get(item_named(a, ev), k == EV_PART_DONE ? "content" : "summary"),
                          index_of(ev, k == EV_PART_DONE ? "content_index" : "summary_index"))))
        return 1;
      /* FALLTHROUGH */
    case EV_PART_ADDED: case EV_SUMMARY_PART_ADDED: return too_big(aigc_json_get(ev, "part"));
    case EV_SHELL_OUTPUT_DONE:
      return too_big(shell_done_content(ev))
             || too_big(item_at(aigc_json_get(item_named(a, ev), "output"), index_of(ev, "command_index")));
    default: return 0;
  }
}

/* }====================================================== */


void aigc_raccum_init (aigc_raccum *a) {
  memset(a, 0, sizeof *a);
  a->root.type = AIGC_JSON_OBJECT;
}

void aigc_raccum_resume (aigc_raccum *a, int64_t n) {
  a->resumed = 1;
  a->resumed_after = a->last_seq = n;
  a->have_seq = a->seq_counts = 1;   /* (so the first event must be n + 1) */
}

void aigc_raccum_free (aigc_raccum *a) {
  aigc_json_limits limits = a->limits;
  int resumed = a->resumed;
  int64_t after = a->resumed_after;
  aigc_json_free(&a->root);
  aigc_raccum_init(a);
  a->limits = limits;
  if (resumed)
    aigc_raccum_resume(a, after);
}

void aigc_raccum_reset (aigc_raccum *a) {
  aigc_raccum_free(a);
}

const char *aigc_raccum_event_type (const aigc_json_value *ev, const char *type, size_t tlen,
                                    size_t *len) {
  const aigc_json_value *t = aigc_json_get(ev, "type");
  if (t != NULL && t->type == AIGC_JSON_STRING) {
    *len = t->len;
    return t->u.s;
  }
  *len = type ? tlen : 0;
  return type;
}

int aigc_raccum_add (aigc_raccum *a, const char *type, size_t tlen, const aigc_json_value *ev) {
  const aigc_json_value *payload;
  cost made;
  size_t len;
  const char *t;
  ev_kind k;
  int rc;
  a->error[0] = '\0';
  if (ev->type != AIGC_JSON_OBJECT)
    return bad(a, "an event is not a JSON object");
  t = aigc_raccum_event_type(ev, type, tlen, &len);
  k = kind_of(t, len);
  if ((rc = check_sequence(a, ev, k)) != AIGC_RACCUM_OK)
    return rc;
  if (members_over(a, k, ev)) {
    snprintf(a->error, sizeof a->error, "an object of more than %d members",
             AIGC_RACCUM_MAX_MEMBERS);
    return AIGC_RACCUM_LIMIT;
  }
  payload = payload_of(k, ev);
  made = made_by(a, k, ev);
  if (charge(a, payload, &made) != 0)
    return AIGC_RACCUM_LIMIT;
  rc = dispatch(a, k, ev);
  if (rc == AIGC_RACCUM_NOMEM)
    snprintf(a->error, sizeof a->error, "out of memory");
  else if (rc == AIGC_RACCUM_OK)
    a->events++;
  return rc;
}

static int is_string (const aigc_json_value *v, const char *s) {
  return v != NULL && v->type == AIGC_JSON_STRING && v->len == strlen(s) && memcmp(v->u.s, s, v->len) == 0;
}

int aigc_raccum_output_text (const aigc_json_value *response,
                             int (*put)(void *ud, const char *s, size_t n), void *ud) {
  const aigc_json_value *output = aigc_json_get(response, "output");
  size_t i, j;
  if (output == NULL || output->type != AIGC_JSON_ARRAY)
    return 0;
  for (i = 0; i < output->len; i++) {
    const aigc_json_value *item = &output->u.items[i];
    const aigc_json_value *content = aigc_json_get(item, "content");
    if (!is_string(aigc_json_get(item, "type"), "message") || content == NULL
        || content->type != AIGC_JSON_ARRAY)
      continue;
    for (j = 0; j < content->len; j++) {
      const aigc_json_value *part = &content->u.items[j];
      const aigc_json_value *text = aigc_json_get(part, "text");
      int rc;
      if (is_string(aigc_json_get(part, "type"), "output_text") && text != NULL
          && text->type == AIGC_JSON_STRING && (rc = put(ud, text->u.s, text->len)) != 0)
        return rc;
    }
  }
  return 0;
}
