/* SPDX-License-Identifier: MIT */
/* Unit tests of the HTTP/1.1 transport (src/http) in-process: one real libuv loop on this thread,
 * the real engine and worker pool, and connections over socketpairs so every byte the server writes
 * is checked. Requests are fed split at every byte, pipelined, chunked, over the limits, and cut
 * off; shutdown (drain, close_all) is driven the way src/io does it. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The transport's statics (conn_new, conn_start) are reached by including its sources. */
#include "http/conn.c"
#include "http/parse.c"
#include "http/response.c"
#include "server.h"

#define MAX_BODY 4096
#define MAX_HEADER 1024

static jrpc_server_t *srv;
static jrpc__loop_t loop;
static int log_lines;

typedef struct client {
    int fd;                  /* our end of the socketpair */
    jrpc__http_conn_t *conn; /* the server's end (valid until it closes) */
    char rx[1 << 20];        /* bytes received, not yet consumed */
    size_t rx_len;
    int eof; /* the server closed */
} client_t;

typedef struct answer {
    int status;
    char head[1024];    /* status line and headers, NUL-terminated */
    char body[1 << 16]; /* NUL-terminated */
    size_t body_len;
} answer_t;

static client_t *cl;
static answer_t ans;

/* ---- Handlers -------------------------------------------------------------------------------- */

static void ping(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_reply_raw(call, "\"pong\"", 6);
}

static void echo(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_json_t p = jrpc_call_params(call);
    if (p.ptr == NULL)
        jrpc_reply_raw(call, "null", 4);
    else
        jrpc_reply_raw(call, p.ptr, p.len);
}

/* params [ms]: sleeps on a worker, replies ms. */
static void slow(jrpc_call_t *call, void *data)
{
    (void)data;
    int64_t ms = 0;
    jrpc_json_t v;
    if (jrpc_json_at(jrpc_call_params(call), 0, &v) == 0)
        jrpc_json_int64(v, &ms);
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    jrpc_reply_int64(call, ms);
}

static void on_log(jrpc_log_level_t level, const char *line, void *data)
{
    (void)level;
    (void)data;
    assert_non_null(strstr(line, "\""));
    log_lines++;
}

/* ---- Harness --------------------------------------------------------------------------------- */

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static client_t *client_open(void)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    client_t *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->fd = sv[1];
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    jrpc__sock_t *s = jrpc__sock_open(&loop, sv[0]);
    assert_non_null(s);
    c->conn = conn_serve(&loop, s);
    assert_non_null(c->conn);
    return c;
}

static void client_free(client_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

/* Runs the loop once without blocking and takes what the server wrote. */
static void pump(client_t *c)
{
    uv_run(&loop.uv, UV_RUN_NOWAIT);
    while (c != NULL && !c->eof && c->rx_len < sizeof(c->rx)) {
        ssize_t n = read(c->fd, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len);
        if (n > 0)
            c->rx_len += (size_t)n;
        else if (n == 0 || (errno != EAGAIN && errno != EINTR))
            c->eof = 1;
        else
            break;
    }
}

/* Pumps for a while so the server reads what was sent. */
static void settle(client_t *c)
{
    for (int i = 0; i < 3; i++)
        pump(c);
}

static void send_bytes(client_t *c, const char *p, size_t n)
{
    uint64_t end = now_ms() + 5000;
    while (n > 0) {
        ssize_t w = write(c->fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        assert_true(errno == EAGAIN || errno == EINTR);
        assert_true(now_ms() < end);
        pump(c);
    }
}

static void send_str(client_t *c, const char *s)
{
    send_bytes(c, s, strlen(s));
}

/* A whole answer at the front of c->rx: its length, or 0 when not all there yet. */
static size_t answer_complete(const client_t *c)
{
    const char *end = memmem(c->rx, c->rx_len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    size_t head = (size_t)(end - c->rx) + 4;
    size_t body = 0;
    const char *cl_hdr = memmem(c->rx, head, "Content-Length: ", 16);
    if (cl_hdr != NULL && memcmp(c->rx, "HTTP/1.1 100", 12) != 0)
        body = strtoul(cl_hdr + 16, NULL, 10);
    return c->rx_len >= head + body ? head + body : 0;
}

/* Waits (bounded) for the next answer and moves it into `ans`. */
static void next_answer(client_t *c)
{
    uint64_t end = now_ms() + 5000;
    size_t n;
    while ((n = answer_complete(c)) == 0) {
        assert_true(now_ms() < end);
        pump(c);
        if (c->eof && answer_complete(c) == 0)
            fail_msg("connection closed before a whole answer (%zu bytes)", c->rx_len);
    }
    const char *end_head = memmem(c->rx, n, "\r\n\r\n", 4);
    size_t head = (size_t)(end_head - c->rx) + 4;
    assert_true(head < sizeof(ans.head));
    memcpy(ans.head, c->rx, head);
    ans.head[head] = '\0';
    ans.body_len = n - head;
    assert_true(ans.body_len < sizeof(ans.body));
    memcpy(ans.body, c->rx + head, ans.body_len);
    ans.body[ans.body_len] = '\0';
    ans.status = atoi(ans.head + 9);
    memmove(c->rx, c->rx + n, c->rx_len - n);
    c->rx_len -= n;
}

/* Waits (bounded) until the server closed the connection. */
static void wait_eof(client_t *c)
{
    uint64_t end = now_ms() + 5000;
    while (!c->eof) {
        assert_true(now_ms() < end);
        pump(c);
    }
}

static void wait_no_conns(void)
{
    uint64_t end = now_ms() + 5000;
    while (loop.holds != 0) {
        assert_true(now_ms() < end);
        uv_run(&loop.uv, UV_RUN_NOWAIT);
    }
}

static int has_header(const char *line)
{
    return strstr(ans.head, line) != NULL;
}

static int setup(void **state)
{
    (void)state;
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.io_threads = 1;
    cfg.max_body = MAX_BODY;
    cfg.max_header = MAX_HEADER;
    cfg.hosts = "t [::1]";                    /* the Host the requests here give */
    cfg.cors_origins = "https://app.example"; /* the one page allowed (test_browser) */
    cfg.log_cb = on_log;
    srv = jrpc_server_new(&cfg);
    assert_non_null(srv);
    assert_int_equal(jrpc_method_add(srv, "tennis@ping", ping, NULL, JRPC_INLINE), 0);
    assert_int_equal(jrpc_method_add(srv, "echo", echo, NULL, JRPC_INLINE), 0);
    assert_int_equal(jrpc_method_add(srv, "slow", slow, NULL, JRPC_WORKER), 0);
    assert_int_equal(jrpc__loop_open(&srv->io, &loop), 0);
    log_lines = 0;
    cl = client_open();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    client_free(cl);
    cl = NULL;
    wait_no_conns();
    assert_int_equal(jrpc__loop_finish(&loop), 0);
    /* Everything requests and answers held was given back (acct.c's totals). */
    assert_int_equal(atomic_load(&srv->io.mem_held), 0);
    assert_int_equal(atomic_load(&srv->io.calls_held), 0);
    jrpc_server_free(srv);
    return 0;
}

static char *post(const char *path, const char *body, const char *extra)
{
    static char buf[8192];
    snprintf(buf, sizeof buf, "POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n%s\r\n%s",
             path, strlen(body), extra, body);
    return buf;
}

/* A call of `slow` (a worker sleeping ms) as a POST to "/"; the same static buffer as post(). */
static char *post_slow(int ms, int id)
{
    char body[96];
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"method\":\"slow\",\"params\":[%d],\"id\":%d}", ms, id);
    return post("/", body, "");
}

/* The next answer is the last: `status` with Connection: close, then the server closes. */
static void expect_last_answer(client_t *c, int status)
{
    next_answer(c);
    assert_int_equal(ans.status, status);
    assert_true(has_header("Connection: close\r\n"));
    wait_eof(c);
}

static const char ping_body[] = "{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":1}";

static void assert_pong(void)
{
    assert_int_equal(ans.status, 200);
    assert_true(has_header("\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(ans.body, "\"result\":\"pong\""));
    assert_non_null(strstr(ans.body, "\"id\":1"));
}

/* ---- Tests ----------------------------------------------------------------------------------- */

static void test_ping(void **state)
{
    (void)state;
    send_str(cl, post("/api/v1/endpoint", ping_body, ""));
    next_answer(cl);
    assert_pong();
    char cl_line[64];
    snprintf(cl_line, sizeof cl_line, "\r\nContent-Length: %zu\r\n", ans.body_len);
    assert_true(has_header(cl_line));
    assert_false(has_header("Connection:"));
    assert_int_equal(log_lines, 1);
    /* "/" answers too; a query string does not matter. */
    send_str(cl, post("/?x=1", ping_body, ""));
    next_answer(cl);
    assert_pong();
}

/* The same request split in two at every byte, on one keep-alive connection. */
static void test_split_every_byte(void **state)
{
    (void)state;
    char req[8192];
    snprintf(req, sizeof req, "%s", post("/api/v1/endpoint", ping_body, "Content-Type: x\r\n"));
    size_t n = strlen(req);
    for (size_t i = 1; i < n; i++) {
        send_bytes(cl, req, i);
        settle(cl);
        send_bytes(cl, req + i, n - i);
        next_answer(cl);
        assert_pong();
    }
    assert_null(cl->conn->head);
}

static void test_chunked_split(void **state)
{
    (void)state;
    const char *a = "{\"jsonrpc\":\"2.0\",", *b = "\"method\":\"tennis@ping\",\"id\":1}";
    char req[512];
    snprintf(req, sizeof req,
             "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             "%zx\r\n%s\r\n%zX;ext=1\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n",
             strlen(a), a, strlen(b), b);
    size_t n = strlen(req);
    for (size_t i = 1; i < n; i += 3) {
        send_bytes(cl, req, i);
        settle(cl);
        send_bytes(cl, req + i, n - i);
        next_answer(cl);
        assert_pong();
    }
}

/* Sends req[0..n) split in two at every byte, on a new connection each time (the first part is
 * read on its own), and expects `status`: 200 with the ping's answer on a connection that stays,
 * or a last answer and a close with nothing after it (what followed the refused bytes never ran).
 */
static void split_each_byte(const char *req, size_t n, int status)
{
    for (size_t i = 1; i < n; i++) {
        client_t *c = client_open();
        send_bytes(c, req, i);
        settle(c);
        send_bytes(c, req + i, n - i);
        if (status == 200) {
            next_answer(c);
            assert_pong();
            assert_false(has_header("Connection:"));
        } else {
            expect_last_answer(c, status);
            assert_int_equal(c->rx_len, 0);
        }
        client_free(c);
    }
}

typedef struct bytes {
    const char *p;
    size_t n;
} bytes_t;
#define BYTES(lit)                                                                                 \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }

/* Appends the pieces to buf (cap bytes); returns the length. */
static size_t cat(char *buf, size_t cap, const bytes_t *parts, size_t nparts)
{
    size_t n = 0;
    for (size_t i = 0; i < nparts; i++) {
        assert_true(n + parts[i].n <= cap);
        memcpy(buf + n, parts[i].p, parts[i].n);
        n += parts[i].n;
    }
    return n;
}

/* Chunk-size lines are held to RFC 9112 §7.1 however they arrive: http-parser alone skips an
 * extension up to the first CR, bare LF, NUL and trailing blanks included, and takes any byte
 * after that CR for its LF. */
static void test_chunk_lines(void **state)
{
    (void)state;
    /* What may follow the size "2f" (the length of ping_body). */
    static const bytes_t good[] = {
        BYTES("\r\n"),
        BYTES(";a\r\n"),
        BYTES(" ; a = b\t;c\r\n"),
        BYTES(";name=\"quoted; \\\" \\\x80\";x=y\r\n"),
    };
    static const bytes_t bad[] = {
        BYTES(";a\nx\r\n"),   /* a bare LF in an extension */
        BYTES(";a\n"),        /* the line ended by a bare LF */
        BYTES(";a\0b\r\n"),   /* NUL */
        BYTES(";a=\x01\r\n"), /* a control byte */
        BYTES(" \r\n"),       /* size SP CRLF */
        BYTES("\t\r\n"),      /* size HTAB CRLF */
        BYTES(";a \r\n"),     /* blanks after a name with no '=' after them */
        BYTES("\rx"),         /* CR not followed by LF */
        BYTES(";\r\n"),       /* ';' without a name */
        BYTES(";a=\r\n"),     /* '=' without a value */
        BYTES(";a=\"b\r\n"),  /* a quoted string left open */
        BYTES(";a=b c\r\n"),  /* two tokens */
    };
    const bytes_t head = BYTES("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    const bytes_t ping = {ping_body, strlen(ping_body)};
    const bytes_t crlf = BYTES("\r\n"), last = BYTES("0\r\n\r\n");
    char next[256]; /* a whole request after the refused one: it must never run */
    const char *p = post("/", ping_body, "");
    assert_true(strlen(p) < sizeof next);
    memcpy(next, p, strlen(p) + 1);
    const bytes_t after = {next, strlen(next)};
    char req[1024];
    for (size_t k = 0; k < sizeof good / sizeof good[0]; k++) {
        bytes_t parts[] = {head, BYTES("2f"), good[k], ping, crlf, BYTES("0"), good[k], crlf};
        split_each_byte(req, cat(req, sizeof req, parts, 8), 200);
    }
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        /* In the first chunk's line, */
        bytes_t first[] = {head, BYTES("2f"), bad[k], ping, crlf, last, after};
        split_each_byte(req, cat(req, sizeof req, first, 7), 400);
        /* and in the last chunk's, which ends the body (what follows is the next request). */
        bytes_t final[] = {head, BYTES("2f\r\n"), ping, crlf, BYTES("0"), bad[k], crlf, after};
        split_each_byte(req, cat(req, sizeof req, final, 8), 400);
    }
    /* A size that is not hex, or has a blank before it. */
    bytes_t sizes[] = {BYTES(" 2f\r\n"), BYTES("g\r\n"), BYTES("-2f\r\n")};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        bytes_t parts[] = {head, sizes[k], ping, crlf, last, after};
        split_each_byte(req, cat(req, sizeof req, parts, 6), 400);
    }
}

/* A ping to the RPC path with extra header lines, answered on c, into `ans`. */
static void ping_with(client_t *c, const char *extra)
{
    send_str(c, post("/api/v1/endpoint", ping_body, extra));
    next_answer(c);
}

/* Host, Origin and Sec-Fetch-Site against hosts = "t [::1]" and cors_origins =
 * "https://app.example" (setup): what a page in a browser may call, and what it may read. */
static void test_browser(void **state)
{
    (void)state;
    /* No Origin: served, no CORS header at all. */
    ping_with(cl, "");
    assert_pong();
    assert_false(has_header("Access-Control-"));
    assert_false(has_header("Vary:"));
    /* The page on the list: its origin echoed as sent, with Vary. */
    ping_with(cl, "Origin: https://APP.example  \r\nSec-Fetch-Site: cross-site\r\n");
    assert_pong();
    assert_true(has_header("\r\nAccess-Control-Allow-Origin: https://APP.example\r\n"
                           "Vary: Origin\r\n"));
    /* The user's own navigation, or a page of this server: no Origin needed. */
    ping_with(cl, "Sec-Fetch-Site: none\r\n");
    assert_pong();
    ping_with(cl, "Sec-Fetch-Site: same-origin\r\n");
    assert_pong();
    /* Host in pieces: kept across reads; an IPv6 literal with a port. */
    char req[512];
    snprintf(req, sizeof req,
             "POST / HTTP/1.1\r\nHost: [::1]:8000\r\nOrigin: https://app.example\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(ping_body), ping_body);
    for (size_t i = 1; i < strlen(req); i++) {
        send_bytes(cl, req, i);
        settle(cl);
        send_str(cl, req + i);
        next_answer(cl);
        assert_pong();
        assert_true(has_header("\r\nAccess-Control-Allow-Origin: https://app.example\r\n"));
    }

    /* Refused, each on its own connection: 403 (or 400 for a Host that is no host), no CORS
     * header, and the connection closes. */
    static const struct {
        const char *head; /* header lines after Host: t, or a Host line of its own */
        int status;
        const char *says;
    } refused[] = {
        {"Origin: https://evil.example\r\n", 403, "origin \\\"https://evil.example\\\" is not "},
        {"Origin: https://app.example.evil\r\n", 403, "cors_origins"},
        {"Origin: null\r\n", 403, "cors_origins"},
        {"Origin: https://app.example\r\nOrigin: https://app.example\r\n", 403, "cors_origins"},
        {"Sec-Fetch-Site: cross-site\r\n", 403, "another site"},
        {"Sec-Fetch-Site: same-site\r\n", 403, "another site"},
        {"Host: evil.example\r\n", 403, "host \\\"evil.example\\\" is not allowed"},
        {"Host: 127.0.0.1\r\n", 403, "server setting: hosts"},
        {"Host: t.\r\n", 403, "server setting: hosts"},
        {"Host: a b\r\n", 400, "invalid Host"},
    };
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        client_t *c = client_open();
        int own_host = strncmp(refused[k].head, "Host:", 5) == 0;
        snprintf(req, sizeof req, "POST / HTTP/1.1\r\n%s%sContent-Length: %zu\r\n\r\n%s",
                 own_host ? "" : "Host: t\r\n", refused[k].head, strlen(ping_body), ping_body);
        send_str(c, req);
        expect_last_answer(c, refused[k].status);
        if (strstr(ans.body, refused[k].says) == NULL)
            fail_msg("%s: %s", refused[k].head, ans.body);
        assert_non_null(strstr(ans.body, "-32600"));
        assert_false(has_header("Access-Control-"));
        client_free(c);
    }
}

/* Answers leave in request order although the first one finishes last. */
static void test_pipeline_order(void **state)
{
    (void)state;
    char req[4096];
    size_t n = 0;
    n += (size_t)snprintf(req + n, sizeof req - n, "%s", post_slow(80, 1));
    n += (size_t)snprintf(
        req + n, sizeof req - n, "%s",
        post("/", "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[2],\"id\":2}", ""));
    n +=
        (size_t)snprintf(req + n, sizeof req - n, "%s",
                         post("/", "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[3]}", ""));
    n += (size_t)snprintf(req + n, sizeof req - n, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    n += (size_t)snprintf(
        req + n, sizeof req - n, "%s",
        post("/", "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[5],\"id\":5}", ""));
    send_bytes(cl, req, n);
    next_answer(cl);
    assert_int_equal(ans.status, 200);
    assert_non_null(strstr(ans.body, "\"result\":80"));
    next_answer(cl);
    assert_non_null(strstr(ans.body, "\"id\":2"));
    next_answer(cl); /* a notification */
    assert_int_equal(ans.status, 204);
    assert_int_equal(ans.body_len, 0);
    assert_false(has_header("Content-Type"));
    next_answer(cl);
    assert_int_equal(ans.status, 405);
    next_answer(cl);
    assert_non_null(strstr(ans.body, "\"id\":5"));
}

/* A client that pipelines far past the bound is served in order, never holding more than the
 * bound at once. */
static void test_pipeline_bound(void **state)
{
    (void)state;
    enum { N = 300 };
    static char req[N * 128];
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        char body[96];
        snprintf(body, sizeof body,
                 "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[%d],\"id\":%d}", i, i);
        n += (size_t)snprintf(req + n, sizeof req - n, "%s", post("/", body, ""));
    }
    send_bytes(cl, req, n);
    int throttled = 0;
    for (int i = 0; i < N; i++) {
        assert_true(cl->conn->depth <= JRPC__HTTP_PIPELINE_MAX);
        throttled |= cl->conn->throttled;
        next_answer(cl);
        char want[32];
        snprintf(want, sizeof want, "\"id\":%d}", i);
        assert_non_null(strstr(ans.body, want));
    }
    (void)throttled; /* depends on how the socketpair splits reads; the order is what counts */
}

static void test_expect_continue(void **state)
{
    (void)state;
    char req[512];
    snprintf(req, sizeof req,
             "POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-Continue\r\nContent-Length: %zu\r\n\r\n",
             strlen(ping_body));
    send_str(cl, req);
    next_answer(cl);
    assert_int_equal(ans.status, 100);
    assert_string_equal(ans.head, "HTTP/1.1 100 Continue\r\n\r\n");
    send_str(cl, ping_body);
    next_answer(cl);
    assert_pong();
    /* Behind an unanswered request, the 100 waits for that answer. */
    send_str(cl, post_slow(50, 7));
    send_str(cl, req);
    next_answer(cl);
    assert_int_equal(ans.status, 200);
    assert_non_null(strstr(ans.body, "\"id\":7"));
    next_answer(cl);
    assert_int_equal(ans.status, 100);
    send_str(cl, ping_body);
    next_answer(cl);
    assert_pong();
}

static void test_expect_refused(void **state)
{
    (void)state;
    send_str(cl, "POST /elsewhere HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: "
                 "10\r\n\r\n");
    expect_last_answer(cl, 404);
}

static void test_413_content_length(void **state)
{
    (void)state;
    char req[256];
    snprintf(req, sizeof req, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n",
             MAX_BODY + 1);
    send_str(cl, req);
    send_str(cl, "{\"a\":1}"); /* a start of the body: discarded */
    next_answer(cl);
    assert_int_equal(ans.status, 413);
    assert_true(has_header("Connection: close\r\n"));
    assert_non_null(strstr(ans.body, "-32005"));
    assert_non_null(strstr(ans.body, "request body exceeds 4096 bytes"));
    shutdown(cl->fd, SHUT_WR); /* the lingering close ends with our FIN */
    wait_eof(cl);
}

static void test_413_chunked(void **state)
{
    (void)state;
    send_str(cl, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[1100];
    memset(chunk, 'a', sizeof chunk);
    memcpy(chunk, "400\r\n", 5);
    memcpy(chunk + 5 + 1024, "\r\n", 2);
    for (int i = 0; i < 5 && !cl->eof && cl->rx_len == 0; i++) {
        send_bytes(cl, chunk, 5 + 1024 + 2);
        settle(cl);
    }
    next_answer(cl);
    assert_int_equal(ans.status, 413);
    assert_true(has_header("Connection: close\r\n"));
}

static void test_header_limits(void **state)
{
    (void)state;
    char req[4096];
    int n = snprintf(req, sizeof req, "POST / HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 20; i++)
        n += snprintf(req + n, sizeof req - (size_t)n, "X-Pad-%d: %060d\r\n", i, i);
    snprintf(req + n, sizeof req - (size_t)n, "Content-Length: 0\r\n\r\n");
    send_str(cl, req);
    expect_last_answer(cl, 431);

    client_t *c2 = client_open();
    memset(req, 'a', sizeof req);
    memcpy(req, "GET /", 5);
    memcpy(req + 2000, " HTTP/1.1\r\nHost: t\r\n\r\n", 14);
    send_bytes(c2, req, 2014);
    expect_last_answer(c2, 414);
    client_free(c2);
}

static void test_malformed(void **state)
{
    (void)state;
    send_str(cl, post("/", ping_body, ""));
    send_str(cl, "NOT HTTP AT ALL\r\n\r\n");
    next_answer(cl);
    assert_pong();
    expect_last_answer(cl, 400);
    /* A well-formed request line with a method we do not know: 501. */
    client_t *c2 = client_open();
    send_str(c2, "FOO / HTTP/1.1\r\nHost: t\r\n\r\n");
    expect_last_answer(c2, 501);
    client_free(c2);
}

static void test_routes_and_methods(void **state)
{
    (void)state;
    send_str(cl, "GET /api/v1/endpoint HTTP/1.1\r\nHost: t\r\n\r\n");
    next_answer(cl);
    assert_int_equal(ans.status, 405);
    assert_true(has_header("\r\nAllow: POST, OPTIONS\r\n"));
    assert_non_null(strstr(ans.body, "method GET not allowed; use POST"));
    assert_non_null(strstr(ans.body, "-32600"));

    /* The CORS preflight of a page on cors_origins; without Origin, only Allow. */
    send_str(cl, "OPTIONS /api/v1/endpoint HTTP/1.1\r\nHost: t\r\n"
                 "Origin: https://app.example\r\n\r\n");
    next_answer(cl);
    assert_int_equal(ans.status, 204);
    assert_true(has_header("\r\nAllow: POST, OPTIONS\r\n"));
    assert_true(has_header("\r\nAccess-Control-Allow-Origin: https://app.example\r\n"));
    assert_true(has_header("\r\nAccess-Control-Allow-Methods: POST, OPTIONS\r\n"));
    assert_true(has_header("\r\nAccess-Control-Allow-Headers: Content-Type\r\n"));
    assert_int_equal(ans.body_len, 0);
    send_str(cl, "OPTIONS /api/v1/endpoint HTTP/1.1\r\nHost: t\r\n\r\n");
    next_answer(cl);
    assert_int_equal(ans.status, 204);
    assert_true(has_header("\r\nAllow: POST, OPTIONS\r\n"));
    assert_false(has_header("Access-Control-"));

    send_str(cl, "GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n");
    next_answer(cl);
    assert_int_equal(ans.status, 404);
    assert_false(has_header("Connection:"));

    /* HEAD: the header says how long the body would be, and no body follows. */
    send_str(cl, "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    send_str(cl, post("/", ping_body, ""));
    uint64_t end = now_ms() + 5000;
    while (memmem(cl->rx, cl->rx_len, "pong", 4) == NULL) {
        assert_true(now_ms() < end);
        pump(cl);
    }
    assert_int_equal(memcmp(cl->rx, "HTTP/1.1 405 ", 13), 0);
    const char *second = memmem(cl->rx, cl->rx_len, "\r\n\r\nHTTP/1.1 200 OK\r\n", 21);
    assert_non_null(second);
}

static void test_http10_and_close(void **state)
{
    (void)state;
    char req[256];
    snprintf(req, sizeof req,
             "POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(ping_body), ping_body);
    send_str(cl, req);
    next_answer(cl);
    assert_pong();
    assert_true(has_header("Connection: keep-alive\r\n"));
    snprintf(req, sizeof req, "POST / HTTP/1.0\r\nContent-Length: %zu\r\n\r\n%s", strlen(ping_body),
             ping_body);
    send_str(cl, req);
    next_answer(cl);
    assert_pong();
    assert_true(has_header("Connection: close\r\n"));
    wait_eof(cl);

    client_t *c2 = client_open();
    send_str(c2, post("/", ping_body, "Connection: close\r\n"));
    send_str(c2, post("/", ping_body, "")); /* after close: never answered */
    next_answer(c2);
    assert_pong();
    assert_true(has_header("Connection: close\r\n"));
    shutdown(c2->fd, SHUT_WR);
    wait_eof(c2);
    assert_int_equal(c2->rx_len, 0);
    client_free(c2);
}

/* A half-closing client still gets every answer, then the connection closes. */
static void test_half_close(void **state)
{
    (void)state;
    send_str(cl, post_slow(30, 1));
    send_str(cl, post("/", ping_body, ""));
    shutdown(cl->fd, SHUT_WR);
    next_answer(cl);
    assert_int_equal(ans.status, 200);
    next_answer(cl);
    assert_pong();
    assert_true(has_header("Connection: close\r\n"));
    wait_eof(cl);
}

/* The client vanishes with a call in flight: the request is detached and freed. */
static void test_client_gone(void **state)
{
    (void)state;
    send_str(cl, post_slow(50, 1));
    settle(cl);
    assert_int_equal(loop.holds, 2); /* the connection and its request */
    struct linger lg = {1, 0};
    setsockopt(cl->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(cl->fd);
    cl->fd = -1;
    wait_no_conns(); /* also waits for the engine to free the detached request */
}

static void test_drain(void **state)
{
    (void)state;
    client_t *idle = client_open();
    send_str(idle, post("/", ping_body, ""));
    next_answer(idle);
    send_str(cl, post_slow(50, 1));
    settle(cl);
    jrpc__loop_drain(&loop);
    wait_eof(idle);
    assert_int_equal(idle->rx_len, 0);
    next_answer(cl);
    assert_int_equal(ans.status, 200);
    assert_true(has_header("Connection: close\r\n"));
    wait_eof(cl);
    client_free(idle);
    loop.stopping = 0;
}

static void test_close_all(void **state)
{
    (void)state;
    send_str(cl, post_slow(50, 1));
    settle(cl);
    jrpc__loop_close_all(&loop);
    wait_eof(cl);
    assert_int_equal(cl->rx_len, 0);
    wait_no_conns();
}

static void test_large_body(void **state)
{
    (void)state;
    /* Just under max_body, in pieces: the known length is read in place. */
    char body[MAX_BODY];
    int n = snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[\"");
    memset(body + n, 'x', sizeof body - (size_t)n - 40);
    snprintf(body + sizeof body - 40, 40, "\"],\"id\":9}");
    char head[128];
    snprintf(head, sizeof head, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
             strlen(body));
    send_str(cl, head);
    for (size_t off = 0; off < strlen(body); off += 1000) {
        size_t len = strlen(body) - off < 1000 ? strlen(body) - off : 1000;
        send_bytes(cl, body + off, len);
        settle(cl);
    }
    next_answer(cl);
    assert_int_equal(ans.status, 200);
    assert_non_null(strstr(ans.body, "\"id\":9"));
    assert_true(ans.body_len > MAX_BODY - 100);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as jrpcd does: a write to a gone client must not kill us */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunk_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_browser, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expect_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_413_content_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_413_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_and_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http10_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_body, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
