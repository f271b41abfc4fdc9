/*
 * Helpers several C unit tests share.
 */

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

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


int
test_find_shared(char *out, size_t size)
{
    const char  *env = getenv("LLMCACHE_SHARED");
    char         dir[PATH_MAX], probe[PATH_MAX + 32];
    struct stat  st;
    char        *slash;

    if (env && *env) {
        snprintf(out, size, "%s", env);
        return stat(out, &st) == 0;
    }
    if (getcwd(dir, sizeof(dir)) == NULL) {
        return 0;
    }
    for ( ;; ) {
        snprintf(probe, sizeof(probe), "%s/src/engine/model.h", dir);
        if (stat(probe, &st) == 0) {
            snprintf(out, size, "%s/../shared", dir);
            return stat(out, &st) == 0;
        }
        slash = strrchr(dir, '/');
        if (slash == NULL || slash == dir) {
            return 0;
        }
        *slash = '\0';
    }
}


int
test_argmax(const float *x, int n)
{
    int  i, b = 0;

    for (i = 1; i < n; i++) {
        if (x[i] > x[b]) {
            b = i;
        }
    }
    return b;
}


double
test_max_rel_diff(const float *a, const float *b, size_t n)
{
    double  d = 0, mx = 0;
    size_t  i;

    for (i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) {
            return INFINITY;            /* fmax would skip a NaN */
        }
        d = fmax(d, fabs((double) a[i] - b[i]));
        mx = fmax(mx, fabs((double) b[i]));
    }
    return mx > 0 ? d / mx : d;
}
