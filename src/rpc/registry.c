/* SPDX-License-Identifier: MIT */
/* registry.c — the method table: name → handler and flags, plus prefix patterns ("eth_*") for
 * methods served by one handler (a gateway's upstream), the batch-deny policy, and the docs
 * rpc.discover publishes. Filled before the server runs, then only read (by every io thread at
 * once, so it takes no locks); only the batch policy may be replaced whole while it runs. Exact
 * names live in an open-addressing table with FNV-1a: one hash and usually one compare per lookup;
 * patterns are few and scanned only on a miss. */
#include "../util/hash.h"
#include "internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct pattern_list {
    jrpc__method_t *v; /* patterns: name without the '*' in name[0..name_len) */
    size_t n;
} pattern_list_t;

typedef struct deny_list {
    char **v;                /* patterns as given ("debug_*" or an exact name) */
    size_t n;                /* entries in v */
    struct deny_list *older; /* the list this one replaced, kept until the registry goes */
} deny_list_t;

struct jrpc__registry {
    jrpc__method_t *slots; /* cap entries; name == NULL marks an empty slot */
    size_t cap;            /* power of two */
    size_t count;
    pattern_list_t patterns;
    /* The batch policy: filled in place before the server runs, replaced whole while it runs
     * (jrpc__registry_deny_replace); io threads read it without locks, so a replaced list
     * stays until the registry is freed. */
    _Atomic(deny_list_t *) deny;
};

/* Slots of a new registry (4 KiB): up to 32 methods, more than most servers register, fit before
 * the first rehash (the table doubles when half full). */
#define REGISTRY_FIRST_CAP 64

jrpc__registry_t *jrpc__registry_new(void)
{
    jrpc__registry_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->cap = REGISTRY_FIRST_CAP;
    r->slots = calloc(r->cap, sizeof(*r->slots));
    deny_list_t *d = calloc(1, sizeof(*d));
    if (r->slots == NULL || d == NULL) {
        free(r->slots);
        free(d);
        free(r);
        return NULL;
    }
    atomic_init(&r->deny, d);
    return r;
}

static void method_clear(jrpc__method_t *m)
{
    free(m->name);
    free(m->summary);
    free(m->params_json);
    free(m->result_json);
}

static void deny_free(deny_list_t *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i]);
    free(d->v);
    free(d);
}

void jrpc__registry_free(jrpc__registry_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->cap; i++)
        method_clear(&r->slots[i]);
    for (size_t i = 0; i < r->patterns.n; i++)
        method_clear(&r->patterns.v[i]);
    for (deny_list_t *d = atomic_load(&r->deny), *older; d != NULL; d = older) {
        older = d->older;
        deny_free(d);
    }
    free(r->patterns.v);
    free(r->slots);
    free(r);
}

static jrpc__method_t *registry_slot(jrpc__method_t *slots, size_t cap, const char *name,
                                     size_t len)
{
    size_t i = (size_t)jrpc__hash_str(name, len) & (cap - 1);
    for (;;) {
        jrpc__method_t *m = &slots[i];
        if (m->name == NULL || (m->name_len == len && memcmp(m->name, name, len) == 0))
            return m;
        i = (i + 1) & (cap - 1);
    }
}

static int registry_grow(jrpc__registry_t *r)
{
    size_t cap = r->cap * 2;
    jrpc__method_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return JRPC_ENOMEM;
    for (size_t i = 0; i < r->cap; i++) {
        jrpc__method_t *m = &r->slots[i];
        if (m->name != NULL)
            *registry_slot(slots, cap, m->name, m->name_len) = *m;
    }
    free(r->slots);
    r->slots = slots;
    r->cap = cap;
    return 0;
}

static int is_pattern(const char *name, size_t len)
{
    return len > 0 && name[len - 1] == '*';
}

JRPC__SHARED int jrpc__registry_add(jrpc__registry_t *r, const char *name, jrpc_method_cb cb,
                                    void *data, unsigned flags)
{
    const unsigned known = 0xffu | JRPC_NO_BATCH | JRPC_UNBOUNDED;
    if (name == NULL || name[0] == '\0' || cb == NULL || (flags & JRPC_RUN_MASK) > JRPC_ASYNC ||
        (flags & ~known) != 0)
        return JRPC_EINVAL;
    size_t len = strlen(name);
    jrpc__method_t *m;
    if (is_pattern(name, len)) {
        if (memchr(name, '*', len - 1) != NULL)
            return JRPC_EINVAL; /* only a trailing '*' */
        if (jrpc__registry_entry(r, name) != NULL)
            return JRPC_EEXIST;
        jrpc__method_t *v = realloc(r->patterns.v, (r->patterns.n + 1) * sizeof(*v));
        if (v == NULL)
            return JRPC_ENOMEM;
        r->patterns.v = v;
        m = &v[r->patterns.n];
        memset(m, 0, sizeof(*m));
    } else {
        /* Keep the load factor under 1/2 so probes stay short. */
        if ((r->count + 1) * 2 > r->cap && registry_grow(r) != 0)
            return JRPC_ENOMEM;
        m = registry_slot(r->slots, r->cap, name, len);
        if (m->name != NULL)
            return JRPC_EEXIST;
    }
    m->name = strdup(name);
    if (m->name == NULL)
        return JRPC_ENOMEM;
    m->name_len = is_pattern(name, len) ? len - 1 : len;
    m->cb = cb;
    m->data = data;
    m->flags = flags;
    if (is_pattern(name, len))
        r->patterns.n++;
    else
        r->count++;
    return 0;
}

const jrpc__method_t *jrpc__registry_find(const jrpc__registry_t *r, const char *name, size_t len)
{
    const jrpc__method_t *m = registry_slot(r->slots, r->cap, name, len);
    if (m->name != NULL)
        return m;
    const jrpc__method_t *best = NULL;
    for (size_t i = 0; i < r->patterns.n; i++) {
        const jrpc__method_t *p = &r->patterns.v[i];
        if (p->name_len <= len && memcmp(p->name, name, p->name_len) == 0 &&
            (best == NULL || p->name_len > best->name_len))
            best = p;
    }
    return best;
}

JRPC__SHARED jrpc__method_t *jrpc__registry_entry(jrpc__registry_t *r, const char *name)
{
    size_t len = strlen(name);
    if (is_pattern(name, len)) {
        for (size_t i = 0; i < r->patterns.n; i++)
            if (strcmp(r->patterns.v[i].name, name) == 0)
                return &r->patterns.v[i];
        return NULL;
    }
    jrpc__method_t *m = registry_slot(r->slots, r->cap, name, len);
    return m->name != NULL ? m : NULL;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const jrpc__method_t *const *)a)->name,
                  (*(const jrpc__method_t *const *)b)->name);
}

void jrpc__registry_each(const jrpc__registry_t *r, void (*fn)(const jrpc__method_t *m, void *arg),
                         void *arg)
{
    const jrpc__method_t **sorted = malloc((r->count ? r->count : 1) * sizeof(*sorted));
    size_t n = 0;
    if (sorted != NULL) {
        for (size_t i = 0; i < r->cap; i++)
            if (r->slots[i].name != NULL)
                sorted[n++] = &r->slots[i];
        qsort(sorted, n, sizeof(*sorted), by_name);
        for (size_t i = 0; i < n; i++)
            fn(sorted[i], arg);
        free(sorted);
    }
    for (size_t i = 0; i < r->patterns.n; i++)
        fn(&r->patterns.v[i], arg);
}

struct label_ctx {
    unsigned max, n;
    const char **names;
};

static void label_one(const jrpc__method_t *m, void *arg)
{
    struct label_ctx *x = arg;
    jrpc__method_t *e = (jrpc__method_t *)m; /* the registry's own entry, before run */
    if (x->n - (JRPC__LABEL_OTHER + 1) >= x->max) {
        e->label = JRPC__LABEL_OTHER;
        return;
    }
    e->label = x->n;
    x->names[x->n++] = m->name;
}

unsigned jrpc__registry_label(jrpc__registry_t *r, unsigned max, const char ***names)
{
    size_t total = r->count + r->patterns.n;
    struct label_ctx x = {max, JRPC__LABEL_OTHER + 1, NULL};
    x.names = malloc((JRPC__LABEL_OTHER + 1 + (total < max ? total : max)) * sizeof(*x.names));
    *names = x.names;
    if (x.names == NULL)
        return 0;
    x.names[JRPC__LABEL_UNKNOWN] = "(unknown)";
    x.names[JRPC__LABEL_OTHER] = "(other)";
    jrpc__registry_each(r, label_one, &x);
    return x.n;
}

/* "debug_*" or an exact name; or an exception "!NAME_OR_PATTERN" or "!NAME_OR_PATTERN:KIND"
 * (seed 002's "subscriptions refused in batches but for newHeads, …": eth_subscribe denied,
 * !eth_subscribe:newHeads allowed). */
static int deny_valid(const char *pattern)
{
    size_t len = pattern ? strlen(pattern) : 0;
    if (len != 0 && pattern[0] == '!') {
        pattern++;
        const char *colon = strchr(pattern, ':');
        len = colon ? (size_t)(colon - pattern) : strlen(pattern);
        if (colon != NULL && colon[1] == '\0')
            return 0;
    }
    return len != 0 && memchr(pattern, '*', len - 1) == NULL;
}

/* Appends a copy of pattern to d. */
static int deny_push(deny_list_t *d, const char *pattern)
{
    char **v = realloc(d->v, (d->n + 1) * sizeof(*v));
    if (v == NULL)
        return JRPC_ENOMEM;
    d->v = v;
    if ((v[d->n] = strdup(pattern)) == NULL)
        return JRPC_ENOMEM;
    d->n++;
    return 0;
}

int jrpc__registry_deny_batch(jrpc__registry_t *r, const char *pattern)
{
    if (!deny_valid(pattern))
        return JRPC_EINVAL;
    return deny_push(atomic_load(&r->deny), pattern);
}

int jrpc__registry_deny_replace(jrpc__registry_t *r, const char *const *patterns, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!deny_valid(patterns[i]))
            return JRPC_EINVAL;
    deny_list_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return JRPC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (deny_push(d, patterns[i]) != 0) {
            deny_free(d);
            return JRPC_ENOMEM;
        }
    }
    /* The caller serialises replacements (jrpc_batch_deny_set holds the server's lock). */
    d->older = atomic_load(&r->deny);
    atomic_store(&r->deny, d);
    return 0;
}

/* name[0..len) matches the pattern p[0..plen) (exact, or a prefix before its '*'). */
static int deny_match(const char *p, size_t plen, const char *name, size_t len)
{
    if (p[plen - 1] == '*')
        return plen - 1 <= len && memcmp(p, name, plen - 1) == 0;
    return plen == len && memcmp(p, name, len) == 0;
}

int jrpc__registry_batch_denied(const jrpc__registry_t *r, const char *name, size_t len,
                                jrpc_json_t params)
{
    const deny_list_t *d = atomic_load_explicit(&r->deny, memory_order_acquire);
    int denied = 0;
    for (size_t i = 0; i < d->n && !denied; i++)
        denied = d->v[i][0] != '!' && deny_match(d->v[i], strlen(d->v[i]), name, len);
    if (!denied)
        return 0;
    /* Exceptions: the name, and when given the kind, the first param as a JSON string. */
    for (size_t i = 0; i < d->n; i++) {
        if (d->v[i][0] != '!')
            continue;
        const char *p = d->v[i] + 1, *colon = strchr(p, ':');
        if (!deny_match(p, colon ? (size_t)(colon - p) : strlen(p), name, len))
            continue;
        jrpc_json_t first;
        if (colon == NULL || (params.ptr != NULL && jrpc_json_type(params) == JRPC_JSON_ARRAY &&
                              jrpc_json_at(params, 0, &first) == 0 &&
                              jrpc_json_string_eq(first, colon + 1, strlen(colon + 1))))
            return 0;
    }
    return 1;
}
