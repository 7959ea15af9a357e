/*
** server_error.h — what a server sent as an error (an error body, an
** "error" stream event, a redirect, a page that is not JSON) made into an
** error object on the Lua stack, its server strings scrubbed of the
** client's secrets. Used by response.c, for outcomes and stream events.
**
** Like response.h's functions, these read the request's transfer memory
** (r->resp, r->hdrs) across Lua allocations: the request must be pinned
** (`delivering`, request.c).
*/
#ifndef AIGC_SERVER_ERROR_H
#define AIGC_SERVER_ERROR_H

#include "transfer.h"
#include "util.h"

/* How many bytes of a server string to quote when more text follows: at
   most max, cut at a character and before a secret the cut would split. */
size_t aigc_server_error_quote_len (aigc_request *r, const char *s, size_t len, size_t max);
/* Pushes a new error of kind `kind` whose message is msg (a server's
   string), scrubbed. */
void aigc_server_error_new (lua_State *L, aigc_request *r, const char *kind,
                            const char *msg, size_t len);
/* Sets err.body on the error on top: at most 64 KiB of s, scrubbed. */
void aigc_server_error_set_body (lua_State *L, aigc_request *r, const char *s, size_t len);
/* Copies the string-or-number member `key` of object v into the error on
   top, under the same name (a string cut at 64 KiB, scrubbed). */
void aigc_server_error_copy_member (lua_State *L, aigc_request *r, const aigc_json_value *v,
                                    const char *key);
/* Pushes an error object of kind `kind` for the API error in `body` (an
   HTTP error's decoded body, an "error" event, a 200 body with an "error"
   member), whatever the provider's shape; `fallback` is its message when
   the body has none. err.body is the whole decoded body. */
void aigc_server_error_push (lua_State *L, aigc_request *r, const char *kind,
                             const aigc_json_value *body, const char *fallback);
/* Pushes the error (kind "http") for an HTTP status outside 2xx, from the
   body kept (r->resp) and the headers: status, retry_after. */
void aigc_server_error_push_http (lua_State *L, aigc_request *r, long status);

#endif
