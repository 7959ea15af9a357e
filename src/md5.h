/*
** md5.h — MD5 (RFC 1321), plain C, incremental.
**
** For the Uploads API's `md5` (files_upload_parts' `md5 = true`: the digest
** of the bytes as they are sent, which the server checks against what it
** got). Not for security. No allocation, no Lua: the state is a plain
** struct, copied in and out of a Lua string by core.md5.
*/
#ifndef AIGC_MD5_H
#define AIGC_MD5_H

#include <stddef.h>
#include <stdint.h>

#define AIGC_MD5_BYTES 16

typedef struct aigc_md5 {
  uint32_t h[4];
  uint64_t bytes;          /* bytes hashed so far */
  unsigned char block[64];
} aigc_md5;

void aigc_md5_init (aigc_md5 *m);
void aigc_md5_update (aigc_md5 *m, const void *data, size_t len);
void aigc_md5_final (aigc_md5 *m, unsigned char out[AIGC_MD5_BYTES]);

#endif
