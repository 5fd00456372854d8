/* SPDX-License-Identifier: MIT */
/* Unit tests of the WebSocket wire (src/ws/session.c and src/ws/handshake.c): client byte streams
 * fed split at every byte, each piece placed right before a PROT_NONE page so any over-read
 * faults, with the messages and the frames sent back checked exactly; the close codes of every
 * kind of protocol error; pausing; UTF-8 at its boundaries; the handshake's verdicts with header
 * values arriving in pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ws/wire.h"

/* ---- Guarded input --------------------------------------------------------------------------- */

/* n bytes of p copied to the very end of a readable mapping followed by a PROT_NONE page. */
typedef struct {
    char *map;
    size_t map_len;
    char *p;
} guard_t;

static guard_t guard(const void *p, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (n + page - 1) / page + 1;
    guard_t g;
    g.map_len = (pages + 1) * page;
    g.map = mmap(NULL, g.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g.map != MAP_FAILED);
    assert_int_equal(mprotect(g.map + pages * page, page, PROT_NONE), 0);
    g.p = g.map + pages * page - n;
    memcpy(g.p, p, n);
    return g;
}

static void unguard(guard_t *g)
{
    munmap(g->map, g->map_len);
}

/* ---- Client frames --------------------------------------------------------------------------- */

typedef struct {
    uint8_t b[1 << 16];
    size_t n;
} bytes_t;

static void put_frame(bytes_t *o, unsigned opcode, int fin, const void *payload, size_t len,
                      int masked, unsigned rsv)
{
    static const uint8_t key[4] = {0xa1, 0x5e, 0x07, 0x9c};
    o->b[o->n++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | opcode);
    uint8_t m = masked ? 0x80 : 0;
    if (len < 126) {
        o->b[o->n++] = (uint8_t)(m | len);
    } else {
        o->b[o->n++] = m | 126;
        o->b[o->n++] = (uint8_t)(len >> 8);
        o->b[o->n++] = (uint8_t)len;
    }
    if (masked) {
        memcpy(o->b + o->n, key, 4);
        o->n += 4;
    }
    for (size_t i = 0; i < len; i++)
        o->b[o->n++] = ((const uint8_t *)payload)[i] ^ (masked ? key[i & 3] : 0);
}

static void put(bytes_t *o, unsigned opcode, int fin, const char *s)
{
    put_frame(o, opcode, fin, s, strlen(s), 1, 0);
}

/* ---- A session and what it gave -------------------------------------------------------------- */

typedef struct {
    jrpc__ws_session_t s;
    char msgs[16][256]; /* messages, NUL-terminated, binary ones prefixed "B:" */
    size_t nmsgs;
    uint8_t out[4096]; /* frames sent back */
    size_t out_len;
    int pause_each; /* pause after every message */
} run_t;

static void on_message(void *ud, char *msg, size_t len, int binary)
{
    run_t *r = ud;
    assert_true(r->nmsgs < 16 && len < 200);
    snprintf(r->msgs[r->nmsgs++], 256, "%s%.*s", binary ? "B:" : "", (int)len, msg);
    free(msg);
    if (r->pause_each)
        r->s.paused = 1;
}

static int on_output(void *ud, const uint8_t *p, size_t n)
{
    run_t *r = ud;
    assert_true(r->out_len + n <= sizeof r->out);
    memcpy(r->out + r->out_len, p, n);
    r->out_len += n;
    return 0;
}

static const jrpc__ws_session_cbs_t cbs = {on_message, on_output};

static void run_init(run_t *r, size_t max)
{
    memset(r, 0, sizeof(*r));
    jrpc__ws_session_init(&r->s, max, &cbs, r);
}

/* Feeds b split at `cut` (both pieces guarded), resuming after pauses. */
static void run_feed(run_t *r, const bytes_t *b, size_t cut)
{
    size_t parts[2][2] = {{0, cut}, {cut, b->n - cut}};
    for (int i = 0; i < 2; i++) {
        size_t off = 0, len = parts[i][1];
        guard_t g = guard(b->b + parts[i][0], len);
        while (off < len || (len == 0 && off == 0)) {
            r->s.paused = 0;
            size_t used = jrpc__ws_session_feed(&r->s, g.p + off, len - off);
            off += used;
            if (len == 0)
                break;
        }
        unguard(&g);
    }
}

/* The frames sent back, as "PONG:hi CLOSE:1000:bye" text. */
static void describe_out(const run_t *r, char *buf, size_t cap)
{
    size_t o = 0, w = 0;
    buf[0] = '\0';
    while (o + 2 <= r->out_len) {
        uint8_t op = r->out[o] & 15;
        size_t len = r->out[o + 1];
        assert_int_equal(r->out[o] & 0xf0, 0x80); /* FIN, no RSV */
        assert_true(len <= 125);                  /* unmasked control frames only */
        const uint8_t *p = r->out + o + 2;
        int n = 0;
        if (op == 0xa)
            n = snprintf(buf + w, cap - w, "%sPONG:%.*s", w ? " " : "", (int)len, p);
        else if (op == 0x9)
            n = snprintf(buf + w, cap - w, "%sPING", w ? " " : "");
        else if (op == 0x8 && len >= 2)
            n = snprintf(buf + w, cap - w, "%sCLOSE:%u:%.*s", w ? " " : "", p[0] << 8 | p[1],
                         (int)len - 2, p + 2);
        else if (op == 0x8)
            n = snprintf(buf + w, cap - w, "%sCLOSE", w ? " " : "");
        else
            fail_msg("unexpected opcode %u", op);
        w += (size_t)n;
        o += 2 + len;
    }
    assert_int_equal(o, r->out_len);
}

/* ---- Tests: the session ---------------------------------------------------------------------- */

static void test_split_every_byte(void **state)
{
    (void)state;
    bytes_t b = {.n = 0};
    put(&b, 0x1, 0, "{\"jsonrpc\":\"2.0\",");
    put(&b, 0x9, 1, "hi"); /* a ping between fragments */
    put(&b, 0x0, 1, "\"method\":\"x\"}");
    put(&b, 0x2, 1, "[1,2]");
    put(&b, 0x1, 1, "");                             /* an empty message */
    put(&b, 0x1, 1, "caf\xc3\xa9 \xf0\x9f\x98\x80"); /* 2- and 4-byte UTF-8 */
    put_frame(&b, 0x8, 1,
              "\x03\xe8"
              "bye",
              5, 1, 0);
    put(&b, 0x1, 1, "after the close: dropped");
    for (size_t cut = 0; cut <= b.n; cut++) {
        run_t r;
        char out[512];
        run_init(&r, 1024);
        r.pause_each = cut & 1;
        run_feed(&r, &b, cut);
        assert_int_equal(r.nmsgs, 4);
        assert_string_equal(r.msgs[0], "{\"jsonrpc\":\"2.0\",\"method\":\"x\"}");
        assert_string_equal(r.msgs[1], "B:[1,2]");
        assert_string_equal(r.msgs[2], "");
        assert_string_equal(r.msgs[3], "caf\xc3\xa9 \xf0\x9f\x98\x80");
        describe_out(&r, out, sizeof out);
        assert_string_equal(out, "PONG:hi CLOSE:1000:bye"); /* the client's code echoed */
        assert_true(jrpc__ws_session_close_received(&r.s));
        assert_true(jrpc__ws_session_close_sent(&r.s));
        assert_false(jrpc__ws_session_reading(&r.s));
        jrpc__ws_session_free(&r.s);
    }
}

/* One bad frame after a good message: the message is delivered, then the expected close. */
static void expect_close(const bytes_t *bad, size_t max, const char *want)
{
    bytes_t b = {.n = 0};
    put(&b, 0x1, 1, "ok");
    memcpy(b.b + b.n, bad->b, bad->n);
    b.n += bad->n;
    put(&b, 0x1, 1, "never");
    for (size_t cut = 0; cut <= b.n; cut++) {
        run_t r;
        char out[512];
        run_init(&r, max);
        run_feed(&r, &b, cut);
        assert_int_equal(r.nmsgs, 1);
        assert_string_equal(r.msgs[0], "ok");
        describe_out(&r, out, sizeof out);
        if (strncmp(out, want, strlen(want)) != 0)
            fail_msg("cut %zu: got \"%s\", want \"%s…\"", cut, out, want);
        assert_false(jrpc__ws_session_reading(&r.s));
        jrpc__ws_session_free(&r.s);
    }
}

static void test_protocol_errors(void **state)
{
    (void)state;
    bytes_t b;
    uint8_t raw[] = {0x81, 0xfe, 0x00, 0x05, 0, 0, 0, 0, 'a', 'b', 'c', 'd', 'e'};
#define CASE(build, max, want)                                                                     \
    do {                                                                                           \
        b.n = 0;                                                                                   \
        build;                                                                                     \
        expect_close(&b, max, want);                                                               \
    } while (0)
    CASE(put_frame(&b, 0x1, 1, "x", 1, 0, 0), 64, "CLOSE:1002:client frames must be masked");
    CASE(put_frame(&b, 0x1, 1, "x", 1, 1, 4), 64, "CLOSE:1002:reserved bits");
    CASE(put(&b, 0x3, 1, "x"), 64, "CLOSE:1002:reserved opcode");
    CASE(put(&b, 0x0, 1, "x"), 64, "CLOSE:1002:continuation frame");
    CASE((put(&b, 0x1, 0, "a"), put(&b, 0x1, 1, "b")), 64, "CLOSE:1002:new message");
    CASE(put(&b, 0x9, 0, "p"), 64, "CLOSE:1002:malformed frame header"); /* fragmented ping */
    CASE(put_frame(&b, 0x8, 1, "\x03", 1, 1, 0), 64, "CLOSE:1002:close frame with a 1-byte");
    CASE(put_frame(&b, 0x8, 1, "\x03\xed", 2, 1, 0), 64, "CLOSE:1002:invalid close code");
    CASE(put_frame(&b, 0x8, 1, "\x03\xe8\xff", 3, 1, 0), 64, "CLOSE:1007");
    CASE(put(&b, 0x1, 1, "\xc0\xaf"), 64, "CLOSE:1007");         /* overlong '/' */
    CASE(put(&b, 0x1, 1, "\xed\xa0\x80"), 64, "CLOSE:1007");     /* a surrogate */
    CASE(put(&b, 0x1, 1, "\xf4\x90\x80\x80"), 64, "CLOSE:1007"); /* past U+10FFFF */
    CASE(put(&b, 0x1, 1, "abc\xe2\x82"), 64, "CLOSE:1007");      /* cut inside a character */
    CASE((put(&b, 0x1, 0, "0123456789"), put(&b, 0x0, 1, "0123456789")), 15,
         "CLOSE:1009:message exceeds 15 bytes"); /* only the fragments together are too big */
    CASE(put(&b, 0x2, 1, "0123456789abcdef"), 15, "CLOSE:1009");
    CASE((memcpy(b.b, raw, sizeof raw), b.n = sizeof raw), 64,
         "CLOSE:1002:malformed");                          /* 126 for 5 */
    CASE(put_frame(&b, 0x8, 1, "", 0, 1, 0), 64, "CLOSE"); /* empty close: echoed empty */
#undef CASE
}

static void test_utf8_valid_edges(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "\x7f",
        "\xc2\x80",
        "\xdf\xbf",
        "\xe0\xa0\x80",
        "\xed\x9f\xbf",
        "\xee\x80\x80",
        "\xef\xbf\xbf",
        "\xf0\x90\x80\x80",
        "\xf4\x8f\xbf\xbf",
        "plain ASCII longer than eight",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        bytes_t b = {.n = 0};
        put(&b, 0x1, 1, ok[i]);
        run_t r;
        run_init(&r, 64);
        run_feed(&r, &b, b.n / 2);
        assert_int_equal(r.nmsgs, 1);
        assert_string_equal(r.msgs[0], ok[i]);
        assert_int_equal(r.out_len, 0);
        jrpc__ws_session_free(&r.s);
    }
}

static void test_pause_keeps_bytes(void **state)
{
    (void)state;
    bytes_t b = {.n = 0};
    for (int i = 0; i < 3; i++)
        put(&b, 0x1, 1, "m");
    run_t r;
    run_init(&r, 64);
    r.s.paused = 1;
    assert_int_equal(jrpc__ws_session_feed(&r.s, (const char *)b.b, b.n), 0);
    assert_int_equal(r.nmsgs, 0);
    r.s.paused = 0;
    assert_int_equal(jrpc__ws_session_feed(&r.s, (const char *)b.b, b.n), b.n);
    assert_int_equal(r.nmsgs, 3);
    jrpc__ws_session_free(&r.s);
}

/* A 70000-byte text message (the 64-bit length form) in two fragments, fed in pieces of sizes
 * that put every mask phase at a piece's start: the message arrives byte for byte. */
static uint8_t long_msg[70000];
static size_t long_len;

static void on_long(void *ud, char *msg, size_t len, int binary)
{
    (void)ud;
    assert_false(binary);
    assert_true(len <= sizeof long_msg);
    memcpy(long_msg, msg, len);
    long_len = len;
    free(msg);
}

static void test_long_message_any_split(void **state)
{
    (void)state;
    static const uint8_t key[4] = {0x3c, 0x91, 0x00, 0xe7};
    static uint8_t want[70000], wire[70000 + 64];
    for (size_t i = 0; i < sizeof want; i++)
        want[i] = (uint8_t)("{\"jsonrpc\":\"2.0\"}[],"[i % 20]);
    size_t n = 0, first = 1001; /* fragment 1: 16-bit length; fragment 2: 64-bit */
    wire[n++] = 0x01;
    wire[n++] = 0x80 | 126;
    wire[n++] = (uint8_t)(first >> 8);
    wire[n++] = (uint8_t)first;
    memcpy(wire + n, key, 4);
    n += 4;
    for (size_t i = 0; i < first; i++)
        wire[n++] = want[i] ^ key[i & 3];
    uint64_t rest = sizeof want - first;
    wire[n++] = 0x80;
    wire[n++] = 0x80 | 127;
    for (int i = 0; i < 8; i++)
        wire[n++] = (uint8_t)(rest >> (56 - 8 * i));
    memcpy(wire + n, key, 4);
    n += 4;
    for (size_t i = 0; i < rest; i++)
        wire[n++] = want[first + i] ^ key[i & 3];
    static const jrpc__ws_session_cbs_t long_cbs = {on_long, on_output};
    for (size_t piece = 1; piece <= 13; piece += 2) {
        run_t r;
        memset(&r, 0, sizeof r);
        jrpc__ws_session_init(&r.s, sizeof want, &long_cbs, &r);
        long_len = 0;
        for (size_t off = 0; off < n;) {
            size_t k = piece * 997 < n - off ? piece * 997 : n - off; /* 997: odd, prime */
            if (off < 16)
                k = piece < n - off ? piece : n - off; /* the headers byte by byte, too */
            assert_int_equal(jrpc__ws_session_feed(&r.s, (const char *)wire + off, k), k);
            off += k;
        }
        assert_int_equal(long_len, sizeof want);
        assert_memory_equal(long_msg, want, sizeof want);
        assert_int_equal(r.out_len, 0);
        jrpc__ws_session_free(&r.s);
    }
}

static void test_close_and_ping_from_us(void **state)
{
    (void)state;
    run_t r;
    char out[256];
    run_init(&r, 64);
    jrpc__ws_session_ping(&r.s);
    jrpc__ws_session_close(&r.s, 1001, "server shutting down");
    jrpc__ws_session_close(&r.s, 1000, "second: ignored");
    jrpc__ws_session_ping(&r.s); /* nothing after a close */
    describe_out(&r, out, sizeof out);
    assert_string_equal(out, "PING CLOSE:1001:server shutting down");
    assert_int_equal(jrpc__ws_session_code_sent(&r.s), 1001);
    assert_true(jrpc__ws_session_reading(&r.s)); /* the client's close can still come */
    jrpc__ws_session_free(&r.s);
}

/* What is pending is counted from the first byte of a message (or lone control frame, or frame
 * header) to its last, across fragments and the control frames between them, and dated by the
 * clock of the feed it began in: fed a byte at a time, with the clock the byte's offset. */
static void test_pending(void **state)
{
    (void)state;
    bytes_t b = {.n = 0};
    put(&b, 0x1, 1, "hello"); /* [0, 11) */
    size_t b0 = b.n;
    put(&b, 0x1, 0, "ab"); /* [11, 19): a fragment ... */
    put(&b, 0x9, 1, "");   /* [19, 25): a ping between fragments ... */
    put(&b, 0x0, 1, "cd"); /* [25, 33): ... and the last one */
    size_t b1 = b.n;
    put(&b, 0xa, 1, "p"); /* [33, 40): a lone pong */
    run_t r;
    run_init(&r, 64);
    uint64_t since = 999;
    assert_int_equal(jrpc__ws_session_pending(&r.s, &since), 0);
    assert_int_equal(since, 999); /* left alone between messages */
    for (size_t i = 0; i < b.n; i++) {
        r.s.clock = 1000 + i;
        assert_int_equal(jrpc__ws_session_feed(&r.s, (const char *)b.b + i, 1), 1);
        size_t start = i < b0 ? 0 : i < b1 ? b0 : b1;
        size_t end = i < b0 ? b0 : i < b1 ? b1 : b.n;
        uint64_t got = jrpc__ws_session_pending(&r.s, &since);
        if (i + 1 == end) {
            assert_int_equal(got, 0);
        } else {
            assert_int_equal(got, i + 1 - start);
            assert_int_equal(since, 1000 + start);
        }
    }
    assert_int_equal(r.nmsgs, 2);

    /* One feed ends a message and begins the next: only the new one's bytes and clock count. */
    r.s.clock = 5000;
    assert_int_equal(jrpc__ws_session_feed(&r.s, (const char *)b.b, 5), 5);
    assert_int_equal(jrpc__ws_session_pending(&r.s, &since), 5);
    assert_int_equal(since, 5000);
    r.s.clock = 6000;
    assert_int_equal(jrpc__ws_session_feed(&r.s, (const char *)b.b + 5, b0 + 3 - 5), b0 + 3 - 5);
    assert_int_equal(jrpc__ws_session_pending(&r.s, &since), 3);
    assert_int_equal(since, 6000);
    assert_int_equal(r.nmsgs, 3);

    /* Giving up: the close goes out, the half message is freed, nothing more is parsed. */
    jrpc__ws_session_fail(&r.s, 1008, "too slow");
    char out[256];
    describe_out(&r, out, sizeof out);
    assert_string_equal(out, "PONG: CLOSE:1008:too slow");
    assert_null(r.s.msg);
    assert_int_equal(jrpc__ws_session_pending(&r.s, NULL), 0);
    assert_false(jrpc__ws_session_reading(&r.s));
    assert_int_equal(jrpc__ws_session_feed(&r.s, (const char *)b.b, b0), b0);
    assert_int_equal(r.nmsgs, 3);
    assert_int_equal(jrpc__ws_session_code_sent(&r.s), 1008);
    jrpc__ws_session_free(&r.s);
}

static void test_frame_header(void **state)
{
    (void)state;
    uint8_t h[JRPC__WS_HEAD_MAX];
    assert_int_equal(jrpc__ws_frame_header(h, JRPC__WS_TEXT, 125), 2);
    assert_memory_equal(h, "\x81\x7d", 2);
    assert_int_equal(jrpc__ws_frame_header(h, JRPC__WS_BINARY, 126), 4);
    assert_memory_equal(h, "\x82\x7e\x00\x7e", 4);
    assert_int_equal(jrpc__ws_frame_header(h, JRPC__WS_TEXT, 65535), 4);
    assert_int_equal(jrpc__ws_frame_header(h, JRPC__WS_TEXT, 65536), 10);
    assert_memory_equal(h, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
}

/* ---- Tests: the handshake -------------------------------------------------------------------- */

/* Feeds "name: value" lines the way src/http does, each value in pieces of `piece` bytes. */
static unsigned verdict(const char *const *lines, size_t piece, int conn_upgrade, int http11,
                        int body, jrpc__ws_hs_t *hs)
{
    jrpc__ws_hs_reset(hs);
    for (size_t i = 0; lines[i] != NULL; i++) {
        const char *colon = strchr(lines[i], ':');
        size_t nlen = (size_t)(colon - lines[i]);
        char lname[24];
        for (size_t k = 0; k < nlen && k < sizeof lname; k++)
            lname[k] = (char)(lines[i][k] | (lines[i][k] >= 'A' && lines[i][k] <= 'Z' ? 32 : 0));
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        jrpc__ws_hs_name(hs, lname, nlen > sizeof lname ? sizeof lname + 1 : nlen);
        for (size_t off = 0, n = strlen(v); off < n; off += piece)
            jrpc__ws_hs_value(hs, v + off, n - off < piece ? n - off : piece);
        jrpc__ws_hs_end(hs);
    }
    return jrpc__ws_hs_verdict(hs, conn_upgrade, http11, body);
}

static void test_handshake(void **state)
{
    (void)state;
    jrpc__ws_hs_t hs;
    const char *valid[] = {"Host: x",
                           "Upgrade: websocket",
                           "Connection: Upgrade",
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                           "Sec-WebSocket-Version: 13",
                           NULL};
    for (size_t piece = 1; piece <= 30; piece++)
        assert_int_equal(verdict(valid, piece, 1, 1, 0, &hs), 101);
    char answer[JRPC__WS_101_MAX];
    size_t n = jrpc__ws_hs_answer(&hs, 0, answer);
    answer[n] = '\0';
    assert_non_null(strstr(answer, "HTTP/1.1 101 Switching Protocols\r\n"));
    /* RFC 6455 §1.3's own example. */
    assert_non_null(strstr(answer, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"));

    assert_int_equal(verdict(valid, 7, 0, 1, 0, &hs), 400); /* no Connection: upgrade */
    assert_int_equal(verdict(valid, 7, 1, 0, 0, &hs), 400); /* HTTP/1.0 */
    assert_int_equal(verdict(valid, 7, 1, 1, 1, &hs), 400); /* a body */
    const char *v8[] = {"Upgrade: websocket",
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 8",
                        NULL};
    assert_int_equal(verdict(v8, 3, 1, 1, 0, &hs), 426);
    const char *nokey[] = {"Upgrade: websocket", "Sec-WebSocket-Version: 13", NULL};
    assert_int_equal(verdict(nokey, 3, 1, 1, 0, &hs), 400);
    const char *badkey[] = {"Upgrade: websocket", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==",
                            "Sec-WebSocket-Version: 13", NULL};
    assert_int_equal(verdict(badkey, 3, 1, 1, 0, &hs), 400); /* stray bits in the last digit */
    const char *twokeys[] = {
        "Upgrade: websocket", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", NULL};
    assert_int_equal(verdict(twokeys, 3, 1, 1, 0, &hs), 400);
    const char *h2c[] = {"Upgrade: h2c", "Sec-WebSocket-Version: 13", NULL};
    assert_int_equal(verdict(h2c, 3, 1, 1, 0, &hs), 0); /* not ours: a plain GET */
    const char *list[] = {
        "UPGRADE: h2c, WebSocket ",
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==  ", "Sec-WebSocket-Version: 13 ", NULL};
    assert_int_equal(verdict(list, 2, 1, 1, 0, &hs), 101);
}

/* permessage-deflate negotiated (rsv1_ok): RSV1 on a message's first frame marks it compressed
 * and the session passes the payload on unchecked (it is not text yet); anywhere else it is
 * still a protocol error. */
static void test_deflate_rsv1(void **state)
{
    (void)state;
    bytes_t b = {.n = 0};
    put_frame(&b, 0x1, 0, "\xff\x00", 2, 1, 4); /* compressed bytes, not UTF-8: no 1007 */
    put_frame(&b, 0x0, 1, "\xfe", 1, 1, 0);
    for (size_t cut = 0; cut <= b.n; cut++) {
        run_t r;
        run_init(&r, 1024);
        r.s.rsv1_ok = 1;
        run_feed(&r, &b, cut);
        assert_int_equal(r.nmsgs, 1);
        assert_true(r.s.msg_deflated);
        assert_int_equal(r.out_len, 0);
        assert_true(jrpc__ws_session_reading(&r.s));
        jrpc__ws_session_free(&r.s);
    }
    const struct {
        unsigned op, fin, rsv;
        int first_plain; /* a plain first fragment goes before */
    } bad[] = {{0x0, 1, 4, 1}, {0x9, 1, 4, 0}, {0x1, 1, 2, 0}, {0x1, 1, 6, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run_t r;
        char out[512];
        b.n = 0;
        if (bad[i].first_plain)
            put_frame(&b, 0x1, 0, "a", 1, 1, 0);
        put_frame(&b, bad[i].op, bad[i].fin, "x", 1, 1, bad[i].rsv);
        run_init(&r, 1024);
        r.s.rsv1_ok = 1;
        run_feed(&r, &b, 0);
        describe_out(&r, out, sizeof out);
        assert_non_null(strstr(out, "CLOSE:1002:reserved bits"));
        jrpc__ws_session_free(&r.s);
    }
    assert_true(jrpc__ws_utf8_valid("caf\xc3\xa9", 5));
    assert_false(jrpc__ws_utf8_valid("caf\xc3", 4));
}

/* Sec-WebSocket-Extensions offers (RFC 7692 §7.1): the first valid one is taken and answered. */
static void test_deflate_offers(void **state)
{
    (void)state;
    const struct {
        const char *offer, *answer; /* answer NULL: declined */
    } cases[] = {
        {"permessage-deflate", "permessage-deflate"},
        {"permessage-deflate; client_max_window_bits", "permessage-deflate"},
        {"permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
         "server_max_window_bits=10; client_max_window_bits=9",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
         "server_max_window_bits=10; client_max_window_bits=9"},
        {"permessage-deflate; client_max_window_bits=\"15\"",
         "permessage-deflate; client_max_window_bits=15"},
        {"permessage-deflate; server_max_window_bits=8", NULL},
        {"permessage-deflate; server_max_window_bits=09", NULL},
        {"permessage-deflate; server_max_window_bits", NULL},
        {"permessage-deflate; server_no_context_takeover=1", NULL},
        {"permessage-deflate; client_max_window_bits=7", NULL},
        {"permessage-deflate; x", NULL},
        {"permessage-deflate; server_no_context_takeover; server_no_context_takeover", NULL},
        {"deflate-frame, permessage-deflate; server_max_window_bits=16, permessage-deflate; "
         "server_max_window_bits=12",
         "permessage-deflate; server_max_window_bits=12"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jrpc__ws_hs_t hs;
        jrpc__ws_hs_reset(&hs);
        memcpy(hs.key, "dGhlIHNhbXBsZSBub25jZQ==", JRPC__WS_KEY_LEN);
        hs.key_len = JRPC__WS_KEY_LEN;
        jrpc__ws_hs_extensions(&hs, cases[i].offer, strlen(cases[i].offer));
        char answer[JRPC__WS_101_MAX + 1];
        size_t n = jrpc__ws_hs_answer(&hs, UINT_MAX, answer); /* the longest cap too */
        assert_true(n <= JRPC__WS_101_MAX);
        answer[n] = '\0';
        assert_non_null(strstr(answer, "\r\nJrpc-Max-Batch: 4294967295\r\n"));
        const char *ext = strstr(answer, "Sec-WebSocket-Extensions: ");
        if (cases[i].answer == NULL) {
            if (ext != NULL)
                fail_msg("offer \"%s\" accepted: %s", cases[i].offer, ext);
            continue;
        }
        assert_non_null(ext);
        ext += strlen("Sec-WebSocket-Extensions: ");
        if (strncmp(ext, cases[i].answer, strlen(cases[i].answer)) != 0 ||
            strncmp(ext + strlen(cases[i].answer), "\r\n\r\n", 4) != 0)
            fail_msg("offer \"%s\": answered %s", cases[i].offer, ext);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_every_byte),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_utf8_valid_edges),
        cmocka_unit_test(test_pause_keeps_bytes),
        cmocka_unit_test(test_long_message_any_split),
        cmocka_unit_test(test_close_and_ping_from_us),
        cmocka_unit_test(test_pending),
        cmocka_unit_test(test_frame_header),
        cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_deflate_rsv1),
        cmocka_unit_test(test_deflate_offers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
