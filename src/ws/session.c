/* SPDX-License-Identifier: MIT */
/* session.c — one connection's WebSocket framing (RFC 6455 §5 and §7): frame headers and their
 * length rules, unmasking, the checks of reserved bits, masking, opcodes and fragment order, the
 * size limit over all fragments (checked from the header, before the bytes arrive), UTF-8 of text
 * messages and close reasons, the answer to a ping, the close handshake, and the assembly of each
 * message into one malloc'd buffer that then becomes the engine's request body as it is (one
 * copy out of the read buffer, unmasked on the way).
 *
 * Why this is not wslay (the packaged WebSocket library), measured with bench_ws_load on text
 * messages holding a batch of 20 calls (2.5 KB): its event layer checks UTF-8 with a
 * byte-at-a-time automaton, 45% of the server's time (85k messages/s as text frames, 157k for the
 * same bytes as binary); its frame layer, used alone after that, copies all input into a 4 KiB
 * buffer of its own and unmasks it there a byte at a time, 19% of the time (95-104k messages/s
 * over 32 connections; 159-210k with the parsing below). JSON-RPC text is nearly all ASCII: the
 * UTF-8 check here skips eight ASCII bytes per step, and payloads are unmasked eight bytes at a
 * time. */
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    OP_CONT = 0x0,
    OP_TEXT = 0x1,
    OP_BINARY = 0x2,
    OP_CLOSE = 0x8,
    OP_PING = 0x9,
    OP_PONG = 0xa
};

/* ---- UTF-8 ----------------------------------------------------------------------------------- */

/* The state between bytes: continuation bytes still due, and the range the next one must fall
 * in (Unicode's table of well-formed sequences, so overlong forms, surrogates and code points past
 * U+10FFFF fail at the first byte that shows them). 0: between characters. */
#define U8_STATE(need, lo, hi) ((uint32_t)(need) | (uint32_t)(lo) << 8 | (uint32_t)(hi) << 16)

static uint32_t u8_lead(uint8_t b)
{
    if (b >= 0xc2 && b <= 0xdf)
        return U8_STATE(1, 0x80, 0xbf);
    if (b == 0xe0)
        return U8_STATE(2, 0xa0, 0xbf);
    if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef)
        return U8_STATE(2, 0x80, 0xbf);
    if (b == 0xed)
        return U8_STATE(2, 0x80, 0x9f); /* not into the surrogates */
    if (b == 0xf0)
        return U8_STATE(3, 0x90, 0xbf);
    if (b >= 0xf1 && b <= 0xf3)
        return U8_STATE(3, 0x80, 0xbf);
    if (b == 0xf4)
        return U8_STATE(3, 0x80, 0x8f); /* not past U+10FFFF */
    return UINT32_MAX;                  /* 80..C1 and F5..FF never start a character */
}

/* Runs p[0..n) through the check from *state; 0, or -1 at the first byte that cannot be. */
static int u8_check(uint32_t *state, const uint8_t *p, size_t n)
{
    uint32_t st = *state;
    size_t i = 0;
    while (i < n) {
        if (st == 0) {
            /* ASCII eight bytes at a time. */
            while (n - i >= 8) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ULL)
                    break;
                i += 8;
            }
            if (i == n)
                break;
            uint8_t b = p[i++];
            if (b < 0x80)
                continue;
            st = u8_lead(b);
            if (st == UINT32_MAX)
                return -1;
            continue;
        }
        uint8_t b = p[i++];
        if (b < (uint8_t)(st >> 8) || b > (uint8_t)(st >> 16))
            return -1;
        uint32_t need = (st & 0xff) - 1;
        st = need == 0 ? 0 : U8_STATE(need, 0x80, 0xbf);
    }
    *state = st;
    return 0;
}

/* ---- Output ---------------------------------------------------------------------------------- */

/* Outputs one control frame (payload at most 125 bytes) in one piece. */
static void send_control(jrpc__ws_session_t *s, unsigned opcode, const uint8_t *p, size_t n)
{
    uint8_t f[JRPC__WS_HEAD_MAX + 125];
    if (s->failed || s->close_sent)
        return; /* nothing may follow a close frame */
    size_t h = jrpc__ws_frame_header(f, opcode, n);
    if (n != 0)
        memcpy(f + h, p, n);
    if (s->cbs->output(s->ud, f, h + n) != 0)
        s->failed = 1;
}

static void send_close(jrpc__ws_session_t *s, unsigned code, const char *reason, size_t len)
{
    uint8_t p[125] = {0};
    size_t n = 0;
    if (s->close_sent)
        return;
    if (code != 0) {
        if (len > 123)
            len = 123;
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        memcpy(p + 2, reason, len);
        n = 2 + len;
    }
    send_control(s, OP_CLOSE, p, n);
    s->close_sent = 1;
    s->code_sent = (uint16_t)(code != 0 ? code : 1005);
}

/* The client broke the protocol: say why (1002, 1007, 1009) and read no more of it. */
static void fail(jrpc__ws_session_t *s, unsigned code, const char *reason)
{
    send_close(s, code, reason, strlen(reason));
    s->reading = 0;
}

/* ---- Input ----------------------------------------------------------------------------------- */

/* A header is judged once all of it is in (2 to 14 bytes, possibly over several reads); the
 * payload is unmasked while it is copied out of the read buffer into the message. */

/* dst[0..n) = src[0..n) XOR the masking key, the payload's byte `off` first (§5.3). */
static void unmask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4],
                        uint64_t off)
{
    uint8_t k[8];
    for (int i = 0; i < 8; i++)
        k[i] = key[(off + (unsigned)i) & 3];
    uint64_t k64;
    memcpy(&k64, k, 8);
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= k64;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ k[i & 7];
}

/* How many header bytes the frame whose first two bytes are h has (2 to 14). */
static size_t head_size(const uint8_t h[2])
{
    size_t len7 = h[1] & 0x7fu;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((h[1] & 0x80u) ? 4 : 0);
}

/* The header in s->head is complete: its length rules and checks (§5.2, §5.4, §5.5), then, for
 * a data frame, room for its payload. 0, or -1 when the connection failed. */
static int frame_start(jrpc__ws_session_t *s)
{
    const uint8_t *h = s->head;
    size_t len7 = h[1] & 0x7fu, at = 2;
    uint64_t len = len7;
    if (len7 == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        at = 4;
        if (len < 126)
            len = UINT64_MAX; /* not in its shortest form */
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        at = 10;
        if (len <= 0xffff || len >> 63)
            len = UINT64_MAX; /* not in its shortest form, or the top bit set */
    }
    unsigned opcode = h[0] & 0x0fu;
    int fin = (h[0] & 0x80u) != 0;
    if (len == UINT64_MAX || ((opcode & 0x8u) && (len > 125 || !fin))) {
        /* §5.5: control frames are never fragmented and carry at most 125 bytes. */
        fail(s, 1002, "malformed frame header");
        return -1;
    }
    s->frame_op = (uint8_t)opcode;
    s->frame_fin = (uint8_t)fin;
    s->frame_left = len;
    s->frame_off = 0;
    /* RFC 7692 §6: with permessage-deflate, RSV1 on a message's first frame marks it
     * compressed; never on a continuation or a control frame. */
    int deflated =
        (h[0] & 0x70u) == 0x40u && s->rsv1_ok && (opcode == OP_TEXT || opcode == OP_BINARY);
    if ((h[0] & 0x70u) && !deflated) {
        fail(s, 1002,
             s->rsv1_ok ? "reserved bits set where the extension allows none"
                        : "reserved bits set without an extension");
        return -1;
    }
    if (!(h[1] & 0x80u)) {
        fail(s, 1002, "client frames must be masked");
        return -1;
    }
    memcpy(s->mask, h + at, 4);
    switch (opcode) {
    case OP_CONT:
        if (!s->in_msg) {
            fail(s, 1002, "continuation frame without a message");
            return -1;
        }
        break;
    case OP_TEXT:
    case OP_BINARY:
        if (s->in_msg) {
            fail(s, 1002, "new message inside a fragmented one");
            return -1;
        }
        s->in_msg = 1;
        s->msg_binary = opcode == OP_BINARY;
        s->msg_deflated = (uint8_t)deflated;
        s->msg_len = 0;
        s->u8 = 0;
        break;
    case OP_CLOSE:
        if (len == 1) {
            fail(s, 1002, "close frame with a 1-byte body");
            return -1;
        }
        /* fall through */
    case OP_PING:
    case OP_PONG:
        s->ctrl_len = 0; /* at most 125 bytes, checked above: ctrl holds them */
        return 0;
    default:
        fail(s, 1002, "reserved opcode");
        return -1;
    }
    if (len > s->max_message - s->msg_len) {
        char reason[64]; /* 42 bytes at most: a size_t has 20 digits */
        snprintf(reason, sizeof reason, "message exceeds %zu bytes", s->max_message);
        fail(s, 1009, reason);
        return -1;
    }
    /* The header says how long the frame is: one allocation for it, before its bytes arrive. */
    size_t need = s->msg_len + (size_t)len;
    if (s->msg == NULL || need > s->msg_cap) {
        char *m = realloc(s->msg, need ? need : 1);
        if (m == NULL) {
            s->failed = 1;
            return -1;
        }
        s->msg = m;
        s->msg_cap = need ? need : 1;
    }
    return 0;
}

/* n payload bytes of the current frame (n <= frame_left), still masked. */
static void frame_data(jrpc__ws_session_t *s, const uint8_t *p, size_t n)
{
    uint8_t *dst;
    if (s->frame_op & 0x8u) {
        dst = s->ctrl + s->ctrl_len;
        s->ctrl_len += n;
    } else {
        dst = (uint8_t *)s->msg + s->msg_len;
        s->msg_len += n;
    }
    unmask_copy(dst, p, n, s->mask, s->frame_off);
    s->frame_off += n;
    s->frame_left -= n;
    if (!(s->frame_op & 0x8u) && !s->msg_binary && !s->msg_deflated &&
        u8_check(&s->u8, dst, n) != 0)
        fail(s, 1007, "text message is not UTF-8");
}

static int close_code_valid(unsigned code)
{
    /* §7.4: 1004-1006 and 1015 are never sent; 1012-2999 are unassigned; 3000-4999 are for
     * libraries and applications. */
    return (code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) ||
           (code >= 3000 && code <= 4999);
}

/* A control frame is complete (its payload is in s->ctrl). */
static void control_done(jrpc__ws_session_t *s)
{
    switch (s->frame_op) {
    case OP_PING:
        send_control(s, OP_PONG, s->ctrl, s->ctrl_len);
        break;
    case OP_CLOSE: {
        s->close_received = 1;
        s->reading = 0;
        if (s->ctrl_len == 0) {
            send_close(s, 0, NULL, 0); /* no code came, none goes back */
            break;
        }
        unsigned code = (unsigned)s->ctrl[0] << 8 | s->ctrl[1];
        uint32_t st = 0;
        if (!close_code_valid(code))
            fail(s, 1002, "invalid close code");
        else if (u8_check(&st, s->ctrl + 2, s->ctrl_len - 2) != 0 || st != 0)
            fail(s, 1007, "close reason is not UTF-8");
        else
            send_close(s, code, (const char *)s->ctrl + 2, s->ctrl_len - 2); /* the echo */
        break;
    }
    default:
        break; /* a pong: any byte from the client already counts as life */
    }
}

/* The current frame's payload is all in: a control frame is acted on, a final data frame ends
 * its message. */
static void frame_end(jrpc__ws_session_t *s)
{
    s->in_frame = 0;
    if (s->frame_op & 0x8u) {
        control_done(s);
        return;
    }
    if (!s->frame_fin)
        return;
    if (!s->msg_binary && !s->msg_deflated && s->u8 != 0) {
        fail(s, 1007, "text message ends inside a UTF-8 character");
        return;
    }
    char *msg = s->msg;
    size_t len = s->msg_len;
    s->msg = NULL;
    s->msg_len = s->msg_cap = 0;
    s->in_msg = 0;
    s->cbs->message(s->ud, msg, len, s->msg_binary);
}

/* ---- Entry points ---------------------------------------------------------------------------- */

void jrpc__ws_session_init(jrpc__ws_session_t *s, size_t max_message,
                           const jrpc__ws_session_cbs_t *cbs, void *ud)
{
    memset(s, 0, sizeof(*s));
    s->cbs = cbs;
    s->ud = ud;
    s->max_message = max_message;
    s->reading = 1;
    s->code_sent = 1006; /* none yet: "abnormal closure" if it stays so */
}

void jrpc__ws_session_free(jrpc__ws_session_t *s)
{
    free(s->msg);
    s->msg = NULL;
}

size_t jrpc__ws_session_feed(jrpc__ws_session_t *s, const char *p, size_t n)
{
    const uint8_t *in = (const uint8_t *)p;
    size_t off = 0, begun = 0; /* where what is pending at the end began in this feed */
    while (off < n && s->reading && !s->failed && !s->paused) {
        if (!s->in_frame) {
            if (!s->in_msg && s->head_len == 0) {
                /* Between messages: a new one (or a control frame) starts here. */
                begun = off;
                s->pend_bytes = 0;
                s->pend_since = s->clock;
            }
            /* The header, possibly across feeds: 2 bytes say how many follow. */
            size_t need = s->head_len < 2 ? 2 : head_size(s->head);
            while (s->head_len < need && off < n) {
                s->head[s->head_len++] = in[off++];
                if (s->head_len == 2)
                    need = head_size(s->head);
            }
            if (s->head_len < need)
                break;
            s->head_len = 0;
            s->in_frame = 1;
            if (frame_start(s) != 0)
                break;
        } else {
            size_t left = n - off;
            size_t take = s->frame_left < left ? (size_t)s->frame_left : left;
            frame_data(s, in + off, take);
            off += take;
        }
        if (s->in_frame && s->frame_left == 0 && s->reading && !s->failed)
            frame_end(s);
    }
    if (!s->in_msg && !s->in_frame && s->head_len == 0)
        s->pend_bytes = 0;
    else
        s->pend_bytes += off - begun;
    if (s->failed || !s->reading)
        off = n; /* nothing more is parsed: the rest is dropped */
    return off;
}

uint64_t jrpc__ws_session_pending(const jrpc__ws_session_t *s, uint64_t *since)
{
    if (s->pend_bytes != 0 && since != NULL)
        *since = s->pend_since;
    return s->pend_bytes;
}

void jrpc__ws_session_close(jrpc__ws_session_t *s, uint16_t code, const char *reason)
{
    send_close(s, code, reason, reason != NULL ? strlen(reason) : 0);
}

void jrpc__ws_session_fail(jrpc__ws_session_t *s, uint16_t code, const char *reason)
{
    send_close(s, code, reason, reason != NULL ? strlen(reason) : 0);
    s->reading = 0;
    free(s->msg);
    s->msg = NULL;
    s->msg_len = s->msg_cap = 0;
    s->in_msg = s->in_frame = 0;
    s->head_len = 0;
    s->pend_bytes = 0;
}

void jrpc__ws_session_ping(jrpc__ws_session_t *s)
{
    send_control(s, OP_PING, NULL, 0);
}

int jrpc__ws_session_close_sent(const jrpc__ws_session_t *s)
{
    return s->close_sent;
}

int jrpc__ws_session_close_received(const jrpc__ws_session_t *s)
{
    return s->close_received;
}

int jrpc__ws_session_reading(const jrpc__ws_session_t *s)
{
    return s->reading;
}

int jrpc__ws_utf8_valid(const char *p, size_t n)
{
    uint32_t st = 0;
    return u8_check(&st, (const uint8_t *)p, n) == 0 && st == 0;
}

unsigned jrpc__ws_session_code_sent(const jrpc__ws_session_t *s)
{
    return s->code_sent;
}

size_t jrpc__ws_frame_header(uint8_t out[JRPC__WS_HEAD_MAX], unsigned opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80u | (opcode & 0x0fu)); /* FIN: messages are never fragmented */
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}
