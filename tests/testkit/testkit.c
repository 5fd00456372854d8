/* SPDX-License-Identifier: MIT */
/* testkit.c — a jrpcd module of methods that integration tests and benchmarks drive: ones that
 * block a worker, reply later from a timer, echo, fail on demand, send big results or refuse
 * batches. Each one exercises one path of the library, so a test can aim at exactly that path.
 *
 *   test.sleep [ms]          JRPC_WORKER: blocks a worker thread, replies ms
 *   test.sleep_async [ms]    JRPC_ASYNC: replies ms from a uv timer on the call's loop
 *   test.echo                params byte-exact (null when none)
 *   test.worker_echo         the same through the worker pool
 *   test.fail [code, message(, data)]   that error
 *   test.blob [n]            a string of n 'x', sent zero-copy
 *   test.nobatch             "ok", refused inside batches (-32004)
 *   test.sleep_peak          the most test.sleep and test.sleep_async calls asleep at once since
 *                            the last test.sleep_peak, which starts the count again: how tests
 *                            see concurrency and its bounds without timing anything
 *   test.hold                JRPC_WORKER: blocks a worker until the next release, replies true
 *   test.hold_async          JRPC_ASYNC: the same from the call's loop
 *   test.held                holds waiting now
 *   test.release             ends every hold waiting now; replies how many were held
 *                            SIGUSR2 to jrpcd releases too: the way in once it is stopping and
 *                            takes no connections. Holds end only when a test says so, so
 *                            "answered before the handler returned" is an observation, not a
 *                            race against a timer. A hold never released is given up on
 *                            when the drain time of a stop is over (answered -32000), as any
 *                            handler that never replies is.
 *
 * Over WebSocket (server push):
 *   test.subscribe [ms(, delay)]  a subscription pushing 1, 2, 3 … every ms from a timer on the
 *                            loop; pushes "test_subscription" notifications. With delay (ms),
 *                            the subscription starts that long after the call, from a timer
 *                            (so it can start after the call timed out)
 *   test.unsubscribe [id]    jrpc_sub_unsubscribe: true, or -32000 for an unknown id
 *   test.subscribed          test.subscribe subscriptions started so far
 *   test.subscriptions       test.subscribe timers still running (0 once every subscription's
 *                            end_cb ran: the server-side cleanup check)
 *   test.subscribe_burst [n(, ms)]  JRPC_WORKER: after sleeping ms, a subscription that pushes
 *                            0 … n-1 from the worker at once, before its id can have reached the
 *                            client
 *   test.push [n]            JRPC_WORKER: n "test_push" notifications [0] … [n-1] from the worker
 *                            thread, then replies n
 */
#include "jrpc.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

/* Longest sleep: past the default 30 s deadline, so deadline tests can outlast it, yet short
 * enough that a typo cannot hold a worker for hours and hang a test run. */
#define TESTKIT_SLEEP_MAX_MS 600000
/* Largest blob: well past the default 25 MB max_response, so tests can hit -32003, while a
 * mistyped n cannot make the server allocate gigabytes. */
#define TESTKIT_BLOB_MAX (64u << 20)

/* The single integer of params [n] within [0, max]; 0 or -1. */
static int testkit_arg(const jrpc_call_t *call, int64_t max, int64_t *out)
{
    jrpc_json_t params = jrpc_call_params(call), v;
    if (jrpc_json_type(params) != JRPC_JSON_ARRAY || jrpc_json_count(params) != 1 ||
        jrpc_json_at(params, 0, &v) != 0 || jrpc_json_int64(v, out) != 0)
        return -1;
    return *out >= 0 && *out <= max ? 0 : -1;
}

/* Params [a] or [a, b] with a in [min_a, max_a] and b in [0, max_b] (b stays as given when
 * absent); 0 or -1. */
static int testkit_args2(const jrpc_call_t *call, int64_t min_a, int64_t max_a, int64_t max_b,
                         int64_t *a, int64_t *b)
{
    jrpc_json_t params = jrpc_call_params(call), v;
    size_t count = jrpc_json_count(params);
    if (jrpc_json_type(params) != JRPC_JSON_ARRAY || count < 1 || count > 2 ||
        jrpc_json_at(params, 0, &v) != 0 || jrpc_json_int64(v, a) != 0 || *a < min_a || *a > max_a)
        return -1;
    if (count == 2 &&
        (jrpc_json_at(params, 1, &v) != 0 || jrpc_json_int64(v, b) != 0 || *b < 0 || *b > max_b))
        return -1;
    return 0;
}

/* test.sleep and test.sleep_async calls asleep now, and the most at once since test.sleep_peak
 * last read it. */
static atomic_int testkit_asleep;
static atomic_int testkit_asleep_peak;

static void testkit_asleep_enter(void)
{
    int now = atomic_fetch_add(&testkit_asleep, 1) + 1;
    int peak = atomic_load(&testkit_asleep_peak);
    while (now > peak && !atomic_compare_exchange_weak(&testkit_asleep_peak, &peak, now))
        ;
}

/* Before the reply, so a client that has every answer sees nothing asleep. */
static void testkit_asleep_leave(void)
{
    atomic_fetch_sub(&testkit_asleep, 1);
}

static void testkit_sleep_peak(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_reply_int64(call, atomic_exchange(&testkit_asleep_peak, atomic_load(&testkit_asleep)));
}

static void testkit_sleep(jrpc_call_t *call, void *data)
{
    (void)data;
    int64_t ms;
    if (testkit_arg(call, TESTKIT_SLEEP_MAX_MS, &ms) != 0) {
        jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS, "expected params [ms], 0 <= ms <= 600000",
                         NULL);
        return;
    }
    struct timespec left = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    testkit_asleep_enter();
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
    testkit_asleep_leave();
    jrpc_reply_int64(call, ms);
}

/* test.slow_blob [ms, n]: sleeps ms on a worker, then answers a string of n bytes: a slow item
 * with a large result, for streamed batch answers (bench/stream.mjs). */
static void testkit_slow_blob(jrpc_call_t *call, void *data)
{
    (void)data;
    int64_t ms, n = 0;
    if (testkit_args2(call, 0, TESTKIT_SLEEP_MAX_MS, TESTKIT_BLOB_MAX, &ms, &n) != 0) {
        jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS,
                         "expected params [ms, n], 0 <= ms <= 600000, 0 <= n <= 67108864", NULL);
        return;
    }
    struct timespec left = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
    jrpc_buf_t out;
    jrpc_buf_init(&out);
    if (jrpc_buf_reserve(&out, (size_t)n + 2) != 0) {
        jrpc_buf_free(&out);
        jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, "out of memory", NULL);
        return;
    }
    out.ptr[out.len++] = '"';
    memset(out.ptr + out.len, 'x', (size_t)n);
    out.len += (size_t)n;
    out.ptr[out.len++] = '"';
    jrpc_reply_buf(call, &out);
}

/* A timer of a pending async call (test.sleep_async, test.hold_async), on a list of them all:
 * one whose call a stop gave up on (never replied) stays reachable from there until the process
 * exits, as a module that keeps track of its work would have it. */
typedef struct testkit_pending {
    uv_timer_t timer; /* first, so the handle pointer is the struct's */
    struct testkit_pending *prev, *next;
} testkit_pending_t;

static uv_mutex_t testkit_pending_lock = PTHREAD_MUTEX_INITIALIZER; /* uv_mutex_t is POSIX's */
static testkit_pending_t *testkit_pending_head;

static void testkit_pending_add(testkit_pending_t *p)
{
    uv_mutex_lock(&testkit_pending_lock);
    p->prev = NULL;
    p->next = testkit_pending_head;
    if (p->next != NULL)
        p->next->prev = p;
    testkit_pending_head = p;
    uv_mutex_unlock(&testkit_pending_lock);
}

static void testkit_timer_closed(uv_handle_t *h)
{
    testkit_pending_t *p = (testkit_pending_t *)h;
    uv_mutex_lock(&testkit_pending_lock);
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        testkit_pending_head = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    uv_mutex_unlock(&testkit_pending_lock);
    free(h);
}

/* A pending test.sleep_async: the timer and the call it answers. */
typedef struct testkit_timer {
    testkit_pending_t p; /* first: the handle pointer is the struct's */
    jrpc_call_t *call;
    int64_t ms;
} testkit_timer_t;

static void testkit_timer_fired(uv_timer_t *timer)
{
    testkit_timer_t *t = (testkit_timer_t *)timer;
    testkit_asleep_leave();
    jrpc_reply_int64(t->call, t->ms);
    uv_close((uv_handle_t *)&t->p.timer, testkit_timer_closed);
}

static void testkit_sleep_async(jrpc_call_t *call, void *data)
{
    (void)data;
    int64_t ms;
    if (testkit_arg(call, TESTKIT_SLEEP_MAX_MS, &ms) != 0) {
        jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS, "expected params [ms], 0 <= ms <= 600000",
                         NULL);
        return;
    }
    testkit_timer_t *t = malloc(sizeof(*t));
    if (t == NULL) {
        jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, "out of memory", NULL);
        return;
    }
    t->call = call;
    t->ms = ms;
    /* An ASYNC handler runs on the thread of the loop it is given, so the timer may be started
     * here; it fires on that same thread. */
    int rc = uv_timer_init((uv_loop_t *)jrpc_call_loop(call), &t->p.timer);
    if (rc != 0) {
        free(t); /* never registered with the loop: plain free is enough */
        jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, uv_strerror(rc), NULL);
        return;
    }
    testkit_pending_add(&t->p);
    testkit_asleep_enter();
    rc = uv_timer_start(&t->p.timer, testkit_timer_fired, (uint64_t)ms, 0);
    if (rc != 0) {
        testkit_asleep_leave();
        jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, uv_strerror(rc), NULL);
        uv_close((uv_handle_t *)&t->p.timer, testkit_timer_closed);
    }
}

/* ---- Holds ----------------------------------------------------------------------------------- */

/* How often a hold looks for its release: short next to any wait of a test, long enough that a
 * few holds cost nothing. */
#define TESTKIT_HOLD_POLL_MS 5

/* Bumped by every release; a hold ends once it differs from what it read when it began. Lock-free,
 * so the SIGUSR2 handler may bump it. */
static atomic_uint testkit_release_gen;
static atomic_int testkit_held; /* holds waiting now */

static void testkit_on_sigusr2(int sig)
{
    (void)sig;
    atomic_fetch_add(&testkit_release_gen, 1);
}

static void testkit_hold(jrpc_call_t *call, void *data)
{
    (void)data;
    /* The generation first: a release the test sends once it saw this hold counted ends it. */
    unsigned gen = atomic_load(&testkit_release_gen);
    atomic_fetch_add(&testkit_held, 1);
    struct timespec tick = {.tv_sec = 0, .tv_nsec = TESTKIT_HOLD_POLL_MS * 1000000L};
    while (atomic_load(&testkit_release_gen) == gen)
        nanosleep(&tick, NULL);
    atomic_fetch_sub(&testkit_held, 1);
    jrpc_reply_raw(call, "true", 4);
}

/* A pending test.hold_async: a timer polling for the release, and the call it answers. */
typedef struct testkit_async_hold {
    testkit_pending_t p; /* first: the handle pointer is the struct's */
    jrpc_call_t *call;
    unsigned gen; /* testkit_release_gen when the hold began */
} testkit_async_hold_t;

static void testkit_hold_poll(uv_timer_t *timer)
{
    testkit_async_hold_t *h = (testkit_async_hold_t *)timer;
    if (atomic_load(&testkit_release_gen) == h->gen)
        return;
    uv_timer_stop(&h->p.timer);
    atomic_fetch_sub(&testkit_held, 1);
    jrpc_reply_raw(h->call, "true", 4);
    uv_close((uv_handle_t *)&h->p.timer, testkit_timer_closed);
}

static void testkit_hold_async(jrpc_call_t *call, void *data)
{
    (void)data;
    testkit_async_hold_t *h = malloc(sizeof(*h));
    if (h == NULL) {
        jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, "out of memory", NULL);
        return;
    }
    h->call = call;
    int rc = uv_timer_init((uv_loop_t *)jrpc_call_loop(call), &h->p.timer);
    if (rc != 0) {
        free(h); /* never registered with the loop: plain free is enough */
        jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, uv_strerror(rc), NULL);
        return;
    }
    testkit_pending_add(&h->p);
    h->gen = atomic_load(&testkit_release_gen);
    atomic_fetch_add(&testkit_held, 1);
    rc = uv_timer_start(&h->p.timer, testkit_hold_poll, TESTKIT_HOLD_POLL_MS, TESTKIT_HOLD_POLL_MS);
    if (rc != 0) {
        atomic_fetch_sub(&testkit_held, 1);
        jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, uv_strerror(rc), NULL);
        uv_close((uv_handle_t *)&h->p.timer, testkit_timer_closed);
    }
}

static void testkit_held_now(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_reply_int64(call, atomic_load(&testkit_held));
}

static void testkit_release(jrpc_call_t *call, void *data)
{
    (void)data;
    int held = atomic_load(&testkit_held);
    atomic_fetch_add(&testkit_release_gen, 1);
    jrpc_reply_int64(call, held);
}

static void testkit_echo(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_json_t params = jrpc_call_params(call);
    if (params.ptr == NULL)
        jrpc_reply_raw(call, "null", 4);
    else
        jrpc_reply_raw(call, params.ptr, params.len);
}

static void testkit_fail(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_json_t params = jrpc_call_params(call), code_json, msg_json, data_json = {0};
    size_t n = jrpc_json_count(params);
    int64_t code;
    if (jrpc_json_type(params) != JRPC_JSON_ARRAY || n < 2 || n > 3 ||
        jrpc_json_at(params, 0, &code_json) != 0 || jrpc_json_int64(code_json, &code) != 0 ||
        code < INT_MIN || code > INT_MAX || jrpc_json_at(params, 1, &msg_json) != 0 ||
        jrpc_json_type(msg_json) != JRPC_JSON_STRING ||
        (n == 3 && jrpc_json_at(params, 2, &data_json) != 0)) {
        jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS,
                         "expected params [code, message] or [code, message, data]", NULL);
        return;
    }

    /* jrpc_reply_error takes NUL-terminated text; the views are not. Unescaping never
     * lengthens a string, so the raw length is room enough for the message and its NUL. */
    size_t len;
    char *msg = malloc(msg_json.len);
    char *extra = data_json.ptr ? malloc(data_json.len + 1) : NULL;
    if (msg == NULL || (data_json.ptr != NULL && extra == NULL) ||
        jrpc_json_string(msg_json, msg, msg_json.len, &len) != 0)
        goto fail;
    if (extra != NULL) {
        memcpy(extra, data_json.ptr, data_json.len);
        extra[data_json.len] = '\0';
    }
    jrpc_reply_error(call, (int)code, msg, extra);
    free(msg);
    free(extra);
    return;

fail:
    free(msg);
    free(extra);
    jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, "out of memory", NULL);
}

static void testkit_blob(jrpc_call_t *call, void *data)
{
    (void)data;
    int64_t n;
    if (testkit_arg(call, TESTKIT_BLOB_MAX, &n) != 0) {
        jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS,
                         "expected params [n], 0 <= n <= 67108864 (64 MiB)", NULL);
        return;
    }
    jrpc_buf_t out;
    jrpc_buf_init(&out);
    if (jrpc_buf_reserve(&out, (size_t)n + 2) != 0) {
        jrpc_buf_free(&out);
        jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, "out of memory", NULL);
        return;
    }
    out.ptr[out.len++] = '"';
    memset(out.ptr + out.len, 'x', (size_t)n);
    out.len += (size_t)n;
    out.ptr[out.len++] = '"';
    jrpc_reply_buf(call, &out); /* the library takes the bytes: no copy of up to 64 MiB */
}

static void testkit_nobatch(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_reply_raw(call, "\"ok\"", 4);
}

/* ---- Server push ----------------------------------------------------------------------------- */

/* Longest push period: a minute between pushes is already longer than any test waits. */
#define TESTKIT_SUB_MAX_MS 60000
/* Most pushes or notifications one call sends at once: enough to fill a client's socket buffer,
 * small enough that a typo cannot queue gigabytes. */
#define TESTKIT_PUSH_MAX 100000

/* test.subscribe timers running (their end_cb has not closed them yet), and subscriptions
 * started. */
static atomic_int testkit_live_subs;
static atomic_int testkit_started_subs;

/* A test.subscribe subscription: a repeating timer on the call's loop and the next value. */
typedef struct testkit_sub {
    uv_timer_t timer;   /* first, so the handle pointer is the struct's */
    jrpc_sub_t *sub;    /* our reference, dropped when the timer is closed */
    jrpc_call_t *call;  /* the subscribe call, while its subscription is delayed */
    uint64_t period_ms; /* between pushes */
    int64_t next;
} testkit_sub_t;

static void testkit_sub_closed(uv_handle_t *h)
{
    testkit_sub_t *ts = (testkit_sub_t *)h;
    if (ts->sub != NULL) {
        jrpc_sub_unref(ts->sub);
        atomic_fetch_sub(&testkit_live_subs, 1);
    }
    free(ts);
}

static void testkit_sub_tick(uv_timer_t *timer)
{
    testkit_sub_t *ts = (testkit_sub_t *)timer;
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", (long long)++ts->next);
    /* JRPC_ECLOSED: the subscription ended; its end_cb stops this timer right after. */
    jrpc_sub_push(ts->sub, num, (size_t)n);
}

/* Unsubscribed or the connection closed: on the subscription's loop, the timer's loop. */
static void testkit_sub_end(jrpc_sub_t *sub, void *data)
{
    testkit_sub_t *ts = data;
    (void)sub;
    uv_timer_stop(&ts->timer);
    uv_close((uv_handle_t *)&ts->timer, testkit_sub_closed);
}

/* Starts ts's subscription on its call (now, or from the delay timer). */
static void testkit_sub_begin(uv_timer_t *timer)
{
    testkit_sub_t *ts = (testkit_sub_t *)timer;
    jrpc_call_t *call = ts->call;
    ts->call = NULL;
    /* Answers the call with the id (or an error, over HTTP). end_cb never runs inside this call,
     * so ts is complete before it can. */
    ts->sub = jrpc_sub_start(call, "test_subscription", testkit_sub_end, ts);
    if (ts->sub == NULL) {
        uv_close((uv_handle_t *)&ts->timer, testkit_sub_closed);
        return;
    }
    atomic_fetch_add(&testkit_live_subs, 1);
    atomic_fetch_add(&testkit_started_subs, 1);
    uv_timer_start(&ts->timer, testkit_sub_tick, ts->period_ms, ts->period_ms);
}

static void testkit_subscribe(jrpc_call_t *call, void *data)
{
    (void)data;
    int64_t ms = 0, delay = 0;
    if (testkit_args2(call, 1, TESTKIT_SUB_MAX_MS, TESTKIT_SUB_MAX_MS, &ms, &delay) != 0) {
        jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS,
                         "expected params [ms] or [ms, delay], 1 <= ms <= 60000, "
                         "0 <= delay <= 60000",
                         NULL);
        return;
    }
    testkit_sub_t *ts = calloc(1, sizeof(*ts));
    if (ts == NULL || uv_timer_init((uv_loop_t *)jrpc_call_loop(call), &ts->timer) != 0) {
        free(ts);
        jrpc_reply_error(call, JRPC_CODE_INTERNAL_ERROR, "out of memory", NULL);
        return;
    }
    ts->call = call;
    ts->period_ms = (uint64_t)ms;
    if (delay > 0)
        uv_timer_start(&ts->timer, testkit_sub_begin, (uint64_t)delay, 0);
    else
        testkit_sub_begin(&ts->timer);
}

static void testkit_subscribed(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_reply_int64(call, atomic_load(&testkit_started_subs));
}

static void testkit_subscriptions(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_reply_int64(call, atomic_load(&testkit_live_subs));
}

static void testkit_subscribe_burst(jrpc_call_t *call, void *data)
{
    (void)data;
    /* [n] or [n, ms]: ms of sleep first, so the subscription may start after the call timed out
     * or its connection closed. */
    int64_t n = -1, ms = 0;
    if (testkit_args2(call, 0, TESTKIT_PUSH_MAX, TESTKIT_SLEEP_MAX_MS, &n, &ms) != 0) {
        jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS,
                         "expected params [n] or [n, ms], 0 <= n <= 100000", NULL);
        return;
    }
    struct timespec left = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    while (ms > 0 && nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
    /* No end_cb: nothing to stop. The connection keeps the subscription until an unsubscribe or
     * the close; we only push and let go of our reference. */
    jrpc_sub_t *sub = jrpc_sub_start(call, "test_subscription", NULL, NULL);
    if (sub == NULL)
        return;
    for (int64_t i = 0; i < n; i++) {
        char num[24];
        int len = snprintf(num, sizeof num, "%lld", (long long)i);
        if (jrpc_sub_push(sub, num, (size_t)len) != 0)
            break;
    }
    jrpc_sub_unref(sub);
}

static void testkit_push(jrpc_call_t *call, void *data)
{
    (void)data;
    int64_t n;
    jrpc_conn_t *conn = jrpc_call_conn(call);
    if (conn == NULL) {
        jrpc_reply_error(call, JRPC_CODE_METHOD_NOT_FOUND, "notifications not supported", NULL);
        return;
    }
    if (testkit_arg(call, TESTKIT_PUSH_MAX, &n) != 0) {
        jrpc_reply_error(call, JRPC_CODE_INVALID_PARAMS, "expected params [n], 0 <= n <= 100000",
                         NULL);
        return;
    }
    int64_t sent = 0;
    for (; sent < n; sent++) {
        char params[32];
        int len = snprintf(params, sizeof params, "[%lld]", (long long)sent);
        if (jrpc_conn_notify(conn, "test_push", params, (size_t)len) != 0)
            break;
    }
    jrpc_reply_int64(call, sent);
}

JRPC_EXTERN int jrpc_module_init(jrpc_server_t *srv, const char *args);

JRPC_EXTERN int jrpc_module_init(jrpc_server_t *srv, const char *args)
{
    static const struct {
        const char *name;
        jrpc_method_cb cb;
        unsigned flags;
    } methods[] = {
        {"test.sleep", testkit_sleep, JRPC_WORKER},
        {"test.sleep_async", testkit_sleep_async, JRPC_ASYNC},
        {"test.slow_blob", testkit_slow_blob, JRPC_WORKER},
        {"test.echo", testkit_echo, JRPC_INLINE},
        {"test.worker_echo", testkit_echo, JRPC_WORKER},
        {"test.fail", testkit_fail, JRPC_INLINE},
        /* Inline even at 64 MiB: it measures the response path, not the worker hop, and the
         * largest blob is one memset of a few milliseconds. */
        {"test.blob", testkit_blob, JRPC_INLINE},
        {"test.nobatch", testkit_nobatch, JRPC_INLINE | JRPC_NO_BATCH},
        {"test.sleep_peak", testkit_sleep_peak, JRPC_INLINE},
        {"test.hold", testkit_hold, JRPC_WORKER},
        {"test.hold_async", testkit_hold_async, JRPC_ASYNC},
        {"test.held", testkit_held_now, JRPC_INLINE},
        {"test.release", testkit_release, JRPC_INLINE},
        {"test.subscribe", testkit_subscribe, JRPC_ASYNC},
        {"test.unsubscribe", jrpc_sub_unsubscribe, JRPC_INLINE},
        {"test.subscriptions", testkit_subscriptions, JRPC_INLINE},
        {"test.subscribed", testkit_subscribed, JRPC_INLINE},
        {"test.subscribe_burst", testkit_subscribe_burst, JRPC_WORKER},
        {"test.push", testkit_push, JRPC_WORKER},
    };
    (void)args;
    /* SA_RESTART: the signal lands on any of jrpcd's threads, which should not see EINTR for it. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = testkit_on_sigusr2;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR2, &sa, NULL) != 0)
        return -errno;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        int rc = jrpc_method_add(srv, methods[i].name, methods[i].cb, NULL, methods[i].flags);
        if (rc != 0)
            return rc;
    }
    return 0;
}
