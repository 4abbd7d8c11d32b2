#!/bin/bash
# bench/sweep_bench.sh: the FITS median sweep, side by side in one run.
#
#   bench/sweep_bench.sh [--build DIR] [--scratch DIR] [--out FILE.csv]
#       [--frames-fit N] [--frames-big N] [--width W] [--height H]
#       [--buffer SIZE] [--page-size SIZE] [--vectors N] [--runs N]
#       [--nights fit,big] [--backends mount,mmap,cfitsio] [--keep-scratch] [--drop-caches]
#
# For each night (one that fits the mount's buffer, one larger), the same
# sweep (random vectors as in the reference application, --raw medians,
# sorted by start row) runs on:
#   mount    the umapfs FITS mount's native view cube.f32 (page_size, buffer_size)
#   mmap     kernel mmap of the pre-stitched native file (umapfs-stitch)
#   cfitsio  one fits_read_pix per sample from the frame files (--backend cfitsio)
# each cold (page cache dropped, fresh mount) and warm (again at once, same
# mount).  It also times reading the frames once with O_DIRECT (the disk
# bound).  Defaults come from the SWEEP_* variables of bench/presets (if set
# in the environment), else a small night.
#
# Writes CSV rows (stdout, or --out): night,frames,width,height,cube_bytes,
# buffer,page_size,backend,state,run,vectors,seconds,vectors_per_s
# (backend "disk" = one O_DIRECT read of the frames; vectors 0) and prints the
# target ratios to stderr:
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
VECTORS=${SWEEP_VECTORS:-20000}
RUNS=${SWEEP_RUNS:-${RUNS:-1}}
NIGHTS=fit,big
BACKENDS=mount,mmap,cfitsio
KEEP=0
DROP_ALL=0

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
	--vectors) VECTORS=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	--nights) NIGHTS=$2; shift 2 ;;
	--backends) BACKENDS=$2; shift 2 ;;
	--keep-scratch) KEEP=1; shift ;;
	--drop-caches) DROP_ALL=1; shift ;;
	-h|--help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "sweep_bench.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
BUILD=$(cd "$BUILD" && pwd)
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
	if [ "$mounted" = 1 ]; then
		fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
		mounted=0
	fi
	if [ "$KEEP" = 0 ]; then rm -rf "$SCRATCH"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "$OUT" ]; then exec 3>"$OUT"; else exec 3>&1; fi
echo "night,frames,width,height,cube_bytes,buffer,page_size,backend,state,run,vectors,seconds,vectors_per_s" >&3

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

mount_night() {
	UMAPFS_PLUGIN_PATH=$PLUGIN_DIR "$UMAPFS" -o "plugin=fits,page_size=$PAGE,buffer_size=$BUFFER" \
		"$1" "$MNT"
	mounted=1
	local i=0
	while [ ! -e "$MNT/cube.f32" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -e "$MNT/cube.f32" ] || { echo "sweep_bench.sh: mount shows no cube.f32" >&2; exit 1; }
}
umount_night() {
	fusermount3 -u "$MNT" 2>/dev/null || umount "$MNT"
	mounted=0
}

# sweep NIGHT FRAMES BYTES BACKEND STATE RUN CMD...: time one sweep, append a row
declare -A T
sweep() {
	local night=$1 n=$2 bytes=$3 backend=$4 state=$5 run=$6
	shift 6
	local t0 t1 s
	t0=$(now)
	timeout -k 10 "${SWEEP_TIMEOUT:-900}" "$@" > "$SCRATCH/last.csv" 2> "$SCRATCH/last.err" || {
		echo "sweep_bench.sh: $backend $state failed:" >&2
		cat "$SCRATCH/last.err" >&2
		exit 1
	}
	t1=$(now)
	s=$(echo "$t1 - $t0" | bc -l)
	printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%.4f,%.1f\n' "$night" "$n" "$WIDTH" "$HEIGHT" "$bytes" \
		"$BUFFER" "$PAGE" "$backend" "$state" "$run" "$VECTORS" "$s" \
		"$(echo "$VECTORS / $s" | bc -l)" >&3
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
	if [ "$night" = fit ]; then n=$FRAMES_FIT; else n=$FRAMES_BIG; fi
	d=$SCRATCH/$night
	echo "sweep_bench.sh: night '$night': $n frames of ${WIDTH}x${HEIGHT}" >&2
	"$MKNIGHT" --quiet --seed 7 --frames "$n" --width "$WIDTH" --height "$HEIGHT" --movers 8 \
		"$d/frames" >/dev/null
	"$STITCH" "$d/frames" "$d/native" >/dev/null
	bytes=$(stat -c %s "$d/native/cube.f32")
	for r in $(seq 1 "$RUNS"); do
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
		printf '%s,%s,%s,%s,%s,%s,%s,disk,%s,%s,0,%.4f,0\n' "$night" "$n" "$WIDTH" "$HEIGHT" \
			"$bytes" "$BUFFER" "$PAGE" "$(cold_state)" "$r" "$s" >&3
		T[$night.disk]=$s
		if has mmap "$BACKENDS"; then
			drop "$d"
			sweep "$night" "$n" "$bytes" mmap "$(cold_state)" "$r" "$SWEEP" "${ARGS[@]}" "$d/native/cube.f32"
			sweep "$night" "$n" "$bytes" mmap warm "$r" "$SWEEP" "${ARGS[@]}" "$d/native/cube.f32"
		fi
		if has mount "$BACKENDS"; then
			drop "$d"
			mount_night "$d/frames"
			sweep "$night" "$n" "$bytes" mount "$(cold_state)" "$r" "$SWEEP" "${ARGS[@]}" "$MNT/cube.f32"
			sweep "$night" "$n" "$bytes" mount warm "$r" "$SWEEP" "${ARGS[@]}" "$MNT/cube.f32"
			umount_night
		fi
		if has cfitsio "$BACKENDS"; then
			drop "$d"
			sweep "$night" "$n" "$bytes" cfitsio "$(cold_state)" "$r" "$SWEEP" "${ARGS[@]}" \
				--backend cfitsio "$d/frames"
			sweep "$night" "$n" "$bytes" cfitsio warm "$r" "$SWEEP" "${ARGS[@]}" \
				--backend cfitsio "$d/frames"
		fi
	done
	c=$(cold_state)
	{
		echo "sweep_bench.sh: night '$night' ($n frames, $((bytes >> 20)) MiB, buffer $BUFFER, page $PAGE, $VECTORS vectors; last run):"
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
		if [ -n "${T[$night.mmap.$c]:-}" ]; then
			printf '  cold mmap / (disk read + warm mmap sweep): %.2f\n' \
				"$(echo "${T[$night.mmap.$c]} / (${T[$night.disk]} + ${T[$night.mmap.warm]})" | bc -l)"
		fi
	} >&2
	rm -rf "$d"
	rm -f "$SCRATCH/$night.ref.csv"
done
