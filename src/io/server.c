/* server.c — the server object and its io loops. Each io thread runs one libuv loop with its own
 * SO_REUSEPORT listening socket per address, so the kernel spreads connections over the loops and
 * a connection never changes thread; handlers that reply from other threads hand their call back
 * through the loop's completion queue and uv_async wakeup. Stopping closes the listeners, lets
 * in-flight requests finish (bounded by drain_ms) and then ends every loop. */
#include "../rpc/req.h"
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

JRPC_EXTERN void jrpc_config_init(jrpc_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->path = "/api/v1/endpoint";  /* seed 001's endpoint */
    cfg->rest_path = "/rest";        /* seed 002's batches over REST */
    cfg->io_threads = 0;             /* one loop per core */
    cfg->workers = 8;                /* blocking handlers (SQLite, files): a few per core */
    cfg->worker_queue = 1024;        /* 32 batches at full concurrency before -32005 */
    cfg->batch_concurrency = 32;     /* DESIGN.md §2: enough to overlap I/O, bounded */
    cfg->max_batch = 1000;           /* seed 002: 1000 per HTTP batch */
    cfg->max_batch_ws = 20;          /* seed 002: 20 per WebSocket batch */
    cfg->max_depth = 128;            /* see JRPC_JSON_MAX_DEPTH */
    cfg->max_body = 5u << 20;        /* 5 MiB: 1000 calls of ~5 KiB each */
    cfg->max_header = 64u << 10;     /* 64 KiB: far above any real client's headers */
    cfg->max_response = 25000000;    /* 25 MB: large eth_getLogs answers fit */
    cfg->deadline_ms = 30000;        /* 30 s: common client and proxy timeouts are 30-60 s */
    cfg->drain_ms = 10000;           /* 10 s: systemd gives 90 s; answers in flight finish */
    cfg->max_ws_message = 5u << 20;  /* 5 MiB: a message is a request body, as max_body */
    cfg->ws_max_inflight = 256;      /* 12 full WS batches, 256 pipelined calls per client */
    cfg->ws_max_queue = 16u << 20;   /* 16 MiB unread output: a stalled client, not a slow one */
    cfg->ws_ping_ms = 30000;         /* 30 s: inside the 60 s idle cut of common proxies */
    cfg->ws_idle_ms = 0;             /* off: WS clients keep one connection for their life */
    cfg->max_connections = 10000;    /* the 10k-connection target, and what fds allow once
                                        jrpcd raises its soft RLIMIT_NOFILE */
    cfg->max_connections_per_ip = 0; /* off: behind a proxy or NAT every client is one IP */
    cfg->header_timeout_ms = 10000;  /* 10 s: a real client sends its head in one packet;
                                        slowloris-style trickles are cut */
    cfg->body_timeout_ms = 10000;    /* 10 s without a byte of body (nginx: 60 s) */
    cfg->min_body_rate = 1024;       /* 1 KiB/s: a 5 MiB body may take 85 min, never a day */
    cfg->idle_timeout_ms = 75000;    /* 75 s: nginx's keepalive_timeout, above the 60 s idle
                                        cut of common load balancers, so they close first */
    cfg->send_timeout_ms = 60000;    /* 60 s without the socket taking a byte (nginx's) */
    cfg->log_level = JRPC_LOG_INFO;
}

/* Fields a server cannot work with at 0: no batch, body, answer or WebSocket message would ever
 * fit, and JRPC_WORKER calls would have no thread. (io_threads, batch_concurrency and max_depth
 * take a default at 0 instead.) */
#define CONFIG_AT_LEAST_1(XX)                                                                      \
    XX(workers)                                                                                    \
    XX(max_batch)                                                                                  \
    XX(max_batch_ws)                                                                               \
    XX(max_body)                                                                                   \
    XX(max_response)                                                                               \
    XX(max_ws_message)                                                                             \
    XX(ws_max_inflight)                                                                            \
    XX(ws_max_queue)

JRPC_EXTERN const char *jrpc_config_check(const jrpc_config_t *cfg)
{
    if (cfg == NULL)
        return NULL; /* the defaults */
    if (cfg->path == NULL || cfg->path[0] != '/')
        return "path must start with /";
#define XX(field)                                                                                  \
    if (cfg->field == 0)                                                                           \
        return #field " must be at least 1";
    CONFIG_AT_LEAST_1(XX)
#undef XX
    return NULL;
}

JRPC_EXTERN int jrpc_server_create(const jrpc_config_t *cfg, jrpc_server_t **out)
{
    jrpc_config_t defaults;
    int rc = JRPC_ENOMEM;
    *out = NULL;
    if (cfg == NULL) {
        jrpc_config_init(&defaults);
        cfg = &defaults;
    }
    if (jrpc_config_check(cfg) != NULL)
        return JRPC_EINVAL;
    jrpc_server_t *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return JRPC_ENOMEM;
    /* Before anything can fail: jrpc_server_free closes every descriptor that is not -1. */
    for (size_t a = 0; a < JRPC__MAX_LISTEN; a++)
        for (size_t i = 0; i < MAX_IO_THREADS; i++)
            srv->fds[a][i] = -1;
    srv->cfg = *cfg;
    if (srv->cfg.io_threads == 0)
        srv->cfg.io_threads = uv_available_parallelism();
    if (srv->cfg.io_threads > MAX_IO_THREADS)
        srv->cfg.io_threads = MAX_IO_THREADS;
    if (srv->cfg.batch_concurrency == 0)
        srv->cfg.batch_concurrency = 1;
    if (srv->cfg.max_depth == 0)
        srv->cfg.max_depth = 128;
    srv->path = strdup(cfg->path);
    srv->rest_path = strdup(cfg->rest_path && cfg->rest_path[0] == '/' ? cfg->rest_path : "");
    srv->registry = jrpc__registry_new();
    srv->admit = jrpc__admit_table_new();
    if (srv->path == NULL || srv->rest_path == NULL || srv->registry == NULL || srv->admit == NULL)
        goto fail;
    if ((rc = jrpc__discover_register(srv)) != 0)
        goto fail;
    srv->cfg.path = srv->path;
    srv->cfg.rest_path = srv->rest_path;
    /* Strip a trailing '/' so "/rest/" and "/rest" mean the same prefix. */
    size_t rl = strlen(srv->rest_path);
    if (rl > 1 && srv->rest_path[rl - 1] == '/')
        srv->rest_path[rl - 1] = '\0';
    *out = srv;
    return 0;
fail:
    jrpc_server_free(srv);
    return rc;
}

JRPC_EXTERN jrpc_server_t *jrpc_server_new(const jrpc_config_t *cfg)
{
    jrpc_server_t *srv;
    return jrpc_server_create(cfg, &srv) == 0 ? srv : NULL;
}

JRPC_EXTERN const jrpc_config_t *jrpc_server_config(const jrpc_server_t *srv)
{
    return &srv->cfg;
}

JRPC_EXTERN int jrpc_method_add(jrpc_server_t *srv, const char *name, jrpc_method_cb cb, void *data,
                                unsigned flags)
{
    if (atomic_load(&srv->running))
        return JRPC_EBUSY;
    return jrpc__registry_add(srv->registry, name, cb, data, flags);
}

JRPC_EXTERN int jrpc_batch_deny(jrpc_server_t *srv, const char *pattern)
{
    if (atomic_load(&srv->running))
        return JRPC_EBUSY;
    return jrpc__registry_deny_batch(srv->registry, pattern);
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

JRPC_EXTERN int jrpc_server_listen(jrpc_server_t *srv, const char *host_port)
{
    char host[256], port[16];
    if (atomic_load(&srv->running))
        return JRPC_EBUSY;
    if (srv->naddrs == JRPC__MAX_LISTEN || host_port == NULL ||
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

    size_t a = srv->naddrs;
    int rc = 0;
    for (unsigned i = 0; i < srv->cfg.io_threads; i++) {
        rc = listen_socket((struct sockaddr *)&ss, sslen, &srv->fds[a][i]);
        if (rc != 0)
            goto fail;
        if (i == 0) {
            /* Port 0 picks a free port once; the other loops' sockets join that port. */
            sslen = sizeof ss;
            getsockname(srv->fds[a][0], (struct sockaddr *)&ss, &sslen);
        }
    }
    jrpc__addr_name((const struct sockaddr *)&ss, srv->addrs[a], sizeof srv->addrs[a]);
    srv->naddrs++;
    return 0;
fail:
    for (unsigned i = 0; i < srv->cfg.io_threads; i++) {
        if (srv->fds[a][i] >= 0)
            close(srv->fds[a][i]);
        srv->fds[a][i] = -1;
    }
    return rc;
}

JRPC_EXTERN size_t jrpc_server_listen_count(const jrpc_server_t *srv)
{
    return srv->naddrs;
}

JRPC_EXTERN int jrpc_server_address(const jrpc_server_t *srv, size_t i, char *buf, size_t cap)
{
    if (i >= srv->naddrs)
        return JRPC_ENOENT;
    if ((size_t)snprintf(buf, cap, "%s", srv->addrs[i]) >= cap)
        return JRPC_ERANGE;
    return 0;
}

/* ---- Loops ----------------------------------------------------------------------------------- */

void jrpc__loop_post(jrpc__loop_t *loop, jrpc_call_t *call)
{
    call->next_done = NULL;
    uv_mutex_lock(&loop->done_lock);
    if (loop->done_tail != NULL)
        loop->done_tail->next_done = call;
    else
        loop->done_head = call;
    loop->done_tail = call;
    uv_mutex_unlock(&loop->done_lock);
    uv_async_send(&loop->wakeup);
}

void jrpc__loop_maybe_done(jrpc__loop_t *loop)
{
    if (!loop->stopping || loop->closing || loop->nconns != 0 || loop->nws != 0 || loop->nreqs != 0)
        return;
    loop->closing = 1;
    jrpc__ws_loop_close(loop);
    uv_close((uv_handle_t *)&loop->wakeup, NULL);
    uv_close((uv_handle_t *)&loop->drain_timer, NULL);
}

static void loop_drain_timeout(uv_timer_t *t)
{
    jrpc__loop_t *loop = t->data;
    jrpc__http_close_all(loop);
    jrpc__loop_maybe_done(loop);
}

static void loop_begin_stop(jrpc__loop_t *loop)
{
    loop->stopping = 1;
    for (unsigned a = 0; a < loop->nlisteners; a++)
        uv_close((uv_handle_t *)&loop->listeners[a], NULL);
    jrpc__http_drain(loop);
    uv_timer_start(&loop->drain_timer, loop_drain_timeout, loop->srv->cfg.drain_ms, 0);
    jrpc__loop_maybe_done(loop);
}

static void loop_wakeup(uv_async_t *h)
{
    jrpc__loop_t *loop = h->data;
    uv_mutex_lock(&loop->done_lock);
    jrpc_call_t *c = loop->done_head;
    loop->done_head = loop->done_tail = NULL;
    uv_mutex_unlock(&loop->done_lock);
    while (c != NULL) {
        jrpc_call_t *next = c->next_done;
        jrpc__call_done(c);
        c = next;
    }
    int stops = atomic_load(&loop->srv->stop_requests);
    if (stops > 0 && !loop->stopping)
        loop_begin_stop(loop);
    if (stops > 1 && !loop->closing) {
        jrpc__http_close_all(loop);
        jrpc__loop_maybe_done(loop);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    jrpc__loop_t *loop = server->data;
    if (status < 0)
        return;
    /* Also while stopping: the transport accepts and closes, so libuv keeps watching. */
    jrpc__http_accept(loop, server);
}

/* Sets up a loop's handles; *inited tells whether uv_loop_init succeeded (so cleanup must run
 * the loop out even when a later step failed). */
int jrpc__loop_init(jrpc__loop_t *loop, jrpc_server_t *srv, unsigned index, int *inited)
{
    loop->srv = srv;
    loop->index = index;
    int rc = uv_loop_init(&loop->uv);
    if (rc != 0)
        return rc;
    *inited = 1;
    loop->uv.data = loop;
    jrpc__list_init(&loop->conns);
    uv_mutex_init(&loop->done_lock);
    uv_async_init(&loop->uv, &loop->wakeup, loop_wakeup);
    loop->wakeup.data = loop;
    uv_timer_init(&loop->uv, &loop->drain_timer);
    loop->drain_timer.data = loop;
    jrpc__ws_loop_init(loop);
    for (size_t a = 0; a < srv->naddrs; a++) {
        uv_tcp_t *l = &loop->listeners[a];
        uv_tcp_init(&loop->uv, l);
        l->data = loop;
        loop->nlisteners++;
        rc = uv_tcp_open(l, srv->fds[a][loop->index]);
        if (rc == 0) {
            srv->fds[a][loop->index] = -1; /* the handle owns it now */
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
    atomic_store(&loop->ready, 1);
    /* A stop asked before this loop was ready is picked up here. */
    if (atomic_load(&loop->srv->stop_requests) > 0)
        uv_async_send(&loop->wakeup);
    uv_run(&loop->uv, UV_RUN_DEFAULT);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

JRPC_EXTERN int jrpc_server_run(jrpc_server_t *srv)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&srv->running, &expected, 1))
        return JRPC_EBUSY;
    /* A client that goes away mid-answer must cost an EPIPE, not the process: libuv writes with
     * write(2), so SIGPIPE is ignored unless the embedding program installed its own handler. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    jrpc__http_global_init(&srv->cfg);
    if (jrpc__discover_build(srv) != 0) {
        atomic_store(&srv->running, 0);
        return JRPC_ENOMEM;
    }
    unsigned n = srv->cfg.io_threads;
    uv_thread_t *threads = calloc(n, sizeof(*threads));
    jrpc__loop_t *loops = calloc(n, sizeof(*loops));
    srv->pool = jrpc__pool_new(srv->cfg.workers, srv->cfg.worker_queue);
    int rc = JRPC_ENOMEM;
    unsigned inited = 0, started = 0;
    if (threads == NULL || loops == NULL || srv->pool == NULL)
        goto done;
    for (unsigned i = 0; i < n; i++) {
        int ok = 0;
        rc = jrpc__loop_init(&loops[i], srv, i, &ok);
        inited += (unsigned)ok;
        if (rc != 0)
            goto done;
    }
    srv->loops = loops;
    for (unsigned i = 1; i < n; i++) {
        rc = uv_thread_create(&threads[i], loop_main, &loops[i]);
        if (rc != 0) {
            jrpc_server_stop(srv);
            break;
        }
        started++;
    }
    loop_main(&loops[0]);
    for (unsigned i = 1; i <= started; i++)
        uv_thread_join(&threads[i]);
done:
    if (srv->pool != NULL)
        jrpc__pool_free(srv->pool);
    srv->pool = NULL;
    for (unsigned i = 0; i < inited; i++) {
        /* Loops that never ran (a failed start) still hold handles: close and run them out. */
        uv_walk(&loops[i].uv, close_any, NULL);
        uv_run(&loops[i].uv, UV_RUN_NOWAIT);
        uv_loop_close(&loops[i].uv);
        uv_mutex_destroy(&loops[i].done_lock);
        jrpc__ws_loop_free(&loops[i]);
        jrpc__arena_cache_clear(&loops[i].arenas);
    }
    srv->loops = NULL;
    free(loops);
    free(threads);
    atomic_store(&srv->stop_requests, 0);
    atomic_store(&srv->running, 0);
    return rc;
}

JRPC_EXTERN void jrpc_server_stop(jrpc_server_t *srv)
{
    atomic_fetch_add(&srv->stop_requests, 1);
    jrpc__loop_t *loops = srv->loops;
    if (loops == NULL)
        return;
    for (unsigned i = 0; i < srv->cfg.io_threads; i++)
        if (atomic_load(&loops[i].ready))
            uv_async_send(&loops[i].wakeup);
}

JRPC_EXTERN void jrpc_server_free(jrpc_server_t *srv)
{
    if (srv == NULL)
        return;
    for (size_t a = 0; a < JRPC__MAX_LISTEN; a++)
        for (size_t i = 0; i < MAX_IO_THREADS; i++)
            if (srv->fds[a][i] >= 0)
                close(srv->fds[a][i]);
    jrpc__registry_free(srv->registry);
    jrpc__admit_table_free(srv->admit);
    free(srv->discover);
    free(srv->path);
    free(srv->rest_path);
    free(srv);
}
