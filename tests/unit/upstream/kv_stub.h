/* SPDX-License-Identifier: MIT */
/* kv_stub.h — for the unit tests that include src/upstream: a server without a shared store, so
 * the response cache's Redis level stays out of the way (jrpc.h's jrpc_server_kv_*). */
#ifndef JRPC_TEST_UPSTREAM_KV_STUB_H
#define JRPC_TEST_UPSTREAM_KV_STUB_H

JRPC_EXTERN int jrpc_server_kv_shared(const jrpc_server_t *srv)
{
    (void)srv;
    return 0;
}

JRPC_EXTERN int jrpc_server_kv_get(jrpc_server_t *srv, unsigned loop, const char *key, size_t klen,
                                   jrpc_kv_cb cb, void *data)
{
    (void)srv, (void)loop, (void)key, (void)klen, (void)cb, (void)data;
    return JRPC_EINVAL;
}

JRPC_EXTERN int jrpc_server_kv_set(jrpc_server_t *srv, unsigned loop, const char *key, size_t klen,
                                   const char *val, size_t vlen, uint64_t ttl_ms, jrpc_kv_cb cb,
                                   void *data)
{
    (void)srv, (void)loop, (void)key, (void)klen, (void)val, (void)vlen, (void)ttl_ms, (void)cb;
    (void)data;
    return JRPC_EINVAL;
}

#endif
