/* SPDX-License-Identifier: MIT */
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

/* ---- The server's totals, leased per loop ------------------------------------------------------
 *
 * Every loop takes bytes and calls from the server's totals in chunks and counts its own use
 * against its lease, so a request touches a shared atomic only when its loop's lease runs out or
 * grows too large, not on every request (a read-modify-write on a cache line every loop writes
 * moves that line between cores each time). The totals overstate what is held by at most two
 * chunks per loop; chunks shrink with the bounds and are 0 (exact: nothing leased beyond use)
 * for bounds under eight times the loops. */

static size_t mem_chunk(const jrpc__io_t *io)
{
    size_t c = io->cfg->max_memory / (8 * (size_t)(io->cfg->io_threads ? io->cfg->io_threads : 1));
    return c > JRPC__ACCT_MEM_CHUNK ? JRPC__ACCT_MEM_CHUNK : c; /* 0: exact, no lease kept */
}

static size_t calls_chunk(const jrpc__io_t *io)
{
    size_t c =
        io->cfg->max_inflight / (8 * (size_t)(io->cfg->io_threads ? io->cfg->io_threads : 1));
    return c > JRPC__ACCT_CALLS_CHUNK ? JRPC__ACCT_CALLS_CHUNK : c; /* 0: exact, no lease kept */
}

static void mem_add(jrpc__loop_t *loop, size_t n)
{
    loop->mem_used += n;
    atomic_store_explicit(&loop->stats.mem_used, loop->mem_used, memory_order_relaxed);
    if (loop->mem_used > loop->mem_lease) {
        size_t take = loop->mem_used - loop->mem_lease + mem_chunk(loop->io);
        atomic_fetch_add_explicit(&loop->io->mem_held, take, memory_order_relaxed);
        loop->mem_lease += take;
    }
}

/* Gives back what a lease holds past use and one chunk, once that is over two chunks. */
static void lease_trim(size_t *lease, size_t used, size_t chunk, atomic_size_t *total)
{
    if (*lease - used > 2 * chunk) {
        size_t give = *lease - used - chunk;
        atomic_fetch_sub_explicit(total, give, memory_order_relaxed);
        *lease -= give;
    }
}

static void mem_sub(jrpc__loop_t *loop, size_t n)
{
    loop->mem_used -= n;
    atomic_store_explicit(&loop->stats.mem_used, loop->mem_used, memory_order_relaxed);
    lease_trim(&loop->mem_lease, loop->mem_used, mem_chunk(loop->io), &loop->io->mem_held);
}

static void calls_sub(jrpc__loop_t *loop, size_t n)
{
    loop->calls_used -= n;
    atomic_store_explicit(&loop->stats.calls_used, loop->calls_used, memory_order_relaxed);
    lease_trim(&loop->calls_lease, loop->calls_used, calls_chunk(loop->io), &loop->io->calls_held);
}

void jrpc__acct_loop_flush(jrpc__loop_t *loop)
{
    atomic_fetch_sub_explicit(&loop->io->mem_held, loop->mem_lease - loop->mem_used,
                              memory_order_relaxed);
    loop->mem_lease = loop->mem_used;
    atomic_fetch_sub_explicit(&loop->io->calls_held, loop->calls_lease - loop->calls_used,
                              memory_order_relaxed);
    loop->calls_lease = loop->calls_used;
}

void jrpc__acct_held(jrpc__loop_t *loop, jrpc__acct_t *a, ptrdiff_t delta)
{
    if (delta == 0)
        return;
    if (delta > 0)
        mem_add(loop, (size_t)delta);
    else
        mem_sub(loop, (size_t)-delta);
    if (a == NULL)
        return;
    a->bytes += (size_t)delta;
    if (delta < 0)
        acct_released(a);
}

void jrpc__acct_body(jrpc__loop_t *loop, jrpc__acct_t *a, ptrdiff_t delta)
{
    if (a != NULL)
        a->body += (size_t)delta; /* wraps back for a negative delta */
    jrpc__acct_held(loop, a, delta);
}

size_t jrpc__acct_admit(jrpc__loop_t *loop, jrpc__acct_t *a, size_t n, size_t own, int *full)
{
    jrpc__io_t *io = loop->io;
    const jrpc_config_t *cfg = loop->cfg;
    *full = 0;
    if (n == 0)
        return 0;
    size_t held = atomic_load_explicit(&io->mem_held, memory_order_relaxed);
    if (held - (own < held ? own : held) >= cfg->max_memory) {
        *full = 1;
        atomic_fetch_add_explicit(&io->refused_memory, n, memory_order_relaxed);
        return 0;
    }
    if (loop->calls_used + n > loop->calls_lease) {
        /* Take what is missing and a chunk more; past the bound, give the excess back (loops
         * racing here may each refuse a little more than needed, never admit past it). */
        size_t need = loop->calls_used + n - loop->calls_lease + calls_chunk(io);
        size_t before = atomic_fetch_add_explicit(&io->calls_held, need, memory_order_relaxed);
        size_t granted = need;
        if (before + need > cfg->max_inflight) {
            size_t over = before + need - cfg->max_inflight;
            granted = over < need ? need - over : 0;
            atomic_fetch_sub_explicit(&io->calls_held, need - granted, memory_order_relaxed);
        }
        loop->calls_lease += granted;
    }
    size_t room = loop->calls_lease > loop->calls_used ? loop->calls_lease - loop->calls_used : 0;
    size_t admitted = n < room ? n : room;
    loop->calls_used += admitted;
    atomic_store_explicit(&loop->stats.calls_used, loop->calls_used, memory_order_relaxed);
    if (admitted < n)
        atomic_fetch_add_explicit(&io->refused_calls, n - admitted, memory_order_relaxed);
    if (a != NULL)
        a->calls += admitted;
    return admitted;
}

void jrpc__acct_finished(jrpc__loop_t *loop, jrpc__acct_t *a, size_t n)
{
    if (n == 0)
        return;
    calls_sub(loop, n);
    if (a == NULL)
        return;
    a->calls -= n;
    acct_released(a);
}

void jrpc__acct_wait(jrpc__acct_t *a, jrpc__acct_wake_cb cb)
{
    a->wake = cb;
}
