/*
** dirfs.c — folders and names without a shell, for the files aigc keeps
** (the disk cache's folder, its key, a download that must not replace):
**   list_dir(path)     { { name =, kind =, size =, mtime = }, ... } of the
**                      folder's entries ("." and ".." left out), each as
**                      lstat(2) tells it (a symbolic link is "link", never
**                      followed), mtime in seconds with its fraction; or
**                      nil, message, errno
**   make_dir(path)     the folder and every missing parent made, mode 0700
**                      (less what the umask takes): true, or nil, message,
**                      errno (a file in the way: ENOTDIR)
**   link(from, to)     link(2): a new name for a file, never over one there
**                      (EEXIST): true, or nil, message, errno
**
** The cache ran `mkdir -p`, `find -printf` and `head ... && ln` through
** /bin/sh for these: a fork and exec at every open, once per ttl and once a
** minute under max_disk_bytes (a frame of a game), and every path quoted
** for a shell. Re-entrancy (DESIGN.md): the open DIR is held in a boxed
** userdata whose __gc closes it when a Lua allocation raises (memory) in
** the middle of a listing; it is closed at once otherwise (a box made while
** lua_close runs finalizers gets no __gc).
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "dirfs.h"

typedef struct dir_box {
  DIR *d;
} dir_box;

static int dir_box_gc (lua_State *L) {
  dir_box *box = (dir_box *)lua_touserdata(L, 1);
  if (box != NULL && box->d != NULL) {
    closedir(box->d);
    box->d = NULL;
  }
  return 0;
}

const char *aigc_dirfs_kind (mode_t m) {
  if (S_ISREG(m)) return "file";
  if (S_ISDIR(m)) return "directory";
  if (S_ISLNK(m)) return "link";
  if (S_ISFIFO(m)) return "fifo";
  if (S_ISCHR(m)) return "char";
  if (S_ISBLK(m)) return "block";
  if (S_ISSOCK(m)) return "socket";
  return "other";
}

/* Pushes { name =, kind =, size =, mtime = } for the entry `name` of `d`
   (an entry gone since readdir: nothing pushed, 0 returned). */
static int push_entry (lua_State *L, DIR *d, const char *name) {
  struct stat st;
  if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return 0;
  lua_createtable(L, 0, 4);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, aigc_dirfs_kind(st.st_mode));
  lua_setfield(L, -2, "kind");
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec + (lua_Number)st.st_mtim.tv_nsec / 1e9);
  lua_setfield(L, -2, "mtime");
  return 1;
}

static int core_list_dir (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  dir_box *box;
  struct dirent *de;
  lua_Integer n = 0;
  box = (dir_box *)lua_newuserdatauv(L, sizeof *box, 0);
  box->d = NULL;
  aigc_push_box_mt(L, "aigc.dirbox", dir_box_gc);
  lua_setmetatable(L, -2);
  lua_newtable(L);
  box->d = opendir(path);
  if (box->d == NULL)
    return aigc_fail_errno(L, path, errno);
  for (;;) {
    errno = 0;
    de = readdir(box->d);
    if (de == NULL)
      break;
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    /* (a finalizer run by these allocations may list folders too: its own box) */
    if (push_entry(L, box->d, de->d_name))
      lua_rawseti(L, -2, ++n);
  }
  if (errno != 0) {
    int e = errno;
    closedir(box->d);
    box->d = NULL;
    return aigc_fail_errno(L, path, e);
  }
  closedir(box->d);
  box->d = NULL;
  return 1;
}

/* One folder made; one there already is no failure. */
static int make_one (const char *p) {
  struct stat st;
  if (mkdir(p, 0700) == 0)
    return 0;
  if (errno == EEXIST) {
    if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
      return 0;
    errno = ENOTDIR;
  }
  return -1;
}

static int core_make_dir (lua_State *L) {
  size_t len, i;
  const char *path = luaL_checklstring(L, 1, &len);
  char buf[PATH_MAX];
  if (len == 0 || len >= sizeof buf || strlen(path) != len)
    return aigc_fail_errno(L, path, len == 0 || strlen(path) != len ? ENOENT : ENAMETOOLONG);
  memcpy(buf, path, len + 1);
  for (i = 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != '\0')
      continue;
    if (buf[i - 1] == '/')   /* ("a//b", "a/": no empty name) */
      continue;
    buf[i] = '\0';
    if (make_one(buf) != 0)
      return aigc_fail_errno(L, buf, errno);
    buf[i] = path[i];
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int core_link (lua_State *L) {
  const char *from = luaL_checkstring(L, 1);
  const char *to = luaL_checkstring(L, 2);
  if (link(from, to) != 0)
    return aigc_fail_errno(L, to, errno);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg dirfs_funcs[] = {
  {"list_dir", core_list_dir},
  {"make_dir", core_make_dir},
  {"link", core_link},
  {NULL, NULL}
};

void aigc_dirfs_open (lua_State *L) {
  luaL_setfuncs(L, dirfs_funcs, 0);
}
