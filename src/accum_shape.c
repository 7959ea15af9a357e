/*
** accum_shape.c — aigc_accum_finish (accum.h): the accumulator's result
** shaped like a non-streamed response, a new owned tree built from the
** merged one (accum.c), which it only reads.
*/
#include <stdlib.h>
#include <string.h>

#include "accum_tree.h"


/* {====================================================================
** Shaping (aigc_accum_finish): a new tree built from root
** ===================================================================== */

/* Appends (key, *val) to an owned object; takes *val. */
static int put (aigc_json_value *obj, const char *key, size_t key_len,
                aigc_json_value *val) {
  char *k = (key_len < (size_t)-1) ? (char *)malloc(key_len + 1) : NULL;
  size_t ncap;
  if (k == NULL)
    goto nomem;
  if (obj->len == obj->cap) {
    aigc_json_member *m;
    if (next_cap(obj->cap, obj->len + 1, sizeof(aigc_json_member), &ncap) != 0 ||
        (m = (aigc_json_member *)realloc(obj->u.members,
                                  ncap * sizeof(aigc_json_member))) == NULL)
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
  aigc_json_free(val);
  return -1;
}

#define PUT(obj, lit, val)  put((obj), (lit), sizeof(lit) - 1, (val))

static int put_copy (aigc_json_value *obj, const aigc_json_member *m) {
  aigc_json_value nv;
  if (aigc_json_copy(&nv, &m->value) != 0)
    return -1;
  return put(obj, m->key, m->key_len, &nv);
}

/* Copies obj's member `key` (when present and not null) or else *dflt. */
static int put_or (aigc_json_value *out, const aigc_json_value *obj, const char *key,
                   aigc_json_value *dflt) {
  const aigc_json_value *v = aigc_json_get(obj, key);
  aigc_json_value nv;
  if (v != NULL && v->type != AIGC_JSON_NULL) {
    aigc_json_free(dflt);
    if (aigc_json_copy(&nv, v) != 0)
      return -1;
  }
  else
    nv = *dflt;
  return put(out, key, strlen(key), &nv);
}

/* Is m one of the NULL-terminated keys? */
static int among (const aigc_json_member *m, const char *const *keys) {
  for (; *keys != NULL; keys++)
    if (key_is(m, *keys))
      return 1;
  return 0;
}

/* Appends items[order] to an owned array; takes *val. */
static int push_item (aigc_json_value *arr, aigc_json_value *val) {
  if (items_reserve(arr, 1) != 0) {
    aigc_json_free(val);
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
static int shape_tool_calls (const aigc_json_value *tc, aigc_json_value *out) {
  size_t count[AIGC_ACCUM_MAX_INDEX + 3];
  size_t *order = NULL, i, j;
  if (tc->type != AIGC_JSON_ARRAY)
    return aigc_json_copy(out, tc);
  empty(out, AIGC_JSON_ARRAY);
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
    const aigc_json_value *item = &tc->u.items[order[i]];
    aigc_json_value nv;
    if (item->type != AIGC_JSON_OBJECT) {
      if (aigc_json_copy(&nv, item) != 0)
        goto nomem;
    }
    else {
      empty(&nv, AIGC_JSON_OBJECT);
      for (j = 0; j < item->len; j++) {
        if (!key_is(&item->u.members[j], "index") &&
            put_copy(&nv, &item->u.members[j]) != 0) {
          aigc_json_free(&nv);
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
  aigc_json_free(out);
  return -1;
}

/* A chat message: "role" and "content" first, always present. */
static int shape_message (const aigc_json_value *msg, aigc_json_value *out) {
  static const char *const fixed[] = {"role", "content", NULL};
  aigc_json_value nv;
  size_t i;
  empty(out, AIGC_JSON_OBJECT);
  if (new_string(&nv, "assistant") != 0 || put_or(out, msg, "role", &nv) != 0)
    goto nomem;
  empty(&nv, AIGC_JSON_NULL);
  if (put_or(out, msg, "content", &nv) != 0)
    goto nomem;
  if (msg == NULL || msg->type != AIGC_JSON_OBJECT)
    return 0;
  for (i = 0; i < msg->len; i++) {
    const aigc_json_member *m = &msg->u.members[i];
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
  aigc_json_free(out);
  return -1;
}

/*
** A choice in the order a non-streamed response writes it — chat: index,
** message, logprobs, finish_reason; completions: text, index, logprobs,
** finish_reason — then anything else the stream carried. Its first member
** is its "index" (see merge_choices).
*/
static int shape_choice (aigc_accum_kind kind, const aigc_json_value *ch,
                         aigc_json_value *out) {
  static const char *const fixed_chat[] =
    {"index", "message", "logprobs", "finish_reason", NULL};
  static const char *const fixed_text[] =
    {"text", "index", "logprobs", "finish_reason", NULL};
  aigc_json_value nv;
  size_t i;
  empty(out, AIGC_JSON_OBJECT);
  if (kind == AIGC_ACCUM_CHAT) {
    if (put_copy(out, &ch->u.members[0]) != 0 ||
        shape_message(aigc_json_get(ch, "message"), &nv) != 0 ||
        PUT(out, "message", &nv) != 0)
      goto nomem;
  }
  else {
    if (new_string(&nv, "") != 0 || put_or(out, ch, "text", &nv) != 0 ||
        put_copy(out, &ch->u.members[0]) != 0)
      goto nomem;
  }
  empty(&nv, AIGC_JSON_NULL);
  if (put_or(out, ch, "logprobs", &nv) != 0)
    goto nomem;
  empty(&nv, AIGC_JSON_NULL);
  if (put_or(out, ch, "finish_reason", &nv) != 0)
    goto nomem;
  for (i = 0; i < ch->len; i++) {
    const aigc_json_member *m = &ch->u.members[i];
    if (!among(m, kind == AIGC_ACCUM_CHAT ? fixed_chat : fixed_text) &&
        put_copy(out, m) != 0)
      goto nomem;
  }
  return 0;
nomem:
  aigc_json_free(out);
  return -1;
}

/* Choices in index order (indexes are unique in root). */
static int shape_choices (aigc_accum_kind kind, const aigc_json_value *choices,
                          aigc_json_value *out) {
  size_t at[AIGC_ACCUM_MAX_INDEX + 1];
  size_t i;
  empty(out, AIGC_JSON_ARRAY);
  for (i = 0; i <= AIGC_ACCUM_MAX_INDEX; i++)
    at[i] = NOPOS;
  for (i = 0; i < choices->len; i++)
    at[choices->u.items[i].u.members[0].value.u.i] = i;
  for (i = 0; i <= AIGC_ACCUM_MAX_INDEX; i++) {
    aigc_json_value nv;
    if (at[i] == NOPOS)
      continue;
    if (shape_choice(kind, &choices->u.items[at[i]], &nv) != 0 ||
        push_item(out, &nv) != 0) {
      aigc_json_free(out);
      return -1;
    }
  }
  return 0;
}

/*
** The whole response: root's members in order, "object" right after "id"
** when no chunk named it, "choices" and "usage" always present.
*/
static int shape (const aigc_accum *a, aigc_json_value *out) {
  const aigc_json_value *root = &a->root;
  int need_object = FIND(root, "object") == NOPOS;
  aigc_json_value nv;
  size_t i;
  empty(out, AIGC_JSON_OBJECT);
  if (need_object && FIND(root, "id") == NOPOS) {
    if (new_string(&nv, result_object(a->kind)) != 0 ||
        PUT(out, "object", &nv) != 0)
      goto nomem;
    need_object = 0;
  }
  for (i = 0; i < root->len; i++) {
    const aigc_json_member *m = &root->u.members[i];
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
    empty(&nv, AIGC_JSON_ARRAY);
    if (PUT(out, "choices", &nv) != 0)
      goto nomem;
  }
  if (FIND(root, "usage") == NOPOS) {
    empty(&nv, AIGC_JSON_NULL);
    if (PUT(out, "usage", &nv) != 0)
      goto nomem;
  }
  return 0;
nomem:
  aigc_json_free(out);
  return -1;
}

/* }==================================================================== */

/*
** The shaped tree is cached in its slot until an add changes root, so
** calling finish again without an add in between costs nothing. (A
** refused add leaves root, hence the cache, as it was.)
*/
const aigc_json_value *aigc_accum_finish (aigc_accum *a) {
  aigc_json_value *sh;
  a->memo.valid = 0;   /* (the root's members may move: accum_scan's template points into the tree) */
  sh = aigc_accum_result_slot(a);
  if (sh == NULL)
    return NULL;
  if (sh->type == AIGC_JSON_OBJECT)
    return sh;
  if (shape(a, sh) != 0)
    return NULL;
  return sh;
}
