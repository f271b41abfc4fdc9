/*
 * libFuzzer target for the provider-cache rewrite.  The first byte picks
 * the API ('m' messages, 'c' chat, 'r' responses, otherwise by its value)
 * and the options (its high bits); the rest is the body.  Checks: no crash
 * or leak, the body is left alone, a rewritten body is valid JSON with at
 * most 4 cache_control markers for Anthropic, and OpenAI output needs no
 * second rewrite.
 */

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "llmc_rewrite.h"

static size_t
fuzz_marks(json_t *v)
{
    size_t       n = 0, i;
    const char  *k;
    json_t      *x;

    if (json_is_object(v)) {
        json_object_foreach(v, k, x) {
            n += strcmp(k, "cache_control") == 0 ? 1 : fuzz_marks(x);
        }
    } else if (json_is_array(v)) {
        for (i = 0; i < json_array_size(v); i++) {
            n += fuzz_marks(json_array_get(v, i));
        }
    }
    return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char  *vol[] = { "[0-9]{4}-[0-9]{2}-[0-9]{2}", "id=[a-z]+" };
    int                 rc, rc2;
    char               *copy, *out, *out2, info[128];
    size_t              out_len, out2_len;
    json_t             *j;
    llmc_api_e          api;
    llmc_rewrite_conf_t c;

    if (size < 1) {
        return 0;
    }
    switch (data[0] & 0x1f) {
    case 'm' & 0x1f:
        api = LLMC_API_MESSAGES;
        break;
    case 'c' & 0x1f:
        api = LLMC_API_CHAT;
        break;
    case 'r' & 0x1f:
        api = LLMC_API_RESPONSES;
        break;
    default:
        api = (llmc_api_e) (data[0] % 5);
    }
    memset(&c, 0, sizeof(c));
    c.anthropic_auto = 1;
    c.openai_stable = 1;
    c.anthropic_ttl_1h = (data[0] & 0x20) != 0;
    c.volatile_res = vol;
    c.n_volatile = 2;
    c.openai_cache_key = (data[0] & 0x40) ? "" : NULL;
    c.openai_retention = (data[0] & 0x80) ? "24h" : NULL;

    copy = malloc(size);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data + 1, size - 1);
    rc = llmc_rewrite(api, copy, size - 1, &c, &out, &out_len, info,
                      sizeof(info));
    if (memcmp(copy, data + 1, size - 1) != 0 || rc < -1 || rc > 1
        || (rc != 1 && out != NULL) || (rc == 1 && out == NULL))
    {
        abort();
    }
    (void) llmc_estimate_tokens(copy, size - 1);
    free(copy);
    if (rc != 1) {
        return 0;
    }
    if (strlen(out) != out_len) {
        abort();
    }
    j = json_loadb(out, out_len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(j)) {
        abort();                          /* we wrote invalid JSON */
    }
    if (api == LLMC_API_MESSAGES && fuzz_marks(j) > 4) {
        abort();
    }
    json_decref(j);

    /* OpenAI output is stable: tools in order, key and retention set
     * (the moved volatile text would move again: a client never sends
     * our output back) */
    c.n_volatile = 0;
    rc2 = llmc_rewrite(api, out, out_len, &c, &out2, &out2_len, info,
                       sizeof(info));
    if (rc2 != 0 && api != LLMC_API_MESSAGES) {
        abort();
    }
    free(out2);
    free(out);
    return 0;
}
