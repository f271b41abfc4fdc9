/*
 * Tokenizers for llmcache-worker, token for token as llama.cpp's:
 * SentencePiece-style (GGUF `tokenizer.ggml.model = llama`, and llama2.c's
 * tok*.bin), byte-level BPE (`gpt2`; pre-tokenizers default, gpt-2, mpt,
 * falcon, llama-bpe, dbrx, qwen2) and WordPiece (`bert`).
 *
 * tokenizer_decode() returns the bytes of one token; a UTF-8 character may
 * be split over several tokens (byte fallback, BPE bytes), so joining the
 * pieces into valid text is the caller's concern. Control and unknown
 * tokens decode to nothing. The tokenizer is read-only once built: several
 * threads may encode and decode with it at once.
 */

#ifndef LLMC_TOKENIZER_H
#define LLMC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct gguf_ctx gguf_ctx_t;
typedef struct tokenizer tokenizer_t;

tokenizer_t *tokenizer_from_gguf(const gguf_ctx_t *ctx, char *err,
    size_t errlen);
tokenizer_t *tokenizer_from_llama2c(const char *path, int n_vocab, char *err,
    size_t errlen);
void tokenizer_free(tokenizer_t *tok);

/* returns the number of ids written, or -1 (err, also when more than
 * max_out ids would be needed); add_special: BOS (and EOS, or [CLS] ...
 * [SEP]) as the vocab says, and control tokens written in the text are
 * parsed as ids. User-defined tokens are always parsed. */
int tokenizer_encode(const tokenizer_t *tok, const char *text, size_t len,
    int add_special, int32_t *out, int max_out, char *err, size_t errlen);

/* the bytes of one token as text (▁ → space, <0xXX> → byte, BPE byte map
 * undone); prev is the previous id (-1 at start) for the SentencePiece
 * leading-space rule (the space the encoder added is dropped at the start
 * and after BOS); returns length (NUL-terminated when it fits) or -1 */
int tokenizer_decode(const tokenizer_t *tok, int32_t prev, int32_t id,
    char *buf, size_t size);

int tokenizer_n_vocab(const tokenizer_t *tok);
int32_t tokenizer_bos(const tokenizer_t *tok);
int32_t tokenizer_eos(const tokenizer_t *tok);
int tokenizer_is_eog(const tokenizer_t *tok, int32_t id);
int32_t tokenizer_find(const tokenizer_t *tok, const char *piece);

/* ---- additions: building from an in-memory vocabulary, inspection ---- */

typedef enum {
    TOKENIZER_SPM = 1,          /* SentencePiece-style, scores */
    TOKENIZER_BPE,              /* byte-level BPE, merges */
    TOKENIZER_WPM               /* WordPiece (BERT), pieces start with U+2581
                                   where a word starts */
} tokenizer_kind_e;

typedef enum {
    TOKENIZER_PRE_DEFAULT = 0,  /* BPE without tokenizer.ggml.pre */
    TOKENIZER_PRE_GPT2,         /* gpt-2, mpt, olmo, ... */
    TOKENIZER_PRE_FALCON,
    TOKENIZER_PRE_LLAMA3,       /* llama-bpe: digits in threes, a word that
                                   is a token skips the merges */
    TOKENIZER_PRE_DBRX,         /* the Llama 3 split, with merges */
    TOKENIZER_PRE_QWEN2         /* the Llama 3 split, single digits */
} tokenizer_pre_e;

/* tokenizer.ggml.token_type values */
enum {
    TOKEN_TYPE_UNDEFINED = 0,
    TOKEN_TYPE_NORMAL,
    TOKEN_TYPE_UNKNOWN,
    TOKEN_TYPE_CONTROL,
    TOKEN_TYPE_USER_DEFINED,
    TOKEN_TYPE_UNUSED,
    TOKEN_TYPE_BYTE
};

typedef struct {
    tokenizer_kind_e    kind;
    tokenizer_pre_e     pre;
    int                 n_vocab;
    const char *const  *tokens;       /* n_vocab pieces */
    const size_t       *lens;         /* NULL: NUL-terminated pieces */
    const float        *scores;       /* NULL: all 0 */
    const int32_t      *types;        /* NULL: all TOKEN_TYPE_NORMAL */
    const char *const  *merges;       /* BPE: "left right", by rank */
    const size_t       *merge_lens;   /* NULL: NUL-terminated */
    int                 n_merges;
    int32_t             bos, eos, unk, eot;   /* -1: none */
    int32_t             sep;          /* WPM: appended with add_special */
    int                 add_bos;
    int                 add_eos;
    int                 add_space_prefix;     /* SPM */
    int                 plain_space;  /* SPM pieces use ' ', not U+2581 */
    int                 no_special_parse;
} tokenizer_vocab_t;

/* copies everything it needs from v */
tokenizer_t *tokenizer_from_vocab(const tokenizer_vocab_t *v, char *err,
    size_t errlen);

tokenizer_kind_e tokenizer_kind(const tokenizer_t *tok);
int tokenizer_add_bos(const tokenizer_t *tok);
/* the raw vocab piece (not NUL-safe: use len); NULL when out of range */
const char *tokenizer_text(const tokenizer_t *tok, int32_t id, size_t *len);
int tokenizer_token_type(const tokenizer_t *tok, int32_t id);

#endif /* LLMC_TOKENIZER_H */
