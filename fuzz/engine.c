/* SPDX-License-Identifier: MIT */
/* engine.c — libFuzzer target for the envelope and batch engine (src/rpc) in-process: each input
 * is one request body, answered by a real loop with inline, async and pattern handlers, as a
 * JSON-RPC body or (first byte odd) as a REST call or REST batch. Checks what must hold for any
 * input: the request is answered exactly once and freed; the answer is empty (notifications only)
 * or valid JSON; every JSON-RPC entry is {"jsonrpc":"2.0", result|error, "id"} with an id that is
 * null or bytes the client sent; a batch never gets more entries than it had items; nothing leaks
 * (ASan). */
#define _GNU_SOURCE /* memmem */
#include "io/internal.h"
#include "rpc/internal.h"
#include "server.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_BATCH 40

static jrpc_server_t *srv;
static jrpc__loop_t loop;
static int answers;
static jrpc_buf_t answer;
static int status;

static void ping(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_reply_raw(call, "\"pong\"", 6);
}

static void echo(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_json_t p = jrpc_call_params(call);
    jrpc_reply_raw(call, p.ptr ? p.ptr : "null", p.ptr ? p.len : 4);
}

/* Reads its params with every accessor, then answers an error that carries them as data. */
static void probe(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_json_t p = jrpc_call_params(call), v, key;
    char buf[64];
    size_t len;
    int64_t i;
    double d;
    jrpc_json_iter_t it;
    size_t n = jrpc_json_count(p);
    for (size_t k = 0; k < n && k < 8; k++) {
        if (jrpc_json_at(p, k, &v) == 0) {
            jrpc_json_int64(v, &i);
            jrpc_json_double(v, &d);
            jrpc_json_string(v, buf, sizeof buf, &len);
        }
    }
    if (jrpc_json_iter_init(&it, p) == 0)
        while (jrpc_json_iter_next(&it, &key, &v) == 1)
            jrpc_json_string(v, buf, sizeof buf, &len);
    jrpc_json_get(p, "a", &v);
    char *copy = strndup(p.ptr ? p.ptr : "null", p.ptr ? p.len : 4);
    jrpc_reply_error(call, -32602, "probe \"x\"\n", copy);
    free(copy);
}

static void on_timer_close(uv_handle_t *h)
{
    free(h);
}

static void on_timer(uv_timer_t *t)
{
    jrpc_reply_string(t->data, "later\x01\xff", 7);
    uv_close((uv_handle_t *)t, on_timer_close);
}

/* Replies from a zero timer: the reply arrives through the loop's queue, after the pump. */
static void later(jrpc_call_t *call, void *data)
{
    (void)data;
    uv_timer_t *t = malloc(sizeof(*t));
    uv_timer_init(jrpc_call_loop(call), t);
    t->data = call;
    uv_timer_start(t, on_timer, 0, 0);
}

static int in_run; /* jrpc__req_run is on the stack: done must not be called */

static void on_done(jrpc__answer_t *ans, void *ud)
{
    (void)ud;
    if (in_run)
        abort();
    answers++;
    status = ans->status;
    jrpc_buf_free(&answer);
    answer = ans->body;
    jrpc_buf_init(&ans->body);
}

static void setup(void)
{
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.io_threads = 1;
    cfg.max_batch = FUZZ_MAX_BATCH;
    cfg.batch_concurrency = 3;
    cfg.max_response = 2048; /* small, so the -32003 path is reached */
    cfg.max_depth = 32;
    srv = jrpc_server_new(&cfg);
    jrpc_method_add(srv, "ping", ping, NULL, JRPC_INLINE);
    jrpc_method_add(srv, "echo", echo, NULL, JRPC_INLINE);
    jrpc_method_add(srv, "probe", probe, NULL, JRPC_INLINE);
    jrpc_method_add(srv, "later", later, NULL, JRPC_ASYNC);
    jrpc_method_add(srv, "free", later, NULL, JRPC_ASYNC | JRPC_UNBOUNDED);
    jrpc_method_add(srv, "solo", ping, NULL, JRPC_INLINE | JRPC_NO_BATCH);
    jrpc_method_add(srv, "p.*", echo, NULL, JRPC_INLINE);
    jrpc_batch_deny(srv, "deny*");
    jrpc_method_add(srv, "deny.me", ping, NULL, JRPC_INLINE);
    if (jrpc__loop_open(&srv->io, &loop) != 0)
        abort();
    jrpc_buf_init(&answer);
}

/* The id of a response entry must be null or a byte string the client sent. */
static void check_entry(jrpc_json_t e, const uint8_t *in, size_t n)
{
    jrpc_json_t v, id;
    if (jrpc_json_type(e) != JRPC_JSON_OBJECT)
        abort();
    if (jrpc_json_get(e, "jsonrpc", &v) != 0 || !jrpc_json_string_eq(v, "2.0", 3))
        abort();
    int has_result = jrpc_json_get(e, "result", &v) == 0;
    int has_error = jrpc_json_get(e, "error", &v) == 0;
    if (has_result == has_error)
        abort();
    if (has_error) {
        jrpc_json_t code;
        int64_t c;
        if (jrpc_json_get(v, "code", &code) != 0 || jrpc_json_int64(code, &c) != 0)
            abort();
    }
    if (jrpc_json_get(e, "id", &id) != 0)
        abort();
    if (jrpc_json_type(id) != JRPC_JSON_NULL &&
        memmem(in, n, id.ptr, id.len) == NULL) /* echoed byte-exact, never rebuilt */
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int rest = size > 0 && (data[0] & 1);
    int rest_batch = size > 0 && (data[0] & 2);
    const uint8_t *in = rest ? data + 1 : data;
    size_t n = rest ? size - 1 : size;
    char *body = malloc(n ? n : 1);
    if (n)
        memcpy(body, in, n);
    int before = answers;
    static const char *const methods[] = {"echo", "probe", "later", "solo", "p.x", "nope"};
    jrpc__req_t *r = jrpc__req_new(&loop, body, n, NULL, NULL, on_done, NULL);
    if (r == NULL)
        abort();
    jrpc__answer_t ans;
    int rc;
    in_run = 1;
    if (rest) {
        const char *m = methods[(data[0] >> 2) % 6];
        rc = jrpc__req_run_rest(r, m, strlen(m), rest_batch, &ans);
    } else {
        rc = jrpc__req_run(r, FUZZ_MAX_BATCH, &ans);
    }
    in_run = 0;
    if (rc == JRPC__REQ_DONE) {
        on_done(&ans, NULL);
        jrpc_buf_free(&ans.body);
    }
    /* Zero timers only: a handful of iterations settles everything. */
    for (int i = 0; i < 1000 && (answers == before || loop.holds != 0); i++)
        uv_run(&loop.uv, UV_RUN_NOWAIT);
    if (answers != before + 1 || loop.holds != 0)
        abort(); /* answered exactly once, and freed */

    jrpc_json_t a = {answer.ptr, answer.len};
    if (answer.len == 0) {
        if (rest)
            abort(); /* REST always answers */
        return 0;
    }
    if (jrpc_json_validate(a.ptr, a.len, 0, NULL) != 0)
        abort();
    if (rest) {
        if (status < 200 || status > 599)
            abort();
        return 0;
    }
    if (jrpc_json_type(a) == JRPC_JSON_ARRAY) {
        /* A batch answer: one entry at most per item of a valid array body. */
        size_t count = jrpc_json_count(a);
        jrpc_json_t req = {(const char *)in, n}, e;
        if (jrpc_json_validate(req.ptr, req.len, 32, NULL) != 0 ||
            jrpc_json_type(req) != JRPC_JSON_ARRAY || count > jrpc_json_count(req))
            abort();
        for (size_t i = 0; i < count; i++) {
            if (jrpc_json_at(a, i, &e) != 0)
                abort();
            check_entry(e, in, n);
        }
    } else {
        check_entry(a, in, n);
    }
    return 0;
}
