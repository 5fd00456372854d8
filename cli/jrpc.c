/* SPDX-License-Identifier: MIT */
/* jrpc.c — the command-line client: call a method, send a notification or a batch, or load a
 * server, from the shell. Requests go over HTTP with libcurl (keep-alive, any URL scheme curl
 * speaks); JSON given on the command line is checked with libjrpc's strict validator before it
 * is sent, and results are printed byte-exact as the server sent them. */
#define _GNU_SOURCE /* memmem */
#include <jrpc.h>

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_URL "http://127.0.0.1:8000/api/v1/endpoint"

/* Most bytes read from a batch file or stdin: the server's default max_body (5 MiB) is the useful
 * ceiling, with room to spare for whitespace. */
#define MAX_INPUT_BYTES (16u << 20)

typedef struct opts {
    const char *url;
    int raw;         /* print the whole response body, not just the result */
    long timeout_ms; /* per request; 0 = none */
    unsigned conns;  /* bench: parallel connections */
    unsigned long n; /* bench: requests in all */
    double seconds;  /* bench: or run this long */
} opts_t;

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: jrpc [options] call METHOD [PARAMS]     call a method, print its result\n"
        "       jrpc [options] notify METHOD [PARAMS]   send a notification (no answer)\n"
        "       jrpc [options] batch [FILE|-]           send a batch: a JSON array, or one\n"
        "                                               call per line: METHOD [PARAMS]\n"
        "       jrpc [options] bench METHOD [PARAMS]    load the server, print req/s and latency\n"
        "\n"
        "PARAMS is one JSON array or object, e.g. '[42, 23]' or '{\"address\": \"0x…\"}'.\n"
        "options:\n"
        "  -u, --url URL        endpoint (default $JRPC_URL or " DEFAULT_URL ")\n"
        "  -r, --raw            print the response body as received\n"
        "  -t, --timeout MS     give up on a request after MS milliseconds\n"
        "  -c, --conns N        bench: parallel connections (default 8)\n"
        "  -n, --requests N     bench: requests in all (default 10000)\n"
        "  -d, --duration S     bench: run S seconds instead of a count\n"
        "  -h, --help           this text\n"
        "  -V, --version        print the version\n"
        "exit status: 0 on a result, 1 on a JSON-RPC error, 2 on a usage or transport error\n");
}

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "jrpc: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

/* 1 when valid JSON text v is an array or an object, the only params JSON-RPC allows. */
static int params_shape_ok(jrpc_json_t v)
{
    jrpc_json_type_t t = jrpc_json_type(v);
    return t == JRPC_JSON_ARRAY || t == JRPC_JSON_OBJECT;
}

/* Checks that text is one JSON array or object; 0, or 2 with the reason printed. */
static int check_params(const char *text)
{
    size_t off = 0;
    jrpc_json_t v = {text, strlen(text)};
    if (jrpc_json_validate(v.ptr, v.len, 0, &off) != 0)
        return fail("params are not valid JSON (at byte %zu)", off);
    if (!params_shape_ok(v))
        return fail("params must be a JSON array or object, not %s", text);
    return 0;
}

/* Appends {"jsonrpc":"2.0","method":M[,"params":P][,"id":ID]} to b. */
static void build_call(jrpc_buf_t *b, const char *method, size_t mlen, const char *params,
                       size_t plen, long id)
{
    jrpc_buf_appendz(b, "{\"jsonrpc\":\"2.0\",\"method\":");
    jrpc_buf_json_string(b, method, mlen);
    if (params != NULL && plen != 0) {
        jrpc_buf_appendz(b, ",\"params\":");
        jrpc_buf_append(b, params, plen);
    }
    if (id >= 0) {
        jrpc_buf_appendz(b, ",\"id\":");
        jrpc_buf_json_int64(b, id);
    }
    jrpc_buf_appendz(b, "}");
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    jrpc_buf_t *b = arg;
    return jrpc_buf_append(b, p, size * n) == 0 ? size * n : 0;
}

/* The request headers of every POST; the caller frees the list (curl_slist_free_all). */
static struct curl_slist *headers_new(void)
{
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    /* Large batches: no 100-continue round trip, the server reads the body at once anyway. */
    return curl_slist_append(hdrs, "Expect:");
}

/* A handle that POSTs body (which must outlive it) with hdrs and appends the answer to out. */
static CURL *easy_new(const opts_t *o, struct curl_slist *hdrs, const jrpc_buf_t *body,
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
    return e;
}

/* POSTs body and leaves the answer in out; returns the HTTP status or -1 (message printed). */
static long post(const opts_t *o, const jrpc_buf_t *body, jrpc_buf_t *out)
{
    struct curl_slist *hdrs = headers_new();
    CURL *e = easy_new(o, hdrs, body, out);
    long status = -1;
    if (e == NULL) {
        fail("%s", "cannot create a curl handle");
        goto done;
    }
    CURLcode rc = curl_easy_perform(e);
    if (rc != CURLE_OK)
        fail("%s", curl_easy_strerror(rc));
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
static int print_answer(const opts_t *o, const jrpc_buf_t *out)
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

static int cmd_call(const opts_t *o, const char *method, const char *params, int notify)
{
    if (params != NULL && check_params(params) != 0)
        return 2;
    jrpc_buf_t body, out;
    jrpc_buf_init(&body);
    jrpc_buf_init(&out);
    build_call(&body, method, strlen(method), params, params ? strlen(params) : 0, notify ? -1 : 1);
    long status = post(o, &body, &out);
    int rc = 2;
    if (status == 204 && notify)
        rc = 0;
    else if (status > 0)
        rc = print_answer(o, &out);
    jrpc_buf_free(&body);
    jrpc_buf_free(&out);
    return rc;
}

static int read_all(const char *path, jrpc_buf_t *b)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL)
        return fail("cannot open %s", path);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b->len + n > MAX_INPUT_BYTES) {
            if (f != stdin)
                fclose(f);
            return fail("%s is larger than 16 MiB", path);
        }
        jrpc_buf_append(b, chunk, n);
    }
    if (f != stdin)
        fclose(f);
    return b->err ? fail("%s", "out of memory") : 0;
}

/* One call per line: "METHOD [PARAMS]"; blank lines and lines starting with '#' are skipped. */
static int lines_to_batch(const jrpc_buf_t *in, jrpc_buf_t *body)
{
    const char *p = in->ptr, *end = in->ptr + in->len;
    long id = 1;
    jrpc_buf_append(body, "[", 1);
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        while (p < line_end && (*p == ' ' || *p == '\t'))
            p++;
        const char *m = p;
        while (p < line_end && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        size_t mlen = (size_t)(p - m);
        const char *params = p;
        const char *pend = line_end;
        while (params < pend && (*params == ' ' || *params == '\t'))
            params++;
        while (pend > params && (pend[-1] == ' ' || pend[-1] == '\t' || pend[-1] == '\r'))
            pend--;
        if (mlen != 0 && m[0] != '#') {
            size_t plen = (size_t)(pend - params);
            if (plen != 0 && (jrpc_json_validate(params, plen, 0, NULL) != 0 ||
                              !params_shape_ok((jrpc_json_t){params, plen})))
                return fail("line of call %ld: params must be one JSON array or object", id);
            if (id > 1)
                jrpc_buf_append(body, ",", 1);
            build_call(body, m, mlen, params, plen, id++);
        }
        p = eol ? eol + 1 : end;
    }
    jrpc_buf_append(body, "]", 1);
    return 0;
}

static int cmd_batch(const opts_t *o, const char *path)
{
    jrpc_buf_t in, body, out;
    jrpc_buf_init(&in);
    jrpc_buf_init(&body);
    jrpc_buf_init(&out);
    int rc = read_all(path, &in);
    if (rc != 0)
        goto done;
    size_t i = 0;
    while (i < in.len &&
           (in.ptr[i] == ' ' || in.ptr[i] == '\n' || in.ptr[i] == '\t' || in.ptr[i] == '\r'))
        i++;
    if (i < in.len && in.ptr[i] == '[') {
        jrpc_buf_append(&body, in.ptr, in.len); /* already a JSON batch: sent as is */
    } else if ((rc = lines_to_batch(&in, &body)) != 0) {
        goto done;
    }
    long status = post(o, &body, &out);
    rc = 2;
    if (status > 0) {
        print_line(stdout, out.ptr, out.len);
        rc = status == 200 || status == 204 ? 0 : 2;
    }
done:
    jrpc_buf_free(&in);
    jrpc_buf_free(&body);
    jrpc_buf_free(&out);
    return rc;
}

/* ---- bench ------------------------------------------------------------------------------------
 */

typedef struct bench_conn {
    CURL *easy;
    jrpc_buf_t out;
    double started; /* seconds, monotonic */
} bench_conn_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_bench(const opts_t *o, const char *method, const char *params)
{
    if (params != NULL && check_params(params) != 0)
        return 2;
    jrpc_buf_t body;
    jrpc_buf_init(&body);
    build_call(&body, method, strlen(method), params, params ? strlen(params) : 0, 1);
    struct curl_slist *hdrs = headers_new();
    CURLM *multi = curl_multi_init();
    bench_conn_t *conns = calloc(o->conns, sizeof(*conns));
    unsigned long cap = o->seconds > 0 ? 1000000ul : o->n;
    double *lat = malloc(cap * sizeof(*lat));
    unsigned long sent = 0, done = 0, errors = 0;
    int rc = 2;
    if (multi == NULL || conns == NULL || lat == NULL) {
        fail("%s", "out of memory");
        goto out;
    }
    double t0 = now_s(), deadline = o->seconds > 0 ? t0 + o->seconds : 0;
    for (unsigned i = 0; i < o->conns; i++) {
        jrpc_buf_init(&conns[i].out);
        conns[i].easy = easy_new(o, hdrs, &body, &conns[i].out);
        if (conns[i].easy == NULL)
            goto out;
        curl_easy_setopt(conns[i].easy, CURLOPT_PRIVATE, &conns[i]);
        if (o->seconds > 0 || sent < o->n) {
            conns[i].started = now_s();
            curl_multi_add_handle(multi, conns[i].easy);
            sent++;
        }
    }
    int running = 1;
    while (running) {
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            bench_conn_t *bc;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&bc);
            long status = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            double t = now_s();
            if (msg->data.result != CURLE_OK || status != 200 ||
                memmem(bc->out.ptr ? bc->out.ptr : "", bc->out.len, "\"error\"", 7) != NULL)
                errors++;
            if (done < cap)
                lat[done] = t - bc->started;
            done++;
            bc->out.len = 0;
            curl_multi_remove_handle(multi, msg->easy_handle);
            if (deadline > 0 ? t < deadline : sent < o->n) {
                bc->started = t;
                curl_multi_add_handle(multi, msg->easy_handle);
                sent++;
                running = 1;
            }
        }
        if (running)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    double elapsed = now_s() - t0;
    unsigned long nlat = done < cap ? done : cap;
    qsort(lat, nlat, sizeof(*lat), cmp_double);
    printf("%lu requests in %.2f s over %u connections: %.0f req/s, %lu errors\n", done, elapsed,
           o->conns, (double)done / elapsed, errors);
    if (nlat > 0)
        printf("latency p50 %.0f us  p99 %.0f us  max %.0f us\n", lat[nlat / 2] * 1e6,
               lat[(nlat * 99) / 100] * 1e6, lat[nlat - 1] * 1e6);
    rc = errors ? 1 : 0;
out:
    if (conns != NULL) {
        for (unsigned i = 0; i < o->conns; i++) {
            if (conns[i].easy != NULL) {
                curl_multi_remove_handle(multi, conns[i].easy);
                curl_easy_cleanup(conns[i].easy);
            }
            jrpc_buf_free(&conns[i].out);
        }
    }
    free(conns);
    free(lat);
    if (multi != NULL)
        curl_multi_cleanup(multi);
    curl_slist_free_all(hdrs);
    jrpc_buf_free(&body);
    return rc;
}

static int parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v <= 0)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    opts_t o = {getenv("JRPC_URL") ? getenv("JRPC_URL") : DEFAULT_URL, 0, 0, 8, 10000, 0};
    static const struct option longopts[] = {{"url", required_argument, NULL, 'u'},
                                             {"raw", no_argument, NULL, 'r'},
                                             {"timeout", required_argument, NULL, 't'},
                                             {"conns", required_argument, NULL, 'c'},
                                             {"requests", required_argument, NULL, 'n'},
                                             {"duration", required_argument, NULL, 'd'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    int ch;
    double v;
    while ((ch = getopt_long(argc, argv, "u:rt:c:n:d:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'u':
            o.url = optarg;
            break;
        case 'r':
            o.raw = 1;
            break;
        case 't':
            if (parse_number(optarg, &v) != 0)
                return fail("--timeout: \"%s\" is not a positive number of milliseconds", optarg);
            o.timeout_ms = (long)v;
            break;
        case 'c':
            if (parse_number(optarg, &v) != 0 || v > 10000)
                return fail("--conns: \"%s\" is not a number from 1 to 10000", optarg);
            o.conns = (unsigned)v;
            break;
        case 'n':
            if (parse_number(optarg, &v) != 0 || v > 1e9)
                return fail("--requests: \"%s\" is not a positive number", optarg);
            o.n = (unsigned long)v;
            break;
        case 'd':
            if (parse_number(optarg, &v) != 0 || v > 86400)
                return fail("--duration: \"%s\" is not a number of seconds", optarg);
            o.seconds = v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("jrpc %s\n", jrpc_version_string());
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    argc -= optind;
    argv += optind;
    if (argc < 1) {
        usage(stderr);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return fail("%s", "curl_global_init failed");
    int rc;
    const char *cmd = argv[0];
    if ((strcmp(cmd, "call") == 0 || strcmp(cmd, "notify") == 0 || strcmp(cmd, "bench") == 0) &&
        (argc == 2 || argc == 3)) {
        const char *params = argc == 3 ? argv[2] : NULL;
        if (strcmp(cmd, "bench") == 0)
            rc = cmd_bench(&o, argv[1], params);
        else
            rc = cmd_call(&o, argv[1], params, cmd[0] == 'n');
    } else if (strcmp(cmd, "batch") == 0 && argc <= 2) {
        rc = cmd_batch(&o, argc == 2 ? argv[1] : "-");
    } else {
        usage(stderr);
        rc = 2;
    }
    curl_global_cleanup();
    return rc;
}
