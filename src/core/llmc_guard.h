/*
 * Guards of the semantic cache: two normalized prompts close in meaning may
 * still need different answers.  A guard blocks the hit when a negation is
 * present on one side only, when the numbers (with their attached units)
 * differ, or when the named entities of a configured list differ.
 * nginx-free and I/O-free except llmc_entities_load_file().
 */

#ifndef LLMC_GUARD_H
#define LLMC_GUARD_H

#include <stddef.h>

#include "llmc_normalize.h"

#define LLMC_GUARD_NEGATION  0x1
#define LLMC_GUARD_NUMBERS   0x2
#define LLMC_GUARD_ENTITIES  0x4
#define LLMC_GUARD_ALL       0x7

typedef struct llmc_entities_s  llmc_entities_t;

/* Parses a guard name ("negation", "numbers", "entities", "all"); returns
 * its bit(s) or 0 when unknown. */
unsigned llmc_guard_flag(const char *name, size_t len);

/* A list of named entities.  File format: one entity per line, aliases of
 * the same entity separated by '|' ("서울 | seoul"), '#' comments, blank
 * lines ignored.  Entries are normalized like prompts (all steps, words
 * split as the dictionary step splits them) and may be phrases.  Loads
 * add to the list.  Returns 0, or -1 with "name:line: what" in err.  The
 * list is read-only once loaded. */
llmc_entities_t *llmc_entities_new(void);
void llmc_entities_free(llmc_entities_t *e);
int llmc_entities_load_buf(llmc_entities_t *e, const char *buf, size_t len,
    const char *name, char *err, size_t errlen);
int llmc_entities_load_file(llmc_entities_t *e, const char *path, char *err,
    size_t errlen);

/* 0: the two normalized prompts may share an answer; 1: a guard blocks,
 * *why (may be NULL) names it ("negation", "numbers", "entities").  dict
 * may be NULL (built-in negation cues only). */
int llmc_guard_check(const char *a, size_t alen, const char *b, size_t blen,
    const llmc_dict_t *dict, unsigned guards, const char **why);

/* The same with an entity list (ents NULL: the entities guard never
 * blocks). */
int llmc_guard_check_ex(const char *a, size_t alen, const char *b,
    size_t blen, const llmc_dict_t *dict, const llmc_entities_t *ents,
    unsigned guards, const char **why);

#endif /* LLMC_GUARD_H */
