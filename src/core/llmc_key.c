/*
 * SHA-256 (FIPS 180-4) and the cache keys built on it.
 *
 * Every field that goes into a key is written as an 8-byte big-endian
 * length followed by its bytes, so no two different field lists hash the
 * same byte string ("ab" + "c" vs "a" + "bc").
 */

#include <string.h>

#include "llmc_key.h"

#define LLMC_KEY_SCOPE_TAG  "llmc-scope-v1"
#define LLMC_KEY_EXACT_TAG  "llmc-exact-v1"

static const uint32_t  llmc_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

#define ROR32(x, n)  (((x) >> (n)) | ((x) << (32 - (n))))

#define SHA_S0(x)   (ROR32(x, 2) ^ ROR32(x, 13) ^ ROR32(x, 22))
#define SHA_S1(x)   (ROR32(x, 6) ^ ROR32(x, 11) ^ ROR32(x, 25))
#define SHA_G0(x)   (ROR32(x, 7) ^ ROR32(x, 18) ^ ((x) >> 3))
#define SHA_G1(x)   (ROR32(x, 17) ^ ROR32(x, 19) ^ ((x) >> 10))
#define SHA_CH(x, y, z)   ((z) ^ ((x) & ((y) ^ (z))))
#define SHA_MAJ(x, y, z)  (((x) & (y)) | ((z) & ((x) | (y))))

/* one round; the eight working variables rotate through the arguments
 * instead of being moved, which halves the work of a plain loop */
#define SHA_ROUND(a, b, c, d, e, f, g, h, i)                                 \
    do {                                                                     \
        uint32_t t1_ = h + SHA_S1(e) + SHA_CH(e, f, g) + llmc_sha256_k[i]    \
                       + w[i];                                               \
        d += t1_;                                                            \
        h = t1_ + SHA_S0(a) + SHA_MAJ(a, b, c);                              \
    } while (0)

static void
llmc_sha256_block(llmc_sha256_t *s, const uint8_t *p)
{
    int       i;
    uint32_t  w[64], a, b, c, d, e, f, g, h;

    for (i = 0; i < 16; i++) {
        w[i] = (uint32_t) p[4 * i] << 24 | (uint32_t) p[4 * i + 1] << 16
               | (uint32_t) p[4 * i + 2] << 8 | (uint32_t) p[4 * i + 3];
    }
    for (i = 16; i < 64; i++) {
        w[i] = w[i - 16] + SHA_G0(w[i - 15]) + w[i - 7] + SHA_G1(w[i - 2]);
    }

    a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3];
    e = s->h[4]; f = s->h[5]; g = s->h[6]; h = s->h[7];

    for (i = 0; i < 64; i += 8) {
        SHA_ROUND(a, b, c, d, e, f, g, h, i);
        SHA_ROUND(h, a, b, c, d, e, f, g, i + 1);
        SHA_ROUND(g, h, a, b, c, d, e, f, i + 2);
        SHA_ROUND(f, g, h, a, b, c, d, e, i + 3);
        SHA_ROUND(e, f, g, h, a, b, c, d, i + 4);
        SHA_ROUND(d, e, f, g, h, a, b, c, i + 5);
        SHA_ROUND(c, d, e, f, g, h, a, b, i + 6);
        SHA_ROUND(b, c, d, e, f, g, h, a, i + 7);
    }

    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
    s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

void
llmc_sha256_init(llmc_sha256_t *s)
{
    static const uint32_t  iv[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
    };

    memcpy(s->h, iv, sizeof(iv));
    s->len = 0;
    s->n = 0;
}

void
llmc_sha256_update(llmc_sha256_t *s, const void *data, size_t len)
{
    size_t          take;
    const uint8_t  *p = data;

    s->len += len;

    if (s->n) {
        take = 64 - s->n < len ? 64 - s->n : len;
        memcpy(s->buf + s->n, p, take);
        s->n += take;
        p += take;
        len -= take;
        if (s->n < 64) {
            return;
        }
        llmc_sha256_block(s, s->buf);
        s->n = 0;
    }

    while (len >= 64) {
        llmc_sha256_block(s, p);
        p += 64;
        len -= 64;
    }

    if (len) {
        memcpy(s->buf, p, len);
        s->n = len;
    }
}

void
llmc_sha256_final(llmc_sha256_t *s, uint8_t out[32])
{
    int       i;
    uint64_t  bits = s->len * 8;

    s->buf[s->n++] = 0x80;
    if (s->n > 56) {
        memset(s->buf + s->n, 0, 64 - s->n);
        llmc_sha256_block(s, s->buf);
        s->n = 0;
    }
    memset(s->buf + s->n, 0, 56 - s->n);
    for (i = 0; i < 8; i++) {
        s->buf[56 + i] = (uint8_t) (bits >> (56 - 8 * i));
    }
    llmc_sha256_block(s, s->buf);

    for (i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t) (s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t) (s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t) (s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t) s->h[i];
    }

    /* the state held key material (the tenant): do not leave it behind */
    memset(s->buf, 0, sizeof(s->buf));
}

void
llmc_hex(const uint8_t *in, size_t len, char *out)
{
    size_t             i;
    static const char  digits[] = "0123456789abcdef";

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

static void
llmc_key_field(llmc_sha256_t *s, const void *data, size_t len)
{
    int      i;
    uint8_t  pfx[8];

    for (i = 0; i < 8; i++) {
        pfx[i] = (uint8_t) ((uint64_t) len >> (56 - 8 * i));
    }
    llmc_sha256_update(s, pfx, sizeof(pfx));
    llmc_sha256_update(s, data, len);
}

static void
llmc_key_str(llmc_sha256_t *s, const char *str)
{
    llmc_key_field(s, str, strlen(str));
}

/*
 * The scope hashes of the last few scopes, per thread.  Requests that hit
 * mostly share a scope (model, parameters, system prompt, tools) and
 * differ in the prompt, and hashing the scope is most of a key's cost: a
 * few hundred bytes against one or two blocks for the exact key.  A slot
 * is used only when the tenant's hash, provider, API and every scope byte
 * are equal, so the key is the one computed afresh.  Longer scopes are
 * hashed every time.
 */
#define LLMC_KEY_MEMO_N    4
#define LLMC_KEY_MEMO_MAX  4096

typedef struct {
    int       used;
    int       provider;
    int       api;
    size_t    len;
    uint8_t   tenant_md[32];
    char      hex[LLMC_SCOPE_HEX_LEN + 1];
    char      scope[LLMC_KEY_MEMO_MAX];
} llmc_key_memo_t;

static __thread llmc_key_memo_t  llmc_key_memo[LLMC_KEY_MEMO_N];
static __thread unsigned         llmc_key_memo_next;

static llmc_key_memo_t *
llmc_key_memo_find(const uint8_t tenant_md[32], const llmc_request_t *req,
    const char *scope, size_t len)
{
    unsigned          i;
    llmc_key_memo_t  *m;

    if (len > LLMC_KEY_MEMO_MAX) {
        return NULL;
    }
    for (i = 0; i < LLMC_KEY_MEMO_N; i++) {
        m = &llmc_key_memo[i];
        if (m->used && m->len == len && m->provider == (int) req->provider
            && m->api == (int) req->api
            && memcmp(m->tenant_md, tenant_md, 32) == 0
            && memcmp(m->scope, scope, len) == 0)
        {
            return m;
        }
    }
    return NULL;
}

static void
llmc_key_memo_add(const uint8_t tenant_md[32], const llmc_request_t *req,
    const char *scope, size_t len, const char *hex)
{
    llmc_key_memo_t  *m;

    if (len > LLMC_KEY_MEMO_MAX) {
        return;
    }
    m = &llmc_key_memo[llmc_key_memo_next++ % LLMC_KEY_MEMO_N];
    m->used = 1;
    m->provider = (int) req->provider;
    m->api = (int) req->api;
    m->len = len;
    memcpy(m->tenant_md, tenant_md, 32);
    memcpy(m->hex, hex, sizeof(m->hex));
    memcpy(m->scope, scope, len);
}

void
llmc_key_make(llmc_key_t *key, const char *tenant, size_t tenant_len,
    const llmc_request_t *req, const char *prompt, size_t prompt_len)
{
    size_t            scope_len;
    uint8_t           tenant_md[32], md[32];
    const char       *provider, *scope;
    llmc_sha256_t     s;
    llmc_key_memo_t  *memo;

    /* the tenant key enters only through its own hash */
    llmc_sha256_init(&s);
    llmc_sha256_update(&s, tenant ? tenant : "", tenant ? tenant_len : 0);
    llmc_sha256_final(&s, tenant_md);

    switch (req->provider) {
    case LLMC_PROVIDER_OPENAI:
        provider = "openai";
        break;
    case LLMC_PROVIDER_ANTHROPIC:
        provider = "anthropic";
        break;
    default:
        provider = "unknown";
    }

    scope = req->scope_json ? req->scope_json : "";
    scope_len = req->scope_json ? req->scope_len : 0;

    memo = llmc_key_memo_find(tenant_md, req, scope, scope_len);
    if (memo) {
        memcpy(key->scope, memo->hex, sizeof(key->scope));

    } else {
        llmc_sha256_init(&s);
        llmc_key_str(&s, LLMC_KEY_SCOPE_TAG);
        llmc_key_field(&s, tenant_md, sizeof(tenant_md));
        llmc_key_str(&s, provider);
        llmc_key_str(&s, llmc_api_name(req->api));
        llmc_key_field(&s, scope, scope_len);
        llmc_sha256_final(&s, md);
        llmc_hex(md, LLMC_SCOPE_HEX_LEN / 2, key->scope);
        llmc_key_memo_add(tenant_md, req, scope, scope_len, key->scope);
    }

    llmc_sha256_init(&s);
    llmc_key_str(&s, LLMC_KEY_EXACT_TAG);
    llmc_key_field(&s, key->scope, LLMC_SCOPE_HEX_LEN);
    llmc_key_field(&s, prompt ? prompt : "", prompt ? prompt_len : 0);
    llmc_sha256_final(&s, md);
    llmc_hex(md, sizeof(md), key->exact);

    memset(tenant_md, 0, sizeof(tenant_md));
}

size_t
llmc_key_redis_entry(const llmc_key_t *key, char *out, size_t size)
{
    size_t  len;

    len = sizeof(LLMC_KEY_PREFIX) - 1 + 1 + LLMC_SCOPE_HEX_LEN + 4
          + LLMC_EXACT_HEX_LEN;

    if (size < len + 1) {
        if (size) {
            out[0] = '\0';
        }
        return 0;
    }

    memcpy(out, LLMC_KEY_PREFIX "{", sizeof(LLMC_KEY_PREFIX));
    memcpy(out + sizeof(LLMC_KEY_PREFIX), key->scope, LLMC_SCOPE_HEX_LEN);
    memcpy(out + sizeof(LLMC_KEY_PREFIX) + LLMC_SCOPE_HEX_LEN, "}:e:", 4);
    memcpy(out + sizeof(LLMC_KEY_PREFIX) + LLMC_SCOPE_HEX_LEN + 4,
           key->exact, LLMC_EXACT_HEX_LEN);
    out[len] = '\0';

    return len;
}
