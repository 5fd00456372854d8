/* SPDX-License-Identifier: MIT */
/* redis.c — jrpcd's [redis] section: where budgets are kept when several jrpcd share them
 * (docs/keys.md). The values go into the library's config (redis_* fields), which checks the URL
 * and builds the store; the password is kept here and never printed. */
#include "jrpcd.h"

#include <stdlib.h>
#include <string.h>

/* Replaces *slot with a copy of value (NULL for ""): 0, or -1 out of memory. */
static int set_string(char **slot, const char *value)
{
    char *copy = NULL;
    if (value[0] != '\0' && (copy = strdup(value)) == NULL)
        return -1;
    if (*slot != NULL) {
        memset(*slot, 0, strlen(*slot)); /* a password does not linger in freed memory */
        free(*slot);
    }
    *slot = copy;
    return 0;
}

int jrpcd_redis_key(jrpcd_opts_t *opts, const char *name, const char *value, char *err, size_t cap)
{
    jrpc_config_t *c = &opts->cfg;
    if (strcmp(name, "url") == 0 || strcmp(name, "password") == 0) {
        int url = name[0] == 'u';
        if (url && value[0] != '\0' && strncmp(value, "redis://", 8) != 0) {
            snprintf(err, cap, "\"%s\" must be redis://[[user]:password@]host[:port][/db]", value);
            return -1;
        }
        if (set_string(url ? &opts->redis_url : &opts->redis_password, value) != 0) {
            snprintf(err, cap, "out of memory");
            return -1;
        }
        c->redis_url = opts->redis_url;
        c->redis_password = opts->redis_password;
        return 0; /* the library checks the rest of the URL (jrpc_config_check) */
    }
    if (strcmp(name, "db") == 0) {
        unsigned long long v;
        if (jrpcd_parse_uint(value, &v, err, cap) != 0)
            return -1;
        if (v > 65535) {
            snprintf(err, cap, "%llu is more than 65535", v);
            return -1;
        }
        c->redis_db = (int)v;
        return 0;
    }
    if (strcmp(name, "timeout") == 0) {
        unsigned long long ms;
        if (jrpcd_parse_duration(value, &ms, err, cap) != 0)
            return -1;
        if (ms < 1 || ms > 60000) {
            snprintf(err, cap, "\"%s\" is outside 1ms to 60s", value);
            return -1;
        }
        c->redis_timeout_ms = (unsigned)ms;
        return 0;
    }
    if (strcmp(name, "fail") == 0) {
        if (strcmp(value, "open") == 0 || strcmp(value, "closed") == 0) {
            c->redis_fail_closed = value[0] == 'c';
            return 0;
        }
        snprintf(err, cap, "\"%s\" is not open or closed", value);
        return -1;
    }
    snprintf(err, cap, "unknown key (known: url, password, db, timeout, fail)");
    return -1;
}

/* The URL with a password in it replaced by "***". */
static void url_hidden(const char *url, char *buf, size_t cap)
{
    const char *rest = url + strlen("redis://");
    const char *end = rest + strcspn(rest, "/?#");
    const char *at = NULL;
    for (const char *p = rest; p < end; p++)
        if (*p == '@')
            at = p;
    const char *colon = at != NULL ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
    if (colon == NULL)
        snprintf(buf, cap, "%s", url);
    else
        snprintf(buf, cap, "%.*s:***%s", (int)(colon - url), url, at);
}

void jrpcd_redis_print(const jrpcd_opts_t *opts, FILE *out)
{
    const jrpc_config_t *c = &opts->cfg;
    char url[1024] = "";
    if (opts->redis_url != NULL)
        url_hidden(opts->redis_url, url, sizeof url);
    unsigned t = c->redis_timeout_ms;
    fprintf(out, "\n[redis]\nurl =%s%s\npassword =%s\n", url[0] ? " " : "", url,
            opts->redis_password != NULL ? " (set, hidden)" : "");
    int db = c->redis_db;
    if (db < 0 && opts->redis_url != NULL) { /* the URL's /N, else 0 */
        const char *rest = opts->redis_url + strlen("redis://");
        const char *slash = strchr(rest, '/');
        db = slash != NULL ? atoi(slash + 1) : 0;
    }
    fprintf(out, "db = %d\n", db < 0 ? 0 : db);
    if (t % 1000 == 0)
        fprintf(out, "timeout = %us\n", t / 1000);
    else
        fprintf(out, "timeout = %ums\n", t);
    fprintf(out, "fail = %s\n", c->redis_fail_closed ? "closed" : "open");
}

int jrpcd_redis_differ(const jrpcd_opts_t *a, const jrpcd_opts_t *b)
{
    const char *ua = a->redis_url ? a->redis_url : "", *ub = b->redis_url ? b->redis_url : "";
    const char *pa = a->redis_password ? a->redis_password : "";
    const char *pb = b->redis_password ? b->redis_password : "";
    return strcmp(ua, ub) != 0 || strcmp(pa, pb) != 0 || a->cfg.redis_db != b->cfg.redis_db ||
           a->cfg.redis_timeout_ms != b->cfg.redis_timeout_ms ||
           a->cfg.redis_fail_closed != b->cfg.redis_fail_closed;
}
