/*
** accum_keys.c — see accum_keys.h: the tables behind a merge's key
** lookups.
**
** Merging looks up each delta key in the accumulated object at the same
** place. A linear search is the fastest thing for the handful of members
** real objects have, but an object that gains one member per chunk would
** make n chunks cost O(n^2). So every member appended to an accumulated
** object is also recorded in one hash table that lives as long as the
** accumulator, keyed by a hash of (the path of the object from the root,
** the key), and objects of KEYS_LINEAR members or more are searched
** through it.
**
** An entry is only a hint: a hit is checked against the object itself
** (the member at that position has that key). So entries never need
** removing: those left by a rolled-back add, or by an object since
** replaced by another at the same path, just fail the check. Keys are
** unique in an accumulated object (merging looks before it appends), so a
** checked hit is the answer. Every object a merge searches was built by
** appends, each recorded (see accum.c fresh() and index_mode()), so a miss
** is a miss. The hashes are seeded per accumulator: a server cannot choose
** keys that all fall in one bucket.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "accum_keys.h"

struct aigc_keyslot {
  uint64_t h;        /* hash of (object path, key) */
  size_t pos1;       /* the member's position + 1; 0: empty slot */
};

/* A seed nobody outside this process can know (ASLR of the heap and the
   stack, the monotonic clock's nanoseconds). No static counter: aigc keeps
   no mutable C global, so lua_States on several threads share nothing
   (check-globals.lua). Every request makes one (aigc_accum_init), so the
   clock is one the vDSO answers: clock() (CPU time) was a system call,
   1.6 us each on a 2026 VM, four per request, 15 % of a request's CPU. */
void aigc_keytable_init (aigc_keytable *t, const void *where) {
  uint64_t x = (uint64_t)(uintptr_t)where;
  struct timespec ts;
  x ^= (uint64_t)(uintptr_t)&x * UINT64_C(0x9E3779B97F4A7C15);
  if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
    x ^= (uint64_t)ts.tv_sec << 30 ^ (uint64_t)ts.tv_nsec;
  t->slot = NULL;
  t->cap = t->used = 0;
  t->seed = mix64(x);
}

void aigc_keytable_free (aigc_keytable *t) {
  free(t->slot);
  t->slot = NULL;
  t->cap = t->used = 0;
}

static uint64_t key_hash (uint64_t seed, const char *key, size_t n) {
  uint64_t h = seed ^ UINT64_C(14695981039346656037);   /* FNV-1a, seeded */
  size_t i;
  for (i = 0; i < n; i++)
    h = (h ^ (unsigned char)key[i]) * UINT64_C(1099511628211);
  return mix64(h ^ n);
}

static int has_key (const aigc_json_value *obj, size_t pos, const char *key,
                    size_t n) {
  const aigc_json_member *m;
  if (pos >= obj->len)
    return 0;
  m = &obj->u.members[pos];
  return m->key_len == n && memcmp(m->key, key, n) == 0;
}

size_t aigc_keytable_find (const aigc_keytable *t, const aigc_json_value *obj,
                           uint64_t path_h, const char *key, size_t n) {
  uint64_t h = mix64(path_h ^ key_hash(t->seed, key, n));
  size_t i, mask = t->cap - 1;
  for (i = (size_t)h & mask; t->slot[i].pos1 != 0; i = (i + 1) & mask)
    if (t->slot[i].h == h && has_key(obj, t->slot[i].pos1 - 1, key, n))
      return t->slot[i].pos1 - 1;
  return KEYS_NONE;
}

static int grow (aigc_keytable *t) {
  size_t ncap = t->cap ? t->cap * 2 : 64, i, j;
  aigc_keyslot *ns;
  if (ncap > (size_t)-1 / sizeof(aigc_keyslot) ||
      (ns = (aigc_keyslot *)calloc(ncap, sizeof(aigc_keyslot))) == NULL)
    return -1;
  for (i = 0; i < t->cap; i++) {
    if (t->slot[i].pos1 == 0)
      continue;
    for (j = (size_t)t->slot[i].h & (ncap - 1); ns[j].pos1 != 0;
         j = (j + 1) & (ncap - 1))
      ;
    ns[j] = t->slot[i];
  }
  free(t->slot);
  t->slot = ns;
  t->cap = ncap;
  return 0;
}

int aigc_keytable_note (aigc_keytable *t, const aigc_json_value *obj,
                        uint64_t path_h, size_t pos) {
  const aigc_json_member *m = &obj->u.members[pos];
  uint64_t h;
  size_t i, mask;
  if ((t->used + 1) * 2 > t->cap && grow(t) != 0)
    return -1;
  h = mix64(path_h ^ key_hash(t->seed, m->key, m->key_len));
  mask = t->cap - 1;
  for (i = (size_t)h & mask; t->slot[i].pos1 != 0; i = (i + 1) & mask)
    if (t->slot[i].h == h && t->slot[i].pos1 == pos + 1)
      return 0;   /* noted before a rollback: the same entry */
  t->slot[i].h = h;
  t->slot[i].pos1 = pos + 1;
  t->used++;
  return 0;
}

int aigc_lastkeys_build (lastkeys *lk, const aigc_json_value *obj) {
  size_t cap = 64, i, h;
  if (obj->len > ((size_t)-1 / 8) / sizeof(size_t))
    return -1;
  while (cap < 4 * obj->len)
    cap *= 2;
  if ((lk->slot = (size_t *)calloc(cap, sizeof(size_t))) == NULL)
    return -1;
  lk->mask = cap - 1;
  for (i = 0; i < obj->len; i++) {
    const aigc_json_member *m = &obj->u.members[i];
    for (h = (size_t)key_hash(lk->seed, m->key, m->key_len) & lk->mask;
         lk->slot[h] != 0; h = (h + 1) & lk->mask)
      if (has_key(obj, lk->slot[h] - 1, m->key, m->key_len))
        break;
    lk->slot[h] = i + 1;   /* a later position replaces an earlier one */
  }
  return 0;
}

int aigc_lastkeys_lookup (const lastkeys *lk, const aigc_json_value *obj, size_t i) {
  const aigc_json_member *m = &obj->u.members[i];
  size_t h;
  for (h = (size_t)key_hash(lk->seed, m->key, m->key_len) & lk->mask;
       lk->slot[h] != 0; h = (h + 1) & lk->mask)
    if (has_key(obj, lk->slot[h] - 1, m->key, m->key_len))
      return lk->slot[h] - 1 == i;
  return 1;
}
