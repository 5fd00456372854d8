/* SPDX-License-Identifier: MIT */
/* handshake.c — the opening handshake of RFC 6455 §4.2 as the HTTP transport sees it: the few
 * headers that matter (Upgrade, Sec-WebSocket-Key, Sec-WebSocket-Version; Connection is judged by
 * http-parser) captured while they stream past, the verdict (101, 400 or 426), and the 101 answer
 * with its Sec-WebSocket-Accept, whose SHA-1 comes from OpenSSL. */
#include "wire.h"

#include <openssl/evp.h>
#include <string.h>

/* Headers whose values are kept. */
enum { JRPC__WS_H_NONE = 0, JRPC__WS_H_UPGRADE, JRPC__WS_H_KEY, JRPC__WS_H_VERSION };

/* RFC 6455 §1.3: appended to the key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void jrpc__ws_hs_reset(jrpc__ws_hs_t *hs)
{
    memset(hs, 0, sizeof(*hs));
}

static int name_is(const char *lname, size_t name_len, const char *want)
{
    size_t n = strlen(want);
    return name_len == n && memcmp(lname, want, n) == 0;
}

void jrpc__ws_hs_name(jrpc__ws_hs_t *hs, const char *lname, size_t name_len)
{
    hs->val_len = 0;
    if (name_is(lname, name_len, "upgrade")) {
        hs->hdr = JRPC__WS_H_UPGRADE;
    } else if (name_is(lname, name_len, "sec-websocket-key")) {
        hs->hdr = JRPC__WS_H_KEY;
        if (hs->keys < 2)
            hs->keys++; /* one or more than one is all that matters */
        hs->key_len = 0;
    } else if (name_is(lname, name_len, "sec-websocket-version")) {
        hs->hdr = JRPC__WS_H_VERSION;
    } else {
        hs->hdr = JRPC__WS_H_NONE;
    }
}

void jrpc__ws_hs_value(jrpc__ws_hs_t *hs, const char *p, size_t n)
{
    if (hs->hdr == JRPC__WS_H_NONE)
        return;
    if (hs->hdr == JRPC__WS_H_KEY) {
        /* key_len stops one past the buffer: longer than any valid key with blanks. */
        for (size_t i = 0; i < n && hs->key_len <= sizeof(hs->key); i++) {
            if (hs->key_len < sizeof(hs->key))
                hs->key[hs->key_len] = p[i];
            hs->key_len++;
        }
        return;
    }
    for (size_t i = 0; i < n && hs->val_len < sizeof(hs->val); i++) {
        char ch = p[i];
        hs->val[hs->val_len++] = ch >= 'A' && ch <= 'Z' ? (char)(ch + ('a' - 'A')) : ch;
    }
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Whether the comma-separated list v[0..n) has the element `want` (blanks around elements are
 * ignored; RFC 9110 §5.6.1 lists). */
static int list_has(const char *v, size_t n, const char *want)
{
    size_t wn = strlen(want), i = 0;
    while (i < n) {
        while (i < n && (is_blank(v[i]) || v[i] == ','))
            i++;
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && is_blank(v[end - 1]))
            end--;
        if (end - start == wn && memcmp(v + start, want, wn) == 0)
            return 1;
    }
    return 0;
}

void jrpc__ws_hs_end(jrpc__ws_hs_t *hs)
{
    switch (hs->hdr) {
    case JRPC__WS_H_UPGRADE:
        if (list_has(hs->val, hs->val_len, "websocket"))
            hs->upgrade = 1;
        break;
    case JRPC__WS_H_KEY:
        /* http-parser keeps trailing blanks of a value; they are not part of the key. */
        if (hs->key_len <= sizeof(hs->key))
            while (hs->key_len > 0 && is_blank(hs->key[hs->key_len - 1]))
                hs->key_len--;
        break;
    case JRPC__WS_H_VERSION: {
        size_t n = hs->val_len;
        while (n > 0 && is_blank(hs->val[n - 1]))
            n--;
        hs->version = n == 2 && hs->val[0] == '1' && hs->val[1] == '3' ? 1 : 2;
        break;
    }
    default:
        break;
    }
    hs->hdr = JRPC__WS_H_NONE;
}

static int is_b64(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '+' || ch == '/';
}

/* §4.1: the key is the base64 of exactly 16 bytes: 22 digits, the last of which carries only two
 * significant bits (A, Q, g or w), then "==". */
static int key_valid(const jrpc__ws_hs_t *hs)
{
    if (hs->keys != 1 || hs->key_len != JRPC__WS_KEY_LEN)
        return 0;
    for (int i = 0; i < 22; i++)
        if (!is_b64(hs->key[i]))
            return 0;
    char last = hs->key[21];
    return (last == 'A' || last == 'Q' || last == 'g' || last == 'w') && hs->key[22] == '=' &&
           hs->key[23] == '=';
}

unsigned jrpc__ws_hs_verdict(const jrpc__ws_hs_t *hs, int conn_upgrade, int http11, int has_body)
{
    if (!hs->upgrade)
        return 0;
    if (!conn_upgrade || !http11 || has_body || !key_valid(hs) || hs->version == 0)
        return 400;
    if (hs->version != 1)
        return 426;
    return 101;
}

void jrpc__ws_accept_key(const char *key, size_t key_len, char out[JRPC__WS_ACCEPT_LEN + 1])
{
    unsigned char in[64 + sizeof(ws_guid)];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (key_len > 64)
        key_len = 64; /* never for a key that passed key_valid; keeps the buffer safe */
    memcpy(in, key, key_len);
    memcpy(in + key_len, ws_guid, sizeof(ws_guid) - 1);
    if (EVP_Digest(in, key_len + sizeof(ws_guid) - 1, md, &md_len, EVP_sha1(), NULL) != 1 ||
        md_len != 20) {
        memset(md, 0, sizeof(md)); /* no SHA-1 at all: the client refuses the answer */
        md_len = 20;
    }
    EVP_EncodeBlock((unsigned char *)out, md, (int)md_len); /* 28 digits and a NUL */
}

size_t jrpc__ws_hs_answer(const jrpc__ws_hs_t *hs, char out[JRPC__WS_101_MAX])
{
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: ";
    char accept[JRPC__WS_ACCEPT_LEN + 1];
    jrpc__ws_accept_key(hs->key, JRPC__WS_KEY_LEN, accept);
    size_t n = sizeof(head) - 1;
    memcpy(out, head, n);
    memcpy(out + n, accept, JRPC__WS_ACCEPT_LEN);
    n += JRPC__WS_ACCEPT_LEN;
    memcpy(out + n, "\r\n\r\n", 4);
    return n + 4;
}
