# llmcache-worker against the real process: a random model from
# llmcache-mkmodel, the worker on a unix socket in a temporary directory,
# requests over raw HTTP/1.1 (core Perl only).
#
# LLMCACHE_ROOT: the repository (default: this file's parent directory);
# LLMCACHE_SHARED: the shared data (default: ROOT/../shared);
# LLMCACHE_WORKER_WRAP: a command the worker runs under (valgrind ...).

use strict;
use warnings;

use File::Temp qw(tempdir);
use FindBin;
use IO::Socket::UNIX;
use JSON::PP;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(sleep time);
use lib "$FindBin::Bin/inc";
use WorkerClient;

WorkerClient::setup('llmcache-worker');

local $SIG{ALRM} = sub { die "timed out\n" };
# interrupted: END still stops the workers
local $SIG{INT} = local $SIG{TERM} = sub { die "interrupted\n" };
local $SIG{PIPE} = 'IGNORE';
alarm 300;

# --- the worker on a random model ------------------------------------------

my $dim = 256;
my $model = "$dir/tiny.gguf";
system($mkmodel, '--out', $model, '--seed', '7', '--dim', $dim,
       '--layers', '4', '--heads', '4', '--kv-heads', '2', '--ffn', '768',
       '--ctx', '1024', '--name', 'tiny') == 0
    or BAIL_OUT("llmcache-mkmodel failed");

# a stale socket file (a listener that went away) is replaced
{
    my $stale = IO::Socket::UNIX->new(Type => SOCK_STREAM, Listen => 1,
                                      Local => "$dir/main.sock")
        or die "stale socket: $!";
    close $stale;
    ok(-S "$dir/main.sock", 'a stale socket file is there');
}
my $sock = start_worker('main', '--model', $model, '--max-queue', '1',
                        '--max-body', '65536', '--request-timeout', '1');

# a live one is not taken over
{
    my $out = `$worker --model $model --listen unix:$sock 2>&1`;
    isnt($? >> 8, 0, 'a second worker on a live socket exits non-zero');
    like($out, qr/another server is listening/, '... and says why');
}

my $mode = (stat $sock)[2] & 07777;
is(sprintf('%o', $mode), '660', 'socket file mode 0660');

# --socket-owner: the group nginx's workers run in (here: another group
# when the tests run as root, who may give the file away; else one of
# ours)
{
    my $grp = $> == 0 ? (getgrnam('daemon'))[2] // 1 : (split ' ', $))[0];
    my $name = getgrgid($grp) // $grp;
    my $own = start_worker('owned', '--model', $model,
                           '--socket-owner', ":$name");
    is((stat $own)[5], $grp, "--socket-owner :$name sets the group");
    is((stat $own)[4], $>, '... and leaves the owner');
    is(stop_worker($own), 0, 'that worker stops');
    my $out = `$worker --model $model --listen unix:$dir/bad-owner.sock --socket-owner no-such-user-here 2>&1`;
    isnt($? >> 8, 0, 'an unknown --socket-owner: exits non-zero');
    like($out, qr/no user "no-such-user-here"/, '... and says why');
    ok(!-e "$dir/bad-owner.sock", '... and leaves no socket file');
}

my $r = call($sock, 'GET', '/health');
is($r->{status}, 200, '/health 200');
is_deeply($r->{json}, { status => 'ok' }, '/health body');

$r = call($sock, 'GET', '/v1/models');
is($r->{status}, 200, '/v1/models 200');
is($r->{json}{object}, 'list', '/v1/models object');
is($r->{json}{data}[0]{id}, 'tiny', 'model id from general.name');
is($r->{json}{data}[0]{object}, 'model', 'model object');

# completions: greedy, deterministic, max_tokens, usage
my $creq = { model => 'tiny', prompt => 'hello world', max_tokens => 12,
             temperature => 0 };
my $c1 = post($sock, '/v1/completions', $creq);
is($c1->{status}, 200, 'completion 200') or diag $c1->{body};
my $cj = $c1->{json};
is($cj->{object}, 'text_completion', 'completion object');
like($cj->{id}, qr/^cmpl-/, 'completion id');
is($cj->{model}, 'tiny', 'completion model');
is(scalar @{ $cj->{choices} }, 1, 'one choice');
my $u = $cj->{usage};
ok($u->{prompt_tokens} >= 2, "prompt tokens counted ($u->{prompt_tokens})");
ok($u->{completion_tokens} >= 1 && $u->{completion_tokens} <= 12,
   "completion tokens within max_tokens ($u->{completion_tokens})");
is($u->{total_tokens}, $u->{prompt_tokens} + $u->{completion_tokens},
   'total = prompt + completion');
is($u->{prompt_tokens_details}{cached_tokens}, 0, 'cached_tokens 0');
my $fin = $cj->{choices}[0]{finish_reason};
ok($fin eq 'length' || $fin eq 'stop', "finish_reason $fin");
is($u->{completion_tokens}, 12, 'length: exactly max_tokens generated')
    if $fin eq 'length';
my $text = $cj->{choices}[0]{text};

my $c2 = post($sock, '/v1/completions', $creq);
is($c2->{json}{choices}[0]{text}, $text, 'greedy: same request, same text');
is_deeply($c2->{json}{usage}, $u, 'greedy: same usage');

$r = post($sock, '/v1/completions', { %$creq, max_tokens => 3 });
ok($r->{json}{usage}{completion_tokens} <= 3, 'max_tokens 3 respected');
is($r->{json}{usage}{prompt_tokens}, $u->{prompt_tokens},
   'prompt tokens do not depend on max_tokens');
is(substr($text, 0, length $r->{json}{choices}[0]{text}),
   $r->{json}{choices}[0]{text}, 'the shorter greedy text is a prefix');

# the tokenizer: embeddings of the same text count the same tokens (BOS
# included), and a longer text counts more
$r = post($sock, '/v1/embeddings', { input => 'hello world' });
is($r->{json}{usage}{prompt_tokens}, $u->{prompt_tokens},
   'embeddings and completions count the same prompt tokens');
$r = post($sock, '/v1/completions',
          { %$creq, prompt => 'hello world hello world', max_tokens => 1 });
ok($r->{json}{usage}{prompt_tokens} > $u->{prompt_tokens},
   'a longer prompt has more tokens');

# a seeded sampled completion is reproducible
my $sreq = { prompt => 'hello', max_tokens => 8, temperature => 1.0,
             top_p => 0.9, top_k => 40, seed => 42 };
is(post($sock, '/v1/completions', $sreq)->{json}{choices}[0]{text},
   post($sock, '/v1/completions', $sreq)->{json}{choices}[0]{text},
   'same seed, same sampled text');

# unknown fields are ignored
$r = post($sock, '/v1/completions', { %$creq, some_future_field => [1] });
is($r->{status}, 200, 'unknown fields are ignored');
is($r->{json}{choices}[0]{text}, $text, '... and change nothing');

# stop strings, across token boundaries, never emitted
(my $ascii = $text) =~ s/[^\x20-\x7e]/\0/g;
my ($stop, $at);
for my $k (1 .. length($text) - 3) {
    my $s = substr($ascii, $k, 3);
    next if $s =~ /\0/ || index($text, $s) != $k;
    ($stop, $at) = ($s, $k);
    last;
}
SKIP: {
    skip 'no ASCII stop string candidate in the greedy text', 6
        unless defined $stop;
    $r = post($sock, '/v1/completions', { %$creq, stop => [$stop, 'zzzz'] });
    is($r->{json}{choices}[0]{text}, substr($text, 0, $at),
       "stop '$stop': text cut before it");
    is($r->{json}{choices}[0]{finish_reason}, 'stop', 'stop: finish_reason');
    $r = post($sock, '/v1/completions', { %$creq, stop => $stop });
    is($r->{json}{choices}[0]{text}, substr($text, 0, $at),
       'stop as a string');

    my $c = connect_to($sock);
    print $c request_bytes('POST', '/v1/completions',
        $json->encode({ %$creq, stop => [$stop], stream => JSON::PP::true }));
    my $h = read_head($c);
    my ($ev) = read_events($c);
    close $c;
    my @chunks = map { $json->decode($_) } grep { $_ ne '[DONE]' } @$ev;
    my $streamed = join '', map { $_->{choices}[0]{text} // '' } @chunks;
    is($streamed, substr($text, 0, $at), 'stream with stop: same text');
    ok(!grep({ index($_->{choices}[0]{text} // '', $stop) >= 0 } @chunks),
       'stream with stop: no chunk holds the stop string');
    is($chunks[-1]{choices}[0]{finish_reason}, 'stop',
       'stream with stop: finish_reason stop');
}

# streaming completions with include_usage
{
    my $c = connect_to($sock);
    print $c request_bytes('POST', '/v1/completions', $json->encode(
        { %$creq, stream => JSON::PP::true,
          stream_options => { include_usage => JSON::PP::true } }));
    my $h = read_head($c);
    is($h->{status}, 200, 'stream: 200');
    like($h->{headers}{'content-type'}, qr{^text/event-stream},
         'stream: event-stream');
    is($h->{headers}{'transfer-encoding'}, 'chunked', 'stream: chunked');
    my ($ev, $rest) = read_events($c);
    close $c;
    is($rest, '', 'stream: nothing outside data: events');
    is($ev->[-1], '[DONE]', 'stream: ends with data: [DONE]');
    my @chunks = map { $json->decode($_) } @$ev[0 .. $#$ev - 1];
    my $usage = pop @chunks;
    is_deeply($usage->{choices}, [], 'usage chunk has no choices');
    is_deeply($usage->{usage}, $u, 'usage chunk = non-streamed usage');
    my $last = $chunks[-1];
    is($last->{choices}[0]{finish_reason}, $fin, 'finish chunk');
    ok(!grep({ defined $_->{choices}[0]{finish_reason} }
             @chunks[0 .. $#chunks - 1]),
       'only the finish chunk has a finish_reason');
    is(join('', map { $_->{choices}[0]{text} } @chunks), $text,
       'streamed text = non-streamed text');
    ok(!grep({ $_->{object} ne 'text_completion' } @chunks),
       'chunk object text_completion');
}

# chat completions
my $msgs = [ { role => 'system', content => 'be brief' },
             { role => 'user', content => 'hello' } ];
$r = post($sock, '/v1/chat/completions',
          { messages => $msgs, max_tokens => 6, temperature => 0 });
is($r->{status}, 200, 'chat 200') or diag $r->{body};
my $chat = $r->{json};
is($chat->{object}, 'chat.completion', 'chat object');
like($chat->{id}, qr/^chatcmpl-/, 'chat id');
is($chat->{choices}[0]{message}{role}, 'assistant', 'assistant message');
ok(defined $chat->{choices}[0]{message}{content}, 'chat content');
ok($chat->{usage}{prompt_tokens} > $u->{prompt_tokens},
   'chat prompt tokens include the template');
is($chat->{usage}{total_tokens},
   $chat->{usage}{prompt_tokens} + $chat->{usage}{completion_tokens},
   'chat usage total');

$r = post($sock, '/v1/chat/completions',
          { messages => [ $msgs->[0], { role => 'user', content =>
              [ { type => 'text', text => 'hel' },
                { type => 'text', text => 'lo' } ] } ],
            max_tokens => 6, temperature => 0 });
is($r->{json}{choices}[0]{message}{content},
   $chat->{choices}[0]{message}{content},
   'text parts are joined like a string content');

{
    my $c = connect_to($sock);
    print $c request_bytes('POST', '/v1/chat/completions', $json->encode(
        { messages => $msgs, max_tokens => 6, temperature => 0,
          stream => JSON::PP::true,
          stream_options => { include_usage => JSON::PP::true } }));
    my $h = read_head($c);
    my ($ev) = read_events($c);
    close $c;
    is($ev->[-1], '[DONE]', 'chat stream ends with [DONE]');
    my @chunks = map { $json->decode($_) } @$ev[0 .. $#$ev - 1];
    is($chunks[0]{choices}[0]{delta}{role}, 'assistant',
       'chat stream: role chunk first');
    my $usage = pop @chunks;
    is_deeply($usage->{usage}, $chat->{usage}, 'chat stream usage');
    is($chunks[-1]{choices}[0]{finish_reason},
       $chat->{choices}[0]{finish_reason}, 'chat stream finish');
    is(join('', map { $_->{choices}[0]{delta}{content} // '' } @chunks),
       $chat->{choices}[0]{message}{content}, 'chat stream text');
    ok(!grep({ $_->{object} ne 'chat.completion.chunk' } @chunks),
       'chunk object chat.completion.chunk');
}

# embeddings
$r = post($sock, '/v1/embeddings', { input => [ 'hello world', 'abc' ],
                                     model => 'tiny' });
is($r->{status}, 200, 'embeddings 200') or diag $r->{body};
is($r->{json}{object}, 'list', 'embeddings object');
is(scalar @{ $r->{json}{data} }, 2, 'one embedding per input');
for my $i (0, 1) {
    my $e = $r->{json}{data}[$i];
    is($e->{index}, $i, "embedding $i index");
    is(scalar @{ $e->{embedding} }, $dim, "embedding $i has the model dim");
    my $n2 = 0;
    $n2 += $_ * $_ for @{ $e->{embedding} };
    ok(abs(sqrt($n2) - 1) < 1e-3, "embedding $i has unit L2 norm");
}
ok($r->{json}{usage}{prompt_tokens} > $u->{prompt_tokens},
   'embeddings usage counts every input');
my $single = post($sock, '/v1/embeddings', { input => 'hello world' });
is_deeply($single->{json}{data}[0]{embedding}, $r->{json}{data}[0]{embedding},
          'the same input gives the same embedding');

# /metrics moves
{
    my $re = 'llmcache_worker_requests_total\{endpoint="/v1/completions",'
           . 'status="200"\}';
    my $before = metric($sock, $re);
    my $gen = metric($sock, 'llmcache_worker_generated_tokens_total');
    my $p = post($sock, '/v1/completions', $creq);
    is(metric($sock, $re), $before + 1, 'metrics: completions 200 counted');
    is(metric($sock, 'llmcache_worker_generated_tokens_total'),
       $gen + $p->{json}{usage}{completion_tokens},
       'metrics: generated tokens counted');
    my $m = call($sock, 'GET', '/metrics');
    like($m->{headers}{'content-type'}, qr{^text/plain}, 'metrics text/plain');
    for my $name (qw(prompt_tokens_total prefill_seconds_total
                     decode_seconds_total prefill_tokens_per_second
                     decode_tokens_per_second)) {
        like($m->{body}, qr/^llmcache_worker_$name \d/m, "metric $name");
    }
    ok(metric($sock, 'llmcache_worker_decode_tokens_per_second') > 0,
       'decode tokens/s gauge is set');
}

# --- bad input: 4xx JSON errors, and the worker goes on ---------------------

{
    my $c = connect_to($sock);
    print $c "GARBAGE\r\n\r\n";
    my $e = read_response($c);
    is_error($e, 400, 'malformed request line');
    is($e->{headers}{connection}, 'close', 'malformed: Connection: close');
    my $more = <$c>;
    ok(!defined $more, 'malformed: the connection is closed');
    close $c;
    still_serving($sock, 'malformed HTTP');
}
{
    my $c = connect_to($sock);
    print $c "POST /v1/completions HTTP/1.1\r\nHost: w\r\n"
           . "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    is_error(read_response($c), 400, 'Content-Length with chunked');
    close $c;
}
is_error(call($sock, 'POST', '/v1/completions', '{"prompt": "x",'), 400,
         'bad JSON');
is_error(call($sock, 'POST', '/v1/completions', '[1,2]'), 400,
         'JSON that is not an object');
still_serving($sock, 'bad JSON');
is(is_error(post($sock, '/v1/completions', { prompt => 'x', n => 2 }), 400,
            'n = 2')->{param}, 'n', 'n = 2: param names it');
is(is_error(post($sock, '/v1/completions', { prompt => 'x', echo =>
            JSON::PP::true }), 400, 'echo')->{param}, 'echo',
   'echo: param names it');
is(is_error(post($sock, '/v1/completions', { prompt => 'x', max_tokens =>
            'ten' }), 400, 'max_tokens a string')->{param}, 'max_tokens',
   'max_tokens: param names it');
is_error(post($sock, '/v1/completions', { prompt => 'x', temperature => 5 }),
         400, 'temperature out of range');
is_error(post($sock, '/v1/completions', { max_tokens => 3 }), 400,
         'no prompt');
is_error(post($sock, '/v1/chat/completions', { messages => [] }), 400,
         'empty messages');
is_error(post($sock, '/v1/chat/completions',
              { messages => [ { role => 'user', content =>
                  [ { type => 'image_url', image_url => {} } ] } ] }),
         400, 'image part');
is_error(post($sock, '/v1/embeddings', { input => [ 1, 2 ] }), 400,
         'token array input');
{
    my $long = join ' ', ('hello world') x 700;
    my $e = is_error(post($sock, '/v1/completions', { prompt => $long }),
                     400, 'prompt longer than the context');
    like($e->{message}, qr/\b1024\b/, 'the message names the context');
    like($e->{message}, qr/\b\d{4,}\b.*\b\d{4,}\b/,
         'the message names the prompt length too');
    is($e->{code}, 'context_length_exceeded', 'context_length_exceeded');
    still_serving($sock, 'a too long prompt');
}
{
    # max_tokens beyond the context is clipped, not refused
    my $p = post($sock, '/v1/completions', { %$creq, max_tokens => 1 << 20,
                                             stop => 'a' });
    is($p->{status}, 200, 'max_tokens beyond the context is clipped');
}
my $e405 = call($sock, 'GET', '/v1/completions');
is_error($e405, 405, 'wrong method');
is($e405->{headers}{allow}, 'POST', '405 says Allow: POST');
is_error(call($sock, 'POST', '/health', '{}'), 405, 'POST /health');
is_error(call($sock, 'GET', '/v1/nothing'), 404, 'unknown endpoint');
is_error(call($sock, 'POST', '/v1/completions', 'x' x 70000), 413,
         'body over --max-body');
still_serving($sock, 'the 4xx answers');

# --- HTTP framing ------------------------------------------------------------

{
    # pipelined requests on one keep-alive connection, answered in order
    my $c = connect_to($sock);
    print $c request_bytes('POST', '/v1/completions', $json->encode($creq))
           . request_bytes('GET', '/health')
           . request_bytes('POST', '/v1/completions',
                           $json->encode({ %$creq, max_tokens => 3 }));
    my @r = map { read_response($c) } 1 .. 3;
    is($r[0]{json}{choices}[0]{text}, $text, 'pipelined 1: completion');
    is($r[1]{json}{status}, 'ok', 'pipelined 2: health');
    is($r[2]{json}{usage}{completion_tokens} <= 3 ? 1 : 0, 1,
       'pipelined 3: completion');
    close $c;
}
{
    # a chunked request body, then Expect: 100-continue
    my $body = $json->encode($creq);
    my $c = connect_to($sock);
    print $c "POST /v1/completions HTTP/1.1\r\nHost: w\r\n"
           . "Transfer-Encoding: chunked\r\n\r\n"
           . sprintf("%x\r\n%s\r\n", 5, substr($body, 0, 5))
           . sprintf("%x\r\n%s\r\n0\r\n\r\n", length($body) - 5,
                     substr($body, 5));
    is(read_response($c)->{json}{choices}[0]{text}, $text,
       'chunked request body');
    print $c "POST /v1/completions HTTP/1.1\r\nHost: w\r\n"
           . "Expect: 100-continue\r\nContent-Length: " . length($body)
           . "\r\n\r\n";
    my $h = read_head($c);
    is($h->{status}, 100, 'Expect: 100-continue answered');
    print $c $body;
    is(read_response($c)->{json}{choices}[0]{text}, $text,
       'the body after 100 Continue');
    close $c;
}
{
    # HTTP/1.0: streamed without chunked framing, connection closed
    my $c = connect_to($sock);
    my $body = $json->encode({ %$creq, stream => JSON::PP::true });
    print $c "POST /v1/completions HTTP/1.0\r\nConnection: keep-alive\r\n"
           . "Content-Length: " . length($body) . "\r\n\r\n$body";
    my $resp = read_response($c);
    ok(!defined $resp->{headers}{'transfer-encoding'},
       'HTTP/1.0 stream: no chunked');
    is($resp->{headers}{connection}, 'close',
       'HTTP/1.0 stream: closed at its end, keep-alive or not');
    like($resp->{body}, qr/data: \[DONE\]\n\n$/, 'HTTP/1.0 stream ends');
    close $c;
}

{
    # a request that stops arriving half-way gets 408; an idle
    # keep-alive connection is left alone
    my $idle = connect_to($sock);
    my $c = connect_to($sock);
    print $c "POST /v1/completions HTTP/1.1\r\nHost: w\r\n"
           . "Content-Length: 10\r\n\r\n{";
    my $t0 = time;
    my $e = read_response($c);
    is_error($e, 408, 'a request that stops half-way');
    ok(time - $t0 >= 1, '408 after --request-timeout 1');
    close $c;
    sleep 1.2 if time - $t0 < 2.2;
    print $idle request_bytes('GET', '/health');
    my $h = read_response($idle);
    is($h->{status}, 200, 'an idle connection outlives the timeout');
    close $idle;
}

# --- a client that disconnects mid-stream; a full queue ---------------------

my $long = { prompt => 'hello world', max_tokens => 900, temperature => 0 };
my $full = post($sock, '/v1/completions', $long);
SKIP: {
    skip 'the greedy text stops early; no long generation to cut', 6
        unless $full->{json}{usage}{completion_tokens} == 900;
    my $aborts = metric($sock, 'llmcache_worker_client_aborts_total');
    my $gen = metric($sock, 'llmcache_worker_generated_tokens_total');

    my $a = connect_to($sock);
    print $a request_bytes('POST', '/v1/completions',
                           $json->encode({ %$long, stream => JSON::PP::true }));
    read_head($a);
    ok(defined read_chunk($a), 'long stream started');

    # the stream runs; one request may wait, the next is refused
    my $b = connect_to($sock);
    print $b request_bytes('POST', '/v1/completions', $json->encode($creq));
    sleep 0.2;
    my $q = call($sock, 'POST', '/v1/completions', $json->encode($creq));
    is_error($q, 503, 'a full queue answers 503');
    is($q->{json}{error}{code}, 'queue_full', '503: queue_full');

    close $a;   # gone mid-stream
    my $rb = read_response($b);
    is($rb->{json}{choices}[0]{text}, $text,
       'the queued request is served after the disconnect');
    close $b;
    is(metric($sock, 'llmcache_worker_client_aborts_total'), $aborts + 1,
       'the disconnect stopped the generation');
    ok(metric($sock, 'llmcache_worker_generated_tokens_total') - $gen
       < 900 + 12, 'fewer tokens were generated than asked');
}
still_serving($sock, 'a disconnect mid-stream');

# --- graceful stop -----------------------------------------------------------

{
    my $pid = delete $workers{$sock};
    kill 'TERM', $pid;
    my $t0 = time;
    my $gone;
    while (time - $t0 < 10) {
        if (waitpid($pid, WNOHANG) == $pid) { $gone = $?; last }
        sleep 0.05;
    }
    is($gone, 0, 'SIGTERM: the worker exits with status 0');
    ok(!-e $sock, 'SIGTERM: the socket file is removed');
}

# --- the real tiny model: greedy output equals the reference ---------------

SKIP: {
    my $gguf = "$shared/models/aidreams260K.gguf";
    my $golden = "$shared/golden/aidreams260K.md";
    my $ckpt = "$shared/models/aidreams260K.bin";
    my $tok = "$shared/models/tok512.bin";
    skip "$gguf or $golden is absent", 5 unless -r $gguf && -r $golden;
    my $g = do { local (@ARGV, $/) = $golden; <> };
    my @cases = $g =~ /^## prompt: "([^"]*)"\ntext: ([^\n]*)$/mg;
    ok(@cases >= 4, 'golden cases found') or skip 'no golden cases', 4;
    my @servers = ([ 'GGUF', start_worker('golden', '--model', $gguf) ]);
    push @servers, [ 'llama2.c', start_worker('golden-l2c', '--model', $ckpt,
                                               '--tokenizer', $tok) ]
        if -r $ckpt && -r $tok;
    for my $sv (@servers) {
        my ($kind, $s2) = @$sv;
        for (my $i = 0; $i < @cases; $i += 2) {
            my ($prompt, $want) = @cases[$i, $i + 1];
            # 100 positions from the first prompt token: BOS + prompt + rest
            my $p = post($s2, '/v1/completions',
                         { prompt => $prompt, max_tokens => 1,
                           temperature => 0 })->{json}{usage}{prompt_tokens};
            my $out = post($s2, '/v1/completions',
                           { prompt => $prompt, max_tokens => 101 - $p,
                             temperature => 0 });
            is($prompt . $out->{json}{choices}[0]{text}, $want,
               "aidreams260K ($kind) greedy: \"$prompt\"");
        }
    }
}

# --- a BERT encoder: embeddings only ---------------------------------------

{
    my $bert = "$dir/bert.gguf";
    system($mkmodel, '--out', $bert, '--arch', 'bert', '--seed', '3',
           '--dim', '64', '--layers', '2', '--heads', '4', '--ffn', '128',
           '--ctx', '64', '--name', 'tiny-bert') == 0
        or BAIL_OUT("llmcache-mkmodel --arch bert failed");
    my $bs = start_worker('bert', '--model', $bert);

    my $r = post($bs, '/v1/embeddings',
                 { input => ['a short sentence', 'another one'] });
    is($r->{status}, 200, 'bert: embeddings answer 200');
    my $d = $r->{json}{data} // [];
    is(scalar @$d, 2, 'bert: one vector per input');
    my @v = @{ $d->[0]{embedding} // [] };
    is(scalar @v, 64, 'bert: vectors of the model dimension');
    my $norm = 0;
    $norm += $_ * $_ for @v;
    ok(abs(sqrt($norm) - 1) < 1e-4, 'bert: L2-normalized')
        or diag "norm " . sqrt($norm);
    ok(($r->{json}{usage}{prompt_tokens} // 0) > 0, 'bert: usage counted');
    my @w = @{ $d->[1]{embedding} // [] };
    ok(join(',', @v) ne join(',', @w), 'bert: other text, other vector');

    my $e = is_error(post($bs, '/v1/completions', { prompt => 'hi' }), 400,
                     'bert: completions refused');
    is($e->{code}, 'model_not_supported', 'bert: the code says why');
    like($e->{message}, qr/encoder/, 'bert: the message says why');
    is_error(post($bs, '/v1/chat/completions',
                  { messages => [{ role => 'user', content => 'hi' }] }),
             400, 'bert: chat refused');
    is_error(call($bs, 'POST', '/v1/schemas',
                  '<schema name="s"><module name="m">x</module></schema>'),
             400, 'bert: schemas refused');
    is_error(post($bs, '/v1/embeddings', { input => 'word ' x 200 }), 400,
             'bert: an input longer than the model embeds');
    is(post($bs, '/v1/embeddings', { input => 'still here' })->{status},
       200, 'bert: still serving');
}

alarm 0;
done_testing();
