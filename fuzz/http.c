/* SPDX-License-Identifier: MIT */
/* http.c — libFuzzer target for the HTTP/1.1 connection path (src/http) over a real loopback
 * socket: each input is the raw bytes one client sends on one connection (request lines, headers,
 * Content-Length and chunked bodies, pipelining, Expect: 100-continue, REST routes), then it
 * half-closes. The connection is a socketpair handed to the transport the way an accepted socket
 * is (its statics are reached by including its sources, as tests/unit/http does): a loopback TCP
 * connection per input would run out of ports to TIME_WAIT within seconds. Whatever the input, the
 * server must answer with a sequence of well-formed HTTP/1.1 responses (status line, headers,
 * exactly Content-Length body bytes, JSON bodies valid), close the connection, and free everything
 * (ASan). */
#define _GNU_SOURCE /* memmem */
#include "http/conn.c"
#include "http/parse.c"
#include "http/response.c"
#include "http/rest.c"
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static jrpc_server_t *srv;
static jrpc__loop_t loop;

static void ping(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_reply_raw(call, "\"pong\"", 6);
}

static void echo(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_json_t p = jrpc_call_params(call);
    jrpc_reply_raw(call, p.ptr ? p.ptr : "null", p.ptr ? p.len : 4);
}

static void setup(void)
{
    jrpc_config_t cfg;
    jrpc_config_init(&cfg);
    cfg.io_threads = 1;
    cfg.max_body = 4096; /* small limits so the 413/431/414 paths are reachable */
    cfg.max_header = 1024;
    cfg.max_batch = 20;
    cfg.path = "/rpc";
    cfg.hosts = "*";                        /* any Host the fuzzer makes up reaches routing */
    cfg.cors_origins = "https://a.example"; /* one page whose Origin is echoed (http.dict) */
    srv = jrpc_server_new(&cfg);
    jrpc_method_add(srv, "ping", ping, NULL, JRPC_INLINE);
    jrpc_method_add(srv, "echo", echo, NULL, JRPC_INLINE);
    if (jrpc__loop_open(&srv->io, &loop) != 0)
        abort();
}

/* Checks out[0..n) is a sequence of complete HTTP/1.1 responses. An answer to HEAD carries
 * Content-Length but no body; when the input may hold a HEAD (`head_sent`), an answer whose body
 * bytes are not there (the next answer or the end follows its head) is taken as one. */
static void check_responses(const char *out, size_t n, int head_sent)
{
    size_t pos = 0;
    while (pos < n) {
        const char *r = out + pos;
        size_t left = n - pos;
        if (left < 13 || memcmp(r, "HTTP/1.1 ", 9) != 0 || r[12] != ' ')
            abort();
        int status = atoi(r + 9);
        if (status < 100 || status > 599)
            abort();
        const char *end = memmem(r, left, "\r\n\r\n", 4);
        if (end == NULL)
            abort(); /* a cut head: the server must never stop mid-response */
        size_t head = (size_t)(end - r) + 4;
        size_t body = 0;
        const char *cl = memmem(r, head, "\r\nContent-Length: ", 18);
        if (status != 100 && status != 204) {
            if (cl == NULL)
                abort();
            body = strtoul(cl + 18, NULL, 10);
        } else if (cl != NULL) {
            abort();
        }
        if (head_sent && body > 0 &&
            (head == left || (left - head >= 9 && memcmp(r + head, "HTTP/1.1 ", 9) == 0)))
            body = 0;
        if (head + body > left)
            abort();
        if (body > 0 && memmem(r, head, "application/json", 16) != NULL &&
            jrpc_json_validate(r + head, body, 0, NULL) != 0)
            abort();
        pos += head + body;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    int fd = sv[1];
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    jrpc__sock_t *s = jrpc__sock_open(&loop, sv[0]);
    if (s == NULL || conn_serve(&loop, s) == NULL)
        abort();
    static char out[1 << 20];
    size_t out_len = 0, sent = 0;
    int eof = 0, shut = 0;
    uint64_t deadline = uv_hrtime() + 5000000000ull;
    while (!eof) {
        if (uv_hrtime() > deadline)
            abort(); /* the server neither answered nor closed */
        if (sent < size) {
            ssize_t w = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (errno != EAGAIN)
                sent = size; /* the server closed on us (413, 431 …): fine */
        } else if (!shut) {
            shutdown(fd, SHUT_WR);
            shut = 1;
        }
        uv_run(&loop.uv, UV_RUN_NOWAIT);
        for (;;) {
            ssize_t r = read(fd, out + out_len, sizeof out - out_len);
            if (r > 0 && out_len + (size_t)r < sizeof out) {
                out_len += (size_t)r;
            } else if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                eof = 1;
                break;
            } else {
                break;
            }
        }
    }
    close(fd);
    /* The server side must go away too (bounded). */
    for (int i = 0; i < 100000 && loop.holds != 0; i++)
        uv_run(&loop.uv, UV_RUN_NOWAIT);
    if (loop.holds != 0)
        abort();
    check_responses(out, out_len, memmem(data, size, "HEAD", 4) != NULL);
    return 0;
}
