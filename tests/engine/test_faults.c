/*
 * Injected backing errors through the umapfs_sys seam: an EIO or a short
 * read fails that page's readers with -EIO, nothing is inserted or
 * zero-filled, and the next read succeeds; all waiters of a failing page
 * see the error; a failing buffered pread and a failing ops fill behave
 * the same; an open error names the file.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eutil.h"

#define PG 16384

enum mode { NONE, EIO_ONCE, SHORT_ONCE, EIO_SLOW };
static atomic_int mode;
static atomic_int injected;

static int inject_complete(void *arg, int is_write, int fd, uint64_t off, size_t len, int res)
{
	(void)arg, (void)fd, (void)len;
	if (is_write || off >= 2 * PG || off + len <= PG) /* only page 1 of the file */
		return res;
	switch (atomic_load(&mode)) {
	case EIO_ONCE:
		atomic_store(&mode, NONE);
		atomic_fetch_add(&injected, 1);
		return -EIO;
	case SHORT_ONCE:
		atomic_store(&mode, NONE);
		atomic_fetch_add(&injected, 1);
		return res > 0 ? res / 2 : res;
	case EIO_SLOW:
		usleep(50000);
		atomic_fetch_add(&injected, 1);
		return -EIO;
	default:
		return res;
	}
}

static ssize_t inject_pread(void *arg, int fd, void *buf, size_t len, off_t off)
{
	(void)arg;
	if (atomic_load(&mode) == EIO_ONCE && (uint64_t)off < 2 * PG && (uint64_t)off + len > PG) {
		atomic_store(&mode, NONE);
		atomic_fetch_add(&injected, 1);
		return -EIO;
	}
	ssize_t r = pread(fd, buf, len, off);
	return r < 0 ? -errno : r;
}

static int refuse_direct(void *arg, const char *path, int flags, mode_t m)
{
	(void)arg;
	if (flags & O_DIRECT)
		return -EINVAL;
	int fd = open(path, flags, m);
	return fd < 0 ? -errno : fd;
}

struct ffx {
	struct tdir d;
	struct umapfs_engine *e;
	struct umapfs_view *v;
	struct umapfs_sys sys;
};

static void ffx_init(struct ffx *f, bool buffered, uint64_t file_off)
{
	td_init(&f->d, "/var/tmp");
	make_file(td_path(&f->d, "f"), 8 * PG, 6);
	memset(&f->sys, 0, sizeof(f->sys));
	f->sys.complete = inject_complete;
	f->sys.pread = inject_pread;
	if (buffered)
		f->sys.open = refuse_direct;
	struct umapfs_engine_config c;
	umapfs_engine_config_init(&c);
	c.page_size = PG;
	c.buffer_size = 4 * PG;
	c.sys = &f->sys;
	c.log = tlog;
	cr_assert_eq(umapfs_engine_create(&c, &f->e), 0);
	struct umapfs_extent x = { .kind = UMAPFS_EXTENT_FILE, .path = td_path(&f->d, "f"),
				   .file_offset = file_off, .length = 6 * PG };
	struct umapfs_view_desc vd;
	umapfs_view_desc_init(&vd);
	vd.size = 6 * PG;
	vd.extents = &x;
	vd.n_extents = 1;
	cr_assert_eq(umapfs_view_create(f->e, &vd, &f->v), 0);
}

static void ffx_fini(struct ffx *f)
{
	cr_assert_eq(umapfs_view_destroy(f->v), 0);
	cr_assert_eq(umapfs_engine_destroy(f->e), 0);
	td_cleanup(&f->d);
}

static void fails_then_recovers(struct ffx *f, int m, uint64_t file_off)
{
	unsigned char b[100], want[100];
	cr_assert_eq(umapfs_view_read(f->v, b, 100, 0), 100); /* page 0 fine */
	atomic_store(&mode, m);
	cr_assert_eq(umapfs_view_read(f->v, b, 100, PG + 10), -EIO);
	cr_assert_eq(atomic_load(&injected), 1);
	struct umapfs_stats st = stats_of(f->e);
	cr_assert_eq(st.fill_errors, 1);
	cr_assert_eq(st.resident_bytes, PG, "the failed page was not inserted");
	cr_assert_gt(tlog_count("failed"), 0, "%s", tlog_text());
	/* a read spanning the failing page fails as a whole */
	/* and the engine recovers: the next read succeeds with the right bytes */
	cr_assert_eq(umapfs_view_read(f->v, b, 100, PG + 10), 100);
	pat_fill(want, 100, 6, file_off + PG + 10);
	cr_assert(memcmp(b, want, 100) == 0, "no zero fill, real bytes");
	cr_assert_eq(stats_of(f->e).fills, 2);
}

Test(engine, injected_eio_fails_the_read_then_recovers)
{
	struct ffx f;
	ffx_init(&f, false, 0);
	fails_then_recovers(&f, EIO_ONCE, 0);
	ffx_fini(&f);
}

Test(engine, injected_short_read_fails_the_read_then_recovers)
{
	struct ffx f;
	ffx_init(&f, false, 0);
	fails_then_recovers(&f, SHORT_ONCE, 0);
	ffx_fini(&f);
}

Test(engine, short_read_of_unaligned_extent_through_bounce)
{
	struct ffx f;
	ffx_init(&f, false, 1000); /* unaligned: read via an aligned bounce */
	fails_then_recovers(&f, SHORT_ONCE, 1000);
	ffx_fini(&f);
}

Test(engine, buffered_pread_error_fails_the_read_then_recovers)
{
	struct ffx f;
	ffx_init(&f, true, 0);
	fails_then_recovers(&f, EIO_ONCE, 0);
	ffx_fini(&f);
}

Test(engine, buffered_short_read_fails_the_read)
{
	struct ffx f;
	ffx_init(&f, true, 0);
	fails_then_recovers(&f, SHORT_ONCE, 0);
	ffx_fini(&f);
}

static void *read_page1(void *arg)
{
	unsigned char b[10];
	return (void *)(intptr_t)umapfs_view_read(arg, b, 10, PG + 5);
}

Test(engine, every_waiter_of_a_failing_page_gets_eio, .timeout = 30)
{
	struct ffx f;
	ffx_init(&f, false, 0);
	atomic_store(&mode, EIO_SLOW);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, read_page1, f.v);
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(t[i], &r);
		cr_assert_eq((intptr_t)r, -EIO);
	}
	/* concurrent readers shared fills: fewer injected reads than readers */
	cr_assert_lt(atomic_load(&injected), 4);
	atomic_store(&mode, NONE);
	unsigned char b[10];
	cr_assert_eq(umapfs_view_read(f.v, b, 10, PG + 5), 10);
	ffx_fini(&f);
}

Test(engine, multi_page_read_fails_on_a_bad_page)
{
	struct ffx f;
	ffx_init(&f, false, 0);
	unsigned char *b = malloc(4 * PG);
	atomic_store(&mode, EIO_ONCE);
	cr_assert_eq(umapfs_view_read(f.v, b, 3 * PG, 0), -EIO);
	cr_assert_eq(umapfs_view_read(f.v, b, 3 * PG, 0), 3 * PG);
	unsigned char *want = malloc(3 * PG);
	pat_fill(want, 3 * PG, 6, 0);
	cr_assert(memcmp(b, want, 3 * PG) == 0);
	free(b);
	free(want);
	ffx_fini(&f);
}

static int failing_fill(void *arg, uint64_t off, void *buf, size_t len)
{
	atomic_int *n = arg;
	if (off == PG && atomic_fetch_add(n, 1) == 0)
		return -EIO;
	memset(buf, 0x33, len);
	return 0;
}

Test(engine, ops_fill_error_fails_the_read)
{
	static atomic_int n;
	struct umapfs_engine *e = mk_engine(PG, 4 * PG, UMAPFS_POLICY_FIFO);
	struct umapfs_view_ops ops = { .struct_size = sizeof(ops), .fill = failing_fill };
	struct umapfs_view_desc vd;
	struct umapfs_view *v;
	umapfs_view_desc_init(&vd);
	vd.size = 3 * PG;
	vd.ops = &ops;
	vd.ops_arg = &n;
	cr_assert_eq(umapfs_view_create(e, &vd, &v), 0);
	unsigned char b[4];
	cr_assert_eq(umapfs_view_read(v, b, 4, PG), -EIO);
	cr_assert_eq(umapfs_view_read(v, b, 4, PG), 4);
	cr_assert_eq(b[0], 0x33);
	cr_assert_eq(umapfs_view_destroy(v), 0);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
}

static int eacces_open(void *arg, const char *path, int flags, mode_t m)
{
	(void)arg, (void)path, (void)flags, (void)m;
	return -EACCES;
}

Test(engine, open_error_names_the_file)
{
	struct tdir d;
	td_init(&d, "/var/tmp");
	make_file(td_path(&d, "secret"), PG, 1);
	struct umapfs_sys sys = { .open = eacces_open };
	struct umapfs_engine_config c;
	struct umapfs_engine *e;
	umapfs_engine_config_init(&c);
	c.page_size = PG;
	c.buffer_size = 4 * PG;
	c.sys = &sys;
	c.log = tlog;
	cr_assert_eq(umapfs_engine_create(&c, &e), 0);
	struct umapfs_extent x = { .kind = UMAPFS_EXTENT_FILE, .path = td_path(&d, "secret"), .length = PG };
	struct umapfs_view_desc vd;
	struct umapfs_view *v = NULL;
	umapfs_view_desc_init(&vd);
	vd.name = "sv";
	vd.size = PG;
	vd.extents = &x;
	vd.n_extents = 1;
	cr_assert_eq(umapfs_view_create(e, &vd, &v), -EACCES);
	cr_assert_null(v);
	cr_assert_eq(tlog_count("secret"), 1, "%s", tlog_text());
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	td_cleanup(&d);
}

Test(engine, without_io_uring_short_read_fails_then_recovers)
{
	setenv("UMAPFS_NO_IO_URING", "1", 1);
	struct ffx f;
	ffx_init(&f, false, 1000);
	fails_then_recovers(&f, SHORT_ONCE, 1000);
	ffx_fini(&f);
	cr_assert_gt(tlog_count("synchronous I/O"), 0);
}
