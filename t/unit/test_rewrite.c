/*
 * The provider-cache rewrite: Anthropic breakpoint placement (tools,
 * system, multi-turn), the 4-marker limit, minimums per model, TTL order,
 * untouched bodies; OpenAI tool order, key order, volatile text, cache key
 * and retention; the token estimate.
 */

#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "tap.h"
#include "llmc_rewrite.h"
#include "llmc_stream.h"

static char   info[128];

/* ASCII text of about n tokens (4 bytes each) */
static char *
text_of(size_t n, char tag)
{
    char    *s = malloc(4 * n + 1);
    size_t   i;

    for (i = 0; i < 4 * n; i++) {
        s[i] = (i % 4 == 3) ? ' ' : (char) ('a' + (i / 4 + (size_t) tag) % 26);
    }
    s[4 * n] = '\0';
    return s;
}

static char *
dump(json_t *v)
{
    char  *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);

    json_decref(v);
    return s;
}

/* Rewrites body; returns the result code and *out (NULL if untouched) */
static int
rw(llmc_api_e api, const char *body, const llmc_rewrite_conf_t *c,
    char **out)
{
    size_t  len;
    int     rc;

    rc = llmc_rewrite(api, body, strlen(body), c, out, &len, info,
                      sizeof(info));
    if (rc == 1 && (*out == NULL || strlen(*out) != len)) {
        return -2;
    }
    return rc;
}

static void
add_mark(char *buf, size_t n, const char *where, json_t *obj)
{
    json_t  *cc = json_object_get(obj, "cache_control"), *ttl;
    size_t   l = strlen(buf);

    if (cc == NULL) {
        return;
    }
    ttl = json_object_get(cc, "ttl");
    snprintf(buf + l, n - l, "%s%s:%s", l ? " " : "", where,
             ttl ? json_string_value(ttl) : "5m");
}

/* "tools.1:5m system.0:1h messages.2.0:5m": every marker in prefix order */
static const char *
marks(const char *body)
{
    static char   buf[512];
    char          w[64];
    json_t       *root, *a, *m, *c;
    size_t        i, j;

    buf[0] = '\0';
    root = json_loads(body, 0, NULL);
    if (root == NULL) {
        return "(invalid)";
    }
    a = json_object_get(root, "tools");
    for (i = 0; i < json_array_size(a); i++) {
        snprintf(w, sizeof(w), "tools.%zu", i);
        add_mark(buf, sizeof(buf), w, json_array_get(a, i));
    }
    a = json_object_get(root, "system");
    for (i = 0; i < json_array_size(a); i++) {
        snprintf(w, sizeof(w), "system.%zu", i);
        add_mark(buf, sizeof(buf), w, json_array_get(a, i));
    }
    a = json_object_get(root, "messages");
    for (i = 0; i < json_array_size(a); i++) {
        m = json_array_get(a, i);
        c = json_object_get(m, "content");
        for (j = 0; j < json_array_size(c); j++) {
            snprintf(w, sizeof(w), "messages.%zu.%zu", i, j);
            add_mark(buf, sizeof(buf), w, json_array_get(c, j));
        }
    }
    add_mark(buf, sizeof(buf), "top", root);
    json_decref(root);
    return buf;
}

/* An Anthropic request: ntools tools of tool_tok tokens, a system string
 * of sys_tok tokens (0: none), then turns user/assistant/.../user, each
 * of turn_tok tokens, as strings. */
static char *
anth(const char *model, int ntools, size_t tool_tok, size_t sys_tok,
    int turns, size_t turn_tok)
{
    json_t  *root, *tools, *msgs;
    char    *t;
    int      i;

    root = json_pack("{s:s,s:i}", "model", model, "max_tokens", 64);
    if (ntools > 0) {
        tools = json_array();
        for (i = 0; i < ntools; i++) {
            char name[24];
            snprintf(name, sizeof(name), "tool_%d", i);
            t = text_of(tool_tok, (char) i);
            json_array_append_new(tools, json_pack(
                "{s:s,s:s,s:{s:s,s:{}}}", "name", name, "description", t,
                "input_schema", "type", "object", "properties"));
            free(t);
        }
        json_object_set_new(root, "tools", tools);
    }
    if (sys_tok > 0) {
        t = text_of(sys_tok, 's');
        json_object_set_new(root, "system", json_string(t));
        free(t);
    }
    msgs = json_array();
    for (i = 0; i < turns; i++) {
        t = text_of(turn_tok, (char) (i + 3));
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role",
                                              i % 2 ? "assistant" : "user",
                                              "content", t));
        free(t);
    }
    json_object_set_new(root, "messages", msgs);
    return dump(root);
}

static void
test_estimate(void)
{
    const char  *ko = "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4";  /* 3 Hangul */
    const char  *ja = "\xe6\x97\xa5\xe6\x9c\xac";               /* 2 CJK */
    const char  *ru = "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5"; /* 5 Cyr */

    is_int(llmc_estimate_tokens("", 0), 0, "estimate: empty");
    is_int(llmc_estimate_tokens("abcdefgh", 8), 2, "estimate: latin 4/token");
    is_int(llmc_estimate_tokens(ko, strlen(ko)), 3, "estimate: hangul 1/char");
    is_int(llmc_estimate_tokens(ja, strlen(ja)), 2, "estimate: CJK 1/char");
    is_int(llmc_estimate_tokens(ru, strlen(ru)), 2,
           "estimate: cyrillic 2/token");
    is_int(llmc_estimate_tokens("\xed\x95", 2), 0,
           "estimate: a truncated sequence is not a character");
    is_int(llmc_estimate_tokens("\xff\xfe\xfd\xfc", 4), 1,
           "estimate: stray bytes count as bytes");
}

static void
test_glob_min(void)
{
    llmc_min_tokens_t  user[] = { { "claude-sonnet-4*", 3000 } };

    ok(llmc_glob_match("gpt-4o*", "gpt-4o-mini"), "glob: prefix star");
    ok(!llmc_glob_match("gpt-4o", "gpt-4o-mini"), "glob: whole name");
    ok(llmc_glob_match("*haiku*", "claude-3-haiku-2024"), "glob: infix");
    ok(llmc_glob_match("a?c", "abc") && !llmc_glob_match("a?c", "ac"),
       "glob: ?");
    is_int(llmc_min_cacheable_tokens(NULL, 0, "claude-sonnet-4-5"), 1024,
           "minimum: sonnet 4.5 1024");
    is_int(llmc_min_cacheable_tokens(NULL, 0, "claude-3-haiku-20240307"),
           2048, "minimum: haiku 3 2048");
    is_int(llmc_min_cacheable_tokens(NULL, 0, "claude-haiku-4-5-20251001"),
           4096, "minimum: haiku 4.5 4096");
    is_int(llmc_min_cacheable_tokens(NULL, 0, "claude-opus-4-5"), 4096,
           "minimum: opus 4.5 4096");
    is_int(llmc_min_cacheable_tokens(user, 1, "claude-sonnet-4-5"), 3000,
           "minimum: operator entry wins");
    is_int(llmc_min_cacheable_tokens(user, 1, "claude-opus-4-5"), 4096,
           "minimum: operator entry only for its pattern");
}

static void
test_anthropic_placement(void)
{
    llmc_rewrite_conf_t  c = { .anthropic_auto = 1 };
    char                *b, *o = NULL;

    /* tools + system + 3 turns: tools, system, before newest, newest */
    b = anth("claude-sonnet-4-5", 3, 500, 1500, 3, 300);
    is_int(rw(LLMC_API_MESSAGES, b, &c, &o), 1,
           "tools+system+turns: rewritten");
    is_str(marks(o), "tools.2:5m system.0:5m messages.1.0:5m "
           "messages.2.0:5m", "tools+system+turns: four breakpoints");
    {
        json_t *j = json_loads(o, 0, NULL);
        ok(json_is_array(json_object_get(j, "system")),
           "system string became a block array");
        json_decref(j);
    }
    free(o); o = NULL;
    free(b);

    /* small tools below the minimum: no marker there */
    b = anth("claude-sonnet-4-5", 2, 100, 1500, 3, 300);
    is_int(rw(LLMC_API_MESSAGES, b, &c, &o), 1, "small tools: rewritten");
    is_str(marks(o), "system.0:5m messages.1.0:5m messages.2.0:5m",
           "small tools: system and conversation only");
    free(o); o = NULL;
    free(b);

    /* no tools, no system, one turn long enough */
    b = anth("claude-sonnet-4-5", 0, 0, 0, 1, 1100);
    is_int(rw(LLMC_API_MESSAGES, b, &c, &o), 1, "one turn: rewritten");
    is_str(marks(o), "messages.0.0:5m", "one turn: marker on the turn");
    free(o); o = NULL;
    free(b);

    /* everything below the minimum: untouched */
    b = anth("claude-sonnet-4-5", 1, 100, 300, 3, 100);
    is_int(rw(LLMC_API_MESSAGES, b, &c, &o), 0, "short prompt: untouched");
    ok(o == NULL, "short prompt: no output");
    free(b);

    /* the same prompt clears 1024 but not haiku 4.5's 4096 */
    b = anth("claude-haiku-4-5", 0, 0, 3000, 1, 100);
    is_int(rw(LLMC_API_MESSAGES, b, &c, &o), 0, "haiku 4.5 3k: untouched");
    free(b);
    b = anth("claude-sonnet-4-5", 0, 0, 3000, 1, 100);
    is_int(rw(LLMC_API_MESSAGES, b, &c, &o), 1, "sonnet 4.5 3k: rewritten");
    is_str(marks(o), "system.0:5m messages.0.0:5m", "sonnet 4.5 3k: marks");
    free(o); o = NULL;
    free(b);

    /* an overridden minimum */
    {
        llmc_min_tokens_t    mt[] = { { "claude-sonnet-*", 5000 } };
        llmc_rewrite_conf_t  c2 = { .anthropic_auto = 1, .min_tokens = mt,
                                    .n_min_tokens = 1 };
        b = anth("claude-sonnet-4-5", 0, 0, 3000, 1, 100);
        is_int(rw(LLMC_API_MESSAGES, b, &c2, &o), 0,
               "operator minimum 5000: untouched");
        free(b);
    }

    /* 1h TTL */
    {
        llmc_rewrite_conf_t  c1 = { .anthropic_auto = 1,
                                    .anthropic_ttl_1h = 1 };
        b = anth("claude-sonnet-4-5", 0, 0, 1500, 3, 100);
        is_int(rw(LLMC_API_MESSAGES, b, &c1, &o), 1, "1h: rewritten");
        is_str(marks(o), "system.0:1h messages.1.0:1h messages.2.0:1h",
               "1h: every marker 1h");
        free(o); o = NULL;
        free(b);
    }
}

static void
test_anthropic_blocks(void)
{
    llmc_rewrite_conf_t  c = { .anthropic_auto = 1 };
    char                *o = NULL, *big = text_of(1200, 'b'), body[8192];

    /* thinking and empty text are skipped; the marker goes on the last
     * eligible block of the turn */
    snprintf(body, sizeof(body),
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":9,\"messages\":["
        "{\"role\":\"user\",\"content\":\"%s\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\","
        "\"thinking\":\"hm\",\"signature\":\"x\"},{\"type\":\"tool_use\","
        "\"id\":\"t1\",\"name\":\"f\",\"input\":{}},{\"type\":\"thinking\","
        "\"thinking\":\"more\",\"signature\":\"y\"}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
        "\"tool_use_id\":\"t1\",\"content\":\"42\"},{\"type\":\"text\","
        "\"text\":\"\"}]}]}", big);
    is_int(rw(LLMC_API_MESSAGES, body, &c, &o), 1, "blocks: rewritten");
    is_str(marks(o), "messages.1.1:5m messages.2.0:5m",
           "blocks: not on thinking nor on empty text");
    free(o); o = NULL;

    /* the body keeps its key order and other fields */
    snprintf(body, sizeof(body),
        "{\"max_tokens\":9,\"temperature\":0.5,\"model\":\"claude-sonnet-4-5\","
        "\"metadata\":{\"user_id\":\"u\"},\"messages\":[{\"role\":\"user\","
        "\"content\":[{\"type\":\"text\",\"text\":\"%s\"}]}],\"stream\":true}",
        big);
    is_int(rw(LLMC_API_MESSAGES, body, &c, &o), 1, "order: rewritten");
    ok(o && strncmp(o, "{\"max_tokens\":9,\"temperature\":0.5,\"model\":", 42)
       == 0, "order: top-level keys in received order");
    ok(o && strstr(o, "\"stream\":true}") != NULL, "order: stream kept last");
    ok(o && strstr(o, "\"text\":\"abcd") == NULL
       && strstr(o, "\"cache_control\":{\"type\":\"ephemeral\"}}]}]") != NULL,
       "order: marker appended to the block");
    free(o); o = NULL;
    free(big);
}

static void
test_anthropic_limits(void)
{
    llmc_rewrite_conf_t  c = { .anthropic_auto = 1 };
    llmc_rewrite_conf_t  c1 = { .anthropic_auto = 1, .anthropic_ttl_1h = 1 };
    char                *o = NULL, *sys = text_of(1500, 's'), body[16384];
    char                *t = text_of(200, 't');

#define MSGS(cc1, cc2, cc3)                                                 \
    "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","    \
    "\"text\":\"%s\"" cc1 "}]},{\"role\":\"assistant\",\"content\":"       \
    "[{\"type\":\"text\",\"text\":\"%s\"" cc2 "}]},{\"role\":\"user\","    \
    "\"content\":[{\"type\":\"text\",\"text\":\"%s\"" cc3 "}]}]"
#define CC5  ",\"cache_control\":{\"type\":\"ephemeral\"}"
#define CC1H ",\"cache_control\":{\"type\":\"ephemeral\",\"ttl\":\"1h\"}"

    /* one client marker on the system: it wins, three more are ours */
    snprintf(body, sizeof(body),
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":9,\"system\":"
        "[{\"type\":\"text\",\"text\":\"%s\"" CC5 "}]," MSGS("", "", "") "}",
        sys, t, t, t);
    is_int(rw(LLMC_API_MESSAGES, body, &c, &o), 1, "client system: rewritten");
    is_str(marks(o), "system.0:5m messages.1.0:5m messages.2.0:5m",
           "client system: kept, conversation added");
    free(o); o = NULL;

    /* three client markers: only one slot left, for the newest turn */
    snprintf(body, sizeof(body),
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":9,\"system\":"
        "[{\"type\":\"text\",\"text\":\"%s\"" CC5 "}]," MSGS(CC5, CC5, "")
        "}", sys, t, t, t);
    is_int(rw(LLMC_API_MESSAGES, body, &c, &o), 1, "3 client: rewritten");
    is_str(marks(o), "system.0:5m messages.0.0:5m messages.1.0:5m "
           "messages.2.0:5m", "3 client: a 4th added, never a 5th");
    free(o); o = NULL;

    /* three client markers plus a top-level one: full, untouched */
    snprintf(body, sizeof(body),
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":9,\"cache_control\":"
        "{\"type\":\"ephemeral\"},\"system\":[{\"type\":\"text\",\"text\":"
        "\"%s\"" CC5 "}]," MSGS(CC5, CC5, "") "}", sys, t, t, t);
    is_int(rw(LLMC_API_MESSAGES, body, &c, &o), 0,
           "4 with top-level: untouched");
    ok(strstr(info, "4") != NULL, "4 with top-level: info says why (%s)", info);

    /* five already: untouched (the provider's 400 is the client's) */
    snprintf(body, sizeof(body),
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":9,\"cache_control\":"
        "{\"type\":\"ephemeral\"},\"system\":[{\"type\":\"text\",\"text\":"
        "\"%s\"" CC5 "}]," MSGS(CC5, CC5, CC5) "}", sys, t, t, t);
    is_int(rw(LLMC_API_MESSAGES, body, &c, &o), 0, "5 markers: untouched");

    /* a top-level marker: the last block is taken by it */
    snprintf(body, sizeof(body),
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":9,\"cache_control\":"
        "{\"type\":\"ephemeral\"},\"system\":\"%s\"," MSGS("", "", "") "}",
        sys, t, t, t);
    is_int(rw(LLMC_API_MESSAGES, body, &c, &o), 1, "top-level: rewritten");
    is_str(marks(o), "system.0:5m messages.1.0:5m top:5m",
           "top-level: not doubled on the last block");
    free(o); o = NULL;

    /* 1h configured after a client's 5m marker: ours become 5m */
    snprintf(body, sizeof(body),
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":9,\"system\":"
        "[{\"type\":\"text\",\"text\":\"%s\"" CC5 "}]," MSGS("", "", "") "}",
        sys, t, t, t);
    is_int(rw(LLMC_API_MESSAGES, body, &c1, &o), 1, "ttl order: rewritten");
    is_str(marks(o), "system.0:5m messages.1.0:5m messages.2.0:5m",
           "ttl order: no 1h after a client 5m");
    free(o); o = NULL;

    /* 5m configured before a client's 1h marker: nothing before it */
    snprintf(body, sizeof(body),
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":9,\"system\":"
        "\"%s\"," MSGS("", CC1H, "") "}", sys, t, t, t);
    is_int(rw(LLMC_API_MESSAGES, body, &c, &o), 1, "ttl order 2: rewritten");
    is_str(marks(o), "messages.1.0:1h messages.2.0:5m",
           "ttl order 2: no 5m before a client 1h");
    free(o); o = NULL;

    /* 1h with a client 1h later: ours may be 1h before it */
    is_int(rw(LLMC_API_MESSAGES, body, &c1, &o), 1, "ttl order 3: rewritten");
    is_str(marks(o), "system.0:1h messages.1.0:1h messages.2.0:1h",
           "ttl order 3: 1h before a client 1h");
    free(o); o = NULL;

    /* a client marker nested in a tool_result counts, and that block is
     * the client's: ours go elsewhere */
    snprintf(body, sizeof(body),
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":9,\"system\":"
        "\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\","
        "\"id\":\"t1\",\"name\":\"f\",\"input\":{}}]},{\"role\":"
        "\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
        "\"t1\",\"content\":[{\"type\":\"text\",\"text\":\"r\"" CC5
        "}]}]}]}", sys, t);
    is_int(rw(LLMC_API_MESSAGES, body, &c, &o), 1, "nested: rewritten");
    is_str(marks(o), "system.0:5m messages.1.0:5m",
           "nested: not on the client's tool_result");
    ok(o && strstr(o, "\"text\":\"r\"" CC5 "}]}") != NULL,
       "nested: the client's marker kept as it was");
    free(o); o = NULL;

    /* a malformed client marker: untouched */
    snprintf(body, sizeof(body),
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":9,\"system\":"
        "\"%s\"," MSGS(",\"cache_control\":{\"type\":\"forever\"}", "", "")
        "}", sys, t, t, t);
    is_int(rw(LLMC_API_MESSAGES, body, &c, &o), 0, "bad marker: untouched");
    free(sys);
    free(t);
}

static void
test_untouched(void)
{
    llmc_rewrite_conf_t  off = { 0 }, on = { .anthropic_auto = 1,
                                              .openai_stable = 1 };
    char                *o = (char *) 1, *b;
    const char          *bad[] = {
        "", "{", "[]", "null", "{\"model\":1,\"messages\":[]}",
        "{\"model\":\"claude-sonnet-4-5\",\"messages\":{}}",
        "{\"model\":\"claude-sonnet-4-5\",\"messages\":[]}",
        "{\"model\":\"m\",\"messages\":[1]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":7}]}",
        "{\"model\":\"m\",\"system\":5,\"messages\":[{\"role\":\"user\","
        "\"content\":\"hi\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "[{\"text\":\"no type\"}]}]}",
        "{\"a\":1,\"a\":2}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"\\u0000\"}]}",
        "{\"model\":\"m\",\"tools\":{},\"messages\":[]}",
    };
    size_t               i;

    b = anth("claude-sonnet-4-5", 3, 500, 1500, 3, 300);
    is_int(rw(LLMC_API_MESSAGES, b, &off, &o), 0, "off: untouched");
    ok(o == NULL, "off: no output");
    is_int(rw(LLMC_API_COMPLETIONS, b, &on, &o), 0,
           "completions: not applicable");
    is_int(rw(LLMC_API_UNKNOWN, b, &on, &o), 0, "unknown api: untouched");
    free(b);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        is_int(rw(LLMC_API_MESSAGES, bad[i], &on, &o), 0,
               "malformed %zu: messages untouched", i);
        is_int(rw(LLMC_API_CHAT, bad[i], &on, &o), 0,
               "malformed %zu: chat untouched", i);
        ok(o == NULL, "malformed %zu: no output", i);
    }
}

static void
test_openai(void)
{
    const char          *vol[] = { "Current time: [0-9T:Z-]+",
                                   "request id [a-f0-9]+" };
    llmc_rewrite_conf_t  c = { .openai_stable = 1, .volatile_res = vol,
                               .n_volatile = 2 };
    char                *o = NULL, *o2 = NULL;
    json_t              *j, *m;
    const char          *body;

    /* tools sorted by name, keys sorted, properties' order kept */
    body = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"hi\"}],\"tools\":["
        "{\"type\":\"function\",\"function\":{\"name\":\"zeta\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"b\":{\"type\":"
        "\"string\"},\"a\":{\"type\":\"string\",\"enum\":[\"y\",\"x\"]}}}}},"
        "{\"function\":{\"parameters\":{},\"name\":\"alpha\"},"
        "\"type\":\"function\"}]}";
    is_int(rw(LLMC_API_CHAT, body, &c, &o), 1, "tools: rewritten");
    is_str(o, "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"hi\"}],\"tools\":["
        "{\"function\":{\"name\":\"alpha\",\"parameters\":{}},"
        "\"type\":\"function\"},"
        "{\"function\":{\"name\":\"zeta\",\"parameters\":{\"properties\":"
        "{\"b\":{\"type\":\"string\"},\"a\":{\"enum\":[\"y\",\"x\"],"
        "\"type\":\"string\"}},\"type\":\"object\"}},\"type\":\"function\"}]}",
        "tools: by name, sorted keys, property and enum order kept");
    /* already stable: nothing to do */
    is_int(rw(LLMC_API_CHAT, o, &c, &o2), 0, "tools: a stable body untouched");
    free(o); o = NULL;

    /* two orders of the same tools give the same bytes */
    {
        const char *x = "{\"model\":\"gpt-4o\",\"messages\":[],\"tools\":["
            "{\"type\":\"function\",\"function\":{\"name\":\"b\"}},"
            "{\"type\":\"function\",\"function\":{\"name\":\"a\"}}]}";
        const char *y = "{\"model\":\"gpt-4o\",\"messages\":[],\"tools\":["
            "{\"function\":{\"name\":\"a\"},\"type\":\"function\"},"
            "{\"function\":{\"name\":\"b\"},\"type\":\"function\"}]}";
        is_int(rw(LLMC_API_CHAT, x, &c, &o), 1, "same tools x: rewritten");
        is_int(rw(LLMC_API_CHAT, y, &c, &o2), 0,
               "same tools y: already stable, untouched");
        is_str(o, y, "same tools: x becomes y's bytes");
        free(o); o = NULL;
    }

    /* volatile text moves before the newest user message */
    body = "{\"model\":\"gpt-4o\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"You help. Current time: "
        "2026-11-28T01:00:00Z. Be brief, request id 9f3a.\"},"
        "{\"role\":\"user\",\"content\":\"q1\"},"
        "{\"role\":\"assistant\",\"content\":\"a1\"},"
        "{\"role\":\"user\",\"content\":\"q2\"}]}";
    is_int(rw(LLMC_API_CHAT, body, &c, &o), 1, "volatile: rewritten");
    j = json_loads(o, 0, NULL);
    m = json_object_get(j, "messages");
    is_int(json_array_size(m), 5, "volatile: one message more");
    is_str(json_string_value(json_object_get(json_array_get(m, 0), "content")),
           "You help. . Be brief, .", "volatile: system prompt stable");
    is_str(json_string_value(json_object_get(json_array_get(m, 3), "role")),
           "system", "volatile: a system message");
    is_str(json_string_value(json_object_get(json_array_get(m, 3), "content")),
           "Current time: 2026-11-28T01:00:00Z\nrequest id 9f3a",
           "volatile: holds the matches");
    is_str(json_string_value(json_object_get(json_array_get(m, 4), "content")),
           "q2", "volatile: right before the newest user message");
    json_decref(j);
    free(o); o = NULL;

    /* last message a tool result: the volatile message goes last */
    body = "{\"model\":\"gpt-4o\",\"messages\":["
        "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"Current time: 2026-01-01T00:00:00Z\"}]},"
        "{\"role\":\"user\",\"content\":\"q1\"},"
        "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"type\":"
        "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"r\"}]}";
    is_int(rw(LLMC_API_CHAT, body, &c, &o), 1, "volatile tool: rewritten");
    j = json_loads(o, 0, NULL);
    m = json_object_get(j, "messages");
    is_str(json_string_value(json_object_get(json_array_get(m, 4), "role")),
           "system", "volatile tool: appended after the tool result");
    is_str(json_string_value(json_object_get(json_array_get(
           json_object_get(json_array_get(m, 0), "content"), 0), "text")),
           "", "volatile tool: text part stripped");
    json_decref(j);
    free(o); o = NULL;

    /* Responses API tools: by top-level name, built-ins by type */
    body = "{\"model\":\"gpt-4.1\",\"input\":\"q\",\"tools\":["
        "{\"type\":\"function\",\"name\":\"b\"},{\"type\":\"web_search\"},"
        "{\"type\":\"function\",\"name\":\"a\"}]}";
    is_int(rw(LLMC_API_RESPONSES, body, &c, &o), 1, "responses tools: sorted");
    is_str(o, "{\"model\":\"gpt-4.1\",\"input\":\"q\",\"tools\":["
        "{\"type\":\"web_search\"},{\"name\":\"a\",\"type\":\"function\"},"
        "{\"name\":\"b\",\"type\":\"function\"}]}",
        "responses tools: unnamed first, then by name");
    free(o); o = NULL;

    {
        char e[128] = "";
        is_int(llmc_rewrite_regex_check("Current time: [0-9:]+", e,
                                        sizeof(e)), 0, "regex check: good");
        is_int(llmc_rewrite_regex_check("([0-9", e, sizeof(e)), -1,
               "regex check: bad");
        ok(e[0] != '\0', "regex check: says why (%s)", e);
    }

    /* a regex that does not compile is skipped, the others apply */
    {
        const char          *v2[] = { "([0-9", "request id [a-f0-9]+" };
        llmc_rewrite_conf_t  c2 = { .openai_stable = 1, .volatile_res = v2,
                                    .n_volatile = 2 };
        body = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\","
            "\"content\":\"A request id 9f3a.\"},{\"role\":\"user\","
            "\"content\":\"q\"}]}";
        is_int(rw(LLMC_API_CHAT, body, &c2, &o), 1, "bad regex: others apply");
        ok(o && strstr(o, "\"content\":\"A .\"") != NULL,
           "bad regex: stripped by the good one");
        free(o); o = NULL;
    }

    /* no match: untouched */
    body = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\","
        "\"content\":\"static\"},{\"role\":\"user\",\"content\":\"q\"}]}";
    is_int(rw(LLMC_API_CHAT, body, &c, &o), 0, "volatile no match: untouched");

    /* user text is never searched */
    body = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"Current time: 2026\"}]}";
    is_int(rw(LLMC_API_CHAT, body, &c, &o), 0, "volatile in user: untouched");

    /* Responses API: instructions and a string input */
    body = "{\"model\":\"gpt-4.1\",\"instructions\":\"Rules. Current time: "
        "2026-11-28T01:00:00Z\",\"input\":\"hello\"}";
    is_int(rw(LLMC_API_RESPONSES, body, &c, &o), 1, "responses: rewritten");
    is_str(o, "{\"model\":\"gpt-4.1\",\"instructions\":\"Rules. \",\"input\":"
           "[{\"role\":\"developer\",\"content\":\"Current time: "
           "2026-11-28T01:00:00Z\"},{\"role\":\"user\",\"content\":"
           "\"hello\"}]}",
           "responses: developer item before the input");
    free(o); o = NULL;
}

static void
test_openai_key(void)
{
    llmc_rewrite_conf_t  c = { .openai_cache_key = "",
                               .openai_retention = "24h" };
    llmc_rewrite_conf_t  lit = { .openai_cache_key = "tenant-7" };
    char                *o = NULL, *o2 = NULL;
    json_t              *j;
    const char          *k1, *b1, *b2, *b3;

    b1 = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\","
         "\"content\":\"S\"},{\"role\":\"user\",\"content\":\"one\"}]}";
    b2 = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\","
         "\"content\":\"S\"},{\"role\":\"user\",\"content\":\"two\"}]}";
    b3 = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\","
         "\"content\":\"T\"},{\"role\":\"user\",\"content\":\"one\"}]}";
    is_int(rw(LLMC_API_CHAT, b1, &c, &o), 1, "key: rewritten");
    j = json_loads(o, 0, NULL);
    k1 = json_string_value(json_object_get(j, "prompt_cache_key"));
    ok(k1 && strncmp(k1, "llmc-", 5) == 0 && strlen(k1) == 21,
       "key: derived (%s)", k1 ? k1 : "none");
    is_str(json_string_value(json_object_get(j, "prompt_cache_retention")),
           "24h", "key: retention set");
    is_int(rw(LLMC_API_CHAT, b2, &c, &o2), 1, "key 2: rewritten");
    ok(o2 && strstr(o2, k1) != NULL, "key: same prefix, same key");
    free(o2); o2 = NULL;
    is_int(rw(LLMC_API_CHAT, b3, &c, &o2), 1, "key 3: rewritten");
    ok(o2 && strstr(o2, k1) == NULL, "key: another system, another key");
    free(o2); o2 = NULL;
    json_decref(j);
    free(o); o = NULL;

    is_int(rw(LLMC_API_CHAT, b1, &lit, &o), 1, "literal key: rewritten");
    ok(o && strstr(o, "\"prompt_cache_key\":\"tenant-7\"") != NULL,
       "literal key: set");
    free(o); o = NULL;

    /* the moved volatile message is not part of the key */
    {
        const char          *vol[] = { "at [0-9:]+" };
        llmc_rewrite_conf_t  cv = { .openai_stable = 1, .volatile_res = vol,
                                    .n_volatile = 1, .openai_cache_key = "" };
        b1 = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\","
             "\"content\":\"S at 10:01\"},{\"role\":\"user\","
             "\"content\":\"one\"}]}";
        b2 = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\","
             "\"content\":\"S at 10:02\"},{\"role\":\"user\","
             "\"content\":\"one\"}]}";
        is_int(rw(LLMC_API_CHAT, b1, &cv, &o), 1, "key+volatile 1: rewritten");
        is_int(rw(LLMC_API_CHAT, b2, &cv, &o2), 1, "key+volatile 2: rewritten");
        j = json_loads(o, 0, NULL);
        k1 = json_string_value(json_object_get(j, "prompt_cache_key"));
        ok(k1 && o2 && strstr(o2, k1) != NULL,
           "key+volatile: another time, the same key");
        json_decref(j);
        free(o); free(o2); o = o2 = NULL;
    }

    b1 = "{\"model\":\"gpt-4o\",\"prompt_cache_key\":\"mine\","
         "\"prompt_cache_retention\":\"in_memory\",\"messages\":[]}";
    is_int(rw(LLMC_API_CHAT, b1, &c, &o), 0, "client key and retention win");
}

/* the rewritten body says exactly what the original said, plus markers */
static void
test_output(void)
{
    llmc_rewrite_conf_t  c = { .anthropic_auto = 1 };
    char                *o = NULL, *big = text_of(1100, 'o'), body[8192];
    json_t              *a, *b, *blk;

    snprintf(body, sizeof(body),
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":9,"
        "\"temperature\":0.7,\"top_p\":1.0,\"x\":[1e300,"
        "0.30000000000000004,-0.0,123456789012345678,2.5e-8],"
        "\"metadata\":{\"user_id\":\"a\\\"b\\\\c/\\u0001\\n\\u00e9"
        "\\ud83d\\ude00\"},"
        "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", big);
    is_int(rw(LLMC_API_MESSAGES, body, &c, &o), 1, "output: rewritten");
    ok(o && strstr(o, "\"temperature\":0.7,\"top_p\":1.0,\"x\":[1e+300,"
       "0.30000000000000004,-0.0,123456789012345678,2.5e-08]") != NULL,
       "output: reals in their shortest exact form");
    ok(o && strstr(o, "\"user_id\":\"a\\\"b\\\\c/\\u0001\\n\xc3\xa9"
       "\xf0\x9f\x98\x80\"") != NULL, "output: string escapes");
    a = json_loads(body, 0, NULL);
    b = o ? json_loads(o, 0, NULL) : NULL;
    blk = json_array_get(json_object_get(json_array_get(
              json_object_get(b, "messages"), 0), "content"), 0);
    ok(blk && json_object_del(blk, "cache_control") == 0, "output: marker");
    /* undo the wrapping, then it must equal the original */
    if (blk) {
        json_object_set(json_array_get(json_object_get(b, "messages"), 0),
                        "content", json_object_get(blk, "text"));
    }
    ok(json_equal(a, b), "output: the same JSON otherwise");
    json_decref(a);
    json_decref(b);
    free(o);
    free(big);
}

/* --- against the provider mock (t/mock/provider.py) ---------------------- */

static char   mock_url[64];

static pid_t
mock_start(void)
{
    int                 fd, p[2];
    pid_t               pid;
    char                port[16], line[64];
    FILE               *f;
    struct sockaddr_in  sa;
    socklen_t           sl = sizeof(sa);

    if (access("t/mock/provider.py", R_OK) != 0) {
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0
        || getsockname(fd, (struct sockaddr *) &sa, &sl) != 0 || pipe(p))
    {
        return -1;
    }
    close(fd);
    snprintf(port, sizeof(port), "%d", ntohs(sa.sin_port));
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
        if (pid > 0) {
            kill(pid, SIGTERM);
            waitpid(pid, NULL, 0);
        }
        return -1;
    }
    fclose(f);
    snprintf(mock_url, sizeof(mock_url), "http://127.0.0.1:%s", port);
    return pid;
}

static size_t
mock_write(char *d, size_t size, size_t n, void *ud)
{
    json_t  **acc = ud;
    size_t    len = size * n, old = json_string_length(*acc);
    char     *buf = malloc(old + len);

    memcpy(buf, json_string_value(*acc), old);
    memcpy(buf + old, d, len);
    json_string_setn_nocheck(*acc, buf, old + len);
    free(buf);
    return len;
}

/* POSTs body; returns the status, the usage in *u */
static long
mock_post(const char *path, const char *body, llmc_api_e api,
    llmc_usage_t *u)
{
    char                url[128];
    long                status = 0;
    CURL               *c = curl_easy_init();
    json_t             *acc = json_string("");
    struct curl_slist  *h = NULL;

    snprintf(url, sizeof(url), "%s%s", mock_url, path);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mock_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &acc);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    }
    memset(u, 0, sizeof(*u));
    if (status == 200) {
        llmc_usage_parse(api, json_string_value(acc), json_string_length(acc),
                         u);
    } else if (status != 0) {
        printf("# %ld: %.300s\n", status, json_string_value(acc));
    }
    json_decref(acc);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

static void
test_mock(void)
{
    llmc_rewrite_conf_t  c = { .anthropic_auto = 1 };
    llmc_rewrite_conf_t  c1 = { .anthropic_auto = 1, .anthropic_ttl_1h = 1 };
    const char          *vol[] = { "Current time: [0-9:]+" };
    llmc_rewrite_conf_t  co = { .openai_stable = 1, .volatile_res = vol,
                                .n_volatile = 1, .openai_cache_key = "" };
    llmc_usage_t         u1, u2;
    char                *b, *o = NULL, *o2 = NULL, *sys, body[16384];
    char                *t = text_of(200, 't');
    pid_t                pid;
    int                  i;

    pid = mock_start();
    if (pid < 0) {
        ok(1, "# SKIP mock: python3 t/mock/provider.py did not start "
           "(run from the repository root)");
        free(t);
        return;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);

    /* a multi-turn conversation, rewritten, twice: the second reads */
    b = anth("claude-sonnet-4-5", 3, 500, 1500, 5, 300);
    is_int(rw(LLMC_API_MESSAGES, b, &c, &o), 1, "mock: rewritten");
    is_int(mock_post("/v1/messages", o, LLMC_API_MESSAGES, &u1), 200,
           "mock: accepts the rewritten body");
    ok(u1.cache_write_5m > 0 && u1.cached == 0, "mock: first send writes "
       "(%lld)", (long long) u1.cache_write_5m);
    is_int(mock_post("/v1/messages", o, LLMC_API_MESSAGES, &u2), 200,
           "mock: second send");
    ok(u2.cached > 0 && u2.cache_write_5m == 0,
       "mock: second send reads, cache_read_input_tokens %lld",
       (long long) u2.cached);
    is_int(mock_post("/v1/messages", b, LLMC_API_MESSAGES, &u2), 200,
           "mock: the original body");
    ok(u2.cached == 0, "mock: without markers nothing is read");
    free(o); o = NULL;
    free(b);

    /* 1h markers are accepted, and so are client 5m + ours */
    b = anth("claude-sonnet-4-5", 3, 500, 1500, 5, 300);
    is_int(rw(LLMC_API_MESSAGES, b, &c1, &o), 1, "mock 1h: rewritten");
    is_int(mock_post("/v1/messages", o, LLMC_API_MESSAGES, &u1), 200,
           "mock 1h: accepted");
    ok(u1.cache_write_1h > 0 || u1.cached > 0, "mock 1h: 1h entries");
    free(o); o = NULL;
    free(b);
    sys = text_of(1500, 's');
    for (i = 0; i < 2; i++) {
        snprintf(body, sizeof(body),
            "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":9,%s"
            "\"system\":[{\"type\":\"text\",\"text\":\"%s\"" CC5 "}],"
            MSGS(CC5, "", "") "}", i ? "\"cache_control\":{\"type\":"
            "\"ephemeral\"}," : "", sys, t, t, t);
        is_int(rw(LLMC_API_MESSAGES, body, &c1, &o), 1,
               "mock client markers %d: rewritten", i);
        is_int(mock_post("/v1/messages", o, LLMC_API_MESSAGES, &u1), 200,
               "mock client markers %d: accepted (%s)", i, marks(o));
        free(o); o = NULL;
    }
    free(sys);

    /* OpenAI: the time moves, the rewritten prefix stays cached */
    sys = text_of(1500, 'o');
    for (i = 0; i < 2; i++) {
        snprintf(body, sizeof(body),
            "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\","
            "\"content\":\"Current time: 10:0%d:00. %s\"},{\"role\":"
            "\"user\",\"content\":\"q%d\"}]}", i, sys, i);
        is_int(mock_post("/v1/chat/completions", body, LLMC_API_CHAT, &u1),
               200, "mock openai %d: original accepted", i);
        is_int(rw(LLMC_API_CHAT, body, &co, i ? &o2 : &o), 1,
               "mock openai %d: rewritten", i);
        is_int(mock_post("/v1/chat/completions", i ? o2 : o, LLMC_API_CHAT,
                         &u2), 200, "mock openai %d: rewritten accepted", i);
    }
    ok(u1.cached == 0, "mock openai: a timestamp first: nothing cached");
    ok(u2.cached >= 1024, "mock openai: rewritten: %lld cached",
       (long long) u2.cached);
    free(o);
    free(o2);
    free(sys);

    free(t);
    curl_global_cleanup();
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* every jansson allocation failing in turn: 0 or -1, never a crash, a
 * wrong body or a leak (valgrind).  This found json_dumps() dropping bytes
 * when an allocation fails. */
static long  fail_at, n_alloc;

static void *
fail_malloc(size_t n)
{
    return ++n_alloc == fail_at ? NULL : malloc(n);
}

static void
test_alloc_failures(void)
{
    const char          *vol[] = { "at [0-9:]+" };
    llmc_min_tokens_t    one[] = { { "*", 1 } };
    llmc_rewrite_conf_t  c = { .anthropic_auto = 1, .openai_stable = 1,
                               .volatile_res = vol, .n_volatile = 1,
                               .openai_cache_key = "", .min_tokens = one,
                               .n_min_tokens = 1 };
    const char          *bodies[2], *want[2];
    llmc_api_e           apis[2] = { LLMC_API_MESSAGES, LLMC_API_CHAT };
    char                *o, *good;
    int                  i, rc, bad = 0, steps = 0;

    bodies[0] = "{\"model\":\"m\",\"tools\":[{\"name\":\"t\"}],"
        "\"system\":\"sys\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"one\"},{\"role\":\"assistant\",\"content\":"
        "\"two\"},{\"role\":\"user\",\"content\":\"three\"}]}";
    bodies[1] = "{\"model\":\"m\",\"tools\":[{\"type\":\"function\","
        "\"function\":{\"name\":\"b\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"x\":{}}}}},{\"type\":\"function\",\"function\":"
        "{\"name\":\"a\"}}],\"messages\":[{\"role\":\"system\","
        "\"content\":\"S at 10:00\"},{\"role\":\"user\",\"content\":"
        "\"q\"}]}";
    for (i = 0; i < 2; i++) {
        rc = rw(apis[i], bodies[i], &c, &o);
        is_int(rc, 1, "alloc %d: rewritten without failures", i);
        want[i] = o;
        for (fail_at = 1; ; fail_at++) {
            n_alloc = 0;
            json_set_alloc_funcs(fail_malloc, free);
            rc = rw(apis[i], bodies[i], &c, &o);
            json_set_alloc_funcs(malloc, free);
            steps++;
            if (n_alloc < fail_at) {
                break;                    /* no failure left to inject */
            }
            /* a failed estimate only lowers a count: the same body */
            if ((rc == 1 && strcmp(o, want[i]) != 0)
                || (rc != 1 && (o != NULL || (rc != 0 && rc != -1))))
            {
                printf("# fail_at %ld: %d %s\n", fail_at, rc, o ? o : "");
                bad++;
            }
            free(o);
        }
        good = o;
        ok(rc == 1 && good && strcmp(good, want[i]) == 0,
           "alloc %d: the same body once nothing fails", i);
        free(good);
        free((char *) want[i]);
    }
    is_int(bad, 0, "alloc: %d failures, each 0 or -1 with no body, or the "
           "right body", steps);
}

int
main(void)
{
    test_output();
    test_estimate();
    test_glob_min();
    test_anthropic_placement();
    test_anthropic_blocks();
    test_anthropic_limits();
    test_untouched();
    test_openai();
    test_openai_key();
    test_alloc_failures();
    test_mock();
    return done_testing();
}
