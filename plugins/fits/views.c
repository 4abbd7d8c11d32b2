/*
 * From a validated stack to engine views.
 *
 *   cube.fits   [header, FP_HDR_UNIT multiple][plane 0]...[plane N-1][zeros to 2880]
 *   cube.npy    [npy v1.0 header, 4096 bytes][plane 0]...[plane N-1]
 *   cube.f32    physical values in host order (cube.f64 for BITPIX -64)
 *
 * Uncompressed stacks: the verbatim views are engine extent views (MEMORY
 * header, FILE extents of the source pixels, ZERO padding), so the engine
 * serves them by direct I/O with no plugin code at page time.  The native
 * view is an ops view that reads the verbatim bytes itself (O_DIRECT into a
 * bounce buffer, see frame_io for why not through another engine view) and
 * converts them.  Compressed stacks: every view is an ops view over the
 * tile decoder (fp_read_stored).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fitsio.h>

#include "fp.h"
#include "fp_i.h"

/* ---- headers ------------------------------------------------------------ */

struct hbuf {
	char *p;
	size_t n, cap; /* in cards */
	int oom;
};

static void card_raw(struct hbuf *h, const char *text)
{
	if (h->oom)
		return;
	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 256;
		char *np = realloc(h->p, cap * 80);
		if (!np) {
			h->oom = 1;
			return;
		}
		h->p = np;
		h->cap = cap;
	}
	char card[81];
	snprintf(card, sizeof(card), "%-80s", text);
	memcpy(h->p + h->n * 80, card, 80);
	h->n++;
}

/* KEY = value (value already formatted: right-justified to column 30). */
static void card_val(struct hbuf *h, const char *key, const char *val, const char *comment)
{
	char t[160];
	if (comment && *comment)
		snprintf(t, sizeof(t), "%-8.8s= %20s / %.47s", key, val, comment);
	else
		snprintf(t, sizeof(t), "%-8.8s= %20s", key, val);
	t[80] = 0;
	card_raw(h, t);
}

static void card_int(struct hbuf *h, const char *key, long long v, const char *comment)
{
	char b[32];
	snprintf(b, sizeof(b), "%lld", v);
	card_val(h, key, b, comment);
}

static void card_dbl(struct hbuf *h, const char *key, double v, const char *comment)
{
	char b[40];
	snprintf(b, sizeof(b), "%.17G", v);
	if (!strpbrk(b, ".E"))
		strcat(b, ".0"); /* a real-valued keyword gets a real value */
	card_val(h, key, b, comment);
}

static void card_log(struct hbuf *h, const char *key, int v, const char *comment)
{
	card_val(h, key, v ? "T" : "F", comment);
}

/* A string value: quotes doubled, at most 68 characters, padded to 8. */
static void card_str(struct hbuf *h, const char *key, const char *v, const char *comment)
{
	char q[80];
	size_t o = 0;
	q[o++] = '\'';
	for (const char *s = v; *s && o < 66; s++) {
		char ch = (*s >= 32 && *s < 127) ? *s : '?';
		if (ch == '\'') {
			if (o + 2 > 66)
				break;
			q[o++] = '\'';
		}
		q[o++] = ch;
	}
	while (o < 9)
		q[o++] = ' ';
	q[o++] = '\'';
	q[o] = 0;
	char t[160];
	if (comment && *comment && o + 13 < 80)
		snprintf(t, sizeof(t), "%-8.8s= %-20s / %s", key, q, comment);
	else
		snprintf(t, sizeof(t), "%-8.8s= %s", key, q);
	t[80] = 0;
	card_raw(h, t);
}

/* The primary header of cube.fits; see fp.h. */
char *fp_fits_header(const struct fp_stack *s, size_t *len)
{
	struct hbuf h = {0};
	char key[32], com[80];

	card_log(&h, "SIMPLE", 1, "conforms to FITS standard");
	card_int(&h, "BITPIX", s->bitpix, "as the source frames");
	card_int(&h, "NAXIS", 3, "columns, rows, planes (time)");
	card_int(&h, "NAXIS1", s->nx, NULL);
	card_int(&h, "NAXIS2", s->ny, NULL);
	card_int(&h, "NAXIS3", (long long)s->n, "planes, one per source frame");
	if (s->has_bscale)
		card_dbl(&h, "BSCALE", s->bscale, "physical = BZERO + BSCALE * stored");
	if (s->has_bzero)
		card_dbl(&h, "BZERO", s->bzero, "physical = BZERO + BSCALE * stored");
	if (s->has_blank)
		card_int(&h, "BLANK", s->blank, "stored value of undefined pixels");
	if (s->wcs_ok) {
		const struct fp_wcs *w = &s->wcs;
		int t = s->time_uniform;
		double step = t ? (s->frames[s->n - 1].mjd - s->frames[0].mjd) / (double)(s->n - 1) : 1;
		card_int(&h, "WCSAXES", 3, "celestial axes of the frames, then planes");
		card_str(&h, "CTYPE1", w->ctype[0], NULL);
		card_str(&h, "CTYPE2", w->ctype[1], NULL);
		card_str(&h, "CTYPE3", t ? "TIME" : "PLANE", t ? "MJD, equal steps" : "plane number");
		if (w->cunit[0][0])
			card_str(&h, "CUNIT1", w->cunit[0], NULL);
		if (w->cunit[1][0])
			card_str(&h, "CUNIT2", w->cunit[1], NULL);
		if (t)
			card_str(&h, "CUNIT3", "d", NULL);
		card_dbl(&h, "CRVAL1", w->crval[0], NULL);
		card_dbl(&h, "CRVAL2", w->crval[1], NULL);
		card_dbl(&h, "CRVAL3", t ? s->frames[0].mjd : 1.0, NULL);
		card_dbl(&h, "CRPIX1", w->crpix[0], NULL);
		card_dbl(&h, "CRPIX2", w->crpix[1], NULL);
		card_dbl(&h, "CRPIX3", 1.0, NULL);
		if (w->use_cd) {
			card_dbl(&h, "CD1_1", w->cd[0][0], NULL);
			card_dbl(&h, "CD1_2", w->cd[0][1], NULL);
			card_dbl(&h, "CD2_1", w->cd[1][0], NULL);
			card_dbl(&h, "CD2_2", w->cd[1][1], NULL);
			card_dbl(&h, "CD3_3", step, t ? "days per plane" : NULL);
		} else {
			card_dbl(&h, "CDELT1", w->cdelt[0], NULL);
			card_dbl(&h, "CDELT2", w->cdelt[1], NULL);
			card_dbl(&h, "CDELT3", step, t ? "days per plane" : NULL);
			if (w->has_pc) {
				card_dbl(&h, "PC1_1", w->pc[0][0], NULL);
				card_dbl(&h, "PC1_2", w->pc[0][1], NULL);
				card_dbl(&h, "PC2_1", w->pc[1][0], NULL);
				card_dbl(&h, "PC2_2", w->pc[1][1], NULL);
			}
		}
		if (w->radesys[0])
			card_str(&h, "RADESYS", w->radesys, NULL);
		if (w->has_equinox)
			card_dbl(&h, "EQUINOX", w->equinox, NULL);
		if (t)
			card_dbl(&h, "MJDREF", 0.0, "TIME axis values are MJD");
	}
	if (s->frames[0].has_time)
		card_dbl(&h, "MJD-OBS", s->frames[0].mjd, "time of plane 1");
	if (s->frames[0].date[0])
		card_str(&h, "DATE-OBS", s->frames[0].date, "of plane 1");
	card_str(&h, "ORIGIN", "umapfs", "stitched by the umapfs fits plugin");
	card_raw(&h, "COMMENT Data are the source frames' pixel bytes, verbatim, plane after plane.");
	card_raw(&h, "COMMENT PFILnnnn / PMJDnnnn: source file and MJD of plane nnnn (1-based).");
	if (s->n <= 9999) {
		for (size_t k = 0; k < s->n; k++) {
			const struct fp_frame *f = &s->frames[k];
			snprintf(key, sizeof(key), "PFIL%04zu", k + 1);
			snprintf(com, sizeof(com), "HDU %d", f->hdu - 1);
			card_str(&h, key, f->name, com);
			if (f->has_time) {
				snprintf(key, sizeof(key), "PMJD%04zu", k + 1);
				card_dbl(&h, key, f->mjd, NULL);
			}
		}
	} else {
		card_raw(&h, "COMMENT More than 9999 planes: per-plane sources are listed in index.txt.");
	}
	if (h.oom) {
		free(h.p);
		return NULL;
	}
	/*
	 * The header ends with the block holding END, so END goes in the last
	 * card: blank cards before it pad the header to FP_HDR_UNIT bytes.
	 */
	size_t bytes = h.n * 80;
	size_t total = (bytes + 80 + FP_HDR_UNIT - 1) / FP_HDR_UNIT * FP_HDR_UNIT;
	char *out = malloc(total);
	if (!out) {
		free(h.p);
		return NULL;
	}
	memcpy(out, h.p, bytes);
	memset(out + bytes, ' ', total - bytes);
	memcpy(out + total - 80, "END", 3);
	free(h.p);
	*len = total;
	return out;
}

static const char *npy_descr(int bitpix)
{
	switch (bitpix) {
	case 8: return "|u1";
	case 16: return ">i2";
	case 32: return ">i4";
	case 64: return ">i8";
	case -32: return ">f4";
	default: return ">f8";
	}
}

/* The cube.npy header; see fp.h. */
char *fp_npy_header(const struct fp_stack *s, size_t *len)
{
	char *out = malloc(FP_NPY_HDR);
	if (!out)
		return NULL;
	memset(out, ' ', FP_NPY_HDR);
	memcpy(out, "\x93NUMPY\x01\x00", 8);
	unsigned hl = FP_NPY_HDR - 10;
	out[8] = (char)(hl & 0xff);
	out[9] = (char)(hl >> 8);
	char dict[256];
	int n = snprintf(dict, sizeof(dict), "{'descr': '%s', 'fortran_order': False, 'shape': (%zu, %lld, %lld), }",
			 npy_descr(s->bitpix), s->n, (long long)s->ny, (long long)s->nx);
	memcpy(out + 10, dict, (size_t)n);
	out[FP_NPY_HDR - 1] = '\n';
	*len = FP_NPY_HDR;
	return out;
}

/* index.txt; see fp.h. */
char *fp_index_text(const struct fp_stack *s, size_t *len)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *m = open_memstream(&buf, &sz);
	if (!m)
		return NULL;
	fprintf(m, "# umapfs fits: %s\n", s->dir);
	fprintf(m, "# %zu planes of %lld x %lld, BITPIX %d%s, ordered by %s; native view %s\n", s->n,
		(long long)s->nx, (long long)s->ny, s->bitpix, s->compressed ? " (tile-compressed sources)" : "",
		s->time_order ? "time" : "file name", fp_native_name(s));
	fprintf(m, "# plane (0-based; FITS plane = plane+1)\tfile\thdu (0 = primary)\textname\tmjd\tdate-obs\texptime\n");
	for (size_t k = 0; k < s->n; k++) {
		const struct fp_frame *f = &s->frames[k];
		char mjd[40] = "-", exp[40] = "-";
		if (f->has_time)
			snprintf(mjd, sizeof(mjd), "%.8f", f->mjd);
		if (!isnan(f->exptime))
			snprintf(exp, sizeof(exp), "%g", f->exptime);
		fprintf(m, "%zu\t%s\t%d\t%s\t%s\t%s\t%s\n", k, f->name, f->hdu - 1, f->extname[0] ? f->extname : "-",
			mjd, f->date[0] ? f->date : "-", exp);
	}
	if (s->n_skipped) {
		fprintf(m, "# skipped %zu file(s)\n", s->n_skipped);
		for (size_t i = 0; i < s->n_skipped; i++)
			fprintf(m, "skipped\t%s\t%s\n", s->skipped[i].name, s->skipped[i].reason);
	}
	if (fclose(m) != 0) {
		free(buf);
		return NULL;
	}
	*len = sz;
	return buf;
}

/* ---- compressed sources: decoders and the band cache ---------------------- */

struct fp_decoder {
	pthread_mutex_t lock;
	fitsfile *f;
};

struct band {
	size_t frame;
	int64_t band;
	uint64_t tick;
	size_t len;
	char *data; /* big-endian stored bytes */
};

struct bcache {
	pthread_mutex_t lock;
	uint64_t tick;
	size_t n;
	struct band *b;
	uint64_t band_bytes; /* bytes of a full band (ztile[1] rows) */
};

int fp_decoder_init(struct fp_stack *s)
{
	struct bcache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->band_bytes = (uint64_t)s->ztile[1] * (uint64_t)s->nx * s->elem;
	/* up to 64 MiB of decoded bands, at least 8 */
	uint64_t n = (UINT64_C(64) << 20) / (c->band_bytes ? c->band_bytes : 1);
	c->n = n < 8 ? 8 : n > 1024 ? 1024 : (size_t)n;
	c->b = calloc(c->n, sizeof(*c->b));
	if (!c->b) {
		free(c);
		return -ENOMEM;
	}
	s->cache = c;
	for (size_t i = 0; i < s->n; i++) {
		struct fp_decoder *d = calloc(1, sizeof(*d));
		if (!d)
			return -ENOMEM;
		pthread_mutex_init(&d->lock, NULL);
		s->frames[i].dec = d;
	}
	return 0;
}

void fp_decoder_fini(struct fp_stack *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct fp_decoder *d = s->frames[i].dec;
		if (!d)
			continue;
		if (d->f) {
			int st = 0;
			fits_close_file(d->f, &st);
		}
		pthread_mutex_destroy(&d->lock);
		free(d);
		s->frames[i].dec = NULL;
	}
	struct bcache *c = s->cache;
	if (c) {
		for (size_t i = 0; i < c->n; i++)
			free(c->b[i].data);
		free(c->b);
		pthread_mutex_destroy(&c->lock);
		free(c);
		s->cache = NULL;
	}
}

static int fits_dtype(int bitpix)
{
	switch (bitpix) {
	case 8: return TBYTE;
	case 16: return TSHORT;
	case 32: return TINT;
	case 64: return TLONGLONG;
	case -32: return TFLOAT;
	default: return TDOUBLE;
	}
}

static void swap_be(void *buf, size_t n, unsigned elem)
{
	unsigned char *p = buf;
	switch (elem) {
	case 2:
		for (size_t i = 0; i < n; i++) {
			uint16_t v;
			memcpy(&v, p + 2 * i, 2);
			v = __builtin_bswap16(v);
			memcpy(p + 2 * i, &v, 2);
		}
		break;
	case 4:
		for (size_t i = 0; i < n; i++) {
			uint32_t v;
			memcpy(&v, p + 4 * i, 4);
			v = __builtin_bswap32(v);
			memcpy(p + 4 * i, &v, 4);
		}
		break;
	case 8:
		for (size_t i = 0; i < n; i++) {
			uint64_t v;
			memcpy(&v, p + 8 * i, 8);
			v = __builtin_bswap64(v);
			memcpy(p + 8 * i, &v, 8);
		}
		break;
	default:
		break;
	}
}

/* Decode rows [y0, y0+rows) of frame k into out (big-endian stored values). */
static int decode_rows(struct fp_stack *s, size_t k, int64_t y0, int64_t rows, void *out)
{
	struct fp_frame *fr = &s->frames[k];
	struct fp_decoder *d = fr->dec;
	int st = 0, anynul = 0;
	char msg[FLEN_STATUS];

	pthread_mutex_lock(&d->lock);
	if (!d->f) {
		if (fits_open_diskfile(&d->f, fr->path, READONLY, &st) == 0 &&
		    fits_movabs_hdu(d->f, fr->hdu, NULL, &st) == 0)
			fits_set_bscale(d->f, 1.0, 0.0, &st); /* stored values, not physical */
		if (st) {
			fits_get_errstatus(st, msg);
			pthread_mutex_unlock(&d->lock);
			fp_logf(s->log, s->log_arg, UMAPFS_LOG_ERR, "fits: %s: cannot reopen for decoding: %s",
				fr->path, msg);
			if (d->f) {
				int s2 = 0;
				fits_close_file(d->f, &s2);
				d->f = NULL;
			}
			fits_clear_errmsg();
			return -EIO;
		}
	}
	LONGLONG fpix[2] = {1, y0 + 1};
	fits_read_pixll(d->f, fits_dtype(s->bitpix), fpix, (LONGLONG)(rows * s->nx), NULL, out, &anynul,
			&st);
	pthread_mutex_unlock(&d->lock);
	if (st) {
		fits_get_errstatus(st, msg);
		fits_clear_errmsg();
		fp_logf(s->log, s->log_arg, UMAPFS_LOG_ERR, "fits: %s: decoding rows %lld-%lld failed: %s",
			fr->path, (long long)y0 + 1, (long long)(y0 + rows), msg);
		return -EIO;
	}
	swap_be(out, (size_t)(rows * s->nx), (unsigned)s->elem);
	return 0;
}

/* Copy bytes [within, within+n) of band (k, b), decoding it on a miss. */
static int band_copy(struct fp_stack *s, size_t k, int64_t b, uint64_t within, void *dst, size_t n)
{
	struct bcache *c = s->cache;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n; i++)
		if (c->b[i].data && c->b[i].frame == k && c->b[i].band == b) {
			c->b[i].tick = ++c->tick;
			memcpy(dst, c->b[i].data + within, n);
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
	pthread_mutex_unlock(&c->lock);

	int64_t y0 = b * s->ztile[1], rows = s->ztile[1];
	if (y0 + rows > s->ny)
		rows = s->ny - y0;
	size_t blen = (size_t)((uint64_t)rows * (uint64_t)s->nx * s->elem);
	char *data = malloc(blen);
	if (!data)
		return -ENOMEM;
	int r = decode_rows(s, k, y0, rows, data);
	if (r < 0) {
		free(data);
		return r;
	}
	memcpy(dst, data + within, n);
	pthread_mutex_lock(&c->lock);
	size_t victim = 0;
	for (size_t i = 0; i < c->n; i++) {
		if (!c->b[i].data) {
			victim = i;
			break;
		}
		if (c->b[i].tick < c->b[victim].tick)
			victim = i;
	}
	free(c->b[victim].data);
	c->b[victim] = (struct band){.frame = k, .band = b, .tick = ++c->tick, .len = blen, .data = data};
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* Stored data bytes; see fp.h. */
int fp_read_stored(struct fp_stack *s, struct umapfs_view *raw, uint64_t off, void *buf, size_t len)
{
	if (off > s->data_bytes || len > s->data_bytes - off)
		return -EINVAL;
	if (!s->compressed) {
		ssize_t r = umapfs_view_read(raw, buf, len, off);
		if (r < 0)
			return (int)r;
		return (size_t)r == len ? 0 : -EIO;
	}
	struct bcache *c = s->cache;
	char *out = buf;
	while (len) {
		size_t k = (size_t)(off / s->plane_bytes);
		uint64_t poff = off % s->plane_bytes;
		int64_t b = (int64_t)(poff / c->band_bytes);
		uint64_t within = poff % c->band_bytes;
		uint64_t bandlen = c->band_bytes;
		uint64_t left_in_plane = s->plane_bytes - (uint64_t)b * c->band_bytes;
		if (bandlen > left_in_plane)
			bandlen = left_in_plane;
		size_t n = (size_t)(bandlen - within);
		if (n > len)
			n = len;
		int r = band_copy(s, k, b, within, out, n);
		if (r < 0)
			return r;
		out += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* ---- views ---------------------------------------------------------------- */

/* A verbatim view computed by the plugin (compressed sources). */
struct vv {
	struct fp_stack *s;
	char *hdr;
	uint64_t hdr_len, data_len, size;
};

static int vv_fill(void *arg, uint64_t off, void *buf, size_t len)
{
	struct vv *v = arg;
	char *out = buf;
	while (len) {
		size_t n;
		if (off < v->hdr_len) {
			n = (size_t)(v->hdr_len - off) < len ? (size_t)(v->hdr_len - off) : len;
			memcpy(out, v->hdr + off, n);
		} else if (off < v->hdr_len + v->data_len) {
			uint64_t d = off - v->hdr_len;
			n = (size_t)(v->data_len - d) < len ? (size_t)(v->data_len - d) : len;
			int r = fp_read_stored(v->s, NULL, d, out, n);
			if (r < 0)
				return r;
		} else {
			n = len;
			memset(out, 0, n);
		}
		out += n;
		off += n;
		len -= n;
	}
	return 0;
}

static void vv_release(void *arg)
{
	struct vv *v = arg;
	fp_stack_put(v->s);
	free(v->hdr);
	free(v);
}

static const struct umapfs_view_ops vv_ops = {
	.struct_size = sizeof(struct umapfs_view_ops),
	.fill = vv_fill,
	.release = vv_release,
};

/* The native view. */
struct nv {
	struct fp_stack *s;
	int *dfd;     /* uncompressed: per frame, O_DIRECT where the file system allows, else -1 */
	int *bfd;     /* uncompressed: per frame, buffered (fallback reads, write-back) */
	unsigned out; /* 4 or 8 */
};

/*
 * Read or write n bytes of frame k at file offset fo.  Reads go O_DIRECT
 * through an aligned bounce buffer (the frame data start at multiples of
 * 2880, not of the block size); if the direct read fails they are retried
 * buffered.  Writes are buffered (made durable by nv_sync).
 *
 * Why not read through an engine extent view of the data: a fill holds its
 * page's budget while it runs, so fills that waited for budget to read
 * another view could hold the whole buffer between them and wait forever.
 */
static int frame_io(struct nv *v, size_t k, int wr, uint64_t fo, char *p, size_t n)
{
	struct fp_stack *s = v->s;
	if (!wr && v->dfd[k] >= 0) {
		uint64_t a0 = fo & ~UINT64_C(4095), a1 = (fo + n + 4095) & ~UINT64_C(4095);
		size_t al = (size_t)(a1 - a0), got = 0;
		void *b = NULL;
		if (posix_memalign(&b, 4096, al))
			return -ENOMEM;
		int bad = 0;
		while (got < al) {
			ssize_t r = pread(v->dfd[k], (char *)b + got, al - got, (off_t)(a0 + got));
			if (r < 0)
				bad = 1;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (!bad && got >= (size_t)(fo - a0) + n) {
			memcpy(p, (char *)b + (fo - a0), n);
			free(b);
			return 0;
		}
		free(b); /* fall through to a buffered read, which reports the error */
	}
	while (n) {
		ssize_t r = wr ? pwrite(v->bfd[k], p, n, (off_t)fo) : pread(v->bfd[k], p, n, (off_t)fo);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int err = -errno;
			fp_logf(s->log, s->log_arg, UMAPFS_LOG_ERR, "fits: %s: %s at %llu: %s", s->frames[k].path,
				wr ? "write" : "read", (unsigned long long)fo, strerror(errno));
			return err;
		}
		if (r == 0) {
			fp_logf(s->log, s->log_arg, UMAPFS_LOG_ERR, "fits: %s: short %s at %llu (file shrank?)",
				s->frames[k].path, wr ? "write" : "read", (unsigned long long)fo);
			return -EIO;
		}
		p += r;
		fo += (uint64_t)r;
		n -= (size_t)r;
	}
	return 0;
}

/* Stored data bytes [off, off+len) of an uncompressed stack, frame by frame. */
static int frames_io(struct nv *v, int wr, uint64_t off, void *buf, size_t len)
{
	struct fp_stack *s = v->s;
	char *p = buf;
	while (len) {
		size_t k = (size_t)(off / s->plane_bytes);
		uint64_t in = off % s->plane_bytes;
		size_t n = (size_t)(s->plane_bytes - in) < len ? (size_t)(s->plane_bytes - in) : len;
		int r = frame_io(v, k, wr, s->frames[k].data_off + in, p, n);
		if (r < 0)
			return r;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

static inline double load_be(const unsigned char *p, int bitpix, int *is_blank, long long blank,
			     int has_blank)
{
	switch (bitpix) {
	case 8: {
		long long v = p[0];
		*is_blank = has_blank && v == blank;
		return (double)v;
	}
	case 16: {
		uint16_t u;
		memcpy(&u, p, 2);
		int16_t v = (int16_t)__builtin_bswap16(u);
		*is_blank = has_blank && v == blank;
		return (double)v;
	}
	case 32: {
		uint32_t u;
		memcpy(&u, p, 4);
		int32_t v = (int32_t)__builtin_bswap32(u);
		*is_blank = has_blank && v == blank;
		return (double)v;
	}
	default:
		return 0;
	}
}

/*
 * Convert n stored big-endian values at `in` to physical values at `out`
 * (float, or double for BITPIX -64), as cfitsio's fits_read_pix does:
 * unscaled integers are converted directly, scaled ones as
 * (float)(stored * BSCALE + BZERO) computed in double; BLANK becomes NaN.
 * `in` may be the tail of `out` (element i is read before it is written).
 */
static void convert(const struct fp_stack *s, const unsigned char *in, void *outv, size_t n)
{
	const int scaled = s->has_bscale || s->has_bzero;
	const double sc = s->bscale, z = s->bzero;
	const unsigned isz = (unsigned)s->elem;
	if (s->bitpix == -64) {
		double *out = outv;
		for (size_t i = 0; i < n; i++) {
			uint64_t u;
			memcpy(&u, in + (size_t)8 * i, 8);
			u = __builtin_bswap64(u);
			double d;
			memcpy(&d, &u, 8);
			out[i] = scaled ? d * sc + z : d;
		}
		return;
	}
	float *out = outv;
	if (s->bitpix == -32 && !scaled) {
		/* the common case: a byte swap the compiler vectorizes */
		uint32_t *o = outv;
		for (size_t i = 0; i < n; i++) {
			uint32_t u;
			memcpy(&u, in + 4 * i, 4);
			o[i] = __builtin_bswap32(u);
		}
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = in + (size_t)isz * i;
		float r;
		if (s->bitpix == -32) {
			uint32_t u;
			memcpy(&u, p, 4);
			u = __builtin_bswap32(u);
			float f;
			memcpy(&f, &u, 4);
			r = scaled ? (float)((double)f * sc + z) : f;
		} else if (s->bitpix == 64) {
			uint64_t u;
			memcpy(&u, p, 8);
			int64_t v = (int64_t)__builtin_bswap64(u);
			if (s->has_blank && v == s->blank)
				r = NAN;
			else
				r = scaled ? (float)((double)v * sc + z) : (float)v;
		} else {
			int blank = 0;
			double v = load_be(p, s->bitpix, &blank, s->blank, s->has_blank);
			if (blank)
				r = NAN;
			else
				r = scaled ? (float)(v * sc + z) : (float)v;
		}
		out[i] = r;
	}
}

/*
 * A per-thread aligned buffer for O_DIRECT reads, kept from one fill to the
 * next: allocating (and faulting in) a fresh bounce for every fill costs
 * about as much as the read itself.
 */
static pthread_key_t bounce_key;
static pthread_once_t bounce_once = PTHREAD_ONCE_INIT;
static int bounce_key_ok;

struct bounce {
	void *p;
	size_t size;
};

static void bounce_destroy(void *arg)
{
	struct bounce *b = arg;
	free(b->p);
	free(b);
}

static void bounce_key_init(void)
{
	bounce_key_ok = pthread_key_create(&bounce_key, bounce_destroy) == 0;
}

/* This thread's bounce of at least n bytes (4 KiB aligned), or NULL. */
static void *bounce_get(size_t n)
{
	pthread_once(&bounce_once, bounce_key_init);
	if (!bounce_key_ok)
		return NULL;
	struct bounce *b = pthread_getspecific(bounce_key);
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b || pthread_setspecific(bounce_key, b)) {
			free(b);
			return NULL;
		}
	}
	if (b->size < n) {
		void *p = NULL;
		if (posix_memalign(&p, 4096, n))
			return NULL;
		free(b->p);
		b->p = p;
		b->size = n;
	}
	return b->p;
}

/*
 * Read n stored bytes of frame k at file offset fo into this thread's
 * bounce and set *src to them: one aligned O_DIRECT read where possible, else
 * a buffered one.  Returns 0 or -errno (logged, naming the file).
 */
static int frame_read_ref(struct nv *v, size_t k, uint64_t fo, size_t n, const unsigned char **src)
{
	uint64_t a0 = fo & ~UINT64_C(4095), a1 = (fo + n + 4095) & ~UINT64_C(4095);
	size_t al = (size_t)(a1 - a0);
	unsigned char *b = bounce_get(al);
	if (!b)
		return -ENOMEM;
	if (v->dfd[k] >= 0) {
		size_t got = 0;
		while (got < al) {
			ssize_t r = pread(v->dfd[k], b + got, al - got, (off_t)(a0 + got));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (got >= (size_t)(fo - a0) + n) {
			*src = b + (fo - a0);
			return 0;
		}
	}
	*src = b;
	return frame_io(v, k, 0, fo, (char *)b, n); /* buffered; reports the error */
}

/* Stored bytes [soff, soff + inbytes) of an uncompressed stack, converted into out. */
static int frames_read_convert(struct nv *v, uint64_t soff, size_t inbytes, char *out)
{
	struct fp_stack *s = v->s;
	while (inbytes) {
		size_t k = (size_t)(soff / s->plane_bytes);
		uint64_t in = soff % s->plane_bytes;
		size_t nb = (size_t)(s->plane_bytes - in) < inbytes ? (size_t)(s->plane_bytes - in) : inbytes;
		const unsigned char *src;
		int r = frame_read_ref(v, k, s->frames[k].data_off + in, nb, &src);
		if (r < 0)
			return r;
		size_t ne = nb / (size_t)s->elem;
		convert(s, src, out, ne);
		out += ne * v->out;
		soff += nb;
		inbytes -= nb;
	}
	return 0;
}

static int nv_fill(void *arg, uint64_t off, void *buf, size_t len)
{
	struct nv *v = arg;
	struct fp_stack *s = v->s;
	size_t n = len / v->out;
	uint64_t first = off / v->out;
	size_t inbytes = n * (size_t)s->elem;
	unsigned char *tmp = NULL, *in;
	if (!s->compressed)
		return frames_read_convert(v, first * s->elem, inbytes, buf);
	if (inbytes > len) { /* BITPIX 64 into float: a separate buffer */
		tmp = malloc(inbytes);
		if (!tmp)
			return -ENOMEM;
		in = tmp;
	} else { /* in place: the stored bytes at the tail of the page */
		in = (unsigned char *)buf + (len - inbytes);
	}
	int r = s->compressed ? fp_read_stored(s, NULL, first * s->elem, in, inbytes)
			      : frames_io(v, 0, first * s->elem, in, inbytes);
	if (r == 0)
		convert(s, in, buf, n);
	free(tmp);
	return r;
}

/* Float sources without scaling only: byte-swap back into the source. */
static int nv_writeback(void *arg, uint64_t off, const void *buf, size_t len)
{
	struct nv *v = arg;
	void *tmp = malloc(len);
	if (!tmp)
		return -ENOMEM;
	memcpy(tmp, buf, len);
	swap_be(tmp, len / v->out, v->out);
	int r = frames_io(v, 1, off, tmp, len);
	free(tmp);
	return r;
}

static int nv_sync(void *arg)
{
	struct nv *v = arg;
	int ret = 0;
	for (size_t i = 0; v->bfd && i < v->s->n; i++)
		if (v->bfd[i] >= 0 && fdatasync(v->bfd[i]) < 0 && !ret)
			ret = -errno;
	return ret;
}

static void nv_release(void *arg)
{
	struct nv *v = arg;
	for (size_t i = 0; v->dfd && i < v->s->n; i++) {
		if (v->dfd[i] >= 0)
			close(v->dfd[i]);
		if (v->bfd[i] >= 0)
			close(v->bfd[i]);
	}
	free(v->dfd);
	free(v->bfd);
	fp_stack_put(v->s);
	free(v);
}

static const struct umapfs_view_ops nv_ops = {
	.struct_size = sizeof(struct umapfs_view_ops),
	.fill = nv_fill,
	.writeback = nv_writeback,
	.sync = nv_sync,
	.release = nv_release,
};

/* One extent view: [hdr][plane 0..N-1][zeros]. */
static int extent_view(struct fp_stack *s, struct umapfs_engine *e, const char *name, const char *hdr,
		       size_t hdr_len, uint64_t pad, unsigned flags, struct umapfs_view **out)
{
	struct umapfs_extent *x = calloc(s->n + 2, sizeof(*x));
	if (!x)
		return -ENOMEM;
	size_t k = 0;
	uint64_t size = 0;
	if (hdr_len) {
		x[k++] = (struct umapfs_extent){.kind = UMAPFS_EXTENT_MEMORY, .length = hdr_len, .data = hdr};
		size += hdr_len;
	}
	for (size_t i = 0; i < s->n; i++) {
		x[k++] = (struct umapfs_extent){.kind = UMAPFS_EXTENT_FILE, .path = s->frames[i].path,
						 .file_offset = s->frames[i].data_off, .length = s->plane_bytes};
		size += s->plane_bytes;
	}
	if (pad) {
		x[k++] = (struct umapfs_extent){.kind = UMAPFS_EXTENT_ZERO, .length = pad};
		size += pad;
	}
	struct umapfs_view_desc d;
	umapfs_view_desc_init(&d);
	d.name = name;
	d.size = size;
	d.flags = flags;
	d.extents = x;
	d.n_extents = k;
	int r = umapfs_view_create(e, &d, out);
	free(x);
	return r;
}

static int ops_view(struct umapfs_engine *e, const char *name, uint64_t size, unsigned flags,
		    const struct umapfs_view_ops *ops, void *arg, struct umapfs_view **out)
{
	struct umapfs_view_desc d;
	umapfs_view_desc_init(&d);
	d.name = name;
	d.size = size;
	d.flags = flags;
	d.ops = ops;
	d.ops_arg = arg;
	return umapfs_view_create(e, &d, out);
}

/* A compressed stack's verbatim view; takes ownership of hdr. */
static int vv_view(struct fp_stack *s, struct umapfs_engine *e, const char *name, char *hdr,
		   size_t hdr_len, uint64_t pad, struct umapfs_view **out)
{
	struct vv *v = calloc(1, sizeof(*v));
	if (!v) {
		free(hdr);
		return -ENOMEM;
	}
	fp_stack_get(s);
	v->s = s;
	v->hdr = hdr;
	v->hdr_len = hdr_len;
	v->data_len = s->data_bytes;
	v->size = hdr_len + s->data_bytes + pad;
	int r = ops_view(e, name, v->size, 0, &vv_ops, v, out);
	if (r < 0)
		vv_release(v);
	return r;
}

/* Create the views of a stack; see fp.h. */
int fp_views_create(struct fp_stack *s, struct umapfs_engine *e, int writable, struct fp_views *out)
{
	int r = -ENOMEM;
	size_t fl = 0, nl = 0;
	char *fh = NULL, *nh = NULL;

	memset(out, 0, sizeof(*out));
	fh = fp_fits_header(s, &fl);
	nh = fp_npy_header(s, &nl);
	if (!fh || !nh)
		goto fail;
	uint64_t pad = (2880 - (fl + s->data_bytes) % 2880) % 2880;
	const int floats = s->bitpix < 0 && !s->has_bscale && !s->has_bzero;

	if (writable && s->compressed)
		snprintf(out->why_ro, sizeof(out->why_ro),
			 "tile-compressed sources are read-only (cfitsio decodes them; there is no in-place re-encoding)");
	else if (writable && !floats)
		snprintf(out->why_ro, sizeof(out->why_ro),
			 "%s is read-only: the sources are %s, so a written value has no exact stored form",
			 fp_native_name(s), s->bitpix > 0 ? "integers (converted to float)" : "scaled (BZERO/BSCALE)");
	else if (!writable)
		snprintf(out->why_ro, sizeof(out->why_ro), "the mount is read-only");

	if (!s->compressed) {
		unsigned fw = writable ? UMAPFS_VIEW_WRITABLE : 0;
		r = extent_view(s, e, "cube.fits", fh, fl, pad, fw, &out->fits);
		if (r < 0)
			goto fail;
		r = extent_view(s, e, "cube.npy", nh, nl, 0, fw, &out->npy);
		if (r < 0)
			goto fail;
		out->fits_writable = writable;
		free(fh);
		free(nh);
		fh = nh = NULL;
	} else {
		r = vv_view(s, e, "cube.fits", fh, fl, pad, &out->fits);
		fh = NULL;
		if (r < 0)
			goto fail;
		r = vv_view(s, e, "cube.npy", nh, nl, 0, &out->npy);
		nh = NULL;
		if (r < 0)
			goto fail;
	}

	struct nv *v = calloc(1, sizeof(*v));
	if (!v) {
		r = -ENOMEM;
		goto fail;
	}
	fp_stack_get(s);
	v->s = s;
	v->out = fp_native_size(s);
	int nw = writable && floats && !s->compressed;
	if (!s->compressed) {
		v->dfd = malloc(s->n * sizeof(*v->dfd));
		v->bfd = malloc(s->n * sizeof(*v->bfd));
		if (!v->dfd || !v->bfd) {
			free(v->dfd);
			free(v->bfd);
			v->dfd = v->bfd = NULL;
			nv_release(v);
			r = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < s->n; i++)
			v->dfd[i] = v->bfd[i] = -1;
		for (size_t i = 0; i < s->n; i++) {
			const char *path = s->frames[i].path;
			v->dfd[i] = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC); /* -1 (EINVAL): buffered only */
			v->bfd[i] = open(path, (nw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
			if (v->bfd[i] < 0) {
				r = -errno;
				fp_logf(s->log, s->log_arg, UMAPFS_LOG_ERR, "fits: %s: cannot open %s: %s",
					fp_native_name(s), path, strerror(errno));
				nv_release(v);
				goto fail;
			}
		}
	}
	r = ops_view(e, fp_native_name(s), s->data_bytes / s->elem * v->out, nw ? UMAPFS_VIEW_WRITABLE : 0,
		     &nv_ops, v, &out->native);
	if (r < 0) {
		nv_release(v);
		goto fail;
	}
	out->native_writable = nw;
	return 0;
fail:
	free(fh);
	free(nh);
	if (out->fits)
		umapfs_view_destroy(out->fits);
	if (out->npy)
		umapfs_view_destroy(out->npy);
	memset(out, 0, sizeof(*out));
	return r;
}
