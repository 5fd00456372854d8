/* SPDX-License-Identifier: MIT */
/* check.h — how a fuzz target reports a broken property: CHECK(cond, fmt, …) prints
 * "<FUZZ_NAME>: " and the message, then the input (its first 512 bytes, escaped), and aborts, so
 * libFuzzer saves the input. A target defines FUZZ_NAME, includes this once and sets cur_data and
 * cur_size to each input before checking it. */
#ifndef JRPC_FUZZ_CHECK_H
#define JRPC_FUZZ_CHECK_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static const uint8_t *cur_data;
static size_t cur_size;

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", FUZZ_NAME);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\ninput (%zu bytes): ", cur_size);
    for (size_t i = 0; i < cur_size && i < 512; i++) {
        unsigned char c = cur_data[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fprintf(stderr, "%s\n", cur_size > 512 ? "..." : "");
    abort();
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            die(__VA_ARGS__);                                                                      \
    } while (0)

#endif
