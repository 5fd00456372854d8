/* SPDX-License-Identifier: MIT */
/* Unit tests of the gateway's WebSocket client (src/upstream/wsc.c): which URLs it takes (ws://
 * only: wss:// and anything it could not connect to are refused at config time), and its frame
 * reader fed what a server sends — whole, fragmented, with 16- and 64-bit lengths — split at
 * every byte, plus the frames it must refuse (masked, reserved bits, past max_message). wsc.c
 * builds into libjrpc_upstream; the test includes it and drives the reader without a socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <stdlib.h>
#include <string.h>

#include "upstream/wsc.c"

static void test_url_check(void **state)
{
    (void)state;
    static const char *const good[] = {"ws://h",
                                       "ws://127.0.0.1:8546",
                                       "ws://h:1/p?q=1",
                                       "ws://[::1]:8546/x",
                                       "ws://node.example",
                                       "ws://h:65535"};
    static const char *const bad[] = {
        "wss://h",      "http://h:1",  "ws://",   "ws:///p",    "ws://h:0",
        "ws://h:65536", "ws://h:x",    "ws://h:", "ws://u:p@h", "ws://[::1",
        "ws://h#frag",  "ws://[::1]x", "WS://h"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(jrpc__wsc_url_check(good[i]), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(jrpc__wsc_url_check(bad[i]), JRPC_EINVAL);
}

static void test_parse(void **state)
{
    (void)state;
    jrpc__wsc_t w;
    memset(&w, 0, sizeof w);
    assert_int_equal(wsc_parse(&w, "ws://[::1]:8546/a?b"), 0);
    assert_string_equal(w.host, "::1");
    assert_string_equal(w.port, "8546");
    assert_string_equal(w.path, "/a?b");
    assert_int_equal(wsc_parse(&w, "ws://h?x"), 0);
    assert_string_equal(w.host, "h");
    assert_string_equal(w.port, "80");
    assert_string_equal(w.path, "/?x");
    free(w.path);
}

/* ---- The frame reader, without a socket ------------------------------------------------------ */

typedef struct {
    jrpc_buf_t got;  /* messages received, each followed by '|' */
    int lost;        /* on_lost calls */
    const char *why; /* the last one's reason */
} sink_t;

static void on_msg(jrpc__wsc_t *w, const char *p, size_t n)
{
    sink_t *s = w->data;
    jrpc_buf_append(&s->got, p, n);
    jrpc_buf_append(&s->got, "|", 1);
}

static void on_lost(jrpc__wsc_t *w, int was_open, const char *why)
{
    sink_t *s = w->data;
    assert_true(was_open);
    s->lost++;
    s->why = why;
}

/* An unmasked server frame of `op` (fin or not) with payload p[0..n) appended to out. */
static void frame(jrpc_buf_t *out, int fin, int op, const char *p, size_t n)
{
    unsigned char h[10];
    size_t hl = 2;
    h[0] = (unsigned char)((fin ? 0x80 : 0) | op);
    if (n < 126) {
        h[1] = (unsigned char)n;
    } else if (n <= 0xffff) {
        h[1] = 126;
        h[2] = (unsigned char)(n >> 8);
        h[3] = (unsigned char)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    jrpc_buf_append(out, h, hl);
    jrpc_buf_append(out, p, n);
}

/* Feeds in[0..n) to an open client in two reads split at `cut`; returns what it saw. */
static void feed(const char *in, size_t n, size_t cut, size_t max_message, sink_t *s)
{
    jrpc__wsc_t w;
    memset(&w, 0, sizeof w);
    jrpc_buf_init(&w.rx);
    jrpc_buf_init(&w.msg);
    w.state = WSC_OPEN;
    w.max_message = max_message;
    w.on_msg = on_msg;
    w.on_lost = on_lost;
    w.data = s;
    size_t parts[2] = {cut, n - cut};
    const char *p = in;
    for (int i = 0; i < 2 && w.state == WSC_OPEN; i++) {
        jrpc_buf_append(&w.rx, p, parts[i]);
        p += parts[i];
        wsc_frames(&w);
    }
    jrpc_buf_free(&w.rx);
    jrpc_buf_free(&w.msg);
}

static void test_frames_split_everywhere(void **state)
{
    (void)state;
    char *mid = malloc(300), *large = malloc(70000);
    memset(mid, 'm', 300);
    memset(large, 'L', 70000);
    jrpc_buf_t in, want;
    jrpc_buf_init(&in);
    jrpc_buf_init(&want);
    frame(&in, 1, 0x1, "hello", 5);
    frame(&in, 0, 0x1, "ab", 2);
    frame(&in, 1, 0xA, "", 0); /* a pong between fragments is skipped */
    frame(&in, 0, 0x0, "c", 1);
    frame(&in, 1, 0x0, "d", 1);
    frame(&in, 1, 0x1, mid, 300);
    frame(&in, 1, 0x2, "", 0);
    frame(&in, 1, 0x1, large, 70000);
    jrpc_buf_appendz(&want, "hello|abcd|");
    jrpc_buf_append(&want, mid, 300);
    jrpc_buf_appendz(&want, "||");
    jrpc_buf_append(&want, large, 70000);
    jrpc_buf_appendz(&want, "|");
    /* Every cut in the small frames, and a stride through the large one. */
    for (size_t cut = 0; cut <= in.len; cut += cut < 400 ? 1 : 997) {
        sink_t s = {.lost = 0};
        jrpc_buf_init(&s.got);
        feed(in.ptr, in.len, cut, 1 << 20, &s);
        assert_int_equal(s.lost, 0);
        assert_int_equal(s.got.len, want.len);
        assert_memory_equal(s.got.ptr, want.ptr, want.len);
        jrpc_buf_free(&s.got);
    }
    jrpc_buf_free(&in);
    jrpc_buf_free(&want);
    free(mid);
    free(large);
}

static void refused(const char *in, size_t n, size_t max_message, const char *why_part)
{
    sink_t s = {.lost = 0};
    jrpc_buf_init(&s.got);
    feed(in, n, n, max_message, &s);
    assert_int_equal(s.lost, 1);
    assert_non_null(strstr(s.why, why_part));
    assert_int_equal(s.got.len, 0);
    jrpc_buf_free(&s.got);
}

static void test_frames_refused(void **state)
{
    (void)state;
    /* Masked (a server must not mask), reserved bits, unknown opcode. */
    refused("\x81\x85\x00\x00\x00\x00hello", 11, 100, "masked");
    refused("\xc1\x05hello", 7, 100, "reserved");
    refused("\x83\x00", 2, 100, "opcode");
    /* Past max_message: a whole frame, and fragments that add up past it. */
    jrpc_buf_t in;
    jrpc_buf_init(&in);
    char big[200];
    memset(big, 'x', sizeof big);
    frame(&in, 1, 0x1, big, 101);
    refused(in.ptr, in.len, 100, "max_ws_message");
    in.len = 0;
    frame(&in, 0, 0x1, big, 60);
    frame(&in, 1, 0x0, big, 60);
    refused(in.ptr, in.len, 100, "max_ws_message");
    /* A control frame may not be fragmented or longer than 125 bytes. */
    in.len = 0;
    frame(&in, 1, 0x9, big, 126);
    refused(in.ptr, in.len, 1000, "max_ws_message");
    /* A new message before the fragmented one ended. */
    in.len = 0;
    frame(&in, 0, 0x1, "ab", 2);
    frame(&in, 1, 0x1, "cd", 2);
    refused(in.ptr, in.len, 100, "interleaved");
    jrpc_buf_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_check),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_frames_split_everywhere),
        cmocka_unit_test(test_frames_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
