/* SPDX-License-Identifier: MIT */
/* admit.c — connection caps: at most max_connections open at once on the whole server and at
 * most max_connections_per_ip from one client address. Counting spans every io loop (the kernel
 * spreads one client's connections over the SO_REUSEPORT sockets), so the total is an atomic and
 * the per-address counts sit in a small open-addressing table under a mutex, touched only at
 * accept and close — never on the request path. */
#include "../util/hash.h"
#include "internal.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

struct jrpc__admit_table {
    uv_mutex_t lock;
    struct admit_entry {
        unsigned char key[16]; /* IPv4 as ::ffff:a.b.c.d, so both families share one table */
        unsigned count;        /* 0: empty slot */
        unsigned char used;    /* slot was ever used (keeps probe chains intact) */
    } * v;
    size_t cap;  /* power of two */
    size_t live; /* slots with count > 0 */
    size_t used; /* slots with used set */
};

static size_t admit_hash(const unsigned char key[16])
{
    return (size_t)jrpc__hash_str(key, 16);
}

static struct admit_entry *admit_find(struct jrpc__admit_table *t, const unsigned char key[16],
                                      int insert)
{
    size_t i = admit_hash(key) & (t->cap - 1);
    struct admit_entry *free_slot = NULL;
    for (size_t n = 0; n < t->cap; n++, i = (i + 1) & (t->cap - 1)) {
        struct admit_entry *e = &t->v[i];
        if (!e->used) {
            if (!insert)
                return NULL;
            return free_slot != NULL ? free_slot : e;
        }
        if (e->count > 0 && memcmp(e->key, key, 16) == 0)
            return e;
        if (e->count == 0 && free_slot == NULL)
            free_slot = e;
    }
    return insert ? free_slot : NULL;
}

/* Rebuilds the table at a size that keeps it under half full (dropping dead slots). */
static int admit_rehash(struct jrpc__admit_table *t, size_t cap)
{
    struct admit_entry *old = t->v;
    size_t old_cap = t->cap;
    struct admit_entry *v = calloc(cap, sizeof(*v));
    if (v == NULL)
        return JRPC_ENOMEM;
    t->v = v;
    t->cap = cap;
    t->used = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].count > 0) {
            struct admit_entry *e = admit_find(t, old[i].key, 1);
            *e = old[i];
            t->used++;
        }
    }
    free(old);
    return 0;
}

jrpc__admit_table_t *jrpc__admit_table_new(void)
{
    jrpc__admit_table_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->cap = 64;
    t->v = calloc(t->cap, sizeof(*t->v));
    if (t->v == NULL) {
        free(t);
        return NULL;
    }
    uv_mutex_init(&t->lock);
    return t;
}

void jrpc__admit_table_free(jrpc__admit_table_t *t)
{
    if (t == NULL)
        return;
    uv_mutex_destroy(&t->lock);
    free(t->v);
    free(t);
}

/* Counts one more under key unless it holds max_connections_per_ip already. */
static int admit_key_take(jrpc__io_t *io, const unsigned char key[16])
{
    const jrpc_config_t *cfg = io->cfg;
    jrpc__admit_table_t *t = io->admit;
    int rc = 0;
    uv_mutex_lock(&t->lock);
    if ((t->used + 1) * 2 > t->cap && admit_rehash(t, t->live * 4 > 64 ? t->live * 4 : 64) != 0) {
        rc = JRPC_ENOMEM;
    } else {
        struct admit_entry *e = admit_find(t, key, 1);
        if (e->count >= cfg->max_connections_per_ip) {
            rc = JRPC_ERANGE;
        } else {
            if (e->count == 0) {
                memcpy(e->key, key, 16);
                t->live++;
                if (!e->used)
                    t->used++;
                e->used = 1;
            }
            e->count++;
        }
    }
    uv_mutex_unlock(&t->lock);
    if (rc != 0)
        atomic_fetch_add(&io->refused_per_ip, 1);
    return rc;
}

static void admit_key_give(jrpc__io_t *io, const unsigned char key[16])
{
    jrpc__admit_table_t *t = io->admit;
    uv_mutex_lock(&t->lock);
    struct admit_entry *e = admit_find(t, key, 0);
    if (e != NULL && --e->count == 0)
        t->live--;
    uv_mutex_unlock(&t->lock);
}

int jrpc__admit(jrpc__io_t *io, uv_tcp_t *tcp, jrpc__admit_t *a)
{
    const jrpc_config_t *cfg = io->cfg;
    memset(a, 0, sizeof(*a));
    unsigned total = (unsigned)atomic_fetch_add(&io->nconns_total, 1) + 1;
    if (cfg->max_connections != 0 && total > cfg->max_connections) {
        atomic_fetch_sub(&io->nconns_total, 1);
        atomic_fetch_add(&io->refused_total, 1);
        return JRPC_ERANGE;
    }
    a->counted = 1;
    if (cfg->max_connections_per_ip == 0 && io->ntrusted == 0)
        return 0;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0)
        return 0; /* no address (a unix socket in tests): only the total applies */
    jrpc__addr_key((const struct sockaddr *)&ss, a->key);
    /* A proxy's connections carry many clients: each of its requests is counted under the
     * client it names instead (jrpc__admit_ip, from src/http). */
    if (io->ntrusted != 0 && jrpc__cidr_match(io->trusted, io->ntrusted, a->key)) {
        a->proxied = 1;
        return 0;
    }
    if (cfg->max_connections_per_ip == 0)
        return 0;
    int rc = admit_key_take(io, a->key);
    if (rc != 0) {
        jrpc__unadmit(io, a);
        return rc;
    }
    a->per_ip = 1;
    return 0;
}

int jrpc__admit_ip(jrpc__io_t *io, const unsigned char key[16])
{
    return admit_key_take(io, key);
}

void jrpc__unadmit_ip(jrpc__io_t *io, const unsigned char key[16])
{
    admit_key_give(io, key);
}

void jrpc__unadmit(jrpc__io_t *io, jrpc__admit_t *a)
{
    if (a->per_ip)
        admit_key_give(io, a->key);
    if (a->counted)
        atomic_fetch_sub(&io->nconns_total, 1);
    memset(a, 0, sizeof(*a));
}
