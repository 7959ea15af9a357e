/*
** engine.c — the engine behind a client: one libcurl multi handle, the
** sockets and timer libcurl asks us to watch, and the loop that drives
** transfers and dispatches callbacks.
**
** Everything runs on the Lua thread that owns the client. The engine uses
** libcurl's socket API (CURLMOPT_SOCKETFUNCTION / TIMERFUNCTION): libcurl
** tells us which sockets and which deadline matter, we wait on exactly
** those (epoll on Linux, poll() elsewhere), and hand ready sockets back
** with curl_multi_socket_action. The same state serves an external event
** loop (luv, an engine's poller): `watch` reports the sockets and the
** timer, `act` feeds readiness back.
**
** One drive of the loop (aigc_engine_drive):
**   1. wait (epoll / poll) until a socket is ready, a deadline passes or `timeout`;
**   2. let libcurl act on ready sockets and on its timer;
**   3. collect finished transfers (curl_multi_info_read) and remove them;
**   4. fire our own timers: retries, stream idle timeouts, [DONE] grace;
**   5. start queued requests while slots are free (max_concurrency);
**   6. dispatch: stream events and completions run their Lua callbacks.
** libcurl callbacks never call Lua; steps 1-5 never call Lua either, so a
** Lua error can only happen in step 6, where it is caught per callback.
**
** Blocking calls are "submit, then drive until this request is done": the
** same loop as step(), never a separate easy-perform path.
**
** THE RE-ENTRANCY RULE (aigc.h, docs/ARCHITECTURE.md): any Lua allocation
** may run a finalizer that calls any aigc function. Here that means: every
** walk of a request list that can allocate pops from a list head or
** re-reads its cursor (a finalizer may unlink anything); the Lua part of a
** drive (step 6) runs under lua_pcall, so an escaping error restores the
** counters (dispatching, stepping, reporting, current) and ends the
** request being delivered before it is raised again; step() and close()
** re-check e->closed after anything that runs Lua.
** THE LIFECYCLE CONTRACT: ends (on_done/on_error, waiters) run only here,
** in the dispatch of a drive or in close() (not in a finalizer); counts are
** aigc_engine_count(); callback errors go through aigc_engine_report.
*/
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/epoll.h>
#include <sys/socket.h>
#define AIGC_EPOLL 1
#endif

#include "aigc.h"

double aigc_now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

aigc_engine *aigc_check_engine (lua_State *L, int idx) {
  aigc_engine *e = (aigc_engine *)luaL_checkudata(L, idx, AIGC_ENGINE_MT);
  if (e->closed || e->closing)
    luaL_error(L, "attempt to use a closed client");
  return e;
}


/*
** {======================================================
** Lists: every request, the FIFO queue, the ready list
** =======================================================
*/

void aigc_engine_link (aigc_engine *e, aigc_request *r) {
  r->engine = e;
  r->all_prev = NULL;
  r->all_next = e->all;
  if (e->all)
    e->all->all_prev = r;
  e->all = r;
}

static void queue_remove (aigc_engine *e, aigc_request *r) {
  aigc_request **pp = &e->q_head, *prev = NULL;
  if (!r->in_queue)
    return;
  while (*pp != NULL && *pp != r) {
    prev = *pp;
    pp = &(*pp)->q_next;
  }
  if (*pp == r) {
    *pp = r->q_next;
    if (e->q_tail == r)
      e->q_tail = prev;
    e->queued--;
  }
  r->q_next = NULL;
  r->in_queue = 0;
}

static void queue_push (aigc_engine *e, aigc_request *r) {
  r->q_next = NULL;
  if (e->q_tail)
    e->q_tail->q_next = r;
  else
    e->q_head = r;
  e->q_tail = r;
  r->in_queue = 1;
  e->queued++;
}

void aigc_engine_ready (aigc_engine *e, aigc_request *r) {
  if (r->in_ready)
    return;
  r->r_next = NULL;
  r->r_prev = e->r_tail;
  if (e->r_tail)
    e->r_tail->r_next = r;
  else
    e->r_head = r;
  e->r_tail = r;
  r->in_ready = 1;
}

void aigc_engine_unready (aigc_engine *e, aigc_request *r) {
  if (!r->in_ready)
    return;
  if (r->r_prev)
    r->r_prev->r_next = r->r_next;
  else
    e->r_head = r->r_next;
  if (r->r_next)
    r->r_next->r_prev = r->r_prev;
  else
    e->r_tail = r->r_prev;
  r->r_prev = r->r_next = NULL;
  r->in_ready = 0;
}

/*
** Takes r out of everything the engine knows: libcurl, the queue, the
** ready list, the list of all requests. Pure C: safe from __gc, which may
** run at any allocation, even while the engine walks its lists (every walk
** that can allocate pops from a list head instead of holding a cursor).
*/
void aigc_engine_unlink (aigc_engine *e, aigc_request *r) {
  if (r->in_multi) {
    curl_multi_remove_handle(e->multi, r->easy);
    r->in_multi = 0;
  }
  queue_remove(e, r);
  aigc_engine_unready(e, r);
  if (r->has_slot) {
    r->has_slot = 0;
    e->running--;
  }
  aigc_engine_clear_end(e, r);
  if (e->current == r)
    e->current = NULL;
  if (r->all_prev)
    r->all_prev->all_next = r->all_next;
  else if (e->all == r)
    e->all = r->all_next;
  if (r->all_next)
    r->all_next->all_prev = r->all_prev;
  r->all_prev = r->all_next = NULL;
  r->engine = NULL;
}

/* A request's end is now to be delivered by the loop. */
void aigc_engine_set_end (aigc_engine *e, aigc_request *r) {
  if (!r->end_pending) {
    r->end_pending = 1;
    if (e != NULL)
      e->ends++;
  }
  if (e != NULL)
    aigc_engine_ready(e, r);
}

void aigc_engine_clear_end (aigc_engine *e, aigc_request *r) {
  if (r->end_pending) {
    r->end_pending = 0;
    if (e != NULL)
      e->ends--;
  }
}

/*
** What step(), act() and active() count: requests queued or running, and
** those whose end (on_done/on_error, a waiter) the loop has still to run —
** so that `while client:step() > 0 do end` delivers everything.
*/
int aigc_engine_count (const aigc_engine *e) {
  if (e->closed)
    return e->ends;
  return e->running + e->queued + e->ends;
}

/* }====================================================== */


/*
** {======================================================
** Lua-side bookkeeping: which requests the engine keeps alive
** =======================================================
*/

/*
** Every live request is in the weak table, so the engine can find its
** userdata from the C pointer. A request with callbacks (or a waiting
** coroutine) is also in the strong table: someone expects to hear from it
** even if the script kept no reference. A request without either that the
** script dropped is unreachable, so its __gc cancels it.
*/
void aigc_engine_hold (lua_State *L, int eidx, aigc_request *r, int ridx, int strong) {
  ridx = lua_absindex(L, ridx);
  lua_getiuservalue(L, eidx, AIGC_EN_WEAK);
  lua_pushlightuserdata(L, r);
  lua_pushvalue(L, ridx);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  if (strong && !r->strong) {
    lua_getiuservalue(L, eidx, AIGC_EN_STRONG);
    lua_pushlightuserdata(L, r);
    lua_pushvalue(L, ridx);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    r->strong = 1;
  }
}

void aigc_engine_drop (lua_State *L, int eidx, aigc_request *r) {
  int slot;
  for (slot = AIGC_EN_STRONG; slot <= AIGC_EN_WEAK; slot++) {
    lua_getiuservalue(L, eidx, slot);
    lua_pushlightuserdata(L, r);
    lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  }
  r->strong = 0;
}

/* Pushes r's userdata; returns 0 (pushing nothing) if it is being collected. */
int aigc_engine_push_request (lua_State *L, int eidx, aigc_request *r) {
  lua_getiuservalue(L, eidx, AIGC_EN_WEAK);
  lua_pushlightuserdata(L, r);
  if (lua_rawget(L, -2) == LUA_TUSERDATA) {
    lua_remove(L, -2);
    return 1;
  }
  lua_pop(L, 2);
  return 0;
}

/*
** {------------------------------------------------------
** Interrupts
**
** The standalone interpreter's Ctrl-C installs a debug hook from its
** signal handler (lua.c: lua_sethook(L, lstop, ...)); the hook raises
** "interrupted!" at the next Lua instruction or call. Hosts that stop a
** runaway script do the same. aigc must let that error through, not
** swallow it as a callback error, and must not sleep through it: waits
** wake on EINTR and at least every AIGC_WAIT_SLICE to look for a newly
** installed hook, and give it a Lua call to fire in (the probe).
** -------------------------------------------------------
*/

/* Registry keys (their addresses). */
static const char interrupt_key = 'i';   /* the last error raised in a hook */
static const char probe_key = 'p';       /* a Lua function of one instruction */

void aigc_hooks_snap (lua_State *L, aigc_hooks *h) {
  lua_State *main;
  h->hook = lua_gethook(L);
  h->mask = lua_gethookmask(L);
  h->count = lua_gethookcount(L);
  main = aigc_main_thread(L);
  if (main != NULL && main != L) {
    h->main_hook = lua_gethook(main);
    h->main_mask = lua_gethookmask(main);
  }
  else {
    h->main_hook = NULL;
    h->main_mask = 0;
  }
}

int aigc_hooks_changed (lua_State *L, const aigc_hooks *h) {
  aigc_hooks now;
  aigc_hooks_snap(L, &now);
  if (now.hook != h->hook || now.mask != h->mask || now.count != h->count)
    return now.hook != NULL;   /* a hook removed is no interrupt */
  return now.main_hook != h->main_hook && now.main_hook != NULL;
}

static void mark_interrupt (lua_State *L, int idx) {
  lua_pushvalue(L, idx);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &interrupt_key);
}

/* At an outermost call (no drive under way): an old interrupt is history. */
void aigc_interrupt_forget (lua_State *L) {
  lua_pushboolean(L, 0);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &interrupt_key);
}

/* Loads the probe and makes the registry slots (so that setting them later
   allocates nothing). Called once by luaopen_aigc_core. */
void aigc_interrupt_open (lua_State *L) {
  aigc_interrupt_forget(L);
  if (luaL_loadstring(L, "return") != LUA_OK)
    lua_error(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &probe_key);
}

int aigc_is_interrupt (lua_State *L, int idx) {
  int yes;
  idx = lua_absindex(L, idx);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &interrupt_key) == LUA_TBOOLEAN) {
    lua_pop(L, 1);
    return 0;
  }
  yes = lua_rawequal(L, idx, -1);
  lua_pop(L, 1);
  return yes;
}

int aigc_interrupt_probe (lua_State *L, aigc_hooks *h) {
  aigc_hooks now;
  int status;
  aigc_hooks_snap(L, &now);
  if (now.hook != NULL) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &probe_key);
    status = lua_pcall(L, 0, 0, 0);   /* the hook runs at the call and its instruction */
    if (status != LUA_OK) {
      mark_interrupt(L, -1);
      return status;
    }
  }
  if (now.main_hook != h->main_hook && now.main_hook != NULL) {
    /* In a coroutine, the hook went to the main thread (lua.c sets it on
       the state it runs): stop here, the main thread's code will see it. */
    lua_pushliteral(L, "interrupted!");
    mark_interrupt(L, -1);
    return LUA_ERRRUN;
  }
  aigc_hooks_snap(L, h);
  return LUA_OK;
}

/*
** Whether we run inside a __gc finalizer. Lua 5.4.4+ refuses lua_gc there
** (it returns -1); otherwise (and as a check) a finalizer shows on the
** stack as the metamethod "__gc".
*/
int aigc_in_finalizer (lua_State *L) {
  lua_Debug ar;
  int level;
  if (aigc_gc_refused(L))
    return 1;
  for (level = 0; lua_getstack(L, level, &ar); level++) {
    if (lua_getinfo(L, "n", &ar) && aigc_frame_is_finalizer(&ar))
      return 1;
  }
  return 0;
}

/* }------------------------------------------------------ */

/*
** The message handler of aigc_pcall: adds a traceback, except to an error
** object (a table) and to an error raised inside a debug hook — an
** interrupt, which is marked and passed through untouched so that it can
** propagate as it would from any Lua code.
*/
static int traceback_handler (lua_State *L) {
  lua_Debug ar;
  const char *msg;
  int level;
  /* A frame called by the hook mechanism is named "hook": the handler
     itself when a C hook (lua.c's) raised, the Lua function given to
     debug.sethook (or what it called) otherwise. */
  for (level = 0; level < 4 && lua_getstack(L, level, &ar); level++) {
    if (lua_getinfo(L, "n", &ar) && aigc_frame_is_hook(&ar)) {
      lua_settop(L, 1);
      mark_interrupt(L, 1);
      return 1;
    }
  }
  if (aigc_hook_error(L, 1)) {
    lua_settop(L, 1);
    mark_interrupt(L, 1);
    return 1;
  }
  msg = lua_tostring(L, 1);
  if (msg == NULL && !lua_isnoneornil(L, 1))
    return 1;   /* a non-string error object (an aigc error table): keep it */
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/*
** Calls the function below `nargs` arguments on the stack under lua_pcall
** with a traceback handler. Returns the pcall status; on error the error
** (message with traceback) is left on the stack. An interrupt is not
** returned: it is raised again at once (see engine drive for who restores
** what on the way out).
*/
int aigc_pcall (lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;   /* the function's index */
  int status;
  lua_pushcfunction(L, traceback_handler);
  lua_insert(L, base);
  status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (status != LUA_OK && aigc_is_interrupt(L, -1))
    lua_error(L);
  return status;
}

/* Writes the error at idx to stderr, one report. */
static void write_error (lua_State *L, int idx, const char *why) {
  fprintf(stderr, "aigc: %s: %s\n", why, luaL_tolstring(L, idx, NULL));
  fflush(stderr);
  lua_pop(L, 1);
}

/*
** An error raised by Lua code the engine ran, where it cannot fail a
** request: on_done/on_error, a waiter, a spawned task, the log function,
** the watch callbacks. Reported exactly once: to the client's
** error_handler if it has one (if the handler itself raises, both errors
** go to stderr); else kept in the engine's list, which the next step()
** returns (beyond AIGC_MAX_KEPT_ERRORS kept, to stderr instead). What is
** still kept when the client is closed or collected goes to stderr.
*/
void aigc_engine_report (lua_State *L, int eidx, int erridx) {
  lua_Integer n;
  erridx = lua_absindex(L, erridx);
  aigc_engine_scrub(L, eidx, erridx);   /* no secret on stderr or in step()'s list */
  if (lua_getiuservalue(L, eidx, AIGC_EN_ERRHANDLER) == LUA_TFUNCTION) {
    lua_pushvalue(L, erridx);
    if (aigc_pcall(L, 1, 0) == LUA_OK)
      return;
    write_error(L, -1, "error in the client's error_handler");
    lua_pop(L, 1);
    write_error(L, erridx, "error in a callback, given to the error_handler that failed");
    return;
  }
  lua_pop(L, 1);
  if (lua_getiuservalue(L, eidx, AIGC_EN_ERRORS) != LUA_TTABLE) {   /* cannot be: kept a table */
    lua_pop(L, 1);
    write_error(L, erridx, "error in a callback");
    return;
  }
  n = (lua_Integer)lua_rawlen(L, -1);
  if (n >= AIGC_MAX_KEPT_ERRORS) {
    lua_pop(L, 1);
    write_error(L, erridx, "error in a callback (too many kept for step() already)");
    return;
  }
  lua_pushvalue(L, erridx);
  lua_rawseti(L, -2, n + 1);
  lua_pop(L, 1);
}

/* Writes what no step() collected to stderr (the client closes). */
static void flush_errors (lua_State *L, int eidx) {
  lua_Integer i, n;
  if (lua_getiuservalue(L, eidx, AIGC_EN_ERRORS) == LUA_TTABLE) {
    n = (lua_Integer)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      write_error(L, -1, "error in a callback (no step() collected it before the client closed)");
      lua_pop(L, 1);
      lua_pushnil(L);
      lua_rawseti(L, -2, i);
    }
  }
  lua_pop(L, 1);
}

/* Calls the client's log function, if any, with (level, message). */
void aigc_engine_log (lua_State *L, int eidx, const char *level, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  eidx = lua_absindex(L, eidx);
  if (lua_getiuservalue(L, eidx, AIGC_EN_LOG) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return;
  }
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lua_pushstring(L, level);
  aigc_engine_push_log_line(L, eidx, msg, strlen(msg));   /* no secret in a log line */
  if (aigc_pcall(L, 2, 0) != LUA_OK) {
    aigc_engine_report(L, eidx, -1);
    lua_pop(L, 1);
  }
}

/* }====================================================== */


/*
** {======================================================
** Sockets and timer, as libcurl asks for them
** =======================================================
*/

static int watch_find (aigc_engine *e, curl_socket_t fd) {
  if (fd < 0 || (size_t)fd >= e->cap_slot_of_fd)
    return -1;
  return e->slot_of_fd[fd] - 1;
}

static short poll_events (int what) {
  short ev = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
    ev |= POLLIN;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
    ev |= POLLOUT;
  return ev;
}

static void ep_want (aigc_engine *e, curl_socket_t fd, short ev);
static void ep_unwatch (aigc_engine *e, curl_socket_t fd);

static int watch_set (aigc_engine *e, curl_socket_t fd, int what) {
  int slot = watch_find(e, fd);
  if (fd < 0)
    return -1;
  if (slot < 0) {
    if ((size_t)fd >= e->cap_slot_of_fd) {
      size_t ncap = e->cap_slot_of_fd ? e->cap_slot_of_fd : 64;
      int *p;
      while (ncap <= (size_t)fd)
        ncap *= 2;
      p = (int *)realloc(e->slot_of_fd, ncap * sizeof *p);
      if (p == NULL)
        return -1;
      memset(p + e->cap_slot_of_fd, 0, (ncap - e->cap_slot_of_fd) * sizeof *p);
      e->slot_of_fd = p;
      e->cap_slot_of_fd = ncap;
    }
    if (e->nwatched == e->capwatched) {
      size_t ncap = e->capwatched ? e->capwatched * 2 : 16;
      struct pollfd *p = (struct pollfd *)realloc(e->watched, ncap * sizeof *p);
      if (p == NULL)
        return -1;
      e->watched = p;
      e->capwatched = ncap;
    }
    slot = (int)e->nwatched++;
    e->watched[slot].fd = fd;
    e->slot_of_fd[fd] = slot + 1;
  }
  e->watched[slot].events = poll_events(what);
  e->watched[slot].revents = 0;
  ep_want(e, fd, e->watched[slot].events);
  return 0;
}

static void watch_remove (aigc_engine *e, curl_socket_t fd) {
  int slot = watch_find(e, fd);
  size_t last;
  if (slot < 0)
    return;
  last = e->nwatched - 1;
  if ((size_t)slot != last) {   /* move the last entry into the hole */
    e->watched[slot] = e->watched[last];
    e->slot_of_fd[e->watched[slot].fd] = slot + 1;
  }
  e->nwatched--;
  e->slot_of_fd[fd] = 0;
  ep_unwatch(e, fd);
}

/*
** {------------------------------------------------------
** The epoll set (Linux)
**
** It mirrors what libcurl asks to watch, with one difference: a socket
** libcurl stops watching (its transfer is over, the connection goes back
** to the pool) stays registered, parked, since the next request on that
** connection asks for it again at once: keep-alive costs no epoll_ctl per
** request. A parked socket that turns readable (the server closed it) is
** taken out when epoll reports it. Parking is safe only for sockets whose
** closing we hear of, so libcurl opens and closes its sockets through our
** callbacks (AIGC_EP_OWN); any other socket (a resolver's) is removed at
** once. On any epoll error the engine falls back to poll() for good: the
** watched array is always complete.
** -------------------------------------------------------
*/

#define AIGC_EP_IN   1   /* registered for reading */
#define AIGC_EP_OUT  2   /* registered for writing */
#define AIGC_EP_OWN  4   /* opened by on_open_socket, closed by on_close_socket */

#ifdef AIGC_EPOLL

#define AIGC_EP_UNSET (-2)   /* epfd before the first socket: made then */

static void ep_disable (aigc_engine *e) {
  if (e->epfd >= 0)
    close(e->epfd);
  e->epfd = -1;
}

/* Whether the epoll set is there, making it at the first socket (a client
   that never sends holds no descriptor for it). */
static int ep_on (aigc_engine *e) {
  if (e->epfd == AIGC_EP_UNSET)
    e->epfd = epoll_create1(EPOLL_CLOEXEC);   /* -1: poll() it is */
  return e->epfd >= 0;
}

static int ep_grow (aigc_engine *e, curl_socket_t fd) {
  if ((size_t)fd >= e->cap_ep_fd) {
    size_t ncap = e->cap_ep_fd ? e->cap_ep_fd : 64;
    unsigned char *p;
    while (ncap <= (size_t)fd)
      ncap *= 2;
    p = (unsigned char *)realloc(e->ep_fd, ncap);
    if (p == NULL)
      return -1;
    memset(p + e->cap_ep_fd, 0, ncap - e->cap_ep_fd);
    e->ep_fd = p;
    e->cap_ep_fd = ncap;
  }
  return 0;
}

/* Registers fd for the poll events `ev` (POLLIN / POLLOUT). */
static void ep_want (aigc_engine *e, curl_socket_t fd, short ev) {
  struct epoll_event ee;
  int want = ((ev & POLLIN) ? AIGC_EP_IN : 0) | ((ev & POLLOUT) ? AIGC_EP_OUT : 0);
  int cur, op, rc;
  if (fd < 0 || !ep_on(e))
    return;
  if (ep_grow(e, fd) != 0) {
    ep_disable(e);
    return;
  }
  cur = e->ep_fd[fd] & (AIGC_EP_IN | AIGC_EP_OUT);
  /* Ours, and registered as wanted: nothing to do (a parked keep-alive
     socket asked for again). Another socket is registered again each
     time: its owner may have closed it and made another under the same
     number without telling us. */
  if (cur == want && (e->ep_fd[fd] & AIGC_EP_OWN))
    return;
  memset(&ee, 0, sizeof ee);
  ee.events = ((want & AIGC_EP_IN) ? EPOLLIN : 0u) | ((want & AIGC_EP_OUT) ? EPOLLOUT : 0u);
  ee.data.fd = fd;
  op = cur ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  rc = epoll_ctl(e->epfd, op, fd, &ee);
  if (rc != 0 && op == EPOLL_CTL_MOD && errno == ENOENT)
    rc = epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ee);
  else if (rc != 0 && op == EPOLL_CTL_ADD && errno == EEXIST)
    rc = epoll_ctl(e->epfd, EPOLL_CTL_MOD, fd, &ee);
  if (rc != 0) {
    ep_disable(e);
    return;
  }
  e->ep_fd[fd] = (unsigned char)((e->ep_fd[fd] & AIGC_EP_OWN) | want);
}

/* Takes fd out of the epoll set. */
static void ep_drop (aigc_engine *e, curl_socket_t fd) {
  if (fd < 0 || (size_t)fd >= e->cap_ep_fd || !(e->ep_fd[fd] & (AIGC_EP_IN | AIGC_EP_OUT)))
    return;
  if (e->epfd >= 0)
    epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
  e->ep_fd[fd] &= AIGC_EP_OWN;
}

/* libcurl no longer watches fd: park it if we will hear of its closing. */
static void ep_unwatch (aigc_engine *e, curl_socket_t fd) {
  if (fd >= 0 && (size_t)fd < e->cap_ep_fd && !(e->ep_fd[fd] & AIGC_EP_OWN))
    ep_drop(e, fd);
}

static curl_socket_t on_open_socket (void *clientp, curlsocktype purpose,
                                     struct curl_sockaddr *addr) {
  aigc_engine *e = (aigc_engine *)clientp;
  curl_socket_t fd = socket(addr->family, addr->socktype, addr->protocol);
  (void)purpose;
  /* A new socket is in no epoll set, whatever a closed one with the same
     number was. */
  if (fd >= 0 && e->ep_fd != NULL && (size_t)fd < e->cap_ep_fd)
    e->ep_fd[fd] = 0;
  if (fd >= 0 && ep_on(e) && ep_grow(e, fd) == 0)
    e->ep_fd[fd] = AIGC_EP_OWN;
  return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static int on_close_socket (void *clientp, curl_socket_t fd) {
  aigc_engine *e = (aigc_engine *)clientp;
  /* Closing takes it out of the epoll set (the kernel's doing). */
  if (fd >= 0 && e->ep_fd != NULL && (size_t)fd < e->cap_ep_fd)
    e->ep_fd[fd] = 0;
  return close(fd);
}

#else

static void ep_want (aigc_engine *e, curl_socket_t fd, short ev) { (void)e; (void)fd; (void)ev; }
static void ep_unwatch (aigc_engine *e, curl_socket_t fd) { (void)e; (void)fd; }

#endif

void aigc_engine_socket_options (aigc_engine *e, CURL *easy) {
#ifdef AIGC_EPOLL
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, (void *)e);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, (void *)e);
#else
  (void)e; (void)easy;
#endif
}

/* A handle that outlives its engine must not call back into it. */
static void forget_socket_options (CURL *easy) {
#ifdef AIGC_EPOLL
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, NULL);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, NULL);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, NULL);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, NULL);
#else
  (void)easy;
#endif
}

/* }------------------------------------------------------ */

/* Records a change for an external loop's watcher. */
static void note_change (aigc_engine *e, curl_socket_t fd, int what) {
  aigc_sockchange *c;
  if (!e->watching)
    return;
  if (e->nchanges == e->capchanges) {
    size_t ncap = e->capchanges ? e->capchanges * 2 : 16;
    aigc_sockchange *p = (aigc_sockchange *)realloc(e->changes, ncap * sizeof *p);
    if (p == NULL)
      return;   /* the watcher will see the full set on its next sockets() */
    e->changes = p;
    e->capchanges = ncap;
  }
  c = &e->changes[e->nchanges++];
  c->fd = fd;
  c->what = what;
}

static int on_socket (CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  aigc_engine *e = (aigc_engine *)userp;
  (void)easy; (void)socketp;
  if (what == CURL_POLL_REMOVE)
    watch_remove(e, fd);
  else if (watch_set(e, fd, what) != 0)
    return -1;   /* out of memory: libcurl fails the transfer */
  note_change(e, fd, what);
  return 0;
}

static int on_timer (CURLM *multi, long timeout_ms, void *userp) {
  aigc_engine *e = (aigc_engine *)userp;
  (void)multi;
  e->curl_deadline = timeout_ms < 0 ? -1.0 : aigc_now() + (double)timeout_ms / 1000.0;
  return 0;
}

/* }====================================================== */


/*
** {======================================================
** Driving
** =======================================================
*/

/* The earliest moment something needs doing, or -1 if nothing is timed. */
static double next_deadline (aigc_engine *e) {
  double d = e->curl_deadline;
  aigc_request *r;
  for (r = e->all; r != NULL; r = r->all_next) {
    if (r->deadline_at > 0 && !r->transfer_done && !aigc_terminal(r->state)
        && (d < 0 || r->deadline_at < d))
      d = r->deadline_at;
    if (r->state != AIGC_RUNNING)
      continue;
    if (r->retry_at > 0 && (d < 0 || r->retry_at < d))
      d = r->retry_at;
    if (r->idle_deadline > 0 && (d < 0 || r->idle_deadline < d))
      d = r->idle_deadline;
    if (r->done_deadline > 0 && (d < 0 || r->done_deadline < d))
      d = r->done_deadline;
  }
  return d;
}

/* Gives the transfer back to libcurl for a (new) attempt. */
static void begin_attempt (aigc_engine *e, aigc_request *r) {
  CURLMcode mc;
  if (aigc_request_setup_attempt(r) != 0) {
    r->transfer_done = 1;
    r->curl_code = CURLE_OUT_OF_MEMORY;
    aigc_engine_ready(e, r);
    return;
  }
  mc = curl_multi_add_handle(e->multi, r->easy);
  if (mc != CURLM_OK) {
    r->transfer_done = 1;
    r->curl_code = CURLE_FAILED_INIT;
    snprintf(r->errbuf, sizeof r->errbuf, "%s", curl_multi_strerror(mc));
    aigc_engine_ready(e, r);
    return;
  }
  r->in_multi = 1;
}

/* Starts r now if a slot is free, else queues it (FIFO). */
void aigc_engine_start (aigc_engine *e, aigc_request *r) {
  if (e->max_concurrency > 0 && e->running >= e->max_concurrency) {
    r->state = AIGC_QUEUED;
    queue_push(e, r);
    return;
  }
  r->state = AIGC_RUNNING;
  r->has_slot = 1;
  e->running++;
  begin_attempt(e, r);
}

static void start_queued (aigc_engine *e) {
  if (e->closing || e->closed)
    return;
  while (e->q_head != NULL
         && (e->max_concurrency <= 0 || e->running < e->max_concurrency)) {
    aigc_request *r = e->q_head;
    queue_remove(e, r);
    aigc_engine_start(e, r);
  }
}

/* Takes r out of libcurl, the queue and its slot, starting nothing. */
static void release_quiet (aigc_engine *e, aigc_request *r) {
  if (r->in_multi) {
    curl_multi_remove_handle(e->multi, r->easy);
    r->in_multi = 0;
  }
  queue_remove(e, r);
  if (r->has_slot) {
    r->has_slot = 0;
    e->running--;
  }
}

/* A request no longer needs its slot: let a queued one have it. */
void aigc_engine_release (aigc_engine *e, aigc_request *r) {
  if (r->in_multi) {
    curl_multi_remove_handle(e->multi, r->easy);
    r->in_multi = 0;
  }
  queue_remove(e, r);
  if (r->has_slot) {
    r->has_slot = 0;
    e->running--;
  }
  start_queued(e);
}

/*
** An easy handle for a new request: an idle one (*fresh = 0: it has the
** engine's options already), else a new one (*fresh = 1), or NULL.
*/
CURL *aigc_engine_take_easy (aigc_engine *e, int *fresh) {
  *fresh = e->neasy_pool == 0;
  if (e->neasy_pool > 0)
    return e->easy_pool[--e->neasy_pool];
  return curl_easy_init();
}

/*
** Takes back the handle of a request that has ended (out of libcurl). Its
** options stay as they were: the next request's setup sets every one that
** can differ between requests.
*/
void aigc_engine_recycle_easy (aigc_engine *e, CURL *easy) {
  if (e->closed || e->neasy_pool == AIGC_EASY_POOL)
    curl_easy_cleanup(easy);
  else
    e->easy_pool[e->neasy_pool++] = easy;
}

/* Hands finished transfers to the ready list. */
static void collect_finished (aigc_engine *e) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
    aigc_request *r = NULL;
    CURL *easy = msg->easy_handle;
    CURLcode code = msg->data.result;
    if (msg->msg != CURLMSG_DONE)
      continue;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    /* msg is invalid after remove_handle: everything is read above. */
    curl_multi_remove_handle(e->multi, easy);
    if (r == NULL)
      continue;
    r->in_multi = 0;
    r->transfer_done = 1;
    r->curl_code = code;
    aigc_engine_ready(e, r);
  }
}

/* Our own timers: retries due, idle streams, servers slow to end after [DONE]. */
/*
** The whole call's deadline passed: the transfer ends here (whatever it
** was doing: queued, connecting, between retries, streaming) and the
** dispatch turns it into a "timeout" error.
*/
static void deadline_passed (aigc_engine *e, aigc_request *r) {
  if (r->in_queue) {
    queue_remove(e, r);
    r->state = AIGC_RUNNING;   /* without a slot: it never had one */
  }
  if (r->in_multi) {
    curl_multi_remove_handle(e->multi, r->easy);
    r->in_multi = 0;
  }
  r->retry_at = 0;
  r->idle_deadline = 0;
  r->done_deadline = 0;
  r->transfer_done = 1;
  r->curl_code = CURLE_OPERATION_TIMEDOUT;
  r->abort_reason = AIGC_ABORT_DEADLINE;
  aigc_engine_ready(e, r);
}

static void fire_timers (aigc_engine *e, double now) {
  aigc_request *r;
  for (r = e->all; r != NULL; r = r->all_next) {
    if (r->deadline_at > 0 && now >= r->deadline_at && !r->transfer_done
        && (r->state == AIGC_RUNNING || r->state == AIGC_QUEUED)) {
      deadline_passed(e, r);
      continue;
    }
    if (r->state != AIGC_RUNNING)
      continue;
    if (r->retry_at > 0 && now >= r->retry_at && !r->delivering) {
      r->retry_at = 0;
      begin_attempt(e, r);
      continue;
    }
    if (!r->in_multi)
      continue;
    if (r->done_deadline > 0 && now >= r->done_deadline) {
      /* [DONE] arrived long ago; the rest of the response does not matter. */
      curl_multi_remove_handle(e->multi, r->easy);
      r->in_multi = 0;
      r->transfer_done = 1;
      r->curl_code = CURLE_OK;
      r->done_deadline = 0;
      aigc_engine_ready(e, r);
    }
    else if (r->idle_deadline > 0 && now >= r->idle_deadline) {
      curl_multi_remove_handle(e->multi, r->easy);
      r->in_multi = 0;
      r->transfer_done = 1;
      r->curl_code = CURLE_OPERATION_TIMEDOUT;
      r->abort_reason = AIGC_ABORT_IDLE;
      r->idle_deadline = 0;
      aigc_engine_ready(e, r);
    }
  }
}

static int curl_mask (short revents) {
  int mask = 0;
  if (revents & (POLLIN | POLLHUP))
    mask |= CURL_CSELECT_IN;
  if (revents & POLLOUT)
    mask |= CURL_CSELECT_OUT;
  if (revents & (POLLERR | POLLNVAL))
    mask |= CURL_CSELECT_ERR;
  return mask;
}

static void socket_action (aigc_engine *e, curl_socket_t fd, int mask) {
  int running;
  e->in_curl = 1;
  curl_multi_socket_action(e->multi, fd, mask, &running);
  e->in_curl = 0;
}

/* Lets libcurl act on its timer if it is due. */
static void act_on_timer (aigc_engine *e) {
  if (e->curl_deadline >= 0 && aigc_now() >= e->curl_deadline) {
    e->curl_deadline = -1;
    socket_action(e, CURL_SOCKET_TIMEOUT, 0);
  }
}

/*
** Waits up to `timeout` seconds (0: not at all) for a watched socket, then
** lets libcurl act on whatever is ready and on its timer.
*/
/* Whether the ready list holds a request the next dispatch will run (one
   being delivered further up the stack is skipped: waiting is right then). */
static int dispatch_due (const aigc_engine *e) {
  const aigc_request *r;
  for (r = e->r_head; r != NULL; r = r->r_next)
    if (!r->delivering)
      return 1;
  return 0;
}

static void poll_and_act (lua_State *L, aigc_engine *e, double timeout, const aigc_hooks *hooks) {
  double d = next_deadline(e), end;
  int ms, n, i, nready = 0;
  if (dispatch_due(e))
    timeout = 0;       /* callbacks are waiting: do not sleep */
  if (d >= 0) {
    double until = d - aigc_now();
    if (until < timeout)
      timeout = until > 0 ? until : 0;
  }
  end = aigc_now() + timeout;
  /* socket_action may add or remove watched sockets: act on a copy. */
  if (e->capready < e->nwatched) {
    struct pollfd *p = (struct pollfd *)realloc(e->ready, e->nwatched * sizeof *p);
    if (p != NULL) {
      e->ready = p;
      e->capready = e->nwatched;
    }
  }
#ifdef AIGC_EPOLL
  if (e->epfd >= 0) {
    size_t want = e->capready > 16 ? e->capready : 16;
    if (e->cap_ep_out < want) {
      void *p = realloc(e->ep_out, want * sizeof(struct epoll_event));
      if (p != NULL) {
        e->ep_out = p;
        e->cap_ep_out = want;
      }
      else if (e->ep_out == NULL)
        ep_disable(e);   /* out of memory: poll() below */
    }
  }
#endif
again:
  /* Sleep in slices: a wait notices an interrupt (a newly installed debug
     hook) within AIGC_WAIT_SLICE even when the signal went to another
     thread (libcurl's resolver) and did not break the wait with EINTR. */
  {
    double left = end - aigc_now();
    if (left > AIGC_WAIT_SLICE)
      left = AIGC_WAIT_SLICE;
    /* Round up, so that we do not wake a hair before a deadline and spin. */
    ms = left <= 0 ? 0 : (int)ceil(left * 1000.0);
  }
#ifdef AIGC_EPOLL
  if (e->epfd >= 0) {
    struct epoll_event *out = (struct epoll_event *)e->ep_out;
    n = e->nwatched == 0 && ms == 0 ? 0 : epoll_wait(e->epfd, out, (int)e->cap_ep_out, ms);
    for (i = 0; i < n; i++) {
      int fd = out[i].data.fd, slot = watch_find(e, fd);
      short rev = 0;
      if (slot < 0) {   /* parked, and the server closed it (or sent junk) */
        ep_drop(e, fd);
        continue;
      }
      if (out[i].events & EPOLLIN) rev |= POLLIN;
      if (out[i].events & EPOLLOUT) rev |= POLLOUT;
      if (out[i].events & EPOLLHUP) rev |= POLLHUP;
      if (out[i].events & EPOLLERR) rev |= POLLERR;
      if ((size_t)nready < e->capready) {
        e->ready[nready].fd = fd;
        e->ready[nready].revents = rev;
        nready++;
      }
    }
  }
  else
#endif
  {
    /* Nothing to watch and no time to wait (a request just added, before
       libcurl has a socket for it): a system call for nothing, skipped. */
    n = e->nwatched == 0 && ms == 0 ? 0 : poll(e->watched, (nfds_t)e->nwatched, ms);
    for (i = 0; n > 0 && i < (int)e->nwatched && (size_t)nready < e->capready; i++)
      if (e->watched[i].revents != 0)
        e->ready[nready++] = e->watched[i];
  }
  /* Nothing yet (n < 0 is EINTR: a signal, perhaps Ctrl-C: go and see). */
  if (n == 0 && ms > 0 && aigc_now() < end && (hooks == NULL || !aigc_hooks_changed(L, hooks)))
    goto again;
  for (i = 0; i < nready; i++)
    socket_action(e, e->ready[i].fd, curl_mask(e->ready[i].revents));
  act_on_timer(e);
}

/*
** Dispatches the ready list: at most `budget` callbacks (0: no limit).
** A request being delivered further up the stack (a nested drive, from a
** blocking call made inside its callback or a finalizer) is skipped and
** goes to the tail of the list, marked with this pass: when the head is a
** request this pass skipped, the pass is over. Every skipped request stays
** in the list, so an error escaping this function loses none.
*/
static int dispatch (lua_State *L, int eidx, aigc_engine *e, int budget) {
  aigc_request *r, *outer = e->current;
  unsigned pass = ++e->pass;
  int count = 0;
  e->dispatching++;
  while ((r = e->r_head) != NULL && (budget <= 0 || count < budget)) {
    aigc_engine_unready(e, r);
    if (r->delivering) {
      if (r->skip_pass == pass) {   /* around once: the rest waits */
        aigc_engine_ready(e, r);
        break;
      }
      r->skip_pass = pass;
      aigc_engine_ready(e, r);
      continue;
    }
    if (!aigc_engine_push_request(L, eidx, r))
      continue;   /* being collected: its __gc unlinks it */
    e->current = r;
    count += aigc_request_dispatch(L, eidx, lua_gettop(L), budget > 0 ? budget - count : 0);
    e->current = outer;
    lua_pop(L, 1);
  }
  e->dispatching--;
  return count;
}

static void report_watch_changes (lua_State *L, int eidx, aigc_engine *e);

/* The Lua part of one turn, run under lua_pcall: engine at 1, budget at 2. */
static int drive_lua (lua_State *L) {
  aigc_engine *e = (aigc_engine *)lua_touserdata(L, 1);
  int count = dispatch(L, 1, e, (int)lua_tointeger(L, 2));
  if (!e->closed) {
    /* Callbacks may have submitted requests: give them their first kick
       now rather than one frame later. */
    act_on_timer(e);
    collect_finished(e);
    report_watch_changes(L, 1, e);
  }
  lua_pushinteger(L, count);
  return 1;
}

/*
** One turn of the loop (see the top of this file and aigc.h). Steps 1-5
** are C only; step 6 (dispatch) runs under lua_pcall, so that an error
** escaping it — Lua out of memory while a reply becomes tables, an
** interrupt — finds the engine consistent: the counters are restored, the
** request being delivered is unpinned and ended (kind "limit" for memory,
** "canceled" otherwise), every other request stays where it was. The
** error is then left to the caller to raise.
*/
int aigc_engine_drive (lua_State *L, int eidx, double timeout, int budget,
                       aigc_hooks *hooks, int *status) {
  aigc_engine *e = (aigc_engine *)lua_touserdata(L, eidx);
  aigc_hooks own;
  aigc_request *saved_current = e->current, *r;
  int saved_dispatching = e->dispatching, saved_reporting = e->reporting;
  int st, count;
  *status = LUA_OK;
  if (!e->closed) {
    if (hooks == NULL) {
      aigc_hooks_snap(L, &own);
      hooks = &own;
    }
    poll_and_act(L, e, timeout, hooks);
    collect_finished(e);
    fire_timers(e, aigc_now());
    start_queued(e);
  }
  if (e->r_head == NULL && (e->closed || !e->watching))
    return 0;   /* nothing to dispatch, no watcher to tell */
  e->stepping++;
  lua_pushcfunction(L, drive_lua);
  lua_pushvalue(L, eidx);
  lua_pushinteger(L, budget);
  st = lua_pcall(L, 2, 1, 0);
  e->stepping--;
  if (st == LUA_OK) {
    count = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return count;
  }
  e->dispatching = saved_dispatching;
  e->reporting = saved_reporting;
  r = e->current;
  e->current = saved_current;
  if (r != NULL && r != saved_current) {
    aigc_request_unpin(r);
    if (!aigc_terminal(r->state)) {
      if (st == LUA_ERRMEM)
        aigc_request_end_static(L, eidx, r, AIGC_FAILED, "limit",
                                "not enough memory (Lua) to deliver the response");
      else
        aigc_request_end_static(L, eidx, r, AIGC_CANCELED, "canceled", aigc_is_interrupt(L, -1)
                                ? "interrupted" : "an error escaped while the response was delivered");
    }
  }
  *status = st;
  return 0;
}

/* }====================================================== */


/*
** {======================================================
** External event loops
** =======================================================
*/

static const char *what_name (int what) {
  switch (what) {
    case CURL_POLL_IN: return "in";
    case CURL_POLL_OUT: return "out";
    case CURL_POLL_INOUT: return "inout";
    case CURL_POLL_REMOVE: return "remove";
    default: return "none";
  }
}

/*
** Tells the watcher what changed since the last report: each socket
** (fd, "in" | "out" | "inout" | "remove") and the time until the next
** deadline (seconds, or nil for none). Called only outside libcurl.
*/
static void report_watch_changes (lua_State *L, int eidx, aigc_engine *e) {
  size_t i, n;
  double d, secs;
  if (!e->watching || e->reporting)
    return;
  e->reporting = 1;
  n = e->nchanges;
  for (i = 0; i < n && i < e->nchanges && !e->closed; i++) {
    aigc_sockchange c = e->changes[i];
    if (lua_getiuservalue(L, eidx, AIGC_EN_WATCH_SOCKET) == LUA_TFUNCTION) {
      lua_pushinteger(L, (lua_Integer)c.fd);
      lua_pushstring(L, what_name(c.what));
      if (aigc_pcall(L, 2, 0) != LUA_OK) {
        aigc_engine_report(L, eidx, -1);
        lua_pop(L, 1);
      }
    }
    else
      lua_pop(L, 1);
  }
  e->nchanges = 0;
  d = next_deadline(e);
  if (e->r_head != NULL)
    d = aigc_now();   /* callbacks pending: come back at once */
  if (!e->closed && d != e->reported_deadline) {
    e->reported_deadline = d;
    if (lua_getiuservalue(L, eidx, AIGC_EN_WATCH_TIMER) == LUA_TFUNCTION) {
      if (d < 0)
        lua_pushnil(L);
      else {
        secs = d - aigc_now();
        lua_pushnumber(L, secs > 0 ? secs : 0);
      }
      if (aigc_pcall(L, 1, 0) != LUA_OK) {
        aigc_engine_report(L, eidx, -1);
        lua_pop(L, 1);
      }
    }
    else
      lua_pop(L, 1);
  }
  e->reporting = 0;
}

/* report_watch_changes under lua_pcall (engine at 1): e->reporting is
   restored if an error escapes. */
static int watch_report_lua (lua_State *L) {
  report_watch_changes(L, 1, (aigc_engine *)lua_touserdata(L, 1));
  return 0;
}

/* eng:watch(socket_fn, timer_fn): hand the waiting to an external loop. */
static int eng_watch (lua_State *L) {
  aigc_engine *e = aigc_check_engine(L, 1);
  size_t i;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, 1, AIGC_EN_WATCH_SOCKET);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, 1, AIGC_EN_WATCH_TIMER);
  e->watching = 1;
  /* Report what is already watched, then the timer. */
  e->nchanges = 0;
  for (i = 0; i < e->nwatched; i++) {
    int what = (e->watched[i].events & POLLIN) && (e->watched[i].events & POLLOUT)
               ? CURL_POLL_INOUT
               : (e->watched[i].events & POLLIN) ? CURL_POLL_IN : CURL_POLL_OUT;
    note_change(e, e->watched[i].fd, what);
  }
  e->reported_deadline = -2;   /* force a timer report */
  lua_settop(L, 1);
  lua_pushcfunction(L, watch_report_lua);
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {   /* an interrupt, out of memory */
    e->reporting = 0;
    return lua_error(L);
  }
  return 0;
}

/*
** eng:act([fd, events]): the external loop says socket fd is ready
** (events: a string with 'r' and/or 'w', 'e' for an error), or, with no
** fd, that the timer expired. Acts, dispatches callbacks, reports changes.
*/
static int eng_act (lua_State *L) {
  aigc_engine *e = aigc_check_engine(L, 1);
  int status;
  if (e->dispatching)
    return luaL_error(L, "client:act() called from inside an aigc callback");
  if (lua_isnoneornil(L, 2)) {
    e->curl_deadline = -1;
    socket_action(e, CURL_SOCKET_TIMEOUT, 0);
  }
  else {
    lua_Integer fd = luaL_checkinteger(L, 2);
    const char *ev = luaL_optstring(L, 3, "r");
    int mask = 0;
    luaL_argcheck(L, fd >= 0 && fd <= INT32_MAX, 2, "not a file descriptor");
    if (strchr(ev, 'r')) mask |= CURL_CSELECT_IN;
    if (strchr(ev, 'w')) mask |= CURL_CSELECT_OUT;
    if (strchr(ev, 'e')) mask |= CURL_CSELECT_ERR;
    socket_action(e, (curl_socket_t)fd, mask);
  }
  lua_settop(L, 1);
  aigc_engine_drive(L, 1, 0, 0, NULL, &status);
  if (status != LUA_OK)
    return lua_error(L);
  lua_pushinteger(L, aigc_engine_count(e));
  return 1;
}

/* eng:sockets() -> { [fd] = "in" | "out" | "inout" } */
static int eng_sockets (lua_State *L) {
  aigc_engine *e = aigc_check_engine(L, 1);
  size_t i;
  lua_createtable(L, 0, (int)e->nwatched);
  for (i = 0; i < e->nwatched; i++) {
    short ev = e->watched[i].events;
    lua_pushstring(L, (ev & POLLIN) && (ev & POLLOUT) ? "inout" : (ev & POLLIN) ? "in" : "out");
    lua_rawseti(L, -2, (lua_Integer)e->watched[i].fd);
  }
  return 1;
}

/* eng:timeout() -> seconds until the next deadline, or nil */
static int eng_timeout (lua_State *L) {
  aigc_engine *e = aigc_check_engine(L, 1);
  double d = next_deadline(e);
  if (dispatch_due(e))
    d = aigc_now();
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
** The engine object
** =======================================================
*/

/*
** eng:step([timeout [, budget]]) -> active, errors
** Drives every transfer once: waits at most `timeout` seconds (default 0:
** never blocks) for network activity, and runs at most `budget` callbacks
** (default 0: all that are pending). Returns the number of requests still
** queued, running or with an end to deliver (aigc_engine_count), and the
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
  if (e->closing || (e->closed && e->ends == 0))
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
  aigc_engine_drive(L, 1, (double)timeout, budget > INT32_MAX ? INT32_MAX : (int)budget,
                    NULL, &status);
  if (status != LUA_OK)
    return lua_error(L);
  lua_pushinteger(L, aigc_engine_count(e));
  if (lua_getiuservalue(L, 1, AIGC_EN_ERRORS) != LUA_TTABLE || lua_rawlen(L, -1) == 0) {
    lua_pop(L, 1);
    return 1;
  }
  /* A fresh list first: if making it fails, the errors stay kept. */
  lua_newtable(L);
  lua_setiuservalue(L, 1, AIGC_EN_ERRORS);
  return 2;
}

/* eng:report(err): an error from Lua code the engine ran (a spawned task). */
static int eng_report (lua_State *L) {
  luaL_checkudata(L, 1, AIGC_ENGINE_MT);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  aigc_engine_report(L, 1, 2);
  return 0;
}

/*
** eng:set_scheduler(sched | nil): the Lua layer's task scheduler, for
** req:wait() in a task (request.c, wait_in_task): sched.tasks (a table
** whose keys are the task coroutines: a truthy value marks one),
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
    aigc_argerror(L, 1, "set_scheduler", "sched.resume: a function expected, got %s", luaL_typename(L, -1));
  lua_pushliteral(L, "token");
  lua_rawget(L, 2);
  lua_setiuservalue(L, 1, AIGC_EN_TOKEN);
  lua_setiuservalue(L, 1, AIGC_EN_RESUME);
  lua_setiuservalue(L, 1, AIGC_EN_TASKS);
  return 0;
}

/* eng:active() -> requests queued, running or with an end to deliver */
static int eng_active (lua_State *L) {
  aigc_engine *e = aigc_check_engine(L, 1);
  lua_pushinteger(L, aigc_engine_count(e));
  return 1;
}

static void free_config (aigc_engine *e) {
  free(e->base_url); e->base_url = NULL;
  free(e->query); e->query = NULL;
  free(e->model); e->model = NULL;
  free(e->ca_file); e->ca_file = NULL;
  free(e->ca_path); e->ca_path = NULL;
  free(e->proxy); e->proxy = NULL;
  curl_slist_free_all(e->headers); e->headers = NULL;
  curl_slist_free_all(e->stream_headers); e->stream_headers = NULL;
}

/* Delivers the ends close() left (engine at 1), under lua_pcall. */
static int close_deliver_lua (lua_State *L) {
  aigc_engine *e = (aigc_engine *)lua_touserdata(L, 1);
  dispatch(L, 1, e, 0);
  return 0;
}

/*
** Closes the engine. From close(): every request still pending is
** canceled, then their ends run — on_error(err) with kind "canceled", the
** tasks waiting on them resumed — as the client's last turn of the loop,
** unless close() was called inside a __gc finalizer: then they wait for
** the next step() (which a closed client accepts for that) or the
** request's wait(). From __gc (the client itself collected): nothing can
** drive it any more, so requests are canceled without callbacks.
** Then every request is detached (but one whose end is still to run: it
** stays in the ready list until it is delivered), and libcurl is cleaned
** up in its order: remove each easy handle, then the multi (the easy
** handles are cleaned up by their requests' __gc). Errors no step()
** collected go to stderr.
*/
static void engine_close (lua_State *L, int eidx, aigc_engine *e, int from_gc) {
  aigc_request *r, *next;
  int status = LUA_OK, keep_ends = 0;
  if (e->closed) {
    /* Already closed, or never opened: eng_new may have raised after
       copying part of the config (a bad header, say). */
    if (from_gc) {
      while ((r = e->all) != NULL) {   /* ends left undelivered: nobody can now */
        aigc_engine_unlink(e, r);
        aigc_request_detach(r);
      }
      flush_errors(L, eidx);
    }
    free_config(e);
    return;
  }
  if (e->closing)
    return;   /* close() inside close() (a callback it runs): the outer one ends it */
  e->closing = 1;
  if (!from_gc) {
    /* Canceling allocates nothing and runs no Lua: one walk does. */
    for (r = e->all; r != NULL; r = r->all_next) {
      if (aigc_terminal(r->state))
        continue;
      if (aigc_engine_push_request(L, eidx, r)) {
        aigc_request_cancel(L, lua_gettop(L), "the client was closed", 0);
        lua_pop(L, 1);
      }
      else
        r->state = AIGC_CANCELED;   /* being collected */
    }
    keep_ends = 1;
    if (!aigc_in_finalizer(L) && e->r_head != NULL) {
      int saved_dispatching = e->dispatching;
      aigc_request *saved_current = e->current;
      lua_pushcfunction(L, close_deliver_lua);
      lua_pushvalue(L, eidx);
      status = lua_pcall(L, 1, 0, 0);   /* an error is raised below, once closed */
      if (status != LUA_OK) {
        e->dispatching = saved_dispatching;
        e->current = saved_current;
      }
    }
  }
  e->closed = 1;
  e->closing = 0;
  for (r = e->all; r != NULL; r = next) {
    next = r->all_next;
    if (!aigc_terminal(r->state))
      r->state = AIGC_CANCELED;
    if (r->easy != NULL)
      forget_socket_options(r->easy);
    if (keep_ends && r->end_pending) {   /* still to be told: stays findable */
      release_quiet(e, r);
      continue;
    }
    aigc_engine_unlink(e, r);
    aigc_request_detach(r);
  }
  while (e->neasy_pool > 0)
    curl_easy_cleanup(e->easy_pool[--e->neasy_pool]);
  if (e->multi != NULL) {
    curl_multi_cleanup(e->multi);
    e->multi = NULL;
  }
  /* After curl_multi_cleanup: closing the pool's connections calls
     on_close_socket, which reads ep_fd. */
#ifdef AIGC_EPOLL
  ep_disable(e);
#endif
  free(e->ep_fd); e->ep_fd = NULL; e->cap_ep_fd = 0;
  free(e->ep_out); e->ep_out = NULL; e->cap_ep_out = 0;
  free(e->watched); e->watched = NULL; e->nwatched = e->capwatched = 0;
  free(e->ready); e->ready = NULL; e->capready = 0;
  free(e->slot_of_fd); e->slot_of_fd = NULL; e->cap_slot_of_fd = 0;
  free(e->changes); e->changes = NULL; e->nchanges = e->capchanges = 0;
  if (e->ends == 0)
    flush_errors(L, eidx);   /* else the step() that delivers them returns them */
  free_config(e);
  if (status != LUA_OK)
    lua_error(L);
}

/* eng:close(): idempotent; from a callback too (the loop sees e->closed). */
static int eng_close (lua_State *L) {
  aigc_engine *e = (aigc_engine *)luaL_checkudata(L, 1, AIGC_ENGINE_MT);
  lua_settop(L, 1);
  engine_close(L, 1, e, 0);
  return 0;
}

static int eng_gc (lua_State *L) {
  aigc_engine *e = (aigc_engine *)luaL_checkudata(L, 1, AIGC_ENGINE_MT);
  engine_close(L, 1, e, 1);
  aigc_secrets_free(e->secret);   /* kept until now: error.c scrubs with them */
  e->secret = NULL;
  return 0;
}

static int eng_tostring (lua_State *L) {
  aigc_engine *e = (aigc_engine *)luaL_checkudata(L, 1, AIGC_ENGINE_MT);
  if (e->closed)
    lua_pushfstring(L, "aigc.engine (closed) %p", (void *)e);
  else
    lua_pushfstring(L, "aigc.engine (%d active) %p", aigc_engine_count(e), (void *)e);
  return 1;
}

static char *opt_strdup (lua_State *L, int t, const char *field) {
  char *s = NULL;
  if (lua_getfield(L, t, field) != LUA_TNIL) {
    size_t len;
    const char *v;
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "bad config field '%s' (string expected, got %s)", field, luaL_typename(L, -1));
    v = lua_tolstring(L, -1, &len);
    if (strlen(v) != len)
      luaL_error(L, "bad config field '%s' (contains a NUL byte)", field);
    s = (char *)malloc(len + 1);
    if (s == NULL)
      luaL_error(L, "not enough memory");
    memcpy(s, v, len + 1);
  }
  lua_pop(L, 1);
  return s;
}

/*
** Optional numeric fields of a table (the client's config, a call's
** params): a number of seconds > 0, or an integer in lo..hi. A string
** that looks like a number is refused, as it is in the Lua layer. The
** message names the field in its table: "bad argument #1 to 'chat'
** (params.timeout: ...)".
*/
double aigc_opt_seconds (lua_State *L, int t, const aigc_argctx *cx, const char *field,
                         double def) {
  double v = def;
  if (lua_getfield(L, t, field) != LUA_TNIL) {
    int isnum = lua_type(L, -1) == LUA_TNUMBER;   /* not "1" */
    v = isnum ? (double)lua_tonumber(L, -1) : 0;
    if (!isnum || !(v > 0) || v > 1e9)
      aigc_argerror(L, cx->arg, cx->fname, "%s.%s: a number of seconds > 0 expected, got %s",
                    cx->what, field, isnum ? lua_tostring(L, -1) : luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return v;
}

/*
** The optional `deadline` field of a table: seconds > 0 for the whole
** call, or false to turn off a client's default for one call. 0: none.
*/
double aigc_opt_deadline (lua_State *L, int t, const aigc_argctx *cx, double def) {
  if (lua_getfield(L, t, "deadline") == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pop(L, 1);
  return aigc_opt_seconds(L, t, cx, "deadline", def);
}

int64_t aigc_opt_integer (lua_State *L, int t, const aigc_argctx *cx, const char *field,
                          int64_t def, int64_t lo, int64_t hi) {
  int64_t v = def;
  if (lua_getfield(L, t, field) != LUA_TNIL) {
    double d;
    int ok = lua_type(L, -1) == LUA_TNUMBER   /* not "1" */
             && aigc_number_of(L, -1, &v, &d) == AIGC_NUM_INT;
    if (!ok || v < lo || v > hi) {
      char range[64];
      snprintf(range, sizeof range, "%lld..%lld", (long long)lo, (long long)hi);
      aigc_argerror(L, cx->arg, cx->fname, "%s.%s: an integer in %s expected", cx->what, field,
                    range);
    }
  }
  lua_pop(L, 1);
  return v;
}

/*
** Validates one header line "Name: value": no CR, LF or NUL anywhere (no
** header injection), a token name. Raises naming the header.
*/
void aigc_check_header (lua_State *L, const char *line, size_t len) {
  size_t i;
  const char *colon = (const char *)memchr(line, ':', len);
  if (colon == NULL || colon == line)
    luaL_error(L, "invalid header line (expected 'Name: value')");
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)line[i];
    if (c == '\r' || c == '\n' || c == '\0')
      luaL_error(L, "header '%s' contains CR, LF or NUL (refused: header injection)",
                 lua_pushlstring(L, line, (size_t)(colon - line)));
  }
  for (i = 0; line + i < colon; i++) {
    unsigned char c = (unsigned char)line[i];
    if (c <= 32 || c >= 127 || strchr("\"(),/:;<=>?@[\\]{}", c) != NULL)
      luaL_error(L, "invalid header name '%s'", lua_pushlstring(L, line, (size_t)(colon - line)));
  }
}

/* Builds a curl_slist from the array of "Name: value" strings at idx. */
struct curl_slist *aigc_build_headers (lua_State *L, int idx) {
  struct curl_slist *list = NULL;
  lua_Integer i, n = (lua_Integer)lua_rawlen(L, idx);
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *line;
    struct curl_slist *next;
    lua_rawgeti(L, idx, i);
    line = lua_tolstring(L, -1, &len);
    if (line == NULL || lua_type(L, -1) != LUA_TSTRING) {
      curl_slist_free_all(list);
      luaL_error(L, "header %d is not a string", (int)i);
    }
    if (memchr(line, '\r', len) || memchr(line, '\n', len) || strlen(line) != len) {
      curl_slist_free_all(list);
      aigc_check_header(L, line, len);   /* raises with the header's name */
    }
    next = curl_slist_append(list, line);
    lua_pop(L, 1);
    if (next == NULL) {
      curl_slist_free_all(list);
      luaL_error(L, "not enough memory");
    }
    list = next;
  }
  return list;
}

/*
** core.engine(config) -> engine. The Lua layer (aigc.client) validates and
** fills `config`: base_url, query, model, secret, headers (an array of
** "Name: value" lines), stream_headers (the same for streams), timeout, connect_timeout, max_retries,
** max_concurrency, max_response_bytes, ca_file, ca_path, proxy, insecure,
** log, error_handler.
*/
static int eng_new (lua_State *L) {
  static const aigc_argctx cx = { "engine", 1, "config" };
  aigc_engine *e;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  /* Created closed, with its metatable, before anything is acquired: __gc
     is safe at every step below. */
  e = (aigc_engine *)lua_newuserdatauv(L, sizeof *e, AIGC_EN_NSLOTS);
  memset(e, 0, sizeof *e);
  e->closed = 1;
  e->epfd = -1;
  e->curl_deadline = -1;
  e->reported_deadline = -2;
  luaL_setmetatable(L, AIGC_ENGINE_MT);

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

  if (lua_getfield(L, 1, "log") != LUA_TNIL) {
    luaL_argcheck(L, lua_isfunction(L, -1), 1, "config.log must be a function");
    lua_setiuservalue(L, 2, AIGC_EN_LOG);
    e->log_enabled = 1;
  }
  else
    lua_pop(L, 1);
  if (lua_getfield(L, 1, "error_handler") != LUA_TNIL) {
    luaL_argcheck(L, lua_isfunction(L, -1), 1, "config.error_handler must be a function");
    lua_setiuservalue(L, 2, AIGC_EN_ERRHANDLER);
  }
  else
    lua_pop(L, 1);

  e->timeout = aigc_opt_seconds(L, 1, &cx, "timeout", AIGC_DEFAULT_TIMEOUT);
  e->connect_timeout = aigc_opt_seconds(L, 1, &cx, "connect_timeout",
                                        AIGC_DEFAULT_CONNECT_TIMEOUT);
  e->deadline = aigc_opt_deadline(L, 1, &cx, 0);
  e->max_retries = (int)aigc_opt_integer(L, 1, &cx, "max_retries",
                                         AIGC_DEFAULT_MAX_RETRIES, 0, 100);
  e->max_concurrency = (int)aigc_opt_integer(L, 1, &cx, "max_concurrency", 0, 0, 1000000);
  e->max_bytes = (size_t)aigc_opt_integer(L, 1, &cx, "max_response_bytes",
                                          (int64_t)AIGC_DEFAULT_MAX_BYTES, 1, (int64_t)1 << 40);
  lua_getfield(L, 1, "insecure");
  e->insecure = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "log_bodies");
  e->log_bodies = lua_toboolean(L, -1);
  lua_pop(L, 1);

  e->base_url = opt_strdup(L, 1, "base_url");
  if (e->base_url == NULL)
    return luaL_error(L, "config.base_url is required");
  e->query = opt_strdup(L, 1, "query");
  e->model = opt_strdup(L, 1, "model");
  e->secret = aigc_secrets_from_config(L, 1);
  e->json_limits.max_values = (size_t)aigc_opt_integer(L, 1, &cx, "max_json_values",
      (int64_t)AIGC_JSON_DEFAULT_MAX_VALUES, 1, (int64_t)1 << 40);
  e->json_limits.max_containers = (size_t)aigc_opt_integer(L, 1, &cx, "max_json_containers",
      (int64_t)AIGC_JSON_DEFAULT_MAX_CONTAINERS, 1, (int64_t)1 << 40);
  e->ca_file = opt_strdup(L, 1, "ca_file");
  e->ca_path = opt_strdup(L, 1, "ca_path");
  e->proxy = opt_strdup(L, 1, "proxy");
  if (lua_getfield(L, 1, "headers") == LUA_TTABLE)
    e->headers = aigc_build_headers(L, lua_gettop(L));
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "stream_headers") == LUA_TTABLE)
    e->stream_headers = aigc_build_headers(L, lua_gettop(L));
  lua_pop(L, 1);

  e->rng = (uint64_t)(uintptr_t)e ^ (uint64_t)(aigc_now() * 1e9) ^ 0x9E3779B97F4A7C15ull;

  e->multi = curl_multi_init();
  if (e->multi == NULL)
    return luaL_error(L, "curl_multi_init failed");
  curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, (void *)e);
  curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, (void *)e);
  curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
#ifdef AIGC_EPOLL
  e->epfd = AIGC_EP_UNSET;
#endif
  e->closed = 0;
  return 1;
}

/* A uniform random number in [0, 1) from the engine's own generator. */
double aigc_engine_random (aigc_engine *e) {
  /* xorshift64*: enough for backoff jitter, and no C global state. */
  uint64_t x = e->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  e->rng = x;
  return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static const luaL_Reg engine_methods[] = {
  {"submit", aigc_request_submit},
  {"step", eng_step},
  {"active", eng_active},
  {"report", eng_report},
  {"close", eng_close},
  {"watch", eng_watch},
  {"act", eng_act},
  {"sockets", eng_sockets},
  {"timeout", eng_timeout},
  {"scrub", aigc_engine_scrub_method},
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

void aigc_engine_open (lua_State *L) {
  luaL_newmetatable(L, AIGC_ENGINE_MT);
  luaL_setfuncs(L, engine_meta, 0);
  luaL_newlibtable(L, engine_methods);
  luaL_setfuncs(L, engine_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushcfunction(L, eng_new);
  lua_setfield(L, -2, "engine");
}

/* }====================================================== */
