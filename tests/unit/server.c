/* SPDX-License-Identifier: MIT */
/* Unit tests of creating a server (src/server.c) through the public API: jrpc_server_create
 * refuses a bad config with JRPC_EINVAL and jrpc_config_check names the field, a valid one makes
 * a usable server, and jrpc_server_new stays the NULL-on-failure wrapper. (Out of memory is not
 * provoked here.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jrpc.h"

/* Every field jrpc_server_create refuses at 0, listed here rather than taken from the library so
 * that a check dropped there fails here. */
/* clang-format off */
#define FIELD(f) {#f, offsetof(jrpc_config_t, f), sizeof(((jrpc_config_t *)0)->f)}
/* clang-format on */
static const struct {
    const char *name;
    size_t offset;
    size_t size;
} at_least_1[] = {
    FIELD(workers),         FIELD(max_batch),    FIELD(max_batch_ws),
    FIELD(max_body),        FIELD(max_response), FIELD(max_ws_message),
    FIELD(ws_max_inflight), FIELD(ws_max_queue), FIELD(ws_max_subscriptions),
};
#undef FIELD

/* jrpc_server_create refuses cfg with JRPC_EINVAL, leaves *out NULL, and jrpc_config_check
 * gives `want`. */
static void assert_refused(const jrpc_config_t *cfg, const char *want)
{
    jrpc_server_t *srv = (jrpc_server_t *)&srv; /* not NULL: the call must clear it */
    assert_int_equal(jrpc_server_create(cfg, &srv), JRPC_EINVAL);
    assert_null(srv);
    assert_null(jrpc_server_new(cfg));
    const char *why = jrpc_config_check(cfg);
    assert_non_null(why);
    assert_string_equal(why, want);
}

static void each_zero_field_is_named(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof at_least_1 / sizeof at_least_1[0]; i++) {
        jrpc_config_t cfg;
        jrpc_config_init(&cfg);
        memset((char *)&cfg + at_least_1[i].offset, 0, at_least_1[i].size);
        char want[96];
        snprintf(want, sizeof want, "%s must be at least 1", at_least_1[i].name);
        assert_refused(&cfg, want);
    }
}

static void path_must_start_with_slash(void **state)
{
    (void)state;
    static const char *const bad[] = {NULL, "", "api/v1", " /api"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jrpc_config_t cfg;
        jrpc_config_init(&cfg);
        cfg.path = bad[i];
        assert_refused(&cfg, "path must start with /");
    }
}

/* reuse_port is a switch: 0 and 1 pass, anything else is refused by name. */
static void reuse_port_is_0_or_1(void **state)
{
    (void)state;
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    assert_int_equal(cfg.reuse_port, 0); /* a taken port is refused unless asked otherwise */
    cfg.reuse_port = 1;
    assert_null(jrpc_config_check(&cfg));
    cfg.reuse_port = 2;
    assert_refused(&cfg, "reuse_port must be 0 or 1");
}

/* A checking server (jrpcd --check) says so to modules, and refuses to run. */
static void a_checking_server_does_not_run(void **state)
{
    (void)state;
    jrpc_server_t *srv = jrpc_server_new(NULL);
    assert_non_null(srv);
    assert_int_equal(jrpc_server_checking(srv), 0);
    assert_int_equal(jrpc_server_set_checking(srv), 0);
    assert_int_equal(jrpc_server_checking(srv), 1);
    assert_int_equal(jrpc_server_listen(srv, "127.0.0.1:0"), 0);
    assert_int_equal(jrpc_server_run(srv), JRPC_EINVAL);
    jrpc_server_free(srv);
    /* Too late once an address is bound: it would stay bound. */
    srv = jrpc_server_new(NULL);
    assert_non_null(srv);
    assert_int_equal(jrpc_server_listen(srv, "127.0.0.1:0"), 0);
    assert_int_equal(jrpc_server_set_checking(srv), JRPC_EBUSY);
    assert_int_equal(jrpc_server_checking(srv), 0);
    jrpc_server_free(srv);
}

/* The first refused field is named when several are wrong, and fixing it names the next. */
static void one_field_at_a_time(void **state)
{
    (void)state;
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.path = "x";
    cfg.max_batch = 0;
    assert_refused(&cfg, "path must start with /");
    cfg.path = "/x";
    assert_refused(&cfg, "max_batch must be at least 1");
    cfg.max_batch = 1;
    assert_null(jrpc_config_check(&cfg));
}

static void ping(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_reply_raw(call, "\"pong\"", 6);
}

static void valid_config_makes_a_server(void **state)
{
    (void)state;
    assert_null(jrpc_config_check(NULL)); /* the defaults */
    jrpc_server_t *srv = NULL;
    assert_int_equal(jrpc_server_create(NULL, &srv), 0);
    assert_non_null(srv);
    assert_string_equal(jrpc_server_config(srv)->path, "/api/v1/endpoint");
    jrpc_server_free(srv);

    /* The fields' smallest values pass, and cfg's strings are copied. */
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    for (size_t i = 0; i < sizeof at_least_1 / sizeof at_least_1[0]; i++) {
        char *f = (char *)&cfg + at_least_1[i].offset;
        unsigned u = 1;
        size_t z = 1;
        assert_true(at_least_1[i].size == sizeof u || at_least_1[i].size == sizeof z);
        memcpy(f, at_least_1[i].size == sizeof u ? (void *)&u : (void *)&z, at_least_1[i].size);
    }
    char path[] = "/rpc";
    cfg.path = path;
    cfg.io_threads = 1;
    assert_null(jrpc_config_check(&cfg));
    srv = NULL;
    assert_int_equal(jrpc_server_create(&cfg, &srv), 0);
    assert_non_null(srv);
    path[1] = 'X';
    assert_string_equal(jrpc_server_config(srv)->path, "/rpc");
    assert_int_equal(jrpc_server_config(srv)->max_batch, 1);
    assert_int_equal(jrpc_server_config(srv)->ws_max_queue, 1);
    assert_int_equal(jrpc_method_add(srv, "ping", ping, NULL, JRPC_INLINE), 0);
    jrpc_server_free(srv);

    srv = jrpc_server_new(NULL);
    assert_non_null(srv);
    jrpc_server_free(srv);
}

/* ---- jrpc_server_reconfigure on a running server --------------------------------------------- */

static void *run_thread(void *arg)
{
    assert_int_equal(jrpc_server_run(arg), 0);
    return NULL;
}

/* Sends one POST of body on fd and reads the whole answer into buf (NUL-terminated); returns
 * its length. The answer carries Content-Length, so the read stops at its end. */
static size_t post(int fd, const char *body, char *buf, size_t cap)
{
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "POST /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t len = 0;
    for (;;) {
        ssize_t got = read(fd, buf + len, cap - 1 - len);
        assert_true(got > 0); /* the connection stays open */
        len += (size_t)got;
        buf[len] = '\0';
        const char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strstr(buf, "Content-Length: ");
        if (end != NULL && cl != NULL &&
            len >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10))
            return len;
    }
}

static void reconfigure_applies_to_the_next_batch(void **state)
{
    (void)state;
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.path = "/rpc";
    cfg.io_threads = 2;
    cfg.max_batch = 5;
    jrpc_server_t *srv = NULL;
    assert_int_equal(jrpc_server_create(&cfg, &srv), 0);
    assert_int_equal(jrpc_method_add(srv, "ping", ping, NULL, JRPC_INLINE), 0);
    assert_int_equal(jrpc_server_listen(srv, "127.0.0.1:0"), 0);
    char addr[64];
    assert_int_equal(jrpc_server_address(srv, 0, addr, sizeof addr), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_thread, srv), 0);

    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_port = htons((uint16_t)atoi(strrchr(addr, ':') + 1));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);

    static const char batch[] = "[{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1},"
                                "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":2},"
                                "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":3}]";
    char buf[4096];
    post(fd, batch, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"result\":\"pong\",\"id\":3"));

    /* A refused configuration changes nothing. */
    jrpc_config_t bad = cfg;
    bad.max_batch = 0;
    assert_int_equal(jrpc_server_reconfigure(srv, &bad), JRPC_EINVAL);
    assert_int_equal(jrpc_server_config(srv)->max_batch, 5);

    /* What the server was built with stays; the limits change, for the connection open already:
     * its next batch once its loop has switched (at its next wakeup, bounded here). */
    jrpc_config_t next = cfg;
    next.max_batch = 2;
    next.path = "/elsewhere";
    next.io_threads = 7;
    next.cors_origins = "https://a.example";
    assert_int_equal(jrpc_server_reconfigure(srv, &next), 0);
    const jrpc_config_t *now = jrpc_server_config(srv);
    assert_int_equal(now->max_batch, 2);
    assert_string_equal(now->path, "/rpc");
    assert_int_equal(now->io_threads, 2);
    assert_string_equal(now->cors_origins, "https://a.example");
    int refused = 0;
    for (int i = 0; i < 1000 && !refused; i++) {
        post(fd, batch, buf, sizeof buf);
        refused = strstr(buf, "batch of 3 exceeds limit 2") != NULL;
        if (!refused)
            assert_non_null(strstr(buf, "\"result\":\"pong\",\"id\":3"));
    }
    assert_true(refused);
    /* And stays switched: a later batch is refused too; a batch of two passes. */
    post(fd, batch, buf, sizeof buf);
    assert_non_null(strstr(buf, "exceeds limit 2"));
    post(fd,
         "[{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1},"
         "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":2}]",
         buf, sizeof buf);
    assert_non_null(strstr(buf, "\"result\":\"pong\",\"id\":2"));

    /* The batch policy too, at once: the very next batch meets it. */
    const char *deny[] = {"pi*"};
    const char *bad_deny[] = {"p*g"};
    assert_int_equal(jrpc_batch_deny_set(srv, bad_deny, 1), JRPC_EINVAL);
    assert_int_equal(jrpc_batch_deny_set(srv, deny, 1), 0);
    post(fd,
         "[{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1},"
         "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":2}]",
         buf, sizeof buf);
    assert_non_null(strstr(buf, "-32004"));
    assert_int_equal(jrpc_batch_deny_set(srv, NULL, 0), 0);
    post(fd,
         "[{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1},"
         "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":2}]",
         buf, sizeof buf);
    assert_non_null(strstr(buf, "\"result\":\"pong\",\"id\":2"));

    close(fd);
    jrpc_server_stop(srv);
    assert_int_equal(pthread_join(th, NULL), 0);
    jrpc_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_zero_field_is_named),
        cmocka_unit_test(path_must_start_with_slash),
        cmocka_unit_test(one_field_at_a_time),
        cmocka_unit_test(reuse_port_is_0_or_1),
        cmocka_unit_test(a_checking_server_does_not_run),
        cmocka_unit_test(valid_config_makes_a_server),
        cmocka_unit_test(reconfigure_applies_to_the_next_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
