/*
 * Builtin embedding (determinism, shape, similarity on the canonical
 * pairs after normalization with the shipped dictionaries) and the
 * /v1/embeddings request body and answer parser, bad answers included.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "testutil.h"
#include "llmc_embed.h"
#include "llmc_normalize.h"

#define S(s)  s, sizeof(s) - 1
#define DIM   LLMC_EMBED_DIM_DEFAULT


static llmc_dict_t  *dict;




/* normalizes with all steps and the dictionaries, then embeds */
static void
embed(const char *text, float *v)
{
    char    *out, err[256];
    size_t   n;

    if (llmc_normalize(text, strlen(text), LLMC_NORM_ALL, dict, &out, &n,
                       err, sizeof(err)) != 0)
    {
        printf("# normalize: %s\n", err);
        memset(v, 0, DIM * sizeof(float));
        return;
    }
    if (llmc_embed_builtin(out, n, v, DIM) != 0) {
        memset(v, 0, DIM * sizeof(float));
    }
    free(out);
}


static float
sim(const char *a, const char *b)
{
    float  va[DIM], vb[DIM];

    embed(a, va);
    embed(b, vb);
    return llmc_cosine(va, vb, DIM);
}


static double
norm2(const float *v, int dim)
{
    double  s = 0;
    int     i;

    for (i = 0; i < dim; i++) {
        s += (double) v[i] * v[i];
    }
    return s;
}


static void
test_hash(void)
{
    /* the layout of stored vectors depends on it: pinned */
    ok(llmc_embed_hash("", 0) == 0xf52a15e9a9b5e89bULL, "hash of nothing");
    ok(llmc_embed_hash("a", 1) == 0x02c0bdbf481420f8ULL, "hash of a");
    ok(llmc_embed_hash(S("파스타")) == 0xe9af01248ce9cbb7ULL,
       "hash of UTF-8 bytes");
}


static void
test_builtin(void)
{
    float   a[DIM], b[DIM], big[1024];
    int     i, same, nz;

    is_int(llmc_embed_builtin(S("x"), a, 8), -1, "dim below the minimum");
    is_int(llmc_embed_builtin(S("x"), a, LLMC_EMBED_DIM_MAX + 1), -1,
           "dim above the maximum");
    is_int(llmc_embed_builtin(S("ab \xff cd"), a, DIM), -1,
           "invalid UTF-8 is refused");
    is_int(llmc_embed_builtin(S("\xed\xa0\x80"), a, DIM), -1,
           "a surrogate is refused");
    is_int(llmc_embed_builtin(S("\xe3\x81"), a, DIM), -1,
           "a truncated sequence is refused");

    is_int(llmc_embed_builtin("", 0, a, DIM), 0, "empty text embeds");
    ok(norm2(a, DIM) == 0.0, "to a zero vector");
    is_int(llmc_embed_builtin(S("   "), a, DIM), 0, "spaces only embed");
    ok(norm2(a, DIM) == 0.0, "to a zero vector too");

    is_int(llmc_embed_builtin(S("파스타 레시피 알려 줘"), a, DIM), 0,
           "Korean text embeds");
    ok(fabs(norm2(a, DIM) - 1.0) < 1e-5, "L2-normalized");
    llmc_embed_builtin(S("파스타 레시피 알려 줘"), b, DIM);
    same = memcmp(a, b, sizeof(a)) == 0;
    ok(same, "the same text gives the same vector, bit for bit");
    ok(fabsf(llmc_cosine(a, b, DIM) - 1.0f) < 1e-5, "cosine with itself");

    nz = 0;
    for (i = 0; i < DIM; i++) {
        nz += a[i] != 0.0f;
    }
    ok(nz > 10, "features spread over the dimensions (%d non-zero)", nz);

    is_int(llmc_embed_builtin(S("파스타 레시피 알려 줘"), big, 1000), 0,
           "any dim in range works (1000)");
    ok(fabs(norm2(big, 1000) - 1.0) < 1e-5, "and is L2-normalized");

    llmc_embed_builtin(S("日本語の文章です"), a, DIM);
    ok(fabs(norm2(a, DIM) - 1.0) < 1e-5, "CJK without spaces embeds");

    /* order matters through the bigrams */
    llmc_embed_builtin(S("kim 은 lee 에게 졌다"), a, DIM);
    llmc_embed_builtin(S("lee 은 kim 에게 졌다"), b, DIM);
    ok(llmc_cosine(a, b, DIM) < 0.9f,
       "swapped roles are not near duplicates (%.3f)",
       llmc_cosine(a, b, DIM));
}


static void
test_similarity(void)
{
    float  c;

    c = sim("맛있는 파스타 레시피 알려줘", "파스타 레시피 좀 알려주세요");
    ok(c >= LLMC_SEMANTIC_THRESHOLD_DEFAULT,
       "the canonical Korean pair is above the default threshold (%.3f)",
       c);
    c = sim("What is the capital of France?",
            "Tell me the capital of France");
    ok(c >= LLMC_SEMANTIC_THRESHOLD_DEFAULT,
       "an English rewording is above it (%.3f)", c);
    c = sim("How do I cancel my subscription?",
            "How can I cancel the subscription?");
    ok(c >= LLMC_SEMANTIC_THRESHOLD_DEFAULT,
       "so is a change of function words (%.3f)", c);

    c = sim("파스타 레시피 알려줘", "김치찌개 끓이는 법 알려줘");
    ok(c < 0.6f, "another dish is far (%.3f)", c);
    c = sim("How do I reset my password?", "What is the capital of France?");
    ok(c < 0.3f, "an unrelated question is far (%.3f)", c);
    c = sim("how to enable 2FA", "how to not enable 2FA");
    ok(c < LLMC_SEMANTIC_THRESHOLD_DEFAULT,
       "an added negation lowers the similarity below the threshold "
       "(%.3f)", c);
}


static void
test_request(void)
{
    char    *body;
    size_t   n;

    body = llmc_embed_request("text-embedding-3-small", S("파스타 \"레시피\""),
                              &n);
    is_str(body, "{\"model\":\"text-embedding-3-small\",\"input\":"
           "\"파스타 \\\"레시피\\\"\",\"encoding_format\":\"float\"}",
           "request body with model, escaped input");
    is_int(n, body ? strlen(body) : 0, "its length");
    free(body);

    body = llmc_embed_request(NULL, S("hi"), &n);
    is_str(body, "{\"input\":\"hi\",\"encoding_format\":\"float\"}",
           "request body without model");
    free(body);

    body = llmc_embed_request("m", "a\0b", 3, &n);
    is_str(body, "{\"model\":\"m\",\"input\":\"a\\u0000b\","
           "\"encoding_format\":\"float\"}", "a NUL byte is escaped");
    free(body);

    ok(llmc_embed_request("m", S("\xc3\x28"), &n) == NULL,
       "invalid UTF-8 input gives no body");
}


/* base64 of little-endian float32 values */
static void
b64(const float *v, int n, char *out)
{
    static const char  tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char      bytes[64];
    uint32_t           u, x;
    int                i, j, nb = 4 * n;

    for (i = 0; i < n; i++) {
        memcpy(&u, &v[i], 4);
        for (j = 0; j < 4; j++) {
            bytes[4 * i + j] = (unsigned char) (u >> (8 * j));
        }
    }
    for (i = 0; i < nb; i += 3) {
        x = (uint32_t) bytes[i] << 16;
        x |= i + 1 < nb ? (uint32_t) bytes[i + 1] << 8 : 0;
        x |= i + 2 < nb ? bytes[i + 2] : 0;
        *out++ = tab[x >> 18];
        *out++ = tab[(x >> 12) & 63];
        *out++ = i + 1 < nb ? tab[(x >> 6) & 63] : '=';
        *out++ = i + 2 < nb ? tab[x & 63] : '=';
    }
    *out = '\0';
}


static int
parse_fails(const char *json, const char *want, const char *what)
{
    float  *v = (float *) 1;
    int     dim = 7, rc;
    char    err[256] = "";

    rc = llmc_embed_parse(json, strlen(json), &v, &dim, err, sizeof(err));
    if (!ok(rc == -1 && v == NULL && dim == 0 && strstr(err, want),
            "bad answer refused: %s", what))
    {
        printf("#   err: %s\n", err);
    }
    if (rc == 0) {
        free(v);
    }
    return rc;
}


static void
test_parse(void)
{
    static const float  three[3] = { 3.0f, 0.0f, -4.0f };
    float               *v;
    int                  dim;
    char                 err[256], json[512], enc[64];

    strcpy(json, "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\","
           "\"index\":0,\"embedding\":[3, 0.0, -4e0]}],\"model\":\"m\"}");
    is_int(llmc_embed_parse(json, strlen(json), &v, &dim, err, sizeof(err)),
           0, "float array parsed");
    is_int(dim, 3, "its dimension");
    ok(v && fabsf(v[0] - 0.6f) < 1e-6f && v[1] == 0.0f
       && fabsf(v[2] + 0.8f) < 1e-6f, "L2-normalized: 0.6 0 -0.8");
    free(v);

    b64(three, 3, enc);
    snprintf(json, sizeof(json), "{\"data\":[{\"embedding\":\"%s\"}]}", enc);
    is_int(llmc_embed_parse(json, strlen(json), &v, &dim, err, sizeof(err)),
           0, "base64 parsed (%s)", enc);
    is_int(dim, 3, "its dimension");
    ok(v && fabsf(v[0] - 0.6f) < 1e-6f && fabsf(v[2] + 0.8f) < 1e-6f,
       "same values as the float array");
    free(v);

    /* the same without padding, URL alphabet irrelevant here */
    enc[strcspn(enc, "=")] = '\0';
    snprintf(json, sizeof(json), "{\"data\":[{\"embedding\":\"%s\"}]}", enc);
    is_int(llmc_embed_parse(json, strlen(json), &v, &dim, err, sizeof(err)),
           0, "base64 without padding parsed");
    is_int(dim, 3, "its dimension");
    free(v);

    parse_fails("{\"data\":[{\"embedding\":[1,2]}", "bad JSON",
                "truncated JSON");
    parse_fails("[1,2,3]", "not a JSON object", "an array");
    parse_fails("{\"error\":{\"message\":\"model not found\"}}",
                "model not found", "an error answer names its message");
    parse_fails("{\"object\":\"list\"}", "no \"data\"", "no data");
    parse_fails("{\"data\":[]}", "exactly one", "no embedding");
    parse_fails("{\"data\":[{\"embedding\":[1]},{\"embedding\":[1]}]}",
                "exactly one", "two embeddings");
    parse_fails("{\"data\":{\"embedding\":[1]}}", "exactly one",
                "data not an array");
    parse_fails("{\"data\":[{\"vector\":[1]}]}", "must be an array",
                "no embedding member");
    parse_fails("{\"data\":[{\"embedding\":[]}]}", "0 values",
                "an empty embedding");
    parse_fails("{\"data\":[{\"embedding\":[1,\"2\"]}]}", "not a number",
                "a string among the values");
    parse_fails("{\"data\":[{\"embedding\":[1,null]}]}", "not a number",
                "null among the values");
    parse_fails("{\"data\":[{\"embedding\":[0,0,0]}]}", "all zero",
                "an all-zero embedding");
    parse_fails("{\"data\":[{\"embedding\":[1,1e300]}]}", "out of range",
                "a value beyond float");
    parse_fails("{\"data\":[{\"embedding\":[1],\"embedding\":[2]}]}",
                "bad JSON", "duplicate keys");
    parse_fails("{\"data\":[{\"embedding\":\"AA*AAA==\"}]}",
                "bad base64 character", "a bad base64 character");
    parse_fails("{\"data\":[{\"embedding\":\"AAAAA\"}]}",
                "bad base64 length", "a bad base64 length");
    parse_fails("{\"data\":[{\"embedding\":\"AAA=\"}]}",
                "whole number of float32", "base64 of 2 bytes");
    parse_fails("{\"data\":[{\"embedding\":\"\"}]}",
                "whole number of float32", "empty base64");
    parse_fails("{\"data\":[{\"embedding\":\"AAAAAB==\"}]}",
                "padding bits", "base64 with stray low bits");
    /* 0x7f800000: +inf */
    parse_fails("{\"data\":[{\"embedding\":\"AACAfw==\"}]}", "not finite",
                "base64 of infinity");
    parse_fails("{\"data\":[{\"embedding\":\"AADAfw==\"}]}", "not finite",
                "base64 of NaN");
    parse_fails("{\"data\":[{\"embedding\":7}]}", "must be an array",
                "a number as the embedding");

    {
        /* more values than allowed */
        size_t  n = 3 + (size_t) (LLMC_EMBED_DIM_MAX + 1) * 2 + 8, k;
        char   *big = malloc(n + 64), *p;

        p = big + sprintf(big, "{\"data\":[{\"embedding\":[");
        for (k = 0; k <= LLMC_EMBED_DIM_MAX; k++) {
            p += sprintf(p, k ? ",1" : "1");
        }
        strcpy(p, "]}]}");
        parse_fails(big, "values (1..", "too many values");
        free(big);
    }
}


int
main(int argc, char **argv)
{
    (void) argc;
    dict = test_load_dicts(argv[0]);
    test_hash();
    test_builtin();
    test_similarity();
    test_request();
    test_parse();
    llmc_dict_free(dict);
    return done_testing();
}
