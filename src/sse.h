/*
** sse.h — an incremental Server-Sent Events parser in plain C (no Lua).
**
** Bytes go in as they arrive from the network, in pieces of any size; whole
** events come out through a handler. The rules are the WHATWG event-stream
** rules as the OpenAI SDKs apply them (REFERENCE.md, "Server-sent events"):
**
**   - lines end in LF, CR or CRLF; a CRLF split across two feeds is one
**     line end, not two;
**   - a line starting with ':' is a comment and is ignored;
**   - a field line splits at the first ':'; exactly one space after the
**     colon is stripped; a line with no colon is a field with an empty value;
**   - "event" sets the event type, "data" appends to the data (several data
**     lines are joined with "\n"), "id" sets the id (ignored if it contains
**     NUL), "retry" and unknown fields are ignored; "error" (not WHATWG's:
**     llama.cpp's server wrote its stream errors as `error: {...}` until
**     late 2024) is read as "event: error" with its value as a data line;
**   - a blank line dispatches the event if a "data" or "event" field was seen
**     since the last dispatch, then resets data and type (the id persists, as
**     in the WHATWG spec);
**   - bytes are bytes: nothing is decoded, so a UTF-8 character split across
**     feeds is reassembled exactly; NUL bytes in values are kept (lengths are
**     explicit);
**   - a UTF-8 BOM at the start of the stream (after blank lines only, if any) is skipped.
**
** The parser has no size limit of its own. `max_event` (0 = none) bounds the
** bytes held for one event: at every line, the length of the line (without
** its line end) plus the data and type gathered so far. Every line counts,
** comments too, whether it arrived in one feed or in many, so the outcome
** does not depend on how the stream is cut. Going over makes aigc_sse_feed
** return AIGC_SSE_TOOBIG; the event being built and the rest of that feed
** are dropped. Recognising "[DONE]" is the caller's job: it is just an event
** whose data is "[DONE]".
*/
#ifndef AIGC_SSE_H
#define AIGC_SSE_H

#include <stddef.h>

#include "buf.h"

enum {
  AIGC_SSE_OK = 0,
  AIGC_SSE_NOMEM = -1,     /* an allocation failed; the parser is unusable */
  AIGC_SSE_TOOBIG = -2,    /* an event exceeded max_event */
  AIGC_SSE_STOPPED = -3    /* the handler returned nonzero */
};

typedef struct aigc_sse_event {
  const char *type;        /* the "event" field, NUL-terminated; "" if none */
  size_t type_len;
  const char *data;        /* data lines joined with "\n"; not NUL-terminated
                              (it may lie in the fed bytes: sse.c) */
  size_t data_len;
  const char *id;          /* last event id seen, NUL-terminated; "" if none */
  size_t id_len;
  int has_data;            /* a "data" field was seen (data may still be "") */
} aigc_sse_event;

/*
** Called once per dispatched event. The event's pointers are valid only
** during the call. Returning nonzero stops the feed at once: aigc_sse_feed
** returns AIGC_SSE_STOPPED and the unread rest of that feed is dropped.
*/
typedef int (*aigc_sse_handler) (void *ud, const aigc_sse_event *ev);

typedef struct aigc_sse {
  aigc_buf line;           /* a line not yet terminated by the last feed */
  aigc_buf data;           /* data of the event being built */
  aigc_buf type;           /* event type of the event being built */
  aigc_buf id;             /* last event id */
  size_t max_event;        /* 0 = unlimited */
  size_t consumed;         /* total bytes fed since init or reset */
  int pending_cr;          /* the last feed ended in CR: skip one leading LF */
  int seen_data;           /* a data field was seen since the last dispatch */
  int seen_type;           /* an event field was seen since the last dispatch */
  int bom_state;           /* bytes of a leading BOM matched so far, -1 done */
} aigc_sse;

void aigc_sse_init (aigc_sse *p, size_t max_event);

/* Feed `len` bytes; dispatches every event they complete. */
int aigc_sse_feed (aigc_sse *p, const char *bytes, size_t len,
                   aigc_sse_handler handler, void *ud);

/*
** Nonzero when the parser holds part of an event: an unterminated line, or
** fields not yet dispatched by a blank line. At end of stream this means the
** stream was cut inside an event (the WHATWG rule is to drop it silently;
** aigc reports it).
*/
int aigc_sse_pending (const aigc_sse *p);

/*
** End of stream: a line held unterminated is taken as a whole line, then an
** event still pending is dispatched, as though the blank line that ends it
** had come. The WHATWG rule drops such an event, and a stream cut inside
** one ends the same way: the handler is the caller's way to accept only
** what a cut cannot have made (aigc: a final "[DONE]", transfer.c).
** Returns as aigc_sse_feed; nothing is pending afterwards.
*/
int aigc_sse_finish (aigc_sse *p, aigc_sse_handler handler, void *ud);

/*
** Forget everything held, the last event id included, and look for a BOM
** again (start of a new response); keeps the memory.
*/
void aigc_sse_reset (aigc_sse *p);

void aigc_sse_free (aigc_sse *p);

#endif
