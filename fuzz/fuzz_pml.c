/*
 * Fuzzes the PML reader, layout and binding: the input is parsed as a
 * schema (and laid out) and as a prompt (and bound to a fixed schema's
 * layout). An input holding "\n===\n" is also split there into a schema
 * and a prompt bound to it. A toy tokenizer (one token per byte, failing
 * on byte 0x7f) keeps positions predictable; besides what ASan and UBSan
 * catch, the layout's and plan's positions are checked for consistency.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pml.h"

static const char  fixed[] =
    "<schema name='f'>A<system>s</system><module name='m'>b"
    "<parameter name='p' length='4' scaffold='x'/>c<module name='n'>d"
    "<parameter name='q' length='2'/></module></module><union>"
    "<module name='u'>e</module><module name='v'>ff<module name='w'>g"
    "</module></module></union>Z</schema>";

static const pml_roles_t  roles = {
    { "<s>", "<u>", "<a>" }, { "</s>", "</u>", "</a>" }
};

static int
tok_bytes(void *ud, const char *text, size_t len, int32_t **ids, int *n)
{
    size_t  k;

    (void) ud;
    if (memchr(text, 0x7f, len) != NULL) {
        return -1;
    }
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

static void
check_layout(const pml_layout_t *l)
{
    const pml_module_t  *m, *p;
    int                  i, k;

    if (l->n_mods < 1 || l->mods[0].start != 0 || l->mods[0].end != l->n_pos
        || l->mods[0].parent != -1 || !l->mods[0].in_scaffold)
    {
        abort();
    }
    for (i = 0; i < l->n_mods; i++) {
        m = &l->mods[i];
        if (m->start > m->end || m->end > l->n_pos) {
            abort();
        }
        if (i > 0) {
            if (m->parent < 0 || m->parent >= i) {
                abort();
            }
            p = &l->mods[m->parent];
            if (m->start < p->start || m->end > p->end
                || (m->in_scaffold && !p->in_scaffold))
            {
                abort();
            }
        }
        for (k = 0; k < m->n_tokens; k++) {
            if (m->pos[k] < m->start || m->pos[k] >= m->end
                || (k > 0 && m->pos[k] <= m->pos[k - 1]))
            {
                abort();
            }
        }
        for (k = 0; k < m->n_params; k++) {
            if (m->params[k].start < m->start || m->params[k].length < 1
                || m->params[k].start + m->params[k].length > m->end
                || m->params[k].n_scaffold > m->params[k].length)
            {
                abort();
            }
        }
    }
}

static void
check_plan(const pml_layout_t *l, const pml_plan_t *pl, size_t text_len)
{
    int  k, n_text = 0;

    if (pl->n_mods < 1 || pl->mods[0] != 0) {
        abort();
    }
    for (k = 1; k < pl->n_mods; k++) {
        if (pl->mods[k] <= pl->mods[k - 1] || pl->mods[k] >= l->n_mods) {
            abort();
        }
    }
    for (k = 0; k < pl->n; k++) {
        if (pl->pos[k] >= l->n_pos) {
            if (pl->pos[k] != l->n_pos + n_text) {
                abort();
            }
            n_text++;
        } else if (n_text > 0 || (k > 0 && pl->pos[k] <= pl->pos[k - 1])) {
            abort();
        }
    }
    if ((size_t) n_text != text_len) {
        abort();
    }
}

static void
run(const char *schema, size_t slen, const char *prompt, size_t plen,
    const pml_layout_t *fixed_l)
{
    pml_schema_t  *s = NULL;
    pml_prompt_t  *p = NULL;
    pml_layout_t   l;
    pml_plan_t     pl;
    char           err[256];
    int            have = 0;

    if (schema != NULL
        && pml_schema_parse(schema, slen, &s, err, sizeof(err)) == 0)
    {
        if (pml_layout(s, &roles, 1000, tok_bytes, NULL, &l, err,
                       sizeof(err)) == 0)
        {
            check_layout(&l);
            have = 1;
        }
        pml_schema_free(s);
    }
    if (prompt != NULL
        && pml_prompt_parse(prompt, plen, &p, err, sizeof(err)) == 0)
    {
        if (pml_bind(have ? &l : fixed_l, p, tok_bytes, NULL, &pl, err,
                     sizeof(err)) == 0)
        {
            check_plan(have ? &l : fixed_l, &pl, p->text_len);
            pml_plan_free(&pl);
        }
        pml_prompt_free(p);
    }
    if (have) {
        pml_layout_free(&l);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pml_layout_t  fl;
    static int           ready;
    pml_schema_t        *s;
    const char          *t = (const char *) data, *sep;
    char                 err[256];

    if (!ready) {
        if (pml_schema_parse(fixed, sizeof(fixed) - 1, &s, err,
                             sizeof(err)) != 0
            || pml_layout(s, &roles, 1000, tok_bytes, NULL, &fl, err,
                          sizeof(err)) != 0)
        {
            abort();
        }
        check_layout(&fl);
        pml_schema_free(s);
        ready = 1;
    }
    if (size > 65536) {
        return 0;
    }

    run(t, size, NULL, 0, &fl);
    run(NULL, 0, t, size, &fl);
    sep = memmem(t, size, "\n===\n", 5);
    if (sep != NULL) {
        run(t, (size_t) (sep - t), sep + 5, size - (size_t) (sep - t) - 5,
            &fl);
    }
    return 0;
}
