/*
 * A small GGUF writer for test fixtures and tools: metadata of every type,
 * arrays, tensors laid out at the alignment. It writes what it is told
 * (duplicate keys, odd versions and alignments included), so tests can
 * also build files the reader must refuse.
 */

#ifndef LLMC_GGUF_WRITE_H
#define LLMC_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct gguf_writer gguf_writer_t;

gguf_writer_t *gguf_writer_new(void);
void gguf_writer_free(gguf_writer_t *w);

void gguf_writer_set_version(gguf_writer_t *w, uint32_t version);
/* the alignment used for the layout; also written as general.alignment
   when it differs from 32 */
void gguf_writer_set_alignment(gguf_writer_t *w, uint32_t alignment);

/* scalar of any non-array type; val points to the value (bool: uint8_t) */
int gguf_writer_add(gguf_writer_t *w, const char *key, gguf_type_e type,
    const void *val);
int gguf_writer_add_u32(gguf_writer_t *w, const char *key, uint32_t v);
int gguf_writer_add_i32(gguf_writer_t *w, const char *key, int32_t v);
int gguf_writer_add_f32(gguf_writer_t *w, const char *key, float v);
int gguf_writer_add_bool(gguf_writer_t *w, const char *key, int v);
int gguf_writer_add_str(gguf_writer_t *w, const char *key, const char *s);
/* numeric array: n raw elements of elem */
int gguf_writer_add_arr(gguf_writer_t *w, const char *key, gguf_type_e elem,
    const void *data, uint64_t n);
int gguf_writer_add_arr_str(gguf_writer_t *w, const char *key,
    const char *const *strs, uint64_t n);

/* data is copied; nbytes must match the shape and type */
int gguf_writer_add_tensor(gguf_writer_t *w, const char *name,
    uint32_t n_dims, const int64_t *ne, uint32_t type, const void *data,
    size_t nbytes);

/* the serialized file in a malloc()ed buffer */
void *gguf_writer_to_mem(gguf_writer_t *w, size_t *size);
int gguf_writer_write(gguf_writer_t *w, const char *path, char *err,
    size_t errlen);

/*
 * A random Llama model with a tiny SentencePiece-style vocab (<unk>, <s>,
 * </s>, the 256 byte tokens <0x00>..<0xFF>, then scored pieces), fully
 * determined by the seed. Matrices (and the embedding) use wtype (F32,
 * F16, BF16, Q8_0 or Q4_0), norms are F32.
 */
typedef struct {
    int          dim, n_layers, n_heads, n_kv_heads, ffn_dim, n_vocab, n_ctx;
    uint32_t     wtype;
    uint64_t     seed;
    int          tied;          /* no output.weight */
    float        rope_base;     /* 0: leave the key out (10000 implied) */
    const char  *name;
} gguf_random_llama_t;

void gguf_random_llama_defaults(gguf_random_llama_t *p);
int gguf_write_random_llama(const gguf_random_llama_t *p, const char *path,
    char *err, size_t errlen);
/* the same model as an unwritten writer (tests add or drop things) */
gguf_writer_t *gguf_random_llama_writer(const gguf_random_llama_t *p,
    const char *skip_tensor, char *err, size_t errlen);

/*
 * Random Falcon, MPT and BERT models in the tensor layout and keys
 * llama.cpp's converter writes (the vocab is the Llama writer's): for
 * fixtures and benchmarks of those forward passes. arch "llama" gives the
 * Llama writer's model. Norm weights and biases are F32, matrices and the
 * embeddings base.wtype.
 */
typedef struct {
    gguf_random_llama_t  base;      /* shape, type, seed, tied, name */
    const char          *arch;      /* "llama", "falcon", "mpt", "bert" */
    int                  biases;    /* Falcon, MPT: the optional biases */
    int                  norm_2;    /* Falcon: attn_norm_2 (40B layout) */
    int                  pos_embd;  /* MPT: learned positions as well */
    float                alibi_bias;    /* MPT: max_alibi_bias */
    float                clamp_kqv;     /* MPT: 0 leaves the key out */
    int                  pooling;   /* BERT: 1 mean, 2 cls, 3 last */
    int                  causal;    /* BERT: attention.causal = true (a
                                       file the loader must refuse) */
} gguf_random_arch_t;

/* the Llama defaults; Falcon: 1 KV head; MPT: ALiBi bias 8; BERT: mean */
void gguf_random_arch_defaults(gguf_random_arch_t *p, const char *arch);
int gguf_write_random_arch(const gguf_random_arch_t *p, const char *path,
    char *err, size_t errlen);
gguf_writer_t *gguf_random_arch_writer(const gguf_random_arch_t *p,
    const char *skip_tensor, char *err, size_t errlen);

#endif /* LLMC_GGUF_WRITE_H */
