/*
 * The tenant material the module and `llmcache warm --faq` both hash.
 */

#include <string.h>

#include "tap.h"
#include "llmc_tenant.h"

int
main(void)
{
    char           buf[256];
    size_t         n, need;
    llmc_header_t  h[3] = {
        { "Anthropic-Beta", 14, "b1", 2 },
        { "x-other", 7, "ignored", 7 },
        { "ANTHROPIC-VERSION", 17, "2023-06-01", 10 },
    };
    static const char  want[] =
        "key\0anthropic-version:2023-06-01\0\0anthropic-beta:b1\0"
        "\0norm:1f:0000000000000000";

    need = llmc_tenant_size(3, LLMC_PROVIDER_ANTHROPIC, h, 3);
    ok(need >= sizeof(want) - 1, "size covers the material (%zu)", need);

    n = llmc_tenant_write(buf, sizeof(buf), "key", 3,
                          LLMC_PROVIDER_ANTHROPIC, h, 3, 0x1f, NULL);
    is_int(n, sizeof(want) - 1, "length");
    ok(n == sizeof(want) - 1 && memcmp(buf, want, n) == 0,
       "provider headers in the list's order and spelling, others left out");

    n = llmc_tenant_write(buf, sizeof(buf), "key", 3, LLMC_PROVIDER_OPENAI,
                          h, 3, 0x1f, NULL);
    is_int(n, sizeof("key\0norm:1f:0000000000000000") - 1,
           "OpenAI ignores Anthropic's headers");

    n = llmc_tenant_write(buf, 8, "key", 3, LLMC_PROVIDER_ANTHROPIC, h, 3,
                          0x1f, NULL);
    is_int(n, 0, "a buffer too small gives 0");

    return done_testing();
}
