/*
** sha256.h — SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104), plain C.
**
** For the keys a disk cache files its entries under: a digest of a call's
** credentials keyed with the folder's random key, from which no key can
** be tried back without that key (lua/aigc/cache.lua). Not for speed; no
** allocation, no Lua.
*/
#ifndef AIGC_SHA256_H
#define AIGC_SHA256_H

#include <stddef.h>

#define AIGC_SHA256_BYTES 32

/* HMAC-SHA-256 of msg under key (any length). */
void aigc_hmac_sha256 (const void *key, size_t klen, const void *msg, size_t mlen,
                       unsigned char out[AIGC_SHA256_BYTES]);

#endif
