/*
** form.h — a call's body options beyond JSON, read from Lua into a
** request's aigc_body (body.h): opts.method ("DELETE", "GET"), opts.form (a
** multipart/form-data upload), opts.sink (where a 2xx reply goes) and
** opts.absolute (opts.path is a whole URL: the Lua layer decides which
** headers go to another origin).
**
**   opts.form = { {name = "purpose", value = "batch"},
**                 {name = "file", path = "/tmp/in.jsonl", filename =, type =, field =},
**                 {name = "file", data = bytes, filename = "x.wav", type =}, ... }
**   opts.sink = "bytes" | {path = "out.wav"} | function(chunk) ... end
**   opts.events = function(event) ... end   (an SSE stream of typed events;
**                 engine:submit sends "stream": true for it)
**   opts.audio = true   (audio expected: with a function sink, a 2xx JSON
**                 or text/... reply is kept as the body, not given to it;
**                 with events, a 2xx audio/... reply goes to the events
**                 function as chunks, the audio itself: body.h)
**
** Part data given as a Lua string is copied by libcurl. A path must name a
** regular file (else the call raises: a FIFO or a device could block the
** loop); it is opened, and its size taken, when each attempt is sent, and
** libcurl reads it then (body.h): no Lua runs then. `field` is the
** caller's name for a path part in errors ("params.image[2]"); without it
** the part's name stands in ("file": params.file), or for a list's item
** ("image[]") its place in the form (params.form[3]).
*/
#ifndef AIGC_FORM_H
#define AIGC_FORM_H

#include "body.h"
#include "util.h"

/*
** Reads opts (at index o, a table or nil) into b; raises on misuse (the
** message blames cx). Allocates Lua values: b must belong to a request
** whose __gc frees it (aigc_body_free) if this raises. Returns 1 when
** opts.sink or opts.events is a function, left pushed on the stack; else 0.
*/
int aigc_form_read (lua_State *L, int o, aigc_body *b, const aigc_argctx *cx);

#endif
