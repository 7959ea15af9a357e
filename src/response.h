/*
** response.h — a request's transfer made into Lua values: the result
** table of a finished transfer, the error object of a failed one, each
** stream event merged into the accumulated reply and made into the stream
** callback's arguments.
**
** Every function here reads the request's transfer memory across Lua
** allocations: the request must be pinned (`delivering`, request.c), so
** that a finalizer that cancels it or closes its client defers the frees.
** None of them changes the request's state: request.c decides what an
** outcome does (end the request, retry, call the stream callback).
*/
#ifndef AIGC_RESPONSE_H
#define AIGC_RESPONSE_H

#include "transfer.h"
#include "util.h"

/*
** Pushes the outcome of r's finished attempt: the result table (returns
** 1) or an error object (returns 0; *retryable says whether another
** attempt may succeed: a connection failure, a 429/5xx...).
*/
int aigc_response_outcome (lua_State *L, aigc_request *r, int *retryable);
/* Adds the fields every failure carries to the error on top: request id,
   status, retries, headers. */
void aigc_response_decorate_error (lua_State *L, aigc_request *r);
/* Adds err.partial to the error on top: what a stream had accumulated. */
void aigc_response_add_partial (lua_State *L, aigc_request *r);

/* What aigc_response_event found. */
enum {
  AIGC_EVENT_SKIP,      /* nothing to deliver (an Azure content-filter event) */
  AIGC_EVENT_CHUNK,     /* merged into the reply: *chunk is it (r->arena); for
                           a chat chunk that aigc_accum_scan merged (the
                           callback wants no chunk table), only the text
                           choice 0 got: a STRING into r->accum, or NULL */
  AIGC_EVENT_ERROR,     /* an error object is pushed: the request fails */
  AIGC_EVENT_FAILED     /* the same, but *chunk is delivered first (a Responses
                           response.failed or "error" event: the API's own) */
};
/* Parses one stream event and merges it into the accumulated reply. */
int aigc_response_event (lua_State *L, aigc_request *r, const char *type, size_t tlen,
                         const char *data, size_t dlen, aigc_json_value *chunk);
/* A typed event (form.h, opts.events): pushes it decoded (with `type`
   from the event's name when its JSON has none) and keeps its data as the
   reply so far (AIGC_EVENT_CHUNK), or pushes the error (AIGC_EVENT_ERROR:
   not JSON, an "error" event, an object with an "error"). */
int aigc_response_typed_event (lua_State *L, aigc_request *r, const char *type, size_t tlen,
                               const char *data, size_t dlen);
/* Pushes the stream callback's arguments for a merged chunk: the text
   delta of choice 0 (or of a Responses output_text.delta event, its type
   read as the accumulator reads it: its "type" member, else type/tlen,
   the SSE event's name) or nil and, if it wants it, the chunk table.
   Returns how many. */
int aigc_response_push_delta (lua_State *L, aigc_request *r, const aigc_json_value *chunk,
                              const char *type, size_t tlen);

#endif
