/* SPDX-License-Identifier: MIT */
/* Unit tests of the gateway's answer mapping (src/upstream/answer.c): the request body a chunk
 * sends, and what each forwarded call is replied when the upstream's answer is right, and when it
 * is hostile — not JSON, truncated at every byte, not JSON-RPC, wrong types, missing, duplicate,
 * unknown or foreign ids, too few or too many items, an object where a batch was sent and the
 * reverse, huge numbers, error objects without code or message, extra and escaped members, deep
 * nesting, big answers, HTTP error statuses. Each answer sits right before a PROT_NONE page.
 *
 * The engine's calls are replaced by records (jrpc_call_method/params and the jrpc_reply_* below),
 * so every outcome is checked exactly: each call replied exactly once, results and passed-through
 * errors byte-exact views into the answer, faults -32000 with the documented message and data.
 * answer.c builds into libjrpc_upstream; the test includes it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "upstream/answer.c"
#include "upstream/cache.c"
#include "upstream/share.c"

/* ---- Calls: what the engine would hold, and what was replied --------------------------------- */

typedef enum { OUT_NONE, OUT_RESULT, OUT_ERROR, OUT_ERROR_RAW } out_kind_t;

struct jrpc_call {
    jrpc_str_t method;
    jrpc_json_t params;
    unsigned replies;
    out_kind_t kind;
    int code;
    const char *view; /* the bytes handed to jrpc_reply_raw / _error_raw */
    size_t view_len;
    char *text;              /* a copy of them, or of jrpc_reply_error's message */
    char *data;              /* a copy of jrpc_reply_error's data_json, or NULL */
    jrpc_release_cb release; /* jrpc_reply_ref's, run once the checks are done */
    void *release_data;
    int cancelled;   /* what jrpc_call_cancelled answers */
    jrpc_json_t id;  /* what jrpc_call_id answers; ptr NULL: "1" */
    jrpc_json_t raw; /* what jrpc_call_raw answers */
    int single;      /* jrpc_call_in_batch answers 0 */
    int note;        /* a notification: jrpc_call_id answers no id */
};

JRPC_EXTERN jrpc_str_t jrpc_call_method(const jrpc_call_t *call)
{
    return call->method;
}

/* Calls here have ids ("1" unless a test sets one); the stand-in configs turn dedup and the cache
 * off (share.c). */
JRPC_EXTERN jrpc_json_t jrpc_call_id(const jrpc_call_t *call)
{
    if (call->note)
        return (jrpc_json_t){NULL, 0};
    return call->id.ptr != NULL ? call->id : (jrpc_json_t){"1", 1};
}

JRPC_EXTERN jrpc_json_t jrpc_call_raw(const jrpc_call_t *call)
{
    return call->raw;
}

JRPC_EXTERN int jrpc_call_in_batch(const jrpc_call_t *call)
{
    return !call->single;
}

JRPC_EXTERN int jrpc_call_no_cache(const jrpc_call_t *call)
{
    (void)call;
    return 0;
}

#include "kv_stub.h"

void jrpc__upctx_hold(jrpc__upctx_t *ctx)
{
    (void)ctx;
}

void jrpc__upstream_resume(jrpc__upctx_t *ctx, jrpc_call_t *call)
{
    (void)ctx, (void)call;
}

uint64_t jrpc__upstream_now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

JRPC_EXTERN int jrpc_call_cancelled(const jrpc_call_t *call)
{
    return call->cancelled;
}

JRPC_EXTERN jrpc_json_t jrpc_call_params(const jrpc_call_t *call)
{
    return call->params;
}

static char *copy_of(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void replied(jrpc_call_t *call, out_kind_t kind, int code)
{
    if (call->replies++ != 0)
        fail_msg("a call was replied twice");
    call->kind = kind;
    call->code = code;
}

JRPC_EXTERN void jrpc_reply_raw(jrpc_call_t *call, const char *json, size_t len)
{
    replied(call, OUT_RESULT, 0);
    call->view = json;
    call->view_len = len;
    call->text = copy_of(json, len);
}

/* A result by reference: the engine keeps the answer text until it released it, so the test
 * does too (release_all). */
JRPC_EXTERN void jrpc_reply_ref(jrpc_call_t *call, const char *json, size_t len,
                                jrpc_release_cb release, void *data)
{
    jrpc_reply_raw(call, json, len);
    call->release = release;
    call->release_data = data;
}

JRPC_EXTERN void jrpc_reply_error(jrpc_call_t *call, int code, const char *message,
                                  const char *data_json)
{
    replied(call, OUT_ERROR, code);
    call->text = copy_of(message, strlen(message));
    call->data = data_json ? copy_of(data_json, strlen(data_json)) : NULL;
}

JRPC_EXTERN void jrpc_reply_error_raw(jrpc_call_t *call, int code, const char *error_json,
                                      size_t len)
{
    replied(call, OUT_ERROR_RAW, code);
    call->view = error_json;
    call->view_len = len;
    call->text = copy_of(error_json, len);
}

/* upstream.c's, which the test does not build. */
static const struct {
    const char *key, *msg;
} faults[] = {
#define FAULT_ROW(name, key, msg) {key, msg},
    JRPC_UPSTREAM_FAULT_MAP(FAULT_ROW)
#undef FAULT_ROW
};

JRPC_EXTERN const char *jrpc_upstream_fault_name(int fault)
{
    return fault >= 0 && fault < JRPC_UPSTREAM_FAULT_COUNT ? faults[fault].key : "unknown";
}

/* ---- A chunk and its answer ------------------------------------------------------------------ */

#define MAX_CALLS 8

static jrpc_upstream_t up;
static jrpc__upctx_t ctx;
static jrpc_call_t calls[MAX_CALLS];
static char last_body[4096]; /* the request body of the last chunk, NUL-terminated */
static int whole;            /* answer_at's chunks are whole client batches (pass-through) */
static int own_ids;          /* the last chunk of answer_at passed its calls through */

static void reset_calls(void)
{
    for (size_t i = 0; i < MAX_CALLS; i++) {
        free(calls[i].text);
        free(calls[i].data);
    }
    memset(calls, 0, sizeof calls);
    for (size_t i = 0; i < MAX_CALLS; i++)
        calls[i].method = (jrpc_str_t){"eth_blockNumber", 15};
    whole = 0;
}

/* Gives back what the first n calls' replies hold (the answer text goes with the last). */
static void release_answers(size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (calls[i].release != NULL)
            calls[i].release(calls[i].release_data);
        calls[i].release = NULL;
    }
}

static int setup(void **state)
{
    (void)state;
    memset(&up, 0, sizeof up);
    memset(&ctx, 0, sizeof ctx);
    up.name = "node";
    ctx.up = &up;
    reset_calls();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    reset_calls();
    return 0;
}

static uint64_t stat_of(_Atomic uint64_t *v)
{
    return atomic_load(v);
}

/* The answer counted exactly one fault, `fault`, or none when fault is -1. */
static void expect_fault_counted(int fault)
{
    for (int k = 0; k < JRPC_UPSTREAM_FAULT_COUNT; k++)
        if (stat_of(&up.stats.faults[k]) != (k == fault ? 1u : 0u))
            fail_msg("fault %s counted %llu times", faults[k].key,
                     (unsigned long long)stat_of(&up.stats.faults[k]));
}

/* Sends calls[0..n) (ids from base) as one chunk, hands it `text` with HTTP status `status`, and
 * returns what jrpc__chunk_answer returned. Checks the one rule that holds for every answer:
 * answered (-1), every call got exactly one reply; a retryable fault, no call got any. Results and
 * passed-through errors must be views into the answer. */
static int answer_at(uint64_t base, size_t n, int is_batch, long status, const char *text,
                     size_t len)
{
    assert_true(n >= 1 && n <= MAX_CALLS);
    for (size_t i = 0; i < n; i++) {
        free(calls[i].text);
        free(calls[i].data);
        jrpc_call_t keep = calls[i];
        memset(&calls[i], 0, sizeof calls[i]);
        calls[i].method = keep.method;
        calls[i].params = keep.params;
        calls[i].id = keep.id;
        calls[i].raw = keep.raw;
        calls[i].single = keep.single;
        calls[i].note = keep.note;
    }
    memset(&up.stats, 0, sizeof up.stats);
    jrpc_call_t *ptrs[MAX_CALLS];
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &calls[i];
    ctx.next_id = base;
    jrpc__chunk_t *ch = jrpc__chunk_new(&ctx, ptrs, n, is_batch, whole);
    assert_non_null(ch);
    own_ids = ch->own_ids;
    assert_int_equal(ch->base_id, base);
    assert_int_equal(ctx.next_id, base + n);
    assert_true(ch->body.len < sizeof last_body);
    memcpy(last_body, ch->body.ptr, ch->body.len);
    last_body[ch->body.len] = '\0';

    /* The answer is a heap block of exactly its length (ASan catches any read past it); once
     * results refer into it, it is theirs to free. */
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, text, len);
    ch->answer.ptr = copy;
    ch->answer.len = len;
    ch->answer.cap = len;
    int fault = jrpc__chunk_answer(ch, status);
    assert_true(fault == -1 || fault == JRPC_UPSTREAM_FAULT_HTTP);
    for (size_t i = 0; i < n; i++) {
        if (fault == -1) {
            if (calls[i].replies != 1)
                fail_msg("call %zu replied %u times to [%.*s]", i, calls[i].replies,
                         (int)(len < 300 ? len : 300), text);
            assert_null(ch->calls[i]);
        } else {
            assert_int_equal(calls[i].replies, 0);
            assert_ptr_equal(ch->calls[i], &calls[i]);
        }
        if (calls[i].kind == OUT_RESULT || calls[i].kind == OUT_ERROR_RAW) {
            assert_true(calls[i].view >= copy && calls[i].view + calls[i].view_len <= copy + len);
            assert_int_equal(jrpc_json_validate(calls[i].text, calls[i].view_len, 1024, NULL), 0);
        }
    }
    if (fault != -1) /* what client.c does once no retry is left */
        jrpc__chunk_fail(ch, fault, "HTTP status 502");
    release_answers(n);
    jrpc__chunk_free(ch);
    return fault;
}

static int answer(size_t n, int is_batch, const char *text)
{
    return answer_at(1, n, is_batch, 200, text, strlen(text));
}

/* ch's body, once built, is exactly `want`; the upstream then answers `text`, and the answer is
 * taken (every call replied). */
static void exchange(jrpc__chunk_t *ch, const char *want, const char *text)
{
    assert_int_equal(ch->body.len, strlen(want));
    assert_memory_equal(ch->body.ptr, want, strlen(want));
    assert_int_equal(jrpc_buf_append(&ch->answer, text, strlen(text)), 0);
    assert_int_equal(jrpc__chunk_answer(ch, 200), -1);
}

static void expect_result(size_t i, const char *text)
{
    assert_int_equal(calls[i].replies, 1);
    if (calls[i].kind != OUT_RESULT)
        fail_msg("call %zu: kind %d, not a result (%s)", i, calls[i].kind, calls[i].text);
    assert_string_equal(calls[i].text, text);
}

static void expect_error_raw(size_t i, int code, const char *text)
{
    assert_int_equal(calls[i].replies, 1);
    if (calls[i].kind != OUT_ERROR_RAW)
        fail_msg("call %zu: kind %d, not a passed-through error (%s)", i, calls[i].kind,
                 calls[i].text);
    assert_int_equal(calls[i].code, code);
    assert_string_equal(calls[i].text, text);
}

/* Call i got -32000 "upstream node: MSG" with data {"upstream":"node","cause":CAUSE,"detail":…};
 * detail (if not NULL) must be the detail text. Returns the data for further checks. */
static const char *expect_fault(size_t i, const char *cause, const char *detail)
{
    const jrpc_call_t *c = &calls[i];
    assert_int_equal(c->replies, 1);
    if (c->kind != OUT_ERROR)
        fail_msg("call %zu: kind %d, not a fault (%s)", i, c->kind, c->text);
    assert_int_equal(c->code, JRPC_CODE_SERVER_ERROR);
    const char *msg = NULL;
    for (size_t k = 0; k < JRPC_UPSTREAM_FAULT_COUNT; k++)
        if (strcmp(faults[k].key, cause) == 0)
            msg = faults[k].msg;
    assert_non_null(msg);
    char want[200];
    snprintf(want, sizeof want, "upstream node: %s", msg);
    assert_string_equal(c->text, want);
    assert_non_null(c->data);
    jrpc_json_t d = {c->data, strlen(c->data)}, v;
    assert_int_equal(jrpc_json_validate(d.ptr, d.len, 0, NULL), 0);
    assert_int_equal(jrpc_json_get(d, "upstream", &v), 0);
    assert_true(jrpc_json_string_eq(v, "node", 4));
    assert_int_equal(jrpc_json_get(d, "cause", &v), 0);
    if (!jrpc_json_string_eq(v, cause, strlen(cause)))
        fail_msg("call %zu: cause %.*s, expected %s", i, (int)v.len, v.ptr, cause);
    assert_int_equal(jrpc_json_get(d, "detail", &v), 0);
    assert_int_equal(jrpc_json_type(v), JRPC_JSON_STRING);
    if (detail != NULL && !jrpc_json_string_eq(v, detail, strlen(detail)))
        fail_msg("call %zu: detail %.*s, expected \"%s\"", i, (int)v.len, v.ptr, detail);
    return c->data;
}

/* ---- The request body ------------------------------------------------------------------------ */

static void test_request_body(void **state)
{
    (void)state;
    /* A single call: one object, the gateway's id, params byte-exact, none when absent. */
    static const char params[] = "[ \"0xabc\" , \"latest\" ]";
    calls[0].params = (jrpc_json_t){params, sizeof params - 1};
    calls[0].method = (jrpc_str_t){"eth_getBalance", 14};
    answer(1, 0, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x0\"}");
    assert_string_equal(last_body, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_getBalance\","
                                   "\"params\":[ \"0xabc\" , \"latest\" ]}");
    /* A batch: an array, ids base … base + n - 1 in call order; a method name that needs escapes
     * is escaped again (it reached the handler unescaped). */
    calls[0].params = (jrpc_json_t){NULL, 0};
    calls[1].method = (jrpc_str_t){"we\"ird\\\n\x01", 9};
    calls[1].params = (jrpc_json_t){"{\"a\":1}", 7};
    calls[2].method = (jrpc_str_t){"\xc3\xa9", 2};
    answer_at(41, 3, 1, 200, "[]", 2);
    assert_string_equal(last_body,
                        "[{\"jsonrpc\":\"2.0\",\"id\":41,\"method\":\"eth_getBalance\"},"
                        "{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"we\\\"ird\\\\\\n\\u0001\","
                        "\"params\":{\"a\":1}},"
                        "{\"jsonrpc\":\"2.0\",\"id\":43,\"method\":\"\xc3\xa9\"}]");
    assert_int_equal(jrpc_json_validate(last_body, strlen(last_body), 0, NULL), 0);
    /* The largest ids are written in full. */
    answer_at(UINT64_MAX - 1, 1, 1, 200, "[]", 2);
    assert_string_equal(last_body, "[{\"jsonrpc\":\"2.0\",\"id\":18446744073709551614,"
                                   "\"method\":\"eth_getBalance\"}]");
}

/* ---- Answers that are right ------------------------------------------------------------------ */

static void test_single_result(void **state)
{
    (void)state;
    assert_int_equal(answer(1, 0, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x10\"}"), -1);
    expect_result(0, "\"0x10\"");
    /* Results of every type, byte for byte: inner whitespace, escapes, exotic numbers kept. */
    static const char *const results[] = {
        "null",
        "false",
        "true",
        "0",
        "-0",
        "1e400",
        "123456789012345678901234567890",
        "-1.5E-7",
        "\"\\u00e9\\n\\\"\"",
        "\"\xc3\xa9\"",
        "[]",
        "{}",
        "[ 1 , { \"a\" : [ ] } ]",
        "{\"id\":2,\"result\":3,\"error\":{}}",
        "\"\\\\\"",
    };
    for (size_t k = 0; k < sizeof results / sizeof results[0]; k++) {
        char text[256];
        snprintf(text, sizeof text, "{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":%s}", results[k]);
        assert_int_equal(answer(1, 0, text), -1);
        expect_result(0, results[k]);
    }
    /* Whitespace around the answer and around the members. */
    assert_int_equal(answer(1, 0, " \r\n\t{ \"id\" : 1 ,\n \"result\" : [ 1 ] \n} \n"), -1);
    expect_result(0, "[ 1 ]");
    assert_int_equal(stat_of(&up.stats.items_failed), 0);
}

static void test_batch_any_order(void **state)
{
    (void)state;
    assert_int_equal(answer(3, 1,
                            "[{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":\"c\"},"
                            "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"a\"},"
                            "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":\"b\"}]"),
                     -1);
    expect_result(0, "\"a\"");
    expect_result(1, "\"b\"");
    expect_result(2, "\"c\"");
    /* Ids counted from a base near the top of the range. */
    const char *big = "[{\"id\":18446744073709551615,\"result\":2},"
                      "{\"id\":18446744073709551614,\"result\":1}]";
    assert_int_equal(answer_at(UINT64_MAX - 1, 2, 1, 200, big, strlen(big)), -1);
    expect_result(0, "1");
    expect_result(1, "2");
    assert_int_equal(stat_of(&up.stats.items_failed), 0);
    expect_fault_counted(-1);
}

static void test_errors_pass_through(void **state)
{
    (void)state;
    const char *err = "{\"code\":-32601,\"message\":\"the method eth_x does not exist\","
                      "\"data\":{\"x\":[1,2]},\"stack\":\"Error: …\\n at x\"}";
    char text[512];
    snprintf(text, sizeof text, "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":%s}", err);
    assert_int_equal(answer(1, 0, text), -1);
    expect_error_raw(0, -32601, err);
    assert_int_equal(stat_of(&up.stats.items_rpc_error), 1);
    assert_int_equal(stat_of(&up.stats.items_failed), 0);
    /* Codes at the ends of the int range, and positive ones, pass. */
    assert_int_equal(answer(3, 1,
                            "[{\"id\":1,\"error\":{\"code\":-2147483648,\"message\":\"\"}},"
                            "{\"id\":2,\"error\":{\"message\":\"m\",\"code\":2147483647}},"
                            "{\"id\":3,\"error\":{\"code\":3,\"message\":\"execution reverted\","
                            "\"data\":\"0x08c379a0\"}}]"),
                     -1);
    expect_error_raw(0, INT32_MIN, "{\"code\":-2147483648,\"message\":\"\"}");
    expect_error_raw(1, INT32_MAX, "{\"message\":\"m\",\"code\":2147483647}");
    expect_error_raw(2, 3,
                     "{\"code\":3,\"message\":\"execution reverted\",\"data\":\"0x08c379a0\"}");
    assert_int_equal(stat_of(&up.stats.items_rpc_error), 3);
}

/* Members that are not id, result or error are ignored wherever they are, also when they nest
 * those names; members are found by their unescaped names; a repeated member counts last. */
static void test_members(void **state)
{
    (void)state;
    assert_int_equal(answer(1, 0,
                            "{\"extra\":{\"id\":2,\"result\":9},\"jsonrpc\":\"1.0\",\"id\":1,"
                            "\"ids\":[2],\"result\":{\"id\":7,\"error\":{}},\"results\":0}"),
                     -1);
    expect_result(0, "{\"id\":7,\"error\":{}}");
    assert_int_equal(answer(1, 0, "{\"\\u0069d\":1,\"r\\u0065sult\":\"esc\"}"), -1);
    expect_result(0, "\"esc\"");
    assert_int_equal(answer(1, 0, "{\"id\":1,\"result\":\"first\",\"result\":\"last\"}"), -1);
    expect_result(0, "\"last\"");
    assert_int_equal(answer(1, 0, "{\"id\":9,\"result\":1,\"id\":1}"), -1);
    expect_result(0, "1");
    /* "Id", "ID", "id " are other members. */
    assert_int_equal(answer(1, 0, "{\"Id\":1,\"ID\":1,\"id \":1,\"result\":1}"), -1);
    expect_fault(0, "unknown_id", "1 answers carried ids that were not asked, none this call's");
}

/* ---- Answers that are not JSON-RPC ----------------------------------------------------------- */

static void test_not_json(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "<html><body>502 Bad Gateway</body></html>",
        "{\"id\":1,\"result\":1}garbage",
        "{\"id\":1,\"result\":1}{\"id\":1,\"result\":1}",
        "{\"id\":1,\"result\":01}",
        "{\"id\":1,\"result\":NaN}",
        "{\"id\":1,\"result\":\"\xc3\"}",         /* a cut UTF-8 sequence */
        "{\"id\":1,\"result\":\"\xed\xa0\x80\"}", /* a surrogate in UTF-8 */
        "{'id':1,'result':1}",
        "{\"id\":1,\"result\":1,}",
        "\xef\xbb\xbf{\"id\":1,\"result\":1}", /* a byte order mark */
    };
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        assert_int_equal(answer(2, 1, texts[k]), -1);
        expect_fault(0, "invalid", NULL);
        expect_fault(1, "invalid", NULL);
        expect_fault_counted(JRPC_UPSTREAM_FAULT_INVALID);
        assert_int_equal(stat_of(&up.stats.items_failed), 2);
    }
    assert_int_equal(answer(1, 0, "<html>"), -1);
    expect_fault(0, "invalid", "the answer is not JSON (at byte 0 of 6)");
    /* A NUL byte inside. */
    assert_int_equal(answer_at(1, 1, 0, 200, "{\"id\":1,\"result\":\"\0\"}", 21), -1);
    expect_fault(0, "invalid", "the answer is not JSON (at byte 18 of 21)");
    assert_int_equal(answer_at(1, 1, 0, 200, "", 0), -1);
    expect_fault(0, "invalid", "empty answer (HTTP status 200)");
    assert_int_equal(answer_at(1, 1, 0, 204, "", 0), -1);
    expect_fault(0, "invalid", "empty answer (HTTP status 204)");
}

/* Every proper prefix of an answer is a fault for every call, never a partial answer. */
static void test_truncated_everywhere(void **state)
{
    (void)state;
    static const struct {
        size_t n;
        int is_batch;
        const char *text;
    } cases[] = {
        {1, 0, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":[1,\"x\\\"y\",null]}}"},
        {1, 0, "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-1,\"message\":\"\\u00e9\"}}"},
        {3, 1,
         "[{\"id\":1,\"result\":\"0x1\"},{\"id\":2,\"result\":12345},"
         "{\"id\":3,\"error\":{\"code\":-32000,\"message\":\"m\"}}]"},
        {2, 1, "[{\"id\":2,\"result\":\"\xe2\x82\xac\"},{\"id\":1,\"result\":true}]"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t len = strlen(cases[k].text);
        assert_int_equal(answer_at(1, cases[k].n, cases[k].is_batch, 200, cases[k].text, len), -1);
        for (size_t i = 0; i < cases[k].n; i++)
            assert_int_not_equal(calls[i].kind, OUT_ERROR); /* the whole answer works */
        for (size_t cut = 0; cut < len; cut++) {
            assert_int_equal(answer_at(1, cases[k].n, cases[k].is_batch, 200, cases[k].text, cut),
                             -1);
            for (size_t i = 0; i < cases[k].n; i++)
                expect_fault(i, "invalid", NULL);
            /* With an error status it is the HTTP fault, retried: nothing replied (checked). */
            assert_int_equal(answer_at(1, cases[k].n, cases[k].is_batch, 502, cases[k].text, cut),
                             JRPC_UPSTREAM_FAULT_HTTP);
        }
    }
}

static void test_json_not_jsonrpc(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "42",
        "\"ok\"",
        "null",
        "true",
        "{}",
        "{\"id\":1}",
        "{\"id\":1,\"jsonrpc\":\"2.0\"}",
        "{\"Result\":1,\"id\":1}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"data\":{\"result\":1}}",
    };
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        assert_int_equal(answer(2, 1, texts[k]), -1);
        expect_fault(0, "invalid", "the answer is JSON but not a JSON-RPC response");
        expect_fault(1, "invalid", "the answer is JSON but not a JSON-RPC response");
        assert_int_equal(answer_at(1, 2, 1, 503, texts[k], strlen(texts[k])),
                         JRPC_UPSTREAM_FAULT_HTTP);
    }
}

/* ---- Items of the wrong shape ---------------------------------------------------------------- */

static const char invalid_item[] = "the answer to this call has no valid result or error";

static void test_wrong_types(void **state)
{
    (void)state;
    static const char *const items[] = {
        /* both result and error, whatever their values */
        "{\"id\":1,\"result\":1,\"error\":{\"code\":1,\"message\":\"m\"}}",
        "{\"id\":1,\"result\":1,\"error\":null}",
        "{\"id\":1,\"result\":null,\"error\":{}}",
        /* an error that is no object */
        "{\"id\":1,\"error\":\"boom\"}",
        "{\"id\":1,\"error\":[-32000,\"m\"]}",
        "{\"id\":1,\"error\":-32000}",
        "{\"id\":1,\"error\":null}",
        /* an error object with a code that is no 32-bit integer */
        "{\"id\":1,\"error\":{\"message\":\"no code\"}}",
        "{\"id\":1,\"error\":{}}",
        "{\"id\":1,\"error\":{\"code\":\"-32000\",\"message\":\"m\"}}",
        "{\"id\":1,\"error\":{\"code\":-32000.0,\"message\":\"m\"}}",
        "{\"id\":1,\"error\":{\"code\":-3.2e4,\"message\":\"m\"}}",
        "{\"id\":1,\"error\":{\"code\":2147483648,\"message\":\"m\"}}",
        "{\"id\":1,\"error\":{\"code\":-2147483649,\"message\":\"m\"}}",
        "{\"id\":1,\"error\":{\"code\":99999999999999999999999,\"message\":\"m\"}}",
        "{\"id\":1,\"error\":{\"code\":1e400,\"message\":\"m\"}}",
        "{\"id\":1,\"error\":{\"code\":null,\"message\":\"m\"}}",
        /* no message: JSON-RPC 2.0 requires one, and clients read it */
        "{\"id\":1,\"error\":{\"code\":-32000}}",
        "{\"id\":1,\"error\":{\"code\":-32000,\"data\":\"0x\",\"Message\":\"m\"}}",
        /* a message that is no string */
        "{\"id\":1,\"error\":{\"code\":-32000,\"message\":null}}",
        "{\"id\":1,\"error\":{\"code\":-32000,\"message\":42}}",
        "{\"id\":1,\"error\":{\"code\":-32000,\"message\":{\"text\":\"m\"}}}",
        "{\"id\":1,\"error\":{\"code\":-32000,\"message\":\"m\",\"message\":[]}}",
    };
    for (size_t k = 0; k < sizeof items / sizeof items[0]; k++) {
        /* Alone, and next to a good item that must not suffer. */
        char text[512];
        snprintf(text, sizeof text, "[%s,{\"id\":2,\"result\":\"ok\"}]", items[k]);
        assert_int_equal(answer(2, 1, text), -1);
        expect_fault(0, "invalid", invalid_item);
        expect_result(1, "\"ok\"");
        assert_int_equal(stat_of(&up.stats.items_failed), 1);
        assert_int_equal(stat_of(&up.stats.items_rpc_error), 0);
        expect_fault_counted(JRPC_UPSTREAM_FAULT_INVALID);
        assert_int_equal(answer(1, 0, items[k]), -1);
        expect_fault(0, "invalid", invalid_item);
    }
}

/* ---- Ids ------------------------------------------------------------------------------------- */

static void test_missing_items(void **state)
{
    (void)state;
    assert_int_equal(answer(3, 1, "[{\"id\":2,\"result\":\"b\"}]"), -1);
    expect_fault(0, "missing", "the upstream answered 1 of 3 calls");
    expect_result(1, "\"b\"");
    expect_fault(2, "missing", "the upstream answered 1 of 3 calls");
    expect_fault_counted(JRPC_UPSTREAM_FAULT_MISSING);
    assert_int_equal(stat_of(&up.stats.items_failed), 2);
    assert_int_equal(answer(3, 1, "[]"), -1);
    for (size_t i = 0; i < 3; i++)
        expect_fault(i, "missing", "the upstream answered 0 of 3 calls");
    /* An item without an id answers nothing (its error is no batch error: it has a result). */
    assert_int_equal(answer(2, 1, "[{\"result\":1},{\"id\":1,\"result\":2}]"), -1);
    expect_result(0, "2");
    expect_fault(1, "unknown_id", NULL);
}

static void test_unknown_ids(void **state)
{
    (void)state;
    /* Ids of other types or values never match, even when they look like ours. */
    static const char *const ids[] = {
        "\"1\"",
        "1.0",
        "1e0",
        "10e-1",
        "-1",
        "0",
        "4",
        "true",
        "[1]",
        "{\"id\":1}",
        "18446744073709551616",
        "18446744073709551615",
        "-18446744073709551615",
        "1E400",
        "\" 1\"",
        "null",
    };
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        char text[256];
        snprintf(text, sizeof text, "[{\"id\":%s,\"result\":\"x\"},{\"id\":2,\"result\":\"b\"}]",
                 ids[k]);
        assert_int_equal(answer(3, 1, text), -1);
        expect_fault(0, "unknown_id",
                     "1 answers carried ids that were not asked, none this call's");
        expect_result(1, "\"b\"");
        expect_fault(2, "unknown_id", NULL);
        expect_fault_counted(JRPC_UPSTREAM_FAULT_UNKNOWN_ID);
        assert_int_equal(stat_of(&up.stats.items_failed), 2);
    }
    /* Items that are no objects count as unknown too. */
    assert_int_equal(answer(2, 1, "[1,\"x\",null,[],[{\"id\":1,\"result\":1}]]"), -1);
    expect_fault(0, "unknown_id", "5 answers carried ids that were not asked, none this call's");
    expect_fault(1, "unknown_id", NULL);
    /* The id just below and just past the chunk's range, with a base that is not 1. */
    const char *edge = "[{\"id\":99,\"result\":1},{\"id\":102,\"result\":1},"
                       "{\"id\":101,\"result\":\"b\"}]";
    assert_int_equal(answer_at(100, 2, 1, 200, edge, strlen(edge)), -1);
    expect_fault(0, "unknown_id", "2 answers carried ids that were not asked, none this call's");
    expect_result(1, "\"b\"");
}

static void test_duplicate_ids(void **state)
{
    (void)state;
    /* The first answer to an id counts; a repeat is an unknown answer. */
    assert_int_equal(answer(3, 1,
                            "[{\"id\":1,\"result\":\"first\"},{\"id\":1,\"result\":\"again\"},"
                            "{\"id\":1,\"error\":{\"code\":1,\"message\":\"m\"}},"
                            "{\"id\":3,\"result\":\"c\"}]"),
                     -1);
    expect_result(0, "\"first\"");
    expect_fault(1, "unknown_id", "2 answers carried ids that were not asked, none this call's");
    expect_result(2, "\"c\"");
    /* When every call is answered, repeats change nothing. */
    assert_int_equal(answer(2, 1,
                            "[{\"id\":2,\"result\":\"b\"},{\"id\":1,\"result\":\"a\"},"
                            "{\"id\":2,\"result\":\"B\"},{\"id\":1,\"result\":\"A\"}]"),
                     -1);
    expect_result(0, "\"a\"");
    expect_result(1, "\"b\"");
    assert_int_equal(stat_of(&up.stats.items_failed), 0);
    expect_fault_counted(-1);
    /* A malformed first answer uses the id up; a good repeat cannot reply again. */
    assert_int_equal(answer(1, 1, "[{\"id\":1},{\"id\":1,\"result\":1}]"), -1);
    expect_fault(0, "invalid", invalid_item);
    expect_fault_counted(JRPC_UPSTREAM_FAULT_INVALID);
}

/* ---- Shapes: batch or not, too many, one error for all --------------------------------------- */

static void test_too_many_items(void **state)
{
    (void)state;
    assert_int_equal(
        answer(2, 1,
               "[{\"id\":1,\"result\":1},{\"id\":2,\"result\":2},{\"id\":3,\"result\":3},"
               "{\"id\":4,\"result\":4},{\"id\":0,\"result\":0}]"),
        -1);
    expect_result(0, "1");
    expect_result(1, "2");
    assert_int_equal(stat_of(&up.stats.items_failed), 0);
    expect_fault_counted(-1);
}

static void test_object_for_batch_and_reverse(void **state)
{
    (void)state;
    /* A batch of one answered by a bare object, and a single call answered by an array. */
    assert_int_equal(answer(1, 1, "{\"id\":1,\"result\":\"obj\"}"), -1);
    expect_result(0, "\"obj\"");
    assert_int_equal(answer(1, 0, "[{\"id\":1,\"result\":\"arr\"}]"), -1);
    expect_result(0, "\"arr\"");
    /* A batch of three answered by one object: one call answered, the others missing. */
    assert_int_equal(answer(3, 1, "{\"id\":3,\"result\":\"c\"}"), -1);
    expect_fault(0, "missing", "the upstream answered 1 of 3 calls");
    expect_fault(1, "missing", NULL);
    expect_result(2, "\"c\"");
}

static void test_one_error_for_all(void **state)
{
    (void)state;
    const char *err = "{\"code\":-32600,\"message\":\"batch requests are not supported\"}";
    char text[256];
    /* A batch: every item gets batch_error, the upstream's error in data.error. */
    snprintf(text, sizeof text, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":%s}", err);
    assert_int_equal(answer(3, 1, text), -1);
    for (size_t i = 0; i < 3; i++) {
        jrpc_json_t d = {expect_fault(i, "batch_error",
                                      "the upstream answered 3 calls with one error object"),
                         0},
                    e;
        d.len = strlen(d.ptr);
        assert_int_equal(jrpc_json_get(d, "error", &e), 0);
        assert_int_equal(e.len, strlen(err));
        assert_memory_equal(e.ptr, err, e.len);
    }
    expect_fault_counted(JRPC_UPSTREAM_FAULT_BATCH_ERROR);
    /* The same without an id member, and inside an array. */
    snprintf(text, sizeof text, "{\"error\":%s}", err);
    assert_int_equal(answer(2, 1, text), -1);
    expect_fault(1, "batch_error", NULL);
    snprintf(text, sizeof text, "[{\"id\":null,\"error\":%s},{\"id\":2,\"result\":5}]", err);
    assert_int_equal(answer(2, 1, text), -1);
    expect_fault(0, "batch_error", "the upstream answered 2 calls with one error object");
    expect_result(1, "5");
    /* A single call: the error is its answer (the upstream could not read the request). */
    const char *parse = "{\"code\":-32700,\"message\":\"Parse error\",\"data\":\"at 1\"}";
    snprintf(text, sizeof text, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":%s}", parse);
    assert_int_equal(answer(1, 0, text), -1);
    expect_error_raw(0, -32700, parse);
    assert_int_equal(stat_of(&up.stats.items_rpc_error), 1);
    /* …unless that error is no JSON-RPC error: then it is reported, not passed. */
    assert_int_equal(answer(1, 0, "{\"id\":null,\"error\":{\"message\":\"no code\"}}"), -1);
    expect_fault(0, "batch_error", "the upstream answered 1 calls with one error object");
    assert_int_equal(answer(1, 0, "{\"id\":null,\"error\":{\"code\":-32700}}"), -1);
    expect_fault(0, "batch_error", NULL);
    /* An id-null error that is no object is just an unknown answer. */
    assert_int_equal(answer(1, 0, "{\"id\":null,\"error\":\"boom\"}"), -1);
    expect_fault(0, "unknown_id", NULL);
}

/* ---- Size and depth -------------------------------------------------------------------------- */

static char *nested(size_t depth, const char *head, const char *tail)
{
    size_t hl = strlen(head), tl = strlen(tail);
    char *s = malloc(hl + 2 * depth + 1 + tl + 1);
    assert_non_null(s);
    memcpy(s, head, hl);
    memset(s + hl, '[', depth);
    s[hl + depth] = '1';
    memset(s + hl + depth + 1, ']', depth);
    memcpy(s + hl + 2 * depth + 1, tail, tl + 1);
    return s;
}

static void test_deep_nesting(void **state)
{
    (void)state;
    /* 1024 levels with the answer object itself: accepted, deeper than a client may send. */
    char *ok = nested(1023, "{\"id\":1,\"result\":", "}");
    assert_int_equal(answer(1, 0, ok), -1);
    assert_int_equal(calls[0].kind, OUT_RESULT);
    assert_int_equal(strlen(calls[0].text), 2 * 1023 + 1);
    assert_memory_equal(calls[0].text, ok + 17, 2 * 1023 + 1);
    free(ok);
    char *deep = nested(1024, "{\"id\":1,\"result\":", "}");
    assert_int_equal(answer(1, 0, deep), -1);
    expect_fault(0, "invalid", "the answer is not JSON (at byte 1040 of 2067)");
    free(deep);
    /* Far deeper, in a batch, with an error status: retried as an HTTP fault. */
    char *deeper = nested(100000, "[{\"id\":1,\"result\":", "}]");
    assert_int_equal(answer_at(1, 1, 1, 500, deeper, strlen(deeper)), JRPC_UPSTREAM_FAULT_HTTP);
    free(deeper);
}

static void test_big_answer(void **state)
{
    (void)state;
    /* A 4 MiB result (a node's trace) is copied whole; the size cap is client.c's. */
    size_t n = 4u << 20;
    char *text = malloc(n + 64);
    assert_non_null(text);
    int head = snprintf(text, 64, "[{\"id\":2,\"result\":1},{\"id\":1,\"result\":\"");
    memset(text + head, 'a', n);
    memcpy(text + head + n, "\"}]", 4);
    assert_int_equal(answer(2, 1, text), -1);
    assert_int_equal(calls[0].kind, OUT_RESULT);
    assert_int_equal(calls[0].view_len, n + 2);
    assert_memory_equal(calls[0].text, text + head - 1, n + 2);
    expect_result(1, "1");
    free(text);
}

/* ---- HTTP status ----------------------------------------------------------------------------- */

static void test_http_status(void **state)
{
    (void)state;
    /* An error status with a JSON-RPC answer is an answer: its error passes through. */
    const char *limited = "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32005,"
                          "\"message\":\"rate limited\"}}";
    assert_int_equal(answer_at(1, 1, 0, 429, limited, strlen(limited)), -1);
    expect_error_raw(0, -32005, "{\"code\":-32005,\"message\":\"rate limited\"}");
    const char *res = "[{\"id\":1,\"result\":1}]";
    assert_int_equal(answer_at(1, 1, 1, 500, res, strlen(res)), -1);
    expect_result(0, "1");
    /* Without one, it is the HTTP fault, for the caller to retry: nothing is replied yet, and
     * no fault is counted here (client.c counts it). answer_at then fails the calls. */
    static const char *const bodies[] = {"", "Service Unavailable", "{}", "[1", "null"};
    static const long statuses[] = {100, 199, 300, 404, 429, 500, 503, 0};
    for (size_t b = 0; b < sizeof bodies / sizeof bodies[0]; b++) {
        for (size_t s = 0; s < sizeof statuses / sizeof statuses[0]; s++) {
            assert_int_equal(answer_at(1, 2, 1, statuses[s], bodies[b], strlen(bodies[b])),
                             JRPC_UPSTREAM_FAULT_HTTP);
            expect_fault_counted(-1);
            expect_fault(0, "http", "HTTP status 502");
            expect_fault(1, "http", "HTTP status 502");
        }
    }
    /* Every 2xx is a success status. */
    assert_int_equal(answer_at(1, 1, 0, 299, "x", 1), -1);
    expect_fault(0, "invalid", "the answer is not JSON (at byte 0 of 1)");
}

/* A fault's data names the upstream whatever its name holds. */
static void test_upstream_name_in_faults(void **state)
{
    (void)state;
    static char name[300];
    memset(name, 'n', sizeof name - 1);
    memcpy(name, "q\"\\\x01", 4);
    up.name = name;
    assert_int_equal(answer(1, 0, "[]"), -1);
    const jrpc_call_t *c = &calls[0];
    assert_int_equal(c->kind, OUT_ERROR);
    assert_int_equal(strncmp(c->text, "upstream q\"\\\x01", 13), 0);
    assert_true(strlen(c->text) < 160); /* cut, not overflowing */
    jrpc_json_t d = {c->data, strlen(c->data)}, v;
    assert_int_equal(jrpc_json_validate(d.ptr, d.len, 0, NULL), 0);
    assert_int_equal(jrpc_json_get(d, "upstream", &v), 0);
    assert_true(jrpc_json_string_eq(v, name, strlen(name)));
    up.name = "node";
}

/* ---- Calls nobody waits for ------------------------------------------------------------------ */

/* Cancelled calls leave the chunk answered -32002 and counted; the body is built again for the
 * rest, ids from the chunk's base, and the answer to it still maps by those ids. */
static void test_prune(void **state)
{
    (void)state;
    static const char *const names[] = {"m0", "m1", "m2", "m3"};
    jrpc_call_t *ptrs[4];
    for (size_t i = 0; i < 4; i++) {
        calls[i].method = (jrpc_str_t){names[i], 2};
        ptrs[i] = &calls[i];
    }
    memset(&up.stats, 0, sizeof up.stats);
    ctx.next_id = 10;
    jrpc__chunk_t *ch = jrpc__chunk_new(&ctx, ptrs, 4, 1, 0);
    assert_non_null(ch);
    assert_int_equal(jrpc__chunk_prune(ch), 0);
    assert_int_equal(ch->stale, 0);
    calls[1].cancelled = calls[3].cancelled = 1;
    assert_int_equal(jrpc__chunk_prune(ch), 2);
    assert_int_equal(ch->n, 2);
    assert_ptr_equal(ch->calls[0], &calls[0]);
    assert_ptr_equal(ch->calls[1], &calls[2]);
    assert_int_equal(ch->stale, 1);
    for (size_t i = 1; i < 4; i += 2) {
        assert_int_equal(calls[i].replies, 1);
        assert_int_equal(calls[i].kind, OUT_ERROR);
        assert_int_equal(calls[i].code, JRPC_CODE_TIMEOUT);
        assert_string_equal(calls[i].text, "Request timed out");
    }
    assert_int_equal(calls[0].replies + calls[2].replies, 0);
    assert_int_equal(stat_of(&up.stats.items_dropped), 2);
    assert_int_equal(jrpc__chunk_build(ch), 0);
    assert_int_equal(ch->stale, 0);
    exchange(ch,
             "[{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"m0\"},"
             "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"m2\"}]",
             "[{\"jsonrpc\":\"2.0\",\"id\":11,\"result\":2},"
             "{\"jsonrpc\":\"2.0\",\"id\":10,\"result\":0}]");
    assert_string_equal(calls[0].text, "0");
    assert_string_equal(calls[2].text, "2");
    release_answers(4);
    jrpc__chunk_free(ch);

    /* All of them cancelled: nothing is left to send. */
    reset_calls();
    calls[0].cancelled = calls[1].cancelled = 1;
    ch = jrpc__chunk_new(&ctx, ptrs, 2, 1, 0);
    assert_non_null(ch);
    assert_int_equal(jrpc__chunk_prune(ch), 2);
    assert_int_equal(ch->n, 0);
    assert_int_equal(calls[0].replies + calls[1].replies, 2);
    jrpc__chunk_free(ch);
}

/* ---- Pass-through: a whole client batch with its own ids ------------------------------------- */

/* Calls 0..n-1 get ids[i] and a request object of their own carrying it. */
static char raws[MAX_CALLS][128];

static void own_calls(size_t n, const char *const *ids)
{
    reset_calls();
    whole = 1;
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(raws[i], sizeof raws[i],
                           "{\"jsonrpc\":\"2.0\",\"method\":\"m%zu\",\"params\":[%zu],\"id\":%s}",
                           i, i, ids[i]);
        calls[i].raw = (jrpc_json_t){raws[i], (size_t)len};
        calls[i].id = (jrpc_json_t){ids[i], strlen(ids[i])};
        calls[i].method = (jrpc_str_t){"mx", 2};
    }
}

/* The body of the last chunk is the calls' own objects, in order. */
static void expect_own_body(size_t n)
{
    char want[4096];
    size_t at = 0;
    want[at++] = '[';
    for (size_t i = 0; i < n; i++)
        at += (size_t)snprintf(want + at, sizeof want - at, "%s%s", i ? "," : "", raws[i]);
    want[at++] = ']';
    want[at] = '\0';
    assert_true(own_ids);
    assert_string_equal(last_body, want);
}

static void test_own_ids(void **state)
{
    (void)state;
    static const char *const ids[] = {"7", "\"a-b c\"", "-3", "0", "123456789012345", "\"\""};
    own_calls(6, ids);
    /* In order, and in every other order the upstream may choose. */
    const char *in_order =
        "[{\"id\":7,\"result\":\"r0\"},{\"id\":\"a-b c\",\"result\":\"r1\"},"
        "{\"id\":-3,\"result\":\"r2\"},{\"id\":0,\"result\":\"r3\"},"
        "{\"id\":123456789012345,\"result\":\"r4\"},{\"id\":\"\",\"result\":\"r5\"}]";
    assert_int_equal(answer(6, 1, in_order), -1);
    expect_own_body(6);
    for (size_t i = 0; i < 6; i++) {
        char r[8];
        snprintf(r, sizeof r, "\"r%zu\"", i);
        expect_result(i, r);
    }
    expect_fault_counted(-1);
    const char *shuffled =
        "[{\"id\":\"\",\"result\":\"r5\"},{\"id\":0,\"result\":\"r3\"},"
        "{\"id\":-3,\"error\":{\"code\":5,\"message\":\"e\"}},"
        "{\"id\":123456789012345,\"result\":\"r4\"},{\"id\":7,\"result\":\"r0\"},"
        "{\"id\":\"a-b c\",\"result\":\"r1\"}]";
    assert_int_equal(answer(6, 1, shuffled), -1);
    expect_own_body(6);
    expect_result(0, "\"r0\"");
    expect_result(1, "\"r1\"");
    expect_error_raw(2, 5, "{\"code\":5,\"message\":\"e\"}");
    expect_result(3, "\"r3\"");
    expect_result(4, "\"r4\"");
    expect_result(5, "\"r5\"");
    /* One left out, one answered twice, one under a foreign id: each call still replied once. */
    const char *partial = "[{\"id\":-3,\"result\":\"r2\"},{\"id\":7,\"result\":\"r0\"},"
                          "{\"id\":7,\"result\":\"again\"},{\"id\":\"zz\",\"result\":1},"
                          "{\"id\":0,\"result\":\"r3\"},{\"id\":\"\",\"result\":\"r5\"},"
                          "{\"id\":123456789012345,\"result\":\"r4\"}]";
    assert_int_equal(answer(6, 1, partial), -1);
    expect_result(0, "\"r0\"");
    expect_fault(1, "unknown_id", "2 answers carried ids that were not asked, none this call's");
    expect_result(2, "\"r2\"");
    expect_result(3, "\"r3\"");
    expect_result(4, "\"r4\"");
    expect_result(5, "\"r5\"");
    const char *short_answer = "[{\"id\":7,\"result\":\"r0\"},{\"id\":-3,\"result\":\"r2\"},"
                               "{\"id\":0,\"result\":\"r3\"},{\"id\":\"\",\"result\":\"r5\"},"
                               "{\"id\":123456789012345,\"result\":\"r4\"}]";
    assert_int_equal(answer(6, 1, short_answer), -1);
    expect_fault(1, "missing", "the upstream answered 5 of 6 calls");
    expect_result(2, "\"r2\"");
    /* Another spelling of an id is not that id. */
    const char *respelled = "[{\"id\":7.0,\"result\":\"r0\"},{\"id\":\"a-b c\",\"result\":\"r1\"}]";
    assert_int_equal(answer(2, 1, respelled), -1);
    expect_fault(0, "unknown_id", NULL);
    expect_result(1, "\"r1\"");
}

/* Whatever could come back in another spelling, or twice, or not at all, goes with the gateway's
 * own ids (the body has its numbers from the chunk's base, and answers map by them). */
static void test_own_ids_refused(void **state)
{
    (void)state;
    static const char *const odd[] = {
        "null",
        "1e400",
        "14066156191713469572",
        "1234567890123456",
        "\"\\u00e9\"",
        "\"\xc3\xa9\"",
        "1.5",
        "-0",
        "01",
        "\"<b>\"",
        "\"a&b\"",
        "\"tab\t\"",
        "true",
        "{}",
    };
    for (size_t k = 0; k < sizeof odd / sizeof odd[0]; k++) {
        const char *ids[2] = {"1", odd[k]};
        own_calls(2, ids);
        assert_int_equal(answer(2, 1, "[{\"id\":2,\"result\":\"b\"},{\"id\":1,\"result\":\"a\"}]"),
                         -1);
        if (own_ids)
            fail_msg("id %s was passed through", odd[k]);
        assert_non_null(strstr(last_body, "\"id\":2,\"method\":\"mx\""));
        expect_result(0, "\"a\"");
        expect_result(1, "\"b\"");
    }
    /* Duplicate ids in the batch. */
    const char *dup[3] = {"5", "\"x\"", "5"};
    own_calls(3, dup);
    assert_int_equal(answer(3, 1,
                            "[{\"id\":3,\"result\":\"c\"},{\"id\":1,\"result\":\"a\"},"
                            "{\"id\":2,\"result\":\"b\"}]"),
                     -1);
    assert_false(own_ids);
    expect_result(0, "\"a\"");
    expect_result(1, "\"b\"");
    expect_result(2, "\"c\"");
    /* A notification inside the batch (no id). */
    const char *note[2] = {"1", "2"};
    own_calls(2, note);
    calls[1].note = 1;
    assert_int_equal(answer(2, 1, "[{\"id\":1,\"result\":\"a\"},{\"id\":2,\"result\":\"b\"}]"), -1);
    assert_false(own_ids);
    /* Not a whole client batch, a call sent alone, no request object, a single object. */
    for (int c = 0; c < 4; c++) {
        const char *ids[2] = {"1", "2"};
        own_calls(2, ids);
        if (c == 0)
            whole = 0;
        if (c == 1)
            calls[1].single = 1;
        if (c == 2)
            calls[0].raw = (jrpc_json_t){NULL, 0};
        if (c == 3) {
            assert_int_equal(answer(1, 0, "{\"id\":1,\"result\":\"a\"}"), -1);
            assert_false(own_ids);
            expect_result(0, "\"a\"");
            continue;
        }
        assert_int_equal(answer(2, 1, "[{\"id\":2,\"result\":\"b\"},{\"id\":1,\"result\":\"a\"}]"),
                         -1);
        assert_false(own_ids);
        expect_result(0, "\"a\"");
        expect_result(1, "\"b\"");
    }
}

/* Pruned calls leave the rest passed through: the body and the id table are made again. */
static void test_own_ids_prune(void **state)
{
    (void)state;
    static const char *const ids[] = {"\"p\"", "\"q\"", "\"r\""};
    own_calls(3, ids);
    jrpc_call_t *ptrs[3] = {&calls[0], &calls[1], &calls[2]};
    ctx.next_id = 1;
    jrpc__chunk_t *ch = jrpc__chunk_new(&ctx, ptrs, 3, 1, 1);
    assert_non_null(ch);
    assert_true(ch->own_ids);
    calls[0].cancelled = 1;
    assert_int_equal(jrpc__chunk_prune(ch), 1);
    assert_int_equal(jrpc__chunk_build(ch), 0);
    assert_true(ch->own_ids);
    char want[512];
    snprintf(want, sizeof want, "[%s,%s]", raws[1], raws[2]);
    exchange(ch, want, "[{\"id\":\"r\",\"result\":2},{\"id\":\"q\",\"result\":1}]");
    assert_string_equal(calls[1].text, "1");
    assert_string_equal(calls[2].text, "2");
    release_answers(3);
    jrpc__chunk_free(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_any_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_pass_through, setup, teardown),
        cmocka_unit_test_setup_teardown(test_members, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_everywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_not_jsonrpc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_items, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_items, setup, teardown),
        cmocka_unit_test_setup_teardown(test_object_for_batch_and_reverse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_error_for_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_nesting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_name_in_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_ids_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_ids_prune, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
