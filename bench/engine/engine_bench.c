/*
 * engine_bench: prefill and decode speed of the forward pass on a random
 * model of llama2.c's stories110M shape (dim 768, 12 layers, 12 heads,
 * FFN 2048, vocab 32000, ctx 4096), F32 and Q8_0, next to llama.cpp run
 * on the same files in the same invocation (build/bench/llamacpp_bench
 * over the libraries scripts/llamacpp fetches; without them, the figures
 * the issue quotes for this machine kind). Each figure is the best of
 * --reps runs on both sides. Decode streams every weight once per token,
 * so the machine's memory bandwidth, measured here, bounds it: the table
 * gives that ceiling too. Then the other
 * architectures in the same size class (Falcon with one KV head, MPT with
 * ALiBi; GELU MLPs of 4 x dim hold as many weights as the SwiGLU of 2048)
 * in Q8_0, and sentence embeddings of a MiniLM-shaped BERT (F16).
 *
 *   build/bench/engine_bench [--threads N] [--dir DIR] [--decode N]
 *       [--reps N] [--llamacpp DIR|none] [--part all|llama|archs]
 *
 * The models are generated once into DIR (default build/bench) and reused.
 */

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../bench_util.h"
#include "gguf_write.h"
#include "model.h"
#include "quant.h"

typedef struct {
    const char  *name;
    uint32_t     type;
    /* llama.cpp, 2 threads, as the issue quotes it for this machine kind */
    double       ref_pp512, ref_pp2048, ref_tg;
} bench_model_t;

static const bench_model_t  models[] = {
    { "f32",  GGML_TYPE_F32,  676, 417, 92 },
    { "q8_0", GGML_TYPE_Q8_0, 797, 499, 152 },
};

typedef struct {
    double  wall;       /* tok/s */
    double  cpu;        /* tok/s had each thread had its core to itself */
} rate_t;

static int  n_threads = 2;
static int  n_reps = 3;

static rate_t
best(rate_t a, rate_t b)
{
    return a.wall >= b.wall ? a : b;
}

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

/* tokens per second of one n-token prompt into a fresh cache */
static rate_t
bench_prefill_once(model_t *m, int n, float *logits)
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
    t0 = bench_now();
    c0 = bench_cpu_now();
    if (model_eval(m, kv, toks, NULL, n, logits, 0, err, sizeof(err))) {
        fprintf(stderr, "engine_bench: %s\n", err);
    }
    r.wall = n / (bench_now() - t0);
    r.cpu = n / ((bench_cpu_now() - c0) / n_threads);
    kv_cache_free(kv);
    free(toks);
    return r;
}

/* tokens per second generating n tokens one at a time after a 16-token
   prompt (greedy, so the work is what a server does per token) */
static rate_t
bench_decode_once(model_t *m, int n, float *logits)
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
    t0 = bench_now();
    c0 = bench_cpu_now();
    for (i = 0; i < n; i++) {
        tok = 0;
        for (j = 1; j < nv; j++) {
            if (logits[j] > logits[tok]) {
                tok = j;
            }
        }
        model_eval(m, kv, &tok, NULL, 1, logits, 0, err, sizeof(err));
    }
    r.wall = n / (bench_now() - t0);
    r.cpu = n / ((bench_cpu_now() - c0) / n_threads);
    kv_cache_free(kv);
    return r;
}

/* the best of n_reps runs of a test */
static rate_t
best_of(rate_t (*test)(model_t *, int, float *), model_t *m, int n,
    float *logits)
{
    rate_t  r = test(m, n, logits);
    int     i;

    for (i = 1; i < n_reps; i++) {
        r = best(r, test(m, n, logits));
    }
    return r;
}


/*
 * Read bandwidth of the memory with n_threads threads, each summing its
 * share of a buffer far larger than the caches (GB/s, best of 3).
 */
typedef struct {
    const uint64_t  *p;
    size_t           n;
    uint64_t         sum;
} bw_part_t;

static void *
bw_run(void *arg)
{
    bw_part_t  *b = arg;
    uint64_t    s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t      i;

    for (i = 0; i + 4 <= b->n; i += 4) {
        s0 += b->p[i];
        s1 += b->p[i + 1];
        s2 += b->p[i + 2];
        s3 += b->p[i + 3];
    }
    b->sum = s0 + s1 + s2 + s3;
    return NULL;
}

static double
memory_bandwidth(void)
{
    size_t       bytes = (size_t) 512 << 20, n = bytes / 8, i;
    uint64_t    *buf = malloc(bytes);
    bw_part_t    part[64];
    pthread_t    th[64];
    double       t0, gbs, top = 0;
    int          k, r, nt = n_threads < 64 ? n_threads : 64;

    if (buf == NULL) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        buf[i] = i;
    }
    for (r = 0; r < 3; r++) {
        t0 = bench_now();
        for (k = 0; k < nt; k++) {
            part[k].p = buf + n / nt * k;
            part[k].n = n / nt;
            pthread_create(&th[k], NULL, bw_run, &part[k]);
        }
        for (k = 0; k < nt; k++) {
            pthread_join(th[k], NULL);
        }
        gbs = bytes / (bench_now() - t0) / 1e9;
        top = gbs > top ? gbs : top;
    }
    free(buf);
    return top;
}

/*
 * llama.cpp on the same file: build/bench/llamacpp_bench's lines
 * "pp512 X", "pp2048 X", "tg64 X", with flash attention off and on, the
 * better of the two for each test. Returns 0 when all three were read.
 */
static int
llamacpp_run(const char *self, const char *lib, const char *model,
    int n_decode, double *pp512, double *pp2048, double *tg)
{
    static const char  *fa[2] = { "off", "on" };
    char    cmd[4096], line[128], tool[512], *slash;
    FILE   *f;
    int     got = 0, n, k;
    double  v, *slot;

    snprintf(tool, sizeof(tool), "%s", self);
    slash = strrchr(tool, '/');
    *pp512 = *pp2048 = *tg = 0;
    for (k = 0; k < 2; k++) {
        snprintf(cmd, sizeof(cmd), "'%.*sllamacpp_bench' --lib '%s' "
                 "--model '%s' --threads %d --pp 512,2048 --tg %d --reps %d "
                 "--flash-attn %s", slash ? (int) (slash + 1 - tool) : 0,
                 tool, lib, model, n_threads, n_decode, n_reps, fa[k]);
        f = popen(cmd, "r");
        if (f == NULL) {
            return -1;
        }
        while (fgets(line, sizeof(line), f)) {
            slot = NULL;
            if (sscanf(line, "pp%d %lf", &n, &v) == 2) {
                slot = n == 512 ? pp512 : n == 2048 ? pp2048 : NULL;
                got |= n == 512 ? 1 : n == 2048 ? 2 : 0;
            } else if (sscanf(line, "tg%d %lf", &n, &v) == 2) {
                slot = tg;
                got |= 4;
            }
            if (slot != NULL && v > *slot) {
                *slot = v;
            }
        }
        if (pclose(f) != 0) {
            return -1;
        }
    }
    return got == 7 ? 0 : -1;
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

    t0 = bench_now();
    c0 = bench_cpu_now();
    do {
        for (i = 0; i < n && i < 512; i++) {
            toks[i] = i == 0 ? 101 : 1000 + (k * 131 + i * 7919) % 28000;
        }
        if (model_embed(m, toks, n, out, err, sizeof(err)) != 0) {
            fprintf(stderr, "engine_bench: %s\n", err);
            break;
        }
        k++;
        t = bench_now() - t0;
    } while (t < seconds);
    r.wall = k / t;
    r.cpu = k / ((bench_cpu_now() - c0) / n_threads);
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
        bench_prefill_once(m, 32, logits);
        pp = best_of(bench_prefill_once, m, 512, logits);
        tg = best_of(bench_decode_once, m, n_decode, logits);
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
row(const char *w, const char *test, rate_t r, double ref, double ceiling)
{
    char  c[32] = "";

    if (ceiling > 0) {
        snprintf(c, sizeof(c), "%.0f", ceiling);
    }
    printf("| %s | %s | %.1f | %.1f | %.1f | %.2f | %.2f | %s |\n", w, test,
           r.wall, r.cpu, ref, r.wall / ref, r.cpu / ref, c);
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    const char  *dir = "build/bench", *part = "all";
    const char  *lcdir = "build/llamacpp";
    int          n_decode = 64, i, use_lc;
    char         path[512], err[256], lib[512];
    model_t     *m;
    float       *logits;
    double       load[3] = { 0, 0, 0 }, bw = 0, pp512, pp2048, tg;
    rate_t       r512, r2048, rtg;
    struct stat  st;
    size_t       k;

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0) {
            n_threads = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--dir") == 0) {
            dir = argv[i + 1];
        } else if (strcmp(argv[i], "--decode") == 0) {
            n_decode = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--reps") == 0) {
            n_reps = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--llamacpp") == 0) {
            lcdir = argv[i + 1];
        } else if (strcmp(argv[i], "--part") == 0) {
            part = argv[i + 1];
        } else {
            i = argc;
        }
    }
    if (i != argc || n_threads < 1 || n_reps < 1 || n_decode < 1) {
        fprintf(stderr, "usage: engine_bench [--threads N] [--dir DIR] "
                "[--decode N] [--reps N] [--llamacpp DIR|none] "
                "[--part all|llama|archs]\n");
        return 2;
    }
    mkdir(dir, 0755);
    snprintf(lib, sizeof(lib), "%s/libllama.so", lcdir);
    use_lc = strcmp(lcdir, "none") != 0 && stat(lib, &st) == 0;
    snprintf(lib, sizeof(lib), "%s", lcdir);

    getloadavg(load, 3);
    printf("## llmcache-worker forward pass, stories110M shape, %d threads, "
           "%s kernels\n\n", n_threads, quant_simd_name());
    printf("Load average when starting: %.2f (other work on the machine "
           "slows the wall-clock figures; the CPU-time column is what the "
           "threads achieved while they actually ran).\n\n", load[0]);
    if (strcmp(part, "archs") != 0) {
        printf("Decode reads every weight once per token, so it cannot pass "
               "the memory's read bandwidth / the model's size: the last "
               "column, with the bandwidth measured (%d threads) right after "
               "our decode.\n\n", n_threads);
        if (use_lc) {
            printf("llama.cpp: measured now on the same files, %d threads "
                   "(`build/bench/llamacpp_bench --lib %s`), best of %d "
                   "like ours, the better of flash attention off and on."
                   "\n\n", n_threads, lib, n_reps);
        } else {
            printf("llama.cpp: not available here (`scripts/llamacpp` "
                   "fetches it); the figures the issue quotes for this "
                   "machine kind are used instead.\n\n");
        }
        printf("| weights | test | tok/s (wall) | tok/s (CPU time) | "
               "llama.cpp tok/s | ratio (wall) | ratio (CPU time) | "
               "bandwidth bound tok/s |\n");
        printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
    }
    fflush(stdout);
    for (k = 0; k < sizeof(models) / sizeof(models[0])
                && strcmp(part, "archs") != 0; k++)
    {
        if (bench_stories110m(dir, models[k].name, models[k].type, path,
                              sizeof(path)) != 0)
        {
            return 1;
        }
        m = model_load(path, n_threads, err, sizeof(err));
        if (m == NULL) {
            fprintf(stderr, "engine_bench: %s\n", err);
            return 1;
        }
        logits = malloc(model_hparams(m)->n_vocab * sizeof(float));
        /* warm the page cache and the pool */
        bench_prefill_once(m, 32, logits);
        r512 = best_of(bench_prefill_once, m, 512, logits);
        r2048 = best_of(bench_prefill_once, m, 2048, logits);
        rtg = best_of(bench_decode_once, m, n_decode, logits);
        bw = memory_bandwidth();
        free(logits);
        model_free(m);

        pp512 = models[k].ref_pp512;
        pp2048 = models[k].ref_pp2048;
        tg = models[k].ref_tg;
        if (use_lc && llamacpp_run(argv[0], lib, path, n_decode, &pp512,
                                   &pp2048, &tg) != 0)
        {
            fprintf(stderr, "engine_bench: llama.cpp did not run on %s; "
                    "the issue's figures are used\n", path);
            pp512 = models[k].ref_pp512;
            pp2048 = models[k].ref_pp2048;
            tg = models[k].ref_tg;
        }
        stat(path, &st);
        row(models[k].name, "prefill 512", r512, pp512, 0);
        row(models[k].name, "prefill 2048", r2048, pp2048, 0);
        row(models[k].name, "decode", rtg, tg, bw * 1e9 / st.st_size);
        printf("| | (memory read bandwidth %.1f GB/s, model %.0f MB) "
               "| | | | | | |\n", bw, st.st_size / 1e6);
    }
    if (strcmp(part, "llama") != 0 && bench_archs(dir, n_decode) != 0) {
        return 1;
    }
    return 0;
}
