/* addr.c — socket addresses as text, "1.2.3.4:80" or "[::1]:80": the listen addresses the server
 * reports and the client named in access-log lines, one format for every transport. */
#include "internal.h"

#include <netinet/in.h>
#include <stdio.h>

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
