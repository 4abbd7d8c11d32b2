/*
 * Every view of every kind of source, pixel by pixel against cfitsio.
 *
 * Frames are written by cfitsio; the stack is scanned and its views created
 * directly on an engine with a small buffer (so pages are evicted and
 * refilled while we read).  cube.fits is also written out and read back by
 * cfitsio (and fitsverify, when installed) to check its header.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fitsio.h>

#include "futil.h"

#define NX 300
#define NY 257
#define NF 5

static int have_fitsverify(void) { return access("/usr/bin/fitsverify", X_OK) == 0; }

/* Random sub-ranges of a view equal the same bytes of its whole. */
static void check_ranges(struct umapfs_view *v, const unsigned char *whole, unsigned seed)
{
	uint64_t size = umapfs_view_size(v);
	unsigned char *buf = malloc(70000);
	srand(seed);
	for (int i = 0; i < 150; i++) {
		uint64_t off = ((uint64_t)rand() << 16 ^ (uint64_t)rand()) % size;
		size_t len = (size_t)(rand() % 70000) + 1;
		if (len > size - off)
			len = (size_t)(size - off);
		ssize_t r = umapfs_view_read(v, buf, len, off);
		cr_assert_eq(r, (ssize_t)len, "%s: read(%zu @ %llu) = %zd", umapfs_view_name(v), len,
			     (unsigned long long)off, r);
		cr_assert(memcmp(buf, whole + off, len) == 0, "%s: bytes at %llu+%zu differ from the whole read",
			  umapfs_view_name(v), (unsigned long long)off, len);
	}
	free(buf);
}

/*
 * Make NF frames like `sp` (names frame_0..4, MJD decreasing so time order
 * reverses name order), mount-scan with `opts`, and check every view.
 */
static void check_kind(struct fspec sp, const char *opts, int expect_hdu)
{
	char *dir = scratch_dir("kind");
	char path[NF][512];
	const char *ext = sp.comp ? "fz" : "fits";
	for (int i = 0; i < NF; i++) {
		snprintf(path[i], sizeof(path[i]), "%s/frame_%d.%s", dir, i, ext);
		struct fspec f = sp;
		f.nx = NX;
		f.ny = NY;
		f.seed = (unsigned)i + 1;
		f.mjd = 60000.0 + (NF - 1 - i) * 0.25;
		make_frame(path[i], &f);
	}
	struct logcap lc = {0};
	struct fp_stack *s = NULL;
	int r = scan_dir(dir, opts, &lc, &s);
	cr_assert_eq(r, 0, "scan: %d\n%s", r, lc.text);
	cr_assert_eq(s->n, (size_t)NF);
	cr_assert_eq(s->bitpix, sp.bitpix);
	cr_assert_eq(s->compressed, sp.comp != 0);
	for (int k = 0; k < NF; k++) { /* time order */
		char want[32];
		snprintf(want, sizeof(want), "frame_%d.%s", NF - 1 - k, ext);
		cr_assert_str_eq(s->frames[k].name, want);
		cr_assert_eq(s->frames[k].hdu, expect_hdu, "%s in HDU %d", want, s->frames[k].hdu);
	}

	struct umapfs_engine *e = test_engine(16384, 256 << 10, &lc);
	struct fp_views v;
	r = fp_views_create(s, e, 0, &v);
	cr_assert_eq(r, 0, "views: %d\n%s", r, lc.text);
	cr_assert_str_eq(umapfs_view_name(v.native), sp.bitpix == -64 ? "cube.f64" : "cube.f32");

	size_t el = (size_t)abs(sp.bitpix) / 8, npix = (size_t)NX * NY;
	size_t plane = npix * el;
	unsigned char *fits = view_slurp(v.fits), *npy = view_slurp(v.npy), *nat = view_slurp(v.native);
	uint64_t fsize = umapfs_view_size(v.fits);
	cr_assert_eq(fsize % 2880, 0);
	cr_assert_eq(fsize, FP_HDR_UNIT + ((NF * plane + 2879) / 2880) * 2880);
	cr_assert(memcmp(fits, "SIMPLE  =                    T", 30) == 0);
	cr_assert_eq(umapfs_view_size(v.npy), FP_NPY_HDR + NF * plane);
	cr_assert(memcmp(npy, "\x93NUMPY\x01\x00", 8) == 0);
	cr_assert_eq(npy[FP_NPY_HDR - 1], '\n');
	unsigned nsz = sp.bitpix == -64 ? 8 : 4;
	cr_assert_eq(umapfs_view_size(v.native), (uint64_t)NF * npix * nsz);
	for (uint64_t i = FP_HDR_UNIT + NF * plane; i < fsize; i++)
		cr_assert_eq(fits[i], 0, "padding byte %llu", (unsigned long long)i);

	/* every plane: verbatim bytes and physical values against cfitsio on the source */
	for (int k = 0; k < NF; k++) {
		const char *src = path[NF - 1 - k];
		unsigned char *stored = ref_stored_be(src, expect_hdu, sp.bitpix, NX, NY);
		cr_assert(memcmp(fits + FP_HDR_UNIT + k * plane, stored, plane) == 0,
			  "cube.fits plane %d differs from %s", k, src);
		cr_assert(memcmp(npy + FP_NPY_HDR + k * plane, stored, plane) == 0,
			  "cube.npy plane %d differs from %s", k, src);
		void *phys = ref_physical(src, expect_hdu, sp.bitpix, NX, NY);
		long long d = nsz == 8 ? cmp_double((double *)nat + k * npix, phys, npix)
				       : cmp_float((float *)nat + k * npix, phys, npix);
		cr_assert_eq(d, -1, "native plane %d pixel %lld differs from cfitsio's reading of %s", k, d, src);
		free(stored);
		free(phys);
	}

	/* cube.fits as a file: cfitsio reads the same physical values through its header */
	char out[600];
	snprintf(out, sizeof(out), "%s/cube-out.fits", dir);
	put_file(out, fits, fsize);
	{
		fitsfile *f;
		int st = 0, naxis = 0, bp = 0;
		long ax[3];
		fits_open_diskfile(&f, out, READONLY, &st);
		fits_get_img_param(f, 3, &bp, &naxis, ax, &st);
		cr_assert_eq(st, 0, "cfitsio cannot read cube.fits (%d)", st);
		cr_assert_eq(naxis, 3);
		cr_assert_eq(bp, sp.bitpix);
		cr_assert(ax[0] == NX && ax[1] == NY && ax[2] == NF);
		fits_close_file(f, &st);
		for (int k = 0; k < NF; k++) {
			LONGLONG fp[3] = {1, 1, k + 1};
			void *a = malloc(npix * nsz), *b = ref_physical(path[NF - 1 - k], expect_hdu, sp.bitpix, NX, NY);
			char *nul = calloc(npix, 1);
			int any = 0;
			fits_open_diskfile(&f, out, READONLY, &st);
			if (sp.bitpix > 0) {
				fits_read_pixnullll(f, TFLOAT, fp, (LONGLONG)npix, a, nul, &any, &st);
				for (size_t i = 0; i < npix; i++)
					if (nul[i])
						((float *)a)[i] = NAN;
			} else {
				fits_read_pixll(f, nsz == 8 ? TDOUBLE : TFLOAT, fp, (LONGLONG)npix, NULL, a, &any, &st);
			}
			fits_close_file(f, &st);
			cr_assert_eq(st, 0);
			long long d = nsz == 8 ? cmp_double(a, b, npix) : cmp_float(a, b, npix);
			cr_assert_eq(d, -1, "cfitsio reading cube.fits plane %d pixel %lld differs", k, d);
			free(a);
			free(b);
			free(nul);
		}
		if (have_fitsverify())
			cr_assert_eq(sh("fitsverify -q '%s' >'%s.fv' 2>&1", out, out), 0, "fitsverify fails:\n%s",
				     "see .fv");
	}

	check_ranges(v.fits, fits, 1);
	check_ranges(v.npy, npy, 2);
	check_ranges(v.native, nat, 3);
	free(fits);
	free(npy);
	free(nat);

	cr_assert_eq(umapfs_view_destroy(v.fits), 0);
	cr_assert_eq(umapfs_view_destroy(v.npy), 0);
	cr_assert_eq(umapfs_view_destroy(v.native), 0);
	fp_stack_put(s);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	rm_rf(dir);
	free(dir);
}

static struct fspec K(int bitpix) { return fspec_default(bitpix, NX, NY); }

Test(kinds, u8) { check_kind(K(8), "", 1); }
Test(kinds, i8_bzero)
{
	struct fspec s = K(8);
	s.bzero_set = 1, s.bzero = -128;
	check_kind(s, "", 1);
}
Test(kinds, i16) { check_kind(K(16), "", 1); }
Test(kinds, u16_bzero32768)
{
	struct fspec s = K(16);
	s.bzero_set = 1, s.bzero = 32768;
	check_kind(s, "", 1);
}
Test(kinds, i16_scaled_blank)
{
	struct fspec s = K(16);
	s.bzero_set = 1, s.bzero = 100.25, s.bscale_set = 1, s.bscale = 0.5;
	s.blank_set = 1, s.blank = -32768;
	check_kind(s, "", 1);
}
Test(kinds, i32) { check_kind(K(32), "", 1); }
Test(kinds, i32_blank)
{
	struct fspec s = K(32);
	s.blank_set = 1, s.blank = -2147483647 - 1;
	check_kind(s, "", 1);
}
Test(kinds, i64_blank)
{
	struct fspec s = K(64);
	s.blank_set = 1, s.blank = -1;
	check_kind(s, "", 1);
}
Test(kinds, i64) { check_kind(K(64), "order=time", 1); }
Test(kinds, f32_nan) { check_kind(K(-32), "", 1); }
Test(kinds, f64_nan) { check_kind(K(-64), "", 1); }
Test(kinds, f32_scaled)
{
	struct fspec s = K(-32);
	s.bzero_set = 1, s.bzero = 1, s.bscale_set = 1, s.bscale = 2;
	check_kind(s, "", 1);
}
Test(kinds, ext_default)
{
	struct fspec s = K(-32);
	s.in_ext = 1;
	check_kind(s, "", 2);
}
Test(kinds, ext_by_number)
{
	struct fspec s = K(16);
	s.in_ext = 1;
	check_kind(s, "hdu=1", 2);
}
Test(kinds, ext_by_name)
{
	struct fspec s = K(32);
	s.in_ext = 1, s.extname = "IMAGE_X";
	check_kind(s, "hdu=IMAGE_X", 2);
}
Test(compressed, rice_u16)
{
	struct fspec s = K(16);
	s.bzero_set = 1, s.bzero = 32768, s.comp = RICE_1;
	check_kind(s, "", 2);
}
Test(compressed, gzip1_i32_blank)
{
	struct fspec s = K(32);
	s.blank_set = 1, s.blank = -999, s.comp = GZIP_1;
	check_kind(s, "", 2);
}
Test(compressed, gzip2_f32)
{
	struct fspec s = K(-32);
	s.comp = GZIP_2;
	check_kind(s, "", 2);
}
Test(compressed, hcompress_i16)
{
	struct fspec s = K(16);
	s.comp = HCOMPRESS_1;
	check_kind(s, "", 2);
}
Test(compressed, rice_u8)
{
	struct fspec s = K(8);
	s.comp = RICE_1;
	check_kind(s, "hdu=SCI", 2);
}

/* Several threads at once through the decoder and the band cache. */
struct rd {
	struct umapfs_view *v;
	const unsigned char *whole;
	unsigned seed;
	int bad;
};

static void *reader(void *arg)
{
	struct rd *r = arg;
	uint64_t size = umapfs_view_size(r->v);
	unsigned char *buf = malloc(40000);
	unsigned s = r->seed;
	for (int i = 0; i < 300 && !r->bad; i++) {
		uint64_t off = (uint64_t)rand_r(&s) % size;
		size_t len = (size_t)(rand_r(&s) % 40000) + 1;
		if (len > size - off)
			len = (size_t)(size - off);
		if (umapfs_view_read(r->v, buf, len, off) != (ssize_t)len || memcmp(buf, r->whole + off, len))
			r->bad = 1;
	}
	free(buf);
	return NULL;
}

Test(compressed, concurrent_readers, .timeout = 120)
{
	char *dir = scratch_dir("conc");
	for (int i = 0; i < 4; i++) {
		char p[512];
		snprintf(p, sizeof(p), "%s/c%d.fz", dir, i);
		struct fspec f = fspec_default(16, NX, NY);
		f.comp = i % 2 ? RICE_1 : GZIP_2;
		f.seed = (unsigned)i + 40;
		f.mjd = 60000 + i;
		make_frame(p, &f);
	}
	struct logcap lc = {0};
	struct fp_stack *s;
	cr_assert_eq(scan_dir(dir, "", &lc, &s), 0, "%s", lc.text);
	/* the reference bytes from a separate engine, read single-threaded */
	struct umapfs_engine *e0 = test_engine(16384, 4 << 20, NULL);
	struct fp_views v0;
	cr_assert_eq(fp_views_create(s, e0, 0, &v0), 0);
	unsigned char *wf = view_slurp(v0.fits), *wn = view_slurp(v0.native);
	umapfs_view_destroy(v0.fits);
	umapfs_view_destroy(v0.npy);
	umapfs_view_destroy(v0.native);
	cr_assert_eq(umapfs_engine_destroy(e0), 0);
	/* a fresh stack (cold band cache) and a small buffer */
	fp_stack_put(s);
	cr_assert_eq(scan_dir(dir, "", &lc, &s), 0);
	struct umapfs_engine *e = test_engine(16384, 256 << 10, NULL);
	struct fp_views v;
	cr_assert_eq(fp_views_create(s, e, 0, &v), 0);
	pthread_t t[4];
	struct rd r[4];
	for (int i = 0; i < 4; i++) {
		r[i] = (struct rd){.v = i % 2 ? v.native : v.fits, .whole = i % 2 ? wn : wf, .seed = (unsigned)i + 1};
		pthread_create(&t[i], NULL, reader, &r[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(r[i].bad, 0, "thread %d read wrong bytes", i);
	}
	free(wf);
	free(wn);
	umapfs_view_destroy(v.fits);
	umapfs_view_destroy(v.npy);
	umapfs_view_destroy(v.native);
	fp_stack_put(s);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	rm_rf(dir);
	free(dir);
}

/*
 * More threads filling native pages than the buffer has pages: a fill must
 * not wait for budget held by the other fills (no nested engine reads).
 */
Test(kinds, native_many_threads_small_buffer, .timeout = 60)
{
	char *dir = scratch_dir("thr");
	for (int i = 0; i < 4; i++) {
		char p[512];
		snprintf(p, sizeof(p), "%s/t%d.fits", dir, i);
		struct fspec f = fspec_default(16, NX, NY);
		f.bzero_set = 1, f.bzero = 32768;
		f.seed = (unsigned)i + 60;
		f.mjd = 60000 + i;
		make_frame(p, &f);
	}
	struct logcap lc = {0};
	struct fp_stack *s;
	cr_assert_eq(scan_dir(dir, "", &lc, &s), 0, "%s", lc.text);
	struct umapfs_engine *e0 = test_engine(16384, 8 << 20, NULL);
	struct fp_views v0;
	cr_assert_eq(fp_views_create(s, e0, 0, &v0), 0);
	unsigned char *wn = view_slurp(v0.native), *wf = view_slurp(v0.fits);
	umapfs_view_destroy(v0.fits);
	umapfs_view_destroy(v0.npy);
	umapfs_view_destroy(v0.native);
	cr_assert_eq(umapfs_engine_destroy(e0), 0);
	struct umapfs_engine *e = test_engine(16384, 3 * 16384, NULL);
	struct fp_views v;
	cr_assert_eq(fp_views_create(s, e, 0, &v), 0);
	pthread_t t[8];
	struct rd r[8];
	for (int i = 0; i < 8; i++) {
		r[i] = (struct rd){.v = i < 6 ? v.native : v.fits, .whole = i < 6 ? wn : wf, .seed = (unsigned)i + 9};
		pthread_create(&t[i], NULL, reader, &r[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(r[i].bad, 0, "thread %d read wrong bytes", i);
	}
	free(wn);
	free(wf);
	umapfs_view_destroy(v.fits);
	umapfs_view_destroy(v.npy);
	umapfs_view_destroy(v.native);
	fp_stack_put(s);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	rm_rf(dir);
	free(dir);
}
