/* SPDX-License-Identifier: MIT */
/* log.h — the one formatter for the library's log lines (HTTP access lines, WebSocket events, the
 * gateway's upstream events): a prefix naming who speaks and a printf-style message, cut to one
 * line of JRPC__LOG_LINE bytes (never split), handed to the configuration's log_cb when `level`
 * passes log_level. Any thread: it only formats on the stack and calls log_cb, whose contract
 * (jrpc.h) says it may be called from any io thread. */
#ifndef JRPC_UTIL_LOG_H
#define JRPC_UTIL_LOG_H

#include "jrpc.h"

#include <stdarg.h>

/* Longest line: a client address, a proxy's, a cut URL, a cut User-Agent, the first method names
 * and the counters of an access line in JSON (about 600 bytes at most), or an upstream URL with
 * curl's reason, fit; a longer one is cut, not split. */
#define JRPC__LOG_LINE 1024

/* Whether a line at `level` would be written (to skip building what would be dropped). */
static inline int jrpc__log_on(const jrpc_config_t *cfg, jrpc_log_level_t level)
{
    return cfg->log_cb != NULL && level <= cfg->log_level;
}

__attribute__((format(printf, 4, 5))) void jrpc__log(const jrpc_config_t *cfg,
                                                     jrpc_log_level_t level, const char *prefix,
                                                     const char *fmt, ...);
__attribute__((format(printf, 4, 0))) void jrpc__vlog(const jrpc_config_t *cfg,
                                                      jrpc_log_level_t level, const char *prefix,
                                                      const char *fmt, va_list ap);

#endif
