/* Helpers for the fits suite; see futil.h. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fitsio.h>

#include "futil.h"

struct fspec fspec_default(int bitpix, long nx, long ny)
{
	struct fspec s;
	memset(&s, 0, sizeof(s));
	s.bitpix = bitpix;
	s.nx = nx;
	s.ny = ny;
	s.bscale = 1;
	s.mjd = -1;
	return s;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

#define CHECK(st, what)                                                                    \
	do {                                                                               \
		if (st) {                                                                  \
			char m_[FLEN_STATUS];                                              \
			fits_get_errstatus(st, m_);                                        \
			cr_assert_fail("%s: %s: %s (%d)", path, what, m_, st);             \
		}                                                                          \
	} while (0)

void make_frame(const char *path, const struct fspec *sp)
{
	fitsfile *f;
	int st = 0;
	unlink(path);
	fits_create_diskfile(&f, (char *)path, &st);
	CHECK(st, "create");
	long ax[2] = {sp->nx, sp->ny};
	if (sp->in_ext && !sp->comp) {
		fits_create_img(f, 8, 0, NULL, &st);
		CHECK(st, "empty primary");
	}
	if (sp->comp) {
		fits_set_compression_type(f, sp->comp, &st);
		CHECK(st, "compression");
	}
	fits_create_img(f, sp->bitpix, 2, ax, &st);
	CHECK(st, "create_img");
	if (sp->in_ext || sp->comp)
		fits_write_key_str(f, "EXTNAME", (char *)(sp->extname ? sp->extname : "SCI"), "", &st);
	if (sp->bscale_set)
		fits_write_key_dbl(f, "BSCALE", sp->bscale, -17, "", &st);
	if (sp->bzero_set)
		fits_write_key_dbl(f, "BZERO", sp->bzero, -17, "", &st);
	if (sp->blank_set)
		fits_write_key_lng(f, "BLANK", sp->blank, "", &st);
	if (sp->mjd >= 0)
		fits_write_key_dbl(f, "MJD-OBS", sp->mjd, -15, "", &st);
	if (sp->date_obs)
		fits_write_key_str(f, "DATE-OBS", (char *)sp->date_obs, "", &st);
	fits_write_key_dbl(f, "EXPTIME", 30.0, -6, "", &st);
	if (sp->wcs) {
		fits_write_key_str(f, "CTYPE1", "RA---TAN", "", &st);
		fits_write_key_str(f, "CTYPE2", "DEC--TAN", "", &st);
		fits_write_key_dbl(f, "CRVAL1", sp->crval1 ? sp->crval1 : 150.0, -15, "", &st);
		fits_write_key_dbl(f, "CRVAL2", 2.5, -15, "", &st);
		fits_write_key_dbl(f, "CRPIX1", sp->nx / 2.0, -15, "", &st);
		fits_write_key_dbl(f, "CRPIX2", sp->ny / 2.0, -15, "", &st);
		fits_write_key_str(f, "CUNIT1", "deg", "", &st);
		fits_write_key_str(f, "CUNIT2", "deg", "", &st);
		if (sp->wcs == 1) {
			fits_write_key_dbl(f, "CD1_1", -5.5e-5, -15, "", &st);
			fits_write_key_dbl(f, "CD1_2", 1e-7, -15, "", &st);
			fits_write_key_dbl(f, "CD2_1", 1e-7, -15, "", &st);
			fits_write_key_dbl(f, "CD2_2", 5.5e-5, -15, "", &st);
		} else {
			fits_write_key_dbl(f, "CDELT1", -5.5e-5, -15, "", &st);
			fits_write_key_dbl(f, "CDELT2", 5.5e-5, -15, "", &st);
		}
		fits_write_key_str(f, "RADESYS", "ICRS", "", &st);
	}
	CHECK(st, "keys");
	fits_set_bscale(f, 1.0, 0.0, &st); /* write stored values as they are */
	CHECK(st, "bscale");
	if (sp->comp && sp->blank_set)
		fits_set_imgnull(f, sp->blank, &st);

	size_t n = (size_t)sp->nx * (size_t)sp->ny;
	int el = abs(sp->bitpix) / 8;
	void *buf = malloc(n * (size_t)el);
	cr_assert(buf);
	for (size_t i = 0; i < n; i++) {
		uint64_t r = mix(((uint64_t)sp->seed << 40) ^ i);
		int hole = sp->blank_set && i % 37 == 5;
		int nan = i % 53 == 7;
		switch (sp->bitpix) {
		case 8:
			((unsigned char *)buf)[i] = hole ? (unsigned char)sp->blank : (unsigned char)r;
			break;
		case 16:
			((short *)buf)[i] = hole ? (short)sp->blank : (short)(r & 0xffff);
			break;
		case 32:
			((int *)buf)[i] = hole ? (int)sp->blank : (int)(sp->comp ? (int32_t)(r % 2000000) - 1000000 : (int32_t)r);
			break;
		case 64:
			((long long *)buf)[i] = hole ? sp->blank : (long long)r;
			break;
		case -32:
			((float *)buf)[i] = nan ? NAN : (float)((double)(r % 2000001) / 1000.0 - 1000.0);
			break;
		case -64:
			((double *)buf)[i] = nan ? NAN : (double)(int64_t)r / 3.0e6;
			break;
		}
	}
	int dt = sp->bitpix == 8 ? TBYTE : sp->bitpix == 16 ? TSHORT : sp->bitpix == 32 ? TINT
		 : sp->bitpix == 64 ? TLONGLONG : sp->bitpix == -32 ? TFLOAT : TDOUBLE;
	fits_write_img(f, dt, 1, (LONGLONG)n, buf, &st);
	CHECK(st, "write pixels");
	free(buf);
	fits_close_file(f, &st);
	CHECK(st, "close");
}

char *scratch_dir(const char *tag)
{
	char *p = malloc(256);
	snprintf(p, 256, "/var/tmp/umapfs-fits-%s-XXXXXX", tag);
	cr_assert(mkdtemp(p), "mkdtemp: %s", strerror(errno));
	return p;
}

void rm_rf(const char *dir)
{
	if (dir && strncmp(dir, "/var/tmp/umapfs-fits-", 21) == 0)
		sh("rm -rf '%s'", dir);
}

void logcap_fn(void *arg, int level, const char *msg)
{
	struct logcap *lc = arg;
	if (!lc)
		return;
	int n = snprintf(lc->text + lc->n, sizeof(lc->text) - lc->n, "%d %s\n", level, msg);
	if (n > 0 && lc->n + (size_t)n < sizeof(lc->text))
		lc->n += (size_t)n;
}

struct umapfs_engine *test_engine(uint64_t page, uint64_t buffer, struct logcap *lc)
{
	struct umapfs_engine_config c;
	umapfs_engine_config_init(&c);
	c.page_size = page;
	c.buffer_size = buffer;
	c.log = logcap_fn;
	c.log_arg = lc;
	struct umapfs_engine *e = NULL;
	int r = umapfs_engine_create(&c, &e);
	cr_assert_eq(r, 0, "engine_create: %s", strerror(-r));
	return e;
}

int scan_dir(const char *dir, const char *opts, struct logcap *lc, struct fp_stack **out)
{
	struct fp_options o;
	int r = fp_options_parse(opts, &o, logcap_fn, lc);
	if (r < 0)
		return r;
	r = fp_stack_scan(dir, &o, logcap_fn, lc, out);
	fp_options_free(&o);
	return r;
}

static fitsfile *ref_open(const char *path, int hdu)
{
	fitsfile *f;
	int st = 0;
	fits_open_diskfile(&f, path, READONLY, &st);
	fits_movabs_hdu(f, hdu, NULL, &st);
	CHECK(st, "reference open");
	return f;
}

void *ref_stored_be(const char *path, int hdu, int bitpix, long nx, long ny)
{
	fitsfile *f = ref_open(path, hdu);
	int st = 0, any = 0, el = abs(bitpix) / 8;
	size_t n = (size_t)nx * (size_t)ny;
	unsigned char *buf = malloc(n * (size_t)el);
	int dt = bitpix == 8 ? TBYTE : bitpix == 16 ? TSHORT : bitpix == 32 ? TINT
		 : bitpix == 64 ? TLONGLONG : bitpix == -32 ? TFLOAT : TDOUBLE;
	fits_set_bscale(f, 1.0, 0.0, &st);
	LONGLONG fp[2] = {1, 1};
	fits_read_pixll(f, dt, fp, (LONGLONG)n, NULL, buf, &any, &st);
	CHECK(st, "reference read (stored)");
	fits_close_file(f, &st);
	for (size_t i = 0; i < n; i++) /* to big-endian */
		for (int a = 0, b = el - 1; a < b; a++, b--) {
			unsigned char t = buf[i * el + a];
			buf[i * el + a] = buf[i * el + b];
			buf[i * el + b] = t;
		}
	return buf;
}

void *ref_physical(const char *path, int hdu, int bitpix, long nx, long ny)
{
	fitsfile *f = ref_open(path, hdu);
	int st = 0, any = 0;
	size_t n = (size_t)nx * (size_t)ny;
	int dbl = bitpix == -64;
	void *buf = malloc(n * (dbl ? 8 : 4));
	char *nul = calloc(n, 1);
	LONGLONG fp[2] = {1, 1};
	if (bitpix > 0) {
		/* undefined (BLANK) pixels flagged, then NaN */
		fits_read_pixnullll(f, TFLOAT, fp, (LONGLONG)n, buf, nul, &any, &st);
		for (size_t i = 0; i < n; i++)
			if (nul[i])
				((float *)buf)[i] = NAN;
	} else {
		fits_read_pixll(f, dbl ? TDOUBLE : TFLOAT, fp, (LONGLONG)n, NULL, buf, &any, &st);
	}
	CHECK(st, "reference read (physical)");
	fits_close_file(f, &st);
	free(nul);
	return buf;
}

void *view_slurp(struct umapfs_view *v)
{
	uint64_t size = umapfs_view_size(v);
	char *buf = malloc(size ? size : 1);
	cr_assert(buf);
	ssize_t r = umapfs_view_read(v, buf, size, 0);
	cr_assert_eq(r, (ssize_t)size, "%s: read %zd of %llu", umapfs_view_name(v), r,
		     (unsigned long long)size);
	return buf;
}

long long cmp_float(const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (isnan(a[i]) && isnan(b[i]))
			continue;
		if (memcmp(&a[i], &b[i], 4))
			return (long long)i;
	}
	return -1;
}

long long cmp_double(const double *a, const double *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (isnan(a[i]) && isnan(b[i]))
			continue;
		if (memcmp(&a[i], &b[i], 8))
			return (long long)i;
	}
	return -1;
}

void put_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	cr_assert(f, "%s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(buf, 1, len, f), len);
	fclose(f);
}

int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int r = system(cmd);
	return WIFEXITED(r) ? WEXITSTATUS(r) : 128;
}
