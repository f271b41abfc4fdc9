/*
 * llama2.c checkpoints (run.c's format: a 7 x int32 header, then fp32
 * arrays) loaded into the common model_t: the file is mapped read-only and
 * its arrays are presented to model_build under their GGUF names.
 */

#ifndef LLMC_LLAMA2C_H
#define LLMC_LLAMA2C_H

#include <stddef.h>

#include "model.h"

/* model_load_llama2c() is declared in model.h; this reads the header only */
int llama2c_read_header(const char *ckpt, model_hparams_t *hp,
    int *shared_classifier, char *err, size_t errlen);

#endif /* LLMC_LLAMA2C_H */
