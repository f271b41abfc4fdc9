# Normalization: prompts that differ only in spacing, case, width,
# punctuation, polite endings, fillers or synonyms share one entry; prompts
# that mean something else do not.

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';

no_shuffle();

our $HttpConfig = <<'_EOC_';
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llmcache_dictionary $TEST_NGINX_DICT_DIR/ko.dict;
    llmcache_dictionary $TEST_NGINX_DICT_DIR/en.dict;
_EOC_

our $Config = <<'_EOC_';
    location /v1/ {
        llmcache on;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /__mock/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__;
    }
_EOC_

# chat(TEXT) -> a request line + body asking TEXT
sub chat {
    my $text = shift;
    return "POST /v1/chat/completions\n"
        . '{"model":"gpt-4o","messages":[{"role":"user","content":"'
        . $text . '"}]}';
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $Config) unless defined $block->config;
    $block->set_value("more_headers",
                      "Content-Type: application/json\n"
                      . "Authorization: Bearer sk-test-0002")
        unless defined $block->more_headers;
});

run_tests();

__DATA__

=== TEST 1: Korean polite endings, fillers, spacing and punctuation
--- request eval
[main::chat("파스타 레시피 알려줘"),
 main::chat("파스타 레시피 좀 알려주세요"),
 main::chat("파스타 레시피 가르쳐줘"),
 main::chat("파스타  레시피  알려 주세요!"),
 "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT",
 "X-LLM-Cache: HIT", ""]
--- response_body_like eval
[qr/mock answer #1 to: 파스타 레시피 알려줘"/,
 qr/mock answer #1 to: 파스타 레시피 알려줘"/,
 qr/mock answer #1 to: 파스타 레시피 알려줘"/,
 qr/mock answer #1 to: 파스타 레시피 알려줘"/,
 qr/^1$/]
--- no_error_log
[error]



=== TEST 2: a modifier that changes the question is not merged
--- request eval
[main::chat("파스타 레시피 알려줘"),
 main::chat("맛있는 파스타 레시피 알려줘"),
 "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", ""]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/^2$/]
--- no_error_log
[error]



=== TEST 3: Korean negation and numbers stay apart
--- request eval
[main::chat("2FA 켜는 법 알려줘"),
 main::chat("2FA 끄지 않는 법 알려줘"),
 main::chat("3인분 파스타 레시피"),
 main::chat("5인분 파스타 레시피"),
 "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: MISS", ""]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#3/, qr/#4/, qr/^4$/]
--- no_error_log
[error]



=== TEST 4: English case, polite frames and punctuation
--- request eval
[main::chat("How do I reset my password?"),
 main::chat("how do i reset my password"),
 main::chat("Please, how do I reset my password?"),
 main::chat("Could you tell me how do I reset my password"),
 main::chat("HOW   DO I RESET MY PASSWORD ?!"),
 "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT",
 "X-LLM-Cache: HIT", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
[qr/#1/, qr/#1/, qr/#1/, qr/#1/, qr/#1/, qr/^1$/]
--- no_error_log
[error]



=== TEST 5: full-width letters and compatibility characters (NFKC)
--- request eval
[main::chat("How do I reset my password?"),
 main::chat("ＨＯＷ ＤＯ Ｉ ＲＥＳＥＴ ＭＹ ＰＡＳＳＷＯＲＤ？"),
 "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
[qr/#1/, qr/#1/, qr/^1$/]
--- no_error_log
[error]



=== TEST 6: English negation, decimals and C++ stay apart
--- request eval
[main::chat("how do I reset my password"),
 main::chat("how do I not reset my password"),
 main::chat("is 3.5 bigger than 3"),
 main::chat("is 35 bigger than 3"),
 main::chat("tutorial for C++"),
 main::chat("tutorial for C"),
 "GET /__mock/calls"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS", ""]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#3/, qr/#4/, qr/#5/, qr/#6/, qr/^6$/]
--- no_error_log
[error]



=== TEST 7: llmcache_normalize off keeps prompts byte-exact
--- config
    location /v1/ {
        llmcache on;
        llmcache_normalize off;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }
--- request eval
[main::chat("Hello there"), main::chat("hello there"), main::chat("Hello there")]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#1/]
--- no_error_log
[error]



=== TEST 8: only the steps named run: case folding without the dictionary
--- config
    location /v1/ {
        llmcache on;
        llmcache_normalize nfkc casefold space punct;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }
--- request eval
[main::chat("Reset my password"), main::chat("RESET my  password!"),
 main::chat("Please reset my password")]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: MISS"]
--- response_body_like eval
[qr/#1/, qr/#1/, qr/#2/]
--- no_error_log
[error]



=== TEST 9: a dictionary given in a location is merged after the http one
--- config
    location /v1/ {
        llmcache on;
        llmcache_dictionary $TEST_NGINX_DICT_DIR/../../t/data/extra.dict;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }
--- request eval
[main::chat("파스타 레시피 알려줘"), main::chat("스파게티 레시피 알려주세요")]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/#1/, qr/#1/]
--- no_error_log
[error]



=== TEST 10: entries made under other normalization rules are not served
--- config
    location /v1/ {
        llmcache on;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /other-dict/ {
        llmcache on;
        llmcache_dictionary $TEST_NGINX_DICT_DIR/../../t/data/extra.dict;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/;
    }

    location /other-steps/ {
        llmcache on;
        llmcache_normalize nfkc casefold space punct;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/;
    }
--- request eval
my $b = '{"model":"gpt-4o","messages":[{"role":"user","content":"hello there"}]}';
["POST /v1/chat/completions\n$b", "POST /other-dict/v1/chat/completions\n$b",
 "POST /other-steps/v1/chat/completions\n$b", "POST /v1/chat/completions\n$b"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: MISS", "X-LLM-Cache: HIT"]
--- response_body_like eval
[qr/#1/, qr/#2/, qr/#3/, qr/#1/]
--- no_error_log
[error]
