/*
 * Model-based random test of a writable view.
 *
 * A writable raw view is mounted with 64 KiB pages and a 512 KiB buffer (so
 * pages are evicted and written back all the time) and driven by a seeded
 * random mix of operations, each checked against an in-memory model of the
 * view's bytes:
 *   - mapped writes and reads through one MAP_SHARED mapping,
 *   - pwrite/pread at random offsets and lengths (crossing pages, up to
 *     twice the buffer),
 *   - msync(MS_SYNC) of a random range or of everything, fsync, fdatasync,
 *   - posix_fadvise(DONTNEED), which drops the kernel's clean copy so the
 *     next access must come from the daemon.
 * After every full sync (msync of the whole mapping, fsync, fdatasync) the
 * backing files are read directly (while still mounted) and must equal the
 * model: that is the durability promise.  At the end the mount is unmounted
 * cleanly (exit 0), the backing files are compared with the model (and the
 * bytes outside the view's extents must be untouched), the view is mounted
 * again and compared through pread and through a mapping.
 *
 * Two layouts: one backing file (page-aligned extent), and a view stitched
 * from two files at unaligned offsets with a size that is not a multiple of
 * the page size.  The seed is printed on failure; UMAPFS_RW_SEED replays it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rwutil.h"

static struct tmount m;

static void setup(void)
{
	tm_init(&m, "rw-model");
}

static void teardown(void)
{
	tm_cleanup(&m);
}

TestSuite(model, .init = setup, .fini = teardown, .timeout = 90);

/* One extent of the view: bytes [off, off+len) of backing file `name`. */
struct ext {
	const char *name;
	uint64_t file_size, off, len;
	uint64_t seed; /* initial pattern of the file */
};

struct layout {
	struct ext e[2];
	int n;
	uint64_t size; /* view size: sum of extent lengths */
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * Compare the backing files with the model (view bytes) and with their
 * initial pattern outside the extents.  Returns -1 if equal, else the view
 * offset (or, outside the view, -2) of the first difference; *where names it.
 */
static long long check_backing(const struct layout *L, const unsigned char *model, char *where,
			       size_t wlen)
{
	uint64_t vbase = 0;
	for (int i = 0; i < L->n; i++) {
		const struct ext *e = &L->e[i];
		unsigned char *got = malloc(e->file_size), *init = malloc(e->file_size);
		cr_assert(got && init);
		int r = file_read(tm_path(&m, e->name), 0, got, e->file_size);
		cr_assert_eq(r, 0, "read %s: %s", e->name, strerror(-r));
		pattern_fill(init, e->file_size, e->seed, 0);
		long long d = first_diff(got + e->off, model + vbase, e->len);
		long long before = first_diff(got, init, e->off);
		long long after = first_diff(got + e->off + e->len, init + e->off + e->len,
					     e->file_size - e->off - e->len);
		free(got);
		free(init);
		if (d >= 0) {
			snprintf(where, wlen, "%s at file offset %llu (view offset %llu)", e->name,
				 (unsigned long long)(e->off + (uint64_t)d),
				 (unsigned long long)(vbase + (uint64_t)d));
			return (long long)vbase + d;
		}
		if (before >= 0 || after >= 0) {
			snprintf(where, wlen, "%s outside the view's extent, at file offset %llu", e->name,
				 before >= 0 ? (unsigned long long)before
					     : (unsigned long long)(e->off + e->len + (uint64_t)after));
			return -2;
		}
		vbase += e->len;
	}
	return -1;
}

static void make_layout(const struct layout *L)
{
	char desc[1024];
	int n = snprintf(desc, sizeof(desc), "view v\n");
	for (int i = 0; i < L->n; i++) {
		const struct ext *e = &L->e[i];
		cr_assert_eq(pattern_file(tm_path(&m, e->name), e->file_size, e->seed), 0);
		n += snprintf(desc + n, sizeof(desc) - (size_t)n, "%s %llu %llu\n", e->name,
			      (unsigned long long)e->off, (unsigned long long)e->len);
	}
	write_text(tm_path(&m, "desc.txt"), desc);
}

/* The view's bytes through the mount (pread and mmap) must equal the model. */
static void check_through_mount(const struct layout *L, const unsigned char *model, uint64_t seed)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/v", m.mnt);
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0, "seed %llu: open %s: %s", (unsigned long long)seed, path,
		      strerror(errno));
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, L->size);
	unsigned char *buf = malloc(L->size);
	cr_assert(buf);
	size_t got = 0;
	while (got < L->size) {
		ssize_t r = pread(fd, buf + got, L->size - got, (off_t)got);
		cr_assert_gt(r, 0, "seed %llu: pread after remount: %s", (unsigned long long)seed,
			     r < 0 ? strerror(errno) : "EOF");
		got += (size_t)r;
	}
	long long d = first_diff(buf, model, L->size);
	cr_assert_eq(d, -1, "seed %llu: after remount, pread differs from the model at %lld",
		     (unsigned long long)seed, d);
	unsigned char *p = mmap(NULL, L->size, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED, "mmap: %s", strerror(errno));
	d = first_diff(p, model, L->size);
	cr_assert_eq(d, -1, "seed %llu: after remount, the mapping differs from the model at %lld",
		     (unsigned long long)seed, d);
	munmap(p, L->size);
	free(buf);
	close(fd);
}

static void run_model(const struct layout *L, double budget_s, unsigned max_ops)
{
	uint64_t seed = rw_seed();
	fprintf(stderr, "model test seed %llu (replay: UMAPFS_RW_SEED=%llu)\n",
		(unsigned long long)seed, (unsigned long long)seed);
	cr_log_info("seed %llu", (unsigned long long)seed);
	struct rng r;
	rng_init(&r, seed);
	make_layout(L);

	unsigned char *model = malloc(L->size);
	cr_assert(model);
	uint64_t vbase = 0;
	for (int i = 0; i < L->n; i++) {
		pattern_fill(model + vbase, L->e[i].len, L->e[i].seed, L->e[i].off);
		vbase += L->e[i].len;
	}

	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "writable,page_size=64K,buffer_size=512K"),
		     0, "mount: %s", tm_stderr(&m));
	char path[512];
	snprintf(path, sizeof(path), "%s/v", m.mnt);
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	unsigned char *map = mmap(NULL, L->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(map, MAP_FAILED, "mmap: %s", strerror(errno));

	const size_t maxlen = 1u << 20; /* twice the buffer */
	unsigned char *buf = malloc(maxlen);
	cr_assert(buf);
	char where[512];
	unsigned counts[8] = { 0 };
	double t0 = now();
	unsigned op;
	for (op = 0; op < max_ops && now() - t0 < budget_s; op++) {
		unsigned kind = (unsigned)rng_below(&r, 100);
		/* lengths: mostly small, sometimes a page or more */
		uint64_t cap = rng_below(&r, 8) == 0 ? maxlen : (rng_below(&r, 2) ? 70000 : 300);
		uint64_t off = rng_below(&r, L->size);
		uint64_t len = 1 + rng_below(&r, cap);
		if (rng_below(&r, 4) == 0) /* near a page boundary */
			off = (off & ~(uint64_t)0xffff) + (rng_below(&r, 2) ? 0 : 0x10000 - 1 - rng_below(&r, 64));
		if (off >= L->size)
			off = L->size - 1;
		if (len > L->size - off)
			len = L->size - off;
		int full_sync = 0;
		if (kind < 22) { /* mapped write */
			rng_bytes(&r, buf, len);
			memcpy(map + off, buf, len);
			memcpy(model + off, buf, len);
			counts[0]++;
		} else if (kind < 42) { /* mapped read */
			long long d = first_diff(map + off, model + off, len);
			cr_assert_eq(d, -1, "seed %llu op %u: mapped read at %llu+%llu differs at view "
				     "offset %llu", (unsigned long long)seed, op,
				     (unsigned long long)off, (unsigned long long)len,
				     (unsigned long long)(off + (uint64_t)d));
			counts[1]++;
		} else if (kind < 62) { /* pwrite */
			rng_bytes(&r, buf, len);
			ssize_t w = pwrite(fd, buf, len, (off_t)off);
			cr_assert_eq(w, (ssize_t)len, "seed %llu op %u: pwrite %llu at %llu: %s",
				     (unsigned long long)seed, op, (unsigned long long)len,
				     (unsigned long long)off, w < 0 ? strerror(errno) : "short");
			memcpy(model + off, buf, len);
			counts[2]++;
		} else if (kind < 82) { /* pread */
			ssize_t g = pread(fd, buf, len, (off_t)off);
			cr_assert_eq(g, (ssize_t)len, "seed %llu op %u: pread %llu at %llu: %s",
				     (unsigned long long)seed, op, (unsigned long long)len,
				     (unsigned long long)off, g < 0 ? strerror(errno) : "short");
			long long d = first_diff(buf, model + off, len);
			cr_assert_eq(d, -1, "seed %llu op %u: pread at %llu+%llu differs at view offset "
				     "%llu", (unsigned long long)seed, op, (unsigned long long)off,
				     (unsigned long long)len, (unsigned long long)(off + (uint64_t)d));
			counts[3]++;
		} else if (kind < 88) { /* msync of a range */
			uint64_t a = off & ~(uint64_t)4095;
			cr_assert_eq(msync(map + a, off + len - a, MS_SYNC), 0,
				     "seed %llu op %u: msync: %s", (unsigned long long)seed, op,
				     strerror(errno));
			counts[4]++;
		} else if (kind < 92) { /* msync of everything */
			cr_assert_eq(msync(map, L->size, MS_SYNC), 0, "seed %llu op %u: msync: %s",
				     (unsigned long long)seed, op, strerror(errno));
			full_sync = 1;
			counts[5]++;
		} else if (kind < 96) { /* fsync / fdatasync: also covers the mapping's dirty pages */
			int ret = kind & 1 ? fsync(fd) : fdatasync(fd);
			cr_assert_eq(ret, 0, "seed %llu op %u: %s: %s", (unsigned long long)seed, op,
				     kind & 1 ? "fsync" : "fdatasync", strerror(errno));
			full_sync = 1;
			counts[6]++;
		} else { /* drop the kernel's clean pages */
			posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
			counts[7]++;
		}
		if (full_sync) {
			long long d = check_backing(L, model, where, sizeof(where));
			cr_assert_eq(d, -1, "seed %llu op %u: after a successful sync the backing file "
				     "differs from the model: %s", (unsigned long long)seed, op, where);
		}
	}
	fprintf(stderr, "model: %u ops in %.1f s (mw %u mr %u pw %u pr %u msync-range %u msync %u "
		"fsync %u fadvise %u)\n", op, now() - t0, counts[0], counts[1], counts[2], counts[3],
		counts[4], counts[5], counts[6], counts[7]);
	cr_assert_geq(op, 200u, "only %u operations in %.0f s", op, budget_s);

	/* the small buffer must really have forced evictions and write-backs */
	char stats[600];
	snprintf(stats, sizeof(stats), "%s/.umapfs/stats", m.mnt);
	const char *text = slurp(stats);
	uint64_t ev = stats_get(text, "evictions"), wb = stats_get(text, "writebacks");
	uint64_t kinv = stats_get(text, "kernel_invalidations");
	fprintf(stderr, "model: engine evictions %llu, write-backs %llu, kernel invalidations %llu\n",
		(unsigned long long)ev, (unsigned long long)wb, (unsigned long long)kinv);
	cr_assert(ev != UINT64_MAX && ev > 0 && wb != UINT64_MAX && wb > 0,
		  "no evictions/write-backs with a 512K buffer:\n%s", text);

	/* final: whole mapping compared, then a clean unmount */
	long long d = first_diff(map, model, L->size);
	cr_assert_eq(d, -1, "seed %llu: final mapped compare differs at %lld", (unsigned long long)seed,
		     d);
	cr_assert_eq(munmap(map, L->size), 0);
	cr_assert_eq(close(fd), 0, "seed %llu: close: %s", (unsigned long long)seed, strerror(errno));
	int st = tm_stop(&m);
	cr_assert_eq(st, 0, "seed %llu: daemon exit status %d: %s", (unsigned long long)seed, st,
		     tm_stderr(&m));
	d = check_backing(L, model, where, sizeof(where));
	cr_assert_eq(d, -1, "seed %llu: after unmount the backing file differs from the model: %s",
		     (unsigned long long)seed, where);

	/* a fresh mount (read-only this time) serves the model */
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "page_size=64K,buffer_size=512K"), 0,
		     "remount: %s", tm_stderr(&m));
	check_through_mount(L, model, seed);
	cr_assert_eq(tm_stop(&m), 0, "%s", tm_stderr(&m));
	free(buf);
	free(model);
}

Test(model, one_file_aligned)
{
	struct layout L = {
		.n = 1,
		.e = { { "back.bin", 5u << 20, 1u << 20, 4u << 20, 11 } },
	};
	L.size = L.e[0].len;
	run_model(&L, 12.0, 4000);
}

Test(model, stitched_unaligned)
{
	/* 1.5 MiB from a.bin at +8192, then B at an odd offset; size not page aligned */
	struct layout L = {
		.n = 2,
		.e = { { "a.bin", 2u << 20, 8192, 3u << 19, 21 },
		       { "b.bin", 3u << 20, 777, (2u << 20) + 12345, 22 } },
	};
	L.size = L.e[0].len + L.e[1].len;
	run_model(&L, 12.0, 4000);
}
