/* SPDX-License-Identifier: MIT */
/* internal.h — private interface of src/io, the ground floor: the event loops (one libuv loop per
 * io thread, each with its own SO_REUSEPORT listener, so a connection lives and dies on one loop
 * and the hot path takes no locks), the one queue that carries work to a loop from other
 * threads, connection caps and the bounded worker pool. It names no layer above it: those plug
 * in through jrpc__io_hooks_t and jrpc__post_t. Never installed. */
#ifndef JRPC_IO_INTERNAL_H
#define JRPC_IO_INTERNAL_H

#include "../util/arena.h"
#include "../util/list.h"
#include "jrpc.h"
#include "stats.h"

#include <stdatomic.h>
#include <stddef.h>
#include <uv.h>

typedef struct jrpc__loop jrpc__loop_t;
typedef struct jrpc__io jrpc__io_t;
typedef struct jrpc__pool jrpc__pool_t;
typedef struct jrpc__admit_table jrpc__admit_table_t;
typedef struct jrpc__post jrpc__post_t;
typedef struct jrpc__io_hooks jrpc__io_hooks_t;
struct jrpc__engine; /* src/rpc's per-server state: io only carries the pointer */

/* A worker call waiting in the pool (pool.c): embedded in the call it runs. */
typedef struct jrpc__pool_job jrpc__pool_job_t;
struct jrpc__pool_job {
    jrpc__pool_job_t *next;
    jrpc_call_t *call;
    jrpc_method_cb cb;
    void *data;
};

/* One connection's worker calls waiting in the pool, FIFO; the pool serves the queues with jobs
 * in turn. Touched only under the pool's lock. */
typedef struct jrpc__pool_queue jrpc__pool_queue_t;
struct jrpc__pool_queue {
    jrpc__pool_job_t *first, *last;
    jrpc__pool_queue_t *next; /* the next queue to take a turn */
    unsigned running;         /* its calls taken by a thread and not completed on the loop */
    uint8_t queued;           /* in the pool's turn list */
};

/* A trusted_proxies entry: an address and how many leading bits of it must match. */
typedef struct jrpc__cidr {
    unsigned char key[16]; /* jrpc__addr_key form */
    uint8_t bits;          /* 0 … 128 (an IPv4 /N is 96 + N) */
} jrpc__cidr_t;

/* A connection's place under the caps (admit.c); moves with the socket (HTTP → WebSocket). */
typedef struct jrpc__admit {
    unsigned char key[16]; /* client address (IPv4 mapped into IPv6) */
    uint8_t counted;       /* counted in the server's total */
    uint8_t per_ip;        /* counted under key */
    uint8_t proxied;       /* the peer is a trusted proxy: not counted per address here; its
                              requests are, under the client they forward for (src/http) */
} jrpc__admit_t;

/* Per-loop block caches (jrpc__loop_alloc): sizes 256 << 0 … 256 << 4 (4 KiB), at most 64 blocks
 * of each kept. What a connection needs only while it works on a request (request structs, a
 * URL buffer) comes from here, so an idle keep-alive connection holds none of it, and a busy loop
 * still reuses blocks without malloc. 64 blocks cover the requests a loop works on at once in
 * steady traffic; at most ~500 KB per loop stays cached. */
#define JRPC__LOOP_CLASSES 5
#define JRPC__LOOP_CLASS_MIN 256
#define JRPC__LOOP_CLASS_KEEP 64

/* Most addresses one server listens on; each costs io_threads sockets. */
#define JRPC__MAX_LISTEN JRPC_MAX_LISTEN

/* Work posted to a loop from any thread: cb runs on the loop's thread, in posting order with
 * every other post to that loop (a handler's pushes before its reply). Embedded in what it
 * carries (a call, a push); the poster keeps it alive until cb ran. */
typedef void (*jrpc__post_cb)(jrpc__post_t *p);
struct jrpc__post {
    jrpc__post_t *next; /* link in the loop's queue */
    jrpc__post_cb cb;   /* runs once, on the loop */
};

/* What one connection holds in the engine and in answers not yet written (acct.c), counted
 * until it is released — also after the answer went, or the connection closed: a request keeps
 * the account of the connection it came from until its last call finished. The same amounts are
 * added to the server's totals (jrpc__io_t.mem_held, calls_held), which max_memory and
 * max_inflight bound. Loop thread only (the totals are atomics). */
typedef struct jrpc__acct jrpc__acct_t;
typedef void (*jrpc__acct_wake_cb)(jrpc__acct_t *a, void *owner);
struct jrpc__acct {
    jrpc__loop_t *loop;
    size_t refs;             /* the owner's, and one per live request */
    size_t reqs;             /* requests alive in the engine */
    size_t calls;            /* calls admitted and not finished */
    size_t body;             /* request bodies held */
    size_t bytes;            /* everything held: bodies, the engine's arenas, answers not yet
                                written */
    jrpc__acct_wake_cb wake; /* the owner waits for a release (NULL: it does not) */
    void *owner;             /* NULL once the owner left */
    jrpc__pool_queue_t jobs; /* its worker calls waiting in the pool */
    jrpc__post_t post;       /* carries a wake to the owner after the releasing stack */
    uint8_t posted;          /* post is queued */
};

/* What the layers above io run on each loop; set once by the server object before run. Every
 * hook runs on the loop's thread. Stop reaches connections through their socks (sock.c), so a
 * new connection is the one thing a layer above must be told of. */
struct jrpc__io_hooks {
    /* A listener has a connection to accept (also while stopping: accept and close). */
    void (*accept)(jrpc__loop_t *loop, uv_stream_t *listener);
    /* The drain time is over: everything still running is answered now (the engine). */
    void (*expire)(jrpc__loop_t *loop);
    /* The loop ends while requests wait for handlers that never replied: they become orphans
     * (their timers close now), kept with their loop for the life of the process so that a
     * late reply finds them and is dropped (the engine). */
    void (*orphan)(jrpc__loop_t *loop);
    /* GET /metrics on an admin listener: appends the exposition text to out (the server;
     * NULL: none). */
    void (*metrics)(jrpc__loop_t *loop, jrpc_buf_t *out);
};

/* An extension's per-loop hooks (jrpc_server_loop_hook), in registration order. */
typedef struct jrpc__loop_ext {
    struct jrpc__loop_ext *next;
    jrpc_loop_cb start; /* when the loop starts (may be NULL) */
    jrpc_loop_cb stop;  /* when it has drained (may be NULL) */
    void *data;
} jrpc__loop_ext_t;

/* A readiness check (jrpc_server_ready_hook), in registration order: /ready lists `name` under
 * `key` while `cb` says not ready. */
typedef struct jrpc__ready_hook {
    struct jrpc__ready_hook *next;
    jrpc_ready_cb cb;
    void *data;
    char *key;  /* owned: the JSON member that lists names ("upstreams_down") */
    char *name; /* owned: what is not ready ("eth") */
} jrpc__ready_hook_t;

/* ---- The connection core (sock.c) ------------------------------------------------------------ */

/* Read size: one buffer per loop (loop->rbuf), not per connection. Owners copy out what they keep
 * during the read callback, so 32 keep-alive connections of one loop share 64 KiB that stays in
 * cache instead of holding 2 MiB. 64 KiB is what one read of a busy socket usually returns, and a
 * 1000-call batch (~108 KB) arrives in two reads. */
#define JRPC__SOCK_READ_BUF (64 * 1024)

typedef struct jrpc__sock jrpc__sock_t;

/* What the owner of a connection (src/http; src/ws after an upgrade) is told. Loop thread; none
 * of them runs inside the jrpc__sock_* call that caused it, except closed (after a close). */
typedef struct jrpc__sock_ops {
    /* nread > 0 bytes at buf->base (the loop's buffer, valid during the call, or the owner's from
     * alloc), or the stream ended (UV_EOF) or failed (< 0). */
    void (*read)(jrpc__sock_t *s, ssize_t nread, const uv_buf_t *buf);
    /* May be NULL: room of the owner's own for the next read; buf->len 0 takes the loop's. */
    void (*alloc)(jrpc__sock_t *s, uv_buf_t *buf);
    /* The timer set with jrpc__sock_timer ran out. */
    void (*timeout)(jrpc__sock_t *s);
    /* Server stop began / drain time is over (close now). */
    void (*drain)(jrpc__sock_t *s);
    void (*close_now)(jrpc__sock_t *s);
    /* Both handles are closed: the owner frees what it holds; the sock is freed right after. */
    void (*closed)(jrpc__sock_t *s);
} jrpc__sock_ops_t;

/* One accepted TCP connection; allocated apart from its owner so that it can change owners. */
struct jrpc__sock {
    uv_tcp_t tcp;                /* .data = this */
    uv_timer_t timer;            /* the owner's one timer; .data = this */
    uv_shutdown_t shut;          /* the FIN */
    jrpc__list_t node;           /* in loop->conns: stop reaches the owner through it */
    jrpc__loop_t *loop;          /* owning loop */
    const jrpc__sock_ops_t *ops; /* the owner's (NULL until jrpc__sock_own) */
    void *owner;
    jrpc__admit_t admit;  /* its place under the connection caps */
    char *kept;           /* bytes read but not consumed yet (a paused parse, frames behind an
                             upgrade): malloc'd; they go with the sock to a new owner */
    size_t kept_off;      /* first byte of kept not consumed */
    size_t kept_len;      /* bytes in kept */
    uint64_t due;         /* loop time (ms) jrpc__sock_timer's timeout ends at; 0: none */
    uint64_t timer_due;   /* when the uv timer is set to fire; 0: not set (jrpc__sock_timer) */
    uint8_t reading;      /* uv_read_start is in effect */
    uint8_t closing;      /* jrpc__sock_close was called: nothing more happens but freeing */
    uint8_t open_handles; /* tcp and timer until their close callbacks ran */
    uint8_t repeat;       /* the timer repeats (jrpc__sock_timer_repeat) */
};

/* Accepts a connection from listener into a new sock, counted on the loop; NULL when it could not
 * (out of memory: the connection is taken and closed so the listener keeps working). */
jrpc__sock_t *jrpc__sock_accept(jrpc__loop_t *loop, uv_stream_t *listener);
/* A sock on a connected stream socket fd (in-process tests and fuzzers use socketpairs); NULL
 * when it could not (fd is then the caller's to close). */
jrpc__sock_t *jrpc__sock_open(jrpc__loop_t *loop, int fd);
/* Gives s to an owner (also to a new one: the hand-over of an upgrade). */
void jrpc__sock_own(jrpc__sock_t *s, const jrpc__sock_ops_t *ops, void *owner);
/* Starts (on) or stops reading; 0 or a libuv error. */
int jrpc__sock_read(jrpc__sock_t *s, int on);
/* Writes bufs[0..n) (total bytes, bufs may be changed): what the socket takes now goes at once,
 * the rest is queued with wr and cb runs once it is written or failed. 1: all written now (cb
 * will not run); 0: queued; < 0: error, nothing queued. Order holds across calls. */
int jrpc__sock_write(jrpc__sock_t *s, uv_write_t *wr, uv_buf_t *bufs, unsigned n, size_t total,
                     uv_write_cb cb);
/* Keeps the n bytes at p (read, not consumed: they live in the loop's buffer) for a later
 * jrpc__sock_kept, after any kept already. 0 or JRPC_ENOMEM (nothing more kept). */
int jrpc__sock_keep(jrpc__sock_t *s, const char *p, size_t n);
/* The kept bytes not consumed yet (NULL and *n 0 when none). */
static inline const char *jrpc__sock_kept(const jrpc__sock_t *s, size_t *n)
{
    *n = s->kept_len - s->kept_off;
    return s->kept != NULL ? s->kept + s->kept_off : NULL;
}
/* n of them were consumed; once all are (or with n = SIZE_MAX), they are freed. */
void jrpc__sock_kept_used(jrpc__sock_t *s, size_t n);
/* Bytes waiting in queued writes. */
size_t jrpc__sock_queued(const jrpc__sock_t *s);
/* Sends FIN after the queued writes; cb as uv_shutdown's. 0 or a libuv error. */
int jrpc__sock_shutdown(jrpc__sock_t *s, uv_shutdown_cb cb);
/* Arms the timer for ms (0 stops it); _repeat fires every ms. ops->timeout runs. A connection
 * moves its timeout on every request (head, body, keep-alive): the uv timer moves only to a
 * sooner end (util/timer.h). */
void jrpc__sock_timer(jrpc__sock_t *s, uint64_t ms);
void jrpc__sock_timer_repeat(jrpc__sock_t *s, uint64_t ms);
/* Stop began (the owner drains) / drain time is over (the owner closes now; a sock without
 * owner just closes). Loop thread, from the loop's stop. */
void jrpc__sock_drain(jrpc__sock_t *s);
void jrpc__sock_close_now(jrpc__sock_t *s);
/* Closes the socket (idempotent): pending writes fail with UV_ECANCELED, then ops->closed runs
 * and s is freed. */
void jrpc__sock_close(jrpc__sock_t *s);

/* What every loop of a server shares: the configuration, listening sockets, caps, the worker
 * pool and the hooks of the layers above. Owned by the server object (src/server.c). */
struct jrpc__io {
    /* The server's current configuration: read-only, replaced whole by jrpc__io_reconfigure
     * (a replaced one stays valid as long as the server), so any thread may read through it. */
    _Atomic(const jrpc_config_t *) cfg;
    jrpc_server_t *srv;          /* the public object, for jrpc_call_server (opaque here) */
    struct jrpc__engine *engine; /* src/rpc's state (opaque here) */
    jrpc__io_hooks_t hooks;      /* the transports' entry points */
    jrpc__loop_ext_t *exts;      /* extensions' loop hooks (owned) */
    jrpc__pool_t *pool;          /* worker threads (created by run) */
    jrpc__loop_t *loops;         /* cfg->io_threads loops (while running) */
    uv_mutex_t loops_lock;       /* held to reach loops from another thread (reconfigure) */
    int fds[JRPC__MAX_LISTEN][JRPC_MAX_IO_THREADS]; /* listening sockets: [address][loop] */
    char addrs[JRPC__MAX_LISTEN][64];               /* "HOST:PORT" of each address */
    struct sockaddr_storage sa[JRPC__MAX_LISTEN];   /* each address, port resolved */
    size_t naddrs;
    uint8_t admin[JRPC__MAX_LISTEN]; /* the address is an admin listener (metrics, no RPC) */
    uint8_t timed;                   /* requests and calls are timed (an admin listener is on) */
    unsigned nlabels;                /* method labels the loops' stats count (src/rpc numbers
                                        them before run) */
    int checking;       /* a check only (jrpcd --check): listen probes addresses, binds nothing */
    atomic_int running; /* inside jrpc__io_run */
    atomic_int stop_requests;    /* jrpc__io_stop calls so far */
    atomic_int drain_requests;   /* jrpc__io_drain calls so far: /ready answers 503 */
    jrpc__ready_hook_t *ready;   /* readiness checks (owned), read by /ready on any loop */
    atomic_uint nconns_total;    /* open connections, every loop (admit.c) */
    atomic_ulong refused_total;  /* connections refused over max_connections */
    atomic_ulong refused_per_ip; /* connections refused over max_connections_per_ip */
    jrpc__admit_table_t *admit;  /* per-address counts */
    jrpc__cidr_t *trusted;       /* cfg->trusted_proxies, parsed (owned; NULL: none) */
    size_t ntrusted;             /* entries in trusted */
    atomic_size_t mem_held;      /* bytes held by requests and unwritten answers (acct.c) */
    atomic_size_t calls_held;    /* calls admitted and not finished, every loop */
    atomic_ulong refused_memory; /* items refused over max_memory */
    atomic_ulong refused_calls;  /* items refused over max_inflight */
    atomic_ulong limits_shared[JRPC__LIMIT_COUNT]; /* refusals made off the loops' threads */
    jrpc__loop_t *kept_loops; /* loops kept past run for calls never replied (orphans) */
    unsigned nkept_loops;
};

struct jrpc__loop {
    uv_loop_t uv;                         /* this io thread's loop */
    jrpc__io_t *io;                       /* what the loops share (read-only config) */
    const jrpc_config_t *cfg;             /* io->cfg as of the loop's last wakeup */
    unsigned index;                       /* 0 … io_threads-1 */
    uv_thread_t tid;                      /* the thread running uv */
    atomic_int ready;                     /* wakeup is initialised: stop may signal it */
    uv_tcp_t listeners[JRPC__MAX_LISTEN]; /* one per listen address */
    unsigned nlisteners;                  /* listeners opened on this loop */
    uv_async_t wakeup;                    /* work posted, or stop asked */
    uv_timer_t drain_timer;               /* bounds the drain on stop */
    uv_mutex_t post_lock;                 /* guards post_head/post_tail */
    jrpc__post_t *post_head;              /* work posted from any thread, FIFO */
    jrpc__post_t *post_tail;
    uv_idle_t post_idle;              /* runs what the loop's own thread posted, in the next turn */
    int post_local;                   /* it is open: the loop's own posts need no wakeup */
    jrpc__list_t conns;               /* live connections of every transport (jrpc__sock_t) */
    jrpc__list_t reqs;                /* live engine requests (the engine links them) */
    jrpc__list_t deadlines;           /* engine requests with a deadline to keep, soonest first */
    uv_timer_t deadline_timer;        /* set for the soonest of them, or sooner (the engine's) */
    uint64_t deadline_due;            /* when deadline_timer fires; 0: not set */
    size_t holds;                     /* connections and requests alive: stop waits for 0 */
    size_t orphans;                   /* requests given up at the end of a stop (never replied) */
    size_t mem_lease;                 /* bytes of io->mem_held taken by this loop (acct.c) */
    size_t mem_used;                  /* of them, held by this loop's requests and answers */
    size_t calls_lease;               /* calls of io->calls_held taken by this loop */
    size_t calls_used;                /* of them, admitted here and not finished */
    uint64_t seq;                     /* numbers handed out by jrpc__loop_seq (the newest) */
    jrpc__stats_t stats;              /* this loop's counters (stats.h): written here only */
    jrpc__arena_cache_t arenas;       /* spare arena chunks for this loop's requests */
    char *rbuf;                       /* the connections' read buffer (JRPC__SOCK_READ_BUF) */
    void *blocks[JRPC__LOOP_CLASSES]; /* jrpc__loop_alloc's free blocks, linked through
                                         their first word */
    unsigned nblocks[JRPC__LOOP_CLASSES];
    int delaying;     /* drain seen: serving on for drain_delay_ms before the stop */
    int delay_over;   /* that time is over: the stop began as if asked once */
    int stopping;     /* stop seen: listeners closed, draining */
    int expired;      /* drain time over: what ran was answered, connections write their last */
    int abandon;      /* the last answers had their time: requests still waiting for a handler
                         do not hold the loop any more */
    int exts_stopped; /* the extensions' stop hooks ran */
    int closing;      /* handles are being closed */
    int dead;         /* ended: posts are dropped (a late reply to an orphan; post_lock) */
};

/* Connection caps (admit.c): counts a new connection, or refuses it (JRPC_ERANGE: over a cap)
 * with nothing counted. Any loop thread. jrpc__unadmit releases what *a holds (idempotent). */
jrpc__admit_table_t *jrpc__admit_table_new(void);
void jrpc__admit_table_free(jrpc__admit_table_t *t);
int jrpc__admit(jrpc__io_t *io, uv_tcp_t *tcp, jrpc__admit_t *a);
void jrpc__unadmit(jrpc__io_t *io, jrpc__admit_t *a);
/* One request from a trusted proxy counted under the client it forwards for (key), against
 * max_connections_per_ip: 0, or JRPC_ERANGE (nothing counted). jrpc__unadmit_ip gives it back.
 * Only when max_connections_per_ip is set. Any loop thread. */
int jrpc__admit_ip(jrpc__io_t *io, const unsigned char key[16]);
void jrpc__unadmit_ip(jrpc__io_t *io, const unsigned char key[16]);

/* Most bytes and calls a loop takes from the server's totals at once (acct.c): 256 KiB and 64
 * calls, fewer when the bounds are small (an eighth of a loop's share of them). */
#define JRPC__ACCT_MEM_CHUNK (256u * 1024)
#define JRPC__ACCT_CALLS_CHUNK 64u

/* Accounts (acct.c). jrpc__acct_new: a new account with the owner's reference (NULL when out of
 * memory); jrpc__acct_leave: the owner goes (no more wakes), dropping its reference. */
jrpc__acct_t *jrpc__acct_new(jrpc__loop_t *loop, void *owner);
void jrpc__acct_leave(jrpc__acct_t *a);
static inline void jrpc__acct_ref(jrpc__acct_t *a)
{
    a->refs++;
}
void jrpc__acct_unref(jrpc__acct_t *a);
/* Request body bytes, or other bytes held for the connection (the engine's arenas, answers),
 * start (delta > 0) or stop being held, counted in io's totals and, when a is not NULL, in a.
 * A release wakes a's owner if it waits. */
void jrpc__acct_body(jrpc__loop_t *loop, jrpc__acct_t *a, ptrdiff_t delta);
void jrpc__acct_held(jrpc__loop_t *loop, jrpc__acct_t *a, ptrdiff_t delta);
/* Admits up to n calls under max_inflight, none while the server holds max_memory bytes or more
 * besides `own` (what the request asking holds already: the one that crosses the bound gets in,
 * the next ones do not): how many were (counted in io and a). *full is set when memory was the
 * reason for a refusal. */
size_t jrpc__acct_admit(jrpc__loop_t *loop, jrpc__acct_t *a, size_t n, size_t own, int *full);
/* n admitted calls finished. */
void jrpc__acct_finished(jrpc__loop_t *loop, jrpc__acct_t *a, size_t n);
/* Gives the loop's unused leases back to the server's totals (when the loop ends). */
void jrpc__acct_loop_flush(jrpc__loop_t *loop);
/* The owner waits for something to be released: cb(a, owner) runs once on the loop after the
 * next release (never inside the releasing call); cb NULL stops waiting. */
void jrpc__acct_wait(jrpc__acct_t *a, jrpc__acct_wake_cb cb);
/* The server has max_inflight calls admitted and not finished. Any thread. */
static inline int jrpc__io_calls_full(jrpc__io_t *io)
{
    return atomic_load_explicit(&io->calls_held, memory_order_relaxed) >= io->cfg->max_inflight;
}
/* The server holds max_memory bytes or more. Any thread. */
static inline int jrpc__io_mem_full(jrpc__io_t *io)
{
    return atomic_load_explicit(&io->mem_held, memory_order_relaxed) >= io->cfg->max_memory;
}

/* Socket addresses as text (addr.c), "ip:port" or "[ip6]:port", cut to fit buf[0..cap) and
 * NUL-terminated; any thread. jrpc__addr_name returns the length, 0 for a family other than
 * IPv4/IPv6. jrpc__peer_name names the client of a connected socket, "-" when it has no address;
 * it returns the length (never 0). */
size_t jrpc__addr_name(const struct sockaddr *sa, char *buf, size_t cap);
/* Reads "HOST:PORT" or "[V6]:PORT" (HOST a name or a numeric address; the first address it
 * resolves to) into *ss and *len: the one reading of a listen address, for a start and a check
 * alike. 0, or JRPC_EINVAL when malformed or the host does not resolve. Any thread. */
int jrpc__addr_parse(const char *host_port, struct sockaddr_storage *ss, socklen_t *len);
size_t jrpc__peer_name(const uv_tcp_t *tcp, char *buf, size_t cap);

/* Client addresses as table keys: IPv4 as ::ffff:a.b.c.d, so both families share one form
 * (admit.c's per-address counts, trusted_proxies). jrpc__addr_key_parse reads a numeric address
 * s[0..n) (no port, no brackets): 4 or 6 for its family, -1 when it is not one.
 * jrpc__addr_key_name writes it back as text ("1.2.3.4", "2001:db8::1"); the length, 0 when it
 * does not fit. Any thread. */
void jrpc__addr_key(const struct sockaddr *sa, unsigned char key[16]);
int jrpc__addr_key_parse(const char *s, size_t n, unsigned char key[16]);
size_t jrpc__addr_key_name(const unsigned char key[16], char *buf, size_t cap);

/* Reads a list of "ADDR" or "ADDR/BITS" words (IPv4 or IPv6, separated by spaces or commas) into
 * a malloc'd array (*out NULL when the list is empty). out NULL: only checks. 0, JRPC_EINVAL on a
 * bad word, JRPC_ENOMEM. Any thread. */
int jrpc__cidr_list_parse(const char *list, jrpc__cidr_t **out, size_t *n);
/* Whether key is inside one of v[0..n). */
int jrpc__cidr_match(const jrpc__cidr_t *v, size_t n, const unsigned char key[16]);

/* ---- loop.c --------------------------------------------------------------------------------- */

/* Defaults, listening and the loops' lifetime for the server object. jrpc__io_init leaves fds
 * closed and counters zero; jrpc__io_close closes what listen opened and frees the caps table. */
int jrpc__io_init(jrpc__io_t *io, const jrpc_config_t *cfg, jrpc_server_t *srv);
void jrpc__io_close(jrpc__io_t *io);
/* Binds host_port on every loop's socket, one SO_REUSEPORT group: JRPC_EADDRINUSE when another
 * socket listens on the port already, unless cfg->reuse_port. With io->checking it binds nothing
 * and says whether a start could: the host is local (a probe bind with port 0) and the address
 * does not clash with one listed before. JRPC_EINVAL for a bad address or a full table, -errno
 * from the system. Before run. */
int jrpc__io_listen(jrpc__io_t *io, const char *host_port);
/* Makes cfg (the old one stays valid: the caller keeps it) what every loop reads: each switches
 * at its next wakeup, between callbacks, so no callback sees two configurations. Any thread;
 * the fields a running server cannot change (io_threads, workers …) must be as before. */
void jrpc__io_reconfigure(jrpc__io_t *io, const jrpc_config_t *cfg);
/* Runs io->cfg->io_threads loops (this thread runs loop 0) until stopped and drained. */
int jrpc__io_run(jrpc__io_t *io);
/* Asks every loop to stop (any thread, signal-safe); a second call closes connections at once. */
void jrpc__io_stop(jrpc__io_t *io);
/* Announces a stop (any thread, signal-safe): /ready answers 503 at once, everything is served
 * for cfg->drain_delay_ms more, then each loop stops as jrpc__io_stop would. A stop during the
 * delay ends it. */
void jrpc__io_drain(jrpc__io_t *io);
/* Whether a drain or a stop was asked (any thread). */
static inline int jrpc__io_draining(jrpc__io_t *io)
{
    return atomic_load(&io->drain_requests) > 0 || atomic_load(&io->stop_requests) > 0;
}

/* Posts p to loop from any thread; p->cb runs on the loop, after everything posted before. */
void jrpc__loop_post(jrpc__loop_t *loop, jrpc__post_t *p);
/* After the drain time, how long connections may still write the answers that ending every
 * call produced before they are closed: a reading client takes a few KB in well under this. */
#define JRPC__LOOP_LAST_WRITE_MS 1000

/* Something that stop must wait for (a connection, a request) starts or ends on loop. */
static inline void jrpc__loop_hold(jrpc__loop_t *loop)
{
    loop->holds++;
}
void jrpc__loop_release(jrpc__loop_t *loop);
/* The next number of this loop's sequence: 1, 2, 3 …, never reused (loop thread). */
static inline uint64_t jrpc__loop_seq(jrpc__loop_t *loop)
{
    return ++loop->seq;
}
/* A block of n bytes from the loop's caches (malloc past the largest class); NULL when out of
 * memory. jrpc__loop_free takes it back with the same n. Loop thread. */
void *jrpc__loop_alloc(jrpc__loop_t *loop, size_t n);
void jrpc__loop_free(jrpc__loop_t *loop, void *p, size_t n);
/* On loop's own thread. */
int jrpc__loop_on_thread(const jrpc__loop_t *loop);
/* Stop began on loop: every connection drains (idle ones close, busy ones once answered). */
void jrpc__loop_drain(jrpc__loop_t *loop);
/* Closes every connection on loop now (requests in flight are detached). */
void jrpc__loop_close_all(jrpc__loop_t *loop);

/* In-process tests and fuzzers drive one loop of io on the calling thread, without threads:
 * jrpc__loop_open makes it (and io's worker pool); jrpc__loop_finish drains it, runs it until
 * nothing holds it, closes it and frees the pool: 0, or uv_loop_close's error (a handle left). */
int jrpc__loop_open(jrpc__io_t *io, jrpc__loop_t *loop);
int jrpc__loop_finish(jrpc__loop_t *loop);

/* Worker pool: `workers` threads and a queue of at most `queue` calls, one FIFO per connection;
 * a free thread serves the connection with the fewest calls running. */
jrpc__pool_t *jrpc__pool_new(unsigned workers, unsigned queue);
/* Queues job (cb(call, data) on a worker; embedded in what it runs, alive until the handler
 * replied) on q, a connection's queue (NULL: the pool's shared one). 0, or JRPC_ERANGE when the
 * pool holds `queue` jobs. Loop thread or any. */
int jrpc__pool_submit(jrpc__pool_t *pool, jrpc__pool_queue_t *q, jrpc__pool_job_t *job);
/* A job of q (as submitted: NULL for the shared queue) completed: its reply reached the loop.
 * Loop thread, while q's connection account lives (the request holds it). */
void jrpc__pool_done(jrpc__pool_t *pool, jrpc__pool_queue_t *q);
/* Jobs queued and not taken by a thread (the metrics' worker queue depth). Any thread. */
unsigned jrpc__pool_depth(jrpc__pool_t *pool);
/* Finishes queued work, joins the threads and frees the pool. */
void jrpc__pool_free(jrpc__pool_t *pool);
/* A stop gave up on handlers that never returned: queued calls are dropped, the threads are
 * detached (idle ones end) and the pool is left to them, never freed. */
void jrpc__pool_abandon(jrpc__pool_t *pool);

#endif
