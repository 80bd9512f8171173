#ifndef TOLLGATE_CHIREDIS_SHIM_H
#define TOLLGATE_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <sys/time.h>

/// redisSetTimeout takes a struct timeval by value; this keeps the Swift side free of timeval plumbing.
static inline int tg_redis_set_timeout_ms(redisContext *c, long ms) {
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    return redisSetTimeout(c, tv);
}

static inline redisContext *tg_redis_connect_ms(const char *host, int port, long ms) {
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    return redisConnectWithTimeout(host, port, tv);
}
/// The context's error text (a char array in the struct, awkward to read from Swift).
static inline const char *tg_redis_errstr(redisContext *c) { return c->errstr; }
#endif
