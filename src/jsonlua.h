/*
** jsonlua.h — Lua values <-> JSON (json.h trees), with the rules of the
** README's "Marshalling": aigc.null, the aigc.array mark, integers kept
** exact, tables with metatables, paths in every error.
*/
#ifndef AIGC_JSONLUA_H
#define AIGC_JSONLUA_H

#include "buf.h"
#include "json.h"
#include "util.h"

/*
** Encodes the request params table at idx as the request body: leaves out
** the per-call options (util.h) and `stream`, writes the model first
** (params.model, its old name `engine`, or default_model), then
** "stream": true when `stream`, and with `usage` a default stream_options
** asking for usage when the params have none. Empty tables at the fields
** the API defines as arrays are written []. Returns whether it wrote that
** default stream_options: then its AIGC_JSONLUA_STREAM_OPTIONS_LEN bytes
** are the last before the closing '}' (transfer.c drops them for a server
** that refuses the field).
*/
#define AIGC_JSONLUA_STREAM_OPTIONS_LEN 40
int  aigc_jsonlua_encode_params (lua_State *L, int idx, aigc_buf *out, const char *default_model,
                                 int stream, int usage, const aigc_argctx *cx);
/* Pushes the Lua form of v (tables, aigc.null, integers kept exact). */
void aigc_jsonlua_push (lua_State *L, const aigc_json_value *v);
/* The same, an object getting `extra` more slots for fields added after. */
void aigc_jsonlua_push_room (lua_State *L, const aigc_json_value *v, int extra);
/* The same, then the Lua value made for `keep` (a string of v's tree) above
   it, or nil when no string made was `keep` (or keep is NULL). */
void aigc_jsonlua_push_keep (lua_State *L, const aigc_json_value *v, int extra,
                             const aigc_json_value *keep);
/* Makes the strings replies are made of (at require time, so that no
   request pays for them, or sees their allocations). */
void aigc_jsonlua_open (lua_State *L);
int  aigc_jsonlua_decode (lua_State *L);     /* aigc.json.decode(s) */
int  aigc_jsonlua_encodefn (lua_State *L);   /* aigc.json.encode(v) */

#endif
