/* SPDX-License-Identifier: MIT */
/* addr.c — socket addresses as text, "1.2.3.4:80" or "[::1]:80": the listen addresses the server
 * is given and reports, and the client named in access-log lines, one format for every
 * transport. */
#include "internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Splits "HOST:PORT" / "[V6]:PORT" into host and port text. */
static int split_host_port(const char *hp, char *host, size_t host_cap, char *port, size_t cap)
{
    const char *colon;
    const char *h = hp;
    size_t hlen;
    if (hp[0] == '[') {
        const char *close = strchr(hp, ']');
        if (close == NULL || close[1] != ':')
            return JRPC_EINVAL;
        h = hp + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(hp, ':');
        if (colon == NULL)
            return JRPC_EINVAL;
        hlen = (size_t)(colon - hp);
    }
    if (hlen == 0 || hlen >= host_cap || strlen(colon + 1) == 0 || strlen(colon + 1) >= cap)
        return JRPC_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

int jrpc__addr_parse(const char *host_port, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256], port[16];
    if (split_host_port(host_port, host, sizeof host, port, sizeof port) != 0)
        return JRPC_EINVAL;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
        return JRPC_EINVAL;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = (socklen_t)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

size_t jrpc__addr_name(const struct sockaddr *sa, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    int n;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(a, ip, sizeof ip);
        n = snprintf(buf, cap, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        uv_ip4_name(a, ip, sizeof ip);
        n = snprintf(buf, cap, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    } else {
        return 0;
    }
    if (n <= 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

size_t jrpc__peer_name(const uv_tcp_t *tcp, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    size_t n = 0;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0)
        n = jrpc__addr_name((const struct sockaddr *)&ss, buf, cap);
    if (n == 0)
        n = (size_t)snprintf(buf, cap, "-"); /* no address: a unix socket (tests), or gone */
    return n;
}

void jrpc__addr_key(const struct sockaddr *sa, unsigned char key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    } else if (sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    }
}

int jrpc__addr_key_parse(const char *s, size_t n, unsigned char key[16])
{
    char text[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof text)
        return -1;
    memcpy(text, s, n);
    text[n] = '\0';
    memset(key, 0, 16);
    if (inet_pton(AF_INET, text, key + 12) == 1) {
        key[10] = key[11] = 0xff;
        return 4;
    }
    return inet_pton(AF_INET6, text, key) == 1 ? 6 : -1;
}

size_t jrpc__addr_key_name(const unsigned char key[16], char *buf, size_t cap)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    int v4 = memcmp(key, mapped, sizeof mapped) == 0;
    if (inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? key + 12 : key, buf, (socklen_t)cap) == NULL)
        return 0;
    return strlen(buf);
}

/* One word of a trusted_proxies list: "ADDR" or "ADDR/BITS". */
static int cidr_parse(const char *w, size_t n, jrpc__cidr_t *out)
{
    const char *slash = memchr(w, '/', n);
    size_t alen = slash != NULL ? (size_t)(slash - w) : n;
    int family = jrpc__addr_key_parse(w, alen, out->key);
    if (family < 0)
        return -1;
    unsigned max = family == 4 ? 32 : 128;
    unsigned bits = max;
    if (slash != NULL) {
        const char *d = slash + 1;
        size_t dn = n - alen - 1;
        if (dn == 0 || dn > 3)
            return -1;
        bits = 0;
        for (size_t i = 0; i < dn; i++) {
            if (d[i] < '0' || d[i] > '9')
                return -1;
            bits = bits * 10 + (unsigned)(d[i] - '0');
        }
        if (bits > max)
            return -1;
    }
    out->bits = (uint8_t)(family == 4 ? bits + 96 : bits); /* IPv4 sits in the last 32 bits */
    return 0;
}

int jrpc__cidr_list_parse(const char *list, jrpc__cidr_t **out, size_t *n)
{
    static const char sep[] = " \t,";
    size_t count = 0;
    jrpc__cidr_t probe;
    for (const char *p = list != NULL ? list : ""; *(p += strspn(p, sep)) != '\0';) {
        size_t wn = strcspn(p, sep);
        if (cidr_parse(p, wn, &probe) != 0)
            return JRPC_EINVAL;
        count++;
        p += wn;
    }
    if (out == NULL)
        return 0;
    *out = NULL;
    *n = 0;
    if (count == 0)
        return 0;
    jrpc__cidr_t *v = calloc(count, sizeof(*v));
    if (v == NULL)
        return JRPC_ENOMEM;
    size_t i = 0;
    for (const char *p = list; *(p += strspn(p, sep)) != '\0'; i++) {
        size_t wn = strcspn(p, sep);
        cidr_parse(p, wn, &v[i]);
        p += wn;
    }
    *out = v;
    *n = count;
    return 0;
}

int jrpc__cidr_match(const jrpc__cidr_t *v, size_t n, const unsigned char key[16])
{
    for (size_t i = 0; i < n; i++) {
        unsigned bits = v[i].bits, whole = bits / 8, rest = bits % 8;
        if (memcmp(v[i].key, key, whole) != 0)
            continue;
        if (rest != 0 && ((v[i].key[whole] ^ key[whole]) & (0xff << (8 - rest)) & 0xff) != 0)
            continue;
        return 1;
    }
    return 0;
}
