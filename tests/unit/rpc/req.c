/* SPDX-License-Identifier: MIT */
/* Unit tests of the request engine (src/rpc/req.c) in-process: one real libuv loop on this thread,
 * the real worker pool, handlers that count what they run. Transport-independent rules: request
 * order, the batch bound, deadlines, the response cap, the batch cap, notifications, detach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/internal.h"
#include "rpc/internal.h"
#include "server.h"

static jrpc_server_t *srv;
static jrpc__loop_t loop;
static atomic_int ran;       /* handler invocations */
static atomic_int in_flight; /* handlers running now */
static atomic_int max_in_flight;

/* What the transport got. */
static int done_calls;
static jrpc_buf_t answer;

/* ---- Handlers ----------------------------------------------------------------------------------
 */

static void ping(jrpc_call_t *call, void *data)
{
    (void)data;
    atomic_fetch_add(&ran, 1);
    jrpc_reply_raw(call, "\"pong\"", 6);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* params [ms]: sleeps on a worker and replies ms. */
static void slow(jrpc_call_t *call, void *data)
{
    (void)data;
    int64_t ms = 0;
    jrpc_json_t v;
    atomic_fetch_add(&ran, 1);
    int now = atomic_fetch_add(&in_flight, 1) + 1;
    int prev = atomic_load(&max_in_flight);
    while (now > prev && !atomic_compare_exchange_weak(&max_in_flight, &prev, now))
        ;
    if (jrpc_json_at(jrpc_call_params(call), 0, &v) == 0)
        jrpc_json_int64(v, &ms);
    sleep_ms((int)ms);
    atomic_fetch_sub(&in_flight, 1);
    jrpc_reply_int64(call, ms);
}

static void echo(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_json_t p = jrpc_call_params(call);
    if (p.ptr == NULL)
        jrpc_reply_raw(call, "null", 4);
    else
        jrpc_reply_raw(call, p.ptr, p.len);
}

static void failing(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_reply_error(call, -32602, "bad \"x\"", "{\"why\":1}");
}

/* ---- Harness -----------------------------------------------------------------------------------
 */

static int last_status;
static int in_run; /* jrpc__req_run is on the stack */

static void on_done(jrpc__answer_t *ans, void *ud)
{
    (void)ud;
    assert_false(in_run); /* never called back inside the call that started the work */
    done_calls++;
    last_status = ans->status;
    jrpc_buf_free(&answer);
    answer = ans->body; /* take the bytes */
    jrpc_buf_init(&ans->body);
}

/* Starts a request as a transport does; an answer made at once is taken like a later one.
 * Returns the request while it runs (JRPC__REQ_AGAIN), NULL when it was answered at once. */
static jrpc__req_t *start(const char *body, unsigned max_batch, const char *rest_method,
                          int rest_batch)
{
    size_t n = strlen(body);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, body, n);
    jrpc__req_t *r = jrpc__req_new(&loop, copy, n, NULL, NULL, on_done, NULL);
    assert_non_null(r);
    jrpc__answer_t ans;
    in_run = 1;
    int rc = rest_method != NULL
                 ? jrpc__req_run_rest(r, rest_method, strlen(rest_method), rest_batch, &ans)
                 : jrpc__req_run(r, max_batch, &ans);
    in_run = 0;
    if (rc == JRPC__REQ_AGAIN)
        return r;
    assert_int_equal(rc, JRPC__REQ_DONE);
    on_done(&ans, NULL);
    jrpc_buf_free(&ans.body);
    return NULL;
}

static void attach(jrpc_call_t *call, void *data);
static void hold(jrpc_call_t *call, void *data);
static void until_cancelled(jrpc_call_t *call, void *data);

static int setup_with(const jrpc_config_t *cfg)
{
    srv = jrpc_server_new(cfg);
    assert_non_null(srv);
    assert_int_equal(jrpc_method_add(srv, "tennis@ping", ping, NULL, JRPC_INLINE), 0);
    assert_int_equal(jrpc_method_add(srv, "slow", slow, NULL, JRPC_WORKER), 0);
    assert_int_equal(jrpc_method_add(srv, "echo", echo, NULL, JRPC_INLINE), 0);
    assert_int_equal(jrpc_method_add(srv, "fail", failing, NULL, JRPC_WORKER), 0);
    assert_int_equal(jrpc_method_add(srv, "solo", ping, NULL, JRPC_INLINE | JRPC_NO_BATCH), 0);
    assert_int_equal(jrpc_method_add(srv, "attach", attach, NULL, JRPC_INLINE), 0);
    assert_int_equal(jrpc_method_add(srv, "hold", hold, NULL, JRPC_ASYNC), 0);
    assert_int_equal(jrpc_method_add(srv, "until_cancelled", until_cancelled, NULL, JRPC_WORKER),
                     0);
    assert_int_equal(jrpc__loop_open(&srv->io, &loop), 0);
    atomic_store(&ran, 0);
    atomic_store(&max_in_flight, 0);
    done_calls = 0;
    jrpc_buf_init(&answer);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.io_threads = 1;
    return setup_with(&cfg);
}

static int teardown(void **state)
{
    (void)state;
    /* Every request must have been freed: nothing leaks past its last reply. */
    assert_int_equal(loop.holds, 0);
    assert_int_equal(jrpc__loop_finish(&loop), 0);
    jrpc_server_free(srv);
    jrpc_buf_free(&answer);
    return 0;
}

/* Sends body and runs the loop until the answer came and the request is freed (bounded). */
static void send_body(const char *body)
{
    int before = done_calls;
    start(body, srv->cfg.max_batch, NULL, 0);
    uint64_t t0 = uv_hrtime();
    while ((done_calls == before || loop.holds != 0) && uv_hrtime() - t0 < 10000000000ull)
        uv_run(&loop.uv, UV_RUN_ONCE);
    assert_int_equal(done_calls, before + 1);
    assert_int_equal(loop.holds, 0);
}

static void assert_answer(const char *expected)
{
    char *got = strndup(answer.ptr ? answer.ptr : "", answer.len);
    assert_string_equal(got, expected);
    free(got);
}

/* ---- Tests -------------------------------------------------------------------------------------
 */

static void single_inline(void **state)
{
    (void)state;
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":1}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":1}");
}

static void ids_byte_exact(void **state)
{
    (void)state;
    send_body(
        "[{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[1e400],\"id\":14066156191713469572},"
        "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":\"\\u00e9\"},"
        "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":null}]");
    assert_answer("[{\"jsonrpc\":\"2.0\",\"result\":[1e400],\"id\":14066156191713469572},"
                  "{\"jsonrpc\":\"2.0\",\"result\":null,\"id\":\"\\u00e9\"},"
                  "{\"jsonrpc\":\"2.0\",\"result\":null,\"id\":null}]");
}

static void order_kept_across_workers(void **state)
{
    (void)state;
    /* The first call finishes last; the answer is still in request order. */
    send_body("[{\"jsonrpc\":\"2.0\",\"method\":\"slow\",\"params\":[60],\"id\":\"a\"},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"slow\",\"params\":[1],\"id\":\"b\"},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":\"c\"},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"fail\",\"id\":\"d\"}]");
    assert_answer("[{\"jsonrpc\":\"2.0\",\"result\":60,\"id\":\"a\"},"
                  "{\"jsonrpc\":\"2.0\",\"result\":1,\"id\":\"b\"},"
                  "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":\"c\"},"
                  "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32602,\"message\":\"bad \\\"x\\\"\","
                  "\"data\":{\"why\":1}},\"id\":\"d\"}]");
}

static void bound_holds(void **state)
{
    (void)state;
    teardown(state);
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.io_threads = 1;
    cfg.workers = 8;
    cfg.batch_concurrency = 3;
    setup_with(&cfg);
    char body[4096] = "[";
    for (int i = 0; i < 24; i++) {
        char item[96];
        snprintf(item, sizeof item,
                 "%s{\"jsonrpc\":\"2.0\",\"method\":\"slow\",\"params\":[5],\"id\":%d}",
                 i ? "," : "", i);
        strcat(body, item);
    }
    strcat(body, "]");
    send_body(body);
    assert_int_equal(atomic_load(&ran), 24);
    assert_int_equal(atomic_load(&max_in_flight), 3);
}

static void deadline_per_item(void **state)
{
    (void)state;
    teardown(state);
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.io_threads = 1;
    cfg.deadline_ms = 50;
    setup_with(&cfg);
    send_body("[{\"jsonrpc\":\"2.0\",\"method\":\"slow\",\"params\":[400],\"id\":1},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":2}]");
    assert_answer(
        "[{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32002,\"message\":\"Request timed out\"},"
        "\"id\":1},{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":2}]");
}

static void response_cap(void **state)
{
    (void)state;
    teardown(state);
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.io_threads = 1;
    cfg.max_response = 110; /* the second entry would end the body at byte 111 */
    setup_with(&cfg);
    send_body("[{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":1},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":["
              "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"],\"id\":2},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":3}]");
    assert_answer("[{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":1},"
                  "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32003,\"message\":\"Response too "
                  "large\"},\"id\":2},"
                  "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32003,\"message\":\"Response too "
                  "large\"},\"id\":3}]");
}

static void batch_cap_runs_nothing(void **state)
{
    (void)state;
    teardown(state);
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.io_threads = 1;
    cfg.max_batch = 2;
    setup_with(&cfg);
    send_body("[{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":1},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\"},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":3}]");
    assert_int_equal(atomic_load(&ran), 0);
    assert_answer("[{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32005,\"message\":\"batch of 3 "
                  "exceeds limit 2\"},\"id\":1},"
                  "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32005,\"message\":\"batch of 3 "
                  "exceeds limit 2\"},\"id\":3}]");
    /* Notifications only: one error object rather than silence. */
    send_body("[{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\"},{\"jsonrpc\":\"2.0\",\"method\":"
              "\"tennis@ping\"},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\"}]");
    assert_int_equal(atomic_load(&ran), 0);
    assert_answer("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32005,\"message\":\"batch of 3 "
                  "exceeds limit 2\"},\"id\":null}");
    /* Far over the cap (more than ten times): one error object, however many items came. */
    char big[4096] = "[";
    for (int i = 0; i < 25; i++)
        strcat(big, i ? ",{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":1}"
                      : "{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":1}");
    strcat(big, "]");
    send_body(big);
    assert_int_equal(atomic_load(&ran), 0);
    assert_answer("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32005,\"message\":\"batch of 25 "
                  "exceeds limit 2\"},\"id\":null}");
}

static void envelope_rules(void **state)
{
    (void)state;
    send_body("[]");
    assert_answer("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid "
                  "Request\",\"data\":\"empty batch\"},\"id\":null}");
    send_body("[1]");
    assert_answer("[{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid "
                  "Request\",\"data\":\"request must be an object\"},\"id\":null}]");
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":1");
    assert_answer("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":\"Parse error\","
                  "\"data\":\"unexpected end of input at byte 36\"},\"id\":null}");
    send_body("{\"jsonrpc\":\"1.0\",\"method\":\"tennis@ping\",\"id\":7}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid "
                  "Request\",\"data\":\"jsonrpc must be \\\"2.0\\\"\"},\"id\":7}");
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":true}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid "
                  "Request\",\"data\":\"id must be a string, a number or null\"},\"id\":null}");
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"params\":3,\"id\":1}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid "
                  "Request\",\"data\":\"params must be an array or an object\"},\"id\":1}");
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"method\":\"x\",\"id\":1}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid "
                  "Request\",\"data\":\"duplicate member \\\"method\\\"\"},\"id\":1}");
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":1}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32601,\"message\":\"Method not "
                  "found\"},\"id\":1}");
    /* Escaped method names are looked up unescaped. */
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"tennis\\u0040ping\",\"id\":1}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":1}");
}

static void notifications_and_no_batch(void **state)
{
    (void)state;
    send_body("[{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\"},{\"jsonrpc\":\"2.0\",\"method\":"
              "\"nope\"}]");
    assert_int_equal(answer.len, 0);
    assert_int_equal(atomic_load(&ran), 1);
    send_body("[{\"jsonrpc\":\"2.0\",\"method\":\"solo\",\"id\":1},{\"jsonrpc\":\"2.0\",\"method\":"
              "\"tennis@ping\",\"id\":2}]");
    assert_answer("[{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32004,\"message\":\"method solo is "
                  "not available in batch requests\"},\"id\":1},"
                  "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":2}]");
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"solo\",\"id\":1}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":1}");
}

static void detach_frees_after_last_reply(void **state)
{
    (void)state;
    const char *body = "[{\"jsonrpc\":\"2.0\",\"method\":\"slow\",\"params\":[30],\"id\":1},"
                       "{\"jsonrpc\":\"2.0\",\"method\":\"slow\",\"params\":[30],\"id\":2}]";
    jrpc__req_t *r = start(body, 1000, NULL, 0);
    assert_non_null(r);
    assert_int_equal(loop.holds, 1);
    jrpc__req_detach(r);
    uint64_t t0 = uv_hrtime();
    while (loop.holds != 0 && uv_hrtime() - t0 < 5000000000ull)
        uv_run(&loop.uv, UV_RUN_ONCE);
    assert_int_equal(loop.holds, 0);
    assert_int_equal(done_calls, 0);
    assert_int_equal(atomic_load(&ran), 2);
}

/* REST: the body is the params; the answer is the bare result or {"error":…} with a status. */
static void send_rest(const char *method, const char *body, int batch)
{
    int before = done_calls;
    start(body, 0, method, batch);
    uint64_t t0 = uv_hrtime();
    while ((done_calls == before || loop.holds != 0) && uv_hrtime() - t0 < 10000000000ull)
        uv_run(&loop.uv, UV_RUN_ONCE);
    assert_int_equal(done_calls, before + 1);
    assert_int_equal(loop.holds, 0);
}

static void rest_single_and_batch(void **state)
{
    (void)state;
    send_rest("echo", " [1e400, \"x\"] ", 0);
    assert_int_equal(last_status, 200);
    assert_answer("[1e400, \"x\"]");
    send_rest("tennis@ping", "", 0);
    assert_answer("\"pong\"");
    send_rest("nope", "{}", 0);
    assert_int_equal(last_status, 404);
    assert_answer("{\"error\":{\"code\":-32601,\"message\":\"Method not found\"}}");
    send_rest("fail", "[]", 0);
    assert_int_equal(last_status, 400);
    send_rest("echo", "[1,", 0);
    assert_int_equal(last_status, 400);
    send_rest("slow", "[[30],[1],3,null]", 1);
    assert_int_equal(last_status, 200);
    assert_answer("[30,1,{\"error\":{\"code\":-32600,\"message\":\"Invalid Request\",\"data\":"
                  "\"params must be an array or an object\"}},0]");
    send_rest("solo", "[[],[]]", 1);
    assert_answer(
        "[{\"error\":{\"code\":-32004,\"message\":\"method solo is not available in batch "
        "requests\"}},{\"error\":{\"code\":-32004,\"message\":\"method solo is not "
        "available in batch requests\"}}]");
    send_rest("echo", "[]", 1);
    assert_answer("[]");
}

static void patterns_and_deny(void **state)
{
    (void)state;
    teardown(state);
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.io_threads = 1;
    setup_with(&cfg);
    /* Prefix patterns: the longest wins, exact names win over both. */
    assert_int_equal(jrpc_method_add(srv, "eth_*", echo, NULL, JRPC_INLINE), 0);
    assert_int_equal(jrpc_method_add(srv, "eth_get*", ping, NULL, JRPC_INLINE), 0);
    assert_int_equal(jrpc_method_add(srv, "eth_getX", failing, NULL, JRPC_WORKER), 0);
    assert_int_equal(jrpc_method_add(srv, "bad*pattern*", ping, NULL, 0), JRPC_EINVAL);
    assert_int_equal(jrpc_batch_deny(srv, "eth_send*"), 0);
    send_body("[{\"jsonrpc\":\"2.0\",\"method\":\"eth_chainId\",\"params\":[7],\"id\":1},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"eth_getBalance\",\"id\":2},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"eth_sendTransaction\",\"params\":[],\"id\":3},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"eth\",\"id\":4}]");
    assert_answer(
        "[{\"jsonrpc\":\"2.0\",\"result\":[7],\"id\":1},"
        "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":2},"
        "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32004,\"message\":\"method "
        "eth_sendTransaction is not available in batch requests\"},\"id\":3},"
        "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32601,\"message\":\"Method not found\"},"
        "\"id\":4}]");
    /* Denied in a batch, served alone. */
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"eth_sendTransaction\",\"params\":[1],\"id\":3}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"result\":[1],\"id\":3}");
}

/* Inline-only requests answer from jrpc__req_run itself; a worker call answers later through
 * the done callback, never inside the call (on_done asserts that). */
static void done_or_again(void **state)
{
    (void)state;
    assert_null(start("{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":1}", 1000, NULL, 0));
    assert_int_equal(done_calls, 1);
    assert_answer("{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":1}");
    /* Parse errors and over-cap batches are answered at once too. */
    assert_null(start("[", 1000, NULL, 0));
    assert_int_equal(done_calls, 2);
    jrpc__req_t *r =
        start("{\"jsonrpc\":\"2.0\",\"method\":\"slow\",\"params\":[5],\"id\":2}", 1000, NULL, 0);
    assert_non_null(r);
    assert_int_equal(done_calls, 2);
    uint64_t t0 = uv_hrtime();
    while ((done_calls == 2 || loop.holds != 0) && uv_hrtime() - t0 < 10000000000ull)
        uv_run(&loop.uv, UV_RUN_ONCE);
    assert_int_equal(done_calls, 3);
    assert_answer("{\"jsonrpc\":\"2.0\",\"result\":5,\"id\":2}");
}

/* Cleanups: a request's run when it is freed (also after a detach, once its last call replied);
 * a call's learns whether its answer reaches the client. */
static int req_cleanups;
static int call_cleanups[2]; /* [delivered] */

static void count_req_cleanup(void *data)
{
    (void)data;
    req_cleanups++;
}

static void count_call_cleanup(void *data, int delivered)
{
    (void)data;
    call_cleanups[delivered ? 1 : 0]++;
}

static void attach(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc__call_cleanup_set(call, count_call_cleanup, NULL);
    jrpc_reply_raw(call, "1", 1);
}

static void cleanup_hooks(void **state)
{
    (void)state;
    req_cleanups = 0;
    call_cleanups[0] = call_cleanups[1] = 0;
    const char *body = "[{\"jsonrpc\":\"2.0\",\"method\":\"attach\",\"id\":1},"
                       "{\"jsonrpc\":\"2.0\",\"method\":\"attach\"},"
                       "{\"jsonrpc\":\"2.0\",\"method\":\"slow\",\"params\":[20],\"id\":3}]";
    char *copy = strdup(body);
    jrpc__req_t *r = jrpc__req_new(&loop, copy, strlen(copy), NULL, NULL, on_done, NULL);
    assert_non_null(r);
    assert_int_equal(jrpc__req_cleanup_add(r, count_req_cleanup, NULL), 0);
    assert_int_equal(jrpc__req_cleanup_add(r, count_req_cleanup, NULL), 0);
    jrpc__answer_t ans;
    assert_int_equal(jrpc__req_run(r, 1000, &ans), JRPC__REQ_AGAIN);
    /* The answered call and the notification completed inside the run. */
    assert_int_equal(call_cleanups[1], 1);
    assert_int_equal(call_cleanups[0], 1);
    assert_int_equal(req_cleanups, 0);
    jrpc__req_detach(r); /* the client left: the worker call still finishes, then all goes */
    uint64_t t0 = uv_hrtime();
    while (loop.holds != 0 && uv_hrtime() - t0 < 10000000000ull)
        uv_run(&loop.uv, UV_RUN_ONCE);
    assert_int_equal(loop.holds, 0);
    assert_int_equal(req_cleanups, 2);
    assert_int_equal(done_calls, 0);
}

/* jrpc_call_cancelled: 0 while someone waits for the answer; 1 once the client left (calls with
 * an id only: a notification's effects are still wanted), once the deadline passed (seen on the
 * loop's thread before the timer ran, and by handlers on other threads once it has). */
static jrpc_call_t *holding[4];
static size_t nholding;
static atomic_int saw_cancel;

static void hold(jrpc_call_t *call, void *data)
{
    (void)data;
    assert_true(nholding < 4);
    holding[nholding++] = call;
}

/* On a worker: waits (bounded) for the loop to cancel the call, then replies. */
static void until_cancelled(jrpc_call_t *call, void *data)
{
    (void)data;
    uint64_t t0 = uv_hrtime();
    while (!jrpc_call_cancelled(call) && uv_hrtime() - t0 < 5000000000ull)
        sleep_ms(1);
    atomic_store(&saw_cancel, jrpc_call_cancelled(call));
    jrpc_reply_raw(call, "1", 1);
}

static void release_holding(void)
{
    for (size_t i = 0; i < nholding; i++)
        jrpc_reply_raw(holding[i], "0", 1);
    nholding = 0;
    uint64_t t0 = uv_hrtime();
    while (loop.holds != 0 && uv_hrtime() - t0 < 5000000000ull)
        uv_run(&loop.uv, UV_RUN_ONCE);
    assert_int_equal(loop.holds, 0);
}

static const char held_pair[] = "[{\"jsonrpc\":\"2.0\",\"method\":\"hold\",\"id\":1},"
                                "{\"jsonrpc\":\"2.0\",\"method\":\"hold\"}]";

static void cancelled_when_client_leaves(void **state)
{
    (void)state;
    nholding = 0;
    jrpc__req_t *r = start(held_pair, 1000, NULL, 0);
    assert_non_null(r);
    assert_int_equal(nholding, 2);
    assert_int_equal(jrpc_call_cancelled(holding[0]), 0);
    assert_int_equal(jrpc_call_cancelled(holding[1]), 0);
    jrpc__req_detach(r);
    assert_int_equal(jrpc_call_cancelled(holding[0]), 1);
    assert_int_equal(jrpc_call_cancelled(holding[1]), 0); /* a notification still runs */
    release_holding();
    assert_int_equal(done_calls, 0);
}

static void cancelled_at_deadline(void **state)
{
    (void)state;
    teardown(state);
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.io_threads = 1;
    cfg.deadline_ms = 30;
    setup_with(&cfg);
    nholding = 0;
    assert_non_null(start(held_pair, 1000, NULL, 0));
    assert_int_equal(jrpc_call_cancelled(holding[0]), 0);
    /* Past the deadline, before the loop has run its timer: the loop's thread sees it already. */
    sleep_ms(40);
    uv_update_time(&loop.uv);
    assert_int_equal(done_calls, 0);
    assert_int_equal(jrpc_call_cancelled(holding[0]), 1);
    assert_int_equal(jrpc_call_cancelled(holding[1]), 1);
    /* The timer, due already, answers -32002 (NOWAIT: after it nothing comes that would end a
     * blocking poll); the flag stays set for the handlers' late replies. */
    uv_run(&loop.uv, UV_RUN_NOWAIT);
    assert_int_equal(done_calls, 1);
    assert_answer("[{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32002,\"message\":\"Request timed "
                  "out\"},\"id\":1}]");
    assert_int_equal(jrpc_call_cancelled(holding[0]), 1);
    assert_int_equal(jrpc_call_cancelled(holding[1]), 1);
    release_holding();

    /* A handler on another thread sees the flag the loop set when the deadline timer ran. */
    atomic_store(&saw_cancel, 0);
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"until_cancelled\",\"id\":2}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32002,\"message\":\"Request timed "
                  "out\"},\"id\":2}");
    uint64_t t1 = uv_hrtime();
    while (loop.holds != 0 && uv_hrtime() - t1 < 10000000000ull)
        uv_run(&loop.uv, UV_RUN_ONCE);
    assert_int_equal(atomic_load(&saw_cancel), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(single_inline, setup, teardown),
        cmocka_unit_test_setup_teardown(ids_byte_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(order_kept_across_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(bound_holds, setup, teardown),
        cmocka_unit_test_setup_teardown(deadline_per_item, setup, teardown),
        cmocka_unit_test_setup_teardown(response_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_cap_runs_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(envelope_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(notifications_and_no_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(detach_frees_after_last_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(rest_single_and_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(patterns_and_deny, setup, teardown),
        cmocka_unit_test_setup_teardown(done_or_again, setup, teardown),
        cmocka_unit_test_setup_teardown(cleanup_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(cancelled_when_client_leaves, setup, teardown),
        cmocka_unit_test_setup_teardown(cancelled_at_deadline, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
