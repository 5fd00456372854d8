/* SPDX-License-Identifier: MIT */
/* keys.c — API keys and per-call costs (the public jrpc_keys_t): a set of keys found by secret
 * through a hash index and compared in constant time, each with its method rules, batch caps,
 * origins and budget; the cost of each method in units; and the rules for requests without a
 * key. A set is immutable once a server has it: a reload installs a new one and the old stays
 * allocated (requests and WebSocket connections may still point into it) until the server is
 * freed. Counters live apart, by key name, so they survive reloads. */
#include "internal.h"

#include "../util/hash.h"

#include <stdlib.h>
#include <string.h>

/* Units a call costs unless a [cost] pattern names its method. */
#define COST_DEFAULT 1
/* The most units a cost, a rate or a burst may be (io/budget.h: exact arithmetic). */
#define UNITS_MAX 1000000000ull

/* One [cost] entry. */
typedef struct cost {
    char *pattern; /* without its '*' when prefix */
    size_t len;
    int prefix;
    uint32_t units;
} cost_t;

struct jrpc_keys {
    jrpc__keys_t *older; /* the set installed before this one (engine's keys_old chain) */
    int required;
    char *prefix; /* "" when none */
    size_t prefix_len;
    uint64_t anon_rate;
    uint64_t anon_burst;
    jrpc__key_stats_t *anon_stats;
    jrpc__key_t *v; /* keys */
    size_t n, cap;
    uint32_t *index; /* open addressing by secret hash: key number + 1, 0 empty */
    size_t index_cap;
    cost_t *costs;
    size_t ncosts;
    int installed; /* given to a server: no more changes */
};

/* ---- Checks -----------------------------------------------------------------------------------
 */

static int name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-' || ch == '.';
}

/* Patterns: words separated by blanks or commas, each an exact name or a prefix ending in '*'.
 * NULL when valid. */
static const char *patterns_check(const char *list)
{
    if (list == NULL)
        return NULL;
    for (const char *p = list; *p != '\0';) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, " \t,");
        const char *star = memchr(p, '*', n);
        if (star != NULL && star != p + n - 1)
            return "'*' may only end a pattern";
        p += n;
    }
    return NULL;
}

JRPC_EXTERN const char *jrpc_auth_check(const jrpc_auth_config_t *a)
{
    if (a == NULL)
        return NULL;
    if (a->path_prefix != NULL && a->path_prefix[0] != '\0') {
        const char *p = a->path_prefix;
        if (p[0] != '/' || strcmp(p, "/") == 0)
            return "path_prefix must start with / and name a path (\"/v2\")";
        if (strpbrk(p, "?# \t") != NULL)
            return "path_prefix must be a plain path (no '?', '#' or blanks)";
    }
    if (a->anonymous_rate > UNITS_MAX || a->anonymous_burst > UNITS_MAX)
        return "anonymous_rate and anonymous_burst must be at most 1000000000";
    if (a->anonymous_rate == 0 && a->anonymous_burst != 0)
        return "anonymous_burst needs anonymous_rate";
    return NULL;
}

JRPC_EXTERN const char *jrpc_key_check(const jrpc_key_config_t *k)
{
    if (k == NULL || k->name == NULL || k->name[0] == '\0')
        return "a key needs a name";
    size_t n = strlen(k->name);
    if (n > JRPC__KEY_NAME_MAX)
        return "a key's name must be at most 64 characters";
    for (size_t i = 0; i < n; i++)
        if (!name_char(k->name[i]))
            return "a key's name may hold letters, digits, '_', '-' and '.' only";
    if (k->secret == NULL)
        return "a key needs a secret";
    size_t sn = strlen(k->secret);
    if (sn < 16 || sn > JRPC__KEY_SECRET_MAX)
        return "a key's secret must be 16 to 128 characters";
    for (size_t i = 0; i < sn; i++)
        if (!name_char(k->secret[i]) && k->secret[i] != '~')
            return "a key's secret may hold letters, digits, '_', '-', '.' and '~' only";
    if (k->rate > UNITS_MAX || k->burst > UNITS_MAX)
        return "a key's rate and burst must be at most 1000000000";
    if (k->rate == 0 && k->burst != 0)
        return "a key's burst needs a rate";
    const char *why = patterns_check(k->methods);
    if (why == NULL)
        why = patterns_check(k->deny);
    return why;
}

/* ---- Building a set ---------------------------------------------------------------------------
 */

JRPC_EXTERN jrpc_keys_t *jrpc_keys_new(const jrpc_auth_config_t *auth)
{
    if (jrpc_auth_check(auth) != NULL)
        return NULL;
    jrpc_keys_t *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return NULL;
    const char *prefix = auth != NULL && auth->path_prefix != NULL ? auth->path_prefix : "";
    k->prefix = strdup(prefix);
    if (k->prefix == NULL) {
        free(k);
        return NULL;
    }
    k->prefix_len = strlen(k->prefix);
    while (k->prefix_len > 1 && k->prefix[k->prefix_len - 1] == '/')
        k->prefix[--k->prefix_len] = '\0';
    if (auth != NULL) {
        k->required = auth->required != 0;
        k->anon_rate = auth->anonymous_rate;
        k->anon_burst = auth->anonymous_burst != 0 ? auth->anonymous_burst : auth->anonymous_rate;
    }
    return k;
}

static void patterns_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Splits a pattern list into a malloc'd array. 0 or JRPC_ENOMEM. */
static int patterns_split(const char *list, char ***out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (list == NULL)
        return 0;
    size_t n = 0;
    char **v = NULL;
    for (const char *p = list; *p != '\0';) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, " \t,");
        if (len == 0)
            break;
        char **grown = realloc(v, (n + 1) * sizeof(*v));
        if (grown == NULL || (grown[n] = strndup(p, len)) == NULL) {
            patterns_free(grown != NULL ? grown : v, n);
            return JRPC_ENOMEM;
        }
        v = grown;
        n++;
        p += len;
    }
    *out = v;
    *nout = n;
    return 0;
}

static void key_free(jrpc__key_t *k)
{
    free(k->name);
    free(k->secret);
    patterns_free(k->allow, k->nallow);
    patterns_free(k->deny, k->ndeny);
    free(k->origins);
    free(k->bucket);
}

/* Rebuilds the secret index for n keys (at most half full). */
static int index_build(jrpc_keys_t *k, size_t n)
{
    size_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    uint32_t *index = calloc(cap, sizeof(*index));
    if (index == NULL)
        return JRPC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t j = (size_t)jrpc__hash_str(k->v[i].secret, k->v[i].secret_len) & (cap - 1);
        while (index[j] != 0)
            j = (j + 1) & (cap - 1);
        index[j] = (uint32_t)(i + 1);
    }
    free(k->index);
    k->index = index;
    k->index_cap = cap;
    return 0;
}

JRPC_EXTERN int jrpc_keys_add(jrpc_keys_t *keys, const jrpc_key_config_t *cfg)
{
    if (keys == NULL || keys->installed || jrpc_key_check(cfg) != NULL)
        return JRPC_EINVAL;
    size_t sn = strlen(cfg->secret);
    for (size_t i = 0; i < keys->n; i++)
        if (strcmp(keys->v[i].name, cfg->name) == 0 || strcmp(keys->v[i].secret, cfg->secret) == 0)
            return JRPC_EEXIST;
    if (keys->n == keys->cap) {
        size_t cap = keys->cap ? keys->cap * 2 : 8;
        jrpc__key_t *v = realloc(keys->v, cap * sizeof(*v));
        if (v == NULL)
            return JRPC_ENOMEM;
        keys->v = v;
        keys->cap = cap;
    }
    jrpc__key_t *k = &keys->v[keys->n];
    memset(k, 0, sizeof(*k));
    k->name = strdup(cfg->name);
    k->secret = strdup(cfg->secret);
    k->secret_len = sn;
    k->rate = cfg->rate;
    k->burst = cfg->burst != 0 ? cfg->burst : cfg->rate; /* rate x 1 s */
    k->max_batch = cfg->max_batch;
    k->max_batch_ws = cfg->max_batch_ws;
    k->origins = cfg->origins != NULL ? strdup(cfg->origins) : NULL;
    k->bucket_len = 2 + strlen(cfg->name);
    k->bucket = malloc(k->bucket_len + 1);
    int rc = k->name == NULL || k->secret == NULL || k->bucket == NULL ||
                     (cfg->origins != NULL && k->origins == NULL)
                 ? JRPC_ENOMEM
                 : 0;
    if (rc == 0) {
        memcpy(k->bucket, "k:", 2);
        memcpy(k->bucket + 2, cfg->name, k->bucket_len - 1);
        rc = patterns_split(cfg->methods, &k->allow, &k->nallow);
    }
    if (rc == 0)
        rc = patterns_split(cfg->deny, &k->deny, &k->ndeny);
    if (rc == 0)
        rc = index_build(keys, keys->n + 1);
    if (rc != 0) {
        key_free(k);
        return rc;
    }
    keys->n++;
    return 0;
}

JRPC_EXTERN int jrpc_keys_cost(jrpc_keys_t *keys, const char *pattern, uint64_t units)
{
    if (keys == NULL || keys->installed || pattern == NULL || pattern[0] == '\0' ||
        units > UNITS_MAX)
        return JRPC_EINVAL;
    size_t len = strlen(pattern);
    const char *star = strchr(pattern, '*');
    if (star != NULL && star != pattern + len - 1)
        return JRPC_EINVAL;
    int prefix = star != NULL;
    len -= (size_t)prefix;
    for (size_t i = 0; i < keys->ncosts; i++)
        if (keys->costs[i].prefix == prefix && keys->costs[i].len == len &&
            memcmp(keys->costs[i].pattern, pattern, len) == 0)
            return JRPC_EEXIST;
    cost_t *v = realloc(keys->costs, (keys->ncosts + 1) * sizeof(*v));
    if (v == NULL)
        return JRPC_ENOMEM;
    keys->costs = v;
    cost_t *c = &v[keys->ncosts];
    c->pattern = strndup(pattern, len);
    if (c->pattern == NULL)
        return JRPC_ENOMEM;
    c->len = len;
    c->prefix = prefix;
    c->units = (uint32_t)units;
    keys->ncosts++;
    return 0;
}

JRPC_EXTERN void jrpc_keys_free(jrpc_keys_t *keys)
{
    if (keys == NULL)
        return;
    for (size_t i = 0; i < keys->n; i++)
        key_free(&keys->v[i]);
    free(keys->v);
    free(keys->index);
    for (size_t i = 0; i < keys->ncosts; i++)
        free(keys->costs[i].pattern);
    free(keys->costs);
    free(keys->prefix);
    free(keys);
}

/* ---- Lookups ----------------------------------------------------------------------------------
 */

/* Equal in time that depends on the lengths only, never on where the bytes differ. */
static int secret_eq(const char *a, size_t an, const char *b, size_t bn)
{
    /* Every byte of the shorter is compared, eight at a time, with no early exit: the time
     * depends on the lengths, not on how much of a guess matches. */
    uint64_t diff = an != bn;
    size_t n = an < bn ? an : bn, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        diff |= x ^ y;
    }
    if (i < n && n >= 8) {
        /* The tail as the last eight bytes, overlapping what was compared: one step. */
        uint64_t x, y;
        memcpy(&x, a + n - 8, 8);
        memcpy(&y, b + n - 8, 8);
        diff |= x ^ y;
        i = n;
    }
    for (; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

const jrpc__key_t *jrpc__keys_find(const jrpc__keys_t *keys, const char *s, size_t n)
{
    if (keys == NULL || keys->n == 0 || n == 0)
        return NULL;
    /* The index is keyed by a hash of the whole secret: a probe's path depends on that hash, not
     * on how much of a guess matches, and each candidate is compared in full. */
    size_t mask = keys->index_cap - 1;
    const jrpc__key_t *found = NULL;
    for (size_t j = (size_t)jrpc__hash_str(s, n) & mask; keys->index[j] != 0; j = (j + 1) & mask) {
        const jrpc__key_t *k = &keys->v[keys->index[j] - 1];
        if (secret_eq(k->secret, k->secret_len, s, n))
            found = k;
    }
    return found;
}

int jrpc__keys_same(const jrpc__key_t *k, const char *s, size_t n)
{
    return k != NULL && secret_eq(k->secret, k->secret_len, s, n);
}

int jrpc__keys_required(const jrpc__keys_t *keys)
{
    return keys->required;
}

unsigned jrpc__auth_max_batch(const jrpc__auth_t *auth, unsigned cap, int ws)
{
    if (auth == NULL || auth->key == NULL)
        return cap;
    unsigned k = ws ? auth->key->max_batch_ws : auth->key->max_batch;
    return k != 0 && k < cap ? k : cap;
}

const char *jrpc__keys_prefix(const jrpc__keys_t *keys, size_t *len)
{
    *len = keys->prefix_len;
    return keys->prefix;
}

int jrpc__keys_anonymous_limited(const jrpc__keys_t *keys)
{
    return keys->anon_rate != 0;
}

size_t jrpc__keys_count(const jrpc__keys_t *keys)
{
    return keys->n;
}

const char *jrpc__keys_origins(const jrpc__keys_t *keys, size_t i)
{
    return keys->v[i].origins;
}

void jrpc__keys_mark(const char *s, size_t n, char out[8])
{
    static const char hex[] = "0123456789abcdef";
    /* 24 bits of a 64-bit hash: enough to tell a client's wrong key from another's in a log,
     * far too few to learn anything about a secret of 16 characters or more. */
    uint64_t h = jrpc__hash_fnv1a(s, n) >> 40;
    for (int i = 5; i >= 0; i--, h >>= 4)
        out[i] = hex[h & 15];
    out[6] = '\0';
}

static int pattern_match(char *const *v, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        size_t pl = strlen(v[i]);
        if (pl > 0 && v[i][pl - 1] == '*') {
            if (len >= pl - 1 && memcmp(v[i], name, pl - 1) == 0)
                return 1;
        } else if (pl == len && memcmp(v[i], name, len) == 0) {
            return 1;
        }
    }
    return 0;
}

int jrpc__key_allows(const jrpc__key_t *k, const char *name, size_t len)
{
    if (k->ndeny != 0 && pattern_match(k->deny, k->ndeny, name, len))
        return 0;
    return k->nallow == 0 || pattern_match(k->allow, k->nallow, name, len);
}

uint32_t jrpc__keys_cost(const jrpc__keys_t *keys, const char *name, size_t len)
{
    const cost_t *best = NULL;
    for (size_t i = 0; i < keys->ncosts; i++) {
        const cost_t *c = &keys->costs[i];
        if (!c->prefix) {
            if (c->len == len && memcmp(c->pattern, name, len) == 0)
                return c->units; /* an exact name wins */
        } else if (len >= c->len && memcmp(c->pattern, name, c->len) == 0 &&
                   (best == NULL || c->len > best->len)) {
            best = c;
        }
    }
    return best != NULL ? best->units : COST_DEFAULT;
}

void jrpc__keys_anonymous(const jrpc__keys_t *keys, uint64_t *rate, uint64_t *burst,
                          jrpc__key_stats_t **stats)
{
    *rate = keys->anon_rate;
    *burst = keys->anon_burst;
    *stats = keys->anon_stats;
}

/* ---- Installing -------------------------------------------------------------------------------
 */

/* The counters named `name`, made when new (under the caller's lock; readers walk the list
 * without one, so an entry is complete before it is published). */
static jrpc__key_stats_t *stats_get(jrpc__engine_t *e, const char *name)
{
    jrpc__key_stats_t *head = atomic_load(&e->kstats);
    for (jrpc__key_stats_t *s = head; s != NULL; s = atomic_load(&s->next))
        if (strcmp(s->name, name) == 0)
            return s;
    size_t n = strlen(name);
    jrpc__key_stats_t *s = calloc(1, sizeof(*s) + n + 1);
    if (s == NULL)
        return NULL;
    memcpy(s->name, name, n + 1);
    /* Appended at the tail, so the list keeps the order keys first appeared in. */
    if (head == NULL) {
        atomic_store(&e->kstats, s);
    } else {
        jrpc__key_stats_t *t = head;
        while (atomic_load(&t->next) != NULL)
            t = atomic_load(&t->next);
        atomic_store(&t->next, s);
    }
    return s;
}

int jrpc__keys_install(jrpc__engine_t *e, jrpc__keys_t *keys)
{
    if (keys != NULL) {
        keys->anon_stats = stats_get(e, "(anonymous)");
        if (keys->anon_stats == NULL) {
            jrpc_keys_free(keys);
            return JRPC_ENOMEM;
        }
        for (size_t i = 0; i < keys->n; i++) {
            keys->v[i].stats = stats_get(e, keys->v[i].name);
            if (keys->v[i].stats == NULL) {
                jrpc_keys_free(keys);
                return JRPC_ENOMEM;
            }
        }
        keys->installed = 1;
    }
    jrpc__keys_t *old = atomic_exchange(&e->keys, keys);
    if (old != NULL) {
        old->older = e->keys_old;
        e->keys_old = old;
    }
    return 0;
}

void jrpc__keys_engine_free(jrpc__engine_t *e)
{
    jrpc_keys_free(atomic_exchange(&e->keys, NULL));
    while (e->keys_old != NULL) {
        jrpc__keys_t *k = e->keys_old;
        e->keys_old = k->older;
        jrpc_keys_free(k);
    }
    jrpc__key_stats_t *s = atomic_exchange(&e->kstats, NULL);
    while (s != NULL) {
        jrpc__key_stats_t *next = atomic_load(&s->next);
        free(s);
        s = next;
    }
}

void jrpc__keys_stats_each(jrpc__engine_t *e, void (*fn)(const jrpc__key_stats_t *s, void *arg),
                           void *arg)
{
    for (const jrpc__key_stats_t *s = atomic_load(&e->kstats); s != NULL; s = atomic_load(&s->next))
        fn(s, arg);
}
