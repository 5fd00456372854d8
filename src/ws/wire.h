/* SPDX-License-Identifier: MIT */
/* wire.h — the WebSocket wire (RFC 6455) without sockets or loops: the opening handshake as
 * src/http sees it header by header (handshake.c), and the framing session that turns
 * received bytes into whole messages and control frames into bytes to send (session.c). Both are
 * pure so the fuzz target (fuzz/ws.c) drives them without a network. Private to src/ws and
 * src/http; never installed. */
#ifndef JRPC_WS_WIRE_H
#define JRPC_WS_WIRE_H

#include "jrpc.h"

#include <stddef.h>
#include <stdint.h>

/* ---- Opening handshake (handshake.c) --------------------------------------------------------- */

/* The Sec-WebSocket-Key a client sends: base64 of 16 random bytes. */
#define JRPC__WS_KEY_LEN 24
/* Sec-WebSocket-Accept: base64 of a 20-byte SHA-1. */
#define JRPC__WS_ACCEPT_LEN 28
/* Value bytes kept of Upgrade and Sec-WebSocket-Version. "websocket" and "13" are all a valid
 * request needs; a longer Upgrade list ("h2c, websocket") still fits, and a value cut here is
 * judged on what was kept (a client sending 48 bytes of protocol names is not one we serve). */
#define JRPC__WS_VAL_MAX 48
/* The 101 answer: status line, three headers and the accept key, a Sec-WebSocket-Extensions
 * line with every permessage-deflate parameter (116 bytes) and a Jrpc-Max-Batch line (28): 273
 * bytes at most. */
#define JRPC__WS_101_MAX 320

/* What the headers of one request said about a WebSocket upgrade. Filled by the header
 * callbacks of src/http (names lower-cased, values in pieces as they arrive). */
typedef struct jrpc__ws_hs {
    uint8_t hdr;                    /* header whose value is being read (JRPC__WS_H_*) */
    uint8_t upgrade;                /* an Upgrade header named websocket */
    uint8_t version;                /* 0 none, 1 "13", 2 another version */
    uint8_t keys;                   /* Sec-WebSocket-Key headers seen */
    uint8_t key_len;                /* key bytes seen (saturates past the key's size) */
    uint8_t val_len;                /* value bytes seen (saturates past val's size) */
    char key[JRPC__WS_KEY_LEN + 8]; /* the key as sent, and room for blanks after it */
    char val[JRPC__WS_VAL_MAX];     /* lower-cased Upgrade or Sec-WebSocket-Version value */
    uint8_t pmd;                    /* a permessage-deflate offer was accepted (RFC 7692) */
    uint8_t pmd_snct;               /* ... with server_no_context_takeover */
    uint8_t pmd_cnct;               /* ... with client_no_context_takeover */
    uint8_t pmd_sbits;              /* ... server_max_window_bits (9..15), 0: not limited */
    uint8_t pmd_cbits;              /* ... client_max_window_bits: 0 not offered, 1 offered
                                       without a value, 8..15 the value */
} jrpc__ws_hs_t;

/* Forgets the previous request's headers. */
void jrpc__ws_hs_reset(jrpc__ws_hs_t *hs);
/* A header value starts: `lname` holds the first bytes of its name, lower-cased (as many as
 * the caller kept, at most name_len), `name_len` the name's full length. */
void jrpc__ws_hs_name(jrpc__ws_hs_t *hs, const char *lname, size_t name_len);
/* More bytes of the current value. */
void jrpc__ws_hs_value(jrpc__ws_hs_t *hs, const char *p, size_t n);
/* The current value is complete. */
void jrpc__ws_hs_end(jrpc__ws_hs_t *hs);
/* A Sec-WebSocket-Extensions value v[0..n) (lower-cased, whole elements): the first
 * permessage-deflate offer whose parameters are valid and that zlib can honour is accepted into
 * hs->pmd*, unless one was already (RFC 7692 §5: the server picks one offer). Offers with an
 * unknown or repeated parameter, or a bad window size, are declined; so is
 * server_max_window_bits=8, which zlib's deflate cannot keep to. */
void jrpc__ws_hs_extensions(jrpc__ws_hs_t *hs, const char *v, size_t n);
/* The verdict on a GET of the RPC path once its headers are in: 0 when it asks for no WebSocket
 * (a plain GET), 101 for a valid upgrade, 426 for a version other than 13 (RFC 6455 §4.4), 400
 * for anything else wrong (§4.2.1). `conn_upgrade`: Connection named upgrade (and an Upgrade
 * header came: http-parser's `upgrade`); `http11`: HTTP/1.1 or later; `has_body`: the request
 * announced a body. */
unsigned jrpc__ws_hs_verdict(const jrpc__ws_hs_t *hs, int conn_upgrade, int http11, int has_body);
/* Sec-WebSocket-Accept for `key`: base64(SHA-1(key + the RFC's GUID)), NUL-terminated. */
void jrpc__ws_accept_key(const char *key, size_t key_len, char out[JRPC__WS_ACCEPT_LEN + 1]);
/* Writes the 101 Switching Protocols answer for a request whose verdict was 101, with the
 * accepted permessage-deflate offer's response when hs->pmd, and Jrpc-Max-Batch: max_batch (the
 * session's batch cap) unless it is 0; returns its length (at most JRPC__WS_101_MAX). */
size_t jrpc__ws_hs_answer(const jrpc__ws_hs_t *hs, unsigned max_batch, char out[JRPC__WS_101_MAX]);

/* ---- Framing session (session.c) ------------------------------------------------------------- */

/* Opcodes of the frames this server sends (RFC 6455 §5.2). */
#define JRPC__WS_TEXT 0x1
#define JRPC__WS_BINARY 0x2
/* Longest header of a server frame: 2 bytes, then a 64-bit length; never a mask. */
#define JRPC__WS_HEAD_MAX 10

typedef struct jrpc__ws_session jrpc__ws_session_t;

typedef struct jrpc__ws_session_cbs {
    /* A whole data message arrived: `msg` (malloc'd, len bytes, never NULL) becomes the callee's.
     * Called inside jrpc__ws_session_feed. When the session's msg_deflated is set, msg is the
     * compressed payload (RFC 7692: RSV1 on its first frame): the callee inflates it and checks
     * a text message's UTF-8 itself (jrpc__ws_utf8_valid). */
    void (*message)(void *ud, char *msg, size_t len, int binary);
    /* A control frame (pong, close, ping) to send after whatever was queued before, in order,
     * whole. 0, or -1 when it cannot be kept (the session then fails). */
    int (*output)(void *ud, const uint8_t *p, size_t n);
} jrpc__ws_session_cbs_t;

/* One connection's framing state; the owner embeds it. */
struct jrpc__ws_session {
    const jrpc__ws_session_cbs_t *cbs;
    void *ud;               /* passed to cbs */
    uint64_t frame_left;    /* payload bytes of the current frame still to come */
    uint64_t frame_off;     /* payload bytes of it already in (the mask's phase) */
    char *msg;              /* data message being assembled (malloc'd) */
    size_t msg_len;         /* bytes in msg */
    size_t msg_cap;         /* bytes allocated for msg */
    size_t max_message;     /* bytes one message may have (close 1009 past it) */
    uint32_t u8;            /* UTF-8 check state of a text message (0: clean) */
    uint16_t code_sent;     /* our close code (1005: none in it; 1006: not sent) */
    uint8_t frame_op;       /* opcode of the current frame */
    uint8_t frame_fin;      /* it ends its message */
    uint8_t in_frame;       /* its header was parsed and checked */
    uint8_t head_len;       /* bytes of the next frame's header in head */
    uint8_t head[14];       /* that header, while it arrives in pieces (2 + 8 length + 4 mask) */
    uint8_t mask[4];        /* the current frame's masking key */
    uint8_t in_msg;         /* a data message is being assembled */
    uint8_t msg_binary;     /* it started with a binary frame */
    uint8_t reading;        /* frames are still parsed (no close or error yet) */
    uint8_t close_sent;     /* our close frame went to the output */
    uint8_t close_received; /* the client's close frame arrived */
    uint8_t paused;         /* the owner takes no more messages now: feed stops */
    uint8_t failed;         /* out of memory or output refused: drop the connection */
    uint8_t rsv1_ok;        /* permessage-deflate was negotiated: RSV1 marks a compressed
                               message (set by the owner) */
    uint8_t msg_deflated;   /* the message being assembled (or just passed on) is compressed */
    uint64_t clock;         /* the owner's time, set before a feed: stamps pend_since */
    uint64_t pend_since;    /* clock of the feed in which the incomplete message began */
    uint64_t pend_bytes;    /* bytes taken since it began (frame headers, control frames
                               between its fragments); 0 between messages */
    size_t ctrl_len;        /* bytes in ctrl */
    uint8_t ctrl[125];      /* payload of the control frame being received (§5.5: 125 at most) */
};

/* Sets up a session that allocates nothing until a data frame's header arrives. */
void jrpc__ws_session_init(jrpc__ws_session_t *s, size_t max_message,
                           const jrpc__ws_session_cbs_t *cbs, void *ud);
/* Frees the message being assembled, if any. */
void jrpc__ws_session_free(jrpc__ws_session_t *s);
/* Parses received bytes. Returns how many it took: all of them, unless the owner set `paused`
 * (from the message callback or before), in which case the rest must be fed again after it is
 * cleared (parsing stops right after the message whose callback paused). Bytes after
 * the client's close frame or a protocol error are taken and dropped. Answers (a pong; a close
 * with 1002, 1007, 1009 or the client's own code) are output as their frame completes. */
size_t jrpc__ws_session_feed(jrpc__ws_session_t *s, const char *p, size_t n);
/* Queues a close frame (code, reason of at most 123 bytes) and outputs it; no-op once a close
 * was queued. Reading goes on, so the client's closing frame can still be seen. */
void jrpc__ws_session_close(jrpc__ws_session_t *s, uint16_t code, const char *reason);
/* Gives up on the client: the close frame as jrpc__ws_session_close, then the message being
 * assembled is freed and nothing more is parsed (the rest of a frame cut short cannot be). */
void jrpc__ws_session_fail(jrpc__ws_session_t *s, uint16_t code, const char *reason);
/* Bytes taken of what has begun and not ended yet: a data message (all its fragments so far,
 * with control frames between them), a lone control frame, or a frame header in pieces. 0
 * between messages; then *since (may be NULL) is left alone, else it gets the clock of the feed
 * in which that began. The owner bounds how long a message may take with it. */
uint64_t jrpc__ws_session_pending(const jrpc__ws_session_t *s, uint64_t *since);
/* Outputs a ping with an empty payload. */
void jrpc__ws_session_ping(jrpc__ws_session_t *s);
/* A close frame went out (ours, or the echo of the client's): no data frame may follow. */
int jrpc__ws_session_close_sent(const jrpc__ws_session_t *s);
/* The client's close frame arrived. */
int jrpc__ws_session_close_received(const jrpc__ws_session_t *s);
/* Input is still parsed (no close received, no protocol error). */
int jrpc__ws_session_reading(const jrpc__ws_session_t *s);
/* The close code sent (1006 "abnormal" when none was). */
unsigned jrpc__ws_session_code_sent(const jrpc__ws_session_t *s);
/* Whether p[0..n) is well-formed UTF-8 (RFC 3629). */
int jrpc__ws_utf8_valid(const char *p, size_t n);
/* The header of an unmasked, final server frame of `len` payload bytes; returns its length. A data
 * frame's payload is the engine's answer buffer (up to max_response, 25 MB), written to the
 * socket as it is behind this 2- to 10-byte header. */
size_t jrpc__ws_frame_header(uint8_t out[JRPC__WS_HEAD_MAX], unsigned opcode, uint64_t len);

#endif
