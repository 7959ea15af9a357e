/*
** sse.c — an incremental Server-Sent Events parser; see sse.h.
**
** The feed loop works on the caller's bytes wherever it can. A line that
** starts and ends inside one feed is parsed where it lies; only the tail of
** a feed that has no line end yet is copied into p->line, and the first line
** end of a later feed completes it. A typical stream chunk, one "data" line
** and a blank line in one feed, costs a memchr for its line end and is
** handed to the handler where it lies (aigc_sse_dispatch_inplace): no copy,
** no allocation. Other events are gathered in p->data, whose buffers stop
** allocating once they have grown to the size of the events.
**
** Every byte is scanned once: new bytes are searched for line ends, the held
** partial line never is (it holds no CR or LF, by construction). So feeding
** an event of n bytes in pieces of any size costs O(n) amortized.
**
** Invariants between calls:
**   - p->line holds the current line seen so far, without its line end; it
**     is non-empty only if the last feed ended inside a line, and it never
**     contains CR or LF;
**   - p->data holds the data lines of the event being built joined with
**     "\n"; it is empty whenever seen_data is 0;
**   - p->type holds the value of the last "event" field since the last
**     dispatch (empty if none); p->id holds the last event id;
**   - bom_state is 0, 1 or 2 while the whole stream so far is blank lines
**     then a proper prefix of a UTF-8 BOM (those bytes are held implicitly:
**     they are the first bom_state bytes of sse_bom), and -1 once that is
**     settled;
**   - pending_cr is 1 when the last byte fed was a CR ending a line, so that
**     an LF starting the next feed belongs to that line end.
**
** How max_event is counted matters for one property the tests and the fuzzer
** check: an event stream gives the same events and the same status however
** it is cut into feeds. So the bound is a property of the stream, not of the
** buffering: at every line, (bytes of the line) + (data held) + (type held)
** must not exceed max_event, whether the line was held in p->line or parsed
** in place. A partial line is checked the same way with the bytes it has so
** far, which can only fire when the complete line would have fired too.
*/
#include <string.h>

#include "sse.h"

/* A leading UTF-8 byte order mark. */
static const char sse_bom[] = "\xEF\xBB\xBF";

#define SSE_BOMLEN 3


void aigc_sse_init (aigc_sse *p, size_t max_event) {
  static const aigc_buf empty = AIGC_BUF_INIT;
  p->line = empty;
  p->data = empty;
  p->type = empty;
  p->id = empty;
  p->max_event = max_event;
  p->consumed = 0;
  p->pending_cr = 0;
  p->seen_data = 0;
  p->seen_type = 0;
  p->bom_state = 0;
}


/*
** Forget the event being built: the partial line, its data and type. The
** id is not part of an event (it persists across dispatches).
*/
static void aigc_sse_drop_event (aigc_sse *p) {
  aigc_buf_clear(&p->line);
  aigc_buf_clear(&p->data);
  aigc_buf_clear(&p->type);
  p->seen_data = 0;
  p->seen_type = 0;
}


/*
** Would an event holding a line of `linelen` bytes, plus the data and type
** gathered so far, exceed max_event? The three sizes are sizes of distinct
** objects in memory, so data + type cannot overflow; the comparison is
** written so that adding linelen cannot either.
*/
static int aigc_sse_toobig (const aigc_sse *p, size_t linelen) {
  size_t held;
  if (p->max_event == 0)
    return 0;
  held = p->data.len + p->type.len;
  return held > p->max_event || linelen > p->max_event - held;
}


static int aigc_sse_fail_toobig (aigc_sse *p) {
  aigc_sse_drop_event(p);
  return AIGC_SSE_TOOBIG;
}


/*
** A blank line: hand the event to the handler if a "data" or "event" field
** was seen, then start a new event. The event's type and id are
** NUL-terminated by aigc_buf (the data is too, here, but sse.h does not
** promise it); an empty buffer may have no memory at all, hence "".
*/
static int aigc_sse_dispatch (aigc_sse *p, aigc_sse_handler handler,
                              void *ud) {
  aigc_sse_event ev;
  int stop;
  if (!p->seen_data && !p->seen_type)
    return AIGC_SSE_OK;
  ev.type = p->type.len > 0 ? p->type.data : "";
  ev.type_len = p->type.len;
  ev.data = p->data.len > 0 ? p->data.data : "";
  ev.data_len = p->data.len;
  ev.id = p->id.len > 0 ? p->id.data : "";
  ev.id_len = p->id.len;
  ev.has_data = p->seen_data;
  stop = handler(ud, &ev);
  aigc_buf_clear(&p->data);
  aigc_buf_clear(&p->type);
  p->seen_data = 0;
  p->seen_type = 0;
  return stop ? AIGC_SSE_STOPPED : AIGC_SSE_OK;
}


/*
** The fast path of aigc_sse_scan: an event that is one "data" line (its
** value v, before the one space is stripped) and the blank line ending it,
** both in the caller's bytes, is handed to the handler where it lies, with
** no copy into p->data. What the handler sees is what aigc_sse_line then
** aigc_sse_dispatch would give it, but for the NUL after the data (sse.h).
*/
static int aigc_sse_dispatch_inplace (aigc_sse *p, const char *v, size_t vlen,
                                      aigc_sse_handler handler, void *ud) {
  aigc_sse_event ev;
  if (vlen > 0 && v[0] == ' ') {
    v++;
    vlen--;
  }
  ev.type = "";
  ev.type_len = 0;
  ev.data = vlen > 0 ? v : "";
  ev.data_len = vlen;
  ev.id = p->id.len > 0 ? p->id.data : "";
  ev.id_len = p->id.len;
  ev.has_data = 1;
  return handler(ud, &ev) ? AIGC_SSE_STOPPED : AIGC_SSE_OK;
}


/*
** Append one "data" value. The first data line of an event that was held in
** p->line (so it arrived over several feeds, and may be huge) is not copied:
** the two buffers trade places and the value slides to the front, so a big
** single-line event occupies one buffer, not two. Either way p->data ends up
** NUL-terminated, and both buffers keep their memory for later events.
*/
static int aigc_sse_data (aigc_sse *p, const char *v, size_t vlen,
                          int held) {
  if (p->seen_data) {
    if (aigc_buf_putc(&p->data, '\n') != 0)
      return AIGC_SSE_NOMEM;
  }
  else {
    p->seen_data = 1;   /* p->data is empty (invariant) */
    if (held) {         /* v points into p->line */
      aigc_buf t = p->data;
      p->data = p->line;
      p->line = t;
      memmove(p->data.data, v, vlen);
      p->data.len = vlen;
      p->data.data[vlen] = '\0';
      return AIGC_SSE_OK;
    }
  }
  return aigc_buf_append(&p->data, v, vlen) != 0 ? AIGC_SSE_NOMEM
                                                 : AIGC_SSE_OK;
}


/*
** One complete line, without its line end: [s, s + n). `held` says whether
** it lies in p->line (otherwise in the caller's bytes, read-only).
*/
static int aigc_sse_line (aigc_sse *p, const char *s, size_t n, int held,
                          aigc_sse_handler handler, void *ud) {
  const char *colon, *v;
  size_t namelen, vlen;
  if (n == 0)
    return aigc_sse_dispatch(p, handler, ud);
  if (s[0] == ':')
    return AIGC_SSE_OK;                  /* comment */
  colon = (const char *)memchr(s, ':', n);
  if (colon != NULL) {
    namelen = (size_t)(colon - s);
    v = colon + 1;
    vlen = n - namelen - 1;
    if (vlen > 0 && v[0] == ' ') {       /* exactly one space is stripped */
      v++;
      vlen--;
    }
  }
  else {                                 /* the whole line names the field */
    namelen = n;
    v = s + n;
    vlen = 0;
  }
  switch (namelen) {
    case 4:
      if (memcmp(s, "data", 4) == 0)
        return aigc_sse_data(p, v, vlen, held);
      break;
    case 5:
      if (memcmp(s, "event", 5) == 0) {
        p->seen_type = 1;
        aigc_buf_clear(&p->type);
        if (aigc_buf_append(&p->type, v, vlen) != 0)
          return AIGC_SSE_NOMEM;
      }
      else if (memcmp(s, "error", 5) == 0) {   /* llama.cpp's `error: {...}` (sse.h) */
        p->seen_type = 1;
        aigc_buf_clear(&p->type);
        if (aigc_buf_append(&p->type, "error", 5) != 0)
          return AIGC_SSE_NOMEM;
        return aigc_sse_data(p, v, vlen, held);
      }
      break;
    case 2:
      if (memcmp(s, "id", 2) == 0 &&
          (vlen == 0 || memchr(v, '\0', vlen) == NULL)) {
        aigc_buf_clear(&p->id);
        if (aigc_buf_append(&p->id, v, vlen) != 0)
          return AIGC_SSE_NOMEM;
      }
      break;
    default:                             /* "retry" and unknown: ignored */
      break;
  }
  return AIGC_SSE_OK;
}


/* First `c` in [s, end), or end. */
static const char *aigc_sse_find (const char *s, const char *end, int c) {
  const char *r;
  if (s >= end)
    return end;
  r = (const char *)memchr(s, c, (size_t)(end - s));
  return r != NULL ? r : end;
}


/*
** Parse n > 0 bytes (the BOM question settled). `lf` and `cr` are the next
** LF and CR at or after s (or end); each is searched for again only once s
** has moved past it, so the bytes are searched at most once for LF and once
** for CR whatever mix of line ends they use (a stream of CR-only lines with
** one LF at the end does not rescan the feed for every line).
*/
static int aigc_sse_scan (aigc_sse *p, const char *s, size_t n,
                          aigc_sse_handler handler, void *ud) {
  const char *end = s + n;
  const char *lf, *cr;
  if (p->pending_cr) {                   /* the CR of a CRLF ended a feed */
    p->pending_cr = 0;
    if (*s == '\n' && ++s == end)
      return AIGC_SSE_OK;
  }
  lf = aigc_sse_find(s, end, '\n');
  cr = aigc_sse_find(s, end, '\r');
  for (;;) {
    const char *eol = lf < cr ? lf : cr;
    size_t len = (size_t)(eol - s);
    int r;
    if (eol == end) {                    /* no line end: hold the tail */
      if (aigc_sse_toobig(p, p->line.len + len))
        return aigc_sse_fail_toobig(p);
      if (aigc_buf_append(&p->line, s, len) != 0)
        return AIGC_SSE_NOMEM;
      return AIGC_SSE_OK;
    }
    if (p->line.len == 0 && *eol == '\n' && end - eol > 1 && eol[1] == '\n'
        && !p->seen_data && !p->seen_type && len >= 5 && memcmp(s, "data:", 5) == 0) {
      /* The common event, one data line and a blank line, both here */
      if (aigc_sse_toobig(p, len))
        return aigc_sse_fail_toobig(p);
      r = aigc_sse_dispatch_inplace(p, s + 5, len - 5, handler, ud);
      eol++;                             /* (the blank line's LF) */
    }
    else if (p->line.len > 0) {          /* completes the held line */
      if (aigc_sse_toobig(p, p->line.len + len))
        return aigc_sse_fail_toobig(p);
      if (aigc_buf_append(&p->line, s, len) != 0)
        return AIGC_SSE_NOMEM;
      r = aigc_sse_line(p, p->line.data, p->line.len, 1, handler, ud);
      aigc_buf_clear(&p->line);
    }
    else {                               /* a whole line in this feed */
      if (aigc_sse_toobig(p, len))
        return aigc_sse_fail_toobig(p);
      r = aigc_sse_line(p, s, len, 0, handler, ud);
    }
    if (r != AIGC_SSE_OK)
      return r;
    s = eol + 1;
    if (*eol == '\r') {
      if (s == end) {
        p->pending_cr = 1;
        return AIGC_SSE_OK;
      }
      if (*s == '\n')
        s++;
    }
    if (s == end)
      return AIGC_SSE_OK;
    if (lf < s)
      lf = aigc_sse_find(s, end, '\n');
    if (cr < s)
      cr = aigc_sse_find(s, end, '\r');
  }
}


/*
** The BOM is looked for only while the stream so far is blank lines (a
** proxy's or server's keep-alives, which dispatch nothing) then a prefix of
** it: a mark after them was the first line's start, "<BOM>data: ...", an
** unknown field, and the first event was lost. When it turns out not to be
** one, the bytes matched in earlier feeds are no longer in any buffer, but
** they are known: they are replayed from sse_bom. The bytes matched in this
** feed are simply not skipped.
*/
int aigc_sse_feed (aigc_sse *p, const char *bytes, size_t len,
                   aigc_sse_handler handler, void *ud) {
  if (len == 0)
    return AIGC_SSE_OK;
  p->consumed += len;
  if (p->bom_state == 0) {               /* blank lines first: parsed, the mark still awaited */
    size_t b = 0;
    while (b < len && (bytes[b] == '\n' || bytes[b] == '\r'))
      b++;
    if (b > 0) {
      int r = aigc_sse_scan(p, bytes, b, handler, ud);
      if (r != AIGC_SSE_OK || b == len)
        return r;
      bytes += b;
      len -= b;
    }
  }
  if (p->bom_state >= 0) {
    int k = p->bom_state;
    size_t i = 0;
    while (k < SSE_BOMLEN && i < len && bytes[i] == sse_bom[k]) {
      k++;
      i++;
    }
    if (k == SSE_BOMLEN) {               /* a whole BOM: skip it */
      p->bom_state = -1;
      bytes += i;
      len -= i;
      if (len == 0)
        return AIGC_SSE_OK;
    }
    else if (i == len) {                 /* still a prefix: wait */
      p->bom_state = k;
      return AIGC_SSE_OK;
    }
    else {                               /* not a BOM after all */
      int held = p->bom_state;
      p->bom_state = -1;
      if (held > 0) {
        int r = aigc_sse_scan(p, sse_bom, (size_t)held, handler, ud);
        if (r != AIGC_SSE_OK)
          return r;
      }
    }
  }
  return aigc_sse_scan(p, bytes, len, handler, ud);
}


int aigc_sse_pending (const aigc_sse *p) {
  return p->line.len > 0 || p->seen_data || p->seen_type || p->bom_state > 0;
}


/* (A partial BOM at the end is no line: dropped.) */
int aigc_sse_finish (aigc_sse *p, aigc_sse_handler handler, void *ud) {
  int r = AIGC_SSE_OK;
  p->bom_state = -1;
  p->pending_cr = 0;
  if (p->line.len > 0) {
    r = aigc_sse_line(p, p->line.data, p->line.len, 1, handler, ud);
    aigc_buf_clear(&p->line);
  }
  if (r == AIGC_SSE_OK)
    r = aigc_sse_dispatch(p, handler, ud);
  aigc_sse_drop_event(p);
  return r;
}


/* A new stream: the id goes too, and a BOM may start it again. */
void aigc_sse_reset (aigc_sse *p) {
  aigc_sse_drop_event(p);
  aigc_buf_clear(&p->id);
  p->consumed = 0;
  p->pending_cr = 0;
  p->bom_state = 0;
}


void aigc_sse_free (aigc_sse *p) {
  aigc_buf_free(&p->line);
  aigc_buf_free(&p->data);
  aigc_buf_free(&p->type);
  aigc_buf_free(&p->id);
  aigc_sse_reset(p);
}
