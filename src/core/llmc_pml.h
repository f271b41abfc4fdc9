/*
 * What the gateway needs to know of a PML prompt (the Prompt Cache markup
 * llmcache-worker serves): whether a prompt is one, and the schema it
 * names, for routing (`hash $llmcache_schema consistent;`) and for keeping
 * such prompts out of normalization and semantic matching — their tags
 * carry meaning that folding punctuation would lose.
 */

#ifndef LLMC_PML_PROMPT_H
#define LLMC_PML_PROMPT_H

#include <stddef.h>

/*
 * 1 when s (after leading white space) starts with a <prompt ...> tag;
 * *name and *len then hold its schema attribute's raw value (pointing into s;
 * length 0 when absent or when the tag is not closed). 0 otherwise.
 */
int llmc_pml_schema(const char *s, size_t n, const char **name, size_t *len);

#endif /* LLMC_PML_PROMPT_H */
