/* SPDX-License-Identifier: MIT */
/* cache.c — the gateway's response cache: upstream results kept for the time each method's rule
 * gives, within a byte budget (least recently used first out). One cache serves every io loop
 * under one mutex rather than one cache per loop: a per-loop cache would split the budget and
 * miss once per loop for the same key, and what the lock guards is a hash lookup and a list
 * move (the result is not copied under it: a hit replies by reference and the entry's count
 * keeps it alive until the answer was written). */
#include "internal.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* Methods that change state: never merged with another call nor cached, whatever the config
 * says (a merged eth_sendTransaction would send one transaction for two clients). One list, two
 * forms: the public pattern texts, and rules with their lengths for the check made on every call
 * a gateway shares (jrpc__is_write: no strlen per pattern per call). */
#define WRITES(EXACT, PREFIX)                                                                      \
    EXACT("eth_sendRawTransaction")                                                                \
    EXACT("eth_sendTransaction")                                                                   \
    PREFIX("eth_sign")                                                                             \
    PREFIX("personal_")                                                                            \
    PREFIX("eth_submit")                                                                           \
    EXACT("eth_newFilter")                                                                         \
    EXACT("eth_newBlockFilter")                                                                    \
    EXACT("eth_newPendingTransactionFilter")                                                       \
    EXACT("eth_getFilterChanges") /* each poll consumes what it returns */                         \
    EXACT("eth_uninstallFilter")                                                                   \
    EXACT("eth_subscribe")                                                                         \
    EXACT("eth_unsubscribe")                                                                       \
    PREFIX("evm_")                                                                                 \
    PREFIX("hardhat_")                                                                             \
    PREFIX("anvil_")                                                                               \
    PREFIX("miner_")                                                                               \
    PREFIX("admin_")                                                                               \
    EXACT("debug_setHead")

#define TEXT_EXACT(s) s,
#define TEXT_PREFIX(s) s "*",
static const char *const write_patterns[] = {WRITES(TEXT_EXACT, TEXT_PREFIX) NULL};

static const struct write_rule {
    const char *s;
    uint8_t len;    /* of s (a prefix without its '*') */
    uint8_t prefix; /* s starts the names it matches */
} write_rules[] = {
#define RULE_EXACT(s) {s, sizeof s - 1, 0},
#define RULE_PREFIX(s) {s, sizeof s - 1, 1},
    WRITES(RULE_EXACT, RULE_PREFIX)};

JRPC_EXTERN const char *const *jrpc_upstream_write_patterns(void)
{
    return write_patterns;
}

int jrpc__is_write(const jrpc__upconf_t *conf, jrpc_str_t m)
{
    for (size_t i = 0; i < sizeof write_rules / sizeof write_rules[0]; i++) {
        const struct write_rule *w = &write_rules[i];
        if (w->prefix ? m.len >= w->len : m.len == w->len) {
            if (m.ptr[0] == w->s[0] && memcmp(m.ptr, w->s, w->len) == 0)
                return 1;
        }
    }
    return jrpc__pattern_match((const char *const *)conf->deny, conf->ndeny, m);
}

#define HOUR_MS 3600000u

/* By-hash lookups name content that cannot change: a block by its hash is the same forever; a
 * transaction or receipt found by hash may move to another block in a reorg, so it is kept ten
 * minutes (null, "not found yet", is never kept). Calls naming a block by number are not cached
 * by default: a recent number can be reorged. */
static const jrpc_upstream_cache_rule_t default_rules[] = {
    {"eth_chainId", JRPC_UPSTREAM_CACHE_FOREVER},
    {"net_version", JRPC_UPSTREAM_CACHE_FOREVER},
    {"eth_getBlockByHash", JRPC_UPSTREAM_CACHE_FOREVER},
    {"eth_getBlockTransactionCountByHash", JRPC_UPSTREAM_CACHE_FOREVER},
    {"eth_getTransactionByBlockHashAndIndex", JRPC_UPSTREAM_CACHE_FOREVER},
    {"eth_getUncleCountByBlockHash", JRPC_UPSTREAM_CACHE_FOREVER},
    {"eth_getUncleByBlockHashAndIndex", JRPC_UPSTREAM_CACHE_FOREVER},
    {"eth_getTransactionByHash", 10 * 60 * 1000u},
    {"eth_getTransactionReceipt", 10 * 60 * 1000u},
};

JRPC_EXTERN const jrpc_upstream_cache_rule_t *jrpc_upstream_cache_default_rules(size_t *n)
{
    *n = sizeof default_rules / sizeof default_rules[0];
    return default_rules;
}

JRPC_EXTERN void jrpc_upstream_cache_config_init(jrpc_upstream_cache_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->size = 32u << 20; /* ~50 000 receipts or blocks of a few hundred bytes: the hot set of
                              a busy dapp backend, and a bound no node operator notices */
    cfg->redis = 0;        /* off: a second store to run is the operator's choice */
    /* 1 MiB: a block with its transactions is a few hundred KB; a larger value holds Redis's one
     * thread while it is copied, and is cheaper to ask the node for again. */
    cfg->redis_max_value = 1u << 20;
}

typedef struct entry {
    struct entry *next;          /* hash chain */
    struct entry *newer, *older; /* LRU list */
    uint64_t hash;
    uint64_t expires_ms;     /* uv_hrtime ms, or FOREVER */
    atomic_uint refs;        /* the table's (while linked) and each reply's */
    size_t klen, vlen, cost; /* key and value bytes; what it counts against size */
    char data[];             /* key, then value */
} entry_t;

typedef struct rule {
    char *pattern;
    size_t len; /* without the '*' of a prefix */
    int prefix;
    uint64_t ttl_ms;
} rule_t;

struct jrpc_upstream_cache {
    uv_mutex_t lock;
    size_t size;       /* budget */
    size_t bytes;      /* held */
    size_t count;      /* entries */
    entry_t **buckets; /* nbuckets, a power of two */
    size_t nbuckets;
    entry_t *newest, *oldest;
    rule_t *rules; /* the operator's (lock) */
    size_t nrules;
    uint64_t tag_ttl_ms;
    atomic_uint on;           /* size != 0 (read without the lock: jrpc__cache_on) */
    atomic_uint redis;        /* the Redis level is on (read without the lock) */
    _Atomic size_t redis_max; /* longest value sent to Redis */
    _Atomic uint64_t hits, misses, stores, evictions, expired;
    _Atomic uint64_t redis_counts[JRPC__CACHE_REDIS_COUNTS]; /* jrpc__cache_redis_count's */
};

/* ---- Rules ----------------------------------------------------------------------------------- */

int jrpc__pattern_match(const char *const *list, size_t n, jrpc_str_t m)
{
    for (size_t i = 0; i < n && list[i] != NULL; i++) {
        size_t len = strlen(list[i]);
        if (len > 0 && list[i][len - 1] == '*') {
            if (m.len >= len - 1 && memcmp(m.ptr, list[i], len - 1) == 0)
                return 1;
        } else if (m.len == len && memcmp(m.ptr, list[i], len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The rule for m among r[0..n): the exact name, else the longest prefix; -1 when none. */
static long rule_find(const rule_t *r, size_t n, jrpc_str_t m)
{
    long best = -1;
    for (size_t i = 0; i < n; i++) {
        if (r[i].prefix ? (m.len >= r[i].len && memcmp(m.ptr, r[i].pattern, r[i].len) == 0 &&
                           (best < 0 || (r[best].prefix && r[i].len > r[best].len)))
                        : (m.len == r[i].len && memcmp(m.ptr, r[i].pattern, m.len) == 0))
            best = (long)i;
    }
    return best;
}

static void rules_free(rule_t *r, size_t n)
{
    for (size_t i = 0; r != NULL && i < n; i++)
        free(r[i].pattern);
    free(r);
}

static int rules_copy(const jrpc_upstream_cache_rule_t *in, size_t n, rule_t **out)
{
    *out = NULL;
    if (n == 0)
        return 0;
    rule_t *r = calloc(n, sizeof(*r));
    if (r == NULL)
        return JRPC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t len = in[i].pattern ? strlen(in[i].pattern) : 0;
        if (len == 0 || memchr(in[i].pattern, '*', len - 1) != NULL) {
            rules_free(r, n);
            return JRPC_EINVAL;
        }
        if ((r[i].pattern = strdup(in[i].pattern)) == NULL) {
            rules_free(r, n);
            return JRPC_ENOMEM;
        }
        r[i].prefix = in[i].pattern[len - 1] == '*';
        r[i].len = len - (size_t)r[i].prefix;
        r[i].ttl_ms = in[i].ttl_ms;
    }
    *out = r;
    return 0;
}

/* Where the block of a method that takes one is in its params (Ethereum JSON-RPC). */
static const struct {
    const char *name;
    unsigned at;
} block_params[] = {
    {"eth_getBalance", 1},
    {"eth_getCode", 1},
    {"eth_getTransactionCount", 1},
    {"eth_getStorageAt", 2},
    {"eth_call", 1},
    {"eth_estimateGas", 1},
    {"eth_getProof", 2},
    {"eth_getBlockByNumber", 0},
    {"eth_getBlockTransactionCountByNumber", 0},
    {"eth_getTransactionByBlockNumberAndIndex", 0},
    {"eth_getUncleByBlockNumberAndIndex", 0},
    {"eth_getUncleCountByBlockNumber", 0},
};

/* 1 when s[0..n) contains the NUL-terminated word w. */
static int contains(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    for (size_t i = 0; i + wl <= n; i++)
        if (s[i] == w[0] && memcmp(s + i, w, wl) == 0)
            return 1;
    return 0;
}

/* 2: the call names "pending" (never cached); 1: another tag, or leaves out the block of a
 * method that takes one (the node reads that as latest); 0: a fixed block or none. */
static int names_tag(jrpc_str_t m, jrpc_json_t params)
{
    long at = -1;
    for (size_t i = 0; i < sizeof block_params / sizeof block_params[0]; i++)
        if (strlen(block_params[i].name) == m.len &&
            memcmp(block_params[i].name, m.ptr, m.len) == 0)
            at = block_params[i].at;
    jrpc_json_t v;
    if (at >= 0 && (params.ptr == NULL || jrpc_json_type(params) != JRPC_JSON_ARRAY ||
                    jrpc_json_at(params, (size_t)at, &v) != 0))
        return 1;
    if (params.ptr != NULL && jrpc_json_type(params) == JRPC_JSON_ARRAY) {
        /* Any tag anywhere in the params (eth_getLogs' fromBlock/toBlock are inside an object:
         * the text is searched for them too). */
        static const char *const tags[] = {"\"latest\"", "\"safe\"", "\"finalized\"",
                                           "\"earliest\""};
        if (contains(params.ptr, params.len, "\"pending\""))
            return 2;
        for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++)
            if (contains(params.ptr, params.len, tags[i]))
                return 1;
    }
    return 0;
}

int jrpc__cache_on(jrpc_upstream_cache_t *c)
{
    return (int)atomic_load_explicit(&c->on, memory_order_relaxed);
}

uint64_t jrpc__cache_ttl(jrpc_upstream_cache_t *c, jrpc_str_t method, jrpc_json_t params)
{
    uv_mutex_lock(&c->lock);
    uint64_t ttl = 0, tag_ttl = c->tag_ttl_ms;
    int off = c->size == 0;
    long i = off ? -1 : rule_find(c->rules, c->nrules, method);
    if (i >= 0)
        ttl = c->rules[i].ttl_ms;
    uv_mutex_unlock(&c->lock);
    if (off)
        return 0;
    if (i < 0) {
        for (size_t k = 0; k < sizeof default_rules / sizeof default_rules[0]; k++) {
            jrpc_str_t p = {default_rules[k].pattern, strlen(default_rules[k].pattern)};
            if (p.len == method.len && memcmp(p.ptr, method.ptr, p.len) == 0)
                ttl = default_rules[k].ttl_ms;
        }
    }
    if (ttl == 0)
        return 0;
    int tag = names_tag(method, params);
    if (tag == 2)
        return 0;
    if (tag == 1 && ttl > tag_ttl)
        ttl = tag_ttl;
    return ttl;
}

/* ---- Entries --------------------------------------------------------------------------------- */

static void entry_unref(void *data)
{
    entry_t *e = data;
    if (atomic_fetch_sub(&e->refs, 1) == 1)
        free(e);
}

/* Takes e out of the table and the LRU list (lock held); drops the table's reference. */
static void entry_unlink(jrpc_upstream_cache_t *c, entry_t *e)
{
    entry_t **link = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*link != e)
        link = &(*link)->next;
    *link = e->next;
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    c->bytes -= e->cost;
    c->count--;
    entry_unref(e);
}

/* Links e, out of the list, in as the newest. */
static void lru_push(jrpc_upstream_cache_t *c, entry_t *e)
{
    e->newer = NULL;
    e->older = c->newest;
    if (c->newest != NULL)
        c->newest->newer = e;
    c->newest = e;
    if (c->oldest == NULL)
        c->oldest = e;
}

static void lru_front(jrpc_upstream_cache_t *c, entry_t *e)
{
    if (c->newest == e)
        return;
    /* out */
    if (e->newer != NULL)
        e->newer->older = e->older;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    lru_push(c, e);
}

static entry_t *entry_find(jrpc_upstream_cache_t *c, const char *key, size_t klen, uint64_t hash)
{
    for (entry_t *e = c->buckets[hash & (c->nbuckets - 1)]; e != NULL; e = e->next)
        if (e->hash == hash && e->klen == klen && memcmp(e->data, key, klen) == 0)
            return e;
    return NULL;
}

int jrpc__cache_reply(jrpc_upstream_cache_t *c, const char *key, size_t klen, uint64_t hash,
                      jrpc_call_t *call)
{
    uint64_t now = jrpc__upstream_now_ms();
    uv_mutex_lock(&c->lock);
    entry_t *e = c->size ? entry_find(c, key, klen, hash) : NULL;
    if (e != NULL && e->expires_ms <= now) {
        entry_unlink(c, e);
        JRPC__UPSTAT_ADD(c->expired, 1);
        e = NULL;
    }
    if (e != NULL) {
        lru_front(c, e);
        atomic_fetch_add(&e->refs, 1);
    }
    uv_mutex_unlock(&c->lock);
    if (e == NULL) {
        JRPC__UPSTAT_ADD(c->misses, 1);
        return 0;
    }
    JRPC__UPSTAT_ADD(c->hits, 1);
    jrpc_reply_ref(call, e->data + e->klen, e->vlen, entry_unref, e);
    return 1;
}

/* Doubles the table when it holds more entries than buckets (lock held); keeps it on failure. */
static void table_grow(jrpc_upstream_cache_t *c)
{
    if (c->count < c->nbuckets)
        return;
    size_t n = c->nbuckets * 2;
    entry_t **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return;
    for (size_t i = 0; i < c->nbuckets; i++) {
        for (entry_t *e = c->buckets[i], *next; e != NULL; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
}

void jrpc__cache_put(jrpc_upstream_cache_t *c, const char *key, size_t klen, uint64_t hash,
                     const char *val, size_t vlen, uint64_t ttl_ms)
{
    size_t cost = sizeof(entry_t) + klen + vlen + sizeof(entry_t *);
    entry_t *e = malloc(sizeof(entry_t) + klen + vlen);
    if (e == NULL)
        return;
    memset(e, 0, sizeof(*e));
    memcpy(e->data, key, klen);
    memcpy(e->data + klen, val, vlen);
    e->klen = klen;
    e->vlen = vlen;
    e->cost = cost;
    e->hash = hash;
    uint64_t now = jrpc__upstream_now_ms();
    e->expires_ms = ttl_ms == JRPC_UPSTREAM_CACHE_FOREVER || ttl_ms > UINT64_MAX - now
                        ? JRPC_UPSTREAM_CACHE_FOREVER
                        : now + ttl_ms;
    atomic_init(&e->refs, 1);
    uv_mutex_lock(&c->lock);
    /* One entry may take at most an eighth of the budget: a few huge results (a block with all
     * its transactions) must not push out everything else. */
    if (c->size == 0 || cost > c->size / 8) {
        uv_mutex_unlock(&c->lock);
        free(e);
        return;
    }
    entry_t *old = entry_find(c, key, klen, hash);
    if (old != NULL)
        entry_unlink(c, old);
    while (c->bytes + cost > c->size && c->oldest != NULL) {
        entry_unlink(c, c->oldest);
        JRPC__UPSTAT_ADD(c->evictions, 1);
    }
    table_grow(c);
    size_t b = hash & (c->nbuckets - 1);
    e->next = c->buckets[b];
    c->buckets[b] = e;
    lru_push(c, e);
    c->bytes += cost;
    c->count++;
    uv_mutex_unlock(&c->lock);
    JRPC__UPSTAT_ADD(c->stores, 1);
}

/* ---- The Redis level ------------------------------------------------------------------------- */

size_t jrpc__cache_redis_max(jrpc_upstream_cache_t *c)
{
    return atomic_load_explicit(&c->redis, memory_order_relaxed)
               ? atomic_load_explicit(&c->redis_max, memory_order_relaxed)
               : 0;
}

void jrpc__cache_redis_count(jrpc_upstream_cache_t *c, unsigned what)
{
    JRPC__UPSTAT_ADD(c->redis_counts[what], 1);
}

void jrpc__cache_redis_key(const char *key, size_t klen, char out[JRPC__CACHE_REDIS_KEY_LEN + 1])
{
    /* A digest, not the key itself: params may be long, and the key then has a fixed size. */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    size_t plen = sizeof JRPC_UPSTREAM_CACHE_REDIS_PREFIX - 1;
    memcpy(out, JRPC_UPSTREAM_CACHE_REDIS_PREFIX, plen);
    if (EVP_Digest(key, klen, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        memset(md, 0, sizeof md); /* cannot happen with the default provider */
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[plen + 2 * i] = hex[md[i] >> 4];
        out[plen + 2 * i + 1] = hex[md[i] & 15];
    }
    out[JRPC__CACHE_REDIS_KEY_LEN] = '\0';
}

/* ---- Public ---------------------------------------------------------------------------------- */

JRPC_EXTERN int jrpc_upstream_cache_new(const jrpc_upstream_cache_config_t *cfg,
                                        jrpc_upstream_cache_t **out)
{
    *out = NULL;
    jrpc_upstream_cache_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return JRPC_ENOMEM;
    c->nbuckets = 1024;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    int rc = c->buckets == NULL ? JRPC_ENOMEM : rules_copy(cfg->rules, cfg->nrules, &c->rules);
    if (rc == 0 && uv_mutex_init(&c->lock) != 0)
        rc = JRPC_ENOMEM;
    if (rc != 0) {
        rules_free(c->rules, cfg->nrules);
        free(c->buckets);
        free(c);
        return rc;
    }
    c->nrules = cfg->nrules;
    c->size = cfg->size;
    c->tag_ttl_ms = cfg->tag_ttl_ms;
    atomic_init(&c->on, cfg->size != 0);
    atomic_init(&c->redis, cfg->redis != 0);
    atomic_init(&c->redis_max, cfg->redis_max_value);
    *out = c;
    return 0;
}

/* Drops every entry (lock held); replies holding one keep it until they are written. */
static void cache_clear(jrpc_upstream_cache_t *c)
{
    while (c->oldest != NULL)
        entry_unlink(c, c->oldest);
}

JRPC_EXTERN int jrpc_upstream_cache_reconfigure(jrpc_upstream_cache_t *c,
                                                const jrpc_upstream_cache_config_t *cfg)
{
    rule_t *r;
    int rc = rules_copy(cfg->rules, cfg->nrules, &r);
    if (rc != 0)
        return rc;
    uv_mutex_lock(&c->lock);
    rule_t *old = c->rules;
    size_t nold = c->nrules;
    c->rules = r;
    c->nrules = cfg->nrules;
    c->size = cfg->size;
    c->tag_ttl_ms = cfg->tag_ttl_ms;
    atomic_store(&c->on, cfg->size != 0);
    atomic_store(&c->redis, cfg->redis != 0);
    atomic_store(&c->redis_max, cfg->redis_max_value);
    cache_clear(c);
    uv_mutex_unlock(&c->lock);
    rules_free(old, nold);
    return 0;
}

JRPC_EXTERN void jrpc_upstream_cache_free(jrpc_upstream_cache_t *c)
{
    if (c == NULL)
        return;
    cache_clear(c);
    rules_free(c->rules, c->nrules);
    free(c->buckets);
    uv_mutex_destroy(&c->lock);
    free(c);
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

JRPC_EXTERN void jrpc_upstream_cache_stats(const jrpc_upstream_cache_t *cc,
                                           jrpc_upstream_cache_stats_t *out)
{
    jrpc_upstream_cache_t *c = (jrpc_upstream_cache_t *)cc;
    out->hits = LOAD(c->hits);
    out->misses = LOAD(c->misses);
    out->stores = LOAD(c->stores);
    out->evictions = LOAD(c->evictions);
    out->expired = LOAD(c->expired);
    out->redis_hits = LOAD(c->redis_counts[JRPC__CACHE_REDIS_HIT]);
    out->redis_misses = LOAD(c->redis_counts[JRPC__CACHE_REDIS_MISS]);
    out->redis_timeouts = LOAD(c->redis_counts[JRPC__CACHE_REDIS_TIMEOUT]);
    out->redis_errors = LOAD(c->redis_counts[JRPC__CACHE_REDIS_ERROR]);
    out->redis_stores = LOAD(c->redis_counts[JRPC__CACHE_REDIS_STORE]);
    out->redis_too_large = LOAD(c->redis_counts[JRPC__CACHE_REDIS_TOO_LARGE]);
    out->redis_down = LOAD(c->redis_counts[JRPC__CACHE_REDIS_DOWN]);
    out->redis_full = LOAD(c->redis_counts[JRPC__CACHE_REDIS_FULL]);
    out->redis_invalid = LOAD(c->redis_counts[JRPC__CACHE_REDIS_INVALID]);
    uv_mutex_lock(&c->lock);
    out->bytes = c->bytes;
    out->entries = c->count;
    uv_mutex_unlock(&c->lock);
}
