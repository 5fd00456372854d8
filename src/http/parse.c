/* SPDX-License-Identifier: MIT */
/* parse.c — http-parser callbacks for one request: its line, headers and body, routed to the
 * engine (POST on the RPC path), to src/ws (a WebSocket upgrade: GET on the RPC path) or answered
 * here (OPTIONS, 404, 405, a refused upgrade), with the header and body limits and Expect:
 * 100-continue. The parse runs straight over the read buffer and keeps only what it needs: the
 * URL's first bytes, the Expect value, the upgrade's headers, and the body. */
#define _GNU_SOURCE /* memmem */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Appends at[0..n) lower-cased to dst[0..cap) holding *len bytes, for a header name or value
 * that arrives in pieces. *len counts on to cap + 1 and stops there: a text that long is none
 * of the ones looked for, and the count cannot wrap. */
static void keep_lower(char *dst, size_t cap, uint8_t *len, const char *at, size_t n)
{
    size_t l = *len; /* a local: dst's stores could otherwise change *len, reread each byte */
    size_t end = l + n < cap ? l + n : cap;
    for (; l < end; l++, at++) {
        char ch = *at;
        dst[l] = ch >= 'A' && ch <= 'Z' ? (char)(ch + ('a' - 'A')) : ch;
    }
    if (l < (size_t)*len + n && l == cap)
        l = cap + 1; /* more than fits: one past the room, as a mark */
    *len = (uint8_t)l;
}

/* The request line and header lines, counted as sent give or take optional whitespace (http-parser
 * strips it before the callbacks see it): the callbacks' bytes plus ": " and CRLF per header line,
 * plus the method, spaces, version and CRLFs of the request line and the blank line.
 * max_header 0 leaves only http-parser's 80 KiB ceiling. */
static int header_over(jrpc__http_conn_t *c)
{
    size_t max = c->loop->cfg->max_header;
    if (max == 0 || c->hdr_bytes <= max)
        return 0;
    char msg[80];
    snprintf(msg, sizeof msg, "request header exceeds %zu bytes", max);
    jrpc__stats_limit(&c->loop->stats, JRPC__LIMIT_HEADER);
    jrpc__http_refuse(c, 431, JRPC_CODE_LIMIT_EXCEEDED, msg);
    return 1;
}

static void body_too_large(jrpc__http_conn_t *c)
{
    char msg[80];
    snprintf(msg, sizeof msg, "request body exceeds %zu bytes", c->loop->cfg->max_body);
    jrpc__stats_limit(&c->loop->stats, JRPC__LIMIT_BODY);
    jrpc__http_refuse(c, 413, JRPC_CODE_LIMIT_EXCEEDED, msg);
}

/* Headers kept for browser_check besides those kept in fval (c->hdr_keep). */
enum {
    KEEP_NONE = 0,
    KEEP_HOST,
    KEEP_ORIGIN,
    KEEP_FETCH_SITE,
    KEEP_UA,
    KEEP_XFF,
    KEEP_FWD,
    KEEP_AUTH,
    KEEP_CACHE, /* Cache-Control, Pragma: no-cache asks for an answer no cache made */
    KEEP_AE,    /* Accept-Encoding (gzip.c) */
    KEEP_CE,    /* Content-Encoding (gzip.c) */
    KEEP_WSX,   /* Sec-WebSocket-Extensions (permessage-deflate offers, src/ws) */
    KEEP_ORDER  /* Jrpc-Batch-Order (a streamed batch answer's order) */
};

/* Appends an Authorization or X-API-Key piece; auth_len counts on to one past the buffer and
 * stops there (a value that long is no key of ours). */
static void keep_auth(jrpc__http_req_t *hr, const char *at, size_t n)
{
    for (size_t i = 0; i < n && hr->auth_len <= JRPC__HTTP_AUTH_MAX; i++) {
        if (hr->auth_len < JRPC__HTTP_AUTH_MAX)
            hr->auth_val[hr->auth_len] = at[i];
        hr->auth_len++;
    }
}

/* Appends a User-Agent piece for the access log, cut at its buffer, with bytes that could break a
 * text or JSON line made '?'. */
static void keep_ua(jrpc__http_req_t *hr, const char *at, size_t n)
{
    for (size_t i = 0; i < n && hr->ua_len < sizeof hr->x->ua; i++) {
        unsigned char ch = (unsigned char)at[i];
        hr->x->ua[hr->ua_len++] =
            ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' ? '?' : (char)ch;
    }
}

/* Appends a forwarding header piece, keeping the right-most JRPC__HTTP_FWD bytes: the client is
 * found from the right, so what a long chain loses on the left is what no trusted hop added. */
static void keep_fwd(jrpc__http_req_t *hr, const char *at, size_t n)
{
    size_t cap = sizeof hr->x->fwd;
    if (hr->fwd_len + n > cap)
        hr->fwd_cut = 1;
    if (n >= cap) {
        memcpy(hr->x->fwd, at + n - cap, cap);
        hr->fwd_len = (uint8_t)cap;
        return;
    }
    size_t keep = hr->fwd_len + n <= cap ? hr->fwd_len : cap - n;
    memmove(hr->x->fwd, hr->x->fwd + hr->fwd_len - keep, keep);
    memcpy(hr->x->fwd + keep, at, n);
    hr->fwd_len = (uint8_t)(keep + n);
}

/* A new forwarding header: X-Forwarded-For wins over Forwarded; repeated headers are one list. */
static int fwd_start(jrpc__http_req_t *hr, int kind)
{
    if (kind == JRPC__FWD_FORWARDED && hr->fwd_kind == JRPC__FWD_XFF)
        return KEEP_NONE;
    if (kind != hr->fwd_kind)
        hr->fwd_len = hr->fwd_cut = 0;
    else if (hr->fwd_len != 0)
        keep_fwd(hr, ",", 1);
    hr->fwd_kind = (uint8_t)kind;
    return kind == JRPC__FWD_XFF ? KEEP_XFF : KEEP_FWD;
}

/* Appends at[0..n) to dst[0..cap) holding *len bytes; *len counts on to cap + 1 and stops
 * there (a value that long is refused or matches nothing). */
static void keep_raw(char *dst, size_t cap, uint16_t *len, const char *at, size_t n)
{
    if (*len > cap)
        return;
    size_t room = cap - *len;
    memcpy(dst + *len, at, n < room ? n : room);
    *len = (uint16_t)(n <= room ? *len + n : cap + 1);
}

/* Jrpc-Batch-Order: request or completion (any case, blanks around); anything else is refused
 * (400) once the head is complete. */
static void batch_order(jrpc__http_req_t *hr)
{
    size_t n = hr->enc_len <= sizeof hr->enc ? hr->enc_len : 0;
    const char *v = hr->enc;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n == 7 && memcmp(v, "request", 7) == 0)
        hr->order = JRPC_ORDER_REQUEST + 1;
    else if (n == 10 && memcmp(v, "completion", 10) == 0)
        hr->order = JRPC_ORDER_COMPLETION + 1;
    else
        hr->order = UINT8_MAX;
}

/* The end of a header value: was it Expect: 100-continue (any case, trailing blanks allowed),
 * or a Sec-Fetch-Site naming another site? */
static void header_value_end(jrpc__http_conn_t *c)
{
    jrpc__ws_hs_end(&c->ws);
    if (c->hdr_keep == KEEP_AE)
        jrpc__http_ae_parse(c->cur);
    else if (c->hdr_keep == KEEP_CE)
        jrpc__http_ce_parse(c->cur);
    else if (c->hdr_keep == KEEP_WSX)
        jrpc__ws_hs_extensions(&c->ws, c->cur->enc, jrpc__http_enc_whole(c->cur));
    else if (c->hdr_keep == KEEP_ORDER)
        batch_order(c->cur);
    int fetch_site = c->hdr_keep == KEEP_FETCH_SITE;
    if (c->hdr_keep == KEEP_CACHE && c->cur != NULL) {
        /* "no-cache" as one of the directives (kept lower-cased; a value past fval is cut). */
        size_t len = c->fval_len < sizeof c->fval ? c->fval_len : sizeof c->fval;
        for (size_t i = 0; i + 8 <= len; i++)
            if (memcmp(c->fval + i, "no-cache", 8) == 0 &&
                (i == 0 || c->fval[i - 1] == ',' || c->fval[i - 1] == ' ') &&
                (i + 8 == len || c->fval[i + 8] == ',' || c->fval[i + 8] == ' '))
                c->cur->no_cache = 1;
    }
    c->hdr_keep = KEEP_NONE;
    if (!c->hdr_is_expect && !c->hdr_is_te && !fetch_site)
        return;
    size_t n = c->fval_len;
    while (n > 0 && n <= sizeof(c->fval) && (c->fval[n - 1] == ' ' || c->fval[n - 1] == '\t'))
        n--;
    if (fetch_site) {
        /* Fetch Metadata: "none" is the user (a typed URL, a bookmark), "same-origin" a page of
         * this very server; any other value is a page of another site. */
        c->cross_site = !(n == 4 && memcmp(c->fval, "none", 4) == 0) &&
                        !(n == 11 && memcmp(c->fval, "same-origin", 11) == 0);
        return;
    }
    if (c->hdr_is_te && !(n == 7 && memcmp(c->fval, "chunked", 7) == 0)) {
        /* Another coding: is chunked still the final one ("gzip, chunked")? A value longer than
         * we keep is not something a client we serve sends: treated as chunked-not-final. */
        int final = n <= sizeof(c->fval) && n > 7 && memcmp(c->fval + n - 7, "chunked", 7) == 0 &&
                    (c->fval[n - 8] == ',' || c->fval[n - 8] == ' ' || c->fval[n - 8] == '\t');
        c->te_other = final ? 1 : 2;
    }
    if (c->hdr_is_expect && n == 12 && memcmp(c->fval, "100-continue", 12) == 0)
        c->expect_continue = 1;
    c->hdr_is_expect = c->hdr_is_te = 0;
}

/* Copies the URL (cut, with quotes, backslashes, control bytes and bytes past ASCII made '?', so
 * that a text or JSON line stays one valid line) for the access log. */
static void log_url(jrpc__http_conn_t *c, jrpc__http_req_t *hr)
{
    size_t n = c->url_len < c->url_cap ? c->url_len : c->url_cap;
    if (n > sizeof(hr->url))
        n = sizeof(hr->url);
    const jrpc__keys_t *keys = hr->key_seg_len == 0 ? jrpc__keys_current(c->loop) : NULL;
    size_t pl = 0;
    const char *prefix = keys != NULL ? jrpc__keys_prefix(keys, &pl) : NULL;
    if (pl != 0 && c->url_len > pl && memcmp(c->url, prefix, pl) == 0 && c->url[pl] == '/') {
        /* Refused before it was routed (a limit, bad HTTP): its key is kept out all the same. */
        size_t e = pl + 1;
        while (e < n && c->url[e] != '/' && c->url[e] != '?')
            e++;
        hr->key_off = (uint16_t)(pl + 1);
        hr->key_seg_len = (uint16_t)(e > pl + 1 ? e - pl - 1 : 0); /* up to the cut, if any */
    }
    size_t o = 0;
    for (size_t i = 0; i < n && o < sizeof(hr->url); i++) {
        if (hr->key_seg_len != 0 && i == hr->key_off) {
            /* A key in the path is never logged: it shows as three stars (key= names it). */
            for (const char *m = "***"; *m != '\0' && o < sizeof(hr->url); m++)
                hr->url[o++] = *m;
            i += hr->key_seg_len - 1;
            continue;
        }
        unsigned char ch = (unsigned char)c->url[i];
        hr->url[o++] = ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' ? '?' : (char)ch;
    }
    hr->url_len = o;
}

/* The URL's path and query (origin-form or absolute-form; no fragment). Only url_cap bytes were
 * kept: *cut says the URL went on past them (its path or query may then be incomplete). */
static void url_parts(const jrpc__http_conn_t *c, const char **path, size_t *path_len,
                      const char **query, size_t *query_len, int *cut)
{
    *cut = c->url_len > c->url_cap;
    const char *u = c->url;
    const char *end = u + (*cut ? c->url_cap : c->url_len);
    size_t n = (size_t)(end - u);
    *query = NULL;
    *query_len = 0;
    /* The absolute form (a request to a proxy) is rare: one byte rules it out. */
    if (n >= 7 && (u[0] | 0x20) == 'h' &&
        (strncasecmp(u, "http://", 7) == 0 || (n >= 8 && strncasecmp(u, "https://", 8) == 0))) {
        u += u[4] == ':' ? 7 : 8;
        while (u < end && *u != '/' && *u != '?' && *u != '#')
            u++;
        if (u == end || *u != '/') {
            *path = "/";
            *path_len = 1;
            return;
        }
    }
    /* memchr rather than a loop per byte: an API key in the path makes it long (seed 002). */
    *path = u;
    const char *frag = memchr(u, '#', (size_t)(end - u));
    if (frag != NULL)
        end = frag;
    const char *q = memchr(u, '?', (size_t)(end - u));
    *path_len = (size_t)((q != NULL ? q : end) - u);
    if (q != NULL) {
        *query = q + 1;
        *query_len = (size_t)(end - *query);
    }
}

/* Whether the path is the RPC path or "/" (a cut path is longer than the RPC path). */
static int path_is_rpc(const jrpc__http_conn_t *c, const char *path, size_t path_len, int cut)
{
    if (cut && path + path_len == c->url + c->url_cap)
        return 0;
    return (path_len == 1 && path[0] == '/') ||
           (path_len == c->route_len && memcmp(path, c->route, path_len) == 0);
}

/* The answer of a request handled here, once its headers are known. */
static void answer_local(jrpc__http_req_t *hr)
{
    char msg[96];
    if (hr->out.len != 0 || hr->health) {
        /* made while routing (rest.c: a query's bad escape; health.c) */
        hr->state = JRPC__HR_READY;
        return;
    }
    switch (hr->status) {
    case 204: /* OPTIONS: the CORS preflight (headers in response.c) */
        jrpc_buf_free(&hr->out);
        hr->state = JRPC__HR_READY;
        break;
    case 405:
        snprintf(msg, sizeof msg, "method %s not allowed; use %s",
                 http_method_str((enum http_method)hr->method),
                 hr->rest && !hr->rest_batch ? "GET or POST" : "POST");
        jrpc__http_answer_error(hr, 405, JRPC_CODE_INVALID_REQUEST, msg);
        break;
    case 400: /* a REST method name that does not decode, or a bad WebSocket upgrade */
        jrpc__http_answer_error(
            hr, 400, JRPC_CODE_INVALID_REQUEST,
            hr->rest ? "the method name in the REST path is empty or malformed"
                     : "bad WebSocket upgrade: send GET with Connection: Upgrade, Upgrade: "
                       "websocket, a base64 16-byte Sec-WebSocket-Key and Sec-WebSocket-Version: "
                       "13 (RFC 6455 section 4.1), and no body");
        break;
    case 426: /* RFC 6455 §4.4; response.c adds Sec-WebSocket-Version */
        jrpc__http_answer_error(hr, 426, JRPC_CODE_INVALID_REQUEST,
                                "unsupported WebSocket version: this server speaks version 13");
        break;
    case 414:
        jrpc__http_answer_error(hr, 414, JRPC_CODE_LIMIT_EXCEEDED, "REST URL too long");
        break;
    case 500:
        jrpc__http_answer_error(hr, 500, JRPC_CODE_INTERNAL_ERROR, "out of memory");
        break;
    case 401: /* auth.c */
        jrpc__http_answer_error(hr, 401, JRPC_CODE_UNAUTHORIZED,
                                hr->key_state == JRPC__KEY_UNKNOWN
                                    ? "unknown API key"
                                    : "API key required: put it in the path, or send "
                                      "Authorization: Bearer <key> or X-API-Key: <key>");
        break;
    case 429: /* a trusted proxy's client over max_connections_per_ip (forward.c) */
        jrpc__http_answer_error(hr, 429, JRPC_CODE_LIMIT_EXCEEDED,
                                "too many requests in flight from this client address");
        break;
    default:
        jrpc__http_answer_error(hr, 404, JRPC_CODE_INVALID_REQUEST,
                                "not found: JSON-RPC requests go to the RPC path");
        break;
    }
}

void jrpc__http_refuse(jrpc__http_conn_t *c, unsigned status, int code, const char *msg)
{
    jrpc__http_req_t *hr = c->cur;
    if (hr == NULL) {
        hr = jrpc__http_req_push(c);
        if (hr == NULL) {
            jrpc__http_close_now(c);
            return;
        }
    }
    c->cur = NULL;
    jrpc__http_gunzip_end(c);
    hr->vary_ae = hr->gz_ok = 0; /* local answers are small and never compressed */
    free(hr->in);
    hr->in = NULL;
    hr->in_len = hr->in_cap = 0;
    hr->direct = 0;
    hr->want_continue = 0;
    hr->kind = JRPC__HR_LOCAL;
    if (c->log && hr->url_len == 0)
        log_url(c, hr);
    jrpc__http_answer_error(hr, status, code, msg);
    hr->close_after = 1;
    jrpc__http_halt(c);
}

/* ---- Framing checks -------------------------------------------------------------------------- */

/* Debian builds http-parser without HTTP_PARSER_STRICT, so it accepts "HTTX/1.1", any two bytes
 * after chunk data, and field names with whitespace before the colon. Each of those lets a
 * front proxy and jrpcd split one byte stream into different requests (request smuggling), so
 * they are checked here, from the callbacks' data pointers. */

static int frame_error(jrpc__http_conn_t *c, const char *msg)
{
    c->expect_len = 0;
    jrpc__http_refuse(c, 400, JRPC_CODE_INVALID_REQUEST, msg);
    return -1;
}

int jrpc__http_expect(jrpc__http_conn_t *c, const char *at, const char *lit, size_t n)
{
    size_t have = (size_t)(c->parse_end - at);
    size_t now = have < n ? have : n;
    if (memcmp(at, lit, now) != 0)
        return frame_error(c, n == 2 ? "chunk data not followed by CRLF"
                                     : "request line does not end in an HTTP version");
    memcpy(c->expect, lit + now, n - now);
    c->expect_len = (uint8_t)(n - now);
    return 0;
}

static int literal_check(jrpc__http_conn_t *c, const char *data, size_t len)
{
    if (c->expect_len == 0)
        return 0;
    char rest[sizeof c->expect];
    size_t n = c->expect_len;
    memcpy(rest, c->expect, n);
    c->parse_end = data + len;
    return jrpc__http_expect(c, data, rest, n);
}

/* RFC 9110 §5.6.2: a field name is a token, of tchar (ALPHA, DIGIT and !#$%&'*+-.^_`|~). Each
 * tchar maps to itself lower-cased, any other byte to 0: one look-up per byte checks a header
 * name and folds it (header names are most of what a small request's head holds). */
static const char name_map[256] = {
    ['!'] = '!', ['#'] = '#', ['$'] = '$', ['%'] = '%', ['&'] = '&', ['\''] = '\'', ['*'] = '*',
    ['+'] = '+', ['-'] = '-', ['.'] = '.', ['^'] = '^', ['_'] = '_', ['`'] = '`',   ['|'] = '|',
    ['~'] = '~', ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4',   ['5'] = '5',
    ['6'] = '6', ['7'] = '7', ['8'] = '8', ['9'] = '9', ['a'] = 'a', ['b'] = 'b',   ['c'] = 'c',
    ['d'] = 'd', ['e'] = 'e', ['f'] = 'f', ['g'] = 'g', ['h'] = 'h', ['i'] = 'i',   ['j'] = 'j',
    ['k'] = 'k', ['l'] = 'l', ['m'] = 'm', ['n'] = 'n', ['o'] = 'o', ['p'] = 'p',   ['q'] = 'q',
    ['r'] = 'r', ['s'] = 's', ['t'] = 't', ['u'] = 'u', ['v'] = 'v', ['w'] = 'w',   ['x'] = 'x',
    ['y'] = 'y', ['z'] = 'z', ['A'] = 'a', ['B'] = 'b', ['C'] = 'c', ['D'] = 'd',   ['E'] = 'e',
    ['F'] = 'f', ['G'] = 'g', ['H'] = 'h', ['I'] = 'i', ['J'] = 'j', ['K'] = 'k',   ['L'] = 'l',
    ['M'] = 'm', ['N'] = 'n', ['O'] = 'o', ['P'] = 'p', ['Q'] = 'q', ['R'] = 'r',   ['S'] = 's',
    ['T'] = 't', ['U'] = 'u', ['V'] = 'v', ['W'] = 'w', ['X'] = 'x', ['Y'] = 'y',   ['Z'] = 'z',
};

static int is_tchar(unsigned char ch)
{
    return name_map[ch] != 0;
}

/* Chunk-size lines. http-parser reads the hex size, then skips everything up to the first CR
 * (after a ';' or a space) and takes the byte after that CR for the LF. So "5;\n", "5;\0" and
 * "5 " all pass: a front proxy that ends the line at a bare LF, or refuses a NUL, reads a
 * different body than jrpcd, and whatever it took for body bytes can be a whole request to
 * jrpcd. Each line is therefore checked against RFC 9112 §7.1 before http-parser reads it:
 *   chunk-size [ chunk-ext ] CRLF
 *   chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] )
 * The parser stops at each line's start (the end of a chunked head: CL_HEAD_END, the end of a
 * chunk's data: CL_SIZE0), and c->cline follows the line across reads. */
enum {
    CL_NONE = 0,    /* not in a chunk-size line */
    CL_HEAD_END,    /* the head's last LF, then the first line */
    CL_SIZE0,       /* the size's first hex digit */
    CL_SIZE,        /* more hex digits, ';', BWS, or CR */
    CL_BWS,         /* blanks after the size or a value: only ';' may follow */
    CL_NAME0,       /* blanks, then an extension name's first byte */
    CL_NAME,        /* more of the name, '=', ';', blanks or CR */
    CL_AFTER_NAME,  /* blanks after a name: '=' or ';' must follow */
    CL_VALUE0,      /* blanks, then a token or a quoted string */
    CL_TOKEN,       /* more of a token value */
    CL_QUOTED,      /* inside a quoted string */
    CL_QPAIR,       /* the byte after a backslash in a quoted string */
    CL_AFTER_VALUE, /* after a quoted string: ';', blanks or CR */
    CL_LF           /* the LF after the line's CR */
};

static int is_hexdig(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f');
}

/* RFC 9110 §5.6.4 qdtext and the second byte of a quoted-pair (which also allows '"', '\\'). */
static int is_qdtext(unsigned char ch, int pair)
{
    return ch == '\t' || ch == ' ' ||
           (ch >= 0x21 && ch != 0x7f && (pair || (ch != '"' && ch != '\\')));
}

static int chunk_line_error(jrpc__http_conn_t *c, uint8_t state, unsigned char ch)
{
    if (state == CL_HEAD_END)
        return frame_error(c, "request head not ended by CRLF");
    if (ch == '\n')
        return frame_error(c, "chunk-size line ended by a bare LF");
    if (ch == '\r' &&
        (state == CL_BWS || state == CL_AFTER_NAME || state == CL_NAME0 || state == CL_VALUE0))
        return frame_error(c, "whitespace at the end of a chunk-size line");
    if (state == CL_LF)
        return frame_error(c, "chunk-size line: CR not followed by LF");
    if (ch < 0x20 || ch == 0x7f)
        return frame_error(c, "control byte in a chunk-size line");
    return frame_error(c, "malformed chunk-size line (RFC 9112 section 7.1)");
}

/* Follows a chunk-size line through data[0..len); stops after its LF. 0, or -1 after refusing. */
static int chunk_line_check(jrpc__http_conn_t *c, const char *data, size_t len)
{
    uint8_t st = c->cline;
    for (size_t i = 0; i < len && st != CL_NONE; i++) {
        unsigned char ch = (unsigned char)data[i];
        int blank = ch == ' ' || ch == '\t';
        uint8_t next = 0xff; /* 0xff: the byte is refused */
        switch (st) {
        case CL_HEAD_END:
            next = ch == '\n' ? CL_SIZE0 : next;
            break;
        case CL_SIZE0:
            next = is_hexdig(ch) ? CL_SIZE : next;
            break;
        case CL_SIZE:
            next = is_hexdig(ch) ? CL_SIZE
                   : ch == ';'   ? CL_NAME0
                   : blank       ? CL_BWS
                   : ch == '\r'  ? CL_LF
                                 : next;
            break;
        case CL_BWS:
            next = blank ? CL_BWS : ch == ';' ? CL_NAME0 : next;
            break;
        case CL_NAME0:
            next = blank ? CL_NAME0 : is_tchar(ch) ? CL_NAME : next;
            break;
        case CL_NAME:
            next = is_tchar(ch) ? CL_NAME
                   : ch == '='  ? CL_VALUE0
                   : ch == ';'  ? CL_NAME0
                   : blank      ? CL_AFTER_NAME
                   : ch == '\r' ? CL_LF
                                : next;
            break;
        case CL_AFTER_NAME:
            next = blank ? CL_AFTER_NAME : ch == '=' ? CL_VALUE0 : ch == ';' ? CL_NAME0 : next;
            break;
        case CL_VALUE0:
            next = blank ? CL_VALUE0 : is_tchar(ch) ? CL_TOKEN : ch == '"' ? CL_QUOTED : next;
            break;
        case CL_TOKEN:
            next = is_tchar(ch) ? CL_TOKEN
                   : ch == ';'  ? CL_NAME0
                   : blank      ? CL_BWS
                   : ch == '\r' ? CL_LF
                                : next;
            break;
        case CL_QUOTED:
            next = ch == '"'          ? CL_AFTER_VALUE
                   : ch == '\\'       ? CL_QPAIR
                   : is_qdtext(ch, 0) ? CL_QUOTED
                                      : next;
            break;
        case CL_QPAIR:
            next = is_qdtext(ch, 1) ? CL_QUOTED : next;
            break;
        case CL_AFTER_VALUE:
            next = ch == ';' ? CL_NAME0 : blank ? CL_BWS : ch == '\r' ? CL_LF : next;
            break;
        case CL_LF:
            next = ch == '\n' ? CL_NONE : next;
            break;
        default:
            break;
        }
        if (next == 0xff) {
            c->cline = CL_NONE;
            return chunk_line_error(c, st, ch);
        }
        st = next;
    }
    c->cline = st;
    return 0;
}

int jrpc__http_frame_check(jrpc__http_conn_t *c, const char *data, size_t len)
{
    if (literal_check(c, data, len) != 0)
        return -1;
    return c->cline != CL_NONE ? chunk_line_check(c, data, len) : 0;
}

int jrpc__http_chunk_pause(jrpc__http_conn_t *c)
{
    if (c->cline == CL_NONE || HTTP_PARSER_ERRNO(&c->parser) != HPE_PAUSED)
        return 0;
    http_parser_pause(&c->parser, 0);
    return 1;
}

unsigned jrpc__http_bad_method_status(const char *data, size_t len, const char *err)
{
    /* The request line is method SP target SP HTTP-version; find the method token around the
     * offending byte and see whether the rest has that shape. */
    const char *end = data + len;
    const char *m = err;
    while (m > data && is_tchar((unsigned char)m[-1]))
        m--;
    const char *q = m;
    while (q < end && is_tchar((unsigned char)*q))
        q++;
    if (q == m || q >= end || *q != ' ')
        return 400;
    const char *t = ++q;
    while (q < end && *q != ' ' && *q != '\r' && *q != '\n')
        q++;
    if (q == t || end - q < 8 || memcmp(q, " HTTP/", 6) != 0)
        return 400;
    if (q[6] != '1')
        return 505; /* e.g. the HTTP/2 preface "PRI * HTTP/2.0" */
    return 501;
}

/* What the request line and framing headers say, checked once the head is complete: HTTP/1.0 or
 * 1.1 only, exactly one Host in HTTP/1.1 (RFC 9112 §3.2), at most one Transfer-Encoding and only
 * "chunked", never in HTTP/1.0 (RFC 9112 §6.1). 0, or -1 after refusing. */
static int head_check(jrpc__http_conn_t *c, const http_parser *p)
{
    if (p->http_major != 1 || p->http_minor > 1) {
        if (p->http_major == 0)
            return frame_error(c, "HTTP/0.9 is not supported");
        jrpc__http_refuse(c, 505, JRPC_CODE_INVALID_REQUEST, "only HTTP/1.0 and HTTP/1.1");
        return -1;
    }
    if (c->n_host > 1 || (p->http_minor == 1 && c->n_host == 0))
        return frame_error(c, "an HTTP/1.1 request needs exactly one Host header");
    if (c->n_te > 1)
        return frame_error(c, "Transfer-Encoding given more than once");
    if (c->n_te == 1 && p->http_minor == 0)
        return frame_error(c, "Transfer-Encoding in an HTTP/1.0 request");
    if (c->te_other == 2)
        return frame_error(c, "Transfer-Encoding does not end in chunked: no way to find the end");
    if (c->te_other == 1) {
        jrpc__http_refuse(c, 501, JRPC_CODE_INVALID_REQUEST,
                          "only Transfer-Encoding: chunked is supported");
        return -1;
    }
    return 0;
}

/* ---- Callbacks ------------------------------------------------------------------------------- */

static int on_message_begin(http_parser *p)
{
    jrpc__http_conn_t *c = p->data;
    if (jrpc__http_url_take(c) != 0 || jrpc__http_req_push(c) == NULL) {
        jrpc__http_close_now(c);
        return 0;
    }
    c->hdr_bytes = 0;
    c->url_len = 0;
    c->hdr_in_value = 1; /* the first header name starts a new line */
    c->hdr_is_expect = 0;
    c->hdr_is_te = 0;
    c->expect_continue = 0;
    c->n_host = c->n_te = c->te_other = 0;
    c->hdr_keep = c->n_origin = c->cross_site = 0;
    c->cline = CL_NONE;
    c->chunk_left = 0;
    c->head_start = uv_now(&c->loop->uv);
    c->body_start = 0;
    c->body_seen = 0;
    jrpc__ws_hs_reset(&c->ws);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    jrpc__http_conn_t *c = p->data;
    c->cur->method = (int)p->method; /* known once the URL starts; for the log of a refusal */
    if (c->url_len < c->url_cap) {
        size_t n = c->url_cap - c->url_len;
        memcpy(c->url + c->url_len, at, len < n ? len : n);
    }
    c->url_len += len;
    c->hdr_bytes += len;
    /* http-parser reports the URL at its end, or at the end of the bytes it has: only in the
     * first case is the next byte known to be the space before the version. */
    if (at + len < c->parse_end && jrpc__http_expect(c, at + len, " HTTP/", 6) != 0)
        return 0;
    size_t max = c->loop->cfg->max_header;
    /* A URL alone over the header limit gets 414, the more precise answer (nginx does the same
     * for a request line over large_client_header_buffers); other header bytes get 431. */
    if (max != 0 && c->url_len > max) {
        char msg[80];
        snprintf(msg, sizeof msg, "request URL exceeds %zu bytes", max);
        jrpc__stats_limit(&c->loop->stats, JRPC__LIMIT_URL);
        jrpc__http_refuse(c, 414, JRPC_CODE_LIMIT_EXCEEDED, msg);
    }
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    jrpc__http_conn_t *c = p->data;
    if (c->hdr_in_value) {
        header_value_end(c);
        c->hdr_in_value = 0;
        c->fname_len = 0;
        c->hdr_bytes += 4; /* ": " and CRLF */
    }
    /* Kept lower-cased as far as fname holds (fname_len counts on to its size + 1, the mark of
     * a longer name: keep_lower's rule); every byte is checked. */
    size_t kept = c->fname_len, cap = sizeof c->fname;
    for (size_t i = 0; i < len; i++) {
        char ch = name_map[(unsigned char)at[i]];
        if (ch == 0) {
            frame_error(c, "invalid character in a header name");
            return 0;
        }
        if (kept < cap)
            c->fname[kept] = ch;
        kept += kept <= cap;
    }
    c->fname_len = (uint8_t)kept;
    c->hdr_bytes += len;
    header_over(c);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    jrpc__http_conn_t *c = p->data;
    if (!c->hdr_in_value) {
        c->hdr_in_value = 1;
        c->hdr_is_expect = c->fname_len == 6 && memcmp(c->fname, "expect", 6) == 0;
        c->hdr_is_te = c->fname_len == 17 && memcmp(c->fname, "transfer-encoding", 17) == 0;
        int host = c->fname_len == 4 && memcmp(c->fname, "host", 4) == 0;
        if (host && c->n_host < 255)
            c->n_host++;
        if (c->hdr_is_te && c->n_te < 255)
            c->n_te++;
        c->fval_len = 0;
        jrpc__ws_hs_name(&c->ws, c->fname, c->fname_len);
        /* Host, Origin and Sec-Fetch-Site of the head (a trailer names no host or origin). */
        c->hdr_keep = KEEP_NONE;
        if (c->body_start == 0 && c->cur != NULL) {
            if (host) {
                c->hdr_keep = KEEP_HOST;
                c->cur->host_len = 0;
            } else if (c->fname_len == 6 && memcmp(c->fname, "origin", 6) == 0) {
                c->hdr_keep = KEEP_ORIGIN;
                c->cur->origin_len = 0;
                if (c->n_origin < 255)
                    c->n_origin++;
            } else if (c->fname_len == 14 && memcmp(c->fname, "sec-fetch-site", 14) == 0) {
                c->hdr_keep = KEEP_FETCH_SITE;
            } else if ((c->fname_len == 13 && memcmp(c->fname, "cache-control", 13) == 0) ||
                       (c->fname_len == 6 && memcmp(c->fname, "pragma", 6) == 0)) {
                c->hdr_keep = KEEP_CACHE;
                c->fval_len = 0;
            } else if (c->fname_len == 15 && memcmp(c->fname, "accept-encoding", 15) == 0) {
                c->hdr_keep = KEEP_AE;
                c->cur->enc_len = 0;
            } else if (c->fname_len == 16 && memcmp(c->fname, "content-encoding", 16) == 0) {
                c->hdr_keep = KEEP_CE;
                c->cur->enc_len = 0;
            } else if (c->fname_len == 16 && memcmp(c->fname, "jrpc-batch-order", 16) == 0) {
                c->hdr_keep = KEEP_ORDER;
                c->cur->enc_len = 0;
            } else if (c->loop->cfg->ws_deflate && c->fname_len == 24 &&
                       memcmp(c->fname, "sec-websocket-extensions", 24) == 0) {
                c->hdr_keep = KEEP_WSX;
                c->cur->enc_len = 0;
            } else if (c->log && c->fname_len == 10 && memcmp(c->fname, "user-agent", 10) == 0) {
                c->hdr_keep = KEEP_UA;
                c->cur->ua_len = 0;
            } else if (c->proxied && c->fname_len == 15 &&
                       memcmp(c->fname, "x-forwarded-for", 15) == 0) {
                c->hdr_keep = (uint8_t)fwd_start(c->cur, JRPC__FWD_XFF);
            } else if (c->proxied && c->fname_len == 9 && memcmp(c->fname, "forwarded", 9) == 0) {
                c->hdr_keep = (uint8_t)fwd_start(c->cur, JRPC__FWD_FORWARDED);
            } else if ((c->fname_len == 13 && memcmp(c->fname, "authorization", 13) == 0) ||
                       (c->fname_len == 9 && memcmp(c->fname, "x-api-key", 9) == 0)) {
                jrpc__http_req_t *hr = c->cur; /* the last one given counts */
                if (hr->auth_val == NULL)
                    hr->auth_val = jrpc__loop_alloc(c->loop, JRPC__HTTP_AUTH_MAX);
                /* Out of memory: kept as too long, which no key is (an unknown key, 401). */
                hr->auth_len = hr->auth_val != NULL ? 0 : JRPC__HTTP_AUTH_MAX + 1;
                hr->auth_bearer = c->fname_len == 13;
                c->hdr_keep = hr->auth_val != NULL ? KEEP_AUTH : KEEP_NONE;
            }
        }
    }
    jrpc__ws_hs_value(&c->ws, at, len);
    if (c->hdr_is_expect || c->hdr_is_te || c->hdr_keep == KEEP_FETCH_SITE ||
        c->hdr_keep == KEEP_CACHE)
        keep_lower(c->fval, sizeof c->fval, &c->fval_len, at, len);
    else if (c->hdr_keep == KEEP_HOST)
        keep_raw(c->cur->host, sizeof c->cur->host, &c->cur->host_len, at, len);
    else if (c->hdr_keep == KEEP_ORIGIN)
        keep_raw(c->cur->origin, sizeof c->cur->origin, &c->cur->origin_len, at, len);
    else if (c->hdr_keep == KEEP_UA)
        keep_ua(c->cur, at, len);
    else if (c->hdr_keep == KEEP_XFF || c->hdr_keep == KEEP_FWD)
        keep_fwd(c->cur, at, len);
    else if (c->hdr_keep == KEEP_AUTH)
        keep_auth(c->cur, at, len);
    else if (c->hdr_keep == KEEP_AE || c->hdr_keep == KEEP_CE || c->hdr_keep == KEEP_WSX ||
             c->hdr_keep == KEEP_ORDER)
        keep_lower(c->cur->enc, sizeof c->cur->enc, &c->cur->enc_len, at, len);
    c->hdr_bytes += len;
    header_over(c);
    return 0;
}

/* The head is complete: check it, then route the request (or answer it here). */
static void head_complete(jrpc__http_conn_t *c, http_parser *p)
{
    jrpc__http_req_t *hr = c->cur;
    header_value_end(c);
    hr->method = (int)p->method;
    c->hdr_bytes += strlen(http_method_str((enum http_method)p->method)) + 14;
    if (header_over(c) || head_check(c, p) != 0)
        return;
    if (c->admin) {
        /* No Host or Origin check: scrapers name the address they were given, and nothing here
         * acts or answers a browser's page (no CORS headers). */
        const char *path, *query;
        size_t path_len, query_len;
        int cut;
        if (c->log)
            log_url(c, hr);
        hr->keep_alive = (uint8_t)http_should_keep_alive(p);
        hr->http10 = p->http_major == 1 && p->http_minor == 0;
        hr->head_only = p->method == HTTP_HEAD;
        url_parts(c, &path, &path_len, &query, &query_len, &cut);
        jrpc__http_admin_route(c, hr, path, cut ? 0 : path_len, (int)p->method);
        if ((p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0)) {
            c->cur = NULL; /* a body nothing here reads: answer and close, as below */
            answer_local(hr);
            hr->close_after = 1;
            jrpc__http_halt(c);
        }
        return;
    }
    const char *path, *query;
    size_t path_len, query_len;
    int cut;
    url_parts(c, &path, &path_len, &query, &query_len, &cut);
    int rpc = 0;
    jrpc__http_auth_find(c, hr, &path, &path_len, &rpc);
    if (hr->auth_val != NULL) { /* read: the rest of the request does without it */
        jrpc__loop_free(c->loop, hr->auth_val, JRPC__HTTP_AUTH_MAX);
        hr->auth_val = NULL;
    }
    rpc = rpc || path_is_rpc(c, path, path_len, cut);
    /* Health checks skip the Host and Origin checks: a load balancer sends a Host of its own
     * choosing (or none, HAProxy's HTTP/1.0 checks), and the answers carry no CORS headers, so a
     * page of another origin cannot read them (docs/security.md says what they reveal). */
    jrpc__health_t health =
        rpc || cut ? JRPC__HEALTH_NONE : jrpc__http_health_route(path, path_len);
    if (health == JRPC__HEALTH_NONE && jrpc__http_browser_check(c, hr) != 0)
        return;
    c->body_start = uv_now(&c->loop->uv);
    hr->keep_alive = (uint8_t)http_should_keep_alive(p);
    hr->http10 = p->http_major == 1 && p->http_minor == 0;
    hr->head_only = p->method == HTTP_HEAD;
    if (p->method == HTTP_CONNECT)
        hr->keep_alive = 0; /* the client would tunnel next; we do not */
    if (c->log)
        log_url(c, hr);

    int chunked = (p->flags & F_CHUNKED) != 0;
    uint64_t clen = (p->flags & F_CONTENTLENGTH) ? p->content_length : 0;
    int has_body = chunked || clen > 0;
    if (health != JRPC__HEALTH_NONE) {
        hr->kind = JRPC__HR_LOCAL;
        hr->health = 1;
        if (p->method == HTTP_GET || p->method == HTTP_HEAD)
            hr->status = jrpc__http_health_answer(c->loop->io, health, &hr->out);
        else
            jrpc__http_answer_error(hr, 405, JRPC_CODE_INVALID_REQUEST,
                                    "health checks take GET or HEAD");
        if (has_body) {
            c->cur = NULL;
            answer_local(hr);
            hr->close_after = 1;
            jrpc__http_halt(c);
        }
        return;
    }
    if (c->proxied && jrpc__http_forwarded(c, hr) != 0) {
        /* The forwarded client is over max_connections_per_ip. The proxy's connection carries
         * other clients too: the body is read and dropped, and it stays open. */
        hr->kind = JRPC__HR_LOCAL;
        hr->status = 429;
        if (!chunked && clen > c->loop->cfg->max_body)
            body_too_large(c);
        return;
    }
    if (jrpc__http_auth_check(c, hr, (int)p->method) != 0) {
        /* 401: like the 429 above, the body is read and dropped and the connection stays. */
        if (!chunked && clen > c->loop->cfg->max_body)
            body_too_large(c);
        return;
    }
    /* GET with Upgrade: websocket on the RPC path: 101 (src/ws takes the socket once the
     * request is complete), or 400 / 426. Any other Upgrade is ignored (RFC 9110 §7.8). */
    unsigned ws = rpc && p->method == HTTP_GET
                      ? jrpc__ws_hs_verdict(&c->ws, p->upgrade, !hr->http10, has_body)
                      : 0;
    if (ws == 101) {
        hr->kind = JRPC__HR_UPGRADE;
        return;
    }
    int rest = !rpc && jrpc__http_rest_route(c, hr, path, path_len, query, query_len);
    if (rest && cut && hr->kind != JRPC__HR_LOCAL) {
        hr->kind = JRPC__HR_LOCAL; /* the name or the query was cut: refuse, never guess */
        hr->status = 414;
        jrpc__stats_limit(&c->loop->stats, JRPC__LIMIT_URL);
    }

    if ((rpc && p->method == HTTP_POST) || (rest && hr->kind == JRPC__HR_REST && !hr->rest_get)) {
        if (rpc)
            hr->kind = JRPC__HR_RPC;
        const jrpc_config_t *cfg = c->loop->cfg;
        hr->vary_ae = cfg->gzip != 0;
        hr->gz_ok = cfg->gzip && jrpc__http_gzip_accepted(hr);
        if (hr->order == UINT8_MAX) {
            jrpc__http_refuse(c, 400, JRPC_CODE_INVALID_REQUEST,
                              "Jrpc-Batch-Order must be request or completion");
            return;
        }
        if (has_body && (hr->ce == JRPC__CE_OTHER || (hr->ce == JRPC__CE_GZIP && !cfg->gzip))) {
            /* Before the body, as for 413: a client waiting for 100 Continue sends none. */
            jrpc__http_refuse(c, 415, JRPC_CODE_INVALID_REQUEST,
                              cfg->gzip ? "unsupported Content-Encoding: send the body plain "
                                          "or gzip-encoded"
                                        : "unsupported Content-Encoding: send the body plain "
                                          "(gzip is off)");
            return;
        }
        if (!chunked && clen > c->loop->cfg->max_body) {
            body_too_large(c); /* before the body: the client that waits for 100 sends none */
            return;
        }
        if (clen > 0 && !chunked && hr->ce != JRPC__CE_GZIP) {
            /* The length is known: one allocation, and large remainders are read into it. */
            hr->in = malloc((size_t)clen);
            if (hr->in == NULL) {
                jrpc__http_refuse(c, 500, JRPC_CODE_INTERNAL_ERROR, "out of memory");
                return;
            }
            hr->in_cap = (size_t)clen;
            hr->direct = 1;
        }
        /* HTTP/1.1 only (RFC 9110 §10.1.1); sent by jrpc__http_flush once every earlier answer
         * is queued, unless the body starts arriving first. */
        if (c->expect_continue && !hr->http10 && has_body)
            hr->want_continue = 1;
        return;
    }

    if (rest && hr->kind == JRPC__HR_REST) {
        /* GET: params from the query, already in hr->in; any body is ignored. */
        hr->vary_ae = c->loop->cfg->gzip != 0;
        hr->gz_ok = c->loop->cfg->gzip && jrpc__http_gzip_accepted(hr);
        return;
    }
    if (!rest) {
        hr->kind = JRPC__HR_LOCAL;
        hr->status = ws ? ws : !rpc ? 404 : p->method == HTTP_OPTIONS ? 204 : 405;
    }
    if (has_body) {
        /* A body we would not use: answer now and close instead of reading it. A client that
         * waits for 100 Continue gets its final answer at once (RFC 9110 §10.1.1). */
        c->cur = NULL;
        answer_local(hr);
        hr->close_after = 1;
        jrpc__http_halt(c);
    }
}

static int on_headers_complete(http_parser *p)
{
    jrpc__http_conn_t *c = p->data;
    head_complete(c, p);
    /* A chunked body is read: stop, so that its first chunk-size line goes past
     * jrpc__http_frame_check before http-parser reads it. */
    if (!c->halted && !c->closing && (p->flags & F_CHUNKED)) {
        c->cline = CL_HEAD_END;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    jrpc__http_conn_t *c = p->data;
    jrpc__http_req_t *hr = c->cur;
    /* A body that took longer than body_timeout must keep up min_body_rate on average: a
     * client trickling a byte every few seconds holds a connection and a buffer for nothing. */
    c->body_seen += len;
    uint64_t took = uv_now(&c->loop->uv) - c->body_start;
    if (took > c->loop->cfg->body_timeout_ms && c->loop->cfg->min_body_rate != 0 &&
        c->body_seen * 1000 < (uint64_t)c->loop->cfg->min_body_rate * took) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body slower than %u bytes/s",
                 c->loop->cfg->min_body_rate);
        jrpc__stats_limit(&c->loop->stats, JRPC__LIMIT_BODY_RATE);
        jrpc__http_refuse(c, 408, JRPC_CODE_LIMIT_EXCEEDED, msg);
        return 0;
    }
    if (p->flags & F_CHUNKED) {
        /* The chunk's data ends here once all of it came: CRLF must follow. */
        c->chunk_left -= len < c->chunk_left ? len : c->chunk_left;
        if (c->chunk_left == 0 && jrpc__http_expect(c, at + len, "\r\n", 2) != 0)
            return 0;
    }
    if (hr == NULL || hr->kind == JRPC__HR_LOCAL || hr->rest_get)
        return 0;
    hr->want_continue = 0; /* the client did not wait */
    if (hr->ce == JRPC__CE_GZIP) {
        jrpc__http_gunzip_body(c, hr, at, len); /* decoded into hr->in, or refused */
        return 0;
    }
    if (len > hr->in_cap - hr->in_len) {
        /* Chunked (a known length was allocated whole): grow geometrically up to max_body. */
        size_t max = c->loop->cfg->max_body;
        size_t need = hr->in_len + len;
        if (need > max) {
            body_too_large(c);
            return 0;
        }
        size_t cap = hr->in_cap != 0 ? hr->in_cap : JRPC__HTTP_CHUNKED_MIN;
        while (cap < need)
            cap = cap <= max / 2 ? cap * 2 : max;
        if (cap > max)
            cap = max;
        char *in = realloc(hr->in, cap);
        if (in == NULL) {
            jrpc__http_refuse(c, 500, JRPC_CODE_INTERNAL_ERROR, "out of memory");
            return 0;
        }
        hr->in = in;
        hr->in_cap = cap;
    }
    if (at != hr->in + hr->in_len) /* equal when the read went straight into the body */
        memcpy(hr->in + hr->in_len, at, len);
    hr->in_len += len;
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    jrpc__http_conn_t *c = p->data;
    jrpc__http_req_t *hr = c->cur;
    c->chunk_left = p->content_length;
    /* A chunk announced past the limit is refused before its bytes arrive. */
    if (hr != NULL && hr->kind != JRPC__HR_LOCAL && !hr->rest_get &&
        p->content_length > c->loop->cfg->max_body - hr->in_len)
        body_too_large(c);
    return 0;
}

static int on_chunk_complete(http_parser *p)
{
    jrpc__http_conn_t *c = p->data;
    /* The next chunk-size line starts after this byte (at the trailer's end: the next request). */
    if (!(p->flags & F_TRAILING) && !c->halted && !c->closing) {
        c->cline = CL_SIZE0;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    jrpc__http_conn_t *c = p->data;
    jrpc__http_req_t *hr = c->cur;
    if (hr == NULL)
        return 0;
    if (hr->kind != JRPC__HR_LOCAL && hr->ce == JRPC__CE_GZIP && !hr->rest_get &&
        jrpc__http_gunzip_finish(c, hr) != 0)
        return 0; /* refused: 400 */
    c->cur = NULL;
    hr->want_continue = 0;
    hr->direct = 0;
    if (hr->kind == JRPC__HR_UPGRADE) {
        /* No answer from here: src/ws writes the 101. http-parser stops after this message
         * (the rest of the bytes are frames); conn.c hands the socket over once every earlier
         * answer is written. */
        hr->state = JRPC__HR_RUNNING;
        c->upgrade = hr;
        jrpc__http_url_give(c);
        return 0;
    }
    if (hr->kind != JRPC__HR_LOCAL)
        jrpc__http_req_run(c, hr);
    else
        answer_local(hr);
    jrpc__http_url_give(c); /* the request is handed on: nothing points into the URL now */
    if (c->closing || c->halted)
        return 0;
    if (!hr->keep_alive) {
        hr->close_after = 1;
        jrpc__http_halt(c);
    } else if (c->draining) {
        jrpc__http_halt(c);
    } else if (jrpc__http_over_bound(c)) {
        c->throttled = 1;
        http_parser_pause(p, 1);
    }
    return 0;
}

const http_parser_settings jrpc__http_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
    .on_chunk_complete = on_chunk_complete,
};

void jrpc__http_global_init(const jrpc_config_t *cfg)
{
    /* http-parser's header ceiling is one global (80 KiB by default); raise it when max_header
     * asks for more so that our own count, not the parser's, decides the 431. Never lowered:
     * other users of the library in this process may rely on the default. */
    if (cfg->max_header > HTTP_MAX_HEADER_SIZE)
        http_parser_set_max_header_size((uint32_t)(cfg->max_header + 1024));
}
