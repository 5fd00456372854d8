/* SPDX-License-Identifier: MIT */
/* sock.c — the connection core that HTTP and WebSocket share: the accepted socket and its one
 * timer, reads into the loop's buffer (or the owner's), the writer that tries the socket first and
 * queues only what it did not take, the FIN, and the close of both handles. The protocol on top
 * owns the sock through jrpc__sock_ops_t and can hand it to another owner by pointer (an HTTP
 * upgrade to WebSocket): the socket never moves and no byte is copied for the hand-over. */
#include "../util/timer.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- Accept ---------------------------------------------------------------------------------- */

/* Out of memory at accept: libuv stops watching a listener whose connection was not accepted,
 * so take it into this spare handle and close it (the client sees a close, not a hang). */
static _Thread_local uv_tcp_t oom_tcp;
static _Thread_local int oom_busy;

static void on_oom_close(uv_handle_t *h)
{
    (void)h;
    oom_busy = 0;
}

static void accept_and_drop(jrpc__loop_t *loop, uv_stream_t *listener)
{
    if (oom_busy || uv_tcp_init(&loop->uv, &oom_tcp) != 0)
        return;
    oom_busy = 1;
    uv_accept(listener, (uv_stream_t *)&oom_tcp);
    uv_close((uv_handle_t *)&oom_tcp, on_oom_close);
}

void jrpc__sock_drain(jrpc__sock_t *s)
{
    if (!s->closing && s->ops != NULL)
        s->ops->drain(s);
}

void jrpc__sock_close_now(jrpc__sock_t *s)
{
    if (s->closing)
        return;
    if (s->ops != NULL)
        s->ops->close_now(s);
    else
        jrpc__sock_close(s);
}

/* A sock with its handles set up and counted on the loop, not yet connected. */
static jrpc__sock_t *sock_new(jrpc__loop_t *loop)
{
    jrpc__sock_t *s = calloc(1, sizeof(*s));
    if (s == NULL || uv_tcp_init(&loop->uv, &s->tcp) != 0) {
        free(s);
        return NULL;
    }
    uv_timer_init(&loop->uv, &s->timer);
    s->tcp.data = s->timer.data = s;
    s->open_handles = 2;
    s->loop = loop;
    jrpc__list_insert_tail(&loop->conns, &s->node);
    jrpc__loop_hold(loop);
    return s;
}

jrpc__sock_t *jrpc__sock_accept(jrpc__loop_t *loop, uv_stream_t *listener)
{
    jrpc__sock_t *s = sock_new(loop);
    if (s == NULL) {
        accept_and_drop(loop, listener);
        return NULL;
    }
    if (uv_accept(listener, (uv_stream_t *)&s->tcp) != 0) {
        jrpc__sock_close(s);
        return NULL;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    return s;
}

jrpc__sock_t *jrpc__sock_open(jrpc__loop_t *loop, int fd)
{
    jrpc__sock_t *s = sock_new(loop);
    if (s == NULL)
        return NULL;
    if (uv_tcp_open(&s->tcp, fd) != 0) {
        jrpc__sock_close(s);
        return NULL;
    }
    return s;
}

void jrpc__sock_own(jrpc__sock_t *s, const jrpc__sock_ops_t *ops, void *owner)
{
    s->ops = ops;
    s->owner = owner;
}

/* ---- Reading --------------------------------------------------------------------------------- */

/* The loop's read buffer (JRPC__SOCK_READ_BUF), made on the first read: one loop runs per thread
 * and libuv calls alloc_cb and read_cb back to back per stream, so one buffer serves every
 * connection of the loop; owners copy out what they keep before read returns. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    jrpc__sock_t *s = h->data;
    (void)hint;
    buf->len = 0;
    if (s->ops->alloc != NULL) {
        s->ops->alloc(s, buf);
        if (buf->len != 0)
            return;
    }
    jrpc__loop_t *loop = s->loop;
    if (loop->rbuf == NULL)
        loop->rbuf = malloc(JRPC__SOCK_READ_BUF);
    buf->base = loop->rbuf;
    buf->len = loop->rbuf != NULL ? JRPC__SOCK_READ_BUF : 0; /* 0: libuv reports UV_ENOBUFS */
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    jrpc__sock_t *s = stream->data;
    if (nread == 0 || s->closing)
        return;
    s->ops->read(s, nread, buf);
}

int jrpc__sock_read(jrpc__sock_t *s, int on)
{
    if (s->closing || s->reading == (on != 0))
        return 0;
    if (!on) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = 0;
        return 0;
    }
    int rc = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    if (rc == 0)
        s->reading = 1;
    return rc;
}

/* ---- Writing --------------------------------------------------------------------------------- */

int jrpc__sock_write(jrpc__sock_t *s, uv_write_t *wr, uv_buf_t *bufs, unsigned n, size_t total,
                     uv_write_cb cb)
{
    uv_stream_t *stream = (uv_stream_t *)&s->tcp;
    /* Try the write now: when the socket takes it all (the common case) there is no write
     * request, no deferred callback and no epoll_ctl to re-arm, so an answer costs one writev.
     * uv_try_write refuses (EAGAIN) while earlier bytes are still queued, which keeps the
     * order. */
    ssize_t w = n != 0 ? uv_try_write(stream, bufs, n) : 0;
    if (w == UV_EAGAIN)
        w = 0;
    if (w < 0)
        return (int)w;
    if ((size_t)w == total)
        return 1;
    unsigned i = 0;
    size_t skip = (size_t)w;
    while (skip >= bufs[i].len) {
        skip -= bufs[i].len;
        i++;
    }
    bufs[i].base += skip;
    bufs[i].len -= skip;
    int rc = uv_write(wr, stream, bufs + i, n - i, cb);
    return rc != 0 ? rc : 0;
}

int jrpc__sock_keep(jrpc__sock_t *s, const char *p, size_t n)
{
    size_t have = s->kept_len - s->kept_off;
    char *k = malloc(have + n ? have + n : 1);
    if (k == NULL)
        return JRPC_ENOMEM;
    if (have != 0)
        memcpy(k, s->kept + s->kept_off, have);
    memcpy(k + have, p, n);
    free(s->kept);
    s->kept = k;
    s->kept_off = 0;
    s->kept_len = have + n;
    return 0;
}

void jrpc__sock_kept_used(jrpc__sock_t *s, size_t n)
{
    if (n < s->kept_len - s->kept_off) {
        s->kept_off += n;
        return;
    }
    free(s->kept);
    s->kept = NULL;
    s->kept_off = s->kept_len = 0;
}

size_t jrpc__sock_queued(const jrpc__sock_t *s)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&s->tcp);
}

int jrpc__sock_shutdown(jrpc__sock_t *s, uv_shutdown_cb cb)
{
    return uv_shutdown(&s->shut, (uv_stream_t *)&s->tcp, cb);
}

/* ---- Timer and close ------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    jrpc__sock_t *s = t->data;
    if (s->closing)
        return;
    if (!s->repeat) {
        if (!jrpc__timer_fired(t, &s->timer_due, s->due, on_timer))
            return; /* stopped, or moved later since it was set */
        s->due = 0;
    }
    s->ops->timeout(s);
}

void jrpc__sock_timer(jrpc__sock_t *s, uint64_t ms)
{
    if (s->closing)
        return;
    if (s->repeat) {
        s->repeat = 0;
        uv_timer_stop(&s->timer);
        s->timer_due = 0;
    }
    if (ms == 0) {
        s->due = 0; /* a timer still set fires and finds nothing due */
        return;
    }
    s->due = uv_now(s->timer.loop) + ms;
    jrpc__timer_at(&s->timer, &s->timer_due, s->due, on_timer);
}

void jrpc__sock_timer_repeat(jrpc__sock_t *s, uint64_t ms)
{
    if (s->closing)
        return;
    s->repeat = 1;
    s->due = s->timer_due = 0;
    uv_timer_start(&s->timer, on_timer, ms, ms);
}

static void on_close(uv_handle_t *h)
{
    jrpc__sock_t *s = h->data;
    if (--s->open_handles > 0)
        return;
    jrpc__loop_t *loop = s->loop;
    if (s->ops != NULL)
        s->ops->closed(s);
    jrpc__unadmit(loop->io, &s->admit);
    jrpc__list_remove(&s->node);
    free(s->kept);
    free(s);
    jrpc__loop_release(loop);
}

void jrpc__sock_close(jrpc__sock_t *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    s->reading = 0;
    /* Pending writes complete with UV_ECANCELED before on_close; their owners check closing. */
    uv_close((uv_handle_t *)&s->tcp, on_close);
    uv_close((uv_handle_t *)&s->timer, on_close);
}
