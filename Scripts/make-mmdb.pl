#!/usr/bin/perl
# Builds a GeoLite2-Country-shaped MMDB from Tor/IPFire range files with
# MaxMind's own writer (Debian: libmaxmind-db-writer-perl). Used by the
# differential tests and the lookup benchmark as the libmaxminddb reference.
#
#   make-mmdb.pl OUT.mmdb GEOIP4 GEOIP6
#
# Like GeoLite2, it is an IPv6 tree whose IPv4 space lives at ::/96, with
# ::ffff:0:0/96 and 2002::/16 aliased to it. Ranges with country "??" carry
# no data. A source range inside an aliased network cannot be stored (the
# writer forbids it) and is skipped; the count is printed.
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;
use Socket qw(inet_ntoa);

my ($out, $v4, $v6) = @ARGV;
die "usage: $0 OUT.mmdb GEOIP4 GEOIP6\n" unless $out && $v4 && $v6;

my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version            => 6,
    record_size           => 24,
    database_type         => 'GeoLite2-Country',
    languages             => ['en'],
    description           => { en => 'geogate test reference built from IPFire Location data' },
    alias_ipv6_to_ipv4    => 1,
    remove_reserved_networks => 0,
    merge_strategy        => 'none',
    map_key_type_callback => sub { $_[0] eq 'iso_code' ? 'utf8_string' : 'map' },
);

my %data;
sub record { my $cc = shift; $data{$cc} //= { country => { iso_code => $cc } }; }

my ($stored, $skipped) = (0, 0);
open(my $f4, '<', $v4) or die "$v4: $!\n";
while (<$f4>) {
    next if /^#/ || /^\s*$/;
    chomp;
    my ($a, $b, $cc) = split /,/;
    next if $cc eq '??';
    $tree->insert_range(inet_ntoa(pack('N', $a)), inet_ntoa(pack('N', $b)), record($cc));
    $stored++;
}
close $f4;
open(my $f6, '<', $v6) or die "$v6: $!\n";
while (<$f6>) {
    next if /^#/ || /^\s*$/;
    chomp;
    my ($a, $b, $cc) = split /,/;
    next if $cc eq '??';
    if ($a =~ /^2002:/i || $a =~ /^::ffff:/i) { $skipped++; next; }
    $tree->insert_range($a, $b, record($cc));
    $stored++;
}
close $f6;
open(my $fh, '>:raw', "$out.tmp") or die "$out.tmp: $!\n";
$tree->write_tree($fh);
close $fh or die "$out.tmp: $!\n";
rename("$out.tmp", $out) or die "$out: $!\n";
print "stored $stored ranges, skipped $skipped in aliased networks\n";
