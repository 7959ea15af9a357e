/*
** dirfs.h — core.list_dir, core.make_dir, core.link: folders and names
** without a shell (dirfs.c).
*/
#ifndef AIGC_DIRFS_H
#define AIGC_DIRFS_H

#include <sys/types.h>

#include "util.h"

/* What a stat(2) mode is: "file", "directory", "link", "fifo", "char",
   "block", "socket" or "other" (core.file_kind's and list_dir's names). */
const char *aigc_dirfs_kind (mode_t m);

/* Sets list_dir, make_dir and link in the table on top of the stack. */
void aigc_dirfs_open (lua_State *L);

#endif
