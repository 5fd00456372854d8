/* SPDX-License-Identifier: MIT */
/* jrpc/upstream.h — the gateway's client (libjrpc_upstream, pkg-config jrpc-upstream): forwards
 * calls of chosen methods to upstream JSON-RPC services over HTTP(S). It is a library of its own so
 * that libcurl loads only into programs that use it; it reaches the server only through jrpc.h
 * (methods, docs, loop hooks). */
#ifndef JRPC_UPSTREAM_H
#define JRPC_UPSTREAM_H

#include "../jrpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Upstreams: the gateway (docs/gateway.md) ------------------------------------------------ */

/* An upstream is a JSON-RPC 2.0 service over HTTP(S), reached at one or more URLs (the nodes of
 * one chain, say), that serves some methods. jrpc_upstream_add registers those methods on a
 * server; their calls are forwarded. Every call one io loop receives for an upstream during one
 * loop iteration (all items of a client batch, and items of other requests that arrived with
 * them) is regrouped into upstream requests of at most max_batch items, sent concurrently under
 * max_in_flight over that loop's own keep-alive connections (the library's HTTP/1.1 client for
 * http://, libcurl for https://, HTTP/2 where TLS offers it), with ids of the gateway's own that
 * are mapped back to each call. A call the client sent alone is forwarded alone, as a single
 * request. At most max_queue calls wait for a place (more are answered -32005 at once), and a call
 * nobody waits for any more (jrpc_call_cancelled) is answered and dropped instead of being sent or
 * retried. Upstream JSON-RPC errors pass through; faults are answered per item with -32000 and data
 * {"upstream":NAME,"cause":KIND,"detail":TEXT} (KIND: jrpc_upstream_fault_name), never by failing
 * the whole client batch. */
typedef struct jrpc_upstream jrpc_upstream_t;

/* Most URLs of one upstream: the failover bookkeeping is a bit per URL, and a list of nodes this
 * long is already past what anyone keeps in one config section. */
#define JRPC_UPSTREAM_MAX_URLS 32

typedef struct jrpc_upstream_url {
    const char *url;   /* http:// or https://, with path and query (copied) */
    unsigned weight;   /* share of requests among the up URLs of the same priority; 0 = 1 */
    unsigned priority; /* lower first: a URL gets requests only while every lower one is down */
} jrpc_upstream_url_t;

/* The longest batch_wait: past a millisecond a wait costs clients more latency than a batch saves
 * the node (ganache answers a single call in ~15 us, an item of a batch in ~2 us). */
#define JRPC_UPSTREAM_BATCH_WAIT_MAX_US 1000u
/* The longest batch_hold: past a second a call held behind a batch out is stalled, not waiting for
 * company. */
#define JRPC_UPSTREAM_BATCH_HOLD_MAX_US 1000000u

typedef struct jrpc_upstream_config {
    const char *name;                /* in error data, logs and stats (copied) */
    const jrpc_upstream_url_t *urls; /* 1 … JRPC_UPSTREAM_MAX_URLS entries (copied) */
    size_t nurls;
    const char *const *methods; /* exact names or prefix patterns: "eth_*", "*" (copied) */
    size_t nmethods;
    const char *const *headers; /* extra request headers, "Name: value" (copied) */
    size_t nheaders;
    const char *ca_file;         /* PEM CA bundle for https (copied); NULL: the system's */
    unsigned max_batch;          /* items per upstream request; 1 = never send a batch */
    unsigned max_in_flight;      /* upstream requests at once; split evenly over io loops */
    unsigned timeout_ms;         /* one attempt, from sending to the answer's last byte */
    unsigned connect_timeout_ms; /* TCP (and TLS) connect of one attempt */
    unsigned retries;            /* attempts after a transport fault, each on another URL */
    unsigned recheck_ms;         /* a URL that failed is passed over this long */
    unsigned max_queue;          /* calls waiting to be sent (all loops); more get -32005 */
    /* Subscriptions through the gateway (docs/gateway.md#subscriptions): ws:// URLs in failover
     * order (copied; wss:// is refused, JRPC_EINVAL). With any, eth_subscribe and
     * eth_unsubscribe are served over one WebSocket per io loop to them; without, a client's
     * eth_subscribe that the methods would forward gets an error naming the missing ws_urls.
     * Read by jrpc_upstream_add only (a reconfigure keeps the ones in force). */
    const char *const *ws_urls;
    size_t nws_urls;
    /* Sharing answers (docs/gateway.md#sharing-answers). A call whose method matches one of the
     * built-in writes (jrpc_upstream_write_patterns) or dedup_deny is never merged or cached. */
    unsigned dedup;                /* 1: identical calls in flight at once on one io loop go
                                      upstream once, each waiter answered under its own id */
    const char *const *dedup_deny; /* more patterns never merged nor cached (copied) */
    size_t ndedup_deny;
    struct jrpc_upstream_cache *cache; /* NULL, or the response cache (borrowed: it must
                                          outlive the upstream); may be shared by upstreams */
    unsigned auto_batch;               /* 1: calls sent alone by clients join upstream batches */
    unsigned batch_wait_us;            /* auto_batch: how long the first waits for others; 0:
                                          until the end of the loop turn that received it; at
                                          most JRPC_UPSTREAM_BATCH_WAIT_MAX_US */
    unsigned batch_hold_us;            /* auto_batch: while a batch it made is out, calls sent
                                          alone wait for its answer (to go as the next batch)
                                          at most this long; 0: they never wait for it; at most
                                          JRPC_UPSTREAM_BATCH_HOLD_MAX_US */
    /* Hedging (docs/gateway.md#hedging): a chunk of reads whose answer has not come after a
     * delay gets a second attempt on another URL; the first answer wins, the other attempt is
     * cut. At most one of the two is non-zero; both 0: off. */
    unsigned hedge_after_ms; /* a fixed delay */
    unsigned hedge_quantile; /* 1 … 99: the delay is this latency quantile (pNN) of the
                                upstream's answered requests, once it has
                                JRPC_UPSTREAM_HEDGE_MIN_SAMPLES of them (no hedge before) */
    /* Active health (docs/gateway.md#health-probes): every probe_interval_ms one io loop sends
     * `probe` (a method without params, copied; NULL: off) to each URL; a URL whose probe fails,
     * or (eth_blockNumber) lags more than max_lag blocks behind the best URL, leaves the rotation
     * until a probe succeeds again. */
    const char *probe;
    unsigned probe_interval_ms; /* ≥ 1 when probe is set */
    unsigned probe_timeout_ms;  /* a probe without an answer this long fails; 0 (default): the
                                   smaller of timeout_ms and probe_interval_ms */
    unsigned max_lag;           /* blocks; 0: lag not checked */
    unsigned transport;         /* JRPC_UPSTREAM_TRANSPORT_AUTO (default): http:// URLs over the
                                   library's own HTTP/1.1 client, the rest over libcurl; _CURL:
                                   libcurl for every URL */
} jrpc_upstream_config_t;

/* The probe timeout cfg puts in force: probe_timeout_ms, or when it is 0 the smaller of
 * timeout_ms and probe_interval_ms (a probe answered after the next round was due is late; a
 * probe_interval_ms of 0 leaves timeout_ms). Inline, so that a program reading a config (jrpcd's
 * --check) says what the library will do without loading it. */
static inline unsigned jrpc_upstream_probe_timeout_ms(const jrpc_upstream_config_t *cfg)
{
    if (cfg->probe_timeout_ms != 0)
        return cfg->probe_timeout_ms;
    return cfg->probe_interval_ms != 0 && cfg->probe_interval_ms < cfg->timeout_ms
               ? cfg->probe_interval_ms
               : cfg->timeout_ms;
}

/* Answered requests an upstream needs before hedge_quantile gives a delay: fewer make the
 * quantile of a 12-bucket histogram a guess (p90 of 10 samples is the slowest one). */
#define JRPC_UPSTREAM_HEDGE_MIN_SAMPLES 100

/* How an upstream's requests travel (jrpc_upstream_config_t.transport; docs/gateway.md). */
#define JRPC_UPSTREAM_TRANSPORT_AUTO 0
#define JRPC_UPSTREAM_TRANSPORT_CURL 1

/* Fills *cfg with the defaults (docs/gateway.md gives the reason for each); name, urls and
 * methods stay empty. */
JRPC_EXTERN void jrpc_upstream_config_init(jrpc_upstream_config_t *cfg);

/* Creates an upstream from cfg (copied) and registers its methods on srv, JRPC_ASYNC |
 * JRPC_UNBOUNDED: exact local methods win over its patterns, the longest pattern wins. Before
 * jrpc_server_run only, on the thread that set the server up. 0 and *out, or JRPC_EINVAL (a bad
 * URL, name, header, or a zero count), JRPC_EEXIST (a method or pattern is registered already:
 * nothing was registered), JRPC_EBUSY (the server is running) or JRPC_ENOMEM. The upstream is the
 * caller's: free it with jrpc_upstream_free once the server will not run again. */
JRPC_EXTERN int jrpc_upstream_add(jrpc_server_t *srv, const jrpc_upstream_config_t *cfg,
                                  jrpc_upstream_t **out);
/* Applies new settings to an upstream, running or not: URLs (with weights and priorities),
 * headers, ca_file, max_batch, max_in_flight, timeouts, retries, recheck, max_queue, transport,
 * hedging and probes (probe is copied; probes go to the new URLs at once); also the server's
 * max_response as it is now. cfg->name and cfg->methods are not read: the methods an
 * upstream serves are registered once, by jrpc_upstream_add. Calls that arrive afterwards use
 * the new settings; calls already waiting or in flight finish with the ones they started with
 * (their URLs, timeout, retries), and each io loop's client of the old settings closes, its
 * connections with it, once it holds no call. A URL kept keeps its counters and its down state.
 * Any thread; not concurrently with jrpc_upstream_free. 0, JRPC_EINVAL (a bad URL or header, a
 * zero count: nothing changed) or JRPC_ENOMEM (nothing changed). */
JRPC_EXTERN int jrpc_upstream_reconfigure(jrpc_upstream_t *up, const jrpc_upstream_config_t *cfg);
/* Checks the settings jrpc_upstream_reconfigure reads, as it would, changing nothing: 0,
 * JRPC_EINVAL or JRPC_ENOMEM. Lets a caller that reconfigures several upstreams refuse the whole
 * change before applying any of it. Any thread. */
JRPC_EXTERN int jrpc_upstream_config_check(const jrpc_upstream_config_t *cfg);
/* Frees an upstream whose server is not running and will not run again (jrpc_server_run has
 * returned, or never started); before or after jrpc_server_free. NULL is a no-op. */
JRPC_EXTERN void jrpc_upstream_free(jrpc_upstream_t *up);
/* The name it was added with; lives as long as up. */
JRPC_EXTERN const char *jrpc_upstream_name(const jrpc_upstream_t *up);

/* Why an upstream request failed (the "cause" in error data, and stats keys). */
#define JRPC_UPSTREAM_FAULT_MAP(XX)                                                                \
    XX(CONNECT, "connect", "could not connect")                                                    \
    XX(TLS, "tls", "TLS handshake or certificate check failed")                                    \
    XX(TIMEOUT, "timeout", "no complete answer within the timeout")                                \
    XX(RESET, "reset", "connection reset or closed before the answer was complete")                \
    XX(HTTP, "http", "HTTP error status without a JSON-RPC answer")                                \
    XX(INVALID, "invalid", "answer is not JSON-RPC (not JSON, or malformed items)")                \
    XX(TOO_LARGE, "too_large", "answer larger than the server's max_response")                     \
    XX(BATCH_ERROR, "batch_error", "one error object answered a whole batch")                      \
    XX(MISSING, "missing", "fewer answers than calls")                                             \
    XX(UNKNOWN_ID, "unknown_id", "answers with ids that were not asked")

typedef enum {
#define JRPC__UPSTREAM_FAULT_ENUM(name, key, msg) JRPC_UPSTREAM_FAULT_##name,
    JRPC_UPSTREAM_FAULT_MAP(JRPC__UPSTREAM_FAULT_ENUM)
#undef JRPC__UPSTREAM_FAULT_ENUM
        JRPC_UPSTREAM_FAULT_COUNT
} jrpc_upstream_fault_t;

/* "connect", "timeout" …, or "unknown"; never NULL. */
JRPC_EXTERN const char *jrpc_upstream_fault_name(int fault);

/* Latency histogram of answered upstream requests: bucket i counts those that took at most
 * bound i microseconds (and more than bound i-1); the last bucket has no bound. */
#define JRPC_UPSTREAM_LATENCY_BUCKETS 12
#define JRPC_UPSTREAM_LATENCY_BOUNDS_US                                                            \
    {                                                                                              \
        250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, UINT64_MAX       \
    }

/* Counters since jrpc_upstream_add; every field only grows except the three gauges. */
typedef struct jrpc_upstream_stats {
    uint64_t requests;        /* HTTP requests sent, retries included */
    uint64_t retries;         /* of those, sent again after a fault */
    uint64_t items;           /* calls forwarded */
    uint64_t items_failed;    /* calls answered -32000 by the gateway (a fault) */
    uint64_t items_rpc_error; /* calls the upstream answered with a JSON-RPC error */
    uint64_t faults[JRPC_UPSTREAM_FAULT_COUNT];      /* requests that failed, by cause */
    uint64_t latency_count;                          /* requests answered (any HTTP status) */
    uint64_t latency_sum_us;                         /* their total time, send to last byte */
    uint64_t latency[JRPC_UPSTREAM_LATENCY_BUCKETS]; /* their histogram (not cumulative) */
    uint64_t in_flight;                              /* gauge: requests in flight now */
    uint64_t queued;            /* gauge: requests waiting for a max_in_flight place */
    uint64_t items_dropped;     /* calls answered without being sent, or not retried: nobody waited
                                   for them any more (jrpc_call_cancelled) */
    uint64_t items_refused;     /* calls answered -32005: max_queue calls were waiting */
    uint64_t items_queued;      /* gauge: calls waiting to be sent (what max_queue bounds) */
    uint64_t items_queued_peak; /* the most items_queued has been */
    uint64_t items_joined;      /* calls answered with an identical call's answer (dedup) */
    uint64_t items_cached;      /* calls answered from the response cache */
    uint64_t hedges;            /* second attempts sent (hedge_after) */
    uint64_t hedges_won;        /* of those, the ones whose answer was used */
} jrpc_upstream_stats_t;

/* Per URL, in the order of the config. */
typedef struct jrpc_upstream_url_stats {
    uint64_t requests; /* HTTP requests sent to it */
    uint64_t faults;   /* of those, failed with a transport fault (connect … http) */
    int down;          /* 1 while it is passed over after a fault (recheck_ms) or a probe */
    int probed;        /* probes ran on it (the fields below mean something) */
    int probe_ok;      /* 1: its last probe succeeded (and it does not lag) */
    uint64_t probe_us; /* how long its last answered probe took */
    uint64_t block;    /* eth_blockNumber probes: the block it reported last */
    uint64_t lag;      /* eth_blockNumber probes: blocks behind the best URL of the upstream */
} jrpc_upstream_url_stats_t;

/* A snapshot of the counters: any thread, any time (relaxed atomics; fields are read one by one,
 * so a snapshot taken under load may be a few events apart between fields). */
JRPC_EXTERN void jrpc_upstream_stats(const jrpc_upstream_t *up, jrpc_upstream_stats_t *out);
/* The URLs in force: their count, and one by one (0, or JRPC_ENOENT when i is out of range). The
 * URL text (*url, may be NULL) is the configured one with its path, query and credentials cut
 * ("https://host:443"), safe to log or publish; it stays valid until the upstream is
 * reconfigured, so a thread that may run concurrently with jrpc_upstream_reconfigure (a metrics
 * scrape) uses jrpc_upstream_url_each instead. */
JRPC_EXTERN size_t jrpc_upstream_url_count(const jrpc_upstream_t *up);
JRPC_EXTERN int jrpc_upstream_url_stats(const jrpc_upstream_t *up, size_t i, const char **url,
                                        jrpc_upstream_url_stats_t *out);
/* Calls cb(data, url, stats) for each URL in force, in config order, with the URL text as above
 * valid during the call. Any thread, also while the upstream is reconfigured. */
typedef void (*jrpc_upstream_url_cb)(void *data, const char *url,
                                     const jrpc_upstream_url_stats_t *stats);
JRPC_EXTERN void jrpc_upstream_url_each(const jrpc_upstream_t *up, jrpc_upstream_url_cb cb,
                                        void *data);

/* Subscriptions through the gateway (ws_urls), summed over the io loops. */
typedef struct jrpc_upstream_sub_stats {
    uint64_t subscriptions; /* gauge: upstream subscriptions open (one per loop and params) */
    uint64_t clients;       /* gauge: client subscriptions attached to them */
    uint64_t reconnects;    /* upstream WebSockets opened again after a loss */
} jrpc_upstream_sub_stats_t;
/* Any thread, any time (relaxed atomics); all 0 without ws_urls. */
JRPC_EXTERN void jrpc_upstream_sub_stats(const jrpc_upstream_t *up, jrpc_upstream_sub_stats_t *out);

/* ---- Response cache (docs/gateway.md#response-cache) --------------------------------------- */

/* Answers of upstreams kept for a time each method's rule gives, in a byte budget (least
 * recently used go first), shared by every io loop (one lock) and every upstream that points at
 * it (keys include the upstream's name). Only results are kept: errors and null never. */
typedef struct jrpc_upstream_cache jrpc_upstream_cache_t;

/* A TTL no expiry ends (eth_chainId). */
#define JRPC_UPSTREAM_CACHE_FOREVER UINT64_MAX

typedef struct jrpc_upstream_cache_rule {
    const char *pattern; /* exact name, or prefix ending in '*' (copied) */
    uint64_t ttl_ms;     /* 0: never cached; JRPC_UPSTREAM_CACHE_FOREVER */
} jrpc_upstream_cache_rule_t;

typedef struct jrpc_upstream_cache_config {
    size_t size; /* byte budget (keys, results and bookkeeping); 0: the cache is off */
    const jrpc_upstream_cache_rule_t *rules; /* the operator's: they win over the built-in
                                                ones (exact name first, then longest prefix) */
    size_t nrules;
    uint64_t tag_ttl_ms; /* at most this for a call naming latest, safe, finalized or earliest
                            (or leaving out the block of a method that takes one); 0: not
                            cached. "pending" is never cached */
    /* 1: a second level in the server's shared store (jrpc_server_kv_get: its Redis), so
     * servers sharing it share answers; the local cache stays the first level. Upstreams of
     * servers without a store ignore it. Keys: JRPC_UPSTREAM_CACHE_REDIS_PREFIX and a SHA-256 of
     * the upstream's name, the method and the params. */
    unsigned redis;
    size_t redis_max_value; /* a result longer than this is not stored in Redis, >= 1 */
} jrpc_upstream_cache_config_t;

/* Prefix of the cache's keys in Redis; the digit is the format's version, raised when what a key
 * or value means changes, so that servers of different versions never read each other's. */
#define JRPC_UPSTREAM_CACHE_REDIS_PREFIX "jrpc:c:1:"
/* What a `forever` answer is kept in Redis: a day. The local level keeps it forever; Redis is
 * shared and may run without an eviction policy, where keys without an expiry (blocks by hash
 * accumulate without end) would fill it. */
#define JRPC_UPSTREAM_CACHE_REDIS_FOREVER_MS 86400000u

/* size 32 MiB, no rules of the operator's, tag_ttl 0, redis off, redis_max_value 1 MiB. */
JRPC_EXTERN void jrpc_upstream_cache_config_init(jrpc_upstream_cache_config_t *cfg);
/* The built-in rules (used after the operator's): *n entries, static. */
JRPC_EXTERN const jrpc_upstream_cache_rule_t *jrpc_upstream_cache_default_rules(size_t *n);
/* The built-in write methods (never merged nor cached): a NULL-terminated static list. */
JRPC_EXTERN const char *const *jrpc_upstream_write_patterns(void);
/* 0 and *out, JRPC_EINVAL (a bad pattern) or JRPC_ENOMEM. Free after every upstream using it. */
JRPC_EXTERN int jrpc_upstream_cache_new(const jrpc_upstream_cache_config_t *cfg,
                                        jrpc_upstream_cache_t **out);
/* New settings, live (any thread): every entry is dropped (their TTLs came from the old rules).
 * 0, JRPC_EINVAL or JRPC_ENOMEM (nothing changed). */
JRPC_EXTERN int jrpc_upstream_cache_reconfigure(jrpc_upstream_cache_t *c,
                                                const jrpc_upstream_cache_config_t *cfg);
/* After every upstream that uses c was freed (they borrow it); NULL is ignored. */
JRPC_EXTERN void jrpc_upstream_cache_free(jrpc_upstream_cache_t *c);

typedef struct jrpc_upstream_cache_stats {
    uint64_t hits;      /* calls answered from the cache */
    uint64_t misses;    /* cacheable calls not found (forwarded) */
    uint64_t stores;    /* results kept */
    uint64_t evictions; /* entries pushed out by the byte budget */
    uint64_t expired;   /* entries found past their TTL */
    uint64_t bytes;     /* gauge: bytes held (what size bounds) */
    uint64_t entries;   /* gauge */
    /* The Redis level (redis on), for calls the local level missed: */
    uint64_t redis_hits;      /* calls answered from Redis */
    uint64_t redis_misses;    /* Redis answered: absent (forwarded) */
    uint64_t redis_timeouts;  /* GETs and SETs without an answer within [redis] timeout (a GET:
                                 forwarded) */
    uint64_t redis_errors;    /* GETs and SETs that got an error answer, or whose connection
                                 failed while they were in flight */
    uint64_t redis_stores;    /* results sent to Redis */
    uint64_t redis_too_large; /* results not sent: longer than redis_max_value */
    uint64_t redis_down;      /* GETs and SETs failed at once: the loop had no connection ready */
    uint64_t redis_full;      /* GETs and SETs failed at once: too many in flight on the loop */
    uint64_t redis_invalid;   /* GETs that found a value that is not one JSON value (forwarded) */
} jrpc_upstream_cache_stats_t;
/* A snapshot of the counters and gauges: any thread, any time. */
JRPC_EXTERN void jrpc_upstream_cache_stats(const jrpc_upstream_cache_t *c,
                                           jrpc_upstream_cache_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif
