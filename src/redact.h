/*
** redact.h — an engine's secrets and their redaction from a text
** (redact.c): what errors and log lines are scrubbed with.
**
** A secrets block (aigc_secrets_from_config: the secrets, their base64, hex...
** forms and an index of them; its layout is redact.c's) is owned by an
** engine and valid as long as the engine userdata lives; NULL: none.
** Every function that takes one copies it into Lua before any allocation
** could run a finalizer.
*/
#ifndef AIGC_REDACT_H
#define AIGC_REDACT_H

#include <stddef.h>

#include "util.h"

/* The secrets block of an engine config (secret, secrets, auth headers),
   malloc'ed, or NULL; raises on a value of the wrong type. */
char *aigc_secrets_from_config (lua_State *L, int idx);
void aigc_secrets_free (char *secrets);
/* A request's own block when its header lines (the list at hidx, 0:
   none) or the strings at sidx (0: none: a call's query credentials)
   carry a credential the engine's block does not: all, malloc'ed; else
   NULL. */
char *aigc_secrets_with_call (lua_State *L, int hidx, int sidx, const char *engine);
/* The same, pushed in a box (a userdata whose __gc zeroes and frees it):
   *box is the block, or NULL when the call adds no secret. */
char **aigc_secrets_box (lua_State *L, int hidx, int sidx, const char *engine);
/* Zeroes and frees a box's block now (the box stays, empty). */
void aigc_secrets_box_free (char **box);
/* Pushes s[0..len) with every secret (every run of 12 bytes or more of
   one, or of its base64, hex or percent-encoded forms, in any ASCII
   case) replaced by "[redacted]". */
void aigc_error_push_scrubbed (lua_State *L, const char *s, size_t len, const char *secrets);
/* How many bytes of s[0..len) to quote before more text: len less a tail
   of 8 bytes or more that starts a secret (a cut secret). No allocation. */
size_t aigc_secrets_cut (const char *secrets, const char *s, size_t len);
/* The bytes of a block (to copy it into a Lua string). */
size_t aigc_secrets_len (const char *secrets);
/* Whether s[0..len) holds something to redact. Allocates nothing. */
int aigc_secrets_found (const char *s, size_t len, const char *secrets);
/* Replaces the string on top (the block, as a Lua string, just below it)
   by its scrubbed form; pops the block. */
void aigc_secrets_scrub_top (lua_State *L);

#endif
