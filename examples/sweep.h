/*
 * The median sweep: find moving objects in a cube of frames (time x rows x
 * columns) by taking the median of the pixels along straight paths.
 *
 * A path is a start pixel (x0, y0) in the first frame and a velocity
 * (vx, vy) in pixels per hour.  Its sample in frame k is the pixel at
 *
 *     x_k = x0 + floor(vx * dt_k + 1/2),  y_k = y0 + floor(vy * dt_k + 1/2)
 *
 * where dt_k = 24 * (MJD_k - MJD_0) is the frame's time after the first
 * frame, in hours (this is round(x0 + vx*dt_k) with halves rounded up, and
 * makes the offsets of a velocity the same for every start pixel).  Samples
 * off the frame and NaN samples are skipped.  The score is the median of the
 * remaining samples (the mean of the two middle ones for an even count).
 *
 * This header is internal to examples/ and tests/examples/: it is not an
 * installed interface.
 */
#ifndef UMAPFS_EXAMPLES_SWEEP_H
#define UMAPFS_EXAMPLES_SWEEP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* How the cube's bytes are read. */
enum sweep_backend {
	SWEEP_NATIVE = 0,  /* host-order float32 file (mount's cube.f32, umapfs-stitch output), mmap */
	SWEEP_FITS = 1,    /* a 3-D FITS file (mount's cube.fits) by its header, mmap */
	SWEEP_CFITSIO = 2, /* a directory of 2-D frames, one fits_read_pix per sample */
};

/* Stored sample types (FITS cubes are big-endian). */
enum sweep_type {
	SWEEP_T_F32 = 0,  /* host float32 */
	SWEEP_T_BE_F32,   /* BITPIX -32 */
	SWEEP_T_BE_F64,   /* BITPIX -64 */
	SWEEP_T_BE_I16,   /* BITPIX 16 (+ BZERO/BSCALE/BLANK) */
	SWEEP_T_BE_I32,   /* BITPIX 32 */
	SWEEP_T_U8,       /* BITPIX 8 */
};

struct sweep_cube {
	int backend;
	int type;
	long n, h, w;        /* frames, rows, columns */
	double mjd0;         /* MJD of frame 0 */
	double *dt;          /* n times after frame 0, hours */
	double *mjd;         /* n frame times, MJD */
	const unsigned char *data; /* first byte of plane 0 (mmap backends) */
	void *map;
	size_t map_len;
	int pf_fd;           /* mapped from a umapfs view: kept open for its prefetch requests, else -1 */
	int pf_vec;          /* ... and the daemon takes UMAPFS_IOC_PREFETCH_RANGES */
	double bscale, bzero;
	int has_blank;
	long long blank;
	char **frames;       /* cfitsio backend: n paths in time order */
	struct sweep_static *stat; /* set: samples are differences from the static sky */
	char *path;          /* what was opened, for messages */
};

/*
 * Open a cube.  `path` is a native float32 file, a FITS cube, or (backend
 * SWEEP_CFITSIO) a directory of frames.  For a native file the shape and
 * times come from `index_path` if given, else from index.txt or cube.fits in
 * the file's directory (see umapfs-sweep(1)).  `backend` < 0 guesses from the
 * path (directory: cfitsio; a .fits, .fit or .fts name: FITS; else native).
 * Returns 0, or -errno after writing a message naming the file and the reason
 * into err (size errlen).
 */
int sweep_cube_open(struct sweep_cube *c, const char *path, int backend, const char *index_path,
		    char *err, size_t errlen);
void sweep_cube_close(struct sweep_cube *c);

/*
 * List the FITS frames of a directory in time order (MJD-OBS, else DATE-OBS).
 * On success stores a malloc'ed array of malloc'ed paths and their MJDs and
 * returns the count (> 0); returns -errno with a message in err otherwise.
 */
long sweep_list_frames(const char *dir, char ***paths, double **mjd, char *err, size_t errlen);

/* Median of v[0..n) (n > 0); reorders v.  The mean of the middle two for even n. */
double sweep_median(float *v, int n);

/* One path with its result. */
struct sweep_cand {
	int32_t x0, y0;
	float vx, vy;     /* px per hour */
	double median;
	uint64_t idx;     /* order of generation: ties are broken by smaller idx */
	int32_t count;    /* samples used */
	int32_t pad;
};

struct sweep_opts {
	int exhaustive;      /* 1: every start pixel x velocity grid; 0: random vectors */
	uint64_t nvec;       /* random mode: number of vectors */
	uint64_t seed;
	double vmax, vmin;   /* px per hour */
	double vstep;        /* exhaustive grid step; 0: 1 / (time span) */
	int x_lo, x_hi, y_lo, y_hi; /* start-pixel region, half open; 0,0 = whole frame */
	int min_count;       /* a path needs this many samples (0: ceil(n/2)) */
	double floor;        /* only medians >= floor are candidates (-inf: none) */
	int keep;            /* candidates kept before suppression (per thread and globally) */
	int threads;
	int rank, nranks;    /* this process's share of the work */
	int progress;        /* draw a progress bar on stderr */
	int no_willneed;     /* do not madvise(MADV_WILLNEED) the band ahead */
	uint64_t budget;     /* bytes of the cube that stay resident (a mount's buffer_size); 0: no limit */
	uint64_t page;       /* the mount's page size (residency granule); 0: 4096 */
};

/*
 * The residency budget of the umapfs mount holding `path`: reads
 * mount_buffer_size and page_size from .umapfs/stats in the file's
 * directory.  Returns 0 and sets *budget and *page, or -errno (-ENOENT: not
 * on a umapfs mount).
 */
int sweep_mount_budget(const char *path, uint64_t *budget, uint64_t *page);

void sweep_opts_init(struct sweep_opts *o);

/* Vector/work statistics of a run. */
struct sweep_stats {
	uint64_t paths;     /* paths evaluated (all, pruned or not) */
	uint64_t selected;  /* paths whose median was computed (not pruned) */
	double seconds;
};

/*
 * Run the sweep on this rank's share of the work.  Returns the best `keep`
 * candidates (ordered best first) in *out (malloc'ed) and their count, or
 * -errno with a message in err.  In exhaustive mode only each start pixel's
 * best velocity is a candidate.
 */
long sweep_run(const struct sweep_cube *c, const struct sweep_opts *o, struct sweep_cand **out,
	       struct sweep_stats *st, char *err, size_t errlen);

/* The velocity grid step: o->vstep, or 3 px of drift over the night (about a PSF FWHM). */
double sweep_vstep(const struct sweep_cube *c, const struct sweep_opts *o);

/* The velocity grid of exhaustive mode: fills *v (malloc'ed pairs) and returns the count. */
long sweep_velocity_grid(const struct sweep_cube *c, const struct sweep_opts *o, float **v);

/* The random vector i of a seeded run (start and velocity). */
void sweep_random_vector(const struct sweep_cube *c, const struct sweep_opts *o, uint64_t i,
			 int32_t *x0, int32_t *y0, float *vx, float *vy);

/* a better than b: larger median, then smaller idx. */
static inline int sweep_better(const struct sweep_cand *a, const struct sweep_cand *b)
{
	return a->median > b->median || (a->median == b->median && a->idx < b->idx);
}

/* Sort best first. */
void sweep_sort(struct sweep_cand *c, size_t n);

/*
 * Merge candidate lists: sort best first and keep the first `keep`.
 * Returns the new count.
 */
size_t sweep_merge_top(struct sweep_cand *c, size_t n, size_t keep);

/*
 * Non-maximum suppression on a best-first list: keep a candidate only if its
 * track is farther than `radius` pixels from every kept one's in at least half
 * the frames (so the paths around a bright mover, which share most of its
 * samples, do not fill the list); stop at `top`.  Compacts in place, returns
 * the count.
 */
size_t sweep_suppress(const struct sweep_cube *c, struct sweep_cand *p, size_t n, double radius,
		      size_t top);

/*
 * Gather the samples of one path (any backend; `fh` is the caller's cfitsio
 * handles for SWEEP_CFITSIO, else NULL).  Writes up to c->n samples into v,
 * returns the count, or -errno (cfitsio read error).
 */
int sweep_gather(const struct sweep_cube *c, void *fh, int32_t x0, int32_t y0, float vx, float vy,
		 float *v);

/*
 * Subtract the static sky: from now on every sample is the pixel minus the
 * median of that pixel over all frames (stars and sky cancel; movers stay).
 * Rows of the static image are computed on first use, by whichever thread
 * needs them, so the sweep reads the cube once.  Returns 0 or -ENOMEM.
 */
int sweep_static_enable(struct sweep_cube *c);

/* Make static rows [ylo, yhi) ready (clipped to the frame). 0 or -errno. */
int sweep_static_ensure(const struct sweep_cube *c, void *fh, long ylo, long yhi);

/* Open/close per-thread cfitsio handles for the cfitsio backend. */
void *sweep_fh_open(const struct sweep_cube *c, char *err, size_t errlen);
void sweep_fh_close(const struct sweep_cube *c, void *fh);

/*
 * Ask in the background for the rows the paths p[0..n) touch, widened by r
 * rows, before they are walked one at a time (refinement, samples, stamps):
 * a cube larger than a mount's buffer no longer holds them, and faulting
 * them in one by one costs a round trip to the daemon each.  On a umapfs
 * view one UMAPFS_IOC_PREFETCH_RANGES request per 255 planes' rows,
 * elsewhere MADV_WILLNEED;
 * rows already in the page cache are skipped.  Mapped cubes only; best effort.
 */
void sweep_prefetch_paths(const struct sweep_cube *c, const struct sweep_cand *p, size_t n, int r);

/* Evaluate given paths (median and count) with all threads. Returns 0 or -errno. */
int sweep_eval_paths(const struct sweep_cube *c, struct sweep_cand *p, size_t n, int threads,
		     char *err, size_t errlen);

/* Median stack of an (2r+1)^2 stamp along a path: fills img (row-major). */
int sweep_stamp(const struct sweep_cube *c, void *fh, const struct sweep_cand *p, int r, float *img);

/* Write an 8-bit grey PNG (stored deflate, no compression library). Returns 0 or -errno. */
int sweep_png_write(const char *path, const unsigned char *pix, int w, int h);

/*
 * Refine a candidate: try start pixels within 1 px and velocities within one
 * grid step (in quarter steps) and keep the path whose 3x3-box-summed samples
 * have the highest median; its own median and count are then recomputed.
 * Not for the cfitsio backend (left alone).  Returns 0 or -errno.
 */
int sweep_refine(const struct sweep_cube *c, struct sweep_cand *p, double step);

/* Read a 2-D frame's physical values (BLANK as NaN) into buf (npx floats). 0 or -errno. */
int sweep_read_frame(const char *path, float *buf, long long npx, char *err, size_t errlen);

#endif
