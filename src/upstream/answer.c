/* SPDX-License-Identifier: MIT */
/* answer.c — what travels in a chunk: the request body (each call with an id of the gateway's
 * own, method re-escaped, params byte-exact), and the mapping of the upstream's answer back to
 * the calls. Results are copied byte-exact and upstream JSON-RPC errors pass through; whatever
 * the answer lacks or gets wrong is answered per item (-32000 naming the upstream and the cause),
 * so one bad chunk never fails the client's whole batch. */
#include "../json/internal.h"
#include "../util/digits.h"
#include "../util/hash.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nesting accepted in an upstream's answer: deeper than client requests (JRPC_JSON_MAX_DEPTH)
 * because debug and trace results of a node nest deeply, yet bounded since the answer comes over
 * the network. */
#define ANSWER_MAX_DEPTH 1024

/* 1 when name can go between quotes as it is: no quote, backslash or control character (the
 * usual method name), so the writer's escaping pass is skipped. */
static int name_plain(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == '"' || c == '\\')
            return 0;
    }
    return 1;
}

/* ---- Pass-through ---------------------------------------------------------------------------- */

/* The longest string id passed through (longer ones get the gateway's numbers): a bound on what
 * one id comparison costs. */
#define OWN_ID_MAX 256

/* An id any JSON-RPC server writes back byte for byte: an integer of at most 15 digits (exact in
 * a double, so a JavaScript node echoes the same text), or a string of printable ASCII with no
 * escape and none of the characters some JSON writers escape for HTML (<, >, &). Anything else
 * (1e400, 14066156191713469572, "\u00e9", null) could come back in another spelling and is never
 * sent. */
static int id_plain(jrpc_json_t id)
{
    const char *p = id.ptr;
    size_t n = id.len;
    if (p == NULL || n == 0)
        return 0;
    if (p[0] == '"') {
        if (n < 2 || n > OWN_ID_MAX)
            return 0;
        for (size_t i = 1; i + 1 < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&')
                return 0;
        }
        return 1;
    }
    size_t i = p[0] == '-';
    if (n - i == 0 || n - i > 15 || (p[i] == '0' && n - i > 1) || (i == 1 && p[1] == '0'))
        return 0;
    for (; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

static uint64_t id_hash(jrpc_json_t id)
{
    return jrpc__hash_str(id.ptr, id.len);
}

static int id_eq(jrpc_json_t a, jrpc_json_t b)
{
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* Makes ch->id_slots for the calls as they are now: 0, or -1 when two calls share an id (or out
 * of memory), and the chunk must use the gateway's ids. */
static int own_ids_index(jrpc__chunk_t *ch)
{
    size_t cap = 4;
    while (cap < 2 * ch->n)
        cap <<= 1;
    uint32_t *t = calloc(cap, sizeof(*t));
    if (t == NULL)
        return -1;
    for (size_t i = 0; i < ch->n; i++) {
        jrpc_json_t id = jrpc_call_id(ch->calls[i]);
        size_t h = (size_t)id_hash(id) & (cap - 1);
        for (; t[h] != 0; h = (h + 1) & (cap - 1)) {
            if (id_eq(jrpc_call_id(ch->calls[t[h] - 1]), id)) {
                free(t);
                return -1;
            }
        }
        t[h] = (uint32_t)i + 1;
    }
    free(ch->id_slots);
    ch->id_slots = t;
    ch->id_mask = cap - 1;
    return 0;
}

/* Whether the chunk may pass its calls through: a whole client batch for this upstream (no other
 * chunk took part of it), in one upstream batch, whose every call has an id of its own (no
 * notification, no duplicate) that the upstream writes back unchanged. Each call was checked and
 * admitted by the engine all the same. Calls that joined one of them (dedup) are answered from its
 * slot whatever their ids, as with the gateway's ids. */
static int own_ids_ok(const jrpc__chunk_t *ch, int whole)
{
    if (!whole || !ch->is_batch || ch->n > UINT32_MAX - 1)
        return 0;
    for (size_t i = 0; i < ch->n; i++) {
        const jrpc_call_t *call = ch->calls[i];
        if (!jrpc_call_in_batch(call) || jrpc_call_raw(call).ptr == NULL ||
            !id_plain(jrpc_call_id(call)))
            return 0;
    }
    return 1;
}

/* The body of a pass-through chunk: the calls' own request objects, as the client sent them. */
static int own_ids_build(jrpc__chunk_t *ch)
{
    jrpc_buf_t *b = &ch->body;
    size_t need = 2;
    for (size_t i = 0; i < ch->n; i++)
        need += jrpc_call_raw(ch->calls[i]).len + 1;
    if (jrpc_buf_reserve(b, need) != 0)
        return JRPC_ENOMEM;
    char *w = b->ptr;
    *w++ = '[';
    for (size_t i = 0; i < ch->n; i++) {
        jrpc_json_t raw = jrpc_call_raw(ch->calls[i]);
        if (i != 0)
            *w++ = ',';
        memcpy(w, raw.ptr, raw.len);
        w += raw.len;
    }
    *w++ = ']';
    b->len = (size_t)(w - b->ptr);
    return 0;
}

jrpc__chunk_t *jrpc__chunk_new(jrpc__upctx_t *ctx, jrpc_call_t *const *calls, size_t n,
                               int is_batch, int whole)
{
    jrpc__chunk_t *ch = calloc(1, sizeof(*ch) + n * sizeof(ch->calls[0]));
    if (ch == NULL)
        return NULL;
    ch->ctx = ctx;
    ch->n = n;
    ch->is_batch = (uint8_t)is_batch;
    ch->base_id = ctx->next_id;
    ctx->next_id += n;
    memcpy(ch->calls, calls, n * sizeof(ch->calls[0]));
    jrpc_buf_init(&ch->body);
    jrpc_buf_init(&ch->answer);
    ch->own_ids = (uint8_t)own_ids_ok(ch, whole);
    if (jrpc__chunk_build(ch) != 0 || jrpc__share_attach(ch) != 0) {
        free(ch->groups); /* its groups stay in the table: the caller answers them */
        ch->groups = NULL;
        jrpc__chunk_free(ch);
        return NULL;
    }
    return ch;
}

int jrpc__chunk_build(jrpc__chunk_t *ch)
{
    static const char head[] = ",{\"jsonrpc\":\"2.0\",\"id\":";
    static const char method[] = ",\"method\":\"";
    static const char params_key[] = ",\"params\":";
    size_t n = ch->n;
    jrpc_buf_t *b = &ch->body;
    b->len = 0;
    b->err = 0;
    ch->stale = 0;
    if (ch->own_ids && own_ids_index(ch) != 0)
        ch->own_ids = 0; /* ids base_id … are still the chunk's own */
    if (ch->own_ids)
        return own_ids_build(ch);
    /* The whole body is reserved at once (one allocation), and each call is then written into it
     * by hand: a call is about a dozen pieces, and an append per piece cost more than the bytes
     * (a fifth of the gateway's CPU on a batch of 100). Only an escaped method name goes through
     * the writer, and may take more than its share. 20: the digits of the largest id. */
    size_t need = 2;
    for (size_t i = 0; i < n; i++)
        need += sizeof head + 20 + sizeof method + jrpc_call_method(ch->calls[i]).len + 1 +
                sizeof params_key + jrpc_call_params(ch->calls[i]).len + 1;
    if (jrpc_buf_reserve(b, need) != 0)
        return JRPC_ENOMEM;
    if (ch->is_batch)
        b->ptr[b->len++] = '[';
    int escaped = 0; /* a name escaped longer than its share: later calls check their room */
    for (size_t i = 0; i < n; i++) {
        jrpc_str_t name = jrpc_call_method(ch->calls[i]);
        jrpc_json_t params = jrpc_call_params(ch->calls[i]);
        int plain = name_plain(name.ptr, name.len);
        /* The call's upper bound, the closing ']' included. */
        if (escaped && jrpc_buf_reserve(b, sizeof head + 20 + sizeof method + name.len + 1 +
                                               sizeof params_key + params.len + 2) != 0)
            return JRPC_ENOMEM;
        char *w = b->ptr + b->len;
        memcpy(w, head + (i == 0), sizeof head - 1 - (i == 0));
        w += sizeof head - 1 - (i == 0);
        w = jrpc__put_u64(w, ch->base_id + i);
        if (plain) {
            memcpy(w, method, sizeof method - 1);
            w += sizeof method - 1;
            memcpy(w, name.ptr, name.len);
            w += name.len;
            *w++ = '"';
        } else {
            escaped = 1;
            memcpy(w, method, sizeof method - 2); /* without the opening quote */
            b->len = (size_t)(w + sizeof method - 2 - b->ptr);
            if (jrpc_buf_json_string(b, name.ptr, name.len) != 0 ||
                jrpc_buf_reserve(b, sizeof params_key + params.len + 2) != 0)
                return JRPC_ENOMEM;
            w = b->ptr + b->len;
        }
        if (params.ptr != NULL) {
            memcpy(w, params_key, sizeof params_key - 1);
            w += sizeof params_key - 1;
            memcpy(w, params.ptr, params.len);
            w += params.len;
        }
        *w++ = '}';
        b->len = (size_t)(w - b->ptr);
    }
    if (ch->is_batch)
        b->ptr[b->len++] = ']';
    return 0;
}

void jrpc__chunk_free(jrpc__chunk_t *ch)
{
    /* The batch auto_batch's hold waits for is done (its calls go at the loop's next check: see
     * ctx_leave in client.c). */
    if (ch->ctx != NULL && ch->ctx->hold_ch == ch)
        ch->ctx->hold_ch = NULL;
    /* Every slot was answered, and its group with it. */
    for (size_t i = 0; ch->groups != NULL && i < ch->n; i++)
        jrpc__group_free(jrpc__share_done(ch, i));
    free(ch->groups);
    free(ch->id_slots);
    jrpc_buf_free(&ch->body);
    jrpc_buf_free(&ch->answer);
    free(ch);
}

size_t jrpc__chunk_prune(jrpc__chunk_t *ch)
{
    size_t kept = 0;
    for (size_t i = 0; i < ch->n; i++) {
        jrpc_call_t *call = ch->calls[i];
        if (!jrpc__share_cancelled(ch, i)) {
            if (ch->groups != NULL)
                ch->groups[kept] = ch->groups[i];
            ch->calls[kept++] = call;
            continue;
        }
        /* Its deadline passed (this answer is the client's when the engine's timer has not run
         * yet), or no one reads it: the engine drops it then. */
        jrpc__group_free(jrpc__share_done(ch, i));
        jrpc_reply_error(call, JRPC_CODE_TIMEOUT, "Request timed out", NULL);
    }
    size_t dropped = ch->n - kept;
    if (dropped != 0) {
        ch->n = kept;
        ch->stale = 1;
        JRPC__UPSTAT_ADD(ch->ctx->up->stats.items_dropped, dropped);
    }
    return dropped;
}

/* ---- Faults ---------------------------------------------------------------------------------- */

static const char *const fault_messages[] = {
#define UPSTREAM_FAULT_MSG(name, key, msg) msg,
    JRPC_UPSTREAM_FAULT_MAP(UPSTREAM_FAULT_MSG)
#undef UPSTREAM_FAULT_MSG
};

/* Answers call i -32000 "upstream NAME: …" with data (NUL-terminated JSON). */
static void item_fail(jrpc__chunk_t *ch, size_t i, int fault, const char *data)
{
    jrpc_upstream_t *up = ch->ctx->up;
    char msg[160];
    snprintf(msg, sizeof msg, "upstream %s: %s", up->name, fault_messages[fault]);
    jrpc__group_t *g = jrpc__share_done(ch, i);
    JRPC__UPSTAT_ADD(up->stats.items_failed, g ? g->n : 1);
    jrpc__share_reply_error(g, ch->calls[i], JRPC_CODE_SERVER_ERROR, msg, data);
    ch->calls[i] = NULL;
}

/* {"upstream":NAME,"cause":KIND,"detail":TEXT[,"error":RAW]} and a NUL, into b. */
static void fault_data(jrpc_buf_t *b, jrpc_upstream_t *up, int fault, const char *detail,
                       jrpc_json_t raw_error)
{
    jrpc_buf_appendz(b, "{\"upstream\":");
    jrpc_buf_json_string(b, up->name, strlen(up->name));
    jrpc_buf_appendz(b, ",\"cause\":\"");
    jrpc_buf_appendz(b, jrpc_upstream_fault_name(fault));
    jrpc_buf_appendz(b, "\",\"detail\":");
    jrpc_buf_json_string(b, detail, strlen(detail));
    if (raw_error.ptr != NULL) {
        jrpc_buf_appendz(b, ",\"error\":");
        jrpc_buf_append(b, raw_error.ptr, raw_error.len);
    }
    jrpc_buf_append(b, "}", 2); /* with the NUL jrpc_reply_error needs */
}

static void chunk_fail_with(jrpc__chunk_t *ch, int fault, const char *detail, jrpc_json_t raw)
{
    jrpc_buf_t data;
    jrpc_buf_init(&data);
    fault_data(&data, ch->ctx->up, fault, detail, raw);
    for (size_t i = 0; i < ch->n; i++)
        if (ch->calls[i] != NULL)
            item_fail(ch, i, fault, data.err ? NULL : data.ptr);
    jrpc_buf_free(&data);
}

void jrpc__chunk_fail(jrpc__chunk_t *ch, int fault, const char *detail)
{
    chunk_fail_with(ch, fault, detail, (jrpc_json_t){NULL, 0});
}

/* ---- Answers --------------------------------------------------------------------------------- */

/* The upstream's answer text, shared by the results that point into it (jrpc_reply_ref): freed
 * when the last request that carries one of them has been answered. Loop thread only (the
 * chunk's calls all belong to its loop), so the count is plain. */
typedef struct answer_hold {
    size_t refs;
    jrpc_buf_t text;
} answer_hold_t;

static void hold_release(void *data)
{
    answer_hold_t *h = data;
    if (--h->refs != 0)
        return;
    jrpc_buf_free(&h->text);
    free(h);
}

/* A JSON-RPC answer: exactly one of result and error, and an error is an object. */
static int answer_valid(const jrpc__item_t *a)
{
    jrpc_json_t result = a->member[JRPC__M_RESULT], error = a->member[JRPC__M_ERROR];
    if (result.ptr != NULL)
        return error.ptr == NULL;
    return error.ptr != NULL && jrpc_json_type(error) == JRPC_JSON_OBJECT;
}

/* Passes an upstream error object through to call i byte for byte, extra members included. 0, or
 * -1 when it is not a JSON-RPC error object (no integer code, or no string message: both are
 * required, and jrpc_reply_error_raw passes on only what has them). */
static int item_error(jrpc__chunk_t *ch, size_t i, jrpc_json_t error)
{
    jrpc_json_t code_v, msg_v;
    int64_t code;
    if (jrpc_json_get(error, "code", &code_v) != 0 || jrpc_json_int64(code_v, &code) != 0 ||
        code < INT32_MIN || code > INT32_MAX || jrpc_json_get(error, "message", &msg_v) != 0 ||
        jrpc_json_type(msg_v) != JRPC_JSON_STRING)
        return -1;
    jrpc_reply_error_raw(ch->calls[i], (int)code, error.ptr, error.len);
    jrpc__group_t *g = jrpc__share_done(ch, i);
    for (size_t k = 1; g != NULL && k < g->n; k++)
        jrpc_reply_error_raw(g->calls[k], (int)code, error.ptr, error.len);
    jrpc__group_free(g);
    ch->calls[i] = NULL;
    JRPC__UPSTAT_ADD(ch->ctx->up->stats.items_rpc_error, 1);
    return 0;
}

/* The call an answer's id names (its index), or -1: ids are base_id … base_id + n - 1, or the
 * calls' own (own_ids; answers usually come in order, so the k-th answer is tried against the
 * k-th call first). A call answered already is never looked at: its request may be gone. */
static long answer_slot(const jrpc__chunk_t *ch, jrpc_json_t id, size_t k)
{
    if (ch->own_ids) {
        if (id.ptr == NULL)
            return -1;
        if (k < ch->n && ch->calls[k] != NULL && id_eq(jrpc_call_id(ch->calls[k]), id))
            return (long)k;
        for (size_t h = (size_t)id_hash(id) & ch->id_mask; ch->id_slots[h] != 0;
             h = (h + 1) & ch->id_mask) {
            size_t i = ch->id_slots[h] - 1;
            if (ch->calls[i] != NULL && id_eq(jrpc_call_id(ch->calls[i]), id))
                return (long)i;
        }
        return -1;
    }
    uint64_t v;
    if (id.ptr == NULL || jrpc_json_uint64(id, &v) != 0 || v < ch->base_id ||
        v - ch->base_id >= ch->n)
        return -1;
    return (long)(v - ch->base_id);
}

/* What went wrong across one answer, for the items left without an answer. */
typedef struct answer_tally {
    size_t answered;       /* items given an answer (result or error) */
    size_t unknown;        /* answers whose id matched no unanswered item */
    size_t malformed;      /* answers to a known id that were not JSON-RPC */
    jrpc_json_t one_error; /* an error object with id null: the upstream refused the whole body */
} answer_tally_t;

/* The hold of the chunk's answer text, made when the first result refers into it (the text
 * moves out of the chunk); NULL when out of memory (results are copied then). */
static answer_hold_t *hold_get(jrpc__chunk_t *ch, answer_hold_t **h, int *failed)
{
    if (*h == NULL && !*failed) {
        *h = malloc(sizeof(**h));
        if (*h == NULL) {
            *failed = 1;
            return NULL;
        }
        (*h)->refs = 1; /* jrpc__chunk_answer's own, dropped when it returns */
        (*h)->text = ch->answer;
        jrpc_buf_init(&ch->answer);
    }
    return *h;
}

/* Maps one answer item (as the scanner recorded it) to its call. A result is replied by reference
 * into the answer text (through the hold *h), or copied when no hold could be made. */
static void answer_one(jrpc__chunk_t *ch, size_t at, const jrpc__item_t *a, answer_hold_t **hp,
                       int *hold_failed, answer_tally_t *t)
{
    if (a->type != JRPC_JSON_OBJECT) {
        t->unknown++;
        return;
    }
    jrpc_json_t id = a->member[JRPC__M_ID], error = a->member[JRPC__M_ERROR];
    jrpc_json_t result = a->member[JRPC__M_RESULT];
    long i = answer_slot(ch, id, at);
    if (i < 0 || ch->calls[i] == NULL) {
        if ((id.ptr == NULL || jrpc_json_type(id) == JRPC_JSON_NULL) && error.ptr != NULL &&
            jrpc_json_type(error) == JRPC_JSON_OBJECT)
            t->one_error = error;
        else
            t->unknown++;
        return;
    }
    if (!answer_valid(a) || (error.ptr != NULL && item_error(ch, (size_t)i, error) != 0)) {
        jrpc_buf_t data;
        jrpc_buf_init(&data);
        fault_data(&data, ch->ctx->up, JRPC_UPSTREAM_FAULT_INVALID,
                   "the answer to this call has no valid result or error", (jrpc_json_t){0});
        item_fail(ch, (size_t)i, JRPC_UPSTREAM_FAULT_INVALID, data.err ? NULL : data.ptr);
        jrpc_buf_free(&data);
        t->malformed++;
        return;
    }
    if (result.ptr != NULL) {
        jrpc__share_store(ch, (size_t)i, result.ptr, result.len);
        jrpc__group_t *g = jrpc__share_done(ch, (size_t)i);
        answer_hold_t *h = hold_get(ch, hp, hold_failed);
        for (size_t k = 0; k < (g ? g->n : 1); k++) {
            jrpc_call_t *call = k == 0 ? ch->calls[i] : g->calls[k];
            if (h != NULL) {
                h->refs++;
                jrpc_reply_ref(call, result.ptr, result.len, hold_release, h);
            } else {
                jrpc_reply_raw(call, result.ptr, result.len);
            }
        }
        jrpc__group_free(g);
        ch->calls[i] = NULL;
    }
    t->answered++;
}

static void count_fault(jrpc__chunk_t *ch, int fault)
{
    JRPC__UPSTAT_ADD(ch->ctx->up->stats.faults[fault], 1);
}

/* Answer items recorded beyond the calls asked: enough to tell unknown ids apart, while a hostile
 * answer of millions of tiny items costs no memory per item (the rest are validated and
 * counted). */
#define ANSWER_ITEMS_PER_CALL 2

int jrpc__chunk_answer(jrpc__chunk_t *ch, long status)
{
    int ok_status = status >= 200 && status < 300;
    const char *p = ch->answer.ptr ? ch->answer.ptr : "";
    size_t n = ch->answer.len;
    char detail[160];
    /* One pass: validated and every item's id, result and error recorded (the same scanner as
     * client requests, src/json). */
    jrpc__arena_t arena;
    jrpc__arena_init(&arena);
    jrpc__envelope_t env;
    jrpc__json_err_t err = {NULL, 0};
    int rc = n == 0
                 ? JRPC_EJSON
                 : jrpc__envelope_scan_max(p, n, ANSWER_MAX_DEPTH,
                                           ch->n * ANSWER_ITEMS_PER_CALL + 1, &arena, &env, &err);
    if (rc != 0) {
        jrpc__arena_free(&arena);
        if (!ok_status)
            return JRPC_UPSTREAM_FAULT_HTTP;
        if (n == 0)
            snprintf(detail, sizeof detail, "empty answer (HTTP status %ld)", status);
        else if (rc == JRPC_ENOMEM)
            snprintf(detail, sizeof detail, "out of memory reading the answer");
        else
            snprintf(detail, sizeof detail, "the answer is not JSON (at byte %zu of %zu)",
                     err.offset, n);
        count_fault(ch, JRPC_UPSTREAM_FAULT_INVALID);
        jrpc__chunk_fail(ch, JRPC_UPSTREAM_FAULT_INVALID, detail);
        return -1;
    }
    /* A JSON-RPC answer at all: an array (items may be none), or an object with result or
     * error. */
    const jrpc__item_t *top = env.is_batch ? NULL : env.items;
    if (top != NULL &&
        (top->type != JRPC_JSON_OBJECT ||
         (top->member[JRPC__M_RESULT].ptr == NULL && top->member[JRPC__M_ERROR].ptr == NULL))) {
        jrpc__arena_free(&arena);
        if (!ok_status)
            return JRPC_UPSTREAM_FAULT_HTTP;
        count_fault(ch, JRPC_UPSTREAM_FAULT_INVALID);
        jrpc__chunk_fail(ch, JRPC_UPSTREAM_FAULT_INVALID,
                         "the answer is JSON but not a JSON-RPC response");
        return -1;
    }

    /* Results are replied by reference into the answer text, which then moves into a hold that
     * the last request carrying one of them frees: a forwarded result is copied once, into the
     * client's answer. */
    answer_hold_t *h = NULL;
    int hold_failed = 0;
    answer_tally_t t = {0, 0, 0, {NULL, 0}};
    for (size_t i = 0; i < env.recorded; i++)
        answer_one(ch, i, &env.items[i], &h, &hold_failed, &t);
    t.unknown += env.count - env.recorded;
    jrpc__arena_free(&arena);
    if (t.malformed)
        count_fault(ch, JRPC_UPSTREAM_FAULT_INVALID);
    if (t.answered + t.malformed == ch->n)
        goto done;

    /* Some calls are left without an answer; say why as precisely as the answer allows. */
    if (t.one_error.ptr != NULL && !ch->is_batch && ch->n == 1 && t.answered == 0 &&
        item_error(ch, 0, t.one_error) == 0)
        goto done; /* a single call's error with id null (e.g. the upstream's parse error) */
    int fault;
    if (t.one_error.ptr != NULL) {
        fault = JRPC_UPSTREAM_FAULT_BATCH_ERROR;
        snprintf(detail, sizeof detail, "the upstream answered %zu calls with one error object",
                 ch->n);
    } else if (t.unknown != 0) {
        fault = JRPC_UPSTREAM_FAULT_UNKNOWN_ID;
        snprintf(detail, sizeof detail,
                 "%zu answers carried ids that were not asked, none this call's", t.unknown);
    } else {
        fault = JRPC_UPSTREAM_FAULT_MISSING;
        snprintf(detail, sizeof detail, "the upstream answered %zu of %zu calls",
                 t.answered + t.malformed, ch->n);
    }
    count_fault(ch, fault);
    chunk_fail_with(ch, fault, detail, t.one_error);
done:
    if (h != NULL)
        hold_release(h);
    return -1;
}
