/*
 * llamacpp_bench: llama.cpp's speed on the same GGUF file, on this machine,
 * measured the way llama-bench measures it, so the engine's figures are
 * compared with a run made in the same invocation rather than with numbers
 * from another machine.
 *
 *   build/bench/llamacpp_bench --lib DIR --model FILE [--threads N]
 *       [--pp N[,N...]] [--tg N] [--reps N]
 *   build/bench/llamacpp_bench --lib DIR --model FILE [--threads N]
 *       --prompts FILE
 *
 * DIR holds llama.cpp's shared libraries (libllama, libggml and the CPU
 * backend variants), as `scripts/llamacpp` fetches them. They are opened
 * with dlopen; the few structures the C API passes by value are read
 * through their documented leading fields, and the layout is checked
 * against the library's own defaults before anything is changed.
 *
 * Each figure is the best of --reps runs (default 3). Output, one line
 * per test:  pp512 <tok/s>   tg64 <tok/s>  (tg: tokens one at a time
 * after a 16-token prompt).
 * With --prompts, FILE has one prompt per line, "LABEL TOKEN TOKEN ...",
 * served one after another the way llama.cpp's server serves them with
 * cache_prompt on one slot: the longest common prefix with the tokens in
 * the cache is kept (at least one token is evaluated, for the logits),
 * the rest of the cache dropped, the remaining tokens evaluated in
 * batches of n_batch. Output per prompt:  ttft LABEL MS EVALUATED
 *
 * Exit status 2 when the library cannot be used (the caller then says so).
 */

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../bench_util.h"

/* struct llama_batch: stable since the batch API appeared */
typedef struct {
    int32_t    n_tokens;
    int32_t   *token;
    float     *embd;
    int32_t   *pos;
    int32_t   *n_seq_id;
    int32_t  **seq_id;
    int8_t    *logits;
} lc_batch_t;

/*
 * Parameter structures are returned and passed by value; their sizes vary
 * between versions, so they travel in a buffer larger than any of them.
 * Under the x86-64 System V ABI both are MEMORY-class: returned through a
 * caller buffer and passed as a copy on the stack, of which the callee
 * reads its own size.
 */
typedef struct {
    uint8_t  b[2048];
} lc_params_t;

typedef struct {
    void          (*backend_init)(void);
    lc_params_t   (*model_default_params)(void);
    lc_params_t   (*context_default_params)(void);
    void         *(*model_load)(const char *path, lc_params_t p);
    void         *(*init_from_model)(void *model, lc_params_t p);
    lc_batch_t    (*batch_get_one)(int32_t *tokens, int32_t n);
    int32_t       (*decode)(void *ctx, lc_batch_t b);
    void          (*synchronize)(void *ctx);
    void         *(*get_memory)(void *ctx);
    void          (*memory_clear)(void *mem, _Bool data);
    _Bool         (*memory_seq_rm)(void *mem, int32_t seq, int32_t p0,
                                   int32_t p1);
    void          (*log_set)(void (*cb)(int, const char *, void *), void *);
    void          (*free_ctx)(void *ctx);
    void          (*model_free)(void *model);
    void          (*load_all_from_path)(const char *dir);
} lc_api_t;

static void
quiet_log(int level, const char *text, void *ud)
{
    (void) level;
    (void) text;
    (void) ud;
}

static void *
sym(void *h, const char *name)
{
    void  *p = dlsym(h, name);

    if (p == NULL) {
        fprintf(stderr, "llamacpp_bench: %s: %s\n", name, dlerror());
    }
    return p;
}

static int
load_api(const char *dir, lc_api_t *a)
{
    char   path[4096];
    void  *ggml, *llama;

    snprintf(path, sizeof(path), "%s/libggml.so", dir);
    ggml = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    snprintf(path, sizeof(path), "%s/libllama.so", dir);
    llama = ggml ? dlopen(path, RTLD_NOW | RTLD_GLOBAL) : NULL;
    if (ggml == NULL || llama == NULL) {
        fprintf(stderr, "llamacpp_bench: %s\n", dlerror());
        return -1;
    }
    *(void **) &a->load_all_from_path = sym(ggml,
                                            "ggml_backend_load_all_from_path");
    *(void **) &a->backend_init = sym(llama, "llama_backend_init");
    *(void **) &a->model_default_params = sym(llama,
                                              "llama_model_default_params");
    *(void **) &a->context_default_params =
        sym(llama, "llama_context_default_params");
    *(void **) &a->model_load = sym(llama, "llama_model_load_from_file");
    *(void **) &a->init_from_model = sym(llama, "llama_init_from_model");
    *(void **) &a->batch_get_one = sym(llama, "llama_batch_get_one");
    *(void **) &a->decode = sym(llama, "llama_decode");
    *(void **) &a->synchronize = sym(llama, "llama_synchronize");
    *(void **) &a->get_memory = sym(llama, "llama_get_memory");
    *(void **) &a->memory_clear = sym(llama, "llama_memory_clear");
    *(void **) &a->memory_seq_rm = sym(llama, "llama_memory_seq_rm");
    *(void **) &a->log_set = sym(llama, "llama_log_set");
    *(void **) &a->free_ctx = sym(llama, "llama_free");
    *(void **) &a->model_free = sym(llama, "llama_model_free");
    return a->load_all_from_path && a->backend_init
           && a->model_default_params && a->context_default_params
           && a->model_load && a->init_from_model && a->batch_get_one
           && a->decode && a->synchronize && a->get_memory
           && a->memory_clear && a->memory_seq_rm && a->log_set
           && a->free_ctx && a->model_free
           ? 0 : -1;
}

/*
 * llama_context_params starts with n_ctx (512), n_batch (2048), n_ubatch
 * (512) and n_seq_max (1) by default; versions differ in what follows
 * before n_threads and n_threads_batch (both GGML_DEFAULT_N_THREADS, 4).
 */
static int
set_context(lc_params_t *p, int n_ctx, int n_batch, int n_ubatch,
    int threads, int flash_attn)
{
    int32_t  v[16];
    int      i, k;

    memcpy(v, p->b, sizeof(v));
    if (v[0] != 512 || v[1] != 2048 || v[2] != 512 || v[3] != 1) {
        fprintf(stderr, "llamacpp_bench: unexpected llama_context_params "
                "defaults (%d %d %d %d)\n", v[0], v[1], v[2], v[3]);
        return -1;
    }
    for (i = 4; i < 8; i++) {
        if (v[i] == 4 && v[i + 1] == 4) {
            break;
        }
    }
    if (i == 8) {
        fprintf(stderr, "llamacpp_bench: n_threads not found in "
                "llama_context_params\n");
        return -1;
    }
    v[0] = n_ctx;
    v[1] = n_batch;
    v[2] = n_ubatch;
    v[i] = threads;
    v[i + 1] = threads;
    if (flash_attn != -1) {
        /* rope scaling, pooling and attention types, then the flash
         * attention type: all -1 (unspecified, auto) by default */
        for (k = i + 2; k + 3 < 16; k++) {
            if (v[k] == -1 && v[k + 1] == -1 && v[k + 2] == -1
                && v[k + 3] == -1)
            {
                break;
            }
        }
        if (k + 3 >= 16) {
            fprintf(stderr, "llamacpp_bench: this llama.cpp has no "
                    "flash_attn_type\n");
            return -1;
        }
        v[k + 3] = flash_attn;
    }
    memcpy(p->b, v, sizeof(v));
    return 0;
}

/*
 * Evaluates n tokens in batches of at most n_batch (llama-bench and the
 * server submit 2048), and waits for them. 0, or -1 after saying so.
 */
static int
lc_eval(lc_api_t *api, void *ctx, int32_t *toks, int n, int n_batch)
{
    int  i;

    for (i = 0; i < n; i += n_batch) {
        if (api->decode(ctx, api->batch_get_one(toks + i,
                                                n - i < n_batch ? n - i
                                                                : n_batch))
            != 0)
        {
            fprintf(stderr, "llamacpp_bench: llama_decode failed\n");
            return -1;
        }
    }
    api->synchronize(ctx);
    return 0;
}


/* the prompts of FILE in turn, as the server's one slot serves them */
static int
serve_prompts(lc_api_t *api, void *ctx, const char *file, int n_ctx)
{
    FILE     *f = fopen(file, "r");
    char     *line = NULL, *s, *end, label[128];
    size_t    cap = 0;
    int32_t  *cache = malloc(sizeof(int32_t) * n_ctx),
             *prompt = malloc(sizeof(int32_t) * n_ctx);
    int       n_cache = 0, n, keep;
    double    t0;

    if (f == NULL) {
        perror(file);
        return 1;
    }
    while (getline(&line, &cap, f) > 0) {
        if (sscanf(line, "%127s", label) != 1) {
            continue;
        }
        s = line + strlen(label);
        for (n = 0; n < n_ctx; n++) {
            prompt[n] = (int32_t) strtol(s, &end, 10);
            if (end == s) {
                break;
            }
            s = end;
        }
        for (keep = 0; keep < n && keep < n_cache
                       && prompt[keep] == cache[keep]; keep++)
        {
            /* void */
        }
        if (keep == n) {
            keep--;
        }
        t0 = bench_now();
        api->memory_seq_rm(api->get_memory(ctx), 0, keep, -1);
        if (lc_eval(api, ctx, prompt + keep, n - keep, 2048) != 0) {
            return 2;
        }
        printf("ttft %s %.3f %d\n", label, (bench_now() - t0) * 1e3, n - keep);
        fflush(stdout);
        memcpy(cache, prompt, n * sizeof(int32_t));
        n_cache = n;
    }
    free(line);
    free(cache);
    free(prompt);
    fclose(f);
    return 0;
}

int
main(int argc, char **argv)
{
    const char   *lib = NULL, *model_path = NULL, *prompts = NULL;
    char          pp_list[256] = "512,2048", *s, *save;
    int           threads = 2, tg = 64, reps = 3, i, r, n, n_ctx = 4096;
    int           fa = -1;
    int32_t      *tokens;
    lc_api_t      api;
    lc_params_t   mp, cp;
    void         *model, *ctx;
    double        t0, best;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--lib") == 0 && i + 1 < argc) {
            lib = argv[++i];
        } else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            model_path = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--pp") == 0 && i + 1 < argc) {
            snprintf(pp_list, sizeof(pp_list), "%s", argv[++i]);
        } else if (strcmp(argv[i], "--tg") == 0 && i + 1 < argc) {
            tg = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--prompts") == 0 && i + 1 < argc) {
            prompts = argv[++i];
        } else if (strcmp(argv[i], "--flash-attn") == 0 && i + 1 < argc) {
            i++;
            fa = strcmp(argv[i], "on") == 0 ? 1
                 : strcmp(argv[i], "off") == 0 ? 0 : -1;
        } else {
            fprintf(stderr, "usage: llamacpp_bench --lib DIR --model FILE "
                    "[--threads N] [--pp N,N] [--tg N] [--reps N] "
                    "[--prompts FILE] [--flash-attn auto|on|off]\n");
            return 1;
        }
    }
    if (lib == NULL || model_path == NULL || threads < 1 || reps < 1) {
        fprintf(stderr, "llamacpp_bench: --lib and --model are required\n");
        return 1;
    }
    if (load_api(lib, &api) != 0) {
        return 2;
    }
    api.log_set(quiet_log, NULL);
    api.load_all_from_path(lib);
    api.backend_init();
    mp = api.model_default_params();
    model = api.model_load(model_path, mp);
    if (model == NULL) {
        fprintf(stderr, "llamacpp_bench: llama.cpp cannot load %s\n",
                model_path);
        return 2;
    }
    cp = api.context_default_params();
    /* llama-bench's defaults: n_batch 2048, n_ubatch 512 */
    if (set_context(&cp, n_ctx, 2048, 512, threads, fa) != 0) {
        return 2;
    }
    ctx = api.init_from_model(model, cp);
    if (ctx == NULL) {
        fprintf(stderr, "llamacpp_bench: cannot create a context\n");
        return 2;
    }
    tokens = malloc(sizeof(int32_t) * n_ctx);
    srand(1);
    for (i = 0; i < n_ctx; i++) {
        tokens[i] = 3 + rand() % 30000;
    }

    /* warm-up, as llama-bench does */
    api.decode(ctx, api.batch_get_one(tokens, 16));
    api.synchronize(ctx);
    api.memory_clear(api.get_memory(ctx), 1);
    if (prompts != NULL) {
        r = serve_prompts(&api, ctx, prompts, n_ctx);
        api.free_ctx(ctx);
        api.model_free(model);
        free(tokens);
        return r;
    }

    for (s = strtok_r(pp_list, ",", &save); s;
         s = strtok_r(NULL, ",", &save))
    {
        n = atoi(s);
        if (n < 1 || n > n_ctx) {
            continue;
        }
        best = 0;
        for (r = 0; r < reps; r++) {
            api.memory_clear(api.get_memory(ctx), 1);
            t0 = bench_now();
            if (lc_eval(&api, ctx, tokens, n, 2048) != 0) {
                return 2;
            }
            t0 = n / (bench_now() - t0);
            best = t0 > best ? t0 : best;
        }
        printf("pp%d %.1f\n", n, best);
        fflush(stdout);
    }
    if (tg > 0) {
        best = 0;
        for (r = 0; r < reps; r++) {
            /* after a 16-token prompt, as engine_bench decodes */
            api.memory_clear(api.get_memory(ctx), 1);
            if (lc_eval(&api, ctx, tokens, 16, 2048) != 0) {
                return 2;
            }
            t0 = bench_now();
            if (lc_eval(&api, ctx, tokens + 16, tg, 1) != 0) {
                return 2;
            }
            t0 = tg / (bench_now() - t0);
            best = t0 > best ? t0 : best;
        }
        printf("tg%d %.1f\n", tg, best);
    }
    api.free_ctx(ctx);
    api.model_free(model);
    free(tokens);
    return 0;
}
