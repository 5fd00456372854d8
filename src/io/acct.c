/* acct.c — what connections hold, counted until it is released: per connection (an account the
 * connection and each of its live requests share, so a request answered, timed out or left by its
 * client still counts against the bounds of the connection it came from) and for the whole server
 * (two atomics that max_memory and max_inflight bound). A connection over a bound stops reading
 * and waits on its account; the release that brings it back runs it from the loop's post queue,
 * never inside the engine's or a write's callback stack. */
#include "internal.h"

#include <stdlib.h>

static void acct_posted(jrpc__post_t *p)
{
    jrpc__acct_t *a = JRPC__CONTAINER_OF(p, jrpc__acct_t, post);
    a->posted = 0;
    jrpc__acct_wake_cb cb = a->wake;
    a->wake = NULL;
    if (cb != NULL && a->owner != NULL)
        cb(a, a->owner);
    jrpc__acct_unref(a);
}

/* Something was released: a waiting owner is told from the post queue. */
static void acct_released(jrpc__acct_t *a)
{
    if (a == NULL || a->wake == NULL || a->posted)
        return;
    a->posted = 1;
    a->refs++; /* the post's */
    a->post.cb = acct_posted;
    jrpc__loop_post(a->loop, &a->post);
}

jrpc__acct_t *jrpc__acct_new(jrpc__loop_t *loop, void *owner)
{
    jrpc__acct_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->loop = loop;
    a->owner = owner;
    a->refs = 1;
    return a;
}

void jrpc__acct_leave(jrpc__acct_t *a)
{
    if (a == NULL)
        return;
    a->owner = NULL;
    a->wake = NULL;
    jrpc__acct_unref(a);
}

void jrpc__acct_unref(jrpc__acct_t *a)
{
    if (--a->refs == 0)
        free(a);
}

void jrpc__acct_body(jrpc__io_t *io, jrpc__acct_t *a, ptrdiff_t delta)
{
    if (delta == 0)
        return;
    if (delta > 0)
        atomic_fetch_add_explicit(&io->mem_held, (size_t)delta, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&io->mem_held, (size_t)-delta, memory_order_relaxed);
    if (a == NULL)
        return;
    a->body += (size_t)delta; /* wraps back for a negative delta */
    a->bytes += (size_t)delta;
    if (delta < 0)
        acct_released(a);
}

void jrpc__acct_held(jrpc__io_t *io, jrpc__acct_t *a, ptrdiff_t delta)
{
    if (delta == 0)
        return;
    if (delta > 0)
        atomic_fetch_add_explicit(&io->mem_held, (size_t)delta, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&io->mem_held, (size_t)-delta, memory_order_relaxed);
    if (a == NULL)
        return;
    a->bytes += (size_t)delta;
    if (delta < 0)
        acct_released(a);
}

size_t jrpc__acct_admit(jrpc__io_t *io, jrpc__acct_t *a, size_t n, size_t own, int *full)
{
    const jrpc_config_t *cfg = io->cfg;
    *full = 0;
    if (n == 0)
        return 0;
    size_t held = atomic_load_explicit(&io->mem_held, memory_order_relaxed);
    if (held - (own < held ? own : held) >= cfg->max_memory) {
        *full = 1;
        atomic_fetch_add_explicit(&io->refused_memory, n, memory_order_relaxed);
        return 0;
    }
    size_t before = atomic_fetch_add_explicit(&io->calls_held, n, memory_order_relaxed);
    size_t admitted = n;
    if (before + n > cfg->max_inflight) {
        /* Over by a few (or all): give the excess back. Loops racing here may each refuse a
         * little more than needed for a moment, never admit past the bound. */
        admitted = before < cfg->max_inflight ? cfg->max_inflight - before : 0;
        atomic_fetch_sub_explicit(&io->calls_held, n - admitted, memory_order_relaxed);
        atomic_fetch_add_explicit(&io->refused_calls, n - admitted, memory_order_relaxed);
    }
    if (a != NULL)
        a->calls += admitted;
    return admitted;
}

void jrpc__acct_finished(jrpc__io_t *io, jrpc__acct_t *a, size_t n)
{
    if (n == 0)
        return;
    atomic_fetch_sub_explicit(&io->calls_held, n, memory_order_relaxed);
    if (a == NULL)
        return;
    a->calls -= n;
    acct_released(a);
}

void jrpc__acct_wait(jrpc__acct_t *a, jrpc__acct_wake_cb cb)
{
    a->wake = cb;
}
