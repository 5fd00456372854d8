/* SPDX-License-Identifier: MIT */
/* An out-of-tree module, built by tests/install.sh with `pkg-config --cflags --libs jrpc` against
 * an installed jrpc and loaded by the installed jrpcd: the installed header and pkg-config file
 * are all a module author needs. */
#include <jrpc.h>

static void hello(jrpc_call_t *call, void *data)
{
    (void)data;
    jrpc_reply_raw(call, "\"hello from an installed jrpc\"", 30);
}

JRPC_EXTERN int jrpc_module_init(jrpc_server_t *srv, const char *args);

int jrpc_module_init(jrpc_server_t *srv, const char *args)
{
    (void)args;
    return jrpc_method_add(srv, "outoftree@hello", hello, NULL, JRPC_INLINE);
}
