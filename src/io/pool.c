/* pool.c — the worker pool for JRPC_WORKER handlers: a fixed set of threads and a bounded queue.
 * libuv's own threadpool is shared process-wide, sized by an environment variable and has an
 * unbounded queue; a blocking handler storm must instead be refused (-32005) once the queue is
 * full, so the pool is ours. The queue is one FIFO per connection, served round-robin: a client
 * that queued hundreds of slow calls makes another client's call wait for one turn, not for all
 * of them. Handlers reply through jrpc_reply_*, which posts back to the loop. */
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

/* The next job, round-robin over the queues (lock held, count > 0). */
static jrpc__pool_job_t *pool_take(jrpc__pool_t *p)
{
    jrpc__pool_queue_t *q = p->head;
    jrpc__pool_job_t *job = q->first;
    q->first = job->next;
    p->head = q->next;
    if (p->head == NULL)
        p->tail = NULL;
    q->next = NULL;
    if (q->first == NULL) {
        q->last = NULL;
        q->queued = 0; /* out of turn until its next job */
    } else {
        if (p->tail != NULL) /* its next job waits for every other queue's turn */
            p->tail->next = q;
        else
            p->head = q;
        p->tail = q;
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
        q->next = NULL;
        if (p->tail != NULL)
            p->tail->next = q;
        else
            p->head = q;
        p->tail = q;
    }
    p->count++;
    uv_cond_signal(&p->ready);
    uv_mutex_unlock(&p->lock);
    return 0;
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
