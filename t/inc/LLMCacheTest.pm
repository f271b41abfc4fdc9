package LLMCacheTest;

# The real processes behind the project's Test::Nginx suites.  Every t/*.t
# starts with
#
#     use lib 't/inc';
#     use LLMCacheTest;
#     use Test::Nginx::Socket 'no_plan';
#
# On import this picks free loopback ports, starts the provider mock
# (t/mock/provider.py, which owns a private redis-server and a Redis that
# fails every command), exports their ports as TEST_NGINX_* variables for
# the blocks, and registers a block preprocessor that gives every block a
# clean, running Redis and zeroed mock counters.  `--- redis: stopped` or
# `--- redis: paused` in a block changes that for the block.  Helpers for
# Perl code in the suites (redis_cmd, mock_calls, ...) are exported into
# the caller and into Test::Base::Filter, where `eval` sections run.
#
# It must be loaded before Test::Nginx::Socket: the runner reads the port
# and server root variables when it loads.  It works with the real
# Test::Nginx::Socket as well as the fallback runner in t/lib.

use strict;
use warnings;

use Cwd ();
use File::Basename qw(basename dirname);
use File::Path qw(remove_tree);
use File::Spec ();
use File::Temp ();
use IO::Select ();
use IO::Socket::INET ();
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(sleep time);

our @HELPERS = qw(redis_cmd redis_cmd_at redis_keys mock_get mock_post
                  mock_calls mock_last mock_reset redis_ctl repo_root
                  start_worker stop_worker worker_request worker_metric
                  worker_calls worker_model);

our ($Root, $MockPort, $RedisPort, $BadRedisPort, $MockPid, $TmpDir);
our (%Workers, $WorkerModel);
our $ReadyTimeout = $ENV{LLMCACHE_MOCK_TIMEOUT} || 30;
my $OwnerPid = $$;
my $Started;

sub repo_root () { $Root }

sub import {
    my $caller = caller;
    unless ($Started++) {
        setup();
        valgrind_timeout();
    }
    no strict 'refs';
    for my $f (@HELPERS) {
        *{"${caller}::$f"} = \&$f;
        *{"Test::Base::Filter::$f"} = \&$f;
    }
}

# Under valgrind the first request of a block runs far slower than the
# module's 100 ms Redis timeout, and `redis ... timed out` lines would fail
# blocks that have nothing wrong with memory. In that mode blocks that set
# no llmcache_redis_timeout of their own get 5 s. Block preprocessors run
# last registered first (in both runners), so this one, registered before
# the suite's (and after setup has loaded the runner), sees the
# http_config the suite's set.
sub valgrind_timeout () {
    return unless $ENV{TEST_NGINX_USE_VALGRIND};
    require Test::Nginx::Socket;
    Test::Nginx::Socket::add_block_preprocessor(sub {
        my $block = shift;
        my $hc = $block->http_config // return;
        return if $hc !~ /\bllmcache_redis\s/
                  || $hc =~ /\bllmcache_redis_timeout\b/;
        $block->set_value('http_config',
                          "$hc\n    llmcache_redis_timeout 5s;\n");
    });
}

# A port that is free now, outside Linux's ephemeral range (32768-60999)
# so that no outgoing connection takes it while nginx restarts between
# blocks; random, so two suites running at once (prove -j) do not collide.
my %Used;
sub port_free ($) {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => shift, Proto => 'tcp',
                                  ReuseAddr => 1, Listen => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

sub free_port () {
    for (1 .. 2000) {
        my $port = 20000 + int rand 12000;
        next if $Used{$port} || !port_free($port);
        $Used{$port} = 1;
        return $port;
    }
    die "LLMCacheTest: no free port found\n";
}

# A Redis Cluster node also listens on its port + 10000 (the cluster bus):
# both free, and the bus below Linux's ephemeral ports (32768 and up), where
# an outgoing connection of another suite could take it meanwhile.
sub free_cluster_port () {
    for (1 .. 2000) {
        my $port = 20000 + int rand 2700;
        next if $Used{$port} || $Used{$port + 10000}
                || !port_free($port) || !port_free($port + 10000);
        $Used{$port} = $Used{$port + 10000} = 1;
        return $port;
    }
    die "LLMCacheTest: no free port pair for a cluster node found\n";
}

sub setup () {
    srand(time ^ ($$ << 8));
    $Root = Cwd::abs_path(File::Spec->catdir(dirname(__FILE__), '..', '..'));

    if ($INC{'Test/Nginx/Util.pm'}) {
        warn "LLMCacheTest: load it before Test::Nginx::Socket, or the "
             . "ports and server root below are not used\n";
    }

    # one nginx port and server root per suite, so suites can run in
    # parallel; explicit settings win
    if (!$ENV{TEST_NGINX_SERVER_PORT} && !$ENV{TEST_NGINX_PORT}) {
        $ENV{TEST_NGINX_SERVER_PORT} = free_port();
    }
    $Used{$ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}} = 1;
    if (!$ENV{TEST_NGINX_SERVROOT}) {
        (my $base = basename($0)) =~ s/\.t$//;
        $base =~ s/[^\w.-]/_/g;
        $ENV{TEST_NGINX_SERVROOT} = "$Root/t/servroot-$base";
    }

    $ENV{TEST_NGINX_DICT_DIR} = "$Root/examples/dict";
    $ENV{LLMCACHE_ROOT} //= $Root;

    # another suite may take a port between the check and the mock's
    # bind; then the mock exits and new ports are tried
    for my $try (1 .. 3) {
        $MockPort = free_port();
        $RedisPort = free_port();
        $BadRedisPort = free_port();
        $ENV{TEST_NGINX_MOCK_PORT} = $MockPort;
        $ENV{TEST_NGINX_REDIS_PORT} = $RedisPort;
        $ENV{TEST_NGINX_BAD_REDIS_PORT} = $BadRedisPort;
        last if eval { start_mock(); 1 };
        die $@ if $try == 3 || $@ !~ /Address already in use/;
        warn "LLMCacheTest: port taken, retrying: $@";
    }

    for my $sig (qw(INT TERM HUP)) {
        next if defined $SIG{$sig} && $SIG{$sig} ne 'DEFAULT';
        # exit runs the END blocks: nginx and the mock are stopped
        $SIG{$sig} = sub { exit 128 + (POSIX->can("SIG$sig")->()) };
    }

    require Test::Nginx::Socket;
    Test::Nginx::Socket::add_block_preprocessor(\&prepare_block);
}

sub start_mock () {
    remove_tree($TmpDir) if $TmpDir;
    $TmpDir = File::Temp::tempdir('llmcache-test-XXXXXX', TMPDIR => 1);
    my $log = "$TmpDir/mock.log";
    my @cmd = ('python3', "$Root/t/mock/provider.py", '--port', $MockPort,
               '--redis-port', $RedisPort, '--bad-redis-port',
               $BadRedisPort);

    my $pid = fork;
    die "LLMCacheTest: fork failed: $!\n" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $log;
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    $MockPid = $pid;

    # the mock prints "ready" once its listeners and its Redis are up
    my $until = time + $ReadyTimeout;
    while (1) {
        my $out = slurp($log);
        last if $out =~ /^ready$/m;
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
            undef $MockPid;
            die "LLMCacheTest: the provider mock exited ($?) before it was "
                . "ready: @cmd\n$out";
        }
        if (time > $until) {
            stop_mock();
            die "LLMCacheTest: the provider mock was not ready after "
                . "${ReadyTimeout}s: @cmd\n$out";
        }
        sleep 0.02;
    }
    my ($status, $body) = mock_get('/__health');
    die "LLMCacheTest: GET /__health answered $status\n" if $status != 200;
}

sub slurp ($) {
    open my $in, '<', shift or return '';
    local $/;
    my $s = <$in>;
    return $s // '';
}

sub stop_mock () {
    return unless $MockPid;
    kill 'TERM', $MockPid;
    my $until = time + 10;
    while (time < $until) {
        last if waitpid($MockPid, POSIX::WNOHANG()) == $MockPid;
        sleep 0.02;
    }
    if (kill 0, $MockPid) {
        kill 'KILL', $MockPid;
        waitpid($MockPid, 0);
    }
    undef $MockPid;
}

END {
    if ($$ == $OwnerPid) {
        local $?;
        stop_worker($_, 'KILL') for keys %Workers;
        stop_mock();
        if ($TmpDir && -d $TmpDir) {
            if ($ENV{LLMCACHE_KEEP_MOCK_LOG}) {
                print STDERR "# LLMCacheTest: mock log in $TmpDir/mock.log\n";
            } else {
                remove_tree($TmpDir);
            }
        }
    }
}

sub ctl_ok ($) {
    my $path = shift;
    my ($status, $body) = mock_post($path);
    die "LLMCacheTest: POST $path answered $status: $body\n"
        unless $status == 200;
}

# Runs before every block (and before its nginx starts).
sub prepare_block {
    my $block = shift;
    my $want = $block->redis // 'running';
    $want =~ s/^\s+|\s+$//g;
    $want = 'running' if $want eq '';

    # resume fails (500) when Redis is not running; start covers that
    mock_post('/__redis/resume');
    ctl_ok('/__redis/start');
    ctl_ok('/__redis/flush');
    ctl_ok('/__reset');

    if ($want eq 'stopped') {
        ctl_ok('/__redis/stop');
    } elsif ($want eq 'paused') {
        ctl_ok('/__redis/pause');
    } elsif ($want ne 'running') {
        die "LLMCacheTest: " . $block->name . ": --- redis must be running, "
            . "stopped or paused, not \"$want\"\n";
    }

    prepare_workers($block) if %Workers;
}

# --- HTTP to the mock ---------------------------------------------------

sub http_request ($$;$$) {
    my ($method, $path, $body, $headers) = @_;
    $body //= '';
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $MockPort, Proto => 'tcp',
                                     Timeout => 5)
        or return (0, "connect: $!");
    my $req = "$method $path HTTP/1.0\r\nHost: 127.0.0.1\r\n"
              . "Content-Length: " . length($body) . "\r\n";
    for my $k (sort keys %{$headers || {}}) {
        $req .= "$k: $headers->{$k}\r\n";
    }
    $req .= "Connection: close\r\n\r\n$body";
    local $SIG{PIPE} = 'IGNORE';
    print {$sock} $req;
    my $resp = read_all($sock, 30);
    close $sock;
    my ($head, $rbody) = $resp =~ /\A(.*?)\r\n\r\n(.*)\z/s
                         ? ($1, $2) : ($resp, '');
    my ($status) = $head =~ m{^HTTP/\d\.\d (\d+)};
    return ($status // 0, $rbody);
}

sub read_all ($$) {
    my ($sock, $timeout) = @_;
    my $sel = IO::Select->new($sock);
    my $buf = '';
    while ($sel->can_read($timeout)) {
        my $n = sysread $sock, my $chunk, 65536;
        last unless $n;
        $buf .= $chunk;
    }
    return $buf;
}

# mock_get('/__calls') in list context: (status, body); scalar: body.
sub mock_get ($) {
    my @r = http_request('GET', shift);
    return wantarray ? @r : $r[1];
}

sub mock_post ($;$$) {
    my @r = http_request('POST', $_[0], $_[1], $_[2]);
    return wantarray ? @r : $r[1];
}

# Provider calls since the last reset, optionally only those to $path.
sub mock_calls (;$) {
    my $path = shift;
    my ($status, $body) = mock_get('/__calls'
                                   . (defined $path ? "?path=$path" : ''));
    die "LLMCacheTest: GET /__calls answered $status\n" if $status != 200;
    $body =~ s/\s+//g;
    return $body + 0;
}

# The last provider request as a hash (method, path, headers, body), or
# undef when there was none.
sub mock_last () {
    my ($status, $body) = mock_get('/__last');
    return undef if $status != 200;
    return JSON::PP::decode_json($body);
}

sub mock_reset () { ctl_ok('/__reset') }

# redis_ctl('stop'|'start'|'pause'|'resume'|'flush')
sub redis_ctl ($) { ctl_ok('/__redis/' . shift) }

# --- RESP ---------------------------------------------------------------

# redis_cmd('TTL', $key): the decoded reply (integers and strings as Perl
# scalars, nil as undef, arrays as array refs).  An error reply gives
# undef, and (undef, "ERR ...") in list context.
sub redis_cmd {
    return redis_cmd_at($RedisPort, @_);
}

sub redis_cmd_at {
    my ($port, @args) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Proto => 'tcp',
                                     Timeout => 2)
        or return wantarray ? (undef, "connect: $!") : undef;
    my $cmd = '*' . @args . "\r\n";
    for my $a (@args) {
        my $bytes = "$a";
        utf8::encode($bytes) if utf8::is_utf8($bytes);
        $cmd .= '$' . length($bytes) . "\r\n$bytes\r\n";
    }
    local $SIG{PIPE} = 'IGNORE';
    print {$sock} $cmd;
    my $rd = {sock => $sock, buf => '', sel => IO::Select->new($sock)};
    my ($val, $err) = eval { resp_read($rd) };
    $err = "read: $@" if $@;
    close $sock;
    return wantarray ? ($val, $err) : $val;
}

sub resp_fill ($$) {
    my ($rd, $need) = @_;
    while (length $rd->{buf} < $need) {
        die "timeout\n" unless $rd->{sel}->can_read(5);
        my $n = sysread $rd->{sock}, my $chunk, 65536;
        die "connection closed\n" unless $n;
        $rd->{buf} .= $chunk;
    }
}

sub resp_line ($) {
    my $rd = shift;
    while ((my $i = index $rd->{buf}, "\r\n") < 0) {
        resp_fill($rd, length($rd->{buf}) + 1);
    }
    $rd->{buf} =~ s/\A(.*?)\r\n//s;
    return $1;
}

sub resp_read {
    my $rd = shift;
    my $line = resp_line($rd);
    my ($t, $v) = (substr($line, 0, 1), substr($line, 1));
    return ($v) if $t eq '+';
    return ($v + 0) if $t eq ':';
    return (undef, $v) if $t eq '-';
    if ($t eq '$') {
        return (undef) if $v < 0;
        resp_fill($rd, $v + 2);
        my $s = substr $rd->{buf}, 0, $v;
        substr($rd->{buf}, 0, $v + 2) = '';
        return ($s);
    }
    if ($t eq '*') {
        return (undef) if $v < 0;
        my @items;
        for (1 .. $v) {
            my ($item, $err) = resp_read($rd);
            push @items, defined $err ? "-$err" : $item;
        }
        return (\@items);
    }
    die "bad RESP reply: $line\n";
}

# Sorted keys matching $pattern (default: all).
sub redis_keys (;$) {
    my $keys = redis_cmd('KEYS', shift // '*');
    return ref $keys ? sort @$keys : ();
}

# --- llmcache-worker ----------------------------------------------------
#
# start_worker($name, @args) runs build/llmcache-worker on the unix socket
# $TmpDir/$name.sock, on a tiny model generated once per suite with
# build/llmcache-mkmodel unless @args give a --model, and exports the
# socket's path as TEST_NGINX_WORKER_<NAME> for the blocks
# (`proxy_pass http://unix:$TEST_NGINX_WORKER_A:;`).  It returns the path.
# A block with `--- worker: stopped` (SIGTERM: the worker removes its
# socket) or `--- worker: killed` (SIGKILL: a stale socket file stays),
# optionally followed by names, runs with those workers down; every other
# block gets all of them running again, with the arguments they were first
# started with.

sub worker_bin () { "$Root/build/llmcache-worker" }

# The suite's tiny model (made on first use), for worker_request's model.
sub worker_model () {
    return $WorkerModel if $WorkerModel;
    my $mk = "$Root/build/llmcache-mkmodel";
    die "LLMCacheTest: $mk is not built (make tools)\n" unless -x $mk;
    my $out = "$TmpDir/tiny.gguf";
    system($mk, '--out', $out, '--seed', '7', '--dim', '64', '--layers',
           '2', '--heads', '4', '--kv-heads', '2', '--ffn', '128',
           '--ctx', '512', '--name', 'tiny') == 0
        or die "LLMCacheTest: llmcache-mkmodel failed ($?)\n";
    return $WorkerModel = $out;
}

sub start_worker ($;@) {
    my ($name, @args) = @_;
    die "LLMCacheTest: worker names are letters, digits and _\n"
        unless $name =~ /^\w+$/;
    my $w = $Workers{$name};
    if (!$w) {
        unshift @args, '--model', worker_model()
            unless grep { $_ eq '--model' || $_ eq '-m' } @args;
        $w = $Workers{$name} = { sock => "$TmpDir/$name.sock",
                                 log => "$TmpDir/worker-$name.log",
                                 args => [@args] };
        $ENV{'TEST_NGINX_WORKER_' . uc $name} = $w->{sock};
    }
    return $w->{sock} if $w->{pid};

    # nginx's workers may run as another user: 0666
    my @cmd = (worker_bin(), '--listen', "unix:$w->{sock}", '--threads',
               '1', '--socket-mode', '0666', @{ $w->{args} });
    my $pid = fork;
    die "LLMCacheTest: fork failed: $!\n" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $w->{log};
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    $w->{pid} = $pid;

    my $until = time + $ReadyTimeout;
    while (time < $until) {
        my ($status) = worker_request($name, 'GET', '/health');
        return $w->{sock} if $status == 200;
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
            undef $w->{pid};
            die "LLMCacheTest: llmcache-worker $name exited ($?): @cmd\n"
                . slurp($w->{log});
        }
        sleep 0.02;
    }
    stop_worker($name, 'KILL');
    die "LLMCacheTest: llmcache-worker $name did not answer /health after "
        . "${ReadyTimeout}s: @cmd\n" . slurp($w->{log});
}

# stop_worker($name [, 'TERM' | 'KILL']): the worker is gone on return.
sub stop_worker ($;$) {
    my ($name, $sig) = @_;
    my $w = $Workers{$name} or die "LLMCacheTest: no worker \"$name\"\n";
    my $pid = delete $w->{pid} or return;
    kill $sig // 'TERM', $pid;
    my $until = time + 10;
    while (time < $until) {
        return if waitpid($pid, POSIX::WNOHANG()) == $pid;
        sleep 0.02;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

sub prepare_workers ($) {
    my $block = shift;
    my $want = $block->worker // 'running';
    $want =~ s/^\s+|\s+$//g;
    my ($state, @names) = split /\s+/, $want eq '' ? 'running' : $want;
    @names = sort keys %Workers unless @names;
    my %down;
    if ($state eq 'stopped' || $state eq 'killed') {
        for my $n (@names) {
            die "LLMCacheTest: " . $block->name . ": no worker \"$n\"\n"
                unless $Workers{$n};
            $down{$n} = 1;
        }
    } elsif ($state ne 'running') {
        die "LLMCacheTest: " . $block->name . ": --- worker must be running, "
            . "stopped or killed (and names), not \"$want\"\n";
    }
    for my $n (sort keys %Workers) {
        if ($down{$n}) {
            # killed leaves its socket file: it must have been running
            start_worker($n) if $state eq 'killed';
            stop_worker($n, $state eq 'killed' ? 'KILL' : 'TERM');
            $Workers{$n}{base} = 0;
        } else {
            start_worker($n);
            $Workers{$n}{base} = worker_calls_total($n);
        }
    }
}

my $CallsRe = 'llmcache_worker_requests_total\{endpoint="/v1/'
              . '(?:chat/)?completions"[^}]*\}';

sub worker_calls_total ($;$) {
    my ($name, $text) = @_;
    return worker_metric($name, $CallsRe) unless defined $text;
    my $sum = 0;
    for (split /\n/, $text) {
        $sum += $1 if /^(?:$CallsRe)\s+(\S+)$/;
    }
    return $sum;
}

# Completions and chat completions the worker answered (any status) since
# the block began, like mock_calls for the provider mock; from its /metrics
# text when given (a block can fetch it through nginx), else asked.
sub worker_calls ($;$) {
    my ($name, $text) = @_;
    my $w = $Workers{$name} or die "LLMCacheTest: no worker \"$name\"\n";
    return worker_calls_total($name, $text) - ($w->{base} // 0);
}

# worker_request($name, $method, $path [, $body]): (status, body) in list
# context, the body in scalar context; status 0 when the worker cannot be
# reached.
sub worker_request ($$$;$) {
    my ($name, $method, $path, $body) = @_;
    my $w = $Workers{$name} or die "LLMCacheTest: no worker \"$name\"\n";
    require IO::Socket::UNIX;
    my $sock = IO::Socket::UNIX->new(Type => Socket::SOCK_STREAM(),
                                     Peer => $w->{sock});
    return wantarray ? (0, "connect: $!") : undef unless $sock;
    $body //= '';
    my $req = "$method $path HTTP/1.0\r\nHost: worker\r\n"
              . "Content-Type: application/json\r\n"
              . "Content-Length: " . length($body) . "\r\n\r\n$body";
    local $SIG{PIPE} = 'IGNORE';
    print {$sock} $req;
    my $resp = read_all($sock, 60);
    close $sock;
    my ($head, $rbody) = $resp =~ /\A(.*?)\r\n\r\n(.*)\z/s
                         ? ($1, $2) : ($resp, '');
    my ($status) = $head =~ m{^HTTP/\d\.\d (\d+)};
    return wantarray ? ($status // 0, $rbody) : $rbody;
}

# The sum of the worker's /metrics samples whose name and labels match
# $re, e.g. worker_metric('a', 'llmcache_worker_requests_total\{[^}]*'
# . 'status="200"\}').
sub worker_metric ($$) {
    my ($name, $re) = @_;
    my ($status, $body) = worker_request($name, 'GET', '/metrics');
    die "LLMCacheTest: worker $name: GET /metrics answered $status\n"
        unless $status == 200;
    my $sum = 0;
    for (split /\n/, $body) {
        next if /^#/;
        $sum += $1 if /^(?:$re)\s+(\S+)$/;
    }
    return $sum;
}

# --- a Redis Cluster ------------------------------------------------------

# redis_cluster(REPLICAS, ARGS...): 3 masters (and REPLICAS replicas each)
# of Debian's redis-server on free loopback ports, made a cluster with
# redis-cli; extra redis-server ARGS for every node. Tries three times (a
# port taken meanwhile, a slow start). Returns { ports => [...], pids =>
# [...], masters => [ports], dir => DIR }; dies when no cluster came up.
# The caller stops the processes (kill 'TERM', @{$c->{pids}} in END).
sub redis_cli ($@) {
    my $port = shift;
    return `redis-cli -p $port @_ 2>/dev/null`;
}

# the last lines of a file, on one line
sub tail_file ($) {
    open my $fh, '<', shift or return '(no log)';
    my @l = <$fh>;
    chomp @l;
    return join ' / ', @l[($#l > 2 ? $#l - 2 : 0) .. $#l];
}

sub redis_cluster ($@) {
    my ($replicas, @extra) = @_;
    my $n = 3 * (1 + $replicas);
    for my $try (1 .. 4) {
        my $dir = File::Temp::tempdir(CLEANUP => 1);
        my (@ports, @pids);
        for my $i (0 .. $n - 1) {
            my $port = free_cluster_port();
            my $pid = fork // die "fork: $!";
            if ($pid == 0) {
                open STDOUT, '>', "$dir/redis-$i.log";
                open STDERR, '>&', \*STDOUT;
                exec 'redis-server', '--port', $port, '--bind', '127.0.0.1',
                     '--cluster-enabled', 'yes',
                     '--cluster-config-file', "$dir/nodes-$i.conf",
                     '--save', '', '--appendonly', 'no', '--dir', $dir,
                     @extra
                    or POSIX::_exit(127);
            }
            push @ports, $port;
            push @pids, $pid;
        }
        my $up = 0;
        for my $port (@ports) {
            for (1 .. 200) {
                if (redis_cli($port, 'ping') =~ /PONG/) { $up++; last }
                select undef, undef, undef, 0.05;
            }
        }
        my $nodes = join ' ', map { "127.0.0.1:$_" } @ports;
        if ($up == $n
            && system("redis-cli --cluster create $nodes --cluster-replicas "
                      . "$replicas --cluster-yes >$dir/create.log 2>&1") == 0)
        {
            # replicas sync first: on a busy machine that takes a while
            for (1 .. 300) {
                my $map = redis_cli($ports[0], 'cluster nodes');
                my $slaves = () = $map =~ /\bslave\b/g;
                my @masters = map { /127\.0\.0\.1:(\d+)/ ? $1 : () }
                              grep { /\bmaster\b/ } split /\n/, $map;
                if (redis_cli($ports[0], 'cluster info')
                        =~ /cluster_state:ok/
                    && $slaves == 3 * $replicas && @masters == 3)
                {
                    return { ports => \@ports, pids => \@pids,
                             masters => \@masters, dir => $dir };
                }
                select undef, undef, undef, 0.1;
            }
        }
        # say why, then try again on other ports
        my @down = grep { redis_cli($ports[$_], 'ping') !~ /PONG/ }
                   0 .. $#ports;
        warn "LLMCacheTest: Redis Cluster, try $try: "
             . (@down ? "node(s) on port(s) @ports[@down] not answering: "
                        . join(' | ', map { tail_file("$dir/redis-$_.log") }
                                          @down)
                      : 'not ready: ' . tail_file("$dir/create.log")
                        . ' ' . redis_cli($ports[0], 'cluster info'))
             . "\n";
        kill 'KILL', @pids;
        waitpid $_, 0 for @pids;
    }
    die "LLMCacheTest: no Redis Cluster of 3 masters and "
        . 3 * $replicas . " replicas came up\n";
}

1;
