/*
 * Prompt normalizer: each step alone, the shipped Korean and English
 * dictionaries, the dictionary format and its errors, invalid input, and
 * (when ../shared is there) properties over public paraphrase data.
 */

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "llmc_normalize.h"
#include "tap.h"


#define S(s)  (s), strlen(s)

static char  *ring[16];
static int    ringi;
static char   lasterr[512];
static char   dictdir[4096];


/* The normalized text, or "<error>" (message in lasterr). */
static const char *
norm(const char *in, unsigned steps, const llmc_dict_t *d)
{
    char    *out;
    size_t   n;

    lasterr[0] = '\0';
    if (llmc_normalize(in, strlen(in), steps, d, &out, &n, lasterr,
                       sizeof(lasterr)) != 0)
    {
        return "<error>";
    }
    if (strlen(out) != n) {
        return "<bad length>";
    }
    free(ring[ringi]);
    ring[ringi] = out;
    ringi = (ringi + 1) % 16;
    return out;
}


static int
same(const char *a, const char *b, const llmc_dict_t *d)
{
    char  x[4096];

    snprintf(x, sizeof(x), "%s", norm(a, LLMC_NORM_ALL, d));
    return strcmp(x, norm(b, LLMC_NORM_ALL, d)) == 0
           && strcmp(x, "<error>") != 0;
}


static llmc_dict_t *
load(const char *file)
{
    llmc_dict_t  *d;
    char          path[8192], err[512];

    d = llmc_dict_new();
    snprintf(path, sizeof(path), "%s/%s", dictdir, file);
    if (d == NULL || llmc_dict_load_file(d, path, err, sizeof(err)) != 0) {
        printf("# %s\n", d ? err : "out of memory");
        llmc_dict_free(d);
        return NULL;
    }
    return d;
}


/* Loads buf as "t.dict" and checks the error names the line and says
 * what is wrong. */
static void
dict_error(const char *buf, const char *want, const char *what)
{
    llmc_dict_t  *d;
    char          err[512];
    int           rc;

    d = llmc_dict_new();
    err[0] = '\0';
    rc = llmc_dict_load_buf(d, buf, strlen(buf), "t.dict", err, sizeof(err));
    if (!ok(rc == -1 && strncmp(err, want, strlen(want)) == 0,
            "dict error: %s", what))
    {
        printf("#   got: rc %d '%s'\n#  want: '%s...'\n", rc, err, want);
    }
    llmc_dict_free(d);
}


static void
find_dictdir(const char *argv0)
{
    const char  *root;
    char        *slash;

    root = getenv("LLMCACHE_ROOT");
    if (root != NULL) {
        snprintf(dictdir, sizeof(dictdir), "%s/examples/dict", root);
        return;
    }
    if (access("examples/dict/ko.dict", R_OK) == 0) {
        snprintf(dictdir, sizeof(dictdir), "examples/dict");
        return;
    }
    /* build/unit/test_normalize -> examples/dict */
    snprintf(dictdir, sizeof(dictdir), "%s", argv0);
    slash = strrchr(dictdir, '/');
    if (slash != NULL) {
        snprintf(slash, sizeof(dictdir) - (size_t) (slash - dictdir),
                 "/../../examples/dict");
    }
}


static void
test_steps(void)
{
    const char  *mixed = "  Ｈｅｌｌｏ,\tＷｏｒｌｄ!  Straße ①  ";
    char        *out;
    size_t       n;
    char         err[256];

    is_int(llmc_norm_step(S("nfkc")), LLMC_NORM_NFKC, "step name nfkc");
    is_int(llmc_norm_step(S("casefold")), LLMC_NORM_CASEFOLD,
           "step name casefold");
    is_int(llmc_norm_step(S("space")), LLMC_NORM_SPACE, "step name space");
    is_int(llmc_norm_step(S("punct")), LLMC_NORM_PUNCT, "step name punct");
    is_int(llmc_norm_step(S("dict")), LLMC_NORM_DICT, "step name dict");
    is_int(llmc_norm_step("dictionary", 4), LLMC_NORM_DICT,
           "step name uses the length, not the NUL");
    is_int(llmc_norm_step(S("nfk")), 0, "unknown step name");
    is_int(llmc_norm_step(S("NFKC")), 0, "step names are lower case");
    is_int(llmc_norm_step(S("")), 0, "empty step name");

    is_str(norm(mixed, 0, NULL), mixed, "steps 0: input unchanged");
    ok(llmc_normalize("a\0b", 3, 0, NULL, &out, &n, err, sizeof(err)) == 0
       && n == 3 && memcmp(out, "a\0b", 3) == 0,
       "steps 0: length kept, NUL bytes included");
    free(out);

    /* nfkc alone: compatibility forms, case and spaces untouched */
    is_str(norm(mixed, LLMC_NORM_NFKC, NULL),
           "  Hello,\tWorld!  Straße 1  ", "nfkc alone");
    is_str(norm("ﾊﾟｽﾀ ㄱㅏ ﬁ ㎏ ½", LLMC_NORM_NFKC, NULL),
           "パスタ 가 fi kg 1\xe2\x81\x84" "2",
           "nfkc: half-width kana, compatibility jamo, ligature, units");

    /* casefold alone: full folding, full-width stays full-width */
    is_str(norm(mixed, LLMC_NORM_CASEFOLD, NULL),
           "  ｈｅｌｌｏ,\tｗｏｒｌｄ!  strasse ①  ", "casefold alone");
    is_str(norm("ΣΊΣΥΦΟΣ İ ǅ", LLMC_NORM_CASEFOLD, NULL),
           "σίσυφοσ i\xcc\x87 ǆ", "casefold: Greek sigma, dotted I, digraph");

    /* space alone */
    is_str(norm(mixed, LLMC_NORM_SPACE, NULL),
           "Ｈｅｌｌｏ, Ｗｏｒｌｄ! Straße ①", "space alone");
    is_str(norm("\t a\r\n\nb\xc2\xa0\xc2\xa0" "c\xe3\x80\x80" "d\xe2\x80\xa9"
                "e\xe2\x80\x8b" "f \xe2\x80\x89 g\v\f",
                LLMC_NORM_SPACE, NULL),
           "a b c d e f g",
           "space: tabs, newlines, NBSP, ideographic, thin, ZWSP; trimmed");
    ok(llmc_normalize("a\0b\bc\x7f", 6, LLMC_NORM_SPACE, NULL, &out, &n,
                      err, sizeof(err)) == 0 && n == 5
       && memcmp(out, "a b c", 5) == 0,
       "space: control characters count as white space");
    free(out);
    is_str(norm(" \t\n ", LLMC_NORM_SPACE, NULL), "",
           "space: white space only gives an empty result");

    /* punct alone */
    is_str(norm(mixed, LLMC_NORM_PUNCT, NULL),
           "  Ｈｅｌｌｏ\tＷｏｒｌｄ  Straße ①  ", "punct alone");
    is_str(norm("Hello,world!!!Bye.", LLMC_NORM_PUNCT, NULL),
           "Hello world Bye", "punct: removed marks separate words");
    is_str(norm("3.5 .5 v1.2.3 end.5", LLMC_NORM_PUNCT, NULL),
           "3.5 .5 v1.2.3 end 5", "punct: decimal points stay");
    is_str(norm("1,000,000 1,5 12,34 a,1", LLMC_NORM_PUNCT, NULL),
           "1000000 1,5 12,34 a 1", "punct: thousands separators go");
    is_str(norm("10:30 a:b", LLMC_NORM_PUNCT, NULL), "10:30 a b",
           "punct: colon between digits stays");
    is_str(norm("50% 50 % %d", LLMC_NORM_PUNCT, NULL), "50% 50 % d",
           "punct: percent after a number stays");
    is_str(norm("2*(3+4) 1/2 3-5 -5 x - 1 24/7", LLMC_NORM_PUNCT, NULL),
           "2*(3+4) 1/2 3-5 -5 x - 1 24/7",
           "punct: operators and brackets in arithmetic stay");
    is_str(norm("f(x) [note] **bold** e-mail and/or", LLMC_NORM_PUNCT, NULL),
           "f x note bold e mail and or",
           "punct: the same marks between words go");
    is_str(norm("C++ C# F#, #hashtag $5 €3 a=b", LLMC_NORM_PUNCT, NULL),
           "C++ C# F# hashtag $5 €3 a=b",
           "punct: symbols stay, C# keeps its sign");
    is_str(norm("don't it’s 'quoted' «x» “y”", LLMC_NORM_PUNCT, NULL),
           "dont its quoted x y", "punct: apostrophes inside words join");
    is_str(norm("안녕하세요。세계、「인용」… ¿Qué?", LLMC_NORM_PUNCT, NULL),
           "안녕하세요 세계 인용 Qué", "punct: CJK and Spanish marks");
    is_str(norm("a - b", LLMC_NORM_PUNCT | LLMC_NORM_SPACE, NULL), "a b",
           "punct with space: no double space left behind");
    is_str(norm("!?", LLMC_NORM_PUNCT, NULL), "",
           "punct: punctuation only gives an empty result");
    is_str(norm("(1) ((2) [3]", LLMC_NORM_PUNCT, NULL), "(1) (2) [3]",
           "punct: brackets pair up, an unmatched one goes");
    {
        /* 100k openers then 100k mismatched closers: linear, not
         * quadratic */
        size_t  k, half = 100000;
        char   *big = malloc(2 * half + 1);

        for (k = 0; k < half; k++) {
            big[k] = '(';
            big[half + k] = ']';
        }
        big[2 * half] = '\0';
        is_str(norm(big, LLMC_NORM_PUNCT, NULL), "",
               "punct: 200k unmatched brackets");
        free(big);
    }

    /* dict alone segments even without rules */
    {
        llmc_dict_t  *d = llmc_dict_new();

        is_str(norm("Hello   World", LLMC_NORM_DICT, d), "Hello World",
               "dict alone: tokens joined by one space, case kept");
        is_str(norm("Hello World", LLMC_NORM_DICT, NULL), "Hello World",
               "dict step without a dictionary does nothing");
        /* UAX #29 glues a joiner to the space before it */
        is_str(norm("a \xe2\x80\x8d\xf0\x9f\x91\xa9 b", LLMC_NORM_ALL, d),
               "a \xe2\x80\x8d\xf0\x9f\x91\xa9 b",
               "dict: a token never holds white space");
        llmc_dict_free(d);
    }
}


static void
test_invalid(void)
{
    static const char  *bad[] = {
        "\xff", "a\xc0\xaf", "\xed\xa0\x80", "\xe3\x81", "\xf4\x90\x80\x80",
        "\xe0\x80\x80", "ok \x80", "\xf8\x88\x80\x80\x80",
    };
    char               *out;
    size_t              i, n;
    char                err[256];
    int                 rc;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        out = (char *) 1;
        rc = llmc_normalize(bad[i], strlen(bad[i]), LLMC_NORM_ALL, NULL,
                            &out, &n, err, sizeof(err));
        ok(rc == -1 && out == NULL && strstr(err, "invalid UTF-8") != NULL,
           "invalid UTF-8 #%zu rejected (%s)", i, err);
    }
    rc = llmc_normalize(S("a\xff"), 0, NULL, &out, &n, err, sizeof(err));
    is_int(rc, -1, "invalid UTF-8 rejected with steps 0 too");
    is_str(norm("\xef\xbf\xbd x", LLMC_NORM_ALL, NULL), "\xef\xbf\xbd x",
           "an encoded U+FFFD is valid text and stays");
    is_str(norm("", LLMC_NORM_ALL, NULL), "", "empty input");
}


static int
count_negations(const llmc_dict_t *d, const char *text)
{
    char  buf[4096], *p, *save;
    int   n = 0;

    snprintf(buf, sizeof(buf), "%s", text);
    for (p = strtok_r(buf, " ", &save); p; p = strtok_r(NULL, " ", &save)) {
        n += llmc_dict_is_negation(d, S(p));
    }
    return n;
}


static void
test_korean(const llmc_dict_t *ko)
{
    const char  *base = "파스타 레시피 알려줘";

    if (ko == NULL) {
        ok(0, "ko.dict loads");
        return;
    }
    is_str(norm(base, LLMC_NORM_ALL, ko), "파스타 레시피 알려 줘",
           "ko: canonical form, the ending split off");
    ok(same(base, "파스타 레시피 좀 알려주세요", ko), "ko: 좀 + 주세요");
    ok(same(base, "파스타 레시피 가르쳐줘", ko), "ko: 가르쳐줘");
    ok(same(base, "파스타  레시피  알려 주세요!", ko),
       "ko: spaces, split ending, punctuation");
    ok(same(base, "파스타 레시피 설명해 주시면 좋겠어요", ko) == 0,
       "ko: unlisted ending stays different");
    ok(same("이 문장 번역해주세요", "이 문장 번역해 줘", ko)
       && same("이 문장 번역해줄래?", "이 문장 번역해줘", ko),
       "ko: [endings] apply to any verb");
    ok(same("물 좀 주세요", "물줘", ko), "ko: an ending alone and a filler");
    ok(!same("안 줘", "줘", ko) && !same("안줘", "줘", ko),
       "ko: an ending keeps the negation before it");
    ok(same("지우지 말아주세요", "지우지 말아 줘", ko)
       && !same("지우지 말아주세요", "지워 줘", ko),
       "ko: 말아주세요 = 말아 줘, still a negation");
    ok(count_negations(ko, norm("지우지 말아주세요", LLMC_NORM_ALL, ko)) == 1,
       "ko: the split exposes the cue 말아");
    ok(same(base, "혹시 파스타 레시피 설명해주실래요?", ko),
       "ko: 혹시 + 설명해주실래요");
    ok(same(base, "파스타 레시피 알려 좀 주세요", ko),
       "ko: a filler inside a phrase");
    ok(!same("그냥 먹어도 돼?", "먹어도 돼?", ko), "ko: [keep] 그냥 먹어도");
    ok(same("그냥 파스타 레시피 알려줘", base, ko), "ko: 그냥 as a filler");
    ok(same(base, "파스타 레시피 알려 좀 그냥 혹시 주세요", ko),
       "ko: three fillers inside a phrase");
    is_str(norm("알려 좀 좀 좀 좀 주세요", LLMC_NORM_ALL, ko), "알려 줘",
           "ko: more fillers go in one pass, the phrase matches in the next");
    {
        size_t  k, n = 50000;
        char   *big = malloc(n * 4 + 16);

        strcpy(big, "알려");
        for (k = 0; k < n; k++) {
            strcat(big + 6 + (k ? (k - 1) * 4 : 0), " 좀");
        }
        is_str(norm(big, LLMC_NORM_ALL, ko), "알려",
               "ko: 50k fillers in a row are dropped");
        free(big);
    }
    ok(same(base, "ＰＡＳＴＡ", ko) == 0, "ko: sanity, different text");
    ok(!same(base, "맛있는 파스타 레시피 알려줘", ko),
       "ko: a modifier that changes meaning stays");
    ok(!same("2FA 켜는 법", "2FA 끄지 않는 법", ko), "ko: negation differs");
    ok(!same("2FA 켜는 법", "2FA 안 켜는 법", ko), "ko: 안 differs");
    is_str(norm("좀 안 켜는 법", LLMC_NORM_ALL, ko), "안 켜는 법",
           "ko: 안 is never dropped");
    ok(!same("3인분 레시피", "5인분 레시피", ko), "ko: numbers differ");
    ok(same("파스타 뭐예요?", "파스타 뭐야", ko), "ko: question ending");
    ok(same("ㅋㅋ 파스타 뭐야", "파스타 뭐야", ko),
       "ko: compatibility jamo laughter dropped after NFKC");
    ok(llmc_dict_is_negation(ko, S("안")), "ko: 안 is a negation cue");
    ok(llmc_dict_is_negation(ko, S("않는")), "ko: 않는 is a negation cue");
    ok(!llmc_dict_is_negation(ko, S("파스타")), "ko: 파스타 is not");
    ok(!llmc_dict_is_negation(ko, S("\xff")), "ko: bad UTF-8 is not");
}


static void
test_english(const llmc_dict_t *en)
{
    const char  *base = "how do i reset my password";

    if (en == NULL) {
        ok(0, "en.dict loads");
        return;
    }
    is_str(norm("How do I reset my password?", LLMC_NORM_ALL, en), base,
           "en: canonical form");
    is_str(norm("how do i reset my password", LLMC_NORM_ALL, en), base,
           "en: lower case, no mark");
    is_str(norm("Please, how do I reset my password?", LLMC_NORM_ALL, en),
           base, "en: please");
    is_str(norm("Could you tell me how do I reset my password",
                LLMC_NORM_ALL, en), base, "en: could you tell me");
    is_str(norm("Could you please tell me how I can reset my password?",
                LLMC_NORM_ALL, en),
           "how i can reset my password", "en: filler inside a frame");
    is_str(norm("ＨＯＷ ＤＯ Ｉ ＲＥＳＥＴ ＭＹ ＰＡＳＳＷＯＲＤ？",
                LLMC_NORM_ALL, en), base, "en: full width");
    ok(same("How can I reset my password?", base, en), "en: how can i");
    ok(!same("how do I not reset my password", base, en), "en: not differs");
    ok(!same("don't", "do", en), "en: don't vs do");
    ok(same("I don't know", "i do not know", en), "en: don't = do not");
    ok(!same("3.5", "35", en), "en: 3.5 vs 35");
    ok(same("1,000 users", "1000 users", en), "en: 1,000 = 1000");
    ok(!same("C++", "C", en), "en: C++ vs C");
    ok(!same("C#", "C", en), "en: C# vs C");
    ok(!same("2+2", "22", en), "en: 2+2 vs 22");
    ok(!same("2*(3+4)", "2*3+4", en), "en: brackets in arithmetic");
    ok(!same("50% off", "50 off", en), "en: percent");
    ok(same("What's an API?", "what is an API", en), "en: what's");
    ok(!same("Explain it simply", "Explain it", en),
       "en: simply is not a filler");
    is_str(norm("Do you know how to change my card PIN?", LLMC_NORM_ALL, en),
           "how do i change my card pin", "en: rules compose over passes");
    ok(!same("Do you know what you're doing?", "what you're doing", en),
           "en: do you know what is not a frame");
    ok(!same("not just cats", "not cats", en), "en: [keep] not just");
    ok(!same("Is it just me?", "is it me", en), "en: [keep] just me");
    ok(same("Just tell me the time", "the time", en),
       "en: just and tell me dropped elsewhere");
    ok(llmc_dict_is_negation(en, S("not")), "en: not is a negation cue");
    ok(llmc_dict_is_negation(en, S("Don’t")),
       "en: Don’t is one, after normalization");
    ok(!llmc_dict_is_negation(en, S("do")), "en: do is not");
}


static void
test_cjk(const llmc_dict_t *d)
{
    static const char  *texts[] = {
        "東京都に住んでいます", "我想学习中文", "ひらがなとカタカナ",
        "北京是中国的首都", "파스타레시피",
    };
    const char         *out;
    char                flat[1024];
    size_t              i, j, k;

    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        out = norm(texts[i], LLMC_NORM_ALL, d);
        for (j = 0, k = 0; out[j] && k < sizeof(flat) - 1; j++) {
            if (out[j] != ' ') {
                flat[k++] = out[j];
            }
        }
        flat[k] = '\0';
        is_str(flat, texts[i], "cjk: no character lost in '%s' -> '%s'",
               texts[i], out);
    }
    ok(strchr(norm("東京都に住んでいます", LLMC_NORM_ALL, d), ' ') != NULL,
       "cjk: Japanese is segmented into words");
    ok(strchr(norm("我想学习中文", LLMC_NORM_ALL, d), ' ') != NULL,
       "cjk: Chinese is segmented into words");
    is_str(norm("I love 🍕 and 👨‍👩‍👧!", LLMC_NORM_ALL, d),
           "i love 🍕 and 👨‍👩‍👧", "emoji and ZWJ sequences kept");
    ok(!same("파스타 🍕", "파스타", d), "an emoji changes the key");
}


static void
test_format(void)
{
    static const char  *doc =
        "# comment\n"
        "[synonyms]            # canonical = variant | variant ...\n"
        "알려줘 = 알려주세요 | 알려 주세요 | 가르쳐줘 | 가르쳐 주세요 | "
        "설명해줘\n"
        "\n"
        "[drop]                # fillers\n"
        "  좀\r\n"
        "please\n"
        "c# = sharp\n";
    llmc_dict_t        *d;
    char                err[512], line[5000], path[64];
    int                 rc, fd;
    FILE               *f;

    /* the example of docs/dictionary.md, with one mistake on line 8 */
    dict_error(doc, "t.dict:8: '=' in [drop]", "'=' outside [synonyms]");

    d = llmc_dict_new();
    rc = llmc_dict_load_buf(d, doc, strlen(doc) - strlen("c# = sharp\n"),
                            "t.dict", err, sizeof(err));
    is_int(rc, 0, "format: comments, inline comments, CRLF, indentation");
    is_str(norm("Please 좀 가르쳐 주세요!", LLMC_NORM_ALL, d), "알려줘",
           "format: entries normalized at load time");
    llmc_dict_free(d);

    dict_error("좀\n", "t.dict:1: rule outside any section",
               "rule outside any section");
    dict_error("[drop]\nx\n[fillers]\n", "t.dict:3: unknown section",
               "unknown section");
    dict_error("[drop\n", "t.dict:1: a section header must end with ']'",
               "unterminated header");
    dict_error("[synonyms]\n = a | b\n", "t.dict:2: empty canonical",
               "empty canonical");
    dict_error("[synonyms]\n!!! = a\n", "t.dict:2: empty canonical",
               "canonical empty after normalization");
    dict_error("[synonyms]\na = b || c\n", "t.dict:2: empty variant",
               "empty variant");
    dict_error("[synonyms]\na b\n", "t.dict:2: expected \"canonical =",
               "synonym without '='");
    dict_error("[synonyms]\na = b = c\n", "t.dict:2: more than one '='",
               "two '='");
    dict_error("[synonyms]\na | b = c\n", "t.dict:2: '|' before '='",
               "two canonical forms");
    dict_error("[drop]\nx | | y\n", "t.dict:2: empty entry", "empty entry");
    dict_error("[negation]\ndo not\n",
               "t.dict:2: a negation cue must be one word",
               "negation phrase");
    dict_error("# ok\n[drop]\nx\xff\n", "t.dict:3: invalid UTF-8",
               "invalid UTF-8");
    dict_error("[drop]\n\xed\xa0\x80\n", "t.dict:2: invalid UTF-8",
               "UTF-8 surrogate");
    memset(line, 'a', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\0';
    memcpy(line, "[drop]\n", 7);
    dict_error(line, "t.dict:2: line too long", "line too long");
    dict_error("[negation]\n안\n[drop]\n좀 | 안\n",
               "t.dict:4: rule would drop the negation cue \"안\"",
               "a negation cue cannot be dropped");
    dict_error("[drop]\nnot\n[negation]\nnot\n",
               "t.dict:2: rule would drop the negation cue \"not\"",
               "checked after the whole file");
    dict_error("[synonyms]\nrecipe = 3 recipes\n",
               "t.dict:2: rule would change the number \"3\"",
               "a synonym cannot drop a number");
    dict_error("[synonyms]\n3인분 = 5인분\n",
               "t.dict:2: rule would change the number \"5\"",
               "a synonym cannot change a number");
    dict_error("[drop]\nfirst 1\n",
               "t.dict:2: rule would drop the number \"1\"",
               "a drop rule cannot hold a number");

    d = llmc_dict_new();
    rc = llmc_dict_load_buf(d, S("[negation]\nnot | don't\n[synonyms]\n"
                                 "do not = don't\n"), "a", err, sizeof(err));
    is_int(rc, 0, "a negation cue may become another");
    is_str(norm("I DON'T", LLMC_NORM_ALL, d), "i do not",
           "a negation cue rewritten");
    llmc_dict_free(d);
    dict_error("[negation]\nnot\n[synonyms]\ndo not = do\n",
               "t.dict:4: rule would change the negation cue \"not\"",
               "a synonym cannot add a negation");

    /* [keep] shields its words; rules apply until nothing changes */
    d = llmc_dict_new();
    rc = llmc_dict_load_buf(d, S("[drop]\njust\n[keep]\nnot just\n"
                                 "[synonyms]\nb = a\nc = b x\n"),
                            "k", err, sizeof(err));
    is_int(rc, 0, "[keep] loads");
    is_str(norm("just not just a x", LLMC_NORM_ALL, d), "not just c",
           "[keep] and chained rules");
    llmc_dict_free(d);
    d = llmc_dict_new();
    rc = llmc_dict_load_buf(d, S("[synonyms]\nb = a\na = b\n"), "cycle",
                            err, sizeof(err));
    is_str(norm("a b", LLMC_NORM_ALL, d), "a b",
           "a rule cycle ends after four passes");
    llmc_dict_free(d);
    dict_error("[keep]\nx = y\n", "t.dict:2: '=' in [keep]", "'=' in [keep]");

    /* [endings]: errors, and endings loaded later apply to earlier rules */
    dict_error("[endings]\n줘 = 주 세요\n", "t.dict:2: an ending must be one word",
               "ending variant of two words");
    dict_error("[endings]\n주 세요 = 줘\n",
               "t.dict:2: an ending must be one word",
               "canonical ending of two words");
    dict_error("[endings]\n줘\n", "t.dict:2: expected \"canonical =",
               "ending without '='");
    dict_error("[endings]\n줘 = 안\n[negation]\n안\n",
               "t.dict:2: the ending \"안\" is a negation cue",
               "an ending cannot be a negation cue");
    d = llmc_dict_new();
    rc = llmc_dict_load_buf(d, S("[synonyms]\n알려줘 = 가르쳐주세요\n"), "s",
                            err, sizeof(err));
    is_str(norm("가르쳐 주세요", LLMC_NORM_ALL, d), "가르쳐 주세요",
           "before [endings]: a split ending does not match");
    rc |= llmc_dict_load_buf(d, S("[endings]\n줘 = 주세요\n"), "e",
                             err, sizeof(err));
    is_int(rc, 0, "[endings] in a later file loads");
    is_str(norm("가르쳐 주세요", LLMC_NORM_ALL, d), "알려 줘",
           "after: the earlier rule is rebuilt with the ending");
    is_str(norm("가르쳐주세요", LLMC_NORM_ALL, d), "알려 줘",
           "after: and matches the glued spelling");
    llmc_dict_free(d);

    /* files merge in order, later variants override */
    d = llmc_dict_new();
    rc = llmc_dict_load_buf(d, S("[synonyms]\nhi = hello | hey\n"
                                 "[drop]\nwell\n"), "a", err, sizeof(err));
    rc |= llmc_dict_load_buf(d, S("[synonyms]\ngreetings = hey\n"
                                  "fine = well\n"), "b",
                             err, sizeof(err));
    is_int(rc, 0, "two buffers load");
    is_str(norm("Hello! Hey? well, hello", LLMC_NORM_ALL, d),
           "hi greetings fine hi", "later files add and override");
    llmc_dict_free(d);

    /* the fingerprint follows the rules as normalized, not the text */
    {
        llmc_dict_t  *x = llmc_dict_new(), *y = llmc_dict_new();
        llmc_dict_t  *z = llmc_dict_new();
        uint64_t      e = llmc_dict_fingerprint(x);

        ok(e != llmc_dict_fingerprint(NULL)
           && llmc_dict_fingerprint(NULL) == llmc_dict_fingerprint(NULL),
           "fingerprint: an empty dictionary (it splits words) differs "
           "from none");
        llmc_dict_load_buf(x, S("[drop]\nplease # polite\n"), "x", err,
                           sizeof(err));
        llmc_dict_load_buf(y, S("# other words\n[drop]\n  PLEASE!\n"), "y",
                           err, sizeof(err));
        llmc_dict_load_buf(z, S("[drop]\nplz\n"), "z", err, sizeof(err));
        ok(llmc_dict_fingerprint(x) != e, "fingerprint: a rule changes it");
        ok(llmc_dict_fingerprint(x) == llmc_dict_fingerprint(y),
           "fingerprint: comments and spelling of an entry do not");
        ok(llmc_dict_fingerprint(x) != llmc_dict_fingerprint(z),
           "fingerprint: another entry does");
        llmc_dict_load_buf(z, S("[negation]\nnot\n"), "z2", err,
                           sizeof(err));
        ok(llmc_dict_fingerprint(z) != llmc_dict_fingerprint(x)
           && llmc_dict_fingerprint(z) != llmc_dict_fingerprint(y),
           "fingerprint: negation cues count");
        llmc_dict_free(x);
        llmc_dict_free(y);
        llmc_dict_free(z);
    }

    /* load_file: errors name the path */
    d = llmc_dict_new();
    rc = llmc_dict_load_file(d, "/nonexistent/x.dict", err, sizeof(err));
    ok(rc == -1 && strncmp(err, "/nonexistent/x.dict: ", 21) == 0,
       "missing file: %s", err);
    snprintf(path, sizeof(path), "/tmp/llmc-dict-XXXXXX");
    fd = mkstemp(path);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f != NULL) {
        fputs("[drop]\nok\n\n[oops]\n", f);
        fclose(f);
    }
    rc = llmc_dict_load_file(d, path, err, sizeof(err));
    snprintf(line, sizeof(line), "%s:4: unknown section", path);
    ok(rc == -1 && strncmp(err, line, strlen(line)) == 0,
       "file error names file:line: %s", err);
    unlink(path);
    llmc_dict_free(d);
}


/* Threads share one dictionary; each has its own ICU word iterator. */
typedef struct {
    const llmc_dict_t  *d;
    const char         *const *in;
    const char         *const *want;
    int                 n;
    int                 bad;
} thr_t;


static void *
thr_run(void *arg)
{
    thr_t   *t = arg;
    char    *out, err[256];
    size_t   n;
    int      i, k;

    for (i = 0; i < 500; i++) {
        for (k = 0; k < t->n; k++) {
            if (llmc_normalize(t->in[k], strlen(t->in[k]), LLMC_NORM_ALL,
                               t->d, &out, &n, err, sizeof(err)) != 0)
            {
                t->bad++;
                continue;
            }
            t->bad += strcmp(out, t->want[k]) != 0;
            free(out);
        }
    }
    return NULL;
}


static void
test_threads(const llmc_dict_t *d)
{
    static const char  *in[] = {
        "東京都に住んでいます", "파스타 레시피 좀 알려주세요", "C++ (2+2)?",
        "Could you please tell me how do I reset my password?",
    };
    char               *want[4];
    pthread_t           th[4];
    thr_t               t[4];
    int                 i, bad = 0, started = 0;

    for (i = 0; i < 4; i++) {
        want[i] = strdup(norm(in[i], LLMC_NORM_ALL, d));
    }
    for (i = 0; i < 4; i++) {
        t[i].d = d;
        t[i].in = in;
        t[i].want = (const char *const *) want;
        t[i].n = 4;
        t[i].bad = 0;
        started += pthread_create(&th[i], NULL, thr_run, &t[i]) == 0;
    }
    for (i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        bad += t[i].bad;
    }
    ok(started == 4 && bad == 0,
       "4 threads x 2000 prompts on one dictionary: same results");
    for (i = 0; i < 4; i++) {
        free(want[i]);
    }
}


static double
now_ns(void)
{
    struct timespec  ts;

    /* CPU time: the machine may be busy with other work */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}


static void
bench(const llmc_dict_t *d, const char *what, const char *text)
{
    char    *out, err[256];
    size_t   n;
    double   t0;
    int      i, iters = 20000, bad = 0;

    t0 = now_ns();
    for (i = 0; i < iters; i++) {
        if (llmc_normalize(text, strlen(text), LLMC_NORM_ALL, d, &out, &n,
                           err, sizeof(err)) != 0)
        {
            bad++;
            continue;
        }
        free(out);
    }
    printf("# diag: normalize %s prompt (%zu bytes, all steps): %.0f ns "
           "CPU\n", what, strlen(text), (now_ns() - t0) / iters);
    ok(bad == 0, "bench: %s prompt normalizes", what);
}


typedef struct {
    char  *plain;                /* all steps, no rules */
    char  *full;                 /* all steps and rules */
    int    set;
} row_t;


static int
row_cmp(const void *a, const void *b)
{
    return strcmp(((const row_t *) a)->full, ((const row_t *) b)->full);
}


static void
digits(const char *s, char *out, size_t size)
{
    size_t  k = 0;

    for ( ; *s && k < size - 1; s++) {
        if (*s >= '0' && *s <= '9') {
            out[k++] = *s;
        }
    }
    out[k] = '\0';
}


/* Over public paraphrase data (paraKQC: sets of ten paraphrases of one
 * question): numbers and negation cues survive the dictionaries, and the
 * dictionaries merge no two lines of different sets that the plain steps
 * keep apart. */
static void
test_shared(const llmc_dict_t *d)
{
    const char   *shared;
    char          path[4096], line[4096], *text, da[64], db[64];
    FILE         *f;
    int           n = 0, digits_lost = 0, neg_lost = 0, i, j, k;
    int           merged = 0, merged_plain = 0, wrong = 0;
    llmc_dict_t  *none;
    row_t        *rows = NULL, *r;

    shared = getenv("LLMCACHE_SHARED");
    snprintf(path, sizeof(path), "%s/datasets/ko-parakqc/"
             "paraKQC_sets_0000-0699.txt", shared ? shared : "../shared");
    f = fopen(path, "r");
    if (f == NULL) {
        printf("# skipped: %s not found (set LLMCACHE_SHARED)\n", path);
        return;
    }
    none = llmc_dict_new();
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        text = strrchr(line, '\t');
        text = text ? text + 1 : line;
        r = realloc(rows, sizeof(row_t) * (size_t) (n + 1));
        if (r == NULL) {
            break;
        }
        rows = r;
        r = &rows[n];
        r->set = n / 10;
        n++;

        /* the digits of NFKC(text) all come out, in order */
        digits(norm(text, LLMC_NORM_NFKC, NULL), da, sizeof(da));
        r->full = strdup(norm(text, LLMC_NORM_ALL, d));
        r->plain = strdup(norm(text, LLMC_NORM_ALL, none));
        digits(r->full, db, sizeof(db));
        digits_lost += strcmp(da, db) != 0;

        /* no negation cue lost to the rules (splitting an ending off
         * may expose one: 말아줘 -> 말아 줘) */
        if (count_negations(d, r->plain) > count_negations(d, r->full)) {
            neg_lost++;
            printf("#   negation cue lost: %s -> %s\n", text, r->full);
        }
    }
    fclose(f);
    llmc_dict_free(none);

    qsort(rows, (size_t) n, sizeof(row_t), row_cmp);
    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && strcmp(rows[i].full, rows[j].full) == 0;
             j++)
        {
            /* void */
        }
        for (k = i; k < j; k++) {
            for (int l = k + 1; l < j; l++) {
                if (rows[k].set == rows[l].set) {
                    merged++;
                    merged_plain += strcmp(rows[k].plain, rows[l].plain)
                                    == 0;
                } else if (strcmp(rows[k].plain, rows[l].plain) != 0) {
                    wrong++;
                    printf("#   merged across sets: '%s' / '%s'\n",
                           rows[k].plain, rows[l].plain);
                }
            }
        }
    }
    printf("# diag: paraKQC %d lines: %d same-set pairs share a key "
           "(%d without the rules)\n", n, merged, merged_plain);
    for (i = 0; i < n; i++) {
        free(rows[i].full);
        free(rows[i].plain);
    }
    free(rows);

    ok(n == 7000, "paraKQC: %d lines read", n);
    is_int(digits_lost, 0, "paraKQC: every number survives");
    is_int(neg_lost, 0, "paraKQC: every negation cue survives");
    is_int(wrong, 0, "paraKQC: the rules merge no lines of different sets");
}


/* Pairs that must stay apart (PAWS-X label 0: same words, other meaning;
 * SICK contradictions): the rules merge none that the plain steps keep
 * apart.  Tab-separated, columns a, b and the label. */
static void
test_pairs(const llmc_dict_t *d, const char *file, int ca, int cb, int cl,
    const char *apart)
{
    const char   *shared;
    char          path[4096], line[8192], *c[8], *p, x[4096];
    FILE         *f;
    int           k, n = 0, merged = 0;
    llmc_dict_t  *none;

    shared = getenv("LLMCACHE_SHARED");
    snprintf(path, sizeof(path), "%s/datasets/%s",
             shared ? shared : "../shared", file);
    f = fopen(path, "r");
    if (f == NULL) {
        printf("# skipped: %s not found (set LLMCACHE_SHARED)\n", path);
        return;
    }
    none = llmc_dict_new();
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        for (k = 0, p = line; k < 8 && p != NULL; k++) {
            c[k] = p;
            p = strchr(p, '\t');
            if (p != NULL) {
                *p++ = '\0';
            }
        }
        if (k <= ca || k <= cb || k <= cl || strcmp(c[cl], apart) != 0) {
            continue;
        }
        n++;
        snprintf(x, sizeof(x), "%s", norm(c[ca], LLMC_NORM_ALL, d));
        if (strcmp(x, norm(c[cb], LLMC_NORM_ALL, d)) != 0) {
            continue;
        }
        snprintf(x, sizeof(x), "%s", norm(c[ca], LLMC_NORM_ALL, none));
        if (strcmp(x, norm(c[cb], LLMC_NORM_ALL, none)) != 0) {
            merged++;
            printf("#   merged: '%s' / '%s'\n", c[ca], c[cb]);
        }
    }
    fclose(f);
    llmc_dict_free(none);
    ok(n > 100, "%s: %d pairs labelled %s", file, n, apart);
    is_int(merged, 0, "%s: the rules merge none of them", file);
}


int
main(int argc, char **argv)
{
    llmc_dict_t  *ko, *en, *both;
    char          err[512], path[8192];
    int           i;

    (void) argc;
    find_dictdir(argv[0]);

    test_steps();
    test_invalid();

    ko = load("ko.dict");
    en = load("en.dict");
    test_korean(ko);
    test_english(en);

    both = load("ko.dict");
    snprintf(path, sizeof(path), "%s/en.dict", dictdir);
    ok(both != NULL
       && llmc_dict_load_file(both, path, err, sizeof(err)) == 0,
       "ko.dict and en.dict merge");
    if (both != NULL) {
        test_cjk(both);
        ok(same("파스타 레시피 좀 알려주세요", "파스타 레시피 알려줘", both)
           && same("Please, how do I reset my password?",
                   "how do i reset my password", both),
           "merged dictionaries keep both languages' rules");
        bench(both, "Korean",
              "혹시 집에서 30분 안에 간단하게 만들 수 있는 토마토 크림 "
              "파스타 레시피를 좀 자세히 알려주세요!");
        bench(both, "English",
              "Could you please tell me how do I reset my password today?");
        test_threads(both);
        test_shared(both);
        test_pairs(both, "ko-pawsx/dev_2k.tsv", 1, 2, 3, "0");
        test_pairs(both, "en-sick/SICK_train.txt", 1, 2, 4,
                   "CONTRADICTION");
    }
    test_format();

    llmc_dict_free(ko);
    llmc_dict_free(en);
    llmc_dict_free(both);
    for (i = 0; i < 16; i++) {
        free(ring[i]);
    }
    return done_testing();
}
