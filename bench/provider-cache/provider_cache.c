/*
 * provider_cache: what the provider-cache rewrite saves on an agent
 * workload, measured against the provider mocks (t/mock/provider.py),
 * which cache prompt prefixes by the providers' rules and report it in
 * usage.
 *
 * Workload (per provider): C conversations x T turns, sent round-robin
 * (turn 1 of every conversation, then turn 2, ...), each request carrying
 * a ~3k-token system prompt, 8 tools and the whole conversation so far;
 * the mock's answers become the assistant turns.  The OpenAI system
 * prompt starts with the current time (a fake clock that ticks every
 * request) and the client sends its tools in a different order every
 * time, as agents built on unordered registries do.
 *
 * Each mode starts from an empty provider cache (POST /__reset):
 *   off       the client's bodies as they are
 *   on        bodies rewritten by llmc_rewrite() here, then posted
 *   gateway   (--gateway URL) the client's bodies posted through nginx,
 *             which is expected to rewrite them; llmc_rewrite() is not
 *             called
 *
 *   build/bench/provider_cache [--mock URL] [--gateway URL]
 *       [--provider anthropic|openai|both] [--conversations C]
 *       [--turns T] [--anthropic-model M] [--openai-model M] [--ttl 1h]
 *       [--check]
 *
 * Without --mock it starts python3 t/mock/provider.py on a free port (run
 * it from the repository root).  --check instead runs the end-to-end
 * check: a rewritten Anthropic conversation sent twice must read from the
 * provider's cache.  Output: one row per provider and mode with the
 * cached share of prompt tokens and USD per 1,000 requests.
 */

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "llmc_price.h"
#include "llmc_rewrite.h"
#include "llmc_stream.h"

typedef struct {
    char    *p;
    size_t   n;
} pc_buf_t;

typedef struct {
    const char  *mock;
    const char  *gateway;
    int          anthropic, openai;
    int          convs, turns;
    const char  *amodel, *omodel;
    int          ttl_1h;
    int          check;
} pc_opts_t;

typedef struct {
    long          requests, errors;
    llmc_usage_t  u;
    double        cost, full;
} pc_total_t;

static CURL      *pc_curl;
static uint64_t   pc_rng = 0x9e3779b97f4a7c15ULL;

static const char *pc_words[] = {
    "the", "agent", "must", "always", "check", "customer", "account",
    "before", "answering", "questions", "about", "billing", "refunds",
    "shipping", "orders", "and", "returns", "policy", "requires", "that",
    "every", "response", "is", "polite", "accurate", "concise", "when",
    "unsure", "ask", "a", "clarifying", "question", "never", "invent",
    "numbers", "use", "tools", "to", "look", "up", "data", "escalate",
    "complaints", "within", "one", "business", "day", "include",
    "reference", "identifiers", "in", "summaries", "warehouse", "delivery",
    "invoice", "subscription", "plan", "upgrade", "discount", "coupon",
};

static uint32_t
pc_rand(void)
{
    pc_rng ^= pc_rng << 13;
    pc_rng ^= pc_rng >> 7;
    pc_rng ^= pc_rng << 17;
    return (uint32_t) (pc_rng >> 16);
}

/* bytes of English-like sentences (the mock counts bytes / 4 tokens) */
static char *
pc_text(size_t bytes)
{
    char    *s = malloc(bytes + 64);
    size_t   n = 0;
    int      w = 0;

    while (n < bytes) {
        const char *word = pc_words[pc_rand() % (sizeof(pc_words)
                                                 / sizeof(pc_words[0]))];
        n += (size_t) sprintf(s + n, "%s%s", word,
                              ++w % 12 == 0 ? ". " : " ");
    }
    s[n] = '\0';
    return s;
}

static size_t
pc_write(char *data, size_t size, size_t nmemb, void *ud)
{
    pc_buf_t  *b = ud;
    size_t     n = size * nmemb;
    char      *p = realloc(b->p, b->n + n + 1);

    if (p == NULL) {
        return 0;
    }
    memcpy(p + b->n, data, n);
    b->p = p;
    b->n += n;
    p[b->n] = '\0';
    return n;
}

/* POSTs body to base+path; returns the HTTP status (0: transport error)
 * and the response in *resp (malloc()ed). */
static long
pc_post(const char *base, const char *path, const char *body, size_t len,
    char **resp)
{
    char                url[512];
    long                status = 0;
    pc_buf_t            b = { NULL, 0 };
    struct curl_slist  *h = NULL;

    snprintf(url, sizeof(url), "%s%s", base, path);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "anthropic-version: 2023-06-01");
    h = curl_slist_append(h, "x-api-key: sk-bench");
    h = curl_slist_append(h, "Authorization: Bearer sk-bench");
    curl_easy_reset(pc_curl);
    curl_easy_setopt(pc_curl, CURLOPT_URL, url);
    curl_easy_setopt(pc_curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(pc_curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(pc_curl, CURLOPT_POSTFIELDSIZE, (long) len);
    curl_easy_setopt(pc_curl, CURLOPT_WRITEFUNCTION, pc_write);
    curl_easy_setopt(pc_curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(pc_curl, CURLOPT_TIMEOUT, 30L);
    if (curl_easy_perform(pc_curl) == CURLE_OK) {
        curl_easy_getinfo(pc_curl, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_slist_free_all(h);
    *resp = b.p ? b.p : strdup("");
    return status;
}

/* --- the workload -------------------------------------------------------- */

typedef struct {
    char     *system;         /* ~3k tokens of instructions */
    json_t   *atools;         /* Anthropic tool definitions */
    json_t   *otools;         /* OpenAI tool definitions */
    char   ***user;           /* user[c][t] */
} pc_work_t;

static void
pc_work_init(pc_work_t *w, const pc_opts_t *o)
{
    static const char *names[] = {
        "lookup_order", "lookup_customer", "issue_refund", "track_shipment",
        "create_ticket", "apply_coupon", "change_plan", "search_kb",
    };
    int      i, c, t;
    char    *d;
    json_t  *schema;

    pc_rng = 0x9e3779b97f4a7c15ULL;
    w->system = pc_text(12000);
    w->atools = json_array();
    w->otools = json_array();
    for (i = 0; i < 8; i++) {
        d = pc_text(400);
        schema = json_pack("{s:s,s:{s:{s:s,s:s},s:{s:s},s:{s:s,s:[s,s]}},"
                           "s:[s]}", "type", "object", "properties",
                           "id", "type", "string", "description", "the id",
                           "limit", "type", "integer",
                           "mode", "type", "string", "enum", "fast", "full",
                           "required", "id");
        json_array_append_new(w->atools, json_pack("{s:s,s:s,s:O}",
            "name", names[i], "description", d, "input_schema", schema));
        json_array_append_new(w->otools, json_pack("{s:s,s:{s:s,s:s,s:o}}",
            "type", "function", "function", "name", names[i],
            "description", d, "parameters", schema));
        free(d);
    }
    w->user = calloc((size_t) o->convs, sizeof(char **));
    for (c = 0; c < o->convs; c++) {
        w->user[c] = calloc((size_t) o->turns, sizeof(char *));
        for (t = 0; t < o->turns; t++) {
            w->user[c][t] = pc_text(200 + pc_rand() % 600);
        }
    }
}

static void
pc_work_free(pc_work_t *w, const pc_opts_t *o)
{
    int  c, t;

    for (c = 0; c < o->convs; c++) {
        for (t = 0; t < o->turns; t++) {
            free(w->user[c][t]);
        }
        free(w->user[c]);
    }
    free(w->user);
    free(w->system);
    json_decref(w->atools);
    json_decref(w->otools);
}

/* the client's request for turn t of conversation c; hist holds the
 * conversation's earlier messages (user and assistant) */
static char *
pc_request(const pc_work_t *w, const pc_opts_t *o, int anthropic,
    json_t *hist, int c, int t, long tick)
{
    json_t  *root, *msgs, *tools;
    char     *s, sys[13000];
    size_t    i, n;
    uint64_t  seed;

    msgs = json_deep_copy(hist);
    json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user",
                                          "content", w->user[c][t]));
    if (anthropic) {
        root = json_pack("{s:s,s:i,s:O,s:s,s:o}", "model", o->amodel,
                         "max_tokens", 1024, "tools", w->atools,
                         "system", w->system, "messages", msgs);
    } else {
        /* the clock at the top, the tools in a per-request order */
        snprintf(sys, sizeof(sys), "Current time: 2026-11-28T%02ld:%02ld:"
                 "%02ldZ\n%s", (tick / 3600) % 24, (tick / 60) % 60,
                 tick % 60, w->system);
        n = json_array_size(w->otools);
        tools = json_array();
        for (i = 0; i < n; i++) {
            json_array_append(tools, json_array_get(w->otools, i));
        }
        seed = (uint64_t) tick * 0x9e3779b97f4a7c15ULL + 1;
        for (i = n - 1; i > 0; i--) {         /* Fisher-Yates */
            size_t   j;
            json_t  *x;
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            j = (size_t) (seed >> 33) % (i + 1);
            x = json_incref(json_array_get(tools, i));
            json_array_set(tools, i, json_array_get(tools, j));
            json_array_set_new(tools, j, x);
        }
        json_array_insert_new(msgs, 0, json_pack("{s:s,s:s}", "role",
                                                 "system", "content", sys));
        root = json_pack("{s:s,s:o,s:o}", "model", o->omodel, "messages",
                         msgs, "tools", tools);
    }
    s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

static const char *
pc_answer(json_t *r, int anthropic)
{
    json_t  *a;

    if (anthropic) {
        a = json_object_get(json_array_get(json_object_get(r, "content"), 0),
                            "text");
    } else {
        a = json_object_get(json_object_get(json_array_get(
                json_object_get(r, "choices"), 0), "message"), "content");
    }
    return json_is_string(a) ? json_string_value(a) : "(none)";
}

static int
pc_run(const pc_work_t *w, const pc_opts_t *o, int anthropic,
    const char *mode, pc_total_t *tot)
{
    int                  c, t, rc;
    long                 status, tick = 3600 * 9;
    char                *body, *out, *resp, info[128];
    size_t               out_len;
    json_t             **hist, *r;
    const char          *base, *path;
    const char          *vol[] = { "Current time: [0-9T:Z-]+" };
    llmc_usage_t         u;
    llmc_cost_t          cost;
    const llmc_price_t  *price;
    llmc_rewrite_conf_t  conf = {
        .anthropic_auto = 1, .anthropic_ttl_1h = o->ttl_1h,
        .openai_stable = 1, .volatile_res = vol, .n_volatile = 1,
        .openai_cache_key = "",
    };

    memset(tot, 0, sizeof(*tot));
    path = anthropic ? "/v1/messages" : "/v1/chat/completions";
    base = strcmp(mode, "gateway") == 0 ? o->gateway : o->mock;
    price = llmc_price_find(NULL, 0, anthropic ? o->amodel : o->omodel);
    status = pc_post(o->mock, "/__reset", "", 0, &resp);
    free(resp);
    if (status != 200) {
        fprintf(stderr, "provider_cache: %s/__reset: status %ld\n", o->mock,
                status);
        return -1;
    }

    hist = calloc((size_t) o->convs, sizeof(json_t *));
    for (c = 0; c < o->convs; c++) {
        hist[c] = json_array();
    }
    for (t = 0; t < o->turns; t++) {
        for (c = 0; c < o->convs; c++) {
            tick += 7;
            body = pc_request(w, o, anthropic, hist[c], c, t, tick);
            out = NULL;
            if (strcmp(mode, "on") == 0) {
                rc = llmc_rewrite(anthropic ? LLMC_API_MESSAGES
                                            : LLMC_API_CHAT,
                                  body, strlen(body), &conf, &out, &out_len,
                                  info, sizeof(info));
                if (rc < 0) {
                    fprintf(stderr, "provider_cache: out of memory\n");
                    exit(1);
                }
            }
            status = out ? pc_post(base, path, out, out_len, &resp)
                         : pc_post(base, path, body, strlen(body), &resp);
            tot->requests++;
            r = json_loads(resp, 0, NULL);
            if (status != 200 || r == NULL
                || llmc_usage_parse(anthropic ? LLMC_API_MESSAGES
                                              : LLMC_API_CHAT,
                                    resp, strlen(resp), &u) != 0)
            {
                if (tot->errors++ < 3) {
                    fprintf(stderr, "provider_cache: %s %s: status %ld: "
                            "%.300s\n", mode, path, status, resp);
                }
                memset(&u, 0, sizeof(u));
            }
            tot->u.input += u.input;
            tot->u.cached += u.cached;
            tot->u.cache_write_5m += u.cache_write_5m;
            tot->u.cache_write_1h += u.cache_write_1h;
            tot->u.output += u.output;
            llmc_cost(price, &u, anthropic, &cost);
            tot->cost += cost.cost;
            tot->full += llmc_cost_full(price, &u);
            json_array_append_new(hist[c], json_pack("{s:s,s:s}", "role",
                                  "user", "content", w->user[c][t]));
            json_array_append_new(hist[c], json_pack("{s:s,s:s}", "role",
                                  "assistant", "content",
                                  pc_answer(r, anthropic)));
            json_decref(r);
            free(resp);
            free(out);
            free(body);
        }
    }
    for (c = 0; c < o->convs; c++) {
        json_decref(hist[c]);
    }
    free(hist);
    return 0;
}

static void
pc_row(const char *provider, const char *mode, const pc_total_t *t,
    double base_cost)
{
    int64_t  prompt = t->u.input + t->u.cached + t->u.cache_write_5m
                      + t->u.cache_write_1h;
    double   per_k = t->requests ? t->cost * 1000 / (double) t->requests : 0;

    char     vs[16] = "";

    if (base_cost > 0) {
        snprintf(vs, sizeof(vs), "%+.1f%%",
                 100.0 * (t->cost - base_cost) / base_cost);
    }
    printf("| %-9s | %-7s | %8ld | %6ld | %10lld | %6.1f%% | %7.1f%% "
           "| %10.4f | %7s |\n", provider, mode, t->requests, t->errors,
           (long long) prompt,
           prompt ? 100.0 * (double) t->u.cached / (double) prompt : 0,
           prompt ? 100.0 * (double) (t->u.cache_write_5m
                                      + t->u.cache_write_1h)
                    / (double) prompt : 0,
           per_k, vs);
}

/* --- the end-to-end check ---------------------------------------------- */

static int pc_checks, pc_failed;

static void
pc_ok(int cond, const char *what, long v)
{
    pc_checks++;
    pc_failed += !cond;
    printf("%sok %d - %s (%ld)\n", cond ? "" : "not ", pc_checks, what, v);
}

static int
pc_check(const pc_work_t *w, const pc_opts_t *o)
{
    char                *body, *out, *resp, info[128];
    size_t               out_len;
    long                 status;
    int                  i, rc;
    json_t              *hist;
    llmc_usage_t         u[3];
    llmc_rewrite_conf_t  conf = { .anthropic_auto = 1,
                                  .anthropic_ttl_1h = o->ttl_1h };

    status = pc_post(o->mock, "/__reset", "", 0, &resp);
    free(resp);
    pc_ok(status == 200, "mock reset", status);

    /* a 3-message conversation, rewritten, sent twice; then the next turn
     * (the earlier request, its answer and a new user message) */
    hist = json_pack("[{s:s,s:s},{s:s,s:s}]", "role", "user", "content",
                     w->user[0][0], "role", "assistant", "content",
                     "an earlier answer");
    for (i = 0; i < 3; i++) {
        if (i == 2) {
            json_array_append_new(hist, json_pack("{s:s,s:s}", "role", "user",
                                  "content", w->user[0][2]));
            json_array_append_new(hist, json_pack("{s:s,s:s}", "role",
                                  "assistant", "content", "another answer"));
        }
        body = pc_request(w, o, 1, hist, 0, i < 2 ? 2 : 3, 0);
        rc = llmc_rewrite(LLMC_API_MESSAGES, body, strlen(body), &conf, &out,
                          &out_len, info, sizeof(info));
        pc_ok(rc == 1, "rewritten", rc);
        status = rc == 1 ? pc_post(o->mock, "/v1/messages", out, out_len,
                                   &resp)
                         : pc_post(o->mock, "/v1/messages", body,
                                   strlen(body), &resp);
        pc_ok(status == 200, "mock accepts the rewritten body", status);
        if (llmc_usage_parse(LLMC_API_MESSAGES, resp, strlen(resp), &u[i])) {
            memset(&u[i], 0, sizeof(u[i]));
        }
        free(resp);
        free(out);
        free(body);
    }
    json_decref(hist);
    pc_ok(u[0].cache_write_5m + u[0].cache_write_1h > 0,
          "first send writes the prefix",
          (long) (u[0].cache_write_5m + u[0].cache_write_1h));
    pc_ok(u[0].cached == 0, "first send reads nothing", (long) u[0].cached);
    pc_ok(u[1].cached > 0, "second send: cache_read_input_tokens > 0",
          (long) u[1].cached);
    pc_ok(u[1].cache_write_5m + u[1].cache_write_1h == 0,
          "second send writes nothing",
          (long) (u[1].cache_write_5m + u[1].cache_write_1h));
    pc_ok(u[2].cached == u[1].cached,
          "next turn reads the whole earlier request", (long) u[2].cached);
    pc_ok(u[2].cache_write_5m + u[2].cache_write_1h > 0,
          "next turn writes its new part",
          (long) (u[2].cache_write_5m + u[2].cache_write_1h));
    printf("1..%d\n", pc_checks);
    return pc_failed ? 1 : 0;
}

/* --- the mock ------------------------------------------------------------ */

static pid_t
pc_start_mock(char *url, size_t urllen)
{
    int                 fd, p[2];
    pid_t               pid;
    char                port[16], line[64];
    FILE               *f;
    struct sockaddr_in  sa;
    socklen_t           sl = sizeof(sa);

    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0
        || getsockname(fd, (struct sockaddr *) &sa, &sl) != 0)
    {
        return -1;
    }
    close(fd);
    snprintf(port, sizeof(port), "%d", ntohs(sa.sin_port));
    if (pipe(p) != 0) {
        return -1;
    }
    pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execlp("python3", "python3", "t/mock/provider.py", "--port", port,
               (char *) NULL);
        _exit(127);
    }
    close(p[1]);
    f = fdopen(p[0], "r");
    if (pid < 0 || f == NULL || fgets(line, sizeof(line), f) == NULL
        || strncmp(line, "ready", 5) != 0)
    {
        fprintf(stderr, "provider_cache: t/mock/provider.py did not start "
                "(run from the repository root)\n");
        if (pid > 0) {
            kill(pid, SIGTERM);
            waitpid(pid, NULL, 0);
        }
        return -1;
    }
    fclose(f);
    snprintf(url, urllen, "http://127.0.0.1:%s", port);
    return pid;
}

int
main(int argc, char **argv)
{
    int          i, rc = 0, p;
    char         url[64];
    pid_t        mock = 0;
    pc_opts_t    o = { NULL, NULL, 1, 1, 20, 10, "claude-sonnet-4-5",
                       "gpt-4o", 0, 0 };
    pc_work_t    w;
    pc_total_t   off, on;
    const char  *mode2;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--check") == 0) {
            o.check = 1;
            continue;
        }
        if (v == NULL) {
            goto usage;
        }
        i++;
        if (strcmp(a, "--mock") == 0) {
            o.mock = v;
        } else if (strcmp(a, "--gateway") == 0) {
            o.gateway = v;
        } else if (strcmp(a, "--provider") == 0) {
            o.anthropic = strcmp(v, "openai") != 0;
            o.openai = strcmp(v, "anthropic") != 0;
        } else if (strcmp(a, "--conversations") == 0) {
            o.convs = atoi(v);
        } else if (strcmp(a, "--turns") == 0) {
            o.turns = atoi(v);
        } else if (strcmp(a, "--anthropic-model") == 0) {
            o.amodel = v;
        } else if (strcmp(a, "--openai-model") == 0) {
            o.omodel = v;
        } else if (strcmp(a, "--ttl") == 0) {
            o.ttl_1h = strcmp(v, "1h") == 0;
        } else {
            goto usage;
        }
    }
    if (o.convs < 1 || o.turns < 4) {
        goto usage;
    }

    curl_global_init(CURL_GLOBAL_DEFAULT);
    pc_curl = curl_easy_init();
    if (o.mock == NULL) {
        mock = pc_start_mock(url, sizeof(url));
        if (mock < 0) {
            return 1;
        }
        o.mock = url;
    }
    pc_work_init(&w, &o);

    if (o.check) {
        rc = pc_check(&w, &o);
        goto done;
    }

    mode2 = o.gateway ? "gateway" : "on";
    printf("%d conversations x %d turns, round-robin; mock %s%s%s\n\n",
           o.convs, o.turns, o.mock, o.gateway ? ", gateway " : "",
           o.gateway ? o.gateway : "");
    printf("| provider  | rewrite | requests | errors | prompt tok |  cached "
           "|  written | USD/1k req |  vs off |\n");
    printf("|-----------|---------|---------:|-------:|-----------:|--------:"
           "|---------:|-----------:|--------:|\n");
    for (p = 0; p < 2; p++) {
        int anthropic = p == 0;
        const char *name = anthropic ? "anthropic" : "openai";
        if ((anthropic && !o.anthropic) || (!anthropic && !o.openai)) {
            continue;
        }
        if (pc_run(&w, &o, anthropic, "off", &off) != 0
            || pc_run(&w, &o, anthropic, mode2, &on) != 0)
        {
            rc = 1;
            break;
        }
        pc_row(name, "off", &off, 0);
        pc_row(name, mode2, &on, off.cost);
        rc |= off.errors || on.errors;
    }

done:
    pc_work_free(&w, &o);
    curl_easy_cleanup(pc_curl);
    curl_global_cleanup();
    if (mock > 0) {
        kill(mock, SIGTERM);
        waitpid(mock, NULL, 0);
    }
    return rc;

usage:
    fprintf(stderr, "usage: provider_cache [--mock URL] [--gateway URL] "
            "[--provider anthropic|openai|both]\n"
            "    [--conversations C] [--turns T] [--anthropic-model M] "
            "[--openai-model M] [--ttl 5m|1h] [--check]\n");
    return 2;
}
