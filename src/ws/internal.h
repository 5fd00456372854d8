/* SPDX-License-Identifier: MIT */
/* internal.h — private interface of src/ws, the WebSocket transport: connections on the io loops
 * (conn.c: socket, framing session, messages in the engine, the output queue, timers and the
 * ways out) and server push from any thread (push.c: jrpc_conn_*, subscriptions, the loop's
 * queue of posted pushes). The wire itself (handshake, framing) is in wire.h. Never installed. */
#ifndef JRPC_WS_INTERNAL_H
#define JRPC_WS_INTERNAL_H

#include "../io/internal.h"
#include "../rpc/internal.h"
#include "wire.h"

#include <stdatomic.h>
#include <stdint.h>

/* Output entries gathered into one writev: a pipelining client's answers of one read leave
 * together (64 entries, 128 iovecs, far under IOV_MAX). */
#define JRPC__WS_COALESCE_MAX 64

/* Message structs kept per connection for reuse, so steady traffic allocates only the body. 8
 * (under 1 KiB a connection, kept while it is idle) covers what a short pipeline cycles through;
 * a longer burst allocates the rest and frees it. */
#define JRPC__WS_SPARE_MAX 8

/* How long a closing connection waits for the client's side of the close handshake (its close
 * frame, then the end of its stream) before the socket is closed anyway: the same 5 s that
 * src/http lingers after a last answer, and nginx's lingering_timeout. */
#define JRPC__WS_CLOSE_MS 5000

typedef struct jrpc__ws_msg jrpc__ws_msg_t;

typedef enum {
    JRPC__WS_M_RUNNING = 0, /* a received message in the engine (c->inflight) */
    JRPC__WS_M_WAITING,     /* a received message kept while the connection is at its bound */
    JRPC__WS_M_OUT,         /* a frame in the output queue */
    JRPC__WS_M_PUSH,        /* a push posted from another thread (the loop's post queue) */
    JRPC__WS_M_END,         /* a subscription end posted to the loop */
    JRPC__WS_M_DROP         /* a poster found ws_max_queue reached: the loop drops the client */
} jrpc__ws_msg_kind_t;

/* One message: received and in the engine, then (or as a push) an output frame; also the node of
 * the loop's post queue. One struct for every stage keeps a message to one allocation. */
struct jrpc__ws_msg {
    jrpc__ws_msg_t *next; /* output queue, waiting queue or spare list */
    jrpc__post_t post;    /* PUSH/END: carries it to the connection's loop */
    jrpc__list_t link;    /* in c->inflight while RUNNING */
    jrpc_conn_t *conn;    /* owner (a reference while PUSH) */
    jrpc__req_t *req;     /* the engine's request while RUNNING (NULL while it starts) */
    jrpc_sub_t *sub;      /* PUSH/OUT of a subscription, or the subscription that END ends
                             (a reference either way) */
    uint64_t seq;         /* RUNNING: its request's jrpc__req_seq (0 while it starts) */
    uint64_t t0;          /* RUNNING: uv_hrtime() when it arrived (logs, metrics), or 0 */
    jrpc_buf_t body;      /* the frame's payload (answer, push; WAITING: the request) */
    uint8_t head[JRPC__WS_HEAD_MAX]; /* the frame's header; OUT of raw bytes: none */
    uint8_t head_len; /* bytes in head (0: the body is raw bytes, control frames or 101) */
    uint8_t kind;     /* jrpc__ws_msg_kind_t */
    uint8_t binary;   /* the request came in a binary frame: answer in one */
};

/* What the allocator adds to each block: glibc's malloc keeps an 8-byte header and rounds blocks
 * up to 16 bytes, so 16 is what a small block really costs beyond its size. */
#define JRPC__WS_ALLOC_OVERHEAD 16

/* What a queued message holds in memory: its struct and its buffer's capacity, not only the
 * payload (a 55-byte notification sits in a 256-byte buffer behind a 128-byte struct: 416 bytes
 * in all). ws_max_queue counts this. The buffer does not change while the message is queued or
 * posted. */
static inline size_t jrpc__ws_msg_cost(const jrpc__ws_msg_t *m)
{
    size_t buf = m->body.cap != 0 ? m->body.cap + JRPC__WS_ALLOC_OVERHEAD : 0;
    return sizeof(*m) + JRPC__WS_ALLOC_OVERHEAD + buf;
}

/* A subscription (jrpc_sub_*). Fields marked (lock) are guarded by conn->lock; (loop) are touched
 * only on the connection's io thread. */
struct jrpc_sub {
    atomic_int refs;           /* the connection's until end_cb ran, producers', posted messages' */
    jrpc_conn_t *conn;         /* a reference */
    jrpc__list_t link;         /* (lock) in conn->subs while live; (loop) in conn->ended after */
    uint64_t msg_seq;          /* jrpc__req_seq of the request whose answer carries the id */
    uint8_t ended;             /* (lock) no more pushes; end_cb is due */
    uint8_t answered;          /* (loop) the id reached the output: pushes go straight out */
    jrpc__ws_msg_t *held;      /* (loop) pushes waiting for the id to go out, FIFO */
    jrpc__ws_msg_t *held_tail; /* (loop) the last of them */
    jrpc__list_t holding;      /* (loop) in conn->holding while held is not empty */
    jrpc_sub_end_cb end_cb;    /* runs once on the loop when the subscription ended (may be NULL) */
    void *data;                /* passed to end_cb */
    jrpc__ws_msg_t *end_msg;   /* made at the start, so ending cannot fail for want of memory */
    size_t id_len;             /* bytes in id: 36 */
    char id[40];               /* "\"0x…\"" of 16 random bytes: JSON text */
    size_t prefix_len;         /* bytes in prefix */
    char prefix[]; /* {"jsonrpc":"2.0","method":…,"params":{"subscription":…,"result": */
};

/* A WebSocket connection: the public jrpc_conn_t. It is shared with any thread through
 * references; fields marked (lock) are guarded by `lock`, the rest belong to the loop thread. */
struct jrpc_conn {
    atomic_int refs;          /* the transport's until its handles closed, and every other */
    uv_mutex_t lock;          /* guards closed and subs (order: lock, then the loop's post
                                 lock) */
    int closed;               /* (lock) closing or closed: pushes are refused */
    atomic_int dropping;      /* a poster found ws_max_queue reached and posted the drop:
                                 pushes are refused (set under lock, read anywhere) */
    atomic_size_t out_bytes;  /* memory the output queue and held pushes hold (msg_cost): written
                                 on the loop thread only, read by posters */
    atomic_size_t posted;     /* the same for pushes posted to the loop and not run yet: added by
                                 posters under lock, taken off by the loop */
    jrpc__list_t subs;        /* (lock) live subscriptions */
    unsigned nsubs;           /* (lock) entries in subs, at most ws_max_subscriptions */
    uv_thread_t tid;          /* the loop's thread: pushes made on it skip the queue */
    jrpc__loop_t *loop;       /* owning loop; only followed while !closed or on its thread */
    const jrpc_config_t *cfg; /* loop->cfg at the open: what other threads read (ws_max_queue,
                                 ws_max_subscriptions); the loop reads loop->cfg (a reload) */

    jrpc__sock_t *sock;           /* the socket src/http accepted and handed over, with its timer
                                     (pings and idle time, then the close handshake's bound) and
                                     the FIN after our close frame; NULL once closed */
    uv_write_t wr;                /* the one write in flight, when the socket did not take it all */
    jrpc__ws_session_t sess;      /* framing */
    jrpc__list_t inflight;        /* RUNNING messages */
    jrpc__list_t holding;         /* subscriptions with held pushes */
    jrpc__list_t ended;           /* subscriptions ended by the close, end_cb due in on_close */
    jrpc__ws_msg_t *waiting;      /* WAITING messages, FIFO: read before the bound was hit */
    jrpc__ws_msg_t *waiting_tail; /* the last of them */
    jrpc__ws_msg_t *out_head;     /* output queue, FIFO; the first wr_count are in the write */
    jrpc__ws_msg_t *out_tail;     /* the last entry of the output queue */
    jrpc__ws_msg_t *spare;        /* reusable message structs */
    unsigned nspare;              /* entries in spare, at most JRPC__WS_SPARE_MAX */
    unsigned out_count;           /* entries in the output queue */
    unsigned wr_count;            /* entries the write in flight carries */
    jrpc__acct_t *acct;           /* (loop) what its requests hold until they finish, past their
                                     answers too: ws_max_inflight counts its calls */
    uint64_t nmsgs;               /* messages received */
    uint64_t last_rx;             /* uv_now of the last byte received */
    uint64_t read_at;             /* uv_now of the last read, or of reading starting again: an
                                     incomplete message may pause body_timeout from there */
    uint64_t timer_at;            /* uv_now the timer is set for (0: stopped) */
    uint64_t last_msg;            /* uv_now of the last message either way */
    uint64_t ping_at;             /* uv_now of the unanswered ping, 0 when none */
    uint8_t in_feed;              /* the session is parsing: flush after it */
    uint8_t in_update;            /* conn_update is on the stack */
    uint8_t writing;              /* a uv_write is in flight */
    uint8_t closing;              /* our close frame is queued: no data frame follows */
    uint8_t shut;                 /* uv_shutdown was called */
    uint8_t shut_done;            /* ... and its callback ran */
    uint8_t aborting;             /* uv_close was called: nothing more happens but freeing */
    uint8_t draining;             /* server stop: no new messages, close 1001 once answered */
    uint8_t log;                  /* log the connection's open and close */
    uint8_t has_auth;             /* auth applies to every message (the server has keys) */
    jrpc__auth_t auth;            /* the key the upgrade came with (a copy) */
    uint8_t pmd;                  /* permessage-deflate was negotiated (RFC 7692) */
    uint8_t pmd_snct;             /* ... server_no_context_takeover: reset after each message */
    uint8_t pmd_cnct;             /* ... client_no_context_takeover: the same for pmd_in */
    uint8_t pmd_sbits;            /* our window (9..15) */
    uint8_t pmd_cbits;            /* the client's window (8..15) */
    struct jrpc__zs *pmd_out;     /* our compressor, made at the first message compressed */
    struct jrpc__zs *pmd_in;      /* the decompressor, made at the first compressed message */
    size_t peer_len;              /* bytes in peer */
    size_t client_len;            /* of them, the client's address (without " websocket ") */
    char peer[76];  /* "ip:port websocket ", the prefix of its log lines ("[ipv6]:port" is 53 at
                       most) */
    char proxy[56]; /* the trusted proxy's "ip:port" when it forwarded for `peer`, else "" */
};

/* Appends m to a FIFO of messages linked through `next` (*head NULL: empty). */
static inline void jrpc__ws_fifo_push(jrpc__ws_msg_t **head, jrpc__ws_msg_t **tail,
                                      jrpc__ws_msg_t *m)
{
    m->next = NULL;
    if (*tail != NULL)
        (*tail)->next = m;
    else
        *head = m;
    *tail = m;
}

/* Takes the first message off a non-empty FIFO. */
static inline jrpc__ws_msg_t *jrpc__ws_fifo_pop(jrpc__ws_msg_t **head, jrpc__ws_msg_t **tail)
{
    jrpc__ws_msg_t *m = *head;
    *head = m->next;
    if (*head == NULL)
        *tail = NULL;
    return m;
}

/* ---- conn.c ---------------------------------------------------------------------------------- */

/* Takes over an upgraded socket from src/http (the sock is handed over by pointer): `hs` holds
 * the request's key, and the `n` bytes at `rest` (the caller's, valid during the call) arrived
 * after the request's head. Writes the 101 answer and serves WebSocket from there. 0 (the sock
 * is ours, also if it closes at once), or a negative error (out of memory, server stopping)
 * after which src/http still owns the socket and answers the request itself. `client` (NULL: the
 * peer) is the address a trusted proxy forwarded for, named in the connection's log lines.
 * `auth` (NULL: the server has no keys) is the key the upgrade came with, copied: every message
 * of the connection is that key's. Loop thread. */
int jrpc__ws_accept(jrpc__sock_t *s, const jrpc__ws_hs_t *hs, const char *rest, size_t n,
                    const char *client, const jrpc__auth_t *auth);
/* Sends a push (m->body is the whole JSON text; m->sub set for a subscription's) on the loop
 * thread: queued as a text frame, held until the subscription's id went out, or dropped when
 * the connection is closing or this push finds ws_max_queue reached (the client is dropped).
 * Takes m. 0 when queued or held, JRPC_ECLOSED when dropped. */
int jrpc__ws_conn_push(jrpc_conn_t *c, jrpc__ws_msg_t *m);

/* Drops the pushes a subscription held (it ended before its id went out). Loop thread. */
void jrpc__ws_conn_drop_held(jrpc_conn_t *c, jrpc_sub_t *sub);
/* A poster on another thread found ws_max_queue reached: the client is dropped. Loop thread. */
void jrpc__ws_conn_drop(jrpc_conn_t *c);

/* ---- push.c ---------------------------------------------------------------------------------- */

/* An ended subscription's end_cb runs and the connection's reference on it goes. Loop thread,
 * from the loop (never inside a jrpc_* call). */
void jrpc__ws_sub_finish(jrpc_sub_t *sub);
/* The connection is closing: refuse pushes from now on, and move its live subscriptions to
 * c->ended (conn.c runs their end_cb when the connection's handles are closed). Loop thread. */
void jrpc__ws_conn_mark_closed(jrpc_conn_t *c);
/* Frees a message made for a push or an end and the subscription reference it holds (the
 * connection reference of a posted one is the poster's to drop). Any thread. */
void jrpc__ws_msg_free(jrpc__ws_msg_t *m);

#endif
