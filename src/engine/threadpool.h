/*
 * A small persistent thread pool: n threads (the caller counts as thread
 * 0) run one function with (arg, ith, nth) and the caller waits for all.
 * Workers spin briefly before sleeping, so the per-layer dispatches of a
 * decode step cost microseconds, not a futex round trip each.
 */

#ifndef LLMC_THREADPOOL_H
#define LLMC_THREADPOOL_H

#include <stddef.h>

typedef struct threadpool threadpool_t;
typedef void (*threadpool_fn)(void *arg, int ith, int nth);

threadpool_t *threadpool_new(int n_threads, char *err, size_t errlen);
void threadpool_free(threadpool_t *tp);
int threadpool_size(const threadpool_t *tp);
/* runs fn on every thread and returns when all have finished */
void threadpool_run(threadpool_t *tp, threadpool_fn fn, void *arg);

#endif /* LLMC_THREADPOOL_H */
