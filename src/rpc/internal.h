/* internal.h — private interface of src/rpc: the method registry and the request engine that
 * takes one body (single call or batch), checks every item, runs the calls under the batch bound
 * and deadline, and hands back one response in request order. Transports (src/http, later
 * src/ws) talk to it only through jrpc__req_*. Never installed. */
#ifndef JRPC_RPC_INTERNAL_H
#define JRPC_RPC_INTERNAL_H

#include "../io/internal.h"
#include "jrpc.h"

#include <stddef.h>

/* ---- Registry: name → handler. Written before run, read-only (lock-free) afterwards. -------- */

typedef struct jrpc__method {
    char *name; /* owned, NUL-terminated; a pattern keeps its trailing '*' */
    size_t name_len;
    jrpc_method_cb cb;
    void *data;
    unsigned flags;    /* JRPC_INLINE/WORKER/ASYNC | JRPC_NO_BATCH | JRPC_UNBOUNDED */
    char *summary;     /* rpc.discover: owned or NULL */
    char *params_json; /* rpc.discover: JSON array of ContentDescriptors, owned or NULL */
    char *result_json; /* rpc.discover: one ContentDescriptor, owned or NULL */
} jrpc__method_t;

jrpc__registry_t *jrpc__registry_new(void);
void jrpc__registry_free(jrpc__registry_t *r);
/* A name ending in '*' registers a prefix pattern ("eth_*"): it serves every name with that
 * prefix that has no exact entry; the longest matching prefix wins. */
/* Internal, but exported from libjrpc.so for libjrpc_upstream.so (the gateway registers its
 * patterns and their docs through these). */
#define JRPC__SHARED __attribute__((visibility("default")))
JRPC__SHARED int jrpc__registry_add(jrpc__registry_t *r, const char *name, jrpc_method_cb cb,
                                    void *data, unsigned flags);
/* The method (or pattern) serving name[0..len), or NULL. */
const jrpc__method_t *jrpc__registry_find(const jrpc__registry_t *r, const char *name, size_t len);
/* The entry registered under exactly `name` (patterns with their '*'), for editing before run. */
JRPC__SHARED jrpc__method_t *jrpc__registry_entry(jrpc__registry_t *r, const char *name);
/* Calls fn for every entry, exact names sorted by name, then patterns. */
void jrpc__registry_each(const jrpc__registry_t *r, void (*fn)(const jrpc__method_t *m, void *arg),
                         void *arg);
/* Batch policy: names matching a deny pattern ("debug_*", or an exact name) are refused inside
 * batches like JRPC_NO_BATCH methods. */
int jrpc__registry_deny_batch(jrpc__registry_t *r, const char *pattern);
int jrpc__registry_batch_denied(const jrpc__registry_t *r, const char *name, size_t len);

/* ---- Requests ------------------------------------------------------------------------------- */

typedef struct jrpc__req jrpc__req_t;

/* The answer to a request, on the loop's thread. `body` holds the whole response body (empty:
 * nothing to answer — notifications only); the callee takes its bytes (and must jrpc_buf_free
 * them). After this the transport must not touch `req` again. */
typedef void (*jrpc__req_done_cb)(jrpc__req_t *req, jrpc_buf_t *body, void *ud);

/* Starts answering one body. `body` is malloc'd and becomes the request's: it is freed when the
 * last call of the request has replied (views into it live that long), and so is a reference to
 * `conn` (WebSocket; NULL for HTTP), so jrpc_call_conn stays valid after the client left.
 * `max_batch` is the transport's batch cap. `done` is called exactly once unless jrpc__req_detach
 * is called first; it may be called before this function returns (inline-only requests answer at
 * once), and then the returned pointer must not be used (the request may already be freed). Returns
 * the request (NULL only when out of memory, in which case body was freed and nothing is called).
 */
jrpc__req_t *jrpc__req_start(jrpc__loop_t *loop, char *body, size_t len, unsigned max_batch,
                             jrpc_conn_t *conn, jrpc__req_done_cb done, void *ud);
/* The same for REST: method[0..mlen) (copied) with the body as its params (array, object, or
 * empty for none), or with batch set, the body as a JSON array of params, one call each (cap
 * cfg.max_batch). The answer is the bare result or {"error":{…}} (an array of those for a batch),
 * and jrpc__req_status gives the HTTP status (a single call's error maps to 4xx/5xx). */
jrpc__req_t *jrpc__req_start_rest(jrpc__loop_t *loop, const char *method, size_t mlen, char *body,
                                  size_t len, int batch, jrpc_conn_t *conn, jrpc__req_done_cb done,
                                  void *ud);
/* HTTP status for the answer (200 unless a REST call failed). Valid inside `done`. */
int jrpc__req_status(const jrpc__req_t *req);
/* The transport's client is gone: `done` will not be called; calls still running complete and the
 * request frees itself after the last one. Loop thread. */
void jrpc__req_detach(jrpc__req_t *req);
/* Items in the request (1 for a single call), for logs. Valid inside `done`. */
size_t jrpc__req_items(const jrpc__req_t *req);

/* The request's number among its loop's requests: 1, 2, 3 … in the order they were started, never
 * reused; loop->req_seq is the newest. src/ws tells by it which message a subscription's answer
 * travels in. jrpc__req_seq: loop thread while the request lives; jrpc__call_req_seq: any thread
 * the call may be used on (a request outlives its calls' handlers, also past a timeout). */
uint64_t jrpc__req_seq(const jrpc__req_t *req);
uint64_t jrpc__call_req_seq(const jrpc_call_t *call);
/* The subscription `call` started (jrpc_sub_start), with a reference for the call: set by the
 * handler's thread before its reply, read by the loop when the call completes. */
void jrpc__call_set_sub(jrpc_call_t *call, jrpc_sub_t *sub);

/* A call posted back by jrpc__loop_post has replied: account for it (loop thread). */
void jrpc__call_done(jrpc_call_t *call);

/* Appends {"code":code,"message":msg[,"data":data]} to b; data is plain text to quote when
 * data_is_text, else raw JSON; data NULL leaves it out. */
void jrpc__error_body(jrpc_buf_t *b, int code, const char *msg, size_t msg_len, const char *data,
                      size_t data_len, int data_is_text);

/* Builds a complete error response for a transport-level failure (413 body cap …):
 * {"jsonrpc":"2.0","error":{"code":code,"message":msg},"id":null}. */
void jrpc__error_object(jrpc_buf_t *out, int code, const char *msg);

#endif
