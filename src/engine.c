/*
** engine.c — the engine object behind a client (an "aigc.engine"
** userdata): made from the client's config, closed, collected; its
** methods (submit, step, act, watch, close...), and the request methods
** that drive it (wait, pump). The loop itself is loop.c.
**
** THE RE-ENTRANCY RULE (aigc.h): submit reads nothing of the engine across
** a Lua allocation and re-checks it before it links the request; step()
** and close() re-check `closed` after anything that runs Lua.
** THE LIFECYCLE CONTRACT (aigc.h): ends (on_done/on_error, waiters) run
** only from the loop's dispatch or from close() (not in a finalizer);
** counts are aigc_roster_count(); callback errors go through
** aigc_error_report.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "error.h"
#include "home.h"
#include "loop.h"
#include "peers.h"

static aigc_engine *check_engine (lua_State *L, int idx) {
  aigc_engine *e = (aigc_engine *)luaL_checkudata(L, idx, AIGC_ENGINE_MT);
  if (e->roster.closed || e->roster.closing)
    luaL_error(L, "attempt to use a closed client");
  return e;
}

static const char *secrets_of (aigc_engine *e) {
  return e->roster.config.secret;
}


/*
** {======================================================
** Submitting, waiting
** =======================================================
*/

/* Logs a new request (once it is in the engine: the log function may
   close the client or cancel it, which then cancels it like any other),
   scrubbed of its secrets: the engine's and the call's own. */
static void log_submit (lua_State *L, aigc_engine *e, aigc_request *r) {
  char path[AIGC_LOG_PATH];
  aigc_transfer_path(r, path, sizeof path);
  if (e->roster.config.log_bodies && !aigc_request_bodiless(r))
    aigc_error_log(L, 1, aigc_log_secrets(r), "debug", "POST %s%s body: %.*s", path,
                   r->stream ? " (stream)" : "", (int)(r->body.len > 800 ? 800 : r->body.len),
                   r->body.data ? r->body.data : "");
  else
    aigc_error_log(L, 1, aigc_log_secrets(r), "debug", "%s %s%s",
                   aigc_request_method(r),
                   path, r->stream ? " (stream)" : "");
}

/*
** eng:submit(kind, params [, opts [, params_keys [, opts_keys [, into]]]]) -> request
**   kind   "chat" | "completion" | "json" | "get" | "responses" (POST
**          /responses, typed stream events) | "delete"
**   params the request table (nil for "get" and "delete"); its per-call options
**          (core.call_options) configure the call and are not sent
**   opts   { path =, headers = {"Name: value", ...}, query = "a=b",
**          fname =, arg = } for what the Lua layer computed (Azure paths,
**          per-call headers) and who the user called (for misuse messages);
**          method = "GET" with starting_after = N: a "responses" stream
**          resumed (GET /responses/{id}?stream=true&starting_after=N);
**          secrets = {...} (the call's own, scrubbed from its errors and
**          log lines), log_secrets = {...} (from its log lines only)
**   params_keys, opts_keys   hints: the option keys the tables hold, as
**          core.fields_fit and core.opts_keys give them (the client's
**          checks walked params already; its opts are shared between
**          calls): trusted, not walked again; ignored for a table with a
**          metatable (submit.c)
**   into   a table (a strategy's list of what it started, which a cut
**          cancels): gets into[req] = req once the request is in the
**          engine, before submit returns or runs any Lua -- a host's
**          watchdog that cut the caller right after submit left the
**          request running, never canceled
*/
static int eng_submit (lua_State *L) {
  aigc_engine *e = check_engine(L, 1);
  aigc_submit s;
  aigc_request *r;
  int rc;
  aigc_request_read_args(L, &s);   /* everything is checked before anything is allocated */
  r = aigc_request_new(L, &e->roster, &s);
  /* A finalizer run by any allocation above may have closed the client:
     from here on there are no Lua allocations until the request is in the
     engine's lists (where close() would find and cancel it). */
  if (e->roster.closed || e->roster.closing) {
    aigc_request_unanchor(L, 1, r);
    return luaL_error(L, "attempt to use a closed client (it was closed while the request was made)");
  }
  rc = aigc_transfer_prepare(r, s.path, s.query);
  if (rc != AIGC_PREPARE_OK) {
    aigc_request_unanchor(L, 1, r);
    return luaL_error(L, rc == AIGC_PREPARE_NOMEM ? "not enough memory"
                         : rc == AIGC_PREPARE_NOHANDLE ? "curl_easy_init failed"
                         : "could not configure the transfer (a bad ca_file, ca_path or proxy?)");
  }
  aigc_transfer_link(r);
  aigc_loop_start(e, r);
  if (lua_type(L, 2) == LUA_TTABLE) {   /* into[req] = req, before any Lua runs (the log, a watcher) */
    lua_pushvalue(L, 6);
    lua_pushvalue(L, 6);
    lua_rawset(L, 2);
  }
  if (e->roster.config.log_enabled && !e->roster.closed)
    log_submit(L, e, r);
  lua_settop(L, 6);   /* the request */
  /* An external loop's watcher hears of it now (timer_fn(0): act() starts
     it), unless a turn of the loop is running (its report follows). */
  if (!e->roster.closed && !e->roster.closing)
    aigc_loop_report(L, 1, e);
  lua_settop(L, 6);
  return 1;
}

/*
** An error escaped the drive (or the interrupt probe) while this call
** waited for the request at 1: unless it is over, the request is canceled
** (an interrupted call leaves nothing running), and the error goes on.
*/
static int wait_failed (lua_State *L, aigc_request *r) {
  lua_pushvalue(L, -1);   /* the error */
  lua_replace(L, 3);
  lua_settop(L, 3);
  if (!aigc_terminal(r->state))
    aigc_request_cancel(L, 1, aigc_is_interrupt(L, 3) ? "interrupted"
                                                      : "the call waiting for it raised an error", 0);
  return lua_error(L);
}

/*
** Whether the queued request r can never start: every slot is held by a
** request being delivered further up the stack (a blocking call inside a
** stream callback under max_concurrency = 1: the callback waits for r, r
** waits for the slot its caller holds until the callback returns).
*/
static int cannot_start (const aigc_request *r) {
  const aigc_roster *ro = r->roster;
  int prio = r->entry.priority;
  if (r->state != AIGC_QUEUED || ro == NULL || aigc_roster_slot_free_for(ro, prio))
    return 0;
  /* Whichever limit holds it (max_concurrency, or its class's cap) is
     held by waiting callbacks only. The slots held by requests being
     delivered are counted as they change (roster.c): O(1) per turn of a
     wait, where walking every request bound to the engine was O(K + ended). */
  return (!aigc_roster_slot_free(ro) && ro->blocked >= ro->running)
      || (aigc_roster_slot_free(ro) && ro->blocked_by[prio] >= ro->running_by[prio]);
}

static const char cannot_start_msg[] = "the request cannot start: every slot of "
  "max_concurrency is held by a request whose callback is waiting for this one (start it "
  "with chat_async instead)";

/* One turn for a wait (request at 1, engine at 2): raises what escapes. */
static void wait_turn (lua_State *L, aigc_request *r, double slice, aigc_hooks *hooks) {
  int status;
  aigc_loop_drive(L, 2, slice, 0, hooks, &status);
  if (status != LUA_OK)
    wait_failed(L, r);
  if (aigc_hooks_changed(L, hooks) && aigc_interrupt_probe(L, hooks) != LUA_OK)
    wait_failed(L, r);
}

/*
** Drives the engine of the request at 1 (pushed at 2) until the request is
** over or `until` (>= 0) passes. Wakes at least every second to check, and
** gives a newly installed debug hook (Ctrl-C) its chance at once.
*/
static void wait_for (lua_State *L, aigc_request *r, double until) {
  aigc_hooks hooks;
  aigc_hooks_snap(L, &hooks);
  while (!aigc_terminal(r->state) && r->roster != NULL && !r->roster->closed) {
    double slice = 1.0;
    if (cannot_start(r)) {
      aigc_request_end_static(L, 2, r, AIGC_FAILED, "limit", cannot_start_msg);
      break;
    }
    if (until >= 0) {
      double left = until - aigc_now();
      if (left <= 0)
        break;
      if (left < slice)
        slice = left;
    }
    wait_turn(L, r, slice, &hooks);
  }
}

/*
** req:wait([timeout]) -> res | nil, err | nil, nil (still pending after
** `timeout` seconds). Drives the engine (every request's callbacks run)
** until this request is over, then runs its own end if the loop has not
** yet (its on_done/on_error, its waiters): wait() is a driving call. In a
** task of the client's scheduler, wait() with no timeout yields instead
** (request.h, aigc_request_wait_in_task).
*/
static int req_wait (lua_State *L) {
  aigc_request *r = aigc_check_request(L, 1);
  lua_Number timeout = luaL_optnumber(L, 2, -1);
  aigc_engine *e;
  if (!lua_isnoneornil(L, 2))
    luaL_argcheck(L, timeout >= 0 && timeout == timeout, 2, "timeout must be a number >= 0");
  lua_settop(L, 1);
  if (!aigc_terminal(r->state) && r->in_callback)
    return luaL_error(L, "cannot wait for a request from inside its own callback");
  lua_getiuservalue(L, 1, AIGC_RQ_ENGINE);   /* index 2 */
  e = (aigc_engine *)lua_touserdata(L, 2);
  if (timeout < 0 && !aigc_terminal(r->state) && r->roster != NULL && aigc_request_in_task(L, 2))
    return aigc_request_wait_in_task(L, r);
  if (e != NULL && !e->dispatching && !e->stepping)
    aigc_interrupt_forget(L);   /* an outermost call */
  if (!aigc_terminal(r->state) && r->roster != NULL)
    wait_for(L, r, timeout < 0 ? -1 : aigc_now() + (double)timeout);
  if (r->entry.end_pending && !r->in_callback && !r->delivering && r->roster != NULL)
    aigc_request_deliver_end(L, 2, 1);
  return aigc_request_push_result(L, 1, r);
}

/*
** engine:call(kind, params, opts, params_keys, opts_keys) -> req, true, res,
** err: a blocking call's submit and wait in one C call, so that no Lua
** instruction runs between them. Made of two Lua calls (submit, then
** req:wait()), a host's watchdog that cut the caller between them left
** the request running with nobody waiting: its stream callback, the
** caller's code, ran on after the interrupt, inside the next call's wait.
** What submit raises (misuse) is given back for the caller to relay:
** false, err. In a task (where wait yields) it gives req, false: the
** caller waits.
*/
static int eng_call (lua_State *L) {
  int n = lua_gettop(L);
  lua_pushcfunction(L, eng_submit);
  lua_insert(L, 1);
  if (lua_pcall(L, n, 1, 0) != LUA_OK) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_settop(L, 1);   /* the request (the call took the rest) */
  lua_getiuservalue(L, 1, AIGC_RQ_ENGINE);
  if (aigc_request_in_task(L, 2)) {
    lua_settop(L, 1);
    lua_pushboolean(L, 0);
    return 2;
  }
  lua_settop(L, 1);
  n = req_wait(L);
  lua_pushvalue(L, 1);
  lua_insert(L, -(n + 1));
  lua_pushboolean(L, 1);
  lua_insert(L, -(n + 1));
  return n + 2;
}

/*
** req:pump([timeout]) -> status: one turn of the engine (waiting at most
** `timeout` seconds, default 1), for an iterator waiting on its next
** event. Like wait(), it may be called inside callbacks.
*/
static int req_pump (lua_State *L) {
  aigc_request *r = aigc_check_request(L, 1);
  lua_Number timeout = luaL_optnumber(L, 2, 1.0);
  luaL_argcheck(L, timeout >= 0 && timeout == timeout, 2, "timeout must be a number >= 0");
  lua_settop(L, 1);
  if (!aigc_terminal(r->state) && r->roster != NULL && !r->roster->closed) {
    aigc_hooks hooks;
    if (r->in_callback) {   /* (no position: pump's caller is aigc's own loop, not the user's line) */
      lua_pushliteral(L, "cannot wait for a request from inside its own callback");
      return lua_error(L);
    }
    lua_getiuservalue(L, 1, AIGC_RQ_ENGINE);   /* index 2 */
    if (cannot_start(r))
      aigc_request_end_static(L, 2, r, AIGC_FAILED, "limit", cannot_start_msg);
    aigc_hooks_snap(L, &hooks);
    wait_turn(L, r, (double)timeout, &hooks);
    lua_settop(L, 1);
  }
  lua_pushstring(L, aigc_request_state_name(r->state));
  return 1;
}

/* }====================================================== */


/*
** {======================================================
** Driving: step, and external event loops
** =======================================================
*/

/* Pushes the callback errors reported since the last step() or act(),
   and gives the engine (at 1) a fresh list: 1, or 0 when there are none. */
static int take_errors (lua_State *L) {
  if (lua_getiuservalue(L, 1, AIGC_EN_ERRORS) != LUA_TTABLE || lua_rawlen(L, -1) == 0) {
    lua_pop(L, 1);
    return 0;
  }
  /* A fresh list first: if making it fails, the errors stay kept. */
  lua_newtable(L);
  lua_setiuservalue(L, 1, AIGC_EN_ERRORS);
  return 1;
}

/*
** eng:step([timeout [, budget]]) -> active, errors
** Drives every transfer once: waits at most `timeout` seconds (default 0:
** never blocks) for network activity, and runs at most `budget` callbacks
** (default 0: all that are pending). Returns the number of requests still
** queued, running or with an end to deliver (aigc_roster_count), and the
** list of callback errors reported since the last step() (or nil).
** On a closed client it raises, except while the ends of requests that a
** close() in a finalizer canceled are still to be delivered: it delivers
** them (and returns 0 and their errors).
*/
static int eng_step (lua_State *L) {
  aigc_engine *e = (aigc_engine *)luaL_checkudata(L, 1, AIGC_ENGINE_MT);
  lua_Number timeout = luaL_optnumber(L, 2, 0);
  lua_Integer budget = luaL_optinteger(L, 3, 0);
  int status;
  if (e->roster.closing || (e->roster.closed && e->roster.ends == 0))
    return luaL_error(L, "attempt to use a closed client");
  luaL_argcheck(L, timeout >= 0 && timeout == timeout, 2, "timeout must be a number >= 0");
  luaL_argcheck(L, budget >= 0, 3, "budget must be an integer >= 0");
  if (timeout > 86400.0 * 365)
    timeout = 86400.0 * 365;
  if (e->dispatching)
    return luaL_error(L, "client:step() called from inside an aigc callback "
                         "(start requests with chat_async there; they run on the next step)");
  if (e->stepping)
    return luaL_error(L, "client:step() is already running");
  lua_settop(L, 1);
  aigc_interrupt_forget(L);   /* a new outermost call (checked above) */
  aigc_loop_drive(L, 1, (double)timeout, budget > INT32_MAX ? INT32_MAX : (int)budget,
                  NULL, &status);
  if (status != LUA_OK)
    return lua_error(L);
  lua_pushinteger(L, aigc_roster_count(&e->roster));
  return 1 + take_errors(L);
}

/*
** eng:take_errors([list]) -> list|nil: the callback errors reported since
** the last step() or act() took them, appended to `list` (oldest first).
** For the Lua part of a turn, which runs after the engine's (a future's
** on_done runs as a task there): an error it raised was kept for the next
** step(), so the step in which it ran returned none, and a loop ending
** when the count reached 0 never saw it. A closed client's too.
*/
static int eng_take_errors (lua_State *L) {
  lua_Integer n, i, to;
  luaL_checkudata(L, 1, AIGC_ENGINE_MT);
  lua_settop(L, 2);
  if (!take_errors(L))
    return 1;   /* (the list given, or nil) */
  if (lua_isnil(L, 2))
    return 1;
  luaL_checktype(L, 2, LUA_TTABLE);
  n = (lua_Integer)lua_rawlen(L, 3);
  to = (lua_Integer)lua_rawlen(L, 2);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 3, i);
    lua_rawseti(L, 2, to + i);
  }
  lua_settop(L, 2);
  return 1;
}

/* eng:watch(socket_fn, timer_fn): hand the waiting to an external loop. */
static int eng_watch (lua_State *L) {
  aigc_engine *e = check_engine(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, 1, AIGC_EN_WATCH_SOCKET);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, 1, AIGC_EN_WATCH_TIMER);
  lua_settop(L, 1);
  aigc_loop_watch(L, 1, e);
  return 0;
}

/*
** eng:act([fd, events]) -> active, errors: the external loop says socket
** fd is ready (events: a string with 'r' and/or 'w', 'e' for an error),
** or, with no fd, that the timer expired (acting on what is due; the
** watcher's timer is spent, so it hears the next deadline even if it did
** not change: a timer that fired early is set again). Acts, dispatches
** callbacks, reports changes; returns as step() does. On a closed client
** it does nothing and returns 0: an external loop may still hold events
** for it.
*/
static int eng_act (lua_State *L) {
  aigc_engine *e = (aigc_engine *)luaL_checkudata(L, 1, AIGC_ENGINE_MT);
  int status, mask = 0;
  lua_Integer fd = -1;
  if (!lua_isnoneornil(L, 2)) {
    const char *ev = luaL_optstring(L, 3, "r");
    fd = luaL_checkinteger(L, 2);
    luaL_argcheck(L, fd >= 0 && fd <= INT32_MAX, 2, "not a file descriptor");
    if (strchr(ev, 'r')) mask |= CURL_CSELECT_IN;
    if (strchr(ev, 'w')) mask |= CURL_CSELECT_OUT;
    if (strchr(ev, 'e')) mask |= CURL_CSELECT_ERR;
  }
  if (e->roster.closed || e->roster.closing) {
    lua_pushinteger(L, 0);
    return 1;
  }
  if (e->dispatching)
    return luaL_error(L, "client:act() called from inside an aigc callback");
  if (fd < 0)
    e->reported_deadline = -1;   /* (the loop's drive acts on the timers that are due) */
  else
    aigc_loop_socket_action(e, (curl_socket_t)fd, mask);
  lua_settop(L, 1);
  aigc_loop_drive(L, 1, 0, 0, NULL, &status);
  if (status != LUA_OK)
    return lua_error(L);
  lua_pushinteger(L, aigc_roster_count(&e->roster));
  return 1 + take_errors(L);
}

/*
** eng:set_task_deadline(at | nil): when the Lua layer's tasks next need a
** turn (aigc.now() seconds: a sleep ends; now: deliveries are posted), for
** an external loop's timer (and timeout()). Told to the watcher at once
** outside a turn of the loop; a turn reports it at its end.
*/
static int eng_set_task_deadline (lua_State *L) {
  aigc_engine *e = (aigc_engine *)luaL_checkudata(L, 1, AIGC_ENGINE_MT);
  lua_Number at = luaL_optnumber(L, 2, -1);
  luaL_argcheck(L, lua_isnoneornil(L, 2) || (at >= 0 && at == at), 2, "a time >= 0 expected");
  e->task_deadline = at;
  lua_settop(L, 1);
  if (!e->roster.closed && !e->roster.closing)
    aigc_loop_report(L, 1, e);
  return 0;
}

/* eng:sockets() -> { [fd] = "in" | "out" | "inout" } */
static int eng_sockets (lua_State *L) {
  aigc_engine *e = check_engine(L, 1);
  size_t i;
  lua_createtable(L, 0, (int)e->poller.nwatched);
  for (i = 0; i < e->poller.nwatched; i++) {
    short ev = e->poller.watched[i].events;
    lua_pushstring(L, (ev & POLLIN) && (ev & POLLOUT) ? "inout" : (ev & POLLIN) ? "in" : "out");
    lua_rawseti(L, -2, (lua_Integer)e->poller.watched[i].fd);
  }
  return 1;
}

/* eng:timeout() -> seconds until the next deadline, or nil */
/* eng:in_callback() -> whether one of its callbacks is running (the loop
   is delivering): a wait that would drive the loop cannot run there. */
static int eng_in_callback (lua_State *L) {
  lua_pushboolean(L, check_engine(L, 1)->dispatching > 0);
  return 1;
}

static int eng_timeout (lua_State *L) {
  aigc_engine *e = check_engine(L, 1);
  double d = aigc_loop_watch_deadline(e);
  if (d < 0)
    lua_pushnil(L);
  else {
    double secs = d - aigc_now();
    lua_pushnumber(L, secs > 0 ? secs : 0);
  }
  return 1;
}

/* }====================================================== */


/*
** {======================================================
** Errors, counts, the scheduler
** =======================================================
*/

/* eng:report(err): an error from Lua code the engine ran (a spawned task). */
static int eng_report (lua_State *L) {
  aigc_engine *e = (aigc_engine *)luaL_checkudata(L, 1, AIGC_ENGINE_MT);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  aigc_error_report(L, 1, 2, secrets_of(e));
  return 0;
}

/*
** engine:scrub(v [, secrets [, header_lines]]) -> v: for errors the Lua
** layer builds (a dialogue error holding a whole response, a tool's
** error) and what a cache or a cassette keeps: every string reachable
** from v with the engine's secrets replaced by "[redacted]", a table in
** place. `secrets` (a list of strings) and `header_lines` (a list of
** "Name: value") add one call's own credentials, as a request's submit
** does (the credential of its Authorization... headers, its query's).
** Works on a closed client (the secrets live as long as the engine).
*/
static int eng_scrub (lua_State *L) {
  aigc_engine *e = (aigc_engine *)luaL_checkudata(L, 1, AIGC_ENGINE_MT);
  const char *secrets = secrets_of(e);   /* valid while e is on the stack */
  char **box = NULL;
  luaL_checkany(L, 2);
  lua_settop(L, 4);
  luaL_argcheck(L, lua_isnil(L, 3) || lua_istable(L, 3), 3, "a list of strings expected");
  luaL_argcheck(L, lua_isnil(L, 4) || lua_istable(L, 4), 4, "a list of header lines expected");
  if (!lua_isnil(L, 3) || !lua_isnil(L, 4)) {
    box = aigc_secrets_box(L, lua_isnil(L, 4) ? 0 : 4, lua_isnil(L, 3) ? 0 : 3, secrets);
    if (*box != NULL)
      secrets = *box;   /* anchored by the box (at 5) until we return */
  }
  aigc_error_scrub(L, 2, secrets);
  if (box != NULL)
    aigc_secrets_box_free(box);   /* zeroed now, not at the next collection */
  lua_settop(L, 2);
  return 1;
}

/* eng:active() -> requests queued, running or with an end to deliver */
static int eng_active (lua_State *L) {
  aigc_engine *e = check_engine(L, 1);
  lua_pushinteger(L, aigc_roster_count(&e->roster));
  return 1;
}

/*
** eng:take_ended() -> list | nil, lost: the watched requests (submitted
** with opts.watch) whose end was delivered since the last call, in order,
** and whether an end could not be listed since (memory): then the caller
** must look at every request it watches. The list is the caller's now.
** Works on a closed engine (close() delivers the ends it cancels).
*/
static int eng_take_ended (lua_State *L) {
  aigc_engine *e = (aigc_engine *)luaL_checkudata(L, 1, AIGC_ENGINE_MT);
  int lost = e->roster.unlisted_ends > 0;
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, AIGC_EN_ENDED);
  if (!lua_isnil(L, 2)) {
    lua_pushnil(L);
    lua_setiuservalue(L, 1, AIGC_EN_ENDED);
  }
  e->roster.unlisted_ends = 0;
  lua_pushboolean(L, lost);
  return 2;
}

/*
** eng:set_scheduler(sched | nil): the Lua layer's task scheduler, for
** req:wait() in a task (request.c, aigc_request_wait_in_task): sched.tasks
** (a table whose keys are the task coroutines: a truthy value marks one),
** sched.token (what a task yields to the scheduler) and sched.resume (a
** function resume(co, req), called once from the loop when the request a
** task waits on ends). The three are read now: later changes to `sched`
** itself are not seen (the tasks table is kept, so its contents are).
*/
static int eng_set_scheduler (lua_State *L) {
  int slot;
  luaL_checkudata(L, 1, AIGC_ENGINE_MT);
  lua_settop(L, 2);
  if (lua_isnil(L, 2)) {
    for (slot = AIGC_EN_TASKS; slot <= AIGC_EN_RESUME; slot++) {
      lua_pushnil(L);
      lua_setiuservalue(L, 1, slot);
    }
    return 0;
  }
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_pushliteral(L, "tasks");
  if (lua_rawget(L, 2) != LUA_TTABLE)
    aigc_argerror(L, 1, "set_scheduler", "sched.tasks: a table expected, got %s", luaL_typename(L, -1));
  lua_pushliteral(L, "resume");
  if (lua_rawget(L, 2) != LUA_TFUNCTION)
    aigc_argerror(L, 1, "set_scheduler", "sched.resume: a function expected, got %s",
                  luaL_typename(L, -1));
  lua_pushliteral(L, "token");
  lua_rawget(L, 2);
  lua_setiuservalue(L, 1, AIGC_EN_TOKEN);
  lua_setiuservalue(L, 1, AIGC_EN_RESUME);
  lua_setiuservalue(L, 1, AIGC_EN_TASKS);
  return 0;
}

/* }====================================================== */


/*
** {======================================================
** Closing
** =======================================================
*/

/*
** close() (not __gc), under lua_pcall (engine at 1): every request still
** pending is canceled, then their ends run -- on_error(err) with kind
** "canceled", the tasks waiting on them resumed -- as the client's last
** turn of the loop, unless close() was called inside a __gc finalizer:
** then they wait for the next step() (which a closed client accepts for
** that) or the request's wait(). Canceling runs no Lua, but it may run out
** of memory (a request's end is recorded in Lua tables): an error of
** either part comes back to engine_close as a status, which raises it once
** the engine is closed.
*/
static int cancel_all_lua (lua_State *L) {
  aigc_engine *e = (aigc_engine *)lua_touserdata(L, 1);
  aigc_roster_entry *en;
  for (en = e->roster.all; en != NULL; en = en->all_next) {
    aigc_request *r = aigc_request_of(en);
    if (aigc_terminal(r->state))
      continue;
    if (aigc_request_push(L, 1, r)) {
      aigc_request_cancel(L, lua_gettop(L), "the client was closed", 0);
      lua_pop(L, 1);
    }
    else
      r->state = AIGC_CANCELED;   /* being collected */
  }
  if (!aigc_in_finalizer(L) && e->roster.r_head != NULL)
    aigc_loop_dispatch(L, 1, e, 0);
  return 0;
}

/*
** Every request is detached, but one whose end is still to run (keep_ends:
** it stays findable, out of libcurl, until it is delivered); then libcurl
** is cleaned up in its order: each easy handle out of the multi, the idle
** ones, the multi (the other easy handles are cleaned up by their
** requests' __gc).
*/
static void let_go (aigc_engine *e, int keep_ends) {
  aigc_roster_entry *en, *next;
  for (en = e->roster.all; en != NULL; en = next) {
    aigc_request *r = aigc_request_of(en);
    next = en->all_next;
    if (!aigc_terminal(r->state))
      r->state = AIGC_CANCELED;
    if (keep_ends && en->end_pending) {
      aigc_transfer_release(r);   /* (starts nothing: the engine is closed) */
      aigc_transfer_recycle(r);   /* (cleaned up: the engine is closed) */
    }
    else if (keep_ends)
      aigc_transfer_detach(r);
    else   /* (__gc: its own __gc may never run, see aigc_request_free_c) */
      aigc_request_free_c(r);
  }
  aigc_roster_drain_easy(&e->roster);
  if (e->roster.multi != NULL) {
    curl_multi_cleanup(e->roster.multi);
    e->roster.multi = NULL;
  }
  /* After curl_multi_cleanup: closing the pool's connections tells the
     poller (on_close_socket). */
  aigc_loop_free(e);
}

/*
** Closes the engine: from close(), or from __gc (the client itself
** collected): nothing can drive it any more, so requests are canceled
** without callbacks. Errors no step() collected go to stderr.
*/
static void engine_close (lua_State *L, int eidx, aigc_engine *e, int from_gc) {
  int status = LUA_OK;
  if (e->roster.closed) {
    /* Already closed, or never opened: eng_new may have raised after
       copying part of the config (a bad header, say). */
    if (from_gc) {
      while (e->roster.all != NULL)   /* ends left undelivered: nobody can now */
        aigc_request_free_c(aigc_request_of(e->roster.all));
    }
    aigc_config_free(&e->roster.config);
    return;
  }
  if (e->roster.closing)
    return;   /* close() inside close() (a callback it runs): the outer one ends it */
  if (!from_gc) {
    /* Pushed before anything changes: on LuaJIT a C function is an
       allocation, which may fail. Once `closing` is set, nothing here may
       raise until the engine is closed: a memory error left it closing
       for ever, its __gc then skipping it, and libcurl's handles, the
       sockets and the config leaked. */
    lua_pushcfunction(L, cancel_all_lua);
    lua_pushvalue(L, eidx);
  }
  e->roster.closing = 1;
  if (!from_gc) {
    int saved_dispatching = e->dispatching;
    aigc_roster_entry *saved_current = e->roster.current;
    status = lua_pcall(L, 1, 0, 0);   /* an error is raised below, once closed */
    if (status != LUA_OK) {
      e->dispatching = saved_dispatching;
      e->roster.current = saved_current;
    }
  }
  e->roster.closed = 1;
  e->roster.closing = 0;
  if (from_gc)
    e->watching = 0;   /* (its functions may be collected too: not called) */
  else
    aigc_loop_unwatch(L, eidx, e);   /* before libcurl closes the sockets */
  let_go(e, !from_gc);
  aigc_config_free(&e->roster.config);
  /* Last, as it may run out of memory (an error's text); eng_gc flushes
     for itself after its own frees. */
  if (!from_gc && e->roster.ends == 0)
    aigc_error_flush(L, eidx, secrets_of(e));   /* else the step() that delivers them returns them */
  if (status != LUA_OK)
    lua_error(L);
}

/* eng:close(): idempotent; from a callback too (the loop sees `closed`). */
static int eng_close (lua_State *L) {
  aigc_engine *e = (aigc_engine *)luaL_checkudata(L, 1, AIGC_ENGINE_MT);
  lua_settop(L, 1);
  aigc_peers_remove(L, 1);   /* (raises nothing) */
  engine_close(L, 1, e, 0);
  return 0;
}

/*
** Frees what an unreachable engine holds in C; idempotent. Its __gc calls
** it, or the state's sentinel (home.h) for an engine made while lua_close
** runs the finalizers, which gets no __gc of its own.
*/
static void engine_free_c (lua_State *L, void *object) {
  aigc_engine *e = (aigc_engine *)object;
  engine_close(L, 0, e, 1);   /* (from_gc: touches no stack slot) */
  aigc_secrets_free(e->roster.config.secret);   /* kept until now: errors are scrubbed with them */
  e->roster.config.secret = NULL;
  free(e->roster.slots.free);   /* (every request detached by now: none gives a slot back) */
  free(e->roster.cores.free);
  memset(&e->roster.slots, 0, sizeof e->roster.slots);
  memset(&e->roster.cores, 0, sizeof e->roster.cores);
}

static const aigc_home_kind engine_home = { engine_free_c };

/* (The kept errors are written scrubbed with the secrets, freed after
   them: only a memory error while writing, in a finalizer, loses that
   block unzeroed; everything else is freed before.) */
static int eng_gc (lua_State *L) {
  aigc_engine *e = (aigc_engine *)luaL_checkudata(L, 1, AIGC_ENGINE_MT);
  char *secrets = e->roster.config.secret;
  e->roster.config.secret = NULL;
  engine_free_c(L, e);
  aigc_error_flush(L, 1, secrets);   /* last: it may run out of memory, with nothing left to free */
  aigc_secrets_free(secrets);
  return 0;
}

static int eng_tostring (lua_State *L) {
  aigc_engine *e = (aigc_engine *)luaL_checkudata(L, 1, AIGC_ENGINE_MT);
  if (e->roster.closed)
    lua_pushfstring(L, "aigc.engine (closed) %p", (void *)e);
  else
    lua_pushfstring(L, "aigc.engine (%d active) %p", aigc_roster_count(&e->roster), (void *)e);
  return 1;
}

/* }====================================================== */


/*
** {======================================================
** Making an engine
** =======================================================
*/

/* The engine's Lua half: its tables, log function and error handler. */
static void new_user_values (lua_State *L, aigc_engine *e) {
  lua_newtable(L);
  lua_setiuservalue(L, 2, AIGC_EN_STRONG);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setiuservalue(L, 2, AIGC_EN_WEAK);
  lua_newtable(L);
  lua_setiuservalue(L, 2, AIGC_EN_ERRORS);
  lua_newtable(L);
  lua_setiuservalue(L, 2, AIGC_EN_CORES);
  if (lua_getfield(L, 1, "log") != LUA_TNIL) {
    if (!lua_isfunction(L, -1))
      aigc_argerror(L, 1, "engine", "config.log: a function expected, got %s", luaL_typename(L, -1));
    lua_setiuservalue(L, 2, AIGC_EN_LOG);
    e->roster.config.log_enabled = 1;
  }
  else
    lua_pop(L, 1);
  if (lua_getfield(L, 1, "error_handler") != LUA_TNIL) {
    if (!lua_isfunction(L, -1))
      aigc_argerror(L, 1, "engine", "config.error_handler: a function expected, got %s",
                    luaL_typename(L, -1));
    lua_setiuservalue(L, 2, AIGC_EN_ERRHANDLER);
  }
  else
    lua_pop(L, 1);
}

/* config.max_concurrency_by_priority = { background = K, ... }: the slots
   each class may hold (absent or 0: no cap of its own). */
static void read_priority_caps (lua_State *L, aigc_config *c) {
  static const aigc_argctx cx = { "engine", 1, "config.max_concurrency_by_priority" };
  int p, type = lua_getfield(L, 1, "max_concurrency_by_priority");
  if (type != LUA_TNIL) {
    if (type != LUA_TTABLE)
      aigc_argerror(L, 1, "engine", "config.max_concurrency_by_priority: a table expected, got %s",
                    luaL_typename(L, -1));
    for (p = 0; p < AIGC_NPRIO; p++)
      c->max_by_priority[p] = (int)aigc_opt_integer(L, lua_gettop(L), &cx, aigc_priority_names[p],
                                                    0, 0, 1000000);
  }
  lua_pop(L, 1);
}

/* The client's configuration (config at 1), copied into c. */
static void read_config (lua_State *L, aigc_config *c) {
  static const aigc_argctx cx = { "engine", 1, "config" };
  const int64_t huge = (int64_t)1 << 40;
  c->timeout = aigc_opt_seconds(L, 1, &cx, "timeout", AIGC_DEFAULT_TIMEOUT);
  c->connect_timeout = aigc_opt_seconds(L, 1, &cx, "connect_timeout", AIGC_DEFAULT_CONNECT_TIMEOUT);
  c->deadline = aigc_opt_deadline(L, 1, &cx, 0);
  c->max_retries = (int)aigc_opt_integer(L, 1, &cx, "max_retries", AIGC_DEFAULT_MAX_RETRIES, 0, 100);
  c->max_concurrency = (int)aigc_opt_integer(L, 1, &cx, "max_concurrency", 0, 0, 1000000);
  c->max_starts_per_step = (int)aigc_opt_integer(L, 1, &cx, "max_starts_per_step", 0, 0, 1000000);
  read_priority_caps(L, c);
  c->max_bytes = (size_t)aigc_opt_integer(L, 1, &cx, "max_response_bytes",
                                          (int64_t)AIGC_DEFAULT_MAX_BYTES, 1, huge);
  c->max_bytes_per_step = (size_t)aigc_opt_integer(L, 1, &cx, "max_bytes_per_step", 0, 0, huge);
  c->json_limits.max_values = (size_t)aigc_opt_integer(L, 1, &cx, "max_json_values",
                                                       (int64_t)AIGC_JSON_DEFAULT_MAX_VALUES, 1, huge);
  c->json_limits.max_containers = (size_t)aigc_opt_integer(L, 1, &cx, "max_json_containers",
      (int64_t)AIGC_JSON_DEFAULT_MAX_CONTAINERS, 1, huge);
  c->json_limits.lua_hash = aigc_lua_samples_long_strings();
  lua_getfield(L, 1, "insecure");
  c->insecure = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "require_done");   /* (default true: nil is true) */
  c->done_optional = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "log_bodies");
  c->log_bodies = lua_toboolean(L, -1);
  lua_pop(L, 1);
  c->base_url = aigc_opt_strdup(L, 1, &cx, "base_url");
  if (c->base_url == NULL)
    aigc_argerror(L, 1, "engine", "config.base_url: a string expected, got nil");
  c->query = aigc_opt_strdup(L, 1, &cx, "query");
  c->model = aigc_opt_strdup(L, 1, &cx, "model");
  c->secret = aigc_secrets_from_config(L, 1);
  c->ca_file = aigc_opt_strdup(L, 1, &cx, "ca_file");
  c->ca_path = aigc_opt_strdup(L, 1, &cx, "ca_path");
  c->proxy = aigc_opt_strdup(L, 1, &cx, "proxy");
  c->proxy_shown = aigc_opt_strdup(L, 1, &cx, "proxy_shown");
  if (lua_getfield(L, 1, "headers") == LUA_TTABLE)
    c->headers = aigc_build_headers(L, lua_gettop(L));
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "stream_headers") == LUA_TTABLE)
    c->stream_headers = aigc_build_headers(L, lua_gettop(L));
  lua_pop(L, 1);
}

/*
** core.engine(config) -> engine. The Lua layer (aigc.client) validates and
** fills `config`: base_url, query, model, secret(s), headers (an array of
** "Name: value" lines), stream_headers (the same for streams), timeout,
** connect_timeout, deadline, max_retries, max_concurrency,
** max_response_bytes, max_json_values, max_json_containers, ca_file,
** ca_path, proxy, insecure, require_done, log, log_bodies, error_handler.
*/
static int eng_new (lua_State *L) {
  aigc_engine *e;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  /* Created closed, with its metatable, before anything is acquired: __gc
     is safe at every step below. */
  e = (aigc_engine *)lua_newuserdatauv(L, sizeof *e, AIGC_EN_NSLOTS);
  memset(e, 0, sizeof *e);
  aigc_roster_init(&e->roster, (uint64_t)(uintptr_t)e ^ (uint64_t)(aigc_now() * 1e9));
  aigc_poller_init(&e->poller);
  e->roster.closed = 1;
  e->curl_deadline = -1;
  e->reported_deadline = -2;
  e->task_deadline = -1;
  e->roster.turn_ended = aigc_now();   /* (a request made before any turn: its stall counts from here) */
  luaL_setmetatable(L, AIGC_ENGINE_MT);
  aigc_home_join(L, 2, &engine_home);   /* (its __gc, or the sentinel's, frees what follows) */
  new_user_values(L, e);
  read_config(L, &e->roster.config);
  aigc_peers_add(L, 2, e->roster.config.secret, e->roster.config.secret != NULL
                 ? aigc_secrets_len(e->roster.config.secret) : 0);   /* its secrets scrubbed from every client's errors */
  if (aigc_loop_init(e) != 0)
    return luaL_error(L, "curl_multi_init failed");
  e->roster.closed = 0;
  return 1;
}

static const luaL_Reg engine_methods[] = {
  {"submit", eng_submit},
  {"call", eng_call},
  {"step", eng_step},
  {"active", eng_active},
  {"take_ended", eng_take_ended},
  {"report", eng_report},
  {"take_errors", eng_take_errors},
  {"close", eng_close},
  {"watch", eng_watch},
  {"act", eng_act},
  {"sockets", eng_sockets},
  {"timeout", eng_timeout},
  {"set_task_deadline", eng_set_task_deadline},
  {"in_callback", eng_in_callback},
  {"scrub", eng_scrub},
  {"set_scheduler", eng_set_scheduler},
  {NULL, NULL}
};

static const luaL_Reg engine_meta[] = {
  {"__index", NULL},
  {"__gc", eng_gc},
  {"__close", eng_close},
  {"__tostring", eng_tostring},
  {NULL, NULL}
};

/* The request methods that drive the engine (request.c has the others). */
static const luaL_Reg driving_methods[] = {
  {"wait", req_wait},
  {"pump", req_pump},
  {NULL, NULL}
};

void aigc_engine_open (lua_State *L) {
  luaL_newmetatable(L, AIGC_ENGINE_MT);
  luaL_setfuncs(L, engine_meta, 0);
  luaL_newlibtable(L, engine_methods);
  luaL_setfuncs(L, engine_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  aigc_request_open(L);
  luaL_getmetatable(L, AIGC_REQUEST_MT);
  lua_getfield(L, -1, "__index");
  luaL_setfuncs(L, driving_methods, 0);
  lua_pop(L, 2);
  lua_pushcfunction(L, eng_new);
  lua_setfield(L, -2, "engine");
}

/* }====================================================== */
