/* SPDX-License-Identifier: MIT */
/* answer.c — the engine's side of a response: the entries of a request's calls in request order
 * (an error object, or the result text the handler replied, with the id echoed byte for byte),
 * REST's bare results and status, max_response (entries past it become -32003), and streaming,
 * where finished entries leave as pieces while later calls still run. The request's lifecycle
 * (req.c) calls in here once the last answerable call finished, or as calls finish when the
 * transport streams. Loop thread. */
#include "../json/internal.h"
#include "../util/log.h"
#include "req.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Answering ------------------------------------------------------------------------------- */

static const char too_large[] = "{\"code\":-32003,\"message\":\"Response too large\"}";

static const char prefix_error[] = "{\"jsonrpc\":\"2.0\",\"error\":";
static const char prefix_result[] = "{\"jsonrpc\":\"2.0\",\"result\":";

static const char rest_error[] = "{\"error\":";

/* Bytes item_append adds for an entry (the size check and the copy must agree). */
static size_t item_size(const jrpc_call_t *c, size_t out_len, int is_error)
{
    if (c->req->rest)
        return is_error ? sizeof rest_error - 1 + out_len + 1 : out_len;
    return (is_error ? sizeof prefix_error : sizeof prefix_result) - 1 + out_len + 6 +
           (c->id.ptr ? c->id.len : 4) + 1;
}

/* One response entry, copied in with a single reservation: this runs once per item of every
 * batch, so it does no per-piece bounds checks. */
static void item_append(jrpc_buf_t *b, const jrpc_call_t *c, const char *out, size_t out_len,
                        int is_error)
{
    if (jrpc_buf_reserve(b, item_size(c, out_len, is_error)) != 0)
        return;
    char *w = b->ptr + b->len;
    if (c->req->rest) {
        /* REST has no envelope: the bare result, or {"error":{…}}. */
        if (is_error) {
            memcpy(w, rest_error, sizeof rest_error - 1);
            w += sizeof rest_error - 1;
        }
        memcpy(w, out, out_len);
        w += out_len;
        if (is_error)
            *w++ = '}';
        b->len = (size_t)(w - b->ptr);
        return;
    }
    if (is_error) {
        memcpy(w, prefix_error, sizeof prefix_error - 1);
        w += sizeof prefix_error - 1;
    } else {
        memcpy(w, prefix_result, sizeof prefix_result - 1);
        w += sizeof prefix_result - 1;
    }
    memcpy(w, out, out_len);
    w += out_len;
    memcpy(w, ",\"id\":", 6);
    w += 6;
    if (c->id.ptr != NULL) {
        memcpy(w, c->id.ptr, c->id.len);
        w += c->id.len;
    } else {
        memcpy(w, "null", 4);
        w += 4;
    }
    *w++ = '}';
    b->len = (size_t)(w - b->ptr);
}

/* The HTTP status of a failed single REST call (docs/rest.md has the table). */
static int rest_status(int code)
{
    switch (code) {
    case JRPC_CODE_METHOD_NOT_FOUND:
        return 404;
    case JRPC_CODE_INVALID_REQUEST:
    case JRPC_CODE_INVALID_PARAMS:
    case JRPC_CODE_PARSE_ERROR:
        return 400;
    case JRPC_CODE_LIMIT_EXCEEDED:
        return 429;
    case JRPC_CODE_TIMEOUT:
        return 504;
    default:
        return 500;
    }
}

/* Appends name[0..n) to the summary's names when it fits whole (with room kept for ",+N"). */
static int sum_name(jrpc__answer_sum_t *s, const char *name, size_t n)
{
    size_t at = s->names_len + (s->names_len != 0);
    if (n == 0 || at + n > sizeof s->names - 8)
        return 0;
    if (s->names_len != 0)
        s->names[s->names_len] = ',';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        s->names[at + i] =
            ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' || ch == ',' ? '?' : (char)ch;
    }
    s->names_len = (uint8_t)(at + n);
    return 1;
}

/* The access log's view of the answer (jrpc__answer_sum_t): the first names and the failed items
 * by code. Items that did not parse have no name and are counted in "+N". */
static void req_sum(const jrpc__req_t *r, jrpc__answer_sum_t *s, int over_from)
{
    memset(s, 0, offsetof(jrpc__answer_sum_t, names));
    size_t named = 0;
    for (size_t i = 0; i < r->ncalls; i++) {
        const jrpc_call_t *c = &r->calls[i];
        if (named == i && sum_name(s, c->name.ptr, c->name.len))
            named++;
        int over = c->answer && over_from >= 0 && i >= (size_t)over_from;
        if (!c->is_error && !over)
            continue;
        int code = over ? JRPC_CODE_RESPONSE_TOO_LARGE : c->code;
        s->failed++;
        size_t k = 0;
        while (k < s->ncodes && s->code[k] != code)
            k++;
        if (k == s->ncodes && k < JRPC__SUM_CODES) {
            s->code[k] = code;
            s->ncodes++;
        }
        if (k < s->ncodes)
            s->count[k]++;
    }
    if (named < r->ncalls) {
        int n = snprintf(s->names + s->names_len, sizeof s->names - s->names_len, "%s+%zu",
                         s->names_len != 0 ? "," : "", r->ncalls - named);
        if (n > 0)
            s->names_len =
                (uint8_t)(s->names_len + (size_t)n < sizeof s->names ? s->names_len + (size_t)n
                                                                     : sizeof s->names - 1);
    }
}

size_t jrpc__answer_sum_format(const jrpc__answer_sum_t *s, int json, char *buf, size_t cap)
{
    size_t at = 0;
#define SUM_PUT(...)                                                                               \
    do {                                                                                           \
        int n_ = at < cap ? snprintf(buf + at, cap - at, __VA_ARGS__) : 0;                         \
        if (n_ > 0)                                                                                \
            at = at + (size_t)n_ < cap ? at + (size_t)n_ : cap - 1;                                \
    } while (0)
    if (cap == 0)
        return 0;
    buf[0] = '\0';
    if (json)
        SUM_PUT("\"method\":\"%.*s\",\"failed\":%" PRIu32, (int)s->names_len, s->names, s->failed);
    else
        SUM_PUT("method=%.*s failed=%" PRIu32, s->names_len != 0 ? (int)s->names_len : 1,
                s->names_len != 0 ? s->names : "-", s->failed);
    for (size_t k = 0; k < s->ncodes; k++) {
        if (json)
            SUM_PUT("%s\"%" PRId32 "\":%" PRIu32, k == 0 ? ",\"codes\":{" : ",", s->code[k],
                    s->count[k]);
        else
            SUM_PUT("%s%" PRId32 ":%" PRIu32, k == 0 ? " codes=" : ",", s->code[k], s->count[k]);
    }
    if (json && s->ncodes != 0)
        SUM_PUT("}");
#undef SUM_PUT
    return at;
}

/* ---- Streaming ------------------------------------------------------------------------------- */

/* The call's answer is known (decided while checking, replied, or timed out). */
static int call_known(const jrpc_call_t *c)
{
    return c->state == CALL_ANSWERED || c->state == CALL_DONE;
}

/* Appends c's entry to the piece b (with "[" or ","), -32003 once max_response counting what was
 * handed over already is reached, and lets go of its result: it is in the piece now. */
static void stream_entry(jrpc__req_t *r, jrpc_buf_t *b, jrpc_call_t *c)
{
    jrpc_buf_append(b, r->emitted++ == 0 ? "[" : ",", 1);
    size_t entry = item_size(c, c->out_len, c->is_error);
    if (!r->over && r->emit_bytes + b->len + entry + 1 > r->loop->cfg->max_response) {
        r->over = 1;
        r->over_from = (long)(c - r->calls);
        jrpc__stats_limit(&r->loop->stats, JRPC__LIMIT_RESPONSE);
    }
    if (r->over) {
        item_append(b, c, too_large, sizeof too_large - 1, 1);
        c->too_large = 1;
    } else {
        item_append(b, c, c->out, c->out_len, c->is_error);
    }
    c->emitted = 1;
    if (c->out_owned)
        free((void *)c->out);
    c->out_owned = 0;
    c->out = NULL;
    c->out_len = 0;
    if (c->release != NULL) {
        jrpc_release_cb release = c->release;
        c->release = NULL;
        release(c->release_data);
    }
}

/* Entries that can go now: the finished prefix (request order), or every finished entry
 * (completion order). */
static void stream_collect(jrpc__req_t *r, jrpc_buf_t *b)
{
    if (r->reserving)
        return; /* no call has run yet: the budget store has not said which may */
    size_t i = r->emit_from;
    while (i < r->ncalls && (!r->calls[i].answer || r->calls[i].emitted))
        i++;
    r->emit_from = i;
    for (; i < r->ncalls; i++) {
        jrpc_call_t *c = &r->calls[i];
        if (!c->answer || c->emitted)
            continue;
        if (!call_known(c)) {
            if (r->order == JRPC__ORDER_REQUEST)
                break;
            continue;
        }
        stream_entry(r, b, c);
        if (i == r->emit_from)
            r->emit_from = i + 1;
    }
}

/* After a pass: the transport learns that entries can go, once until it takes them. Collecting
 * is left to the take, so that the items finished in one turn (a whole upstream answer) make one
 * piece: a piece per item cost an allocation, a copy and a free each. */
void jrpc__req_stream_pump(jrpc__req_t *r)
{
    if (r->stream_due || r->reserving)
        return;
    if (r->order == JRPC__ORDER_REQUEST) {
        /* Only when the finished prefix grew (the next entry in order is known). */
        size_t i = r->emit_from;
        while (i < r->ncalls && (!r->calls[i].answer || r->calls[i].emitted))
            i++;
        r->emit_from = i;
        if (i == r->ncalls || !call_known(&r->calls[i]))
            return;
    }
    r->stream_due = 1;
    r->ready(r->ud);
}

int jrpc__req_stream_take(jrpc__req_t *r, jrpc_buf_t *out)
{
    r->stream_due = 0;
    if (!r->stream || r->answered)
        return 0;
    /* A piece of its own first: max_response counts the bytes handed over before it. */
    jrpc_buf_t b;
    jrpc_buf_init(&b);
    stream_collect(r, &b);
    int rc = b.err ? JRPC_ENOMEM : 0;
    r->emit_bytes += b.len;
    if (rc == 0 && b.len != 0) {
        if (out->len == 0) {
            jrpc_buf_free(out);
            *out = b;
            jrpc_buf_init(&b);
        } else if (jrpc_buf_append(out, b.ptr, b.len) != 0) {
            rc = JRPC_ENOMEM;
        }
    }
    jrpc_buf_free(&b);
    return rc;
}

int jrpc__req_stream(jrpc__req_t *r, int order, jrpc__req_ready_cb cb, jrpc_buf_t *first)
{
    if (!r->is_batch || r->answered)
        return 0;
    r->stream = 1;
    r->order = (uint8_t)order;
    r->ready = cb;
    r->over_from = -1;
    size_t before = first->len;
    stream_collect(r, first);
    r->emit_bytes += first->len - before;
    return 1;
}

/* Writes the response in request order and hands it to the transport. Items whose entry would
 * take the body past max_response are answered -32003 instead, each with its own id. */
void jrpc__req_answer(jrpc__req_t *r)
{
    const jrpc_config_t *cfg = r->loop->cfg;
    jrpc_buf_t out;
    jrpc_buf_init(&out);
    r->answered = 1;

    size_t need = 2;
    for (size_t i = 0; i < r->ncalls && !r->stream; i++)
        if (r->calls[i].answer)
            need += r->calls[i].out_len + r->calls[i].id.len + 48;
    if (!r->stream)
        jrpc_buf_reserve(&out, need < cfg->max_response + 64 ? need : cfg->max_response + 64);

    size_t entries = 0;
    int over = 0;
    long over_from = -1; /* the first item answered -32003 (for the log) */
    if (r->stream) {
        /* What no piece carried yet, in request order, then the end of the array. */
        for (size_t i = 0; i < r->ncalls; i++) {
            jrpc_call_t *c = &r->calls[i];
            if (c->answer && !c->emitted)
                stream_entry(r, &out, c);
        }
        if (r->emitted != 0)
            jrpc_buf_append(&out, "]", 1);
        over_from = r->over_from;
        goto made;
    }
    if (r->is_batch)
        jrpc_buf_append(&out, "[", 1);
    for (size_t i = 0; i < r->ncalls; i++) {
        const jrpc_call_t *c = &r->calls[i];
        if (!c->answer)
            continue;
        if (entries++ > 0)
            jrpc_buf_append(&out, ",", 1);
        /* The entry and, for a batch, the closing "]" must fit. */
        size_t entry = item_size(c, c->out_len, c->is_error);
        if (!over && out.len + entry + r->is_batch > cfg->max_response) {
            over = 1;
            jrpc__stats_limit(&r->loop->stats, JRPC__LIMIT_RESPONSE);
            over_from = (long)i;
        }
        if (over) {
            item_append(&out, c, too_large, sizeof too_large - 1, 1);
            r->calls[i].too_large = 1;
        } else {
            item_append(&out, c, c->out, c->out_len, c->is_error);
        }
    }
    if (r->is_batch)
        jrpc_buf_append(&out, "]", 1);
    if (entries == 0 && !r->rest)
        out.len = 0; /* notifications only: nothing to answer */
made:
    if (r->rest && !r->is_batch && r->ncalls == 1 && (r->calls[0].is_error || over) &&
        r->status == 200)
        r->status = rest_status(over ? JRPC_CODE_RESPONSE_TOO_LARGE : r->calls[0].code);
    if (out.err) {
        jrpc_buf_free(&out);
        jrpc__error_object(&out, JRPC_CODE_INTERNAL_ERROR, "Internal error");
    }
    jrpc__answer_t ans = {out, r->status, r->retry_after, r->ncalls, 0, {0}, r->is_batch};
    if (jrpc__log_on(cfg, JRPC_LOG_INFO)) {
        req_sum(r, &ans.sum, (int)over_from);
        ans.has_sum = 1;
    }
    if (r->starting) {
        /* Inside jrpc__req_run: it returns the answer (no callback inside the call). */
        r->early = ans;
        r->early_ready = 1;
        return;
    }
    r->done(&ans, r->ud);
    jrpc_buf_free(&ans.body); /* no-op when the transport took the bytes */
}
