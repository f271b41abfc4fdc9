/*
 * Chat template tests: the exact prompt text of each template for a
 * multi-turn conversation (llama.cpp's test conversation), with and
 * without a system message and the assistant header; detection from the
 * models' Jinja templates; bad roles.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "tap.h"

static char  err[256];

static const chat_msg_t conv[] = {
    { "system", "You are a helpful assistant" },
    { "user", "Hello" },
    { "assistant", "Hi there" },
    { "user", "Who are you" },
    { "assistant", "   I am an assistant   " },
    { "user", "Another question" },
};
#define N_CONV  (sizeof(conv) / sizeof(conv[0]))

static void
expect(chat_tmpl_e t, const chat_msg_t *m, size_t n, int add, const char *want,
    const char *what)
{
    char  *got;

    err[0] = '\0';
    got = chat_apply(t, m, n, add, err, sizeof(err));
    is_str(got, want, "%s: %s", chat_tmpl_name(t), what);
    free(got);
}

static void
test_chatml(void)
{
    expect(CHAT_TMPL_CHATML, conv, N_CONV, 1,
           "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
           "<|im_start|>user\nHello<|im_end|>\n"
           "<|im_start|>assistant\nHi there<|im_end|>\n"
           "<|im_start|>user\nWho are you<|im_end|>\n"
           "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n"
           "<|im_start|>user\nAnother question<|im_end|>\n"
           "<|im_start|>assistant\n",
           "multi-turn, system, assistant header");
    expect(CHAT_TMPL_CHATML, conv + 1, 1, 0,
           "<|im_start|>user\nHello<|im_end|>\n",
           "one user message, no header");
    expect(CHAT_TMPL_CHATML, conv + 1, 1, 1,
           "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
           "one user message, header");
}

static void
test_llama2(void)
{
    expect(CHAT_TMPL_LLAMA2, conv, N_CONV, 1,
           "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\n"
           "Hello [/INST]Hi there</s>"
           "[INST] Who are you [/INST]   I am an assistant   </s>"
           "[INST] Another question [/INST]",
           "multi-turn with system");
    expect(CHAT_TMPL_LLAMA2, conv + 1, N_CONV - 1, 0,
           "[INST] Hello [/INST]Hi there</s>"
           "[INST] Who are you [/INST]   I am an assistant   </s>"
           "[INST] Another question [/INST]",
           "multi-turn without system; add_assistant changes nothing");
    expect(CHAT_TMPL_LLAMA2, conv, 2, 0,
           "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\n"
           "Hello [/INST]",
           "system and one user message");
    expect(CHAT_TMPL_LLAMA2_STRIP, conv, N_CONV, 1,
           "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\n"
           "Hello [/INST]Hi there</s>"
           "[INST] Who are you [/INST]I am an assistant</s>"
           "[INST] Another question [/INST]",
           "contents trimmed");
    expect(CHAT_TMPL_LLAMA2_BOS, conv, N_CONV, 1,
           "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\n"
           "Hello [/INST]Hi there</s>"
           "<s>[INST] Who are you [/INST]   I am an assistant   </s>"
           "<s>[INST] Another question [/INST]",
           "<s> before each later turn");
}

static void
test_llama3(void)
{
    expect(CHAT_TMPL_LLAMA3, conv, N_CONV, 1,
           "<|start_header_id|>system<|end_header_id|>\n\n"
           "You are a helpful assistant<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\n"
           "Hi there<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\n"
           "I am an assistant<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\n"
           "Another question<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\n",
           "multi-turn, content trimmed, assistant header");
    expect(CHAT_TMPL_LLAMA3, conv + 1, 1, 0,
           "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>",
           "no system, no header");
}

static void
test_zephyr(void)
{
    expect(CHAT_TMPL_ZEPHYR, conv, N_CONV, 1,
           "<|system|>\nYou are a helpful assistant</s>\n"
           "<|user|>\nHello</s>\n"
           "<|assistant|>\nHi there</s>\n"
           "<|user|>\nWho are you</s>\n"
           "<|assistant|>\n   I am an assistant   </s>\n"
           "<|user|>\nAnother question</s>\n"
           "<|assistant|>\n",
           "multi-turn, system, assistant header");
    expect(CHAT_TMPL_ZEPHYR, conv + 1, 1, 0, "<|user|>\nHello</s>\n",
           "no header");
    expect(CHAT_TMPL_ZEPHYR_EOT, conv, 2, 1,
           "<|system|>\nYou are a helpful assistant<|endoftext|>\n"
           "<|user|>\nHello<|endoftext|>\n<|assistant|>\n",
           "llama.cpp's zephyr: <|endoftext|> ends turns");
}

static void
test_errors(void)
{
    chat_msg_t  bad[2] = { { "user", "hi" }, { "tool", "x" } };
    char       *s;

    s = chat_apply(CHAT_TMPL_CHATML, bad, 2, 1, err, sizeof(err));
    ok(s == NULL && strstr(err, "chat_apply") && strstr(err, "bad role"),
       "unknown role -> %s", err);
    bad[1].role = NULL;
    s = chat_apply(CHAT_TMPL_LLAMA3, bad, 2, 1, err, sizeof(err));
    ok(s == NULL && strstr(err, "bad role"), "missing role -> %s", err);
    bad[1].role = "assistant";
    bad[1].content = NULL;
    s = chat_apply(CHAT_TMPL_LLAMA2, bad, 2, 1, err, sizeof(err));
    ok(s == NULL && strstr(err, "no content"), "missing content -> %s", err);
    s = chat_apply(CHAT_TMPL_NONE, conv, 1, 1, err, sizeof(err));
    ok(s == NULL && strstr(err, "no chat template"), "no template -> %s",
       err);
    s = chat_apply((chat_tmpl_e) 99, conv, 1, 1, NULL, 0);
    ok(s == NULL, "unknown template value, no err buffer");

    s = chat_apply(CHAT_TMPL_CHATML, NULL, 0, 1, err, sizeof(err));
    is_str(s, "<|im_start|>assistant\n", "no messages: just the header");
    free(s);
}

/* abridged from the models' tokenizer.chat_template */
static const struct {
    const char   *jinja;
    chat_tmpl_e   want;
    const char   *what;
} jinjas[] = {
    { "{% if messages[0]['role'] == 'system' %}{% set loop_messages = "
      "messages[1:] %}{% set system_message = messages[0]['content'] %}"
      "{% endif %}{% for message in loop_messages %}{% if loop.index0 == 0 "
      "and system_message != false %}{% set content = '<<SYS>>\\n' + "
      "system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
      "{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] "
      "' + content.strip() + ' [/INST]' }}{% endif %}{% endfor %}",
      CHAT_TMPL_LLAMA2_STRIP, "Llama 2 chat (strips contents)" },
    { "{% for message in messages %}{% if message['role'] == 'user' %}"
      "{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}"
      "{% elif message['role'] == 'system' %}{{ '<<SYS>>\\n' + "
      "message['content'] + '\\n<</SYS>>\\n\\n' }}{% endif %}{% endfor %}",
      CHAT_TMPL_LLAMA2_BOS, "Llama 2 with BOS inside the history" },
    { "{% for message in messages %}{% if message['role'] == 'user' %}"
      "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}"
      "{{ message['content'] + eos_token }}{% endif %}{% endfor %}",
      CHAT_TMPL_LLAMA2, "plain [INST] template" },
    { "{% for message in messages %}{{'<|im_start|>' + message['role'] + "
      "'\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
      "{% endif %}", CHAT_TMPL_CHATML, "ChatML (Qwen, OpenHermes)" },
    { "{% set loop_messages = messages %}{% for message in loop_messages %}"
      "{% set content = '<|start_header_id|>' + message['role'] + "
      "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' "
      "%}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
      "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
      CHAT_TMPL_LLAMA3, "Llama 3 instruct" },
    { "{% for message in messages %}\\n{% if message['role'] == 'user' %}\\n"
      "{{ '<|user|>\\n' + message['content'] + eos_token }}\\n{% elif "
      "message['role'] == 'assistant' %}\\n{{ '<|assistant|>\\n'  + "
      "message['content'] + eos_token }}{% endif %}{% endfor %}",
      CHAT_TMPL_ZEPHYR, "zephyr-7b-beta" },
    { "{% for message in messages %}{% if message['role'] == 'user' %}"
      "{{ '<|user|>\\n' + message['content'] + '<|endoftext|>' }}{% elif "
      "message['role'] == 'assistant' %}{{ '<|assistant|>\\n' + "
      "message['content'] + '<|endoftext|>' }}{% endif %}{% endfor %}",
      CHAT_TMPL_ZEPHYR_EOT, "Zephyr written with <|endoftext|>" },
    { "{% for message in messages %}{{'<|' + message['role'] + '|>' + "
      "'\\n' + message['content'] + '<|end|>\\n'}}{% endfor %}"
      "{{ '<|assistant|>\\n' }}", CHAT_TMPL_NONE, "Phi-3 is not Zephyr" },
    { "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}"
      "{{ '[SYSTEM_PROMPT]' + m['content'] + '[/SYSTEM_PROMPT]' }}{% else %}"
      "{{ '[INST]' + m['content'] + '[/INST]' }}{% endif %}{% endfor %}",
      CHAT_TMPL_NONE, "Mistral v7 is not Llama 2" },
    { "{% for m in messages %}{{'<|im_start|>' + m['role'] + '<|im_sep|>' "
      "+ m['content'] + '<|im_end|>'}}{% endfor %}", CHAT_TMPL_NONE,
      "Phi-4 is not ChatML" },
    { "", CHAT_TMPL_NONE, "empty" },
    { "chatml", CHAT_TMPL_CHATML, "a bare name" },
    { "llama3", CHAT_TMPL_LLAMA3, "a bare name" },
};

static void
test_detect(void)
{
    size_t  i;

    for (i = 0; i < sizeof(jinjas) / sizeof(jinjas[0]); i++) {
        is_str(chat_tmpl_name(chat_tmpl_detect(jinjas[i].jinja)),
               chat_tmpl_name(jinjas[i].want), "detect: %s", jinjas[i].what);
    }
    is_int(chat_tmpl_detect(NULL), CHAT_TMPL_NONE, "detect: NULL");

    is_int(chat_tmpl_from_name("llama2"), CHAT_TMPL_LLAMA2, "name llama2");
    is_int(chat_tmpl_from_name("llama2-sys-strip"), CHAT_TMPL_LLAMA2_STRIP,
           "name llama2-sys-strip");
    is_int(chat_tmpl_from_name("chatml"), CHAT_TMPL_CHATML, "name chatml");
    is_int(chat_tmpl_from_name("llama3"), CHAT_TMPL_LLAMA3, "name llama3");
    is_int(chat_tmpl_from_name("zephyr"), CHAT_TMPL_ZEPHYR, "name zephyr");
    is_int(chat_tmpl_from_name("vicuna"), CHAT_TMPL_NONE, "unknown name");
    is_int(chat_tmpl_from_name(NULL), CHAT_TMPL_NONE, "NULL name");
    is_str(chat_tmpl_name(CHAT_TMPL_LLAMA3), "llama3", "name of llama3");
    is_str(chat_tmpl_name((chat_tmpl_e) 42), "none", "name of a bad value");

    /* Zephyr's turn end is the model's EOS */
    is_int(chat_tmpl_for_eos(CHAT_TMPL_ZEPHYR, "<|endoftext|>"),
           CHAT_TMPL_ZEPHYR_EOT, "zephyr with EOS <|endoftext|>");
    is_int(chat_tmpl_for_eos(CHAT_TMPL_ZEPHYR, "</s>"), CHAT_TMPL_ZEPHYR,
           "zephyr with EOS </s>");
    is_int(chat_tmpl_for_eos(CHAT_TMPL_ZEPHYR_EOT, "</s>"), CHAT_TMPL_ZEPHYR,
           "zephyr-eot with EOS </s>");
    is_int(chat_tmpl_for_eos(CHAT_TMPL_CHATML, "<|endoftext|>"),
           CHAT_TMPL_CHATML, "other templates do not change");
    is_int(chat_tmpl_for_eos(CHAT_TMPL_ZEPHYR, NULL), CHAT_TMPL_ZEPHYR,
           "no EOS text: unchanged");
}

int
main(void)
{
    test_chatml();
    test_llama2();
    test_llama3();
    test_zephyr();
    test_errors();
    test_detect();
    return done_testing();
}
