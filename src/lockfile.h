/*
** lockfile.h — core.lockfile(path): a process's exclusive hold on a file
** name (the dataset runner's results file), released however the process
** ends.
*/
#ifndef AIGC_LOCKFILE_H
#define AIGC_LOCKFILE_H

#include "util.h"

#define AIGC_LOCK_MT "aigc.lock"

/* Makes the lock's metatable and pushes the function core.lockfile. */
void aigc_lockfile_open (lua_State *L);

#endif
