/*
 * libFuzzer target for the request model.  The first byte picks the API
 * ('c' chat, 'o' completions, 'r' responses, 'm' messages, otherwise by
 * its value); the rest is the body.  The whole input is also tried as a
 * URI.  Checks: no crash or leak, the body is left alone, a success gives
 * a consistent request whose scope is compact JSON, and parsing is
 * deterministic.
 */

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llmc_request.h"

static llmc_api_e
fuzz_api(uint8_t c)
{
    switch (c) {
    case 'c':
        return LLMC_API_CHAT;
    case 'o':
        return LLMC_API_COMPLETIONS;
    case 'r':
        return LLMC_API_RESPONSES;
    case 'm':
        return LLMC_API_MESSAGES;
    default:
        return (llmc_api_e) (c % 5);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              rc, rc2;
    char             err[128], *copy;
    json_t          *j;
    llmc_api_e       api;
    llmc_request_t   r, r2;

    (void) llmc_api_from_uri((const char *) data, size,
                             LLMC_PROVIDER_UNKNOWN);
    (void) llmc_api_from_uri((const char *) data, size, LLMC_PROVIDER_OPENAI);

    if (size < 1) {
        return 0;
    }
    api = fuzz_api(data[0]);

    copy = malloc(size);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data + 1, size - 1);

    rc = llmc_request_parse(&r, api, copy, size - 1, err, sizeof(err));
    if (memcmp(copy, data + 1, size - 1) != 0) {
        abort();                              /* the body was modified */
    }
    if (rc != 0) {
        if (strncmp(err, "llmc_request_parse: ", 20) != 0) {
            abort();
        }
        free(copy);
        return 0;
    }

    if (r.model == NULL || r.scope_json == NULL || r.prompt == NULL
        || strlen(r.scope_json) != r.scope_len
        || strlen(r.prompt) != r.prompt_len
        || r.api != api || r.provider != llmc_api_provider(api)
        || r.n_unknown < 0 || (r.stream != 0 && r.stream != 1))
    {
        abort();
    }

    j = json_loadb(r.scope_json, r.scope_len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(j)) {
        abort();
    }
    json_decref(j);

    rc2 = llmc_request_parse(&r2, api, copy, size - 1, err, sizeof(err));
    if (rc2 != 0 || strcmp(r.scope_json, r2.scope_json) != 0
        || strcmp(r.prompt, r2.prompt) != 0)
    {
        abort();
    }

    llmc_request_free(&r2);
    llmc_request_free(&r);
    free(copy);
    return 0;
}
