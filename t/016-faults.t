# Faults under load.  Bursts of concurrent requests while Redis is killed or
# paused, the embeddings endpoint fails, dies or is slow, the upstream
# resets or truncates streams, or llmcache-worker is killed.  Every client
# gets the answer it would have got without the cache (a provider answer to
# its own prompt, or nginx's 502 when the upstream itself is gone), every
# MISS is one provider call and nothing else is, nothing is stored from an
# incomplete answer, and caching comes back by itself.

use lib 't/inc';
use LLMCacheTest;
use Test::Nginx::Socket 'no_plan';

use File::Temp ();
use IO::Select ();
use IO::Socket::INET ();
use IO::Socket::UNIX ();
use JSON::PP ();
use POSIX ();
use Time::HiRes ();

no_shuffle();
master_on();
workers(2);
worker_connections(1024);
log_level('info');

our $Json = JSON::PP->new->utf8->canonical;

our $HttpConfig = <<'_EOC_';
    llmcache_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    llmcache_redis_timeout 200ms;
_EOC_

# /v1/: exact cache; /sem/: semantic lookup with a remote embeddings
# endpoint (the mock behind a relay that can die); /s/: unbuffered
# streams; /w/: llmcache-worker
our $Config = <<'_EOC_';
    location = /t { return 200 "ok\n"; }

    location /v1/ {
        llmcache on;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
    }

    location /sem/ {
        llmcache on;
        llmcache_semantic on;
        llmcache_embedding /_embeddings;
        llmcache_embedding_model text-embedding-3-small;
        llmcache_semantic_threshold 0.7;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/;
    }

    location = /_embeddings {
        internal;
        subrequest_output_buffer_size 64k;
        proxy_read_timeout 1s;
        proxy_set_header X-Mock-Status $http_x_emb_status;
        proxy_set_header X-Mock-Delay-Ms $http_x_emb_delay;
        proxy_pass http://127.0.0.1:$TEST_NGINX_EMB_PORT/v1/embeddings;
    }

    location /s/ {
        llmcache on;
        proxy_buffering off;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT/;
    }

    location /w/ {
        llmcache on;
        add_header X-LLM-Cache $llmcache_status always;
        proxy_read_timeout 60s;
        proxy_pass http://unix:$TEST_NGINX_WORKER_SOCK:/;
    }
_EOC_
our ($RelayPid, $WorkerPid, $WorkerDir);

# --- a relay in front of the mock's /v1/embeddings: the endpoint that dies

# A process (and its per-connection children, in its own process group)
# that copies bytes between a client and the mock.  Killing the group is
# the embeddings service crashing: connections reset, the port refuses.
sub start_relay {
    my $port = shift;
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => $port, Listen => 128,
                                  ReuseAddr => 1, Proto => 'tcp')
        or die "relay: listen on $port: $!\n";
    my $pid = fork // die "fork: $!";
    if ($pid) {
        close $l;
        return $pid;
    }
    POSIX::setpgid(0, 0);
    $SIG{CHLD} = 'IGNORE';
    $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
    while (1) {
        my $c = $l->accept or next;
        my $k = fork;
        if (defined $k && $k == 0) {
            close $l;
            relay_pump($c);
            POSIX::_exit(0);
        }
        close $c;
    }
}

sub relay_pump {
    my $c = shift;
    my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $ENV{TEST_NGINX_MOCK_PORT},
                                  Proto => 'tcp', Timeout => 5)
        or return;
    my $sel = IO::Select->new($c, $u);
    local $SIG{PIPE} = 'IGNORE';
    while (my @r = $sel->can_read(60)) {
        for my $s (@r) {
            my $n = sysread $s, my $buf, 65536;
            return unless $n;
            my $to = $s == $c ? $u : $c;
            my $off = 0;
            while ($off < $n) {
                my $w = syswrite $to, $buf, $n - $off, $off;
                return unless $w;
                $off += $w;
            }
        }
    }
}

sub kill_relay {
    return unless $RelayPid;
    kill 'KILL', -$RelayPid;
    waitpid $RelayPid, 0;
    undef $RelayPid;
}

$ENV{TEST_NGINX_EMB_PORT} = LLMCacheTest::free_port();
$RelayPid = start_relay($ENV{TEST_NGINX_EMB_PORT});

# --- llmcache-worker on a generated model, when it is built ---------------

my $root = LLMCacheTest::repo_root();
if (-x "$root/build/llmcache-worker" && -x "$root/build/llmcache-mkmodel") {
    $WorkerDir = File::Temp::tempdir('llmcache-016-XXXXXX', TMPDIR => 1,
                                     CLEANUP => 1);
    system("$root/build/llmcache-mkmodel", '--out', "$WorkerDir/m.gguf",
           '--seed', '16', '--name', 'tiny') == 0
        or die "llmcache-mkmodel failed\n";
}
$ENV{TEST_NGINX_WORKER_SOCK} = ($WorkerDir // '/nonexistent') . '/w.sock';

sub worker_up {
    return unless $WorkerDir;
    my $sock = $ENV{TEST_NGINX_WORKER_SOCK};
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$WorkerDir/worker.log";
        open STDERR, '>&', \*STDOUT;
        exec "$root/build/llmcache-worker", '--model', "$WorkerDir/m.gguf",
             '--listen', "unix:$sock", '--threads', '1',
             '--max-queue', '256'
            or POSIX::_exit(127);
    }
    $WorkerPid = $pid;
    for (1 .. 600) {
        return 1 if IO::Socket::UNIX->new(Peer => $sock);
        last if waitpid($pid, POSIX::WNOHANG()) == $pid;
        Time::HiRes::sleep(0.05);
    }
    die "llmcache-worker did not start\n";
}

sub worker_down {
    return unless $WorkerPid;
    kill 'KILL', $WorkerPid;
    waitpid $WorkerPid, 0;
    undef $WorkerPid;
}

END {
    local $?;
    kill_relay();
    worker_down();
}

# --- a concurrent HTTP/1.0 client -----------------------------------------

# burst(reqs => [[PATH, BODY, {HEADERS}, ABORT], ...], conc => N,
#       at => {DONE => CODE, ...}, each => CODE)
# Sends the requests to this nginx, at most N at once, in order; when DONE
# responses have come back, CODE runs (the fault), while the rest are in
# flight; `each` is called with (INDEX, RESPONSE) as each one comes back.
# ABORT: the client closes the connection that many seconds after sending,
# without reading (status 'aborted').
# Returns one hash per request: status, h (lower-cased headers), body, err.
sub burst {
    my %o = @_;
    my @reqs = @{ $o{reqs} };
    my $conc = $o{conc} // 20;
    my $at = $o{at} // {};
    my $each = $o{each};
    my $limit = $o{timeout} // 60;
    my $port = Test::Nginx::Socket::server_port();
    my (@res, %live);
    my $sel = IO::Select->new;
    my ($next, $done) = (0, 0);
    local $SIG{PIPE} = 'IGNORE';

    my $finish = sub {
        my ($i, $r) = @_;
        $res[$i] = $r;
        $done++;
        $each->($i, $r) if $each;
        $at->{$done}->() if $at->{$done};
    };

    while ($done < @reqs) {
        while ($next < @reqs && keys %live < $conc) {
            my $i = $next++;
            my ($path, $body, $h, $abort) = @{ $reqs[$i] };
            my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                          PeerPort => $port,
                                          Proto => 'tcp', Timeout => 10);
            if (!$s) {
                $finish->($i, { status => 0, err => "connect: $!",
                                body => '', h => {} });
                next;
            }
            my $req = "POST $path HTTP/1.0\r\nHost: localhost\r\n"
                      . "Content-Type: application/json\r\n"
                      . "Content-Length: " . length($body) . "\r\n";
            $req .= "$_: $h->{$_}\r\n" for sort keys %{ $h || {} };
            $req .= "\r\n$body";
            my $off = 0;
            while ($off < length $req) {
                my $w = syswrite $s, $req, length($req) - $off, $off;
                last unless $w;
                $off += $w;
            }
            $s->blocking(0);
            $live{fileno $s} = { i => $i, s => $s, buf => '',
                                 t => Time::HiRes::time(),
                                 abort => $abort };
            $sel->add($s);
        }
        for my $s ($sel->can_read(0.05)) {
            my $c = $live{fileno $s};
            my $n = sysread $s, my $chunk, 65536;
            if ($n) {
                $c->{buf} .= $chunk;
                next;
            }
            next if !defined $n && $!{EAGAIN};
            my $err = defined $n ? undef : "read: $!";
            $sel->remove($s);
            delete $live{fileno $s};
            close $s;
            $finish->($c->{i}, parse_response($c->{buf}, $err));
        }
        my $now = Time::HiRes::time();
        for my $fd (keys %live) {
            my $c = $live{$fd};
            my $gone = $c->{abort} && $now - $c->{t} >= $c->{abort};
            next if !$gone && $now - $c->{t} < $limit;
            $sel->remove($c->{s});
            delete $live{$fd};
            close $c->{s};
            my $r = $gone ? { status => 'aborted', h => {}, body => '' }
                  : parse_response($c->{buf}, "no answer in ${limit}s");
            $finish->($c->{i}, $r);
        }
    }
    return \@res;
}

sub parse_response {
    my ($raw, $err) = @_;
    my ($head, $body) = $raw =~ /\A(.*?)\r\n\r\n(.*)\z/s
                        ? ($1, $2) : ($raw, '');
    my ($status) = $head =~ m{\AHTTP/1\.\d (\d{3})};
    my %h;
    for my $l (split /\r\n/, $head) {
        $h{lc $1} = $2 if $l =~ /^([^:]+):\s*(.*)$/;
    }
    return { status => $status // 0, h => \%h, body => $body, err => $err };
}

sub one {
    my ($path, $body, $h) = @_;
    return burst(reqs => [[$path, $body, $h]], conc => 1)->[0];
}

# --- prompts and answers ----------------------------------------------------

my @Words = qw(amber basalt cobalt dune ember fjord glacier harbor iris
               juniper kelp lagoon meadow nectar orchid prairie quartz
               reef saffron tundra umber violet willow yarrow zephyr);

# prompt(TAG, I): a prompt of its own: other words and another number than
# every other I, so neither the exact nor the semantic lookup may mix them
sub prompt {
    my ($tag, $i) = @_;
    return "$tag $Words[$i % @Words] " . $Words[($i * 7 + 3) % @Words]
           . " question number $i";
}

sub chat {
    my ($text, %extra) = @_;
    return $Json->encode({ model => 'gpt-4o',
                           messages => [{ role => 'user',
                                          content => $text }], %extra });
}

# why(RESPONSE, TEXT): '' when it is the provider's answer to TEXT
# (JSON), else what is wrong with it
sub why {
    my ($r, $text) = @_;
    return "status $r->{status}" . ($r->{err} ? " ($r->{err})" : '')
        unless $r->{status} == 200;
    my $j = eval { $Json->decode($r->{body}) }
        or return "not JSON: " . substr($r->{body}, 0, 80);
    my $got = $j->{choices}[0]{message}{content} // '';
    return "answer \"$got\" to another prompt than \"$text\""
        unless $got =~ /\Amock answer #\d+ to: \Q$text\E\z/;
    return '';
}

# sse_answer(BODY): the text of a chat completion stream and whether it
# ended with [DONE]
sub sse_answer {
    my $body = shift;
    my ($text, $done) = ('', 0);
    for my $ev (split /\n\n/, $body) {
        next unless $ev =~ /^data: (.*)$/m;
        my $d = $1;
        if ($d eq '[DONE]') {
            $done = 1;
            next;
        }
        my $j = eval { $Json->decode($d) } or next;
        $text .= $j->{choices}[0]{delta}{content} // '';
    }
    return ($text, $done);
}

# check(NAME, RESULTS, TEXTS): every answer is its prompt's own;
# returns the counts of each X-LLM-Cache value
sub check {
    my ($name, $res, $texts) = @_;
    my (%st, @bad);
    for my $i (0 .. $#$res) {
        my $r = $res->[$i];
        $st{ $r->{h}{'x-llm-cache'} // 'none' }++;
        my $w = why($r, $texts->[$i]);
        push @bad, "#$i: $w" if $w;
    }
    ok(!@bad, "$name: all " . @$res . " answered 200 with their own answer")
        or diag(join "\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
    diag("$name: " . join ' ', map { "$_=$st{$_}" } sort keys %st)
        if $ENV{TEST_VERBOSE};
    return \%st;
}

sub chat_calls { LLMCacheTest::mock_calls('/v1/chat/completions') }

sub entries {
    my @k = LLMCacheTest::redis_keys('llmc:*:e:*');
    return scalar @k;
}

# caching_back(PATH, TAG): fresh prompts until 5 in a row are MISS then HIT
# (every nginx worker has its connection back), at most 20 s
sub caching_back {
    my ($path, $tag) = @_;
    my ($row, $i) = (0, 0);
    my $until = time + 20;
    while ($row < 5 && time < $until) {
        my $text = prompt($tag, 1000 + $i++);
        my $miss = one($path, chat($text));
        my $hit = one($path, chat($text));
        if (($miss->{h}{'x-llm-cache'} // '') eq 'MISS'
            && ($hit->{h}{'x-llm-cache'} // '') eq 'HIT'
            && why($miss, $text) eq '' && $hit->{body} eq $miss->{body})
        {
            $row++;
        } else {
            $row = 0;
            Time::HiRes::sleep(0.1);
        }
    }
    return $row == 5;
}

# --- the scenarios ----------------------------------------------------------

sub redis_killed {
    my $n = 'Redis killed mid-burst';
    my @warm = map { prompt('kill', $_) } 0 .. 9;
    my @all = map { prompt('kill', $_) } 0 .. 19;
    my $r = burst(reqs => [map { ['/v1/chat/completions', chat($_)] } @warm],
                  conc => 1);
    check("$n: warm-up", $r, \@warm);
    my @texts = map { $all[$_ % 20] } 0 .. 199;
    my $stopped_at;
    $r = burst(reqs => [map { ['/v1/chat/completions', chat($_)] } @texts],
               conc => 20,
               at => { 60 => sub { LLMCacheTest::redis_ctl('stop');
                                   $stopped_at = 1 } });
    ok($stopped_at, "$n: Redis was killed while the burst ran");
    my $st = check($n, $r, \@texts);
    my $calls = chat_calls();
    is($calls, 10 + ($st->{MISS} // 0),
       "$n: one provider call per MISS, none for a HIT ($calls)");
    is(($st->{HIT} // 0) + ($st->{MISS} // 0), 200, "$n: HIT or MISS only");
    ok(($st->{HIT} // 0) >= 1, "$n: HITs before the kill ($st->{HIT})");
    # at most 60 answered + 20 in flight had started before the kill
    ok(($st->{MISS} // 0) >= 120,
       "$n: everything sent after the kill is a MISS ($st->{MISS})");

    LLMCacheTest::redis_ctl('start');
    ok(caching_back('/v1/chat/completions', 'kill-back'),
       "$n: Redis back: MISS then HIT again, without a reload");
    $r = one('/v1/chat/completions', chat($all[3]));
    is(why($r, $all[3]), '', "$n: an old prompt is answered");
}

sub redis_paused {
    my $n = 'Redis paused mid-burst';
    my @warm = map { prompt('pause', $_) } 0 .. 9;
    my @all = map { prompt('pause', $_) } 0 .. 14;
    my $r = burst(reqs => [map { ['/v1/chat/completions', chat($_)] } @warm],
                  conc => 1);
    check("$n: warm-up", $r, \@warm);
    my @texts = map { $all[$_ % 15] } 0 .. 149;
    my ($paused, $resumed);
    $r = burst(reqs => [map { ['/v1/chat/completions', chat($_)] } @texts],
               conc => 20,
               at => { 40 => sub { LLMCacheTest::redis_ctl('pause');
                                   $paused = 1 },
                       100 => sub { LLMCacheTest::redis_ctl('resume');
                                    $resumed = 1 } });
    ok($paused && $resumed, "$n: paused and resumed while the burst ran");
    my $st = check($n, $r, \@texts);
    is(chat_calls(), 10 + ($st->{MISS} // 0), "$n: one provider call per MISS");
    is(($st->{HIT} // 0) + ($st->{MISS} // 0), 150, "$n: HIT or MISS only");
    # 40 answered and 20 in flight when it stopped: 60 requests were sent
    # to a stopped Redis before the resume could happen
    ok(($st->{MISS} // 0) >= 40,
       "$n: the requests that met the paused Redis are MISSes ($st->{MISS})");

    # the entries survived the pause: every warm prompt HITs again
    my $ok = 0;
    my $until = time + 20;
    while (!$ok && time < $until) {
        my $rr = burst(reqs => [map { ['/v1/chat/completions', chat($_)] }
                                @warm], conc => 5);
        $ok = !grep { ($rr->[$_]{h}{'x-llm-cache'} // '') ne 'HIT'
                      || why($rr->[$_], $warm[$_]) } 0 .. $#warm;
        Time::HiRes::sleep(0.2) unless $ok;
    }
    ok($ok, "$n: resumed: the stored prompts are HITs again");
}

sub redis_killed_mixed {
    my $n = 'Redis killed under streams and semantic lookups';
    my @all = map { prompt('mixed', $_) } 0 .. 19;
    my (@reqs, @texts, @stream);
    for my $i (0 .. 119) {
        my $t = $all[$i % 20];
        my $kind = $i % 3;
        push @reqs, [$kind == 0 ? '/s/v1/chat/completions'
                     : $kind == 1 ? '/sem/v1/chat/completions'
                     : '/v1/chat/completions',
                     chat($t, $kind == 0 ? (stream => JSON::PP::true) : ())];
        push @texts, $t;
        push @stream, $kind == 0;
    }
    my $killed;
    my $r = burst(reqs => \@reqs, conc => 20,
                  at => { 40 => sub { LLMCacheTest::redis_ctl('stop');
                                      $killed = 1 } });
    ok($killed, "$n: Redis was killed while the burst ran");
    my (%st, @bad);
    for my $i (0 .. $#reqs) {
        my $res = $r->[$i];
        $st{ $res->{h}{'x-llm-cache'} // 'none' }++;
        if ($stream[$i]) {
            my ($text, $done) = sse_answer($res->{body});
            push @bad, "#$i: stream: status $res->{status}, \"$text\", "
                       . "done=$done"
                unless $res->{status} == 200 && $done
                       && $text =~ /\Amock answer #\d+ to: \Q$texts[$i]\E\z/;
        } elsif (my $w = why($res, $texts[$i])) {
            push @bad, "#$i: $w";
        }
    }
    ok(!@bad, "$n: all 120 answered 200 with their own answer")
        or diag(join "\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
    is(chat_calls(), $st{MISS} // 0, "$n: one provider call per MISS");
    is(($st{HIT} // 0) + ($st{MISS} // 0) + ($st{SEMANTIC} // 0), 120,
       "$n: HIT, SEMANTIC or MISS only");
    LLMCacheTest::redis_ctl('start');
    ok(caching_back('/v1/chat/completions', 'mixed-back'),
       "$n: Redis back: MISS then HIT again");
}

sub redis_garbage {
    my $n = 'Redis answering errors under load';
    my @all = map { prompt('garbage', $_) } 0 .. 9;
    my @texts = map { $all[$_ % 10] } 0 .. 99;
    my $r = burst(reqs => [map { ['/v1/chat/completions', chat($_)] }
                           @texts], conc => 20);
    my $st = check($n, $r, \@texts);
    is($st->{MISS}, 100, "$n: every request a MISS");
    is(chat_calls(), 100, "$n: ... from the provider");
}

# embeddings(NAME, TAG, HEADERS, AT): a burst on the semantic location
sub embeddings {
    my ($n, $tag, $h, $at, $count) = @_;
    $count //= 60;
    my @all = map { prompt($tag, $_) } 0 .. 14;
    my @texts = map { $all[$_ % 15] } 0 .. $count - 1;
    my $r = burst(reqs => [map { ['/sem/v1/chat/completions', chat($_), $h] }
                           @texts],
                  conc => 20, at => $at);
    my $st = check($n, $r, \@texts);
    is(chat_calls(), $st->{MISS} // 0, "$n: one provider call per MISS");
    # a SEMANTIC hit can only be the prompt's own entry, found by its
    # vector before the exact lookup saw it (check() compared the texts)
    is(($st->{HIT} // 0) + ($st->{MISS} // 0) + ($st->{SEMANTIC} // 0),
       $count, "$n: HIT, SEMANTIC or MISS only");
    ok(LLMCacheTest::mock_calls('/v1/embeddings') >= 1,
       "$n: the embeddings endpoint was asked");
    return $st;
}

sub embeddings_500 {
    my $n = 'embeddings answering 500';
    my $st = embeddings($n, 'e500', { 'X-Emb-Status' => 500 });
    ok(($st->{MISS} // 0) >= 15, "$n: each prompt went to the provider");
}

sub embeddings_slow {
    my $n = 'embeddings slower than their timeout';
    my $t0 = time;
    embeddings($n, 'eslow', { 'X-Emb-Delay' => 3000 }, undef, 40);
    # the provider answers, not after the slow endpoint: 40 requests at
    # 20 at once wait for the 1 s proxy_read_timeout about twice (not a
    # bound under valgrind)
    ok($ENV{TEST_NGINX_USE_VALGRIND} || time - $t0 < 30,
       "$n: answered without waiting for the endpoint");
}

sub embeddings_dying {
    my $n = 'embeddings endpoint killed mid-burst';
    # a semantic hit works through the relay first (another pair when a
    # slow first store missed it, as under valgrind)
    my $sem = '';
    for my $thing (qw(router modem laptop tablet printer)) {
        one('/sem/v1/chat/completions',
            chat("How do I reset my $thing password"));
        my $r = one('/sem/v1/chat/completions',
                    chat("how can I reset my $thing password?"));
        $sem = $r->{h}{'x-llm-cache'} // '';
        last if $sem eq 'SEMANTIC';
    }
    is($sem, 'SEMANTIC', "$n: SEMANTIC through the relay");
    LLMCacheTest::mock_reset();
    my $killed;
    embeddings($n, 'edie', {},
               { 15 => sub { kill_relay(); $killed = 1 } }, 80);
    ok($killed, "$n: the endpoint died while the burst ran");
    my $r = one('/sem/v1/chat/completions', chat('What is an ember fjord?'));
    is(why($r, 'What is an ember fjord?'), '', "$n: endpoint gone: answered");
    is($r->{h}{'x-llm-cache'}, 'MISS', "$n: ... as a MISS");
    $RelayPid = start_relay($ENV{TEST_NGINX_EMB_PORT});
}

sub streams_cut {
    my $n = 'streams reset or truncated by the upstream';
    my @texts = map { prompt('cut', $_) } 0 .. 11;
    my (@reqs, @kind);
    for my $k (0 .. 3) {
        for my $i (0 .. $#texts) {
            my $h = $k % 2
                ? { 'X-Mock-Stream-Truncate' => 1 }
                : { 'X-Mock-Reset-After' => 120 + 37 * $i + $k };
            push @reqs, ['/s/v1/chat/completions',
                         chat($texts[$i], stream => JSON::PP::true), $h];
            push @kind, [$i, $h];
        }
    }
    my $r = burst(reqs => \@reqs, conc => 16);
    my (%st, @bad);
    for my $j (0 .. $#$r) {
        my ($res, ($i, $h)) = ($r->[$j], @{ $kind[$j] });
        $st{ $res->{h}{'x-llm-cache'} // 'none' }++;
        my $call = $res->{h}{'x-mock-call'};
        if ($res->{status} != 200 || !$call) {
            push @bad, "#$j: status $res->{status}, call " . ($call // '-');
            next;
        }
        my $sent = LLMCacheTest::mock_get("/__sent?n=$call");
        push @bad, "#$j: " . length($res->{body}) . " bytes, the provider "
                   . "sent " . length($sent) if $res->{body} ne $sent;
        my ($text, $done) = sse_answer($res->{body});
        if ($h->{'X-Mock-Reset-After'}) {
            push @bad, "#$j: not cut at $h->{'X-Mock-Reset-After'}"
                if length $res->{body} != $h->{'X-Mock-Reset-After'};
        } elsif ($done || $text !~ /\Amock answer #$call to: \Q$texts[$i]\E\z/) {
            push @bad, "#$j: truncated stream: \"$text\" done=$done";
        }
    }
    ok(!@bad, "$n: every client got the bytes the provider sent")
        or diag(join "\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
    is($st{MISS}, scalar @reqs, "$n: all MISS");
    is(chat_calls(), scalar @reqs, "$n: each one a provider call");
    is(entries(), 0, "$n: nothing stored");

    # the next identical request is a MISS that calls the provider, and
    # its complete stream is stored
    my $s = burst(reqs => [map { ['/s/v1/chat/completions',
                                  chat($_, stream => JSON::PP::true)] }
                           @texts], conc => 4);
    my @miss = grep { ($s->[$_]{h}{'x-llm-cache'} // '') eq 'MISS'
                      && (sse_answer($s->[$_]{body}))[1] } 0 .. $#texts;
    is(scalar @miss, scalar @texts, "$n: the next requests are complete MISSes");
    is(chat_calls(), @reqs + @texts, "$n: ... each a provider call");
    my $h = one('/s/v1/chat/completions', chat($texts[5]));
    is($h->{h}{'x-llm-cache'}, 'HIT', "$n: then a HIT");
    is(why($h, $texts[5]), '', "$n: ... with its answer");
}

sub worker_killed {
    my $n = 'llmcache-worker killed mid-burst';
    SKIP: {
        skip "$n: build/llmcache-worker is not built", 6 unless $WorkerDir;
        worker_up();
        my $req = sub {
            $Json->encode({ model => 'tiny', prompt => shift,
                            max_tokens => 16, temperature => 0 });
        };
        my @warm = map { prompt('warm', $_) } 0 .. 9;
        my @new = map { prompt('new', $_) } 0 .. 29;
        my $w = burst(reqs => [map { ['/w/v1/completions', $req->($_)] }
                               @warm], conc => 1);
        my %body;
        $body{ $warm[$_] } = $w->[$_]{body} for 0 .. $#warm;
        is(scalar(grep { $_->{status} == 200
                         && $_->{h}{'x-llm-cache'} eq 'MISS' } @$w), 10,
           "$n: warm-up from the worker");
        my @texts;
        for my $i (0 .. 29) {
            push @texts, $new[$i];
            push @texts, $warm[$i % 10] if $i % 3 == 0;
        }
        # the kill: once 3 answers of the worker have come back
        my ($answered, $killed) = (0, 0);
        my $r = burst(reqs => [map { ['/w/v1/completions', $req->($_)] }
                               @texts], conc => 10,
                      each => sub {
                          my ($i, $res) = @_;
                          return if $killed || $body{ $texts[$i] }
                                    || $res->{status} != 200;
                          if (++$answered == 3) {
                              worker_down();
                              $killed = 1;
                          }
                      });
        ok($killed, "$n: killed while the burst ran");
        my (@bad, %got);
        my ($ok200, $n502, $cut) = (0, 0, 0);
        for my $j (0 .. $#texts) {
            my ($t, $res) = ($texts[$j], $r->[$j]);
            if ($body{$t}) {
                push @bad, "#$j: cached prompt: status $res->{status} "
                           . ($res->{h}{'x-llm-cache'} // '-')
                    unless $res->{status} == 200
                           && $res->{h}{'x-llm-cache'} eq 'HIT'
                           && $res->{body} eq $body{$t};
            } elsif ($res->{status} == 200) {
                # a 200 cut short by the kill reaches the client as it was
                # sent, and must not be stored
                my $j2 = eval { $Json->decode($res->{body}) };
                push @bad, "#$j: a 200 that is not a MISS"
                    unless $res->{h}{'x-llm-cache'} eq 'MISS';
                if ($j2 && defined $j2->{choices}[0]{text}) {
                    $got{$t} = $res->{body};
                    $ok200++;
                } else {
                    $cut++;
                }
            } elsif ($res->{status} == 502) {
                $n502++;
            } else {
                push @bad, "#$j: status $res->{status}";
            }
        }
        ok(!@bad, "$n: cached prompts HIT, the others 200 or 502")
            or diag(join "\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
        ok($n502 >= 1, "$n: requests after the kill got 502 ($n502; "
                       . "$ok200 answered before, $cut cut short)");
        is(entries(), 10 + $ok200, "$n: stored: only complete answers");

        # afterwards: the cached and the completed ones HIT, the failed
        # ones are 502 again (never an entry)
        @bad = ();
        my @after = (@warm, @new);
        my $a = burst(reqs => [map { ['/w/v1/completions', $req->($_)] }
                               @after], conc => 10);
        for my $j (0 .. $#after) {
            my ($t, $res) = ($after[$j], $a->[$j]);
            my $want = $body{$t} // $got{$t};
            if (defined $want) {
                push @bad, "$t: not the stored answer"
                    unless $res->{status} == 200
                           && $res->{h}{'x-llm-cache'} eq 'HIT'
                           && $res->{body} eq $want;
            } else {
                push @bad, "$t: status $res->{status}"
                    unless $res->{status} == 502;
            }
        }
        ok(!@bad, "$n: afterwards entries HIT, the rest 502")
            or diag(join "\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
    }
}

# clients_gone(NAME, PATH, HEADERS, ABORT, SETUP, RELEASE): 40 clients send
# and go away after ABORT seconds while their requests wait (SETUP made them
# wait; RELEASE ends the wait once they are gone); then the same prompts are
# answered as usual
sub clients_gone {
    my ($n, $path, $h, $abort, $setup, $release) = @_;
    my @texts = map { prompt('gone', $_ % 10) } 0 .. 39;
    $setup->() if $setup;
    my $r = burst(reqs => [map { [$path, chat($_), $h, $abort] } @texts],
                  conc => 40);
    is(scalar(grep { $_->{status} eq 'aborted' } @$r), 40,
       "$n: 40 clients gone before an answer")
        or diag(join ' ', map { $_->{status} } @$r);
    $release->() if $release;
    # the replies for the requests that are gone arrive now
    Time::HiRes::sleep(1.5);
    $r = burst(reqs => [map { [$path, chat($_)] } @texts], conc => 10);
    my $st = check("$n: afterwards", $r, \@texts);
    ok(caching_back($path, 'gone-back'), "$n: caching works");
}

sub gone_redis_paused {
    clients_gone('clients gone while Redis is paused', '/v1/chat/completions',
                 {}, 0.05, sub { LLMCacheTest::redis_ctl('pause') },
                 sub { LLMCacheTest::redis_ctl('resume') });
}

sub gone_upstream_slow {
    # the lock holders and the waiters both gone while the provider works
    clients_gone('clients gone while the provider is slow',
                 '/v1/chat/completions', { 'X-Mock-Delay-Ms' => 1000 }, 0.3);
}

sub gone_embeddings_slow {
    clients_gone('clients gone while the embeddings endpoint is slow',
                 '/sem/v1/chat/completions', { 'X-Emb-Delay' => 800 }, 0.3);
}

sub gone_streaming {
    my $n = 'clients gone in the middle of streams';
    my @texts = map { prompt('midstream', $_) } 0 .. 9;
    my $r = burst(reqs => [map { ['/s/v1/chat/completions',
                                  chat($_, stream => JSON::PP::true),
                                  { 'X-Mock-Stream-Delay-Ms' => 100 }, 0.25] }
                           @texts], conc => 10);
    is(scalar(grep { $_->{status} eq 'aborted' } @$r), 10,
       "$n: 10 clients gone");
    Time::HiRes::sleep(2);
    is(entries(), 0, "$n: nothing stored from streams nobody read to the end");
    $r = burst(reqs => [map { ['/s/v1/chat/completions', chat($_)] } @texts],
               conc => 5);
    my $st = check("$n: afterwards", $r, \@texts);
    is($st->{MISS}, 10, "$n: ... as MISSes");
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('http_config', $HttpConfig)
        unless defined $block->http_config;
    $block->set_value('config', $Config) unless defined $block->config;
    $block->set_value('request', 'GET /t') unless defined $block->request;
    $block->set_value('response_body', "ok\n")
        unless defined $block->response_body;
    $block->set_value('timeout', 120) unless defined $block->timeout;
    $block->set_value('no_error_log', "exited on signal\n[alert]\n[emerg]")
        unless defined $block->no_error_log;
});

add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $code = $block->then;
    return if !defined $code || $dry_run;
    eval "package main; $code; 1" or fail($block->name . ": $@");
});

run_tests();

__DATA__

=== TEST 1: Redis killed in a burst of 200 requests (20 at once), then started again
--- then
main::redis_killed();



=== TEST 2: Redis paused (SIGSTOP) in a burst of 150, then resumed
--- then
main::redis_paused();



=== TEST 3: Redis killed in a burst of streams, semantic and exact lookups
--- then
main::redis_killed_mixed();



=== TEST 4: Redis answering errors to every command, 100 requests 20 at once
--- http_config
    llmcache_redis 127.0.0.1:$TEST_NGINX_BAD_REDIS_PORT;
    llmcache_redis_timeout 200ms;
--- then
main::redis_garbage();



=== TEST 5: the embeddings endpoint answering 500 under load
--- then
main::embeddings_500();



=== TEST 6: the embeddings endpoint slower than its timeout under load
--- then
main::embeddings_slow();



=== TEST 7: the embeddings endpoint killed in a burst
--- then
main::embeddings_dying();



=== TEST 8: streams reset or truncated by the upstream, 16 at once
--- then
main::streams_cut();



=== TEST 9: clients gone while Redis is paused, then it resumes
--- then
main::gone_redis_paused();



=== TEST 10: clients gone while the provider is slow (lock holders and waiters)
--- then
main::gone_upstream_slow();



=== TEST 11: clients gone while the embeddings subrequests are slow
--- then
main::gone_embeddings_slow();



=== TEST 12: clients gone in the middle of streams
--- then
main::gone_streaming();



=== TEST 13: llmcache-worker killed in a burst
--- then
main::worker_killed();
