/*
 * Semantic cache guards on prompts normalized with the shipped
 * dictionaries: negation on one side, opposite words, numbers, and a
 * configured entity list with its reader's bad-input checks.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "testutil.h"
#include "llmc_embed.h"
#include "llmc_guard.h"
#include "llmc_normalize.h"

#define S(s)  s, sizeof(s) - 1


static llmc_dict_t  *dict;




static char *
norm(const char *s, size_t *n)
{
    char  *out, err[256];

    if (llmc_normalize(s, strlen(s), LLMC_NORM_ALL, dict, &out, n, err,
                       sizeof(err)) != 0)
    {
        printf("# normalize: %s\n", err);
        *n = 0;
        return strdup("");
    }
    return out;
}


/* the guard's verdict on two raw prompts: NULL when they pass */
static const char *
check(const char *a, const char *b, const llmc_entities_t *ents,
    unsigned guards)
{
    char        *na, *nb;
    size_t       la, lb;
    const char  *why = "unset";
    int          rc;

    na = norm(a, &la);
    nb = norm(b, &lb);
    rc = llmc_guard_check_ex(na, la, nb, lb, dict, ents, guards, &why);
    free(na);
    free(nb);
    if (rc != (why != NULL)) {
        return "inconsistent";
    }
    return why;
}


#define blocks(a, b, want)                                                   \
    is_str(check(a, b, NULL, LLMC_GUARD_ALL), want,                          \
           "blocked (%s): %s / %s", want, a, b)

#define passes(a, b)                                                         \
    ok(check(a, b, NULL, LLMC_GUARD_ALL) == NULL, "passes: %s / %s", a, b)


static void
test_flags(void)
{
    is_int(llmc_guard_flag(S("negation")), LLMC_GUARD_NEGATION, "negation");
    is_int(llmc_guard_flag(S("numbers")), LLMC_GUARD_NUMBERS, "numbers");
    is_int(llmc_guard_flag(S("entities")), LLMC_GUARD_ENTITIES, "entities");
    is_int(llmc_guard_flag(S("all")), LLMC_GUARD_ALL, "all");
    is_int(llmc_guard_flag(S("number")), 0, "unknown name");
    is_int(llmc_guard_flag(S("negationx")), 0, "longer name");
}


static void
test_issue_pairs(void)
{
    float   va[LLMC_EMBED_DIM_DEFAULT], vb[LLMC_EMBED_DIM_DEFAULT];
    char   *a, *b;
    size_t  la, lb;

    blocks("2FA 켜는 법 알려줘", "2FA 끄지 않는 법 알려줘", "negation");
    blocks("how to enable 2FA", "how to not enable 2FA", "negation");
    blocks("3인분 파스타 레시피", "5인분 파스타 레시피", "numbers");

    passes("맛있는 파스타 레시피 알려줘", "파스타 레시피 좀 알려주세요");
    a = norm("맛있는 파스타 레시피 알려줘", &la);
    b = norm("파스타 레시피 좀 알려주세요", &lb);
    llmc_embed_builtin(a, la, va, LLMC_EMBED_DIM_DEFAULT);
    llmc_embed_builtin(b, lb, vb, LLMC_EMBED_DIM_DEFAULT);
    ok(llmc_cosine(va, vb, LLMC_EMBED_DIM_DEFAULT)
       >= LLMC_SEMANTIC_THRESHOLD_DEFAULT,
       "and the canonical pair is above the default threshold");
    free(a);
    free(b);
}


static void
test_negation(void)
{
    blocks("how do I delete my account", "how do I not delete my account",
           "negation");
    blocks("I want to cancel", "I don't want to cancel", "negation");
    blocks("a man is playing a guitar", "no man is playing a guitar",
           "negation");
    blocks("coffee with sugar", "coffee without sugar", "negation");
    blocks("cats can climb trees", "cats can't climb trees", "negation");
    blocks("메일 열어봐", "메일 열어보지 마", "negation");
    blocks("메일 열어봐", "메일은 절대 열어보지마", "negation");
    blocks("메일 지워 줘", "메일 지우지 말고 둬", "negation");
    blocks("비밀번호 바꿔도 돼", "비밀번호 바꾸면 안 돼", "negation");
    blocks("약 먹어도 돼", "약 못 먹어", "negation");
    blocks("주차 가능한 곳", "주차 없는 곳", "negation");
    blocks("설탕 넣은 커피", "설탕 없이 커피", "negation");
    blocks("앱이 켜져", "앱이 켜지지 않아", "negation");

    passes("i don't like spicy food", "i do not like spicy food");
    passes("메일 열어보지 마", "메일 열어보지 말아 줘");
    passes("안녕하세요 파스타 추천", "안녕하세요 파스타 추천해 줘");
    passes("안내 데스크 위치", "안내 데스크 어디야");

    /* opposite words flip the question as a negation does */
    blocks("how to enable 2FA", "how to disable 2FA", "negation");
    blocks("how do I lock my card", "how do I unlock my card", "negation");
    blocks("increase font size", "decrease font size", "negation");
    blocks("조명 켜는 법", "조명 끄는 법", "negation");
    blocks("알림 허용 방법", "알림 차단 방법", "negation");
    passes("how to disable 2FA", "how can I disable 2FA");
    passes("open and close the door", "close and open the door");

    ok(check("how to enable 2FA", "how to not enable 2FA", NULL,
             LLMC_GUARD_NUMBERS | LLMC_GUARD_ENTITIES) == NULL,
       "the negation guard off lets a negation through");
}


static void
test_numbers(void)
{
    blocks("1.5 liters of water", "15 liters of water", "numbers");
    blocks("3.5 vs 3.50", "3.5 vs 3.5", "numbers");
    blocks("파스타 레시피", "3인분 파스타 레시피", "numbers");
    blocks("2FA 설정", "3FA 설정", "numbers");
    blocks("the 2nd track of the 5th single",
           "the 5th track of the 2nd single", "numbers");
    blocks("10:30 meeting", "11:30 meeting", "numbers");
    blocks("price in 2023", "price in 2024", "numbers");

    blocks("3인분 파스타", "3명 파스타", "numbers");
    blocks("50% 할인", "50 할인", "numbers");
    blocks("5 kg of rice", "5 lb of rice", "numbers");
    passes("50% 할인 쿠폰", "50 % 할인 쿠폰");
    passes("2FA 켜는 법", "2FA 켜는 법 알려줘");
    passes("3인분 파스타", "3인분을 위한 파스타");
    passes("iphone 15 price", "iphone 15 price please");
    passes("1,000 won", "1000 won");

    ok(check("3인분 파스타 레시피", "5인분 파스타 레시피", NULL,
             LLMC_GUARD_NEGATION) == NULL,
       "the numbers guard off lets other numbers through");
}


static void
test_entities(void)
{
    llmc_entities_t  *e;
    char              err[256];
    const char       *why;

    e = llmc_entities_new();
    ok(e != NULL, "entity list");
    is_int(llmc_entities_load_buf(e, S(
        "# cities\n"
        "서울 | Seoul\n"
        "부산 | Busan   # a comment\n"
        "New York | NYC\n"
        "\n"
        "c# | C Sharp\n"), "ents", err, sizeof(err)), 0, "list loads");

    is_str(check("서울 날씨 알려줘", "부산 날씨 알려줘", e, LLMC_GUARD_ALL),
           "entities", "different cities blocked");
    ok(check("서울 날씨", "seoul 날씨", e, LLMC_GUARD_ALL) == NULL,
       "aliases are one entity");
    ok(check("서울에서 맛집", "서울 맛집", e, LLMC_GUARD_ALL) == NULL,
       "a particle after the entity");
    ok(check("weather in new york", "weather in NYC", e,
             LLMC_GUARD_ALL) == NULL, "a phrase entity and its alias");
    is_str(check("weather in new york", "weather in york", e,
                 LLMC_GUARD_ALL), "entities", "a part of a phrase is not it");
    is_str(check("서울 맛집", "맛집", e, LLMC_GUARD_ALL), "entities",
           "an entity on one side only");
    ok(check("c# tutorial", "c sharp tutorial", e, LLMC_GUARD_ALL) == NULL,
       "an entry with '#' is not a comment");
    ok(check("서울 날씨 알려줘", "부산 날씨 알려줘", e,
             LLMC_GUARD_NEGATION | LLMC_GUARD_NUMBERS) == NULL,
       "the entities guard off");
    is_int(llmc_guard_check(S("서울 날씨"), S("부산 날씨"), dict,
                            LLMC_GUARD_ALL, &why), 0,
           "no list: the entities guard does not block");

    is_int(llmc_entities_load_buf(e, S("대구\n 광주 || 목포\n"), "bad",
                                  err, sizeof(err)), -1, "empty alias");
    is_str(err, "bad:2: empty entity", "names file and line");
    is_int(llmc_entities_load_buf(e, S("ok\n!!!\n"), "bad", err,
                                  sizeof(err)), -1, "punctuation only");
    is_str(err, "bad:2: empty entity", "is empty after normalization");
    is_int(llmc_entities_load_buf(e, S("ok\n\xff\xfe\n"), "bad", err,
                                  sizeof(err)), -1, "invalid UTF-8");
    ok(strncmp(err, "bad:2: ", 7) == 0, "names the line: %s", err);
    is_int(llmc_entities_load_buf(e, "a\0b\n", 4, "bad", err, sizeof(err)),
           -1, "NUL byte");
    is_str(err, "bad:1: NUL byte", "NUL byte message");
    {
        char  *big = malloc(5000);

        memset(big, 'a', 5000);
        is_int(llmc_entities_load_buf(e, big, 5000, "bad", err,
                                      sizeof(err)), -1, "long line");
        is_str(err, "bad:1: line too long (more than 4096 bytes)",
               "long line message");
        free(big);
    }
    is_int(llmc_entities_load_file(e, "/nonexistent/ents.txt", err,
                                   sizeof(err)), -1, "missing file");
    ok(strncmp(err, "/nonexistent/ents.txt: ", 23) == 0,
       "names the path: %s", err);

    llmc_entities_free(e);
    llmc_entities_free(NULL);
}


static void
test_edges(void)
{
    const char  *why = "unset";

    is_int(llmc_guard_check("", 0, "", 0, NULL, LLMC_GUARD_ALL, &why), 0,
           "two empty prompts pass");
    ok(why == NULL, "why is NULL when nothing blocks");
    is_int(llmc_guard_check(S("not this"), S("this"), NULL, LLMC_GUARD_ALL,
                            NULL), 1, "built-in cues without a dictionary");
    is_int(llmc_guard_check(S("not this"), S("this"), NULL, 0, &why), 0,
           "all guards off");
}


int
main(int argc, char **argv)
{
    (void) argc;
    dict = test_load_dicts(argv[0]);
    test_flags();
    test_issue_pairs();
    test_negation();
    test_numbers();
    test_entities();
    test_edges();
    llmc_dict_free(dict);
    return done_testing();
}
