/* SPDX-License-Identifier: MIT */
/* req.c — the request engine: one body (a single call or a batch) is scanned once, every item is
 * checked and given a slot, valid calls run under the batch_concurrency bound, and when the last
 * answerable slot is filled (or the deadline passes) the response is written in request order.
 * Everything here runs on the owning loop's thread; handlers on other threads come back through
 * the loop's completion queue (jrpc__loop_post), replies on the loop's thread complete at once. */
#include "req.h"
#include "../io/budget.h"
#include "../json/internal.h"
#include "../util/log.h"
#include "../util/timer.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void req_pump(jrpc__req_t *r);

/* ---- Small builders -------------------------------------------------------------------------- */

void jrpc__error_body(jrpc_buf_t *b, int code, const char *msg, size_t msg_len, const char *data,
                      size_t data_len, int data_is_text)
{
    jrpc_buf_append(b, "{\"code\":", 8);
    jrpc_buf_json_int64(b, code);
    jrpc_buf_append(b, ",\"message\":", 11);
    jrpc_buf_json_string(b, msg, msg_len);
    if (data != NULL) {
        jrpc_buf_append(b, ",\"data\":", 8);
        if (data_is_text)
            jrpc_buf_json_string(b, data, data_len);
        else
            jrpc_buf_append(b, data, data_len);
    }
    jrpc_buf_append(b, "}", 1);
}

void jrpc__error_object(jrpc_buf_t *out, int code, const char *msg)
{
    jrpc_buf_append(out, "{\"jsonrpc\":\"2.0\",\"error\":", 25);
    jrpc__error_body(out, code, msg, strlen(msg), NULL, 0, 0);
    jrpc_buf_append(out, ",\"id\":null}", 11);
}

/* Gives call c an error answer decided by the engine: the error object text goes to the arena.
 * `detail` (plain text, may be NULL) becomes the error's data string. */
static void call_set_error(jrpc__req_t *r, jrpc_call_t *c, int code, const char *msg,
                           const char *detail)
{
    jrpc_buf_t b;
    jrpc_buf_init(&b);
    jrpc__error_body(&b, code, msg, strlen(msg), detail, detail ? strlen(detail) : 0, 1);
    char *p = b.err ? NULL : jrpc__arena_alloc(&r->arena, b.len);
    if (p != NULL) {
        memcpy(p, b.ptr, b.len);
        c->out = p;
        c->out_len = b.len;
    } else {
        static const char oom[] = "{\"code\":-32603,\"message\":\"Internal error\"}";
        c->out = oom;
        c->out_len = sizeof oom - 1;
    }
    jrpc_buf_free(&b);
    c->is_error = 1;
    c->code = code;
    c->out_owned = 0;
}

/* ---- Checking items -------------------------------------------------------------------------- */

static const char *const member_names[JRPC__M_RESULT] = {"jsonrpc", "method", "params", "id"};
/* The members a request is made of; result and error (recorded for upstream answers) are extra
 * members here, repeated or not. */
#define REQUEST_MEMBERS ((1u << JRPC__M_RESULT) - 1)

/* Finds the handler for c->name and applies the batch policy; 1 when c may run. */
static int call_resolve(jrpc__req_t *r, jrpc_call_t *c)
{
    const jrpc__registry_t *reg = jrpc__engine_of(r->loop)->registry;
    const jrpc__key_t *k = r->auth.key;
    if (k != NULL && (k->nallow | k->ndeny) != 0 &&
        !jrpc__key_allows(k, c->name.ptr, c->name.len)) {
        /* Before the registry: a key is not told which methods exist beyond its own. */
        char msg[160];
        int n = (int)(c->name.len > 100 ? 100 : c->name.len);
        snprintf(msg, sizeof msg, "method %.*s is not allowed for this API key", n, c->name.ptr);
        call_set_error(r, c, JRPC_CODE_METHOD_NOT_FOUND, msg, NULL);
        atomic_fetch_add_explicit(&k->stats->rej_method, 1, memory_order_relaxed);
        return 0;
    }
    /* Batches mostly repeat one method: the lookup (a hash, and the patterns when the name is
     * not registered exactly) is made once for a run of equal names. */
    if (r->memo_name == NULL || c->name.len != r->memo_len ||
        memcmp(c->name.ptr, r->memo_name, c->name.len) != 0) {
        r->memo_m = jrpc__registry_find(reg, c->name.ptr, c->name.len);
        r->memo_name = c->name.ptr;
        r->memo_len = c->name.len;
    }
    c->m = r->memo_m;
    if (c->m == NULL) {
        call_set_error(r, c, JRPC_CODE_METHOD_NOT_FOUND, "Method not found", NULL);
        return 0;
    }
    if (r->is_batch && ((c->m->flags & JRPC_NO_BATCH) ||
                        jrpc__registry_batch_denied(reg, c->name.ptr, c->name.len, c->params))) {
        char msg[160];
        int n = (int)(c->name.len > 100 ? 100 : c->name.len);
        snprintf(msg, sizeof msg, "method %.*s is not available in batch requests", n, c->name.ptr);
        call_set_error(r, c, JRPC_CODE_NOT_IN_BATCH, msg, NULL);
        return 0;
    }
    return 1;
}

/* Fills call c from item it; returns 1 when c is a valid call to run. Errors are set on c. */
static int call_check(jrpc__req_t *r, jrpc_call_t *c, const jrpc__item_t *it)
{
    c->req = r;
    c->answer = 1;
    if (it->type != JRPC_JSON_OBJECT) {
        call_set_error(r, c, JRPC_CODE_INVALID_REQUEST, "Invalid Request",
                       "request must be an object");
        return 0;
    }
    jrpc_json_t id = it->member[JRPC__M_ID];
    if (id.ptr != NULL) {
        char ch = id.ptr[0];
        if (ch == '"' || ch == '-' || (ch >= '0' && ch <= '9') || ch == 'n') {
            if (!(it->dup & (1u << JRPC__M_ID)))
                c->id = id; /* else answered with id null: which one was meant is unknowable */
        } else {
            call_set_error(r, c, JRPC_CODE_INVALID_REQUEST, "Invalid Request",
                           "id must be a string, a number or null");
            return 0;
        }
    }
    if (it->dup & REQUEST_MEMBERS) {
        char detail[64];
        for (int i = 0; i < JRPC__M_RESULT; i++) {
            if (it->dup & (1u << i)) {
                snprintf(detail, sizeof detail, "duplicate member \"%s\"", member_names[i]);
                break;
            }
        }
        call_set_error(r, c, JRPC_CODE_INVALID_REQUEST, "Invalid Request", detail);
        return 0;
    }
    jrpc_json_t v = it->member[JRPC__M_JSONRPC];
    if (v.ptr == NULL ||
        !((v.len == 5 && memcmp(v.ptr, "\"2.0\"", 5) == 0) || jrpc_json_string_eq(v, "2.0", 3))) {
        call_set_error(r, c, JRPC_CODE_INVALID_REQUEST, "Invalid Request",
                       "jsonrpc must be \"2.0\"");
        return 0;
    }
    v = it->member[JRPC__M_METHOD];
    if (v.ptr == NULL || v.ptr[0] != '"') {
        call_set_error(r, c, JRPC_CODE_INVALID_REQUEST, "Invalid Request",
                       "method must be a string");
        return 0;
    }
    jrpc_json_t params = it->member[JRPC__M_PARAMS];
    if (params.ptr != NULL && params.ptr[0] != '[' && params.ptr[0] != '{') {
        call_set_error(r, c, JRPC_CODE_INVALID_REQUEST, "Invalid Request",
                       "params must be an array or an object");
        return 0;
    }
    c->params = params;
    c->raw = it->value;
    if (it->method_escaped) {
        char *name = jrpc__arena_alloc(&r->arena, v.len);
        if (name == NULL) {
            call_set_error(r, c, JRPC_CODE_INTERNAL_ERROR, "Internal error", "out of memory");
            return 0;
        }
        c->name.ptr = name;
        c->name.len = jrpc__json_unescape(v.ptr + 1, v.len - 2, name);
    } else {
        c->name.ptr = v.ptr + 1;
        c->name.len = v.len - 2;
    }
    /* From here on the request is well formed: a notification gets no answer, whatever happens. */
    if (id.ptr == NULL)
        c->answer = 0;
    return call_resolve(r, c);
}

/* ---- Lifetime -------------------------------------------------------------------------------- */

/* Brings what the request holds (body and arena bytes, calls not finished) up to date in its
 * connection's account and the server's totals. */
static void req_sync(jrpc__req_t *r)
{
    size_t body = r->body != NULL ? r->body_len : 0;
    if (body != r->body_counted) {
        jrpc__acct_body(r->loop, r->acct, (ptrdiff_t)body - (ptrdiff_t)r->body_counted);
        r->body_counted = body;
    }
    size_t arena = r->body != NULL ? r->arena.bytes : 0;
    if (arena != r->arena_counted) {
        jrpc__acct_held(r->loop, r->acct, (ptrdiff_t)arena - (ptrdiff_t)r->arena_counted);
        r->arena_counted = arena;
    }
    if (r->calls_counted > r->calls_live) {
        jrpc__acct_finished(r->loop, r->acct, r->calls_counted - r->calls_live);
        r->calls_counted = r->calls_live;
    }
}

/* The code a call is counted under: what its entry said (-32003 past max_response, whatever the
 * handler answered), 0 for a result. */
static int call_count_code(const jrpc_call_t *c)
{
    return c->too_large ? JRPC_CODE_RESPONSE_TOO_LARGE : c->is_error ? c->code : 0;
}

/* Counts the request's calls in the loop's jrpc_calls_total, each with its final code. */
static void req_count(jrpc__req_t *r)
{
    jrpc__stats_t *st = &r->loop->stats;
    unsigned tr = r->rest ? JRPC__TR_REST : r->conn != NULL ? JRPC__TR_WS : JRPC__TR_HTTP;
    /* Runs of equal cells (a batch of one method) are counted at once. */
    for (size_t i = 0, k; i < r->ncalls; i += k) {
        const jrpc_call_t *c = &r->calls[i];
        unsigned label = c->m != NULL ? c->m->label : JRPC__LABEL_UNKNOWN;
        int code = call_count_code(c);
        int is_error = c->is_error || c->too_large;
        for (k = 1; i + k < r->ncalls; k++) {
            const jrpc_call_t *d = &r->calls[i + k];
            if ((d->m != NULL ? d->m->label : JRPC__LABEL_UNKNOWN) != label ||
                (d->is_error || d->too_large) != is_error || call_count_code(d) != code)
                break;
        }
        jrpc__stats_call(st, tr, label, is_error, code, k);
    }
}

static void req_free(jrpc__req_t *r)
{
    jrpc__loop_t *loop = r->loop;
    req_count(r);
    for (size_t i = 0; i < r->ncalls; i++) {
        jrpc_call_t *c = &r->calls[i];
        if (c->out_owned)
            free((void *)c->out);
        if (c->release != NULL)
            c->release(c->release_data); /* the answer is built: borrowed bytes go back */
    }
    free(r->body);
    r->body = NULL;
    r->calls_live = 0;
    req_sync(r);
    jrpc__list_remove(&r->link);
    if (r->acct != NULL) {
        r->acct->reqs--;
        jrpc__acct_unref(r->acct);
    }
    for (jrpc__cleanup_t *cl = r->cleanups; cl != NULL; cl = cl->next)
        cl->cb(cl->data);
    jrpc__arena_t arena = r->arena; /* r lives in its own arena */
    jrpc__arena_free(&arena);
    jrpc__loop_release(loop);
}

/* Frees the request once nothing refers to it: answered (or detached), no handler still holding
 * a call, nothing waiting to start. */
static void req_maybe_free(jrpc__req_t *r)
{
    if (!r->answered || r->starting || r->running != 0 || r->next != r->ncalls || r->reserving)
        return;
    if (r->timer_state == TIMER_ARMED)
        jrpc__list_remove(&r->dl); /* the loop's timer, if set for it, finds nothing due */
    req_free(r);
}

/* Calls not yet started never will be; running ones are answered with code/msg now and their
 * handlers' replies dropped when they come. */
static void req_expire(jrpc__req_t *r, int code, const char *msg)
{
    if (r->reserving) {
        /* Still waiting for its budget: the calls offered are answered now, and the store's
         * answer, when it comes, only frees the request. */
        r->expired = 1;
        for (size_t i = 0; i < r->ncalls; i++)
            if (r->calls[i].budgeted)
                call_set_error(r, &r->calls[i], code, msg, NULL);
    }
    for (size_t i = 0; i < r->ncalls; i++) {
        jrpc_call_t *c = &r->calls[i];
        if (c->state == CALL_WAITING || c->state == CALL_RUNNING) {
            if (c->state == CALL_RUNNING)
                c->timed_out = 1;
            else
                r->calls_live--; /* never started: finished now */
            jrpc__call_cancel(c);
            c->state = CALL_DONE;
            call_set_error(r, c, code, msg, NULL);
            if (code == JRPC_CODE_TIMEOUT)
                jrpc__stats_limit(&r->loop->stats, JRPC__LIMIT_DEADLINE);
        }
    }
    r->next = r->ncalls;
    r->remaining = 0;
    req_sync(r);
    if (!r->answered)
        jrpc__req_answer(r);
    req_maybe_free(r);
}

static void deadline_set(jrpc__loop_t *loop, uint64_t due);

/* The loop's deadline timer: requests whose deadline passed time out, soonest first; the timer
 * is then set for the next one. */
static void deadlines_due(uv_timer_t *t)
{
    jrpc__loop_t *loop = t->data;
    uint64_t now = uv_now(&loop->uv);
    loop->deadline_due = 0;
    while (!jrpc__list_empty(&loop->deadlines)) {
        jrpc__req_t *r = JRPC__CONTAINER_OF(loop->deadlines.next, jrpc__req_t, dl);
        if (r->deadline > now) {
            deadline_set(loop, r->deadline);
            return;
        }
        jrpc__list_remove(&r->dl);
        r->timer_state = TIMER_FIRED;
        req_expire(r, JRPC_CODE_TIMEOUT, "Request timed out"); /* may free r */
    }
}

/* The loop's timer fires at `due` at the latest (util/timer.h: moved only to a sooner end). */
static void deadline_set(jrpc__loop_t *loop, uint64_t due)
{
    jrpc__timer_at(&loop->deadline_timer, &loop->deadline_due, due, deadlines_due);
}

void jrpc__req_expire_all(jrpc__loop_t *loop)
{
    /* req_expire may free the request it expires (nothing was running): step first. */
    jrpc__list_t *it = loop->reqs.next;
    while (it != &loop->reqs) {
        jrpc__req_t *r = JRPC__CONTAINER_OF(it, jrpc__req_t, link);
        it = it->next;
        if (!r->starting)
            req_expire(r, JRPC_CODE_SERVER_ERROR, "server shutting down");
    }
}

void jrpc__req_orphan_all(jrpc__loop_t *loop)
{
    /* Their deadlines go with the loop's timer (closed by the loop as it ends). */
    for (jrpc__list_t *it = loop->reqs.next; it != &loop->reqs; it = it->next) {
        jrpc__req_t *r = JRPC__CONTAINER_OF(it, jrpc__req_t, link);
        if (r->timer_state == TIMER_ARMED) {
            jrpc__list_remove(&r->dl);
            r->timer_state = TIMER_FIRED;
        }
    }
    uv_timer_stop(&loop->deadline_timer);
    loop->deadline_due = 0;
}

/* ---- Running --------------------------------------------------------------------------------- */

static void call_start(jrpc__req_t *r, jrpc_call_t *c, uint64_t t0)
{
    const jrpc__method_t *m = c->m;
    c->state = CALL_RUNNING;
    c->t0 = t0;
    c->bounded = !(m->flags & JRPC_UNBOUNDED);
    r->running++;
    r->bounded += c->bounded;
    if ((m->flags & JRPC_RUN_MASK) == JRPC_WORKER) {
        c->job.call = c;
        c->job.cb = m->cb;
        c->job.data = m->data;
        c->pooled = 1;
        if (jrpc__pool_submit(r->loop->io->pool, r->acct != NULL ? &r->acct->jobs : NULL,
                              &c->job) != 0) {
            c->pooled = 0;
            r->running--;
            r->calls_live--;
            r->bounded -= c->bounded;
            c->state = CALL_DONE;
            call_set_error(r, c, JRPC_CODE_LIMIT_EXCEEDED, "Server busy", "worker queue is full");
            jrpc__stats_limit(&r->loop->stats, JRPC__LIMIT_WORKER_QUEUE);
            if (c->answer)
                r->remaining--;
        }
        return;
    }
    c->in_dispatch = 1;
    m->cb(c, m->data);
    c->in_dispatch = 0;
    if (c->replied_inline)
        jrpc__call_done(c);
}

/* The inline calls of calls[first..next) replied inside the pass that began at t0: each gets
 * an even share of its time in its method's histogram. */
static void pass_timed(jrpc__req_t *r, size_t first, uint64_t t0, size_t n)
{
    jrpc__stats_t *st = &r->loop->stats;
    uint64_t us = (uv_hrtime() - t0) / 1000 / n;
    unsigned label = 0;
    uint64_t run = 0; /* inline calls of `label` not yet added */
    for (size_t i = first; i < r->next; i++) {
        const jrpc_call_t *c = &r->calls[i];
        if (!c->replied_inline || c->m == NULL || c->m->label >= st->nlabels)
            continue;
        if (run != 0 && c->m->label != label) {
            jrpc__hist_add_n(&st->call_dur[label], jrpc__hist_dur_bounds, JRPC__HIST_DUR_N, us,
                             run);
            run = 0;
        }
        label = c->m->label;
        run++;
    }
    if (run != 0)
        jrpc__hist_add_n(&st->call_dur[label], jrpc__hist_dur_bounds, JRPC__HIST_DUR_N, us, run);
}

/* Keeps the request's deadline, once: something outlives the current pass (or a reservation).
 * Requests come in deadline order unless a reload changed deadline_ms, so the place in the list
 * is found from its end. */
static void req_arm(jrpc__req_t *r)
{
    jrpc__loop_t *loop = r->loop;
    if (r->timer_state != TIMER_NONE || loop->cfg->deadline_ms == 0)
        return;
    jrpc__list_t *at = loop->deadlines.prev;
    while (at != &loop->deadlines &&
           JRPC__CONTAINER_OF(at, jrpc__req_t, dl)->deadline > r->deadline)
        at = at->prev;
    jrpc__list_insert_tail(at->next, &r->dl); /* just after `at` */
    r->timer_state = TIMER_ARMED;
    deadline_set(loop, r->deadline);
}

/* Starts waiting calls while the bound allows, answers when nothing answerable is left, and arms
 * the deadline when something outlives this pass. Re-entrant calls (a completion arriving while
 * a pass runs) just leave the work to the pass on the stack. */
static void req_pump(jrpc__req_t *r)
{
    if (r->pumping)
        return;
    r->pumping = 1;
    const jrpc_config_t *cfg = r->loop->cfg;
    size_t bound = cfg->batch_concurrency ? cfg->batch_concurrency : 1;
    /* Timed servers read the clock once per pass, not per call (a clock read costs about as much
     * as an inline call): calls that reply later are timed from the pass's start, and the inline
     * calls of the pass share its time evenly. */
    size_t first = r->next;
    uint64_t t0 = r->loop->io->timed && r->next < r->ncalls ? uv_hrtime() : 0;
    size_t inline_done = 0;
    while (r->next < r->ncalls && r->bounded < bound) {
        jrpc_call_t *c = &r->calls[r->next++];
        if (c->state == CALL_WAITING) {
            call_start(r, c, t0);
            inline_done += c->replied_inline;
        }
    }
    if (inline_done != 0)
        pass_timed(r, first, t0, inline_done);
    r->pumping = 0;
    req_sync(r);
    if (!r->answered && r->remaining == 0)
        jrpc__req_answer(r);
    else if (r->stream && !r->answered)
        jrpc__req_stream_pump(r);
    if (r->running != 0 || r->next < r->ncalls)
        req_arm(r);
    req_maybe_free(r);
}

void jrpc__call_done(jrpc_call_t *c)
{
    jrpc__req_t *r = c->req;
    if (c->pooled) {
        c->pooled = 0;
        jrpc__pool_t *pool = r->loop->io->pool; /* NULL once freed at the end of a run */
        if (pool != NULL)
            jrpc__pool_done(pool, r->acct != NULL ? &r->acct->jobs : NULL);
    }
    r->running--;
    r->calls_live--;
    r->bounded -= c->bounded;
    jrpc__stats_t *st = &r->loop->stats;
    if (c->t0 != 0 && !c->replied_inline && c->m->label < st->nlabels)
        jrpc__hist_dur(&st->call_dur[c->m->label], (uv_hrtime() - c->t0) / 1000);
    if (c->cleanup != NULL) {
        /* What the handler attached (a subscription) learns whether the client gets the answer:
         * one whose id never arrives could not be unsubscribed, so it ends now. */
        jrpc__call_cleanup_cb cb = c->cleanup;
        c->cleanup = NULL;
        cb(c->cleanup_data, !c->timed_out && c->answer);
    }
    if (c->timed_out) {
        /* Its -32002 is (being) answered; drop the late reply. */
        if (c->reply_owned)
            free((void *)c->reply);
        if (c->release != NULL) {
            jrpc_release_cb release = c->release;
            c->release = NULL;
            release(c->release_data);
        }
        req_sync(r);
        req_maybe_free(r);
        return;
    }
    c->out = c->reply;
    c->out_len = c->reply_len;
    c->out_owned = c->reply_owned;
    c->is_error = c->reply_is_error;
    c->code = c->reply_code;
    c->state = CALL_DONE;
    if (c->answer)
        r->remaining--;
    req_pump(r);
}

static void call_posted(jrpc__post_t *p)
{
    jrpc__call_done(JRPC__CONTAINER_OF(p, jrpc_call_t, post));
}

void jrpc__call_replied(jrpc_call_t *c)
{
    if (!jrpc__call_on_loop(c)) {
        c->post.cb = call_posted; /* dropped when the loop ended (a stop gave up on it) */
        jrpc__loop_post(c->req->loop, &c->post);
        return;
    }
    if (c->req->loop->dead)
        return; /* the loop's thread, after the loop ended: the reply is dropped */
    if (c->in_dispatch) {
        c->replied_inline = 1; /* the pump completes it when the handler returns */
        return;
    }
    /* On the loop's thread outside the handler (an async handler's timer or socket callback, the
     * gateway's upstream answers): complete it now rather than through the completion queue, a
     * mutex, an eventfd write and a loop iteration later. The pump on the stack, if any, takes
     * the work; the call is the engine's from here, as the API says. */
    jrpc__call_done(c);
}

/* ---- Entry points ---------------------------------------------------------------------------- */

jrpc__req_t *jrpc__req_new(jrpc__loop_t *loop, char *body, size_t len, jrpc_conn_t *conn,
                           jrpc__acct_t *acct, jrpc__req_done_cb done, void *ud)
{
    jrpc__arena_t arena;
    jrpc__arena_init_cached(&arena, &loop->arenas);
    jrpc__req_t *r = jrpc__arena_alloc(&arena, sizeof(*r));
    if (r == NULL) {
        free(body);
        return NULL;
    }
    memset(r, 0, sizeof(*r));
    r->arena = arena;
    r->loop = loop;
    r->conn = conn;
    r->body = body;
    r->body_len = len;
    r->done = done;
    r->ud = ud;
    r->status = 200;
    r->deadline = uv_now(&loop->uv) + loop->cfg->deadline_ms;
    r->seq = jrpc__loop_seq(loop);
    r->acct = acct;
    if (acct != NULL) {
        jrpc__acct_ref(acct);
        acct->reqs++;
    }
    jrpc__list_insert_tail(&loop->reqs, &r->link);
    req_sync(r);
    jrpc__loop_hold(loop);
    return r;
}

void jrpc__req_no_cache(jrpc__req_t *r)
{
    r->no_cache = 1;
}

int jrpc__req_cleanup_add(jrpc__req_t *r, jrpc__cleanup_cb cb, void *data)
{
    jrpc__cleanup_t *cl = jrpc__arena_alloc(&r->arena, sizeof(*cl));
    if (cl == NULL)
        return JRPC_ENOMEM;
    cl->cb = cb;
    cl->data = data;
    cl->next = r->cleanups;
    r->cleanups = cl;
    return 0;
}

/* Answers the whole request with one error object (id null): parse errors, an empty batch. */
static jrpc__req_t *req_fail(jrpc__req_t *r, int code, const char *msg, const char *detail)
{
    jrpc_call_t *c = jrpc__arena_alloc(&r->arena, sizeof(*c));
    if (c != NULL) {
        memset(c, 0, sizeof(*c));
        c->req = r;
        c->answer = 1;
        call_set_error(r, c, code, msg, detail);
        r->calls = c;
        r->ncalls = r->next = 1;
    }
    r->is_batch = 0;
    req_pump(r);
    return r;
}

static jrpc__req_t *req_parse_error(jrpc__req_t *r, int rc, const jrpc__json_err_t *err)
{
    char detail[96];
    if (rc == JRPC_ENOMEM)
        return req_fail(r, JRPC_CODE_INTERNAL_ERROR, "Internal error", "out of memory");
    snprintf(detail, sizeof detail, "%s at byte %zu", err->msg ? err->msg : "invalid JSON",
             err->offset);
    return req_fail(r, JRPC_CODE_PARSE_ERROR, "Parse error", detail);
}

static int req_alloc_calls(jrpc__req_t *r, size_t n)
{
    r->calls = jrpc__arena_alloc(&r->arena, n * sizeof(*r->calls));
    if (r->calls == NULL)
        return JRPC_ENOMEM;
    memset(r->calls, 0, n * sizeof(*r->calls));
    r->ncalls = n;
    return 0;
}

/* Over-cap batches are answered item by item (-32005 each) up to this many times the cap; past
 * it, or when those answers would not fit in max_response, one -32005 object answers the whole
 * batch. Answering every item of any batch would let a 5 MiB body of "[1,1,1,…]" ask for a
 * 220 MB answer; ten times the cap still tells a client that sent a bit too much which ids failed.
 */
#define OVERCAP_ITEMIZED 10

/* Over the transport's cap nothing runs: every call that would be answered learns why, or (see
 * OVERCAP_ITEMIZED) the batch gets one error object. `count` is the number of items sent (the
 * calls describe the first r->ncalls of them). */
static jrpc__req_t *req_over_cap(jrpc__req_t *r, size_t count, unsigned max_batch)
{
    char msg[80];
    jrpc__stats_limit(&r->loop->stats, JRPC__LIMIT_BATCH);
    snprintf(msg, sizeof msg, "batch of %zu exceeds limit %u", count, max_batch);
    size_t answered = 0, size = 2;
    for (size_t i = 0; i < r->ncalls; i++) {
        if (r->calls[i].answer) {
            answered++;
            size += 64 + strlen(msg) + r->calls[i].id.len;
        }
    }
    /* Notifications only: answering nothing would let the client believe they ran. */
    if (count > r->ncalls || answered == 0 || size > r->loop->cfg->max_response) {
        r->next = r->ncalls;
        return req_fail(r, JRPC_CODE_LIMIT_EXCEEDED, msg, NULL);
    }
    for (size_t i = 0; i < r->ncalls; i++)
        if (r->calls[i].answer)
            call_set_error(r, &r->calls[i], JRPC_CODE_LIMIT_EXCEEDED, msg, NULL);
    r->next = r->ncalls;
    req_pump(r);
    return r;
}

/* How many items of a batch to describe: all within the cap, and enough past it to answer an
 * over-cap batch item by item (one more tells that it is over). */
static size_t items_to_record(unsigned max_batch)
{
    return (size_t)max_batch * OVERCAP_ITEMIZED + 1;
}

/* Marks the checked calls runnable and starts them: as many as the server admits (max_inflight,
 * max_memory), in request order; the others get -32005 and, when none was admitted, the answer
 * is a 503. */
static jrpc__req_t *req_run(jrpc__req_t *r, const uint8_t *ok)
{
    size_t want = 0;
    for (size_t i = 0; i < r->ncalls; i++)
        want += ok[i];
    int full;
    size_t admitted =
        jrpc__acct_admit(r->loop, r->acct, want, r->body_counted + r->arena_counted, &full);
    r->calls_live = r->calls_counted = admitted;
    if (want > 0 && admitted == 0)
        r->status = 503;
    for (size_t i = 0; i < r->ncalls; i++) {
        if (!ok[i])
            continue;
        if (admitted == 0) {
            call_set_error(r, &r->calls[i], JRPC_CODE_LIMIT_EXCEEDED, "Server busy",
                           full ? "server memory limit reached (max_memory)"
                                : "too many calls in flight (max_inflight)");
            continue;
        }
        admitted--;
        r->calls[i].state = CALL_WAITING;
        if (r->calls[i].answer)
            r->remaining++;
    }
    req_pump(r);
    return r;
}

/* ---- Budgets ----------------------------------------------------------------------------------
 */

/* The store answered the reservation (at once, or later on the loop): calls it refused get
 * -32005 with data {"retry_after_ms":N}, the others run. */
static void req_budget_done(void *arg, const jrpc__budget_result_t *res)
{
    jrpc__req_t *r = arg;
    r->reserving = 0;
    if (r->expired) {
        req_maybe_free(r); /* answered meanwhile (deadline, stop) */
        return;
    }
    jrpc__key_stats_t *st;
    uint64_t rate, burst;
    if (r->auth.key != NULL)
        st = r->auth.key->stats;
    else
        jrpc__keys_anonymous(r->auth.keys, &rate, &burst, &st);
    uint64_t ms = res->retry_after_ms != 0 ? res->retry_after_ms : 1000;
    char data[48];
    data[0] = '\0'; /* made for the first refused item only */
    size_t admitted = 0, refused = 0;
    uint64_t units = 0;
    for (size_t i = 0; i < r->ncalls; i++) {
        jrpc_call_t *c = &r->calls[i];
        if (!c->budgeted)
            continue;
        c->budgeted = 0;
        if (res->status == JRPC__BUDGET_CLOSED)
            r->ok[i] = 0;
        if (r->ok[i]) {
            admitted++;
            units += r->costs[i];
            continue;
        }
        if (refused++ == 0)
            snprintf(data, sizeof data, "{\"retry_after_ms\":%" PRIu64 "}", ms);
        jrpc_buf_t b;
        jrpc_buf_init(&b);
        static const char msg[] = "rate limit exceeded: over the budget of this API key";
        static const char anon[] = "rate limit exceeded: over the budget of this client address";
        const char *m = r->auth.key != NULL ? msg : anon;
        jrpc__error_body(&b, JRPC_CODE_LIMIT_EXCEEDED, m, strlen(m), data, strlen(data), 0);
        char *p = b.err ? NULL : jrpc__arena_alloc(&r->arena, b.len);
        if (p != NULL) {
            memcpy(p, b.ptr, b.len);
            c->out = p;
            c->out_len = b.len;
            c->is_error = 1;
            c->code = JRPC_CODE_LIMIT_EXCEEDED;
            c->out_owned = 0;
        } else {
            call_set_error(r, c, JRPC_CODE_LIMIT_EXCEEDED, "rate limit exceeded", NULL);
        }
        jrpc_buf_free(&b);
    }
    atomic_fetch_add_explicit(&st->calls, admitted, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->units, units, memory_order_relaxed);
    if (refused != 0) {
        atomic_fetch_add_explicit(&st->rej_budget, refused, memory_order_relaxed);
        if (!r->is_batch) {
            /* A single call over its budget: HTTP 429 with Retry-After (a batch stays 200). */
            r->status = 429;
            r->retry_after = (uint32_t)((ms + 999) / 1000);
        }
    }
    req_run(r, r->ok);
}

/* Between the per-item checks and req_run: with keys, the calls to run are offered to the
 * budget of their key (or of their client's address), one reservation for the whole request. */
static jrpc__req_t *req_admit(jrpc__req_t *r, uint8_t *ok)
{
    if (!r->has_auth)
        return req_run(r, ok);
    const jrpc__keys_t *keys = r->auth.keys;
    const jrpc__key_t *key = r->auth.key;
    jrpc__key_stats_t *st;
    uint64_t rate, burst;
    if (key != NULL) {
        rate = key->rate;
        burst = key->burst;
        st = key->stats;
    } else {
        jrpc__keys_anonymous(keys, &rate, &burst, &st);
    }
    struct jrpc__budget *store = jrpc__engine_of(r->loop)->budget;
    int limited = rate != 0 && store != NULL && (key != NULL || r->auth.has_addr);
    uint32_t *costs = limited ? jrpc__arena_alloc(&r->arena, r->ncalls * sizeof(*costs)) : NULL;
    if (!limited || costs == NULL) {
        /* No budget to keep (or no memory for one: the calls run rather than fail). */
        size_t n = 0;
        uint64_t units = 0;
        for (size_t i = 0; i < r->ncalls; i++) {
            if (ok[i]) {
                n++;
                units += jrpc__keys_cost(keys, r->calls[i].name.ptr, r->calls[i].name.len);
            }
        }
        atomic_fetch_add_explicit(&st->calls, n, memory_order_relaxed);
        atomic_fetch_add_explicit(&st->units, units, memory_order_relaxed);
        return req_run(r, ok);
    }
    const jrpc_str_t *last = NULL; /* a batch is often one method: look its cost up once */
    uint32_t last_cost = 0;
    for (size_t i = 0; i < r->ncalls; i++) {
        const jrpc_str_t *name = &r->calls[i].name;
        r->calls[i].budgeted = ok[i];
        if (!ok[i]) {
            costs[i] = 0;
            continue;
        }
        if (last == NULL || last->len != name->len ||
            memcmp(last->ptr, name->ptr, name->len) != 0) {
            last = name;
            last_cost = jrpc__keys_cost(keys, name->ptr, name->len);
        }
        costs[i] = last_cost;
    }
    char name[2 + 48];
    jrpc__bucket_t bk = {NULL, 0, rate, burst};
    if (key != NULL) {
        bk.name = key->bucket;
        bk.name_len = key->bucket_len;
    } else {
        memcpy(name, "a:", 2);
        bk.name = name;
        bk.name_len = 2 + jrpc__addr_key_name(r->auth.addr, name + 2, sizeof name - 2);
    }
    r->ok = ok;
    r->costs = costs;
    r->reserving = 1;
    jrpc__budget_reserve(store, r->loop, &bk, costs, ok, r->ncalls, req_budget_done, r);
    if (r->reserving)
        req_arm(r); /* the store answers later: the deadline runs meanwhile */
    return r;
}

/* The batch cap for this request: the transport's, or its key's when lower. */
static unsigned req_max_batch(const jrpc__req_t *r, unsigned max_batch, int ws)
{
    return jrpc__auth_max_batch(&r->auth, max_batch, ws);
}

void jrpc__req_auth(jrpc__req_t *r, const jrpc__auth_t *auth)
{
    if (auth == NULL || auth->keys == NULL)
        return;
    r->auth = *auth;
    r->has_auth = 1;
}

static jrpc__req_t *req_start(jrpc__req_t *r, unsigned max_batch)
{
    jrpc__loop_t *loop = r->loop;
    char *body = r->body;
    size_t len = r->body_len;
    max_batch = req_max_batch(r, max_batch, r->conn != NULL);
    jrpc__envelope_t env;
    jrpc__json_err_t err = {NULL, 0};
    int rc = jrpc__envelope_scan_max(body, len, loop->cfg->max_depth, items_to_record(max_batch),
                                     &r->arena, &env, &err);
    if (rc != 0)
        return req_parse_error(r, rc, &err);
    if (env.is_batch && env.count == 0)
        return req_fail(r, JRPC_CODE_INVALID_REQUEST, "Invalid Request", "empty batch");
    r->is_batch = (uint8_t)env.is_batch;
    if (env.is_batch)
        jrpc__hist_add(&loop->stats.batch, jrpc__hist_batch_bounds, JRPC__HIST_BATCH_N, env.count);
    uint8_t *ok = jrpc__arena_alloc(&r->arena, env.recorded);
    if (ok == NULL || req_alloc_calls(r, env.recorded) != 0)
        return req_parse_error(r, JRPC_ENOMEM, &err);
    for (size_t i = 0; i < env.recorded; i++)
        ok[i] = (uint8_t)call_check(r, &r->calls[i], &env.items[i]);
    if (env.is_batch && env.count > max_batch)
        return req_over_cap(r, env.count, max_batch);
    return req_admit(r, ok);
}

/* Fills REST call c: method name[0..mlen) (in the arena), params v of the given type (an array,
 * an object, or null/nothing for none). Returns 1 when c may run; errors are set on c. */
static int rest_call_check(jrpc__req_t *r, jrpc_call_t *c, const char *name, size_t mlen,
                           jrpc_json_t v, jrpc_json_type_t type)
{
    c->req = r;
    c->answer = 1;
    c->name.ptr = name;
    c->name.len = mlen;
    if (type == JRPC_JSON_ARRAY || type == JRPC_JSON_OBJECT) {
        c->params = v;
    } else if (type != JRPC_JSON_NONE && type != JRPC_JSON_NULL) {
        call_set_error(r, c, JRPC_CODE_INVALID_REQUEST, "Invalid Request",
                       "params must be an array or an object");
        return 0;
    }
    return call_resolve(r, c);
}

static jrpc__req_t *req_start_rest(jrpc__req_t *r, const char *method, size_t mlen, int batch)
{
    char *body = r->body;
    size_t len = r->body_len;
    r->rest = 1;
    const jrpc_config_t *cfg = r->loop->cfg;
    char *name = jrpc__arena_alloc(&r->arena, mlen);
    jrpc__json_err_t err = {NULL, 0};
    if (name == NULL)
        return req_parse_error(r, JRPC_ENOMEM, &err);
    memcpy(name, method, mlen);

    /* The body without surrounding whitespace; empty means no params (or, for a batch, none). */
    jrpc_json_t trimmed = jrpc__json_trim((jrpc_json_t){body, len});
    int rc;
    if (!batch) {
        /* The body is the params, byte-exact; empty means none. */
        jrpc_json_t v = {NULL, 0};
        if (trimmed.len > 0) {
            if ((rc = jrpc__json_check(body, len, cfg->max_depth, &err)) != 0)
                return req_parse_error(r, rc, &err);
            v = trimmed;
        }
        uint8_t *ok = jrpc__arena_alloc(&r->arena, 1); /* lives through a reservation */
        if (ok == NULL || req_alloc_calls(r, 1) != 0)
            return req_parse_error(r, JRPC_ENOMEM, &err);
        *ok = (uint8_t)rest_call_check(r, &r->calls[0], name, mlen, v, jrpc_json_type(v));
        return req_admit(r, ok);
    }
    /* A REST batch: a JSON array of params, one call of the same method each. */
    jrpc__envelope_t env;
    if (trimmed.len == 0)
        return req_fail(r, JRPC_CODE_INVALID_REQUEST, "Invalid Request",
                        "a REST batch body is a JSON array of params");
    if ((rc = jrpc__envelope_scan_max(body, len, cfg->max_depth,
                                      items_to_record(req_max_batch(r, cfg->max_batch, 0)),
                                      &r->arena, &env, &err)) != 0)
        return req_parse_error(r, rc, &err);
    if (!env.is_batch)
        return req_fail(r, JRPC_CODE_INVALID_REQUEST, "Invalid Request",
                        "a REST batch body is a JSON array of params");
    r->is_batch = 1;
    jrpc__hist_add(&r->loop->stats.batch, jrpc__hist_batch_bounds, JRPC__HIST_BATCH_N, env.count);
    if (env.count == 0) {
        req_pump(r); /* answers [] */
        return r;
    }
    uint8_t *ok = jrpc__arena_alloc(&r->arena, env.recorded);
    if (ok == NULL || req_alloc_calls(r, env.recorded) != 0)
        return req_parse_error(r, JRPC_ENOMEM, &err);
    for (size_t i = 0; i < env.recorded; i++)
        ok[i] = (uint8_t)rest_call_check(r, &r->calls[i], name, mlen, env.items[i].value,
                                         env.items[i].type);
    unsigned max_batch = req_max_batch(r, cfg->max_batch, 0);
    if (env.count > max_batch)
        return req_over_cap(r, env.count, max_batch);
    return req_admit(r, ok);
}

/* After a start: the answer made while starting goes back to the caller, or it comes later. */
static int req_started(jrpc__req_t *r, jrpc__answer_t *ans)
{
    r->starting = 0;
    if (!r->early_ready)
        return JRPC__REQ_AGAIN;
    *ans = r->early;
    r->early_ready = 0;
    req_maybe_free(r);
    return JRPC__REQ_DONE;
}

int jrpc__req_run(jrpc__req_t *r, unsigned max_batch, jrpc__answer_t *ans)
{
    r->starting = 1;
    req_start(r, max_batch);
    return req_started(r, ans);
}

int jrpc__req_run_rest(jrpc__req_t *r, const char *method, size_t mlen, int batch,
                       jrpc__answer_t *ans)
{
    r->starting = 1;
    req_start_rest(r, method, mlen, batch);
    return req_started(r, ans);
}

void jrpc__req_detach(jrpc__req_t *r)
{
    /* A notification's effects are still wanted; a call's answer is not. */
    for (size_t i = 0; i < r->ncalls; i++)
        if (r->calls[i].answer)
            jrpc__call_cancel(&r->calls[i]);
    r->answered = 1;
    req_maybe_free(r);
}

uint64_t jrpc__req_seq(const jrpc__req_t *r)
{
    return r->seq;
}
