/*
 * Helpers several C unit tests share (t/unit/testutil.c is linked into
 * every test binary).
 */

#ifndef LLMC_TESTUTIL_H
#define LLMC_TESTUTIL_H

#include "llmc_normalize.h"

/* The shipped Korean and English dictionaries, found from LLMCACHE_ROOT,
 * the working directory or the binary's path (build/unit/NAME); the test
 * is skipped when they cannot be read. */
llmc_dict_t *test_load_dicts(const char *argv0);

#endif /* LLMC_TESTUTIL_H */
