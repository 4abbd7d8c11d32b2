#!/bin/sh
# A raw view checked with ordinary tools.
#
#   examples/raw-demo.sh BUILD_DIR [WORK_DIR] [SIZE_MB]
#
# Generates two files of random bytes (SIZE_MB in all, default 256) in
# WORK_DIR (default /var/tmp/umapfs-raw-demo), describes a view that stitches
# them with a run of zeros in between, mounts it with umapfs, and checks it
# with cmp and md5sum against the same bytes made by cat; then lays out
# fio verification blocks in a third file and verifies them through the
# mount with ioengine=mmap; shows the mount's stats and unmounts.
set -eu

if [ $# -lt 1 ]; then
	echo "usage: $0 BUILD_DIR [WORK_DIR] [SIZE_MB]" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
work=/var/tmp/umapfs-raw-demo
size=256
case "${2:-}" in
"") ;;
*[!0-9]*) work=$2; size=${3:-256} ;;
*) size=$2 ;;
esac
daemon=$build/fs/umapfs
if [ ! -x "$daemon" ]; then
	echo "$0: $daemon not built (ninja -C $1)" >&2
	exit 1
fi
export UMAPFS_PLUGIN_PATH="$build/plugins${UMAPFS_PLUGIN_PATH:+:$UMAPFS_PLUGIN_PATH}"

mkdir -p "$work/mnt"
cd "$work"
mnt=$work/mnt
cleanup() {
	if mountpoint -q "$mnt"; then
		fusermount3 -u "$mnt" || fusermount3 -u -z "$mnt"
	fi
}
trap cleanup EXIT INT TERM

half=$((size / 2))
echo "== generating $size MiB of data in $work"
head -c $((half * 1048576)) /dev/urandom >part1.bin
head -c $(((size - half) * 1048576 + 4096)) /dev/urandom >part2.bin
fio --name=lay --filename=fio.bin --rw=write --ioengine=psync --bs=64k --size=64M \
	--verify=crc32c --do_verify=0 --verify_state_save=0 >fio-write.log

cat >views.txt <<'DESC'
# part1, a megabyte of zeros, part2 without its first 4 KiB
view demo.raw page_size=256K
part1.bin 0 rest
zero 1M
part2.bin 4096 rest

# fio's verification blocks, as they are
view fio.raw
fio.bin 0 rest
DESC
echo "== the description (views.txt)"
cat views.txt

echo "== mounting: umapfs -o page_size=256K,buffer_size=64M views.txt $mnt"
"$daemon" -o page_size=256K,buffer_size=64M views.txt "$mnt"
ls -l "$mnt"

echo "== cmp against the same bytes made by cat"
{ cat part1.bin; head -c 1048576 /dev/zero; tail -c +4097 part2.bin; } | cmp - "$mnt/demo.raw"
echo "cmp: identical"

echo "== md5sum"
a=$({ cat part1.bin; head -c 1048576 /dev/zero; tail -c +4097 part2.bin; } | md5sum | cut -d' ' -f1)
b=$(md5sum <"$mnt/demo.raw" | cut -d' ' -f1)
echo "expected $a"
echo "mounted  $b"
[ "$a" = "$b" ]

echo "== fio: verify crc32c blocks through the mount with ioengine=mmap"
fio --name=verify --filename="$mnt/fio.raw" --rw=randread --ioengine=mmap --invalidate=0 \
	--bs=64k --size=64M --verify=crc32c --verify_state_save=0 --randrepeat=1 >fio-verify.log
grep -E "READ:|err=" fio-verify.log || true
echo "fio: verified"

echo "== $mnt/.umapfs/stats"
cat "$mnt/.umapfs/stats"

echo "== unmounting"
fusermount3 -u "$mnt"
trap - EXIT INT TERM
echo "== raw demo: all checks passed"
