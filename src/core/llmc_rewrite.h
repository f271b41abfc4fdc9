/*
 * Upstream request rewriting for provider-side prompt caching: Anthropic
 * cache_control breakpoints, and stable prefixes for OpenAI (deterministic
 * tools, volatile text moved after the stable prefix, prompt_cache_key and
 * prompt_cache_retention).  Plain C over jansson; nginx-free and I/O-free.
 * The rules and where everything goes: docs/provider-cache.md.
 */

#ifndef LLMC_REWRITE_H
#define LLMC_REWRITE_H

#include <stddef.h>

#include "llmc_request.h"

/* Minimum cacheable prefix of the models matching a glob pattern
 * ("claude-opus-4-5*"); the longest matching pattern wins. */
typedef struct {
    const char  *pattern;
    size_t       tokens;
} llmc_min_tokens_t;

typedef struct {
    int                       anthropic_auto;   /* cache_control auto */
    int                       anthropic_ttl_1h; /* cache_ttl 1h */
    int                       openai_stable;    /* openai_prefix stable */
    /* POSIX extended regexes (regcomp(REG_EXTENDED)), matched against the
     * system/developer text; compiled per call */
    const char *const        *volatile_res;
    size_t                    n_volatile;
    /* NULL off, "" auto (from the stable prefix's hash), else literal */
    const char               *openai_cache_key;
    const char               *openai_retention; /* NULL, in_memory, 24h */
    const llmc_min_tokens_t  *min_tokens;       /* NULL: built-in only */
    size_t                    n_min_tokens;
} llmc_rewrite_conf_t;

/* Returns 1 and a new body in *out (malloc()ed, NUL-terminated, length in
 * *out_len) when it changed something; 0 when the body must go upstream
 * byte for byte untouched (not applicable, nothing to do, or anything
 * unexpected: it never fails a request); -1 only on allocation failure.
 * info (may be NULL) gets a short summary of what was done or why not. */
int llmc_rewrite(llmc_api_e api, const char *body, size_t len,
    const llmc_rewrite_conf_t *conf, char **out, size_t *out_len,
    char *info, size_t infolen);

/* Checks a volatile-text regex the way llmc_rewrite() compiles it (POSIX
 * extended); for configuration time.  Returns 0, or -1 with regerror()'s
 * message in err. */
int llmc_rewrite_regex_check(const char *re, char *err, size_t errlen);

/* A token estimate of UTF-8 text that aims low, per script: Hangul, CJK
 * and kana one token per character, other non-Latin scripts two
 * characters per token, Latin and ASCII four bytes per token. */
size_t llmc_estimate_tokens(const char *text, size_t len);

/* The minimum cacheable prefix for an Anthropic model: the user table
 * first (longest matching pattern), then the built-in one. */
size_t llmc_min_cacheable_tokens(const llmc_min_tokens_t *user,
    size_t n_user, const char *model);

/* Glob match ('*' any run, '?' one byte) of a whole NUL-terminated name. */
int llmc_glob_match(const char *pattern, const char *name);

#endif /* LLMC_REWRITE_H */
