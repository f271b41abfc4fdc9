/*
 * llmc_key_make() remembers the scope hashes of recent scopes.  Whatever
 * it remembers, every key must equal the one computed from scratch: here
 * from the documented field layout with the SHA-256 primitives, over
 * sequences that repeat, evict and nearly repeat scopes.
 */

#include <string.h>

#include "tap.h"
#include "llmc_key.h"

static void
field(llmc_sha256_t *s, const void *data, size_t len)
{
    int      i;
    uint8_t  pfx[8];

    for (i = 0; i < 8; i++) {
        pfx[i] = (uint8_t) ((uint64_t) len >> (56 - 8 * i));
    }
    llmc_sha256_update(s, pfx, 8);
    llmc_sha256_update(s, data, len);
}

/* the key from scratch: scope = H(tag, H(tenant), provider, api, scope
 * JSON) cut to 128 bits, exact = H(tag, scope hex, prompt) */
static void
reference(llmc_key_t *key, const char *tenant, const llmc_request_t *req,
    const char *prompt)
{
    uint8_t        t[32], md[32];
    llmc_sha256_t  s;

    llmc_sha256_init(&s);
    llmc_sha256_update(&s, tenant, strlen(tenant));
    llmc_sha256_final(&s, t);

    llmc_sha256_init(&s);
    field(&s, "llmc-scope-v1", 13);
    field(&s, t, 32);
    field(&s, req->provider == LLMC_PROVIDER_OPENAI ? "openai" : "anthropic",
          req->provider == LLMC_PROVIDER_OPENAI ? 6 : 9);
    field(&s, llmc_api_name(req->api), strlen(llmc_api_name(req->api)));
    field(&s, req->scope_json, req->scope_len);
    llmc_sha256_final(&s, md);
    llmc_hex(md, 16, key->scope);

    llmc_sha256_init(&s);
    field(&s, "llmc-exact-v1", 13);
    field(&s, key->scope, 32);
    field(&s, prompt, strlen(prompt));
    llmc_sha256_final(&s, md);
    llmc_hex(md, 32, key->exact);
}

static char  big[3][6000];

int
main(void)
{
    int              i, bad = 0, n = 0;
    char             scope[64];
    llmc_key_t       got, want, first;
    llmc_request_t   req;
    unsigned         x = 12345;
    static const char  *tenants[] = { "Bearer a", "Bearer b", "" };
    static const char  *prompts[] = { "hi", "", "what is 2+2?" };

    for (i = 0; i < 3; i++) {
        memset(big[i], '{', sizeof(big[i]) - 1);
        big[i][100 * (i + 1)] = 'x';
    }

    memset(&req, 0, sizeof(req));
    for (i = 0; i < 4000; i++) {
        x = x * 1103515245 + 12345;

        /* few scopes, so that most lookups find a remembered one; some
         * differ in their last byte only, some are too long to remember */
        switch ((x >> 8) % 4) {
        case 0:
        case 1:
            snprintf(scope, sizeof(scope), "{\"model\":\"m%u\"}",
                     (x >> 12) % 7);
            req.scope_json = scope;
            req.scope_len = strlen(scope);
            break;
        case 2:
            snprintf(scope, sizeof(scope), "{\"model\":\"m0\"}%c",
                     'a' + (x >> 12) % 3);
            req.scope_json = scope;
            req.scope_len = strlen(scope);
            break;
        default:
            req.scope_json = big[(x >> 12) % 3];
            req.scope_len = (x >> 14) % 2 ? 4096 : sizeof(big[0]) - 1;
            break;
        }
        req.api = (x >> 16) % 2 ? LLMC_API_CHAT : LLMC_API_MESSAGES;
        req.provider = llmc_api_provider(req.api);
        if ((x >> 17) % 5 == 0) {
            req.api = LLMC_API_RESPONSES;
            req.provider = LLMC_PROVIDER_OPENAI;
        }

        llmc_key_make(&got, tenants[(x >> 18) % 3],
                      strlen(tenants[(x >> 18) % 3]), &req,
                      prompts[(x >> 20) % 3], strlen(prompts[(x >> 20) % 3]));
        reference(&want, tenants[(x >> 18) % 3], &req,
                  prompts[(x >> 20) % 3]);
        n++;
        if (strcmp(got.scope, want.scope) != 0
            || strcmp(got.exact, want.exact) != 0)
        {
            bad++;
        }
    }
    is_int(bad, 0, "%d keys equal the ones computed from scratch", n);

    /* the same scope for another tenant, then the first again */
    req.scope_json = scope;
    strcpy(scope, "{\"model\":\"x\"}");
    req.scope_len = strlen(scope);
    req.api = LLMC_API_CHAT;
    req.provider = LLMC_PROVIDER_OPENAI;
    llmc_key_make(&first, "Bearer a", 8, &req, "p", 1);
    llmc_key_make(&got, "Bearer b", 8, &req, "p", 1);
    ok(strcmp(first.scope, got.scope) != 0, "another tenant, another scope");
    llmc_key_make(&got, "Bearer a", 8, &req, "p", 1);
    ok(strcmp(first.scope, got.scope) == 0
       && strcmp(first.exact, got.exact) == 0, "the first tenant again");

    /* a scope changed in place after its hash was remembered */
    scope[3] = 'M';
    llmc_key_make(&got, "Bearer a", 8, &req, "p", 1);
    reference(&want, "Bearer a", &req, "p");
    ok(strcmp(got.scope, want.scope) == 0 && strcmp(got.scope, first.scope),
       "a changed scope is hashed again");

    return done_testing();
}
