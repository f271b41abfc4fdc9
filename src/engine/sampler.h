/*
 * Token sampling: greedy (temperature 0), temperature, top-k and top-p
 * over one row of logits, with a seeded PRNG so that the same seed gives
 * the same ids. Nothing is allocated per call.
 */

#ifndef LLMC_SAMPLER_H
#define LLMC_SAMPLER_H

#include <stdint.h>

typedef struct {
    float     temperature;      /* 0: greedy */
    int       top_k;            /* <= 0: off */
    float     top_p;            /* <= 0 or >= 1: off */
    uint64_t  seed;
} sampler_params_t;

typedef struct sampler sampler_t;

sampler_t *sampler_new(const sampler_params_t *p, int n_vocab);
int32_t sampler_sample(sampler_t *s, float *logits);    /* may modify logits */
void sampler_free(sampler_t *s);

#endif /* LLMC_SAMPLER_H */
