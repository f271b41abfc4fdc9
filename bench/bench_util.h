/*
 * What the benchmarks share: clocks, and the random model of llama2.c's
 * stories110M shape that bench/engine and bench/prompt-cache both run on
 * (written once into a directory, then reused).  Header only: each bench
 * is one file.
 */

#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdio.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "gguf_write.h"

/* monotonic seconds */
static inline double
bench_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds used by this process (all threads, user + system) */
static inline double
bench_cpu_now(void)
{
    struct rusage  ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6
           + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

/*
 * DIR/stories110M-shape-NAME.gguf: dim 768, 12 layers, 12 heads, FFN 2048,
 * vocab 32000, context 4096, tied embedding, random weights of TYPE (seed
 * 110), written when missing.  Returns 0, or -1 after saying why on stderr.
 */
static inline int
bench_stories110m(const char *dir, const char *name, uint32_t type,
    char *path, size_t len)
{
    gguf_random_llama_t  p;
    struct stat          st;
    char                 err[256];
    double               t0;

    snprintf(path, len, "%s/stories110M-shape-%s.gguf", dir, name);
    if (stat(path, &st) == 0) {
        return 0;
    }
    gguf_random_llama_defaults(&p);
    p.dim = 768;
    p.n_layers = 12;
    p.n_heads = 12;
    p.n_kv_heads = 12;
    p.ffn_dim = 2048;
    p.n_vocab = 32000;
    p.n_ctx = 4096;
    p.tied = 1;
    p.wtype = type;
    p.seed = 110;
    p.name = "stories110M-shape";
    fprintf(stderr, "writing %s ...\n", path);
    t0 = bench_now();
    if (gguf_write_random_llama(&p, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    fprintf(stderr, "written in %.1f s\n", bench_now() - t0);
    return 0;
}

#endif /* BENCH_UTIL_H */
