/*
 * Semantic cache guards.  Both prompts are normalized text: words
 * separated by single spaces, case-folded, NFKC.
 *
 * negation  a side with a negation cue against a side without one.  Cues
 *           are the dictionaries' [negation] entries and built-in ones:
 *           English not/no/never/... and their n't forms, Korean 안/못 as
 *           words, 않-/없- (all endings of 않다, 없다), 못하-, -지 마/말-
 *           written apart or together ("끄지 마", "하지마").  Pairs of
 *           opposite words on the two sides (enable/disable, 켜/끄) block
 *           too: they flip the question like a negation does.
 * numbers   the words holding a digit, with the unit after a bare number
 *           ("3 인분", "50 %") and a trailing Korean particle cut off
 *           ("3인분을" reads "3인분"), must be the same and in the
 *           same order: 3인분 vs 5인분, 2fa vs 3fa, 1.5 vs 15, and "the
 *           2nd track of the 5th single" vs "the 5th track of the 2nd".
 * entities  the sets of listed entities (aliases count as one) mentioned
 *           on each side must be equal.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmc_guard.h"
#include "llmc_normalize.h"


#define GUARD_WORDS_MAX   256       /* words of a prompt the guards read */
#define GUARD_LINE_MAX    4096



typedef struct {
    const char  *p;
    size_t       len;
} guard_word_t;

/* a table string with its length, counted by the compiler */
typedef struct {
    const char  *s;
    size_t       n;
} guard_str_t;

#define GS(lit)  { lit, sizeof(lit) - 1 }

typedef struct {
    char        *text;          /* normalized, words separated by ' ' */
    size_t       len;
    int          id;            /* aliases share it */
} guard_entity_t;

struct llmc_entities_s {
    guard_entity_t  *e;
    size_t           n, cap;
    int              next_id;
};


/* English cues that hold without any dictionary (normalized: the
 * apostrophe between letters is gone) */
static const guard_str_t  guard_neg_en[] = {
    GS("aint"), GS("arent"), GS("cannot"), GS("cant"), GS("couldnt"),
    GS("didnt"), GS("doesnt"), GS("dont"), GS("hadnt"), GS("hasnt"),
    GS("havent"), GS("isnt"), GS("mustnt"), GS("neednt"), GS("neither"),
    GS("never"), GS("no"), GS("nobody"), GS("none"), GS("nor"), GS("not"),
    GS("nothing"), GS("nowhere"), GS("shouldnt"), GS("wasnt"), GS("werent"),
    GS("without"), GS("wont"), GS("wouldnt"), GS("안"), GS("못"), GS("안돼"),
    GS("안되"), GS("안됨"), GS("안됩니다"),
};

/* word prefixes that negate: 않다, 없다, 못하다 in any ending */
static const guard_str_t  guard_neg_ko_prefix[] = {
    GS("않"), GS("없"), GS("못하"), GS("못해"), GS("못했"), GS("못할"), GS("못합"),
};

/* -지 + one of these, glued into one word ("하지마", "끄지않는") */
static const guard_str_t  guard_neg_ko_infix[] = {
    GS("지않"), GS("지마"), GS("지말"), GS("지못"),
};

/* opposite words: a word starting with the left stem on one side only and
 * one starting with the right stem on the other side only */
static const guard_str_t  guard_opposite[][2] = {
    { GS("enable"), GS("disable") }, { GS("activate"), GS("deactivate") },
    { GS("install"), GS("uninstall") }, { GS("lock"), GS("unlock") },
    { GS("subscribe"), GS("unsubscribe") }, { GS("follow"), GS("unfollow") },
    { GS("block"), GS("unblock") }, { GS("increase"), GS("decrease") },
    { GS("allow"), GS("deny") }, { GS("show"), GS("hide") },
    { GS("open"), GS("close") }, { GS("start"), GS("stop") },
    { GS("buy"), GS("sell") }, { GS("turn on"), GS("turn off") },
    { GS("switch on"), GS("switch off") }, { GS("켜"), GS("끄") },
    { GS("켜"), GS("꺼") }, { GS("열"), GS("닫") }, { GS("추가"), GS("삭제") },
    { GS("증가"), GS("감소") }, { GS("시작"), GS("중지") }, { GS("시작"), GS("종료") },
    { GS("허용"), GS("차단") }, { GS("활성화"), GS("비활성화") }, { GS("설치"), GS("제거") },
    { GS("올리"), GS("내리") }, { GS("올려"), GS("내려") },
};

/* Korean particles cut off a number word or after an entity, longest
 * first */
static const guard_str_t  guard_particles[] = {
    GS("에서는"), GS("으로는"), GS("에게서"), GS("에서"), GS("으로"), GS("까지"), GS("부터"),
    GS("에게"), GS("한테"), GS("이랑"), GS("처럼"), GS("보다"), GS("만큼"), GS("이나"),
    GS("이에요"), GS("입니다"), GS("이다"), GS("은"), GS("는"), GS("이"), GS("가"),
    GS("을"), GS("를"), GS("에"), GS("의"), GS("로"), GS("와"), GS("과"), GS("도"),
    GS("만"), GS("랑"), GS("나"), GS("요"),
};


unsigned
llmc_guard_flag(const char *name, size_t len)
{
    static const struct { const char *n; unsigned f; }  t[] = {
        { "negation", LLMC_GUARD_NEGATION },
        { "numbers", LLMC_GUARD_NUMBERS },
        { "entities", LLMC_GUARD_ENTITIES },
        { "all", LLMC_GUARD_ALL },
    };
    size_t  i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (strlen(t[i].n) == len && memcmp(t[i].n, name, len) == 0) {
            return t[i].f;
        }
    }
    return 0;
}


static size_t
guard_split(const char *s, size_t len, guard_word_t *w, size_t max)
{
    size_t  i = 0, n = 0, st;

    while (i < len && n < max) {
        if (s[i] == ' ') {
            i++;
            continue;
        }
        st = i;
        while (i < len && s[i] != ' ') {
            i++;
        }
        w[n].p = s + st;
        w[n].len = i - st;
        n++;
    }
    return n;
}


static int
guard_eq(const guard_word_t *w, const guard_str_t *s)
{
    return w->len == s->n && memcmp(w->p, s->s, s->n) == 0;
}


static int
guard_prefix(const char *p, size_t len, const guard_str_t *s)
{
    return len >= s->n && p[0] == s->s[0] && memcmp(p, s->s, s->n) == 0;
}


static int
guard_contains(const guard_word_t *w, const guard_str_t *s)
{
    size_t  i;

    for (i = 0; i + s->n <= w->len; i++) {
        if (w->p[i] == s->s[0] && memcmp(w->p + i, s->s, s->n) == 0) {
            return 1;
        }
    }
    return 0;
}


/* the length of a trailing particle of w that leaves something before
 * it, or 0 */
static size_t
guard_particle(const char *p, size_t len)
{
    size_t  i, n;

    for (i = 0; i < sizeof(guard_particles) / sizeof(guard_str_t); i++) {
        n = guard_particles[i].n;
        if (len > n && memcmp(p + len - n, guard_particles[i].s, n) == 0) {
            return n;
        }
    }
    return 0;
}


static int
guard_is_negation(const guard_word_t *w, size_t n, size_t i,
    const llmc_dict_t *dict)
{
    size_t  k;

    static const guard_str_t  ma = GS("마"), mal = GS("말");

    for (k = 0; k < sizeof(guard_neg_en) / sizeof(guard_str_t); k++) {
        if (guard_eq(&w[i], &guard_neg_en[k])) {
            return 1;
        }
    }
    for (k = 0; k < sizeof(guard_neg_ko_prefix) / sizeof(guard_str_t); k++) {
        if (guard_prefix(w[i].p, w[i].len, &guard_neg_ko_prefix[k])) {
            return 1;
        }
    }
    for (k = 0; k < sizeof(guard_neg_ko_infix) / sizeof(guard_str_t); k++) {
        if (guard_contains(&w[i], &guard_neg_ko_infix[k])) {
            return 1;
        }
    }

    /* "-지 마/말-" written apart: 먹지 마, 가지 말고, 하지 마세요 */
    if (i > 0 && w[i - 1].len >= 3
        && memcmp(w[i - 1].p + w[i - 1].len - 3, "지", 3) == 0
        && (guard_prefix(w[i].p, w[i].len, &ma)
            || guard_prefix(w[i].p, w[i].len, &mal)))
    {
        return 1;
    }

    (void) n;
    return dict && llmc_dict_is_negation(dict, w[i].p, w[i].len);
}


static int
guard_negated(const guard_word_t *w, size_t n, const llmc_dict_t *dict)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (guard_is_negation(w, n, i, dict)) {
            return 1;
        }
    }
    return 0;
}


/* Does a word sequence (a stem phrase: words, the last one a prefix)
 * occur in w? */
static int
guard_has_stem(const guard_word_t *w, size_t n, const guard_str_t *stem)
{
    const char  *sp;
    size_t       i, sl;
    guard_str_t  tail;

    sp = memchr(stem->s, ' ', stem->n);
    if (sp == NULL) {
        for (i = 0; i < n; i++) {
            if (guard_prefix(w[i].p, w[i].len, stem)) {
                return 1;
            }
        }
        return 0;
    }

    /* two words: the first exact, the second a prefix */
    sl = (size_t) (sp - stem->s);
    tail.s = sp + 1;
    tail.n = stem->n - sl - 1;
    for (i = 0; i + 1 < n; i++) {
        if (w[i].len == sl && memcmp(w[i].p, stem->s, sl) == 0
            && guard_prefix(w[i + 1].p, w[i + 1].len, &tail))
        {
            return 1;
        }
    }
    return 0;
}


/* a bit for each word's first two bytes: a stem whose bit is clear starts
 * no word, and is not looked for */
#define guard_start_bit(p)                                                   \
    ((((unsigned) (unsigned char) (p)[0] * 31u)                              \
      + (unsigned) (unsigned char) (p)[1]) & 255u)

static void
guard_starts(const guard_word_t *w, size_t n, uint64_t set[4])
{
    size_t    i;
    unsigned  h;

    set[0] = set[1] = set[2] = set[3] = 0;
    for (i = 0; i < n; i++) {
        if (w[i].len >= 2) {
            h = guard_start_bit(w[i].p);
            set[h >> 6] |= 1ULL << (h & 63);
        }
    }
}


static int
guard_stem_in(const guard_word_t *w, size_t n, const uint64_t set[4],
    const guard_str_t *stem)
{
    unsigned  h = guard_start_bit(stem->s);

    return (set[h >> 6] >> (h & 63) & 1) && guard_has_stem(w, n, stem);
}


static int
guard_opposites(const guard_word_t *a, size_t an, const guard_word_t *b,
    size_t bn)
{
    size_t    i;
    int       pa, pb;
    uint64_t  sa[4], sb[4];

    guard_starts(a, an, sa);
    guard_starts(b, bn, sb);

    for (i = 0; i < sizeof(guard_opposite) / sizeof(guard_opposite[0]); i++)
    {
        /* +1: the left word only, -1: the right word only, 0: neither or
         * both ("disable" does not start with "enable", nor "unlock" with
         * "lock") */
        pa = guard_stem_in(a, an, sa, &guard_opposite[i][0])
             - guard_stem_in(a, an, sa, &guard_opposite[i][1]);
        if (pa == 0) {
            continue;
        }
        pb = guard_stem_in(b, bn, sb, &guard_opposite[i][0])
             - guard_stem_in(b, bn, sb, &guard_opposite[i][1]);
        if (pa * pb < 0) {
            return 1;
        }
    }
    return 0;
}


static int
guard_word_cmp(const void *x, const void *y)
{
    const guard_word_t  *a = x, *b = y;
    size_t               n = a->len < b->len ? a->len : b->len;
    int                  c = memcmp(a->p, b->p, n);

    if (c != 0) {
        return c;
    }
    return a->len < b->len ? -1 : (a->len > b->len);
}


/* Is w a unit or counter that a number written before it quantifies?
 * The dictionary step splits "3인분" into "3 인분" and "50%" into
 * "50 %": Hangul words (counters), short Latin words (kg, gb, ms) and
 * lone symbols. */
static int
guard_unit(const guard_word_t *w)
{
    const unsigned char  *p = (const unsigned char *) w->p;
    size_t                i;

    /* U+AC00..U+D7A3: e0b0 80 .. ed 9e a3 in UTF-8 */
    if (w->len >= 3 && ((p[0] == 0xea && p[1] >= 0xb0) || p[0] == 0xeb
                        || p[0] == 0xec || (p[0] == 0xed && p[1] <= 0x9e)))
    {
        return 1;
    }
    if (w->len <= 3) {
        for (i = 0; i < w->len; i++) {
            if (!((p[i] >= 'a' && p[i] <= 'z') || p[i] >= 0x80
                  || (p[i] >= '!' && p[i] <= '/' && w->len == 1)))
            {
                return 0;
            }
        }
        return 1;
    }
    return 0;
}


static int
guard_has_digit(const guard_word_t *w)
{
    size_t  k;

    for (k = 0; k < w->len; k++) {
        if (w->p[k] >= '0' && w->p[k] <= '9') {
            return 1;
        }
    }
    return 0;
}


/* The words with a digit, in order, particles cut off.  A word of digits
 * only ("3", "1.5", "10:30") takes the unit after it along: "3 인분".
 * The words are spans of one buffer, so a number and its unit form one
 * span. */
static size_t
guard_numbers(const guard_word_t *w, size_t n, guard_word_t *out)
{
    size_t  i, k, m = 0;
    int     plain;

    for (i = 0; i < n; i++) {
        if (!guard_has_digit(&w[i])) {
            continue;
        }
        plain = 1;
        for (k = 0; k < w[i].len; k++) {
            if (!((w[i].p[k] >= '0' && w[i].p[k] <= '9') || w[i].p[k] == '.'
                  || w[i].p[k] == ',' || w[i].p[k] == ':'))
            {
                plain = 0;
            }
        }
        out[m] = w[i];
        if (plain && i + 1 < n && !guard_has_digit(&w[i + 1])
            && guard_unit(&w[i + 1]))
        {
            i++;
            out[m].len = (size_t) (w[i].p + w[i].len - out[m].p);
        }
        out[m].len -= guard_particle(out[m].p, out[m].len);
        m++;
    }
    return m;
}


static int
guard_numbers_differ(const guard_word_t *a, size_t an, const guard_word_t *b,
    size_t bn)
{
    guard_word_t  na[GUARD_WORDS_MAX], nb[GUARD_WORDS_MAX];
    size_t        i, n, m;

    n = guard_numbers(a, an, na);
    m = guard_numbers(b, bn, nb);
    if (n != m) {
        return 1;
    }
    for (i = 0; i < n; i++) {
        if (guard_word_cmp(&na[i], &nb[i]) != 0) {
            return 1;
        }
    }
    return 0;
}


/* --- entities ------------------------------------------------------------ */

llmc_entities_t *
llmc_entities_new(void)
{
    return calloc(1, sizeof(llmc_entities_t));
}


void
llmc_entities_free(llmc_entities_t *e)
{
    size_t  i;

    if (e == NULL) {
        return;
    }
    for (i = 0; i < e->n; i++) {
        free(e->e[i].text);
    }
    free(e->e);
    free(e);
}


static int
guard_entity_add(llmc_entities_t *e, const llmc_dict_t *words, const char *s,
    size_t len, int id, const char *name, unsigned line, char *err,
    size_t errlen)
{
    guard_entity_t  *ne;
    char            *out, nerr[256];
    size_t           olen;

    if (llmc_normalize(s, len, LLMC_NORM_ALL, words, &out, &olen, nerr,
                       sizeof(nerr)) != 0)
    {
        snprintf(err, errlen, "%s:%u: %s", name, line, nerr);
        return -1;
    }
    if (olen == 0) {
        free(out);
        snprintf(err, errlen, "%s:%u: empty entity", name, line);
        return -1;
    }
    if (e->n == e->cap) {
        size_t  cap = e->cap ? e->cap * 2 : 32;

        ne = realloc(e->e, cap * sizeof(guard_entity_t));
        if (ne == NULL) {
            free(out);
            snprintf(err, errlen, "%s:%u: out of memory", name, line);
            return -1;
        }
        e->e = ne;
        e->cap = cap;
    }
    e->e[e->n].text = out;
    e->e[e->n].len = olen;
    e->e[e->n].id = id;
    e->n++;
    return 0;
}


int
llmc_entities_load_buf(llmc_entities_t *e, const char *buf, size_t len,
    const char *name, char *err, size_t errlen)
{
    const char   *p, *end, *eol, *q, *s, *t;
    llmc_dict_t  *words;
    unsigned      line = 0;
    int           any;

    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {
        buf += 3;
        len -= 3;
    }

    /* an empty dictionary: entries split into words as prompts do
     * ("c#" reads "c #", "kathy와" "kathy 와") */
    words = llmc_dict_new();
    if (words == NULL) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }

    for (p = buf, end = buf + len; p < end; p = eol + 1) {
        line++;
        eol = memchr(p, '\n', (size_t) (end - p));
        if (eol == NULL) {
            eol = end;
        }
        if (eol - p > GUARD_LINE_MAX) {
            snprintf(err, errlen, "%s:%u: line too long (more than %d "
                     "bytes)", name, line, GUARD_LINE_MAX);
            llmc_dict_free(words);
            return -1;
        }
        if (memchr(p, '\0', (size_t) (eol - p))) {
            snprintf(err, errlen, "%s:%u: NUL byte", name, line);
            llmc_dict_free(words);
            return -1;
        }

        /* '#' at the start or after white space starts a comment */
        for (q = p; q < eol; q++) {
            if (*q == '#' && (q == p || q[-1] == ' ' || q[-1] == '\t')) {
                break;
            }
        }

        any = 0;
        for (s = p; s < q; s++) {
            if (*s != ' ' && *s != '\t' && *s != '\r') {
                any = 1;
                break;
            }
        }
        if (!any) {
            continue;
        }

        for (s = p; s <= q; s = t + 1) {
            for (t = s; t < q && *t != '|'; t++) {
                /* find the alias end */
            }
            if (guard_entity_add(e, words, s, (size_t) (t - s), e->next_id,
                                 name, line, err, errlen) != 0)
            {
                llmc_dict_free(words);
                return -1;
            }
            if (t == q) {
                break;
            }
        }
        e->next_id++;
    }
    llmc_dict_free(words);
    return 0;
}


int
llmc_entities_load_file(llmc_entities_t *e, const char *path, char *err,
    size_t errlen)
{
    FILE    *f;
    char    *buf;
    long     n;
    int      rc;

    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        fclose(f);
        return -1;
    }
    buf = malloc((size_t) n + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        fclose(f);
        return -1;
    }
    if (fread(buf, 1, (size_t) n, f) != (size_t) n) {
        snprintf(err, errlen, "%s: read error", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    rc = llmc_entities_load_buf(e, buf, (size_t) n, path, err, errlen);
    free(buf);
    return rc;
}


/* Does entity x start at word i?  Its words must match; the last may
 * carry a Korean particle ("서울에서", "kathy와"). */
static int
guard_entity_at(const guard_entity_t *x, const guard_word_t *w, size_t n,
    size_t i)
{
    const char  *p = x->text, *end = x->text + x->len, *sp;
    size_t       l;

    for (;;) {
        if (i >= n) {
            return 0;
        }
        sp = memchr(p, ' ', (size_t) (end - p));
        l = (size_t) ((sp ? sp : end) - p);
        if (sp) {
            if (w[i].len != l || memcmp(w[i].p, p, l) != 0) {
                return 0;
            }
            p = sp + 1;
            i++;
            continue;
        }
        if (w[i].len < l || memcmp(w[i].p, p, l) != 0) {
            return 0;
        }
        return w[i].len == l
               || guard_particle(w[i].p, w[i].len) == w[i].len - l;
    }
}


static int
guard_id_cmp(const void *x, const void *y)
{
    int  a = *(const int *) x, b = *(const int *) y;

    return (a > b) - (a < b);
}


/* the sorted, distinct ids of the entities mentioned */
static size_t
guard_entity_ids(const llmc_entities_t *e, const guard_word_t *w, size_t n,
    int *ids, size_t max)
{
    size_t  i, k, m = 0, u;

    for (i = 0; i < n; i++) {
        for (k = 0; k < e->n && m < max; k++) {
            if (guard_entity_at(&e->e[k], w, n, i)) {
                ids[m++] = e->e[k].id;
            }
        }
    }
    qsort(ids, m, sizeof(int), guard_id_cmp);
    for (i = 0, u = 0; i < m; i++) {
        if (u == 0 || ids[u - 1] != ids[i]) {
            ids[u++] = ids[i];
        }
    }
    return u;
}


static int
guard_entities_differ(const llmc_entities_t *e, const guard_word_t *a,
    size_t an, const guard_word_t *b, size_t bn)
{
    int     ia[GUARD_WORDS_MAX], ib[GUARD_WORDS_MAX];
    size_t  n, m;

    n = guard_entity_ids(e, a, an, ia, GUARD_WORDS_MAX);
    m = guard_entity_ids(e, b, bn, ib, GUARD_WORDS_MAX);
    return n != m || (n && memcmp(ia, ib, n * sizeof(int)) != 0);
}


/* --- the check ----------------------------------------------------------- */

int
llmc_guard_check_ex(const char *a, size_t alen, const char *b, size_t blen,
    const llmc_dict_t *dict, const llmc_entities_t *ents, unsigned guards,
    const char **why)
{
    guard_word_t  wa[GUARD_WORDS_MAX], wb[GUARD_WORDS_MAX];
    size_t        an, bn;
    const char   *w = NULL;

    an = guard_split(a, alen, wa, GUARD_WORDS_MAX);
    bn = guard_split(b, blen, wb, GUARD_WORDS_MAX);

    if (guards & LLMC_GUARD_NEGATION) {
        if (guard_negated(wa, an, dict) != guard_negated(wb, bn, dict)) {
            w = "negation";
        } else if (guard_opposites(wa, an, wb, bn)) {
            w = "negation";
        }
    }
    if (w == NULL && (guards & LLMC_GUARD_NUMBERS)
        && guard_numbers_differ(wa, an, wb, bn))
    {
        w = "numbers";
    }
    if (w == NULL && (guards & LLMC_GUARD_ENTITIES) && ents && ents->n
        && guard_entities_differ(ents, wa, an, wb, bn))
    {
        w = "entities";
    }

    if (why) {
        *why = w;
    }
    return w != NULL;
}


int
llmc_guard_check(const char *a, size_t alen, const char *b, size_t blen,
    const llmc_dict_t *dict, unsigned guards, const char **why)
{
    return llmc_guard_check_ex(a, alen, b, blen, dict, NULL, guards, why);
}
