/* SPDX-License-Identifier: MIT */
/* arena.h — per-request bump allocator: everything one request needs is freed in one go when its
 * response is written (nginx pools, h2o's mem pool). Not thread-safe: one owner thread. */
#ifndef JRPC_UTIL_ARENA_H
#define JRPC_UTIL_ARENA_H

#include <stddef.h>

typedef struct jrpc__arena_chunk jrpc__arena_chunk_t;

/* Chunks kept for reuse by the arenas of one thread (an io loop), so that big batches do not
 * map and unmap fresh memory on every request. */
typedef struct jrpc__arena_cache {
    jrpc__arena_chunk_t *free;  /* spare chunks past the first size */
    size_t bytes;               /* their total size */
    jrpc__arena_chunk_t *first; /* spare first chunks: every request takes one */
    unsigned nfirst;            /* how many */
} jrpc__arena_cache_t;

typedef struct jrpc__arena {
    jrpc__arena_cache_t *cache; /* where chunks come from and go back to, or NULL */
    jrpc__arena_chunk_t *head;  /* newest chunk first */
    char *pos;                  /* next free byte in head */
    char *end;                  /* one past head's last byte */
    size_t bytes;               /* usable bytes of every chunk: what the arena holds */
} jrpc__arena_t;

void jrpc__arena_init(jrpc__arena_t *a);
/* An arena that takes chunks from, and returns them to, `cache` (same thread only). */
void jrpc__arena_init_cached(jrpc__arena_t *a, jrpc__arena_cache_t *cache);
/* Frees the spare chunks of a cache. */
void jrpc__arena_cache_clear(jrpc__arena_cache_t *cache);
/* n bytes aligned for any type, or NULL when out of memory. Freed by jrpc__arena_free only. */
void *jrpc__arena_alloc(jrpc__arena_t *a, size_t n);
/* Grows the block `old` of old_n bytes (the most recent allocation grows in place) to new_n. */
void *jrpc__arena_realloc(jrpc__arena_t *a, void *old, size_t old_n, size_t new_n);
void jrpc__arena_free(jrpc__arena_t *a);

#endif
