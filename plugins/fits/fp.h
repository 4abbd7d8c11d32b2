/*
 * The FITS plugin's internal library (not installed, not part of the ABI).
 *
 * Three steps, each usable without the daemon:
 *   fp_options_parse   the plugin options string -> struct fp_options
 *   fp_stack_scan      a directory of frames -> a validated stack description
 *                      (headers only; every size checked against the file)
 *   fp_views_create    a stack -> engine views (cube.fits, cube.npy, the
 *                      native cube.f32/cube.f64) and the text of index.txt
 * The plugin entry (fits.c) only glues these to the host.  Tests call them
 * directly on an engine and compare with cfitsio.
 */
#ifndef UMAPFS_FITS_FP_H
#define UMAPFS_FITS_FP_H

#include <stddef.h>
#include <stdint.h>

#include "umapfs/engine.h"

/* Receives every message (level as UMAPFS_LOG_*); never NULL inside fp. */
typedef void (*fp_log_fn)(void *arg, int level, const char *msg);

#define FP_MAX_PATTERNS 16
#define FP_HDR_UNIT 184320u /* 64 FITS blocks = lcm(2880, 4096) */
#define FP_NPY_HDR 4096u

enum fp_order { FP_ORDER_TIME = 0, FP_ORDER_NAME = 1 };
enum fp_on_error { FP_REFUSE = 0, FP_SKIP = 1 };

struct fp_options {
	int hdu;             /* HDU number (0 = primary), -1 = default */
	char hdu_name[72];   /* EXTNAME to take, "" = by number/default */
	char *patterns[FP_MAX_PATTERNS];
	int n_patterns;
	int order;           /* enum fp_order */
	int on_error;        /* enum fp_on_error */
	char *buf;           /* storage for patterns */
};

/*
 * Parse the plugin options ("hdu=N|EXTNAME,pattern=GLOB[:GLOB...],
 * order=time|name,on_error=refuse|skip").  Unknown keys and bad values are
 * logged and give -EINVAL.  Release with fp_options_free().
 */
int fp_options_parse(const char *s, struct fp_options *o, fp_log_fn log, void *arg);
void fp_options_free(struct fp_options *o);

/* One frame of the stack (one source file). */
struct fp_frame {
	char *path;        /* full path */
	const char *name;  /* the file name inside the directory */
	int hdu;           /* cfitsio HDU number, 1 = primary */
	char extname[72];
	uint64_t data_off; /* uncompressed: byte offset of the pixels in the file */
	int has_time;
	double mjd;
	char date[72];     /* DATE-OBS (or DATE-AVG) as written, "" if none */
	double exptime;    /* NAN if none */
	void *dec;         /* compressed: decoder handle (struct fp_decoder) */
};

struct fp_skipped {
	char *name;
	char *reason;
};

/* The 2-D WCS the frames share (when wcs_ok), copied into cube.fits. */
struct fp_wcs {
	int present;
	int use_cd;        /* CDi_j matrix, else CDELTi (+ PCi_j) */
	char ctype[2][72], cunit[2][72], radesys[72];
	double crval[2], crpix[2], cd[2][2], cdelt[2], pc[2][2];
	int has_pc, has_equinox;
	double equinox;
};

struct fp_stack {
	int refs;          /* atomic */
	char *dir;
	fp_log_fn log;
	void *log_arg;
	int bitpix;
	int64_t nx, ny;
	int compressed;    /* tile-compressed (.fz) sources */
	int has_bzero, has_bscale, has_blank;
	double bzero, bscale;
	long long blank;
	size_t n;
	struct fp_frame *frames;   /* in plane order */
	struct fp_skipped *skipped;
	size_t n_skipped;
	struct fp_wcs wcs;
	int wcs_ok;
	int time_order;    /* planes are in time order (else by name) */
	int time_uniform;  /* equal steps: the third WCS axis is TIME */
	uint64_t elem;     /* bytes per stored pixel */
	uint64_t plane_bytes, data_bytes;
	int64_t ztile[2];  /* compressed: tile shape */
	void *cache;       /* compressed: decoded-band cache */
};

/*
 * Scan DIR: match the patterns, open every frame with fits_open_diskfile,
 * read headers only, check each frame and the stack.  Returns 0 and a stack
 * (reference count 1) in *out, or -errno after logging messages that name
 * the file, the keyword and both values (-EINVAL: a bad or inconsistent
 * frame with on_error=refuse, or no usable frame; -ENOENT: no frame).
 */
int fp_stack_scan(const char *dir, const struct fp_options *o, fp_log_fn log, void *arg,
		  struct fp_stack **out);
void fp_stack_get(struct fp_stack *s);
void fp_stack_put(struct fp_stack *s);

/* The native value type: 4 (float) or 8 (double, for BITPIX -64). */
static inline unsigned fp_native_size(const struct fp_stack *s) { return s->bitpix == -64 ? 8u : 4u; }
const char *fp_native_name(const struct fp_stack *s);

/*
 * The cube.fits primary header (a multiple of FP_HDR_UNIT bytes) and the
 * cube.npy header (FP_NPY_HDR bytes).  Return malloc'd bytes and the length
 * in *len, or NULL (-ENOMEM).
 */
char *fp_fits_header(const struct fp_stack *s, size_t *len);
char *fp_npy_header(const struct fp_stack *s, size_t *len);

/* index.txt (malloc'd, NUL-terminated; length in *len). */
char *fp_index_text(const struct fp_stack *s, size_t *len);

/*
 * Read stored (verbatim, big-endian) data bytes [off, off+len) of the
 * stacked planes: decoded through the band cache for compressed stacks;
 * uncompressed stacks read through `raw`, an extent view of the data (must
 * not be called from a fill of the same engine: see views.c).  Returns 0
 * or -errno.
 */
int fp_read_stored(struct fp_stack *s, struct umapfs_view *raw, uint64_t off, void *buf,
		   size_t len);

struct fp_views {
	struct umapfs_view *fits, *npy, *native;
	int fits_writable, native_writable;
	char why_ro[160];   /* why the native view (or all) is read-only */
};

/*
 * Create the three views of a stack on an engine.  With `writable`,
 * cube.fits / cube.npy of uncompressed stacks are writable, and the native
 * view when the sources are float without scaling.  The views hold their
 * own references to the stack.  Returns 0 or -errno (views destroyed).
 */
int fp_views_create(struct fp_stack *s, struct umapfs_engine *e, int writable,
		    struct fp_views *out);

#endif
