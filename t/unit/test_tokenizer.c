/*
 * Tokenizer tests: small vocabularies built in memory and as GGUF files
 * (always), then llama.cpp's vocab test vectors, llama2.c's tok512.bin and
 * the golden prompt ids when ../shared is there (LLMCACHE_SHARED overrides
 * where it is).
 */

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "gguf.h"
#include "gguf_write.h"
#include "tap.h"
#include "tokenizer.h"

#define SP  "\xe2\x96\x81"       /* U+2581 */
#define MAX_IDS  4096

static char  err[512];


/* ---- helpers ---------------------------------------------------------- */

static int
encode(const tokenizer_t *tok, const char *s, int add_special, int32_t *ids)
{
    err[0] = '\0';
    return tokenizer_encode(tok, s, strlen(s), add_special, ids, MAX_IDS,
                            err, sizeof(err));
}

static const char *
ids_str(const int32_t *ids, int n)
{
    static char  buf[65536];
    int          i, o = 0;

    buf[0] = '\0';
    for (i = 0; i < n && o < (int) sizeof(buf) - 16; i++) {
        o += snprintf(buf + o, sizeof(buf) - o, " %d", (int) ids[i]);
    }
    return buf;
}

/* the concatenated decoding of ids after prev; NULL if a piece failed */
static char *
decode_after(const tokenizer_t *tok, int32_t prev, const int32_t *ids, int n)
{
    size_t   cap = 64, len = 0;
    char    *out = malloc(cap), piece[256];
    int      i, k;

    for (i = 0; i < n; i++) {
        k = tokenizer_decode(tok, prev, ids[i], piece, sizeof(piece));
        if (k < 0) {
            free(out);
            return NULL;
        }
        while (len + k + 1 > cap) {
            cap *= 2;
            out = realloc(out, cap);
        }
        memcpy(out + len, piece, k);
        len += k;
        prev = ids[i];
    }
    out[len] = '\0';
    return out;
}

static char *
decode_all(const tokenizer_t *tok, const int32_t *ids, int n)
{
    return decode_after(tok, -1, ids, n);
}

/* a malloc()ed copy with invalid UTF-8 replaced as JSON encoders do it:
 * U+FFFD per maximal bad subpart (a truncated sequence is one) */
static char *
utf8_sanitize(const char *s)
{
    size_t          len = strlen(s), i = 0, o = 0, need, k;
    unsigned char   c, lo, hi;
    char           *out = malloc(3 * len + 1);

    while (i < len) {
        c = (unsigned char) s[i];
        lo = 0x80;
        hi = 0xbf;
        if (c < 0x80) {
            out[o++] = s[i++];
            continue;
        }
        need = 0;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            lo = c == 0xe0 ? 0xa0 : 0x80;
            hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            lo = c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xf4 ? 0x8f : 0xbf;
        }
        for (k = 0; k < need && i + 1 + k < len; k++) {
            c = (unsigned char) s[i + 1 + k];
            if (c < (k == 0 ? lo : 0x80) || c > (k == 0 ? hi : 0xbf)) {
                break;
            }
        }
        if (need && k == need) {
            memcpy(out + o, s + i, need + 1);
            o += need + 1;
            i += need + 1;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i += 1 + k;
        }
    }
    out[o] = '\0';
    return out;
}

static int32_t
id_of(const tokenizer_t *tok, const char *piece)
{
    return tokenizer_find(tok, piece);
}

/* snprintf that reports truncation (paths) */
static int
fmt_path(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fmt_path(char *buf, size_t size, const char *fmt, ...)
{
    va_list  ap;
    int      n;

    va_start(ap, fmt);
    n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t) n < size ? 0 : -1;
}

static char  shared_dir[PATH_MAX];

/* ../shared next to the checkout: the binary is build/unit/test_tokenizer */
static const char *
shared_path(void)
{
    char     exe[PATH_MAX];
    ssize_t  n;
    char    *p;
    int      up;

    if (getenv("LLMCACHE_SHARED")) {
        return getenv("LLMCACHE_SHARED");
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        return "../shared";
    }
    exe[n] = '\0';
    for (up = 0; up < 3; up++) {
        p = strrchr(exe, '/');
        if (p == NULL) {
            return "../shared";
        }
        *p = '\0';
    }
    fmt_path(shared_dir, sizeof(shared_dir), "%s/../shared", exe);
    return shared_dir;
}

static char *
slurp(const char *path, size_t *len)
{
    FILE   *f = fopen(path, "rb");
    char   *b;
    long    n;

    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = malloc((size_t) n + 1);
    *len = fread(b, 1, (size_t) n, f);
    b[*len] = '\0';
    fclose(f);
    return b;
}


/* ---- a small SentencePiece-style vocabulary --------------------------- */

/* <unk> <s> </s>, 256 byte tokens, then pieces with scores */
static const struct { const char *p; float score; int type; } spm_pieces[] = {
    { SP, -1.0f, TOKEN_TYPE_NORMAL },
    { "h", -2.0f, TOKEN_TYPE_NORMAL },
    { "e", -2.0f, TOKEN_TYPE_NORMAL },
    { "l", -2.0f, TOKEN_TYPE_NORMAL },
    { "o", -2.0f, TOKEN_TYPE_NORMAL },
    { "w", -2.0f, TOKEN_TYPE_NORMAL },
    { "r", -2.0f, TOKEN_TYPE_NORMAL },
    { "d", -2.0f, TOKEN_TYPE_NORMAL },
    { "a", -2.0f, TOKEN_TYPE_NORMAL },
    { "b", -2.0f, TOKEN_TYPE_NORMAL },
    { "c", -2.0f, TOKEN_TYPE_NORMAL },
    { "he", -3.0f, TOKEN_TYPE_NORMAL },
    { "ll", -3.0f, TOKEN_TYPE_NORMAL },
    { "llo", -4.0f, TOKEN_TYPE_NORMAL },
    { "hello", -5.0f, TOKEN_TYPE_NORMAL },
    { SP "hello", -6.0f, TOKEN_TYPE_NORMAL },
    { "or", -3.0f, TOKEN_TYPE_NORMAL },
    { SP "w", -3.0f, TOKEN_TYPE_NORMAL },
    { SP "wor", -4.0f, TOKEN_TYPE_NORMAL },
    { "ld", -3.0f, TOKEN_TYPE_NORMAL },
    { SP "world", -5.0f, TOKEN_TYPE_NORMAL },
    { "ab", -7.0f, TOKEN_TYPE_NORMAL },          /* ab and bc tie */
    { "bc", -7.0f, TOKEN_TYPE_NORMAL },
    { SP SP, -8.0f, TOKEN_TYPE_NORMAL },
    { "<|im_end|>", 0.0f, TOKEN_TYPE_CONTROL },
    { "<tool>", 0.0f, TOKEN_TYPE_USER_DEFINED },
    { NULL, 0, 0 }
};

static int  spm_add_eos;

static tokenizer_t *
spm_tiny(int add_space_prefix)
{
    static char         bytes[256][8];
    const char         *toks[600];
    float               scores[600];
    int32_t             types[600];
    tokenizer_vocab_t   v;
    int                 n = 0, i;

    toks[n] = "<unk>"; scores[n] = 0; types[n++] = TOKEN_TYPE_UNKNOWN;
    toks[n] = "<s>"; scores[n] = 0; types[n++] = TOKEN_TYPE_CONTROL;
    toks[n] = "</s>"; scores[n] = 0; types[n++] = TOKEN_TYPE_CONTROL;
    for (i = 0; i < 256; i++) {
        snprintf(bytes[i], sizeof(bytes[i]), "<0x%02X>", i);
        toks[n] = bytes[i]; scores[n] = 0; types[n++] = TOKEN_TYPE_BYTE;
    }
    for (i = 0; spm_pieces[i].p; i++) {
        toks[n] = spm_pieces[i].p;
        scores[n] = spm_pieces[i].score;
        types[n++] = spm_pieces[i].type;
    }

    memset(&v, 0, sizeof(v));
    v.kind = TOKENIZER_SPM;
    v.n_vocab = n;
    v.tokens = toks;
    v.scores = scores;
    v.types = types;
    v.bos = 1;
    v.eos = 2;
    v.unk = 0;
    v.eot = -1;
    v.add_bos = 1;
    v.add_eos = spm_add_eos;
    v.add_space_prefix = add_space_prefix;
    return tokenizer_from_vocab(&v, err, sizeof(err));
}

static void
test_spm_tiny(void)
{
    tokenizer_t  *tok = spm_tiny(1);
    int32_t       ids[MAX_IDS], want[8];
    int           n, i, bos_in_text;
    char         *s;

    ok(tok != NULL, "tiny SPM vocab builds (%s)", err);
    if (tok == NULL) {
        return;
    }
    is_int(tokenizer_n_vocab(tok), 3 + 256 + 26, "n_vocab");
    is_int(tokenizer_bos(tok), 1, "bos");
    is_int(tokenizer_eos(tok), 2, "eos");

    n = encode(tok, "hello world", 1, ids);
    want[0] = 1;
    want[1] = id_of(tok, SP "hello");
    want[2] = id_of(tok, SP "world");
    is_int(n, 3, "hello world: BOS + 2 pieces");
    ok(n == 3 && memcmp(ids, want, sizeof(int32_t) * 3) == 0,
       "hello world -> <s> _hello _world (%s)", ids_str(ids, n));

    n = encode(tok, "hello world", 0, ids);
    ok(n == 2 && ids[0] == want[1], "no BOS without add_special");

    n = encode(tok, "", 1, ids);
    ok(n == 1 && ids[0] == 1, "empty text with add_special is just BOS");
    n = encode(tok, "", 0, ids);
    is_int(n, 0, "empty text without add_special is nothing");

    /* equal scores: the left pair merges first; a better right pair wins */
    n = encode(tok, "abc", 0, ids);
    ok(n == 3 && ids[0] == id_of(tok, SP) && ids[1] == id_of(tok, "ab")
       && ids[2] == id_of(tok, "c"), "tie goes left: _ ab c (%s)",
       ids_str(ids, n));

    /* unknown characters fall back to bytes */
    n = encode(tok, "\xc3\xa9", 0, ids);
    ok(n == 3 && ids[0] == id_of(tok, SP) && ids[1] == 3 + 0xc3
       && ids[2] == 3 + 0xa9, "e-acute -> _ <0xC3> <0xA9> (%s)",
       ids_str(ids, n));

    /* control tokens are parsed only with add_special; user-defined always */
    n = encode(tok, "hello<|im_end|>", 1, ids);
    ok(n == 3 && ids[2] == id_of(tok, "<|im_end|>"),
       "<|im_end|> parsed with add_special (%s)", ids_str(ids, n));
    n = encode(tok, "hello<|im_end|>", 0, ids);
    for (i = 0, bos_in_text = 0; i < n; i++) {
        bos_in_text |= ids[i] == id_of(tok, "<|im_end|>");
    }
    ok(n > 3 && !bos_in_text, "<|im_end|> is text without add_special");
    n = encode(tok, "hello<tool>hello", 0, ids);
    ok(n == 3 && ids[0] == want[1] && ids[1] == id_of(tok, "<tool>")
       && ids[2] == want[1],
       "user-defined token always parsed; a space prefix follows it (%s)",
       ids_str(ids, n));
    n = encode(tok, "<s>hello", 1, ids);
    ok(n == 3 && ids[0] == 1 && ids[1] == 1 && ids[2] == want[1],
       "<s> in the text is BOS with add_special (%s)", ids_str(ids, n));

    ok(tokenizer_is_eog(tok, 2), "</s> ends generation");
    ok(tokenizer_is_eog(tok, id_of(tok, "<|im_end|>")),
       "<|im_end|> ends generation");
    ok(!tokenizer_is_eog(tok, want[1]), "_hello does not");
    is_int(tokenizer_find(tok, "nope"), -1, "find: absent piece");

    /* decode: the added space goes at the start and after BOS only */
    n = encode(tok, "hello world", 1, ids);
    s = decode_all(tok, ids, n);
    is_str(s, "hello world", "decode drops the space after BOS");
    free(s);
    {
        char  b[16];
        int   k;

        k = tokenizer_decode(tok, want[1], want[2], b, sizeof(b));
        ok(k == 6 && memcmp(b, " world", 6) == 0, "inner space kept");
        k = tokenizer_decode(tok, -1, 1, b, sizeof(b));
        is_int(k, 0, "control token decodes to nothing");
        k = tokenizer_decode(tok, -1, 3 + 'A', b, sizeof(b));
        ok(k == 1 && b[0] == 'A', "<0x41> decodes to A");
        k = tokenizer_decode(tok, -1, want[2], b, 3);
        is_int(k, -1, "decode: buffer too small");
        k = tokenizer_decode(tok, -1, 99999, b, sizeof(b));
        is_int(k, -1, "decode: id out of range");
    }

    /* too many ids for the output */
    err[0] = '\0';
    n = tokenizer_encode(tok, "hello world", 11, 1, ids, 2, err, sizeof(err));
    ok(n == -1 && strstr(err, "tokenizer_encode") != NULL,
       "overflowing max_out is an error: %s", err);

    tokenizer_free(tok);

    tok = spm_tiny(0);
    n = encode(tok, "hello", 0, ids);
    ok(n == 1 && ids[0] == id_of(tok, "hello"),
       "without add_space_prefix: no leading _ (%s)", ids_str(ids, n));
    tokenizer_free(tok);

    spm_add_eos = 1;
    tok = spm_tiny(1);
    n = encode(tok, "hello", 1, ids);
    ok(n == 3 && ids[0] == 1 && ids[2] == 2, "add_eos: </s> appended (%s)",
       ids_str(ids, n));
    n = encode(tok, "hello", 0, ids);
    is_int(n, 1, "add_eos: nothing without add_special");
    tokenizer_free(tok);
    spm_add_eos = 0;
}


/* ---- a small byte-level BPE vocabulary -------------------------------- */

static uint32_t
byte_cp(int b)
{
    int  n = 0, c;

    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae) {
        return (uint32_t) b;
    }
    for (c = 0; c < b; c++) {
        if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac)
              || c >= 0xae))
        {
            n++;
        }
    }
    return 256 + (uint32_t) n;
}

static const char *bpe_extra[] = {
    "he", "\xc4\xa0t", "\xc4\xa0the", "the", "\xc4\xa0\xc4\xa0",
    "12", "123", "<|endoftext|>", NULL
};
static const char *bpe_merges[] = {
    "h e", "\xc4\xa0 t", "\xc4\xa0t he", "t he", "\xc4\xa0 \xc4\xa0",
    "1 2", "12 3", NULL
};

static tokenizer_t *
bpe_vocab(tokenizer_pre_e pre, const char **extra, const char **merges)
{
    static char         bytes[256][4];
    const char         *toks[300];
    int32_t             types[300];
    tokenizer_vocab_t   v;
    int                 n = 0, i, m;
    uint32_t            cp;

    for (i = 0; i < 256; i++) {
        cp = byte_cp(i);
        if (cp < 0x80) {
            bytes[i][0] = (char) cp;
        } else {
            bytes[i][0] = (char) (0xc0 | (cp >> 6));
            bytes[i][1] = (char) (0x80 | (cp & 0x3f));
        }
        toks[n] = bytes[i];
        types[n++] = TOKEN_TYPE_NORMAL;
    }
    for (i = 0; extra[i]; i++) {
        toks[n] = extra[i];
        types[n++] = TOKEN_TYPE_NORMAL;
    }
    types[n - 1] = TOKEN_TYPE_CONTROL;
    for (m = 0; merges[m]; m++) {
        /* counted */
    }

    memset(&v, 0, sizeof(v));
    v.kind = TOKENIZER_BPE;
    v.pre = pre;
    v.n_vocab = n;
    v.tokens = toks;
    v.types = types;
    v.merges = merges;
    v.n_merges = m;
    v.bos = n - 1;
    v.eos = n - 1;
    v.unk = -1;
    v.eot = -1;
    return tokenizer_from_vocab(&v, err, sizeof(err));
}

static tokenizer_t *
bpe_tiny(tokenizer_pre_e pre)
{
    return bpe_vocab(pre, bpe_extra, bpe_merges);
}

/* Llama 3's split, seen through whole-word tokens: with llama-bpe a word
 * that is a token comes out as that token, merges or not */
static void
test_bpe_llama3(void)
{
    static const char  *extra[] = {
        "Hello", "\xc4\xa0world", "123", "456", "IT", "'S",
        "!!\xc4\x8a\xc4\x8a", "\xc4\x8a\xc4\x8a", "\xc4\xa0y", "12",
        "<|eot_id|>", NULL
    };
    static const char  *merges[] = { "1 2", "12 3", NULL };
    tokenizer_t        *tok, *qw, *g2;
    int32_t             ids[MAX_IDS];
    int                 n;

    tok = bpe_vocab(TOKENIZER_PRE_LLAMA3, extra, merges);
    qw = bpe_vocab(TOKENIZER_PRE_QWEN2, extra, merges);
    g2 = bpe_vocab(TOKENIZER_PRE_GPT2, extra, merges);
    ok(tok && qw && g2, "llama3, qwen2, gpt-2 vocabularies build (%s)", err);
    if (tok == NULL || qw == NULL || g2 == NULL) {
        goto done;
    }

    n = encode(tok, "Hello world", 0, ids);
    ok(n == 2 && ids[0] == id_of(tok, "Hello")
       && ids[1] == id_of(tok, "\xc4\xa0world"),
       "llama3: whole-word tokens without merges (%s)", ids_str(ids, n));
    n = encode(g2, "Hello world", 0, ids);
    is_int(n, 11, "gpt-2: the same words need merges, so bytes");

    n = encode(tok, "1234567", 0, ids);
    ok(n == 3 && ids[0] == id_of(tok, "123") && ids[1] == id_of(tok, "456")
       && ids[2] == id_of(tok, "7"), "llama3: digits in threes (%s)",
       ids_str(ids, n));
    n = encode(qw, "1234567", 0, ids);
    ok(n == 7 && ids[0] == id_of(qw, "1"), "qwen2: digits one by one (%s)",
       ids_str(ids, n));
    n = encode(g2, "1234567", 0, ids);
    ok(n == 5 && ids[0] == id_of(g2, "123"),
       "gpt-2: one digit run, merged by rank (%s)", ids_str(ids, n));

    n = encode(tok, "IT'S", 0, ids);
    ok(n == 2 && ids[0] == id_of(tok, "IT") && ids[1] == id_of(tok, "'S"),
       "llama3: contractions in any case (%s)", ids_str(ids, n));

    n = encode(tok, "!!\n\nHello", 0, ids);
    ok(n == 2 && ids[0] == id_of(tok, "!!\xc4\x8a\xc4\x8a"),
       "llama3: punctuation keeps the newlines after it (%s)",
       ids_str(ids, n));
    n = encode(tok, "x\n\n  y", 0, ids);
    ok(n == 4 && ids[1] == id_of(tok, "\xc4\x8a\xc4\x8a")
       && ids[2] == id_of(tok, "\xc4\xa0")
       && ids[3] == id_of(tok, "\xc4\xa0y"),
       "llama3: newlines, then a space, then ' y' (%s)", ids_str(ids, n));

    n = encode(tok, "Hello<|eot_id|>", 1, ids);
    ok(n == 2 && ids[1] == id_of(tok, "<|eot_id|>"),
       "<|eot_id|> parsed with add_special (%s)", ids_str(ids, n));
    ok(tokenizer_is_eog(tok, id_of(tok, "<|eot_id|>")),
       "<|eot_id|> ends generation");

done:
    tokenizer_free(tok);
    tokenizer_free(qw);
    tokenizer_free(g2);
}

static void
test_bpe_tiny(void)
{
    tokenizer_t  *tok = bpe_tiny(TOKENIZER_PRE_GPT2), *fal;
    int32_t       ids[MAX_IDS];
    int           n;
    char         *s;

    ok(tok != NULL, "tiny BPE vocab builds (%s)", err);
    if (tok == NULL) {
        return;
    }

    n = encode(tok, "the the", 0, ids);
    ok(n == 2 && ids[0] == id_of(tok, "the")
       && ids[1] == id_of(tok, "\xc4\xa0the"),
       "merges by rank: 'the the' -> the Gthe (%s)", ids_str(ids, n));

    n = encode(tok, "the", 1, ids);
    ok(n == 1 && ids[0] == id_of(tok, "the"), "gpt2: no BOS added");

    /* \s+(?!\S): of two spaces before a word, one stays with the word */
    n = encode(tok, "a  the", 0, ids);
    ok(n == 3 && ids[0] == id_of(tok, "a")
       && ids[1] == id_of(tok, "\xc4\xa0")
       && ids[2] == id_of(tok, "\xc4\xa0the"),
       "a, space, ' the' (%s)", ids_str(ids, n));
    n = encode(tok, "a  ", 0, ids);
    ok(n == 2 && ids[1] == id_of(tok, "\xc4\xa0\xc4\xa0"),
       "trailing spaces stay together (%s)", ids_str(ids, n));

    /* falcon cuts digit runs in threes from the left, gpt-2 does not */
    n = encode(tok, "1234", 0, ids);
    ok(n == 2 && ids[0] == id_of(tok, "123") && ids[1] == id_of(tok, "4"),
       "gpt-2: 1234 -> 123 4 (%s)", ids_str(ids, n));
    n = encode(tok, "45123", 0, ids);
    ok(n == 3 && ids[2] == id_of(tok, "123"), "gpt-2: 45123 -> 4 5 123 (%s)",
       ids_str(ids, n));
    fal = bpe_tiny(TOKENIZER_PRE_FALCON);
    n = encode(fal, "45123", 0, ids);
    ok(n == 5 && ids[2] == id_of(fal, "1") && ids[3] == id_of(fal, "2"),
       "falcon: 45123 -> 451|23 -> 4 5 1 2 3 (%s)", ids_str(ids, n));
    n = encode(fal, "x,,123", 0, ids);
    ok(n == 4 && ids[3] == id_of(fal, "123"),
       "falcon: punctuation runs split first (%s)", ids_str(ids, n));
    tokenizer_free(fal);

    n = encode(tok, "the<|endoftext|>the", 1, ids);
    ok(n == 3 && ids[1] == id_of(tok, "<|endoftext|>"),
       "<|endoftext|> parsed with add_special (%s)", ids_str(ids, n));
    ok(tokenizer_is_eog(tok, id_of(tok, "<|endoftext|>")),
       "<|endoftext|> ends generation");

    n = encode(tok, "\xff\xfe ok", 0, ids);
    s = decode_all(tok, ids, n);
    is_str(s, "\xef\xbf\xbd\xef\xbf\xbd ok",
           "invalid UTF-8 becomes U+FFFD, as llama.cpp");
    free(s);

    tokenizer_free(tok);
}

/* ---- a small WordPiece vocabulary -------------------------------------- */

static void
test_wpm_tiny(void)
{
    const char         *toks[] = { "[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                   SP "hello", SP "world", SP ",", SP "!",
                                   SP "he", "llo", SP "wor", "ld", "x",
                                   SP "\xe4\xb8\xad", SP "cafe" };
    int32_t             types[] = { 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                    1, 1 };
    tokenizer_vocab_t   v;
    tokenizer_t        *tok;
    int32_t             ids[MAX_IDS];
    int                 n;
    char               *s;

    memset(&v, 0, sizeof(v));
    v.kind = TOKENIZER_WPM;
    v.n_vocab = 15;
    v.tokens = toks;
    v.types = types;
    v.bos = 2;
    v.eos = -1;
    v.unk = 1;
    v.sep = 3;
    v.eot = -1;
    v.add_bos = 1;
    tok = tokenizer_from_vocab(&v, err, sizeof(err));
    ok(tok != NULL, "tiny WordPiece vocab builds (%s)", err);
    if (tok == NULL) {
        return;
    }
    n = encode(tok, "Hello, WORLD!", 1, ids);
    ok(n == 6 && ids[0] == 2 && ids[1] == 4 && ids[2] == 6 && ids[3] == 5
       && ids[4] == 7 && ids[5] == 3,
       "[CLS] hello , world ! [SEP], lower-cased (%s)", ids_str(ids, n));
    n = encode(tok, "  wORld\t\n", 0, ids);
    ok(n == 1 && ids[0] == 5, "white space only separates (%s)",
       ids_str(ids, n));
    n = encode(tok, "hellox", 0, ids);
    ok(n == 2 && ids[0] == 4 && ids[1] == 12,
       "longest match first: hello x (%s)", ids_str(ids, n));
    n = encode(tok, "helloy world", 0, ids);
    ok(n == 2 && ids[0] == 1 && ids[1] == 5,
       "a word with no full cut is [UNK] as a whole (%s)", ids_str(ids, n));
    n = encode(tok, "Caf\xc3\xa9 Cafe\xcc\x81", 0, ids);
    ok(n == 2 && ids[0] == 14 && ids[1] == 1,
       "accents: a precomposed one goes, a combining mark stays (%s)",
       ids_str(ids, n));
    n = encode(tok, "x\xe4\xb8\xadx", 0, ids);
    ok(n == 3 && ids[1] == 13, "CJK characters are words (%s)",
       ids_str(ids, n));
    n = encode(tok, "[SEP]hello", 1, ids);
    ok(n == 4 && ids[1] == 3, "[SEP] parsed with add_special (%s)",
       ids_str(ids, n));
    n = encode(tok, "hello world", 1, ids);
    s = decode_all(tok, ids, n);
    is_str(s, "hello world", "WordPiece decode");
    free(s);
    tokenizer_free(tok);

    v.sep = -1;
    tok = tokenizer_from_vocab(&v, err, sizeof(err));
    ok(tok == NULL && strstr(err, "separator"),
       "WordPiece without [SEP] -> %s", err);
}

static const char *round_trip_texts[] = {
    "Hello, world!",
    "  leading and trailing  ",
    "tabs\tand\nnew\n\nlines\r\n",
    "\xed\x8c\x8c\xec\x8a\xa4\xed\x83\x80 \xeb\xa0\x88\xec\x8b\x9c\xed\x94\xbc",
    "emoji \xf0\x9f\xa6\x99\xf0\x9f\x98\x81 and ZWJ "
    "\xf0\x9f\x98\xb6\xe2\x80\x8d\xf0\x9f\x8c\xab\xef\xb8\x8f",
    "     ",
    "x",
    "I'm  12345 'll ve",
    NULL
};

static void
round_trip(const tokenizer_t *tok, const char *name)
{
    int32_t   ids[MAX_IDS];
    int       i, n, add, bad = 0;
    char     *s;

    for (i = 0; round_trip_texts[i]; i++) {
        for (add = 0; add < 2; add++) {
            n = encode(tok, round_trip_texts[i], add, ids);
            s = n >= 0 ? decode_all(tok, ids, n) : NULL;
            if (s == NULL || strcmp(s, round_trip_texts[i]) != 0) {
                bad++;
                printf("# %s: '%s' came back as '%s'\n", name,
                       round_trip_texts[i], s ? s : "(error)");
            }
            free(s);
        }
    }
    is_int(bad, 0, "%s: encode -> decode round trips", name);
}


/* ---- GGUF vocabularies and their errors -------------------------------- */

typedef struct {
    int  no_tokens, tokens_not_str, short_scores, bad_type, bos_oob;
    int  gpt2, no_merges, bad_pre, bad_model, dup;
} gguf_fault_t;

static tokenizer_t *
gguf_tiny(const gguf_fault_t *f)
{
    gguf_writer_t  *w = gguf_writer_new();
    gguf_ctx_t     *ctx;
    tokenizer_t    *tok;
    void           *mem;
    size_t          size;
    const char     *toks[] = { "<unk>", "<s>", "</s>", SP, "a", SP "a",
                               "b", "<|im_end|>" };
    const char     *merges[] = { "a b" };
    float           scores[] = { 0, 0, 0, -1, -2, -3, -2, 0 };
    int32_t         types[] = { 2, 3, 3, 1, 1, 1, 1, 3 };
    int             n = 8;

    if (f->dup) {
        toks[6] = "a";
    }
    if (f->bad_type) {
        types[4] = 9;
    }
    gguf_writer_add_str(w, "general.architecture", "llama");
    gguf_writer_add_str(w, "tokenizer.ggml.model",
                        f->bad_model ? "wordpiece-ish"
                        : f->gpt2 ? "gpt2" : "llama");
    if (f->bad_pre) {
        gguf_writer_add_str(w, "tokenizer.ggml.pre", "qwen99");
    }
    if (f->tokens_not_str) {
        gguf_writer_add_arr(w, "tokenizer.ggml.tokens", GGUF_TYPE_INT32,
                            types, n);
    } else if (!f->no_tokens) {
        gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, n);
    }
    gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32,
                        scores, f->short_scores ? n - 1 : n);
    gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32,
                        types, n);
    if (f->gpt2 && !f->no_merges) {
        gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    }
    gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id",
                        f->bos_oob ? 8 : 1);
    gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2);
    mem = gguf_writer_to_mem(w, &size);
    gguf_writer_free(w);
    if (mem == NULL) {
        snprintf(err, sizeof(err), "gguf writer failed");
        return NULL;
    }
    ctx = gguf_open_mem(mem, size, err, sizeof(err));
    if (ctx == NULL) {
        free(mem);
        return NULL;
    }
    err[0] = '\0';
    tok = tokenizer_from_gguf(ctx, err, sizeof(err));
    gguf_close(ctx);
    free(mem);          /* the tokenizer keeps copies of what it needs */
    return tok;
}

static void
test_gguf_vocab(void)
{
    gguf_fault_t   f;
    tokenizer_t   *tok;
    int32_t        ids[MAX_IDS];
    int            n;

    memset(&f, 0, sizeof(f));
    tok = gguf_tiny(&f);
    ok(tok != NULL, "GGUF SPM vocab loads (%s)", err);
    if (tok) {
        n = encode(tok, "a a", 1, ids);
        ok(n == 3 && ids[0] == 1 && ids[1] == 5 && ids[2] == 5,
           "GGUF vocab encodes 'a a' -> <s> _a _a (%s)", ids_str(ids, n));
        tokenizer_free(tok);
    }

#define BAD(field, what)                                                     \
    memset(&f, 0, sizeof(f));                                                \
    f.field = 1;                                                             \
    tok = gguf_tiny(&f);                                                     \
    ok(tok == NULL && strstr(err, "tokenizer_from") && strstr(err, what),    \
       "bad vocab (" #field ") -> %s", err);                                 \
    tokenizer_free(tok)

    BAD(no_tokens, "tokenizer.ggml.tokens");
    BAD(tokens_not_str, "string array");
    BAD(short_scores, "scores");
    BAD(bad_type, "bad type");
    BAD(bos_oob, "out of range");
    BAD(dup, "duplicate");
    BAD(bad_model, "unsupported tokenizer model");

    memset(&f, 0, sizeof(f));
    f.gpt2 = 1;
    tok = gguf_tiny(&f);
    ok(tok != NULL, "GGUF BPE vocab loads (%s)", err);
    tokenizer_free(tok);
    memset(&f, 0, sizeof(f));
    f.gpt2 = 1;
    f.no_merges = 1;
    tok = gguf_tiny(&f);
    ok(tok == NULL && strstr(err, "merges"), "gpt2 without merges -> %s",
       err);
    tokenizer_free(tok);
    memset(&f, 0, sizeof(f));
    f.gpt2 = 1;
    f.bad_pre = 1;
    tok = gguf_tiny(&f);
    ok(tok == NULL && strstr(err, "pre-tokenizer"),
       "unknown pre-tokenizer -> %s", err);
    tokenizer_free(tok);

#undef BAD
}


/* ---- llama2.c tok.bin ------------------------------------------------- */

static int
write_tokbin(const char *path, int truncate, int bad_len)
{
    FILE        *fp = fopen(path, "wb");
    const char  *pieces[] = { "<unk>", "\n<s>\n", "\n</s>\n", " ", "a", "b",
                              " a", "ab", " ab" };
    float        scores[] = { 0, 0, 0, -1, -2, -2, -3, -3, -4 };
    int32_t      maxlen = 8, len;
    int          i, n = 9;

    if (fp == NULL) {
        return -1;
    }
    fwrite(&maxlen, 4, 1, fp);
    for (i = 0; i < n; i++) {
        len = (int32_t) strlen(pieces[i]);
        if (bad_len && i == 4) {
            len = 1000;
        }
        fwrite(&scores[i], 4, 1, fp);
        fwrite(&len, 4, 1, fp);
        if (truncate && i == n - 1) {
            break;
        }
        fwrite(pieces[i], 1, strlen(pieces[i]), fp);
    }
    fclose(fp);
    return 0;
}

static void
test_llama2c_small(void)
{
    char          path[] = "/tmp/llmc-tokbin-XXXXXX";
    int           fd = mkstemp(path);
    tokenizer_t  *tok;
    int32_t       ids[MAX_IDS];
    int           n;
    char         *s;

    if (fd < 0) {
        ok(0, "mkstemp: %s", strerror(errno));
        return;
    }
    close(fd);

    write_tokbin(path, 0, 0);
    err[0] = '\0';
    tok = tokenizer_from_llama2c(path, 9, err, sizeof(err));
    ok(tok != NULL, "small tok.bin loads (%s)", err);
    if (tok) {
        n = encode(tok, "ab", 1, ids);
        ok(n == 2 && ids[0] == 1 && ids[1] == 8,
           "run.c encode: BOS + dummy prefix -> <s> ' ab' (%s)",
           ids_str(ids, n));
        n = encode(tok, "ab a", 1, ids);
        s = decode_all(tok, ids, n);
        is_str(s, "ab a", "decode strips the space after BOS");
        free(s);
        tokenizer_free(tok);
    }
    tok = tokenizer_from_llama2c(path, 0, err, sizeof(err));
    ok(tok != NULL && tokenizer_n_vocab(tok) == 9,
       "n_vocab 0 reads every token in the file");
    tokenizer_free(tok);

    tok = tokenizer_from_llama2c(path, 10, err, sizeof(err));
    ok(tok == NULL && strstr(err, "truncated"), "more tokens than the file "
       "-> %s", err);
    write_tokbin(path, 1, 0);
    tok = tokenizer_from_llama2c(path, 9, err, sizeof(err));
    ok(tok == NULL && strstr(err, "truncated"), "truncated file -> %s", err);
    write_tokbin(path, 0, 1);
    tok = tokenizer_from_llama2c(path, 9, err, sizeof(err));
    ok(tok == NULL && strstr(err, "bad length"), "bad length -> %s", err);
    tok = tokenizer_from_llama2c("/nonexistent/tok.bin", 9, err,
                                 sizeof(err));
    ok(tok == NULL && strstr(err, "tokenizer_from_llama2c"),
       "missing file -> %s", err);
    unlink(path);
}


/* ---- ../shared -------------------------------------------------------- */

static void
test_vectors(const char *shared, const char *name)
{
    char           path[PATH_MAX], p2[PATH_MAX + 8];
    char          *inp, *out, *ip, *op, *e, *nl, *got;
    const char    *sep = "\n__ggml_vocab_test__\n";
    size_t         ni, no;
    gguf_ctx_t    *ctx;
    tokenizer_t   *tok;
    int32_t        ids[MAX_IDS];
    int            n, total = 0, bad = 0;

    fmt_path(path, sizeof(path), "%s/vocab/ggml-vocab-%s.gguf", shared, name);
    ctx = gguf_open(path, err, sizeof(err));
    if (ctx == NULL) {
        ok(0, "%s: %s", name, err);
        return;
    }
    err[0] = '\0';
    tok = tokenizer_from_gguf(ctx, err, sizeof(err));
    ok(tok != NULL, "%s vocab loads (%s)", name, err);
    fmt_path(p2, sizeof(p2), "%s.inp", path);
    inp = slurp(p2, &ni);
    fmt_path(p2, sizeof(p2), "%s.out", path);
    out = slurp(p2, &no);
    if (tok == NULL || inp == NULL || out == NULL) {
        ok(0, "%s: vectors readable", name);
        goto done;
    }

    /* each input is followed by "\n__ggml_vocab_test__\n"; one line of
     * expected ids per input */
    ip = inp;
    op = out;
    while ((e = strstr(ip, sep)) != NULL) {
        nl = strchr(op, '\n');
        if (nl == NULL) {
            ok(0, "%s: .out has fewer lines than inputs", name);
            break;
        }
        *nl = '\0';
        n = tokenizer_encode(tok, ip, (size_t) (e - ip), 0, ids, MAX_IDS,
                             err, sizeof(err));
        got = (char *) ids_str(ids, n < 0 ? 0 : n);
        total++;
        if (n < 0 || strcmp(got, op) != 0) {
            bad++;
            printf("# %s input %d '%.*s'\n#  got:%s\n# want:%s\n", name,
                   total, (int) (e - ip > 60 ? 60 : e - ip), ip, got, op);
        }
        ip = e + strlen(sep);
        op = nl + 1;
    }
    ok(total > 40 && bad == 0, "%s: %d/%d test vectors match llama.cpp",
       name, total - bad, total);
    if (tokenizer_kind(tok) != TOKENIZER_WPM) {
        round_trip(tok, name);      /* WordPiece lower-cases */
    }

done:
    free(inp);
    free(out);
    tokenizer_free(tok);
    gguf_close(ctx);
}

/* prompt ids from golden/aidreams260K.md: "ids:" lists the prompt's tokens
 * (after BOS) then the generated ones */
static void
test_aidreams(const char *shared)
{
    char          path[PATH_MAX];
    char         *md, *p, *q, *line;
    size_t        len;
    tokenizer_t  *tok;
    gguf_ctx_t   *ctx;
    tokenizer_t  *tok2;
    int32_t       ids[MAX_IDS], ids2[MAX_IDS];
    int           n, n2, i, good, checked = 0;
    long          want;

    fmt_path(path, sizeof(path), "%s/models/tok512.bin", shared);
    tok = tokenizer_from_llama2c(path, 512, err, sizeof(err));
    ok(tok != NULL, "tok512.bin loads (%s)", err);
    fmt_path(path, sizeof(path), "%s/models/aidreams260K.gguf", shared);
    ctx = gguf_open(path, err, sizeof(err));
    tok2 = ctx ? tokenizer_from_gguf(ctx, err, sizeof(err)) : NULL;
    ok(tok2 != NULL, "aidreams260K.gguf vocab loads (%s)", err);
    fmt_path(path, sizeof(path), "%s/golden/aidreams260K.md", shared);
    md = slurp(path, &len);
    if (tok == NULL || tok2 == NULL || md == NULL) {
        goto done;
    }

    for (p = md; (p = strstr(p, "## prompt: \"")) != NULL; ) {
        p += strlen("## prompt: \"");
        q = strchr(p, '"');
        line = strstr(q, "\nids: ");
        if (q == NULL || line == NULL) {
            break;
        }
        *q = '\0';
        n = encode(tok, p, 1, ids);
        n2 = encode(tok2, p, 1, ids2);
        good = n > 1 && ids[0] == 1;
        line += strlen("\nids: ");
        for (i = 1; good && i < n; i++) {
            want = strtol(line, &line, 10);
            good = want == ids[i];
        }
        ok(good, "tok512.bin: '%s' -> %s matches the golden ids", p,
           ids_str(ids, n));
        ok(n2 == n && memcmp(ids, ids2, sizeof(int32_t) * n) == 0,
           "aidreams260K.gguf tokenizes '%s' the same", p);
        checked++;
        p = q + 1;
    }
    ok(checked >= 2, "golden prompts checked: %d", checked);

done:
    free(md);
    tokenizer_free(tok);
    tokenizer_free(tok2);
    gguf_close(ctx);
}

/* golden/random-archs.jsonl: prompt_ids as llama.cpp's server tokenizes
 * (BOS included where added), and text as the ids decode */
static void
test_random_archs(const char *shared)
{
    char           path[PATH_MAX], *txt, *line, *nl, *s;
    size_t         len;
    json_t        *j, *pid, *gid;
    json_error_t   jerr;
    const char    *model, *prompt, *text;
    gguf_ctx_t    *ctx;
    tokenizer_t   *tok;
    int32_t        ids[MAX_IDS], dec[MAX_IDS];
    int            n, n_prompt, i, good, checked = 0;

    fmt_path(path, sizeof(path), "%s/golden/random-archs.jsonl", shared);
    txt = slurp(path, &len);
    if (txt == NULL) {
        ok(0, "%s readable", path);
        return;
    }
    for (line = txt; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (nl == NULL) {
            nl = line + strlen(line) - 1;
        }
        *nl = '\0';
        j = json_loads(line, 0, &jerr);
        if (j == NULL) {
            continue;
        }
        model = json_string_value(json_object_get(j, "model"));
        prompt = json_string_value(json_object_get(j, "prompt"));
        text = json_string_value(json_object_get(j, "text"));
        pid = json_object_get(j, "prompt_ids");
        /* "tokens" is every generated id; "ids" may miss a piece that was
         * not valid UTF-8 on its own */
        gid = json_object_get(j, "tokens");
        if (gid == NULL) {
            gid = json_object_get(j, "ids");
        }
        if (model == NULL || prompt == NULL) {
            json_decref(j);
            continue;
        }
        fmt_path(path, sizeof(path), "%s/models/random/%s", shared, model);
        ctx = gguf_open(path, err, sizeof(err));
        tok = ctx ? tokenizer_from_gguf(ctx, err, sizeof(err)) : NULL;
        if (tok == NULL) {
            ok(0, "%s: %s", model, err);
            json_decref(j);
            gguf_close(ctx);
            continue;
        }
        n = encode(tok, prompt, 1, ids);
        n_prompt = n;
        good = n > 0 && n == (int) json_array_size(pid);
        for (i = 0; good && i < n; i++) {
            good = ids[i] == json_integer_value(json_array_get(pid, i));
        }
        ok(good, "%s: '%s' -> %s", model, prompt, ids_str(ids, n));

        if (text && gid && good) {
            n = (int) json_array_size(gid);
            for (i = 0; i < n && i < MAX_IDS; i++) {
                dec[i] = (int32_t) json_integer_value(json_array_get(gid, i));
            }
            /* the first generated piece follows the last prompt id */
            s = decode_after(tok, ids[n_prompt - 1], dec, n);
            if (s) {
                /* the golden text went through JSON: bad UTF-8 (a byte
                 * token alone) became U+FFFD */
                char *t = utf8_sanitize(s);

                free(s);
                s = t;
            }
            ok(s != NULL && strcmp(s, text) == 0,
               "%s: ids decode to the golden text", model);
            if (s && strcmp(s, text) != 0) {
                printf("#  got: '%s'\n# want: '%s'\n", s, text);
            }
            free(s);
        }
        checked++;
        tokenizer_free(tok);
        gguf_close(ctx);
        json_decref(j);
    }
    ok(checked >= 12, "random-archs prompts checked: %d", checked);
    free(txt);
}

int
main(void)
{
    const char  *shared;
    char         probe[PATH_MAX];
    tokenizer_t *tok;

    test_spm_tiny();
    test_bpe_tiny();
    test_bpe_llama3();
    test_wpm_tiny();
    tok = spm_tiny(1);
    round_trip(tok, "tiny SPM");
    tokenizer_free(tok);
    tok = bpe_tiny(TOKENIZER_PRE_GPT2);
    round_trip(tok, "tiny BPE");
    tokenizer_free(tok);
    test_gguf_vocab();
    test_llama2c_small();

    shared = shared_path();
    fmt_path(probe, sizeof(probe), "%s/vocab", shared);
    if (access(probe, R_OK) != 0) {
        printf("# skipped: %s not found (set LLMCACHE_SHARED)\n", probe);
        return done_testing();
    }
    test_vectors(shared, "llama-spm");
    test_vectors(shared, "gpt-2");
    test_vectors(shared, "falcon");
    test_vectors(shared, "mpt");
    test_vectors(shared, "bert-bge");
    test_aidreams(shared);
    test_random_archs(shared);
    return done_testing();
}
