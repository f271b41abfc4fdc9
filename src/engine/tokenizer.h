/*
 * Tokenizers for llmcache-worker: SentencePiece-style (GGUF
 * `tokenizer.ggml.model = llama`, and llama2.c's tok*.bin) and byte-level
 * BPE (`gpt2`), built from a GGUF vocab.
 *
 * tokenizer_decode() returns the bytes of one token; a UTF-8 character may
 * be split over several tokens (byte fallback, BPE bytes), so joining the
 * pieces into valid text is the caller's concern.
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

/* returns the number of ids written, or -1 (err); add_special: BOS as the
 * vocab says, and special tokens written in the text are parsed as ids */
int tokenizer_encode(const tokenizer_t *tok, const char *text, size_t len,
    int add_special, int32_t *out, int max_out, char *err, size_t errlen);

/* the bytes of one token as text (▁ → space, <0xXX> → byte, BPE byte map
 * undone); prev is the previous id (-1 at start) for the SentencePiece
 * leading-space rule; returns length or -1 */
int tokenizer_decode(const tokenizer_t *tok, int32_t prev, int32_t id,
    char *buf, size_t size);

int tokenizer_n_vocab(const tokenizer_t *tok);
int32_t tokenizer_bos(const tokenizer_t *tok);
int32_t tokenizer_eos(const tokenizer_t *tok);
int tokenizer_is_eog(const tokenizer_t *tok, int32_t id);
int32_t tokenizer_find(const tokenizer_t *tok, const char *piece);

#endif /* LLMC_TOKENIZER_H */
