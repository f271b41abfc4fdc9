/*
 * Tokenizers for llmcache-worker.
 *
 * SentencePiece-style (SPM): spaces become U+2581, a leading one is added
 * to every text fragment that follows the start or a special token, and
 * adjacent symbols (UTF-8 characters at first) are merged by best vocab
 * score, ties to the left; what is left that is not a token falls back to
 * <0xXX> byte tokens. llama2.c's tok*.bin is the same algorithm over pieces
 * that keep a plain space instead of U+2581.
 *
 * Byte-level BPE (GPT-2 style): the text is split into words by the
 * pre-tokenizer of `tokenizer.ggml.pre` (hand-written scanners equivalent
 * to llama.cpp's regexes for gpt-2, mpt, falcon, the default, llama-bpe
 * (Llama 3), dbrx and qwen2), each
 * word's bytes are mapped to printable code points, then adjacent symbols
 * are merged by lowest merge rank, ties to the left.
 *
 * WordPiece (BERT): code points are reduced to the first of their NFD
 * decomposition and lower-cased, words split at white space, punctuation
 * and CJK characters, then each U+2581-prefixed word is cut greedily into
 * the longest vocab pieces, or is [UNK] as a whole.
 *
 * Before any of them, special tokens written in the text are cut out
 * longest first: user-defined tokens always, control and unknown tokens
 * only when the caller asks for special handling.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/utf16.h>

#include "errf.h"
#include "gguf.h"
#include "tokenizer.h"


#define TOK_MAX_EOG  16

typedef struct {
    uint32_t  off;          /* into tok->arena */
    uint32_t  len;
    uint32_t  piece_off;    /* decoded bytes, into tok->arena */
    uint32_t  piece_len;
    float     score;
    uint8_t   type;         /* TOKEN_TYPE_* */
} tok_entry_t;

typedef struct {
    uint32_t  loff, llen;   /* into tok->arena */
    uint32_t  roff, rlen;
    int32_t   rank;
} tok_merge_t;

struct tokenizer {
    tokenizer_kind_e   kind;
    tokenizer_pre_e    pre;
    int                n_vocab;
    tok_entry_t       *vocab;            /* n_vocab */
    char              *arena;
    size_t             arena_len, arena_cap;

    int32_t           *hash;             /* text -> id, open addressing */
    uint32_t           hash_mask;

    tok_merge_t       *merges;           /* BPE only */
    int32_t           *merge_hash;       /* index into merges, or -1 */
    uint32_t           merge_mask;
    int                n_merges;

    int32_t           *special;          /* ids, longest text first */
    int                n_special;

    int32_t            byte_tok[256];    /* fallback id of each byte, or -1 */
    int32_t            bos, eos, unk, eot, sep;
    size_t             max_len;          /* longest piece, bytes */
    int32_t            eog[TOK_MAX_EOG];
    int                n_eog;
    int                add_bos;
    int                add_eos;
    int                add_space_prefix;
    int                space_is_sp;      /* ' ' is written as U+2581 */
    int                parse_special;    /* special tokens may be parsed */
};


/* ---- small helpers ---------------------------------------------------- */

static uint64_t
tok_hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;

    while (n--) {
        h ^= *s++;
        h *= 0x100000001b3ULL;
    }
    return h;
}

#define TOK_HASH_SEED  0xcbf29ce484222325ULL

static size_t
tok_utf8_len(unsigned char c)
{
    static const unsigned char lookup[16] = {
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4
    };

    return lookup[c >> 4];
}

/* Decodes one code point the way llama.cpp does: a bad sequence yields
 * U+FFFD and consumes one byte (overlong forms are accepted as is). */
static uint32_t
tok_utf8_decode(const unsigned char *s, size_t len, size_t *adv)
{
    unsigned char  c = s[0];
    uint32_t       cp;

    if (c < 0x80) {
        *adv = 1;
        return c;
    }
    if ((c & 0x40) == 0) {
        goto bad;
    }
    if ((c & 0x20) == 0) {
        if (len < 2 || (s[1] & 0xc0) != 0x80) {
            goto bad;
        }
        *adv = 2;
        return ((uint32_t) (c & 0x1f) << 6) | (s[1] & 0x3f);
    }
    if ((c & 0x10) == 0) {
        if (len < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) {
            goto bad;
        }
        *adv = 3;
        return ((uint32_t) (c & 0x0f) << 12) | ((uint32_t) (s[1] & 0x3f) << 6)
               | (s[2] & 0x3f);
    }
    if ((c & 0x08) == 0) {
        if (len < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80
            || (s[3] & 0xc0) != 0x80)
        {
            goto bad;
        }
        cp = ((uint32_t) (c & 0x07) << 18) | ((uint32_t) (s[1] & 0x3f) << 12)
             | ((uint32_t) (s[2] & 0x3f) << 6) | (s[3] & 0x3f);
        if (cp > 0x10ffff) {
            goto bad;
        }
        *adv = 4;
        return cp;
    }

bad:
    *adv = 1;
    return 0xfffd;
}

static size_t
tok_utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char) cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char) (0xc0 | (cp >> 6));
        out[1] = (char) (0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char) (0xe0 | (cp >> 12));
        out[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char) (0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char) (0xf0 | (cp >> 18));
    out[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char) (0x80 | (cp & 0x3f));
    return 4;
}

/* GPT-2's byte <-> printable code point map: printable Latin-1 bytes map to
 * themselves, the other 68 bytes to U+0100 onwards in byte order. */
static uint32_t
tok_byte_to_cp(unsigned char b)
{
    int  n, c;

    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae) {
        return b;
    }
    n = 0;
    for (c = 0; c < b; c++) {
        if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac)
              || c >= 0xae))
        {
            n++;
        }
    }
    return 256 + n;
}

/* the inverse, -1 for code points outside the map; no static state, so
 * tokenizers may be built from several threads */
static int
tok_cp_to_byte(uint32_t cp)
{
    int  b, n;

    if ((cp >= 0x21 && cp <= 0x7e) || (cp >= 0xa1 && cp <= 0xac)
        || (cp >= 0xae && cp <= 0xff))
    {
        return (int) cp;
    }
    if (cp < 256 || cp >= 256 + 68) {
        return -1;
    }
    n = (int) cp - 256;
    for (b = 0; b < 256; b++) {
        if (!((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac)
              || b >= 0xae) && n-- == 0)
        {
            return b;
        }
    }
    return -1;
}

static const char *
tok_text(const tokenizer_t *tok, int32_t id, size_t *len)
{
    *len = tok->vocab[id].len;
    return tok->arena + tok->vocab[id].off;
}


/* ---- building --------------------------------------------------------- */

static int
tok_arena_add(tokenizer_t *tok, const void *p, size_t n, uint32_t *off)
{
    char    *a;
    size_t   cap;

    if (tok->arena_len + n + 1 > tok->arena_cap) {
        cap = tok->arena_cap ? tok->arena_cap : 4096;
        while (cap < tok->arena_len + n + 1) {
            cap *= 2;
        }
        if (cap > UINT32_MAX) {
            return -1;
        }
        a = realloc(tok->arena, cap);
        if (a == NULL) {
            return -1;
        }
        tok->arena = a;
        tok->arena_cap = cap;
    }
    if (n) {
        memcpy(tok->arena + tok->arena_len, p, n);
    }
    *off = (uint32_t) tok->arena_len;
    tok->arena_len += n;
    tok->arena[tok->arena_len++] = '\0';
    return 0;
}

static int32_t
tok_lookup(const tokenizer_t *tok, const char *s, size_t n)
{
    uint32_t     i;
    int32_t      id;

    if (tok->hash == NULL) {
        return -1;
    }
    i = (uint32_t) tok_hash_bytes(TOK_HASH_SEED, s, n) & tok->hash_mask;
    for ( ;; ) {
        id = tok->hash[i];
        if (id < 0) {
            return -1;
        }
        if (tok->vocab[id].len == n
            && memcmp(tok->arena + tok->vocab[id].off, s, n) == 0)
        {
            return id;
        }
        i = (i + 1) & tok->hash_mask;
    }
}

static uint64_t
tok_merge_key(const char *l, size_t ll, const char *r, size_t rl)
{
    uint64_t  h;

    h = tok_hash_bytes(TOK_HASH_SEED, l, ll);
    h = tok_hash_bytes(h ^ 0xff, &ll, sizeof(ll));
    return tok_hash_bytes(h, r, rl);
}

static int32_t
tok_merge_rank(const tokenizer_t *tok, const char *l, size_t ll,
    const char *r, size_t rl)
{
    uint32_t            i;
    int32_t             m;
    const tok_merge_t  *mg;

    if (tok->merge_hash == NULL) {
        return -1;
    }
    i = (uint32_t) tok_merge_key(l, ll, r, rl) & tok->merge_mask;
    for ( ;; ) {
        m = tok->merge_hash[i];
        if (m < 0) {
            return -1;
        }
        mg = &tok->merges[m];
        if (mg->llen == ll && mg->rlen == rl
            && memcmp(tok->arena + mg->loff, l, ll) == 0
            && memcmp(tok->arena + mg->roff, r, rl) == 0)
        {
            return mg->rank;
        }
        i = (i + 1) & tok->merge_mask;
    }
}

static uint32_t
tok_pow2_above(uint64_t n)
{
    uint64_t  p = 16;

    while (p < n * 2) {
        p *= 2;
    }
    return (uint32_t) p;
}

static int
tok_is_eog_text(const char *s, size_t n)
{
    static const char *names[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
        "<|endoftext|>", "<|eom_id|>", "<EOT>", "<|end_of_text|>", "</s>",
        NULL
    };
    int  i;

    for (i = 0; names[i]; i++) {
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static void
tok_add_eog(tokenizer_t *tok, int32_t id)
{
    int  i;

    if (id < 0 || id >= tok->n_vocab) {
        return;
    }
    for (i = 0; i < tok->n_eog; i++) {
        if (tok->eog[i] == id) {
            return;
        }
    }
    if (tok->n_eog < TOK_MAX_EOG) {
        tok->eog[tok->n_eog++] = id;
    }
}

static int
tok_special_cmp(const void *a, const void *b, void *arg)
{
    const tokenizer_t  *tok = arg;
    int32_t             x = *(const int32_t *) a, y = *(const int32_t *) b;

    if (tok->vocab[x].len != tok->vocab[y].len) {
        return tok->vocab[x].len > tok->vocab[y].len ? -1 : 1;
    }
    return x < y ? -1 : x > y;
}

static int
tok_hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* "<0xXX>" -> byte value, or -1 */
static int
tok_byte_piece(const char *s, size_t n)
{
    int  hi, lo;

    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') {
        return -1;
    }
    hi = tok_hex(s[3]);
    lo = tok_hex(s[4]);
    if (hi < 0 || lo < 0) {
        return -1;
    }
    return hi * 16 + lo;
}

/* The bytes tokenizer_decode() returns for a token, computed once. */
static int
tok_make_piece(tokenizer_t *tok, int32_t id)
{
    tok_entry_t  *e = &tok->vocab[id];
    const char   *s;
    char         *buf;
    size_t        n, i, o, adv;
    uint32_t      cp, off;
    int           b, rc;

    n = e->len;
    buf = malloc(n + 1);
    if (buf == NULL) {
        return -1;
    }
    s = tok->arena + e->off;
    o = 0;

    switch (e->type) {

    case TOKEN_TYPE_CONTROL:
    case TOKEN_TYPE_UNKNOWN:
    case TOKEN_TYPE_UNUSED:
    case TOKEN_TYPE_UNDEFINED:
        break;

    case TOKEN_TYPE_USER_DEFINED:
        memcpy(buf, s, n);
        o = n;
        break;

    case TOKEN_TYPE_BYTE:
        b = tok_byte_piece(s, n);
        if (b >= 0) {
            buf[o++] = (char) b;
            break;
        }
        /* fall through */

    default:
        if (tok->kind == TOKENIZER_BPE) {
            for (i = 0; i < n; i += adv) {
                cp = tok_utf8_decode((const unsigned char *) s + i, n - i,
                                     &adv);
                b = tok_cp_to_byte(cp);
                if (b >= 0) {
                    buf[o++] = (char) b;
                } else {
                    memcpy(buf + o, s + i, adv);
                    o += adv;
                }
            }
        } else if (tok->space_is_sp) {
            for (i = 0; i < n; ) {
                if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                    buf[o++] = ' ';
                    i += 3;
                } else {
                    buf[o++] = s[i++];
                }
            }
        } else {
            memcpy(buf, s, n);
            o = n;
        }
        break;
    }

    rc = tok_arena_add(tok, buf, o, &off);
    free(buf);
    if (rc != 0) {
        return -1;
    }
    e = &tok->vocab[id];
    e->piece_off = off;
    e->piece_len = (uint32_t) o;
    return 0;
}

tokenizer_t *
tokenizer_from_vocab(const tokenizer_vocab_t *v, char *err, size_t errlen)
{
    tokenizer_t  *tok;
    const char   *s, *sp;
    size_t        n, k;
    uint32_t      h, off;
    int32_t       id;
    int           b, j;
    char          ch[8];

    if (v->n_vocab <= 0 || v->tokens == NULL) {
        errf(err, errlen, __func__, "empty vocabulary");
        return NULL;
    }
    if (v->kind != TOKENIZER_SPM && v->kind != TOKENIZER_BPE
        && v->kind != TOKENIZER_WPM)
    {
        errf(err, errlen, __func__, "unknown tokenizer kind %d",
                (int) v->kind);
        return NULL;
    }
    if (v->kind == TOKENIZER_BPE && v->n_merges > 0 && v->merges == NULL) {
        errf(err, errlen, __func__, "merges missing");
        return NULL;
    }

    tok = calloc(1, sizeof(*tok));
    if (tok == NULL) {
        goto nomem;
    }
    tok->kind = v->kind;
    tok->pre = v->pre;
    tok->n_vocab = v->n_vocab;
    tok->add_bos = v->add_bos;
    tok->add_eos = v->add_eos;
    tok->add_space_prefix = v->add_space_prefix;
    tok->space_is_sp = v->kind != TOKENIZER_BPE && !v->plain_space;
    tok->parse_special = !v->no_special_parse;

    tok->vocab = calloc((size_t) v->n_vocab, sizeof(tok_entry_t));
    tok->hash_mask = tok_pow2_above((uint64_t) v->n_vocab) - 1;
    tok->hash = malloc(((size_t) tok->hash_mask + 1) * sizeof(int32_t));
    if (tok->vocab == NULL || tok->hash == NULL) {
        goto nomem;
    }
    memset(tok->hash, 0xff, ((size_t) tok->hash_mask + 1) * sizeof(int32_t));

    for (id = 0; id < v->n_vocab; id++) {
        s = v->tokens[id];
        if (s == NULL) {
            errf(err, errlen, __func__, "token %d missing", (int) id);
            goto fail;
        }
        n = v->lens ? v->lens[id] : strlen(s);
        if (tok_arena_add(tok, s, n, &off) != 0) {
            goto nomem;
        }
        tok->vocab[id].off = off;
        tok->vocab[id].len = (uint32_t) n;
        if (n > tok->max_len) {
            tok->max_len = n;
        }
        tok->vocab[id].score = v->scores ? v->scores[id] : 0.0f;
        tok->vocab[id].type = TOKEN_TYPE_NORMAL;
        if (v->types) {
            if (v->types[id] < 0 || v->types[id] > TOKEN_TYPE_BYTE) {
                errf(err, errlen, __func__,
                        "token %d has a bad type %d", (int) id,
                        (int) v->types[id]);
                goto fail;
            }
            tok->vocab[id].type = (uint8_t) v->types[id];
        }
        if (n == 0) {
            continue;       /* never produced by encoding, never looked up */
        }
        if (tok_lookup(tok, s, n) >= 0) {
            errf(err, errlen, __func__, "duplicate token %d '%.*s'",
                    (int) id, (int) (n > 40 ? 40 : n), s);
            goto fail;
        }
        h = (uint32_t) tok_hash_bytes(TOK_HASH_SEED, s, n) & tok->hash_mask;
        while (tok->hash[h] >= 0) {
            h = (h + 1) & tok->hash_mask;
        }
        tok->hash[h] = id;
    }

    /* special ids: -1 = absent; anything else must name a token */
    tok->bos = v->bos;
    tok->eos = v->eos;
    tok->unk = v->unk;
    tok->eot = v->eot;
    tok->sep = v->kind == TOKENIZER_WPM ? v->sep : -1;
    {
        static const char *names[] = { "bos", "eos", "unknown", "eot",
                                       "separator" };
        int32_t ids[5];

        ids[0] = tok->bos; ids[1] = tok->eos; ids[2] = tok->unk;
        ids[3] = tok->eot; ids[4] = tok->sep;
        for (j = 0; j < 5; j++) {
            if (ids[j] < -1 || ids[j] >= v->n_vocab) {
                errf(err, errlen, __func__,
                        "%s token id %d out of range (vocab %d)", names[j],
                        (int) ids[j], v->n_vocab);
                goto fail;
            }
        }
    }
    if (tok->add_bos && tok->bos < 0) {
        errf(err, errlen, __func__, "add_bos set but no bos token");
        goto fail;
    }
    if (tok->add_eos && tok->eos < 0) {
        errf(err, errlen, __func__, "add_eos set but no eos token");
        goto fail;
    }
    if (v->kind == TOKENIZER_WPM && (tok->unk < 0 || tok->sep < 0)) {
        errf(err, errlen, __func__, "WordPiece needs unknown and "
                "separator tokens");
        goto fail;
    }

    /* end-of-generation tokens: eos, eot and the usual turn enders, which
     * are then treated as control tokens whatever the file says */
    tok_add_eog(tok, tok->eos);
    tok_add_eog(tok, tok->eot);
    for (id = 0; id < v->n_vocab; id++) {
        s = tok_text(tok, id, &n);
        if (tok_is_eog_text(s, n)) {
            tok_add_eog(tok, id);
            if (tok->vocab[id].type == TOKEN_TYPE_NORMAL
                || tok->vocab[id].type == TOKEN_TYPE_USER_DEFINED)
            {
                tok->vocab[id].type = TOKEN_TYPE_CONTROL;
            }
        }
    }

    /* merges: "left right", split at the first space after the first byte */
    if (v->kind == TOKENIZER_BPE && v->n_merges > 0) {
        tok->n_merges = v->n_merges;
        tok->merges = calloc((size_t) v->n_merges, sizeof(tok_merge_t));
        tok->merge_mask = tok_pow2_above((uint64_t) v->n_merges) - 1;
        tok->merge_hash = malloc(((size_t) tok->merge_mask + 1)
                                 * sizeof(int32_t));
        if (tok->merges == NULL || tok->merge_hash == NULL) {
            goto nomem;
        }
        memset(tok->merge_hash, 0xff,
               ((size_t) tok->merge_mask + 1) * sizeof(int32_t));
        for (j = 0; j < v->n_merges; j++) {
            tok_merge_t  *mg = &tok->merges[j];

            s = v->merges[j];
            if (s == NULL) {
                errf(err, errlen, __func__, "merge %d missing", j);
                goto fail;
            }
            n = v->merge_lens ? v->merge_lens[j] : strlen(s);
            sp = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
            if (sp == NULL) {
                errf(err, errlen, __func__, "merge %d '%.*s' has no space",
                        j, (int) (n > 40 ? 40 : n), s);
                goto fail;
            }
            k = (size_t) (sp - s);
            if (tok_arena_add(tok, s, k, &mg->loff) != 0
                || tok_arena_add(tok, sp + 1, n - k - 1, &mg->roff) != 0)
            {
                goto nomem;
            }
            mg->llen = (uint32_t) k;
            mg->rlen = (uint32_t) (n - k - 1);
            mg->rank = j;
            if (tok_merge_rank(tok, tok->arena + mg->loff, mg->llen,
                               tok->arena + mg->roff, mg->rlen) >= 0)
            {
                continue;       /* a repeated merge keeps its first rank */
            }
            h = (uint32_t) tok_merge_key(tok->arena + mg->loff, mg->llen,
                                         tok->arena + mg->roff, mg->rlen)
                & tok->merge_mask;
            while (tok->merge_hash[h] >= 0) {
                h = (h + 1) & tok->merge_mask;
            }
            tok->merge_hash[h] = j;
        }
    }

    /* byte fallback */
    for (b = 0; b < 256; b++) {
        id = -1;
        if (v->kind == TOKENIZER_SPM) {
            snprintf(ch, sizeof(ch), "<0x%02X>", b);
            id = tok_lookup(tok, ch, 6);
            if (id < 0) {
                ch[0] = (char) b;
                id = tok_lookup(tok, ch, 1);
            }
            if (id < 0) {
                id = tok->unk;
            }
        } else {
            n = tok_utf8_encode(tok_byte_to_cp((unsigned char) b), ch);
            id = tok_lookup(tok, ch, n);
        }
        tok->byte_tok[b] = id;
    }

    /* special tokens matched in the text, longest first */
    tok->special = malloc((size_t) v->n_vocab * sizeof(int32_t));
    if (tok->special == NULL) {
        goto nomem;
    }
    for (id = 0; id < v->n_vocab; id++) {
        uint8_t t = tok->vocab[id].type;

        if ((t == TOKEN_TYPE_CONTROL || t == TOKEN_TYPE_USER_DEFINED
             || t == TOKEN_TYPE_UNKNOWN) && tok->vocab[id].len > 0)
        {
            tok->special[tok->n_special++] = id;
        }
    }
    qsort_r(tok->special, (size_t) tok->n_special, sizeof(int32_t),
            tok_special_cmp, tok);

    for (id = 0; id < v->n_vocab; id++) {
        if (tok_make_piece(tok, id) != 0) {
            goto nomem;
        }
    }
    return tok;

nomem:
    errf(err, errlen, __func__, "out of memory");
fail:
    tokenizer_free(tok);
    return NULL;
}

void
tokenizer_free(tokenizer_t *tok)
{
    if (tok == NULL) {
        return;
    }
    free(tok->vocab);
    free(tok->arena);
    free(tok->hash);
    free(tok->merges);
    free(tok->merge_hash);
    free(tok->special);
    free(tok);
}


/* ---- GGUF ------------------------------------------------------------- */

static int
tok_gguf_id(const gguf_ctx_t *ctx, const char *key, int32_t *id, char *err,
    size_t errlen)
{
    uint32_t  u;
    int       rc;

    rc = gguf_get_u32(ctx, key, &u);
    if (rc == -1) {
        return 0;
    }
    if (rc != 0) {
        errf(err, errlen, "tokenizer_from_gguf", "%s has a wrong type",
                key);
        return -1;
    }
    if (u == UINT32_MAX) {
        *id = -1;           /* converters write -1 for "none" */
        return 0;
    }
    if (u > INT32_MAX) {
        errf(err, errlen, "tokenizer_from_gguf", "%s = %u out of range",
                key, u);
        return -1;
    }
    *id = (int32_t) u;
    return 0;
}

static int
tok_gguf_bool(const gguf_ctx_t *ctx, const char *key, int *out, char *err,
    size_t errlen)
{
    int  rc;

    rc = gguf_get_bool(ctx, key, out);
    if (rc == -2) {
        errf(err, errlen, "tokenizer_from_gguf", "%s has a wrong type",
                key);
        return -1;
    }
    return 0;
}

static int
tok_pre_from_name(const char *s, size_t n, tokenizer_pre_e *pre)
{
    static const struct { const char *name; tokenizer_pre_e pre; } map[] = {
        { "default", TOKENIZER_PRE_DEFAULT },
        { "gpt-2", TOKENIZER_PRE_GPT2 },
        { "phi-2", TOKENIZER_PRE_GPT2 },
        { "mpt", TOKENIZER_PRE_GPT2 },
        { "olmo", TOKENIZER_PRE_GPT2 },
        { "jais", TOKENIZER_PRE_GPT2 },
        { "falcon", TOKENIZER_PRE_FALCON },
        { "llama3", TOKENIZER_PRE_LLAMA3 },
        { "llama-v3", TOKENIZER_PRE_LLAMA3 },
        { "llama-bpe", TOKENIZER_PRE_LLAMA3 },
        { "falcon3", TOKENIZER_PRE_LLAMA3 },
        { "pixtral", TOKENIZER_PRE_LLAMA3 },
        { "dbrx", TOKENIZER_PRE_DBRX },
        { "smaug-bpe", TOKENIZER_PRE_DBRX },
        { "qwen2", TOKENIZER_PRE_QWEN2 },
        { "deepseek-r1-qwen", TOKENIZER_PRE_QWEN2 },
        { "megrez", TOKENIZER_PRE_QWEN2 },
        { NULL, 0 }
    };
    int  i;

    for (i = 0; map[i].name; i++) {
        if (strlen(map[i].name) == n && memcmp(map[i].name, s, n) == 0) {
            *pre = map[i].pre;
            return 0;
        }
    }
    return -1;
}

tokenizer_t *
tokenizer_from_gguf(const gguf_ctx_t *ctx, char *err, size_t errlen)
{
    tokenizer_vocab_t   v;
    tokenizer_t        *tok = NULL;
    const char         *s;
    const void         *data;
    size_t              n;
    uint64_t            cnt, cnt2, i;
    gguf_type_e         elem;
    int                 rc;
    float              *scores = NULL;
    int32_t            *types = NULL;
    const char        **toks = NULL, **merges = NULL;
    size_t             *lens = NULL, *mlens = NULL;

    memset(&v, 0, sizeof(v));

    rc = gguf_get_str(ctx, "tokenizer.ggml.model", &s, &n);
    if (rc != 0) {
        errf(err, errlen, __func__, "tokenizer.ggml.model %s",
                rc == -1 ? "missing" : "has a wrong type");
        return NULL;
    }
    if (n == 5 && memcmp(s, "llama", 5) == 0) {
        v.kind = TOKENIZER_SPM;
        v.bos = 1;
        v.eos = 2;
        v.unk = 0;
        v.add_bos = 1;
        v.add_space_prefix = 1;
    } else if (n == 4 && memcmp(s, "gpt2", 4) == 0) {
        v.kind = TOKENIZER_BPE;
        v.bos = 11;
        v.eos = 11;
        v.unk = -1;
        v.pre = TOKENIZER_PRE_DEFAULT;
        rc = gguf_get_str(ctx, "tokenizer.ggml.pre", &s, &n);
        if (rc == -2) {
            errf(err, errlen, __func__,
                    "tokenizer.ggml.pre has a wrong type");
            return NULL;
        }
        if (rc == 0 && tok_pre_from_name(s, n, &v.pre) != 0) {
            errf(err, errlen, __func__,
                    "unsupported pre-tokenizer '%.*s'", (int) n, s);
            return NULL;
        }
        v.add_bos = v.pre == TOKENIZER_PRE_LLAMA3;
    } else if (n == 4 && memcmp(s, "bert", 4) == 0) {
        v.kind = TOKENIZER_WPM;
        v.bos = 101;            /* [CLS] */
        v.eos = -1;
        v.unk = 100;
        v.sep = 102;
        v.add_bos = 1;
    } else {
        errf(err, errlen, __func__, "unsupported tokenizer model '%.*s'",
                (int) n, s);
        return NULL;
    }
    v.eot = -1;

    rc = gguf_get_arr(ctx, "tokenizer.ggml.tokens", &elem, &cnt, &data);
    if (rc != 0 || elem != GGUF_TYPE_STRING) {
        errf(err, errlen, __func__, "tokenizer.ggml.tokens %s",
                rc == -1 ? "missing" : "is not a string array");
        return NULL;
    }
    if (cnt == 0 || cnt > INT32_MAX) {
        errf(err, errlen, __func__, "bad vocabulary size %llu",
                (unsigned long long) cnt);
        return NULL;
    }
    v.n_vocab = (int) cnt;

    toks = malloc(cnt * sizeof(*toks));
    lens = malloc(cnt * sizeof(*lens));
    if (toks == NULL || lens == NULL) {
        errf(err, errlen, __func__, "out of memory");
        goto done;
    }
    for (i = 0; i < cnt; i++) {
        if (gguf_get_arr_str(ctx, "tokenizer.ggml.tokens", i, &toks[i],
                             &lens[i]) != 0)
        {
            errf(err, errlen, __func__, "token %llu unreadable",
                    (unsigned long long) i);
            goto done;
        }
    }
    v.tokens = toks;
    v.lens = lens;

    rc = gguf_get_arr(ctx, "tokenizer.ggml.scores", &elem, &cnt2, &data);
    if (rc == -2 || (rc == 0 && elem != GGUF_TYPE_FLOAT32
                     && elem != GGUF_TYPE_INT32))
    {
        errf(err, errlen, __func__,
                "tokenizer.ggml.scores is not a float array");
        goto done;
    }
    if (rc == 0) {
        if (cnt2 != cnt) {
            errf(err, errlen, __func__,
                    "%llu scores for %llu tokens", (unsigned long long) cnt2,
                    (unsigned long long) cnt);
            goto done;
        }
        scores = malloc(cnt * sizeof(float));
        if (scores == NULL) {
            errf(err, errlen, __func__, "out of memory");
            goto done;
        }
        for (i = 0; i < cnt; i++) {
            /* metadata arrays are not aligned: copy element by element */
            if (elem == GGUF_TYPE_FLOAT32) {
                memcpy(&scores[i], (const char *) data + 4 * i, 4);
            } else {
                int32_t x;

                memcpy(&x, (const char *) data + 4 * i, 4);
                scores[i] = (float) x;
            }
        }
        v.scores = scores;
    }

    rc = gguf_get_arr(ctx, "tokenizer.ggml.token_type", &elem, &cnt2, &data);
    if (rc == -2 || (rc == 0 && elem != GGUF_TYPE_INT32)) {
        errf(err, errlen, __func__,
                "tokenizer.ggml.token_type is not an int32 array");
        goto done;
    }
    if (rc == 0) {
        if (cnt2 != cnt) {
            errf(err, errlen, __func__,
                    "%llu token types for %llu tokens",
                    (unsigned long long) cnt2, (unsigned long long) cnt);
            goto done;
        }
        types = malloc(cnt * sizeof(int32_t));
        if (types == NULL) {
            errf(err, errlen, __func__, "out of memory");
            goto done;
        }
        for (i = 0; i < cnt; i++) {
            memcpy(&types[i], (const char *) data + 4 * i, 4);
        }
        v.types = types;
    }

    if (v.kind == TOKENIZER_BPE) {
        rc = gguf_get_arr(ctx, "tokenizer.ggml.merges", &elem, &cnt2, &data);
        if (rc != 0 || elem != GGUF_TYPE_STRING) {
            errf(err, errlen, __func__, "tokenizer.ggml.merges %s",
                    rc == -1 ? "missing" : "is not a string array");
            goto done;
        }
        if (cnt2 > INT32_MAX) {
            errf(err, errlen, __func__, "too many merges");
            goto done;
        }
        merges = malloc((cnt2 ? cnt2 : 1) * sizeof(*merges));
        mlens = malloc((cnt2 ? cnt2 : 1) * sizeof(*mlens));
        if (merges == NULL || mlens == NULL) {
            errf(err, errlen, __func__, "out of memory");
            goto done;
        }
        for (i = 0; i < cnt2; i++) {
            if (gguf_get_arr_str(ctx, "tokenizer.ggml.merges", i, &merges[i],
                                 &mlens[i]) != 0)
            {
                errf(err, errlen, __func__, "merge %llu unreadable",
                        (unsigned long long) i);
                goto done;
            }
        }
        v.merges = merges;
        v.merge_lens = mlens;
        v.n_merges = (int) cnt2;
    }

    if (tok_gguf_id(ctx, "tokenizer.ggml.bos_token_id", &v.bos, err, errlen)
        || tok_gguf_id(ctx, "tokenizer.ggml.eos_token_id", &v.eos, err,
                       errlen)
        || tok_gguf_id(ctx, "tokenizer.ggml.unknown_token_id", &v.unk, err,
                       errlen)
        || tok_gguf_id(ctx, "tokenizer.ggml.eot_token_id", &v.eot, err,
                       errlen)
        || (v.kind == TOKENIZER_WPM
            && (tok_gguf_id(ctx, "tokenizer.ggml.cls_token_id", &v.bos, err,
                            errlen)
                || tok_gguf_id(ctx, "tokenizer.ggml.seperator_token_id",
                               &v.sep, err, errlen)))
        || tok_gguf_bool(ctx, "tokenizer.ggml.add_bos_token", &v.add_bos,
                         err, errlen)
        || tok_gguf_bool(ctx, "tokenizer.ggml.add_eos_token", &v.add_eos,
                         err, errlen)
        || tok_gguf_bool(ctx, "tokenizer.ggml.add_space_prefix",
                         &v.add_space_prefix, err, errlen))
    {
        goto done;
    }

    /* defaults that do not fit the vocabulary are dropped, as llama.cpp
     * does; explicit ids were range-checked by tokenizer_from_vocab() */
    if (gguf_find_key(ctx, "tokenizer.ggml.bos_token_id") < 0
        && v.bos >= v.n_vocab)
    {
        v.bos = -1;
        v.add_bos = 0;
    }
    if (gguf_find_key(ctx, "tokenizer.ggml.eos_token_id") < 0
        && v.eos >= v.n_vocab)
    {
        v.eos = -1;
    }
    if (gguf_find_key(ctx, "tokenizer.ggml.unknown_token_id") < 0
        && v.unk >= v.n_vocab)
    {
        v.unk = -1;
    }
    if (v.kind != TOKENIZER_WPM) {
        v.sep = -1;
    }

    tok = tokenizer_from_vocab(&v, err, errlen);

done:
    free(toks);
    free(lens);
    free(scores);
    free(types);
    free(merges);
    free(mlens);
    return tok;
}


/* ---- llama2.c tok*.bin ------------------------------------------------ */

static int
tok_rd(FILE *f, void *p, size_t n)
{
    return fread(p, 1, n, f) == n ? 0 : -1;
}

tokenizer_t *
tokenizer_from_llama2c(const char *path, int n_vocab, char *err,
    size_t errlen)
{
    tokenizer_vocab_t   v;
    tokenizer_t        *tok = NULL;
    FILE               *f;
    int32_t             maxlen, len, *types = NULL;
    float              *scores = NULL;
    char              **toks = NULL;
    size_t             *lens = NULL;
    int                 i, cap, n, c;

    f = fopen(path, "rb");
    if (f == NULL) {
        errf(err, errlen, __func__, "%s: %m", path);
        return NULL;
    }
    if (tok_rd(f, &maxlen, 4) != 0 || maxlen <= 0 || maxlen > 65536) {
        errf(err, errlen, __func__, "%s: bad header", path);
        goto done;
    }

    /* n_vocab <= 0: as many tokens as the file holds */
    cap = n_vocab > 0 ? n_vocab : 1024;
    n = 0;
    toks = calloc((size_t) cap, sizeof(*toks));
    lens = malloc((size_t) cap * sizeof(*lens));
    scores = malloc((size_t) cap * sizeof(*scores));
    if (toks == NULL || lens == NULL || scores == NULL) {
        goto nomem;
    }
    for ( ;; ) {
        if (n_vocab > 0 && n == n_vocab) {
            break;
        }
        if (n_vocab <= 0) {
            c = fgetc(f);
            if (c == EOF) {
                break;
            }
            ungetc(c, f);
        }
        if (n == cap) {
            void *a, *b, *d;

            a = realloc(toks, (size_t) cap * 2 * sizeof(*toks));
            if (a == NULL) {
                goto nomem;
            }
            toks = a;
            memset(toks + cap, 0, (size_t) cap * sizeof(*toks));
            cap *= 2;
            b = realloc(lens, (size_t) cap * sizeof(*lens));
            if (b) lens = b;
            d = realloc(scores, (size_t) cap * sizeof(*scores));
            if (d) scores = d;
            if (b == NULL || d == NULL) {
                goto nomem;
            }
        }
        if (tok_rd(f, &scores[n], 4) != 0 || tok_rd(f, &len, 4) != 0) {
            errf(err, errlen, __func__, "%s: truncated at token %d", path,
                    n);
            goto done;
        }
        if (len < 0 || len > maxlen) {
            errf(err, errlen, __func__,
                    "%s: token %d has a bad length %d", path, n, (int) len);
            goto done;
        }
        toks[n] = malloc((size_t) len + 1);
        if (toks[n] == NULL) {
            goto nomem;
        }
        if (tok_rd(f, toks[n], (size_t) len) != 0) {
            errf(err, errlen, __func__, "%s: truncated at token %d", path,
                    n);
            n++;
            goto done;
        }
        toks[n][len] = '\0';
        lens[n] = (size_t) len;
        n++;
    }
    if (n < 3) {
        errf(err, errlen, __func__, "%s: only %d tokens", path, n);
        goto done;
    }

    types = malloc((size_t) n * sizeof(int32_t));
    if (types == NULL) {
        goto nomem;
    }
    for (i = 0; i < n; i++) {
        types[i] = tok_byte_piece(toks[i], lens[i]) >= 0 ? TOKEN_TYPE_BYTE
                                                         : TOKEN_TYPE_NORMAL;
    }
    types[0] = TOKEN_TYPE_UNKNOWN;
    types[1] = TOKEN_TYPE_CONTROL;
    types[2] = TOKEN_TYPE_CONTROL;

    memset(&v, 0, sizeof(v));
    v.kind = TOKENIZER_SPM;
    v.n_vocab = n;
    v.tokens = (const char *const *) toks;
    v.lens = lens;
    v.scores = scores;
    v.types = types;
    v.bos = 1;
    v.eos = 2;
    v.unk = 0;
    v.eot = -1;
    v.add_bos = 1;
    v.add_space_prefix = 1;
    v.plain_space = 1;
    v.no_special_parse = 1;     /* run.c never parses special tokens */
    tok = tokenizer_from_vocab(&v, err, errlen);
    goto done;

nomem:
    errf(err, errlen, __func__, "out of memory");
done:
    if (toks) {
        for (i = 0; i < cap; i++) {
            free(toks[i]);
        }
    }
    free(toks);
    free(lens);
    free(scores);
    free(types);
    fclose(f);
    return tok;
}


/* ---- encoding: shared work state --------------------------------------- */

typedef struct {
    const char  *text;
    int          n;          /* bytes; 0 once merged away */
    int          prev, next;
} tok_sym_t;

typedef struct {
    float        key;        /* smaller first: -score (SPM) or rank (BPE,
                                exact in a float below 2^24) */
    int32_t      left, right;
    int32_t      size;
} tok_bigram_t;

typedef struct {
    const tokenizer_t  *tok;
    int32_t            *out;
    int                 n_out, max_out;
    int                 overflow;

    int                 oom;

    tok_sym_t          *sym;      /* grown to the largest word / fragment */
    int                 sym_cap;
    tok_bigram_t       *heap;     /* grown on demand */
    int                 n_heap, heap_cap;
    char               *buf;      /* escaped / byte-mapped text */
    uint32_t           *cpts;
    uint8_t            *flags;
    size_t             *offs_a, *offs_b;
} tok_work_t;

static void
tok_emit(tok_work_t *w, int32_t id)
{
    if (id < 0) {
        return;
    }
    if (w->n_out < w->max_out) {
        w->out[w->n_out] = id;
    } else {
        w->overflow = 1;
    }
    w->n_out++;
}

static int
tok_bigram_less(const tok_bigram_t *a, const tok_bigram_t *b)
{
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static void
tok_heap_push(tok_work_t *w, const tok_bigram_t *bg)
{
    tok_bigram_t  *h;
    int            i, p, cap;

    if (w->n_heap == w->heap_cap) {
        cap = w->heap_cap ? 2 * w->heap_cap : 256;
        h = realloc(w->heap, (size_t) cap * sizeof(*h));
        if (h == NULL) {
            w->oom = 1;
            return;
        }
        w->heap = h;
        w->heap_cap = cap;
    }

    /* move parents down into the hole, then drop bg in */
    i = w->n_heap++;
    while (i > 0) {
        p = (i - 1) / 2;
        if (!tok_bigram_less(bg, &w->heap[p])) {
            break;
        }
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = *bg;
}

static tok_bigram_t
tok_heap_pop(tok_work_t *w)
{
    tok_bigram_t   top, last;
    int            i, c, n;

    top = w->heap[0];
    n = --w->n_heap;
    last = w->heap[n];
    i = 0;
    for ( ;; ) {
        c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && tok_bigram_less(&w->heap[c + 1], &w->heap[c])) {
            c++;
        }
        if (!tok_bigram_less(&w->heap[c], &last)) {
            break;
        }
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0) {
        w->heap[i] = last;
    }
    return top;
}

/* Splits text into UTF-8 characters (by lead byte, as llama.cpp does);
 * 0 when there is no memory for them (w->oom set). */
static int
tok_symbols(tok_work_t *w, const char *text, size_t len)
{
    tok_sym_t  *s;
    size_t      off, n, count = 0;
    int         k = 0;

    for (off = 0; off < len; off += n) {
        n = tok_utf8_len((unsigned char) text[off]);
        count++;
    }
    if (count > (size_t) w->sym_cap) {
        if (count > INT32_MAX / 2) {
            w->oom = 1;
            return 0;
        }
        s = realloc(w->sym, count * sizeof(*s));
        if (s == NULL) {
            w->oom = 1;
            return 0;
        }
        w->sym = s;
        w->sym_cap = (int) count;
    }

    for (off = 0; off < len; off += n) {
        n = tok_utf8_len((unsigned char) text[off]);
        if (n > len - off) {
            n = len - off;
        }
        w->sym[k].text = text + off;
        w->sym[k].n = (int) n;
        w->sym[k].prev = k - 1;
        w->sym[k].next = off + n == len ? -1 : k + 1;
        k++;
    }
    return k;
}

static void
tok_merge_sym(tok_work_t *w, const tok_bigram_t *bg)
{
    tok_sym_t  *l = &w->sym[bg->left], *r = &w->sym[bg->right];

    l->n += r->n;
    r->n = 0;
    l->next = r->next;
    if (r->next >= 0) {
        w->sym[r->next].prev = bg->left;
    }
}


/* ---- SPM -------------------------------------------------------------- */

static void
tok_spm_try_bigram(tok_work_t *w, int left, int right)
{
    tok_bigram_t  bg;
    int32_t       id;
    size_t        n;

    if (left < 0 || right < 0) {
        return;
    }
    n = (size_t) w->sym[left].n + (size_t) w->sym[right].n;
    id = tok_lookup(w->tok, w->sym[left].text, n);
    if (id < 0) {
        return;
    }
    bg.key = -w->tok->vocab[id].score;
    bg.left = left;
    bg.right = right;
    bg.size = (int) n;
    tok_heap_push(w, &bg);
}

static void
tok_spm(tok_work_t *w, const char *text, size_t len)
{
    tok_bigram_t  bg;
    tok_sym_t    *l, *r;
    int32_t       id;
    int           n_sym, i, j;

    if (len == 0) {
        return;
    }
    n_sym = tok_symbols(w, text, len);
    if (n_sym == 0) {
        return;
    }
    w->n_heap = 0;
    for (i = 1; i < n_sym; i++) {
        tok_spm_try_bigram(w, i - 1, i);
    }

    while (w->n_heap > 0) {
        bg = tok_heap_pop(w);
        l = &w->sym[bg.left];
        r = &w->sym[bg.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size) {
            continue;       /* one side changed since it was queued */
        }
        tok_merge_sym(w, &bg);
        tok_spm_try_bigram(w, l->prev, bg.left);
        tok_spm_try_bigram(w, bg.left, l->next);
    }

    /* Every merged symbol is a token (a merge needs one); only single
     * characters can miss and fall back to bytes. */
    for (i = 0; i != -1; i = w->sym[i].next) {
        id = tok_lookup(w->tok, w->sym[i].text, (size_t) w->sym[i].n);
        if (id >= 0) {
            tok_emit(w, id);
            continue;
        }
        for (j = 0; j < w->sym[i].n; j++) {
            tok_emit(w, w->tok->byte_tok[(unsigned char) w->sym[i].text[j]]);
        }
    }
}

static void
tok_spm_fragment(tok_work_t *w, const char *text, size_t len, int prefix)
{
    const tokenizer_t  *tok = w->tok;
    size_t              i, o = 0;

    if (prefix) {
        if (tok->space_is_sp) {
            memcpy(w->buf, "\xe2\x96\x81", 3);
            o = 3;
        } else {
            w->buf[o++] = ' ';
        }
    }
    for (i = 0; i < len; i++) {
        if (text[i] == ' ' && tok->space_is_sp) {
            memcpy(w->buf + o, "\xe2\x96\x81", 3);
            o += 3;
        } else {
            w->buf[o++] = text[i];
        }
    }
    tok_spm(w, w->buf, o);
}


/* ---- BPE pre-tokenizers ------------------------------------------------ */

#define TOK_CP_LETTER   0x01
#define TOK_CP_NUMBER   0x02
#define TOK_CP_SPACE    0x04    /* White_Space */
#define TOK_CP_PUNCT    0x08    /* falcon's [\p{P}$+<=>^~|`] */
#define TOK_CP_PUNCT_D  0x10    /* the default's, without the backtick */
#define TOK_CP_DIGIT    0x20    /* [0-9] */
#define TOK_CP_NUM_RE   0x40    /* \p{N} as llama.cpp's regex sees it */

static uint8_t
tok_cp_flags(uint32_t cp)
{
    uint32_t  mask;
    uint8_t   f = 0;

    mask = U_GET_GC_MASK((UChar32) cp);
    if (mask & U_GC_L_MASK) {
        f |= TOK_CP_LETTER;
    }
    if (mask & U_GC_N_MASK) {
        f |= TOK_CP_NUMBER;
    }
    if (u_isUWhiteSpace((UChar32) cp)) {
        f |= TOK_CP_SPACE;
    }
    if (cp < 0x80) {
        if (cp >= '0' && cp <= '9') {
            f |= TOK_CP_DIGIT | TOK_CP_NUM_RE;
        }
        if (cp > 0x20 && cp < 0x7f && !(cp >= '0' && cp <= '9')
            && !(cp >= 'A' && cp <= 'Z') && !(cp >= 'a' && cp <= 'z'))
        {
            f |= TOK_CP_PUNCT;
            if (cp != '`') {
                f |= TOK_CP_PUNCT_D;
            }
        }
    } else if (!(f & TOK_CP_SPACE)) {
        /* llama.cpp collapses non-ASCII code points to their category
         * before matching \p{..} with std::regex; white space first */
        if (mask & U_GC_P_MASK) {
            f |= TOK_CP_PUNCT | TOK_CP_PUNCT_D;
        }
        if (mask & U_GC_N_MASK) {
            f |= TOK_CP_NUM_RE;
        }
    }
    return f;
}

/* Splits every fragment into maximal runs of code points with flag and the
 * gaps between them. */
static size_t
tok_split_runs(const uint8_t *flags, const size_t *in, size_t n_in,
    size_t *out, uint8_t flag)
{
    size_t  f, start = 0, pos, end, run, n_out = 0;

    for (f = 0; f < n_in; f++) {
        end = start + in[f];
        pos = start;
        while (pos < end) {
            run = pos;
            if (flags[pos] & flag) {
                while (run < end && (flags[run] & flag)) {
                    run++;
                }
            } else {
                while (run < end && !(flags[run] & flag)) {
                    run++;
                }
            }
            out[n_out++] = run - pos;
            pos = run;
        }
        start = end;
    }
    return n_out;
}

/* [0-9][0-9][0-9]: leftmost non-overlapping triples, gaps kept whole. */
static size_t
tok_split_digit3(const uint8_t *flags, const size_t *in, size_t n_in,
    size_t *out)
{
    size_t  f, start = 0, end, pos, p, n_out = 0;

    for (f = 0; f < n_in; f++) {
        end = start + in[f];
        pos = start;
        for (p = pos; p + 3 <= end; ) {
            if ((flags[p] & TOK_CP_DIGIT) && (flags[p + 1] & TOK_CP_DIGIT)
                && (flags[p + 2] & TOK_CP_DIGIT))
            {
                if (p > pos) {
                    out[n_out++] = p - pos;
                }
                out[n_out++] = 3;
                p += 3;
                pos = p;
            } else {
                p++;
            }
        }
        if (pos < end) {
            out[n_out++] = end - pos;
        }
        start = end;
    }
    return n_out;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * scanned by hand; a fragment's end acts as the end of the text. */
static size_t
tok_split_gpt2(const uint32_t *cp, const uint8_t *flags, const size_t *in,
    size_t n_in, size_t *out)
{
    size_t   f, start = 0, beg, end, pos, prev, ws, n_out = 0;
    uint8_t  f2;

#define FL(p)     ((p) < end ? flags[p] : 0)
#define INR(p)    ((p) < end)
#define OTHER(x)  (!((x) & (TOK_CP_SPACE | TOK_CP_LETTER | TOK_CP_NUMBER)))
#define ADD(e)    do { if ((e) > prev) { out[n_out++] = (e) - prev; }        \
                       prev = (e); } while (0)

    for (f = 0; f < n_in; f++) {
        beg = start;
        end = start + in[f];
        start = end;
        prev = beg;

        for (pos = beg; pos < end; ) {
            if (cp[pos] == '\'' && pos + 1 < end) {
                uint32_t c1 = cp[pos + 1];

                if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
                    ADD(pos + 2);
                    pos += 2;
                    continue;
                }
                if (pos + 2 < end) {
                    uint32_t c2 = cp[pos + 2];

                    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e')
                        || (c1 == 'l' && c2 == 'l'))
                    {
                        ADD(pos + 3);
                        pos += 3;
                        continue;
                    }
                }
            }

            f2 = cp[pos] == ' ' ? FL(pos + 1) : flags[pos];
            if (f2 & TOK_CP_LETTER) {
                pos += cp[pos] == ' ';
                while (FL(pos) & TOK_CP_LETTER) {
                    pos++;
                }
                ADD(pos);
                continue;
            }
            if (f2 & TOK_CP_NUMBER) {
                pos += cp[pos] == ' ';
                while (FL(pos) & TOK_CP_NUMBER) {
                    pos++;
                }
                ADD(pos);
                continue;
            }
            if (OTHER(f2) && (cp[pos] != ' ' || INR(pos + 1))) {
                pos += cp[pos] == ' ';
                while (INR(pos) && OTHER(flags[pos])) {
                    pos++;
                }
                ADD(pos);
                continue;
            }

            ws = 0;
            while (FL(pos + ws) & TOK_CP_SPACE) {
                ws++;
            }
            if (ws > 1 && INR(pos + ws)) {
                pos += ws - 1;          /* \s+(?!\S): leave one for the word */
                ADD(pos);
                continue;
            }
            if (ws > 0) {
                pos += ws;
                ADD(pos);
                continue;
            }
            pos++;
            ADD(pos);
        }
    }

#undef FL
#undef INR
#undef OTHER
#undef ADD

    return n_out;
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 * ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ (Llama 3); Qwen2 takes
 * digits one by one. */
static size_t
tok_split_llama3(const uint32_t *cp, const uint8_t *flags, const size_t *in,
    size_t n_in, size_t *out, size_t max_digits)
{
    size_t    f, start = 0, beg, end, pos, prev, ws, nl, ini, n_out = 0;
    uint32_t  c, c1, c2;
    uint8_t   f2;

#define FL(p)     ((p) < end ? flags[p] : 0)
#define CP(p)     ((p) < end ? cp[p] : 0xffffffffu)
#define LOW(x)    ((uint32_t) u_tolower((UChar32) (x)))
#define OTHER(x)  (!((x) & (TOK_CP_SPACE | TOK_CP_LETTER | TOK_CP_NUMBER)))
#define ADD(e)    do { if ((e) > prev) { out[n_out++] = (e) - prev; }        \
                       prev = (e); } while (0)

    for (f = 0; f < n_in; f++) {
        beg = start;
        end = start + in[f];
        start = end;
        prev = beg;

        for (pos = beg; pos < end; ) {
            c = cp[pos];

            if (c == '\'' && pos + 1 < end) {
                c1 = LOW(cp[pos + 1]);
                if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
                    pos += 2;
                    ADD(pos);
                    continue;
                }
                if (pos + 2 < end) {
                    c2 = LOW(cp[pos + 2]);
                    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e')
                        || (c1 == 'l' && c2 == 'l'))
                    {
                        pos += 3;
                        ADD(pos);
                        continue;
                    }
                }
            }

            if (!(c == '\r' || c == '\n' || (flags[pos] & TOK_CP_NUMBER))
                && ((flags[pos] & TOK_CP_LETTER)
                    || (FL(pos + 1) & TOK_CP_LETTER)))
            {
                pos++;
                while (FL(pos) & TOK_CP_LETTER) {
                    pos++;
                }
                ADD(pos);
                continue;
            }

            if (flags[pos] & TOK_CP_NUMBER) {
                ini = pos;
                while (FL(pos) & TOK_CP_NUMBER) {
                    if (++pos - ini >= max_digits) {
                        ADD(pos);
                        ini = pos;
                    }
                }
                ADD(pos);
                continue;
            }

            /* as llama.cpp: the first test looks at this code point, the
             * loop at the ones after the optional space */
            f2 = c == ' ' ? FL(pos + 1) : flags[pos];
            if (OTHER(f2)) {
                pos += c == ' ';
                while (pos < end && OTHER(flags[pos])) {
                    pos++;
                }
                while (CP(pos) == '\r' || CP(pos) == '\n') {
                    pos++;
                }
                ADD(pos);
                continue;
            }

            ws = 0;
            nl = 0;
            while (FL(pos + ws) & TOK_CP_SPACE) {
                if (cp[pos + ws] == '\r' || cp[pos + ws] == '\n') {
                    nl = pos + ws + 1;
                }
                ws++;
            }
            if (nl > 0) {
                pos = nl;
                ADD(pos);
                continue;
            }
            if (ws > 1 && pos + ws < end) {
                pos += ws - 1;
                ADD(pos);
                continue;
            }
            if (ws > 0) {
                pos += ws;
                ADD(pos);
                continue;
            }
            pos++;
            ADD(pos);
        }
    }

#undef FL
#undef CP
#undef LOW
#undef OTHER
#undef ADD

    return n_out;
}

static void
tok_bpe_try_bigram(tok_work_t *w, int left, int right)
{
    tok_bigram_t  bg;
    int32_t       rank;

    if (left < 0 || right < 0) {
        return;
    }
    rank = tok_merge_rank(w->tok, w->sym[left].text, (size_t) w->sym[left].n,
                          w->sym[right].text, (size_t) w->sym[right].n);
    if (rank < 0) {
        return;
    }
    bg.key = (float) rank;
    bg.left = left;
    bg.right = right;
    bg.size = w->sym[left].n + w->sym[right].n;
    tok_heap_push(w, &bg);
}

static void
tok_bpe_word(tok_work_t *w, const char *word, size_t len)
{
    tok_bigram_t  bg;
    tok_sym_t    *l, *r;
    int32_t       id;
    int           n_sym, i, j;

    n_sym = tok_symbols(w, word, len);
    if (n_sym == 0) {
        return;
    }
    w->n_heap = 0;
    for (i = 1; i < n_sym; i++) {
        tok_bpe_try_bigram(w, i - 1, i);
    }
    while (w->n_heap > 0) {
        bg = tok_heap_pop(w);
        l = &w->sym[bg.left];
        r = &w->sym[bg.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size) {
            continue;
        }
        tok_merge_sym(w, &bg);
        tok_bpe_try_bigram(w, l->prev, bg.left);
        tok_bpe_try_bigram(w, bg.left, l->next);
    }
    for (i = 0; i != -1; i = w->sym[i].next) {
        id = tok_lookup(w->tok, w->sym[i].text, (size_t) w->sym[i].n);
        if (id >= 0) {
            tok_emit(w, id);
            continue;
        }
        /* as llama.cpp: single bytes of the mapped text, when tokens */
        for (j = 0; j < w->sym[i].n; j++) {
            tok_emit(w, tok_lookup(w->tok, w->sym[i].text + j, 1));
        }
    }
}

static void
tok_bpe_fragment(tok_work_t *w, const char *text, size_t len)
{
    const tokenizer_t  *tok = w->tok;
    size_t              n_cp, i, adv, n, k, start, o, nb;
    size_t             *a = w->offs_a, *b = w->offs_b, *t;
    char                u8[4];

    if (len == 0) {
        return;
    }
    for (i = 0, n_cp = 0; i < len; i += adv) {
        w->cpts[n_cp] = tok_utf8_decode((const unsigned char *) text + i,
                                        len - i, &adv);
        w->flags[n_cp] = tok_cp_flags(w->cpts[n_cp]);
        n_cp++;
    }

    a[0] = n_cp;
    n = 1;
    if (tok->pre == TOKENIZER_PRE_FALCON || tok->pre == TOKENIZER_PRE_DEFAULT) {
        n = tok_split_runs(w->flags, a, n, b,
                           tok->pre == TOKENIZER_PRE_FALCON
                           ? TOK_CP_PUNCT : TOK_CP_PUNCT_D);
        t = a; a = b; b = t;
    }
    if (tok->pre == TOKENIZER_PRE_LLAMA3 || tok->pre == TOKENIZER_PRE_DBRX
        || tok->pre == TOKENIZER_PRE_QWEN2)
    {
        n = tok_split_llama3(w->cpts, w->flags, a, n, b,
                             tok->pre == TOKENIZER_PRE_QWEN2 ? 1 : 3);
    } else {
        n = tok_split_gpt2(w->cpts, w->flags, a, n, b);
    }
    t = a; a = b; b = t;
    if (tok->pre == TOKENIZER_PRE_DEFAULT) {
        n = tok_split_runs(w->flags, a, n, b, TOK_CP_NUM_RE);
        t = a; a = b; b = t;
    }
    if (tok->pre == TOKENIZER_PRE_FALCON || tok->pre == TOKENIZER_PRE_DEFAULT) {
        n = tok_split_digit3(w->flags, a, n, b);
        t = a; a = b; b = t;
    }

    /* each word: UTF-8 again, every byte through the GPT-2 byte map */
    start = 0;
    for (k = 0; k < n; k++) {
        o = 0;
        for (i = start; i < start + a[k]; i++) {
            size_t m, j;

            m = tok_utf8_encode(w->cpts[i], u8);
            for (j = 0; j < m; j++) {
                nb = tok_utf8_encode(tok_byte_to_cp((unsigned char) u8[j]),
                                     w->buf + o);
                o += nb;
            }
        }
        start += a[k];
        if (tok->pre == TOKENIZER_PRE_LLAMA3) {
            /* llama-bpe: a word that is a token is not merged */
            int32_t id = tok_lookup(tok, w->buf, o);

            if (id >= 0) {
                tok_emit(w, id);
                continue;
            }
        }
        tok_bpe_word(w, w->buf, o);
    }
}


/* ---- WordPiece ---------------------------------------------------------- */

static int
tok_is_cjk(uint32_t cp)
{
    return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf)
           || (cp >= 0x20000 && cp <= 0x2a6df)
           || (cp >= 0x2a700 && cp <= 0x2b73f)
           || (cp >= 0x2b740 && cp <= 0x2b81f)
           || (cp >= 0x2b920 && cp <= 0x2ceaf)
           || (cp >= 0xf900 && cp <= 0xfaff)
           || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

/* the first code point of the canonical decomposition (llama.cpp keeps
 * only that: accents go) */
static uint32_t
tok_nfd_first(uint32_t cp)
{
    const UNormalizer2  *nfd;
    UErrorCode           st = U_ZERO_ERROR;
    UChar                d[32];
    int32_t              n, i = 0;
    UChar32              c;

    if (cp < 0xc0) {
        return cp;
    }
    nfd = unorm2_getNFDInstance(&st);
    if (U_FAILURE(st)) {
        return cp;
    }
    n = unorm2_getDecomposition(nfd, (UChar32) cp, d, 32, &st);
    if (U_FAILURE(st) || n <= 0) {
        return cp;
    }
    U16_NEXT(d, i, n, c);
    return (uint32_t) c;
}

static void
tok_wpm_word(tok_work_t *w, const char *word, size_t len)
{
    const tokenizer_t  *tok = w->tok;
    size_t              i, j;
    int32_t             id;
    int                 start = w->n_out;

    for (i = 0; i < len; ) {
        j = len - i < tok->max_len ? len : i + tok->max_len;
        id = -1;
        for ( ; j > i; j--) {
            id = tok_lookup(tok, word + i, j - i);
            if (id >= 0) {
                break;
            }
        }
        if (id < 0) {
            w->n_out = start;       /* the whole word is unknown */
            break;
        }
        tok_emit(w, id);
        i = j;
    }
    if (w->n_out == start) {
        tok_emit(w, tok->unk);
    }
}

static void
tok_wpm_fragment(tok_work_t *w, const char *text, size_t len)
{
    size_t    i, adv, o, m;
    uint32_t  cp, mask;
    char      u8[4];

    /* w->buf holds the current word: U+2581 then its characters */
#define WORD_END()                                                           \
    do {                                                                     \
        if (o > 3) {                                                         \
            tok_wpm_word(w, w->buf, o);                                      \
        }                                                                    \
        o = 0;                                                               \
    } while (0)

    memcpy(w->buf, "\xe2\x96\x81", 3);
    o = 3;
    for (i = 0; i < len; i += adv) {
        cp = tok_utf8_decode((const unsigned char *) text + i, len - i, &adv);
        cp = tok_nfd_first(cp);
        if (u_isUWhiteSpace((UChar32) cp)) {
            WORD_END();
            memcpy(w->buf + o, "\xe2\x96\x81", 3);
            o += 3;
            continue;
        }
        mask = U_GET_GC_MASK((UChar32) cp);
        if (cp == 0 || cp == 0xfffd || (mask & U_GC_C_MASK & ~U_GC_CN_MASK)) {
            continue;
        }
        m = tok_utf8_encode((uint32_t) u_tolower((UChar32) cp), u8);
        if ((mask & U_GC_P_MASK) || (cp < 0x7f && (mask & U_GC_S_MASK))
            || tok_is_cjk(cp))
        {
            WORD_END();
            memcpy(w->buf + o, "\xe2\x96\x81", 3);
            memcpy(w->buf + o + 3, u8, m);
            o += 3 + m;
            WORD_END();
            memcpy(w->buf + o, "\xe2\x96\x81", 3);
            o += 3;
            continue;
        }
        memcpy(w->buf + o, u8, m);
        o += m;
    }
    WORD_END();

#undef WORD_END
}


/* ---- encode ----------------------------------------------------------- */

typedef struct {
    size_t   off, len;
    int32_t  id;         /* >= 0: a special token; -1: raw text */
} tok_frag_t;

/* Cuts special tokens out of the text, longest first (llama.cpp's
 * tokenizer_st_partition). Returns the fragment count or -1. */
static int
tok_partition(const tokenizer_t *tok, const char *text, size_t len,
    int parse_special, tok_frag_t **frags_out)
{
    tok_frag_t   *fr, *nf;
    int           n = 0, cap = 16, s, k, m, ncap;
    const char   *st, *hit;
    size_t        sl, off, end;
    uint8_t       type;

    fr = malloc((size_t) cap * sizeof(*fr));
    if (fr == NULL) {
        return -1;
    }
    if (len > 0) {
        fr[0].off = 0;
        fr[0].len = len;
        fr[0].id = -1;
        n = 1;
    }

    for (s = 0; s < tok->n_special && n > 0; s++) {
        int32_t id = tok->special[s];

        type = tok->vocab[id].type;
        if (!parse_special && type != TOKEN_TYPE_USER_DEFINED) {
            continue;
        }
        st = tok_text(tok, id, &sl);

        for (k = 0; k < n; k++) {
            if (fr[k].id >= 0 || fr[k].len < sl) {
                continue;
            }
            hit = memmem(text + fr[k].off, fr[k].len, st, sl);
            if (hit == NULL) {
                continue;
            }
            /* replace fragment k by: left, token, right (right is
             * searched again on the next iteration) */
            off = (size_t) (hit - text);
            end = fr[k].off + fr[k].len;
            if (n + 2 > cap) {
                ncap = cap * 2;
                nf = realloc(fr, (size_t) ncap * sizeof(*fr));
                if (nf == NULL) {
                    free(fr);
                    return -1;
                }
                fr = nf;
                cap = ncap;
            }
            m = 0;
            if (off > fr[k].off) {
                m++;
            }
            if (off + sl < end) {
                m++;
            }
            /* m + 1 entries take the place of 1 */
            memmove(&fr[k + m + 1], &fr[k + 1],
                    (size_t) (n - k - 1) * sizeof(*fr));
            n += m;
            {
                size_t fo = fr[k].off;
                int    at = k;

                if (off > fo) {
                    fr[at].off = fo;
                    fr[at].len = off - fo;
                    fr[at].id = -1;
                    at++;
                }
                fr[at].off = off;
                fr[at].len = sl;
                fr[at].id = id;
                at++;
                if (off + sl < end) {
                    fr[at].off = off + sl;
                    fr[at].len = end - off - sl;
                    fr[at].id = -1;
                }
                k = at - 1;     /* continue with the right part */
            }
        }
    }

    *frags_out = fr;
    return n;
}

int
tokenizer_encode(const tokenizer_t *tok, const char *text, size_t len,
    int add_special, int32_t *out, int max_out, char *err, size_t errlen)
{
    tok_work_t   w;
    tok_frag_t  *fr = NULL;
    int          n_fr, k, prev_special, rc = -1;
    size_t       cap;

    if (tok == NULL || (text == NULL && len > 0) || max_out < 0
        || (out == NULL && max_out > 0))
    {
        errf(err, errlen, __func__, "bad arguments");
        return -1;
    }
    if (len > (size_t) INT32_MAX / 8) {
        errf(err, errlen, __func__, "text too long (%zu bytes)", len);
        return -1;
    }

    memset(&w, 0, sizeof(w));
    w.tok = tok;
    w.out = out;
    w.max_out = max_out;

    /* Worst cases of the text buffer: SPM turns a space into 3 bytes plus
     * a 3-byte prefix; BPE turns a bad byte into U+FFFD (3 bytes), each
     * mapped to 2; WordPiece adds 3 bytes before a 1-byte word. */
    cap = len + 1;
    w.buf = malloc(6 * cap + 8);
    if (tok->kind == TOKENIZER_BPE) {
        w.cpts = malloc(cap * sizeof(*w.cpts));
        w.flags = malloc(cap);
        w.offs_a = malloc(cap * sizeof(size_t));
        w.offs_b = malloc(cap * sizeof(size_t));
    }
    if (w.buf == NULL
        || (tok->kind == TOKENIZER_BPE
            && (w.cpts == NULL || w.flags == NULL || w.offs_a == NULL
                || w.offs_b == NULL)))
    {
        errf(err, errlen, __func__, "out of memory");
        goto done;
    }

    n_fr = tok_partition(tok, text, len,
                         add_special && tok->parse_special, &fr);
    if (n_fr < 0) {
        errf(err, errlen, __func__, "out of memory");
        goto done;
    }

    if (add_special && tok->add_bos) {
        tok_emit(&w, tok->bos);
    }
    prev_special = 1;
    for (k = 0; k < n_fr; k++) {
        if (fr[k].id >= 0) {
            tok_emit(&w, fr[k].id);
            prev_special = 1;
            continue;
        }
        if (tok->kind == TOKENIZER_SPM) {
            tok_spm_fragment(&w, text + fr[k].off, fr[k].len,
                             tok->add_space_prefix && prev_special);
        } else if (tok->kind == TOKENIZER_BPE) {
            tok_bpe_fragment(&w, text + fr[k].off, fr[k].len);
        } else {
            tok_wpm_fragment(&w, text + fr[k].off, fr[k].len);
        }
        prev_special = 0;
    }
    if (add_special && tok->kind == TOKENIZER_WPM) {
        tok_emit(&w, tok->sep);
    } else if (add_special && tok->add_eos) {
        tok_emit(&w, tok->eos);
    }

    if (w.oom) {
        errf(err, errlen, __func__, "out of memory");
        goto done;
    }
    if (w.overflow) {
        errf(err, errlen, __func__, "%d tokens do not fit in %d",
                w.n_out, max_out);
        goto done;
    }
    rc = w.n_out;

done:
    free(fr);
    free(w.sym);
    free(w.heap);
    free(w.buf);
    free(w.cpts);
    free(w.flags);
    free(w.offs_a);
    free(w.offs_b);
    return rc;
}


/* ---- decode and queries ----------------------------------------------- */

int
tokenizer_decode(const tokenizer_t *tok, int32_t prev, int32_t id, char *buf,
    size_t size)
{
    const char  *p;
    size_t       n;

    if (tok == NULL || id < 0 || id >= tok->n_vocab
        || (buf == NULL && size > 0))
    {
        return -1;
    }
    p = tok->arena + tok->vocab[id].piece_off;
    n = tok->vocab[id].piece_len;

    /* SentencePiece drops the space it added in front of the text */
    if (((tok->kind == TOKENIZER_SPM && tok->add_space_prefix)
         || tok->kind == TOKENIZER_WPM)
        && (prev < 0 || prev == tok->bos) && n > 0 && p[0] == ' ')
    {
        p++;
        n--;
    }
    if (n > size || n > INT32_MAX) {
        return -1;
    }
    memcpy(buf, p, n);
    if (n < size) {
        buf[n] = '\0';
    }
    return (int) n;
}

int
tokenizer_n_vocab(const tokenizer_t *tok)
{
    return tok->n_vocab;
}

int32_t
tokenizer_bos(const tokenizer_t *tok)
{
    return tok->bos;
}

int32_t
tokenizer_eos(const tokenizer_t *tok)
{
    return tok->eos;
}

int
tokenizer_is_eog(const tokenizer_t *tok, int32_t id)
{
    int  i;

    for (i = 0; i < tok->n_eog; i++) {
        if (tok->eog[i] == id) {
            return 1;
        }
    }
    return 0;
}

int32_t
tokenizer_find(const tokenizer_t *tok, const char *piece)
{
    if (piece == NULL || piece[0] == '\0') {
        return -1;
    }
    return tok_lookup(tok, piece, strlen(piece));
}

tokenizer_kind_e
tokenizer_kind(const tokenizer_t *tok)
{
    return tok->kind;
}

const char *
tokenizer_text(const tokenizer_t *tok, int32_t id, size_t *len)
{
    if (id < 0 || id >= tok->n_vocab) {
        return NULL;
    }
    if (len) {
        *len = tok->vocab[id].len;
    }
    return tok->arena + tok->vocab[id].off;
}

int
tokenizer_token_type(const tokenizer_t *tok, int32_t id)
{
    if (id < 0 || id >= tok->n_vocab) {
        return -1;
    }
    return tok->vocab[id].type;
}

int
tokenizer_add_bos(const tokenizer_t *tok)
{
    return tok->add_bos;
}
