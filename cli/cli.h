/* SPDX-License-Identifier: MIT */
/* cli.h — what the parts of the jrpc command-line client share: the options, the input items of
 * a batch, and the WebSocket client (ws.c). Private to cli/; nothing here is installed. */
#ifndef JRPC_CLI_H
#define JRPC_CLI_H

#include <jrpc.h>

#include <curl/curl.h>

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Headers given with -H: at most this many, which is far more than any endpoint needs and keeps
 * the list a fixed array. */
#define CLI_MAX_HEADERS 64

typedef struct cli_opts {
    const char *url;
    int raw;                              /* print the whole response body */
    long timeout_ms;                      /* per request; 0 = none */
    unsigned conns;                       /* bench: parallel connections */
    unsigned long n;                      /* bench: requests in all */
    double seconds;                       /* bench: or run this long */
    const char *headers[CLI_MAX_HEADERS]; /* -H 'Name: value', as given */
    unsigned nheaders;                    /* entries used in headers */
    unsigned chunk;                       /* batch: items per request; 0 = learn */
    unsigned parallel;                    /* batch: chunks in flight */
    int unordered;                        /* batch: print answers as they come */
    int jsonl;                            /* batch: one answer per line */
    unsigned retries;                     /* batch: retries per item on rate limits */
    int progress;                         /* -1 auto (a terminal), 0 off, 1 on */
    unsigned long count;                  /* subscribe: stop after this many; 0 = never */
    const char *params;                   /* --params: explicit params JSON */
    const char *unsubscribe;              /* subscribe: the method that ends it */
    const char *cacert;                   /* https://, wss://: trust these CAs, not the system's */
    int insecure;                         /* https://, wss://: -k, no certificate or name check */
} cli_opts_t;

/* Prints "jrpc: <message>" on stderr; returns 2, the exit status of a usage or transport error. */
__attribute__((format(printf, 1, 2))) int cli_fail(const char *fmt, ...);

/* Set by the SIGINT handler of commands that end cleanly on ^C (subscribe); blocking waits in
 * ws.c return -1 without a message once it is set. */
extern volatile sig_atomic_t cli_interrupted;

/* Seconds on the monotonic clock. */
double cli_now(void);

/* 1 when url starts with ws:// or wss://. */
int cli_is_ws(const char *url);

/* The request headers of every HTTP POST: -H first, then Content-Type and an empty Expect unless
 * -H gave them; the caller frees the list (curl_slist_free_all). */
struct curl_slist *cli_headers_new(const cli_opts_t *o);
/* Applies --cacert and -k to an HTTP handle, as they apply to wss:// (ws.c). */
void cli_easy_tls(CURL *easy, const cli_opts_t *o);
/* A handle that POSTs body (which must outlive it) to o->url with hdrs and appends the answer to
 * out; NULL when curl has no memory. */
CURL *cli_easy_new(const cli_opts_t *o, struct curl_slist *hdrs, const jrpc_buf_t *body,
                   jrpc_buf_t *out);

/* bench.c: `jrpc bench` with the request body already built; return the exit status. */
int cli_bench_http(const cli_opts_t *o, const jrpc_buf_t *body);
int cli_bench_ws(const cli_opts_t *o, const jrpc_buf_t *body);

/* batch.c: `jrpc batch [FILE|-]`; returns the exit status. */
int cli_batch(const cli_opts_t *o, const char *path);

/* ---- WebSocket client (ws.c) ------------------------------------------------------------------
 * A blocking RFC 6455 client over one TCP socket, TLS for wss://: text messages out (masked),
 * whole messages in (fragments joined, pings answered, a close answered and reported). */

typedef struct cli_ws cli_ws_t;

/* Connects to o->url (ws:// or wss://, verified as o->cacert and o->insecure say) and upgrades,
 * sending o's -H headers; NULL with the reason printed. o->timeout_ms bounds the connect, the TLS
 * handshake and the upgrade (0 = 10 s). */
cli_ws_t *cli_ws_open(const cli_opts_t *o);
/* The batch cap the server's 101 advertised (Jrpc-Max-Batch), 0 when it said none. */
unsigned cli_ws_max_batch(const cli_ws_t *ws);
/* 1 when bytes are read (or decrypted) and not consumed yet: poll() on the socket would not
 * show them. */
int cli_ws_buffered(const cli_ws_t *ws);
/* Sends one text message; 0 or -1 (reason printed). */
int cli_ws_send(cli_ws_t *ws, const char *p, size_t n);
/* Waits for the next whole data message and leaves it in out (replacing what was there).
 * 1: a message; 0: the peer closed; -1: error or timeout (reason printed). timeout_ms 0 = none. */
int cli_ws_recv(cli_ws_t *ws, jrpc_buf_t *out, long timeout_ms);
/* Sends a close frame, waits (briefly) for the peer's, and frees ws. NULL is ignored. */
void cli_ws_close(cli_ws_t *ws);
/* The socket, for poll(). */
int cli_ws_fd(const cli_ws_t *ws);

#endif
