/* SPDX-License-Identifier: MIT */
/* upstream.c — upstream objects: checking and copying their configuration, registering their
 * methods on the server, choosing the URL for each attempt (priority tiers, smooth weighted
 * round-robin inside a tier, failed URLs passed over for recheck_ms) and the counters a metrics
 * endpoint reads. The forwarding itself is client.c and answer.c. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const fault_names[] = {
#define UPSTREAM_FAULT_NAME(name, key, msg) key,
    JRPC_UPSTREAM_FAULT_MAP(UPSTREAM_FAULT_NAME)
#undef UPSTREAM_FAULT_NAME
};

JRPC_EXTERN const char *jrpc_upstream_fault_name(int fault)
{
    if (fault < 0 || fault >= JRPC_UPSTREAM_FAULT_COUNT)
        return "unknown";
    return fault_names[fault];
}

JRPC_EXTERN void jrpc_upstream_config_init(jrpc_upstream_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_batch = 100;           /* many hosted nodes refuse larger batches; 1000 client
                                       items still become only 10 parallel requests */
    cfg->max_in_flight = 64;        /* keeps a node's RPC threads busy without queueing deep */
    cfg->timeout_ms = 10000;        /* a third of the 30 s deadline: a retry still fits */
    cfg->connect_timeout_ms = 2000; /* a dead host (SYN unanswered) fails over in 2 s, not 10 */
    cfg->retries = 1;               /* one more URL; more only multiplies a node's overload */
    cfg->recheck_ms = 5000;         /* short enough to notice a restarted node soon */
    cfg->max_queue = 10000;         /* 100 requests of max_batch, under two rounds of the 64
                                       in flight: sent within the 30 s deadline even when each
                                       round takes its 10 s timeout. Ten 1000-item client
                                       batches wait; a flood is refused, not held */
}

uint64_t jrpc__upstream_now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

void jrpc__upstream_log(jrpc_upstream_t *up, jrpc_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    jrpc__vlog(jrpc_server_config(up->srv), level, up->log_prefix, fmt, ap);
    va_end(ap);
}

/* ---- Configuration --------------------------------------------------------------------------- */

/* curl_global_init once per process; libcurl 7.84+ makes it thread-safe, older ones need it
 * before any other thread uses curl, which holds here (upstreams are added before the server
 * runs). Never undone: other code in the process may use libcurl too. */
static uv_once_t curl_once = UV_ONCE_INIT;
static int curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : JRPC_ENOMEM;
}

/* Checks an http(s) URL with curl's parser and derives the loggable "scheme://host:port". */
static int endpoint_init(jrpc__endpoint_t *ep, const jrpc_upstream_url_t *u)
{
    if (u->url == NULL)
        return JRPC_EINVAL;
    CURLU *h = curl_url();
    if (h == NULL)
        return JRPC_ENOMEM;
    char *scheme = NULL, *host = NULL, *port = NULL;
    int rc = JRPC_EINVAL;
    if (curl_url_set(h, CURLUPART_URL, u->url, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
        goto done;
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
        goto done;
    size_t n = strlen(scheme) + strlen(host) + strlen(port) + 5;
    ep->display = malloc(n);
    ep->url = strdup(u->url);
    rc = JRPC_ENOMEM;
    if (ep->display == NULL || ep->url == NULL)
        goto done;
    snprintf(ep->display, n, "%s://%s:%s", scheme, host, port);
    ep->tls = strcmp(scheme, "https") == 0;
    ep->weight = u->weight ? u->weight : 1;
    ep->priority = u->priority;
    rc = 0;
done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(h);
    return rc;
}

/* "Name: value" with a token name and no line breaks (a CR or LF would smuggle a header). */
static int header_ok(const char *h)
{
    const char *colon = h ? strchr(h, ':') : NULL;
    if (colon == NULL || colon == h)
        return 0;
    for (const char *p = h; p < colon; p++)
        if (*p <= ' ' || *p >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *p) != NULL)
            return 0;
    return strpbrk(h, "\r\n") == NULL;
}

static int config_check(const jrpc_upstream_config_t *cfg)
{
    if (cfg == NULL || cfg->name == NULL || cfg->name[0] == '\0' || cfg->nurls == 0 ||
        cfg->nurls > JRPC_UPSTREAM_MAX_URLS || cfg->urls == NULL || cfg->nmethods == 0 ||
        cfg->methods == NULL || cfg->max_batch == 0 || cfg->max_in_flight == 0 ||
        cfg->max_queue == 0 || cfg->timeout_ms == 0 || (cfg->nheaders != 0 && cfg->headers == NULL))
        return JRPC_EINVAL;
    for (size_t i = 0; i < cfg->nheaders; i++)
        if (!header_ok(cfg->headers[i]))
            return JRPC_EINVAL;
    for (size_t i = 0; i < cfg->nmethods; i++) {
        const char *m = cfg->methods[i];
        size_t len = m ? strlen(m) : 0;
        if (len == 0 || memchr(m, '*', len - 1) != NULL)
            return JRPC_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->methods[j], m) == 0)
                return JRPC_EEXIST;
    }
    return 0;
}

static void upstream_destroy(jrpc_upstream_t *up)
{
    for (unsigned i = 0; i < up->neps; i++) {
        free(up->eps[i].url);
        free(up->eps[i].display);
    }
    curl_slist_free_all(up->headers);
    free(up->ca_file);
    free(up->ctx);
    free(up->stopped);
    free(up->name);
    free(up->log_prefix);
    free(up);
}

/* Appends headers h[0..n) to up->headers. */
static int headers_append(jrpc_upstream_t *up, const char *const *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct curl_slist *l = curl_slist_append(up->headers, h[i]);
        if (l == NULL)
            return JRPC_ENOMEM;
        up->headers = l;
    }
    return 0;
}

static int headers_init(jrpc_upstream_t *up, const jrpc_upstream_config_t *cfg)
{
    /* "Expect:" turns off curl's 100-continue round trip for bodies over 1 KiB: a JSON-RPC
     * upstream always wants the body, and the wait would add a round trip per batch. */
    static const char *const fixed[] = {"Content-Type: application/json",
                                        "Accept: application/json", "Expect:"};
    int rc = headers_append(up, fixed, sizeof fixed / sizeof fixed[0]);
    return rc != 0 ? rc : headers_append(up, cfg->headers, cfg->nheaders);
}

/* The readiness hook: an upstream is usable while one of its URLs is not passed over after a
 * fault (with every URL down, calls still go to the soonest back, and its first answer marks it
 * up again). Any io thread. */
static int upstream_ready(void *data)
{
    const jrpc_upstream_t *up = data;
    uint64_t now = jrpc__upstream_now_ms();
    for (unsigned i = 0; i < up->neps; i++)
        if (atomic_load_explicit(&up->eps[i].down_until_ms, memory_order_relaxed) <= now)
            return 1;
    return 0;
}

JRPC_EXTERN int jrpc_upstream_add(jrpc_server_t *srv, const jrpc_upstream_config_t *cfg,
                                  jrpc_upstream_t **out)
{
    *out = NULL;
    int rc = config_check(cfg);
    if (rc != 0)
        return rc;
    /* Refuse before registering anything, so a failed add leaves the server as it was. */
    for (size_t i = 0; i < cfg->nmethods; i++)
        if (jrpc_method_registered(srv, cfg->methods[i]))
            return JRPC_EEXIST;
    uv_once(&curl_once, curl_init);
    if (curl_init_rc != 0)
        return curl_init_rc;

    jrpc_upstream_t *up = calloc(1, sizeof(*up));
    if (up == NULL)
        return JRPC_ENOMEM;
    up->srv = srv;
    up->name = strdup(cfg->name);
    size_t prefix_len = strlen(cfg->name) + sizeof "upstream : ";
    up->log_prefix = malloc(prefix_len);
    if (up->log_prefix != NULL)
        snprintf(up->log_prefix, prefix_len, "upstream %s: ", cfg->name);
    up->ca_file = cfg->ca_file ? strdup(cfg->ca_file) : NULL;
    const jrpc_config_t *scfg = jrpc_server_config(srv);
    up->nctx = scfg->io_threads;
    up->ctx = calloc(up->nctx, sizeof(*up->ctx));
    up->stopped = calloc(up->nctx, sizeof(*up->stopped));
    rc = JRPC_ENOMEM;
    if (up->name == NULL || up->log_prefix == NULL || (cfg->ca_file && up->ca_file == NULL) ||
        up->ctx == NULL || up->stopped == NULL)
        goto fail;
    for (size_t i = 0; i < cfg->nurls; i++) {
        if ((rc = endpoint_init(&up->eps[i], &cfg->urls[i])) != 0)
            goto fail;
        up->neps++;
    }
    if ((rc = headers_init(up, cfg)) != 0)
        goto fail;
    up->max_batch = cfg->max_batch;
    up->loop_in_flight = (cfg->max_in_flight + up->nctx - 1) / up->nctx;
    up->timeout_ms = cfg->timeout_ms;
    up->connect_timeout_ms = cfg->connect_timeout_ms;
    up->retries = cfg->retries;
    up->recheck_ms = cfg->recheck_ms;
    up->max_queue = cfg->max_queue;
    up->max_answer = scfg->max_response;
    /* First, so that a running server refuses before anything is registered. */
    if ((rc = jrpc_server_loop_hook(srv, jrpc__upstream_loop_start, jrpc__upstream_loop_stop,
                                    up)) != 0)
        goto fail;
    /* Like the loop hook, it points at up from here on: a later failure leaks up. */
    if ((rc = jrpc_server_ready_hook(srv, "upstreams_down", up->name, upstream_ready, up)) != 0)
        return rc;

    char summary[160];
    snprintf(summary, sizeof summary, "forwarded to upstream %s", up->name);
    for (size_t i = 0; i < cfg->nmethods; i++) {
        rc = jrpc_method_add(srv, cfg->methods[i], jrpc__upstream_call, up,
                             JRPC_ASYNC | JRPC_UNBOUNDED);
        if (rc != 0) {
            /* Only ENOMEM gets here (names were checked). The loop hook and earlier names
             * already point at up, so it must outlive the server: it is leaked rather than left
             * dangling. */
            return rc;
        }
        jrpc_method_doc(srv, cfg->methods[i], summary, NULL, NULL);
    }
    *out = up;
    return 0;
fail:
    upstream_destroy(up);
    return rc;
}

JRPC_EXTERN void jrpc_upstream_free(jrpc_upstream_t *up)
{
    if (up == NULL)
        return;
    /* Each loop frees its own client when it closes; one is left only by a loop that was set
     * up and never ran (a failed start), whose handles the server has closed already. */
    for (unsigned i = 0; i < up->nctx; i++)
        if (up->ctx[i] != NULL)
            jrpc__upctx_free_detached(up->ctx[i]);
    upstream_destroy(up);
}

JRPC_EXTERN const char *jrpc_upstream_name(const jrpc_upstream_t *up)
{
    return up->name;
}

/* ---- Counters -------------------------------------------------------------------------------- */

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

JRPC_EXTERN void jrpc_upstream_stats(const jrpc_upstream_t *up, jrpc_upstream_stats_t *out)
{
    jrpc__upstats_t *s = (jrpc__upstats_t *)&up->stats; /* atomic loads take non-const */
    out->requests = LOAD(s->requests);
    out->retries = LOAD(s->retries);
    out->items = LOAD(s->items);
    out->items_failed = LOAD(s->items_failed);
    out->items_rpc_error = LOAD(s->items_rpc_error);
    for (int i = 0; i < JRPC_UPSTREAM_FAULT_COUNT; i++)
        out->faults[i] = LOAD(s->faults[i]);
    out->latency_count = LOAD(s->latency_count);
    out->latency_sum_us = LOAD(s->latency_sum_us);
    for (int i = 0; i < JRPC_UPSTREAM_LATENCY_BUCKETS; i++)
        out->latency[i] = LOAD(s->latency[i]);
    out->in_flight = LOAD(s->in_flight);
    out->queued = LOAD(s->queued);
    out->items_dropped = LOAD(s->items_dropped);
    out->items_refused = LOAD(s->items_refused);
    out->items_queued = LOAD(s->items_queued);
    out->items_queued_peak = LOAD(s->items_queued_peak);
}

JRPC_EXTERN size_t jrpc_upstream_url_count(const jrpc_upstream_t *up)
{
    return up->neps;
}

JRPC_EXTERN int jrpc_upstream_url_stats(const jrpc_upstream_t *up, size_t i, const char **url,
                                        jrpc_upstream_url_stats_t *out)
{
    if (i >= up->neps)
        return JRPC_ENOENT;
    jrpc__endpoint_t *ep = (jrpc__endpoint_t *)&up->eps[i];
    if (url != NULL)
        *url = ep->display;
    if (out != NULL) {
        out->requests = LOAD(ep->requests);
        out->faults = LOAD(ep->faults);
        out->down = LOAD(ep->down_until_ms) > jrpc__upstream_now_ms();
    }
    return 0;
}

/* ---- Choosing a URL -------------------------------------------------------------------------- */

/* URL i may take the next attempt of a chunk that has tried `tried`: untried and not down. */
static int ep_ready(const jrpc__endpoint_t *ep, unsigned i, uint32_t tried, uint64_t now)
{
    return !(tried & (1u << i)) && LOAD(ep->down_until_ms) <= now;
}

unsigned jrpc__upstream_pick(jrpc__upctx_t *ctx, uint32_t tried)
{
    jrpc_upstream_t *up = ctx->up;
    uint64_t now = jrpc__upstream_now_ms();
    /* The lowest priority holding an up URL this chunk has not tried. */
    int have = 0;
    unsigned prio = 0;
    for (unsigned i = 0; i < up->neps; i++) {
        const jrpc__endpoint_t *ep = &up->eps[i];
        if (!ep_ready(ep, i, tried, now))
            continue;
        if (!have || ep->priority < prio)
            prio = ep->priority;
        have = 1;
    }
    if (have) {
        /* Smooth weighted round-robin (nginx): every candidate gains its weight, the richest
         * is chosen and pays the total; over a cycle each gets its share, interleaved. */
        int64_t total = 0;
        int best = -1;
        for (unsigned i = 0; i < up->neps; i++) {
            const jrpc__endpoint_t *ep = &up->eps[i];
            if (!ep_ready(ep, i, tried, now) || ep->priority != prio)
                continue;
            ctx->wrr[i] += ep->weight;
            total += ep->weight;
            if (best < 0 || ctx->wrr[i] > ctx->wrr[best])
                best = (int)i;
        }
        ctx->wrr[best] -= total;
        return (unsigned)best;
    }
    /* Every untried URL is down: the one back soonest, since it may be back already. */
    int best = -1;
    for (unsigned i = 0; i < up->neps; i++) {
        if (tried & (1u << i))
            continue;
        if (best < 0 || LOAD(up->eps[i].down_until_ms) < LOAD(up->eps[best].down_until_ms))
            best = (int)i;
    }
    if (best >= 0)
        return (unsigned)best;
    /* Every URL was tried (retries ≥ URLs): start over in the same order. */
    return jrpc__upstream_pick(ctx, 0);
}

void jrpc__upstream_mark_down(jrpc_upstream_t *up, unsigned ep, int fault, const char *detail)
{
    jrpc__endpoint_t *e = &up->eps[ep];
    uint64_t now = jrpc__upstream_now_ms();
    uint64_t prev =
        atomic_exchange_explicit(&e->down_until_ms, now + up->recheck_ms, memory_order_relaxed);
    /* One line when it goes down, not one per failed request while it stays down. */
    if (prev <= now)
        jrpc__upstream_log(up, JRPC_LOG_WARN, "%s is down for %u ms: %s: %s", e->display,
                           up->recheck_ms, jrpc_upstream_fault_name(fault), detail);
}

void jrpc__upstream_mark_up(jrpc_upstream_t *up, unsigned ep)
{
    jrpc__endpoint_t *e = &up->eps[ep];
    if (LOAD(e->down_until_ms) == 0)
        return;
    if (atomic_exchange_explicit(&e->down_until_ms, 0, memory_order_relaxed) != 0)
        jrpc__upstream_log(up, JRPC_LOG_INFO, "%s answers again", e->display);
}
