#!/bin/sh
# examples/demo.sh BUILD_DIR WORKDIR
#
# The transient-detection demo: generate a synthetic night of frames (seeded;
# 8 movers from faint to bright among stars and noise), mount the directory
# with umapfs and the FITS plugin, run the median sweep on the mounted native
# cube (cube.f32), print the recovered movers next to the truth, write a
# picture per candidate, and unmount (always, also on errors and Ctrl-C).
#
# Environment: DEMO_FRAMES, DEMO_SIZE (default 32 frames of 512x512),
# DEMO_PAGE_SIZE, DEMO_BUFFER (mount options, default 1M and 64M).
set -eu
if [ $# -ne 2 ]; then
	echo "usage: $0 BUILD_DIR WORKDIR" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
mkdir -p "$2"
work=$(cd "$2" && pwd)
frames=$work/frames
mnt=$work/mnt
out=$work/out
nframes=${DEMO_FRAMES:-32}
size=${DEMO_SIZE:-512}
page=${DEMO_PAGE_SIZE:-1M}
buffer=${DEMO_BUFFER:-64M}

for f in examples/umapfs-mknight examples/umapfs-sweep examples/umapfs-stitch; do
	if [ ! -x "$build/$f" ]; then
		echo "demo: $build/$f is missing (build with cfitsio: ninja -C $build)" >&2
		exit 1
	fi
done

echo "-- 1. a synthetic night: $nframes frames of ${size}x${size} float32 in $frames"
rm -rf "$frames" "$out"
"$build/examples/umapfs-mknight" --seed 2026 --frames "$nframes" --width "$size" --height "$size" \
	--movers 8 --flux 300,400,500,700,1000,1500,2500,4000 "$frames"

mounted=0
cleanup() {
	if [ "$mounted" = 1 ]; then
		fusermount3 -u "$mnt" || umount "$mnt" ||
			umount -l "$mnt" 2>/dev/null || true
		mounted=0
	fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

plugin=
for d in "$build/plugins/fits" "$build/plugins"; do
	for n in fits.so umapfs-fits.so libfits.so; do
		[ -f "$d/$n" ] && plugin=$d
	done
done
cube=
if [ -x "$build/fs/umapfs" ] && [ -n "$plugin" ]; then
	echo "-- 2. mount: umapfs -o plugin=fits,page_size=$page,buffer_size=$buffer $frames $mnt"
	mkdir -p "$mnt"
	if mountpoint -q "$mnt" 2>/dev/null; then
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
	fi
	UMAPFS_PLUGIN_PATH=$plugin:$build/plugins/raw:$build/plugins \
		"$build/fs/umapfs" -o "plugin=fits,page_size=$page,buffer_size=$buffer" "$frames" "$mnt"
	mounted=1
	i=0
	while [ ! -e "$mnt/cube.f32" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if [ ! -e "$mnt/cube.f32" ]; then
		echo "demo: the mount shows no cube.f32:" >&2
		ls -l "$mnt" >&2 || true
		exit 1
	fi
	ls -l "$mnt"
	cube=$mnt/cube.f32
else
	echo "-- 2. no umapfs daemon or FITS plugin in $build: sweeping a pre-stitched file instead"
	"$build/examples/umapfs-stitch" "$frames" "$work/stitched"
	cube=$work/stitched/cube.f32
fi

echo "-- 3. the median sweep on $cube (every start pixel x a velocity grid, 4..16 px/h)"
mkdir -p "$out"
"$build/examples/umapfs-sweep" --exhaustive --vmin 4 --vmax 16 --top 12 --png "$out" \
	--output "$out/candidates.csv" --truth "$frames/truth.csv" "$cube"
if [ "$mounted" = 1 ]; then
	for s in .umapfs/stats stats; do
		if [ -f "$mnt/$s" ]; then
			echo "-- what the mount did ($mnt/$s)"
			cat "$mnt/$s"
			break
		fi
	done
fi
echo "-- 4. results: $out/candidates.csv (start, velocity, median, count, samples),"
echo "      pictures $out/cand-NN.png (the median stack along each candidate's track)"
cleanup
