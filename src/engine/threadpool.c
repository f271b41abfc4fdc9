/*
 * Persistent worker threads woken by a generation counter. A job is
 * published by bumping the counter; workers spin on it for a while (a
 * decode step dispatches a hundred small jobs) and then sleep on a
 * condition variable until the next one.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "threadpool.h"

/* ~1 ms of polling before sleeping: long enough to bridge the gaps
   between the jobs of one forward pass, short enough not to steal a
   shared machine's cores while idle */
#define TP_SPIN  20000

struct threadpool {
    int               n;
    pthread_t        *th;
    threadpool_fn     fn;
    void             *arg;
    atomic_uint       gen;
    atomic_int        pending;
    atomic_int        stop;
    pthread_mutex_t   mu;
    pthread_cond_t    cv;           /* a new job (gen changed) */
    pthread_cond_t    done_cv;      /* pending reached 0 */
};

typedef struct {
    threadpool_t  *tp;
    int            ith;
} tp_arg_t;

static inline void
tp_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *
tp_main(void *p)
{
    tp_arg_t      *a = p;
    threadpool_t  *tp = a->tp;
    int            ith = a->ith, i;
    unsigned       seen = 0, g;

    free(a);
    for ( ;; ) {
        for (i = 0; i < TP_SPIN; i++) {
            g = atomic_load_explicit(&tp->gen, memory_order_acquire);
            if (g != seen) {
                break;
            }
            tp_relax();
        }
        if (g == seen) {
            pthread_mutex_lock(&tp->mu);
            while ((g = atomic_load(&tp->gen)) == seen) {
                pthread_cond_wait(&tp->cv, &tp->mu);
            }
            pthread_mutex_unlock(&tp->mu);
        }
        seen = g;
        if (atomic_load(&tp->stop)) {
            return NULL;
        }
        tp->fn(tp->arg, ith, tp->n);
        if (atomic_fetch_sub_explicit(&tp->pending, 1, memory_order_acq_rel)
            == 1)
        {
            pthread_mutex_lock(&tp->mu);
            pthread_cond_signal(&tp->done_cv);
            pthread_mutex_unlock(&tp->mu);
        }
    }
}

threadpool_t *
threadpool_new(int n_threads, char *err, size_t errlen)
{
    threadpool_t  *tp;
    tp_arg_t      *a;
    int            i;

    if (n_threads < 1) {
        n_threads = 1;
    }
    tp = calloc(1, sizeof(*tp));
    if (tp == NULL
        || (tp->th = calloc(n_threads, sizeof(pthread_t))) == NULL)
    {
        free(tp);
        snprintf(err, errlen, "%s: out of memory", __func__);
        return NULL;
    }
    tp->n = n_threads;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->cv, NULL);
    pthread_cond_init(&tp->done_cv, NULL);
    for (i = 1; i < n_threads; i++) {
        a = malloc(sizeof(*a));
        if (a == NULL) {
            goto fail;
        }
        a->tp = tp;
        a->ith = i;
        if (pthread_create(&tp->th[i], NULL, tp_main, a) != 0) {
            free(a);
            goto fail;
        }
    }
    return tp;

fail:
    snprintf(err, errlen, "%s: cannot start thread %d", __func__, i);
    tp->n = i;
    threadpool_free(tp);
    return NULL;
}

void
threadpool_free(threadpool_t *tp)
{
    int  i;

    if (tp == NULL) {
        return;
    }
    atomic_store(&tp->stop, 1);
    pthread_mutex_lock(&tp->mu);
    atomic_fetch_add(&tp->gen, 1);
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
    for (i = 1; i < tp->n; i++) {
        pthread_join(tp->th[i], NULL);
    }
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->cv);
    pthread_cond_destroy(&tp->done_cv);
    free(tp->th);
    free(tp);
}

int
threadpool_size(const threadpool_t *tp)
{
    return tp->n;
}

void
threadpool_run(threadpool_t *tp, threadpool_fn fn, void *arg)
{
    int  i;

    if (tp->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    tp->fn = fn;
    tp->arg = arg;
    atomic_store_explicit(&tp->pending, tp->n - 1, memory_order_relaxed);
    pthread_mutex_lock(&tp->mu);
    atomic_fetch_add_explicit(&tp->gen, 1, memory_order_release);
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
    fn(arg, 0, tp->n);
    for (i = 0; i < TP_SPIN; i++) {
        if (atomic_load_explicit(&tp->pending, memory_order_acquire) == 0) {
            return;
        }
        tp_relax();
    }
    /* a worker was descheduled (the machine is busy): sleep instead */
    pthread_mutex_lock(&tp->mu);
    while (atomic_load(&tp->pending) > 0) {
        pthread_cond_wait(&tp->done_cv, &tp->mu);
    }
    pthread_mutex_unlock(&tp->mu);
}
