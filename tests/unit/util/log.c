/* SPDX-License-Identifier: MIT */
/* Unit tests of the log formatter (src/util/log.c): the level gate, prefix and message on one
 * line, and a line too long for JRPC__LOG_LINE cut rather than split or overrun. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <string.h>

#include "util/log.h"

static int lines;
static jrpc_log_level_t last_level;
static char last[JRPC__LOG_LINE + 16];

static void sink(jrpc_log_level_t level, const char *line, void *data)
{
    assert_ptr_equal(data, &lines);
    lines++;
    last_level = level;
    assert_true(strlen(line) < JRPC__LOG_LINE);
    strcpy(last, line);
}

static jrpc_config_t config(jrpc_log_level_t level)
{
    jrpc_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.log_cb = sink;
    cfg.log_data = &lines;
    cfg.log_level = level;
    return cfg;
}

static void prefix_and_message(void **state)
{
    (void)state;
    jrpc_config_t cfg = config(JRPC_LOG_INFO);
    lines = 0;
    jrpc__log(&cfg, JRPC_LOG_WARN, "upstream eth: ", "%d of %s", 3, "4");
    assert_int_equal(lines, 1);
    assert_int_equal(last_level, JRPC_LOG_WARN);
    assert_string_equal(last, "upstream eth: 3 of 4");
    jrpc__log(&cfg, JRPC_LOG_INFO, NULL, "no prefix");
    assert_string_equal(last, "no prefix");
}

static void level_gate(void **state)
{
    (void)state;
    jrpc_config_t cfg = config(JRPC_LOG_WARN);
    lines = 0;
    assert_false(jrpc__log_on(&cfg, JRPC_LOG_INFO));
    assert_true(jrpc__log_on(&cfg, JRPC_LOG_ERROR));
    jrpc__log(&cfg, JRPC_LOG_INFO, "x ", "dropped");
    assert_int_equal(lines, 0);
    cfg.log_cb = NULL;
    assert_false(jrpc__log_on(&cfg, JRPC_LOG_ERROR));
    jrpc__log(&cfg, JRPC_LOG_ERROR, "x ", "no sink"); /* must not call through NULL */
    assert_int_equal(lines, 0);
}

static void long_lines_cut(void **state)
{
    (void)state;
    jrpc_config_t cfg = config(JRPC_LOG_DEBUG);
    char big[2 * JRPC__LOG_LINE];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    lines = 0;
    jrpc__log(&cfg, JRPC_LOG_INFO, "p: ", "%s", big);
    assert_int_equal(lines, 1);
    assert_int_equal(strlen(last), JRPC__LOG_LINE - 1);
    assert_memory_equal(last, "p: aaa", 6);
    /* A prefix that fills the line leaves the message out, still one line. */
    jrpc__log(&cfg, JRPC_LOG_INFO, big, "message");
    assert_int_equal(lines, 2);
    assert_int_equal(strlen(last), JRPC__LOG_LINE - 1);
    assert_null(strstr(last, "message"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prefix_and_message),
        cmocka_unit_test(level_gate),
        cmocka_unit_test(long_lines_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
