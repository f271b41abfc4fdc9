/*
 * libFuzzer target for the stored-entry decoder: any bytes, as they could
 * come back from Redis.  A value that decodes must point into the input,
 * carry a content type fit for a header, and survive encode + decode
 * unchanged.
 */

#include <stdlib.h>
#include <string.h>

#include "llmc_entry.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char          *buf, *enc, err[128];
    size_t         i, len;
    llmc_entry_t   e, e2;

    /* a copy of exactly size bytes, so reads past the end are caught */
    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data, size);

    if (llmc_entry_decode(&e, buf, size, err, sizeof(err)) != 0) {
        free(buf);
        return 0;
    }

    if (e.content_type < buf || e.content_type + e.content_type_len
        > buf + size || e.body < buf || e.body + e.body_len != buf + size
        || e.content_type_len == 0 || e.created < 0
        || strlen(e.model) >= sizeof(e.model)
        || strlen(e.api) >= sizeof(e.api))
    {
        abort();
    }
    for (i = 0; i < e.content_type_len; i++) {
        if (e.content_type[i] < 0x20 || e.content_type[i] > 0x7e) {
            abort();
        }
    }

    enc = llmc_entry_encode(e.content_type, e.content_type_len, e.api,
                            e.model, e.created, e.body, e.body_len, &len);
    if (enc == NULL) {
        abort();
    }
    if (llmc_entry_decode(&e2, enc, len, err, sizeof(err)) != 0
        || e2.content_type_len != e.content_type_len
        || memcmp(e2.content_type, e.content_type, e.content_type_len) != 0
        || e2.body_len != e.body_len
        || memcmp(e2.body, e.body, e.body_len) != 0
        || e2.created != e.created || strcmp(e2.model, e.model) != 0
        || strcmp(e2.api, e.api) != 0)
    {
        abort();
    }

    free(enc);
    free(buf);
    return 0;
}
