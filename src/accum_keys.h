/*
** accum_keys.h — where members are: the accumulator's key table, and the
** last occurrence of each key of one delta object. Both keep a merge
** linear in its chunk however big the objects grow (a hostile server may
** send an object that gains one member per chunk, or one chunk with many
** duplicate keys). Private to accum*.c.
**
** The small cases, which are every real chunk, stay inline here (a plain
** search from the end; a 64-bit signature that proves a small object's keys
** distinct); the tables themselves are in accum_keys.c.
**
** Plain JSON trees in, positions out: this file knows nothing of the
** accumulator (accum.h holds an aigc_keytable), so the merge's code and
** its lookups stay apart. Return codes: 0, or -1 when memory runs out.
*/
#ifndef AIGC_ACCUM_KEYS_H
#define AIGC_ACCUM_KEYS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* No such member (the same value as accum_tree.h's NOPOS). */
#define KEYS_NONE ((size_t)-1)

/* Objects with fewer members are searched linearly. */
#define KEYS_LINEAR 16

/* splitmix64's finalizer: every input bit affects every output bit. */
static inline uint64_t mix64 (uint64_t x) {
  x ^= x >> 30;
  x *= UINT64_C(0xBF58476D1CE4E5B9);
  x ^= x >> 27;
  x *= UINT64_C(0x94D049BB133111EB);
  x ^= x >> 31;
  return x;
}

/* The accumulator's table of where its objects' members are. */
typedef struct aigc_keyslot aigc_keyslot;
typedef struct aigc_keytable {
  aigc_keyslot *slot;     /* NULL until the first member is noted */
  size_t cap, used;
  uint64_t seed;          /* the hashes' seed */
} aigc_keytable;

/* An empty table whose seed nobody outside the process can know (`where`:
   the address of its owner, for ASLR's bits). */
void aigc_keytable_init (aigc_keytable *t, const void *where);
void aigc_keytable_free (aigc_keytable *t);

/*
** `path_h` is the hash of the path of obj from the root (the merge
** computes it: accum.c path_hash / child_hash). find: the position of
** key[0..n) in obj, or KEYS_NONE; only for a table with slots (else
** search obj). note: records that member pos of obj is there.
*/
size_t aigc_keytable_find (const aigc_keytable *t, const aigc_json_value *obj,
                           uint64_t path_h, const char *key, size_t n);
int aigc_keytable_note (aigc_keytable *t, const aigc_json_value *obj,
                        uint64_t path_h, size_t pos);

/*
** The last occurrence of each key of one delta object (JSON's duplicate
** keys: the last one wins). Small objects are searched from the end;
** from KEYS_LINEAR members on, a temporary table (open addressing,
** member position + 1 per slot, at most a quarter full) holds the last
** position of each key. It lives for one merge of one object.
*/
typedef struct lastkeys {
  size_t *slot;      /* NULL: search linearly */
  size_t mask;
  uint64_t seed;
  int unique;        /* no two keys can be equal: every member is the last */
} lastkeys;

int aigc_lastkeys_build (lastkeys *lk, const aigc_json_value *obj);
int aigc_lastkeys_lookup (const lastkeys *lk, const aigc_json_value *obj, size_t i);

/*
** Whether a small object's keys are surely all different: no two share a
** bit of a 64-bit mask of (length, first byte, last byte). A shared bit
** only means "look closer"; real chunks (id, object, created, model...)
** almost never do, and then cost no key comparison at all.
*/
static inline int surely_unique (const aigc_json_value *obj) {
  uint64_t seen = 0;
  size_t i;
  for (i = 0; i < obj->len; i++) {
    const aigc_json_member *m = &obj->u.members[i];
    size_t n = m->key_len;
    unsigned sig = (unsigned)(n * 7 + (n ? (unsigned char)m->key[0] * 3 +
                                           (unsigned char)m->key[n - 1] : 0));
    uint64_t bit = (uint64_t)1 << (sig & 63);
    if (seen & bit)
      return 0;
    seen |= bit;
  }
  return 1;
}

static inline int lk_open (lastkeys *lk, const aigc_json_value *obj, uint64_t seed) {
  lk->slot = NULL;
  lk->seed = seed;
  lk->unique = 0;
  if (obj->len < KEYS_LINEAR) {
    lk->unique = surely_unique(obj);
    return 0;
  }
  return aigc_lastkeys_build(lk, obj);
}

/* Is member i of obj the last with its key? */
static inline int lk_last (const lastkeys *lk, const aigc_json_value *obj, size_t i) {
  const aigc_json_member *m = &obj->u.members[i];
  size_t j;
  if (lk->unique)
    return 1;
  if (lk->slot != NULL)
    return aigc_lastkeys_lookup(lk, obj, i);
  for (j = obj->len; --j > i; )
    if (obj->u.members[j].key_len == m->key_len &&
        memcmp(obj->u.members[j].key, m->key, m->key_len) == 0)
      return 0;
  return 1;
}

static inline void lk_close (lastkeys *lk) {
  free(lk->slot);
  lk->slot = NULL;
}

#endif
