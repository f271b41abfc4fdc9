/*
 * Cache keys.  The scope hash covers the tenant (hashed; the tenant key is
 * never stored), the provider and API, and the request's scope JSON; the
 * exact key covers the scope and the normalized prompt.  Redis keys carry
 * the scope as a hash tag so a scope lives in one cluster slot:
 *
 *     llmc:{<scope hex>}:e:<exact hex>
 */

#ifndef LLMC_KEY_H
#define LLMC_KEY_H

#include <stddef.h>
#include <stdint.h>

#include "llmc_request.h"

#define LLMC_KEY_PREFIX     "llmc:"
#define LLMC_SCOPE_HEX_LEN  32      /* 128 bits of the scope hash */
#define LLMC_EXACT_HEX_LEN  64      /* SHA-256 */
#define LLMC_REDIS_KEY_MAX  128

typedef struct {
    char  scope[LLMC_SCOPE_HEX_LEN + 1];
    char  exact[LLMC_EXACT_HEX_LEN + 1];
} llmc_key_t;

/* SHA-256. */
typedef struct {
    uint32_t  h[8];
    uint64_t  len;
    uint8_t   buf[64];
    size_t    n;
} llmc_sha256_t;

void llmc_sha256_init(llmc_sha256_t *s);
void llmc_sha256_update(llmc_sha256_t *s, const void *data, size_t len);
void llmc_sha256_final(llmc_sha256_t *s, uint8_t out[32]);
void llmc_hex(const uint8_t *in, size_t len, char *out);

/* tenant may be empty (or NULL).  prompt is the normalized prompt.  Every
 * field is length-prefixed and tagged with a format version; the tenant
 * enters only as SHA-256(tenant). */
void llmc_key_make(llmc_key_t *key, const char *tenant, size_t tenant_len,
    const llmc_request_t *req, const char *prompt, size_t prompt_len);

/* Writes "llmc:{scope}:e:exact" (NUL-terminated); returns its length, or 0
 * (and an empty string when size > 0) when size is too small. */
size_t llmc_key_redis_entry(const llmc_key_t *key, char *out, size_t size);

#endif /* LLMC_KEY_H */
