/*
** poller.c — the sockets an engine waits on (poller.h): plain C.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/epoll.h>
#define AIGC_EPOLL 1
#endif

#include "poller.h"

#define EP_IN     1   /* registered for reading */
#define EP_OUT    2   /* registered for writing */
#define EP_OWN    4   /* opened by the engine: we hear of its closing */
#define EP_UNSET  (-2)

void aigc_poller_init (aigc_poller *p) {
  memset(p, 0, sizeof *p);
#ifdef AIGC_EPOLL
  p->epfd = EP_UNSET;
#else
  p->epfd = -1;
#endif
}

static int slot_of (const aigc_poller *p, int fd) {
  if (fd < 0 || (size_t)fd >= p->cap_slot_of_fd)
    return -1;
  return p->slot_of_fd[fd] - 1;
}

short aigc_poller_events (const aigc_poller *p, int fd) {
  int slot = slot_of(p, fd);
  return slot < 0 ? 0 : p->watched[slot].events;
}

/* Grows a table indexed by fd (elements of `elem` bytes, new ones zeroed)
   to hold fd. */
static int grow_by_fd (void **table, size_t *cap, size_t elem, int fd) {
  size_t ncap = *cap ? *cap : 64;
  char *t;
  if ((size_t)fd < *cap)
    return 0;
  while (ncap <= (size_t)fd)
    ncap *= 2;
  t = (char *)realloc(*table, ncap * elem);
  if (t == NULL)
    return -1;
  memset(t + *cap * elem, 0, (ncap - *cap) * elem);
  *table = t;
  *cap = ncap;
  return 0;
}


/*
** {======================================================
** The epoll set (Linux)
** =======================================================
*/

#ifdef AIGC_EPOLL

static void ep_disable (aigc_poller *p) {
  if (p->epfd >= 0)
    close(p->epfd);
  p->epfd = -1;
}

/* Whether the epoll set is there, making it at the first socket (a client
   that never sends holds no descriptor for it). */
static int ep_on (aigc_poller *p) {
  if (p->epfd == EP_UNSET)
    p->epfd = epoll_create1(EPOLL_CLOEXEC);   /* -1: poll() it is */
  return p->epfd >= 0;
}

static int ep_grow (aigc_poller *p, int fd) {
  return grow_by_fd((void **)&p->ep_fd, &p->cap_ep_fd, 1, fd);
}

/* Registers fd for the poll events `ev` (POLLIN / POLLOUT). */
static void ep_want (aigc_poller *p, int fd, short ev) {
  struct epoll_event ee;
  int want = ((ev & POLLIN) ? EP_IN : 0) | ((ev & POLLOUT) ? EP_OUT : 0);
  int cur, op, rc;
  if (fd < 0 || !ep_on(p))
    return;
  if (ep_grow(p, fd) != 0) {
    ep_disable(p);
    return;
  }
  cur = p->ep_fd[fd] & (EP_IN | EP_OUT);
  /* Ours, and registered as wanted: nothing to do (a parked keep-alive
     socket asked for again). Another socket is registered again each
     time: its owner may have closed it and made another under the same
     number without telling us. */
  if (cur == want && (p->ep_fd[fd] & EP_OWN))
    return;
  memset(&ee, 0, sizeof ee);
  ee.events = ((want & EP_IN) ? EPOLLIN : 0u) | ((want & EP_OUT) ? EPOLLOUT : 0u);
  ee.data.fd = fd;
  op = cur ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  rc = epoll_ctl(p->epfd, op, fd, &ee);
  if (rc != 0 && op == EPOLL_CTL_MOD && errno == ENOENT)
    rc = epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ee);
  else if (rc != 0 && op == EPOLL_CTL_ADD && errno == EEXIST)
    rc = epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ee);
  if (rc != 0) {
    ep_disable(p);
    return;
  }
  p->ep_fd[fd] = (unsigned char)((p->ep_fd[fd] & EP_OWN) | want);
}

/* Takes fd out of the epoll set. */
static void ep_drop (aigc_poller *p, int fd) {
  if (fd < 0 || (size_t)fd >= p->cap_ep_fd || !(p->ep_fd[fd] & (EP_IN | EP_OUT)))
    return;
  if (p->epfd >= 0)
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
  p->ep_fd[fd] &= EP_OWN;
}

/* fd is no longer watched: parked if we will hear of its closing. */
static void ep_unwatch (aigc_poller *p, int fd) {
  if (fd >= 0 && (size_t)fd < p->cap_ep_fd && !(p->ep_fd[fd] & EP_OWN))
    ep_drop(p, fd);
}

void aigc_poller_opened (aigc_poller *p, int fd) {
  if (fd >= 0 && p->ep_fd != NULL && (size_t)fd < p->cap_ep_fd)
    p->ep_fd[fd] = 0;
  if (fd >= 0 && ep_on(p) && ep_grow(p, fd) == 0)
    p->ep_fd[fd] = EP_OWN;
}

void aigc_poller_closing (aigc_poller *p, int fd) {
  /* Closing takes it out of the epoll set (the kernel's doing). */
  if (fd >= 0 && p->ep_fd != NULL && (size_t)fd < p->cap_ep_fd)
    p->ep_fd[fd] = 0;
}

/* The room epoll_wait's output needs for a wait. */
static void ep_prepare (aigc_poller *p) {
  size_t want = p->capready > 16 ? p->capready : 16;
  void *out;
  if (p->epfd < 0 || p->cap_ep_out >= want)
    return;
  out = realloc(p->ep_out, want * sizeof(struct epoll_event));
  if (out != NULL) {
    p->ep_out = out;
    p->cap_ep_out = want;
  }
  else if (p->ep_out == NULL)
    ep_disable(p);   /* out of memory: poll() then */
}

/* One epoll_wait: the ready sockets into p->ready. */
static int ep_wait (aigc_poller *p, int ms) {
  struct epoll_event *out = (struct epoll_event *)p->ep_out;
  int n = p->nwatched == 0 && ms == 0 ? 0 : epoll_wait(p->epfd, out, (int)p->cap_ep_out, ms);
  int i;
  for (i = 0; i < n; i++) {
    int fd = out[i].data.fd;
    short rev = 0;
    if (slot_of(p, fd) < 0) {   /* parked, and the server closed it (or sent junk) */
      ep_drop(p, fd);
      continue;
    }
    if (out[i].events & EPOLLIN) rev |= POLLIN;
    if (out[i].events & EPOLLOUT) rev |= POLLOUT;
    if (out[i].events & EPOLLHUP) rev |= POLLHUP;
    if (out[i].events & EPOLLERR) rev |= POLLERR;
    if (p->nready < p->capready) {
      p->ready[p->nready].fd = fd;
      p->ready[p->nready].events = 0;
      p->ready[p->nready].revents = rev;
      p->nready++;
    }
  }
  return n;
}

#else

static void ep_want (aigc_poller *p, int fd, short ev) { (void)p; (void)fd; (void)ev; }
static void ep_unwatch (aigc_poller *p, int fd) { (void)p; (void)fd; }
void aigc_poller_opened (aigc_poller *p, int fd) { (void)p; (void)fd; }
void aigc_poller_closing (aigc_poller *p, int fd) { (void)p; (void)fd; }

#endif

int aigc_poller_uses_epoll (const aigc_poller *p) {
  return p->epfd >= 0;
}

/* }====================================================== */


int aigc_poller_watch (aigc_poller *p, int fd, short events) {
  int slot = slot_of(p, fd);
  if (fd < 0)
    return -1;
  if (slot < 0) {
    if (grow_by_fd((void **)&p->slot_of_fd, &p->cap_slot_of_fd, sizeof(int), fd) != 0)
      return -1;
    if (p->nwatched == p->capwatched) {
      size_t ncap = p->capwatched ? p->capwatched * 2 : 16;
      struct pollfd *w = (struct pollfd *)realloc(p->watched, ncap * sizeof *w);
      if (w == NULL)
        return -1;
      p->watched = w;
      p->capwatched = ncap;
    }
    slot = (int)p->nwatched++;
    p->watched[slot].fd = fd;
    p->slot_of_fd[fd] = slot + 1;
  }
  p->watched[slot].events = events;
  p->watched[slot].revents = 0;
  ep_want(p, fd, events);
  return 0;
}

void aigc_poller_unwatch (aigc_poller *p, int fd) {
  int slot = slot_of(p, fd);
  size_t last;
  if (slot < 0)
    return;
  last = p->nwatched - 1;
  if ((size_t)slot != last) {   /* the last entry moves into the hole */
    p->watched[slot] = p->watched[last];
    p->slot_of_fd[p->watched[slot].fd] = slot + 1;
  }
  p->nwatched--;
  p->slot_of_fd[fd] = 0;
  ep_unwatch(p, fd);
}

/* One poll() over the watched sockets: the ready ones into p->ready. */
static int poll_wait (aigc_poller *p, int ms) {
  /* Nothing to watch and no time to wait (a request just added, before
     libcurl has a socket for it): a system call for nothing, skipped. */
  int n = p->nwatched == 0 && ms == 0 ? 0 : poll(p->watched, (nfds_t)p->nwatched, ms);
  size_t i;
  for (i = 0; n > 0 && i < p->nwatched && p->nready < p->capready; i++)
    if (p->watched[i].revents != 0)
      p->ready[p->nready++] = p->watched[i];
  return n;
}

int aigc_poller_wait (aigc_poller *p, int ms) {
  p->nready = 0;
  /* Acting on a ready socket may add or remove watched ones: the caller
     acts on the copy in `ready`, which has room for every watched one. */
  if (p->capready < p->nwatched) {
    struct pollfd *r = (struct pollfd *)realloc(p->ready, p->nwatched * sizeof *r);
    if (r != NULL) {
      p->ready = r;
      p->capready = p->nwatched;
    }
  }
#ifdef AIGC_EPOLL
  ep_prepare(p);
  if (p->epfd >= 0)
    return ep_wait(p, ms);
#endif
  return poll_wait(p, ms);
}

void aigc_poller_free (aigc_poller *p) {
#ifdef AIGC_EPOLL
  ep_disable(p);
#endif
  free(p->ep_fd);
  free(p->ep_out);
  free(p->watched);
  free(p->ready);
  free(p->slot_of_fd);
  aigc_poller_init(p);
}
