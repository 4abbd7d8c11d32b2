#!/bin/bash
# bench/sort_bench.sh: the in-place out-of-core sort (umapfs-sort), through a
# writable umapfs mount vs kernel mmap of the plain file.
#
#   bench/sort_bench.sh [--build DIR] [--scratch DIR] [--out FILE.csv]
#       [--size SIZE] [--page-size SIZE[,SIZE...]] [--buffer SIZE] [--threads N] [--runs N]
#       [--modes mount,kernel-cold,kernel-warm] [--mount-opts OPTS] [--timeout SECONDS]
#       [--keep-scratch]
#
# A file of SIZE bytes of random 64-bit keys (umapfs-sort --generate, a new
# seed per run) is sorted in place, the same program and the same memory bound
# (--mem = buffer, default SIZE/4) in every mode:
#   mount        a writable raw view of the file, buffer_size = SIZE/4, once
#                per page size (default 64K,256K,1M); fresh mount; the sort
#                reads the mount's limits from .umapfs/stats
#   kernel-cold  kernel mmap of the plain file, its page-cache pages dropped
#                first (posix_fadvise DONTNEED through dd iflag=nocache)
#   kernel-warm  kernel mmap of the plain file, read into the page cache first
# The kernel modes are not limited to the buffer: the page cache may hold the
# whole file (this machine has far more memory than SIZE).  The mount reads
# its backing file with O_DIRECT, so it is always "cold" at the disk.
# --mount-opts adds umapfs options to the mount (e.g. prefetch=0).
# Every result is verified afterwards in the backing file (sorted and a
# permutation of the generated keys); the time includes msync(MS_SYNC).
# A sort that runs past --timeout seconds (default 3600) is killed and
# recorded with seconds = the limit and verified = "timeout" (never a result).
#
# Writes CSV rows (stdout, or --out):
#   mode,run,size_bytes,keys,buffer,page_size,threads,seconds,partition_s,
#   leaves_s,msync_s,wall_s,backing_read_bytes,backing_written_bytes,verified,
#   peak_rss,peak_kcache
# (mode: mount@PAGE_BYTES, kernel-cold or kernel-warm; wall_s: the command's
# wall time, plus the unmount for the mount; peak_rss = the daemon's VmHWM and
# peak_kcache = the view's bytes in the kernel page cache (fincore, sampled),
# mount rows only) and prints
# median seconds per mode and the ratios mount / kernel-* to stderr.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$SRC/build
SCRATCH_PARENT=/var/tmp
OUT=
SIZE=1G
PAGES=64K,256K,1M
BUFFER=
THREADS=$(nproc)
RUNS=1
MODES=mount,kernel-cold,kernel-warm
KEEP=0
MOUNT_OPTS=
TIMEOUT=3600

usage() { sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
	case "$1" in
	--build) BUILD=$2; shift 2 ;;
	--scratch) SCRATCH_PARENT=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--size) SIZE=$2; shift 2 ;;
	--page-size) PAGES=$2; shift 2 ;;
	--buffer) BUFFER=$2; shift 2 ;;
	--threads) THREADS=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	--modes) MODES=$2; shift 2 ;;
	--mount-opts) MOUNT_OPTS=,$2; shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--keep-scratch) KEEP=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) echo "sort_bench.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
done

bytes() { # bytes 64K -> 65536
	local v=$1 n u
	n=${v%[KkMmGgTt]}
	u=${v#"$n"}
	case "$n" in ''|*[!0-9]*) echo "sort_bench.sh: '$v' is not a size" >&2; exit 2 ;; esac
	case "$u" in
	'') echo "$n" ;;
	[Kk]) echo $((n << 10)) ;;
	[Mm]) echo $((n << 20)) ;;
	[Gg]) echo $((n << 30)) ;;
	[Tt]) echo $((n << 40)) ;;
	esac
}

SIZE_B=$(bytes "$SIZE")
if [ -n "$BUFFER" ]; then BUF_B=$(bytes "$BUFFER"); else BUF_B=$((SIZE_B / 4)); fi
KEYS=$((SIZE_B / 8))
case "$RUNS" in ''|*[!0-9]*|0) echo "sort_bench.sh: --runs needs a positive integer" >&2; exit 2 ;; esac
if [ $((SIZE_B % 8)) -ne 0 ] || [ "$KEYS" -eq 0 ]; then
	echo "sort_bench.sh: --size must be a positive multiple of 8 bytes" >&2; exit 2
fi

SORT=$BUILD/examples/umapfs-sort
DAEMON=$BUILD/fs/umapfs
for f in "$SORT" "$DAEMON"; do
	if [ ! -x "$f" ]; then
		echo "sort_bench.sh: $f not built (meson setup $BUILD && ninja -C $BUILD)" >&2
		exit 1
	fi
done
export UMAPFS_PLUGIN_PATH=$BUILD/plugins
# shellcheck source=mem.sh
. "$SRC/bench/mem.sh"

avail=$(df -P -B1 "$SCRATCH_PARENT" | awk 'NR==2 {print $4}')
if [ "$avail" -lt $((SIZE_B * 2)) ]; then
	echo "sort_bench.sh: $SCRATCH_PARENT has $avail bytes free; need $((SIZE_B * 2))" >&2
	exit 1
fi

SCRATCH=$(mktemp -d "$SCRATCH_PARENT/umapfs-sortbench-XXXXXX")
MNT=$SCRATCH/mnt
mkdir -p "$MNT"
DPID=
cleanup() {
	mem_stop
	if mountpoint -q "$MNT" 2>/dev/null; then fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true; fi
	if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
		sleep 1
		kill "$DPID" 2>/dev/null || true
	fi
	if [ "$KEEP" -eq 0 ]; then rm -rf "$SCRATCH"; else echo "scratch kept: $SCRATCH" >&2; fi
}
trap cleanup EXIT

if [ -n "$OUT" ]; then exec 3>"$OUT"; else exec 3>&1; fi
echo "mode,run,size_bytes,keys,buffer,page_size,threads,seconds,partition_s,leaves_s,msync_s,wall_s,backing_read_bytes,backing_written_bytes,verified,peak_rss,peak_kcache" >&3

now() { date +%s.%N; }
field() { # field KEY LINE: value of KEY=... in a key=value line
	sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"
}
stat_of() { # stat_of KEY TEXT
	awk -v k="$1" '$1 == k {print $2}' <<<"$2"
}
drop_file() { # drop the file's pages from the page cache (it was fsync'ed by the generator)
	dd if="$1" iflag=nocache count=0 status=none
}

RESULTS=$SCRATCH/results.txt
: >"$RESULTS"
echo "sort_bench: $SIZE ($KEYS keys), buffer $BUF_B, pages $PAGES, $THREADS threads, $RUNS run(s), scratch $SCRATCH" >&2
# the mount runs once per page size: expand "mount" into mount@PAGE entries
RUNMODES=
for mode in ${MODES//,/ }; do
	if [ "$mode" = mount ]; then
		for p in ${PAGES//,/ }; do RUNMODES="$RUNMODES mount@$(bytes "$p")"; done
	else
		RUNMODES="$RUNMODES $mode"
	fi
done

for run in $(seq 1 "$RUNS"); do
	for mode in $RUNMODES; do
		PAGE_B=
		case "$mode" in mount@*) PAGE_B=${mode#mount@} ;; esac
		seed=$((1000 + run))
		keys=$SCRATCH/keys.bin
		"$SORT" --generate "$KEYS" --seed "$seed" "$keys" >/dev/null
		rread=""; rwritten=""; mem=","; rc=0
		case "$mode" in
		mount@*)
			printf 'view keys\nkeys.bin 0 rest\n' >"$SCRATCH/desc.txt"
			drop_file "$keys"
			"$DAEMON" -f "$SCRATCH/desc.txt" "$MNT" \
				-o "writable,page_size=$PAGE_B,buffer_size=$BUF_B$MOUNT_OPTS" 2>"$SCRATCH/daemon.err" &
			DPID=$!
			for _ in $(seq 1 300); do
				[ -e "$MNT/keys" ] && break
				kill -0 "$DPID" 2>/dev/null || { cat "$SCRATCH/daemon.err" >&2; exit 1; }
				sleep 0.05
			done
			mem_start "$MNT/keys" "$SCRATCH/kcache.max"
			t0=$(now)
			line=$(timeout -k 10 "$TIMEOUT" "$SORT" --threads "$THREADS" "$MNT/keys") || rc=$?
			mem=$(mem_now "$MNT/keys" "$DPID" "$SCRATCH/kcache.max" | tr ' ' ',')
			mem_stop
			if [ $rc = 0 ]; then stats=$(cat "$MNT/.umapfs/stats"); else stats=; fi
			fusermount3 -u "$MNT" 2>/dev/null || { sleep 2; fusermount3 -u "$MNT"; } || fusermount3 -u -z "$MNT"
			wait "$DPID" || {
				st=$?
				# after a timeout the daemon may have been aborted: its status says nothing
				[ $rc != 0 ] || { echo "sort_bench.sh: daemon exit status $st" >&2; cat "$SCRATCH/daemon.err" >&2; exit 1; }
			}
			DPID=
			t1=$(now)
			rread=$(stat_of bytes_read "$stats")
			rwritten=$(stat_of bytes_written "$stats")
			;;
		kernel-cold|kernel-warm)
			if [ "$mode" = kernel-cold ]; then
				drop_file "$keys"
			else
				cat "$keys" >/dev/null
			fi
			t0=$(now)
			line=$(timeout -k 10 "$TIMEOUT" "$SORT" --threads "$THREADS" --mem "$BUF_B" "$keys") || rc=$?
			t1=$(now)
			;;
		*) echo "sort_bench.sh: unknown mode '$mode'" >&2; exit 2 ;;
		esac
		if [ $rc = 124 ] || [ $rc = 137 ]; then
			echo "$mode,$run,$SIZE_B,$KEYS,$BUF_B,$PAGE_B,$THREADS,$TIMEOUT,,,,,,,timeout,$mem" >&3
			echo "  run $run $mode: no result within $TIMEOUT s (recorded as a timeout)" >&2
			continue
		fi
		[ $rc = 0 ] || { echo "sort_bench.sh: $mode run $run: umapfs-sort failed (status $rc)" >&2; exit 1; }
		if "$SORT" --verify --seed "$seed" "$keys" >/dev/null; then ok=yes; else ok=no; fi
		secs=$(field seconds "$line")
		wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
		echo "$mode,$run,$SIZE_B,$KEYS,$BUF_B,$PAGE_B,$THREADS,$secs,$(field partition_s "$line"),$(field leaves_s "$line"),$(field msync_s "$line"),$wall,$rread,$rwritten,$ok,$mem" >&3
		echo "$mode $secs $ok" >>"$RESULTS"
		echo "  run $run $mode: ${secs}s (wall ${wall}s) verified=$ok" >&2
		[ "$ok" = yes ] || { echo "sort_bench.sh: $mode run $run: the result is not the sorted input" >&2; exit 1; }
	done
done

# medians and ratios
median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) exit; if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
declare -A MED
for mode in $RUNMODES; do
	MED[$mode]=$(awk -v m="$mode" '$1 == m {print $2}' "$RESULTS" | median)
	echo "median $mode: ${MED[$mode]:-none (no run finished)}${MED[$mode]:+ s}" >&2
done
for mode in $RUNMODES; do
	case "$mode" in mount@*) ;; *) continue ;; esac
	[ -n "${MED[$mode]}" ] || continue
	for k in kernel-cold kernel-warm; do
		if [ -n "${MED[$k]:-}" ]; then
			awk -v a="${MED[$mode]}" -v b="${MED[$k]}" -v m="$mode" -v k="$k" \
				'BEGIN {printf "%s / %s: %.2f (time ratio; < 1 means the mount is faster)\n", m, k, a / b}' >&2
		fi
	done
done
