/*
 * Prompt Cache store: the K/V of every module of the PML schemas the
 * worker was given, encoded once at the absolute positions pml_layout
 * assigned, and gathered into a request's cache so only the prompt's new
 * tokens are evaluated.
 *
 * Encoding (pml_layout_t.mode):
 *   scaffold     one pass over the default scaffold (the root, plain
 *                modules and the default member of every union, parameter
 *                slots holding their scaffold placeholder or left empty);
 *                each module's entries are cut from it. A module the
 *                default scaffold lacks (a non-default union member and
 *                what it contains) gets a pass of its own: the scaffold
 *                with that member in place of its union's default.
 *   independent  each module is evaluated alone, in a fresh cache at its
 *                own positions, with segment id (module index + 1): it
 *                attends only to itself, and a full pass with the same
 *                segments (pcache_plan_ref) reproduces it exactly.
 *
 * Memory: the module K/V count against a budget; when an encoding does
 * not fit, the least recently used modules not pinned by the running
 * request are dropped, and encoded again when a prompt needs them.
 *
 * Persistence (dir != NULL): each schema is written to DIR/NAME.pcache
 * on put and removed on delete; pcache_load_dir reads them back. File
 * layout, little-endian (the bytes are for the same model on the same
 * machine):
 *   "LLMCPC01"                 8-byte magic
 *   u32 version (1), u32 mode
 *   u32 n_layers, dim, n_vocab, n_kv_heads, head_dim
 *   u64 kv_cache_entry_bytes
 *   u64 model hash: FNV-1a 64 over the GGUF file's size (u64) and
 *       general.name (the hparams' name)
 *   u32 text length, the PML text
 *   u32 name length, the schema name
 *   u32 n_mods, i32 n_pos
 *   per module: u32 name length, name, i32 parent, union_id,
 *       in_scaffold, start, end, n_tokens, tokens[n_tokens],
 *       pos[n_tokens], n_params; per parameter: u32 name length, name,
 *       i32 start, length, n_scaffold, scaffold[n_scaffold]
 *   per module: n_tokens * entry_bytes of kv_cache_export output
 *   u64 FNV-1a 64 of everything before it
 * A file whose fingerprint differs from the loaded model's is skipped.
 */

#ifndef LLMC_PCACHE_H
#define LLMC_PCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "pml.h"

typedef struct pcache pcache_t;

typedef struct {
    size_t       budget;        /* bytes of module K/V; 0: unlimited */
    const char  *dir;           /* persistence directory or NULL */
    const char  *model_path;    /* its size goes into the fingerprint;
                                   NULL: 0 */
} pcache_config_t;

typedef struct {
    const char  *name;
    int          n_tokens;      /* stored entries (its own text) */
    int          start, end;
    size_t       bytes;
    int          resident;      /* 0: evicted, encoded again on use */
} pcache_mod_info_t;

typedef struct {
    const char  *name;
    pml_mode_e   mode;
    int          n_mods;
    int          n_tokens;      /* entries of all modules */
    int          n_pos;
    size_t       bytes;         /* all modules resident */
    double       encode_ms;     /* 0 when read from disk */
    int          loaded;        /* read from the kv directory */
} pcache_schema_info_t;

typedef struct {
    uint64_t  schemas, modules, resident_modules;
    uint64_t  bytes;            /* resident module K/V */
    size_t    budget;
    uint64_t  hits;             /* modules gathered as stored */
    uint64_t  misses;           /* modules encoded again for a prompt */
    uint64_t  evictions;
    uint64_t  encode_passes;
    uint64_t  cached_tokens;    /* entries gathered into requests */
    uint64_t  reused_tokens;    /* of them, kept in the request's cache
                                   from the previous prompt */
} pcache_stats_t;

pcache_t *pcache_new(model_t *m, const pcache_config_t *cfg, char *err,
    size_t errlen);
void pcache_free(pcache_t *pc);

size_t pcache_entry_bytes(const pcache_t *pc);

/*
 * Encodes a schema's layout (copied) and stores it under name, replacing
 * a schema of that name. text: the PML source, kept for persistence.
 * 0; -1 + err; -2 + err when it cannot fit in the budget (413).
 */
int pcache_schema_put(pcache_t *pc, const char *name, const char *text,
    size_t text_len, const pml_layout_t *l, char *err, size_t errlen);
/* 0, or -1: unknown */
int pcache_schema_del(pcache_t *pc, const char *name);
/* the stored layout (for pml_bind), NULL: unknown */
const pml_layout_t *pcache_schema_layout(const pcache_t *pc,
    const char *name);

int pcache_n_schemas(const pcache_t *pc);
/* by index (0 .. n - 1) or, with i < 0, by name; 0 or -1 */
int pcache_schema_info(const pcache_t *pc, int i, const char *name,
    pcache_schema_info_t *out);
int pcache_module_info(const pcache_t *pc, int i, const char *name, int k,
    pcache_mod_info_t *out);
void pcache_stats(const pcache_t *pc, pcache_stats_t *out);

/*
 * Appends the stored entries of modules mods[0, n) of schema name to kv,
 * merged in position order, encoding any evicted module first. n_cached:
 * the entries appended. 0, or -1 + err (unknown schema or module, kv
 * full, encoding failed, budget too small for the prompt's modules).
 */
int pcache_gather(pcache_t *pc, const char *name, const int *mods, int n,
    kv_cache_t *kv, int *n_cached, char *err, size_t errlen);

/*
 * What a request's cache holds from earlier gathers (the entries of one
 * stored schema, in cache order), so the next prompt of the same schema
 * keeps the common leading entries instead of copying them again: the
 * same documents with a new question copy nothing. n may be lowered by
 * the caller when the cache is truncated; reset when the cache is used for
 * anything else.
 */
typedef struct {
    uint64_t   schema_id;
    uint64_t  *ent;             /* (module << 32) | entry */
    int        n, cap;
} pcache_held_t;

void pcache_held_init(pcache_held_t *h);
void pcache_held_reset(pcache_held_t *h);
void pcache_held_free(pcache_held_t *h);

/*
 * pcache_gather into a cache whose first held->n entries are held's: the
 * cache is cut to the entries the new prompt shares with them (n_reused)
 * and the rest appended; held describes the result.
 */
int pcache_gather_held(pcache_t *pc, const char *name, const int *mods,
    int n, kv_cache_t *kv, pcache_held_t *held, int *n_cached,
    int *n_reused, char *err, size_t errlen);

/*
 * The same entries' tokens, positions and segments (independent mode:
 * module index + 1; scaffold: 0), in gather order, for evaluating them in
 * full: malloc()ed arrays. 0 or -1 + err.
 */
int pcache_plan_ref(const pcache_t *pc, const char *name, const int *mods,
    int n, int32_t **tokens, int32_t **pos, int32_t **seg, int *n_out,
    char *err, size_t errlen);

/* reads DIR's *.pcache files; the number loaded, skipped counts files of
 * another model or unreadable ones (err names the last) */
int pcache_load_dir(pcache_t *pc, int *skipped, char *err, size_t errlen);

/* the longest common prefix of two token sequences */
int pcache_common_prefix(const int32_t *a, int na, const int32_t *b, int nb);

#endif /* LLMC_PCACHE_H */
