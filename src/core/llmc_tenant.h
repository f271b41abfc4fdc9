/*
 * The tenant material hashed into a request's scope: the llmcache_key
 * value, the request headers that select another API behaviour or account
 * (and so can change the answer), and what the prompt was normalized with
 * (steps, and the dictionaries' and ICU's fingerprint), so entries made
 * under other rules are never served.  Shared by the module and the tools
 * that write entries without it (llmcache warm --faq), so both compute the
 * same keys.  nginx-free and I/O-free.
 *
 *     key
 *     for each name of llmc_tenant_header_names(provider), in that order,
 *         for each header of that name (any case), in the request's order:
 *             "\0" name ":" value "\0"
 *     "\0norm:" steps as %02x ":" fingerprint as %016x
 *
 * name is written as llmc_tenant_header_names() spells it, whatever the
 * case the client sent.  The fingerprint is 0 without dictionaries.
 */

#ifndef LLMC_TENANT_H
#define LLMC_TENANT_H

#include <stddef.h>

#include "llmc_normalize.h"
#include "llmc_request.h"

typedef struct {
    const char  *name;
    size_t       name_len;
    const char  *value;
    size_t       value_len;
} llmc_header_t;

/* The header names that join the tenant for a provider (Anthropic:
 * anthropic-version, anthropic-beta; others: OpenAI-Organization,
 * OpenAI-Project), NULL-terminated. */
const char *const *llmc_tenant_header_names(llmc_provider_e provider);

/* The bytes llmc_tenant_write() needs for these inputs. */
size_t llmc_tenant_size(size_t key_len, llmc_provider_e provider,
    const llmc_header_t *headers, size_t nheaders);

/* Writes the material into buf (not NUL-terminated); headers may be every
 * request header: only the provider's names are used.  dict may be NULL.
 * Returns its length, or 0 when size is too small. */
size_t llmc_tenant_write(char *buf, size_t size, const char *key,
    size_t key_len, llmc_provider_e provider, const llmc_header_t *headers,
    size_t nheaders, unsigned steps, const llmc_dict_t *dict);

#endif /* LLMC_TENANT_H */
