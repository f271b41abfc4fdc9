/*
 * llama2.c checkpoint loader. Header: dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size (negative: a separate classifier follows),
 * seq_len; then token embedding, per-layer arrays grouped by kind, final
 * norm, two legacy RoPE tables and the optional classifier.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llama2c.h"
#include "quant.h"
#include "tokenizer.h"

typedef struct {
    void           *map;
    size_t          size;
    gguf_tensor_t  *t;
    char          (*names)[GGUF_MAX_NAME];
    int             n;
} llama2c_t;

static void
llama2c_release(void *ud)
{
    llama2c_t  *c = ud;

    if (c == NULL) {
        return;
    }
    if (c->map) {
        munmap(c->map, c->size);
    }
    free(c->t);
    free(c->names);
    free(c);
}

static const gguf_tensor_t *
llama2c_find(void *ud, const char *name)
{
    llama2c_t  *c = ud;
    int         i;

    for (i = 0; i < c->n; i++) {
        if (strcmp(c->t[i].name, name) == 0) {
            return &c->t[i];
        }
    }
    return NULL;
}

static int
header_to_hparams(const int32_t *h, model_hparams_t *hp, int *shared,
    char *err, size_t errlen)
{
    memset(hp, 0, sizeof(*hp));
    hp->arch = MODEL_ARCH_LLAMA;
    hp->dim = h[0];
    hp->ffn_dim = h[1];
    hp->n_layers = h[2];
    hp->n_heads = h[3];
    hp->n_kv_heads = h[4];
    *shared = h[5] > 0;
    hp->n_vocab = h[5] > 0 ? h[5] : -(int64_t) h[5] > INT32_MAX ? 0 : -h[5];
    hp->n_ctx_train = h[6];
    if (hp->dim <= 0 || hp->ffn_dim <= 0 || hp->n_layers <= 0
        || hp->n_heads <= 0 || hp->n_kv_heads <= 0 || hp->n_vocab <= 0
        || hp->n_ctx_train <= 0 || hp->dim % hp->n_heads != 0
        || hp->n_heads % hp->n_kv_heads != 0 || hp->dim > (1 << 16)
        || hp->ffn_dim > (1 << 18) || hp->n_layers > 1024
        || hp->n_vocab > (1 << 22) || hp->n_ctx_train > (1 << 22))
    {
        snprintf(err, errlen, "model_load_llama2c: bad header: dim %d "
                 "hidden %d layers %d heads %d kv_heads %d vocab %d "
                 "seq_len %d", h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
        return -1;
    }
    hp->head_dim = hp->dim / hp->n_heads;
    hp->rope_dim = hp->head_dim;
    hp->rope_base = 10000.0f;
    hp->norm_eps = 1e-5f;
    snprintf(hp->name, sizeof(hp->name), "llama2.c");
    return 0;
}

int
llama2c_read_header(const char *ckpt, model_hparams_t *hp, int *shared,
    char *err, size_t errlen)
{
    int32_t  h[7];
    FILE    *f = fopen(ckpt, "rb");

    if (f == NULL) {
        snprintf(err, errlen, "model_load_llama2c: %s: %s", ckpt,
                 strerror(errno));
        return -1;
    }
    if (fread(h, sizeof(int32_t), 7, f) != 7) {
        fclose(f);
        snprintf(err, errlen, "model_load_llama2c: %s: truncated header",
                 ckpt);
        return -1;
    }
    fclose(f);
    return header_to_hparams(h, hp, shared, err, errlen);
}

static void
add_tensor(llama2c_t *c, const char *name, const float *data, int cols,
    int rows)
{
    gguf_tensor_t  *t = &c->t[c->n];

    snprintf(c->names[c->n], GGUF_MAX_NAME, "%s", name);
    t->name = c->names[c->n];
    t->n_dims = rows > 1 ? 2 : 1;
    t->ne[0] = cols;
    t->ne[1] = rows;
    t->ne[2] = 1;
    t->ne[3] = 1;
    t->type = GGML_TYPE_F32;
    t->data = data;
    t->nbytes = (size_t) cols * rows * sizeof(float);
    c->n++;
}

model_t *
model_load_llama2c(const char *ckpt, const char *tok_path, int n_threads,
    char *err, size_t errlen)
{
    model_hparams_t   hp;
    llama2c_t        *c;
    tokenizer_t      *tok = NULL;
    struct stat       st;
    const float      *p;
    uint64_t          need, L, dim, kvd, hid, voc, hs;
    int               fd, shared, l, max;
    char              name[GGUF_MAX_NAME];

    if (llama2c_read_header(ckpt, &hp, &shared, err, errlen) != 0) {
        return NULL;
    }
    L = hp.n_layers;
    dim = hp.dim;
    kvd = (uint64_t) hp.n_kv_heads * hp.head_dim;
    hid = hp.ffn_dim;
    voc = hp.n_vocab;
    hs = hp.head_dim;
    /* floats after the header, all bounded by the header checks */
    need = voc * dim + L * dim * 2 + L * dim * dim * 2 + L * dim * kvd * 2
           + L * dim * hid * 3 + dim + (uint64_t) hp.n_ctx_train * hs
           + (shared ? 0 : voc * dim);

    fd = open(ckpt, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "model_load_llama2c: %s: %s", ckpt,
                 strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    if ((uint64_t) st.st_size < 28 + need * sizeof(float)) {
        close(fd);
        snprintf(err, errlen, "model_load_llama2c: %s: truncated: %lld "
                 "bytes, the header needs %llu", ckpt,
                 (long long) st.st_size,
                 (unsigned long long) (28 + need * sizeof(float)));
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    max = 9 * hp.n_layers + 3;
    if (c == NULL || (c->t = calloc(max, sizeof(gguf_tensor_t))) == NULL
        || (c->names = calloc(max, GGUF_MAX_NAME)) == NULL)
    {
        close(fd);
        llama2c_release(c);
        snprintf(err, errlen, "model_load_llama2c: out of memory");
        return NULL;
    }
    c->size = st.st_size;
    c->map = mmap(NULL, c->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (c->map == MAP_FAILED) {
        c->map = NULL;
        llama2c_release(c);
        snprintf(err, errlen, "model_load_llama2c: mmap %s: %s", ckpt,
                 strerror(errno));
        return NULL;
    }

    p = (const float *) ((const char *) c->map + 28);
    add_tensor(c, "token_embd.weight", p, dim, voc);
    p += voc * dim;

#define PER_LAYER(kind, cols, rows)                                          \
    for (l = 0; l < hp.n_layers; l++) {                                      \
        snprintf(name, sizeof(name), "blk.%d." kind, l);                     \
        add_tensor(c, name, p, cols, rows);                                  \
        p += (uint64_t) (cols) * (rows);                                     \
    }

    PER_LAYER("attn_norm.weight", dim, 1)
    PER_LAYER("attn_q.weight", dim, dim)
    PER_LAYER("attn_k.weight", dim, kvd)
    PER_LAYER("attn_v.weight", dim, kvd)
    PER_LAYER("attn_output.weight", dim, dim)
    PER_LAYER("ffn_norm.weight", dim, 1)
    PER_LAYER("ffn_gate.weight", dim, hid)
    PER_LAYER("ffn_down.weight", hid, dim)
    PER_LAYER("ffn_up.weight", dim, hid)

#undef PER_LAYER

    add_tensor(c, "output_norm.weight", p, dim, 1);
    p += dim;
    p += (uint64_t) hp.n_ctx_train * hs;     /* freq_cis_real, _imag */
    if (!shared) {
        add_tensor(c, "output.weight", p, dim, voc);
    }

    if (tok_path != NULL) {
        tok = tokenizer_from_llama2c(tok_path, hp.n_vocab, err, errlen);
        if (tok == NULL) {
            llama2c_release(c);
            return NULL;
        }
    }
    return model_build(&hp, llama2c_find, c, llama2c_release, tok,
                       n_threads, err, errlen);
}
