/* SPDX-License-Identifier: MIT */
/* push.c — server push over WebSocket: references to connections, notifications and
 * subscriptions sent from any thread, carried to the connection's own thread by the loop's post
 * queue (the one its calls' replies take, so a handler's pushes arrive before its answer). A send
 * made on that thread goes straight to the output; from any other it is checked and queued under
 * the connection's lock, so that once a connection is marked closed no thread can reach its loop
 * any more (the loop may be gone by then; the object is not, while references exist). A posted push
 * counts against ws_max_queue from that moment (a producer must not outrun the loop without
 * bound), and costs one uncontended lock round and, when the loop sleeps, one eventfd write.
 * Subscriptions per connection are capped at ws_max_subscriptions. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- References ------------------------------------------------------------------------------ */

JRPC_EXTERN jrpc_conn_t *jrpc_conn_ref(jrpc_conn_t *conn)
{
    atomic_fetch_add_explicit(&conn->refs, 1, memory_order_relaxed);
    return conn;
}

JRPC_EXTERN void jrpc_conn_unref(jrpc_conn_t *conn)
{
    if (atomic_fetch_sub_explicit(&conn->refs, 1, memory_order_acq_rel) != 1)
        return;
    uv_mutex_destroy(&conn->lock);
    free(conn);
}

JRPC_EXTERN int jrpc_conn_is_open(jrpc_conn_t *conn)
{
    uv_mutex_lock(&conn->lock);
    int open = !conn->closed && !atomic_load_explicit(&conn->dropping, memory_order_relaxed);
    uv_mutex_unlock(&conn->lock);
    return open;
}

void jrpc__ws_msg_free(jrpc__ws_msg_t *m)
{
    jrpc_buf_free(&m->body);
    if (m->sub != NULL)
        jrpc_sub_unref(m->sub);
    free(m);
}

static jrpc__ws_msg_t *msg_new(void)
{
    jrpc__ws_msg_t *m = calloc(1, sizeof(*m));
    if (m != NULL) {
        jrpc__list_init(&m->link);
        jrpc_buf_init(&m->body);
    }
    return m;
}

/* ---- Posting -------------------------------------------------------------------------------- */

static void run_posted(jrpc__post_t *p)
{
    jrpc__ws_msg_t *m = JRPC__CONTAINER_OF(p, jrpc__ws_msg_t, post);
    jrpc_conn_t *c = m->conn;
    if (m->kind == JRPC__WS_M_END) {
        jrpc_sub_t *sub = m->sub; /* the connection's reference, handed over by end_locked */
        m->sub = NULL;
        jrpc__ws_msg_free(m);
        jrpc__ws_sub_finish(sub);
    } else if (m->kind == JRPC__WS_M_DROP) {
        jrpc__ws_msg_free(m);
        jrpc__ws_conn_drop(c);
    } else {
        atomic_fetch_sub_explicit(&c->posted, jrpc__ws_msg_cost(m), memory_order_relaxed);
        jrpc__ws_conn_push(c, m);
    }
    jrpc_conn_unref(c);
}

/* Queues m for c's loop. c->lock is held and c is not closed, so the loop and its wakeup exist:
 * they close only after every connection was marked closed under that lock. */
static void post_locked(jrpc_conn_t *c, jrpc__ws_msg_t *m)
{
    m->conn = jrpc_conn_ref(c);
    m->post.cb = run_posted;
    jrpc__loop_post(c->loop, &m->post);
}

/* ---- Sending --------------------------------------------------------------------------------- */

static int on_loop_thread(const jrpc_conn_t *c)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &c->tid);
}

/* A poster found ws_max_queue reached (c->lock held, c open): m, emptied, carries the drop to the
 * loop, and from now on pushes are refused. The client is not reading; a producer that can post
 * faster than the loop writes must be stopped here, not when its pushes reach the loop. Returns
 * the subscription reference m held, for the caller to drop once the lock is released. */
static jrpc_sub_t *drop_locked(jrpc_conn_t *c, jrpc__ws_msg_t *m)
{
    jrpc_sub_t *sub = m->sub;
    m->sub = NULL;
    jrpc_buf_free(&m->body);
    m->kind = JRPC__WS_M_DROP;
    atomic_store_explicit(&c->dropping, 1, memory_order_relaxed);
    post_locked(c, m);
    return sub;
}

/* Hands the push m (body: the whole JSON text; sub set for a subscription's) to c. Takes m. */
static int conn_send(jrpc_conn_t *c, jrpc__ws_msg_t *m)
{
    jrpc_sub_t *sub = m->sub;
    m->kind = JRPC__WS_M_PUSH;
    if (on_loop_thread(c)) {
        /* Only this thread closes c, so `closed` needs no lock here; `ended` may be set by any
         * thread (an unsubscribe on a worker), `dropping` by any poster. */
        int refused = c->closed || atomic_load_explicit(&c->dropping, memory_order_relaxed);
        if (!refused && sub != NULL) {
            uv_mutex_lock(&c->lock);
            refused = sub->ended;
            uv_mutex_unlock(&c->lock);
        }
        if (refused) {
            jrpc__ws_msg_free(m);
            return JRPC_ECLOSED;
        }
        return jrpc__ws_conn_push(c, m);
    }
    uv_mutex_lock(&c->lock);
    if (c->closed || atomic_load_explicit(&c->dropping, memory_order_relaxed) ||
        (sub != NULL && sub->ended)) {
        uv_mutex_unlock(&c->lock);
        jrpc__ws_msg_free(m);
        return JRPC_ECLOSED;
    }
    /* Counted now, not when the loop gets to it: what waits in the post queue is held too.
     * Posters are serialised by the lock, so the check and the add are one step. */
    size_t held = atomic_load_explicit(&c->out_bytes, memory_order_relaxed) +
                  atomic_load_explicit(&c->posted, memory_order_relaxed);
    if (held >= c->cfg->ws_max_queue) {
        jrpc_sub_t *ref = drop_locked(c, m);
        uv_mutex_unlock(&c->lock);
        if (ref != NULL)
            jrpc_sub_unref(ref);
        return JRPC_ECLOSED;
    }
    atomic_fetch_add_explicit(&c->posted, jrpc__ws_msg_cost(m), memory_order_relaxed);
    post_locked(c, m);
    uv_mutex_unlock(&c->lock);
    return 0;
}

/* The start every push shares: {"jsonrpc":"2.0","method":<method as a JSON string>. The error
 * sticks in b. */
static void push_head(jrpc_buf_t *b, const char *method)
{
    static const char head[] = "{\"jsonrpc\":\"2.0\",\"method\":";
    jrpc_buf_append(b, head, sizeof head - 1);
    jrpc_buf_json_string(b, method, strlen(method));
}

JRPC_EXTERN int jrpc_conn_notify(jrpc_conn_t *conn, const char *method, const char *params_json,
                                 size_t len)
{
    if (conn == NULL || method == NULL)
        return JRPC_EINVAL;
    jrpc__ws_msg_t *m = msg_new();
    if (m == NULL)
        return JRPC_ENOMEM;
    jrpc_buf_t *b = &m->body;
    jrpc_buf_reserve(b, strlen(method) + len + 48);
    push_head(b, method);
    if (params_json != NULL) {
        jrpc_buf_append(b, ",\"params\":", 10);
        jrpc_buf_append(b, params_json, len);
    }
    if (jrpc_buf_append(b, "}", 1) != 0) {
        jrpc__ws_msg_free(m);
        return JRPC_ENOMEM;
    }
    return conn_send(conn, m);
}

/* ---- Subscriptions --------------------------------------------------------------------------- */

static void sub_free(jrpc_sub_t *sub)
{
    if (sub->end_msg != NULL) /* never posted: it ended with its connection */
        jrpc__ws_msg_free(sub->end_msg);
    jrpc_conn_unref(sub->conn);
    free(sub);
}

JRPC_EXTERN jrpc_sub_t *jrpc_sub_ref(jrpc_sub_t *sub)
{
    atomic_fetch_add_explicit(&sub->refs, 1, memory_order_relaxed);
    return sub;
}

JRPC_EXTERN void jrpc_sub_unref(jrpc_sub_t *sub)
{
    if (atomic_fetch_sub_explicit(&sub->refs, 1, memory_order_acq_rel) == 1)
        sub_free(sub);
}

JRPC_EXTERN jrpc_str_t jrpc_sub_id(const jrpc_sub_t *sub)
{
    jrpc_str_t id = {sub->id, sub->id_len};
    return id;
}

/* 16 bytes from the kernel's CSPRNG: ids are unguessable, as geth's are, so one client cannot
 * end another's subscription by guessing (they are per connection anyway). */
static void random_bytes(uint8_t *b, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(b + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got < n) {
        /* No getrandom (old kernel, seccomp): unique, if guessable, ids from time and a
         * counter through splitmix64. */
        static atomic_ullong counter;
        uint64_t x = uv_hrtime() ^ (atomic_fetch_add(&counter, 1) * 0x9e3779b97f4a7c15ULL);
        for (size_t i = got; i < n; i++) {
            x += 0x9e3779b97f4a7c15ULL;
            uint64_t z = x;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            b[i] = (uint8_t)(z ^ (z >> 31));
        }
    }
}

/* The WebSocket connection `call` came on; NULL, with the call answered -32601, when it came
 * over HTTP, which has nothing to push to. */
static jrpc_conn_t *sub_conn(jrpc_call_t *call)
{
    jrpc_conn_t *c = jrpc_call_conn(call);
    if (c == NULL)
        jrpc_reply_error(call, JRPC_CODE_METHOD_NOT_FOUND, "notifications not supported",
                         "\"subscriptions need a WebSocket connection\"");
    return c;
}

/* The connection has ws_max_subscriptions live: -32005 naming the limit and its value, as the
 * batch cap's does (the client may unsubscribe some, or use another connection). */
static void sub_refuse_full(jrpc_call_t *call, unsigned max)
{
    char msg[96];
    snprintf(msg, sizeof msg,
             "too many subscriptions: limit %u per connection (ws_max_subscriptions)", max);
    jrpc_reply_error(call, JRPC_CODE_LIMIT_EXCEEDED, msg, NULL);
}

/* The subscribe call completed (src/rpc runs this): a subscription whose id never reached the
 * client (the call timed out, or came as a notification) could not be unsubscribed, so it ends;
 * the call's reference goes either way. */
static void sub_call_done(void *data, int delivered)
{
    jrpc_sub_t *sub = data;
    if (!delivered)
        jrpc_sub_end(sub);
    jrpc_sub_unref(sub);
}

JRPC_EXTERN jrpc_sub_t *jrpc_sub_start(jrpc_call_t *call, const char *method,
                                       jrpc_sub_end_cb end_cb, void *data)
{
    jrpc_conn_t *c = sub_conn(call);
    if (c == NULL)
        return NULL;
    static const char hex[] = "0123456789abcdef";
    uint8_t rnd[16];
    char id[40];
    random_bytes(rnd, sizeof rnd);
    size_t id_len = 0;
    id[id_len++] = '"';
    id[id_len++] = '0';
    id[id_len++] = 'x';
    for (size_t i = 0; i < sizeof rnd; i++) {
        id[id_len++] = hex[rnd[i] >> 4];
        id[id_len++] = hex[rnd[i] & 15];
    }
    id[id_len++] = '"';

    /* Every push starts the same way: build that once. */
    jrpc_buf_t prefix;
    jrpc_buf_init(&prefix);
    push_head(&prefix, method);
    jrpc_buf_append(&prefix, ",\"params\":{\"subscription\":", 26);
    jrpc_buf_append(&prefix, id, id_len);
    jrpc_buf_append(&prefix, ",\"result\":", 10);
    jrpc_sub_t *sub = prefix.err ? NULL : calloc(1, sizeof(*sub) + prefix.len);
    jrpc__ws_msg_t *end = sub != NULL ? msg_new() : NULL;
    if (end == NULL) {
        free(sub);
        jrpc_buf_free(&prefix);
        jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, "Internal error", "\"out of memory\"");
        return NULL;
    }
    memcpy(sub->prefix, prefix.ptr, prefix.len);
    sub->prefix_len = prefix.len;
    jrpc_buf_free(&prefix);
    memcpy(sub->id, id, id_len);
    sub->id_len = id_len;
    atomic_init(&sub->refs, 3); /* the connection's, the caller's and the call's */
    sub->conn = jrpc_conn_ref(c);
    sub->end_cb = end_cb;
    sub->data = data;
    sub->end_msg = end;
    jrpc__list_init(&sub->link);
    jrpc__list_init(&sub->holding);
    /* The request this call came in: pushes wait for its answer. */
    sub->msg_seq = jrpc__call_req_seq(call);

    uv_mutex_lock(&c->lock);
    int closed = c->closed || atomic_load_explicit(&c->dropping, memory_order_relaxed);
    int full = !closed && c->nsubs >= c->cfg->ws_max_subscriptions;
    if (!closed && !full) {
        jrpc__list_insert_tail(&c->subs, &sub->link);
        c->nsubs++;
    }
    uv_mutex_unlock(&c->lock);
    if (closed || full) {
        sub_free(sub);
        if (closed)
            jrpc_reply_error(call, JRPC_CODE_SERVER_ERROR, "connection closed", NULL);
        else {
            /* Any thread (a worker's handler): the shared counter, on a refusal path only. */
            atomic_fetch_add_explicit(&c->loop->io->limits_shared[JRPC__LIMIT_WS_MAX_SUBSCRIPTIONS],
                                      1, memory_order_relaxed);
            sub_refuse_full(call, c->cfg->ws_max_subscriptions);
        }
        return NULL;
    }
    /* Registered before the answer: the answer's completion finds it (conn.c release_subs).
     * The call keeps a reference until its completion, which ends the subscription if the
     * answer never reaches the client. */
    jrpc__call_cleanup_set(call, sub_call_done, sub);
    jrpc_reply_raw(call, sub->id, sub->id_len);
    return sub;
}

JRPC_EXTERN int jrpc_sub_push(jrpc_sub_t *sub, const char *result_json, size_t len)
{
    if (sub == NULL || result_json == NULL)
        return JRPC_EINVAL;
    jrpc__ws_msg_t *m = msg_new();
    if (m == NULL || jrpc_buf_reserve(&m->body, sub->prefix_len + len + 2) != 0) {
        if (m != NULL)
            jrpc__ws_msg_free(m);
        return JRPC_ENOMEM;
    }
    jrpc_buf_append(&m->body, sub->prefix, sub->prefix_len);
    jrpc_buf_append(&m->body, result_json, len);
    jrpc_buf_append(&m->body, "}}", 2);
    m->sub = jrpc_sub_ref(sub);
    return conn_send(sub->conn, m);
}

/* Ends sub (its connection's lock held, the connection open): no more pushes, and its end_cb is
 * posted to the loop with the connection's reference. 0 if it had ended already. */
static int end_locked(jrpc_sub_t *sub)
{
    if (sub->ended)
        return 0;
    jrpc_conn_t *c = sub->conn;
    sub->ended = 1;
    jrpc__list_remove(&sub->link);
    c->nsubs--;
    jrpc__ws_msg_t *m = sub->end_msg;
    sub->end_msg = NULL;
    m->kind = JRPC__WS_M_END;
    m->sub = sub;
    post_locked(c, m);
    return 1;
}

JRPC_EXTERN void jrpc_sub_end(jrpc_sub_t *sub)
{
    jrpc_conn_t *c = sub->conn;
    uv_mutex_lock(&c->lock);
    end_locked(sub); /* a closed connection ended it already */
    uv_mutex_unlock(&c->lock);
}

JRPC_EXTERN void jrpc_sub_unsubscribe(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_conn_t *c = sub_conn(call);
    if (c == NULL)
        return;
    jrpc_json_t params = jrpc_call_params(call), id;
    if (jrpc_json_type(params) != JRPC_JSON_ARRAY || jrpc_json_count(params) != 1 ||
        jrpc_json_at(params, 0, &id) != 0 || jrpc_json_type(id) != JRPC_JSON_STRING) {
        jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS, "Invalid params",
                         "\"expected [subscription id]\"");
        return;
    }
    int found = 0;
    uv_mutex_lock(&c->lock);
    for (jrpc__list_t *it = c->subs.next; it != &c->subs; it = it->next) {
        jrpc_sub_t *sub = JRPC__CONTAINER_OF(it, jrpc_sub_t, link);
        if (jrpc_json_string_eq(id, sub->id + 1, sub->id_len - 2)) {
            found = end_locked(sub);
            break;
        }
    }
    uv_mutex_unlock(&c->lock);
    if (found)
        jrpc_reply_raw(call, "true", 4);
    else
        jrpc_reply_error(call, JRPC_CODE_SERVER_ERROR, "subscription not found", NULL);
}

void jrpc__ws_sub_finish(jrpc_sub_t *sub)
{
    jrpc__ws_conn_drop_held(sub->conn, sub);
    if (sub->end_cb != NULL)
        sub->end_cb(sub, sub->data);
    jrpc_sub_unref(sub); /* the connection's reference */
}

void jrpc__ws_conn_mark_closed(jrpc_conn_t *c)
{
    uv_mutex_lock(&c->lock);
    c->closed = 1;
    while (!jrpc__list_empty(&c->subs)) {
        jrpc_sub_t *sub = JRPC__CONTAINER_OF(c->subs.next, jrpc_sub_t, link);
        jrpc__list_remove(&sub->link);
        sub->ended = 1;
        jrpc__list_insert_tail(&c->ended, &sub->link);
    }
    c->nsubs = 0;
    uv_mutex_unlock(&c->lock);
}
