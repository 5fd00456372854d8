/* SPDX-License-Identifier: MIT */
/* hedge.c — hedging (docs/gateway.md#hedging): a read whose attempt goes unanswered past
 * hedge_after (a fixed delay, or a latency quantile of the upstream) gets a second attempt, a twin
 * with the same body, on another URL that is up; the first 2xx answer wins and the other attempt
 * is cut. Writes are never hedged, probes and twins never, and hedges in flight are bounded per
 * loop. The client (client.c) arms the timer when it sends a chunk and hands the end of either
 * attempt of a pair to jrpc__hedge_done. Loop thread of the chunk's client throughout. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

/* The most hedges in flight on one loop: a tenth of its max_in_flight share (at least one), so a
 * slow URL turns at most that many requests into two while the rest wait their normal time, and a
 * hedge never takes a place a waiting chunk needs (hedge_room). */
#define HEDGE_SHARE 10

/* The upstream's q-th latency percentile in ms (linear within its histogram bucket, as
 * Prometheus' histogram_quantile), or 0 while it has fewer than JRPC_UPSTREAM_HEDGE_MIN_SAMPLES
 * answers or the quantile falls in the unbounded last bucket (past a second: no hedge). */
static uint64_t latency_quantile_ms(jrpc_upstream_t *up, unsigned q)
{
    static const uint64_t bounds[JRPC_UPSTREAM_LATENCY_BUCKETS] = JRPC_UPSTREAM_LATENCY_BOUNDS_US;
    uint64_t counts[JRPC_UPSTREAM_LATENCY_BUCKETS], total = 0;
    for (int k = 0; k < JRPC_UPSTREAM_LATENCY_BUCKETS; k++)
        total += counts[k] = atomic_load_explicit(&up->stats.latency[k], memory_order_relaxed);
    if (total < JRPC_UPSTREAM_HEDGE_MIN_SAMPLES)
        return 0;
    double rank = (double)total * q / 100.0, cum = 0, lower = 0;
    for (int k = 0; k < JRPC_UPSTREAM_LATENCY_BUCKETS; k++) {
        if (counts[k] != 0 && cum + (double)counts[k] >= rank) {
            if (bounds[k] == UINT64_MAX)
                return 0;
            double us = lower + ((double)bounds[k] - lower) * (rank - cum) / (double)counts[k];
            return (uint64_t)(us + 999) / 1000;
        }
        cum += (double)counts[k];
        lower = (double)bounds[k];
    }
    return 0;
}

/* How long an attempt goes unanswered before its chunk is hedged, in ms; 0: no hedge now. */
static uint64_t hedge_delay_ms(jrpc__upctx_t *ctx)
{
    const jrpc__upconf_t *c = ctx->conf;
    if (c->hedge_after_ms != 0)
        return c->hedge_after_ms;
    return c->hedge_quantile != 0 ? latency_quantile_ms(ctx->up, c->hedge_quantile) : 0;
}

/* A hedge may start: a free in-flight place nobody waits for, under the hedge share. */
static int hedge_room(const jrpc__upctx_t *ctx)
{
    unsigned max = ctx->conf->loop_in_flight / HEDGE_SHARE;
    return ctx->wait_head == NULL && ctx->in_flight < ctx->conf->loop_in_flight &&
           ctx->hedges_flying < (max ? max : 1);
}

/* Every call of ch is a read (jrpc__call_is_read). */
static int chunk_reads_only(const jrpc__chunk_t *ch)
{
    for (size_t i = 0; i < ch->n; i++)
        if (ch->calls[i] == NULL || !jrpc__call_is_read(ch->ctx->conf, ch->calls[i]))
            return 0;
    return 1;
}

/* Sends a twin of ch (its body, no calls of its own) to another URL that is up; nothing when
 * there is none. */
static void chunk_hedge(jrpc__chunk_t *ch)
{
    jrpc__upctx_t *ctx = ch->ctx;
    const jrpc__upconf_t *c = ctx->conf;
    ch->hedged = 1;
    unsigned ep = jrpc__upstream_pick(ctx, ch->tried | (1u << ch->ep));
    jrpc__endpoint_t *e = c->urls[ep].ep;
    if (ep == ch->ep ||
        atomic_load_explicit(&e->down_until_ms, memory_order_relaxed) > jrpc__upstream_now_ms() ||
        jrpc__probe_down(e))
        return;
    jrpc__chunk_t *twin = calloc(1, sizeof(*twin));
    if (twin == NULL)
        return;
    twin->ctx = ctx;
    twin->base_id = ch->base_id;
    twin->is_batch = ch->is_batch;
    twin->ep = ep;
    twin->hedge_of = ch;
    jrpc_buf_init(&twin->body);
    jrpc_buf_init(&twin->answer);
    if (jrpc_buf_append(&twin->body, ch->body.ptr, ch->body.len) != 0) {
        jrpc__chunk_free(twin);
        return;
    }
    /* Paired before the send: h1.c may end the attempt inside it (hedge_done unpairs). */
    ch->hedge = twin;
    ctx->hedges_flying++;
    JRPC__UPSTAT_ADD(ctx->up->stats.hedges, 1);
    if (jrpc__chunk_send(twin) != 0) {
        ch->hedge = NULL; /* freed; the chunk goes on alone */
        ctx->hedges_flying--;
    }
}

/* Hedges the chunks in flight whose attempt is older than the delay, and sets the timer for the
 * next one due. */
static void on_hedge_timer(uv_timer_t *t)
{
    jrpc__upctx_t *ctx = t->data;
    jrpc__upctx_enter(ctx);
    uint64_t delay_ns = hedge_delay_ms(ctx) * 1000000u, now = uv_hrtime(), next = UINT64_MAX;
    for (jrpc__chunk_t *ch = ctx->flying; ch != NULL && delay_ns != 0; ch = ch->next) {
        if (ch->hedged || ch->hedge_of != NULL || ch->probe != NULL || ctx->conf->neps < 2)
            continue;
        uint64_t due = ch->sent_ns + delay_ns;
        if (due > now) {
            next = due - now < next ? due - now : next;
        } else if (!chunk_reads_only(ch)) {
            ch->hedged = 1; /* never: look no more */
        } else if (hedge_room(ctx)) {
            chunk_hedge(ch); /* the twin goes to the head of the list, behind this walk */
        } else {
            next = delay_ns < next ? delay_ns : next; /* look again when places may be free */
        }
    }
    if (next != UINT64_MAX && !ctx->closing)
        uv_timer_start(&ctx->hedge_timer, on_hedge_timer, (next + 999999) / 1000000u, 0);
    jrpc__upctx_leave(ctx);
}

/* A chunk was sent: the hedge timer runs if hedging is on and it was idle (on_hedge_timer
 * finds the chunk, and sets itself again while chunks fly). */
void jrpc__hedge_arm(jrpc__upctx_t *ctx)
{
    if (ctx->conf->neps < 2 || ctx->closing || uv_is_active((uv_handle_t *)&ctx->hedge_timer))
        return;
    uint64_t delay = hedge_delay_ms(ctx);
    if (delay != 0)
        uv_timer_start(&ctx->hedge_timer, on_hedge_timer, delay, 0);
}

/* The outcome of an attempt that is half of a hedged pair (ch is the twin, or the chunk whose
 * twin flies; status and fault as jrpc__upstream_attempt_end says): the first 2xx answer wins and
 * the other attempt is cut, uncounted; a failed one counts against its URL and leaves the other
 * to decide. Returns the chunk to finish with this outcome (the twin's answer moved into it), or
 * NULL when there is nothing more to do now. */
jrpc__chunk_t *jrpc__hedge_done(jrpc__chunk_t *ch, long status, int fault, const char *detail)
{
    jrpc__upctx_t *ctx = ch->ctx;
    int answered = fault < 0 && status >= 200 && status < 300;
    char line[160];
    if (fault < 0 && !answered) {
        fault = JRPC_UPSTREAM_FAULT_HTTP;
        snprintf(line, sizeof line, "HTTP status %ld", status);
        detail = line;
    }
    if (ch->hedge_of == NULL) {
        /* The chunk's own attempt ended while its twin flies. */
        jrpc__chunk_t *twin = ch->hedge;
        if (answered) {
            jrpc__chunk_abort(twin);
            ctx->hedges_flying--;
            ch->hedge = NULL;
            jrpc__chunk_free(twin);
            return ch;
        }
        jrpc__attempt_failed(ch, fault, detail);
        ch->parked = 1;
        return NULL;
    }
    jrpc__chunk_t *p = ch->hedge_of;
    ctx->hedges_flying--;
    p->hedge = NULL;
    if (!answered && !p->parked) {
        jrpc__attempt_failed(ch, fault, detail);
        jrpc__chunk_free(ch);
        return NULL;
    }
    if (p->parked)
        p->parked = 0;
    else
        jrpc__chunk_abort(p);
    if (answered)
        JRPC__UPSTAT_ADD(ctx->up->stats.hedges_won, 1);
    jrpc_buf_t a = p->answer;
    p->answer = ch->answer;
    ch->answer = a;
    p->ep = ch->ep;
    p->tried |= 1u << ch->ep;
    p->sent_ns = ch->sent_ns;
    p->too_large = ch->too_large;
    jrpc__chunk_free(ch);
    return p;
}
