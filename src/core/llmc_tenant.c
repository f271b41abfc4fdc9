/*
 * The tenant material (format: llmc_tenant.h).
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "llmc_tenant.h"

/* "\0norm:" + 2 hex digits + ":" + 16 hex digits */
#define LLMC_TENANT_NORM_LEN  (6 + 2 + 1 + 16)

static const char *const  llmc_tenant_anthropic[] = {
    "anthropic-version", "anthropic-beta", NULL
};

static const char *const  llmc_tenant_openai[] = {
    "OpenAI-Organization", "OpenAI-Project", NULL
};


const char *const *
llmc_tenant_header_names(llmc_provider_e provider)
{
    return provider == LLMC_PROVIDER_ANTHROPIC ? llmc_tenant_anthropic
                                               : llmc_tenant_openai;
}


static int
llmc_tenant_match(const llmc_header_t *h, const char *name, size_t len)
{
    return h->name_len == len && strncasecmp(h->name, name, len) == 0;
}


size_t
llmc_tenant_size(size_t key_len, llmc_provider_e provider,
    const llmc_header_t *headers, size_t nheaders)
{
    size_t              i, j, len, nlen;
    const char *const  *name;

    len = key_len + LLMC_TENANT_NORM_LEN;
    name = llmc_tenant_header_names(provider);

    for (i = 0; name[i]; i++) {
        nlen = strlen(name[i]);
        for (j = 0; j < nheaders; j++) {
            if (llmc_tenant_match(&headers[j], name[i], nlen)) {
                len += nlen + headers[j].value_len + 3;
            }
        }
    }

    return len;
}


size_t
llmc_tenant_write(char *buf, size_t size, const char *key, size_t key_len,
    llmc_provider_e provider, const llmc_header_t *headers, size_t nheaders,
    unsigned steps, const llmc_dict_t *dict)
{
    char                norm[LLMC_TENANT_NORM_LEN + 1];
    char               *p;
    size_t              i, j, nlen;
    uint64_t            fp;
    const char *const  *name;

    if (size < llmc_tenant_size(key_len, provider, headers, nheaders)) {
        return 0;
    }

    p = buf;
    if (key_len) {
        memcpy(p, key, key_len);
        p += key_len;
    }

    name = llmc_tenant_header_names(provider);

    for (i = 0; name[i]; i++) {
        nlen = strlen(name[i]);
        for (j = 0; j < nheaders; j++) {
            if (!llmc_tenant_match(&headers[j], name[i], nlen)) {
                continue;
            }
            *p++ = '\0';
            memcpy(p, name[i], nlen);
            p += nlen;
            *p++ = ':';
            if (headers[j].value_len) {
                memcpy(p, headers[j].value, headers[j].value_len);
                p += headers[j].value_len;
            }
            *p++ = '\0';
        }
    }

    /* the steps are a bit mask below 0x100: always two digits */

    fp = dict ? llmc_dict_fingerprint(dict) : 0;
    snprintf(norm, sizeof(norm), "%cnorm:%02x:%016" PRIx64, '\0',
             steps & 0xff, fp);
    memcpy(p, norm, LLMC_TENANT_NORM_LEN);
    p += LLMC_TENANT_NORM_LEN;

    return p - buf;
}
