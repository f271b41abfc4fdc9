# Metrics: counters in the llmcache_zone move as requests are served, the
# same for every worker, in Prometheus text, JSON and the dashboard page.

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';
use JSON::PP ();

no_shuffle();
no_long_string();
workers(2);
master_on();

# the embedded page is the page: the header is regenerated from it
my $root = LLMCacheTest::repo_root();
Test::More::is(system("$root/scripts/embed-dashboard", "--check"), 0,
               "dashboard header in sync with the page");

our $Page = do {
    local $/;
    open my $fh, '<', "$root/src/ngx/ngx_http_llmcache_dashboard.html"
        or die "dashboard page: $!";
    <$fh>;
};

our $HttpConfig = <<'_EOC_';
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llmcache_zone llmcache 1m;
    llmcache_dictionary $TEST_NGINX_DICT_DIR/ko.dict;
    llmcache_dictionary $TEST_NGINX_DICT_DIR/en.dict;
_EOC_

our $Config = <<'_EOC_';
    location /v1/ {
        llmcache on;
        llmcache_semantic on;
        llmcache_bypass $http_x_bypass;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_set_header X-Mock-Delay-Ms $http_x_delay;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /__mock/ {
        proxy_read_timeout 60s;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/__;
    }

    location = /metrics {
        llmcache_metrics;
    }
_EOC_

# chat(TEXT[, MODEL]) -> a request line + body asking TEXT
sub chat {
    my ($text, $model) = @_;
    $model //= "gpt-4o";
    return "POST /v1/chat/completions\n"
        . qq/{"model":"$model","messages":[{"role":"user","content":"$text"}]}/;
}

sub messages {
    my ($text) = @_;
    return "POST /v1/messages\n"
        . qq/{"model":"claude-sonnet-4-5","max_tokens":64,/
        . qq/"messages":[{"role":"user","content":"$text"}]}/;
}

# fanout(N, TEXT) -> a request that makes the mock send N identical chat
# requests to this nginx at once, answered after 300 ms upstream
sub fanout {
    my ($n, $text) = @_;
    my $body = qq/{"model":"gpt-4o","messages":[{"role":"user","content":"$text"}]}/;
    $body =~ s/"/\\"/g;
    return "POST /__mock/fanout\n"
        . qq/{"url":"http:\/\/127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}/
        . qq/\/v1\/chat\/completions","n":$n,"body":"$body",/
        . qq/"headers":{"X-Delay":"300","Authorization":"Bearer sk-f"}}/;
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $Config) unless defined $block->config;
    $block->set_value("more_headers",
                      "Content-Type: application/json\n"
                      . "Authorization: Bearer sk-test-0010")
        unless defined $block->more_headers;
});

# --- hit_bytes_of: N  -> the JSON's hit_bytes is N times the body of
# request 1 (a HIT), as a client received it
our $HitBody;
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $times = $block->hit_bytes_of;
    return if !defined $times || $dry_run;
    $HitBody = length($body) if $req_idx == 1;
    return unless $body =~ /"hit_bytes":(\d+),/;
    Test::More::is($1, $times * $HitBody,
                   $block->name . " - hit_bytes is $times hits' bodies");
});

# --- usage_statuses: the cache status of each request but the last: the
# JSON's tokens are the usage the provider reported for the answers that
# went upstream, and all the tokens of those served from the cache
our @Usage;
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $st = $block->usage_statuses;
    return if !defined $st || $dry_run;
    my @st = split ' ', $st;
    @Usage = () if $req_idx == 0;
    if ($req_idx < @st) {
        my $u = JSON::PP::decode_json($body)->{usage};
        push @Usage, [$st[$req_idx], $u];
        return;
    }
    my %want = (input => 0, output => 0, saved => 0);
    for (@Usage) {
        my ($s, $u) = @$_;
        if ($s eq 'HIT' || $s eq 'SEMANTIC') {
            $want{saved} += $u->{prompt_tokens} + $u->{completion_tokens};
        } else {
            $want{input} += $u->{prompt_tokens};
            $want{output} += $u->{completion_tokens};
        }
    }
    my $got = JSON::PP::decode_json($body)->{tokens};
    Test::More::is_deeply({map { $_ => $got->{$_} } qw(input output saved)},
                          \%want, $block->name . " - tokens add up");
});

run_tests();

__DATA__

=== TEST 1: Prometheus text: requests by status, API and model, hits, bytes, histogram
--- request eval
[main::chat("What is the capital of France?"),
 main::chat("What is the capital of France?"),
 main::chat("What is the capital of France?"),
 main::chat("Name a prime number.", "gpt-4o-mini"),
 main::messages("Name a colour."),
 "GET /metrics"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT",
 "X-LLM-Cache: MISS", "X-LLM-Cache: MISS",
 "Content-Type: text/plain; version=0.0.4"]
--- response_body_like eval
[qr/#1/, qr/#1/, qr/#1/, qr/#2/, qr/#3/,
 qr/\A# HELP llmcache_requests_total [^\n]+
# TYPE llmcache_requests_total counter
llmcache_requests_total\{status="HIT",provider="openai",api="chat"\} 2
.*llmcache_requests_total\{status="MISS",provider="openai",api="chat"\} 2
.*llmcache_requests_total\{status="MISS",provider="anthropic",api="messages"\} 1
.*llmcache_hits_total\{kind="exact"\} 2
llmcache_hits_total\{kind="semantic"\} 0
.*llmcache_model_requests_total\{model="gpt-4o",status="HIT"\} 2
llmcache_model_requests_total\{model="gpt-4o",status="MISS"\} 1
llmcache_model_requests_total\{model="gpt-4o-mini",status="MISS"\} 1
llmcache_model_requests_total\{model="claude-sonnet-4-5",status="MISS"\} 1
.*llmcache_redis_events_total\{event="error"\} 0
llmcache_redis_events_total\{event="timeout"\} 0
llmcache_redis_events_total\{event="connect"\} [12]
# HELP llmcache_lookup_duration_seconds [^\n]+
# TYPE llmcache_lookup_duration_seconds histogram
llmcache_lookup_duration_seconds_bucket\{le="0.001"\} \d
.*llmcache_lookup_duration_seconds_bucket\{le="\+Inf"\} 5
llmcache_lookup_duration_seconds_sum \d+\.\d{3}
llmcache_lookup_duration_seconds_count 5
.*llmcache_hit_bytes_total [1-9]\d{2,}
.*llmcache_lock_waits_total 0
.*llmcache_tokens_total\{kind="input"\} [1-9]\d*
.*llmcache_tokens_total\{kind="saved"\} [1-9]\d*
.*llmcache_usd_total\{kind="cost"\} (?!0\.000000\n)\d+\.\d{6}
llmcache_usd_total\{kind="saved"\} (?!0\.000000\n)\d+\.\d{6}
/s]
--- no_error_log
[error]



=== TEST 2: bytes served are the hits' body bytes
--- request eval
[main::chat("Bytes, please"), main::chat("Bytes, please"),
 main::chat("Bytes, please"), "GET /metrics?format=json"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: HIT", "X-LLM-Cache: HIT", ""]
--- response_body_like eval
[qr/./, qr/./, qr/./, qr/"hit_bytes":(\d+),/]
--- hit_bytes_of: 2
--- no_error_log
[error]



=== TEST 3: JSON: totals, exact vs semantic hits, BYPASS, tokens paid and saved
--- request eval
[main::chat("맛있는 파스타 레시피 알려줘"),
 main::chat("파스타 레시피 좀 알려주세요"),
 main::chat("맛있는 파스타 레시피 알려줘"),
 [main::chat("Skip me")],
 "GET /metrics?format=json"]
--- more_headers eval
["Content-Type: application/json\nAuthorization: Bearer sk-test-0010",
 "Content-Type: application/json\nAuthorization: Bearer sk-test-0010",
 "Content-Type: application/json\nAuthorization: Bearer sk-test-0010",
 "Content-Type: application/json\nAuthorization: Bearer sk-test-0010\nX-Bypass: 1",
 ""]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: SEMANTIC", "X-LLM-Cache: HIT",
 "X-LLM-Cache: BYPASS", "Content-Type: application/json"]
--- response_body_like eval
[qr/#1/, qr/#1/, qr/#1/, qr/#2/,
 qr/\A\{"time":\d+\.\d{3},"start":\d+,"apis":\[\{"provider":"openai","api":"chat","HIT":1,"MISS":1,"BYPASS":1,"SEMANTIC":1\},\{"provider":"openai","api":"completions","HIT":0,"MISS":0,"BYPASS":0,"SEMANTIC":0\},[^\]]+\],"requests":\{"HIT":1,"MISS":1,"BYPASS":1,"SEMANTIC":1\},"hits":\{"exact":1,"semantic":1\},"redis":\{"error":0,"timeout":0,"connect":[12]\},"lookup":\{"le_ms":\[1,2,5,10,25,50,100,250,500,1000,2500,5000\],"buckets":\[(\d+,){12}\d+\],"count":3,"sum_ms":\d+\},"hit_bytes":[1-9]\d+,"lock":\{"waits":0,"wait_ms":0\},"purged":0,"tokens":\{"input":\d+,"cached":0,"output":\d+,"saved":\d+\},"usd":\{"cost":(?!0\.000000)\d+\.\d{6},"saved":(?!0\.000000)\d+\.\d{6}\},"models":\[\{"model":"gpt-4o","HIT":1,"MISS":1,"BYPASS":1,"SEMANTIC":1,"hit_bytes":[1-9]\d+,"tokens":\{[^}]+\},"usd":\{[^}]+\}\}\]\}\n\z/]
--- usage_statuses: MISS SEMANTIC HIT BYPASS
--- no_error_log
[error]



=== TEST 4: Redis errors are counted
--- http_config
    llmcache_redis 127.0.0.1:$TEST_NGINX_BAD_REDIS_PORT;
    llmcache_zone llmcache 1m;
--- request eval
[main::chat("one"), main::chat("two"), "GET /metrics"]
--- response_headers eval
["X-LLM-Cache: MISS", "X-LLM-Cache: MISS", ""]
--- response_body_like eval
[qr/#1/, qr/#2/,
 qr/llmcache_requests_total\{status="MISS",provider="openai",api="chat"\} 2\n.*llmcache_redis_events_total\{event="error"\} [2-9]\d*\n/s]



=== TEST 5: Redis timeouts are counted
--- http_config
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llmcache_redis_timeout 100ms;
    llmcache_zone llmcache 1m;
--- redis: paused
--- request eval
[main::chat("slow"), "GET /metrics"]
--- response_headers eval
["X-LLM-Cache: MISS", ""]
--- response_body_like eval
[qr/#1/, qr/llmcache_redis_events_total\{event="timeout"\} 1\n/]



=== TEST 6: the dashboard for a browser (Accept: text/html), the same page for ?format=html
--- request eval
["GET /metrics", "GET /metrics?format=html"]
--- more_headers eval
["Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8", ""]
--- response_headers eval
["Content-Type: text/html; charset=utf-8\nCache-Control: no-store",
 "Content-Type: text/html; charset=utf-8"]
--- response_body eval
[$::Page, $::Page]
--- no_error_log
[error]



=== TEST 7: ?format=prometheus, a bad format, a POST, a HEAD
--- request eval
["GET /metrics?format=prometheus", "GET /metrics?format=xml",
 "POST /metrics\n{}", "HEAD /metrics?format=json"]
--- error_code eval
[200, 400, 405, 200]
--- response_headers eval
["", "", "", "Content-Type: application/json"]
--- response_body_like eval
[qr/^# HELP llmcache_requests_total/, qr/"error":"format is prometheus, json or html"/, qr/405/, qr/^$/]



=== TEST 8: llmcache_metrics without llmcache_zone is a configuration error
--- http_config
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location = /metrics {
        llmcache_metrics;
    }
--- must_die
--- error_log
"llmcache_metrics" needs "llmcache_zone"



=== TEST 9: a zone too small is refused
--- http_config
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llmcache_zone llmcache 16k;
--- config
    location = /metrics {
        llmcache_metrics;
    }
--- must_die
--- error_log eval
qr/llmcache_zone "llmcache" is too small, at least \d+k/



=== TEST 10: single-flight waits and their time
--- request eval
[main::fanout(4, "popular question"), "GET /__mock/calls", "GET /metrics"]
--- more_headers eval
["Content-Type: application/json", "", ""]
--- response_body_like eval
[qr/"statuses":\{"200":4\}/, qr/^1$/,
 qr/llmcache_lock_waits_total 3\n.*llmcache_lock_wait_seconds_total (?!0\.[0-2])\d+\.\d{3}\n/s]
--- timeout: 30
--- no_error_log
[error]



=== TEST 11: the model table is bounded: past 32 models the rest count as "other"
--- request eval
[(map { main::chat("Question $_", sprintf("model-%02d", $_)) } 0 .. 33),
 "GET /metrics?format=prometheus"]
--- error_code eval
[(200) x 35]
--- response_body_like eval
[(qr/#\d+/) x 34,
 qr/\{model="model-31",status="MISS"\} 1\n(?!.*model-32).*\{model="other",status="MISS"\} 2\n/s]
--- no_error_log
[error]
