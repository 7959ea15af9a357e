/*
** engine.h — the engine object behind a client: core.engine(config), its
** methods, and the request methods that drive it (wait, pump).
*/
#ifndef AIGC_ENGINE_H
#define AIGC_ENGINE_H

#include "util.h"

/* Makes the engine's and the request's metatables; sets core.engine in the
   table on top. */
void aigc_engine_open (lua_State *L);

#endif
