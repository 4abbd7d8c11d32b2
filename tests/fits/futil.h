/*
 * Helpers for the fits suite: frames of every kind written by cfitsio, an
 * engine with captured log, and references read back by cfitsio itself.
 */
#ifndef UMAPFS_TESTS_FUTIL_H
#define UMAPFS_TESTS_FUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "umapfs/engine.h"
#include "fp.h"

/* What one generated frame looks like. */
struct fspec {
	int bitpix;
	long nx, ny;
	int bzero_set, bscale_set;
	double bzero, bscale;
	int blank_set;
	long long blank;
	int in_ext;          /* empty primary, image in extension 1 (EXTNAME) */
	const char *extname; /* default "SCI" */
	int comp;            /* 0, or RICE_1, GZIP_1, GZIP_2, HCOMPRESS_1 */
	int wcs;             /* write a TAN WCS with CD matrix (1) or CDELT (2) */
	double crval1;       /* WCS: CRVAL1 (vary it to make grids differ) */
	double mjd;          /* MJD-OBS; < 0: none */
	const char *date_obs;/* DATE-OBS instead (NULL: none) */
	unsigned seed;
};

/* Per-kind default spec (bitpix and sizes set, the rest zero). */
struct fspec fspec_default(int bitpix, long nx, long ny);

/* Write a frame with cfitsio; aborts the test on failure. */
void make_frame(const char *path, const struct fspec *sp);

/* A fresh scratch directory /var/tmp/umapfs-fits-<tag>-XXXXXX (static buffer per call). */
char *scratch_dir(const char *tag);
void rm_rf(const char *dir);

/* Log capture: every message appended as "<level> <msg>\n". */
struct logcap {
	char text[1 << 16];
	size_t n;
};
void logcap_fn(void *arg, int level, const char *msg);

/* An engine with `page` byte pages and a `buffer` byte budget, logging into lc. */
struct umapfs_engine *test_engine(uint64_t page, uint64_t buffer, struct logcap *lc);

/* Scan dir with an options string; returns fp_stack_scan's result. */
int scan_dir(const char *dir, const char *opts, struct logcap *lc, struct fp_stack **out);

/*
 * cfitsio's own reading of a source frame (HDU 1-based number):
 *   stored_be:  the stored values, scaling off, big-endian (|BITPIX|/8 each)
 *   physical:   fits_read_pix as float (double for -64), BLANK -> NaN
 * Both malloc'd, nx*ny elements.
 */
void *ref_stored_be(const char *path, int hdu, int bitpix, long nx, long ny);
void *ref_physical(const char *path, int hdu, int bitpix, long nx, long ny);

/* Read a whole view (asserting the size). */
void *view_slurp(struct umapfs_view *v);

/* Equal as values, NaN equal to NaN; index of first difference or -1. */
long long cmp_float(const float *a, const float *b, size_t n);
long long cmp_double(const double *a, const double *b, size_t n);

/* Write bytes to a file. */
void put_file(const char *path, const void *buf, size_t len);

/* Run a shell command; returns its exit status. */
int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
