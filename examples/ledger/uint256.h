/* SPDX-License-Identifier: MIT */
/* uint256.h — unsigned 256-bit integers for the ledger: the width of an EVM word, which is what
 * stETH share amounts are. Amounts travel as decimal strings and are summed here, never in SQLite
 * (its INTEGER is 64-bit signed) and never in floating point. */
#ifndef LEDGER_UINT256_H
#define LEDGER_UINT256_H

#include <stddef.h>
#include <stdint.h>

typedef struct u256 {
    uint64_t w[4]; /* little-endian limbs: w[0] holds the least significant 64 bits */
} u256_t;

/* 2^256 - 1 has 78 decimal digits; a formatted value never needs more (plus the NUL). */
#define U256_DIGITS_MAX 78
#define U256_BUF (U256_DIGITS_MAX + 1)

/* Why a parse failed; each has a message from u256_strerror. */
typedef enum {
    U256_OK = 0,
    U256_EEMPTY = -1,   /* no digits at all */
    U256_EDIGIT = -2,   /* a byte other than 0-9 (signs, spaces, '.', "0x" included) */
    U256_ELEADING = -3, /* a leading zero: only "0" itself may start with 0 */
    U256_ERANGE = -4    /* more than 2^256 - 1 */
} u256_err_t;

/* Parses the canonical decimal form of an integer in [0, 2^256 - 1]: digits only, no sign, no
 * leading zeros, so that every value has exactly one spelling (and a stored amount compares
 * equal to what a client sent). 0 or a u256_err_t; *out is unchanged on failure. */
int u256_parse(u256_t *out, const char *s, size_t n);
/* Writes the canonical decimal form of v and a NUL into buf; returns the digit count. */
size_t u256_format(const u256_t *v, char buf[U256_BUF]);
/* *r = a + b; 0, or -1 on overflow past 2^256 - 1 (then *r is unchanged). r may alias a or b. */
int u256_add(u256_t *r, const u256_t *a, const u256_t *b);
/* *r = a - b; 0, or -1 when b > a (then *r is unchanged). r may alias a or b. */
int u256_sub(u256_t *r, const u256_t *a, const u256_t *b);
/* -1, 0 or 1 as a is less than, equal to or greater than b. */
int u256_cmp(const u256_t *a, const u256_t *b);
int u256_is_zero(const u256_t *v);
/* A static message for a u256_err_t ("has a leading zero" …). */
const char *u256_strerror(int err);

#endif
