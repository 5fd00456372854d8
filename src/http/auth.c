/* SPDX-License-Identifier: MIT */
/* auth.c — which API key an HTTP request (or WebSocket upgrade) carries: the path segment after
 * the keys' path_prefix (seed 002's POST /v2/<key>), or an Authorization: Bearer or X-API-Key
 * header; and the 401 for a key nobody holds, or for none where one is required. The engine
 * applies the key's rules and budget to each call (src/rpc). A secret is never logged: an
 * unknown one is named by a short hash. */
#include "internal.h"

#include <string.h>
#include <strings.h>

void jrpc__http_auth_find(jrpc__http_conn_t *c, jrpc__http_req_t *hr, const char **path,
                          size_t *path_len, int *rpc)
{
    const jrpc__keys_t *keys = jrpc__keys_current(c->loop);
    if (keys == NULL)
        return; /* no keys: hr->key_state stays JRPC__KEY_OFF */
    hr->auth.keys = keys;
    hr->key_state = JRPC__KEY_NONE;
    const char *key = NULL;
    size_t key_len = 0;
    size_t pl;
    const char *prefix = jrpc__keys_prefix(keys, &pl);
    const char *p = *path;
    size_t n = *path_len;
    if (pl != 0 && n > pl && memcmp(p, prefix, pl) == 0 && p[pl] == '/') {
        /* <prefix>/<key>[/<rest>]: the rest is routed as if it were the whole path. */
        key = p + pl + 1;
        const char *end = memchr(key, '/', n - pl - 1);
        key_len = end != NULL ? (size_t)(end - key) : n - pl - 1;
        if (key >= c->url && key < c->url + c->url_cap) {
            hr->key_off = (uint16_t)(key - c->url);
            hr->key_seg_len = (uint16_t)(key_len < UINT16_MAX ? key_len : UINT16_MAX);
        }
        if (end == NULL || (size_t)(p + n - end) == 1) {
            *rpc = 1; /* <prefix>/<key> or <prefix>/<key>/ */
        } else {
            *path = end;
            *path_len = (size_t)(p + n - end);
        }
    } else if (hr->auth_len != 0) {
        key = hr->auth_val != NULL ? hr->auth_val : "";
        key_len = hr->auth_len > JRPC__HTTP_AUTH_MAX ? JRPC__HTTP_AUTH_MAX : hr->auth_len;
        if (hr->auth_bearer) {
            /* RFC 6750 §2.1: "Bearer" (any case), one or more spaces, the token. */
            if (key_len > 7 && strncasecmp(key, "bearer ", 7) == 0) {
                key += 7;
                key_len -= 7;
                while (key_len > 0 && *key == ' ') {
                    key++;
                    key_len--;
                }
            } else {
                /* Another scheme: not a key of ours. */
                hr->key_state = JRPC__KEY_UNKNOWN;
                jrpc__keys_mark(key, key_len, hr->key_mark);
                return;
            }
        }
        while (key_len > 0 && (key[key_len - 1] == ' ' || key[key_len - 1] == '\t'))
            key_len--;
        if (hr->auth_len > JRPC__HTTP_AUTH_MAX)
            key_len = JRPC__KEY_SECRET_MAX + 1; /* too long to be one: unknown */
    }
    if (key == NULL)
        return;
    if (key_len > JRPC__KEY_SECRET_MAX) {
        hr->auth.key = NULL;
    } else if (c->memo_keys == keys && jrpc__keys_same(c->memo_key, key, key_len)) {
        hr->auth.key = c->memo_key; /* a client sends the same key request after request */
    } else {
        hr->auth.key = jrpc__keys_find(keys, key, key_len);
        if (hr->auth.key != NULL) {
            c->memo_keys = keys;
            c->memo_key = hr->auth.key;
        }
    }
    if (hr->auth.key != NULL) {
        hr->key_state = JRPC__KEY_VALID;
    } else {
        hr->key_state = JRPC__KEY_UNKNOWN;
        jrpc__keys_mark(key, key_len, hr->key_mark);
    }
}

/* The connection's peer as an address key (once per connection). */
static int peer_key(jrpc__http_conn_t *c)
{
    if (c->peer_key_state == 0) {
        struct sockaddr_storage ss;
        int len = sizeof ss;
        memset(&ss, 0, sizeof ss);
        c->peer_key_state = 2;
        if (uv_tcp_getpeername(&c->sock->tcp, (struct sockaddr *)&ss, &len) == 0 &&
            (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
            jrpc__addr_key((const struct sockaddr *)&ss, c->peer_key);
            c->peer_key_state = 1;
        }
    }
    return c->peer_key_state == 1;
}

int jrpc__http_auth_check(jrpc__http_conn_t *c, jrpc__http_req_t *hr, int method)
{
    if (hr->key_state == JRPC__KEY_OFF || hr->key_state == JRPC__KEY_VALID)
        return 0;
    const jrpc__keys_t *keys = hr->auth.keys;
    jrpc__engine_t *e = jrpc__engine_of(c->loop);
    /* A browser's CORS preflight never carries credentials: it is answered without a key. */
    if (hr->key_state == JRPC__KEY_UNKNOWN ||
        (jrpc__keys_required(keys) && method != HTTP_OPTIONS)) {
        atomic_fetch_add_explicit(&e->auth_refused[hr->key_state == JRPC__KEY_UNKNOWN], 1,
                                  memory_order_relaxed);
        hr->kind = JRPC__HR_LOCAL;
        hr->status = 401;
        return -1;
    }
    if (jrpc__keys_anonymous_limited(keys)) {
        /* Behind a trusted proxy, the client it forwarded for (forward.c); else the peer. */
        if (hr->client_len != 0) {
            memcpy(hr->auth.addr, hr->x->ip_key, 16);
            hr->auth.has_addr = 1;
        } else if (peer_key(c)) {
            memcpy(hr->auth.addr, c->peer_key, 16);
            hr->auth.has_addr = 1;
        }
    }
    return 0;
}
