/* SPDX-License-Identifier: MIT */
/* ws.c — the CLI's WebSocket client (RFC 6455, client side) over one TCP socket, waited on with
 * poll, because Debian's libcurl has no WebSocket support. It does what jrpc needs and no more:
 * the upgrade with its Sec-WebSocket-Accept check, masked text frames out, whole messages in
 * (continuation frames joined), pings answered, and the closing handshake. No extensions are
 * offered, so any RSV bit from the server is an error. wss:// runs the same bytes through
 * OpenSSL, verifying as curl does for https:// (the system CAs or --cacert, the host name, SNI
 * sent; -k skips the checks), so one set of flags means the same for both. */
#define _GNU_SOURCE
#include "cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
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
    SSL_CTX *ctx;       /* wss://: the TLS settings, NULL for ws:// */
    SSL *ssl;           /* wss://: the session over fd */
    jrpc_buf_t in;      /* bytes read and not yet consumed, from in_pos */
    size_t in_pos;      /* first unconsumed byte of in */
    jrpc_buf_t frame;   /* scratch for one outgoing frame */
    int closed;         /* a close frame was sent */
    int quiet;          /* closing: errors are expected and not printed */
    unsigned max_batch; /* the 101's Jrpc-Max-Batch, 0: none */
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

/* Frees ws and closes its socket. */
static void ws_free(cli_ws_t *ws)
{
    SSL_free(ws->ssl);
    SSL_CTX_free(ws->ctx);
    if (ws->fd >= 0)
        close(ws->fd);
    jrpc_buf_free(&ws->in);
    jrpc_buf_free(&ws->frame);
    free(ws);
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

/* What io_send and io_recv return besides a byte count. */
enum { IO_EOF = 0, IO_ERROR = -1, IO_WAIT = -2 };

/* The TLS outcome of an SSL_read or SSL_write that returned r: IO_WAIT with *events set, IO_EOF
 * or IO_ERROR (printed). */
static int tls_outcome(cli_ws_t *ws, int r, short *events, const char *what)
{
    int e = SSL_get_error(ws->ssl, r);
    unsigned long code = ERR_peek_error();
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *events = POLLIN;
        return IO_WAIT;
    case SSL_ERROR_WANT_WRITE:
        *events = POLLOUT;
        return IO_WAIT;
    case SSL_ERROR_ZERO_RETURN:
        return IO_EOF;
    case SSL_ERROR_SYSCALL:
        if (code == 0 && errno == 0)
            return IO_EOF; /* closed without a close_notify: the WebSocket layer judges that */
        if (code == 0)
            return ws_err(ws, "%s: %s", what, strerror(errno));
        break;
    default:
        break;
    }
    ERR_clear_error();
    return ws_err(ws, "%s: TLS: %s", what, code ? ERR_reason_error_string(code) : "failed");
}

/* Writes what it can of p[0..n): bytes written (> 0), IO_WAIT with *events to wait for, or
 * IO_ERROR (printed). */
static ssize_t io_send(cli_ws_t *ws, const char *p, size_t n, short *events)
{
    if (ws->ssl != NULL) {
        int chunk = n > INT32_MAX ? INT32_MAX : (int)n;
        errno = 0;
        int w = SSL_write(ws->ssl, p, chunk);
        if (w > 0)
            return w;
        int r = tls_outcome(ws, w, events, "send");
        return r == IO_EOF ? ws_err(ws, "send: the server closed the connection") : r;
    }
    ssize_t w = send(ws->fd, p, n, MSG_NOSIGNAL);
    if (w > 0)
        return w;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        *events = POLLOUT;
        return IO_WAIT;
    }
    return ws_err(ws, "send: %s", strerror(errno));
}

/* Reads what is there into p[0..cap): bytes read (> 0), IO_EOF, IO_WAIT with *events to wait
 * for, or IO_ERROR (printed). */
static ssize_t io_recv(cli_ws_t *ws, char *p, size_t cap, short *events)
{
    if (ws->ssl != NULL) {
        errno = 0;
        int n = SSL_read(ws->ssl, p, cap > INT32_MAX ? INT32_MAX : (int)cap);
        return n > 0 ? n : tls_outcome(ws, n, events, "recv");
    }
    ssize_t n = recv(ws->fd, p, cap, 0);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        *events = POLLIN;
        return IO_WAIT;
    }
    return ws_err(ws, "recv: %s", strerror(errno));
}

static int send_all(cli_ws_t *ws, const char *p, size_t n)
{
    while (n > 0) {
        short events = 0;
        ssize_t w = io_send(ws, p, n, &events);
        if (w == IO_WAIT) {
            if (wait_fd(ws->fd, events, 0) < 0)
                return ws_err(ws, "%s", strerror(errno));
            continue;
        }
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads more bytes into ws->in; 1 read, 0 end of stream, -1 error or timeout (printed). It reads
 * before it waits: TLS may hold decrypted bytes the socket no longer shows. */
static int fill(cli_ws_t *ws, long timeout_ms)
{
    if (ws->in_pos > 0 && ws->in_pos == ws->in.len)
        ws->in.len = ws->in_pos = 0;
    if (jrpc_buf_reserve(&ws->in, 65536) != 0)
        return ws_err(ws, "out of memory");
    for (;;) {
        short events = 0;
        ssize_t n = io_recv(ws, ws->in.ptr + ws->in.len, ws->in.cap - ws->in.len, &events);
        if (n == IO_WAIT) {
            int r = wait_fd(ws->fd, events, timeout_ms);
            if (r == 0)
                return ws_err(ws, "timed out waiting for the server");
            if (r < 0)
                return ws_err(ws, "%s", strerror(errno));
            continue;
        }
        if (n < 0)
            return -1;
        ws->in.len += (size_t)n;
        return n > 0;
    }
}

int cli_ws_buffered(const cli_ws_t *ws)
{
    return ws->in.len > ws->in_pos || (ws->ssl != NULL && SSL_pending(ws->ssl) > 0);
}

/* Splits ws[s]://host[:port][/path] into its parts, *tls set for wss://; 0 or -1 (printed). */
static int parse_url(const char *url, char *host, size_t hcap, char *port, size_t pcap,
                     const char **path, int *tls)
{
    *tls = strncmp(url, "wss://", 6) == 0;
    if (!*tls && strncmp(url, "ws://", 5) != 0)
        return cli_fail("%s: not a ws:// or wss:// URL", url), -1;
    const char *h = url + (*tls ? 6 : 5), *slash = strchr(h, '/');
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
        snprintf(port, pcap, "%s", *tls ? "443" : "80");
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

/* Why a verification failed, in the words an operator acts on, and what to do about it. */
static const char *verify_hint(long v, const char **what)
{
    switch (v) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        *what = "host name mismatch";
        return "the certificate is for another name; connect by a name it holds";
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        *what = "certificate not trusted";
        return "give its CA with --cacert FILE, or skip the check with -k";
    default:
        *what = "certificate problem";
        return "-k skips the check";
    }
}

/* Starts TLS on ws->fd for host, verifying as o says; 0 or -1 (printed, naming the cause). */
static int tls_start(cli_ws_t *ws, const char *host, const cli_opts_t *o, long timeout_ms)
{
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    ERR_clear_error();
    signal(SIGPIPE, SIG_IGN); /* OpenSSL writes with write(2), not send(MSG_NOSIGNAL) */
    if ((ws->ctx = SSL_CTX_new(TLS_client_method())) == NULL)
        return cli_fail("%s", "TLS: cannot create a context"), -1;
    if (o->insecure) {
        SSL_CTX_set_verify(ws->ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(ws->ctx, SSL_VERIFY_PEER, NULL);
        int ok = o->cacert != NULL ? SSL_CTX_load_verify_locations(ws->ctx, o->cacert, NULL)
                                   : SSL_CTX_set_default_verify_paths(ws->ctx);
        if (ok != 1) {
            unsigned long e = ERR_get_error();
            const char *why = e ? ERR_reason_error_string(e) : "no certificates";
            if (o->cacert != NULL)
                return cli_fail("--cacert %s: cannot load: %s", o->cacert, why), -1;
            return cli_fail("TLS: cannot load the system's CA certificates: %s", why), -1;
        }
    }
    /* A peer that closes without a close_notify reads as the end of the stream: the WebSocket
     * layer above has its own closing handshake and says whether the end was clean. */
    SSL_CTX_set_options(ws->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if ((ws->ssl = SSL_new(ws->ctx)) == NULL || SSL_set_fd(ws->ssl, ws->fd) != 1)
        return cli_fail("%s", "TLS: cannot create a session"), -1;
    SSL_set_mode(ws->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* SNI names a host, never an address (RFC 6066 §3); the check covers both. */
    if (!is_ip && SSL_set_tlsext_host_name(ws->ssl, host) != 1)
        return cli_fail("TLS: cannot send the name %s", host), -1;
    if (!o->insecure && (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ws->ssl), host)
                               : SSL_set1_host(ws->ssl, host)) != 1)
        return cli_fail("TLS: cannot check the name %s", host), -1;
    for (;;) {
        errno = 0;
        int r = SSL_connect(ws->ssl);
        if (r == 1)
            return 0;
        int e = SSL_get_error(ws->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            int w = wait_fd(ws->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, timeout_ms);
            if (w == 0)
                return cli_fail("%s: TLS handshake timed out", host), -1;
            if (w < 0)
                return cli_fail("%s: %s", host, strerror(errno)), -1;
            continue;
        }
        long v = SSL_get_verify_result(ws->ssl);
        unsigned long code = ERR_get_error();
        if (v != X509_V_OK) {
            const char *what, *hint = verify_hint(v, &what);
            return cli_fail("%s: TLS: %s (%s); %s", host, what, X509_verify_cert_error_string(v),
                            hint),
                   -1;
        }
        if (code != 0)
            return cli_fail("%s: TLS handshake failure: %s", host, ERR_reason_error_string(code)),
                   -1;
        return cli_fail("%s: TLS handshake failure: %s", host,
                        errno ? strerror(errno) : "the server closed the connection"),
               -1;
    }
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

cli_ws_t *cli_ws_open(const cli_opts_t *o)
{
    char host[256], port[16];
    const char *path;
    long timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
    int tls;
    if (parse_url(o->url, host, sizeof host, port, sizeof port, &path, &tls) != 0)
        return NULL;
    cli_ws_t *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return cli_fail("%s", "out of memory"), NULL;
    jrpc_buf_init(&ws->in);
    jrpc_buf_init(&ws->frame);
    ws->fd = connect_to(host, port, timeout_ms);
    if (ws->fd < 0 || (tls && tls_start(ws, host, o, timeout_ms) != 0))
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
    if (strcmp(port, tls ? "443" : "80") != 0) {
        jrpc_buf_appendz(&req, ":");
        jrpc_buf_appendz(&req, port);
    }
    jrpc_buf_appendz(&req, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ");
    jrpc_buf_appendz(&req, key);
    jrpc_buf_appendz(&req, "\r\n");
    for (unsigned i = 0; i < o->nheaders; i++) {
        jrpc_buf_appendz(&req, o->headers[i]);
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
    /* The server's batch cap, when it says it (jrpcd does): digits only, else ignored. */
    size_t blen = 0;
    const char *cap = head_value(ws->in.ptr, head_len, "Jrpc-Max-Batch", &blen);
    if (cap != NULL && blen > 0 && blen <= 9 && strspn(cap, "0123456789") >= blen)
        ws->max_batch = (unsigned)strtoul(cap, NULL, 10); /* the head goes on past it: \r\n */
    ws->in_pos = head_len;
    return ws;
fail:
    ws_free(ws);
    return NULL;
}

unsigned cli_ws_max_batch(const cli_ws_t *ws)
{
    return ws->max_batch;
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
    if (ws->ssl != NULL && !cli_interrupted)
        SSL_shutdown(ws->ssl); /* a close_notify, without waiting for the server's */
    ws_free(ws);
}
