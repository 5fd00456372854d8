/* SPDX-License-Identifier: MIT */
/* jrpc.c — the command-line client: call a method, send a notification, send any number of calls
 * as batches (batch.c), follow a subscription, or load a server (bench.c). HTTP goes through
 * libcurl (keep-alive, any URL scheme curl speaks), WebSocket through the client in ws.c. JSON
 * given on the command line is checked with libjrpc's strict validator before it is sent, and
 * results are printed byte-exact as the server sent them. */
#define _GNU_SOURCE /* memmem */
#include "cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_URL "http://127.0.0.1:8000/api/v1/endpoint"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: jrpc [options] call METHOD [PARAM...]      call a method, print its result\n"
        "       jrpc [options] notify METHOD [PARAM...]    send a notification (no answer)\n"
        "       jrpc [options] batch [FILE|-]              send many calls in chunks; input is\n"
        "                            lines 'METHOD [PARAMS]', JSONL request objects, or a JSON\n"
        "                            array of requests\n"
        "       jrpc [options] subscribe METHOD [PARAM...] WebSocket: print notifications\n"
        "       jrpc [options] bench METHOD [PARAM...]     load the server, print req/s, latency\n"
        "\n"
        "PARAMs: one JSON array or object is the params as is ('[42, 23]'); otherwise each is an\n"
        "element of a params array: numbers, true, false, null and JSON text as such, anything\n"
        "else as a string (jrpc call shares.balance 0x2f...). --params JSON gives them "
        "explicitly.\n"
        "options:\n"
        "  -u, --url URL        http(s):// or ws(s):// endpoint (default $JRPC_URL or\n"
        "                       " DEFAULT_URL ")\n"
        "  -H, --header 'N: V'  send this header too (repeatable)\n"
        "      --cacert FILE    https://, wss://: trust the CA certificates in FILE (PEM)\n"
        "                       instead of the system's\n"
        "  -k, --insecure       https://, wss://: do not check the certificate or host name\n"
        "  -t, --timeout D      give up on a request after D (500ms, 5s, 1m; bare: seconds)\n"
        "  -r, --raw            call: print the response body as received\n"
        "      --params JSON    call/notify/subscribe: the params, explicitly\n"
        "  batch:\n"
        "      --chunk N        calls per request (default: the cap the server advertises,\n"
        "                       at most 10000, or learns from a -32005; else 1000 over HTTP\n"
        "                       and 20 over WebSocket)\n"
        "  -P, --parallel N     chunks in flight (default 1)\n"
        "      --unordered      print answers as they complete (default: input order)\n"
        "      --jsonl          one answer per line instead of one JSON array\n"
        "      --retry N        retry items refused by a rate limit (-32005, HTTP 429/503) or\n"
        "                       lost to a connection error, N times with backoff (default 0)\n"
        "      --progress, --no-progress   progress on stderr (default: when it is a terminal)\n"
        "  subscribe:\n"
        "      --count N        stop after N notifications\n"
        "      --unsubscribe M  the method that ends it (default: METHOD with subscribe\n"
        "                       replaced by unsubscribe)\n"
        "  bench:\n"
        "  -c, --conns N        parallel connections (default 8)\n"
        "  -n, --requests N     requests in all (default 10000)\n"
        "  -d, --duration D     run for D instead of a count\n"
        "  -h, --help           this text\n"
        "  -V, --version        print the version\n"
        "exit status: 0 every call succeeded, 1 some call failed (a JSON-RPC error),\n"
        "             2 a usage or transport error\n");
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "jrpc: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

volatile sig_atomic_t cli_interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    cli_interrupted = 1;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cli_is_ws(const char *url)
{
    return strncmp(url, "ws://", 5) == 0 || strncmp(url, "wss://", 6) == 0;
}

/* ---- params ---------------------------------------------------------------------------------- */

/* Builds the params text from the positional arguments into b (empty: no params). One JSON array
 * or object is the params itself; otherwise each argument is one element, JSON where it is a
 * JSON value (numbers, true, false, null, strings in quotes, arrays, objects) and a string
 * where it is not. An argument that starts like an array or object must be valid JSON: a typo
 * there is an error, not a string. Returns 0 or 2 (printed). */
static int build_params(const cli_opts_t *o, char **args, int nargs, jrpc_buf_t *b)
{
    size_t off = 0;
    if (o->params != NULL) {
        jrpc_json_t v = {o->params, strlen(o->params)};
        if (nargs > 0)
            return cli_fail("%s", "give params either with --params or as arguments, not both");
        if (jrpc_json_validate(v.ptr, v.len, 0, &off) != 0)
            return cli_fail("--params: not valid JSON (at byte %zu)", off);
        if (jrpc_json_type(v) != JRPC_JSON_ARRAY && jrpc_json_type(v) != JRPC_JSON_OBJECT)
            return cli_fail("--params must be a JSON array or object, not %s", o->params);
        return jrpc_buf_append(b, v.ptr, v.len);
    }
    if (nargs == 0)
        return 0;
    for (int i = 0; i < nargs; i++) {
        const char *a = args[i];
        size_t n = strlen(a);
        int valid = jrpc_json_validate(a, n, 0, &off) == 0;
        if (!valid && (a[0] == '[' || a[0] == '{'))
            return cli_fail("params are not valid JSON (at byte %zu of \"%s\")", off, a);
        if (nargs == 1 && valid) {
            jrpc_json_type_t t = jrpc_json_type((jrpc_json_t){a, n});
            if (t == JRPC_JSON_ARRAY || t == JRPC_JSON_OBJECT)
                return jrpc_buf_append(b, a, n);
        }
        jrpc_buf_append(b, i == 0 ? "[" : ",", 1);
        if (valid)
            jrpc_buf_append(b, a, n);
        else
            jrpc_buf_json_string(b, a, n);
    }
    return jrpc_buf_append(b, "]", 1);
}

/* Appends {"jsonrpc":"2.0","method":M[,"params":P][,"id":ID]} to b; id < 0: a notification. */
static void build_call(jrpc_buf_t *b, const char *method, const jrpc_buf_t *params, long id)
{
    jrpc_buf_appendz(b, "{\"jsonrpc\":\"2.0\",\"method\":");
    jrpc_buf_json_string(b, method, strlen(method));
    if (params->len != 0) {
        jrpc_buf_appendz(b, ",\"params\":");
        jrpc_buf_append(b, params->ptr, params->len);
    }
    if (id >= 0) {
        jrpc_buf_appendz(b, ",\"id\":");
        jrpc_buf_json_int64(b, id);
    }
    jrpc_buf_appendz(b, "}");
}

/* ---- call, notify ---------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    jrpc_buf_t *b = arg;
    return jrpc_buf_append(b, p, size * n) == 0 ? size * n : 0;
}

/* The request headers of every POST: -H first, then ours unless -H gave them. */
struct curl_slist *cli_headers_new(const cli_opts_t *o)
{
    struct curl_slist *hdrs = NULL;
    int has_ct = 0;
    for (unsigned i = 0; i < o->nheaders; i++) {
        hdrs = curl_slist_append(hdrs, o->headers[i]);
        has_ct |= strncasecmp(o->headers[i], "Content-Type:", 13) == 0;
    }
    if (!has_ct)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    /* Large batches: no 100-continue round trip, the server reads the body at once anyway. */
    return curl_slist_append(hdrs, "Expect:");
}

void cli_easy_tls(CURL *easy, const cli_opts_t *o)
{
    if (o->cacert != NULL)
        curl_easy_setopt(easy, CURLOPT_CAINFO, o->cacert);
    if (o->insecure) {
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

/* A handle that POSTs body (which must outlive it) with hdrs and appends the answer to out. */
CURL *cli_easy_new(const cli_opts_t *o, struct curl_slist *hdrs, const jrpc_buf_t *body,
                   jrpc_buf_t *out)
{
    CURL *e = curl_easy_init();
    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body->ptr);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (o->timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    cli_easy_tls(e, o);
    return e;
}

/* POSTs body and leaves the answer in out; returns the HTTP status or -1 (message printed). */
static long post(const cli_opts_t *o, const jrpc_buf_t *body, jrpc_buf_t *out)
{
    struct curl_slist *hdrs = cli_headers_new(o);
    CURL *e = cli_easy_new(o, hdrs, body, out);
    long status = -1;
    char why[CURL_ERROR_SIZE] = "";
    if (e == NULL) {
        cli_fail("%s", "cannot create a curl handle");
        goto done;
    }
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, why); /* names the cause: "certificate problem" */
    CURLcode rc = curl_easy_perform(e);
    if (rc != CURLE_OK)
        cli_fail("%s: %s", o->url, why[0] ? why : curl_easy_strerror(rc));
    else
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
done:
    if (e != NULL)
        curl_easy_cleanup(e);
    curl_slist_free_all(hdrs);
    return status;
}

/* Writes p[0..n) and a newline to f; nothing at all when n is 0. */
static void print_line(FILE *f, const char *p, size_t n)
{
    if (n == 0)
        return;
    fwrite(p, 1, n, f);
    fputc('\n', f);
}

/* Prints a single answer: the result's bytes, or the error on stderr. Returns the exit status. */
static int print_answer(const cli_opts_t *o, const jrpc_buf_t *out)
{
    jrpc_json_t v = {out->ptr, out->len}, member;
    if (o->raw || out->len == 0 || jrpc_json_validate(v.ptr, v.len, 0, NULL) != 0) {
        print_line(stdout, out->ptr, out->len);
        return o->raw ? 0 : out->len != 0 ? 2 : 0;
    }
    if (jrpc_json_get(v, "result", &member) == 0) {
        print_line(stdout, member.ptr, member.len);
        return 0;
    }
    if (jrpc_json_get(v, "error", &member) == 0) {
        print_line(stderr, member.ptr, member.len);
        return 1;
    }
    print_line(stdout, out->ptr, out->len);
    return 2;
}

/* Over WebSocket: sends one message; for a call, waits for the answer with id 1 (pushes that
 * come first are skipped) into out. 0 or 2. */
static int ws_exchange(const cli_opts_t *o, const jrpc_buf_t *body, int notify, jrpc_buf_t *out)
{
    cli_ws_t *ws = cli_ws_open(o);
    int rc = 2;
    if (ws == NULL)
        return 2;
    if (cli_ws_send(ws, body->ptr, body->len) != 0)
        goto done;
    if (notify) {
        rc = 0;
        goto done;
    }
    for (;;) {
        int r = cli_ws_recv(ws, out, o->timeout_ms);
        if (r <= 0) {
            if (r == 0)
                cli_fail("%s", "websocket: the server closed the connection before answering");
            goto done;
        }
        jrpc_json_t v = {out->ptr, out->len}, id;
        if (jrpc_json_validate(v.ptr, v.len, 0, NULL) == 0 && jrpc_json_get(v, "id", &id) == 0)
            break;
    }
    rc = 0;
done:
    cli_ws_close(ws);
    return rc;
}

static int cmd_call(const cli_opts_t *o, const char *method, char **args, int nargs, int notify)
{
    jrpc_buf_t params, body, out;
    jrpc_buf_init(&params);
    jrpc_buf_init(&body);
    jrpc_buf_init(&out);
    int rc = build_params(o, args, nargs, &params);
    if (rc != 0)
        goto done;
    build_call(&body, method, &params, notify ? -1 : 1);
    rc = 2;
    if (cli_is_ws(o->url)) {
        if (ws_exchange(o, &body, notify, &out) == 0)
            rc = notify ? 0 : print_answer(o, &out);
    } else {
        long status = post(o, &body, &out);
        if (status == 204 && notify)
            rc = 0;
        else if (status > 0)
            rc = print_answer(o, &out);
    }
done:
    jrpc_buf_free(&params);
    jrpc_buf_free(&body);
    jrpc_buf_free(&out);
    return rc;
}

/* ---- subscribe ------------------------------------------------------------------------------- */

/* Subscribes over WebSocket and prints every notification as one line until --count of them
 * arrived or ^C (then unsubscribes and exits 0), or the server closes. A second ^C kills. */
static int cmd_subscribe(const cli_opts_t *o, const char *method, char **args, int nargs)
{
    jrpc_buf_t params, body, msg;
    jrpc_buf_init(&params);
    jrpc_buf_init(&body);
    jrpc_buf_init(&msg);
    cli_ws_t *ws = NULL;
    char unsub[256];
    int rc = 2;
    if (!cli_is_ws(o->url)) {
        rc = cli_fail("subscribe needs a ws:// or wss:// URL, not %s", o->url);
        goto done;
    }
    if ((rc = build_params(o, args, nargs, &params)) != 0)
        goto done;
    rc = 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sa.sa_flags = (int)SA_RESETHAND; /* no SA_RESTART: the wait in ws.c must see EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    build_call(&body, method, &params, 1);
    if ((ws = cli_ws_open(o)) == NULL || cli_ws_send(ws, body.ptr, body.len) != 0)
        goto done;
    jrpc_json_t sub = {NULL, 0};
    char subid[512];
    size_t seen = 0;
    for (;;) {
        int r = cli_ws_recv(ws, &msg, sub.ptr == NULL ? o->timeout_ms : 0);
        if (r <= 0) {
            if (cli_interrupted && sub.ptr != NULL)
                break; /* ^C: unsubscribe below */
            if (cli_interrupted)
                rc = 130;
            else if (r == 0 && sub.ptr != NULL)
                rc = 0; /* the server ended it */
            goto done;
        }
        jrpc_json_t v = {msg.ptr, msg.len}, id, res, err;
        if (jrpc_json_validate(v.ptr, v.len, 0, NULL) != 0)
            continue;
        if (sub.ptr == NULL && jrpc_json_get(v, "id", &id) == 0) {
            if (jrpc_json_get(v, "error", &err) == 0) {
                print_line(stderr, err.ptr, err.len);
                rc = 1;
                goto done;
            }
            if (jrpc_json_get(v, "result", &res) != 0 || res.len >= sizeof subid) {
                cli_fail("%s", "the subscribe answer has no usable result");
                goto done;
            }
            memcpy(subid, res.ptr, res.len); /* msg is reused: keep a copy */
            sub = (jrpc_json_t){subid, res.len};
            continue;
        }
        if (jrpc_json_get(v, "id", &id) == 0)
            continue; /* an answer, not a notification */
        print_line(stdout, msg.ptr, msg.len);
        fflush(stdout);
        if (o->count > 0 && ++seen >= o->count)
            break;
    }
    rc = 0;
    const char *um = o->unsubscribe;
    const char *at = strstr(method, "subscribe");
    if (um == NULL && at != NULL &&
        (size_t)snprintf(unsub, sizeof unsub, "%.*sunsubscribe%s", (int)(at - method), method,
                         at + 9) < sizeof unsub)
        um = unsub;
    if (um != NULL && sub.ptr != NULL) {
        jrpc_buf_t up;
        jrpc_buf_init(&up);
        jrpc_buf_append(&up, "[", 1);
        jrpc_buf_append(&up, sub.ptr, sub.len);
        jrpc_buf_append(&up, "]", 1);
        body.len = 0;
        build_call(&body, um, &up, 2);
        jrpc_buf_free(&up);
        if (cli_ws_send(ws, body.ptr, body.len) == 0) {
            for (int i = 0; i < 10000; i++) { /* skip pushes already on their way */
                jrpc_json_t id;
                if (cli_ws_recv(ws, &msg, o->timeout_ms ? o->timeout_ms : 5000) != 1)
                    break;
                if (jrpc_json_validate(msg.ptr, msg.len, 0, NULL) == 0 &&
                    jrpc_json_get((jrpc_json_t){msg.ptr, msg.len}, "id", &id) == 0)
                    break;
            }
        }
    }
done:
    cli_ws_close(ws);
    jrpc_buf_free(&params);
    jrpc_buf_free(&body);
    jrpc_buf_free(&msg);
    return rc;
}

static int cmd_bench(const cli_opts_t *o, const char *method, char **args, int nargs)
{
    jrpc_buf_t body, params;
    jrpc_buf_init(&body);
    jrpc_buf_init(&params);
    int rc = build_params(o, args, nargs, &params);
    if (rc == 0) {
        build_call(&body, method, &params, 1);
        rc = cli_is_ws(o->url) ? cli_bench_ws(o, &body) : cli_bench_http(o, &body);
    }
    jrpc_buf_free(&params);
    jrpc_buf_free(&body);
    return rc;
}

/* ---- options --------------------------------------------------------------------------------- */

/* A duration: a number (fractions allowed) with ms, s, m or h; a bare number is seconds, as in
 * jrpcd.ini. 0 and the duration in ms, or -1. */
static int parse_duration(const char *s, double *ms)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || !(v > 0) || !isfinite(v) || s[0] == '+' || s[0] == '-')
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].unit) == 0) {
            *ms = v * units[i].ms;
            return *ms >= 1 && *ms <= 7 * 86400e3 ? 0 : -1;
        }
    }
    return -1;
}

/* A whole number in [lo, hi]; 0 or -1. */
static int parse_count(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    char *end;
    errno = 0;
    if (s[0] < '0' || s[0] > '9')
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

enum {
    OPT_CHUNK = 256,
    OPT_UNORDERED,
    OPT_JSONL,
    OPT_RETRY,
    OPT_PROGRESS,
    OPT_NO_PROGRESS,
    OPT_COUNT,
    OPT_PARAMS,
    OPT_UNSUBSCRIBE,
    OPT_CACERT,
};

static const char *const commands = "call, notify, batch, subscribe, bench";

int main(int argc, char **argv)
{
    cli_opts_t o;
    memset(&o, 0, sizeof o);
    o.url = getenv("JRPC_URL") && *getenv("JRPC_URL") ? getenv("JRPC_URL") : DEFAULT_URL;
    o.conns = 8;
    o.n = 10000;
    o.parallel = 1;
    o.progress = -1;
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        {"header", required_argument, NULL, 'H'},
        {"raw", no_argument, NULL, 'r'},
        {"timeout", required_argument, NULL, 't'},
        {"conns", required_argument, NULL, 'c'},
        {"requests", required_argument, NULL, 'n'},
        {"duration", required_argument, NULL, 'd'},
        {"parallel", required_argument, NULL, 'P'},
        {"chunk", required_argument, NULL, OPT_CHUNK},
        {"unordered", no_argument, NULL, OPT_UNORDERED},
        {"jsonl", no_argument, NULL, OPT_JSONL},
        {"retry", required_argument, NULL, OPT_RETRY},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {"count", required_argument, NULL, OPT_COUNT},
        {"params", required_argument, NULL, OPT_PARAMS},
        {"unsubscribe", required_argument, NULL, OPT_UNSUBSCRIBE},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"insecure", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int ch;
    double ms;
    unsigned long v;
    opterr = 0; /* our own messages: they name the option and the problem */
    while ((ch = getopt_long(argc, argv, ":u:H:rt:c:n:d:P:khV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'u':
            o.url = optarg;
            break;
        case 'H':
            if (o.nheaders == CLI_MAX_HEADERS)
                return cli_fail("-H: at most %d headers", CLI_MAX_HEADERS);
            if (strchr(optarg, ':') == NULL || optarg[0] == ':' || strpbrk(optarg, "\r\n"))
                return cli_fail("-H: \"%s\" is not a header; write 'Name: value'", optarg);
            o.headers[o.nheaders++] = optarg;
            break;
        case 'r':
            o.raw = 1;
            break;
        case 't':
            if (parse_duration(optarg, &ms) != 0)
                return cli_fail("--timeout: \"%s\" is not a duration (e.g. 500ms, 5s, 1m)", optarg);
            o.timeout_ms = (long)ceil(ms);
            break;
        case 'c':
            if (parse_count(optarg, 1, 10000, &v) != 0)
                return cli_fail("--conns: \"%s\" is not a number from 1 to 10000", optarg);
            o.conns = (unsigned)v;
            break;
        case 'n':
            if (parse_count(optarg, 1, 1000000000, &v) != 0)
                return cli_fail("--requests: \"%s\" is not a number from 1 to 10^9", optarg);
            o.n = v;
            break;
        case 'd':
            if (parse_duration(optarg, &ms) != 0 || ms > 86400e3)
                return cli_fail("--duration: \"%s\" is not a duration up to a day (e.g. 5s, 1m)",
                                optarg);
            o.seconds = ms / 1000.0;
            break;
        case 'P':
            /* 256 chunks of 1000 in flight is already more than any server serves at once. */
            if (parse_count(optarg, 1, 256, &v) != 0)
                return cli_fail("--parallel: \"%s\" is not a number from 1 to 256", optarg);
            o.parallel = (unsigned)v;
            break;
        case OPT_CHUNK:
            if (parse_count(optarg, 1, 1000000, &v) != 0)
                return cli_fail("--chunk: \"%s\" is not a number from 1 to 1000000", optarg);
            o.chunk = (unsigned)v;
            break;
        case OPT_UNORDERED:
            o.unordered = 1;
            break;
        case OPT_JSONL:
            o.jsonl = 1;
            break;
        case OPT_RETRY:
            if (parse_count(optarg, 0, 100, &v) != 0)
                return cli_fail("--retry: \"%s\" is not a number from 0 to 100", optarg);
            o.retries = (unsigned)v;
            break;
        case OPT_PROGRESS:
            o.progress = 1;
            break;
        case OPT_NO_PROGRESS:
            o.progress = 0;
            break;
        case OPT_COUNT:
            if (parse_count(optarg, 1, ULONG_MAX, &v) != 0)
                return cli_fail("--count: \"%s\" is not a positive number", optarg);
            o.count = v;
            break;
        case OPT_PARAMS:
            o.params = optarg;
            break;
        case OPT_UNSUBSCRIBE:
            o.unsubscribe = optarg;
            break;
        case OPT_CACERT:
            if (access(optarg, R_OK) != 0)
                return cli_fail("--cacert: cannot read %s: %s", optarg, strerror(errno));
            o.cacert = optarg;
            break;
        case 'k':
            o.insecure = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("jrpc %s\n", jrpc_version_string());
            return 0;
        case ':':
            cli_fail("%s needs a value (jrpc --help)", argv[optind - 1]);
            return 2;
        default:
            if (optopt != 0)
                cli_fail("unknown option -%c (jrpc --help)", optopt);
            else
                cli_fail("unknown option %s (jrpc --help)", argv[optind - 1]);
            return 2;
        }
    }
    argc -= optind;
    argv += optind;
    if (argc < 1)
        return cli_fail("no command: give one of %s (jrpc --help)", commands);
    const char *cmd = argv[0];
    int is_batch = strcmp(cmd, "batch") == 0;
    if (!is_batch && strcmp(cmd, "call") != 0 && strcmp(cmd, "notify") != 0 &&
        strcmp(cmd, "bench") != 0 && strcmp(cmd, "subscribe") != 0)
        return cli_fail("unknown command \"%s\": give one of %s (jrpc --help)", cmd, commands);
    if (!is_batch && argc < 2)
        return cli_fail("%s: missing METHOD (jrpc %s METHOD [PARAM...])", cmd, cmd);
    if (is_batch && argc > 2)
        return cli_fail("batch: one input at most (a file or -), got %d", argc - 1);
    if (strncmp(o.url, "http://", 7) != 0 && strncmp(o.url, "https://", 8) != 0 &&
        !cli_is_ws(o.url))
        return cli_fail("--url: \"%s\" is not an http://, https://, ws:// or wss:// URL", o.url);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return cli_fail("%s", "curl_global_init failed");
    int rc;
    if (is_batch)
        rc = cli_batch(&o, argc == 2 ? argv[1] : "-");
    else if (strcmp(cmd, "bench") == 0)
        rc = cmd_bench(&o, argv[1], argv + 2, argc - 2);
    else if (strcmp(cmd, "subscribe") == 0)
        rc = cmd_subscribe(&o, argv[1], argv + 2, argc - 2);
    else
        rc = cmd_call(&o, argv[1], argv + 2, argc - 2, cmd[0] == 'n');
    curl_global_cleanup();
    return rc;
}
