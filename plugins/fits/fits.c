/*
 * The fits plugin: a directory of 2-D FITS frames becomes a 3-D cube.
 *
 *   umapfs -o plugin=fits[,hdu=N|EXTNAME][,pattern=GLOB][,order=time|name]
 *          [,on_error=refuse|skip] FRAMES_DIR MOUNTPOINT
 *
 * Publishes cube.fits, cube.npy, the native cube.f32 (cube.f64 for BITPIX
 * -64 sources) and index.txt.  The work is in stack.c (scan and checks)
 * and views.c (views); this file glues them to the host.  See umapfs-fits(5).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "umapfs/plugin.h"

#include "fp.h"

struct fits_state {
	struct umapfs_plugin_host *host;
	int fits_writable, native_writable, compressed;
	char native_name[16];
	char why_ro[160];
};

static void host_log_bridge(void *arg, int level, const char *msg)
{
	struct umapfs_plugin_host *h = arg;
	h->log(h, level, "%s", msg);
}

/* Room for three views' file descriptors per frame. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int fits_init(void *state, struct umapfs_plugin_host *host, const char *source,
		     const char *options)
{
	struct fits_state *st = state;
	struct fp_options o;
	struct fp_stack *s = NULL;
	struct fp_views v;
	int r;

	st->host = host;
	r = fp_options_parse(options, &o, host_log_bridge, host);
	if (r < 0)
		return r;
	raise_nofile();
	r = fp_stack_scan(source, &o, host_log_bridge, host, &s);
	fp_options_free(&o);
	if (r < 0)
		return r;
	r = fp_views_create(s, host->engine, host->writable, &v);
	if (r < 0) {
		host->log(host, UMAPFS_LOG_ERR, "fits: %s: cannot create the views: %s", source, strerror(-r));
		fp_stack_put(s);
		return r;
	}
	st->fits_writable = v.fits_writable;
	st->native_writable = v.native_writable;
	st->compressed = s->compressed;
	snprintf(st->native_name, sizeof(st->native_name), "%s", fp_native_name(s));
	snprintf(st->why_ro, sizeof(st->why_ro), "%s", v.why_ro);
	if (host->writable && (!v.fits_writable || !v.native_writable))
		host->log(host, UMAPFS_LOG_NOTICE, "fits: writable mount, but %s", v.why_ro);

	size_t il = 0;
	char *index = fp_index_text(s, &il);
	host->log(host, UMAPFS_LOG_INFO, "fits: %s: %zu planes of %lld x %lld, BITPIX %d%s%s", source, s->n,
		  (long long)s->nx, (long long)s->ny, s->bitpix, s->compressed ? ", tile-compressed" : "",
		  s->n_skipped ? ", some files skipped (see index.txt)" : "");
	fp_stack_put(s);

	struct { const char *name; struct umapfs_view **v; } pub[] = {
		{"cube.fits", &v.fits}, {"cube.npy", &v.npy}, {st->native_name, &v.native}};
	r = index ? 0 : -ENOMEM;
	for (size_t i = 0; i < 3 && r == 0; i++) {
		r = host->publish(host, pub[i].name, *pub[i].v);
		if (r == 0)
			*pub[i].v = NULL; /* the host's now */
		else
			host->log(host, UMAPFS_LOG_ERR, "fits: cannot publish %s: %s", pub[i].name, strerror(-r));
	}
	if (r == 0) {
		r = host->publish_text(host, "index.txt", index, il);
		if (r < 0)
			host->log(host, UMAPFS_LOG_ERR, "fits: cannot publish index.txt: %s", strerror(-r));
	}
	free(index);
	for (size_t i = 0; i < 3; i++)
		if (*pub[i].v)
			umapfs_view_destroy(*pub[i].v);
	return r;
}

static void fits_fini(void *state) { (void)state; }

static int fits_open_check(void *state, const char *name, int flags)
{
	struct fits_state *st = state;
	if ((flags & O_ACCMODE) == O_RDONLY)
		return 0;
	int ok = 0;
	if (strcmp(name, "cube.fits") == 0 || strcmp(name, "cube.npy") == 0)
		ok = st->fits_writable;
	else if (strcmp(name, st->native_name) == 0)
		ok = st->native_writable;
	if (ok)
		return 0;
	st->host->log(st->host, UMAPFS_LOG_NOTICE, "fits: %s opened for writing: refused (%s)", name,
		      strcmp(name, st->native_name) == 0 || st->compressed || !st->why_ro[0]
			      ? (st->why_ro[0] ? st->why_ro : "read-only view")
			      : "read-only view");
	return -EACCES;
}

__attribute__((visibility("default"))) const struct umapfs_plugin umapfs_plugin_entry = {
	.abi_version = UMAPFS_PLUGIN_ABI_VERSION,
	.struct_size = sizeof(struct umapfs_plugin),
	.name = "fits",
	.description = "a directory of 2-D FITS frames as one 3-D cube (cube.fits, cube.npy, cube.f32)",
	.state_size = sizeof(struct fits_state),
	.init = fits_init,
	.fini = fits_fini,
	.open_check = fits_open_check,
};
