/* answer.c — what travels in a chunk: the request body (each call with an id of the gateway's
 * own, method re-escaped, params byte-exact), and the mapping of the upstream's answer back to
 * the calls. Results are copied byte-exact and upstream JSON-RPC errors pass through; whatever
 * the answer lacks or gets wrong is answered per item (-32000 naming the upstream and the cause),
 * so one bad chunk never fails the client's whole batch. */
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

jrpc__chunk_t *jrpc__chunk_new(jrpc__upctx_t *ctx, jrpc_call_t *const *calls, size_t n,
                               int is_batch)
{
    static const char head[] = ",{\"jsonrpc\":\"2.0\",\"id\":";
    static const char method[] = ",\"method\":\"";
    static const char params_key[] = ",\"params\":";
    jrpc__chunk_t *ch = calloc(1, sizeof(*ch) + n * sizeof(ch->calls[0]));
    if (ch == NULL)
        return NULL;
    ch->ctx = ctx;
    ch->n = n;
    ch->is_batch = (uint8_t)is_batch;
    ch->base_id = ctx->next_id;
    ctx->next_id += n;
    jrpc_buf_init(&ch->body);
    jrpc_buf_init(&ch->answer);
    /* The whole body is reserved at once (one allocation; the appends below grow it only when an
     * escaped method name is longer than its share), and any failure is checked once at the end
     * (the buffer's sticky error). 20: the digits of the largest id. */
    size_t need = 2;
    for (size_t i = 0; i < n; i++) {
        ch->calls[i] = calls[i];
        need += sizeof head + 20 + sizeof method + jrpc_call_method(calls[i]).len + 1 +
                sizeof params_key + jrpc_call_params(calls[i]).len + 1;
    }
    jrpc_buf_t *b = &ch->body;
    jrpc_buf_reserve(b, need);
    if (is_batch)
        jrpc_buf_append(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        jrpc_str_t name = jrpc_call_method(calls[i]);
        jrpc_json_t params = jrpc_call_params(calls[i]);
        jrpc_buf_append(b, head + (i == 0), sizeof head - 1 - (i == 0));
        jrpc_buf_json_uint64(b, ch->base_id + i);
        if (name_plain(name.ptr, name.len)) {
            jrpc_buf_append(b, method, sizeof method - 1);
            jrpc_buf_append(b, name.ptr, name.len);
            jrpc_buf_append(b, "\"", 1);
        } else {
            jrpc_buf_append(b, method, sizeof method - 2); /* without the opening quote */
            jrpc_buf_json_string(b, name.ptr, name.len);
        }
        if (params.ptr != NULL) {
            jrpc_buf_append(b, params_key, sizeof params_key - 1);
            jrpc_buf_append(b, params.ptr, params.len);
        }
        jrpc_buf_append(b, "}", 1);
    }
    if (is_batch)
        jrpc_buf_append(b, "]", 1);
    if (b->err != 0) {
        jrpc__chunk_free(ch);
        return NULL;
    }
    return ch;
}

void jrpc__chunk_free(jrpc__chunk_t *ch)
{
    jrpc_buf_free(&ch->body);
    jrpc_buf_free(&ch->answer);
    free(ch);
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
    jrpc_reply_error(ch->calls[i], JRPC_CODE_SERVER_ERROR, msg, data);
    ch->calls[i] = NULL;
    JRPC__UPSTAT_ADD(up->stats.items_failed, 1);
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

/* The members of one answer object that matter. */
typedef struct answer_item {
    jrpc_json_t id, result, error;
} answer_item_t;

static int key_is(jrpc_json_t key, const char *name, size_t n)
{
    /* Raw key text: the quoted name, or an escaped spelling of it (rare, compared unescaped). */
    if (key.len == n + 2 && memcmp(key.ptr + 1, name, n) == 0)
        return 1;
    return memchr(key.ptr, '\\', key.len) != NULL && jrpc_json_string_eq(key, name, n);
}

/* Reads an object's id, result and error in one pass; 0, or -1 when v is not an object. */
static int answer_read(jrpc_json_t v, answer_item_t *a)
{
    jrpc_json_iter_t it;
    jrpc_json_t key, val;
    memset(a, 0, sizeof(*a));
    if (jrpc_json_type(v) != JRPC_JSON_OBJECT || jrpc_json_iter_init(&it, v) != 0)
        return -1;
    while (jrpc_json_iter_next(&it, &key, &val)) {
        if (key_is(key, "id", 2))
            a->id = val;
        else if (key_is(key, "result", 6))
            a->result = val;
        else if (key_is(key, "error", 5))
            a->error = val;
    }
    return 0;
}

/* A JSON-RPC answer: exactly one of result and error, and an error is an object. */
static int answer_valid(const answer_item_t *a)
{
    if (a->result.ptr != NULL)
        return a->error.ptr == NULL;
    return a->error.ptr != NULL && jrpc_json_type(a->error) == JRPC_JSON_OBJECT;
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
    ch->calls[i] = NULL;
    JRPC__UPSTAT_ADD(ch->ctx->up->stats.items_rpc_error, 1);
    return 0;
}

/* The call an answer's id names (its index), or -1: ids are base_id … base_id + n - 1. */
static long answer_slot(const jrpc__chunk_t *ch, jrpc_json_t id)
{
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

static void answer_one(jrpc__chunk_t *ch, jrpc_json_t v, answer_tally_t *t)
{
    answer_item_t a;
    if (answer_read(v, &a) != 0) {
        t->unknown++;
        return;
    }
    long i = answer_slot(ch, a.id);
    if (i < 0 || ch->calls[i] == NULL) {
        if ((a.id.ptr == NULL || jrpc_json_type(a.id) == JRPC_JSON_NULL) && a.error.ptr != NULL &&
            jrpc_json_type(a.error) == JRPC_JSON_OBJECT)
            t->one_error = a.error;
        else
            t->unknown++;
        return;
    }
    if (!answer_valid(&a) || (a.error.ptr != NULL && item_error(ch, (size_t)i, a.error) != 0)) {
        jrpc_buf_t data;
        jrpc_buf_init(&data);
        fault_data(&data, ch->ctx->up, JRPC_UPSTREAM_FAULT_INVALID,
                   "the answer to this call has no valid result or error", (jrpc_json_t){0});
        item_fail(ch, (size_t)i, JRPC_UPSTREAM_FAULT_INVALID, data.err ? NULL : data.ptr);
        jrpc_buf_free(&data);
        t->malformed++;
        return;
    }
    if (a.result.ptr != NULL) {
        jrpc_reply_raw(ch->calls[i], a.result.ptr, a.result.len);
        ch->calls[i] = NULL;
    }
    t->answered++;
}

/* A body that is a JSON-RPC answer at all: an object with result or error, or an array. */
static int looks_like_answer(jrpc_json_t v)
{
    jrpc_json_type_t type = jrpc_json_type(v);
    if (type == JRPC_JSON_ARRAY)
        return 1;
    answer_item_t a;
    return type == JRPC_JSON_OBJECT && answer_read(v, &a) == 0 &&
           (a.result.ptr != NULL || a.error.ptr != NULL);
}

static void count_fault(jrpc__chunk_t *ch, int fault)
{
    JRPC__UPSTAT_ADD(ch->ctx->up->stats.faults[fault], 1);
}

int jrpc__chunk_answer(jrpc__chunk_t *ch, long status)
{
    int ok_status = status >= 200 && status < 300;
    const char *p = ch->answer.ptr ? ch->answer.ptr : "";
    size_t n = ch->answer.len, off = 0;
    char detail[160];
    if (n == 0 || jrpc_json_validate(p, n, ANSWER_MAX_DEPTH, &off) != 0) {
        if (!ok_status)
            return JRPC_UPSTREAM_FAULT_HTTP;
        if (n == 0)
            snprintf(detail, sizeof detail, "empty answer (HTTP status %ld)", status);
        else
            snprintf(detail, sizeof detail, "the answer is not JSON (at byte %zu of %zu)", off, n);
        count_fault(ch, JRPC_UPSTREAM_FAULT_INVALID);
        jrpc__chunk_fail(ch, JRPC_UPSTREAM_FAULT_INVALID, detail);
        return -1;
    }
    jrpc_json_t v = {p, n}; /* the accessors skip its surrounding whitespace */
    if (!looks_like_answer(v)) {
        if (!ok_status)
            return JRPC_UPSTREAM_FAULT_HTTP;
        count_fault(ch, JRPC_UPSTREAM_FAULT_INVALID);
        jrpc__chunk_fail(ch, JRPC_UPSTREAM_FAULT_INVALID,
                         "the answer is JSON but not a JSON-RPC response");
        return -1;
    }

    answer_tally_t t = {0, 0, 0, {NULL, 0}};
    if (jrpc_json_type(v) == JRPC_JSON_ARRAY) {
        jrpc_json_iter_t it;
        jrpc_json_t el;
        jrpc_json_iter_init(&it, v);
        while (jrpc_json_iter_next(&it, NULL, &el))
            answer_one(ch, el, &t);
    } else {
        answer_one(ch, v, &t);
    }
    if (t.malformed)
        count_fault(ch, JRPC_UPSTREAM_FAULT_INVALID);
    if (t.answered + t.malformed == ch->n)
        return -1;

    /* Some calls are left without an answer; say why as precisely as the answer allows. */
    if (t.one_error.ptr != NULL && !ch->is_batch && ch->n == 1 && t.answered == 0 &&
        item_error(ch, 0, t.one_error) == 0)
        return -1; /* a single call's error with id null (e.g. the upstream's parse error) */
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
    return -1;
}
