/* SPDX-License-Identifier: MIT */
/* pool.c — the worker pool for JRPC_WORKER handlers: a fixed set of threads and a bounded queue.
 * libuv's own threadpool is shared process-wide, sized by an environment variable and has an
 * unbounded queue; a blocking handler storm must instead be refused (-32005) once the queue is
 * full, so the pool is ours. The queue is one FIFO per connection; a free thread takes the next
 * call of the connection with the fewest calls running (in turn among equals), so a client that
 * queued hundreds of slow calls makes another client's call wait for the next free thread, not
 * for all of them. Handlers reply through jrpc_reply_*, which posts back to the loop. */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>

struct jrpc__pool {
    uv_mutex_t lock;
    uv_cond_t ready;           /* signalled when a job is queued or the pool stops */
    jrpc__pool_queue_t *head;  /* queues with jobs, in turn order */
    jrpc__pool_queue_t *tail;  /* the last of them */
    jrpc__pool_queue_t shared; /* jobs submitted without a queue of their own */
    unsigned cap;              /* most jobs queued at once */
    unsigned count;            /* jobs queued */
    int stopping;
    unsigned busy; /* threads inside a handler */
    unsigned nthreads;
    uv_thread_t *threads;
};

/* Unlinks q (after prev, or the head) from the turn list. */
static void turn_remove(jrpc__pool_t *p, jrpc__pool_queue_t *prev, jrpc__pool_queue_t *q)
{
    if (prev != NULL)
        prev->next = q->next;
    else
        p->head = q->next;
    if (p->tail == q)
        p->tail = prev;
    q->next = NULL;
}

static void turn_append(jrpc__pool_t *p, jrpc__pool_queue_t *q)
{
    q->next = NULL;
    if (p->tail != NULL)
        p->tail->next = q;
    else
        p->head = q;
    p->tail = q;
}

/* The next job (lock held, count > 0): from the queue with the fewest calls running, the
 * earliest in turn among equals, which then goes to the back of the turns. A connection that
 * keeps slow calls running on many threads gets the next free thread only when no queue with
 * fewer is waiting. */
static jrpc__pool_job_t *pool_take(jrpc__pool_t *p)
{
    jrpc__pool_queue_t *q = p->head, *prev = NULL;
    for (jrpc__pool_queue_t *it = p->head, *it_prev = NULL; it != NULL;
         it_prev = it, it = it->next) {
        if (it->running < q->running) {
            q = it;
            prev = it_prev;
        }
    }
    jrpc__pool_job_t *job = q->first;
    q->first = job->next;
    q->running++;
    turn_remove(p, prev, q);
    if (q->first == NULL) {
        q->last = NULL;
        q->queued = 0; /* out of turn until its next job */
    } else {
        turn_append(p, q); /* its next job waits for every other queue's turn */
    }
    p->count--;
    return job;
}

static void pool_thread(void *arg)
{
    jrpc__pool_t *p = arg;
    for (;;) {
        uv_mutex_lock(&p->lock);
        while (p->count == 0 && !p->stopping)
            uv_cond_wait(&p->ready, &p->lock);
        if (p->count == 0) {
            uv_mutex_unlock(&p->lock);
            return;
        }
        jrpc__pool_job_t *job = pool_take(p);
        p->busy++;
        uv_mutex_unlock(&p->lock);
        job->cb(job->call, job->data); /* job may be gone once the handler replied */
        uv_mutex_lock(&p->lock);
        p->busy--;
        uv_mutex_unlock(&p->lock);
    }
}

jrpc__pool_t *jrpc__pool_new(unsigned workers, unsigned queue)
{
    jrpc__pool_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->cap = queue ? queue : 1;
    p->threads = calloc(workers ? workers : 1, sizeof(*p->threads));
    if (p->threads == NULL) {
        free(p);
        return NULL;
    }
    uv_mutex_init(&p->lock);
    uv_cond_init(&p->ready);
    for (unsigned i = 0; i < workers; i++) {
        if (uv_thread_create(&p->threads[i], pool_thread, p) != 0)
            break;
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        jrpc__pool_free(p);
        return NULL;
    }
    return p;
}

int jrpc__pool_submit(jrpc__pool_t *p, jrpc__pool_queue_t *q, jrpc__pool_job_t *job)
{
    if (q == NULL)
        q = &p->shared;
    job->next = NULL;
    uv_mutex_lock(&p->lock);
    if (p->count == p->cap || p->stopping) {
        uv_mutex_unlock(&p->lock);
        return JRPC_ERANGE;
    }
    if (q->last != NULL)
        q->last->next = job;
    else
        q->first = job;
    q->last = job;
    if (!q->queued) { /* its turn comes after the queues waiting now */
        q->queued = 1;
        turn_append(p, q);
    }
    p->count++;
    uv_cond_signal(&p->ready);
    uv_mutex_unlock(&p->lock);
    return 0;
}

void jrpc__pool_done(jrpc__pool_t *p, jrpc__pool_queue_t *q)
{
    uv_mutex_lock(&p->lock);
    (q != NULL ? q : &p->shared)->running--;
    uv_mutex_unlock(&p->lock);
}

void jrpc__pool_free(jrpc__pool_t *p)
{
    uv_mutex_lock(&p->lock);
    p->stopping = 1;
    uv_cond_broadcast(&p->ready);
    uv_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nthreads; i++)
        uv_thread_join(&p->threads[i]);
    uv_cond_destroy(&p->ready);
    uv_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}

void jrpc__pool_abandon(jrpc__pool_t *p)
{
    uv_mutex_lock(&p->lock);
    p->stopping = 1;
    /* Queued calls were answered when the stop gave up on them: dropped, and the queues leave
     * their turns (the connections they belong to are gone). */
    for (jrpc__pool_queue_t *q = p->head; q != NULL; q = q->next) {
        q->first = q->last = NULL;
        q->queued = 0;
    }
    p->head = p->tail = NULL;
    p->count = 0;
    unsigned busy = p->busy;
    uv_cond_broadcast(&p->ready);
    uv_mutex_unlock(&p->lock);
    if (busy == 0) {
        jrpc__pool_free(p); /* every thread is idle: they end now */
        return;
    }
    /* Idle threads end on their own; one still inside a handler keeps the pool (it is never
     * freed: the thread may touch it when the handler returns, until the process exits). */
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_detach(p->threads[i]);
}

unsigned jrpc__pool_depth(jrpc__pool_t *pool)
{
    uv_mutex_lock(&pool->lock);
    unsigned n = pool->count;
    uv_mutex_unlock(&pool->lock);
    return n;
}
