/*
 * PML: schema and prompt parsing, token layout and binding, with a toy
 * tokenizer (one token per byte, the byte's value as the id) so every
 * position can be counted by hand.
 */

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "pml.h"

#define BOS  1000

static int  tok_calls;

static int
tok_bytes(void *ud, const char *text, size_t len, int32_t **ids, int *n)
{
    size_t  k;

    (void) ud;
    tok_calls++;
    *ids = malloc(len ? len * sizeof(int32_t) : 1);
    if (*ids == NULL) {
        return -1;
    }
    for (k = 0; k < len; k++) {
        (*ids)[k] = (unsigned char) text[k];
    }
    *n = (int) len;
    return 0;
}

static int
tok_fail(void *ud, const char *text, size_t len, int32_t **ids, int *n)
{
    (void) ud;
    (void) text;
    (void) len;
    *ids = NULL;
    *n = 0;
    return -1;
}

static char  err[512];

static pml_schema_t *
parse(const char *s)
{
    pml_schema_t  *sc = NULL;

    err[0] = '\0';
    if (pml_schema_parse(s, strlen(s), &sc, err, sizeof(err)) != 0) {
        return NULL;
    }
    return sc;
}

/* the parse fails with exactly this message */
static void
schema_err(const char *s, const char *want, const char *what)
{
    pml_schema_t  *sc = parse(s);

    ok(sc == NULL, "%s: refused", what);
    is_str(err, want, "%s: message", what);
    pml_schema_free(sc);
}

static void
prompt_err(const char *s, const char *want, const char *what)
{
    pml_prompt_t  *p = NULL;

    err[0] = '\0';
    ok(pml_prompt_parse(s, strlen(s), &p, err, sizeof(err)) == -1
       && p == NULL, "%s: refused", what);
    is_str(err, want, "%s: message", what);
    pml_prompt_free(p);
}

/* tokens and positions of a module as "id@pos ..." (ids as chars) */
static const char *
mod_str(const pml_module_t *m)
{
    static char  buf[4096];
    size_t       o = 0;
    int          k;

    buf[0] = '\0';
    for (k = 0; k < m->n_tokens && o < sizeof(buf) - 32; k++) {
        if (m->tokens[k] == BOS) {
            o += (size_t) snprintf(buf + o, sizeof(buf) - o, "%s^@%d",
                                   k ? " " : "", m->pos[k]);
        } else {
            o += (size_t) snprintf(buf + o, sizeof(buf) - o, "%s%c@%d",
                                   k ? " " : "", (char) m->tokens[k],
                                   m->pos[k]);
        }
    }
    return buf;
}

static const char *
plan_str(const pml_plan_t *pl)
{
    static char  buf[4096];
    size_t       o = 0;
    int          k;

    buf[0] = '\0';
    for (k = 0; k < pl->n_mods && o < sizeof(buf) - 32; k++) {
        o += (size_t) snprintf(buf + o, sizeof(buf) - o, "%s%d",
                               k ? "," : "[", pl->mods[k]);
    }
    o += (size_t) snprintf(buf + o, sizeof(buf) - o, "]");
    for (k = 0; k < pl->n && o < sizeof(buf) - 32; k++) {
        o += (size_t) snprintf(buf + o, sizeof(buf) - o, " %c@%d",
                               (char) pl->tokens[k], pl->pos[k]);
    }
    return buf;
}

/*
 * Positions, by hand: ^0 A1 B2 | m1: c3 d4 [city 5..8] e9 | union at 10:
 * u1: f10 g11 h12 w13 ; u2: i10 j11 u2a: k12 | m3: l14 | Z15 -> 16.
 */
static const char  *S1 =
    "<schema name=\"t\">AB<module name=\"m1\">cd<parameter name=\"city\" "
    "length=\"4\" scaffold=\"xy\"/>e</module><union scaffold=\"u2\">\n"
    "  <module name=\"u1\">fghw</module>\n"
    "  <module name=\"u2\">ij<module name=\"u2a\">k</module></module>\n"
    "</union><module name='m3'>l</module>Z</schema>";

static void
test_layout_basic(void)
{
    pml_schema_t  *sc;
    pml_layout_t   l;
    int            rc;

    sc = parse(S1);
    ok(sc != NULL, "S1 parses (%s)", err);
    if (sc == NULL) {
        return;
    }
    is_str(sc->name, "t", "schema name");
    is_int(sc->mode, PML_MODE_SCAFFOLD, "mode defaults to scaffold");
    is_int(sc->root->n_kids, 5, "root: text, module, union, module, text");
    is_int(sc->root->kids[2]->kind, PML_NODE_UNION, "third kid: the union");
    is_int(sc->root->kids[2]->n_kids, 2, "white space in the union ignored");
    is_str(sc->root->kids[2]->scaffold, "u2", "union scaffold kept");

    rc = pml_layout(sc, NULL, BOS, tok_bytes, NULL, &l, err, sizeof(err));
    ok(rc == 0, "S1 layout (%s)", err);
    if (rc != 0) {
        pml_schema_free(sc);
        return;
    }
    is_int(l.n_mods, 6, "six modules with the root");
    is_int(l.n_pos, 16, "n_pos");
    is_str(l.mods[0].name, "", "module 0 is the root");
    is_str(mod_str(&l.mods[0]), "^@0 A@1 B@2 Z@15",
           "root: bos and the text outside modules");
    is_int(l.mods[0].start, 0, "root start");
    is_int(l.mods[0].end, 16, "root end");

    is_str(l.mods[1].name, "m1", "m1 second");
    is_str(mod_str(&l.mods[1]), "c@3 d@4 e@9", "m1 text around its slot");
    is_int(l.mods[1].start, 3, "m1 start");
    is_int(l.mods[1].end, 10, "m1 end includes the slot");
    is_int(l.mods[1].n_params, 1, "m1 has one parameter");
    is_str(l.mods[1].params[0].name, "city", "parameter name");
    is_int(l.mods[1].params[0].start, 5, "slot start");
    is_int(l.mods[1].params[0].length, 4, "slot length");
    is_int(l.mods[1].params[0].n_scaffold, 2, "scaffold placeholder tokens");
    ok(l.mods[1].params[0].scaffold[0] == 'x'
       && l.mods[1].params[0].scaffold[1] == 'y', "scaffold ids");

    is_str(l.mods[2].name, "u1", "u1");
    is_str(mod_str(&l.mods[2]), "f@10 g@11 h@12 w@13", "u1 at the union");
    is_str(l.mods[3].name, "u2", "u2");
    is_str(mod_str(&l.mods[3]), "i@10 j@11", "u2 at the union's start too");
    is_int(l.mods[3].end, 13, "u2 ends after its child");
    is_str(l.mods[4].name, "u2a", "u2a");
    is_str(mod_str(&l.mods[4]), "k@12", "u2a after u2's own text");
    is_int(l.mods[4].parent, 3, "u2a's parent is u2");
    is_int(l.mods[4].union_id, -1, "u2a is no union member itself");
    is_str(mod_str(&l.mods[5]), "l@14", "m3 after the longest member");
    is_int(l.mods[5].start, 14, "union takes its longest member's length");

    is_int(l.mods[2].union_id, 0, "u1 in union 0");
    is_int(l.mods[3].union_id, 0, "u2 in union 0");
    is_int(l.mods[1].union_id, -1, "m1 in no union");
    is_int(l.mods[2].parent, 0, "u1's parent is the root");
    is_int(l.mods[0].parent, -1, "the root has no parent");
    is_int(l.mods[0].in_scaffold, 1, "root in the scaffold");
    is_int(l.mods[1].in_scaffold, 1, "plain module in the scaffold");
    is_int(l.mods[2].in_scaffold, 0, "non-default member not");
    is_int(l.mods[3].in_scaffold, 1, "scaffold= member is");
    is_int(l.mods[4].in_scaffold, 1, "child of the default member is");
    is_int(l.mods[5].in_scaffold, 1, "module after the union is");
    pml_layout_free(&l);

    rc = pml_layout(sc, NULL, -1, tok_bytes, NULL, &l, err, sizeof(err));
    ok(rc == 0 && l.n_pos == 15, "no bos: one position fewer");
    is_str(mod_str(&l.mods[0]), "A@0 B@1 Z@14", "root without bos");
    pml_layout_free(&l);

    rc = pml_layout(sc, NULL, BOS, tok_fail, NULL, &l, err, sizeof(err));
    ok(rc == -1 && l.mods == NULL && l.n_mods == 0,
       "tokenizer failure: refused, nothing left");
    is_str(err, "pml_layout: the tokenizer failed on text at position 1",
           "tokenizer failure message");
    pml_schema_free(sc);
}

static void
test_layout_more(void)
{
    static const pml_roles_t  roles = {
        { "<s>", "<u>", "<a>" }, { "</s>", "</u>", NULL }
    };
    pml_schema_t  *sc;
    pml_layout_t   l;
    char           buf[1024];

    /* the first member is the default; a module nested in another member
     * is not in the scaffold */
    sc = parse("<schema name='x' mode='independent'><union>"
               "<module name='a'>aa</module>"
               "<module name='b'>b<module name='bb'>c</module></module>"
               "</union><union><module name='c'/></union></schema>");
    ok(sc != NULL, "union without scaffold= parses (%s)", err);
    if (sc != NULL
        && pml_layout(sc, NULL, -1, tok_bytes, NULL, &l, err,
                      sizeof(err)) == 0)
    {
        is_int(l.mode, PML_MODE_INDEPENDENT, "mode independent");
        is_int(l.mods[1].in_scaffold, 1, "first member is the default");
        is_int(l.mods[2].in_scaffold, 0, "second member is not");
        is_int(l.mods[3].in_scaffold, 0, "module in a non-default member");
        is_int(l.mods[4].union_id, 1, "second union has id 1");
        is_int(l.mods[4].start, 2, "second union after the first");
        is_int(l.mods[4].end, 2, "an empty module takes no position");
        is_int(l.n_pos, 2, "n_pos with unions of length 2 and 0");
        pml_layout_free(&l);
    } else {
        ok(0, "layout of the two unions (%s)", err);
    }
    pml_schema_free(sc);

    /* roles: open/close text is the enclosing module's */
    sc = parse("<schema name='r'><system>S</system><module name='m'>"
               "<user>q<parameter name='p' length='2'/></user>"
               "<assistant>A</assistant></module></schema>");
    ok(sc != NULL, "roles parse (%s)", err);
    if (sc != NULL
        && pml_layout(sc, &roles, -1, tok_bytes, NULL, &l, err,
                      sizeof(err)) == 0)
    {
        is_str(mod_str(&l.mods[0]), "<@0 s@1 >@2 S@3 <@4 /@5 s@6 >@7",
               "root: system open, content, close");
        is_str(mod_str(&l.mods[1]),
               "<@8 u@9 >@10 q@11 <@14 /@15 u@16 >@17 <@18 a@19 >@20 A@21",
               "module: user and assistant around their content");
        is_int(l.mods[1].params[0].start, 12, "slot inside the role tag");
        is_int(l.mods[1].params[0].n_scaffold, 0, "no scaffold: empty slot");
        ok(l.mods[1].params[0].scaffold == NULL, "scaffold ids NULL");
        is_int(l.n_pos, 22, "a NULL close adds nothing");
        pml_layout_free(&l);
    } else {
        ok(0, "layout with roles (%s)", err);
    }
    if (sc != NULL
        && pml_layout(sc, NULL, -1, tok_bytes, NULL, &l, err,
                      sizeof(err)) == 0)
    {
        is_str(mod_str(&l.mods[0]), "S@0", "roles NULL: role tags add no "
               "text");
        is_str(mod_str(&l.mods[1]), "q@1 A@4", "roles NULL: module text");
        pml_layout_free(&l);
    } else {
        ok(0, "layout without roles (%s)", err);
    }
    pml_schema_free(sc);

    /* a scaffold longer than its slot */
    sc = parse("<schema name='s'><module name='m'>"
               "<parameter name='city' length='3' scaffold='Paris'/>"
               "</module></schema>");
    ok(sc != NULL, "long scaffold parses");
    ok(sc != NULL && pml_layout(sc, NULL, -1, tok_bytes, NULL, &l, err,
                                sizeof(err)) == -1, "long scaffold refused");
    is_str(err, "pml_layout: the scaffold of parameter 'city' is 5 tokens, "
           "the slot holds 3", "long scaffold message");
    pml_schema_free(sc);

    /* text byte-exact: white space kept, entities, comments, CDATA */
    sc = parse("<?xml version=\"1.0\"?>\n<!-- c -->\n<schema name='e'>"
               "\n a&lt;&#65;&#x42;&amp;&quot;&apos;<!-- skip -->b"
               "<![CDATA[<x>&amp;]]> \n</schema>\n<!-- end -->\n");
    ok(sc != NULL, "entities, comments, CDATA (%s)", err);
    if (sc != NULL) {
        is_int(sc->root->n_kids, 1, "text around a comment is one node");
        snprintf(buf, sizeof(buf), "%.*s", (int) sc->root->kids[0]->text_len,
                 sc->root->kids[0]->text);
        is_str(buf, "\n a<AB&\"'b<x>&amp; \n", "decoded, white space kept");
    }
    pml_schema_free(sc);

    sc = parse("<schema name='u'>&#xE9;&#26085;&#x1F600;</schema>");
    ok(sc != NULL && sc->root->n_kids == 1
       && strcmp(sc->root->kids[0]->text,
                 "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80") == 0,
       "character references to UTF-8");
    pml_schema_free(sc);

    sc = parse("<schema name='v'><module name='m' src='a/b.py'/></schema>");
    ok(sc != NULL && sc->root->kids[0]->src != NULL
       && strcmp(sc->root->kids[0]->src, "a/b.py") == 0, "src kept");
    pml_schema_free(sc);
}

static void
test_schema_errors(void)
{
    char    *big, *deep;
    size_t   n, k;
    pml_schema_t *sc;

    schema_err("<schema name='a'>x", "line 1, column 1: <schema> is not "
               "closed", "unclosed root");
    schema_err("<schema name='a'><module name='m'></schema>",
               "line 1, column 35: </schema> closes <module>",
               "mismatched end tag");
    schema_err("", "line 1, column 1: no root element", "empty input");
    schema_err("hello", "line 1, column 1: expected the root element",
               "text instead of a root");
    schema_err("<schema name='a'/>x", "line 1, column 19: content after "
               "the root element", "text after the root");
    schema_err("<schema name='a' name='b'/>", "line 1, column 18: "
               "duplicate attribute 'name'", "duplicate attribute");
    schema_err("<schema name=a/>", "line 1, column 14: expected a quoted "
               "attribute value", "unquoted attribute");
    schema_err("<schema name='a'x='1'/>", "line 1, column 17: expected "
               "white space, '>' or '/>' in <schema>", "attributes run "
               "together");
    schema_err("<schema name='a<'/>", "line 1, column 16: '<' in an "
               "attribute value (write &lt;)", "'<' in a value");
    schema_err("<schema name='a'>&foo;</schema>", "line 1, column 18: "
               "unknown entity '&foo;'", "unknown entity");
    schema_err("<schema name='a'>a & b</schema>", "line 1, column 20: "
               "'&' outside an entity (write &amp;)", "bare ampersand");
    schema_err("<schema name='a'>&#0;</schema>", "line 1, column 18: "
               "bad character reference", "&#0;");
    schema_err("<schema name='a'>&#xD800;</schema>", "line 1, column 18: "
               "bad character reference", "surrogate reference");
    schema_err("<schema name='a'>&#x110000;</schema>", "line 1, column 18: "
               "character reference past U+10FFFF", "reference too large");
    schema_err("<schema name='a'><!-- x </schema>", "line 1, column 18: "
               "unterminated comment", "unterminated comment");
    schema_err("<schema name='a'><!DOCTYPE x></schema>", "line 1, column "
               "18: unsupported markup", "DOCTYPE");
    schema_err("<schema name='a'\n  >\n\n    <bogus/></schema>",
               "line 4, column 5: unknown tag <bogus>",
               "unknown tag, line and column");
    schema_err("<prompt schema='a'/>", "line 1, column 1: the root element "
               "is <prompt>, not <schema>", "wrong root");
    schema_err("<schema name='a'><schema name='b'/></schema>",
               "line 1, column 18: unknown tag <schema>", "nested schema");
    schema_err("<schema/>", "line 1, column 1: <schema> without a name",
               "schema without a name");
    schema_err("<schema name='a' mode='fast'/>", "line 1, column 18: mode "
               "'fast' is neither 'scaffold' nor 'independent'", "bad mode");
    schema_err("<schema name='a' x='1'/>", "line 1, column 18: unknown "
               "attribute 'x' in <schema>", "unknown schema attribute");
    schema_err("<schema name='a'><module name='m' cache='no'/></schema>",
               "line 1, column 35: unknown attribute 'cache' in <module>",
               "unknown module attribute");
    schema_err("<schema name='a'><union x='m'/></schema>",
               "line 1, column 25: unknown attribute 'x' in <union>",
               "unknown union attribute");
    schema_err("<schema name='a'><module name='m'><parameter name='p' "
               "length='1' len='2'/></module></schema>", "line 1, column "
               "66: unknown attribute 'len' in <parameter>",
               "unknown parameter attribute");
    schema_err("<schema name='a'><system role='x'/></schema>",
               "line 1, column 26: unknown attribute 'role' in <system>",
               "attribute on a role tag");
    schema_err("<schema name='a'><module/></schema>",
               "line 1, column 18: <module> without a name",
               "module without a name");
    schema_err("<schema name='a'><module name='9lives'/></schema>",
               "line 1, column 26: invalid name '9lives' in <module>",
               "name starting with a digit");
    schema_err("<schema name='a'><module name='a b'/></schema>",
               "line 1, column 26: invalid name 'a b' in <module>",
               "name with a space");
    schema_err("<schema name=''/>", "line 1, column 9: invalid name '' in "
               "<schema>", "empty schema name");
    schema_err("<schema name='a'><module name='m'/><module name='m'/>"
               "</schema>", "line 1, column 36: duplicate name 'm' "
               "(modules and parameters share one namespace)",
               "duplicate module names");
    schema_err("<schema name='a'><module name='m'><parameter name='x' "
               "length='1'/></module><union><module name='x'/></union>"
               "</schema>", "line 1, column 83: duplicate name 'x' "
               "(modules and parameters share one namespace)",
               "parameter and module with one name");
    schema_err("<schema name='a'><parameter name='p' length='1'/></schema>",
               "line 1, column 18: a parameter must be inside a module",
               "parameter under the root");
    schema_err("<schema name='a'><user><parameter name='p' length='1'/>"
               "</user></schema>", "line 1, column 24: a parameter must be "
               "inside a module", "parameter in a role tag at the root");
    schema_err("<schema name='a'><union><parameter name='p' length='1'/>"
               "</union></schema>", "line 1, column 25: a parameter must be "
               "inside a module, not directly in a union",
               "parameter in a union");
    schema_err("<schema name='a'><union> x <module name='m'/></union>"
               "</schema>", "line 1, column 25: text inside <union> (a "
               "union holds only modules)", "text in a union");
    schema_err("<schema name='a'><union><system/></union></schema>",
               "line 1, column 25: <system> inside <union> (a union holds "
               "only modules)", "role tag in a union");
    schema_err("<schema name='a'><union>\n </union></schema>",
               "line 1, column 18: <union> without modules", "empty union");
    schema_err("<schema name='a'><union scaffold='z'><module name='m'/>"
               "</union><module name='z'/></schema>", "line 1, column 25: "
               "union scaffold 'z' is not one of its modules",
               "scaffold naming a non-member");
    schema_err("<schema name='a'><module name='m'><parameter name='p'/>"
               "</module></schema>", "line 1, column 35: <parameter "
               "name=\"p\"> without a length", "length missing");
    schema_err("<schema name='a'><module name='m'><parameter name='p' "
               "length='0'/></module></schema>", "line 1, column 55: "
               "invalid length '0' of parameter 'p' (1 to 1048576 "
               "positions)", "length 0");
    schema_err("<schema name='a'><module name='m'><parameter name='p' "
               "length='-3'/></module></schema>", "line 1, column 55: "
               "invalid length '-3' of parameter 'p' (1 to 1048576 "
               "positions)", "negative length");
    schema_err("<schema name='a'><module name='m'><parameter name='p' "
               "length='8x'/></module></schema>", "line 1, column 55: "
               "invalid length '8x' of parameter 'p' (1 to 1048576 "
               "positions)", "length with junk");
    schema_err("<schema name='a'><module name='m'><parameter name='p' "
               "length=''/></module></schema>", "line 1, column 55: "
               "invalid length '' of parameter 'p' (1 to 1048576 "
               "positions)", "empty length");
    schema_err("<schema name='a'><module name='m'><parameter name='p' "
               "length='99999999999999999999'/></module></schema>",
               "line 1, column 55: invalid length '99999999999999999999' of "
               "parameter 'p' (1 to 1048576 positions)", "huge length");
    schema_err("<schema name='a'><module name='m'><parameter name='p' "
               "length='2'>x</parameter></module></schema>", "line 1, "
               "column 66: content inside <parameter name=\"p\"> (it is "
               "empty)", "text inside a parameter");

    /* depth: the root and 31 modules is 32 levels; one more is refused */
    deep = malloc(64 * 48);
    if (deep != NULL) {
        for (n = 31; n <= 32; n++) {
            size_t o = (size_t) sprintf(deep, "<schema name='d'>");

            for (k = 0; k < n; k++) {
                o += (size_t) sprintf(deep + o, "<module name='m%zu'>", k);
            }
            for (k = 0; k < n; k++) {
                o += (size_t) sprintf(deep + o, "</module>");
            }
            sprintf(deep + o, "</schema>");
            sc = parse(deep);
            if (n == 31) {
                ok(sc != NULL, "32 levels parse (%s)", err);
            } else {
                ok(sc == NULL, "33 levels refused");
                ok(strstr(err, ": nesting deeper than 32 elements") != NULL
                   && strncmp(err, "line 1, column ", 15) == 0,
                   "depth message: %s", err);
            }
            pml_schema_free(sc);
        }
        free(deep);
    }

    /* 4 MiB: the limit itself is fine, one byte more is not */
    n = 4u * 1024 * 1024;
    big = malloc(n + 2);
    if (big != NULL) {
        memset(big, ' ', n + 1);
        memcpy(big, "<schema name='b'>", 17);
        memcpy(big + n - 9, "</schema>", 9);
        sc = NULL;
        ok(pml_schema_parse(big, n, &sc, err, sizeof(err)) == 0,
           "a 4 MiB schema parses (%s)", err);
        pml_schema_free(sc);
        sc = NULL;
        ok(pml_schema_parse(big, n + 1, &sc, err, sizeof(err)) == -1,
           "4 MiB + 1 refused");
        is_str(err, "line 1, column 1: the input is 4194305 bytes, over the "
               "4 MiB limit", "size message");
        free(big);
    }

    /* 64 attributes in a tag are fine, 65 are not */
    deep = malloc(65 * 16 + 64);
    if (deep != NULL) {
        for (n = 64; n <= 65; n++) {
            pml_prompt_t  *p = NULL;
            char           want[128];
            size_t         o;
            int            rc;

            o = (size_t) sprintf(deep, "<prompt schema='a'><m");
            for (k = 0; k < n; k++) {
                o += (size_t) sprintf(deep + o, " a%zu=''", k);
            }
            sprintf(deep + o, "/></prompt>");
            rc = pml_prompt_parse(deep, strlen(deep), &p, err, sizeof(err));
            if (n == 64) {
                ok(rc == 0 && p->imports[0].n_args == 64,
                   "64 attributes on one tag (%s)", err);
            } else {
                ok(rc == -1, "65 attributes refused");
                snprintf(want, sizeof(want), "line 1, column %d: more than "
                         "64 attributes in <m>",
                         (int) (strstr(deep, " a64=") - deep) + 2);
                is_str(err, want, "attribute limit message");
            }
            pml_prompt_free(p);
        }
        free(deep);
    }

    /* no room for a message is no reason to crash */
    sc = NULL;
    ok(pml_schema_parse("<x", 2, &sc, NULL, 0) == -1 && sc == NULL,
       "refused without an error buffer");

    /* a NUL byte in text */
    sc = NULL;
    ok(pml_schema_parse("<schema name='a'>x\0y</schema>", 29, &sc, err,
                        sizeof(err)) == -1, "NUL byte refused");
    is_str(err, "line 1, column 19: NUL byte", "NUL message");
}

static void
test_prompt(void)
{
    pml_prompt_t  *p = NULL;
    const char    *s;
    char          *big;
    size_t         n;

    ok(pml_is_prompt(" \n\t<prompt schema='a'/>", 23), "is_prompt after "
       "white space");
    ok(pml_is_prompt("<prompt>", 8), "is_prompt: bare tag");
    ok(!pml_is_prompt("<prompts/>", 10), "is_prompt: another tag");
    ok(!pml_is_prompt("{\"prompt\": 1}", 13), "is_prompt: JSON");
    ok(!pml_is_prompt("<prom", 5), "is_prompt: truncated");
    ok(!pml_is_prompt("x<prompt>", 9), "is_prompt: text first");

    s = "<prompt schema=\"t\">Q1 <m1 city=\"R&amp;m\"><sub/></m1>&lt;2"
        "<m3 a='' b=\"x y\"/>\n end</prompt>";
    ok(pml_prompt_parse(s, strlen(s), &p, err, sizeof(err)) == 0,
       "prompt parses (%s)", err);
    if (p != NULL) {
        is_str(p->schema, "t", "schema attribute");
        is_int(p->n_imports, 2, "two imports");
        is_str(p->imports[0].name, "m1", "first import");
        is_int(p->imports[0].n_args, 1, "one argument");
        is_str(p->imports[0].args[0].name, "city", "argument name");
        is_str(p->imports[0].args[0].value, "R&m", "argument decoded");
        is_int(p->imports[0].args[0].len, 3, "argument length");
        is_int(p->imports[0].n_kids, 1, "one nested import");
        is_str(p->imports[0].kids[0].name, "sub", "nested import name");
        is_int(p->imports[1].n_args, 2, "two arguments");
        is_int(p->imports[1].args[0].len, 0, "empty argument");
        is_str(p->imports[1].args[1].value, "x y", "second argument");
        is_str(p->text, "Q1 <2\n end", "text between and after tags");
        is_int(p->text_len, 10, "text length");
    }
    pml_prompt_free(p);

    prompt_err("<prompt schema='a'><m1>", "line 1, column 20: <m1> is not "
               "closed", "prompt: bad XML");
    prompt_err("<prompt>hi</prompt>", "line 1, column 1: <prompt> without a "
               "schema", "prompt: no schema");
    prompt_err("<prompt schema='1x'/>", "line 1, column 9: invalid schema "
               "name '1x'", "prompt: bad schema name");
    prompt_err("<prompt schema='a' x='1'/>", "line 1, column 20: unknown "
               "attribute 'x' in <prompt>", "prompt: unknown attribute");
    prompt_err("<schema name='a'/>", "line 1, column 1: the root element is "
               "<schema>, not <prompt>", "prompt: wrong root");
    prompt_err("<prompt schema='a'><a:b/></prompt>", "line 1, column 20: "
               "invalid module name 'a:b'", "prompt: bad module name");
    prompt_err("<prompt schema='a'><m x:y='1'/></prompt>", "line 1, column "
               "23: invalid parameter name 'x:y'", "prompt: bad arg name");
    prompt_err("<prompt schema='a'><m>text</m></prompt>", "line 1, column "
               "23: text inside <m> (the prompt's text goes outside module "
               "tags)", "prompt: text inside a module tag");

    n = 4u * 1024 * 1024 + 1;
    big = malloc(n);
    if (big != NULL) {
        memset(big, ' ', n);
        memcpy(big, "<prompt schema='a'>", 19);
        memcpy(big + n - 9, "</prompt>", 9);
        p = NULL;
        ok(pml_prompt_parse(big, n, &p, err, sizeof(err)) == -1
           && p == NULL, "prompt over 4 MiB refused");
        is_str(err, "line 1, column 1: the input is 4194305 bytes, over the "
               "4 MiB limit", "prompt size message");
        free(big);
    }
}

/* binds prompt text against S1's layout; NULL on an error (in err) */
static const char *
bind_str(const pml_layout_t *l, const char *prompt)
{
    static char    out[4096];
    pml_prompt_t  *p = NULL;
    pml_plan_t     pl;

    err[0] = '\0';
    if (pml_prompt_parse(prompt, strlen(prompt), &p, err, sizeof(err)) != 0)
    {
        return NULL;
    }
    if (pml_bind(l, p, tok_bytes, NULL, &pl, err, sizeof(err)) != 0) {
        ok(pl.mods == NULL && pl.tokens == NULL && pl.n == 0,
           "failed bind leaves an empty plan");
        pml_prompt_free(p);
        return NULL;
    }
    snprintf(out, sizeof(out), "%s", plan_str(&pl));
    pml_plan_free(&pl);
    pml_prompt_free(p);
    return out;
}

static void
bind_err(const pml_layout_t *l, const char *prompt, const char *want,
    const char *what)
{
    ok(bind_str(l, prompt) == NULL, "%s: refused", what);
    is_str(err, want, "%s: message", what);
}

static void
test_bind(void)
{
    pml_schema_t  *sc;
    pml_layout_t   l;
    const char    *r;

    sc = parse(S1);
    if (sc == NULL || pml_layout(sc, NULL, BOS, tok_bytes, NULL, &l, err,
                                 sizeof(err)) != 0)
    {
        ok(0, "S1 for binding (%s)", err);
        pml_schema_free(sc);
        return;
    }

    r = bind_str(&l, "<prompt schema='t'><m1 city='Rome'/><u1/> why</prompt>");
    is_str(r, "[0,1,2] R@5 o@6 m@7 e@8  @16 w@17 h@18 y@19",
           "argument at its slot, text from n_pos");
    r = bind_str(&l, "<prompt schema='t'><m3/><m1 city='Ro'/></prompt>");
    is_str(r, "[0,1,5] R@5 o@6", "modules ascending; short argument");
    r = bind_str(&l, "<prompt schema='t'>a<m1/>b<m3/>c</prompt>");
    is_str(r, "[0,1,5] a@16 b@17 c@18", "text between module tags kept");
    r = bind_str(&l, "<prompt schema='t'></prompt>");
    is_str(r, "[0]", "no imports, no text: the root only");
    r = bind_str(&l, "<prompt schema='t'><m1 city=''/></prompt>");
    is_str(r, "[0,1]", "empty argument adds nothing");
    r = bind_str(&l, "<prompt schema='t'><u2><u2a/></u2>?</prompt>");
    is_str(r, "[0,3,4] ?@16", "nested import brings its parent");
    r = bind_str(&l, "<prompt schema='t'><u2/></prompt>");
    is_str(r, "[0,3]", "parent alone");

    bind_err(&l, "<prompt schema='t'><zz/></prompt>",
             "pml_bind: the schema has no module 'zz'", "unknown module");
    bind_err(&l, "<prompt schema='t'><u2a/></prompt>",
             "pml_bind: module 'u2a' is inside module 'u2': import it inside "
             "<u2>", "nested module outside its parent");
    bind_err(&l, "<prompt schema='t'><m1><m3/></m1></prompt>",
             "pml_bind: module 'm3' is not inside module 'm1'",
             "top-level module inside another");
    bind_err(&l, "<prompt schema='t'><u1/><u2/></prompt>",
             "pml_bind: modules 'u1' and 'u2' are members of one union: "
             "import one of them", "two members of one union");
    bind_err(&l, "<prompt schema='t'><m1/><m1/></prompt>",
             "pml_bind: module 'm1' is imported twice", "module twice");
    bind_err(&l, "<prompt schema='t'><m1 town='x'/></prompt>",
             "pml_bind: module 'm1' has no parameter 'town'",
             "unknown parameter");
    bind_err(&l, "<prompt schema='t'><m3 city='x'/></prompt>",
             "pml_bind: module 'm3' has no parameter 'city'",
             "parameter of another module");
    bind_err(&l, "<prompt schema='t'><m1 city='Paris'/></prompt>",
             "pml_bind: argument 'city' is 5 tokens, the slot holds 4",
             "argument too long");

    /* the tokenizer runs only on what has bytes */
    {
        pml_prompt_t  *p = NULL;
        pml_plan_t     pl;
        const char    *s = "<prompt schema='t'><m1 city=''/><m3/></prompt>";
        int            calls;

        ok(pml_prompt_parse(s, strlen(s), &p, err, sizeof(err)) == 0,
           "prompt without text parses");
        calls = tok_calls;
        ok(p && pml_bind(&l, p, tok_bytes, NULL, &pl, err, sizeof(err)) == 0
           && pl.n == 0 && pl.tokens == NULL, "nothing new to evaluate");
        is_int(tok_calls - calls, 0, "empty argument and text: no "
               "tokenizer call");
        pml_plan_free(&pl);
        ok(p && pml_bind(&l, p, tok_fail, NULL, &pl, err, sizeof(err)) == 0,
           "a failing tokenizer is not called for empty text");
        pml_plan_free(&pl);
        pml_prompt_free(p);

        s = "<prompt schema='t'><m1 city='R'/></prompt>";
        p = NULL;
        ok(pml_prompt_parse(s, strlen(s), &p, err, sizeof(err)) == 0
           && pml_bind(&l, p, tok_fail, NULL, &pl, err, sizeof(err)) == -1,
           "tokenizer failure on an argument refused");
        is_str(err, "pml_bind: the tokenizer failed on argument 'city'",
               "argument tokenizer failure message");
        pml_prompt_free(p);

        s = "<prompt schema='t'>q</prompt>";
        p = NULL;
        ok(pml_prompt_parse(s, strlen(s), &p, err, sizeof(err)) == 0
           && pml_bind(&l, p, tok_fail, NULL, &pl, err, sizeof(err)) == -1,
           "tokenizer failure on the text refused");
        is_str(err, "pml_bind: the tokenizer failed on the prompt's text",
               "text tokenizer failure message");
        pml_prompt_free(p);
    }
    pml_layout_free(&l);
    pml_schema_free(sc);

    /* arguments of nested modules, in position order whatever the
     * prompt's order: ^0 | a: x1 [c 2..4] b: y5 [d 6..7] | z8 -> 9 */
    sc = parse("<schema name='n'><module name='a'>x<parameter name='c' "
               "length='3'/><module name='b'>y<parameter name='d' "
               "length='2'/></module></module>z</schema>");
    if (sc == NULL || pml_layout(sc, NULL, BOS, tok_bytes, NULL, &l, err,
                                 sizeof(err)) != 0)
    {
        ok(0, "nested parameters layout (%s)", err);
        pml_schema_free(sc);
        return;
    }
    is_int(l.n_pos, 9, "nested parameters: n_pos");
    r = bind_str(&l, "<prompt schema='n'><a><b d='PQ'/></a></prompt>");
    is_str(r, "[0,1,2] P@6 Q@7", "argument of a nested module");
    r = bind_str(&l, "<prompt schema='n'><a c='C'><b d='D'/></a>!</prompt>");
    is_str(r, "[0,1,2] C@2 D@6 !@9", "arguments of parent and child");
    bind_err(&l, "<prompt schema='n'><a><b c='C'/></a></prompt>",
             "pml_bind: module 'b' has no parameter 'c'",
             "a parent's parameter given to its child");
    pml_layout_free(&l);
    pml_schema_free(sc);

    sc = parse("<schema name='o'><module name='a'><parameter name='p' "
               "length='1'/></module><module name='b'><parameter name='q' "
               "length='1'/></module></schema>");
    if (sc != NULL && pml_layout(sc, NULL, BOS, tok_bytes, NULL, &l, err,
                                 sizeof(err)) == 0)
    {
        r = bind_str(&l, "<prompt schema='o'><b q='Q'/><a p='P'/></prompt>");
        is_str(r, "[0,1,2] P@1 Q@2", "arguments sorted by position");
        pml_layout_free(&l);
    } else {
        ok(0, "two-slot schema (%s)", err);
    }
    pml_schema_free(sc);
}

static char *
read_all(const char *path, size_t *len)
{
    FILE   *f = fopen(path, "rb");
    char   *b = NULL;
    long    n;

    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0
        && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t) n + 1)))
    {
        if (fread(b, 1, (size_t) n, f) != (size_t) n) {
            free(b);
            b = NULL;
        } else {
            b[n] = '\0';
            *len = (size_t) n;
        }
    }
    fclose(f);
    return b;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* every examples/schemas/NAME.xml with its NAME.prompt.xml */
static void
test_examples(const char *argv0)
{
    char           dir[4096], path[4400], *names[64], *text, *slash;
    const char    *root = getenv("LLMCACHE_ROOT");
    struct dirent *de;
    DIR           *d;
    size_t         len, nl;
    int            n = 0, k, rc;
    pml_schema_t  *sc;
    pml_prompt_t  *p;
    pml_layout_t   l;
    pml_plan_t     pl;

    if (root) {
        snprintf(dir, sizeof(dir), "%s/examples/schemas", root);
    } else if (access("examples/schemas", R_OK) == 0) {
        snprintf(dir, sizeof(dir), "examples/schemas");
    } else {
        snprintf(dir, sizeof(dir), "%s", argv0);
        slash = strrchr(dir, '/');
        if (slash) {
            snprintf(slash, sizeof(dir) - (size_t) (slash - dir),
                     "/../../examples/schemas");
        }
    }
    d = opendir(dir);
    ok(d != NULL, "examples directory %s", dir);
    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL && n < 64) {
        nl = strlen(de->d_name);
        if (nl > 4 && strcmp(de->d_name + nl - 4, ".xml") == 0
            && !(nl > 11 && strcmp(de->d_name + nl - 11, ".prompt.xml") == 0))
        {
            names[n++] = strndup(de->d_name, nl - 4);
        }
    }
    closedir(d);
    qsort(names, (size_t) n, sizeof(names[0]), name_cmp);
    ok(n >= 3, "at least three example schemas (%d)", n);

    for (k = 0; k < n; k++) {
        snprintf(path, sizeof(path), "%s/%s.xml", dir, names[k]);
        text = read_all(path, &len);
        sc = NULL;
        rc = text ? pml_schema_parse(text, len, &sc, err, sizeof(err)) : -1;
        ok(rc == 0, "%s.xml parses (%s)", names[k], text ? err : "unread");
        free(text);
        if (rc != 0) {
            continue;
        }
        is_str(sc->name, names[k], "%s: schema name is the file name",
               names[k]);
        rc = pml_layout(sc, NULL, BOS, tok_bytes, NULL, &l, err,
                        sizeof(err));
        ok(rc == 0 && l.n_mods > 1, "%s: layout with modules (%s)", names[k],
           err);
        pml_schema_free(sc);
        if (rc != 0) {
            continue;
        }

        snprintf(path, sizeof(path), "%s/%s.prompt.xml", dir, names[k]);
        text = read_all(path, &len);
        p = NULL;
        rc = text ? pml_prompt_parse(text, len, &p, err, sizeof(err)) : -1;
        ok(rc == 0, "%s.prompt.xml parses (%s)", names[k],
           text ? err : "unread");
        ok(text && pml_is_prompt(text, len), "%s: is_prompt", names[k]);
        free(text);
        if (rc == 0) {
            is_str(p->schema, names[k], "%s: prompt names its schema",
                   names[k]);
            rc = pml_bind(&l, p, tok_bytes, NULL, &pl, err, sizeof(err));
            ok(rc == 0 && pl.n_mods > 1 && pl.n > 0,
               "%s: prompt binds to modules and new tokens (%s)", names[k],
               rc ? err : "");
            if (rc == 0) {
                pml_plan_free(&pl);
            }
        }
        pml_prompt_free(p);
        pml_layout_free(&l);
    }
    for (k = 0; k < n; k++) {
        free(names[k]);
    }
}

int
main(int argc, char **argv)
{
    (void) argc;
    test_layout_basic();
    test_layout_more();
    test_schema_errors();
    test_prompt();
    test_bind();
    test_examples(argv[0]);
    return done_testing();
}
