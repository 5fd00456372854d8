/* SPDX-License-Identifier: MIT */
/* probe.c — active health of an upstream's URLs: every probe_interval one io loop (loop 0, so
 * that a node gets one probe per interval, not one per loop) sends the probe method to each URL
 * through that loop's client; a URL whose probe fails, or whose eth_blockNumber lags more than
 * max_lag blocks behind the best URL of its upstream, is passed over by jrpc__upstream_pick and
 * counts as down for /ready until a probe succeeds again. Probes follow reconfigures (they go
 * to the URLs in force) and stop with the loop. */
#include "../json/internal.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The probes of one upstream, on loop 0. */
struct jrpc__prober {
    jrpc_upstream_t *up;
    uv_loop_t *loop;
    uv_timer_t timer;  /* the next round */
    uv_async_t wake;   /* a reconfigure: settings may have changed */
    unsigned interval; /* ms the timer repeats at now; 0: stopped */
    unsigned open;     /* handles not yet closed */
    uint8_t closing;   /* the loop stops: answers are ignored */
};

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

int jrpc__probe_down(const jrpc__endpoint_t *ep)
{
    return LOAD(((jrpc__endpoint_t *)ep)->probe_down) != 0;
}

/* Marks every URL of c as probed and up: probes were turned off, or start again. */
static void probe_clear(jrpc_upstream_t *up, const jrpc__upconf_t *c)
{
    for (unsigned i = 0; i < c->neps; i++) {
        jrpc__endpoint_t *ep = c->urls[i].ep;
        ep->probing = 0;
        if (c->probe == NULL) {
            if (atomic_exchange(&ep->probe_down, 0) != 0)
                jrpc__upstream_log(up, JRPC_LOG_INFO, "%s: probes off, back in rotation",
                                   ep->display);
            STORE(ep->probed, 0);
            STORE(ep->block_ok, 0);
            STORE(ep->lag, 0);
        }
    }
}

static void on_round(uv_timer_t *t)
{
    struct jrpc__prober *pr = t->data;
    const jrpc__upconf_t *c = jrpc__upstream_conf_get(pr->up);
    if (c->probe != NULL) {
        char body[300];
        int n = snprintf(body, sizeof body,
                         "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":[]}",
                         c->probe); /* settings_check: no quote or backslash, ≤ 200 bytes */
        if (n > 0 && (size_t)n < sizeof body)
            jrpc__upstream_probe_round(pr->up, pr->loop, pr, body, (size_t)n);
    }
    jrpc__upconf_unref(c);
}

/* Follows the settings in force: rounds every probe_interval from now (the first at once, so
 * that new URLs are probed soon), or none. */
static void prober_sync(struct jrpc__prober *pr)
{
    const jrpc__upconf_t *c = jrpc__upstream_conf_get(pr->up);
    unsigned interval = c->probe != NULL ? c->probe_interval_ms : 0;
    if (interval == 0) {
        uv_timer_stop(&pr->timer);
        probe_clear(pr->up, c);
    } else {
        uv_timer_start(&pr->timer, on_round, 0, interval);
    }
    pr->interval = interval;
    jrpc__upconf_unref(c);
}

static void on_wake(uv_async_t *h)
{
    prober_sync(h->data);
}

static void prober_closed(uv_handle_t *h)
{
    struct jrpc__prober *pr = h->data;
    if (--pr->open == 0)
        free(pr);
}

void jrpc__probe_loop_start(jrpc_upstream_t *up, uv_loop_t *loop)
{
    struct jrpc__prober *pr = calloc(1, sizeof(*pr));
    if (pr == NULL) {
        jrpc__upstream_log(up, JRPC_LOG_ERROR, "health probes off: out of memory");
        return;
    }
    pr->up = up;
    pr->loop = loop;
    if (uv_async_init(loop, &pr->wake, on_wake) != 0) {
        free(pr);
        jrpc__upstream_log(up, JRPC_LOG_ERROR, "health probes off: cannot make a handle");
        return;
    }
    uv_timer_init(loop, &pr->timer);
    pr->timer.data = pr->wake.data = pr;
    pr->open = 2;
    /* A probe cut by the last stop left its URL marked as probing. */
    const jrpc__upconf_t *c = jrpc__upstream_conf_get(up);
    for (unsigned i = 0; i < c->neps; i++)
        c->urls[i].ep->probing = 0;
    jrpc__upconf_unref(c);
    uv_mutex_lock(&up->lock);
    up->prober = pr;
    uv_mutex_unlock(&up->lock);
    prober_sync(pr);
}

void jrpc__probe_loop_stop(jrpc_upstream_t *up)
{
    uv_mutex_lock(&up->lock);
    struct jrpc__prober *pr = up->prober;
    up->prober = NULL;
    uv_mutex_unlock(&up->lock);
    if (pr == NULL)
        return;
    /* Probes in flight are cut with the loop's client; their answers, if one comes first, are
     * ignored. Freed once both handles are closed (after the current callback). */
    pr->closing = 1;
    uv_close((uv_handle_t *)&pr->timer, prober_closed);
    uv_close((uv_handle_t *)&pr->wake, prober_closed);
}

void jrpc__probe_wake(jrpc_upstream_t *up)
{
    if (up->prober != NULL)
        uv_async_send(&up->prober->wake);
}

/* Parses a JSON-RPC answer to a probe: 1 when it has a result and no error, with *block set
 * (and *has_block) when the result is a hex quantity (eth_blockNumber). */
static int answer_ok(const jrpc_buf_t *a, uint64_t *block, int *has_block)
{
    *has_block = 0;
    jrpc_json_t v = {a->ptr, a->len}, result, error;
    if (a->len == 0 || jrpc_json_validate(a->ptr, a->len, 0, NULL) != 0)
        return 0;
    v = jrpc__json_trim(v);
    if (jrpc_json_type(v) != JRPC_JSON_OBJECT || jrpc_json_get(v, "error", &error) == 0 ||
        jrpc_json_get(v, "result", &result) != 0 || jrpc_json_type(result) == JRPC_JSON_NULL)
        return 0;
    char hex[40];
    size_t len;
    if (jrpc_json_type(result) != JRPC_JSON_STRING ||
        jrpc_json_string(result, hex, sizeof hex, &len) != 0 || len < 3 || len > 18 ||
        hex[0] != '0' || (hex[1] != 'x' && hex[1] != 'X'))
        return 1;
    uint64_t n = 0;
    for (size_t i = 2; i < len; i++) {
        char ch = hex[i];
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0)
            return 1;
        n = n * 16 + (uint64_t)d;
    }
    *block = n;
    *has_block = 1;
    return 1;
}

/* Sets each URL of c in or out of rotation from its last probe and its lag behind the best. */
static void probe_judge(jrpc_upstream_t *up, const jrpc__upconf_t *c)
{
    uint64_t best = 0;
    int lag_check = c->max_lag != 0 && c->probe != NULL && strcmp(c->probe, "eth_blockNumber") == 0;
    for (unsigned i = 0; i < c->neps; i++) {
        jrpc__endpoint_t *ep = c->urls[i].ep;
        if (LOAD(ep->block_ok) && !LOAD(ep->probe_failed) && LOAD(ep->block) > best)
            best = LOAD(ep->block);
    }
    for (unsigned i = 0; i < c->neps; i++) {
        jrpc__endpoint_t *ep = c->urls[i].ep;
        if (!LOAD(ep->probed))
            continue;
        int failed = LOAD(ep->probe_failed) != 0;
        uint64_t lag = LOAD(ep->block_ok) && !failed ? best - LOAD(ep->block) : 0;
        STORE(ep->lag, lag);
        unsigned down = failed || (lag_check && lag > c->max_lag);
        unsigned was = atomic_exchange(&ep->probe_down, down);
        if (was == down)
            continue;
        if (!down)
            jrpc__upstream_log(up, JRPC_LOG_INFO, "%s: probe %s, back in rotation", ep->display,
                               c->probe);
        else if (failed)
            jrpc__upstream_log(up, JRPC_LOG_WARN, "%s: probe %s failed, out of rotation",
                               ep->display, c->probe);
        else
            jrpc__upstream_log(up, JRPC_LOG_WARN,
                               "%s: %llu blocks behind the best URL (max_lag %u), out of rotation",
                               ep->display, (unsigned long long)lag, c->max_lag);
    }
}

void jrpc__probe_done(jrpc__chunk_t *ch, int ok, long status)
{
    const jrpc__upconf_t *c = ch->ctx->conf;
    jrpc__endpoint_t *ep = c->urls[ch->ep].ep;
    ep->probing = 0;
    if (ch->probe->closing || c->probe == NULL)
        return;
    uint64_t block = 0;
    int has_block = 0;
    int good = ok && status >= 200 && status < 300 && answer_ok(&ch->answer, &block, &has_block);
    if (ok)
        STORE(ep->probe_us, (uv_hrtime() - ch->sent_ns) / 1000u);
    STORE(ep->probe_failed, !good);
    STORE(ep->block_ok, (unsigned)has_block);
    if (has_block)
        STORE(ep->block, block);
    STORE(ep->probed, 1);
    probe_judge(ch->ctx->up, c);
}
