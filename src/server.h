/* SPDX-License-Identifier: MIT */
/* server.h — the server object's fields, for src/server.c and the in-process tests that drive
 * its loops by hand. Nothing under src/ includes it. Never installed. */
#ifndef JRPC_SERVER_H
#define JRPC_SERVER_H

#include "io/internal.h"
#include "rpc/internal.h"

/* An extension's metrics hook (jrpc_server_metrics_hook), in registration order. */
typedef struct jrpc__metrics_ext {
    struct jrpc__metrics_ext *next;
    jrpc_metrics_cb cb;
    void *data;
} jrpc__metrics_ext_t;

struct jrpc_server {
    jrpc_config_t cfg;            /* copy; cfg.path and cfg.rest_path point at the copies below */
    char *path;                   /* owned copy of cfg.path */
    char *rest_path;              /* owned copy of cfg.rest_path ("" = off) */
    char *hosts;                  /* owned cfg.hosts: as given, or the default list and the names of
                                     loopback listen addresses (hosts_default) */
    char *cors_origins;           /* owned copy of cfg.cors_origins ("" = none) */
    char *trusted_proxies;        /* owned copy of cfg.trusted_proxies ("" = none) */
    char *redis_url;              /* owned copy of cfg.redis_url (NULL: budgets per process) */
    int hosts_default;            /* cfg.hosts was NULL or "": listen adds loopback names */
    jrpc__io_t io;                /* loops, listeners, caps, worker pool */
    struct jrpc__reconf *reconfs; /* configurations set by jrpc_server_reconfigure, newest
                                     first: kept until the server is freed, as connections,
                                     requests and other threads may still read an older one */
    uv_mutex_t reconf_lock;       /* one reconfigure at a time */
    jrpc__engine_t engine;        /* registry and rpc.discover */
    jrpc__metrics_ext_t *metrics_exts; /* extensions' series (owned) */
    const char **labels;               /* method label texts, by label (metrics.c; owned array) */
    unsigned nlabels;
};

/* metrics.c: io's metrics hook (the exposition of one scrape); the method labels, numbered when
 * run starts (0 or JRPC_ENOMEM); what the metrics hold, freed with the server. */
void jrpc__metrics_render(jrpc__loop_t *loop, jrpc_buf_t *out);
int jrpc__metrics_prepare(jrpc_server_t *srv);
void jrpc__metrics_free(jrpc_server_t *srv);

#endif
