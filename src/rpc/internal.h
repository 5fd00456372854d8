/* SPDX-License-Identifier: MIT */
/* internal.h — private interface of src/rpc: the method registry and the request engine that
 * takes one body (single call or batch), checks every item, runs the calls under the batch bound
 * and deadline, and hands back one response in request order. Transports (src/http, src/ws) talk
 * to it only through jrpc__req_*, and attach what they hold to a request or a call through
 * cleanup hooks: the engine names no transport. Never installed. */
#ifndef JRPC_RPC_INTERNAL_H
#define JRPC_RPC_INTERNAL_H

#include "../io/internal.h"
#include "jrpc.h"

#include <stddef.h>

typedef struct jrpc__registry jrpc__registry_t;
typedef struct jrpc_keys jrpc__keys_t;
typedef struct jrpc__key jrpc__key_t;
typedef struct jrpc__key_stats jrpc__key_stats_t;
struct jrpc__budget;

/* The engine's per-server state, owned by the server object and reached from a loop through
 * loop->io->engine. */
typedef struct jrpc__engine {
    jrpc__registry_t *registry; /* methods; read-only once running */
    char *discover;             /* rpc.discover's answer, built when run starts */
    size_t discover_len;
    _Atomic(jrpc__keys_t *) keys;        /* API keys and costs (keys.c), NULL: none */
    jrpc__keys_t *keys_old;              /* sets replaced since, freed with the server */
    struct jrpc__budget *budget;         /* the budget store (io/budget.h), or NULL */
    _Atomic(jrpc__key_stats_t *) kstats; /* per-key counters, by name, never removed */
    atomic_ulong auth_refused[2];        /* 401s: [0] no key, [1] unknown key */
} jrpc__engine_t;

/* ---- API keys (keys.c; the public jrpc_keys_t) ------------------------------------------------
 */

/* Most bytes of a key's secret: room for a 512-bit value in hex, or any token a provider issues. */
#define JRPC__KEY_SECRET_MAX 128
/* Most bytes of a key's name (a metrics label). */
#define JRPC__KEY_NAME_MAX 64

/* A key's counters (and the anonymous clients', name "(anonymous)"): kept by name across sets so
 * the metrics' counters never go back. Written by any loop (atomics). */
struct jrpc__key_stats {
    _Atomic(jrpc__key_stats_t *) next; /* appended under the server's lock, read without */
    atomic_ulong calls;                /* calls admitted */
    atomic_ulong units;                /* units they spent */
    atomic_ulong rej_budget;           /* calls refused over the budget (-32005) */
    atomic_ulong rej_method;           /* calls refused outside the key's methods */
    char name[];
};

/* One key of a set; lives as long as the set (until the server is freed). */
struct jrpc__key {
    char *name;
    char *secret;
    size_t secret_len;
    uint64_t rate;  /* units a second, 0: unlimited */
    uint64_t burst; /* units */
    char **allow;   /* patterns (a trailing '*' is a prefix); none: every method */
    size_t nallow;
    char **deny;
    size_t ndeny;
    unsigned max_batch;    /* 0: the server's */
    unsigned max_batch_ws; /* 0: the server's */
    char *origins;         /* NULL: the server's cors_origins */
    char *bucket;          /* "k:<name>": its budget's name */
    size_t bucket_len;
    jrpc__key_stats_t *stats; /* set when the set is installed */
};

/* What a transport learned about a request's sender: the set its key came from (NULL: the
 * server has no keys), the key (NULL: none given), and the client's address (for anonymous
 * budgets). Copied into each request. */
typedef struct jrpc__auth {
    const jrpc__keys_t *keys;
    const jrpc__key_t *key;
    unsigned char addr[16]; /* jrpc__addr_key form */
    uint8_t has_addr;
} jrpc__auth_t;

/* The server's current set, or NULL (any thread). */
static inline const jrpc__keys_t *jrpc__keys_current(const jrpc__loop_t *loop)
{
    return atomic_load_explicit(&((jrpc__engine_t *)loop->io->engine)->keys, memory_order_acquire);
}
/* The key whose secret is s[0..n) (compared in constant time), or NULL. Any thread. */
const jrpc__key_t *jrpc__keys_find(const jrpc__keys_t *keys, const char *s, size_t n);
/* Whether s[0..n) is k's secret (constant time, as jrpc__keys_find); k NULL: no. Any thread. */
int jrpc__keys_same(const jrpc__key_t *k, const char *s, size_t n);
/* The set's rules. */
int jrpc__keys_required(const jrpc__keys_t *keys);
/* The path prefix ("/v2", no trailing '/'), *len 0 when none. */
const char *jrpc__keys_prefix(const jrpc__keys_t *keys, size_t *len);
/* Whether anonymous clients have a budget (the transport then finds their address). */
int jrpc__keys_anonymous_limited(const jrpc__keys_t *keys);
/* The batch cap for a request from auth (NULL: no key rules): the transport's cap (max_batch or
 * max_batch_ws, by ws), or the key's when lower. Any thread. */
unsigned jrpc__auth_max_batch(const jrpc__auth_t *auth, unsigned cap, int ws);
/* Whether key k lets a request call name[0..len) (its deny patterns, then its allow patterns). */
int jrpc__key_allows(const jrpc__key_t *k, const char *name, size_t len);
/* What one call of name[0..len) costs in units. */
uint32_t jrpc__keys_cost(const jrpc__keys_t *keys, const char *name, size_t len);
/* The budget of clients without a key (rate 0: none) and their counters. */
void jrpc__keys_anonymous(const jrpc__keys_t *keys, uint64_t *rate, uint64_t *burst,
                          jrpc__key_stats_t **stats);
/* Keys in the set, and the origins of key i (NULL: it has none of its own), for a CORS
 * preflight, which carries no key: it is allowed for an origin that some key names. */
size_t jrpc__keys_count(const jrpc__keys_t *keys);
const char *jrpc__keys_origins(const jrpc__keys_t *keys, size_t i);
/* A short mark for a secret nobody holds, for logs: 6 hex digits of a hash, NUL-terminated. */
void jrpc__keys_mark(const char *s, size_t n, char out[8]);
/* Installs keys (taken) as the engine's current set: binds their counters. Callers serialise. */
int jrpc__keys_install(jrpc__engine_t *e, jrpc__keys_t *keys);
/* Frees the current and replaced sets and the counters (server teardown). */
void jrpc__keys_engine_free(jrpc__engine_t *e);
/* Calls fn for each key's counters (metrics): anonymous first, then by first appearance. */
void jrpc__keys_stats_each(jrpc__engine_t *e, void (*fn)(const jrpc__key_stats_t *s, void *arg),
                           void *arg);

static inline jrpc__engine_t *jrpc__engine_of(const jrpc__loop_t *loop)
{
    return loop->io->engine;
}

/* ---- Registry: name → handler. Written before run, read-only (lock-free) afterwards. -------- */

typedef struct jrpc__method {
    char *name; /* owned, NUL-terminated; a pattern keeps its trailing '*' */
    size_t name_len;
    jrpc_method_cb cb;
    void *data;
    unsigned flags;    /* JRPC_INLINE/WORKER/ASYNC | JRPC_NO_BATCH | JRPC_UNBOUNDED */
    char *summary;     /* rpc.discover: owned or NULL */
    char *params_json; /* rpc.discover: JSON array of ContentDescriptors, owned or NULL */
    char *result_json; /* rpc.discover: one ContentDescriptor, owned or NULL */
    unsigned label;    /* its method label in the metrics (jrpc__registry_label) */
} jrpc__method_t;

jrpc__registry_t *jrpc__registry_new(void);
void jrpc__registry_free(jrpc__registry_t *r);
/* A name ending in '*' registers a prefix pattern ("eth_*"): it serves every name with that
 * prefix that has no exact entry; the longest matching prefix wins. */
/* Internal, but exported from libjrpc.so for libjrpc_upstream.so (the gateway registers its
 * patterns and their docs through these). */
#define JRPC__SHARED __attribute__((visibility("default")))
JRPC__SHARED int jrpc__registry_add(jrpc__registry_t *r, const char *name, jrpc_method_cb cb,
                                    void *data, unsigned flags);
/* The method (or pattern) serving name[0..len), or NULL. */
const jrpc__method_t *jrpc__registry_find(const jrpc__registry_t *r, const char *name, size_t len);
/* The entry registered under exactly `name` (patterns with their '*'), for editing before run. */
JRPC__SHARED jrpc__method_t *jrpc__registry_entry(jrpc__registry_t *r, const char *name);
/* Calls fn for every entry, exact names sorted by name, then patterns. */
void jrpc__registry_each(const jrpc__registry_t *r, void (*fn)(const jrpc__method_t *m, void *arg),
                         void *arg);
/* Numbers the entries' method labels for the metrics: the first `max` names (sorted, then the
 * patterns, which count under their pattern text) get JRPC__LABEL_OTHER + 1 …, the rest
 * JRPC__LABEL_OTHER. *names receives a malloc'd array of the label texts, indexed by label (the
 * first two "(unknown)" and "(other)"; the others point into the registry). Returns the number of
 * labels, 0 when out of memory. Before run. */
unsigned jrpc__registry_label(jrpc__registry_t *r, unsigned max, const char ***names);
/* Batch policy: names matching a deny pattern ("debug_*", or an exact name) are refused inside
 * batches like JRPC_NO_BATCH methods, unless an exception ("!NAME", "!NAME:KIND": KIND equal to
 * the first param, a string) matches too. */
int jrpc__registry_deny_batch(jrpc__registry_t *r, const char *pattern);
/* Replaces the whole policy with patterns[0..n) (copied), also while io threads read it; the
 * old list stays allocated until the registry is freed. One caller at a time. 0, JRPC_EINVAL
 * (nothing changes) or JRPC_ENOMEM. */
int jrpc__registry_deny_replace(jrpc__registry_t *r, const char *const *patterns, size_t n);
int jrpc__registry_batch_denied(const jrpc__registry_t *r, const char *name, size_t len,
                                jrpc_json_t params);

/* ---- rpc.discover (discover.c) --------------------------------------------------------------- */

/* Registers the method (at server creation); jrpc__discover_doc attaches docs to a registered
 * name (jrpc_method_doc's checks and copies); jrpc__discover_build makes the OpenRPC document
 * from the registry when the server starts (the registry is final then). 0 or JRPC_E*. */
int jrpc__discover_register(jrpc__engine_t *e);
int jrpc__discover_doc(jrpc__engine_t *e, const char *name, const char *summary,
                       const char *params_json, const char *result_json);
int jrpc__discover_build(jrpc__engine_t *e);

/* ---- Requests ------------------------------------------------------------------------------- */

typedef struct jrpc__req jrpc__req_t;

/* Distinct error codes an access line names; a batch failing in more ways is rare, and the
 * others still count in `failed`. */
#define JRPC__SUM_CODES 4
/* Room for the first method names of a request in an access line ("eth_call,eth_getBalance,+98"):
 * enough to tell what a batch was, short enough to keep the line one line. */
#define JRPC__SUM_NAMES 64

/* What an answer says, for the access log: made by the engine only when an info line will be
 * written (jrpc__log_on), so a server that does not log pays one test per answer. Names are
 * copied (the request may be gone when the line is written), with bytes that could break a
 * text or JSON line made '?'. */
typedef struct jrpc__answer_sum {
    uint32_t failed;                 /* items answered (or dropped, notifications) with an error */
    uint8_t ncodes;                  /* entries in code[] and count[] */
    uint8_t names_len;               /* bytes in names */
    int32_t code[JRPC__SUM_CODES];   /* distinct error codes, in order of first appearance */
    uint32_t count[JRPC__SUM_CODES]; /* items answered with each */
    char names[JRPC__SUM_NAMES];     /* first names, comma-separated, then ",+N" for the rest */
} jrpc__answer_sum_t;

/* Writes s for an access line into buf[0..cap) (NUL-terminated, cut to fit): as text,
 * `method=a,b,+98 failed=2 codes=-32601:1,-32002:1` (codes only when some failed), or with
 * `json` as JSON members, `"method":"a,b,+98","failed":2,"codes":{"-32601":1,"-32002":1}`.
 * Returns the length. Any thread. */
size_t jrpc__answer_sum_format(const jrpc__answer_sum_t *s, int json, char *buf, size_t cap);

/* A request's answer: the whole response body (empty: nothing to answer, notifications only),
 * the HTTP status (200 unless a REST call failed), the number of items and, when logging, what
 * they were (for logs). */
typedef struct jrpc__answer {
    jrpc_buf_t body; /* the receiver takes the bytes (jrpc_buf_free them) */
    int status;
    uint32_t retry_after; /* seconds, with status 429 (a single call over its budget) */
    size_t items;
    uint8_t has_sum;        /* sum is filled */
    jrpc__answer_sum_t sum; /* only when has_sum */
    uint8_t is_batch;       /* the request was a batch (for the transport's counters) */
} jrpc__answer_t;

/* The answer, when it was not ready at once (jrpc__req_run returned JRPC__REQ_AGAIN): on the
 * loop's thread, never inside a jrpc__req_* call. After it the transport must not touch the
 * request again. */
typedef void (*jrpc__req_done_cb)(jrpc__answer_t *ans, void *ud);

/* What a transport attaches to a request or a call is released through these (nginx's pool
 * cleanups). */
typedef void (*jrpc__cleanup_cb)(void *data);
/* `delivered`: the call's answer reaches the client (it was not a notification and did not time
 * out); a subscription whose id never reaches the client ends. */
typedef void (*jrpc__call_cleanup_cb)(void *data, int delivered);

enum {
    JRPC__REQ_DONE = 0, /* answered at once: *ans holds the answer, done will not be called */
    JRPC__REQ_AGAIN = 1 /* calls are running: done is called later, exactly once */
};

/* A request for one body. `body` is malloc'd and becomes the request's: it is freed when the last
 * call of the request has replied (views into it live that long). `conn` is what jrpc_call_conn
 * answers (a WebSocket connection; NULL for HTTP): the transport keeps it valid until the
 * request is freed, through a cleanup (jrpc__req_cleanup_add). NULL only when out of memory (body
 * freed then). `acct` (may be NULL) is the connection's account: the request holds a reference
 * and counts its bytes and calls there until it is freed, also after its answer went or the
 * connection closed. Nothing runs until jrpc__req_run. Loop thread. */
jrpc__req_t *jrpc__req_new(jrpc__loop_t *loop, char *body, size_t len, jrpc_conn_t *conn,
                           jrpc__acct_t *acct, jrpc__req_done_cb done, void *ud);
/* The client asked for answers no cache made (HTTP Cache-Control: no-cache): jrpc_call_no_cache
 * answers 1 for its calls. Before jrpc__req_run, loop thread. */
void jrpc__req_no_cache(jrpc__req_t *req);
/* Runs cb(data) when the request is freed (after its last call replied, also when the client
 * left). 0 or JRPC_ENOMEM (nothing registered). Before jrpc__req_run, loop thread. */
int jrpc__req_cleanup_add(jrpc__req_t *req, jrpc__cleanup_cb cb, void *data);
/* Checks and starts the body as JSON-RPC; `max_batch` is the transport's batch cap. Returns
 * JRPC__REQ_DONE with the answer in *ans (inline-only requests answer at once; the request may
 * live on while notifications run, and frees itself), or JRPC__REQ_AGAIN. */
int jrpc__req_run(jrpc__req_t *req, unsigned max_batch, jrpc__answer_t *ans);
/* The same for REST: method[0..mlen) (copied) with the body as its params (array, object, or
 * empty for none), or with batch set, the body as a JSON array of params, one call each (cap
 * cfg.max_batch). The answer is the bare result or {"error":{…}} (an array of those for a batch),
 * and its status maps a single call's error to 4xx/5xx. */
int jrpc__req_run_rest(jrpc__req_t *req, const char *method, size_t mlen, int batch,
                       jrpc__answer_t *ans);
/* Who sent the request (a copy is kept); before jrpc__req_run. Without it, no key rules apply. */
void jrpc__req_auth(jrpc__req_t *req, const jrpc__auth_t *auth);
/* Streamed batch answers: entries can go (items finished), and the transport takes them with
 * jrpc__req_stream_take when it is ready to write, typically at the end of the loop's turn, so
 * that the items a turn finishes make one piece rather than one each. It is called once until
 * that take. Loop thread, from the engine's own callbacks: never inside a jrpc__req_* call. */
typedef void (*jrpc__req_ready_cb)(void *ud);
enum {
    JRPC__ORDER_REQUEST = 0, /* entries in request order: the finished prefix goes as it grows */
    JRPC__ORDER_COMPLETION   /* each entry as soon as its item is done */
};
/* After jrpc__req_run returned JRPC__REQ_AGAIN for a batch: its answer is handed over in pieces
 * (cb with the request's ud says one can be taken) as items finish, in `order`; entries finished
 * already (inline items) are the first piece, appended to *first here rather than through cb;
 * `done` then brings only what was not in a piece (the last entries and the closing "]"; the
 * pieces and it together are the body). max_response counts what was handed over: an entry that
 * would take the body past it, and every later one, is -32003. An entry's result is freed once it
 * is in a piece, so the engine holds only what is unwritten. 1 when it streams; 0 for a request
 * that is not a batch (nothing changes). Loop thread. */
int jrpc__req_stream(jrpc__req_t *req, int order, jrpc__req_ready_cb cb, jrpc_buf_t *first);
/* Appends the entries that can go now (the next piece; none once the request was answered or
 * detached) to *out, and lets cb be called again. 0, or JRPC_ENOMEM: the answer cannot be whole.
 * Loop thread, outside the engine's callbacks. */
int jrpc__req_stream_take(jrpc__req_t *req, jrpc_buf_t *out);

/* The transport's client is gone: `done` will not be called; calls still running complete and the
 * request frees itself after the last one. Loop thread. */
void jrpc__req_detach(jrpc__req_t *req);

/* The drain time of a stop is over (io's expire hook): every unfinished call of every request on
 * loop is answered -32000 "server shutting down" now; handlers' later replies are dropped. */
void jrpc__req_expire_all(jrpc__loop_t *loop);
/* The loop ends with requests whose handlers never replied (io's orphan hook): their deadline
 * timers close; later replies are dropped. */
void jrpc__req_orphan_all(jrpc__loop_t *loop);

/* The request's number among its loop's requests: 1, 2, 3 … in the order they were made, never
 * reused. src/ws tells by it which message a subscription's answer travels in.
 * jrpc__req_seq: loop thread while the request lives; jrpc__call_req_seq: any thread the call may
 * be used on (a request outlives its calls' handlers, also past a timeout). */
uint64_t jrpc__req_seq(const jrpc__req_t *req);
uint64_t jrpc__call_req_seq(const jrpc_call_t *call);
/* Runs cb(data, delivered) on the loop when the call completes (one per call: a call starts at
 * most one subscription). Set by the handler's thread before its reply. */
void jrpc__call_cleanup_set(jrpc_call_t *call, jrpc__call_cleanup_cb cb, void *data);

/* Appends {"code":code,"message":msg[,"data":data]} to b; data is plain text to quote when
 * data_is_text, else raw JSON; data NULL leaves it out. */
void jrpc__error_body(jrpc_buf_t *b, int code, const char *msg, size_t msg_len, const char *data,
                      size_t data_len, int data_is_text);

/* Builds a complete error response for a transport-level failure (413 body cap …):
 * {"jsonrpc":"2.0","error":{"code":code,"message":msg},"id":null}. */
void jrpc__error_object(jrpc_buf_t *out, int code, const char *msg);

#endif
