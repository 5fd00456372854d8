/* SPDX-License-Identifier: MIT */
/* handshake.c — the opening handshake of RFC 6455 §4.2 as the HTTP transport sees it: the few
 * headers that matter (Upgrade, Sec-WebSocket-Key, Sec-WebSocket-Version; Connection is judged by
 * http-parser) captured while they stream past, the verdict (101, 400 or 426), and the 101 answer
 * with its Sec-WebSocket-Accept, whose SHA-1 comes from OpenSSL. */
#include "wire.h"

#include <openssl/evp.h>
#include <stdio.h>
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

/* ---- permessage-deflate offers (RFC 7692 §5, §7.1) --------------------------------------------
 */

/* A window size parameter's value: "8".."15" (quotes allowed, §7.1.2.1: no leading zeros);
 * 0 when malformed. */
static unsigned window_bits(const char *v, size_t n)
{
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    if (n == 1 && v[0] >= '8' && v[0] <= '9')
        return (unsigned)(v[0] - '0');
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10u + (unsigned)(v[1] - '0');
    return 0;
}

/* One offer e[0..n) ("permessage-deflate; p; p=v"): 1 and its parameters in *o when accepted. */
static int offer_parse(const char *e, size_t n, jrpc__ws_hs_t *o)
{
    size_t i = 0;
    while (i < n && is_blank(e[i]))
        i++;
    size_t t = i;
    while (i < n && e[i] != ';' && !is_blank(e[i]))
        i++;
    if (i - t != 18 || memcmp(e + t, "permessage-deflate", 18) != 0)
        return 0;
    uint8_t seen = 0; /* bits: the four parameters, each allowed once (§7) */
    while (i < n) {
        while (i < n && is_blank(e[i]))
            i++;
        if (i == n)
            break;
        if (e[i] != ';')
            return 0;
        i++;
        while (i < n && is_blank(e[i]))
            i++;
        size_t pn = i;
        while (i < n && e[i] != '=' && e[i] != ';' && !is_blank(e[i]))
            i++;
        size_t pn_len = i - pn;
        while (i < n && is_blank(e[i]))
            i++;
        const char *val = NULL;
        size_t val_len = 0;
        if (i < n && e[i] == '=') {
            i++;
            while (i < n && is_blank(e[i]))
                i++;
            val = e + i;
            while (i < n && e[i] != ';' && !is_blank(e[i]))
                i++;
            val_len = (size_t)(e + i - val);
        }
#define PARAM(lit) (pn_len == sizeof(lit) - 1 && memcmp(e + pn, lit, pn_len) == 0)
        unsigned bit;
        if (PARAM("server_no_context_takeover") && val == NULL) {
            bit = 1;
            o->pmd_snct = 1;
        } else if (PARAM("client_no_context_takeover") && val == NULL) {
            bit = 2;
            o->pmd_cnct = 1;
        } else if (PARAM("server_max_window_bits") && val != NULL) {
            bit = 4;
            o->pmd_sbits = (uint8_t)window_bits(val, val_len);
            /* zlib's raw deflate has no 256-byte window: an offer that insists is declined. */
            if (o->pmd_sbits < 9)
                return 0;
        } else if (PARAM("client_max_window_bits")) {
            bit = 8;
            o->pmd_cbits = val == NULL ? 1 : (uint8_t)window_bits(val, val_len);
            if (o->pmd_cbits == 0)
                return 0;
        } else {
            return 0; /* unknown, or a value where none belongs (or none where one must be) */
        }
#undef PARAM
        if (seen & bit)
            return 0;
        seen |= (uint8_t)bit;
    }
    return 1;
}

void jrpc__ws_hs_extensions(jrpc__ws_hs_t *hs, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n && !hs->pmd) {
        size_t end = i;
        int quoted = 0;
        while (end < n && (quoted || v[end] != ',')) {
            if (v[end] == '"')
                quoted = !quoted;
            end++;
        }
        jrpc__ws_hs_t o;
        memset(&o, 0, sizeof o);
        if (offer_parse(v + i, end - i, &o)) {
            hs->pmd = 1;
            hs->pmd_snct = o.pmd_snct;
            hs->pmd_cnct = o.pmd_cnct;
            hs->pmd_sbits = o.pmd_sbits;
            hs->pmd_cbits = o.pmd_cbits;
        }
        i = end + 1;
    }
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

size_t jrpc__ws_hs_answer(const jrpc__ws_hs_t *hs, unsigned max_batch, char out[JRPC__WS_101_MAX])
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
    if (max_batch != 0)
        n += (size_t)snprintf(out + n, JRPC__WS_101_MAX - n, "\r\nJrpc-Max-Batch: %u", max_batch);
    if (hs->pmd) {
        /* §7.1: the response names what the server keeps to and what the client must. A
         * client_max_window_bits offered without a value needs no answer: the client keeps its
         * default of 15. */
        int k = snprintf(out + n, JRPC__WS_101_MAX - n,
                         "\r\nSec-WebSocket-Extensions: permessage-deflate%s%s",
                         hs->pmd_snct ? "; server_no_context_takeover" : "",
                         hs->pmd_cnct ? "; client_no_context_takeover" : "");
        n += (size_t)k;
        if (hs->pmd_sbits != 0)
            n += (size_t)snprintf(out + n, JRPC__WS_101_MAX - n, "; server_max_window_bits=%u",
                                  hs->pmd_sbits);
        if (hs->pmd_cbits >= 8)
            n += (size_t)snprintf(out + n, JRPC__WS_101_MAX - n, "; client_max_window_bits=%u",
                                  hs->pmd_cbits);
    }
    memcpy(out + n, "\r\n\r\n", 4);
    return n + 4;
}
