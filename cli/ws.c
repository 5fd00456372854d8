/* SPDX-License-Identifier: MIT */
/* ws.c — the CLI's WebSocket client (RFC 6455, client side) over one blocking TCP socket, because
 * Debian's libcurl has no WebSocket support. It does what jrpc needs and no more: the upgrade with
 * its Sec-WebSocket-Accept check, masked text frames out, whole messages in (continuation frames
 * joined), pings answered, and the closing handshake. No extensions are offered, so any RSV bit
 * from the server is an error. wss:// is refused: TLS here would be a second TLS stack to keep
 * right, and jrpcd behind a TLS proxy is reached over https:// for everything but subscribe. */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

/* Largest message accepted: jrpcd's max_response defaults to 25 MB; four times that leaves room
 * for other servers while keeping a broken peer from growing the buffer without end. */
#define WS_MAX_MESSAGE (100u << 20)

/* The GUID RFC 6455 §1.3 appends to the key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

struct cli_ws {
    int fd;
    jrpc_buf_t in;    /* bytes read and not yet consumed, from in_pos */
    size_t in_pos;    /* first unconsumed byte of in */
    jrpc_buf_t frame; /* scratch for one outgoing frame */
    int closed;       /* a close frame was sent */
    int quiet;        /* closing: errors are expected and not printed */
};

/* Prints "jrpc: websocket: ..." unless ws is closing; returns -1. */
__attribute__((format(printf, 2, 3))) static int ws_err(const cli_ws_t *ws, const char *fmt, ...)
{
    if (ws->quiet || cli_interrupted)
        return -1;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_fail("websocket: %s", msg);
    return -1;
}

int cli_ws_fd(const cli_ws_t *ws)
{
    return ws->fd;
}

/* Waits until fd is ready for events; 1 ready, 0 timeout, -1 error. timeout_ms 0 = none. */
static int wait_fd(int fd, short events, long timeout_ms)
{
    struct pollfd p = {fd, events, 0};
    for (;;) {
        int r = poll(&p, 1, timeout_ms > 0 ? (int)timeout_ms : -1);
        if (r >= 0)
            return r;
        if (errno != EINTR || cli_interrupted)
            return -1;
    }
}

static int send_all(cli_ws_t *ws, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(ws->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(ws->fd, POLLOUT, 0) < 0)
                return ws_err(ws, "%s", strerror(errno));
            continue;
        }
        if (w <= 0)
            return ws_err(ws, "send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads more bytes into ws->in; 1 read, 0 end of stream, -1 error or timeout (printed). */
static int fill(cli_ws_t *ws, long timeout_ms)
{
    if (ws->in_pos > 0 && ws->in_pos == ws->in.len)
        ws->in.len = ws->in_pos = 0;
    if (jrpc_buf_reserve(&ws->in, 65536) != 0)
        return ws_err(ws, "out of memory");
    for (;;) {
        int r = wait_fd(ws->fd, POLLIN, timeout_ms);
        if (r == 0)
            return ws_err(ws, "timed out waiting for the server");
        if (r < 0)
            return ws_err(ws, "%s", strerror(errno));
        ssize_t n = recv(ws->fd, ws->in.ptr + ws->in.len, ws->in.cap - ws->in.len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ws_err(ws, "recv: %s", strerror(errno));
        ws->in.len += (size_t)n;
        return n > 0;
    }
}

/* Splits ws://host[:port][/path] into its parts; 0 or -1 (printed). */
static int parse_url(const char *url, char *host, size_t hcap, char *port, size_t pcap,
                     const char **path)
{
    if (strncmp(url, "wss://", 6) == 0)
        return cli_fail("%s: wss:// is not supported; use ws:// or reach the server over https://",
                        url),
               -1;
    if (strncmp(url, "ws://", 5) != 0)
        return cli_fail("%s: not a ws:// URL", url), -1;
    const char *h = url + 5, *slash = strchr(h, '/');
    const char *hend = slash ? slash : h + strlen(h), *host_end, *rest;
    *path = slash ? slash : "/";
    if (*h == '[') { /* [v6]:port */
        const char *rb = memchr(h, ']', (size_t)(hend - h));
        if (rb == NULL)
            return cli_fail("%s: bad IPv6 address", url), -1;
        h++;
        host_end = rb;
        rest = rb + 1;
    } else {
        const char *colon = memchr(h, ':', (size_t)(hend - h));
        host_end = rest = colon ? colon : hend;
    }
    size_t hl = (size_t)(host_end - h);
    if (hl == 0 || hl >= hcap)
        return cli_fail("%s: no host", url), -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (rest < hend && *rest == ':') {
        size_t pl = (size_t)(hend - rest - 1);
        if (pl == 0 || pl >= pcap || strspn(rest + 1, "0123456789") < pl)
            return cli_fail("%s: bad port", url), -1;
        memcpy(port, rest + 1, pl);
        port[pl] = '\0';
    } else if (rest != hend) {
        return cli_fail("%s: bad host", url), -1;
    } else {
        snprintf(port, pcap, "80");
    }
    return 0;
}

static int connect_to(const char *host, const char *port, long timeout_ms)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return cli_fail("%s: %s", host, gai_strerror(rc)), -1;
    int fd = -1, err = 0;
    for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, timeout_ms) == 1) {
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err == 0)
                break;
        } else {
            err = errno ? errno : ETIMEDOUT;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return cli_fail("cannot connect to %s:%s: %s", host, port, strerror(err ? err : errno)), -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* base64 of n bytes into out (NUL-terminated); out holds 4 * ceil(n / 3) + 1 bytes. */
static void base64(const unsigned char *p, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

/* 1 when token occurs in p[0..n), compared without case. */
static int memmem_nocase(const char *p, size_t n, const char *token)
{
    size_t t = strlen(token);
    for (size_t i = 0; i + t <= n; i++)
        if (strncasecmp(p + i, token, t) == 0)
            return 1;
    return 0;
}

/* The value of header `name` in an HTTP response head, or NULL; *len gets its length. */
static const char *head_value(const char *head, size_t n, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', n), *end = head + n;
    while (p != NULL && p + 1 < end) {
        p++;
        if ((size_t)(end - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1, *e = memchr(v, '\n', (size_t)(end - v));
            if (e == NULL)
                e = end;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            *len = (size_t)(e - v);
            return v;
        }
        p = memchr(p, '\n', (size_t)(end - p));
    }
    return NULL;
}

cli_ws_t *cli_ws_open(const char *url, const char *const *headers, unsigned nheaders,
                      long timeout_ms)
{
    char host[256], port[16];
    const char *path;
    if (timeout_ms <= 0)
        timeout_ms = 10000;
    if (parse_url(url, host, sizeof host, port, sizeof port, &path) != 0)
        return NULL;
    cli_ws_t *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return cli_fail("%s", "out of memory"), NULL;
    jrpc_buf_init(&ws->in);
    jrpc_buf_init(&ws->frame);
    ws->fd = connect_to(host, port, timeout_ms);
    if (ws->fd < 0)
        goto fail;

    unsigned char nonce[16];
    char key[32], accept[32];
    if (getrandom(nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce) {
        cli_fail("getrandom: %s", strerror(errno));
        goto fail;
    }
    base64(nonce, sizeof nonce, key);
    char keyguid[128];
    unsigned char digest[SHA_DIGEST_LENGTH];
    snprintf(keyguid, sizeof keyguid, "%s%s", key, ws_guid);
    SHA1((const unsigned char *)keyguid, strlen(keyguid), digest);
    base64(digest, sizeof digest, accept);

    jrpc_buf_t req;
    jrpc_buf_init(&req);
    jrpc_buf_appendz(&req, "GET ");
    jrpc_buf_appendz(&req, path);
    jrpc_buf_appendz(&req, " HTTP/1.1\r\nHost: ");
    int v6 = strchr(host, ':') != NULL;
    jrpc_buf_appendz(&req, v6 ? "[" : "");
    jrpc_buf_appendz(&req, host);
    jrpc_buf_appendz(&req, v6 ? "]" : "");
    if (strcmp(port, "80") != 0) {
        jrpc_buf_appendz(&req, ":");
        jrpc_buf_appendz(&req, port);
    }
    jrpc_buf_appendz(&req, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ");
    jrpc_buf_appendz(&req, key);
    jrpc_buf_appendz(&req, "\r\n");
    for (unsigned i = 0; i < nheaders; i++) {
        jrpc_buf_appendz(&req, headers[i]);
        jrpc_buf_appendz(&req, "\r\n");
    }
    jrpc_buf_appendz(&req, "\r\n");
    int rc = req.err ? -1 : send_all(ws, req.ptr, req.len);
    jrpc_buf_free(&req);
    if (rc != 0)
        goto fail;

    const char *eoh;
    while ((eoh = ws->in.len ? memmem(ws->in.ptr, ws->in.len, "\r\n\r\n", 4) : NULL) == NULL) {
        if (ws->in.len > 16384) {
            cli_fail("%s", "websocket: the server's answer to the upgrade has no end");
            goto fail;
        }
        int r = fill(ws, timeout_ms);
        if (r <= 0) {
            if (r == 0)
                cli_fail("%s", "websocket: the server closed the connection during the upgrade");
            goto fail;
        }
    }
    size_t head_len = (size_t)(eoh - ws->in.ptr) + 4;
    const char *h = ws->in.ptr;
    if (head_len < 12 || memcmp(h, "HTTP/1.1 101", 12) != 0) {
        const char *eol = memchr(h, '\r', head_len);
        cli_fail("websocket: upgrade refused: %.*s", (int)(eol ? eol - h : 40), h);
        goto fail;
    }
    size_t ulen = 0, clen = 0;
    const char *up = head_value(h, head_len, "Upgrade", &ulen);
    const char *conn = head_value(h, head_len, "Connection", &clen);
    if (up == NULL || ulen != 9 || strncasecmp(up, "websocket", 9) != 0 || conn == NULL ||
        memmem_nocase(conn, clen, "upgrade") == 0) {
        cli_fail("%s",
                 "websocket: the server's 101 lacks Upgrade: websocket / Connection: Upgrade");
        goto fail;
    }
    size_t alen = 0;
    const char *acc = head_value(ws->in.ptr, head_len, "Sec-WebSocket-Accept", &alen);
    if (acc == NULL || alen != strlen(accept) || memcmp(acc, accept, alen) != 0) {
        cli_fail("%s", "websocket: the server's Sec-WebSocket-Accept does not match the key");
        goto fail;
    }
    size_t elen = 0;
    if (head_value(ws->in.ptr, head_len, "Sec-WebSocket-Extensions", &elen) != NULL && elen > 0) {
        cli_fail("%s", "websocket: the server chose an extension that was not offered");
        goto fail;
    }
    ws->in_pos = head_len;
    return ws;
fail:
    if (ws->fd >= 0)
        close(ws->fd);
    jrpc_buf_free(&ws->in);
    jrpc_buf_free(&ws->frame);
    free(ws);
    return NULL;
}

/* Sends one frame with FIN set: opcode op, payload p[0..n), masked with a fresh random key. */
static int send_frame(cli_ws_t *ws, unsigned op, const char *p, size_t n)
{
    unsigned char hdr[14];
    size_t h = 0;
    hdr[h++] = (unsigned char)(0x80u | op);
    if (n < 126) {
        hdr[h++] = (unsigned char)(0x80u | n);
    } else if (n <= 0xffff) {
        hdr[h++] = 0x80u | 126;
        hdr[h++] = (unsigned char)(n >> 8);
        hdr[h++] = (unsigned char)n;
    } else {
        hdr[h++] = 0x80u | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    unsigned char mask[4];
    if (getrandom(mask, sizeof mask, 0) != (ssize_t)sizeof mask)
        return ws_err(ws, "getrandom: %s", strerror(errno));
    memcpy(hdr + h, mask, 4);
    h += 4;
    ws->frame.len = 0;
    if (jrpc_buf_reserve(&ws->frame, h + n) != 0)
        return ws_err(ws, "out of memory");
    memcpy(ws->frame.ptr, hdr, h);
    unsigned char *dst = (unsigned char *)ws->frame.ptr + h;
    for (size_t i = 0; i < n; i++)
        dst[i] = (unsigned char)p[i] ^ mask[i & 3];
    ws->frame.len = h + n;
    return send_all(ws, ws->frame.ptr, ws->frame.len);
}

int cli_ws_send(cli_ws_t *ws, const char *p, size_t n)
{
    return send_frame(ws, 0x1, p, n);
}

/* Makes sure want bytes from in_pos are buffered; 1, 0 (peer closed) or -1. */
static int need(cli_ws_t *ws, size_t want, long timeout_ms)
{
    while (ws->in.len - ws->in_pos < want) {
        if (ws->in_pos > 0) { /* slide what is left to the front before growing */
            memmove(ws->in.ptr, ws->in.ptr + ws->in_pos, ws->in.len - ws->in_pos);
            ws->in.len -= ws->in_pos;
            ws->in_pos = 0;
        }
        if (want > ws->in.cap && jrpc_buf_reserve(&ws->in, want - ws->in.len) != 0)
            return ws_err(ws, "out of memory");
        int r = fill(ws, timeout_ms);
        if (r <= 0)
            return r;
    }
    return 1;
}

int cli_ws_recv(cli_ws_t *ws, jrpc_buf_t *out, long timeout_ms)
{
    int in_message = 0;
    out->len = 0;
    for (;;) {
        int r = need(ws, 2, timeout_ms);
        if (r <= 0)
            return r == 0 ? ws_err(ws, "connection closed without a close frame") : -1;
        const unsigned char *b = (const unsigned char *)ws->in.ptr + ws->in_pos;
        unsigned fin = b[0] & 0x80u, rsv = b[0] & 0x70u, op = b[0] & 0x0fu;
        uint64_t len = b[1] & 0x7fu;
        size_t hl = 2;
        if (b[1] & 0x80u)
            return ws_err(ws, "the server sent a masked frame");
        if (rsv)
            return ws_err(ws, "reserved bits set in a frame");
        if (len >= 126) {
            hl = len == 126 ? 4 : 10;
            if ((r = need(ws, hl, timeout_ms)) <= 0)
                return -1;
            b = (const unsigned char *)ws->in.ptr + ws->in_pos;
            len = 0;
            for (size_t i = 2; i < hl; i++)
                len = (len << 8) | b[i];
        }
        if (op >= 0x8 && (len > 125 || !fin))
            return ws_err(ws, "bad control frame");
        if (len > WS_MAX_MESSAGE || out->len + len > WS_MAX_MESSAGE)
            return ws_err(ws, "message larger than %u bytes", WS_MAX_MESSAGE);
        if ((r = need(ws, hl + (size_t)len, timeout_ms)) <= 0)
            return -1;
        const char *payload = ws->in.ptr + ws->in_pos + hl;
        ws->in_pos += hl + (size_t)len;
        switch (op) {
        case 0x9: /* ping */
            if (send_frame(ws, 0xA, payload, (size_t)len) != 0)
                return -1;
            continue;
        case 0xA: /* pong */
            continue;
        case 0x8: /* close: answer with the same code, then report the end */
            if (!ws->closed) {
                ws->closed = 1;
                send_frame(ws, 0x8, payload, len >= 2 ? 2 : 0);
            }
            return 0;
        case 0x0:
            if (!in_message)
                return ws_err(ws, "continuation frame without a message");
            break;
        case 0x1:
        case 0x2:
            if (in_message)
                return ws_err(ws, "new message inside a fragmented one");
            in_message = 1;
            break;
        default:
            return ws_err(ws, "unknown opcode %u", op);
        }
        if (jrpc_buf_append(out, payload, (size_t)len) != 0)
            return ws_err(ws, "out of memory");
        if (fin)
            return 1;
    }
}

void cli_ws_close(cli_ws_t *ws)
{
    if (ws == NULL)
        return;
    if (!ws->closed) {
        static const char normal[2] = {0x03, (char)0xe8}; /* 1000 */
        ws->closed = 1;
        ws->quiet = 1;
        if (send_frame(ws, 0x8, normal, 2) == 0) {
            /* Wait a little for the server's close so it sees a clean end; ignore what else
             * arrives (pushes still in flight). */
            jrpc_buf_t scratch;
            jrpc_buf_init(&scratch);
            while (cli_ws_recv(ws, &scratch, 1000) == 1)
                ;
            jrpc_buf_free(&scratch);
        }
    }
    close(ws->fd);
    jrpc_buf_free(&ws->in);
    jrpc_buf_free(&ws->frame);
    free(ws);
}
