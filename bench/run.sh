#!/bin/bash
# bench/run.sh: the umapfs benchmark suite, side by side in one run.
#
#   bench/run.sh [--preset default|large|quick] [--runs N] [--only LIST] [--skip LIST]
#                [--build DIR] [--scratch DIR] [--out DIR] [--no-figures] [--keep-scratch]
#
# Sections (LIST is comma-separated): disk, raw, sweep, bfs, study.
#   disk   the physical limit: O_DIRECT sequential 1 MiB QD16 and random 4 KiB QD32
#          reads through io_uring (disk_uring)
#   raw    sequential and random mmap scans of a raw view through the mount vs kernel
#          mmap of the plain file, cold and warm (mmap_scan)
#   sweep  the FITS median sweep through the mount vs kernel mmap of a pre-stitched
#          native cube vs per-pixel cfitsio, on a night that fits the buffer and one
#          four times larger (sweep_bench.sh)
#   bfs    BFS over an R-MAT CSR graph through the mount vs kernel mmap, cold and warm
#   study  the page-size study: cold BFS and sweep time at each page size for two
#          buffer sizes (the UMap paper's page-size figure)
# Every mounted run also records the daemon's peak RSS (VmHWM) and the view's
# kernel-resident bytes (fincore) against buffer_size.
#
# Writes bench/results/<UTC timestamp>/: results.csv (medians, machine described in
# its leading # lines), raw.csv (every measurement), PNG plots, log.txt; copies the
# plots and results.csv to bench/figures/; prints the table of ratios.
# Cold runs drop the page cache (root) or the backing files' pages (otherwise).
# Everything it mounts is unmounted and its scratch directory removed on exit.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
PRESET=default
BUILD=$SRC/build-bench
SCRATCH_PARENT=/var/tmp
OUT=
ONLY=disk,raw,sweep,bfs,study
SKIP=
FIGURES=1
KEEP=0
RUNS_OVERRIDE=

usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
	case "$1" in
	--preset) PRESET=$2; shift 2 ;;
	--preset=*) PRESET=${1#*=}; shift ;;
	--runs) RUNS_OVERRIDE=$2; shift 2 ;;
	--only) ONLY=$2; shift 2 ;;
	--skip) SKIP=$2; shift 2 ;;
	--build) BUILD=$2; shift 2 ;;
	--scratch) SCRATCH_PARENT=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--no-figures) FIGURES=0; shift ;;
	--keep-scratch) KEEP=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) echo "run.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
done

preset_file=$SRC/bench/presets/$PRESET.sh
if [ ! -f "$preset_file" ]; then
	echo "run.sh: no preset '$PRESET' (have: $(ls "$SRC/bench/presets" | sed 's/\.sh$//' | tr '\n' ' '))" >&2
	exit 2
fi
# shellcheck source=presets/default.sh
. "$preset_file"
if [ -n "$RUNS_OVERRIDE" ]; then
	case "$RUNS_OVERRIDE" in ''|*[!0-9]*|0) echo "run.sh: --runs needs a positive integer" >&2; exit 2 ;; esac
	RUNS=$RUNS_OVERRIDE
fi

want() { # want SECTION: is it selected?
	case ",$ONLY," in *",$1,"*) ;; *) return 1 ;; esac
	case ",$SKIP," in *",$1,"*) return 1 ;; esac
	return 0
}

# ---- sizes ---------------------------------------------------------------
bytes() { # bytes 64K -> 65536
	local v=$1 n u
	n=${v%[KkMmGgTt]}
	u=${v#"$n"}
	case "$u" in
	'') echo "$n" ;;
	[Kk]) echo $((n << 10)) ;;
	[Mm]) echo $((n << 20)) ;;
	[Gg]) echo $((n << 30)) ;;
	[Tt]) echo $((n << 40)) ;;
	esac
}

# ---- output directory, logging -------------------------------------------
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
[ -n "$OUT" ] || OUT=$SRC/bench/results/$STAMP
mkdir -p "$OUT"
RAWCSV=$OUT/raw.csv
LOG=$OUT/log.txt
exec > >(tee -a "$LOG") 2>&1
echo "section,workload,system,state,page_size,buffer_size,data_bytes,rep,metric,value,unit,better,peak_rss,peak_kcache" >"$RAWCSV"
T_START=$(date +%s)
say() { printf '[%4ds] %s\n' $(($(date +%s) - T_START)) "$*"; }

# ---- scratch, mounts, cleanup ---------------------------------------------
SCRATCH=$(mktemp -d "$SCRATCH_PARENT/umapfs-bench-XXXXXX")
MOUNTS=()      # mount points we mounted and have not unmounted
DAEMONS=()     # daemon PIDs we started and have not reaped
SAMPLER_PID=

cleanup() {
	local rc=$?
	set +e
	if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; fi
	for p in "${DAEMONS[@]}"; do [ -n "$p" ] && fuse_abort "$p"; done
	for m in "${MOUNTS[@]}"; do
		[ -n "$m" ] || continue
		fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
	done
	for p in "${DAEMONS[@]}"; do
		[ -n "$p" ] || continue
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	if [ "$KEEP" = 1 ]; then
		echo "run.sh: scratch kept in $SCRATCH"
	else
		rm -rf "$SCRATCH"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() { echo "run.sh: $*" >&2; exit 1; }

# ---- build ---------------------------------------------------------------
say "building in $BUILD"
if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" --buildtype=release -Dtests=disabled >"$OUT/build.log" 2>&1 ||
		{ cat "$OUT/build.log"; die "meson setup failed"; }
fi
ninja -C "$BUILD" >>"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; die "build failed"; }
B=$BUILD/bench
UMAPFS=$BUILD/fs/umapfs
export UMAPFS_PLUGIN_PATH=$BUILD/plugins
[ -x "$UMAPFS" ] || UMAPFS=
MMAP_SCAN=$B/mmap_scan; [ -x "$MMAP_SCAN" ] || MMAP_SCAN=
SWEEP_BENCH=$SRC/bench/sweep_bench.sh; [ -x "$SWEEP_BENCH" ] || SWEEP_BENCH=
MISSING=()

# ---- the machine ---------------------------------------------------------
describe_machine() {
	local dev
	dev=$(df --output=source "$SCRATCH" | tail -1)
	local blk=${dev#/dev/}
	blk=$(lsblk -no PKNAME "$dev" 2>/dev/null | head -1 || true)
	[ -n "$blk" ] || blk=${dev#/dev/}
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "preset: $PRESET (runs $RUNS)"
	echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
	echo "cores: $(nproc) online, $(lscpu | sed -n 's/^Thread(s) per core: *//p') thread(s) per core"
	echo "ram: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel: $(uname -sr)"
	echo "os: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
	local rota model size
	rota=$(cat "/sys/block/$blk/queue/rotational" 2>/dev/null || echo ?)
	model=$(lsblk -dno MODEL "/dev/$blk" 2>/dev/null | sed 's/ *$//' || true)
	size=$(lsblk -dno SIZE "/dev/$blk" 2>/dev/null | tr -d ' ' || true)
	echo "disk: $dev, $size, rotational=$rota${model:+, $model}, $(findmnt -no FSTYPE -T "$SCRATCH" 2>/dev/null || stat -f -c %T "$SCRATCH")"
	echo "libfuse: $(pkg-config --modversion fuse3 2>/dev/null || echo ?), liburing: $(pkg-config --modversion liburing 2>/dev/null || echo ?), cfitsio: $(pkg-config --modversion cfitsio 2>/dev/null || echo ?)"
	echo "umapfs: $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$SRC" diff --quiet HEAD 2>/dev/null || echo ' (modified tree)')"
}
describe_machine >"$OUT/machine.txt"
cat "$OUT/machine.txt"

# ---- cache control -------------------------------------------------------
# Cold runs drop the data files' pages (posix_fadvise DONTNEED through dd
# iflag=nocache) and use a fresh mount.  A global sync/drop_caches is not used
# by default: it blocks while any FUSE mount on the machine is stuck.
# UMAPFS_BENCH_DROP_ALL=1 uses echo 3 > /proc/sys/vm/drop_caches (root).
DROP=files
if [ "${UMAPFS_BENCH_DROP_ALL:-0}" = 1 ] && [ "$(id -u)" = 0 ]; then DROP=root; fi
drop_caches() { # drop_caches FILE...: make the data cold
	local f
	if [ $DROP = root ]; then
		sync
		echo 3 >/proc/sys/vm/drop_caches
	else
		for f in "$@"; do
			sync "$f" 2>/dev/null || true
			dd if="$f" iflag=nocache count=0 status=none 2>/dev/null || true
		done
	fi
}

# ---- recording -------------------------------------------------------------
# record SECTION WORKLOAD SYSTEM STATE PAGE BUF DATA REP METRIC VALUE UNIT BETTER [RSS KCACHE]
record() {
	echo "$1,$2,$3,$4,$5,$6,$7,$8,$9,${10},${11},${12},${13:-},${14:-}" >>"$RAWCSV"
}
kv() { # kv KEY "k=v k=v ..." -> v
	local k=$1; shift
	printf '%s\n' "$*" | tr ' ' '\n' | sed -n "s/^$k=//p" | head -1
}

# ---- mounts --------------------------------------------------------------
MNT_PID=
# mount_view DESC MNT PAGE_SIZE BUFFER_SIZE VIEWNAME: start the daemon, wait for the view.
mount_view() {
	local desc=$1 mnt=$2 ps=$3 buf=$4 view=$5
	mkdir -p "$mnt"
	"$UMAPFS" -f -o "page_size=$ps,buffer_size=$buf,plugin=raw" "$desc" "$mnt" \
		>>"$SCRATCH/daemon.log" 2>&1 &
	MNT_PID=$!
	DAEMONS+=("$MNT_PID")
	MOUNTS+=("$mnt")
	local i
	for i in $(seq 1 200); do
		if [ -e "$mnt/$view" ]; then return 0; fi
		kill -0 "$MNT_PID" 2>/dev/null || break
		sleep 0.05
	done
	tail -20 "$SCRATCH/daemon.log" >&2
	die "umapfs did not mount $desc on $mnt"
}
# fuse_abort PID: abort the FUSE connection the daemon PID serves (from its
# /dev/fuse fdinfo), so that a stuck mount cannot hang the run.
fuse_abort() {
	local pid=$1 fd c
	for fd in /proc/"$pid"/fd/*; do
		[ "$(readlink "$fd" 2>/dev/null)" = /dev/fuse ] || continue
		c=$(awk '/^fuse_connection:/ {print $2}' "/proc/$pid/fdinfo/${fd##*/}" 2>/dev/null)
		if [ -n "$c" ] && [ -w "/sys/fs/fuse/connections/$c/abort" ]; then
			echo "run.sh: aborting stuck FUSE connection $c of umapfs pid $pid" >&2
			echo 1 >"/sys/fs/fuse/connections/$c/abort"
		fi
	done
}
# abort_scratch_mounts: abort the FUSE connection of every umapfs daemon this
# run started through a helper script (found by the scratch path in its
# command line), so that a stuck mount cannot hang the helper's unmount.
abort_scratch_mounts() {
	local c p
	for c in /proc/[0-9]*/cmdline; do
		p=${c#/proc/}; p=${p%/cmdline}
		tr '\0' ' ' <"$c" 2>/dev/null | grep -q "fs/umapfs .*$SCRATCH" && fuse_abort "$p"
	done
	return 0
}
# guarded SECONDS CMD...: run CMD; past SECONDS, abort its stuck mounts, then wait.
guarded() {
	local limit=$1 i pid rc=0
	shift
	"$@" &
	pid=$!
	for ((i = 0; i < limit; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 1
		# An unmount of ours stuck for 20 s means a deadlocked daemon.
		if ps -eo etimes=,args= | awk -v s="$SCRATCH" '$2 ~ /fusermount|umount/ && index($0, s) && $1 > 20 {f=1} END {exit !f}'; then
			echo "run.sh: an unmount under $SCRATCH is stuck: aborting its mounts" >&2
			abort_scratch_mounts
		fi
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "run.sh: $(basename "$1") still running after $limit s: aborting its mounts" >&2
		abort_scratch_mounts
	fi
	wait "$pid" || rc=$?
	return $rc
}
umount_view() { # umount_view MNT [abort]: unmount, abort the connection if stuck
	local mnt=$1 pid=$MNT_PID i
	[ "${2:-}" = abort ] && fuse_abort "$pid"
	fusermount3 -u "$mnt" 2>/dev/null &
	local fu=$!
	for i in $(seq 1 200); do kill -0 "$fu" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$fu" 2>/dev/null; then
		fuse_abort "$pid"
	fi
	wait "$fu" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true
	for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		echo "run.sh: umapfs (pid $pid) still running after unmount: killed" >&2
		kill -9 "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || echo "run.sh: umapfs (pid $pid) exited with status $?" >&2
	local m=() d=() x
	for x in "${MOUNTS[@]}"; do [ "$x" = "$mnt" ] || m+=("$x"); done
	for x in "${DAEMONS[@]}"; do [ "$x" = "$pid" ] || d+=("$x"); done
	MOUNTS=("${m[@]+"${m[@]}"}")
	DAEMONS=("${d[@]+"${d[@]}"}")
	MNT_PID=
}

# Memory of a mount: the daemon's peak RSS and the view's kernel-resident bytes.
# mem_start FILE: sample fincore every second in the background (fincore opens
# the file; umapfs opens with keep_cache, so this does not drop the cache).
mem_start() {
	local f=$1 out=$SCRATCH/kcache.max
	echo 0 >"$out"
	(
		max=0
		while :; do
			r=$(fincore --bytes --noheadings --output RES "$f" 2>/dev/null || echo 0)
			[ "${r:-0}" -gt "$max" ] 2>/dev/null && max=$r && echo "$max" >"$out"
			sleep 1
		done
	) &
	SAMPLER_PID=$!
}
# mem_stop FILE PID: prints "PEAK_RSS PEAK_KCACHE" (bytes).
mem_stop() {
	local f=$1 pid=$2 k r
	kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null || true
	SAMPLER_PID=
	k=$(fincore --bytes --noheadings --output RES "$f" 2>/dev/null || echo 0)
	r=$(cat "$SCRATCH/kcache.max" 2>/dev/null || echo 0)
	[ "${r:-0}" -gt "${k:-0}" ] && k=$r
	r=$(awk '/^VmHWM/ {print $2 * 1024}' "/proc/$pid/status" 2>/dev/null || echo 0)
	echo "${r:-0} ${k:-0}"
}

# ====================================================================== disk
section_disk() {
	say "disk: O_DIRECT through io_uring on $SCRATCH ($DISK_SIZE)"
	local f=$SCRATCH/disk.dat out rep
	for rep in $(seq 1 "$RUNS"); do
		out=$("$B/disk_uring" -s "$DISK_SIZE" -T "$DISK_SECONDS" "$f") || die "disk_uring failed"
		echo "$out"
		local seq rnd
		seq=$(echo "$out" | grep 'test=seq')
		rnd=$(echo "$out" | grep 'test=rand')
		record disk seq-1M-qd16 disk-odirect cold 0 0 "$(bytes "$DISK_SIZE")" "$rep" bandwidth "$(kv mbps "$seq")" MB/s higher
		record disk rand-4K-qd32 disk-odirect cold 0 0 "$(bytes "$DISK_SIZE")" "$rep" bandwidth "$(kv mbps "$rnd")" MB/s higher
		record disk rand-4K-qd32 disk-odirect cold 0 0 "$(bytes "$DISK_SIZE")" "$rep" iops "$(kv iops "$rnd")" IOPS higher
	done
	rm -f "$f"
}

# ======================================================================= raw
# mmap_scan.sh (the daemon's benchmark) runs the scans; its CSV rows
# (system,page_size,mode,state,run,mbps,seconds,checksum) are folded in.
section_raw() {
	if [ -z "$UMAPFS" ] || [ -z "$MMAP_SCAN" ] || [ ! -x "$SRC/bench/mmap_scan.sh" ]; then
		MISSING+=("raw (needs fs/umapfs, bench/mmap_scan and bench/mmap_scan.sh)")
		say "raw: skipped (umapfs or mmap_scan not built)"
		return 0
	fi
	say "raw: mmap scans of a $RAW_SIZE raw view, page size $RAW_PAGE_SIZE (mmap_scan.sh)"
	local csv=$SCRATCH/raw.csv
	guarded 1800 "$SRC/bench/mmap_scan.sh" -b "$BUILD" -d "$SCRATCH/raw" -s "$RAW_SIZE" -p "$RAW_PAGE_SIZE" \
		-n "$RAW_TOUCHES" -r "$RUNS" -c "$csv" || {
		MISSING+=("raw (mmap_scan.sh failed: see log.txt)")
		return 0
	}
	local rb
	rb=$(bytes "$RAW_SIZE")
	# mmap_scan.sh mounts with buffer_size = file + 256 MiB.
	tail -n +2 "$csv" | while IFS=, read -r sys ps mode st run mbps secs sum; do
		local sysname=kernel-mmap psb=4096 buf=0
		if [ "$sys" = umapfs ]; then sysname=umapfs; psb=$(bytes "$ps"); buf=$((rb + 268435456)); fi
		local wl="seq-scan"
		[ "$mode" = rand ] && wl="rand-4K-touches"
		record raw "$wl" "$sysname" "$st" "$psb" "$buf" "$rb" "$run" bandwidth "$mbps" MB/s higher
	done
	rm -rf "$SCRATCH/raw"
}

# ===================================================================== sweep
# sweep_bench.sh (the sweep's benchmark) runs the sweeps; its CSV rows
# (night,frames,width,height,cube_bytes,buffer,page_size,backend,state,run,
# vectors,seconds,vectors_per_s) are folded in.
sweep_fold() { # sweep_fold CSV SECTION
	tail -n +2 "$1" | while IFS=, read -r night frames w h cube buf ps backend st run vec secs vps; do
		local sys=$backend psb=0 bufb=0
		case "$backend" in
		mount) sys=umapfs; psb=$(bytes "$ps"); bufb=$(bytes "$buf") ;;
		mmap) sys=kernel-mmap; psb=4096 ;;
		disk) sys=disk-odirect ;;
		esac
		local wl="sweep-$night-${frames}x${w}x${h}"
		if [ "$2" = study ]; then
			record study "sweep-$night" "$sys" "$st" "$psb" "$bufb" "$cube" "$run" time "$secs" s lower
		elif [ "$backend" = disk ]; then
			record sweep "$wl" "$sys" "$st" 0 0 "$cube" "$run" read-frames "$secs" s lower
		else
			record sweep "$wl" "$sys" "$st" "$psb" "$bufb" "$cube" "$run" rate "$vps" vectors/s higher
		fi
	done
}
section_sweep() {
	if [ -z "$UMAPFS" ] || [ -z "$SWEEP_BENCH" ] || [ ! -x "$BUILD/examples/umapfs-sweep" ]; then
		MISSING+=("sweep (needs fs/umapfs, the FITS plugin, umapfs-sweep and bench/sweep_bench.sh)")
		say "sweep: skipped (sweep_bench.sh or umapfs not there)"
		return 0
	fi
	say "sweep: nights of $SWEEP_FRAMES_FIT and $SWEEP_FRAMES_BIG frames of ${SWEEP_WIDTH}x$SWEEP_HEIGHT, buffer $SWEEP_BUFFER (sweep_bench.sh)"
	local csv=$SCRATCH/sweep.csv
	SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-300} guarded $((RUNS * 6 * ${SWEEP_TIMEOUT:-300} + 120)) "$SWEEP_BENCH" --build "$BUILD" --scratch "$SCRATCH" --out "$csv" \
		--frames-fit "$SWEEP_FRAMES_FIT" --frames-big "$SWEEP_FRAMES_BIG" \
		--width "$SWEEP_WIDTH" --height "$SWEEP_HEIGHT" --buffer "$SWEEP_BUFFER" \
		--page-size "$SWEEP_PAGE_SIZE" --vectors "$SWEEP_VECTORS" --runs "${SWEEP_RUNS:-$RUNS}" || {
		MISSING+=("sweep (sweep_bench.sh failed: see log.txt)")
		[ -s "$csv" ] || return 0
	}
	sweep_fold "$csv" sweep
}

# The sweep's half of the page-size study: the larger night, through the mount
# only, cold, at each page size and buffer (one sweep_bench.sh call each).
study_sweep() {
	if [ -z "$UMAPFS" ] || [ -z "$SWEEP_BENCH" ] || [ ! -x "$BUILD/examples/umapfs-sweep" ]; then
		MISSING+=("page-size study of the sweep (sweep_bench.sh or umapfs-sweep not there)")
		return 0
	fi
	local buf ps csv=$SCRATCH/study-sweep.csv first=1
	for buf in $STUDY_SWEEP_BUFFERS; do
		for ps in ${STUDY_SWEEP_PAGE_SIZES:-$STUDY_PAGE_SIZES}; do
			if [ "$(bytes "$ps")" -gt "$(bytes "$buf")" ]; then continue; fi
			local backends=mount
			if [ $first = 1 ]; then backends=mount,mmap; first=0; fi
			SWEEP_TIMEOUT=${STUDY_TIMEOUT:-120} guarded $((3 * ${STUDY_TIMEOUT:-120} + 120)) "$SWEEP_BENCH" --build "$BUILD" --scratch "$SCRATCH" \
				--out "$csv" --nights big --backends "$backends" \
				--frames-fit "$SWEEP_FRAMES_FIT" --frames-big "$SWEEP_FRAMES_BIG" \
				--width "$SWEEP_WIDTH" --height "$SWEEP_HEIGHT" --buffer "$buf" --page-size "$ps" \
				--vectors "$SWEEP_VECTORS" --runs "$STUDY_RUNS" >/dev/null 2>"$SCRATCH/study-sweep.err" || {
				say "study sweep page $ps buffer $buf: failed or timed out ($(tail -1 "$SCRATCH/study-sweep.err"))"
				continue
			}
			# cold rows only
			{ head -1 "$csv"; grep ',cold,' "$csv" | grep -v ',disk,'; } >"$csv.cold"
			say "study sweep page $ps buffer $buf: $(grep ',mount,cold,' "$csv" | cut -d, -f12 | tr '\n' ' ')s"
			sweep_fold "$csv.cold" study
		done
	done
}

# ======================================================================= bfs
GRAPH=
make_graph() {
	[ -n "$GRAPH" ] && return 0
	GRAPH=$SCRATCH/graph.csr
	say "bfs: generating R-MAT scale $GRAPH_SCALE edgefactor $GRAPH_EDGEFACTOR"
	"$B/rmat_gen" -s "$GRAPH_SCALE" -e "$GRAPH_EDGEFACTOR" -S 1 -m "$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 2 ))K" "$GRAPH" ||
		die "rmat_gen failed"
	printf 'view graph.csr\n%s 0 rest\n' "$GRAPH" >"$SCRATCH/graph.desc"
	GRAPH_BYTES=$(stat -c %s "$GRAPH")
	rm -f "$SCRATCH/bfs.ref"
}

# bfs_once FILE -> the bfs output line.  Every search must give the checksum
# of the first one (kept in a file: this runs in a command substitution).
bfs_once() {
	local out sum ref=$SCRATCH/bfs.ref rc=0
	out=$(timeout -k 5 "${BFS_TIMEOUT:-120}" "$B/bfs" -t "$BFS_THREADS" -r "$BFS_ROOTS" "$1") || rc=$?
	if [ $rc = 124 ] || [ $rc = 137 ]; then
		echo "run.sh: bfs on $1 did not finish within ${BFS_TIMEOUT:-120} s" >&2
		return 3
	fi
	[ $rc = 0 ] || die "bfs failed on $1"
	sum=$(kv checksum "$out")
	if [ ! -s "$ref" ]; then
		echo "$sum" >"$ref"
	elif [ "$sum" != "$(cat "$ref")" ]; then
		die "BFS over $1 gave checksum $sum, expected $(cat "$ref"): wrong bytes through the pager"
	fi
	echo "$out"
}

bfs_record() { # bfs_record SYSTEM STATE PAGE BUF REP LINE [RSS KC]
	local line=$6
	record bfs "bfs-scale$GRAPH_SCALE" "$1" "$2" "$3" "$4" "$GRAPH_BYTES" "$5" time "$(kv seconds "$line")" s lower "${7:-}" "${8:-}"
	record bfs "bfs-scale$GRAPH_SCALE" "$1" "$2" "$3" "$4" "$GRAPH_BYTES" "$5" teps "$(kv teps "$line")" TEPS higher "${7:-}" "${8:-}"
}

section_bfs() {
	make_graph
	local rep out mem ps buf
	ps=$(bytes "$BFS_PAGE_SIZE"); buf=$(bytes "$BFS_BUFFER")
	for rep in $(seq 1 "$RUNS"); do
		drop_caches "$GRAPH"
		out=$(bfs_once "$GRAPH"); say "bfs kernel-mmap cold: $out"
		bfs_record kernel-mmap cold 4096 0 "$rep" "$out"
		out=$(bfs_once "$GRAPH"); say "bfs kernel-mmap warm: $out"
		bfs_record kernel-mmap warm 4096 0 "$rep" "$out"
	done
	if [ -z "$UMAPFS" ]; then
		MISSING+=("bfs through the mount (fs/umapfs not built)")
		return 0
	fi
	local mnt=$SCRATCH/mnt-bfs cold rc
	for rep in $(seq 1 "$RUNS"); do
		drop_caches "$GRAPH"
		mount_view "$SCRATCH/graph.desc" "$mnt" "$ps" "$buf" graph.csr
		mem_start "$mnt/graph.csr"
		rc=0; cold=$(bfs_once "$mnt/graph.csr") || rc=$?
		if [ $rc != 0 ]; then
			mem_stop "$mnt/graph.csr" "$MNT_PID" >/dev/null
			umount_view "$mnt" abort
			MISSING+=("bfs through the mount, run $rep: did not finish (see log.txt)")
			continue
		fi
		say "bfs umapfs cold (page $BFS_PAGE_SIZE, buffer $BFS_BUFFER): $cold"
		rc=0; out=$(bfs_once "$mnt/graph.csr") || rc=$?
		say "bfs umapfs warm: $out"
		mem=$(mem_stop "$mnt/graph.csr" "$MNT_PID")
		umount_view "$mnt" $([ $rc = 0 ] || echo abort)
		bfs_record umapfs cold "$ps" "$buf" "$rep" "$cold" $mem
		[ $rc = 0 ] && bfs_record umapfs warm "$ps" "$buf" "$rep" "$out" $mem
	done
}

# ============================================================ page-size study
section_study() {
	if [ -z "$UMAPFS" ]; then
		MISSING+=("page-size study (fs/umapfs not built)")
		return 0
	fi
	make_graph
	local mnt=$SCRATCH/mnt-study buf ps rep out mem rc
	for buf in $STUDY_BFS_BUFFERS; do
		for ps in $STUDY_PAGE_SIZES; do
			if [ "$(bytes "$ps")" -gt "$(bytes "$buf")" ]; then continue; fi
			for rep in $(seq 1 "$STUDY_RUNS"); do
				drop_caches "$GRAPH"
				mount_view "$SCRATCH/graph.desc" "$mnt" "$(bytes "$ps")" "$(bytes "$buf")" graph.csr
				mem_start "$mnt/graph.csr"
				rc=0; out=$(BFS_TIMEOUT=${STUDY_TIMEOUT:-120} bfs_once "$mnt/graph.csr") || rc=$?
				mem=$(mem_stop "$mnt/graph.csr" "$MNT_PID")
				umount_view "$mnt" $([ $rc = 0 ] || echo abort)
				if [ $rc != 0 ]; then
					say "study bfs page $ps buffer $buf: no result within ${STUDY_TIMEOUT:-120} s"
					record study "bfs-scale$GRAPH_SCALE" umapfs cold "$(bytes "$ps")" "$(bytes "$buf")" "$GRAPH_BYTES" "$rep" timeout "${STUDY_TIMEOUT:-120}" s lower $mem
					continue
				fi
				say "study bfs page $ps buffer $buf: $(kv seconds "$out") s (rss kcache: $mem)"
				record study "bfs-scale$GRAPH_SCALE" umapfs cold "$(bytes "$ps")" "$(bytes "$buf")" "$GRAPH_BYTES" "$rep" time "$(kv seconds "$out")" s lower $mem
			done
		done
	done
	# The kernel's own paging of the plain file, as the reference line.
	for rep in $(seq 1 "$STUDY_RUNS"); do
		drop_caches "$GRAPH"
		out=$(bfs_once "$GRAPH")
		record study "bfs-scale$GRAPH_SCALE" kernel-mmap cold 4096 0 "$GRAPH_BYTES" "$rep" time "$(kv seconds "$out")" s lower
	done
	study_sweep
}

# ====================================================================== main
for s in disk raw sweep bfs study; do
	if want $s; then "section_$s"; fi
done

say "aggregating"
/usr/bin/python3 "$SRC/bench/report.py" "$OUT" "$OUT/machine.txt" || die "report.py failed"
if command -v gnuplot >/dev/null; then
	gnuplot -e "dir='$OUT'" "$SRC/bench/plot.gp" || echo "run.sh: gnuplot failed" >&2
else
	echo "run.sh: gnuplot not installed (apt-get install gnuplot-nox): no plots" >&2
fi
if [ "$FIGURES" = 1 ]; then
	mkdir -p "$SRC/bench/figures"
	cp "$OUT"/results.csv "$OUT"/ratios.md "$SRC/bench/figures/"
	cp "$OUT"/*.png "$SRC/bench/figures/" 2>/dev/null || true
fi
cat "$OUT/ratios.md"
if [ ${#MISSING[@]} -gt 0 ]; then
	echo
	echo "Not measured in this run:"
	printf '  - %s\n' "${MISSING[@]}"
fi
say "done: $OUT"
