/*
** poller.h — the sockets an engine waits on, in plain C (no Lua, no
** libcurl): the set libcurl asks to watch (CURLMOPT_SOCKETFUNCTION), and
** one wait on it with epoll (Linux) or poll().
**
** `watched` always holds exactly the sockets being watched, as poll()
** takes them (an external loop's watcher reads it too). On Linux the same
** sockets are also in an epoll set, so that a wait costs what is ready,
** not what is watched (poll() over 256 idle sockets was nearly all of a
** step's cost). The epoll set differs in one way: a socket the engine
** opened itself (aigc_poller_opened: libcurl opens and closes its sockets
** through the engine) stays registered, parked, when it is no longer
** watched — the next request on that keep-alive connection asks for it
** again at once, so keep-alive costs no epoll_ctl per request. A parked
** socket that turns readable (the server closed it) is taken out when a
** wait meets it. Any other socket (a resolver's) leaves the set at once.
** On any epoll error the poller falls back to poll() for good.
**
** Allocation failures are reported (-1), never fatal; the poller stays
** consistent.
*/
#ifndef AIGC_POLLER_H
#define AIGC_POLLER_H

#include <poll.h>
#include <stddef.h>

typedef struct aigc_poller {
  struct pollfd *watched;       /* exactly what poll() gets */
  size_t nwatched, capwatched;
  int *slot_of_fd;              /* fd -> index + 1 in watched; 0 = none */
  size_t cap_slot_of_fd;
  struct pollfd *ready;         /* the sockets the last wait found ready */
  size_t nready, capready;
  int epfd;                     /* the epoll set: -2 not made yet (made at the
                                   first socket), -1 none (poll() only) */
  unsigned char *ep_fd;         /* fd -> AIGC_POLLER_EP_* flags */
  size_t cap_ep_fd;
  void *ep_out;                 /* epoll_wait's output (struct epoll_event) */
  size_t cap_ep_out;
} aigc_poller;

void aigc_poller_init (aigc_poller *p);
/* Closes the epoll set and frees everything; the poller is then as init
   left it. */
void aigc_poller_free (aigc_poller *p);

/* Watches fd for `events` (POLLIN and/or POLLOUT), replacing what it was
   watched for. 0, or -1 when memory ran out (fd is then not watched). */
int aigc_poller_watch (aigc_poller *p, int fd, short events);
/* Stops watching fd (parked in the epoll set if the engine opened it). */
void aigc_poller_unwatch (aigc_poller *p, int fd);
/* What fd is watched for (POLLIN / POLLOUT), 0 when it is not watched. */
short aigc_poller_events (const aigc_poller *p, int fd);

/* The engine opened fd (a new socket: in no epoll set yet, whatever a
   closed one with the same number was); it will say when it closes it. */
void aigc_poller_opened (aigc_poller *p, int fd);
/* The engine is closing fd (which takes it out of the epoll set). */
void aigc_poller_closing (aigc_poller *p, int fd);

/*
** Waits at most `ms` milliseconds (0: not at all) for a watched socket.
** The sockets found ready are p->ready[0 .. p->nready), each with its
** revents (POLLIN, POLLOUT, POLLHUP, POLLERR). Returns how many events the
** system reported (0: none, the time ran out), or -1 when the wait was
** interrupted by a signal (EINTR) or failed. With nothing watched and
** ms == 0, makes no system call.
*/
int aigc_poller_wait (aigc_poller *p, int ms);

/* Whether the epoll set is in use (1), not made yet (0 with epfd -2), or
   given up for poll() (0): for the unit tests. */
int aigc_poller_uses_epoll (const aigc_poller *p);

#endif
