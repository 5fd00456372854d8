/* SPDX-License-Identifier: MIT */
/* upstream.c — libFuzzer target for the gateway's answer mapping (src/upstream/answer.c): what a
 * chunk of forwarded calls is replied when an upstream node sends back these bytes.
 *
 * The first input byte picks the chunk, the rest is the answer body:
 *   bits 0-2  calls in the chunk, 1 … 8
 *   bit 3     sent as a batch (always when there are two or more calls)
 *   bits 4-5  HTTP status: 0 and 3 → 200, 1 → 429, 2 → 502
 *   bits 6-7  the chunk's first id: 1, 2^64 - 8 (the last id is UINT64_MAX), 1000, 2^32 - 1
 * so a seed that starts with '0' … '7' is a 200 answer to 1 … 8 calls with ids from 1.
 *
 * The engine's calls are records here (jrpc_call_method/params and jrpc_reply_* below). For every
 * input:
 *  1. Every call gets exactly one reply when jrpc__chunk_answer says the answer was taken, none
 *     when it says the HTTP fault is to be retried (only for a non-2xx status), and then exactly
 *     one from jrpc__chunk_fail.
 *  2. Results and passed-through errors are views into the answer (never copies or bytes from
 *     elsewhere), valid JSON, and faults are -32000 "upstream NAME: …" with data holding the
 *     upstream's name, a known cause and a detail string; the counters match the replies.
 *  3. A reference mapping written here over yajl's tree (an independent parser) from the rules in
 *     docs/gateway.md gives the same outcome for every call: which result or error value (compared
 *     as trees), or which fault cause. */
#include "upstream/internal.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CALLS 8
#define NAME "node"

#define FUZZ_NAME "fuzz_upstream"
#include "check.h"

/* ---- Calls ----------------------------------------------------------------------------------- */

typedef enum { OUT_NONE, OUT_RESULT, OUT_ERROR, OUT_ERROR_RAW } out_kind_t;

struct jrpc_call {
    unsigned replies;
    out_kind_t kind;
    int code;
    const char *view; /* result or raw error: what was handed over */
    size_t view_len;
    char *message;           /* jrpc_reply_error's, copied */
    char *data;              /* its data_json, copied, or NULL */
    jrpc_release_cb release; /* jrpc_reply_ref's, run once the checks are done */
    void *release_data;
};

static jrpc_call_t calls[MAX_CALLS];

JRPC_EXTERN jrpc_str_t jrpc_call_method(const jrpc_call_t *call)
{
    (void)call;
    return (jrpc_str_t){"eth_getBalance", 14};
}

/* Pruning cancelled calls happens before sending, not here. */
JRPC_EXTERN int jrpc_call_cancelled(const jrpc_call_t *call)
{
    (void)call;
    return 0;
}

JRPC_EXTERN jrpc_json_t jrpc_call_params(const jrpc_call_t *call)
{
    (void)call;
    return (jrpc_json_t){"[\"0x0\",\"latest\"]", 16};
}

/* Chunks here are never whole client batches (jrpcd's ids, which the reference mapping uses);
 * answer.c's pass-through asks these only for those. */
JRPC_EXTERN jrpc_json_t jrpc_call_id(const jrpc_call_t *call)
{
    (void)call;
    return (jrpc_json_t){"1", 1};
}

JRPC_EXTERN jrpc_json_t jrpc_call_raw(const jrpc_call_t *call)
{
    (void)call;
    return (jrpc_json_t){NULL, 0};
}

JRPC_EXTERN int jrpc_call_in_batch(const jrpc_call_t *call)
{
    (void)call;
    return 1;
}

static void replied(jrpc_call_t *call, out_kind_t kind, int code)
{
    CHECK(call >= calls && call < calls + MAX_CALLS, "a reply to something that is no call");
    CHECK(call->replies++ == 0, "call %d replied twice", (int)(call - calls));
    call->kind = kind;
    call->code = code;
}

JRPC_EXTERN void jrpc_reply_raw(jrpc_call_t *call, const char *json, size_t len)
{
    replied(call, OUT_RESULT, 0);
    call->view = json;
    call->view_len = len;
}

/* A result by reference: kept, as the engine keeps it, until the checks are done. */
JRPC_EXTERN void jrpc_reply_ref(jrpc_call_t *call, const char *json, size_t len,
                                jrpc_release_cb release, void *data)
{
    jrpc_reply_raw(call, json, len);
    call->release = release;
    call->release_data = data;
}

JRPC_EXTERN void jrpc_reply_error_raw(jrpc_call_t *call, int code, const char *error_json,
                                      size_t len)
{
    replied(call, OUT_ERROR_RAW, code);
    call->view = error_json;
    call->view_len = len;
}

JRPC_EXTERN void jrpc_reply_error(jrpc_call_t *call, int code, const char *message,
                                  const char *data_json)
{
    replied(call, OUT_ERROR, code);
    call->message = strdup(message);
    call->data = data_json ? strdup(data_json) : NULL;
}

/* Answer sharing (share.c) is not under test here: the chunks this target builds have no groups
 * (ch->groups is NULL), so each hook does what share.c does for a call without one. */
int jrpc__share_attach(jrpc__chunk_t *ch)
{
    (void)ch;
    return 0;
}

jrpc__group_t *jrpc__share_done(jrpc__chunk_t *ch, size_t i)
{
    (void)ch;
    (void)i;
    return NULL;
}

void jrpc__group_free(jrpc__group_t *g)
{
    (void)g;
}

void jrpc__share_reply_error(jrpc__group_t *g, jrpc_call_t *call, int code, const char *msg,
                             const char *data)
{
    (void)g;
    jrpc_reply_error(call, code, msg, data);
}

int jrpc__share_cancelled(jrpc__chunk_t *ch, size_t i)
{
    return jrpc_call_cancelled(ch->calls[i]);
}

void jrpc__share_store(jrpc__chunk_t *ch, size_t i, const char *p, size_t len)
{
    (void)ch;
    (void)i;
    (void)p;
    (void)len;
}

static const char *const fault_keys[] = {
#define FAULT_KEY(name, key, msg) key,
    JRPC_UPSTREAM_FAULT_MAP(FAULT_KEY)
#undef FAULT_KEY
};

JRPC_EXTERN const char *jrpc_upstream_fault_name(int fault)
{
    return fault >= 0 && fault < JRPC_UPSTREAM_FAULT_COUNT ? fault_keys[fault] : "unknown";
}

/* ---- Counts printed at exit ------------------------------------------------------------------ */

static unsigned long n_inputs, n_retry, n_results, n_errors, n_compared, n_nul_skipped;
static unsigned long n_cause[JRPC_UPSTREAM_FAULT_COUNT]; /* calls given each fault */

static void print_stats(void)
{
    fprintf(stderr,
            "fuzz_upstream: %lu inputs, %lu retried as http, %lu results, %lu errors passed, "
            "%lu checked against the reference (%lu skipped: \\u0000 in keys)",
            n_inputs, n_retry, n_results, n_errors, n_compared, n_nul_skipped);
    for (int c = 0; c < JRPC_UPSTREAM_FAULT_COUNT; c++)
        if (n_cause[c] != 0)
            fprintf(stderr, ", %s %lu", fault_keys[c], n_cause[c]);
    fprintf(stderr, "\n");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    atexit(print_stats);
    return 0;
}

/* ---- The reference: docs/gateway.md's rules over yajl's tree --------------------------------- */

typedef struct {
    out_kind_t kind;
    int fault;    /* OUT_ERROR: the cause */
    yajl_val val; /* OUT_RESULT, OUT_ERROR_RAW: the value; OUT_ERROR batch_error: data.error */
} expect_t;

/* The last member `key` of object o, or NULL. */
static yajl_val member(yajl_val o, const char *key)
{
    yajl_val v = NULL;
    for (size_t i = 0; i < o->u.object.len; i++)
        if (strcmp(o->u.object.keys[i], key) == 0)
            v = o->u.object.values[i];
    return v;
}

/* Number text written as an integer: -?[0-9]+; its sign and magnitude (saturated). */
static int integer_text(yajl_val v, int *neg, uint64_t *mag, int *overflow)
{
    if (!YAJL_IS_NUMBER(v))
        return 0;
    const char *s = v->u.number.r;
    *neg = *s == '-';
    s += *neg;
    if (*s == '\0')
        return 0;
    *mag = 0;
    *overflow = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
        unsigned d = (unsigned)(*s - '0');
        if (*mag > (UINT64_MAX - d) / 10)
            *overflow = 1;
        else
            *mag = *mag * 10 + d;
    }
    return 1;
}

/* The call an id names, or -1. */
static long ref_slot(yajl_val id, uint64_t base, size_t n)
{
    int neg, overflow;
    uint64_t v;
    if (id == NULL || !integer_text(id, &neg, &v, &overflow) || overflow || (neg && v != 0))
        return -1;
    if (v < base || v - base >= n)
        return -1;
    return (long)(v - base);
}

/* A JSON-RPC error object: an integer code that fits 32 bits and a string message. */
static int ref_error_ok(yajl_val e)
{
    int neg, overflow;
    uint64_t mag;
    yajl_val code = member(e, "code"), msg = member(e, "message");
    if (code == NULL || !integer_text(code, &neg, &mag, &overflow) || overflow)
        return 0;
    if (neg ? mag > (uint64_t)INT32_MAX + 1 : mag > (uint64_t)INT32_MAX)
        return 0;
    return YAJL_IS_STRING(msg);
}

/* Fills want[0..n) for the parsed answer `root`. Returns 0, or 1 when the whole answer is not
 * JSON-RPC (and every call then gets `invalid`, or a retry for an error status). */
static int ref_map(yajl_val root, uint64_t base, size_t n, int is_batch, expect_t *want)
{
    if (!YAJL_IS_ARRAY(root) &&
        !(YAJL_IS_OBJECT(root) && (member(root, "result") || member(root, "error"))))
        return 1;
    size_t nitems = YAJL_IS_ARRAY(root) ? root->u.array.len : 1;
    size_t answered = 0, unknown = 0, malformed = 0;
    int done[MAX_CALLS] = {0};
    yajl_val one_error = NULL;
    for (size_t k = 0; k < nitems; k++) {
        yajl_val it = YAJL_IS_ARRAY(root) ? root->u.array.values[k] : root;
        /* answer.c records the first 2n + 1 items only (ANSWER_ITEMS_PER_CALL); the rest are
         * counted as unknown, whatever they say. */
        if (k >= n * 2 + 1) {
            unknown++;
            continue;
        }
        if (!YAJL_IS_OBJECT(it)) {
            unknown++;
            continue;
        }
        yajl_val id = member(it, "id"), result = member(it, "result"), error = member(it, "error");
        long i = ref_slot(id, base, n);
        if (i < 0 || done[i]) {
            if ((id == NULL || YAJL_IS_NULL(id)) && YAJL_IS_OBJECT(error))
                one_error = error;
            else
                unknown++;
            continue;
        }
        done[i] = 1;
        int valid = result != NULL ? error == NULL : YAJL_IS_OBJECT(error);
        if (valid && result == NULL && !ref_error_ok(error))
            valid = 0;
        if (!valid) {
            want[i] = (expect_t){OUT_ERROR, JRPC_UPSTREAM_FAULT_INVALID, NULL};
            malformed++;
        } else if (result != NULL) {
            want[i] = (expect_t){OUT_RESULT, -1, result};
            answered++;
        } else {
            want[i] = (expect_t){OUT_ERROR_RAW, -1, error};
            answered++;
        }
    }
    if (answered + malformed == n)
        return 0;
    if (one_error != NULL && !is_batch && n == 1 && answered == 0 && ref_error_ok(one_error)) {
        want[0] = (expect_t){OUT_ERROR_RAW, -1, one_error};
        return 0;
    }
    int fault = one_error != NULL ? JRPC_UPSTREAM_FAULT_BATCH_ERROR
                : unknown != 0    ? JRPC_UPSTREAM_FAULT_UNKNOWN_ID
                                  : JRPC_UPSTREAM_FAULT_MISSING;
    for (size_t i = 0; i < n; i++)
        if (!done[i])
            want[i] = (expect_t){OUT_ERROR, fault, one_error};
    return 0;
}

/* Two yajl trees hold the same JSON (numbers by their text, members in order). */
static int tree_eq(yajl_val a, yajl_val b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case yajl_t_string:
        return strcmp(a->u.string, b->u.string) == 0;
    case yajl_t_number:
        return strcmp(a->u.number.r, b->u.number.r) == 0;
    case yajl_t_array:
        if (a->u.array.len != b->u.array.len)
            return 0;
        for (size_t i = 0; i < a->u.array.len; i++)
            if (!tree_eq(a->u.array.values[i], b->u.array.values[i]))
                return 0;
        return 1;
    case yajl_t_object:
        if (a->u.object.len != b->u.object.len)
            return 0;
        for (size_t i = 0; i < a->u.object.len; i++)
            if (strcmp(a->u.object.keys[i], b->u.object.keys[i]) != 0 ||
                !tree_eq(a->u.object.values[i], b->u.object.values[i]))
                return 0;
        return 1;
    default:
        return 1;
    }
}

static yajl_val parse_z(const char *p, size_t n)
{
    char *z = malloc(n + 1);
    CHECK(z != NULL, "out of memory");
    memcpy(z, p, n);
    z[n] = '\0';
    char err[256];
    yajl_val v = yajl_tree_parse(z, err, sizeof err);
    free(z);
    return v;
}

/* ---- One input ------------------------------------------------------------------------------- */

/* The checks that hold for every reply, whatever the reference says. */
static void check_reply(size_t i, const char *ans, size_t len)
{
    jrpc_call_t *c = &calls[i];
    CHECK(c->replies == 1, "call %zu replied %u times", i, c->replies);
    if (c->kind == OUT_RESULT || c->kind == OUT_ERROR_RAW) {
        CHECK(c->view >= ans && c->view_len <= len && (size_t)(c->view - ans) <= len - c->view_len,
              "call %zu: a reply outside the answer", i);
        CHECK(jrpc_json_validate(c->view, c->view_len, 1024, NULL) == 0,
              "call %zu: a reply that is not one JSON value", i);
        if (c->kind == OUT_RESULT) {
            n_results++;
        } else {
            n_errors++;
            jrpc_json_t e = {c->view, c->view_len}, code, msg;
            int64_t v;
            CHECK(jrpc_json_type(e) == JRPC_JSON_OBJECT, "call %zu: a passed error is no object",
                  i);
            CHECK(jrpc_json_get(e, "code", &code) == 0 && jrpc_json_int64(code, &v) == 0 &&
                      v == c->code,
                  "call %zu: a passed error's code is not %d", i, c->code);
            CHECK(jrpc_json_get(e, "message", &msg) == 0 && jrpc_json_type(msg) == JRPC_JSON_STRING,
                  "call %zu: a passed error without a string message", i);
        }
        return;
    }
    CHECK(c->kind == OUT_ERROR && c->code == JRPC_CODE_SERVER_ERROR,
          "call %zu: a fault that is not -32000", i);
    CHECK(strncmp(c->message, "upstream " NAME ": ", sizeof "upstream " NAME ": " - 1) == 0,
          "call %zu: fault message \"%s\"", i, c->message);
    CHECK(c->data != NULL, "call %zu: a fault without data", i);
    jrpc_json_t d = {c->data, strlen(c->data)}, v;
    CHECK(jrpc_json_validate(d.ptr, d.len, 0, NULL) == 0, "call %zu: fault data not JSON", i);
    CHECK(jrpc_json_get(d, "upstream", &v) == 0 && jrpc_json_string_eq(v, NAME, strlen(NAME)),
          "call %zu: fault data without the upstream", i);
    CHECK(jrpc_json_get(d, "detail", &v) == 0 && jrpc_json_type(v) == JRPC_JSON_STRING,
          "call %zu: fault data without a detail", i);
    CHECK(jrpc_json_get(d, "cause", &v) == 0, "call %zu: fault data without a cause", i);
    int cause = -1;
    for (int k = 0; k < JRPC_UPSTREAM_FAULT_COUNT; k++)
        if (jrpc_json_string_eq(v, fault_keys[k], strlen(fault_keys[k])))
            cause = k;
    CHECK(cause >= 0, "call %zu: unknown cause %.*s", i, (int)v.len, v.ptr);
    n_cause[cause]++;
}

static int cause_of(const jrpc_call_t *c)
{
    jrpc_json_t d = {c->data, strlen(c->data)}, v;
    jrpc_json_get(d, "cause", &v);
    for (int k = 0; k < JRPC_UPSTREAM_FAULT_COUNT; k++)
        if (jrpc_json_string_eq(v, fault_keys[k], strlen(fault_keys[k])))
            return k;
    return -1;
}

static int has_nul_escape(const char *p, size_t n)
{
    for (size_t i = 0; i + 6 <= n; i++)
        if (p[i] == '\\' && memcmp(p + i + 1, "u0000", 5) == 0)
            return 1;
    return 0;
}

/* Compares every call's outcome with the reference's for this answer. */
static void check_reference(const char *ans, size_t len, uint64_t base, size_t n, int is_batch,
                            int ok_status, int retried)
{
    if (len == 0 || jrpc_json_validate(ans, len, 1024, NULL) != 0) {
        /* Not JSON (fuzz_scan judges the validator): invalid for all, or the retry. */
        CHECK(retried == !ok_status, "a body that is not JSON, %s", retried ? "retried" : "taken");
        for (size_t i = 0; !retried && i < n; i++)
            CHECK(cause_of(&calls[i]) == JRPC_UPSTREAM_FAULT_INVALID,
                  "call %zu: not JSON, yet not invalid", i);
        return;
    }
    /* yajl keeps strings NUL-terminated: "id\u0000x" would read as "id". */
    if (has_nul_escape(ans, len)) {
        n_nul_skipped++;
        return;
    }
    yajl_val root = parse_z(ans, len);
    CHECK(root != NULL, "yajl rejects what jrpc_json_validate accepts");
    expect_t want[MAX_CALLS];
    memset(want, 0, sizeof want);
    int not_rpc = ref_map(root, base, n, is_batch, want);
    n_compared++;
    if (not_rpc) {
        CHECK(retried == !ok_status, "JSON that is no JSON-RPC answer, %s",
              retried ? "retried" : "taken");
        for (size_t i = 0; !retried && i < n; i++)
            CHECK(cause_of(&calls[i]) == JRPC_UPSTREAM_FAULT_INVALID,
                  "call %zu: no JSON-RPC answer, yet not invalid", i);
        yajl_tree_free(root);
        return;
    }
    CHECK(!retried, "a JSON-RPC answer was retried as an HTTP fault");
    for (size_t i = 0; i < n; i++) {
        const jrpc_call_t *c = &calls[i];
        CHECK(c->kind == want[i].kind, "call %zu: outcome %d, the reference says %d", i, c->kind,
              want[i].kind);
        if (c->kind == OUT_ERROR) {
            int cause = cause_of(c);
            CHECK(cause == want[i].fault, "call %zu: cause %s, the reference says %s", i,
                  fault_keys[cause], fault_keys[want[i].fault]);
            jrpc_json_t d = {c->data, strlen(c->data)}, e;
            int has = jrpc_json_get(d, "error", &e) == 0;
            CHECK(has == (want[i].val != NULL), "call %zu: data.error %s", i,
                  has ? "unexpected" : "missing");
            if (has) {
                yajl_val got = parse_z(e.ptr, e.len);
                CHECK(got != NULL && tree_eq(got, want[i].val),
                      "call %zu: data.error is not the upstream's error", i);
                yajl_tree_free(got);
            }
        } else {
            yajl_val got = parse_z(c->view, c->view_len);
            CHECK(got != NULL && tree_eq(got, want[i].val),
                  "call %zu: the reply is not the value the reference picked", i);
            yajl_tree_free(got);
        }
    }
    yajl_tree_free(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[4] = {200, 429, 502, 200};
    static const uint64_t bases[4] = {1, UINT64_MAX - 7, 1000, UINT32_MAX};
    if (size == 0)
        return 0;
    cur_data = data;
    cur_size = size;
    n_inputs++;
    uint8_t knob = data[0];
    size_t n = 1 + (knob & 7u);
    int is_batch = n > 1 || (knob & 8u) != 0;
    long status = statuses[(knob >> 4) & 3u];
    uint64_t base = bases[knob >> 6];
    const char *ans = (const char *)data + 1;
    size_t len = size - 1;

    static jrpc_upstream_t up;
    static jrpc__upctx_t ctx;
    memset(&up, 0, sizeof up);
    memset(&ctx, 0, sizeof ctx);
    up.name = NAME;
    ctx.up = &up;
    ctx.next_id = base;
    memset(calls, 0, sizeof calls);
    jrpc_call_t *ptrs[MAX_CALLS];
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &calls[i];
    jrpc__chunk_t *ch = jrpc__chunk_new(&ctx, ptrs, n, is_batch, 0);
    CHECK(ch != NULL, "out of memory");
    CHECK(ch->base_id == base, "the chunk's ids do not start at %llu", (unsigned long long)base);
    /* The answer is a heap block of exactly the input's length, so any read past it is past a
     * heap block; once results refer into it (jrpc_reply_ref) it is theirs to free. */
    char *copy = malloc(len ? len : 1);
    CHECK(copy != NULL, "out of memory");
    memcpy(copy, ans, len);
    ans = copy;
    ch->answer.ptr = copy;
    ch->answer.len = ch->answer.cap = len;

    int rc = jrpc__chunk_answer(ch, status);
    int ok_status = status >= 200 && status < 300;
    CHECK(rc == -1 || (rc == JRPC_UPSTREAM_FAULT_HTTP && !ok_status),
          "jrpc__chunk_answer returned %d for status %ld", rc, status);
    int retried = rc != -1;
    for (size_t i = 0; i < n; i++) {
        if (retried) {
            CHECK(calls[i].replies == 0, "call %zu replied before a retry", i);
            CHECK(ch->calls[i] == &calls[i], "call %zu dropped before a retry", i);
        } else {
            CHECK(ch->calls[i] == NULL, "call %zu still held after its reply", i);
            check_reply(i, ans, len);
        }
    }
    uint64_t failed = 0, rpc_errors = 0;
    for (size_t i = 0; i < n; i++) {
        failed += calls[i].kind == OUT_ERROR;
        rpc_errors += calls[i].kind == OUT_ERROR_RAW;
    }
    CHECK(atomic_load(&up.stats.items_failed) == failed, "items_failed is off");
    CHECK(atomic_load(&up.stats.items_rpc_error) == rpc_errors, "items_rpc_error is off");
    check_reference(ans, len, base, n, is_batch, ok_status, retried);

    if (retried) {
        /* What client.c does once no retry is left. */
        n_retry++;
        jrpc__chunk_fail(ch, JRPC_UPSTREAM_FAULT_HTTP, "HTTP status 502");
        for (size_t i = 0; i < n; i++) {
            check_reply(i, ans, len);
            CHECK(cause_of(&calls[i]) == JRPC_UPSTREAM_FAULT_HTTP, "call %zu: not http", i);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (calls[i].release != NULL)
            calls[i].release(calls[i].release_data); /* the answer text goes with the last */
    jrpc__chunk_free(ch);
    for (size_t i = 0; i < n; i++) {
        free(calls[i].message);
        free(calls[i].data);
    }
    return 0;
}
