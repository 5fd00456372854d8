/* SPDX-License-Identifier: MIT */
/* bench.c — `jrpc bench`: one request sent over and over on --conns connections, for a count or a
 * duration, then requests/s and latency percentiles. HTTP goes through curl's multi interface
 * (each connection one request in flight, kept alive), ws:// through the client in ws.c. */
#define _GNU_SOURCE /* memmem */
#include "cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench_conn {
    CURL *easy;
    jrpc_buf_t out;
    double started; /* seconds, monotonic */
} bench_conn_t;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void bench_report(const cli_opts_t *o, unsigned long done, unsigned long errors,
                         double elapsed, double *lat, unsigned long nlat)
{
    qsort(lat, nlat, sizeof(*lat), cmp_double);
    printf("%lu requests in %.2f s over %u connections: %.0f req/s, %lu errors\n", done, elapsed,
           o->conns, (double)done / elapsed, errors);
    if (nlat > 0)
        printf("latency p50 %.0f us  p99 %.0f us  max %.0f us\n", lat[nlat / 2] * 1e6,
               lat[(nlat * 99) / 100] * 1e6, lat[nlat - 1] * 1e6);
}

/* bench over WebSocket: --conns connections, one call in flight on each, the next sent as soon as
 * the answer is in. A connection whose socket is readable has (nearly) a whole small answer, so
 * the blocking read in ws.c waits at most for the rest of it. */
int cli_bench_ws(const cli_opts_t *o, const jrpc_buf_t *body)
{
    cli_ws_t **ws = calloc(o->conns, sizeof(*ws));
    double *started = calloc(o->conns, sizeof(*started));
    struct pollfd *pfd = calloc(o->conns, sizeof(*pfd));
    unsigned long cap = o->seconds > 0 ? 1000000ul : o->n, sent = 0, done = 0, errors = 0;
    double *lat = malloc(cap * sizeof(*lat));
    unsigned live = 0;
    int rc = 2;
    jrpc_buf_t msg;
    jrpc_buf_init(&msg);
    if (ws == NULL || started == NULL || pfd == NULL || lat == NULL) {
        cli_fail("%s", "out of memory");
        goto out;
    }
    double t0 = cli_now(), deadline = o->seconds > 0 ? t0 + o->seconds : 0;
    for (unsigned i = 0; i < o->conns; i++) {
        if ((ws[i] = cli_ws_open(o)) == NULL)
            goto out;
        pfd[i] = (struct pollfd){cli_ws_fd(ws[i]), POLLIN, 0};
        if (o->seconds > 0 || sent < o->n) {
            started[i] = cli_now();
            if (cli_ws_send(ws[i], body->ptr, body->len) != 0)
                goto out;
            sent++;
            live++;
        } else {
            pfd[i].fd = -1;
        }
    }
    while (live > 0) {
        int buffered = 0; /* an answer read (or decrypted) already: poll would not show it */
        for (unsigned i = 0; i < o->conns; i++)
            buffered |= pfd[i].fd >= 0 && cli_ws_buffered(ws[i]);
        if (poll(pfd, o->conns, buffered ? 0 : 1000) < 0 && errno != EINTR)
            break;
        for (unsigned i = 0; i < o->conns; i++) {
            if (pfd[i].fd < 0 ||
                !(pfd[i].revents & (POLLIN | POLLERR | POLLHUP) || cli_ws_buffered(ws[i])))
                continue;
            if (cli_ws_recv(ws[i], &msg, o->timeout_ms ? o->timeout_ms : 10000) != 1)
                goto out;
            double t = cli_now();
            if (memmem(msg.ptr ? msg.ptr : "", msg.len, "\"error\"", 7) != NULL)
                errors++;
            if (done < cap)
                lat[done] = t - started[i];
            done++;
            if (deadline > 0 ? t < deadline : sent < o->n) {
                started[i] = t;
                if (cli_ws_send(ws[i], body->ptr, body->len) != 0)
                    goto out;
                sent++;
            } else {
                pfd[i].fd = -1;
                live--;
            }
        }
    }
    bench_report(o, done, errors, cli_now() - t0, lat, done < cap ? done : cap);
    rc = errors ? 1 : 0;
out:
    if (ws != NULL)
        for (unsigned i = 0; i < o->conns; i++)
            cli_ws_close(ws[i]);
    free(ws);
    free(started);
    free(pfd);
    free(lat);
    jrpc_buf_free(&msg);
    return rc;
}

int cli_bench_http(const cli_opts_t *o, const jrpc_buf_t *body)
{
    struct curl_slist *hdrs = cli_headers_new(o);
    CURLM *multi = curl_multi_init();
    bench_conn_t *conns = calloc(o->conns, sizeof(*conns));
    unsigned long cap = o->seconds > 0 ? 1000000ul : o->n;
    double *lat = malloc(cap * sizeof(*lat));
    unsigned long sent = 0, done = 0, errors = 0;
    int rc = 2;
    if (multi == NULL || conns == NULL || lat == NULL) {
        cli_fail("%s", "out of memory");
        goto out;
    }
    double t0 = cli_now(), deadline = o->seconds > 0 ? t0 + o->seconds : 0;
    for (unsigned i = 0; i < o->conns; i++) {
        jrpc_buf_init(&conns[i].out);
        conns[i].easy = cli_easy_new(o, hdrs, body, &conns[i].out);
        if (conns[i].easy == NULL)
            goto out;
        curl_easy_setopt(conns[i].easy, CURLOPT_PRIVATE, &conns[i]);
        if (o->seconds > 0 || sent < o->n) {
            conns[i].started = cli_now();
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
            double t = cli_now();
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
    bench_report(o, done, errors, cli_now() - t0, lat, done < cap ? done : cap);
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
    return rc;
}
