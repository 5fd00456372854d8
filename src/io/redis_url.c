/* SPDX-License-Identifier: MIT */
/* redis_url.c — reads the [redis] url, redis://[[user]:password@]host[:port][/db], for the store
 * (redis.c) and for the configuration's check (jrpc_config_check), with one reason per refusal. */
#include "redis.h"

#include <stdlib.h>
#include <string.h>

int jrpc__redis_url_parse(const char *url, char *host, size_t cap, unsigned *port, char *password,
                          size_t pcap, int *db, const char **why)
{
    static const char scheme[] = "redis://";
    const char *p = url;
    if (p == NULL || strncmp(p, scheme, sizeof scheme - 1) != 0) {
        *why = "redis_url must start with redis://";
        return JRPC_EINVAL;
    }
    p += sizeof scheme - 1;
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (password != NULL && pcap > 0)
        password[0] = 0;
    if (at != NULL) { /* [user]:password@ */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL) {
            *why = "redis_url credentials must be [user]:password@";
            return JRPC_EINVAL;
        }
        size_t plen = (size_t)(at - colon - 1);
        if (password != NULL) {
            if (plen >= pcap) {
                *why = "redis_url password is too long";
                return JRPC_EINVAL;
            }
            memcpy(password, colon + 1, plen);
            password[plen] = 0;
        }
        p = at + 1;
    }
    const char *h = p, *hend, *pp = NULL;
    if (*p == '[') { /* [v6] */
        h = p + 1;
        hend = memchr(h, ']', (size_t)(end - h));
        if (hend == NULL) {
            *why = "redis_url IPv6 address without ]";
            return JRPC_EINVAL;
        }
        if (hend + 1 < end) {
            if (hend[1] != ':') {
                *why = "redis_url junk after ]";
                return JRPC_EINVAL;
            }
            pp = hend + 2;
        }
    } else {
        hend = memchr(h, ':', (size_t)(end - h));
        if (hend != NULL)
            pp = hend + 1;
        else
            hend = end;
    }
    if (hend == h) {
        *why = "redis_url has no host";
        return JRPC_EINVAL;
    }
    if ((size_t)(hend - h) >= (host != NULL ? cap : 256)) {
        *why = "redis_url host is too long";
        return JRPC_EINVAL;
    }
    if (host != NULL) {
        memcpy(host, h, (size_t)(hend - h));
        host[hend - h] = 0;
    }
    unsigned long pn = 6379;
    if (pp != NULL) {
        char *e;
        if (pp == end || *pp < '0' || *pp > '9') {
            *why = "redis_url port must be a number";
            return JRPC_EINVAL;
        }
        pn = strtoul(pp, &e, 10);
        if (e != end || pn == 0 || pn > 65535) {
            *why = "redis_url port must be 1 to 65535";
            return JRPC_EINVAL;
        }
    }
    if (port != NULL)
        *port = (unsigned)pn;
    int dbn = -1;
    if (*end == '/' && end[1] != 0) {
        char *e;
        if (end[1] < '0' || end[1] > '9') {
            *why = "redis_url database must be a number";
            return JRPC_EINVAL;
        }
        unsigned long d = strtoul(end + 1, &e, 10);
        if (*e != 0 || d > JRPC__REDIS_MAX_DB) {
            *why = "redis_url database must be a number";
            return JRPC_EINVAL;
        }
        dbn = (int)d;
    } else if (*end != 0 && !(*end == '/' && end[1] == 0)) {
        *why = "redis_url must be redis://[[user]:password@]host[:port][/db]";
        return JRPC_EINVAL;
    }
    if (db != NULL)
        *db = dbn;
    return 0;
}
