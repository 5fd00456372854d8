/* SPDX-License-Identifier: MIT */
/* share.c — calls that share one upstream answer: before a call is queued, the response cache may
 * answer it, or it joins an identical call (same upstream, method and params bytes, surrounding
 * whitespace aside) already waiting or in flight on the same io loop; the first call's answer
 * then goes to every call of the group under each one's own id. The table is per loop client,
 * so it needs no lock, and answers fan out on the loop that holds every call of the group (the
 * answer text is shared by reference, not copied). With the cache's Redis level on, a call the
 * local cache misses waits in its group for one GET in the server's shared store (identical
 * calls join it meanwhile); a hit answers the group, anything else (absent, a timeout, Redis
 * down) sends the call upstream as if Redis were not there, and a cacheable result is SET there
 * as well as kept locally. */
#include "../json/internal.h"
#include "../util/hash.h"
#include "internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Buckets of a loop's table when first used; it doubles as it fills. */
#define SHARE_BUCKETS 64

struct jrpc__share {
    jrpc__group_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
};

/* A call's key (see jrpc__group_t) in its parts, found once per call: upstream name with its
 * NUL, method, params without surrounding blanks (len 0: none), and its length and hash. */
typedef struct key_parts {
    const char *name;
    size_t nlen;
    jrpc_str_t m;
    jrpc_json_t p;
    size_t klen;
    uint64_t hash;
} key_parts_t;

/* The parts and the key's hash, without building the key: each part hashed eight bytes a step
 * (its length is mixed in, so the parts' bounds count), then mixed. */
static key_parts_t key_parts(const jrpc_upstream_t *up, jrpc_call_t *call)
{
    key_parts_t k = {up->name,
                     strlen(up->name) + 1,
                     jrpc_call_method(call),
                     jrpc__json_trim(jrpc_call_params(call)),
                     0,
                     0};
    if (k.p.ptr == NULL)
        k.p.len = 0;
    k.klen = k.nlen + k.m.len + 1 + k.p.len;
    uint64_t h = jrpc__hash_str(k.name, k.nlen - 1);
    h = jrpc__hash_fold((h ^ jrpc__hash_str(k.m.ptr, k.m.len)) * 0x9e3779b97f4a7c15ull);
    if (k.p.ptr != NULL)
        h = jrpc__hash_fold((h ^ jrpc__hash_str(k.p.ptr, k.p.len)) * 0x9e3779b97f4a7c15ull);
    k.hash = h;
    return k;
}

/* Whether g's key is k's, compared part by part so that a call that joins needs no key of its
 * own. */
static int key_is(const jrpc__group_t *g, const key_parts_t *k)
{
    return g->hash == k->hash && g->klen == k->klen && memcmp(g->key, k->name, k->nlen) == 0 &&
           memcmp(g->key + k->nlen, k->m.ptr, k->m.len) == 0 &&
           g->key[k->nlen + k->m.len] == '\0' &&
           (k->p.len == 0 || memcmp(g->key + k->nlen + k->m.len + 1, k->p.ptr, k->p.len) == 0);
}

static jrpc__group_t *group_new(const key_parts_t *k)
{
    jrpc__group_t *g = malloc(sizeof(*g) + k->klen);
    if (g == NULL)
        return NULL;
    memset(g, 0, sizeof(*g));
    g->hash = k->hash;
    g->klen = k->klen;
    memcpy(g->key, k->name, k->nlen);
    memcpy(g->key + k->nlen, k->m.ptr, k->m.len);
    g->key[k->nlen + k->m.len] = '\0';
    if (k->p.len != 0) /* no params: p.ptr may be NULL, which memcpy may not be given */
        memcpy(g->key + k->nlen + k->m.len + 1, k->p.ptr, k->p.len);
    return g;
}

void jrpc__group_free(jrpc__group_t *g)
{
    if (g != NULL)
        free(g->calls);
    free(g);
}

static int group_push(jrpc__group_t *g, jrpc_call_t *call)
{
    if (g->n == g->cap) {
        size_t ncap = g->cap ? g->cap * 2 : 4;
        jrpc_call_t **grown = realloc(g->calls, ncap * sizeof(*grown));
        if (grown == NULL)
            return JRPC_ENOMEM;
        g->calls = grown;
        g->cap = ncap;
    }
    g->calls[g->n++] = call;
    return 0;
}

static void table_insert(struct jrpc__share *s, jrpc__group_t *g)
{
    if (s->count >= s->nbuckets) {
        size_t n = s->nbuckets * 2;
        jrpc__group_t **b = calloc(n, sizeof(*b));
        if (b != NULL) {
            for (size_t i = 0; i < s->nbuckets; i++) {
                for (jrpc__group_t *e = s->buckets[i], *next; e != NULL; e = next) {
                    next = e->next;
                    e->next = b[e->hash & (n - 1)];
                    b[e->hash & (n - 1)] = e;
                }
            }
            free(s->buckets);
            s->buckets = b;
            s->nbuckets = n;
        }
    }
    jrpc__group_t **head = &s->buckets[g->hash & (s->nbuckets - 1)];
    g->next = *head;
    *head = g;
    s->count++;
}

static void table_remove(struct jrpc__share *s, jrpc__group_t *g)
{
    for (jrpc__group_t **link = &s->buckets[g->hash & (s->nbuckets - 1)]; *link != NULL;
         link = &(*link)->next) {
        if (*link == g) {
            *link = g->next;
            s->count--;
            return;
        }
    }
}

/* ---- The Redis level ------------------------------------------------------------------------- */

/* A GET in flight for the first call of group g (in ctx's table). */
typedef struct lookup {
    jrpc__upctx_t *ctx; /* held (jrpc__upctx_hold) until the answer */
    jrpc__group_t *g;
} lookup_t;

/* A result read from Redis, shared by reference by every call of its group. */
typedef struct blob {
    atomic_uint refs; /* one per reply */
    size_t len;
    char data[];
} blob_t;

static void blob_unref(void *p)
{
    blob_t *b = p;
    if (atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

/* Counts a failed GET or SET under its cause (jrpc_server_kv_get's codes): an operator tells a
 * Redis that is down from one that cannot keep up (full) or answers slowly (timeout). */
static void count_failure(jrpc_upstream_cache_t *c, int status)
{
    unsigned what = status == JRPC_ETIMEDOUT ? JRPC__CACHE_REDIS_TIMEOUT
                    : status == JRPC_ECLOSED ? JRPC__CACHE_REDIS_DOWN
                    : status == JRPC_EBUSY   ? JRPC__CACHE_REDIS_FULL
                    : status == JRPC_EJSON   ? JRPC__CACHE_REDIS_INVALID
                                             : JRPC__CACHE_REDIS_ERROR;
    jrpc__cache_redis_count(c, what);
}

/* Answers every call of g (out of the table) with val, and keeps it locally for what is left of
 * its time in Redis (at most the rule's). */
static void lookup_hit(jrpc__upctx_t *ctx, jrpc__group_t *g, const char *val, size_t len,
                       uint64_t ttl_ms)
{
    jrpc_upstream_cache_t *c = ctx->conf->cache;
    uint64_t ttl = ttl_ms != 0 && ttl_ms < g->ttl_ms ? ttl_ms : g->ttl_ms;
    jrpc__cache_put(c, g->key, g->klen, g->hash, val, len, ttl);
    jrpc__cache_redis_count(c, JRPC__CACHE_REDIS_HIT);
    JRPC__UPSTAT_ADD(ctx->up->stats.items_cached, g->n);
    blob_t *b = malloc(sizeof(*b) + len);
    if (b != NULL) {
        memcpy(b->data, val, len);
        b->len = len;
        atomic_init(&b->refs, (unsigned)g->n);
    }
    for (size_t k = 0; k < g->n; k++) {
        if (b != NULL)
            jrpc_reply_ref(g->calls[k], b->data, b->len, blob_unref, b);
        else
            jrpc_reply_raw(g->calls[k], val, len);
    }
}

static void on_lookup(void *data, int status, const char *val, size_t len, uint64_t ttl_ms)
{
    lookup_t *lk = data;
    jrpc__upctx_t *ctx = lk->ctx;
    jrpc__group_t *g = lk->g;
    free(lk);
    g->looking = 0;
    jrpc_upstream_cache_t *c = ctx->conf->cache;
    size_t at;
    /* Redis is shared: a value that is not one JSON value (another writer, a truncation) is
     * not passed to clients. */
    if (status == 0 && (len == 0 || jrpc_json_validate(val, len, 0, &at) != 0))
        status = JRPC_EJSON;
    if (status == 0 && !ctx->closing) {
        table_remove(ctx->share, g); /* nobody joins an answered group */
        lookup_hit(ctx, g, val, len, ttl_ms);
        jrpc__group_free(g);
        jrpc__upstream_resume(ctx, NULL);
        return;
    }
    if (status == JRPC_ENOENT)
        jrpc__cache_redis_count(c, JRPC__CACHE_REDIS_MISS);
    else if (status != 0)
        count_failure(c, status);
    jrpc__upstream_resume(ctx, g->calls[0]);
}

/* Asks Redis for g's key after a local miss: 1 when the GET went (g's first call is held), 0
 * when the call is to be forwarded now. */
static int lookup_start(jrpc__upctx_t *ctx, jrpc__group_t *g)
{
    jrpc_upstream_cache_t *c = ctx->conf->cache;
    lookup_t *lk = malloc(sizeof(*lk));
    if (lk == NULL)
        return 0;
    lk->ctx = ctx;
    lk->g = g;
    char key[JRPC__CACHE_REDIS_KEY_LEN + 1];
    jrpc__cache_redis_key(g->key, g->klen, key);
    int rc =
        jrpc_server_kv_get(ctx->up->srv, ctx->index, key, JRPC__CACHE_REDIS_KEY_LEN, on_lookup, lk);
    if (rc != 0) {
        free(lk);
        count_failure(c, rc);
        return 0;
    }
    g->looking = 1;
    jrpc__upctx_hold(ctx);
    return 1;
}

static void on_stored(void *data, int status, const char *val, size_t len, uint64_t ttl_ms)
{
    (void)val;
    (void)len;
    (void)ttl_ms;
    if (status != 0)
        count_failure(data, status);
}

/* Sends a cacheable result of g to Redis, unless it is longer than the cap. */
static void redis_store(jrpc__upctx_t *ctx, jrpc__group_t *g, const char *p, size_t len)
{
    jrpc_upstream_cache_t *c = ctx->conf->cache;
    size_t max = jrpc__cache_redis_max(c);
    if (max == 0 || !jrpc_server_kv_shared(ctx->up->srv))
        return;
    if (len > max) {
        jrpc__cache_redis_count(c, JRPC__CACHE_REDIS_TOO_LARGE);
        return;
    }
    char key[JRPC__CACHE_REDIS_KEY_LEN + 1];
    jrpc__cache_redis_key(g->key, g->klen, key);
    uint64_t ttl =
        g->ttl_ms == JRPC_UPSTREAM_CACHE_FOREVER || g->ttl_ms > JRPC_UPSTREAM_CACHE_REDIS_FOREVER_MS
            ? JRPC_UPSTREAM_CACHE_REDIS_FOREVER_MS
            : g->ttl_ms;
    int rc = jrpc_server_kv_set(ctx->up->srv, ctx->index, key, JRPC__CACHE_REDIS_KEY_LEN, p, len,
                                ttl, on_stored, c);
    if (rc != 0)
        count_failure(c, rc);
    else
        jrpc__cache_redis_count(c, JRPC__CACHE_REDIS_STORE);
}

/* ---- Groups ---------------------------------------------------------------------------------- */

int jrpc__share_begin(jrpc__upctx_t *ctx, jrpc_call_t *call)
{
    const jrpc__upconf_t *conf = ctx->conf;
    int cache_on = conf->cache != NULL && jrpc__cache_on(conf->cache);
    if (!conf->dedup && !cache_on)
        return 0;
    /* A notification wants no answer to share (and its effect is wanted once per sender), and a
     * write merged would run once for two clients. */
    if (!jrpc__call_is_read(conf, call))
        return 0;
    uint64_t ttl =
        cache_on ? jrpc__cache_ttl(conf->cache, jrpc_call_method(call), jrpc_call_params(call)) : 0;
    if (!conf->dedup && ttl == 0)
        return 0;
    if (ctx->share == NULL) {
        struct jrpc__share *s = calloc(1, sizeof(*s));
        if (s == NULL || (s->buckets = calloc(SHARE_BUCKETS, sizeof(*s->buckets))) == NULL) {
            free(s);
            return 0; /* forwarded on its own */
        }
        s->nbuckets = SHARE_BUCKETS;
        ctx->share = s;
    }
    key_parts_t k = key_parts(ctx->up, call);
    /* Cache-Control: no-cache skips the lookup; the fresh answer is still kept for others. */
    int lookup = ttl != 0 && !jrpc_call_no_cache(call);
    jrpc__group_t *g = NULL;
    if (lookup) {
        if ((g = group_new(&k)) == NULL)
            return 0;
        if (jrpc__cache_reply(conf->cache, g->key, g->klen, k.hash, call)) {
            JRPC__UPSTAT_ADD(ctx->up->stats.items_cached, 1);
            jrpc__group_free(g);
            return 1;
        }
    }
    if (conf->dedup) {
        for (jrpc__group_t *e = ctx->share->buckets[k.hash & (ctx->share->nbuckets - 1)]; e != NULL;
             e = e->next) {
            if (e->joinable && !(e->looking && jrpc_call_no_cache(call)) && key_is(e, &k)) {
                if (group_push(e, call) != 0)
                    break; /* forwarded on its own */
                JRPC__UPSTAT_ADD(ctx->up->stats.items_joined, 1);
                jrpc__group_free(g);
                return 1;
            }
        }
    }
    if (g == NULL && (g = group_new(&k)) == NULL)
        return 0;
    g->ttl_ms = ttl;
    g->joinable = (uint8_t)conf->dedup;
    if (group_push(g, call) != 0) {
        jrpc__group_free(g);
        return 0;
    }
    table_insert(ctx->share, g);
    /* The local level missed: the shared one, if on. */
    if (lookup && jrpc__cache_redis_max(conf->cache) != 0 && jrpc_server_kv_shared(ctx->up->srv) &&
        lookup_start(ctx, g))
        return 1;
    return 0;
}

jrpc__group_t *jrpc__share_take(jrpc__upctx_t *ctx, jrpc_call_t *call)
{
    if (ctx->share == NULL || ctx->share->count == 0)
        return NULL;
    uint64_t hash = key_parts(ctx->up, call).hash;
    for (jrpc__group_t *g = ctx->share->buckets[hash & (ctx->share->nbuckets - 1)]; g != NULL;
         g = g->next) {
        if (g->calls[0] == call) {
            table_remove(ctx->share, g);
            return g;
        }
    }
    return NULL;
}

int jrpc__share_attach(jrpc__chunk_t *ch)
{
    jrpc__upctx_t *ctx = ch->ctx;
    if (ctx->share == NULL || ctx->share->count == 0)
        return 0;
    for (size_t i = 0; i < ch->n; i++) {
        uint64_t hash = key_parts(ctx->up, ch->calls[i]).hash;
        for (jrpc__group_t *g = ctx->share->buckets[hash & (ctx->share->nbuckets - 1)]; g != NULL;
             g = g->next) {
            if (g->calls[0] != ch->calls[i])
                continue;
            if (ch->groups == NULL && (ch->groups = calloc(ch->n, sizeof(*ch->groups))) == NULL)
                return JRPC_ENOMEM;
            ch->groups[i] = g;
            break;
        }
    }
    return 0;
}

/* Slot i's group leaves the table (its answer is being given): NULL when it has none. */
jrpc__group_t *jrpc__share_done(jrpc__chunk_t *ch, size_t i)
{
    jrpc__group_t *g = ch->groups ? ch->groups[i] : NULL;
    if (g != NULL) {
        ch->groups[i] = NULL;
        table_remove(ch->ctx->share, g);
    }
    return g;
}

int jrpc__share_cancelled(jrpc__chunk_t *ch, size_t i)
{
    jrpc__group_t *g = ch->groups ? ch->groups[i] : NULL;
    if (g == NULL)
        return jrpc_call_cancelled(ch->calls[i]);
    size_t kept = 1;
    for (size_t k = 1; k < g->n; k++) {
        if (!jrpc_call_cancelled(g->calls[k])) {
            g->calls[kept++] = g->calls[k];
            continue;
        }
        jrpc_reply_error(g->calls[k], JRPC_CODE_TIMEOUT, "Request timed out", NULL);
        JRPC__UPSTAT_ADD(ch->ctx->up->stats.items_dropped, 1);
    }
    g->n = kept;
    /* The first call left, others still wait: the call is still made for them (its views stay
     * valid until it is replied to, which the engine then drops). */
    return kept == 1 && jrpc_call_cancelled(g->calls[0]);
}

void jrpc__share_store(jrpc__chunk_t *ch, size_t i, const char *p, size_t len)
{
    jrpc__group_t *g = ch->groups ? ch->groups[i] : NULL;
    const jrpc__upconf_t *conf = ch->ctx->conf;
    if (g == NULL || g->ttl_ms == 0 || conf->cache == NULL ||
        (len == 4 && memcmp(p, "null", 4) == 0))
        return;
    jrpc__cache_put(conf->cache, g->key, g->klen, g->hash, p, len, g->ttl_ms);
    redis_store(ch->ctx, g, p, len);
}

void jrpc__share_free(jrpc__upctx_t *ctx)
{
    struct jrpc__share *s = ctx->share;
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (jrpc__group_t *g = s->buckets[i], *next; g != NULL; g = next) {
            next = g->next;
            jrpc__group_free(g);
        }
    }
    free(s->buckets);
    free(s);
    ctx->share = NULL;
}

void jrpc__share_reply_error(jrpc__group_t *g, jrpc_call_t *call, int code, const char *msg,
                             const char *data)
{
    jrpc_reply_error(call, code, msg, data);
    for (size_t k = 1; g != NULL && k < g->n; k++)
        jrpc_reply_error(g->calls[k], code, msg, data);
    jrpc__group_free(g);
}
