#!/bin/bash
# bench/mmap_scan.sh: mmap scans of a raw view through umapfs vs kernel mmap
# of the plain file with the same bytes, side by side in one run.
#
#   bench/mmap_scan.sh [-b BUILD_DIR] [-d DIR] [-s SIZE] [-p "64K 256K 1M 4M"] [-B BUFFER]
#                      [-n TOUCHES] [-m "seq rand"] [-o MOUNT_OPTS] [-r RUNS] [-c CSV_FILE] [-k]
#
#   -b  build directory with fs/umapfs, plugins/raw and bench/mmap_scan (default build)
#   -d  scratch directory, not tmpfs (default /var/tmp/umapfs-mmap-scan)
#   -s  file size (default 2G)
#   -p  page sizes to mount with (default "64K 256K 1M 4M")
#   -B  the mount's buffer_size (default: file size + 256M)
#   -n  random touches per run (default 16384: 64 MiB of 4 KiB touches)
#   -N  sparse random touches per run (default: one per 32 MiB of file, at least 16)
#   -m  workloads to run (default "seq rand sparse")
#   -o  more umapfs mount options (e.g. readahead=4K)
#   -r  runs per measurement, three times as many for sparse touches (half a
#       second each, at the mercy of a few slow disk requests); the median is
#       reported (default 1)
#   -c  also write every measurement as CSV to this file (columns system,
#       page_size,mode,state,run,mbps,seconds,checksum,peak_rss,peak_kcache;
#       the last two, for the mount: the daemon's VmHWM and the view's bytes in
#       the kernel page cache (fincore, sampled), both since the mount, bytes)
#   -k  keep the data file
#
# Workloads: sequential (every 4 KiB page read, start to end), random
# (TOUCHES reads of random 4 KiB pages) and sparse random (few touches, see
# below), each with the backing data cold (the
# data file's cached pages dropped with POSIX_FADV_DONTNEED via dd iflag=nocache,
# and a fresh mount, whose kernel cache starts empty) and warm (the same scan
# again at once: the kernel cache holds the pages).  A global drop_caches or
# sync is avoided: one hung FUSE mount elsewhere would block it.  The mount gets
# buffer_size = file size + 256M (-B) so a warm run can hit everywhere.  Every
# mounted scan must give the checksum of the native one.  Prints MB/s and the
# ratio umapfs / native.
#
# The native scans are interleaved with the mounted ones: before each page
# size's scans of a workload, the plain file is scanned the same way, and the
# native figure is the median over the whole run.  The virtual disk's rate
# swings by 2x over minutes (and right after the file was written the host
# still caches it), so a baseline measured only once, at the start, compared
# the mount with a different disk.
#
# Why two random workloads: a kernel mmap fault reads the disk's readahead
# window around the faulting page (read_ahead_kb of the backing disk: 8 MiB on
# the VM these figures come from).  Dense random touches (16384 on 1 GiB) make
# those windows cover the whole file, so the native run is a sequential read
# in disguise; sparse touches (windows covering a small part of the file) are
# what random access to a data set much larger than the touched part costs.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$SRC/build
DIR=/var/tmp/umapfs-mmap-scan
SIZE=2G
PAGES="64K 256K 1M 4M"
TOUCHES=16384
RUNS=1
CSV=
KEEP=0
MODES="seq rand sparse"
SPARSE=
EXTRA=
BUFFER=
while getopts "b:d:s:p:B:n:N:m:o:r:c:kh" o; do
	case $o in
	b) BUILD=$(cd "$OPTARG" && pwd) ;;
	d) DIR=$OPTARG ;;
	s) SIZE=$OPTARG ;;
	p) PAGES=$OPTARG ;;
	B) BUFFER=$OPTARG ;;
	n) TOUCHES=$OPTARG ;;
	N) SPARSE=$OPTARG ;;
	m) MODES=$OPTARG ;;
	o) EXTRA=,$OPTARG ;;
	r) RUNS=$OPTARG ;;
	c) CSV=$OPTARG ;;
	k) KEEP=1 ;;
	*) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
	esac
done
UMAPFS=$BUILD/fs/umapfs
SCAN=$BUILD/bench/mmap_scan
for x in "$UMAPFS" "$SCAN"; do
	[ -x "$x" ] || { echo "mmap_scan.sh: $x not built" >&2; exit 1; }
done
export UMAPFS_PLUGIN_PATH=$BUILD/plugins
bytes() { numfmt --from=iec "$1"; }
SIZE_B=$(bytes "$SIZE")
if [ -z "$SPARSE" ]; then
	SPARSE=$((SIZE_B / (32 << 20)))
	[ "$SPARSE" -ge 16 ] || SPARSE=16
fi
BUF_B=$((SIZE_B + 268435456))
[ -z "$BUFFER" ] || BUF_B=$(bytes "$BUFFER")
# shellcheck source=mem.sh
. "$SRC/bench/mem.sh"

mkdir -p "$DIR/mnt"
DATA=$DIR/scan.bin
MNT=$DIR/mnt
cleanup() {
	mem_stop
	mountpoint -q "$MNT" && { fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT"; }
	rm -f "$DIR/kcache.max" "$DIR/kcache.max.tmp"
	[ "$KEEP" = 1 ] || rm -f "$DATA"
}
trap cleanup EXIT INT TERM

if [ ! -f "$DATA" ] || [ "$(stat -c %s "$DATA")" != "$SIZE_B" ]; then
	echo "generating $SIZE of data in $DATA" >&2
	head -c "$SIZE_B" /dev/urandom >"$DATA"
	sync -f "$DATA"
fi
printf 'view scan.raw\n%s 0 rest\n' "$DATA" >"$DIR/scan.txt"

drop() { dd if="$DATA" iflag=nocache count=0 status=none; }
DPID=
mount_view() { # mount_view PAGE_SIZE: mount, sample the view's memory
	"$UMAPFS" -o "page_size=$1,buffer_size=$BUF_B$EXTRA" "$DIR/scan.txt" "$MNT"
	DPID=$(umapfs_pid "$MNT")
	mem_start "$MNT/scan.raw" "$DIR/kcache.max"
}
umount_view() { mem_stop; fusermount3 -u "$MNT" || { sleep 1; fusermount3 -u "$MNT"; }; }
kv() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

[ -n "$CSV" ] && echo "system,page_size,mode,state,run,mbps,seconds,checksum,peak_rss,peak_kcache" >"$CSV"
declare -A REFS
# measure SYSTEM PAGE MODE STATE FILE: RUNS scans (cold: dropped before each; warm:
# one warming scan first), into VALS[SYSTEM,PAGE,MODE,STATE] (space-separated,
# appended: the native scans of every page size's turn pile up in one list).
declare -A VALS RUNNO
measure() {
	local sys=$1 ps=$2 mode=$3 state=$4 file=$5 args=() out sum r n mbps mem="," runs=$RUNS
	local key=$sys,$ps,$mode,$state
	[ "$mode" = rand ] && args=(-r -n "$TOUCHES")
	[ "$mode" = sparse ] && args=(-r -n "$SPARSE" -S 7) && runs=$((3 * RUNS))
	for r in $(seq 1 "$runs"); do
		if [ "$state" = cold ]; then
			if [ "$sys" = umapfs ]; then umount_view; drop; mount_view "$ps"; else drop; fi
		elif [ "$r" = 1 ]; then
			"$SCAN" "${args[@]}" "$file" >/dev/null
		fi
		out=$("$SCAN" "${args[@]}" "$file")
		sum=$(kv checksum "$out")
		if [ -n "${REFS[$mode]:-}" ] && [ "${REFS[$mode]}" != "$sum" ]; then
			echo "mmap_scan.sh: $sys $ps $mode $state: checksum $sum, native gave ${REFS[$mode]}" >&2
			exit 1
		fi
		REFS[$mode]=$sum
		mbps=$(awk -v b="$(kv bytes "$out")" -v s="$(kv seconds "$out")" 'BEGIN {printf "%.3f", b / s / 1e6}')
		VALS[$key]="${VALS[$key]:-} $mbps"
		if [ "$sys" = umapfs ] && [ -n "$DPID" ]; then
			mem=$(mem_now "$file" "$DPID" "$DIR/kcache.max" | tr ' ' ',')
		fi
		n=$((${RUNNO[$key]:-0} + 1))
		RUNNO[$key]=$n
		[ -n "$CSV" ] && echo "$sys,$ps,$mode,$state,$n,$mbps,$(kv seconds "$out"),$sum,$mem" >>"$CSV"
	done
}
res() { printf '%s\n' ${VALS[$1]} | median; } # res KEY: median of the scans
echo "file $SIZE ($SIZE_B bytes) on $(df --output=source "$DIR" | tail -1); random: $TOUCHES touches of 4 KiB, sparse: $SPARSE; disk readahead $(cat "/sys/class/bdi/$(mountpoint -d "$(df --output=target "$DIR" | tail -1)")/read_ahead_kb" 2>/dev/null || echo '?') KiB" >&2
for ps in $PAGES; do
	mount_view "$ps"
	for mode in $MODES; do
		for state in cold warm; do
			measure native - "$mode" "$state" "$DATA"
			measure umapfs "$ps" "$mode" "$state" "$MNT/scan.raw"
		done
	done
	umount_view
done

printf '\nmode  state page_size  native MB/s  umapfs MB/s   ratio\n'
for mode in $MODES; do
	for state in cold warm; do
		n=$(res "native,-,$mode,$state")
		for ps in $PAGES; do
			u=$(res "umapfs,$ps,$mode,$state")
			printf '%-5s %-5s %-9s %12.1f %12.1f %7.2f\n' "$mode" "$state" "$ps" "$n" "$u" \
				"$(awk -v u="$u" -v n="$n" 'BEGIN {print (n > 0) ? u / n : 0}')"
		done
	done
done
