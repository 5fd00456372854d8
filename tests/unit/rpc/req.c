/* Unit tests of the request engine (src/rpc/req.c) in-process: one real libuv loop on this thread,
 * the real worker pool, handlers that count what they run. Transport-independent rules: request
 * order, the batch bound, deadlines, the response cap, the batch cap, notifications, detach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/internal.h"
#include "rpc/internal.h"

static jrpc_server_t *srv;
static jrpc__loop_t loop;
static atomic_int ran;       /* handler invocations */
static atomic_int in_flight; /* handlers running now */
static atomic_int max_in_flight;

/* What the transport got. */
static int done_calls;
static jrpc_buf_t answer;

/* ---- Handlers -------------------------------------------------------------------------------- */

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

/* ---- Harness --------------------------------------------------------------------------------- */

static void on_done(jrpc__req_t *req, jrpc_buf_t *body, void *ud)
{
    (void)req;
    (void)ud;
    done_calls++;
    jrpc_buf_free(&answer);
    answer = *body; /* take the bytes */
    jrpc_buf_init(body);
}

static int setup_with(const jrpc_config_t *cfg)
{
    srv = jrpc_server_new(cfg);
    assert_non_null(srv);
    assert_int_equal(jrpc_method_add(srv, "tennis@ping", ping, NULL, JRPC_INLINE), 0);
    assert_int_equal(jrpc_method_add(srv, "slow", slow, NULL, JRPC_WORKER), 0);
    assert_int_equal(jrpc_method_add(srv, "echo", echo, NULL, JRPC_INLINE), 0);
    assert_int_equal(jrpc_method_add(srv, "fail", failing, NULL, JRPC_WORKER), 0);
    assert_int_equal(jrpc_method_add(srv, "solo", ping, NULL, JRPC_INLINE | JRPC_NO_BATCH), 0);
    srv->pool = jrpc__pool_new(srv->cfg.workers, srv->cfg.worker_queue);
    assert_non_null(srv->pool);
    memset(&loop, 0, sizeof loop);
    int inited = 0;
    assert_int_equal(jrpc__loop_init(&loop, srv, 0, &inited), 0);
    loop.tid = uv_thread_self();
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
    assert_int_equal(loop.nreqs, 0);
    loop.stopping = 1;
    jrpc__loop_maybe_done(&loop);
    uv_run(&loop.uv, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop.uv), 0);
    uv_mutex_destroy(&loop.done_lock);
    jrpc__arena_cache_clear(&loop.arenas);
    jrpc__pool_free(srv->pool);
    srv->pool = NULL;
    jrpc_server_free(srv);
    jrpc_buf_free(&answer);
    return 0;
}

/* Sends body and runs the loop until the answer came and the request is freed (bounded). */
static void send_body(const char *body)
{
    size_t n = strlen(body);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, body, n);
    int before = done_calls;
    jrpc__req_start(&loop, copy, n, srv->cfg.max_batch, NULL, on_done, NULL);
    uint64_t start = uv_hrtime();
    while ((done_calls == before || loop.nreqs != 0) && uv_hrtime() - start < 10000000000ull)
        uv_run(&loop.uv, UV_RUN_ONCE);
    assert_int_equal(done_calls, before + 1);
    assert_int_equal(loop.nreqs, 0);
}

static void assert_answer(const char *expected)
{
    char *got = strndup(answer.ptr ? answer.ptr : "", answer.len);
    assert_string_equal(got, expected);
    free(got);
}

/* ---- Tests ----------------------------------------------------------------------------------- */

static void single_inline(void **state)
{
    (void)state;
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":1}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":1}");
}

static void ids_byte_exact(void **state)
{
    (void)state;
    send_body("[{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[1e400],"
              "\"id\":14066156191713469572},"
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
    assert_answer("[{\"jsonrpc\":\"2.0\","
                  "\"error\":{\"code\":-32002,\"message\":\"Request timed out\"},\"id\":1},"
                  "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":2}]");
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
              "{\"jsonrpc\":\"2.0\",\"method\":\"echo\","
              "\"params\":[\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"],\"id\":2},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":3}]");
    assert_answer("[{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":1},"
                  "{\"jsonrpc\":\"2.0\","
                  "\"error\":{\"code\":-32003,\"message\":\"Response too large\"},\"id\":2},"
                  "{\"jsonrpc\":\"2.0\","
                  "\"error\":{\"code\":-32003,\"message\":\"Response too large\"},\"id\":3}]");
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
    assert_answer("[{\"jsonrpc\":\"2.0\","
                  "\"error\":{\"code\":-32005,\"message\":\"batch of 3 exceeds limit 2\"},"
                  "\"id\":1},"
                  "{\"jsonrpc\":\"2.0\","
                  "\"error\":{\"code\":-32005,\"message\":\"batch of 3 exceeds limit 2\"},"
                  "\"id\":3}]");
    /* Notifications only: one error object rather than silence. */
    send_body("[{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\"},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\"},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\"}]");
    assert_int_equal(atomic_load(&ran), 0);
    assert_answer("{\"jsonrpc\":\"2.0\","
                  "\"error\":{\"code\":-32005,\"message\":\"batch of 3 exceeds limit 2\"},"
                  "\"id\":null}");
    /* Far over the cap (more than ten times): one error object, however many items came. */
    char big[4096] = "[";
    for (int i = 0; i < 25; i++)
        strcat(big, i ? ",{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":1}"
                      : "{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":1}");
    strcat(big, "]");
    send_body(big);
    assert_int_equal(atomic_load(&ran), 0);
    assert_answer("{\"jsonrpc\":\"2.0\","
                  "\"error\":{\"code\":-32005,\"message\":\"batch of 25 exceeds limit 2\"},"
                  "\"id\":null}");
}

static void envelope_rules(void **state)
{
    (void)state;
    send_body("[]");
    assert_answer("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\","
                  "\"data\":\"empty batch\"},\"id\":null}");
    send_body("[1]");
    assert_answer(
        "[{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\","
        "\"data\":\"request must be an object\"},\"id\":null}]");
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":1");
    assert_answer("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":\"Parse error\","
                  "\"data\":\"unexpected end of input at byte 36\"},\"id\":null}");
    send_body("{\"jsonrpc\":\"1.0\",\"method\":\"tennis@ping\",\"id\":7}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\","
                  "\"data\":\"jsonrpc must be \\\"2.0\\\"\"},\"id\":7}");
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":true}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\","
                  "\"data\":\"id must be a string, a number or null\"},\"id\":null}");
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"params\":3,\"id\":1}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\","
                  "\"data\":\"params must be an array or an object\"},\"id\":1}");
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"method\":\"x\",\"id\":1}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid Request\","
                  "\"data\":\"duplicate member \\\"method\\\"\"},\"id\":1}");
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":1}");
    assert_answer("{\"jsonrpc\":\"2.0\","
                  "\"error\":{\"code\":-32601,\"message\":\"Method not found\"},\"id\":1}");
    /* Escaped method names are looked up unescaped. */
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"tennis\\u0040ping\",\"id\":1}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":1}");
}

static void notifications_and_no_batch(void **state)
{
    (void)state;
    send_body("[{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\"},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"nope\"}]");
    assert_int_equal(answer.len, 0);
    assert_int_equal(atomic_load(&ran), 1);
    send_body("[{\"jsonrpc\":\"2.0\",\"method\":\"solo\",\"id\":1},"
              "{\"jsonrpc\":\"2.0\",\"method\":\"tennis@ping\",\"id\":2}]");
    assert_answer("[{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32004,"
                  "\"message\":\"method solo is not available in batch requests\"},\"id\":1},"
                  "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":2}]");
    send_body("{\"jsonrpc\":\"2.0\",\"method\":\"solo\",\"id\":1}");
    assert_answer("{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":1}");
}

static void detach_frees_after_last_reply(void **state)
{
    (void)state;
    const char *body = "[{\"jsonrpc\":\"2.0\",\"method\":\"slow\",\"params\":[30],\"id\":1},"
                       "{\"jsonrpc\":\"2.0\",\"method\":\"slow\",\"params\":[30],\"id\":2}]";
    char *copy = strdup(body);
    jrpc__req_t *r = jrpc__req_start(&loop, copy, strlen(copy), 1000, NULL, on_done, NULL);
    assert_non_null(r);
    assert_int_equal(loop.nreqs, 1);
    jrpc__req_detach(r);
    uint64_t start = uv_hrtime();
    while (loop.nreqs != 0 && uv_hrtime() - start < 5000000000ull)
        uv_run(&loop.uv, UV_RUN_ONCE);
    assert_int_equal(loop.nreqs, 0);
    assert_int_equal(done_calls, 0);
    assert_int_equal(atomic_load(&ran), 2);
}

/* REST: the body is the params; the answer is the bare result or {"error":…} with a status. */
static int last_status;

static void on_done_status(jrpc__req_t *req, jrpc_buf_t *body, void *ud)
{
    last_status = jrpc__req_status(req);
    on_done(req, body, ud);
}

static void send_rest(const char *method, const char *body, int batch)
{
    size_t n = strlen(body);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, body, n);
    int before = done_calls;
    jrpc__req_start_rest(&loop, method, strlen(method), copy, n, batch, NULL, on_done_status, NULL);
    uint64_t start = uv_hrtime();
    while ((done_calls == before || loop.nreqs != 0) && uv_hrtime() - start < 10000000000ull)
        uv_run(&loop.uv, UV_RUN_ONCE);
    assert_int_equal(done_calls, before + 1);
    assert_int_equal(loop.nreqs, 0);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
