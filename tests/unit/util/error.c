/* SPDX-License-Identifier: MIT */
/* Unit tests of the C error codes (src/util/error.c): system codes are -errno with the system's
 * text, the project's own codes have their own messages, and every code has a name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "jrpc.h"

static void system_codes_are_negative_errno(void **state)
{
    (void)state;
    assert_int_equal(JRPC_EINVAL, -EINVAL);
    assert_int_equal(JRPC_ENOMEM, -ENOMEM);
    assert_int_equal(JRPC_ENOENT, -ENOENT);
    assert_int_equal(JRPC_EEXIST, -EEXIST);
    assert_int_equal(JRPC_ERANGE, -ERANGE);
    assert_int_equal(JRPC_EBUSY, -EBUSY);
    assert_int_equal(JRPC_EACCES, -EACCES);
    assert_int_equal(JRPC_EADDRINUSE, -EADDRINUSE);
    assert_int_equal(JRPC_EADDRNOTAVAIL, -EADDRNOTAVAIL);
    assert_int_equal(JRPC_EMFILE, -EMFILE);
}

/* The system's text, not one of the project's: a JRPC_ENOENT from a lookup and a -ENOENT from a
 * file read the same. strerror is compared as a copy, as the C library may share its buffer. */
static void system_codes_keep_the_system_text(void **state)
{
    (void)state;
    static const int codes[] = {ENOENT, EINVAL, ENOMEM, EEXIST, ERANGE, EBUSY, EADDRINUSE};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        char want[256];
        snprintf(want, sizeof want, "%s", strerror(codes[i]));
        assert_string_equal(jrpc_strerror(-codes[i]), want);
    }
    assert_string_not_equal(jrpc_strerror(JRPC_EBUSY), "server is running");
    /* A -errno outside the map gets the system's text too. */
    char want[256];
    snprintf(want, sizeof want, "%s", strerror(EPIPE));
    assert_string_equal(jrpc_strerror(-EPIPE), want);
}

static void own_codes_have_own_messages(void **state)
{
    (void)state;
    assert_string_equal(jrpc_strerror(JRPC_ETYPE), "JSON value has another type");
    assert_string_equal(jrpc_strerror(JRPC_EJSON), "malformed JSON");
    assert_string_equal(jrpc_strerror(JRPC_EMODULE), "module could not be loaded");
    assert_string_equal(jrpc_strerror(JRPC_ECLOSED), "connection is closed");
    /* In the private range, below every errno, and all distinct. */
    static const int own[] = {JRPC_ETYPE, JRPC_EJSON, JRPC_EMODULE, JRPC_ECLOSED};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        assert_true(own[i] <= -4001 && own[i] > -4025);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(own[i], own[j]);
    }
}

static void names_for_every_code(void **state)
{
    (void)state;
#define XX(name, val, msg) assert_string_equal(jrpc_err_name(JRPC_##name), #name);
    JRPC_ERRNO_MAP(XX)
#undef XX
    assert_string_equal(jrpc_err_name(JRPC_EINVAL), "EINVAL");
    assert_string_equal(jrpc_err_name(JRPC_ECLOSED), "ECLOSED");
    assert_string_equal(jrpc_err_name(-4999), "UNKNOWN");
    assert_string_equal(jrpc_err_name(0), "UNKNOWN");
}

static void outside_every_range(void **state)
{
    (void)state;
    assert_string_equal(jrpc_strerror(-4999), "unknown error");
    assert_string_equal(jrpc_strerror(1), "unknown error");
    assert_string_equal(jrpc_strerror(0), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(system_codes_are_negative_errno),
        cmocka_unit_test(system_codes_keep_the_system_text),
        cmocka_unit_test(own_codes_have_own_messages),
        cmocka_unit_test(names_for_every_code),
        cmocka_unit_test(outside_every_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
