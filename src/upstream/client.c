/* SPDX-License-Identifier: MIT */
/* client.c — the gateway's HTTP client on one io loop: a libcurl multi handle driven by the loop
 * (curl_multi_socket_action from uv_poll and uv_timer callbacks, no thread per request), whose
 * connection cache is the loop's keep-alive pool to the upstream. Calls wait in the loop's
 * pending lists until the check phase of the same loop iteration, so every item of a client
 * batch (the engine dispatches them in one pump) is there together; they are then cut into
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
#include <unistd.h>

/* A socket of curl's, watched with a poll handle that lives as long as the socket: curl stops
 * watching a connection each time it goes back to the cache (CURL_POLL_REMOVE) and watches it
 * again when it is reused, and a handle made and closed for each request would cost a malloc, a
 * close callback and two epoll_ctl calls per upstream request. So the handle stays, keeps
 * watching for readability while the connection is idle (an idle socket only turns readable when
 * the upstream closes it, and then the watch is dropped), and goes only when curl closes the
 * socket (CURLOPT_CLOSESOCKETFUNCTION), before the fd can be reused. */
typedef struct jrpc__upsock {
    uv_poll_t poll; /* first: the handle pointer is the struct's */
    curl_socket_t fd;
    jrpc__upctx_t *ctx;
    int events;     /* UV_READABLE | UV_WRITABLE watched now; 0: stopped */
    uint8_t wanted; /* curl watches it (from its first POLL_* to its REMOVE) */
} jrpc__upsock_t;

/* How often the wait queue is swept of cancelled calls (at most; a sweep runs in the check phase
 * of a loop iteration). A client that left, or a deadline that passed, lets go of its calls and
 * their request bodies within about this long instead of when their chunk reaches the head of
 * the queue, while a sweep of max_queue calls costs one atomic load each. */
#define SWEEP_MS 100

static void ctx_drain(jrpc__upctx_t *ctx);
static void ctx_close(jrpc__upctx_t *ctx);
static void queue_call(jrpc__upctx_t *ctx, jrpc_call_t *call);
static void chunk_send(jrpc__chunk_t *ch);
static void on_poll(uv_poll_t *h, int status, int events);
static void easy_put(jrpc__upctx_t *ctx, CURL *e);

/* ---- libcurl ↔ libuv ------------------------------------------------------------------------- */

static void sock_closed(uv_handle_t *h)
{
    free(h);
}

/* Watches `events` on s, touching epoll only when they change (uv_poll_start re-arms the fd). */
static int sock_watch(jrpc__upsock_t *s, int events)
{
    if (s->events == events)
        return 0;
    s->events = events;
    if (events == 0)
        return uv_poll_stop(&s->poll);
    return uv_poll_start(&s->poll, events, on_poll);
}

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

static void ctx_leave(jrpc__upctx_t *ctx)
{
    ctx->busy = 0;
    if (!ctx->closing && (ctx->stop_asked || (ctx->retiring && ctx_idle(ctx))))
        ctx_close(ctx);
}

/* Runs curl on socket s (or its timers, for CURL_SOCKET_TIMEOUT), then finishes what completed. */
static void ctx_run(jrpc__upctx_t *ctx, curl_socket_t s, int flags)
{
    int running;
    ctx_enter(ctx);
    curl_multi_socket_action(ctx->multi, s, flags, &running);
    ctx_drain(ctx);
    ctx_leave(ctx);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    jrpc__upsock_t *s = (jrpc__upsock_t *)h;
    if (!s->wanted) {
        /* An idle connection was closed by the upstream (or sent something unasked): curl
         * finds out when it next tries to reuse it; stop watching so the loop does not spin. */
        sock_watch(s, 0);
        return;
    }
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else
        flags = ((events & UV_READABLE) ? CURL_CSELECT_IN : 0) |
                ((events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0);
    ctx_run(s->ctx, s->fd, flags);
}

static jrpc__upsock_t *sock_find(jrpc__upctx_t *ctx, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < ctx->cap_socks ? ctx->socks[fd] : NULL;
}

static jrpc__upsock_t *sock_new(jrpc__upctx_t *ctx, curl_socket_t fd)
{
    if ((size_t)fd >= ctx->cap_socks) {
        size_t ncap = ctx->cap_socks ? ctx->cap_socks : 64;
        while (ncap <= (size_t)fd)
            ncap *= 2;
        jrpc__upsock_t **grown = realloc(ctx->socks, ncap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        memset(grown + ctx->cap_socks, 0, (ncap - ctx->cap_socks) * sizeof(*grown));
        ctx->socks = grown;
        ctx->cap_socks = ncap;
    }
    jrpc__upsock_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    if (uv_poll_init_socket(ctx->loop, &s->poll, fd) != 0) {
        free(s);
        return NULL;
    }
    s->fd = fd;
    s->ctx = ctx;
    ctx->socks[fd] = s;
    return s;
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    jrpc__upctx_t *ctx = userp;
    jrpc__upsock_t *s = socketp ? socketp : sock_find(ctx, fd);
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            s->wanted = 0;
            sock_watch(s, s->events & UV_READABLE); /* writable would fire without end */
        }
        return 0;
    }
    if (s == NULL && (s = sock_new(ctx, fd)) == NULL)
        return -1; /* curl fails the transfer */
    s->wanted = 1;
    curl_multi_assign(ctx->multi, fd, s);
    int events =
        ((what & CURL_POLL_IN) ? UV_READABLE : 0) | ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
    return sock_watch(s, events) == 0 ? 0 : -1;
}

/* curl closes one of its sockets: the poll handle goes first, while the fd is still ours. */
static int on_curl_close(void *clientp, curl_socket_t fd)
{
    jrpc__upctx_t *ctx = clientp;
    jrpc__upsock_t *s = sock_find(ctx, fd);
    if (s != NULL) {
        ctx->socks[fd] = NULL;
        if (ctx->detached) {
            free(s); /* the loop is gone; the server closed the handle already */
        } else {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, sock_closed);
        }
    }
    return close(fd);
}

static void on_timer(uv_timer_t *t)
{
    ctx_run(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    jrpc__upctx_t *ctx = userp;
    if (ctx->closing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&ctx->timer);
    else
        uv_timer_start(&ctx->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- The per-loop client --------------------------------------------------------------------- */

static void on_check(uv_check_t *h);

static void on_idle(uv_idle_t *h)
{
    (void)h; /* only there so that the poll phase does not block while calls are pending */
}

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
    ctx->multi = curl_multi_init();
    if (ctx->multi == NULL || uv_async_init(loop, &ctx->wake, on_wake) != 0) {
        if (ctx->multi != NULL)
            curl_multi_cleanup(ctx->multi);
        jrpc__upconf_unref(ctx->conf);
        free(ctx);
        return NULL;
    }
    curl_multi_setopt(ctx->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(ctx->multi, CURLMOPT_SOCKETDATA, ctx);
    curl_multi_setopt(ctx->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(ctx->multi, CURLMOPT_TIMERDATA, ctx);
    /* Keep as many idle connections as requests may be in flight: HTTP/1.1 needs one each, and
     * a smaller cache would close and reopen connections under steady load. */
    curl_multi_setopt(ctx->multi, CURLMOPT_MAXCONNECTS, (long)(ctx->conf->loop_in_flight + 1));
    curl_multi_setopt(ctx->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    uv_timer_init(loop, &ctx->timer);
    uv_check_init(loop, &ctx->check);
    uv_idle_init(loop, &ctx->idle);
    ctx->timer.data = ctx->check.data = ctx->idle.data = ctx->wake.data = ctx;
    ctx->open_handles = 4;
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
    for (size_t i = 0; i < ctx->nspare; i++)
        curl_easy_cleanup(ctx->spare[i]);
    free(ctx->spare);
    free(ctx->socks);
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
    jrpc__chunk_t *flying = ctx->flying, *waiting = ctx->wait_head;
    ctx->flying = ctx->wait_head = ctx->wait_tail = NULL;
    while (flying != NULL) {
        jrpc__chunk_t *ch = flying;
        flying = ch->next;
        curl_multi_remove_handle(ctx->multi, ch->easy);
        easy_put(ctx, ch->easy);
        ch->easy = NULL;
        ctx->in_flight--;
        atomic_fetch_sub_explicit(&up->stats.in_flight, 1, memory_order_relaxed);
        chunk_shutdown(ch);
    }
    while (waiting != NULL) {
        jrpc__chunk_t *ch = waiting;
        waiting = ch->next;
        atomic_fetch_sub_explicit(&up->stats.queued, 1, memory_order_relaxed);
        queue_leave(up, ch->n);
        chunk_shutdown(ch);
    }
    jrpc_call_t **lists[2] = {ctx->batched, ctx->singles};
    size_t counts[2] = {ctx->nbatched, ctx->nsingles};
    ctx->nbatched = ctx->nsingles = 0;
    for (int l = 0; l < 2; l++) {
        queue_leave(up, counts[l]);
        for (size_t i = 0; i < counts[l]; i++)
            reply_shutdown_all(up, lists[l][i], jrpc__share_take(ctx, lists[l][i]));
    }
    /* Cleanup closes the cached connections through on_curl_close, which closes their polls;
     * a watcher left after it would keep the loop from ending, so none is left. */
    curl_multi_cleanup(ctx->multi);
    ctx->multi = NULL;
    for (size_t i = 0; i < ctx->cap_socks; i++) {
        if (ctx->socks[i] != NULL) {
            uv_close((uv_handle_t *)&ctx->socks[i]->poll, sock_closed);
            ctx->socks[i] = NULL;
        }
    }
    uv_close((uv_handle_t *)&ctx->timer, ctx_handle_closed);
    uv_close((uv_handle_t *)&ctx->check, ctx_handle_closed);
    uv_close((uv_handle_t *)&ctx->idle, ctx_handle_closed);
    uv_close((uv_handle_t *)&ctx->wake, ctx_handle_closed);
}

void jrpc__upctx_free_detached(jrpc__upctx_t *ctx)
{
    ctx->detached = 1;
    if (ctx->multi != NULL) {
        /* The loop and its handles are gone: curl must not call back into them. */
        curl_multi_setopt(ctx->multi, CURLMOPT_SOCKETFUNCTION, NULL);
        curl_multi_setopt(ctx->multi, CURLMOPT_TIMERFUNCTION, NULL);
        curl_multi_cleanup(ctx->multi);
    }
    for (size_t i = 0; i < ctx->cap_socks; i++)
        free(ctx->socks[i]);
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

/* Makes calls[0..n) one chunk at the end of the wait queue; without memory for it, each call is
 * answered -32603 at once. */
static void enqueue(jrpc__upctx_t *ctx, jrpc_call_t *const *calls, size_t n, int is_batch)
{
    jrpc__chunk_t *ch = jrpc__chunk_new(ctx, calls, n, is_batch);
    if (ch == NULL) {
        queue_leave(ctx->up, n);
        for (size_t i = 0; i < n; i++)
            jrpc__share_reply_error(jrpc__share_take(ctx, calls[i]), calls[i],
                                    JRPC_CODE_INTERNAL_ERROR, "Internal error",
                                    "\"out of memory\"");
        return;
    }
    if (ctx->wait_tail != NULL)
        ctx->wait_tail->next = ch;
    else
        ctx->wait_head = ch;
    ctx->wait_tail = ch;
    JRPC__UPSTAT_ADD(ctx->up->stats.queued, 1);
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
            chunk_send(ch);
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

/* Cuts the pending calls into chunks and starts sending. A client batch of n items becomes
 * ceil(n / max_batch) chunks of nearly equal size (25 with max_batch 10: 9, 8, 8), so the last
 * chunk is not a small straggler that waits for a place of its own. */
static void ctx_flush(jrpc__upctx_t *ctx)
{
    uv_idle_stop(&ctx->idle);
    for (size_t i = 0; i < ctx->nsingles; i++)
        enqueue(ctx, &ctx->singles[i], 1, 0);
    ctx->nsingles = 0;
    size_t n = ctx->nbatched, max = ctx->conf->max_batch;
    if (n != 0) {
        size_t k = (n + max - 1) / max, off = 0;
        for (size_t j = 0; j < k; j++) {
            size_t size = n / k + (j < n % k);
            /* A call sent alone that auto_batch found no company for still goes alone. */
            enqueue(ctx, &ctx->batched[off], size,
                    size > 1 || jrpc_call_in_batch(ctx->batched[off]));
            off += size;
        }
    }
    ctx->nbatched = 0;
    ctx_drain(ctx);
}

static void on_check(uv_check_t *h)
{
    jrpc__upctx_t *ctx = h->data;
    ctx_enter(ctx);
    /* auto_batch with a batch_wait: calls keep gathering (the idle handle keeps the loop from
     * blocking) until the first has waited that long or a batch is full. */
    const jrpc__upconf_t *conf = ctx->conf;
    int gather = conf->auto_batch && conf->batch_wait_ns != 0 && ctx->nsingles == 0 &&
                 ctx->nbatched != 0 && ctx->nbatched < conf->max_batch && !ctx->retiring &&
                 uv_hrtime() - ctx->auto_first_ns < conf->batch_wait_ns;
    if ((ctx->nbatched != 0 || ctx->nsingles != 0) && !gather)
        ctx_flush(ctx);
    ctx_sweep(ctx);
    ctx_check_gen(ctx);
    ctx_leave(ctx);
}

void jrpc__upstream_loop_start(void *loop, unsigned index, void *data)
{
    (void)loop;
    jrpc_upstream_t *up = data;
    up->stopped[index] = 0; /* a server may run again */
}

void jrpc__upstream_loop_stop(void *loop, unsigned index, void *data)
{
    (void)loop;
    jrpc_upstream_t *up = data;
    up->stopped[index] = 1;
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

/* ---- Sending and finishing ------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *userp)
{
    jrpc__chunk_t *ch = userp;
    size_t n = size * nmemb;
    if (ch->answer.len + n > ch->ctx->conf->max_answer) {
        ch->too_large = 1;
        return 0; /* curl aborts with CURLE_WRITE_ERROR */
    }
    return jrpc_buf_append(&ch->answer, p, n) == 0 ? n : 0;
}

/* An easy handle with the upstream's fixed options: a spare one, else a new one (NULL when out of
 * memory). The per-attempt options are chunk_send's. */
static CURL *easy_get(jrpc__upctx_t *ctx)
{
    if (ctx->nspare > 0)
        return ctx->spare[--ctx->nspare];
    const jrpc__upconf_t *up = ctx->conf;
    CURL *e = curl_easy_init();
    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, up->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)up->timeout_ms);
    if (up->connect_timeout_ms != 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)up->connect_timeout_ms);
    /* HTTP/2 when TLS negotiates it (ALPN), HTTP/1.1 keep-alive otherwise (CURLOPT_PIPEWAIT is
     * set per attempt). */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Not the environment's http_proxy: a daemon's upstreams are named in its config only. */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_curl_close);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, ctx);
    if (up->ca_file != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, up->ca_file);
    return e;
}

/* Keeps e (out of the multi) for reuse, or cleans it up when the spare list cannot grow. */
static void easy_put(jrpc__upctx_t *ctx, CURL *e)
{
    if (ctx->nspare == ctx->cap_spare) {
        size_t ncap = ctx->cap_spare ? ctx->cap_spare * 2 : 8;
        CURL **grown = realloc(ctx->spare, ncap * sizeof(*grown));
        if (grown == NULL) {
            curl_easy_cleanup(e);
            return;
        }
        ctx->spare = grown;
        ctx->cap_spare = ncap;
    }
    ctx->spare[ctx->nspare++] = e;
}

/* Starts one attempt of ch on the URL jrpc__upstream_pick chooses. */
static void chunk_send(jrpc__chunk_t *ch)
{
    jrpc__upctx_t *ctx = ch->ctx;
    jrpc_upstream_t *up = ctx->up;
    const jrpc__upconf_t *conf = ctx->conf;
    unsigned ep = jrpc__upstream_pick(ctx, ch->tried);
    ch->ep = ep;
    ch->tried |= 1u << ep;
    ch->attempts++;
    ch->too_large = 0;
    ch->answer.len = 0;
    const char *why = "out of memory";
    if (ch->stale && jrpc__chunk_build(ch) != 0)
        goto fail;
    ch->easy = easy_get(ctx);
    if (ch->easy == NULL)
        goto fail;
    curl_easy_setopt(ch->easy, CURLOPT_URL, conf->urls[ep].ep->url);
    /* Over TLS a new request waits for a connection that may multiplex (HTTP/2) rather than
     * opening another one. Over plain HTTP there is no HTTP/2 to wait for, and curl would wait
     * for the first answer on the host to learn that: requests went out one at a time until a
     * slow node answered its first. */
    curl_easy_setopt(ch->easy, CURLOPT_PIPEWAIT, (long)conf->urls[ep].ep->tls);
    curl_easy_setopt(ch->easy, CURLOPT_POSTFIELDS, ch->body.ptr);
    curl_easy_setopt(ch->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)ch->body.len);
    curl_easy_setopt(ch->easy, CURLOPT_WRITEDATA, ch);
    curl_easy_setopt(ch->easy, CURLOPT_PRIVATE, ch);
    ch->sent_ns = uv_hrtime();
    if (curl_multi_add_handle(ctx->multi, ch->easy) != CURLM_OK) {
        easy_put(ctx, ch->easy);
        ch->easy = NULL;
        why = "cannot start a request";
        goto fail;
    }
    ch->prev = NULL;
    ch->next = ctx->flying;
    if (ctx->flying != NULL)
        ctx->flying->prev = ch;
    ctx->flying = ch;
    ctx->in_flight++;
    ctx->kick = 1;
    JRPC__UPSTAT_ADD(up->stats.in_flight, 1);
    JRPC__UPSTAT_ADD(up->stats.requests, 1);
    JRPC__UPSTAT_ADD(conf->urls[ep].ep->requests, 1);
    if (ch->attempts > 1)
        JRPC__UPSTAT_ADD(up->stats.retries, 1);
    else
        JRPC__UPSTAT_ADD(up->stats.items, ch->n);
    return;
fail:
    jrpc__chunk_fail(ch, JRPC_UPSTREAM_FAULT_CONNECT, why);
    jrpc__chunk_free(ch);
}

/* The fault a failed transfer shows, and a line on it that names no host (it reaches clients). */
static int classify(jrpc__chunk_t *ch, CURL *e, CURLcode rc, char *detail, size_t cap)
{
    long os_errno = 0;
    curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
    const char *why = os_errno != 0 ? uv_strerror((int)-os_errno) : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        snprintf(detail, cap, "%s", why);
        return JRPC_UPSTREAM_FAULT_CONNECT;
    case CURLE_OPERATION_TIMEDOUT: {
        /* curl reports both timeouts alike; the one that fired is the one that fits the time. */
        const jrpc__upconf_t *up = ch->ctx->conf;
        uint64_t ms = (uv_hrtime() - ch->sent_ns) / 1000000u;
        if (up->connect_timeout_ms != 0 && up->connect_timeout_ms < up->timeout_ms &&
            ms < up->timeout_ms)
            snprintf(detail, cap, "no connection within %u ms", up->connect_timeout_ms);
        else
            snprintf(detail, cap, "no answer within %u ms", up->timeout_ms);
        return JRPC_UPSTREAM_FAULT_TIMEOUT;
    }
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        snprintf(detail, cap, "%s", curl_easy_strerror(rc));
        return JRPC_UPSTREAM_FAULT_TLS;
    case CURLE_WRITE_ERROR:
        if (ch->too_large) {
            snprintf(detail, cap, "answer larger than %zu bytes", ch->ctx->conf->max_answer);
            return JRPC_UPSTREAM_FAULT_TOO_LARGE;
        }
        snprintf(detail, cap, "out of memory");
        return JRPC_UPSTREAM_FAULT_TOO_LARGE;
    default:
        snprintf(detail, cap, "%s", why);
        return JRPC_UPSTREAM_FAULT_RESET;
    }
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

/* One attempt of ch is over: curl result rc on easy handle e (already out of the multi). */
static void chunk_done(jrpc__chunk_t *ch, CURL *e, CURLcode rc)
{
    jrpc_upstream_t *up = ch->ctx->up;
    char detail[160];
    int fault;
    ch->easy = NULL;
    if (rc == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        latency_add(up, (uv_hrtime() - ch->sent_ns) / 1000u);
        fault = jrpc__chunk_answer(ch, status);
        if (fault < 0) {
            jrpc__upstream_mark_up(ch->ctx, ch->ep);
            jrpc__chunk_free(ch);
            return;
        }
        snprintf(detail, sizeof detail, "HTTP status %ld", status);
    } else {
        fault = classify(ch, e, rc, detail, sizeof detail);
    }
    JRPC__UPSTAT_ADD(up->stats.faults[fault], 1);
    if (fault != JRPC_UPSTREAM_FAULT_TOO_LARGE) {
        /* Transport faults say the URL is unwell, not the calls: another URL may answer. */
        JRPC__UPSTAT_ADD(ch->ctx->conf->urls[ch->ep].ep->faults, 1);
        jrpc__upstream_mark_down(ch->ctx, ch->ep, fault, detail);
        if (ch->attempts <= ch->ctx->conf->retries) {
            /* Only for calls someone still waits for. */
            jrpc__chunk_prune(ch);
            if (ch->n == 0)
                jrpc__chunk_free(ch);
            else
                chunk_send(ch);
            return;
        }
    }
    jrpc__chunk_fail(ch, fault, detail);
    jrpc__chunk_free(ch);
}

/* Finishes every transfer curl reports done, refills the in-flight places, and runs curl again
 * at once for what was sent (rather than on its 0 ms timer, a loop iteration later), until
 * nothing more completes. */
static void ctx_drain(jrpc__upctx_t *ctx)
{
    for (;;) {
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(ctx->multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            CURLcode rc = msg->data.result; /* msg is gone once the handle is removed */
            char *priv = NULL;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
            curl_multi_remove_handle(ctx->multi, e);
            jrpc__chunk_t *ch = (jrpc__chunk_t *)(void *)priv;
            if (ch->prev != NULL)
                ch->prev->next = ch->next;
            else
                ctx->flying = ch->next;
            if (ch->next != NULL)
                ch->next->prev = ch->prev;
            ch->next = ch->prev = NULL;
            ctx->in_flight--;
            atomic_fetch_sub_explicit(&ctx->up->stats.in_flight, 1, memory_order_relaxed);
            chunk_done(ch, e, rc);
            easy_put(ctx, e);
        }
        ctx_start_waiting(ctx);
        if (!ctx->kick)
            return;
        ctx->kick = 0;
        int running;
        curl_multi_socket_action(ctx->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
}
