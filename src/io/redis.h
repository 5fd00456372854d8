/* SPDX-License-Identifier: MIT */
/* redis.h — the budget store in Redis (redis.c): every jrpcd pointing at one Redis shares each
 * bucket, so a key has one budget however many instances serve it. One async hiredis connection
 * per io loop, one round trip (an EVALSHA of one Lua script) per reservation, bounded by a
 * timeout after which `fail` decides. */
#ifndef JRPC_IO_REDIS_H
#define JRPC_IO_REDIS_H

#include "budget.h"

#include <stddef.h>
#include <stdint.h>

/* Most reservations one loop has sent and not had answered (also those answered by their
 * timeout whose reply is still due): past it a reservation gets the `fail` answer at once. At
 * the default timeout a loop sends far fewer than this in one timeout's time unless Redis
 * stalls, and each holds its command (about 8 KB for a batch of 1000) until Redis answers or
 * the connection is dropped, so a loop holds at most ~8 MB for them. */
#define JRPC__REDIS_MAX_PENDING 1024u
/* Reconnect backoff: the first retry after 100 ms, doubling to at most 2 s, so a restarted
 * Redis is used again within 2 s and a dead one costs a connect attempt per loop every 2 s. */
#define JRPC__REDIS_BACKOFF_MIN_MS 100u
#define JRPC__REDIS_BACKOFF_MAX_MS 2000u
/* A connection whose oldest command has had no reply for this long (or 4 timeouts, if more) is
 * dropped, and the loop fails reservations at once until a new one is ready: a stalled Redis
 * (stopped, swapping) then costs a client nothing instead of a timeout each. A connection (TCP
 * and AUTH, SELECT, SCRIPT LOAD) must be ready within the same time. */
#define JRPC__REDIS_STALL_MS 1000u
/* Longest timeout: a budget answer later than a minute is of no use to a request (the default
 * deadline is 30 s); and the highest database number, Redis's own bound is far below. */
#define JRPC__REDIS_MAX_TIMEOUT_MS 60000u
#define JRPC__REDIS_MAX_DB 65535
/* A failure log line at most this often per store, with the count of failures since the last. */
#define JRPC__REDIS_LOG_EVERY_MS 10000u

/* Reservation outcomes, as jrpc_redis_requests_total{outcome} names them. */
#define JRPC__REDIS_OUTCOME_MAP(XX)                                                                \
    XX(OK, "ok")           /* Redis answered */                                                    \
    XX(TIMEOUT, "timeout") /* no answer within the timeout */                                      \
    XX(ERROR, "error")     /* an error reply, or the connection failed with it in flight */        \
    XX(DOWN, "down")       /* no connection ready: failed at once */                               \
    XX(FULL, "full")       /* JRPC__REDIS_MAX_PENDING in flight on the loop: failed at once */

enum {
#define XX(name, label) JRPC__REDIS_##name,
    JRPC__REDIS_OUTCOME_MAP(XX)
#undef XX
        JRPC__REDIS_OUTCOMES
};

/* How to reach Redis and what to do when it does not answer. Strings need not outlive
 * jrpc__budget_redis_new. */
typedef struct jrpc__redis_opts {
    const char *url;      /* redis://[[user]:password@]host[:port][/db] (port 6379) */
    const char *password; /* AUTH at connect (NULL or "": the URL's, if any) */
    int db;               /* SELECT at connect; < 0: the URL's, else 0 */
    uint64_t timeout_ms;  /* a reservation's answer is due within this, > 0 */
    int fail_closed;      /* 1: no answer refuses every item; 0: admits every item */
} jrpc__redis_opts_t;

/* Reads url: 0, or JRPC_EINVAL with a static reason in *why. host (cap bytes, NUL-terminated),
 * port, password (pcap bytes; "" when none) and db (-1 when the URL has none) may be NULL. No
 * name is resolved. Any thread. */
int jrpc__redis_url_parse(const char *url, char *host, size_t cap, unsigned *port, char *password,
                          size_t pcap, int *db, const char **why);

/* Attaches a hiredis async context to loop (redis_uv.c): 0, or -1 (out of memory; the context
 * is then the caller's to free). Loop thread. */
struct redisAsyncContext;
struct uv_loop_s;
int jrpc__redis_uv_attach(struct redisAsyncContext *ac, struct uv_loop_s *loop);

/* A Redis store: 0 and *out, or JRPC_EINVAL (a bad URL, an option out of range, a host that does
 * not resolve now: named in err) or JRPC_ENOMEM. The host is resolved here, once, so that no
 * loop ever waits on DNS; nothing connects until loop_start. Any thread, before the loops run. */
int jrpc__budget_redis_new(const jrpc__redis_opts_t *o, jrpc__budget_t **out, char *err,
                           size_t errlen);

/* A GET (val NULL) or a SET of val[0..vlen) with ttl_ms (0: none) of key on the connection of
 * loop `index`, for jrpc_server_kv_get/set (jrpc.h says what cb gets and the errors). Not
 * counted in the reservation outcomes. That loop's thread. */
int jrpc__redis_kv(jrpc__budget_t *b, unsigned index, const char *key, size_t klen, const char *val,
                   size_t vlen, uint64_t ttl_ms, jrpc_kv_cb cb, void *data);

/* What the metrics show: reservations per outcome, summed over the loops, and how many loops
 * have a connection ready out of how many started. Any thread (relaxed reads of counters each
 * loop writes alone). */
typedef struct jrpc__redis_stats {
    uint64_t outcomes[JRPC__REDIS_OUTCOMES];
    unsigned loops_up;
    unsigned loops;
} jrpc__redis_stats_t;
void jrpc__budget_redis_stats(jrpc__budget_t *b, jrpc__redis_stats_t *out);
/* The label of outcome i. */
const char *jrpc__redis_outcome_name(unsigned i);

#endif
