/* SPDX-License-Identifier: MIT */
/* loop.c — the io loops. Each io thread runs one libuv loop with its own SO_REUSEPORT listening
 * socket per address, so the kernel spreads connections over the loops and a connection never
 * changes thread. The group is this server's alone unless reuse_port says otherwise: a port
 * another socket listens on is refused, and connections are steered to the server's own sockets.
 * Work from other threads (replies, pushes) reaches a loop through its one post queue and
 * uv_async wakeup, in posting order. Stopping closes the listeners, lets what holds the loop
 * finish (bounded by drain_ms) and then ends every loop. The layers above plug in through
 * jrpc__io_hooks_t: this file names none of them. */
#include "../util/log.h"
#include "internal.h"

#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Most io threads: one per core is the point, and 64 covers any machine we expect while keeping
 * the per-address socket table in jrpc_server fixed-size. */
#define MAX_IO_THREADS JRPC_MAX_IO_THREADS
/* Listen backlog: the kernel's common somaxconn default; bursts of connects beyond it are what
 * a load balancer in front should absorb. */
#define LISTEN_BACKLOG 511

int jrpc__io_init(jrpc__io_t *io, const jrpc_config_t *cfg, jrpc_server_t *srv)
{
    memset(io, 0, sizeof(*io));
    io->cfg = cfg;
    io->srv = srv;
    uv_mutex_init(&io->loops_lock);
    for (size_t a = 0; a < JRPC__MAX_LISTEN; a++)
        for (size_t i = 0; i < MAX_IO_THREADS; i++)
            io->fds[a][i] = -1;
    io->admit = jrpc__admit_table_new();
    if (io->admit == NULL)
        return JRPC_ENOMEM;
    return jrpc__cidr_list_parse(cfg->trusted_proxies, &io->trusted, &io->ntrusted);
}

/* Loops whose requests a stop gave up on, kept for the life of the process (jrpc__io_close). */
static struct graveyard {
    struct graveyard *next;
    jrpc__loop_t *loops;
} * graveyard;
static uv_mutex_t graveyard_lock = PTHREAD_MUTEX_INITIALIZER; /* uv_mutex_t is POSIX's */

void jrpc__io_close(jrpc__io_t *io)
{
    for (size_t a = 0; a < JRPC__MAX_LISTEN; a++)
        for (size_t i = 0; i < MAX_IO_THREADS; i++)
            if (io->fds[a][i] >= 0)
                close(io->fds[a][i]);
    jrpc__admit_table_free(io->admit);
    io->admit = NULL;
    uv_mutex_destroy(&io->loops_lock);
    free(io->trusted);
    io->trusted = NULL;
    io->ntrusted = 0;
    if (io->kept_loops != NULL) {
        /* Handlers that never replied may still reply, from any thread, for as long as the
         * process lives: their requests and loops stay where such a reply finds them (and drops
         * it at the post lock), reachable from the graveyard, never freed. Only calls a stop
         * gave up on end here: a few per stuck handler. */
        struct graveyard *g = malloc(sizeof(*g));
        if (g != NULL) {
            g->loops = io->kept_loops;
            uv_mutex_lock(&graveyard_lock);
            g->next = graveyard;
            graveyard = g;
            uv_mutex_unlock(&graveyard_lock);
        }
        io->kept_loops = NULL;
        io->nkept_loops = 0;
    }
    while (io->exts != NULL) {
        jrpc__loop_ext_t *e = io->exts;
        io->exts = e->next;
        free(e);
    }
    while (io->ready != NULL) {
        jrpc__ready_hook_t *h = io->ready;
        io->ready = h->next;
        free(h->key);
        free(h->name);
        free(h);
    }
}

/* ---- Listening ------------------------------------------------------------------------------- */

/* The port of an IPv4 or IPv6 address (network order). */
static in_port_t addr_port(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                     : ((const struct sockaddr_in *)ss)->sin_port;
}

/* A stream socket for family with the options every listener has: SO_REUSEADDR (a restart
 * binds while old connections sit in TIME_WAIT) and, for IPv6, V6ONLY (an IPv6 address never
 * takes IPv4 traffic; list 0.0.0.0 for that). -errno on failure. */
static int socket_for(int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0)) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* A listening socket on sa that is part of the port's SO_REUSEPORT group. With `join` it binds
 * with SO_REUSEPORT, joining a group that exists (this server's own sockets, or with
 * reuse_port other processes' of the same user). Without, it binds alone first, so a port any
 * other socket listens on fails with EADDRINUSE, and only then opens itself to the group. */
static int listen_socket(const struct sockaddr *sa, socklen_t salen, int join, int *out)
{
    int fd = socket_for(sa->sa_family);
    if (fd < 0)
        return fd;
    int on = 1;
    if ((join && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) ||
        bind(fd, sa, salen) != 0 ||
        (!join && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    *out = fd;
    return 0;
}

/* Keeps a port's connections on this server's own n sockets, the first n of its group: the
 * kernel runs this program for each new connection and hands it to the socket at the index it
 * returns (a random one of 0 … n-1). A process that joins the group later anyway (the same
 * user, asking for SO_REUSEPORT itself) sits at index n or past and is handed none. Best
 * effort: where the kernel refuses the program, it spreads by hash over the whole group. */
static void steer_to_own(int fd, unsigned n)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_RANDOM)),
        BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n),
        BPF_STMT(BPF_RET | BPF_A, 0),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    (void)setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog);
}

/* Would a start bind ss? Without binding its port, which the running instance a check is made
 * beside holds: a probe socket binds the address with port 0, so the kernel says whether the
 * address is one of this host's (EADDRNOTAVAIL otherwise). An address listed twice, or beside
 * a wildcard of its family on the same port, is refused as a start would refuse it
 * (EADDRINUSE), unless reuse_port lets the sockets share. */
static int check_address(jrpc__io_t *io, const struct sockaddr_storage *ss, socklen_t len)
{
    struct sockaddr_storage probe = *ss;
    if (probe.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&probe)->sin6_port = 0;
    else
        ((struct sockaddr_in *)&probe)->sin_port = 0;
    int fd = socket_for(ss->ss_family);
    if (fd < 0)
        return fd;
    int rc = bind(fd, (const struct sockaddr *)&probe, len) == 0 ? 0 : -errno;
    close(fd);
    if (rc != 0)
        return rc;
    in_port_t port = addr_port(ss);
    for (size_t a = 0; a < io->naddrs && port != 0 && !io->cfg->reuse_port; a++) {
        const struct sockaddr_storage *b = &io->sa[a];
        if (b->ss_family != ss->ss_family || addr_port(b) != port)
            continue;
        if (ss->ss_family == AF_INET6) {
            const struct in6_addr *x = &((const struct sockaddr_in6 *)ss)->sin6_addr;
            const struct in6_addr *y = &((const struct sockaddr_in6 *)b)->sin6_addr;
            if (memcmp(x, y, sizeof *x) == 0 || IN6_IS_ADDR_UNSPECIFIED(x) ||
                IN6_IS_ADDR_UNSPECIFIED(y))
                return JRPC_EADDRINUSE;
        } else {
            in_addr_t x = ((const struct sockaddr_in *)ss)->sin_addr.s_addr;
            in_addr_t y = ((const struct sockaddr_in *)b)->sin_addr.s_addr;
            if (x == y || x == htonl(INADDR_ANY) || y == htonl(INADDR_ANY))
                return JRPC_EADDRINUSE;
        }
    }
    return 0;
}

int jrpc__io_listen(jrpc__io_t *io, const char *host_port)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (io->naddrs == JRPC__MAX_LISTEN || host_port == NULL ||
        jrpc__addr_parse(host_port, &ss, &sslen) != 0)
        return JRPC_EINVAL;

    size_t a = io->naddrs;
    int rc = 0;
    if (io->checking) {
        rc = check_address(io, &ss, sslen);
        if (rc != 0)
            return rc;
        goto bound;
    }
    /* The first socket binds alone, so a port another socket listens on is refused before
     * anything joins it; with reuse_port it joins at once (port 0 still binds alone: it asks for
     * a port nobody uses). The other loops' sockets join the first's group, on the port it got.
     * What remains: once the first socket is open to its group, a process of the same user that
     * asks for SO_REUSEPORT itself may join (the kernel allows it). steer_to_own hands it no
     * connection, unless it joins between this server's first and last socket: then it takes
     * the place, and the share, of one of them. */
    for (unsigned i = 0; i < io->cfg->io_threads; i++) {
        int join = i > 0 || (io->cfg->reuse_port && addr_port(&ss) != 0);
        rc = listen_socket((struct sockaddr *)&ss, sslen, join, &io->fds[a][i]);
        if (rc != 0)
            goto fail;
        if (i == 0) {
            sslen = sizeof ss;
            getsockname(io->fds[a][0], (struct sockaddr *)&ss, &sslen);
        }
    }
    if (!io->cfg->reuse_port)
        steer_to_own(io->fds[a][0], io->cfg->io_threads);
bound:
    io->sa[a] = ss;
    jrpc__addr_name((const struct sockaddr *)&ss, io->addrs[a], sizeof io->addrs[a]);
    io->naddrs++;
    return 0;
fail:
    for (unsigned i = 0; i < io->cfg->io_threads; i++) {
        if (io->fds[a][i] >= 0)
            close(io->fds[a][i]);
        io->fds[a][i] = -1;
    }
    return rc;
}

/* ---- Loops ----------------------------------------------------------------------------------- */

static void loop_run_posted(jrpc__loop_t *loop);

/* The idle phase of the loop's next turn (after its timers, before its poll), when the loop's
 * own thread posted: what was posted runs (also what other threads posted meanwhile, in order;
 * their wakeup then finds the queue empty). The same point in the turn as the wakeup would have
 * reached, less the poll: an item a timer finishes meanwhile still joins the same answer. */
static void loop_post_idle(uv_idle_t *h)
{
    jrpc__loop_t *loop = h->data;
    uv_idle_stop(&loop->post_idle);
    loop_run_posted(loop);
}

/* Closes the handle of the loop's own posts; later ones go through the wakeup (loop thread). */
static void loop_post_local_close(jrpc__loop_t *loop)
{
    uv_mutex_lock(&loop->post_lock);
    int open = loop->post_local;
    loop->post_local = 0;
    uv_mutex_unlock(&loop->post_lock);
    if (open)
        uv_close((uv_handle_t *)&loop->post_idle, NULL);
}

void jrpc__loop_post(jrpc__loop_t *loop, jrpc__post_t *p)
{
    p->next = NULL;
    uv_mutex_lock(&loop->post_lock);
    if (loop->dead) {
        /* The loop ended: only a late reply to a request a stop gave up on gets here. */
        uv_mutex_unlock(&loop->post_lock);
        return;
    }
    if (loop->post_tail != NULL)
        loop->post_tail->next = p;
    else
        loop->post_head = p;
    loop->post_tail = p;
    if (loop->post_local && jrpc__loop_on_thread(loop)) {
        /* The loop's own thread (an answer's pieces, a connection to reap): the queue runs in
         * the next turn without the eventfd write, wakeup and read of uv_async_send. */
        uv_idle_start(&loop->post_idle, loop_post_idle);
    } else {
        /* Under the lock: the loop closes its wakeup only after marking itself dead under it. */
        uv_async_send(&loop->wakeup);
    }
    uv_mutex_unlock(&loop->post_lock);
}

int jrpc__loop_on_thread(const jrpc__loop_t *loop)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &loop->tid);
}

/* Runs what was posted, oldest first. Posts made while it runs wait for the next wakeup (the
 * async was sent for them), so one busy poster cannot starve the loop's sockets. */
static void loop_run_posted(jrpc__loop_t *loop)
{
    uv_mutex_lock(&loop->post_lock);
    jrpc__post_t *p = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    uv_mutex_unlock(&loop->post_lock);
    while (p != NULL) {
        jrpc__post_t *next = p->next;
        p->cb(p);
        p = next;
    }
}

static size_t list_len(const jrpc__list_t *h)
{
    size_t n = 0;
    for (const jrpc__list_t *it = h->next; it != h; it = it->next)
        n++;
    return n;
}

/* The extensions' stop hooks, once: when the loop drained, or when the drain time is over (an
 * extension then answers what it still holds, the gateway its queue). */
static void loop_stop_exts(jrpc__loop_t *loop)
{
    if (loop->exts_stopped)
        return;
    loop->exts_stopped = 1;
    for (const jrpc__loop_ext_t *e = loop->io->exts; e != NULL; e = e->next)
        if (e->stop != NULL)
            e->stop(&loop->uv, loop->index, e->data);
}

static void loop_maybe_done(jrpc__loop_t *loop)
{
    if (!loop->stopping || loop->closing)
        return;
    /* Given up: requests whose handlers never replied were answered; they do not hold us. */
    size_t orphans = loop->abandon ? list_len(&loop->reqs) : 0;
    if (loop->holds != orphans)
        return;
    loop->closing = 1;
    /* Nothing is posted any more once every connection closed; what was posted before still
     * runs (a subscription's end owes its end_cb). */
    loop_run_posted(loop);
    loop_stop_exts(loop);
    if (orphans != 0 && loop->io->hooks.orphan != NULL) {
        loop->orphans = orphans;
        loop->io->hooks.orphan(loop);
    }
    /* Dead before the wakeup closes: later posts (late replies to orphans) are dropped under the
     * lock; what came before still runs. */
    uv_mutex_lock(&loop->post_lock);
    loop->dead = 1;
    uv_mutex_unlock(&loop->post_lock);
    loop_run_posted(loop);
    loop_post_local_close(loop);
    uv_close((uv_handle_t *)&loop->wakeup, NULL);
    uv_close((uv_handle_t *)&loop->drain_timer, NULL);
    uv_close((uv_handle_t *)&loop->deadline_timer, NULL);
    /* Handlers that never replied may keep handles of their own running (timers, sockets): the
     * loop ends after this pass anyway, and its cleanup closes what they left. */
    if (orphans != 0)
        uv_stop(&loop->uv);
}

void jrpc__loop_release(jrpc__loop_t *loop)
{
    loop->holds--;
    if (loop->stopping)
        loop_maybe_done(loop);
}

void jrpc__loop_close_all(jrpc__loop_t *loop)
{
    jrpc__list_t *it = loop->conns.next;
    while (it != &loop->conns) {
        jrpc__sock_t *s = JRPC__CONTAINER_OF(it, jrpc__sock_t, node);
        it = it->next; /* closing unlinks only in the close callback, but stay safe */
        jrpc__sock_close_now(s);
    }
}

/* The last answers had their time (or a second stop came): close every connection and stop
 * waiting for handlers that never replied. */
static void loop_abandon(jrpc__loop_t *loop)
{
    loop->abandon = 1;
    jrpc__loop_close_all(loop);
    loop_maybe_done(loop);
}

static void loop_last_write_timeout(uv_timer_t *t)
{
    loop_abandon(t->data);
}

/* The drain time is over: everything still running is answered (the engine), extensions answer
 * what they hold, and connections get a moment to write those answers. */
static void loop_expire(jrpc__loop_t *loop)
{
    if (loop->expired)
        return;
    loop->expired = 1;
    if (loop->io->hooks.expire != NULL)
        loop->io->hooks.expire(loop);
    loop_stop_exts(loop);
}

static void loop_drain_timeout(uv_timer_t *t)
{
    jrpc__loop_t *loop = t->data;
    loop_expire(loop);
    if (loop->closing)
        return;
    uint64_t ms = loop->cfg->send_timeout_ms < JRPC__LOOP_LAST_WRITE_MS ? loop->cfg->send_timeout_ms
                                                                        : JRPC__LOOP_LAST_WRITE_MS;
    uv_timer_start(&loop->drain_timer, loop_last_write_timeout, ms, 0);
    loop_maybe_done(loop);
}

void jrpc__loop_drain(jrpc__loop_t *loop)
{
    loop->stopping = 1;
    jrpc__list_t *it = loop->conns.next;
    while (it != &loop->conns) {
        jrpc__sock_t *s = JRPC__CONTAINER_OF(it, jrpc__sock_t, node);
        it = it->next;
        jrpc__sock_drain(s);
    }
}

static void loop_begin_stop(jrpc__loop_t *loop)
{
    for (unsigned a = 0; a < loop->nlisteners; a++)
        uv_close((uv_handle_t *)&loop->listeners[a], NULL);
    jrpc__loop_drain(loop);
    uv_timer_start(&loop->drain_timer, loop_drain_timeout, loop->cfg->drain_ms, 0);
    loop_maybe_done(loop);
}

static void loop_delay_timeout(uv_timer_t *t)
{
    jrpc__loop_t *loop = t->data;
    loop->delay_over = 1;
    if (!loop->stopping)
        loop_begin_stop(loop);
}

static void loop_wakeup(uv_async_t *h)
{
    jrpc__loop_t *loop = h->data;
    /* A safe point: nothing of this loop is on the stack, so what reads loop->cfg from here on
     * reads one configuration (a reconfigure wakes every loop). */
    loop->cfg = atomic_load(&loop->io->cfg);
    loop_run_posted(loop);
    /* A drain whose delay is over counts as the first stop: a stop after it is the second. */
    int stops = atomic_load(&loop->io->stop_requests) + loop->delay_over;
    if (stops > 0 && !loop->stopping)
        loop_begin_stop(loop);
    /* The drain timer is free until the stop begins; loop_begin_stop re-arms it for drain_ms. */
    if (atomic_load(&loop->io->drain_requests) > 0 && !loop->stopping && !loop->delaying) {
        loop->delaying = 1;
        uv_timer_start(&loop->drain_timer, loop_delay_timeout, loop->cfg->drain_delay_ms, 0);
    }
    if (stops > 1 && !loop->closing) {
        loop_expire(loop);
        if (!loop->closing)
            loop_abandon(loop);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    jrpc__loop_t *loop = server->data;
    if (status < 0)
        return;
    /* Also while stopping: the transport accepts and closes, so libuv keeps watching. */
    loop->io->hooks.accept(loop, server);
}

/* Sets up loop `index` of io: its uv loop, wakeup, drain timer and one listener per address bound
 * so far. *inited is set once uv_loop_init succeeded (cleanup must then run the loop out). */
static int loop_init(jrpc__loop_t *loop, jrpc__io_t *io, unsigned index, int *inited)
{
    loop->io = io;
    loop->cfg = io->cfg;
    loop->index = index;
    int rc = uv_loop_init(&loop->uv);
    if (rc != 0)
        return rc;
    *inited = 1;
    loop->uv.data = loop;
    if (jrpc__stats_init(&loop->stats, io->nlabels) != 0)
        return JRPC_ENOMEM;
    jrpc__list_init(&loop->conns);
    jrpc__list_init(&loop->reqs);
    uv_mutex_init(&loop->post_lock);
    uv_async_init(&loop->uv, &loop->wakeup, loop_wakeup);
    loop->wakeup.data = loop;
    uv_timer_init(&loop->uv, &loop->drain_timer);
    loop->drain_timer.data = loop;
    jrpc__list_init(&loop->deadlines);
    uv_timer_init(&loop->uv, &loop->deadline_timer);
    loop->deadline_timer.data = loop;
    uv_idle_init(&loop->uv, &loop->post_idle);
    loop->post_idle.data = loop;
    uv_unref((uv_handle_t *)&loop->post_idle); /* it does not keep the loop alive */
    loop->post_local = 1;
    for (size_t a = 0; a < io->naddrs; a++) {
        uv_tcp_t *l = &loop->listeners[a];
        uv_tcp_init(&loop->uv, l);
        l->data = loop;
        loop->nlisteners++;
        rc = uv_tcp_open(l, io->fds[a][loop->index]);
        if (rc == 0) {
            io->fds[a][loop->index] = -1; /* the handle owns it now */
            rc = uv_listen((uv_stream_t *)l, LISTEN_BACKLOG, on_connection);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void loop_main(void *arg)
{
    jrpc__loop_t *loop = arg;
    loop->tid = uv_thread_self();
    for (const jrpc__loop_ext_t *e = loop->io->exts; e != NULL; e = e->next)
        if (e->start != NULL)
            e->start(&loop->uv, loop->index, e->data);
    atomic_store(&loop->ready, 1);
    /* A stop (or drain) asked before this loop was ready is picked up here. */
    if (atomic_load(&loop->io->stop_requests) > 0 || atomic_load(&loop->io->drain_requests) > 0)
        uv_async_send(&loop->wakeup);
    uv_run(&loop->uv, UV_RUN_DEFAULT);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* A loop that never ran, or one stopped early: what was posted to it is run (a post owns
 * references its callback releases), its handles closed and run out. */
/* The size class of n bytes, or -1 past the largest. */
static int block_class(size_t n)
{
    size_t size = JRPC__LOOP_CLASS_MIN;
    for (int k = 0; k < JRPC__LOOP_CLASSES; k++, size <<= 1)
        if (n <= size)
            return k;
    return -1;
}

void *jrpc__loop_alloc(jrpc__loop_t *loop, size_t n)
{
    int k = block_class(n);
    if (k < 0)
        return malloc(n);
    void *p = loop->blocks[k];
    if (p == NULL)
        return malloc((size_t)JRPC__LOOP_CLASS_MIN << k);
    memcpy(&loop->blocks[k], p, sizeof(void *));
    loop->nblocks[k]--;
    return p;
}

void jrpc__loop_free(jrpc__loop_t *loop, void *p, size_t n)
{
    int k = block_class(n);
    if (p == NULL)
        return;
    if (k < 0 || loop->nblocks[k] >= JRPC__LOOP_CLASS_KEEP) {
        free(p);
        return;
    }
    memcpy(p, &loop->blocks[k], sizeof(void *));
    loop->blocks[k] = p;
    loop->nblocks[k]++;
}

/* Closes what is left of a loop. One with orphans keeps its post lock (late replies still take
 * it) until jrpc__io_close. */
static int loop_cleanup(jrpc__loop_t *loop)
{
    loop_run_posted(loop);
    jrpc__acct_loop_flush(loop);
    loop_post_local_close(loop);
    uv_walk(&loop->uv, close_any, NULL);
    uv_run(&loop->uv, UV_RUN_NOWAIT);
    int rc = uv_loop_close(&loop->uv);
    uv_mutex_lock(&loop->post_lock);
    loop->dead = 1;
    uv_mutex_unlock(&loop->post_lock);
    if (jrpc__list_empty(&loop->reqs))
        uv_mutex_destroy(&loop->post_lock);
    jrpc__arena_cache_clear(&loop->arenas);
    jrpc__stats_release(&loop->stats);
    free(loop->rbuf);
    loop->rbuf = NULL;
    for (int k = 0; k < JRPC__LOOP_CLASSES; k++) {
        while (loop->blocks[k] != NULL) {
            void *p = loop->blocks[k];
            memcpy(&loop->blocks[k], p, sizeof(void *));
            free(p);
        }
        loop->nblocks[k] = 0;
    }
    return rc;
}

int jrpc__io_run(jrpc__io_t *io)
{
    /* A client that goes away mid-answer must cost an EPIPE, not the process: libuv writes with
     * write(2), so SIGPIPE is ignored unless the embedding program installed its own handler. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    unsigned n = io->cfg->io_threads;
    uv_thread_t *threads = calloc(n, sizeof(*threads));
    jrpc__loop_t *loops = calloc(n, sizeof(*loops));
    io->pool = jrpc__pool_new(io->cfg->workers, io->cfg->worker_queue);
    int rc = JRPC_ENOMEM;
    unsigned inited = 0, started = 0;
    if (threads == NULL || loops == NULL || io->pool == NULL)
        goto done;
    for (unsigned i = 0; i < n; i++) {
        int ok = 0;
        rc = loop_init(&loops[i], io, i, &ok);
        inited += (unsigned)ok;
        if (rc != 0)
            goto done;
    }
    uv_mutex_lock(&io->loops_lock);
    __atomic_store_n(&io->loops, loops, __ATOMIC_RELEASE); /* signal handlers read it too */
    uv_mutex_unlock(&io->loops_lock);
    for (unsigned i = 1; i < n; i++) {
        rc = uv_thread_create(&threads[i], loop_main, &loops[i]);
        if (rc != 0) {
            jrpc__io_stop(io);
            break;
        }
        started++;
    }
    loop_main(&loops[0]);
    for (unsigned i = 1; i <= started; i++)
        uv_thread_join(&threads[i]);
done:;
    unsigned orphaned = 0;
    for (unsigned i = 0; i < inited; i++)
        orphaned += !jrpc__list_empty(&loops[i].reqs);
    if (io->pool != NULL && orphaned != 0)
        jrpc__pool_abandon(io->pool); /* a worker handler may never return */
    else if (io->pool != NULL)
        jrpc__pool_free(io->pool);
    io->pool = NULL;
    uv_mutex_lock(&io->loops_lock);
    __atomic_store_n(&io->loops, NULL, __ATOMIC_RELEASE);
    uv_mutex_unlock(&io->loops_lock);
    for (unsigned i = 0; i < inited; i++)
        loop_cleanup(&loops[i]);
    if (orphaned != 0) {
        size_t left = 0;
        for (unsigned i = 0; i < inited; i++)
            left += loops[i].orphans;
        jrpc__log(io->cfg, JRPC_LOG_WARN, "server",
                  "stopped with %zu requests whose handlers never replied (answered -32000)", left);
        /* Handlers that never replied still hold calls of these loops: the loops' memory stays
         * until the server is freed, and a late reply is dropped at their post lock. */
        io->kept_loops = loops;
        io->nkept_loops = inited;
    } else {
        free(loops);
    }
    free(threads);
    atomic_store(&io->stop_requests, 0);
    atomic_store(&io->drain_requests, 0);
    return rc;
}

void jrpc__io_reconfigure(jrpc__io_t *io, const jrpc_config_t *cfg)
{
    atomic_store(&io->cfg, cfg);
    /* Under loops_lock the loops are not freed; under each post lock a loop's wakeup is open
     * unless it is dead (jrpc__loop_post). A loop not ready yet reads io->cfg when it starts. */
    uv_mutex_lock(&io->loops_lock);
    for (unsigned i = 0; io->loops != NULL && i < cfg->io_threads; i++) {
        jrpc__loop_t *loop = &io->loops[i];
        uv_mutex_lock(&loop->post_lock);
        if (!loop->dead && atomic_load(&loop->ready))
            uv_async_send(&loop->wakeup);
        uv_mutex_unlock(&loop->post_lock);
    }
    uv_mutex_unlock(&io->loops_lock);
}

/* Wakes every running loop to look at the stop and drain counts; async-signal-safe (atomics and
 * uv_async_send only), as the daemon's signal handlers call jrpc__io_stop and jrpc__io_drain. */
static void wake_loops(jrpc__io_t *io)
{
    jrpc__loop_t *loops = __atomic_load_n(&io->loops, __ATOMIC_ACQUIRE);
    if (loops == NULL)
        return;
    for (unsigned i = 0; i < io->cfg->io_threads; i++)
        if (atomic_load(&loops[i].ready))
            uv_async_send(&loops[i].wakeup);
}

void jrpc__io_stop(jrpc__io_t *io)
{
    atomic_fetch_add(&io->stop_requests, 1);
    wake_loops(io);
}

void jrpc__io_drain(jrpc__io_t *io)
{
    if (io->cfg->drain_delay_ms == 0) {
        jrpc__io_stop(io);
        return;
    }
    atomic_fetch_add(&io->drain_requests, 1);
    wake_loops(io);
}

/* ---- One loop on the calling thread (in-process tests and fuzzers) ----------------------------
 */

int jrpc__loop_open(jrpc__io_t *io, jrpc__loop_t *loop)
{
    memset(loop, 0, sizeof(*loop));
    if (io->pool == NULL &&
        (io->pool = jrpc__pool_new(io->cfg->workers, io->cfg->worker_queue)) == NULL)
        return JRPC_ENOMEM;
    int inited = 0;
    int rc = loop_init(loop, io, 0, &inited);
    if (rc != 0)
        return rc;
    loop->tid = uv_thread_self();
    atomic_store(&loop->ready, 1);
    return 0;
}

int jrpc__loop_finish(jrpc__loop_t *loop)
{
    jrpc__loop_drain(loop);
    loop_maybe_done(loop);
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    int rc = loop_cleanup(loop);
    jrpc__io_t *io = loop->io;
    if (io->pool != NULL)
        jrpc__pool_free(io->pool);
    io->pool = NULL;
    return rc;
}
