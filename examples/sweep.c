/*
 * The median sweep's engine: opening a cube (native float32, FITS by its
 * header, or per-pixel cfitsio reads of the frames), gathering the samples of
 * a path, the median, the multi-threaded sweep in start-row order, and the
 * candidate lists.  The programs (sweep_main.c) add options and output.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fitsio.h>

#include "sweep.h"
#include "umapfs/ioctl.h"

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

static void fits_msg(int status, char *buf)
{
	buf[0] = 0;
	fits_get_errstatus(status, buf);
	fits_clear_errmsg();
}

static void static_free(struct sweep_cube *c);

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- frames of a directory ------------------------------------------- */

static int has_fits_suffix(const char *n)
{
	size_t l = strlen(n);
	return (l > 5 && strcmp(n + l - 5, ".fits") == 0) || (l > 4 && strcmp(n + l - 4, ".fit") == 0) ||
	       (l > 4 && strcmp(n + l - 4, ".fts") == 0);
}

/* Move to the first image HDU with NAXIS >= 2; returns 0 or a cfitsio status. */
static int goto_image(fitsfile *f, int *naxis, long long *dims, int *bitpix)
{
	int status = 0, nhdu = 0;
	fits_get_num_hdus(f, &nhdu, &status);
	for (int h = 1; h <= nhdu && !status; h++) {
		int type = 0;
		fits_movabs_hdu(f, h, &type, &status);
		if (status || type != IMAGE_HDU)
			continue;
		*naxis = 0;
		fits_get_img_paramll(f, 3, bitpix, naxis, dims, &status);
		if (!status && *naxis >= 2)
			return 0;
	}
	return status ? status : NOT_IMAGE;
}

static int frame_mjd(fitsfile *f, double *mjd)
{
	int status = 0;
	if (fits_read_key_dbl(f, "MJD-OBS", mjd, NULL, &status) == 0)
		return 0;
	status = 0;
	char date[FLEN_VALUE];
	if (fits_read_key_str(f, "DATE-OBS", date, NULL, &status))
		return status;
	int y, mo, d, hh, mi;
	double ss;
	if (fits_str2time(date, &y, &mo, &d, &hh, &mi, &ss, &status))
		return status;
	/* days since 1858-11-17 (MJD 0), proleptic Gregorian */
	long a = (14 - mo) / 12, yy = y + 4800 - a, mm = mo + 12 * a - 3;
	long jdn = d + (153 * mm + 2) / 5 + 365 * yy + yy / 4 - yy / 100 + yy / 400 - 32045;
	*mjd = (double)(jdn - 2400001) + (hh + mi / 60.0 + ss / 3600.0) / 24.0;
	return 0;
}

struct frame_ent {
	char *path;
	double mjd;
};

static int frame_cmp(const void *a, const void *b)
{
	const struct frame_ent *x = a, *y = b;
	if (x->mjd != y->mjd)
		return x->mjd < y->mjd ? -1 : 1;
	return strcmp(x->path, y->path);
}

long sweep_list_frames(const char *dir, char ***paths, double **mjd, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	if (!d)
		return fail(err, errlen, -errno, "%s: cannot open directory: %s", dir, strerror(errno));
	struct frame_ent *e = NULL;
	size_t n = 0, cap = 0;
	long ret = 0;
	long long dims0[3] = {0};
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !has_fits_suffix(de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			struct frame_ent *ne = realloc(e, cap * sizeof(*e));
			if (!ne) {
				ret = -ENOMEM;
				goto out;
			}
			e = ne;
		}
		size_t l = strlen(dir) + strlen(de->d_name) + 2;
		char *p = malloc(l);
		if (!p) {
			ret = -ENOMEM;
			goto out;
		}
		snprintf(p, l, "%s/%s", dir, de->d_name);
		fitsfile *f = NULL;
		int status = 0, naxis = 0, bitpix = 0;
		long long dims[3] = {0, 0, 1};
		char msg[FLEN_STATUS];
		if (fits_open_diskfile(&f, p, READONLY, &status) || goto_image(f, &naxis, dims, &bitpix)) {
			if (!status)
				status = NOT_IMAGE;
			fits_msg(status, msg);
			ret = fail(err, errlen, -EINVAL, "%s: not a FITS image: %s", p, msg);
		} else if (naxis > 3 || (naxis == 3 && dims[2] != 1)) {
			ret = fail(err, errlen, -EINVAL, "%s: a frame must be 2-D (NAXIS=%d)", p, naxis);
		} else if (n > 0 && (dims[0] != dims0[0] || dims[1] != dims0[1])) {
			ret = fail(err, errlen, -EINVAL, "%s: frame is %lldx%lld, %s is %lldx%lld", p,
				   dims[0], dims[1], e[0].path, dims0[0], dims0[1]);
		} else if (frame_mjd(f, &e[n].mjd)) {
			ret = fail(err, errlen, -EINVAL, "%s: no MJD-OBS or DATE-OBS time stamp", p);
		}
		if (f) {
			int s2 = 0;
			fits_close_file(f, &s2);
		}
		if (ret) {
			free(p);
			goto out;
		}
		if (n == 0)
			memcpy(dims0, dims, sizeof(dims0));
		e[n++].path = p;
	}
	if (n == 0) {
		ret = fail(err, errlen, -ENOENT, "%s: no FITS frames (*.fits, *.fit, *.fts)", dir);
		goto out;
	}
	qsort(e, n, sizeof(*e), frame_cmp);
	*paths = malloc(n * sizeof(char *));
	*mjd = malloc(n * sizeof(double));
	if (!*paths || !*mjd) {
		free(*paths);
		free(*mjd);
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		(*paths)[i] = e[i].path;
		(*mjd)[i] = e[i].mjd;
	}
	free(e);
	closedir(d);
	return (long)n;
out:
	for (size_t i = 0; i < n; i++)
		free(e[i].path);
	free(e);
	closedir(d);
	if (ret == -ENOMEM)
		fail(err, errlen, ret, "%s: out of memory", dir);
	return ret;
}

/* ---- cube metadata ---------------------------------------------------- */

/*
 * Read an index file: either a list of MJDs (one per line), or umapfs's
 * index.txt (lines "frames N", "rows H", "columns W" and per plane
 * "K MJD ..." with K counting from 0).  Fills *mjd (malloc'ed) and returns
 * the count, with the shape where given (else left alone).
 */
static long read_index(const char *path, long *n, long *h, long *w, double **mjd, char *err,
		       size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	char line[4096];
	double *t = NULL;
	long cnt = 0, cap = 0, lineno = 0, ret = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *s = line;
		while (isspace((unsigned char)*s))
			s++;
		if (!*s || *s == '#')
			continue;
		char key[64];
		long long val;
		if (sscanf(s, "%63[A-Za-z_]%*[ =:\t]%lld", key, &val) == 2) {
			for (char *k = key; *k; k++)
				*k = (char)tolower((unsigned char)*k);
			if (!strcmp(key, "frames") || !strcmp(key, "naxis3") || !strcmp(key, "planes"))
				*n = val;
			else if (!strcmp(key, "rows") || !strcmp(key, "naxis2") || !strcmp(key, "height"))
				*h = val;
			else if (!strcmp(key, "columns") || !strcmp(key, "naxis1") || !strcmp(key, "width"))
				*w = val;
			continue;
		}
		if (isalpha((unsigned char)*s))
			continue; /* another key: not ours */
		if (strchr(s, '\t')) {
			/* the FITS plugin's index.txt: plane, file, hdu, extname, mjd, date-obs, exptime */
			char *f[8];
			int nf = 0;
			for (char *p = s; nf < 8;) {
				f[nf++] = p;
				p = strchr(p, '\t');
				if (!p)
					break;
				*p++ = 0;
			}
			char *e1, *e2;
			long k = strtol(f[0], &e1, 10);
			double m = nf >= 5 ? strtod(f[4], &e2) : 0;
			if (nf < 5 || *e1 || e2 == f[4] || !isfinite(m)) {
				ret = fail(err, errlen, -EINVAL, "%s:%ld: plane without a time (MJD column '%s')",
					   path, lineno, nf >= 5 ? f[4] : "");
				break;
			}
			if (k != cnt) {
				ret = fail(err, errlen, -EINVAL, "%s:%ld: plane %ld out of order (expected %ld)",
					   path, lineno, k, cnt);
				break;
			}
			if (cnt == cap) {
				cap = cap ? 2 * cap : 256;
				double *nt = realloc(t, cap * sizeof(double));
				if (!nt) {
					ret = fail(err, errlen, -ENOMEM, "%s: out of memory", path);
					break;
				}
				t = nt;
			}
			t[cnt++] = m;
			continue;
		}
		char *e1;
		double a = strtod(s, &e1);
		double m = a;
		long k = cnt;
		char *e2 = e1;
		if (e1 != s) {
			double b = strtod(e1, &e2);
			if (e2 != e1) { /* "K MJD ..." */
				if (a != floor(a) || a < 0) {
					ret = fail(err, errlen, -EINVAL, "%s:%ld: plane number '%g' is not a count",
						   path, lineno, a);
					break;
				}
				k = (long)a;
				m = b;
			}
		}
		if (e1 == s || !isfinite(m)) {
			ret = fail(err, errlen, -EINVAL, "%s:%ld: expected 'PLANE MJD ...' or 'MJD'", path,
				   lineno);
			break;
		}
		if (k != cnt) {
			ret = fail(err, errlen, -EINVAL, "%s:%ld: plane %ld out of order (expected %ld)", path,
				   lineno, k, cnt);
			break;
		}
		if (cnt == cap) {
			cap = cap ? 2 * cap : 256;
			double *nt = realloc(t, cap * sizeof(double));
			if (!nt) {
				ret = fail(err, errlen, -ENOMEM, "%s: out of memory", path);
				break;
			}
			t = nt;
		}
		t[cnt++] = m;
	}
	fclose(f);
	if (!ret && cnt == 0)
		ret = fail(err, errlen, -EINVAL, "%s: no frame times", path);
	if (ret) {
		free(t);
		return ret;
	}
	*mjd = t;
	return cnt;
}

/* Plane times from a FITS cube header: per-plane keys PMJDnnnn (the umapfs
 * FITS plugin's), or MJDnnnnn / MJDn / MJD_nnnn / TMJDnnnn (1-based). */
static int fits_plane_times(fitsfile *f, long n, double *mjd)
{
	static const char *fmts[] = {"PMJD%04ld", "MJD%05ld", "MJD%ld", "MJD_%04ld", "TMJD%04ld"};
	for (size_t fi = 0; fi < sizeof(fmts) / sizeof(fmts[0]); fi++) {
		int status = 0;
		long k;
		for (k = 0; k < n; k++) {
			char key[FLEN_KEYWORD];
			snprintf(key, sizeof(key), fmts[fi], k + 1);
			if (strlen(key) > 8 || fits_read_key_dbl(f, key, &mjd[k], NULL, &status))
				break;
		}
		fits_clear_errmsg();
		if (k == n)
			return 0;
	}
	return -ENOENT;
}

/*
 * Parse a FITS cube header with cfitsio (headers only).  Fills shape, type,
 * scaling, data offset; times from the header if present (else *have_t = 0).
 */
static int fits_cube_header(struct sweep_cube *c, const char *path, uint64_t *data_off, double **mjd,
			    int *have_t, char *err, size_t errlen)
{
	fitsfile *f = NULL;
	int status = 0, naxis = 0, bitpix = 0, ret = 0;
	long long dims[3] = {0, 0, 1};
	char msg[FLEN_STATUS];
	if (fits_open_diskfile(&f, path, READONLY, &status) || goto_image(f, &naxis, dims, &bitpix)) {
		if (!status)
			status = NOT_IMAGE;
		fits_msg(status, msg);
		ret = fail(err, errlen, -EINVAL, "%s: not a FITS image: %s", path, msg);
		goto out;
	}
	int zimg = fits_is_compressed_image(f, &status);
	if (zimg) {
		ret = fail(err, errlen, -EINVAL, "%s: tile-compressed images cannot be mapped", path);
		goto out;
	}
	if (naxis != 3 && naxis != 2) {
		ret = fail(err, errlen, -EINVAL, "%s: NAXIS=%d, need a 3-D cube", path, naxis);
		goto out;
	}
	if (dims[0] <= 0 || dims[1] <= 0 || dims[2] <= 0 || dims[0] > INT32_MAX ||
	    dims[1] > INT32_MAX || dims[2] > INT32_MAX) {
		ret = fail(err, errlen, -EINVAL, "%s: bad shape %lldx%lldx%lld", path, dims[0], dims[1],
			   dims[2]);
		goto out;
	}
	c->w = dims[0], c->h = dims[1], c->n = naxis == 3 ? dims[2] : 1;
	switch (bitpix) {
	case -32: c->type = SWEEP_T_BE_F32; break;
	case -64: c->type = SWEEP_T_BE_F64; break;
	case 16: c->type = SWEEP_T_BE_I16; break;
	case 32: c->type = SWEEP_T_BE_I32; break;
	case 8: c->type = SWEEP_T_U8; break;
	default:
		ret = fail(err, errlen, -EINVAL, "%s: BITPIX %d not supported", path, bitpix);
		goto out;
	}
	c->bscale = 1, c->bzero = 0;
	status = 0;
	if (fits_read_key_dbl(f, "BSCALE", &c->bscale, NULL, &status))
		c->bscale = 1, status = 0;
	if (fits_read_key_dbl(f, "BZERO", &c->bzero, NULL, &status))
		c->bzero = 0, status = 0;
	if (bitpix > 0 && fits_read_key_lnglng(f, "BLANK", &c->blank, NULL, &status) == 0)
		c->has_blank = 1;
	status = 0;
	fits_clear_errmsg();
	long long hs, ds, de;
	if (fits_get_hduaddrll(f, &hs, &ds, &de, &status)) {
		fits_msg(status, msg);
		ret = fail(err, errlen, -EINVAL, "%s: %s", path, msg);
		goto out;
	}
	*data_off = (uint64_t)ds;
	*mjd = malloc(c->n * sizeof(double));
	if (!*mjd) {
		ret = fail(err, errlen, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	*have_t = fits_plane_times(f, c->n, *mjd) == 0;
	if (!*have_t && c->n == 1 && frame_mjd(f, *mjd) == 0)
		*have_t = 1;
out:
	if (f) {
		status = 0;
		fits_close_file(f, &status);
	}
	return ret;
}

static size_t type_size(int t)
{
	switch (t) {
	case SWEEP_T_BE_F64: return 8;
	case SWEEP_T_BE_I16: return 2;
	case SWEEP_T_U8: return 1;
	default: return 4;
	}
}

static char *dir_of(const char *path)
{
	char *d = strdup(path);
	if (!d)
		return NULL;
	char *s = strrchr(d, '/');
	if (!s)
		strcpy(d, ".");
	else if (s == d)
		d[1] = 0;
	else
		*s = 0;
	return d;
}

static int set_times(struct sweep_cube *c, const double *mjd, long cnt, const char *from, char *err,
		     size_t errlen)
{
	if (cnt != c->n)
		return fail(err, errlen, -EINVAL, "%s: %ld frame times for a cube of %ld frames", from,
			    cnt, c->n);
	c->dt = malloc(c->n * sizeof(double));
	c->mjd = malloc(c->n * sizeof(double));
	if (!c->dt || !c->mjd)
		return fail(err, errlen, -ENOMEM, "out of memory");
	c->mjd0 = mjd[0];
	for (long k = 0; k < c->n; k++) {
		if (!isfinite(mjd[k]) || (k && mjd[k] < mjd[k - 1]))
			return fail(err, errlen, -EINVAL,
				    "%s: frame times must be finite and in order (plane %ld)", from, k);
		c->dt[k] = 24.0 * (mjd[k] - mjd[0]);
		c->mjd[k] = mjd[k];
	}
	return 0;
}

static int map_file(struct sweep_cube *c, const char *path, uint64_t off, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return fail(err, errlen, -e, "%s: %s", path, strerror(e));
	}
	uint64_t need;
	if (__builtin_mul_overflow((uint64_t)c->n * (uint64_t)c->h, (uint64_t)c->w, &need) ||
	    __builtin_mul_overflow(need, (uint64_t)type_size(c->type), &need) ||
	    __builtin_add_overflow(need, off, &need) || (uint64_t)st.st_size < need) {
		close(fd);
		return fail(err, errlen, -EINVAL,
			    "%s: file is %lld bytes, the %ldx%ldx%ld cube needs %llu", path,
			    (long long)st.st_size, c->n, c->h, c->w, (unsigned long long)need);
	}
	void *m = mmap(NULL, need, PROT_READ, MAP_SHARED, fd, 0);
	int e = errno;
	if (m == MAP_FAILED) {
		close(fd);
		return fail(err, errlen, -e, "%s: mmap: %s", path, strerror(e));
	}
	/* a umapfs view takes prefetch requests (see umapfs/ioctl.h); --no-willneed asks for nothing */
	struct umapfs_ioc_range probe = {0, 0};
	struct umapfs_ioc_ranges none = {.count = 0};
	if (ioctl(fd, UMAPFS_IOC_PREFETCH, &probe) == 0) {
		c->pf_fd = fd;
		c->pf_vec = ioctl(fd, UMAPFS_IOC_PREFETCH_RANGES, &none) == 0;
	} else {
		close(fd);
	}
	c->map = m;
	c->map_len = need;
	c->data = (const unsigned char *)m + off;
	return 0;
}

int sweep_cube_open(struct sweep_cube *c, const char *path, int backend, const char *index_path,
		    char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	c->bscale = 1;
	c->pf_fd = -1;
	c->path = strdup(path);
	if (!c->path)
		return fail(err, errlen, -ENOMEM, "out of memory");
	struct stat st;
	if (stat(path, &st) < 0)
		return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	if (backend < 0) {
		size_t l = strlen(path);
		if (S_ISDIR(st.st_mode))
			backend = SWEEP_CFITSIO;
		else if (has_fits_suffix(path) || (l > 5 && !strcmp(path + l - 5, ".FITS")))
			backend = SWEEP_FITS;
		else
			backend = SWEEP_NATIVE;
	}
	c->backend = backend;
	double *mjd = NULL;
	long cnt = 0;
	int ret = 0;
	char *dir = NULL;

	if (backend == SWEEP_CFITSIO) {
		if (!S_ISDIR(st.st_mode))
			return fail(err, errlen, -ENOTDIR, "%s: the cfitsio backend reads a directory of frames",
				    path);
		cnt = sweep_list_frames(path, &c->frames, &mjd, err, errlen);
		if (cnt < 0)
			return (int)cnt;
		c->n = cnt;
		fitsfile *f = NULL;
		int status = 0, naxis = 0, bitpix = 0;
		long long dims[3] = {0, 0, 1};
		if (fits_open_diskfile(&f, c->frames[0], READONLY, &status) ||
		    goto_image(f, &naxis, dims, &bitpix)) {
			ret = fail(err, errlen, -EINVAL, "%s: cannot read", c->frames[0]);
		}
		status = 0;
		if (f)
			fits_close_file(f, &status);
		c->w = dims[0], c->h = dims[1];
		c->type = SWEEP_T_F32;
		if (!ret)
			ret = set_times(c, mjd, cnt, path, err, errlen);
		free(mjd);
		return ret;
	}

	if (backend == SWEEP_FITS) {
		uint64_t off = 0;
		int have_t = 0;
		ret = fits_cube_header(c, path, &off, &mjd, &have_t, err, errlen);
		if (ret)
			goto out;
		if (index_path || !have_t) {
			free(mjd);
			mjd = NULL;
			const char *ip = index_path;
			char buf[4096];
			if (!ip) {
				dir = dir_of(path);
				snprintf(buf, sizeof(buf), "%s/index.txt", dir ? dir : ".");
				ip = buf;
				if (access(ip, R_OK) != 0) {
					ret = fail(err, errlen, -EINVAL,
						   "%s: no per-plane times in the header (MJDnnnnn) and no %s", path,
						   ip);
					goto out;
				}
			}
			long n = c->n, h = c->h, w = c->w;
			cnt = read_index(ip, &n, &h, &w, &mjd, err, errlen);
			if (cnt < 0) {
				ret = (int)cnt;
				goto out;
			}
			ret = set_times(c, mjd, cnt, ip, err, errlen);
		} else {
			ret = set_times(c, mjd, c->n, path, err, errlen);
		}
		if (!ret)
			ret = map_file(c, path, off, err, errlen);
		goto out;
	}

	/* native float32: shape and times from an index, or from cube.fits next to it */
	c->type = SWEEP_T_F32;
	dir = dir_of(path);
	if (!dir)
		return fail(err, errlen, -ENOMEM, "out of memory");
	char ibuf[4096], fbuf[4096];
	const char *ip = index_path;
	snprintf(fbuf, sizeof(fbuf), "%s/cube.fits", dir);
	if (!ip) {
		/* beside a mount's cube.fits: its header has the shape and exact plane times */
		snprintf(ibuf, sizeof(ibuf), "%s/index.txt", dir);
		if (access(fbuf, R_OK) == 0) {
			struct sweep_cube tmp;
			memset(&tmp, 0, sizeof(tmp));
			uint64_t off;
			double *fm = NULL;
			int have_t = 0;
			if (fits_cube_header(&tmp, fbuf, &off, &fm, &have_t, NULL, 0) == 0 && have_t) {
				c->n = tmp.n, c->h = tmp.h, c->w = tmp.w;
				ret = set_times(c, fm, tmp.n, fbuf, err, errlen);
				free(fm);
				if (!ret)
					ret = map_file(c, path, 0, err, errlen);
				goto out;
			}
			free(fm);
		}
		if (access(ibuf, R_OK) == 0)
			ip = ibuf;
	}
	long n = 0, h = 0, w = 0;
	if (ip) {
		cnt = read_index(ip, &n, &h, &w, &mjd, err, errlen);
		if (cnt < 0) {
			ret = (int)cnt;
			goto out;
		}
	}
	if ((!ip || n <= 0 || h <= 0 || w <= 0) && access(fbuf, R_OK) == 0) {
		/* shape (and times, if the index gave none) from the FITS header */
		struct sweep_cube tmp;
		memset(&tmp, 0, sizeof(tmp));
		uint64_t off;
		double *fm = NULL;
		int have_t = 0;
		ret = fits_cube_header(&tmp, fbuf, &off, &fm, &have_t, err, errlen);
		if (ret) {
			free(fm);
			goto out;
		}
		n = tmp.n, h = tmp.h, w = tmp.w;
		if (!ip) {
			if (!have_t) {
				free(fm);
				ret = fail(err, errlen, -EINVAL, "%s: no plane times in %s and no index.txt",
					   path, fbuf);
				goto out;
			}
			mjd = fm;
			cnt = n;
		} else {
			free(fm);
		}
	}
	if (n <= 0 || h <= 0 || w <= 0) {
		ret = fail(err, errlen, -EINVAL,
			   "%s: unknown shape: give --index FILE (frames/rows/columns lines and plane "
			   "times) or put index.txt or cube.fits next to it",
			   path);
		goto out;
	}
	if (n > INT32_MAX || h > INT32_MAX || w > INT32_MAX) {
		ret = fail(err, errlen, -EINVAL, "%s: shape %ldx%ldx%ld too large", path, n, h, w);
		goto out;
	}
	c->n = n, c->h = h, c->w = w;
	ret = set_times(c, mjd, cnt, ip ? ip : fbuf, err, errlen);
	if (!ret)
		ret = map_file(c, path, 0, err, errlen);
out:
	free(mjd);
	free(dir);
	return ret;
}

void sweep_cube_close(struct sweep_cube *c)
{
	if (c->map)
		munmap(c->map, c->map_len);
	if (c->map && c->pf_fd >= 0)
		close(c->pf_fd);
	if (c->frames) {
		for (long k = 0; k < c->n; k++)
			free(c->frames[k]);
		free(c->frames);
	}
	static_free(c);
	free(c->dt);
	free(c->mjd);
	free(c->path);
	memset(c, 0, sizeof(*c));
}

/* ---- cfitsio handles -------------------------------------------------- */

void *sweep_fh_open(const struct sweep_cube *c, char *err, size_t errlen)
{
	if (c->backend != SWEEP_CFITSIO)
		return NULL;
	fitsfile **fh = calloc(c->n, sizeof(*fh));
	if (!fh) {
		fail(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	for (long k = 0; k < c->n; k++) {
		int status = 0, naxis, bitpix;
		long long dims[3];
		if (fits_open_diskfile(&fh[k], c->frames[k], READONLY, &status) ||
		    goto_image(fh[k], &naxis, dims, &bitpix)) {
			char msg[FLEN_STATUS];
			fits_msg(status ? status : NOT_IMAGE, msg);
			fail(err, errlen, -EIO, "%s: %s", c->frames[k], msg);
			if (!fh[k])
				fh[k] = NULL;
			sweep_fh_close(c, fh);
			return NULL;
		}
	}
	return fh;
}

void sweep_fh_close(const struct sweep_cube *c, void *p)
{
	fitsfile **fh = p;
	if (!fh)
		return;
	for (long k = 0; k < c->n; k++) {
		int status = 0;
		if (fh[k])
			fits_close_file(fh[k], &status);
	}
	free(fh);
}

/* ---- median ------------------------------------------------------------ */

/* Wirth's selection: afterwards v[k] is the k-th smallest, v[<k] <= v[k] <= v[>k]. */
static float select_k(float *v, int n, int k)
{
	int l = 0, m = n - 1;
	while (l < m) {
		float x = v[k];
		int i = l, j = m;
		do {
			while (v[i] < x)
				i++;
			while (x < v[j])
				j--;
			if (i <= j) {
				float t = v[i];
				v[i] = v[j];
				v[j] = t;
				i++;
				j--;
			}
		} while (i <= j);
		if (j < k)
			l = i;
		if (k < i)
			m = j;
	}
	return v[k];
}

double sweep_median(float *v, int n)
{
	int k = n / 2;
	float hi = select_k(v, n, k);
	if (n & 1)
		return hi;
	float lo = v[0];
	for (int i = 1; i < k; i++)
		if (v[i] > lo)
			lo = v[i];
	return ((double)lo + (double)hi) / 2.0;
}

/* ---- sampling ---------------------------------------------------------- */

static inline int32_t disp(float v, double dt)
{
	return (int32_t)floor((double)v * dt + 0.5);
}

static inline float load(const struct sweep_cube *c, size_t i)
{
	const unsigned char *p;
	float f;
	switch (c->type) {
	case SWEEP_T_F32:
		return ((const float *)(const void *)c->data)[i];
	case SWEEP_T_BE_F32: {
		uint32_t u;
		p = c->data + 4 * i;
		memcpy(&u, p, 4);
		u = __builtin_bswap32(u);
		memcpy(&f, &u, 4);
		if (c->bscale != 1 || c->bzero != 0)
			f = (float)(c->bzero + c->bscale * f);
		return f;
	}
	case SWEEP_T_BE_F64: {
		uint64_t u;
		double d;
		p = c->data + 8 * i;
		memcpy(&u, p, 8);
		u = __builtin_bswap64(u);
		memcpy(&d, &u, 8);
		return (float)(c->bzero + c->bscale * d);
	}
	case SWEEP_T_BE_I16: {
		uint16_t u;
		p = c->data + 2 * i;
		memcpy(&u, p, 2);
		int16_t s = (int16_t)__builtin_bswap16(u);
		if (c->has_blank && s == c->blank)
			return NAN;
		return (float)(c->bzero + c->bscale * s);
	}
	case SWEEP_T_BE_I32: {
		uint32_t u;
		p = c->data + 4 * i;
		memcpy(&u, p, 4);
		int32_t s = (int32_t)__builtin_bswap32(u);
		if (c->has_blank && s == c->blank)
			return NAN;
		return (float)(c->bzero + c->bscale * s);
	}
	default: {
		uint8_t s = c->data[i];
		if (c->has_blank && s == c->blank)
			return NAN;
		return (float)(c->bzero + c->bscale * s);
	}
	}
}

struct sweep_static {
	float *img;                   /* h x w medians over time */
	_Atomic unsigned char *state; /* per row: 0 missing, 1 being computed, 2 ready */
};

int sweep_static_enable(struct sweep_cube *c)
{
	struct sweep_static *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->img = malloc((size_t)c->h * c->w * sizeof(float));
	s->state = calloc(c->h, 1);
	if (!s->img || !s->state) {
		free(s->img);
		free((void *)s->state);
		free(s);
		return -ENOMEM;
	}
	c->stat = s;
	return 0;
}

static void static_free(struct sweep_cube *c)
{
	if (!c->stat)
		return;
	free(c->stat->img);
	free((void *)c->stat->state);
	free(c->stat);
	c->stat = NULL;
}

static int static_row(const struct sweep_cube *c, void *fh, long y, float *v)
{
	const size_t plane = (size_t)c->h * c->w;
	float *out = c->stat->img + (size_t)y * c->w;
	fitsfile **f = fh;
	for (long x = 0; x < c->w; x++) {
		int m = 0;
		for (long k = 0; k < c->n; k++) {
			float s;
			if (c->backend == SWEEP_CFITSIO) {
				long fp[2] = {x + 1, y + 1};
				int status = 0, anynul = 0;
				float nan = NAN;
				if (fits_read_pix(f[k], TFLOAT, fp, 1, &nan, &s, &anynul, &status))
					return -EIO;
			} else {
				s = load(c, plane * k + (size_t)y * c->w + x);
			}
			if (s == s)
				v[m++] = s;
		}
		out[x] = m ? (float)sweep_median(v, m) : NAN;
	}
	return 0;
}

int sweep_static_ensure(const struct sweep_cube *c, void *fh, long ylo, long yhi)
{
	struct sweep_static *s = c->stat;
	if (!s)
		return 0;
	if (ylo < 0)
		ylo = 0;
	if (yhi > c->h)
		yhi = c->h;
	float *v = NULL;
	int ret = 0;
	for (long y = ylo; y < yhi; y++) {
		unsigned char st = atomic_load_explicit(&s->state[y], memory_order_acquire);
		if (st == 2)
			continue;
		unsigned char zero = 0;
		if (st == 0 && atomic_compare_exchange_strong(&s->state[y], &zero, 1)) {
			if (!v && !(v = malloc(c->n * sizeof(float)))) {
				atomic_store(&s->state[y], 0);
				return -ENOMEM;
			}
			ret = static_row(c, fh, y, v);
			/* on error the row is marked ready with NaN so nobody waits forever */
			if (ret)
				for (long x = 0; x < c->w; x++)
					s->img[(size_t)y * c->w + x] = NAN;
			atomic_store_explicit(&s->state[y], 2, memory_order_release);
			if (ret)
				break;
			continue;
		}
		while (atomic_load_explicit(&s->state[y], memory_order_acquire) != 2)
			sched_yield();
	}
	free(v);
	return ret;
}

/*
 * Gather the samples of the path starting at (x0, y0) whose per-frame
 * displacements are dx[k], dy[k].  Also counts samples >= tau in *ge.
 * Returns the sample count or -EIO (cfitsio).
 */
static int gather_off(const struct sweep_cube *c, void *fh, int32_t x0, int32_t y0, const int32_t *dx,
		      const int32_t *dy, float *v, float tau, int *ge)
{
	const long n = c->n, h = c->h, w = c->w;
	int m = 0, g = 0;
	if (c->backend == SWEEP_CFITSIO) {
		fitsfile **f = fh;
		float nan = NAN;
		for (long k = 0; k < n; k++) {
			int64_t x = (int64_t)x0 + dx[k], y = (int64_t)y0 + dy[k];
			if (x < 0 || y < 0 || x >= w || y >= h)
				continue;
			long fp[2] = {(long)x + 1, (long)y + 1};
			int status = 0, anynul = 0;
			float s;
			if (fits_read_pix(f[k], TFLOAT, fp, 1, &nan, &s, &anynul, &status))
				return -EIO;
			if (c->stat)
				s -= c->stat->img[(size_t)y * w + x];
			if (s != s)
				continue;
			v[m++] = s;
			g += s >= tau;
		}
	} else if (c->stat && c->type == SWEEP_T_F32) {
		const float *d = (const float *)(const void *)c->data;
		const size_t plane = (size_t)h * (size_t)w;
		const float *si = c->stat->img;
		for (long k = 0; k < n; k++) {
			int64_t x = (int64_t)x0 + dx[k], y = (int64_t)y0 + dy[k];
			if ((uint64_t)x >= (uint64_t)w || (uint64_t)y >= (uint64_t)h)
				continue;
			size_t p = (size_t)y * w + x;
			float s = d[plane * k + p] - si[p];
			if (s != s)
				continue;
			v[m++] = s;
			g += s >= tau;
		}
	} else if (c->stat) {
		const size_t plane = (size_t)h * (size_t)w;
		const float *si = c->stat->img;
		for (long k = 0; k < n; k++) {
			int64_t x = (int64_t)x0 + dx[k], y = (int64_t)y0 + dy[k];
			if ((uint64_t)x >= (uint64_t)w || (uint64_t)y >= (uint64_t)h)
				continue;
			size_t p = (size_t)y * w + x;
			float s = load(c, plane * k + p) - si[p];
			if (s != s)
				continue;
			v[m++] = s;
			g += s >= tau;
		}
	} else if (c->type == SWEEP_T_F32) {
		const float *d = (const float *)(const void *)c->data;
		const size_t plane = (size_t)h * (size_t)w;
		for (long k = 0; k < n; k++) {
			int64_t x = (int64_t)x0 + dx[k], y = (int64_t)y0 + dy[k];
			if ((uint64_t)x >= (uint64_t)w || (uint64_t)y >= (uint64_t)h)
				continue;
			float s = d[plane * k + (size_t)y * w + x];
			if (s != s)
				continue;
			v[m++] = s;
			g += s >= tau;
		}
	} else {
		const size_t plane = (size_t)h * (size_t)w;
		for (long k = 0; k < n; k++) {
			int64_t x = (int64_t)x0 + dx[k], y = (int64_t)y0 + dy[k];
			if ((uint64_t)x >= (uint64_t)w || (uint64_t)y >= (uint64_t)h)
				continue;
			float s = load(c, plane * k + (size_t)y * w + x);
			if (s != s)
				continue;
			v[m++] = s;
			g += s >= tau;
		}
	}
	*ge = g;
	return m;
}

static void path_offsets(const struct sweep_cube *c, float vx, float vy, int32_t *dx, int32_t *dy)
{
	for (long k = 0; k < c->n; k++) {
		dx[k] = disp(vx, c->dt[k]);
		dy[k] = disp(vy, c->dt[k]);
	}
}

/* Make the static rows a path (widened by r rows) touches ready. */
static int ensure_path(const struct sweep_cube *c, void *fh, int32_t y0, const int32_t *dy, int r)
{
	if (!c->stat)
		return 0;
	int32_t lo = 0, hi = 0;
	for (long k = 0; k < c->n; k++) {
		lo = dy[k] < lo ? dy[k] : lo;
		hi = dy[k] > hi ? dy[k] : hi;
	}
	return sweep_static_ensure(c, fh, (long)y0 + lo - r, (long)y0 + hi + r + 1);
}

int sweep_gather(const struct sweep_cube *c, void *fh, int32_t x0, int32_t y0, float vx, float vy,
		 float *v)
{
	int32_t *dx = malloc(2 * c->n * sizeof(int32_t));
	if (!dx)
		return -ENOMEM;
	path_offsets(c, vx, vy, dx, dx + c->n);
	int ge, m = ensure_path(c, fh, y0, dx + c->n, 0);
	if (m == 0)
		m = gather_off(c, fh, x0, y0, dx, dx + c->n, v, 0, &ge);
	free(dx);
	return m;
}

int sweep_stamp(const struct sweep_cube *c, void *fh, const struct sweep_cand *p, int r, float *img)
{
	float *v = malloc(c->n * sizeof(float));
	int32_t *dx = malloc(2 * c->n * sizeof(int32_t));
	if (!v || !dx) {
		free(v);
		free(dx);
		return -ENOMEM;
	}
	path_offsets(c, p->vx, p->vy, dx, dx + c->n);
	int ret = ensure_path(c, fh, p->y0, dx + c->n, r);
	if (ret)
		goto out;
	for (int j = -r; j <= r; j++)
		for (int i = -r; i <= r; i++) {
			int ge;
			int m = gather_off(c, fh, p->x0 + i, p->y0 + j, dx, dx + c->n, v, 0, &ge);
			if (m < 0) {
				ret = m;
				goto out;
			}
			img[(j + r) * (2 * r + 1) + (i + r)] = m ? (float)sweep_median(v, m) : NAN;
		}
out:
	free(v);
	free(dx);
	return ret;
}

/* ---- random vectors ---------------------------------------------------- */

static inline uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0,1) from (seed, i, j). */
static inline double u01(uint64_t seed, uint64_t i, unsigned j)
{
	return (mix64(mix64(seed ^ mix64(i)) + j) >> 11) * 0x1.0p-53;
}

static void region(const struct sweep_cube *c, const struct sweep_opts *o, int *xl, int *xh, int *yl,
		   int *yh)
{
	*xl = o->x_lo, *xh = o->x_hi, *yl = o->y_lo, *yh = o->y_hi;
	if (*xh <= 0 || *xh > c->w)
		*xh = (int)c->w;
	if (*yh <= 0 || *yh > c->h)
		*yh = (int)c->h;
	if (*xl < 0)
		*xl = 0;
	if (*yl < 0)
		*yl = 0;
	if (*xl > *xh)
		*xl = *xh;
	if (*yl > *yh)
		*yl = *yh;
}

static inline int32_t random_y0(const struct sweep_opts *o, int yl, int yh, uint64_t i)
{
	return yl + (int32_t)(u01(o->seed, i, 1) * (yh - yl));
}

void sweep_random_vector(const struct sweep_cube *c, const struct sweep_opts *o, uint64_t i,
			 int32_t *x0, int32_t *y0, float *vx, float *vy)
{
	int xl, xh, yl, yh;
	region(c, o, &xl, &xh, &yl, &yh);
	*x0 = xl + (int32_t)(u01(o->seed, i, 0) * (xh - xl));
	*y0 = random_y0(o, yl, yh, i);
	/* Beta(3,2) is the 3rd smallest of 4 uniforms */
	double u[4];
	for (int j = 0; j < 4; j++)
		u[j] = u01(o->seed, i, 2 + j);
	for (int a = 1; a < 4; a++)
		for (int b = a; b > 0 && u[b] < u[b - 1]; b--) {
			double t = u[b];
			u[b] = u[b - 1];
			u[b - 1] = t;
		}
	double speed = o->vmin + (o->vmax - o->vmin) * u[2];
	double th = 2 * M_PI * u01(o->seed, i, 6);
	*vx = (float)(speed * cos(th));
	*vy = (float)(speed * sin(th));
}

static double time_span(const struct sweep_cube *c)
{
	return c->n > 1 ? c->dt[c->n - 1] : 0;
}

double sweep_vstep(const struct sweep_cube *c, const struct sweep_opts *o)
{
	double span = time_span(c);
	if (o->vstep > 0)
		return o->vstep;
	return span > 0 ? 3.0 / span : 1.0;
}

long sweep_velocity_grid(const struct sweep_cube *c, const struct sweep_opts *o, float **out)
{
	double step = sweep_vstep(c, o);
	long m = (long)floor(o->vmax / step + 1e-9);
	if (m > 2000)
		return -E2BIG;
	long cap = (2 * m + 1) * (2 * m + 1), n = 0;
	float *v = malloc(2 * cap * sizeof(float));
	if (!v)
		return -ENOMEM;
	for (long j = -m; j <= m; j++)
		for (long i = -m; i <= m; i++) {
			double vx = i * step, vy = j * step, s = hypot(vx, vy);
			if (s > o->vmax * (1 + 1e-9) || s < o->vmin * (1 - 1e-9))
				continue;
			v[2 * n] = (float)vx;
			v[2 * n + 1] = (float)vy;
			n++;
		}
	*out = v;
	return n;
}

/* ---- candidate heaps --------------------------------------------------- */

struct heap {
	struct sweep_cand *a;
	size_t n, cap;
};

/* Min-heap on "better": the worst kept candidate at a[0]. */
static void heap_push(struct heap *h, const struct sweep_cand *c)
{
	if (h->n < h->cap) {
		size_t i = h->n++;
		while (i > 0) {
			size_t p = (i - 1) / 2;
			if (!sweep_better(&h->a[p], c))
				break;
			h->a[i] = h->a[p];
			i = p;
		}
		h->a[i] = *c;
		return;
	}
	if (!sweep_better(c, &h->a[0]))
		return;
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		const struct sweep_cand *worst = c;
		if (l < h->n && sweep_better(worst, &h->a[l]))
			m = l, worst = &h->a[l];
		if (r < h->n && sweep_better(worst, &h->a[r]))
			m = r, worst = &h->a[r];
		if (m == i)
			break;
		h->a[i] = h->a[m];
		i = m;
	}
	h->a[i] = *c;
}

static int cand_cmp(const void *a, const void *b)
{
	const struct sweep_cand *x = a, *y = b;
	if (sweep_better(x, y))
		return -1;
	if (sweep_better(y, x))
		return 1;
	return 0;
}

void sweep_sort(struct sweep_cand *c, size_t n)
{
	qsort(c, n, sizeof(*c), cand_cmp);
}

size_t sweep_merge_top(struct sweep_cand *c, size_t n, size_t keep)
{
	sweep_sort(c, n);
	return n < keep ? n : keep;
}

size_t sweep_suppress(const struct sweep_cube *c, struct sweep_cand *p, size_t n, double radius,
		      size_t top)
{
	size_t k = 0;
	double *d = malloc(c->n * sizeof(double));
	if (!d)
		return 0;
	for (size_t i = 0; i < n && k < top; i++) {
		int ok = 1;
		for (size_t j = 0; j < k && ok; j++) {
			/* the median over the frames of the distance between the two tracks */
			for (long t = 0; t < c->n; t++) {
				double dx = (p[i].x0 - p[j].x0) + ((double)p[i].vx - p[j].vx) * c->dt[t];
				double dy = (p[i].y0 - p[j].y0) + ((double)p[i].vy - p[j].vy) * c->dt[t];
				d[t] = dx * dx + dy * dy;
			}
			/* d is small: insertion-sort free check, count frames within the radius */
			long near = 0;
			for (long t = 0; t < c->n; t++)
				near += d[t] <= radius * radius;
			if (2 * near >= c->n)
				ok = 0;
		}
		if (ok)
			p[k++] = p[i];
	}
	free(d);
	return k;
}

/* ---- the sweep --------------------------------------------------------- */

void sweep_opts_init(struct sweep_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->nvec = 100000;
	o->seed = 1;
	o->vmax = 15;
	o->vmin = 0;
	o->floor = -INFINITY;
	o->keep = 4096;
	o->nranks = 1;
}

int sweep_mount_budget(const char *path, uint64_t *budget, uint64_t *page)
{
	char dir[4096], stats[4200], line[256];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else
		snprintf(dir, sizeof(dir), ".");
	snprintf(stats, sizeof(stats), "%s/.umapfs/stats", dir[0] ? dir : "/");
	FILE *f = fopen(stats, "re");
	if (!f)
		return -errno;
	unsigned long long b = 0, p = 0, v;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "mount_buffer_size %llu", &v) == 1)
			b = v;
		else if (sscanf(line, "page_size %llu", &v) == 1)
			p = v;
	}
	fclose(f);
	if (!b)
		return -ENOENT;
	*budget = b;
	*page = p;
	return 0;
}

struct run {
	const struct sweep_cube *c;
	const struct sweep_opts *o;
	/* exhaustive */
	long nv;
	int32_t *odx, *ody; /* nv x n displacements */
	float *vel;
	int xl, xh, yl, yh;
	/* random: vector indices sorted by start row */
	uint64_t *order;
	/* this rank's work items [item_lo, item_hi) */
	uint64_t item_lo, item_hi, chunk;
	_Atomic uint64_t next;
	_Atomic uint64_t done_paths;
	_Atomic uint64_t done_sel;
	_Atomic int stop;
	uint64_t total_paths;
	long halo; /* rows a path can move away from its start row */
	long *halo_k;       /* the same per plane: a path is near its start row in early planes */
	_Atomic long ahead; /* start rows whose reach in every plane was asked for (MADV_WILLNEED) */
	long ahead_first;   /* ahead's initial value: the first request also covers rows above */
	long ahead_rows;    /* how far ahead of the band to ask */
	int err;
	char errmsg[512];
	pthread_mutex_t lock;
	struct heap *heaps;
};

struct worker {
	struct run *r;
	int id;
	pthread_t t;
};

static void run_error(struct run *r, int e, const char *msg)
{
	pthread_mutex_lock(&r->lock);
	if (!r->err) {
		r->err = e;
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", msg);
	}
	pthread_mutex_unlock(&r->lock);
	atomic_store(&r->stop, 1);
}

/* Are all pages of [a, b) of a mapping in the page cache?  (mincore: no I/O, no FUSE request) */
static int all_resident(uintptr_t a, uintptr_t b)
{
	unsigned char vec[256];
	uintptr_t p = a & ~(uintptr_t)4095;
	while (p < b) {
		size_t n = (b - p + 4095) / 4096;
		if (n > sizeof(vec))
			n = sizeof(vec);
		if (mincore((void *)p, n * 4096, vec) != 0)
			return 0;
		for (size_t i = 0; i < n; i++)
			if (!(vec[i] & 1))
				return 0;
		p += n * 4096;
	}
	return 1;
}

static void madvise_range(const struct sweep_cube *c, struct umapfs_ioc_range rg)
{
	uintptr_t a = (uintptr_t)c->map + rg.offset, al = a & ~(uintptr_t)4095;
	madvise((void *)al, a + rg.length - al, MADV_WILLNEED);
}

/* Send the ranges gathered in rs as one request (or madvise them if it fails); empties rs. */
static void prefetch_send(const struct sweep_cube *c, struct umapfs_ioc_ranges *rs)
{
	if (rs->count && ioctl(c->pf_fd, UMAPFS_IOC_PREFETCH_RANGES, rs) != 0)
		for (uint32_t i = 0; i < rs->count; i++)
			madvise_range(c, rs->range[i]);
	rs->count = 0;
}

/*
 * Ask for rows [lo, hi) of plane k (clipped): add them to rs for one request
 * with others (a view taking PREFETCH_RANGES), else ask at once.  Rows all in
 * the page cache are skipped (mincore: no I/O, no request).
 */
static void prefetch_plane_rows(const struct sweep_cube *c, struct umapfs_ioc_ranges *rs, long k,
				long lo, long hi)
{
	if (lo < 0)
		lo = 0;
	if (hi > c->h)
		hi = c->h;
	if (lo >= hi)
		return;
	size_t row = (size_t)c->w * type_size(c->type), plane = row * (size_t)c->h;
	uintptr_t a = (uintptr_t)c->data + (size_t)k * plane + (size_t)lo * row;
	uintptr_t b = a + (size_t)(hi - lo) * row;
	if (all_resident(a, b))
		return;
	struct umapfs_ioc_range rg = {.offset = a - (uintptr_t)c->map, .length = b - a};
	if (c->pf_vec) {
		rs->range[rs->count++] = rg;
		if (rs->count == UMAPFS_IOC_MAX_RANGES)
			prefetch_send(c, rs);
		return;
	}
	/* one request per plane, no READ per 4 KiB block */
	if (c->pf_fd >= 0 && ioctl(c->pf_fd, UMAPFS_IOC_PREFETCH, &rg) == 0)
		return;
	madvise_range(c, rg);
}

/*
 * Ask the kernel to read, in the background (MADV_WILLNEED), what paths
 * starting on rows [ahead, upto) reach: in plane k the rows within halo_k of
 * them.  Through a mount this turns one-fault-at-a-time reads into many
 * requests in flight; on a plain file it is the readahead the interleaved
 * plane order would otherwise defeat.  Only the rows not asked for before are
 * asked for, so what the band keeps resident is what it needs.
 */
static void prefetch_rows(struct run *r, long upto)
{
	const struct sweep_cube *c = r->c;
	if (upto > c->h)
		upto = c->h;
	long from = atomic_load(&r->ahead);
	/* in steps of half the distance ahead: fewer, larger requests */
	long step = r->ahead_rows / 2 > 1 ? r->ahead_rows / 2 : 1;
	while (from < upto && (upto - from >= step || upto == c->h || from == r->ahead_first) &&
	       !atomic_compare_exchange_weak(&r->ahead, &from, upto))
		;
	if (from >= upto || (upto - from < step && upto != c->h && from != r->ahead_first))
		return;
	/* plane k needs rows [lo_k, hi_k): what paths starting on [from, upto) reach, not asked before */
	long lo_min = LONG_MAX, hi_max = LONG_MIN;
	for (long k = 0; k < c->n; k++) {
		long h = r->halo_k[k], lo = from == r->ahead_first ? from - h : from + h;
		lo_min = lo < lo_min ? lo : lo_min;
		hi_max = upto + h > hi_max ? upto + h : hi_max;
	}
	if (lo_min < 0)
		lo_min = 0;
	/*
	 * A mount fills requests in the order they come: ask for one page of
	 * rows of every plane at a time, top down, so the rows the band needs
	 * first are filled first in every plane (its paths need them all), not
	 * all of plane 0 first.
	 */
	size_t row = (size_t)c->w * type_size(c->type);
	long sub = c->pf_vec && r->o->page > row ? (long)(r->o->page / row) : hi_max - lo_min;
	struct umapfs_ioc_ranges rs = {.count = 0};
	for (long j = lo_min - lo_min % sub; j < hi_max; j += sub) {
		for (long k = 0; k < c->n; k++) {
			long h = r->halo_k[k], lo = from == r->ahead_first ? from - h : from + h;
			long hi = upto + h;
			prefetch_plane_rows(c, &rs, k, lo > j ? lo : j, hi < j + sub ? hi : j + sub);
		}
		prefetch_send(c, &rs);
	}
}

void sweep_prefetch_paths(const struct sweep_cube *c, const struct sweep_cand *p, size_t n, int r)
{
	if (!c->map || c->backend == SWEEP_CFITSIO)
		return;
	struct umapfs_ioc_ranges rs = {.count = 0};
	for (size_t i = 0; i < n; i++)
		for (long k = 0; k < c->n; k++) {
			long y = (long)p[i].y0 + disp(p[i].vy, c->dt[k]);
			prefetch_plane_rows(c, &rs, k, y - r, y + r + 1);
		}
	prefetch_send(c, &rs);
}

/*
 * How far ahead of the band to ask (rows): 256 KiB of each plane (at least 8
 * rows) for enough requests in flight, less when the cube's residency is
 * limited (a mount's buffer): the band's reach in every plane, the rows asked
 * for ahead and a page of rounding at each edge must stay within three
 * quarters of the budget, or the pages asked for ahead push out the ones the
 * band still needs.  Warns when even the band alone does not fit.
 */
static long ahead_rows_for(const struct run *r, long band)
{
	const struct sweep_cube *c = r->c;
	const struct sweep_opts *o = r->o;
	double row = (double)c->w * (double)type_size(c->type);
	long ahead = (long)((256u << 10) / row);
	if (ahead < 8)
		ahead = 8;
	if (!o->budget || !c->map)
		return ahead;
	/* a cube the budget holds: ask for all of it at once, the deepest queue */
	if (row * (double)c->h * (double)c->n <= 0.75 * (double)o->budget)
		return c->h;
	double page = o->page ? (double)o->page : 4096.0;
	double need = 0;
	for (long k = 0; k < c->n; k++) {
		double rows = 2.0 * (double)r->halo_k[k] + (double)band;
		if (rows > (double)c->h)
			rows = (double)c->h;
		need += rows * row + 2 * page;
	}
	double room = 0.75 * (double)o->budget - need;
	long fit = room > 0 ? (long)(room / (row * (double)c->n)) : 0;
	if (fit < 1 && o->rank == 0)
		fprintf(stderr,
			"umapfs-sweep: %s: the rows a band of paths reaches (%.0f MiB over %ld planes) do not fit "
			"the mount's buffer (%.0f MiB): expect re-reading; a larger buffer_size, a smaller "
			"page_size or a smaller --vmax helps\n",
			c->path, need / 1048576.0, c->n, (double)o->budget / 1048576.0);
	if (fit < ahead)
		ahead = fit > 1 ? fit : 1;
	return ahead;
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct run *r = wk->r;
	const struct sweep_cube *c = r->c;
	const struct sweep_opts *o = r->o;
	struct heap *hp = &r->heaps[wk->id];
	const long n = c->n;
	const int minc = o->min_count > 0 ? o->min_count : (int)((n + 1) / 2);
	float *v = malloc(n * sizeof(float));
	int32_t *dxy = malloc(2 * n * sizeof(int32_t));
	char msg[512];
	void *fh = sweep_fh_open(c, msg, sizeof(msg));
	if (!v || !dxy || (c->backend == SWEEP_CFITSIO && !fh)) {
		run_error(r, -ENOMEM, c->backend == SWEEP_CFITSIO && !fh ? msg : "out of memory");
		goto out;
	}
	for (;;) {
		if (atomic_load_explicit(&r->stop, memory_order_relaxed))
			break;
		uint64_t it = atomic_fetch_add(&r->next, 1);
		uint64_t lo = r->item_lo + it * r->chunk;
		if (lo >= r->item_hi)
			break;
		uint64_t hi = lo + r->chunk < r->item_hi ? lo + r->chunk : r->item_hi;
		uint64_t paths = 0, sel = 0;
		int e = 0;
		if (o->exhaustive)
			e = sweep_static_ensure(c, fh, (long)lo - r->halo, (long)hi + r->halo);
		else if (c->stat)
			e = sweep_static_ensure(c, fh, random_y0(o, r->yl, r->yh, r->order[lo]) - r->halo,
						random_y0(o, r->yl, r->yh, r->order[hi - 1]) + r->halo + 1);
		if (e) {
			run_error(r, e, "cfitsio read failed (static sky)");
			goto out;
		}
		if (c->map && !o->no_willneed) {
			long last = o->exhaustive ? (long)hi : random_y0(o, r->yl, r->yh, r->order[hi - 1]) + 1;
			prefetch_rows(r, last + r->ahead_rows);
		}
		if (o->exhaustive) {
			/* items are start rows; every start pixel of the row x every velocity */
			for (uint64_t y = lo; y < hi; y++) {
				for (int x = r->xl; x < r->xh; x++) {
					struct sweep_cand best;
					int have = 0;
					double tau = o->floor;
					if (hp->n == hp->cap && hp->a[0].median > tau)
						tau = hp->a[0].median;
					for (long vi = 0; vi < r->nv; vi++) {
						int ge;
						int m = gather_off(c, fh, x, (int32_t)y, r->odx + vi * n,
								   r->ody + vi * n, v, (float)tau, &ge);
						if (m < 0) {
							run_error(r, m, "cfitsio read failed");
							goto out;
						}
						if (m < minc || ge <= (m - 1) / 2)
							continue;
						sel++;
						double med = sweep_median(v, m);
						if (med < tau || (have && !(med > best.median)))
							continue;
						best.x0 = x;
						best.y0 = (int32_t)y;
						best.vx = r->vel[2 * vi];
						best.vy = r->vel[2 * vi + 1];
						best.median = med;
						best.count = m;
						best.pad = 0;
						best.idx = ((uint64_t)y * (uint64_t)c->w + (uint64_t)x) *
								   (uint64_t)r->nv + (uint64_t)vi;
						have = 1;
						tau = med;
					}
					paths += (uint64_t)r->nv;
					if (have)
						heap_push(hp, &best);
				}
			}
		} else {
			for (uint64_t j = lo; j < hi; j++) {
				uint64_t idx = r->order[j];
				struct sweep_cand cd;
				sweep_random_vector(c, o, idx, &cd.x0, &cd.y0, &cd.vx, &cd.vy);
				path_offsets(c, cd.vx, cd.vy, dxy, dxy + n);
				double tau = o->floor;
				if (hp->n == hp->cap && hp->a[0].median > tau)
					tau = hp->a[0].median;
				int ge;
				int m = gather_off(c, fh, cd.x0, cd.y0, dxy, dxy + n, v, (float)tau, &ge);
				paths++;
				if (m < 0) {
					run_error(r, m, "cfitsio read failed");
					goto out;
				}
				if (m < minc || ge <= (m - 1) / 2)
					continue;
				sel++;
				cd.median = sweep_median(v, m);
				if (cd.median < tau)
					continue;
				cd.count = m;
				cd.pad = 0;
				cd.idx = idx;
				heap_push(hp, &cd);
			}
		}
		atomic_fetch_add(&r->done_paths, paths);
		atomic_fetch_add(&r->done_sel, sel);
	}
out:
	sweep_fh_close(c, fh);
	free(v);
	free(dxy);
	return NULL;
}

struct progress {
	struct run *r;
	pthread_t t;
	_Atomic int quit;
	double t0;
};

static void draw_bar(struct progress *p, int final)
{
	uint64_t d = atomic_load(&p->r->done_paths), tot = p->r->total_paths;
	double frac = tot ? (double)d / tot : 1;
	if (frac > 1)
		frac = 1;
	double el = now_s() - p->t0, rate = el > 0 ? d / el : 0;
	char bar[41];
	int fill = (int)(frac * 40);
	for (int i = 0; i < 40; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[40] = 0;
	double eta = rate > 0 ? (tot - d) / rate : 0;
	fprintf(stderr, "\r[%s] %5.1f%%  %.3g paths  %.3g paths/s  %s %.0fs   ", bar, 100 * frac,
		(double)d, rate, final ? "took" : "eta", final ? el : eta);
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

static void *progress_main(void *arg)
{
	struct progress *p = arg;
	while (!atomic_load(&p->quit)) {
		draw_bar(p, 0);
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

long sweep_run(const struct sweep_cube *c, const struct sweep_opts *o, struct sweep_cand **out,
	       struct sweep_stats *st, char *err, size_t errlen)
{
	struct run r;
	memset(&r, 0, sizeof(r));
	r.c = c;
	r.o = o;
	long ret = 0;
	region(c, o, &r.xl, &r.xh, &r.yl, &r.yh);
	if (o->vmax < 0 || o->vmin < 0 || o->vmin > o->vmax)
		return fail(err, errlen, -EINVAL, "velocity limits: need 0 <= vmin <= vmax");
	int nth = o->threads > 0 ? o->threads : 1;
	int rank = o->rank, nranks = o->nranks > 0 ? o->nranks : 1;
	size_t keep = o->keep > 0 ? (size_t)o->keep : 4096;
	pthread_mutex_init(&r.lock, NULL);
	if (o->exhaustive) {
		r.nv = sweep_velocity_grid(c, o, &r.vel);
		if (r.nv == -E2BIG)
			return fail(err, errlen, -E2BIG, "velocity grid too fine: vmax/vstep > 2000");
		if (r.nv < 0)
			return fail(err, errlen, (int)r.nv, "out of memory");
		if (r.nv == 0) {
			free(r.vel);
			return fail(err, errlen, -EINVAL, "the velocity grid between vmin and vmax is empty");
		}
		r.odx = malloc((size_t)r.nv * c->n * sizeof(int32_t));
		r.ody = malloc((size_t)r.nv * c->n * sizeof(int32_t));
		if (!r.odx || !r.ody) {
			ret = fail(err, errlen, -ENOMEM, "out of memory");
			goto out;
		}
		for (long vi = 0; vi < r.nv; vi++)
			path_offsets(c, r.vel[2 * vi], r.vel[2 * vi + 1], r.odx + vi * c->n, r.ody + vi * c->n);
		r.halo_k = calloc((size_t)c->n, sizeof(long));
		if (!r.halo_k) {
			ret = fail(err, errlen, -ENOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < (size_t)r.nv * c->n; i++) {
			long h = labs((long)r.ody[i]) + 1;
			if (h > r.halo)
				r.halo = h;
			if (h > r.halo_k[i % (size_t)c->n])
				r.halo_k[i % (size_t)c->n] = h;
		}
		uint64_t rows = (uint64_t)(r.yh - r.yl);
		r.item_lo = r.yl + rows * rank / nranks;
		r.item_hi = r.yl + rows * (rank + 1) / nranks;
		r.ahead = (long)r.item_lo;
		r.chunk = 1;
		r.total_paths = (r.item_hi - r.item_lo) * (uint64_t)(r.xh - r.xl) * (uint64_t)r.nv;
	} else {
		/* counting sort of the vectors by start row: the sweep walks the cube top to bottom */
		uint64_t nvec = o->nvec;
		long rows = r.yh - r.yl;
		if (rows <= 0 || r.xh <= r.xl) {
			ret = fail(err, errlen, -EINVAL, "empty start region");
			goto out;
		}
		uint64_t *cnt = calloc(rows + 1, sizeof(uint64_t));
		r.order = malloc((nvec ? nvec : 1) * sizeof(uint64_t));
		if (!cnt || !r.order) {
			free(cnt);
			ret = fail(err, errlen, -ENOMEM, "out of memory (%llu vectors)",
				   (unsigned long long)nvec);
			goto out;
		}
		for (uint64_t i = 0; i < nvec; i++)
			cnt[random_y0(o, r.yl, r.yh, i) - r.yl + 1]++;
		for (long y = 0; y < rows; y++)
			cnt[y + 1] += cnt[y];
		for (uint64_t i = 0; i < nvec; i++)
			r.order[cnt[random_y0(o, r.yl, r.yh, i) - r.yl]++] = i;
		free(cnt);
		r.item_lo = nvec * rank / nranks;
		r.item_hi = nvec * (rank + 1) / nranks;
		/* work items: the vectors of about 4 start rows, so threads share one band */
		r.chunk = nvec * 4 / (uint64_t)rows;
		if (r.chunk < 1)
			r.chunk = 1;
		if (r.chunk > 256)
			r.chunk = 256;
		r.total_paths = r.item_hi - r.item_lo;
		if (r.item_hi > r.item_lo)
			r.ahead = random_y0(o, r.yl, r.yh, r.order[r.item_lo]);
		r.halo = (long)ceil(o->vmax * time_span(c)) + 2;
		r.halo_k = calloc((size_t)c->n, sizeof(long));
		if (!r.halo_k) {
			ret = fail(err, errlen, -ENOMEM, "out of memory");
			goto out;
		}
		for (long k = 0; k < c->n; k++)
			r.halo_k[k] = (long)ceil(o->vmax * c->dt[k]) + 2;
	}
	r.ahead_first = r.ahead;
	r.ahead_rows = ahead_rows_for(&r, 4 + 2 * nth);
	r.heaps = calloc(nth, sizeof(struct heap));
	struct worker *wk = calloc(nth, sizeof(*wk));
	if (!r.heaps || !wk) {
		free(wk);
		ret = fail(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < nth; i++) {
		r.heaps[i].cap = keep;
		r.heaps[i].a = malloc(keep * sizeof(struct sweep_cand));
		if (!r.heaps[i].a) {
			free(wk);
			ret = fail(err, errlen, -ENOMEM, "out of memory");
			goto out;
		}
	}
	struct progress pg = {.r = &r, .t0 = now_s()};
	int have_pg = o->progress && pthread_create(&pg.t, NULL, progress_main, &pg) == 0;
	double t0 = now_s();
	int started = 0;
	for (int i = 0; i < nth; i++) {
		wk[i].r = &r;
		wk[i].id = i;
		if (pthread_create(&wk[i].t, NULL, worker_main, &wk[i]) != 0) {
			run_error(&r, -EAGAIN, "cannot start a thread");
			break;
		}
		started++;
	}
	for (int i = 0; i < started; i++)
		pthread_join(wk[i].t, NULL);
	double t1 = now_s();
	if (have_pg) {
		atomic_store(&pg.quit, 1);
		pthread_join(pg.t, NULL);
		if (!r.err)
			draw_bar(&pg, 1);
		else
			fputc('\n', stderr);
	}
	free(wk);
	if (r.err) {
		ret = fail(err, errlen, r.err, "%s", r.errmsg);
		goto out;
	}
	size_t tot = 0;
	for (int i = 0; i < nth; i++)
		tot += r.heaps[i].n;
	struct sweep_cand *all = malloc((tot ? tot : 1) * sizeof(*all));
	if (!all) {
		ret = fail(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	size_t k = 0;
	for (int i = 0; i < nth; i++) {
		memcpy(all + k, r.heaps[i].a, r.heaps[i].n * sizeof(*all));
		k += r.heaps[i].n;
	}
	ret = (long)sweep_merge_top(all, tot, keep);
	*out = all;
	if (st) {
		st->paths = atomic_load(&r.done_paths);
		st->selected = atomic_load(&r.done_sel);
		st->seconds = t1 - t0;
	}
out:
	if (r.heaps)
		for (int i = 0; i < nth; i++)
			free(r.heaps[i].a);
	free(r.heaps);
	free(r.vel);
	free(r.odx);
	free(r.ody);
	free(r.order);
	free(r.halo_k);
	pthread_mutex_destroy(&r.lock);
	return ret;
}

/* ---- evaluating given paths -------------------------------------------- */

struct evalw {
	const struct sweep_cube *c;
	struct sweep_cand *p;
	size_t lo, hi;
	int err;
	char msg[512];
	pthread_t t;
};

static void *eval_main(void *arg)
{
	struct evalw *e = arg;
	const struct sweep_cube *c = e->c;
	float *v = malloc(c->n * sizeof(float));
	int32_t *d = malloc(2 * c->n * sizeof(int32_t));
	void *fh = sweep_fh_open(c, e->msg, sizeof(e->msg));
	if (!v || !d || (c->backend == SWEEP_CFITSIO && !fh)) {
		e->err = -ENOMEM;
		goto out;
	}
	for (size_t i = e->lo; i < e->hi; i++) {
		struct sweep_cand *p = &e->p[i];
		path_offsets(c, p->vx, p->vy, d, d + c->n);
		int ge, m = ensure_path(c, fh, p->y0, d + c->n, 0);
		if (m == 0)
			m = gather_off(c, fh, p->x0, p->y0, d, d + c->n, v, 0, &ge);
		if (m < 0) {
			e->err = m;
			snprintf(e->msg, sizeof(e->msg), "cfitsio read failed");
			goto out;
		}
		p->count = m;
		p->median = m ? sweep_median(v, m) : NAN;
	}
out:
	sweep_fh_close(c, fh);
	free(v);
	free(d);
	return NULL;
}

int sweep_eval_paths(const struct sweep_cube *c, struct sweep_cand *p, size_t n, int threads,
		     char *err, size_t errlen)
{
	if (threads < 1)
		threads = 1;
	struct evalw *w = calloc(threads, sizeof(*w));
	if (!w)
		return fail(err, errlen, -ENOMEM, "out of memory");
	int started = 0, ret = 0;
	for (int i = 0; i < threads; i++) {
		w[i].c = c;
		w[i].p = p;
		w[i].lo = n * i / threads;
		w[i].hi = n * (i + 1) / threads;
		if (pthread_create(&w[i].t, NULL, eval_main, &w[i]) != 0) {
			ret = fail(err, errlen, -EAGAIN, "cannot start a thread");
			break;
		}
		started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(w[i].t, NULL);
		if (w[i].err && !ret)
			ret = fail(err, errlen, w[i].err, "%s", w[i].msg[0] ? w[i].msg : "out of memory");
	}
	free(w);
	return ret;
}

/* ---- PNG ---------------------------------------------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[n] = c;
	}
}

static uint32_t crc_update(uint32_t crc, const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		crc = crc_table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
	return crc;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static int chunk(FILE *f, const char *type, const unsigned char *data, size_t len)
{
	unsigned char hdr[8];
	put32(hdr, (uint32_t)len);
	memcpy(hdr + 4, type, 4);
	uint32_t crc = crc_update(0xffffffffu, hdr + 4, 4);
	crc = crc_update(crc, data, len) ^ 0xffffffffu;
	unsigned char tail[4];
	put32(tail, crc);
	return fwrite(hdr, 1, 8, f) == 8 && (len == 0 || fwrite(data, 1, len, f) == len) &&
			       fwrite(tail, 1, 4, f) == 4
		       ? 0
		       : -EIO;
}

int sweep_png_write(const char *path, const unsigned char *pix, int w, int h)
{
	pthread_once(&crc_once, crc_init);
	if (w <= 0 || h <= 0 || w > 16384 || h > 16384)
		return -EINVAL;
	size_t raw = (size_t)h * (w + 1);
	size_t nblk = (raw + 65534) / 65535;
	size_t zlen = 2 + raw + 5 * nblk + 4;
	unsigned char *z = malloc(zlen), *line = malloc(raw);
	if (!z || !line) {
		free(z);
		free(line);
		return -ENOMEM;
	}
	for (int y = 0; y < h; y++) {
		line[(size_t)y * (w + 1)] = 0; /* filter: none */
		memcpy(line + (size_t)y * (w + 1) + 1, pix + (size_t)y * w, w);
	}
	size_t o = 0;
	z[o++] = 0x78;
	z[o++] = 0x01;
	uint32_t a = 1, b = 0;
	for (size_t i = 0; i < raw; i++) {
		a = (a + line[i]) % 65521;
		b = (b + a) % 65521;
	}
	for (size_t off = 0; off < raw || off == 0; off += 65535) {
		size_t n = raw - off < 65535 ? raw - off : 65535;
		z[o++] = off + n >= raw ? 1 : 0; /* BFINAL, BTYPE=00 stored */
		z[o++] = (unsigned char)(n & 0xff);
		z[o++] = (unsigned char)(n >> 8);
		z[o++] = (unsigned char)(~n & 0xff);
		z[o++] = (unsigned char)((~n >> 8) & 0xff);
		memcpy(z + o, line + off, n);
		o += n;
		if (off + n >= raw)
			break;
	}
	put32(z + o, (b << 16) | a);
	o += 4;
	free(line);
	int ret = 0;
	FILE *f = fopen(path, "wb");
	if (!f) {
		ret = -errno;
		free(z);
		return ret;
	}
	static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	unsigned char ihdr[13];
	put32(ihdr, (uint32_t)w);
	put32(ihdr + 4, (uint32_t)h);
	ihdr[8] = 8;  /* bit depth */
	ihdr[9] = 0;  /* greyscale */
	ihdr[10] = 0; /* deflate */
	ihdr[11] = 0; /* adaptive filtering */
	ihdr[12] = 0; /* no interlace */
	if (fwrite(sig, 1, 8, f) != 8 || chunk(f, "IHDR", ihdr, 13) || chunk(f, "IDAT", z, o) ||
	    chunk(f, "IEND", NULL, 0))
		ret = -EIO;
	if (fclose(f) != 0 && !ret)
		ret = -errno;
	free(z);
	return ret;
}

/* ---- one frame --------------------------------------------------------- */

int sweep_read_frame(const char *path, float *buf, long long npx, char *err, size_t errlen)
{
	fitsfile *f = NULL;
	int status = 0, naxis = 0, bitpix = 0, anynul = 0, ret = 0;
	long long dims[3] = {0, 0, 1};
	float nan = NAN;
	char msg[FLEN_STATUS];
	if (fits_open_diskfile(&f, path, READONLY, &status) || goto_image(f, &naxis, dims, &bitpix)) {
		fits_msg(status ? status : NOT_IMAGE, msg);
		ret = fail(err, errlen, -EINVAL, "%s: not a FITS image: %s", path, msg);
	} else if (dims[0] * dims[1] != npx) {
		ret = fail(err, errlen, -EINVAL, "%s: frame has %lld pixels, expected %lld", path,
			   dims[0] * dims[1], npx);
	} else if (fits_read_img(f, TFLOAT, 1, npx, &nan, buf, &anynul, &status)) {
		fits_msg(status, msg);
		ret = fail(err, errlen, -EIO, "%s: %s", path, msg);
	}
	status = 0;
	if (f)
		fits_close_file(f, &status);
	return ret;
}

/* ---- refinement --------------------------------------------------------- */

/*
 * Median over the frames of the 3x3 box sum around each sample of a path
 * (a PSF-matched score: smoother in position than single pixels).
 */
static double box_median(const struct sweep_cube *c, int32_t x0, int32_t y0, const int32_t *dx,
			 const int32_t *dy, float *v)
{
	const size_t plane = (size_t)c->h * c->w;
	int m = 0;
	for (long k = 0; k < c->n; k++) {
		int64_t x = (int64_t)x0 + dx[k], y = (int64_t)y0 + dy[k];
		if (x < 1 || y < 1 || x >= c->w - 1 || y >= c->h - 1)
			continue;
		double s = 0;
		int bad = 0;
		for (int j = -1; j <= 1; j++)
			for (int i = -1; i <= 1; i++) {
				size_t p = (size_t)(y + j) * c->w + (size_t)(x + i);
				float f = load(c, plane * k + p);
				if (c->stat)
					f -= c->stat->img[p];
				if (f != f)
					bad = 1;
				s += f;
			}
		if (!bad)
			v[m++] = (float)s;
	}
	return m >= (c->n + 1) / 2 ? sweep_median(v, m) : -INFINITY;
}

int sweep_refine(const struct sweep_cube *c, struct sweep_cand *p, double step)
{
	if (c->backend == SWEEP_CFITSIO)
		return 0; /* refinement reads 9 pixels per sample: not with per-pixel cfitsio */
	float *v = malloc(c->n * sizeof(float));
	int32_t *d = malloc(2 * c->n * sizeof(int32_t));
	if (!v || !d) {
		free(v);
		free(d);
		return -ENOMEM;
	}
	int ret = 0;
	path_offsets(c, p->vx, p->vy, d, d + c->n);
	ret = ensure_path(c, NULL, p->y0, d + c->n, 3 + (int)ceil(step * time_span(c)));
	struct sweep_cand best = *p;
	double bs = -INFINITY;
	for (int j = -1; j <= 1 && !ret; j++)
		for (int i = -1; i <= 1; i++)
			for (int b = -4; b <= 4; b++)
				for (int a = -4; a <= 4; a++) {
					float vx = (float)(p->vx + a * step / 4), vy = (float)(p->vy + b * step / 4);
					path_offsets(c, vx, vy, d, d + c->n);
					double s = box_median(c, p->x0 + i, p->y0 + j, d, d + c->n, v);
					if (s > bs) {
						bs = s;
						best.x0 = p->x0 + i;
						best.y0 = p->y0 + j;
						best.vx = vx;
						best.vy = vy;
					}
				}
	if (!ret && bs > -INFINITY) {
		path_offsets(c, best.vx, best.vy, d, d + c->n);
		int ge, m = gather_off(c, NULL, best.x0, best.y0, d, d + c->n, v, 0, &ge);
		if (m > 0) {
			best.count = m;
			best.median = sweep_median(v, m);
			*p = best;
		}
	}
	free(v);
	free(d);
	return ret;
}
