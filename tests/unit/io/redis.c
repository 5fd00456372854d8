/* SPDX-License-Identifier: MIT */
/* Unit tests of the Redis budget store (src/io/redis.c) against a real redis-server on a free
 * loopback port: two stores on two libuv loops stand for two jrpcd instances sharing one bucket.
 * They check the exact total admitted across both, per-item greedy admission and costs, one
 * round trip per reservation (INFO commandstats), the `fail` answers when Redis is stopped
 * (SIGSTOP) or killed, and recovery when it is back. Exits 77 (skipped) without redis-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/redis.h"

/* Bound on every wait for a condition: far past what any step takes on a loaded machine. */
#define WAIT_MS 20000
/* The store's timeout: where Redis answers, far past any answer on a loaded machine, so that
 * no reservation gets the fail answer by accident; where Redis is stopped or killed, short. */
#define TIMEOUT_MS 10000
#define FAULT_TIMEOUT_MS 200

static pid_t redis_pid;
static unsigned redis_port;

static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000;
}

static int have_redis_server(void)
{
    const char *path = getenv("PATH");
    char buf[4096];
    if (path == NULL)
        return 0;
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/redis-server", (int)n, path);
        if (access(buf, X_OK) == 0)
            return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* A synchronous client for the test's own look at Redis (NULL while it does not answer). */
static redisContext *sync_client(void)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", (int)redis_port, tv);
    if (c == NULL || c->err) {
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

static int redis_ping(void)
{
    redisContext *c = sync_client();
    if (c == NULL)
        return 0;
    redisReply *r = redisCommand(c, "PING");
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return ok;
}

/* Starts redis-server on redis_port (a new free one when 0) and waits until it answers. */
static void redis_start(void)
{
    if (redis_port == 0)
        redis_port = free_port();
    char port[16];
    snprintf(port, sizeof port, "%u", redis_port);
    redis_pid = fork();
    assert_true(redis_pid >= 0);
    if (redis_pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) { /* its start-up lines are not the test's output */
            dup2(null, 1);
            dup2(null, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    uint64_t until = mono_ms() + WAIT_MS;
    while (!redis_ping()) {
        int st;
        assert_int_equal(waitpid(redis_pid, &st, WNOHANG), 0); /* still running */
        assert_true(mono_ms() < until);
        poll(NULL, 0, 10); /* a bounded retry of the connect, not a synchronisation */
    }
}

/* Stops redis-server (SIGSTOP) and waits until it is stopped: kill returns before a process
 * running on another core has stopped, and it could answer one more command meanwhile. */
static void redis_stop(void)
{
    int st;
    assert_int_equal(kill(redis_pid, SIGSTOP), 0);
    assert_int_equal(waitpid(redis_pid, &st, WUNTRACED), redis_pid);
    assert_true(WIFSTOPPED(st));
}

static void redis_kill(void)
{
    if (redis_pid <= 0)
        return;
    kill(redis_pid, SIGKILL); /* also when stopped, without running it again first */
    waitpid(redis_pid, NULL, 0);
    redis_pid = 0;
}

/* Calls of one command in INFO commandstats. */
static uint64_t cmd_calls(const char *cmd)
{
    redisContext *c = sync_client();
    assert_non_null(c);
    redisReply *r = redisCommand(c, "INFO commandstats");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char key[64];
    snprintf(key, sizeof key, "cmdstat_%s:calls=", cmd);
    const char *p = strstr(r->str, key);
    uint64_t n = p != NULL ? strtoull(p + strlen(key), NULL, 10) : 0;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* ---- Instances: a store on a loop -------------------------------------------------------------
 */

typedef struct {
    jrpc_config_t cfg;
    jrpc__loop_t loop;
    jrpc__budget_t *b;
} inst_t;

static void inst_open_t(inst_t *in, int fail_closed, uint64_t timeout_ms)
{
    memset(in, 0, sizeof *in);
    jrpc_config_init(&in->cfg);
    in->cfg.log_cb = NULL;
    in->loop.cfg = &in->cfg;
    assert_int_equal(uv_loop_init(&in->loop.uv), 0);
    char url[64], err[256];
    snprintf(url, sizeof url, "redis://127.0.0.1:%u", redis_port);
    jrpc__redis_opts_t o = {url, NULL, -1, timeout_ms, fail_closed};
    assert_int_equal(jrpc__budget_redis_new(&o, &in->b, err, sizeof err), 0);
    assert_int_equal(in->b->ops->loop_start(in->b, &in->loop), 0);
}

static void inst_open(inst_t *in, int fail_closed)
{
    inst_open_t(in, fail_closed, TIMEOUT_MS);
}

static void inst_close(inst_t *in)
{
    in->b->ops->loop_close(in->b, &in->loop);
    assert_int_equal(uv_run(&in->loop.uv, UV_RUN_DEFAULT), 0); /* the handles close */
    assert_int_equal(uv_loop_close(&in->loop.uv), 0);
    in->b->ops->free(in->b);
}

static jrpc__redis_stats_t inst_stats(inst_t *in)
{
    jrpc__redis_stats_t s;
    jrpc__budget_redis_stats(in->b, &s);
    return s;
}

/* Runs the instances' loops (waiting on their backend fds together) until cond(arg) holds;
 * fails past WAIT_MS. */
static void run_until(inst_t **ins, size_t n, int (*cond)(void *), void *arg)
{
    uint64_t until = mono_ms() + WAIT_MS;
    for (;;) {
        for (size_t i = 0; i < n; i++)
            uv_run(&ins[i]->loop.uv, UV_RUN_NOWAIT);
        if (cond(arg))
            return;
        assert_true(mono_ms() < until);
        struct pollfd p[4];
        int wait = 100;
        for (size_t i = 0; i < n; i++) {
            p[i].fd = uv_backend_fd(&ins[i]->loop.uv);
            p[i].events = POLLIN;
            int t = uv_backend_timeout(&ins[i]->loop.uv);
            if (t >= 0 && t < wait)
                wait = t;
        }
        poll(p, (nfds_t)n, wait);
    }
}

/* One reservation and its answer. */
#define ITEMS_MAX 1000
typedef struct {
    uint32_t costs[ITEMS_MAX];
    uint8_t ok[ITEMS_MAX];
    size_t n;
    int done;   /* done ran */
    int inside; /* it ran before reserve returned */
    jrpc__budget_result_t res;
} resv_t;

static void resv_done(void *arg, const jrpc__budget_result_t *res)
{
    resv_t *r = arg;
    assert_int_equal(r->done, 0); /* exactly once */
    r->done = 1;
    r->res = *res;
}

static void reserve(inst_t *in, resv_t *r, const char *bucket, uint64_t rate, uint64_t burst)
{
    jrpc__bucket_t bk = {bucket, strlen(bucket), rate, burst};
    r->done = 0;
    in->b->ops->reserve(in->b, &in->loop, &bk, r->costs, r->ok, r->n, resv_done, r);
    r->inside = r->done;
}

static void resv_fill(resv_t *r, size_t n, uint32_t cost)
{
    memset(r, 0, sizeof *r);
    r->n = n;
    for (size_t i = 0; i < n; i++) {
        r->costs[i] = cost;
        r->ok[i] = 1;
    }
}

static size_t resv_admitted(const resv_t *r)
{
    size_t a = 0;
    for (size_t i = 0; i < r->n; i++)
        a += r->ok[i];
    return a;
}

typedef struct {
    resv_t *v;
    size_t n;
} resv_set_t;

static int all_done(void *arg)
{
    resv_set_t *s = arg;
    for (size_t i = 0; i < s->n; i++)
        if (!s->v[i].done)
            return 0;
    return 1;
}

static int up_is(inst_t *in, unsigned want)
{
    return inst_stats(in).loops_up == want;
}
static int up_is_one(void *arg)
{
    return up_is(arg, 1);
}
static int both_up(void *arg)
{
    inst_t **ins = arg;
    return up_is(ins[0], 1) && up_is(ins[1], 1);
}
static int both_down(void *arg)
{
    inst_t **ins = arg;
    return up_is(ins[0], 0) && up_is(ins[1], 0);
}

static int setup(void **state)
{
    (void)state;
    redis_port = 0;
    redis_start();
    return 0;
}
static int teardown(void **state)
{
    (void)state;
    redis_kill();
    return 0;
}

/* ---- Tests -----------------------------------------------------------------------------------
 */

/* Two instances hammer one bucket (burst 1000, 1 unit/s): exactly the burst is admitted, plus at
 * most what refilled while they ran. */
static void exact_total(void **state)
{
    (void)state;
    enum { PER = 120, ITEMS = 10, BURST = 1000 };
    inst_t a, b, *ins[2] = {&a, &b};
    inst_open(&a, 0);
    inst_open(&b, 0);
    run_until(ins, 2, both_up, ins);
    static resv_t v[2 * PER];
    uint64_t t0 = mono_ms();
    for (size_t i = 0; i < 2 * PER; i++) {
        resv_fill(&v[i], ITEMS, 1);
        reserve(i % 2 ? &b : &a, &v[i], "k:exact", 1, BURST);
    }
    resv_set_t set = {v, 2 * PER};
    run_until(ins, 2, all_done, &set);
    uint64_t elapsed = mono_ms() - t0;
    size_t admitted = 0;
    for (size_t i = 0; i < 2 * PER; i++) {
        assert_int_equal(v[i].res.status, JRPC__BUDGET_OK);
        admitted += resv_admitted(&v[i]);
    }
    /* 1 unit/s: at most elapsed/1000 more (and one for a second begun). */
    printf("admitted %zu of %d in %llu ms\n", admitted, 2 * PER * ITEMS,
           (unsigned long long)elapsed);
    assert_true(admitted >= BURST);
    assert_true(admitted <= BURST + elapsed / 1000 + 1);
    inst_close(&a);
    inst_close(&b);
}

/* 7 units left and 10 items: the first 7 run, in order; a refused item costs nothing, so a
 * cheaper one after it still fits; skipped items cost nothing and stay refused. */
static void greedy_and_costs(void **state)
{
    (void)state;
    inst_t a, b, *ins[2] = {&a, &b};
    inst_open(&a, 0);
    inst_open(&b, 0);
    run_until(ins, 2, both_up, ins);
    static resv_t r;
    resv_fill(&r, 10, 1);
    reserve(&a, &r, "k:seven", 1, 7);
    resv_set_t one = {&r, 1};
    run_until(ins, 2, all_done, &one);
    assert_int_equal(r.res.status, JRPC__BUDGET_OK);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(r.ok[i], i < 7);
    assert_int_equal(r.res.retry_after_ms, 1000); /* 1 unit at 1 unit/s */

    /* Costs: 100 units; 75 admitted, 30 refused, 25 admitted, a skipped 1 costs nothing. */
    resv_fill(&r, 4, 0);
    r.costs[0] = 75, r.costs[1] = 30, r.costs[2] = 1, r.costs[3] = 25;
    r.ok[2] = 0;
    reserve(&a, &r, "k:cost", 1, 100);
    run_until(ins, 2, all_done, &one);
    assert_int_equal(r.res.status, JRPC__BUDGET_OK);
    assert_int_equal(r.ok[0], 1);
    assert_int_equal(r.ok[1], 0);
    assert_int_equal(r.ok[2], 0);
    assert_int_equal(r.ok[3], 1);
    assert_int_equal(r.res.retry_after_ms, 5000); /* 30 units from the 25 left, at 1 unit/s */
    /* The other instance sees the same bucket: empty (or a unit refilled at most). */
    resv_fill(&r, 2, 1);
    reserve(&b, &r, "k:cost", 1, 100);
    run_until(ins, 2, all_done, &one);
    assert_int_equal(r.res.status, JRPC__BUDGET_OK);
    assert_int_equal(r.ok[1], 0);
    /* A 75-unit method spends 75: 100 burst, 75 then 75 → one admitted. */
    resv_fill(&r, 2, 75);
    reserve(&b, &r, "k:cost75", 1000, 100);
    run_until(ins, 2, all_done, &one);
    assert_int_equal(r.ok[0], 1);
    assert_int_equal(r.ok[1], 0);
    assert_int_equal(r.res.retry_after_ms, 50); /* 50 more units at 1000/s */
    inst_close(&a);
    inst_close(&b);
}

/* Random batches (costs 0-5 in runs, skipped items, bursts 1-40) against new buckets, whose
 * start is known (full, no refill yet): the admitted items and retry_after_ms are exactly what
 * the item-by-item rule of budget.h gives, which the run-length encoding must keep. */
static void matches_item_rule(void **state)
{
    (void)state;
    enum { CASES = 300 };
    inst_t a, *ins[1] = {&a};
    inst_open(&a, 0);
    inst_t *pair[2] = {&a, &a};
    run_until(pair, 1, both_up, pair);
    static resv_t v[CASES];
    static uint8_t want[CASES][64];
    static uint64_t want_retry[CASES];
    srand(1313);
    for (size_t c = 0; c < CASES; c++) {
        size_t n = 1 + (size_t)rand() % 64;
        uint64_t burst = 1 + (uint64_t)rand() % 40, rate = 1 + (uint64_t)rand() % 3;
        resv_fill(&v[c], n, 1);
        for (size_t i = 0; i < n; i++) {
            if (i > 0 && rand() % 3 != 0) { /* runs of equal items */
                v[c].costs[i] = v[c].costs[i - 1];
                v[c].ok[i] = v[c].ok[i - 1];
            } else {
                v[c].costs[i] = (uint32_t)(rand() % 6);
                v[c].ok[i] = rand() % 5 != 0;
            }
        }
        uint64_t tokens = burst * 1000000, cap = tokens;
        want_retry[c] = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t need = (uint64_t)v[c].costs[i] * 1000000;
            want[c][i] = v[c].ok[i] && need <= tokens;
            if (want[c][i])
                tokens -= need;
            else if (v[c].ok[i] && want_retry[c] == 0) {
                uint64_t us = ((need <= cap ? need : cap) - tokens + rate - 1) / rate;
                want_retry[c] = (us + 999) / 1000;
                if (want_retry[c] == 0)
                    want_retry[c] = 1;
            }
        }
        char name[32];
        snprintf(name, sizeof name, "k:rule%zu", c);
        reserve(&a, &v[c], name, rate, burst);
    }
    resv_set_t set = {v, CASES};
    run_until(ins, 1, all_done, &set);
    for (size_t c = 0; c < CASES; c++) {
        assert_int_equal(v[c].res.status, JRPC__BUDGET_OK);
        assert_memory_equal(v[c].ok, want[c], v[c].n);
        assert_int_equal(v[c].res.retry_after_ms, want_retry[c]);
    }
    inst_close(&a);
}

/* One EVALSHA per reservation, however many items, and no other command. */
static void one_round_trip(void **state)
{
    (void)state;
    enum { K = 20 };
    inst_t a, b, *ins[2] = {&a, &b};
    inst_open(&a, 0);
    inst_open(&b, 0);
    run_until(ins, 2, both_up, ins);
    static resv_t v[2 * K];
    uint64_t sha0 = cmd_calls("evalsha"), eval0 = cmd_calls("eval");
    uint64_t script0 = cmd_calls("script"), ping0 = cmd_calls("ping");
    for (size_t i = 0; i < 2 * K; i++) {
        resv_fill(&v[i], 100, 3);
        reserve(i % 2 ? &b : &a, &v[i], "k:trips", 1000000, 1000000);
    }
    resv_set_t set = {v, 2 * K};
    run_until(ins, 2, all_done, &set);
    for (size_t i = 0; i < 2 * K; i++)
        assert_int_equal(resv_admitted(&v[i]), 100);
    assert_int_equal(cmd_calls("evalsha") - sha0, 2 * K);
    assert_int_equal(cmd_calls("eval") - eval0, 0);
    assert_int_equal(cmd_calls("ping") - ping0, 0);
    assert_int_equal(cmd_calls("script") - script0, 0);
    assert_int_equal(inst_stats(&a).outcomes[JRPC__REDIS_OK], K);
    inst_close(&a);
    inst_close(&b);
}

/* The script went (SCRIPT FLUSH): the reservation is sent again as EVAL, and succeeds. */
static void noscript_fallback(void **state)
{
    (void)state;
    inst_t a, *ins[1] = {&a};
    inst_open(&a, 0);
    inst_t *pair[2] = {&a, &a};
    run_until(pair, 1, both_up, pair);
    redisContext *c = sync_client();
    redisReply *rep = redisCommand(c, "SCRIPT FLUSH");
    freeReplyObject(rep);
    redisFree(c);
    static resv_t r;
    resv_fill(&r, 3, 1);
    uint64_t eval0 = cmd_calls("eval");
    reserve(&a, &r, "k:noscript", 1, 2);
    resv_set_t one = {&r, 1};
    run_until(ins, 1, all_done, &one);
    assert_int_equal(r.res.status, JRPC__BUDGET_OK);
    assert_int_equal(resv_admitted(&r), 2);
    assert_int_equal(cmd_calls("eval") - eval0, 1);
    inst_close(&a);
}

/* Redis stopped: every reservation completes with the fail answer (open: all admitted; closed:
 * none, retry 1000); a reply that comes after its timeout is dropped; once the connection is
 * given up reservations fail at once; after SIGCONT both recover by themselves. */
static void stopped(void **state)
{
    (void)state;
    enum { N = 5 };
    inst_t a, b, *ins[2] = {&a, &b};
    inst_open_t(&a, 0, FAULT_TIMEOUT_MS); /* fail = open */
    inst_open_t(&b, 1, FAULT_TIMEOUT_MS); /* fail = closed */
    run_until(ins, 2, both_up, ins);
    static resv_t v[2 * N];

    /* A short stop: answered by the timeout, the late replies come after SIGCONT. */
    redis_stop();
    uint64_t t0 = mono_ms();
    for (size_t i = 0; i < 2 * N; i++) {
        resv_fill(&v[i], 3, 1);
        reserve(i % 2 ? &b : &a, &v[i], "k:stop", 1, 1000);
        assert_false(v[i].inside);
    }
    resv_set_t set = {v, 2 * N};
    run_until(ins, 2, all_done, &set);
    printf("stopped: %d reservations answered in %llu ms (timeout %d ms)\n", 2 * N,
           (unsigned long long)(mono_ms() - t0), FAULT_TIMEOUT_MS);
    for (size_t i = 0; i < 2 * N; i++) {
        if (i % 2) {
            assert_int_equal(v[i].res.status, JRPC__BUDGET_CLOSED);
            assert_int_equal(resv_admitted(&v[i]), 0);
            assert_int_equal(v[i].res.retry_after_ms, 1000);
        } else {
            assert_int_equal(v[i].res.status, JRPC__BUDGET_OPEN);
            assert_int_equal(resv_admitted(&v[i]), 3);
        }
    }
    assert_int_equal(inst_stats(&a).outcomes[JRPC__REDIS_TIMEOUT], N);
    assert_int_equal(inst_stats(&b).outcomes[JRPC__REDIS_TIMEOUT], N);
    assert_int_equal(kill(redis_pid, SIGCONT), 0);
    /* Served again (the late replies were dropped, or, on a slow machine, the connection was
     * given up and made again). */
    for (;;) {
        resv_fill(&v[0], 1, 1);
        reserve(&a, &v[0], "k:stop", 1, 1000);
        resv_set_t one = {v, 1};
        run_until(ins, 2, all_done, &one);
        if (v[0].res.status == JRPC__BUDGET_OK)
            break;
        run_until(ins, 2, both_up, ins);
    }

    /* A long stop: after the stall bound the connections are given up and every reservation
     * fails at once (before reserve returns), with the fail answer. */
    redis_stop();
    for (size_t i = 0; i < 2; i++) {
        resv_fill(&v[i], 2, 1);
        reserve(i % 2 ? &b : &a, &v[i], "k:stop", 1, 1000);
    }
    run_until(ins, 2, both_down, ins);
    for (size_t i = 0; i < 2 * N; i++) {
        resv_fill(&v[i], 2, 1);
        reserve(i % 2 ? &b : &a, &v[i], "k:stop", 1, 1000);
        assert_true(v[i].inside);
        assert_int_equal(v[i].res.status, i % 2 ? JRPC__BUDGET_CLOSED : JRPC__BUDGET_OPEN);
        assert_int_equal(resv_admitted(&v[i]), i % 2 ? 0 : 2);
    }
    assert_true(inst_stats(&a).outcomes[JRPC__REDIS_DOWN] >= N);
    assert_int_equal(kill(redis_pid, SIGCONT), 0);
    run_until(ins, 2, both_up, ins);
    /* Served by Redis again (a try may still time out on a loaded machine: the next one). */
    uint64_t until = mono_ms() + WAIT_MS;
    for (size_t i = 0; i < 2; i++) {
        do {
            assert_true(mono_ms() < until);
            resv_fill(&v[i], 1, 1);
            reserve(i % 2 ? &b : &a, &v[i], "k:stop", 1, 1000);
            resv_set_t one = {&v[i], 1};
            run_until(ins, 2, all_done, &one);
        } while (v[i].res.status != JRPC__BUDGET_OK);
    }
    inst_close(&a);
    inst_close(&b);
}

/* One store operation (jrpc__redis_kv) and its end. */
typedef struct {
    int done;   /* cb ran (exactly once) */
    int status; /* its status */
    char val[64];
    size_t len;
    uint64_t ttl_ms;
} kvop_t;

static void kv_done(void *data, int status, const char *val, size_t len, uint64_t ttl_ms)
{
    kvop_t *op = data;
    assert_int_equal(op->done, 0);
    op->done = 1;
    op->status = status;
    op->len = len;
    op->ttl_ms = ttl_ms;
    if (val != NULL && len <= sizeof op->val)
        memcpy(op->val, val, len);
}

static int kv_is_done(void *arg)
{
    return ((kvop_t *)arg)->done;
}

/* Starts op on in (val NULL: a GET) and runs the loop until it ended; returns the start's code. */
static int kv_run(inst_t *in, kvop_t *op, const char *key, const char *val, size_t vlen,
                  uint64_t ttl_ms)
{
    memset(op, 0, sizeof *op);
    int rc = jrpc__redis_kv(in->b, 0, key, strlen(key), val, vlen, ttl_ms, kv_done, op);
    assert_int_equal(op->done, 0); /* never inside the call */
    if (rc == 0) {
        inst_t *ins[1] = {in};
        run_until(ins, 1, kv_is_done, op);
    }
    return rc;
}

/* The shared store's GET and SET on the budget store's connection: absent, a value with its
 * remaining time (or none), binary-safe; a stopped Redis answers a GET by the timeout, not
 * counted as a reservation; a GET in flight at loop_close ends with JRPC_EIO. */
static void kv_ops(void **state)
{
    (void)state;
    inst_t a, *ins[1] = {&a};
    inst_open_t(&a, 0, FAULT_TIMEOUT_MS);
    run_until(ins, 1, up_is_one, &a);
    kvop_t op;
    assert_int_equal(kv_run(&a, &op, "t:absent", NULL, 0, 0), 0);
    assert_int_equal(op.status, JRPC_ENOENT);
    assert_int_equal(kv_run(&a, &op, "t:k", "v\0w", 3, 5000), 0);
    assert_int_equal(op.status, 0);
    assert_int_equal(kv_run(&a, &op, "t:k", NULL, 0, 0), 0);
    assert_int_equal(op.status, 0);
    assert_int_equal(op.len, 3);
    assert_memory_equal(op.val, "v\0w", 3);
    assert_true(op.ttl_ms > 0 && op.ttl_ms <= 5000);
    assert_int_equal(kv_run(&a, &op, "t:forever", "1", 1, 0), 0);
    assert_int_equal(kv_run(&a, &op, "t:forever", NULL, 0, 0), 0);
    assert_int_equal(op.status, 0);
    assert_int_equal(op.ttl_ms, 0);

    redis_stop();
    assert_int_equal(kv_run(&a, &op, "t:k", NULL, 0, 0), 0);
    assert_int_equal(op.status, JRPC_ETIMEDOUT);
    assert_int_equal(inst_stats(&a).outcomes[JRPC__REDIS_TIMEOUT], 0);
    /* In flight when the loop closes: ended by the close, once. */
    memset(&op, 0, sizeof op);
    assert_int_equal(jrpc__redis_kv(a.b, 0, "t:k", 3, NULL, 0, 0, kv_done, &op), 0);
    a.b->ops->loop_close(a.b, &a.loop);
    assert_int_equal(op.done, 1);
    assert_int_equal(op.status, JRPC_EIO);
    assert_int_equal(jrpc__redis_kv(a.b, 0, "t:k", 3, NULL, 0, 0, kv_done, &op), JRPC_ECLOSED);
    assert_int_equal(uv_run(&a.loop.uv, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&a.loop.uv), 0);
    a.b->ops->free(a.b);
    assert_int_equal(kill(redis_pid, SIGCONT), 0);

    /* Not a Redis store: refused. */
    jrpc__budget_t *local = jrpc__budget_local_new();
    assert_int_equal(jrpc__redis_kv(local, 0, "t:k", 3, NULL, 0, 0, kv_done, &op), JRPC_EINVAL);
    local->ops->free(local);
}

/* Redis killed: the loss is seen and reservations fail at once; restarted on its port: both
 * instances reconnect by themselves and are served again. */
static void killed_and_restarted(void **state)
{
    (void)state;
    enum { N = 5 };
    inst_t a, b, *ins[2] = {&a, &b};
    inst_open(&a, 0); /* a killed Redis is seen at once: no timeout involved */
    inst_open(&b, 1);
    run_until(ins, 2, both_up, ins);
    redis_kill();
    run_until(ins, 2, both_down, ins);
    static resv_t v[2 * N];
    for (size_t i = 0; i < 2 * N; i++) {
        resv_fill(&v[i], 4, 1);
        reserve(i % 2 ? &b : &a, &v[i], "k:kill", 1, 1000);
        assert_true(v[i].inside);
        assert_int_equal(v[i].res.status, i % 2 ? JRPC__BUDGET_CLOSED : JRPC__BUDGET_OPEN);
        assert_int_equal(resv_admitted(&v[i]), i % 2 ? 0 : 4);
    }
    assert_int_equal(inst_stats(&b).outcomes[JRPC__REDIS_DOWN], N);
    redis_start(); /* the same port */
    run_until(ins, 2, both_up, ins);
    for (size_t i = 0; i < 2; i++) {
        resv_fill(&v[i], 4, 1);
        reserve(i % 2 ? &b : &a, &v[i], "k:kill", 1, 5);
    }
    resv_set_t two = {v, 2};
    run_until(ins, 2, all_done, &two);
    assert_int_equal(v[0].res.status, JRPC__BUDGET_OK);
    assert_int_equal(v[1].res.status, JRPC__BUDGET_OK);
    assert_int_equal(resv_admitted(&v[0]) + resv_admitted(&v[1]), 5);
    inst_close(&a);
    inst_close(&b);
}

/* The connection goes while a reservation waits for its reply (Redis stopped, then killed): it
 * gets the fail answer as soon as the loss is seen, not after its (long) timeout. */
static void dropped_in_flight(void **state)
{
    (void)state;
    inst_t a, *ins[1] = {&a};
    inst_open(&a, 1); /* a 10 s timeout: an answer by timeout would take that long */
    inst_t *pair[2] = {&a, &a};
    run_until(pair, 1, both_up, pair);
    redis_stop();
    static resv_t r;
    resv_fill(&r, 2, 1);
    reserve(&a, &r, "k:dropped", 1, 10);
    assert_false(r.inside);
    for (int i = 0; i < 3; i++) /* the command goes out */
        uv_run(&a.loop.uv, UV_RUN_NOWAIT);
    redis_kill();
    resv_set_t one = {&r, 1};
    run_until(ins, 1, all_done, &one);
    assert_int_equal(r.res.status, JRPC__BUDGET_CLOSED);
    jrpc__redis_stats_t s = inst_stats(&a);
    assert_int_equal(s.outcomes[JRPC__REDIS_ERROR], 1);
    assert_int_equal(s.outcomes[JRPC__REDIS_TIMEOUT], 0);
    inst_close(&a);
}

/* Nothing listens: the first connect fails, reservations fail at once, nothing hangs. */
static void refused(void **state)
{
    (void)state;
    unsigned saved = redis_port;
    redis_port = free_port();
    inst_t a, *ins[1] = {&a};
    inst_open_t(&a, 1, FAULT_TIMEOUT_MS);
    inst_t *pair[2] = {&a, &a};
    static resv_t r;
    resv_fill(&r, 2, 1);
    reserve(&a, &r, "k:refused", 1, 10);
    resv_set_t one = {&r, 1};
    run_until(ins, 1, all_done, &one); /* queued behind the first connect, failed with it */
    assert_int_equal(r.res.status, JRPC__BUDGET_CLOSED);
    run_until(pair, 1, both_down, pair);
    resv_fill(&r, 2, 1);
    reserve(&a, &r, "k:refused", 1, 10);
    assert_true(r.inside);
    assert_int_equal(r.res.status, JRPC__BUDGET_CLOSED);
    inst_close(&a);
    redis_port = saved;
}

static void url_parse(void **state)
{
    (void)state;
    char host[64], pw[64];
    unsigned port;
    int db;
    const char *why;
    assert_int_equal(
        jrpc__redis_url_parse("redis://h", host, sizeof host, &port, pw, sizeof pw, &db, &why), 0);
    assert_string_equal(host, "h");
    assert_int_equal(port, 6379);
    assert_int_equal(db, -1);
    assert_string_equal(pw, "");
    assert_int_equal(jrpc__redis_url_parse("redis://u:s3cret@[::1]:7000/3", host, sizeof host,
                                           &port, pw, sizeof pw, &db, &why),
                     0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7000);
    assert_int_equal(db, 3);
    assert_string_equal(pw, "s3cret");
    const char *bad[] = {"http://h",     "redis://",        "redis://h:0",
                         "redis://h:x",  "redis://h:70000", "redis://h/x",
                         "redis://[::1", "redis://u@h",     NULL};
    for (size_t i = 0; bad[i] != NULL; i++)
        assert_int_equal(
            jrpc__redis_url_parse(bad[i], host, sizeof host, &port, pw, sizeof pw, &db, &why),
            JRPC_EINVAL);
    jrpc__budget_t *b;
    char err[256];
    jrpc__redis_opts_t o = {"redis://127.0.0.1", NULL, -1, 0, 0};
    assert_int_equal(jrpc__budget_redis_new(&o, &b, err, sizeof err), JRPC_EINVAL);
    assert_non_null(strstr(err, "timeout"));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (!have_redis_server()) {
        fprintf(stderr, "redis-server is not installed: skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_parse),
        cmocka_unit_test_setup_teardown(exact_total, setup, teardown),
        cmocka_unit_test_setup_teardown(greedy_and_costs, setup, teardown),
        cmocka_unit_test_setup_teardown(matches_item_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(one_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(noscript_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(stopped, setup, teardown),
        cmocka_unit_test_setup_teardown(killed_and_restarted, setup, teardown),
        cmocka_unit_test_setup_teardown(dropped_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(refused, setup, teardown),
        cmocka_unit_test_setup_teardown(kv_ops, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
