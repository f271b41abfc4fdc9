/*
 * PML, the Prompt Markup Language of Prompt Cache: schemas of reusable
 * prompt modules, and prompts that import them. I/O-free: text in, trees,
 * token layouts and evaluation plans out; tokenization is the caller's.
 *
 * Schema:
 *   <schema name="doc-qa" [mode="scaffold|independent"]>
 *     text <system>text</system> <user>..</user> <assistant>..</assistant>
 *     <module name="doc1" [src="file"]> text <module name="sub">..</module>
 *       <parameter name="city" length="8" [scaffold="Paris"]/> text
 *     </module>
 *     <union [scaffold="member"]> <module name="a">..</module>
 *       <module name="b">..</module> </union>
 *   </schema>
 * Names match ^[A-Za-z_][A-Za-z0-9_.-]*$ and are unique in a schema.
 * Text outside every module belongs to the schema's root module (index 0),
 * which every prompt imports. The members of a union start at the same
 * position; the union is as long as its longest member. A parameter
 * reserves `length` positions in its module. Entities &lt; &gt; &amp;
 * &quot; &apos; and &#N; / &#xN; are decoded in text and attributes.
 * Text is kept byte for byte, the leading and trailing white space of the
 * schema body included (only white space between a union's members is
 * dropped); comments are skipped, CDATA sections are text, an <?xml?>
 * declaration may come first. Limits: 4 MiB of input, 32 levels of
 * elements, 64 attributes a tag, parameter lengths 1 to 1048576.
 *
 * Prompt:
 *   <prompt schema="doc-qa"><doc1 city="Rome"><sub/></doc1> question</prompt>
 * A nested module is imported inside its parent's tag; at most one member
 * of a union. Text between and after the module tags is kept: all of it,
 * in document order, goes after the schema's end. Text inside a module
 * tag is an error (white space there is ignored).
 */

#ifndef LLMC_PML_H
#define LLMC_PML_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    PML_MODE_SCAFFOLD = 0,      /* modules encoded in one pass over the
                                   default scaffold (see the schema text
                                   before them) */
    PML_MODE_INDEPENDENT        /* each module attends only to itself */
} pml_mode_e;

typedef enum {
    PML_NODE_TEXT = 0,
    PML_NODE_MODULE,
    PML_NODE_UNION,
    PML_NODE_PARAM,
    PML_NODE_ROLE               /* name: "system", "user", "assistant" */
} pml_node_kind_e;

typedef struct pml_node pml_node_t;

struct pml_node {
    pml_node_kind_e   kind;
    char             *name;     /* module, parameter, role; NULL else */
    char             *text;     /* TEXT: decoded bytes; PARAM: the scaffold
                                   placeholder or NULL */
    size_t            text_len;
    int               length;   /* PARAM: positions reserved */
    char             *scaffold; /* UNION: the default member (NULL: the
                                   first) */
    char             *src;      /* MODULE: the src attribute or NULL */
    pml_node_t       *parent;
    pml_node_t      **kids;
    size_t            n_kids;
};

typedef struct {
    char        *name;
    pml_mode_e   mode;
    pml_node_t  *root;          /* kind MODULE, name "" */
} pml_schema_t;

/* 0, or -1 with err ("line L, column C: ...") */
int pml_schema_parse(const char *text, size_t len, pml_schema_t **out,
    char *err, size_t errlen);
void pml_schema_free(pml_schema_t *s);

/* text (no BOS) -> malloc()ed ids; 0 or -1 */
typedef int (*pml_tokenize_fn)(void *ud, const char *text, size_t len,
    int32_t **ids, int *n);

/* chat-template text around the content of each role tag */
typedef struct {
    const char  *open[3];       /* system, user, assistant */
    const char  *close[3];
} pml_roles_t;

typedef struct {
    char        *name;
    int          start;         /* first position of the slot */
    int          length;
    int32_t     *scaffold;      /* placeholder ids for scaffold encoding,
                                   NULL: the slot stays empty */
    int          n_scaffold;
} pml_param_t;

typedef struct {
    char        *name;          /* "" for the root */
    int          parent;        /* index of the enclosing module, -1 */
    int          union_id;      /* its union (0, 1, ...) or -1 */
    int          in_scaffold;   /* root, plain modules, default members */
    int          start, end;    /* positions [start, end), children and
                                   slots included */
    int32_t     *tokens;        /* its own text, in position order: not its
                                   children's, not the slots */
    int32_t     *pos;
    int          n_tokens;
    pml_param_t *params;
    int          n_params;
} pml_module_t;

typedef struct {
    pml_mode_e     mode;
    pml_module_t  *mods;        /* document order; 0 is the root */
    int            n_mods;
    int            n_pos;       /* the schema's end */
} pml_layout_t;

/*
 * Token layout of a schema: bos >= 0 is put at position 0 of the root.
 * roles may be NULL (role tags add no text).
 */
int pml_layout(const pml_schema_t *s, const pml_roles_t *roles, int32_t bos,
    pml_tokenize_fn tok, void *ud, pml_layout_t *out, char *err,
    size_t errlen);
void pml_layout_free(pml_layout_t *l);

typedef struct pml_import pml_import_t;

typedef struct {
    char    *name;
    char    *value;
    size_t   len;
} pml_arg_t;

struct pml_import {
    char          *name;
    pml_arg_t     *args;
    int            n_args;
    pml_import_t  *kids;        /* nested modules */
    int            n_kids;
};

typedef struct {
    char          *schema;
    pml_import_t  *imports;
    int            n_imports;
    char          *text;        /* the text outside module tags, in order */
    size_t         text_len;
} pml_prompt_t;

/* whether text (after leading white space) starts with "<prompt" */
int pml_is_prompt(const char *text, size_t len);
int pml_prompt_parse(const char *text, size_t len, pml_prompt_t **out,
    char *err, size_t errlen);
void pml_prompt_free(pml_prompt_t *p);

/*
 * What to evaluate for a prompt: the stored modules to gather (indices
 * into the layout, ascending = schema order, the root first), then the new
 * tokens: each argument at its slot (an argument longer than the slot is
 * an error), then the prompt's text from n_pos on. The arguments come in
 * position order, so pos[] ascends.
 */
typedef struct {
    int      *mods;
    int       n_mods;
    int32_t  *tokens;
    int32_t  *pos;
    int       n;
} pml_plan_t;

/* 0, or -1 with err: unknown module, wrong nesting, two members of one
 * union, unknown parameter, an argument too long */
int pml_bind(const pml_layout_t *l, const pml_prompt_t *p,
    pml_tokenize_fn tok, void *ud, pml_plan_t *out, char *err,
    size_t errlen);
void pml_plan_free(pml_plan_t *plan);

#endif /* LLMC_PML_H */
