#!/bin/bash
# bench/sweep_bench.sh: the FITS median sweep, side by side in one run.
#
#   bench/sweep_bench.sh [--build DIR] [--scratch DIR] [--out FILE.csv]
#       [--frames-fit N] [--frames-big N] [--width W] [--height H]
#       [--buffer SIZE] [--page-size SIZE] [--page-size-big SIZE] [--vectors N] [--runs N]
#       [--nights fit,big] [--backends mount,mmap,cfitsio] [--cold-only] [--keep-scratch]
#       [--drop-caches]
#
# For each night (one that fits the mount's buffer, one larger), the same
# sweep (random vectors as in the reference application, --raw medians,
# sorted by start row) runs on:
#   mount    the umapfs FITS mount's native view cube.f32 (page_size, buffer_size)
#   mmap     kernel mmap of the pre-stitched native file (umapfs-stitch)
#   cfitsio  one fits_read_pix per sample from the frame files (--backend cfitsio)
# each cold (page cache dropped, fresh mount) and warm (again at once, same
# mount; not with --cold-only).  It also times reading the frames once with O_DIRECT (the disk
# bound).  Defaults come from the SWEEP_* variables of bench/presets (if set
# in the environment), else a small night.  The big night is mounted with
# --page-size-big (default: --page-size): a page smaller than a frame (a band
# of rows) lets a buffer smaller than the night hold a band of every frame.
#
# Writes CSV rows (stdout, or --out): night,frames,width,height,cube_bytes,
# buffer,page_size,backend,state,run,vectors,seconds,vectors_per_s,peak_rss,
# peak_kcache (backend "disk" = one O_DIRECT read of the frames, vectors 0;
# peak_rss = the daemon's VmHWM and peak_kcache = the cube's bytes in the
# kernel page cache (fincore, sampled), both since the mount, mount rows only).
# A sweep that runs past SWEEP_TIMEOUT seconds (default 900) is killed and
# recorded as a row with seconds = the limit and vectors_per_s = "timeout"
# (never a result); that backend's warm run of the night is then skipped.
# Prints the target ratios to stderr:
#   warm mount / warm mmap                     (target >= 0.9)
#   cold mount / (disk read + warm mmap sweep) (target <= 1.2)
# Cold: the night's files (frames and the stitched file) are synced and their
# page-cache pages dropped (posix_fadvise DONTNEED via dd iflag=nocache,
# checked with fincore), and the mount is fresh.  --drop-caches uses
# echo 3 > /proc/sys/vm/drop_caches instead (root; note that sync and
# drop_caches block while any FUSE mount on the machine is stuck).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${SWEEP_BUILD:-$SRC/build}
SCRATCH_PARENT=/var/tmp
OUT=
FRAMES_FIT=${SWEEP_FRAMES_FIT:-16}
FRAMES_BIG=${SWEEP_FRAMES_BIG:-64}
WIDTH=${SWEEP_WIDTH:-512}
HEIGHT=${SWEEP_HEIGHT:-512}
BUFFER=${SWEEP_BUFFER:-32M}
PAGE=${SWEEP_PAGE_SIZE:-1M}
PAGE_BIG=${SWEEP_PAGE_SIZE_BIG:-}
VECTORS=${SWEEP_VECTORS:-20000}
RUNS=${SWEEP_RUNS:-${RUNS:-1}}
NIGHTS=fit,big
BACKENDS=mount,mmap,cfitsio
KEEP=0
DROP_ALL=0
WARM=1

while [ $# -gt 0 ]; do
	case "$1" in
	--build) BUILD=$2; shift 2 ;;
	--scratch) SCRATCH_PARENT=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--frames-fit) FRAMES_FIT=$2; shift 2 ;;
	--frames-big) FRAMES_BIG=$2; shift 2 ;;
	--width) WIDTH=$2; shift 2 ;;
	--height) HEIGHT=$2; shift 2 ;;
	--buffer) BUFFER=$2; shift 2 ;;
	--page-size) PAGE=$2; shift 2 ;;
	--page-size-big) PAGE_BIG=$2; shift 2 ;;
	--vectors) VECTORS=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	--nights) NIGHTS=$2; shift 2 ;;
	--backends) BACKENDS=$2; shift 2 ;;
	--cold-only) WARM=0; shift ;;
	--keep-scratch) KEEP=1; shift ;;
	--drop-caches) DROP_ALL=1; shift ;;
	-h|--help) sed -n '2,46p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "sweep_bench.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
BUILD=$(cd "$BUILD" && pwd)
[ -n "$PAGE_BIG" ] || PAGE_BIG=$PAGE
# shellcheck source=mem.sh
. "$SRC/bench/mem.sh"
MKNIGHT=$BUILD/examples/umapfs-mknight
STITCH=$BUILD/examples/umapfs-stitch
SWEEP=$BUILD/examples/umapfs-sweep
UMAPFS=$BUILD/fs/umapfs
for x in "$MKNIGHT" "$STITCH" "$SWEEP"; do
	[ -x "$x" ] || { echo "sweep_bench.sh: $x not built" >&2; exit 1; }
done
has() { case ",$2," in *",$1,"*) return 0 ;; esac; return 1; }
PLUGIN_DIR=
for d in "$BUILD/plugins/fits" "$BUILD/plugins"; do
	for n in fits.so umapfs-fits.so libfits.so; do [ -f "$d/$n" ] && PLUGIN_DIR=$d; done
done
if has mount "$BACKENDS" && { [ ! -x "$UMAPFS" ] || [ -z "$PLUGIN_DIR" ]; }; then
	echo "sweep_bench.sh: no umapfs daemon or FITS plugin in $BUILD: mount runs skipped" >&2
	BACKENDS=$(echo ",$BACKENDS," | sed 's/,mount,/,/; s/^,//; s/,$//')
fi

SCRATCH=$(mktemp -d "$SCRATCH_PARENT/umapfs-sweepbench-XXXXXX")
MNT=$SCRATCH/mnt
mkdir -p "$MNT"
mounted=0
cleanup() {
	mem_stop
	if [ "$mounted" = 1 ]; then
		fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
		mounted=0
	fi
	if [ "$KEEP" = 0 ]; then rm -rf "$SCRATCH"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "$OUT" ]; then exec 3>"$OUT"; else exec 3>&1; fi
echo "night,frames,width,height,cube_bytes,buffer,page_size,backend,state,run,vectors,seconds,vectors_per_s,peak_rss,peak_kcache" >&3

# drop NIGHT_DIR: make the night cold (see the header)
drop() {
	if [ "$DROP_ALL" = 1 ]; then
		sync
		echo 3 > /proc/sys/vm/drop_caches
		return
	fi
	local f res
	sync "$1"/frames/*.fits "$1"/native/cube.f32
	for f in "$1"/frames/*.fits "$1"/native/cube.f32; do
		dd if="$f" iflag=nocache count=0 status=none
	done
	res=$(fincore --bytes --noheadings --output RES "$1"/frames/*.fits "$1"/native/cube.f32 |
		awk '{ s += $1 } END { print s + 0 }')
	if [ "$res" -gt 1048576 ]; then
		echo "sweep_bench.sh: $res bytes of the night still cached after dropping" >&2
	fi
}
cold_state() { echo cold; }
now() { date +%s.%N; }

DPID=
mount_night() { # mount_night FRAMES_DIR: mount with page size $P, sample its memory
	UMAPFS_PLUGIN_PATH=$PLUGIN_DIR "$UMAPFS" -o "plugin=fits,page_size=$P,buffer_size=$BUFFER" \
		"$1" "$MNT"
	mounted=1
	local i=0
	while [ ! -e "$MNT/cube.f32" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -e "$MNT/cube.f32" ] || { echo "sweep_bench.sh: mount shows no cube.f32" >&2; exit 1; }
	DPID=$(umapfs_pid "$MNT")
	mem_start "$MNT/cube.f32" "$SCRATCH/kcache.max"
}
umount_night() {
	mem_stop
	# after a timeout the killed sweep may still hold the mount for a moment
	fusermount3 -u "$MNT" 2>/dev/null || { sleep 2; fusermount3 -u "$MNT" 2>/dev/null; } ||
		fusermount3 -u -z "$MNT"
	mounted=0
	DPID=
}

# sweep NIGHT FRAMES BYTES BACKEND STATE RUN CMD...: time one sweep, append a
# row; returns 3 if it ran past SWEEP_TIMEOUT (a "timeout" row is written)
declare -A T GAVE_UP
sweep() {
	local night=$1 n=$2 bytes=$3 backend=$4 state=$5 run=$6
	shift 6
	local t0 t1 s rc=0 mem=, limit=${SWEEP_TIMEOUT:-900}
	t0=$(now)
	timeout -k 10 "$limit" "$@" > "$SCRATCH/last.csv" 2> "$SCRATCH/last.err" || rc=$?
	if [ "$backend" = mount ] && [ -n "$DPID" ]; then
		mem=$(mem_now "$MNT/cube.f32" "$DPID" "$SCRATCH/kcache.max" | tr ' ' ',')
	fi
	if [ $rc = 124 ] || [ $rc = 137 ]; then
		echo "sweep_bench.sh: $night $backend $state: no result within $limit s (recorded as a timeout)" >&2
		printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,timeout,%s\n' "$night" "$n" "$WIDTH" "$HEIGHT" \
			"$bytes" "$BUFFER" "$P" "$backend" "$state" "$run" "$VECTORS" "$limit" "$mem" >&3
		return 3
	fi
	if [ $rc != 0 ]; then
		echo "sweep_bench.sh: $backend $state failed (status $rc):" >&2
		cat "$SCRATCH/last.err" >&2
		exit 1
	fi
	t1=$(now)
	s=$(echo "$t1 - $t0" | bc -l)
	printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%.4f,%.1f,%s\n' "$night" "$n" "$WIDTH" "$HEIGHT" "$bytes" \
		"$BUFFER" "$P" "$backend" "$state" "$run" "$VECTORS" "$s" \
		"$(echo "$VECTORS / $s" | bc -l)" "$mem" >&3
	# the candidate lists must agree across backends
	if [ -f "$SCRATCH/$night.ref.csv" ]; then
		cmp -s "$SCRATCH/last.csv" "$SCRATCH/$night.ref.csv" || {
			echo "sweep_bench.sh: $backend $state gives other candidates than the first run" >&2
			exit 1
		}
	else
		cp "$SCRATCH/last.csv" "$SCRATCH/$night.ref.csv"
	fi
	T[$night.$backend.$state]=$s
}

ARGS=(--quiet --no-progress --raw --no-refine --random "$VECTORS" --seed 11 --vmax 15 --top 10)
for night in fit big; do
	has "$night" "$NIGHTS" || continue
	if [ "$night" = fit ]; then n=$FRAMES_FIT P=$PAGE; else n=$FRAMES_BIG P=$PAGE_BIG; fi
	d=$SCRATCH/$night
	echo "sweep_bench.sh: night '$night': $n frames of ${WIDTH}x${HEIGHT}" >&2
	"$MKNIGHT" --quiet --seed 7 --frames "$n" --width "$WIDTH" --height "$HEIGHT" --movers 8 \
		"$d/frames" >/dev/null
	"$STITCH" "$d/frames" "$d/native" >/dev/null
	bytes=$(stat -c %s "$d/native/cube.f32")
	for r in $(seq 1 "$RUNS"); do
		for k in "${!T[@]}"; do case "$k" in "$night".*) unset "T[$k]" ;; esac; done
		# the disk bound: read every frame once with O_DIRECT
		drop "$d"
		s=$(/usr/bin/python3 - "$d"/frames/*.fits <<'PY'
import mmap, os, sys, time
buf = mmap.mmap(-1, 4 << 20)  # page aligned, as O_DIRECT wants
t = time.monotonic()
for f in sys.argv[1:]:
    fd = os.open(f, os.O_RDONLY | os.O_DIRECT)
    while os.readv(fd, [buf]) > 0:
        pass
    os.close(fd)
print("%.6f" % (time.monotonic() - t))
PY
)
		printf '%s,%s,%s,%s,%s,%s,%s,disk,%s,%s,0,%.4f,0,,\n' "$night" "$n" "$WIDTH" "$HEIGHT" \
			"$bytes" "$BUFFER" "$P" "$(cold_state)" "$r" "$s" >&3
		T[$night.disk]=$s
		# a cold run past the limit: no warm run of that backend
		if has mmap "$BACKENDS"; then
			drop "$d"
			sweep "$night" "$n" "$bytes" mmap "$(cold_state)" "$r" "$SWEEP" "${ARGS[@]}" "$d/native/cube.f32" &&
				[ $WARM = 1 ] && sweep "$night" "$n" "$bytes" mmap warm "$r" "$SWEEP" "${ARGS[@]}" "$d/native/cube.f32" || true
		fi
		# a mount that ran past the limit once is not run again for this night
		if has mount "$BACKENDS" && [ -z "${GAVE_UP[$night]:-}" ]; then
			drop "$d"
			mount_night "$d/frames"
			rc=0
			sweep "$night" "$n" "$bytes" mount "$(cold_state)" "$r" "$SWEEP" "${ARGS[@]}" "$MNT/cube.f32" || rc=$?
			if [ $rc = 3 ]; then
				GAVE_UP[$night]=1
			elif [ $rc = 0 ] && [ $WARM = 1 ]; then
				sweep "$night" "$n" "$bytes" mount warm "$r" "$SWEEP" "${ARGS[@]}" "$MNT/cube.f32" || true
			fi
			umount_night
		fi
		if has cfitsio "$BACKENDS"; then
			drop "$d"
			sweep "$night" "$n" "$bytes" cfitsio "$(cold_state)" "$r" "$SWEEP" "${ARGS[@]}" \
				--backend cfitsio "$d/frames" &&
				[ $WARM = 1 ] && sweep "$night" "$n" "$bytes" cfitsio warm "$r" "$SWEEP" "${ARGS[@]}" \
					--backend cfitsio "$d/frames" || true
		fi
	done
	c=$(cold_state)
	{
		echo "sweep_bench.sh: night '$night' ($n frames, $((bytes >> 20)) MiB, buffer $BUFFER, page $P, $VECTORS vectors; last run):"
		for b in mount mmap cfitsio; do
			for st in "$c" warm; do
				v=${T[$night.$b.$st]:-}
				[ -n "$v" ] && printf '  %-8s %-11s %8.3f s  %10.0f vectors/s\n' "$b" "$st" "$v" \
					"$(echo "$VECTORS / $v" | bc -l)"
			done
		done
		printf '  disk read of the frames (O_DIRECT): %.3f s\n' "${T[$night.disk]}"
		if [ -n "${T[$night.mount.warm]:-}" ] && [ -n "${T[$night.mmap.warm]:-}" ]; then
			printf '  warm mount / warm mmap (vectors/s): %.2f (target >= 0.9)\n' \
				"$(echo "${T[$night.mmap.warm]} / ${T[$night.mount.warm]}" | bc -l)"
			printf '  cold mount / (disk read + warm mmap sweep): %.2f (target <= 1.2)\n' \
				"$(echo "${T[$night.mount.$c]} / (${T[$night.disk]} + ${T[$night.mmap.warm]})" | bc -l)"
		fi
		if [ -n "${T[$night.mmap.$c]:-}" ] && [ -n "${T[$night.mmap.warm]:-}" ]; then
			printf '  cold mmap / (disk read + warm mmap sweep): %.2f\n' \
				"$(echo "${T[$night.mmap.$c]} / (${T[$night.disk]} + ${T[$night.mmap.warm]})" | bc -l)"
		fi
	} >&2
	rm -rf "$d"
	rm -f "$SCRATCH/$night.ref.csv"
done
