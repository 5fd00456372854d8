/* SPDX-License-Identifier: MIT */
/* Unit tests for src/io/pool.c: the worker pool keeps one FIFO per connection and a free thread
 * serves the connection with the fewest calls running, in turn among equals, so a connection
 * with many calls queued or running delays another's call by one thread, not by all of them;
 * the bound counts every queue. */
#include "../../../src/io/internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

/* What the one worker ran, in order: the data pointers, as small integers. */
static int order[64];
static atomic_int ran;
static uv_sem_t gate;    /* the first job waits here until the test has queued everything */
static uv_sem_t done_;   /* posted after every job */
static uv_sem_t at_gate; /* posted when the gated job has started */
static atomic_int gated; /* the next job to run waits at the gate */

static void job_cb(jrpc_call_t *call, void *data)
{
    (void)call;
    if (atomic_exchange(&gated, 0)) {
        uv_sem_post(&at_gate);
        uv_sem_wait(&gate);
    }
    order[atomic_fetch_add(&ran, 1)] = (int)(intptr_t)data;
    uv_sem_post(&done_);
}

static void job_init(jrpc__pool_job_t *job, int tag)
{
    memset(job, 0, sizeof(*job));
    job->cb = job_cb;
    job->data = (void *)(intptr_t)tag;
}

static int setup(void **state)
{
    (void)state;
    atomic_store(&ran, 0);
    memset(order, 0, sizeof order);
    uv_sem_init(&gate, 0);
    uv_sem_init(&done_, 0);
    uv_sem_init(&at_gate, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uv_sem_destroy(&gate);
    uv_sem_destroy(&done_);
    uv_sem_destroy(&at_gate);
    return 0;
}

/* A (10 jobs, the first held at the gate) then B (1) then C (2): one worker runs A1, then B's
 * and C's first before A's second — in turn, not in submission order. */
static void test_round_robin(void **state)
{
    (void)state;
    jrpc__pool_t *p = jrpc__pool_new(1, 100);
    assert_non_null(p);
    jrpc__pool_queue_t a, b, c;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    jrpc__pool_job_t ja[10], jb[1], jc[2];
    atomic_store(&gated, 1);
    for (int i = 0; i < 10; i++) {
        job_init(&ja[i], 100 + i);
        assert_int_equal(jrpc__pool_submit(p, &a, &ja[i]), 0);
    }
    job_init(&jb[0], 200);
    assert_int_equal(jrpc__pool_submit(p, &b, &jb[0]), 0);
    for (int i = 0; i < 2; i++) {
        job_init(&jc[i], 300 + i);
        assert_int_equal(jrpc__pool_submit(p, &c, &jc[i]), 0);
    }
    uv_sem_post(&gate);
    for (int i = 0; i < 13; i++)
        uv_sem_wait(&done_);
    const int want[13] = {100, 200, 300, 101, 301, 102, 103, 104, 105, 106, 107, 108, 109};
    for (int i = 0; i < 13; i++)
        assert_int_equal(order[i], want[i]);
    jrpc__pool_free(p);
}

/* The bound counts the jobs of every queue together; the shared queue (NULL) takes turns too. */
static void test_bound_spans_queues(void **state)
{
    (void)state;
    jrpc__pool_t *p = jrpc__pool_new(1, 3);
    assert_non_null(p);
    jrpc__pool_queue_t a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    jrpc__pool_job_t j[5];
    atomic_store(&gated, 1);
    job_init(&j[0], 1);
    assert_int_equal(jrpc__pool_submit(p, &a, &j[0]), 0);
    uv_sem_wait(&at_gate); /* the worker holds j[0]: the queue is empty again */
    job_init(&j[1], 2);
    job_init(&j[2], 3);
    job_init(&j[3], 4);
    job_init(&j[4], 5);
    assert_int_equal(jrpc__pool_submit(p, &a, &j[1]), 0);
    assert_int_equal(jrpc__pool_submit(p, &b, &j[2]), 0);
    assert_int_equal(jrpc__pool_submit(p, NULL, &j[3]), 0);
    assert_int_equal(jrpc__pool_submit(p, &b, &j[4]), JRPC_ERANGE);
    uv_sem_post(&gate);
    for (int i = 0; i < 4; i++)
        uv_sem_wait(&done_);
    /* A has one running (never completed here): B and the shared queue, with none, go first. */
    const int want[4] = {1, 3, 4, 2};
    for (int i = 0; i < 4; i++)
        assert_int_equal(order[i], want[i]);
    jrpc__pool_free(p);
}

/* Two threads; A's first call is held, its second would run next in turn order, but B (none
 * running) is served first: the thread goes to the connection with fewer calls running. A's
 * calls complete (jrpc__pool_done) only when the test says so, as the loop would. */
static void test_fewest_running_first(void **state)
{
    (void)state;
    jrpc__pool_t *p = jrpc__pool_new(1, 100);
    assert_non_null(p);
    jrpc__pool_queue_t a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    jrpc__pool_job_t ja[3], jb[2];
    atomic_store(&gated, 1);
    job_init(&ja[0], 10);
    assert_int_equal(jrpc__pool_submit(p, &a, &ja[0]), 0);
    uv_sem_wait(&at_gate); /* A runs one (running 1, not completed on the loop yet) */
    job_init(&ja[1], 11);
    job_init(&ja[2], 12);
    assert_int_equal(jrpc__pool_submit(p, &a, &ja[1]), 0);
    assert_int_equal(jrpc__pool_submit(p, &a, &ja[2]), 0);
    job_init(&jb[0], 20);
    job_init(&jb[1], 21);
    assert_int_equal(jrpc__pool_submit(p, &b, &jb[0]), 0);
    assert_int_equal(jrpc__pool_submit(p, &b, &jb[1]), 0);
    uv_sem_post(&gate);
    for (int i = 0; i < 5; i++)
        uv_sem_wait(&done_);
    /* A's 11 was first in turn, but A had 1 running and B none: B's 20 first; then A (1) and B
     * (1) tie and take turns. */
    const int want[5] = {10, 20, 11, 21, 12};
    for (int i = 0; i < 5; i++)
        assert_int_equal(order[i], want[i]);
    for (int i = 0; i < 3; i++)
        jrpc__pool_done(p, &a);
    for (int i = 0; i < 2; i++)
        jrpc__pool_done(p, &b);
    assert_int_equal(a.running, 0);
    assert_int_equal(b.running, 0);
    jrpc__pool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_robin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bound_spans_queues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fewest_running_first, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
