/* SPDX-License-Identifier: MIT */
/* timer.h — a uv timer for a timeout that moves on every request and mostly later (a
 * connection's keep-alive and request timeouts, the requests' deadlines): it is moved only when
 * the new end is sooner. A move costs libuv a heap removal and insertion (about 170
 * instructions); a timer left set for an earlier end fires then, its callback finds the end not
 * reached (jrpc__timer_fired) and sets it again. `set_for` is the owner's: the loop time the timer
 * fires at, 0 when it is not set. Loop thread. */
#ifndef JRPC_UTIL_TIMER_H
#define JRPC_UTIL_TIMER_H

#include <stdint.h>
#include <uv.h>

/* Makes t fire at loop time `due` at the latest (cb), unless it is set for then or sooner. */
static inline void jrpc__timer_at(uv_timer_t *t, uint64_t *set_for, uint64_t due, uv_timer_cb cb)
{
    if (*set_for != 0 && *set_for <= due)
        return;
    uint64_t now = uv_now(t->loop);
    *set_for = due;
    uv_timer_start(t, cb, due > now ? due - now : 0, 0);
}

/* In t's callback cb: 1 when `due` (the owner's current end; 0: none) is reached; else 0, and t
 * is set again for it. */
static inline int jrpc__timer_fired(uv_timer_t *t, uint64_t *set_for, uint64_t due, uv_timer_cb cb)
{
    *set_for = 0;
    if (due == 0)
        return 0;
    if (uv_now(t->loop) < due) {
        jrpc__timer_at(t, set_for, due, cb);
        return 0;
    }
    return 1;
}

#endif
