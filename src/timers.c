/*
** timers.c — the requests' own timers as a binary min-heap (timers.h):
** plain C, no Lua; only aigc_timers_reserve allocates.
*/
#include <stdlib.h>

#include "timers.h"

int aigc_timers_reserve (aigc_timers *t, size_t count) {
  size_t cap;
  aigc_timer_slot *h;
  aigc_timed **d;
  if (count <= t->cap)
    return 0;
  cap = t->cap > 0 ? t->cap * 2 : 64;
  while (cap < count)
    cap *= 2;
  h = (aigc_timer_slot *)realloc(t->heap, cap * sizeof *h);
  if (h == NULL)
    return -1;
  t->heap = h;
  d = (aigc_timed **)realloc(t->due, cap * sizeof *d);
  if (d == NULL)
    return -1;   /* (the heap's new room stays: cap is what both hold) */
  t->due = d;
  t->cap = cap;
  return 0;
}

void aigc_timers_free (aigc_timers *t) {
  size_t i;
  for (i = 0; i < t->n; i++)
    t->heap[i].tm->pos = 0;
  for (i = 0; i < t->ndue; i++)
    if (t->due[i] != NULL)
      t->due[i]->pos = 0;
  free(t->heap);
  free(t->due);
  t->heap = NULL;
  t->due = NULL;
  t->n = t->ndue = t->cap = 0;
}

static void put (aigc_timers *t, size_t i, aigc_timer_slot s) {
  t->heap[i] = s;
  s.tm->pos = (int)i + 1;
}

static void sift_up (aigc_timers *t, size_t i) {
  aigc_timer_slot s = t->heap[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (t->heap[p].at <= s.at)
      break;
    put(t, i, t->heap[p]);
    i = p;
  }
  put(t, i, s);
}

static void sift_down (aigc_timers *t, size_t i) {
  aigc_timer_slot s = t->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= t->n)
      break;
    if (c + 1 < t->n && t->heap[c + 1].at < t->heap[c].at)
      c++;
    if (s.at <= t->heap[c].at)
      break;
    put(t, i, t->heap[c]);
    i = c;
  }
  put(t, i, s);
}

/* Takes the entry at i out of the heap (its request is told it is out). */
static void remove_at (aigc_timers *t, size_t i) {
  aigc_timed *tm = t->heap[i].tm;
  t->n--;
  if (i < t->n) {
    t->heap[i] = t->heap[t->n];
    if (i > 0 && t->heap[i].at < t->heap[(i - 1) / 2].at)
      sift_up(t, i);
    else
      sift_down(t, i);
  }
  tm->pos = 0;
}

void aigc_timers_remove (aigc_timers *t, aigc_timed *tm) {
  if (tm->pos > 0)
    remove_at(t, (size_t)tm->pos - 1);
  else if (tm->pos < 0)
    t->due[-tm->pos - 1] = NULL;
  tm->pos = 0;
}

void aigc_timers_set (aigc_timers *t, aigc_timed *tm, double at) {
  if (tm->pos < 0)
    return;   /* being fired: the firing puts it back */
  if (at < 0) {
    aigc_timers_remove(t, tm);
    return;
  }
  if (tm->pos > 0) {
    size_t i = (size_t)tm->pos - 1;
    if (at < t->heap[i].at) {
      t->heap[i].at = at;
      sift_up(t, i);
    }
    return;
  }
  /* (No room: only for a request of a closed engine, whose timers never
     fire: its close freed the heap. Every linked request has room.) */
  if (t->n < t->cap) {
    aigc_timer_slot s;
    s.at = at;
    s.tm = tm;
    t->heap[t->n++] = s;
    sift_up(t, t->n - 1);
  }
}

void aigc_timers_take_due (aigc_timers *t, double now) {
  t->ndue = 0;
  while (t->n > 0 && t->heap[0].at <= now) {
    aigc_timed *tm = t->heap[0].tm;
    remove_at(t, 0);
    t->due[t->ndue++] = tm;
    tm->pos = -(int)t->ndue;
  }
}
