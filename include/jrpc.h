/* SPDX-License-Identifier: MIT */
/* jrpc.h — the one public header of libjrpc, a JSON-RPC 2.0 server library built around batch
 * requests: many calls in one HTTP body or WebSocket message, checked, run concurrently under a
 * bound and answered in one response, in request order; over WebSocket the server also pushes
 * notifications and subscription results.
 *
 * Threads: a server runs `io_threads` libuv event loops. Unless a function says otherwise it may
 * be called from any thread before jrpc_server_run(), and only from a handler for the call it is
 * given afterwards. Every handler is replied to exactly once (jrpc_reply_*), also when the client
 * has gone away; the library frees the call after that reply.
 */
#ifndef JRPC_H
#define JRPC_H

#include <errno.h> /* the system codes of JRPC_ERRNO_MAP */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define JRPC_EXTERN __attribute__((visibility("default")))

#define JRPC_VERSION_MAJOR 0
#define JRPC_VERSION_MINOR 1
#define JRPC_VERSION_PATCH 0
#define JRPC_VERSION_STRING "0.1.0"

JRPC_EXTERN const char *jrpc_version_string(void);

/* ---- C errors: 0 or a negative JRPC_E* (or -errno from the system) -------------------------- */

/* System codes are -errno, taken from <errno.h> as libuv's UV__ERR does, so a JRPC_E* equals the
 * -errno the system returned and needs no translation. (libuv's fixed fallbacks, UV__EINVAL and
 * the like, are for Windows; jrpc builds on POSIX systems, where <errno.h> has every one.) */
#define JRPC__ERR(x) (-(x))

/* name, value, message. System codes have no message of their own (NULL): jrpc_strerror gives the
 * system's text for them, as it does for any other -errno. The project's own codes start at -4001,
 * past every system errno and clear of libuv's own codes (-3000 … -3014, -4025 … -4095). What a
 * system code means for a particular function is said in that function's comment (JRPC_EBUSY from
 * a set-up function: the server is running). */
#define JRPC_ERRNO_MAP(XX)                                                                         \
    XX(EINVAL, JRPC__ERR(EINVAL), NULL)                                                            \
    XX(ENOMEM, JRPC__ERR(ENOMEM), NULL)                                                            \
    XX(ENOENT, JRPC__ERR(ENOENT), NULL)                                                            \
    XX(EEXIST, JRPC__ERR(EEXIST), NULL)                                                            \
    XX(ERANGE, JRPC__ERR(ERANGE), NULL)                                                            \
    XX(EBUSY, JRPC__ERR(EBUSY), NULL)                                                              \
    XX(EACCES, JRPC__ERR(EACCES), NULL)                                                            \
    XX(EADDRINUSE, JRPC__ERR(EADDRINUSE), NULL)                                                    \
    XX(EADDRNOTAVAIL, JRPC__ERR(EADDRNOTAVAIL), NULL)                                              \
    XX(EMFILE, JRPC__ERR(EMFILE), NULL)                                                            \
    XX(ETIMEDOUT, JRPC__ERR(ETIMEDOUT), NULL)                                                      \
    XX(EIO, JRPC__ERR(EIO), NULL)                                                                  \
    XX(ETYPE, -4001, "JSON value has another type")                                                \
    XX(EJSON, -4002, "malformed JSON")                                                             \
    XX(EMODULE, -4003, "module could not be loaded")                                               \
    XX(ECLOSED, -4004, "connection is closed")

typedef enum {
#define JRPC__ERRNO_ENUM(name, val, msg) JRPC_##name = (val),
    JRPC_ERRNO_MAP(JRPC__ERRNO_ENUM)
#undef JRPC__ERRNO_ENUM
} jrpc_errno_t;

/* A message for `err`; never NULL, any thread. The project's own codes have static messages;
 * other values from -1 to -3999 are -errno and get the C library's strerror text (static for
 * every errno the system knows; for an unknown one the C library may reuse a buffer). */
JRPC_EXTERN const char *jrpc_strerror(int err);
/* The symbolic name ("EINVAL", "ETYPE" …) of a JRPC_E* code, or "UNKNOWN"; static, never NULL. */
JRPC_EXTERN const char *jrpc_err_name(int err);

/* ---- Wire error codes: response data, never C return values (docs/errors.md) ---------------- */

enum {
    JRPC_CODE_PARSE_ERROR = -32700,
    JRPC_CODE_INVALID_REQUEST = -32600,
    JRPC_CODE_METHOD_NOT_FOUND = -32601,
    JRPC_CODE_INVALID_PARAMS = -32602,
    JRPC_CODE_INTERNAL_ERROR = -32603,
    JRPC_CODE_SERVER_ERROR = -32000,
    JRPC_CODE_UNAUTHORIZED = -32001,
    JRPC_CODE_TIMEOUT = -32002,
    JRPC_CODE_RESPONSE_TOO_LARGE = -32003,
    JRPC_CODE_NOT_IN_BATCH = -32004,
    JRPC_CODE_LIMIT_EXCEEDED = -32005
};

/* ---- Views ----------------------------------------------------------------------------------- */

/* Bytes that belong to someone else; the owner's comment says how long they live. */
typedef struct jrpc_str {
    const char *ptr;
    size_t len;
} jrpc_str_t;

/* The text of one valid JSON value (ptr == NULL: absent). Views handed to a handler point into the
 * request's receive buffer and stay valid until the handler replies. */
typedef struct jrpc_json {
    const char *ptr;
    size_t len;
} jrpc_json_t;

typedef enum {
    JRPC_JSON_NONE = 0, /* absent (ptr == NULL) */
    JRPC_JSON_NULL,
    JRPC_JSON_FALSE,
    JRPC_JSON_TRUE,
    JRPC_JSON_NUMBER,
    JRPC_JSON_STRING,
    JRPC_JSON_ARRAY,
    JRPC_JSON_OBJECT
} jrpc_json_type_t;

/* Accessors over already-validated JSON text (any jrpc_json_t the library hands out, or text that
 * passed jrpc_json_validate). They never allocate and are safe on any thread. */
JRPC_EXTERN jrpc_json_type_t jrpc_json_type(jrpc_json_t v);
/* Elements of an array or members of an object; 0 for anything else. Linear in v.len. */
JRPC_EXTERN size_t jrpc_json_count(jrpc_json_t v);
/* Element i of an array: 0, JRPC_ETYPE (not an array) or JRPC_ENOENT (out of bounds). */
JRPC_EXTERN int jrpc_json_at(jrpc_json_t v, size_t i, jrpc_json_t *out);
/* Member `key` (NUL-terminated, compared with the unescaped member name) of an object; the last one
 * if the name repeats. 0, JRPC_ETYPE or JRPC_ENOENT. */
JRPC_EXTERN int jrpc_json_get(jrpc_json_t v, const char *key, jrpc_json_t *out);

/* Iterates an array's elements or an object's members in order. */
typedef struct jrpc_json_iter {
    const char *pos; /* next byte to read */
    const char *end; /* one past the container's closing bracket */
    int object;      /* iterating an object */
} jrpc_json_iter_t;
/* 0, or JRPC_ETYPE if `v` is neither array nor object. */
JRPC_EXTERN int jrpc_json_iter_init(jrpc_json_iter_t *it, jrpc_json_t v);
/* 1 and the next element (key->ptr == NULL for arrays; for objects *key is the member name as raw
 * JSON string text, quotes included), or 0 at the end. `key` may be NULL. */
JRPC_EXTERN int jrpc_json_iter_next(jrpc_json_iter_t *it, jrpc_json_t *key, jrpc_json_t *val);

/* Numbers: JRPC_ETYPE unless v is a JSON number written as an integer (no fraction, no exponent)
 * for the integer forms; JRPC_ERANGE when it does not fit. */
JRPC_EXTERN int jrpc_json_int64(jrpc_json_t v, int64_t *out);
JRPC_EXTERN int jrpc_json_uint64(jrpc_json_t v, uint64_t *out);
/* Any JSON number; JRPC_ERANGE when it overflows a double (underflow rounds to 0). */
JRPC_EXTERN int jrpc_json_double(jrpc_json_t v, double *out);
/* true/false into *out (1/0); JRPC_ETYPE otherwise. */
JRPC_EXTERN int jrpc_json_bool(jrpc_json_t v, int *out);
/* Unescapes a JSON string into buf (UTF-8) and NUL-terminates it. *len gets the unescaped length
 * (without the NUL) also when buf is too small, in which case JRPC_ERANGE is returned and buf holds
 * nothing useful; buf may be NULL when cap is 0
 * (a length query). JRPC_ETYPE when v is not a string. The text may contain NUL bytes (\u0000). */
JRPC_EXTERN int jrpc_json_string(jrpc_json_t v, char *buf, size_t cap, size_t *len);
/* 1 when v is a string whose unescaped value equals s[0..n), else 0. */
JRPC_EXTERN int jrpc_json_string_eq(jrpc_json_t v, const char *s, size_t n);
/* Strict RFC 8259 check of a whole text (one value, optional surrounding whitespace, valid
 * UTF-8, nesting at most `max_depth`; 0 = the library default). 0 or JRPC_EJSON; on error,
 * *err_offset (if not NULL) gets the byte offset where the text went wrong. */
JRPC_EXTERN int jrpc_json_validate(const char *p, size_t n, unsigned max_depth, size_t *err_offset);

/* ---- Output buffer and JSON writer ------------------------------------------------------------
 */

/* A growable byte buffer the caller embeds (init/free). Appends never fail loudly: on allocation
 * failure `err` becomes JRPC_ENOMEM, later appends do nothing, and they return that error. */
typedef struct jrpc_buf {
    char *ptr;  /* malloc'd bytes, not NUL-terminated */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
    int err;    /* 0 or the first error */
} jrpc_buf_t;

JRPC_EXTERN void jrpc_buf_init(jrpc_buf_t *b);
JRPC_EXTERN void jrpc_buf_free(jrpc_buf_t *b);
/* Makes room for n more bytes. */
JRPC_EXTERN int jrpc_buf_reserve(jrpc_buf_t *b, size_t n);
JRPC_EXTERN int jrpc_buf_append(jrpc_buf_t *b, const void *p, size_t n);
JRPC_EXTERN int jrpc_buf_appendz(jrpc_buf_t *b, const char *s);
/* s[0..n) as a quoted JSON string: escapes '"', '\\' and controls (\n \r \t \b \f, others \u00XX);
 * invalid UTF-8 sequences become U+FFFD, so the output is always valid JSON. */
JRPC_EXTERN int jrpc_buf_json_string(jrpc_buf_t *b, const char *s, size_t n);
JRPC_EXTERN int jrpc_buf_json_int64(jrpc_buf_t *b, int64_t v);
JRPC_EXTERN int jrpc_buf_json_uint64(jrpc_buf_t *b, uint64_t v);
/* Shortest text that reads back as v; JRPC_EINVAL for NaN and infinities (not JSON). */
JRPC_EXTERN int jrpc_buf_json_double(jrpc_buf_t *b, double v);

/* ---- Server ------------------------------------------------------------------------------------
 */

typedef struct jrpc_server jrpc_server_t;
typedef struct jrpc_call jrpc_call_t;
typedef struct jrpc_conn jrpc_conn_t; /* a client connection that can receive pushes */

/* Most io threads (io_threads is cut to this) and most addresses jrpc_server_listen takes. The
 * server keeps one listening socket per address and io thread in a fixed table (8 x 64 fds), so
 * both are bounds on that table: 64 loops is past the cores any one process here fills, and 8
 * addresses covers a host's interfaces and both address families. */
#define JRPC_MAX_IO_THREADS 64
/* Default JSON nesting depth: real params nest under 10 levels; 128 bounds the scanner's
 * explicit stack and the time a hostile body can make accessors spend skipping values. */
#define JRPC_MAX_DEPTH 128
#define JRPC_MAX_LISTEN 8

/* jrpc_config_t.batch_order: how the entries of an HTTP batch answer that is streamed (written
 * with chunked encoding as items finish, docs/compression.md) are ordered. */
enum {
    JRPC_ORDER_REQUEST = 0,   /* request order: the finished prefix is written as it grows */
    JRPC_ORDER_COMPLETION = 1 /* each entry as soon as its item is done */
};

typedef enum { JRPC_LOG_ERROR = 0, JRPC_LOG_WARN, JRPC_LOG_INFO, JRPC_LOG_DEBUG } jrpc_log_level_t;
/* Receives one log line (no newline). Called on io threads, concurrently: it must be thread-safe.
 */
typedef void (*jrpc_log_cb)(jrpc_log_level_t level, const char *line, void *data);

typedef struct jrpc_config {
    const char *path;           /* RPC path (copied); "/" always answers too */
    const char *rest_path;      /* REST prefix ("/rest": POST /rest/<method>); NULL or "" = off */
    const char *hosts;          /* names a request may give in Host (copied; words separated by
                                   spaces or commas, "*" = any); NULL or "" = localhost names */
    const char *cors_origins;   /* browser origins allowed to call (copied; the same form; "*" =
                                   any); NULL or "" = none: no CORS, Origin gets 403 */
    unsigned io_threads;        /* event loops; 0 = one per core */
    unsigned reuse_port;        /* 1: share listen ports with other processes of the same user
                                   (SO_REUSEPORT); 0: a port another socket listens on is refused */
    unsigned workers;           /* threads for JRPC_WORKER handlers */
    unsigned worker_queue;      /* queued worker calls past which items get -32005 */
    unsigned batch_concurrency; /* items of one batch in flight at once */
    unsigned max_batch;         /* items per HTTP batch */
    unsigned max_batch_ws;      /* items per WebSocket batch */
    unsigned max_depth;         /* JSON nesting depth; 0 = JRPC_MAX_DEPTH */
    size_t max_body;            /* request body bytes (413 past it) */
    size_t max_header;          /* request line + header bytes (431 past it) */
    size_t max_response;        /* response body bytes (items past it get -32003) */
    unsigned deadline_ms;       /* per item, from arrival (-32002 past it) */
    unsigned drain_ms;          /* on stop: how long in-flight work may still finish */
    unsigned drain_delay_ms;    /* jrpc_server_drain: how long /ready answers 503 while all is
                                   still served, before the stop; 0 = drain is stop */
    size_t max_ws_message;      /* WebSocket message bytes (close 1009 past it) */
    unsigned ws_max_inflight;   /* calls in flight per WebSocket connection before it stops
                                   reading */
    size_t ws_max_queue;        /* bytes held for one WebSocket client's output (answers and
                                   pushes queued or posted, with their structs and buffers) past
                                   which it is disconnected */
    unsigned ws_ping_ms;        /* ping after this long without a byte from the client, close
                                   when the next interval brings none either; 0 = never */
    unsigned ws_idle_ms;        /* close (1001) after this long without a message either way;
                                   0 = never */
    unsigned ws_max_subscriptions; /* live subscriptions per WebSocket connection (-32005 past) */
    unsigned max_connections; /* open connections, whole server (more: 503 and close); 0 = no cap */
    unsigned max_connections_per_ip; /* open connections from one client address; 0 = no cap */
    const char *trusted_proxies;     /* peers whose X-Forwarded-For / Forwarded name the client
                                        (copied; addresses or CIDRs, IPv4 or IPv6, separated by
                                        spaces or commas); NULL or "" = none: the peer is the
                                        client. Their requests count per client address against
                                        max_connections_per_ip (docs/security.md) */
    unsigned header_timeout_ms; /* a request's line and headers must arrive within this (408) */
    unsigned body_timeout_ms;   /* longest pause between two reads of a body (408) */
    unsigned min_body_rate;     /* bytes/s a body must average once it took body_timeout (408) */
    unsigned idle_timeout_ms;   /* close a keep-alive connection idle this long; 0 = never */
    unsigned send_timeout_ms;   /* close a connection whose answers do not move this long */
    unsigned max_inflight;      /* calls admitted and not finished, whole server (-32005 past it) */
    size_t max_memory;          /* bytes held by requests and unwritten answers, whole server:
                                   past it new items get -32005 and connections holding memory
                                   stop reading until theirs is released */
    size_t max_unsent;          /* answer bytes waiting to be written on one HTTP connection past
                                   which it stops reading requests until they drain */
    unsigned http_max_inflight; /* calls not finished (answered or not) per HTTP connection past
                                   which it stops reading requests until some finish */
    jrpc_log_level_t log_level; /* JRPC_LOG_INFO logs one line per request */
    jrpc_log_cb log_cb;         /* NULL: no logging at all */
    void *log_data;
    unsigned max_method_labels; /* distinct method names the metrics label; the others count as
                                   "(other)" (0 = all count as "(other)") */
    unsigned log_json; /* 1: access lines are JSON objects ({"msg":"access","client":…}) that
                          log_cb completes with its own time and level; 0: text */
    /* Budgets in Redis (docs/keys.md): every server given the same Redis shares each key's
     * budget. Read when the server is created (the host is resolved then); a running server
     * keeps them. */
    const char *redis_url;      /* redis://[[user]:password@]host[:port][/db]; NULL or "" = off:
                                   budgets are per process */
    const char *redis_password; /* AUTH at connect; NULL or "" = the URL's, if any */
    int redis_db;               /* SELECT at connect; -1 = the URL's, else 0 */
    unsigned redis_timeout_ms;  /* a reservation Redis has not answered by then gets the
                                   redis_fail answer */
    unsigned redis_fail_closed; /* 1: such a reservation refuses every item (-32005); 0: admits
                                   every item */
    /* Compression (docs/compression.md). */
    unsigned gzip;        /* 1: HTTP answers of at least gzip_min bytes are gzip-encoded for
                             clients whose Accept-Encoding allows it, and request bodies sent with
                             Content-Encoding: gzip are decoded; 0: neither (such bodies get 415) */
    size_t gzip_min;      /* answer bytes below which an answer goes uncompressed */
    unsigned gzip_level;  /* zlib level, 1 (fastest) – 9 (smallest) */
    unsigned batch_order; /* order of a streamed HTTP batch answer's entries: JRPC_ORDER_* */
    unsigned ws_deflate;  /* 1: WebSocket clients that offer permessage-deflate (RFC 7692) get it:
                             messages of at least gzip_min bytes go compressed; 0: declined */
} jrpc_config_t;

/* Fills *cfg with the defaults (DESIGN.md; docs/config.md gives the reason for each). */
JRPC_EXTERN void jrpc_config_init(jrpc_config_t *cfg);

/* Checks cfg as jrpc_server_create does: NULL when a server can be made from it, else a static
 * message naming the first field refused: "path must start with /", "max_batch must be at least
 * 1" and so on. NULL cfg stands for the defaults, which pass. Only reads cfg; any thread. */
JRPC_EXTERN const char *jrpc_config_check(const jrpc_config_t *cfg);
/* Creates a server configured by cfg (NULL = the defaults). cfg and its strings are copied and may
 * go once this returns; log_cb and log_data must stay valid as long as the server. 0 and the
 * server in *out, which the caller frees with jrpc_server_free; or JRPC_EINVAL (cfg refused:
 * jrpc_config_check names the field) or JRPC_ENOMEM, with *out NULL. Any thread. */
JRPC_EXTERN int jrpc_server_create(const jrpc_config_t *cfg, jrpc_server_t **out);
/* jrpc_server_create returning the server: NULL both for an invalid cfg and for out of memory
 * (jrpc_server_create tells them apart). */
JRPC_EXTERN jrpc_server_t *jrpc_server_new(const jrpc_config_t *cfg);
/* Binds and listens on "HOST:PORT" ("127.0.0.1:8000", "[::1]:0"; port 0 picks a free port) with
 * one SO_REUSEPORT socket per io thread. Call before jrpc_server_run; may be called several times.
 * A port another socket listens on already (another process, or an address listed before) is
 * refused with JRPC_EADDRINUSE unless cfg->reuse_port is 1; without it, connections are also
 * steered to this server's own sockets, so a process that joins the port anyway gets none. On a
 * checking server (jrpc_server_set_checking) nothing is bound: the address is parsed the same
 * way and a probe asks the kernel whether a start could bind it (its port may be in use: a
 * check runs beside the live server). 0, JRPC_EINVAL (malformed, unknown host, or
 * JRPC_MAX_LISTEN addresses bound already), JRPC_EBUSY (the server is running), or the socket's
 * error (JRPC_EADDRINUSE, JRPC_EADDRNOTAVAIL: not an address of this host, JRPC_EACCES …). */
JRPC_EXTERN int jrpc_server_listen(jrpc_server_t *srv, const char *host_port);
/* Number of addresses bound so far, and the i-th as "HOST:PORT" text (port resolved,
 * NUL-terminated in buf). 0, JRPC_ENOENT (no address i) or JRPC_ERANGE (cap too small). */
JRPC_EXTERN size_t jrpc_server_listen_count(const jrpc_server_t *srv);
JRPC_EXTERN int jrpc_server_address(const jrpc_server_t *srv, size_t i, char *buf, size_t cap);
/* Runs the io loops on the calling thread and io_threads - 1 more; returns 0 after
 * jrpc_server_stop once in-flight requests are answered (or drain_ms passed); JRPC_EBUSY when it
 * is running already, JRPC_ENOMEM, or the system's error when a loop or thread could not start. */
JRPC_EXTERN int jrpc_server_run(jrpc_server_t *srv);
/* Asks a running server to stop: listeners close at once, requests in flight are answered, idle
 * connections close. Once drain_ms is over (or at a second call) every call still running is
 * answered -32000 "server shutting down", connections get up to a second (send_timeout if
 * shorter) to write those answers and are closed, and run returns — also while handlers have
 * not replied (jrpc_server_unreplied). Any thread; async-signal-safe; a stop before run makes
 * run return at once. */
JRPC_EXTERN void jrpc_server_stop(jrpc_server_t *srv);
/* A stop a load balancer can see first: GET /ready answers 503 "draining" at once, while
 * listeners stay open and everything is served as before for cfg.drain_delay_ms; then the server
 * stops as jrpc_server_stop says. A jrpc_server_stop during the delay stops at once. With
 * drain_delay_ms 0 it is jrpc_server_stop. Any thread; async-signal-safe; a drain before run
 * delays from the start of run. */
JRPC_EXTERN void jrpc_server_drain(jrpc_server_t *srv);
/* Requests with calls whose handlers had not replied when jrpc_server_run last returned (0 when
 * every handler replied): after drain_ms a stop
 * answers every unfinished call (-32000 "server shutting down") and gives up waiting for their
 * handlers, so that run returns. Such a handler may still be running: a program that loaded it
 * from a shared object must not unload that, and its reply is dropped (also after
 * jrpc_server_free: what such calls hold is kept for the life of the process). Any thread, once
 * run returned. */
JRPC_EXTERN size_t jrpc_server_unreplied(const jrpc_server_t *srv);
/* Makes srv a server built to be checked, not run (jrpcd --check): jrpc_server_listen then only
 * validates addresses, jrpc_server_run refuses (JRPC_EINVAL), and modules, asking
 * jrpc_server_checking, verify their settings without side effects (no file created, nothing
 * sent). 0, or JRPC_EBUSY once an address is bound or the server runs. The owning thread. */
#define JRPC_HAVE_SERVER_CHECKING 1
JRPC_EXTERN int jrpc_server_set_checking(jrpc_server_t *srv);
/* 1 when srv was made a checking server, else 0. Any thread. */
JRPC_EXTERN int jrpc_server_checking(const jrpc_server_t *srv);
/* Frees a server that is not running (never ran, or jrpc_server_run returned). */
JRPC_EXTERN void jrpc_server_free(jrpc_server_t *srv);
/* The server's own copy of its configuration (defaults filled in), the one the last
 * jrpc_server_reconfigure set; read-only, any thread, valid as long as srv. */
JRPC_EXTERN const jrpc_config_t *jrpc_server_config(const jrpc_server_t *srv);

/* Changes a server's configuration, also while it runs, without closing a connection or
 * dropping a call (jrpcd's SIGHUP). cfg is checked as jrpc_server_create checks it and copied,
 * strings too. Each io loop switches to the copy at its next wakeup, between two callbacks, so no
 * callback sees half of each; what arrives after that follows it: the next batch meets the new
 * max_batch, the next item the new deadline, a timer armed again its new timeout. A batch
 * already admitted is not checked again; its later steps (items not started yet, the bound on
 * its answer) follow the new values. The limits a WebSocket connection's other
 * threads read (max_ws_message, ws_max_queue, ws_max_subscriptions), and the log_level of its
 * connection-level lines, apply to connections opened after it. What the running server was built
 * with is kept from the current configuration and needs a new server to change: path, rest_path,
 * io_threads, reuse_port, workers, worker_queue, max_header, log_cb and log_data. hosts NULL or ""
 * is the default list, with the loopback names jrpc_server_listen added. The configurations
 * replaced stay allocated until jrpc_server_free (calls and other threads may still read them; a
 * few hundred bytes each). Any thread, after the last jrpc_server_listen; returns before the loops
 * have switched. 0, JRPC_EINVAL (cfg refused: jrpc_config_check names the field; nothing changes)
 * or JRPC_ENOMEM. */
#define JRPC_HAVE_SERVER_RECONFIGURE 1
JRPC_EXTERN int jrpc_server_reconfigure(jrpc_server_t *srv, const jrpc_config_t *cfg);

/* ---- Methods -----------------------------------------------------------------------------------
 */

typedef void (*jrpc_method_cb)(jrpc_call_t *call, void *data);

enum jrpc_method_flags {
    JRPC_INLINE = 0,        /* cheap, never blocks: runs on the io loop, replies before returning */
    JRPC_WORKER = 1,        /* may block: runs on the worker pool */
    JRPC_ASYNC = 2,         /* runs on the io loop, starts work, replies later from any thread */
    JRPC_RUN_MASK = 0xff,   /* the bits that hold one of the three above */
    JRPC_NO_BATCH = 1 << 8, /* refused inside batches (-32004); works alone */
    JRPC_UNBOUNDED = 1 << 9 /* ASYNC calls that bound themselves (a gateway's upstream queue):
                               they start at once and do not count against batch_concurrency */
};

/* Registers `name` (copied; any non-empty string). A name ending in '*' ("eth_*") is a prefix
 * pattern: it serves every method with that prefix that has no exact registration (the longest
 * prefix wins); the handler reads the name with jrpc_call_method. `data` is passed to every call.
 * Before jrpc_server_run only. 0, JRPC_EEXIST (taken), JRPC_EINVAL, JRPC_EBUSY (the server is
 * running) or JRPC_ENOMEM. */
JRPC_EXTERN int jrpc_method_add(jrpc_server_t *srv, const char *name, jrpc_method_cb cb, void *data,
                                unsigned flags);

/* Documents a registered method or pattern for rpc.discover (OpenRPC 1.2): a one-line summary,
 * params as a JSON array of ContentDescriptor objects, the result as one ContentDescriptor
 * object; any may be NULL. Copied; the JSON must be valid (JRPC_EINVAL otherwise). Before
 * jrpc_server_run only. 0, JRPC_ENOENT (not registered), JRPC_EINVAL, JRPC_EBUSY (the server is
 * running) or JRPC_ENOMEM. */
#define JRPC_HAVE_METHOD_DOC 1
JRPC_EXTERN int jrpc_method_doc(jrpc_server_t *srv, const char *name, const char *summary,
                                const char *params_json, const char *result_json);

/* Batch policy: methods whose name matches `pattern` (an exact name, or a prefix ending in '*')
 * are refused inside batches with -32004, like JRPC_NO_BATCH methods, and work alone; the pattern
 * may name methods not registered yet (or served by an upstream). A pattern that starts with '!'
 * is an exception to the others: "!NAME" (or "!PREFIX*") lets matching calls through, and
 * "!NAME:KIND" only those whose params are an array starting with the string KIND ("eth_subscribe"
 * denied with "!eth_subscribe:newHeads" keeps newHeads subscriptions in batches). Copied. Before
 * jrpc_server_run only. 0, JRPC_EINVAL (empty, a '*' before the end, or an empty KIND),
 * JRPC_EBUSY (the server is running) or JRPC_ENOMEM. */
JRPC_EXTERN int jrpc_batch_deny(jrpc_server_t *srv, const char *pattern);
/* Replaces the whole batch policy with patterns[0..n) (each as for jrpc_batch_deny; n = 0 allows
 * every method in batches again), also while the server runs (jrpcd's reload): batches checked
 * after it returns follow the new policy. Copied; the replaced policy stays allocated until
 * jrpc_server_free. Any thread. 0, JRPC_EINVAL (a bad pattern: nothing changes) or
 * JRPC_ENOMEM. */
#define JRPC_HAVE_BATCH_DENY_SET 1
JRPC_EXTERN int jrpc_batch_deny_set(jrpc_server_t *srv, const char *const *patterns, size_t n);

/* ---- API keys, per-call costs and budgets (docs/keys.md) ------------------------------------ */

/* A set of API keys, the cost of each method in units, and the rules for requests without a key:
 * built whole, then given to a server (jrpc_server_keys_set), which swaps it in while running.
 * Requests name a key in the path (POST <path_prefix>/<secret>), as `Authorization: Bearer
 * <secret>` or as `X-API-Key: <secret>`. Each key (and, with anonymous_rate, each client address
 * without a key) has a token bucket of `rate` units a second up to `burst`; the calls of one
 * request are admitted in request order, each for its method's cost. */
typedef struct jrpc_keys jrpc_keys_t;

typedef struct jrpc_auth_config {
    int required;             /* 1: a request without a valid key gets HTTP 401 */
    const char *path_prefix;  /* "/v2": <prefix>/<secret> is the RPC path for that key, and
                                 <prefix>/<secret><rest_path>/… its REST routes; NULL: none */
    uint64_t anonymous_rate;  /* units a second per client address without a key (0: no limit) */
    uint64_t anonymous_burst; /* 0: anonymous_rate x 1 s */
} jrpc_auth_config_t;

typedef struct jrpc_key_config {
    const char *name;      /* 1-64 of [A-Za-z0-9_.-]: what metrics and logs show */
    const char *secret;    /* 16-128 of [A-Za-z0-9_.~-] (it may travel in a URL path) */
    uint64_t rate;         /* units a second; 0: no limit */
    uint64_t burst;        /* 0: rate x 1 s; at most 10^9 */
    const char *methods;   /* allow patterns (exact, or a prefix ending in '*'), separated by
                              spaces or commas; NULL or "": every method */
    const char *deny;      /* deny patterns, the same way; a deny wins over an allow */
    unsigned max_batch;    /* HTTP batch cap for this key (0: the server's; never above it) */
    unsigned max_batch_ws; /* WebSocket batch cap, the same way */
    const char *origins;   /* browser origins allowed with this key (as cors_origins);
                              NULL: the server's cors_origins */
} jrpc_key_config_t;

/* NULL when `auth` (NULL: the defaults, nothing required) or `key` is valid, else a static
 * message naming the first field refused. Any thread. */
JRPC_EXTERN const char *jrpc_auth_check(const jrpc_auth_config_t *auth);
JRPC_EXTERN const char *jrpc_key_check(const jrpc_key_config_t *key);
/* A new set with these rules (copied) and no key; NULL when auth is refused or out of memory. */
JRPC_EXTERN jrpc_keys_t *jrpc_keys_new(const jrpc_auth_config_t *auth);
/* Adds a key (copied). 0, JRPC_EINVAL (jrpc_key_check), JRPC_EEXIST (its name or secret is
 * taken) or JRPC_ENOMEM. Not once the set was given to a server. */
JRPC_EXTERN int jrpc_keys_add(jrpc_keys_t *keys, const jrpc_key_config_t *key);
/* Sets the cost of the methods `pattern` names (exact, or a prefix ending in '*'; the exact name,
 * then the longest prefix decides) to `units` (0: free; at most 10^9). Methods no pattern names
 * cost 1. 0, JRPC_EINVAL, JRPC_EEXIST (the pattern is set already) or JRPC_ENOMEM. */
JRPC_EXTERN int jrpc_keys_cost(jrpc_keys_t *keys, const char *pattern, uint64_t units);
/* Frees a set never given to a server. */
JRPC_EXTERN void jrpc_keys_free(jrpc_keys_t *keys);
/* Makes `keys` (NULL: none, every request is served without keys) what the server checks, also
 * while it runs (jrpcd's reload): requests whose head arrives after it returns follow it; a
 * WebSocket connection keeps the key it opened with. The server takes the set in every case and
 * frees it (replaced sets stay allocated until jrpc_server_free). Budgets are kept by key name
 * across sets. Any thread. 0 or JRPC_ENOMEM. */
JRPC_EXTERN int jrpc_server_keys_set(jrpc_server_t *srv, jrpc_keys_t *keys);

/* ---- Readiness (GET /ready) ------------------------------------------------------------------ */

/* Whether what a hook watches is usable: 1 ready, 0 not. Called on any io thread, concurrently,
 * for each GET /ready (a load balancer's check: every few seconds), so it must be cheap,
 * thread-safe and must not block. */
typedef int (*jrpc_ready_cb)(void *data);
/* Registers a readiness check: while cb(data) answers 0, GET /ready answers 503 with `name` in
 * the list `key` of its body ({"status":"unavailable","upstreams_down":["eth"]}: key
 * "upstreams_down", name "eth"; names of hooks with the same key share one list). key and name
 * are copied and should be short identifiers: the body is public (docs/security.md). Before
 * jrpc_server_run, from the thread that owns srv; hooks stay for every later run, and data must
 * outlive them (until jrpc_server_free). 0, JRPC_EINVAL (NULL or empty key or name, NULL cb),
 * JRPC_EBUSY (running) or JRPC_ENOMEM. */
JRPC_EXTERN int jrpc_server_ready_hook(jrpc_server_t *srv, const char *key, const char *name,
                                       jrpc_ready_cb cb, void *data);

/* ---- Loop hooks (extensions with per-loop state: the gateway's client) ---------------------- */

/* `loop` is the io loop's uv_loop_t, `index` its place (jrpc_call_loop_index), `data` as given. */
typedef void (*jrpc_loop_cb)(void *loop, unsigned index, void *data);

/* Registers per-loop hooks, run on each io loop's own thread: `start` (may be NULL) when the
 * loop starts, before it serves anything; `stop` (may be NULL) once per run and loop, after
 * jrpc_server_stop, when the loop has drained (no request is left), or when drain_ms is over (or
 * a second stop came) with requests still running: every call still running was answered -32000
 * "server shutting down" just before, so reply to every call you still hold (queued or in
 * flight; those replies are dropped), stop that work, and close the handles you opened on the
 * loop (it runs until they are closed). Calls your methods receive after it must be replied to at
 * once. A loop that fails to start runs neither. Hooks run in registration order and stay for every
 * later run. 0, JRPC_EBUSY (running) or JRPC_ENOMEM. Before jrpc_server_run, from the thread that
 * owns srv. */
JRPC_EXTERN int jrpc_server_loop_hook(jrpc_server_t *srv, jrpc_loop_cb start, jrpc_loop_cb stop,
                                      void *data);
/* ---- The shared store: the server's Redis ([redis]) for extensions -------------------------- */

/* Extensions that keep state several servers share (the gateway's response cache) use the
 * connections the server keeps to the Redis its config names (redis_url), one per io loop, with
 * its timeout and reconnects, instead of opening their own. Keys are the caller's: prefix them
 * (docs/keys.md lists the prefixes jrpc uses). */

/* A store operation's end, on the io loop it was started on, never inside the call that started
 * it, exactly once (also when the loop stops: then with an error). status: 0 (get: found; val,
 * len: the value, valid only during the call; ttl_ms: its remaining time, 0 when it has no
 * expiry), JRPC_ENOENT (get: absent), JRPC_ETIMEDOUT (no answer within redis_timeout_ms; a late
 * answer is dropped) or JRPC_EIO (an error answer, or the connection went with it in flight). */
typedef void (*jrpc_kv_cb)(void *data, int status, const char *val, size_t len, uint64_t ttl_ms);
/* 1 when srv has a shared store (redis_url was set at create), else 0. Any thread. */
JRPC_EXTERN int jrpc_server_kv_shared(const jrpc_server_t *srv);
/* Starts a GET of key[0..klen) on io loop `loop` (jrpc_call_loop_index), from that loop's thread
 * while the server runs. 0: cb(data, …) runs later as said above; otherwise cb never runs:
 * JRPC_EINVAL (no shared store, or a bad loop), JRPC_ECLOSED (the loop has no connection ready:
 * Redis is down or being reconnected), JRPC_EBUSY (too many operations unanswered on the loop)
 * or JRPC_ENOMEM. The key is copied. */
JRPC_EXTERN int jrpc_server_kv_get(jrpc_server_t *srv, unsigned loop, const char *key, size_t klen,
                                   jrpc_kv_cb cb, void *data);
/* Stores val[0..vlen) under key, expiring after ttl_ms (0: no expiry); the same rules and
 * errors as jrpc_server_kv_get. cb may be NULL (nothing is told); otherwise it runs with 0, or
 * an error, as above. key and val are copied. */
JRPC_EXTERN int jrpc_server_kv_set(jrpc_server_t *srv, unsigned loop, const char *key, size_t klen,
                                   const char *val, size_t vlen, uint64_t ttl_ms, jrpc_kv_cb cb,
                                   void *data);

/* ---- Metrics (docs/metrics.md) ----------------------------------------------------------------
 */

/* Listens on "HOST:PORT" as an admin listener: GET /metrics answers the Prometheus text format
 * (0.0.4) with the server's counters, /health, /healthz and /ready answer as on the public
 * listeners; every other path is 404, and RPC, REST and WebSocket are
 * never served there (nor /metrics on the public listeners). Its connections are outside the
 * connection caps and the counters. Requests and calls are timed (the duration histograms) only
 * on a server with an admin listener. Errors as jrpc_server_listen; before jrpc_server_run. */
JRPC_EXTERN int jrpc_server_admin_listen(jrpc_server_t *srv, const char *host_port);

typedef struct jrpc_metrics jrpc_metrics_t;
/* Appends the caller's series to a scrape: jrpc_metrics_printf them (# HELP, # TYPE and samples,
 * in the text format). Runs on the io loop that serves the scrape, while the server runs: read
 * shared state with atomics or locks, and do not block. */
typedef void (*jrpc_metrics_cb)(jrpc_metrics_t *m, void *data);
/* Registers cb to add series to every scrape, after the server's own, in registration order
 * (the gateway's upstream series); data must stay valid until jrpc_server_free. 0, JRPC_EBUSY
 * (running) or JRPC_ENOMEM. Before jrpc_server_run, from the thread that owns srv. */
JRPC_EXTERN int jrpc_server_metrics_hook(jrpc_server_t *srv, jrpc_metrics_cb cb, void *data);
/* printf-style text into the scrape being built (inside a jrpc_metrics_cb only). */
JRPC_EXTERN void jrpc_metrics_printf(jrpc_metrics_t *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s (NUL-terminated) as a label value, escaped as the text format wants (\\, \" and
 * \n); inside a jrpc_metrics_cb only. */
JRPC_EXTERN void jrpc_metrics_label(jrpc_metrics_t *m, const char *s);

/* 1 when `name` (a pattern with its trailing '*') is registered exactly, else 0. Before
 * jrpc_server_run, from the thread that registers methods (the registry is not locked until the
 * server runs, and read-only after). */
JRPC_EXTERN int jrpc_method_registered(const jrpc_server_t *srv, const char *name);

/* ---- Calls (valid from the handler's start until its reply) ------------------------------- */

/* params as sent (byte-exact), or ptr == NULL when the request had none. */
JRPC_EXTERN jrpc_json_t jrpc_call_params(const jrpc_call_t *call);
/* The method name, unescaped. */
JRPC_EXTERN jrpc_str_t jrpc_call_method(const jrpc_call_t *call);
/* The id as sent (byte-exact), ptr == NULL for a notification. */
JRPC_EXTERN jrpc_json_t jrpc_call_id(const jrpc_call_t *call);
/* 1 when the call came inside a batch. */
JRPC_EXTERN int jrpc_call_in_batch(const jrpc_call_t *call);
/* The whole request object as sent (byte-exact, from its '{' to its '}'), for a proxy that
 * forwards it unchanged: a view into the request's body, owned by the engine and valid until the
 * call is replied to; ptr == NULL when there is none (a REST call). Any thread the call may be
 * used on. */
#define JRPC_HAVE_CALL_RAW 1
JRPC_EXTERN jrpc_json_t jrpc_call_raw(const jrpc_call_t *call);
/* A number naming the call's request (HTTP body, WebSocket message): the same for each of its
 * calls, another for every other request of the call's io loop. Any thread the call may be used
 * on. */
JRPC_EXTERN uint64_t jrpc_call_request(const jrpc_call_t *call);
/* 1 when its request asked for an answer no cache made (HTTP `Cache-Control: no-cache` or
 * `Pragma: no-cache`), for handlers that cache (the gateway). Any thread the call may be used on.
 */
#define JRPC_HAVE_CALL_NO_CACHE 1
JRPC_EXTERN int jrpc_call_no_cache(const jrpc_call_t *call);
/* The libuv loop (uv_loop_t *) that owns the call: JRPC_ASYNC handlers start timers and I/O on it.
 */
JRPC_EXTERN void *jrpc_call_loop(const jrpc_call_t *call);
/* The index (0 … io_threads-1) of that loop: extensions keep per-loop state in an array of
 * io_threads entries indexed by it (loop-local storage without locks). Any thread. */
JRPC_EXTERN unsigned jrpc_call_loop_index(const jrpc_call_t *call);
/* The server the call arrived at. */
JRPC_EXTERN jrpc_server_t *jrpc_call_server(const jrpc_call_t *call);
/* 1 once nobody waits for the call's reply any more, else 0: its deadline passed (it was answered
 * -32002), its client left (a call with an id whose connection closed), or the server answered it
 * while shutting down. A notification is cancelled only by its deadline: its effects are still
 * wanted after its client left. A handler that queues or retries work checks it to drop what no
 * one will read; the call must still be replied to, exactly once: -32002 (JRPC_CODE_TIMEOUT)
 * suits, as the client reads it only when the deadline passed and the engine's own -32002 has not
 * gone out yet; otherwise the reply is dropped. Once 1, it stays 1. Any thread the call may be
 * used on; on the loop's thread it also sees a deadline whose timer has not run yet. */
JRPC_EXTERN int jrpc_call_cancelled(const jrpc_call_t *call);
/* Counts a call the caller refuses at a bound of its own (a queue that is full) under
 * jrpc_limit_rejections_total{limit=LIMIT} (docs/metrics.md), so that operators see it with the
 * server's limits; the caller still replies, -32005 (JRPC_CODE_LIMIT_EXCEEDED) suits. `limit` is a
 * label docs/metrics.md lists ("upstream_queue" is the gateway's max_queue). One count per call;
 * 0, or JRPC_EINVAL for a name not listed. Any thread the call may be used on, before its reply. */
JRPC_EXTERN int jrpc_call_limit_refused(jrpc_call_t *call, const char *limit);

/* Replies. Exactly one per call, from any thread; afterwards `call` and every view from it are
 * gone. Bytes are copied unless said otherwise. A reply to a call that already timed out or whose
 * client left is accepted and dropped. */
/* `json` must be exactly one valid JSON value (not checked). */
JRPC_EXTERN void jrpc_reply_raw(jrpc_call_t *call, const char *json, size_t len);
/* Takes the bytes of *result (one valid JSON value) without copying and re-initialises *result. */
JRPC_EXTERN void jrpc_reply_buf(jrpc_call_t *call, jrpc_buf_t *result);
/* Replies with json[0..len) (one valid JSON value) by reference: the bytes are used where they
 * lie, not copied, and must stay unchanged until release(data) runs, once, on the call's loop
 * thread: after the answer that carries them was built, or when the reply is dropped (the call
 * had timed out). For results that live in a buffer of the replier's (a gateway's upstream
 * answer holds many results). */
typedef void (*jrpc_release_cb)(void *data);
JRPC_EXTERN void jrpc_reply_ref(jrpc_call_t *call, const char *json, size_t len,
                                jrpc_release_cb release, void *data);
JRPC_EXTERN void jrpc_reply_string(jrpc_call_t *call, const char *s, size_t len);
JRPC_EXTERN void jrpc_reply_int64(jrpc_call_t *call, int64_t v);
/* An error object: `message` is escaped; `data_json` is NULL or one valid JSON value. */
JRPC_EXTERN void jrpc_reply_error(jrpc_call_t *call, int code, const char *message,
                                  const char *data_json);
/* An error object given whole as JSON text, byte for byte (not checked: one object with at least
 * "code" and "message"), for proxies that pass another server's errors through unchanged, extra
 * members included. `code` must be the object's code (REST maps it to an HTTP status). */
JRPC_EXTERN void jrpc_reply_error_raw(jrpc_call_t *call, int code, const char *error_json,
                                      size_t len);

/* ---- Connections and server push (WebSocket; docs/websocket.md) ------------------------------ */

/* A jrpc_conn_t is a client connection that can be sent messages it did not ask for: a WebSocket
 * connection (HTTP requests have none). The library owns it. A reference (jrpc_conn_ref) keeps
 * the object valid, not the connection open: once the client has gone, or the connection is
 * closing, sends fail with JRPC_ECLOSED instead of touching freed memory, so a producer on any
 * thread may keep pushing until it is told to stop. */

/* The connection the call arrived on, or NULL when it came over HTTP. Borrowed: valid until the
 * call's reply; jrpc_conn_ref keeps it longer. Any thread the call may be used on. */
JRPC_EXTERN jrpc_conn_t *jrpc_call_conn(const jrpc_call_t *call);
/* Takes a reference and returns conn; the object stays valid until the matching
 * jrpc_conn_unref, also after the connection closed. Any thread. */
JRPC_EXTERN jrpc_conn_t *jrpc_conn_ref(jrpc_conn_t *conn);
/* Drops a reference taken with jrpc_conn_ref; the last one frees the object. Any thread. */
JRPC_EXTERN void jrpc_conn_unref(jrpc_conn_t *conn);
/* 1 while sends to conn are accepted; 0 once it is closing or closed (it never reopens).
 * Any thread; the answer may be stale by the time the caller acts on it. */
JRPC_EXTERN int jrpc_conn_is_open(jrpc_conn_t *conn);
/* Sends the notification {"jsonrpc":"2.0","method":method,"params":params} to the client.
 * `method` is NUL-terminated text (escaped here); params_json[0..len) is one valid JSON array or
 * object (not checked), or NULL for none. Both are copied. Any thread, including a handler of a
 * call on this very connection; notifications sent from one thread arrive in that order. 0 when
 * queued (it is written unless the connection closes first), JRPC_ECLOSED once the connection is
 * closing or closed, JRPC_EINVAL, JRPC_ENOMEM. A client that lets ws_max_queue bytes pile up
 * unread is disconnected, and later sends return JRPC_ECLOSED; a send from another thread counts
 * against ws_max_queue as it is made, so the send that finds the bound reached returns
 * JRPC_ECLOSED itself. */
JRPC_EXTERN int jrpc_conn_notify(jrpc_conn_t *conn, const char *method, const char *params_json,
                                 size_t len);

/* Subscriptions, in the shape Ethereum clients use (eth_subscribe / eth_unsubscribe): the handler
 * of the subscribe call answers with a subscription id, then results are pushed as
 * {"jsonrpc":"2.0","method":<method>,"params":{"subscription":<id>,"result":<result>}} until the
 * client unsubscribes, the producer ends it, or the connection closes. A subscription holds two
 * kinds of reference: the connection's (until it ends and end_cb has run) and the producer's
 * (from jrpc_sub_start until jrpc_sub_unref), so a producer on another thread never pushes to
 * freed memory. */
typedef struct jrpc_sub jrpc_sub_t;

/* The subscription ended: the client unsubscribed, jrpc_sub_end was called, or the connection
 * closed (also at server stop). Runs exactly once per subscription, on the io thread of its
 * connection, from the event loop (never inside a jrpc_* call). jrpc_sub_push returns
 * JRPC_ECLOSED from then on. A producer typically stops its source here and drops its reference
 * with jrpc_sub_unref. */
typedef void (*jrpc_sub_end_cb)(jrpc_sub_t *sub, void *data);

/* Starts a subscription on the call's connection and answers the call with its id: a JSON string
 * "0x" and 32 hex digits (128 random bits), so the handler must not reply itself. When that answer
 * cannot reach the client (the call already timed out, or came as a notification), the
 * subscription ends as soon as the call completes: end_cb runs and pushes return JRPC_ECLOSED.
 * `method` (NUL-terminated, copied) names the pushes ("eth_subscription"). Pushes made before the
 * client has received the answer (from a worker thread, or a subscribe inside a batch) are held and
 * sent right after it. Returns the subscription with one reference for the caller, or NULL when
 * there is none and the call was answered with an error: over HTTP (-32601 "notifications not
 * supported", as geth answers), the connection already closed (-32000), the connection already
 * has ws_max_subscriptions live (-32005, the message names the limit), or out of memory
 * (-32603).
 * `end_cb` (may be NULL) gets `data`. Any thread a handler runs on, once per call. */
JRPC_EXTERN jrpc_sub_t *jrpc_sub_start(jrpc_call_t *call, const char *method,
                                       jrpc_sub_end_cb end_cb, void *data);
/* Pushes one result: result_json[0..len) is one valid JSON value (not checked), copied. Any
 * thread; results pushed from one thread arrive in that order. 0 when queued, JRPC_ECLOSED once
 * the subscription ended, JRPC_EINVAL, JRPC_ENOMEM. */
JRPC_EXTERN int jrpc_sub_push(jrpc_sub_t *sub, const char *result_json, size_t len);
/* Ends the subscription from the producer's side; end_cb follows from the loop. Any thread;
 * nothing happens if it already ended. */
JRPC_EXTERN void jrpc_sub_end(jrpc_sub_t *sub);
/* The id as JSON text, quotes included ("\"0x…\""); valid while a reference is held. */
JRPC_EXTERN jrpc_str_t jrpc_sub_id(const jrpc_sub_t *sub);
/* Takes another producer reference and returns sub. Any thread. */
JRPC_EXTERN jrpc_sub_t *jrpc_sub_ref(jrpc_sub_t *sub);
/* Drops a producer reference (the one jrpc_sub_start returned, or one from jrpc_sub_ref); sub
 * must not be used afterwards. Dropping it does not end the subscription. Any thread. */
JRPC_EXTERN void jrpc_sub_unref(jrpc_sub_t *sub);
/* A complete unsubscribe handler, to register as it is
 * (jrpc_method_add(srv, "eth_unsubscribe", jrpc_sub_unsubscribe, NULL, JRPC_INLINE)): params
 * [id]; ends the subscription with that id on the call's connection and answers true, or
 * -32000 "subscription not found" when the connection has none (geth's answer), -32602 for bad
 * params, -32601 over HTTP. `data` is unused. Any thread a handler runs on. */
JRPC_EXTERN void jrpc_sub_unsubscribe(jrpc_call_t *call, void *data);

/* ---- Modules (jrpcd --module path.so[:args]) --------------------------------------------------
 */

/* A module exports this symbol; it registers its methods on srv and returns 0 or a negative error.
 * `args` is the text after ':' (or "" when none); it lives as long as the server. */
typedef int (*jrpc_module_init_fn)(jrpc_server_t *srv, const char *args);
#define JRPC_MODULE_INIT_SYMBOL "jrpc_module_init"

#ifdef __cplusplus
}
#endif
#endif /* JRPC_H */
