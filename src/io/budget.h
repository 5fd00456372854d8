/* SPDX-License-Identifier: MIT */
/* budget.h — the units a key or a client address may spend: one token bucket per name, refilled
 * at `rate` units a second up to `burst`. Two stores answer the same call: one in this process
 * (budget.c), and one in Redis (redis.c) that every jrpcd pointing at the same Redis shares, so
 * a key has one budget however many instances serve it.
 *
 * The arithmetic is exact for integer units: a bucket holds micro-units (units × 10^6) and gains
 * `rate` of them per elapsed microsecond, capped at burst × 10^6 (burst is at most 10^9, so the
 * state stays below 2^53 and the Redis store's Lua numbers, which are doubles, stay exact).
 *
 * A reservation is for the items of one request (an HTTP request or a WebSocket message), in
 * request order, in one step: item i is admitted when its cost fits in what remains after the
 * items admitted before it; an item that does not fit costs nothing and the next one is still
 * tried. So a batch of 10 one-unit calls against 7 units left runs its first 7 items. */
#ifndef JRPC_IO_BUDGET_H
#define JRPC_IO_BUDGET_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

/* The most units a bucket may hold (see above). */
#define JRPC__BUDGET_MAX_BURST 1000000000ull

typedef struct jrpc__budget jrpc__budget_t;

/* Which bucket, and its refill. `name` need not outlive the call. */
typedef struct jrpc__bucket {
    const char *name; /* "k:<key name>" or "a:<client address>" */
    size_t name_len;
    uint64_t rate;  /* units per second, > 0 */
    uint64_t burst; /* most units held, 1 … JRPC__BUDGET_MAX_BURST; a new bucket starts full */
} jrpc__bucket_t;

/* What a reservation did. */
enum {
    JRPC__BUDGET_OK = 0, /* the store answered */
    JRPC__BUDGET_OPEN,   /* the store did not answer in time or failed: every item admitted */
    JRPC__BUDGET_CLOSED, /* the same, with fail = closed: no item admitted */
};
typedef struct jrpc__budget_result {
    int status;              /* JRPC__BUDGET_* */
    uint64_t retry_after_ms; /* when an item was refused: until the first refused item would fit
                                (rounded up; 1000 when the store is down and closed) */
} jrpc__budget_result_t;

typedef void (*jrpc__budget_cb)(void *arg, const jrpc__budget_result_t *res);

/* A store's operations; a store is a struct whose first member is `const ops *`. */
typedef struct jrpc__budget_ops {
    /* Reserves for n items: costs[i] units each; ok[i] is 1 for items to try and 0 for items
     * to skip (they cost nothing) and, when done runs, says which were admitted. done runs
     * exactly once on `loop`'s thread: before the call returns (the local store) or later
     * (Redis: one round trip, bounded by its timeout). costs and ok must stay valid until then. */
    void (*reserve)(jrpc__budget_t *b, jrpc__loop_t *loop, const jrpc__bucket_t *bucket,
                    const uint32_t *costs, uint8_t *ok, size_t n, jrpc__budget_cb done, void *arg);
    /* On each io loop's thread when it starts (connects, for Redis) and when it closes its
     * handles (pending reservations complete first, as failures, before close returns its
     * handles). May be NULL. loop_start returns 0 or a JRPC_E* code. */
    int (*loop_start)(jrpc__budget_t *b, jrpc__loop_t *loop);
    void (*loop_close)(jrpc__budget_t *b, jrpc__loop_t *loop);
    /* After every loop has stopped. */
    void (*free)(jrpc__budget_t *b);
} jrpc__budget_ops_t;

struct jrpc__budget {
    const jrpc__budget_ops_t *ops;
};

/* The store in this process: buckets in a table under a mutex, shared by the loops (NULL when
 * out of memory). */
jrpc__budget_t *jrpc__budget_local_new(void);

static inline void jrpc__budget_reserve(jrpc__budget_t *b, jrpc__loop_t *loop,
                                        const jrpc__bucket_t *bucket, const uint32_t *costs,
                                        uint8_t *ok, size_t n, jrpc__budget_cb done, void *arg)
{
    b->ops->reserve(b, loop, bucket, costs, ok, n, done, arg);
}

#endif
