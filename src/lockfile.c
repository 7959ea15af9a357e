/*
** lockfile.c — core.lockfile(path) -> lock | nil, message, code [, pid]
**
** An exclusive, never-waiting flock(2) on the file `path` (made if
** absent), holding the holder's pid as text. The dataset runner takes one
** next to its results file, so that a second run on the same file refuses
** instead of running every case again beside the first.
**
** Why flock on a file kept open, and not a file made with O_EXCL: the
** kernel drops a flock when its holder ends, however it ends (SIGKILL, a
** crash, the interpreter's second Ctrl-C), so no stale lock can block a
** later run and no pid needs guessing about; and a flock belongs to one
** open file description, so two holds inside one process exclude each
** other too (fcntl locks would not). The pid in the file only names the
** holder in the message of the one refused.
**
** close() (also __close and __gc; idempotent) removes the file while
** still holding it, when the name is still this file, then releases it.
** A taker that opened the old file just before may then get its flock:
** so a taker checks, once it holds the flock, that the name still leads
** to the file it holds, and starts again otherwise.
**
** core.lockfile(path, "file"): the flock taken on the file path itself,
** which must exist: not made, not written, not removed. A flock is the
** inode's, whatever name reached it: two hard links to one results file
** (each with its own PATH.lock beside it) are one lock this way.
**
** Failures from the world return nil, message, code: code "locked" (and
** the holder's pid, when the file tells it) when another holds it, else
** the errno. The descriptor is close-on-exec: children (io.popen) never
** keep the lock alive.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "home.h"
#include "lockfile.h"

typedef struct Lock {
  int fd;                /* -1: closed */
  int itself;            /* the file locked is the caller's own: never removed */
  char path[1];          /* (allocated to the path's length) */
} Lock;

static Lock *check_lock (lua_State *L) {
  return (Lock *)luaL_checkudata(L, 1, AIGC_LOCK_MT);
}

/* Whether `fd` is the file `path` names now. */
static int same_file (int fd, const char *path) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* The pid a lock file holds, or 0. */
static long read_pid (int fd) {
  char buf[32];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  buf[n] = '\0';
  return strtol(buf, NULL, 10);
}

/* Removes the file (when still ours) and releases it; idempotent. Also
   the state's sentinel's (home.h), for a lock made while lua_close runs
   the finalizers: no __gc of its own then, and the flock was held, the
   file left, until the process ended. */
static void lock_release (lua_State *L, void *object) {
  Lock *k = (Lock *)object;
  (void)L;
  if (k->fd >= 0) {
    int fd = k->fd;
    k->fd = -1;
    if (!k->itself && same_file(fd, k->path)) unlink(k->path);
    close(fd);   /* (releases the flock) */
  }
}

static const aigc_home_kind lock_home = { lock_release };

/* lock:close() (also __close and __gc) */
static int lock_close (lua_State *L) {
  lock_release(L, check_lock(L));
  return 0;
}

static int lock_tostring (lua_State *L) {
  Lock *k = check_lock(L);
  lua_pushfstring(L, "aigc.lock (%s, %s)", k->path, k->fd >= 0 ? "held" : "released");
  return 1;
}

static int core_lockfile (lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  Lock *k;
  int tries, itself = 0;
  char pid[32];
  luaL_argcheck(L, strlen(path) == len && len > 0, 1, "a file name expected");
  if (!lua_isnoneornil(L, 2)) {
    luaL_argcheck(L, lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "file") == 0, 2,
                  "\"file\" or nothing expected");
    itself = 1;
  }
  /* Created closed, with its metatable, before anything is acquired. */
  k = (Lock *)lua_newuserdatauv(L, sizeof(Lock) + len, 0);
  k->fd = -1;
  k->itself = itself;
  memcpy(k->path, path, len + 1);
  luaL_setmetatable(L, AIGC_LOCK_MT);
  aigc_home_join(L, -1, &lock_home);
  /* From here on nothing raises until the lock is held or refused. */
  for (tries = 0; tries < 20; tries++) {
    int fd = itself ? open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)   /* (a FIFO put there since: no wait) */
                    : open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return aigc_fail_errno(L, path, errno);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      long holder = e == EWOULDBLOCK && !itself ? read_pid(fd) : 0;   /* (the file itself: no pid in it) */
      close(fd);
      if (e != EWOULDBLOCK) return aigc_fail_errno(L, path, e);
      luaL_pushfail(L);
      lua_pushfstring(L, "%s is locked", path);
      lua_pushliteral(L, "locked");
      if (holder > 0) lua_pushinteger(L, (lua_Integer)holder);
      else luaL_pushfail(L);
      return 4;
    }
    if (same_file(fd, path)) {
      k->fd = fd;
      break;
    }
    close(fd);   /* its holder removed it as we took it: again, on the new one */
  }
  if (k->fd < 0) return aigc_fail_errno(L, path, EAGAIN);
  if (itself) return 1;
  snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(k->fd, 0) != 0 || pwrite(k->fd, pid, strlen(pid), 0) < 0) {
    /* (the pid only names the holder in a message: the lock holds without it) */
  }
  return 1;
}

static const luaL_Reg lock_methods[] = {
  {"close", lock_close},
  {NULL, NULL}
};

void aigc_lockfile_open (lua_State *L) {
  luaL_newmetatable(L, AIGC_LOCK_MT);
  luaL_newlib(L, lock_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, lock_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, lock_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, lock_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, AIGC_LOCK_MT);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  lua_pushcfunction(L, core_lockfile);
}
