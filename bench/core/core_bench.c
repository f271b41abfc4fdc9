/*
 * core_bench: what one cache lookup costs in src/core, step by step, on a
 * typical chat request: parse, normalize, keys, entry decode.  The figures
 * say where a HIT's CPU time goes inside the module.
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

static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

#define ROUNDS  5

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
    int             i, n, round, per;
    char            err[256], *norm, *val, tenant[32];
    size_t          norm_len, val_len;
    double          t0, t_parse, t_norm, t_key, t_key_new, t_dec;
    double          b_parse = 0, b_norm = 0, b_key = 0, b_key_new = 0;
    double          b_dec = 0;
    llmc_key_t      key;
    llmc_dict_t    *dict;
    llmc_entry_t    entry;
    llmc_request_t  req;

    static const char body[] =
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\","
        "\"content\":\"You are a helpful cooking assistant.\"},"
        "{\"role\":\"user\",\"content\":\"파스타 레시피 좀 알려주세요\"}],"
        "\"temperature\":0.7}";
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

    per = n / ROUNDS > 0 ? n / ROUNDS : 1;
    n = per * ROUNDS;

    for (round = 0; round < ROUNDS; round++) {
        t_parse = t_norm = t_key = t_key_new = t_dec = 0;

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

    free(val);
    llmc_dict_free(dict);
    return 0;
}
