/*
 * Helpers several C unit tests share.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "testutil.h"


llmc_dict_t *
test_load_dicts(const char *argv0)
{
    char          dir[4096], path[4200], err[256], *slash;
    const char   *root = getenv("LLMCACHE_ROOT");
    const char   *name[] = { "ko.dict", "en.dict" };
    size_t        i;
    llmc_dict_t  *dict;

    if (root) {
        snprintf(dir, sizeof(dir), "%s/examples/dict", root);

    } else if (access("examples/dict/ko.dict", R_OK) == 0) {
        snprintf(dir, sizeof(dir), "examples/dict");

    } else {
        /* build/unit/test_x -> examples/dict */
        snprintf(dir, sizeof(dir), "%s", argv0);
        slash = strrchr(dir, '/');
        if (slash) {
            snprintf(slash, sizeof(dir) - (size_t) (slash - dir),
                     "/../../examples/dict");
        }
    }

    dict = llmc_dict_new();
    if (dict == NULL) {
        skip_all("out of memory");
    }

    for (i = 0; i < sizeof(name) / sizeof(name[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, name[i]);
        if (llmc_dict_load_file(dict, path, err, sizeof(err)) != 0) {
            printf("# %s\n", err);
            skip_all("the shipped dictionaries cannot be read");
        }
    }

    return dict;
}
