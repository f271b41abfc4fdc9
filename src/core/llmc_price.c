/*
 * Prices and the cost of a response's usage.
 *
 * USD per million tokens.  Checked against the providers' pricing pages as
 * quoted in public references; prices change, so operators override them
 * with llmcache_price.  A negative field in an operator's entry means
 * "derive it": cached 0.1x input (Anthropic) or 0.5x (OpenAI), 5-minute
 * write 1.25x, 1-hour write 2x.
 */

#include <string.h>

#include "llmc_price.h"
#include "llmc_rewrite.h"     /* llmc_glob_match */

static const llmc_price_t  llmc_price_table[] = {
    /* OpenAI: cache writes cost plain input */
    { "gpt-4o*", 2.50, 1.25, 0, 0, 10.00 },
    { "gpt-4o-mini*", 0.15, 0.075, 0, 0, 0.60 },
    { "o1*", 15.00, 7.50, 0, 0, 60.00 },
    { "o1-preview*", 15.00, 7.50, 0, 0, 60.00 },
    { "o1-mini*", 3.00, 1.50, 0, 0, 12.00 },
    { "o3*", 2.00, 0.50, 0, 0, 8.00 },
    { "o3-mini*", 1.10, 0.55, 0, 0, 4.40 },
    { "o4-mini*", 1.10, 0.275, 0, 0, 4.40 },
    { "gpt-4.1*", 2.00, 0.50, 0, 0, 8.00 },
    { "gpt-4.1-mini*", 0.40, 0.10, 0, 0, 1.60 },
    { "gpt-4.1-nano*", 0.10, 0.025, 0, 0, 0.40 },
    { "gpt-5*", 1.25, 0.125, 0, 0, 10.00 },
    { "gpt-5-mini*", 0.25, 0.025, 0, 0, 2.00 },
    { "gpt-5-nano*", 0.05, 0.005, 0, 0, 0.40 },
    /* later gpt-5.x point releases are priced differently (e.g. 1.75 /
     * 0.175 / 14 for gpt-5.2 in some references); unsure, so they fall
     * back to gpt-5* until an operator sets them */

    /* Anthropic: input, read 0.1x, write 1.25x (5m) / 2x (1h), output */
    { "claude-3-5-sonnet*", 3.00, 0.30, 3.75, 6.00, 15.00 },
    { "claude-3-7-sonnet*", 3.00, 0.30, 3.75, 6.00, 15.00 },
    { "claude-sonnet-4*", 3.00, 0.30, 3.75, 6.00, 15.00 },
    { "claude-3-haiku*", 0.25, 0.03, 0.30, 0.50, 1.25 },
    { "claude-3-5-haiku*", 0.80, 0.08, 1.00, 1.60, 4.00 },
    { "claude-haiku-4*", 1.00, 0.10, 1.25, 2.00, 5.00 },
    { "claude-3-opus*", 15.00, 1.50, 18.75, 30.00, 75.00 },
    { "claude-opus-4*", 15.00, 1.50, 18.75, 30.00, 75.00 },
    /* Opus 4.5 and later dropped to 5 / 25 */
    { "claude-opus-4-5*", 5.00, 0.50, 6.25, 10.00, 25.00 },
    { "claude-opus-4-6*", 5.00, 0.50, 6.25, 10.00, 25.00 },
    { "claude-opus-4-7*", 5.00, 0.50, 6.25, 10.00, 25.00 },
};


static const llmc_price_t *
llmc_price_match(const llmc_price_t *t, size_t n, const char *model)
{
    size_t               i, l, best_len = 0;
    const llmc_price_t  *best = NULL;

    for (i = 0; i < n; i++) {
        if (t[i].pattern == NULL) {
            continue;
        }
        l = strlen(t[i].pattern);
        if ((best == NULL || l > best_len)
            && llmc_glob_match(t[i].pattern, model))
        {
            best = &t[i];
            best_len = l;
        }
    }
    return best;
}


const llmc_price_t *
llmc_price_find(const llmc_price_t *user, size_t n_user, const char *model)
{
    const llmc_price_t  *p;

    if (model == NULL) {
        return NULL;
    }
    if (user != NULL && (p = llmc_price_match(user, n_user, model))) {
        return p;
    }
    return llmc_price_match(llmc_price_table,
                            sizeof(llmc_price_table)
                            / sizeof(llmc_price_table[0]), model);
}


const llmc_price_t *
llmc_price_builtin(size_t *n)
{
    *n = sizeof(llmc_price_table) / sizeof(llmc_price_table[0]);
    return llmc_price_table;
}


static double
llmc_price_or(double v, double input, double factor)
{
    return v < 0 ? input * factor : v;
}


void
llmc_cost(const llmc_price_t *p, const llmc_usage_t *u,
    int provider_anthropic, llmc_cost_t *c)
{
    double  in, cached, w5, w1, full;

    c->cost = 0;
    c->saved = 0;
    if (p == NULL || u == NULL) {
        return;
    }
    in = p->input;
    cached = llmc_price_or(p->cached, in, provider_anthropic ? 0.1 : 0.5);
    /* OpenAI bills no cache writes: they are plain input */
    w5 = provider_anthropic ? llmc_price_or(p->write_5m, in, 1.25) : in;
    w1 = provider_anthropic ? llmc_price_or(p->write_1h, in, 2.0) : in;
    if (provider_anthropic && w5 == 0 && in > 0) {
        w5 = in * 1.25;
    }
    if (provider_anthropic && w1 == 0 && in > 0) {
        w1 = in * 2.0;
    }

    c->cost = ((double) u->input * in + (double) u->cached * cached
               + (double) u->cache_write_5m * w5
               + (double) u->cache_write_1h * w1
               + (double) u->output * p->output) / 1e6;
    full = llmc_cost_full(p, u);
    c->saved = full - c->cost;
}


double
llmc_cost_full(const llmc_price_t *p, const llmc_usage_t *u)
{
    if (p == NULL || u == NULL) {
        return 0;
    }
    return ((double) (u->input + u->cached + u->cache_write_5m
                      + u->cache_write_1h) * p->input
            + (double) u->output * p->output) / 1e6;
}
