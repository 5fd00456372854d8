/* SPDX-License-Identifier: MIT */
/* hash.h — the string hashes of the project's small open-addressing tables (methods, keys,
 * budgets, client addresses): no state or seed, a good spread of the low bits over short keys.
 * jrpc__hash_str reads eight bytes per step and serves the lookups made on every request;
 * FNV-1a, a byte per step, is kept where a hash is shown to people (a key's log mark), so the
 * marks in old logs stay comparable. */
#ifndef JRPC_UTIL_HASH_H
#define JRPC_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The 64-bit FNV-1a hash of p[0..n). */
static inline uint64_t jrpc__hash_fnv1a(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64-bit offset basis */
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull; /* FNV-1a 64-bit prime */
    }
    return h;
}

/* Folds the high bits of h into the low ones, which the tables index with. */
static inline uint64_t jrpc__hash_fold(uint64_t h)
{
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull; /* an odd 64-bit constant with well-spread bits */
    return h ^ (h >> 32);
}

/* A 64-bit hash of p[0..n): a multiply per eight bytes instead of per byte (a 32-byte API key
 * costs 4 steps rather than 32), the length mixed in so that keys padded with zeros differ. */
static inline uint64_t jrpc__hash_str(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n; /* 2^64 / golden ratio */
    size_t len = n;
    for (; n >= 8; n -= 8, b += 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        h = jrpc__hash_fold((h ^ w) * 0xff51afd7ed558ccdull);
    }
    if (n > 0) {
        /* The tail in one step, not a byte at a time: the last eight bytes (overlapping what was
         * hashed) when there were eight, else two overlapping four-byte reads, else three bytes
         * (first, middle, last). The length, mixed in first, tells the overlaps apart. */
        uint64_t w;
        if (len >= 8) {
            memcpy(&w, b + n - 8, 8);
        } else if (n >= 4) {
            uint32_t lo, hi;
            memcpy(&lo, b, 4);
            memcpy(&hi, b + n - 4, 4);
            w = lo | (uint64_t)hi << 32;
        } else {
            w = b[0] | (uint64_t)b[n / 2] << 8 | (uint64_t)b[n - 1] << 16;
        }
        h = (h ^ w) * 0xff51afd7ed558ccdull;
    }
    return jrpc__hash_fold(h);
}

#endif
