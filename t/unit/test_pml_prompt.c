/* llmc_pml_schema: the schema named by a PML prompt's start tag */

#include <string.h>

#include "llmc_pml.h"
#include "tap.h"

static void
check(const char *s, int is, const char *want, const char *what)
{
    const char  *name;
    size_t       len;
    int          rc;

    rc = llmc_pml_schema(s, strlen(s), &name, &len);
    if (!ok(rc == is, "%s: %s", what, is ? "a PML prompt" : "not one")) {
        return;
    }
    if (want == NULL) {
        ok(len == 0 && name == NULL, "%s: no schema", what);
    } else {
        ok(len == strlen(want) && memcmp(name, want, len) == 0,
           "%s: schema '%s' (got '%.*s')", what, want, (int) len,
           name ? name : "");
    }
}

int
main(void)
{
    check("<prompt schema=\"doc-qa\"><doc1/>Q</prompt>", 1, "doc-qa",
          "double quotes");
    check("  \n<prompt  schema = 'travel.v2' >x</prompt>", 1, "travel.v2",
          "white space and single quotes");
    check("<prompt id=\"7\" schema=\"b\">", 1, "b", "another attribute first");
    check("<prompt schema=\"\">", 1, "", "empty schema");
    check("<prompt>text</prompt>", 1, NULL, "no attribute");
    check("<prompt schema=\"unterminated", 1, NULL, "unterminated value");
    check("<prompt schema=bare>", 1, NULL, "unquoted value");
    check("<prompts schema=\"a\">", 0, NULL, "another tag");
    check("Tell me about <prompt schema=\"a\">", 0, NULL,
          "a tag not at the start");
    check("<prom", 0, NULL, "short input");
    check("", 0, NULL, "empty input");
    check("<prompt/>", 1, NULL, "self-closing");
    return done_testing();
}
