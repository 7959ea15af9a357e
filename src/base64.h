/*
** base64.h — base64 and little-endian float32 decoding in plain C (no Lua).
**
** What the media APIs receive as text and want as bytes or numbers: an
** image's b64_json, an embedding sent with encoding_format = "base64"
** (little-endian IEEE-754 float32, base64'd). Both decoders are exact and
** strict: they say where the input is wrong instead of guessing.
*/
#ifndef AIGC_BASE64_H
#define AIGC_BASE64_H

#include <stddef.h>

/* An upper bound of the bytes decoding n characters can give. */
#define aigc_base64_max(n) ((n) / 4 * 3 + 3)

/*
** Decodes base64 (the standard alphabet, also the URL-safe one's '-' and
** '_'), skipping ASCII whitespace (servers wrap lines); '=' padding is
** optional but, when present, only at the end. `out` holds at least
** aigc_base64_max(n) bytes. Returns 0 and the length in *outlen, or -1 and
** the offset of the first bad character in *bad (a character outside the
** alphabet, data after padding, or a lone last character: *bad == n).
*/
int aigc_base64_decode (const char *in, size_t n, unsigned char *out, size_t *outlen,
                        size_t *bad);

/* Decodes `count` little-endian IEEE-754 float32 values from `in` (4 *
   count bytes) into `out`, exactly (every float32 is a double). */
void aigc_f32le_decode (const unsigned char *in, size_t count, double *out);

#endif
