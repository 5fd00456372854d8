/* SPDX-License-Identifier: MIT */
/* hosts.c — who may address this server, and from which web pages: Host values checked against
 * the grammar of RFC 3986 (RFC 9112 §3.2 wants a 400 for any other) and the `hosts` allow-list,
 * Origin values against `cors_origins`, and the checks jrpc_config_check makes of both lists.
 * The lists stay the text they were configured as (words separated by spaces or commas): they
 * hold a handful of names, and scanning them per request costs less than a request's parse. */
#include "internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int is_sep(char ch)
{
    return ch == ' ' || ch == '\t' || ch == ',';
}

/* The next word of a list at *p (separators: spaces, tabs, commas); 0 at the end. Loops rather
 * than strspn/strcspn: the words are a few bytes, shorter than those calls' set-up. */
static int list_next(const char **p, const char **word, size_t *len)
{
    const char *w = *p;
    while (is_sep(*w))
        w++;
    const char *e = w;
    while (*e != '\0' && !is_sep(*e))
        e++;
    *word = w;
    *len = (size_t)(e - w);
    *p = e;
    return *len != 0;
}

static int is_alpha(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int is_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

static int is_hex(unsigned char ch)
{
    return is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* RFC 3986 §2.3 unreserved and §2.2 sub-delims: what a reg-name holds besides %HH, as bit masks
 * over the bytes 0–63 and 64–127 (a test per byte of every Host value). */
#define REGNAME_LO 0x2bff7fd200000000ull /* ! $ & ' ( ) * + , - . 0-9 ; = */
#define REGNAME_HI 0x47fffffe87fffffeull /* A-Z _ a-z ~ */

static int is_regname_char(unsigned char ch)
{
    return ch < 64    ? (int)((REGNAME_LO >> ch) & 1)
           : ch < 128 ? (int)((REGNAME_HI >> (ch - 64)) & 1)
                      : 0;
}

/* A reg-name (which also covers IPv4 addresses): unreserved, sub-delims, %HH. */
static int regname_valid(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '%') {
            if (n - i < 3 || !is_hex((unsigned char)p[i + 1]) || !is_hex((unsigned char)p[i + 2]))
                return 0;
            i += 2;
        } else if (!is_regname_char(ch)) {
            return 0;
        }
    }
    return 1;
}

/* The inside of an IP-literal's brackets: an IPv6 address (as inet_pton reads it, which is RFC
 * 4291's text form) or an IPvFuture ("v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )). */
static int ip_literal_valid(const char *p, size_t n)
{
    if (n >= 3 && (p[0] == 'v' || p[0] == 'V')) {
        size_t i = 1;
        while (i < n && is_hex((unsigned char)p[i]))
            i++;
        if (i == 1 || i >= n - 1 || p[i] != '.')
            return 0;
        for (i++; i < n; i++)
            if (p[i] != ':' && !is_regname_char((unsigned char)p[i]))
                return 0;
        return 1;
    }
    char text[INET6_ADDRSTRLEN];
    unsigned char bin[16];
    if (n == 0 || n >= sizeof text)
        return 0;
    memcpy(text, p, n);
    text[n] = '\0';
    return inet_pton(AF_INET6, text, bin) == 1;
}

int jrpc__http_host_parse(const char *p, size_t n, size_t *host_len)
{
    size_t h;
    if (n > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (close == NULL || !ip_literal_valid(p + 1, (size_t)(close - p) - 1))
            return 0;
        h = (size_t)(close - p) + 1;
    } else {
        const char *colon = memchr(p, ':', n);
        h = colon != NULL ? (size_t)(colon - p) : n;
        if (h == 0 || !regname_valid(p, h))
            return 0; /* an empty host in an http URI is invalid (RFC 9110 §4.2.1) */
    }
    if (h < n) {
        if (p[h] != ':')
            return 0;
        for (size_t i = h + 1; i < n; i++)
            if (!is_digit((unsigned char)p[i]))
                return 0;
    }
    *host_len = h;
    return 1;
}

/* h[0..n) without the brackets of an IP-literal. */
static void unbracket(const char **h, size_t *n)
{
    if (*n >= 2 && (*h)[0] == '[' && (*h)[*n - 1] == ']') {
        (*h)++;
        *n -= 2;
    }
}

int jrpc__http_host_allowed(const char *hosts, const char *h, size_t n)
{
    const char *w;
    size_t wn;
    unbracket(&h, &n);
    while (list_next(&hosts, &w, &wn)) {
        if (wn == 1 && w[0] == '*')
            return 1;
        unbracket(&w, &wn);
        if (wn == n && strncasecmp(w, h, n) == 0)
            return 1;
    }
    return 0;
}

jrpc__cors_t jrpc__http_origin_allowed(const char *origins, const char *o, size_t n)
{
    const char *w;
    size_t wn;
    jrpc__cors_t found = JRPC__CORS_NONE;
    while (list_next(&origins, &w, &wn)) {
        if (wn == 1 && w[0] == '*')
            return JRPC__CORS_ANY;
        if (wn == n && strncasecmp(w, o, n) == 0)
            found = JRPC__CORS_ECHO; /* a later "*" still answers "*" */
    }
    return found;
}

const char *jrpc__http_hosts_check(const char *hosts)
{
    const char *w;
    size_t wn, hl;
    while (hosts != NULL && list_next(&hosts, &w, &wn)) {
        if (wn == 1 && w[0] == '*')
            continue;
        if (wn > JRPC__HTTP_NAME_MAX)
            return "hosts: a name is at most 272 bytes";
        /* "::1" is accepted without its brackets too: it is how addresses are usually written. */
        if (memchr(w, ':', wn) != NULL && w[0] != '[' && ip_literal_valid(w, wn))
            continue;
        if (!jrpc__http_host_parse(w, wn, &hl))
            return "hosts: each entry is a host name, an IPv4 address, an IPv6 address or *";
        if (hl != wn)
            return "hosts: give names without a port (the port is not compared)";
    }
    return NULL;
}

const char *jrpc__http_origins_check(const char *origins)
{
    static const char bad[] = "cors_origins: each entry is scheme://host[:port] (as a browser "
                              "sends Origin: no path, no trailing /) or *";
    const char *w;
    size_t wn, hl;
    while (origins != NULL && list_next(&origins, &w, &wn)) {
        if (wn == 1 && w[0] == '*')
            continue;
        if (wn > JRPC__HTTP_NAME_MAX)
            return "cors_origins: an origin is at most 272 bytes";
        /* RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
        size_t i = 0;
        while (i < wn && (is_alpha((unsigned char)w[i]) ||
                          (i > 0 && (is_digit((unsigned char)w[i]) || w[i] == '+' || w[i] == '-' ||
                                     w[i] == '.'))))
            i++;
        if (i == 0 || wn - i < 4 || memcmp(w + i, "://", 3) != 0 ||
            !jrpc__http_host_parse(w + i + 3, wn - i - 3, &hl))
            return bad;
    }
    return NULL;
}

/* ---- Per request ----------------------------------------------------------------------------- */

static int refuse_400(jrpc__http_conn_t *c, const char *msg)
{
    jrpc__http_refuse(c, 400, JRPC_CODE_INVALID_REQUEST, msg);
    return -1;
}

/* The authority of an absolute-form request target, which names the host instead of Host
 * (RFC 9112 §3.2.2): 1 and a[0..*n), or 0 for the other forms. An authority that goes past the
 * URL bytes kept gets a length past JRPC__HTTP_NAME_MAX (it is no host we serve). */
static int url_authority(const jrpc__http_conn_t *c, const char **a, size_t *n)
{
    size_t kept = c->url_len < c->url_cap ? c->url_len : c->url_cap;
    const char *u = c->url, *end = c->url + kept;
    if (kept < 7 || (u[0] | 0x20) != 'h') /* the origin form ("/…"): one byte rules it out */
        return 0;
    size_t skip = strncasecmp(u, "http://", 7) == 0                 ? 7
                  : kept >= 8 && strncasecmp(u, "https://", 8) == 0 ? 8
                                                                    : 0;
    if (skip == 0)
        return 0;
    const char *e = u + skip;
    while (e < end && *e != '/' && *e != '?' && *e != '#')
        e++;
    *a = u + skip;
    *n = e == end && c->url_len > c->url_cap ? JRPC__HTTP_NAME_MAX + 1 : (size_t)(e - *a);
    return 1;
}

/* A header value kept in buf: its length without trailing blanks (http-parser strips the leading
 * ones), or past cap when it was longer than buf. */
static size_t kept_len(const char *buf, size_t cap, size_t n)
{
    while (n > 0 && n <= cap && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    return n;
}

/* A Host (or an absolute-form authority) that is not RFC 3986 host [":" port] gets 400, as RFC
 * 9112 §3.2 says. Then, against what a web page may do (docs/security.md): a host not on
 * cfg.hosts gets 403 (DNS rebinding: a page's own name resolved to this server), so does an
 * Origin not on cfg.cors_origins (a page of another site; WebSocket upgrades included) and a
 * request a browser marked as coming from another site without saying which (Sec-Fetch-Site,
 * sent on <img> and link GETs, which carry no Origin). No Host at all (HTTP/1.0) or an empty one
 * (RFC 9112 §3.2: no authority) names nothing to check: browsers always send the page's host. */
int jrpc__http_browser_check(jrpc__http_conn_t *c, jrpc__http_req_t *hr)
{
    const jrpc_config_t *cfg = c->loop->cfg;
    const char *name = hr->host, *a;
    size_t n = kept_len(hr->host, sizeof hr->host, hr->host_len), an, hl = 0;
    if (n > sizeof hr->host)
        return refuse_400(c, "Host header too long to be a host name");
    if (n > 0 && !jrpc__http_host_parse(hr->host, n, &hl))
        return refuse_400(c, "invalid Host header: RFC 9112 section 3.2 wants host[:port]");
    if (url_authority(c, &a, &an)) {
        if (an > JRPC__HTTP_NAME_MAX || !jrpc__http_host_parse(a, an, &hl))
            return refuse_400(c, "invalid host in the request target");
        name = a;
    }
    char msg[160];
    if (hl != 0 && !jrpc__http_host_allowed(cfg->hosts, name, hl)) {
        snprintf(msg, sizeof msg, "host \"%.*s\" is not allowed (server setting: hosts)",
                 (int)(hl < 64 ? hl : 64), name);
        jrpc__http_refuse(c, 403, JRPC_CODE_INVALID_REQUEST, msg);
        return -1;
    }
    const char *origins = cfg->cors_origins != NULL ? cfg->cors_origins : "";
    int key_origins = hr->auth.key != NULL && hr->auth.key->origins != NULL;
    if (key_origins)
        origins = hr->auth.key->origins; /* the key names the pages that may use it */
    if (c->n_origin > 0) {
        size_t on = kept_len(hr->origin, sizeof hr->origin, hr->origin_len);
        /* Only one Origin is ever sent; a longer one than kept is on no list ("*" aside). */
        int one = c->n_origin == 1 && on <= sizeof hr->origin;
        hr->cors = (uint8_t)jrpc__http_origin_allowed(origins, hr->origin, one ? on : 0);
        if (hr->cors == JRPC__CORS_NONE && hr->method == HTTP_OPTIONS && hr->auth.keys != NULL &&
            hr->auth.key == NULL) {
            /* A preflight never carries the key its request will: allowed for an origin that
             * some key names (the request itself is then checked against its own key's). */
            const jrpc__keys_t *keys = hr->auth.keys;
            for (size_t i = 0; i < jrpc__keys_count(keys) && hr->cors == JRPC__CORS_NONE; i++)
                if (jrpc__keys_origins(keys, i) != NULL)
                    hr->cors = (uint8_t)jrpc__http_origin_allowed(jrpc__keys_origins(keys, i),
                                                                  hr->origin, one ? on : 0);
        }
        if (hr->cors == JRPC__CORS_ECHO)
            hr->origin_len = (uint16_t)on; /* echoed without the blanks */
        if (hr->cors != JRPC__CORS_NONE)
            return 0;
        snprintf(msg, sizeof msg, "origin \"%.*s\" is not allowed (%s)", (int)(on < 64 ? on : 64),
                 hr->origin,
                 key_origins ? "the API key's origins" : "server setting: cors_origins");
        jrpc__http_refuse(c, 403, JRPC_CODE_INVALID_REQUEST, msg);
        return -1;
    }
    if (c->cross_site && jrpc__http_origin_allowed(origins, "", 0) != JRPC__CORS_ANY) {
        jrpc__http_refuse(c, 403, JRPC_CODE_INVALID_REQUEST,
                          "a request from another site's page without Origin is not allowed "
                          "(server setting: cors_origins)");
        return -1;
    }
    return 0;
}
