/*
 * Chat templates: the prompt text llama.cpp's llama_chat_apply_template
 * produces for Llama 2, ChatML, Llama 3 and Zephyr, and detection of the
 * template from a GGUF `tokenizer.chat_template` Jinja string.
 */

#ifndef LLMC_CHAT_H
#define LLMC_CHAT_H

#include <stddef.h>

typedef enum {
    CHAT_TMPL_NONE = 0,
    CHAT_TMPL_LLAMA2,
    CHAT_TMPL_CHATML,
    CHAT_TMPL_LLAMA3,
    CHAT_TMPL_ZEPHYR,
    CHAT_TMPL_ZEPHYR_EOT,       /* llama.cpp's "zephyr": <|endoftext|> ends
                                   turns (StableLM Zephyr) */
    CHAT_TMPL_LLAMA2_BOS,       /* "llama2-sys-bos": <s> before each later
                                   [INST] */
    CHAT_TMPL_LLAMA2_STRIP      /* "llama2-sys-strip": contents trimmed (the
                                   Llama-2-chat template's content.strip()) */
} chat_tmpl_e;

typedef struct {
    const char  *role;
    const char  *content;
} chat_msg_t;

chat_tmpl_e chat_tmpl_detect(const char *jinja);  /* tokenizer.chat_template */
/* "llama2" (also "llama2-sys"), "llama2-sys-bos", "llama2-sys-strip",
 * "chatml", "llama3", "zephyr", "zephyr-eot"; NONE if unknown */
chat_tmpl_e chat_tmpl_from_name(const char *name);
const char *chat_tmpl_name(chat_tmpl_e t);

/* Zephyr ends turns with the model's EOS: picks CHAT_TMPL_ZEPHYR ("</s>")
 * or CHAT_TMPL_ZEPHYR_EOT ("<|endoftext|>") from the EOS token's text;
 * other templates come back unchanged */
chat_tmpl_e chat_tmpl_for_eos(chat_tmpl_e t, const char *eos_text);

/* malloc()ed prompt text; NULL + err on a bad role */
char *chat_apply(chat_tmpl_e t, const chat_msg_t *msgs, size_t n,
    int add_assistant, char *err, size_t errlen);

#endif /* LLMC_CHAT_H */
