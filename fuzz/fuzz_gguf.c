/*
 * libFuzzer target for the GGUF reader: any byte string must either be
 * refused with a message or give a context whose every key, array element
 * and tensor can be read without leaving the buffer.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf_ctx_t           *g;
    const gguf_tensor_t  *t;
    const char           *key, *s;
    const void           *d;
    size_t                len;
    uint64_t              n, j;
    gguf_type_e           elem;
    int64_t               i;
    volatile uint8_t      sink = 0;
    char                  err[256];
    uint32_t              u;
    float                 f;

    g = gguf_open_mem(data, size, err, sizeof(err));
    if (g == NULL) {
        return 0;
    }
    for (i = 0; i < gguf_n_keys(g); i++) {
        key = gguf_key_name(g, i);
        (void) gguf_get_u32(g, key, &u);
        (void) gguf_get_f32(g, key, &f);
        if (gguf_get_str(g, key, &s, &len) == 0 && len > 0) {
            sink ^= (uint8_t) s[len - 1];
        }
        if (gguf_get_arr(g, key, &elem, &n, &d) == 0) {
            for (j = 0; j < n && j < 64; j++) {
                if (gguf_get_arr_str(g, key, j, &s, &len) == 0 && len > 0) {
                    sink ^= (uint8_t) s[len - 1];
                }
            }
        }
    }
    for (i = 0; i < gguf_n_tensors(g); i++) {
        t = gguf_tensor_at(g, i);
        if (gguf_find_tensor(g, t->name) != t) {
            __builtin_trap();
        }
        if (t->nbytes > 0) {
            sink ^= ((const uint8_t *) t->data)[0];
            sink ^= ((const uint8_t *) t->data)[t->nbytes - 1];
        }
    }
    (void) sink;
    gguf_close(g);
    return 0;
}
