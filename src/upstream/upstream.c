/* SPDX-License-Identifier: MIT */
/* upstream.c — upstream objects: checking and copying their configuration, registering their
 * methods on the server, versions of their settings (a reconfigure makes a new one; the per-loop
 * clients of the old one finish what they hold), choosing the URL for each attempt (priority
 * tiers, smooth weighted round-robin inside a tier, failed URLs passed over for recheck_ms) and
 * the counters a metrics endpoint reads. The forwarding itself is client.c and answer.c. */
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
    cfg->batch_wait_us = 200;       /* auto_batch: concurrent clients' calls arrive a few tens
                                       of us apart, so one loop turn catches few of them (32
                                       calls: 31 requests); 200 us made it 2-8. The wait is a
                                       busy poll (libuv timers count milliseconds), bounded by
                                       this per upstream batch */
    cfg->batch_hold_us = 10000;     /* auto_batch: a node answers a batch in a few ms; past
                                       10 ms the one out is likely slow (an eth_getLogs), and
                                       the calls behind it go without it. The hold also ends at
                                       twice the median answer of recent batches (client.c) */
    cfg->dedup = 1;                 /* reads only (writes are never merged): identical calls
                                       in flight at once cost the node one */
    cfg->probe_interval_ms = 5000;  /* probes on: a failed or lagging URL leaves within 5 s,
                                       as a faulted one comes back after recheck; one small
                                       call per URL per 5 s costs a node nothing */
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

static void endpoint_unref(jrpc__endpoint_t *ep);

/* What h1.c needs of an http:// URL that curl's parser took apart (h): where to connect, the Host
 * header and the request target. A URL with a user name or password, or an IPv6 zone, stays
 * with curl (ep->h1 0), which sends the first as Basic auth. 0 or JRPC_ENOMEM. */
static int h1_target(CURLU *h, const char *host, const char *port, jrpc__endpoint_t *ep)
{
    char *user = NULL, *password = NULL, *path = NULL, *query = NULL, *given_port = NULL;
    int rc = JRPC_ENOMEM;
    curl_url_get(h, CURLUPART_USER, &user, 0);
    curl_url_get(h, CURLUPART_PASSWORD, &password, 0);
    curl_url_get(h, CURLUPART_PATH, &path, 0);
    curl_url_get(h, CURLUPART_QUERY, &query, 0);
    curl_url_get(h, CURLUPART_PORT, &given_port, 0);
    size_t hl = strlen(host);
    int bracketed = hl >= 2 && host[0] == '[' && host[hl - 1] == ']';
    ep->h1_host = bracketed ? strndup(host + 1, hl - 2) : strdup(host);
    size_t an = hl + strlen(port) + 2;
    ep->h1_authority = malloc(an);
    const char *pp = path != NULL && path[0] != '\0' ? path : "/";
    size_t tn = strlen(pp) + (query ? strlen(query) + 1 : 0) + 1;
    ep->h1_target = malloc(tn);
    if (ep->h1_host == NULL || ep->h1_authority == NULL || ep->h1_target == NULL)
        goto done;
    /* The port in Host as the URL gave it: absent for :80, as curl sends it. */
    if (given_port != NULL)
        snprintf(ep->h1_authority, an, "%s:%s", host, port);
    else
        snprintf(ep->h1_authority, an, "%s", host);
    snprintf(ep->h1_target, tn, "%s%s%s", pp, query ? "?" : "", query ? query : "");
    ep->h1_port = atoi(port);
    ep->h1 = user == NULL && password == NULL && strchr(ep->h1_host, '%') == NULL;
    rc = 0;
done:
    curl_free(user);
    curl_free(password);
    curl_free(path);
    curl_free(query);
    curl_free(given_port);
    return rc;
}

/* Checks an http(s) URL with curl's parser and makes its endpoint (one reference), with the
 * loggable "scheme://host:port". 0, JRPC_EINVAL or JRPC_ENOMEM. */
static int endpoint_new(const char *url, jrpc__endpoint_t **out)
{
    *out = NULL;
    if (url == NULL)
        return JRPC_EINVAL;
    CURLU *h = curl_url();
    if (h == NULL)
        return JRPC_ENOMEM;
    char *scheme = NULL, *host = NULL, *port = NULL;
    jrpc__endpoint_t *ep = NULL;
    int rc = JRPC_EINVAL;
    if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
        goto done;
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
        goto done;
    rc = JRPC_ENOMEM;
    if ((ep = calloc(1, sizeof(*ep))) == NULL)
        goto done;
    size_t n = strlen(scheme) + strlen(host) + strlen(port) + 5;
    ep->display = malloc(n);
    ep->url = strdup(url);
    if (ep->display == NULL || ep->url == NULL) {
        free(ep->display);
        free(ep->url);
        free(ep);
        goto done;
    }
    snprintf(ep->display, n, "%s://%s:%s", scheme, host, port);
    ep->tls = strcmp(scheme, "https") == 0;
    atomic_init(&ep->refs, 1);
    if (!ep->tls && h1_target(h, host, port, ep) != 0) {
        endpoint_unref(ep);
        goto done;
    }
    *out = ep;
    rc = 0;
done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(h);
    return rc;
}

static void endpoint_unref(jrpc__endpoint_t *ep)
{
    if (ep == NULL || atomic_fetch_sub(&ep->refs, 1) != 1)
        return;
    free(ep->url);
    free(ep->display);
    free(ep->h1_host);
    free(ep->h1_authority);
    free(ep->h1_target);
    free(ep);
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

/* What jrpc_upstream_reconfigure may change. */
static int settings_check(const jrpc_upstream_config_t *cfg)
{
    if (cfg == NULL || cfg->nurls == 0 || cfg->nurls > JRPC_UPSTREAM_MAX_URLS ||
        cfg->urls == NULL || cfg->max_batch == 0 || cfg->max_in_flight == 0 ||
        cfg->max_queue == 0 || cfg->timeout_ms == 0 || (cfg->nheaders != 0 && cfg->headers == NULL))
        return JRPC_EINVAL;
    for (size_t i = 0; i < cfg->nheaders; i++)
        if (!header_ok(cfg->headers[i]))
            return JRPC_EINVAL;
    if (cfg->ndedup_deny != 0 && cfg->dedup_deny == NULL)
        return JRPC_EINVAL;
    for (size_t i = 0; i < cfg->ndedup_deny; i++) {
        size_t len = cfg->dedup_deny[i] ? strlen(cfg->dedup_deny[i]) : 0;
        if (len == 0 || memchr(cfg->dedup_deny[i], '*', len - 1) != NULL)
            return JRPC_EINVAL;
    }
    if (cfg->batch_wait_us > JRPC_UPSTREAM_BATCH_WAIT_MAX_US ||
        cfg->batch_hold_us > JRPC_UPSTREAM_BATCH_HOLD_MAX_US)
        return JRPC_EINVAL;
    if ((cfg->hedge_after_ms != 0 && cfg->hedge_quantile != 0) || cfg->hedge_quantile > 99)
        return JRPC_EINVAL;
    if (cfg->probe != NULL && (cfg->probe[0] == '\0' || cfg->probe_interval_ms == 0 ||
                               strpbrk(cfg->probe, "\"\\") || strlen(cfg->probe) > 200))
        return JRPC_EINVAL;
    if (cfg->transport != JRPC_UPSTREAM_TRANSPORT_AUTO &&
        cfg->transport != JRPC_UPSTREAM_TRANSPORT_CURL)
        return JRPC_EINVAL;
    return 0;
}

static int config_check(const jrpc_upstream_config_t *cfg)
{
    int rc = settings_check(cfg);
    if (rc != 0)
        return rc;
    if (cfg->name == NULL || cfg->name[0] == '\0' || cfg->nmethods == 0 || cfg->methods == NULL ||
        jrpc__subs_check(cfg) != 0)
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

static void conf_free(jrpc__upconf_t *c)
{
    for (unsigned i = 0; i < c->neps; i++)
        endpoint_unref(c->urls[i].ep);
    curl_slist_free_all(c->headers);
    free(c->ca_file);
    for (size_t i = 0; i < c->ndeny; i++)
        free(c->deny[i]);
    free(c->deny);
    free(c->probe);
    free(c);
}

void jrpc__upconf_unref(const jrpc__upconf_t *conf)
{
    jrpc__upconf_t *c = (jrpc__upconf_t *)conf;
    if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1)
        conf_free(c);
}

const jrpc__upconf_t *jrpc__upstream_conf_get(jrpc_upstream_t *up)
{
    uv_mutex_lock(&up->lock);
    jrpc__upconf_t *c = up->conf;
    atomic_fetch_add(&c->refs, 1);
    uv_mutex_unlock(&up->lock);
    return c;
}

/* Appends headers h[0..n) to c->headers. */
static int headers_append(jrpc__upconf_t *c, const char *const *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct curl_slist *l = curl_slist_append(c->headers, h[i]);
        if (l == NULL)
            return JRPC_ENOMEM;
        c->headers = l;
    }
    return 0;
}

/* A version of the settings from cfg (checked), with one reference. A URL that `prev` (the
 * version in force, or NULL) lists too keeps its endpoint: its counters and its down state
 * carry over. 0, JRPC_EINVAL (a URL curl refuses) or JRPC_ENOMEM. */
static int conf_new(jrpc_upstream_t *up, const jrpc_upstream_config_t *cfg,
                    const jrpc__upconf_t *prev, jrpc__upconf_t **out)
{
    *out = NULL;
    jrpc__upconf_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return JRPC_ENOMEM;
    atomic_init(&c->refs, 1);
    int rc = JRPC_ENOMEM;
    c->ca_file = cfg->ca_file ? strdup(cfg->ca_file) : NULL;
    if (cfg->ca_file != NULL && c->ca_file == NULL)
        goto fail;
    for (size_t i = 0; i < cfg->nurls; i++) {
        jrpc__endpoint_t *ep = NULL;
        for (unsigned j = 0; prev != NULL && j < prev->neps && ep == NULL; j++)
            if (cfg->urls[i].url != NULL && strcmp(prev->urls[j].ep->url, cfg->urls[i].url) == 0)
                atomic_fetch_add(&(ep = prev->urls[j].ep)->refs, 1);
        if (ep == NULL && (rc = endpoint_new(cfg->urls[i].url, &ep)) != 0)
            goto fail;
        c->urls[i] = (jrpc__upurl_t){ep, cfg->urls[i].weight ? cfg->urls[i].weight : 1,
                                     cfg->urls[i].priority};
        c->neps++;
    }
    /* "Expect:" turns off curl's 100-continue round trip for bodies over 1 KiB: a JSON-RPC
     * upstream always wants the body, and the wait would add a round trip per batch. */
    static const char *const fixed[] = {"Content-Type: application/json",
                                        "Accept: application/json", "Expect:"};
    if ((rc = headers_append(c, fixed, sizeof fixed / sizeof fixed[0])) != 0 ||
        (rc = headers_append(c, cfg->headers, cfg->nheaders)) != 0)
        goto fail;
    c->max_batch = cfg->max_batch;
    c->loop_in_flight = (cfg->max_in_flight + up->nctx - 1) / up->nctx;
    c->timeout_ms = cfg->timeout_ms;
    c->connect_timeout_ms = cfg->connect_timeout_ms;
    c->retries = cfg->retries;
    c->recheck_ms = cfg->recheck_ms;
    c->max_queue = cfg->max_queue;
    c->dedup = cfg->dedup;
    c->cache = cfg->cache;
    c->auto_batch = cfg->auto_batch;
    c->batch_wait_ns = (uint64_t)cfg->batch_wait_us * 1000u;
    c->batch_hold_ns = (uint64_t)cfg->batch_hold_us * 1000u;
    c->hedge_after_ms = cfg->hedge_after_ms;
    c->hedge_quantile = cfg->hedge_quantile;
    c->probe_interval_ms = cfg->probe_interval_ms;
    c->probe_timeout_ms = jrpc_upstream_probe_timeout_ms(cfg);
    c->max_lag = cfg->max_lag;
    c->transport = cfg->transport;
    rc = JRPC_ENOMEM;
    if (cfg->probe != NULL && (c->probe = strdup(cfg->probe)) == NULL)
        goto fail;
    if (cfg->ndedup_deny != 0 && (c->deny = calloc(cfg->ndedup_deny, sizeof(char *))) == NULL)
        goto fail;
    for (; c->ndeny < cfg->ndedup_deny; c->ndeny++)
        if ((c->deny[c->ndeny] = strdup(cfg->dedup_deny[c->ndeny])) == NULL)
            goto fail;
    c->max_answer = jrpc_server_config(up->srv)->max_response;
    *out = c;
    return 0;
fail:
    conf_free(c);
    return rc;
}

static void upstream_destroy(jrpc_upstream_t *up)
{
    if (up->conf != NULL) {
        jrpc__upconf_unref(up->conf);
        uv_mutex_destroy(&up->lock);
    }
    jrpc__subs_free(up);
    free(up->ctx);
    free(up->stopped);
    free(up->name);
    free(up->log_prefix);
    free(up);
}

/* The readiness hook: an upstream is usable while one of its URLs is not passed over after a
 * fault (with every URL down, calls still go to the soonest back, and its first answer marks it
 * up again). Any io thread. */
static int upstream_ready(void *data)
{
    const jrpc__upconf_t *c = jrpc__upstream_conf_get(data);
    uint64_t now = jrpc__upstream_now_ms();
    int ready = 0;
    for (unsigned i = 0; i < c->neps && !ready; i++)
        ready = atomic_load_explicit(&c->urls[i].ep->down_until_ms, memory_order_relaxed) <= now &&
                !jrpc__probe_down(c->urls[i].ep);
    jrpc__upconf_unref(c);
    return ready;
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
    const jrpc_config_t *scfg = jrpc_server_config(srv);
    up->nctx = scfg->io_threads;
    up->ctx = calloc(up->nctx, sizeof(*up->ctx));
    up->stopped = calloc(up->nctx, sizeof(*up->stopped));
    rc = JRPC_ENOMEM;
    if (up->name == NULL || up->log_prefix == NULL || up->ctx == NULL || up->stopped == NULL)
        goto fail;
    if ((rc = conf_new(up, cfg, NULL, &up->conf)) != 0)
        goto fail;
    if (uv_mutex_init(&up->lock) != 0) {
        jrpc__upconf_unref(up->conf);
        up->conf = NULL;
        rc = JRPC_ENOMEM;
        goto fail;
    }
    up->conf->gen = 1;
    atomic_init(&up->gen, 1);
    /* First, so that a running server refuses before anything is registered. */
    if ((rc = jrpc_server_loop_hook(srv, jrpc__upstream_loop_start, jrpc__upstream_loop_stop,
                                    up)) != 0)
        goto fail;
    /* Like the loop hook, it points at up from here on: a later failure leaks up. */
    if ((rc = jrpc_server_ready_hook(srv, "upstreams_down", up->name, upstream_ready, up)) != 0)
        return rc;

    /* Before the patterns, as exact names: they win over eth_*. Like the hooks, a failure leaks
     * up. */
    if ((rc = jrpc__subs_add(up, cfg)) != 0)
        return rc;

    char summary[160];
    snprintf(summary, sizeof summary, "forwarded to upstream %s", up->name);
    for (size_t i = 0; i < cfg->nmethods; i++) {
        if (jrpc__subs_owns(up, cfg->methods[i]))
            continue;
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

JRPC_EXTERN int jrpc_upstream_config_check(const jrpc_upstream_config_t *cfg)
{
    int rc = settings_check(cfg);
    uv_once(&curl_once, curl_init);
    if (rc == 0 && (rc = curl_init_rc) == 0) {
        for (size_t i = 0; i < cfg->nurls && rc == 0; i++) {
            jrpc__endpoint_t *ep;
            if ((rc = endpoint_new(cfg->urls[i].url, &ep)) == 0)
                endpoint_unref(ep);
        }
    }
    return rc;
}

JRPC_EXTERN int jrpc_upstream_reconfigure(jrpc_upstream_t *up, const jrpc_upstream_config_t *cfg)
{
    int rc = settings_check(cfg);
    if (rc != 0)
        return rc;
    /* Under the lock from the copy of the old version on: two reconfigures at once would
     * otherwise both build on the same one. */
    uv_mutex_lock(&up->lock);
    jrpc__upconf_t *old = up->conf, *c;
    if ((rc = conf_new(up, cfg, old, &c)) != 0) {
        uv_mutex_unlock(&up->lock);
        return rc;
    }
    c->gen = old->gen + 1;
    up->conf = c;
    atomic_store(&up->gen, c->gen);
    /* Each loop's clients look at the generation when they next run; the wake makes that soon
     * on a loop with no traffic, so the connections of an idle old client close. */
    for (unsigned i = 0; i < up->nctx; i++)
        for (jrpc__upctx_t *ctx = up->ctx[i]; ctx != NULL; ctx = ctx->older)
            uv_async_send(&ctx->wake);
    jrpc__probe_wake(up);
    uv_mutex_unlock(&up->lock);
    jrpc__upconf_unref(old);
    return 0;
}

JRPC_EXTERN void jrpc_upstream_free(jrpc_upstream_t *up)
{
    if (up == NULL)
        return;
    /* Each loop frees its own clients when it closes; some are left only by a loop that was set
     * up and never ran (a failed start), whose handles the server has closed already. */
    for (unsigned i = 0; i < up->nctx; i++) {
        jrpc__upctx_t *ctx = up->ctx[i];
        while (ctx != NULL) {
            jrpc__upctx_t *older = ctx->older;
            jrpc__upctx_free_detached(ctx);
            ctx = older;
        }
    }
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
    out->items_joined = LOAD(s->items_joined);
    out->items_cached = LOAD(s->items_cached);
    out->hedges = LOAD(s->hedges);
    out->hedges_won = LOAD(s->hedges_won);
}

JRPC_EXTERN size_t jrpc_upstream_url_count(const jrpc_upstream_t *up)
{
    const jrpc__upconf_t *c = jrpc__upstream_conf_get((jrpc_upstream_t *)up);
    size_t n = c->neps;
    jrpc__upconf_unref(c);
    return n;
}

static void url_stats_of(jrpc__endpoint_t *ep, jrpc_upstream_url_stats_t *out)
{
    out->requests = LOAD(ep->requests);
    out->faults = LOAD(ep->faults);
    out->down = LOAD(ep->down_until_ms) > jrpc__upstream_now_ms() || jrpc__probe_down(ep);
    out->probed = (int)LOAD(ep->probed);
    out->probe_ok = out->probed && !jrpc__probe_down(ep);
    out->probe_us = LOAD(ep->probe_us);
    out->block = LOAD(ep->block);
    out->lag = LOAD(ep->lag);
}

JRPC_EXTERN int jrpc_upstream_url_stats(const jrpc_upstream_t *up, size_t i, const char **url,
                                        jrpc_upstream_url_stats_t *out)
{
    /* The version in force is referenced by up->conf until the next reconfigure, which the
     * caller does not run concurrently (see jrpc/upstream.h): *url stays valid until then. */
    const jrpc__upconf_t *c = jrpc__upstream_conf_get((jrpc_upstream_t *)up);
    int rc = JRPC_ENOENT;
    if (i < c->neps) {
        if (url != NULL)
            *url = c->urls[i].ep->display;
        if (out != NULL)
            url_stats_of(c->urls[i].ep, out);
        rc = 0;
    }
    jrpc__upconf_unref(c);
    return rc;
}

JRPC_EXTERN void jrpc_upstream_url_each(const jrpc_upstream_t *up, jrpc_upstream_url_cb cb,
                                        void *data)
{
    const jrpc__upconf_t *c = jrpc__upstream_conf_get((jrpc_upstream_t *)up);
    for (unsigned i = 0; i < c->neps; i++) {
        jrpc_upstream_url_stats_t st;
        url_stats_of(c->urls[i].ep, &st);
        cb(data, c->urls[i].ep->display, &st);
    }
    jrpc__upconf_unref(c);
}

/* ---- Choosing a URL -------------------------------------------------------------------------- */

/* URL i may take the next attempt of a chunk that has tried `tried`: untried and not down. */
static int ep_ready(const jrpc__upurl_t *u, unsigned i, uint32_t tried, uint64_t now)
{
    return !(tried & (1u << i)) && LOAD(u->ep->down_until_ms) <= now && !jrpc__probe_down(u->ep);
}

unsigned jrpc__upstream_pick(jrpc__upctx_t *ctx, uint32_t tried)
{
    const jrpc__upconf_t *c = ctx->conf;
    uint64_t now = jrpc__upstream_now_ms();
    /* The lowest priority holding an up URL this chunk has not tried. */
    int have = 0;
    unsigned prio = 0;
    for (unsigned i = 0; i < c->neps; i++) {
        const jrpc__upurl_t *u = &c->urls[i];
        if (!ep_ready(u, i, tried, now))
            continue;
        if (!have || u->priority < prio)
            prio = u->priority;
        have = 1;
    }
    if (have) {
        /* Smooth weighted round-robin (nginx): every candidate gains its weight, the richest
         * is chosen and pays the total; over a cycle each gets its share, interleaved. */
        int64_t total = 0;
        int best = -1;
        for (unsigned i = 0; i < c->neps; i++) {
            const jrpc__upurl_t *u = &c->urls[i];
            if (!ep_ready(u, i, tried, now) || u->priority != prio)
                continue;
            ctx->wrr[i] += u->weight;
            total += u->weight;
            if (best < 0 || ctx->wrr[i] > ctx->wrr[best])
                best = (int)i;
        }
        ctx->wrr[best] -= total;
        return (unsigned)best;
    }
    /* Every untried URL is down: the one back soonest, since it may be back already. */
    int best = -1;
    for (unsigned i = 0; i < c->neps; i++) {
        if (tried & (1u << i))
            continue;
        if (best < 0 || LOAD(c->urls[i].ep->down_until_ms) < LOAD(c->urls[best].ep->down_until_ms))
            best = (int)i;
    }
    if (best >= 0)
        return (unsigned)best;
    /* Every URL was tried (retries ≥ URLs): start over in the same order. */
    return jrpc__upstream_pick(ctx, 0);
}

void jrpc__upstream_mark_down(jrpc__upctx_t *ctx, unsigned ep, int fault, const char *detail)
{
    jrpc__endpoint_t *e = ctx->conf->urls[ep].ep;
    unsigned recheck = ctx->conf->recheck_ms;
    uint64_t now = jrpc__upstream_now_ms();
    uint64_t prev =
        atomic_exchange_explicit(&e->down_until_ms, now + recheck, memory_order_relaxed);
    /* One line when it goes down, not one per failed request while it stays down. */
    if (prev <= now)
        jrpc__upstream_log(ctx->up, JRPC_LOG_WARN, "%s is down for %u ms: %s: %s", e->display,
                           recheck, jrpc_upstream_fault_name(fault), detail);
}

void jrpc__upstream_mark_up(jrpc__upctx_t *ctx, unsigned ep)
{
    jrpc__endpoint_t *e = ctx->conf->urls[ep].ep;
    if (LOAD(e->down_until_ms) == 0)
        return;
    if (atomic_exchange_explicit(&e->down_until_ms, 0, memory_order_relaxed) != 0)
        jrpc__upstream_log(ctx->up, JRPC_LOG_INFO, "%s answers again", e->display);
}
