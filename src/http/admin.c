/* SPDX-License-Identifier: MIT */
/* admin.c — what an admin listener answers (jrpc_server_admin_listen): the metrics exposition at
 * /metrics, /health, /healthz and /ready as the public listeners answer them, 404 elsewhere. The
 * RPC path, REST and WebSocket are never served here, and the public listeners never answer
 * /metrics. */
#include "internal.h"

#include <string.h>

static int path_is(const char *path, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(path, lit, len) == 0;
}

void jrpc__http_admin_route(jrpc__http_conn_t *c, jrpc__http_req_t *hr, const char *path,
                            size_t path_len, int method)
{
    jrpc__loop_t *loop = c->loop;
    hr->kind = JRPC__HR_LOCAL;
    if (path_is(path, path_len, "/metrics")) {
        if (method != HTTP_GET && method != HTTP_HEAD) {
            hr->status = 405; /* answer_local says what to use */
            return;
        }
        jrpc_buf_free(&hr->out);
        if (loop->io->hooks.metrics != NULL)
            loop->io->hooks.metrics(loop, &hr->out);
        if (hr->out.err != 0) {
            hr->status = 500;
            jrpc_buf_free(&hr->out);
            return;
        }
        hr->text = 1;
        hr->status = 200;
        hr->state = JRPC__HR_READY;
        return;
    }
    /* Health and readiness answer here as on the public listeners (src/http/health.c). */
    jrpc__health_t health = jrpc__http_health_route(path, path_len);
    if (health != JRPC__HEALTH_NONE) {
        hr->health = 1;
        if (method != HTTP_GET && method != HTTP_HEAD) {
            hr->status = 405;
            return;
        }
        jrpc_buf_free(&hr->out);
        hr->status = jrpc__http_health_answer(loop->io, health, &hr->out);
        hr->state = JRPC__HR_READY;
        return;
    }
    hr->status = 404;
}
