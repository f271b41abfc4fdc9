#include <stdarg.h>
#include <stdio.h>

#include "errf.h"

int
errf(char *err, size_t errlen, const char *fn, const char *fmt, ...)
{
    va_list  ap;
    int      n;

    if (err == NULL || errlen == 0) {
        return -1;
    }
    n = snprintf(err, errlen, "%s: ", fn);
    if (n < 0 || (size_t) n >= errlen) {
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t) n, fmt, ap);
    va_end(ap);
    return -1;
}
