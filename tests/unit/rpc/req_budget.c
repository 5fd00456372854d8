/* SPDX-License-Identifier: MIT */
/* Unit tests of the engine's side of budgets (src/rpc/req.c, req_admit) against a store that
 * answers later, as a shared store does (io/budget.h): one reservation per request with every
 * item's cost, nothing runs until it answers, refused items get -32005 with retry_after_ms, a
 * single call 429; the deadline runs meanwhile, and a request answered or left by its client
 * before the store answers is freed when it does, never used after. One real libuv loop on this
 * thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <stdlib.h>
#include <string.h>

#include "io/budget.h"
#include "io/internal.h"
#include "rpc/internal.h"
#include "server.h"

static jrpc_server_t *srv;
static jrpc__loop_t loop;
static const jrpc__keys_t *keys;
static int ran;

/* ---- A store that answers when the test says ------------------------------------------------ */

static struct pending {
    int out; /* a reservation waits */
    int count;
    char name[64];
    uint64_t rate, burst;
    uint32_t costs[16];
    uint8_t *ok;
    size_t n;
    jrpc__budget_cb done;
    void *arg;
} pend;

static void later_reserve(jrpc__budget_t *b, jrpc__loop_t *l, const jrpc__bucket_t *bk,
                          const uint32_t *costs, uint8_t *ok, size_t n, jrpc__budget_cb done,
                          void *arg)
{
    (void)b;
    assert_ptr_equal(l, &loop);
    assert_false(pend.out);
    assert_true(n <= 16 && bk->name_len < sizeof pend.name);
    pend.out = 1;
    pend.count++;
    memcpy(pend.name, bk->name, bk->name_len);
    pend.name[bk->name_len] = '\0';
    pend.rate = bk->rate;
    pend.burst = bk->burst;
    memcpy(pend.costs, costs, n * sizeof(*costs));
    pend.ok = ok;
    pend.n = n;
    pend.done = done;
    pend.arg = arg;
}

/* The store answers: items whose bit is set in `admit` are admitted. */
static void answer(unsigned admit, int status, uint64_t retry_ms)
{
    assert_true(pend.out);
    pend.out = 0;
    for (size_t i = 0; i < pend.n; i++)
        pend.ok[i] = pend.ok[i] && (admit >> i & 1u);
    jrpc__budget_result_t res = {status, retry_ms};
    pend.done(pend.arg, &res);
}

static void later_free(jrpc__budget_t *b)
{
    (void)b;
}

static const jrpc__budget_ops_t later_ops = {later_reserve, NULL, NULL, later_free};
static jrpc__budget_t later = {&later_ops};

/* ---- Harness ----------------------------------------------------------------------------------
 */

static int done_calls, last_status;
static uint32_t last_retry;
static jrpc_buf_t got;

static void on_done(jrpc__answer_t *ans, void *ud)
{
    (void)ud;
    done_calls++;
    last_status = ans->status;
    last_retry = ans->retry_after;
    jrpc_buf_free(&got);
    got = ans->body;
    jrpc_buf_init(&ans->body);
}

static void ping(jrpc_call_t *call, void *data)
{
    (void)data;
    ran++;
    jrpc_reply_raw(call, "\"pong\"", 6);
}

static int setup(void **state)
{
    (void)state;
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.io_threads = 1;
    cfg.deadline_ms = 200;
    srv = jrpc_server_new(&cfg);
    assert_non_null(srv);
    assert_int_equal(jrpc_method_add(srv, "ping", ping, NULL, JRPC_INLINE), 0);
    assert_int_equal(jrpc_method_add(srv, "dear", ping, NULL, JRPC_INLINE), 0);
    jrpc_keys_t *k = jrpc_keys_new(NULL);
    jrpc_key_config_t kc = {"alice", "0123456789abcdef", 5, 9, "ping, dear", NULL, 0, 0, NULL};
    assert_int_equal(jrpc_keys_add(k, &kc), 0);
    assert_int_equal(jrpc_keys_cost(k, "dear", 3), 0);
    assert_int_equal(jrpc_server_keys_set(srv, k), 0);
    keys = atomic_load(&srv->engine.keys);
    srv->engine.budget = &later;
    assert_int_equal(jrpc__loop_open(&srv->io, &loop), 0);
    memset(&pend, 0, sizeof pend);
    ran = done_calls = last_status = 0;
    jrpc_buf_init(&got);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_false(pend.out);
    assert_int_equal(loop.holds, 0); /* every request freed */
    assert_int_equal(jrpc__loop_finish(&loop), 0);
    jrpc_server_free(srv);
    jrpc_buf_free(&got);
    return 0;
}

/* Starts body with alice's key; it must wait for the store. */
static jrpc__req_t *start(const char *body)
{
    size_t n = strlen(body);
    char *copy = malloc(n);
    memcpy(copy, body, n);
    jrpc__req_t *r = jrpc__req_new(&loop, copy, n, NULL, NULL, on_done, NULL);
    assert_non_null(r);
    jrpc__auth_t auth = {keys, jrpc__keys_find(keys, "0123456789abcdef", 16), {0}, 0};
    assert_non_null(auth.key);
    jrpc__req_auth(r, &auth);
    jrpc__answer_t ans;
    assert_int_equal(jrpc__req_run(r, 1000, &ans), JRPC__REQ_AGAIN);
    assert_true(pend.out);
    assert_int_equal(ran, 0); /* nothing runs before the store answered */
    return r;
}

static void run_until(int (*cond)(void))
{
    uint64_t t0 = uv_hrtime();
    while (!cond() && uv_hrtime() - t0 < 5000000000ull)
        uv_run(&loop.uv, UV_RUN_ONCE);
    assert_true(cond());
}

static int answered_and_freed(void)
{
    return done_calls == 1 && loop.holds == 0;
}

static void assert_got(const char *expected)
{
    char *s = strndup(got.ptr ? got.ptr : "", got.len);
    assert_string_equal(s, expected);
    free(s);
}

/* ---- Tests ------------------------------------------------------------------------------------
 */

static void batch_waits_then_runs_what_fits(void **state)
{
    (void)state;
    start("[{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1},"
          "{\"jsonrpc\":\"2.0\",\"method\":\"dear\",\"id\":2},"
          "{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":3},"
          "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":4}]");
    /* One reservation for the request: the key's bucket, every item's cost (0: not offered). */
    assert_int_equal(pend.count, 1);
    assert_string_equal(pend.name, "k:alice");
    assert_int_equal(pend.rate, 5);
    assert_int_equal(pend.burst, 9);
    assert_int_equal(pend.n, 4);
    assert_int_equal(pend.costs[0], 1);
    assert_int_equal(pend.costs[1], 3);
    assert_int_equal(pend.costs[2], 0);
    assert_int_equal(pend.ok[2], 0);
    answer(0x9, JRPC__BUDGET_OK, 250); /* items 0 and 3 */
    run_until(answered_and_freed);
    assert_int_equal(ran, 2);
    assert_int_equal(last_status, 200);
    assert_got("[{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":1},"
               "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32005,\"message\":\"rate limit exceeded: "
               "over the budget of this API key\",\"data\":{\"retry_after_ms\":250}},\"id\":2},"
               "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32601,\"message\":\"method nope is not "
               "allowed for this API key\"},\"id\":3},"
               "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":4}]");
    /* Counted under the key: 2 calls, 2 units, 1 refused over budget, 1 outside its methods. */
    const jrpc__key_stats_t *st = jrpc__keys_find(keys, "0123456789abcdef", 16)->stats;
    assert_int_equal(atomic_load(&st->calls), 2);
    assert_int_equal(atomic_load(&st->units), 2);
    assert_int_equal(atomic_load(&st->rej_budget), 1);
    assert_int_equal(atomic_load(&st->rej_method), 1);
}

static void single_call_refused_is_429(void **state)
{
    (void)state;
    start("{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":7}");
    answer(0, JRPC__BUDGET_OK, 1500);
    run_until(answered_and_freed);
    assert_int_equal(ran, 0);
    assert_int_equal(last_status, 429);
    assert_int_equal(last_retry, 2); /* 1.5 s, rounded up */
}

static void closed_store_refuses_all(void **state)
{
    (void)state;
    start("[{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1},"
          "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":2}]");
    answer(0x3, JRPC__BUDGET_CLOSED, 1000); /* down and closed: nothing admitted */
    run_until(answered_and_freed);
    assert_int_equal(ran, 0);
    assert_non_null(strstr(got.ptr, "\"retry_after_ms\":1000"));
}

static int answered(void)
{
    return done_calls == 1;
}

static void deadline_runs_while_waiting(void **state)
{
    (void)state;
    start("[{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1}]");
    run_until(answered); /* the 200 ms deadline answers while the store is silent */
    assert_int_equal(ran, 0);
    assert_got("[{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32002,\"message\":\"Request timed "
               "out\"},\"id\":1}]");
    assert_int_equal(loop.holds, 1); /* kept for the store's answer */
    answer(0x1, JRPC__BUDGET_OK, 0);
    assert_int_equal(ran, 0); /* dropped: the request was answered */
    run_until(answered_and_freed);
}

static int freed(void)
{
    return loop.holds == 0;
}

static void client_leaves_while_waiting(void **state)
{
    (void)state;
    jrpc__req_t *r = start("{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1}");
    jrpc__req_detach(r);
    assert_int_equal(loop.holds, 1);
    answer(0x1, JRPC__BUDGET_OK, 0);
    run_until(freed);
    assert_int_equal(done_calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(batch_waits_then_runs_what_fits, setup, teardown),
        cmocka_unit_test_setup_teardown(single_call_refused_is_429, setup, teardown),
        cmocka_unit_test_setup_teardown(closed_store_refuses_all, setup, teardown),
        cmocka_unit_test_setup_teardown(deadline_runs_while_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(client_leaves_while_waiting, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
