/*
 * The engine's error messages: "function: what" written into a caller's
 * buffer.
 */

#ifndef LLMC_ERRF_H
#define LLMC_ERRF_H

#include <stddef.h>

/* err may be NULL (nothing is written); returns -1, for
 * `return errf(err, errlen, "fn", ...);` */
int errf(char *err, size_t errlen, const char *fn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* LLMC_ERRF_H */
