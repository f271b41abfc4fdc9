/*
 * llmcache-mkmodel: writes a random Llama, Falcon, MPT or BERT model (GGUF)
 * of any shape with a tiny SentencePiece-style vocab, deterministic from
 * the seed. For tests, benchmarks and trying the worker without
 * downloading a model.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_write.h"
#include "quant.h"

static void
usage(FILE *f)
{
    fprintf(f,
        "usage: llmcache-mkmodel --out FILE [--arch llama|falcon|mpt|bert]\n"
        "         [--seed N] [--dim N] [--layers N]\n"
        "         [--heads N] [--kv-heads N] [--ffn N] [--vocab N] "
        "[--ctx N]\n"
        "         [--type f32|f16|bf16|q8_0|q4_0] [--tied] "
        "[--rope-base F]\n"
        "         [--name NAME]\n"
        "defaults: --arch llama --dim 64 --layers 2 --heads 4 --kv-heads 2 "
        "--ffn 128\n"
        "          --vocab 512 --ctx 256 --type f32 --seed 1 (vocab >= 262)\n"
        "          falcon: --kv-heads 1; mpt and bert: --kv-heads = --heads;"
        " mpt: ALiBi\n"
        "          max bias 8; bert: mean pooling\n");
}

static int
parse_int(const char *s, int *out)
{
    char  *end;
    long   v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v <= 0 || v > (1L << 30)) {
        return -1;
    }
    *out = (int) v;
    return 0;
}

int
main(int argc, char **argv)
{
    gguf_random_arch_t    ap;
    gguf_random_llama_t   p;
    const char           *out = NULL, *a, *v, *arch = "llama";
    char                  err[256];
    int                   i, bad = 0;
    static const struct { const char *name; uint32_t type; } types[] = {
        { "f32", GGML_TYPE_F32 }, { "f16", GGML_TYPE_F16 },
        { "bf16", GGML_TYPE_BF16 }, { "q8_0", GGML_TYPE_Q8_0 },
        { "q4_0", GGML_TYPE_Q4_0 },
    };
    size_t                t;
    int                   kv_set = 0;

    /* --arch first: it sets the defaults the other options change */
    for (i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--arch") == 0) {
            arch = argv[i + 1];
        }
    }
    if (strcmp(arch, "llama") != 0 && strcmp(arch, "falcon") != 0
        && strcmp(arch, "mpt") != 0 && strcmp(arch, "bert") != 0)
    {
        fprintf(stderr, "llmcache-mkmodel: unknown architecture '%s'\n",
                arch);
        return 2;
    }
    gguf_random_arch_defaults(&ap, arch);
    p = ap.base;
    for (i = 1; i < argc; i++) {
        a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--tied") == 0) {
            p.tied = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "llmcache-mkmodel: %s needs a value\n", a);
            return 2;
        }
        v = argv[++i];
        if (strcmp(a, "--out") == 0) {
            out = v;
        } else if (strcmp(a, "--arch") == 0) {
            /* read above */
        } else if (strcmp(a, "--seed") == 0) {
            p.seed = strtoull(v, NULL, 10);
        } else if (strcmp(a, "--dim") == 0) {
            bad |= parse_int(v, &p.dim);
        } else if (strcmp(a, "--layers") == 0) {
            bad |= parse_int(v, &p.n_layers);
        } else if (strcmp(a, "--heads") == 0) {
            bad |= parse_int(v, &p.n_heads);
        } else if (strcmp(a, "--kv-heads") == 0) {
            bad |= parse_int(v, &p.n_kv_heads);
            kv_set = 1;
        } else if (strcmp(a, "--ffn") == 0) {
            bad |= parse_int(v, &p.ffn_dim);
        } else if (strcmp(a, "--vocab") == 0) {
            bad |= parse_int(v, &p.n_vocab);
        } else if (strcmp(a, "--ctx") == 0) {
            bad |= parse_int(v, &p.n_ctx);
        } else if (strcmp(a, "--rope-base") == 0) {
            p.rope_base = strtof(v, NULL);
        } else if (strcmp(a, "--name") == 0) {
            p.name = v;
        } else if (strcmp(a, "--type") == 0) {
            for (t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
                if (strcmp(v, types[t].name) == 0) {
                    p.wtype = types[t].type;
                    break;
                }
            }
            if (t == sizeof(types) / sizeof(types[0])) {
                fprintf(stderr, "llmcache-mkmodel: unknown type '%s'\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "llmcache-mkmodel: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "llmcache-mkmodel: bad value for %s: '%s'\n", a,
                    v);
            return 2;
        }
    }
    if (out == NULL) {
        usage(stderr);
        return 2;
    }
    /* MPT and BERT default to one KV head per head, whatever --heads */
    if (!kv_set && (strcmp(arch, "mpt") == 0 || strcmp(arch, "bert") == 0))
    {
        p.n_kv_heads = p.n_heads;
    }
    ap.base = p;
    if (gguf_write_random_arch(&ap, out, err, sizeof(err)) != 0) {
        fprintf(stderr, "llmcache-mkmodel: %s\n", err);
        return 1;
    }
    return 0;
}
