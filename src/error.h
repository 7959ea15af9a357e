/*
** error.h — error objects (the "aigc.error" metatable), the redaction of
** secrets from them and from log lines, and where the errors of callbacks
** and the client's log lines go (the client's error_handler, step()'s list,
** stderr; its log function).
**
** A secrets block (aigc_secrets_from_config: the secrets, their base64, hex...
** forms and an index of them; its layout is error.c's) is owned by an
** engine and valid as long as the engine userdata lives; NULL: none.
** Every function that takes one copies it into Lua before any allocation
** could run a finalizer.
*/
#ifndef AIGC_ERROR_H
#define AIGC_ERROR_H

#include <stddef.h>

#include "util.h"

void aigc_error_open (lua_State *L);
/* Pushes a new error object {kind=, message=} with the error metatable. */
void aigc_error_new (lua_State *L, const char *kind, const char *message);
/* Sets err[field] = v on the error on top. */
void aigc_error_setint (lua_State *L, const char *field, lua_Integer v);
/* Pushes a "limit" error: "<what> holds <detail> (the limit is max_json_...)". */
void aigc_error_json_limit (lua_State *L, const char *what, const char *detail);

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
/* Replaces the string on top by its form with controls escaped (CR, LF,
   ESC... as Lua writes them), if it has any. */
void aigc_error_escape_top (lua_State *L);
/* Scrubs the value at idx: a string is replaced by its scrubbed form, a
   table is scrubbed in place (every string value and key, any depth); an
   error object's message gets its control characters escaped. */
void aigc_error_scrub (lua_State *L, int idx, const char *secrets);

/*
** An error raised by Lua code the engine ran, where it cannot fail a
** request (on_done/on_error, a waiter, a spawned task, the log function,
** the watch callbacks), the engine userdata at eidx: scrubbed, then given
** to the client's error_handler if it has one (if the handler itself
** raises, both errors go to stderr), else kept in the engine's list for
** the next step() (beyond AIGC_MAX_KEPT_ERRORS kept, stderr instead).
*/
void aigc_error_report (lua_State *L, int eidx, int erridx, const char *secrets);
/*
** Replaces the error a callback raised (on top, with its traceback appended
** by aigc_pcall's handler) by an error object of kind "callback": message =
** what the callback raised, traceback = where; a value not a string (no
** traceback then) is kept as err.value, its text (error_report.c) the
** message.
*/
void aigc_error_from_callback (lua_State *L);
/* Writes what no step() collected to stderr (the client closes). */
void aigc_error_flush (lua_State *L, int eidx);
/* Calls the client's log function, if any, with (level, the line scrubbed). */
void aigc_error_log (lua_State *L, int eidx, const char *secrets, const char *level,
                     const char *fmt, ...) AIGC_PRINTF(5, 6);

#endif
