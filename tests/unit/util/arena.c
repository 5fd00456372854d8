/* SPDX-License-Identifier: MIT */
/* Unit tests of the per-request bump allocator (src/util/arena.c): alignment and disjointness of
 * what it hands out, chunk growth (doubling to a cap), allocations bigger than any chunk, sizes
 * that cannot be met, realloc in place and by copy, the per-loop chunk cache (which chunks it
 * keeps, which it gives back, its byte cap), and free. Includes the .c to see the chunk list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four headers it needs */

#include <stdlib.h>
#include <string.h>

#include "util/arena.c"

/* Chunks in the arena's list, newest first, into sizes[] (at most cap); returns the count. */
static size_t chunk_sizes(const jrpc__arena_t *a, size_t *sizes, size_t cap)
{
    size_t n = 0;
    for (const jrpc__arena_chunk_t *c = a->head; c != NULL; c = c->next) {
        if (n < cap)
            sizes[n] = c->size;
        n++;
    }
    return n;
}

static size_t cache_chunks(const jrpc__arena_cache_t *cache)
{
    size_t n = 0, bytes = 0;
    for (const jrpc__arena_chunk_t *c = cache->free; c != NULL; c = c->next) {
        n++;
        bytes += c->size;
    }
    assert_int_equal(bytes, cache->bytes);
    return n;
}

/* The byte every allocation i is filled with, so overlaps show as a wrong byte. */
static unsigned char fill_of(size_t i)
{
    return (unsigned char)(0x41 + i % 61);
}

/* ---- Alignment and disjointness -------------------------------------------------------------- */

static void test_alignment(void **state)
{
    (void)state;
    enum { N = 600 };
    jrpc__arena_t a;
    jrpc__arena_init(&a);
    assert_null(a.head);
    static char *p[N];
    static size_t len[N];
    for (size_t i = 0; i < N; i++) {
        len[i] = (i * 7919) % 173; /* 0 … 172, in no order */
        p[i] = jrpc__arena_alloc(&a, len[i]);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] % ARENA_ALIGN, 0);
        assert_int_equal((uintptr_t)p[i] % _Alignof(max_align_t), 0);
        memset(p[i], fill_of(i), len[i]);
    }
    /* Nothing written later overwrote anything written earlier. */
    for (size_t i = 0; i < N; i++)
        for (size_t k = 0; k < len[i]; k++)
            assert_int_equal((unsigned char)p[i][k], fill_of(i));
    /* A zero-byte allocation still gets a block of its own. */
    char *z1 = jrpc__arena_alloc(&a, 0), *z2 = jrpc__arena_alloc(&a, 0);
    assert_non_null(z1);
    assert_non_null(z2);
    assert_ptr_not_equal(z1, z2);
    jrpc__arena_free(&a);
    assert_null(a.head);
    assert_null(a.pos);
    assert_null(a.end);
}

/* Consecutive small allocations are packed: rounded up to ARENA_ALIGN, no header between. */
static void test_bump_packing(void **state)
{
    (void)state;
    jrpc__arena_t a;
    jrpc__arena_init(&a);
    char *p1 = jrpc__arena_alloc(&a, 1);
    char *p2 = jrpc__arena_alloc(&a, 17);
    char *p3 = jrpc__arena_alloc(&a, 16);
    char *p4 = jrpc__arena_alloc(&a, 3);
    assert_ptr_equal(p2, p1 + 16);
    assert_ptr_equal(p3, p2 + 32);
    assert_ptr_equal(p4, p3 + 16);
    assert_ptr_equal(a.pos, p4 + 16);
    assert_ptr_equal(p1, a.head->data);
    jrpc__arena_free(&a);
}

/* ---- Growth ---------------------------------------------------------------------------------- */

static void test_growth_past_a_chunk(void **state)
{
    (void)state;
    jrpc__arena_t a;
    jrpc__arena_init(&a);
    size_t sizes[64];
    /* The first chunk holds exactly ARENA_FIRST bytes of 16-byte blocks. */
    char *first = jrpc__arena_alloc(&a, 16);
    jrpc__arena_chunk_t *head = a.head;
    assert_int_equal(head->size, ARENA_FIRST);
    for (size_t i = 1; i < ARENA_FIRST / 16; i++)
        assert_ptr_equal(jrpc__arena_alloc(&a, 16), first + 16 * i);
    assert_ptr_equal(a.pos, a.end);
    assert_ptr_equal(a.head, head);
    /* One more starts a second chunk, twice as big, newest first. */
    char *next = jrpc__arena_alloc(&a, 16);
    assert_ptr_not_equal(a.head, head);
    assert_ptr_equal(next, a.head->data);
    assert_int_equal(chunk_sizes(&a, sizes, 64), 2);
    assert_int_equal(sizes[0], 2 * ARENA_FIRST);
    assert_int_equal(sizes[1], ARENA_FIRST);
    /* A block that does not fit what is left starts a new chunk; the rest is abandoned. */
    char *big = jrpc__arena_alloc(&a, 2 * ARENA_FIRST);
    assert_ptr_equal(big, a.head->data);
    assert_int_equal(chunk_sizes(&a, sizes, 64), 3);
    assert_int_equal(sizes[0], 4 * ARENA_FIRST);
    jrpc__arena_free(&a);
}

/* Chunks double up to ARENA_MAX_CHUNK and then stay there. */
static void test_growth_caps(void **state)
{
    (void)state;
    jrpc__arena_t a;
    jrpc__arena_init(&a);
    size_t sizes[64];
    /* Each allocation is a whole chunk of the size the next chunk will have. */
    size_t want = ARENA_FIRST;
    for (size_t i = 0; i < 12; i++) {
        char *p = jrpc__arena_alloc(&a, want);
        assert_non_null(p);
        memset(p, (int)i, want);
        assert_ptr_equal(a.pos, a.end);
        if (want < ARENA_MAX_CHUNK)
            want *= 2;
    }
    size_t n = chunk_sizes(&a, sizes, 64);
    assert_int_equal(n, 12);
    /* Newest first: 1 MiB × 4, then 512 KiB … 4 KiB. */
    for (size_t i = 0; i < n; i++) {
        size_t age = n - 1 - i; /* 0 for the first chunk */
        size_t expect = (size_t)ARENA_FIRST << age;
        if (expect > ARENA_MAX_CHUNK)
            expect = ARENA_MAX_CHUNK;
        assert_int_equal(sizes[i], expect);
    }
    jrpc__arena_free(&a);
}

/* A block bigger than the chunk cap gets a chunk of exactly its size; the arena goes on. */
static void test_big_allocation(void **state)
{
    (void)state;
    jrpc__arena_t a;
    jrpc__arena_init(&a);
    size_t sizes[8];
    char *small = jrpc__arena_alloc(&a, 10);
    memcpy(small, "0123456789", 10);
    size_t big_n = 3 * (size_t)ARENA_MAX_CHUNK + 5;
    char *big = jrpc__arena_alloc(&a, big_n);
    assert_non_null(big);
    assert_int_equal((uintptr_t)big % ARENA_ALIGN, 0);
    memset(big, 0xab, big_n);
    assert_int_equal(chunk_sizes(&a, sizes, 8), 2);
    assert_int_equal(sizes[0], (big_n + 15) & ~(size_t)15);
    assert_ptr_equal(a.pos, a.end);
    /* The next small block comes from a new chunk of the capped size, not after the big one. */
    char *after = jrpc__arena_alloc(&a, 8);
    assert_int_equal(chunk_sizes(&a, sizes, 8), 3);
    assert_int_equal(sizes[0], ARENA_MAX_CHUNK);
    assert_ptr_equal(after, a.head->data);
    assert_memory_equal(small, "0123456789", 10);
    assert_int_equal((unsigned char)big[big_n - 1], 0xab);
    jrpc__arena_free(&a);
}

/* Sizes no allocation can meet fail with NULL, and rounding them up must not wrap to a small
 * block. */
static void test_impossible_sizes(void **state)
{
    (void)state;
    static const size_t huge[] = {SIZE_MAX,      SIZE_MAX - 1,   SIZE_MAX - 14,   SIZE_MAX - 15,
                                  SIZE_MAX - 16, SIZE_MAX - 100, SIZE_MAX / 2 + 1};
    jrpc__arena_t a;
    jrpc__arena_init(&a);
    char *p = jrpc__arena_alloc(&a, 32);
    assert_non_null(p);
    char *pos = a.pos;
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        assert_null(jrpc__arena_alloc(&a, huge[i]));
        assert_null(jrpc__arena_realloc(&a, p, 32, huge[i]));
        assert_null(jrpc__arena_realloc(&a, NULL, 0, huge[i]));
        assert_ptr_equal(a.pos, pos); /* the arena is as it was */
    }
    assert_non_null(jrpc__arena_alloc(&a, 16));
    jrpc__arena_free(&a);
}

/* ---- realloc --------------------------------------------------------------------------------- */

static void test_resize(void **state)
{
    (void)state;
    jrpc__arena_t a;
    jrpc__arena_init(&a);
    /* The newest block grows and shrinks in place. */
    char *p = jrpc__arena_alloc(&a, 10);
    memcpy(p, "abcdefghij", 10);
    char *q = jrpc__arena_realloc(&a, p, 10, 100);
    assert_ptr_equal(q, p);
    assert_ptr_equal(a.pos, p + 112);
    q = jrpc__arena_realloc(&a, p, 100, 20);
    assert_ptr_equal(q, p);
    assert_ptr_equal(a.pos, p + 32);
    assert_memory_equal(q, "abcdefghij", 10);
    /* An older block is copied: the bytes it had, the old block left as it was. */
    char *r = jrpc__arena_alloc(&a, 16);
    memset(r, 'r', 16);
    q = jrpc__arena_realloc(&a, p, 20, 40);
    assert_ptr_not_equal(q, p);
    assert_ptr_equal(q, r + 16);
    assert_memory_equal(q, "abcdefghij", 10);
    assert_int_equal(r[15], 'r');
    /* Shrinking by copy keeps the first new_n bytes only. */
    char *s = jrpc__arena_realloc(&a, p, 20, 4);
    assert_ptr_not_equal(s, p);
    assert_memory_equal(s, "abcd", 4);
    /* The newest block past its chunk's end moves to a new chunk, bytes and all. */
    char *t = jrpc__arena_alloc(&a, 64);
    memset(t, 't', 64);
    jrpc__arena_chunk_t *head = a.head;
    char *u = jrpc__arena_realloc(&a, t, 64, 3 * ARENA_FIRST);
    assert_ptr_not_equal(u, t);
    assert_ptr_not_equal(a.head, head);
    for (size_t i = 0; i < 64; i++)
        assert_int_equal(u[i], 't');
    memset(u, 'u', 3 * ARENA_FIRST);
    /* NULL is a fresh allocation. */
    char *v = jrpc__arena_realloc(&a, NULL, 0, 24);
    assert_non_null(v);
    assert_int_equal((uintptr_t)v % ARENA_ALIGN, 0);
    assert_ptr_equal(a.pos, v + 32);
    jrpc__arena_free(&a);
}

/* The scanner's pattern: an array doubled with realloc while nothing else is allocated stays in
 * one place until its chunk is full. */
static void test_resize_doubling(void **state)
{
    (void)state;
    jrpc__arena_t a;
    jrpc__arena_init(&a);
    size_t cap = 4;
    uint32_t *v = jrpc__arena_alloc(&a, cap * sizeof *v);
    size_t moves = 0;
    for (uint32_t i = 0; i < 100000; i++) {
        if (i == cap) {
            uint32_t *grown = jrpc__arena_realloc(&a, v, cap * sizeof *v, 2 * cap * sizeof *v);
            assert_non_null(grown);
            moves += grown != v;
            v = grown;
            cap *= 2;
        }
        v[i] = i * 2654435761u;
    }
    for (uint32_t i = 0; i < 100000; i++)
        assert_int_equal(v[i], i * 2654435761u);
    /* 4 … 131072 entries: it moves only when a chunk is outgrown, not on every doubling. */
    assert_true(moves > 0 && moves < 15);
    jrpc__arena_free(&a);
}

/* ---- The chunk cache ------------------------------------------------------------------------- */

/* Allocates through a until it has chunks of 4, 8 and 16 KiB. */
static void fill_three_chunks(jrpc__arena_t *a)
{
    assert_non_null(jrpc__arena_alloc(a, ARENA_FIRST));
    assert_non_null(jrpc__arena_alloc(a, 2 * ARENA_FIRST));
    assert_non_null(jrpc__arena_alloc(a, 4 * ARENA_FIRST));
    size_t sizes[4];
    assert_int_equal(chunk_sizes(a, sizes, 4), 3);
}

static void test_cache_keeps_chunks(void **state)
{
    (void)state;
    jrpc__arena_cache_t cache = {NULL, 0, NULL, 0};
    jrpc__arena_t a;
    jrpc__arena_init_cached(&a, &cache);
    assert_ptr_equal(a.cache, &cache);
    fill_three_chunks(&a);
    jrpc__arena_chunk_t *c4 = a.head->next->next, *c8 = a.head->next, *c16 = a.head;
    jrpc__arena_free(&a);
    /* The first (4 KiB) chunk is kept with the first chunks, 8 and 16 KiB with the others. The
     * arena is empty and still tied to the cache. */
    assert_ptr_equal(cache.first, c4);
    assert_int_equal(cache.nfirst, 1);
    assert_int_equal(cache_chunks(&cache), 2);
    assert_int_equal(cache.bytes, 6 * ARENA_FIRST);
    assert_null(a.head);
    assert_ptr_equal(a.cache, &cache);

    /* The next arena's first chunk is the kept first chunk, ... */
    jrpc__arena_t b;
    jrpc__arena_init_cached(&b, &cache);
    char *p = jrpc__arena_alloc(&b, 100);
    assert_ptr_equal(b.head, c4);
    assert_ptr_equal(p, c4->data);
    assert_null(cache.first);
    assert_int_equal(cache.nfirst, 0);
    /* ... its second (8 KiB wanted) the 8 KiB one, its third the 16 KiB one. */
    assert_non_null(jrpc__arena_alloc(&b, ARENA_FIRST));
    assert_ptr_equal(b.head, c8);
    assert_non_null(jrpc__arena_alloc(&b, 2 * ARENA_FIRST));
    assert_ptr_equal(b.head, c16);
    assert_null(cache.free);
    assert_int_equal(cache.bytes, 0);
    /* Its fourth wants 32 KiB; none is cached, so malloc. */
    assert_non_null(jrpc__arena_alloc(&b, 8 * ARENA_FIRST));
    assert_int_equal(b.head->size, 8 * ARENA_FIRST);
    jrpc__arena_free(&b);
    assert_int_equal(cache.nfirst, 1);
    assert_int_equal(cache_chunks(&cache), 3);
    assert_int_equal(cache.bytes, (2 + 4 + 8) * ARENA_FIRST);
    jrpc__arena_cache_clear(&cache);
    assert_null(cache.free);
    assert_null(cache.first);
    assert_int_equal(cache.bytes, 0);
    assert_int_equal(cache.nfirst, 0);
    jrpc__arena_cache_clear(&cache); /* an empty cache clears again */
}

/* At most ARENA_CACHE_FIRST first chunks are kept (the requests a loop has alive at once); the
 * others go back to malloc. */
static void test_cache_first_cap(void **state)
{
    (void)state;
    enum { N = ARENA_CACHE_FIRST + 8 };
    jrpc__arena_cache_t cache = {NULL, 0, NULL, 0};
    jrpc__arena_t a[N];
    for (int i = 0; i < N; i++) {
        jrpc__arena_init_cached(&a[i], &cache);
        assert_non_null(jrpc__arena_alloc(&a[i], 64));
    }
    for (int i = 0; i < N; i++)
        jrpc__arena_free(&a[i]);
    assert_int_equal(cache.nfirst, ARENA_CACHE_FIRST);
    assert_int_equal(cache.bytes, 0);
    jrpc__arena_cache_clear(&cache);
    assert_int_equal(cache.nfirst, 0);
}

/* A small request does not pin a huge chunk: a cached chunk more than twice the wanted size is
 * left in the cache. */
static void test_cache_skips_oversized(void **state)
{
    (void)state;
    jrpc__arena_cache_t cache = {NULL, 0, NULL, 0};
    jrpc__arena_t a;
    jrpc__arena_init_cached(&a, &cache);
    assert_non_null(jrpc__arena_alloc(&a, 16));
    assert_non_null(jrpc__arena_alloc(&a, ARENA_MAX_CHUNK)); /* a chunk of exactly 1 MiB */
    jrpc__arena_chunk_t *big = a.head;
    assert_int_equal(big->size, ARENA_MAX_CHUNK);
    jrpc__arena_free(&a);
    assert_int_equal(cache_chunks(&cache), 1);
    assert_ptr_equal(cache.free, big);

    jrpc__arena_t b;
    jrpc__arena_init_cached(&b, &cache);
    assert_non_null(jrpc__arena_alloc(&b, 16));
    assert_ptr_not_equal(b.head, big);
    assert_int_equal(b.head->size, ARENA_FIRST);
    assert_ptr_equal(cache.free, big);
    /* A block that wants between 512 KiB and 1 MiB takes it. */
    assert_non_null(jrpc__arena_alloc(&b, ARENA_MAX_CHUNK / 2 + 1));
    assert_ptr_equal(b.head, big);
    assert_null(cache.free);
    jrpc__arena_free(&b);
    jrpc__arena_cache_clear(&cache);
}

/* The cache never holds more than ARENA_CACHE_MAX bytes; what does not fit is freed. */
static void test_cache_cap(void **state)
{
    (void)state;
    jrpc__arena_cache_t cache = {NULL, 0, NULL, 0};
    for (int round = 0; round < 3; round++) {
        jrpc__arena_t a;
        jrpc__arena_init_cached(&a, &cache);
        for (int i = 0; i < 5; i++)
            assert_non_null(jrpc__arena_alloc(&a, ARENA_MAX_CHUNK));
        /* A chunk bigger than the whole cache never goes in. */
        assert_non_null(jrpc__arena_alloc(&a, ARENA_CACHE_MAX + 16));
        jrpc__arena_free(&a);
        assert_true(cache.bytes <= ARENA_CACHE_MAX);
        assert_int_equal(cache.bytes, ARENA_CACHE_MAX);
        assert_int_equal(cache_chunks(&cache), ARENA_CACHE_MAX / ARENA_MAX_CHUNK);
    }
    jrpc__arena_cache_clear(&cache);
    assert_int_equal(cache.bytes, 0);
}

/* An arena without a cache frees every chunk (LeakSanitizer checks under SANITIZE=1) and can be
 * used again after free. */
static void test_free_and_reuse(void **state)
{
    (void)state;
    jrpc__arena_t a;
    jrpc__arena_init(&a);
    jrpc__arena_free(&a); /* an empty arena frees */
    for (int round = 0; round < 3; round++) {
        fill_three_chunks(&a);
        jrpc__arena_free(&a);
        assert_null(a.head);
        assert_null(a.cache);
        assert_ptr_equal(a.pos, a.end);
    }
    char *p = jrpc__arena_alloc(&a, 5);
    assert_non_null(p);
    assert_int_equal(a.head->size, ARENA_FIRST);
    jrpc__arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_bump_packing),
        cmocka_unit_test(test_growth_past_a_chunk),
        cmocka_unit_test(test_growth_caps),
        cmocka_unit_test(test_big_allocation),
        cmocka_unit_test(test_impossible_sizes),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_resize_doubling),
        cmocka_unit_test(test_cache_keeps_chunks),
        cmocka_unit_test(test_cache_first_cap),
        cmocka_unit_test(test_cache_skips_oversized),
        cmocka_unit_test(test_cache_cap),
        cmocka_unit_test(test_free_and_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
