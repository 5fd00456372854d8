/* SPDX-License-Identifier: MIT */
/* Unit tests of src/http/hosts.c: the RFC 3986 host [":" port] reader (each input placed right
 * before a PROT_NONE page, so a read past its end faults), the hosts and cors_origins lists, the
 * checks jrpc_config_check makes of them, and the default hosts a server builds from its listen
 * addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "http/internal.h"
#include "jrpc.h"

static char *guard; /* two pages; the second is PROT_NONE */
static size_t page;

static int setup(void **state)
{
    (void)state;
    page = (size_t)sysconf(_SC_PAGESIZE);
    guard = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(guard != MAP_FAILED);
    assert_int_equal(mprotect(guard + page, page, PROT_NONE), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    munmap(guard, 2 * page);
    return 0;
}

/* s[0..n) copied to end right at the PROT_NONE page. */
static const char *at_edge(const char *s, size_t n)
{
    assert_true(n <= page);
    char *p = guard + page - n;
    memcpy(p, s, n);
    return p;
}

/* jrpc__http_host_parse of s[0..n) at the page's edge: the host part's length, or -1. */
static long host_len(const char *s, size_t n)
{
    size_t hl = 0;
    return jrpc__http_host_parse(at_edge(s, n), n, &hl) ? (long)hl : -1;
}

static void host_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        long host; /* length of the host part, -1: invalid */
    } cases[] = {
        {"localhost", 9},
        {"localhost:8000", 9},
        {"LOCALHOST:", 9}, /* RFC 3986 §3.2.3: the port may be empty */
        {"127.0.0.1:65535", 9},
        {"a-b.c_d~e!$&'()*+,;=", 20}, /* unreserved and sub-delims */
        {"%41%62c", 7},
        {"[::1]", 5},
        {"[::1]:80", 5},
        {"[2001:db8::7]:8545", 13},
        {"[::ffff:127.0.0.1]", 18},
        {"[v1.fe:x]", 9}, /* IPvFuture */
        {"x:0123456789", 1},
        {"", -1}, /* an empty host is the caller's case, not a host */
        {":8000", -1},
        {"a b", -1},
        {"a/b", -1},
        {"@", -1},
        {"u@localhost", -1},
        {"a?b", -1},
        {"a#b", -1},
        {"a\\b", -1},
        {"a\"b", -1},
        {"a\xff", -1},
        {"localhost:80x", -1},
        {"localhost:1:2", -1},
        {"::1", -1}, /* IPv6 only in brackets */
        {"[::1", -1},
        {"[::g]", -1},
        {"[]", -1},
        {"[::1]x", -1},
        {"[::1]:x", -1},
        {"[fe80::1%25eth0]", -1}, /* zone ids (RFC 6874) are not served */
        {"[v.x]", -1},
        {"[v1.]", -1},
        {"%4", -1},
        {"a%zz", -1},
        {"%", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long got = host_len(cases[i].text, strlen(cases[i].text));
        if (got != cases[i].host)
            fail_msg("\"%s\": %ld, want %ld", cases[i].text, got, cases[i].host);
        /* Every proper prefix is read without a fault too (the answer may differ). */
        for (size_t n = 0; n < strlen(cases[i].text); n++)
            (void)host_len(cases[i].text, n);
    }
    /* A NUL is no host byte (http-parser refuses it, but the reader must not rely on that). */
    assert_int_equal(host_len("a\0b", 3), -1);
    assert_int_equal(host_len("[::1]\0", 6), -1);
}

static void host_allowed(void **state)
{
    (void)state;
    const char *list = " localhost,127.0.0.1\t[::1] ,, 2001:db8::1";
    assert_true(jrpc__http_host_allowed(list, "localhost", 9));
    assert_true(jrpc__http_host_allowed(list, "LocalHost", 9));
    assert_true(jrpc__http_host_allowed(list, "127.0.0.1", 9));
    assert_true(jrpc__http_host_allowed(list, "[::1]", 5)); /* with or without brackets */
    assert_true(jrpc__http_host_allowed(list, "::1", 3));
    assert_true(jrpc__http_host_allowed(list, "[2001:db8::1]", 13));
    assert_false(jrpc__http_host_allowed(list, "localhost.", 10));
    assert_false(jrpc__http_host_allowed(list, "localhos", 8));
    assert_false(jrpc__http_host_allowed(list, "127.0.0.2", 9));
    assert_false(jrpc__http_host_allowed(list, "evil.example", 12));
    assert_false(jrpc__http_host_allowed(list, "[::2]", 5));
    assert_false(jrpc__http_host_allowed("", "localhost", 9));
    assert_true(jrpc__http_host_allowed("a, *", "evil.example", 12));
}

static void origin_allowed(void **state)
{
    (void)state;
    const char *list = "https://app.example, http://localhost:3000";
    assert_int_equal(jrpc__http_origin_allowed(list, "https://app.example", 19), JRPC__CORS_ECHO);
    assert_int_equal(jrpc__http_origin_allowed(list, "HTTPS://APP.example", 19), JRPC__CORS_ECHO);
    assert_int_equal(jrpc__http_origin_allowed(list, "http://localhost:3000", 21), JRPC__CORS_ECHO);
    assert_int_equal(jrpc__http_origin_allowed(list, "http://localhost:3001", 21), JRPC__CORS_NONE);
    assert_int_equal(jrpc__http_origin_allowed(list, "http://app.example", 18), JRPC__CORS_NONE);
    assert_int_equal(jrpc__http_origin_allowed(list, "https://app.example.evil", 24),
                     JRPC__CORS_NONE);
    assert_int_equal(jrpc__http_origin_allowed(list, "null", 4), JRPC__CORS_NONE);
    assert_int_equal(jrpc__http_origin_allowed(list, "", 0), JRPC__CORS_NONE);
    assert_int_equal(jrpc__http_origin_allowed("", "https://app.example", 19), JRPC__CORS_NONE);
    /* "*" answers "*", wherever it is on the list. */
    assert_int_equal(jrpc__http_origin_allowed("https://app.example *", "https://app.example", 19),
                     JRPC__CORS_ANY);
    assert_int_equal(jrpc__http_origin_allowed("*", "null", 4), JRPC__CORS_ANY);
}

static void lists_checked(void **state)
{
    (void)state;
    assert_null(jrpc__http_hosts_check(NULL));
    assert_null(jrpc__http_hosts_check(""));
    assert_null(jrpc__http_hosts_check("* localhost, ::1 [::1] 10.0.0.1 rpc.example.com a_b"));
    assert_non_null(jrpc__http_hosts_check("localhost:8545"));
    assert_non_null(jrpc__http_hosts_check("a/b"));
    assert_non_null(jrpc__http_hosts_check("[::1"));
    assert_non_null(jrpc__http_hosts_check("u@h"));
    assert_non_null(jrpc__http_hosts_check("::g"));
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_non_null(jrpc__http_hosts_check(longname));

    assert_null(jrpc__http_origins_check(NULL));
    assert_null(jrpc__http_origins_check(""));
    assert_null(jrpc__http_origins_check("https://a.example http://localhost:3000, * "
                                         "chrome-extension://abc x+y.z-w://h"));
    assert_non_null(jrpc__http_origins_check("https://a.example/"));
    assert_non_null(jrpc__http_origins_check("https://a.example/path"));
    assert_non_null(jrpc__http_origins_check("a.example"));
    assert_non_null(jrpc__http_origins_check("null"));
    assert_non_null(jrpc__http_origins_check("https://"));
    assert_non_null(jrpc__http_origins_check("1http://a"));
    assert_non_null(jrpc__http_origins_check("https://u@a"));

    /* jrpc_config_check refuses them by name, and so does jrpc_server_create. */
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.hosts = "localhost:8000";
    assert_non_null(strstr(jrpc_config_check(&cfg), "hosts"));
    assert_null(jrpc_server_new(&cfg));
    cfg.hosts = "*";
    cfg.cors_origins = "https://a.example/";
    assert_non_null(strstr(jrpc_config_check(&cfg), "cors_origins"));
    assert_null(jrpc_server_new(&cfg));
    cfg.cors_origins = "*";
    assert_null(jrpc_config_check(&cfg));
}

static int warnings;
static char last_warning[512];

static void on_log(jrpc_log_level_t level, const char *line, void *data)
{
    (void)data;
    if (level == JRPC_LOG_WARN) {
        warnings++;
        snprintf(last_warning, sizeof last_warning, "%s", line);
    }
}

/* Without hosts: the localhost names, then the names of loopback listen addresses; a listen
 * address the list would refuse is warned about. Given hosts are kept as they are. */
static void default_hosts(void **state)
{
    (void)state;
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.io_threads = 1;
    cfg.log_cb = on_log;
    jrpc_server_t *srv = jrpc_server_new(&cfg);
    assert_non_null(srv);
    assert_string_equal(jrpc_server_config(srv)->hosts, "localhost 127.0.0.1 ::1");
    assert_string_equal(jrpc_server_config(srv)->cors_origins, "");
    assert_int_equal(jrpc_server_listen(srv, "127.0.0.1:0"), 0);
    assert_string_equal(jrpc_server_config(srv)->hosts, "localhost 127.0.0.1 ::1");
    assert_int_equal(jrpc_server_listen(srv, "127.0.0.2:0"), 0); /* all of 127/8 is loopback */
    assert_string_equal(jrpc_server_config(srv)->hosts, "localhost 127.0.0.1 ::1 127.0.0.2");
    assert_int_equal(warnings, 0);
    assert_int_equal(jrpc_server_listen(srv, "0.0.0.0:0"), 0);
    assert_int_equal(warnings, 1);
    assert_non_null(strstr(last_warning, "listening on 0.0.0.0:"));
    assert_non_null(strstr(last_warning, "set hosts"));
    assert_string_equal(jrpc_server_config(srv)->hosts, "localhost 127.0.0.1 ::1 127.0.0.2");
    jrpc_server_free(srv);

    warnings = 0;
    cfg.hosts = "rpc.example.com";
    cfg.cors_origins = "https://app.example";
    srv = jrpc_server_new(&cfg);
    assert_non_null(srv);
    assert_int_equal(jrpc_server_listen(srv, "127.0.0.2:0"), 0);
    assert_int_equal(jrpc_server_listen(srv, "0.0.0.0:0"), 0);
    assert_string_equal(jrpc_server_config(srv)->hosts, "rpc.example.com");
    assert_string_equal(jrpc_server_config(srv)->cors_origins, "https://app.example");
    assert_int_equal(warnings, 0); /* the operator named the hosts */
    jrpc_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(host_parse, setup, teardown),
        cmocka_unit_test(host_allowed),
        cmocka_unit_test(origin_allowed),
        cmocka_unit_test(lists_checked),
        cmocka_unit_test(default_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
