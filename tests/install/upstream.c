/* SPDX-License-Identifier: MIT */
/* Built against an installed jrpc by tests/install.sh with `pkg-config --cflags --libs
 * jrpc-upstream` alone: the gateway's header, library and pkg-config file are installed, and a
 * program calling the gateway API links and runs. */
#include <jrpc/upstream.h>

#include <stdio.h>

int main(void)
{
    jrpc_upstream_config_t cfg;
    jrpc_upstream_config_init(&cfg);
    jrpc_server_t *srv = jrpc_server_new(NULL);
    if (srv == NULL)
        return 1;
    jrpc_upstream_url_t url = {"http://127.0.0.1:9", 1, 0};
    const char *methods[] = {"eth_*"};
    cfg.name = "eth";
    cfg.urls = &url;
    cfg.nurls = 1;
    cfg.methods = methods;
    cfg.nmethods = 1;
    jrpc_upstream_t *up = NULL;
    int rc = jrpc_upstream_add(srv, &cfg, &up);
    int registered = jrpc_method_registered(srv, "eth_*");
    printf("jrpc_upstream_add: %d, eth_* registered: %d, name: %s\n", rc, registered,
           up != NULL ? jrpc_upstream_name(up) : "-");
    jrpc_server_free(srv);
    jrpc_upstream_free(up);
    return rc == 0 && registered ? 0 : 1;
}
