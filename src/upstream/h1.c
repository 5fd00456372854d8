/* SPDX-License-Identifier: MIT */
/* h1.c — the gateway's own HTTP/1.1 client for http:// URLs, on libuv and the http-parser the
 * server side already links: a bounded pool of keep-alive connections per io loop and URL, each
 * request written with one writev (head and body), the answer parsed as it arrives (Content-Length,
 * chunked, or up to the close) and cut at max_answer. libcurl spent about two thirds of the
 * gateway's CPU per forwarded call (allocations per transfer, two poll() calls per request, its
 * multi bookkeeping); this path does one write, one read and one parse
 * (docs/gateway.md#transports). Every attempt ends through jrpc__upstream_attempt_end, as curl's
 * do, so retries, failover, metrics and logs do not tell the transports apart. */
#include "../util/digits.h"
#include "../util/timer.h"
#include "h1answer.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a connection may sit idle in the pool. Below the keep-alive timeouts of nginx (75 s)
 * and geth (120 s), so those upstreams seldom close one just as a request goes out on it; one
 * that does (node's http server closes after 5 s) costs a retry on a fresh connection, no fault. */
#define H1_IDLE_MS 50000

/* The loop's read buffer: what one read may take; an answer longer than this comes in pieces. */
#define H1_READ_BUF 65536

/* The decimal digits of a body length and the blank line after the head. */
#define H1_LENGTH_ROOM 32

enum { CONN_RESOLVING, CONN_CONNECTING, CONN_SENT, CONN_IDLE, CONN_CLOSING };

typedef struct jrpc__h1pool jrpc__h1pool_t;

/* One connection to one URL. While an attempt is on it, ch points at the chunk and ch->h1 back. */
typedef struct jrpc__h1conn {
    uv_tcp_t tcp;              /* the socket */
    uv_timer_t timer;          /* connect, answer or idle timeout, by state (h1_due) */
    uint64_t due;              /* loop time (ms) the current timeout ends at */
    uint64_t timer_due;        /* when the timer is set to fire; 0: not set */
    uv_connect_t connect;      /* CONN_CONNECTING */
    uv_write_t write;          /* the request (head and body in one writev) */
    uv_getaddrinfo_t gai;      /* CONN_RESOLVING: a host name to look up */
    jrpc__h1answer_t answer;   /* the answer being read (h1answer.c) */
    jrpc__h1pool_t *pool;      /* its URL's pool; never touched once CONN_CLOSING */
    jrpc__chunk_t *ch;         /* the attempt on it, or NULL */
    struct jrpc__h1conn *prev; /* in pool->idle while CONN_IDLE */
    struct jrpc__h1conn *next; /* likewise */
    char *head;                /* pool->head, then the length and the blank line */
    struct addrinfo *ai;       /* a host name's addresses (owned) until connected */
    struct addrinfo *ai_at;    /* the one being tried */
    unsigned holds;            /* handles not yet closed, and a lookup not yet back */
    uint8_t state;             /* CONN_* */
    uint8_t reused;            /* it answered before: its first failure may be a close */
    uint8_t writing;           /* the write of the current request has not called back */
} jrpc__h1conn_t;

/* The connections of one loop's client to one URL. */
struct jrpc__h1pool {
    jrpc__h1_t *h1;       /* owner */
    unsigned ep;          /* the URL's index in the client's conf */
    jrpc__h1conn_t *idle; /* keep-alive connections, most recently used first */
    unsigned nidle;       /* how many: at most the loop's share of max_in_flight */
    char *head;           /* "POST … HTTP/1.1\r\nHost: …\r\n<headers>Content-Length: " */
    size_t head_len;      /* its length */
};

/* h1.c's part of a client (ctx->h1). */
struct jrpc__h1 {
    jrpc__upctx_t *ctx;
    jrpc__h1pool_t *pools[JRPC_UPSTREAM_MAX_URLS]; /* per URL, made on first use */
    char rbuf[H1_READ_BUF]; /* every read of the loop's connections (consumed in the callback) */
};

static void conn_open(jrpc__h1pool_t *pool, jrpc__chunk_t *ch);

/* ---- The request head ------------------------------------------------------------------------ */

/* 1 when the header line h is "Name:" with nothing after it: curl's way to say "do not send
 * Name", which the configured list uses for Expect. */
static int h1_header_empty(const char *h)
{
    const char *colon = strchr(h, ':');
    if (colon == NULL)
        return 1;
    for (const char *p = colon + 1; *p != '\0'; p++)
        if (*p != ' ' && *p != '\t')
            return 0;
    return 1;
}

/* Makes the head every request on ep shares, up to the value of Content-Length. */
static int h1_head_build(jrpc__h1pool_t *pool, const jrpc__upconf_t *conf)
{
    const jrpc__endpoint_t *ep = conf->urls[pool->ep].ep;
    jrpc_buf_t b;
    jrpc_buf_init(&b);
    jrpc_buf_appendz(&b, "POST ");
    jrpc_buf_appendz(&b, ep->h1_target);
    jrpc_buf_appendz(&b, " HTTP/1.1\r\n");
    int own_host = 0;
    for (const struct curl_slist *l = conf->headers; l != NULL; l = l->next)
        if (strncasecmp(l->data, "host:", 5) == 0)
            own_host = 1;
    if (!own_host) {
        jrpc_buf_appendz(&b, "Host: ");
        jrpc_buf_appendz(&b, ep->h1_authority);
        jrpc_buf_appendz(&b, "\r\n");
    }
    for (const struct curl_slist *l = conf->headers; l != NULL; l = l->next) {
        if (h1_header_empty(l->data) || strncasecmp(l->data, "content-length:", 15) == 0)
            continue;
        jrpc_buf_appendz(&b, l->data);
        jrpc_buf_appendz(&b, "\r\n");
    }
    jrpc_buf_appendz(&b, "Content-Length: ");
    if (b.err) {
        jrpc_buf_free(&b);
        return JRPC_ENOMEM;
    }
    pool->head = b.ptr;
    pool->head_len = b.len;
    return 0;
}

static jrpc__h1pool_t *h1_pool_get(jrpc__upctx_t *ctx, unsigned ep)
{
    if (ctx->h1 == NULL) {
        if ((ctx->h1 = calloc(1, sizeof(*ctx->h1))) == NULL)
            return NULL;
        ctx->h1->ctx = ctx;
    }
    jrpc__h1pool_t *pool = ctx->h1->pools[ep];
    if (pool != NULL)
        return pool;
    if ((pool = calloc(1, sizeof(*pool))) == NULL)
        return NULL;
    pool->h1 = ctx->h1;
    pool->ep = ep;
    if (h1_head_build(pool, ctx->conf) != 0) {
        free(pool);
        return NULL;
    }
    ctx->h1->pools[ep] = pool;
    return pool;
}

/* ---- Connections ----------------------------------------------------------------------------- */

static void conn_release(jrpc__h1conn_t *c)
{
    if (--c->holds == 0) {
        uv_freeaddrinfo(c->ai);
        free(c->head);
        free(c);
    }
}

static void conn_handle_closed(uv_handle_t *h)
{
    conn_release(h->data);
}

static void h1_idle_remove(jrpc__h1conn_t *c)
{
    jrpc__h1pool_t *pool = c->pool;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        pool->idle = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    pool->nidle--;
}

/* Closes c; its attempt (if any) is the caller's. */
static void conn_close(jrpc__h1conn_t *c)
{
    if (c->state == CONN_CLOSING)
        return;
    if (c->state == CONN_IDLE)
        h1_idle_remove(c);
    if (c->ch != NULL) {
        c->ch->h1 = NULL;
        c->ch = NULL;
    }
    c->state = CONN_CLOSING;
    c->pool = NULL;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

/* The attempt on c is over: c is closed (fault ≥ 0 or !keep) or goes back to its pool, then the
 * client finishes the chunk. */
static void conn_end(jrpc__h1conn_t *c, long status, int fault, const char *detail, int keep);

static void h1_on_attempt_timeout(jrpc__h1conn_t *c)
{
    char detail[80];
    jrpc__timeout_detail(c->ch, c->state != CONN_SENT, detail, sizeof detail);
    conn_end(c, 0, JRPC_UPSTREAM_FAULT_TIMEOUT, detail, 0);
}

static void h1_on_timer(uv_timer_t *t);

/* The connection's timeout now ends `ms` from now (util/timer.h: the timer moves only to a
 * sooner end; a kept-alive connection's idle and attempt timeouts alternate request after
 * request). */
static void h1_due(jrpc__h1conn_t *c, uint64_t ms)
{
    c->due = uv_now(c->timer.loop) + ms;
    jrpc__timer_at(&c->timer, &c->timer_due, c->due, h1_on_timer);
}

static void h1_on_timer(uv_timer_t *t)
{
    jrpc__h1conn_t *c = t->data;
    if (!jrpc__timer_fired(t, &c->timer_due, c->due, h1_on_timer))
        return;
    if (c->state == CONN_IDLE)
        conn_close(c);
    else
        h1_on_attempt_timeout(c);
}

/* Arms the timer for what is left of the attempt's timeout (connecting: of its connect timeout,
 * when that is shorter). */
static void h1_timer_arm(jrpc__h1conn_t *c)
{
    const jrpc__upconf_t *conf = c->pool->h1->ctx->conf;
    uint64_t spent = (uv_hrtime() - c->ch->sent_ns) / 1000000u;
    uint64_t limit = jrpc__chunk_timeout_ms(c->ch);
    if (c->state != CONN_SENT && conf->connect_timeout_ms != 0 && conf->connect_timeout_ms < limit)
        limit = conf->connect_timeout_ms;
    h1_due(c, limit > spent ? limit - spent : 1);
}

static void h1_on_written(uv_write_t *w, int status)
{
    jrpc__h1conn_t *c = w->data;
    c->writing = 0;
    if (status == 0 || c->state != CONN_SENT)
        return; /* cancelled by a close, or done */
    char detail[80];
    snprintf(detail, sizeof detail, "%s", uv_strerror(status));
    conn_end(c, 0, JRPC_UPSTREAM_FAULT_RESET, detail, 0);
}

/* Sends the chunk's request on c, connected. */
static void conn_request(jrpc__h1conn_t *c)
{
    jrpc__chunk_t *ch = c->ch;
    jrpc__h1pool_t *pool = c->pool;
    /* The length by hand: snprintf's format parsing cost more than the rest of the head. */
    char *end = jrpc__put_u64(c->head + pool->head_len, ch->body.len);
    memcpy(end, "\r\n\r\n", 4);
    size_t n = (size_t)(end + 4 - c->head);
    uv_buf_t bufs[2] = {uv_buf_init(c->head, (unsigned)n),
                        uv_buf_init(ch->body.ptr, (unsigned)ch->body.len)};
    c->state = CONN_SENT;
    jrpc__h1answer_init(&c->answer, &ch->answer, ch->ctx->conf->max_answer);
    h1_timer_arm(c);
    /* The socket first: a request that fits in its buffer (the usual case) is sent without a
     * write request, whose completion would cost libuv an epoll_ctl per request. What it did not
     * take goes through uv_write. */
    int rc = uv_try_write((uv_stream_t *)&c->tcp, bufs, 2);
    size_t sent = rc > 0 ? (size_t)rc : 0;
    if (rc == UV_EAGAIN)
        rc = 0;
    if (rc >= 0 && sent == bufs[0].len + bufs[1].len)
        return;
    unsigned first = 0;
    while (rc >= 0 && sent >= bufs[first].len) {
        sent -= bufs[first].len;
        first++;
    }
    if (rc >= 0) {
        bufs[first].base += sent;
        bufs[first].len -= sent;
        rc = uv_write(&c->write, (uv_stream_t *)&c->tcp, bufs + first, 2 - first, h1_on_written);
    }
    if (rc != 0) {
        char detail[80];
        snprintf(detail, sizeof detail, "%s", uv_strerror(rc));
        conn_end(c, 0, JRPC_UPSTREAM_FAULT_RESET, detail, 0);
        return;
    }
    c->writing = 1;
}

static void h1_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    jrpc__h1conn_t *c = h->data;
    *buf = uv_buf_init(c->pool->h1->rbuf, H1_READ_BUF);
}

/* A reused connection failed before any byte of the answer: the upstream closed it while it sat
 * idle, which is no fault of the URL. The attempt goes again on a fresh connection. */
static int conn_retry_fresh(jrpc__h1conn_t *c)
{
    if (!c->reused || c->answer.got)
        return 0;
    jrpc__h1pool_t *pool = c->pool;
    jrpc__chunk_t *ch = c->ch;
    conn_close(c);
    conn_open(pool, ch);
    return 1;
}

static void h1_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    jrpc__h1conn_t *c = s->data;
    if (nread == 0 || c->state == CONN_CLOSING)
        return;
    if (c->state != CONN_SENT) {
        conn_close(c); /* an idle connection closed, or sent something unasked */
        return;
    }
    char detail[120];
    if (nread < 0) {
        if (nread == UV_EOF && jrpc__h1answer_eof(&c->answer)) {
            conn_end(c, c->answer.parser.status_code, -1, NULL, 0);
            return;
        }
        if (conn_retry_fresh(c))
            return;
        snprintf(detail, sizeof detail, "%s",
                 nread == UV_EOF ? "connection closed before the answer was complete"
                                 : uv_strerror((int)nread));
        conn_end(c, 0, JRPC_UPSTREAM_FAULT_RESET, detail, 0);
        return;
    }
    int keep = 0;
    int rc =
        jrpc__h1answer_feed(&c->answer, buf->base, (size_t)nread, &keep, detail, sizeof detail);
    if (rc == JRPC__H1_DONE) {
        /* A request still being written leaves the connection out of step too. */
        conn_end(c, c->answer.parser.status_code, -1, NULL, keep && !c->writing);
    } else if (rc != JRPC__H1_MORE) {
        if (c->answer.too_large)
            c->ch->too_large = 1;
        conn_end(c, 0, rc, detail, 0);
    }
}

static void conn_connected(jrpc__h1conn_t *c)
{
    int rc = uv_read_start((uv_stream_t *)&c->tcp, h1_on_alloc, h1_on_read);
    if (rc != 0) {
        conn_end(c, 0, JRPC_UPSTREAM_FAULT_CONNECT, uv_strerror(rc), 0);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    conn_request(c);
}

/* The address of list to try after `at` (NULL: the first): IPv4 ones first, then the others.
 * A name such as localhost often has both, and nodes listen on 127.0.0.1 (ganache, hardhat, geth
 * by default) more often than on ::1. NULL when none is left. */
static struct addrinfo *addr_next(struct addrinfo *list, const struct addrinfo *at)
{
    int v4 = at == NULL || at->ai_family == AF_INET;
    struct addrinfo *p = at != NULL ? at->ai_next : list;
    for (;;) {
        for (; p != NULL; p = p->ai_next)
            if ((p->ai_family == AF_INET) == v4)
                return p;
        if (!v4)
            return NULL;
        v4 = 0;
        p = list;
    }
}

static jrpc__h1conn_t *conn_new(jrpc__h1pool_t *pool, jrpc__chunk_t *ch);
static void conn_connect(jrpc__h1conn_t *c, const struct sockaddr *addr);

static void h1_on_connect(uv_connect_t *req, int status)
{
    jrpc__h1conn_t *c = req->data;
    if (c->state != CONN_CONNECTING)
        return; /* closed meanwhile (UV_ECANCELED) */
    struct addrinfo *next = c->ai != NULL ? addr_next(c->ai, c->ai_at) : NULL;
    if (status != 0 && next != NULL) {
        /* Another address of the name, on a new socket, within the same connect timeout. */
        jrpc__h1pool_t *pool = c->pool;
        jrpc__chunk_t *ch = c->ch;
        struct addrinfo *ai = c->ai;
        c->ai = NULL;
        conn_close(c);
        jrpc__h1conn_t *n = conn_new(pool, ch);
        if (n == NULL) {
            uv_freeaddrinfo(ai);
            jrpc__upstream_attempt_end(ch, 0, JRPC_UPSTREAM_FAULT_CONNECT, "out of memory");
            return;
        }
        n->ai = ai;
        n->ai_at = next;
        conn_connect(n, next->ai_addr);
        return;
    }
    if (status != 0) {
        conn_end(c, 0, JRPC_UPSTREAM_FAULT_CONNECT, uv_strerror(status), 0);
        return;
    }
    uv_freeaddrinfo(c->ai);
    c->ai = c->ai_at = NULL;
    conn_connected(c);
}

static void conn_connect(jrpc__h1conn_t *c, const struct sockaddr *addr)
{
    c->state = CONN_CONNECTING;
    int rc = uv_tcp_connect(&c->connect, &c->tcp, addr, h1_on_connect);
    if (rc != 0)
        conn_end(c, 0, JRPC_UPSTREAM_FAULT_CONNECT, uv_strerror(rc), 0);
}

static void h1_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    jrpc__h1conn_t *c = req->data;
    if (c->state != CONN_RESOLVING) {
        uv_freeaddrinfo(res);
        conn_release(c); /* closed meanwhile */
        return;
    }
    c->holds--; /* the lookup's; the handles still hold c */
    if (status != 0 || res == NULL) {
        char detail[120];
        snprintf(detail, sizeof detail, "cannot resolve host: %s",
                 uv_strerror(status ? status : UV_EAI_NONAME));
        uv_freeaddrinfo(res);
        conn_end(c, 0, JRPC_UPSTREAM_FAULT_CONNECT, detail, 0);
        return;
    }
    c->ai = res;
    c->ai_at = addr_next(res, NULL);
    conn_connect(c, c->ai_at->ai_addr);
}

/* A new connection for ch on pool's URL, not yet connecting; NULL when out of memory. */
static jrpc__h1conn_t *conn_new(jrpc__h1pool_t *pool, jrpc__chunk_t *ch)
{
    jrpc__upctx_t *ctx = pool->h1->ctx;
    jrpc__h1conn_t *c = calloc(1, sizeof(*c));
    char *head = c ? malloc(pool->head_len + H1_LENGTH_ROOM) : NULL;
    if (head == NULL || uv_tcp_init(ctx->loop, &c->tcp) != 0) {
        free(head);
        free(c);
        return NULL;
    }
    memcpy(head, pool->head, pool->head_len);
    c->head = head;
    uv_timer_init(ctx->loop, &c->timer);
    c->tcp.data = c->timer.data = c->connect.data = c->write.data = c->gai.data = c;
    c->holds = 2;
    c->pool = pool;
    c->ch = ch;
    ch->h1 = c;
    c->state = CONN_RESOLVING;
    h1_timer_arm(c);
    return c;
}

/* Opens a new connection for ch on pool's URL and sends ch once connected. */
static void conn_open(jrpc__h1pool_t *pool, jrpc__chunk_t *ch)
{
    const jrpc__endpoint_t *ep = pool->h1->ctx->conf->urls[pool->ep].ep;
    jrpc__h1conn_t *c = conn_new(pool, ch);
    if (c == NULL) {
        jrpc__upstream_attempt_end(ch, 0, JRPC_UPSTREAM_FAULT_CONNECT, "out of memory");
        return;
    }
    struct sockaddr_storage ss;
    if (uv_ip4_addr(ep->h1_host, ep->h1_port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(ep->h1_host, ep->h1_port, (struct sockaddr_in6 *)&ss) == 0) {
        conn_connect(c, (const struct sockaddr *)&ss);
        return;
    }
    char port[8];
    snprintf(port, sizeof port, "%d", ep->h1_port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->holds++;
    int rc =
        uv_getaddrinfo(pool->h1->ctx->loop, &c->gai, h1_on_resolved, ep->h1_host, port, &hints);
    if (rc != 0) {
        c->holds--;
        char detail[120];
        snprintf(detail, sizeof detail, "cannot resolve host: %s", uv_strerror(rc));
        conn_end(c, 0, JRPC_UPSTREAM_FAULT_CONNECT, detail, 0);
    }
}

static void conn_end(jrpc__h1conn_t *c, long status, int fault, const char *detail, int keep)
{
    jrpc__chunk_t *ch = c->ch;
    jrpc__h1pool_t *pool = c->pool;
    c->ch = NULL;
    ch->h1 = NULL;
    if (fault < 0 && keep && pool->nidle < pool->h1->ctx->conf->loop_in_flight) {
        c->state = CONN_IDLE;
        c->reused = 1;
        c->prev = NULL;
        c->next = pool->idle;
        if (pool->idle != NULL)
            pool->idle->prev = c;
        pool->idle = c;
        pool->nidle++;
        h1_due(c, H1_IDLE_MS);
    } else {
        conn_close(c);
    }
    jrpc__upstream_attempt_end(ch, status, fault, detail);
}

/* ---- What client.c calls --------------------------------------------------------------------- */

int jrpc__h1_send(jrpc__chunk_t *ch)
{
    jrpc__h1pool_t *pool = h1_pool_get(ch->ctx, ch->ep);
    if (pool == NULL)
        return JRPC_ENOMEM;
    jrpc__h1conn_t *c = pool->idle;
    if (c == NULL) {
        conn_open(pool, ch);
        return 0;
    }
    h1_idle_remove(c);
    c->ch = ch;
    ch->h1 = c;
    conn_request(c);
    return 0;
}

void jrpc__h1_abort(jrpc__chunk_t *ch)
{
    if (ch->h1 != NULL)
        conn_close(ch->h1); /* an answer may be on its way: the connection cannot be reused */
}

void jrpc__h1_close(jrpc__upctx_t *ctx)
{
    if (ctx->h1 == NULL)
        return;
    for (unsigned i = 0; i < JRPC_UPSTREAM_MAX_URLS; i++)
        while (ctx->h1->pools[i] != NULL && ctx->h1->pools[i]->idle != NULL)
            conn_close(ctx->h1->pools[i]->idle);
}

void jrpc__h1_free(jrpc__upctx_t *ctx)
{
    if (ctx->h1 == NULL)
        return;
    for (unsigned i = 0; i < JRPC_UPSTREAM_MAX_URLS; i++) {
        jrpc__h1pool_t *pool = ctx->h1->pools[i];
        if (pool == NULL)
            continue;
        /* Only with the loop gone (jrpc__upctx_free_detached) may connections be left. */
        for (jrpc__h1conn_t *c = pool->idle, *next; c != NULL; c = next) {
            next = c->next;
            free(c->head);
            free(c);
        }
        free(pool->head);
        free(pool);
    }
    free(ctx->h1);
    ctx->h1 = NULL;
}
