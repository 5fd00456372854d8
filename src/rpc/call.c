/* SPDX-License-Identifier: MIT */
/* call.c — what a handler sees: the call's params, id and method as views into the receive
 * buffer, and the reply functions. A reply may come from any thread: its bytes go to the request's
 * arena when made on the loop's thread (no malloc on the hot path), to malloc otherwise, and the
 * call is handed back to its loop (req.c) which fills the slot. */
#include "../util/digits.h"
#include "req.h"

#include <stdlib.h>
#include <string.h>

int jrpc__call_on_loop(const jrpc_call_t *call)
{
    return jrpc__loop_on_thread(call->req->loop);
}

JRPC_EXTERN jrpc_json_t jrpc_call_params(const jrpc_call_t *call)
{
    return call->params;
}

JRPC_EXTERN jrpc_str_t jrpc_call_method(const jrpc_call_t *call)
{
    return call->name;
}

JRPC_EXTERN jrpc_json_t jrpc_call_id(const jrpc_call_t *call)
{
    return call->id;
}

JRPC_EXTERN int jrpc_call_in_batch(const jrpc_call_t *call)
{
    return call->req->is_batch;
}

JRPC_EXTERN jrpc_json_t jrpc_call_raw(const jrpc_call_t *call)
{
    return call->raw;
}

JRPC_EXTERN uint64_t jrpc_call_request(const jrpc_call_t *call)
{
    return call->req->seq; /* any thread the call may be used on: it outlives the handler */
}

JRPC_EXTERN int jrpc_call_no_cache(const jrpc_call_t *call)
{
    return call->req->no_cache;
}

JRPC_EXTERN void *jrpc_call_loop(const jrpc_call_t *call)
{
    return &call->req->loop->uv;
}

JRPC_EXTERN unsigned jrpc_call_loop_index(const jrpc_call_t *call)
{
    return call->req->loop->index;
}

JRPC_EXTERN jrpc_server_t *jrpc_call_server(const jrpc_call_t *call)
{
    return call->req->loop->io->srv;
}

JRPC_EXTERN jrpc_conn_t *jrpc_call_conn(const jrpc_call_t *call)
{
    return call->req->conn;
}

JRPC_EXTERN int jrpc_call_cancelled(const jrpc_call_t *call)
{
    if (atomic_load_explicit(&((jrpc_call_t *)call)->cancelled, memory_order_relaxed))
        return 1;
    /* On the loop's thread the deadline is seen before its timer has run: a loop busy with other
     * work runs timers late, and the call should not be started on in the meantime. */
    const jrpc__req_t *r = call->req;
    return r->loop->cfg->deadline_ms != 0 && jrpc__call_on_loop(call) &&
           uv_now(&r->loop->uv) >= r->deadline;
}

JRPC_EXTERN int jrpc_call_limit_refused(jrpc_call_t *call, const char *limit)
{
    int l = jrpc__limit_find(limit);
    if (l < 0)
        return JRPC_EINVAL;
    jrpc__loop_t *loop = call->req->loop;
    /* The loop's own counters take only its thread's writes (stats.h); elsewhere the server's
     * atomics, as for refusals made in workers. */
    if (jrpc__loop_on_thread(loop))
        jrpc__stats_limit(&loop->stats, (jrpc__limit_t)l);
    else
        atomic_fetch_add_explicit(&loop->io->limits_shared[l], 1, memory_order_relaxed);
    return 0;
}

uint64_t jrpc__call_req_seq(const jrpc_call_t *call)
{
    return call->req->seq;
}

void jrpc__call_cleanup_set(jrpc_call_t *call, jrpc__call_cleanup_cb cb, void *data)
{
    call->cleanup = cb;
    call->cleanup_data = data;
}

/* Room for a reply of n bytes: the arena on the loop's thread, else malloc. */
static char *reply_mem(jrpc_call_t *c, size_t n, int on_loop)
{
    c->reply_owned = (uint8_t)!on_loop;
    return on_loop ? jrpc__arena_alloc(&c->req->arena, n ? n : 1) : malloc(n ? n : 1);
}

static void reply_internal_error(jrpc_call_t *c)
{
    static const char msg[] = "{\"code\":-32603,\"message\":\"Internal error\",\"data\":"
                              "\"out of memory\"}";
    c->reply = msg;
    c->reply_len = sizeof msg - 1;
    c->reply_owned = 0;
    c->reply_is_error = 1;
    c->reply_code = JRPC_CODE_INTERNAL_ERROR;
}

static void reply_bytes(jrpc_call_t *c, const char *p, size_t n, int is_error)
{
    char *mem = reply_mem(c, n, jrpc__call_on_loop(c));
    if (mem == NULL) {
        reply_internal_error(c);
    } else {
        memcpy(mem, p, n);
        c->reply = mem;
        c->reply_len = n;
        c->reply_is_error = (uint8_t)is_error;
    }
    jrpc__call_replied(c);
}

/* Replies with a copy of what was built in b, or Internal error when building it ran out of
 * memory; frees b either way. */
static void reply_built(jrpc_call_t *c, jrpc_buf_t *b, int is_error)
{
    if (b->err) {
        reply_internal_error(c);
        jrpc__call_replied(c);
    } else {
        reply_bytes(c, b->ptr, b->len, is_error);
    }
    jrpc_buf_free(b);
}

JRPC_EXTERN void jrpc_reply_raw(jrpc_call_t *call, const char *json, size_t len)
{
    reply_bytes(call, json, len, 0);
}

JRPC_EXTERN void jrpc_reply_buf(jrpc_call_t *call, jrpc_buf_t *result)
{
    if (result->err) {
        jrpc_buf_free(result);
        reply_internal_error(call);
    } else {
        call->reply = result->ptr ? result->ptr : "null";
        call->reply_len = result->ptr ? result->len : 4;
        call->reply_owned = result->ptr != NULL;
        call->reply_is_error = 0;
        jrpc_buf_init(result);
    }
    jrpc__call_replied(call);
}

JRPC_EXTERN void jrpc_reply_ref(jrpc_call_t *call, const char *json, size_t len,
                                jrpc_release_cb release, void *data)
{
    call->reply = json;
    call->reply_len = len;
    call->reply_owned = 0;
    call->reply_is_error = 0;
    call->release = release;
    call->release_data = data;
    jrpc__call_replied(call);
}

JRPC_EXTERN void jrpc_reply_string(jrpc_call_t *call, const char *s, size_t len)
{
    jrpc_buf_t b;
    jrpc_buf_init(&b);
    jrpc_buf_json_string(&b, s, len);
    reply_built(call, &b, 0);
}

JRPC_EXTERN void jrpc_reply_int64(jrpc_call_t *call, int64_t v)
{
    char num[24];
    const char *p = jrpc__i64_digits(v, num + sizeof num);
    reply_bytes(call, p, (size_t)(num + sizeof num - p), 0);
}

JRPC_EXTERN void jrpc_reply_error(jrpc_call_t *call, int code, const char *message,
                                  const char *data_json)
{
    jrpc_buf_t b;
    jrpc_buf_init(&b);
    message = message ? message : "";
    jrpc__error_body(&b, code, message, strlen(message), data_json,
                     data_json ? strlen(data_json) : 0, 0);
    call->reply_code = code; /* replaced by -32603 if b ran out of memory */
    reply_built(call, &b, 1);
}

JRPC_EXTERN void jrpc_reply_error_raw(jrpc_call_t *call, int code, const char *error_json,
                                      size_t len)
{
    call->reply_code = code;
    reply_bytes(call, error_json, len, 1);
}
