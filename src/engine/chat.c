/*
 * Chat templates, as llama.cpp's llm_chat_apply_template() writes them:
 *
 *   llama2   [INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST]A</s>[INST] U [/INST]
 *   chatml   <|im_start|>role\nC<|im_end|>\n ... <|im_start|>assistant\n
 *   llama3   <|start_header_id|>role<|end_header_id|>\n\nC<|eot_id|> ...
 *   zephyr   <|role|>\nC</s>\n ... <|assistant|>\n
 *
 * Llama 3 trims each message's content, and so does the Llama 2 variant
 * for templates that strip(); another Llama 2 variant writes <s> before
 * each later [INST]. Llama 2 has no assistant header, so add_assistant
 * changes nothing there. BOS is not written: the
 * tokenizer adds it. Zephyr's turn end is the model's EOS: `</s>` for
 * zephyr-7b (HF template), `<|endoftext|>` for StableLM Zephyr (what
 * llama.cpp calls "zephyr", here CHAT_TMPL_ZEPHYR_EOT).
 */

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"


typedef struct {
    char    *p;
    size_t   len, cap;
    int      failed;
} chat_buf_t;

static void
chat_put(chat_buf_t *b, const char *s, size_t n)
{
    char    *np;
    size_t   cap;

    if (b->failed) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        np = realloc(b->p, cap);
        if (np == NULL) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
chat_puts(chat_buf_t *b, const char *s)
{
    chat_put(b, s, strlen(s));
}

/* content without leading and trailing ASCII white space */
static void
chat_put_trim(chat_buf_t *b, const char *s)
{
    size_t  n = strlen(s);

    while (n > 0 && isspace((unsigned char) *s)) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char) s[n - 1])) {
        n--;
    }
    chat_put(b, s, n);
}

static const struct {
    const char   *name;
    chat_tmpl_e   t;
} chat_names[] = {
    { "llama2", CHAT_TMPL_LLAMA2 },
    { "llama2-sys", CHAT_TMPL_LLAMA2 },
    { "llama2-sys-bos", CHAT_TMPL_LLAMA2_BOS },
    { "llama2-sys-strip", CHAT_TMPL_LLAMA2_STRIP },
    { "chatml", CHAT_TMPL_CHATML },
    { "llama3", CHAT_TMPL_LLAMA3 },
    { "zephyr", CHAT_TMPL_ZEPHYR },
    { "zephyr-eot", CHAT_TMPL_ZEPHYR_EOT },
    { NULL, CHAT_TMPL_NONE }
};

chat_tmpl_e
chat_tmpl_from_name(const char *name)
{
    int  i;

    if (name == NULL) {
        return CHAT_TMPL_NONE;
    }
    for (i = 0; chat_names[i].name; i++) {
        if (strcmp(chat_names[i].name, name) == 0) {
            return chat_names[i].t;
        }
    }
    return CHAT_TMPL_NONE;
}

const char *
chat_tmpl_name(chat_tmpl_e t)
{
    int  i;

    for (i = 0; chat_names[i].name; i++) {
        if (chat_names[i].t == t) {
            return chat_names[i].name;
        }
    }
    return "none";
}

/* The distinctive markers of each Jinja template, checked in llama.cpp's
 * order where they overlap (ChatML first, then [INST]). */
chat_tmpl_e
chat_tmpl_detect(const char *jinja)
{
    chat_tmpl_e  t;

#define HAS(s)  (strstr(jinja, (s)) != NULL)

    if (jinja == NULL) {
        return CHAT_TMPL_NONE;
    }
    t = chat_tmpl_from_name(jinja);
    if (t != CHAT_TMPL_NONE) {
        return t;
    }
    if (HAS("<|im_start|>")) {
        /* Phi-4 and SmolVLM share the marker but not the format */
        return HAS("<|im_sep|>") || HAS("<end_of_utterance>")
               ? CHAT_TMPL_NONE : CHAT_TMPL_CHATML;
    }
    if (HAS("[INST]")) {
        /* Mistral's own variants differ in spacing and system handling */
        if (HAS("[SYSTEM_PROMPT]") || HAS("[AVAILABLE_TOOLS]")
            || HAS("' [INST] ' + system_message"))
        {
            return CHAT_TMPL_NONE;
        }
        if (HAS("content.strip()")) {
            return CHAT_TMPL_LLAMA2_STRIP;
        }
        if (HAS("bos_token + '[INST]")) {
            return CHAT_TMPL_LLAMA2_BOS;
        }
        return CHAT_TMPL_LLAMA2;
    }
    if (HAS("<|start_header_id|>") && HAS("<|end_header_id|>")) {
        return CHAT_TMPL_LLAMA3;
    }
    if (HAS("<|user|>") && !HAS("<|end|>")) {
        if (HAS("<|endoftext|>")) {
            return CHAT_TMPL_ZEPHYR_EOT;
        }
        if (HAS("<|assistant|>") && HAS("eos_token")) {
            return CHAT_TMPL_ZEPHYR;
        }
    }
    return CHAT_TMPL_NONE;

#undef HAS
}

chat_tmpl_e
chat_tmpl_for_eos(chat_tmpl_e t, const char *eos_text)
{
    if ((t != CHAT_TMPL_ZEPHYR && t != CHAT_TMPL_ZEPHYR_EOT)
        || eos_text == NULL)
    {
        return t;
    }
    if (strcmp(eos_text, "<|endoftext|>") == 0) {
        return CHAT_TMPL_ZEPHYR_EOT;
    }
    if (strcmp(eos_text, "</s>") == 0) {
        return CHAT_TMPL_ZEPHYR;
    }
    return t;
}

char *
chat_apply(chat_tmpl_e t, const chat_msg_t *msgs, size_t n,
    int add_assistant, char *err, size_t errlen)
{
    chat_buf_t   b;
    const char  *role, *content, *end;
    size_t       i;
    int          in_turn;

    if (err == NULL) {
        errlen = 0;
    }
    if (strcmp(chat_tmpl_name(t), "none") == 0) {
        snprintf(err, errlen, "%s: no chat template", __func__);
        return NULL;
    }
    if (msgs == NULL && n > 0) {
        snprintf(err, errlen, "%s: no messages", __func__);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        role = msgs[i].role;
        if (role == NULL
            || (strcmp(role, "system") != 0 && strcmp(role, "user") != 0
                && strcmp(role, "assistant") != 0))
        {
            snprintf(err, errlen, "%s: message %zu has a bad role '%s'",
                     __func__, i, role ? role : "(null)");
            return NULL;
        }
        if (msgs[i].content == NULL) {
            snprintf(err, errlen, "%s: message %zu has no content",
                     __func__, i);
            return NULL;
        }
    }

    memset(&b, 0, sizeof(b));
    chat_put(&b, "", 0);

    switch (t) {

    case CHAT_TMPL_CHATML:
        for (i = 0; i < n; i++) {
            chat_puts(&b, "<|im_start|>");
            chat_puts(&b, msgs[i].role);
            chat_puts(&b, "\n");
            chat_puts(&b, msgs[i].content);
            chat_puts(&b, "<|im_end|>\n");
        }
        if (add_assistant) {
            chat_puts(&b, "<|im_start|>assistant\n");
        }
        break;

    case CHAT_TMPL_LLAMA2:
    case CHAT_TMPL_LLAMA2_BOS:
    case CHAT_TMPL_LLAMA2_STRIP:
        chat_puts(&b, "[INST] ");
        in_turn = 1;
        for (i = 0; i < n; i++) {
            role = msgs[i].role;
            content = msgs[i].content;
            if (!in_turn) {
                chat_puts(&b, t == CHAT_TMPL_LLAMA2_BOS ? "<s>[INST] "
                                                        : "[INST] ");
                in_turn = 1;
            }
            if (strcmp(role, "system") == 0) {
                chat_puts(&b, "<<SYS>>\n");
            }
            if (t == CHAT_TMPL_LLAMA2_STRIP) {
                chat_put_trim(&b, content);
            } else {
                chat_puts(&b, content);
            }
            if (strcmp(role, "system") == 0) {
                chat_puts(&b, "\n<</SYS>>\n\n");
            } else if (strcmp(role, "user") == 0) {
                chat_puts(&b, " [/INST]");
            } else {
                chat_puts(&b, "</s>");
                in_turn = 0;
            }
        }
        break;

    case CHAT_TMPL_LLAMA3:
        for (i = 0; i < n; i++) {
            chat_puts(&b, "<|start_header_id|>");
            chat_puts(&b, msgs[i].role);
            chat_puts(&b, "<|end_header_id|>\n\n");
            chat_put_trim(&b, msgs[i].content);
            chat_puts(&b, "<|eot_id|>");
        }
        if (add_assistant) {
            chat_puts(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        }
        break;

    case CHAT_TMPL_ZEPHYR:
    case CHAT_TMPL_ZEPHYR_EOT:
        end = t == CHAT_TMPL_ZEPHYR ? "</s>\n" : "<|endoftext|>\n";
        for (i = 0; i < n; i++) {
            chat_puts(&b, "<|");
            chat_puts(&b, msgs[i].role);
            chat_puts(&b, "|>\n");
            chat_puts(&b, msgs[i].content);
            chat_puts(&b, end);
        }
        if (add_assistant) {
            chat_puts(&b, "<|assistant|>\n");
        }
        break;

    default:
        break;
    }

    if (b.failed) {
        free(b.p);
        snprintf(err, errlen, "%s: out of memory", __func__);
        return NULL;
    }
    return b.p;
}
