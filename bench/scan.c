/* SPDX-License-Identifier: MIT */
/* scan.c — micro-benchmark of the envelope scanner against yajl on the batch DESIGN.md §1 measures:
 * 1000 Ethereum-style JSON-RPC calls (~108 KB: eth_getBalance, eth_call, eth_getLogs and friends,
 * hex addresses, nested objects, numbers, a few escaped strings), generated deterministically.
 *
 * yajl runs with NULL callbacks: it validates and builds nothing, which is the fair comparison for
 * a scanner that validates and records spans but builds no DOM either. Both sides pay for their
 * per-request setup (our arena, yajl's handle). Runs alternate between the contenders so that
 * frequency drift hits all alike; the medians are printed with their ratio. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yajl/yajl_parse.h>

#include "json/internal.h"

#define ITEMS 1000
#define WARMUP 100
#define RUNS 2001

/* ---- The batch ------------------------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void hex(char *out, size_t digits)
{
    for (size_t i = 0; i < digits; i++)
        out[i] = "0123456789abcdef"[next() & 15];
    out[digits] = '\0';
}

static size_t gen_item(char *out, size_t cap, int id)
{
    char addr[41], addr2[41], topic[65], data[65];
    hex(addr, 40);
    hex(addr2, 40);
    hex(topic, 64);
    hex(data, 64);
    switch (next() % 16) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 15:
        return (size_t)snprintf(out, cap,
                                "{\"jsonrpc\":\"2.0\",\"method\":\"eth_getBalance\",\"params\":"
                                "[\"0x%s\",\"latest\"],\"id\":%d}",
                                addr, id);
    case 4:
    case 5:
    case 6:
        return (size_t)snprintf(out, cap,
                                "{\"jsonrpc\":\"2.0\",\"method\":\"eth_blockNumber\",\"params\":[],"
                                "\"id\":%d}",
                                id);
    case 7:
    case 8:
        return (size_t)snprintf(out, cap,
                                "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"params\":[],\"id\":%d}",
                                next() & 1 ? "eth_chainId" : "eth_gasPrice", id);
    case 9:
        return (size_t)snprintf(out, cap,
                                "{\"jsonrpc\":\"2.0\",\"method\":\"eth_call\",\"params\":[{\"to\":"
                                "\"0x%s\",\"data\":\"0x70a08231%.24s\"},\"latest\"],\"id\":%d}",
                                addr, data, id);
    case 10:
        return (size_t)snprintf(out, cap,
                                "{\"jsonrpc\":\"2.0\",\"method\":\"eth_getLogs\",\"params\":[{"
                                "\"fromBlock\":\"0x%x\",\"toBlock\":\"latest\",\"address\":"
                                "\"0x%s\",\"topics\":[\"0x%s\",null]}],\"id\":%d}",
                                (unsigned)(next() % 0xffffff), addr2, topic, id);
    case 11:
        return (size_t)snprintf(out, cap,
                                "{\"jsonrpc\":\"2.0\",\"method\":\"eth_getBlockByNumber\","
                                "\"params\":[\"0x%x\",false],\"id\":%d}",
                                (unsigned)(next() % 0xffffff), id);
    case 12:
        return (size_t)snprintf(out, cap,
                                "{\"jsonrpc\":\"2.0\",\"method\":\"eth_feeHistory\",\"params\":"
                                "[4,\"latest\",[25,75.5,-1.25e-3]],\"id\":\"fee-%d\"}",
                                id);
    case 13:
        return (size_t)snprintf(out, cap,
                                "{\"jsonrpc\":\"2.0\",\"method\":\"personal_sign\",\"params\":"
                                "[\"caf\\u00e9 \\\"sign\\\" me\\n\",\"0x%.16s\"],\"id\":%d}",
                                addr, id);
    default: /* 14 */
        return (size_t)snprintf(out, cap,
                                "{\"jsonrpc\":\"2.0\",\"method\":\"eth_getTransactionCount\","
                                "\"params\":[\"0x%s\",\"pending\"],\"id\":%d}",
                                addr, id);
    }
}

static char *gen_batch(size_t *len)
{
    size_t cap = 1 << 20, n = 0;
    char *b = malloc(cap);
    if (b == NULL)
        abort();
    b[n++] = '[';
    for (int i = 0; i < ITEMS; i++) {
        if (i > 0)
            b[n++] = ',';
        n += gen_item(b + n, cap - n, i + 1);
    }
    b[n++] = ']';
    *len = n;
    return b;
}

/* ---- Timing ---------------------------------------------------------------------------------- */

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* The io loops' chunk cache: a request's arena reuses the chunks of the previous ones, as in
 * the server. run_jrpc_fresh shows the cost without it (fresh mallocs, and mmaps for the big
 * chunks, every time). */
static jrpc__arena_cache_t cache;

static int scan_with(jrpc__arena_t *arena, const char *p, size_t n)
{
    jrpc__envelope_t env;
    jrpc__json_err_t err;
    int rc = jrpc__envelope_scan(p, n, 0, arena, &env, &err);
    if (rc == 0 && env.count != ITEMS)
        rc = -1;
    jrpc__arena_free(arena);
    return rc;
}

static int run_jrpc(const char *p, size_t n)
{
    jrpc__arena_t arena;
    jrpc__arena_init_cached(&arena, &cache);
    return scan_with(&arena, p, n);
}

static int run_jrpc_fresh(const char *p, size_t n)
{
    jrpc__arena_t arena;
    jrpc__arena_init(&arena);
    return scan_with(&arena, p, n);
}

static int run_check(const char *p, size_t n)
{
    jrpc__json_err_t err;
    return jrpc__json_check(p, n, 0, &err);
}

static int run_yajl(const char *p, size_t n)
{
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    if (h == NULL)
        return -1;
    yajl_status s = yajl_parse(h, (const unsigned char *)p, n);
    if (s == yajl_status_ok)
        s = yajl_complete_parse(h);
    yajl_free(h);
    return s == yajl_status_ok ? 0 : -1;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, by_value);
    return v[n / 2];
}

int main(void)
{
    size_t n;
    char *batch = gen_batch(&n);
    if (run_jrpc(batch, n) != 0 || run_jrpc_fresh(batch, n) != 0 || run_check(batch, n) != 0 ||
        run_yajl(batch, n) != 0) {
        fprintf(stderr, "bench_scan: the batch is not accepted by both parsers\n");
        return 1;
    }
    static double tj[RUNS], tf[RUNS], tc[RUNS], ty[RUNS];
    int (*fns[4])(const char *, size_t) = {run_jrpc, run_jrpc_fresh, run_check, run_yajl};
    double *out[4] = {tj, tf, tc, ty};
    int sink = 0;
    for (int i = 0; i < WARMUP + RUNS; i++) {
        for (int f = 0; f < 4; f++) {
            double t0 = now_us();
            sink |= fns[f](batch, n);
            double t1 = now_us();
            if (i >= WARMUP)
                out[f][i - WARMUP] = t1 - t0;
        }
    }
    if (sink != 0) {
        fprintf(stderr, "bench_scan: a run failed\n");
        return 1;
    }
    double j = median(tj, RUNS), f = median(tf, RUNS), c = median(tc, RUNS), y = median(ty, RUNS);
    printf("scan: %d items, %.1f KB: jrpc %.1f us  yajl %.1f us  ratio %.2f (target <= 0.50)\n",
           ITEMS, (double)n / 1000.0, j, y, j / y);
    printf("scan: (%.0f MB/s; uncached arena %.1f us, ratio %.2f; validation only %.1f us, ratio "
           "%.2f)\n",
           (double)n / j, f, f / y, c, c / y);
    jrpc__arena_cache_clear(&cache);
    free(batch);
    return 0;
}
