/* internal.h — private interface of src/io: the server object, its event loops (one libuv loop per
 * io thread, each with its own SO_REUSEPORT listener, so a connection lives and dies on one loop
 * and the hot path takes no locks) and the bounded worker pool. Never installed. */
#ifndef JRPC_IO_INTERNAL_H
#define JRPC_IO_INTERNAL_H

#include "../util/arena.h"
#include "../util/list.h"
#include "jrpc.h"

#include <stdatomic.h>
#include <uv.h>

typedef struct jrpc__loop jrpc__loop_t;
typedef struct jrpc__registry jrpc__registry_t;
typedef struct jrpc__pool jrpc__pool_t;
typedef struct jrpc__admit_table jrpc__admit_table_t;

/* A connection's place under the caps (admit.c); moves with the socket (HTTP → WebSocket). */
typedef struct jrpc__admit {
    unsigned char key[16]; /* client address (IPv4 mapped into IPv6) */
    uint8_t counted;       /* counted in the server's total */
    uint8_t per_ip;        /* counted under key */
} jrpc__admit_t;
typedef struct jrpc__ws_msg jrpc__ws_msg_t;

/* Most addresses one server listens on; each costs io_threads sockets. */
#define JRPC__MAX_LISTEN JRPC_MAX_LISTEN

struct jrpc__loop {
    uv_loop_t uv;                         /* this io thread's loop */
    jrpc_server_t *srv;                   /* the server it belongs to (read-only config) */
    unsigned index;                       /* 0 … io_threads-1 */
    uv_thread_t tid;                      /* the thread running uv */
    atomic_int ready;                     /* wakeup is initialised: stop may signal it */
    uv_tcp_t listeners[JRPC__MAX_LISTEN]; /* one per listen address */
    unsigned nlisteners;                  /* listeners opened on this loop */
    uv_async_t wakeup;                    /* completions posted, or stop asked */
    uv_timer_t drain_timer;               /* bounds the drain on stop */
    uv_mutex_t done_lock;                 /* guards done_head/done_tail */
    jrpc_call_t *done_head;               /* calls replied from other threads, FIFO */
    jrpc_call_t *done_tail;
    jrpc__list_t conns;      /* live HTTP connections (src/http) */
    size_t nconns;           /* entries in conns */
    jrpc__list_t ws_conns;   /* live WebSocket connections (src/ws) */
    size_t nws;              /* entries in ws_conns */
    uv_async_t ws_wakeup;    /* pushes posted from other threads (src/ws) */
    uv_mutex_t ws_lock;      /* guards ws_head/ws_tail */
    jrpc__ws_msg_t *ws_head; /* posted pushes and subscription ends, FIFO */
    jrpc__ws_msg_t *ws_tail;
    size_t nreqs;               /* requests not yet freed (src/rpc) */
    uint64_t req_seq;           /* requests started so far: the newest one's number */
    jrpc__arena_cache_t arenas; /* spare arena chunks for this loop's requests */
    int stopping;               /* stop seen: listeners closed, draining */
    int closing;                /* drain over: handles are being closed */
};

struct jrpc_server {
    jrpc_config_t cfg; /* copy; cfg.path points at path below */
    char *path;        /* owned copy of cfg.path */
    char *rest_path;   /* owned copy of cfg.rest_path ("" = off) */
    char *discover;    /* rpc.discover's answer, built when run starts */
    size_t discover_len;
    jrpc__registry_t *registry;                     /* methods; read-only once running */
    jrpc__pool_t *pool;                             /* worker threads (created by run) */
    jrpc__loop_t *loops;                            /* cfg.io_threads loops (created by run) */
    int fds[JRPC__MAX_LISTEN][JRPC_MAX_IO_THREADS]; /* listening sockets: [address][loop] */
    char addrs[JRPC__MAX_LISTEN][64];               /* "HOST:PORT" of each address */
    size_t naddrs;
    atomic_int running;          /* inside jrpc_server_run */
    atomic_int stop_requests;    /* jrpc_server_stop calls so far */
    atomic_uint nconns_total;    /* open connections, every loop (admit.c) */
    atomic_ulong refused_total;  /* connections refused over max_connections */
    atomic_ulong refused_per_ip; /* connections refused over max_connections_per_ip */
    jrpc__admit_table_t *admit;  /* per-address counts */
};

/* Sets up loop `index` of srv: its uv loop, wakeup, drain timer and one listener per address
 * bound so far. *inited is set once uv_loop_init succeeded (cleanup must then run the loop out). */
int jrpc__loop_init(jrpc__loop_t *loop, jrpc_server_t *srv, unsigned index, int *inited);

/* rpc.discover (src/rpc/discover.c): registers the method at server creation, and builds the
 * OpenRPC document from the registry when the server starts (the registry is final then). */
int jrpc__discover_register(jrpc_server_t *srv);
int jrpc__discover_build(jrpc_server_t *srv);

/* Connection caps (admit.c): counts a new connection, or refuses it (JRPC_ERANGE: over a cap)
 * with nothing counted. Any loop thread. jrpc__unadmit releases what *a holds (idempotent). */
jrpc__admit_table_t *jrpc__admit_table_new(void);
void jrpc__admit_table_free(jrpc__admit_table_t *t);
int jrpc__admit(jrpc_server_t *srv, uv_tcp_t *tcp, jrpc__admit_t *a);
void jrpc__unadmit(jrpc_server_t *srv, jrpc__admit_t *a);

/* Socket addresses as text (addr.c), "ip:port" or "[ip6]:port", cut to fit buf[0..cap) and
 * NUL-terminated; any thread. jrpc__addr_name returns the length, 0 for a family other than
 * IPv4/IPv6. jrpc__peer_name names the client of a connected socket, "-" when it has no address;
 * it returns the length (never 0). */
size_t jrpc__addr_name(const struct sockaddr *sa, char *buf, size_t cap);
size_t jrpc__peer_name(const uv_tcp_t *tcp, char *buf, size_t cap);

/* Post-run hook for a loop: the listener's connection callback hands new sockets here. Lives in
 * src/http; accepts from `server` and starts serving on `loop`. */
void jrpc__http_accept(jrpc__loop_t *loop, uv_stream_t *server);
/* Process-wide transport settings (http-parser's global header limit), before the loops start. */
void jrpc__http_global_init(const jrpc_config_t *cfg);
/* Stop began: close idle connections now, and each busy one once its answers are written.
 * Lives in src/http; called on the loop's thread. */
void jrpc__http_drain(jrpc__loop_t *loop);
/* Drain time is over: close every connection now (their requests are detached). */
void jrpc__http_close_all(jrpc__loop_t *loop);
/* src/ws: the loop's push queue and wakeup (set up with the loop, closed when it finishes
 * stopping, freed after it ran), and the drain and hard close of WebSocket connections, which
 * jrpc__http_drain and jrpc__http_close_all call. Loop thread, except _free. */
void jrpc__ws_loop_init(jrpc__loop_t *loop);
void jrpc__ws_loop_close(jrpc__loop_t *loop);
void jrpc__ws_loop_free(jrpc__loop_t *loop);
void jrpc__ws_drain(jrpc__loop_t *loop);
void jrpc__ws_close_all(jrpc__loop_t *loop);
/* The loop checks whether it may finish stopping; src/http and src/rpc call it whenever a
 * connection or a request goes away while stopping. */
void jrpc__loop_maybe_done(jrpc__loop_t *loop);

/* Posts a replied call to its loop from any thread (the loop then runs jrpc__call_done). */
void jrpc__loop_post(jrpc__loop_t *loop, jrpc_call_t *call);

/* Worker pool: `workers` threads and a queue of at most `queue` calls. */
jrpc__pool_t *jrpc__pool_new(unsigned workers, unsigned queue);
/* Queues call to run cb(call, data) on a worker. 0, or JRPC_ERANGE when the queue is full.
 * Loop thread or any. */
int jrpc__pool_submit(jrpc__pool_t *pool, jrpc_call_t *call, jrpc_method_cb cb, void *data);
/* Finishes queued work, joins the threads and frees the pool. */
void jrpc__pool_free(jrpc__pool_t *pool);

#endif
