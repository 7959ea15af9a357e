/*
** roster.c — an engine's lists of requests, slots and idle easy handles
** (roster.h): plain C, allocation-free.
*/
#include <stdlib.h>
#include <string.h>

#include "roster.h"

const char *const aigc_priority_names[AIGC_NPRIO + 1] = {
  "interactive", "normal", "background", NULL
};

void aigc_roster_init (aigc_roster *ro, uint64_t seed) {
  memset(ro, 0, sizeof *ro);
  ro->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
}

void aigc_roster_link (aigc_roster *ro, aigc_roster_entry *en) {
  en->all_prev = NULL;
  en->all_next = ro->all;
  if (ro->all)
    ro->all->all_prev = en;
  ro->all = en;
  ro->nall++;
}

void aigc_roster_enqueue (aigc_roster *ro, aigc_roster_entry *en) {
  int p = en->priority;
  if (en->in_queue)
    return;
  en->q_next = NULL;
  en->q_prev = ro->q_tail[p];
  if (ro->q_tail[p])
    ro->q_tail[p]->q_next = en;
  else
    ro->q_head[p] = en;
  ro->q_tail[p] = en;
  en->in_queue = 1;
  ro->queued++;
}

/* O(1): a cancel or a deadline of a queued request does not walk the queue
   to its place (cancelling Q queued requests newest first was O(Q^2)). */
void aigc_roster_dequeue (aigc_roster *ro, aigc_roster_entry *en) {
  int p = en->priority;
  if (!en->in_queue)
    return;
  if (en->q_prev)
    en->q_prev->q_next = en->q_next;
  else
    ro->q_head[p] = en->q_next;
  if (en->q_next)
    en->q_next->q_prev = en->q_prev;
  else
    ro->q_tail[p] = en->q_prev;
  ro->queued--;
  en->q_prev = en->q_next = NULL;
  en->in_queue = 0;
}

void aigc_roster_ready (aigc_roster *ro, aigc_roster_entry *en) {
  if (en->in_ready)
    return;
  en->r_next = NULL;
  en->r_prev = ro->r_tail;
  if (ro->r_tail)
    ro->r_tail->r_next = en;
  else
    ro->r_head = en;
  ro->r_tail = en;
  en->in_ready = 1;
}

void aigc_roster_unready (aigc_roster *ro, aigc_roster_entry *en) {
  if (!en->in_ready)
    return;
  if (en->r_prev)
    en->r_prev->r_next = en->r_next;
  else
    ro->r_head = en->r_next;
  if (en->r_next)
    en->r_next->r_prev = en->r_prev;
  else
    ro->r_tail = en->r_prev;
  en->r_prev = en->r_next = NULL;
  en->in_ready = 0;
}

void aigc_roster_hold (aigc_roster *ro, aigc_roster_entry *en) {
  if (en->in_held)
    return;
  en->h_next = NULL;
  en->h_prev = ro->h_tail;
  if (ro->h_tail)
    ro->h_tail->h_next = en;
  else
    ro->h_head = en;
  ro->h_tail = en;
  en->in_held = 1;
}

void aigc_roster_unhold (aigc_roster *ro, aigc_roster_entry *en) {
  if (!en->in_held)
    return;
  if (en->h_prev)
    en->h_prev->h_next = en->h_next;
  else
    ro->h_head = en->h_next;
  if (en->h_next)
    en->h_next->h_prev = en->h_prev;
  else
    ro->h_tail = en->h_prev;
  en->h_prev = en->h_next = NULL;
  en->in_held = 0;
}

int aigc_roster_slot_free (const aigc_roster *ro) {
  return ro->config.max_concurrency <= 0 || ro->running < ro->config.max_concurrency;
}

int aigc_roster_slot_free_for (const aigc_roster *ro, int prio) {
  int cap = ro->config.max_by_priority[prio];
  return aigc_roster_slot_free(ro) && (cap <= 0 || ro->running_by[prio] < cap);
}

int aigc_roster_may_start (const aigc_roster *ro) {
  return ro->config.max_starts_per_step <= 0 || ro->started_this_turn < ro->config.max_starts_per_step;
}

aigc_roster_entry *aigc_roster_next_queued (const aigc_roster *ro) {
  int p;
  if (!aigc_roster_slot_free(ro) || !aigc_roster_may_start(ro))
    return NULL;
  for (p = 0; p < AIGC_NPRIO; p++)
    if (ro->q_head[p] != NULL && aigc_roster_slot_free_for(ro, p))
      return ro->q_head[p];
  return NULL;
}

/* The slots held by requests being delivered (blocked, blocked_by): kept
   as slots and deliveries change, so that a blocking wait asks in O(1). */
static void count_blocked (aigc_roster *ro, const aigc_roster_entry *en, int d) {
  if (en->has_slot && en->delivering) {
    ro->blocked += d;
    ro->blocked_by[en->priority] += d;
  }
}

void aigc_roster_take_slot (aigc_roster *ro, aigc_roster_entry *en) {
  if (!en->has_slot) {
    en->has_slot = 1;
    ro->started_this_turn++;
    ro->running++;
    ro->running_by[en->priority]++;
    count_blocked(ro, en, 1);
  }
}

void aigc_roster_give_slot (aigc_roster *ro, aigc_roster_entry *en) {
  if (en->has_slot) {
    count_blocked(ro, en, -1);
    en->has_slot = 0;
    ro->running--;
    ro->running_by[en->priority]--;
  }
}

void aigc_roster_set_delivering (aigc_roster *ro, aigc_roster_entry *en, int on) {
  on = on != 0;
  if (en->delivering == on)
    return;
  if (ro != NULL)
    count_blocked(ro, en, -1);
  en->delivering = on;
  if (ro != NULL)
    count_blocked(ro, en, 1);
}

void aigc_roster_set_end (aigc_roster *ro, aigc_roster_entry *en) {
  if (!en->end_pending) {
    en->end_pending = 1;
    ro->ends++;
  }
  aigc_roster_ready(ro, en);
}

void aigc_roster_clear_end (aigc_roster *ro, aigc_roster_entry *en) {
  if (en->end_pending) {
    en->end_pending = 0;
    ro->ends--;
  }
}

void aigc_roster_unlink (aigc_roster *ro, aigc_roster_entry *en) {
  aigc_roster_dequeue(ro, en);
  aigc_roster_unready(ro, en);
  aigc_roster_unhold(ro, en);
  aigc_roster_give_slot(ro, en);
  aigc_roster_clear_end(ro, en);
  aigc_timers_remove(&ro->timers, &en->timed);
  if (ro->current == en)
    ro->current = NULL;
  if (en->all_prev || ro->all == en)
    ro->nall--;
  if (en->all_prev)
    en->all_prev->all_next = en->all_next;
  else if (ro->all == en)
    ro->all = en->all_next;
  if (en->all_next)
    en->all_next->all_prev = en->all_prev;
  en->all_prev = en->all_next = NULL;
}

int aigc_roster_count (const aigc_roster *ro) {
  if (ro->closed)
    return ro->ends;
  return ro->running + ro->queued + ro->ends;
}

void aigc_easy_memo_clear (aigc_easy_memo *memo) {
  free(memo->url);
  memo->url = NULL;
  memo->headers = NULL;
  memo->have_headers = 0;
  memo->method = 0;
  memo->connect_ms = memo->timeout_ms = -1;
  memo->progress = -1;
}

CURL *aigc_roster_take_easy (aigc_roster *ro, int *fresh, aigc_easy_memo *memo) {
  *fresh = ro->neasy_pool == 0;
  if (ro->neasy_pool > 0) {
    ro->neasy_pool--;
    *memo = ro->easy_memo[ro->neasy_pool];
    return ro->easy_pool[ro->neasy_pool];
  }
  memo->url = NULL;
  aigc_easy_memo_clear(memo);
  return curl_easy_init();
}

void aigc_roster_give_easy (aigc_roster *ro, CURL *easy, aigc_easy_memo *memo) {
  if (ro->closed || ro->neasy_pool == AIGC_EASY_POOL) {
    curl_easy_cleanup(easy);
    aigc_easy_memo_clear(memo);
  }
  else {
    ro->easy_memo[ro->neasy_pool] = *memo;
    memo->url = NULL;   /* (moved) */
    aigc_easy_memo_clear(memo);
    ro->easy_pool[ro->neasy_pool++] = easy;
  }
}

void aigc_roster_drain_easy (aigc_roster *ro) {
  while (ro->neasy_pool > 0) {
    ro->neasy_pool--;
    curl_easy_cleanup(ro->easy_pool[ro->neasy_pool]);
    aigc_easy_memo_clear(&ro->easy_memo[ro->neasy_pool]);
  }
  while (ro->nspare_bufs > 0)
    aigc_buf_free(&ro->spare_bufs[--ro->nspare_bufs]);
  aigc_json_arena_free(&ro->spare_arena);
}

void aigc_roster_keep_arena (aigc_roster *ro, aigc_json_arena *a) {
  if (ro != NULL && !ro->closed)
    aigc_json_arena_move_block(&ro->spare_arena, a, AIGC_SPARE_BUF_MAX);
  aigc_json_arena_free(a);   /* (what was not kept) */
}

void aigc_roster_take_arena (aigc_roster *ro, aigc_json_arena *a) {
  if (ro != NULL)
    aigc_json_arena_move_block(a, &ro->spare_arena, (size_t)-1);
}

int aigc_roster_keep_buf (aigc_roster *ro, aigc_buf *b) {
  if (ro->closed || b->cap == 0 || b->cap > AIGC_SPARE_BUF_MAX || ro->nspare_bufs == AIGC_SPARE_BUFS)
    return 0;
  aigc_buf_clear(b);
  ro->spare_bufs[ro->nspare_bufs++] = *b;
  b->data = NULL;
  b->len = b->cap = 0;
  return 1;
}

void aigc_roster_take_buf (aigc_roster *ro, aigc_buf *b) {
  if (ro->nspare_bufs > 0 && b->cap == 0) {
    *b = ro->spare_bufs[--ro->nspare_bufs];
    aigc_buf_clear(b);
  }
}

double aigc_roster_random (aigc_roster *ro) {
  /* xorshift64*: enough for backoff jitter, and no C global state. */
  uint64_t x = ro->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  ro->rng = x;
  return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

void aigc_config_free (aigc_config *c) {
  free(c->base_url); c->base_url = NULL;
  free(c->query); c->query = NULL;
  free(c->model); c->model = NULL;
  free(c->ca_file); c->ca_file = NULL;
  free(c->ca_path); c->ca_path = NULL;
  free(c->proxy); c->proxy = NULL;
  free(c->proxy_shown); c->proxy_shown = NULL;
  curl_slist_free_all(c->headers); c->headers = NULL;
  curl_slist_free_all(c->stream_headers); c->stream_headers = NULL;
}
