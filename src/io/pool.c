/* pool.c — the worker pool for JRPC_WORKER handlers: a fixed set of threads and a bounded FIFO.
 * libuv's own threadpool is shared process-wide, sized by an environment variable and has an
 * unbounded queue; a blocking handler storm must instead be refused (-32005) once the queue is
 * full, so the pool is ours. Handlers reply through jrpc_reply_*, which posts back to the loop. */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct pool_job {
    jrpc_call_t *call;
    jrpc_method_cb cb;
    void *data;
} pool_job_t;

struct jrpc__pool {
    uv_mutex_t lock;
    uv_cond_t ready;  /* signalled when a job is queued or the pool stops */
    pool_job_t *ring; /* cap slots */
    unsigned cap;
    unsigned head;  /* next job to run */
    unsigned count; /* jobs queued */
    int stopping;
    unsigned busy; /* threads inside a handler */
    unsigned nthreads;
    uv_thread_t *threads;
};

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
        pool_job_t job = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->count--;
        p->busy++;
        uv_mutex_unlock(&p->lock);
        job.cb(job.call, job.data);
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
    p->ring = calloc(p->cap, sizeof(*p->ring));
    p->threads = calloc(workers ? workers : 1, sizeof(*p->threads));
    if (p->ring == NULL || p->threads == NULL)
        goto fail;
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
fail:
    free(p->ring);
    free(p->threads);
    free(p);
    return NULL;
}

int jrpc__pool_submit(jrpc__pool_t *p, jrpc_call_t *call, jrpc_method_cb cb, void *data)
{
    uv_mutex_lock(&p->lock);
    if (p->count == p->cap || p->stopping) {
        uv_mutex_unlock(&p->lock);
        return JRPC_ERANGE;
    }
    p->ring[(p->head + p->count) % p->cap] = (pool_job_t){call, cb, data};
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
    free(p->ring);
    free(p->threads);
    free(p);
}

void jrpc__pool_abandon(jrpc__pool_t *p)
{
    uv_mutex_lock(&p->lock);
    p->stopping = 1;
    p->count = 0; /* queued calls were answered when the stop gave up on them */
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
