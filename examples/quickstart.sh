#!/bin/sh
# The README's first command: on a fresh Debian 12 machine, as root, install
# what umapfs needs, build it, and run the main job on generated sample data:
# a night of synthetic telescope frames is mounted as a cube with umapfs, the
# transient-detection median sweep runs on the mounted cube and the movers it
# recovers are printed next to the truth; then a raw view is mounted and
# checked with cmp, md5sum and fio.
#
# Environment: UMAPFS_DEMO_DIR (default /var/tmp/umapfs-demo) holds the
# generated data and the output pictures; UMAPFS_SKIP_APT=1 skips apt-get.
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)
work=${UMAPFS_DEMO_DIR:-/var/tmp/umapfs-demo}

if [ "${UMAPFS_SKIP_APT:-0}" != 1 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "quickstart: run as root (it installs Debian packages), or set UMAPFS_SKIP_APT=1" >&2
		exit 1
	fi
	echo "== installing Debian packages (.ci/packages.txt)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2046
	apt-get install -y -qq $(grep -v '^#' .ci/packages.txt) >/dev/null
fi

echo "== building in $src/build"
[ -f build/build.ninja ] || meson setup build -Dtests=enabled >/dev/null
ninja -C build

mkdir -p "$work"
echo "== the median sweep on a mounted night of frames ($work/night)"
examples/demo.sh build "$work/night"
echo "== a raw view checked with ordinary tools ($work/raw)"
examples/raw-demo.sh build "$work/raw" 256
echo "== done: pictures and results are in $work"
