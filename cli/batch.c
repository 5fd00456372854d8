/* SPDX-License-Identifier: MIT */
/* batch.c — `jrpc batch`: sends any number of calls as chunks no larger than the server takes,
 * several chunks in flight (curl multi over keep-alive connections, or pipelined on one
 * WebSocket), retries the items a rate limit refused, and prints every answer exactly once, in
 * input order or as it comes, as one JSON array or as JSONL. Answers are matched to items by id
 * (the item's index + 1 on the wire), never by position, so a server that reorders is fine. */
#define _GNU_SOURCE
#include "batch.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Chunk sizes when neither --chunk nor the server says otherwise: jrpcd's (and Alchemy's)
 * defaults, 1000 per HTTP batch and 20 per WebSocket message. */
#define DEFAULT_CHUNK_HTTP 1000u
#define DEFAULT_CHUNK_WS 20u
/* The most a cap the server advertises (Jrpc-Max-Batch) raises the chunk to. A chunk is built,
 * sent, answered and printed whole: 10 000 calls is a body of about half a megabyte and an answer
 * of a few, progress and retries still move in steps a user sees, and the cost of one request
 * is spread over enough calls to vanish. A server that takes a million per batch would otherwise
 * get one request holding the whole input and nothing printed until it is all done. */
#define MAX_ADVERTISED_CHUNK 10000u
/* Retry backoff without a hint from the server: 100 ms doubling per try, at most 10 s. */
#define BACKOFF_BASE_MS 100.0
#define BACKOFF_MAX_MS 10000.0
/* Retries due this close to the first go with it: the items of one refused answer are queued a
 * clock reading apart each, and the timer for the first may fire before the last is due, which
 * split one retry into two requests. Far below any backoff, so a spread herd stays spread. */
#define RETRY_TOGETHER_S 0.001
/* Distinct error codes the summary counts one by one; the rest are "other". */
#define MAX_CODES 16

/* An answer body; items that were answered from it hold a reference until they are printed. */
struct cli_resp {
    jrpc_buf_t body;
    size_t refs;
};

typedef struct chunk {
    size_t *idx;               /* the items it carries */
    size_t n, cap;             /* used / allocated entries of idx */
    jrpc_buf_t req;            /* the request body */
    cli_resp_t *resp;          /* the answer being received */
    CURL *easy;                /* HTTP: the handle, reused for the next chunk */
    double retry_after;        /* HTTP Retry-After of the answer, ms; 0 none */
    unsigned max_batch;        /* HTTP Jrpc-Max-Batch of the answer; 0 none */
    int busy;                  /* in flight */
    char why[CURL_ERROR_SIZE]; /* HTTP: curl's words for a failure */
} chunk_t;

typedef struct engine {
    const cli_opts_t *o;
    cli_items_t items;
    unsigned chunk; /* items per chunk now */
    int ws;         /* over WebSocket */
    chunk_t *slots; /* o->parallel of them */
    unsigned inflight;
    size_t next_new; /* first item never sent */
    size_t cursor;   /* ordered output: first item not printed */
    size_t window;   /* ordered output: how far sending may run ahead of printing */
    size_t *redo;    /* items to send again at once (after a re-split); FIFO */
    size_t redo_head, redo_n, redo_cap;
    size_t *later; /* items waiting for their retry time; FIFO */
    size_t later_head, later_n, later_cap;
    size_t done, ok, failed, printed;
    int codes[MAX_CODES]; /* failed items by code */
    size_t code_n[MAX_CODES];
    unsigned ncodes;
    size_t other_failed;
    int fatal; /* a transport error ended the run */
    double t0, last_progress;
    int progress;
    FILE *out;
    struct curl_slist *hdrs;
    CURLM *multi;
    cli_ws_t *wsc;
} engine_t;

static void resp_unref(cli_resp_t *r)
{
    if (r != NULL && --r->refs == 0) {
        jrpc_buf_free(&r->body);
        free(r);
    }
}

static cli_resp_t *resp_new(void)
{
    cli_resp_t *r = calloc(1, sizeof(*r));
    if (r != NULL) {
        jrpc_buf_init(&r->body);
        r->refs = 1; /* the chunk's, dropped when the chunk is done with it */
    }
    return r;
}

static int fifo_push(size_t **v, size_t *head, size_t *n, size_t *cap, size_t x)
{
    if (*head + *n == *cap) {
        if (*head > 0) {
            memmove(*v, *v + *head, *n * sizeof(**v));
            *head = 0;
        }
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 1024;
            size_t *nv = realloc(*v, nc * sizeof(**v));
            if (nv == NULL)
                return -1;
            *v = nv;
            *cap = nc;
        }
    }
    (*v)[*head + (*n)++] = x;
    return 0;
}

static void count_failure(engine_t *e, int code)
{
    e->failed++;
    for (unsigned i = 0; i < e->ncodes; i++) {
        if (e->codes[i] == code) {
            e->code_n[i]++;
            return;
        }
    }
    if (e->ncodes < MAX_CODES) {
        e->codes[e->ncodes] = code;
        e->code_n[e->ncodes++] = 1;
    } else {
        e->other_failed++;
    }
}

/* ---- output ---------------------------------------------------------------------------------- */

/* Writes answer a with its "id" member replaced by the input's id text. Output is stdout, used by
 * this thread alone: the unlocked stdio calls skip a lock per call, a million times. */
static void write_with_id(FILE *f, jrpc_json_t a, jrpc_json_t id)
{
    jrpc_json_iter_t it;
    jrpc_json_t k, v;
    int first = 1;
    jrpc_json_iter_init(&it, a);
    putc_unlocked('{', f);
    while (jrpc_json_iter_next(&it, &k, &v)) {
        if (!first)
            putc_unlocked(',', f);
        first = 0;
        fwrite_unlocked(k.ptr, 1, k.len, f);
        putc_unlocked(':', f);
        if (jrpc_json_string_eq(k, "id", 2))
            fwrite_unlocked(id.ptr, 1, id.len, f);
        else
            fwrite_unlocked(v.ptr, 1, v.len, f);
    }
    putc_unlocked('}', f);
}

static void print_item(engine_t *e, cli_item_t *it)
{
    FILE *f = e->out;
    if (!e->o->jsonl)
        putc_unlocked(e->printed == 0 ? '[' : ',', f);
    const char *a = it->resp->body.ptr + it->aoff;
    if (it->own_id) {
        jrpc_json_t id;
        jrpc_json_get((jrpc_json_t){it->src, it->srclen}, "id", &id);
        write_with_id(f, (jrpc_json_t){a, it->alen}, id);
    } else {
        fwrite_unlocked(a, 1, it->alen, f);
    }
    if (e->o->jsonl)
        putc_unlocked('\n', f);
    e->printed++;
    resp_unref(it->resp);
    it->resp = NULL;
}

static void flush_ordered(engine_t *e)
{
    while (e->cursor < e->items.n && e->items.v[e->cursor].state == CLI_DONE)
        print_item(e, &e->items.v[e->cursor++]);
}

static void show_progress(engine_t *e, int final)
{
    double now = cli_now();
    if (!e->progress || (!final && now - e->last_progress < 0.2))
        return;
    e->last_progress = now;
    double el = now - e->t0, rate = el > 0 ? (double)e->done / el : 0;
    size_t total = e->items.n;
    double eta = rate > 0 ? (double)(total - e->done) / rate : 0;
    fprintf(stderr, "\r\033[K%zu/%zu calls %3.0f%%  %.0f calls/s  ETA %d:%02d  %zu errors%s",
            e->done, total, total ? 100.0 * (double)e->done / (double)total : 100.0, rate,
            (int)eta / 60, (int)eta % 60, e->failed, final ? "\n" : "");
    fflush(stderr);
}

/* ---- answers --------------------------------------------------------------------------------- */

/* Backoff for an item's next try: the server's hint if it gave one, else exponential. */
static double backoff_ms(const cli_item_t *it, double hint_ms)
{
    if (hint_ms > 0)
        return hint_ms;
    double ms = BACKOFF_BASE_MS * ldexp(1.0, it->tries);
    ms = ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms;
    return ms * (0.75 + 0.5 * ((double)rand() / RAND_MAX)); /* spread the herd */
}

static int requeue_later(engine_t *e, size_t i, double hint_ms)
{
    cli_item_t *it = &e->items.v[i];
    it->ready = cli_now() + backoff_ms(it, hint_ms) / 1000.0;
    it->tries++;
    it->state = CLI_QUEUED;
    return fifo_push(&e->later, &e->later_head, &e->later_n, &e->later_cap, i);
}

/* One answer object and the members the client looks at (ptr NULL: absent), found in one walk:
 * a million answers are read here, and a lookup per member would walk each object thrice. */
typedef struct answer {
    jrpc_json_t all;
    jrpc_json_t id;
    jrpc_json_t error;
} answer_t;

static answer_t answer_scan(jrpc_json_t a)
{
    answer_t v = {a, {NULL, 0}, {NULL, 0}};
    jrpc_json_iter_t it;
    jrpc_json_t k, m;
    if (jrpc_json_iter_init(&it, a) != 0 || !it.object)
        return v;
    while (jrpc_json_iter_next(&it, &k, &m)) {
        if (k.len == 4 && memcmp(k.ptr, "\"id\"", 4) == 0)
            v.id = m;
        else if (k.len == 7 && memcmp(k.ptr, "\"error\"", 7) == 0)
            v.error = m;
        else if (jrpc_json_string_eq(k, "id", 2)) /* escaped spellings, rare */
            v.id = m;
        else if (jrpc_json_string_eq(k, "error", 5))
            v.error = m;
    }
    return v;
}

/* Marks item i answered by av inside r. */
static void finish(engine_t *e, size_t i, cli_resp_t *r, const answer_t *av)
{
    cli_item_t *it = &e->items.v[i];
    jrpc_json_t code, a = av->all;
    it->state = CLI_DONE;
    it->resp = r;
    r->refs++;
    it->aoff = (uint32_t)(a.ptr - r->body.ptr);
    it->alen = (uint32_t)a.len;
    e->done++;
    if (av->error.ptr != NULL) {
        int64_t c = 0;
        if (jrpc_json_get(av->error, "code", &code) != 0 || jrpc_json_int64(code, &c) != 0 ||
            c < INT32_MIN || c > INT32_MAX)
            c = 0;
        count_failure(e, (int)c);
    } else {
        e->ok++;
    }
    if (e->o->unordered)
        print_item(e, it);
}

/* The -32005 "batch of N exceeds limit M" answer: M, else 0. */
static unsigned overcap_limit(jrpc_json_t err)
{
    jrpc_json_t msg;
    char text[128];
    size_t len;
    unsigned long n = 0, m = 0;
    if (jrpc_json_get(err, "message", &msg) != 0 ||
        jrpc_json_string(msg, text, sizeof text, &len) != 0)
        return 0;
    if (sscanf(text, "batch of %lu exceeds limit %lu", &n, &m) != 2 || m == 0 || m > 1000000)
        return 0;
    return (unsigned)m;
}

/* 1 when answer a is a -32005 the item may try again: a rate limit or a busy server (not the
 * batch cap, which is fixed by re-splitting). *hint_ms gets data.retry_after_ms if present. */
static int retryable(const answer_t *av, double *hint_ms)
{
    jrpc_json_t err = av->error, code, data, ra;
    int64_t c;
    *hint_ms = 0;
    if (err.ptr == NULL || jrpc_json_get(err, "code", &code) != 0 ||
        jrpc_json_int64(code, &c) != 0 || c != JRPC_CODE_LIMIT_EXCEEDED || overcap_limit(err) != 0)
        return 0;
    double d;
    if (jrpc_json_get(err, "data", &data) == 0 && jrpc_json_get(data, "retry_after_ms", &ra) == 0 &&
        jrpc_json_double(ra, &d) == 0 && d > 0 && d < 3600e3)
        *hint_ms = d;
    return 1;
}

/* The item index an answer is for, or (size_t)-1. */
static size_t answer_item(const engine_t *e, const answer_t *av)
{
    uint64_t v;
    if (av->id.ptr == NULL || jrpc_json_uint64(av->id, &v) != 0 || v == 0 || v > e->items.n)
        return (size_t)-1;
    return (size_t)(v - 1);
}

static void chunk_release(engine_t *e, chunk_t *c)
{
    c->busy = 0;
    c->n = 0;
    e->inflight--;
}

/* Sends the whole chunk again after a transport failure, or ends the run. */
static void chunk_failed(engine_t *e, chunk_t *c, const char *why, double hint_ms)
{
    for (size_t k = 0; k < c->n; k++) {
        cli_item_t *it = &e->items.v[c->idx[k]];
        if (it->state != CLI_SENT)
            continue;
        if (it->tries >= e->o->retries) {
            if (!e->fatal)
                cli_fail("%s", why);
            e->fatal = 1;
            break;
        }
        if (requeue_later(e, c->idx[k], hint_ms) != 0)
            e->fatal = 1;
    }
    chunk_release(e, c);
}

/* Items of c the answer left out: answered with the server's error object err when it answered
 * the whole chunk with one, else (a server fault) with a made-up -32603 carrying msg, so that
 * every input still gets exactly one output. */
static void answer_missing(engine_t *e, chunk_t *c, jrpc_json_t err, const char *msg)
{
    cli_resp_t *r = NULL;
    for (size_t k = 0; k < c->n; k++) {
        size_t i = c->idx[k];
        if (e->items.v[i].state != CLI_SENT)
            continue;
        if (r == NULL && (r = resp_new()) == NULL) {
            e->fatal = 1;
            return;
        }
        size_t off = r->body.len;
        if (err.ptr != NULL) {
            jrpc_buf_appendz(&r->body, "{\"jsonrpc\":\"2.0\",\"error\":");
            jrpc_buf_append(&r->body, err.ptr, err.len);
        } else {
            jrpc_buf_appendz(&r->body,
                             "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32603,\"message\":");
            jrpc_buf_json_string(&r->body, msg, strlen(msg));
            jrpc_buf_appendz(&r->body, "}");
        }
        jrpc_buf_appendz(&r->body, ",\"id\":");
        jrpc_buf_json_uint64(&r->body, (uint64_t)i + 1);
        jrpc_buf_appendz(&r->body, "}");
        e->items.v[i].aoff = (uint32_t)off; /* fixed up below once the buffer stops moving */
        e->items.v[i].alen = (uint32_t)(r->body.len - off);
        e->items.v[i].state = CLI_QUEUED + 10; /* marker: answered from r */
    }
    if (r == NULL)
        return;
    if (r->body.err) {
        e->fatal = 1;
        cli_fail("%s", "out of memory");
    }
    for (size_t k = 0; k < c->n; k++) {
        cli_item_t *it = &e->items.v[c->idx[k]];
        if (it->state != CLI_QUEUED + 10)
            continue;
        it->state = CLI_SENT;
        jrpc_json_t a = {r->body.ptr + it->aoff, it->alen};
        answer_t av = answer_scan(a);
        finish(e, c->idx[k], r, &av);
    }
    resp_unref(r);
}

/* One answer element a for the items of chunk c. */
static void take_answer(engine_t *e, cli_resp_t *r, jrpc_json_t a, double header_ms)
{
    answer_t av = answer_scan(a);
    size_t i = answer_item(e, &av);
    if (i == (size_t)-1 || e->items.v[i].state != CLI_SENT)
        return; /* not ours, or a duplicate: the item is answered below as missing */
    double hint;
    if (retryable(&av, &hint) && e->items.v[i].tries < e->o->retries) {
        if (requeue_later(e, i, hint > 0 ? hint : header_ms) != 0)
            e->fatal = 1;
        return;
    }
    finish(e, i, r, &av);
}

/* The server advertised its batch cap: it is the chunk from now on (unless --chunk said one),
 * so no later chunk is refused for its size. */
static void learn_cap(engine_t *e, unsigned cap)
{
    if (e->o->chunk != 0 || cap == 0)
        return;
    e->chunk = cap < MAX_ADVERTISED_CHUNK ? cap : MAX_ADVERTISED_CHUNK;
    size_t w = (size_t)e->chunk * e->o->parallel * 4;
    if (w > e->window)
        e->window = w;
}

/* Re-splits after the server said the chunk was over its cap: the items go again, at once, in
 * chunks of the cap. Not a retry: nothing ran. */
static int resplit(engine_t *e, chunk_t *c, unsigned limit, const char *why)
{
    if (limit >= c->n)
        return 0;
    if (e->o->chunk != 0 && limit < e->chunk)
        fprintf(stderr, "jrpc: %s; --chunk %u lowered to %u\n", why, e->chunk, limit);
    if (limit < e->chunk)
        e->chunk = limit;
    for (size_t k = 0; k < c->n; k++) {
        e->items.v[c->idx[k]].state = CLI_QUEUED;
        if (fifo_push(&e->redo, &e->redo_head, &e->redo_n, &e->redo_cap, c->idx[k]) != 0)
            e->fatal = 1;
    }
    return 1;
}

/* A chunk's answer arrived: status is the HTTP status (0 over WebSocket). */
static void chunk_done(engine_t *e, chunk_t *c, long status)
{
    cli_resp_t *r = c->resp;
    c->resp = NULL;
    jrpc_json_t body = {r->body.ptr, r->body.len}, a;
    char why[96];
    learn_cap(e, c->max_batch);
    if (status == 413 && c->n > 1) {
        /* Body over the server's cap (jrpcd's max_body): halve the chunks until they fit. */
        snprintf(why, sizeof why, "the server refused %zu calls in one body (HTTP 413)", c->n);
        resplit(e, c, (unsigned)(c->n / 2), why);
        resp_unref(r);
        chunk_release(e, c);
        return;
    }
    if (r->body.len == 0 || jrpc_json_validate(body.ptr, body.len, 0, NULL) != 0) {
        if (e->ws)
            snprintf(why, sizeof why, "%s", "websocket: the server's message is not JSON");
        else
            snprintf(why, sizeof why, "HTTP %ld with %s", status,
                     r->body.len ? "a body that is not JSON" : "no body");
        if (status == 429 || status == 503 || status == 502 || status == 504) {
            chunk_failed(e, c, why, c->retry_after);
        } else {
            cli_fail("%s", why);
            e->fatal = 1;
            chunk_release(e, c);
        }
        resp_unref(r);
        return;
    }
    jrpc_json_type_t t = jrpc_json_type(body);
    if (t == JRPC_JSON_OBJECT) {
        /* One answer for the whole chunk: an error that applies to every item (the cap, a 429,
         * a body too large). */
        jrpc_json_t err = {NULL, 0};
        double hint = 0;
        unsigned limit;
        if (jrpc_json_get(body, "error", &err) != 0) {
            err.ptr = NULL;
            if (c->n == 1) { /* a server that answers a one-item batch unwrapped */
                take_answer(e, r, body, c->retry_after);
            }
        } else if ((limit = overcap_limit(err)) != 0 &&
                   (snprintf(why, sizeof why, "the server takes at most %u calls per batch", limit),
                    resplit(e, c, limit, why))) {
            /* sent again in smaller chunks */
        } else if (retryable(&(answer_t){body, {NULL, 0}, err}, &hint)) {
            for (size_t k = 0; k < c->n; k++) {
                cli_item_t *it = &e->items.v[c->idx[k]];
                if (it->state == CLI_SENT && it->tries < e->o->retries &&
                    requeue_later(e, c->idx[k], hint > 0 ? hint : c->retry_after) != 0)
                    e->fatal = 1;
            }
        }
        if (!e->fatal) {
            char msg[96];
            snprintf(msg, sizeof msg, "HTTP %ld: the server answered %zu calls with one object",
                     status, c->n);
            answer_missing(e, c, err, msg);
        }
        resp_unref(r);
        chunk_release(e, c);
        return;
    }
    if (t != JRPC_JSON_ARRAY) {
        chunk_failed(e, c, "the server's answer is neither an array nor an object", 0);
        resp_unref(r);
        return;
    }
    jrpc_json_iter_t it;
    jrpc_json_iter_init(&it, body);
    int first = 1;
    while (jrpc_json_iter_next(&it, NULL, &a)) {
        if (first) {
            first = 0;
            jrpc_json_t err;
            unsigned limit;
            if (jrpc_json_get(a, "error", &err) == 0 && (limit = overcap_limit(err)) != 0) {
                snprintf(why, sizeof why, "the server takes at most %u calls per batch", limit);
                if (resplit(e, c, limit, why))
                    break;
            }
        }
        if (jrpc_json_type(a) == JRPC_JSON_OBJECT)
            take_answer(e, r, a, c->retry_after);
    }
    answer_missing(e, c, (jrpc_json_t){NULL, 0}, "the server's answer left this call out");
    resp_unref(r);
    chunk_release(e, c);
}

/* ---- dispatch -------------------------------------------------------------------------------- */

/* Fills c with up to e->chunk items that may go now; 0 when there are none. */
static size_t chunk_fill(engine_t *e, chunk_t *c)
{
    double now = cli_now();
    if (c->cap < e->chunk) {
        size_t *v = realloc(c->idx, e->chunk * sizeof(*v));
        if (v == NULL)
            return 0;
        c->idx = v;
        c->cap = e->chunk;
    }
    c->n = 0;
    while (c->n < e->chunk && e->redo_n > 0) {
        c->idx[c->n++] = e->redo[e->redo_head++];
        e->redo_n--;
    }
    while (c->n < e->chunk && e->later_n > 0 &&
           e->items.v[e->later[e->later_head]].ready <= now + RETRY_TOGETHER_S) {
        c->idx[c->n++] = e->later[e->later_head++];
        e->later_n--;
    }
    size_t limit = e->o->unordered ? e->items.n : e->cursor + e->window;
    while (c->n < e->chunk && e->next_new < e->items.n && e->next_new < limit)
        c->idx[c->n++] = e->next_new++;
    return c->n;
}

static int chunk_build(engine_t *e, chunk_t *c)
{
    c->req.len = 0;
    jrpc_buf_append(&c->req, "[", 1);
    for (size_t k = 0; k < c->n; k++) {
        if (k > 0)
            jrpc_buf_append(&c->req, ",", 1);
        e->items.v[c->idx[k]].state = CLI_SENT;
        cli_item_request(&e->items.v[c->idx[k]], c->idx[k], &c->req);
    }
    jrpc_buf_append(&c->req, "]", 1);
    if ((c->resp = resp_new()) == NULL || c->req.err)
        return cli_fail("%s", "out of memory");
    c->retry_after = 0;
    c->max_batch = 0;
    c->busy = 1;
    e->inflight++;
    return 0;
}

/* Seconds until the first waiting retry may go (0: now or nothing waits). */
static double next_ready(const engine_t *e)
{
    if (e->redo_n > 0 || e->later_n == 0)
        return 0;
    double d = e->items.v[e->later[e->later_head]].ready - cli_now();
    return d > 0 ? d : 0;
}

static int more_to_send(const engine_t *e)
{
    return e->redo_n > 0 || e->later_n > 0 || e->next_new < e->items.n;
}

/* ---- HTTP ------------------------------------------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    chunk_t *c = arg;
    return jrpc_buf_append(&c->resp->body, p, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    chunk_t *c = arg;
    size_t len = size * n;
    if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        char tmp[32];
        size_t l = len - 12 < sizeof tmp - 1 ? len - 12 : sizeof tmp - 1;
        memcpy(tmp, p + 12, l);
        tmp[l] = '\0';
        char *end;
        double s = strtod(tmp, &end);
        if (end != tmp && s > 0 && s < 3600) /* seconds; an HTTP date falls back to backoff */
            c->retry_after = s * 1000.0;
    } else if (len > 15 && strncasecmp(p, "Jrpc-Max-Batch:", 15) == 0) {
        unsigned long v = 0;
        size_t i = 15;
        while (i < len && (p[i] == ' ' || p[i] == '\t'))
            i++;
        for (; i < len && p[i] >= '0' && p[i] <= '9' && v < 1000000000ul; i++)
            v = v * 10 + (unsigned long)(p[i] - '0');
        c->max_batch = v < 1000000000ul ? (unsigned)v : 0;
    }
    return len;
}

static int http_submit(engine_t *e, chunk_t *c)
{
    if (c->easy == NULL) {
        if ((c->easy = curl_easy_init()) == NULL)
            return cli_fail("%s", "cannot create a curl handle");
        curl_easy_setopt(c->easy, CURLOPT_URL, e->o->url);
        curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, e->hdrs);
        curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c);
        curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
        curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c->easy, CURLOPT_ACCEPT_ENCODING, "");
        curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->why);
        if (e->o->timeout_ms > 0)
            curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, e->o->timeout_ms);
        cli_easy_tls(c->easy, e->o);
    }
    c->why[0] = '\0';
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->req.ptr);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->req.len);
    if (curl_multi_add_handle(e->multi, c->easy) != CURLM_OK)
        return cli_fail("%s", "curl_multi_add_handle failed");
    return 0;
}

static void http_reap(engine_t *e)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        chunk_t *c;
        long status = 0;
        CURL *easy = msg->easy_handle;
        CURLcode res = msg->data.result;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&c);
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(e->multi, easy);
        if (res != CURLE_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s: %s", e->o->url,
                     c->why[0] ? c->why : curl_easy_strerror(res));
            resp_unref(c->resp);
            c->resp = NULL;
            chunk_failed(e, c, why, 0);
        } else {
            chunk_done(e, c, status);
        }
    }
}

/* ---- WebSocket: chunks pipelined on one connection, answers matched to chunks by id ---------- */

static chunk_t *ws_owner(engine_t *e, jrpc_json_t body)
{
    jrpc_json_t a;
    size_t i = (size_t)-1;
    if (jrpc_json_type(body) == JRPC_JSON_ARRAY && jrpc_json_at(body, 0, &a) == 0) {
        answer_t av = answer_scan(a);
        i = answer_item(e, &av);
    }
    for (unsigned s = 0; s < e->o->parallel; s++) {
        chunk_t *c = &e->slots[s];
        if (!c->busy)
            continue;
        if (i == (size_t)-1 && e->inflight == 1)
            return c; /* an unmatched answer while one chunk is out: it is that chunk's */
        for (size_t k = 0; k < c->n; k++)
            if (c->idx[k] == i)
                return c;
    }
    return NULL;
}

static int ws_submit(engine_t *e, chunk_t *c)
{
    return cli_ws_send(e->wsc, c->req.ptr, c->req.len) == 0 ? 0 : 2;
}

static void ws_wait(engine_t *e)
{
    jrpc_buf_t msg;
    jrpc_buf_init(&msg);
    int r = cli_ws_recv(e->wsc, &msg, e->o->timeout_ms);
    if (r <= 0) {
        if (r == 0)
            cli_fail("%s", "websocket: the server closed the connection");
        e->fatal = 1;
    } else if (jrpc_json_validate(msg.ptr, msg.len, 0, NULL) == 0) {
        chunk_t *c = ws_owner(e, (jrpc_json_t){msg.ptr, msg.len});
        if (c != NULL) {
            jrpc_buf_t tmp = c->resp->body; /* hand the message to the chunk's answer */
            c->resp->body = msg;
            msg = tmp;
            chunk_done(e, c, 0);
        }
        /* else: a push or a stray answer, not part of the batch */
    }
    jrpc_buf_free(&msg);
}

/* ---- the run --------------------------------------------------------------------------------- */

static void summary(const engine_t *e)
{
    double el = cli_now() - e->t0;
    fprintf(stderr, "jrpc: %zu calls, %zu ok, %zu failed", e->items.n, e->ok, e->failed);
    if (e->failed > 0) {
        fputs(" (", stderr);
        for (unsigned i = 0; i < e->ncodes; i++)
            fprintf(stderr, "%s%d: %zu", i ? ", " : "", e->codes[i], e->code_n[i]);
        if (e->other_failed)
            fprintf(stderr, ", other codes: %zu", e->other_failed);
        fputc(')', stderr);
    }
    if (e->done < e->items.n)
        fprintf(stderr, ", %zu unanswered", e->items.n - e->done);
    fprintf(stderr, ", %.3f s, %.0f calls/s\n", el, el > 0 ? (double)e->done / el : 0.0);
}

static void run(engine_t *e)
{
    while (!e->fatal && (more_to_send(e) || e->inflight > 0)) {
        for (unsigned s = 0; s < e->o->parallel && !e->fatal; s++) {
            chunk_t *c = &e->slots[s];
            if (c->busy || chunk_fill(e, c) == 0) {
                if (!c->busy && c->cap < e->chunk) /* chunk_fill could not grow idx */
                    e->fatal = cli_fail("%s", "out of memory");
                continue;
            }
            if (chunk_build(e, c) != 0 || (e->ws ? ws_submit(e, c) : http_submit(e, c)) != 0)
                e->fatal = 1;
        }
        if (e->fatal)
            break;
        if (e->inflight == 0) {
            /* Only retries waiting for their time (or an ordered window that cannot move,
             * which cannot happen with nothing in flight). */
            double d = next_ready(e);
            if (d > 0)
                usleep((useconds_t)(d * 1e6) + 1000);
            continue;
        }
        if (e->ws) {
            ws_wait(e);
        } else {
            int running;
            curl_multi_perform(e->multi, &running);
            http_reap(e);
            if (e->inflight > 0) {
                double d = next_ready(e);
                int ms = e->later_n > 0 && d < 0.1 ? (int)(d * 1000) + 1 : 100;
                curl_multi_poll(e->multi, NULL, 0, ms, NULL);
            }
        }
        if (!e->o->unordered)
            flush_ordered(e);
        show_progress(e, 0);
    }
}

int cli_batch(const cli_opts_t *o, const char *path)
{
    engine_t e;
    jrpc_buf_t in;
    memset(&e, 0, sizeof e);
    jrpc_buf_init(&in);
    e.o = o;
    e.out = stdout;
    e.ws = cli_is_ws(o->url);
    e.chunk = o->chunk ? o->chunk : e.ws ? DEFAULT_CHUNK_WS : DEFAULT_CHUNK_HTTP;
    int rc = cli_read_all(path, &in);
    if (rc == 0)
        rc = cli_items_parse(in.ptr, in.len, &e.items);
    if (rc != 0)
        goto done;
    static char outbuf[1 << 20];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    e.window = (size_t)e.chunk * o->parallel * 4;
    e.progress = o->progress < 0 ? isatty(2) : o->progress;
    e.slots = calloc(o->parallel, sizeof(*e.slots));
    if (e.slots == NULL) {
        rc = cli_fail("%s", "out of memory");
        goto done;
    }
    for (unsigned s = 0; s < o->parallel; s++)
        jrpc_buf_init(&e.slots[s].req);
    if (e.ws) {
        if (e.items.n > 0 && (e.wsc = cli_ws_open(o)) == NULL) {
            rc = 2;
            goto done;
        }
        if (e.wsc != NULL)
            learn_cap(&e, cli_ws_max_batch(e.wsc));
    } else {
        e.hdrs = cli_headers_new(o);
        if ((e.multi = curl_multi_init()) == NULL) {
            rc = cli_fail("%s", "curl_multi_init failed");
            goto done;
        }
    }
    srand((unsigned)getpid() ^ (unsigned)(cli_now() * 1e6)); /* retry jitter differs per run */
    e.t0 = cli_now();
    show_progress(&e, 0);
    run(&e);
    if (!o->unordered)
        flush_ordered(&e);
    if (e.printed > 0 && !o->jsonl)
        fputs("]\n", stdout);
    fflush(stdout);
    show_progress(&e, 1);
    summary(&e);
    rc = e.fatal ? 2 : e.failed > 0 ? 1 : 0;
done:
    if (e.slots != NULL) {
        for (unsigned s = 0; s < o->parallel; s++) {
            chunk_t *c = &e.slots[s];
            if (c->easy != NULL) {
                if (c->busy && e.multi != NULL)
                    curl_multi_remove_handle(e.multi, c->easy);
                curl_easy_cleanup(c->easy);
            }
            if (c->resp != NULL)
                resp_unref(c->resp);
            jrpc_buf_free(&c->req);
            free(c->idx);
        }
        free(e.slots);
    }
    for (size_t i = 0; i < e.items.n; i++)
        if (e.items.v[i].resp != NULL)
            resp_unref(e.items.v[i].resp);
    if (e.multi != NULL)
        curl_multi_cleanup(e.multi);
    curl_slist_free_all(e.hdrs);
    cli_ws_close(e.wsc);
    free(e.items.v);
    free(e.redo);
    free(e.later);
    jrpc_buf_free(&in);
    fflush(stdout);
    return rc;
}
