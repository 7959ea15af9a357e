/*
** dirfs.h — core.list_dir, core.make_dir, core.link: folders and names
** without a shell (dirfs.c).
*/
#ifndef AIGC_DIRFS_H
#define AIGC_DIRFS_H

#include "util.h"

/* Sets list_dir, make_dir and link in the table on top of the stack. */
void aigc_dirfs_open (lua_State *L);

#endif
