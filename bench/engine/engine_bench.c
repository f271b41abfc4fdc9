/*
 * engine_bench: prefill and decode speed of the forward pass on a random
 * model of llama2.c's stories110M shape (dim 768, 12 layers, 12 heads,
 * FFN 2048, vocab 32000, ctx 4096), F32 and Q8_0, next to llama.cpp's
 * figures for the same shape on this machine kind. Then the other
 * architectures in the same size class (Falcon with one KV head, MPT with
 * ALiBi; GELU MLPs of 4 x dim hold as many weights as the SwiGLU of 2048)
 * in Q8_0, and sentence embeddings of a MiniLM-shaped BERT (F16).
 *
 *   build/bench/engine_bench [--threads N] [--dir DIR] [--decode N]
 *       [--part all|llama|archs]
 *
 * The models are generated once into DIR (default build/bench) and reused.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "gguf_write.h"
#include "model.h"
#include "quant.h"

typedef struct {
    const char  *name;
    uint32_t     type;
    double       ref_pp512, ref_pp2048, ref_tg;   /* llama.cpp, 2 threads */
} bench_model_t;

static const bench_model_t  models[] = {
    { "f32",  GGML_TYPE_F32,  676, 417, 92 },
    { "q8_0", GGML_TYPE_Q8_0, 797, 499, 152 },
};

static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds used by this process (all threads) */
static double
cpu_now(void)
{
    struct rusage  ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6
           + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

typedef struct {
    double  wall;       /* tok/s */
    double  cpu;        /* tok/s had each thread had its core to itself */
} rate_t;

static int  n_threads = 2;

/* the same size class in other architectures (Q8_0, tied, vocab 32000) */
typedef struct {
    const char  *arch;
    int          dim, n_layers, n_heads, n_kv_heads, ffn_dim, n_vocab;
    int          n_ctx;
    uint32_t     type;
    const char  *file;
} bench_arch_t;

static const bench_arch_t  archs[] = {
    { "llama", 768, 12, 12, 12, 2048, 32000, 4096, GGML_TYPE_Q8_0,
      "stories110M-shape-q8_0.gguf" },
    { "falcon", 768, 12, 12, 1, 3072, 32000, 4096, GGML_TYPE_Q8_0,
      "falcon-110M-shape-q8_0.gguf" },
    { "mpt", 768, 12, 12, 12, 3072, 32000, 4096, GGML_TYPE_Q8_0,
      "mpt-110M-shape-q8_0.gguf" },
};

/* all-MiniLM-L6-v2's shape */
static const bench_arch_t  minilm = {
    "bert", 384, 6, 12, 12, 1536, 30522, 512, GGML_TYPE_F16,
    "minilm-l6-shape-f16.gguf"
};

static int
ensure_arch_model(const char *dir, const bench_arch_t *ba, char *path,
    size_t len)
{
    gguf_random_arch_t  p;
    struct stat         st;
    char                err[256];

    snprintf(path, len, "%s/%s", dir, ba->file);
    if (stat(path, &st) == 0) {
        return 0;
    }
    gguf_random_arch_defaults(&p, ba->arch);
    p.base.dim = ba->dim;
    p.base.n_layers = ba->n_layers;
    p.base.n_heads = ba->n_heads;
    p.base.n_kv_heads = ba->n_kv_heads;
    p.base.ffn_dim = ba->ffn_dim;
    p.base.n_vocab = ba->n_vocab;
    p.base.n_ctx = ba->n_ctx;
    p.base.tied = 1;
    p.base.wtype = ba->type;
    p.base.seed = 110;
    fprintf(stderr, "engine_bench: writing %s ...\n", path);
    if (gguf_write_random_arch(&p, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "engine_bench: %s\n", err);
        return -1;
    }
    return 0;
}

static int
ensure_model(const char *dir, const bench_model_t *bm, char *path,
    size_t len)
{
    gguf_random_llama_t  p;
    struct stat          st;
    char                 err[256];
    double               t0;

    snprintf(path, len, "%s/stories110M-shape-%s.gguf", dir, bm->name);
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
    p.wtype = bm->type;
    p.seed = 110;
    p.name = "stories110M-shape";
    fprintf(stderr, "engine_bench: writing %s ...\n", path);
    t0 = now();
    if (gguf_write_random_llama(&p, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "engine_bench: %s\n", err);
        return -1;
    }
    fprintf(stderr, "engine_bench: written in %.1f s\n", now() - t0);
    return 0;
}

/* tokens per second of one n-token prompt into a fresh cache */
static rate_t
bench_prefill(model_t *m, int n, float *logits)
{
    kv_cache_t  *kv = kv_cache_new(m, n);
    int32_t     *toks = malloc(n * sizeof(int32_t));
    char         err[256];
    double       t0, c0;
    rate_t       r;
    int          i;

    for (i = 0; i < n; i++) {
        toks[i] = i == 0 ? 1 : 259 + (i * 7919) % 31000;
    }
    t0 = now();
    c0 = cpu_now();
    if (model_eval(m, kv, toks, NULL, n, logits, 0, err, sizeof(err))) {
        fprintf(stderr, "engine_bench: %s\n", err);
    }
    r.wall = n / (now() - t0);
    r.cpu = n / ((cpu_now() - c0) / n_threads);
    kv_cache_free(kv);
    free(toks);
    return r;
}

/* tokens per second generating n tokens one at a time after a short
   prompt (greedy, so the work is what a server does per token) */
static rate_t
bench_decode(model_t *m, int n, float *logits)
{
    kv_cache_t  *kv = kv_cache_new(m, n + 16);
    int32_t      toks[16], tok;
    char         err[256];
    double       t0, c0;
    rate_t       r;
    int          i, j, nv = model_hparams(m)->n_vocab;

    for (i = 0; i < 16; i++) {
        toks[i] = i == 0 ? 1 : 300 + i;
    }
    model_eval(m, kv, toks, NULL, 16, logits, 0, err, sizeof(err));
    t0 = now();
    c0 = cpu_now();
    for (i = 0; i < n; i++) {
        tok = 0;
        for (j = 1; j < nv; j++) {
            if (logits[j] > logits[tok]) {
                tok = j;
            }
        }
        model_eval(m, kv, &tok, NULL, 1, logits, 0, err, sizeof(err));
    }
    r.wall = n / (now() - t0);
    r.cpu = n / ((cpu_now() - c0) / n_threads);
    kv_cache_free(kv);
    return r;
}

/* sentences per second, each of n tokens embedded on its own */
static rate_t
bench_embed(model_t *m, int n, double seconds)
{
    int32_t  toks[512];
    float   *out = malloc(model_hparams(m)->dim * sizeof(float));
    char     err[256];
    double   t0, c0, t = 0;
    rate_t   r;
    int      i, k = 0;

    t0 = now();
    c0 = cpu_now();
    do {
        for (i = 0; i < n && i < 512; i++) {
            toks[i] = i == 0 ? 101 : 1000 + (k * 131 + i * 7919) % 28000;
        }
        if (model_embed(m, toks, n, out, err, sizeof(err)) != 0) {
            fprintf(stderr, "engine_bench: %s\n", err);
            break;
        }
        k++;
        t = now() - t0;
    } while (t < seconds);
    r.wall = k / t;
    r.cpu = k / ((cpu_now() - c0) / n_threads);
    free(out);
    return r;
}

static int
bench_archs(const char *dir, int n_decode)
{
    char      path[512], err[256];
    model_t  *m;
    float    *logits;
    rate_t    pp, tg;
    size_t    k;

    printf("\n## The same size class in other architectures (Q8_0, %d "
           "threads)\n\n", n_threads);
    printf("| arch | shape | prefill 512 tok/s (wall / CPU) | decode tok/s "
           "(wall / CPU) |\n|---|---|---:|---:|\n");
    fflush(stdout);
    for (k = 0; k < sizeof(archs) / sizeof(archs[0]); k++) {
        if (ensure_arch_model(dir, &archs[k], path, sizeof(path)) != 0) {
            return -1;
        }
        m = model_load(path, n_threads, err, sizeof(err));
        if (m == NULL) {
            fprintf(stderr, "engine_bench: %s\n", err);
            return -1;
        }
        logits = malloc(model_hparams(m)->n_vocab * sizeof(float));
        bench_prefill(m, 32, logits);
        pp = bench_prefill(m, 512, logits);
        tg = bench_decode(m, n_decode, logits);
        printf("| %s | dim %d, %d layers, %d heads / %d KV, FFN %d | "
               "%.1f / %.1f | %.1f / %.1f |\n", archs[k].arch,
               archs[k].dim, archs[k].n_layers, archs[k].n_heads,
               archs[k].n_kv_heads, archs[k].ffn_dim, pp.wall, pp.cpu,
               tg.wall, tg.cpu);
        fflush(stdout);
        free(logits);
        model_free(m);
    }

    if (ensure_arch_model(dir, &minilm, path, sizeof(path)) != 0) {
        return -1;
    }
    m = model_load(path, n_threads, err, sizeof(err));
    if (m == NULL) {
        fprintf(stderr, "engine_bench: %s\n", err);
        return -1;
    }
    bench_embed(m, 32, 0.2);
    pp = bench_embed(m, 32, 3.0);
    printf("\n## Sentence embeddings, MiniLM-L6 shape (dim 384, 6 layers, "
           "12 heads, FFN 1536, vocab 30522, F16, mean pooling), %d "
           "threads\n\n| test | sentences/s (wall) | sentences/s (CPU "
           "time) | tokens/s (wall) |\n|---|---:|---:|---:|\n"
           "| 32-token sentences, one at a time | %.1f | %.1f | %.0f |\n",
           n_threads, pp.wall, pp.cpu, pp.wall * 32);
    model_free(m);
    return 0;
}

static void
row(const char *w, const char *test, rate_t r, double ref)
{
    printf("| %s | %s | %.1f | %.1f | %.0f | %.2f | %.2f |\n", w, test,
           r.wall, r.cpu, ref, r.wall / ref, r.cpu / ref);
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    const char  *dir = "build/bench", *part = "all";
    int          n_decode = 64, i;
    char         path[512], err[256];
    model_t     *m;
    float       *logits;
    double       load[3] = { 0, 0, 0 };
    size_t       k;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0) {
            n_threads = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--dir") == 0) {
            dir = argv[i + 1];
        } else if (strcmp(argv[i], "--decode") == 0) {
            n_decode = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--part") == 0) {
            part = argv[i + 1];
        } else {
            fprintf(stderr, "usage: engine_bench [--threads N] [--dir DIR] "
                    "[--decode N] [--part all|llama|archs]\n");
            return 2;
        }
    }
    mkdir(dir, 0755);

    getloadavg(load, 3);
    printf("## llmcache-worker forward pass, stories110M shape, %d threads, "
           "%s kernels\n\n", n_threads, quant_simd_name());
    printf("Load average when starting: %.2f (other work on the machine "
           "slows the wall-clock figures; the CPU-time column is what the "
           "threads achieved while they actually ran).\n\n", load[0]);
    if (strcmp(part, "archs") != 0) {
        printf("| weights | test | tok/s (wall) | tok/s (CPU time) | "
               "llama.cpp tok/s | ratio (wall) | ratio (CPU time) |\n");
        printf("|---|---|---:|---:|---:|---:|---:|\n");
    }
    fflush(stdout);
    for (k = 0; k < sizeof(models) / sizeof(models[0])
                && strcmp(part, "archs") != 0; k++)
    {
        if (ensure_model(dir, &models[k], path, sizeof(path)) != 0) {
            return 1;
        }
        m = model_load(path, n_threads, err, sizeof(err));
        if (m == NULL) {
            fprintf(stderr, "engine_bench: %s\n", err);
            return 1;
        }
        logits = malloc(model_hparams(m)->n_vocab * sizeof(float));
        /* warm the page cache and the pool */
        bench_prefill(m, 32, logits);
        row(models[k].name, "prefill 512", bench_prefill(m, 512, logits),
            models[k].ref_pp512);
        row(models[k].name, "prefill 2048", bench_prefill(m, 2048, logits),
            models[k].ref_pp2048);
        row(models[k].name, "decode", bench_decode(m, n_decode, logits),
            models[k].ref_tg);
        free(logits);
        model_free(m);
    }
    if (strcmp(part, "llama") != 0 && bench_archs(dir, n_decode) != 0) {
        return 1;
    }
    return 0;
}
