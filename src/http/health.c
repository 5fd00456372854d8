/* SPDX-License-Identifier: MIT */
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

/* Appends ,"key":["name",…] for the hooks from `first` on with first's key that are not ready
 * (nothing when all are). Each hook is asked once per answer: in the pass of its key's first
 * hook. */
static void put_key(const jrpc__ready_hook_t *first, jrpc_buf_t *out)
{
    int n = 0;
    for (const jrpc__ready_hook_t *h = first; h != NULL; h = h->next) {
        if (strcmp(h->key, first->key) != 0 || h->cb(h->data))
            continue;
        if (n++ == 0) {
            jrpc_buf_append(out, ",", 1);
            jrpc_buf_json_string(out, first->key, strlen(first->key));
            jrpc_buf_append(out, ":[", 2);
        } else {
            jrpc_buf_append(out, ",", 1);
        }
        jrpc_buf_json_string(out, h->name, strlen(h->name));
    }
    if (n != 0)
        jrpc_buf_append(out, "]", 1);
}

/* Whether h is the first hook with its key. */
static int key_first(const jrpc__io_t *io, const jrpc__ready_hook_t *h)
{
    for (const jrpc__ready_hook_t *e = io->ready; e != h; e = e->next)
        if (strcmp(e->key, h->key) == 0)
            return 0;
    return 1;
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
    /* The members go after a prefix that is dropped when every hook is ready. */
    jrpc_buf_appendz(out, "{\"status\":\"unavailable\"");
    size_t prefix = out->len;
    for (const jrpc__ready_hook_t *h = io->ready; h != NULL; h = h->next)
        if (key_first(io, h))
            put_key(h, out);
    if (out->err == 0 && out->len == prefix) {
        jrpc_buf_free(out);
        jrpc_buf_appendz(out, "{\"status\":\"ok\"}");
        return 200;
    }
    jrpc_buf_append(out, "}", 1);
    return 503; /* out of memory: a bodiless 503, as the status alone must do */
}
