# llmcache-worker's Prompt Cache against the real process: schemas over
# /v1/schemas, PML prompts served from stored modules against the same
# tokens evaluated in full ("cache": false), prefix reuse of plain prompts,
# the K/V budget, and a restart that reloads encoded schemas from --kv-dir.
# A random model from llmcache-mkmodel; raw HTTP/1.1 (core Perl only).
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

WorkerClient::setup('llmcache-pcache');


sub complete {
    my ($sock, $prompt, %o) = @_;
    return post($sock, '/v1/completions',
                { prompt => $prompt, max_tokens => 8, temperature => 0,
                  %o });
}

sub cached { $_[0]{json}{usage}{prompt_tokens_details}{cached_tokens} }

local $SIG{ALRM} = sub { die "timed out\n" };
local $SIG{INT} = local $SIG{TERM} = sub { die "interrupted\n" };
local $SIG{PIPE} = 'IGNORE';
alarm 300;

my $model = "$dir/tiny.gguf";
system($mkmodel, '--out', $model, '--seed', '5', '--dim', '64',
       '--layers', '2', '--heads', '4', '--kv-heads', '2', '--ffn', '128',
       '--ctx', '2048', '--name', 'tiny') == 0
    or BAIL_OUT("llmcache-mkmodel failed");
my $kvdir = "$dir/kv";
my $sock = start_worker('main', '--model', $model, '--kv-dir', $kvdir);

# --- schemas ---------------------------------------------------------------

my $schema = <<'PML';
<schema name="doc-qa">You answer questions about documents.
<module name="doc1">Document one: the cat sat on the mat and looked at the
birds in the garden.</module>
<module name="doc2">Document two: the river runs to the sea past three
old mills.</module>
<union>
  <module name="short">Answer briefly.</module>
  <module name="long">Answer at length, for <parameter name="who" length="12"/>.</module>
</union>
Question:</schema>
PML

my $r = call($sock, 'POST', '/v1/schemas', $schema);
is($r->{status}, 200, 'POST /v1/schemas') or diag $r->{body};
my $s = $r->{json};
is($s->{name}, 'doc-qa', 'schema name');
is($s->{mode}, 'scaffold', 'default mode scaffold');
is_deeply([ map { $_->{name} } @{ $s->{modules} } ],
          [ '', 'doc1', 'doc2', 'short', 'long' ], 'modules in order');
ok(!grep({ $_->{tokens} <= 0 } @{ $s->{modules} }), 'every module has tokens');
my $total = 0;
$total += $_->{tokens} for @{ $s->{modules} };
is($s->{tokens}, $total, 'total tokens');
is($s->{modules}[3]{start}, $s->{modules}[4]{start},
   'union members share a start');
ok($s->{encode_ms} > 0, "encode time reported ($s->{encode_ms} ms)");

$r = call($sock, 'GET', '/v1/schemas');
is($r->{status}, 200, 'GET /v1/schemas');
my $bpt = $r->{json}{kv}{bytes_per_token};
ok($bpt > 0, "bytes per token ($bpt)");
is($r->{json}{data}[0]{bytes}, $total * $bpt, 'bytes = tokens x bytes/token');
is($r->{json}{kv}{used_bytes}, $total * $bpt, 'used bytes');
is($r->{json}{kv}{budget_bytes}, 1 << 30, 'default budget 1G');
is(call($sock, 'GET', '/v1/schemas/doc-qa')->{json}{name}, 'doc-qa',
   'GET one schema');
is_error(call($sock, 'GET', '/v1/schemas/nope'), 404, 'GET unknown schema');
is(call($sock, 'PUT', '/v1/schemas', 'x')->{status}, 405, 'PUT: 405');

my $e = is_error(call($sock, 'POST', '/v1/schemas',
                      '<schema name="x"><module name="a">'), 400,
                 'bad XML');
like($e->{message}, qr/line 1/, 'bad XML: the parser says where');
$e = is_error(call($sock, 'POST', '/v1/schemas',
                   '<schema name="x"><module name="a">1</module>'
                   . '<module name="a">2</module></schema>'), 400,
              'duplicate names');
like($e->{message}, qr/duplicate/, 'duplicate names: says so');
$e = is_error(call($sock, 'POST', '/v1/schemas',
                   '<schema name="x"><module name="a" src="a.txt"/>'
                   . '</schema>'), 400, 'src= over HTTP');
like($e->{message}, qr/llmcache schema push/, 'src=: what to use instead');
is_error(call($sock, 'POST', '/v1/schemas', ''), 400, 'empty body');

# --- PML prompts -----------------------------------------------------------

my $pml = '<prompt schema="doc-qa"><doc1/><doc2/><short/> Where is the cat?'
        . '</prompt>';
my $c1 = complete($sock, $pml);
is($c1->{status}, 200, 'PML completion') or diag $c1->{body};
my $c0 = complete($sock, $pml, cache => JSON::PP::false);
is($c0->{status}, 200, 'PML completion, "cache": false');
is($c1->{json}{choices}[0]{text}, $c0->{json}{choices}[0]{text},
   'same text with and without stored modules');
my $mods = $s->{modules}[0]{tokens} + $s->{modules}[1]{tokens}
         + $s->{modules}[2]{tokens} + $s->{modules}[3]{tokens};
is(cached($c1), $mods, "cached tokens = the modules' tokens ($mods)");
is(cached($c0), 0, 'no cached tokens without the cache');
is($c1->{json}{usage}{prompt_tokens}, $c0->{json}{usage}{prompt_tokens},
   'same prompt tokens');
ok($c1->{json}{usage}{prompt_tokens} > $mods, 'the question adds tokens');
my $t = $c1->{json}{timings};
ok(defined $t->{prefill_ms} && defined $t->{ttft_ms}
   && $t->{ttft_ms} >= $t->{prefill_ms}, 'timings: prefill and ttft');
is($t->{cached_tokens}, $mods, 'timings: cached tokens');

# an argument in the slot, the other union member
my $arg = '<prompt schema="doc-qa"><doc2/><long who="kids"/> Why?</prompt>';
$c1 = complete($sock, $arg);
$c0 = complete($sock, $arg, cache => JSON::PP::false);
is($c1->{status}, 200, 'union member with an argument');
ok(cached($c1) > 0, 'cached tokens ' . cached($c1));

# chat: the last user message is the prompt
my $chat = post($sock, '/v1/chat/completions',
                { messages => [ { role => 'user', content => $pml } ],
                  max_tokens => 4, temperature => 0 });
is($chat->{status}, 200, 'PML in a chat message');
is(cached($chat), $mods, 'chat: cached tokens');
is_error(post($sock, '/v1/chat/completions',
              { messages => [ { role => 'system', content => 'be brief' },
                              { role => 'user', content => $pml } ] }),
         400, 'PML with other chat messages');

# streamed: the finish chunk carries the timings
{
    my $c = connect_to($sock);
    print $c request_bytes('POST', '/v1/completions', $json->encode(
        { prompt => $pml, max_tokens => 4, temperature => 0,
          stream => JSON::PP::true }));
    my $h = read_head($c);
    my ($ev) = read_events($c);
    close $c;
    my $fin = $json->decode($ev->[-2]);
    is($fin->{timings}{cached_tokens}, $mods, 'stream: timings at the end');
}

$e = is_error(complete($sock, '<prompt schema="nope"><a/></prompt>'), 404,
              'unknown schema');
like($e->{message}, qr/nope/, 'unknown schema named');
$e = is_error(complete($sock, '<prompt schema="doc-qa"><long who="'
                       . ('a very long argument ' x 10) . '"/></prompt>'),
              400, 'argument too long');
is_error(complete($sock, '<prompt schema="doc-qa"><nosuch/></prompt>'), 400,
         'unknown module');
is_error(complete($sock, '<prompt schema="doc-qa"><doc1>'), 400,
         'bad prompt XML');

# independent mode
my $ind = $schema;
$ind =~ s/name="doc-qa"/name="ind" mode="independent"/;
$r = call($sock, 'POST', '/v1/schemas', $ind);
is($r->{json}{mode}, 'independent', 'independent schema');
(my $ipml = $pml) =~ s/doc-qa/ind/;
$c1 = complete($sock, $ipml);
$c0 = complete($sock, $ipml, cache => JSON::PP::false);
is($c1->{json}{choices}[0]{text}, $c0->{json}{choices}[0]{text},
   'independent: same text as the block-diagonal prefill');
ok(cached($c1) > 0, 'independent: cached tokens');

# re-posting a name replaces the schema
(my $v2 = $ind) =~ s/<module name="doc2">/<module name="doc3">/;
$r = call($sock, 'POST', '/v1/schemas', $v2);
is($r->{json}{modules}[2]{name}, 'doc3', 're-posted schema replaced');
is(scalar @{ call($sock, 'GET', '/v1/schemas')->{json}{data} }, 2,
   'still two schemas');
is(call($sock, 'DELETE', '/v1/schemas/ind')->{status}, 200, 'DELETE');
is_error(call($sock, 'DELETE', '/v1/schemas/ind'), 404, 'DELETE again');
ok(!-e "$kvdir/ind.pcache", 'its file is gone');
ok(-e "$kvdir/doc-qa.pcache", 'the other file stays');

ok(metric($sock, 'llmcache_worker_pcache_hits_total') > 0, 'metrics: hits');
is(metric($sock, 'llmcache_worker_pcache_schemas'), 1, 'metrics: schemas');

# --- prefix reuse ----------------------------------------------------------

my $sys = join ' ', map { "rule $_: be kind to robots." } 1 .. 30;
my $p1 = complete($sock, "$sys Question: first?");
my $p2 = complete($sock, "$sys Question: second?");
my $p3 = complete($sock, "$sys Question: second?", cache => JSON::PP::false);
is(cached($p1), 0, 'prefix: nothing to reuse the first time');
ok(cached($p2) > 128, 'prefix reused the second time (' . cached($p2) . ')');
ok(cached($p2) < $p2->{json}{usage}{prompt_tokens},
   'prefix: the new question is evaluated');
is(cached($p3), 0, 'prefix: not with "cache": false');
is($p2->{json}{choices}[0]{text}, $p3->{json}{choices}[0]{text},
   'prefix: same text as without reuse');
my $p4 = complete($sock, "$sys Question: second?");
is(cached($p4), $p4->{json}{usage}{prompt_tokens},
   'the same prompt again: every token reused, its logits kept');
is($p4->{json}{choices}[0]{text}, $p3->{json}{choices}[0]{text},
   '... and the same text');
# another prompt in between: the kept logits are its own now, so the
# earlier prompt is evaluated again past the prefix they share
my $p5 = complete($sock, "$sys Question: third?");
is($p5->{json}{choices}[0]{text},
   complete($sock, "$sys Question: third?", cache => JSON::PP::false)
       ->{json}{choices}[0]{text}, 'another prompt: its own text');
my $p6 = complete($sock, "$sys Question: second?");
ok(cached($p6) > 128 && cached($p6) < $p6->{json}{usage}{prompt_tokens} - 1,
   'the earlier prompt after another: its shared prefix reused, the rest '
   . 'evaluated (' . cached($p6) . ')');
is($p6->{json}{choices}[0]{text}, $p3->{json}{choices}[0]{text},
   '... and its own text');
ok(metric($sock, 'llmcache_worker_prefix_reused_tokens_total') > 0,
   'metrics: prefix tokens');

# --- restart: the schema comes back from --kv-dir --------------------------

my $before = complete($sock, $pml);
is(stop_worker($sock), 0, 'worker stops');
$sock = start_worker('again', '--model', $model, '--kv-dir', $kvdir);
$r = call($sock, 'GET', '/v1/schemas');
is(scalar @{ $r->{json}{data} }, 1, 'one schema after the restart');
ok($r->{json}{data}[0]{loaded}, 'loaded from the directory');
is(metric($sock, 'llmcache_worker_pcache_encode_passes_total'), 0,
   'no encoding on start');
my $after = complete($sock, $pml);
is($after->{json}{choices}[0]{text}, $before->{json}{choices}[0]{text},
   'same text after the restart');
is(cached($after), $mods, 'served from the loaded modules');
is(metric($sock, 'llmcache_worker_pcache_encode_passes_total'), 0,
   'still no encoding');
stop_worker($sock);

# --- a small budget: eviction, encoding again, 413 -------------------------

$sock = start_worker('small', '--model', $model, '--kv-budget',
                     int($total * $bpt * 1.5));
is(call($sock, 'POST', '/v1/schemas', $schema)->{status}, 200,
   'small budget: first schema');
(my $other = $schema) =~ s/name="doc-qa"/name="other"/;
is(call($sock, 'POST', '/v1/schemas', $other)->{status}, 200,
   'small budget: second schema');
ok(metric($sock, "llmcache_worker_pcache_evictions_total") > 0,
   'modules evicted');
$c1 = complete($sock, $pml);
$c0 = complete($sock, $pml, cache => JSON::PP::false);
is($c1->{status}, 200, 'an evicted schema is served');
ok(metric($sock, 'llmcache_worker_pcache_misses_total') > 0,
   'by encoding again');
is($c1->{json}{choices}[0]{text}, $c0->{json}{choices}[0]{text},
   'with the same text');
ok(call($sock, 'GET', '/v1/schemas')->{json}{kv}{used_bytes}
   <= int($total * $bpt * 1.5), 'within the budget');
stop_worker($sock);

$sock = start_worker('tiny', '--model', $model, '--kv-budget', '1K');
is_error(call($sock, 'POST', '/v1/schemas', $schema), 413,
         'a schema over the budget');
stop_worker($sock);

alarm 0;
done_testing();
