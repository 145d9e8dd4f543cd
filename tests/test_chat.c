/* test_chat — chat template rendering and detection.
 *
 * Expected prompts are written out from each family's documented format
 * (ChatML; Llama 3 header ids; Llama 2 [INST]/<<SYS>>; Mistral v7
 * [SYSTEM_PROMPT]; Gemma turns with the system text folded into the first
 * user turn; Phi-3 <|role|>).  The byte-for-byte comparison with llama.cpp's
 * llama_chat_apply_template for every family is in
 * scripts/conformance-tokenizer (c); the SmolLM2 case below also checks the
 * ids of a rendered prompt against llama.cpp:
 *   printf 'system\nYou are a SOC analyst.\n__nj_msg__\nuser\nIs this bad? sudo rm -rf /' > conv.txt
 *   llama_ref chat SmolLM2-135M-Instruct.Q4_1.gguf conv.txt      (bench/ref/llama_ref.c)
 */
#include "testutil.h"

#include "chat.h"
#include "gguf.h"
#include "tokenizer.h"
#include "util.h"

static const nj_chat_msg conv[] = {
    {"system", "  Be brief. "},
    {"user", "Hi\n"},
    {"assistant", " Hello "},
    {"user", "Again"},
};

static void expect(int tmpl, const nj_chat_msg *m, int n, bool add_ass, const char *want) {
    char buf[2048];
    int k = chat_apply(tmpl, m, n, add_ass, buf, sizeof buf);
    if (k < 0 || strcmp(buf, want) != 0)
        fprintf(stderr, "%s: got\n[%s]\nwant\n[%s]\n", chat_name(tmpl), k >= 0 ? buf : "(error)", want);
    assert_int_equal(k, (int)strlen(want));
    assert_string_equal(buf, want);
}

static void test_chatml(void **st) {
    (void)st;
    expect(CHAT_CHATML, conv, 4, true,
           "<|im_start|>system\n  Be brief. <|im_end|>\n"
           "<|im_start|>user\nHi\n<|im_end|>\n"
           "<|im_start|>assistant\n Hello <|im_end|>\n"
           "<|im_start|>user\nAgain<|im_end|>\n"
           "<|im_start|>assistant\n");
    expect(CHAT_CHATML, conv + 3, 1, false, "<|im_start|>user\nAgain<|im_end|>\n");
}

static void test_llama3(void **st) {
    (void)st;
    /* contents are trimmed; BOS is left to the tokenizer */
    expect(CHAT_LLAMA3, conv, 4, true,
           "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nAgain<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void test_llama2(void **st) {
    (void)st;
    expect(CHAT_LLAMA2_SYS, conv, 4, true,
           "[INST] <<SYS>>\n  Be brief. \n<</SYS>>\n\nHi\n [/INST] Hello </s>[INST] Again [/INST]");
    expect(CHAT_LLAMA2_SYS_BOS, conv, 4, true,
           "[INST] <<SYS>>\n  Be brief. \n<</SYS>>\n\nHi\n [/INST] Hello </s><s>[INST] Again [/INST]");
    expect(CHAT_LLAMA2_SYS_STRIP, conv, 4, true,
           "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]Hello</s>[INST] Again [/INST]");
    /* plain llama2 has no system block: the text opens the first turn */
    expect(CHAT_LLAMA2, conv, 4, true, "[INST]   Be brief. \nHi\n [/INST] Hello </s>[INST] Again [/INST]");
}

static void test_mistral(void **st) {
    (void)st;
    expect(CHAT_MISTRAL_V7, conv, 4, true,
           "[SYSTEM_PROMPT]   Be brief. [/SYSTEM_PROMPT][INST] Hi\n[/INST]  Hello </s>[INST] Again[/INST]");
    expect(CHAT_MISTRAL_V7_TEKKEN, conv + 1, 3, true, "[INST]Hi\n[/INST] Hello </s>[INST]Again[/INST]");
    expect(CHAT_MISTRAL_V1, conv + 1, 3, true, " [INST] Hi\n [/INST]  Hello </s> [INST] Again [/INST]");
    expect(CHAT_MISTRAL_V3, conv + 1, 3, true, "[INST] Hi\n[/INST] Hello</s>[INST] Again[/INST]");
    expect(CHAT_MISTRAL_V3_TEKKEN, conv + 1, 3, true, "[INST]Hi\n[/INST] Hello </s>[INST]Again[/INST]");
}

static void test_gemma(void **st) {
    (void)st;
    expect(CHAT_GEMMA, conv, 4, true,
           "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
           "<start_of_turn>model\nHello<end_of_turn>\n"
           "<start_of_turn>user\nAgain<end_of_turn>\n"
           "<start_of_turn>model\n");
}

static void test_phi3(void **st) {
    (void)st;
    expect(CHAT_PHI3, conv, 2, true,
           "<|system|>\n  Be brief. <|end|>\n<|user|>\nHi\n<|end|>\n<|assistant|>\n");
}

static void test_buffer_sizes(void **st) {
    (void)st;
    const char *want = "<|im_start|>user\nAgain<|im_end|>\n";
    int full = (int)strlen(want);
    assert_int_equal(chat_apply(CHAT_CHATML, conv + 3, 1, false, NULL, 0), full);
    char buf[64];
    memset(buf, 'x', sizeof buf);
    assert_int_equal(chat_apply(CHAT_CHATML, conv + 3, 1, false, buf, 10), full);
    assert_memory_equal(buf, want, 10);
    assert_int_equal(buf[10], 'x');                   /* nothing past cap */
    assert_int_equal(chat_apply(CHAT_CHATML, conv + 3, 1, false, buf, (size_t)full), full);
    assert_memory_equal(buf, want, (size_t)full);     /* exact fit: no NUL */
    assert_int_equal(chat_apply(CHAT_CHATML, conv + 3, 1, false, buf, (size_t)full + 1), full);
    assert_string_equal(buf, want);
    nj_chat_msg badm = {"user", NULL};
    assert_int_equal(chat_apply(CHAT_CHATML, &badm, 1, true, buf, sizeof buf), -EINVAL);
    assert_int_equal(chat_apply(99, conv, 1, true, buf, sizeof buf), -EINVAL);
}

static int detect(const char *s) { return chat_detect(s, strlen(s)); }

static void test_detect(void **st) {
    (void)st;
    assert_int_equal(detect("{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n'}}{% endfor %}"), CHAT_CHATML);
    assert_int_equal(detect("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"), CHAT_LLAMA3);
    assert_int_equal(detect("{{ '<start_of_turn>' + role + '\\n' }}"), CHAT_GEMMA);
    assert_int_equal(detect("{{'<|user|>' + '\\n' + message['content'] + '<|end|>'}}{{'<|assistant|>'}}"), CHAT_PHI3);
    assert_int_equal(detect("{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"), CHAT_LLAMA2_SYS_STRIP);
    assert_int_equal(detect("{{ '[INST] <<SYS>>\\n' }}"), CHAT_LLAMA2_SYS);
    assert_int_equal(detect("{{ '[INST] ' }}"), CHAT_LLAMA2);
    assert_int_equal(detect("{{ '[SYSTEM_PROMPT]' }}{{ '[INST]' }}"), CHAT_MISTRAL_V7);
    assert_int_equal(detect("mistral-v3"), CHAT_MISTRAL_V3);   /* a bare name */
    assert_int_equal(detect("gemma"), CHAT_GEMMA);
    /* ChatML with <|im_sep|> is Phi-4: recognised, not implemented */
    assert_int_equal(detect("<|im_start|>x<|im_sep|>"), NJ_EUNSUPPORTED);
    assert_non_null(strstr(nj_last_error(), "phi4"));
    assert_non_null(strstr(nj_last_error(), "chatml"));
    assert_int_equal(detect("{{ 'User: ' + content }}"), NJ_EUNSUPPORTED);
    assert_non_null(strstr(nj_last_error(), "llama3"));
    assert_int_equal(chat_detect(NULL, 0), NJ_EUNSUPPORTED);
}

static void test_names(void **st) {
    (void)st;
    for (int i = 0; i < CHAT_COUNT; i++) {
        assert_int_equal(chat_from_name(chat_name(i)), i);
        assert_non_null(strstr(chat_known_names(), chat_name(i)));
    }
    assert_int_equal(chat_from_name("zephyr"), NJ_EUNSUPPORTED);
    assert_int_equal(chat_from_name("no-such"), -EINVAL);
    assert_non_null(strstr(nj_last_error(), "no-such"));
    assert_non_null(strstr(nj_last_error(), "phi3"));
    assert_int_equal(chat_from_name(NULL), -EINVAL);
    assert_string_equal(chat_name(-1), "?");
}

/* SmolLM2: detect from the GGUF's own template, render, tokenize. */
static void test_smol_prompt_ids(void **st) {
    (void)st;
    const char *p = nj_test_model("SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!p) { skip(); return; }
    int err;
    gguf_file *f = gguf_open(p, &err);
    assert_non_null(f);
    nj_tok *t = tok_load(f, &err);
    assert_non_null(t);
    gguf_str ts;
    assert_int_equal(gguf_get_str(f, "tokenizer.chat_template", &ts), 0);
    int tmpl = chat_detect(ts.ptr, (size_t)ts.len);
    assert_int_equal(tmpl, CHAT_CHATML);
    const nj_chat_msg m[] = {{"system", "You are a SOC analyst."}, {"user", "Is this bad? sudo rm -rf /"}};
    char prompt[512];
    int n = chat_apply(tmpl, m, 2, true, prompt, sizeof prompt);
    assert_true(n > 0 && n < (int)sizeof prompt);
    int32_t ids[128];
    int k = tok_encode(t, prompt, (size_t)n, tok_add_bos(t), true, ids, 128);
    static const int32_t want[] = {1, 9690, 198, 2683, 359, 253, 39296, 27311, 30, 2, 198, 1, 4093, 198,
                                   4182, 451, 3309, 47, 48295, 39371, 731, 24338, 2272, 2, 198, 1, 520,
                                   9531, 198};
    assert_int_equal(k, (int)NJ_ARRAY_LEN(want));
    assert_memory_equal(ids, want, sizeof want);
    tok_free(t);
    gguf_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chatml),
        cmocka_unit_test(test_llama3),
        cmocka_unit_test(test_llama2),
        cmocka_unit_test(test_mistral),
        cmocka_unit_test(test_gemma),
        cmocka_unit_test(test_phi3),
        cmocka_unit_test(test_buffer_sizes),
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_smol_prompt_ids),
    };
    return cmocka_run_group_tests_name("chat", tests, NULL, NULL);
}
