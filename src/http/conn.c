/* SPDX-License-Identifier: MIT */
/* conn.c — HTTP/1.1 connections: accept, read, the pipeline of requests (answered strictly in
 * arrival order, bounded in depth and in-flight body bytes), writes, the hand-off of an upgraded
 * socket to src/ws, and the ways out: a hard close (errors, drain over), a lingering close after
 * a last answer (Connection: close, limits, stop) and the peer's EOF. Nothing is freed inside its
 * own callback stack: closing marks the connection and the last uv_close callback frees it (redis
 * freeClientAsync). */
#include "../io/zstream.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void on_read(jrpc__sock_t *s, ssize_t nread, const uv_buf_t *buf);
static void conn_resume(jrpc__http_conn_t *c);
static void conn_eof(jrpc__http_conn_t *c);

/* Something the connection held was released while it waited at a bound (acct.c posts this). */
static void on_acct_released(jrpc__acct_t *a, void *owner)
{
    (void)a;
    jrpc__http_conn_t *c = owner;
    conn_resume(c);
    if (!c->closing)
        jrpc__http_flush(c);
}

/* ---- Small helpers --------------------------------------------------------------------------- */

/* http_parser_pause asserts when the parser is in an error state: pause only a healthy one. */
static void parser_pause(jrpc__http_conn_t *c)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_OK)
        http_parser_pause(&c->parser, 1);
}

static void stash_drop(jrpc__http_conn_t *c)
{
    jrpc__sock_kept_used(c->sock, SIZE_MAX);
}

/* Keeps the n bytes at p (they live in the loop's read buffer) with the socket; 0, or -1 after
 * closing on out of memory. */
static int stash_keep(jrpc__http_conn_t *c, const char *p, size_t n)
{
    if (jrpc__sock_keep(c->sock, p, n) == 0)
        return 0;
    jrpc__http_close_now(c);
    return -1;
}

/* The rest of a body of known length is read where it belongs (no copy out of the loop's
 * buffer). The read is at most what the body still lacks, so no byte of a following request can
 * land in it. */
static void on_alloc(jrpc__sock_t *s, uv_buf_t *buf)
{
    jrpc__http_conn_t *c = s->owner;
    jrpc__http_req_t *hr = c->cur;
    if (hr != NULL && hr->direct && hr->in_cap - hr->in_len >= JRPC__HTTP_DIRECT_MIN) {
        buf->base = hr->in + hr->in_len;
        buf->len = hr->in_cap - hr->in_len;
    }
}

static void conn_read_start(jrpc__http_conn_t *c)
{
    if (c->closing)
        return;
    if (jrpc__sock_read(c->sock, 1) != 0)
        jrpc__http_close_now(c);
}

static void conn_read_stop(jrpc__http_conn_t *c)
{
    jrpc__sock_read(c->sock, 0);
}

int jrpc__http_over_bound(const jrpc__http_conn_t *c)
{
    const jrpc__acct_t *a = c->acct;
    const jrpc_config_t *cfg = c->loop->cfg;
    return c->depth >= JRPC__HTTP_PIPELINE_MAX || a->reqs >= JRPC__HTTP_PIPELINE_MAX ||
           a->calls >= cfg->http_max_inflight || a->body >= cfg->max_body ||
           c->unsent_bytes >= cfg->max_unsent ||
           (a->bytes != 0 && jrpc__io_mem_full(c->loop->io)) ||
           (a->calls != 0 && jrpc__io_calls_full(c->loop->io));
}

/* Frees what a request holds besides its struct: the body and the answer. */
static void req_drop_bufs(jrpc__http_req_t *hr)
{
    if (hr->ip_counted)
        jrpc__http_unforward(hr->conn, hr);
    if (hr->auth_val != NULL) {
        jrpc__loop_free(hr->conn->loop, hr->auth_val, JRPC__HTTP_AUTH_MAX);
        hr->auth_val = NULL;
    }
    if (hr->x != NULL) {
        jrpc__loop_free(hr->conn->loop, hr->x, sizeof(*hr->x));
        hr->x = NULL;
    }
    free(hr->in);
    hr->in = NULL;
    jrpc_buf_free(&hr->out);
    if (hr->st != NULL) {
        jrpc_buf_free(&hr->st->sending);
        if (hr->st->gz != NULL) {
            jrpc__zs_end(hr->st->gz);
            free(hr->st->gz);
        }
        jrpc__loop_free(hr->conn->loop, hr->st, sizeof(*hr->st));
        hr->st = NULL;
    }
    if (hr->out_held != 0) {
        jrpc__http_conn_t *c = hr->conn;
        jrpc__acct_held(c->loop, c->acct, -(ptrdiff_t)hr->out_held);
        c->unsent_bytes -= hr->out_held;
        hr->out_held = 0;
    }
}

/* ---- Closing --------------------------------------------------------------------------------- */

/* Frees what the connection holds and the connection (its socket is closed, or handed over). */
static void conn_free(jrpc__http_conn_t *c)
{
    if (c->stream_posted) {
        c->free_posted = 1; /* the post still points here: it frees the connection */
        return;
    }
    jrpc__loop_t *loop = c->loop;
    while (c->head != NULL) {
        jrpc__http_req_t *hr = c->head;
        c->head = hr->next;
        req_drop_bufs(hr);
        jrpc__loop_free(loop, hr, sizeof(*hr));
    }
    jrpc__http_url_give(c);
    jrpc__http_gunzip_end(c); /* before the account it counts in */
    jrpc__acct_leave(c->acct);
    if (!c->admin)
        jrpc__ctr_add(&loop->stats.closed[JRPC__TR_HTTP], 1);
    free(c);
}

static void on_closed(jrpc__sock_t *s)
{
    conn_free(s->owner);
}

static void conn_reaped(jrpc__post_t *p)
{
    conn_free(JRPC__CONTAINER_OF(p, jrpc__http_conn_t, reap));
}

void jrpc__http_close_now(jrpc__http_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    /* The engine keeps running detached calls and frees them itself. */
    for (jrpc__http_req_t *hr = c->head; hr != NULL; hr = hr->next) {
        if ((hr->state == JRPC__HR_RUNNING || hr->state == JRPC__HR_STREAMING) && hr->rpc != NULL) {
            jrpc__req_detach(hr->rpc);
            hr->rpc = NULL;
        }
    }
    parser_pause(c); /* when called from a parser callback, http_parser_execute returns */
    /* Pending writes complete with UV_ECANCELED before on_closed; they find c->closing set. */
    jrpc__sock_close(c->sock);
}

/* The connection's one timer: the linger bound once lingering, else what jrpc__http_arm set. */
static void on_conn_timeout(jrpc__sock_t *s)
{
    jrpc__http_conn_t *c = s->owner;
    if (c->closing)
        return;
    if (c->lingering || jrpc__sock_queued(s) > 0) {
        /* Lingering is over, or the client stopped reading its answers (send_timeout). */
        if (!c->lingering)
            jrpc__stats_limit(&c->loop->stats, JRPC__LIMIT_SEND_TIMEOUT);
        jrpc__http_close_now(c);
    } else if (c->cur != NULL) {
        jrpc__stats_limit(&c->loop->stats, JRPC__LIMIT_REQUEST_TIMEOUT);
        jrpc__http_refuse(c, 408, JRPC_CODE_LIMIT_EXCEEDED,
                          c->body_start ? "request body timed out" : "request head timed out");
        jrpc__http_flush(c);
    } else if (c->head == NULL) {
        jrpc__http_close_now(c); /* idle keep-alive connection */
    }
}

void jrpc__http_arm(jrpc__http_conn_t *c)
{
    if (c->closing || c->lingering)
        return;
    const jrpc_config_t *cfg = c->loop->cfg;
    uint64_t now = uv_now(&c->loop->uv), ms;
    if (jrpc__sock_queued(c->sock) > 0) {
        ms = cfg->send_timeout_ms;
    } else if (c->cur != NULL && c->body_start == 0) {
        uint64_t end = c->head_start + cfg->header_timeout_ms; /* absolute: no trickling */
        ms = end > now ? end - now : 1;
    } else if (c->cur != NULL) {
        ms = cfg->body_timeout_ms;
    } else if (c->head == NULL) {
        ms = cfg->idle_timeout_ms;
    } else {
        ms = 0; /* answers are being computed: the engine's deadline bounds them */
    }
    jrpc__sock_timer(c->sock, ms);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    jrpc__sock_t *s = req->handle->data;
    jrpc__http_conn_t *c = s->owner;
    if (!c->closing && status < 0)
        jrpc__http_close_now(c);
}

/* The last answer is written and nothing more will be: send FIN, then keep reading (and
 * discarding) until the client closes or the linger time passes. Closing at once while the client
 * still sends would make our kernel answer its bytes with a reset, which can destroy the answer
 * before the client read it (the 413 for an upload still in progress). */
static void conn_finish(jrpc__http_conn_t *c)
{
    if (c->closing || c->lingering)
        return;
    if (c->eof) {
        jrpc__http_close_now(c);
        return;
    }
    c->lingering = 1;
    stash_drop(c);
    if (jrpc__sock_shutdown(c->sock, on_shutdown) != 0) {
        jrpc__http_close_now(c);
        return;
    }
    jrpc__sock_timer(c->sock, JRPC__HTTP_LINGER_MS);
    conn_read_start(c);
}

void jrpc__http_halt(jrpc__http_conn_t *c)
{
    c->halted = 1;
    parser_pause(c);
    if (!c->in_parse) {
        conn_read_stop(c);
        stash_drop(c);
    }
}

/* ---- Pipeline -------------------------------------------------------------------------------- */

int jrpc__http_url_take(jrpc__http_conn_t *c)
{
    if (c->url == NULL)
        c->url = jrpc__loop_alloc(c->loop, c->url_cap);
    return c->url != NULL ? 0 : -1;
}

void jrpc__http_url_give(jrpc__http_conn_t *c)
{
    jrpc__loop_free(c->loop, c->url, c->url_cap);
    c->url = NULL;
    c->url_len = 0; /* a refusal before the next request's first byte logs no URL */
}

jrpc__http_req_t *jrpc__http_req_push(jrpc__http_conn_t *c)
{
    jrpc__http_req_t *hr = jrpc__loop_alloc(c->loop, sizeof(*hr));
    if (hr == NULL)
        return NULL;
    /* Every field up to `wr` describes one request and starts out zero (an empty `out` too). */
    memset(hr, 0, offsetof(jrpc__http_req_t, wr));
    if (c->log || c->proxied) {
        hr->x = jrpc__loop_alloc(c->loop, sizeof(*hr->x));
        if (hr->x == NULL) {
            jrpc__loop_free(c->loop, hr, sizeof(*hr));
            return NULL;
        }
    }
    hr->conn = c;
    hr->state = JRPC__HR_PARSING;
    hr->kind = JRPC__HR_LOCAL;
    hr->method = -1;
    /* Per request, not per connection: a reload may have changed log_level. */
    c->log = c->loop->cfg->log_cb != NULL && c->loop->cfg->log_level >= JRPC_LOG_INFO;
    hr->t0 = c->log || c->timed ? uv_hrtime() : 0;
    if (c->tail != NULL)
        c->tail->next = hr;
    else
        c->head = hr;
    c->tail = hr;
    if (c->unsent == NULL)
        c->unsent = hr;
    c->depth++;
    c->cur = hr;
    return hr;
}

static void req_release(jrpc__http_conn_t *c, jrpc__http_req_t *hr)
{
    req_drop_bufs(hr);
    jrpc__loop_free(c->loop, hr, sizeof(*hr));
}

/* The write carrying first..last is complete: free every request from the head whose answer is
 * written (writes complete in byte order, so that is a prefix of the pipeline). */
static void conn_written(jrpc__http_conn_t *c, jrpc__http_req_t *first, jrpc__http_req_t *last)
{
    for (jrpc__http_req_t *hr = first;; hr = hr->next) {
        hr->state = JRPC__HR_DONE;
        if (hr == last)
            break;
    }
    while (c->head != NULL && c->head->state == JRPC__HR_DONE) {
        jrpc__http_req_t *hr = c->head;
        c->head = hr->next;
        if (c->head == NULL)
            c->tail = NULL;
        c->depth--;
        req_release(c, hr);
    }
}

static void conn_upgrade(jrpc__http_conn_t *c);

/* Answers left the pipeline: hand over an upgrade waiting for them, close after the last one, or
 * read on below the bound. */
static void conn_after_write(jrpc__http_conn_t *c)
{
    if (c->upgrade != NULL)
        conn_upgrade(c);
    else if (c->head == NULL && c->halted)
        conn_finish(c);
    else
        conn_resume(c);
}

static void on_write(uv_write_t *wr, int status)
{
    jrpc__http_req_t *last = JRPC__CONTAINER_OF(wr, jrpc__http_req_t, wr);
    jrpc__http_conn_t *c = last->conn;
    if (c->closing)
        return; /* on_close frees the pipeline */
    if (status < 0) {
        jrpc__http_close_now(c);
        return;
    }
    conn_written(c, wr->data, last);
    conn_after_write(c);
    jrpc__http_arm(c);
}

static void on_continue_written(uv_write_t *wr, int status)
{
    jrpc__http_conn_t *c = JRPC__CONTAINER_OF(wr, jrpc__http_req_t, cont_wr)->conn;
    if (!c->closing && status < 0)
        jrpc__http_close_now(c);
}

/* ---- Streamed answers ------------------------------------------------------------------------ */

/* Brings what hr's answer buffers hold (unwritten bytes, the piece in flight) up to date in the
 * connection's account and its max_unsent count. */
static void req_held_sync(jrpc__http_conn_t *c, jrpc__http_req_t *hr)
{
    size_t now = hr->out.cap + (hr->st != NULL ? hr->st->sending.cap : 0);
    ptrdiff_t d = (ptrdiff_t)now - (ptrdiff_t)hr->out_held;
    if (d == 0)
        return;
    jrpc__acct_held(c->loop, c->acct, d);
    c->unsent_bytes = (size_t)((ptrdiff_t)c->unsent_bytes + d);
    hr->out_held = now;
}

/* Appends data[0..n) to b as one chunk (RFC 9112 §7.1); nothing for n == 0. */
static void chunk_put(jrpc_buf_t *b, const char *data, size_t n)
{
    if (n == 0)
        return;
    char line[24];
    int k = snprintf(line, sizeof line, "%zx\r\n", n);
    jrpc_buf_append(b, line, (size_t)k);
    jrpc_buf_append(b, data, n);
    jrpc_buf_append(b, "\r\n", 2);
}

/* The bytes of hr->out as the next chunk (gzip-encoded first for a gzip answer, flushed so the
 * client can decode what it got; `last`: the encoder's end, then the last chunk). 0, or
 * JRPC_ENOMEM. */
static int stream_frame(jrpc__http_req_t *hr, jrpc_buf_t *framed, int last)
{
    jrpc_buf_t data = hr->out;
    jrpc_buf_init(&hr->out);
    if (hr->st->gz != NULL) {
        jrpc_buf_t z;
        jrpc_buf_init(&z);
        int rc =
            jrpc__zs_deflate(hr->st->gz, data.ptr, data.len, last ? Z_FINISH : Z_SYNC_FLUSH, &z);
        size_t plain = data.len;
        jrpc_buf_free(&data);
        if (rc != 0) {
            jrpc_buf_free(&z);
            return JRPC_ENOMEM;
        }
        jrpc__stats_t *stats = &hr->conn->loop->stats; /* the answer was counted at its head */
        jrpc__ctr_add(&stats->z_plain[JRPC__TR_HTTP][JRPC__Z_OUT], plain);
        jrpc__ctr_add(&stats->z_wire[JRPC__TR_HTTP][JRPC__Z_OUT], z.len);
        data = z;
    }
    hr->st->streamed += data.len;
    chunk_put(framed, data.ptr, data.len);
    if (last)
        jrpc_buf_append(framed, "0\r\n\r\n", 5);
    jrpc_buf_free(&data);
    return framed->err;
}

static void on_piece_written(uv_write_t *wr, int status)
{
    jrpc__http_req_t *hr = JRPC__CONTAINER_OF(wr, jrpc__http_stream_t, swr)->hr;
    jrpc__http_conn_t *c = hr->conn;
    if (c->closing)
        return; /* conn_free frees the piece */
    if (status < 0) {
        jrpc__http_close_now(c);
        return;
    }
    hr->piece_writing = 0;
    jrpc_buf_free(&hr->st->sending);
    req_held_sync(c, hr);
    jrpc__http_flush(c);
}

/* The order a batch asked for: its Jrpc-Batch-Order, else batch_order. */
static unsigned req_batch_order(const jrpc__http_conn_t *c, const jrpc__http_req_t *hr)
{
    return hr->order != 0 ? hr->order - 1u : c->loop->cfg->batch_order;
}

/* Counts a batch answer, streamed or buffered, in jrpc_http_batch_answers_total. */
static void batch_count(jrpc__http_conn_t *c, const jrpc__http_req_t *hr, int streamed)
{
    jrpc__ctr_add(&c->loop->stats.batch_answers[streamed][req_batch_order(c, hr) != 0], 1);
}

/* hr is the oldest unwritten answer, still running, with pieces in out and no piece in flight:
 * the head goes first (Transfer-Encoding: chunked; this commits the answer to streaming), then
 * the pieces as one chunk. 0, or -1 after closing. */
static int stream_write(jrpc__http_conn_t *c, jrpc__http_req_t *hr)
{
    uv_buf_t bufs[2];
    unsigned n = 0;
    size_t total = 0;
    if (!hr->chunked) {
        hr->chunked = 1;
        hr->state = JRPC__HR_STREAMING;
        hr->status = 200;
        batch_count(c, hr, 1); /* now, so that one whose client leaves mid-stream counts too */
        if (hr->gz_ok) {
            /* The size is not known in advance: a client that accepts gzip gets it. */
            jrpc__http_stream_t *st = hr->st;
            st->gz = malloc(sizeof(*st->gz));
            if (st->gz != NULL &&
                jrpc__zs_deflate_init(st->gz, c->loop, c->acct, (int)c->loop->cfg->gzip_level,
                                      15 + 16, 8) != 0) {
                free(st->gz);
                st->gz = NULL; /* out of memory: plain */
            }
            hr->gz_out = st->gz != NULL;
            if (hr->gz_out) /* its bytes are counted as each chunk is encoded (stream_frame) */
                jrpc__ctr_add(&c->loop->stats.z_msgs[JRPC__TR_HTTP][JRPC__Z_OUT], 1);
        }
        jrpc__http_build_head(hr, 0);
        bufs[n].base = hr->head;
        bufs[n].len = hr->head_len;
        total += hr->head_len;
        n++;
    }
    jrpc_buf_t *sending = &hr->st->sending;
    if (stream_frame(hr, sending, 0) != 0) {
        jrpc__http_close_now(c);
        return -1;
    }
    bufs[n].base = sending->ptr;
    bufs[n].len = sending->len;
    total += sending->len;
    n++;
    req_held_sync(c, hr);
    int rc = jrpc__sock_write(c->sock, &hr->st->swr, bufs, n, total, on_piece_written);
    if (rc < 0) {
        jrpc__http_close_now(c);
        return -1;
    }
    if (rc == 1) {
        jrpc_buf_free(sending);
        req_held_sync(c, hr);
    } else {
        hr->piece_writing = 1;
    }
    return 0;
}

static void on_stream_posted(jrpc__post_t *p)
{
    jrpc__http_conn_t *c = JRPC__CONTAINER_OF(p, jrpc__http_conn_t, stream_post);
    c->stream_posted = 0;
    if (c->free_posted) {
        conn_free(c);
        return;
    }
    if (c->closing)
        return;
    /* The pieces the engine has for the batches still running: kept in out, each after what
     * came before it. */
    for (jrpc__http_req_t *hr = c->unsent; hr != NULL; hr = hr->next) {
        if (!hr->stream || hr->rpc == NULL)
            continue;
        if (jrpc__req_stream_take(hr->rpc, &hr->out) != 0) {
            jrpc__http_close_now(c); /* out of memory: the answer cannot be whole */
            return;
        }
        req_held_sync(c, hr);
    }
    jrpc__http_flush(c);
}

/* The engine has a piece of hr's answer (jrpc__req_stream): taken and written from the end of
 * the loop's turn, so that items finished together leave together and a batch that finishes
 * within this turn is still written in one piece with a Content-Length. */
static void on_req_ready(void *ud)
{
    jrpc__http_req_t *hr = ud;
    jrpc__http_conn_t *c = hr->conn;
    if (!c->stream_posted && !c->closing) {
        c->stream_posted = 1;
        c->stream_post.cb = on_stream_posted;
        jrpc__loop_post(c->loop, &c->stream_post);
    }
}

/* Counts an answer on its way out: its status, and how long it took from its first byte. */
static void req_count(jrpc__http_conn_t *c, const jrpc__http_req_t *hr)
{
    jrpc__stats_t *st = &c->loop->stats;
    jrpc__ctr_add(&st->http_status[hr->status < 600 ? hr->status : 0], 1);
    if (hr->t0 != 0 && c->timed && (hr->kind == JRPC__HR_RPC || hr->kind == JRPC__HR_REST))
        jrpc__hist_dur(&st->req_dur[hr->kind == JRPC__HR_REST ? JRPC__TR_REST : JRPC__TR_HTTP],
                       (uv_hrtime() - hr->t0) / 1000);
}

void jrpc__http_flush(jrpc__http_conn_t *c)
{
    /* While parsing, answers of inline calls pile up; they leave together once the parse of this
     * read is over (one writev for a whole pipelined read). */
    if (c->closing || c->in_parse)
        return;
    uv_buf_t bufs[2 * JRPC__HTTP_COALESCE_MAX];
    int written = 0;
    for (;;) {
        unsigned n = 0, k = 0;
        size_t total = 0;
        jrpc__http_req_t *first = c->unsent, *last = NULL;
        while (c->unsent != NULL && c->unsent->state == JRPC__HR_READY &&
               k < JRPC__HTTP_COALESCE_MAX) {
            jrpc__http_req_t *hr = c->unsent;
            if (hr->chunked) {
                /* A streamed answer's end: what is left, the last chunk. Its head went. */
                jrpc_buf_t framed;
                jrpc_buf_init(&framed);
                if (stream_frame(hr, &framed, 1) != 0) {
                    jrpc_buf_free(&framed);
                    jrpc__http_close_now(c);
                    return;
                }
                hr->out = framed;
                req_held_sync(c, hr);
            } else {
                /* Halted: no request follows the newest one, so its answer says the connection
                 * ends. */
                int closing = hr->close_after || (c->halted && hr->next == NULL);
                jrpc__http_build_head(hr, closing);
                bufs[n].base = hr->head;
                bufs[n].len = hr->head_len;
                total += hr->head_len;
                n++;
            }
            if (!c->admin)
                req_count(c, hr);
            if (hr->out.len != 0 && !hr->head_only) {
                bufs[n].base = hr->out.ptr;
                bufs[n].len = hr->out.len;
                total += hr->out.len;
                n++;
            }
            hr->state = JRPC__HR_WRITING;
            if (c->log)
                jrpc__http_log(c, hr);
            c->unsent = hr->next;
            last = hr;
            k++;
        }
        if (last == NULL)
            break;
        last->wr.data = first;
        int rc = jrpc__sock_write(c->sock, &last->wr, bufs, n, total, on_write);
        if (rc < 0) {
            jrpc__http_close_now(c);
            return;
        }
        if (rc == 1) {
            conn_written(c, first, last);
            written = 1;
        }
    }
    /* The oldest unwritten answer is a batch being streamed with pieces ready. */
    jrpc__http_req_t *s = c->unsent;
    if (s != NULL && s->stream && !s->piece_writing && s->out.len != 0 &&
        (s->state == JRPC__HR_RUNNING || s->state == JRPC__HR_STREAMING) && stream_write(c, s) != 0)
        return;
    /* The request being received waits for 100 Continue, and every earlier answer is queued
     * before it: the interim answer may go now without breaking the order. */
    jrpc__http_req_t *hr = c->unsent;
    if (hr != NULL && hr->state == JRPC__HR_PARSING && hr->want_continue && !hr->continue_sent) {
        uv_buf_t b;
        b.base = (char *)continue_line; /* libuv only reads it */
        b.len = sizeof(continue_line) - 1;
        hr->continue_sent = 1;
        if (jrpc__sock_write(c->sock, &hr->cont_wr, &b, 1, b.len, on_continue_written) < 0) {
            jrpc__http_close_now(c);
            return;
        }
    }
    if (written)
        conn_after_write(c);
    jrpc__http_arm(c);
}

/* ---- Engine ---------------------------------------------------------------------------------- */

/* The engine's answer for hr (made at once, or later through on_req_done). */
static void req_answered(jrpc__http_req_t *hr, jrpc__answer_t *ans)
{
    jrpc__http_conn_t *c = hr->conn;
    hr->items = ans->items;
    if (ans->has_sum && hr->x != NULL) {
        hr->x->sum = ans->sum;
        hr->has_sum = 1;
    }
    hr->rpc = NULL;
    hr->in_len = 0;
    if (hr->out.len == 0) {
        jrpc_buf_free(&hr->out);
        hr->out = ans->body; /* take the bytes; the engine frees an empty buffer */
        jrpc_buf_init(&ans->body);
    } else if (jrpc_buf_append(&hr->out, ans->body.ptr, ans->body.len) != 0) {
        /* Pieces of a streamed answer came before: this is the rest. Out of memory: */
        jrpc__http_close_now(c);
        return;
    }
    if (ans->is_batch && !hr->chunked) /* a streamed one was counted when its head went */
        batch_count(c, hr, 0);
    if (!hr->chunked) {
        /* Nothing to answer (notifications) is a 204, unless the server refused them (503). */
        hr->status = hr->out.len != 0 || ans->status != 200 ? (unsigned)ans->status : 204;
        jrpc__http_gzip_answer(c, hr);
    }
    hr->retry_after = ans->retry_after;
    req_held_sync(c, hr);
    hr->state = JRPC__HR_READY;
}

static void on_req_done(jrpc__answer_t *ans, void *ud)
{
    jrpc__http_req_t *hr = ud;
    jrpc__http_conn_t *c = hr->conn;
    req_answered(hr, ans);
    jrpc__http_flush(c);
    conn_resume(c);
}

/* The engine could not take hr: a 500 in its place, and the connection ends after it. */
static void req_run_failed(jrpc__http_conn_t *c, jrpc__http_req_t *hr)
{
    hr->in_len = 0;
    jrpc__http_answer_error(hr, 500, JRPC_CODE_INTERNAL_ERROR, "out of memory");
    hr->close_after = 1;
    jrpc__http_halt(c);
}

/* A batch's cap, for its answer's Jrpc-Max-Batch (clients size their next batches by it), or 0
 * for a single call. One byte decides: a single call costs a comparison, nothing more. */
static uint32_t req_batch_cap(const jrpc__http_conn_t *c, const jrpc__http_req_t *hr,
                              const char *body, size_t len)
{
    if (hr->kind == JRPC__HR_REST) {
        if (!hr->rest_batch)
            return 0;
    } else {
        size_t i = 0;
        while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
            i++;
        if (i == len || body[i] != '[')
            return 0;
    }
    const jrpc__auth_t *auth = hr->key_state != JRPC__KEY_OFF ? &hr->auth : NULL;
    return jrpc__auth_max_batch(auth, c->loop->cfg->max_batch, 0);
}

void jrpc__http_req_run(jrpc__http_conn_t *c, jrpc__http_req_t *hr)
{
    char *body = hr->in;
    size_t len = hr->in_len;
    if (body == NULL) /* an empty body is passed on as is (the engine answers -32700) */
        body = malloc(1);
    hr->in = NULL;
    hr->in_cap = 0;
    hr->direct = 0;
    hr->want_continue = 0;
    if (body == NULL) {
        req_run_failed(c, hr);
        return;
    }
    jrpc__req_t *r = jrpc__req_new(c->loop, body, len, NULL, c->acct, on_req_done, hr);
    if (r == NULL) {
        req_run_failed(c, hr);
        return;
    }
    if (hr->key_state != JRPC__KEY_OFF)
        jrpc__req_auth(r, &hr->auth);
    if (hr->no_cache)
        jrpc__req_no_cache(r);
    hr->state = JRPC__HR_RUNNING;
    hr->in_len = len;
    hr->max_batch = req_batch_cap(c, hr, body, len);
    jrpc__answer_t ans;
    int rc = hr->kind == JRPC__HR_REST
                 ? jrpc__req_run_rest(r, hr->rest_method, hr->rest_method_len, hr->rest_batch, &ans)
                 : jrpc__req_run(r, c->loop->cfg->max_batch, &ans);
    if (rc == JRPC__REQ_DONE) {
        req_answered(hr, &ans); /* the caller (a parse, or a resume) flushes */
        return;
    }
    hr->rpc = r;
    if (!hr->http10 && (hr->st = jrpc__loop_alloc(c->loop, sizeof(*hr->st))) != NULL) {
        /* A batch still running streams its answer (no-op for a single call); HTTP/1.0 has no
         * chunked encoding and gets the whole answer, as does a request when out of memory. */
        unsigned order = req_batch_order(c, hr);
        memset(hr->st, 0, sizeof(*hr->st));
        hr->st->hr = hr;
        if (!jrpc__req_stream(r, (int)order, on_req_ready, &hr->out)) {
            jrpc__loop_free(c->loop, hr->st, sizeof(*hr->st)); /* a single call */
            hr->st = NULL;
            return;
        }
        hr->stream = 1;
        if (hr->out.err) {
            jrpc__http_close_now(c);
            return;
        }
        if (hr->out.len != 0) {
            /* Inline items finished already: they go out at the end of the turn. */
            req_held_sync(c, hr);
            on_req_ready(hr);
        }
    }
}

/* ---- Reading --------------------------------------------------------------------------------- */

static void conn_parse_error(jrpc__http_conn_t *c, enum http_errno e, const char *data, size_t len,
                             const char *at)
{
    if (e == HPE_HEADER_OVERFLOW) {
        /* http-parser's ceiling is raised to max_header by jrpc__http_global_init. */
        jrpc__http_refuse(c, 431, JRPC_CODE_LIMIT_EXCEEDED, "request header too large");
        return;
    }
    if (e == HPE_INVALID_METHOD) {
        unsigned status = jrpc__http_bad_method_status(data, len, at);
        jrpc__http_refuse(c, status, JRPC_CODE_INVALID_REQUEST,
                          status == 501   ? "request method not implemented"
                          : status == 505 ? "only HTTP/1.0 and HTTP/1.1"
                                          : "malformed HTTP request line");
        return;
    }
    char msg[128];
    snprintf(msg, sizeof msg, "malformed HTTP request: %s", http_errno_description(e));
    jrpc__http_refuse(c, 400, JRPC_CODE_INVALID_REQUEST, msg);
}

/* Parses data[0..len) and returns how many bytes were consumed: all of them unless the
 * connection halted, was throttled at the pipeline bound, or closed. */
static size_t conn_parse(jrpc__http_conn_t *c, const char *data, size_t len)
{
    size_t off = 0;
    c->in_parse = 1;
    while (off < len) {
        if (jrpc__http_frame_check(c, data + off, len - off) != 0)
            break;
        c->parse_end = data + len;
        size_t n = http_parser_execute(&c->parser, &jrpc__http_settings, data + off, len - off);
        off += n;
        if (c->closing || c->halted || c->throttled || c->upgrade != NULL)
            break; /* an upgrade: the bytes after its head are WebSocket frames */
        if (jrpc__http_chunk_pause(c))
            continue; /* at a chunk-size line, which jrpc__http_frame_check reads first */
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e != HPE_OK) {
            conn_parse_error(c, e, data, len, data + (off < len ? off : len - 1));
            break;
        }
        if (c->parser.upgrade) {
            /* Upgrade (h2c, websocket) or CONNECT: the message was answered as plain HTTP/1.1
             * (RFC 9110 §7.8 lets a server ignore Upgrade); go on parsing HTTP. */
            c->parser.upgrade = 0;
            continue;
        }
        if (n == 0)
            break;
    }
    c->in_parse = 0;
    return off;
}

/* Throttled: read on (to notice a client that leaves) while what is kept unparsed is small. */
static void conn_throttled_read(jrpc__http_conn_t *c)
{
    size_t kept;
    jrpc__sock_kept(c->sock, &kept);
    if (c->eof_kept || kept >= JRPC__HTTP_THROTTLE_KEEP)
        conn_read_stop(c);
    else
        conn_read_start(c);
}

/* After a parse: stop reading when halted or throttled, and write what became ready. */
static void conn_after_parse(jrpc__http_conn_t *c)
{
    if (c->closing)
        return;
    if (c->upgrade != NULL) {
        conn_read_stop(c); /* until src/ws reads the same socket */
        jrpc__http_flush(c);
        conn_upgrade(c);
        return;
    }
    if (c->halted) {
        conn_read_stop(c);
        stash_drop(c);
    } else if (c->throttled) {
        conn_throttled_read(c);
        jrpc__acct_wait(c->acct, on_acct_released);
    } else {
        conn_read_start(c);
    }
    jrpc__http_flush(c);
    if (!c->closing && c->halted && c->head == NULL)
        conn_finish(c);
    jrpc__http_arm(c);
}

/* The upgrade's request is the oldest in the pipeline (every earlier answer is written): the
 * socket and the bytes read past the request's head go to src/ws, which answers 101, and this
 * connection goes away without a FIN. If src/ws cannot take it, the request gets a 503 here. */
static void conn_upgrade(jrpc__http_conn_t *c)
{
    jrpc__http_req_t *hr = c->upgrade;
    if (c->closing || hr == NULL || c->head != hr)
        return;
    c->upgrade = NULL;
    /* Frames in this read go as a view; frames kept earlier go with the sock. */
    if (jrpc__ws_accept(c->sock, &c->ws, c->rest, c->rest_len,
                        hr->client_len != 0 ? hr->x->client : NULL,
                        hr->key_state != JRPC__KEY_OFF ? &hr->auth : NULL) == 0) {
        if (hr->ip_counted) {
            /* A proxied WebSocket client stays counted under its own address for the life of
             * the connection: the count moves to the socket, which gives it back at close. */
            memcpy(c->sock->admit.key, hr->x->ip_key, 16);
            c->sock->admit.per_ip = 1;
            hr->ip_counted = 0;
        }
        /* The socket is src/ws's now. This state goes once the stack above has unwound (never
         * free a connection inside its own callbacks); closing keeps everything else away. */
        c->rest = NULL;
        c->closing = 1;
        c->reap.cb = conn_reaped;
        jrpc__loop_post(c->loop, &c->reap);
        return;
    }
    stash_drop(c);
    jrpc__http_answer_error(hr, 503, JRPC_CODE_SERVER_ERROR,
                            c->loop->stopping ? "server shutting down"
                                              : "cannot take the WebSocket connection now");
    hr->close_after = 1;
    jrpc__http_halt(c);
    jrpc__http_flush(c);
}

/* Answers drained below the bound: parse what was kept, then read again. */
static void conn_resume(jrpc__http_conn_t *c)
{
    if (!c->throttled || c->closing || c->halted || c->in_parse || c->upgrade != NULL)
        return;
    if (jrpc__http_over_bound(c)) {
        jrpc__acct_wait(c->acct, on_acct_released); /* until the next release */
        return;
    }
    jrpc__acct_wait(c->acct, NULL);
    c->throttled = 0;
    http_parser_pause(&c->parser, 0);
    size_t kept;
    const char *p = jrpc__sock_kept(c->sock, &kept);
    if (p != NULL) {
        size_t n = conn_parse(c, p, kept);
        if (c->closing || c->sock->owner != c)
            return;
        jrpc__sock_kept_used(c->sock, c->halted ? SIZE_MAX : n);
    }
    if (c->eof_kept && !c->throttled && !c->halted && !c->closing) {
        c->eof_kept = 0;
        conn_eof(c); /* every request sent before the FIN was read */
        return;
    }
    conn_after_parse(c);
}

/* The peer sent FIN. Half-closing clients (a shell's `nc`, Node's socket.end()) still read, so
 * requests already received are answered; a request cut short gets a 400. Then close. */
static void conn_eof(jrpc__http_conn_t *c)
{
    c->eof = 1;
    conn_read_stop(c);
    if (c->cur != NULL)
        jrpc__http_refuse(c, 400, JRPC_CODE_INVALID_REQUEST, "request cut short by end of stream");
    else
        jrpc__http_halt(c);
    if (c->closing)
        return;
    if (c->head == NULL) {
        jrpc__http_close_now(c);
        return;
    }
    jrpc__http_flush(c);
}

static void on_read(jrpc__sock_t *s, ssize_t nread, const uv_buf_t *buf)
{
    jrpc__http_conn_t *c = s->owner;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        if (nread == UV_EOF && !c->lingering && c->throttled && !c->halted) {
            c->eof_kept = 1; /* requests kept before it still get answers */
            conn_read_stop(c);
        } else if (nread == UV_EOF && !c->lingering) {
            conn_eof(c);
        } else {
            jrpc__http_close_now(c); /* reset, ENOBUFS, or the lingering client is done */
        }
        return;
    }
    if (c->lingering || c->halted)
        return; /* discarded */
    size_t len = (size_t)nread;
    if (c->throttled && c->upgrade == NULL) {
        /* At a bound: kept for later, read only to see the client leave. */
        if (stash_keep(c, buf->base, len) == 0)
            conn_throttled_read(c);
        return;
    }
    size_t n = conn_parse(c, buf->base, len);
    if (c->closing)
        return;
    if (c->upgrade != NULL && !c->halted && n < len) {
        /* Frames right behind an upgrade: src/ws reads them from here if the socket is handed
         * over during this read (no copy), else they are kept below. */
        c->rest = buf->base + n;
        c->rest_len = len - n;
    } else if (c->throttled && !c->halted && n < len) {
        /* Paused at the pipeline bound with bytes left (only ever from the loop's buffer: a
         * direct body read ends exactly at its body). Keep them for conn_resume. */
        if (stash_keep(c, buf->base + n, len - n) != 0)
            return;
    }
    conn_after_parse(c);
    if (c->rest != NULL) {
        /* The upgrade waits for earlier answers: keep the frames for it. */
        const char *rest = c->rest;
        c->rest = NULL;
        if (!c->closing)
            stash_keep(c, rest, c->rest_len);
    }
}

/* ---- The io loop's entry points -------------------------------------------------------------- */

static void on_sock_drain(jrpc__sock_t *s);
static void on_sock_close_now(jrpc__sock_t *s);

static const jrpc__sock_ops_t sock_ops = {
    .read = on_read,
    .alloc = on_alloc,
    .timeout = on_conn_timeout,
    .drain = on_sock_drain,
    .close_now = on_sock_close_now,
    .closed = on_closed,
};

/* Over a connection cap: a 503 the client can read, then close (the socket buffer of a new
 * connection always takes these few bytes, so no write request is needed). */
static void refuse_cap(jrpc__sock_t *s)
{
#define CAP_BODY                                                                                   \
    "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32005,\"message\":\"too many connections\"},"       \
    "\"id\":null}"
    _Static_assert(sizeof(CAP_BODY) - 1 == 84, "Content-Length below must match the body");
    static const char answer[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Content-Length: 84\r\nConnection: close\r\n\r\n" CAP_BODY;
#undef CAP_BODY
    uv_buf_t b = uv_buf_init((char *)answer, sizeof answer - 1);
    uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
    jrpc__sock_close(s);
}

/* The HTTP state of a new connection on sock s. */
static jrpc__http_conn_t *conn_new(jrpc__loop_t *loop, jrpc__sock_t *s)
{
    const jrpc_config_t *cfg = loop->cfg;
    const char *route = cfg->path != NULL ? cfg->path : "/";
    size_t route_len = strlen(route);
    size_t url_cap = route_len + JRPC__HTTP_URL_SLACK;
    size_t rest_len = cfg->rest_path ? strlen(cfg->rest_path) : 0;
    if (rest_len != 0 && url_cap < rest_len + JRPC__HTTP_REST_URL)
        url_cap = rest_len + JRPC__HTTP_REST_URL;
    jrpc__http_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->acct = jrpc__acct_new(loop, c);
    if (c->acct == NULL) {
        free(c);
        return NULL;
    }
    c->sock = s;
    c->loop = loop;
    c->route = route;
    c->route_len = route_len;
    c->url_cap = url_cap;
    c->log = cfg->log_cb != NULL && cfg->log_level >= JRPC_LOG_INFO;
    c->timed = loop->io->timed;
    c->proxied = s->admit.proxied;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    jrpc__sock_own(s, &sock_ops, c);
    return c;
}

/* Serves HTTP on s (closed when out of memory); the connection, or NULL. */
static jrpc__http_conn_t *conn_serve(jrpc__loop_t *loop, jrpc__sock_t *s)
{
    jrpc__http_conn_t *c = conn_new(loop, s);
    if (c == NULL) {
        jrpc__sock_close(s);
        return NULL;
    }
    conn_read_start(c);
    jrpc__http_arm(c);
    return c;
}

void jrpc__http_accept(jrpc__loop_t *loop, uv_stream_t *listener)
{
    jrpc__sock_t *s = jrpc__sock_accept(loop, listener);
    if (s == NULL)
        return;
    if (loop->stopping) {
        jrpc__sock_close(s);
        return;
    }
    /* An admin listener's connections are the operator's: outside the connection caps (a scrape
     * still works when clients fill them) and outside the counters it reports. */
    size_t a = (size_t)((uv_tcp_t *)listener - loop->listeners);
    int admin = a < JRPC__MAX_LISTEN && loop->io->admin[a];
    if (!admin && jrpc__admit(loop->io, &s->tcp, &s->admit) != 0) {
        refuse_cap(s);
        return;
    }
    jrpc__http_conn_t *c = conn_serve(loop, s);
    if (c != NULL && admin)
        c->admin = 1;
    else if (c != NULL)
        jrpc__ctr_add(&loop->stats.conns[JRPC__TR_HTTP], 1);
}

/* Stop began: an idle connection closes now; a busy one finishes the request being received
 * (it is not a new one), answers everything, then closes; the last answer says
 * Connection: close. */
static void on_sock_drain(jrpc__sock_t *s)
{
    jrpc__http_conn_t *c = s->owner;
    if (c->closing || c->lingering)
        return;
    if (c->head == NULL) {
        jrpc__http_close_now(c);
        return;
    }
    c->draining = 1;
    if (c->cur == NULL && c->upgrade == NULL) {
        jrpc__http_halt(c);
        jrpc__http_flush(c);
    }
}

static void on_sock_close_now(jrpc__sock_t *s)
{
    jrpc__http_close_now(s->owner);
}
