/*
** sha256_test.c — unit tests for src/sha256.c: RFC 4231's HMAC-SHA-256
** test cases 1-4, 6 and 7 (keys shorter than, equal to the digest and
** longer than a block, which is hashed first; messages of one and of
** three blocks), and a key or message changed by one bit changes it.
*/
#include <stdio.h>
#include <string.h>

#include "ctest.h"
#include "sha256.h"

static const char *hmac_hex (const void *key, size_t klen, const void *msg, size_t mlen) {
  static char out[65];
  unsigned char d[AIGC_SHA256_BYTES];
  int i;
  aigc_hmac_sha256(key, klen, msg, mlen, d);
  for (i = 0; i < AIGC_SHA256_BYTES; i++)
    sprintf(out + 2 * i, "%02x", d[i]);
  return out;
}

TEST(rfc4231_short_keys) {
  unsigned char key[25], msg[50];
  size_t i;
  memset(key, 0x0b, 20);
  CHECK(strcmp(hmac_hex(key, 20, "Hi There", 8),
               "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7") == 0);
  CHECK(strcmp(hmac_hex("Jefe", 4, "what do ya want for nothing?", 28),
               "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843") == 0);
  memset(key, 0xaa, 20);
  memset(msg, 0xdd, 50);
  CHECK(strcmp(hmac_hex(key, 20, msg, 50),
               "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe") == 0);
  for (i = 0; i < 25; i++)
    key[i] = (unsigned char)(i + 1);
  memset(msg, 0xcd, 50);
  CHECK(strcmp(hmac_hex(key, 25, msg, 50),
               "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b") == 0);
}

TEST(rfc4231_key_longer_than_a_block) {
  static const char m6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
  static const char m7[] = "This is a test using a larger than block-size key and a larger than "
                           "block-size data. The key needs to be hashed before being used by the "
                           "HMAC algorithm.";
  unsigned char key[131];
  memset(key, 0xaa, sizeof key);
  CHECK(strcmp(hmac_hex(key, sizeof key, m6, strlen(m6)),
               "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54") == 0);
  CHECK(strcmp(hmac_hex(key, sizeof key, m7, strlen(m7)),
               "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2") == 0);
}

TEST(one_bit_changes_it) {
  char a[65];
  strcpy(a, hmac_hex("key-0", 5, "credentials", 11));
  CHECK(strcmp(a, hmac_hex("key-1", 5, "credentials", 11)) != 0);
  CHECK(strcmp(a, hmac_hex("key-0", 5, "credentialt", 11)) != 0);
  CHECK(strcmp(a, hmac_hex("key-0", 5, "credentials", 11)) == 0);
}

int main (void) {
  RUN(rfc4231_short_keys);
  RUN(rfc4231_key_longer_than_a_block);
  RUN(one_bit_changes_it);
  return ctest_report("sha256");
}
