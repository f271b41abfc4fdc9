/*
 * SHA-256 against the FIPS 180-4 vectors, and the cache keys: what must
 * and must not change the scope and the exact key.
 */

#include <string.h>

#include "tap.h"
#include "llmc_key.h"

static void
sha_hex(const void *data, size_t len, char out[65])
{
    uint8_t        md[32];
    llmc_sha256_t  s;

    llmc_sha256_init(&s);
    llmc_sha256_update(&s, data, len);
    llmc_sha256_final(&s, md);
    llmc_hex(md, 32, out);
}

static void
test_sha256(void)
{
    int            i;
    char           hex[65], hex2[65], *a;
    uint8_t        md[32];
    llmc_sha256_t  s;
    static const char  m448[] =
        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

    sha_hex("", 0, hex);
    is_str(hex, "e3b0c44298fc1c149afbf4c8996fb924"
                "27ae41e4649b934ca495991b7852b855", "sha256(\"\")");
    sha_hex("abc", 3, hex);
    is_str(hex, "ba7816bf8f01cfea414140de5dae2223"
                "b00361a396177a9cb410ff61f20015ad", "sha256(\"abc\")");
    sha_hex(m448, strlen(m448), hex);
    is_str(hex, "248d6a61d20638b8e5c026930c3e6039"
                "a33ce45964ff2167f6ecedd419db06c1", "sha256(448-bit message)");

    /* a million 'a', fed in uneven pieces to cross block boundaries */
    a = malloc(1000000);
    memset(a, 'a', 1000000);
    llmc_sha256_init(&s);
    for (i = 0; i < 1000000; ) {
        int n = 1 + (i * 7) % 131;
        if (n > 1000000 - i) {
            n = 1000000 - i;
        }
        llmc_sha256_update(&s, a + i, n);
        i += n;
    }
    llmc_sha256_final(&s, md);
    llmc_hex(md, 32, hex);
    is_str(hex, "cdc76e5c9914fb9281a1c7e284d73e67"
                "f1809a48a497200e046d39ccc7112cd0", "sha256(1e6 x 'a')");
    sha_hex(a, 1000000, hex2);
    is_str(hex2, hex, "one update gives the same digest");
    free(a);

    /* the 55/56/64-byte padding edges agree between one and many updates */
    for (i = 54; i <= 65; i++) {
        char    buf[65];
        int     k;

        memset(buf, 'x', sizeof(buf));
        sha_hex(buf, i, hex);
        llmc_sha256_init(&s);
        for (k = 0; k < i; k++) {
            llmc_sha256_update(&s, buf + k, 1);
        }
        llmc_sha256_final(&s, md);
        llmc_hex(md, 32, hex2);
        if (strcmp(hex, hex2) != 0) {
            break;
        }
    }
    is_int(i, 66, "byte-by-byte updates agree at the padding edges");
}

static llmc_request_t
fake_req(const char *scope)
{
    llmc_request_t  r;

    memset(&r, 0, sizeof(r));
    r.provider = LLMC_PROVIDER_OPENAI;
    r.api = LLMC_API_CHAT;
    r.scope_json = (char *) scope;
    r.scope_len = strlen(scope);
    return r;
}

static void
test_key_fields(void)
{
    char            rk[LLMC_REDIS_KEY_MAX], small[40];
    size_t          n;
    llmc_key_t      k1, k2;
    llmc_request_t  r = fake_req("{\"model\":\"m\"}");

    llmc_key_make(&k1, "sk-tenant", 9, &r, "hello", 5);
    is_int(strlen(k1.scope), LLMC_SCOPE_HEX_LEN, "scope is 32 hex digits");
    is_int(strlen(k1.exact), LLMC_EXACT_HEX_LEN, "exact is 64 hex digits");
    is_int(strspn(k1.scope, "0123456789abcdef"), LLMC_SCOPE_HEX_LEN,
           "scope is lower-case hex");

    llmc_key_make(&k2, "sk-tenant", 9, &r, "hello", 5);
    ok(memcmp(&k1, &k2, sizeof(k1)) == 0, "deterministic");

    llmc_key_make(&k2, "sk-tenanT", 9, &r, "hello", 5);
    ok(strcmp(k1.scope, k2.scope) != 0, "tenant changes the scope");
    llmc_key_make(&k2, "", 0, &r, "hello", 5);
    ok(strcmp(k1.scope, k2.scope) != 0, "empty tenant is its own scope");
    llmc_key_make(&k2, NULL, 0, &r, "hello", 5);
    llmc_key_make(&k1, "", 0, &r, "hello", 5);
    ok(strcmp(k1.scope, k2.scope) == 0, "NULL tenant is the empty tenant");

    llmc_key_make(&k1, "t", 1, &r, "hello", 5);
    llmc_key_make(&k2, "t", 1, &r, "hellO", 5);
    ok(strcmp(k1.scope, k2.scope) == 0, "prompt leaves the scope");
    ok(strcmp(k1.exact, k2.exact) != 0, "prompt changes the exact key");

    r.api = LLMC_API_RESPONSES;
    llmc_key_make(&k2, "t", 1, &r, "hello", 5);
    ok(strcmp(k1.scope, k2.scope) != 0, "API changes the scope");
    ok(strcmp(k1.exact, k2.exact) != 0, "... and the exact key");
    r.api = LLMC_API_CHAT;
    r.provider = LLMC_PROVIDER_ANTHROPIC;
    llmc_key_make(&k2, "t", 1, &r, "hello", 5);
    ok(strcmp(k1.scope, k2.scope) != 0, "provider changes the scope");
    r.provider = LLMC_PROVIDER_OPENAI;

    /* length prefixes: moving bytes between fields changes the key */
    {
        llmc_request_t  r1 = fake_req("ab"), r2 = fake_req("abc");

        llmc_key_make(&k1, "tc", 2, &r1, "", 0);
        llmc_key_make(&k2, "t", 1, &r2, "", 0);
        ok(strcmp(k1.scope, k2.scope) != 0, "tenant/scope boundary");
        llmc_key_make(&k1, "t", 1, &r1, "c", 1);
        llmc_key_make(&k2, "t", 1, &r2, "", 0);
        ok(strcmp(k1.exact, k2.exact) != 0, "scope/prompt boundary");
    }

    llmc_key_make(&k1, "sk-tenant", 9, &r, "hello", 5);
    n = llmc_key_redis_entry(&k1, rk, sizeof(rk));
    is_int(n, strlen(rk), "redis key length returned");
    is_int(n, 5 + 1 + 32 + 4 + 64, "redis key length");
    ok(strncmp(rk, "llmc:{", 6) == 0 && rk[38] == '}'
       && strncmp(rk + 38, "}:e:", 4) == 0, "redis key shape: %s", rk);
    ok(strncmp(rk + 6, k1.scope, 32) == 0, "hash tag is the scope");
    ok(strcmp(rk + 42, k1.exact) == 0, "suffix is the exact key");
    ok(strstr(rk, "tenant") == NULL, "tenant not in the redis key");

    is_int(llmc_key_redis_entry(&k1, small, sizeof(small)), 0,
           "too small a buffer: 0");
    is_str(small, "", "too small a buffer: empty string");
    is_int(llmc_key_redis_entry(&k1, rk, n), 0, "no room for the NUL: 0");
    is_int(llmc_key_redis_entry(&k1, rk, n + 1), n, "exactly enough room");
}

#define TENANT  "sk-proj-SECRET-tenant-4711"

/* keys of a chat body for TENANT; returns 0 or -1 */
static int
keys_of(llmc_api_e api, const char *tenant, const char *body, llmc_key_t *k)
{
    int             rc;
    char            err[256], rk[LLMC_REDIS_KEY_MAX];
    llmc_request_t  r;

    rc = llmc_request_parse(&r, api, body, strlen(body), err, sizeof(err));
    if (rc != 0) {
        printf("# parse: %s\n", err);
        return -1;
    }
    llmc_key_make(k, tenant, strlen(tenant), &r, r.prompt, r.prompt_len);

    /* the tenant key never reaches anything that is stored or logged */
    llmc_key_redis_entry(k, rk, sizeof(rk));
    if (*tenant && (strstr(r.scope_json, tenant) || strstr(rk, tenant)
        || strstr(r.prompt, tenant)))
    {
        printf("# tenant leaked\n");
        rc = -1;
    }
    llmc_request_free(&r);
    return rc;
}

#define CHAT(extra, sys, last)                                               \
    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":"  \
    "\"" sys "\"},{\"role\":\"user\",\"content\":\"hi\"},{\"role\":"        \
    "\"assistant\",\"content\":\"hello\"},{\"role\":\"user\",\"content\":"   \
    "\"" last "\"}]" extra "}"

#define TOOL  "[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]"

static void
test_request_keys(void)
{
    size_t  i;
    llmc_key_t  base, k;
    static const struct {
        const char  *body;
        const char  *what;
        int          same_scope;
        int          same_exact;
    } t[] = {
        { CHAT("", "S", "q"), "the same request", 1, 1 },
        { CHAT("", "S", "other question"), "only the latest text", 1, 0 },
        { CHAT(",\"temperature\":1", "S", "q"), "explicit default temp",
          1, 1 },
        { CHAT(",\"temperature\":1.0,\"top_p\":1", "S", "q"),
          "explicit defaults as reals", 1, 1 },
        { CHAT(",\"stream\":true", "S", "q"), "stream true", 1, 1 },
        { CHAT(",\"stream\":false", "S", "q"), "stream false", 1, 1 },
        { "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\","
          "\"content\":[{\"type\":\"text\",\"text\":\"S\",\"cache_control\""
          ":{\"type\":\"ephemeral\"}}]},{\"role\":\"user\",\"content\":"
          "\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"},{\"role\""
          ":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"q\","
          "\"cache_control\":{\"type\":\"ephemeral\"}}]}]}",
          "cache_control added", 1, 1 },
        { CHAT(",\"temperature\":0.2", "S", "q"), "temperature", 0, 0 },
        { CHAT("", "T", "q"), "system prompt", 0, 0 },
        { CHAT(",\"tools\":" TOOL, "S", "q"), "tools", 0, 0 },
        { CHAT(",\"tools\":" TOOL ",\"tool_choice\":\"auto\"", "S", "q"),
          "tools with the default choice", 0, 0 },
        { CHAT(",\"x_unknown\":1", "S", "q"), "an unknown field", 0, 0 },
        { "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\","
          "\"content\":\"S\"},{\"role\":\"user\",\"content\":\"hi\"},"
          "{\"role\":\"assistant\",\"content\":\"hello\"},{\"role\":"
          "\"user\",\"content\":\"q\"}]}", "model", 0, 0 },
        { "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\","
          "\"content\":\"S\"},{\"role\":\"user\",\"content\":\"hey\"},"
          "{\"role\":\"assistant\",\"content\":\"hello\"},{\"role\":"
          "\"user\",\"content\":\"q\"}]}", "an earlier turn", 0, 0 },
    };

    if (keys_of(LLMC_API_CHAT, TENANT, CHAT("", "S", "q"), &base) != 0) {
        ok(0, "base request");
        return;
    }

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (!ok(keys_of(LLMC_API_CHAT, TENANT, t[i].body, &k) == 0,
                "keys: %s", t[i].what))
        {
            continue;
        }
        ok((strcmp(base.scope, k.scope) == 0) == t[i].same_scope,
           "%s: %s scope", t[i].what, t[i].same_scope ? "same" : "other");
        ok((strcmp(base.exact, k.exact) == 0) == t[i].same_exact,
           "%s: %s exact key", t[i].what,
           t[i].same_exact ? "same" : "other");
    }

    /* tool_choice given explicitly differs from the default one */
    {
        llmc_key_t  a, b;

        keys_of(LLMC_API_CHAT, TENANT, CHAT(",\"tools\":" TOOL, "S", "q"),
                &a);
        keys_of(LLMC_API_CHAT, TENANT, CHAT(",\"tools\":" TOOL
                ",\"tool_choice\":\"none\"", "S", "q"), &b);
        ok(strcmp(a.scope, b.scope) != 0, "tool_choice changes the scope");
    }

    ok(keys_of(LLMC_API_CHAT, "sk-other-tenant", CHAT("", "S", "q"), &k) == 0
       && strcmp(base.scope, k.scope) != 0
       && strcmp(base.exact, k.exact) != 0, "another tenant: other keys");
    ok(keys_of(LLMC_API_CHAT, "", CHAT("", "S", "q"), &k) == 0
       && strcmp(base.scope, k.scope) != 0, "empty tenant: other keys");

    /* the same text through another API is another scope */
    {
        llmc_key_t  a, b;

        keys_of(LLMC_API_RESPONSES, TENANT,
                "{\"model\":\"gpt-4o\",\"input\":\"q\"}", &a);
        keys_of(LLMC_API_COMPLETIONS, TENANT,
                "{\"model\":\"gpt-4o\",\"prompt\":\"q\"}", &b);
        ok(strcmp(a.scope, b.scope) != 0 && strcmp(a.scope, base.scope) != 0,
           "API is part of the scope");
    }
}

int
main(void)
{
    test_sha256();
    test_key_fields();
    test_request_keys();
    return done_testing();
}
