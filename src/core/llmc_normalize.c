/*
 * Prompt normalization (ICU).  The text is validated as UTF-8, converted
 * to UTF-16 once, run through the enabled steps in a fixed order
 * (nfkc -> casefold -> space -> punct -> dict) and converted back.
 *
 * The dictionary step segments the text with ICU's word BreakIterator
 * (root locale: dictionary-based for Chinese/Japanese/Thai, UAX #29
 * elsewhere), splits polite endings off their words, and rewrites the
 * token sequence by longest-match phrase rules until nothing changes.
 * Rules are stored as a token trie: tokens are interned UTF-16 strings,
 * trie edges live in one open-addressing table keyed by (node, token).
 * The rules are also kept as written, and the trie is rebuilt after each
 * file, so that later endings and cues apply to earlier rules.  The
 * dictionary is read-only once loaded; the only per-thread state is the
 * cached break iterator.
 */

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/uclean.h>
#include <unicode/ubrk.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include "llmc_normalize.h"


#define LLMC_NORM_PRE       (LLMC_NORM_NFKC | LLMC_NORM_CASEFOLD            \
                             | LLMC_NORM_SPACE | LLMC_NORM_PUNCT)
#define LLMC_DICT_LINE_MAX  4096
#define LLMC_BRACKET_DEPTH  63
#define LLMC_DICT_SKIP_MAX  3       /* fillers skipped inside one phrase */
#define LLMC_DICT_PASSES    4
/* bumped whenever a change here changes some normalized text */
#define LLMC_NORM_VERSION   1

#define GC(c)  ((uint32_t) U_GET_GC_MASK(c))


typedef struct {
    UChar       *p;
    int32_t      len;
    int32_t      cap;
} ubuf_t;

typedef struct {
    int32_t      off;
    int32_t      len;
} span_t;

typedef struct {
    size_t       off;            /* into d->chars */
    int32_t      len;
    uint64_t     hash;
    int32_t      ending;         /* [endings]: canonical token, or -1 */
    uint32_t     efile, eline;   /* where the ending was set */
    unsigned     negation:1;
    unsigned     number:1;
} dict_tok_t;

typedef struct {
    char        *var;            /* the entry as written */
    char        *out;            /* its canonical form; NULL: drop, keep */
    uint32_t     file;
    uint32_t     line;
    int          sec;
} dict_raw_t;

typedef struct {
    uint64_t     key;            /* node << 32 | (token + 1); 0: empty */
    uint32_t     child;
} dict_edge_t;

typedef struct {
    uint32_t     node;
    size_t       var;            /* the phrase, token ids in d->ids */
    uint32_t     nvar;
    size_t       out;            /* the replacement; nout 0 drops */
    uint32_t     nout;
    uint32_t     file;
    uint32_t     line;
    unsigned     keep:1;         /* [keep]: out is the phrase itself */
} dict_rule_t;

struct llmc_dict_s {
    UChar        *chars;
    size_t        nchars, charscap;
    dict_tok_t   *toks;
    size_t        ntoks, tokscap;
    uint32_t     *tokhash;       /* token id + 1; 0: empty */
    size_t        tokhashcap;
    dict_edge_t  *edges;
    size_t        nedges, edgescap;
    int32_t      *nodes;         /* rule index or -1; node 0 is the root */
    size_t        nnodes, nodescap;
    dict_rule_t  *rules;
    size_t        nrules, rulescap;
    uint32_t     *ids;
    size_t        nids, idscap;
    char        **files;
    size_t        nfiles;
    dict_raw_t   *raw;           /* rules as written, rebuilt after loads */
    size_t        nraw, rawcap;
    int32_t       maxending;     /* longest ending, UTF-16 units */
    uint64_t      fingerprint;
};

enum {
    DICT_SEC_NONE = 0,
    DICT_SEC_SYNONYMS,
    DICT_SEC_DROP,
    DICT_SEC_NEGATION,
    DICT_SEC_KEEP,
    DICT_SEC_ENDINGS
};


static void llmc_norm_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static uint64_t dict_fingerprint(const llmc_dict_t *d);


static pthread_key_t           llmc_norm_key;
static pthread_once_t          llmc_norm_once = PTHREAD_ONCE_INIT;
static __thread UBreakIterator *llmc_norm_brk;


static void
llmc_norm_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  ap;

    if (err == NULL || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}


unsigned
llmc_norm_step(const char *name, size_t len)
{
    static const struct {
        const char  *name;
        unsigned     bit;
    } steps[] = {
        { "nfkc", LLMC_NORM_NFKC },
        { "casefold", LLMC_NORM_CASEFOLD },
        { "space", LLMC_NORM_SPACE },
        { "punct", LLMC_NORM_PUNCT },
        { "dict", LLMC_NORM_DICT },
        { "all", LLMC_NORM_ALL },
    };
    size_t  i;

    if (name == NULL) {
        return 0;
    }
    for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        if (strlen(steps[i].name) == len
            && memcmp(steps[i].name, name, len) == 0)
        {
            return steps[i].bit;
        }
    }
    return 0;
}


size_t
llmc_utf8_check(const unsigned char *p, size_t len)
{
    size_t    i, n, k;
    uint32_t  c, min;

    for (i = 0; i < len; i += n) {
        c = p[i];
        if (c < 0x80) {
            n = 1;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 2; c &= 0x1f; min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3; c &= 0x0f; min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4; c &= 0x07; min = 0x10000;
        } else {
            return i;
        }
        if (len - i < n) {
            return i;
        }
        for (k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return i;
            }
            c = (c << 6) | (p[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            return i;
        }
    }
    return len;
}


static int
ubuf_reserve(ubuf_t *b, int32_t cap)
{
    UChar  *p;

    if (cap <= b->cap) {
        return 0;
    }
    if (cap < 64) {
        cap = 64;
    }
    p = realloc(b->p, (size_t) cap * sizeof(UChar));
    if (p == NULL) {
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}


static void
ubuf_swap(ubuf_t *a, ubuf_t *b)
{
    ubuf_t  t;

    t = *a; *a = *b; *b = t;
}


static inline int
llmc_is_ws(UChar32 c)
{
    if (c < 0x80) {
        /* ASCII white space and control characters */
        return c >= 0 && (c <= 0x20 || c == 0x7f);
    }
    /* ZERO WIDTH SPACE is not White_Space but separates words; control
     * characters carry no meaning in a prompt */
    return u_isUWhiteSpace(c) || c == 0x200b
           || u_charType(c) == U_CONTROL_CHAR;
}


/* General category P*, without a call into ICU for ASCII. */
static inline int
llmc_is_punct(UChar32 c)
{
    /* !"#%&'()*,-./:;?@[\]_{} ; $+<=>^`|~ are symbols */
    static const uint32_t  ascii[4] = {
        0x00000000, 0x8c00f7ee, 0xb8000001, 0x28000000
    };

    if (c < 0x80) {
        return c >= 0 && (ascii[c >> 5] >> (c & 31)) & 1;
    }
    return (GC(c) & U_GC_P_MASK) != 0;
}


static int
llmc_is_digit(UChar32 c)
{
    return c >= 0 && u_isdigit(c);
}


static int
llmc_is_letter(UChar32 c)
{
    return c >= 0 && u_isUAlphabetic(c);
}


/* What makes an operator mean arithmetic: numbers, math and currency
 * symbols. */
static int
llmc_is_operand(UChar32 c)
{
    return c >= 0 && (GC(c) & (U_GC_N_MASK | U_GC_SM_MASK | U_GC_SC_MASK));
}


static UChar32
cp_at(const UChar *s, int32_t len, int32_t i)
{
    UChar32  c;

    if (i < 0 || i >= len) {
        return -1;
    }
    U16_NEXT(s, i, len, c);
    return c;
}


static UChar32
cp_before(const UChar *s, int32_t i)
{
    UChar32  c;

    if (i <= 0) {
        return -1;
    }
    U16_PREV(s, 0, i, c);
    return c;
}


static int
step_nfkc(ubuf_t *a, ubuf_t *b, char *err, size_t errlen)
{
    const UNormalizer2  *n;
    UErrorCode           st = U_ZERO_ERROR;
    int32_t              len;

    n = unorm2_getNFKCInstance(&st);
    if (U_FAILURE(st)) {
        llmc_norm_errf(err, errlen, "llmc_normalize: NFKC: %s",
                       u_errorName(st));
        return -1;
    }
    if (ubuf_reserve(b, a->len + a->len / 2 + 16) != 0) {
        goto nomem;
    }
    len = unorm2_normalize(n, a->p, a->len, b->p, b->cap, &st);
    if (st == U_BUFFER_OVERFLOW_ERROR) {
        st = U_ZERO_ERROR;
        if (ubuf_reserve(b, len + 1) != 0) {
            goto nomem;
        }
        len = unorm2_normalize(n, a->p, a->len, b->p, b->cap, &st);
    }
    if (U_FAILURE(st)) {
        llmc_norm_errf(err, errlen, "llmc_normalize: NFKC: %s",
                       u_errorName(st));
        return -1;
    }
    b->len = len;
    ubuf_swap(a, b);
    return 0;

nomem:
    llmc_norm_errf(err, errlen, "llmc_normalize: out of memory");
    return -1;
}


static int
step_casefold(ubuf_t *a, ubuf_t *b, char *err, size_t errlen)
{
    UErrorCode  st = U_ZERO_ERROR;
    int32_t     len;

    if (ubuf_reserve(b, a->len + a->len / 4 + 16) != 0) {
        goto nomem;
    }
    len = u_strFoldCase(b->p, b->cap, a->p, a->len, U_FOLD_CASE_DEFAULT, &st);
    if (st == U_BUFFER_OVERFLOW_ERROR) {
        st = U_ZERO_ERROR;
        if (ubuf_reserve(b, len + 1) != 0) {
            goto nomem;
        }
        len = u_strFoldCase(b->p, b->cap, a->p, a->len, U_FOLD_CASE_DEFAULT,
                            &st);
    }
    if (U_FAILURE(st)) {
        llmc_norm_errf(err, errlen, "llmc_normalize: case folding: %s",
                       u_errorName(st));
        return -1;
    }
    b->len = len;
    ubuf_swap(a, b);
    return 0;

nomem:
    llmc_norm_errf(err, errlen, "llmc_normalize: out of memory");
    return -1;
}


/* Every run of white space becomes one U+0020; leading and trailing runs
 * go.  The output is never longer than the input. */
static int
step_space(ubuf_t *a, ubuf_t *b, char *err, size_t errlen)
{
    int32_t  i, start, o;
    int      pending;
    UChar32  c;

    if (ubuf_reserve(b, a->len + 1) != 0) {
        llmc_norm_errf(err, errlen, "llmc_normalize: out of memory");
        return -1;
    }
    o = 0;
    pending = 0;
    for (i = 0; i < a->len; /* void */) {
        start = i;
        if (a->p[i] < 0x80) {
            c = a->p[i++];
        } else {
            U16_NEXT(a->p, i, a->len, c);
        }
        if (llmc_is_ws(c)) {
            pending = 1;
            continue;
        }
        if (pending && o > 0) {
            b->p[o++] = 0x20;
        }
        pending = 0;
        while (start < i) {
            b->p[o++] = a->p[start++];
        }
    }
    b->len = o;
    ubuf_swap(a, b);
    return 0;
}


/*
 * Bracket pairs (Bidi_Paired_Bracket) whose content holds a number or a
 * math/currency symbol are kept: "2*(3+4)" must not become "2*3+4".
 * keep[i] is set for both brackets of such a pair.
 */
static int
punct_brackets(const UChar *s, int32_t len, unsigned char **keepp)
{
    unsigned char  *keep;
    int32_t        *stack, *ops, ns, i, j, k, nb;
    UChar32         c;

    *keepp = NULL;
    nb = 0;
    for (i = 0; i < len; /* void */) {
        U16_NEXT(s, i, len, c);
        if (GC(c) & (U_GC_PS_MASK | U_GC_PE_MASK)) {
            nb++;
        }
    }
    if (nb == 0) {
        return 0;
    }

    keep = calloc((size_t) len, 1);
    stack = malloc(sizeof(int32_t) * (size_t) nb);
    ops = malloc(sizeof(int32_t) * ((size_t) len + 1));
    if (keep == NULL || stack == NULL || ops == NULL) {
        free(keep); free(stack); free(ops);
        return -1;
    }

    /* ops[i]: operands in s[0..i) */
    ops[0] = 0;
    for (i = 0; i < len; i++) {
        c = s[i];
        ops[i + 1] = ops[i] + (!U16_IS_SURROGATE(c) && llmc_is_operand(c));
    }

    ns = 0;
    for (i = 0; i < len; /* void */) {
        j = i;
        U16_NEXT(s, i, len, c);
        switch (u_getIntPropertyValue(c, UCHAR_BIDI_PAIRED_BRACKET_TYPE)) {
        case U_BPT_OPEN:
            stack[ns++] = j;
            break;
        case U_BPT_CLOSE:
            /* bounded like UAX #9's BD16 so that "((((…]]]]" stays
             * linear */
            for (k = ns - 1; k >= 0 && k >= ns - LLMC_BRACKET_DEPTH; k--) {
                if (u_getBidiPairedBracket(c) == cp_at(s, len, stack[k])) {
                    break;
                }
            }
            if (k < 0 || k < ns - LLMC_BRACKET_DEPTH) {
                break;
            }
            if (ops[j] - ops[stack[k] + 1] > 0) {
                keep[stack[k]] = 1;
                keep[j] = 1;
            }
            ns = k;
            break;
        default:
            break;
        }
    }

    free(stack);
    free(ops);
    *keepp = keep;
    return 0;
}


enum { PUNCT_BOUNDARY, PUNCT_KEEP, PUNCT_GLUE };

/* The rule documented in docs/dictionary.md ("Punctuation"). */
static int
punct_decide(const UChar *s, int32_t len, int32_t i, int32_t next,
    UChar32 c, const unsigned char *keep)
{
    UChar32  p, n, pn, nn, d;
    int32_t  j, k;

    p = cp_before(s, i);
    n = cp_at(s, len, next);

    for (j = i, pn = p; llmc_is_ws(pn); pn = cp_before(s, j)) {
        j -= U16_LENGTH(pn);
    }
    for (j = next, nn = n; llmc_is_ws(nn); nn = cp_at(s, len, j)) {
        j += U16_LENGTH(nn);
    }

    switch (c) {

    case '.':
        /* "3.5", ".5", "v1.2.3" but not "end.5" */
        return llmc_is_digit(n) && !llmc_is_letter(p)
               ? PUNCT_KEEP : PUNCT_BOUNDARY;

    case ',':
        if (!llmc_is_digit(p) || !llmc_is_digit(n)) {
            return PUNCT_BOUNDARY;
        }
        /* "1,000" is a thousands separator, "1,5" is not */
        for (j = next, k = 0; k < 4; k++) {
            d = cp_at(s, len, j);
            if (!llmc_is_digit(d)) {
                break;
            }
            j += U16_LENGTH(d);
        }
        return k == 3 ? PUNCT_GLUE : PUNCT_KEEP;

    case ':':
        return llmc_is_digit(p) && llmc_is_digit(n)
               ? PUNCT_KEEP : PUNCT_BOUNDARY;

    case '%':
    case 0x066a:                    /* ARABIC PERCENT SIGN */
    case 0x2030:                    /* PER MILLE SIGN */
    case 0x2031:                    /* PER TEN THOUSAND SIGN */
        return pn >= 0 && (GC(pn) & U_GC_N_MASK)
               ? PUNCT_KEEP : PUNCT_BOUNDARY;

    case '\'':
    case 0x2019:                    /* RIGHT SINGLE QUOTATION MARK */
        /* "don't" -> "dont": an apostrophe inside a word joins it */
        return llmc_is_letter(p) && llmc_is_letter(n)
               ? PUNCT_GLUE : PUNCT_BOUNDARY;

    case '#':
        /* "C#", "F#" */
        if ((llmc_is_letter(p) || llmc_is_digit(p))
            && !llmc_is_letter(n) && !llmc_is_digit(n))
        {
            return PUNCT_KEEP;
        }
        /* fall through */
    case '*':
    case '/':
    case '\\':
    case '&':
    case '@':
        return llmc_is_operand(pn) || llmc_is_operand(nn)
               ? PUNCT_KEEP : PUNCT_BOUNDARY;

    default:
        break;
    }

    if (GC(c) & U_GC_PD_MASK) {
        /* dashes: "3-5", "-5", "x - 1"; "e-mail" splits */
        return llmc_is_operand(pn) || llmc_is_operand(nn)
               ? PUNCT_KEEP : PUNCT_BOUNDARY;
    }

    if (GC(c) & (U_GC_PS_MASK | U_GC_PE_MASK)) {
        return keep != NULL && keep[i] ? PUNCT_KEEP : PUNCT_BOUNDARY;
    }

    return PUNCT_BOUNDARY;
}


static int
step_punct(ubuf_t *a, ubuf_t *b, char *err, size_t errlen)
{
    unsigned char  *keep;
    int32_t         i, start, o;
    int             pending;
    UChar32         c;

    if (ubuf_reserve(b, a->len + 1) != 0
        || punct_brackets(a->p, a->len, &keep) != 0)
    {
        llmc_norm_errf(err, errlen, "llmc_normalize: out of memory");
        return -1;
    }

    o = 0;
    pending = 0;
    for (i = 0; i < a->len; /* void */) {
        start = i;
        U16_NEXT(a->p, i, a->len, c);

        if (llmc_is_punct(c)) {
            switch (punct_decide(a->p, a->len, start, i, c, keep)) {
            case PUNCT_GLUE:
                continue;
            case PUNCT_BOUNDARY:
                pending = 1;
                continue;
            default:
                break;
            }
        }

        /* a removed mark separates words unless space already does */
        if (pending && o > 0 && !llmc_is_ws(c)
            && !llmc_is_ws(cp_before(b->p, o)))
        {
            b->p[o++] = 0x20;
        }
        pending = 0;
        while (start < i) {
            b->p[o++] = a->p[start++];
        }
    }

    free(keep);
    b->len = o;
    ubuf_swap(a, b);
    return 0;
}


/* --- segmentation ------------------------------------------------------ */

static void
llmc_norm_brk_free(void *p)
{
    ubrk_close(p);
}


static void
llmc_norm_key_init(void)
{
    (void) pthread_key_create(&llmc_norm_key, llmc_norm_brk_free);
}


void
llmc_normalize_cleanup(void)
{
    if (llmc_norm_brk != NULL) {
        (void) pthread_setspecific(llmc_norm_key, NULL);
        ubrk_close(llmc_norm_brk);
        llmc_norm_brk = NULL;
    }
    u_cleanup();
}


/* One word iterator per thread: ubrk_open costs far more than a prompt's
 * normalization.  A forked worker inherits its own copy. */
static UBreakIterator *
llmc_norm_brk_get(char *err, size_t errlen)
{
    UBreakIterator  *bi;
    UErrorCode       st = U_ZERO_ERROR;

    if (llmc_norm_brk != NULL) {
        return llmc_norm_brk;
    }
    (void) pthread_once(&llmc_norm_once, llmc_norm_key_init);
    bi = ubrk_open(UBRK_WORD, "", NULL, 0, &st);
    if (U_FAILURE(st)) {
        llmc_norm_errf(err, errlen, "llmc_normalize: ubrk_open: %s",
                       u_errorName(st));
        return NULL;
    }
    (void) pthread_setspecific(llmc_norm_key, bi);
    llmc_norm_brk = bi;
    return bi;
}


/* A chunk between white space that UAX #29 keeps as one word: ASCII
 * letters and digits only, or Hangul syllables only.  Most prompt words
 * are, and they need no break iterator. */
static int
llmc_chunk_simple(const UChar *s, int32_t len)
{
    int32_t  i;
    UChar    c;

    if (s[0] >= 0xac00 && s[0] <= 0xd7a3) {
        for (i = 1; i < len; i++) {
            if (s[i] < 0xac00 || s[i] > 0xd7a3) {
                return 0;
            }
        }
        return 1;
    }
    for (i = 0; i < len; i++) {
        c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
              || (c >= 'A' && c <= 'Z')))
        {
            return 0;
        }
    }
    return 1;
}


/* Splits s into words: white space separates and is dropped; every
 * chunk between white space is split by ICU's word iterator into words,
 * numbers, ideographs, symbols and emoji.  *toks is malloc()ed. */
static int
llmc_segment(const UChar *s, int32_t len, span_t **toks, int32_t *ntoks,
    char *err, size_t errlen)
{
    UBreakIterator  *bi;
    UErrorCode       st = U_ZERO_ERROR;
    span_t          *t;
    int32_t          n, start, end, from, to, i, j, k;
    UChar32          c;

    *toks = NULL;
    *ntoks = 0;
    if (len == 0) {
        return 0;
    }
    t = malloc(sizeof(span_t) * (size_t) len);
    if (t == NULL) {
        llmc_norm_errf(err, errlen, "llmc_normalize: out of memory");
        return -1;
    }
    bi = NULL;
    n = 0;

    for (end = 0; end < len; /* void */) {
        for (start = end; start < len; start = i) {
            i = start;
            U16_NEXT(s, i, len, c);
            if (!llmc_is_ws(c)) {
                break;
            }
        }
        for (end = start; end < len; end = i) {
            i = end;
            U16_NEXT(s, i, len, c);
            if (llmc_is_ws(c)) {
                break;
            }
        }
        if (start == end) {
            break;
        }

        if (llmc_chunk_simple(s + start, end - start)) {
            t[n].off = start;
            t[n].len = end - start;
            n++;
            continue;
        }

        if (bi == NULL) {
            bi = llmc_norm_brk_get(err, errlen);
            if (bi == NULL) {
                free(t);
                return -1;
            }
        }
        ubrk_setText(bi, s + start, end - start, &st);
        if (U_FAILURE(st)) {
            free(t);
            llmc_norm_errf(err, errlen, "llmc_normalize: ubrk_setText: %s",
                           u_errorName(st));
            return -1;
        }
        from = ubrk_first(bi);
        for (to = ubrk_next(bi); to != UBRK_DONE;
             from = to, to = ubrk_next(bi))
        {
            /* UAX #29 (WB4) keeps a joiner with white space before it:
             * tokens never hold white space */
            for (i = start + from; i < start + to; i = j) {
                j = i;
                U16_NEXT(s, j, start + to, c);
                if (!llmc_is_ws(c)) {
                    break;
                }
            }
            for (k = start + to; k > i; k = j) {
                j = k;
                U16_PREV(s, i, j, c);
                if (!llmc_is_ws(c)) {
                    break;
                }
            }
            if (k > i) {
                t[n].off = i;
                t[n].len = k - i;
                n++;
            }
        }
    }

    *toks = t;
    *ntoks = n;
    return 0;
}


/* --- the dictionary ---------------------------------------------------- */

static uint64_t
tok_hash(const UChar *s, int32_t len)
{
    uint64_t  h = 0xcbf29ce484222325ULL;
    int32_t   i;

    for (i = 0; i < len; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}


static int
grow(void *pp, size_t *cap, size_t need, size_t size)
{
    void    **p = pp;
    void     *np;
    size_t    n;

    if (need <= *cap) {
        return 0;
    }
    n = *cap ? *cap : 16;
    while (n < need) {
        n *= 2;
    }
    np = realloc(*p, n * size);
    if (np == NULL) {
        return -1;
    }
    *p = np;
    *cap = n;
    return 0;
}


static int32_t
dict_tok_find(const llmc_dict_t *d, const UChar *s, int32_t len,
    uint64_t h)
{
    size_t             mask, i;
    uint32_t           id;
    const dict_tok_t  *t;

    if (d->tokhashcap == 0) {
        return -1;
    }
    mask = d->tokhashcap - 1;
    for (i = (size_t) h & mask; (id = d->tokhash[i]) != 0; i = (i + 1) & mask)
    {
        t = &d->toks[id - 1];
        if (t->hash == h && t->len == len
            && memcmp(d->chars + t->off, s, sizeof(UChar) * (size_t) len)
               == 0)
        {
            return (int32_t) id - 1;
        }
    }
    return -1;
}


static int
dict_tok_rehash(llmc_dict_t *d, size_t cap)
{
    uint32_t  *h;
    size_t     i, j, mask;

    h = calloc(cap, sizeof(uint32_t));
    if (h == NULL) {
        return -1;
    }
    mask = cap - 1;
    for (i = 0; i < d->ntoks; i++) {
        for (j = (size_t) d->toks[i].hash & mask; h[j]; j = (j + 1) & mask) {
            /* void */
        }
        h[j] = (uint32_t) i + 1;
    }
    free(d->tokhash);
    d->tokhash = h;
    d->tokhashcap = cap;
    return 0;
}


static int32_t
dict_tok_add(llmc_dict_t *d, const UChar *s, int32_t len)
{
    uint64_t     h;
    int32_t      id, i;
    size_t       j, mask;
    dict_tok_t  *t;
    UChar32      c;

    h = tok_hash(s, len);
    id = dict_tok_find(d, s, len, h);
    if (id >= 0) {
        return id;
    }
    if ((d->ntoks + 1) * 2 > d->tokhashcap
        && dict_tok_rehash(d, d->tokhashcap ? d->tokhashcap * 2 : 256) != 0)
    {
        return -1;
    }
    if (grow(&d->toks, &d->tokscap, d->ntoks + 1, sizeof(dict_tok_t)) != 0
        || grow(&d->chars, &d->charscap, d->nchars + (size_t) len,
                sizeof(UChar)) != 0)
    {
        return -1;
    }
    t = &d->toks[d->ntoks];
    memset(t, 0, sizeof(*t));
    t->ending = -1;
    t->off = d->nchars;
    t->len = len;
    t->hash = h;
    for (i = 0; i < len; /* void */) {
        U16_NEXT(s, i, len, c);
        if (GC(c) & U_GC_N_MASK) {
            t->number = 1;
        }
    }
    memcpy(d->chars + d->nchars, s, sizeof(UChar) * (size_t) len);
    d->nchars += (size_t) len;

    id = (int32_t) d->ntoks++;
    mask = d->tokhashcap - 1;
    for (j = (size_t) h & mask; d->tokhash[j]; j = (j + 1) & mask) {
        /* void */
    }
    d->tokhash[j] = (uint32_t) id + 1;
    return id;
}


static uint64_t
edge_key(uint32_t node, uint32_t tok)
{
    return ((uint64_t) node << 32) | ((uint64_t) tok + 1);
}


static size_t
edge_slot(uint64_t key, size_t mask)
{
    return (size_t) ((key * 0x9e3779b97f4a7c15ULL) >> 17) & mask;
}


static int64_t
dict_edge_find(const llmc_dict_t *d, uint32_t node, uint32_t tok)
{
    uint64_t  key;
    size_t    i, mask;

    if (d->edgescap == 0) {
        return -1;
    }
    key = edge_key(node, tok);
    mask = d->edgescap - 1;
    for (i = edge_slot(key, mask); d->edges[i].key; i = (i + 1) & mask) {
        if (d->edges[i].key == key) {
            return d->edges[i].child;
        }
    }
    return -1;
}


static int
dict_edge_add(llmc_dict_t *d, uint32_t node, uint32_t tok, uint32_t child)
{
    dict_edge_t  *e, *old;
    size_t        i, j, cap, oldcap, mask;
    uint64_t      key;

    if ((d->nedges + 1) * 2 > d->edgescap) {
        cap = d->edgescap ? d->edgescap * 2 : 256;
        e = calloc(cap, sizeof(dict_edge_t));
        if (e == NULL) {
            return -1;
        }
        old = d->edges;
        oldcap = d->edgescap;
        mask = cap - 1;
        for (i = 0; i < oldcap; i++) {
            if (old[i].key == 0) {
                continue;
            }
            for (j = edge_slot(old[i].key, mask); e[j].key; j = (j + 1) & mask)
            {
                /* void */
            }
            e[j] = old[i];
        }
        free(old);
        d->edges = e;
        d->edgescap = cap;
    }
    key = edge_key(node, tok);
    mask = d->edgescap - 1;
    for (i = edge_slot(key, mask); d->edges[i].key; i = (i + 1) & mask) {
        /* void */
    }
    d->edges[i].key = key;
    d->edges[i].child = child;
    d->nedges++;
    return 0;
}


llmc_dict_t *
llmc_dict_new(void)
{
    llmc_dict_t  *d;

    d = calloc(1, sizeof(llmc_dict_t));
    if (d == NULL) {
        return NULL;
    }
    if (grow(&d->nodes, &d->nodescap, 1, sizeof(int32_t)) != 0) {
        free(d);
        return NULL;
    }
    d->nodes[0] = -1;
    d->nnodes = 1;
    d->fingerprint = dict_fingerprint(d);
    return d;
}


void
llmc_dict_free(llmc_dict_t *d)
{
    size_t  i;

    if (d == NULL) {
        return;
    }
    for (i = 0; i < d->nfiles; i++) {
        free(d->files[i]);
    }
    free(d->files);
    for (i = 0; i < d->nraw; i++) {
        free(d->raw[i].var);
        free(d->raw[i].out);
    }
    free(d->raw);
    free(d->chars);
    free(d->toks);
    free(d->tokhash);
    free(d->edges);
    free(d->nodes);
    free(d->rules);
    free(d->ids);
    free(d);
}


/* The steps before dict, on UTF-16 text in a (b is scratch). */
static int
llmc_norm_pre(ubuf_t *a, ubuf_t *b, unsigned steps, char *err,
    size_t errlen)
{
    if ((steps & LLMC_NORM_NFKC) && step_nfkc(a, b, err, errlen) != 0) {
        return -1;
    }
    if ((steps & LLMC_NORM_CASEFOLD) && step_casefold(a, b, err, errlen) != 0)
    {
        return -1;
    }
    if ((steps & LLMC_NORM_SPACE) && step_space(a, b, err, errlen) != 0) {
        return -1;
    }
    if (steps & LLMC_NORM_PUNCT) {
        if (step_punct(a, b, err, errlen) != 0) {
            return -1;
        }
        /* a removed mark next to a space may leave two */
        if ((steps & LLMC_NORM_SPACE) && step_space(a, b, err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}


static int
utf8_to_ubuf(const char *s, size_t len, ubuf_t *u, char *err, size_t errlen)
{
    UErrorCode  st = U_ZERO_ERROR;
    int32_t     n;

    if (len > INT32_MAX / 2) {
        llmc_norm_errf(err, errlen, "llmc_normalize: text too long");
        return -1;
    }
    if (ubuf_reserve(u, (int32_t) len + 1) != 0) {
        llmc_norm_errf(err, errlen, "llmc_normalize: out of memory");
        return -1;
    }
    u_strFromUTF8(u->p, u->cap, &n, s, (int32_t) len, &st);
    if (U_FAILURE(st)) {
        llmc_norm_errf(err, errlen, "llmc_normalize: u_strFromUTF8: %s",
                       u_errorName(st));
        return -1;
    }
    u->len = n;
    return 0;
}


typedef struct {
    const UChar  *p;
    int32_t       len;
    int32_t       id;            /* dictionary token, -1: unknown */
} word_t;

typedef struct {
    word_t       *w;
    int32_t       n;
    int32_t       cap;
} words_t;


static int
words_add(words_t *ws, const UChar *p, int32_t len, int32_t id)
{
    word_t  *w;
    int32_t  cap;

    if (ws->n == ws->cap) {
        cap = ws->cap ? ws->cap * 2 : 64;
        w = realloc(ws->w, sizeof(word_t) * (size_t) cap);
        if (w == NULL) {
            return -1;
        }
        ws->w = w;
        ws->cap = cap;
    }
    ws->w[ws->n].p = p;
    ws->w[ws->n].len = len;
    ws->w[ws->n].id = id;
    ws->n++;
    return 0;
}


/* Splits a polite ending off its word ("알려주세요" -> "알려" "줘"), the
 * ending in its canonical form; a word that is an ending becomes the
 * canonical form.  Negation cues and numbers are left alone. */
static int
dict_endings(const llmc_dict_t *d, const words_t *in, words_t *out)
{
    const dict_tok_t  *t;
    const word_t      *w;
    int32_t            i, l, id, c;

    out->n = 0;
    for (i = 0; i < in->n; i++) {
        w = &in->w[i];
        t = w->id >= 0 ? &d->toks[w->id] : NULL;

        if (t != NULL && (t->negation || t->number)) {
            l = 0;

        } else if (t != NULL && t->ending >= 0) {
            l = w->len;

        } else {
            for (l = d->maxending < w->len ? d->maxending : w->len - 1;
                 l > 0; l--)
            {
                if (U16_IS_TRAIL(w->p[w->len - l])) {
                    continue;
                }
                id = dict_tok_find(d, w->p + w->len - l, l,
                                   tok_hash(w->p + w->len - l, l));
                if (id >= 0 && d->toks[id].ending >= 0) {
                    break;
                }
            }
        }

        if (l == 0) {
            if (words_add(out, w->p, w->len, w->id) != 0) {
                return -1;
            }
            continue;
        }
        if (l < w->len
            && words_add(out, w->p, w->len - l,
                         dict_tok_find(d, w->p, w->len - l,
                                       tok_hash(w->p, w->len - l))) != 0)
        {
            return -1;
        }
        id = dict_tok_find(d, w->p + w->len - l, l,
                           tok_hash(w->p + w->len - l, l));
        c = d->toks[id].ending;
        if (words_add(out, d->chars + d->toks[c].off, d->toks[c].len, c)
            != 0)
        {
            return -1;
        }
    }
    return 0;
}


typedef struct {
    const char   *name;
    unsigned      line;
    char         *err;
    size_t        errlen;
} dict_ctx_t;


/* Normalizes one entry of a rule and interns its words, with the endings
 * split off when asked; their ids are appended to d->ids.  Returns the
 * number of words or -1. */
static int32_t
dict_phrase(llmc_dict_t *d, dict_ctx_t *cx, const char *s, size_t len,
    int endings, ubuf_t *a, ubuf_t *b)
{
    span_t   *toks;
    words_t   x = { NULL, 0, 0 }, y = { NULL, 0, 0 }, *ws;
    int32_t   ntoks, i, id;
    char      e[256];

    if (utf8_to_ubuf(s, len, a, e, sizeof(e)) != 0
        || llmc_norm_pre(a, b, LLMC_NORM_PRE, e, sizeof(e)) != 0
        || llmc_segment(a->p, a->len, &toks, &ntoks, e, sizeof(e)) != 0)
    {
        llmc_norm_errf(cx->err, cx->errlen, "%s:%u: %s", cx->name, cx->line,
                       e);
        return -1;
    }
    for (i = 0; i < ntoks; i++) {
        if (words_add(&x, a->p + toks[i].off, toks[i].len,
                      dict_tok_find(d, a->p + toks[i].off, toks[i].len,
                                    tok_hash(a->p + toks[i].off,
                                             toks[i].len))) != 0)
        {
            goto nomem;
        }
    }
    ws = &x;
    if (endings && d->maxending > 0) {
        if (dict_endings(d, &x, &y) != 0) {
            goto nomem;
        }
        ws = &y;
    }

    if (grow(&d->ids, &d->idscap, d->nids + (size_t) ws->n,
             sizeof(uint32_t)) != 0)
    {
        goto nomem;
    }
    for (i = 0; i < ws->n; i++) {
        /* a known word by id: d->chars may move while interning */
        id = ws->w[i].id >= 0 ? ws->w[i].id
                              : dict_tok_add(d, ws->w[i].p, ws->w[i].len);
        if (id < 0) {
            goto nomem;
        }
        d->ids[d->nids++] = (uint32_t) id;
    }
    free(toks);
    free(x.w);
    free(y.w);
    return ws == &x ? x.n : y.n;

nomem:
    free(toks);
    free(x.w);
    free(y.w);
    llmc_norm_errf(cx->err, cx->errlen, "%s:%u: out of memory", cx->name,
                   cx->line);
    return -1;
}


/* Sets the rule of a phrase; a later rule for the same phrase replaces an
 * earlier one. */
static int
dict_rule_set(llmc_dict_t *d, size_t var, uint32_t nvar, size_t out,
    uint32_t nout, int keep, uint32_t file, unsigned line)
{
    uint32_t      node, k;
    int64_t       child;
    dict_rule_t  *r;

    node = 0;
    for (k = 0; k < nvar; k++) {
        child = dict_edge_find(d, node, d->ids[var + k]);
        if (child < 0) {
            if (grow(&d->nodes, &d->nodescap, d->nnodes + 1, sizeof(int32_t))
                != 0
                || dict_edge_add(d, node, d->ids[var + k],
                                 (uint32_t) d->nnodes) != 0)
            {
                return -1;
            }
            d->nodes[d->nnodes] = -1;
            child = (int64_t) d->nnodes++;
        }
        node = (uint32_t) child;
    }

    if (d->nodes[node] < 0) {
        if (grow(&d->rules, &d->rulescap, d->nrules + 1, sizeof(dict_rule_t))
            != 0)
        {
            return -1;
        }
        d->nodes[node] = (int32_t) d->nrules++;
    }
    r = &d->rules[d->nodes[node]];
    r->node = node;
    r->var = var;
    r->nvar = nvar;
    r->out = out;
    r->nout = nout;
    r->file = file;
    r->line = line;
    r->keep = keep != 0;
    return 0;
}


static int
dict_tok_utf8(const llmc_dict_t *d, uint32_t id, char *buf, size_t size)
{
    UErrorCode  st = U_ZERO_ERROR;
    int32_t     n;

    u_strToUTF8(buf, (int32_t) size - 1, &n, d->chars + d->toks[id].off,
                d->toks[id].len, &st);
    if (U_FAILURE(st) || n >= (int32_t) size) {
        snprintf(buf, size, "...");
        return -1;
    }
    buf[n] = '\0';
    return 0;
}


/* A rule may rewrite wording, never meaning: the numbers of the phrase
 * must come out the same, in order, and every negation cue must face a
 * negation cue ("don't" -> "do not" is fine, dropping "not" is not). */
static int
dict_check(const llmc_dict_t *d, char *err, size_t errlen)
{
    const dict_rule_t  *r;
    size_t              i;
    uint32_t            a, b, ta, tb;
    char                w[128];
    int                 neg;

    for (i = 0; i < d->ntoks; i++) {
        if (d->toks[i].ending >= 0
            && (d->toks[i].negation || d->toks[i].number))
        {
            dict_tok_utf8(d, (uint32_t) i, w, sizeof(w));
            llmc_norm_errf(err, errlen, "%s:%u: the ending \"%s\" is a %s",
                           d->files[d->toks[i].efile], d->toks[i].eline, w,
                           d->toks[i].negation ? "negation cue" : "number");
            return -1;
        }
    }

    for (i = 0; i < d->nrules; i++) {
        r = &d->rules[i];
        a = 0;
        b = 0;
        for ( ;; ) {
            while (a < r->nvar && !d->toks[d->ids[r->var + a]].negation
                   && !d->toks[d->ids[r->var + a]].number)
            {
                a++;
            }
            while (b < r->nout && !d->toks[d->ids[r->out + b]].negation
                   && !d->toks[d->ids[r->out + b]].number)
            {
                b++;
            }
            if (a == r->nvar && b == r->nout) {
                break;
            }
            ta = a < r->nvar ? d->ids[r->var + a] : UINT32_MAX;
            tb = b < r->nout ? d->ids[r->out + b] : UINT32_MAX;
            /* "don't" may become "do not", "3" never "5" */
            if (ta != tb
                && (ta == UINT32_MAX || tb == UINT32_MAX
                    || !d->toks[ta].negation || !d->toks[tb].negation
                    || d->toks[ta].number || d->toks[tb].number))
            {
                ta = ta != UINT32_MAX ? ta : tb;
                neg = d->toks[ta].negation;
                dict_tok_utf8(d, ta, w, sizeof(w));
                llmc_norm_errf(err, errlen,
                               "%s:%u: rule would %s %s \"%s\"",
                               d->files[r->file], r->line,
                               r->nout ? "change" : "drop",
                               neg ? "the negation cue" : "the number", w);
                return -1;
            }
            a++;
            b++;
        }
    }
    return 0;
}


static uint64_t
fp_add(uint64_t h, const void *p, size_t len)
{
    const unsigned char  *c = p;

    while (len--) {
        h ^= *c++;
        h *= 0x100000001b3ULL;
    }
    return h;
}


static uint64_t
fp_tok(uint64_t h, const llmc_dict_t *d, uint32_t id)
{
    h = fp_add(h, d->chars + d->toks[id].off,
               sizeof(UChar) * (size_t) d->toks[id].len);
    return fp_add(h, "\0", 2);
}


static uint64_t
fp_version(void)
{
    UVersionInfo  v;
    uint32_t      own = LLMC_NORM_VERSION;

    u_getUnicodeVersion(v);
    return fp_add(fp_add(0xcbf29ce484222325ULL, &own, sizeof(own)), v,
                  sizeof(v));
}


/* Over the rules as matched (normalized tokens), in load order. */
static uint64_t
dict_fingerprint(const llmc_dict_t *d)
{
    const dict_rule_t  *r;
    uint64_t            h;
    size_t              i;
    uint32_t            k;

    h = fp_version();
    for (i = 0; i < d->nrules; i++) {
        r = &d->rules[i];
        h = fp_add(h, r->keep ? "K" : r->nout ? "S" : "D", 1);
        for (k = 0; k < r->nvar; k++) {
            h = fp_tok(h, d, d->ids[r->var + k]);
        }
        h = fp_add(h, "=", 1);
        for (k = 0; k < r->nout; k++) {
            h = fp_tok(h, d, d->ids[r->out + k]);
        }
    }
    h = fp_add(h, "N", 1);
    for (i = 0; i < d->ntoks; i++) {
        if (d->toks[i].negation) {
            h = fp_tok(h, d, (uint32_t) i);
        }
        if (d->toks[i].ending >= 0) {
            h = fp_add(h, "E", 1);
            h = fp_tok(h, d, (uint32_t) i);
            h = fp_tok(h, d, (uint32_t) d->toks[i].ending);
        }
    }
    return h;
}


uint64_t
llmc_dict_fingerprint(const llmc_dict_t *d)
{
    /* not as an empty dictionary: that one still splits words */
    return d != NULL ? d->fingerprint : fp_version();
}


static const char *
skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    return p;
}


static const char *
trim_end(const char *p, const char *end)
{
    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    return end;
}


static char *
dict_strndup(const char *s, size_t len)
{
    char  *p;

    p = malloc(len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}


/* Adds each '|'-separated entry of [p, end): a negation cue or an ending
 * at once, a rule (drop, keep, or a variant of the canonical form canon)
 * as written, for dict_rebuild(). */
static int
dict_entries(llmc_dict_t *d, dict_ctx_t *cx, int sec, const char *p,
    const char *end, const char *canon, size_t canonlen, int32_t canonid,
    uint32_t file, ubuf_t *a, ubuf_t *b)
{
    const char  *bar, *s, *e;
    size_t       var;
    int32_t      nvar;
    dict_raw_t  *r;
    dict_tok_t  *t;

    for ( ;; ) {
        bar = memchr(p, '|', (size_t) (end - p));
        s = skip_ws(p, bar ? bar : end);
        e = trim_end(s, bar ? bar : end);

        var = d->nids;
        nvar = dict_phrase(d, cx, s, (size_t) (e - s),
                           sec != DICT_SEC_NEGATION && sec != DICT_SEC_ENDINGS,
                           a, b);
        if (nvar < 0) {
            return -1;
        }
        if (nvar == 0) {
            llmc_norm_errf(cx->err, cx->errlen, "%s:%u: empty %s", cx->name,
                           cx->line,
                           sec == DICT_SEC_SYNONYMS || sec == DICT_SEC_ENDINGS
                           ? "variant" : "entry");
            return -1;
        }

        switch (sec) {

        case DICT_SEC_NEGATION:
            if (nvar != 1) {
                llmc_norm_errf(cx->err, cx->errlen,
                               "%s:%u: a negation cue must be one word",
                               cx->name, cx->line);
                return -1;
            }
            d->toks[d->ids[var]].negation = 1;
            break;

        case DICT_SEC_ENDINGS:
            if (nvar != 1) {
                llmc_norm_errf(cx->err, cx->errlen,
                               "%s:%u: an ending must be one word",
                               cx->name, cx->line);
                return -1;
            }
            t = &d->toks[d->ids[var]];
            t->ending = canonid;
            t->efile = file;
            t->eline = cx->line;
            if (t->len > d->maxending) {
                d->maxending = t->len;
            }
            break;

        default:
            if (grow(&d->raw, &d->rawcap, d->nraw + 1, sizeof(dict_raw_t))
                != 0)
            {
                goto nomem;
            }
            r = &d->raw[d->nraw];
            r->var = dict_strndup(s, (size_t) (e - s));
            r->out = canon ? dict_strndup(canon, canonlen) : NULL;
            if (r->var == NULL || (canon && r->out == NULL)) {
                free(r->var);
                free(r->out);
                goto nomem;
            }
            r->file = file;
            r->line = cx->line;
            r->sec = sec;
            d->nraw++;
            break;
        }

        if (bar == NULL) {
            return 0;
        }
        p = bar + 1;
    }

nomem:
    llmc_norm_errf(cx->err, cx->errlen, "%s:%u: out of memory", cx->name,
                   cx->line);
    return -1;
}


static int
dict_line(llmc_dict_t *d, dict_ctx_t *cx, int *sec, const char *p,
    const char *end, uint32_t file, ubuf_t *a, ubuf_t *b)
{
    static const char  *names[] = {
        NULL, "synonyms", "drop", "negation", "keep", "endings"
    };
    const char         *q, *eq;
    size_t              out;
    int32_t             nout;
    dict_tok_t         *t;
    int                 i;

    /* '#' starts a comment at the start of a line or after white space,
     * so "c#" stays an entry */
    for (q = p; q < end; q++) {
        if (*q == '#' && (q == p || q[-1] == ' ' || q[-1] == '\t')) {
            end = q;
            break;
        }
    }
    p = skip_ws(p, end);
    end = trim_end(p, end);
    if (p == end) {
        return 0;
    }

    if (*p == '[') {
        if (end[-1] != ']') {
            llmc_norm_errf(cx->err, cx->errlen,
                           "%s:%u: a section header must end with ']'",
                           cx->name, cx->line);
            return -1;
        }
        for (i = 1; i <= DICT_SEC_ENDINGS; i++) {
            if (strlen(names[i]) == (size_t) (end - p - 2)
                && memcmp(names[i], p + 1, (size_t) (end - p - 2)) == 0)
            {
                *sec = i;
                return 0;
            }
        }
        llmc_norm_errf(cx->err, cx->errlen,
                       "%s:%u: unknown section %.*s (expected [synonyms], "
                       "[drop], [negation], [keep] or [endings])", cx->name,
                       cx->line, (int) (end - p), p);
        return -1;
    }

    eq = memchr(p, '=', (size_t) (end - p));

    switch (*sec) {

    case DICT_SEC_NONE:
        llmc_norm_errf(cx->err, cx->errlen,
                       "%s:%u: rule outside any section", cx->name, cx->line);
        return -1;

    case DICT_SEC_SYNONYMS:
    case DICT_SEC_ENDINGS:
        if (eq == NULL) {
            llmc_norm_errf(cx->err, cx->errlen,
                           "%s:%u: expected \"canonical = variant | ...\"",
                           cx->name, cx->line);
            return -1;
        }
        if (memchr(eq + 1, '=', (size_t) (end - eq - 1)) != NULL) {
            llmc_norm_errf(cx->err, cx->errlen, "%s:%u: more than one '='",
                           cx->name, cx->line);
            return -1;
        }
        q = trim_end(p, eq);
        if (memchr(p, '|', (size_t) (q - p)) != NULL) {
            llmc_norm_errf(cx->err, cx->errlen,
                           "%s:%u: '|' before '=': one canonical form per "
                           "line", cx->name, cx->line);
            return -1;
        }
        out = d->nids;
        nout = dict_phrase(d, cx, p, (size_t) (q - p),
                           *sec == DICT_SEC_SYNONYMS, a, b);
        if (nout < 0) {
            return -1;
        }
        if (nout == 0) {
            llmc_norm_errf(cx->err, cx->errlen, "%s:%u: empty canonical",
                           cx->name, cx->line);
            return -1;
        }
        if (*sec == DICT_SEC_ENDINGS) {
            if (nout != 1) {
                llmc_norm_errf(cx->err, cx->errlen,
                               "%s:%u: an ending must be one word",
                               cx->name, cx->line);
                return -1;
            }
            t = &d->toks[d->ids[out]];
            t->ending = (int32_t) d->ids[out];
            t->efile = file;
            t->eline = cx->line;
            if (t->len > d->maxending) {
                d->maxending = t->len;
            }
        }
        return dict_entries(d, cx, *sec, eq + 1, end, p, (size_t) (q - p),
                            (int32_t) d->ids[out], file, a, b);

    default:
        if (eq != NULL) {
            llmc_norm_errf(cx->err, cx->errlen,
                           "%s:%u: '=' in [%s] (synonyms go in [synonyms])",
                           cx->name, cx->line, names[*sec]);
            return -1;
        }
        return dict_entries(d, cx, *sec, p, end, NULL, 0, -1, file, a, b);
    }
}


/* Rebuilds the phrase trie from the rules as written, so that endings
 * and cues loaded later apply to the rules of earlier files too.  Later
 * rules for the same phrase replace earlier ones. */
static int
dict_rebuild(llmc_dict_t *d, char *err, size_t errlen)
{
    const dict_raw_t  *r;
    dict_ctx_t         cx;
    ubuf_t             a = { NULL, 0, 0 }, b = { NULL, 0, 0 };
    size_t             i, var, out;
    int32_t            nvar, nout;
    int                rc;

    d->nnodes = 1;
    d->nodes[0] = -1;
    if (d->edgescap > 0) {
        memset(d->edges, 0, sizeof(dict_edge_t) * d->edgescap);
    }
    d->nedges = 0;
    d->nrules = 0;
    d->nids = 0;

    rc = 0;
    for (i = 0; i < d->nraw && rc == 0; i++) {
        r = &d->raw[i];
        cx.name = d->files[r->file];
        cx.line = r->line;
        cx.err = err;
        cx.errlen = errlen;

        out = d->nids;
        nout = 0;
        if (r->out != NULL) {
            nout = dict_phrase(d, &cx, r->out, strlen(r->out), 1, &a, &b);
        }
        var = d->nids;
        nvar = nout >= 0 ? dict_phrase(d, &cx, r->var, strlen(r->var), 1,
                                       &a, &b)
                         : -1;
        if (nvar < 0) {
            rc = -1;
            break;
        }

        if (r->sec == DICT_SEC_SYNONYMS && nvar == nout
            && memcmp(d->ids + var, d->ids + out,
                      sizeof(uint32_t) * (size_t) nvar) == 0)
        {
            /* the canonical form listed among its variants */
            continue;
        }
        if (r->sec == DICT_SEC_KEEP) {
            out = var;
            nout = nvar;
        }
        if (dict_rule_set(d, var, (uint32_t) nvar, out, (uint32_t) nout,
                          r->sec == DICT_SEC_KEEP, r->file, r->line) != 0)
        {
            llmc_norm_errf(err, errlen, "%s:%u: out of memory", cx.name,
                           cx.line);
            rc = -1;
        }
    }

    free(a.p);
    free(b.p);
    return rc;
}


int
llmc_dict_load_buf(llmc_dict_t *d, const char *buf, size_t len,
    const char *name, char *err, size_t errlen)
{
    const char  *p, *end, *nl, *le;
    char       **files;
    dict_ctx_t   cx;
    ubuf_t       a = { NULL, 0, 0 }, b = { NULL, 0, 0 };
    uint32_t     file;
    size_t       bad;
    int          sec, rc;

    if (name == NULL) {
        name = "<buffer>";
    }
    files = realloc(d->files, sizeof(char *) * (d->nfiles + 1));
    if (files == NULL) {
        goto nomem;
    }
    d->files = files;
    files[d->nfiles] = strdup(name);
    if (files[d->nfiles] == NULL) {
        goto nomem;
    }
    file = (uint32_t) d->nfiles++;

    cx.name = name;
    cx.line = 0;
    cx.err = err;
    cx.errlen = errlen;

    p = buf;
    end = buf + len;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
        p += 3;
    }

    rc = 0;
    sec = DICT_SEC_NONE;
    while (p < end) {
        cx.line++;
        nl = memchr(p, '\n', (size_t) (end - p));
        le = nl ? nl : end;
        if (le > p && le[-1] == '\r') {
            le--;
        }
        if (le - p > LLMC_DICT_LINE_MAX) {
            llmc_norm_errf(err, errlen,
                           "%s:%u: line too long (more than %d bytes)",
                           name, cx.line, LLMC_DICT_LINE_MAX);
            rc = -1;
            break;
        }
        bad = llmc_utf8_check((const unsigned char *) p, (size_t) (le - p));
        if (bad != (size_t) (le - p)) {
            llmc_norm_errf(err, errlen,
                           "%s:%u: invalid UTF-8 at column %zu", name,
                           cx.line, bad + 1);
            rc = -1;
            break;
        }
        if (memchr(p, '\0', (size_t) (le - p)) != NULL) {
            llmc_norm_errf(err, errlen, "%s:%u: NUL byte", name, cx.line);
            rc = -1;
            break;
        }
        if (dict_line(d, &cx, &sec, p, le, file, &a, &b) != 0) {
            rc = -1;
            break;
        }
        p = nl ? nl + 1 : end;
    }

    free(a.p);
    free(b.p);

    if (rc == 0) {
        rc = dict_rebuild(d, err, errlen);
    }
    if (rc == 0) {
        rc = dict_check(d, err, errlen);
    }
    d->fingerprint = dict_fingerprint(d);
    return rc;

nomem:
    llmc_norm_errf(err, errlen, "%s: out of memory", name);
    return -1;
}


int
llmc_dict_load_file(llmc_dict_t *d, const char *path, char *err,
    size_t errlen)
{
    FILE    *f;
    char    *buf, *nb;
    size_t   len, cap, n;
    int      rc;

    f = fopen(path, "rb");
    if (f == NULL) {
        llmc_norm_errf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    buf = NULL;
    len = 0;
    cap = 0;
    for ( ;; ) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                llmc_norm_errf(err, errlen, "%s: out of memory", path);
                return -1;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    if (ferror(f)) {
        llmc_norm_errf(err, errlen, "%s: read error", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);

    rc = llmc_dict_load_buf(d, buf, len, path, err, errlen);
    free(buf);
    return rc;
}


int
llmc_dict_is_negation(const llmc_dict_t *d, const char *word, size_t len)
{
    ubuf_t                a = { NULL, 0, 0 }, b = { NULL, 0, 0 };
    UChar                 u[64];
    int32_t               id, n;
    const unsigned char  *p = (const unsigned char *) word;
    size_t                i;
    int                   rc;

    if (d == NULL || d->ntoks == 0) {
        return 0;
    }

    /*
     * The guards ask this of every word of two prompts.  A word of
     * lowercase Latin letters, digits and Hangul syllables is its own
     * normalized form: it is looked up as it is, with no copy and no
     * normalization pass.
     */
    for (i = 0, n = 0; i < len && n < 64; n++) {
        if ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9')) {
            u[n] = p[i++];
            continue;
        }
        if (i + 2 < len && p[i] >= 0xea && p[i] <= 0xed
            && (p[i + 1] & 0xc0) == 0x80 && (p[i + 2] & 0xc0) == 0x80)
        {
            u[n] = (UChar) (((p[i] & 0x0f) << 12) | ((p[i + 1] & 0x3f) << 6)
                            | (p[i + 2] & 0x3f));
            if (u[n] >= 0xac00 && u[n] <= 0xd7a3) {
                i += 3;
                continue;
            }
        }
        break;
    }
    if (i == len) {
        id = dict_tok_find(d, u, n, tok_hash(u, n));
        return id >= 0 && d->toks[id].negation;
    }

    if (llmc_utf8_check((const unsigned char *) word, len) != len
        || utf8_to_ubuf(word, len, &a, NULL, 0) != 0)
    {
        free(a.p);
        return 0;
    }
    id = dict_tok_find(d, a.p, a.len, tok_hash(a.p, a.len));
    if (id < 0 && llmc_norm_pre(&a, &b, LLMC_NORM_PRE, NULL, 0) == 0) {
        id = dict_tok_find(d, a.p, a.len, tok_hash(a.p, a.len));
    }
    rc = id >= 0 && d->toks[id].negation;
    free(a.p);
    free(b.p);
    return rc;
}


/* --- the dict step ----------------------------------------------------- */

static int
ubuf_put(ubuf_t *b, const UChar *s, int32_t len, int sep)
{
    if (ubuf_reserve(b, b->len + len + 1) != 0) {
        return -1;
    }
    if (sep && b->len > 0) {
        b->p[b->len++] = 0x20;
    }
    memcpy(b->p + b->len, s, sizeof(UChar) * (size_t) len);
    b->len += len;
    return 0;
}


/* A one-word [drop] entry. */
static int
dict_is_filler(const llmc_dict_t *d, int32_t id)
{
    int64_t  node;

    node = dict_edge_find(d, 0, (uint32_t) id);
    return node >= 0 && d->nodes[node] >= 0
           && d->rules[d->nodes[node]].nout == 0;
}


/* One left-to-right pass of longest-match rules over in, into out.
 * Returns the number of rewrites ([keep] matches are none), or -1. */
static int
dict_pass(const llmc_dict_t *d, const words_t *in, words_t *out)
{
    const dict_rule_t  *r;
    const dict_tok_t   *t;
    const word_t       *w = in->w;
    int32_t             i, j, end, best, skipped;
    int64_t             node, next;
    uint32_t            k;
    int                 changed = 0;

    out->n = 0;
    for (i = 0; i < in->n; /* void */) {

        /* the longest phrase starting here */
        best = -1;
        end = i;
        node = 0;
        skipped = 0;
        for (j = i; j < in->n && w[j].id >= 0; j++) {
            next = dict_edge_find(d, (uint32_t) node, (uint32_t) w[j].id);
            if (next < 0) {
                /* fillers inside a phrase: "알려 좀 주세요"; bounded so
                 * that a run of fillers stays linear */
                if (j > i && skipped < LLMC_DICT_SKIP_MAX
                    && dict_is_filler(d, w[j].id))
                {
                    skipped++;
                    continue;
                }
                break;
            }
            node = next;
            if (d->nodes[node] >= 0) {
                best = d->nodes[node];
                end = j + 1;
            }
        }

        if (best < 0) {
            if (words_add(out, w[i].p, w[i].len, w[i].id) != 0) {
                return -1;
            }
            i++;
            continue;
        }

        r = &d->rules[best];
        for (k = 0; k < r->nout; k++) {
            t = &d->toks[d->ids[r->out + k]];
            if (words_add(out, d->chars + t->off, t->len,
                          (int32_t) d->ids[r->out + k]) != 0)
            {
                return -1;
            }
        }
        changed += !r->keep || (uint32_t) (end - i) != r->nvar;
        i = end;
    }
    return changed;
}


/* Segments, then applies the rules until nothing changes (a few passes at
 * most: "do you know how to" -> "how to" -> "how do i"), so that rules
 * compose and a normalized prompt normalizes to itself. */
static int
step_dict(ubuf_t *a, ubuf_t *b, const llmc_dict_t *d, char *err,
    size_t errlen)
{
    span_t   *toks;
    words_t   x = { NULL, 0, 0 }, y = { NULL, 0, 0 }, t;
    int32_t   ntoks, i;
    int       pass, rc;

    if (llmc_segment(a->p, a->len, &toks, &ntoks, err, errlen) != 0) {
        return -1;
    }
    for (i = 0; i < ntoks; i++) {
        if (words_add(&x, a->p + toks[i].off, toks[i].len,
                      dict_tok_find(d, a->p + toks[i].off, toks[i].len,
                                    tok_hash(a->p + toks[i].off,
                                             toks[i].len))) != 0)
        {
            goto nomem;
        }
    }

    if (d->maxending > 0) {
        if (dict_endings(d, &x, &y) != 0) {
            goto nomem;
        }
        t = x; x = y; y = t;
    }

    for (pass = 0; pass < LLMC_DICT_PASSES; pass++) {
        rc = dict_pass(d, &x, &y);
        if (rc < 0) {
            goto nomem;
        }
        t = x; x = y; y = t;
        if (rc == 0) {
            break;
        }
    }

    b->len = 0;
    for (i = 0; i < x.n; i++) {
        if (ubuf_put(b, x.w[i].p, x.w[i].len, 1) != 0) {
            goto nomem;
        }
    }

    free(toks);
    free(x.w);
    free(y.w);
    ubuf_swap(a, b);
    return 0;

nomem:
    free(toks);
    free(x.w);
    free(y.w);
    llmc_norm_errf(err, errlen, "llmc_normalize: out of memory");
    return -1;
}


int
llmc_normalize(const char *in, size_t len, unsigned steps,
    const llmc_dict_t *dict, char **out, size_t *outlen, char *err,
    size_t errlen)
{
    ubuf_t      a = { NULL, 0, 0 }, b = { NULL, 0, 0 };
    UErrorCode  st = U_ZERO_ERROR;
    size_t      bad;
    int32_t     n;
    char       *o;

    *out = NULL;
    if (outlen) {
        *outlen = 0;
    }

    bad = llmc_utf8_check((const unsigned char *) in, len);
    if (bad != len) {
        llmc_norm_errf(err, errlen,
                       "llmc_normalize: invalid UTF-8 at byte %zu", bad);
        return -1;
    }

    if (dict == NULL) {
        steps &= ~LLMC_NORM_DICT;
    }
    if ((steps & LLMC_NORM_ALL) == 0) {
        o = malloc(len + 1);
        if (o == NULL) {
            goto nomem;
        }
        memcpy(o, in, len);
        o[len] = '\0';
        goto done;
    }

    if (utf8_to_ubuf(in, len, &a, err, errlen) != 0
        || llmc_norm_pre(&a, &b, steps, err, errlen) != 0
        || ((steps & LLMC_NORM_DICT)
            && step_dict(&a, &b, dict, err, errlen) != 0))
    {
        goto fail;
    }

    /* a UTF-16 unit never takes more than 3 bytes of UTF-8 */
    o = malloc((size_t) a.len * 3 + 1);
    if (o == NULL) {
        goto nomem;
    }
    u_strToUTF8(o, a.len * 3 + 1, &n, a.p, a.len, &st);
    if (U_FAILURE(st)) {
        free(o);
        llmc_norm_errf(err, errlen, "llmc_normalize: u_strToUTF8: %s",
                       u_errorName(st));
        goto fail;
    }
    o[n] = '\0';
    len = (size_t) n;
    free(a.p);
    free(b.p);

done:
    *out = o;
    if (outlen) {
        *outlen = len;
    }
    return 0;

nomem:
    llmc_norm_errf(err, errlen, "llmc_normalize: out of memory");
fail:
    free(a.p);
    free(b.p);
    return -1;
}
