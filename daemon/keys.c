/* SPDX-License-Identifier: MIT */
/* keys.c — jrpcd's [auth], [key NAME] and [cost] sections, and the keys_file that holds more
 * [key NAME] sections (read again on SIGHUP with the rest): checked with FILE:LINE like every
 * other key, then mapped onto the library's jrpc_keys_t (jrpc_server_keys_set). --check prints
 * them with every secret hidden. */
#include "jrpcd.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One [key NAME] section. */
typedef struct dkey {
    unsigned set; /* numeric keys seen (a bit each): each may appear once */
    char *name;
    char *origin; /* "FILE:LINE" of its first line */
    char *secret, *methods, *deny, *origins;
    unsigned long long rate, burst, max_batch, max_batch_ws;
} dkey_t;

typedef struct dcost {
    char *pattern;
    unsigned long long units;
} dcost_t;

struct jrpcd_keys {
    unsigned auth_set; /* [auth] keys seen (a bit each): each may appear once */
    int required;
    char *path_prefix;
    unsigned long long anonymous_rate, anonymous_burst;
    char *keys_file; /* resolved against the config's directory */
    dkey_t *keys;
    size_t nkeys;
    dcost_t *costs;
    size_t ncosts;
};

static struct jrpcd_keys *keys_of(jrpcd_opts_t *opts)
{
    if (opts->keys == NULL)
        opts->keys = calloc(1, sizeof(*opts->keys));
    return opts->keys;
}

static int fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

/* "330", "330/s" or "330 / s": units a second. */
static int parse_rate(const char *v, unsigned long long *out, char *err, size_t cap)
{
    char num[32];
    size_t n = strcspn(v, "/");
    if (n >= sizeof num)
        return fail(err, cap, "\"%s\" is not a rate (write units per second: 330/s)", v);
    memcpy(num, v, n);
    num[n] = '\0';
    while (n > 0 && (num[n - 1] == ' ' || num[n - 1] == '\t'))
        num[--n] = '\0';
    if (v[strcspn(v, "/")] == '/') {
        const char *u = v + strcspn(v, "/") + 1;
        u += strspn(u, " \t");
        if (strcmp(u, "s") != 0)
            return fail(err, cap, "\"%s\": a rate is units per second (330/s)", v);
    }
    if (jrpcd_parse_uint(num, out, err, cap) != 0)
        return -1;
    if (*out > 1000000000ull)
        return fail(err, cap, "at most 1000000000 units a second");
    return 0;
}

static int set_str(char **slot, const char *v, const char *key, char *err, size_t cap)
{
    if (*slot != NULL)
        return fail(err, cap, "%s is already set", key);
    *slot = strdup(v);
    return *slot == NULL ? fail(err, cap, "out of memory") : 0;
}

static int set_units(unsigned long long *slot, const char *v, char *err, size_t cap)
{
    if (jrpcd_parse_uint(v, slot, err, cap) != 0)
        return -1;
    if (*slot > 1000000000ull)
        return fail(err, cap, "at most 1000000000");
    return 0;
}

int jrpcd_auth_key(jrpcd_opts_t *opts, const char *name, const char *value, const char *base_dir,
                   char *err, size_t cap)
{
    struct jrpcd_keys *k = keys_of(opts);
    if (k == NULL)
        return fail(err, cap, "out of memory");
    static const char *const names[] = {"required", "path_prefix", "anonymous_rate",
                                        "anonymous_burst", "keys_file"};
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i]) != 0)
            continue;
        if (k->auth_set & (1u << i))
            return fail(err, cap, "already set");
        k->auth_set |= 1u << i;
    }
    if (strcmp(name, "required") == 0) {
        if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
            return fail(err, cap, "\"%s\": on or off", value);
        k->required = strcmp(value, "on") == 0;
        return 0;
    }
    if (strcmp(name, "path_prefix") == 0) {
        jrpc_auth_config_t probe = {0, value, 0, 0};
        const char *why = jrpc_auth_check(&probe);
        if (why != NULL)
            return fail(err, cap, "%s", why);
        return set_str(&k->path_prefix, value, name, err, cap);
    }
    if (strcmp(name, "anonymous_rate") == 0)
        return parse_rate(value, &k->anonymous_rate, err, cap);
    if (strcmp(name, "anonymous_burst") == 0)
        return set_units(&k->anonymous_burst, value, err, cap);
    if (strcmp(name, "keys_file") == 0) {
        if (k->keys_file != NULL)
            return fail(err, cap, "keys_file is already set");
        if (value[0] == '\0')
            return 0;
        if (value[0] == '/' || base_dir == NULL) {
            k->keys_file = strdup(value);
        } else {
            size_t n = strlen(base_dir) + 1 + strlen(value) + 1;
            k->keys_file = malloc(n);
            if (k->keys_file != NULL)
                snprintf(k->keys_file, n, "%s/%s", base_dir, value);
        }
        return k->keys_file == NULL ? fail(err, cap, "out of memory") : 0;
    }
    return fail(err, cap,
                "unknown key (known: required, path_prefix, anonymous_rate, anonymous_burst, "
                "keys_file)");
}

int jrpcd_key_key(jrpcd_opts_t *opts, const char *key, const char *name, const char *value,
                  const char *origin, char *err, size_t cap)
{
    struct jrpcd_keys *k = keys_of(opts);
    if (k == NULL)
        return fail(err, cap, "out of memory");
    dkey_t *d = NULL;
    for (size_t i = 0; i < k->nkeys; i++)
        if (strcmp(k->keys[i].name, key) == 0)
            d = &k->keys[i];
    if (d == NULL) {
        dkey_t *v = realloc(k->keys, (k->nkeys + 1) * sizeof(*v));
        if (v == NULL)
            return fail(err, cap, "out of memory");
        k->keys = v;
        d = &v[k->nkeys];
        memset(d, 0, sizeof(*d));
        d->name = strdup(key);
        d->origin = strdup(origin);
        if (d->name == NULL || d->origin == NULL) {
            free(d->name);
            free(d->origin);
            return fail(err, cap, "out of memory");
        }
        k->nkeys++;
    }
    if (strcmp(name, "secret") == 0)
        return set_str(&d->secret, value, name, err, cap);
    if (strcmp(name, "methods") == 0)
        return set_str(&d->methods, value, name, err, cap);
    if (strcmp(name, "deny") == 0)
        return set_str(&d->deny, value, name, err, cap);
    if (strcmp(name, "origins") == 0)
        return set_str(&d->origins, value, name, err, cap);
    static const char *const numeric[] = {"rate", "burst", "max_batch", "max_batch_ws"};
    for (unsigned i = 0; i < sizeof numeric / sizeof numeric[0]; i++) {
        if (strcmp(name, numeric[i]) != 0)
            continue;
        if (d->set & (1u << i))
            return fail(err, cap, "%s is already set", name);
        d->set |= 1u << i;
    }
    if (strcmp(name, "rate") == 0)
        return parse_rate(value, &d->rate, err, cap);
    if (strcmp(name, "burst") == 0)
        return set_units(&d->burst, value, err, cap);
    if (strcmp(name, "max_batch") == 0)
        return jrpcd_parse_uint(value, &d->max_batch, err, cap);
    if (strcmp(name, "max_batch_ws") == 0)
        return jrpcd_parse_uint(value, &d->max_batch_ws, err, cap);
    return fail(err, cap,
                "unknown key (known: secret, rate, burst, methods, deny, max_batch, "
                "max_batch_ws, origins)");
}

int jrpcd_cost_key(jrpcd_opts_t *opts, const char *pattern, const char *value, char *err,
                   size_t cap)
{
    struct jrpcd_keys *k = keys_of(opts);
    if (k == NULL)
        return fail(err, cap, "out of memory");
    const char *star = strchr(pattern, '*');
    if (star != NULL && star[1] != '\0')
        return fail(err, cap, "'*' may only end a pattern");
    for (size_t i = 0; i < k->ncosts; i++)
        if (strcmp(k->costs[i].pattern, pattern) == 0)
            return fail(err, cap, "already set");
    unsigned long long units;
    if (set_units(&units, value, err, cap) != 0)
        return -1;
    dcost_t *v = realloc(k->costs, (k->ncosts + 1) * sizeof(*v));
    if (v == NULL)
        return fail(err, cap, "out of memory");
    k->costs = v;
    v[k->ncosts].pattern = strdup(pattern);
    if (v[k->ncosts].pattern == NULL)
        return fail(err, cap, "out of memory");
    v[k->ncosts].units = units;
    k->ncosts++;
    return 0;
}

/* ---- keys_file ---------------------------------------------------------------------------------
 */

typedef struct kf_ctx {
    jrpcd_opts_t *opts;
    FILE *fp;
    int line;
    int failed;
    size_t nmain; /* keys from the config file itself: the keys_file may not repeat them */
    char *err;
    size_t cap;
} kf_ctx_t;

static char *kf_read_line(char *str, int num, void *stream)
{
    kf_ctx_t *ctx = stream;
    if (ctx->failed || fgets(str, num, ctx->fp) == NULL)
        return NULL;
    ctx->line++;
    return str;
}

static int kf_handle(void *user, const char *section, const char *name, const char *value)
{
    kf_ctx_t *ctx = user;
    const char *file = ctx->opts->keys->keys_file;
    char why[512], origin[600];
    snprintf(origin, sizeof origin, "%s:%d", file, ctx->line);
    size_t kind_len = strcspn(section, " \t");
    const char *arg = section + kind_len + strspn(section + kind_len, " \t");
    if (kind_len != 3 || strncmp(section, "key", 3) != 0 || arg[0] == '\0') {
        snprintf(ctx->err, ctx->cap, "%s: only [key NAME] sections belong in a keys_file", origin);
        ctx->failed = 1;
        return 0;
    }
    for (size_t i = 0; i < ctx->nmain; i++) {
        const dkey_t *d = &ctx->opts->keys->keys[i];
        if (strcmp(d->name, arg) == 0) {
            snprintf(ctx->err, ctx->cap, "%s: [key %s] is already defined at %s", origin, arg,
                     d->origin);
            ctx->failed = 1;
            return 0;
        }
    }
    if (jrpcd_key_key(ctx->opts, arg, name, value, origin, why, sizeof why) != 0) {
        snprintf(ctx->err, ctx->cap, "%s: [key %s] %s: %s", origin, arg, name, why);
        ctx->failed = 1;
        return 0;
    }
    return 1;
}

/* Reads the keys_file, if any, into opts. 0, or -1 with "FILE:LINE: reason" in err. */
static int keys_file_load(jrpcd_opts_t *opts, char *err, size_t cap)
{
    struct jrpcd_keys *k = opts->keys;
    if (k == NULL || k->keys_file == NULL)
        return 0;
    kf_ctx_t ctx = {.opts = opts, .err = err, .cap = cap, .nmain = k->nkeys};
    ctx.fp = fopen(k->keys_file, "r");
    if (ctx.fp == NULL)
        return fail(err, cap, "cannot read keys_file %s: %s", k->keys_file, strerror(errno));
    int line = ini_parse_stream(kf_read_line, &ctx, kf_handle, &ctx);
    fclose(ctx.fp);
    if (ctx.failed)
        return -1;
    if (line != 0)
        return fail(err, cap, "%s:%d: expected [key NAME], key = value or a ; comment",
                    k->keys_file, line);
    return 0;
}

/* ---- Checking and building ---------------------------------------------------------------------
 */

static void dkey_config(const dkey_t *d, jrpc_key_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->name = d->name;
    c->secret = d->secret;
    c->rate = d->rate;
    c->burst = d->burst;
    c->methods = d->methods;
    c->deny = d->deny;
    c->max_batch = (unsigned)d->max_batch;
    c->max_batch_ws = (unsigned)d->max_batch_ws;
    c->origins = d->origins;
}

int jrpcd_keys_check(jrpcd_opts_t *opts, char *err, size_t cap)
{
    if (opts->keys == NULL)
        return 0;
    if (keys_file_load(opts, err, cap) != 0)
        return -1;
    struct jrpcd_keys *k = opts->keys;
    if (k->anonymous_burst != 0 && k->anonymous_rate == 0)
        return fail(err, cap, "[auth] anonymous_burst needs anonymous_rate");
    for (size_t i = 0; i < k->nkeys; i++) {
        const dkey_t *d = &k->keys[i];
        jrpc_key_config_t c;
        dkey_config(d, &c);
        if (d->secret == NULL)
            return fail(err, cap, "%s: [key %s] has no secret", d->origin, d->name);
        const char *why = jrpc_key_check(&c);
        if (why != NULL)
            return fail(err, cap, "%s: [key %s]: %s", d->origin, d->name, why);
        if (d->max_batch > opts->cfg.max_batch)
            return fail(err, cap, "%s: [key %s] max_batch %llu is above [server] max_batch %u",
                        d->origin, d->name, d->max_batch, opts->cfg.max_batch);
        if (d->max_batch_ws > opts->cfg.max_batch_ws)
            return fail(err, cap,
                        "%s: [key %s] max_batch_ws %llu is above [server] max_batch_ws %u",
                        d->origin, d->name, d->max_batch_ws, opts->cfg.max_batch_ws);
        for (size_t j = 0; j < i; j++)
            if (strcmp(k->keys[j].secret, d->secret) == 0)
                return fail(err, cap, "%s: [key %s] has the secret of [key %s] (%s)", d->origin,
                            d->name, k->keys[j].name, k->keys[j].origin);
    }
    return 0;
}

int jrpcd_keys_setup(const jrpcd_opts_t *opts, jrpc_server_t *srv, char *err, size_t cap)
{
    const struct jrpcd_keys *k = opts->keys;
    if (k == NULL) {
        jrpc_server_keys_set(srv, NULL); /* a reload that removed every key section */
        return 0;
    }
    jrpc_auth_config_t auth = {k->required, k->path_prefix, k->anonymous_rate, k->anonymous_burst};
    jrpc_keys_t *set = jrpc_keys_new(&auth);
    if (set == NULL)
        return fail(err, cap, "[auth]: %s",
                    jrpc_auth_check(&auth) ? jrpc_auth_check(&auth) : "out of memory");
    for (size_t i = 0; i < k->nkeys; i++) {
        jrpc_key_config_t c;
        dkey_config(&k->keys[i], &c);
        int rc = jrpc_keys_add(set, &c);
        if (rc != 0) {
            jrpc_keys_free(set);
            return fail(err, cap, "%s: [key %s]: %s", k->keys[i].origin, k->keys[i].name,
                        rc == JRPC_EINVAL ? jrpc_key_check(&c) : jrpc_strerror(rc));
        }
    }
    for (size_t i = 0; i < k->ncosts; i++) {
        int rc = jrpc_keys_cost(set, k->costs[i].pattern, k->costs[i].units);
        if (rc != 0) {
            jrpc_keys_free(set);
            return fail(err, cap, "[cost] %s: %s", k->costs[i].pattern, jrpc_strerror(rc));
        }
    }
    int rc = jrpc_server_keys_set(srv, set);
    return rc != 0 ? fail(err, cap, "keys: %s", jrpc_strerror(rc)) : 0;
}

size_t jrpcd_keys_count(const jrpcd_opts_t *opts)
{
    return opts->keys != NULL ? opts->keys->nkeys : 0;
}

void jrpcd_keys_print(const jrpcd_opts_t *opts, FILE *out)
{
    const struct jrpcd_keys *k = opts->keys;
    if (k == NULL)
        return;
    fprintf(out, "\n[auth]\nrequired = %s\npath_prefix =%s%s\nanonymous_rate = %llu/s\n",
            k->required ? "on" : "off", k->path_prefix ? " " : "",
            k->path_prefix ? k->path_prefix : "", k->anonymous_rate);
    fprintf(out, "anonymous_burst = %llu\nkeys_file =%s%s\n",
            k->anonymous_burst ? k->anonymous_burst : k->anonymous_rate, k->keys_file ? " " : "",
            k->keys_file ? k->keys_file : "");
    for (size_t i = 0; i < k->nkeys; i++) {
        const dkey_t *d = &k->keys[i];
        /* Never the secret: its length only, so a check shows it was read. */
        fprintf(out, "\n[key %s]\nsecret = (hidden, %zu characters)\nrate = %llu/s\nburst = %llu\n",
                d->name, d->secret ? strlen(d->secret) : 0, d->rate, d->burst ? d->burst : d->rate);
        fprintf(out, "methods =%s%s\ndeny =%s%s\nmax_batch = %llu\nmax_batch_ws = %llu\n",
                d->methods ? " " : "", d->methods ? d->methods : "", d->deny ? " " : "",
                d->deny ? d->deny : "", d->max_batch, d->max_batch_ws);
        if (d->origins != NULL)
            fprintf(out, "origins = %s\n", d->origins);
    }
    if (k->ncosts != 0) {
        fprintf(out, "\n[cost]\n");
        for (size_t i = 0; i < k->ncosts; i++)
            fprintf(out, "%s = %llu\n", k->costs[i].pattern, k->costs[i].units);
    }
}

void jrpcd_keys_free(jrpcd_opts_t *opts)
{
    struct jrpcd_keys *k = opts->keys;
    if (k == NULL)
        return;
    for (size_t i = 0; i < k->nkeys; i++) {
        dkey_t *d = &k->keys[i];
        free(d->name);
        free(d->origin);
        free(d->secret);
        free(d->methods);
        free(d->deny);
        free(d->origins);
    }
    free(k->keys);
    for (size_t i = 0; i < k->ncosts; i++)
        free(k->costs[i].pattern);
    free(k->costs);
    free(k->path_prefix);
    free(k->keys_file);
    free(k);
    opts->keys = NULL;
}
