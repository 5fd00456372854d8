/* SPDX-License-Identifier: MIT */
/* h1answer.h — how h1.c reads one HTTP/1.1 answer: the http-parser step that takes the bytes of
 * each read, skips interim (1xx) answers, keeps the body up to a limit and says when the answer
 * is complete and whether its connection may carry another request. Apart from h1.c's sockets so
 * that fuzz/h1.c drives the same code with any bytes split anywhere. Never installed. */
#ifndef JRPC_UPSTREAM_H1ANSWER_H
#define JRPC_UPSTREAM_H1ANSWER_H

#include "jrpc.h"

#include <http_parser.h>
#include <stddef.h>
#include <stdint.h>

/* What jrpc__h1answer_feed makes of the bytes so far, besides a fault (a JRPC_UPSTREAM_FAULT_*,
 * ≥ 0). */
#define JRPC__H1_MORE (-2) /* the answer goes on */
#define JRPC__H1_DONE (-1) /* it is complete */

/* One answer being read; embedded in h1.c's connection, reset for each request. */
typedef struct jrpc__h1answer {
    http_parser parser; /* its data points back at this struct */
    jrpc_buf_t *body;   /* where the final answer's body goes (the chunk's answer) */
    size_t max;         /* bytes the body may have (max_answer); more is a too_large fault */
    uint8_t got;        /* a byte of the answer came */
    uint8_t complete;   /* the final (not interim) answer is complete */
    uint8_t too_large;  /* the body passed max: the answer was cut there */
} jrpc__h1answer_t;

/* Starts reading an answer into body (emptied by the caller), at most max bytes of it. */
void jrpc__h1answer_init(jrpc__h1answer_t *a, jrpc_buf_t *body, size_t max);

/* Feeds the next n bytes of the answer (n > 0): JRPC__H1_MORE, JRPC__H1_DONE (*keep: the answer
 * said keep-alive and no byte followed it, so the connection may carry another request), or the
 * fault that ends the attempt (TOO_LARGE, RESET for a malformed answer) with a line on it in
 * detail[cap]. Not to be called again once it returned anything but JRPC__H1_MORE. */
int jrpc__h1answer_feed(jrpc__h1answer_t *a, const char *p, size_t n, int *keep, char *detail,
                        size_t cap);

/* The upstream closed the connection while the answer was JRPC__H1_MORE: 1 when that completes
 * it (no length, not chunked: it ends with the connection), else 0. */
int jrpc__h1answer_eof(jrpc__h1answer_t *a);

#endif
