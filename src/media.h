/*
** media.h — the module's byte and vector helpers for Lua (core.media,
** core.vec): base64 and float32 decoding (base64.h), cosine similarity and
** top-k over a vector index (vec.h); bytes made a file as a download's
** file sink makes it (body.h).
*/
#ifndef AIGC_MEDIA_H
#define AIGC_MEDIA_H

#include "util.h"

#define AIGC_VECINDEX_MT "aigc.vec.index"

/* Pushes the table core.media, then core.vec (two values). */
void aigc_media_open (lua_State *L);

#endif
