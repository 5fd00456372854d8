/* SPDX-License-Identifier: MIT */
/* budget.c — the budget store in this process (budget.h): one token bucket per name (an API
 * key, or an anonymous client's address), in an open-addressing table under one mutex that every
 * io loop shares, since one key's requests arrive on all of them. A reservation takes the lock
 * once per request, however many items it holds. The table stays bounded: when it would grow,
 * buckets that have refilled to their burst are dropped first (a full bucket and a new one are
 * the same thing), so a flood of one-off client addresses costs at most what refills in a
 * bucket's time to fill, never a bucket per address ever seen. */
#include "budget.h"

#include "../util/hash.h"

#include <stdlib.h>
#include <string.h>

/* Micro-units per unit: the bucket's resolution, so a rate of 1 unit/s gains 1 micro-unit per
 * microsecond and integer arithmetic stays exact (budget.h). */
#define MICRO 1000000ull

/* The table's first size; it doubles from there (and shrinks back through the sweep). */
#define TABLE_MIN 64

/* A slot that held a bucket dropped since: keeps probe chains intact until the next rehash. */
#define TOMB ((struct bucket *)(uintptr_t)1)

struct bucket {
    uint64_t hash;
    uint64_t tokens; /* micro-units held at `at` */
    uint64_t at;     /* microseconds (uv_hrtime) when tokens was last brought up to date */
    uint64_t rate;   /* as last reserved with: units per second */
    uint64_t burst;  /* as last reserved with: units */
    size_t name_len;
    char name[]; /* not NUL-terminated */
};

typedef struct local_store {
    jrpc__budget_t base; /* first: the store is a jrpc__budget_t */
    uv_mutex_t lock;
    struct bucket **v; /* cap slots: NULL (never used), TOMB, or a bucket */
    size_t cap;        /* power of two */
    size_t live;       /* buckets in the table */
    size_t used;       /* slots not NULL (buckets and tombs) */
} local_store_t;

/* ---- Arithmetic (pure; the unit tests call these with their own clock) ------------------------
 */

/* tokens micro-units after elapsed_us at rate, capped at burst units. elapsed × rate is only
 * formed when it cannot pass the room left, so nothing overflows. */
static uint64_t bucket_refill(uint64_t tokens, uint64_t elapsed_us, uint64_t rate, uint64_t burst)
{
    uint64_t cap = burst * MICRO;
    if (tokens >= cap)
        return cap;
    uint64_t room = cap - tokens;
    if (elapsed_us > room / rate)
        return cap;
    uint64_t add = elapsed_us * rate;
    return add >= room ? cap : tokens + add;
}

/* Microseconds until `need` micro-units are held, from `tokens`, at rate (need > tokens). */
static uint64_t bucket_wait_us(uint64_t tokens, uint64_t need, uint64_t rate)
{
    return (need - tokens + rate - 1) / rate;
}

/* Admits the items of ok[0..n) that fit, in order, from *tokens (budget.h's rule); returns the
 * milliseconds until the first refused item would fit (rounded up), 0 when none was refused. An
 * item dearer than the whole burst never fits: it is told when the bucket is full again. */
static uint64_t bucket_take(uint64_t *tokens, uint64_t rate, uint64_t burst, const uint32_t *costs,
                            uint8_t *ok, size_t n)
{
    uint64_t retry_ms = 0;
    uint64_t cap = burst * MICRO;
    for (size_t i = 0; i < n; i++) {
        if (!ok[i])
            continue;
        uint64_t need = (uint64_t)costs[i] * MICRO;
        if (need <= *tokens) {
            *tokens -= need;
            continue;
        }
        ok[i] = 0;
        if (retry_ms == 0) {
            uint64_t us = bucket_wait_us(*tokens, need <= cap ? need : cap, rate);
            retry_ms = (us + 999) / 1000;
            if (retry_ms == 0)
                retry_ms = 1; /* a full bucket refusing an item dearer than its burst */
        }
    }
    return retry_ms;
}

/* ---- The table --------------------------------------------------------------------------------
 */

static struct bucket **table_find(local_store_t *s, uint64_t hash, const char *name, size_t len,
                                  struct bucket ***free_slot)
{
    size_t mask = s->cap - 1;
    *free_slot = NULL;
    for (size_t i = (size_t)hash & mask, k = 0; k < s->cap; k++, i = (i + 1) & mask) {
        struct bucket *b = s->v[i];
        if (b == NULL) {
            if (*free_slot == NULL)
                *free_slot = &s->v[i];
            return NULL;
        }
        if (b == TOMB) {
            if (*free_slot == NULL)
                *free_slot = &s->v[i];
            continue;
        }
        if (b->hash == hash && b->name_len == len && memcmp(b->name, name, len) == 0)
            return &s->v[i];
    }
    return NULL;
}

/* Whether b has refilled to its burst by `now`: such a bucket can go (a new one starts full). */
static int bucket_full(const struct bucket *b, uint64_t now)
{
    uint64_t elapsed = now > b->at ? now - b->at : 0;
    return bucket_refill(b->tokens, elapsed, b->rate, b->burst) >= b->burst * MICRO;
}

/* Makes room for one more bucket: drops full ones, then rebuilds the table at a size that keeps
 * it at most half used. 0 or JRPC_ENOMEM (the table is left as it was). */
static int table_grow(local_store_t *s, uint64_t now)
{
    size_t live = 0;
    for (size_t i = 0; i < s->cap; i++) {
        struct bucket *b = s->v[i];
        if (b == NULL || b == TOMB)
            continue;
        if (bucket_full(b, now)) {
            free(b);
            s->v[i] = TOMB;
        } else {
            live++;
        }
    }
    s->live = live;
    size_t cap = TABLE_MIN;
    while (cap < (live + 1) * 4)
        cap *= 2;
    struct bucket **v = calloc(cap, sizeof(*v));
    if (v == NULL)
        return JRPC_ENOMEM;
    for (size_t i = 0; i < s->cap; i++) {
        struct bucket *b = s->v[i];
        if (b == NULL || b == TOMB)
            continue;
        size_t j = (size_t)b->hash & (cap - 1);
        while (v[j] != NULL)
            j = (j + 1) & (cap - 1);
        v[j] = b;
    }
    free(s->v);
    s->v = v;
    s->cap = cap;
    s->used = live;
    return 0;
}

/* The bucket for `bk`, made full when new; NULL when out of memory. Under the lock. */
static struct bucket *table_get(local_store_t *s, const jrpc__bucket_t *bk, uint64_t now)
{
    uint64_t hash = jrpc__hash_str(bk->name, bk->name_len);
    struct bucket **free_slot;
    struct bucket **slot = table_find(s, hash, bk->name, bk->name_len, &free_slot);
    if (slot != NULL)
        return *slot;
    if ((s->used + 1) * 2 > s->cap) {
        if (table_grow(s, now) != 0)
            return NULL;
        table_find(s, hash, bk->name, bk->name_len, &free_slot);
    }
    struct bucket *b = malloc(sizeof(*b) + bk->name_len);
    if (b == NULL)
        return NULL;
    b->hash = hash;
    b->tokens = bk->burst * MICRO;
    b->at = now;
    b->rate = bk->rate;
    b->burst = bk->burst;
    b->name_len = bk->name_len;
    memcpy(b->name, bk->name, bk->name_len);
    if (*free_slot == NULL)
        s->used++;
    *free_slot = b;
    s->live++;
    return b;
}

/* ---- The store's operations -------------------------------------------------------------------
 */

static void local_reserve(jrpc__budget_t *base, jrpc__loop_t *loop, const jrpc__bucket_t *bk,
                          const uint32_t *costs, uint8_t *ok, size_t n, jrpc__budget_cb done,
                          void *arg)
{
    (void)loop;
    local_store_t *s = (local_store_t *)base;
    jrpc__budget_result_t res = {JRPC__BUDGET_OK, 0};
    uint64_t now = uv_hrtime() / 1000;
    uv_mutex_lock(&s->lock);
    struct bucket *b = table_get(s, bk, now);
    if (b != NULL) {
        /* The rate and burst may have changed since (a reload): the refill up to now follows
         * the old ones, what comes after the new ones. */
        uint64_t elapsed = now > b->at ? now - b->at : 0;
        b->tokens = bucket_refill(b->tokens, elapsed, b->rate, b->burst);
        if (now > b->at)
            b->at = now;
        b->rate = bk->rate;
        b->burst = bk->burst;
        if (b->tokens > b->burst * MICRO)
            b->tokens = b->burst * MICRO;
        res.retry_after_ms = bucket_take(&b->tokens, b->rate, b->burst, costs, ok, n);
    } else {
        /* Out of memory: nothing is admitted, and the client is told to come back shortly. */
        memset(ok, 0, n);
        res.status = JRPC__BUDGET_CLOSED;
        res.retry_after_ms = 1000;
    }
    uv_mutex_unlock(&s->lock);
    done(arg, &res);
}

static void local_free(jrpc__budget_t *base)
{
    local_store_t *s = (local_store_t *)base;
    for (size_t i = 0; i < s->cap; i++)
        if (s->v[i] != NULL && s->v[i] != TOMB)
            free(s->v[i]);
    free(s->v);
    uv_mutex_destroy(&s->lock);
    free(s);
}

static const jrpc__budget_ops_t local_ops = {
    .reserve = local_reserve,
    .loop_start = NULL,
    .loop_close = NULL,
    .free = local_free,
};

jrpc__budget_t *jrpc__budget_local_new(void)
{
    local_store_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->cap = TABLE_MIN;
    s->v = calloc(s->cap, sizeof(*s->v));
    if (s->v == NULL || uv_mutex_init(&s->lock) != 0) {
        free(s->v);
        free(s);
        return NULL;
    }
    s->base.ops = &local_ops;
    return &s->base;
}
