/* SPDX-License-Identifier: MIT */
/* Unit tests of listening (src/io/loop.c, jrpc__io_listen) with real sockets on loopback: port 0
 * puts every loop's socket on the one port it picked; a port another socket listens on is refused
 * with JRPC_EADDRINUSE unless reuse_port lets the two share; a process that joins the port of a
 * server started without reuse_port is handed no connection; and a checking io validates an
 * address the way a start would bind it, binding nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/internal.h"

/* Loops per io: more than one, so that a group of the server's own sockets is made and joined. */
#define THREADS 4
/* Connections made to see where the kernel hands them: spread at random over two servers, the
 * chance that one gets none of them is 2^-63. */
#define CONNECTS 64

typedef struct {
    jrpc_config_t cfg;
    jrpc__io_t io;
} server_t;

static void server_init(server_t *s, unsigned reuse_port, int checking)
{
    jrpc_config_init(&s->cfg);
    s->cfg.io_threads = THREADS;
    s->cfg.reuse_port = reuse_port;
    assert_int_equal(jrpc__io_init(&s->io, &s->cfg, NULL), 0);
    s->io.checking = checking;
}

static void server_close(server_t *s)
{
    jrpc__io_close(&s->io);
}

static unsigned fd_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

/* The port address a was bound on, from its text. */
static unsigned bound_port(const server_t *s, size_t a)
{
    const char *colon = strrchr(s->io.addrs[a], ':');
    assert_non_null(colon);
    return (unsigned)atoi(colon + 1);
}

static void assert_nothing_bound(const server_t *s, size_t a)
{
    for (unsigned i = 0; i < THREADS; i++)
        assert_int_equal(s->io.fds[a][i], -1);
}

/* Connections accepted on each of a's sockets so far, drained without blocking. */
static unsigned drain(const server_t *s, size_t a)
{
    unsigned n = 0;
    for (unsigned i = 0; i < THREADS; i++) {
        int c;
        while ((c = accept(s->io.fds[a][i], NULL, NULL)) >= 0) {
            close(c);
            n++;
        }
        assert_int_equal(errno, EAGAIN);
    }
    return n;
}

/* Accepts on address 0 of the n servers until CONNECTS connections came, counting each
 * server's in got[]; waits for them in poll (the kernel may queue the last handshakes a moment
 * after connect returned), 10 s at most. */
static void accept_all(server_t *const *s, size_t n, unsigned *got)
{
    struct pollfd pfd[4 * THREADS];
    assert_true(n <= 4);
    unsigned total = 0;
    for (size_t k = 0; k < n; k++) {
        got[k] = 0;
        for (unsigned i = 0; i < THREADS; i++)
            pfd[k * THREADS + i] = (struct pollfd){.fd = s[k]->io.fds[0][i], .events = POLLIN};
    }
    for (int rounds = 0; total < CONNECTS; rounds++) {
        assert_true(rounds < 100);
        for (size_t k = 0; k < n; k++) {
            unsigned d = drain(s[k], 0);
            got[k] += d;
            total += d;
        }
        if (total < CONNECTS)
            poll(pfd, (nfds_t)(n * THREADS), 100);
    }
    assert_int_equal(total, CONNECTS);
}

/* Makes CONNECTS connections to 127.0.0.1:port (the kernel completes them on its own). */
static void connect_many(unsigned port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    for (int i = 0; i < CONNECTS; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        close(fd);
    }
}

static void port0_puts_every_loop_on_one_port(void **state)
{
    (void)state;
    server_t a;
    server_init(&a, 0, 0);
    assert_int_equal(jrpc__io_listen(&a.io, "127.0.0.1:0"), 0);
    unsigned port = bound_port(&a, 0);
    assert_true(port != 0);
    for (unsigned i = 0; i < THREADS; i++)
        assert_int_equal(fd_port(a.io.fds[0][i]), port);
    /* Every loop's socket gets connections: one group, spread over all of them. */
    connect_many(port);
    server_t *all[] = {&a};
    unsigned got[1];
    accept_all(all, 1, got);
    server_close(&a);
}

static void a_taken_port_is_refused(void **state)
{
    (void)state;
    server_t a, b;
    server_init(&a, 0, 0);
    server_init(&b, 0, 0);
    assert_int_equal(jrpc__io_listen(&a.io, "127.0.0.1:0"), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", bound_port(&a, 0));
    assert_int_equal(jrpc__io_listen(&b.io, addr), JRPC_EADDRINUSE);
    snprintf(addr, sizeof addr, "0.0.0.0:%u", bound_port(&a, 0));
    assert_int_equal(jrpc__io_listen(&b.io, addr), JRPC_EADDRINUSE);
    assert_int_equal(b.io.naddrs, 0);
    assert_nothing_bound(&b, 0);
    /* The same server listing an address twice is refused too. */
    snprintf(addr, sizeof addr, "127.0.0.1:%u", bound_port(&a, 0));
    assert_int_equal(jrpc__io_listen(&a.io, addr), JRPC_EADDRINUSE);
    assert_int_equal(a.io.naddrs, 1);
    /* One that does not ask to share cannot join a server that does either. */
    server_t c;
    server_init(&c, 1, 0);
    assert_int_equal(jrpc__io_listen(&c.io, "127.0.0.1:0"), 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%u", bound_port(&c, 0));
    assert_int_equal(jrpc__io_listen(&b.io, addr), JRPC_EADDRINUSE);
    server_close(&a);
    server_close(&b);
    server_close(&c);
}

static void reuse_port_on_both_shares(void **state)
{
    (void)state;
    server_t a, b;
    server_init(&a, 1, 0);
    server_init(&b, 1, 0);
    assert_int_equal(jrpc__io_listen(&a.io, "127.0.0.1:0"), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", bound_port(&a, 0));
    assert_int_equal(jrpc__io_listen(&b.io, addr), 0);
    connect_many(bound_port(&a, 0));
    server_t *all[] = {&a, &b};
    unsigned got[2];
    accept_all(all, 2, got);
    assert_true(got[0] > 0 && got[1] > 0); /* the kernel spreads them over both */
    server_close(&a);
    server_close(&b);
}

/* A server started without reuse_port keeps its connections when a sharing one joins anyway. */
static void a_joiner_gets_nothing(void **state)
{
    (void)state;
    server_t a, b;
    server_init(&a, 0, 0);
    server_init(&b, 1, 0);
    assert_int_equal(jrpc__io_listen(&a.io, "127.0.0.1:0"), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", bound_port(&a, 0));
    assert_int_equal(jrpc__io_listen(&b.io, addr), 0); /* the kernel lets it join */
    connect_many(bound_port(&a, 0));
    server_t *all[] = {&a, &b};
    unsigned got[2];
    accept_all(all, 2, got);
    assert_int_equal(got[1], 0);
    server_close(&a);
    server_close(&b);
}

static void ipv6_the_same(void **state)
{
    (void)state;
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 lo = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int have = probe >= 0 && bind(probe, (struct sockaddr *)&lo, sizeof lo) == 0;
    if (probe >= 0)
        close(probe);
    if (!have)
        skip(); /* no IPv6 loopback here */
    server_t a, b;
    server_init(&a, 0, 0);
    server_init(&b, 0, 0);
    assert_int_equal(jrpc__io_listen(&a.io, "[::1]:0"), 0);
    unsigned port = bound_port(&a, 0);
    for (unsigned i = 0; i < THREADS; i++)
        assert_int_equal(fd_port(a.io.fds[0][i]), port);
    char addr[64];
    snprintf(addr, sizeof addr, "[::1]:%u", port);
    assert_int_equal(jrpc__io_listen(&b.io, addr), JRPC_EADDRINUSE);
    snprintf(addr, sizeof addr, "[::]:%u", port);
    assert_int_equal(jrpc__io_listen(&b.io, addr), JRPC_EADDRINUSE);
    /* IPv6 sockets are V6ONLY: the IPv4 side of the port is another address. */
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    assert_int_equal(jrpc__io_listen(&b.io, addr), 0);
    server_close(&a);
    server_close(&b);
}

/* A checking io (jrpcd --check) refuses what a start refuses and binds nothing. */
static void checking_validates_without_binding(void **state)
{
    (void)state;
    server_t live, c;
    server_init(&live, 0, 0);
    server_init(&c, 0, 1);
    assert_int_equal(jrpc__io_listen(&live.io, "127.0.0.1:0"), 0);
    assert_int_equal(jrpc__io_listen(&c.io, "999.0.0.1:1"), JRPC_EINVAL);
    assert_int_equal(jrpc__io_listen(&c.io, "127.0.0.1"), JRPC_EINVAL);
    assert_int_equal(jrpc__io_listen(&c.io, "192.0.2.1:8000"), JRPC_EADDRNOTAVAIL);
    assert_int_equal(c.io.naddrs, 0);
    /* The live server's port: a check beside it passes, and takes nothing from it. */
    char addr[64], wild[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", bound_port(&live, 0));
    snprintf(wild, sizeof wild, "0.0.0.0:%u", bound_port(&live, 0));
    assert_int_equal(jrpc__io_listen(&c.io, addr), 0);
    assert_int_equal(c.io.naddrs, 1);
    assert_string_equal(c.io.addrs[0], addr);
    assert_nothing_bound(&c, 0);
    connect_many(bound_port(&live, 0));
    server_t *all[] = {&live};
    unsigned got[1];
    accept_all(all, 1, got);
    /* Listed twice, or beside the wildcard of its port: a start would fail. */
    assert_int_equal(jrpc__io_listen(&c.io, addr), JRPC_EADDRINUSE);
    assert_int_equal(jrpc__io_listen(&c.io, wild), JRPC_EADDRINUSE);
    assert_int_equal(jrpc__io_listen(&c.io, "127.0.0.2:0"), 0); /* port 0 never clashes */
    assert_int_equal(jrpc__io_listen(&c.io, "127.0.0.1:0"), 0);
    server_close(&c);
    /* With reuse_port the sockets would share, so a start would not fail. */
    server_init(&c, 1, 1);
    assert_int_equal(jrpc__io_listen(&c.io, addr), 0);
    assert_int_equal(jrpc__io_listen(&c.io, wild), 0);
    server_close(&c);
    server_close(&live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(port0_puts_every_loop_on_one_port),
        cmocka_unit_test(a_taken_port_is_refused),
        cmocka_unit_test(reuse_port_on_both_shares),
        cmocka_unit_test(a_joiner_gets_nothing),
        cmocka_unit_test(ipv6_the_same),
        cmocka_unit_test(checking_validates_without_binding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
