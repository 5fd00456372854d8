/* SPDX-License-Identifier: MIT */
/* uint256.c — decimal parse and format, add, subtract and compare on four 64-bit limbs. The
 * 128-bit intermediate (a GCC and Clang extension) keeps the multiply-by-10 and divide-by-10^19
 * steps exact without splitting limbs by hand. */
#include "uint256.h"

typedef unsigned __int128 u128_t;

/* 10^19: the largest power of ten that fits a limb, so formatting peels off 19 digits per
 * division instead of one. */
#define TEN19 10000000000000000000ull

int u256_parse(u256_t *out, const char *s, size_t n)
{
    if (n == 0)
        return U256_EEMPTY;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return U256_EDIGIT;
    if (s[0] == '0' && n > 1)
        return U256_ELEADING;
    if (n > U256_DIGITS_MAX)
        return U256_ERANGE;

    u256_t v = {{0, 0, 0, 0}};
    for (size_t i = 0; i < n; i++) {
        /* v = v * 10 + digit, limb by limb; a carry out of the top limb is overflow. */
        uint64_t carry = (uint64_t)(s[i] - '0');
        for (int k = 0; k < 4; k++) {
            u128_t t = (u128_t)v.w[k] * 10u + carry;
            v.w[k] = (uint64_t)t;
            carry = (uint64_t)(t >> 64);
        }
        if (carry != 0)
            return U256_ERANGE;
    }
    *out = v;
    return U256_OK;
}

size_t u256_format(const u256_t *v, char buf[U256_BUF])
{
    /* Divide by 10^19 until nothing is left, collecting 19-digit chunks from the least
     * significant end; the top chunk is printed without padding. */
    u256_t q = *v;
    uint64_t chunks[5]; /* 2^256 < 10^(19*5) */
    int nchunks = 0;
    do {
        uint64_t rem = 0;
        for (int k = 3; k >= 0; k--) {
            u128_t cur = ((u128_t)rem << 64) | q.w[k];
            q.w[k] = (uint64_t)(cur / TEN19);
            rem = (uint64_t)(cur % TEN19);
        }
        chunks[nchunks++] = rem;
    } while (!u256_is_zero(&q));

    char *p = buf;
    /* The top chunk: its own digits, most significant first. */
    char tmp[20];
    int t = 0;
    uint64_t top = chunks[nchunks - 1];
    do {
        tmp[t++] = (char)('0' + top % 10);
        top /= 10;
    } while (top != 0);
    while (t > 0)
        *p++ = tmp[--t];
    /* The others: exactly 19 digits each, zero-padded. */
    for (int c = nchunks - 2; c >= 0; c--) {
        uint64_t x = chunks[c];
        for (int d = 18; d >= 0; d--) {
            p[d] = (char)('0' + x % 10);
            x /= 10;
        }
        p += 19;
    }
    *p = '\0';
    return (size_t)(p - buf);
}

int u256_add(u256_t *r, const u256_t *a, const u256_t *b)
{
    u256_t s;
    uint64_t carry = 0;
    for (int k = 0; k < 4; k++) {
        u128_t t = (u128_t)a->w[k] + b->w[k] + carry;
        s.w[k] = (uint64_t)t;
        carry = (uint64_t)(t >> 64);
    }
    if (carry != 0)
        return -1;
    *r = s;
    return 0;
}

int u256_sub(u256_t *r, const u256_t *a, const u256_t *b)
{
    if (u256_cmp(a, b) < 0)
        return -1;
    u256_t d;
    uint64_t borrow = 0;
    for (int k = 0; k < 4; k++) {
        uint64_t x = a->w[k], y = b->w[k];
        d.w[k] = x - y - borrow;
        borrow = (x < y || (x == y && borrow)) ? 1 : 0;
    }
    *r = d;
    return 0;
}

int u256_cmp(const u256_t *a, const u256_t *b)
{
    for (int k = 3; k >= 0; k--)
        if (a->w[k] != b->w[k])
            return a->w[k] < b->w[k] ? -1 : 1;
    return 0;
}

int u256_is_zero(const u256_t *v)
{
    return (v->w[0] | v->w[1] | v->w[2] | v->w[3]) == 0;
}

const char *u256_strerror(int err)
{
    switch (err) {
    case U256_OK:
        return "ok";
    case U256_EEMPTY:
        return "is empty";
    case U256_EDIGIT:
        return "has a character other than the digits 0-9";
    case U256_ELEADING:
        return "has a leading zero";
    case U256_ERANGE:
        return "exceeds 2^256-1";
    default:
        return "is not a decimal integer";
    }
}
