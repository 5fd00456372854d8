/* SPDX-License-Identifier: MIT */
/* digits.h — an integer's decimal digits written into a caller's buffer, for text built
 * by hand on hot paths (HTTP header blocks, JSON numbers, int64 replies), where snprintf's
 * format parsing costs more than the digits. */
#ifndef JRPC_UTIL_DIGITS_H
#define JRPC_UTIL_DIGITS_H

#include <stddef.h>
#include <stdint.h>

/* Writes v's digits (at most 20) backwards, ending just before `end`; returns the first. Room
 * before `end` lets a caller put a sign in front (jrpc_buf_json_int64). */
static inline char *jrpc__u64_digits(uint64_t v, char *end)
{
    char *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return p;
}

/* The same for a signed v (at most 20 bytes with the '-'). */
static inline char *jrpc__i64_digits(int64_t v, char *end)
{
    /* The magnitude in unsigned arithmetic, so INT64_MIN needs no special case. */
    char *p = jrpc__u64_digits(v < 0 ? 0 - (uint64_t)v : (uint64_t)v, end);
    if (v < 0)
        *--p = '-';
    return p;
}

/* Writes v's digits (at most 20, no NUL) at p and returns one past the last. */
static inline char *jrpc__put_u64(char *p, uint64_t v)
{
    char tmp[20];
    const char *d = jrpc__u64_digits(v, tmp + sizeof tmp);
    while (d < tmp + sizeof tmp)
        *p++ = *d++;
    return p;
}

#endif
