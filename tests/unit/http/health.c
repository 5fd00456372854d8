/* SPDX-License-Identifier: MIT */
/* Unit tests of src/http/health.c: which paths are health checks, and the bodies of /health and
 * /ready from the server's state: a drain asked, readiness hooks (each asked once per answer,
 * names grouped by key in registration order, JSON-escaped), and the hook registration checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <string.h>
#include <uv.h>

#include "http/internal.h"
#include "jrpc.h"
#include "server.h"

static void routes(void **state)
{
    (void)state;
    assert_int_equal(jrpc__http_health_route("/health", 7), JRPC__HEALTH_LIVE);
    assert_int_equal(jrpc__http_health_route("/healthz", 8), JRPC__HEALTH_LIVE);
    assert_int_equal(jrpc__http_health_route("/ready", 6), JRPC__HEALTH_READY);
    assert_int_equal(jrpc__http_health_route("/ready/", 7), JRPC__HEALTH_NONE);
    assert_int_equal(jrpc__http_health_route("/Ready", 6), JRPC__HEALTH_NONE);
    assert_int_equal(jrpc__http_health_route("/healt", 6), JRPC__HEALTH_NONE);
    assert_int_equal(jrpc__http_health_route("/", 1), JRPC__HEALTH_NONE);
}

/* A hook's state: what it answers, and how often it was asked. */
typedef struct {
    int ready;
    int asked;
} probe_t;

static int probe_cb(void *data)
{
    probe_t *p = data;
    p->asked++;
    return p->ready;
}

/* The answer's status, with its body compared to `want`. */
static void expect(jrpc_server_t *srv, jrpc__health_t which, unsigned status, const char *want)
{
    jrpc_buf_t out;
    jrpc_buf_init(&out);
    assert_int_equal(jrpc__http_health_answer(&srv->io, which, &out), status);
    assert_int_equal(out.err, 0);
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.ptr, want, out.len);
    jrpc_buf_free(&out);
}

static void ready_hooks(void **state)
{
    (void)state;
    jrpc_server_t *srv = jrpc_server_new(NULL);
    assert_non_null(srv);
    expect(srv, JRPC__HEALTH_READY, 200, "{\"status\":\"ok\"}");

    probe_t eth = {1, 0}, other = {1, 0}, btc = {1, 0};
    assert_int_equal(jrpc_server_ready_hook(srv, "upstreams_down", "eth", probe_cb, &eth), 0);
    assert_int_equal(jrpc_server_ready_hook(srv, "other", "x\"y", probe_cb, &other), 0);
    assert_int_equal(jrpc_server_ready_hook(srv, "upstreams_down", "btc", probe_cb, &btc), 0);
    expect(srv, JRPC__HEALTH_READY, 200, "{\"status\":\"ok\"}");
    assert_int_equal(eth.asked, 1);
    assert_int_equal(other.asked, 1);
    assert_int_equal(btc.asked, 1);

    eth.ready = btc.ready = 0;
    expect(srv, JRPC__HEALTH_READY, 503,
           "{\"status\":\"unavailable\",\"upstreams_down\":[\"eth\",\"btc\"]}");
    assert_int_equal(eth.asked, 2);
    assert_int_equal(btc.asked, 2);

    eth.ready = 1;
    other.ready = 0;
    expect(srv, JRPC__HEALTH_READY, 503,
           "{\"status\":\"unavailable\",\"upstreams_down\":[\"btc\"],\"other\":[\"x\\\"y\"]}");
    /* Liveness asks nobody. */
    expect(srv, JRPC__HEALTH_LIVE, 200, "{\"status\":\"ok\"}");
    assert_int_equal(other.asked, 3);

    assert_int_equal(jrpc_server_ready_hook(srv, "", "n", probe_cb, &eth), JRPC_EINVAL);
    assert_int_equal(jrpc_server_ready_hook(srv, "k", NULL, probe_cb, &eth), JRPC_EINVAL);
    assert_int_equal(jrpc_server_ready_hook(srv, "k", "n", NULL, &eth), JRPC_EINVAL);
    jrpc_server_free(srv);
}

static void draining(void **state)
{
    (void)state;
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    assert_int_equal(cfg.drain_delay_ms, 0);
    cfg.drain_delay_ms = 5000;
    jrpc_server_t *srv = jrpc_server_new(&cfg);
    assert_non_null(srv);
    probe_t down = {0, 0};
    assert_int_equal(jrpc_server_ready_hook(srv, "upstreams_down", "eth", probe_cb, &down), 0);
    jrpc_server_drain(srv);
    /* Draining says so before anything else, and asks no hook. */
    expect(srv, JRPC__HEALTH_READY, 503, "{\"status\":\"draining\"}");
    assert_int_equal(down.asked, 0);
    expect(srv, JRPC__HEALTH_LIVE, 200, "{\"status\":\"ok\"}");
    /* A drain with a delay is not a stop yet. */
    assert_int_equal(atomic_load(&srv->io.stop_requests), 0);
    jrpc_server_free(srv);

    /* Without a delay, a drain is a stop. */
    srv = jrpc_server_new(NULL);
    assert_non_null(srv);
    jrpc_server_drain(srv);
    assert_int_equal(atomic_load(&srv->io.stop_requests), 1);
    expect(srv, JRPC__HEALTH_READY, 503, "{\"status\":\"draining\"}");
    jrpc_server_free(srv);
}

static void run_thread(void *arg)
{
    jrpc_server_t *srv = arg;
    assert_int_equal(jrpc_server_run(srv), 0);
}

/* A running server with drain_delay_ms: a drain ends run once the delay is over, with no stop;
 * a stop during a delay far longer than any test ends it at once (else the join would hang until
 * ctest's timeout). */
static void drain_runs(void **state)
{
    (void)state;
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.io_threads = 2;
    cfg.drain_delay_ms = 20;
    jrpc_server_t *srv = jrpc_server_new(&cfg);
    assert_non_null(srv);
    assert_int_equal(jrpc_server_listen(srv, "127.0.0.1:0"), 0);
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, run_thread, srv), 0);
    jrpc_server_drain(srv);
    assert_int_equal(uv_thread_join(&t), 0);
    jrpc_server_free(srv);

    cfg.drain_delay_ms = 3600000;
    srv = jrpc_server_new(&cfg);
    assert_non_null(srv);
    assert_int_equal(jrpc_server_listen(srv, "127.0.0.1:0"), 0);
    assert_int_equal(uv_thread_create(&t, run_thread, srv), 0);
    jrpc_server_drain(srv);
    jrpc_server_stop(srv);
    assert_int_equal(uv_thread_join(&t), 0);
    jrpc_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes),
        cmocka_unit_test(ready_hooks),
        cmocka_unit_test(draining),
        cmocka_unit_test(drain_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
