/* SPDX-License-Identifier: MIT */
/* req.h — the request and call objects shared by req.c (lifecycle: check, run, answer) and
 * call.c (the handler-facing API). Private to src/rpc. */
#ifndef JRPC_RPC_REQ_H
#define JRPC_RPC_REQ_H

#include "../util/arena.h"
#include "internal.h"

#include <stdatomic.h>
#include <stdint.h>

enum {
    CALL_ANSWERED = 0, /* decided while checking (error, or notification to skip): nothing to run */
    CALL_WAITING,      /* valid: waits for a place under batch_concurrency */
    CALL_RUNNING,      /* handed to its handler, no reply yet */
    CALL_DONE          /* replied (or timed out) */
};

/* jrpc__req_t.timer_state: a request keeps its deadline only once a call outlives the first
 * pump. It is then in its loop's deadlines list, which one timer per loop serves (req.c): a
 * request of its own would cost a timer's start, stop and close, about 400 instructions, on
 * every call a gateway forwards. */
enum {
    TIMER_NONE = 0, /* never armed */
    TIMER_ARMED,    /* in loop->deadlines */
    TIMER_FIRED     /* the deadline passed (answered then): never armed again */
};

struct jrpc_call {
    jrpc__req_t *req;        /* owner; outlives the call */
    const jrpc__method_t *m; /* handler, when the call runs */
    jrpc_str_t name;         /* method name, unescaped (arena or receive buffer) */
    jrpc_json_t params;      /* view into the receive buffer */
    jrpc_json_t id;          /* view into the receive buffer; ptr NULL: notification */
    jrpc_json_t raw;         /* the whole item, likewise (ptr NULL: none, as for REST) */
    const char *out;         /* result text, or the error object text when is_error */
    size_t out_len;
    const char *reply; /* what the handler replied, written by the replying thread and
                          read by the loop only after the completion is handed over */
    size_t reply_len;
    int reply_code; /* the error code when reply_is_error */
    uint8_t reply_is_error;
    uint8_t reply_owned;     /* reply was malloc'd (replied off the loop's thread) */
    jrpc_release_cb release; /* reply/out are borrowed (jrpc_reply_ref): run once when
                                the request no longer needs them */
    void *release_data;
    int code;                      /* the error code when is_error */
    uint64_t t0;                   /* uv_hrtime() at the start of the pump pass that started it
                                      (timed servers; 0: not timed) */
    uint8_t state;                 /* CALL_* */
    uint8_t answer;                /* the call gets an entry in the response */
    uint8_t is_error;              /* out is {"code":…,"message":…} */
    uint8_t out_owned;             /* out is malloc'd: free it with the request */
    uint8_t in_dispatch;           /* its handler runs inside the pump right now (loop thread) */
    uint8_t replied_inline;        /* replied inside the pump: the pump completes it */
    uint8_t timed_out;             /* answered -32002 already; the handler's reply is dropped */
    uint8_t bounded;               /* counted in req->bounded while running */
    uint8_t pooled;                /* taken by the worker pool: tell it when completed */
    uint8_t budgeted;              /* offered to the budget store (ok on entry to the
                                      reservation): refused when the store says no */
    uint8_t emitted;               /* streamed: its entry is in a piece already */
    uint8_t too_large;             /* its entry is -32003 (max_response): counted so */
    _Atomic uint8_t cancelled;     /* nobody waits for the reply any more (timed out, client
                                      gone, answered at shutdown): set by the loop, read by
                                      jrpc_call_cancelled on any thread */
    jrpc__post_t post;             /* carries the call back to its loop (replied elsewhere) */
    jrpc__pool_job_t job;          /* its place in the worker pool's queue (JRPC_WORKER) */
    jrpc__call_cleanup_cb cleanup; /* set before the reply (a subscription): runs on
                                      completion */
    void *cleanup_data;
};

/* A cleanup of the request's (jrpc__req_cleanup_add), in its arena. */
typedef struct jrpc__cleanup {
    struct jrpc__cleanup *next;
    jrpc__cleanup_cb cb;
    void *data;
} jrpc__cleanup_t;

struct jrpc__req {
    jrpc__loop_t *loop;
    jrpc__list_t link;    /* in loop->reqs while alive */
    jrpc__acct_t *acct;   /* the connection's account (a reference), or NULL */
    size_t body_counted;  /* body bytes counted in acct and the server's total */
    size_t arena_counted; /* arena bytes counted there */
    size_t calls_live;    /* admitted calls not finished */
    size_t calls_counted; /* of them, counted in acct and the server's total */
    jrpc__arena_t arena;  /* everything below that is not malloc'd */
    char *body;           /* receive buffer (malloc'd, ours): views point into it */
    size_t body_len;
    jrpc_call_t *calls; /* one per item, in request order */
    size_t ncalls;
    size_t next;               /* first call not yet considered for starting */
    size_t running;            /* started and not replied (the request lives while > 0) */
    size_t bounded;            /* those of them that count against batch_concurrency */
    size_t remaining;          /* answered calls still without an answer */
    uint64_t deadline;         /* uv_now() value past which unfinished items time out */
    jrpc_conn_t *conn;         /* the transport connection (push), or NULL; kept by a cleanup */
    jrpc__cleanup_t *cleanups; /* run when the request is freed, newest first */
    uint64_t seq;              /* number among the loop's requests (jrpc__req_seq) */
    jrpc__req_done_cb done;
    void *ud;
    jrpc__list_t dl;     /* in loop->deadlines while TIMER_ARMED */
    uint8_t is_batch;    /* answer with an array */
    uint8_t rest;        /* REST: bare results, {"error":…} objects, no ids */
    uint8_t no_cache;    /* the client asked for answers no cache made (jrpc_call_no_cache) */
    int status;          /* HTTP status of the answer (REST maps error codes) */
    uint8_t answered;    /* done was called (or the request was detached) */
    uint8_t pumping;     /* req_pump is on the stack */
    uint8_t starting;    /* jrpc__req_run is on the stack: an answer is kept in `early` */
    uint8_t early_ready; /* `early` holds the answer made while starting */
    jrpc__answer_t early;
    uint8_t timer_state;  /* TIMER_* */
    uint8_t has_auth;     /* auth is set: the key rules apply */
    uint8_t reserving;    /* a budget reservation is out: its done callback still comes */
    uint8_t expired;      /* answered (deadline, stop) while reserving: the reservation's answer
                             is dropped */
    uint32_t retry_after; /* seconds, for a single call's 429 */
    uint8_t *ok;          /* the calls to run, while reserving (arena) */
    uint32_t *costs;      /* their costs, while reserving (arena) */
    jrpc__auth_t auth;    /* who sent it (has_auth) */
    uint8_t stream;       /* pieces are taken as items finish (jrpc__req_stream) */
    uint8_t order;        /* JRPC__ORDER_* while streaming */
    uint8_t over;         /* streaming: max_response was reached; later entries are -32003 */
    uint8_t stream_due;   /* streaming: `ready` was called, the take has not come yet */
    jrpc__req_ready_cb ready;
    size_t emit_from;      /* streaming: calls before it are all emitted or not answered */
    size_t emitted;        /* streaming: entries emitted */
    size_t emit_bytes;     /* streaming: body bytes handed over in pieces */
    long over_from;        /* streaming: the first item answered -32003, or -1 (for the log) */
    const char *memo_name; /* the last method name looked up (a batch repeats one) */
    size_t memo_len;       /* its length */
    const jrpc__method_t *memo_m; /* what the registry gave for it (NULL: not found) */
};

/* Marks c as one nobody waits for any more (jrpc_call_cancelled): its handler may stop working on
 * it; it still replies once. Loop thread. */
static inline void jrpc__call_cancel(jrpc_call_t *c)
{
    atomic_store_explicit(&c->cancelled, 1, memory_order_relaxed);
}

/* On the loop's thread (the only thread that may touch the request's arena). */
int jrpc__call_on_loop(const jrpc_call_t *call);
/* A handler replied: on the loop's thread the call completes now (after the handler returns when
 * it replied inside it), from any other thread it is posted to the loop. */
void jrpc__call_replied(jrpc_call_t *call);
/* The call has replied: account for it (loop thread). */
void jrpc__call_done(jrpc_call_t *call);

/* answer.c: makes r's response from its calls' entries and hands it to r->done (or keeps it in
 * r->early while jrpc__req_run is on the stack). Once, when the last answerable call finished or
 * the deadline passed. */
void jrpc__req_answer(jrpc__req_t *r);
/* answer.c, streaming: a call finished; when entries can leave (in the stream's order), tells the
 * transport once (r->ready) that a piece is there for jrpc__req_stream_take. */
void jrpc__req_stream_pump(jrpc__req_t *r);

#endif
