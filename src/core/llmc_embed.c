/*
 * Builtin hashed embedding and the OpenAI-compatible /v1/embeddings
 * request body and answer parser.
 *
 * The builtin embedding reads normalized text as space-separated words and
 * collects three groups of features:
 *   chars  character 2- and 3-grams of each word padded with boundary
 *          marks (code points: a Hangul syllable or a CJK character is one
 *          unit), plus 2-grams of the Hangul syllables reduced to their
 *          initial and medial jamo (알려줘/알려줄 and 했/해 then share
 *          features despite a final consonant);
 *   words  word unigrams;
 *   pairs  word bigrams (order: Korean particles ride on their words, so
 *          swapped roles change these).
 * Each feature's weight is (1 + ln tf) times a damping factor for very
 * common words (function words, request frames).  Each group is hashed
 * into the vector with a sign from the same hash, scaled to a fixed share
 * of the total, and the result is L2-normalized.  Only integer hashing,
 * a fixed table for small tf and IEEE sqrt are involved, so the vector is
 * the same on every machine.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llmc_json.h"
#include "llmc_embed.h"


#define EMB_WORD_MAX    64          /* code points of a word used for grams */
#define EMB_GROUP_CHARS 0
#define EMB_GROUP_WORDS 1
#define EMB_GROUP_PAIRS 2
#define EMB_GROUPS      3

#define EMB_BOW         0x01        /* boundary marks around a word */
#define EMB_EOW         0x02


/* share of each group in the final vector (squared norms add up) */
/* shares of the groups in the final vector; bigrams weigh most as they
 * carry the order, raw adjacent pairs count half of content pairs, and
 * jamo grams half of syllable grams (chosen with bench/semantic) */
static const float  emb_group_weight[EMB_GROUPS] = { 0.8f, 1.0f, 1.2f };
#define EMB_JAMO_WEIGHT  0.5f
#define EMB_RAW_PAIR     0.5f

/* weight damping of very common words: function words, the request
 * frames the dictionaries produce and vague evaluative modifiers.  Sorted
 * by bytes for bsearch(). */
static const char  *emb_common[] = {
    "a", "about", "after", "all", "am", "an", "and", "any", "are", "as", "at",
    "be", "been", "being", "best", "but", "by", "can", "could", "delicious",
    "did", "do", "does", "for", "from", "get", "good", "had", "has", "have",
    "he", "her", "here", "his", "how", "i", "if", "in", "into", "is", "it",
    "its", "just", "me", "my", "nice", "of", "on", "one", "or", "our", "she",
    "should", "so", "some", "tasty", "than", "that", "the", "their", "them",
    "then", "there", "these", "they", "this", "to", "up", "was", "we", "were",
    "what", "when", "where", "which", "who", "why", "will", "with", "would",
    "you", "your", "가", "것", "게", "그", "그리고", "는", "더", "도", "를", "맛있는", "뭐야",
    "수", "알려줘", "어떻게", "에", "에서", "와", "은", "을", "의", "이", "있는", "있다", "좋은",
    "줘", "하고", "한", "해",
};

#define EMB_COMMON_DAMP 0.3f


uint64_t
llmc_embed_hash(const void *data, size_t len)
{
    const unsigned char  *p = data;
    uint64_t              h = 0xcbf29ce484222325ULL;
    size_t                i;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }

    /* FNV-1a mixes the last bytes poorly into the high bits */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}


/* Decodes one UTF-8 sequence; returns its length or 0 when invalid. */
static size_t
emb_utf8(const unsigned char *p, size_t n, uint32_t *cp)
{
    uint32_t  c;
    size_t    len, i;

    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2; c = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3; c = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4; c = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff)))
        || (len == 4 && (c < 0x10000 || c > 0x10ffff)))
    {
        return 0;
    }
    *cp = c;
    return len;
}


static int
emb_common_cmp(const void *key, const void *elt)
{
    return strcmp(key, *(const char *const *) elt);
}


static float
emb_damp(const char *w, size_t len)
{
    char  buf[32];

    if (len >= sizeof(buf)) {
        return 1.0f;
    }
    memcpy(buf, w, len);
    buf[len] = '\0';
    return bsearch(buf, emb_common, sizeof(emb_common) / sizeof(char *),
                   sizeof(char *), emb_common_cmp) ? EMB_COMMON_DAMP : 1.0f;
}


/* one hashed feature before tf is counted */
typedef struct {
    uint64_t  h;
    float     w;
    int       group;
} emb_feat_t;

/* the features of a prompt: on the stack, on the heap past EMB_FEATS */
#define EMB_FEATS  512

typedef struct {
    emb_feat_t  *f;
    size_t       n, cap;
    emb_feat_t  *stack;         /* EMB_FEATS of them */
} emb_feats_t;


static int
emb_add(emb_feats_t *fs, int group, float w, const void *key, size_t len)
{
    emb_feat_t  *f;

    if (fs->n == fs->cap) {
        size_t  cap = fs->cap * 2;

        f = fs->f == fs->stack ? malloc(cap * sizeof(emb_feat_t))
                               : realloc(fs->f, cap * sizeof(emb_feat_t));
        if (f == NULL) {
            return -1;
        }
        if (fs->f == fs->stack) {
            memcpy(f, fs->stack, fs->n * sizeof(emb_feat_t));
        }
        fs->f = f;
        fs->cap = cap;
    }
    f = &fs->f[fs->n++];
    f->h = llmc_embed_hash(key, len);
    f->w = w;
    f->group = group;
    return 0;
}


/*
 * Stable sort by hash (equal features keep the order they came in, and the
 * first one's weight counts): insertion sort of runs of 16, then merges,
 * the comparison inlined.  tmp holds n features.
 */
static void
emb_sort(emb_feat_t *a, size_t n, emb_feat_t *tmp)
{
    emb_feat_t  x, *src = a, *dst = tmp, *t;
    size_t      i, j, w, lo, mid, hi, p, q, k;

    for (lo = 0; lo < n; lo += 16) {
        hi = lo + 16 < n ? lo + 16 : n;
        for (i = lo + 1; i < hi; i++) {
            x = a[i];
            for (j = i; j > lo && a[j - 1].h > x.h; j--) {
                a[j] = a[j - 1];
            }
            a[j] = x;
        }
    }

    for (w = 16; w < n; w *= 2) {
        for (lo = 0; lo < n; lo += 2 * w) {
            mid = lo + w < n ? lo + w : n;
            hi = lo + 2 * w < n ? lo + 2 * w : n;
            for (p = lo, q = mid, k = lo; k < hi; k++) {
                dst[k] = q >= hi || (p < mid && src[p].h <= src[q].h)
                         ? src[p++] : src[q++];
            }
        }
        t = src;
        src = dst;
        dst = t;
    }

    if (src != a) {
        memcpy(a, src, n * sizeof(emb_feat_t));
    }
}


/*
 * llmc_l2_normalize() of a vector whose non-zero components are marked in
 * nz: the same sums in the same order (a zero adds +0 to a sum that is
 * never -0, which changes nothing) and the same scaling, without visiting
 * the zeros.
 */
static float
emb_l2_sparse(float *v, int dim, const uint64_t *nz)
{
    double  s[4] = { 0.0, 0.0, 0.0, 0.0 }, inv;
    float   n;
    int     i, wd, tail = dim - dim % 4;
    uint64_t  bits;

    for (wd = 0; wd < (dim + 63) / 64; wd++) {
        for (bits = nz[wd]; bits; bits &= bits - 1) {
            i = wd * 64 + __builtin_ctzll(bits);
            s[i < tail ? i & 3 : 0] += (double) v[i] * v[i];
        }
    }
    n = (float) sqrt((s[0] + s[1]) + (s[2] + s[3]));
    if (n > 0.0f) {
        inv = 1.0 / (double) n;
        for (wd = 0; wd < (dim + 63) / 64; wd++) {
            for (bits = nz[wd]; bits; bits &= bits - 1) {
                i = wd * 64 + __builtin_ctzll(bits);
                v[i] = (float) (v[i] * inv);
            }
        }
    }
    return n;
}


/* Character grams of one word: cps[0..n) with the boundary marks. */
static int
emb_word_grams(emb_feats_t *fs, const uint32_t *cps, int n, float damp)
{
    uint32_t  seq[EMB_WORD_MAX + 2], key[4];
    int       i, m, hangul;

    seq[0] = EMB_BOW;
    memcpy(&seq[1], cps, n * sizeof(uint32_t));
    seq[n + 1] = EMB_EOW;
    m = n + 2;

    for (i = 0; i + 2 <= m; i++) {
        key[0] = 'c';
        key[1] = seq[i];
        key[2] = seq[i + 1];
        if (emb_add(fs, EMB_GROUP_CHARS, damp, key, 3 * sizeof(uint32_t))
            != 0)
        {
            return -1;
        }
    }
    for (i = 0; i + 3 <= m; i++) {
        key[0] = 'C';
        key[1] = seq[i];
        key[2] = seq[i + 1];
        key[3] = seq[i + 2];
        if (emb_add(fs, EMB_GROUP_CHARS, damp, key, 4 * sizeof(uint32_t))
            != 0)
        {
            return -1;
        }
    }

    /* Hangul syllables without their final consonant */
    hangul = 0;
    for (i = 1; i <= n; i++) {
        if (seq[i] >= 0xac00 && seq[i] <= 0xd7a3) {
            seq[i] = 0xac00 + (seq[i] - 0xac00) / 28 * 28;
            hangul = 1;
        }
    }
    if (hangul) {
        for (i = 0; i + 2 <= m; i++) {
            key[0] = 'j';
            key[1] = seq[i];
            key[2] = seq[i + 1];
            if (emb_add(fs, EMB_GROUP_CHARS, EMB_JAMO_WEIGHT * damp, key,
                        3 * sizeof(uint32_t)) != 0)
            {
                return -1;
            }
        }
    }
    return 0;
}


static int
emb_pair(emb_feats_t *fs, char kind, const char *a, size_t al, const char *b,
    size_t bl, float w)
{
    char  pair[512];

    if (al + bl + 2 > sizeof(pair)) {
        return 0;       /* long words: their grams and unigrams suffice */
    }
    pair[0] = kind;
    memcpy(pair + 1, a, al);
    pair[1 + al] = ' ';
    memcpy(pair + 2 + al, b, bl);
    return emb_add(fs, EMB_GROUP_PAIRS, w, pair, al + bl + 2);
}


/* ln(1 + tf - 1) + 1 for small tf without libm */
static float
emb_tf(size_t tf)
{
    static const float  t[] = {
        0.0f, 1.0f, 1.6931472f, 2.0986123f, 2.3862944f, 2.6094379f,
        2.7917595f, 2.9459102f, 3.0794415f, 3.1972246f, 3.3025851f
    };

    return tf < sizeof(t) / sizeof(t[0]) ? t[tf] : 1.0f + logf((float) tf);
}


int
llmc_embed_builtin(const char *text, size_t len, float *out, int dim)
{
    const unsigned char  *p = (const unsigned char *) text;
    emb_feat_t            fstack[EMB_FEATS], tstack[EMB_FEATS];
    float                 astack[EMB_GROUPS * 1024 + 4 * 16 * 2];
    emb_feats_t           fs = { fstack, 0, EMB_FEATS, fstack };
    uint32_t              cps[EMB_WORD_MAX];
    size_t                i, j, k, l, ws, pws, pwl, cws, cwl, wl;
    float                 damp, pdamp, norm[EMB_GROUPS], *g[EMB_GROUPS];
    float                *acc;
    uint32_t              cp;
    uint64_t             *nz, bits;
    emb_feat_t           *tmp;
    size_t                nw, w, n_acc;
    int                   n, d, rc;

    if (dim < LLMC_EMBED_DIM_MIN || dim > LLMC_EMBED_DIM_MAX
        || (text == NULL && len))
    {
        return -1;
    }

    /* the groups' sums and their bitmaps of touched components: on the
       stack up to 1024 dimensions */
    nw = (dim + 63) / 64;
    n_acc = (size_t) dim * EMB_GROUPS + (size_t) nw * (EMB_GROUPS + 1) * 2;
    if (n_acc <= sizeof(astack) / sizeof(float)) {
        acc = astack;
        memset(acc, 0, n_acc * sizeof(float));
    } else {
        acc = calloc(n_acc, sizeof(float));
        if (acc == NULL) {
            return -1;
        }
    }
    nz = (uint64_t *) (acc + (size_t) dim * EMB_GROUPS);
    for (d = 0; d < EMB_GROUPS; d++) {
        g[d] = acc + (size_t) d * dim;
    }

    rc = -1;
    pws = 0;
    pwl = 0;
    cws = 0;
    cwl = 0;
    pdamp = 1.0f;
    i = 0;

    while (i < len) {
        if (p[i] == ' ') {
            i++;
            continue;
        }

        ws = i;
        n = 0;
        while (i < len && p[i] != ' ') {
            l = emb_utf8(p + i, len - i, &cp);
            if (l == 0) {
                goto done;
            }
            if (n < EMB_WORD_MAX) {
                cps[n++] = cp;
            }
            i += l;
        }
        wl = i - ws;
        damp = emb_damp(text + ws, wl);

        if (emb_add(&fs, EMB_GROUP_WORDS, damp, text + ws, wl) != 0
            || emb_word_grams(&fs, cps, n, damp) != 0)
        {
            goto done;
        }

        /* adjacent words, and adjacent content words (common words
         * skipped): "cancel my subscription" and "cancel the
         * subscription" share "cancel subscription" */
        if (pwl && emb_pair(&fs, 'b', text + pws, pwl, text + ws, wl,
                            EMB_RAW_PAIR * sqrtf(damp * pdamp)) != 0)
        {
            goto done;
        }
        if (damp == 1.0f) {
            if (cwl && emb_pair(&fs, 'B', text + cws, cwl, text + ws, wl,
                                1.0f) != 0)
            {
                goto done;
            }
            cws = ws;
            cwl = wl;
        }
        pws = ws;
        pwl = wl;
        pdamp = damp;
    }

    /* word keys are the bare words: normalized text holds no NUL (gram
     * keys do) and words no space (pair keys do), so the kinds never
     * share a key */
    if (fs.n) {
        tmp = fs.n <= EMB_FEATS ? tstack : malloc(fs.n * sizeof(emb_feat_t));
        if (tmp == NULL) {
            goto done;
        }
        emb_sort(fs.f, fs.n, tmp);
        if (tmp != tstack) {
            free(tmp);
        }
    }

    /* nz[group * nw ...]: the components each group touched; the last
     * nw words: all of them */
    for (j = 0; j < fs.n; j = k) {
        for (k = j + 1; k < fs.n && fs.f[k].h == fs.f[j].h; k++) {
            /* count equal features */
        }
        d = (int) ((fs.f[j].h >> 32) % (uint64_t) dim);
        g[fs.f[j].group][d] += (fs.f[j].h & 1 ? -1.0f : 1.0f)
                               * fs.f[j].w * emb_tf(k - j);
        nz[fs.f[j].group * nw + d / 64] |= 1ULL << (d % 64);
    }
    for (d = 0; d < EMB_GROUPS; d++) {
        norm[d] = emb_l2_sparse(g[d], dim, nz + d * nw);
    }

    memset(out, 0, (size_t) dim * sizeof(float));
    for (w = 0; w < nw; w++) {
        for (d = 0; d < EMB_GROUPS; d++) {
            if (norm[d] > 0.0f) {
                nz[EMB_GROUPS * nw + w] |= nz[d * nw + w];
            }
        }
        for (bits = nz[EMB_GROUPS * nw + w]; bits; bits &= bits - 1) {
            i = w * 64 + (size_t) __builtin_ctzll(bits);
            for (d = 0; d < EMB_GROUPS; d++) {
                if (norm[d] > 0.0f) {
                    out[i] += emb_group_weight[d] * g[d][i];
                }
            }
        }
    }
    emb_l2_sparse(out, dim, nz + EMB_GROUPS * nw);
    rc = 0;

done:

    if (fs.f != fs.stack) {
        free(fs.f);
    }
    if (acc != astack) {
        free(acc);
    }
    return rc;
}


float
llmc_cosine(const float *a, const float *b, int dim)
{
    float  s[8] = { 0 }, t;
    int    i, k;

    /* eight partial sums in a fixed order: vectorizable without
     * reassociation, and the same result everywhere */
    for (i = 0; i + 8 <= dim; i += 8) {
        for (k = 0; k < 8; k++) {
            s[k] += a[i + k] * b[i + k];
        }
    }
    t = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    for (; i < dim; i++) {
        t += a[i] * b[i];
    }
    return t;
}


float
llmc_l2_normalize(float *v, int dim)
{
    double  s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, inv;
    float   n;
    int     i;

    /* four sums side by side (one would wait on each add), in a fixed
       order: the same on every machine */
    for (i = 0; i + 4 <= dim; i += 4) {
        s0 += (double) v[i] * v[i];
        s1 += (double) v[i + 1] * v[i + 1];
        s2 += (double) v[i + 2] * v[i + 2];
        s3 += (double) v[i + 3] * v[i + 3];
    }
    for ( /* void */ ; i < dim; i++) {
        s0 += (double) v[i] * v[i];
    }
    n = (float) sqrt((s0 + s1) + (s2 + s3));
    if (n > 0.0f) {
        /* in double: the reciprocal of a subnormal norm overflows a float */
        inv = 1.0 / (double) n;
        for (i = 0; i < dim; i++) {
            v[i] = (float) (v[i] * inv);
        }
    }
    return n;
}


/* --- remote embeddings ---------------------------------------------------- */

char *
llmc_embed_request(const char *model, const char *text, size_t len,
    size_t *out_len)
{
    json_t  *o, *s;
    char    *body;

    s = json_stringn(text ? text : "", text ? len : 0);
    if (s == NULL) {
        return NULL;        /* invalid UTF-8 or no memory */
    }
    o = json_object();
    if (o == NULL) {
        json_decref(s);
        return NULL;
    }
    if ((model && json_object_set_new(o, "model", json_string(model)) != 0)
        || json_object_set_new(o, "input", s) != 0
        || json_object_set_new(o, "encoding_format", json_string("float"))
           != 0)
    {
        json_decref(o);
        return NULL;
    }
    body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (body && out_len) {
        *out_len = strlen(body);
    }
    return body;
}


static int
emb_b64(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}


/* Decodes base64 (standard or URL alphabet, padding optional) of
 * little-endian float32 values. */
static float *
emb_parse_b64(const char *s, size_t len, int *dim, char *err, size_t errlen)
{
    unsigned char  *bytes;
    float          *v;
    size_t          i, n, nb;
    uint32_t        acc, u;
    int             bits, x;

    while (len && s[len - 1] == '=') {
        len--;
    }
    if (len % 4 == 1) {
        snprintf(err, errlen, "llmc_embed_parse: bad base64 length");
        return NULL;
    }
    nb = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (nb == 0 || nb % 4 != 0) {
        snprintf(err, errlen, "llmc_embed_parse: base64 embedding is not "
                 "a whole number of float32 values");
        return NULL;
    }
    if (nb / 4 > LLMC_EMBED_DIM_MAX) {
        snprintf(err, errlen, "llmc_embed_parse: more than %d dimensions",
                 LLMC_EMBED_DIM_MAX);
        return NULL;
    }
    bytes = malloc(nb);
    v = malloc(nb);
    if (bytes == NULL || v == NULL) {
        free(bytes);
        free(v);
        snprintf(err, errlen, "llmc_embed_parse: out of memory");
        return NULL;
    }

    acc = 0;
    bits = 0;
    n = 0;
    for (i = 0; i < len; i++) {
        x = emb_b64((unsigned char) s[i]);
        if (x < 0) {
            snprintf(err, errlen, "llmc_embed_parse: bad base64 character "
                     "at %zu", i);
            goto fail;
        }
        acc = (acc << 6) | (uint32_t) x;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            bytes[n++] = (unsigned char) (acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) {
        snprintf(err, errlen, "llmc_embed_parse: bad base64 padding bits");
        goto fail;
    }

    for (i = 0; i < nb / 4; i++) {
        u = (uint32_t) bytes[4 * i] | (uint32_t) bytes[4 * i + 1] << 8
            | (uint32_t) bytes[4 * i + 2] << 16
            | (uint32_t) bytes[4 * i + 3] << 24;
        memcpy(&v[i], &u, sizeof(float));
    }
    free(bytes);
    *dim = (int) (nb / 4);
    return v;

fail:

    free(bytes);
    free(v);
    return NULL;
}


int
llmc_embed_parse(const char *json, size_t len, float **out, int *dim,
    char *err, size_t errlen)
{
    json_t        *root, *data, *item, *emb, *e, *msg;
    json_error_t   jerr;
    float         *v;
    size_t         i, n;
    int             nd, zero;
    double         x;

    *out = NULL;
    *dim = 0;
    v = NULL;

    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(err, errlen, "llmc_embed_parse: bad JSON at %d: %s",
                 jerr.position, llmc_json_errmsg(&jerr));
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "llmc_embed_parse: not a JSON object");
        goto fail;
    }

    data = json_object_get(root, "data");
    if (data == NULL) {
        e = json_object_get(root, "error");
        msg = json_is_object(e) ? json_object_get(e, "message")
                                : (json_is_string(e) ? e : NULL);
        if (json_is_string(msg)) {
            snprintf(err, errlen, "llmc_embed_parse: error answer: %.200s",
                     json_string_value(msg));
        } else {
            snprintf(err, errlen, "llmc_embed_parse: no \"data\"");
        }
        goto fail;
    }
    if (!json_is_array(data) || json_array_size(data) != 1) {
        snprintf(err, errlen, "llmc_embed_parse: \"data\" must be an array "
                 "of exactly one embedding");
        goto fail;
    }
    item = json_array_get(data, 0);
    emb = json_is_object(item) ? json_object_get(item, "embedding") : NULL;

    if (json_is_array(emb)) {
        n = json_array_size(emb);
        if (n == 0 || n > LLMC_EMBED_DIM_MAX) {
            snprintf(err, errlen, "llmc_embed_parse: embedding has %zu "
                     "values (1..%d)", n, LLMC_EMBED_DIM_MAX);
            goto fail;
        }
        v = malloc(n * sizeof(float));
        if (v == NULL) {
            snprintf(err, errlen, "llmc_embed_parse: out of memory");
            goto fail;
        }
        for (i = 0; i < n; i++) {
            e = json_array_get(emb, i);
            if (!json_is_number(e)) {
                snprintf(err, errlen, "llmc_embed_parse: embedding value "
                         "%zu is not a number", i);
                goto fail;
            }
            x = json_number_value(e);
            if (!(x >= -3.0e38 && x <= 3.0e38)) {
                snprintf(err, errlen, "llmc_embed_parse: embedding value "
                         "%zu out of range", i);
                goto fail;
            }
            v[i] = (float) x;
        }
        nd = (int) n;

    } else if (json_is_string(emb)) {
        v = emb_parse_b64(json_string_value(emb), json_string_length(emb),
                          &nd, err, errlen);
        if (v == NULL) {
            goto fail;
        }

    } else {
        snprintf(err, errlen, "llmc_embed_parse: data[0].embedding must be "
                 "an array of numbers or a base64 string");
        goto fail;
    }

    zero = 1;
    for (i = 0; i < (size_t) nd; i++) {
        if (!isfinite(v[i]) || fabsf(v[i]) > 1.0e18f) {
            snprintf(err, errlen, "llmc_embed_parse: embedding value %zu is "
                     "not finite", i);
            goto fail;
        }
        if (v[i] != 0.0f) {
            zero = 0;
        }
    }
    if (zero) {
        snprintf(err, errlen, "llmc_embed_parse: embedding is all zero");
        goto fail;
    }
    llmc_l2_normalize(v, nd);

    json_decref(root);
    *out = v;
    *dim = nd;
    return 0;

fail:

    free(v);
    json_decref(root);
    return -1;
}
