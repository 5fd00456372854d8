/* SPDX-License-Identifier: MIT */
/* log.c — the one log formatter (log.h). */
#include "log.h"

#include <stdio.h>

void jrpc__vlog(const jrpc_config_t *cfg, jrpc_log_level_t level, const char *prefix,
                const char *fmt, va_list ap)
{
    if (!jrpc__log_on(cfg, level))
        return;
    char line[JRPC__LOG_LINE];
    int n = snprintf(line, sizeof line, "%s", prefix != NULL ? prefix : "");
    if (n >= 0 && (size_t)n < sizeof line) /* a prefix that fills the line leaves no room */
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    cfg->log_cb(level, line, cfg->log_data);
}

void jrpc__log(const jrpc_config_t *cfg, jrpc_log_level_t level, const char *prefix,
               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    jrpc__vlog(cfg, level, prefix, fmt, ap);
    va_end(ap);
}
