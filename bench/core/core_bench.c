/*
 * core_bench: what one cache lookup costs in src/core, step by step, on a
 * typical chat request: parse, normalize, keys, entry decode, and for a
 * client that asked for a stream the entry's replay as server-sent events
 * (and the same answer's as an Anthropic message).
 * The figures say where a HIT's CPU time goes inside the module.  Then the steps a
 * SEMANTIC hit adds: the built-in embedding, its LSH signature, and per
 * candidate the cosine with the stored int8 vector (llmc_vec_cosine, no
 * decoding) and the guards.
 *
 * The iterations run in five rounds and each step reports its best round:
 * the machine may be shared, and a round that lost the CPU says nothing
 * about the code.  Keys are shown twice: with the scope seen just before
 * (llmc_key_make() remembers recent scope hashes, the usual HIT) and with
 * a scope it has not seen (eight tenants in turn, more than it remembers).
 *
 *   build/bench/core_bench [ITERATIONS] [DICT ...]
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llmc_request.h"
#include "llmc_normalize.h"
#include "llmc_key.h"
#include "llmc_entry.h"
#include "llmc_embed.h"
#include "llmc_guard.h"
#include "llmc_lsh.h"
#include "llmc_stream.h"

static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

#define ROUNDS  5

/* one replay of a stored answer as SSE: its time in seconds */
static double
replay(int path, llmc_api_e api, const char *body, size_t len, size_t *out)
{
    char    *sse, err[256];
    double   t0 = now();

    sse = llmc_stream_replay_by(path, api, body, len, 1, 16, out, err,
                                sizeof(err));
    if (sse == NULL) {
        fprintf(stderr, "core_bench: %s\n", err);
        exit(1);
    }
    free(sse);
    return now() - t0;
}

static void
best(double *b, double t)
{
    if (*b == 0 || t < *b) {
        *b = t;
    }
}

int
main(int argc, char **argv)
{
    int             i, k, n, round, per;
    char            err[256], *norm, *val, tenant[32];
    size_t          norm_len, val_len, rep_len[4];
    double          t0, t_parse, t_norm, t_key, t_key_new, t_dec, t_rep[4];
    double          b_parse = 0, b_norm = 0, b_key = 0, b_key_new = 0;
    double          b_dec = 0, b_rep[4] = { 0 };
    double          t_emb, t_sign, t_cos, t_guard;
    double          b_emb = 0, b_sign = 0, b_cos = 0, b_guard = 0;
    float           vec[LLMC_EMBED_DIM_DEFAULT];
    float           sim = 0, c;
    uint32_t        sig[LLMC_LSH_BANDS_MAX];
    char           *stored, *snorm;
    size_t          stored_len, snorm_len, text_len;
    const char     *text;
    llmc_lsh_t      lsh;
    llmc_key_t      key;
    llmc_dict_t    *dict;
    llmc_entry_t    entry;
    llmc_request_t  req;

    static const char body[] =
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\","
        "\"content\":\"You are a helpful cooking assistant.\"},"
        "{\"role\":\"user\",\"content\":\"파스타 레시피 좀 알려주세요\"}],"
        "\"temperature\":0.7}";
    static const char message[] =
        "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\","
        "\"model\":\"claude-sonnet-4-5\",\"content\":[{\"type\":\"text\","
        "\"text\":\"Boil the pasta, then ...\"}],\"stop_reason\":"
        "\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":"
        "20,\"output_tokens\":30}}";
    static const char stored_prompt[] = "맛있는 파스타 레시피 알려줘";
    static const char answer[] =
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
        "\"content\":\"Boil the pasta, then ...\"},\"finish_reason\":"
        "\"stop\"}],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":"
        "30,\"total_tokens\":50}}";

    n = argc > 1 ? atoi(argv[1]) : 20000;
    if (n <= 0) {
        n = 20000;
    }

    dict = llmc_dict_new();
    for (i = 2; i < argc; i++) {
        if (llmc_dict_load_file(dict, argv[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "core_bench: %s\n", err);
            return 1;
        }
    }

    val = llmc_entry_encode("application/json", 16, "chat", "gpt-4o", 1,
                            answer, sizeof(answer) - 1, &val_len);

    /* the stored neighbour of the pasta pair, as the index keeps it */
    if (llmc_normalize(stored_prompt, sizeof(stored_prompt) - 1,
                       LLMC_NORM_ALL, dict, &snorm, &snorm_len, err,
                       sizeof(err)) != 0
        || llmc_embed_builtin(snorm, snorm_len, vec, LLMC_EMBED_DIM_DEFAULT)
           != 0
        || llmc_lsh_init(&lsh, LLMC_EMBED_DIM_DEFAULT, LLMC_LSH_BANDS_DEFAULT,
                         LLMC_LSH_BITS_DEFAULT, LLMC_LSH_SEED_DEFAULT) != 0)
    {
        fprintf(stderr, "core_bench: semantic set-up failed %s\n", err);
        return 1;
    }
    stored = llmc_vec_encode(vec, LLMC_EMBED_DIM_DEFAULT, snorm, snorm_len,
                             &stored_len);

    per = n / ROUNDS > 0 ? n / ROUNDS : 1;
    n = per * ROUNDS;

    for (round = 0; round < ROUNDS; round++) {
        t_parse = t_norm = t_key = t_key_new = t_dec = 0;
        memset(t_rep, 0, sizeof(t_rep));
        t_emb = t_sign = t_cos = t_guard = 0;

        for (i = 0; i < per; i++) {
            t0 = now();
            memset(&req, 0, sizeof(req));
            if (llmc_request_parse(&req, LLMC_API_CHAT, body, sizeof(body) - 1,
                                   err, sizeof(err))
                != 0)
            {
                fprintf(stderr, "core_bench: %s\n", err);
                return 1;
            }
            t_parse += now() - t0;

            t0 = now();
            if (llmc_normalize(req.prompt, req.prompt_len, LLMC_NORM_ALL, dict,
                               &norm, &norm_len, err, sizeof(err))
                != 0)
            {
                fprintf(stderr, "core_bench: %s\n", err);
                return 1;
            }
            t_norm += now() - t0;

            t0 = now();
            llmc_key_make(&key, "Bearer sk-bench", 15, &req, norm, norm_len);
            t_key += now() - t0;

            t0 = now();
            if (llmc_entry_decode(&entry, val, val_len, err, sizeof(err))
                != 0)
            {
                fprintf(stderr, "core_bench: %s\n", err);
                return 1;
            }
            t_dec += now() - t0;

            /* as the module replays them (16 code points per piece), and
             * through jansson's tree alone */
            for (k = 0; k < 4; k++) {
                t_rep[k] += replay(k & 1 ? LLMC_REPLAY_TREE : LLMC_REPLAY_ANY,
                                   k < 2 ? LLMC_API_CHAT : LLMC_API_MESSAGES,
                                   k < 2 ? entry.body : message,
                                   k < 2 ? entry.body_len
                                         : sizeof(message) - 1,
                                   &rep_len[k]);
            }

            t0 = now();
            llmc_embed_builtin(norm, norm_len, vec, LLMC_EMBED_DIM_DEFAULT);
            t_emb += now() - t0;

            t0 = now();
            llmc_lsh_sign(&lsh, vec, sig);
            t_sign += now() - t0;

            t0 = now();
            c = llmc_vec_cosine(vec, stored, stored_len,
                                LLMC_EMBED_DIM_DEFAULT, &text, &text_len);
            if (c == -2.0f) {
                fprintf(stderr, "core_bench: stored vector\n");
                return 1;
            }
            sim += c;
            t_cos += now() - t0;

            t0 = now();
            llmc_guard_check(norm, norm_len, text, text_len, dict,
                             LLMC_GUARD_ALL, NULL);
            t_guard += now() - t0;

            if (i + 1 < per) {
                free(norm);
                llmc_request_free(&req);
            }
        }

        /* keys of scopes not seen just before: a separate loop, so that
         * these do not push the usual one out */
        for (i = 0; i < per; i++) {
            snprintf(tenant, sizeof(tenant), "Bearer sk-bench-%d", i % 8);
            t0 = now();
            llmc_key_make(&key, tenant, strlen(tenant), &req, norm, norm_len);
            t_key_new += now() - t0;
        }
        free(norm);
        llmc_request_free(&req);

        best(&b_parse, t_parse / per);
        best(&b_norm, t_norm / per);
        best(&b_key, t_key / per);
        best(&b_key_new, t_key_new / per);
        best(&b_dec, t_dec / per);
        for (k = 0; k < 4; k++) {
            best(&b_rep[k], t_rep[k] / per);
        }
        best(&b_emb, t_emb / per);
        best(&b_sign, t_sign / per);
        best(&b_cos, t_cos / per);
        best(&b_guard, t_guard / per);
    }

    printf("| step (%d iterations, best of %d rounds) | ns per call |\n"
           "|---|---|\n", n, ROUNDS);
    printf("| request parse + scope JSON | %.0f |\n", b_parse * 1e9);
    printf("| normalize (all steps%s) | %.0f |\n",
           argc > 2 ? ", dictionaries" : "", b_norm * 1e9);
    printf("| keys (SHA-256), scope seen before | %.0f |\n", b_key * 1e9);
    printf("| keys (SHA-256), new scope | %.0f |\n", b_key_new * 1e9);
    printf("| entry decode | %.0f |\n", b_dec * 1e9);
    printf("| total (keys: scope seen before) | %.0f |\n",
           (b_parse + b_norm + b_key + b_dec) * 1e9);
    printf("| a stream asked for: the entry replayed as SSE (%zu bytes) "
           "| %.0f |\n", rep_len[0], b_rep[0] * 1e9);
    printf("| the same, through jansson's tree of the answer | %.0f |\n",
           b_rep[1] * 1e9);
    printf("| the same answer as an Anthropic message, replayed (%zu bytes) "
           "| %.0f |\n", rep_len[2], b_rep[2] * 1e9);
    printf("| the same, through jansson's tree of the answer | %.0f |\n",
           b_rep[3] * 1e9);

    printf("\n| a SEMANTIC hit adds (dim %d, %d bands x %d bits) | ns per "
           "call |\n|---|---|\n", LLMC_EMBED_DIM_DEFAULT,
           LLMC_LSH_BANDS_DEFAULT, LLMC_LSH_BITS_DEFAULT);
    printf("| built-in embedding | %.0f |\n", b_emb * 1e9);
    printf("| LSH signature | %.0f |\n", b_sign * 1e9);
    printf("| per candidate: cosine with the stored int8 vector | %.0f |\n",
           b_cos * 1e9);
    printf("| per candidate: guards (all) | %.0f |\n", b_guard * 1e9);
    printf("| total, one candidate (similarity %.3f) | %.0f |\n",
           sim / n, (b_emb + b_sign + b_cos + b_guard) * 1e9);

    free(stored);
    free(snorm);
    llmc_lsh_free(&lsh);
    free(val);
    llmc_dict_free(dict);
    return 0;
}
