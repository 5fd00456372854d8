/* SPDX-License-Identifier: MIT */
/* arena.c — per-request bump allocator. Chunks grow geometrically so a 1000-item batch costs a few
 * mallocs, and a request frees everything it used with one walk of the chunk list. */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* First chunk: a typical single call (envelope items, call slots, small results) fits in 4 KiB;
 * later chunks double up to 1 MiB so that big batches need few mallocs without holding much
 * slack. */
#define ARENA_FIRST 4096
#define ARENA_MAX_CHUNK (1u << 20)
/* What malloc guarantees (alignof(max_align_t) on x86-64 and aarch64): any type fits. */
#define ARENA_ALIGN 16
/* Spare bytes a cache keeps: a few 1000-item batches' worth (each uses ~0.5 MiB), a small
 * fraction of what the loop's connections may hold anyway. */
#define ARENA_CACHE_MAX (4u << 20)
/* Spare first chunks a cache keeps: about the requests a loop has alive at once under load
 * (128 KiB). A malloc and a free of the first chunk cost about 400 instructions, 3 % of a whole
 * single call. */
#define ARENA_CACHE_FIRST 32
/* Largest block: no malloc can give half the address space, and below this rounding n up to
 * ARENA_ALIGN and adding a chunk header cannot wrap around to a small size. */
#define ARENA_MAX_ALLOC (SIZE_MAX / 2)

struct jrpc__arena_chunk {
    jrpc__arena_chunk_t *next;
    size_t size; /* usable bytes after the header */
    _Alignas(ARENA_ALIGN) char data[];
};

void jrpc__arena_init(jrpc__arena_t *a)
{
    a->cache = NULL;
    a->head = NULL;
    a->pos = a->end = NULL;
    a->bytes = 0;
}

void jrpc__arena_init_cached(jrpc__arena_t *a, jrpc__arena_cache_t *cache)
{
    jrpc__arena_init(a);
    a->cache = cache;
}

static void chunks_free(jrpc__arena_chunk_t *c)
{
    while (c != NULL) {
        jrpc__arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
}

void jrpc__arena_cache_clear(jrpc__arena_cache_t *cache)
{
    chunks_free(cache->free);
    chunks_free(cache->first);
    cache->free = cache->first = NULL;
    cache->bytes = 0;
    cache->nfirst = 0;
}

/* A spare chunk of at least `size` bytes (and at most twice that, so a small request does not
 * pin a huge chunk), or NULL. */
static jrpc__arena_chunk_t *cache_take(jrpc__arena_cache_t *cache, size_t size)
{
    for (jrpc__arena_chunk_t **pp = &cache->free; *pp != NULL; pp = &(*pp)->next) {
        jrpc__arena_chunk_t *c = *pp;
        if (c->size >= size && c->size <= size * 2) {
            *pp = c->next;
            cache->bytes -= c->size;
            return c;
        }
    }
    return NULL;
}

static void *arena_grow(jrpc__arena_t *a, size_t n)
{
    size_t size = a->head ? a->head->size * 2 : ARENA_FIRST;
    if (size > ARENA_MAX_CHUNK)
        size = ARENA_MAX_CHUNK;
    if (size < n)
        size = n;
    jrpc__arena_chunk_t *c = NULL;
    if (a->cache != NULL && size == ARENA_FIRST && a->cache->first != NULL) {
        c = a->cache->first;
        a->cache->first = c->next;
        a->cache->nfirst--;
    } else if (a->cache != NULL) {
        c = cache_take(a->cache, size);
    }
    if (c == NULL) {
        c = malloc(sizeof(*c) + size);
        if (c == NULL)
            return NULL;
        c->size = size;
    }
    c->next = a->head;
    a->head = c;
    a->bytes += c->size;
    a->pos = c->data + n;
    a->end = c->data + c->size;
    return c->data;
}

void *jrpc__arena_alloc(jrpc__arena_t *a, size_t n)
{
    if (n > ARENA_MAX_ALLOC)
        return NULL;
    n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (n == 0)
        n = ARENA_ALIGN;
    if ((size_t)(a->end - a->pos) >= n) {
        void *p = a->pos;
        a->pos += n;
        return p;
    }
    return arena_grow(a, n);
}

void *jrpc__arena_realloc(jrpc__arena_t *a, void *old, size_t old_n, size_t new_n)
{
    if (new_n > ARENA_MAX_ALLOC)
        return NULL;
    size_t old_r = (old_n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    size_t new_r = (new_n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (old != NULL && (char *)old + old_r == a->pos && (size_t)(a->end - (char *)old) >= new_r) {
        a->pos = (char *)old + new_r;
        return old;
    }
    void *p = jrpc__arena_alloc(a, new_n);
    if (p != NULL && old != NULL)
        memcpy(p, old, old_n < new_n ? old_n : new_n);
    return p;
}

void jrpc__arena_free(jrpc__arena_t *a)
{
    jrpc__arena_cache_t *cache = a->cache;
    jrpc__arena_chunk_t *c = a->head;
    while (c != NULL) {
        jrpc__arena_chunk_t *next = c->next;
        if (cache != NULL && c->size == ARENA_FIRST && cache->nfirst < ARENA_CACHE_FIRST) {
            c->next = cache->first;
            cache->first = c;
            cache->nfirst++;
        } else if (cache != NULL && c->size > ARENA_FIRST &&
                   cache->bytes + c->size <= ARENA_CACHE_MAX) {
            c->next = cache->free;
            cache->free = c;
            cache->bytes += c->size;
        } else {
            free(c);
        }
        c = next;
    }
    jrpc__arena_init(a);
    a->cache = cache;
}
