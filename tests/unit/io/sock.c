/* SPDX-License-Identifier: MIT */
/* Unit tests of the connection core (src/io/sock.c) on one real libuv loop driven on this thread: a
 * sock on one end of a socketpair, owned by a small owner that records what it is told, and the
 * test on the other end. Reads into the loop's buffer and into the owner's room, the writer that
 * tries the socket first and queues the rest (the socketpair filled by a peer that does not read),
 * its order across calls and its queue size, the timer, the FIN, the close and what it releases,
 * and the hand-over to a new owner in the middle of a stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/internal.h"

static jrpc_config_t cfg;
static jrpc__io_t io;
static jrpc__loop_t loop;

/* ---- A test owner ---------------------------------------------------------------------------- */

/* What happened, in order, across owners and write requests. */
enum { EV_WRITE = 1, EV_WRITE2, EV_SHUT, EV_CLOSED };
static int events[64];
static int statuses[64];
static size_t nevents;

static void event(int what, int status)
{
    assert_true(nevents < sizeof events / sizeof events[0]);
    events[nevents] = what;
    statuses[nevents] = status;
    nevents++;
}

typedef struct owner {
    char rx[1 << 16]; /* bytes read, in order */
    size_t rx_len;
    int reads;                      /* read calls with bytes */
    int loop_buf;                   /* ... whose bytes were in the loop's buffer */
    int own_buf;                    /* ... whose bytes were in `room` */
    int eof;                        /* UV_EOF seen */
    int errors;                     /* other negative nread */
    int use_room;                   /* alloc offers room */
    char room[8];                   /* the owner's own room for the next read */
    int timeouts;                   /* ops->timeout calls */
    uint64_t timeout_at;            /* loop time of the last one */
    int drains;                     /* ops->drain calls */
    int close_nows;                 /* ops->close_now calls */
    int closed;                     /* ops->closed calls */
    struct owner *to;               /* hand the sock to this owner at the end of the first read */
    const jrpc__sock_ops_t *to_ops; /* ... with these ops */
} owner_t;

static void own_read(jrpc__sock_t *s, ssize_t nread, const uv_buf_t *buf)
{
    owner_t *o = s->owner;
    if (nread < 0) {
        if (nread == UV_EOF)
            o->eof++;
        else
            o->errors++;
        return;
    }
    assert_true((size_t)nread <= sizeof o->rx - o->rx_len);
    if (buf->base == loop.rbuf)
        o->loop_buf++;
    else if (buf->base == o->room)
        o->own_buf++;
    memcpy(o->rx + o->rx_len, buf->base, (size_t)nread);
    o->rx_len += (size_t)nread;
    o->reads++;
    if (o->to != NULL) {
        owner_t *to = o->to;
        o->to = NULL;
        jrpc__sock_own(s, o->to_ops, to); /* inside the read, as an HTTP upgrade does */
    }
}

static void own_alloc(jrpc__sock_t *s, uv_buf_t *buf)
{
    owner_t *o = s->owner;
    if (o->use_room) {
        buf->base = o->room;
        buf->len = sizeof o->room;
    }
}

static void own_timeout(jrpc__sock_t *s)
{
    ((owner_t *)s->owner)->timeouts++;
    ((owner_t *)s->owner)->timeout_at = uv_now(s->timer.loop);
}

static void own_drain(jrpc__sock_t *s)
{
    ((owner_t *)s->owner)->drains++;
}

static void own_close_now(jrpc__sock_t *s)
{
    ((owner_t *)s->owner)->close_nows++;
    jrpc__sock_close(s);
}

static void own_closed(jrpc__sock_t *s)
{
    ((owner_t *)s->owner)->closed++;
    event(EV_CLOSED, 0);
}

static const jrpc__sock_ops_t ops = {
    .read = own_read,
    .alloc = own_alloc,
    .timeout = own_timeout,
    .drain = own_drain,
    .close_now = own_close_now,
    .closed = own_closed,
};

/* The same owner without an alloc: reads always land in the loop's buffer. */
static const jrpc__sock_ops_t ops_no_alloc = {
    .read = own_read,
    .timeout = own_timeout,
    .drain = own_drain,
    .close_now = own_close_now,
    .closed = own_closed,
};

static void on_write(uv_write_t *wr, int status)
{
    event(wr->data != NULL ? EV_WRITE2 : EV_WRITE, status);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    event(EV_SHUT, status);
}

/* ---- Harness --------------------------------------------------------------------------------- */

static jrpc__sock_t *sock; /* the server's end (until closed) */
static int peer = -1;      /* our end, non-blocking */
static owner_t *a, *b;     /* owners (b: a hand-over's second) */

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

#define WAIT_MS 5000 /* bound on every wait: far past what a loop iteration takes */

/* Runs the loop until cond holds, failing after WAIT_MS. */
#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        uint64_t end_ = now_ms() + WAIT_MS;                                                        \
        while (!(cond)) {                                                                          \
            assert_true(now_ms() < end_);                                                          \
            uv_run(&loop.uv, UV_RUN_NOWAIT);                                                       \
        }                                                                                          \
    } while (0)

static void ref_timer_cb(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Runs the loop for ms by a timer of its own: a window in which something must NOT happen. */
static void run_for(uint64_t ms)
{
    uv_timer_t t;
    int fired = 0;
    uv_timer_init(&loop.uv, &t);
    t.data = &fired;
    uv_timer_start(&t, ref_timer_cb, ms, 0);
    while (!fired)
        uv_run(&loop.uv, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop.uv, UV_RUN_NOWAIT);
}

/* Reads what the peer can read now into p (at most cap); the count. Sets *eof at end of stream. */
static size_t peer_read(char *p, size_t cap, int *eof)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t n = read(peer, p + got, cap - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0)
            *eof = 1;
        else
            assert_true(errno == EAGAIN || errno == EINTR);
        break;
    }
    return got;
}

/* Reads exactly n bytes at the peer, running the loop meanwhile (bounded). */
static void peer_read_all(char *p, size_t n)
{
    uint64_t end = now_ms() + WAIT_MS;
    size_t got = 0;
    int eof = 0;
    while (got < n) {
        assert_true(now_ms() < end);
        uv_run(&loop.uv, UV_RUN_NOWAIT);
        got += peer_read(p + got, n - got, &eof);
        assert_false(eof && got < n);
    }
}

static void peer_write(const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(write(peer, s, n), (ssize_t)n);
}

/* A connected pair with small socket buffers, so a peer that does not read fills it quickly. */
static void pair_open(int small)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    if (small) {
        int sz = 4096;
        for (int i = 0; i < 2; i++) {
            setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
            setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        }
    }
    peer = sv[1];
    fcntl(peer, F_SETFL, fcntl(peer, F_GETFL) | O_NONBLOCK);
    sock = jrpc__sock_open(&loop, sv[0]);
    assert_non_null(sock);
    jrpc__sock_own(sock, &ops, a);
}

static void close_and_wait(void)
{
    jrpc__sock_close(sock);
    RUN_UNTIL(loop.holds == 0);
    sock = NULL;
}

/* Replaces the setup's pair by one with small buffers, with a fresh owner and event log. */
static void reopen_small(void)
{
    close_and_wait();
    close(peer);
    memset(a, 0, sizeof(*a));
    nevents = 0;
    pair_open(1);
}

static int setup(void **state)
{
    (void)state;
    jrpc_config_init(&cfg);
    cfg.workers = 1;
    assert_int_equal(jrpc__io_init(&io, &cfg, NULL), 0);
    assert_int_equal(jrpc__loop_open(&io, &loop), 0);
    a = calloc(1, sizeof(*a));
    b = calloc(1, sizeof(*b));
    assert_true(a != NULL && b != NULL);
    nevents = 0;
    pair_open(0);
    assert_int_equal(loop.holds, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (sock != NULL)
        close_and_wait();
    if (peer >= 0)
        close(peer);
    peer = -1;
    assert_int_equal(loop.holds, 0);
    assert_true(jrpc__list_empty(&loop.conns));
    assert_int_equal(jrpc__loop_finish(&loop), 0);
    jrpc__io_close(&io);
    free(a);
    free(b);
    return 0;
}

/* A payload whose every byte says where it is, so a reordered or repeated piece shows. */
static void pattern(char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)((i * 7 + seed) % 251);
}

/* ---- Reading --------------------------------------------------------------------------------- */

static void test_read_loop_buffer(void **state)
{
    (void)state;
    assert_int_equal(jrpc__sock_read(sock, 1), 0);
    assert_int_equal(jrpc__sock_read(sock, 1), 0); /* already on */
    assert_int_equal(sock->reading, 1);
    peer_write("hello");
    RUN_UNTIL(a->rx_len == 5);
    assert_memory_equal(a->rx, "hello", 5);
    assert_int_equal(a->loop_buf, a->reads);
    assert_int_equal(a->own_buf, 0);
    assert_non_null(loop.rbuf);

    /* Stopped: bytes that are ready stay in the socket (a non-blocking pass would see them). */
    assert_int_equal(jrpc__sock_read(sock, 0), 0);
    assert_int_equal(sock->reading, 0);
    peer_write("more");
    for (int i = 0; i < 5; i++)
        uv_run(&loop.uv, UV_RUN_NOWAIT);
    assert_int_equal(a->rx_len, 5);
    assert_int_equal(jrpc__sock_read(sock, 1), 0);
    RUN_UNTIL(a->rx_len == 9);
    assert_memory_equal(a->rx, "hellomore", 9);

    /* The peer's FIN arrives as UV_EOF. */
    shutdown(peer, SHUT_WR);
    RUN_UNTIL(a->eof == 1);
    assert_int_equal(a->errors, 0);
}

/* An owner that offers room of its own gets the bytes there, at most its size per read; with
 * no room offered (len 0) the loop's buffer takes over. */
static void test_read_own_room(void **state)
{
    (void)state;
    a->use_room = 1;
    assert_int_equal(jrpc__sock_read(sock, 1), 0);
    static const char msg[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    peer_write(msg);
    RUN_UNTIL(a->rx_len == sizeof msg - 1);
    assert_memory_equal(a->rx, msg, sizeof msg - 1);
    assert_true(a->reads >= (int)((sizeof msg - 1 + sizeof a->room - 1) / sizeof a->room));
    assert_int_equal(a->own_buf, a->reads);
    assert_int_equal(a->loop_buf, 0);

    a->use_room = 0;
    int before = a->reads;
    peer_write("tail");
    RUN_UNTIL(a->rx_len == sizeof msg - 1 + 4);
    assert_memory_equal(a->rx + sizeof msg - 1, "tail", 4);
    assert_int_equal(a->loop_buf, a->reads - before);
}

/* The hand-over inside a read (an upgrade): what arrives next goes to the new owner, with the new
 * owner's ops (here: no alloc, so the loop's buffer), and the close is the new owner's. */
static void test_own_mid_stream(void **state)
{
    (void)state;
    a->use_room = 1;
    a->to = b;
    a->to_ops = &ops_no_alloc;
    assert_int_equal(jrpc__sock_read(sock, 1), 0);
    peer_write("first");
    RUN_UNTIL(a->reads == 1);
    assert_ptr_equal(sock->owner, b);
    assert_ptr_equal(sock->ops, &ops_no_alloc);
    size_t a_len = a->rx_len;
    assert_int_equal(a_len, 5);
    assert_int_equal(a->own_buf, 1);

    peer_write("second");
    RUN_UNTIL(a_len + b->rx_len == 11);
    assert_int_equal(a->rx_len, a_len); /* nothing more for the old owner */
    char all[16];
    memcpy(all, a->rx, a_len);
    memcpy(all + a_len, b->rx, b->rx_len);
    assert_memory_equal(all, "firstsecond", 11);
    assert_int_equal(b->own_buf, 0);
    assert_int_equal(b->loop_buf, b->reads);

    close_and_wait();
    assert_int_equal(a->closed, 0);
    assert_int_equal(b->closed, 1);
}

/* ---- Writing --------------------------------------------------------------------------------- */

static void test_write_now(void **state)
{
    (void)state;
    uv_write_t wr;
    wr.data = NULL;
    char x[] = "ab", y[] = "cdef";
    uv_buf_t bufs[3] = {uv_buf_init(x, 2), uv_buf_init(y, 0), uv_buf_init(y, 4)};
    assert_int_equal(jrpc__sock_write(sock, &wr, bufs, 3, 6, on_write), 1);
    assert_int_equal(jrpc__sock_queued(sock), 0);
    char got[8];
    int eof = 0;
    assert_int_equal(peer_read(got, sizeof got, &eof), 6);
    assert_memory_equal(got, "abcdef", 6);
    for (int i = 0; i < 3; i++)
        uv_run(&loop.uv, UV_RUN_NOWAIT);
    assert_int_equal(nevents, 0); /* 1: the callback never runs */
}

/* A peer that does not read: the socket takes part, the rest is queued and completes through the
 * callback once the peer reads; a second write waits behind the first; the queue size counts
 * exactly the bytes not yet in the socket. */
static void test_write_queued_in_order(void **state)
{
    (void)state;
    reopen_small();

    enum { N1 = 256 * 1024, N2 = 3000 };
    char *one = malloc(N1), *two = malloc(N2), *got = malloc(N1 + N2), *want = malloc(N1 + N2);
    assert_true(one && two && got && want);
    pattern(one, N1, 1);
    pattern(two, N2, 100);
    memcpy(want, one, N1);
    memcpy(want + N1, two, N2);

    uv_write_t wr1, wr2;
    wr1.data = NULL;
    wr2.data = &wr2;
    /* Three pieces, so the part the socket took ends inside one of them. */
    uv_buf_t bufs1[3] = {uv_buf_init(one, 1000), uv_buf_init(one + 1000, 100000),
                         uv_buf_init(one + 101000, N1 - 101000)};
    assert_int_equal(jrpc__sock_write(sock, &wr1, bufs1, 3, N1, on_write), 0);
    size_t queued1 = jrpc__sock_queued(sock);
    assert_true(queued1 > 0 && queued1 < N1);
    int eof = 0;
    size_t taken = peer_read(got, N1 + N2, &eof); /* what the socket took: before the queue */
    assert_int_equal(taken + queued1, N1);
    assert_int_equal(nevents, 0); /* not inside the call */

    /* The peer made room, but the second write must not pass the queued bytes. */
    uv_buf_t bufs2[1] = {uv_buf_init(two, N2)};
    assert_int_equal(jrpc__sock_write(sock, &wr2, bufs2, 1, N2, on_write), 0);
    assert_int_equal(jrpc__sock_queued(sock), queued1 + N2);

    peer_read_all(got + taken, N1 + N2 - taken);
    assert_memory_equal(got, want, N1 + N2);
    RUN_UNTIL(nevents == 2);
    assert_int_equal(events[0], EV_WRITE);
    assert_int_equal(statuses[0], 0);
    assert_int_equal(events[1], EV_WRITE2);
    assert_int_equal(statuses[1], 0);
    assert_int_equal(jrpc__sock_queued(sock), 0);
    free(one);
    free(two);
    free(got);
    free(want);
}

/* The peer is gone: an error, nothing queued, no callback. */
static void test_write_error(void **state)
{
    (void)state;
    close(peer);
    peer = -1;
    uv_write_t wr;
    wr.data = NULL;
    char x[] = "lost";
    uv_buf_t buf = uv_buf_init(x, 4);
    assert_true(jrpc__sock_write(sock, &wr, &buf, 1, 4, on_write) < 0);
    assert_int_equal(jrpc__sock_queued(sock), 0);
    run_for(5);
    assert_int_equal(nevents, 0);
}

/* A close while a write is queued: the write completes with UV_ECANCELED, then ops->closed. */
static void test_close_cancels_queued_write(void **state)
{
    (void)state;
    reopen_small();
    enum { N = 256 * 1024 };
    char *big = malloc(N);
    assert_non_null(big);
    pattern(big, N, 3);
    uv_write_t wr;
    wr.data = NULL;
    uv_buf_t buf = uv_buf_init(big, N);
    assert_int_equal(jrpc__sock_write(sock, &wr, &buf, 1, N, on_write), 0);
    assert_true(jrpc__sock_queued(sock) > 0);
    jrpc__sock_close(sock);
    assert_int_equal(nevents, 0);
    RUN_UNTIL(loop.holds == 0);
    sock = NULL;
    assert_int_equal(nevents, 2);
    assert_int_equal(events[0], EV_WRITE);
    assert_int_equal(statuses[0], UV_ECANCELED);
    assert_int_equal(events[1], EV_CLOSED);
    assert_int_equal(a->closed, 1);
    free(big);
}

/* ---- FIN, timer, close ----------------------------------------------------------------------- */

/* The FIN follows the queued bytes; the socket still reads after it (a half-close). */
static void test_shutdown_after_queue(void **state)
{
    (void)state;
    reopen_small();
    enum { N = 64 * 1024 };
    char *big = malloc(N), *got = malloc(N + 1);
    assert_true(big && got);
    pattern(big, N, 5);
    uv_write_t wr;
    wr.data = NULL;
    uv_buf_t buf = uv_buf_init(big, N);
    assert_int_equal(jrpc__sock_write(sock, &wr, &buf, 1, N, on_write), 0);
    assert_int_equal(jrpc__sock_shutdown(sock, on_shutdown), 0);
    assert_int_equal(nevents, 0);

    peer_read_all(got, N);
    assert_memory_equal(got, big, N);
    int eof = 0;
    uint64_t end = now_ms() + WAIT_MS;
    while (!eof) {
        assert_true(now_ms() < end);
        uv_run(&loop.uv, UV_RUN_NOWAIT);
        assert_int_equal(peer_read(got, 1, &eof), 0); /* nothing past the FIN */
    }
    RUN_UNTIL(nevents == 2);
    assert_int_equal(events[0], EV_WRITE);
    assert_int_equal(events[1], EV_SHUT);
    assert_int_equal(statuses[1], 0);

    assert_int_equal(jrpc__sock_read(sock, 1), 0);
    peer_write("still");
    RUN_UNTIL(a->rx_len == 5);
    assert_memory_equal(a->rx, "still", 5);
    free(big);
    free(got);
}

static void test_timer(void **state)
{
    (void)state;
    jrpc__sock_timer(sock, 2);
    assert_int_equal(a->timeouts, 0);
    RUN_UNTIL(a->timeouts == 1);
    run_for(20);
    assert_int_equal(a->timeouts, 1); /* once */

    /* 0 stops it. */
    jrpc__sock_timer(sock, 2);
    jrpc__sock_timer(sock, 0);
    run_for(20);
    assert_int_equal(a->timeouts, 1);

    /* Arming again replaces the previous deadline, sooner ... */
    jrpc__sock_timer(sock, 60 * 1000);
    jrpc__sock_timer(sock, 2);
    RUN_UNTIL(a->timeouts == 2);

    /* ... or later: the uv timer still set for 2 ms fires and waits on (the timer is moved only
     * to a sooner end); the timeout comes at the later end, once. */
    uv_update_time(&loop.uv);
    uint64_t t0 = uv_now(&loop.uv);
    jrpc__sock_timer(sock, 2);
    jrpc__sock_timer(sock, 30);
    RUN_UNTIL(a->timeouts == 3);
    assert_true(a->timeout_at >= t0 + 30); /* loop time: not at the 2 ms the uv timer was set for */
    run_for(40);
    assert_int_equal(a->timeouts, 3);

    /* _repeat fires every time until stopped. */
    jrpc__sock_timer_repeat(sock, 1);
    RUN_UNTIL(a->timeouts == 6);
    jrpc__sock_timer(sock, 0);
    int n = a->timeouts;
    run_for(20);
    assert_int_equal(a->timeouts, n);
}

/* Close: the peer sees the end, ops->closed runs once and after the call, the loop's hold and
 * list entry go, and nothing reaches the owner once closing (timer, reads). */
static void test_close(void **state)
{
    (void)state;
    assert_int_equal(jrpc__sock_read(sock, 1), 0);
    jrpc__sock_timer(sock, 1);
    assert_false(jrpc__list_empty(&loop.conns));
    jrpc__sock_close(sock);
    jrpc__sock_close(sock); /* idempotent */
    jrpc__sock_timer(sock, 1);
    assert_int_equal(jrpc__sock_read(sock, 1), 0);
    assert_int_equal(a->closed, 0);
    assert_int_equal(loop.holds, 1);
    RUN_UNTIL(loop.holds == 0);
    sock = NULL;
    assert_int_equal(a->closed, 1);
    assert_int_equal(a->timeouts, 0);
    assert_int_equal(a->reads, 0);
    assert_true(jrpc__list_empty(&loop.conns));
    int eof = 0;
    char c;
    RUN_UNTIL((peer_read(&c, 1, &eof), eof));
    run_for(5);
    assert_int_equal(a->closed, 1);
}

/* Stop reaches the owner through the loop's list: drain, then close_now. A sock nobody owns yet
 * is closed by close_all itself. */
static void test_drain_and_close_all(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    jrpc__sock_t *orphan = jrpc__sock_open(&loop, sv[0]);
    assert_non_null(orphan);
    assert_int_equal(loop.holds, 2);
    jrpc__loop_drain(&loop);
    loop.stopping = 0; /* only the walk is under test: not the loop's end */
    assert_int_equal(a->drains, 1);
    jrpc__loop_close_all(&loop);
    assert_int_equal(a->close_nows, 1);
    RUN_UNTIL(loop.holds == 0);
    sock = NULL;
    assert_int_equal(a->closed, 1);
    assert_true(jrpc__list_empty(&loop.conns));
    char c;
    assert_int_equal(read(sv[1], &c, 1), 0); /* its end of stream */
    close(sv[1]);
}

/* An fd the loop watches already cannot be opened again: NULL, the hold goes, and the fd stays
 * the first sock's (the failed open must not close it). */
static void test_open_refused(void **state)
{
    (void)state;
    assert_null(jrpc__sock_open(&loop, -1));
    assert_int_equal(jrpc__sock_read(sock, 1), 0);
    assert_null(jrpc__sock_open(&loop, sock->tcp.io_watcher.fd));
    RUN_UNTIL(loop.holds == 1);
    peer_write("alive");
    RUN_UNTIL(a->rx_len == 5);
    assert_memory_equal(a->rx, "alive", 5);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as jrpcd does: a write to a gone peer must not kill us */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_loop_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_own_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_mid_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_queued_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels_queued_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_after_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_and_close_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
