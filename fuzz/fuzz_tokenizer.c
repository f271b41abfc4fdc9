/*
 * Fuzzes tokenizer_encode() and tokenizer_decode() with small built-in
 * vocabularies: SentencePiece-style (U+2581 and plain-space pieces, byte
 * fallback, control and user-defined tokens) and byte-level BPE under each
 * pre-tokenizer (gpt-2, falcon, default, llama3, qwen2). Besides what
 * ASan and UBSan catch, it checks that ids are in range and that decoding
 * gives the input back where that must hold.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

#define SP  "\xe2\x96\x81"

static tokenizer_t  *toks[8];
static int           round_trips[8];    /* decode(encode(x)) == x holds */
static int           is_bpe[8];

static const char *spm_extra[] = {
    SP, "a", "b", "c", "e", "h", "l", "o", "ab", "bc", "he", "ll", "llo",
    "hello", SP "hello", SP "a", SP SP, "<|im_end|>", "<tool>", NULL
};

static tokenizer_t *
build_spm(int plain_space, int user_defined)
{
    static char         bytes[256][8];
    const char         *t[300];
    float               sc[300];
    int32_t             ty[300];
    char                sp_plain[64][8];
    tokenizer_vocab_t   v;
    int                 n = 0, i;
    char                err[256];

    t[n] = "<unk>"; sc[n] = 0; ty[n++] = TOKEN_TYPE_UNKNOWN;
    t[n] = "<s>"; sc[n] = 0; ty[n++] = TOKEN_TYPE_CONTROL;
    t[n] = "</s>"; sc[n] = 0; ty[n++] = TOKEN_TYPE_CONTROL;
    for (i = 0; i < 256; i++) {
        snprintf(bytes[i], sizeof(bytes[i]), "<0x%02X>", i);
        t[n] = bytes[i]; sc[n] = 0; ty[n++] = TOKEN_TYPE_BYTE;
    }
    for (i = 0; spm_extra[i]; i++) {
        const char *p = spm_extra[i];

        if (plain_space) {
            /* llama2.c pieces keep ' ' where GGUF writes U+2581 */
            size_t k, o = 0;

            for (k = 0; p[k] && o < 7; ) {
                if (strncmp(p + k, SP, 3) == 0) {
                    sp_plain[i][o++] = ' ';
                    k += 3;
                } else {
                    sp_plain[i][o++] = p[k++];
                }
            }
            sp_plain[i][o] = '\0';
            p = sp_plain[i];
        }
        t[n] = p;
        sc[n] = -(float) (i % 7) - 1.0f;
        ty[n++] = TOKEN_TYPE_NORMAL;
    }
    ty[n - 2] = TOKEN_TYPE_CONTROL;
    ty[n - 1] = user_defined ? TOKEN_TYPE_USER_DEFINED : TOKEN_TYPE_NORMAL;

    memset(&v, 0, sizeof(v));
    v.kind = TOKENIZER_SPM;
    v.n_vocab = n;
    v.tokens = t;
    v.scores = sc;
    v.types = ty;
    v.bos = 1;
    v.eos = 2;
    v.unk = 0;
    v.eot = -1;
    v.add_bos = 1;
    v.add_space_prefix = 1;
    v.plain_space = plain_space;
    v.no_special_parse = plain_space;
    return tokenizer_from_vocab(&v, err, sizeof(err));
}

static tokenizer_t *
build_bpe(tokenizer_pre_e pre)
{
    static char         bytes[256][4];
    static const char  *extra[] = { "he", "\xc4\xa0t", "\xc4\xa0the", "the",
                                    "\xc4\xa0\xc4\xa0", "12", "123",
                                    "<|endoftext|>", NULL };
    static const char  *merges[] = { "h e", "\xc4\xa0 t", "\xc4\xa0t he",
                                     "t he", "\xc4\xa0 \xc4\xa0", "1 2",
                                     "12 3" };
    const char         *t[300];
    int32_t             ty[300];
    tokenizer_vocab_t   v;
    int                 n = 0, i, b, c, k;
    uint32_t            cp;
    char                err[256];

    for (b = 0; b < 256; b++) {
        if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac)
            || b >= 0xae)
        {
            cp = (uint32_t) b;
        } else {
            for (c = 0, k = 0; c < b; c++) {
                k += !((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac)
                       || c >= 0xae);
            }
            cp = 256 + (uint32_t) k;
        }
        if (cp < 0x80) {
            bytes[b][0] = (char) cp;
        } else {
            bytes[b][0] = (char) (0xc0 | (cp >> 6));
            bytes[b][1] = (char) (0x80 | (cp & 0x3f));
        }
        t[n] = bytes[b];
        ty[n++] = TOKEN_TYPE_NORMAL;
    }
    for (i = 0; extra[i]; i++) {
        t[n] = extra[i];
        ty[n++] = TOKEN_TYPE_NORMAL;
    }
    ty[n - 1] = TOKEN_TYPE_CONTROL;

    memset(&v, 0, sizeof(v));
    v.kind = TOKENIZER_BPE;
    v.pre = pre;
    v.n_vocab = n;
    v.tokens = t;
    v.types = ty;
    v.merges = merges;
    v.n_merges = (int) (sizeof(merges) / sizeof(merges[0]));
    v.bos = n - 1;
    v.eos = n - 1;
    v.unk = -1;
    v.eot = -1;
    return tokenizer_from_vocab(&v, err, sizeof(err));
}

/* strict UTF-8: no overlong forms, surrogates or code points past U+10FFFF */
static int
utf8_strict(const uint8_t *s, size_t n)
{
    size_t  i = 0, k, need;
    uint8_t lo, hi;

    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        lo = 0x80;
        hi = 0xbf;
        if (s[i] >= 0xc2 && s[i] <= 0xdf) {
            need = 1;
        } else if (s[i] >= 0xe0 && s[i] <= 0xef) {
            need = 2;
            lo = s[i] == 0xe0 ? 0xa0 : 0x80;
            hi = s[i] == 0xed ? 0x9f : 0xbf;
        } else if (s[i] >= 0xf0 && s[i] <= 0xf4) {
            need = 3;
            lo = s[i] == 0xf0 ? 0x90 : 0x80;
            hi = s[i] == 0xf4 ? 0x8f : 0xbf;
        } else {
            return 0;
        }
        if (i + need >= n) {
            return 0;
        }
        for (k = 1; k <= need; k++) {
            if (s[i + k] < (k == 1 ? lo : 0x80)
                || s[i + k] > (k == 1 ? hi : 0xbf))
            {
                return 0;
            }
        }
        i += need + 1;
    }
    return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int32_t  ids[8192];
    static char     out[65536];
    char            piece[64], err[256];
    int             t, add, n, i, k;
    size_t          o;
    int32_t         prev;

    if (toks[0] == NULL) {
        toks[0] = build_spm(0, 0);
        toks[1] = build_spm(0, 1);
        toks[2] = build_spm(1, 0);
        toks[3] = build_bpe(TOKENIZER_PRE_GPT2);
        toks[4] = build_bpe(TOKENIZER_PRE_FALCON);
        toks[5] = build_bpe(TOKENIZER_PRE_DEFAULT);
        toks[6] = build_bpe(TOKENIZER_PRE_LLAMA3);
        toks[7] = build_bpe(TOKENIZER_PRE_QWEN2);
        round_trips[0] = round_trips[2] = 1;
        for (t = 3; t < 8; t++) {
            round_trips[t] = is_bpe[t] = 1;
        }
        for (t = 0; t < 8; t++) {
            if (toks[t] == NULL) {
                abort();
            }
        }
    }
    if (size > 4096) {
        return 0;
    }

    for (t = 0; t < 8; t++) {
        for (add = 0; add < 2; add++) {
            n = tokenizer_encode(toks[t], (const char *) data, size, add, ids,
                                 8192, err, sizeof(err));
            if (n < 0) {
                abort();    /* 4096 bytes always fit in 8192 ids */
            }
            o = 0;
            prev = -1;
            for (i = 0; i < n; i++) {
                if (ids[i] < 0 || ids[i] >= tokenizer_n_vocab(toks[t])) {
                    abort();
                }
                k = tokenizer_decode(toks[t], prev, ids[i], piece,
                                     sizeof(piece));
                if (k < 0 || (size_t) k > sizeof(piece)
                    || o + (size_t) k > sizeof(out))
                {
                    abort();
                }
                memcpy(out + o, piece, (size_t) k);
                o += (size_t) k;
                prev = ids[i];
            }
            if (add || !round_trips[t]) {
                continue;
            }
            if (!utf8_strict(data, size)) {
                /* BPE turns bad UTF-8 into U+FFFD; SentencePiece cuts
                 * symbols by lead byte, so a truncated sequence swallows
                 * part of the next U+2581 (as llama.cpp does) */
                continue;
            }
            if (!is_bpe[t] && memmem(data, size, SP, 3) != NULL) {
                continue;   /* a literal U+2581 decodes as a space */
            }
            if (o != size || memcmp(out, data, size) != 0) {
                abort();
            }
        }
    }
    return 0;
}
