/* SPDX-License-Identifier: MIT */
/* client.c — the gateway's client of one upstream on one io loop: the queueing, and the seam to
 * the transports (chunk_send starts an attempt, chunk_abort cuts one, attempt_done ends one
 * whichever carried it): h1.c for http:// URLs, curl.c for the rest. Calls wait in the loop's
 * pending lists until the check phase of the same loop iteration, so every item of a client
 * batch (the engine dispatches them in one pump) is there together (with auto_batch, calls sent
 * alone may wait longer: batch_wait, and the bounded hold behind the batch out); they are cut into
 * chunks of at most max_batch, sent under the loop's share of max_in_flight, retried on another
 * URL after a transport fault, and answered per item (answer.c). What waits is bounded by
 * max_queue, and a call nobody waits for any more (jrpc_call_cancelled) is answered and dropped
 * rather than sent or retried. A client serves one version of the upstream's settings: after a
 * reconfigure the loop makes a new client for new calls, and the old one finishes the calls it
 * holds, then closes with its connections (so a URL taken out of the config is let go). */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How often the wait queue is swept of cancelled calls (at most; a sweep runs in the check phase
 * of a loop iteration). A client that left, or a deadline that passed, lets go of its calls and
 * their request bodies within about this long instead of when their chunk reaches the head of
 * the queue, while a sweep of max_queue calls costs one atomic load each. */
#define SWEEP_MS 100

static void ctx_drain(jrpc__upctx_t *ctx);
static void ctx_close(jrpc__upctx_t *ctx);
static void chunk_go(jrpc__chunk_t *ch);
static void queue_call(jrpc__upctx_t *ctx, jrpc_call_t *call);

/* Around a callback of the loop that may answer calls: an answer can finish the loop's last
 * request while the loop is stopping, and the stop hook then comes from inside the callback, in
 * the middle of a walk over ctx's lists. It is held until the callback ends (ctx_leave). */
static void ctx_enter(jrpc__upctx_t *ctx)
{
    ctx->busy = 1;
}

/* A client holds no call: nothing pending, waiting or in flight. */
static int ctx_idle(const jrpc__upctx_t *ctx)
{
    return ctx->nbatched == 0 && ctx->nsingles == 0 && ctx->wait_head == NULL &&
           ctx->flying == NULL && ctx->lookups == 0;
}

/* A reconfigure made its settings old: it takes no new call (jrpc__upstream_call makes a newer
 * client) and goes once idle. */
static void ctx_check_gen(jrpc__upctx_t *ctx)
{
    if (!ctx->retiring &&
        ctx->conf->gen != atomic_load_explicit(&ctx->up->gen, memory_order_relaxed))
        ctx->retiring = 1;
}

static void on_idle(uv_idle_t *h)
{
    (void)h; /* only there so that the poll phase does not block while calls are pending */
}

static void ctx_leave(jrpc__upctx_t *ctx)
{
    ctx->busy = 0;
    /* The batch out that auto_batch's hold waited for is done (jrpc__chunk_free): the calls held
     * go at the next check, without the poll blocking before it. */
    if (ctx->hold_ch == NULL && ctx->nbatched != 0 && !ctx->closing)
        uv_idle_start(&ctx->idle, on_idle);
    if (!ctx->closing && (ctx->stop_asked || (ctx->retiring && ctx_idle(ctx))))
        ctx_close(ctx);
}

/* ---- The per-loop client --------------------------------------------------------------------- */

static void on_check(uv_check_t *h);

static void on_wake(uv_async_t *h)
{
    jrpc__upctx_t *ctx = h->data;
    ctx_enter(ctx);
    ctx_check_gen(ctx);
    ctx_leave(ctx);
}

/* Makes the loop's client for the settings in force, the newest of the loop: the one before it
 * (if any) retires. */
static jrpc__upctx_t *ctx_new(jrpc_upstream_t *up, uv_loop_t *loop, unsigned index)
{
    jrpc__upctx_t *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return NULL;
    ctx->up = up;
    ctx->conf = jrpc__upstream_conf_get(up);
    ctx->loop = loop;
    ctx->index = index;
    ctx->next_id = 1;
    int curl_rc = jrpc__curl_open(ctx);
    if (curl_rc != 0 || uv_async_init(loop, &ctx->wake, on_wake) != 0) {
        if (curl_rc == 0)
            curl_multi_cleanup(ctx->multi);
        jrpc__upconf_unref(ctx->conf);
        free(ctx);
        return NULL;
    }
    uv_timer_init(loop, &ctx->timer);
    uv_check_init(loop, &ctx->check);
    uv_idle_init(loop, &ctx->idle);
    uv_timer_init(loop, &ctx->hedge_timer);
    uv_timer_init(loop, &ctx->hold_timer);
    ctx->timer.data = ctx->check.data = ctx->idle.data = ctx->wake.data = ctx;
    ctx->hedge_timer.data = ctx->hold_timer.data = ctx;
    ctx->open_handles = 6;
    uv_check_start(&ctx->check, on_check);
    uv_mutex_lock(&up->lock);
    ctx->older = up->ctx[index];
    up->ctx[index] = ctx;
    uv_mutex_unlock(&up->lock);
    if (ctx->older != NULL)
        ctx->older->retiring = 1; /* closes at its next check, or when its last call is done */
    return ctx;
}

static void ctx_release(jrpc__upctx_t *ctx)
{
    jrpc__h1_free(ctx);
    jrpc__curl_release(ctx);
    free(ctx->batched);
    free(ctx->singles);
    jrpc__share_free(ctx);
    jrpc__upconf_unref(ctx->conf);
    free(ctx);
}

static void ctx_handle_closed(uv_handle_t *h)
{
    jrpc__upctx_t *ctx = h->data;
    if (--ctx->open_handles == 0)
        ctx_release(ctx);
}

/* Takes ctx out of its loop's chain, so that neither calls nor a reconfigure find it. */
static void ctx_unlink(jrpc__upctx_t *ctx)
{
    jrpc_upstream_t *up = ctx->up;
    uv_mutex_lock(&up->lock);
    for (jrpc__upctx_t **link = &up->ctx[ctx->index]; *link != NULL; link = &(*link)->older) {
        if (*link == ctx) {
            *link = ctx->older;
            break;
        }
    }
    uv_mutex_unlock(&up->lock);
}

/* Answers call, and the calls that joined it (g, may be NULL; freed), -32000 "server shutting
 * down": the loop stops with it still held. */
static void reply_shutdown_all(jrpc_upstream_t *up, jrpc_call_t *call, jrpc__group_t *g)
{
    jrpc_buf_t data;
    jrpc_buf_init(&data);
    jrpc_buf_appendz(&data, "{\"upstream\":");
    jrpc_buf_json_string(&data, up->name, strlen(up->name));
    jrpc_buf_append(&data, "}", 2); /* with the NUL */
    JRPC__UPSTAT_ADD(up->stats.items_failed, g ? g->n : 1);
    jrpc__share_reply_error(g, call, JRPC_CODE_SERVER_ERROR, "server shutting down",
                            data.err ? NULL : data.ptr);
    jrpc_buf_free(&data);
}

/* Answers call -32000 "server shutting down": the loop stops with it still held. */
static void reply_shutdown(jrpc_upstream_t *up, jrpc_call_t *call)
{
    reply_shutdown_all(up, call, NULL);
}

/* n calls are no longer waiting to be sent (sent, dropped or answered). */
static void queue_leave(jrpc_upstream_t *up, size_t n)
{
    atomic_fetch_sub_explicit(&up->stats.items_queued, n, memory_order_relaxed);
}

/* Answers every call of ch "server shutting down" and frees it. */
static void chunk_shutdown(jrpc__chunk_t *ch)
{
    for (size_t i = 0; i < ch->n; i++)
        reply_shutdown_all(ch->ctx->up, ch->calls[i], jrpc__share_done(ch, i));
    jrpc__chunk_free(ch);
}

/* The loop stops: every call still held is answered (pending, waiting, in flight: transfers are
 * cut), then the connections and the handles close, so the loop can end; the ctx frees itself
 * once they are closed. The replies may finish requests, whose waiting calls may then start and
 * reach jrpc__upstream_call: up->stopped answers those, and every list is taken out of ctx
 * before its calls are answered. */
static void ctx_close(jrpc__upctx_t *ctx)
{
    jrpc_upstream_t *up = ctx->up;
    ctx->closing = 1;
    ctx_unlink(ctx);
    uv_idle_stop(&ctx->idle);
    jrpc__chunk_t *waiting = ctx->wait_head;
    ctx->wait_head = ctx->wait_tail = NULL;
    /* chunk_abort takes each out of the list before its calls are answered. */
    for (jrpc__chunk_t *ch; (ch = ctx->flying) != NULL;) {
        jrpc__chunk_abort(ch);
        /* A hedge and its chunk part: the chunk's calls are answered once, with the chunk (now,
         * if its own attempt had failed and only the hedge was left). */
        if (ch->hedge != NULL)
            ch->hedge->hedge_of = NULL;
        if (ch->hedge_of != NULL) {
            ch->hedge_of->hedge = NULL;
            if (ch->hedge_of->parked)
                chunk_shutdown(ch->hedge_of);
        }
        chunk_shutdown(ch);
    }
    jrpc__h1_close(ctx);
    while (waiting != NULL) {
        jrpc__chunk_t *ch = waiting;
        waiting = ch->next;
        atomic_fetch_sub_explicit(&up->stats.queued, 1, memory_order_relaxed);
        queue_leave(up, ch->n);
        chunk_shutdown(ch);
    }
    jrpc_call_t **lists[2] = {ctx->batched, ctx->singles};
    size_t counts[2] = {ctx->nbatched, ctx->nsingles};
    ctx->nbatched = ctx->nsingles = ctx->nholdable = 0;
    for (int l = 0; l < 2; l++) {
        queue_leave(up, counts[l]);
        for (size_t i = 0; i < counts[l]; i++)
            reply_shutdown_all(up, lists[l][i], jrpc__share_take(ctx, lists[l][i]));
    }
    jrpc__curl_close(ctx);
    uv_close((uv_handle_t *)&ctx->timer, ctx_handle_closed);
    uv_close((uv_handle_t *)&ctx->check, ctx_handle_closed);
    uv_close((uv_handle_t *)&ctx->idle, ctx_handle_closed);
    uv_close((uv_handle_t *)&ctx->wake, ctx_handle_closed);
    uv_close((uv_handle_t *)&ctx->hedge_timer, ctx_handle_closed);
    uv_close((uv_handle_t *)&ctx->hold_timer, ctx_handle_closed);
}

void jrpc__upctx_free_detached(jrpc__upctx_t *ctx)
{
    ctx->detached = 1;
    jrpc__curl_free_detached(ctx);
    ctx_release(ctx);
}

/* ---- Pending calls → chunks ------------------------------------------------------------------ */

/* Appends call to the pending list v (n used, cap allocated); 0 or JRPC_ENOMEM. */
static int push(jrpc_call_t ***v, size_t *n, size_t *cap, jrpc_call_t *call)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        jrpc_call_t **grown = realloc(*v, ncap * sizeof(*grown));
        if (grown == NULL)
            return JRPC_ENOMEM;
        *v = grown;
        *cap = ncap;
    }
    (*v)[(*n)++] = call;
    return 0;
}

static void reply_oom(jrpc_call_t *call)
{
    jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, "Internal error", "\"out of memory\"");
}

/* 1 when the pending calls and one more (sent alone or not) all go out at the coming flush,
 * into free in-flight places, with nothing waiting before them: such a call does not wait. */
static int sent_at_once(const jrpc__upctx_t *ctx, int single)
{
    const jrpc__upconf_t *up = ctx->conf;
    if (ctx->wait_head != NULL || ctx->in_flight >= up->loop_in_flight)
        return 0;
    size_t batched = ctx->nbatched + (size_t)!single;
    size_t requests =
        ctx->nsingles + (size_t)single + (batched + up->max_batch - 1) / up->max_batch;
    return requests <= up->loop_in_flight - ctx->in_flight;
}

/* Counts one more call waiting to be sent; 0 (nothing counted) when max_queue calls of the
 * upstream wait already, over all loops, and this one would wait too. The count is one atomic
 * shared by the loops, so the bound is the upstream's, not split: a loop that takes a burst may
 * hold all of it. */
static int queue_admit(jrpc__upctx_t *ctx, int single)
{
    jrpc__upstats_t *st = &ctx->up->stats;
    uint64_t held = atomic_fetch_add_explicit(&st->items_queued, 1, memory_order_relaxed) + 1;
    if (held > ctx->conf->max_queue && !sent_at_once(ctx, single)) {
        queue_leave(ctx->up, 1);
        return 0;
    }
    uint64_t peak = atomic_load_explicit(&st->items_queued_peak, memory_order_relaxed);
    while (held > peak &&
           !atomic_compare_exchange_weak_explicit(&st->items_queued_peak, &peak, held,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
    return 1;
}

static void reply_queue_full(jrpc__upctx_t *ctx, jrpc_call_t *call)
{
    jrpc_upstream_t *up = ctx->up;
    char msg[200];
    snprintf(msg, sizeof msg, "upstream %.100s: queue full (max_queue %u)", up->name,
             ctx->conf->max_queue);
    jrpc_call_limit_refused(call, "upstream_queue");
    jrpc_reply_error(call, JRPC_CODE_LIMIT_EXCEEDED, msg, NULL);
    JRPC__UPSTAT_ADD(up->stats.items_refused, 1);
}

void jrpc__upstream_call(jrpc_call_t *call, void *data)
{
    jrpc_upstream_t *up = data;
    unsigned index = jrpc_call_loop_index(call);
    if (up->stopped[index]) {
        reply_shutdown(up, call);
        return;
    }
    if (jrpc_call_cancelled(call)) {
        /* Started after its client left (it waited behind other calls of its batch). */
        jrpc_reply_error(call, JRPC_CODE_TIMEOUT, "Request timed out", NULL);
        JRPC__UPSTAT_ADD(up->stats.items_dropped, 1);
        return;
    }
    /* The newest client, unless a reconfigure came since it was made: then a client of the
     * settings in force takes this call and those after it. */
    jrpc__upctx_t *ctx = up->ctx[index];
    if ((ctx == NULL || ctx->retiring ||
         ctx->conf->gen != atomic_load_explicit(&up->gen, memory_order_relaxed)) &&
        (ctx = ctx_new(up, jrpc_call_loop(call), index)) == NULL) {
        reply_oom(call);
        return;
    }
    /* Answered from the cache, joined to an identical call in flight, or held while Redis is
     * asked (share.c). */
    if (jrpc__share_begin(ctx, call))
        return;
    queue_call(ctx, call);
}

/* Answers call and the calls that joined it (its group, taken out of the table) -32005 for
 * max_queue. */
static void reply_queue_full_all(jrpc__upctx_t *ctx, jrpc_call_t *call)
{
    jrpc__group_t *g = jrpc__share_take(ctx, call);
    reply_queue_full(ctx, call);
    for (size_t k = 1; g != NULL && k < g->n; k++)
        reply_queue_full(ctx, g->calls[k]);
    jrpc__group_free(g);
}

static void queue_call(jrpc__upctx_t *ctx, jrpc_call_t *call)
{
    jrpc_upstream_t *up = ctx->up;
    /* A call its client sent alone goes alone (some upstreams treat a 1-item batch
     * differently), unless auto_batch lets it join others; with max_batch 1 nothing is ever
     * sent as a batch. */
    int single = (!jrpc_call_in_batch(call) && !ctx->conf->auto_batch) || ctx->conf->max_batch == 1;
    if (!queue_admit(ctx, single)) {
        reply_queue_full_all(ctx, call);
        return;
    }
    int was_empty = ctx->nbatched == 0 && ctx->nsingles == 0;
    if (!single && ctx->nbatched == 0)
        ctx->auto_first_ns = uv_hrtime();
    int rc = single ? push(&ctx->singles, &ctx->nsingles, &ctx->cap_singles, call)
                    : push(&ctx->batched, &ctx->nbatched, &ctx->cap_batched, call);
    if (rc != 0) {
        queue_leave(up, 1);
        jrpc__share_reply_error(jrpc__share_take(ctx, call), call, JRPC_CODE_INTERNAL_ERROR,
                                "Internal error", "\"out of memory\"");
        return;
    }
    if (!single && !jrpc_call_in_batch(call) && jrpc__call_is_read(ctx->conf, call))
        ctx->nholdable++;
    if (was_empty)
        uv_idle_start(&ctx->idle, on_idle);
}

void jrpc__upctx_hold(jrpc__upctx_t *ctx)
{
    ctx->lookups++;
    ctx->open_handles++;
}

void jrpc__upstream_resume(jrpc__upctx_t *ctx, jrpc_call_t *call)
{
    int was_busy = ctx->busy;
    ctx_enter(ctx);
    if (call != NULL) {
        if (ctx->closing)
            reply_shutdown_all(ctx->up, call, jrpc__share_take(ctx, call));
        else
            queue_call(ctx, call);
    }
    ctx->lookups--;
    if (!was_busy)
        ctx_leave(ctx);
    if (--ctx->open_handles == 0)
        ctx_release(ctx);
}

/* Makes calls[0..n) one chunk at the end of the wait queue and returns it; without memory for
 * it, each call is answered -32603 at once (NULL). whole: jrpc__chunk_new's. */
static jrpc__chunk_t *enqueue(jrpc__upctx_t *ctx, jrpc_call_t *const *calls, size_t n, int is_batch,
                              int whole)
{
    jrpc__chunk_t *ch = jrpc__chunk_new(ctx, calls, n, is_batch, whole);
    if (ch == NULL) {
        queue_leave(ctx->up, n);
        for (size_t i = 0; i < n; i++)
            jrpc__share_reply_error(jrpc__share_take(ctx, calls[i]), calls[i],
                                    JRPC_CODE_INTERNAL_ERROR, "Internal error",
                                    "\"out of memory\"");
        return NULL;
    }
    if (ctx->wait_tail != NULL)
        ctx->wait_tail->next = ch;
    else
        ctx->wait_head = ch;
    ctx->wait_tail = ch;
    JRPC__UPSTAT_ADD(ctx->up->stats.queued, 1);
    return ch;
}

/* Sends waiting chunks while the loop's share of max_in_flight allows; calls nobody waits for
 * are answered and left out, and a chunk left empty is not sent. */
static void ctx_start_waiting(jrpc__upctx_t *ctx)
{
    while (ctx->wait_head != NULL && ctx->in_flight < ctx->conf->loop_in_flight) {
        jrpc__chunk_t *ch = ctx->wait_head;
        ctx->wait_head = ch->next;
        if (ctx->wait_head == NULL)
            ctx->wait_tail = NULL;
        ch->next = NULL;
        atomic_fetch_sub_explicit(&ctx->up->stats.queued, 1, memory_order_relaxed);
        queue_leave(ctx->up, ch->n);
        jrpc__chunk_prune(ch);
        if (ch->n == 0)
            jrpc__chunk_free(ch);
        else
            chunk_go(ch);
    }
}

/* Answers and takes out the cancelled calls of every waiting chunk, dropping chunks left empty,
 * at most every SWEEP_MS: without it they would hold their requests until their chunk's turn. */
static void ctx_sweep(jrpc__upctx_t *ctx)
{
    uint64_t now = uv_now(ctx->loop);
    if (ctx->wait_head == NULL || now - ctx->swept_ms < SWEEP_MS)
        return;
    ctx->swept_ms = now;
    jrpc__chunk_t **link = &ctx->wait_head, *last = NULL;
    while (*link != NULL) {
        jrpc__chunk_t *ch = *link;
        queue_leave(ctx->up, jrpc__chunk_prune(ch));
        if (ch->n == 0) {
            *link = ch->next;
            atomic_fetch_sub_explicit(&ctx->up->stats.queued, 1, memory_order_relaxed);
            jrpc__chunk_free(ch);
        } else {
            last = ch;
            link = &ch->next;
        }
    }
    ctx->wait_tail = last;
}

/* Whether batched[off, off + size) is every call of one client request that this flush holds:
 * such a chunk may pass its calls through with their own ids (answer.c). */
static int chunk_whole(const jrpc__upctx_t *ctx, size_t off, size_t size)
{
    uint64_t req = jrpc_call_request(ctx->batched[off]);
    for (size_t i = off + 1; i < off + size; i++)
        if (jrpc_call_request(ctx->batched[i]) != req)
            return 0;
    return (off == 0 || jrpc_call_request(ctx->batched[off - 1]) != req) &&
           (off + size == ctx->nbatched || jrpc_call_request(ctx->batched[off + size]) != req);
}

/* Cuts the pending calls into chunks and starts sending. A client batch of n items becomes
 * ceil(n / max_batch) chunks of nearly equal size (25 with max_batch 10: 9, 8, 8), so the last
 * chunk is not a small straggler that waits for a place of its own. */
static void ctx_flush(jrpc__upctx_t *ctx)
{
    uv_idle_stop(&ctx->idle);
    for (size_t i = 0; i < ctx->nsingles; i++)
        enqueue(ctx, &ctx->singles[i], 1, 0, 0);
    ctx->nsingles = 0;
    size_t n = ctx->nbatched, max = ctx->conf->max_batch;
    if (n != 0) {
        size_t k = (n + max - 1) / max, off = 0;
        for (size_t j = 0; j < k; j++) {
            size_t size = n / k + (j < n % k);
            int alone = 0; /* calls sent alone among them: auto_batch gathered the chunk */
            for (size_t i = off; i < off + size && !alone; i++)
                alone = !jrpc_call_in_batch(ctx->batched[i]);
            /* A call sent alone that auto_batch found no company for still goes alone. */
            jrpc__chunk_t *ch = enqueue(ctx, &ctx->batched[off], size,
                                        size > 1 || jrpc_call_in_batch(ctx->batched[off]),
                                        chunk_whole(ctx, off, size));
            if (ch != NULL && alone) {
                ch->gathered = 1;
                ctx->hold_ch = ch; /* the last one: the next hold waits for it */
                ctx->hold_ns = uv_hrtime();
            }
            off += size;
        }
    }
    ctx->nbatched = ctx->nholdable = 0;
    uv_timer_stop(&ctx->hold_timer);
    ctx_drain(ctx);
}

/* How long calls may wait behind the batch out (ctx->hold_ch): batch_hold, or twice the median
 * answer time of the loop's recent gathered batches when that is shorter. A batch out longer is
 * likely slow (an eth_getLogs among its calls), and what waits behind it gains nothing more. */
static uint64_t hold_limit_ns(const jrpc__upctx_t *ctx)
{
    uint64_t cap = ctx->conf->batch_hold_ns, twice = 2 * ctx->hold_median_ns;
    return twice != 0 && twice < cap ? twice : cap;
}

static void on_hold_timer(uv_timer_t *t);

/* auto_batch's hold: 1 when the pending calls wait for the batch auto_batch made last, which is
 * out (waiting for an in-flight place or sent), so that they go together as the next batch when
 * its answer comes instead of following it as many small ones. Only when every pending call was
 * sent alone and is a read, a batch's worth is not yet there, and the batch out has been out
 * less than hold_limit_ns: the hold timer ends the wait then. The loop need not spin meanwhile:
 * the answer, or the timer, wakes it. */
static int hold_on(jrpc__upctx_t *ctx)
{
    const jrpc__upconf_t *conf = ctx->conf;
    if (!conf->auto_batch || ctx->hold_ch == NULL || ctx->nbatched == 0 || ctx->nsingles != 0 ||
        ctx->nholdable != ctx->nbatched || ctx->nbatched >= conf->max_batch || ctx->retiring ||
        ctx->closing)
        return 0;
    uint64_t limit = hold_limit_ns(ctx), age = uv_hrtime() - ctx->hold_ns;
    if (age >= limit)
        return 0;
    uv_idle_stop(&ctx->idle);
    /* libuv's timers count whole milliseconds: rounded up, the hold ends at most 1 ms late. */
    uv_timer_start(&ctx->hold_timer, on_hold_timer, (limit - age + 999999) / 1000000u, 0);
    return 1;
}

/* Flushes the pending calls unless they wait: for others (batch_wait) or behind a batch out. */
static void ctx_pump(jrpc__upctx_t *ctx)
{
    if (ctx->nbatched == 0 && ctx->nsingles == 0)
        return;
    if (hold_on(ctx))
        return;
    /* auto_batch with a batch_wait: calls keep gathering (the idle handle keeps the loop from
     * blocking) until the first has waited that long or a batch is full. */
    const jrpc__upconf_t *conf = ctx->conf;
    int gather = conf->auto_batch && conf->batch_wait_ns != 0 && ctx->nsingles == 0 &&
                 ctx->nbatched != 0 && ctx->nbatched < conf->max_batch && !ctx->retiring &&
                 uv_hrtime() - ctx->auto_first_ns < conf->batch_wait_ns;
    if (gather)
        uv_idle_start(&ctx->idle, on_idle);
    else
        ctx_flush(ctx);
}

static void on_hold_timer(uv_timer_t *t)
{
    jrpc__upctx_t *ctx = t->data;
    ctx_enter(ctx);
    ctx_pump(ctx);
    ctx_leave(ctx);
}

/* A batch auto_batch made was answered after us microseconds: a sample for hold_limit_ns. */
static void hold_sample(jrpc__upctx_t *ctx, uint64_t us)
{
    ctx->hold_rtt_us[ctx->hold_nrtt++ % JRPC__HOLD_SAMPLES] =
        us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    if (ctx->hold_nrtt < JRPC__HOLD_SAMPLES)
        return;
    uint32_t v[JRPC__HOLD_SAMPLES];
    memcpy(v, ctx->hold_rtt_us, sizeof v);
    for (size_t i = 1; i < JRPC__HOLD_SAMPLES; i++) /* 16 numbers: an insertion sort */
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            uint32_t x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    ctx->hold_median_ns = (uint64_t)v[JRPC__HOLD_SAMPLES / 2] * 1000u;
}

static void on_check(uv_check_t *h)
{
    jrpc__upctx_t *ctx = h->data;
    ctx_enter(ctx);
    ctx_pump(ctx);
    ctx_sweep(ctx);
    ctx_check_gen(ctx);
    ctx_leave(ctx);
}

void jrpc__upstream_loop_start(void *loop, unsigned index, void *data)
{
    jrpc_upstream_t *up = data;
    up->stopped[index] = 0; /* a server may run again */
    if (index == 0)
        jrpc__probe_loop_start(up, loop);
}

void jrpc__upstream_loop_stop(void *loop, unsigned index, void *data)
{
    (void)loop;
    jrpc_upstream_t *up = data;
    up->stopped[index] = 1;
    if (index == 0)
        jrpc__probe_loop_stop(up);
    jrpc__upctx_t *next;
    for (jrpc__upctx_t *ctx = up->ctx[index]; ctx != NULL; ctx = next) {
        next = ctx->older; /* ctx_close takes ctx out of the chain */
        if (ctx->closing)
            continue;
        if (ctx->busy)
            ctx->stop_asked = 1;
        else
            ctx_close(ctx);
    }
}

void jrpc__upstream_probe_round(jrpc_upstream_t *up, uv_loop_t *loop, struct jrpc__prober *pr,
                                const char *body, size_t len)
{
    jrpc__upctx_t *ctx = up->ctx[0];
    if (up->stopped[0] ||
        ((ctx == NULL || ctx->retiring ||
          ctx->conf->gen != atomic_load_explicit(&up->gen, memory_order_relaxed)) &&
         (ctx = ctx_new(up, loop, 0)) == NULL))
        return;
    ctx_enter(ctx);
    for (unsigned i = 0; i < ctx->conf->neps; i++) {
        jrpc__endpoint_t *ep = ctx->conf->urls[i].ep;
        if (ep->probing)
            continue; /* the last one has not finished (within probe_timeout) */
        jrpc__chunk_t *ch = calloc(1, sizeof(*ch));
        if (ch == NULL)
            break;
        ch->ctx = ctx;
        ch->ep = i;
        ch->probe = pr;
        jrpc_buf_init(&ch->body);
        jrpc_buf_init(&ch->answer);
        if (jrpc_buf_append(&ch->body, body, len) != 0) {
            jrpc__chunk_free(ch);
            break;
        }
        ep->probing = 1;
        jrpc__chunk_send(ch);
    }
    ctx_drain(ctx);
    ctx_leave(ctx);
}

/* Puts ch on the client's list of chunks in flight. */
static void flying_add(jrpc__chunk_t *ch)
{
    jrpc__upctx_t *ctx = ch->ctx;
    ch->prev = NULL;
    ch->next = ctx->flying;
    if (ctx->flying != NULL)
        ctx->flying->prev = ch;
    ctx->flying = ch;
    ctx->in_flight++;
    JRPC__UPSTAT_ADD(ctx->up->stats.in_flight, 1);
}

/* Takes ch out of the client's list of chunks in flight. */
static void flying_remove(jrpc__chunk_t *ch)
{
    jrpc__upctx_t *ctx = ch->ctx;
    if (ch->prev != NULL)
        ch->prev->next = ch->next;
    else
        ctx->flying = ch->next;
    if (ch->next != NULL)
        ch->next->prev = ch->prev;
    ch->next = ch->prev = NULL;
    ctx->in_flight--;
    atomic_fetch_sub_explicit(&ctx->up->stats.in_flight, 1, memory_order_relaxed);
}

/* Starts one attempt of ch on URL ch->ep: over h1.c for an http:// URL (unless the upstream's
 * transport is curl), over libcurl otherwise. 0, or -1 when it could not start (its calls were
 * answered and ch is freed). h1.c may end the attempt before this returns (a connect refused at
 * once): ch is not touched after a start that went. */
int jrpc__chunk_send(jrpc__chunk_t *ch)
{
    jrpc__upctx_t *ctx = ch->ctx;
    jrpc_upstream_t *up = ctx->up;
    const jrpc__upconf_t *conf = ctx->conf;
    unsigned ep = ch->ep;
    ch->tried |= 1u << ep;
    ch->attempts++;
    ch->too_large = 0;
    ch->answer.len = 0;
    if (ch->stale && jrpc__chunk_build(ch) != 0) {
        jrpc__chunk_fail(ch, JRPC_UPSTREAM_FAULT_CONNECT, "out of memory");
        jrpc__chunk_free(ch);
        return -1;
    }
    ch->sent_ns = uv_hrtime();
    flying_add(ch);
    int arm = ch->probe == NULL && ch->hedge_of == NULL && !ch->hedged;
    if (ch->probe == NULL) { /* probes have counters of their own (probe.c) */
        JRPC__UPSTAT_ADD(up->stats.requests, 1);
        JRPC__UPSTAT_ADD(conf->urls[ep].ep->requests, 1);
        if (ch->attempts > 1)
            JRPC__UPSTAT_ADD(up->stats.retries, 1);
        else
            JRPC__UPSTAT_ADD(up->stats.items, ch->n);
    }
    const char *why = NULL;
    if (conf->transport == JRPC_UPSTREAM_TRANSPORT_AUTO && conf->urls[ep].ep->h1)
        why = jrpc__h1_send(ch) == 0 ? NULL : "out of memory";
    else
        why = jrpc__curl_send(ch);
    if (why != NULL) {
        flying_remove(ch);
        if (ch->probe != NULL)
            jrpc__probe_done(ch, 0, 0);
        jrpc__chunk_fail(ch, JRPC_UPSTREAM_FAULT_CONNECT, why);
        jrpc__chunk_free(ch);
        return -1;
    }
    if (arm)
        jrpc__hedge_arm(ctx);
    return 0;
}

/* Starts the next attempt of ch on the URL jrpc__upstream_pick chooses. */
static void chunk_go(jrpc__chunk_t *ch)
{
    ch->ep = jrpc__upstream_pick(ch->ctx, ch->tried);
    jrpc__chunk_send(ch);
}

/* Cuts ch's attempt in flight without answering its calls: its transfer is removed from curl,
 * or its connection closed; ch leaves the list of chunks in flight and is the caller's. */
void jrpc__chunk_abort(jrpc__chunk_t *ch)
{
    flying_remove(ch);
    jrpc__curl_abort(ch);
    jrpc__h1_abort(ch);
}

static void latency_add(jrpc_upstream_t *up, uint64_t us)
{
    static const uint64_t bounds[JRPC_UPSTREAM_LATENCY_BUCKETS] = JRPC_UPSTREAM_LATENCY_BOUNDS_US;
    size_t i = 0;
    while (us > bounds[i])
        i++;
    JRPC__UPSTAT_ADD(up->stats.latency[i], 1);
    JRPC__UPSTAT_ADD(up->stats.latency_count, 1);
    JRPC__UPSTAT_ADD(up->stats.latency_sum_us, us);
}

void jrpc__timeout_detail(const jrpc__chunk_t *ch, int connecting, char *detail, size_t cap)
{
    unsigned connect = ch->ctx->conf->connect_timeout_ms, timeout = jrpc__chunk_timeout_ms(ch);
    if (connecting && connect != 0 && connect < timeout &&
        (uv_hrtime() - ch->sent_ns) / 1000000u < timeout)
        snprintf(detail, cap, "no connection within %u ms", connect);
    else
        snprintf(detail, cap, "no answer within %u ms", timeout);
}

/* Counts a failed attempt of ch against its URL, which is then passed over (unless the fault
 * was the answer's size, which says nothing of the URL). */
void jrpc__attempt_failed(jrpc__chunk_t *ch, int fault, const char *detail)
{
    JRPC__UPSTAT_ADD(ch->ctx->up->stats.faults[fault], 1);
    if (fault == JRPC_UPSTREAM_FAULT_TOO_LARGE)
        return;
    /* Transport faults say the URL is unwell, not the calls: another URL may answer. */
    JRPC__UPSTAT_ADD(ch->ctx->conf->urls[ch->ep].ep->faults, 1);
    jrpc__upstream_mark_down(ch->ctx, ch->ep, fault, detail);
}

/* One attempt of ch is over, whichever transport carried it (status and fault as
 * jrpc__upstream_attempt_end says): the calls are answered, or the chunk goes to another URL. */
static void attempt_done(jrpc__chunk_t *ch, long status, int fault, const char *detail)
{
    jrpc_upstream_t *up = ch->ctx->up;
    char line[160];
    flying_remove(ch);
    if (ch->probe != NULL) {
        jrpc__probe_done(ch, fault < 0, status);
        jrpc__chunk_free(ch);
        return;
    }
    if ((ch->hedge != NULL || ch->hedge_of != NULL) &&
        (ch = jrpc__hedge_done(ch, status, fault, detail)) == NULL)
        return;
    if (fault < 0) {
        uint64_t us = (uv_hrtime() - ch->sent_ns) / 1000u;
        latency_add(up, us);
        if (ch->gathered)
            hold_sample(ch->ctx, us);
        fault = jrpc__chunk_answer(ch, status);
        if (fault < 0) {
            jrpc__upstream_mark_up(ch->ctx, ch->ep);
            jrpc__chunk_free(ch);
            return;
        }
        snprintf(line, sizeof line, "HTTP status %ld", status);
        detail = line;
    }
    jrpc__attempt_failed(ch, fault, detail);
    if (fault != JRPC_UPSTREAM_FAULT_TOO_LARGE && ch->attempts <= ch->ctx->conf->retries) {
        /* Only for calls someone still waits for. */
        jrpc__chunk_prune(ch);
        if (ch->n == 0)
            jrpc__chunk_free(ch);
        else
            chunk_go(ch);
        return;
    }
    jrpc__chunk_fail(ch, fault, detail);
    jrpc__chunk_free(ch);
}

void jrpc__upstream_attempt_end(jrpc__chunk_t *ch, long status, int fault, const char *detail)
{
    jrpc__upctx_t *ctx = ch->ctx;
    if (ctx->busy) {
        attempt_done(ch, status, fault, detail); /* inside a walk of ctx's, which refills */
        return;
    }
    ctx_enter(ctx);
    attempt_done(ch, status, fault, detail);
    jrpc__upctx_leave(ctx);
}

void jrpc__upctx_enter(jrpc__upctx_t *ctx)
{
    ctx_enter(ctx);
}

void jrpc__upctx_leave(jrpc__upctx_t *ctx)
{
    ctx_drain(ctx);
    ctx_leave(ctx);
}

/* Finishes every transfer curl reports done, refills the in-flight places, and runs curl again
 * at once for what was sent (rather than on its 0 ms timer, a loop iteration later), until
 * nothing more completes. */
static void ctx_drain(jrpc__upctx_t *ctx)
{
    for (;;) {
        jrpc__curl_collect(ctx);
        ctx_start_waiting(ctx);
        if (!ctx->kick)
            return;
        ctx->kick = 0;
        jrpc__curl_kick(ctx);
    }
}
