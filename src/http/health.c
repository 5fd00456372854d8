/* health.c — the answers of GET /health (the process serves: liveness) and GET /ready (a load
 * balancer may send it traffic: readiness), made here from what the server knows at once (a
 * drain asked, the readiness hooks), so a check every second or two costs no engine request. */
#include "internal.h"

#include <string.h>

jrpc__health_t jrpc__http_health_route(const char *path, size_t len)
{
    if ((len == 7 && memcmp(path, "/health", 7) == 0) ||
        (len == 8 && memcmp(path, "/healthz", 8) == 0))
        return JRPC__HEALTH_LIVE;
    if (len == 6 && memcmp(path, "/ready", 6) == 0)
        return JRPC__HEALTH_READY;
    return JRPC__HEALTH_NONE;
}

/* Appends ,"key":["name",…] for every hook with h's key that is not ready, once per key (at its
 * first hook); h itself is not ready. */
static void put_not_ready(jrpc__io_t *io, const jrpc__ready_hook_t *h, jrpc_buf_t *out)
{
    for (const jrpc__ready_hook_t *e = io->ready; e != h; e = e->next)
        if (strcmp(e->key, h->key) == 0 && !e->cb(e->data))
            return; /* listed with that earlier hook */
    jrpc_buf_append(out, ",", 1);
    jrpc_buf_json_string(out, h->key, strlen(h->key));
    jrpc_buf_append(out, ":[", 2);
    const char *sep = "";
    for (const jrpc__ready_hook_t *e = h; e != NULL; e = e->next) {
        if (strcmp(e->key, h->key) != 0 || (e != h && e->cb(e->data)))
            continue;
        jrpc_buf_appendz(out, sep);
        jrpc_buf_json_string(out, e->name, strlen(e->name));
        sep = ",";
    }
    jrpc_buf_append(out, "]", 1);
}

unsigned jrpc__http_health_answer(jrpc__io_t *io, jrpc__health_t which, jrpc_buf_t *out)
{
    jrpc_buf_free(out);
    if (which == JRPC__HEALTH_LIVE) {
        jrpc_buf_appendz(out, "{\"status\":\"ok\"}");
        return 200;
    }
    if (jrpc__io_draining(io)) {
        jrpc_buf_appendz(out, "{\"status\":\"draining\"}");
        return 503;
    }
    unsigned status = 200;
    for (const jrpc__ready_hook_t *h = io->ready; h != NULL; h = h->next) {
        if (h->cb(h->data))
            continue;
        if (status == 200)
            jrpc_buf_appendz(out, "{\"status\":\"unavailable\"");
        status = 503;
        put_not_ready(io, h, out);
    }
    jrpc_buf_appendz(out, status == 200 ? "{\"status\":\"ok\"}" : "}");
    return status;
}
