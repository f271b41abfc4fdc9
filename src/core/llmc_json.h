/*
 * Copyright (C) the ngx_http_llmcache_module authors
 *
 * jansson's parse errors quote the input they stopped at ("invalid token
 * near 'the user's prompt'"), and what the project parses is prompts,
 * answers and stored entries: messages use llmc_json_errmsg(&jerr), which
 * cuts the quote off.  The position says where.
 */

#ifndef LLMC_JSON_H
#define LLMC_JSON_H

#include <string.h>
#include <jansson.h>

static inline const char *
llmc_json_errmsg(json_error_t *e)
{
    char  *q = strstr(e->text, " near '");

    if (q != NULL) {
        *q = '\0';
    }
    return e->text;
}

#endif /* LLMC_JSON_H */
