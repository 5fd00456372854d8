/* arena.h — per-request bump allocator: everything one request needs is freed in one go when its
 * response is written (nginx pools, h2o's mem pool). Not thread-safe: one owner thread. */
#ifndef JRPC_UTIL_ARENA_H
#define JRPC_UTIL_ARENA_H

#include <stddef.h>

typedef struct jrpc__arena_chunk jrpc__arena_chunk_t;

typedef struct jrpc__arena {
    jrpc__arena_chunk_t *head; /* newest chunk first */
    char *pos;                 /* next free byte in head */
    char *end;                 /* one past head's last byte */
} jrpc__arena_t;

void jrpc__arena_init(jrpc__arena_t *a);
/* n bytes aligned for any type, or NULL when out of memory. Freed by jrpc__arena_free only. */
void *jrpc__arena_alloc(jrpc__arena_t *a, size_t n);
/* Grows the block `old` of old_n bytes (the most recent allocation grows in place) to new_n. */
void *jrpc__arena_realloc(jrpc__arena_t *a, void *old, size_t old_n, size_t new_n);
void jrpc__arena_free(jrpc__arena_t *a);

#endif
