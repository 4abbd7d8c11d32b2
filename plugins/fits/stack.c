/*
 * Scanning a directory of FITS frames into a validated stack description.
 *
 * Every header is hostile input: cfitsio parses it (fits_open_diskfile, no
 * file-name syntax), but every size it reports is re-checked here with
 * overflow-safe arithmetic against the real file size from stat(2).  Only
 * headers are read; the pixels are never touched at mount time.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fitsio.h>

#include "fp.h"
#include "fp_i.h"

void fp_logf(fp_log_fn log, void *arg, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log)
		log(arg, level, msg);
}

/* ---- options ------------------------------------------------------------ */

static const char *default_patterns[] = {"*.fits", "*.fit", "*.fts", "*.fz"};

/* Parse options; see fp.h. */
int fp_options_parse(const char *s, struct fp_options *o, fp_log_fn log, void *arg)
{
	memset(o, 0, sizeof(*o));
	o->hdu = -1;
	o->order = FP_ORDER_TIME;
	o->on_error = FP_REFUSE;
	size_t dl = 0;
	for (size_t i = 0; i < 4; i++)
		dl += strlen(default_patterns[i]) + 1;
	size_t sl = s ? strlen(s) : 0;
	o->buf = malloc(dl + 2 * sl + 2);
	if (!o->buf)
		return -ENOMEM;
	char *pbuf = o->buf; /* patterns */
	char *work = o->buf + dl + sl + 1;
	memcpy(work, s ? s : "", sl + 1);
	int have_pattern = 0;

	for (char *tok = work, *next; tok && *tok; tok = next) {
		next = strchr(tok, ',');
		if (next)
			*next++ = 0;
		if (!*tok)
			continue;
		char *val = strchr(tok, '=');
		if (!val) {
			fp_logf(log, arg, UMAPFS_LOG_ERR, "fits: option '%s' needs a value (KEY=VALUE)", tok);
			goto bad;
		}
		*val++ = 0;
		if (strcmp(tok, "hdu") == 0) {
			char *end;
			long n = strtol(val, &end, 10);
			if (*val && !*end) {
				if (n < 0 || n > 100000) {
					fp_logf(log, arg, UMAPFS_LOG_ERR, "fits: hdu=%s is not an HDU number (0 = primary)", val);
					goto bad;
				}
				o->hdu = (int)n;
			} else {
				if (!*val || strlen(val) >= sizeof(o->hdu_name)) {
					fp_logf(log, arg, UMAPFS_LOG_ERR, "fits: hdu=%s: empty or too long EXTNAME", val);
					goto bad;
				}
				strcpy(o->hdu_name, val);
			}
		} else if (strcmp(tok, "pattern") == 0) {
			/* several globs separated by ':' */
			for (char *g = val, *gn; g; g = gn) {
				gn = strchr(g, ':');
				if (gn)
					*gn++ = 0;
				if (!*g)
					continue;
				if (o->n_patterns == FP_MAX_PATTERNS) {
					fp_logf(log, arg, UMAPFS_LOG_ERR, "fits: more than %d patterns", FP_MAX_PATTERNS);
					goto bad;
				}
				size_t gl = strlen(g);
				memcpy(pbuf, g, gl + 1);
				o->patterns[o->n_patterns++] = pbuf;
				pbuf += gl + 1;
			}
			have_pattern = 1;
		} else if (strcmp(tok, "order") == 0) {
			if (strcmp(val, "time") == 0)
				o->order = FP_ORDER_TIME;
			else if (strcmp(val, "name") == 0)
				o->order = FP_ORDER_NAME;
			else {
				fp_logf(log, arg, UMAPFS_LOG_ERR, "fits: order=%s: expected time or name", val);
				goto bad;
			}
		} else if (strcmp(tok, "on_error") == 0) {
			if (strcmp(val, "refuse") == 0)
				o->on_error = FP_REFUSE;
			else if (strcmp(val, "skip") == 0)
				o->on_error = FP_SKIP;
			else {
				fp_logf(log, arg, UMAPFS_LOG_ERR, "fits: on_error=%s: expected refuse or skip", val);
				goto bad;
			}
		} else {
			fp_logf(log, arg, UMAPFS_LOG_ERR,
				"fits: unknown option '%s' (known: hdu, pattern, order, on_error)", tok);
			goto bad;
		}
	}
	if (!have_pattern || o->n_patterns == 0) {
		o->n_patterns = 0;
		for (size_t i = 0; i < 4; i++) {
			size_t gl = strlen(default_patterns[i]);
			memcpy(pbuf, default_patterns[i], gl + 1);
			o->patterns[o->n_patterns++] = pbuf;
			pbuf += gl + 1;
		}
	}
	return 0;
bad:
	fp_options_free(o);
	return -EINVAL;
}

void fp_options_free(struct fp_options *o)
{
	free(o->buf);
	memset(o, 0, sizeof(*o));
}

/* ---- one frame ---------------------------------------------------------- */

/* What one header says, before the stack checks. */
struct finfo {
	int bitpix;
	int64_t nx, ny;
	int hdu;
	char extname[72];
	int compressed;
	int has_bzero, has_bscale, has_blank;
	double bzero, bscale;
	long long blank;
	uint64_t data_off;
	int has_time;
	double mjd;
	char date[72];
	double exptime;
	struct fp_wcs wcs;
	int64_t ztile[2];
};

static void cfitsio_msg(int status, char *buf, size_t len)
{
	char txt[FLEN_STATUS];
	fits_get_errstatus(status, txt);
	snprintf(buf, len, "%s (cfitsio status %d)", txt, status);
	fits_clear_errmsg();
}

/* Days from 1970-01-01 of a proleptic Gregorian date. */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

/* ISO date "YYYY-MM-DD[Thh:mm:ss[.f]]" -> MJD; 0 or -1 if not one. */
int fp_iso_to_mjd(const char *s, double *mjd)
{
	int y, mo, d, h = 0, mi = 0, n = 0;
	double sec = 0;
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return -1;
	if (s[n] == 'T') {
		int n2 = 0;
		if (sscanf(s + n + 1, "%2d:%2d:%lf%n", &h, &mi, &sec, &n2) != 3)
			return -1;
		n += 1 + n2;
	}
	while (s[n] == ' ')
		n++;
	if (s[n] || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
	    !(sec >= 0 && sec < 61))
		return -1;
	*mjd = 40587.0 + (double)days_from_civil(y, (unsigned)mo, (unsigned)d) +
	       (h * 3600.0 + mi * 60.0 + sec) / 86400.0;
	return 0;
}

static int read_str(fitsfile *f, const char *key, char *out, size_t len)
{
	int st = 0;
	char v[FLEN_VALUE];
	if (fits_read_key_str(f, key, v, NULL, &st)) {
		fits_clear_errmsg();
		return 0;
	}
	snprintf(out, len, "%s", v);
	return 1;
}

static int read_dbl(fitsfile *f, const char *key, double *out)
{
	int st = 0;
	if (fits_read_key_dbl(f, key, out, NULL, &st)) {
		fits_clear_errmsg();
		return 0;
	}
	return 1;
}

static void read_time(fitsfile *f, struct finfo *fi)
{
	if (!fi->has_time && read_dbl(f, "MJD-OBS", &fi->mjd) && isfinite(fi->mjd))
		fi->has_time = 1;
	if (!fi->date[0])
		if (!read_str(f, "DATE-OBS", fi->date, sizeof(fi->date)))
			read_str(f, "DATE-AVG", fi->date, sizeof(fi->date));
	if (!fi->has_time && fi->date[0]) {
		char t[72], full[160];
		/* a date-only DATE-OBS with the time of day in TIME-OBS (older files) */
		if (strlen(fi->date) == 10 && read_str(f, "TIME-OBS", t, sizeof(t))) {
			snprintf(full, sizeof(full), "%sT%s", fi->date, t);
			if (fp_iso_to_mjd(full, &fi->mjd) == 0)
				fi->has_time = 1;
		}
		if (!fi->has_time && fp_iso_to_mjd(fi->date, &fi->mjd) == 0)
			fi->has_time = 1;
	}
	if (isnan(fi->exptime))
		if (!read_dbl(f, "EXPTIME", &fi->exptime))
			fi->exptime = NAN;
}

static void read_wcs(fitsfile *f, struct fp_wcs *w)
{
	memset(w, 0, sizeof(*w));
	if (!read_str(f, "CTYPE1", w->ctype[0], sizeof(w->ctype[0])) ||
	    !read_str(f, "CTYPE2", w->ctype[1], sizeof(w->ctype[1])))
		return;
	if (!read_dbl(f, "CRVAL1", &w->crval[0]) || !read_dbl(f, "CRVAL2", &w->crval[1]) ||
	    !read_dbl(f, "CRPIX1", &w->crpix[0]) || !read_dbl(f, "CRPIX2", &w->crpix[1]))
		return;
	read_str(f, "CUNIT1", w->cunit[0], sizeof(w->cunit[0]));
	read_str(f, "CUNIT2", w->cunit[1], sizeof(w->cunit[1]));
	read_str(f, "RADESYS", w->radesys, sizeof(w->radesys));
	w->has_equinox = read_dbl(f, "EQUINOX", &w->equinox);
	int ncd = read_dbl(f, "CD1_1", &w->cd[0][0]) + read_dbl(f, "CD1_2", &w->cd[0][1]) +
		  read_dbl(f, "CD2_1", &w->cd[1][0]) + read_dbl(f, "CD2_2", &w->cd[1][1]);
	if (ncd) {
		w->use_cd = 1;
	} else {
		if (!read_dbl(f, "CDELT1", &w->cdelt[0]) || !read_dbl(f, "CDELT2", &w->cdelt[1]))
			return;
		w->pc[0][0] = w->pc[1][1] = 1;
		int npc = read_dbl(f, "PC1_1", &w->pc[0][0]) + read_dbl(f, "PC1_2", &w->pc[0][1]) +
			  read_dbl(f, "PC2_1", &w->pc[1][0]) + read_dbl(f, "PC2_2", &w->pc[1][1]);
		double rot;
		if (!npc && read_dbl(f, "CROTA2", &rot) && rot != 0) {
			double c = cos(rot * M_PI / 180), s = sin(rot * M_PI / 180);
			w->pc[0][0] = c;
			w->pc[0][1] = -s * w->cdelt[1] / w->cdelt[0];
			w->pc[1][0] = s * w->cdelt[0] / w->cdelt[1];
			w->pc[1][1] = c;
			npc = 1;
		}
		w->has_pc = npc > 0;
	}
	w->present = 1;
}

/*
 * Read one frame's header.  Returns 0, or -errno with the reason (naming
 * the keyword and value) in `why`.
 */
static int scan_frame(const char *path, const struct fp_options *o, struct finfo *fi, char *why,
		      size_t wl)
{
	fitsfile *f = NULL;
	int st = 0, ret = -EINVAL;
	struct stat sb;
	char msg[160];

	memset(fi, 0, sizeof(*fi));
	fi->exptime = NAN;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		ret = -errno;
		snprintf(why, wl, "cannot open: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return ret;
	}
	unsigned char magic[2] = {0, 0};
	ssize_t got = pread(fd, magic, 2, 0);
	close(fd);
	if (!S_ISREG(sb.st_mode)) {
		snprintf(why, wl, "not a regular file");
		return -EINVAL;
	}
	if (got == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
		snprintf(why, wl,
			 "whole-file gzip (.fits.gz) cannot be served by positional reads: "
			 "gunzip it, or tile-compress it with fpack (.fz)");
		return -EINVAL;
	}
	if (sb.st_size < 2880) {
		snprintf(why, wl, "not a FITS file: %lld bytes, less than one 2880-byte header block",
			 (long long)sb.st_size);
		return -EINVAL;
	}
	uint64_t fsize = (uint64_t)sb.st_size;

	if (fits_open_diskfile(&f, path, READONLY, &st)) {
		cfitsio_msg(st, msg, sizeof(msg));
		snprintf(why, wl, "not a readable FITS file: %s", msg);
		return -EINVAL;
	}

	int type = 0;
	if (o->hdu_name[0]) {
		if (fits_movnam_hdu(f, ANY_HDU, (char *)o->hdu_name, 0, &st)) {
			cfitsio_msg(st, msg, sizeof(msg));
			snprintf(why, wl, "no HDU with EXTNAME = '%s' (%s)", o->hdu_name, msg);
			goto out;
		}
	} else if (o->hdu >= 0) {
		if (fits_movabs_hdu(f, o->hdu + 1, &type, &st)) {
			cfitsio_msg(st, msg, sizeof(msg));
			snprintf(why, wl, "no HDU %d (%s)", o->hdu, msg);
			goto out;
		}
	} else {
		/* the first image HDU with data */
		for (int h = 1;; h++) {
			if (fits_movabs_hdu(f, h, &type, &st)) {
				int eof = st == END_OF_FILE || st == BAD_HDU_NUM;
				cfitsio_msg(st, msg, sizeof(msg));
				if (eof)
					snprintf(why, wl, "no image HDU with data (NAXIS > 0) in %d HDUs", h - 1);
				else
					snprintf(why, wl, "HDU %d is unreadable: %s", h - 1, msg);
				goto out;
			}
			int bp, nax = 0;
			LONGLONG ax[3] = {0, 0, 0};
			if (type != IMAGE_HDU)
				continue;
			if (fits_get_img_paramll(f, 3, &bp, &nax, ax, &st)) {
				cfitsio_msg(st, msg, sizeof(msg));
				snprintf(why, wl, "HDU %d: bad image header: %s", h - 1, msg);
				goto out;
			}
			if (nax > 0 && ax[0] > 0)
				break;
		}
	}
	int hdunum = 0;
	fits_get_hdu_num(f, &hdunum);
	fi->hdu = hdunum;
	if (fits_get_hdu_type(f, &type, &st) || type != IMAGE_HDU) {
		snprintf(why, wl, "HDU %d is a %s, not an image", hdunum - 1,
			 type == BINARY_TBL ? "binary table" : type == ASCII_TBL ? "ASCII table" : "non-image");
		goto out;
	}
	read_str(f, "EXTNAME", fi->extname, sizeof(fi->extname));

	int naxis = 0;
	LONGLONG ax[3] = {0, 0, 0};
	if (fits_get_img_paramll(f, 3, &fi->bitpix, &naxis, ax, &st)) {
		cfitsio_msg(st, msg, sizeof(msg));
		snprintf(why, wl, "HDU %d: bad image header: %s", hdunum - 1, msg);
		goto out;
	}
	switch (fi->bitpix) {
	case 8: case 16: case 32: case 64: case -32: case -64:
		break;
	default:
		snprintf(why, wl, "BITPIX = %d is not a FITS pixel type", fi->bitpix);
		goto out;
	}
	if (naxis < 2 || naxis > 3) {
		snprintf(why, wl, "NAXIS = %d in HDU %d: a frame must be a 2-D image (NAXIS = 2)", naxis,
			 hdunum - 1);
		goto out;
	}
	if (ax[0] <= 0 || ax[1] <= 0 || (naxis == 3 && ax[2] != 1)) {
		if (naxis == 3 && ax[2] != 1 && ax[0] > 0 && ax[1] > 0)
			snprintf(why, wl, "NAXIS3 = %lld: a frame must be one plane (NAXIS3 = 1)",
				 (long long)ax[2]);
		else
			snprintf(why, wl, "NAXIS1 = %lld, NAXIS2 = %lld: axes must be positive",
				 (long long)ax[0], (long long)ax[1]);
		goto out;
	}
	fi->nx = ax[0];
	fi->ny = ax[1];
	fi->compressed = fits_is_compressed_image(f, &st);
	st = 0;

	/* sizes, overflow-checked, against the real file */
	uint64_t elem = (uint64_t)(fi->bitpix < 0 ? -fi->bitpix : fi->bitpix) / 8, bytes, end;
	if (__builtin_mul_overflow((uint64_t)fi->nx, (uint64_t)fi->ny, &bytes) ||
	    __builtin_mul_overflow(bytes, elem, &bytes) || bytes > UMAPFS_MAX_VIEW_SIZE) {
		snprintf(why, wl,
			 "NAXIS1 = %lld x NAXIS2 = %lld x %u bytes overflows (more than 2^48 bytes)",
			 (long long)fi->nx, (long long)fi->ny, (unsigned)elem);
		goto out;
	}
	LONGLONG hs = 0, ds = 0, de = 0;
	if (fits_get_hduaddrll(f, &hs, &ds, &de, &st)) {
		cfitsio_msg(st, msg, sizeof(msg));
		snprintf(why, wl, "cannot locate the data: %s", msg);
		goto out;
	}
	if (ds < 0 || (uint64_t)ds > fsize) {
		snprintf(why, wl, "truncated: the header ends at byte %lld but the file has %llu bytes",
			 (long long)ds, (unsigned long long)fsize);
		goto out;
	}
	if (fi->compressed) {
		if (de < ds || (uint64_t)de > fsize) {
			snprintf(why, wl,
				 "truncated: the compressed table ends at byte %lld but the file has %llu bytes",
				 (long long)de, (unsigned long long)fsize);
			goto out;
		}
		long zt1 = 0, zt2 = 0;
		int s1 = 0, s2 = 0;
		fits_read_key_lng(f, "ZTILE1", &zt1, NULL, &s1);
		fits_read_key_lng(f, "ZTILE2", &zt2, NULL, &s2);
		fits_clear_errmsg();
		fi->ztile[0] = s1 || zt1 <= 0 ? fi->nx : zt1;
		fi->ztile[1] = s2 || zt2 <= 0 ? 1 : zt2;
		if (fi->ztile[1] > fi->ny)
			fi->ztile[1] = fi->ny;
		/* a decoded band of tile rows is cached whole: keep it sane */
		if ((uint64_t)fi->ztile[1] * (bytes / (uint64_t)fi->ny) > (UINT64_C(256) << 20)) {
			snprintf(why, wl,
				 "ZTILE2 = %lld rows of NAXIS1 = %lld pixels: a tile row over 256 MiB is not supported",
				 (long long)fi->ztile[1], (long long)fi->nx);
			goto out;
		}
	} else {
		if (__builtin_add_overflow((uint64_t)ds, bytes, &end) || end > fsize) {
			snprintf(why, wl,
				 "truncated: NAXIS1 x NAXIS2 x |BITPIX|/8 = %llu data bytes from byte %lld end at %llu, "
				 "but the file has %llu bytes",
				 (unsigned long long)bytes, (long long)ds,
				 (unsigned long long)((uint64_t)ds + bytes), (unsigned long long)fsize);
			goto out;
		}
		fi->data_off = (uint64_t)ds;
	}

	/* scaling and blanks */
	fi->has_bzero = read_dbl(f, "BZERO", &fi->bzero);
	fi->has_bscale = read_dbl(f, "BSCALE", &fi->bscale);
	if (!fi->has_bzero)
		fi->bzero = 0;
	if (!fi->has_bscale)
		fi->bscale = 1;
	if (!isfinite(fi->bzero) || !isfinite(fi->bscale) || fi->bscale == 0) {
		snprintf(why, wl, "BZERO = %g, BSCALE = %g: not usable scaling", fi->bzero, fi->bscale);
		goto out;
	}
	{
		int s3 = 0;
		LONGLONG b;
		if (fits_read_key_lnglng(f, "BLANK", &b, NULL, &s3) == 0) {
			fi->has_blank = 1;
			fi->blank = b;
		} else if (s3 != KEY_NO_EXIST) {
			char v[FLEN_VALUE] = "";
			int s4 = 0;
			fits_read_keyword(f, "BLANK", v, NULL, &s4);
			fits_clear_errmsg();
			snprintf(why, wl, "BLANK = %s is not an integer", v);
			goto out;
		}
		fits_clear_errmsg();
	}
	if (fi->has_blank && fi->bitpix < 0) {
		snprintf(why, wl,
			 "BLANK = %lld on a floating-point image (BITPIX = %d): BLANK is legal only for "
			 "integer BITPIX (floats use NaN)",
			 fi->blank, fi->bitpix);
		goto out;
	}

	read_time(f, fi);
	read_wcs(f, &fi->wcs);
	if ((!fi->has_time || isnan(fi->exptime)) && hdunum != 1) {
		int t2 = 0;
		if (fits_movabs_hdu(f, 1, NULL, &t2) == 0)
			read_time(f, fi);
		fits_clear_errmsg();
	}
	ret = 0;
out:
	st = 0;
	fits_close_file(f, &st);
	fits_clear_errmsg();
	return ret;
}

/* ---- the stack ---------------------------------------------------------- */

struct cand {
	char *path;
	const char *name;
	struct finfo fi;
	int ok;
};

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct cand *)a)->name, ((const struct cand *)b)->name);
}

static int by_time(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->fi.mjd < y->fi.mjd)
		return -1;
	if (x->fi.mjd > y->fi.mjd)
		return 1;
	return strcmp(x->name, y->name);
}

static int add_skip(struct fp_stack *s, const char *name, const char *reason)
{
	struct fp_skipped *n = realloc(s->skipped, (s->n_skipped + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	s->skipped = n;
	n[s->n_skipped].name = strdup(name);
	n[s->n_skipped].reason = strdup(reason);
	s->n_skipped++;
	return 0;
}

static void fmt_num(char *b, size_t l, int has, double v)
{
	if (!has)
		snprintf(b, l, "(absent)");
	else
		snprintf(b, l, "%.17g", v);
}

/* Compare a frame to the reference; 0 or -EINVAL with the reason in why. */
static int stack_check(const struct cand *r, const struct cand *c, char *why, size_t wl)
{
	const struct finfo *a = &r->fi, *b = &c->fi;
	char va[64], vb[64];
	if (b->compressed != a->compressed) {
		snprintf(why, wl, "ZIMAGE = %s (%s) but %s has ZIMAGE = %s: cannot stack compressed and plain frames",
			 b->compressed ? "T" : "(absent)", b->compressed ? "tile-compressed" : "not compressed",
			 r->name, a->compressed ? "T" : "(absent)");
		return -EINVAL;
	}
	if (b->hdu != a->hdu) {
		snprintf(why, wl, "image in HDU %d but %s has it in HDU %d: the HDU choice differs", b->hdu - 1,
			 r->name, a->hdu - 1);
		return -EINVAL;
	}
	if (strcmp(a->extname, b->extname) != 0) {
		snprintf(why, wl, "EXTNAME = '%s' but %s has EXTNAME = '%s'", b->extname, r->name, a->extname);
		return -EINVAL;
	}
	if (b->bitpix != a->bitpix) {
		snprintf(why, wl, "BITPIX = %d but %s has BITPIX = %d", b->bitpix, r->name, a->bitpix);
		return -EINVAL;
	}
	if (b->nx != a->nx) {
		snprintf(why, wl, "NAXIS1 = %lld but %s has NAXIS1 = %lld", (long long)b->nx, r->name,
			 (long long)a->nx);
		return -EINVAL;
	}
	if (b->ny != a->ny) {
		snprintf(why, wl, "NAXIS2 = %lld but %s has NAXIS2 = %lld", (long long)b->ny, r->name,
			 (long long)a->ny);
		return -EINVAL;
	}
	if (b->has_bzero != a->has_bzero || b->bzero != a->bzero) {
		fmt_num(va, sizeof(va), a->has_bzero, a->bzero);
		fmt_num(vb, sizeof(vb), b->has_bzero, b->bzero);
		if (!(b->bzero == a->bzero && (b->bzero == 0))) {
			snprintf(why, wl, "BZERO = %s but %s has BZERO = %s", vb, r->name, va);
			return -EINVAL;
		}
	}
	if (b->has_bscale != a->has_bscale || b->bscale != a->bscale) {
		fmt_num(va, sizeof(va), a->has_bscale, a->bscale);
		fmt_num(vb, sizeof(vb), b->has_bscale, b->bscale);
		if (!(b->bscale == a->bscale && b->bscale == 1)) {
			snprintf(why, wl, "BSCALE = %s but %s has BSCALE = %s", vb, r->name, va);
			return -EINVAL;
		}
	}
	if (b->has_blank != a->has_blank || b->blank != a->blank) {
		snprintf(va, sizeof(va), a->has_blank ? "%lld" : "(absent)", a->blank);
		snprintf(vb, sizeof(vb), b->has_blank ? "%lld" : "(absent)", b->blank);
		snprintf(why, wl, "BLANK = %s but %s has BLANK = %s", vb, r->name, va);
		return -EINVAL;
	}
	if (a->compressed && (a->ztile[0] != b->ztile[0] || a->ztile[1] != b->ztile[1])) {
		snprintf(why, wl, "ZTILE = %lldx%lld but %s has ZTILE = %lldx%lld", (long long)b->ztile[0],
			 (long long)b->ztile[1], r->name, (long long)a->ztile[0], (long long)a->ztile[1]);
		return -EINVAL;
	}
	return 0;
}

static int close_enough(double a, double b)
{
	double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
	return fabs(a - b) <= 1e-9 * (m > 1 ? m : 1);
}

/* Do two frames share a pixel grid?  0, or 1 with the differing key in why. */
static int wcs_differs(const struct fp_wcs *a, const struct fp_wcs *b, char *why, size_t wl)
{
	if (a->present != b->present) {
		snprintf(why, wl, "a celestial WCS (CTYPE1/2, CRVALi, CRPIXi, CD or CDELT) is %s",
			 b->present ? "present" : "absent");
		return 1;
	}
	if (!a->present)
		return 0;
	for (int i = 0; i < 2; i++) {
		if (strcmp(a->ctype[i], b->ctype[i])) {
			snprintf(why, wl, "CTYPE%d = '%s' vs '%s'", i + 1, b->ctype[i], a->ctype[i]);
			return 1;
		}
		if (strcmp(a->cunit[i], b->cunit[i])) {
			snprintf(why, wl, "CUNIT%d = '%s' vs '%s'", i + 1, b->cunit[i], a->cunit[i]);
			return 1;
		}
		if (!close_enough(a->crval[i], b->crval[i])) {
			snprintf(why, wl, "CRVAL%d = %.17g vs %.17g", i + 1, b->crval[i], a->crval[i]);
			return 1;
		}
		if (!close_enough(a->crpix[i], b->crpix[i])) {
			snprintf(why, wl, "CRPIX%d = %.17g vs %.17g", i + 1, b->crpix[i], a->crpix[i]);
			return 1;
		}
	}
	if (a->use_cd != b->use_cd) {
		snprintf(why, wl, "one frame uses CDi_j, the other CDELTi");
		return 1;
	}
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			double x = a->use_cd ? a->cd[i][j] : a->pc[i][j] * a->cdelt[i];
			double y = b->use_cd ? b->cd[i][j] : b->pc[i][j] * b->cdelt[i];
			if (!close_enough(x, y)) {
				snprintf(why, wl, "%s%d_%d = %.17g vs %.17g", a->use_cd ? "CD" : "PC*CDELT", i + 1,
					 j + 1, y, x);
				return 1;
			}
		}
	if (strcmp(a->radesys, b->radesys)) {
		snprintf(why, wl, "RADESYS = '%s' vs '%s'", b->radesys, a->radesys);
		return 1;
	}
	return 0;
}

static int match_any(const struct fp_options *o, const char *name)
{
	for (int i = 0; i < o->n_patterns; i++)
		if (fnmatch(o->patterns[i], name, FNM_PERIOD) == 0)
			return 1;
	return 0;
}

/* Scan a directory into a stack; see fp.h. */
int fp_stack_scan(const char *dir, const struct fp_options *o, fp_log_fn log, void *arg,
		  struct fp_stack **out)
{
	struct cand *c = NULL;
	size_t nc = 0, cap = 0;
	int ret = -EINVAL;
	struct fp_stack *s = calloc(1, sizeof(*s));
	DIR *d = NULL;
	char why[768];

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->refs = 1;
	s->log = log;
	s->log_arg = arg;
	s->dir = strdup(dir);
	if (!s->dir) {
		ret = -ENOMEM;
		goto fail;
	}
	d = opendir(dir);
	if (!d) {
		ret = -errno;
		fp_logf(log, arg, UMAPFS_LOG_ERR, "fits: %s: cannot open the frames directory: %s", dir,
			strerror(errno));
		goto fail;
	}
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_name[0] == '.' || !match_any(o, de->d_name))
			continue;
		if (de->d_type == DT_DIR)
			continue; /* a directory named like a frame is not one */
		if (de->d_type == DT_UNKNOWN) {
			struct stat sb;
			if (fstatat(dirfd(d), de->d_name, &sb, 0) == 0 && S_ISDIR(sb.st_mode))
				continue;
		}
		if (nc == cap) {
			struct cand *n = realloc(c, (cap = cap ? 2 * cap : 64) * sizeof(*n));
			if (!n) {
				ret = -ENOMEM;
				goto fail;
			}
			c = n;
		}
		memset(&c[nc], 0, sizeof(c[nc]));
		if (asprintf(&c[nc].path, "%s/%s", dir, de->d_name) < 0) {
			ret = -ENOMEM;
			goto fail;
		}
		c[nc].name = c[nc].path + strlen(dir) + 1;
		nc++;
	}
	closedir(d);
	d = NULL;
	if (!nc) {
		char pats[256] = "";
		for (int i = 0; i < o->n_patterns; i++)
			snprintf(pats + strlen(pats), sizeof(pats) - strlen(pats), "%s%s", i ? " " : "",
				 o->patterns[i]);
		fp_logf(log, arg, UMAPFS_LOG_ERR, "fits: %s: no file matches %s", dir, pats);
		ret = -ENOENT;
		goto fail;
	}
	qsort(c, nc, sizeof(*c), by_name);

	/* each frame on its own */
	size_t nbad = 0;
	for (size_t i = 0; i < nc; i++) {
		int r = scan_frame(c[i].path, o, &c[i].fi, why, sizeof(why));
		if (r == -ENOMEM) {
			ret = r;
			goto fail;
		}
		if (r < 0) {
			nbad++;
			fp_logf(log, arg, o->on_error == FP_SKIP ? UMAPFS_LOG_WARNING : UMAPFS_LOG_ERR,
				"fits: %s: %s%s", c[i].path, why, o->on_error == FP_SKIP ? " (skipped)" : "");
			if (add_skip(s, c[i].name, why) < 0) {
				ret = -ENOMEM;
				goto fail;
			}
			continue;
		}
		c[i].ok = 1;
	}
	if (nbad && o->on_error == FP_REFUSE) {
		fp_logf(log, arg, UMAPFS_LOG_ERR, "fits: %s: %zu of %zu frames are unusable; refusing "
			"(on_error=skip would leave them out)", dir, nbad, nc);
		goto fail;
	}
	/* the stack: every frame against the first good one */
	const struct cand *ref = NULL;
	for (size_t i = 0; i < nc; i++) {
		if (!c[i].ok)
			continue;
		if (!ref) {
			ref = &c[i];
			continue;
		}
		if (stack_check(ref, &c[i], why, sizeof(why)) < 0) {
			nbad++;
			c[i].ok = 0;
			fp_logf(log, arg, o->on_error == FP_SKIP ? UMAPFS_LOG_WARNING : UMAPFS_LOG_ERR,
				"fits: %s: %s%s", c[i].path, why, o->on_error == FP_SKIP ? " (skipped)" : "");
			if (add_skip(s, c[i].name, why) < 0) {
				ret = -ENOMEM;
				goto fail;
			}
		}
	}
	if (nbad && o->on_error == FP_REFUSE) {
		fp_logf(log, arg, UMAPFS_LOG_ERR,
			"fits: %s: the frames do not stack into one cube; refusing (on_error=skip would leave "
			"the odd ones out)", dir);
		goto fail;
	}
	if (!ref) {
		fp_logf(log, arg, UMAPFS_LOG_ERR, "fits: %s: none of the %zu matching files is a usable frame",
			dir, nc);
		goto fail;
	}

	/* keep the good ones, ordered */
	size_t ng = 0;
	for (size_t i = 0; i < nc; i++)
		if (c[i].ok)
			c[ng++] = c[i];
		else
			free(c[i].path);
	nc = ng;
	int all_time = 1;
	const char *untimed = NULL;
	for (size_t i = 0; i < nc; i++)
		if (!c[i].fi.has_time) {
			all_time = 0;
			if (!untimed)
				untimed = c[i].name;
		}
	if (o->order == FP_ORDER_TIME && all_time) {
		qsort(c, nc, sizeof(*c), by_time);
		s->time_order = 1;
	} else if (o->order == FP_ORDER_TIME) {
		fp_logf(log, arg, UMAPFS_LOG_WARNING,
			"fits: %s: %s has no MJD-OBS, DATE-OBS or DATE-AVG: planes are ordered by file name", dir,
			untimed);
	}

	const struct finfo *rf = &c[0].fi;
	s->bitpix = rf->bitpix;
	s->nx = rf->nx;
	s->ny = rf->ny;
	s->compressed = rf->compressed;
	s->has_bzero = rf->has_bzero && rf->bzero != 0;
	s->has_bscale = rf->has_bscale && rf->bscale != 1;
	s->bzero = rf->bzero;
	s->bscale = rf->bscale;
	s->has_blank = rf->has_blank;
	s->blank = rf->blank;
	s->ztile[0] = rf->ztile[0];
	s->ztile[1] = rf->ztile[1];
	s->elem = (uint64_t)(s->bitpix < 0 ? -s->bitpix : s->bitpix) / 8;
	s->plane_bytes = (uint64_t)s->nx * (uint64_t)s->ny * s->elem;
	uint64_t total, nat;
	if (__builtin_mul_overflow(s->plane_bytes, (uint64_t)nc, &total) ||
	    __builtin_mul_overflow(total / s->elem, (uint64_t)fp_native_size(s), &nat) ||
	    nat + 2 * FP_HDR_UNIT > UMAPFS_MAX_VIEW_SIZE) {
		fp_logf(log, arg, UMAPFS_LOG_ERR, "fits: %s: %zu planes of %llu bytes exceed 2^48 bytes", dir,
			nc, (unsigned long long)s->plane_bytes);
		goto fail;
	}
	s->data_bytes = total;

	/* WCS: one grid for all, else a warning and no WCS in cube.fits */
	s->wcs = rf->wcs;
	s->wcs_ok = rf->wcs.present;
	for (size_t i = 1; i < nc && s->wcs_ok; i++)
		if (wcs_differs(&rf->wcs, &c[i].fi.wcs, why, sizeof(why))) {
			s->wcs_ok = 0;
			fp_logf(log, arg, UMAPFS_LOG_WARNING,
				"fits: %s: WCS differs from %s's (%s): the planes are not one pixel grid; cube.fits "
				"carries no WCS",
				c[i].path, c[0].name, why);
		}
	s->time_uniform = 0;
	if (s->time_order && nc >= 2) {
		double step = (c[nc - 1].fi.mjd - c[0].fi.mjd) / (double)(nc - 1);
		s->time_uniform = step > 0;
		for (size_t i = 1; i < nc && s->time_uniform; i++)
			if (fabs(c[i].fi.mjd - c[i - 1].fi.mjd - step) > 1e-6 * step + 1e-9)
				s->time_uniform = 0;
	}

	s->frames = calloc(nc, sizeof(*s->frames));
	if (!s->frames) {
		ret = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < nc; i++) {
		struct fp_frame *f = &s->frames[i];
		f->path = c[i].path;
		f->name = c[i].name;
		c[i].path = NULL;
		f->hdu = c[i].fi.hdu;
		memcpy(f->extname, c[i].fi.extname, sizeof(f->extname));
		f->data_off = c[i].fi.data_off;
		f->has_time = c[i].fi.has_time;
		f->mjd = c[i].fi.mjd;
		memcpy(f->date, c[i].fi.date, sizeof(f->date));
		f->exptime = c[i].fi.exptime;
		s->n++;
	}
	free(c);
	if (s->compressed && (ret = fp_decoder_init(s)) < 0) {
		fp_stack_put(s);
		return ret;
	}
	*out = s;
	return 0;
fail:
	if (d)
		closedir(d);
	for (size_t i = 0; i < nc; i++)
		free(c[i].path);
	free(c);
	fp_stack_put(s);
	return ret;
}

void fp_stack_get(struct fp_stack *s) { __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED); }

/* Drop a reference; the last one frees the stack and closes decoders. */
void fp_stack_put(struct fp_stack *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	fp_decoder_fini(s);
	for (size_t i = 0; i < s->n; i++)
		free(s->frames[i].path);
	free(s->frames);
	for (size_t i = 0; i < s->n_skipped; i++) {
		free(s->skipped[i].name);
		free(s->skipped[i].reason);
	}
	free(s->skipped);
	free(s->dir);
	free(s);
}

const char *fp_native_name(const struct fp_stack *s)
{
	return s->bitpix == -64 ? "cube.f64" : "cube.f32";
}
