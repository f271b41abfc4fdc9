/*
 * Helpers several C unit tests share (t/unit/testutil.c is linked into
 * every test binary).
 */

#ifndef LLMC_TESTUTIL_H
#define LLMC_TESTUTIL_H

#include <stddef.h>

#include "llmc_normalize.h"

/* The shipped Korean and English dictionaries, found from LLMCACHE_ROOT,
 * the working directory or the binary's path (build/unit/NAME); the test
 * is skipped when they cannot be read. */
llmc_dict_t *test_load_dicts(const char *argv0);

/* LLMCACHE_SHARED, or ../shared beside the repository root found from the
 * working directory up; 1 when it exists (written to out), else 0 */
int test_find_shared(char *out, size_t size);

/* the index of the largest of x[0, n) (the first on ties) */
int test_argmax(const float *x, int n);

/* max |a - b| over max |b|; infinite when either has a NaN or an
 * infinity */
double test_max_rel_diff(const float *a, const float *b, size_t n);

#endif /* LLMC_TESTUTIL_H */
