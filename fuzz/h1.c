/* SPDX-License-Identifier: MIT */
/* h1.c — libFuzzer target for how the gateway's HTTP/1.1 client reads an upstream's answer
 * (src/upstream/h1answer.c, the step h1.c runs on every read): status line, headers,
 * Content-Length, chunked or close-delimited bodies, interim 1xx answers, bytes after the answer,
 * the max_answer cut and the upstream's close.
 *
 * The first input byte picks max_answer (low 3 bits), the second how the rest is split into
 * reads (the seed of the piece sizes); the rest is what the upstream sends, then it closes. Each
 * read is an exact-size heap copy, so AddressSanitizer flags any read past it. For every input:
 *  1. Split invariance: fed in one piece and fed in pieces, the answer ends the same way (done,
 *     cut by the close, or the same fault), with the same status, keep-alive verdict and (when
 *     done; a fault's body is dropped) body.
 *  2. The body kept never exceeds max_answer, and the answer ends in the too_large fault exactly
 *     when the body read without a limit is longer than max_answer; otherwise the limit changes
 *     nothing.
 *  3. For an answer a tiny strict reference de-framer below understands (HTTP/1.1, plain
 *     headers, Content-Length or chunked without extensions or trailers, interim answers before
 *     it), a complete one is done with exactly the reference's body and status, a truncated one
 *     is cut by the close; other framings are not compared.
 *  4. Keep-alive is never claimed when bytes followed the answer (the reference's end short of
 *     the input: in h1.c they would reach the idle connection) or when the answer was
 *     close-delimited. */
#include "jrpc/upstream.h"
#include "upstream/h1answer.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_h1"
#include "check.h"

/* ---- Running the answer step ----------------------------------------------------------------- */

enum { END_DONE, END_CUT, END_FAULT }; /* complete; the close came first; a fault */

typedef struct {
    int end;          /* END_* */
    int fault;        /* with END_FAULT: the JRPC_UPSTREAM_FAULT_* */
    int keep;         /* with END_DONE: the connection may carry another request */
    int too_large;    /* the step's own flag */
    unsigned status;  /* with END_DONE */
    jrpc_buf_t body;  /* the body kept */
    size_t left;      /* with END_DONE: input bytes not fed (they came after the answer) */
    int at_eof;       /* with END_DONE: completed by the close */
    char detail[160]; /* with END_FAULT */
} outcome_t;

/* Feeds p[0..n) with limit max, in one piece (seed < 0) or in pieces from seed, then the close,
 * as h1.c's read callback would; the keep verdict as h1.c acts on it. */
static void run(const uint8_t *p, size_t n, size_t max, int seed, outcome_t *o)
{
    memset(o, 0, sizeof *o);
    jrpc_buf_init(&o->body);
    jrpc__h1answer_t a;
    jrpc__h1answer_init(&a, &o->body, max);
    /* Piece sizes from 1 up to a cap the seed's low bits pick; xorshift for the rest. */
    static const size_t caps[] = {1, 3, 17, 300};
    uint32_t x = (uint32_t)seed * 2654435761u + 1;
    size_t at = 0;
    int rc = JRPC__H1_MORE;
    while (at < n && rc == JRPC__H1_MORE) {
        size_t k = n - at;
        if (seed >= 0) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            size_t want = 1 + x % caps[seed & 3];
            k = want < k ? want : k;
        }
        char *piece = malloc(k);
        CHECK(piece != NULL, "out of memory");
        memcpy(piece, p + at, k);
        char detail[160];
        detail[0] = '\0';
        int keep = -1;
        rc = jrpc__h1answer_feed(&a, piece, k, &keep, detail, sizeof detail);
        free(piece);
        at += k;
        CHECK(o->body.len <= max, "body %zu bytes kept over max_answer %zu", o->body.len, max);
        if (rc == JRPC__H1_DONE) {
            CHECK(keep == 0 || keep == 1, "keep %d", keep);
            o->end = END_DONE;
            o->keep = keep && at == n; /* later bytes would reach the idle connection */
            o->left = n - at;
        } else if (rc != JRPC__H1_MORE) {
            CHECK(rc == JRPC_UPSTREAM_FAULT_TOO_LARGE || rc == JRPC_UPSTREAM_FAULT_RESET,
                  "feed returned %d", rc);
            CHECK(detail[0] != '\0', "a fault without a detail");
            o->end = END_FAULT;
            o->fault = rc;
            memcpy(o->detail, detail, sizeof detail);
        }
    }
    if (rc == JRPC__H1_MORE) {
        if (jrpc__h1answer_eof(&a)) {
            o->end = END_DONE;
            o->at_eof = 1;
        } else {
            o->end = END_CUT;
        }
    }
    o->too_large = a.too_large;
    if (o->end == END_DONE)
        o->status = a.parser.status_code;
    CHECK(o->body.len <= max, "body %zu bytes kept over max_answer %zu", o->body.len, max);
}

static void same(const outcome_t *x, const outcome_t *y, const char *what)
{
    CHECK(x->end == y->end, "%s: ends %d and %d", what, x->end, y->end);
    CHECK(x->fault == y->fault, "%s: faults %d and %d", what, x->fault, y->fault);
    CHECK(x->keep == y->keep, "%s: keep %d and %d", what, x->keep, y->keep);
    CHECK(x->status == y->status, "%s: status %u and %u", what, x->status, y->status);
    CHECK(x->too_large == y->too_large, "%s: too_large %d and %d", what, x->too_large,
          y->too_large);
    /* A fault's or a cut answer's body is dropped (h1.c ends the attempt with the fault): how
     * much of it was kept before may depend on the pieces. */
    if (x->end != END_DONE)
        return;
    CHECK(x->body.len == y->body.len &&
              (x->body.len == 0 || memcmp(x->body.ptr, y->body.ptr, x->body.len) == 0),
          "%s: bodies of %zu and %zu bytes differ", what, x->body.len, y->body.len);
}

/* ---- The reference de-framer ----------------------------------------------------------------- */

enum { REF_UNKNOWN, REF_DONE, REF_TRUNCATED, REF_CLOSE };

typedef struct {
    int verdict;     /* REF_*: not understood; complete; its body cut short; ends with the close */
    unsigned status; /* the final answer's */
    size_t end;      /* REF_DONE: the offset right after the answer */
    jrpc_buf_t body; /* REF_DONE: the body */
} ref_t;

static int is_tchar(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Case-insensitive: the n bytes at p are the lower-case word w. */
static int word(const uint8_t *p, size_t n, const char *w)
{
    if (n != strlen(w))
        return 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + 32);
        if (c != (uint8_t)w[i])
            return 0;
    }
    return 1;
}

/* Strict framing of p[0..n): one answer after any interim ones. */
static void reference(const uint8_t *p, size_t n, ref_t *r)
{
    memset(r, 0, sizeof *r);
    jrpc_buf_init(&r->body);
    size_t i = 0;
    for (;;) {
        /* Status line: "HTTP/1.1 DDD reason\r\n". */
        if (n - i < 13 || memcmp(p + i, "HTTP/1.1 ", 9) != 0)
            return;
        i += 9;
        unsigned status = 0;
        for (int d = 0; d < 3; d++, i++) {
            if (p[i] < '0' || p[i] > '9')
                return;
            status = status * 10 + (unsigned)(p[i] - '0');
        }
        if (status < 100 || status > 599 || p[i++] != ' ')
            return;
        while (i < n && (p[i] == ' ' || p[i] == '\t' || (p[i] > 0x20 && p[i] < 0x7f)))
            i++;
        if (n - i < 2 || p[i] != '\r' || p[i + 1] != '\n')
            return;
        i += 2;
        /* Headers: "name: value\r\n", the value of visible bytes with single spaces inside. */
        long length = -1;
        int chunked = 0;
        for (;;) {
            if (n - i < 2)
                return;
            if (p[i] == '\r' && p[i + 1] == '\n') {
                i += 2;
                break;
            }
            size_t name = i;
            while (i < n && is_tchar(p[i]))
                i++;
            size_t name_len = i - name;
            if (name_len == 0 || i == n || p[i++] != ':')
                return;
            while (i < n && p[i] == ' ')
                i++;
            size_t value = i;
            while (i < n && p[i] > 0x20 && p[i] < 0x7f) {
                i++;
                if (i + 1 < n && p[i] == ' ' && p[i + 1] > 0x20 && p[i + 1] < 0x7f)
                    i++;
            }
            size_t value_len = i - value;
            if (n - i < 2 || p[i] != '\r' || p[i + 1] != '\n')
                return;
            i += 2;
            if (word(p + name, name_len, "content-length")) {
                if (length >= 0 || value_len == 0 || value_len > 6)
                    return;
                length = 0;
                for (size_t k = 0; k < value_len; k++) {
                    if (p[value + k] < '0' || p[value + k] > '9')
                        return;
                    length = length * 10 + (p[value + k] - '0');
                }
            } else if (word(p + name, name_len, "transfer-encoding")) {
                if (chunked || !word(p + value, value_len, "chunked"))
                    return;
                chunked = 1;
            } else if (name_len > 17 && word(p + name, 17, "transfer-encoding")) {
                /* http-parser 2.9.4 takes a name that merely starts so for Transfer-Encoding
                 * and then refuses a Content-Length beside it (docs/fuzzing.md). */
                return;
            } else if (word(p + name, name_len, "upgrade")) {
                return; /* a protocol switch: the reference leaves it to the parser */
            } else if (word(p + name, name_len, "connection") ||
                       word(p + name, name_len, "proxy-connection")) {
                if (!word(p + value, value_len, "close") &&
                    !word(p + value, value_len, "keep-alive"))
                    return; /* lists, upgrade */
            }
        }
        /* Both framings: RFC 9112 §6.3 lets a client refuse that, as http-parser does. */
        if (chunked && length >= 0)
            return;
        /* RFC 9112 §6.3: interim answers, 204 and 304 end at the blank line, whatever their
         * framing header says. */
        if (status / 100 == 1) {
            if (status == 101)
                return;
            continue; /* interim: the real answer follows */
        }
        r->status = status;
        if (status == 204 || status == 304) {
            r->end = i;
            r->verdict = REF_DONE;
            return;
        }
        if (length >= 0) {
            if (n - i < (size_t)length) {
                r->verdict = REF_TRUNCATED;
                return;
            }
            jrpc_buf_append(&r->body, p + i, (size_t)length);
            r->end = i + (size_t)length;
            r->verdict = REF_DONE;
            return;
        }
        if (!chunked) {
            r->verdict = REF_CLOSE;
            return;
        }
        /* Chunks: "HEX\r\n" data "\r\n", ending "0\r\n\r\n"; extensions and trailers unknown. */
        for (;;) {
            size_t size = 0, digits = 0;
            while (i < n && hexval(p[i]) >= 0 && digits < 6) {
                size = size * 16 + (size_t)hexval(p[i++]);
                digits++;
            }
            if (i == n) {
                r->verdict = REF_TRUNCATED;
                return;
            }
            if (digits == 0 || p[i] != '\r')
                return;
            if (++i == n) {
                r->verdict = REF_TRUNCATED;
                return;
            }
            if (p[i++] != '\n')
                return;
            if (size == 0)
                break;
            if (n - i < size + 2) {
                /* Truncated unless the bytes after the data there are already wrong. */
                if (n - i > size && p[i + size] != '\r')
                    return;
                r->verdict = REF_TRUNCATED;
                return;
            }
            if (p[i + size] != '\r' || p[i + size + 1] != '\n')
                return;
            jrpc_buf_append(&r->body, p + i, size);
            i += size + 2;
        }
        if (n - i < 2) {
            if (i < n && p[i] != '\r')
                return;
            r->verdict = REF_TRUNCATED;
            return;
        }
        if (p[i] != '\r' || p[i + 1] != '\n')
            return; /* a trailer */
        r->end = i + 2;
        r->verdict = REF_DONE;
        return;
    }
}

/* ---- The target ------------------------------------------------------------------------------ */

static unsigned long inputs, done, faults, too_large, ref_done, ref_truncated, ref_close;

static void summary(void)
{
    fprintf(stderr,
            "fuzz_h1: %lu inputs, %lu done, %lu faults (%lu too_large); reference: %lu complete, "
            "%lu truncated, %lu close-delimited\n",
            inputs, done, faults, too_large, ref_done, ref_truncated, ref_close);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    atexit(summary);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    cur_data = data;
    cur_size = size;
    inputs++;
    static const size_t maxes[] = {0, 1, 5, 16, 41, 100, 1000, 1 << 20};
    size_t max = maxes[data[0] & 7];
    int seed = data[1];
    const uint8_t *p = data + 2;
    size_t n = size - 2;

    outcome_t one, pieces, unlimited;
    run(p, n, max, -1, &one);
    run(p, n, max, seed, &pieces);
    run(p, n, SIZE_MAX, -1, &unlimited);

    /* 1. Split invariance. */
    same(&one, &pieces, "one piece vs pieces");

    /* 2. The limit. */
    CHECK(!unlimited.too_large, "too_large without a limit");
    int over = unlimited.body.len > max;
    CHECK(one.too_large == over, "too_large %d, but the body has %zu bytes for max_answer %zu",
          one.too_large, unlimited.body.len, max);
    CHECK((one.end == END_FAULT && one.fault == JRPC_UPSTREAM_FAULT_TOO_LARGE) == over,
          "end %d fault %d, but the body has %zu bytes for max_answer %zu", one.end, one.fault,
          unlimited.body.len, max);
    if (!over)
        same(&one, &unlimited, "max_answer vs no limit");
    done += one.end == END_DONE;
    faults += one.end == END_FAULT;
    too_large += one.too_large;

    /* 3 and 4. The reference. */
    ref_t ref;
    reference(p, n, &ref);
    const outcome_t *u = &unlimited;
    if (ref.verdict == REF_DONE) {
        ref_done++;
        CHECK(u->end == END_DONE && !u->at_eof,
              "the reference found a complete answer (%zu of %zu "
              "bytes), the step ended %d (fault %d, at eof %d)",
              ref.end, n, u->end, u->fault, u->at_eof);
        CHECK(u->status == ref.status, "status %u, the reference %u", u->status, ref.status);
        CHECK(u->body.len == ref.body.len &&
                  (u->body.len == 0 || memcmp(u->body.ptr, ref.body.ptr, u->body.len) == 0),
              "body of %zu bytes, the reference's %zu", u->body.len, ref.body.len);
        CHECK(!u->keep || ref.end == n, "keep-alive with %zu bytes after the answer", n - ref.end);
        CHECK(!one.keep || ref.end == n, "keep-alive with %zu bytes after the answer", n - ref.end);
    } else if (ref.verdict == REF_TRUNCATED) {
        ref_truncated++;
        CHECK(u->end == END_CUT, "the reference found a truncated answer, the step ended %d (%s)",
              u->end, u->detail);
    } else if (ref.verdict == REF_CLOSE) {
        ref_close++;
        CHECK(!u->keep && !one.keep && !pieces.keep, "keep-alive on a close-delimited answer");
        CHECK(u->end != END_DONE || u->at_eof, "a close-delimited answer done before the close");
    }
    jrpc_buf_free(&ref.body);
    jrpc_buf_free(&one.body);
    jrpc_buf_free(&pieces.body);
    jrpc_buf_free(&unlimited.body);
    return 0;
}
