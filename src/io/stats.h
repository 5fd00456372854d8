/* SPDX-License-Identifier: MIT */
/* stats.h — the counters each io loop keeps for the metrics endpoint. Each loop writes only its
 * own (a relaxed load and a relaxed store: plain moves, no locked instruction and no shared cache
 * line on the hot path); a scrape on any loop reads every loop's with relaxed loads and sums them.
 * A reading is never torn (64-bit atomics) and at most a few events behind. Reading through the
 * loops' post queues instead would make a scrape wait for the busiest loop and wake every loop
 * for it; counters that only grow need no more than a consistent value per field. */
#ifndef JRPC_IO_STATS_H
#define JRPC_IO_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef _Atomic uint64_t jrpc__ctr_t;

/* Adds n to a counter only this loop writes. */
static inline void jrpc__ctr_add(jrpc__ctr_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}
static inline uint64_t jrpc__ctr_get(const jrpc__ctr_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Duration histograms: upper bounds in microseconds, 100 µs (an inline call with its HTTP round)
 * to 10 s (past common deadlines' tenth); the last bucket has no bound. */
#define JRPC__HIST_DUR_BOUNDS_US                                                                   \
    {                                                                                              \
        100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 2500000,    \
            10000000                                                                               \
    }
/* Batch sizes: 1 to the default HTTP cap (1000). */
#define JRPC__HIST_BATCH_BOUNDS                                                                    \
    {                                                                                              \
        1, 2, 5, 10, 20, 50, 100, 200, 500, 1000                                                   \
    }
#define JRPC__HIST_MAX 15 /* buckets, the unbounded one included */

/* One histogram: per-bucket counts (not cumulative; the scrape sums them up), the sum of what was
 * observed (µs for durations) and the count. */
typedef struct jrpc__hist {
    jrpc__ctr_t b[JRPC__HIST_MAX];
    jrpc__ctr_t sum;
    jrpc__ctr_t count;
} jrpc__hist_t;

/* k observations of value v; its bucket under bounds[0..n) is the first bound at or above v, n
 * when none. */
static inline void jrpc__hist_add_n(jrpc__hist_t *h, const uint64_t *bounds, unsigned n, uint64_t v,
                                    uint64_t k)
{
    unsigned i = 0;
    while (i < n && v > bounds[i])
        i++;
    jrpc__ctr_add(&h->b[i], k);
    jrpc__ctr_add(&h->sum, v * k);
    jrpc__ctr_add(&h->count, k);
}
static inline void jrpc__hist_add(jrpc__hist_t *h, const uint64_t *bounds, unsigned n, uint64_t v)
{
    jrpc__hist_add_n(h, bounds, n, v, 1);
}
extern const uint64_t jrpc__hist_dur_bounds[];
extern const uint64_t jrpc__hist_batch_bounds[];
#define JRPC__HIST_DUR_N 14u
#define JRPC__HIST_BATCH_N 10u
static inline void jrpc__hist_dur(jrpc__hist_t *h, uint64_t us)
{
    jrpc__hist_add(h, jrpc__hist_dur_bounds, JRPC__HIST_DUR_N, us);
}

/* The limits whose refusals are counted (jrpc_limit_rejections_total{limit}); the connection
 * caps and the server-wide totals are counted in jrpc__io_t already. Extensions count theirs
 * through jrpc_call_limit_refused (upstream_queue: the gateway's max_queue). */
#define JRPC__LIMIT_MAP(XX)                                                                        \
    XX(BATCH, "max_batch")                                                                         \
    XX(BODY, "max_body")                                                                           \
    XX(HEADER, "max_header")                                                                       \
    XX(URL, "url_length")                                                                          \
    XX(RESPONSE, "max_response")                                                                   \
    XX(DEADLINE, "deadline")                                                                       \
    XX(WORKER_QUEUE, "worker_queue")                                                               \
    XX(REQUEST_TIMEOUT, "request_timeout")                                                         \
    XX(BODY_RATE, "min_body_rate")                                                                 \
    XX(SEND_TIMEOUT, "send_timeout")                                                               \
    XX(WS_MESSAGE, "max_ws_message")                                                               \
    XX(WS_MAX_QUEUE, "ws_max_queue")                                                               \
    XX(WS_MAX_SUBSCRIPTIONS, "ws_max_subscriptions")                                               \
    XX(UPSTREAM_QUEUE, "upstream_queue")

typedef enum {
#define XX(name, label) JRPC__LIMIT_##name,
    JRPC__LIMIT_MAP(XX)
#undef XX
        JRPC__LIMIT_COUNT
} jrpc__limit_t;

/* Transports, as the transport label says them. */
enum { JRPC__TR_HTTP = 0, JRPC__TR_WS, JRPC__TR_REST, JRPC__TR_COUNT };
/* Directions of compressed data, as the direction label says them. */
enum { JRPC__Z_IN = 0, JRPC__Z_OUT };

/* jrpc_calls_total's cells: (transport, method label, code) → count, in an open-addressed table
 * each loop inserts into (the key is stored last, with release, so a reader that sees a key sees
 * its count). Codes are whatever handlers answer, so the table is bounded: past it a call counts
 * under code "(other)" (JRPC__CALL_CODE_OTHER). 4096 cells (64 KiB a loop) hold 258 method labels
 * with a dozen codes each at the default max_method_labels. */
#define JRPC__CALL_CELLS 4096u
#define JRPC__CALL_CODE_ERROR 1u /* code: the JSON-RPC error code */
#define JRPC__CALL_CODE_OK 2u    /* code "ok" */
#define JRPC__CALL_CODE_OTHER 3u /* code "(other)": the table was full */
typedef struct jrpc__call_cell {
    _Atomic uint64_t key; /* 0: empty; else (code kind (JRPC__CALL_CODE_*) << 30 | transport
                             << 28 | label) << 32 | (uint32_t)code */
    jrpc__ctr_t n;
} jrpc__call_cell_t;

/* Method labels: 0 is "(unknown)", 1 "(other)", then the registered names (src/rpc numbers
 * them when the server starts). */
#define JRPC__LABEL_UNKNOWN 0u
#define JRPC__LABEL_OTHER 1u

typedef struct jrpc__stats {
    jrpc__ctr_t http_status[600];       /* answers by HTTP status (100 … 599) */
    jrpc__ctr_t ws_in, ws_out;          /* WebSocket messages received / sent */
    jrpc__ctr_t conns[JRPC__TR_COUNT];  /* connections accepted (HTTP) or upgraded (WS) */
    jrpc__ctr_t closed[JRPC__TR_COUNT]; /* of them, closed (or handed to WS: HTTP) */
    jrpc__ctr_t limits[JRPC__LIMIT_COUNT];
    jrpc__ctr_t calls_used; /* gauge: calls admitted here and not finished */
    jrpc__ctr_t mem_used;   /* gauge: bytes held by this loop's requests/answers */
    jrpc__hist_t batch;     /* items per batch */
    /* Compression (docs/compression.md), by [JRPC__TR_HTTP or JRPC__TR_WS][JRPC__Z_IN or _OUT]:
     * request bodies gunzipped and gzip answers (HTTP, REST included), messages inflated and
     * deflated (WS); counted only where compression happens, so plain traffic pays nothing. */
    jrpc__ctr_t z_msgs[2][2];        /* bodies or messages compressed (out) or decompressed (in) */
    jrpc__ctr_t z_plain[2][2];       /* their bytes uncompressed */
    jrpc__ctr_t z_wire[2][2];        /* their bytes compressed, as sent or received (no framing) */
    jrpc__ctr_t z_state[2];          /* gauge: bytes zlib holds for this loop's streams */
    jrpc__ctr_t ws_deflate[2];       /* WS connections that negotiated permessage-deflate, of them
                                        closed */
    jrpc__ctr_t batch_answers[2][2]; /* HTTP batch answers by [streamed][JRPC__ORDER_*] */
    jrpc__hist_t req_dur[JRPC__TR_COUNT]; /* request (HTTP) or message (WS) to its answer, µs */
    unsigned nlabels;                     /* method labels: call_dur's length */
    jrpc__hist_t *call_dur;               /* per method label, µs, calls that ran (NULL: none) */
    jrpc__call_cell_t *calls;             /* JRPC__CALL_CELLS (NULL: not counted) */
} jrpc__stats_t;

/* Allocates a loop's tables for nlabels method labels: 0 or JRPC_ENOMEM; jrpc__stats_release
 * frees them (the counters stay, zeroed by the loop's calloc). */
int jrpc__stats_init(jrpc__stats_t *s, unsigned nlabels);
void jrpc__stats_release(jrpc__stats_t *s);
/* Counts n calls of one transport, method label and JSON-RPC code (ok: is_error 0). Loop
 * thread. */
void jrpc__stats_call(jrpc__stats_t *s, unsigned tr, unsigned label, int is_error, int code,
                      uint64_t n);

/* The limit whose label is `name`, or -1. */
int jrpc__limit_find(const char *name);

/* One body or message of n plain bytes that is `wire` bytes compressed, on transport tr
 * (JRPC__TR_HTTP or JRPC__TR_WS) in direction dir. Loop thread. */
static inline void jrpc__stats_z(jrpc__stats_t *s, unsigned tr, unsigned dir, size_t n, size_t wire)
{
    jrpc__ctr_add(&s->z_msgs[tr][dir], 1);
    jrpc__ctr_add(&s->z_plain[tr][dir], n);
    jrpc__ctr_add(&s->z_wire[tr][dir], wire);
}

static inline void jrpc__stats_limit(jrpc__stats_t *s, jrpc__limit_t l)
{
    jrpc__ctr_add(&s->limits[l], 1);
}

#endif
