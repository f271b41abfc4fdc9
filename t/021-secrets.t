# Secrets in the error log: with error_log at info (the most verbose level
# below debug), requests that carry an API key in Authorization and in
# x-api-key, a Redis password, and recognizable prompt and answer text go
# through every path that logs: Redis rejecting the password, failing every
# command, refusing connections, timing out; bodies the module cannot read;
# a body over llmcache_max_body_size; the embeddings endpoint down; the
# provider timing out, resetting a JSON answer or a stream, answering an
# error that repeats the key; a stored answer that cannot be replayed as a
# stream.  Each block asserts the lines its case writes (so that it cannot
# pass on an empty log) and that none of them holds the key, the password,
# the prompt or the answer.  docs/security.md lists what each line holds.

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';
use HTTP::Tiny;

no_shuffle();
log_level('info');

our $Bearer   = 'sk-proj-Zq8SECRETKEYbearer41c9';
our $ApiKey   = 'sk-ant-api03-SECRETKEYxapi77d2';
our $Password = 'SECRETPASSWORD-r3d15c0e';

# the prompt's marker is checked without regard to case: normalization
# folds it before it is keyed and embedded
our @Secrets = (qr/SECRETKEY/, qr/\Q$Bearer\E/, qr/\Q$ApiKey\E/,
                qr/SECRETPASSWORD/, qr/\Q$Password\E/,
                qr/promptsecret/i, qr/responsesecret/i);

our $Valgrind = $ENV{TEST_NGINX_USE_VALGRIND};
our $RedisTimeout = $Valgrind ? '5s' : '200ms';

our $HttpConfig = <<'_EOC_';
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
_EOC_

our $Config = <<'_EOC_';
    location /v1/ {
        llmcache on;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }
_EOC_

our $Headers = "Content-Type: application/json\n"
    . "Authorization: Bearer $Bearer\n"
    . "x-api-key: $ApiKey";

our $Prompt = 'Tell me the PROMPTSECRET recipe for marmalade';

sub chat {
    my $text = shift // $Prompt;
    my $extra = shift // '';
    return "POST /v1/chat/completions\n"
        . '{"model":"gpt-4o",' . $extra . '"messages":[{"role":"user",'
        . '"content":"' . $text . '"}]}';
}

# a request sent from --- init, before the block's own: it stores what the
# block's request then finds
sub prime {
    my ($body, %headers) = @_;
    my $res = HTTP::Tiny->new(timeout => 10)->request(
        'POST', 'http://127.0.0.1:' . Test::Nginx::Socket::server_port()
                . '/v1/chat/completions',
        {headers => {'Content-Type' => 'application/json',
                     'Authorization' => "Bearer $Bearer",
                     'x-api-key' => $ApiKey, %headers},
         content => $body});
    die "priming request answered $res->{status}: $res->{content}\n"
        unless $res->{status} == 200;
    # the entry is written after the response: wait until it is there
    for (1 .. 100) {
        return if @{[LLMCacheTest::redis_keys('llmc:*:e:*')]};
        select undef, undef, undef, 0.05;
    }
    die "priming request stored nothing\n";
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $Config) unless defined $block->config;
    $block->set_value("more_headers", $Headers)
        unless defined $block->more_headers;
    $block->set_value("no_error_log", [@Secrets])
        unless defined $block->no_error_log;
    $block->set_value("timeout", 30) if $Valgrind && !defined $block->timeout;
});

run_tests();

__DATA__

=== TEST 1: the Redis password rejected (AUTH error): the error line names the node, not the password
--- http_config
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=SECRETPASSWORD-r3d15c0e;
--- request eval
main::chat()
--- response_headers
X-LLM-Cache: MISS
--- response_body_like: mock answer #1 to: Tell me the PROMPTSECRET recipe
--- error_log eval
qr/\[error\].*llmcache: redis 127\.0\.0\.1:\d+ AUTH: ERR /



=== TEST 2: a password'd Redis failing every command
--- http_config
    llmcache_redis 127.0.0.1:$TEST_NGINX_BAD_REDIS_PORT password=SECRETPASSWORD-r3d15c0e;
--- request eval
main::chat()
--- response_headers
X-LLM-Cache: MISS
--- response_body_like: mock answer #1
--- error_log eval
qr/\[error\].*llmcache: redis 127\.0\.0\.1:\d+ AUTH: ERR mock failure/



=== TEST 3: a password'd Redis where nothing listens
--- http_config
    llmcache_redis 127.0.0.1:1 password=SECRETPASSWORD-r3d15c0e;
--- request eval
main::chat()
--- response_headers
X-LLM-Cache: MISS
--- response_body_like: mock answer #1
--- error_log eval
qr/\[error\].*llmcache: redis 127\.0\.0\.1:1 connect failed: Connection refused/



=== TEST 4: a password'd Redis past the timeout
--- redis: paused
--- http_config eval
"    llmcache_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT password=$main::Password;
    llmcache_redis_timeout $main::RedisTimeout;"
--- request eval
main::chat()
--- response_headers
X-LLM-Cache: MISS
--- response_body_like: mock answer #1
--- error_log eval
qr/\[error\].*llmcache: redis 127\.0\.0\.1:\d+ timed out/



=== TEST 5: invalid JSON (a bad escape in the prompt): the line gives the reason, not the prompt
--- request eval
main::chat('PROMPTSECRET \\q marmalade')
--- error_code: 400
--- response_headers
X-LLM-Cache: BYPASS
--- error_log eval
qr/\[info\].*llmcache: not cacheable: .*invalid JSON/



=== TEST 6: invalid JSON (the prompt unquoted)
--- request eval
"POST /v1/chat/completions\n"
. '{"model":"gpt-4o","messages":[{"role":"user","content":PROMPTSECRET}]}'
--- error_code: 400
--- response_headers
X-LLM-Cache: BYPASS
--- error_log eval
qr/\[info\].*llmcache: not cacheable: .*invalid JSON/



=== TEST 7: invalid JSON (the prompt after the object)
--- request eval
main::chat() . ' PROMPTSECRET'
--- error_code: 400
--- response_headers
X-LLM-Cache: BYPASS
--- error_log eval
qr/\[info\].*llmcache: not cacheable: .*invalid JSON/



=== TEST 8: other bodies the module cannot read: invalid UTF-8, nesting, no model, a message not an object
--- request eval
["POST /v1/chat/completions\n"
 . '{"model":"gpt-4o","messages":[{"role":"user","content":"PROMPTSECRET '
 . "\xff\xfe" . '"}]}',
 main::chat('PROMPTSECRET', '"x":' . ('[' x 70) . (']' x 70) . ','),
 "POST /v1/chat/completions\n"
 . '{"messages":[{"role":"user","content":"PROMPTSECRET marmalade"}]}',
 "POST /v1/chat/completions\n"
 . '{"model":"gpt-4o","messages":["PROMPTSECRET marmalade"]}']
--- response_headers eval
["X-LLM-Cache: BYPASS", "X-LLM-Cache: BYPASS", "X-LLM-Cache: BYPASS",
 "X-LLM-Cache: BYPASS"]
--- error_code_like eval
[qr/^[24]\d\d$/, qr/^[24]\d\d$/, qr/^[24]\d\d$/, qr/^[24]\d\d$/]
--- error_log eval
qr/\[info\].*llmcache: not cacheable: /



=== TEST 9: a body over llmcache_max_body_size: nginx's own line, no body
--- config
    location /v1/ {
        llmcache on;
        llmcache_max_body_size 4k;
        client_body_buffer_size 1k;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }
--- request eval
main::chat('PROMPTSECRET ' . ('marmalade ' x 1000))
--- response_headers
X-LLM-Cache: BYPASS
--- response_body_like: mock answer #1 to: PROMPTSECRET marmalade
--- error_log eval
qr/\[warn\].*a client request body is buffered to a temporary file/



=== TEST 10: the embeddings endpoint down: the subrequest's line and the module's
--- config
    location /v1/ {
        llmcache on;
        llmcache_semantic on;
        llmcache_embedding /_embeddings;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location = /_embeddings {
        internal;
        proxy_pass http://127.0.0.1:1/v1/embeddings;
    }
--- request eval
main::chat()
--- response_headers
X-LLM-Cache: MISS
--- response_body_like: mock answer #1 to: Tell me the PROMPTSECRET recipe
--- error_log eval
[qr/\[error\].*connect\(\) failed .*while connecting to upstream.*subrequest: "\/_embeddings"/,
 qr/\[warn\].*llmcache: the embeddings endpoint answered \d+/]



=== TEST 11: the provider too slow: nginx's timeout line
--- config
    location /v1/ {
        llmcache on;
        proxy_read_timeout 200ms;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }
--- more_headers eval
"$main::Headers\nX-Mock-Delay-Ms: 1000"
--- request eval
main::chat()
--- error_code: 504
--- error_log eval
qr/\[error\].*upstream timed out .*while reading response header from upstream/



=== TEST 12: the provider resets a JSON answer that holds the prompt
--- more_headers eval
"$main::Headers\nX-Mock-Reset-After: 60"
--- request eval
main::chat()
--- abort
--- ignore_response
--- error_log eval
qr/\[error\].*(Connection reset by peer\) while reading upstream|upstream prematurely closed connection)/



=== TEST 13: the provider resets a stream after the prompt's echo
--- more_headers eval
"$main::Headers\nX-Mock-Reset-After: 400"
--- request eval
main::chat(undef, '"stream":true,')
--- abort
--- ignore_response
--- error_log eval
qr/\[error\].*(Connection reset by peer\) while reading upstream|upstream prematurely closed connection)/



=== TEST 14: a provider error repeating the key reaches the client, never the log
--- http_config
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=SECRETPASSWORD-r3d15c0e;
--- config
    location /v1/ {
        llmcache on;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/provider/;
    }

    # a provider that answers 401 with the key it was sent, as OpenAI does
    location /provider/ {
        default_type application/json;
        return 401 '{"error":{"message":"Incorrect API key provided: $http_authorization","type":"invalid_request_error"}}';
    }
--- request eval
main::chat()
--- error_code: 401
--- response_headers
X-LLM-Cache: MISS
--- response_body_like: Incorrect API key provided: Bearer sk-proj-Zq8SECRETKEYbearer41c9
--- error_log eval
qr/\[error\].*llmcache: redis 127\.0\.0\.1:\d+ AUTH: ERR /



=== TEST 15: a stored answer that is not JSON, asked for as a stream: the line names the entry, not the answer
--- init
main::prime('{"model":"gpt-4o","messages":[{"role":"user","content":"'
            . $main::Prompt . '"}]}',
            'X-Mock-Raw-Body' => 'RESPONSESECRET plain text, not JSON');
--- request eval
main::chat(undef, '"stream":true,')
--- error_log eval
qr/\[warn\].*llmcache: entry \S+ cannot be replayed as a stream/
