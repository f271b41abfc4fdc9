/*
 * What llmc_stream.c (assembly) and llmc_replay.c (replay) share, and
 * nothing else uses: jansson helpers that record a failure instead of
 * returning it, the chat fields the format names.
 */

#ifndef LLMC_STREAM_INT_H
#define LLMC_STREAM_INT_H

#include <stddef.h>

#include <jansson.h>

#include "llmc_json.h"

/* code points of text per delta when the caller gives 0 */
#define LLMC_STREAM_CHUNK_CHARS  16

/* sets key of obj to a copy of v (v may be NULL: nothing is done);
 * 1 when that failed */
int llmc_set_copy(json_t *obj, const char *key, json_t *v);

/* json_object_set_new() and json_object_set() that record a failure in
 * *bad; obj or v NULL (a failed allocation before) is a failure too */
void llmc_put_new(json_t *obj, const char *key, json_t *v, int *bad);
void llmc_put(json_t *obj, const char *key, json_t *v, int *bad);

/* json_pack() with "O" then this: v's reference is given up whether the
 * packing worked or not (jansson 2.14 leaks "o" arguments on some
 * failures) */
json_t *llmc_packed(json_t *packed, json_t *v);

/* the fields of a chat message (and of its deltas) that the format names:
 * role, content, refusal, annotations, tool_calls; any other is carried
 * whole */
#define LLMC_CHAT_FIELDS  5

extern const char *const  llmc_chat_fields[LLMC_CHAT_FIELDS];

int llmc_chat_field_known(const char *key);

#endif /* LLMC_STREAM_INT_H */
