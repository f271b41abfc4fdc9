/*
 * The start tag of a PML prompt: <prompt schema="name" ...>.
 */

#include <string.h>

#include "llmc_pml.h"

static int
pml_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
pml_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'
           || c == ':';
}

int
llmc_pml_schema(const char *s, size_t n, const char **name, size_t *len)
{
    size_t       i = 0, a, alen, v;
    char         q;

    *name = NULL;
    *len = 0;

    while (i < n && pml_space(s[i])) {
        i++;
    }
    if (n - i < 7 || memcmp(s + i, "<prompt", 7) != 0) {
        return 0;
    }
    i += 7;
    if (i < n && !pml_space(s[i]) && s[i] != '>' && s[i] != '/') {
        return 0;                               /* <prompts>, <prompt2> */
    }

    /* attributes up to the end of the start tag */
    for ( ;; ) {
        while (i < n && pml_space(s[i])) {
            i++;
        }
        if (i >= n || s[i] == '>' || s[i] == '/') {
            return 1;
        }
        a = i;
        while (i < n && pml_name_char(s[i])) {
            i++;
        }
        alen = i - a;
        while (i < n && pml_space(s[i])) {
            i++;
        }
        if (alen == 0 || i >= n || s[i] != '=') {
            return 1;                           /* malformed: no schema */
        }
        i++;
        while (i < n && pml_space(s[i])) {
            i++;
        }
        if (i >= n || (s[i] != '"' && s[i] != '\'')) {
            return 1;
        }
        q = s[i++];
        v = i;
        while (i < n && s[i] != q) {
            i++;
        }
        if (i >= n) {
            return 1;
        }
        if (alen == 6 && memcmp(s + a, "schema", 6) == 0) {
            *name = s + v;
            *len = i - v;
            return 1;
        }
        i++;
    }
}
