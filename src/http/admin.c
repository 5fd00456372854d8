/* admin.c — what an admin listener answers (jrpc_server_admin_listen): the metrics exposition at
 * /metrics, 404 elsewhere. The RPC path, REST and WebSocket are never served here, and the public
 * listeners never answer /metrics. Further operator endpoints (health, readiness) are routed in
 * jrpc__http_admin_route below. */
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
    /* Health and readiness on the admin listener: route them here. */
    hr->status = 404;
}
