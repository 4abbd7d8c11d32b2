/*
 * Writable stacks: cube.fits / cube.npy data and the native view of float
 * sources without scaling write back into the source frames; other native
 * views and compressed stacks stay read-only.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fitsio.h>

#include "futil.h"

#define NX 300
#define NY 257

static char *mkstack(const char *tag, struct fspec sp, int n, char paths[][512], const char *ext)
{
	char *dir = scratch_dir(tag);
	for (int i = 0; i < n; i++) {
		snprintf(paths[i], 512, "%s/f%d.%s", dir, i, ext);
		struct fspec f = sp;
		f.seed = (unsigned)i + 11;
		f.mjd = 60000 + i;
		make_frame(paths[i], &f);
	}
	return dir;
}

static float src_pixel(const char *path, int hdu, long x, long y)
{
	float *p = ref_physical(path, hdu, -32, NX, NY);
	float v = p[y * NX + x];
	free(p);
	return v;
}

Test(write, float_sources_write_back)
{
	char paths[3][512];
	char *dir = mkstack("wr", fspec_default(-32, NX, NY), 3, paths, "fits");
	struct logcap lc = {0};
	struct fp_stack *s;
	cr_assert_eq(scan_dir(dir, "", &lc, &s), 0, "%s", lc.text);
	struct umapfs_engine *e = test_engine(16384, 1 << 20, &lc);
	struct fp_views v;
	cr_assert_eq(fp_views_create(s, e, 1, &v), 0, "%s", lc.text);
	cr_assert(v.fits_writable && v.native_writable);
	cr_assert(umapfs_view_writable(v.fits) && umapfs_view_writable(v.npy) && umapfs_view_writable(v.native));

	/* native view: plane 1, pixel (20, 10) */
	float val = 123.5f;
	uint64_t off = ((uint64_t)1 * NX * NY + 10 * NX + 20) * 4;
	cr_assert_eq(umapfs_view_write(v.native, &val, 4, off), 4);
	cr_assert_eq(umapfs_view_flush(v.native), 0, "%s", lc.text);
	cr_assert_eq(src_pixel(paths[1], 1, 20, 10), 123.5f);
	float back = 0;
	cr_assert_eq(umapfs_view_read(v.native, &back, 4, off), 4);
	cr_assert_eq(back, 123.5f);

	/* cube.fits data: plane 2, pixel (0, 0), big-endian */
	float w = -77.25f;
	uint32_t u;
	memcpy(&u, &w, 4);
	u = __builtin_bswap32(u);
	cr_assert_eq(umapfs_view_write(v.fits, &u, 4, FP_HDR_UNIT + (uint64_t)2 * NX * NY * 4), 4);
	cr_assert_eq(umapfs_view_flush(v.fits), 0, "%s", lc.text);
	cr_assert_eq(src_pixel(paths[2], 1, 0, 0), -77.25f);

	/* a whole page of the native view, written and flushed, equals cfitsio's reading */
	size_t pg = 16384;
	float *page = malloc(pg);
	for (size_t i = 0; i < pg / 4; i++)
		page[i] = (float)i * 0.5f - 3;
	cr_assert_eq(umapfs_view_write(v.native, page, pg, 0), (ssize_t)pg);
	cr_assert_eq(umapfs_view_flush(v.native), 0);
	float *ref = ref_physical(paths[0], 1, -32, NX, NY);
	cr_assert_eq(cmp_float(ref, page, pg / 4), -1);
	free(ref);
	free(page);

	cr_assert_eq(umapfs_view_destroy(v.native), 0);
	cr_assert_eq(umapfs_view_destroy(v.fits), 0);
	cr_assert_eq(umapfs_view_destroy(v.npy), 0);
	fp_stack_put(s);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	rm_rf(dir);
	free(dir);
}

Test(write, integer_native_is_read_only)
{
	char paths[2][512];
	struct fspec sp = fspec_default(16, NX, NY);
	sp.bzero_set = 1, sp.bzero = 32768;
	char *dir = mkstack("wri", sp, 2, paths, "fits");
	struct logcap lc = {0};
	struct fp_stack *s;
	cr_assert_eq(scan_dir(dir, "", &lc, &s), 0, "%s", lc.text);
	struct umapfs_engine *e = test_engine(16384, 1 << 20, &lc);
	struct fp_views v;
	cr_assert_eq(fp_views_create(s, e, 1, &v), 0, "%s", lc.text);
	cr_assert(v.fits_writable && !v.native_writable);
	cr_assert(strstr(v.why_ro, "integers"), "%s", v.why_ro);
	float x = 1;
	cr_assert_eq(umapfs_view_write(v.native, &x, 4, 0), -EROFS);
	/* the verbatim data stay writable: stored big-endian int16 */
	uint16_t be = __builtin_bswap16(0x1234);
	cr_assert_eq(umapfs_view_write(v.npy, &be, 2, FP_NPY_HDR + 2 * (NX * 3 + 4)), 2);
	cr_assert_eq(umapfs_view_flush(v.npy), 0);
	unsigned char *st = ref_stored_be(paths[0], 1, 16, NX, NY);
	cr_assert(memcmp(st + 2 * (NX * 3 + 4), &be, 2) == 0);
	free(st);
	umapfs_view_destroy(v.native);
	umapfs_view_destroy(v.fits);
	umapfs_view_destroy(v.npy);
	fp_stack_put(s);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	rm_rf(dir);
	free(dir);
}

Test(write, compressed_is_read_only)
{
	char paths[2][512];
	struct fspec sp = fspec_default(-32, NX, NY);
	sp.comp = RICE_1;
	char *dir = mkstack("wrc", sp, 2, paths, "fz");
	struct logcap lc = {0};
	struct fp_stack *s;
	cr_assert_eq(scan_dir(dir, "", &lc, &s), 0, "%s", lc.text);
	struct umapfs_engine *e = test_engine(16384, 1 << 20, &lc);
	struct fp_views v;
	cr_assert_eq(fp_views_create(s, e, 1, &v), 0, "%s", lc.text);
	cr_assert(!v.fits_writable && !v.native_writable);
	cr_assert(!umapfs_view_writable(v.fits) && !umapfs_view_writable(v.native));
	cr_assert(strstr(v.why_ro, "tile-compressed"), "%s", v.why_ro);
	char b = 0;
	cr_assert_eq(umapfs_view_write(v.fits, &b, 1, FP_HDR_UNIT), -EROFS);
	umapfs_view_destroy(v.native);
	umapfs_view_destroy(v.fits);
	umapfs_view_destroy(v.npy);
	fp_stack_put(s);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	rm_rf(dir);
	free(dir);
}

/* A buffer of one page: the native view still fills (it never waits for a second page). */
Test(write, one_page_buffer)
{
	char paths[2][512];
	char *dir = mkstack("one", fspec_default(-32, NX, NY), 2, paths, "fits");
	struct logcap lc = {0};
	struct fp_stack *s;
	cr_assert_eq(scan_dir(dir, "", &lc, &s), 0, "%s", lc.text);
	struct umapfs_engine *e = test_engine(65536, 65536, &lc);
	struct fp_views v;
	cr_assert_eq(fp_views_create(s, e, 1, &v), 0, "%s", lc.text);
	float *nat = view_slurp(v.native);
	for (int k = 0; k < 2; k++) {
		float *ref = ref_physical(paths[k], 1, -32, NX, NY);
		cr_assert_eq(cmp_float(nat + (size_t)k * NX * NY, ref, (size_t)NX * NY), -1, "plane %d", k);
		free(ref);
	}
	free(nat);
	float x = 9.5f;
	cr_assert_eq(umapfs_view_write(v.native, &x, 4, ((uint64_t)NX * NY + 3) * 4), 4);
	cr_assert_eq(umapfs_view_flush(v.native), 0);
	cr_assert_eq(src_pixel(paths[1], 1, 3, 0), 9.5f);
	umapfs_view_destroy(v.native);
	umapfs_view_destroy(v.fits);
	umapfs_view_destroy(v.npy);
	fp_stack_put(s);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	rm_rf(dir);
	free(dir);
}
