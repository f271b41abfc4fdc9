# The llmcache command line (build/llmcache) against a real nginx with the
# module, the provider mock and Redis: warm --faq writes entries under the
# keys the module computes (a client asking the question, or a normalized
# variant, is a HIT with the given answer and the provider is never
# called); warm replays requests through the gateway; purge and stats talk
# to llmcache_purge and llmcache_metrics; schema push posts to a unix
# socket; usage errors exit 2, failures 1.

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';

use utf8;
use File::Temp ();
use IO::Socket::INET;
use IO::Socket::UNIX;
use JSON::PP ();
use POSIX ();

no_shuffle();
no_long_string();
workers(2);
master_on();

our $Cli = LLMCacheTest::repo_root() . '/build/llmcache';
die "$Cli is missing: run make\n" unless -x $Cli;

our $Tmp = File::Temp::tempdir('llmcache-cli-XXXXXX', TMPDIR => 1,
                               CLEANUP => 1);

our $HttpConfig = <<'_EOC_';
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llmcache_zone llmcache 1m;
    llmcache_dictionary $TEST_NGINX_DICT_DIR/ko.dict;
    llmcache_dictionary $TEST_NGINX_DICT_DIR/en.dict;
_EOC_

our $Config = <<'_EOC_';
    location /v1/ {
        llmcache on;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /strict/v1/ {
        llmcache on;
        llmcache_normalize nfkc casefold;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/v1/;
    }

    location = /purge {
        allow 127.0.0.1;
        deny all;
        llmcache_purge;
    }

    location = /metrics {
        llmcache_metrics;
    }
_EOC_

sub base { 'http://127.0.0.1:' . Test::Nginx::Socket::server_port() }

sub dicts {
    my $d = $ENV{TEST_NGINX_DICT_DIR};
    return ('--dict', "$d/ko.dict", '--dict', "$d/en.dict");
}

# a file in the temporary directory with these lines (UTF-8)
sub lines_file {
    my ($name, @lines) = @_;
    my $path = "$Tmp/$name";
    open my $fh, '>:raw', $path or die "$path: $!";
    for my $l (@lines) {
        my $b = $l;
        utf8::encode($b) if utf8::is_utf8($b);
        print {$fh} "$b\n";
    }
    close $fh;
    return $path;
}

sub faq_line {
    my (%f) = @_;
    return JSON::PP->new->canonical->encode(\%f);
}

# cli(@args) -> (exit status, stdout, stderr); stdin is /dev/null, so no
# progress bar (not a TTY)
sub cli {
    my @args = @_;
    my ($out, $err) = ("$Tmp/out", "$Tmp/err");
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out;
        open STDERR, '>', $err;
        exec $Cli, @args or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $rc = $? >> 8;
    my $slurp = sub {
        open my $fh, '<:raw', shift or return '';
        local $/;
        my $s = <$fh> // '';
        utf8::decode($s);
        return $s;
    };
    return ($rc, $slurp->($out), $slurp->($err));
}

# http($method, $uri[, $headers, $body]) -> (status, head, body)
sub http {
    my ($method, $uri, $headers, $body) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => Test::Nginx::Socket::server_port(),
                                  Timeout => 5) or die "connect: $!";
    $body //= '';
    $headers //= '';
    utf8::encode($body) if utf8::is_utf8($body);
    print {$s} "$method $uri HTTP/1.0\r\nHost: localhost\r\n$headers"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    local $/;
    my $resp = <$s> // '';
    close $s;
    my ($head, $b) = split /\r\n\r\n/, $resp, 2;
    utf8::decode($b) if defined $b;
    my ($status) = $head =~ m{^HTTP/1\.\d (\d+)};
    return ($status, $head, $b // '');
}

# a client's request: (X-LLM-Cache, body)
sub ask {
    my ($path, $body, @headers) = @_;
    @headers = ('Authorization: Bearer sk-cli-13') unless @headers;
    my $h = "Content-Type: application/json\r\n"
            . join('', map { "$_\r\n" } @headers);
    my ($status, $head, $b) = http('POST', $path, $h,
                                   JSON::PP->new->encode($body));
    my ($cache) = $head =~ /X-LLM-Cache: (\w+)/;
    select(undef, undef, undef, 0.2) if ($cache // '') eq 'MISS';
    return ($cache // "status $status", $b);
}

sub nkeys {
    my @k = LLMCacheTest::redis_keys(shift);
    return scalar @k;
}

sub chat {
    my ($text, %extra) = @_;
    return { model => 'gpt-4o',
             messages => [{ role => 'user', content => $text }], %extra };
}

# --- then: Perl run after the block's request, while its nginx is up
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $code = $block->then;
    return if !defined $code || $dry_run;
    eval "package main; $code; 1" or Test::More::fail($block->name . ": $@");
});

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("http_config", $HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $Config) unless defined $block->config;
    $block->set_value("request", "GET /metrics") unless defined $block->request;
});

run_tests();

__DATA__

=== TEST 1: warm --faq: the client's question and a normalized variant are HITs with the given answer; the provider is never called
--- then
my $n = $block->name;
my $redis = "127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}";
my $faq = main::lines_file('faq.jsonl',
    main::faq_line(question => 'What is the capital of France?',
                   answer => 'Paris, since 508.', model => 'gpt-4o'),
    '',
    main::faq_line(question => '파스타 레시피 좀 알려주세요',
                   answer => '면을 삶고 소스를 섞으세요.', model => 'gpt-4o'),
    main::faq_line(question => 'How do I reset my password?',
                   answer => 'Use the link on the sign-in page.',
                   model => 'claude-sonnet-4-5', path => '/v1/messages',
                   params => { max_tokens => 256 }),
    main::faq_line(question => 'Say hi', answer => 'hi there',
                   model => 'gpt-3.5-turbo-instruct',
                   path => '/v1/completions'),
    main::faq_line(question => 'Opening hours?', answer => '9 to 5',
                   model => 'gpt-4o', path => '/v1/responses'));
my ($rc, $out, $err) = main::cli('warm', $faq, '--faq', '--redis', $redis,
    main::dicts(), '--header', 'Authorization: Bearer sk-cli-13',
    '--ttl', '10m');
is($rc, 0, "$n - exit 0") or diag($err);
like($out, qr/^stored 5  errors 0  seconds [\d.]+$/m, "$n - summary");
my @stored = $out =~ /^stored (llmc:\{[0-9a-f]{32}\}:e:[0-9a-f]{64}) \(\Q$faq\E:\d+\)$/mg;
is(scalar @stored, 5, "$n - a line per entry with its key");
is(main::nkeys('llmc:*'), 5, "$n - 5 keys in Redis");
my $ttl = LLMCacheTest::redis_cmd('TTL', $stored[0]);
ok($ttl > 590 && $ttl <= 600, "$n - --ttl 10m: $ttl");

my ($c, $b) = main::ask('/v1/chat/completions',
                        main::chat('What is the capital of France?'));
is($c, 'HIT', "$n - same question: HIT");
my $r = JSON::PP::decode_json($b);
is($r->{choices}[0]{message}{content}, 'Paris, since 508.', "$n - the answer");
is($r->{object}, 'chat.completion', "$n - chat completion shape");
is($r->{usage}{total_tokens}, 0, "$n - usage zeros");
($c, $b) = main::ask('/v1/chat/completions',
                     main::chat('  WHAT is the capital of   France '));
is($c, 'HIT', "$n - normalized variant: HIT");
($c, $b) = main::ask('/v1/chat/completions',
                     main::chat('파스타  레시피  알려 주세요!'));
is($c, 'HIT', "$n - dictionary variant: HIT");
like($b, qr/면을 삶고/, "$n - Korean answer");
($c, $b) = main::ask('/v1/chat/completions',
                     main::chat('What is the capital of France?',
                                stream => JSON::PP::true));
is($c, 'HIT', "$n - a streaming client: HIT");
like($b, qr/^data: .*"content":"Paris, since 5/m, "$n - replayed as SSE");
like($b, qr/^data: \[DONE\]/m, "$n - [DONE]");
($c, $b) = main::ask('/v1/messages',
    { model => 'claude-sonnet-4-5', max_tokens => 256,
      messages => [{ role => 'user', content => 'How do I reset my password?' }] });
is($c, 'HIT', "$n - Anthropic messages: HIT");
$r = JSON::PP::decode_json($b);
is($r->{content}[0]{text}, 'Use the link on the sign-in page.', "$n - message answer");
is($r->{type}, 'message', "$n - message shape");
($c, $b) = main::ask('/v1/completions',
    { model => 'gpt-3.5-turbo-instruct', prompt => 'Say hi' });
is($c, 'HIT', "$n - legacy completions: HIT");
is(JSON::PP::decode_json($b)->{choices}[0]{text}, 'hi there', "$n - text");
($c, $b) = main::ask('/v1/responses', { model => 'gpt-4o', input => 'Opening hours?' });
is($c, 'HIT', "$n - Responses: HIT");
is(JSON::PP::decode_json($b)->{output}[0]{content}[0]{text}, '9 to 5', "$n - output_text");
is(LLMCacheTest::mock_calls(), 0, "$n - the provider was never called");

# what makes the key: tenant, normalization
($c) = main::ask('/v1/chat/completions',
                 main::chat('What is the capital of France?'),
                 'Authorization: Bearer sk-someone-else');
is($c, 'MISS', "$n - another tenant: MISS");
($c) = main::ask('/strict/v1/chat/completions',
                 main::chat('What is the capital of France?'));
is($c, 'MISS', "$n - a location with other normalize steps: MISS");
is(LLMCacheTest::mock_calls(), 2, "$n - those two went upstream");
--- no_error_log
[error]



=== TEST 2: warm --faq with --tenant, --normalize and provider headers matches that location and those clients
--- then
my $n = $block->name;
my $redis = "127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}";
my $faq = main::lines_file('faq2.jsonl',
    main::faq_line(question => 'Is it open today?', answer => 'Yes.',
                   model => 'gpt-4o'));
my ($rc, $out, $err) = main::cli('warm', '--faq', $faq, '--redis', $redis,
    main::dicts(), '--normalize', 'nfkc casefold',
    '--tenant', 'Bearer sk-cli-13',
    '--header', 'OpenAI-Organization: org-cli');
is($rc, 0, "$n - exit 0") or diag($err);
my ($c, $b) = main::ask('/strict/v1/chat/completions',
                        main::chat('IS IT OPEN TODAY?'),
                        'Authorization: Bearer sk-cli-13',
                        'OpenAI-Organization: org-cli');
is($c, 'HIT', "$n - casefolded, same tenant and organization: HIT");
($c) = main::ask('/strict/v1/chat/completions',
                 main::chat('IS IT OPEN TODAY?'),
                 'Authorization: Bearer sk-cli-13');
is($c, 'MISS', "$n - without the organization header: MISS");
is(LLMCacheTest::mock_calls(), 1, "$n - one provider call");
--- no_error_log
[error]



=== TEST 3: warm --faq bad input: the bad lines are reported with file:line, the good ones stored, exit 1
--- then
my $n = $block->name;
my $redis = "127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}";
my $faq = main::lines_file('bad.jsonl',
    '{"question": "no answer", "model": "gpt-4o"}',
    '{not json',
    main::faq_line(question => 'ok', answer => 'fine', model => 'gpt-4o'),
    main::faq_line(question => 'q', answer => 'a', model => 'gpt-4o',
                   path => '/v1/embeddings'),
    main::faq_line(question => 'q', answer => 'a', model => 'gpt-4o',
                   params => 'not an object'),
    '[1, 2]');
my ($rc, $out, $err) = main::cli('warm', $faq, '--faq', '--redis', $redis);
is($rc, 1, "$n - exit 1");
like($out, qr/^stored 1  errors 5 /m, "$n - summary");
like($err, qr/bad\.jsonl:1: needs "question", "answer" and "model"/, "$n - missing answer");
like($err, qr/bad\.jsonl:2: invalid JSON/, "$n - invalid JSON");
like($err, qr/bad\.jsonl:4: "\/v1\/embeddings" is not a cached API path/, "$n - path");
like($err, qr/bad\.jsonl:5: "path" must be a string and "params" an object/, "$n - params");
like($err, qr/bad\.jsonl:6: needs/, "$n - not an object");
is(main::nkeys('llmc:*'), 1, "$n - the good line stored");

($rc, $out, $err) = main::cli('warm', $faq, '--faq', '--redis', '127.0.0.1:1');
is($rc, 1, "$n - Redis refused: exit 1");
like($err, qr/redis 127\.0\.0\.1:1: /, "$n - says so");
($rc, $out, $err) = main::cli('warm', "$faq.missing", '--faq');
is($rc, 1, "$n - missing file: exit 1");
like($err, qr/missing: No such file/, "$n - says so");
($rc, $out, $err) = main::cli('warm', $faq, '--faq', '--normalize', 'nfkc shout');
is($rc, 2, "$n - unknown step: exit 2");
like($err, qr/unknown step "shout"/, "$n - says which");
($rc, $out, $err) = main::cli('warm', $faq, '--faq', '--redis', $redis,
                              '--dict', '/nonexistent.dict');
is($rc, 1, "$n - unreadable dictionary: exit 1");
--- no_error_log
[error]



=== TEST 4: warm through the gateway: MISS then HIT, counted from X-LLM-Cache; one provider call per distinct request
--- then
my $n = $block->name;
my $reqs = main::lines_file('requests.jsonl',
    JSON::PP->new->encode({ path => '/v1/chat/completions',
                            body => main::chat('Name a prime number.') }),
    JSON::PP->new->encode({ path => '/v1/messages',
        body => { model => 'claude-sonnet-4-5', max_tokens => 64,
                  messages => [{ role => 'user', content => 'Name a colour.' }] } }),
    JSON::PP->new->encode(main::chat('What is 2 + 2?')));
my @args = ('warm', $reqs, '--gateway', main::base(), '--path',
            '/v1/chat/completions', '--header', 'Authorization: Bearer sk-cli-13');
my ($rc, $out, $err) = main::cli(@args, '--concurrency', '1');
is($rc, 0, "$n - exit 0") or diag($err);
like($out, qr/^sent 3  HIT 0  SEMANTIC 0  MISS 3  BYPASS 0  no header 0  errors 0  seconds [\d.]+$/m,
     "$n - three MISS");
like($err, qr{^1/3 \Q$reqs\E:1 200 MISS$}m, "$n - a plain progress line per request");
is(LLMCacheTest::mock_calls(), 3, "$n - three provider calls");
select(undef, undef, undef, 0.3);
($rc, $out, $err) = main::cli(@args, '--concurrency', '3');
is($rc, 0, "$n - again: exit 0") or diag($err);
like($out, qr/^sent 3  HIT 3  SEMANTIC 0  MISS 0 /m, "$n - three HIT");
is(LLMCacheTest::mock_calls(), 3, "$n - no new provider call");
my ($c) = main::ask('/v1/chat/completions', main::chat('What is 2 + 2?'));
is($c, 'HIT', "$n - a client now hits the warmed entry");
--- no_error_log
[error]



=== TEST 5: warm through the gateway: bad files send nothing; provider errors and a gateway down are counted and exit 1
--- then
my $n = $block->name;
my $bad = main::lines_file('bad-requests.jsonl',
    JSON::PP->new->encode(main::chat('fine')), '{"body": [1]}');
my ($rc, $out, $err) = main::cli('warm', $bad, '--gateway', main::base(),
                                 '--path', '/v1/chat/completions');
is($rc, 1, "$n - exit 1");
like($err, qr/bad-requests\.jsonl:2: "body" is not an object/, "$n - says where");
my $bare = main::lines_file('bare.jsonl', JSON::PP->new->encode(main::chat('x')));
($rc, $out, $err) = main::cli('warm', $bare, '--gateway', main::base());
is($rc, 1, "$n - bare body without --path: exit 1");
like($err, qr/bare\.jsonl:1: no "path" in the line and no --path/, "$n - says so");
is(LLMCacheTest::mock_calls(), 0, "$n - nothing was sent");

# Anthropic without max_tokens: the provider's 400
my $e = main::lines_file('err.jsonl',
    JSON::PP->new->encode({ path => '/v1/messages',
        body => { model => 'claude-sonnet-4-5',
                  messages => [{ role => 'user', content => 'hi' }] } }),
    JSON::PP->new->encode({ path => '/v1/chat/completions',
                            body => main::chat('Name a river.') }));
($rc, $out, $err) = main::cli('warm', $e, '--gateway', main::base());
is($rc, 1, "$n - a 400: exit 1");
like($out, qr/^sent 2  HIT 0  SEMANTIC 0  MISS 1  BYPASS 1  no header 0  errors 1 /m,
     "$n - summary counts the error");
like($err, qr/err\.jsonl:1: status 400: .*max_tokens/, "$n - the error body");
($rc, $out, $err) = main::cli('warm', $e, '--gateway', 'http://127.0.0.1:1');
is($rc, 1, "$n - gateway down: exit 1");
like($out, qr/errors 2 /, "$n - both failed");
like($err, qr/err\.jsonl:1: .*(onnect|refused)/, "$n - connection error");
--- no_error_log
[error]



=== TEST 6: purge --key / --scope / --all through llmcache_purge
--- then
my $n = $block->name;
my $redis = "127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}";
my $faq = main::lines_file('purge.jsonl',
    main::faq_line(question => 'one', answer => '1', model => 'gpt-4o'),
    main::faq_line(question => 'two', answer => '2', model => 'gpt-4o'),
    main::faq_line(question => 'three', answer => '3', model => 'gpt-4o'));
my ($rc, $out, $err) = main::cli('warm', $faq, '--faq', '--redis', $redis,
    main::dicts(), '--header', 'Authorization: Bearer sk-cli-13');
is($rc, 0, "$n - warmed") or diag($err);
my @keys = $out =~ /^stored llmc:\{([0-9a-f]{32})\}:e:([0-9a-f]{64})/mg;
my ($scope, $k1) = @keys[0, 1];
($rc, $out, $err) = main::cli('purge', main::base() . '/purge', '--key', $k1);
is($rc, 0, "$n - --key: exit 0") or diag($err);
is($out, "deleted 1 keys (1 entries)\n", "$n - --key: one entry");
my ($c) = main::ask('/v1/chat/completions', main::chat('one'));
is($c, 'MISS', "$n - the purged question is a MISS");
($c) = main::ask('/v1/chat/completions', main::chat('two'));
is($c, 'HIT', "$n - the others stay");
($rc, $out, $err) = main::cli('purge', main::base() . '/purge', '--scope', $scope);
is($rc, 0, "$n - --scope: exit 0") or diag($err);
like($out, qr/^deleted \d+ keys \(3 entries\)$/, "$n - the scope's three entries");
LLMCacheTest::redis_cmd('SET', 'llmc:{' . ('0' x 32) . '}:e:' . ('1' x 64), 'x');
($rc, $out, $err) = main::cli('purge', main::base() . '/purge', '--all');
is($rc, 0, "$n - --all: exit 0");
is($out, "deleted 1 keys (1 entries)\n", "$n - --all");
is(main::nkeys('llmc:*'), 0, "$n - nothing left");

($rc, $out, $err) = main::cli('purge', main::base() . '/purge', '--key', 'abc');
is($rc, 2, "$n - bad key: exit 2");
like($err, qr/--key: 64 hex digits/, "$n - says so");
($rc, $out, $err) = main::cli('purge', main::base() . '/purge', '--all', '--scope', '0' x 32);
is($rc, 2, "$n - two forms: exit 2");
($rc, $out, $err) = main::cli('purge', main::base() . '/v1/nothing', '--all');
is($rc, 1, "$n - not a purge location: exit 1");
like($err, qr/status 404/, "$n - the status");
--- no_error_log
[error]



=== TEST 7: stats: requests by status, hit ratio, tokens and dollars, Redis health; --json
--- then
my $n = $block->name;
main::ask('/v1/chat/completions', main::chat('Name a prime number.'));
main::ask('/v1/chat/completions', main::chat('Name a prime number.'));
main::ask('/v1/chat/completions', main::chat('Name a prime number!'));
my ($rc, $out, $err) = main::cli('stats', main::base() . '/metrics');
is($rc, 0, "$n - exit 0") or diag($err);
like($out, qr/^requests\s+3\s+HIT 2\s+MISS 1\s+BYPASS 0\s+SEMANTIC 0$/m, "$n - by status");
like($out, qr/^hit ratio\s+66\.7%  \(exact 2, semantic 0 of 3 lookups\)$/m, "$n - ratio");
like($out, qr/^tokens\s+saved \d+/m, "$n - tokens");
like($out, qr/^dollars\s+saved \$\d+\.\d{6}  spent \$\d+\.\d{6}$/m, "$n - dollars");
like($out, qr/^redis\s+healthy\s+error 0\s+timeout 0\s+connect \d+$/m, "$n - Redis health");
like($out, qr/^lookup\s+3 lookups, mean [\d.]+ ms, p50 <= \d+ ms/m, "$n - latency");
like($out, qr/^gpt-4o\s+2\s+0\s+1\s+0\s+[\d.]+$/m, "$n - the model's row");
($rc, $out, $err) = main::cli('stats', main::base() . '/metrics', '--json');
is($rc, 0, "$n - --json: exit 0");
is(JSON::PP::decode_json($out)->{requests}{HIT}, 2, "$n - --json is the document");
($rc, $out, $err) = main::cli('stats', main::base() . '/v1/x');
is($rc, 1, "$n - not a metrics location: exit 1");
($rc, $out, $err) = main::cli('stats', 'http://127.0.0.1:1/metrics');
is($rc, 1, "$n - refused: exit 1");
like($err, qr/GET http:\/\/127\.0\.0\.1:1\/metrics\?format=json: /, "$n - says where");
--- no_error_log
[error]



=== TEST 8: schema push posts the file to /v1/schemas on the worker's unix socket
--- then
my $n = $block->name;
my $sock = "$main::Tmp/worker.sock";
my $xml = main::lines_file('schema.xml', '<schema name="faq"><module name="a">x</module></schema>');
my $srv = IO::Socket::UNIX->new(Local => $sock, Listen => 1) or die "$sock: $!";
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    # one fake worker answer per connection: 201 then 400; never outlives
    # a client that did not come
    alarm 30;
    for my $answer ('201 Created', '400 Bad Request') {
        my $c = $srv->accept or POSIX::_exit(1);
        my ($req, $len) = ('', undef);
        while (sysread $c, my $chunk, 65536) {
            $req .= $chunk;
            ($len) = $req =~ /\r\nContent-Length: (\d+)/i unless defined $len;
            my $i = index $req, "\r\n\r\n";
            last if $i >= 0 && defined $len && length($req) >= $i + 4 + $len;
        }
        if (open my $fh, '>', "$sock.req") {
            print {$fh} $req;
            close $fh;
        }
        my $body = $answer =~ /^2/ ? '{"name":"faq","modules":1}'
                                   : '{"error":"bad schema"}';
        print {$c} "HTTP/1.1 $answer\r\nContent-Type: application/json\r\n"
            . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
        close $c;
    }
    POSIX::_exit(0);
}
my ($rc, $out, $err) = main::cli('schema', 'push', $xml, '--worker', "unix:$sock");
is($rc, 0, "$n - exit 0") or diag($err);
like($out, qr/^registered .*schema\.xml: \{\n\s+"name": "faq"/, "$n - the worker's answer");
my $req = do { local $/; open my $fh, '<', "$sock.req"; <$fh> };
like($req, qr{^POST /v1/schemas HTTP/1\.1\r\n}, "$n - POST /v1/schemas");
like($req, qr{\r\nContent-Type: application/xml\r\n}i, "$n - as XML");
like($req, qr{\r\n\r\n<schema name="faq">}, "$n - the file is the body");
($rc, $out, $err) = main::cli('schema', 'push', $xml, '--worker', "unix:$sock");
is($rc, 1, "$n - a 400: exit 1");
like($err, qr/status 400: \{\n\s+"error": "bad schema"/, "$n - the worker's error");
waitpid $pid, 0;
($rc, $out, $err) = main::cli('schema', 'push', $xml, '--worker', "unix:$sock.none");
is($rc, 1, "$n - no worker: exit 1");
($rc, $out, $err) = main::cli('schema', 'push', $xml);
is($rc, 2, "$n - no --worker: exit 2");
($rc, $out, $err) = main::cli('schema', 'push', $xml, '--worker', 'tcp:1');
is($rc, 2, "$n - bad --worker: exit 2");
--- no_error_log
[error]



=== TEST 9: schema push inlines src= files, and a real worker encodes them
--- then
my $n = $block->name;
my $root = LLMCacheTest::repo_root();
my ($worker, $mk) = ("$root/build/llmcache-worker", "$root/build/llmcache-mkmodel");
SKIP: {
    skip "$n: the worker is not built", 9 unless -x $worker && -x $mk;
    my $model = "$main::Tmp/tiny.gguf";
    system($mk, '--out', $model, '--ctx', '512') == 0 or die "mkmodel failed";
    my $sock = "$main::Tmp/real-worker.sock";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', "$main::Tmp/worker.log";
        open STDERR, '>&', \*STDOUT;
        exec $worker, '--model', $model, '--listen', "unix:$sock",
             '--threads', '1' or POSIX::_exit(127);
    }
    for (1 .. 200) { last if -S $sock; select undef, undef, undef, 0.05 }
    main::lines_file('code.py', 'if a < b and c > d:', '    x = "&"');
    my $xml = main::lines_file('src.xml',
        '<schema name="code"><module name="intro">Read this.</module>',
        '<module name="code" src="code.py"/>',
        '<module name="more" src=\'code.py\'></module></schema>');
    my ($rc, $out, $err) = main::cli('schema', 'push', $xml, '--worker', "unix:$sock");
    is($rc, 0, "$n - exit 0") or diag($err);
    my ($json) = $out =~ /^registered [^:]*: (.*)\z/s;
    my $r = eval { JSON::PP->new->decode($json // '') } // {};
    my %mods = map { $_->{name} => $_ } @{ $r->{modules} // [] };
    ok(($mods{code}{tokens} // 0) > 10, "$n - the file's text was encoded in its module")
        or diag($out);
    is($mods{code}{tokens}, $mods{more}{tokens}, "$n - self-closing or empty, the same text");
    my $bad = main::lines_file('bad.xml',
        '<schema name="bad"><module name="m" src="code.py">text</module></schema>');
    ($rc, $out, $err) = main::cli('schema', 'push', $bad, '--worker', "unix:$sock");
    is($rc, 1, "$n - src= and text: exit 1");
    like($err, qr/a module with src= must be empty/, "$n - says why");
    my $missing = main::lines_file('missing.xml',
        '<schema name="m"><module name="m" src="nowhere.py"/></schema>');
    ($rc, $out, $err) = main::cli('schema', 'push', $missing, '--worker', "unix:$sock");
    is($rc, 1, "$n - a missing src file: exit 1");
    like($err, qr{nowhere\.py: No such file}, "$n - names the file");
    my $plain = main::lines_file('plain.xml',
        '<schema name="bad"><module name="m">x</module><module name="m">y</module></schema>');
    ($rc, $out, $err) = main::cli('schema', 'push', $plain, '--worker', "unix:$sock");
    is($rc, 1, "$n - the worker refuses a bad schema: exit 1");
    like($err, qr/status 400/, "$n - with its 400");
    kill 'TERM', $pid;
    waitpid $pid, 0;
}
--- no_error_log
[error]



=== TEST 10: usage: --help everywhere (exit 0), usage errors exit 2
--- then
my $n = $block->name;
my ($rc, $out, $err) = main::cli('--help');
is($rc, 0, "$n - --help");
like($out, qr/^usage: llmcache <command>/, "$n - main usage");
for my $cmd (qw(warm stats purge schema)) {
    ($rc, $out) = main::cli($cmd, '--help');
    is($rc, 0, "$n - $cmd --help");
    like($out, qr/^usage: llmcache $cmd/, "$n - $cmd usage");
}
($rc) = main::cli();
is($rc, 2, "$n - no command");
($rc, $out, $err) = main::cli('frobnicate');
is($rc, 2, "$n - unknown command");
like($err, qr/unknown command "frobnicate"/, "$n - named");
($rc, $out, $err) = main::cli('warm', '/dev/null');
is($rc, 2, "$n - warm without --gateway or --faq");
($rc, $out, $err) = main::cli('warm', '/dev/null', '--gateway', main::base(),
                              '--concurrency', '0');
is($rc, 2, "$n - --concurrency 0");
($rc, $out, $err) = main::cli('warm', '/dev/null', '--faq', '--ttl', 'soon');
is($rc, 2, "$n - bad --ttl");
($rc, $out, $err) = main::cli('warm', '/dev/null', '--gateway', main::base(),
                              '--tenant', 'x');
is($rc, 2, "$n - --tenant without --faq");
($rc, $out, $err) = main::cli('stats', main::base(), '--key', '0');
is($rc, 2, "$n - an option of another command");
like($err, qr/stats does not take --key/, "$n - named");
($rc, $out, $err) = main::cli('warm', '/dev/null', '--gateway', main::base(),
                              '--header', 'no colon');
is($rc, 2, "$n - bad --header");
--- no_error_log
[error]



=== TEST 10: the examples in examples/warm load: every FAQ line stored, every request answered, then all HITs
--- then
my $n = $block->name;
my $root = LLMCacheTest::repo_root();
my $redis = "127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}";
my ($rc, $out, $err) = main::cli('warm', "$root/examples/warm/faq.jsonl",
    '--faq', '--redis', $redis, main::dicts(), '--quiet',
    '--header', 'Authorization: Bearer sk-cli-13');
is($rc, 0, "$n - faq.jsonl: exit 0") or diag($err);
like($out, qr/^stored 5  errors 0 /, "$n - five entries, --quiet: only the summary");
my ($c, $b) = main::ask('/v1/chat/completions',
    { model => 'gpt-4o-mini',
      messages => [{ role => 'user', content => 'what are your opening hours' }] });
is($c, 'HIT', "$n - a FAQ question: HIT");
like($b, qr/Monday to Friday/, "$n - its answer");
my @args = ('warm', "$root/examples/warm/requests.jsonl", '--gateway',
            main::base(), '--path', '/v1/chat/completions', '--quiet',
            '--header', 'Authorization: Bearer sk-cli-13');
($rc, $out, $err) = main::cli(@args);
is($rc, 0, "$n - requests.jsonl: exit 0") or diag($err);
# a system prompt or another API is another scope: those two are stored
like($out, qr/^sent 5  HIT 3  SEMANTIC 0  MISS 2  BYPASS 0  no header 0  errors 0 /,
     "$n - the FAQ questions asked the same way hit");
is($err, '', "$n - --quiet: no progress lines");
is(LLMCacheTest::mock_calls(), 2, "$n - two provider calls");
select(undef, undef, undef, 0.3);
($rc, $out, $err) = main::cli(@args);
like($out, qr/^sent 5  HIT 5 /, "$n - replayed again: all HIT");
--- no_error_log
[error]
