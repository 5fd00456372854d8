/* SPDX-License-Identifier: MIT */
/* Unit tests of the local budget store (src/io/budget.c): the token bucket's exact integer
 * arithmetic (refill, per-item admission in request order, retry_after_ms), a reservation
 * through the store's ops, and the table's bound under a flood of one-off names. The source is
 * included to reach its statics with a clock of the test's own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include "../../../src/io/budget.c"

#include <stdio.h>

static void test_refill(void **state)
{
    (void)state;
    /* 330 units/s gain 330 micro-units per microsecond, capped at the burst. */
    assert_int_equal(bucket_refill(0, 1, 330, 660), 330);
    assert_int_equal(bucket_refill(0, 1000000, 330, 660), 330 * MICRO);
    assert_int_equal(bucket_refill(0, 2000000, 330, 660), 660 * MICRO);
    assert_int_equal(bucket_refill(0, 3000000, 330, 660), 660 * MICRO);
    /* A long idle time at the largest rate and burst does not overflow. */
    assert_int_equal(
        bucket_refill(0, UINT64_MAX / 2, JRPC__BUDGET_MAX_BURST, JRPC__BUDGET_MAX_BURST),
        JRPC__BUDGET_MAX_BURST * MICRO);
    /* 1 unit/s: a unit takes exactly one second. */
    assert_int_equal(bucket_refill(0, 999999, 1, 10), 999999);
    assert_int_equal(bucket_refill(0, 1000000, 1, 10), MICRO);
}

static void test_take_in_order(void **state)
{
    (void)state;
    /* Budget 7, batch of 10 one-unit calls: the first 7 run, the last 3 are refused. */
    uint64_t tokens = 7 * MICRO;
    uint32_t costs[10];
    uint8_t ok[10];
    for (int i = 0; i < 10; i++) {
        costs[i] = 1;
        ok[i] = 1;
    }
    uint64_t retry = bucket_take(&tokens, 1, 7, costs, ok, 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ok[i], i < 7);
    assert_int_equal(tokens, 0);
    assert_int_equal(retry, 1000); /* one unit at 1 unit/s */

    /* An item that does not fit costs nothing and the next is still tried; skipped items
     * (ok 0 on entry) cost nothing either. */
    tokens = 80 * MICRO;
    uint32_t c2[5] = {75, 75, 0, 5, 1};
    uint8_t ok2[5] = {1, 1, 1, 1, 0};
    retry = bucket_take(&tokens, 10, 100, c2, ok2, 5);
    assert_int_equal(ok2[0], 1);
    assert_int_equal(ok2[1], 0);
    assert_int_equal(ok2[2], 1);
    assert_int_equal(ok2[3], 1);
    assert_int_equal(ok2[4], 0);
    assert_int_equal(tokens, 0);
    /* 75 units were missing 70 at the time (5 left): 7 s at 10 units/s. */
    assert_int_equal(retry, 7000);
}

static void test_retry_rounding(void **state)
{
    (void)state;
    /* 3 units/s, 1 unit missing: 333 333.3 µs, rounded up to 334 ms. */
    uint64_t tokens = 0;
    uint32_t cost = 1;
    uint8_t ok = 1;
    assert_int_equal(bucket_take(&tokens, 3, 10, &cost, &ok, 1), 334);
    assert_int_equal(ok, 0);
    /* An item dearer than the burst: told when the bucket is full (here: 2 s from empty). */
    tokens = 0;
    cost = 50;
    ok = 1;
    assert_int_equal(bucket_take(&tokens, 5, 10, &cost, &ok, 1), 2000);
    /* Nothing refused: 0. */
    tokens = MICRO;
    cost = 1;
    ok = 1;
    assert_int_equal(bucket_take(&tokens, 5, 10, &cost, &ok, 1), 0);
    assert_int_equal(ok, 1);
}

struct got {
    int calls;
    jrpc__budget_result_t res;
};

static void on_done(void *arg, const jrpc__budget_result_t *res)
{
    struct got *g = arg;
    g->calls++;
    g->res = *res;
}

static void test_store(void **state)
{
    (void)state;
    jrpc__budget_t *b = jrpc__budget_local_new();
    assert_non_null(b);
    /* Rate 1/s, burst 5: a new bucket starts full; two reservations share it. */
    jrpc__bucket_t bk = {"k:alice", 7, 1, 5};
    uint32_t costs[4] = {2, 2, 2, 0};
    uint8_t ok[4] = {1, 1, 1, 1};
    struct got g = {0};
    jrpc__budget_reserve(b, NULL, &bk, costs, ok, 4, on_done, &g);
    assert_int_equal(g.calls, 1); /* before reserve returns */
    assert_int_equal(g.res.status, JRPC__BUDGET_OK);
    assert_int_equal(ok[0] + ok[1] + ok[2], 2);
    assert_int_equal(ok[2], 0);
    assert_int_equal(ok[3], 1); /* free */
    assert_true(g.res.retry_after_ms >= 1 && g.res.retry_after_ms <= 1000);
    /* Another name has a budget of its own. */
    jrpc__bucket_t other = {"k:bob", 5, 1, 5};
    uint8_t ok1 = 1;
    uint32_t five = 5;
    jrpc__budget_reserve(b, NULL, &other, &five, &ok1, 1, on_done, &g);
    assert_int_equal(g.calls, 2);
    assert_int_equal(ok1, 1);
    b->ops->free(b);
}

static void test_bounded(void **state)
{
    (void)state;
    local_store_t *s = (local_store_t *)jrpc__budget_local_new();
    assert_non_null(s);
    /* 100 000 one-off addresses, one every 10 ms of the test's clock, each spending 1 unit of
     * a 1 unit/s, burst 1 bucket: each is full again a second later, so the table never needs
     * room for more than the ~100 of the last second. */
    uint64_t now = 1000000;
    size_t max_cap = 0;
    for (int i = 0; i < 100000; i++, now += 10000) {
        char name[32];
        int n =
            snprintf(name, sizeof name, "a:10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        jrpc__bucket_t bk = {name, (size_t)n, 1, 1};
        struct bucket *b = table_get(s, &bk, now);
        assert_non_null(b);
        b->tokens = 0; /* spent */
        b->at = now;
        if (s->cap > max_cap)
            max_cap = s->cap;
    }
    assert_true(s->live <= 512);
    assert_true(max_cap <= 1024);
    s->base.ops->free(&s->base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refill),         cmocka_unit_test(test_take_in_order),
        cmocka_unit_test(test_retry_rounding), cmocka_unit_test(test_store),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
