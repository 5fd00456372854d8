/* internal.h — private interface of src/rpc: the method registry and the request engine that
 * takes one body (single call or batch), checks every item, runs the calls under the batch bound
 * and deadline, and hands back one response in request order. Transports (src/http, later
 * src/ws) talk to it only through jrpc__req_*. Never installed. */
#ifndef JRPC_RPC_INTERNAL_H
#define JRPC_RPC_INTERNAL_H

#include "jrpc.h"
#include "../io/internal.h"

#include <stddef.h>

/* ---- Registry: name → handler. Written before run, read-only (lock-free) afterwards. -------- */

typedef struct jrpc__method {
    char *name;           /* owned, NUL-terminated */
    size_t name_len;
    jrpc_method_cb cb;
    void *data;
    unsigned flags;       /* JRPC_INLINE/WORKER/ASYNC | JRPC_NO_BATCH */
} jrpc__method_t;

jrpc__registry_t *jrpc__registry_new(void);
void jrpc__registry_free(jrpc__registry_t *r);
int jrpc__registry_add(jrpc__registry_t *r, const char *name, jrpc_method_cb cb, void *data,
                       unsigned flags);
/* The method called name[0..len), or NULL. */
const jrpc__method_t *jrpc__registry_find(const jrpc__registry_t *r, const char *name, size_t len);
size_t jrpc__registry_count(const jrpc__registry_t *r);

/* ---- Requests ------------------------------------------------------------------------------- */

typedef struct jrpc__req jrpc__req_t;

/* The answer to a request, on the loop's thread. `body` holds the whole response body (empty:
 * nothing to answer — notifications only); the callee takes its bytes (and must jrpc_buf_free
 * them). After this the transport must not touch `req` again. */
typedef void (*jrpc__req_done_cb)(jrpc__req_t *req, jrpc_buf_t *body, void *ud);

/* Starts answering one body. `body` is malloc'd and becomes the request's: it is freed when the
 * last call of the request has replied (views into it live that long). `max_batch` is the
 * transport's batch cap. `done` is called exactly once unless jrpc__req_detach is called first;
 * it may be called before this function returns (inline-only requests answer at once), and then
 * the returned pointer must not be used (the request may already be freed). Returns the request
 * (NULL only when out of memory, in which case body was freed and nothing is called). */
jrpc__req_t *jrpc__req_start(jrpc__loop_t *loop, char *body, size_t len, unsigned max_batch,
                             jrpc__req_done_cb done, void *ud);
/* The transport's client is gone: `done` will not be called; calls still running complete and the
 * request frees itself after the last one. Loop thread. */
void jrpc__req_detach(jrpc__req_t *req);
/* Items in the request (1 for a single call), for logs. Valid inside `done`. */
size_t jrpc__req_items(const jrpc__req_t *req);

/* A call posted back by jrpc__loop_post has replied: account for it (loop thread). */
void jrpc__call_done(jrpc_call_t *call);

/* Builds a complete error response for a transport-level failure (413 body cap …):
 * {"jsonrpc":"2.0","error":{"code":code,"message":msg},"id":null}. */
void jrpc__error_object(jrpc_buf_t *out, int code, const char *msg);

#endif
