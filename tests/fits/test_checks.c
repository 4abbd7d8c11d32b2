/*
 * Stack checks and hostile input: every violation refuses the mount with a
 * message naming the file, the keyword and both values; on_error=skip
 * leaves the frame out and lists it in index.txt; nothing crashes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fitsio.h>

#include "futil.h"

static char *dir;
static char pbuf[8][600];
static int pi;

static const char *P(const char *name)
{
	char *p = pbuf[pi++ % 8];
	snprintf(p, 600, "%s/%s", dir, name);
	return p;
}

static void setup(void) { dir = scratch_dir("chk"); }
static void teardown(void)
{
	rm_rf(dir);
	free(dir);
}
TestSuite(checks, .init = setup, .fini = teardown);
TestSuite(hostile, .init = setup, .fini = teardown);
TestSuite(options, .init = setup, .fini = teardown);
TestSuite(wcs, .init = setup, .fini = teardown);
TestSuite(order, .init = setup, .fini = teardown);

static void frame(const char *name, struct fspec s) { make_frame(P(name), &s); }
static struct fspec F(int bitpix) { return fspec_default(bitpix, 40, 30); }

/* Scanning must fail with `err` and the log must hold every needle. */
static void expect_refusal(const char *opts, int err, const char *n1, const char *n2, const char *n3)
{
	struct logcap lc = {0};
	struct fp_stack *s = NULL;
	int r = scan_dir(dir, opts, &lc, &s);
	cr_assert_eq(r, err, "scan returned %d, expected %d; log:\n%s", r, err, lc.text);
	cr_assert_null(s);
	const char *n[3] = {n1, n2, n3};
	for (int i = 0; i < 3; i++)
		if (n[i])
			cr_assert(strstr(lc.text, n[i]), "log lacks \"%s\":\n%s", n[i], lc.text);
}

/* A FITS header from cards (NULL-terminated), then `data` zero bytes (or fewer). */
static void raw_frame(const char *name, const char **cards, size_t data)
{
	size_t nc = 0;
	while (cards[nc])
		nc++;
	size_t hl = ((nc + 1) * 80 + 2879) / 2880 * 2880;
	char *b = calloc(1, hl + data);
	memset(b, ' ', hl);
	for (size_t i = 0; i < nc; i++)
		memcpy(b + 80 * i, cards[i], strlen(cards[i]));
	memcpy(b + 80 * nc, "END", 3);
	put_file(P(name), b, hl + data);
	free(b);
}

Test(checks, naxis1_differs)
{
	frame("a.fits", F(-32));
	struct fspec s = F(-32);
	s.nx = 41;
	frame("b.fits", s);
	expect_refusal("", -EINVAL, "b.fits: NAXIS1 = 41 but a.fits has NAXIS1 = 40", "refusing", NULL);
}

Test(checks, naxis2_differs)
{
	frame("a.fits", F(16));
	struct fspec s = F(16);
	s.ny = 31;
	frame("b.fits", s);
	expect_refusal("", -EINVAL, "b.fits: NAXIS2 = 31 but a.fits has NAXIS2 = 30", NULL, NULL);
}

Test(checks, bitpix_differs)
{
	frame("a.fits", F(-32));
	frame("b.fits", F(16));
	expect_refusal("", -EINVAL, "b.fits: BITPIX = 16 but a.fits has BITPIX = -32", NULL, NULL);
}

Test(checks, bzero_differs)
{
	frame("a.fits", F(16));
	struct fspec s = F(16);
	s.bzero_set = 1, s.bzero = 32768;
	frame("b.fits", s);
	expect_refusal("", -EINVAL, "b.fits: BZERO = 32768 but a.fits has BZERO = (absent)", NULL, NULL);
}

Test(checks, bscale_differs)
{
	struct fspec s = F(16);
	s.bscale_set = 1, s.bscale = 0.5;
	frame("a.fits", s);
	s.bscale = 0.25;
	frame("b.fits", s);
	expect_refusal("", -EINVAL, "b.fits: BSCALE = 0.25 but a.fits has BSCALE = 0.5", NULL, NULL);
}

Test(checks, blank_differs)
{
	struct fspec s = F(32);
	s.blank_set = 1, s.blank = -1;
	frame("a.fits", s);
	s.blank = -2;
	frame("b.fits", s);
	expect_refusal("", -EINVAL, "b.fits: BLANK = -2 but a.fits has BLANK = -1", NULL, NULL);
}

Test(checks, hdu_choice_differs)
{
	frame("a.fits", F(-32));
	struct fspec s = F(-32);
	s.in_ext = 1;
	frame("b.fits", s);
	expect_refusal("", -EINVAL, "b.fits: image in HDU 1 but a.fits has it in HDU 0", NULL, NULL);
}

Test(checks, extname_differs)
{
	struct fspec s = F(-32);
	s.in_ext = 1, s.extname = "SCI";
	frame("a.fits", s);
	s.extname = "VAR";
	frame("b.fits", s);
	expect_refusal("", -EINVAL, "b.fits: EXTNAME = 'VAR' but a.fits has EXTNAME = 'SCI'", NULL, NULL);
}

Test(checks, compressed_and_plain)
{
	struct fspec s = F(16);
	frame("a.fits", s);
	s.comp = RICE_1;
	frame("b.fz", s);
	expect_refusal("", -EINVAL, "b.fz: ZIMAGE = T", "a.fits", NULL);
}

Test(checks, blank_on_float)
{
	const char *c[] = {"SIMPLE  =                    T", "BITPIX  =                  -32",
			   "NAXIS   =                    2", "NAXIS1  =                   10",
			   "NAXIS2  =                   10", "BLANK   =                   -1", NULL};
	raw_frame("a.fits", c, 2880);
	expect_refusal("", -EINVAL, "a.fits: BLANK = -1 on a floating-point image (BITPIX = -32)", NULL, NULL);
}

Test(checks, cube_not_frame)
{
	const char *c[] = {"SIMPLE  =                    T", "BITPIX  =                    8",
			   "NAXIS   =                    3", "NAXIS1  =                   10",
			   "NAXIS2  =                   10", "NAXIS3  =                    2", NULL};
	raw_frame("a.fits", c, 2880);
	expect_refusal("", -EINVAL, "a.fits: NAXIS3 = 2", NULL, NULL);
}

Test(checks, skip_lists_bad_frames)
{
	frame("a.fits", F(-32));
	frame("b.fits", F(-32));
	frame("c.fits", F(16));
	put_file(P("d.fits"), "this is not FITS at all", 23);
	frame("e.fits", F(-32));
	struct logcap lc = {0};
	struct fp_stack *s = NULL;
	int r = scan_dir(dir, "on_error=skip", &lc, &s);
	cr_assert_eq(r, 0, "%s", lc.text);
	cr_assert_eq(s->n, 3);
	cr_assert_eq(s->n_skipped, 2);
	size_t len;
	char *ix = fp_index_text(s, &len);
	cr_assert(strstr(ix, "skipped\tc.fits\tBITPIX = 16 but a.fits has BITPIX = -32"), "%s", ix);
	cr_assert(strstr(ix, "skipped\td.fits\tnot a FITS file"), "%s", ix);
	cr_assert(strstr(ix, "\ta.fits\t") && strstr(ix, "\tb.fits\t") && strstr(ix, "\te.fits\t"), "%s", ix);
	free(ix);
	fp_stack_put(s);
	/* the default refuses the same directory */
	expect_refusal("", -EINVAL, "d.fits: not a FITS file", "refusing", NULL);
}

Test(checks, skip_everything_bad)
{
	put_file(P("a.fits"), "garbage", 7);
	expect_refusal("on_error=skip", -EINVAL, "none of the 1 matching files is a usable frame", NULL, NULL);
}

Test(checks, empty_directory)
{
	expect_refusal("", -ENOENT, "no file matches *.fits *.fit *.fts *.fz", NULL, NULL);
}

Test(checks, missing_directory)
{
	struct logcap lc = {0};
	struct fp_stack *s = NULL;
	char p[700];
	snprintf(p, sizeof(p), "%s/nope", dir);
	cr_assert_eq(scan_dir(p, "", &lc, &s), -ENOENT);
	cr_assert(strstr(lc.text, "cannot open the frames directory"), "%s", lc.text);
}

Test(hostile, naxis_product_overflows)
{
	const char *c[] = {"SIMPLE  =                    T", "BITPIX  =                   16",
			   "NAXIS   =                    2", "NAXIS1  =  4611686018427387904",
			   "NAXIS2  =                    8", NULL};
	raw_frame("a.fits", c, 2880);
	struct logcap lc = {0};
	struct fp_stack *s = NULL;
	cr_assert_eq(scan_dir(dir, "", &lc, &s), -EINVAL);
	cr_assert(strstr(lc.text, "a.fits") && (strstr(lc.text, "overflows") || strstr(lc.text, "NAXIS")),
		  "%s", lc.text);
}

Test(hostile, naxis_beyond_file)
{
	const char *c[] = {"SIMPLE  =                    T", "BITPIX  =                  -32",
			   "NAXIS   =                    2", "NAXIS1  =                 4096",
			   "NAXIS2  =                 4096", NULL};
	raw_frame("a.fits", c, 2880 * 4);
	expect_refusal("", -EINVAL, "a.fits: truncated: NAXIS1 x NAXIS2 x |BITPIX|/8 = 67108864 data bytes",
		       "but the file has 14400 bytes", NULL);
}

Test(hostile, truncated_frame)
{
	frame("a.fits", F(-32));
	frame("b.fits", F(-32));
	cr_assert_eq(truncate(P("b.fits"), 2880 + 40 * 30 * 4 / 2), 0);
	expect_refusal("", -EINVAL, "b.fits: truncated", "but the file has 5280 bytes", NULL);
}

Test(hostile, garbage)
{
	char junk[10000];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7919 + 13);
	put_file(P("a.fits"), junk, sizeof(junk));
	expect_refusal("", -EINVAL, "a.fits: not a readable FITS file", NULL, NULL);
}

Test(hostile, bad_bitpix)
{
	const char *c[] = {"SIMPLE  =                    T", "BITPIX  =                   12",
			   "NAXIS   =                    2", "NAXIS1  =                   10",
			   "NAXIS2  =                   10", NULL};
	raw_frame("a.fits", c, 2880);
	struct logcap lc = {0};
	struct fp_stack *s = NULL;
	cr_assert_eq(scan_dir(dir, "", &lc, &s), -EINVAL);
	cr_assert(strstr(lc.text, "a.fits: ") && strstr(lc.text, "BITPIX"), "%s", lc.text);
}

Test(hostile, whole_file_gzip)
{
	frame("a.fits", F(-32));
	cr_assert_eq(sh("gzip -c '%s' > '%s'", P("a.fits"), P("b.fits.gz")), 0);
	cr_assert_eq(unlink(P("a.fits")), 0);
	expect_refusal("pattern=*.gz", -EINVAL, "b.fits.gz: whole-file gzip", "fpack", NULL);
}

Test(hostile, table_hdu)
{
	fitsfile *f;
	int st = 0;
	char *tt[] = {"X"}, *tf[] = {"1J"};
	fits_create_diskfile(&f, (char *)P("a.fits"), &st);
	fits_create_img(f, 8, 0, NULL, &st);
	fits_create_tbl(f, BINARY_TBL, 3, 1, tt, tf, NULL, "T", &st);
	fits_close_file(f, &st);
	cr_assert_eq(st, 0);
	expect_refusal("hdu=1", -EINVAL, "a.fits: HDU 1 is a binary table, not an image", NULL, NULL);
	expect_refusal("", -EINVAL, "a.fits: no image HDU with data", NULL, NULL);
	expect_refusal("hdu=NOPE", -EINVAL, "a.fits: no HDU with EXTNAME = 'NOPE'", NULL, NULL);
	expect_refusal("hdu=7", -EINVAL, "a.fits: no HDU 7", NULL, NULL);
}

/* Corrupt random header bytes of a valid frame: any outcome but a crash. */
Test(hostile, corrupted_headers)
{
	frame("src.fits", F(16));
	struct stat sb;
	cr_assert_eq(stat(P("src.fits"), &sb), 0);
	char *orig = malloc((size_t)sb.st_size), *b = malloc((size_t)sb.st_size);
	FILE *fp = fopen(P("src.fits"), "rb");
	cr_assert_eq(fread(orig, 1, (size_t)sb.st_size, fp), (size_t)sb.st_size);
	fclose(fp);
	unlink(P("src.fits"));
	srand(7);
	int ok = 0, refused = 0;
	for (int it = 0; it < 150; it++) {
		memcpy(b, orig, (size_t)sb.st_size);
		for (int k = 0; k < 4; k++) {
			size_t card = (size_t)(rand() % 8), col = (size_t)(rand() % 30);
			b[card * 80 + col] = "0123456789-+ =TFE.'\x01"[rand() % 20];
		}
		size_t len = (size_t)sb.st_size;
		if (it % 5 == 0)
			len = (size_t)(rand() % (int)len);
		put_file(P("a.fits"), b, len);
		struct logcap lc = {0};
		struct fp_stack *s = NULL;
		int r = scan_dir(dir, "", &lc, &s);
		if (r == 0) {
			ok++;
			cr_assert_eq(s->n, 1);
			/* whatever the header says, the data lie inside the file */
			cr_assert_leq(s->frames[0].data_off + s->plane_bytes, (uint64_t)len);
			fp_stack_put(s);
		} else {
			refused++;
			cr_assert(strstr(lc.text, "a.fits"), "refusal without the file name:\n%s", lc.text);
		}
	}
	cr_log_info("corrupted headers: %d accepted, %d refused", ok, refused);
	cr_assert_gt(refused, 0);
	free(orig);
	free(b);
}

Test(options, bad_options)
{
	struct fp_options o;
	struct logcap lc = {0};
	cr_assert_eq(fp_options_parse("colour=red", &o, logcap_fn, &lc), -EINVAL);
	cr_assert(strstr(lc.text, "unknown option 'colour'"), "%s", lc.text);
	cr_assert_eq(fp_options_parse("order=random", &o, logcap_fn, &lc), -EINVAL);
	cr_assert(strstr(lc.text, "order=random: expected time or name"), "%s", lc.text);
	cr_assert_eq(fp_options_parse("on_error=ignore", &o, logcap_fn, &lc), -EINVAL);
	cr_assert(strstr(lc.text, "on_error=ignore: expected refuse or skip"), "%s", lc.text);
	cr_assert_eq(fp_options_parse("hdu", &o, logcap_fn, &lc), -EINVAL);
	cr_assert_eq(fp_options_parse("hdu=-1", &o, logcap_fn, &lc), -EINVAL);
	cr_assert_eq(fp_options_parse("hdu=3,pattern=*.x:*.y,order=name,on_error=skip", &o, logcap_fn, &lc), 0);
	cr_assert_eq(o.hdu, 3);
	cr_assert_eq(o.n_patterns, 2);
	cr_assert_str_eq(o.patterns[1], "*.y");
	cr_assert_eq(o.order, FP_ORDER_NAME);
	cr_assert_eq(o.on_error, FP_SKIP);
	fp_options_free(&o);
	cr_assert_eq(fp_options_parse("", &o, logcap_fn, &lc), 0);
	cr_assert_eq(o.n_patterns, 4);
	cr_assert_eq(o.hdu, -1);
	fp_options_free(&o);
}

Test(options, pattern_selects)
{
	frame("a.fits", F(-32));
	frame("b.fit", F(-32));
	frame("c.img", F(16));
	struct logcap lc = {0};
	struct fp_stack *s = NULL;
	cr_assert_eq(scan_dir(dir, "", &lc, &s), 0, "%s", lc.text);
	cr_assert_eq(s->n, 2);
	fp_stack_put(s);
	cr_assert_eq(scan_dir(dir, "pattern=*.img", &lc, &s), 0, "%s", lc.text);
	cr_assert_eq(s->n, 1);
	cr_assert_eq(s->bitpix, 16);
	fp_stack_put(s);
}

/* The cube.fits of `dir` written out; returns its path. */
static const char *cube_file(struct fp_stack *s)
{
	struct logcap lc = {0};
	struct umapfs_engine *e = test_engine(65536, 4 << 20, &lc);
	struct fp_views v;
	cr_assert_eq(fp_views_create(s, e, 0, &v), 0, "%s", lc.text);
	void *b = view_slurp(v.fits);
	const char *out = P("cube-out.fits");
	put_file(out, b, umapfs_view_size(v.fits));
	free(b);
	umapfs_view_destroy(v.fits);
	umapfs_view_destroy(v.npy);
	umapfs_view_destroy(v.native);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	return out;
}

static int has_key(const char *path, const char *key, char *val)
{
	fitsfile *f;
	int st = 0;
	char v[FLEN_VALUE];
	fits_open_diskfile(&f, path, READONLY, &st);
	cr_assert_eq(st, 0);
	fits_read_keyword(f, key, v, NULL, &st);
	int s2 = 0;
	fits_close_file(f, &s2);
	fits_clear_errmsg();
	if (val && !st)
		strcpy(val, v);
	return st == 0;
}

static void wcs_stack(int kind, int uniform)
{
	for (int i = 0; i < 4; i++) {
		struct fspec s = F(-32);
		s.wcs = kind;
		s.mjd = 60000 + i * 0.5 + (uniform ? 0 : i * i * 0.01);
		char n[32];
		snprintf(n, sizeof(n), "f%d.fits", i);
		frame(n, s);
	}
}

Test(wcs, consistent_cd)
{
	wcs_stack(1, 1);
	struct logcap lc = {0};
	struct fp_stack *s = NULL;
	cr_assert_eq(scan_dir(dir, "", &lc, &s), 0, "%s", lc.text);
	cr_assert(s->wcs_ok && s->time_uniform);
	const char *out = cube_file(s);
	fp_stack_put(s);
	char v[FLEN_VALUE];
	cr_assert(has_key(out, "WCSAXES", v) && atoi(v) == 3);
	cr_assert(has_key(out, "CD3_3", v) && atof(v) == 0.5, "CD3_3 = %s", v);
	cr_assert(has_key(out, "CTYPE3", v) && strstr(v, "TIME"));
	cr_assert(!has_key(out, "CDELT3", NULL), "CDELT3 mixed with CDi_j");
	cr_assert(has_key(out, "PFIL0004", v) && strstr(v, "f3.fits"));
	cr_assert(has_key(out, "PMJD0002", v) && atof(v) == 60000.5);
	cr_assert(!has_key(out, "CHECKSUM", NULL));
	/* WCSAXES precedes every other WCS key */
	FILE *fp = fopen(out, "rb");
	char hdr[2880 * 2];
	cr_assert_eq(fread(hdr, 1, sizeof(hdr), fp), sizeof(hdr));
	fclose(fp);
	char *w = memmem(hdr, sizeof(hdr), "WCSAXES", 7), *c = memmem(hdr, sizeof(hdr), "CTYPE1", 6);
	cr_assert(w && c && w < c);
	if (access("/usr/bin/fitsverify", X_OK) == 0)
		cr_assert_eq(sh("fitsverify -q '%s' >/dev/null 2>&1", out), 0, "fitsverify fails on the WCS cube");
}

Test(wcs, consistent_cdelt_nonuniform_time)
{
	wcs_stack(2, 0);
	struct logcap lc = {0};
	struct fp_stack *s = NULL;
	cr_assert_eq(scan_dir(dir, "", &lc, &s), 0, "%s", lc.text);
	cr_assert(s->wcs_ok && !s->time_uniform);
	const char *out = cube_file(s);
	fp_stack_put(s);
	char v[FLEN_VALUE];
	cr_assert(has_key(out, "CDELT3", v));
	cr_assert(has_key(out, "CTYPE3", v) && strstr(v, "PLANE"));
	cr_assert(!has_key(out, "CD1_1", NULL));
	if (access("/usr/bin/fitsverify", X_OK) == 0)
		cr_assert_eq(sh("fitsverify -q '%s' >/dev/null 2>&1", out), 0);
}

Test(wcs, disagreement_warns)
{
	struct fspec s = F(-32);
	s.wcs = 1;
	s.mjd = 60000;
	frame("a.fits", s);
	s.crval1 = 150.5;
	s.mjd = 60001;
	frame("b.fits", s);
	struct logcap lc = {0};
	struct fp_stack *st = NULL;
	cr_assert_eq(scan_dir(dir, "", &lc, &st), 0, "%s", lc.text);
	cr_assert(strstr(lc.text, "4 fits: ") && strstr(lc.text, "b.fits: WCS differs from a.fits's (CRVAL1 = 150.5 vs 150)"),
		  "%s", lc.text);
	cr_assert(!st->wcs_ok);
	const char *out = cube_file(st);
	fp_stack_put(st);
	cr_assert(!has_key(out, "WCSAXES", NULL));
	cr_assert(!has_key(out, "CTYPE1", NULL));
}

Test(order, date_obs_and_name)
{
	const char *dates[] = {"2024-03-01T05:00:00", "2024-03-01T04:00:00.5", "2024-02-29T23:59:59"};
	for (int i = 0; i < 3; i++) {
		struct fspec s = F(-32);
		s.date_obs = dates[i];
		char n[32];
		snprintf(n, sizeof(n), "n%d.fits", i);
		frame(n, s);
	}
	struct logcap lc = {0};
	struct fp_stack *s = NULL;
	cr_assert_eq(scan_dir(dir, "", &lc, &s), 0, "%s", lc.text);
	cr_assert_str_eq(s->frames[0].name, "n2.fits");
	cr_assert_str_eq(s->frames[1].name, "n1.fits");
	cr_assert_str_eq(s->frames[2].name, "n0.fits");
	/* 2024-03-01T04:00:00.5 = MJD 60370 + 4/24 + 0.5/86400 */
	cr_assert(fabs(s->frames[1].mjd - (60370 + 4.0 / 24 + 0.5 / 86400)) < 1e-9, "%.9f", s->frames[1].mjd);
	fp_stack_put(s);
	cr_assert_eq(scan_dir(dir, "order=name", &lc, &s), 0);
	cr_assert_str_eq(s->frames[0].name, "n0.fits");
	fp_stack_put(s);
	/* DATE-OBS date only plus TIME-OBS; a directory named like a frame is ignored */
	{
		fitsfile *f;
		int st = 0;
		struct fspec sp = F(-32);
		sp.date_obs = "2024-02-29";
		frame("n4.fits", sp);
		fits_open_diskfile(&f, P("n4.fits"), READWRITE, &st);
		fits_write_key_str(f, "TIME-OBS", "23:00:00", "", &st);
		fits_close_file(f, &st);
		cr_assert_eq(st, 0);
		cr_assert_eq(mkdir(P("sub.fits"), 0755), 0);
		cr_assert_eq(scan_dir(dir, "", &lc, &s), 0, "%s", lc.text);
		cr_assert_eq(s->n, 4);
		cr_assert_str_eq(s->frames[0].name, "n4.fits");
		cr_assert(fabs(s->frames[0].mjd - (60369 + 23.0 / 24)) < 1e-9, "%.9f", s->frames[0].mjd);
		fp_stack_put(s);
		unlink(P("n4.fits"));
	}
	/* one frame without a time: name order, with a warning naming it */
	frame("n3.fits", F(-32));
	lc.n = 0;
	cr_assert_eq(scan_dir(dir, "", &lc, &s), 0);
	cr_assert_str_eq(s->frames[0].name, "n0.fits");
	cr_assert(strstr(lc.text, "n3.fits has no MJD-OBS, DATE-OBS or DATE-AVG"), "%s", lc.text);
	fp_stack_put(s);
}

TestSuite(header, .init = setup, .fini = teardown);

/* More planes than one 184320-byte header holds keys for: it grows by whole units. */
Test(header, many_planes_grow_the_header, .timeout = 120)
{
	for (int i = 0; i < 1200; i++) {
		char n[64];
		snprintf(n, sizeof(n), "p%04d_it's.fits", i); /* a quote to escape in PFILnnnn */
		struct fspec s = fspec_default(16, 10, 10);
		s.mjd = 60000 + i * 0.001;
		s.seed = (unsigned)i;
		frame(n, s);
	}
	struct logcap lc = {0};
	struct fp_stack *s = NULL;
	cr_assert_eq(scan_dir(dir, "", &lc, &s), 0, "%s", lc.text);
	size_t hl;
	char *h = fp_fits_header(s, &hl);
	cr_assert_eq(hl, 2 * FP_HDR_UNIT);
	cr_assert(memcmp(h + hl - 80, "END     ", 8) == 0);
	free(h);
	const char *out = cube_file(s);
	fp_stack_put(s);
	char v[FLEN_VALUE];
	cr_assert(has_key(out, "PFIL1200", v) && strstr(v, "p1199_it''s.fits"), "%s", v);
	cr_assert(has_key(out, "NAXIS3", v) && atoi(v) == 1200);
	if (access("/usr/bin/fitsverify", X_OK) == 0)
		cr_assert_eq(sh("fitsverify -q '%s' >/dev/null 2>&1", out), 0);
	/* cfitsio finds the data after the two-unit header: plane 1200 equals its frame */
	fitsfile *f;
	int st = 0, any;
	short a[100];
	LONGLONG fp[3] = {1, 1, 1200};
	fits_open_diskfile(&f, out, READONLY, &st);
	fits_read_pixll(f, TSHORT, fp, 100, NULL, a, &any, &st);
	fits_close_file(f, &st);
	cr_assert_eq(st, 0);
	float *ref = ref_physical(P("p1199_it's.fits"), 1, 16, 10, 10);
	for (int i = 0; i < 100; i++)
		cr_assert_eq((float)a[i], ref[i]);
	free(ref);
}

/* A tile-compressed frame with a damaged heap: reads fail with -EIO (logged), never crash. */
Test(hostile, damaged_compressed_tiles)
{
	struct fspec s = fspec_default(16, 200, 100);
	s.comp = RICE_1;
	frame("a.fz", s);
	struct stat sb;
	cr_assert_eq(stat(P("a.fz"), &sb), 0);
	FILE *fp = fopen(P("a.fz"), "r+b");
	srand(3);
	for (long off = 2 * 2880 + 400; off < sb.st_size - 2880; off += 97) { /* inside the heap */
		fseek(fp, off, SEEK_SET);
		fputc(rand() & 0xff, fp);
	}
	fclose(fp);
	struct logcap lc = {0};
	struct fp_stack *st = NULL;
	int r = scan_dir(dir, "", &lc, &st);
	cr_assert_eq(r, 0, "%s", lc.text);
	struct umapfs_engine *e = test_engine(16384, 1 << 20, &lc);
	struct fp_views v;
	cr_assert_eq(fp_views_create(st, e, 0, &v), 0, "%s", lc.text);
	uint64_t size = umapfs_view_size(v.native);
	char *buf = malloc(size);
	ssize_t got = umapfs_view_read(v.native, buf, size, 0);
	cr_log_info("damaged tiles: read returned %zd of %llu", got, (unsigned long long)size);
	cr_assert(got == (ssize_t)size || got == -EIO, "read returned %zd", got);
	if (got < 0)
		cr_assert(strstr(lc.text, "a.fz: decoding rows"), "%s", lc.text);
	free(buf);
	umapfs_view_destroy(v.fits);
	umapfs_view_destroy(v.npy);
	umapfs_view_destroy(v.native);
	fp_stack_put(st);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
}
