/* SPDX-License-Identifier: MIT */
/* h1answer.c — the HTTP/1.1 answer step of h1.c (h1answer.h): http-parser's callbacks keep the
 * body up to the limit, drop interim answers and pause the parser at the end of the final one, so
 * bytes after it are seen and the connection is not reused out of step. */
#include "h1answer.h"

#include "jrpc/upstream.h"

#include <stdio.h>

static int h1answer_on_body(http_parser *p, const char *at, size_t len)
{
    jrpc__h1answer_t *a = p->data;
    if (a->body->len + len > a->max) {
        a->too_large = 1;
        return -1;
    }
    return jrpc_buf_append(a->body, at, len) == 0 ? 0 : -1;
}

/* An interim answer (100 Continue, 103): the real one follows on the same connection. 101 is not
 * one: it ends HTTP on the connection. */
static int interim(const http_parser *p)
{
    return p->status_code / 100 == 1 && p->status_code != 101;
}

/* 1 (no body) for an interim answer, 204 and 304: RFC 9112 §6.3 ends them at the blank line
 * whatever Content-Length or Transfer-Encoding they carry, where http-parser would read a body
 * and take the next answer's bytes for it (found by fuzz/h1.c). */
static int h1answer_on_headers(http_parser *p)
{
    return interim(p) || p->status_code == 204 || p->status_code == 304;
}

static int h1answer_on_complete(http_parser *p)
{
    jrpc__h1answer_t *a = p->data;
    if (interim(p)) {
        a->body->len = 0;
        return 0;
    }
    a->complete = 1;
    http_parser_pause(p, 1); /* bytes after the answer were not asked for */
    return 0;
}

static const http_parser_settings h1answer_settings = {
    .on_headers_complete = h1answer_on_headers,
    .on_body = h1answer_on_body,
    .on_message_complete = h1answer_on_complete,
};

void jrpc__h1answer_init(jrpc__h1answer_t *a, jrpc_buf_t *body, size_t max)
{
    http_parser_init(&a->parser, HTTP_RESPONSE);
    a->parser.data = a;
    a->body = body;
    a->max = max;
    a->got = 0;
    a->complete = 0;
    a->too_large = 0;
}

int jrpc__h1answer_feed(jrpc__h1answer_t *a, const char *p, size_t n, int *keep, char *detail,
                        size_t cap)
{
    a->got = 1;
    size_t used = http_parser_execute(&a->parser, &h1answer_settings, p, n);
    if (a->complete) {
        /* Anything after the answer (used short of n) leaves the connection out of step; after
         * a 101 it speaks another protocol. */
        *keep = used == n && http_should_keep_alive(&a->parser) && !a->parser.upgrade;
        return JRPC__H1_DONE;
    }
    enum http_errno e = HTTP_PARSER_ERRNO(&a->parser);
    if (e == HPE_OK)
        return JRPC__H1_MORE;
    if (a->too_large) {
        snprintf(detail, cap, "answer larger than %zu bytes", a->max);
        return JRPC_UPSTREAM_FAULT_TOO_LARGE;
    }
    if (e == HPE_CB_body) {
        snprintf(detail, cap, "out of memory");
        return JRPC_UPSTREAM_FAULT_TOO_LARGE;
    }
    snprintf(detail, cap, "malformed HTTP answer: %s", http_errno_description(e));
    return JRPC_UPSTREAM_FAULT_RESET;
}

int jrpc__h1answer_eof(jrpc__h1answer_t *a)
{
    if (!a->got)
        return 0;
    http_parser_execute(&a->parser, &h1answer_settings, NULL, 0);
    return a->complete;
}
