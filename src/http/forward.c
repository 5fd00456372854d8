/* SPDX-License-Identifier: MIT */
/* forward.c — the client behind a trusted proxy (trusted_proxies): the right-most address of
 * X-Forwarded-For (or the for= of Forwarded, RFC 7239) that is not itself a trusted proxy, used in
 * access lines and counted against max_connections_per_ip per request, since one proxy
 * connection carries many clients (docs/security.md). */
#include "internal.h"

#include <string.h>

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* One hop as written in X-Forwarded-For or a for= value: "1.2.3.4", "1.2.3.4:5678", "2001:db8::1",
 * "[2001:db8::1]:5678", optionally in quotes. 0 and the key, or -1 (a name, "unknown", an
 * obfuscated identifier, or garbage). */
static int hop_key(const char *p, size_t n, unsigned char key[16])
{
    while (n > 0 && is_blank(*p))
        p++, n--;
    while (n > 0 && is_blank(p[n - 1]))
        n--;
    if (n >= 2 && p[0] == '"' && p[n - 1] == '"')
        p++, n -= 2;
    if (n > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (close == NULL)
            return -1;
        return jrpc__addr_key_parse(p + 1, (size_t)(close - p - 1), key) == 6 ? 0 : -1;
    }
    if (jrpc__addr_key_parse(p, n, key) > 0)
        return 0;
    const char *colon = memchr(p, ':', n); /* an IPv4 address with a port */
    if (colon != NULL && memchr(colon + 1, ':', n - (size_t)(colon - p) - 1) == NULL)
        return jrpc__addr_key_parse(p, (size_t)(colon - p), key) == 4 ? 0 : -1;
    return -1;
}

/* The for= value of one Forwarded element ("for=192.0.2.60;proto=http;by=203.0.113.43"). */
static int element_for(const char *p, size_t n, const char **v, size_t *vn)
{
    while (n > 0) {
        const char *semi = memchr(p, ';', n);
        size_t pn = semi != NULL ? (size_t)(semi - p) : n;
        const char *q = p;
        size_t qn = pn;
        while (qn > 0 && is_blank(*q))
            q++, qn--;
        if (qn > 4 && strncasecmp(q, "for=", 4) == 0) {
            *v = q + 4;
            *vn = qn - 4;
            return 1;
        }
        if (semi == NULL)
            break;
        p = semi + 1;
        n -= pn + 1;
    }
    return 0;
}

int jrpc__http_forwarded(jrpc__http_conn_t *c, jrpc__http_req_t *hr)
{
    jrpc__io_t *io = c->loop->io;
    unsigned char key[16];
    int found = 0;
    /* From the right: every hop a trusted proxy added is skipped; the first other one is the
     * client. A hop that does not parse ends the walk (what is left of it cannot be trusted),
     * keeping the last trusted hop, or the peer itself when there is none. */
    size_t end = hr->fwd_len;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && hr->x->fwd[start - 1] != ',')
            start--;
        if (start == 0 && hr->fwd_cut)
            break;
        const char *v = hr->x->fwd + start;
        size_t vn = end - start;
        unsigned char k[16];
        int ok = hr->fwd_kind == JRPC__FWD_XFF ? 1 : element_for(v, vn, &v, &vn);
        if (!ok || hop_key(v, vn, k) != 0)
            break;
        memcpy(key, k, 16);
        found = 1;
        if (!jrpc__cidr_match(io->trusted, io->ntrusted, k))
            break;
        end = start > 0 ? start - 1 : 0;
    }
    if (!found)
        return 0; /* the proxy named nobody: the request is its own, as the log says */
    hr->client_len = (uint8_t)jrpc__addr_key_name(key, hr->x->client, sizeof hr->x->client);
    memcpy(hr->x->ip_key, key, 16); /* also the anonymous budget's address (auth.c) */
    if (c->loop->cfg->max_connections_per_ip == 0)
        return 0;
    if (jrpc__admit_ip(io, key) != 0)
        return -1;
    hr->ip_counted = 1;
    return 0;
}

void jrpc__http_unforward(jrpc__http_conn_t *c, jrpc__http_req_t *hr)
{
    if (!hr->ip_counted)
        return;
    jrpc__unadmit_ip(c->loop->io, hr->x->ip_key);
    hr->ip_counted = 0;
}
