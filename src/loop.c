/*
** loop.c — the engine's loop (loop.h): libcurl's sockets and timer, one
** turn of the loop, the dispatch of callbacks, the reports to an external
** loop's watcher.
*/
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "loop.h"


/*
** {======================================================
** Sockets and timer, as libcurl asks for them
** =======================================================
*/

/*
** Drops the changes of fd not yet reported from index `from` on: an fd
** watched first after the last report and removed before the next one
** (a refused connection, closed by libcurl within one turn) is never
** reported, so that the watcher is not told to watch a closed socket.
*/
static void drop_changes (aigc_engine *e, size_t from, curl_socket_t fd) {
  size_t i, n = from;
  for (i = from; i < e->nchanges; i++)
    if (e->changes[i].fd != fd)
      e->changes[n++] = e->changes[i];
  e->nchanges = n;
}

/* Records a change for an external loop's watcher (`fresh`: an fd the
   poller did not watch, thus one the watcher does not know either). */
static void note_change (aigc_engine *e, curl_socket_t fd, int what, int fresh) {
  aigc_sockchange *c;
  size_t i;
  if (!e->watching)
    return;
  if (what == CURL_POLL_REMOVE)
    for (i = e->nchanges; i > e->told; i--) {
      c = &e->changes[i - 1];
      if (c->fd != fd)
        continue;
      if (c->what == CURL_POLL_REMOVE)
        break;   /* an earlier life of this fd number: this remove is reported */
      if (c->fresh) {
        drop_changes(e, i - 1, fd);
        return;
      }
    }
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
  c->fresh = fresh;
}

static short poll_events (int what) {
  short ev = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
    ev |= POLLIN;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
    ev |= POLLOUT;
  return ev;
}

static int on_socket (CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  aigc_engine *e = (aigc_engine *)userp;
  int fresh = 0;
  (void)easy; (void)socketp;
  if (what == CURL_POLL_REMOVE)
    aigc_poller_unwatch(&e->poller, fd);
  else {
    fresh = aigc_poller_events(&e->poller, fd) == 0;
    if (aigc_poller_watch(&e->poller, fd, poll_events(what)) != 0)
      return -1;   /* out of memory: libcurl fails the transfer */
  }
  note_change(e, fd, what, fresh);
  return 0;
}

static int on_timer (CURLM *multi, long timeout_ms, void *userp) {
  aigc_engine *e = (aigc_engine *)userp;
  (void)multi;
  e->curl_deadline = timeout_ms < 0 ? -1.0 : aigc_now() + (double)timeout_ms / 1000.0;
  return 0;
}

/* libcurl opens and closes its sockets through the engine, so that the
   poller knows which sockets it may keep registered (poller.h). They are
   close-on-exec (libcurl 7.88 leaves its own inheritable): a process
   the host starts (io.popen, os.execute, a tool) otherwise held every
   connection open, so a server never saw a canceled stream's connection
   close (one that stops generating when its client goes kept on) while that
   process ran. */
static curl_socket_t on_open_socket (void *clientp, curlsocktype purpose,
                                     struct curl_sockaddr *addr) {
  aigc_engine *e = (aigc_engine *)clientp;
#ifdef SOCK_CLOEXEC
  curl_socket_t fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
#else
  curl_socket_t fd = socket(addr->family, addr->socktype, addr->protocol);
  if (fd >= 0)
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
  (void)purpose;
  if (fd < 0)
    return CURL_SOCKET_BAD;
  aigc_poller_opened(&e->poller, fd);
  return fd;
}

static int on_close_socket (void *clientp, curl_socket_t fd) {
  aigc_engine *e = (aigc_engine *)clientp;
  aigc_poller_closing(&e->poller, fd);
  return close(fd);
}

int aigc_loop_init (aigc_engine *e) {
  CURLM *multi = curl_multi_init();
  if (multi == NULL)
    return -1;
  e->roster.multi = multi;
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, (void *)e);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, (void *)e);
  curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  /* HTTP/2: up to 1,000 streams on a connection (libcurl's default, 100,
     made 1,000 requests in flight open ~900 TLS connections; with this one,
     as many as the server allows: bench/README "HTTP/2"). */
#if LIBCURL_VERSION_NUM >= 0x074300   /* 7.67.0 */
  curl_multi_setopt(multi, CURLMOPT_MAX_CONCURRENT_STREAMS, 1000L);
#endif
  e->roster.open_socket = on_open_socket;
  e->roster.close_socket = on_close_socket;
  e->roster.socket_data = e;
  return 0;
}

void aigc_loop_free (aigc_engine *e) {
  aigc_timers_free(&e->roster.timers);
  aigc_poller_free(&e->poller);
  free(e->changes);
  e->changes = NULL;
  e->nchanges = e->capchanges = 0;
}

/* Starts r now if its class may take a slot, none of its class is
   waiting before it (FIFO within a priority) and the turn may start one
   more (max_starts_per_step), else queues it. */
void aigc_loop_start (aigc_engine *e, aigc_request *r) {
  int p = r->entry.priority;
  if (e->roster.q_head[p] == NULL && aigc_roster_slot_free_for(&e->roster, p)
      && aigc_roster_may_start(&e->roster))
    aigc_transfer_start(r);
  else
    aigc_transfer_queue(r);
}

/* }====================================================== */


/*
** {======================================================
** Steps 1 to 5: C only
** =======================================================
*/

/* Whether the ready list holds a request the next dispatch will run (one
   being delivered further up the stack is skipped: waiting is right then). */
static int dispatch_due (const aigc_engine *e) {
  const aigc_roster_entry *en;
  for (en = e->roster.r_head; en != NULL; en = en->r_next)
    if (!aigc_const_request_of(en)->delivering)
      return 1;
  return 0;
}

/* The earliest moment a timer needs doing: libcurl's, the requests'. */
static double timers_deadline (aigc_engine *e) {
  double d = e->curl_deadline, f = aigc_timers_first(&e->roster.timers);
  if (f >= 0 && (d < 0 || f < d))
    d = f;
  return d;
}

/* Whether max_starts_per_step alone holds a queued request back: the next
   turn starts it, so no wait may pass over it. */
static int starts_held (const aigc_engine *e) {
  const aigc_roster *ro = &e->roster;
  return ro->config.max_starts_per_step > 0 && ro->queued > 0 && !aigc_roster_may_start(ro);
}

/* The earliest moment something needs doing for a wait of the loop's own
   (now when callbacks are waiting, or transfers max_bytes_per_step held
   with bytes already read for them), or -1 if nothing is timed. */
static double next_deadline (aigc_engine *e) {
  if (dispatch_due(e) || starts_held(e) || e->roster.h_head != NULL)
    return aigc_now();
  return timers_deadline(e);
}

double aigc_loop_watch_deadline (aigc_engine *e) {
  double d, t = e->task_deadline;
  /* Callbacks pending (even one being delivered): come back at once. */
  if (e->roster.r_head != NULL || starts_held(e) || e->roster.h_head != NULL)
    return aigc_now();
  d = timers_deadline(e);
  return t >= 0 && (d < 0 || t < d) ? t : d;
}

void aigc_loop_socket_action (aigc_engine *e, curl_socket_t fd, int mask) {
  int running;
  curl_multi_socket_action(e->roster.multi, fd, mask, &running);
}

/* Lets libcurl act on its timer if it is due. */
static void act_on_timer (aigc_engine *e) {
  if (e->curl_deadline >= 0 && aigc_now() >= e->curl_deadline) {
    long ms = -1;
    e->curl_deadline = -2;   /* on_timer tells the next one... */
    aigc_loop_socket_action(e, CURL_SOCKET_TIMEOUT, 0);
    /* ...unless libcurl found nothing due (it tells only a changed timer):
       its timer is asked for, never lost. */
    if (e->curl_deadline == -2)
      e->curl_deadline = curl_multi_timeout(e->roster.multi, &ms) == CURLM_OK && ms >= 0
                         ? aigc_now() + (double)ms / 1000.0 : -1.0;
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

/* Lets libcurl act on the sockets the poller's last wait found ready. */
static void act_on_ready (aigc_engine *e) {
  size_t i;
  for (i = 0; i < e->poller.nready; i++)
    aigc_loop_socket_action(e, e->poller.ready[i].fd, curl_mask(e->poller.ready[i].revents));
}

/*
** Waits up to `timeout` seconds (0: not at all, nor when callbacks are
** waiting) for a watched socket, in slices: a wait notices an interrupt (a
** newly installed debug hook) within AIGC_WAIT_SLICE even when the signal
** went to another thread (libcurl's resolver) and did not break the wait
** with EINTR. Then lets libcurl act on what is ready and on its timer.
*/
static void poll_and_act (lua_State *L, aigc_engine *e, double timeout, const aigc_hooks *hooks) {
  double d = next_deadline(e), end;
  int n;
  if (d >= 0) {
    double until = d - aigc_now();
    if (until < timeout)
      timeout = until > 0 ? until : 0;
  }
  end = aigc_now() + timeout;
  for (;;) {
    double left = end - aigc_now();
    int ms;
    if (left > AIGC_WAIT_SLICE)
      left = AIGC_WAIT_SLICE;
    /* Round up, so that we do not wake a hair before a deadline and spin. */
    ms = left <= 0 ? 0 : (int)ceil(left * 1000.0);
    n = aigc_poller_wait(&e->poller, ms);
    /* Nothing yet (n < 0 is EINTR: a signal, perhaps Ctrl-C: go and see). */
    if (!(n == 0 && ms > 0 && aigc_now() < end && (hooks == NULL || !aigc_hooks_changed(L, hooks))))
      break;
  }
  act_on_ready(e);
  act_on_timer(e);
}

/*
** Hands finished transfers to their requests (and the ready list). Every
** message is read before any handle is removed: libcurl (7.88)
** curl_multi_remove_handle walks the queue of unread messages for one from
** that handle, so removing each handle right after reading its message
** walked the rest of the queue each time, quadratic in the transfers that
** end in one turn (bench/README, issue 17). The requests read wait in a
** list through their own finished_next (nothing allocated); plain C, no
** Lua runs, so none of them can be freed before its turn.
*/
static void collect_finished (aigc_engine *e) {
  aigc_request *head = NULL, **tail = &head, *r;
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(e->roster.multi, &left)) != NULL) {
    CURL *easy = msg->easy_handle;
    CURLcode code = msg->data.result;
    if (msg->msg != CURLMSG_DONE)
      continue;
    r = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    if (r == NULL || r->easy != easy) {   /* (cannot be: handled at once, as it comes) */
      curl_multi_remove_handle(e->roster.multi, easy);
      if (r != NULL)
        aigc_transfer_done(r, code);
      continue;
    }
    r->finished_code = code;
    r->finished_next = NULL;
    *tail = r;
    tail = &r->finished_next;
  }
  while ((r = head) != NULL) {
    head = r->finished_next;
    r->finished_next = NULL;
    curl_multi_remove_handle(e->roster.multi, r->easy);
    aigc_transfer_done(r, r->finished_code);
  }
}

/*
** The requests' own timers: retries due, idle streams, servers slow to end
** after [DONE], deadlines. Only the requests with a timer due are looked
** at (timers.h): they are taken off the heap first, then each is ticked
** and put back at its next timer, so a tick that sets another timer due
** now fires it on the next turn, as before. Plain C: no Lua runs, so no
** request is freed meanwhile (one unlinked anyway leaves a NULL).
*/
static void fire_timers (aigc_engine *e, double now) {
  aigc_timers *t = &e->roster.timers;
  size_t i, n;
  if (t->n == 0 || now < t->heap[0].at)
    return;
  aigc_timers_take_due(t, now);
  n = t->ndue;
  for (i = 0; i < n; i++) {
    aigc_timed *tm = t->due[i];
    aigc_request *r;
    if (tm == NULL)
      continue;
    t->due[i] = NULL;
    tm->pos = 0;
    r = aigc_request_of(aigc_roster_entry_of_timed(tm));
    aigc_transfer_tick(r, now);
    aigc_transfer_timers_changed(r);
  }
  t->ndue = 0;
}

/* }====================================================== */


/*
** {======================================================
** Step 6: Lua
** =======================================================
*/

/*
** Dispatches the ready list: at most `budget` callbacks (0: no limit).
** A request being delivered further up the stack (a nested drive, from a
** blocking call made inside its callback or a finalizer) is skipped and
** goes to the tail of the list, marked with this pass: when the head is a
** request this pass skipped, the pass is over. Every skipped request stays
** in the list, so an error escaping this function loses none.
*/
int aigc_loop_dispatch (lua_State *L, int eidx, aigc_engine *e, int budget) {
  aigc_roster *ro = &e->roster;
  aigc_roster_entry *en, *outer = ro->current;
  unsigned pass = ++e->pass;
  int count = 0;
  e->dispatching++;
  while ((en = ro->r_head) != NULL && (budget <= 0 || count < budget)) {
    aigc_request *r = aigc_request_of(en);
    aigc_roster_unready(ro, en);
    if (r->delivering) {
      aigc_roster_ready(ro, en);
      if (en->skip_pass == pass)   /* around once: the rest waits */
        break;
      en->skip_pass = pass;
      continue;
    }
    if (!aigc_request_push(L, eidx, r)) {
      /* Being collected: nobody can observe it. Its __gc (which would
         cancel it) may be far off: an emergency collection (Lua out of
         memory) runs no finalizer, and a quiet loop may allocate too little
         for the next one; meanwhile it held its slot and counted in
         active(), and `while step() > 0` never ended. Canceled here, in C,
         as its __gc does (which then finds it detached). */
      if (r->slot != 0 && !aigc_terminal(r->state)) {
        r->state = AIGC_CANCELED;
        if (r->watched)
          ro->unlisted_ends++;   /* (ended off the ended list: see ended_quietly) */
        aigc_request_unanchor(L, eidx, r);   /* (its finalizer's __gc may never come) */
        aigc_transfer_detach(r);
      }
      continue;
    }
    ro->current = en;
    count += aigc_request_dispatch(L, eidx, lua_gettop(L), budget > 0 ? budget - count : 0);
    ro->current = outer;
    lua_pop(L, 1);
  }
  e->dispatching--;
  return count;
}

static const char *what_name (int what) {
  switch (what) {
    case CURL_POLL_IN: return "in";
    case CURL_POLL_OUT: return "out";
    case CURL_POLL_INOUT: return "inout";
    case CURL_POLL_REMOVE: return "remove";
    default: return "none";
  }
}

/* Calls the watcher's function in engine slot `slot` with the `nargs`
   values on top; its error is reported. */
static void call_watcher (lua_State *L, int eidx, aigc_engine *e, int slot, int nargs) {
  if (lua_getiuservalue(L, eidx, slot) != LUA_TFUNCTION) {
    lua_pop(L, nargs + 1);
    return;
  }
  lua_insert(L, -(nargs + 1));
  if (aigc_pcall(L, nargs, 0) != LUA_OK) {
    aigc_error_report(L, eidx, -1, e->roster.config.secret);
    lua_pop(L, 1);
  }
}

/* Calls timer_fn with the time left until d (nil when d < 0). */
static void report_timer (lua_State *L, int eidx, aigc_engine *e, double d) {
  e->reported_deadline = d;
  if (d < 0)
    lua_pushnil(L);
  else {
    double secs = d - aigc_now();
    lua_pushnumber(L, secs > 0 ? secs : 0);
  }
  call_watcher(L, eidx, e, AIGC_EN_WATCH_TIMER, 1);
}

/*
** Tells the watcher what changed since the last report: each socket
** (fd, "in" | "out" | "inout" | "remove") and the time until the next
** deadline (seconds, or nil for none). Called only outside libcurl.
** A watcher's function may drive the engine (act(), a blocking call): the
** changes that makes are reported too, in order (the walk reads the list
** as it grows), and so is the timer they move, for a few rounds.
*/
static void report_watch_changes (lua_State *L, int eidx, aigc_engine *e) {
  int round;
  double d;
  if (!e->watching || e->reporting)
    return;
  e->reporting = 1;
  for (round = 0; round < 8 && !e->roster.closed; round++) {
    while (e->told < e->nchanges && !e->roster.closed) {
      aigc_sockchange c = e->changes[e->told++];
      lua_pushinteger(L, (lua_Integer)c.fd);
      lua_pushstring(L, what_name(c.what));
      call_watcher(L, eidx, e, AIGC_EN_WATCH_SOCKET, 2);
    }
    e->nchanges = e->told = 0;
    d = aigc_loop_watch_deadline(e);
    if (e->roster.closed || d == e->reported_deadline)
      break;
    report_timer(L, eidx, e, d);
    if (e->nchanges == 0)
      break;
  }
  e->reporting = 0;
}

/* The Lua part of one turn, run under lua_pcall: engine at 1, budget at 2. */
static const char drive_key = 'd';   /* (kept: see compat.h) */

/*
** Before the kick of a batch of new transfers: the replies that came in
** while the batch's callbacks ran are read first (one poll that does not
** wait), so that their connections are idle again when libcurl looks one
** up for each new transfer. libcurl (7.88) walks the host's connections
** from the oldest to the first idle one for each, past those the batch's
** earlier transfers just took (bench/README, 2026-12-07: at K = 1,024 that
** lookup was shorter in three callgrind runs of three, and the request
** 2-5 % fewer instructions). Only after a batch (AIGC_READ_BEFORE_KICK
** callbacks or more), so that a single request does not pay a system call
** for it; not for an external loop's watcher, whose loop does the waiting.
*/
#define AIGC_READ_BEFORE_KICK 16

static void read_before_kick (aigc_engine *e, int count) {
  if (count >= AIGC_READ_BEFORE_KICK && !e->watching && aigc_poller_wait(&e->poller, 0) > 0)
    act_on_ready(e);
}

static int drive_lua (lua_State *L) {
  aigc_engine *e = (aigc_engine *)lua_touserdata(L, 1);
  int count = aigc_loop_dispatch(L, 1, e, (int)lua_tointeger(L, 2));
  if (!e->roster.closed) {
    /* Callbacks may have submitted requests: give them their first kick
       now rather than one frame later. */
    read_before_kick(e, count);
    act_on_timer(e);
    collect_finished(e);
    report_watch_changes(L, 1, e);
  }
  lua_pushinteger(L, count);
  return 1;
}

/*
** An error escaped the Lua part of a turn: the counters are restored, and
** the request being delivered is unpinned and ended (kind "limit" for
** memory, "canceled" otherwise); every other request stays where it was.
*/
static void recover (lua_State *L, int eidx, aigc_engine *e, int st, aigc_roster_entry *saved_current,
                     int saved_dispatching, int saved_reporting) {
  aigc_roster_entry *en = e->roster.current;
  e->dispatching = saved_dispatching;
  e->reporting = saved_reporting;
  e->roster.current = saved_current;
  if (en != NULL && en != saved_current) {
    aigc_request *r = aigc_request_of(en);
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
}

int aigc_loop_drive (lua_State *L, int eidx, double timeout, int budget,
                     aigc_hooks *hooks, int *status) {
  aigc_engine *e = (aigc_engine *)lua_touserdata(L, eidx);
  aigc_hooks own;
  aigc_roster_entry *saved_current = e->roster.current;
  int saved_dispatching = e->dispatching, saved_reporting = e->reporting;
  int st, count;
  *status = LUA_OK;
  if (!e->roster.closed) {
    if (hooks == NULL) {
      aigc_hooks_snap(L, &own);
      hooks = &own;
    }
    aigc_transfer_new_turn(&e->roster);   /* (max_bytes_per_step counts again) */
    e->roster.poll_began = aigc_now();
    poll_and_act(L, e, timeout, hooks);
    collect_finished(e);
    fire_timers(e, aigc_now());
    e->roster.started_this_turn = 0;   /* a new turn: max_starts_per_step counts again */
    aigc_transfer_start_queued(&e->roster);
  }
  e->roster.turn_ended = aigc_now();   /* (below: again after the callbacks) */
  if (e->roster.r_head == NULL && (e->roster.closed || !e->watching))
    return 0;   /* nothing to dispatch, no watcher to tell */
  /* Pushed before `stepping` counts: on 5.1 and LuaJIT a C function is an
     allocation (the first time: then kept), which may fail, and the raise
     left the client stepping for ever ("client:step() is already running"
     at every later step). */
  aigc_push_kept_cfunction(L, drive_lua, &drive_key);
  lua_pushvalue(L, eidx);
  lua_pushinteger(L, budget);
  e->stepping++;
  st = lua_pcall(L, 2, 1, 0);
  e->stepping--;
  e->roster.turn_ended = aigc_now();   /* (a slow callback is a stall too) */
  if (st == LUA_OK) {
    count = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return count;
  }
  recover(L, eidx, e, st, saved_current, saved_dispatching, saved_reporting);
  *status = st;
  return 0;
}

/* report_watch_changes under lua_pcall (engine at 1): e->reporting is
   restored if an error escapes. */
static int watch_report_lua (lua_State *L) {
  report_watch_changes(L, 1, (aigc_engine *)lua_touserdata(L, 1));
  return 0;
}

/* Runs report_watch_changes under lua_pcall; raises what escapes. */
static void report_protected (lua_State *L, int eidx, aigc_engine *e) {
  lua_pushcfunction(L, watch_report_lua);
  lua_pushvalue(L, eidx);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {   /* an interrupt, out of memory */
    e->reporting = 0;
    lua_error(L);
  }
}

void aigc_loop_watch (lua_State *L, int eidx, aigc_engine *e) {
  size_t i;
  e->watching = 1;
  /* Report what is already watched, then the timer. */
  e->nchanges = e->told = 0;
  for (i = 0; i < e->poller.nwatched; i++) {
    short ev = e->poller.watched[i].events;
    note_change(e, e->poller.watched[i].fd, (ev & POLLIN) && (ev & POLLOUT) ? CURL_POLL_INOUT
                                            : (ev & POLLIN) ? CURL_POLL_IN : CURL_POLL_OUT, 1);
  }
  e->reported_deadline = -2;   /* force a timer report */
  report_protected(L, eidx, e);
}

void aigc_loop_report (lua_State *L, int eidx, aigc_engine *e) {
  if (e->watching && !e->reporting && !e->stepping && !e->dispatching && !e->roster.closed)
    report_protected(L, eidx, e);
}

/* aigc_loop_unwatch's calls, under lua_pcall (engine at 1). */
static int unwatch_lua (lua_State *L) {
  aigc_engine *e = (aigc_engine *)lua_touserdata(L, 1);
  size_t i;
  for (i = 0; i < e->poller.nwatched; i++)   /* (the fresh ones go: never reported) */
    note_change(e, e->poller.watched[i].fd, CURL_POLL_REMOVE, 0);
  e->reporting = 1;
  while (e->told < e->nchanges) {
    aigc_sockchange c = e->changes[e->told++];
    lua_pushinteger(L, (lua_Integer)c.fd);
    lua_pushstring(L, what_name(c.what));
    call_watcher(L, 1, e, AIGC_EN_WATCH_SOCKET, 2);
  }
  if (e->reported_deadline != -1) {
    lua_pushnil(L);
    call_watcher(L, 1, e, AIGC_EN_WATCH_TIMER, 1);
  }
  return 0;
}

void aigc_loop_unwatch (lua_State *L, int eidx, aigc_engine *e) {
  int saved_reporting = e->reporting;
  /* (also from inside a report: close() in a watcher's function; that
     report's walk stops, the client being closed) */
  if (e->watching) {
    lua_pushcfunction(L, unwatch_lua);
    lua_pushvalue(L, eidx);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK)
      lua_pop(L, 1);
  }
  e->reporting = saved_reporting;
  e->watching = 0;   /* libcurl's clean-up closes the sockets: nobody to tell */
  e->nchanges = e->told = 0;
  e->reported_deadline = -1;
}

/* }====================================================== */
