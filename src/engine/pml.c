/*
 * PML reader, token layout and prompt binding (see pml.h for the syntax).
 *
 * The reader is a small XML subset: elements, attributes quoted with ' or
 * ", self-closing tags, the five named entities and &#N; / &#xN;,
 * comments (skipped), CDATA sections (kept as text) and an optional
 * <?xml ...?> declaration before the root. No DTD, no namespaces. Text is
 * kept byte for byte: the white space around and between the tags of a
 * schema, leading and trailing white space of the schema body included,
 * is tokenized as it stands (a union's white-space-only text is the one
 * exception: it is ignored). Text on both sides of a comment is one text
 * node. Columns in error messages count bytes from 1.
 *
 * The parsers build a generic element tree first, then check it against
 * the schema or prompt rules; nesting is limited to PML_DEPTH_MAX levels,
 * so every walk over a tree recurses at most that deep.
 */

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pml.h"

#define PML_INPUT_MAX   (4u * 1024 * 1024)
#define PML_DEPTH_MAX   32
#define PML_LENGTH_MAX  (1 << 20)
#define PML_ATTRS_MAX   64


typedef struct {
    char    *name;
    char    *value;             /* decoded, NUL-terminated */
    size_t   len;
    size_t   off;               /* of the name */
} pml_xattr_t;

typedef struct pml_xel pml_xel_t;

struct pml_xel {
    char         *name;         /* NULL: a text node */
    char         *text;         /* text: decoded bytes, NUL-terminated */
    size_t        len;
    size_t        off;          /* the '<' of the tag, or the text's start */
    pml_xattr_t  *attrs;
    int           n_attrs;
    pml_xel_t   **kids;
    int           n_kids;
    int           cap_kids;
};

typedef struct {
    const char  *p;
    size_t       len, i;
    char        *err;
    size_t       errlen;
} pml_rd_t;

typedef struct {
    char    *p;
    size_t   len, cap;
} pml_buf_t;


static void
pml_msg(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  ap;

    if (err == NULL || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* "line L, column C: what", the position of byte off */
static int
pml_fail(const pml_rd_t *rd, size_t off, const char *fmt, ...)
{
    va_list  ap;
    size_t   k;
    long     line = 1, col = 1;
    int      n;

    if (rd->err == NULL || rd->errlen == 0) {
        return -1;
    }
    for (k = 0; k < off && k < rd->len; k++) {
        if (rd->p[k] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    n = snprintf(rd->err, rd->errlen, "line %ld, column %ld: ", line, col);
    if (n >= 0 && (size_t) n < rd->errlen) {
        va_start(ap, fmt);
        vsnprintf(rd->err + n, rd->errlen - (size_t) n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int
pml_buf_put(pml_buf_t *b, const char *s, size_t n)
{
    char    *np;
    size_t   cap;

    if (b->len + n + 1 > b->cap) {
        cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        np = realloc(b->p, cap);
        if (np == NULL) {
            return -1;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int
pml_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
pml_all_space(const char *s, size_t n)
{
    size_t  k;

    for (k = 0; k < n; k++) {
        if (!pml_is_space(s[k])) {
            return 0;
        }
    }
    return 1;
}

/* ^[A-Za-z_][A-Za-z0-9_.-]*$ */
static int
pml_name_ok(const char *s)
{
    size_t  k;
    char    c;

    if (s == NULL || s[0] == '\0') {
        return 0;
    }
    for (k = 0; s[k]; k++) {
        c = s[k];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'
            || (k > 0 && ((c >= '0' && c <= '9') || c == '.' || c == '-')))
        {
            continue;
        }
        return 0;
    }
    return 1;
}


/* --- the XML subset ------------------------------------------------------ */

static void
pml_xel_free(pml_xel_t *x)
{
    int  k;

    if (x == NULL) {
        return;
    }
    for (k = 0; k < x->n_attrs; k++) {
        free(x->attrs[k].name);
        free(x->attrs[k].value);
    }
    for (k = 0; k < x->n_kids; k++) {
        pml_xel_free(x->kids[k]);
    }
    free(x->attrs);
    free(x->kids);
    free(x->name);
    free(x->text);
    free(x);
}

static int
pml_xel_add(pml_xel_t *x, pml_xel_t *kid)
{
    pml_xel_t  **nk;
    int          cap;

    if (x->n_kids == x->cap_kids) {
        cap = x->cap_kids ? x->cap_kids * 2 : 4;
        nk = realloc(x->kids, (size_t) cap * sizeof(*nk));
        if (nk == NULL) {
            return -1;
        }
        x->kids = nk;
        x->cap_kids = cap;
    }
    x->kids[x->n_kids++] = kid;
    return 0;
}

static int
pml_starts(const pml_rd_t *rd, const char *s)
{
    size_t  n = strlen(s);

    return rd->len - rd->i >= n && memcmp(rd->p + rd->i, s, n) == 0;
}

static void
pml_skip_space(pml_rd_t *rd)
{
    while (rd->i < rd->len && pml_is_space(rd->p[rd->i])) {
        rd->i++;
    }
}

/* XML names as far as PML needs them: [A-Za-z_:][A-Za-z0-9_.:-]* */
static char *
pml_scan_name(pml_rd_t *rd)
{
    size_t  start = rd->i;
    char    c, *s;

    while (rd->i < rd->len) {
        c = rd->p[rd->i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'
            || c == ':'
            || (rd->i > start
                && ((c >= '0' && c <= '9') || c == '.' || c == '-')))
        {
            rd->i++;
            continue;
        }
        break;
    }
    if (rd->i == start) {
        pml_fail(rd, start, "expected a name");
        return NULL;
    }
    s = strndup(rd->p + start, rd->i - start);
    if (s == NULL) {
        pml_fail(rd, start, "out of memory");
    }
    return s;
}

static int
pml_skip_comment(pml_rd_t *rd)
{
    size_t      start = rd->i;
    const char  *end;

    end = memmem(rd->p + rd->i + 4, rd->len - rd->i - 4, "-->", 3);
    if (end == NULL) {
        return pml_fail(rd, start, "unterminated comment");
    }
    rd->i = (size_t) (end - rd->p) + 3;
    return 0;
}

static int
pml_put_utf8(pml_buf_t *b, unsigned long cp)
{
    char    u[4];
    size_t  n;

    if (cp < 0x80) {
        u[0] = (char) cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char) (0xc0 | (cp >> 6));
        u[1] = (char) (0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char) (0xe0 | (cp >> 12));
        u[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char) (0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char) (0xf0 | (cp >> 18));
        u[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char) (0x80 | (cp & 0x3f));
        n = 4;
    }
    return pml_buf_put(b, u, n);
}

/* at '&': decode one entity into b */
static int
pml_entity(pml_rd_t *rd, pml_buf_t *b)
{
    static const struct {
        const char  *name;
        char         c;
    } named[] = {
        { "lt", '<' }, { "gt", '>' }, { "amp", '&' }, { "quot", '"' },
        { "apos", '\'' }
    };
    size_t          start = rd->i, k, n;
    const char     *s, *semi;
    unsigned long   cp = 0;
    int             hex, digits = 0;

    s = rd->p + rd->i + 1;
    n = rd->len - rd->i - 1;
    semi = memchr(s, ';', n < 12 ? n : 12);
    if (semi == NULL) {
        return pml_fail(rd, start, "'&' outside an entity (write &amp;)");
    }
    n = (size_t) (semi - s);
    rd->i = (size_t) (semi - rd->p) + 1;

    if (n > 0 && s[0] == '#') {
        hex = n > 1 && s[1] == 'x';
        for (k = hex ? 2 : 1; k < n; k++) {
            char  c = s[k];
            int   d;

            if (c >= '0' && c <= '9') {
                d = c - '0';
            } else if (hex && c >= 'a' && c <= 'f') {
                d = c - 'a' + 10;
            } else if (hex && c >= 'A' && c <= 'F') {
                d = c - 'A' + 10;
            } else {
                return pml_fail(rd, start, "bad character reference");
            }
            cp = cp * (hex ? 16 : 10) + (unsigned long) d;
            if (cp > 0x10ffff) {
                return pml_fail(rd, start, "character reference past "
                                "U+10FFFF");
            }
            digits++;
        }
        if (digits == 0 || cp == 0 || (cp >= 0xd800 && cp <= 0xdfff)) {
            return pml_fail(rd, start, "bad character reference");
        }
        if (pml_put_utf8(b, cp) != 0) {
            return pml_fail(rd, start, "out of memory");
        }
        return 0;
    }

    for (k = 0; k < sizeof(named) / sizeof(named[0]); k++) {
        if (strlen(named[k].name) == n && memcmp(s, named[k].name, n) == 0) {
            if (pml_buf_put(b, &named[k].c, 1) != 0) {
                return pml_fail(rd, start, "out of memory");
            }
            return 0;
        }
    }
    return pml_fail(rd, start, "unknown entity '&%.*s;'", (int) n, s);
}

static int
pml_flush_text(pml_rd_t *rd, pml_xel_t *x, pml_buf_t *b, size_t off)
{
    pml_xel_t  *t;

    if (b->len == 0) {
        return 0;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL || pml_xel_add(x, t) != 0) {
        free(t);
        return pml_fail(rd, off, "out of memory");
    }
    t->text = b->p;
    t->len = b->len;
    t->off = off;
    memset(b, 0, sizeof(*b));
    return 0;
}

static int
pml_read_attr(pml_rd_t *rd, pml_xel_t *x)
{
    pml_xattr_t  *na, *a;
    pml_buf_t     b = { NULL, 0, 0 };
    size_t        off = rd->i;
    char         *name, q, c;
    int           k;

    /* the limit keeps the duplicate check below cheap */
    if (x->n_attrs == PML_ATTRS_MAX) {
        return pml_fail(rd, off, "more than %d attributes in <%s>",
                        PML_ATTRS_MAX, x->name);
    }
    name = pml_scan_name(rd);
    if (name == NULL) {
        return -1;
    }
    for (k = 0; k < x->n_attrs; k++) {
        if (strcmp(x->attrs[k].name, name) == 0) {
            free(name);
            return pml_fail(rd, off, "duplicate attribute '%s'",
                            x->attrs[k].name);
        }
    }
    pml_skip_space(rd);
    if (rd->i >= rd->len || rd->p[rd->i] != '=') {
        free(name);
        return pml_fail(rd, rd->i, "expected '=' after an attribute name");
    }
    rd->i++;
    pml_skip_space(rd);
    if (rd->i >= rd->len || (rd->p[rd->i] != '"' && rd->p[rd->i] != '\'')) {
        free(name);
        return pml_fail(rd, rd->i, "expected a quoted attribute value");
    }
    q = rd->p[rd->i++];
    if (pml_buf_put(&b, "", 0) != 0) {
        free(name);
        return pml_fail(rd, off, "out of memory");
    }
    for ( ;; ) {
        if (rd->i >= rd->len) {
            free(name);
            free(b.p);
            return pml_fail(rd, off, "unterminated attribute value");
        }
        c = rd->p[rd->i];
        if (c == q) {
            rd->i++;
            break;
        }
        if (c == '<' || c == '\0') {
            free(name);
            free(b.p);
            return pml_fail(rd, rd->i, c == '<'
                            ? "'<' in an attribute value (write &lt;)"
                            : "NUL byte");
        }
        if (c == '&') {
            if (pml_entity(rd, &b) != 0) {
                free(name);
                free(b.p);
                return -1;
            }
            continue;
        }
        if (pml_buf_put(&b, &c, 1) != 0) {
            free(name);
            free(b.p);
            return pml_fail(rd, off, "out of memory");
        }
        rd->i++;
    }

    if (x->n_attrs == 0 || (x->n_attrs >= 2
                            && (x->n_attrs & (x->n_attrs - 1)) == 0))
    {
        na = realloc(x->attrs, (size_t) (x->n_attrs ? x->n_attrs * 2 : 2)
                               * sizeof(*na));
        if (na == NULL) {
            free(name);
            free(b.p);
            return pml_fail(rd, off, "out of memory");
        }
        x->attrs = na;
    }
    a = &x->attrs[x->n_attrs++];
    a->name = name;
    a->value = b.p;
    a->len = b.len;
    a->off = off;
    return 0;
}

/* at '<' of a start tag */
static int
pml_read_element(pml_rd_t *rd, int depth, pml_xel_t **out)
{
    pml_xel_t  *x, *kid;
    pml_buf_t   b = { NULL, 0, 0 };
    size_t      off = rd->i, text_off = 0, end_off, run;
    char       *end, c;
    int         spaced;

    *out = NULL;
    if (depth > PML_DEPTH_MAX) {
        return pml_fail(rd, off, "nesting deeper than %d elements",
                        PML_DEPTH_MAX);
    }
    x = calloc(1, sizeof(*x));
    if (x == NULL) {
        return pml_fail(rd, off, "out of memory");
    }
    x->off = off;
    rd->i++;
    x->name = pml_scan_name(rd);
    if (x->name == NULL) {
        goto failed;
    }

    for ( ;; ) {
        spaced = rd->i < rd->len && pml_is_space(rd->p[rd->i]);
        pml_skip_space(rd);
        if (rd->i >= rd->len) {
            pml_fail(rd, off, "unterminated tag <%s", x->name);
            goto failed;
        }
        if (pml_starts(rd, "/>")) {
            rd->i += 2;
            *out = x;
            return 0;
        }
        if (rd->p[rd->i] == '>') {
            rd->i++;
            break;
        }
        if (!spaced) {
            pml_fail(rd, rd->i, "expected white space, '>' or '/>' in <%s>",
                     x->name);
            goto failed;
        }
        if (pml_read_attr(rd, x) != 0) {
            goto failed;
        }
    }

    for ( ;; ) {
        if (rd->i >= rd->len) {
            pml_fail(rd, off, "<%s> is not closed", x->name);
            goto failed;
        }
        c = rd->p[rd->i];
        if (b.len == 0) {
            text_off = rd->i;
        }

        if (c == '<') {
            if (pml_starts(rd, "<!--")) {
                if (pml_skip_comment(rd) != 0) {
                    goto failed;
                }
                continue;
            }
            if (pml_starts(rd, "<![CDATA[")) {
                const char  *e = memmem(rd->p + rd->i + 9,
                                        rd->len - rd->i - 9, "]]>", 3);
                size_t       n;

                if (e == NULL) {
                    pml_fail(rd, rd->i, "unterminated CDATA section");
                    goto failed;
                }
                n = (size_t) (e - (rd->p + rd->i + 9));
                if (memchr(rd->p + rd->i + 9, '\0', n) != NULL) {
                    pml_fail(rd, rd->i, "NUL byte");
                    goto failed;
                }
                if (pml_buf_put(&b, rd->p + rd->i + 9, n) != 0) {
                    pml_fail(rd, rd->i, "out of memory");
                    goto failed;
                }
                rd->i = (size_t) (e - rd->p) + 3;
                continue;
            }
            if (pml_flush_text(rd, x, &b, text_off) != 0) {
                goto failed;
            }
            if (pml_starts(rd, "</")) {
                end_off = rd->i;
                rd->i += 2;
                end = pml_scan_name(rd);
                if (end == NULL) {
                    goto failed;
                }
                if (strcmp(end, x->name) != 0) {
                    pml_fail(rd, end_off, "</%s> closes <%s>", end, x->name);
                    free(end);
                    goto failed;
                }
                free(end);
                pml_skip_space(rd);
                if (rd->i >= rd->len || rd->p[rd->i] != '>') {
                    pml_fail(rd, rd->i, "expected '>' after </%s", x->name);
                    goto failed;
                }
                rd->i++;
                *out = x;
                return 0;
            }
            if (pml_starts(rd, "<!") || pml_starts(rd, "<?")) {
                pml_fail(rd, rd->i, "unsupported markup");
                goto failed;
            }
            if (pml_read_element(rd, depth + 1, &kid) != 0) {
                goto failed;
            }
            if (pml_xel_add(x, kid) != 0) {
                pml_xel_free(kid);
                pml_fail(rd, off, "out of memory");
                goto failed;
            }
            continue;
        }

        if (c == '&') {
            if (pml_entity(rd, &b) != 0) {
                goto failed;
            }
            continue;
        }
        if (c == '\0') {
            pml_fail(rd, rd->i, "NUL byte");
            goto failed;
        }
        for (run = rd->i + 1; run < rd->len; run++) {
            c = rd->p[run];
            if (c == '<' || c == '&' || c == '\0') {
                break;
            }
        }
        if (pml_buf_put(&b, rd->p + rd->i, run - rd->i) != 0) {
            pml_fail(rd, rd->i, "out of memory");
            goto failed;
        }
        rd->i = run;
    }

failed:
    free(b.p);
    pml_xel_free(x);
    return -1;
}

/* white space, comments and (before the root) an XML declaration */
static int
pml_skip_misc(pml_rd_t *rd, int prolog)
{
    const char  *e;

    for ( ;; ) {
        pml_skip_space(rd);
        if (pml_starts(rd, "<!--")) {
            if (pml_skip_comment(rd) != 0) {
                return -1;
            }
            continue;
        }
        if (prolog && pml_starts(rd, "<?xml")) {
            e = memmem(rd->p + rd->i, rd->len - rd->i, "?>", 2);
            if (e == NULL) {
                return pml_fail(rd, rd->i, "unterminated XML declaration");
            }
            rd->i = (size_t) (e - rd->p) + 2;
            prolog = 0;
            continue;
        }
        return 0;
    }
}

static int
pml_read_document(pml_rd_t *rd, pml_xel_t **root)
{
    *root = NULL;
    if (rd->len > PML_INPUT_MAX) {
        return pml_fail(rd, 0, "the input is %zu bytes, over the 4 MiB "
                        "limit", rd->len);
    }
    /* a UTF-8 byte order mark */
    if (rd->len >= 3 && memcmp(rd->p, "\xef\xbb\xbf", 3) == 0) {
        rd->i = 3;
    }
    if (pml_skip_misc(rd, 1) != 0) {
        return -1;
    }
    if (rd->i >= rd->len) {
        return pml_fail(rd, rd->i, "no root element");
    }
    if (rd->p[rd->i] != '<' || pml_starts(rd, "<!") || pml_starts(rd, "<?")
        || pml_starts(rd, "</"))
    {
        return pml_fail(rd, rd->i, "expected the root element");
    }
    if (pml_read_element(rd, 1, root) != 0) {
        return -1;
    }
    if (pml_skip_misc(rd, 0) != 0 || rd->i < rd->len) {
        if (rd->i < rd->len) {
            pml_fail(rd, rd->i, "content after the root element");
        }
        pml_xel_free(*root);
        *root = NULL;
        return -1;
    }
    return 0;
}

static pml_xattr_t *
pml_attr(pml_xel_t *x, const char *name)
{
    int  k;

    for (k = 0; k < x->n_attrs; k++) {
        if (strcmp(x->attrs[k].name, name) == 0) {
            return &x->attrs[k];
        }
    }
    return NULL;
}

/* every attribute of x is one of the NULL-terminated list */
static int
pml_attrs_check(pml_rd_t *rd, pml_xel_t *x, const char *const *allowed)
{
    int  k, j;

    for (k = 0; k < x->n_attrs; k++) {
        for (j = 0; allowed[j]; j++) {
            if (strcmp(x->attrs[k].name, allowed[j]) == 0) {
                break;
            }
        }
        if (allowed[j] == NULL) {
            return pml_fail(rd, x->attrs[k].off,
                            "unknown attribute '%s' in <%s>",
                            x->attrs[k].name, x->name);
        }
    }
    return 0;
}

/* the name attribute: present and matching the name rule */
static int
pml_attr_name(pml_rd_t *rd, pml_xel_t *x, char **out)
{
    pml_xattr_t  *a = pml_attr(x, "name");

    *out = NULL;
    if (a == NULL) {
        return pml_fail(rd, x->off, "<%s> without a name", x->name);
    }
    if (!pml_name_ok(a->value) || strlen(a->value) != a->len) {
        return pml_fail(rd, a->off, "invalid name '%s' in <%s>", a->value,
                        x->name);
    }
    *out = strdup(a->value);
    if (*out == NULL) {
        return pml_fail(rd, a->off, "out of memory");
    }
    return 0;
}


/* --- schemas ------------------------------------------------------------- */

typedef struct {
    const char  *name;
    size_t       off;
} pml_seen_t;

typedef struct {
    pml_rd_t    *rd;
    pml_seen_t  *names;         /* modules and parameters */
    size_t       n_names, cap_names;
} pml_sb_t;

static void
pml_node_free(pml_node_t *n)
{
    size_t  k;

    if (n == NULL) {
        return;
    }
    for (k = 0; k < n->n_kids; k++) {
        pml_node_free(n->kids[k]);
    }
    free(n->kids);
    free(n->name);
    free(n->text);
    free(n->scaffold);
    free(n->src);
    free(n);
}

/* kids[] grows by doubling: its capacity is the next power of two */
static int
pml_node_add(pml_node_t *parent, pml_node_t *kid)
{
    pml_node_t  **nk;
    size_t        n = parent->n_kids;

    if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
        nk = realloc(parent->kids, (n ? n * 2 : 4) * sizeof(*nk));
        if (nk == NULL) {
            return -1;
        }
        parent->kids = nk;
    }
    parent->kids[parent->n_kids++] = kid;
    kid->parent = parent;
    return 0;
}

static int
pml_sb_name(pml_sb_t *sb, const char *name, size_t off)
{
    pml_seen_t  *nn;
    size_t       cap;

    if (sb->n_names == sb->cap_names) {
        cap = sb->cap_names ? sb->cap_names * 2 : 16;
        nn = realloc(sb->names, cap * sizeof(*nn));
        if (nn == NULL) {
            return pml_fail(sb->rd, off, "out of memory");
        }
        sb->names = nn;
        sb->cap_names = cap;
    }
    sb->names[sb->n_names].name = name;
    sb->names[sb->n_names].off = off;
    sb->n_names++;
    return 0;
}

static int
pml_seen_cmp(const void *a, const void *b)
{
    const pml_seen_t  *x = a, *y = b;
    int                c = strcmp(x->name, y->name);

    if (c != 0) {
        return c;
    }
    return x->off < y->off ? -1 : x->off > y->off;
}

/* the first name (in document order) that repeats an earlier one */
static int
pml_sb_unique(pml_sb_t *sb)
{
    size_t  k, best = 0;
    int     found = 0;

    if (sb->n_names < 2) {
        return 0;
    }
    qsort(sb->names, sb->n_names, sizeof(sb->names[0]), pml_seen_cmp);
    for (k = 1; k < sb->n_names; k++) {
        if (strcmp(sb->names[k].name, sb->names[k - 1].name) == 0
            && (k == 1 || strcmp(sb->names[k - 1].name,
                                 sb->names[k - 2].name) != 0)
            && (!found || sb->names[k].off < sb->names[best].off))
        {
            best = k;
            found = 1;
        }
    }
    if (found) {
        return pml_fail(sb->rd, sb->names[best].off,
                        "duplicate name '%s' (modules and parameters share "
                        "one namespace)", sb->names[best].name);
    }
    return 0;
}

static int pml_build_content(pml_sb_t *sb, pml_xel_t *x, pml_node_t *into,
    int in_module);

static int
pml_role_kind(const char *name)
{
    if (strcmp(name, "system") == 0) {
        return 0;
    }
    if (strcmp(name, "user") == 0) {
        return 1;
    }
    if (strcmp(name, "assistant") == 0) {
        return 2;
    }
    return -1;
}

static int
pml_build_param(pml_sb_t *sb, pml_xel_t *x, pml_node_t *n)
{
    static const char *const  allowed[] = { "name", "length", "scaffold",
                                            NULL };
    pml_rd_t                 *rd = sb->rd;
    pml_xattr_t              *a;
    long                      v = 0;
    size_t                    k;
    int                       j;

    if (pml_attrs_check(rd, x, allowed) != 0
        || pml_attr_name(rd, x, &n->name) != 0)
    {
        return -1;
    }
    a = pml_attr(x, "length");
    if (a == NULL) {
        return pml_fail(rd, x->off, "<parameter name=\"%s\"> without a "
                        "length", n->name);
    }
    for (k = 0; k < a->len; k++) {
        if (a->value[k] < '0' || a->value[k] > '9') {
            break;
        }
        v = v * 10 + (a->value[k] - '0');
        if (v > PML_LENGTH_MAX) {
            break;
        }
    }
    if (a->len == 0 || k < a->len || v < 1 || v > PML_LENGTH_MAX) {
        return pml_fail(rd, a->off, "invalid length '%s' of parameter '%s' "
                        "(1 to %d positions)", a->value, n->name,
                        PML_LENGTH_MAX);
    }
    n->length = (int) v;
    a = pml_attr(x, "scaffold");
    if (a != NULL) {
        n->text = malloc(a->len + 1);
        if (n->text == NULL) {
            return pml_fail(rd, a->off, "out of memory");
        }
        memcpy(n->text, a->value, a->len + 1);
        n->text_len = a->len;
    }
    for (j = 0; j < x->n_kids; j++) {
        if (x->kids[j]->name != NULL
            || !pml_all_space(x->kids[j]->text, x->kids[j]->len))
        {
            return pml_fail(rd, x->kids[j]->off, "content inside "
                            "<parameter name=\"%s\"> (it is empty)",
                            n->name);
        }
    }
    return pml_sb_name(sb, n->name, x->off);
}

static int
pml_build_union(pml_sb_t *sb, pml_xel_t *x, pml_node_t *n)
{
    static const char *const  allowed[] = { "scaffold", NULL };
    pml_rd_t                 *rd = sb->rd;
    pml_xattr_t              *a;
    pml_xel_t                *k;
    pml_node_t               *m;
    size_t                    j;
    int                       i;

    if (pml_attrs_check(rd, x, allowed) != 0) {
        return -1;
    }
    for (i = 0; i < x->n_kids; i++) {
        k = x->kids[i];
        if (k->name == NULL) {
            if (pml_all_space(k->text, k->len)) {
                continue;
            }
            return pml_fail(rd, k->off, "text inside <union> (a union holds "
                            "only modules)");
        }
        if (strcmp(k->name, "parameter") == 0) {
            return pml_fail(rd, k->off, "a parameter must be inside a "
                            "module, not directly in a union");
        }
        if (strcmp(k->name, "module") != 0) {
            return pml_fail(rd, k->off, "<%s> inside <union> (a union holds "
                            "only modules)", k->name);
        }
        m = calloc(1, sizeof(*m));
        if (m == NULL || pml_node_add(n, m) != 0) {
            free(m);
            return pml_fail(rd, k->off, "out of memory");
        }
        m->kind = PML_NODE_MODULE;
        if (pml_build_content(sb, k, m, 1) != 0) {
            return -1;
        }
    }
    if (n->n_kids == 0) {
        return pml_fail(rd, x->off, "<union> without modules");
    }
    a = pml_attr(x, "scaffold");
    if (a != NULL) {
        for (j = 0; j < n->n_kids; j++) {
            if (strcmp(n->kids[j]->name, a->value) == 0) {
                break;
            }
        }
        if (j == n->n_kids) {
            return pml_fail(rd, a->off, "union scaffold '%s' is not one of "
                            "its modules", a->value);
        }
        n->scaffold = strdup(a->value);
        if (n->scaffold == NULL) {
            return pml_fail(rd, a->off, "out of memory");
        }
    }
    return 0;
}

/*
 * x is a module (or the schema root, or a role tag) whose node is `into`:
 * its attributes, then its content. in_module: a module encloses x.
 */
static int
pml_build_content(pml_sb_t *sb, pml_xel_t *x, pml_node_t *into, int in_module)
{
    static const char *const  mod_attrs[] = { "name", "src", NULL };
    static const char *const  no_attrs[] = { NULL };
    pml_rd_t                 *rd = sb->rd;
    pml_xattr_t              *a;
    pml_xel_t                *k;
    pml_node_t               *n;
    int                       i, rc;

    if (into->kind == PML_NODE_MODULE && x->name
        && strcmp(x->name, "module") == 0)
    {
        if (pml_attrs_check(rd, x, mod_attrs) != 0
            || pml_attr_name(rd, x, &into->name) != 0
            || pml_sb_name(sb, into->name, x->off) != 0)
        {
            return -1;
        }
        a = pml_attr(x, "src");
        if (a != NULL) {
            into->src = strdup(a->value);
            if (into->src == NULL) {
                return pml_fail(rd, a->off, "out of memory");
            }
        }
        in_module = 1;

    } else if (into->kind == PML_NODE_ROLE) {
        if (pml_attrs_check(rd, x, no_attrs) != 0) {
            return -1;
        }
    }

    for (i = 0; i < x->n_kids; i++) {
        k = x->kids[i];
        n = calloc(1, sizeof(*n));
        if (n == NULL || pml_node_add(into, n) != 0) {
            free(n);
            return pml_fail(rd, k->off, "out of memory");
        }

        if (k->name == NULL) {
            n->kind = PML_NODE_TEXT;
            n->text = k->text;
            n->text_len = k->len;
            k->text = NULL;
            continue;
        }

        if (strcmp(k->name, "module") == 0) {
            n->kind = PML_NODE_MODULE;
            rc = pml_build_content(sb, k, n, 1);

        } else if (strcmp(k->name, "union") == 0) {
            n->kind = PML_NODE_UNION;
            rc = pml_build_union(sb, k, n);

        } else if (strcmp(k->name, "parameter") == 0) {
            n->kind = PML_NODE_PARAM;
            if (!in_module) {
                return pml_fail(rd, k->off, "a parameter must be inside a "
                                "module");
            }
            rc = pml_build_param(sb, k, n);

        } else if (pml_role_kind(k->name) >= 0) {
            n->kind = PML_NODE_ROLE;
            n->name = strdup(k->name);
            if (n->name == NULL) {
                return pml_fail(rd, k->off, "out of memory");
            }
            rc = pml_build_content(sb, k, n, in_module);

        } else {
            return pml_fail(rd, k->off, "unknown tag <%s>", k->name);
        }
        if (rc != 0) {
            return -1;
        }
    }
    return 0;
}

int
pml_schema_parse(const char *text, size_t len, pml_schema_t **out,
    char *err, size_t errlen)
{
    static const char *const  allowed[] = { "name", "mode", NULL };
    pml_rd_t                  rd = { text, len, 0, err, errlen };
    pml_sb_t                  sb;
    pml_xel_t                *x;
    pml_xattr_t              *a;
    pml_schema_t             *s;

    *out = NULL;
    if (text == NULL && len > 0) {
        pml_msg(err, errlen, "%s: no input", __func__);
        return -1;
    }
    if (pml_read_document(&rd, &x) != 0) {
        return -1;
    }
    memset(&sb, 0, sizeof(sb));
    sb.rd = &rd;

    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->root = calloc(1, sizeof(pml_node_t))) == NULL
        || (s->root->name = strdup("")) == NULL)
    {
        pml_fail(&rd, 0, "out of memory");
        goto failed;
    }
    s->root->kind = PML_NODE_MODULE;

    if (strcmp(x->name, "schema") != 0) {
        pml_fail(&rd, x->off, "the root element is <%s>, not <schema>",
                 x->name);
        goto failed;
    }
    if (pml_attrs_check(&rd, x, allowed) != 0
        || pml_attr_name(&rd, x, &s->name) != 0)
    {
        goto failed;
    }
    a = pml_attr(x, "mode");
    if (a != NULL) {
        if (strcmp(a->value, "scaffold") == 0) {
            s->mode = PML_MODE_SCAFFOLD;
        } else if (strcmp(a->value, "independent") == 0) {
            s->mode = PML_MODE_INDEPENDENT;
        } else {
            pml_fail(&rd, a->off, "mode '%s' is neither 'scaffold' nor "
                     "'independent'", a->value);
            goto failed;
        }
    }
    if (pml_build_content(&sb, x, s->root, 0) != 0
        || pml_sb_unique(&sb) != 0)
    {
        goto failed;
    }
    free(sb.names);
    pml_xel_free(x);
    *out = s;
    return 0;

failed:
    free(sb.names);
    pml_xel_free(x);
    pml_schema_free(s);
    return -1;
}

void
pml_schema_free(pml_schema_t *s)
{
    if (s == NULL) {
        return;
    }
    pml_node_free(s->root);
    free(s->name);
    free(s);
}


/* --- layout -------------------------------------------------------------- */

typedef struct {
    const pml_roles_t  *roles;
    pml_tokenize_fn     tok;
    void               *ud;
    pml_layout_t       *l;
    int                *cap_tok;    /* per module */
    int                 cap_mods;
    int                 n_unions;
    int                 pos;
    char               *err;
    size_t              errlen;
} pml_lay_t;

static int
pml_lay_fail(pml_lay_t *c, const char *fmt, ...)
{
    va_list  ap;
    int      n;

    if (c->err == NULL || c->errlen == 0) {
        return -1;
    }
    n = snprintf(c->err, c->errlen, "pml_layout: ");
    if (n >= 0 && (size_t) n < c->errlen) {
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t) n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* tokens of text: ids (malloc()ed) and n, 0 tokens for empty text */
static int
pml_tokenize(pml_tokenize_fn tok, void *ud, const char *text, size_t len,
    int32_t **ids, int *n)
{
    *ids = NULL;
    *n = 0;
    if (len == 0) {
        return 0;
    }
    if (tok(ud, text, len, ids, n) != 0 || *n < 0
        || (*n > 0 && *ids == NULL))
    {
        free(*ids);
        *ids = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

static int
pml_lay_put(pml_lay_t *c, int m, const int32_t *ids, int n)
{
    pml_module_t  *mod = &c->l->mods[m];
    int32_t       *nt, *np;
    int            cap, k;

    if (c->pos > INT_MAX - n) {
        return pml_lay_fail(c, "more than %d positions", INT_MAX);
    }
    if (mod->n_tokens > INT_MAX / 2 - n) {
        return pml_lay_fail(c, "module '%s' is too long", mod->name);
    }
    if (mod->n_tokens + n > c->cap_tok[m]) {
        cap = c->cap_tok[m] ? c->cap_tok[m] : 16;
        while (cap < mod->n_tokens + n) {
            cap *= 2;
        }
        nt = realloc(mod->tokens, (size_t) cap * sizeof(*nt));
        if (nt == NULL) {
            return pml_lay_fail(c, "out of memory");
        }
        mod->tokens = nt;
        np = realloc(mod->pos, (size_t) cap * sizeof(*np));
        if (np == NULL) {
            return pml_lay_fail(c, "out of memory");
        }
        mod->pos = np;
        c->cap_tok[m] = cap;
    }
    for (k = 0; k < n; k++) {
        mod->tokens[mod->n_tokens] = ids[k];
        mod->pos[mod->n_tokens] = c->pos++;
        mod->n_tokens++;
    }
    return 0;
}

static int
pml_lay_text(pml_lay_t *c, int m, const char *text, size_t len)
{
    int32_t  *ids;
    int       n, rc;

    if (pml_tokenize(c->tok, c->ud, text, len, &ids, &n) != 0) {
        return pml_lay_fail(c, "the tokenizer failed on text at position "
                            "%d", c->pos);
    }
    rc = pml_lay_put(c, m, ids, n);
    free(ids);
    return rc;
}

static int
pml_lay_new_module(pml_lay_t *c, const char *name, int parent, int union_id,
    int in_scaffold)
{
    pml_module_t  *nm;
    int           *nc, cap, m;

    if (c->l->n_mods == c->cap_mods) {
        cap = c->cap_mods ? c->cap_mods * 2 : 8;
        nm = realloc(c->l->mods, (size_t) cap * sizeof(*nm));
        if (nm == NULL) {
            return pml_lay_fail(c, "out of memory");
        }
        c->l->mods = nm;
        nc = realloc(c->cap_tok, (size_t) cap * sizeof(*nc));
        if (nc == NULL) {
            return pml_lay_fail(c, "out of memory");
        }
        c->cap_tok = nc;
        c->cap_mods = cap;
    }
    m = c->l->n_mods;
    memset(&c->l->mods[m], 0, sizeof(c->l->mods[m]));
    c->cap_tok[m] = 0;
    c->l->mods[m].name = strdup(name);
    if (c->l->mods[m].name == NULL) {
        return pml_lay_fail(c, "out of memory");
    }
    c->l->n_mods++;
    c->l->mods[m].parent = parent;
    c->l->mods[m].union_id = union_id;
    c->l->mods[m].in_scaffold = in_scaffold;
    c->l->mods[m].start = c->pos;
    c->l->mods[m].end = c->pos;
    return m;
}

static int
pml_lay_param(pml_lay_t *c, const pml_node_t *nd, int m)
{
    pml_module_t  *mod = &c->l->mods[m];
    pml_param_t   *np, *p;
    int32_t       *ids;
    int            n;

    if (pml_tokenize(c->tok, c->ud, nd->text, nd->text ? nd->text_len : 0,
                     &ids, &n) != 0)
    {
        return pml_lay_fail(c, "the tokenizer failed on the scaffold of "
                            "parameter '%s'", nd->name);
    }
    if (n > nd->length) {
        free(ids);
        return pml_lay_fail(c, "the scaffold of parameter '%s' is %d tokens, "
                            "the slot holds %d", nd->name, n, nd->length);
    }
    if (c->pos > INT_MAX - nd->length) {
        free(ids);
        return pml_lay_fail(c, "more than %d positions", INT_MAX);
    }
    if (mod->n_params == 0
        || (mod->n_params >= 4 && (mod->n_params & (mod->n_params - 1)) == 0))
    {
        np = realloc(mod->params, (size_t) (mod->n_params ? mod->n_params * 2
                                                          : 4) * sizeof(*np));
        if (np == NULL) {
            free(ids);
            return pml_lay_fail(c, "out of memory");
        }
        mod->params = np;
    }
    p = &mod->params[mod->n_params];
    memset(p, 0, sizeof(*p));
    p->name = strdup(nd->name);
    if (p->name == NULL) {
        free(ids);
        return pml_lay_fail(c, "out of memory");
    }
    mod->n_params++;
    p->start = c->pos;
    p->length = nd->length;
    if (n > 0) {
        p->scaffold = ids;
        p->n_scaffold = n;
    } else {
        free(ids);
    }
    c->pos += nd->length;
    return 0;
}

static int pml_lay_walk(pml_lay_t *c, const pml_node_t *nd, int m,
    int in_scaffold);

static int
pml_lay_module(pml_lay_t *c, const pml_node_t *nd, int parent, int union_id,
    int in_scaffold)
{
    size_t  k;
    int     m;

    m = pml_lay_new_module(c, nd->name, parent, union_id, in_scaffold);
    if (m < 0) {
        return -1;
    }
    for (k = 0; k < nd->n_kids; k++) {
        if (pml_lay_walk(c, nd->kids[k], m, in_scaffold) != 0) {
            return -1;
        }
    }
    c->l->mods[m].end = c->pos;
    return 0;
}

static int
pml_lay_walk(pml_lay_t *c, const pml_node_t *nd, int m, int in_scaffold)
{
    const char  *s;
    size_t       k;
    int          r, start, longest, uid, def;

    switch (nd->kind) {

    case PML_NODE_TEXT:
        return pml_lay_text(c, m, nd->text, nd->text_len);

    case PML_NODE_PARAM:
        return pml_lay_param(c, nd, m);

    case PML_NODE_MODULE:
        return pml_lay_module(c, nd, m, -1, in_scaffold);

    case PML_NODE_ROLE:
        r = pml_role_kind(nd->name);
        s = (c->roles && r >= 0) ? c->roles->open[r] : NULL;
        if (s && pml_lay_text(c, m, s, strlen(s)) != 0) {
            return -1;
        }
        for (k = 0; k < nd->n_kids; k++) {
            if (pml_lay_walk(c, nd->kids[k], m, in_scaffold) != 0) {
                return -1;
            }
        }
        s = (c->roles && r >= 0) ? c->roles->close[r] : NULL;
        if (s && pml_lay_text(c, m, s, strlen(s)) != 0) {
            return -1;
        }
        return 0;

    case PML_NODE_UNION:
        uid = c->n_unions++;
        start = c->pos;
        longest = c->pos;
        for (k = 0; k < nd->n_kids; k++) {
            def = nd->scaffold ? strcmp(nd->kids[k]->name, nd->scaffold) == 0
                               : k == 0;
            c->pos = start;
            if (pml_lay_module(c, nd->kids[k], m, uid, in_scaffold && def)
                != 0)
            {
                return -1;
            }
            if (c->pos > longest) {
                longest = c->pos;
            }
        }
        c->pos = longest;
        return 0;
    }
    return pml_lay_fail(c, "node of unknown kind %d", (int) nd->kind);
}

int
pml_layout(const pml_schema_t *s, const pml_roles_t *roles, int32_t bos,
    pml_tokenize_fn tok, void *ud, pml_layout_t *out, char *err,
    size_t errlen)
{
    pml_lay_t  c;
    size_t     k;

    memset(out, 0, sizeof(*out));
    memset(&c, 0, sizeof(c));
    c.roles = roles;
    c.tok = tok;
    c.ud = ud;
    c.l = out;
    c.err = err;
    c.errlen = errlen;

    if (s == NULL || s->root == NULL || tok == NULL) {
        pml_lay_fail(&c, "no schema or no tokenizer");
        return -1;
    }
    out->mode = s->mode;
    if (pml_lay_new_module(&c, "", -1, -1, 1) != 0) {
        goto failed;
    }
    if (bos >= 0 && pml_lay_put(&c, 0, &bos, 1) != 0) {
        goto failed;
    }
    for (k = 0; k < s->root->n_kids; k++) {
        if (pml_lay_walk(&c, s->root->kids[k], 0, 1) != 0) {
            goto failed;
        }
    }
    out->mods[0].end = c.pos;
    out->n_pos = c.pos;
    free(c.cap_tok);
    return 0;

failed:
    free(c.cap_tok);
    pml_layout_free(out);
    return -1;
}

void
pml_layout_free(pml_layout_t *l)
{
    int  m, k;

    if (l == NULL) {
        return;
    }
    for (m = 0; m < l->n_mods; m++) {
        for (k = 0; k < l->mods[m].n_params; k++) {
            free(l->mods[m].params[k].name);
            free(l->mods[m].params[k].scaffold);
        }
        free(l->mods[m].params);
        free(l->mods[m].name);
        free(l->mods[m].tokens);
        free(l->mods[m].pos);
    }
    free(l->mods);
    memset(l, 0, sizeof(*l));
}


/* --- prompts ------------------------------------------------------------- */

int
pml_is_prompt(const char *text, size_t len)
{
    size_t  k = 0;
    char    c;

    if (text == NULL) {
        return 0;
    }
    while (k < len && pml_is_space(text[k])) {
        k++;
    }
    if (len - k < 7 || memcmp(text + k, "<prompt", 7) != 0) {
        return 0;
    }
    if (len - k == 7) {
        return 1;
    }
    c = text[k + 7];
    return pml_is_space(c) || c == '>' || c == '/';
}

static void
pml_import_clear(pml_import_t *im)
{
    int  k;

    for (k = 0; k < im->n_args; k++) {
        free(im->args[k].name);
        free(im->args[k].value);
    }
    for (k = 0; k < im->n_kids; k++) {
        pml_import_clear(&im->kids[k]);
    }
    free(im->args);
    free(im->kids);
    free(im->name);
}

/* the element children of x as imports into *out / *n */
static int
pml_build_imports(pml_rd_t *rd, pml_xel_t *x, pml_import_t **out, int *n)
{
    pml_import_t  *im;
    pml_xel_t     *k;
    int            i, j, count = 0;

    for (i = 0; i < x->n_kids; i++) {
        count += x->kids[i]->name != NULL;
    }
    *out = NULL;
    *n = 0;
    if (count == 0) {
        return 0;
    }
    *out = calloc((size_t) count, sizeof(**out));
    if (*out == NULL) {
        return pml_fail(rd, x->off, "out of memory");
    }

    for (i = 0; i < x->n_kids; i++) {
        k = x->kids[i];
        if (k->name == NULL) {
            continue;
        }
        im = &(*out)[(*n)++];
        if (!pml_name_ok(k->name)) {
            return pml_fail(rd, k->off, "invalid module name '%s'",
                            k->name);
        }
        im->name = k->name;
        k->name = NULL;
        if (k->n_attrs > 0) {
            im->args = calloc((size_t) k->n_attrs, sizeof(*im->args));
            if (im->args == NULL) {
                return pml_fail(rd, k->off, "out of memory");
            }
        }
        for (j = 0; j < k->n_attrs; j++) {
            if (!pml_name_ok(k->attrs[j].name)) {
                return pml_fail(rd, k->attrs[j].off, "invalid parameter "
                                "name '%s'", k->attrs[j].name);
            }
            im->args[j].name = k->attrs[j].name;
            im->args[j].value = k->attrs[j].value;
            im->args[j].len = k->attrs[j].len;
            k->attrs[j].name = NULL;
            k->attrs[j].value = NULL;
            im->n_args++;
        }
        for (j = 0; j < k->n_kids; j++) {
            if (k->kids[j]->name == NULL
                && !pml_all_space(k->kids[j]->text, k->kids[j]->len))
            {
                return pml_fail(rd, k->kids[j]->off, "text inside <%s> "
                                "(the prompt's text goes outside module "
                                "tags)", im->name);
            }
        }
        if (pml_build_imports(rd, k, &im->kids, &im->n_kids) != 0) {
            return -1;
        }
    }
    return 0;
}

int
pml_prompt_parse(const char *text, size_t len, pml_prompt_t **out,
    char *err, size_t errlen)
{
    static const char *const  allowed[] = { "schema", NULL };
    pml_rd_t                  rd = { text, len, 0, err, errlen };
    pml_xel_t                *x;
    pml_xattr_t              *a;
    pml_prompt_t             *p;
    pml_buf_t                 b = { NULL, 0, 0 };
    int                       i;

    *out = NULL;
    if (text == NULL && len > 0) {
        pml_msg(err, errlen, "%s: no input", __func__);
        return -1;
    }
    if (pml_read_document(&rd, &x) != 0) {
        return -1;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        pml_fail(&rd, 0, "out of memory");
        goto failed;
    }
    if (strcmp(x->name, "prompt") != 0) {
        pml_fail(&rd, x->off, "the root element is <%s>, not <prompt>",
                 x->name);
        goto failed;
    }
    if (pml_attrs_check(&rd, x, allowed) != 0) {
        goto failed;
    }
    a = pml_attr(x, "schema");
    if (a == NULL) {
        pml_fail(&rd, x->off, "<prompt> without a schema");
        goto failed;
    }
    if (!pml_name_ok(a->value) || strlen(a->value) != a->len) {
        pml_fail(&rd, a->off, "invalid schema name '%s'", a->value);
        goto failed;
    }
    p->schema = strdup(a->value);
    if (p->schema == NULL || pml_buf_put(&b, "", 0) != 0) {
        pml_fail(&rd, 0, "out of memory");
        goto failed;
    }
    for (i = 0; i < x->n_kids; i++) {
        if (x->kids[i]->name == NULL
            && pml_buf_put(&b, x->kids[i]->text, x->kids[i]->len) != 0)
        {
            pml_fail(&rd, x->kids[i]->off, "out of memory");
            goto failed;
        }
    }
    p->text = b.p;
    p->text_len = b.len;
    b.p = NULL;
    if (pml_build_imports(&rd, x, &p->imports, &p->n_imports) != 0) {
        goto failed;
    }
    pml_xel_free(x);
    *out = p;
    return 0;

failed:
    free(b.p);
    pml_xel_free(x);
    pml_prompt_free(p);
    return -1;
}

void
pml_prompt_free(pml_prompt_t *p)
{
    int  k;

    if (p == NULL) {
        return;
    }
    for (k = 0; k < p->n_imports; k++) {
        pml_import_clear(&p->imports[k]);
    }
    free(p->imports);
    free(p->schema);
    free(p->text);
    free(p);
}


/* --- binding ------------------------------------------------------------- */

typedef struct {
    int       start;
    int32_t  *ids;
    int       n;
} pml_piece_t;

typedef struct {
    const char  *name;
    int          index;
} pml_named_t;

typedef struct {
    const pml_layout_t  *l;
    pml_tokenize_fn      tok;
    void                *ud;
    pml_named_t         *by_name;   /* the modules sorted by name */
    char                *seen;
    int                 *picked;    /* per union: the member, -1 */
    int                  n_unions;
    pml_piece_t         *pieces;
    int                  n_pieces, cap_pieces;
    char                *err;
    size_t               errlen;
} pml_bc_t;

static int
pml_by_name_cmp(const void *a, const void *b)
{
    const pml_named_t  *x = a, *y = b;

    return strcmp(x->name, y->name);
}

static int
pml_piece_cmp(const void *a, const void *b)
{
    const pml_piece_t  *x = a, *y = b;

    return x->start < y->start ? -1 : x->start > y->start;
}

static int
pml_bind_fail(pml_bc_t *c, const char *fmt, ...)
{
    va_list  ap;
    int      n;

    if (c->err == NULL || c->errlen == 0) {
        return -1;
    }
    n = snprintf(c->err, c->errlen, "pml_bind: ");
    if (n >= 0 && (size_t) n < c->errlen) {
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t) n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int
pml_bind_find(pml_bc_t *c, const char *name)
{
    int  lo = 0, hi = c->l->n_mods - 1, mid, r;

    while (lo <= hi) {
        mid = lo + (hi - lo) / 2;
        r = strcmp(c->by_name[mid].name, name);
        if (r == 0) {
            return c->by_name[mid].index;
        }
        if (r < 0) {
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return -1;
}

static int
pml_bind_import(pml_bc_t *c, const pml_import_t *im, int parent)
{
    const pml_module_t  *mod;
    const pml_param_t   *pa;
    pml_piece_t         *np;
    int32_t             *ids;
    int                  m, k, j, n, u;

    m = (im->name && im->name[0]) ? pml_bind_find(c, im->name) : -1;
    if (m <= 0) {
        return pml_bind_fail(c, "the schema has no module '%s'",
                             im->name ? im->name : "");
    }
    mod = &c->l->mods[m];
    if (mod->parent != parent) {
        if (mod->parent > 0) {
            return pml_bind_fail(c, "module '%s' is inside module '%s': "
                                 "import it inside <%s>", im->name,
                                 c->l->mods[mod->parent].name,
                                 c->l->mods[mod->parent].name);
        }
        return pml_bind_fail(c, "module '%s' is not inside module '%s'",
                             im->name, c->l->mods[parent].name);
    }
    if (c->seen[m]) {
        return pml_bind_fail(c, "module '%s' is imported twice", im->name);
    }
    c->seen[m] = 1;
    u = mod->union_id;
    if (u >= 0 && u < c->n_unions) {
        if (c->picked[u] >= 0) {
            return pml_bind_fail(c, "modules '%s' and '%s' are members of "
                                 "one union: import one of them",
                                 c->l->mods[c->picked[u]].name, im->name);
        }
        c->picked[u] = m;
    }

    for (k = 0; k < im->n_args; k++) {
        pa = NULL;
        for (j = 0; j < mod->n_params; j++) {
            if (strcmp(mod->params[j].name, im->args[k].name) == 0) {
                pa = &mod->params[j];
                break;
            }
        }
        if (pa == NULL) {
            return pml_bind_fail(c, "module '%s' has no parameter '%s'",
                                 im->name, im->args[k].name);
        }
        if (pml_tokenize(c->tok, c->ud, im->args[k].value, im->args[k].len,
                         &ids, &n) != 0)
        {
            return pml_bind_fail(c, "the tokenizer failed on argument '%s'",
                                 pa->name);
        }
        if (n > pa->length) {
            free(ids);
            return pml_bind_fail(c, "argument '%s' is %d tokens, the slot "
                                 "holds %d", pa->name, n, pa->length);
        }
        if (n == 0) {
            free(ids);
            continue;
        }
        if (c->n_pieces == c->cap_pieces) {
            int  cap = c->cap_pieces ? c->cap_pieces * 2 : 8;

            np = realloc(c->pieces, (size_t) cap * sizeof(*np));
            if (np == NULL) {
                free(ids);
                return pml_bind_fail(c, "out of memory");
            }
            c->pieces = np;
            c->cap_pieces = cap;
        }
        c->pieces[c->n_pieces].start = pa->start;
        c->pieces[c->n_pieces].ids = ids;
        c->pieces[c->n_pieces].n = n;
        c->n_pieces++;
    }

    for (k = 0; k < im->n_kids; k++) {
        if (pml_bind_import(c, &im->kids[k], m) != 0) {
            return -1;
        }
    }
    return 0;
}

int
pml_bind(const pml_layout_t *l, const pml_prompt_t *p,
    pml_tokenize_fn tok, void *ud, pml_plan_t *out, char *err,
    size_t errlen)
{
    pml_bc_t   c;
    int32_t   *ids = NULL;
    int        k, j, n_text = 0, n_new = 0, rc = -1;

    memset(out, 0, sizeof(*out));
    memset(&c, 0, sizeof(c));
    c.l = l;
    c.tok = tok;
    c.ud = ud;
    c.err = err;
    c.errlen = errlen;

    if (l == NULL || l->n_mods < 1 || p == NULL || tok == NULL) {
        return pml_bind_fail(&c, "no layout, prompt or tokenizer");
    }
    for (k = 0; k < l->n_mods; k++) {
        if (l->mods[k].union_id >= c.n_unions) {
            c.n_unions = l->mods[k].union_id + 1;
        }
    }
    c.by_name = malloc((size_t) l->n_mods * sizeof(pml_named_t));
    c.seen = calloc((size_t) l->n_mods, 1);
    c.picked = malloc((size_t) (c.n_unions + 1) * sizeof(int));
    if (c.by_name == NULL || c.seen == NULL || c.picked == NULL) {
        pml_bind_fail(&c, "out of memory");
        goto done;
    }
    for (k = 0; k < l->n_mods; k++) {
        c.by_name[k].name = l->mods[k].name;
        c.by_name[k].index = k;
    }
    for (k = 0; k < c.n_unions; k++) {
        c.picked[k] = -1;
    }
    qsort(c.by_name, (size_t) l->n_mods, sizeof(pml_named_t),
          pml_by_name_cmp);

    for (k = 0; k < p->n_imports; k++) {
        if (pml_bind_import(&c, &p->imports[k], 0) != 0) {
            goto done;
        }
    }

    if (pml_tokenize(tok, ud, p->text, p->text ? p->text_len : 0, &ids,
                     &n_text) != 0)
    {
        pml_bind_fail(&c, "the tokenizer failed on the prompt's text");
        goto done;
    }
    if (l->n_pos > INT_MAX - n_text) {
        pml_bind_fail(&c, "more than %d positions", INT_MAX);
        goto done;
    }

    c.seen[0] = 1;
    for (k = 0; k < l->n_mods; k++) {
        out->n_mods += c.seen[k];
    }
    out->mods = malloc((size_t) out->n_mods * sizeof(int));
    if (out->mods == NULL) {
        pml_bind_fail(&c, "out of memory");
        goto done;
    }
    for (k = 0, j = 0; k < l->n_mods; k++) {
        if (c.seen[k]) {
            out->mods[j++] = k;
        }
    }

    for (k = 0; k < c.n_pieces; k++) {
        n_new += c.pieces[k].n;     /* each fits its slot: no overflow */
    }
    if (n_new > INT_MAX - n_text) {
        pml_bind_fail(&c, "too many new tokens");
        goto done;
    }
    n_new += n_text;
    if (n_new > 0) {
        out->tokens = malloc((size_t) n_new * sizeof(int32_t));
        out->pos = malloc((size_t) n_new * sizeof(int32_t));
        if (out->tokens == NULL || out->pos == NULL) {
            pml_bind_fail(&c, "out of memory");
            goto done;
        }
    }
    /* slots in position order, so the new tokens' positions ascend */
    if (c.n_pieces > 1) {
        qsort(c.pieces, (size_t) c.n_pieces, sizeof(pml_piece_t),
              pml_piece_cmp);
    }
    for (k = 0; k < c.n_pieces; k++) {
        for (j = 0; j < c.pieces[k].n; j++) {
            out->tokens[out->n] = c.pieces[k].ids[j];
            out->pos[out->n] = c.pieces[k].start + j;
            out->n++;
        }
    }
    for (j = 0; j < n_text; j++) {
        out->tokens[out->n] = ids[j];
        out->pos[out->n] = l->n_pos + j;
        out->n++;
    }
    rc = 0;

done:
    if (rc != 0) {
        pml_plan_free(out);
    }
    for (k = 0; k < c.n_pieces; k++) {
        free(c.pieces[k].ids);
    }
    free(c.pieces);
    free(c.by_name);
    free(c.seen);
    free(c.picked);
    free(ids);
    return rc;
}

void
pml_plan_free(pml_plan_t *plan)
{
    if (plan == NULL) {
        return;
    }
    free(plan->mods);
    free(plan->tokens);
    free(plan->pos);
    memset(plan, 0, sizeof(*plan));
}
