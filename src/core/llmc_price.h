/*
 * Prices per model pattern and the cost of one response's token usage,
 * with what the provider-side prompt cache saved.  nginx-free.
 */

#ifndef LLMC_PRICE_H
#define LLMC_PRICE_H

#include <stddef.h>

#include "llmc_stream.h"      /* llmc_usage_t */

/* USD per million tokens.  cached: a cache read; write_5m / write_1h:
 * Anthropic cache writes (0 for OpenAI, whose writes cost input). */
typedef struct {
    const char  *pattern;     /* glob: "gpt-4o-mini*" */
    double       input;
    double       cached;
    double       write_5m;
    double       write_1h;
    double       output;
} llmc_price_t;

/* The price of model: user entries win, then the built-in table; in each
 * the longest matching pattern.  NULL when nothing matches. */
const llmc_price_t *llmc_price_find(const llmc_price_t *user, size_t n_user,
    const char *model);

/* The built-in table and its length. */
const llmc_price_t *llmc_price_builtin(size_t *n);

typedef struct {
    double  cost;             /* USD of this usage */
    double  saved;            /* USD the provider's cache saved vs none */
} llmc_cost_t;

/* saved = cost of all prompt tokens at the input price - cost.  It is
 * negative when cache writes cost more than they saved so far. */
void llmc_cost(const llmc_price_t *p, const llmc_usage_t *u,
    int provider_anthropic, llmc_cost_t *c);

/* What a whole response would have cost (a cache HIT of ours avoids it). */
double llmc_cost_full(const llmc_price_t *p, const llmc_usage_t *u);

#endif /* LLMC_PRICE_H */
