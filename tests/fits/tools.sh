#!/bin/sh
# Real tools against a mounted cube (called by tests/fits/test_mount.c).
#   tools.sh MOUNTPOINT FRAMES_DIR [scaled|ds9]
# scaled: the frames carry BZERO/BSCALE (astropy refuses memmap=True then).
# ds9:    also export a PNG of plane 2 with ds9 under Xvfb.
# Prints "tools: all OK" at the end; exits non-zero at the first failure.
set -eu
M=$1
F=$2
MODE=${3:-}
PY=/usr/bin/python3
T=$(mktemp -d /var/tmp/umapfs-fits-tools-XXXXXX)
trap 'rm -rf "$T"' EXIT

echo "== fitsverify"
fitsverify -q "$M/cube.fits"

echo "== astropy, numpy"
"$PY" - "$M" "$F" "$MODE" <<'PYEOF'
import sys
import numpy as np
from astropy.io import fits
m, f, mode = sys.argv[1:4]
names = [l.split('\t')[1] for l in open(m + '/index.txt')
         if not l.startswith('#') and not l.startswith('skipped')]
def frame(p, **kw):
    with fits.open(p, **kw) as h:
        for x in h:
            if x.is_image and x.data is not None and x.data.size:
                return np.array(x.data)
    raise SystemExit('no image in ' + p)
stack = np.stack([frame(f + '/' + n) for n in names])
if mode == 'scaled':
    cube = fits.open(m + '/cube.fits')[0].data      # astropy refuses memmap=True on scaled data
    raw = np.stack([frame(f + '/' + n, do_not_scale_image_data=True) for n in names])
else:
    cube = fits.open(m + '/cube.fits', memmap=True)[0].data
    raw = stack
assert cube.shape == stack.shape == (len(names),) + stack.shape[1:], (cube.shape, stack.shape)
assert np.array_equal(cube, stack, equal_nan=True), 'cube.fits differs from the stacked frames'
npy = np.load(m + '/cube.npy', mmap_mode='r')
assert npy.shape == raw.shape and npy.dtype == raw.dtype.newbyteorder('>'), (npy.shape, npy.dtype, raw.dtype)
assert np.array_equal(npy, raw, equal_nan=True), 'cube.npy differs from the stored frames'
nat = 'cube.f64' if stack.dtype == np.float64 else 'cube.f32'
dt = np.float64 if nat == 'cube.f64' else np.float32
n = np.memmap(m + '/' + nat, dtype=dt, mode='r', shape=stack.shape)
assert np.array_equal(n, stack.astype(dt), equal_nan=True), nat + ' differs'
print('astropy memmap=%s, numpy mmap, %s: %d planes of %s equal' % (mode != 'scaled', nat, len(names), stack.shape[1:]))
hdr = fits.getheader(m + '/cube.fits')
if 'WCSAXES' in hdr:  # the cube's celestial axes are the frames' own
    import warnings
    from astropy.wcs import WCS
    warnings.simplefilter('ignore')
    w3 = WCS(hdr)
    w2 = WCS(fits.getheader(f + '/' + names[0]))
    for x, y in ((0, 0), (17.5, 33), (stack.shape[2] - 1, stack.shape[1] - 1)):
        a = w3.all_pix2world([[x, y, 0]], 0)[0]
        b = w2.all_pix2world([[x, y]], 0)[0]
        assert abs(a[0] - b[0]) < 1e-9 and abs(a[1] - b[1]) < 1e-9, (a, b)
    print('astropy.wcs: cube.fits has the frames\' celestial WCS (%d axes, CTYPE3 %s)' % (w3.naxis, hdr['CTYPE3']))
import fitsio
k, y0, y1, x0, x1 = len(names) - 1, 3, stack.shape[1] - 5, 7, stack.shape[2] - 2
sub = fitsio.FITS(m + '/cube.fits')[0][k:k + 1, y0:y1, x0:x1]
assert np.array_equal(sub.reshape(y1 - y0, x1 - x0), stack[k, y0:y1, x0:x1], equal_nan=True), 'fitsio subset differs'
print('fitsio: cube.fits[%d, %d:%d, %d:%d] equal' % (k, y0, y1, x0, x1))
PYEOF

echo "== fitscheck"
fitscheck --ignore-missing "$M/cube.fits"

echo "== imcopy"
N=$(grep -vc '^#' "$M/index.txt")
for k in 1 $N; do
	imcopy "$M/cube.fits[*,*,$k:$k]" "!$T/plane$k.fits" >/dev/null
	"$PY" - "$T/plane$k.fits" "$F/$(grep -v '^#' "$M/index.txt" | sed -n "${k}p" | cut -f2)" <<'PYEOF'
import sys
import numpy as np
from astropy.io import fits
a = fits.getdata(sys.argv[1])
with fits.open(sys.argv[2]) as h:
    b = [x.data for x in h if x.is_image and x.data is not None][0]
assert np.array_equal(a.reshape(b.shape), b, equal_nan=True), 'imcopy plane differs from ' + sys.argv[2]
PYEOF
	echo "plane $k equals its frame"
done

if [ "$MODE" = ds9 ]; then
	echo "== ds9"
	if ! command -v ds9 >/dev/null || ! command -v xvfb-run >/dev/null; then
		echo "ds9 or xvfb-run missing (packages saods9 xvfb xauth)"
		exit 1
	fi
	timeout 120 xvfb-run -a ds9 "$M/cube.fits" -cube 2 -scale zscale -export png "$T/out.png" -exit \
		>"$T/ds9.log" 2>&1 || { cat "$T/ds9.log"; exit 1; }
	"$PY" -c "import sys; d = open(sys.argv[1], 'rb').read(); assert d[:8] == b'\x89PNG\r\n\x1a\n' and len(d) > 1000, len(d); print('ds9 exported a PNG of plane 2: %d bytes' % len(d))" "$T/out.png"
fi
echo "tools: all OK"
