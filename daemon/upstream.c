/* SPDX-License-Identifier: MIT */
/* upstream.c — jrpcd's gateway settings: the keys of [upstream NAME] sections and [batch] deny,
 * checked as they are read (so every mistake names its line), handed to the library once the
 * modules are loaded (local methods first, so a clash is reported against the upstream), printed
 * by --check, and summed up in the log when the daemon stops. */
#define _GNU_SOURCE /* dladdr */
#include "jrpcd.h"

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The gateway's client and libcurl live in libjrpc_upstream.so, loaded only when the config has
 * [upstream] sections: a jrpcd without upstreams never maps libcurl's dependency chain (~5 MB
 * resident). Found next to libjrpc.so (jrpcd's RUNPATH in a build tree, the library path when
 * installed). */
static struct {
    void *handle;
    void (*config_init)(jrpc_upstream_config_t *);
    int (*add)(jrpc_server_t *, const jrpc_upstream_config_t *, jrpc_upstream_t **);
    void (*free)(jrpc_upstream_t *);
    void (*stats)(const jrpc_upstream_t *, jrpc_upstream_stats_t *);
    const char *(*fault_name)(int);
    void (*url_each)(const jrpc_upstream_t *, jrpc_upstream_url_cb, void *);
    int (*reconfigure)(jrpc_upstream_t *, const jrpc_upstream_config_t *);
    int (*config_check)(const jrpc_upstream_config_t *);
    void (*sub_stats)(const jrpc_upstream_t *, jrpc_upstream_sub_stats_t *);
    void (*cache_config_init)(jrpc_upstream_cache_config_t *);
    int (*cache_new)(const jrpc_upstream_cache_config_t *, jrpc_upstream_cache_t **);
    int (*cache_reconfigure)(jrpc_upstream_cache_t *, const jrpc_upstream_cache_config_t *);
    void (*cache_free)(jrpc_upstream_cache_t *);
    void (*cache_stats)(const jrpc_upstream_cache_t *, jrpc_upstream_cache_stats_t *);
} up;

/* The response cache every upstream shares ([cache]); made with the upstreams, freed after
 * them. One per process: the daemon has one server. */
static jrpc_upstream_cache_t *gw_cache;

#define UPSTREAM_LIB "libjrpc_upstream.so.0"

/* Loads the library once; 0, or -1 with dlerror's reason in err. */
static int upstream_lib(char *err, size_t cap)
{
    if (up.handle != NULL)
        return 0;
    /* Next to the libjrpc.so this process uses, by absolute path: a dlopen by name searches the
     * caller's RUNPATH, and under a sanitizer the caller is the sanitizer's interceptor. */
    void *h = NULL;
    Dl_info info;
    const char *(*anchor)(void) = jrpc_version_string;
    void *anchor_p;
    memcpy(&anchor_p, &anchor, sizeof(anchor_p));
    if (dladdr(anchor_p, &info) != 0 && info.dli_fname != NULL) {
        const char *slash = strrchr(info.dli_fname, '/');
        char path[4096];
        if (slash != NULL &&
            (size_t)snprintf(path, sizeof path, "%.*s/%s", (int)(slash - info.dli_fname),
                             info.dli_fname, UPSTREAM_LIB) < sizeof path)
            h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    if (h == NULL)
        h = dlopen(UPSTREAM_LIB, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        snprintf(err, cap, "cannot load %s: %s", UPSTREAM_LIB, dlerror());
        return -1;
    }
    /* POSIX: a void * from dlsym converts to a function pointer through memcpy. */
#define UPSTREAM_SYM(field, name)                                                                  \
    do {                                                                                           \
        void *sym = dlsym(h, name);                                                                \
        if (sym == NULL) {                                                                         \
            snprintf(err, cap, "%s: no symbol %s", UPSTREAM_LIB, name);                            \
            dlclose(h);                                                                            \
            return -1;                                                                             \
        }                                                                                          \
        memcpy(&up.field, &sym, sizeof(sym));                                                      \
    } while (0)
    UPSTREAM_SYM(config_init, "jrpc_upstream_config_init");
    UPSTREAM_SYM(add, "jrpc_upstream_add");
    UPSTREAM_SYM(free, "jrpc_upstream_free");
    UPSTREAM_SYM(stats, "jrpc_upstream_stats");
    UPSTREAM_SYM(fault_name, "jrpc_upstream_fault_name");
    UPSTREAM_SYM(url_each, "jrpc_upstream_url_each");
    UPSTREAM_SYM(reconfigure, "jrpc_upstream_reconfigure");
    UPSTREAM_SYM(config_check, "jrpc_upstream_config_check");
    UPSTREAM_SYM(sub_stats, "jrpc_upstream_sub_stats");
    UPSTREAM_SYM(cache_config_init, "jrpc_upstream_cache_config_init");
    UPSTREAM_SYM(cache_new, "jrpc_upstream_cache_new");
    UPSTREAM_SYM(cache_reconfigure, "jrpc_upstream_cache_reconfigure");
    UPSTREAM_SYM(cache_free, "jrpc_upstream_cache_free");
    UPSTREAM_SYM(cache_stats, "jrpc_upstream_cache_stats");
#undef UPSTREAM_SYM
    up.handle = h;
    return 0;
}

/* Bounds of the numeric keys; each says why. */
#define MAX_BATCH_LIMIT 1000000    /* the server's own max_batch bound: no useful chunk is larger */
#define IN_FLIGHT_LIMIT 100000     /* each is a connection or stream: more is a typo, not a plan */
#define QUEUE_LIMIT 10000000       /* each holds its request: ten million is past any memory */
#define RETRIES_LIMIT 10           /* every retry costs a timeout in the worst case */
#define WEIGHT_LIMIT 1000000       /* ratios beyond a million to one are not load balancing */
#define PRIORITY_LIMIT 1000        /* tiers; a handful is what failover plans use */
#define UP_DURATION_MAX 3600000ULL /* 1 h: past the 24 h deadline bound's use for one request */
#define MAX_LAG_LIMIT 1000000      /* blocks: weeks of any chain; more is a typo */

static char *xstrdup(const char *s, char *err, size_t cap)
{
    char *c = strdup(s);
    if (c == NULL)
        snprintf(err, cap, "out of memory");
    return c;
}

/* The upstream called `name`, created on first mention. */
static jrpcd_upstream_t *upstream_get(jrpcd_opts_t *opts, const char *name, const char *origin,
                                      char *err, size_t cap)
{
    for (size_t i = 0; i < opts->upstreams_len; i++)
        if (strcmp(opts->upstreams[i].name, name) == 0)
            return &opts->upstreams[i];
    jrpcd_upstream_t *grown = realloc(opts->upstreams, (opts->upstreams_len + 1) * sizeof(*grown));
    if (grown == NULL) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    opts->upstreams = grown;
    jrpcd_upstream_t *u = &grown[opts->upstreams_len];
    memset(u, 0, sizeof(*u));
    if (upstream_lib(err, cap) != 0)
        return NULL;
    up.config_init(&u->cfg);
    u->name = xstrdup(name, err, cap);
    u->origin = xstrdup(origin, err, cap);
    if (u->name == NULL || u->origin == NULL) {
        free(u->name);
        free(u->origin);
        return NULL;
    }
    opts->upstreams_len++;
    return u;
}

/* Appends one URL after checking its scheme (the library checks the rest when it is added). */
static int url_push(jrpcd_upstream_t *u, const char *url, size_t len, unsigned weight,
                    unsigned priority, char *err, size_t cap)
{
    if (u->nurls == JRPC_UPSTREAM_MAX_URLS) {
        snprintf(err, cap, "more than %d URLs", JRPC_UPSTREAM_MAX_URLS);
        return -1;
    }
    if (!((len > 7 && strncmp(url, "http://", 7) == 0) ||
          (len > 8 && strncmp(url, "https://", 8) == 0))) {
        snprintf(err, cap, "\"%.*s\" is not an http:// or https:// URL", (int)len, url);
        return -1;
    }
    char *copy = strndup(url, len);
    if (copy == NULL) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    u->urls[u->nurls++] = (jrpc_upstream_url_t){copy, weight, priority};
    return 0;
}

/* `urls = A B C`: failover order, each its own priority tier. */
static int key_urls(jrpcd_upstream_t *u, const char *value, char *err, size_t cap)
{
    const char *p = value, *word;
    size_t n, words = 0;
    for (; jrpcd_list_next(&p, &word, &n); words++)
        if (url_push(u, word, n, 1, u->next_priority++, err, cap) != 0)
            return -1;
    if (words == 0) {
        snprintf(err, cap, "no URL given");
        return -1;
    }
    return 0;
}

/* `url = URL [weight=N] [priority=N]`. */
static int key_url(jrpcd_upstream_t *u, const char *value, char *err, size_t cap)
{
    const char *ws = " \t";
    const char *p = value + strspn(value, ws);
    size_t n = strcspn(p, ws);
    if (n == 0) {
        snprintf(err, cap, "no URL given");
        return -1;
    }
    const char *url = p;
    size_t url_len = n;
    unsigned long long weight = 1, priority = 0;
    for (p += n; *(p += strspn(p, ws)) != '\0'; p += n) {
        n = strcspn(p, ws);
        char word[64];
        snprintf(word, sizeof word, "%.*s", (int)n, p);
        unsigned long long *dst = strncmp(word, "weight=", 7) == 0     ? &weight
                                  : strncmp(word, "priority=", 9) == 0 ? &priority
                                                                       : NULL;
        if (dst == NULL) {
            snprintf(err, cap, "\"%s\": after the URL, write weight=N or priority=N", word);
            return -1;
        }
        const char *num = strchr(word, '=') + 1;
        unsigned long long max = dst == &weight ? WEIGHT_LIMIT : PRIORITY_LIMIT;
        if (jrpcd_parse_uint(num, dst, err, cap) != 0)
            return -1;
        if (*dst > max || (dst == &weight && *dst == 0)) {
            snprintf(err, cap, "\"%s\" is out of range (%u to %llu)", word,
                     dst == &weight ? 1u : 0u, max);
            return -1;
        }
    }
    return url_push(u, url, url_len, (unsigned)weight, (unsigned)priority, err, cap);
}

/* A method name or pattern w[0..n) (n > 0): 0, or -1 with err set when a '*' is not at its end.
 * `example` is a pattern that reads well in the message. */
static int pattern_check(const char *w, size_t n, const char *example, char *err, size_t cap)
{
    if (memchr(w, '*', n - 1) == NULL)
        return 0;
    snprintf(err, cap, "\"%.*s\": '*' may only end a pattern (%s)", (int)n, w, example);
    return -1;
}

static int key_methods(jrpcd_upstream_t *u, const char *value, char *err, size_t cap)
{
    const char *p = value, *word;
    size_t n, words = 0;
    for (; jrpcd_list_next(&p, &word, &n); words++) {
        if (pattern_check(word, n, "eth_*", err, cap) != 0)
            return -1;
        for (size_t i = 0; i < u->nmethods; i++) {
            if (strlen(u->methods[i]) == n && memcmp(u->methods[i], word, n) == 0) {
                snprintf(err, cap, "\"%.*s\" is listed twice", (int)n, word);
                return -1;
            }
        }
        if (jrpcd_strv_push(&u->methods, &u->nmethods, word, n, err, cap) != 0)
            return -1;
    }
    if (words == 0) {
        snprintf(err, cap, "no method or pattern given");
        return -1;
    }
    return 0;
}

/* `ws_urls = ws://A ws://B`: WebSocket URLs for subscriptions, failover order. The client is
 * plain TCP: wss:// is refused here rather than failing at the first subscribe. */
static int key_ws_urls(jrpcd_upstream_t *u, const char *value, char *err, size_t cap)
{
    const char *p = value, *word;
    size_t n, words = 0;
    for (; jrpcd_list_next(&p, &word, &n); words++) {
        if (n > 6 && strncmp(word, "wss://", 6) == 0) {
            snprintf(err, cap,
                     "\"%.*s\": wss:// is not supported (the gateway's WebSocket client has no "
                     "TLS); use ws:// to the node, or a local TLS-terminating proxy",
                     (int)n, word);
            return -1;
        }
        if (!(n > 5 && strncmp(word, "ws://", 5) == 0)) {
            snprintf(err, cap, "\"%.*s\" is not a ws:// URL", (int)n, word);
            return -1;
        }
        if (u->nws_urls == JRPC_UPSTREAM_MAX_URLS) {
            snprintf(err, cap, "more than %d ws_urls", JRPC_UPSTREAM_MAX_URLS);
            return -1;
        }
        if (jrpcd_strv_push(&u->ws_urls, &u->nws_urls, word, n, err, cap) != 0)
            return -1;
    }
    if (words == 0) {
        snprintf(err, cap, "no URL given");
        return -1;
    }
    return 0;
}

/* Numeric keys: name, kind, field, range. */
static const struct {
    const char *key;
    int duration;
    size_t offset;
    unsigned long long min, max;
} num_keys[] = {
    {"max_batch", 0, offsetof(jrpc_upstream_config_t, max_batch), 1, MAX_BATCH_LIMIT},
    {"max_in_flight", 0, offsetof(jrpc_upstream_config_t, max_in_flight), 1, IN_FLIGHT_LIMIT},
    {"max_queue", 0, offsetof(jrpc_upstream_config_t, max_queue), 1, QUEUE_LIMIT},
    {"retries", 0, offsetof(jrpc_upstream_config_t, retries), 0, RETRIES_LIMIT},
    {"timeout", 1, offsetof(jrpc_upstream_config_t, timeout_ms), 1, UP_DURATION_MAX},
    {"connect_timeout", 1, offsetof(jrpc_upstream_config_t, connect_timeout_ms), 0,
     UP_DURATION_MAX},
    {"recheck", 1, offsetof(jrpc_upstream_config_t, recheck_ms), 0, UP_DURATION_MAX},
    /* Every probe is a request to each URL: under 100 ms it is load, not health checking. */
    {"probe_interval", 1, offsetof(jrpc_upstream_config_t, probe_interval_ms), 100,
     UP_DURATION_MAX},
    {"probe_timeout", 1, offsetof(jrpc_upstream_config_t, probe_timeout_ms), 1, UP_DURATION_MAX},
    {"max_lag", 0, offsetof(jrpc_upstream_config_t, max_lag), 0, MAX_LAG_LIMIT},
};

#define NUM_KEYS (sizeof num_keys / sizeof num_keys[0])

/* "250ms", "10s", "1h": how the config spells a duration. */
static void format_ms(unsigned ms, char *buf, size_t cap)
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(buf, cap, "%uh", ms / 3600000);
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(buf, cap, "%um", ms / 60000);
    else if (ms != 0 && ms % 1000 == 0)
        snprintf(buf, cap, "%us", ms / 1000);
    else
        snprintf(buf, cap, "%ums", ms);
}

static int on_off(const char *value, unsigned *out, char *err, size_t cap)
{
    if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0) {
        snprintf(err, cap, "\"%s\" is not on or off", value);
        return -1;
    }
    *out = strcmp(value, "on") == 0;
    return 0;
}

/* The longest batch_wait (its reason with the constant). */
#define BATCH_WAIT_MAX_US JRPC_UPSTREAM_BATCH_WAIT_MAX_US

/* "200us", "1ms", "0": microseconds. */
static int parse_us(const char *value, unsigned *out, char *err, size_t cap)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(value, &end, 10);
    unsigned long long mult = strcmp(end, "us") == 0 ? 1 : strcmp(end, "ms") == 0 ? 1000 : 0;
    if (end == value || value[0] == '-' || errno != 0 || (mult == 0 && !(*end == '\0' && n == 0)) ||
        n > BATCH_WAIT_MAX_US) {
        snprintf(err, cap, "\"%s\" is not a wait from 0 to %uus (write 200us, 1ms or 0)", value,
                 BATCH_WAIT_MAX_US);
        return -1;
    }
    n *= mult ? mult : 1;
    if (n > BATCH_WAIT_MAX_US) {
        snprintf(err, cap, "\"%s\" is longer than %uus", value, BATCH_WAIT_MAX_US);
        return -1;
    }
    *out = (unsigned)n;
    return 0;
}

/* Key number k of a group whose seen keys are bits of *set may appear once: 0, or -1 with err
 * set on its second appearance. */
static int key_once(unsigned *set, int k, const char *key, char *err, size_t cap)
{
    if (*set & (1u << k)) {
        snprintf(err, cap, "%s is already set", key);
        return -1;
    }
    *set |= 1u << k;
    return 0;
}
/* share_set's bit for transport (after the three of share_key). */
#define TRANSPORT_SET (1u << 3)
/* share_set's bit number for batch_hold (after transport's). */
#define BATCH_HOLD_BIT 4
/* The longest batch_hold (its reason with the constant). */
#define BATCH_HOLD_MAX_MS (JRPC_UPSTREAM_BATCH_HOLD_MAX_US / 1000u)

/* `batch_hold = 10ms | off`: how long calls sent alone wait behind auto_batch's batch out. */
static int batch_hold_key(jrpcd_upstream_t *u, const char *value, char *err, size_t cap)
{
    unsigned long long ms = 0;
    if (key_once(&u->share_set, BATCH_HOLD_BIT, "batch_hold", err, cap) != 0)
        return -1;
    if (strcmp(value, "off") != 0 && jrpcd_parse_duration(value, &ms, err, cap) != 0)
        return -1;
    if (ms > BATCH_HOLD_MAX_MS) {
        snprintf(err, cap, "\"%s\" is longer than %ums (write 10ms, or off)", value,
                 BATCH_HOLD_MAX_MS);
        return -1;
    }
    u->cfg.batch_hold_us = (unsigned)ms * 1000u;
    return 0;
}

/* The keys of answer sharing: 0 or -1 when key is one of them, 1 when it is not. */
static int share_key(jrpcd_upstream_t *u, const char *key, const char *value, char *err, size_t cap)
{
    static const char *const keys[] = {"dedup", "auto_batch", "batch_wait"};
    int k = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(key, keys[i]) == 0)
            k = i;
    if (strcmp(key, "dedup_deny") == 0) {
        const char *p = value, *word;
        size_t n, words = 0;
        for (; jrpcd_list_next(&p, &word, &n); words++)
            if (pattern_check(word, n, "debug_*", err, cap) != 0 ||
                jrpcd_strv_push(&u->dedup_deny, &u->ndedup_deny, word, n, err, cap) != 0)
                return -1;
        if (words == 0) {
            snprintf(err, cap, "no method or pattern given");
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "batch_hold") == 0)
        return batch_hold_key(u, value, err, cap);
    if (k < 0)
        return 1;
    if (key_once(&u->share_set, k, key, err, cap) != 0)
        return -1;
    if (k == 0)
        return on_off(value, &u->cfg.dedup, err, cap);
    if (k == 1)
        return on_off(value, &u->cfg.auto_batch, err, cap);
    return parse_us(value, &u->cfg.batch_wait_us, err, cap);
}

/* `hedge_after = 250ms | p95 | off` and `probe = METHOD | off`: 0 or -1 when key is one of
 * them, 1 when it is not. */
static int health_key(jrpcd_upstream_t *u, const char *key, const char *value, char *err,
                      size_t cap)
{
    int k = strcmp(key, "hedge_after") == 0 ? 0 : strcmp(key, "probe") == 0 ? 1 : -1;
    if (k < 0)
        return 1;
    if (key_once(&u->health_set, k, key, err, cap) != 0)
        return -1;
    int off = strcmp(value, "off") == 0;
    if (k == 1) {
        size_t n = strlen(value);
        if (off)
            return 0;
        if (n == 0 || n > 200 || strpbrk(value, " \t\"\\") != NULL) {
            snprintf(err, cap, "\"%s\" is not a method name (probe = eth_blockNumber, or off)",
                     value);
            return -1;
        }
        u->probe = xstrdup(value, err, cap);
        return u->probe != NULL ? 0 : -1;
    }
    u->cfg.hedge_after_ms = u->cfg.hedge_quantile = 0;
    if (off || strcmp(value, "0") == 0)
        return 0;
    if (value[0] == 'p') {
        char *end;
        errno = 0;
        unsigned long q = strtoul(value + 1, &end, 10);
        if (value[1] < '0' || value[1] > '9' || *end != '\0' || errno != 0 || q < 1 || q > 99) {
            snprintf(err, cap, "\"%s\" is not a latency quantile from p1 to p99 (p95)", value);
            return -1;
        }
        u->cfg.hedge_quantile = (unsigned)q;
        return 0;
    }
    unsigned long long ms;
    if (jrpcd_parse_duration(value, &ms, err, cap) != 0 || ms == 0 || ms > UP_DURATION_MAX) {
        snprintf(err, cap, "\"%s\" is not a delay from 1ms to 1h, a quantile (p95), or off", value);
        return -1;
    }
    u->cfg.hedge_after_ms = (unsigned)ms;
    return 0;
}

int jrpcd_upstream_key(jrpcd_opts_t *opts, const char *name, const char *key, const char *value,
                       const char *origin, char *err, size_t cap)
{
    jrpcd_upstream_t *u = upstream_get(opts, name, origin, err, cap);
    if (u == NULL)
        return -1;
    if (strcmp(key, "urls") == 0)
        return key_urls(u, value, err, cap);
    if (strcmp(key, "url") == 0)
        return key_url(u, value, err, cap);
    if (strcmp(key, "methods") == 0)
        return key_methods(u, value, err, cap);
    if (strcmp(key, "ws_urls") == 0)
        return key_ws_urls(u, value, err, cap);
    if (strcmp(key, "header") == 0) {
        if (strchr(value, ':') == NULL || value[0] == ':') {
            snprintf(err, cap, "\"%s\" is not \"Name: value\"", value);
            return -1;
        }
        return jrpcd_strv_push(&u->headers, &u->nheaders, value, strlen(value), err, cap);
    }
    if (strcmp(key, "transport") == 0) {
        if (u->share_set & TRANSPORT_SET) {
            snprintf(err, cap, "transport is already set");
            return -1;
        }
        if (strcmp(value, "auto") != 0 && strcmp(value, "curl") != 0) {
            snprintf(err, cap, "\"%s\" is not a transport (auto or curl)", value);
            return -1;
        }
        u->share_set |= TRANSPORT_SET;
        u->cfg.transport = strcmp(value, "curl") == 0 ? JRPC_UPSTREAM_TRANSPORT_CURL
                                                      : JRPC_UPSTREAM_TRANSPORT_AUTO;
        return 0;
    }
    if (strcmp(key, "ca_file") == 0) {
        if (u->ca_file != NULL) {
            snprintf(err, cap, "ca_file is already set");
            return -1;
        }
        if (value[0] == '\0') {
            snprintf(err, cap, "ca_file is empty");
            return -1;
        }
        /* Relative to the config file, like module paths. */
        const char *dir = value[0] == '/' || opts->config_dir == NULL ? NULL : opts->config_dir;
        size_t n = (dir ? strlen(dir) + 1 : 0) + strlen(value) + 1;
        if ((u->ca_file = malloc(n)) == NULL) {
            snprintf(err, cap, "out of memory");
            return -1;
        }
        snprintf(u->ca_file, n, "%s%s%s", dir ? dir : "", dir ? "/" : "", value);
        return 0;
    }
    int share = share_key(u, key, value, err, cap);
    if (share != 1)
        return share;
    int health = health_key(u, key, value, err, cap);
    if (health != 1)
        return health;
    for (size_t i = 0; i < NUM_KEYS; i++) {
        if (strcmp(key, num_keys[i].key) != 0)
            continue;
        if (u->set & (1u << i)) {
            snprintf(err, cap, "%s is already set", key);
            return -1;
        }
        unsigned long long v;
        int rc = num_keys[i].duration ? jrpcd_parse_duration(value, &v, err, cap)
                                      : jrpcd_parse_uint(value, &v, err, cap);
        if (rc != 0)
            return -1;
        if (v < num_keys[i].min || v > num_keys[i].max) {
            char lo[32], hi[32];
            if (num_keys[i].duration) {
                format_ms((unsigned)num_keys[i].min, lo, sizeof lo);
                format_ms((unsigned)num_keys[i].max, hi, sizeof hi);
            } else {
                snprintf(lo, sizeof lo, "%llu", num_keys[i].min);
                snprintf(hi, sizeof hi, "%llu", num_keys[i].max);
            }
            snprintf(err, cap, "\"%s\" is out of range (%s to %s)", value, lo, hi);
            return -1;
        }
        unsigned u32 = (unsigned)v;
        memcpy((char *)&u->cfg + num_keys[i].offset, &u32, sizeof u32);
        u->set |= 1u << i;
        return 0;
    }
    snprintf(err, cap,
             "unknown key \"%s\" (keys: urls, url, methods, max_batch, max_in_flight, max_queue, "
             "timeout, connect_timeout, retries, recheck, ca_file, header, ws_urls, dedup, "
             "dedup_deny, auto_batch, batch_wait, batch_hold, transport, hedge_after, probe, "
             "probe_interval, probe_timeout, max_lag)",
             key);
    return -1;
}

/* The longest TTL short of forever: a day; past it an answer is as good as forever. */
#define CACHE_TTL_MAX 86400000ULL
/* The largest redis_max_value: Redis refuses a string past 512 MiB. */
#define CACHE_REDIS_MAX_VALUE (512ULL << 20)

int jrpcd_cache_key(jrpcd_opts_t *opts, const char *sub, const char *key, const char *value,
                    char *err, size_t cap)
{
    unsigned long long v;
    if (sub[0] == '\0') {
        if (strcmp(key, "size") == 0) {
            if (opts->cache_size_set) {
                snprintf(err, cap, "size is already set");
                return -1;
            }
            if (jrpcd_parse_size(value, &v, err, cap) != 0)
                return -1;
            opts->cache_size = v;
            opts->cache_size_set = 1;
            return 0;
        }
        if (strcmp(key, "tag_ttl") == 0) {
            if (jrpcd_parse_duration(value, &v, err, cap) != 0)
                return -1;
            if (v > CACHE_TTL_MAX) {
                snprintf(err, cap, "\"%s\" is longer than a day", value);
                return -1;
            }
            opts->cache_tag_ttl_ms = v;
            return 0;
        }
        if (strcmp(key, "redis") == 0)
            return on_off(value, &opts->cache_redis, err, cap);
        if (strcmp(key, "redis_max_value") == 0) {
            if (jrpcd_parse_size(value, &v, err, cap) != 0)
                return -1;
            if (v < 1 || v > CACHE_REDIS_MAX_VALUE) {
                snprintf(err, cap, "\"%s\" is outside 1 byte to 512MiB (Redis's largest string)",
                         value);
                return -1;
            }
            opts->cache_redis_max = v;
            return 0;
        }
        snprintf(err, cap,
                 "unknown key \"%s\" (keys: size, tag_ttl, redis, redis_max_value; TTLs go in "
                 "[cache ttl])",
                 key);
        return -1;
    }
    if (strcmp(sub, "ttl") != 0) {
        snprintf(err, cap, "unknown section (write [cache] or [cache ttl])");
        return -1;
    }
    size_t n = strlen(key);
    if (n == 0 || pattern_check(key, n, "eth_get*", err, cap) != 0)
        return -1;
    for (size_t i = 0; i < opts->cache_nrules; i++) {
        if (strcmp(opts->cache_rules[i].pattern, key) == 0) {
            snprintf(err, cap, "\"%s\" is listed twice", key);
            return -1;
        }
    }
    if (strcmp(value, "forever") == 0) {
        v = JRPC_UPSTREAM_CACHE_FOREVER;
    } else {
        if (jrpcd_parse_duration(value, &v, err, cap) != 0) {
            snprintf(err, cap, "\"%s\" is not a duration (250ms, 2s, 10m), forever, or 0", value);
            return -1;
        }
        if (v > CACHE_TTL_MAX) {
            snprintf(err, cap, "\"%s\" is longer than a day (write forever)", value);
            return -1;
        }
    }
    jrpc_upstream_cache_rule_t *grown =
        realloc(opts->cache_rules, (opts->cache_nrules + 1) * sizeof(*grown));
    if (grown == NULL || (key = strdup(key)) == NULL) {
        if (grown != NULL)
            opts->cache_rules = grown;
        snprintf(err, cap, "out of memory");
        return -1;
    }
    opts->cache_rules = grown;
    grown[opts->cache_nrules++] = (jrpc_upstream_cache_rule_t){key, v};
    return 0;
}

/* The library's cache configuration of opts (the rules point into opts). */
static jrpc_upstream_cache_config_t cache_config(const jrpcd_opts_t *opts)
{
    jrpc_upstream_cache_config_t c;
    up.cache_config_init(&c);
    if (opts->cache_size_set)
        c.size = (size_t)opts->cache_size;
    c.tag_ttl_ms = opts->cache_tag_ttl_ms;
    c.rules = opts->cache_rules;
    c.nrules = opts->cache_nrules;
    c.redis = opts->cache_redis;
    if (opts->cache_redis_max != 0)
        c.redis_max_value = (size_t)opts->cache_redis_max;
    return c;
}

static int cache_differ(const jrpcd_opts_t *a, const jrpcd_opts_t *b)
{
    if (a->cache_size_set != b->cache_size_set || a->cache_size != b->cache_size ||
        a->cache_tag_ttl_ms != b->cache_tag_ttl_ms || a->cache_nrules != b->cache_nrules ||
        a->cache_redis != b->cache_redis || a->cache_redis_max != b->cache_redis_max)
        return 1;
    for (size_t i = 0; i < a->cache_nrules; i++)
        if (strcmp(a->cache_rules[i].pattern, b->cache_rules[i].pattern) != 0 ||
            a->cache_rules[i].ttl_ms != b->cache_rules[i].ttl_ms)
            return 1;
    return 0;
}

int jrpcd_upstreams_check(const jrpcd_opts_t *opts, char *err, size_t cap)
{
    for (size_t i = 0; i < opts->upstreams_len; i++) {
        const jrpcd_upstream_t *u = &opts->upstreams[i];
        if (u->nurls == 0 || u->nmethods == 0) {
            snprintf(err, cap, "%s: [upstream %s] needs %s", u->origin, u->name,
                     u->nurls == 0 ? "urls (or url lines)" : "methods");
            return -1;
        }
        /* Lag is measured in blocks, which only eth_blockNumber's answer gives. */
        if (u->cfg.max_lag != 0 && (u->probe == NULL || strcmp(u->probe, "eth_blockNumber") != 0)) {
            snprintf(err, cap, "%s: [upstream %s]: max_lag needs probe = eth_blockNumber",
                     u->origin, u->name);
            return -1;
        }
    }
    return 0;
}

int jrpcd_batch_deny_add(jrpcd_opts_t *opts, const char *value, char *err, size_t cap)
{
    const char *p = value, *word;
    size_t n, words = 0;
    for (; jrpcd_list_next(&p, &word, &n); words++)
        if (pattern_check(word, n, "debug_*", err, cap) != 0 ||
            jrpcd_strv_push(&opts->batch_deny, &opts->batch_deny_len, word, n, err, cap) != 0)
            return -1;
    if (words == 0) {
        snprintf(err, cap, "no method or pattern given");
        return -1;
    }
    return 0;
}

int jrpcd_batch_allow_add(jrpcd_opts_t *opts, const char *value, char *err, size_t cap)
{
    const char *p = value, *word;
    size_t n, words = 0;
    for (; jrpcd_list_next(&p, &word, &n); words++) {
        const char *colon = memchr(word, ':', n);
        size_t name_len = colon ? (size_t)(colon - word) : n;
        if (name_len == 0 || (colon != NULL && colon + 1 == word + n)) {
            snprintf(err, cap, "\"%.*s\" is not NAME or NAME:KIND (eth_subscribe:newHeads)", (int)n,
                     word);
            return -1;
        }
        if (pattern_check(word, name_len, "eth_*", err, cap) != 0)
            return -1;
        char entry[256];
        if (n + 2 > sizeof entry) {
            snprintf(err, cap, "\"%.*s…\" is too long", 40, word);
            return -1;
        }
        snprintf(entry, sizeof entry, "!%.*s", (int)n, word);
        if (jrpcd_strv_push(&opts->batch_deny, &opts->batch_deny_len, entry, n + 1, err, cap) != 0)
            return -1;
    }
    if (words == 0) {
        snprintf(err, cap, "no method given");
        return -1;
    }
    return 0;
}

/* The library's configuration of section u; its pointers point into u. */
static jrpc_upstream_config_t upstream_config(const jrpcd_upstream_t *u)
{
    jrpc_upstream_config_t cfg = u->cfg;
    cfg.name = u->name;
    cfg.urls = u->urls;
    cfg.nurls = u->nurls;
    cfg.methods = (const char *const *)u->methods;
    cfg.nmethods = u->nmethods;
    cfg.headers = (const char *const *)u->headers;
    cfg.nheaders = u->nheaders;
    cfg.ca_file = u->ca_file;
    cfg.ws_urls = (const char *const *)u->ws_urls;
    cfg.nws_urls = u->nws_urls;
    cfg.dedup_deny = (const char *const *)u->dedup_deny;
    cfg.ndedup_deny = u->ndedup_deny;
    cfg.cache = gw_cache;
    cfg.probe = u->probe;
    return cfg;
}

int jrpcd_gateway_setup(jrpcd_opts_t *opts, jrpc_server_t *srv, char *err, size_t cap)
{
    for (size_t i = 0; i < opts->batch_deny_len; i++) {
        int rc = jrpc_batch_deny(srv, opts->batch_deny[i]);
        if (rc != 0) {
            snprintf(err, cap, "[batch] deny %s: %s", opts->batch_deny[i], jrpc_strerror(rc));
            return -1;
        }
    }
    if (opts->cache_redis && opts->redis_url == NULL) {
        snprintf(err, cap,
                 "[cache] redis = on needs [redis] url (the Redis the answers are "
                 "shared through)");
        return -1;
    }
    if (opts->upstreams_len != 0 && gw_cache == NULL) {
        jrpc_upstream_cache_config_t cc = cache_config(opts);
        int rc = up.cache_new(&cc, &gw_cache);
        if (rc != 0) {
            snprintf(err, cap, "[cache]: %s", jrpc_strerror(rc));
            return -1;
        }
    }
    for (size_t i = 0; i < opts->upstreams_len; i++) {
        jrpcd_upstream_t *u = &opts->upstreams[i];
        jrpc_upstream_config_t cfg = upstream_config(u);
        int rc = up.add(srv, &cfg, &u->up);
        if (rc != 0) {
            /* The system's text for these ("File exists") would not say what is wrong. */
            const char *why = rc == JRPC_EEXIST ? "one of its methods is listed twice or served "
                                                  "already (by a module or an earlier upstream; "
                                                  "with ws_urls: eth_subscribe or "
                                                  "eth_unsubscribe)"
                              : rc == JRPC_EINVAL
                                  ? "a URL, ws_urls entry or header the library refuses"
                                  : jrpc_strerror(rc);
            snprintf(err, cap, "[upstream %s] (%s): %s", u->name, u->origin, why);
            return -1;
        }
        jrpcd_log(JRPC_LOG_INFO,
                  "upstream %s: %zu URL%s, %zu method name%s or pattern%s, "
                  "max_batch %u, max_in_flight %u, max_queue %u, timeout %u ms, retries %u",
                  u->name, u->nurls, u->nurls == 1 ? "" : "s", u->nmethods,
                  u->nmethods == 1 ? "" : "s", u->nmethods == 1 ? "" : "s", cfg.max_batch,
                  cfg.max_in_flight, cfg.max_queue, cfg.timeout_ms, cfg.retries);
    }
    return 0;
}

/* ---- Reload ------------------------------------------------------------------------------- */

static int str_differ(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

/* 1 when two versions of one section differ in what jrpc_upstream_reconfigure applies (header
 * values included: a rotated API key is a change). */
static int settings_differ(const jrpcd_upstream_t *a, const jrpcd_upstream_t *b)
{
    const jrpc_upstream_config_t *x = &a->cfg, *y = &b->cfg;
    if (a->nurls != b->nurls || a->nheaders != b->nheaders || x->max_batch != y->max_batch ||
        x->max_in_flight != y->max_in_flight || x->timeout_ms != y->timeout_ms ||
        x->connect_timeout_ms != y->connect_timeout_ms || x->retries != y->retries ||
        x->recheck_ms != y->recheck_ms || x->max_queue != y->max_queue ||
        str_differ(a->ca_file, b->ca_file) || x->dedup != y->dedup ||
        x->auto_batch != y->auto_batch || x->batch_wait_us != y->batch_wait_us ||
        x->batch_hold_us != y->batch_hold_us || a->ndedup_deny != b->ndedup_deny ||
        x->hedge_after_ms != y->hedge_after_ms || x->hedge_quantile != y->hedge_quantile ||
        str_differ(a->probe, b->probe) || x->probe_interval_ms != y->probe_interval_ms ||
        x->probe_timeout_ms != y->probe_timeout_ms || x->max_lag != y->max_lag ||
        x->transport != y->transport)
        return 1;
    for (size_t i = 0; i < a->ndedup_deny; i++)
        if (strcmp(a->dedup_deny[i], b->dedup_deny[i]) != 0)
            return 1;
    for (size_t i = 0; i < a->nurls; i++)
        if (strcmp(a->urls[i].url, b->urls[i].url) != 0 || a->urls[i].weight != b->urls[i].weight ||
            a->urls[i].priority != b->urls[i].priority)
            return 1;
    for (size_t i = 0; i < a->nheaders; i++)
        if (strcmp(a->headers[i], b->headers[i]) != 0)
            return 1;
    return 0;
}

static int methods_differ(const jrpcd_upstream_t *a, const jrpcd_upstream_t *b)
{
    if (a->nmethods != b->nmethods)
        return 1;
    for (size_t i = 0; i < a->nmethods; i++)
        if (strcmp(a->methods[i], b->methods[i]) != 0)
            return 1;
    return 0;
}

static jrpcd_upstream_t *section_find(const jrpcd_opts_t *opts, const char *name)
{
    for (size_t i = 0; i < opts->upstreams_len; i++)
        if (strcmp(opts->upstreams[i].name, name) == 0)
            return &opts->upstreams[i];
    return NULL;
}

int jrpcd_gateway_reload_check(const jrpcd_opts_t *run, const jrpcd_opts_t *next, char *err,
                               size_t cap)
{
    int restart = 0;
    /* [redis] itself needs a restart: the running one is what the cache would use. */
    if (next->cache_redis && run->redis_url == NULL) {
        snprintf(err, cap, "[cache] redis = on needs [redis] url, which takes a restart");
        return -1;
    }
    for (size_t i = 0; i < run->upstreams_len; i++) {
        const jrpcd_upstream_t *r = &run->upstreams[i], *n = section_find(next, r->name);
        if (n == NULL) {
            jrpcd_log(JRPC_LOG_WARN,
                      "reload: [upstream %s] removed: needs a restart (it still serves)", r->name);
            restart++;
            continue;
        }
        int ws_differ = r->nws_urls != n->nws_urls;
        for (size_t j = 0; !ws_differ && j < r->nws_urls; j++)
            ws_differ = strcmp(r->ws_urls[j], n->ws_urls[j]) != 0;
        if (ws_differ) {
            jrpcd_log(JRPC_LOG_WARN,
                      "reload: [upstream %s] ws_urls changed: needs a restart (kept as they were)",
                      r->name);
            restart++;
        }
        if (methods_differ(r, n)) {
            jrpcd_log(JRPC_LOG_WARN,
                      "reload: [upstream %s] methods changed: needs a restart (kept as they were; "
                      "its other keys apply)",
                      r->name);
            restart++;
        }
        if (r->up == NULL || !settings_differ(r, n))
            continue;
        jrpc_upstream_config_t cfg = upstream_config(n);
        int rc = up.config_check(&cfg);
        if (rc != 0) {
            snprintf(err, cap, "[upstream %s] (%s): %s", n->name, n->origin,
                     rc == JRPC_EINVAL ? "a URL or header the library refuses" : jrpc_strerror(rc));
            return -1;
        }
    }
    for (size_t i = 0; i < next->upstreams_len; i++) {
        if (section_find(run, next->upstreams[i].name) == NULL) {
            jrpcd_log(JRPC_LOG_WARN, "reload: [upstream %s] added: needs a restart (not served)",
                      next->upstreams[i].name);
            restart++;
        }
    }
    return restart;
}

/* Exchanges the keys a reload applies between two versions of a section; the name, methods and
 * upstream object stay (a scrape reads them meanwhile). */
static void settings_swap(jrpcd_upstream_t *a, jrpcd_upstream_t *b)
{
#define SWAP(field)                                                                                \
    do {                                                                                           \
        __typeof__(a->field) t_ = a->field;                                                        \
        a->field = b->field;                                                                       \
        b->field = t_;                                                                             \
    } while (0)
    SWAP(origin);
    SWAP(cfg);
    SWAP(nurls);
    SWAP(next_priority);
    SWAP(headers);
    SWAP(nheaders);
    SWAP(ca_file);
    SWAP(set);
    SWAP(dedup_deny);
    SWAP(ndedup_deny);
    SWAP(share_set);
    SWAP(probe);
    SWAP(health_set);
#undef SWAP
    jrpc_upstream_url_t t[JRPC_UPSTREAM_MAX_URLS];
    memcpy(t, a->urls, sizeof t);
    memcpy(a->urls, b->urls, sizeof t);
    memcpy(b->urls, t, sizeof t);
}

int jrpcd_gateway_reload_apply(jrpcd_opts_t *run, jrpcd_opts_t *next)
{
    int applied = 0;
    if (gw_cache != NULL && cache_differ(run, next)) {
        jrpc_upstream_cache_config_t cc = cache_config(next);
        int rc = up.cache_reconfigure(gw_cache, &cc);
        if (rc != 0) {
            jrpcd_log(JRPC_LOG_ERROR, "reload: [cache] kept as it was: %s", jrpc_strerror(rc));
        } else {
#define SWAP(field)                                                                                \
    do {                                                                                           \
        __typeof__(run->field) t_ = run->field;                                                    \
        run->field = next->field;                                                                  \
        next->field = t_;                                                                          \
    } while (0)
            SWAP(cache_size);
            SWAP(cache_size_set);
            SWAP(cache_tag_ttl_ms);
            SWAP(cache_rules);
            SWAP(cache_nrules);
            SWAP(cache_redis);
            SWAP(cache_redis_max);
#undef SWAP
            jrpcd_log(JRPC_LOG_INFO,
                      "reload: [cache] applied (size %zu bytes, %zu TTL rules); "
                      "cached answers dropped",
                      cc.size, cc.nrules);
        }
    }
    for (size_t i = 0; i < run->upstreams_len; i++) {
        jrpcd_upstream_t *r = &run->upstreams[i], *n = section_find(next, r->name);
        if (r->up == NULL || n == NULL || !settings_differ(r, n))
            continue;
        jrpc_upstream_config_t cfg = upstream_config(n);
        int rc = up.reconfigure(r->up, &cfg);
        if (rc != 0) {
            /* Checked before: only memory fails here, and the upstream keeps what it had. */
            jrpcd_log(JRPC_LOG_ERROR, "reload: [upstream %s] kept as it was: %s", r->name,
                      jrpc_strerror(rc));
            continue;
        }
        settings_swap(r, n); /* the next reload compares with what runs */
        const jrpc_upstream_config_t *c = &r->cfg;
        jrpcd_log(JRPC_LOG_INFO,
                  "reload: upstream %s: %zu URL%s, max_batch %u, max_in_flight %u, max_queue %u, "
                  "timeout %u ms, retries %u: new calls use these; calls queued or in flight "
                  "finish as they started",
                  r->name, r->nurls, r->nurls == 1 ? "" : "s", c->max_batch, c->max_in_flight,
                  c->max_queue, c->timeout_ms, c->retries);
        applied++;
    }
    return applied;
}

/* Writes one label value of an upstream series. */
static void metrics_series(jrpc_metrics_t *m, const char *name, const char *upstream,
                           const char *url, const char *extra)
{
    jrpc_metrics_printf(m, "%s{upstream=\"", name);
    jrpc_metrics_label(m, upstream);
    if (url != NULL) {
        jrpc_metrics_printf(m, "\",url=\"");
        jrpc_metrics_label(m, url);
    }
    jrpc_metrics_printf(m, "\"%s}", extra != NULL ? extra : "");
}

/* A family of per-URL series for one upstream, written by url_series for each URL. */
typedef struct url_series {
    jrpc_metrics_t *m;
    const char *upstream;
    int up_gauge; /* jrpc_upstream_up, else jrpc_upstream_requests_total */
} url_series_t;

static void url_series(void *data, const char *url, const jrpc_upstream_url_stats_t *us)
{
    url_series_t *f = data;
    url = url != NULL ? url : "-";
    if (f->up_gauge) {
        metrics_series(f->m, "jrpc_upstream_up", f->upstream, url, NULL);
        jrpc_metrics_printf(f->m, " %d\n", !us->down);
        return;
    }
    metrics_series(f->m, "jrpc_upstream_requests_total", f->upstream, url, ",outcome=\"ok\"");
    jrpc_metrics_printf(f->m, " %llu\n", (unsigned long long)(us->requests - us->faults));
    metrics_series(f->m, "jrpc_upstream_requests_total", f->upstream, url, ",outcome=\"fault\"");
    jrpc_metrics_printf(f->m, " %llu\n", (unsigned long long)us->faults);
}

/* Health probes' per-URL series, one family per call of url_each (`family` picks it). */
typedef struct probe_series {
    jrpc_metrics_t *m;
    const char *upstream;
    int family; /* index into probe_families */
} probe_series_t;

static const struct {
    const char *name, *help;
} probe_families[] = {
    {"jrpc_upstream_probe_up",
     "1 while the last health probe of an upstream URL succeeded and it is within max_lag."},
    {"jrpc_upstream_probe_duration_seconds", "How long the last answered probe of a URL took."},
    {"jrpc_upstream_block_number", "The block an upstream URL reported to its last probe."},
    {"jrpc_upstream_lag_blocks", "Blocks an upstream URL is behind the best URL of its upstream."},
};

/* Counts the URLs health probes ran on. */
static void probe_count(void *data, const char *url, const jrpc_upstream_url_stats_t *us)
{
    (void)url;
    *(size_t *)data += us->probed != 0;
}

static void probe_series(void *data, const char *url, const jrpc_upstream_url_stats_t *us)
{
    probe_series_t *f = data;
    if (!us->probed)
        return;
    metrics_series(f->m, probe_families[f->family].name, f->upstream, url != NULL ? url : "-",
                   NULL);
    if (f->family == 0)
        jrpc_metrics_printf(f->m, " %d\n", us->probe_ok);
    else if (f->family == 1)
        jrpc_metrics_printf(f->m, " %.6f\n", (double)us->probe_us / 1e6);
    else
        jrpc_metrics_printf(f->m, " %llu\n",
                            (unsigned long long)(f->family == 2 ? us->block : us->lag));
}

/* Hedges (every upstream: 0 while hedge_after is off) and health probes (the URLs they ran on). */
static void gateway_health_metrics(jrpc_metrics_t *m, const jrpcd_opts_t *opts,
                                   const jrpc_upstream_stats_t *st)
{
    for (int won = 0; won < 2; won++) {
        const char *name = won ? "jrpc_upstream_hedges_won_total" : "jrpc_upstream_hedges_total";
        int header = 0;
        for (size_t i = 0; i < opts->upstreams_len; i++) {
            const jrpcd_upstream_t *u = &opts->upstreams[i];
            if (u->up == NULL)
                continue;
            if (!header++)
                jrpc_metrics_printf(m, "# HELP %s %s\n# TYPE %s counter\n", name,
                                    won ? "Hedged attempts whose answer was used."
                                        : "Second attempts sent to another URL (hedge_after).",
                                    name);
            metrics_series(m, name, u->name, NULL, NULL);
            jrpc_metrics_printf(m, " %llu\n",
                                (unsigned long long)(won ? st[i].hedges_won : st[i].hedges));
        }
    }
    /* Which URLs are probed is asked of the library: the section's own copy of `probe` is
     * swapped by a reload on another thread while a scrape runs. */
    size_t probed = 0;
    for (size_t i = 0; i < opts->upstreams_len; i++)
        if (opts->upstreams[i].up != NULL)
            up.url_each(opts->upstreams[i].up, probe_count, &probed);
    for (int f = 0; probed != 0 && f < (int)(sizeof probe_families / sizeof probe_families[0]);
         f++) {
        jrpc_metrics_printf(m, "# HELP %s %s\n# TYPE %s gauge\n", probe_families[f].name,
                            probe_families[f].help, probe_families[f].name);
        for (size_t i = 0; i < opts->upstreams_len; i++) {
            const jrpcd_upstream_t *u = &opts->upstreams[i];
            if (u->up == NULL)
                continue;
            probe_series_t ps = {m, u->name, f};
            up.url_each(u->up, probe_series, &ps);
        }
    }
}

/* Subscriptions through the gateway (ws_urls), for the upstreams that have them. */
static void gateway_sub_metrics(jrpc_metrics_t *m, const jrpcd_opts_t *opts)
{
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"jrpc_upstream_subscriptions", "gauge",
         "Upstream subscriptions open over ws_urls (one per io loop and distinct params)."},
        {"jrpc_upstream_subscription_clients", "gauge",
         "Client subscriptions attached to upstream subscriptions."},
        {"jrpc_upstream_ws_reconnects_total", "counter",
         "Upstream WebSockets opened again after a loss (subscriptions renewed)."},
    };
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        int header = 0;
        for (size_t i = 0; i < opts->upstreams_len; i++) {
            const jrpcd_upstream_t *u = &opts->upstreams[i];
            if (u->up == NULL || u->nws_urls == 0)
                continue;
            if (!header++)
                jrpc_metrics_printf(m, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help,
                                    fam[f].name, fam[f].type);
            jrpc_upstream_sub_stats_t ss;
            up.sub_stats(u->up, &ss);
            uint64_t v = f == 0 ? ss.subscriptions : f == 1 ? ss.clients : ss.reconnects;
            metrics_series(m, fam[f].name, u->name, NULL, NULL);
            jrpc_metrics_printf(m, " %llu\n", (unsigned long long)v);
        }
    }
}

/* The gateway's series in a scrape (docs/metrics.md): from jrpc_upstream_stats, which any thread
 * may read (relaxed atomics). One family at a time, every upstream in it. */
static void gateway_metrics(jrpc_metrics_t *m, void *data)
{
    const jrpcd_opts_t *opts = data;
    static const uint64_t bounds[JRPC_UPSTREAM_LATENCY_BUCKETS] = JRPC_UPSTREAM_LATENCY_BOUNDS_US;
    jrpc_upstream_stats_t *st = calloc(opts->upstreams_len ? opts->upstreams_len : 1, sizeof(*st));
    if (st == NULL)
        return;
    for (size_t i = 0; i < opts->upstreams_len; i++)
        if (opts->upstreams[i].up != NULL)
            up.stats(opts->upstreams[i].up, &st[i]);
#define EACH_UPSTREAM(u, i)                                                                        \
    for (size_t i = 0; i < opts->upstreams_len; i++)                                               \
        for (const jrpcd_upstream_t *u = &opts->upstreams[i]; u != NULL && u->up != NULL; u = NULL)
    /* The URLs in force (a reload may change them while this runs: url_each holds them). */
    jrpc_metrics_printf(m, "# HELP jrpc_upstream_requests_total HTTP requests sent to an upstream "
                           "URL, retries included, by outcome (ok, or fault: a transport fault).\n"
                           "# TYPE jrpc_upstream_requests_total counter\n");
    EACH_UPSTREAM(u, i)
    {
        url_series_t us = {m, u->name, 0};
        up.url_each(u->up, url_series, &us);
    }
    jrpc_metrics_printf(m, "# HELP jrpc_upstream_up 1 while an upstream URL is used, 0 while it "
                           "is passed over after a fault or by its health probes.\n"
                           "# TYPE jrpc_upstream_up gauge\n");
    EACH_UPSTREAM(u, i)
    {
        url_series_t us = {m, u->name, 1};
        up.url_each(u->up, url_series, &us);
    }
    jrpc_metrics_printf(m, "# HELP jrpc_upstream_faults_total Upstream requests that failed, by "
                           "cause.\n# TYPE jrpc_upstream_faults_total counter\n");
    EACH_UPSTREAM(u, i)
    {
        for (int f = 0; f < JRPC_UPSTREAM_FAULT_COUNT; f++) {
            char extra[64];
            snprintf(extra, sizeof extra, ",cause=\"%s\"", up.fault_name(f));
            metrics_series(m, "jrpc_upstream_faults_total", u->name, NULL, extra);
            jrpc_metrics_printf(m, " %llu\n", (unsigned long long)st[i].faults[f]);
        }
    }
    jrpc_metrics_printf(m, "# HELP jrpc_upstream_items_total Calls routed to an upstream, by "
                           "outcome.\n# TYPE jrpc_upstream_items_total counter\n");
    EACH_UPSTREAM(u, i)
    {
        const struct {
            const char *outcome;
            uint64_t v;
        } items[] = {{"forwarded", st[i].items},           {"failed", st[i].items_failed},
                     {"rpc_error", st[i].items_rpc_error}, {"refused", st[i].items_refused},
                     {"dropped", st[i].items_dropped},     {"joined", st[i].items_joined},
                     {"cached", st[i].items_cached}};
        for (size_t k = 0; k < sizeof items / sizeof items[0]; k++) {
            char extra[64];
            snprintf(extra, sizeof extra, ",outcome=\"%s\"", items[k].outcome);
            metrics_series(m, "jrpc_upstream_items_total", u->name, NULL, extra);
            jrpc_metrics_printf(m, " %llu\n", (unsigned long long)items[k].v);
        }
    }
    jrpc_metrics_printf(m, "# HELP jrpc_upstream_retries_total Upstream requests sent again after "
                           "a fault.\n# TYPE jrpc_upstream_retries_total counter\n");
    EACH_UPSTREAM(u, i)
    {
        metrics_series(m, "jrpc_upstream_retries_total", u->name, NULL, NULL);
        jrpc_metrics_printf(m, " %llu\n", (unsigned long long)st[i].retries);
    }
    const struct {
        const char *name, *help;
        size_t off;
    } gauges[] = {
        {"jrpc_upstream_in_flight", "Upstream HTTP requests in flight.",
         offsetof(jrpc_upstream_stats_t, in_flight)},
        {"jrpc_upstream_queued_requests", "Upstream requests waiting for a max_in_flight place.",
         offsetof(jrpc_upstream_stats_t, queued)},
        {"jrpc_upstream_queued_items", "Calls waiting to be sent (what max_queue bounds).",
         offsetof(jrpc_upstream_stats_t, items_queued)},
    };
    for (size_t g = 0; g < sizeof gauges / sizeof gauges[0]; g++) {
        jrpc_metrics_printf(m, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g].name, gauges[g].help,
                            gauges[g].name);
        EACH_UPSTREAM(u, i)
        {
            uint64_t v;
            memcpy(&v, (const char *)&st[i] + gauges[g].off, sizeof v);
            metrics_series(m, gauges[g].name, u->name, NULL, NULL);
            jrpc_metrics_printf(m, " %llu\n", (unsigned long long)v);
        }
    }
    jrpc_metrics_printf(m, "# HELP jrpc_upstream_request_duration_seconds Time from sending an "
                           "upstream request to its answer's last byte.\n"
                           "# TYPE jrpc_upstream_request_duration_seconds histogram\n");
    EACH_UPSTREAM(u, i)
    {
        uint64_t cum = 0;
        for (int k = 0; k < JRPC_UPSTREAM_LATENCY_BUCKETS; k++) {
            cum += st[i].latency[k];
            char extra[48];
            if (bounds[k] == UINT64_MAX)
                snprintf(extra, sizeof extra, ",le=\"+Inf\"");
            else
                snprintf(extra, sizeof extra, ",le=\"%g\"", (double)bounds[k] / 1e6);
            metrics_series(m, "jrpc_upstream_request_duration_seconds_bucket", u->name, NULL,
                           extra);
            jrpc_metrics_printf(
                m, " %llu\n",
                (unsigned long long)(bounds[k] == UINT64_MAX ? st[i].latency_count : cum));
        }
        metrics_series(m, "jrpc_upstream_request_duration_seconds_sum", u->name, NULL, NULL);
        jrpc_metrics_printf(m, " %.6f\n", (double)st[i].latency_sum_us / 1e6);
        metrics_series(m, "jrpc_upstream_request_duration_seconds_count", u->name, NULL, NULL);
        jrpc_metrics_printf(m, " %llu\n", (unsigned long long)st[i].latency_count);
    }
    gateway_sub_metrics(m, opts);
    gateway_health_metrics(m, opts, st);
#undef EACH_UPSTREAM
    free(st);
    if (gw_cache == NULL)
        return;
    jrpc_upstream_cache_stats_t cs;
    up.cache_stats(gw_cache, &cs);
    jrpc_metrics_printf(m,
                        "# HELP jrpc_upstream_cache_lookups_total Cacheable calls looked up in the "
                        "response cache, by result.\n"
                        "# TYPE jrpc_upstream_cache_lookups_total counter\n"
                        "jrpc_upstream_cache_lookups_total{result=\"hit\"} %llu\n"
                        "jrpc_upstream_cache_lookups_total{result=\"miss\"} %llu\n",
                        (unsigned long long)cs.hits, (unsigned long long)cs.misses);
    const struct {
        const char *name, *type, *help;
        uint64_t v;
    } cache_series[] = {
        {"jrpc_upstream_cache_stores_total", "counter", "Results kept in the response cache.",
         cs.stores},
        {"jrpc_upstream_cache_evictions_total", "counter",
         "Entries pushed out of the response cache by its byte budget.", cs.evictions},
        {"jrpc_upstream_cache_expired_total", "counter",
         "Entries of the response cache found past their TTL.", cs.expired},
        {"jrpc_upstream_cache_bytes", "gauge",
         "Bytes the response cache holds (what [cache] size bounds).", cs.bytes},
        {"jrpc_upstream_cache_entries", "gauge", "Entries in the response cache.", cs.entries},
        {"jrpc_upstream_cache_redis_misses_total", "counter",
         "Calls the local cache missed that Redis did not have either.", cs.redis_misses},
        {"jrpc_upstream_cache_redis_stores_total", "counter", "Results sent to Redis.",
         cs.redis_stores},
        {"jrpc_upstream_cache_redis_too_large_total", "counter",
         "Results not sent to Redis: longer than [cache] redis_max_value.", cs.redis_too_large},
    };
    jrpc_metrics_printf(
        m,
        "# HELP jrpc_upstream_cache_hits_total Calls answered from the response cache, by level.\n"
        "# TYPE jrpc_upstream_cache_hits_total counter\n"
        "jrpc_upstream_cache_hits_total{level=\"local\"} %llu\n"
        "jrpc_upstream_cache_hits_total{level=\"redis\"} %llu\n"
        "# HELP jrpc_upstream_cache_redis_errors_total Redis GETs and SETs of the response cache "
        "that failed (a GET's call is forwarded), by cause.\n"
        "# TYPE jrpc_upstream_cache_redis_errors_total counter\n"
        "jrpc_upstream_cache_redis_errors_total{cause=\"timeout\"} %llu\n"
        "jrpc_upstream_cache_redis_errors_total{cause=\"down\"} %llu\n"
        "jrpc_upstream_cache_redis_errors_total{cause=\"full\"} %llu\n"
        "jrpc_upstream_cache_redis_errors_total{cause=\"invalid\"} %llu\n"
        "jrpc_upstream_cache_redis_errors_total{cause=\"error\"} %llu\n",
        (unsigned long long)cs.hits, (unsigned long long)cs.redis_hits,
        (unsigned long long)cs.redis_timeouts, (unsigned long long)cs.redis_down,
        (unsigned long long)cs.redis_full, (unsigned long long)cs.redis_invalid,
        (unsigned long long)cs.redis_errors);
    for (size_t k = 0; k < sizeof cache_series / sizeof cache_series[0]; k++)
        jrpc_metrics_printf(m, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", cache_series[k].name,
                            cache_series[k].help, cache_series[k].name, cache_series[k].type,
                            cache_series[k].name, (unsigned long long)cache_series[k].v);
}

int jrpcd_gateway_metrics(jrpcd_opts_t *opts, jrpc_server_t *srv)
{
    return opts->upstreams_len != 0 ? jrpc_server_metrics_hook(srv, gateway_metrics, opts) : 0;
}

static void url_report(void *data, const char *url, const jrpc_upstream_url_stats_t *us)
{
    jrpcd_log(JRPC_LOG_INFO, "upstream %s: %s requests %llu, faults %llu%s", (const char *)data,
              url, (unsigned long long)us->requests, (unsigned long long)us->faults,
              us->down ? " (down)" : "");
}

void jrpcd_gateway_report(const jrpcd_opts_t *opts)
{
    for (size_t i = 0; i < opts->upstreams_len; i++) {
        const jrpcd_upstream_t *u = &opts->upstreams[i];
        if (u->up == NULL)
            continue;
        jrpc_upstream_stats_t s;
        up.stats(u->up, &s);
        char faults[512];
        size_t used = 0;
        faults[0] = '\0';
        for (int f = 0; f < JRPC_UPSTREAM_FAULT_COUNT && used < sizeof faults; f++) {
            int n = snprintf(faults + used, sizeof faults - used, "%s%s %llu", f ? ", " : "",
                             up.fault_name(f), (unsigned long long)s.faults[f]);
            used += n > 0 ? (size_t)n : 0;
        }
        jrpcd_log(JRPC_LOG_INFO,
                  "upstream %s: requests %llu, retries %llu, items %llu, items_failed %llu, "
                  "items_rpc_error %llu, mean latency %llu us; faults: %s",
                  u->name, (unsigned long long)s.requests, (unsigned long long)s.retries,
                  (unsigned long long)s.items, (unsigned long long)s.items_failed,
                  (unsigned long long)s.items_rpc_error,
                  (unsigned long long)(s.latency_count ? s.latency_sum_us / s.latency_count : 0),
                  faults);
        /* Its own line, so that readers of the one above keep working. */
        jrpcd_log(JRPC_LOG_INFO,
                  "upstream %s: queue: max_queue %u, peak %llu calls, refused %llu, dropped %llu",
                  u->name, u->cfg.max_queue, (unsigned long long)s.items_queued_peak,
                  (unsigned long long)s.items_refused, (unsigned long long)s.items_dropped);
        if (u->cfg.hedge_after_ms != 0 || u->cfg.hedge_quantile != 0)
            jrpcd_log(JRPC_LOG_INFO, "upstream %s: hedges %llu, won %llu", u->name,
                      (unsigned long long)s.hedges, (unsigned long long)s.hedges_won);
        up.url_each(u->up, url_report, u->name);
    }
}

void jrpcd_gateway_print(const jrpcd_opts_t *opts, FILE *out)
{
    for (size_t i = 0; i < opts->upstreams_len; i++) {
        const jrpcd_upstream_t *u = &opts->upstreams[i];
        const jrpc_upstream_config_t *c = &u->cfg;
        char t[32], ct[32], rc[32];
        format_ms(c->timeout_ms, t, sizeof t);
        format_ms(c->connect_timeout_ms, ct, sizeof ct);
        format_ms(c->recheck_ms, rc, sizeof rc);
        fprintf(out, "\n[upstream %s]\n", u->name);
        for (size_t j = 0; j < u->nurls; j++)
            fprintf(out, "url = %s weight=%u priority=%u\n", u->urls[j].url, u->urls[j].weight,
                    u->urls[j].priority);
        fprintf(out, "methods =");
        for (size_t j = 0; j < u->nmethods; j++)
            fprintf(out, " %s", u->methods[j]);
        fprintf(out,
                "\nmax_batch = %u\nmax_in_flight = %u\nmax_queue = %u\ntimeout = %s\n"
                "connect_timeout = %s\nretries = %u\nrecheck = %s\n",
                c->max_batch, c->max_in_flight, c->max_queue, t, ct, c->retries, rc);
        fprintf(out, "dedup = %s\nauto_batch = %s\nbatch_wait = %uus\n", c->dedup ? "on" : "off",
                c->auto_batch ? "on" : "off", c->batch_wait_us);
        if (c->batch_hold_us != 0)
            fprintf(out, "batch_hold = %ums\n", c->batch_hold_us / 1000u);
        else
            fprintf(out, "batch_hold = off\n");
        char hedge[32] = "off";
        if (c->hedge_quantile != 0)
            snprintf(hedge, sizeof hedge, "p%u", c->hedge_quantile);
        else if (c->hedge_after_ms != 0)
            format_ms(c->hedge_after_ms, hedge, sizeof hedge);
        fprintf(out, "hedge_after = %s\n", hedge);
        format_ms(c->probe_interval_ms, t, sizeof t);
        fprintf(out, "probe = %s\nprobe_interval = %s\n", u->probe != NULL ? u->probe : "off", t);
        format_ms(jrpc_upstream_probe_timeout_ms(c), t, sizeof t);
        fprintf(out, "probe_timeout = %s\nmax_lag = %u\n", t, c->max_lag);
        fprintf(out, "transport = %s\n",
                c->transport == JRPC_UPSTREAM_TRANSPORT_CURL ? "curl" : "auto");
        if (u->ndedup_deny != 0) {
            fprintf(out, "dedup_deny =");
            for (size_t j = 0; j < u->ndedup_deny; j++)
                fprintf(out, " %s", u->dedup_deny[j]);
            fprintf(out, "\n");
        }
        if (u->ca_file != NULL)
            fprintf(out, "ca_file = %s\n", u->ca_file);
        if (u->nws_urls != 0) {
            fprintf(out, "ws_urls =");
            for (size_t j = 0; j < u->nws_urls; j++)
                fprintf(out, " %s", u->ws_urls[j]);
            fprintf(out, "\n");
        }
        for (size_t j = 0; j < u->nheaders; j++) {
            /* Headers often carry credentials: print the name only. */
            const char *colon = strchr(u->headers[j], ':');
            fprintf(out, "header = %.*s: (hidden)\n", (int)(colon - u->headers[j]), u->headers[j]);
        }
    }
    if (opts->upstreams_len != 0) {
        jrpc_upstream_cache_config_t cc = cache_config(opts);
        char tt[32];
        format_ms((unsigned)opts->cache_tag_ttl_ms, tt, sizeof tt);
        fprintf(out, "\n[cache]\nsize = %zu\ntag_ttl = %s\nredis = %s\nredis_max_value = %zu\n",
                cc.size, tt, cc.redis ? "on" : "off", cc.redis_max_value);
        if (opts->cache_nrules != 0)
            fprintf(out, "\n[cache ttl]\n");
        for (size_t i = 0; i < opts->cache_nrules; i++) {
            uint64_t t = opts->cache_rules[i].ttl_ms;
            format_ms((unsigned)t, tt, sizeof tt);
            fprintf(out, "%s = %s\n", opts->cache_rules[i].pattern,
                    t == JRPC_UPSTREAM_CACHE_FOREVER ? "forever" : tt);
        }
    }
    if (opts->batch_deny_len != 0) {
        /* Exceptions ("!NAME[:KIND]") are [batch] allow's words. */
        fprintf(out, "\n[batch]\n");
        for (int allow = 0; allow < 2; allow++) {
            int any = 0;
            for (size_t i = 0; i < opts->batch_deny_len; i++) {
                const char *w = opts->batch_deny[i];
                if ((w[0] == '!') != allow)
                    continue;
                fprintf(out, "%s %s", any++ ? "" : allow ? "allow =" : "deny =", w + allow);
            }
            if (any)
                fprintf(out, "\n");
        }
    }
}

void jrpcd_gateway_free(jrpcd_opts_t *opts)
{
    int cache_owner = opts->upstreams_len != 0 && opts->upstreams[0].up != NULL;
    for (size_t i = 0; i < opts->upstreams_len; i++) {
        jrpcd_upstream_t *u = &opts->upstreams[i];
        up.free(u->up);
        for (size_t j = 0; j < u->nurls; j++)
            free((char *)u->urls[j].url);
        jrpcd_strv_free(u->methods, u->nmethods);
        jrpcd_strv_free(u->headers, u->nheaders);
        jrpcd_strv_free(u->ws_urls, u->nws_urls);
        free(u->ca_file);
        jrpcd_strv_free(u->dedup_deny, u->ndedup_deny);
        free(u->probe);
        free(u->name);
        free(u->origin);
    }
    free(opts->upstreams);
    jrpcd_strv_free(opts->batch_deny, opts->batch_deny_len);
    for (size_t i = 0; i < opts->cache_nrules; i++)
        free((char *)opts->cache_rules[i].pattern);
    free(opts->cache_rules);
    /* After every upstream that pointed at it; only the opts that set it up own it. */
    if (cache_owner && gw_cache != NULL) {
        up.cache_free(gw_cache);
        gw_cache = NULL;
    }
}
