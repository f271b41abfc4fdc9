# The client side of the llmcache-worker tests (t/worker*.t): the worker
# started on a unix socket in a temporary directory, raw HTTP/1.1 requests
# and responses (chunked bodies, SSE events), OpenAI error objects, metrics.
# Core Perl only.
#
# LLMCACHE_ROOT: the repository (default: the test's parent directory);
# LLMCACHE_SHARED: the shared data (default: ROOT/../shared);
# LLMCACHE_WORKER_WRAP: a command the worker runs under (valgrind ...).

package WorkerClient;

use strict;
use warnings;

use Exporter 'import';
use File::Temp qw(tempdir);
use FindBin;
use IO::Socket::UNIX;
use JSON::PP;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(sleep time);

our @EXPORT = qw($root $shared $worker $mkmodel $json $dir %workers
    start_worker stop_worker connect_to read_line read_chunk read_head read_response request_bytes
    call post is_error still_serving read_events metric);

our ($root, $shared, $worker, $mkmodel, $json, $dir);
our %workers;   # socket path => pid (tests may kill and wait for them)
# e.g. LLMCACHE_WORKER_WRAP="valgrind -q --error-exitcode=99"
my @wrap = split ' ', ($ENV{LLMCACHE_WORKER_WRAP} // '');

$root = $ENV{LLMCACHE_ROOT} // "$FindBin::Bin/..";
$shared = $ENV{LLMCACHE_SHARED} // "$root/../shared";
$worker = "$root/build/llmcache-worker";
$mkmodel = "$root/build/llmcache-mkmodel";
$json = JSON::PP->new->utf8->canonical;

# the binaries, or the whole test is skipped; the temporary directory
sub setup {
    my ($prefix) = @_;
    for ($worker, $mkmodel) {
        plan skip_all => "$_ is not built (make worker tools)" unless -x $_;
    }
    $dir = tempdir("$prefix-XXXXXX", TMPDIR => 1, CLEANUP => 1);
}

END {
    local $?;
    for my $pid (values %workers) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
}

sub start_worker {
    my ($name, @args) = @_;
    my $sock = "$dir/$name.sock";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>', "$dir/$name.log" or die;
        open STDOUT, '>&', \*STDERR or die;
        exec @wrap, $worker, '--listen', "unix:$sock", '--threads', '1',
             @args;
        die "exec $worker: $!";
    }
    for (1 .. 600) {
        my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock);
        if ($c) {
            close $c;
            $workers{$sock} = $pid;
            return $sock;
        }
        last if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid $pid, 0;
    my $log = do { local (@ARGV, $/) = "$dir/$name.log"; <> } // '';
    BAIL_OUT("the worker did not start: $log");
}

# TERM, and its exit status
sub stop_worker {
    my ($sock) = @_;
    my $pid = delete $workers{$sock} or return;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    return $?;
}

sub connect_to {
    my ($sock) = @_;
    my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock)
        or die "connect $sock: $!";
    binmode $c;
    return $c;
}

sub read_line {
    my ($c) = @_;
    my $l = <$c>;
    return $l;
}

# one HTTP chunk's data; '' at the last chunk (trailers read), undef on EOF
sub read_chunk {
    my ($c) = @_;
    my $l = read_line($c) // return undef;
    $l =~ /^([0-9a-fA-F]+)/ or die "bad chunk line '$l'";
    my $n = hex $1;
    if ($n == 0) {
        while (defined(my $t = read_line($c))) { last if $t =~ /^\r?\n$/ }
        return '';
    }
    my $data = '';
    while (length $data < $n) {
        my $got = read($c, $data, $n - length $data, length $data);
        return undef unless $got;
    }
    read_line($c);
    return $data;
}

# status line and headers; the body is left to the caller
sub read_head {
    my ($c) = @_;
    my $status = read_line($c) // return undef;
    my ($code) = $status =~ m{^HTTP/1\.[01] (\d{3}) }
        or die "bad status '$status'";
    my %h;
    while (defined(my $l = read_line($c))) {
        last if $l =~ /^\r?\n$/;
        $l =~ s/\r?\n$//;
        my ($k, $v) = split /:\s*/, $l, 2;
        $h{lc $k} = $v;
    }
    return { status => $code, headers => \%h };
}

sub read_response {
    my ($c) = @_;
    my $r = read_head($c) // return undef;
    my $h = $r->{headers};
    my $body = '';
    if (defined $h->{'content-length'}) {
        while (length $body < $h->{'content-length'}) {
            my $got = read($c, $body, $h->{'content-length'} - length $body,
                           length $body);
            last unless $got;
        }
    } elsif (($h->{'transfer-encoding'} // '') eq 'chunked') {
        while (1) {
            my $d = read_chunk($c);
            last if !defined $d || $d eq '';
            $body .= $d;
        }
    } else {
        local $/;
        $body = <$c> // '';
    }
    $r->{body} = $body;
    $r->{json} = eval { $json->decode($body) }
        if ($h->{'content-type'} // '') =~ m{application/json};
    return $r;
}

sub request_bytes {
    my ($method, $path, $body, @extra) = @_;
    my $s = "$method $path HTTP/1.1\r\nHost: worker\r\n";
    $s .= "$_\r\n" for @extra;
    $s .= "Content-Type: application/json\r\nContent-Length: "
        . length($body) . "\r\n" if defined $body;
    return "$s\r\n" . ($body // '');
}

# one request on a fresh connection
sub call {
    my ($sock, $method, $path, $body, @extra) = @_;
    $body = $json->encode($body) if ref $body;
    my $c = connect_to($sock);
    print $c request_bytes($method, $path, $body, @extra);
    my $r = read_response($c);
    close $c;
    return $r;
}

sub post { my ($sock, $path, $obj) = @_; call($sock, 'POST', $path, $obj) }

sub is_error {
    my ($r, $status, $name) = @_;
    is($r->{status}, $status, "$name: status $status");
    ok(ref $r->{json} eq 'HASH' && ref $r->{json}{error} eq 'HASH'
       && length($r->{json}{error}{message} // '')
       && exists $r->{json}{error}{type} && exists $r->{json}{error}{param}
       && exists $r->{json}{error}{code},
       "$name: OpenAI error object") or diag $r->{body};
    return $r->{json}{error} // {};
}

sub still_serving {
    my ($sock, $name) = @_;
    my $r = call($sock, 'GET', '/health');
    ok($r && $r->{status} == 200 && $r->{body} =~ /"ok"/,
       "the worker still answers after $name");
}

# SSE events of a streamed response on $c, after its head
sub read_events {
    my ($c) = @_;
    my ($buf, @events) = ('');
    while (defined(my $d = read_chunk($c))) {
        last if $d eq '';
        $buf .= $d;
        while ($buf =~ s/^data: (.*?)\n\n//s) {
            push @events, $1;
        }
    }
    return (\@events, $buf);
}

sub metric {
    my ($sock, $re) = @_;
    my $r = call($sock, 'GET', '/metrics');
    my $sum = 0;
    for (split /\n/, $r->{body}) {
        next if /^#/;
        $sum += $1 if /^$re\s+(\S+)$/;
    }
    return $sum;
}

1;
