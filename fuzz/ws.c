/* SPDX-License-Identifier: MIT */
/* ws.c — libFuzzer target for the WebSocket wire: the opening handshake as src/http feeds it
 * (src/ws/handshake.c) and the framing session (src/ws/session.c). The first input
 * byte picks the path and its knobs; the rest is the input.
 *
 * Handshake: the input is header lines "Name: value"; each value is fed in pieces, the verdict
 * (0, 101, 400, 426) must equal a reference verdict computed here from the same lines, and a 101
 * answer must carry the RFC 6455 accept key.
 *
 * Frames: the input is what a client sends after the 101, fed to a session in pieces whose sizes
 * come from the knob byte, with the session paused and resumed on the way. An independent decoder
 * below (RFC 6455 §5, its own UTF-8 check written differently) reads the same bytes; the session
 * must deliver exactly its messages (same order, type and bytes), answer each of its pings with
 * the same payload, and close with the code it expects: 1002 for protocol errors, 1007 for
 * invalid UTF-8, 1009 past the size limit, the client's own code echoed, or no close at all while
 * the input is merely incomplete. Every frame the session writes must be a
 * final, unmasked control frame of at most 125 bytes, none after a close. */
#include "ws/wire.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_ws: check failed at line %d: %s\n", __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- Handshake ------------------------------------------------------------------------------- */

/* What the verdict depends on, gathered straight from the lines (not through jrpc__ws_hs_*). */
typedef struct {
    int upgrade; /* some Upgrade list named websocket (first 48 value bytes, as documented) */
    int keys;    /* Sec-WebSocket-Key headers */
    int key_ok;  /* the last key is 24 base64 digits of 16 bytes, blanks after it aside */
    int version; /* 0 none, 1 "13", 2 other (the last header wins) */
    char key[24];
} ref_hs_t;

static int ieq(const char *a, size_t n, const char *b)
{
    if (strlen(b) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = a[i] >= 'A' && a[i] <= 'Z' ? (char)(a[i] + 32) : a[i];
        if (ch != b[i])
            return 0;
    }
    return 1;
}

static int b64digit(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '+' || ch == '/';
}

static void ref_header(ref_hs_t *r, const char *name, size_t nlen, const char *val, size_t vlen)
{
    if (ieq(name, nlen, "upgrade")) {
        size_t n = vlen < JRPC__WS_VAL_MAX ? vlen : JRPC__WS_VAL_MAX;
        size_t i = 0;
        while (i < n) {
            while (i < n && (val[i] == ' ' || val[i] == '\t' || val[i] == ','))
                i++;
            size_t s = i;
            while (i < n && val[i] != ',')
                i++;
            size_t e = i;
            while (e > s && (val[e - 1] == ' ' || val[e - 1] == '\t'))
                e--;
            if (ieq(val + s, e - s, "websocket"))
                r->upgrade = 1;
        }
    } else if (ieq(name, nlen, "sec-websocket-key")) {
        r->keys++;
        size_t n = vlen;
        if (n <= JRPC__WS_KEY_LEN + 8)
            while (n > 0 && (val[n - 1] == ' ' || val[n - 1] == '\t'))
                n--;
        r->key_ok = n == 24 && val[22] == '=' && val[23] == '=' &&
                    strchr("AQgw", val[21]) != NULL && val[21] != '\0';
        for (int i = 0; i < 22 && r->key_ok; i++)
            r->key_ok = b64digit(val[i]);
        if (r->key_ok)
            memcpy(r->key, val, 24);
    } else if (ieq(name, nlen, "sec-websocket-version")) {
        size_t n = vlen < JRPC__WS_VAL_MAX ? vlen : JRPC__WS_VAL_MAX;
        while (n > 0 && (val[n - 1] == ' ' || val[n - 1] == '\t'))
            n--;
        r->version = n == 2 && val[0] == '1' && val[1] == '3' ? 1 : 2;
    }
}

static unsigned ref_verdict(const ref_hs_t *r, int conn_upgrade, int http11, int has_body)
{
    if (!r->upgrade)
        return 0;
    if (!conn_upgrade || !http11 || has_body || r->keys != 1 || !r->key_ok || r->version == 0)
        return 400;
    return r->version == 1 ? 101 : 426;
}

static void fuzz_handshake(const uint8_t *data, size_t size, uint8_t knob)
{
    jrpc__ws_hs_t hs;
    ref_hs_t ref;
    memset(&ref, 0, sizeof ref);
    jrpc__ws_hs_reset(&hs);
    const char *p = (const char *)data, *end = p + size;
    size_t piece = (size_t)(knob >> 4) + 1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl != NULL ? nl : end;
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon != NULL && colon > p) {
            /* As src/http does: the name lower-cased, its first 24 bytes kept. */
            char lname[24];
            size_t nlen = (size_t)(colon - p);
            for (size_t i = 0; i < nlen && i < sizeof lname; i++)
                lname[i] = p[i] >= 'A' && p[i] <= 'Z' ? (char)(p[i] + 32) : p[i];
            const char *v = colon + 1;
            while (v < line_end && (*v == ' ' || *v == '\t'))
                v++; /* http-parser drops leading blanks */
            size_t vlen = (size_t)(line_end - v);
            jrpc__ws_hs_name(&hs, lname, nlen > sizeof lname ? sizeof lname + 1 : nlen);
            for (size_t off = 0; off < vlen; off += piece)
                jrpc__ws_hs_value(&hs, v + off, vlen - off < piece ? vlen - off : piece);
            jrpc__ws_hs_end(&hs);
            ref_header(&ref, p, nlen > sizeof lname ? sizeof lname + 1 : nlen, v, vlen);
        }
        p = nl != NULL ? nl + 1 : end;
    }
    int conn_upgrade = knob & 2, http11 = knob & 4, has_body = knob & 8;
    unsigned got = jrpc__ws_hs_verdict(&hs, conn_upgrade, http11, has_body);
    CHECK(got == ref_verdict(&ref, conn_upgrade, http11, has_body));
    if (got != 101)
        return;
    char answer[JRPC__WS_101_MAX];
    size_t n = jrpc__ws_hs_answer(&hs, 0, answer);
    CHECK(n <= sizeof answer);
    CHECK(n > 4 && memcmp(answer, "HTTP/1.1 101 ", 13) == 0);
    CHECK(memcmp(answer + n - 4, "\r\n\r\n", 4) == 0);
    /* The accept key, recomputed here from the reference's copy of the key. */
    unsigned char in[64], md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    memcpy(in, ref.key, 24);
    memcpy(in + 24, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    CHECK(EVP_Digest(in, 60, md, &md_len, EVP_sha1(), NULL) == 1 && md_len == 20);
    char accept[32];
    EVP_EncodeBlock((unsigned char *)accept, md, 20);
    const char *at = strstr(answer, "Sec-WebSocket-Accept: ");
    CHECK(at != NULL && memcmp(at + 22, accept, 28) == 0);
}

/* ---- Frames: the reference decoder ----------------------------------------------------------- */

/* Strict UTF-8, one byte at a time: no overlong forms, no surrogates, nothing past U+10FFFF. */
typedef struct {
    unsigned need; /* continuation bytes still expected */
    uint32_t cp;   /* code point so far */
    uint32_t min;  /* smallest code point the sequence may encode */
} utf8_t;

/* 0 ok, -1 invalid. */
static int utf8_byte(utf8_t *u, uint8_t b)
{
    if (u->need == 0) {
        if (b < 0x80)
            return 0;
        if (b >= 0xc2 && b < 0xe0) { /* C0 and C1 only start overlong forms */
            u->need = 1, u->cp = b & 0x1fu, u->min = 0x80;
        } else if (b >= 0xe0 && b < 0xf0) {
            u->need = 2, u->cp = b & 0x0fu, u->min = 0x800;
        } else if (b >= 0xf0 && b < 0xf5) {
            u->need = 3, u->cp = b & 0x07u, u->min = 0x10000;
        } else {
            return -1;
        }
        return 0;
    }
    if ((b & 0xc0) != 0x80)
        return -1;
    u->cp = (u->cp << 6) | (b & 0x3fu);
    u->need--;
    /* Reject as early as the bytes allow, as a DFA does: the second byte already tells an
     * overlong, surrogate or too-large sequence. */
    unsigned left = u->need;
    uint32_t lo = u->cp << (6 * left), hi = lo | ((1u << (6 * left)) - 1);
    if (hi < u->min || lo > 0x10ffff || (lo >= 0xd800 && hi <= 0xdfff) ||
        (left == 0 && u->cp >= 0xd800 && u->cp <= 0xdfff))
        return -1;
    return 0;
}

enum { REF_OPEN = 0, REF_ERROR, REF_CLOSE };

typedef struct {
    uint8_t *data;
    size_t len;
    int binary;
} msg_t;

typedef struct {
    msg_t *msgs;
    size_t nmsgs, cap;
} msgs_t;

static void msgs_add(msgs_t *l, const uint8_t *p, size_t n, int binary)
{
    if (l->nmsgs == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->msgs = realloc(l->msgs, l->cap * sizeof(*l->msgs));
        CHECK(l->msgs != NULL);
    }
    uint8_t *copy = malloc(n ? n : 1);
    CHECK(copy != NULL);
    if (n)
        memcpy(copy, p, n);
    l->msgs[l->nmsgs++] = (msg_t){copy, n, binary};
}

static void msgs_free(msgs_t *l)
{
    for (size_t i = 0; i < l->nmsgs; i++)
        free(l->msgs[i].data);
    free(l->msgs);
}

typedef struct {
    msgs_t msgs;   /* complete data messages */
    msgs_t pings;  /* complete pings (payloads) */
    int end;       /* REF_* */
    unsigned code; /* REF_ERROR: the close code; REF_CLOSE: the client's (0: none) */
} ref_t;

static int valid_close_code(unsigned code)
{
    return (code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) ||
           (code >= 3000 && code <= 4999);
}

static void ref_decode(ref_t *r, const uint8_t *p, size_t n, size_t max)
{
    size_t off = 0;
    int in_msg = 0, msg_binary = 0;
    utf8_t u8 = {0, 0, 0};
    uint8_t *msg = malloc(max ? max : 1);
    size_t msg_len = 0;
    uint8_t ctrl_buf[125];
    CHECK(msg != NULL);
#define STOP(e, c)                                                                                 \
    do {                                                                                           \
        r->end = (e);                                                                              \
        r->code = (c);                                                                             \
        goto done;                                                                                 \
    } while (0)
    for (;;) {
        size_t avail = n - off;
        if (avail < 2)
            STOP(REF_OPEN, 0);
        const uint8_t *f = p + off;
        int fin = f[0] >> 7, rsv = (f[0] >> 4) & 7, op = f[0] & 15, masked = f[1] >> 7;
        int ctrl = (op & 8) != 0;
        uint64_t len = f[1] & 0x7fu;
        size_t h = 2 + (len == 126 ? 2 : len == 127 ? 8 : 0) + (masked ? 4 : 0);
        if (avail < h)
            STOP(REF_OPEN, 0); /* a header is judged once all of it is in */
        if (ctrl && (len > 125 || !fin))
            STOP(REF_ERROR, 1002);
        if (len == 126) {
            len = (uint64_t)f[2] << 8 | f[3];
            if (len < 126)
                STOP(REF_ERROR, 1002);
        } else if (len == 127) {
            uint64_t l8 = 0;
            for (int i = 0; i < 8; i++)
                l8 = l8 << 8 | f[2 + i];
            len = l8;
            if (len < 65536 || (len >> 63) != 0)
                STOP(REF_ERROR, 1002);
        }
        uint8_t key[4] = {0, 0, 0, 0};
        if (masked)
            memcpy(key, f + h - 4, 4);
        size_t have = avail - h;
        if (rsv != 0 || !masked)
            STOP(REF_ERROR, 1002);
        if (op == 0) {
            if (!in_msg)
                STOP(REF_ERROR, 1002);
        } else if (op == 1 || op == 2) {
            if (in_msg)
                STOP(REF_ERROR, 1002);
        } else if (op < 8 || op > 10) {
            STOP(REF_ERROR, 1002);
        }
        if (!ctrl) {
            if (op != 0) {
                in_msg = 1;
                msg_binary = op == 2;
                msg_len = 0;
                memset(&u8, 0, sizeof u8);
            }
            if (len > max - msg_len)
                STOP(REF_ERROR, 1009);
        } else if (op == 8 && len == 1) {
            STOP(REF_ERROR, 1002);
        }
        size_t take = have < len ? have : (size_t)len;
        for (size_t i = 0; i < take; i++) {
            uint8_t b = f[h + i] ^ key[i & 3];
            if (!ctrl) {
                if (!msg_binary && utf8_byte(&u8, b) != 0)
                    STOP(REF_ERROR, 1007);
                msg[msg_len++] = b;
            } else {
                ctrl_buf[i] = b;
            }
        }
        if (take < len)
            STOP(REF_OPEN, 0);
        off += h + (size_t)len;
        if (!ctrl && fin) {
            if (!msg_binary && u8.need != 0)
                STOP(REF_ERROR, 1007);
            msgs_add(&r->msgs, msg, msg_len, msg_binary);
            in_msg = 0;
        } else if (op == 9) {
            msgs_add(&r->pings, ctrl_buf, (size_t)len, 0);
        } else if (op == 8) {
            if (len == 0)
                STOP(REF_CLOSE, 0);
            unsigned code = (unsigned)ctrl_buf[0] << 8 | ctrl_buf[1];
            if (!valid_close_code(code))
                STOP(REF_ERROR, 1002);
            utf8_t ru = {0, 0, 0};
            for (size_t i = 2; i < len; i++)
                if (utf8_byte(&ru, ctrl_buf[i]) != 0)
                    STOP(REF_ERROR, 1007);
            if (ru.need != 0)
                STOP(REF_ERROR, 1007);
            STOP(REF_CLOSE, code);
        }
    }
done:
#undef STOP
    free(msg);
}

/* ---- Frames: the session under test ---------------------------------------------------------- */

typedef struct {
    msgs_t msgs;
    uint8_t *out;
    size_t out_len, out_cap;
    jrpc__ws_session_t *s;
    unsigned pause_every; /* pause after every n-th message (0: never) */
    unsigned seen;
} harness_t;

static void on_message(void *ud, char *msg, size_t len, int binary)
{
    harness_t *h = ud;
    msgs_add(&h->msgs, (const uint8_t *)msg, len, binary);
    free(msg); /* the session handed it over */
    /* The frame header a server would answer with must decode to the same length. */
    uint8_t head[JRPC__WS_HEAD_MAX];
    size_t hl = jrpc__ws_frame_header(head, binary ? JRPC__WS_BINARY : JRPC__WS_TEXT, len);
    uint64_t dec = head[1] < 126 ? head[1] : 0;
    if (head[1] == 126)
        dec = (uint64_t)head[2] << 8 | head[3];
    else if (head[1] == 127)
        for (int i = 0; i < 8; i++)
            dec = dec << 8 | head[2 + i];
    CHECK(dec == len && hl == (len < 126 ? 2u : len <= 0xffff ? 4u : 10u));
    CHECK(head[0] == (binary ? 0x82 : 0x81));
    if (h->pause_every != 0 && ++h->seen % h->pause_every == 0)
        h->s->paused = 1;
}

static int on_output(void *ud, const uint8_t *p, size_t n)
{
    harness_t *h = ud;
    if (h->out_len + n > h->out_cap) {
        h->out_cap = (h->out_len + n) * 2;
        h->out = realloc(h->out, h->out_cap);
        CHECK(h->out != NULL);
    }
    memcpy(h->out + h->out_len, p, n);
    h->out_len += n;
    return 0;
}

static const jrpc__ws_session_cbs_t harness_cbs = {on_message, on_output};

static void fuzz_frames(const uint8_t *data, size_t size, uint8_t knob)
{
    /* Small limits, so that 1009 is reached by short inputs too. */
    size_t max = 1 + (size_t)(knob >> 1 & 0x1f) * 37;
    harness_t h;
    memset(&h, 0, sizeof h);
    h.pause_every = knob >> 6;
    jrpc__ws_session_t s;
    jrpc__ws_session_init(&s, max, &harness_cbs, &h);
    h.s = &s;

    /* Feed in pieces of 1 to 64 bytes from a little generator seeded by the input, resuming
     * after each pause with the bytes the session did not take. */
    uint32_t x = 2166136261u ^ knob ^ (uint32_t)size;
    size_t off = 0;
    while (off < size) {
        x = x * 1103515245u + 12345u;
        size_t piece = 1 + ((x >> 16) % 64);
        if (piece > size - off)
            piece = size - off;
        s.paused = 0;
        size_t used = jrpc__ws_session_feed(&s, (const char *)data + off, piece);
        CHECK(used <= piece);
        CHECK(used == piece || s.paused);
        off += used;
    }
    CHECK(!s.failed);

    ref_t ref;
    memset(&ref, 0, sizeof ref);
    ref_decode(&ref, data, size, max);

    /* The same messages, in order. */
    CHECK(h.msgs.nmsgs == ref.msgs.nmsgs);
    for (size_t i = 0; i < ref.msgs.nmsgs; i++) {
        CHECK(h.msgs.msgs[i].len == ref.msgs.msgs[i].len);
        CHECK(h.msgs.msgs[i].binary == ref.msgs.msgs[i].binary);
        CHECK(memcmp(h.msgs.msgs[i].data, ref.msgs.msgs[i].data, ref.msgs.msgs[i].len) == 0);
    }

    /* What went out: control frames only, pongs echoing the pings in order, at most one close
     * and nothing after it. */
    size_t o = 0, pongs = 0;
    int closed = 0;
    unsigned close_code = 0;
    while (o < h.out_len) {
        CHECK(!closed);
        CHECK(h.out_len - o >= 2);
        uint8_t b0 = h.out[o], b1 = h.out[o + 1];
        size_t len = b1;
        CHECK((b0 & 0xf0) == 0x80 && (b1 & 0x80) == 0 && len <= 125);
        CHECK(h.out_len - o - 2 >= len);
        const uint8_t *pl = h.out + o + 2;
        switch (b0 & 15) {
        case 10:
            CHECK(pongs < ref.pings.nmsgs);
            CHECK(ref.pings.msgs[pongs].len == len &&
                  memcmp(ref.pings.msgs[pongs].data, pl, len) == 0);
            pongs++;
            break;
        case 8:
            closed = 1;
            CHECK(len == 0 || len >= 2);
            close_code = len >= 2 ? (unsigned)pl[0] << 8 | pl[1] : 0;
            break;
        default:
            CHECK(0 && "only pongs and a close go out");
        }
        o += 2 + len;
    }
    switch (ref.end) {
    case REF_OPEN:
        CHECK(!closed);
        break;
    case REF_ERROR:
    case REF_CLOSE: /* the echo of the client's code (0: an empty close for an empty one) */
        CHECK(closed && close_code == ref.code);
        break;
    }
    CHECK(pongs == ref.pings.nmsgs); /* every ping before the end is answered, at once */
    CHECK(!jrpc__ws_session_reading(&s) == (ref.end != REF_OPEN));

    free(h.out);
    msgs_free(&h.msgs);
    msgs_free(&ref.msgs);
    msgs_free(&ref.pings);
    jrpc__ws_session_free(&s);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* RFC 6455 §1.3's example, once: the accept key itself is right. */
    char accept[JRPC__WS_ACCEPT_LEN + 1];
    jrpc__ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, accept);
    CHECK(strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t knob = data[0];
    if (knob & 1)
        fuzz_handshake(data + 1, size - 1, knob);
    else
        fuzz_frames(data + 1, size - 1, knob);
    return 0;
}
