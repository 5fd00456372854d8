/* registry.c — the method table: name → handler and flags. Filled before the server runs, then
 * only read (by every io thread at once, so it takes no locks). Open addressing with FNV-1a:
 * one hash and usually one compare per lookup, names of any shape ("tennis@ping",
 * "events.stethEvents.getLastRebaseEvent"). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct jrpc__registry {
    jrpc__method_t *slots; /* cap entries; name == NULL marks an empty slot */
    size_t cap;            /* power of two */
    size_t count;
};

static uint64_t hash_name(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

jrpc__registry_t *jrpc__registry_new(void)
{
    jrpc__registry_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->cap = 64;
    r->slots = calloc(r->cap, sizeof(*r->slots));
    if (r->slots == NULL) {
        free(r);
        return NULL;
    }
    return r;
}

void jrpc__registry_free(jrpc__registry_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->cap; i++)
        free(r->slots[i].name);
    free(r->slots);
    free(r);
}

static jrpc__method_t *registry_slot(jrpc__method_t *slots, size_t cap, const char *name,
                                     size_t len)
{
    size_t i = (size_t)hash_name(name, len) & (cap - 1);
    for (;;) {
        jrpc__method_t *m = &slots[i];
        if (m->name == NULL || (m->name_len == len && memcmp(m->name, name, len) == 0))
            return m;
        i = (i + 1) & (cap - 1);
    }
}

static int registry_grow(jrpc__registry_t *r)
{
    size_t cap = r->cap * 2;
    jrpc__method_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return JRPC_ENOMEM;
    for (size_t i = 0; i < r->cap; i++) {
        jrpc__method_t *m = &r->slots[i];
        if (m->name != NULL)
            *registry_slot(slots, cap, m->name, m->name_len) = *m;
    }
    free(r->slots);
    r->slots = slots;
    r->cap = cap;
    return 0;
}

int jrpc__registry_add(jrpc__registry_t *r, const char *name, jrpc_method_cb cb, void *data,
                       unsigned flags)
{
    if (name == NULL || name[0] == '\0' || cb == NULL || (flags & 0xff) > JRPC_ASYNC ||
        (flags & ~(0xffu | JRPC_NO_BATCH)) != 0)
        return JRPC_EINVAL;
    size_t len = strlen(name);
    /* Keep the load factor under 1/2 so probes stay short. */
    if ((r->count + 1) * 2 > r->cap && registry_grow(r) != 0)
        return JRPC_ENOMEM;
    jrpc__method_t *m = registry_slot(r->slots, r->cap, name, len);
    if (m->name != NULL)
        return JRPC_EEXIST;
    m->name = strdup(name);
    if (m->name == NULL)
        return JRPC_ENOMEM;
    m->name_len = len;
    m->cb = cb;
    m->data = data;
    m->flags = flags;
    r->count++;
    return 0;
}

const jrpc__method_t *jrpc__registry_find(const jrpc__registry_t *r, const char *name, size_t len)
{
    const jrpc__method_t *m = registry_slot(r->slots, r->cap, name, len);
    return m->name != NULL ? m : NULL;
}

size_t jrpc__registry_count(const jrpc__registry_t *r)
{
    return r->count;
}
