/*
** slowdns.c — an LD_PRELOAD shim for spec/dns_cancel_spec.lua: a DNS that
** takes its time, as a slow or unreachable resolver does (a laptop on a
** captive Wi-Fi, a DNS server down: getaddrinfo returns after its
** timeouts, seconds). getaddrinfo("slow.aigc.test") appends a line to
** $SLOWDNS_MARK (so the test knows the lookup is under way), sleeps
** $SLOWDNS_MS milliseconds, then resolves 127.0.0.1; every other name goes
** to the real getaddrinfo.
**   cc -shared -fPIC -o slowdns.so spec/support/slowdns.c -ldl
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*gai_fn) (const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo (const char *node, const char *service, const struct addrinfo *hints,
                 struct addrinfo **res) {
  gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
  if (node != NULL && strcmp(node, "slow.aigc.test") == 0) {
    const char *ms = getenv("SLOWDNS_MS"), *mark = getenv("SLOWDNS_MARK");
    long n = ms != NULL ? atol(ms) : 2000;
    struct timespec ts;
    if (mark != NULL) {
      FILE *f = fopen(mark, "a");
      if (f != NULL) {
        fputs("resolving\n", f);
        fclose(f);
      }
    }
    ts.tv_sec = n / 1000;
    ts.tv_nsec = (n % 1000) * 1000000L;
    nanosleep(&ts, NULL);
    node = "127.0.0.1";
  }
  return real(node, service, hints, res);
}
