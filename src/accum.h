/*
** accum.h — merges the chunks of a streamed completion into the one
** completion a non-streamed call would have returned. Plain C, no Lua: it
** works on json.h trees (each chunk parsed into an arena; the accumulated
** completion is an owned tree).
**
** Rules (REFERENCE.md, "Accumulating chat chunks"):
**   - A chunk whose "object" is "" is an Azure content filter annotation
**     (prompt_filter_results; a choice's results, the last one's
**     "finish_reason": "content_filter" when the async filter cut it): it is
**     merged without its "id", "object", "created", "model" and
**     "system_fingerprint" ("", 0) and not counted in a->chunks. A chunk
**     whose "object" is another string other than the expected chunk
**     object ("chat.completion.chunk" or, as Hugging Face TGI 1.4 to 2.0
**     sent, "text_completion" for chat; "text_completion" for completions)
**     is skipped. A chunk without "object" is accepted (some compatible
**     servers omit it).
**   - Top level: "choices" is merged as below; "usage" is set when non-null
**     (and is null until then); "object" becomes "chat.completion" or
**     "text_completion"; "obfuscation" is dropped; any other member (id,
**     created, model, system_fingerprint, service_tier, extras) is taken
**     from the first chunk that has it non-null and replaced by later
**     non-null values (never appended).
**   - Choices are keyed by their "index" (0..127), not by position. Chat:
**     "delta" merges into "message"; completions: "text" appends. Each
**     choice's "finish_reason" is set when non-null; "logprobs" (and a
**     "message" streamed instead of "delta") merges; its other members
**     merge as below but a string in them replaces, never appends (Azure
**     repeats content_filter_results in every chunk).
**     A choice with no "index" is index 0.
**   - Merging a delta object into an accumulated object, member by member:
**       absent in acc          -> copied in (null too);
**       delta value null       -> no change;
**       key "index", "type", "id", "name", "role", "finish_reason",
**       "format"                -> replaced (so a server that repeats a
**                                  tool call's id/name in every delta does
**                                  not double them, nor OpenRouter the
**                                  "format" of each reasoning_details item);
**                                  but "" does not replace a string (the
**                                  "id": "", "name": "" of a call's pieces);
**       both strings            -> appended (content, refusal, arguments,
**                                  text, reasoning_content, ...);
**       both objects            -> merged recursively;
**       both arrays             -> if the delta's items are objects with a
**                                  non-null "index" (tool_calls): merged by
**                                  that index, which must be an integer in
**                                  0..127 (else BADSHAPE, naming it: a float
**                                  or a string is no index), but an item whose
**                                  "id" differs from the one its index
**                                  holds is another item (every parallel
**                                  call at index 0); otherwise the items
**                                  are appended (logprobs content/refusal,
**                                  completion tokens/token_logprobs/...);
**       anything else           -> replaced.
**   - A delta's "content" that is a list of parts (Mistral's Magistral
**     models: [{"type": "thinking", "thinking": [{"type": "text", ...}]}],
**     then text parts or strings), or a string after one: the message's
**     content becomes a list of parts (the text before it its first text
**     part); a part continuing the last one's type (text, thinking)
**     extends it (its other members, Mistral's "closed", replaced),
**     another one is appended.
**   - A key repeated inside one object of a chunk counts once, with its
**     last value, as JSON decoders (aigc's Lua tables, the SDKs) read it:
**     {"content":"a","content":"b"} merges "b", the text the stream
**     callback was given.
**   - An array is merged by "index" only while every item it holds came
**     that way (at most 128 items, each an object with its index); once a
**     delta without indexes was appended to it, later deltas are appended.
**   - aigc_accum_finish shapes the result like a non-streamed response:
**     choices sorted by index, each chat message has "role" ("assistant"
**     when the stream never said) and "content" (null when no content
**     arrived), every choice has "finish_reason" (null if never set) and
**     "logprobs" (null if never set), tool calls sorted by index with the
**     "index" member removed (non-streamed tool calls have none).
**
** Cost: every add is linear in the chunk (plus the strings it appends to),
** whatever the chunks before it held: keys are found in big accumulated
** objects through a hash table that lives as long as the accumulator
** (seeded per accumulator, so a server cannot aim keys at one bucket),
** choices and indexed items through 128-entry maps.
**
** Limits: the merged tree may hold at most limits.max_values values and
** limits.max_containers arrays and objects (json.h's aigc_json_limits; zero
** fields: the defaults), counted as the tree holds them (a replaced value
** stops counting). A chunk that would pass them is refused whole with
** AIGC_ACCUM_LIMIT. aigc_accum_finish builds its result as a copy: a
** finished accumulator holds the tree twice.
*/
#ifndef AIGC_ACCUM_H
#define AIGC_ACCUM_H

#include <stdint.h>

#include "accum_keys.h"
#include "json.h"

typedef enum aigc_accum_kind {
  AIGC_ACCUM_CHAT,
  AIGC_ACCUM_COMPLETION
} aigc_accum_kind;

enum {
  AIGC_ACCUM_OK = 0,
  AIGC_ACCUM_NOMEM = -1,
  AIGC_ACCUM_BADSHAPE = -2,  /* not an object, "choices" not an array, an
                                index not an integer in 0..127, a delta not
                                an object */
  AIGC_ACCUM_LIMIT = -3      /* the merged tree would pass a->limits */
};

#define AIGC_ACCUM_MAX_INDEX 127

#define AIGC_ACCUM_SCAN_SLOTS 4

/*
** Private to accum_scan.c: the last chunk the scanner merged, kept as a
** template. A chunk that repeats its bytes exactly, except inside its
** string slots (the delta's content, "obfuscation" padding), merges the
** same way: only the content differs. Every aigc_accum_add, finish and
** free forgets it (valid = 0), since the tree may change under it.
*/
typedef struct aigc_accum_memo {
  char *bytes;                  /* the chunk's text (malloc'ed) */
  size_t len, cap;
  size_t slot_start[AIGC_ACCUM_SCAN_SLOTS];   /* a string slot: from its opening quote */
  size_t slot_end[AIGC_ACCUM_SCAN_SLOTS];     /* to just past its closing one */
  int nslots;
  int content_slot;             /* the slot of the delta's content, -1: none */
  int k;                        /* the choice's index */
  aigc_json_value *content;     /* the accumulated content it appends to */
  int valid;
} aigc_accum_memo;

typedef struct aigc_accum {
  aigc_accum_kind kind;
  aigc_json_limits limits;       /* set by the owner after init (init: defaults) */
  size_t values;          /* values in root's tree (root not counted) */
  size_t containers;      /* arrays and objects among them */
  aigc_json_value root;          /* owned AIGC_JSON_OBJECT: the completion so far, as
                             merged (choices in arrival order, tool calls
                             still with their "index"); read the result
                             through aigc_accum_finish and release it with
                             aigc_accum_free, never aigc_json_free */
  size_t chunks;          /* chunks merged (skipped ones not counted) */
  char error[96];         /* why the last call returned BADSHAPE or LIMIT
                             (LIMIT: "more than N values", or "more than N
                             arrays and objects", as aigc_json_parse says it) */
  aigc_keytable keys;     /* private: member positions, by hash */
  aigc_accum_memo memo;   /* private: accum_scan.c's template */
} aigc_accum;

void aigc_accum_init (aigc_accum *a, aigc_accum_kind kind);

/*
** Merges one parsed chunk (which it only reads: the chunk's arena may be
** reset right after). On an error, BADSHAPE, LIMIT or NOMEM alike, the
** tree is unchanged and a->error says why. A skipped chunk returns OK
** without counting in a->chunks.
*/
int aigc_accum_add (aigc_accum *a, const aigc_json_value *chunk);

/*
** The fast path for a chat stream's common chunk (accum_scan.c): merges the
** chunk straight from its JSON text data[0..len) when aigc_accum_add, given
** the parsed chunk, would change nothing but append text to a choice's
** accumulated content (or change nothing). Returns 1 when it merged it
** (counted in a->chunks); then *text is the text choice 0 received, as the
** stream callback gets it (decoded; the bytes just appended, valid until
** the next add or free), or NULL when the chunk gives choice 0 no string
** content. Returns 0 when it declined, having changed nothing: parse the
** chunk and give it to aigc_accum_add, which merges it or says why not.
*/
int aigc_accum_scan (aigc_accum *a, const char *data, size_t len, const char **text,
                     size_t *text_len);

/*
** Shapes the tree as described above and returns it (owned by the
** accumulator, valid until the next add/free). May be called more than
** once (for a partial result, then again): shaping builds a separate tree
** and leaves the merge state alone, so chunks added after a finish merge
** exactly as if it had not been called. Cheap to repeat with no add in
** between (the same tree is returned). NULL on ENOMEM.
*/
const aigc_json_value *aigc_accum_finish (aigc_accum *a);

/*
** After aigc_accum_finish: nonzero when the completion is incomplete —
** no choice at all, or a choice without a finish_reason.
*/
int aigc_accum_incomplete (const aigc_accum *a);

/* Frees everything; the accumulator is then as aigc_accum_init left it,
   its kind and limits kept. */
void aigc_accum_free (aigc_accum *a);

#endif
