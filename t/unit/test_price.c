/*
 * The price table (patterns, longest match, operator entries first) and
 * the cost and savings of usage, also from real response bodies through
 * llmc_usage_parse().
 */

#include <math.h>
#include <string.h>

#include "tap.h"
#include "llmc_price.h"

#define near(a, b)  (fabs((a) - (b)) < 1e-9)

static void
is_price(const char *model, double in, double cached, double out)
{
    const llmc_price_t  *p = llmc_price_find(NULL, 0, model);

    if (!ok(p && near(p->input, in) && near(p->cached, cached)
            && near(p->output, out), "price of %s: %g / %g / %g", model,
            in, cached, out) && p)
    {
        printf("#   got %s: %g / %g / %g\n", p->pattern, p->input,
               p->cached, p->output);
    }
}

static void
test_table(void)
{
    const llmc_price_t  *p, *t;
    size_t               n, i;
    llmc_price_t         user[] = {
        { "gpt-4o*", 2.0, 1.0, 0, 0, 8.0 },
        { "my-model", 1.0, -1, -1, -1, 2.0 },
    };

    is_price("gpt-4o", 2.50, 1.25, 10);
    is_price("gpt-4o-2024-08-06", 2.50, 1.25, 10);
    is_price("gpt-4o-mini", 0.15, 0.075, 0.60);
    is_price("gpt-4o-mini-2024-07-18", 0.15, 0.075, 0.60);
    is_price("o1-preview", 15, 7.50, 60);
    is_price("o1-mini", 3, 1.50, 12);
    is_price("gpt-4.1-mini", 0.40, 0.10, 1.60);
    is_price("gpt-5", 1.25, 0.125, 10);
    is_price("o4-mini", 1.10, 0.275, 4.40);
    is_price("claude-3-5-sonnet-20241022", 3, 0.30, 15);
    is_price("claude-3-haiku-20240307", 0.25, 0.03, 1.25);
    is_price("claude-3-opus-20240229", 15, 1.50, 75);
    is_price("claude-sonnet-4-5-20250929", 3, 0.30, 15);
    is_price("claude-opus-4-1", 15, 1.50, 75);
    is_price("claude-opus-4-5-20251101", 5, 0.50, 25);
    is_price("claude-haiku-4-5", 1, 0.10, 5);

    p = llmc_price_find(NULL, 0, "claude-3-5-sonnet-latest");
    ok(p && near(p->write_5m, 3.75) && near(p->write_1h, 6.0),
       "claude-3-5-sonnet writes 3.75 (5m) and 6 (1h: 2x input)");
    p = llmc_price_find(NULL, 0, "claude-3-haiku");
    ok(p && near(p->write_5m, 0.30), "claude-3-haiku write 0.30");

    /* every Anthropic entry: 1h write 2x input; read 0.1x and 5m write
     * 1.25x except claude-3-haiku's published 0.03 / 0.30 */
    t = llmc_price_builtin(&n);
    for (i = 0; i < n; i++) {
        if (strncmp(t[i].pattern, "claude", 6) != 0) {
            ok(t[i].write_5m == 0 && t[i].write_1h == 0
               && t[i].cached < t[i].input, "%s: OpenAI shape",
               t[i].pattern);
        } else if (strcmp(t[i].pattern, "claude-3-haiku*") != 0) {
            ok(near(t[i].write_1h, 2 * t[i].input)
               && near(t[i].cached, 0.1 * t[i].input)
               && near(t[i].write_5m, 1.25 * t[i].input),
               "%s: multipliers", t[i].pattern);
        } else {
            ok(near(t[i].write_1h, 2 * t[i].input), "%s: 1h write 2x",
               t[i].pattern);
        }
    }

    ok(llmc_price_find(NULL, 0, "llama-3") == NULL, "unknown model: none");
    ok(llmc_price_find(NULL, 0, NULL) == NULL, "no model: none");
    p = llmc_price_find(user, 2, "gpt-4o-mini");
    ok(p == &user[0], "operator gpt-4o* wins over built-in gpt-4o-mini*");
    p = llmc_price_find(user, 2, "claude-3-opus");
    ok(p && near(p->input, 15), "operator table falls back to built-in");
    ok(llmc_price_find(user, 2, "my-model-2") == NULL,
       "operator pattern without * is the whole name");
}

static void
test_cost(void)
{
    llmc_cost_t          c;
    llmc_usage_t         u;
    llmc_price_t         derived = { "x", 2.0, -1, -1, -1, 10.0 };
    const llmc_price_t  *son = llmc_price_find(NULL, 0, "claude-3-5-sonnet");
    const llmc_price_t  *g4o = llmc_price_find(NULL, 0, "gpt-4o");

    /* OpenAI: 1000 uncached, 3000 cached, 200 out */
    memset(&u, 0, sizeof(u));
    u.input = 1000;
    u.cached = 3000;
    u.output = 200;
    llmc_cost(g4o, &u, 0, &c);
    ok(near(c.cost, (1000 * 2.50 + 3000 * 1.25 + 200 * 10.0) / 1e6),
       "gpt-4o cost %.9f", c.cost);
    ok(near(c.saved, 3000 * (2.50 - 1.25) / 1e6), "gpt-4o saved %.9f",
       c.saved);

    /* Anthropic: a 5m write costs more than it saves on first use */
    memset(&u, 0, sizeof(u));
    u.input = 50;
    u.cache_write_5m = 4000;
    u.output = 100;
    llmc_cost(son, &u, 1, &c);
    ok(near(c.cost, (50 * 3.0 + 4000 * 3.75 + 100 * 15.0) / 1e6),
       "sonnet write cost %.9f", c.cost);
    ok(near(c.saved, -4000 * 0.75 / 1e6), "sonnet write: negative saving");

    u.cache_write_5m = 0;
    u.cache_write_1h = 1000;
    u.cached = 4000;
    llmc_cost(son, &u, 1, &c);
    ok(near(c.cost, (50 * 3.0 + 1000 * 6.0 + 4000 * 0.30 + 100 * 15.0)
                    / 1e6), "sonnet read + 1h write cost %.9f", c.cost);
    ok(near(c.saved, (4000 * 2.70 - 1000 * 3.0) / 1e6),
       "sonnet read + 1h write saved %.9f", c.saved);
    ok(near(llmc_cost_full(son, &u), (5050 * 3.0 + 100 * 15.0) / 1e6),
       "full cost: every prompt token at input price");

    /* derived fields */
    memset(&u, 0, sizeof(u));
    u.cached = 1000000;
    llmc_cost(&derived, &u, 1, &c);
    ok(near(c.cost, 0.2), "derived: Anthropic read 0.1x");
    llmc_cost(&derived, &u, 0, &c);
    ok(near(c.cost, 1.0), "derived: OpenAI read 0.5x");
    u.cached = 0;
    u.cache_write_5m = 1000000;
    llmc_cost(&derived, &u, 1, &c);
    ok(near(c.cost, 2.5), "derived: 5m write 1.25x");
    llmc_cost(&derived, &u, 0, &c);
    ok(near(c.cost, 2.0), "derived: OpenAI has no write premium");

    llmc_cost(NULL, &u, 1, &c);
    ok(c.cost == 0 && c.saved == 0, "no price: zero");
}

static void
test_from_bodies(void)
{
    llmc_usage_t         u;
    llmc_cost_t          c;
    const char          *a, *o;

    a = "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\","
        "\"content\":[{\"type\":\"text\",\"text\":\"x\"}],\"model\":"
        "\"claude-3-5-sonnet-20241022\",\"stop_reason\":\"end_turn\","
        "\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":"
        "2000,\"cache_read_input_tokens\":3000,\"cache_creation\":{"
        "\"ephemeral_5m_input_tokens\":1500,\"ephemeral_1h_input_tokens\":"
        "500},\"output_tokens\":20}}";
    is_int(llmc_usage_parse(LLMC_API_MESSAGES, a, strlen(a), &u), 0,
           "anthropic body: usage parsed");
    llmc_cost(llmc_price_find(NULL, 0, "claude-3-5-sonnet-20241022"), &u, 1,
              &c);
    ok(near(c.cost, (10 * 3.0 + 1500 * 3.75 + 500 * 6.0 + 3000 * 0.3
                     + 20 * 15.0) / 1e6), "anthropic body: cost %.9f",
       c.cost);

    o = "{\"id\":\"c\",\"object\":\"chat.completion\",\"model\":\"gpt-4o\","
        "\"choices\":[],\"usage\":{\"prompt_tokens\":4000,"
        "\"completion_tokens\":10,\"total_tokens\":4010,"
        "\"prompt_tokens_details\":{\"cached_tokens\":3840}}}";
    is_int(llmc_usage_parse(LLMC_API_CHAT, o, strlen(o), &u), 0,
           "openai body: usage parsed");
    llmc_cost(llmc_price_find(NULL, 0, "gpt-4o"), &u, 0, &c);
    ok(near(c.cost, (160 * 2.5 + 3840 * 1.25 + 10 * 10.0) / 1e6),
       "openai body: cost %.9f", c.cost);
    ok(near(c.saved, 3840 * 1.25 / 1e6), "openai body: saved %.9f", c.saved);

    is_int(llmc_usage_parse(LLMC_API_CHAT, "{", 1, &u), -1,
           "bad body: no usage");
}

int
main(void)
{
    test_table();
    test_cost();
    test_from_bodies();
    return done_testing();
}
