/* SPDX-License-Identifier: MIT */
/* hash.h — FNV-1a, the string hash of the project's small open-addressing tables: simple, no
 * state or seed, and a good spread over short keys such as method names. */
#ifndef JRPC_UTIL_HASH_H
#define JRPC_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

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

#endif
