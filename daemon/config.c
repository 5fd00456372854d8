/* SPDX-License-Identifier: MIT */
/* config.c — reads jrpcd's INI file with libinih: [server] keys through the settings table the
 * flags share, [module NAME] sections into the module list, [upstream NAME] and [batch] into the
 * gateway settings (upstream.c). Every mistake stops the daemon with FILE:LINE, because a key
 * that is silently ignored is a limit that silently isn't there. */
#include "jrpcd.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A [module NAME] section while it is being read. */
typedef struct config_module {
    char *name;
    char *path; /* NULL until its key is read */
    char *args; /* NULL: none */
    int line;   /* first line of the section seen, for errors */
} config_module_t;

/* Most [server] keys one file can set: the settings table is smaller. */
#define CONFIG_SEEN_MAX 32

typedef struct config_ctx {
    jrpcd_opts_t *opts;
    FILE *fp;
    const char *file;
    int line;      /* physical line last read */
    int indented;  /* that line began with blank space */
    int fail_line; /* line of the first error, 0: none yet */
    char *err;     /* "FILE:LINE: reason" of the first error */
    size_t cap;
    struct {
        const jrpcd_setting_t *setting;
        int line;
    } seen[CONFIG_SEEN_MAX]; /* [server] keys set so far */
    size_t nseen;
    config_module_t *modules; /* in file order */
    size_t nmodules;
} config_ctx_t;

static void config_fail(config_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void config_fail(config_ctx_t *ctx, const char *fmt, ...)
{
    if (ctx->fail_line != 0)
        return; /* keep the first */
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ctx->fail_line = ctx->line;
    snprintf(ctx->err, ctx->cap, "%s:%d: %s", ctx->file, ctx->line, msg);
}

/* The fgets-style reader inih calls. It counts lines itself, so every error can name its line,
 * refuses lines longer than inih's buffer (inih would silently read the rest as a new line), and
 * stops the parse at the first error. */
static char *config_read_line(char *str, int num, void *stream)
{
    config_ctx_t *ctx = stream;
    if (ctx->fail_line != 0 || fgets(str, num, ctx->fp) == NULL)
        return NULL;
    ctx->line++;
    ctx->indented = str[0] == ' ' || str[0] == '\t';
    size_t n = strlen(str);
    if (n > 0 && str[n - 1] != '\n') {
        int c = getc(ctx->fp);
        if (c != EOF) {
            config_fail(ctx,
                        "line longer than %d bytes (the INI parser's limit); continue a long "
                        "value on indented lines",
                        num - 2);
            return NULL;
        }
    }
    return str;
}

static int config_server_key(config_ctx_t *ctx, const char *name, const char *value)
{
    const jrpcd_setting_t *s = jrpcd_setting_find(name);
    if (s == NULL) {
        config_fail(ctx, "unknown key \"%s\" in [server] (docs/config.md lists them)", name);
        return 0;
    }
    /* listen accumulates: indented continuation lines and repeated keys add addresses. */
    if (strcmp(name, "listen") != 0) {
        for (size_t i = 0; i < ctx->nseen; i++) {
            if (ctx->seen[i].setting != s)
                continue;
            config_fail(ctx, "%s is already set on line %d%s", name, ctx->seen[i].line,
                        ctx->indented ? " (an indented line continues the key above it)" : "");
            return 0;
        }
        if (ctx->nseen < CONFIG_SEEN_MAX) {
            ctx->seen[ctx->nseen].setting = s;
            ctx->seen[ctx->nseen].line = ctx->line;
            ctx->nseen++;
        }
    }
    char why[512];
    if (jrpcd_setting_apply(ctx->opts, s, value, why, sizeof(why)) != 0) {
        config_fail(ctx, "%s: %s%s", name, why,
                    ctx->indented ? " (an indented line continues the key above it)" : "");
        return 0;
    }
    return 1;
}

static int config_module_key(config_ctx_t *ctx, const char *mod, const char *name,
                             const char *value)
{
    config_module_t *m = NULL;
    for (size_t i = 0; i < ctx->nmodules; i++)
        if (strcmp(ctx->modules[i].name, mod) == 0)
            m = &ctx->modules[i];
    if (m == NULL) {
        config_module_t *grown = realloc(ctx->modules, (ctx->nmodules + 1) * sizeof(*grown));
        if (grown == NULL)
            goto nomem;
        ctx->modules = grown;
        m = &ctx->modules[ctx->nmodules];
        *m = (config_module_t){.name = strdup(mod), .line = ctx->line};
        if (m->name == NULL)
            goto nomem;
        ctx->nmodules++;
    }

    char **slot = strcmp(name, "path") == 0   ? &m->path
                  : strcmp(name, "args") == 0 ? &m->args
                                              : NULL;
    if (slot == NULL) {
        config_fail(ctx, "unknown key \"%s\" in [module %s] (keys: path, args)", name, mod);
        return 0;
    }
    if (*slot != NULL) {
        config_fail(ctx, "%s of [module %s] is already set%s", name, mod,
                    ctx->indented ? " (an indented line continues the key above it)" : "");
        return 0;
    }
    if (slot == &m->path && value[0] == '\0') {
        config_fail(ctx, "path of [module %s] is empty", mod);
        return 0;
    }
    *slot = strdup(value);
    if (*slot == NULL)
        goto nomem;
    return 1;

nomem:
    config_fail(ctx, "out of memory");
    return 0;
}

static int config_handle(void *user, const char *section, const char *name, const char *value)
{
    config_ctx_t *ctx = user;
    if (strcmp(section, "server") == 0)
        return config_server_key(ctx, name, value);
    /* [rest] path = /rest is DESIGN.md's spelling of [server] rest_path. */
    if (strcmp(section, "rest") == 0) {
        if (strcmp(name, "path") == 0)
            return config_server_key(ctx, "rest_path", value);
        config_fail(ctx, "[rest]: unknown key \"%s\" (known: path)", name);
        return 0;
    }
    char why[512];
    if (strcmp(section, "admin") == 0) {
        if (jrpcd_admin_key(ctx->opts, name, value, why, sizeof why) != 0) {
            config_fail(ctx, "[admin] %s: %s", name, why);
            return 0;
        }
        return 1;
    }
    if (strcmp(section, "redis") == 0) {
        if (jrpcd_redis_key(ctx->opts, name, value, why, sizeof why) != 0) {
            config_fail(ctx, "[redis] %s: %s", name, why);
            return 0;
        }
        return 1;
    }
    if (strcmp(section, "batch") == 0) {
        if (strcmp(name, "allow") == 0) {
            if (jrpcd_batch_allow_add(ctx->opts, value, why, sizeof why) != 0) {
                config_fail(ctx, "[batch] allow: %s", why);
                return 0;
            }
            return 1;
        }
        if (strcmp(name, "deny") != 0) {
            config_fail(ctx, "[batch]: unknown key \"%s\" (known: deny, allow)", name);
            return 0;
        }
        if (jrpcd_batch_deny_add(ctx->opts, value, why, sizeof why) != 0) {
            config_fail(ctx, "[batch] deny: %s", why);
            return 0;
        }
        return 1;
    }

    if (strcmp(section, "auth") == 0) {
        if (jrpcd_auth_key(ctx->opts, name, value, ctx->opts->config_dir, why, sizeof why) != 0) {
            config_fail(ctx, "[auth] %s: %s", name, why);
            return 0;
        }
        return 1;
    }
    if (strcmp(section, "cost") == 0) {
        if (jrpcd_cost_key(ctx->opts, name, value, why, sizeof why) != 0) {
            config_fail(ctx, "[cost] %s: %s", name, why);
            return 0;
        }
        return 1;
    }

    /* The first word of the section names its kind: [module tennis], [upstream eth]. */
    size_t kind_len = strcspn(section, " \t");
    const char *arg = section + kind_len + strspn(section + kind_len, " \t");
    if (kind_len == 6 && strncmp(section, "module", 6) == 0) {
        if (arg[0] == '\0') {
            config_fail(ctx, "[module] needs a name: [module NAME]");
            return 0;
        }
        return config_module_key(ctx, arg, name, value);
    }
    if (kind_len == 3 && strncmp(section, "key", 3) == 0) {
        if (arg[0] == '\0') {
            config_fail(ctx, "[key] needs a name: [key NAME]");
            return 0;
        }
        char origin[512];
        snprintf(origin, sizeof origin, "%s:%d", ctx->file, ctx->line);
        if (jrpcd_key_key(ctx->opts, arg, name, value, origin, why, sizeof why) != 0) {
            config_fail(ctx, "[key %s] %s: %s", arg, name, why);
            return 0;
        }
        return 1;
    }
    if (kind_len == 8 && strncmp(section, "upstream", 8) == 0) {
        if (arg[0] == '\0') {
            config_fail(ctx, "[upstream] needs a name: [upstream NAME]");
            return 0;
        }
        char origin[512];
        snprintf(origin, sizeof origin, "%s:%d", ctx->file, ctx->line);
        if (jrpcd_upstream_key(ctx->opts, arg, name, value, origin, why, sizeof why) != 0) {
            config_fail(ctx, "[upstream %s] %s: %s%s", arg, name, why,
                        ctx->indented ? " (an indented line continues the key above it)" : "");
            return 0;
        }
        return 1;
    }
    if (kind_len == 5 && strncmp(section, "cache", 5) == 0) {
        if (jrpcd_cache_key(ctx->opts, arg, name, value, why, sizeof why) != 0) {
            config_fail(ctx, "[%s] %s: %s", section, name, why);
            return 0;
        }
        return 1;
    }
    if (section[0] == '\0')
        config_fail(ctx, "\"%s\" is outside any section (put it under [server])", name);
    else
        config_fail(
            ctx,
            "unknown section [%s] (known: [server], [rest], [batch], [admin], [auth], [cost], "
            "[redis], [cache], [cache ttl], [module NAME], [upstream NAME], [key NAME])",
            section);
    return 0;
}

int jrpcd_config_load(jrpcd_opts_t *opts, char *err, size_t cap)
{
    config_ctx_t ctx = {.opts = opts, .file = opts->config_file, .err = err, .cap = cap};
    int rc = -1;

    ctx.fp = fopen(opts->config_file, "r");
    if (ctx.fp == NULL) {
        snprintf(err, cap, "cannot read config %s: %s", opts->config_file, strerror(errno));
        goto done;
    }
    int line = ini_parse_stream(config_read_line, &ctx, config_handle, &ctx);
    if (line > 0 && (ctx.fail_line == 0 || line < ctx.fail_line)) {
        /* inih's own verdict: a line that is neither [section], key = value nor a comment. */
        snprintf(err, cap, "%s:%d: expected [section], key = value or a ; comment",
                 opts->config_file, line);
        goto done;
    }
    if (line < 0 && ctx.fail_line == 0) {
        snprintf(err, cap, "%s: the INI parser failed (%d)", opts->config_file, line);
        goto done;
    }
    if (ctx.fail_line != 0)
        goto done;
    if (ferror(ctx.fp)) {
        snprintf(err, cap, "cannot read config %s", opts->config_file);
        goto done;
    }

    if (jrpcd_upstreams_check(opts, err, cap) != 0)
        goto done;
    for (size_t i = 0; i < ctx.nmodules; i++) {
        config_module_t *m = &ctx.modules[i];
        char origin[512];
        snprintf(origin, sizeof(origin), "%s:%d", opts->config_file, m->line);
        if (m->path == NULL) {
            snprintf(err, cap, "%s: [module %s] has no path", origin, m->name);
            goto done;
        }
        if (jrpcd_opts_add_module(opts, m->name, m->path, m->args, opts->config_dir, origin, err,
                                  cap) != 0)
            goto done;
    }
    rc = 0;

done:
    for (size_t i = 0; i < ctx.nmodules; i++) {
        free(ctx.modules[i].name);
        free(ctx.modules[i].path);
        free(ctx.modules[i].args);
    }
    free(ctx.modules);
    if (ctx.fp != NULL)
        fclose(ctx.fp);
    return rc;
}
