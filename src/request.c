/*
** request.c — one request's life on the Lua side (request.h).
**
** Life of a request:
**   made      engine:submit checks every argument, then aigc_request_new
**             (submit.c) creates the userdata ("closed", with its metatable) before
**             acquiring anything, reads the per-call options and encodes
**             the body; the engine links it (transfer.c) and starts it;
**   transfer  transfer.c: libcurl callbacks queue bytes and events;
**   dispatch  from the driving loop: each queued stream event is merged
**             into the accumulated reply and handed to the stream
**             callback; when the transfer is over, its outcome (response.c)
**             ends the request, or a retry is scheduled (retry.c);
**   end       on_done / on_error run, then the waiters (req:_notify
**             functions, tasks waiting in wait()), and the engine lets go
**             of the request.
** cancel() works in every state and delivers nothing afterwards: its
** on_error (kind "canceled") and waiters run from the loop, never from
** cancel() itself. __gc cancels a request nobody can observe any more.
**
** THE RE-ENTRANCY RULE: see request.h and aigc.h.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "jsonlua.h"
#include "form.h"
#include "request.h"
#include "retry.h"
#include "textrun.h"

static const char *const state_names[] = {
  "queued", "running", "done", "failed", "canceled"
};

const char *const aigc_request_kind_names[] = { "chat", "completion", "json", "get", "responses", "delete", NULL };

const char *aigc_request_state_name (aigc_state st) {
  return state_names[st];
}

aigc_request *aigc_check_request (lua_State *L, int idx) {
  return *(aigc_request **)luaL_checkudata(L, idx, AIGC_REQUEST_MT);
}

/* The C state of the request userdata at idx (known to be one). */
static aigc_request *request_at (lua_State *L, int idx) {
  return *(aigc_request **)lua_touserdata(L, idx);
}



/*
** {======================================================
** Ending a request
** =======================================================
*/

/*
** "http error 429", "connect error": the kind of the error at vidx, with
** its status when it has one (else a log could not tell a 429 from a 500).
*/
static const char *error_title (lua_State *L, int vidx, char *buf, size_t size) {
  const char *kind;
  lua_Integer status;
  lua_getfield(L, vidx, "kind");
  lua_getfield(L, vidx, "status");
  kind = lua_tostring(L, -2);
  status = lua_tointeger(L, -1);
  if (status > 0)
    snprintf(buf, size, "%.40s error %lld", kind ? kind : "?", (long long)status);
  else
    snprintf(buf, size, "%.40s error", kind ? kind : "?");
  lua_pop(L, 2);
  return buf;
}

/* Logs how a request ended: "POST /v1/chat/completions -> 200 in 0.123 s". */
static void log_end (lua_State *L, int eidx, aigc_request *r, int vidx, int ok) {
  char path[AIGC_LOG_PATH];
  const char *rid, *method = aigc_request_method(r);
  int pushed;
  if (r->roster == NULL || !r->roster->config.log_enabled)
    return;
  pushed = aigc_push_request_id(L, r);
  rid = pushed ? lua_tostring(L, -1) : NULL;
  aigc_transfer_path(r, path, sizeof path);
  if (ok)
    aigc_error_log(L, eidx, aigc_log_secrets(r), "info", "%s %s -> %ld in %.3f s%s%s%s", method, path,
                   r->status, aigc_now() - r->started, rid ? " [request " : "", rid ? rid : "",
                   rid ? "]" : "");
  else {
    char title[80];
    error_title(L, vidx, title, sizeof title);
    lua_getfield(L, vidx, "message");
    aigc_error_log(L, eidx, aigc_log_secrets(r), "warn", "%s %s -> %s after %.3f s: %s%s%s%s",
                   method, path, title, aigc_now() - r->started,
                   lua_tostring(L, -1) ? lua_tostring(L, -1) : "",
                   rid ? " [request " : "", rid ? rid : "", rid ? "]" : "");
    lua_pop(L, 1);
  }
  lua_pop(L, pushed);
}

/* on_stream_end is heard once at most, never after the request's end. */
static void forget_stream_end (lua_State *L, int ridx, aigc_request *r) {
  if (r->has_stream_end) {
    r->has_stream_end = 0;
    lua_pushnil(L);
    lua_setiuservalue(L, ridx, AIGC_RQ_STREAM_END);
  }
}

static void clear_callbacks (lua_State *L, int ridx) {
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, AIGC_RQ_STREAM);
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, AIGC_RQ_ON_DONE);
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, AIGC_RQ_ON_ERROR);
}

/*
** Pushes the request's outcome value: the result table (done), else the
** error object, made now if the end was decided where nothing could be
** allocated (a cancel keeps its reason as a string, or none; an escaped
** error leaves end_kind/end_msg). Made once: later calls get the same one.
*/
static void push_outcome (lua_State *L, int ridx, aigc_request *r) {
  int t = lua_getiuservalue(L, ridx, AIGC_RQ_RESULT);
  if (t == LUA_TTABLE || r->state == AIGC_DONE)
    return;
  aigc_error_new(L, r->end_kind ? r->end_kind : "canceled",
                 r->end_msg ? r->end_msg : "the request was canceled");
  if (t == LUA_TSTRING) {   /* cancel(why) */
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "message");
  }
  aigc_error_setint(L, "retries", r->retries);
  lua_remove(L, -2);
  /* A finalizer run by the allocations above may have made it already. */
  if (lua_getiuservalue(L, ridx, AIGC_RQ_RESULT) == LUA_TTABLE) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, ridx, AIGC_RQ_RESULT);
}

int aigc_request_push_result (lua_State *L, int ridx, aigc_request *r) {
  if (r->state == AIGC_DONE) {
    lua_getiuservalue(L, ridx, AIGC_RQ_RESULT);
    return 1;
  }
  lua_pushnil(L);
  if (aigc_terminal(r->state))
    push_outcome(L, ridx, r);
  else
    lua_pushnil(L);
  return 2;
}

static int resume_task (lua_State *L);   /* (a task's waiter: below) */

/*
** Puts back the `kept` waiters at the start of `list` (the rest of its
** first n cleared) for the request's next end, on the next turn: into the
** waiters' slot if none came meanwhile (allocates nothing), else appended
** to the new list.
*/
static void keep_waiters (lua_State *L, int ridx, aigc_request *r, int list, lua_Integer kept,
                          lua_Integer n) {
  lua_Integer i, m;
  for (i = kept + 1; i <= n; i++) {
    lua_pushnil(L);
    lua_rawseti(L, list, i);
  }
  if (lua_getiuservalue(L, ridx, AIGC_RQ_WAITERS) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_pushvalue(L, list);
    lua_setiuservalue(L, ridx, AIGC_RQ_WAITERS);
  }
  else {
    m = (lua_Integer)lua_rawlen(L, -1);
    for (i = 1; i <= kept; i++) {
      lua_rawgeti(L, list, i);
      lua_rawseti(L, -2, m + i);
    }
    lua_pop(L, 1);
  }
  if (r->roster != NULL)
    aigc_roster_set_end(r->roster, &r->entry);
}

/*
** Runs the waiters of the request at ridx, each once, in the order they
** came: the list is taken out of its slot first, so a waiter added by one
** of them (req:_notify inside a waiter) goes to a new list, run on the next
** turn. An error a waiter raises is reported -- but a task's waiter that
** raised did not resume the task (the scheduler's resume either resumes
** it or raises with the task still waiting: task.lua, resume_from_core):
** it is kept and runs again on the next turn, else the task would sleep
** for ever. It raises "not enough memory" (not reported: the next turn
** may find some), or what a debug hook raised in it (a host's watchdog
** ending a frame that ran too long: reported, as from any callback). A
** scheduler that raises every time would keep it for ever, each turn
** running it again (a `while step() > 0` loop that never ends): past
** TASK_WAITER_RAISES raises in a row it is dropped, and only the first is
** reported. An interrupt (aigc_is_interrupt) goes on up at once, the
** waiters not run yet kept as well.
*/
#define TASK_WAITER_RAISES 8
static void run_waiters (lua_State *L, int eidx, int ridx, aigc_request *r) {
  lua_Integer i, n, kept = 0;
  int list, handler, task, st;
  if (lua_getiuservalue(L, ridx, AIGC_RQ_WAITERS) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  /* The handler is pushed once, before the list leaves its slot: on 5.1
     and LuaJIT a C function pushed is an allocation, which may fail, and
     a raise there with the list out lost every waiter not run yet (a task
     slept for ever on a request that was over). Meanwhile the end is
     pending again: a raise leaves the waiters told on the next turn. */
  if (r->roster != NULL)
    aigc_roster_set_end(r->roster, &r->entry);
  aigc_push_pcall_handler(L);
  if (r->roster != NULL)
    aigc_roster_clear_end(r->roster, &r->entry);
  handler = lua_gettop(L);
  if (lua_getiuservalue(L, ridx, AIGC_RQ_WAITERS) != LUA_TTABLE) {   /* (run by a finalizer meanwhile) */
    lua_pop(L, 2);
    return;
  }
  list = lua_gettop(L);
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, AIGC_RQ_WAITERS);   /* once */
  n = (lua_Integer)lua_rawlen(L, list);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    task = lua_tocfunction(L, -1) == resume_task;
    lua_pushvalue(L, ridx);
    st = lua_pcall(L, 1, 0, handler);
    if (st == LUA_OK) {
      if (task)
        r->task_waiter_raises = 0;
      continue;
    }
    if (aigc_is_interrupt(L, -1)) {   /* raised on: this task's waiter and those not run yet stay */
      lua_Integer j;
      for (j = task ? i : i + 1; j <= n; j++) {
        lua_rawgeti(L, list, j);
        lua_rawseti(L, list, ++kept);
      }
      keep_waiters(L, ridx, r, list, kept, n);
      lua_error(L);
    }
    if (task && (st == LUA_ERRMEM || st == LUA_ERRERR   /* (the message handler out of memory) */
                 || (lua_type(L, -1) == LUA_TSTRING
                     && strstr(lua_tostring(L, -1), "not enough memory") != NULL))) {
      lua_rawgeti(L, list, i);   /* the task still waits: kept, or it would sleep for ever */
      lua_rawseti(L, list, ++kept);
      lua_pop(L, 1);
      continue;
    }
    if (task && ++r->task_waiter_raises > 1) {   /* reported the first time */
      if (r->task_waiter_raises <= TASK_WAITER_RAISES) {
        lua_rawgeti(L, list, i);
        lua_rawseti(L, list, ++kept);
      }
      lua_pop(L, 1);
      continue;
    }
    if (task) {
      lua_rawgeti(L, list, i);
      lua_rawseti(L, list, ++kept);
    }
    aigc_error_report(L, eidx, -1, r->secrets);
    lua_pop(L, 1);
  }
  if (kept > 0)
    keep_waiters(L, ridx, r, list, kept, n);
  lua_pop(L, 2);   /* the list, the handler */
}

/*
** The ends of watched requests (opts.watch: the usage hook's requests that
** have no callbacks, lua/aigc/hooks.lua) go on a list in the engine, which
** the hook takes after each step (eng:take_ended): it hears those ends
** in time linear in them, where a walk over every request it watches
** was linear in the requests in flight -- at every step, and at every
** submit of a task resumed by an end (1.06M instructions per request with
** 512 tasks waiting, against ~220k). The list holds the request until
** taken. Appending allocates: it runs protected, and a failure (memory)
** is counted (unlisted_ends) so that the hook walks them all once; so is
** an end with nothing to deliver (a cancel nobody listens to: ended_quietly,
** where nothing may allocate).
*/
static int append_ended (lua_State *L) {   /* (engine, request) */
  lua_Integer n;
  if (lua_getiuservalue(L, 1, AIGC_EN_ENDED) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 8, 0);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, AIGC_EN_ENDED);
  }
  n = (lua_Integer)lua_rawlen(L, -1);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, n + 1);
  return 0;
}

static void note_watched_end (lua_State *L, int eidx, int ridx, aigc_request *r) {
  aigc_roster *ro = r->roster;
  r->watched = 0;   /* once */
  ro->unlisted_ends++;   /* (until the append is done: an interrupt may leave it) */
  lua_pushcfunction(L, append_ended);
  lua_pushvalue(L, eidx);
  lua_pushvalue(L, ridx);
  if (aigc_pcall(L, 2, 0) != LUA_OK)
    lua_pop(L, 1);
  else
    ro->unlisted_ends--;
}

/*
** aigc_pcall of what runs at r's end, whose error is reported. An
** interrupt (a host's watchdog) goes on up with the end pending again: what
** has not run yet (the caller's callback after the observer, the waiters)
** runs on the next turn -- a task waiting on r slept for ever, and a cut
** observer lost the caller's on_done.
*/
static void end_pcall (lua_State *L, int eidx, aigc_request *r, int nargs) {
  int base = lua_gettop(L) - nargs;
  aigc_push_pcall_handler(L);
  lua_insert(L, base);
  if (lua_pcall(L, nargs, 0, base) != LUA_OK) {
    if (aigc_is_interrupt(L, -1)) {
      r->in_callback = 0;
      if (r->roster != NULL)
        aigc_roster_set_end(r->roster, &r->entry);
      lua_error(L);
    }
    aigc_error_report(L, eidx, -1, r->secrets);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);   /* the handler */
}

/* The Lua layer's observer (opts.observe), once: fn(res) or fn(nil, err). */
static void observe_end (lua_State *L, int eidx, int ridx, aigc_request *r, int vidx) {
  if (lua_getiuservalue(L, ridx, AIGC_RQ_OBSERVE) == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, AIGC_RQ_OBSERVE);   /* once: a count cut is not made twice */
  if (r->state != AIGC_DONE)
    lua_pushnil(L);
  lua_pushvalue(L, vidx);
  end_pcall(L, eidx, r, r->state == AIGC_DONE ? 1 : 2);
}

/*
** Runs r's end, exactly once: its observer, on_done(res) or on_error(err),
** then its waiters, then the engine lets go of it. Called by the loop
** (aigc_request_dispatch), by close() and by wait(); never by cancel() or a
** finalizer. Returns the callbacks run.
*/
int aigc_request_deliver_end (lua_State *L, int eidx, int ridx) {
  aigc_request *r = request_at(L, ridx);
  int count = 0, vidx;
  ridx = lua_absindex(L, ridx);
  eidx = lua_absindex(L, eidx);
  if (!r->entry.end_pending || !aigc_terminal(r->state) || r->roster == NULL)
    return 0;
  aigc_roster_clear_end(r->roster, &r->entry);
  aigc_roster_unready(r->roster, &r->entry);
  luaL_checkstack(L, 8, "aigc end");
  push_outcome(L, ridx, r);
  vidx = lua_gettop(L);
  observe_end(L, eidx, ridx, r, vidx);
  if (lua_getiuservalue(L, ridx, r->state == AIGC_DONE ? AIGC_RQ_ON_DONE : AIGC_RQ_ON_ERROR)
      != LUA_TNIL) {   /* a function or a callable */
    clear_callbacks(L, ridx);   /* once */
    lua_pushvalue(L, vidx);
    r->in_callback = 1;
    end_pcall(L, eidx, r, 1);
    r->in_callback = 0;
    count = 1;
  }
  else {
    lua_pop(L, 1);
    clear_callbacks(L, ridx);
  }
  run_waiters(L, eidx, ridx, r);
  lua_pop(L, 1);   /* the outcome */
  if (r->watched && r->roster != NULL)
    note_watched_end(L, eidx, ridx, r);
  if (r->entry.end_pending)   /* a new waiter came meanwhile (req:_notify in a callback) */
    return count;
  if (r->roster != NULL && r->roster->closed) {   /* kept by close() until now */
    aigc_request_unanchor(L, eidx, r);
    aigc_transfer_detach(r);
  }
  else
    aigc_request_drop(L, eidx, r);
  return count;
}

/*
** Ends r (running) with the value on top of the stack (popped): the result
** table when ok, else the error object. Frees its slot (a queued request
** starts on the engine's next turn) and schedules its end (the dispatch
** runs it next). A request canceled or closed while the value was being
** made (by a finalizer) keeps that end: the value is dropped.
*/
static int end_request (lua_State *L, int eidx, int ridx, aigc_request *r, int ok) {
  int vidx = lua_gettop(L);
  if (r->state == AIGC_RUNNING && r->roster != NULL && !ok)
    aigc_error_scrub(L, vidx, r->secrets);   /* no secret in any string of an error */
  /* (the scrub allocates: a finalizer may have ended r meanwhile) */
  if (r->state != AIGC_RUNNING || r->roster == NULL) {
    lua_pop(L, 1);
    return 0;
  }
  aigc_transfer_release(r);
  aigc_roster_unready(r->roster, &r->entry);
  aigc_transfer_recycle(r);   /* before on_done: the next request may take it */
  r->state = ok ? AIGC_DONE : AIGC_FAILED;
  lua_pushvalue(L, vidx);
  lua_setiuservalue(L, ridx, AIGC_RQ_RESULT);
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, AIGC_RQ_STREAM);
  forget_stream_end(L, ridx, r);
  aigc_roster_set_end(r->roster, &r->entry);
  log_end(L, eidx, r, vidx, ok);
  aigc_transfer_free_memory(r);
  lua_pop(L, 1);
  return 0;
}

/*
** Fails a running request right now (an error event, malformed chunk or
** failing stream callback) with the error on top of the stack: the
** transfer is stopped (the connection closed) and nothing more delivered.
*/
static int fail_now (lua_State *L, int eidx, int ridx, aigc_request *r) {
  aigc_response_add_partial(L, r);
  aigc_response_decorate_error(L, r);
  return end_request(L, eidx, ridx, r, 0);
}

/* Fails r with the error held since a Responses "error" event. */
static int fail_held (lua_State *L, int eidx, int ridx, aigc_request *r) {
  lua_getiuservalue(L, ridx, AIGC_RQ_HELD);
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, AIGC_RQ_HELD);
  r->error_held = 0;
  return fail_now(L, eidx, ridx, r);
}

/* }====================================================== */


/*
** {======================================================
** Dispatch
** =======================================================
*/

/* The stale connection of aigc_retry_stale: logged, started again. */
static int restart_stale (lua_State *L, int eidx, aigc_request *r) {
  aigc_error_log(L, eidx, aigc_log_secrets(r), "warn", "a reused connection answered with garbage (%s): "
                 "starting again on a new connection", r->errbuf[0] ? r->errbuf : "not HTTP");
  if (r->state == AIGC_RUNNING && r->easy != NULL)   /* (the log function may cancel it) */
    aigc_retry_restart_fresh(r);
  return 0;
}

/* The refused stream_options of aigc_retry_refused_stream_options:
   logged, sent again without it. */
static int resend_without_stream_options (lua_State *L, int eidx, aigc_request *r) {
  aigc_error_log(L, eidx, aigc_log_secrets(r), "warn", "the server refused stream_options (HTTP %ld): "
                 "sending again without it; this client's streams carry no usage from now on",
                 r->status);
  if (r->state == AIGC_RUNNING && r->easy != NULL)   /* (the log function may cancel it) */
    aigc_retry_resend_without_stream_options(r);
  return 0;
}

/* The refused expectation of aigc_retry_refused_expect: logged, sent
   again without it (-1: no memory for that, the 417 stands). */
static int resend_without_expect (lua_State *L, int eidx, aigc_request *r) {
  aigc_error_log(L, eidx, aigc_log_secrets(r), "warn", "the server refused \"Expect: 100-continue\" "
                 "(HTTP 417): sending again without it");
  if (r->state != AIGC_RUNNING || r->easy == NULL)   /* (the log function may cancel it) */
    return 0;
  return aigc_retry_resend_without_expect(r);
}

/*
** The error on top asks for a retry: schedules it (logged) and pops the
** error, returning 1, unless no retry is left, the wait would pass the
** call's deadline, or the server asked for too long a wait (returns 0,
** the error still on top).
*/
static int try_retry (lua_State *L, int eidx, aigc_request *r) {
  double delay;
  char title[80];
  if (r->state != AIGC_RUNNING || r->roster == NULL || r->roster->closed
      || r->retries >= r->max_retries)
    return 0;
  if (r->xb.fed > 0) {   /* what a reader gave libcurl is gone: it cannot be sent again */
    aigc_error_log(L, eidx, aigc_log_secrets(r), "warn", "not retrying: the upload's reader already gave "
                   "%lu bytes, which cannot be read again", (unsigned long)r->xb.fed);
    return 0;
  }
  delay = aigc_retry_delay(r);
  if (delay < 0) {   /* say why: else a 429 comes back with retries = 0 and no word */
    aigc_error_log(L, eidx, aigc_log_secrets(r), "warn", "not retrying: the server asked to wait %g s, "
                   "more than %g s", aigc_headers_retry_after(&r->hdrs), AIGC_MAX_RETRY_AFTER);
    return 0;
  }
  if (r->deadline_at > 0 && aigc_now() + delay >= r->deadline_at) {
    /* The wait would pass the deadline: this error is the call's. */
    aigc_error_log(L, eidx, aigc_log_secrets(r), "warn", "not retrying: waiting %.3f s would pass the "
                   "call's deadline (%g s)", delay, r->deadline);
    return 0;
  }
  if (r->state != AIGC_RUNNING)
    return 0;
  error_title(L, lua_gettop(L), title, sizeof title);
  lua_getfield(L, -1, "message");
  aigc_error_log(L, eidx, aigc_log_secrets(r), "warn", "retrying in %.3f s (retry %d of %d) after %s: %s",
                 delay, r->retries + 1, r->max_retries, title, lua_tostring(L, -1));
  lua_pop(L, 2);
  if (r->state == AIGC_RUNNING)   /* (the log function may cancel it) */
    aigc_retry_schedule(r, delay);
  return 1;
}

/*
** Calls the function under its nargs arguments on top, above the result,
** while r still runs: a stream's last words before its end. Returns 1 when
** r goes on (the result on top again); 0 when r has ended: canceled or
** closed inside (that end wins), or the function raised (r fails with
** kind "callback", the result dropped).
*/
static int call_before_end (lua_State *L, int eidx, int ridx, aigc_request *r, int nargs) {
  int st;
  if (r->state != AIGC_RUNNING) {   /* canceled by a finalizer meanwhile */
    lua_pop(L, nargs + 2);
    return 0;
  }
  r->in_callback = 1;
  st = aigc_pcall(L, nargs, 0);
  r->in_callback = 0;
  if (r->state != AIGC_RUNNING) {   /* canceled or closed inside: that end wins */
    lua_pop(L, st != LUA_OK ? 2 : 1);
    return 0;
  }
  if (st != LUA_OK) {
    aigc_error_from_callback(L);
    lua_replace(L, -2);   /* replaces the result */
    aigc_response_decorate_error(L, r);
    end_request(L, eidx, ridx, r, 0);
    return 0;
  }
  return 1;
}

/*
** The result on top ends the request. Asked to stream, a server that
** answered in one piece (not SSE) has it delivered as one delta first, so
** that the stream callback still sees the text; then on_stream_end(res)
** runs, if given, while the request still runs (an NPC's last sentence
** goes out there, and may still fail or cancel the call).
*/
static int end_with_result (lua_State *L, int eidx, int ridx, aigc_request *r) {
  if (!r->stream)
    return end_request(L, eidx, ridx, r, 1);
  if (r->sse || r->xb.events_raw)   /* (events_raw: its chunks were the stream, body.h) */
    ;
  else if (lua_getiuservalue(L, ridx, AIGC_RQ_STREAM) != LUA_TNIL) {
    lua_getfield(L, -2, "text");
    lua_pushvalue(L, -3);
    if (!call_before_end(L, eidx, ridx, r, 2))
      return 0;
  }
  else
    lua_pop(L, 1);
  if (r->has_stream_end) {
    lua_getiuservalue(L, ridx, AIGC_RQ_STREAM_END);
    lua_pushvalue(L, -2);
    if (!call_before_end(L, eidx, ridx, r, 1))
      return 0;
  }
  return end_request(L, eidx, ridx, r, 1);
}

/*
** The transfer is over and every event delivered: the outcome ends the
** request, or a retry is scheduled. Returns callbacks run.
*/
static int finish_transfer (lua_State *L, int eidx, int ridx, aigc_request *r) {
  int retryable;
  if (r->error_held)   /* the stream ended after an "error" event */
    return fail_held(L, eidx, ridx, r);
  aigc_transfer_take_status(r);
  if (aigc_retry_stale(r))
    return restart_stale(L, eidx, r);
  if (aigc_retry_refused_stream_options(r))
    return resend_without_stream_options(L, eidx, r);
  if (aigc_retry_refused_expect(r) && resend_without_expect(L, eidx, r) == 0)
    return 0;
  if (aigc_response_outcome(L, r, &retryable))
    return end_with_result(L, eidx, ridx, r);
  if (retryable && try_retry(L, eidx, r))
    return 0;
  /* Whether it was one to retry (retries left or not): code that retries
     calls itself (the runner) follows the same rule, x-should-retry too. */
  lua_pushboolean(L, retryable);
  lua_setfield(L, -2, "retryable");
  aigc_error_setint(L, "retries", r->retries);
  return end_request(L, eidx, ridx, r, 0);
}

/*
** The error a stream callback raised (on top, status st) as the request's:
** Lua out of memory is kind "limit", as in the rest of a delivery (the
** callback may be aigc's own: the stream iterator's queue), not "callback".
*/
static void stream_callback_error (lua_State *L, int st) {
  if (st == LUA_ERRMEM) {
    lua_pop(L, 1);
    aigc_error_new(L, "limit", "not enough memory (Lua) in the stream callback");
  }
  else
    aigc_error_from_callback(L);
}

/*
** The stream callback under its nargs arguments (on top), aigc_pcall's
** handler under it (pushed first, by the callers: once per chunk it is
** cheaper than aigc_pcall moving it in and out), is called, unless a
** finalizer canceled the request while they were made. An error it raises
** ends the request, unless it canceled or closed inside (that end wins and
** nothing is said). Returns the callbacks run (0 or 1).
*/
static int run_stream_callback (lua_State *L, int eidx, int ridx, aigc_request *r, int nargs) {
  int st;
  if (r->state != AIGC_RUNNING) {
    lua_pop(L, nargs + 2);
    return 0;
  }
  r->in_callback = 1;
  st = aigc_pcall_under(L, nargs, 0, lua_gettop(L) - nargs - 1);
  r->in_callback = 0;
  if (st == LUA_OK) {
    lua_pop(L, 1);   /* the handler */
    return 1;
  }
  lua_remove(L, -2);   /* the handler, under the error */
  if (r->state != AIGC_RUNNING) {
    lua_pop(L, 1);
    return 1;
  }
  stream_callback_error(L, st);
  fail_now(L, eidx, ridx, r);
  return 1;
}

/* A chunk of a reply going to a sink function (body.h): fn(bytes). Once
   one was delivered the call is not retried (the callback has it). */
static int handle_bytes (lua_State *L, int eidx, int ridx, aigc_request *r,
                         const char *data, size_t dlen) {
  aigc_push_pcall_handler(L);
  if (lua_getiuservalue(L, ridx, AIGC_RQ_STREAM) == LUA_TNIL) {
    lua_pop(L, 2);
    return 0;
  }
  lua_pushlstring(L, data, dlen);   /* (data is in `draining`: pinned) */
  if (r->state == AIGC_RUNNING)
    r->delivered = 1;
  return run_stream_callback(L, eidx, ridx, r, 1);
}

/* A typed event (form.h, opts.events): fn(event). */
static int handle_typed (lua_State *L, int eidx, int ridx, aigc_request *r,
                         const char *type, size_t tlen, const char *data, size_t dlen) {
  if (aigc_response_typed_event(L, r, type, tlen, data, dlen) != AIGC_EVENT_CHUNK)
    return fail_now(L, eidx, ridx, r);
  aigc_push_pcall_handler(L);
  lua_getiuservalue(L, ridx, AIGC_RQ_STREAM);
  lua_rotate(L, -3, -1);   /* handler, callback, event */
  return run_stream_callback(L, eidx, ridx, r, 1);
}

/*
** Resumes a transfer paused for the fed part's bytes. libcurl 7.88 needs
** the pause set then lifted: its MIME reader keeps a part's "paused" read
** status until curl_easy_pause lifts a send pause, but when that read came
** after other bytes of the same call (a boundary, the part's headers)
** libcurl got those bytes and never saw the pause, so a plain CONT finds
** nothing to change and the part stays paused for good (repro:
** spec/c/curl_mime_pause_repro.c). Lifting a pause arms libcurl's timer
** (our timer callback: due now), so the loop acts on it this turn.
*/
static void resume_upload (aigc_request *r) {
  if (r->easy == NULL || !r->in_multi)
    return;
  curl_easy_pause(r->easy, CURLPAUSE_SEND);
  curl_easy_pause(r->easy, CURLPAUSE_CONT);
}

/* The fed part failed: the error (kind, message) ends the call. */
static int fail_upload (lua_State *L, int eidx, int ridx, aigc_request *r,
                        const char *kind, const char *what) {
  aigc_error_new(L, kind, "");
  lua_pushfstring(L, "the upload's reader %s", what);
  lua_setfield(L, -2, "message");
  return fail_now(L, eidx, ridx, r) + 1;
}

/*
** libcurl waits for bytes of the part a function feeds (body.h): calls it
** (a string: the next bytes; nil or "": the end) from the loop, never
** from inside libcurl, and resumes the transfer.
*/
static int feed_upload (lua_State *L, int eidx, int ridx, aigc_request *r) {
  int st;
  size_t len = 0;
  const char *s;
  char wrong[96];
  r->xb.feed_wanted = 0;
  lua_getiuservalue(L, ridx, AIGC_RQ_READER);
  r->in_callback = 1;
  st = aigc_pcall(L, 0, 1);
  r->in_callback = 0;
  if (r->state != AIGC_RUNNING) {   /* canceled or closed inside: that end wins */
    lua_pop(L, 1);
    return 1;
  }
  if (st != LUA_OK) {
    aigc_error_from_callback(L);
    return fail_now(L, eidx, ridx, r) + 1;
  }
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    return fail_upload(L, eidx, ridx, r, "callback", "returned neither a string nor nil");
  }
  s = lua_tolstring(L, -1, &len);   /* (anchored on the stack; no allocation below) */
  if (aigc_body_feed(&r->xb, s, len, len == 0) != 0) {
    lua_pop(L, 1);
    return fail_upload(L, eidx, ridx, r, "limit", "gave more than memory holds");
  }
  lua_pop(L, 1);
  if (aigc_body_feed_mismatch(&r->xb, wrong, sizeof wrong))
    return fail_upload(L, eidx, ridx, r, "io", wrong);
  resume_upload(r);
  return 1;
}

/*
** Handles one queued stream event. Returns the callbacks run (0 or 1+).
** A Responses "error" event does not end the stream at once: its error is
** held for the event after it, which is delivered too when it is the
** response.failed that servers send next (the SDKs' iterators yield both
** before they raise); then the held error ends the call, whatever came
** (the stream's end too: finish_transfer).
*/
static int handle_event (lua_State *L, int eidx, int ridx, aigc_request *r,
                         const char *type, size_t tlen, const char *data, size_t dlen) {
  aigc_json_value chunk;
  int nargs, what, ran;
  if (r->xb.sink == AIGC_SINK_CHUNKS || r->xb.events_raw)   /* (events_raw: body.h) */
    return handle_bytes(L, eidx, ridx, r, data, dlen);
  if (r->xb.sink == AIGC_SINK_EVENTS)
    return handle_typed(L, eidx, ridx, r, type, tlen, data, dlen);
  /* The handler first: on 5.1 and LuaJIT pushing it allocates, and the
     chunk's text may lie in r->accum (read before any allocation); a
     finalizer run by it may have ended the request. */
  aigc_push_pcall_handler(L);
  if (r->state != AIGC_RUNNING) {
    lua_pop(L, 1);
    return 0;
  }
  what = aigc_response_event(L, r, type, tlen, data, dlen, &chunk);
  if (r->error_held && !(what == AIGC_EVENT_FAILED && r->raccum.end == AIGC_RACCUM_FAILED)) {
    lua_pop(L, what == AIGC_EVENT_ERROR || what == AIGC_EVENT_FAILED ? 2 : 1);
    return fail_held(L, eidx, ridx, r);
  }
  if (r->error_held) {   /* the response.failed: delivered, then the held error */
    lua_pop(L, 1);
    lua_getiuservalue(L, ridx, AIGC_RQ_HELD);
    r->error_held = 0;
  }
  if (what == AIGC_EVENT_ERROR) {
    lua_remove(L, -2);   /* the handler, under the error */
    return fail_now(L, eidx, ridx, r);
  }
  if (what == AIGC_EVENT_SKIP) {
    lua_pop(L, 1);
    return 0;
  }
  if (what == AIGC_EVENT_FAILED)
    lua_insert(L, -2);   /* the error, kept under the delivery */
  if (lua_getiuservalue(L, ridx, AIGC_RQ_STREAM) == LUA_TNIL) {   /* else a function or callable */
    lua_pop(L, 2);
    ran = 0;
  }
  else {
    nargs = aigc_response_push_delta(L, r, &chunk, type, tlen);
    if (what == AIGC_EVENT_FAILED && nargs == 2)   /* a server's echo of the key */
      aigc_error_scrub(L, -1, r->secrets);
    ran = run_stream_callback(L, eidx, ridx, r, nargs);
  }
  if (what != AIGC_EVENT_FAILED)
    return ran;
  if (r->state != AIGC_RUNNING) {   /* the callback failed it, canceled or closed: that end wins */
    lua_pop(L, 1);
    return ran;
  }
  if (r->raccum.end != AIGC_RACCUM_FAILED) {   /* an "error" event: held */
    lua_setiuservalue(L, ridx, AIGC_RQ_HELD);
    r->error_held = 1;
    aigc_transfer_grace(r);   /* (a server that then says nothing more ends in 2 s) */
    return ran;
  }
  return ran + fail_now(L, eidx, ridx, r);
}

/* Whether r's stream events may be delivered now. */
static int running (const aigc_request *r) {
  return aigc_text_deliverable(r);
}

/*
** The plain chat stream's loop (no chunk table, no sink): the chunks the
** scanner merges go to the callback in runs under one pcall (textrun.h),
** the handler and callback pushed once; anything else (a named event, a
** chunk it declines) goes to handle_event between runs. Pushing may
** allocate on 5.1/LuaJIT (the first time): the run re-checks the state, as
** after each call. An error that is not the callback's (out of memory
** making a delta) escapes the dispatch, as it always did.
*/
static const char text_run_key = 'r';   /* (kept: see compat.h) */

static int deliver_text_chunks (lua_State *L, int eidx, int ridx, aigc_request *r, int budget) {
  aigc_text_run t;
  int hidx = lua_gettop(L) + 1;
  t.r = r;
  t.budget = budget;
  t.count = 0;
  aigc_push_pcall_handler(L);
  lua_getiuservalue(L, ridx, AIGC_RQ_STREAM);   /* (a function, a callable or nil) */
  while (running(r)) {
    int st;
    t.held = t.in_callback = 0;
    aigc_push_kept_cfunction(L, aigc_text_run_chunks, &text_run_key);
    lua_pushvalue(L, hidx + 1);
    lua_pushlightuserdata(L, &t);
    st = aigc_pcall_under(L, 2, 0, hidx);
    if (st != LUA_OK) {
      r->in_callback = 0;
      if (!t.in_callback)
        lua_error(L);
      t.count++;
      if (r->state != AIGC_RUNNING)   /* canceled or closed inside: that end wins */
        lua_pop(L, 1);
      else {
        stream_callback_error(L, st);
        fail_now(L, eidx, ridx, r);
      }
      break;
    }
    if (!t.held)
      break;
    t.count += handle_event(L, eidx, ridx, r, t.type, t.tlen, t.data, t.dlen);
  }
  lua_pop(L, 2);
  return t.count;
}

/*
** Dispatches what is pending for the request at ridx: queued stream events
** (at most `budget` callbacks, 0 = all), then, once the transfer is over,
** its outcome, then its end. A request still holding events when the
** budget runs out goes back on the ready list.
**
** The request is pinned meanwhile (`delivering`): a finalizer that cancels
** it or closes the client defers the frees until we are done, and every
** step below re-checks the state. The events delivered are swapped out of
** `events` (where libcurl appends, and a nested drive may reallocate) into
** `draining`, which only this function touches.
*/
int aigc_request_dispatch (lua_State *L, int eidx, int ridx, int budget) {
  aigc_request *r = request_at(L, ridx);
  const char *type, *data;
  size_t tlen, dlen;
  int count = 0;
  luaL_checkstack(L, 16, "aigc dispatch");
  if (r->delivering++ == 0)
    aigc_roster_set_delivering(r->roster, &r->entry, 1);
  if (r->xb.feed_wanted && running(r))
    count += feed_upload(L, eidx, ridx, r);
  if (r->kind == AIGC_KIND_CHAT && !r->want_chunk && r->xb.sink == AIGC_SINK_JSON) {
    if (running(r))
      count += deliver_text_chunks(L, eidx, ridx, r, budget);
  }
  else
    while (running(r) && (budget <= 0 || count < budget)
           && aigc_transfer_next_event(r, &type, &tlen, &data, &dlen))
      count += handle_event(L, eidx, ridx, r, type, tlen, data, dlen);
  if (running(r) && !aigc_transfer_drained(r))   /* the budget ran out: later */
    aigc_roster_ready(r->roster, &r->entry);
  if (r->state == AIGC_RUNNING && r->draining_read >= r->draining.len) {
    aigc_buf_clear(&r->draining);
    r->draining_read = 0;
  }
  if (r->state == AIGC_RUNNING && r->transfer_done && r->roster != NULL && !r->roster->closed
      && (aigc_transfer_drained(r) || r->abort_reason == AIGC_ABORT_DEADLINE))
    count += finish_transfer(L, eidx, ridx, r);
  if (--r->delivering == 0)
    aigc_roster_set_delivering(r->roster, &r->entry, 0);
  if (r->delivering == 0 && r->free_deferred) {
    r->free_deferred = 0;
    aigc_transfer_free_memory(r);
  }
  if (r->entry.end_pending && (budget <= 0 || count < budget))
    count += aigc_request_deliver_end(L, eidx, ridx);
  return count;
}

/* After an error escaped a delivery (see aigc_engine_drive): not pinned. */
void aigc_request_unpin (aigc_request *r) {
  r->delivering = 0;
  aigc_roster_set_delivering(r->roster, &r->entry, 0);
  r->in_callback = 0;
  if (r->free_deferred) {
    r->free_deferred = 0;
    aigc_transfer_free_memory(r);
  }
}

/* }====================================================== */


/*
** {======================================================
** Canceling
** =======================================================
*/

/*
** r (its userdata at ridx) has ended without a delivery: its stream
** callback and on_done are forgotten at once (nothing is delivered after
** a cancel); its on_error and waiters run from the loop; nobody listening,
** the engine lets go of it now. No Lua allocation.
*/
static void ended_quietly (lua_State *L, int eidx, int ridx, aigc_request *r) {
  int listening;
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, AIGC_RQ_STREAM);
  forget_stream_end(L, ridx, r);
  lua_pushnil(L);
  lua_setiuservalue(L, ridx, AIGC_RQ_ON_DONE);
  listening = lua_getiuservalue(L, ridx, AIGC_RQ_ON_ERROR) != LUA_TNIL;
  listening |= lua_getiuservalue(L, ridx, AIGC_RQ_WAITERS) != LUA_TNIL;
  listening |= lua_getiuservalue(L, ridx, AIGC_RQ_OBSERVE) != LUA_TNIL;
  lua_pop(L, 3);
  if (r->roster == NULL)
    return;
  if (listening)
    aigc_roster_set_end(r->roster, &r->entry);   /* the waiter hears it from the loop */
  else {
    if (r->watched) {   /* no end to deliver, so not listed (that allocates): */
      r->watched = 0;
      r->roster->unlisted_ends++;   /* the hook's next sweep looks at every request */
    }
    aigc_request_drop(L, eidx, r);
  }
}

/* Ends r where no Lua allocation is allowed: out of libcurl, the queue and
   its slot, its memory freed. */
static void end_now (aigc_request *r, aigc_state state, const char *kind, const char *msg) {
  r->state = state;
  r->end_kind = kind;
  r->end_msg = msg;
  if (r->roster != NULL) {
    aigc_transfer_release(r);
    aigc_roster_unready(r->roster, &r->entry);
    aigc_transfer_recycle(r);
  }
  aigc_transfer_free_memory(r);
}

/*
** Out of libcurl (closing its connection), out of the queue; see
** request.h. cancel() may run in any finalizer: the error object is made
** when first needed (push_outcome).
*/
void aigc_request_cancel (lua_State *L, int ridx, const char *why, int why_idx) {
  aigc_request *r = request_at(L, ridx);
  ridx = lua_absindex(L, ridx);
  if (aigc_terminal(r->state))
    return;
  end_now(r, AIGC_CANCELED, "canceled", why);
  if (why_idx != 0) {
    lua_pushvalue(L, why_idx);
    lua_setiuservalue(L, ridx, AIGC_RQ_RESULT);
  }
  lua_getiuservalue(L, ridx, AIGC_RQ_ENGINE);
  ended_quietly(L, lua_gettop(L), ridx, r);
  lua_pop(L, 1);
}

void aigc_request_end_static (lua_State *L, int eidx, aigc_request *r, aigc_state state,
                              const char *kind, const char *msg) {
  if (aigc_terminal(r->state))
    return;
  end_now(r, state, kind, msg);
  if (r->roster != NULL && aigc_request_push(L, eidx, r)) {   /* (allocates nothing) */
    ended_quietly(L, eidx, lua_gettop(L), r);
    lua_pop(L, 1);
  }
}

/* }====================================================== */


/*
** {======================================================
** Waiting in a task
** =======================================================
*/

/*
** Adds the function on top of the stack to the waiters of the request at
** ridx (popping it), and has the engine hold the request (someone expects
** to hear from it). Returns 0 when the request can no longer run its end
** (its client closed and let go of it): the function is then dropped.
** Allocates, so anything may happen meanwhile: the state is read after.
*/
static int add_waiter (lua_State *L, int ridx, aigc_request *r) {
  lua_Integer n;
  ridx = lua_absindex(L, ridx);
  if (lua_getiuservalue(L, ridx, AIGC_RQ_WAITERS) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, ridx, AIGC_RQ_WAITERS);
  }
  n = (lua_Integer)lua_rawlen(L, -1);
  lua_insert(L, -2);
  lua_rawseti(L, -2, n + 1);
  lua_pop(L, 1);
  lua_getiuservalue(L, ridx, AIGC_RQ_ENGINE);
  if (r->roster != NULL)
    aigc_request_hold(L, lua_gettop(L), r, ridx, 1);   /* allocates */
  lua_pop(L, 1);
  if (r->roster == NULL) {   /* detached: no loop will ever run its end */
    lua_pushnil(L);
    lua_setiuservalue(L, ridx, AIGC_RQ_WAITERS);
    return 0;
  }
  if (aigc_terminal(r->state))
    aigc_roster_set_end(r->roster, &r->entry);   /* ended already: told on the next turn */
  return 1;
}

/* A task's waiter: the scheduler's resume(co, req) (upvalues 1 and 2). */
static int resume_task (lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, 1);
  lua_call(L, 2, 0);
  return 0;
}

int aigc_request_in_task (lua_State *L, int eidx) {
  int yes;
  if (lua_getiuservalue(L, eidx, AIGC_EN_TASKS) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushthread(L);
  lua_rawget(L, -2);
  yes = lua_toboolean(L, -1);
  lua_pop(L, 2);
  return yes && aigc_may_yield(L);
}

int aigc_request_wait_in_task (lua_State *L, aigc_request *r) {
  lua_getiuservalue(L, 2, AIGC_EN_RESUME);
  lua_pushthread(L);
  lua_pushcclosure(L, resume_task, 2);
  if (!add_waiter(L, 1, r))   /* its client closed meanwhile: it is over */
    return aigc_request_push_result(L, 1, r);
  lua_settop(L, 2);
  lua_getiuservalue(L, 2, AIGC_EN_TOKEN);
  lua_pushvalue(L, 1);
  return lua_yield(L, 2);
}

/* }====================================================== */


/*
** {======================================================
** The request object
** =======================================================
*/

static int req_status (lua_State *L) {
  aigc_request *r = aigc_check_request(L, 1);
  lua_pushstring(L, state_names[r->state]);
  return 1;
}

static int req_result (lua_State *L) {
  aigc_request *r = aigc_check_request(L, 1);
  return aigc_request_push_result(L, 1, r);
}

/* req:_engine() -> the engine it belongs to (for the Lua scheduler). */
static int req_engine (lua_State *L) {
  aigc_check_request(L, 1);
  lua_getiuservalue(L, 1, AIGC_RQ_ENGINE);
  return 1;
}

/*
** req:cancel([why]) -> whether it was pending. Safe anywhere: in its own
** callbacks, in a finalizer. Its on_error (kind "canceled") and waiters
** run from the loop, not from here.
*/
/*
** Cancels the request at 1 for one of its methods (cancel, __close). A
** watched request nobody listens to is not listed by the cancel itself
** (ended_quietly allocates nothing: it also runs inside the loop and the
** collector); a method may allocate, so it lists it here. Else the usage
** hook would find its end only through its weak table, and a request
** canceled and then dropped was lost to a collection that came before the
** client looked (README, Usage and cost: "counted ... when the client next
** looks"). The list holds it until the hook takes it.
*/
static void cancel_from_method (lua_State *L, aigc_request *r, const char *why, int why_idx) {
  int watched = r->watched;
  aigc_request_cancel(L, 1, why, why_idx);
  if (watched && !r->watched && r->roster != NULL) {   /* (ended_quietly: not listed) */
    lua_getiuservalue(L, 1, AIGC_RQ_ENGINE);
    note_watched_end(L, lua_gettop(L), 1, r);
    lua_pop(L, 1);
  }
}

static int req_cancel (lua_State *L) {
  aigc_request *r = aigc_check_request(L, 1);
  int pending, why_idx = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checkstring(L, 2);   /* (may allocate: a number becomes a string) */
    why_idx = 2;
  }
  lua_settop(L, 2);
  pending = !aigc_terminal(r->state);
  cancel_from_method(L, r, "the request was canceled", why_idx);
  lua_pushboolean(L, pending);
  return 1;
}

/*
** req:_notify(fn): fn(req) is called once when the request is over, from
** the loop, after on_done/on_error (any number of them, in order). For the
** Lua layer (a Future tracking this request).
*/
static int req_notify (lua_State *L) {
  aigc_request *r = aigc_check_request(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  add_waiter(L, 1, r);
  return 0;
}

static int req_close (lua_State *L) {
  aigc_request *r = aigc_check_request(L, 1);
  lua_settop(L, 1);
  if (!aigc_terminal(r->state))
    cancel_from_method(L, r, "the request was closed", 0);
  return 0;
}

/*
** __gc: the request is unreachable, so nobody can read its result or hear
** of its end (a request with callbacks or waiters is held by the engine).
** If it was still pending it is canceled here, in C only (this may run at
** any allocation, even inside the engine's own loop: the roster's lists
** allow it).
*/
void aigc_request_free_c (aigc_request *r) {
  if (!aigc_terminal(r->state))
    r->state = AIGC_CANCELED;
  aigc_transfer_free(r);
  r->secrets = NULL;
  aigc_secrets_free(r->own_secrets);
  r->own_secrets = NULL;
  aigc_secrets_free(r->log_secrets);
  r->log_secrets = NULL;
}

/* The finalizer's __gc (slots.c: the request's three objects): its user
   values, the core and the engine, are alive while it runs. */
static int req_gc (lua_State *L) {
  aigc_request *r = *(aigc_request **)luaL_checkudata(L, 1, AIGC_REQUEST_CORE_MT);
  aigc_roster *ro = r->roster;
  int slot = r->slot, core_slot = r->core_slot;
  /* The C frees first: what follows touches the engine's tables, and on
     5.1 and LuaJIT an error in a __gc (a host's memory cap) ends it there
     (the request's body and handle leaked). */
  aigc_request_free_c(r);
  r->slot = r->core_slot = 0;
  if ((slot != 0 || core_slot != 0) && lua_getiuservalue(L, 1, 2) == LUA_TUSERDATA)
    aigc_slot_release(L, lua_gettop(L), slot, core_slot, ro);
  return 0;
}

static int req_tostring (lua_State *L) {
  aigc_request *r = aigc_check_request(L, 1);
  lua_pushfstring(L, "aigc.request (%s, %s%s) %p", state_names[r->state],
                  aigc_request_kind_names[r->kind], r->stream ? ", stream" : "", (void *)r);
  return 1;
}

static const luaL_Reg request_methods[] = {
  {"status", req_status},
  {"result", req_result},
  {"cancel", req_cancel},
  {"_notify", req_notify},
  {"_engine", req_engine},   /* (wait and pump: engine.c, they drive the engine) */
  {NULL, NULL}
};

static const luaL_Reg request_meta[] = {
  {"__index", NULL},
  {"__close", req_close},
  {"__tostring", req_tostring},
  {NULL, NULL}
};

void aigc_request_open (lua_State *L) {
  luaL_newmetatable(L, AIGC_REQUEST_CORE_MT);   /* (its finalizer: slots.c, the request's three objects) */
  lua_pushcfunction(L, req_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, AIGC_REQUEST_MT);
  luaL_setfuncs(L, request_meta, 0);
  luaL_newlibtable(L, request_methods);
  luaL_setfuncs(L, request_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* }====================================================== */
