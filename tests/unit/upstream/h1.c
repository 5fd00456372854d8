/* SPDX-License-Identifier: MIT */
/* Unit tests of the gateway's own HTTP/1.1 client (src/upstream/h1.c): how it takes in an
 * answer (Content-Length, chunked with extensions and trailers, up to the close, after an interim
 * 100), each split at every byte with each piece right before a PROT_NONE page; whether the
 * connection may carry another request (not after Connection: close or unasked bytes); the
 * max_answer cut; a malformed answer; and the request head built from the URL and the headers.
 *
 * h1.c and its answer step (h1answer.c) are included; the client's end of an attempt is a
 * stand-in (nothing here ends one). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "upstream/h1.c"
#include "upstream/h1answer.c"

void jrpc__upstream_attempt_end(jrpc__chunk_t *ch, long status, int fault, const char *detail)
{
    (void)ch;
    (void)status;
    (void)fault;
    (void)detail;
    fail_msg("no attempt ends in these tests");
}

void jrpc__timeout_detail(const jrpc__chunk_t *c, int connecting, char *detail, size_t cap)
{
    (void)c;
    (void)connecting;
    (void)detail;
    (void)cap;
    fail_msg("no attempt times out in these tests");
}

static jrpc__upconf_t conf;
static jrpc__upctx_t ctx;
static jrpc__chunk_t *ch;
static jrpc__h1conn_t conn;

/* A fresh chunk and connection, as when a request has just been sent. */
static void start(size_t max_answer)
{
    memset(&conf, 0, sizeof conf);
    memset(&ctx, 0, sizeof ctx);
    conf.max_answer = max_answer;
    ctx.conf = &conf;
    if (ch != NULL) {
        jrpc_buf_free(&ch->answer);
        free(ch);
    }
    ch = calloc(1, sizeof(*ch));
    assert_non_null(ch);
    ch->ctx = &ctx;
    jrpc_buf_init(&ch->answer);
    memset(&conn, 0, sizeof conn);
    conn.ch = ch;
    conn.state = CONN_SENT;
    jrpc__h1answer_init(&conn.answer, &ch->answer, max_answer);
}

static int teardown(void **state)
{
    (void)state;
    if (ch != NULL) {
        jrpc_buf_free(&ch->answer);
        free(ch);
        ch = NULL;
    }
    return 0;
}

/* Feeds p[0..n) from the very end of a readable mapping followed by a PROT_NONE page. */
static int feed(const char *p, size_t n, int *keep, char *detail, size_t cap)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (n + page - 1) / page + 1;
    size_t len = (pages + 1) * page;
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + pages * page, page, PROT_NONE), 0);
    char *at = map + pages * page - n;
    memcpy(at, p, n);
    int rc = jrpc__h1answer_feed(&conn.answer, at, n, keep, detail, cap);
    munmap(map, len);
    return rc;
}

static const char body[] = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x1\"}]";

/* text split in two at every byte gives body, with `keep` as said; eof: it ends with the close. */
static void expect_everywhere(const char *text, int want_keep, int eof)
{
    size_t len = strlen(text);
    for (size_t k = 0; k <= len; k++) {
        start(1 << 20);
        int keep = -1;
        char detail[120];
        int rc = JRPC__H1_MORE;
        if (k > 0)
            rc = feed(text, k, &keep, detail, sizeof detail);
        if (rc == JRPC__H1_MORE && k < len)
            rc = feed(text + k, len - k, &keep, detail, sizeof detail);
        if (eof) {
            assert_int_equal(rc, JRPC__H1_MORE);
            assert_true(jrpc__h1answer_eof(&conn.answer));
            keep = 0;
        } else {
            assert_int_equal(rc, JRPC__H1_DONE);
        }
        assert_int_equal(keep, want_keep);
        assert_int_equal(conn.answer.parser.status_code, 200);
        assert_int_equal(ch->answer.len, sizeof body - 1);
        assert_memory_equal(ch->answer.ptr, body, sizeof body - 1);
    }
}

static void test_content_length(void **state)
{
    (void)state;
    expect_everywhere("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 41\r\n"
                      "\r\n[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x1\"}]",
                      1, 0);
    expect_everywhere("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 41\r\n\r\n"
                      "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x1\"}]",
                      0, 0);
    expect_everywhere("HTTP/1.0 200 OK\r\nContent-Length: 41\r\n\r\n"
                      "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x1\"}]",
                      0, 0);
}

static void test_chunked(void **state)
{
    (void)state;
    expect_everywhere("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5;ext=1\r\n[{\"js\r\n"
                      "1\r\no\r\n"
                      "23\r\nnrpc\":\"2.0\",\"id\":1,\"result\":\"0x1\"}]\r\n"
                      "0\r\nX-Trailer: t\r\n\r\n",
                      1, 0);
}

static void test_interim_then_answer(void **state)
{
    (void)state;
    expect_everywhere("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 41\r\n\r\n"
                      "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x1\"}]",
                      1, 0);
}

/* RFC 9112 §6.3: an interim answer ends at its blank line whatever framing it names; the
 * parser alone would read a body for it and take the real answer's bytes (found by fuzz/h1.c). */
static void test_interim_with_framing(void **state)
{
    (void)state;
    expect_everywhere("HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n"
                      "HTTP/1.1 103 Early Hints\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "HTTP/1.1 200 OK\r\nContent-Length: 41\r\n\r\n"
                      "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x1\"}]",
                      1, 0);
}

/* 204 and 304 have no body, Content-Length or not; a 101 leaves its connection to another
 * protocol, never to the pool. */
static void test_no_body(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 41\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    };
    for (size_t t = 0; t < 3; t++) {
        start(1 << 20);
        int keep = -1;
        char detail[120];
        assert_int_equal(feed(texts[t], strlen(texts[t]), &keep, detail, sizeof detail),
                         JRPC__H1_DONE);
        assert_int_equal(ch->answer.len, 0);
        assert_int_equal(keep, t < 2);
    }
}

static void test_until_close(void **state)
{
    (void)state;
    expect_everywhere("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                      "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x1\"}]",
                      0, 1);
}

/* Bytes after the answer: complete, but the connection is out of step and not reused. */
static void test_unasked_bytes(void **state)
{
    (void)state;
    static const char text[] = "HTTP/1.1 200 OK\r\nContent-Length: 41\r\n\r\n"
                               "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x1\"}]HTTP/1.1 200";
    start(1 << 20);
    int keep = -1;
    char detail[120];
    assert_int_equal(feed(text, sizeof text - 1, &keep, detail, sizeof detail), JRPC__H1_DONE);
    assert_int_equal(keep, 0);
    assert_int_equal(ch->answer.len, sizeof body - 1);
}

/* Over max_answer, with a length or chunked: too_large once the body passes it. */
static void test_too_large(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 41\r\n\r\n"
        "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x1\"}]",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n16\r\n[{\"jsonrpc\":\"2.0\",\"id\""
        "\r\n13\r\n:1,\"result\":\"0x1\"}]\r\n0\r\n\r\n",
    };
    for (size_t t = 0; t < 2; t++) {
        start(40);
        int keep = -1;
        char detail[120];
        assert_int_equal(feed(texts[t], strlen(texts[t]), &keep, detail, sizeof detail),
                         JRPC_UPSTREAM_FAULT_TOO_LARGE);
        assert_string_equal(detail, "answer larger than 40 bytes");
        assert_true(ch->answer.len <= 40);
        start(41); /* exactly max_answer passes */
        assert_int_equal(feed(texts[t], strlen(texts[t]), &keep, detail, sizeof detail),
                         JRPC__H1_DONE);
    }
}

static void test_malformed(void **state)
{
    (void)state;
    static const char text[] = "HTTP/1.1 2x0 OK\r\n\r\n";
    start(1 << 20);
    int keep = -1;
    char detail[120];
    assert_int_equal(feed(text, sizeof text - 1, &keep, detail, sizeof detail),
                     JRPC_UPSTREAM_FAULT_RESET);
    assert_true(strncmp(detail, "malformed HTTP answer: ", 23) == 0);
    start(1 << 20); /* a close before any byte completes nothing */
    assert_false(jrpc__h1answer_eof(&conn.answer));
}

/* The head: request target and Host from the URL, configured headers, "Name:" left out, a
 * configured Host instead of the URL's. */
static void test_head(void **state)
{
    (void)state;
    jrpc__endpoint_t ep = {.h1_target = "/v1/key?x=1", .h1_authority = "node.example:8545"};
    memset(&conf, 0, sizeof conf);
    conf.urls[0].ep = &ep;
    conf.headers = curl_slist_append(NULL, "Content-Type: application/json");
    conf.headers = curl_slist_append(conf.headers, "Expect:");
    conf.headers = curl_slist_append(conf.headers, "Authorization: Bearer k");
    jrpc__h1pool_t pool = {.ep = 0};
    assert_int_equal(h1_head_build(&pool, &conf), 0);
    static const char want[] = "POST /v1/key?x=1 HTTP/1.1\r\nHost: node.example:8545\r\n"
                               "Content-Type: application/json\r\n"
                               "Authorization: Bearer k\r\nContent-Length: ";
    assert_int_equal(pool.head_len, sizeof want - 1); /* the head has no NUL: its length counts */
    assert_memory_equal(pool.head, want, sizeof want - 1);
    free(pool.head);
    conf.headers = curl_slist_append(conf.headers, "host: other.example");
    assert_int_equal(h1_head_build(&pool, &conf), 0);
    char *head = strndup(pool.head, pool.head_len);
    assert_null(strstr(head, "node.example"));
    assert_non_null(strstr(head, "\r\nhost: other.example\r\n"));
    free(head);
    free(pool.head);
    curl_slist_free_all(conf.headers);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_content_length, teardown),
        cmocka_unit_test_teardown(test_chunked, teardown),
        cmocka_unit_test_teardown(test_interim_then_answer, teardown),
        cmocka_unit_test_teardown(test_interim_with_framing, teardown),
        cmocka_unit_test_teardown(test_no_body, teardown),
        cmocka_unit_test_teardown(test_until_close, teardown),
        cmocka_unit_test_teardown(test_unasked_bytes, teardown),
        cmocka_unit_test_teardown(test_too_large, teardown),
        cmocka_unit_test_teardown(test_malformed, teardown),
        cmocka_unit_test_teardown(test_head, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
