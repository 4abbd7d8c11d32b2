/* Private helpers shared by the FITS plugin's source files. */
#ifndef UMAPFS_FITS_FP_I_H
#define UMAPFS_FITS_FP_I_H

#include "fp.h"

void fp_logf(fp_log_fn log, void *arg, int level, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ISO-8601 date (YYYY-MM-DD[Thh:mm:ss[.f]]) to MJD; 0, or -1 if not one. */
int fp_iso_to_mjd(const char *s, double *mjd);

/* Compressed stacks: set up / tear down the per-frame decoders and the cache. */
int fp_decoder_init(struct fp_stack *s);
void fp_decoder_fini(struct fp_stack *s);

#endif
