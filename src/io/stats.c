/* SPDX-License-Identifier: MIT */
/* stats.c — the tables behind a loop's counters (stats.h): per-method duration histograms and the
 * (transport, method, code) cells of jrpc_calls_total. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

const uint64_t jrpc__hist_dur_bounds[] = JRPC__HIST_DUR_BOUNDS_US;
const uint64_t jrpc__hist_batch_bounds[] = JRPC__HIST_BATCH_BOUNDS;

int jrpc__limit_find(const char *name)
{
    static const char *const names[JRPC__LIMIT_COUNT] = {
#define XX(id, label) label,
        JRPC__LIMIT_MAP(XX)
#undef XX
    };
    for (int i = 0; name != NULL && i < JRPC__LIMIT_COUNT; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

int jrpc__stats_init(jrpc__stats_t *s, unsigned nlabels)
{
    s->nlabels = nlabels;
    s->call_dur = nlabels != 0 ? calloc(nlabels, sizeof(*s->call_dur)) : NULL;
    s->calls = calloc(JRPC__CALL_CELLS, sizeof(*s->calls));
    if ((nlabels != 0 && s->call_dur == NULL) || s->calls == NULL) {
        jrpc__stats_release(s);
        return JRPC_ENOMEM;
    }
    return 0;
}

void jrpc__stats_release(jrpc__stats_t *s)
{
    free(s->call_dur);
    free(s->calls);
    s->call_dur = NULL;
    s->calls = NULL;
    s->nlabels = 0;
}

void jrpc__stats_call(jrpc__stats_t *s, unsigned tr, unsigned label, int is_error, int code,
                      uint64_t n)
{
    if (s->calls == NULL)
        return;
    uint64_t kind = is_error ? JRPC__CALL_CODE_ERROR : JRPC__CALL_CODE_OK; /* never 0 */
    uint64_t key = ((kind << 30 | (uint64_t)tr << 28 | label) << 32) | (uint32_t)code;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    for (unsigned probe = 0; probe < 2; probe++) {
        for (unsigned i = 0, j = (unsigned)(h >> 52); i < 64; i++, j++) {
            jrpc__call_cell_t *c = &s->calls[j & (JRPC__CALL_CELLS - 1)];
            uint64_t k = atomic_load_explicit(&c->key, memory_order_relaxed);
            if (k == key) {
                jrpc__ctr_add(&c->n, n);
                return;
            }
            if (k == 0) {
                atomic_store_explicit(&c->n, n, memory_order_relaxed);
                atomic_store_explicit(&c->key, key, memory_order_release);
                return;
            }
        }
        /* 64 cells in a row taken: the table is as good as full; the call counts under code
         * "(other)" of its transport and method, itself a cell (or lost when even that has no
         * room, which 4096 cells make a matter of thousands of distinct codes). */
        key = ((uint64_t)JRPC__CALL_CODE_OTHER << 30 | (uint64_t)tr << 28 | label) << 32;
        h = key * 0x9E3779B97F4A7C15ull;
    }
}
