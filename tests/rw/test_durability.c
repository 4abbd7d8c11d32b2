/*
 * The durability promise of a writable mount, checked from outside:
 *
 *   when msync(MS_SYNC), fsync or fdatasync returns 0 (or a write() on an
 *   O_DSYNC descriptor returns, or close() of a writer returns 0), every
 *   earlier byte is in the backing file;
 *   a backing failure comes back as EIO, not as 0.
 *
 * The backing file is read directly with pread while the view is still
 * mounted, right after each successful call, under eviction pressure (64 KiB
 * pages, 512 KiB buffer).  (That the bytes are in the backing file's page
 * cache and fdatasync was called on it cannot be told apart from outside
 * without a crash of the machine; the engine tests cover the fdatasync.)
 *
 * The failure case needs a backing store that really fails: a 1 MiB tmpfs
 * (mounted by the test, so it needs root) holding a sparse backing file,
 * filled up by another file, so writing back into the holes gets ENOSPC.
 * Freeing the space lets the next fsync succeed with the bytes in place.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rwutil.h"

#define SIZE (6u << 20)
#define SEED 41

static struct tmount m;
static char viewpath[512];
static char smalldir[512]; /* the tmpfs, if mounted */

static void setup(void)
{
	tm_init(&m, "rw-dur");
	snprintf(viewpath, sizeof(viewpath), "%s/v", m.mnt);
	smalldir[0] = 0;
}

static void teardown(void)
{
	if (smalldir[0]) /* lazily: the daemon may still hold the backing file */
		umount2(smalldir, MNT_DETACH);
	tm_cleanup(&m);
}

TestSuite(durability, .init = setup, .fini = teardown, .timeout = 60);

static void expect_backing(const char *file, uint64_t off, const unsigned char *want, size_t len,
			   const char *after, unsigned iter)
{
	unsigned char *got = malloc(len);
	cr_assert(got);
	int r = file_read(file, off, got, len);
	cr_assert_eq(r, 0, "read backing: %s", strerror(-r));
	long long d = first_diff(got, want, len);
	cr_assert_eq(d, -1, "iteration %u: %s returned 0 but the backing file differs at offset %llu "
		     "(%02x, want %02x)", iter, after, (unsigned long long)(off + (uint64_t)d),
		     d >= 0 ? got[d] : 0, d >= 0 ? want[d] : 0);
	free(got);
}

Test(durability, successful_sync_means_bytes_in_backing_file)
{
	const char *back = tm_path(&m, "data.bin");
	cr_assert_eq(pattern_file(back, SIZE, SEED), 0);
	write_text(tm_path(&m, "desc.txt"), "view v\ndata.bin 0 rest\n");
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "writable,page_size=64K,buffer_size=512K"),
		     0, "%s", tm_stderr(&m));
	unsigned char *model = malloc(SIZE);
	cr_assert(model);
	pattern_fill(model, SIZE, SEED, 0);
	int fd = open(viewpath, O_RDWR);
	cr_assert_geq(fd, 0, "open: %s", strerror(errno));
	int dfd = open(viewpath, O_RDWR | O_DSYNC);
	cr_assert_geq(dfd, 0, "open O_DSYNC: %s", strerror(errno));
	unsigned char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	struct rng r;
	uint64_t seed = rw_seed();
	rng_init(&r, seed);
	unsigned char *buf = malloc(1u << 20);
	cr_assert(buf);
	static const char *const how[] = { "msync(MS_SYNC) of the range", "msync(MS_SYNC) of all",
					   "fsync after mapped writes", "fdatasync after pwrite",
					   "fsync after pwrite", "pwrite on an O_DSYNC fd" };
	for (unsigned it = 0; it < 120; it++) {
		unsigned kind = it % 6;
		uint64_t len = 1 + rng_below(&r, rng_below(&r, 4) ? 20000 : (1u << 20));
		uint64_t off = rng_below(&r, SIZE - len);
		rng_bytes(&r, buf, len);
		int ret;
		if (kind <= 2) {
			/* a few other dirty pages too (before the range: it may overlap them) */
			for (int k = 0; k < 4; k++) {
				uint64_t o = rng_below(&r, SIZE);
				p[o] = model[o] = (unsigned char)rng_next(&r);
			}
			memcpy(model + off, buf, len);
			memcpy(p + off, buf, len);
			if (kind == 0) {
				uint64_t a = off & ~(uint64_t)4095;
				ret = msync(p + a, off + len - a, MS_SYNC);
			} else if (kind == 1) {
				ret = msync(p, SIZE, MS_SYNC);
			} else {
				ret = fsync(fd);
			}
		} else if (kind <= 4) {
			memcpy(model + off, buf, len);
			cr_assert_eq(pwrite(fd, buf, len, (off_t)off), (ssize_t)len, "pwrite: %s",
				     strerror(errno));
			ret = kind == 3 ? fdatasync(fd) : fsync(fd);
		} else {
			memcpy(model + off, buf, len);
			ret = pwrite(dfd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -1;
		}
		cr_assert_eq(ret, 0, "seed %llu iteration %u: %s failed: %s", (unsigned long long)seed,
			     it, how[kind], strerror(errno));
		/* the range just synced; after a whole-file sync, everything */
		if (kind == 0 || kind == 5)
			expect_backing(back, off, model + off, len, how[kind], it);
		else
			expect_backing(back, 0, model, SIZE, how[kind], it);
	}
	munmap(p, SIZE);
	close(dfd);
	close(fd);
	cr_assert_eq(tm_stop(&m), 0, "%s", tm_stderr(&m));
	expect_backing(back, 0, model, SIZE, "unmount", 0);
	free(buf);
	free(model);
}

/* ---- a backing store that fails ------------------------------------------ */

/*
 * A 1 MiB tmpfs in the work directory with a sparse 4 MiB backing file,
 * filled up by "filler".  Returns 0, or skips when tmpfs cannot be mounted.
 */
static void full_backing(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to mount a small tmpfs that fills up");
	snprintf(smalldir, sizeof(smalldir), "%s/small", m.dir);
	cr_assert_eq(mkdir(smalldir, 0755), 0);
	if (mount("tmpfs", smalldir, "tmpfs", MS_NOSUID | MS_NODEV, "size=1M") < 0) {
		int e = errno;
		rmdir(smalldir);
		smalldir[0] = 0;
		cr_skip_test("cannot mount a tmpfs: %s", strerror(e));
	}
	int fd = open(tm_path(&m, "small/back.bin"), O_RDWR | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 4u << 20), 0);
	close(fd);
	fd = open(tm_path(&m, "small/filler"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	char blk[4096];
	memset(blk, 0x77, sizeof(blk));
	ssize_t w;
	while ((w = write(fd, blk, sizeof(blk))) == (ssize_t)sizeof(blk)) {
	}
	cr_assert(w < 0 && errno == ENOSPC, "filling the tmpfs: %s", strerror(errno));
	close(fd);
	write_text(tm_path(&m, "desc.txt"), "view v\nsmall/back.bin 0 rest\n");
}

Test(durability, backing_failure_is_eio_then_recovers)
{
	full_backing();
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "writable,page_size=64K,buffer_size=512K"),
		     0, "%s", tm_stderr(&m));
	int fd = open(viewpath, O_RDWR);
	cr_assert_geq(fd, 0, "open: %s", strerror(errno));
	unsigned char data[100000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 13 + 5);
	/* fits the engine's staging buffer: accepted, but cannot be written back */
	cr_assert_eq(pwrite(fd, data, sizeof(data), 70000), (ssize_t)sizeof(data), "pwrite: %s",
		     strerror(errno));
	errno = 0;
	cr_assert_eq(fsync(fd), -1, "fsync returned 0 though the backing store is full");
	cr_assert_eq(errno, EIO, "fsync: %s, want EIO", strerror(errno));
	errno = 0;
	cr_assert_eq(fdatasync(fd), -1, "a second sync returned 0 though nothing was written back");
	cr_assert_eq(errno, EIO, "fdatasync: %s", strerror(errno));

	/* through a mapping: a resident page written, msync(MS_SYNC) must fail too */
	unsigned char *p = mmap(NULL, 4u << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	cr_assert(memcmp(p + 70000, data, sizeof(data)) == 0, "written bytes not served back");
	p[70000] = 0xAB;
	data[0] = 0xAB;
	errno = 0;
	cr_assert_eq(msync(p, 4u << 20, MS_SYNC), -1, "msync returned 0 though the backing store is "
		     "full");
	cr_assert_eq(errno, EIO, "msync: %s, want EIO", strerror(errno));

	/* space comes back: the dirty pages were kept, the next sync succeeds */
	cr_assert_eq(unlink(tm_path(&m, "small/filler")), 0);
	cr_assert_eq(msync(p, 4u << 20, MS_SYNC), 0, "msync after space was freed: %s",
		     strerror(errno));
	cr_assert_eq(fsync(fd), 0, "fsync after space was freed: %s", strerror(errno));
	unsigned char got[sizeof(data)];
	cr_assert_eq(file_read(tm_path(&m, "small/back.bin"), 70000, got, sizeof(got)), 0);
	long long d = first_diff(got, data, sizeof(data));
	cr_assert_eq(d, -1, "after the recovered fsync the backing file differs at %lld", d);
	munmap(p, 4u << 20);
	close(fd);
	cr_assert_eq(tm_stop(&m), 0, "%s", tm_stderr(&m));
	cr_assert(strstr(tm_stderr(&m), "No space left on device") != NULL,
		  "the daemon did not log the backing failure:\n%s", tm_stderr(&m));
}

Test(durability, unmount_with_unwritable_dirty_pages_exits_nonzero)
{
	full_backing();
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "writable,page_size=64K,buffer_size=512K"),
		     0, "%s", tm_stderr(&m));
	int fd = open(viewpath, O_RDWR);
	cr_assert_geq(fd, 0);
	char data[50000];
	memset(data, 0x42, sizeof(data));
	cr_assert_eq(pwrite(fd, data, sizeof(data), 1000), (ssize_t)sizeof(data));
	errno = 0;
	cr_assert_eq(close(fd), -1, "close (FLUSH) returned 0 though nothing could be written back");
	cr_assert_eq(errno, EIO, "close: %s", strerror(errno));
	int st = tm_stop(&m);
	cr_assert_neq(st, 0, "the daemon exited 0 though dirty bytes could not be written back:\n%s",
		      tm_stderr(&m));
	cr_assert_neq(st, -1, "the daemon did not exit");
	cr_assert(strstr(tm_stderr(&m), "write-back") != NULL, "no write-back error logged:\n%s",
		  tm_stderr(&m));
}

Test(durability, close_writes_back_mapped_and_written_bytes)
{
	const char *back = tm_path(&m, "data.bin");
	cr_assert_eq(pattern_file(back, SIZE, SEED), 0);
	write_text(tm_path(&m, "desc.txt"), "view v\ndata.bin 0 rest\n");
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "writable,page_size=64K,buffer_size=512K"),
		     0, "%s", tm_stderr(&m));
	int fd = open(viewpath, O_RDWR);
	cr_assert_geq(fd, 0);
	unsigned char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	static const char mapped[] = "written through the mapping", plain[] = "written with pwrite";
	memcpy(p + 3000000, mapped, sizeof(mapped));
	cr_assert_eq(pwrite(fd, plain, sizeof(plain), 5000000), (ssize_t)sizeof(plain));
	/* close with the mapping still in place: FLUSH writes back both */
	cr_assert_eq(close(fd), 0, "close: %s", strerror(errno));
	char got[64];
	cr_assert_eq(file_read(back, 3000000, got, sizeof(mapped)), 0);
	cr_assert(memcmp(got, mapped, sizeof(mapped)) == 0, "close returned 0 but mapped bytes are not "
		  "in the backing file");
	cr_assert_eq(file_read(back, 5000000, got, sizeof(plain)), 0);
	cr_assert(memcmp(got, plain, sizeof(plain)) == 0, "close returned 0 but written bytes are not "
		  "in the backing file");
	munmap(p, SIZE);
	cr_assert_eq(tm_stop(&m), 0, "%s", tm_stderr(&m));
}

static void munmap_handover(int by_signal)
{
	const char *back = tm_path(&m, "data.bin");
	cr_assert_eq(pattern_file(back, SIZE, SEED), 0);
	write_text(tm_path(&m, "desc.txt"), "view v\ndata.bin 0 rest\n");
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "writable,page_size=64K,buffer_size=8M"),
		     0, "%s", tm_stderr(&m));
	int fd = open(viewpath, O_RDWR);
	cr_assert_geq(fd, 0);
	unsigned char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	cr_assert_eq(close(fd), 0);
	/* written after the last close: no FLUSH will cover these */
	static const char late[] = "written after close, never synced";
	for (size_t off = 100000; off < SIZE; off += 1000003)
		memcpy(p + off, late, sizeof(late));
	cr_assert_eq(munmap(p, SIZE), 0); /* the kernel hands the dirty pages to the daemon */
	if (by_signal) { /* a clean stop with no user left */
		kill(m.pid, SIGTERM);
		cr_assert_eq(tm_wait(&m, 30000), 0, "%s", tm_stderr(&m));
	} else {
		cr_assert_eq(tm_stop(&m), 0, "%s", tm_stderr(&m));
	}
	for (size_t off = 100000; off < SIZE; off += 1000003) {
		char got[sizeof(late)];
		cr_assert_eq(file_read(back, off, got, sizeof(got)), 0);
		cr_assert(memcmp(got, late, sizeof(late)) == 0, "unmount lost the bytes at %zu", off);
	}
}

Test(durability, unmount_writes_back_what_munmap_handed_over)
{
	munmap_handover(0);
}

Test(durability, sigterm_writes_back_what_munmap_handed_over)
{
	munmap_handover(1);
}
