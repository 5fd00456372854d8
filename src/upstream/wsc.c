/* SPDX-License-Identifier: MIT */
/* wsc.c — a WebSocket client (RFC 6455, client side) on libuv for the gateway's subscriptions:
 * resolve, connect, the HTTP upgrade with its key check (§4.1), then frames: masked text frames
 * out, unmasked frames in, fragments joined under a byte bound, pings answered, a close echoed.
 * Written here because Debian's libcurl has no WebSocket support. */
#include "wsc.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { WSC_IDLE = 0, WSC_RESOLVING, WSC_CONNECTING, WSC_HANDSHAKE, WSC_OPEN, WSC_CLOSING };

/* The handshake answer's status line and headers: a server's 101 answer is a few hundred bytes;
 * 8 KiB is what HTTP servers allow for a request head, and more means it is not a WebSocket. */
#define WSC_MAX_HEAD 8192
/* Bytes read at once: the size of the server's own read buffer. */
#define WSC_READ_CHUNK 65536

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static void wsc_lost(jrpc__wsc_t *w, const char *why);

int jrpc__wsc_url_check(const char *url)
{
    if (strncmp(url, "ws://", 5) != 0)
        return JRPC_EINVAL;
    const char *h = url + 5, *end = h + strcspn(h, "/?#");
    if (end == h || *end == '#')
        return JRPC_EINVAL;
    const char *colon = NULL;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (rb == NULL)
            return JRPC_EINVAL;
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
        if (rb + 1 < end && colon == NULL)
            return JRPC_EINVAL;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
    }
    if (memchr(h, '@', (size_t)(end - h)) != NULL)
        return JRPC_EINVAL; /* credentials in a ws:// URL are not supported */
    size_t hostlen = (size_t)((colon ? colon : end) - h);
    if (hostlen == 0 || hostlen >= 256)
        return JRPC_EINVAL;
    if (colon != NULL) {
        const char *p = colon + 1;
        if (p == end || end - p > 5)
            return JRPC_EINVAL;
        unsigned long port = 0;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                return JRPC_EINVAL;
            port = port * 10 + (unsigned long)(*p - '0');
        }
        if (port == 0 || port > 65535)
            return JRPC_EINVAL;
    }
    return 0;
}

/* Splits a checked URL into host, port and path. */
static int wsc_parse(jrpc__wsc_t *w, const char *url)
{
    const char *h = url + 5, *end = h + strcspn(h, "/?");
    const char *colon;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        snprintf(w->host, sizeof w->host, "%.*s", (int)(rb - h - 1), h + 1);
        colon = rb + 1 < end ? rb + 1 : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        snprintf(w->host, sizeof w->host, "%.*s", (int)((colon ? colon : end) - h), h);
    }
    if (colon != NULL)
        snprintf(w->port, sizeof w->port, "%.*s", (int)(end - colon - 1), colon + 1);
    else
        snprintf(w->port, sizeof w->port, "80");
    free(w->path);
    size_t n = strlen(end);
    w->path = malloc(n + 2);
    if (w->path == NULL)
        return JRPC_ENOMEM;
    if (*end == '/')
        memcpy(w->path, end, n + 1);
    else
        snprintf(w->path, n + 2, "/%s", end);
    return 0;
}

int jrpc__wsc_init(jrpc__wsc_t *w, uv_loop_t *loop)
{
    memset(w, 0, sizeof(*w));
    w->loop = loop;
    jrpc_buf_init(&w->rx);
    jrpc_buf_init(&w->msg);
    return uv_timer_init(loop, &w->timer);
}

static void wsc_tcp_closed(uv_handle_t *h)
{
    jrpc__wsc_t *w = h->data;
    w->tcp_open = 0;
    int was_open = w->state == WSC_CLOSING;
    w->state = WSC_IDLE;
    w->rx.len = 0;
    w->msg.len = 0;
    if (!w->shut && w->on_lost != NULL)
        w->on_lost(w, was_open, w->why);
}

/* Ends the attempt or the connection; on_lost follows once the socket is closed. */
static void wsc_lost(jrpc__wsc_t *w, const char *why)
{
    if (w->state == WSC_IDLE || (w->tcp_open && uv_is_closing((uv_handle_t *)&w->tcp)))
        return;
    uv_timer_stop(&w->timer);
    w->why = why;
    int was_open = w->state == WSC_OPEN;
    w->state = was_open ? WSC_CLOSING : WSC_HANDSHAKE; /* CLOSING marks was_open */
    if (w->tcp_open) {
        uv_close((uv_handle_t *)&w->tcp, wsc_tcp_closed);
    } else {
        w->state = WSC_IDLE;
        if (!w->shut && w->on_lost != NULL)
            w->on_lost(w, was_open, why);
    }
}

typedef struct wsc_write {
    uv_write_t req;
    uv_buf_t buf;
} wsc_write_t;

static void wsc_written(uv_write_t *req, int status)
{
    wsc_write_t *wr = (wsc_write_t *)req;
    jrpc__wsc_t *w = req->handle->data;
    free(wr->buf.base);
    free(wr);
    if (status < 0 && status != UV_ECANCELED)
        wsc_lost(w, "write failed");
}

/* Writes p[0..n) (taken: freed when written). */
static int wsc_write(jrpc__wsc_t *w, char *p, size_t n)
{
    wsc_write_t *wr = malloc(sizeof(*wr));
    if (wr == NULL) {
        free(p);
        return JRPC_ENOMEM;
    }
    wr->buf = uv_buf_init(p, (unsigned)n);
    int rc = uv_write(&wr->req, (uv_stream_t *)&w->tcp, &wr->buf, 1, wsc_written);
    if (rc < 0) {
        free(p);
        free(wr);
        wsc_lost(w, "write failed");
        return JRPC_ECLOSED;
    }
    return 0;
}

/* One masked frame of `op` with payload p[0..n). */
static int wsc_frame(jrpc__wsc_t *w, int op, const char *p, size_t n)
{
    size_t hlen = n < 126 ? 2 : n <= 0xffff ? 4 : 10;
    char *f = malloc(hlen + 4 + n);
    if (f == NULL)
        return JRPC_ENOMEM;
    unsigned char *u = (unsigned char *)f;
    u[0] = (unsigned char)(0x80 | op);
    if (n < 126) {
        u[1] = (unsigned char)(0x80 | n);
    } else if (n <= 0xffff) {
        u[1] = 0x80 | 126;
        u[2] = (unsigned char)(n >> 8);
        u[3] = (unsigned char)n;
    } else {
        u[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            u[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    }
    unsigned char *mask = u + hlen;
    if (RAND_bytes(mask, 4) != 1) {
        uint64_t t = uv_hrtime();
        memcpy(mask, &t, 4);
    }
    for (size_t i = 0; i < n; i++)
        u[hlen + 4 + i] = (unsigned char)p[i] ^ mask[i & 3];
    return wsc_write(w, f, hlen + 4 + n);
}

int jrpc__wsc_send(jrpc__wsc_t *w, const char *p, size_t n)
{
    if (w->state != WSC_OPEN)
        return JRPC_ECLOSED;
    return wsc_frame(w, 0x1, p, n);
}

/* Consumes whole frames from rx; returns -1 once the connection is being dropped. */
static int wsc_frames(jrpc__wsc_t *w)
{
    size_t off = 0;
    int rc = 0;
    while (w->state == WSC_OPEN) {
        const unsigned char *u = (const unsigned char *)w->rx.ptr + off;
        size_t avail = w->rx.len - off;
        if (avail < 2)
            break;
        int fin = u[0] & 0x80, op = u[0] & 0x0f;
        if ((u[0] & 0x70) != 0 || (u[1] & 0x80) != 0) {
            wsc_lost(w, "protocol error (reserved bits or a masked frame)");
            return -1;
        }
        uint64_t len = u[1] & 0x7f;
        size_t hlen = 2;
        if (len == 126) {
            if (avail < 4)
                break;
            len = (uint64_t)u[2] << 8 | u[3];
            hlen = 4;
        } else if (len == 127) {
            if (avail < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | u[2 + i];
            hlen = 10;
        }
        if (len > w->max_message || (op >= 0x8 && (len > 125 || !fin))) {
            wsc_lost(w, "message larger than max_ws_message");
            return -1;
        }
        if (avail - hlen < len)
            break;
        const char *pl = (const char *)u + hlen;
        size_t n = (size_t)len;
        off += hlen + n;
        if (op == 0x8) { /* close: echo it, then the socket goes */
            wsc_frame(w, 0x8, pl, n < 2 ? n : 2);
            wsc_lost(w, "closed by the upstream");
            return -1;
        }
        if (op == 0x9) {
            wsc_frame(w, 0xA, pl, n);
            continue;
        }
        if (op == 0xA)
            continue;
        if (op != 0x0 && op != 0x1 && op != 0x2) {
            wsc_lost(w, "protocol error (unknown opcode)");
            return -1;
        }
        if (op != 0x0 && w->msg.len != 0) {
            wsc_lost(w, "protocol error (interleaved message)");
            return -1;
        }
        if (fin && w->msg.len == 0 && op != 0x0) {
            w->on_msg(w, pl, n);
            continue;
        }
        if (w->msg.len + n > w->max_message) {
            wsc_lost(w, "message larger than max_ws_message");
            return -1;
        }
        if (jrpc_buf_append(&w->msg, pl, n) != 0) {
            wsc_lost(w, "out of memory");
            return -1;
        }
        if (fin) {
            w->on_msg(w, w->msg.ptr, w->msg.len);
            w->msg.len = 0;
        }
    }
    if (off != 0 && w->state == WSC_OPEN) {
        memmove(w->rx.ptr, w->rx.ptr + off, w->rx.len - off);
        w->rx.len -= off;
    }
    return rc;
}

/* The server's 101 answer, once its head is complete in rx. */
static void wsc_handshake(jrpc__wsc_t *w)
{
    const char *end = NULL;
    for (size_t i = 3; i < w->rx.len; i++)
        if (memcmp(w->rx.ptr + i - 3, "\r\n\r\n", 4) == 0) {
            end = w->rx.ptr + i + 1;
            break;
        }
    if (end == NULL) {
        if (w->rx.len > WSC_MAX_HEAD)
            wsc_lost(w, "handshake answer too long");
        return;
    }
    size_t head = (size_t)(end - w->rx.ptr);
    if (head < 12 || memcmp(w->rx.ptr, "HTTP/1.1 101", 12) != 0) {
        wsc_lost(w, "the upstream refused the WebSocket upgrade");
        return;
    }
    int ok = 0;
    const char *line = memchr(w->rx.ptr, '\n', head) + 1;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = (size_t)(nl - line);
        static const char name[] = "sec-websocket-accept:";
        if (n > sizeof name - 1 && strncasecmp(line, name, sizeof name - 1) == 0) {
            const char *v = line + sizeof name - 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vn = (size_t)(nl - v);
            while (vn > 0 && (v[vn - 1] == '\r' || v[vn - 1] == ' '))
                vn--;
            ok = vn == strlen(w->accept) && memcmp(v, w->accept, vn) == 0;
        }
        line = nl + 1;
    }
    if (!ok) {
        wsc_lost(w, "handshake answer without the right Sec-WebSocket-Accept");
        return;
    }
    memmove(w->rx.ptr, end, w->rx.len - head);
    w->rx.len -= head;
    uv_timer_stop(&w->timer);
    w->state = WSC_OPEN;
    w->on_open(w);
    if (w->state == WSC_OPEN && w->rx.len != 0)
        wsc_frames(w);
}

static void wsc_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    jrpc__wsc_t *w = h->data;
    if (jrpc_buf_reserve(&w->rx, WSC_READ_CHUNK) != 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init(w->rx.ptr + w->rx.len, WSC_READ_CHUNK);
}

static void wsc_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    jrpc__wsc_t *w = s->data;
    if (nread < 0) {
        wsc_lost(w, nread == UV_EOF ? "closed by the upstream" : "connection reset");
        return;
    }
    if (nread == 0)
        return;
    w->rx.len += (size_t)nread;
    if (w->state == WSC_HANDSHAKE)
        wsc_handshake(w);
    else if (w->state == WSC_OPEN)
        wsc_frames(w);
}

static void wsc_b64(const unsigned char *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static void wsc_connected(uv_connect_t *req, int status)
{
    jrpc__wsc_t *w = req->handle->data;
    free(req);
    if (status == UV_ECANCELED || w->state != WSC_CONNECTING)
        return;
    if (status < 0) {
        wsc_lost(w, "could not connect");
        return;
    }
    unsigned char key[16];
    if (RAND_bytes(key, sizeof key) != 1) {
        wsc_lost(w, "no random bytes for the key");
        return;
    }
    char key64[32];
    wsc_b64(key, sizeof key, key64);
    /* The answer the server must give (§4.1): base64(SHA-1(key + GUID)). */
    char in[96];
    snprintf(in, sizeof in, "%s%s", key64, ws_guid);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (EVP_Digest(in, strlen(in), md, &md_len, EVP_sha1(), NULL) != 1) {
        wsc_lost(w, "SHA-1 failed");
        return;
    }
    wsc_b64(md, md_len, w->accept);
    int v6 = strchr(w->host, ':') != NULL;
    size_t cap = strlen(w->path) + strlen(w->host) + 256;
    char *r = malloc(cap);
    if (r == NULL) {
        wsc_lost(w, "out of memory");
        return;
    }
    int n = snprintf(r, cap,
                     "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     w->path, v6 ? "[" : "", w->host, v6 ? "]" : "", w->port, key64);
    w->state = WSC_HANDSHAKE;
    w->rx.len = 0;
    if (wsc_write(w, r, (size_t)n) != 0)
        return;
    if (uv_read_start((uv_stream_t *)&w->tcp, wsc_alloc, wsc_read) != 0)
        wsc_lost(w, "could not read");
}

static void wsc_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    jrpc__wsc_t *w = req->data;
    w->gai_busy = 0;
    if (status == UV_ECANCELED || w->shut || w->state != WSC_RESOLVING) {
        uv_freeaddrinfo(res);
        return;
    }
    if (status < 0 || res == NULL) {
        uv_freeaddrinfo(res);
        wsc_lost(w, "could not resolve the host");
        return;
    }
    uv_connect_t *c = malloc(sizeof(*c));
    int rc = c == NULL ? UV_ENOMEM : uv_tcp_init(w->loop, &w->tcp);
    if (rc == 0) {
        w->tcp_open = 1;
        w->tcp.data = w;
        uv_tcp_nodelay(&w->tcp, 1);
        w->state = WSC_CONNECTING;
        rc = uv_tcp_connect(c, &w->tcp, res->ai_addr, wsc_connected);
    }
    uv_freeaddrinfo(res);
    if (rc != 0) {
        free(c);
        wsc_lost(w, "could not connect");
    }
}

static void wsc_timeout(uv_timer_t *t)
{
    jrpc__wsc_t *w = t->data;
    if (w->state == WSC_RESOLVING) {
        uv_cancel((uv_req_t *)&w->gai);
        w->state = WSC_IDLE;
        if (w->on_lost != NULL)
            w->on_lost(w, 0, "connect timed out");
        return;
    }
    wsc_lost(w, "connect timed out");
}

int jrpc__wsc_connect(jrpc__wsc_t *w, const char *url)
{
    if (w->state != WSC_IDLE || w->shut || w->gai_busy)
        return JRPC_EBUSY;
    int rc = wsc_parse(w, url);
    if (rc != 0)
        return rc;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    w->gai.data = w;
    w->timer.data = w;
    if ((rc = uv_getaddrinfo(w->loop, &w->gai, wsc_resolved, w->host, w->port, &hints)) != 0)
        return rc;
    w->gai_busy = 1;
    w->state = WSC_RESOLVING;
    uv_timer_start(&w->timer, wsc_timeout, w->timeout_ms, 0);
    return 0;
}

void jrpc__wsc_shutdown(jrpc__wsc_t *w)
{
    if (w->shut)
        return;
    w->shut = 1;
    if (w->gai_busy)
        uv_cancel((uv_req_t *)&w->gai);
    if (w->tcp_open && !uv_is_closing((uv_handle_t *)&w->tcp))
        uv_close((uv_handle_t *)&w->tcp, wsc_tcp_closed);
    uv_close((uv_handle_t *)&w->timer, NULL);
}

void jrpc__wsc_free(jrpc__wsc_t *w)
{
    jrpc_buf_free(&w->rx);
    jrpc_buf_free(&w->msg);
    free(w->path);
    w->path = NULL;
}
