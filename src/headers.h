/*
** headers.h — HTTP headers: the request's (built from Lua, checked
** against header injection) and the response's (stored as libcurl hands
** them over, found by name, made into a Lua table), and what a server says
** about retrying (Retry-After, x-should-retry).
*/
#ifndef AIGC_HEADERS_H
#define AIGC_HEADERS_H

#include <curl/curl.h>

#include "buf.h"
#include "util.h"

/* The most header bytes a response may have: below libcurl's own limit
   (300 KB on the wire in 7.88 and 8.x), so a flood ends here, as a "limit"
   error, not in libcurl as a receive error taken for a connection fault. */
#define AIGC_MAX_HEADER_BYTES ((size_t)200 << 10)


/* Request headers */

/*
** What is wrong with a header, or NULL: the name must be a token (RFC 9110:
** no spaces, controls or separators), the value must hold no CR, LF or NUL
** (no header injection). The one rule: the Lua layer asks it through
** core.header_problem(name, value).
*/
const char *aigc_headers_problem (const char *name, size_t nlen, const char *value, size_t vlen);
/* A curl_slist of the array of "Name: value" strings at idx; raises
   naming a bad header. */
struct curl_slist *aigc_build_headers (lua_State *L, int idx);


/* Response headers */

typedef struct aigc_headers {
  aigc_buf buf;                 /* "name\0value\0"..., names lower-case */
  size_t n;                     /* headers in buf */
  int want_status_line;         /* the next line may start a response */
  int ended;                    /* a final (>= 200) response's headers ended */
  size_t wire;                  /* header bytes this attempt, 1xx responses' too */
} aigc_headers;

enum {
  AIGC_HEADERS_OK = 0,
  AIGC_HEADERS_TOOBIG,          /* more than AIGC_MAX_HEADER_BYTES */
  AIGC_HEADERS_NOMEM
};

/* A new attempt: nothing stored, a status line expected. Keeps the memory. */
void aigc_headers_start (aigc_headers *h);
void aigc_headers_free (aigc_headers *h);
/*
** Takes one line as libcurl's header callback gives it (with its line
** end). A status line ("HTTP/1.1 200 OK", the first or the real one after
** a 1xx) forgets what came before and sets *status; a blank line ends the
** headers (h->ended, after a final status); "Name: value" is stored, the
** name lower-cased, a NUL in either made a space. Every line counts
** towards AIGC_MAX_HEADER_BYTES, the 1xx responses' too, as libcurl counts
** them. Returns AIGC_HEADERS_*; plain C.
*/
int aigc_headers_line (aigc_headers *h, const char *line, size_t len, long *status);
/* The value of header `name` (lower-case), or NULL; *vlen its length. */
const char *aigc_headers_find (const aigc_headers *h, const char *name, size_t *vlen);
/*
** Pushes a table of every header (repeated ones joined by ", "), in time
** linear in the headers whatever a server sends. Reads h across Lua
** allocations: its owner must be pinned (a request being delivered).
*/
void aigc_headers_push (lua_State *L, const aigc_headers *h);
/*
** Gives the table at obj (a result) a `headers` field made on first read:
** its metatable keeps a copy of the store, and __index / __pairs build the
** table from it (aigc_headers_push's table) and set it in obj. Reads h
** across one Lua allocation: its owner must be pinned.
*/
void aigc_headers_set_lazy (lua_State *L, const aigc_headers *h, int obj);
/* If the table at obj is such a result whose headers were not made yet,
   makes them now (a walk over raw fields, such as the scrubber's, then
   sees them). */
void aigc_headers_materialize (lua_State *L, int obj);

/*
** Seconds the server asked us to wait (retry-after-ms, then retry-after as
** seconds or an HTTP date), never negative, or NAN when it said nothing
** usable.
*/
double aigc_headers_retry_after (const aigc_headers *h);
/* x-should-retry: 1 ("true"), 0 ("false"): every line and element of it
   alike; -1 (absent, conflicting or anything else). */
int aigc_headers_should_retry (const aigc_headers *h);
/* Pushes the values of every line of `name` joined with ", " (as
   res.headers shows them): 1; none: 0, nothing pushed. */
int aigc_headers_push_all (lua_State *L, const aigc_headers *h, const char *name);

#endif
