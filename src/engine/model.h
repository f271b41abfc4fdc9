/*
 * Forward passes over GGUF (or llama2.c) weights: Llama-family, Falcon and
 * MPT decoders and BERT encoders. Hparams, weights mmapped read-only, a
 * per-sequence KV cache, batched evaluation with explicit positions.
 */

#ifndef LLMC_MODEL_H
#define LLMC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct tokenizer tokenizer_t;

typedef enum {
    MODEL_ARCH_LLAMA = 0,       /* RMSNorm, RoPE, SwiGLU */
    MODEL_ARCH_FALCON,          /* parallel block, LayerNorm, NEOX RoPE,
                                   GELU */
    MODEL_ARCH_MPT,             /* LayerNorm, ALiBi, GELU */
    MODEL_ARCH_BERT             /* encoder: post-LayerNorm, GELU, pooling */
} model_arch_e;

typedef enum {
    MODEL_POOLING_NONE = 0,     /* decoders */
    MODEL_POOLING_MEAN = 1,
    MODEL_POOLING_CLS = 2,
    MODEL_POOLING_LAST = 3
} model_pooling_e;

typedef struct {
    model_arch_e  arch;
    int           n_vocab, n_ctx_train, dim, n_layers, n_heads, n_kv_heads,
                  head_dim, ffn_dim, rope_dim, rope_neox;
    float         rope_base, norm_eps;
    char          name[128];
    /* llama2.c and Llama loaders may leave these 0 (llama defaults) */
    int           non_causal;   /* BERT: every token sees every token */
    int           pooling;      /* model_pooling_e, encoders */
    int           alibi;        /* MPT: ALiBi instead of RoPE */
    float         alibi_bias;   /* max_alibi_bias (0: slope 1 everywhere) */
    float         clamp_kqv;    /* MPT: clamp fused QKV to +-this, 0: no */
} model_hparams_t;

typedef struct model model_t;
typedef struct kv_cache kv_cache_t;

model_t *model_load(const char *path, int n_threads, char *err,
    size_t errlen);                                            /* GGUF */
model_t *model_load_llama2c(const char *ckpt, const char *tok_path,
    int n_threads, char *err, size_t errlen);
void model_free(model_t *m);

const model_hparams_t *model_hparams(const model_t *m);
/* "llama", "falcon", "mpt", "bert" */
const char *model_arch_name(model_arch_e arch);
/*
 * 1 for encoders (BERT): no logits, so model_eval and model_eval_seg fail;
 * model_embed gives the pooled sentence embedding. Servers refuse
 * completions on them and serve only embeddings.
 */
int model_is_encoder(const model_t *m);
const tokenizer_t *model_tokenizer(const model_t *m);
const gguf_ctx_t *model_gguf(const model_t *m);         /* NULL: llama2.c */

kv_cache_t *kv_cache_new(const model_t *m, int n_ctx);
void kv_cache_free(kv_cache_t *kv);
int kv_cache_len(const kv_cache_t *kv);
void kv_cache_truncate(kv_cache_t *kv, int n);
int kv_cache_n_ctx(const kv_cache_t *kv);
/*
 * Appends entries [from, from + n) of src (a cache of the same model) to
 * dst, as they are: the K/V of stored prompt modules are reused this way,
 * keeping the positions they were evaluated at. 0 or -1 (bad range, full).
 */
int kv_cache_append(kv_cache_t *dst, const kv_cache_t *src, int from,
    int n);

/*
 * Entries as bytes, for storing them elsewhere (a file): entry_bytes per
 * entry (K and V of every layer, F32, the segment and the position; for
 * scale, a Llama2-7B shape takes 0.5 MB). export writes entries
 * [from, from + n) to buf, import appends n entries read from buf; 0 or -1
 * (bad range, full). The bytes are for the same model on the same machine.
 * Layout of n entries: for each layer, K (n x kv_dim floats, entry-major)
 * then V (the same); then n int32 segments; then n int32 positions (ALiBi
 * biases scores by the stored positions, so they travel with the K/V).
 */
size_t kv_cache_entry_bytes(const model_t *m);
int kv_cache_export(const kv_cache_t *kv, int from, int n, void *buf);
int kv_cache_import(kv_cache_t *kv, const void *buf, int n);

/*
 * Evaluates n tokens appended to kv (one model_eval at a time per model:
 * the scratch buffers are the model's). pos: absolute position of each token
 * (NULL = kv_len, kv_len + 1, ...). logits: n_vocab floats for the last
 * token (n * n_vocab when logits_all), may be NULL. Returns 0 or -1 (err).
 * The n tokens go through each layer as one matrix-matrix pass.
 */
int model_eval(model_t *m, kv_cache_t *kv, const int32_t *tokens,
    const int32_t *pos, int n, float *logits, int logits_all, char *err,
    size_t errlen);

/*
 * model_eval with attention segments: seg[i] != 0 makes token i attend
 * only to the cache entries of the same segment (and itself); 0 attends to
 * everything before it. Entries keep their segment when appended to
 * another cache, so a module evaluated alone can be reproduced in one pass
 * with a block-diagonal mask (the reference for Prompt Cache's independent
 * mode). seg NULL: all 0, as model_eval.
 */
int model_eval_seg(model_t *m, kv_cache_t *kv, const int32_t *tokens,
    const int32_t *pos, const int32_t *seg, int n, float *logits,
    int logits_all, char *err, size_t errlen);

/*
 * dim floats, L2-normalized. Decoders: the mean of the final hidden states
 * (after the final norm). Encoders: the pooling the model names (mean,
 * [CLS] or last) of the last layer's output, positions 0..n-1, token type
 * 0, all tokens in one bidirectional pass (n <= the trained context).
 */
int model_embed(model_t *m, const int32_t *tokens, int n, float *out,
    char *err, size_t errlen);

/*
 * For loaders of other checkpoint formats (llama2c.c): build a model from
 * hparams and tensors found by name ("token_embd.weight", "blk.N.attn_q.
 * weight", ... in GGUF naming and shapes). The tensors must stay valid
 * until release(ud) runs in model_free; tok (may be NULL) is owned by m.
 */
typedef const gguf_tensor_t *(*model_tensor_fn)(void *ud, const char *name);

model_t *model_build(const model_hparams_t *hp, model_tensor_fn find,
    void *ud, void (*release)(void *ud), tokenizer_t *tok, int n_threads,
    char *err, size_t errlen);

int model_n_threads(const model_t *m);

#endif /* LLMC_MODEL_H */
