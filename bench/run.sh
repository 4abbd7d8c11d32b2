#!/bin/bash
# bench/run.sh: the umapfs benchmark suite, side by side in one run.
#
#   bench/run.sh [--preset default|large|quick|FILE] [--runs N] [--only LIST] [--skip LIST]
#                [--build DIR] [--scratch DIR] [--out DIR] [--no-figures] [--keep-scratch]
#                [--dry-run]
#
# Sections (LIST is comma-separated), in the order they run:
#   disk   the physical limit: O_DIRECT sequential 1 MiB QD16 and random 4 KiB QD32
#          reads through io_uring (disk_uring)
#   engine random page reads through the engine (umapfs_view_read) vs O_DIRECT pread
#          of the same pages (engine_random)
#   uffd   the in-process userfaultfd mapping (umapfs_map_*) vs kernel mmap: cost per
#          fault and random 4 KiB reads of a cold file at each page size (uffd_fault)
#   raw    sequential and random mmap scans of a raw view through the mount vs kernel
#          mmap of the plain file, cold and warm (mmap_scan.sh)
#   sweep  the FITS median sweep through the mount vs kernel mmap of a pre-stitched
#          native cube vs per-pixel cfitsio, on a night that fits the buffer and one
#          four times larger, mounted with a page of a band of rows (sweep_bench.sh)
#   bfs    BFS over an R-MAT CSR graph through the mount vs kernel mmap, cold and warm
#   sort   the in-place out-of-core sort through a writable mount vs kernel mmap
#          (sort_bench.sh)
#   study  the page-size study: cold BFS and sweep time at each page size for two
#          buffer sizes (the UMap paper's page-size figure)
# Every mounted run also records the daemon's peak RSS (VmHWM) and the view's
# kernel-resident bytes (fincore, sampled) against buffer_size.  A run past its
# time limit is recorded as a timeout, never as a result.
#
# --runs N sets RUNS, SWEEP_RUNS and STUDY_RUNS.  --dry-run checks the preset and
# prints the plan (sections, sizes, data on disk, time limits) without building,
# mounting or writing anything.
#
# Writes bench/results/<UTC timestamp>/ (or --out): results.csv (medians, machine
# described in its leading # lines), raw.csv (every measurement), ratios.md, PNG
# plots, log.txt; copies the plots, results.csv and ratios.md to bench/figures/
# (not with --no-figures); prints the table of ratios.
# Cold runs drop the data files' pages (UMAPFS_BENCH_DROP_ALL=1: all caches, root).
# Everything it mounts is unmounted and its scratch directory removed on exit.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
PRESET=default
BUILD=$SRC/build-bench
SCRATCH_PARENT=/var/tmp
OUT=
SECTIONS="disk engine uffd raw sweep bfs sort study"
ONLY=${SECTIONS// /,}
SKIP=
FIGURES=1
KEEP=0
DRY=0
RUNS_OVERRIDE=

usage() { sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; }

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
	--dry-run) DRY=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) echo "run.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
done

case "$PRESET" in
*/*) preset_file=$PRESET ;; # a preset file of one's own
*) preset_file=$SRC/bench/presets/$PRESET.sh ;;
esac
if [ ! -f "$preset_file" ]; then
	echo "run.sh: no preset '$PRESET' (have: $(ls "$SRC/bench/presets" | sed 's/\.sh$//' | tr '\n' ' '))" >&2
	exit 2
fi
# shellcheck source=presets/default.sh
. "$preset_file"
if [ -n "$RUNS_OVERRIDE" ]; then
	case "$RUNS_OVERRIDE" in ''|*[!0-9]*|0) echo "run.sh: --runs needs a positive integer" >&2; exit 2 ;; esac
	RUNS=$RUNS_OVERRIDE SWEEP_RUNS=$RUNS_OVERRIDE STUDY_RUNS=$RUNS_OVERRIDE
fi

for s in ${ONLY//,/ } ${SKIP//,/ }; do
	case " $SECTIONS " in *" $s "*) ;; *) echo "run.sh: no section '$s' (have: $SECTIONS)" >&2; exit 2 ;; esac
done
want() { # want SECTION: is it selected?
	case ",$ONLY," in *",$1,"*) ;; *) return 1 ;; esac
	case ",$SKIP," in *",$1,"*) return 1 ;; esac
	return 0
}

# ---- sizes ---------------------------------------------------------------
bytes() { # bytes 64K -> 65536 (sizes are checked by check_preset)
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
human() { # human 65536 -> 64K, 1.5 GiB -> 1.5G
	awk -v n="$1" 'BEGIN {
		split("T G M K", u, " "); split("40 30 20 10", sh, " ")
		for (i = 1; i <= 4; i++) { d = 2 ^ sh[i]; if (n >= d) {
			if (n % d == 0) printf "%d%s\n", n / d, u[i]; else printf "%.1f%s\n", n / d, u[i]; exit } }
		printf "%d\n", n }'
}

# ---- the preset: every variable the selected sections need ------------------
# Sizes: bytes with an optional K/M/G/T suffix (powers of 1024); page sizes:
# powers of two from 4K; lists: space-separated.
VARS_disk="DISK_SIZE DISK_SECONDS"
VARS_engine="ENGINE_SIZE ENGINE_BUFFER ENGINE_PAGE_SIZES ENGINE_THREADS ENGINE_MIB TOOL_TIMEOUT"
VARS_uffd="UFFD_FAULT_SIZE UFFD_TP_SIZE UFFD_TP_BUFFER UFFD_SECONDS UFFD_THREADS TOOL_TIMEOUT"
VARS_raw="RAW_SIZE RAW_PAGE_SIZES RAW_BUFFER RAW_TOUCHES"
VARS_sweep="SWEEP_FRAMES_FIT SWEEP_FRAMES_BIG SWEEP_WIDTH SWEEP_HEIGHT SWEEP_BUFFER SWEEP_PAGE_SIZE
	SWEEP_PAGE_SIZE_BIG SWEEP_VECTORS SWEEP_RUNS SWEEP_TIMEOUT"
VARS_bfs="GRAPH_SCALE GRAPH_EDGEFACTOR BFS_THREADS BFS_ROOTS BFS_PAGE_SIZE BFS_BUFFER BFS_TIMEOUT"
VARS_sort="SORT_SIZE SORT_BUFFER SORT_PAGE_SIZES SORT_THREADS SORT_TIMEOUT"
VARS_study="GRAPH_SCALE GRAPH_EDGEFACTOR BFS_THREADS BFS_ROOTS STUDY_PAGE_SIZES STUDY_BFS_BUFFERS
	STUDY_SWEEP_BUFFERS STUDY_SWEEP_PAGE_SIZES STUDY_RUNS STUDY_TIMEOUT SWEEP_FRAMES_FIT SWEEP_FRAMES_BIG
	SWEEP_WIDTH SWEEP_HEIGHT SWEEP_VECTORS"
check_preset() { # every variable of the selected sections set and well-formed
	local bad=() s v x seen=" "
	is_size() { [[ $1 =~ ^[0-9]+[KkMmGgTt]?$ ]] && [ "$(bytes "$1")" -gt 0 ]; }
	is_page() { is_size "$1" && local b && b=$(bytes "$1") && [ "$b" -ge 4096 ] && [ $((b & (b - 1))) = 0 ]; }
	is_int() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -gt 0 ]; }
	is_num() { [[ $1 =~ ^[0-9]*\.?[0-9]+$ ]]; }
	[ -n "${RUNS:-}" ] && is_int "$RUNS" || bad+=("RUNS='${RUNS:-}' (a positive integer)")
	for s in $SECTIONS; do
		want "$s" || continue
		v=VARS_$s
		for v in ${!v}; do
			case "$seen" in *" $v "*) continue ;; esac
			seen="$seen$v "
			if [ -z "${!v+set}" ] || [ -z "${!v}" ]; then
				bad+=("$v is not set (needed by section $s)")
				continue
			fi
			case "$v" in
			*_PAGE_SIZE|*_PAGE_SIZE_BIG|*_PAGE_SIZES)
				for x in ${!v}; do is_page "$x" || bad+=("$v: '$x' is not a power-of-two page size >= 4K"); done ;;
			*_SIZE|*_BUFFER|*_BUFFERS)
				for x in ${!v}; do is_size "$x" || bad+=("$v: '$x' is not a size"); done ;;
			*_SECONDS) is_num "${!v}" || bad+=("$v='${!v}' (seconds)") ;;
			*_THREADS)
				for x in ${!v}; do is_int "$x" || bad+=("$v: '$x' is not a positive integer"); done ;;
			*) is_int "${!v}" || bad+=("$v='${!v}' (a positive integer)") ;;
			esac
		done
	done
	if want uffd; then
		for v in UFFD_FAULT_SIZE UFFD_TP_SIZE UFFD_TP_BUFFER; do
			is_size "${!v:-}" || continue
			[ $(($(bytes "${!v}") % 1048576)) = 0 ] || bad+=("$v: uffd_fault takes whole MiB")
		done
		! is_int "${UFFD_THREADS:-}" || [ "$UFFD_THREADS" -le 16 ] || bad+=("UFFD_THREADS: at most 16")
	fi
	if want engine; then
		for x in ${ENGINE_THREADS:-}; do
			! is_int "$x" || [ "$x" -le 4 ] || bad+=("ENGINE_THREADS: at most 4 each")
		done
		set -- ${ENGINE_THREADS:-}
		[ $# -le 4 ] || bad+=("ENGINE_THREADS: at most 4 thread counts")
	fi
	if [ ${#bad[@]} -gt 0 ]; then
		echo "run.sh: preset '$PRESET' ($preset_file):" >&2
		printf '  %s\n' "${bad[@]}" >&2
		exit 2
	fi
}
check_preset

# ---- the plan (--dry-run) --------------------------------------------------
# Estimated bytes each section creates in the scratch directory.
csr_bytes() { # upper bound of the CSR file: header, n+1 offsets, 2*ef*n neighbours of 4 bytes
	local n=$((1 << GRAPH_SCALE))
	echo $((4096 + (n + 1) * 8 + 4096 + 2 * GRAPH_EDGEFACTOR * n * 4))
}
night_bytes() { # night_bytes FRAMES: float32 frames with FITS headers (2880-byte blocks)
	local f=$(($1 * SWEEP_WIDTH * SWEEP_HEIGHT * 4))
	echo $((f + $1 * 2880 * 2))
}
npoints() { # npoints "PAGES" "BUFFERS": study points (page <= buffer)
	local n=0 p b
	for b in $2; do for p in $1; do [ "$(bytes "$p")" -gt "$(bytes "$b")" ] || n=$((n + 1)); done; done
	echo $n
}
plan() {
	local s peak=0 graph=0 d line limit=0
	printf 'bench/run.sh plan: preset %s (%s), runs %s, scratch under %s\n' "$PRESET" "$preset_file" \
		"$RUNS" "$SCRATCH_PARENT"
	want bfs || want study && graph=$(csr_bytes)
	for s in $SECTIONS; do
		want "$s" || { printf '  %-7s skipped\n' "$s"; continue; }
		d=0
		case $s in
		disk)
			d=$(bytes "$DISK_SIZE")
			line="O_DIRECT reads of a $DISK_SIZE file: sequential 1 MiB QD16, random 4 KiB QD32 for ${DISK_SECONDS} s; x$RUNS" ;;
		engine)
			d=$(bytes "$ENGINE_SIZE")
			set -- $ENGINE_PAGE_SIZES
			line="engine vs O_DIRECT pread: $ENGINE_SIZE file, buffer $ENGINE_BUFFER, pages $ENGINE_PAGE_SIZES, threads $ENGINE_THREADS, passes of $ENGINE_MIB MiB (2 rounds x 2 passes x 2 sides); x$RUNS"
			limit=$((limit + RUNS * $# * TOOL_TIMEOUT)) ;;
		uffd)
			d=$(($(bytes "$UFFD_FAULT_SIZE") > $(bytes "$UFFD_TP_SIZE") ? $(bytes "$UFFD_FAULT_SIZE") : $(bytes "$UFFD_TP_SIZE")))
			line="userfaultfd mapping vs kernel mmap: faults over $UFFD_FAULT_SIZE (also in /dev/shm), random reads of a $UFFD_TP_SIZE file with buffer $UFFD_TP_BUFFER, ${UFFD_SECONDS} s per page size 4K..4M, $UFFD_THREADS threads; x$RUNS"
			limit=$((limit + RUNS * TOOL_TIMEOUT)) ;;
		raw)
			d=$(bytes "$RAW_SIZE")
			line="mmap scans of a $RAW_SIZE raw view: pages $RAW_PAGE_SIZES, buffer $RAW_BUFFER, $RAW_TOUCHES random 4 KiB touches; seq+rand, cold+warm, mount vs kernel; x$RUNS" ;;
		sweep)
			d=$((2 * $(night_bytes "$SWEEP_FRAMES_BIG")))
			line="FITS sweep, $SWEEP_VECTORS vectors: night of $SWEEP_FRAMES_FIT frames ($(human "$(night_bytes "$SWEEP_FRAMES_FIT")")) page $SWEEP_PAGE_SIZE, night of $SWEEP_FRAMES_BIG frames ($(human "$(night_bytes "$SWEEP_FRAMES_BIG")")) page $SWEEP_PAGE_SIZE_BIG, ${SWEEP_WIDTH}x$SWEEP_HEIGHT float32, buffer $SWEEP_BUFFER; mount vs mmap vs cfitsio, cold+warm; x$SWEEP_RUNS, ${SWEEP_TIMEOUT} s limit per sweep"
			limit=$((limit + SWEEP_RUNS * 12 * SWEEP_TIMEOUT)) ;;
		bfs)
			line="BFS: R-MAT scale $GRAPH_SCALE edgefactor $GRAPH_EDGEFACTOR (CSR at most $(human "$(csr_bytes)")), $BFS_THREADS threads, $BFS_ROOTS roots, page $BFS_PAGE_SIZE, buffer $BFS_BUFFER; mount vs kernel, cold+warm; x$RUNS, ${BFS_TIMEOUT} s limit per search"
			limit=$((limit + RUNS * 4 * BFS_TIMEOUT)) ;;
		sort)
			d=$(bytes "$SORT_SIZE")
			set -- $SORT_PAGE_SIZES
			line="in-place sort of $SORT_SIZE of keys: writable mount at pages $SORT_PAGE_SIZES, buffer $SORT_BUFFER, vs kernel mmap cold and warm, $SORT_THREADS threads; $(($# + 2)) sorts x$RUNS, ${SORT_TIMEOUT} s limit each"
			limit=$((limit + RUNS * ($# + 2) * SORT_TIMEOUT)) ;;
		study)
			local nb ns
			nb=$(npoints "$STUDY_PAGE_SIZES" "$STUDY_BFS_BUFFERS")
			ns=$(npoints "$STUDY_SWEEP_PAGE_SIZES" "$STUDY_SWEEP_BUFFERS")
			d=$((2 * $(night_bytes "$SWEEP_FRAMES_BIG")))
			line="page-size study, cold, x$STUDY_RUNS, ${STUDY_TIMEOUT} s limit per point: BFS at pages $STUDY_PAGE_SIZES x buffers $STUDY_BFS_BUFFERS ($nb points); sweep of the $SWEEP_FRAMES_BIG-frame night at pages $STUDY_SWEEP_PAGE_SIZES x buffers $STUDY_SWEEP_BUFFERS ($ns points)"
			limit=$((limit + (nb + ns) * STUDY_RUNS * STUDY_TIMEOUT)) ;;
		esac
		printf '  %-7s %s\n' "$s" "$line" | fold -s -w 100 | sed '2,$s/^/          /'
		[ "$d" = 0 ] || printf '          data: %s\n' "$(human "$d")"
		[ $((d + graph)) -le "$peak" ] || peak=$((d + graph))
	done
	[ "$graph" = 0 ] || printf '  the graph (%s at most) stays in scratch from bfs through study\n' "$(human "$graph")"
	local free ram
	free=$(df -P -B1 "$SCRATCH_PARENT" 2>/dev/null | awk 'NR == 2 {print $4}')
	ram=$(awk '/MemTotal/ {printf "%.0f\n", $2 * 1024}' /proc/meminfo)
	printf 'scratch: at most about %s at once; %s free in %s%s\n' "$(human "$peak")" "$(human "${free:-0}")" \
		"$SCRATCH_PARENT" "$([ "${free:-0}" -ge "$peak" ] || echo ' -- NOT ENOUGH on this machine')"
	local big=0 v x
	for v in RAW_BUFFER BFS_BUFFER SWEEP_BUFFER SORT_BUFFER ENGINE_BUFFER UFFD_TP_BUFFER STUDY_BFS_BUFFERS STUDY_SWEEP_BUFFERS; do
		for x in ${!v:-}; do [ "$(bytes "$x")" -le "$big" ] || big=$(bytes "$x"); done
	done
	# a mount can hold buffer_size in the daemon plus the view in the kernel cache
	printf 'largest buffer_size: %s (a mount may use twice that); RAM here: %s%s\n' "$(human "$big")" \
		"$(human "$ram")" "$([ $((2 * big)) -lt "$ram" ] || echo ' -- NOT ENOUGH on this machine (the preset is for bigger hardware)')"
	printf 'time limits: if every limited run timed out, they would add up to %s min\n' "$((limit / 60))"
}
if [ "$DRY" = 1 ]; then
	plan
	exit 0
fi

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
SHM_FILES=()   # /dev/shm directories (uffd_fault's in-memory copies)
# shellcheck source=mem.sh
. "$SRC/bench/mem.sh"

GUARDED_PID=  # a helper script running under guarded
descendants() { # descendants PID: its children, grandchildren, ...
	local c
	for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		echo "$c"
		descendants "$c"
	done
}

cleanup() {
	local rc=$?
	set +e
	if [ -n "$GUARDED_PID" ] && kill -0 "$GUARDED_PID" 2>/dev/null; then
		# stop the helper and what it runs; its own exit trap unmounts its mount
		local kids i
		kids=$(descendants "$GUARDED_PID")
		# shellcheck disable=SC2086
		kill -TERM "$GUARDED_PID" $kids 2>/dev/null
		abort_scratch_mounts
		for i in $(seq 1 20); do kill -0 "$GUARDED_PID" 2>/dev/null || break; sleep 0.5; done
		# shellcheck disable=SC2086
		kill -KILL "$GUARDED_PID" $kids 2>/dev/null
	fi
	mem_stop
	[ ${#SHM_FILES[@]} = 0 ] || rm -rf "${SHM_FILES[@]}"
	for p in "${DAEMONS[@]}"; do [ -n "$p" ] && fuse_abort "$p"; done
	reap_scratch_daemons
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
SORT_BENCH=$SRC/bench/sort_bench.sh; [ -x "$SORT_BENCH" ] && [ -x "$BUILD/examples/umapfs-sort" ] || SORT_BENCH=
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
		{ tr '\0' ' ' <"$c"; } 2>/dev/null | grep -q "fs/umapfs .*$SCRATCH" && fuse_abort "$p"
	done
	return 0
}
# guarded SECONDS CMD...: run CMD; past SECONDS, abort its stuck mounts, then wait.
guarded() {
	local limit=$1 i pid rc=0
	shift
	"$@" &
	pid=$!
	GUARDED_PID=$pid
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
	GUARDED_PID=
	reap_scratch_daemons
	return $rc
}
# reap_scratch_daemons: a helper script that has finished leaves no daemon;
# one still running under the scratch directory (a lazy unmount of a stuck
# mount) has its connection aborted and is killed.
reap_scratch_daemons() {
	local c p i
	for c in /proc/[0-9]*/cmdline; do
		p=${c#/proc/}; p=${p%/cmdline}
		{ tr '\0' ' ' <"$c"; } 2>/dev/null | grep -q "fs/umapfs .*$SCRATCH" || continue
		case " ${DAEMONS[*]:-} " in *" $p "*) continue ;; esac
		echo "run.sh: umapfs pid $p (under $SCRATCH) outlived its script: aborting it" >&2
		fuse_abort "$p"
		for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
		kill -9 "$p" 2>/dev/null || true
	done
	return 0
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

# Memory of a mount (bench/mem.sh): the daemon's peak RSS and the view's
# kernel-resident bytes, sampled from the mount to the end of its last run.
mount_mem_start() { mem_start "$1" "$SCRATCH/kcache.max"; }
mount_mem() { mem_now "$1" "$2" "$SCRATCH/kcache.max"; } # FILE PID -> "PEAK_RSS PEAK_KCACHE"

make_data() { # make_data FILE SIZE: random bytes, on disk, not in the page cache
	head -c "$2" /dev/urandom >"$1"
	sync "$1"
	dd if="$1" iflag=nocache count=0 status=none 2>/dev/null || true
}
timed_out() { [ "$1" = 124 ] || [ "$1" = 137 ]; } # timed_out STATUS (of timeout(1))

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

# ==================================================================== engine
# engine_random (the engine's benchmark) reads the same random page sequences
# through a fresh engine (umapfs_view_read; cold: from an empty buffer, warm:
# the next pass, buffer full) and with O_DIRECT pread (no cache: "cold"); its
# CSV rows (page,threads,pages_per_pass,raw_mbps,engine_cold_mbps,
# engine_warm_mbps,cold_ratio,warm_ratio,warm_hit_pct,peak_rss) are folded in;
# peak_rss is engine_random's own (one call per page size), in the memory table.
section_engine() {
	if [ ! -x "$B/engine_random" ]; then
		MISSING+=("engine (bench/engine_random not built)")
		say "engine: skipped (engine_random not built)"
		return 0
	fi
	say "engine: random page reads, engine vs O_DIRECT pread: $ENGINE_SIZE file, buffer $ENGINE_BUFFER, pages $ENGINE_PAGE_SIZES, threads $ENGINE_THREADS (engine_random)"
	local f=$SCRATCH/engine.dat size buf rep ps out rc p t n rawm cold warm cr wr hit wl
	size=$(bytes "$ENGINE_SIZE")
	buf=$(bytes "$ENGINE_BUFFER")
	make_data "$f" "$size"
	for rep in $(seq 1 "$RUNS"); do
		for ps in $ENGINE_PAGE_SIZES; do
			rc=0
			out=$(timeout -k 10 "$TOOL_TIMEOUT" "$B/engine_random" --file "$f" --buffer "$ENGINE_BUFFER" \
				--pages "$ps" --threads "$(echo $ENGINE_THREADS | tr ' ' ,)" --mib "$ENGINE_MIB" --csv) || rc=$?
			if [ $rc != 0 ]; then
				timed_out $rc && rc="no result within $TOOL_TIMEOUT s" || rc="status $rc"
				say "engine page $ps run $rep: engine_random failed ($rc)"
				MISSING+=("engine, page $ps, run $rep: engine_random failed ($rc)")
				continue
			fi
			while IFS=, read -r p t n rawm cold warm cr wr hit rss; do
				wl="rand-read-$(human "$p")-${t}t"
				# memory: the process's peak RSS (the engine); O_DIRECT leaves no page cache
				record engine "$wl" umapfs cold "$p" "$buf" "$size" "$rep" bandwidth "$cold" MB/s higher "$rss" 0
				record engine "$wl" umapfs warm "$p" "$buf" "$size" "$rep" bandwidth "$warm" MB/s higher "$rss" 0
				record engine "$wl" odirect-pread cold "$p" 0 "$size" "$rep" bandwidth "$rawm" MB/s higher
				say "engine page $(human "$p"), $t threads: engine cold $cold MB/s, warm $warm MB/s ($hit% hits), O_DIRECT pread $rawm MB/s"
			done < <(echo "$out" | tail -n +2)
		done
	done
	rm -f "$f"
}

# ====================================================================== uffd
# uffd_fault (the mapping's benchmark): its CSV rows (section,page_size,
# backing,umapfs,kernel_mmap,unit,ratio) are folded in.  Per-fault cost (µs to
# make one page accessible) with the bytes on disk (cold), in memory (warm: a
# /dev/shm copy, which the kernel maps from its cache and the engine reads with
# O_DIRECT) and already in the engine's buffer ("resident": umapfs only); and
# random 4 KiB reads per second of a cold file through the mapping at each
# page size against kernel mmap (MADV_RANDOM) of the same file.
section_uffd() {
	if [ ! -x "$B/uffd_fault" ]; then
		MISSING+=("uffd (bench/uffd_fault not built)")
		say "uffd: skipped (uffd_fault not built)"
		return 0
	fi
	local shm rep rc sec ps backing u k unit ratio kdone fs ts tb
	if ! shm=$(mktemp -d /dev/shm/umapfs-bench-XXXXXX); then
		MISSING+=("uffd (no /dev/shm for the in-memory copy)")
		return 0
	fi
	SHM_FILES+=("$shm")
	fs=$(bytes "$UFFD_FAULT_SIZE"); ts=$(bytes "$UFFD_TP_SIZE"); tb=$(bytes "$UFFD_TP_BUFFER")
	say "uffd: userfaultfd mapping vs kernel mmap: faults over $UFFD_FAULT_SIZE, random reads of $UFFD_TP_SIZE through a $UFFD_TP_BUFFER buffer, $UFFD_THREADS threads (uffd_fault)"
	for rep in $(seq 1 "$RUNS"); do
		rc=0
		timeout -k 10 "$TOOL_TIMEOUT" "$B/uffd_fault" -c -d "$SCRATCH" -m "$shm" -s $((fs >> 20)) -S $((ts >> 20)) \
			-b $((tb >> 20)) -t "$UFFD_SECONDS" -j "$UFFD_THREADS" >"$SCRATCH/uffd.csv" || rc=$?
		rm -f "$shm"/* "$SCRATCH"/uffd_fault-*.dat
		if [ $rc != 0 ]; then
			timed_out $rc && rc="no result within $TOOL_TIMEOUT s" || rc="status $rc"
			say "uffd run $rep: uffd_fault failed ($rc)"
			MISSING+=("uffd, run $rep: uffd_fault failed ($rc)")
			continue
		fi
		kdone=0
		while IFS=, read -r sec ps backing u k unit ratio; do
			case "$sec/$backing" in
			fault/resident)
				record uffd "fault-$(human "$ps")-resident" umapfs warm "$ps" $((fs + ps)) "$fs" "$rep" fault-time "$u" us/page lower ;;
			fault/*)
				local st=cold
				[ "$backing" = cached ] && st=warm
				record uffd "fault-$(human "$ps")" umapfs "$st" "$ps" $((fs + ps)) "$fs" "$rep" fault-time "$u" us/page lower
				record uffd "fault-$(human "$ps")" kernel-mmap "$st" 4096 0 "$fs" "$rep" fault-time "$k" us/page lower ;;
			random/*)
				record uffd "rand-reads-${UFFD_THREADS}t" umapfs cold "$ps" "$tb" "$ts" "$rep" rate "$u" reads/s higher
				if [ $kdone = 0 ]; then # one kernel measurement for all page sizes
					record uffd "rand-reads-${UFFD_THREADS}t" kernel-mmap cold 4096 0 "$ts" "$rep" rate "$k" reads/s higher
					kdone=1
				fi ;;
			esac
		done < <(tail -n +2 "$SCRATCH/uffd.csv")
		say "uffd run $rep: $(tail -n +2 "$SCRATCH/uffd.csv" | awk -F, '$7 != "" {printf "%s %s %s: %.2fx; ", $1, $2, $3, $7}')"
	done
	rm -rf "$shm"
}

# ======================================================================= raw
# mmap_scan.sh (the daemon's benchmark) runs the scans; its CSV rows
# (system,page_size,mode,state,run,mbps,seconds,checksum,peak_rss,peak_kcache)
# are folded in.
section_raw() {
	if [ -z "$UMAPFS" ] || [ -z "$MMAP_SCAN" ] || [ ! -x "$SRC/bench/mmap_scan.sh" ]; then
		MISSING+=("raw (needs fs/umapfs, bench/mmap_scan and bench/mmap_scan.sh)")
		say "raw: skipped (umapfs or mmap_scan not built)"
		return 0
	fi
	say "raw: mmap scans of a $RAW_SIZE raw view, page sizes $RAW_PAGE_SIZES, buffer $RAW_BUFFER (mmap_scan.sh)"
	local csv=$SCRATCH/raw.csv
	guarded 1800 "$SRC/bench/mmap_scan.sh" -b "$BUILD" -d "$SCRATCH/raw" -s "$RAW_SIZE" -p "$RAW_PAGE_SIZES" \
		-B "$RAW_BUFFER" -n "$RAW_TOUCHES" -r "$RUNS" -c "$csv" || {
		MISSING+=("raw (mmap_scan.sh failed: see log.txt)")
		rm -rf "$SCRATCH/raw"
		return 0
	}
	local rb buf
	rb=$(bytes "$RAW_SIZE")
	buf=$(bytes "$RAW_BUFFER")
	tail -n +2 "$csv" | while IFS=, read -r sys ps mode st run mbps secs sum rss kc; do
		local sysname=kernel-mmap psb=4096 b=0
		if [ "$sys" = umapfs ]; then sysname=umapfs; psb=$(bytes "$ps"); b=$buf; fi
		local wl="seq-scan"
		[ "$mode" = rand ] && wl="rand-4K-touches"
		[ "$mode" = sparse ] && wl="sparse-4K-touches"
		record raw "$wl" "$sysname" "$st" "$psb" "$b" "$rb" "$run" bandwidth "$mbps" MB/s higher "$rss" "$kc"
	done
	rm -rf "$SCRATCH/raw"
}

# ===================================================================== sweep
# sweep_bench.sh (the sweep's benchmark) runs the sweeps; its CSV rows
# (night,frames,width,height,cube_bytes,buffer,page_size,backend,state,run,
# vectors,seconds,vectors_per_s,peak_rss,peak_kcache) are folded in; a sweep
# past its limit has vectors_per_s "timeout" and is recorded as a timeout.
sweep_fold() { # sweep_fold CSV SECTION
	tail -n +2 "$1" | while IFS=, read -r night frames w h cube buf ps backend st run vec secs vps rss kc; do
		local sys=$backend psb=0 bufb=0
		case "$backend" in
		mount) sys=umapfs; psb=$(bytes "$ps"); bufb=$(bytes "$buf") ;;
		mmap) sys=kernel-mmap; psb=4096 ;;
		disk) sys=disk-odirect ;;
		esac
		local wl="sweep-$night-${frames}x${w}x${h}" sec=$2
		[ "$sec" = study ] && wl="sweep-$night"
		if [ "$vps" = timeout ]; then
			record "$sec" "$wl" "$sys" "$st" "$psb" "$bufb" "$cube" "$run" timeout "$secs" s lower "$rss" "$kc"
		elif [ "$sec" = study ]; then
			record study "$wl" "$sys" "$st" "$psb" "$bufb" "$cube" "$run" time "$secs" s lower "$rss" "$kc"
		elif [ "$backend" = disk ]; then
			record sweep "$wl" "$sys" "$st" 0 0 "$cube" "$run" read-frames "$secs" s lower
		else
			record sweep "$wl" "$sys" "$st" "$psb" "$bufb" "$cube" "$run" rate "$vps" vectors/s higher "$rss" "$kc"
		fi
	done
}
have_sweep() { [ -n "$UMAPFS" ] && [ -n "$SWEEP_BENCH" ] && [ -x "$BUILD/examples/umapfs-sweep" ]; }
section_sweep() {
	if ! have_sweep; then
		MISSING+=("sweep (needs fs/umapfs, the FITS plugin, umapfs-sweep and bench/sweep_bench.sh)")
		say "sweep: skipped (sweep_bench.sh or umapfs not there)"
		return 0
	fi
	say "sweep: nights of $SWEEP_FRAMES_FIT and $SWEEP_FRAMES_BIG frames of ${SWEEP_WIDTH}x$SWEEP_HEIGHT, buffer $SWEEP_BUFFER, pages $SWEEP_PAGE_SIZE and $SWEEP_PAGE_SIZE_BIG (sweep_bench.sh)"
	local csv=$SCRATCH/sweep.csv
	# 2 nights x 3 backends x cold+warm sweeps per run, each within SWEEP_TIMEOUT
	SWEEP_TIMEOUT=$SWEEP_TIMEOUT guarded $((SWEEP_RUNS * 12 * (SWEEP_TIMEOUT + 15) + 300)) "$SWEEP_BENCH" \
		--build "$BUILD" --scratch "$SCRATCH" --out "$csv" \
		--frames-fit "$SWEEP_FRAMES_FIT" --frames-big "$SWEEP_FRAMES_BIG" \
		--width "$SWEEP_WIDTH" --height "$SWEEP_HEIGHT" --buffer "$SWEEP_BUFFER" \
		--page-size "$SWEEP_PAGE_SIZE" --page-size-big "$SWEEP_PAGE_SIZE_BIG" \
		--vectors "$SWEEP_VECTORS" --runs "$SWEEP_RUNS" || {
		MISSING+=("sweep (sweep_bench.sh failed: see log.txt)")
		[ -s "$csv" ] || return 0
	}
	sweep_fold "$csv" sweep
}

# The sweep's half of the page-size study: the larger night, through the mount
# only, cold, at each page size and buffer (one sweep_bench.sh call each).
study_sweep() {
	if ! have_sweep; then
		MISSING+=("page-size study of the sweep (sweep_bench.sh or umapfs-sweep not there)")
		return 0
	fi
	local buf ps csv=$SCRATCH/study-sweep.csv first=1 backends r
	for buf in $STUDY_SWEEP_BUFFERS; do
		for ps in $STUDY_SWEEP_PAGE_SIZES; do
			if [ "$(bytes "$ps")" -gt "$(bytes "$buf")" ]; then continue; fi
			backends=mount
			if [ $first = 1 ]; then backends=mount,mmap; first=0; fi
			SWEEP_TIMEOUT=$STUDY_TIMEOUT guarded $((STUDY_RUNS * 2 * (STUDY_TIMEOUT + 15) + 300)) "$SWEEP_BENCH" \
				--build "$BUILD" --scratch "$SCRATCH" --out "$csv" --nights big --backends "$backends" --cold-only \
				--frames-fit "$SWEEP_FRAMES_FIT" --frames-big "$SWEEP_FRAMES_BIG" \
				--width "$SWEEP_WIDTH" --height "$SWEEP_HEIGHT" --buffer "$buf" \
				--page-size "$ps" --page-size-big "$ps" \
				--vectors "$SWEEP_VECTORS" --runs "$STUDY_RUNS" >/dev/null 2>"$SCRATCH/study-sweep.err" || {
				say "study sweep page $ps buffer $buf: failed ($(tail -1 "$SCRATCH/study-sweep.err"))"
				MISSING+=("page-size study of the sweep, page $ps buffer $buf: sweep_bench.sh failed")
				continue
			}
			{ head -1 "$csv"; grep ',cold,' "$csv" | grep -v ',disk,'; } >"$csv.cold"
			r=$(awk -F, '$8 == "mount" {print ($13 == "timeout") ? "timeout" : $12 " s"}' "$csv" | tr '\n' ' ')
			say "study sweep page $ps buffer $buf: $r"
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
	rm -f "$SCRATCH"/bfs.ref.*
}

# bfs_once FILE -> the bfs output line; returns 3 past BFS_TIMEOUT, 4 if bfs
# failed.  Every search must give the checksum of the first one (kept in a
# file: this runs in a command substitution), or the run stops.
bfs_once() {
	local out sum ref=$SCRATCH/bfs.ref.$BFS_ROOTS rc=0
	out=$(timeout -k 5 "$BFS_TIMEOUT" "$B/bfs" -t "$BFS_THREADS" -r "$BFS_ROOTS" "$1") || rc=$?
	if timed_out $rc; then
		echo "run.sh: bfs on $1 did not finish within $BFS_TIMEOUT s" >&2
		return 3
	fi
	[ $rc = 0 ] || { echo "run.sh: bfs failed on $1 (status $rc)" >&2; return 4; }
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
bfs_fatal() { # bfs_fatal STATUS [mount]: stop unless bfs_once succeeded (0), timed
	# out (3) or, through a mount, failed (4); a wrong checksum (1) always stops
	[ "$1" = 0 ] || [ "$1" = 3 ] || { [ "$1" = 4 ] && [ "${2:-}" = mount ]; } || die "bfs failed (see above)"
}
bfs_failed() { # bfs_failed STATUS WHAT: a search through a mount failed (not a timeout)
	[ "$1" = 4 ] || return 1
	say "$2: bfs failed through the mount (see above)"
	MISSING+=("$2: bfs failed through the mount (see log.txt)")
}
bfs_timeout() { # bfs_timeout SECTION SYSTEM STATE PAGE BUF REP LIMIT [RSS KC]
	record "$1" "bfs-scale$GRAPH_SCALE" "$2" "$3" "$4" "$5" "$GRAPH_BYTES" "$6" timeout "$7" s lower "${8:-}" "${9:-}"
}

section_bfs() {
	make_graph
	local rep out mem ps buf rc
	ps=$(bytes "$BFS_PAGE_SIZE"); buf=$(bytes "$BFS_BUFFER")
	for rep in $(seq 1 "$RUNS"); do
		drop_caches "$GRAPH"
		rc=0; out=$(bfs_once "$GRAPH") || rc=$?; bfs_fatal $rc
		if [ $rc != 0 ]; then bfs_timeout bfs kernel-mmap cold 4096 0 "$rep" "$BFS_TIMEOUT"; continue; fi
		say "bfs kernel-mmap cold: $out"
		bfs_record kernel-mmap cold 4096 0 "$rep" "$out"
		rc=0; out=$(bfs_once "$GRAPH") || rc=$?; bfs_fatal $rc
		if [ $rc != 0 ]; then bfs_timeout bfs kernel-mmap warm 4096 0 "$rep" "$BFS_TIMEOUT"; continue; fi
		say "bfs kernel-mmap warm: $out"
		bfs_record kernel-mmap warm 4096 0 "$rep" "$out"
	done
	if [ -z "$UMAPFS" ]; then
		MISSING+=("bfs through the mount (fs/umapfs not built)")
		return 0
	fi
	local mnt=$SCRATCH/mnt-bfs cold
	for rep in $(seq 1 "$RUNS"); do
		drop_caches "$GRAPH"
		mount_view "$SCRATCH/graph.desc" "$mnt" "$ps" "$buf" graph.csr
		mount_mem_start "$mnt/graph.csr"
		rc=0; cold=$(bfs_once "$mnt/graph.csr") || rc=$?; bfs_fatal $rc mount
		if [ $rc != 0 ]; then
			mem=$(mount_mem "$mnt/graph.csr" "$MNT_PID"); mem_stop
			umount_view "$mnt" abort
			bfs_failed $rc "bfs umapfs cold, run $rep" && continue
			say "bfs umapfs cold (page $BFS_PAGE_SIZE, buffer $BFS_BUFFER): no result within $BFS_TIMEOUT s"
			bfs_timeout bfs umapfs cold "$ps" "$buf" "$rep" "$BFS_TIMEOUT" $mem
			continue
		fi
		say "bfs umapfs cold (page $BFS_PAGE_SIZE, buffer $BFS_BUFFER): $cold"
		rc=0; out=$(bfs_once "$mnt/graph.csr") || rc=$?; bfs_fatal $rc mount
		mem=$(mount_mem "$mnt/graph.csr" "$MNT_PID"); mem_stop
		umount_view "$mnt" $([ $rc = 0 ] || echo abort)
		bfs_record umapfs cold "$ps" "$buf" "$rep" "$cold" $mem
		if [ $rc = 0 ]; then
			say "bfs umapfs warm: $out (peak rss, kernel cache: $mem)"
			bfs_record umapfs warm "$ps" "$buf" "$rep" "$out" $mem
		elif ! bfs_failed $rc "bfs umapfs warm, run $rep"; then
			bfs_timeout bfs umapfs warm "$ps" "$buf" "$rep" "$BFS_TIMEOUT" $mem
		fi
	done
}

# ====================================================================== sort
# sort_bench.sh (the sort's benchmark): its CSV rows (mode,run,size_bytes,keys,
# buffer,page_size,threads,seconds,partition_s,leaves_s,msync_s,wall_s,
# backing_read_bytes,backing_written_bytes,verified,peak_rss,peak_kcache) are
# folded in.  The mount reads its file with O_DIRECT (a fresh mount: cold);
# kernel mmap runs with the file's pages dropped (cold) and cached (warm).
section_sort() {
	if [ -z "$UMAPFS" ] || [ -z "$SORT_BENCH" ]; then
		MISSING+=("sort (needs fs/umapfs, examples/umapfs-sort and bench/sort_bench.sh)")
		say "sort: skipped (umapfs-sort or umapfs not built)"
		return 0
	fi
	say "sort: $SORT_SIZE of keys in place, writable mount (pages $SORT_PAGE_SIZES, buffer $SORT_BUFFER) vs kernel mmap, $SORT_THREADS threads (sort_bench.sh)"
	local csv=$SCRATCH/sort.csv np
	np=$(echo $SORT_PAGE_SIZES | wc -w)
	guarded $((RUNS * (np + 2) * (SORT_TIMEOUT + 60) + 120)) "$SORT_BENCH" --build "$BUILD" --scratch "$SCRATCH" \
		--out "$csv" --size "$SORT_SIZE" --buffer "$SORT_BUFFER" --page-size "$(echo $SORT_PAGE_SIZES | tr ' ' ,)" \
		--threads "$SORT_THREADS" --runs "$RUNS" --timeout "$SORT_TIMEOUT" || {
		MISSING+=("sort (sort_bench.sh failed: see log.txt)")
		[ -s "$csv" ] || return 0
	}
	tail -n +2 "$csv" | while IFS=, read -r mode run size keys buf ps thr secs part leaves msync wall rb wb ok rss kc; do
		local sys=kernel-mmap st=cold psb=4096 bufb=0 wl
		wl="sort-$(human "$size")"
		case "$mode" in
		mount@*) sys=umapfs psb=$ps bufb=$buf ;;
		kernel-warm) st=warm ;;
		esac
		if [ "$ok" = timeout ]; then
			record sort "$wl" "$sys" "$st" "$psb" "$bufb" "$size" "$run" timeout "$secs" s lower "$rss" "$kc"
		else
			record sort "$wl" "$sys" "$st" "$psb" "$bufb" "$size" "$run" time "$secs" s lower "$rss" "$kc"
		fi
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
	# fewer searches per point than the side-by-side BFS: a buffer smaller
	# than the graph turns every miss into a read of a page (dynamic scope:
	# bfs_once sees this BFS_ROOTS)
	local BFS_ROOTS=${STUDY_BFS_ROOTS:-$BFS_ROOTS}
	for buf in $STUDY_BFS_BUFFERS; do
		for ps in $STUDY_PAGE_SIZES; do
			if [ "$(bytes "$ps")" -gt "$(bytes "$buf")" ]; then continue; fi
			for rep in $(seq 1 "$STUDY_RUNS"); do
				drop_caches "$GRAPH"
				mount_view "$SCRATCH/graph.desc" "$mnt" "$(bytes "$ps")" "$(bytes "$buf")" graph.csr
				mount_mem_start "$mnt/graph.csr"
				rc=0; out=$(BFS_TIMEOUT=$STUDY_TIMEOUT bfs_once "$mnt/graph.csr") || rc=$?; bfs_fatal $rc mount
				mem=$(mount_mem "$mnt/graph.csr" "$MNT_PID"); mem_stop
				umount_view "$mnt" $([ $rc = 0 ] || echo abort)
				bfs_failed $rc "study bfs page $ps buffer $buf" && continue
				if [ $rc != 0 ]; then
					say "study bfs page $ps buffer $buf: no result within $STUDY_TIMEOUT s (recorded as a timeout)"
					bfs_timeout study umapfs cold "$(bytes "$ps")" "$(bytes "$buf")" "$rep" "$STUDY_TIMEOUT" $mem
					break # it would time out again: one timeout row per point
				fi
				say "study bfs page $ps buffer $buf: $(kv seconds "$out") s (peak rss, kernel cache: $mem)"
				record study "bfs-scale$GRAPH_SCALE" umapfs cold "$(bytes "$ps")" "$(bytes "$buf")" "$GRAPH_BYTES" "$rep" time "$(kv seconds "$out")" s lower $mem
			done
		done
	done
	# The kernel's own paging of the plain file, as the reference line.
	for rep in $(seq 1 "$STUDY_RUNS"); do
		drop_caches "$GRAPH"
		rc=0; out=$(bfs_once "$GRAPH") || rc=$?; bfs_fatal $rc
		if [ $rc != 0 ]; then bfs_timeout study kernel-mmap cold 4096 0 "$rep" "$BFS_TIMEOUT"; continue; fi
		record study "bfs-scale$GRAPH_SCALE" kernel-mmap cold 4096 0 "$GRAPH_BYTES" "$rep" time "$(kv seconds "$out")" s lower
	done
	study_sweep
}

# ====================================================================== main
: >"$OUT/timing.txt"
for s in $SECTIONS; do
	want "$s" || continue
	t0=$(date +%s)
	"section_$s"
	echo "$s $(($(date +%s) - t0))" >>"$OUT/timing.txt"
done
rm -f "$GRAPH"

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
echo
echo "Seconds per section: $(awk '{printf "%s%s %d", (NR > 1 ? ", " : ""), $1, $2}' "$OUT/timing.txt")"
if [ ${#MISSING[@]} -gt 0 ]; then
	echo
	echo "Not measured in this run:"
	printf '  - %s\n' "${MISSING[@]}"
fi
say "done: $OUT"
