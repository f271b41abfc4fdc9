/*
 * libFuzzer target for the prompt normalizer and the dictionary reader.
 * The first byte picks the mode: high bit set, the rest is a dictionary
 * file; otherwise its low five bits are the steps and the rest is a
 * prompt, normalized against a small built-in dictionary.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llmc_normalize.h"


#define S_PROMPT                                                          \
    "혹시 파스타 좀 알려 주세요! Please tell me how to use C++, don't 3.5"


static const char  fuzz_dict[] =
    "[negation]\n안 | 않는 | not | don't\n"
    "[drop]\n좀 | 혹시 | please | just | tell me | ^^\n"
    "[synonyms]\n"
    "알려줘 = 알려주세요 | 알려 주세요 | 가르쳐줘 | 설명해 줘\n"
    "how do i = how can i | how to\n"
    "do not = don't\n"
    "c plus plus = c++\n"
    "a = b\nb = a\n"
    "[keep]\nnot just | 그냥 둬\n"
    "[endings]\n줘 = 주세요 | 줄래\ns = 's\n";


static void
fuzz_check(const char *in, size_t len, unsigned steps, const char *out,
    size_t n)
{
    char    *again, err[256];
    size_t   m, i;

    /* the output is valid UTF-8 */
    if (llmc_normalize(out, n, 0, NULL, &again, &m, err, sizeof(err)) != 0
        || m != n || memcmp(again, out, n) != 0)
    {
        abort();
    }
    free(again);

    if (steps == 0 && (n != len || memcmp(in, out, n) != 0)) {
        abort();
    }

    /* white space collapsed and trimmed, whatever came after */
    if (steps & LLMC_NORM_SPACE) {
        if (n > 0 && (out[0] == ' ' || out[n - 1] == ' ')) {
            abort();
        }
        for (i = 1; i < n; i++) {
            if (out[i] == ' ' && out[i - 1] == ' ') {
                abort();
            }
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static llmc_dict_t  *dict;
    llmc_dict_t         *d;
    const char          *in;
    char                *out, err[256];
    size_t               n;
    unsigned             steps;

    if (dict == NULL) {
        dict = llmc_dict_new();
        if (dict == NULL
            || llmc_dict_load_buf(dict, fuzz_dict, sizeof(fuzz_dict) - 1,
                                  "fuzz", err, sizeof(err)) != 0)
        {
            abort();
        }
    }
    if (size == 0) {
        return 0;
    }
    in = (const char *) data + 1;
    size--;

    if (data[0] & 0x80) {
        d = llmc_dict_new();
        if (d == NULL) {
            return 0;
        }
        if (llmc_dict_load_buf(d, in, size, "fuzz", err, sizeof(err)) == 0
            && llmc_normalize(S_PROMPT, sizeof(S_PROMPT) - 1, LLMC_NORM_ALL,
                              d, &out, &n, err, sizeof(err)) == 0)
        {
            fuzz_check(S_PROMPT, sizeof(S_PROMPT) - 1, LLMC_NORM_ALL, out, n);
            free(out);
        } else if (strchr(err, ':') == NULL) {
            abort();                /* every error names file:line */
        }
        llmc_dict_free(d);
        return 0;
    }

    steps = data[0] & LLMC_NORM_ALL;
    if (llmc_normalize(in, size, steps, dict, &out, &n, err, sizeof(err))
        == 0)
    {
        fuzz_check(in, size, steps, out, n);
        free(out);
    }
    return 0;
}
