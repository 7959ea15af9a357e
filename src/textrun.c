/*
** textrun.c — the plain chat stream's chunks delivered in runs; see
** textrun.h. What a callback sees is what it saw with one pcall per chunk:
** the same deltas in the same order, the same checks of the request's
** state between them, its error ending the request the same way
** (request.c). spec/stream_text_path_spec.lua compares this path with the
** generic one.
*/
#include "accum.h"
#include "textrun.h"

int aigc_text_run_chunks (lua_State *L) {
  aigc_text_run *t = (aigc_text_run *)lua_touserdata(L, 2);
  aigc_request *r = t->r;
  int has_callback = !lua_isnil(L, 1);
  const char *text;
  size_t text_len;
  while (aigc_text_deliverable(r) && (t->budget <= 0 || t->count < t->budget)
         && aigc_transfer_next_event(r, &t->type, &t->tlen, &t->data, &t->dlen)) {
    if (t->tlen != 0 || !aigc_accum_scan(&r->accum, t->data, t->dlen, &text, &text_len)) {
      t->held = 1;
      return 0;
    }
    r->delivered = 1;
    if (!has_callback)
      continue;
    lua_pushvalue(L, 1);   /* (no allocation) */
    if (text != NULL)   /* (text is in r->accum: copied before the allocation can run Lua) */
      lua_pushlstring(L, text, text_len);
    else
      lua_pushnil(L);
    if (r->state != AIGC_RUNNING) {   /* a finalizer run by the delta's allocation */
      lua_pop(L, 2);
      return 0;
    }
    t->in_callback = r->in_callback = 1;
    lua_call(L, 1, 0);
    t->in_callback = r->in_callback = 0;
    t->count++;
  }
  return 0;
}
