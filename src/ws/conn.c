/* SPDX-License-Identifier: MIT */
/* conn.c — WebSocket connections on the io loops: the socket taken over from src/http after the
 * 101, received messages handed to the engine (several in flight, answers leaving as each is
 * done, at most ws_max_inflight calls before reading stops), one output queue for answers,
 * pushes and control frames (bounded by ws_max_queue: a client that does not read is dropped),
 * one timer for pings, idle time and a message's deadline (body_timeout, min_body_rate: a client
 * trickling a message is closed with 1008), and the ways out: the close handshake (ours or the
 * client's), and a hard close. Nothing is freed inside its own callback stack: a hard close marks
 * the connection and the socket's closed callback frees it (src/http does the same). The socket
 * itself is the connection core's (src/io/sock.c), handed over by src/http after the 101. */
#include "../io/zstream.h"
#include "../util/log.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void conn_update(jrpc_conn_t *c);

/* Something its requests held was released while it waited at its bound (acct.c posts this). */
static void on_acct_released(jrpc__acct_t *a, void *owner)
{
    (void)a;
    conn_update(owner);
}
static void conn_abort(jrpc_conn_t *c);

/* ---- Logging --------------------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void conn_log(jrpc_conn_t *c, jrpc_log_level_t level,
                                                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    jrpc__vlog(c->cfg, level, c->peer, fmt, ap);
    va_end(ap);
}

/* The access line of one message's answer (the engine summed it up: logging is on). */
static void conn_log_answer(jrpc_conn_t *c, const jrpc__ws_msg_t *m, const jrpc__answer_t *ans)
{
    char sum[256];
    jrpc__answer_sum_format(&ans->sum, (int)c->cfg->log_json, sum, sizeof sum);
    unsigned long long us = (unsigned long long)((uv_hrtime() - m->t0) / 1000);
    int proxied = c->proxy[0] != '\0';
    /* The key by its name, as on HTTP lines (the secret never). */
    char key[JRPC__KEY_NAME_MAX + 16];
    key[0] = '\0';
    if (c->has_auth)
        snprintf(key, sizeof key, c->cfg->log_json ? ",\"key\":\"%s\"" : " key=%s",
                 c->auth.key != NULL ? c->auth.key->name : "(anonymous)");
    if (c->cfg->log_json)
        jrpc__log(c->cfg, JRPC_LOG_INFO, NULL,
                  "{\"msg\":\"access\",\"transport\":\"ws\",\"client\":\"%.*s\"%s%s%s,"
                  "\"items\":%zu%s,%s,\"bytes\":%zu,\"duration_us\":%llu}",
                  (int)c->client_len, c->peer, proxied ? ",\"proxy\":\"" : "", c->proxy,
                  proxied ? "\"" : "", ans->items, key, sum, ans->body.len, us);
    else
        conn_log(c, JRPC_LOG_INFO, "message items=%zu%s %s bytes=%zu %lluus%s%s", ans->items, key,
                 sum, ans->body.len, us, proxied ? " proxy=" : "", c->proxy);
}

/* ---- Message structs ------------------------------------------------------------------------- */

static jrpc__ws_msg_t *msg_get(jrpc_conn_t *c)
{
    jrpc__ws_msg_t *m = c->spare;
    if (m != NULL) {
        c->spare = m->next;
        c->nspare--;
    } else if ((m = malloc(sizeof(*m))) == NULL) {
        return NULL;
    }
    memset(m, 0, sizeof(*m));
    jrpc__list_init(&m->link);
    jrpc_buf_init(&m->body);
    m->conn = c;
    return m;
}

static void msg_put(jrpc_conn_t *c, jrpc__ws_msg_t *m)
{
    jrpc_buf_free(&m->body);
    if (m->sub != NULL) {
        jrpc_sub_unref(m->sub);
        m->sub = NULL;
    }
    if (c->nspare < JRPC__WS_SPARE_MAX && !c->aborting) { /* on_close frees the spares */
        m->next = c->spare;
        c->spare = m;
        c->nspare++;
    } else {
        free(m);
    }
}

static void msg_list_free(jrpc_conn_t *c, jrpc__ws_msg_t *m)
{
    while (m != NULL) {
        jrpc__ws_msg_t *next = m->next;
        msg_put(c, m);
        m = next;
    }
}

/* ---- Output ---------------------------------------------------------------------------------- */

/* c->out_bytes changes on this thread only; posters read it to bound what they add (relaxed: a
 * bound, not a hand-over of data). */
static void out_bytes_add(jrpc_conn_t *c, size_t n)
{
    size_t v = atomic_load_explicit(&c->out_bytes, memory_order_relaxed);
    atomic_store_explicit(&c->out_bytes, v + n, memory_order_relaxed);
    jrpc__acct_held(c->loop, c->acct, (ptrdiff_t)n); /* max_memory counts it too */
}

static void out_bytes_sub(jrpc_conn_t *c, size_t n)
{
    size_t v = atomic_load_explicit(&c->out_bytes, memory_order_relaxed);
    atomic_store_explicit(&c->out_bytes, v - n, memory_order_relaxed);
    jrpc__acct_held(c->loop, c->acct, -(ptrdiff_t)n);
}

/* What is held for this client's output: queued and held messages, and pushes posted to the loop
 * from other threads that have not reached it yet. */
static size_t out_held(const jrpc_conn_t *c)
{
    return atomic_load_explicit(&c->out_bytes, memory_order_relaxed) +
           atomic_load_explicit(&c->posted, memory_order_relaxed);
}

static void out_append(jrpc_conn_t *c, jrpc__ws_msg_t *m)
{
    m->kind = JRPC__WS_M_OUT;
    jrpc__ws_fifo_push(&c->out_head, &c->out_tail, m);
    c->out_count++;
    out_bytes_add(c, jrpc__ws_msg_cost(m));
}

/* Frees the first k entries of the output queue: they are written. */
static void out_pop(jrpc_conn_t *c, unsigned k)
{
    while (k-- > 0 && c->out_head != NULL) {
        jrpc__ws_msg_t *m = jrpc__ws_fifo_pop(&c->out_head, &c->out_tail);
        c->out_count--;
        out_bytes_sub(c, jrpc__ws_msg_cost(m));
        msg_put(c, m);
    }
}

static void conn_drop_unread(jrpc_conn_t *c)
{
    jrpc__stats_limit(&c->loop->stats, JRPC__LIMIT_WS_MAX_QUEUE);
    conn_log(c, JRPC_LOG_WARN, "dropped: %zu bytes wait unread (ws_max_queue)", out_held(c));
    conn_abort(c);
}

/* The output may not grow: a client that lets ws_max_queue bytes pile up does not read, and the
 * only bound on what we hold for it is to drop it. What is already held is compared, so one
 * message larger than the bound still goes to a client that reads. */
static int out_full(jrpc_conn_t *c)
{
    if (out_held(c) < c->cfg->ws_max_queue)
        return 0;
    conn_drop_unread(c);
    return 1;
}

/* ---- permessage-deflate (RFC 7692) ----------------------------------------------------------- */

/* The tail a sync flush ends with, which §7.2.1 takes off a message and §7.2.2 puts back. */
static const uint8_t pmd_tail[4] = {0x00, 0x00, 0xff, 0xff};

static void pmd_free(jrpc__zs_t **zs)
{
    if (*zs == NULL)
        return;
    jrpc__zs_end(*zs);
    free(*zs);
    *zs = NULL;
}

/* Replaces m's body with its compressed form (§7.2.1). 1 when it did, 0 when the message goes
 * plain (under gzip_min), -1 when out of memory (the compressor's state is then lost, and with it
 * the stream: the connection must end). */
static int pmd_deflate(jrpc_conn_t *c, jrpc__ws_msg_t *m)
{
    if (m->body.len < c->loop->cfg->gzip_min || m->body.len == 0)
        return 0; /* allowed by §6: RSV1 clear, and the context does not see it */
    if (c->pmd_out == NULL) {
        c->pmd_out = malloc(sizeof(*c->pmd_out));
        if (c->pmd_out == NULL)
            return -1;
        if (jrpc__zs_deflate_init(c->pmd_out, c->loop, c->acct, (int)c->loop->cfg->gzip_level,
                                  -(int)c->pmd_sbits, 8) != 0) {
            free(c->pmd_out);
            c->pmd_out = NULL;
            return -1;
        }
    }
    jrpc_buf_t z;
    jrpc_buf_init(&z);
    if (jrpc__zs_deflate(c->pmd_out, m->body.ptr, m->body.len, Z_SYNC_FLUSH, &z) != 0) {
        jrpc_buf_free(&z);
        return -1;
    }
    if (z.len >= 4 && memcmp(z.ptr + z.len - 4, pmd_tail, 4) == 0)
        z.len -= 4;
    if (c->pmd_snct)
        pmd_free(&c->pmd_out); /* no context kept: the ~270 KiB state goes until the next one */
    jrpc__stats_z(&c->loop->stats, JRPC__TR_WS, JRPC__Z_OUT, m->body.len, z.len);
    jrpc_buf_free(&m->body);
    m->body = z;
    return 1;
}

/* Inflates a compressed message (§7.2.2) into *out, at most max_ws_message bytes. 0, or -1 after
 * failing the connection (1009 over the bound, 1007 not deflate data). Frees msg. */
static int pmd_inflate(jrpc_conn_t *c, char *msg, size_t len, jrpc_buf_t *out)
{
    size_t max = c->loop->cfg->max_ws_message;
    jrpc_buf_init(out);
    char *in = realloc(msg, len + 4);
    if (in == NULL) {
        free(msg);
        c->sess.failed = 1;
        return -1;
    }
    memcpy(in + len, pmd_tail, 4);
    int rc = 0;
    if (c->pmd_in == NULL) {
        c->pmd_in = malloc(sizeof(*c->pmd_in));
        if (c->pmd_in == NULL ||
            jrpc__zs_inflate_init(c->pmd_in, c->loop, c->acct, -(int)c->pmd_cbits) != 0) {
            free(c->pmd_in);
            c->pmd_in = NULL;
            rc = JRPC_ENOMEM;
        }
    }
    size_t used = 0;
    if (rc == 0)
        rc = jrpc__zs_inflate(c->pmd_in, in, len + 4, &used, out, max);
    free(in);
    if (rc == 0 && c->pmd_cnct)
        pmd_free(&c->pmd_in); /* no context kept: nothing to hold between messages */
    else if (rc == 1)         /* the client ended the stream with a final block: start a new one */
        rc = inflateReset(&c->pmd_in->z) == Z_OK ? 0 : JRPC_EINVAL;
    if (rc == 0) {
        jrpc__stats_z(&c->loop->stats, JRPC__TR_WS, JRPC__Z_IN, out->len, len);
        return 0;
    }
    jrpc_buf_free(out);
    if (rc == JRPC_ERANGE) {
        char reason[64];
        snprintf(reason, sizeof reason, "message exceeds %zu bytes", max);
        jrpc__ws_session_fail(&c->sess, 1009, reason);
    } else if (rc == JRPC_ENOMEM) {
        c->sess.failed = 1;
    } else {
        jrpc__ws_session_fail(&c->sess, 1007, "invalid permessage-deflate data");
    }
    return -1;
}

/* Queues m's body as one data frame. Takes m. */
static void out_frame(jrpc_conn_t *c, jrpc__ws_msg_t *m, unsigned opcode)
{
    if (c->closing || c->aborting || out_full(c)) {
        msg_put(c, m);
        return;
    }
    int deflated = c->pmd ? pmd_deflate(c, m) : 0;
    if (deflated < 0) {
        msg_put(c, m);
        conn_abort(c);
        return;
    }
    if (m->sub != NULL) { /* a push: once queued it needs its subscription no more */
        jrpc_sub_unref(m->sub);
        m->sub = NULL;
    }
    m->head_len = (uint8_t)jrpc__ws_frame_header(m->head, opcode, m->body.len);
    if (deflated)
        m->head[0] |= 0x40; /* RSV1: a compressed message (§6) */
    out_append(c, m);
    jrpc__ctr_add(&c->loop->stats.ws_out, 1);
    c->last_msg = uv_now(&c->loop->uv);
}

/* The session's output: control frames it built (the 101 answer goes this way too). A raw entry at
 * the tail that is not in the write takes the bytes, so frames queued back to back travel in one
 * entry. */
static int conn_output(void *ud, const uint8_t *p, size_t n)
{
    jrpc_conn_t *c = ud;
    if (c->aborting || out_held(c) >= c->cfg->ws_max_queue)
        return -1; /* a client that only pings still has to read our pongs */
    jrpc__ws_msg_t *t = c->out_tail;
    int tail_in_write = c->writing && c->out_count <= c->wr_count;
    if (t != NULL && t->head_len == 0 && !tail_in_write) {
        out_bytes_sub(c, jrpc__ws_msg_cost(t));
        int rc = jrpc_buf_append(&t->body, p, n);
        out_bytes_add(c, jrpc__ws_msg_cost(t));
        return rc != 0 ? -1 : 0;
    }
    jrpc__ws_msg_t *m = msg_get(c);
    if (m == NULL || jrpc_buf_append(&m->body, p, n) != 0) {
        if (m != NULL)
            msg_put(c, m);
        return -1;
    }
    out_append(c, m);
    return 0;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    jrpc__sock_t *s = req->handle->data;
    jrpc_conn_t *c = s->owner;
    c->shut_done = 1;
    if (c->aborting)
        return;
    if (status < 0) {
        conn_abort(c);
        return;
    }
    conn_update(c);
}

static void conn_flush(jrpc_conn_t *c);

static void on_write(uv_write_t *wr, int status)
{
    jrpc_conn_t *c = JRPC__CONTAINER_OF(wr, jrpc_conn_t, wr);
    c->writing = 0;
    if (c->aborting)
        return; /* on_close frees the queue */
    if (status < 0) {
        conn_abort(c);
        return;
    }
    out_pop(c, c->wr_count);
    c->wr_count = 0;
    conn_update(c);
}

/* Whether our FIN may follow our close frame now. After a normal close of ours (1000, 1001: a
 * stop, the idle timeout) it waits for the client's close frame (or the close bound): a proxy in
 * between, such as HAProxy, ends the whole tunnel when it sees our FIN, so the client's frames
 * still on their way draw a reset, and the reset can destroy our close frame and the answers
 * before it on the client's side (RFC 6455 §7.1.1: the server closes TCP once both close frames
 * went). A close for an error (1002, 1008, 1009 …) fails the connection: the FIN goes at once. */
static int conn_fin_due(const jrpc_conn_t *c)
{
    unsigned code = jrpc__ws_session_code_sent(&c->sess);
    return jrpc__ws_session_close_received(&c->sess) || (code != 1000 && code != 1001);
}

/* Writes the output queue: at once when the socket takes it (the common case: one writev, no
 * write request), else through one uv_write at a time. Once our close frame is out, the FIN
 * follows (conn_fin_due). */
static void conn_flush(jrpc_conn_t *c)
{
    if (c->aborting || c->writing || c->in_feed)
        return;
    while (c->out_head != NULL) {
        uv_buf_t bufs[2 * JRPC__WS_COALESCE_MAX];
        unsigned n = 0, k = 0;
        size_t total = 0;
        for (jrpc__ws_msg_t *m = c->out_head; m != NULL && k < JRPC__WS_COALESCE_MAX;
             m = m->next, k++) {
            if (m->head_len != 0) {
                bufs[n++] = uv_buf_init((char *)m->head, m->head_len);
                total += m->head_len;
            }
            if (m->body.len != 0) {
                bufs[n++] = uv_buf_init(m->body.ptr, (unsigned)m->body.len);
                total += m->body.len;
            }
        }
        int rc = jrpc__sock_write(c->sock, &c->wr, bufs, n, total, on_write);
        if (rc < 0) {
            conn_abort(c);
            return;
        }
        if (rc == 1) {
            out_pop(c, k);
            continue;
        }
        c->wr_count = k;
        c->writing = 1;
        return;
    }
    if (c->closing && !c->shut && conn_fin_due(c)) {
        c->shut = 1;
        if (jrpc__sock_shutdown(c->sock, on_shutdown) != 0)
            conn_abort(c);
    }
}

/* ---- Ways out -------------------------------------------------------------------------------- */

/* Keeps the n bytes at p (the loop's read buffer, or src/http's) with the socket; 0, or -1 after
 * closing. */
static int stash_keep(jrpc_conn_t *c, const char *p, size_t n)
{
    if (jrpc__sock_keep(c->sock, p, n) == 0)
        return 0;
    conn_abort(c);
    return -1;
}

static void on_timer(jrpc__sock_t *s);

/* No more work for this connection: pushes are refused, requests in the engine are detached
 * (their handlers still reply; the answers are dropped) and kept messages dropped. */
static void conn_stop_work(jrpc_conn_t *c)
{
    jrpc__ws_conn_mark_closed(c);
    jrpc__list_t *it = c->inflight.next;
    while (it != &c->inflight) {
        jrpc__ws_msg_t *m = JRPC__CONTAINER_OF(it, jrpc__ws_msg_t, link);
        it = it->next;
        if (m->req == NULL)
            continue; /* inside jrpc__req_run: conn_start detaches it when that returns */
        jrpc__req_detach(m->req);
        jrpc__list_remove(&m->link);
        msg_put(c, m);
    }
    msg_list_free(c, c->waiting);
    c->waiting = c->waiting_tail = NULL;
}

/* Our close frame is queued (sent by us, or the session's echo of the client's): from here on
 * only the close handshake runs, bounded by JRPC__WS_CLOSE_MS. */
static void conn_closing(jrpc_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->sess.paused = 0; /* the client's close frame may still have to be parsed */
    conn_stop_work(c);
    jrpc__sock_timer(c->sock, JRPC__WS_CLOSE_MS);
}

/* Starts the close handshake with `code` (outside a feed). */
static void conn_close(jrpc_conn_t *c, uint16_t code, const char *reason)
{
    if (c->closing || c->aborting)
        return;
    jrpc__ws_session_close(&c->sess, code, reason);
    conn_update(c);
}

static void on_closed(jrpc__sock_t *s)
{
    jrpc_conn_t *c = s->owner;
    c->sock = NULL;
    jrpc__ctr_add(&c->loop->stats.closed[JRPC__TR_WS], 1);
    if (c->pmd)
        jrpc__ctr_add(&c->loop->stats.ws_deflate[1], 1);
    if (c->sess.code_sent == 1009) /* it closed on a message over max_ws_message */
        jrpc__stats_limit(&c->loop->stats, JRPC__LIMIT_WS_MESSAGE);
    /* conn_stop_work emptied inflight and waiting when the close began (conn_start takes back a
     * message whose start the close interrupted); what is left is the output. */
    msg_list_free(c, c->out_head);
    c->out_head = c->out_tail = NULL;
    c->out_count = 0;
    jrpc__ws_session_free(&c->sess);
    pmd_free(&c->pmd_out); /* before the account they count in is left */
    pmd_free(&c->pmd_in);
    /* Subscriptions ended by the close learn it now, from the loop and outside any call. */
    while (!jrpc__list_empty(&c->ended)) {
        jrpc_sub_t *sub = JRPC__CONTAINER_OF(c->ended.next, jrpc_sub_t, link);
        jrpc__list_remove(&sub->link);
        jrpc__ws_sub_finish(sub);
    }
    out_bytes_sub(c, atomic_load_explicit(&c->out_bytes, memory_order_relaxed));
    while (c->spare != NULL) {
        jrpc__ws_msg_t *m = c->spare;
        c->spare = m->next;
        free(m);
    }
    c->nspare = 0;
    jrpc__acct_leave(c->acct);
    c->acct = NULL;
    jrpc_conn_unref(c); /* the transport's reference; others may keep the object */
}

/* Closes the socket now. Safe anywhere on the loop thread, also inside the session's callbacks:
 * the session and the queues are freed in on_close. */
static void conn_abort(jrpc_conn_t *c)
{
    if (c->aborting)
        return;
    if (!c->closing)
        conn_stop_work(c);
    c->aborting = 1;
    c->sess.paused = 1; /* a feed on the stack takes no more bytes */
    if (c->log)
        conn_log(c, JRPC_LOG_INFO, "closed: code %u sent, %s, %llu messages",
                 jrpc__ws_session_code_sent(&c->sess),
                 jrpc__ws_session_close_received(&c->sess) ? "client's close received"
                                                           : "no close from the client",
                 (unsigned long long)c->nmsgs);
    jrpc__sock_close(c->sock);
}

/* ---- Time ------------------------------------------------------------------------------------ */

/* A message that is incomplete while we read: the client stopped for body_timeout. */
static int msg_stalled(const jrpc_conn_t *c)
{
    return jrpc__ws_session_pending(&c->sess, NULL) != 0 && c->sock->reading &&
           jrpc__ws_session_reading(&c->sess);
}

/* Sets the connection's one timer for the first thing due: the next ping or the end of a ping's
 * wait, the idle close, and while a message is incomplete, body_timeout after the last read.
 * Lazily: reads and messages only move the times, and a timer that finds nothing due yet sets
 * itself again for what is left, so a busy connection touches its timer once an interval, not
 * once a read. Only a message left incomplete by a read brings it forward (msg_watch). */
static void conn_arm(jrpc_conn_t *c)
{
    if (c->closing || c->aborting)
        return; /* the close handshake's bound is set */
    const jrpc_config_t *cfg = c->loop->cfg;
    uint64_t due = UINT64_MAX;
    if (cfg->ws_ping_ms != 0)
        due = (c->ping_at != 0 ? c->ping_at : c->last_rx) + cfg->ws_ping_ms;
    if (cfg->ws_idle_ms != 0 && c->last_msg + cfg->ws_idle_ms < due)
        due = c->last_msg + cfg->ws_idle_ms;
    if (msg_stalled(c) && c->read_at + cfg->body_timeout_ms < due)
        due = c->read_at + cfg->body_timeout_ms;
    if (due == UINT64_MAX) {
        c->timer_at = 0;
        jrpc__sock_timer(c->sock, 0);
        return;
    }
    uint64_t now = uv_now(&c->loop->uv);
    c->timer_at = due;
    jrpc__sock_timer(c->sock, due > now ? due - now : 1);
}

/* The client is too slow with a message: close with 1008 (policy violation: RFC 6455 §7.4.1 has
 * no closer code, and the frames themselves are well-formed, so not 1002). The message is freed
 * now and no more input is parsed; the close handshake's bound ends the rest. */
static void msg_give_up(jrpc_conn_t *c, const char *reason)
{
    conn_log(c, JRPC_LOG_WARN, "closed 1008: %s", reason);
    jrpc__ws_session_fail(&c->sess, 1008, reason);
}

/* Brings the timer forward to body_timeout after the last read when a message waits for more. */
static void msg_arm(jrpc_conn_t *c)
{
    uint64_t due = c->read_at + c->loop->cfg->body_timeout_ms;
    if (msg_stalled(c) && (c->timer_at == 0 || c->timer_at > due))
        conn_arm(c);
}

/* After a feed: a message left incomplete must average min_body_rate once it has taken
 * body_timeout, as an HTTP body must (src/http/parse.c), and the timer must see body_timeout
 * after this read. The caller brings the connection up to date. */
static void msg_watch(jrpc_conn_t *c)
{
    uint64_t since = 0, got = jrpc__ws_session_pending(&c->sess, &since);
    if (got == 0 || c->closing || c->aborting || jrpc__ws_session_close_sent(&c->sess))
        return;
    const jrpc_config_t *cfg = c->loop->cfg;
    uint64_t took = c->sess.clock - since;
    if (took > cfg->body_timeout_ms && cfg->min_body_rate != 0 &&
        got * 1000 < (uint64_t)cfg->min_body_rate * took) {
        char reason[64]; /* 51 bytes at most: an unsigned has 10 digits */
        snprintf(reason, sizeof reason, "message slower than %u bytes/s", cfg->min_body_rate);
        msg_give_up(c, reason);
        return;
    }
    msg_arm(c);
}

/* The close handshake's bound while closing; else whatever conn_arm found due. */
static void on_timer(jrpc__sock_t *s)
{
    jrpc_conn_t *c = s->owner;
    if (c->aborting)
        return;
    if (c->closing) {
        conn_abort(c); /* the client did not finish the close handshake in time */
        return;
    }
    const jrpc_config_t *cfg = c->loop->cfg;
    uint64_t now = uv_now(&c->loop->uv);
    c->timer_at = 0;
    if (msg_stalled(c) && now - c->read_at >= cfg->body_timeout_ms) {
        msg_give_up(c, "message incomplete: no byte for body_timeout");
        conn_update(c);
        return;
    }
    if (cfg->ws_ping_ms != 0) {
        if (c->ping_at != 0 && now - c->ping_at >= cfg->ws_ping_ms) {
            conn_log(c, JRPC_LOG_INFO, "no answer to a ping for %u ms", cfg->ws_ping_ms);
            conn_abort(c); /* a dead peer will not read a close frame either */
            return;
        }
        if (c->ping_at == 0 && now - c->last_rx >= cfg->ws_ping_ms) {
            jrpc__ws_session_ping(&c->sess);
            c->ping_at = now;
        }
    }
    if (cfg->ws_idle_ms != 0 && now - c->last_msg >= cfg->ws_idle_ms) {
        conn_close(c, 1001, "idle timeout");
        return;
    }
    conn_arm(c);
    conn_update(c);
}

/* ---- Messages in the engine ------------------------------------------------------------------ */

/* Takes the pushes a subscription held off its list (their bytes leave c->out_bytes). */
static jrpc__ws_msg_t *held_take(jrpc_conn_t *c, jrpc_sub_t *sub)
{
    jrpc__ws_msg_t *m = sub->held;
    sub->held = sub->held_tail = NULL;
    jrpc__list_remove(&sub->holding);
    for (jrpc__ws_msg_t *h = m; h != NULL; h = h->next)
        out_bytes_sub(c, jrpc__ws_msg_cost(h));
    return m;
}

void jrpc__ws_conn_drop_held(jrpc_conn_t *c, jrpc_sub_t *sub)
{
    msg_list_free(c, held_take(c, sub));
}

void jrpc__ws_conn_drop(jrpc_conn_t *c)
{
    if (!c->aborting)
        conn_drop_unread(c);
}

/* The answer of message `seq` is queued: subscriptions it started may push now, and what they
 * held goes out right behind it. */
static void release_subs(jrpc_conn_t *c, uint64_t seq)
{
    jrpc__list_t *it = c->holding.next;
    while (it != &c->holding && !c->aborting) {
        jrpc_sub_t *sub = JRPC__CONTAINER_OF(it, jrpc_sub_t, holding);
        it = it->next;
        if (sub->msg_seq != seq)
            continue;
        sub->answered = 1;
        jrpc__ws_msg_t *m = held_take(c, sub);
        while (m != NULL) {
            jrpc__ws_msg_t *next = m->next;
            out_frame(c, m, JRPC__WS_TEXT);
            m = next;
        }
    }
}

/* The engine's answer for message m (made at once, or later through conn_on_done). */
static void conn_answered(jrpc_conn_t *c, jrpc__ws_msg_t *m, jrpc__answer_t *ans)
{
    if (ans->has_sum)
        conn_log_answer(c, m, ans);
    /* Its answer goes to the output queue now (written at once unless the socket is full), or,
     * for a message of notifications only, its last call has finished. */
    if (m->t0 != 0 && c->loop->io->timed)
        jrpc__hist_dur(&c->loop->stats.req_dur[JRPC__TR_WS], (uv_hrtime() - m->t0) / 1000);
    jrpc__list_remove(&m->link);
    uint64_t seq = m->seq;
    m->req = NULL;
    if (ans->body.len == 0) {
        msg_put(c, m); /* notifications only */
    } else {
        m->body = ans->body; /* take the bytes */
        jrpc_buf_init(&ans->body);
        out_frame(c, m, m->binary ? JRPC__WS_BINARY : JRPC__WS_TEXT);
    }
    if (!jrpc__list_empty(&c->holding))
        release_subs(c, seq);
}

static void conn_on_done(jrpc__answer_t *ans, void *ud)
{
    jrpc__ws_msg_t *m = ud;
    jrpc_conn_t *c = m->conn;
    conn_answered(c, m, ans);
    conn_update(c);
}

/* The engine freed a request of this connection: the reference it held for jrpc_call_conn. */
static void conn_req_freed(void *data)
{
    jrpc_conn_unref(data);
}

/* At ws_max_inflight calls not finished (answered or not), or holding memory while the server
 * is at max_memory: no new message starts. */
static int conn_at_bound(const jrpc_conn_t *c)
{
    const jrpc__acct_t *a = c->acct;
    return a->calls >= c->loop->cfg->ws_max_inflight ||
           (a->bytes != 0 && jrpc__io_mem_full(c->loop->io)) ||
           (a->calls != 0 && jrpc__io_calls_full(c->loop->io));
}

/* Hands a received message to the engine; the caller brings the connection up to date. */
static void conn_start(jrpc_conn_t *c, jrpc__ws_msg_t *m)
{
    char *body = m->body.ptr;
    size_t len = m->body.len;
    jrpc_buf_init(&m->body);
    m->kind = JRPC__WS_M_RUNNING;
    c->nmsgs++;
    m->req = NULL;
    jrpc__req_t *r = jrpc__req_new(c->loop, body, len, c, c->acct, conn_on_done, m);
    if (r != NULL && c->has_auth)
        jrpc__req_auth(r, &c->auth);
    if (r != NULL && jrpc__req_cleanup_add(r, conn_req_freed, jrpc_conn_ref(c)) != 0) {
        jrpc_conn_unref(c);
        jrpc__req_detach(r); /* frees it: nothing ran */
        r = NULL;
    }
    if (r == NULL) { /* out of memory; body was freed */
        msg_put(c, m);
        c->sess.failed = 1;
        return;
    }
    /* In flight (with its number) before anything runs: a handler that subscribes inline finds
     * its message unanswered and holds its pushes until the answer is queued. */
    m->seq = jrpc__req_seq(r);
    jrpc__list_insert_tail(&c->inflight, &m->link);
    jrpc__answer_t ans;
    if (jrpc__req_run(r, c->loop->cfg->max_batch_ws, &ans) == JRPC__REQ_DONE) {
        conn_answered(c, m, &ans);
        jrpc_buf_free(&ans.body); /* taken unless empty */
        return;
    }
    if (c->closing || c->aborting) {
        jrpc__list_remove(&m->link);
        jrpc__req_detach(r);
        msg_put(c, m);
        return;
    }
    m->req = r;
}

/* A whole message arrived (inside a feed): to the engine, or kept when the connection is at its
 * bound of calls in flight, and reading stops. */
static void conn_on_message(void *ud, char *msg, size_t len, int binary)
{
    jrpc_conn_t *c = ud;
    if (c->closing || c->aborting) {
        free(msg);
        return;
    }
    if (c->sess.msg_deflated) {
        jrpc_buf_t plain;
        if (pmd_inflate(c, msg, len, &plain) != 0)
            return;
        if (!binary && !jrpc__ws_utf8_valid(plain.ptr != NULL ? plain.ptr : "", plain.len)) {
            jrpc_buf_free(&plain);
            jrpc__ws_session_fail(&c->sess, 1007, "text message is not UTF-8");
            return;
        }
        msg = plain.ptr != NULL ? plain.ptr : malloc(1);
        len = plain.len;
        if (msg == NULL) {
            c->sess.failed = 1;
            return;
        }
    }
    c->last_msg = uv_now(&c->loop->uv);
    jrpc__ctr_add(&c->loop->stats.ws_in, 1);
    jrpc__ws_msg_t *m = msg_get(c);
    if (m == NULL) {
        free(msg);
        c->sess.failed = 1;
        return;
    }
    m->body.ptr = msg;
    m->body.len = m->body.cap = len;
    m->binary = (uint8_t)binary;
    /* From its arrival, so time spent waiting at the connection's bound counts too. */
    m->t0 = c->log || c->loop->io->timed ? uv_hrtime() : 0;
    if (c->waiting != NULL || conn_at_bound(c)) {
        m->kind = JRPC__WS_M_WAITING;
        jrpc__ws_fifo_push(&c->waiting, &c->waiting_tail, m);
        c->sess.paused = 1;
        return;
    }
    conn_start(c, m);
    if (conn_at_bound(c))
        c->sess.paused = 1;
}

static const jrpc__ws_session_cbs_t session_cbs = {conn_on_message, conn_output};

/* ---- Reading --------------------------------------------------------------------------------- */

static size_t conn_feed(jrpc_conn_t *c, const char *p, size_t n)
{
    c->sess.clock = uv_now(&c->loop->uv);
    c->in_feed = 1;
    size_t used = jrpc__ws_session_feed(&c->sess, p, n);
    c->in_feed = 0;
    msg_watch(c);
    return used;
}

static void on_read(jrpc__sock_t *s, ssize_t nread, const uv_buf_t *buf)
{
    jrpc_conn_t *c = s->owner;
    if (nread == 0 || c->aborting)
        return;
    if (nread < 0) {
        /* The client ended its stream or reset it: after a close handshake that is how it ends;
         * before, the client left without one. Either way nothing more can be said. */
        conn_abort(c);
        return;
    }
    c->last_rx = c->read_at = uv_now(&c->loop->uv);
    c->ping_at = 0;
    size_t len = (size_t)nread;
    size_t used = conn_feed(c, buf->base, len);
    /* Paused at the bound with bytes left: keep them for when calls drain. */
    if (used < len && !c->aborting && stash_keep(c, buf->base + used, len - used) != 0)
        return;
    conn_update(c);
}

/* Brings the connection up to date after anything happened: starts kept messages while under
 * the bound, feeds kept bytes, follows the close handshake, reads or not, writes what is ready.
 * Re-entrant calls (an answer arriving while it runs) leave the work to the call on the stack. */
static void conn_update(jrpc_conn_t *c)
{
    if (c->aborting || c->in_feed || c->in_update)
        return;
    c->in_update = 1;
    for (;;) {
        if (c->aborting)
            break;
        if (c->sess.failed) {
            conn_abort(c);
            break;
        }
        if (!c->closing && jrpc__ws_session_close_sent(&c->sess))
            conn_closing(c);
        if (c->closing) {
            c->sess.paused = 0;
        } else if (c->waiting != NULL && !conn_at_bound(c)) {
            conn_start(c, jrpc__ws_fifo_pop(&c->waiting, &c->waiting_tail));
            continue;
        } else {
            c->sess.paused = c->waiting != NULL || conn_at_bound(c);
        }
        size_t kept;
        const char *p = jrpc__sock_kept(c->sock, &kept);
        if (p != NULL && !c->sess.paused && !c->aborting) {
            jrpc__sock_kept_used(c->sock, conn_feed(c, p, kept));
            continue;
        }
        break;
    }
    c->in_update = 0;
    if (c->aborting)
        return;
    /* Paused at the bound: the next release of what its requests hold brings it back. */
    jrpc__acct_wait(c->acct, c->sess.paused && !c->closing ? on_acct_released : NULL);
    if (c->draining && !c->closing && c->waiting == NULL && jrpc__list_empty(&c->inflight)) {
        /* Server stop: every answer is queued; say why we go (RFC 6455 §7.4.1). */
        jrpc__ws_session_close(&c->sess, 1001, "server shutting down");
        if (c->sess.failed) {
            conn_abort(c);
            return;
        }
        conn_closing(c);
    }
    if (c->closing && c->shut_done && jrpc__ws_session_close_received(&c->sess)) {
        conn_abort(c); /* both close frames went: the server closes the TCP connection first */
        return;
    }
    int want = !c->sess.paused && !(c->draining && !c->closing);
    int resumed = want && !c->sock->reading;
    if (jrpc__sock_read(c->sock, want) != 0) {
        conn_abort(c);
        return;
    }
    if (resumed) { /* the client could not send while we did not read: its pause starts now */
        c->read_at = uv_now(&c->loop->uv);
        msg_arm(c);
    }
    conn_flush(c);
}

/* ---- Pushes ---------------------------------------------------------------------------------- */

/* Whether request `seq` of this connection is still without its answer. */
static int msg_in_flight(const jrpc_conn_t *c, uint64_t seq)
{
    for (const jrpc__list_t *it = c->inflight.next; it != &c->inflight; it = it->next)
        if (JRPC__CONTAINER_OF(it, jrpc__ws_msg_t, link)->seq == seq)
            return 1;
    return 0;
}

int jrpc__ws_conn_push(jrpc_conn_t *c, jrpc__ws_msg_t *m)
{
    m->conn = c;
    if (c->closing || c->aborting) {
        msg_put(c, m);
        return JRPC_ECLOSED;
    }
    jrpc_sub_t *sub = m->sub;
    if (sub != NULL && !sub->answered) {
        if (msg_in_flight(c, sub->msg_seq)) {
            /* The subscribe call's answer has not gone out yet: the client would not know the
             * id. Hold the push; release_subs sends it right after the answer. */
            if (out_full(c)) {
                msg_put(c, m);
                return JRPC_ECLOSED;
            }
            m->kind = JRPC__WS_M_OUT;
            jrpc__ws_fifo_push(&sub->held, &sub->held_tail, m);
            if (jrpc__list_empty(&sub->holding))
                jrpc__list_insert_tail(&c->holding, &sub->holding);
            out_bytes_add(c, jrpc__ws_msg_cost(m));
            return 0;
        }
        sub->answered = 1;
    }
    out_frame(c, m, JRPC__WS_TEXT);
    if (c->aborting)
        return JRPC_ECLOSED; /* it found ws_max_queue reached: the client is dropped */
    conn_update(c);
    return 0;
}

/* ---- The io loop's entry points -------------------------------------------------------------- */

static void on_sock_drain(jrpc__sock_t *s);
static void on_sock_close_now(jrpc__sock_t *s);

static const jrpc__sock_ops_t sock_ops = {
    .read = on_read,
    .timeout = on_timer,
    .drain = on_sock_drain,
    .close_now = on_sock_close_now,
    .closed = on_closed,
};

int jrpc__ws_accept(jrpc__sock_t *s, const jrpc__ws_hs_t *hs, const char *rest, size_t n,
                    const char *client, const jrpc__auth_t *auth)
{
    jrpc__loop_t *loop = s->loop;
    const jrpc_config_t *cfg = loop->cfg;
    if (loop->stopping)
        return JRPC_EBUSY;
    jrpc_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return JRPC_ENOMEM;
    c->acct = jrpc__acct_new(loop, c);
    if (c->acct == NULL) {
        free(c);
        return JRPC_ENOMEM;
    }
    jrpc__ws_session_init(&c->sess, cfg->max_ws_message, &session_cbs, c);
    if (hs->pmd) { /* offered, and src/http looked only when ws_deflate is on */
        c->pmd = 1;
        c->sess.rsv1_ok = 1;
        c->pmd_snct = hs->pmd_snct;
        c->pmd_cnct = hs->pmd_cnct;
        c->pmd_sbits = hs->pmd_sbits != 0 ? hs->pmd_sbits : 15;
        c->pmd_cbits = hs->pmd_cbits >= 8 ? hs->pmd_cbits : 15;
    }
    atomic_init(&c->refs, 1);
    uv_mutex_init(&c->lock);
    jrpc__list_init(&c->subs);
    jrpc__list_init(&c->inflight);
    jrpc__list_init(&c->holding);
    jrpc__list_init(&c->ended);
    c->tid = loop->tid;
    c->loop = loop;
    c->cfg = cfg;
    c->log = cfg->log_cb != NULL && cfg->log_level >= JRPC_LOG_INFO;
    if (auth != NULL) {
        c->auth = *auth;
        c->has_auth = 1;
    }
    c->last_rx = c->last_msg = c->read_at = uv_now(&loop->uv);
    jrpc__ctr_add(&loop->stats.conns[JRPC__TR_WS], 1);
    if (c->pmd) /* on_closed counts it out */
        jrpc__ctr_add(&loop->stats.ws_deflate[0], 1);
    /* From here the socket is ours: the hand-over is this pointer (src/http keeps nothing). */
    c->sock = s;
    jrpc__sock_own(s, &sock_ops, c);
    jrpc__sock_timer(s, 0);    /* src/http's timeouts end here */
    if (cfg->log_cb != NULL) { /* warnings name the peer too, not only the INFO lines */
        size_t cap = sizeof c->peer - sizeof " websocket ";
        size_t pn = client != NULL ? (size_t)snprintf(c->peer, cap, "%s", client)
                                   : jrpc__peer_name(&s->tcp, c->peer, cap);
        if (pn >= cap)
            pn = cap - 1;
        memcpy(c->peer + pn, " websocket ", sizeof " websocket ");
        c->peer_len = pn + sizeof " websocket " - 1;
        c->client_len = pn;
        /* As HTTP access lines do: behind a trusted proxy, name it after the client. */
        if (client != NULL)
            jrpc__peer_name(&s->tcp, c->proxy, sizeof c->proxy);
    }
    char answer[JRPC__WS_101_MAX];
    /* The session's batch cap as the 101 says it: clients size their batches by it. */
    unsigned cap = jrpc__auth_max_batch(c->has_auth ? &c->auth : NULL, cfg->max_batch_ws, 1);
    size_t alen = jrpc__ws_hs_answer(hs, cap, answer);
    if (conn_output(c, (const uint8_t *)answer, alen) != 0) {
        conn_abort(c);
        return 0; /* the socket is ours now; it just closes */
    }
    conn_arm(c);
    if (c->log)
        conn_log(c, JRPC_LOG_INFO, "open on %s%s%s", cfg->path, c->proxy[0] ? " proxy=" : "",
                 c->proxy);
    if (n != 0) {
        /* Frames sent right behind the request, before our answer (RFC 6455 says a client waits;
         * not every one does): read where they lie, kept only if the session pauses. */
        size_t used = conn_feed(c, rest, n);
        if (used < n && !c->aborting && stash_keep(c, rest + used, n - used) != 0)
            return 0;
    }
    conn_update(c);
    return 0;
}

/* Stop began: no new messages; once those in the engine are answered, close with 1001. */
static void on_sock_drain(jrpc__sock_t *s)
{
    jrpc_conn_t *c = s->owner;
    if (c->aborting || c->closing)
        return;
    c->draining = 1;
    conn_update(c);
}

/* Drain time is over: close now. */
static void on_sock_close_now(jrpc__sock_t *s)
{
    jrpc_conn_t *c = s->owner;
    if (c->aborting)
        return;
    if (!c->closing) {
        /* Best effort: the close frame goes out if the socket takes it now. */
        jrpc__ws_session_close(&c->sess, 1001, "server shutting down");
        conn_flush(c);
    }
    conn_abort(c);
}
