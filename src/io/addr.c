/* addr.c — socket addresses as text, "1.2.3.4:80" or "[::1]:80": the listen addresses the server
 * is given and reports, and the client named in access-log lines, one format for every
 * transport. */
#include "internal.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
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
