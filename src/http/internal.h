/* SPDX-License-Identifier: MIT */
/* internal.h — private interface of src/http, the HTTP/1.1 transport between the io loops
 * (src/io) and the request engine (src/rpc): a connection object with its pipeline of requests,
 * shared by conn.c (sockets, pipeline, lifecycle), parse.c (http-parser callbacks, routing,
 * limits) and response.c (status lines, header blocks, error bodies, the access log). */
#ifndef JRPC_HTTP_INTERNAL_H
#define JRPC_HTTP_INTERNAL_H

#include "../io/internal.h"
#include "../rpc/internal.h"
#include "../ws/internal.h"

#include <http_parser.h>
#include <stdint.h>

/* Requests one connection may hold between "parsed" and "answer written": running in the engine,
 * waiting for an earlier answer, or being written. Past it the connection stops reading until
 * answers drain. Pipelining gains nothing past the point where the loop is busy anyway (a loop
 * runs a connection's inline calls back to back, worker calls are bounded by the pool), and this
 * caps what one client that pipelines without reading can make us hold at 64 answers. Browsers
 * and HTTP clients that pipeline at all keep a handful in flight; wrk -c32 keeps one. */
#define JRPC__HTTP_PIPELINE_MAX 64

/* A connection stopped at a bound still reads, keeping what arrives unparsed, up to this many
 * bytes: so that a client that leaves (a reset, a FIN) is noticed and its calls are cancelled,
 * while one that keeps sending pins no more than one read buffer. */
#define JRPC__HTTP_THROTTLE_KEEP JRPC__SOCK_READ_BUF

/* A body of known length whose remaining bytes are at least this many is read straight into its
 * buffer (no copy out of the read buffer); smaller tails go through the shared buffer so a
 * pipelined next request still arrives in the same read. */
#define JRPC__HTTP_DIRECT_MIN (16 * 1024)

/* First allocation for a chunked body (no length known up front); it doubles from there, never
 * past cfg.max_body. 16 KiB holds a 100-call batch. */
#define JRPC__HTTP_CHUNKED_MIN (16 * 1024)

/* How long a connection we are closing keeps reading (and discarding) after its last answer and
 * a FIN were sent, so a client still sending (a 413'd upload, pipelined requests we will not
 * answer) reads our answer instead of a reset. nginx's lingering_timeout is 5 s too. */
#define JRPC__HTTP_LINGER_MS 5000

/* Answers gathered into one uv_write when several are ready together (pipelining): 16 answers,
 * 32 iovecs, far under IOV_MAX, and one writev instead of sixteen. */
#define JRPC__HTTP_COALESCE_MAX 16

/* Host and Origin bytes kept per request (hosts.c): the longest DNS name (253 bytes) with a
 * scheme or a port. A longer Host is refused (400), a longer Origin is not on any list (403). */
#define JRPC__HTTP_NAME_MAX 272

/* Response header block: the longest one (OPTIONS with CORS, or a 405 with Allow, a 20-digit
 * Content-Length and Connection) is under 300 bytes, plus an Access-Control-Allow-Origin that
 * echoes an allowed Origin and its Vary line, plus 64 for Vary: Accept-Encoding and
 * Content-Encoding: gzip (47; a streamed answer's Transfer-Encoding replaces its
 * Content-Length). A batch answer (200, no Allow lines) adds Jrpc-Max-Batch and its
 * Access-Control-Expose-Headers (75 bytes) to a head well under 300. */
#define JRPC__HTTP_HEAD_CAP (384 + 64 + JRPC__HTTP_NAME_MAX + 48)

/* Accept-Encoding or Content-Encoding bytes kept per header line: every browser's and HTTP
 * library's list ("gzip, deflate, br, zstd") with q-values; elements past it are ignored. */
#define JRPC__HTTP_ENC_KEEP 128

enum {
    JRPC__CE_NONE = 0, /* no Content-Encoding, or identity */
    JRPC__CE_GZIP,     /* gzip (or x-gzip), once: decoded as it arrives */
    JRPC__CE_OTHER     /* anything else, or gzip twice: 415 */
};

/* URL bytes copied per request for the access log (longer URLs are logged cut). */
#define JRPC__HTTP_LOG_URL 128

/* URL bytes kept for routing beyond the RPC path's length: room for an absolute-form URL's
 * "http://host:port" and a query string's first bytes. */
#define JRPC__HTTP_URL_SLACK 256
/* URL bytes kept for REST routes: a method name and a query string of named params; longer
 * REST URLs get 414 (a GET with more params than this belongs in a POST body). */
#define JRPC__HTTP_REST_URL 2048

/* User-Agent bytes an access line shows: enough to tell clients and their versions apart. */
#define JRPC__HTTP_LOG_UA 96
/* Forwarding header bytes kept from the right: the client is the right-most address a trusted
 * proxy did not add, so the tail is what matters; 128 bytes hold several hops. */
#define JRPC__HTTP_FWD 128

enum {
    JRPC__FWD_NONE = 0, /* no forwarding header */
    JRPC__FWD_XFF,      /* X-Forwarded-For (preferred when both came) */
    JRPC__FWD_FORWARDED /* Forwarded (RFC 7239) */
};

/* What a request keeps only for the access log and for a trusted proxy's forwarding headers: a
 * loop block of its own, taken only on a connection that logs or comes from a trusted proxy, so
 * the request struct of a server that does neither stays within its 2 KiB block class. */
typedef struct jrpc__http_extra {
    jrpc__answer_sum_t sum;     /* what the answer says (has_sum) */
    char ua[JRPC__HTTP_LOG_UA]; /* User-Agent, cut, quotes and controls made '?' */
    char fwd[JRPC__HTTP_FWD];   /* the right-most bytes of X-Forwarded-For or Forwarded */
    char client[48];            /* the forwarded client's address as text (client_len) */
    unsigned char ip_key[16];   /* the client it is counted under (ip_counted) */
} jrpc__http_extra_t;

typedef struct jrpc__http_conn jrpc__http_conn_t;
typedef struct jrpc__http_req jrpc__http_req_t;

typedef enum {
    JRPC__HR_PARSING = 0, /* being received; always the newest (c->cur) */
    JRPC__HR_RUNNING,     /* body handed to the engine, answer not yet back */
    JRPC__HR_READY,       /* answer known, waiting for earlier answers to be written */
    JRPC__HR_STREAMING,   /* a streamed batch answer begun: head and pieces written as items
                             finish, the engine still running (conn.c) */
    JRPC__HR_WRITING,     /* handed to the socket, not all written yet */
    JRPC__HR_DONE         /* written; freed once every earlier one is too */
} jrpc__hr_state_t;

typedef enum {
    JRPC__HR_RPC = 0, /* POST on the RPC path: the body goes to the engine */
    JRPC__HR_LOCAL,   /* answered here: OPTIONS, 404, 405, 4xx limits, 400, 500 */
    JRPC__HR_REST,    /* POST/GET under rest_path: params to the engine (rest.c) */
    JRPC__HR_UPGRADE  /* GET on the RPC path upgrading to WebSocket: the socket goes to src/ws */
} jrpc__hr_kind_t;

typedef enum {
    JRPC__CORS_NONE = 0, /* no Access-Control-* headers (no Origin, or not a browser's request) */
    JRPC__CORS_ANY,      /* Access-Control-Allow-Origin: * (cors_origins holds "*") */
    JRPC__CORS_ECHO      /* Access-Control-Allow-Origin: the request's Origin (on the list) */
} jrpc__cors_t;

/* One request of a connection's pipeline, from its first byte until its answer is written. */
struct jrpc__http_req {
    jrpc__http_conn_t *conn; /* owner */
    jrpc__http_req_t *next;  /* next newer request in the pipeline */
    jrpc__req_t *rpc;        /* engine request while RUNNING */
    uint8_t state;           /* jrpc__hr_state_t */
    uint8_t kind;            /* jrpc__hr_kind_t */
    uint8_t keep_alive;      /* the connection stays open after this answer */
    uint8_t http10;          /* HTTP/1.0 request: keep-alive must be said in the answer */
    uint8_t head_only;       /* HEAD: the answer carries no body bytes */
    uint8_t close_after;     /* answer with Connection: close, then close */
    uint8_t want_continue;   /* Expect: 100-continue still to be honoured */
    uint8_t continue_sent;   /* the 100 Continue went out */
    uint8_t direct;          /* body of known length: reads may land in `in` directly */
    uint8_t rest;            /* the URL is under rest_path (Allow: GET too) */
    uint8_t rest_batch;      /* REST: <method>/batch */
    uint8_t rest_get;        /* REST GET: `in` holds the params built from the query */
    uint8_t health;          /* /health or /ready (health.c): Allow: GET, HEAD; logged at debug */
    const char *rest_method; /* REST: percent-decoded method name, decoded in place in the
                                conn's url: valid until the request is handed to the engine */
    size_t rest_method_len;
    int method;            /* enum http_method, -1 before the request line is parsed */
    unsigned status;       /* HTTP status of the answer */
    char *in;              /* request body being received (malloc'd, ours until handed on) */
    size_t in_len;         /* bytes received */
    size_t in_cap;         /* bytes allocated for `in` */
    jrpc_buf_t out;        /* response body (ours, freed when the write is done) */
    size_t out_held;       /* bytes of out counted in the connection's account */
    size_t items;          /* calls in the request, for the log */
    uint64_t t0;           /* uv_hrtime() at the first byte (logging only) */
    size_t url_len;        /* bytes in url (logging only) */
    size_t head_len;       /* bytes in head */
    uint8_t cors;          /* jrpc__cors_t: what the answer says to a browser */
    uint8_t text;          /* the body is the metrics exposition (text/plain), not JSON */
    uint16_t host_len;     /* Host value bytes seen (saturates at JRPC__HTTP_NAME_MAX + 1) */
    uint16_t origin_len;   /* Origin value bytes seen (the same) */
    uint8_t ua_len;        /* User-Agent bytes kept in ua (logging only) */
    uint8_t fwd_len;       /* bytes kept in fwd */
    uint8_t fwd_kind;      /* what fwd holds: JRPC__FWD_* */
    uint8_t fwd_cut;       /* fwd lost bytes on its left: its first hop may be partial */
    uint8_t no_cache;      /* Cache-Control or Pragma said no-cache: no cached answers */
    uint8_t client_len;    /* bytes in client: the forwarded client, 0: the peer is */
    uint8_t ip_counted;    /* counted under ip_key (a trusted proxy's request, jrpc__admit_ip) */
    uint8_t has_sum;       /* x->sum holds the engine's summary of the answer (logging only) */
    jrpc__http_extra_t *x; /* what only logging and trusted proxies need, or NULL */
    jrpc__auth_t auth;     /* the server's keys when it has any, and the request's key (auth.c) */
    uint8_t key_state;     /* JRPC__KEY_*: what the request said about its key */
    uint8_t auth_len;      /* bytes kept in auth_val (saturates at JRPC__HTTP_AUTH_MAX + 1) */
    uint8_t auth_bearer;   /* auth_val came as Authorization (a "Bearer " scheme to strip) */
    uint16_t key_off;      /* a key in the path: where in the URL (kept out of the log) */
    uint16_t key_seg_len;  /* its length, 0: none */
    uint32_t retry_after;  /* seconds, for a 429's Retry-After */
    uint32_t max_batch;    /* a batch: its cap, sent as Jrpc-Max-Batch (0: not a batch) */
    char key_mark[8];      /* an unknown key's mark in the log (jrpc__keys_mark) */
    char *auth_val;        /* Authorization or X-API-Key while the head is parsed (a loop block
                              of JRPC__HTTP_AUTH_MAX bytes), NULL when none came */
    uint16_t ae_gzip;      /* Accept-Encoding's q for gzip, x1000 + 1 (0: not named) (gzip.c) */
    uint16_t ae_any;       /* ... for "*" */
    uint16_t ae_id;        /* ... for identity */
    uint8_t ce;            /* Content-Encoding: JRPC__CE_* */
    uint8_t gz_ok;         /* gzip on and the client accepts it: a large answer is compressed */
    uint8_t gz_out;        /* out holds the answer gzip-encoded (Content-Encoding: gzip) */
    uint8_t vary_ae;       /* the answer may depend on Accept-Encoding (Vary): gzip on and an
                              engine answer; cleared when it is under gzip_min */
    uint8_t enc_len;       /* bytes of the current encoding header kept in enc (saturating) */
    uint8_t order;         /* Jrpc-Batch-Order: 0 none, else JRPC_ORDER_* + 1 */
    uint8_t stream;        /* the engine hands the answer over in pieces (jrpc__req_stream) */
    uint8_t chunked;       /* the head went with Transfer-Encoding: chunked: pieces follow */
    uint8_t piece_writing; /* st->swr (the bytes in st->sending) is in flight */
    struct jrpc__http_stream *st; /* what streaming needs (a loop block), or NULL */
    /* Above: per request, zeroed by jrpc__http_req_push. Below: set before each use. */
    uv_write_t wr;      /* the answer's write when it did not complete at once
                           (.data: the first request the write carries) */
    uv_write_t cont_wr; /* the 100 Continue's write */
    union {
        char head[JRPC__HTTP_HEAD_CAP]; /* status line and headers, built once the answer is
                                           known */
        char enc[JRPC__HTTP_ENC_KEEP];  /* before that, while the head is parsed: the
                                           Accept-Encoding, Content-Encoding,
                                           Sec-WebSocket-Extensions or Jrpc-Batch-Order value
                                           being received, lower-cased (read at its end) */
    };
    char url[JRPC__HTTP_LOG_URL];     /* URL as received, cut (logging only) */
    char host[JRPC__HTTP_NAME_MAX];   /* the Host value as sent, while the head is parsed */
    char origin[JRPC__HTTP_NAME_MAX]; /* the Origin value as sent: echoed when allowed */
};

/* Bytes kept of an Authorization or X-API-Key value: "Bearer " and the longest secret. Kept in a
 * loop block of its own (hr->auth_val), taken only by a request that sends one of them, so the
 * request struct stays within its 2 KiB block class. */
#define JRPC__HTTP_AUTH_MAX (JRPC__KEY_SECRET_MAX + 8)

/* What a request said about its API key (hr->key_state). */
enum {
    JRPC__KEY_OFF = 0, /* the server has no keys */
    JRPC__KEY_NONE,    /* no key given: anonymous */
    JRPC__KEY_VALID,   /* a key of the server's (hr->auth.key) */
    JRPC__KEY_UNKNOWN  /* a key nobody holds (hr->key_mark) */
};
/* What a request whose answer is streamed needs besides its struct (conn.c): a loop block taken
 * when the engine starts streaming, so other requests keep the struct in its block class. */
typedef struct jrpc__http_stream {
    jrpc__http_req_t *hr; /* owner */
    uv_write_t swr;       /* the piece write in flight */
    jrpc_buf_t sending;   /* its chunk-framed bytes */
    struct jrpc__zs *gz;  /* the answer's gzip encoder, or NULL */
    size_t streamed;      /* body bytes written in pieces (the access log's bytes=) */
} jrpc__http_stream_t;

/* One accepted TCP connection; lives on one loop and is freed in the last close callback. */
struct jrpc__http_conn {
    jrpc__sock_t *sock;       /* the socket, its timer (what jrpc__http_arm sets, then the
                                 linger bound) and the FIN; .owner = this */
    http_parser parser;       /* .data = this */
    jrpc__loop_t *loop;       /* owning loop */
    jrpc__http_req_t *head;   /* oldest request not yet written */
    jrpc__http_req_t *tail;   /* newest request */
    jrpc__http_req_t *unsent; /* oldest request not yet handed to uv_write, or NULL */
    jrpc__http_req_t *cur;    /* the request being received, or NULL between requests */
    unsigned depth;           /* requests from head to tail */
    jrpc__acct_t *acct;       /* what the connection's requests hold until they finish (also
                                 past their answers) and its unwritten answers */
    size_t unsent_bytes;      /* answer bytes not yet written (max_unsent) */
    const char *rest;         /* frames behind an upgrade in the read being handled (the
                                 loop's buffer): handed to src/ws without a copy; bytes kept
                                 past a read are the sock's (jrpc__sock_keep) */
    size_t rest_len;
    jrpc__post_t reap;         /* frees this state after the socket was handed over */
    size_t hdr_bytes;          /* request line + header bytes of the current request */
    uint8_t closing;           /* uv_close called: nothing more happens but freeing */
    uint8_t halted;            /* parse no more requests; close once the pipeline is empty */
    uint8_t throttled;         /* parser paused at the pipeline bound; resumes as it drains */
    uint8_t draining;          /* stop began: halt after the request being received */
    uint8_t lingering;         /* FIN sent: reading only to discard, closing on EOF/timer */
    uint8_t eof;               /* the peer sent FIN */
    uint8_t eof_kept;          /* it came while throttled: after the kept bytes are parsed */
    uint8_t in_parse;          /* http_parser_execute is on the stack: flush afterwards */
    uint8_t log;               /* one access-log line per request */
    uint8_t admin;             /* accepted on an admin listener: metrics only, not counted */
    uint8_t timed;             /* requests are timed for the metrics (an admin listener is on) */
    uint8_t proxied;           /* the peer is a trusted proxy: forwarding headers are read */
    uint8_t hdr_in_value;      /* the last header callback was a value */
    uint8_t hdr_is_expect;     /* the current header is Expect */
    uint8_t hdr_is_te;         /* the current header is Transfer-Encoding */
    uint8_t n_host;            /* Host headers of the current request (saturating) */
    uint8_t n_te;              /* Transfer-Encoding headers of the current request (saturating) */
    uint8_t te_other;          /* Transfer-Encoding is not just "chunked": 501 when chunked is
                                  still the final coding, else 400 (RFC 9112 §6.3) */
    uint8_t hdr_keep;          /* the current header is Host, Origin or Sec-Fetch-Site (parse.c) */
    uint8_t n_origin;          /* Origin headers of the current request (saturating) */
    uint8_t cross_site;        /* Sec-Fetch-Site named another site: a browser's request */
    uint8_t cline;             /* where a chunk-size line being checked is (parse.c); 0: none */
    uint8_t expect_len;        /* bytes of `expect` the stream must still show */
    char expect[8];            /* framing bytes http-parser (built lenient) does not check: the
                                  " HTTP/1." after the URL, the CRLF after chunk data */
    const char *parse_end;     /* end of the bytes being parsed (for the checks above) */
    uint64_t chunk_left;       /* data bytes of the current chunk not yet seen */
    uint64_t head_start;       /* uv_now() at the current request's first byte */
    uint64_t body_start;       /* uv_now() when its head was complete (0: head not complete) */
    size_t body_seen;          /* body bytes of the current request so far (for min_body_rate) */
    uint8_t expect_continue;   /* the current request said Expect: 100-continue */
    uint8_t fname_len;         /* bytes seen of the current header name (saturating) */
    uint8_t fval_len;          /* bytes seen of the value kept in fval (saturating) */
    char fname[24];            /* lower-cased start of the current header name: room for the
                                  longest one looked for, sec-websocket-version (21) */
    char fval[32];             /* lower-cased start of the Expect or Transfer-Encoding value:
                                  room for "100-continue" and "gzip, chunked"-style lists */
    struct jrpc__zs *gunzip;   /* decoder of the current request's gzip body, or NULL */
    jrpc__post_t stream_post;  /* pieces of a streamed answer arrived: write them next turn */
    uint8_t stream_posted;     /* stream_post is queued */
    uint8_t free_posted;       /* the connection closed while it was: it frees it */
    uint8_t gunzip_end;        /* it saw a gzip member's end and nothing after it yet */
    jrpc__ws_hs_t ws;          /* what the headers say about a WebSocket upgrade */
    jrpc__http_req_t *upgrade; /* a valid upgrade, waiting for earlier answers to be written */
    const char *route;         /* cfg.path */
    size_t route_len;
    size_t url_len; /* URL bytes of the current request (may exceed url_cap) */
    size_t url_cap; /* bytes of url (the same for every connection of the server) */
    char *url;      /* first url_cap bytes of the current request's URL: a loop block, held
                       from the request's first byte until it is handed on (NULL between) */
    const jrpc__keys_t *memo_keys; /* the set memo_key came from (sets live as long as the
                                      server: a pointer names one for good) */
    const jrpc__key_t *memo_key;   /* the key the connection's last request presented: the next
                                      one most likely presents it again (jrpc__keys_same) */
    uint8_t peer_key_state;        /* peer_key: 0 not looked up, 1 set, 2 the peer has none */
    unsigned char peer_key[16];    /* the peer's address as a key (anonymous budgets) */
    size_t peer_len;               /* bytes in peer, 0 until first needed */
    char peer[64];                 /* "ip:port" of the client (logging only) */
};

/* The stream at `at` (inside the bytes being parsed, or at their end) must go on with
 * lit[0..n): checks what is there now and leaves the rest for jrpc__http_expect_check.
 * 0, or -1 after refusing the request with 400. */
int jrpc__http_expect(jrpc__http_conn_t *c, const char *at, const char *lit, size_t n);
/* The status for a request line http-parser rejected as an invalid method, from the bytes around
 * `err` (the offending byte, inside data[0..len)): 505 for another HTTP version, 501 for a
 * well-formed but unknown method, else 400. */
unsigned jrpc__http_bad_method_status(const char *data, size_t len, const char *err);
/* Checks newly read bytes before http-parser sees them: a pending expectation at their start,
 * and a chunk-size line being received (RFC 9112 §7.1). 0, or -1 after refusing with 400. */
int jrpc__http_frame_check(jrpc__http_conn_t *c, const char *data, size_t len);
/* http-parser stopped at the start of a chunk-size line so that jrpc__http_frame_check sees it
 * first: 1 (and the parser runs on) when that is why it is paused, else 0. */
int jrpc__http_chunk_pause(jrpc__http_conn_t *c);

/* Re-arms the connection's timer for what it waits on now: the head (header_timeout from the
 * request's first byte), the body (body_timeout between reads), the socket (send_timeout while
 * answers are queued), or the next request (idle_timeout). conn.c. */
void jrpc__http_arm(jrpc__http_conn_t *c);

/* ---- admin.c --------------------------------------------------------------------------------- */

/* Routes a request of an admin listener once its head passed the framing checks: GET (or HEAD)
 * /metrics gets the exposition, anything else 404. Sets hr->kind to LOCAL. */
void jrpc__http_admin_route(jrpc__http_conn_t *c, jrpc__http_req_t *hr, const char *path,
                            size_t path_len, int method);

/* ---- rest.c ---------------------------------------------------------------------------------- */

/* Routes a request whose path is under cfg.rest_path: sets hr->kind (REST, or LOCAL with a 400 or
 * 405 status) and the REST fields. path and query point into c->url, where the method name and
 * the query are percent-decoded in place. 0 when the path is not a REST path. */
int jrpc__http_rest_route(jrpc__http_conn_t *c, jrpc__http_req_t *hr, const char *path,
                          size_t path_len, const char *query, size_t query_len);

/* ---- auth.c ---------------------------------------------------------------------------------- */

/* When the server has keys: a path under their path_prefix names the key in its next segment,
 * and *path becomes what follows it (the RPC path when nothing does); otherwise an
 * Authorization: Bearer or X-API-Key header names it. Sets hr->auth and hr->key_state. Before
 * the Host and Origin checks (a key may name its own origins). */
void jrpc__http_auth_find(jrpc__http_conn_t *c, jrpc__http_req_t *hr, const char **path,
                          size_t *path_len, int *rpc);
/* After the forwarding headers were read: a request with an unknown key, or with none where one
 * is required, is answered 401 (returns -1; its body is read and dropped); one without a key
 * gets its client's address for the anonymous budget. 0 when it goes on. */
int jrpc__http_auth_check(jrpc__http_conn_t *c, jrpc__http_req_t *hr, int method);

/* ---- health.c -------------------------------------------------------------------------------- */

typedef enum {
    JRPC__HEALTH_NONE = 0, /* not a health path */
    JRPC__HEALTH_LIVE,     /* /health, /healthz: 200 while the process serves */
    JRPC__HEALTH_READY     /* /ready: 200, or 503 while draining or a readiness hook says not */
} jrpc__health_t;

/* Which health answer the path path[0..len) asks for. */
jrpc__health_t jrpc__http_health_route(const char *path, size_t len);
/* Replaces *out with the JSON body of the `which` answer ({"status":"ok"}, {"status":"draining"},
 * {"status":"unavailable","upstreams_down":["eth"]}) and returns its HTTP status. Any loop
 * thread: it reads only atomics and calls the readiness hooks. */
unsigned jrpc__http_health_answer(jrpc__io_t *io, jrpc__health_t which, jrpc_buf_t *out);

/* ---- hosts.c --------------------------------------------------------------------------------- */

/* p[0..n) is `host [":" port]` of RFC 3986 §3.2.2-3 (a reg-name, an IPv4 address or an
 * IP-literal in brackets; no userinfo, no empty host): 1 and the host part's length in
 * *host_len, else 0. */
int jrpc__http_host_parse(const char *p, size_t n, size_t *host_len);
/* Whether host h[0..n) (an IPv6 literal with or without its brackets) is on the list `hosts`
 * (words separated by spaces or commas; "*" allows any). Compared as text, ignoring case. */
int jrpc__http_host_allowed(const char *hosts, const char *h, size_t n);
/* What to answer origin o[0..n) given the list `origins`: JRPC__CORS_ANY when it holds "*",
 * JRPC__CORS_ECHO when it holds o (ignoring case), JRPC__CORS_NONE when o is not allowed. */
jrpc__cors_t jrpc__http_origin_allowed(const char *origins, const char *o, size_t n);
/* The checks of jrpc_config_check: NULL when every word of the list (NULL: none) is valid. */
const char *jrpc__http_hosts_check(const char *hosts);
const char *jrpc__http_origins_check(const char *origins);
/* Who the request is for and where it comes from, once its head passed the framing checks: the
 * Host (or the absolute-form target's authority) and Origin kept in hr against cfg.hosts and
 * cfg.cors_origins. Sets hr->cors. 0, or -1 after refusing (400 or 403; the connection closes
 * after the answer). */
int jrpc__http_browser_check(jrpc__http_conn_t *c, jrpc__http_req_t *hr);

/* ---- gzip.c --------------------------------------------------------------------------------- */

/* The end of an Accept-Encoding or Content-Encoding value kept in hr->enc (hr->enc_len bytes,
 * more than JRPC__HTTP_ENC_KEEP when cut): what it says goes into hr's ae_* or ce. */
void jrpc__http_ae_parse(jrpc__http_req_t *hr);
/* How many of the bytes kept in hr->enc hold whole list elements: a value cut at the keep bound
 * loses its last, partial element (it could be "gzip;q=0" cut to "gzip"). */
size_t jrpc__http_enc_whole(const jrpc__http_req_t *hr);
void jrpc__http_ce_parse(jrpc__http_req_t *hr);
/* Whether the client accepts a gzip answer (q > 0 for gzip, or for "*" when gzip is not named,
 * and identity not preferred over it), from the headers of the complete head. */
int jrpc__http_gzip_accepted(const jrpc__http_req_t *hr);
/* Replaces hr->out with its gzip encoding when hr->gz_ok, the status carries a body and the body
 * is at least cfg.gzip_min bytes (and the encoding is smaller). Out of memory keeps it plain. */
void jrpc__http_gzip_answer(jrpc__http_conn_t *c, jrpc__http_req_t *hr);
/* Body bytes of a gzip request (hr->ce == JRPC__CE_GZIP): decoded into hr->in as they arrive,
 * never past cfg.max_body decoded bytes. 0, or -1 after refusing (413, 400, 500). */
int jrpc__http_gunzip_body(jrpc__http_conn_t *c, jrpc__http_req_t *hr, const char *at, size_t len);
/* The body is complete: 0 when it was whole gzip data, else -1 after refusing with 400. Frees
 * the decoder either way. */
int jrpc__http_gunzip_finish(jrpc__http_conn_t *c, jrpc__http_req_t *hr);
/* Frees the decoder (refusals, close). */
void jrpc__http_gunzip_end(jrpc__http_conn_t *c);

/* ---- conn.c ---------------------------------------------------------------------------------- */

/* The server's hook (src/server.c): a listener of `loop` has a connection to accept. Parsing
 * reads from the loop's buffer (JRPC__SOCK_READ_BUF) and copies out what it keeps (body bytes, a
 * short URL prefix); the rare leftover of a paused parse is kept with the socket (jrpc__sock_keep).
 */
void jrpc__http_accept(jrpc__loop_t *loop, uv_stream_t *listener);

/* The current request's URL buffer: taken from the loop's blocks when its first byte arrives,
 * given back once the request is handed on (or the connection closes). 0, or -1 when out of
 * memory. */
int jrpc__http_url_take(jrpc__http_conn_t *c);
void jrpc__http_url_give(jrpc__http_conn_t *c);
/* A request struct (a loop block) appended to the pipeline as PARSING (NULL when out of
 * memory). */
jrpc__http_req_t *jrpc__http_req_push(jrpc__http_conn_t *c);
/* Hands a complete RPC body to the engine (on_message_complete). */
void jrpc__http_req_run(jrpc__http_conn_t *c, jrpc__http_req_t *hr);
/* Answer pieces became ready: write what is in order (deferred while parsing). */
void jrpc__http_flush(jrpc__http_conn_t *c);
/* Parse no more requests on c: close once every answer in the pipeline is written. */
void jrpc__http_halt(jrpc__http_conn_t *c);
/* Closes c now: requests in flight are detached, unwritten answers dropped. */
void jrpc__http_close_now(jrpc__http_conn_t *c);
/* The connection is at a bound: requests in the pipeline or alive in the engine, their body
 * bytes (max_body), unwritten answers (max_unsent), or it holds memory while the server is at
 * max_memory. It stops reading until its account is released below them. */
int jrpc__http_over_bound(const jrpc__http_conn_t *c);

/* ---- parse.c --------------------------------------------------------------------------------- */

/* Process-wide settings (http-parser's global header limit), before the loops start. */
void jrpc__http_global_init(const jrpc_config_t *cfg);
/* The callbacks, shared by every connection (read-only). */
extern const http_parser_settings jrpc__http_settings;
/* The request being received (or a new one) gets a final local answer now and the connection
 * halts: limits (413, 414, 431), refusals with Expect, malformed HTTP, out of memory. */
void jrpc__http_refuse(jrpc__http_conn_t *c, unsigned status, int code, const char *msg);

/* ---- response.c ------------------------------------------------------------------------------ */

/* Sets hr's answer to `status` with a JSON-RPC error object body (state becomes READY). */
void jrpc__http_answer_error(jrpc__http_req_t *hr, unsigned status, int code, const char *msg);
/* Fills hr->head for hr's answer; `closing` adds Connection: close. */
void jrpc__http_build_head(jrpc__http_req_t *hr, int closing);
/* A trusted proxy's request (its head is complete): the client it forwards for, from fwd, into
 * hr->client, counted under max_connections_per_ip when that is set. 0, or -1 when that client
 * is over the cap (nothing counted). forward.c. */
int jrpc__http_forwarded(jrpc__http_conn_t *c, jrpc__http_req_t *hr);
/* Gives back what jrpc__http_forwarded counted (when the request is freed). */
void jrpc__http_unforward(jrpc__http_conn_t *c, jrpc__http_req_t *hr);

/* Writes the access-log line for hr (only when c->log). */
void jrpc__http_log(jrpc__http_conn_t *c, const jrpc__http_req_t *hr);

#endif
