/* SPDX-License-Identifier: MIT */
/* curl.c — client.c's libcurl transport: a multi handle per client driven by the io loop
 * (curl_multi_socket_action from uv_poll and uv_timer callbacks, no thread per request), whose
 * connection cache is the loop's keep-alive pool to the upstream. It carries https:// URLs (TLS,
 * HTTP/2), URLs with credentials, and every URL of an upstream whose transport is curl; h1.c
 * carries the rest. Attempts end through jrpc__upstream_attempt_end, as h1.c's do. */
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

static void on_poll(uv_poll_t *h, int status, int events);

/* ---- libcurl ↔ libuv ------------------------------------------------------------------------- */

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

/* Runs curl on socket s (or its timers, for CURL_SOCKET_TIMEOUT), then finishes what completed. */
static void ctx_run(jrpc__upctx_t *ctx, curl_socket_t s, int flags)
{
    int running;
    jrpc__upctx_enter(ctx);
    curl_multi_socket_action(ctx->multi, s, flags, &running);
    jrpc__upctx_leave(ctx);
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

int jrpc__curl_open(jrpc__upctx_t *ctx)
{
    ctx->multi = curl_multi_init();
    if (ctx->multi == NULL)
        return JRPC_ENOMEM;
    curl_multi_setopt(ctx->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(ctx->multi, CURLMOPT_SOCKETDATA, ctx);
    curl_multi_setopt(ctx->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(ctx->multi, CURLMOPT_TIMERDATA, ctx);
    /* Keep as many idle connections as requests may be in flight: HTTP/1.1 needs one each, and
     * a smaller cache would close and reopen connections under steady load. */
    curl_multi_setopt(ctx->multi, CURLMOPT_MAXCONNECTS, (long)(ctx->conf->loop_in_flight + 1));
    curl_multi_setopt(ctx->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    return 0;
}

void jrpc__curl_close(jrpc__upctx_t *ctx)
{
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
}

void jrpc__curl_free_detached(jrpc__upctx_t *ctx)
{
    if (ctx->multi != NULL) {
        /* The loop and its handles are gone: curl must not call back into them. */
        curl_multi_setopt(ctx->multi, CURLMOPT_SOCKETFUNCTION, NULL);
        curl_multi_setopt(ctx->multi, CURLMOPT_TIMERFUNCTION, NULL);
        curl_multi_cleanup(ctx->multi);
    }
    for (size_t i = 0; i < ctx->cap_socks; i++)
        free(ctx->socks[i]);
}

void jrpc__curl_release(jrpc__upctx_t *ctx)
{
    for (size_t i = 0; i < ctx->nspare; i++)
        curl_easy_cleanup(ctx->spare[i]);
    free(ctx->spare);
    free(ctx->socks);
}

/* ---- Transfers ------------------------------------------------------------------------------- */

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

const char *jrpc__curl_send(jrpc__chunk_t *ch)
{
    jrpc__upctx_t *ctx = ch->ctx;
    const jrpc__endpoint_t *ep = ctx->conf->urls[ch->ep].ep;
    ch->easy = easy_get(ctx);
    if (ch->easy == NULL)
        return "out of memory";
    curl_easy_setopt(ch->easy, CURLOPT_URL, ep->url);
    /* Over TLS a new request waits for a connection that may multiplex (HTTP/2) rather than
     * opening another one. Over plain HTTP there is no HTTP/2 to wait for, and curl would wait
     * for the first answer on the host to learn that: requests went out one at a time until a
     * slow node answered its first. */
    curl_easy_setopt(ch->easy, CURLOPT_PIPEWAIT, (long)ep->tls);
    curl_easy_setopt(ch->easy, CURLOPT_POSTFIELDS, ch->body.ptr);
    curl_easy_setopt(ch->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)ch->body.len);
    curl_easy_setopt(ch->easy, CURLOPT_WRITEDATA, ch);
    curl_easy_setopt(ch->easy, CURLOPT_PRIVATE, ch);
    curl_easy_setopt(ch->easy, CURLOPT_TIMEOUT_MS, (long)jrpc__chunk_timeout_ms(ch));
    if (curl_multi_add_handle(ctx->multi, ch->easy) != CURLM_OK) {
        easy_put(ctx, ch->easy);
        ch->easy = NULL;
        return "cannot start a request";
    }
    ctx->kick = 1;
    return NULL;
}

void jrpc__curl_abort(jrpc__chunk_t *ch)
{
    if (ch->easy != NULL) {
        curl_multi_remove_handle(ch->ctx->multi, ch->easy);
        easy_put(ch->ctx, ch->easy);
        ch->easy = NULL;
    }
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
        /* curl reports both timeouts alike: the time tells which fired. */
        jrpc__timeout_detail(ch, 1, detail, cap);
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

void jrpc__curl_collect(jrpc__upctx_t *ctx)
{
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
        ch->easy = NULL;
        long status = 0;
        int fault = -1;
        char detail[160] = "";
        if (rc == CURLE_OK)
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        else
            fault = classify(ch, e, rc, detail, sizeof detail);
        easy_put(ctx, e);
        jrpc__upstream_attempt_end(ch, status, fault, detail);
    }
}

void jrpc__curl_kick(jrpc__upctx_t *ctx)
{
    int running;
    curl_multi_socket_action(ctx->multi, CURL_SOCKET_TIMEOUT, 0, &running);
}
