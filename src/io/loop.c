/* loop.c — the io loops. Each io thread runs one libuv loop with its own SO_REUSEPORT listening
 * socket per address, so the kernel spreads connections over the loops and a connection never
 * changes thread; work from other threads (replies, pushes) reaches a loop through its one post
 * queue and uv_async wakeup, in posting order. Stopping closes the listeners, lets what holds the
 * loop finish (bounded by drain_ms) and then ends every loop. The layers above plug in through
 * jrpc__io_hooks_t: this file names none of them. */
#include "internal.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
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
    for (size_t a = 0; a < JRPC__MAX_LISTEN; a++)
        for (size_t i = 0; i < MAX_IO_THREADS; i++)
            io->fds[a][i] = -1;
    io->admit = jrpc__admit_table_new();
    return io->admit != NULL ? 0 : JRPC_ENOMEM;
}

void jrpc__io_close(jrpc__io_t *io)
{
    for (size_t a = 0; a < JRPC__MAX_LISTEN; a++)
        for (size_t i = 0; i < MAX_IO_THREADS; i++)
            if (io->fds[a][i] >= 0)
                close(io->fds[a][i]);
    jrpc__admit_table_free(io->admit);
    io->admit = NULL;
    while (io->exts != NULL) {
        jrpc__loop_ext_t *e = io->exts;
        io->exts = e->next;
        free(e);
    }
}

/* ---- Listening ------------------------------------------------------------------------------- */

/* Splits "HOST:PORT" / "[V6]:PORT" into host and port text. */
static int split_host_port(const char *hp, char *host, size_t host_cap, char *port, size_t cap)
{
    const char *colon;
    const char *h = hp;
    size_t hlen;
    if (hp[0] == '[') {
        const char *close = strchr(hp, ']');
        if (close == NULL || close[1] != ':')
            return JRPC_EINVAL;
        h = hp + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(hp, ':');
        if (colon == NULL)
            return JRPC_EINVAL;
        hlen = (size_t)(colon - hp);
    }
    if (hlen == 0 || hlen >= host_cap || strlen(colon + 1) == 0 || strlen(colon + 1) >= cap)
        return JRPC_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

static int listen_socket(const struct sockaddr *sa, socklen_t salen, int *out)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0 ||
        (sa->sa_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) ||
        bind(fd, sa, salen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    *out = fd;
    return 0;
}

int jrpc__io_listen(jrpc__io_t *io, const char *host_port)
{
    char host[256], port[16];
    if (io->naddrs == JRPC__MAX_LISTEN || host_port == NULL ||
        split_host_port(host_port, host, sizeof host, port, sizeof port) != 0)
        return JRPC_EINVAL;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
        return JRPC_EINVAL;
    struct sockaddr_storage ss;
    socklen_t sslen = (socklen_t)res->ai_addrlen;
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);

    size_t a = io->naddrs;
    int rc = 0;
    for (unsigned i = 0; i < io->cfg->io_threads; i++) {
        rc = listen_socket((struct sockaddr *)&ss, sslen, &io->fds[a][i]);
        if (rc != 0)
            goto fail;
        if (i == 0) {
            /* Port 0 picks a free port once; the other loops' sockets join that port. */
            sslen = sizeof ss;
            getsockname(io->fds[a][0], (struct sockaddr *)&ss, &sslen);
        }
    }
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

void jrpc__loop_post(jrpc__loop_t *loop, jrpc__post_t *p)
{
    p->next = NULL;
    uv_mutex_lock(&loop->post_lock);
    if (loop->post_tail != NULL)
        loop->post_tail->next = p;
    else
        loop->post_head = p;
    loop->post_tail = p;
    uv_mutex_unlock(&loop->post_lock);
    uv_async_send(&loop->wakeup);
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

/* Runs the extensions' stop hooks, once: when the loop has drained, or when the drain is cut
 * short with requests still running (then they answer what they hold). The flag is set first, as
 * the hooks' replies can finish the last request and reach loop_maybe_done from inside. */
static void loop_stop_exts(jrpc__loop_t *loop)
{
    if (loop->ext_done)
        return;
    loop->ext_done = 1;
    for (const jrpc__loop_ext_t *e = loop->io->exts; e != NULL; e = e->next)
        if (e->stop != NULL)
            e->stop(&loop->uv, loop->index, e->data);
}

static void loop_maybe_done(jrpc__loop_t *loop)
{
    if (!loop->stopping || loop->closing || loop->holds != 0)
        return;
    loop->closing = 1;
    /* Nothing is posted any more once every connection closed; what was posted before still
     * runs (a subscription's end owes its end_cb). */
    loop_run_posted(loop);
    loop_stop_exts(loop);
    uv_close((uv_handle_t *)&loop->wakeup, NULL);
    uv_close((uv_handle_t *)&loop->drain_timer, NULL);
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

static void loop_drain_timeout(uv_timer_t *t)
{
    jrpc__loop_t *loop = t->data;
    /* Before the connections go, so that what the extensions answer reaches their clients. */
    loop_stop_exts(loop);
    jrpc__loop_close_all(loop);
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

static void loop_wakeup(uv_async_t *h)
{
    jrpc__loop_t *loop = h->data;
    loop_run_posted(loop);
    int stops = atomic_load(&loop->io->stop_requests);
    if (stops > 0 && !loop->stopping)
        loop_begin_stop(loop);
    if (stops > 1 && !loop->closing) {
        loop_stop_exts(loop);
        jrpc__loop_close_all(loop);
        loop_maybe_done(loop);
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
    jrpc__list_init(&loop->conns);
    uv_mutex_init(&loop->post_lock);
    uv_async_init(&loop->uv, &loop->wakeup, loop_wakeup);
    loop->wakeup.data = loop;
    uv_timer_init(&loop->uv, &loop->drain_timer);
    loop->drain_timer.data = loop;
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
    /* A stop asked before this loop was ready is picked up here. */
    if (atomic_load(&loop->io->stop_requests) > 0)
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

static int loop_cleanup(jrpc__loop_t *loop)
{
    loop_run_posted(loop);
    uv_walk(&loop->uv, close_any, NULL);
    uv_run(&loop->uv, UV_RUN_NOWAIT);
    int rc = uv_loop_close(&loop->uv);
    uv_mutex_destroy(&loop->post_lock);
    jrpc__arena_cache_clear(&loop->arenas);
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
    io->loops = loops;
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
done:
    if (io->pool != NULL)
        jrpc__pool_free(io->pool);
    io->pool = NULL;
    for (unsigned i = 0; i < inited; i++)
        loop_cleanup(&loops[i]);
    io->loops = NULL;
    free(loops);
    free(threads);
    atomic_store(&io->stop_requests, 0);
    return rc;
}

void jrpc__io_stop(jrpc__io_t *io)
{
    atomic_fetch_add(&io->stop_requests, 1);
    jrpc__loop_t *loops = io->loops;
    if (loops == NULL)
        return;
    for (unsigned i = 0; i < io->cfg->io_threads; i++)
        if (atomic_load(&loops[i].ready))
            uv_async_send(&loops[i].wakeup);
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
