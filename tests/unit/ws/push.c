/* SPDX-License-Identifier: MIT */
/* Unit tests of server push (src/ws/push.c) in-process: one real libuv loop on this thread, the
 * real engine and worker pool, and WebSocket connections made by an HTTP upgrade over socketpairs,
 * so every frame the server writes is read and checked. Notifications from workers and from
 * threads of the test's own, their order against each other and against the reply, subscriptions
 * whose pushes wait for their id, every way a subscription ends (and that end_cb runs once, on
 * the loop), and references that outlive the connection. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* conn_serve (static) serves HTTP on a socketpair's end; an upgrade hands it to src/ws. */
#include "http/conn.c"
#include "http/parse.c"
#include "http/response.c"
#include "server.h"

static jrpc_server_t *srv;
static jrpc__loop_t loop;
static uv_thread_t test_thread; /* runs the loop */
static unsigned deadline_ms;    /* 0: the default */
static size_t max_queue;        /* ws_max_queue; 0: the default */
static unsigned max_subs;       /* ws_max_subscriptions; 0: the default */

#define WAIT_MS 10000 /* bound on every wait: far past what the work takes, even under TSan */

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static int on_test_thread(void)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &test_thread);
}

/* ---- Handlers -------------------------------------------------------------------------------- */

static jrpc_conn_t *hello_conn;        /* what the last hello saw (a reference) */
static jrpc_call_t *gate_call;         /* the last gate call, unanswered */
static jrpc_sub_t *inline_sub;         /* the last sub call's subscription (its caller's ref) */
static _Atomic(jrpc_sub_t *) work_sub; /* the same for sub_worker and sub_wait */
static atomic_int push_failures;       /* pushes (in handlers) that were not accepted */
static uv_sem_t go;                    /* lets sub_wait go on */
static atomic_int waiting;             /* sub_wait handlers blocked on go */
static jrpc__post_t marker;            /* posted by a worker after its pushes */
static int marker_ran;

/* end_cb's records: the subscribing handlers' params[1] picks one. */
typedef struct ends {
    int count;       /* end_cb calls */
    int off_thread;  /* ... not on the loop's thread */
    jrpc_sub_t *sub; /* the subscription of the last call */
} ends_t;
static ends_t ends[2];

static void on_end(jrpc_sub_t *sub, void *data)
{
    ends_t *e = data;
    e->count++;
    if (!on_test_thread())
        e->off_thread++;
    e->sub = sub;
}

static void on_marker(jrpc__post_t *p)
{
    (void)p;
    marker_ran = 1;
}

/* params[i] as an integer, 0 when absent. */
static int64_t param(jrpc_call_t *call, size_t i)
{
    int64_t n = 0;
    jrpc_json_t v;
    if (jrpc_json_at(jrpc_call_params(call), i, &v) == 0)
        jrpc_json_int64(v, &n);
    return n;
}

static void note_push(int rc)
{
    if (rc != 0)
        atomic_fetch_add(&push_failures, 1);
}

static void hello(jrpc_call_t *call, void *data)
{
    (void)data;
    if (hello_conn != NULL)
        jrpc_conn_unref(hello_conn);
    hello_conn = jrpc_conn_ref(jrpc_call_conn(call));
    jrpc_reply_raw(call, "\"hi\"", 4);
}

/* params [n]: n notifications "tick" [0] … [n-1], then the reply n. */
static void burst(jrpc_call_t *call, void *data)
{
    (void)data;
    int64_t n = param(call, 0);
    jrpc_conn_t *c = jrpc_call_conn(call);
    for (int64_t i = 0; i < n; i++) {
        char p[32];
        int len = snprintf(p, sizeof p, "[%lld]", (long long)i);
        note_push(jrpc_conn_notify(c, "tick", p, (size_t)len));
    }
    jrpc_reply_int64(call, n);
}

/* Starts a subscription "ev" and pushes "r0" … "r<n-1>" at once: params [n, record]. */
static jrpc_sub_t *subscribe_and_push(jrpc_call_t *call)
{
    int64_t n = param(call, 0);
    jrpc_sub_t *sub = jrpc_sub_start(call, "ev", on_end, &ends[param(call, 1) != 0]);
    for (int64_t i = 0; sub != NULL && i < n; i++) {
        char r[32];
        int len = snprintf(r, sizeof r, "\"r%lld\"", (long long)i);
        note_push(jrpc_sub_push(sub, r, (size_t)len));
    }
    return sub;
}

/* params [n, record], inline: pushes made inside the handler, before its answer exists. */
static void sub_inline(jrpc_call_t *call, void *data)
{
    (void)data;
    inline_sub = subscribe_and_push(call);
}

/* params [n, record], on a worker: pushes posted from the worker, then the marker. */
static void sub_worker(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_sub_t *sub = subscribe_and_push(call);
    atomic_store(&work_sub, sub);
    jrpc__loop_post(&loop, &marker);
}

/* sub_worker once the test says go (the call may have timed out by then). */
static void sub_wait(jrpc_call_t *call, void *data)
{
    atomic_fetch_add(&waiting, 1);
    uv_sem_wait(&go);
    atomic_fetch_sub(&waiting, 1);
    sub_worker(call, data);
}

/* ASYNC: kept for the test to answer. */
static void gate(jrpc_call_t *call, void *data)
{
    (void)data;
    gate_call = call;
}

/* ---- Client ---------------------------------------------------------------------------------- */

typedef struct client {
    int fd;            /* our end of the socketpair (-1 once closed) */
    jrpc_conn_t *conn; /* the server's connection (a reference, from hello) */
    char rx[1 << 20];  /* bytes received, not yet consumed */
    size_t rx_len;
    int eof; /* the server closed */
} client_t;

/* One frame from the server. */
typedef struct frame {
    unsigned op;
    size_t len;
    char data[1 << 16]; /* NUL-terminated */
} frame_t;

static client_t *cl;
static frame_t fr;

/* Runs the loop once without blocking and takes what the server wrote. */
static void pump(client_t *c)
{
    uv_run(&loop.uv, UV_RUN_NOWAIT);
    while (c != NULL && c->fd >= 0 && !c->eof && c->rx_len < sizeof(c->rx)) {
        ssize_t n = read(c->fd, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len);
        if (n > 0)
            c->rx_len += (size_t)n;
        else if (n == 0 || (errno != EAGAIN && errno != EINTR))
            c->eof = 1;
        else
            break;
    }
}

/* Runs the loop until cond holds, failing after WAIT_MS. */
#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        uint64_t end_ = now_ms() + WAIT_MS;                                                        \
        while (!(cond)) {                                                                          \
            assert_true(now_ms() < end_);                                                          \
            pump(cl);                                                                              \
        }                                                                                          \
    } while (0)

static void send_bytes(client_t *c, const void *p, size_t n)
{
    uint64_t end = now_ms() + WAIT_MS;
    const char *q = p;
    while (n > 0) {
        ssize_t w = write(c->fd, q, n);
        if (w > 0) {
            q += w;
            n -= (size_t)w;
            continue;
        }
        assert_true(errno == EAGAIN || errno == EINTR);
        assert_true(now_ms() < end);
        pump(c);
    }
}

/* Sends text as one masked text frame (clients must mask, RFC 6455 §5.3). */
static void send_text(client_t *c, const char *text)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t len = strlen(text);
    uint8_t *f = malloc(JRPC__WS_HEAD_MAX + 4 + len);
    assert_non_null(f);
    size_t h = jrpc__ws_frame_header(f, JRPC__WS_TEXT, len);
    f[1] |= 0x80;
    memcpy(f + h, key, 4);
    for (size_t i = 0; i < len; i++)
        f[h + 4 + i] = (uint8_t)text[i] ^ key[i & 3];
    send_bytes(c, f, h + 4 + len);
    free(f);
}

/* The length of a whole frame at the front of c->rx, or 0 when not all there yet. */
static size_t frame_complete(const client_t *c, size_t *head, uint64_t *len)
{
    const uint8_t *p = (const uint8_t *)c->rx;
    if (c->rx_len < 2)
        return 0;
    assert_int_equal(p[1] & 0x80, 0); /* server frames are never masked */
    *head = 2;
    *len = p[1] & 0x7f;
    if (*len == 126) {
        *head = 4;
        if (c->rx_len < 4)
            return 0;
        *len = (uint64_t)p[2] << 8 | p[3];
    } else if (*len == 127) {
        *head = 10;
        if (c->rx_len < 10)
            return 0;
        *len = 0;
        for (int i = 2; i < 10; i++)
            *len = *len << 8 | p[i];
    }
    return c->rx_len >= *head + *len ? *head + (size_t)*len : 0;
}

/* Waits (bounded) for the next frame and moves it into `fr`. */
static void next_frame(client_t *c)
{
    uint64_t end = now_ms() + WAIT_MS;
    size_t n, head;
    uint64_t len;
    while ((n = frame_complete(c, &head, &len)) == 0) {
        assert_true(now_ms() < end);
        if (c->eof)
            fail_msg("connection closed before a whole frame (%zu bytes)", c->rx_len);
        pump(c);
    }
    assert_true(len < sizeof fr.data);
    const uint8_t *p = (const uint8_t *)c->rx;
    assert_int_equal(p[0] & 0x80, 0x80); /* FIN: the server does not fragment */
    fr.op = p[0] & 0x0f;
    fr.len = (size_t)len;
    memcpy(fr.data, c->rx + head, fr.len);
    fr.data[fr.len] = '\0';
    memmove(c->rx, c->rx + n, c->rx_len - n);
    c->rx_len -= n;
}

static int frame_has(const char *s)
{
    return strstr(fr.data, s) != NULL;
}

/* The next frame is the answer of a call with this id (a text frame carrying "id":id). */
static void expect_answer(client_t *c, int id)
{
    next_frame(c);
    char want[32];
    snprintf(want, sizeof want, "\"id\":%d}", id);
    assert_int_equal(fr.op, JRPC__WS_TEXT);
    if (!frame_has(want))
        fail_msg("expected the answer of id %d, got %s", id, fr.data);
}

/* A round trip of hello with this id: the next frame must be its answer, which shows that nothing
 * else was sent before it. */
static void sentinel(client_t *c, int id)
{
    char req[96];
    snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"method\":\"hello\",\"id\":%d}", id);
    send_text(c, req);
    expect_answer(c, id);
    assert_true(frame_has("\"result\":\"hi\""));
}

/* A WebSocket connection: the upgrade, its 101, and a hello for the connection's reference. */
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
    assert_non_null(conn_serve(&loop, s));
    static const char up[] =
        "GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    send_bytes(c, up, sizeof up - 1);
    uint64_t end = now_ms() + WAIT_MS;
    const char *eoh;
    while ((eoh = memmem(c->rx, c->rx_len, "\r\n\r\n", 4)) == NULL) {
        assert_true(now_ms() < end);
        assert_false(c->eof);
        pump(c);
    }
    size_t head = (size_t)(eoh - c->rx) + 4;
    assert_int_equal(memcmp(c->rx, "HTTP/1.1 101 ", 13), 0);
    assert_non_null(memmem(c->rx, head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 50));
    memmove(c->rx, c->rx + head, c->rx_len - head);
    c->rx_len -= head;

    jrpc_conn_t *before = hello_conn;
    sentinel(c, 0);
    assert_true(hello_conn != NULL && hello_conn != before);
    c->conn = jrpc_conn_ref(hello_conn);
    return c;
}

/* The client goes away (a close without the close handshake: the server sees the end). */
static void client_close(client_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static void client_free(client_t *c)
{
    client_close(c);
    if (c->conn != NULL)
        jrpc_conn_unref(c->conn);
    free(c);
}

static void wait_no_conns(void)
{
    RUN_UNTIL(loop.holds == 0);
}

/* The subscription id of the answer in `fr` ("\"0x…\"", 36 bytes) into id[37]. */
static void answer_sub_id(char id[37])
{
    const char *r = strstr(fr.data, "\"result\":\"0x");
    if (r == NULL)
        fail_msg("no subscription id in %s", fr.data);
    memcpy(id, r + 9, 36);
    id[36] = '\0';
    assert_int_equal(id[35], '"');
}

/* The next frame is push "r<i>" of the subscription id. */
static void expect_push(client_t *c, const char *id, int i)
{
    next_frame(c);
    char want[96];
    snprintf(want, sizeof want, "\"params\":{\"subscription\":%s,\"result\":\"r%d\"}}", id, i);
    if (fr.op != JRPC__WS_TEXT || !frame_has("\"method\":\"ev\"") || !frame_has(want))
        fail_msg("expected push r%d of %s, got %s", i, id, fr.data);
}

static void expect_tick(client_t *c, int i)
{
    next_frame(c);
    char want[96];
    snprintf(want, sizeof want, "{\"jsonrpc\":\"2.0\",\"method\":\"tick\",\"params\":[%d]}", i);
    if (strcmp(fr.data, want) != 0)
        fail_msg("expected tick %d, got %s", i, fr.data);
}

static int setup(void **state)
{
    (void)state;
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.io_threads = 1;
    cfg.workers = 2;
    cfg.hosts = "t"; /* the Host the requests below give */
    if (deadline_ms != 0)
        cfg.deadline_ms = deadline_ms;
    if (max_queue != 0)
        cfg.ws_max_queue = max_queue;
    if (max_subs != 0)
        cfg.ws_max_subscriptions = max_subs;
    srv = jrpc_server_new(&cfg);
    assert_non_null(srv);
    assert_int_equal(jrpc_method_add(srv, "hello", hello, NULL, JRPC_INLINE), 0);
    assert_int_equal(jrpc_method_add(srv, "burst", burst, NULL, JRPC_WORKER), 0);
    assert_int_equal(jrpc_method_add(srv, "burst_inline", burst, NULL, JRPC_INLINE), 0);
    assert_int_equal(jrpc_method_add(srv, "sub", sub_inline, NULL, JRPC_INLINE), 0);
    assert_int_equal(jrpc_method_add(srv, "sub_worker", sub_worker, NULL, JRPC_WORKER), 0);
    assert_int_equal(jrpc_method_add(srv, "sub_wait", sub_wait, NULL, JRPC_WORKER), 0);
    assert_int_equal(jrpc_method_add(srv, "gate", gate, NULL, JRPC_ASYNC), 0);
    assert_int_equal(jrpc_method_add(srv, "unsub", jrpc_sub_unsubscribe, NULL, JRPC_INLINE), 0);
    assert_int_equal(jrpc__loop_open(&srv->io, &loop), 0);
    test_thread = uv_thread_self();
    assert_int_equal(uv_sem_init(&go, 0), 0);
    marker.cb = on_marker;
    marker_ran = 0;
    memset(ends, 0, sizeof ends);
    gate_call = NULL;
    inline_sub = NULL;
    atomic_store(&work_sub, NULL);
    atomic_store(&push_failures, 0);
    cl = client_open();
    return 0;
}

static int setup_deadline(void **state)
{
    deadline_ms = 100;
    return setup(state);
}

static int setup_small_queue(void **state)
{
    max_queue = 64u << 10;
    return setup(state);
}

static int setup_few_subs(void **state)
{
    max_subs = 2;
    return setup(state);
}

static int teardown(void **state)
{
    (void)state;
    while (atomic_load(&waiting) > 0) { /* a failed test must not leave a worker blocked */
        uv_sem_post(&go);
        uv_run(&loop.uv, UV_RUN_NOWAIT);
    }
    if (gate_call != NULL) {
        jrpc_reply_raw(gate_call, "null", 4);
        gate_call = NULL;
    }
    client_close(cl);
    wait_no_conns();
    client_free(cl);
    cl = NULL;
    if (hello_conn != NULL)
        jrpc_conn_unref(hello_conn);
    hello_conn = NULL;
    assert_int_equal(jrpc__loop_finish(&loop), 0);
    /* Everything requests and answers held was given back (acct.c's totals). */
    assert_int_equal(atomic_load(&srv->io.mem_held), 0);
    assert_int_equal(atomic_load(&srv->io.calls_held), 0);
    uv_sem_destroy(&go);
    jrpc_server_free(srv);
    deadline_ms = 0;
    max_queue = 0;
    max_subs = 0;
    return 0;
}

/* ---- Notifications --------------------------------------------------------------------------- */

/* A handler's notifications, posted from a worker, arrive in order and before its reply; the same
 * inline (straight to the output). Many runs, since the order comes from a queue between threads.
 */
static void test_notify_before_reply(void **state)
{
    (void)state;
    for (int run = 0; run < 20; run++) {
        const char *method = run % 2 == 0 ? "burst" : "burst_inline";
        char req[128];
        snprintf(req, sizeof req,
                 "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"params\":[200],\"id\":%d}", method,
                 run + 1);
        send_text(cl, req);
        for (int i = 0; i < 200; i++)
            expect_tick(cl, i);
        expect_answer(cl, run + 1);
        assert_true(frame_has("\"result\":200"));
    }
    assert_int_equal(atomic_load(&push_failures), 0);
}

typedef struct producer {
    jrpc_conn_t *conn; /* a reference, dropped when done */
    const char *method;
    int n;
    int failures;
} producer_t;

static void produce(void *arg)
{
    producer_t *p = arg;
    for (int i = 0; i < p->n; i++) {
        char params[32];
        int len = snprintf(params, sizeof params, "[%d]", i);
        if (jrpc_conn_notify(p->conn, p->method, params, (size_t)len) != 0)
            p->failures++;
    }
    jrpc_conn_unref(p->conn);
}

/* Two threads of the test's own notify at once: each one's notifications arrive in its order. */
static void test_notify_from_threads(void **state)
{
    (void)state;
    enum { N = 300 };
    producer_t p[2] = {{jrpc_conn_ref(cl->conn), "tick", N, 0},
                       {jrpc_conn_ref(cl->conn), "tock", N, 0}};
    uv_thread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(uv_thread_create(&t[i], produce, &p[i]), 0);
    int next[2] = {0, 0};
    while (next[0] + next[1] < 2 * N) {
        next_frame(cl);
        int k = strstr(fr.data, "\"method\":\"tick\"") != NULL ? 0 : 1;
        char want[96];
        snprintf(want, sizeof want, "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"params\":[%d]}",
                 p[k].method, next[k]);
        if (strcmp(fr.data, want) != 0)
            fail_msg("expected %s, got %s", want, fr.data);
        next[k]++;
    }
    for (int i = 0; i < 2; i++) {
        uv_thread_join(&t[i]);
        assert_int_equal(p[i].failures, 0);
    }
    sentinel(cl, 1);
}

static void test_notify_shape(void **state)
{
    (void)state;
    assert_int_equal(jrpc_conn_notify(cl->conn, NULL, "[]", 2), JRPC_EINVAL);
    assert_int_equal(jrpc_conn_notify(NULL, "m", "[]", 2), JRPC_EINVAL);
    assert_int_equal(jrpc_conn_notify(cl->conn, "a\"b", NULL, 0), 0);
    assert_int_equal(jrpc_conn_notify(cl->conn, "m", "{\"k\":[1,2]}", 11), 0);
    next_frame(cl);
    assert_string_equal(fr.data, "{\"jsonrpc\":\"2.0\",\"method\":\"a\\\"b\"}");
    next_frame(cl);
    assert_string_equal(fr.data, "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":{\"k\":[1,2]}}");
}

/* ---- Subscriptions: the id first ------------------------------------------------------------- */

/* Pushes made inside the subscribing handler wait for its answer, which carries the id. */
static void test_sub_id_first(void **state)
{
    (void)state;
    send_text(cl, "{\"jsonrpc\":\"2.0\",\"method\":\"sub\",\"params\":[3],\"id\":2}");
    expect_answer(cl, 2);
    char id[37];
    answer_sub_id(id);
    jrpc_str_t sid = jrpc_sub_id(inline_sub);
    assert_int_equal(sid.len, 36);
    assert_memory_equal(sid.ptr, id, 36);
    for (int i = 0; i < 3; i++)
        expect_push(cl, id, i);
    /* From here pushes go straight out. */
    assert_int_equal(jrpc_sub_push(inline_sub, "\"r3\"", 4), 0);
    expect_push(cl, id, 3);
    assert_int_equal(atomic_load(&push_failures), 0);
    assert_int_equal(ends[0].count, 0);
    jrpc_sub_unref(inline_sub);
}

/* In a batch the answer waits for its slowest item: the pushes wait with it, whether made inline
 * or posted from a worker, and follow the batch's answer in order. */
static void test_sub_held_in_batch(void **state)
{
    (void)state;
    send_text(cl, "[{\"jsonrpc\":\"2.0\",\"method\":\"sub\",\"params\":[2],\"id\":3},"
                  "{\"jsonrpc\":\"2.0\",\"method\":\"sub_worker\",\"params\":[3],\"id\":4},"
                  "{\"jsonrpc\":\"2.0\",\"method\":\"gate\",\"id\":5}]");
    RUN_UNTIL(gate_call != NULL && marker_ran);
    /* Every push has reached the loop (the marker was posted after them): none may be out. */
    pump(cl);
    assert_int_equal(cl->rx_len, 0);
    jrpc_reply_raw(gate_call, "\"open\"", 6);
    gate_call = NULL;

    next_frame(cl);
    assert_int_equal(fr.data[0], '[');
    assert_true(frame_has("\"result\":\"open\",\"id\":5}"));
    char id_inline[37], id_worker[37];
    jrpc_str_t s1 = jrpc_sub_id(inline_sub), s2 = jrpc_sub_id(atomic_load(&work_sub));
    memcpy(id_inline, s1.ptr, 36);
    memcpy(id_worker, s2.ptr, 36);
    id_inline[36] = id_worker[36] = '\0';
    assert_non_null(strstr(fr.data, id_inline));
    assert_non_null(strstr(fr.data, id_worker));
    /* Each subscription's pushes in order; the two may interleave. */
    int next_inline = 0, next_worker = 0;
    while (next_inline + next_worker < 5) {
        next_frame(cl);
        int inl = strstr(fr.data, id_inline) != NULL;
        char want[96];
        snprintf(want, sizeof want, "\"result\":\"r%d\"}}", inl ? next_inline : next_worker);
        if (!frame_has(want))
            fail_msg("expected r%d of the %s subscription, got %s", inl ? next_inline : next_worker,
                     inl ? "inline" : "worker", fr.data);
        if (inl)
            next_inline++;
        else
            next_worker++;
    }
    assert_int_equal(next_inline, 2);
    assert_int_equal(atomic_load(&push_failures), 0);
    jrpc_sub_unref(inline_sub);
    jrpc_sub_unref(atomic_load(&work_sub));
}

/* ---- Subscriptions: the end ------------------------------------------------------------------ */

/* The producer ends it: pushes are refused at once, end_cb runs once, later and on the loop. */
static void test_sub_end(void **state)
{
    (void)state;
    send_text(cl, "{\"jsonrpc\":\"2.0\",\"method\":\"sub\",\"params\":[0],\"id\":2}");
    expect_answer(cl, 2);
    jrpc_sub_t *sub = inline_sub;
    jrpc_sub_end(sub);
    assert_int_equal(ends[0].count, 0); /* never inside the call */
    assert_int_equal(jrpc_sub_push(sub, "1", 1), JRPC_ECLOSED);
    RUN_UNTIL(ends[0].count == 1);
    assert_ptr_equal(ends[0].sub, sub);
    assert_int_equal(ends[0].off_thread, 0);
    jrpc_sub_end(sub); /* ended already: nothing */
    assert_int_equal(jrpc_sub_push(sub, "2", 1), JRPC_ECLOSED);
    sentinel(cl, 3); /* nothing of the subscription came out */
    client_close(cl);
    wait_no_conns();
    assert_int_equal(ends[0].count, 1); /* not again at the close */
    jrpc_sub_unref(sub);
}

static void end_from_thread(void *arg)
{
    jrpc_sub_t *sub = arg;
    jrpc_sub_end(sub);
    if (jrpc_sub_push(sub, "0", 1) != JRPC_ECLOSED)
        atomic_fetch_add(&push_failures, 1);
    jrpc_sub_unref(sub);
}

/* Ended from another thread: end_cb still runs on the loop. */
static void test_sub_end_from_thread(void **state)
{
    (void)state;
    send_text(cl, "{\"jsonrpc\":\"2.0\",\"method\":\"sub\",\"params\":[0],\"id\":2}");
    expect_answer(cl, 2);
    jrpc_sub_t *sub = inline_sub;
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, end_from_thread, jrpc_sub_ref(sub)), 0);
    RUN_UNTIL(ends[0].count == 1);
    uv_thread_join(&t);
    assert_int_equal(ends[0].off_thread, 0);
    assert_int_equal(atomic_load(&push_failures), 0);
    sentinel(cl, 3);
    assert_int_equal(ends[0].count, 1);
    jrpc_sub_unref(sub);
}

/* The client unsubscribes: answered true, end_cb once; a second time: not found. */
static void test_unsubscribe(void **state)
{
    (void)state;
    send_text(cl, "{\"jsonrpc\":\"2.0\",\"method\":\"sub\",\"params\":[0],\"id\":2}");
    expect_answer(cl, 2);
    char id[37], req[160];
    answer_sub_id(id);
    snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"method\":\"unsub\",\"params\":[%s],\"id\":3}",
             id);
    send_text(cl, req);
    expect_answer(cl, 3);
    assert_true(frame_has("\"result\":true"));
    assert_int_equal(jrpc_sub_push(inline_sub, "1", 1), JRPC_ECLOSED);
    RUN_UNTIL(ends[0].count == 1);
    assert_int_equal(ends[0].off_thread, 0);

    snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"method\":\"unsub\",\"params\":[%s],\"id\":4}",
             id);
    send_text(cl, req);
    expect_answer(cl, 4);
    assert_true(frame_has("\"code\":-32000"));
    assert_true(frame_has("subscription not found"));
    send_text(cl, "{\"jsonrpc\":\"2.0\",\"method\":\"unsub\",\"params\":[1],\"id\":5}");
    expect_answer(cl, 5);
    assert_true(frame_has("\"code\":-32602"));

    client_close(cl);
    wait_no_conns();
    assert_int_equal(ends[0].count, 1);
    jrpc_sub_unref(inline_sub);
}

/* The connection closes: every live subscription ends once, on the loop; the connection says it is
 * closed and refuses sends; the references keep both objects valid until dropped (ASan checks
 * the use and the free). */
static void test_close_ends_subs(void **state)
{
    (void)state;
    ends_t *e2 = &ends[1];
    send_text(cl, "{\"jsonrpc\":\"2.0\",\"method\":\"sub\",\"params\":[0],\"id\":2}");
    expect_answer(cl, 2);
    jrpc_sub_t *s1 = inline_sub;
    send_text(cl, "{\"jsonrpc\":\"2.0\",\"method\":\"sub\",\"params\":[0,1],\"id\":3}");
    expect_answer(cl, 3);
    jrpc_sub_t *s2 = inline_sub;
    assert_true(jrpc_conn_is_open(cl->conn));

    client_close(cl);
    wait_no_conns();
    assert_int_equal(ends[0].count, 1);
    assert_ptr_equal(ends[0].sub, s1);
    assert_int_equal(e2->count, 1);
    assert_ptr_equal(e2->sub, s2);
    assert_int_equal(ends[0].off_thread + e2->off_thread, 0);
    assert_false(jrpc_conn_is_open(cl->conn));
    assert_int_equal(jrpc_conn_notify(cl->conn, "m", NULL, 0), JRPC_ECLOSED);
    assert_int_equal(jrpc_sub_push(s1, "1", 1), JRPC_ECLOSED);
    jrpc_sub_end(s2);
    for (int i = 0; i < 5; i++)
        uv_run(&loop.uv, UV_RUN_NOWAIT);
    assert_int_equal(ends[0].count + e2->count, 2);
    /* The last references go in any order: here the subscriptions' after the connection's. */
    jrpc_conn_unref(cl->conn);
    cl->conn = NULL;
    jrpc_conn_unref(hello_conn);
    hello_conn = NULL;
    assert_int_equal(jrpc_sub_push(s2, "1", 1), JRPC_ECLOSED);
    jrpc_sub_unref(s1);
    jrpc_sub_unref(s2);
}

typedef struct pusher {
    jrpc_conn_t *conn; /* references, dropped when done */
    jrpc_sub_t *sub;
    atomic_int pushed; /* accepted so far */
    int rc;            /* what ended the pushing */
    int open_after;    /* jrpc_conn_is_open then */
} pusher_t;

static void push_until_closed(void *arg)
{
    pusher_t *p = arg;
    uint64_t end = now_ms() + WAIT_MS;
    for (;;) {
        int rc = atomic_load(&p->pushed) % 2 == 0 ? jrpc_conn_notify(p->conn, "m", "[1]", 3)
                                                  : jrpc_sub_push(p->sub, "1", 1);
        if (rc != 0 || now_ms() > end) {
            p->rc = rc;
            break;
        }
        atomic_fetch_add(&p->pushed, 1);
    }
    p->open_after = jrpc_conn_is_open(p->conn);
    jrpc_sub_unref(p->sub);
    jrpc_conn_unref(p->conn);
}

/* A producer on another thread pushes while the connection closes under it: it is told
 * JRPC_ECLOSED, and its references stay valid until it drops them. */
static void test_close_under_producer(void **state)
{
    (void)state;
    send_text(cl, "{\"jsonrpc\":\"2.0\",\"method\":\"sub\",\"params\":[0],\"id\":2}");
    expect_answer(cl, 2);
    pusher_t p;
    p.conn = jrpc_conn_ref(cl->conn);
    p.sub = inline_sub; /* the caller's reference, handed to the thread */
    atomic_init(&p.pushed, 0);
    p.rc = 0;
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, push_until_closed, &p), 0);
    RUN_UNTIL(atomic_load(&p.pushed) >= 100);
    client_close(cl);
    wait_no_conns();
    uv_thread_join(&t);
    assert_int_equal(p.rc, JRPC_ECLOSED);
    assert_int_equal(p.open_after, 0);
    assert_int_equal(ends[0].count, 1);
}

/* ---- Subscriptions whose id never reaches the client ----------------------------------------- */

/* The subscribe call timed out (its -32002 went out) and the subscription is started afterwards:
 * it ends as the call completes, end_cb runs from the loop, and nothing of it is sent (its start
 * on the loop thread completes the call at once, so no push is ever accepted). */
static void test_sub_after_deadline(void **state)
{
    (void)state;
    send_text(cl, "{\"jsonrpc\":\"2.0\",\"method\":\"gate\",\"id\":7}");
    expect_answer(cl, 7);
    assert_true(frame_has("\"code\":-32002"));
    jrpc_sub_t *sub = jrpc_sub_start(gate_call, "ev", on_end, &ends[0]); /* an ASYNC handler's late
                                                                         start, on the loop */
    gate_call = NULL;
    assert_non_null(sub);
    assert_int_equal(ends[0].count, 0); /* never inside the call */
    assert_int_equal(jrpc_sub_push(sub, "1", 1), JRPC_ECLOSED);
    RUN_UNTIL(ends[0].count == 1);
    assert_int_equal(ends[0].off_thread, 0);
    sentinel(cl, 8);
    jrpc_sub_unref(sub);
}

/* A hello round trip (id) after a subscription that ended before its id reached the client: the
 * pushes accepted before it ended may still go out ahead of the answer (docs/websocket.md, "No
 * orphans"), but only those, in order, and nothing after them. */
static void sentinel_after_orphan(client_t *c, jrpc_sub_t *sub, int accepted, int id)
{
    char req[96], sid[37];
    jrpc_str_t s = jrpc_sub_id(sub);
    memcpy(sid, s.ptr, 36);
    sid[36] = '\0';
    snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"method\":\"hello\",\"id\":%d}", id);
    send_text(c, req);
    char want[32];
    snprintf(want, sizeof want, "\"id\":%d}", id);
    for (int k = 0;; k++) {
        next_frame(c);
        if (frame_has(want))
            break;
        assert_true(k < accepted);
        char push[96];
        snprintf(push, sizeof push, "\"params\":{\"subscription\":%s,\"result\":\"r%d\"}}", sid, k);
        if (!frame_has(push))
            fail_msg("expected the answer of id %d or push r%d, got %s", id, k, fr.data);
    }
    assert_true(frame_has("\"result\":\"hi\""));
}

/* The same from a worker that subscribes and pushes once the call has timed out: the pushes are
 * accepted (the call's completion has not reached the loop yet), the subscription ends when it
 * does, and later pushes are refused. */
static void test_sub_worker_after_deadline(void **state)
{
    (void)state;
    send_text(cl, "{\"jsonrpc\":\"2.0\",\"method\":\"sub_wait\",\"params\":[2],\"id\":7}");
    expect_answer(cl, 7);
    assert_true(frame_has("\"code\":-32002"));
    uv_sem_post(&go);
    RUN_UNTIL(marker_ran && ends[0].count == 1);
    assert_int_equal(ends[0].off_thread, 0);
    jrpc_sub_t *sub = atomic_load(&work_sub);
    assert_non_null(sub);
    assert_ptr_equal(ends[0].sub, sub);
    assert_int_equal(jrpc_sub_push(sub, "\"r2\"", 4), JRPC_ECLOSED);
    sentinel_after_orphan(cl, sub, 2 - atomic_load(&push_failures), 8);
    assert_int_equal(ends[0].count, 1);
    jrpc_sub_unref(sub);
}

/* A subscribe sent as a notification has no answer to carry the id: the subscription ends as the
 * call completes, and later pushes are refused. */
static void test_sub_as_notification(void **state)
{
    (void)state;
    send_text(cl, "{\"jsonrpc\":\"2.0\",\"method\":\"sub\",\"params\":[2]}");
    RUN_UNTIL(ends[0].count == 1);
    assert_int_equal(ends[0].off_thread, 0);
    assert_ptr_equal(ends[0].sub, inline_sub);
    assert_int_equal(atomic_load(&push_failures), 0); /* accepted while the call ran */
    assert_int_equal(jrpc_sub_push(inline_sub, "\"r2\"", 4), JRPC_ECLOSED);
    sentinel_after_orphan(cl, inline_sub, 2, 8);
    assert_int_equal(ends[0].count, 1);
    jrpc_sub_unref(inline_sub);
}

/* Over HTTP there is no connection to push to: the call is answered -32601. */
static void test_sub_over_http(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    jrpc__sock_t *s = jrpc__sock_open(&loop, sv[0]);
    assert_non_null(s);
    assert_non_null(conn_serve(&loop, s));
    static const char body[] = "{\"jsonrpc\":\"2.0\",\"method\":\"sub\",\"params\":[1],\"id\":1}";
    char req[256];
    int n = snprintf(req, sizeof req,
                     "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     sizeof body - 1, body);
    assert_int_equal(write(sv[1], req, (size_t)n), n);
    fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
    char got[2048];
    size_t len = 0;
    uint64_t end = now_ms() + WAIT_MS;
    for (;;) {
        assert_true(now_ms() < end);
        uv_run(&loop.uv, UV_RUN_NOWAIT);
        ssize_t r = read(sv[1], got + len, sizeof got - 1 - len);
        if (r == 0)
            break;
        if (r > 0)
            len += (size_t)r;
    }
    got[len] = '\0';
    assert_non_null(strstr(got, "\"code\":-32601"));
    assert_non_null(strstr(got, "notifications not supported"));
    assert_null(inline_sub);
    assert_int_equal(ends[0].count, 0);
    close(sv[1]);
}

/* ---- Bounds ---------------------------------------------------------------------------------- */

/* Notifies until refused (at most `n`): how many were accepted, and what refused the next. */
typedef struct flood {
    jrpc_conn_t *conn; /* a reference, dropped when done */
    int n;
    int pushed;
    int rc;
} flood_t;

static void flood(void *arg)
{
    flood_t *f = arg;
    for (f->pushed = 0; f->pushed < f->n; f->pushed++)
        if ((f->rc = jrpc_conn_notify(f->conn, "m", "[1]", 3)) != 0)
            break;
    jrpc_conn_unref(f->conn);
}

/* Pushes from another thread count against ws_max_queue when they are posted, with what they
 * hold (struct and buffer, not the 31 bytes of payload): while the loop does not run, a producer
 * is refused once ws_max_queue is held in the post queue, and the client is dropped. */
static void test_post_counts_against_queue(void **state)
{
    (void)state;
    /* What one such push holds: its struct, and its body in a first 256-byte buffer. */
    jrpc__ws_msg_t probe;
    memset(&probe, 0, sizeof probe);
    probe.body.cap = 256;
    size_t cost = jrpc__ws_msg_cost(&probe);
    flood_t f = {jrpc_conn_ref(cl->conn), 100000, 0, 0};
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, flood, &f), 0);
    uv_thread_join(&t); /* the loop did not run meanwhile: everything is still posted */
    assert_int_equal(f.rc, JRPC_ECLOSED);
    /* Accepted while less than the bound was held: the last one took it to or past the bound. */
    assert_int_equal((size_t)f.pushed, (max_queue + cost - 1) / cost);
    assert_false(jrpc_conn_is_open(cl->conn));
    assert_int_equal(jrpc_conn_notify(cl->conn, "m", "[1]", 3), JRPC_ECLOSED);
    RUN_UNTIL(cl->eof); /* the loop drops the client (it does not read: nothing is said) */
    wait_no_conns();
    assert_int_equal(atomic_load(&cl->conn->posted), 0);
}

/* A reading client is not dropped by pushes from another thread: the bound is on what is held,
 * and what is written leaves it. Four times ws_max_queue goes through in bursts the loop drains
 * between. */
static void test_post_bound_drains(void **state)
{
    (void)state;
    for (int round = 0; round < 4; round++) {
        flood_t f = {jrpc_conn_ref(cl->conn), 100, 0, 0};
        uv_thread_t t;
        assert_int_equal(uv_thread_create(&t, flood, &f), 0);
        uv_thread_join(&t);
        assert_int_equal(f.pushed, 100);
        for (int i = 0; i < 100; i++) {
            next_frame(cl);
            assert_string_equal(fr.data, "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[1]}");
        }
    }
    assert_int_equal(atomic_load(&cl->conn->posted), 0);
    sentinel(cl, 1);
}

/* ws_max_subscriptions live on one connection: one more is answered -32005 naming the limit (and
 * jrpc_sub_start returns NULL); unsubscribing makes room again; a closed one leaves the count. */
static void test_sub_cap(void **state)
{
    (void)state;
    char id[37];
    send_text(cl, "{\"jsonrpc\":\"2.0\",\"method\":\"sub\",\"params\":[0],\"id\":2}");
    expect_answer(cl, 2);
    answer_sub_id(id);
    jrpc_sub_t *s1 = inline_sub;
    send_text(cl, "{\"jsonrpc\":\"2.0\",\"method\":\"sub\",\"params\":[0],\"id\":3}");
    expect_answer(cl, 3);
    jrpc_sub_t *s2 = inline_sub;
    assert_non_null(s2);
    send_text(cl, "{\"jsonrpc\":\"2.0\",\"method\":\"sub\",\"params\":[0],\"id\":4}");
    expect_answer(cl, 4);
    assert_true(frame_has("\"code\":-32005"));
    assert_true(frame_has("limit 2 per connection (ws_max_subscriptions)"));
    assert_null(inline_sub);

    char req[160];
    snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"method\":\"unsub\",\"params\":[%s],\"id\":5}",
             id);
    send_text(cl, req);
    expect_answer(cl, 5);
    assert_true(frame_has("\"result\":true"));
    send_text(cl, "{\"jsonrpc\":\"2.0\",\"method\":\"sub\",\"params\":[0],\"id\":6}");
    expect_answer(cl, 6);
    assert_true(frame_has("\"result\":\"0x"));
    jrpc_sub_t *s3 = inline_sub;
    assert_non_null(s3);
    jrpc_sub_end(s2); /* the producer's end frees a place too */
    send_text(cl, "{\"jsonrpc\":\"2.0\",\"method\":\"sub\",\"params\":[0],\"id\":7}");
    expect_answer(cl, 7);
    assert_true(frame_has("\"result\":\"0x"));
    jrpc_sub_t *s4 = inline_sub;
    client_close(cl);
    wait_no_conns();
    assert_int_equal(cl->conn->nsubs, 0);
    jrpc_sub_unref(s1);
    jrpc_sub_unref(s2);
    jrpc_sub_unref(s3);
    jrpc_sub_unref(s4);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as jrpcd does: a write to a gone client must not kill us */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_notify_before_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_from_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sub_id_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sub_held_in_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sub_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sub_end_from_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsubscribe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_ends_subs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_under_producer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sub_after_deadline, setup_deadline, teardown),
        cmocka_unit_test_setup_teardown(test_sub_worker_after_deadline, setup_deadline, teardown),
        cmocka_unit_test_setup_teardown(test_sub_as_notification, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sub_over_http, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_counts_against_queue, setup_small_queue,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_post_bound_drains, setup_small_queue, teardown),
        cmocka_unit_test_setup_teardown(test_sub_cap, setup_few_subs, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
