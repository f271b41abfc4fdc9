/*
 * libFuzzer target for the /v1/embeddings answer parser, plus the builtin
 * embedding, the stored-vector decoder and the guards (the bytes split at
 * the first newline into two prompts) on the same bytes: whatever comes
 * in, a parsed embedding is finite, in range and of unit length, and the
 * guards are symmetric.
 */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llmc_embed.h"
#include "llmc_guard.h"
#include "llmc_lsh.h"


static const char  fuzz_ents[] = "서울 | seoul\nnew york | nyc\nc#\n";
static llmc_entities_t  *ents;


static void
fuzz_unit(const float *v, int dim)
{
    double  s = 0.0;
    int     i;

    for (i = 0; i < dim; i++) {
        if (!isfinite(v[i])) {
            abort();
        }
        s += (double) v[i] * v[i];
    }
    if (fabs(s - 1.0) > 1e-3) {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    float        *v, e[64];
    const char   *text;
    size_t        tl;
    char          err[256];
    int           dim;

    if (llmc_embed_parse((const char *) data, size, &v, &dim, err,
                         sizeof(err)) == 0)
    {
        if (v == NULL || dim < 1 || dim > LLMC_EMBED_DIM_MAX) {
            abort();
        }
        fuzz_unit(v, dim);
        free(v);
    } else if (err[0] == '\0') {
        abort();            /* a failure always says why */
    }

    if (llmc_embed_builtin((const char *) data, size, e, 64) == 0) {
        for (dim = 0; dim < 64 && e[dim] == 0.0f; dim++) {
            /* all zero for text without words */
        }
        if (dim < 64) {
            fuzz_unit(e, 64);
        }
    }

    if (llmc_vec_decode((const char *) data, size, e, 16, &text, &tl) == 0) {
        if (text < (const char *) data || tl > size
            || text + tl != (const char *) data + size)
        {
            abort();
        }
        for (dim = 0; dim < 16; dim++) {
            if (!isfinite(e[dim])) {
                abort();
            }
        }
    }
    {
        /* the cosine without decoding: a cosine, or -2 exactly when the
         * decoder refuses the bytes too */
        static const float  q[16] = { 0.25f, 0.25f, 0.25f, 0.25f, 0.25f,
                                      0.25f, 0.25f, 0.25f, 0.25f, 0.25f,
                                      0.25f, 0.25f, 0.25f, 0.25f, 0.25f,
                                      0.25f };
        float               c;

        c = llmc_vec_cosine(q, (const char *) data, size, 16, NULL, NULL);
        if ((c == -2.0f) != (llmc_vec_decode((const char *) data, size, e,
                                             16, NULL, NULL) != 0)
            || (c != -2.0f && !(c >= -1.0001f && c <= 1.0001f)))
        {
            abort();
        }
    }
    if (ents == NULL) {
        ents = llmc_entities_new();
        if (ents == NULL
            || llmc_entities_load_buf(ents, fuzz_ents, sizeof(fuzz_ents) - 1,
                                      "fuzz", err, sizeof(err)) != 0)
        {
            abort();
        }
    }
    {
        const char  *a = (const char *) data, *nl, *w1, *w2;
        size_t       al, bl;

        nl = memchr(a, '\n', size);
        al = nl ? (size_t) (nl - a) : size;
        bl = nl ? size - al - 1 : 0;
        if (llmc_guard_check_ex(a, al, nl ? nl + 1 : a, bl, NULL, ents,
                                LLMC_GUARD_ALL, &w1)
            != llmc_guard_check_ex(nl ? nl + 1 : a, bl, a, al, NULL, ents,
                                   LLMC_GUARD_ALL, &w2)
            || (w1 == NULL) != (w2 == NULL))
        {
            abort();
        }
    }
    return 0;
}
