/*
** raccum.h — merges the typed events of a streamed Responses API call
** (POST /responses with "stream": true) into the response a non-streamed
** call returns. Plain C, no Lua: it works on json.h trees (each event
** parsed into an arena, which it only reads; the response is an owned
** tree). The chat completions' accumulator is accum.h.
**
** Rules (the event shapes of openapi.yaml, ResponseStreamEvent):
**   - Snapshots: response.created / queued / in_progress / completed /
**     incomplete / failed carry a whole "response": every member of it but
**     "output" replaces the accumulated one (status, usage, error,
**     incomplete_details...). "output" is built from the events below; a
**     snapshot's output is taken whole while none was built (a server that
**     sends created + completed and nothing between), and the last one's
**     (completed, incomplete, failed) completes the items built as an
**     output_item.done would (below).
**   - Items by "output_index", content parts by "content_index", reasoning
**     summary parts by "summary_index" (each 0..AIGC_RACCUM_MAX_INDEX; the
**     slots between are null until filled):
**       output_item.added             output[oi] = item
**       content_part.added            output[oi].content[ci] = part
**       reasoning_summary_part.added  output[oi].summary[si] = part
**       output_text.delta             output[oi].content[ci].text ..= delta
**       refusal.delta                 output[oi].content[ci].refusal ..= delta
**       reasoning_text.delta          output[oi].content[ci].text ..= delta
**       reasoning_summary_text.delta  output[oi].summary[si].text ..= delta
**       function_call_arguments.delta output[oi].arguments ..= delta
**       mcp_call_arguments.delta      output[oi].arguments ..= delta
**       custom_tool_call_input.delta  output[oi].input ..= delta
**       code_interpreter_call_code.delta  output[oi].code ..= delta
**       shell_call_command.added / .delta / .done
**                                     output[oi].action.commands[ci] = / ..= / fills
**       shell_call_output_content.delta  output[oi].output[ci].stdout / .stderr ..= delta
**       shell_call_output_content.done  output[oi].output[ci] completed by
**                                     the one content of its "output" list
**     (ci: command_index; a .done list of several contents changes nothing:
**     their meaning is not documented, the item's output_item.done completes it)
**       output_text.annotation.added  ...content[ci].annotations[ai] = annotation
**     A delta for a slot nobody added creates it, typed: an item
**     {"type":"message"} ("reasoning" for summaries and reasoning text or
**     parts, "function_call" for arguments, "mcp_call", "custom_tool_call",
**     "code_interpreter_call", "shell_call", "shell_call_output"), a part {"type":"output_text"}
**     ("refusal", "summary_text", "reasoning_text").
**   - The ".done" events (output_item.done, content_part.done,
**     reasoning_summary_part.done, output_text.done, refusal.done,
**     function_call_arguments.done...) complete what was built: each member
**     they carry replaces the accumulated one, except the text the deltas
**     built (text, refusal, arguments, input, code, and an item's content /
**     summary), which they fill only when no delta came (it is absent, null, or an
**     empty string or array; a built content / summary list is completed
**     part by part, so a part added empty takes the done event's text).
**     So the result is what the deltas say, and a server whose deltas and
**     done events disagree is
**     caught by comparing the result with its response.completed payload.
**   - "sequence_number", when present, must be the previous one + 1 (the
**     first may be any): a gap, a repeat or a step back is
**     AIGC_RACCUM_SEQUENCE. Two exceptions, for servers that do not count
**     (LiteLLM's synthesized streams number every event 0; gateways number
**     the response.failed they make up 0): a repeat before any step of
**     + 1 (the same number on every event so far), and a response.failed
**     whatever its number (the failure is what the caller must hear).
**   - A resumed stream (aigc_raccum_resume: GET /responses/{id}?stream=true
**     &starting_after=N) starts at N + 1, and what its deltas build lacks
**     what came before N: its last snapshot's output replaces the built one.
**   - Any other event type (error, keep-alives, future types) changes
**     nothing: the caller passes it on untouched.
**
** Limits: the values an event may copy into the tree (its response, item,
** part, annotation or final text) and the slots it makes on the way (the
** nulls up to an index, a new item, part or list, the member a delta goes
** to) are counted, cumulatively (a replaced value still counts: the bound
** is on the work a stream can make aigc do), against
** limits.max_values / max_containers (zero: the defaults); an event that
** would pass them is refused whole with AIGC_RACCUM_LIMIT. So the tree
** never holds more nodes than the limits allow, however far the indexes
** jump. An event that would merge into, or copy to, the response, an
** item, a part or an action an object of more than AIGC_RACCUM_MAX_MEMBERS
** members is refused too (AIGC_RACCUM_LIMIT, "an object of more than N
** members"): their keys are searched linearly, so objects a server lets
** grow without bound would make merging quadratic (real ones hold a few
** dozen members at most: a response ~35, an item or part under 10).
** After BADSHAPE, LIMIT or SEQUENCE the tree is as it was; after NOMEM it
** may hold empty slots the event made (null items, an empty string), which
** the same event merged again fills as if nothing had failed. Nothing leaks.
*/
#ifndef AIGC_RACCUM_H
#define AIGC_RACCUM_H

#include <stdint.h>

#include "json.h"

enum {
  AIGC_RACCUM_OK = 0,
  AIGC_RACCUM_NOMEM = -1,
  AIGC_RACCUM_BADSHAPE = -2,   /* a field of the wrong type, an index out of range */
  AIGC_RACCUM_LIMIT = -3,      /* the tree would pass a->limits */
  AIGC_RACCUM_SEQUENCE = -4    /* sequence_number skipped or went back */
};

/* How far the response got (the last snapshot event seen). */
typedef enum aigc_raccum_end {
  AIGC_RACCUM_PENDING = 0,     /* no response.completed / incomplete / failed yet */
  AIGC_RACCUM_COMPLETED,
  AIGC_RACCUM_INCOMPLETE,
  AIGC_RACCUM_FAILED
} aigc_raccum_end;

#define AIGC_RACCUM_MAX_INDEX 1023
#define AIGC_RACCUM_MAX_MEMBERS 128

typedef struct aigc_raccum {
  aigc_json_limits limits;     /* set by the owner after init (init: defaults) */
  aigc_json_value root;        /* owned object: the response so far */
  size_t values, containers;   /* copied into root so far (cumulative) */
  size_t events;               /* events merged (unknown types included) */
  int64_t last_seq;            /* the last sequence_number seen */
  int have_seq;
  int seq_counts;              /* a step of + 1 was seen (or resumed): the server counts */
  int resumed;                 /* a resumed stream: kept by reset, as the limits */
  int64_t resumed_after;       /* its starting_after */
  aigc_raccum_end end;
  char error[128];             /* why the last add failed */
} aigc_raccum;

void aigc_raccum_init (aigc_raccum *a);
/* Forgets everything but the limits (a new attempt). */
void aigc_raccum_reset (aigc_raccum *a);
void aigc_raccum_free (aigc_raccum *a);
/* The stream resumes after sequence number n (call after init). */
void aigc_raccum_resume (aigc_raccum *a, int64_t n);

/*
** Merges one parsed event. `type` is the event's type: its "type" member,
** or when it has none the SSE event name (type/tlen; may be NULL).
** Returns AIGC_RACCUM_OK or an error (a->error says why; the tree is
** unchanged, but the sequence number is taken even then).
*/
int aigc_raccum_add (aigc_raccum *a, const char *type, size_t tlen, const aigc_json_value *ev);

/* The event's type: its "type" member if a string, else type/tlen. */
const char *aigc_raccum_event_type (const aigc_json_value *ev, const char *type, size_t tlen,
                                    size_t *len);

/*
** The response's output text, as the SDKs' `output_text` defines it: the
** "text" of every "output_text" part of every "message" item of "output",
** in order, each given to put(ud, text, len). Returns 0, or the first
** nonzero put returned.
*/
int aigc_raccum_output_text (const aigc_json_value *response,
                             int (*put)(void *ud, const char *s, size_t n), void *ud);

#endif
