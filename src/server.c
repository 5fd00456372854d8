/* SPDX-License-Identifier: MIT */
/* server.c — the public server object, the roof over the layers: it owns the configuration, the
 * io loops (src/io), the engine's state (src/rpc) and plugs the transports (src/http, src/ws)
 * into the loops through their hooks. Nothing below names it; they reach what they need through
 * jrpc__io_t and jrpc__engine_t. */
#include "server.h"
#include "http/internal.h"
#include "io/budget.h"
#include "io/redis.h"
#include "util/log.h"
#include "ws/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Most io threads: one per core is the point, and 64 covers any machine we expect while keeping
 * the per-address socket table fixed-size. */
#define MAX_IO_THREADS JRPC_MAX_IO_THREADS

/* The hosts a server with no `hosts` serves: what names this machine's loopback interface, the
 * way a local client (curl, a wallet, a test) addresses it; listen adds loopback listen names. */
#define HOSTS_DEFAULT "localhost 127.0.0.1 ::1"

JRPC_EXTERN void jrpc_config_init(jrpc_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->path = "/api/v1/endpoint"; /* seed 001's endpoint */
    cfg->rest_path = "/rest";       /* seed 002's batches over REST */
    cfg->io_threads = 0;            /* one loop per core */
    cfg->reuse_port = 0;            /* off: a second server on a port must fail loudly, not take
                                       half its connections; sharing is for restarts on purpose */
    cfg->workers = 8;               /* blocking handlers (SQLite, files): a few per core */
    cfg->worker_queue = 1024;       /* 32 batches at full concurrency before -32005 */
    cfg->batch_concurrency = 32;    /* DESIGN.md §2: enough to overlap I/O, bounded */
    cfg->max_batch = 1000;          /* seed 002: 1000 per HTTP batch */
    cfg->max_batch_ws = 20;         /* seed 002: 20 per WebSocket batch */
    cfg->max_depth = JRPC_MAX_DEPTH;
    cfg->max_body = 5u << 20;        /* 5 MiB: 1000 calls of ~5 KiB each */
    cfg->max_header = 64u << 10;     /* 64 KiB: far above any real client's headers */
    cfg->max_response = 25000000;    /* 25 MB: large eth_getLogs answers fit */
    cfg->deadline_ms = 30000;        /* 30 s: common client and proxy timeouts are 30-60 s */
    cfg->drain_ms = 10000;           /* 10 s: systemd gives 90 s; answers in flight finish */
    cfg->drain_delay_ms = 0;         /* off: without a load balancer nobody reads /ready, and
                                        its checks set the right value (docs/health.md) */
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
    cfg->max_inflight = 65536;       /* 256 WebSocket clients at ws_max_inflight, or 65 full
                                        HTTP batches: past that the loops and the worker pool
                                        are the limit, and each call pins its request */
    cfg->max_memory = 1u << 30;      /* 1 GiB of requests and answers: 40 answers at
                                        max_response, what a small host can give one process */
    cfg->max_unsent = 1u << 20;      /* 1 MiB of answers unread on top of the kernel's socket
                                        buffer: a client that pipelines and does not read */
    cfg->http_max_inflight = 256;    /* as ws_max_inflight: one client's share of the worker
                                        queue and of max_inflight */
    /* A dapp holds a handful; 1000 (~0.7 MB of subscription state with a small producer) leaves
     * room for a backend that subscribes per contract, not for a storm. */
    cfg->ws_max_subscriptions = 1000;
    cfg->log_level = JRPC_LOG_INFO;
    /* The registered names of a large gateway (Ethereum's ~60 eth_/net_/web3_ methods, a few
     * modules') fit; a series per method and code stays in the thousands for Prometheus. */
    cfg->max_method_labels = 256;
    /* Browser-facing defaults (docs/security.md): a page's own host name never reaches us (DNS
     * rebinding), nor does a page of another origin (no CORS) unless the operator names it.
     * NULL hosts: the localhost names and loopback listen addresses (HOSTS_DEFAULT). */
    cfg->hosts = NULL;
    cfg->cors_origins = NULL;
    /* No proxy is trusted until named: a client could otherwise pick the address it is logged
     * and capped under with an X-Forwarded-For of its own. */
    cfg->trusted_proxies = NULL;
    cfg->log_json = 0; /* text lines, as jrpcd has always written them */
    /* Budgets stay in the process unless a Redis is named (docs/keys.md). 50 ms is 50 times a
     * healthy Redis's round trip on a LAN, and what a client barely notices when Redis stalls;
     * open, because a Redis outage should not refuse every client of every key (the keys are
     * still checked: only their budgets are not counted meanwhile). */
    cfg->redis_url = NULL;
    cfg->redis_password = NULL;
    cfg->redis_db = -1;
    cfg->redis_timeout_ms = 50;
    cfg->redis_fail_closed = 0;
    /* gzip on: clients ask for it (curl --compressed, browsers, Python requests, Node fetch) and
     * Ethereum answers shrink 5-10x. Below 1 KiB an answer fits one TCP segment either way, so
     * compressing it only costs CPU and a deflate state. Level 1: JSON gets most of its gain at
     * the fastest level (bench/run.sh ONLY=stream measures it); higher levels cost 2-4x the CPU
     * for a few percent more. */
    cfg->gzip = 1;
    cfg->gzip_min = 1024;
    cfg->gzip_level = 1;
    /* On: browsers and the ws package offer permessage-deflate by default. Its state counts in
     * each connection's account (docs/compression.md says how much). */
    cfg->ws_deflate = 1;
    /* Request order: ethers v5 and others match answers by position (DESIGN.md §2). */
    cfg->batch_order = JRPC_ORDER_REQUEST;
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
    XX(ws_max_queue)                                                                               \
    XX(max_inflight)                                                                               \
    XX(max_memory)                                                                                 \
    XX(max_unsent)                                                                                 \
    XX(http_max_inflight)                                                                          \
    XX(ws_max_subscriptions)

JRPC_EXTERN const char *jrpc_config_check(const jrpc_config_t *cfg)
{
    if (cfg == NULL)
        return NULL; /* the defaults */
    if (cfg->path == NULL || cfg->path[0] != '/')
        return "path must start with /";
    const char *why = jrpc__http_hosts_check(cfg->hosts);
    if (why == NULL)
        why = jrpc__http_origins_check(cfg->cors_origins);
    if (why == NULL && jrpc__cidr_list_parse(cfg->trusted_proxies, NULL, NULL) != 0)
        why = "trusted_proxies: each entry must be an IPv4 or IPv6 address or ADDR/BITS";
    if (why != NULL)
        return why;
#define XX(field)                                                                                  \
    if (cfg->field == 0)                                                                           \
        return #field " must be at least 1";
    CONFIG_AT_LEAST_1(XX)
#undef XX
    if (cfg->reuse_port > 1)
        return "reuse_port must be 0 or 1";
    if (cfg->redis_url != NULL && cfg->redis_url[0] != '\0') {
        if (jrpc__redis_url_parse(cfg->redis_url, NULL, 0, NULL, NULL, 0, NULL, &why) != 0)
            return why;
        if (cfg->redis_timeout_ms == 0 || cfg->redis_timeout_ms > JRPC__REDIS_MAX_TIMEOUT_MS)
            return "redis_timeout_ms must be 1 to 60000";
        if (cfg->redis_db < -1 || cfg->redis_db > JRPC__REDIS_MAX_DB)
            return "redis_db must be 0 to 65535";
        if (cfg->redis_fail_closed > 1)
            return "redis_fail_closed must be 0 or 1";
    }
    if (cfg->gzip > 1)
        return "gzip must be 0 or 1";
    if (cfg->ws_deflate > 1)
        return "ws_deflate must be 0 or 1";
    if (cfg->batch_order > JRPC_ORDER_COMPLETION)
        return "batch_order must be JRPC_ORDER_REQUEST or JRPC_ORDER_COMPLETION";
    if (cfg->gzip_level < 1 || cfg->gzip_level > 9)
        return "gzip_level must be 1 to 9";
    return NULL;
}

/* ---- API keys and budgets ------------------------------------------------------------------- */

/* The one place that chooses the budget store: Redis when redis_url names one (every server
 * pointing at it shares each budget), else budgets kept in this process. 0 and the store in
 * *out, JRPC_EINVAL (the Redis settings refused, or its host does not resolve: logged) or
 * JRPC_ENOMEM. */
static int budget_store_new(jrpc_server_t *srv, jrpc__budget_t **out)
{
    const jrpc_config_t *c = &srv->cfg;
    if (c->redis_url == NULL || c->redis_url[0] == '\0') {
        *out = jrpc__budget_local_new();
        return *out != NULL ? 0 : JRPC_ENOMEM;
    }
    jrpc__redis_opts_t o = {c->redis_url, c->redis_password, c->redis_db, c->redis_timeout_ms,
                            c->redis_fail_closed != 0};
    char err[512];
    int rc = jrpc__budget_redis_new(&o, out, err, sizeof err);
    if (rc == JRPC_EINVAL)
        jrpc__log(c, JRPC_LOG_ERROR, NULL, "budgets in Redis: %s", err);
    return rc;
}

/* The store's per-loop hooks, on each io loop's own thread (a loop hook of the server's own). */
static void budget_loop_start(void *uv, unsigned index, void *data)
{
    (void)index;
    jrpc_server_t *srv = data;
    jrpc__budget_t *b = srv->engine.budget;
    if (b != NULL && b->ops->loop_start != NULL) {
        int rc = b->ops->loop_start(b, JRPC__CONTAINER_OF(uv, jrpc__loop_t, uv));
        if (rc != 0)
            jrpc__log(&srv->cfg, JRPC_LOG_WARN, NULL, "budget store: loop %u: %s", index,
                      jrpc_strerror(rc));
    }
}

static void budget_loop_stop(void *uv, unsigned index, void *data)
{
    (void)index;
    jrpc_server_t *srv = data;
    jrpc__budget_t *b = srv->engine.budget;
    if (b != NULL && b->ops->loop_close != NULL)
        b->ops->loop_close(b, JRPC__CONTAINER_OF(uv, jrpc__loop_t, uv));
}

JRPC_EXTERN int jrpc_server_create(const jrpc_config_t *cfg, jrpc_server_t **out)
{
    jrpc_config_t defaults;
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
    srv->cfg = *cfg;
    uv_mutex_init(&srv->reconf_lock);
    if (srv->cfg.io_threads == 0)
        srv->cfg.io_threads = uv_available_parallelism();
    if (srv->cfg.io_threads > MAX_IO_THREADS)
        srv->cfg.io_threads = MAX_IO_THREADS;
    if (srv->cfg.batch_concurrency == 0)
        srv->cfg.batch_concurrency = 1;
    if (srv->cfg.max_depth == 0)
        srv->cfg.max_depth = JRPC_MAX_DEPTH;
    /* First: it marks every listening descriptor closed, which jrpc_server_free relies on. */
    int rc = jrpc__io_init(&srv->io, &srv->cfg, srv);
    srv->io.engine = &srv->engine;
    srv->io.hooks.accept = jrpc__http_accept;
    srv->io.hooks.expire = jrpc__req_expire_all;
    srv->io.hooks.orphan = jrpc__req_orphan_all;
    srv->io.hooks.metrics = jrpc__metrics_render;
    srv->path = strdup(cfg->path);
    srv->rest_path = strdup(cfg->rest_path && cfg->rest_path[0] == '/' ? cfg->rest_path : "");
    srv->hosts_default = cfg->hosts == NULL || cfg->hosts[strspn(cfg->hosts, " \t,")] == '\0';
    srv->hosts = strdup(srv->hosts_default ? HOSTS_DEFAULT : cfg->hosts);
    srv->cors_origins = strdup(cfg->cors_origins != NULL ? cfg->cors_origins : "");
    srv->trusted_proxies = strdup(cfg->trusted_proxies != NULL ? cfg->trusted_proxies : "");
    srv->engine.registry = jrpc__registry_new();
    if (rc == 0 &&
        (srv->path == NULL || srv->rest_path == NULL || srv->hosts == NULL ||
         srv->cors_origins == NULL || srv->trusted_proxies == NULL || srv->engine.registry == NULL))
        rc = JRPC_ENOMEM;
    if (rc == 0)
        rc = jrpc__discover_register(&srv->engine);
    if (rc == 0)
        rc = jrpc_server_loop_hook(srv, budget_loop_start, budget_loop_stop, srv);
    /* Budgets in Redis: made now, so that a bad URL or a host that does not resolve is an error
     * of create (and of jrpcd --check), and the strings need not outlive this call. The store
     * keeps the password; the running configuration does not. */
    if (rc == 0 && cfg->redis_url != NULL && cfg->redis_url[0] != '\0') {
        rc = budget_store_new(srv, &srv->engine.budget);
        if (rc == 0 && (srv->redis_url = strdup(cfg->redis_url)) == NULL)
            rc = JRPC_ENOMEM;
    }
    srv->cfg.redis_url = srv->redis_url;
    srv->cfg.redis_password = NULL;
    if (rc != 0) {
        jrpc_server_free(srv);
        return rc;
    }
    srv->cfg.path = srv->path;
    srv->cfg.rest_path = srv->rest_path;
    srv->cfg.hosts = srv->hosts;
    srv->cfg.cors_origins = srv->cors_origins;
    srv->cfg.trusted_proxies = srv->trusted_proxies;
    /* Strip a trailing '/' so "/rest/" and "/rest" mean the same prefix. */
    size_t rl = strlen(srv->rest_path);
    if (rl > 1 && srv->rest_path[rl - 1] == '/')
        srv->rest_path[rl - 1] = '\0';
    *out = srv;
    return 0;
}

JRPC_EXTERN int jrpc_server_keys_set(jrpc_server_t *srv, jrpc_keys_t *keys)
{
    uv_mutex_lock(&srv->reconf_lock);
    int rc = jrpc__keys_install(&srv->engine, keys);
    uv_mutex_unlock(&srv->reconf_lock);
    return rc;
}

JRPC_EXTERN jrpc_server_t *jrpc_server_new(const jrpc_config_t *cfg)
{
    jrpc_server_t *srv;
    return jrpc_server_create(cfg, &srv) == 0 ? srv : NULL;
}

JRPC_EXTERN const jrpc_config_t *jrpc_server_config(const jrpc_server_t *srv)
{
    return atomic_load(&srv->io.cfg);
}

/* One configuration set by jrpc_server_reconfigure, with the strings it owns. */
struct jrpc__reconf {
    struct jrpc__reconf *next; /* the one set before */
    jrpc_config_t cfg;         /* path and rest_path point at the server's, hosts and
                                  cors_origins at the copies below */
    char *hosts;               /* owned copy, or NULL when cfg.hosts is the server's default */
    char *cors_origins;        /* owned copy ("" = none) */
};

JRPC_EXTERN int jrpc_server_reconfigure(jrpc_server_t *srv, const jrpc_config_t *cfg)
{
    if (cfg == NULL || jrpc_config_check(cfg) != NULL)
        return JRPC_EINVAL;
    struct jrpc__reconf *rc = calloc(1, sizeof(*rc));
    if (rc == NULL)
        return JRPC_ENOMEM;
    uv_mutex_lock(&srv->reconf_lock);
    const jrpc_config_t *cur = atomic_load(&srv->io.cfg);
    rc->cfg = *cfg;
    /* What the running server was built with stays (jrpc.h lists these fields). */
    rc->cfg.path = cur->path;
    rc->cfg.rest_path = cur->rest_path;
    rc->cfg.io_threads = cur->io_threads;
    rc->cfg.reuse_port = cur->reuse_port;
    rc->cfg.workers = cur->workers;
    rc->cfg.worker_queue = cur->worker_queue;
    rc->cfg.max_header = cur->max_header;
    rc->cfg.log_cb = cur->log_cb;
    rc->cfg.log_data = cur->log_data;
    rc->cfg.redis_url = cur->redis_url; /* the store was made with them */
    rc->cfg.redis_password = NULL;
    rc->cfg.redis_db = cur->redis_db;
    rc->cfg.redis_timeout_ms = cur->redis_timeout_ms;
    rc->cfg.redis_fail_closed = cur->redis_fail_closed;
    if (rc->cfg.batch_concurrency == 0)
        rc->cfg.batch_concurrency = 1;
    if (rc->cfg.max_depth == 0)
        rc->cfg.max_depth = JRPC_MAX_DEPTH;
    int dflt = cfg->hosts == NULL || cfg->hosts[strspn(cfg->hosts, " \t,")] == '\0';
    if (dflt && srv->hosts_default)
        rc->cfg.hosts = srv->hosts; /* with the loopback names listen added */
    else
        rc->cfg.hosts = rc->hosts = strdup(dflt ? HOSTS_DEFAULT : cfg->hosts);
    rc->cfg.cors_origins = rc->cors_origins =
        strdup(cfg->cors_origins != NULL ? cfg->cors_origins : "");
    if (rc->cfg.hosts == NULL || rc->cors_origins == NULL) {
        uv_mutex_unlock(&srv->reconf_lock);
        free(rc->hosts);
        free(rc->cors_origins);
        free(rc);
        return JRPC_ENOMEM;
    }
    rc->next = srv->reconfs;
    srv->reconfs = rc;
    jrpc__io_reconfigure(&srv->io, &rc->cfg);
    uv_mutex_unlock(&srv->reconf_lock);
    return 0;
}

JRPC_EXTERN int jrpc_method_add(jrpc_server_t *srv, const char *name, jrpc_method_cb cb, void *data,
                                unsigned flags)
{
    if (atomic_load(&srv->io.running))
        return JRPC_EBUSY;
    return jrpc__registry_add(srv->engine.registry, name, cb, data, flags);
}

JRPC_EXTERN int jrpc_method_doc(jrpc_server_t *srv, const char *name, const char *summary,
                                const char *params_json, const char *result_json)
{
    if (atomic_load(&srv->io.running))
        return JRPC_EBUSY;
    return jrpc__discover_doc(&srv->engine, name, summary, params_json, result_json);
}

JRPC_EXTERN int jrpc_method_registered(const jrpc_server_t *srv, const char *name)
{
    return name != NULL && jrpc__registry_entry(srv->engine.registry, name) != NULL;
}

/* ---- The shared store ------------------------------------------------------------------------ */

/* The server's Redis connections, which the budget store keeps per loop, also serve extensions
 * (jrpc.h): one connection per loop, one timeout, one reconnect policy for everything in Redis. */
JRPC_EXTERN int jrpc_server_kv_shared(const jrpc_server_t *srv)
{
    return srv->redis_url != NULL;
}

JRPC_EXTERN int jrpc_server_kv_get(jrpc_server_t *srv, unsigned loop, const char *key, size_t klen,
                                   jrpc_kv_cb cb, void *data)
{
    if (srv->redis_url == NULL || cb == NULL)
        return JRPC_EINVAL;
    return jrpc__redis_kv(srv->engine.budget, loop, key, klen, NULL, 0, 0, cb, data);
}

JRPC_EXTERN int jrpc_server_kv_set(jrpc_server_t *srv, unsigned loop, const char *key, size_t klen,
                                   const char *val, size_t vlen, uint64_t ttl_ms, jrpc_kv_cb cb,
                                   void *data)
{
    if (srv->redis_url == NULL || val == NULL)
        return JRPC_EINVAL;
    return jrpc__redis_kv(srv->engine.budget, loop, key, klen, val, vlen, ttl_ms, cb, data);
}

JRPC_EXTERN int jrpc_server_loop_hook(jrpc_server_t *srv, jrpc_loop_cb start, jrpc_loop_cb stop,
                                      void *data)
{
    if (atomic_load(&srv->io.running))
        return JRPC_EBUSY;
    jrpc__loop_ext_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return JRPC_ENOMEM;
    e->start = start;
    e->stop = stop;
    e->data = data;
    jrpc__loop_ext_t **tail = &srv->io.exts;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = e;
    return 0;
}

JRPC_EXTERN int jrpc_batch_deny(jrpc_server_t *srv, const char *pattern)
{
    if (atomic_load(&srv->io.running))
        return JRPC_EBUSY;
    return jrpc__registry_deny_batch(srv->engine.registry, pattern);
}

JRPC_EXTERN int jrpc_batch_deny_set(jrpc_server_t *srv, const char *const *patterns, size_t n)
{
    if (n != 0 && patterns == NULL)
        return JRPC_EINVAL;
    uv_mutex_lock(&srv->reconf_lock);
    int rc = jrpc__registry_deny_replace(srv->engine.registry, patterns, n);
    uv_mutex_unlock(&srv->reconf_lock);
    return rc;
}

/* Appends the word w[0..n) to the default hosts unless it is there already (out of memory: it
 * is left out, which refuses that name rather than allowing more). */
static void hosts_add(jrpc_server_t *srv, const char *w, size_t n)
{
    if (n == 0 || jrpc__http_host_allowed(srv->hosts, w, n))
        return;
    size_t len = strlen(srv->hosts);
    char *grown = realloc(srv->hosts, len + 1 + n + 1);
    if (grown == NULL)
        return;
    grown[len] = ' ';
    memcpy(grown + len + 1, w, n);
    grown[len + 1 + n] = '\0';
    srv->hosts = grown;
    srv->cfg.hosts = grown;
}

/* With the default hosts, a loopback listen address adds its names ("127.0.0.2", or a name that
 * resolves to loopback, as given); any other address is one the default list refuses when a
 * client names it, which the operator is told. host_port passed jrpc__io_listen. */
static void hosts_listen(jrpc_server_t *srv, const char *host_port)
{
    if (!srv->hosts_default)
        return;
    const char *bound = srv->io.addrs[srv->io.naddrs - 1]; /* "127.0.0.1:8000", "[::1]:8000" */
    if (strncmp(bound, "127.", 4) != 0 && strncmp(bound, "[::1]:", 6) != 0 &&
        strncmp(bound, "[::ffff:127.", 12) != 0) {
        jrpc__log(&srv->cfg, JRPC_LOG_WARN, NULL,
                  "listening on %s with the default hosts (%s): a request that names this "
                  "machine otherwise gets 403; set hosts to the names clients use, or *",
                  bound, srv->hosts);
        return;
    }
    hosts_add(srv, bound, (size_t)(strrchr(bound, ':') - bound));
    hosts_add(srv, host_port, (size_t)(strrchr(host_port, ':') - host_port));
}

JRPC_EXTERN int jrpc_server_listen(jrpc_server_t *srv, const char *host_port)
{
    if (atomic_load(&srv->io.running))
        return JRPC_EBUSY;
    if (host_port == NULL)
        return JRPC_EINVAL;
    int rc = jrpc__io_listen(&srv->io, host_port);
    if (rc == 0)
        hosts_listen(srv, host_port);
    return rc;
}

JRPC_EXTERN int jrpc_server_set_checking(jrpc_server_t *srv)
{
    if (atomic_load(&srv->io.running) || srv->io.naddrs != 0)
        return JRPC_EBUSY;
    srv->io.checking = 1;
    return 0;
}

JRPC_EXTERN int jrpc_server_checking(const jrpc_server_t *srv)
{
    return srv->io.checking;
}

JRPC_EXTERN size_t jrpc_server_listen_count(const jrpc_server_t *srv)
{
    return srv->io.naddrs;
}

JRPC_EXTERN int jrpc_server_address(const jrpc_server_t *srv, size_t i, char *buf, size_t cap)
{
    if (i >= srv->io.naddrs)
        return JRPC_ENOENT;
    if ((size_t)snprintf(buf, cap, "%s", srv->io.addrs[i]) >= cap)
        return JRPC_ERANGE;
    return 0;
}

JRPC_EXTERN int jrpc_server_run(jrpc_server_t *srv)
{
    int expected = 0;
    if (srv->io.checking)
        return JRPC_EINVAL; /* it bound nothing: there is nothing to serve */
    if (!atomic_compare_exchange_strong(&srv->io.running, &expected, 1))
        return JRPC_EBUSY;
    jrpc__http_global_init(&srv->cfg);
    int rc = jrpc__discover_build(&srv->engine);
    if (rc == 0)
        rc = jrpc__metrics_prepare(srv);
    /* Before the loops start (their hooks start it on each): keys set later, by a reload, find
     * it there. */
    if (rc == 0 && srv->engine.budget == NULL)
        rc = budget_store_new(srv, &srv->engine.budget);
    if (rc == 0)
        rc = jrpc__io_run(&srv->io);
    atomic_store(&srv->io.running, 0);
    return rc;
}

JRPC_EXTERN void jrpc_server_stop(jrpc_server_t *srv)
{
    jrpc__io_stop(&srv->io);
}

JRPC_EXTERN void jrpc_server_drain(jrpc_server_t *srv)
{
    jrpc__io_drain(&srv->io);
}

JRPC_EXTERN int jrpc_server_ready_hook(jrpc_server_t *srv, const char *key, const char *name,
                                       jrpc_ready_cb cb, void *data)
{
    if (key == NULL || key[0] == '\0' || name == NULL || name[0] == '\0' || cb == NULL)
        return JRPC_EINVAL;
    if (atomic_load(&srv->io.running))
        return JRPC_EBUSY;
    jrpc__ready_hook_t *h = calloc(1, sizeof(*h));
    if (h == NULL || (h->key = strdup(key)) == NULL || (h->name = strdup(name)) == NULL) {
        if (h != NULL)
            free(h->key);
        free(h);
        return JRPC_ENOMEM;
    }
    h->cb = cb;
    h->data = data;
    jrpc__ready_hook_t **tail = &srv->io.ready;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = h;
    return 0;
}

JRPC_EXTERN size_t jrpc_server_unreplied(const jrpc_server_t *srv)
{
    size_t n = 0;
    for (unsigned i = 0; i < srv->io.nkept_loops; i++)
        n += srv->io.kept_loops[i].orphans;
    return n;
}

JRPC_EXTERN void jrpc_server_free(jrpc_server_t *srv)
{
    if (srv == NULL)
        return;
    jrpc__io_close(&srv->io);
    jrpc__metrics_free(srv);
    while (srv->reconfs != NULL) {
        struct jrpc__reconf *rc = srv->reconfs;
        srv->reconfs = rc->next;
        free(rc->hosts);
        free(rc->cors_origins);
        free(rc);
    }
    uv_mutex_destroy(&srv->reconf_lock);
    jrpc__registry_free(srv->engine.registry);
    if (srv->engine.budget != NULL)
        srv->engine.budget->ops->free(srv->engine.budget);
    jrpc__keys_engine_free(&srv->engine);
    free(srv->engine.discover);
    free(srv->path);
    free(srv->rest_path);
    free(srv->redis_url);
    free(srv->hosts);
    free(srv->cors_origins);
    free(srv->trusted_proxies);
    free(srv);
}
