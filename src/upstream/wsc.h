/* SPDX-License-Identifier: MIT */
/* wsc.h — the gateway's WebSocket client (RFC 6455, client side) on one libuv loop: one
 * connection to a ws:// URL, text messages in and out. Used by subs.c for subscriptions through
 * the gateway; libcurl (the HTTP side) has no WebSocket in Debian's build. Never installed. */
#ifndef JRPC_UPSTREAM_WSC_H
#define JRPC_UPSTREAM_WSC_H

#include "jrpc.h"

#include <uv.h>

#include <stdint.h>

typedef struct jrpc__wsc jrpc__wsc_t;

/* The handshake succeeded: messages may be sent. */
typedef void (*jrpc__wsc_open_cb)(jrpc__wsc_t *w);
/* One whole text (or binary) message p[0..n), valid during the call. */
typedef void (*jrpc__wsc_msg_cb)(jrpc__wsc_t *w, const char *p, size_t n);
/* The connection failed or ended (was_open: the handshake had succeeded); `why` is static text
 * without the URL. The socket is closed by then: jrpc__wsc_connect may be called again. */
typedef void (*jrpc__wsc_lost_cb)(jrpc__wsc_t *w, int was_open, const char *why);

struct jrpc__wsc {
    uv_loop_t *loop;      /* the io loop it runs on */
    uv_tcp_t tcp;         /* the connection, while state != WSC_IDLE */
    uv_timer_t timer;     /* bounds the connect and handshake */
    uv_getaddrinfo_t gai; /* resolving the host */
    int state;            /* WSC_* (wsc.c) */
    uint8_t shut;         /* jrpc__wsc_shutdown ran: no callback any more */
    uint8_t tcp_open;     /* tcp is initialised and not closed yet */
    uint8_t gai_busy;     /* gai is in flight */
    char host[256];       /* from the URL, for Host and the resolver */
    char port[8];         /* likewise */
    char *path;           /* path and query, "/" at least (owned) */
    char accept[32];      /* the Sec-WebSocket-Accept the server must answer */
    const char *why;      /* reason for the loss being reported */
    jrpc_buf_t rx;        /* bytes read and not yet consumed */
    jrpc_buf_t msg;       /* a fragmented message being put together */
    size_t max_message;   /* bytes of one inbound message (the server's max_ws_message) */
    unsigned timeout_ms;  /* connect plus handshake */
    jrpc__wsc_open_cb on_open;
    jrpc__wsc_msg_cb on_msg;
    jrpc__wsc_lost_cb on_lost;
    void *data; /* the owner's */
};

/* 0 when url is a ws:// URL this client can use, else JRPC_EINVAL (wss:// included: no TLS). */
int jrpc__wsc_url_check(const char *url);
/* Sets w up on loop (its timer handle is opened). 0 or a libuv error. */
int jrpc__wsc_init(jrpc__wsc_t *w, uv_loop_t *loop);
/* Starts connecting to url (checked): on_open or on_lost follows, never inside this call. */
int jrpc__wsc_connect(jrpc__wsc_t *w, const char *url);
/* Sends one text message (copied, masked). 0, or JRPC_ECLOSED when not open, JRPC_ENOMEM. */
int jrpc__wsc_send(jrpc__wsc_t *w, const char *p, size_t n);
/* Closes every handle for good (loop stop); no callback runs afterwards. Idempotent. */
void jrpc__wsc_shutdown(jrpc__wsc_t *w);
/* Frees the buffers after the handles closed (or were never opened). */
void jrpc__wsc_free(jrpc__wsc_t *w);

#endif
