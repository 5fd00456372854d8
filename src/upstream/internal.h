/* SPDX-License-Identifier: MIT */
/* internal.h — private interface of src/upstream, the gateway: upstream objects (URLs, failover
 * state, counters), the per-io-loop client (client.c; its hedging in hedge.c) with its two
 * transports, the own HTTP/1.1 client for http:// URLs (h1.c) and a libcurl multi handle driven
 * from the loop (curl.c), and the chunk: one upstream HTTP request carrying up to max_batch
 * forwarded calls. Never installed. */
#ifndef JRPC_UPSTREAM_INTERNAL_H
#define JRPC_UPSTREAM_INTERNAL_H

#include "../util/log.h"
#include "jrpc.h"
#include "jrpc/upstream.h"

#include <uv.h>

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct jrpc__upctx jrpc__upctx_t;
typedef struct jrpc__chunk jrpc__chunk_t;
typedef struct jrpc__subs jrpc__subs_t;
typedef struct jrpc__h1 jrpc__h1_t;

/* One URL of an upstream: its health and counters, shared by every io loop (so atomic) and by
 * every version of the upstream's settings that lists the same URL, so that a reload keeps them. */
typedef struct jrpc__endpoint {
    atomic_uint refs;               /* one per version (jrpc__upconf_t) that lists it */
    char *url;                      /* as configured, handed to curl */
    char *display;                  /* scheme://host:port: for logs and stats, never secrets */
    uint8_t tls;                    /* https: HTTP/2 may be negotiated (a request may wait for a
                                       connection to multiplex on) */
    uint8_t h1;                     /* h1.c can send to it: http://, no user:password@ */
    char *h1_host;                  /* what to connect to: an address or a name (h1) */
    int h1_port;                    /* its port */
    char *h1_authority;             /* the Host header: host[:port] as in the URL */
    char *h1_target;                /* path and query, "/" when empty */
    _Atomic uint64_t down_until_ms; /* uv_hrtime() ms until which it is passed over; 0: up */
    _Atomic uint64_t requests;      /* requests sent to it */
    _Atomic uint64_t faults;        /* of those, transport faults */
    /* Active health (probe.c): written by the probing loop, read by any. */
    atomic_uint probe_down;    /* 1: its last probe failed or it lags; pick passes it over */
    atomic_uint probed;        /* a probe of it was answered or failed at least once */
    _Atomic uint64_t probe_us; /* how long its last answered probe took */
    _Atomic uint64_t block;    /* eth_blockNumber probes: the last block it reported */
    _Atomic uint64_t lag;      /* blocks behind the best URL of the upstream */
    atomic_uint block_ok;      /* block holds the answer of its last probe */
    atomic_uint probe_failed;  /* its last probe failed (fault, timeout, error answer) */
    uint8_t probing;           /* a probe of it is in flight (probing loop only) */
} jrpc__endpoint_t;

/* A URL in one version of the settings. */
typedef struct jrpc__upurl {
    jrpc__endpoint_t *ep; /* a reference */
    unsigned weight;      /* ≥ 1 */
    unsigned priority;    /* lower first */
} jrpc__upurl_t;

/* One version of what jrpc_upstream_reconfigure may change, never modified once made: the
 * current one is up->conf, and each per-loop client keeps the version it was made with for all
 * it sends, so that calls queued or in flight at a reload finish on the URLs and settings they
 * started with while new calls take the new ones. Freed with its last reference. */
typedef struct jrpc__upconf {
    atomic_uint refs; /* up->conf's, each client's, each reader's */
    uint64_t gen;     /* 1 at jrpc_upstream_add, one more per reconfigure */
    jrpc__upurl_t urls[JRPC_UPSTREAM_MAX_URLS]; /* in config order */
    unsigned neps;                              /* entries in urls */
    struct curl_slist *headers;   /* request headers, shared read-only by every loop */
    char *ca_file;                /* owned, or NULL for the system's CAs */
    unsigned max_batch;           /* calls per upstream request, >= 1 */
    unsigned loop_in_flight;      /* max_in_flight's share of one io loop, >= 1 */
    unsigned max_queue;           /* calls waiting to be sent, all loops together, >= 1 */
    unsigned timeout_ms;          /* one attempt */
    unsigned connect_timeout_ms;  /* its connect; 0: only timeout_ms */
    unsigned retries;             /* attempts after a transport fault */
    unsigned recheck_ms;          /* how long a failed URL is passed over */
    size_t max_answer;            /* bytes of one upstream answer (the server's max_response) */
    unsigned dedup;               /* merge identical calls in flight (share.c) */
    char **deny;                  /* dedup_deny patterns, owned */
    size_t ndeny;                 /* entries in deny */
    jrpc_upstream_cache_t *cache; /* borrowed; NULL: none */
    unsigned auto_batch;          /* singles join batches */
    uint64_t batch_wait_ns;       /* auto_batch: longest wait of the first single; 0: the turn */
    uint64_t batch_hold_ns;       /* auto_batch: longest hold behind a batch out; 0: none */
    unsigned hedge_after_ms;      /* hedging: fixed delay; 0: see hedge_quantile */
    unsigned hedge_quantile;      /* hedging: pNN delay; 0 with hedge_after_ms 0: off */
    char *probe;                  /* probe method (owned), or NULL: no probes */
    unsigned probe_interval_ms;   /* between probe rounds */
    unsigned probe_timeout_ms;    /* a probe's timeout (never 0: the default is resolved) */
    unsigned max_lag;             /* eth_blockNumber probes: blocks behind the best; 0: off */
    unsigned transport;           /* JRPC_UPSTREAM_TRANSPORT_*: curl forces libcurl everywhere */
} jrpc__upconf_t;

/* Counters of an upstream, updated by every io loop (relaxed atomics: they are statistics). The
 * fields mean what jrpc_upstream_stats_t's of the same names say. */
typedef struct jrpc__upstats {
    _Atomic uint64_t requests;
    _Atomic uint64_t retries;
    _Atomic uint64_t items;
    _Atomic uint64_t items_failed;
    _Atomic uint64_t items_rpc_error;
    _Atomic uint64_t faults[JRPC_UPSTREAM_FAULT_COUNT];
    _Atomic uint64_t latency_count;
    _Atomic uint64_t latency_sum_us;
    _Atomic uint64_t latency[JRPC_UPSTREAM_LATENCY_BUCKETS];
    _Atomic uint64_t in_flight;
    _Atomic uint64_t queued;
    _Atomic uint64_t items_dropped;
    _Atomic uint64_t items_refused;
    _Atomic uint64_t items_queued; /* also the max_queue bound's count, shared by the loops */
    _Atomic uint64_t items_queued_peak;
    _Atomic uint64_t items_joined;
    _Atomic uint64_t items_cached;
    _Atomic uint64_t hedges;
    _Atomic uint64_t hedges_won;
} jrpc__upstats_t;

struct jrpc_upstream {
    jrpc_server_t *srv;    /* the server its methods are registered on */
    char *name;            /* owned */
    char *log_prefix;      /* "upstream NAME: " (owned) */
    uv_mutex_t lock;       /* guards conf (the pointer) and the chains of ctx against
                              reconfigure and readers on other threads */
    jrpc__upconf_t *conf;  /* the settings in force (lock) */
    _Atomic uint64_t gen;  /* conf->gen: a loop compares its client's with it, lock-free */
    unsigned nctx;         /* the server's io_threads */
    jrpc__upctx_t **ctx;   /* [loop index]: the newest client of that loop (its older ones
                              hang from it), made by that loop's thread on first use and
                              after a reconfigure, freed by it when done; linked and unlinked
                              under lock, read without it by that thread */
    uint8_t *stopped;      /* [loop index]: its stop hook ran, calls are refused; that
                              loop's thread only (cleared by the start hook) */
    jrpc__upstats_t stats; /* counters, any thread */
    jrpc__subs_t *subs;    /* subscriptions through ws_urls (subs.c), or NULL */

    /* Health probes' timer on loop 0 (probe.c), or NULL while that loop does not run (lock to
     * reach it from other threads). */
    struct jrpc__prober *prober;
};

/* Answer times of auto_batch's batches a client keeps for its hold's bound (their median):
 * enough that one slow batch does not move it, few enough to follow a node whose load changes
 * within a second. */
#define JRPC__HOLD_SAMPLES 16

/* The client of one upstream on one io loop. Only that loop's thread touches it. */
struct jrpc__upctx {
    jrpc_upstream_t *up;          /* owner */
    const jrpc__upconf_t *conf;   /* the settings everything it sends uses (a reference) */
    jrpc__upctx_t *older;         /* the loop's client made before it, retiring (lock to link) */
    uv_loop_t *loop;              /* the io loop it runs on */
    unsigned index;               /* its place: up->ctx[index] */
    uv_async_t wake;              /* a reconfigure wakes the loop: an idle old client goes */
    CURLM *multi;                 /* curl.c's: its connection cache is the loop's curl pool */
    uv_timer_t timer;             /* libcurl's next timeout */
    uv_check_t check;             /* after each poll phase: flush pending calls, see closing */
    uv_idle_t idle;               /* active while calls are pending: the poll must not block */
    jrpc_call_t **batched;        /* calls from client batches waiting for the flush */
    size_t nbatched, cap_batched; /* entries used and allocated */
    jrpc_call_t **singles;        /* calls sent alone by their clients, waiting likewise */
    size_t nsingles, cap_singles; /* entries used and allocated */
    jrpc__chunk_t *wait_head;     /* chunks waiting for an in-flight place, FIFO */
    jrpc__chunk_t *wait_tail;     /* last of them */
    jrpc__chunk_t *flying;        /* chunks handed to curl (linked through next/prev) */
    unsigned in_flight;           /* how many */
    uint64_t swept_ms;            /* uv_now when the wait queue was last swept of cancelled calls */
    uint64_t next_id;             /* first id of the next chunk */
    int64_t wrr[JRPC_UPSTREAM_MAX_URLS]; /* smooth weighted round-robin state per URL */
    CURL **spare;                        /* easy handles to reuse (options set once) */
    size_t nspare, cap_spare;            /* entries used and allocated */
    struct jrpc__upsock **socks;         /* [fd]: watchers of curl's sockets, NULL where none */
    size_t cap_socks;                    /* entries allocated */
    unsigned open_handles;               /* timer/check/idle not yet closed */
    uint8_t closing;                     /* the loop has drained: handles closing */
    uint8_t busy;       /* a callback of ctx's is on the stack (it may be answering calls) */
    uint8_t stop_asked; /* the stop hook came while busy: ctx_close when the callback ends */
    uint8_t detached;   /* the loop is gone (jrpc__upctx_free_detached) */
    uint8_t kick;       /* requests were added: run curl before returning */
    uint8_t retiring;   /* a newer version of the settings is in force: it takes no new calls,
                           and closes (its connections with it) once it holds none */
    struct jrpc__share *share; /* calls in flight others may join (share.c); NULL until used */
    uint64_t auto_first_ns;    /* auto_batch: uv_hrtime() when the oldest pending single came */
    /* auto_batch's hold (client.c, hold_on): while the last batch it made is out, calls sent
     * alone wait for it, to go as the next batch rather than as many small ones. */
    size_t nholdable;       /* calls in batched that may wait so (sent alone, reads) */
    jrpc__chunk_t *hold_ch; /* the last batch auto_batch made, while out; NULL: none */
    uint64_t hold_ns;       /* uv_hrtime() when hold_ch was made */
    uv_timer_t hold_timer;  /* the end of the hold behind hold_ch */
    uint32_t hold_rtt_us[JRPC__HOLD_SAMPLES]; /* answer times of its last batches (a ring) */
    unsigned hold_nrtt;                       /* samples taken (the ring's next: % SAMPLES) */
    uint64_t hold_median_ns; /* of those samples; 0 until JRPC__HOLD_SAMPLES were taken */
    uv_timer_t hedge_timer;  /* hedging: the next chunk in flight whose hedge is due */
    unsigned hedges_flying;  /* hedge attempts in flight (a bound: see hedge_room) */
    jrpc__h1_t *h1;          /* h1.c's connection pools; NULL until used */
    unsigned lookups;        /* calls share.c holds while Redis is asked (each holds ctx) */
};

/* One upstream HTTP request: `n` forwarded calls, as a JSON array (is_batch) or one object. */
struct jrpc__chunk {
    jrpc__upctx_t *ctx;      /* the client sending it */
    jrpc__chunk_t *next;     /* in ctx's wait queue, or its list of chunks in flight */
    jrpc__chunk_t *prev;     /* in the list of chunks in flight */
    CURL *easy;              /* while handed to curl */
    struct jrpc__h1conn *h1; /* while on a connection of h1.c */
    jrpc_buf_t body;         /* the request body, kept for retries */
    jrpc_buf_t answer;       /* the answer so far */
    uint64_t base_id;        /* ids are base_id … base_id + n - 1, in call order */
    uint64_t sent_ns;        /* uv_hrtime() when the current attempt started */
    uint32_t tried;          /* bit per URL tried for this chunk */
    unsigned ep;             /* URL of the current attempt */
    unsigned attempts;       /* sent so far */
    uint8_t is_batch;        /* sent as a JSON array */
    uint8_t too_large;       /* the answer passed max_answer: the transfer was cut */
    uint8_t stale;           /* calls were pruned: the body must be built again before sending */
    uint8_t gathered;        /* holds calls sent alone that auto_batch put together */
    uint8_t own_ids;         /* pass-through: the body is the calls' own request objects, with
                                their own ids, and answers map back by id (id_slots) */
    uint32_t *id_slots;      /* own_ids: open-addressing table of call index + 1 by id hash */
    size_t id_mask;          /* its size - 1 (a power of two) */

    /* Hedging and probes (no calls of their own: n is 0 in a twin or a probe). */
    jrpc__chunk_t *hedge;       /* its second attempt in flight (a twin), or NULL */
    jrpc__chunk_t *hedge_of;    /* in a twin: the chunk whose calls its answer is for */
    struct jrpc__prober *probe; /* a probe: probe.c reads its answer */
    uint8_t parked;             /* its attempt failed while its twin flies: the twin decides */
    uint8_t hedged;             /* a hedge was sent (at most one per chunk) */

    struct jrpc__group **groups; /* NULL, or per call: the calls sharing its answer (share.c) */
    size_t n;                    /* calls */
    jrpc_call_t *calls[];        /* NULL once replied */
};

/* How long an attempt of ch may take: a probe has its own timeout (a URL that hangs is judged
 * before the next round), a call the upstream's. */
static inline unsigned jrpc__chunk_timeout_ms(const jrpc__chunk_t *ch)
{
    return ch->probe != NULL ? ch->ctx->conf->probe_timeout_ms : ch->ctx->conf->timeout_ms;
}

/* ---- upstream.c ------------------------------------------------------------------------------ */

/* Counts one event on a relaxed atomic. */
#define JRPC__UPSTAT_ADD(field, v) atomic_fetch_add_explicit(&(field), (v), memory_order_relaxed)

/* The URL (index into ctx->conf->urls) for the next attempt of a chunk that has tried `tried`
 * already: the lowest priority with an up, untried URL, weighted round-robin within it; failing
 * that an untried one that is down (soonest back first); failing that any. Loop thread of ctx. */
unsigned jrpc__upstream_pick(jrpc__upctx_t *ctx, uint32_t tried);
/* An attempt on URL ep of ctx->conf failed with a transport fault: pass it over for recheck_ms. */
void jrpc__upstream_mark_down(jrpc__upctx_t *ctx, unsigned ep, int fault, const char *detail);
/* An attempt on URL ep of ctx->conf got an answer: it is up again if it was down. */
void jrpc__upstream_mark_up(jrpc__upctx_t *ctx, unsigned ep);
/* The settings in force, with a reference (any thread); conf_unref drops it. */
const jrpc__upconf_t *jrpc__upstream_conf_get(jrpc_upstream_t *up);
void jrpc__upconf_unref(const jrpc__upconf_t *conf);
/* Logs through the server's log callback, if any and if level passes. */
void jrpc__upstream_log(jrpc_upstream_t *up, jrpc_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Monotonic milliseconds (uv_hrtime), the clock of down_until_ms. */
uint64_t jrpc__upstream_now_ms(void);

/* ---- client.c -------------------------------------------------------------------------------- */

/* The method handler every registered name and pattern of an upstream points at. */
void jrpc__upstream_call(jrpc_call_t *call, void *data);
/* The server's loop hooks: the loop `index` starts (its calls are taken), or it stops (drained,
 * or its drain time is over): every call its client still holds is answered -32000, transfers
 * are cut, handles closed, and later calls are answered at once. */
void jrpc__upstream_loop_start(void *loop, unsigned index, void *data);
void jrpc__upstream_loop_stop(void *loop, unsigned index, void *data);
/* Holds ctx for a call share.c keeps while Redis is asked: ctx is not idle and not freed until
 * jrpc__upstream_resume. */
void jrpc__upctx_hold(jrpc__upctx_t *ctx);
/* Redis answered for a held call: queue `call` (still first of its group in the table) as
 * jrpc__upstream_call would, or answer it and its group when ctx closed meanwhile; NULL: it was
 * answered. Drops the hold (ctx may be freed). Loop thread of ctx. */
void jrpc__upstream_resume(jrpc__upctx_t *ctx, jrpc_call_t *call);
/* Frees what a ctx holds without touching its loop (the loop is gone: a server that failed to
 * start). Main thread, from jrpc_upstream_free. */
void jrpc__upctx_free_detached(jrpc__upctx_t *ctx);

/* An attempt of ch (in ctx->flying) is over, whichever transport carried it: an answer with HTTP
 * status `status` (fault < 0), or a transport fault with a line on it that names no host. The
 * chunk is answered, retried or freed; the client refills its in-flight places. Loop thread. */
void jrpc__upstream_attempt_end(jrpc__chunk_t *ch, long status, int fault, const char *detail);

/* Around a callback of a transport's that may end attempts: enter marks ctx busy (its lists are
 * walked); leave finishes what completed, refills the in-flight places, and closes ctx when a
 * stop or a reconfigure asked for it meanwhile. */
void jrpc__upctx_enter(jrpc__upctx_t *ctx);
void jrpc__upctx_leave(jrpc__upctx_t *ctx);

/* Starts one attempt of ch on URL ch->ep (h1.c for http://, libcurl otherwise): 0, or -1 when
 * it could not start (its calls were answered and ch is freed). The attempt may end before this
 * returns: ch is not to be touched after a start that went. */
int jrpc__chunk_send(jrpc__chunk_t *ch);
/* The line on an attempt of ch that timed out, into detail[cap]: "no connection within N ms"
 * when its connect timeout is the one that fired (connecting: the transport has not seen the
 * connection made; that timeout is shorter than the attempt's, and the attempt's is not yet
 * over), else "no answer within N ms" with the attempt's (jrpc__chunk_timeout_ms). */
void jrpc__timeout_detail(const jrpc__chunk_t *ch, int connecting, char *detail, size_t cap);
/* Cuts ch's attempt in flight without answering its calls; ch is the caller's. */
void jrpc__chunk_abort(jrpc__chunk_t *ch);
/* Counts a failed attempt of ch against its URL, which is then passed over (unless the fault was
 * the answer's size). */
void jrpc__attempt_failed(jrpc__chunk_t *ch, int fault, const char *detail);

/* ---- hedge.c: hedging ------------------------------------------------------------------------ */

/* A chunk was sent: starts the hedge timer if hedging is on and the timer was idle. */
void jrpc__hedge_arm(jrpc__upctx_t *ctx);
/* An attempt of a hedged pair ended (ch is the twin, or the chunk whose twin flies; status and
 * fault as jrpc__upstream_attempt_end's): the chunk to finish with this outcome (a twin's answer
 * moved into it), or NULL when there is nothing more to do now. */
jrpc__chunk_t *jrpc__hedge_done(jrpc__chunk_t *ch, long status, int fault, const char *detail);

/* ---- curl.c: the libcurl transport ----------------------------------------------------------- */

/* Makes ctx->multi, set up to run on ctx's loop: 0 or JRPC_ENOMEM. */
int jrpc__curl_open(jrpc__upctx_t *ctx);
/* Starts an attempt of ch on ch->ep: NULL, or a line on why it could not start. */
const char *jrpc__curl_send(jrpc__chunk_t *ch);
/* Cuts ch's transfer, if curl carries it; nothing is answered. */
void jrpc__curl_abort(jrpc__chunk_t *ch);
/* Ends, through jrpc__upstream_attempt_end, every attempt curl reports done (ctx busy). */
void jrpc__curl_collect(jrpc__upctx_t *ctx);
/* Runs curl's timers at once (requests were added). */
void jrpc__curl_kick(jrpc__upctx_t *ctx);
/* ctx is closing: cleans the multi handle up, its connections and their watchers with it. */
void jrpc__curl_close(jrpc__upctx_t *ctx);
/* The loop is gone: cleans the multi handle up without touching it. */
void jrpc__curl_free_detached(jrpc__upctx_t *ctx);
/* Frees the spare easy handles and the watcher table (ctx is being freed). */
void jrpc__curl_release(jrpc__upctx_t *ctx);

/* ---- h1.c: the own HTTP/1.1 client for http:// URLs ------------------------------------------ */

/* Starts an attempt of ch on ch->ep over a pooled or a new connection; it ends through
 * jrpc__upstream_attempt_end, possibly before this returns (a connect refused at once). 0, or
 * JRPC_ENOMEM (nothing started). */
int jrpc__h1_send(jrpc__chunk_t *ch);
/* Cuts ch's attempt: its connection closes, nothing is answered. */
void jrpc__h1_abort(jrpc__chunk_t *ch);
/* Closes ctx's idle connections (ctx is closing; its attempts were aborted). */
void jrpc__h1_close(jrpc__upctx_t *ctx);
/* Frees ctx->h1 (after jrpc__h1_close, or with the loop gone). */
void jrpc__h1_free(jrpc__upctx_t *ctx);

/* ---- answer.c -------------------------------------------------------------------------------- */

/* A chunk for calls[0..n) with ids from base_id, its body built. NULL when out of memory.
 * `whole`: the calls are every forwarded item of the client batch they came in (of those this
 * flush holds), so the chunk may pass their own request objects through (own_ids). */
jrpc__chunk_t *jrpc__chunk_new(jrpc__upctx_t *ctx, jrpc_call_t *const *calls, size_t n,
                               int is_batch, int whole);
void jrpc__chunk_free(jrpc__chunk_t *ch);
/* Answers the calls nobody waits for any more (jrpc_call_cancelled) -32002 and takes them out of
 * the chunk, whose body is then stale; returns how many (counted as items_dropped). */
size_t jrpc__chunk_prune(jrpc__chunk_t *ch);
/* Builds the body again for the calls left, with ids from base_id: 0, or JRPC_ENOMEM. */
int jrpc__chunk_build(jrpc__chunk_t *ch);
/* The answer (HTTP status `status`) is complete: replies to every call of the chunk, from the
 * answer where it has one, else with the fault it shows. Returns the fault that made the HTTP
 * request a failure for retry purposes: -1 when it was answered (even if some items fault),
 * JRPC_UPSTREAM_FAULT_HTTP when an error status came without a JSON-RPC answer (nothing
 * replied: the caller retries or calls jrpc__chunk_fail). */
int jrpc__chunk_answer(jrpc__chunk_t *ch, long status);
/* Replies -32000 {"upstream","cause","detail"} to every call not yet replied. */
void jrpc__chunk_fail(jrpc__chunk_t *ch, int fault, const char *detail);

/* ---- probe.c: active health ----------------------------------------------------------------- */

/* The loop hooks of loop 0, which runs the probes of up (the others do nothing). */
void jrpc__probe_loop_start(jrpc_upstream_t *up, uv_loop_t *loop);
void jrpc__probe_loop_stop(jrpc_upstream_t *up);
/* A reconfigure: the prober takes the new settings (any thread, under up->lock). */
void jrpc__probe_wake(jrpc_upstream_t *up);
/* The attempt of probe chunk ch is over: its answer is ch->answer when ok (HTTP status
 * `status`), else it failed. The chunk is the caller's (freed after). Loop 0's thread. */
void jrpc__probe_done(jrpc__chunk_t *ch, int ok, long status);
/* 1 when URL ep passed over by its probes (pick and the readiness hook honour it). Any thread. */
int jrpc__probe_down(const jrpc__endpoint_t *ep);

/* client.c: sends body[0..len) (copied) as a probe to every URL of the settings in force that
 * has no probe in flight, from the newest client of loop 0 (made when needed). Loop 0's thread. */
void jrpc__upstream_probe_round(jrpc_upstream_t *up, uv_loop_t *loop, struct jrpc__prober *pr,
                                const char *body, size_t len);

/* ---- subs.c ---------------------------------------------------------------------------------- */

/* 0 when cfg's ws_urls are usable, else JRPC_EINVAL. */
int jrpc__subs_check(const jrpc_upstream_config_t *cfg);
/* Registers eth_subscribe / eth_unsubscribe for up (before its method patterns): served over
 * ws_urls, or refused with a clear error when the patterns would forward eth_subscribe without
 * them. 0, JRPC_EEXIST or JRPC_ENOMEM. */
int jrpc__subs_add(jrpc_upstream_t *up, const jrpc_upstream_config_t *cfg);
/* 1 when name is one subs.c registered for up (the pattern loop skips it). */
int jrpc__subs_owns(const jrpc_upstream_t *up, const char *name);
void jrpc__subs_free(jrpc_upstream_t *up);
/* ---- share.c: in-flight deduplication and the cache's part in forwarding -------------------- */

/* Calls that get one upstream answer: the call in the chunk (calls[0]), those that joined it
 * (dedup), and what the cache needs to keep its answer. Loop thread of its ctx. */
typedef struct jrpc__group {
    struct jrpc__group *next; /* hash chain in ctx->share */
    uint64_t hash;
    uint64_t ttl_ms;  /* cache the result this long (0: not; the cache's FOREVER) */
    uint8_t joinable; /* in ctx->share: identical calls join it */
    uint8_t looking;  /* its first call waits for Redis (a no-cache call does not join it) */
    size_t n, cap;    /* calls used and allocated */
    jrpc_call_t **calls;
    size_t klen; /* key: upstream name, NUL, method, NUL, params trimmed */
    char key[];
} jrpc__group_t;

/* Before queueing: answers the call from the cache, or joins it to an identical call in flight
 * (1: handled, nothing to queue), or registers it as the first of its kind (0: queue it). */
int jrpc__share_begin(jrpc__upctx_t *ctx, jrpc_call_t *call);
/* The group whose first call is `call`, taken out of ctx's table (no more joins), or NULL: for
 * a call answered before it is in a chunk. */
jrpc__group_t *jrpc__share_take(jrpc__upctx_t *ctx, jrpc_call_t *call);
/* Fills ch->groups for calls that have one (they stay in the table: identical calls join them
 * while they wait and fly). 0 or JRPC_ENOMEM. */
int jrpc__share_attach(jrpc__chunk_t *ch);
/* Slot i of ch is being answered: its group leaves the table and is returned (NULL: none); the
 * caller answers g->calls[1..n) as it answers the slot, then frees it. */
jrpc__group_t *jrpc__share_done(jrpc__chunk_t *ch, size_t i);
/* Answers call, and the calls of g after the first (g may be NULL), with the same error; frees
 * g. */
void jrpc__share_reply_error(jrpc__group_t *g, jrpc_call_t *call, int code, const char *msg,
                             const char *data);
/* Whether every call of slot i's group is cancelled (the slot may then be dropped); answers
 * -32002 and takes out the cancelled calls that joined it. */
int jrpc__share_cancelled(jrpc__chunk_t *ch, size_t i);
/* Keeps a result of slot i's group in the cache when its rule says so (not null). */
void jrpc__share_store(jrpc__chunk_t *ch, size_t i, const char *p, size_t len);
void jrpc__group_free(jrpc__group_t *g);
/* Frees ctx's table (every group in it is answered already: ctx is closing). */
void jrpc__share_free(jrpc__upctx_t *ctx);

/* ---- cache.c ----------------------------------------------------------------------------------
 */

/* Whether the cache keeps anything (a size other than 0): a relaxed load, no lock, so that
 * forwarding with the cache off pays nothing per call. Any thread. */
int jrpc__cache_on(jrpc_upstream_cache_t *c);
/* The TTL the rules give method/params (0: not cached). Any thread. */
uint64_t jrpc__cache_ttl(jrpc_upstream_cache_t *c, jrpc_str_t method, jrpc_json_t params);
/* Replies call from the cache under key (by reference, no copy): 1, or 0 when absent. */
int jrpc__cache_reply(jrpc_upstream_cache_t *c, const char *key, size_t klen, uint64_t hash,
                      jrpc_call_t *call);
void jrpc__cache_put(jrpc_upstream_cache_t *c, const char *key, size_t klen, uint64_t hash,
                     const char *val, size_t vlen, uint64_t ttl_ms);
/* The Redis level: the longest value to send there, 0 when it is off. Any thread. */
size_t jrpc__cache_redis_max(jrpc_upstream_cache_t *c);
/* What the Redis level counts (jrpc_upstream_cache_stats_t's redis_* fields). */
enum {
    JRPC__CACHE_REDIS_HIT,
    JRPC__CACHE_REDIS_MISS,
    JRPC__CACHE_REDIS_TIMEOUT,
    JRPC__CACHE_REDIS_ERROR,
    JRPC__CACHE_REDIS_STORE,
    JRPC__CACHE_REDIS_TOO_LARGE,
    JRPC__CACHE_REDIS_DOWN,
    JRPC__CACHE_REDIS_FULL,
    JRPC__CACHE_REDIS_INVALID,
    JRPC__CACHE_REDIS_COUNTS
};
void jrpc__cache_redis_count(jrpc_upstream_cache_t *c, unsigned what);
/* The Redis key of a cache key: the prefix and 64 hex digits of its SHA-256. */
#define JRPC__CACHE_REDIS_KEY_LEN (sizeof JRPC_UPSTREAM_CACHE_REDIS_PREFIX - 1 + 64)
void jrpc__cache_redis_key(const char *key, size_t klen, char out[JRPC__CACHE_REDIS_KEY_LEN + 1]);
/* 1 when method matches a pattern of list[0..n) (exact, or prefix ending in '*'). */
int jrpc__pattern_match(const char *const *list, size_t n, jrpc_str_t method);
/* 1 when method is a built-in write (jrpc_upstream_write_patterns) or in conf's dedup_deny:
 * never merged, cached, hedged or held. */
int jrpc__is_write(const jrpc__upconf_t *conf, jrpc_str_t method);
/* 1 when call is a read: it has an id and its method is not a write (jrpc__is_write). Only reads
 * are merged, cached, hedged or held: a write sent twice could run twice, and a notification has
 * no answer to share. */
static inline int jrpc__call_is_read(const jrpc__upconf_t *conf, const jrpc_call_t *call)
{
    return jrpc_call_id(call).ptr != NULL && !jrpc__is_write(conf, jrpc_call_method(call));
}

#endif
