/*
 * Engine basics: configuration and parsing helpers, bad descriptions,
 * extent mapping across files with unaligned boundaries (checked byte for
 * byte against pread of the files), MEMORY and ZERO extents, the tmpfs
 * buffered fallback, and every page size from 4 KiB to 64 MiB.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "eutil.h"

Test(engine, parse_size)
{
	uint64_t v;
	cr_assert_eq(umapfs_parse_size("4096", &v), 0);
	cr_assert_eq(v, 4096);
	cr_assert_eq(umapfs_parse_size("64k", &v), 0);
	cr_assert_eq(v, 65536);
	cr_assert_eq(umapfs_parse_size("2G", &v), 0);
	cr_assert_eq(v, UINT64_C(2) << 30);
	cr_assert_eq(umapfs_parse_size("1MiB", &v), 0);
	cr_assert_eq(v, UINT64_C(1) << 20);
	cr_assert_eq(umapfs_parse_size(" 3 T ", &v), -EINVAL); /* blank inside */
	cr_assert_eq(umapfs_parse_size("3T", &v), 0);
	cr_assert_eq(v, UINT64_C(3) << 40);
	cr_assert_eq(umapfs_parse_size("", &v), -EINVAL);
	cr_assert_eq(umapfs_parse_size("abc", &v), -EINVAL);
	cr_assert_eq(umapfs_parse_size("12X", &v), -EINVAL);
	cr_assert_eq(umapfs_parse_size("-1", &v), -EINVAL);
	cr_assert_eq(umapfs_parse_size("99999999999999999999", &v), -ERANGE);
	cr_assert_eq(umapfs_parse_size("17179869184G", &v), -ERANGE);
}

Test(engine, policy_names)
{
	cr_assert_eq(umapfs_policy_parse("fifo"), UMAPFS_POLICY_FIFO);
	cr_assert_eq(umapfs_policy_parse("CLOCK"), UMAPFS_POLICY_CLOCK);
	cr_assert_eq(umapfs_policy_parse("Lru"), UMAPFS_POLICY_LRU);
	cr_assert_eq(umapfs_policy_parse("random"), -EINVAL);
	cr_assert_eq(umapfs_policy_parse(NULL), -EINVAL);
	cr_assert_str_eq(umapfs_policy_name(UMAPFS_POLICY_LRU), "lru");
	cr_assert_null(umapfs_policy_name(7));
	cr_assert_null(umapfs_policy_name(-1));
}

static int try_create(uint64_t page, uint64_t buffer, int policy, unsigned threads, unsigned depth)
{
	struct umapfs_engine_config c;
	struct umapfs_engine *e = (void *)1;
	umapfs_engine_config_init(&c);
	c.page_size = page;
	c.buffer_size = buffer;
	c.policy = policy;
	c.io_threads = threads;
	c.queue_depth = depth;
	c.log = tlog;
	int r = umapfs_engine_create(&c, &e);
	if (r == 0)
		cr_assert_eq(umapfs_engine_destroy(e), 0);
	else
		cr_assert_null(e, "failed create must leave *out NULL");
	return r;
}

Test(engine, bad_configs_rejected)
{
	cr_assert_eq(try_create(4096, 1 << 20, 0, 1, 8), 0);
	cr_assert_eq(try_create(UINT64_C(64) << 20, UINT64_C(64) << 20, 0, 1, 8), 0);
	cr_assert_eq(try_create(2048, 1 << 20, 0, 1, 8), -EINVAL);
	cr_assert_eq(try_create(12288, 1 << 20, 0, 1, 8), -EINVAL);      /* not a power of two */
	cr_assert_eq(try_create(UINT64_C(128) << 20, UINT64_C(1) << 30, 0, 1, 8), -EINVAL);
	cr_assert_eq(try_create(1 << 20, 1 << 19, 0, 1, 8), -EINVAL);    /* buffer < page */
	cr_assert_eq(try_create(4096, 1 << 20, 3, 1, 8), -EINVAL);       /* policy */
	cr_assert_eq(try_create(4096, 1 << 20, -1, 1, 8), -EINVAL);
	cr_assert_eq(try_create(4096, 1 << 20, 0, 0, 8), -EINVAL);       /* io_threads */
	cr_assert_eq(try_create(4096, 1 << 20, 0, 1, 0), -EINVAL);       /* queue depth */
	cr_assert_gt(tlog_count("page size"), 0, "reason logged: %s", tlog_text());
	cr_assert_eq(umapfs_engine_create(NULL, NULL), -EINVAL);
}

Test(engine, bad_views_rejected)
{
	struct tdir d;
	td_init(&d, "/var/tmp");
	make_file(td_path(&d, "a"), 10000, 1);
	struct umapfs_engine *e = mk_engine(4096, 1 << 20, UMAPFS_POLICY_FIFO);
	struct umapfs_view *v = NULL;
	struct umapfs_view_desc vd;
	struct umapfs_extent x[2] = {
		{ .kind = UMAPFS_EXTENT_FILE, .path = td_path(&d, "a"), .file_offset = 0, .length = 10000 },
		{ .kind = UMAPFS_EXTENT_ZERO, .length = 100 },
	};

	umapfs_view_desc_init(&vd);
	vd.name = "bad";
	vd.extents = x;
	vd.n_extents = 2;
	vd.size = 10099; /* lengths sum to 10100 */
	cr_assert_eq(umapfs_view_create(e, &vd, &v), -EINVAL);
	vd.size = 10101;
	cr_assert_eq(umapfs_view_create(e, &vd, &v), -EINVAL);
	vd.size = 10100;
	x[0].file_offset = 1; /* past the end of the file */
	cr_assert_eq(umapfs_view_create(e, &vd, &v), -ERANGE);
	cr_assert_gt(tlog_count("past the end"), 0);
	x[0].file_offset = 0;
	x[0].path = td_path(&d, "missing");
	cr_assert_eq(umapfs_view_create(e, &vd, &v), -ENOENT);
	cr_assert_gt(tlog_count("missing"), 0, "file named in the log: %s", tlog_text());
	x[0].path = td_path(&d, "a");
	vd.page_size = 8192 + 4096;
	cr_assert_eq(umapfs_view_create(e, &vd, &v), -EINVAL);
	vd.page_size = UINT64_C(2) << 20; /* larger than the buffer */
	cr_assert_eq(umapfs_view_create(e, &vd, &v), -EINVAL);
	vd.page_size = 0;
	x[1].kind = 9;
	cr_assert_eq(umapfs_view_create(e, &vd, &v), -EINVAL);
	x[1].kind = UMAPFS_EXTENT_MEMORY; /* without data */
	cr_assert_eq(umapfs_view_create(e, &vd, &v), -EINVAL);
	x[1].kind = UMAPFS_EXTENT_ZERO;
	vd.size = UMAPFS_MAX_VIEW_SIZE + 1;
	cr_assert_eq(umapfs_view_create(e, &vd, &v), -EINVAL);
	vd.size = 10100;
	struct umapfs_view_ops ops = { .struct_size = sizeof(ops) };
	vd.ops = &ops; /* both extents and ops */
	cr_assert_eq(umapfs_view_create(e, &vd, &v), -EINVAL);
	vd.extents = NULL;
	vd.n_extents = 0;
	cr_assert_eq(umapfs_view_create(e, &vd, &v), -EINVAL); /* ops without fill */
	cr_assert_null(v);

	/* The good one works, and the engine refuses to die under it. */
	vd.ops = NULL;
	vd.extents = x;
	vd.n_extents = 2;
	cr_assert_eq(umapfs_view_create(e, &vd, &v), 0);
	cr_assert_eq(umapfs_engine_destroy(e), -EBUSY);
	char buf[16];
	cr_assert_eq(umapfs_view_read(v, buf, 16, 10100), 0);
	cr_assert_eq(umapfs_view_read(v, buf, 16, 10090), 10);
	cr_assert_eq(umapfs_view_write(v, buf, 1, 0), -EROFS);
	struct umapfs_page_ref ref;
	cr_assert_eq(umapfs_view_pin(v, 10100, &ref), -EINVAL);
	cr_assert_eq(umapfs_view_destroy(v), 0);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	td_cleanup(&d);
}

/* A view stitched from 3 files, a header, zeros; expected bytes built with pread. */
struct stitched {
	struct tdir d;
	struct umapfs_extent x[8];
	size_t n;
	uint64_t size;
	unsigned char *expect;
	unsigned char header[1000];
};

static void stitched_init(struct stitched *s, const char *base)
{
	td_init(&s->d, base);
	make_file(td_path(&s->d, "a"), 300000, 11);
	make_file(td_path(&s->d, "b"), 200704, 12); /* 49 * 4096 */
	make_file(td_path(&s->d, "c"), 123457, 13);
	pat_fill(s->header, sizeof(s->header), 99, 0);
	struct umapfs_extent x[] = {
		{ .kind = UMAPFS_EXTENT_MEMORY, .length = sizeof(s->header), .data = s->header },
		{ .kind = UMAPFS_EXTENT_FILE, .path = td_path(&s->d, "a"), .file_offset = 123, .length = 50001 },
		{ .kind = UMAPFS_EXTENT_ZERO, .length = 7000 },
		{ .kind = UMAPFS_EXTENT_FILE, .path = td_path(&s->d, "b"), .file_offset = 4096, .length = 65536 },
		{ .kind = UMAPFS_EXTENT_FILE, .path = td_path(&s->d, "c"), .file_offset = 1, .length = 123456 },
		{ .kind = UMAPFS_EXTENT_FILE, .path = td_path(&s->d, "a"), .file_offset = 200000, .length = 100000 },
		{ .kind = UMAPFS_EXTENT_FILE, .path = td_path(&s->d, "b"), .file_offset = 0, .length = 200704 },
		{ .kind = UMAPFS_EXTENT_ZERO, .length = 3 },
	};
	s->n = sizeof(x) / sizeof(x[0]);
	s->size = 0;
	for (size_t i = 0; i < s->n; i++) {
		s->x[i] = x[i];
		s->size += x[i].length;
	}
	s->expect = malloc(s->size);
	cr_assert_not_null(s->expect);
	uint64_t pos = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (x[i].kind == UMAPFS_EXTENT_FILE)
			file_read(x[i].path, s->expect + pos, x[i].length, x[i].file_offset);
		else if (x[i].kind == UMAPFS_EXTENT_MEMORY)
			memcpy(s->expect + pos, x[i].data, x[i].length);
		else
			memset(s->expect + pos, 0, x[i].length);
		pos += x[i].length;
	}
}

static void check_stitched(const char *base, uint64_t page, uint64_t buffer,
			   const struct umapfs_sys *sys)
{
	struct stitched s;
	stitched_init(&s, base);
	struct umapfs_engine_config c;
	struct umapfs_engine *e;
	umapfs_engine_config_init(&c);
	c.page_size = page;
	c.buffer_size = buffer;
	c.log = tlog;
	c.sys = sys;
	cr_assert_eq(umapfs_engine_create(&c, &e), 0);
	struct umapfs_view_desc vd;
	struct umapfs_view *v;
	umapfs_view_desc_init(&vd);
	vd.name = "stitched";
	vd.size = s.size;
	vd.extents = s.x;
	vd.n_extents = s.n;
	int r = umapfs_view_create(e, &vd, &v);
	cr_assert_eq(r, 0, "view_create: %s; log: %s", strerror(-r), tlog_text());
	cr_assert_eq(umapfs_view_size(v), s.size);
	cr_assert_eq(umapfs_view_page_size(v), page);
	cr_assert_str_eq(umapfs_view_name(v), "stitched");

	unsigned char *got = malloc(s.size + 64);
	/* whole view in one read, then in odd pieces, then random ranges */
	cr_assert_eq(umapfs_view_read(v, got, s.size + 64, 0), (ssize_t)s.size);
	cr_assert(memcmp(got, s.expect, s.size) == 0, "whole-view bytes differ");
	for (uint64_t off = 0; off < s.size; off += 7777) {
		size_t n = 7777;
		ssize_t want = (ssize_t)(s.size - off < n ? s.size - off : n);
		cr_assert_eq(umapfs_view_read(v, got, n, off), want);
		cr_assert(memcmp(got, s.expect + off, (size_t)want) == 0, "bytes differ at %lu",
			  (unsigned long)off);
	}
	srand(7);
	for (int i = 0; i < 300; i++) {
		uint64_t off = (uint64_t)rand() % s.size;
		size_t n = (size_t)(rand() % 20000) + 1;
		ssize_t got_n = umapfs_view_read(v, got, n, off);
		ssize_t want = (ssize_t)(s.size - off < n ? s.size - off : n);
		cr_assert_eq(got_n, want);
		cr_assert(memcmp(got, s.expect + off, (size_t)want) == 0, "random read differs at %lu+%zu",
			  (unsigned long)off, n);
	}
	struct umapfs_stats st = stats_of(e);
	cr_assert_leq(st.resident_bytes, buffer);
	cr_assert_eq(st.fill_errors, 0);
	cr_assert_gt(st.fills, 0);
	cr_assert_eq(umapfs_view_destroy(v), 0);
	cr_assert_eq(stats_of(e).resident_bytes, 0, "destroy drops the pages");
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	free(got);
	free(s.expect);
	td_cleanup(&s.d);
}

Test(engine, extents_4k_pages_small_buffer) { check_stitched("/var/tmp", 4096, 4 * 4096, NULL); }
Test(engine, extents_64k_pages) { check_stitched("/var/tmp", 65536, 4 * 65536, NULL); }
Test(engine, extents_1m_pages_whole_view) { check_stitched("/var/tmp", 1 << 20, 4 << 20, NULL); }

/*
 * tmpfs: before Linux 6.6 it refuses O_DIRECT (open fails with EINVAL) and
 * the engine falls back to buffered reads; newer kernels accept O_DIRECT.
 * Either way the bytes must be right, and a fallback is logged once per file.
 */
Test(engine, tmpfs_files)
{
	check_stitched("/dev/shm", 16384, 8 * 16384, NULL);
	int n = tlog_count("refuses O_DIRECT");
	cr_assert(n == 0 || n == 3, "log: %s", tlog_text());
}

/* A file system that refuses O_DIRECT at open (as tmpfs did before 6.6). */
static int refuse_direct_open(void *arg, const char *path, int flags, mode_t mode)
{
	int *opens = arg;
	if (flags & O_DIRECT)
		return -EINVAL;
	__atomic_fetch_add(opens, 1, __ATOMIC_RELAXED);
	int fd = open(path, flags, mode);
	return fd < 0 ? -errno : fd;
}

static ssize_t counting_pread(void *arg, int fd, void *buf, size_t len, off_t off)
{
	int *n = (int *)arg + 1;
	__atomic_fetch_add(n, 1, __ATOMIC_RELAXED);
	ssize_t r = pread(fd, buf, len, off);
	return r < 0 ? -errno : r;
}

Test(engine, odirect_refused_falls_back_to_buffered_once_per_file)
{
	int counts[2] = { 0, 0 };
	struct umapfs_sys sys = { .open = refuse_direct_open, .pread = counting_pread, .arg = counts };
	check_stitched("/var/tmp", 16384, 8 * 16384, &sys);
	/* the engine is gone with its memory of the notice; a fresh one says it again */
	cr_assert_eq(tlog_count("refuses O_DIRECT"), 3, "one line per file; log: %s", tlog_text());
	cr_assert_eq(counts[0], 3, "each file opened once");
	cr_assert_gt(counts[1], 0, "buffered reads went through the seam");
}

Test(engine, memory_and_zero_only)
{
	static unsigned char blob[5000];
	pat_fill(blob, sizeof(blob), 5, 0);
	struct umapfs_extent x[] = {
		{ .kind = UMAPFS_EXTENT_ZERO, .length = 10000 },
		{ .kind = UMAPFS_EXTENT_MEMORY, .length = 5000, .data = blob },
		{ .kind = UMAPFS_EXTENT_ZERO, .length = 1 },
	};
	struct umapfs_engine *e = mk_engine(4096, 8192, UMAPFS_POLICY_FIFO);
	struct umapfs_view_desc vd;
	struct umapfs_view *v;
	umapfs_view_desc_init(&vd);
	vd.size = 15001;
	vd.extents = x;
	vd.n_extents = 3;
	cr_assert_eq(umapfs_view_create(e, &vd, &v), 0);
	memset(blob, 0xee, sizeof(blob)); /* the engine made its own copy */
	unsigned char got[15001], want[15001];
	memset(want, 0, sizeof(want));
	pat_fill(want + 10000, 5000, 5, 0);
	cr_assert_eq(umapfs_view_read(v, got, sizeof(got), 0), 15001);
	cr_assert(memcmp(got, want, sizeof(got)) == 0);
	cr_assert_eq(umapfs_view_read(v, got, 100, 14950), 51);
	cr_assert(memcmp(got, want + 14950, 51) == 0);
	cr_assert_eq(stats_of(e).bytes_read, 0, "no backing I/O for memory and zeros");
	cr_assert_eq(umapfs_view_destroy(v), 0);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
}

/* Every page size: a 3-page-and-a-bit file, read whole and at page boundaries. */
static void page_size_case(uint64_t page)
{
	struct tdir d;
	td_init(&d, "/var/tmp");
	size_t tail = (size_t)page / 2 + 7;
	uint64_t size = 3 * page + tail;
	make_file(td_path(&d, "f"), size, page);
	struct umapfs_engine *e = mk_engine(page, 2 * page, UMAPFS_POLICY_FIFO);
	struct umapfs_extent x = { .kind = UMAPFS_EXTENT_FILE, .path = td_path(&d, "f"), .length = size };
	struct umapfs_view_desc vd;
	struct umapfs_view *v;
	umapfs_view_desc_init(&vd);
	vd.size = size;
	vd.extents = &x;
	vd.n_extents = 1;
	cr_assert_eq(umapfs_view_create(e, &vd, &v), 0);
	unsigned char *got = malloc(size), *want = malloc(size);
	cr_assert(got && want);
	pat_fill(want, size, page, 0);
	for (uint64_t p = 0; p * page < size; p++) {
		uint64_t off = p > 0 ? p * page - 10 : 0;
		size_t n = (size_t)(size - off < page + 20 ? size - off : page + 20);
		cr_assert_eq(umapfs_view_read(v, got, n, off), (ssize_t)n);
		cr_assert(memcmp(got, want + off, n) == 0, "page %lu", (unsigned long)p);
	}
	struct umapfs_page_ref ref;
	cr_assert_eq(umapfs_view_pin(v, size - 1, &ref), 0);
	cr_assert_eq(ref.offset, 3 * page);
	cr_assert_eq(ref.len, tail);
	cr_assert(memcmp(ref.data, want + 3 * page, tail) == 0);
	cr_assert_eq((uintptr_t)ref.data % 4096, 0, "frames are aligned");
	umapfs_view_unpin(v, &ref, 0);
	struct umapfs_stats st = stats_of(e);
	cr_assert_leq(st.resident_bytes, 2 * page);
	cr_assert_eq(st.page_size, page);
	cr_assert_eq(umapfs_view_destroy(v), 0);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	free(got);
	free(want);
	td_cleanup(&d);
}

Test(engine, page_size_4k) { page_size_case(4096); }
Test(engine, page_size_64k) { page_size_case(65536); }
Test(engine, page_size_1m) { page_size_case(1 << 20); }
Test(engine, page_size_64m, .timeout = 60) { page_size_case(UINT64_C(64) << 20); }

Test(engine, stats_format)
{
	struct umapfs_stats st;
	memset(&st, 0, sizeof(st));
	st.hits = 42;
	st.fill_ns_p99 = 7;
	char small[8];
	int need = umapfs_stats_format(&st, small, sizeof(small));
	cr_assert_gt(need, (int)sizeof(small));
	char *buf = malloc((size_t)need + 1);
	cr_assert_eq(umapfs_stats_format(&st, buf, (size_t)need + 1), need);
	cr_assert_not_null(strstr(buf, "hits 42\n"));
	cr_assert_not_null(strstr(buf, "fill_ns_p99 7\n"));
	cr_assert_not_null(strstr(buf, "resident_bytes 0\n"));
	int lines = 0;
	for (char *p = buf; *p; p++)
		lines += *p == '\n';
	cr_assert_eq(lines, 18, "one line per field");
	free(buf);
}

/* The largest view: 2^48 bytes, zeros with a file at the very end. */
Test(engine, view_of_2_pow_48_bytes)
{
	struct tdir d;
	td_init(&d, "/var/tmp");
	make_file(td_path(&d, "tail"), 10000, 42);
	struct umapfs_extent x[] = {
		{ .kind = UMAPFS_EXTENT_ZERO, .length = UMAPFS_MAX_VIEW_SIZE - 10000 },
		{ .kind = UMAPFS_EXTENT_FILE, .path = td_path(&d, "tail"), .length = 10000 },
	};
	struct umapfs_engine *e = mk_engine(1 << 20, 4 << 20, UMAPFS_POLICY_FIFO);
	struct umapfs_view_desc vd;
	struct umapfs_view *v;
	umapfs_view_desc_init(&vd);
	vd.size = UMAPFS_MAX_VIEW_SIZE;
	vd.extents = x;
	vd.n_extents = 2;
	cr_assert_eq(umapfs_view_create(e, &vd, &v), 0);
	unsigned char b[20000], want[20000];
	memset(want, 0, sizeof(want));
	pat_fill(want + 10000, 10000, 42, 0);
	cr_assert_eq(umapfs_view_read(v, b, 30000, UMAPFS_MAX_VIEW_SIZE - 20000), 20000);
	cr_assert(memcmp(b, want, 20000) == 0);
	cr_assert_eq(umapfs_view_read(v, b, 100, UMAPFS_MAX_VIEW_SIZE / 2), 100);
	cr_assert_eq(b[0] | b[99], 0);
	cr_assert_eq(umapfs_view_destroy(v), 0);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	td_cleanup(&d);
}

/* Two views over one file that refuses O_DIRECT: the notice comes once. */
Test(engine, odirect_notice_once_per_engine)
{
	struct tdir d;
	td_init(&d, "/var/tmp");
	make_file(td_path(&d, "f"), 8192, 1);
	int counts[2] = { 0, 0 };
	struct umapfs_sys sys = { .open = refuse_direct_open, .pread = counting_pread, .arg = counts };
	struct umapfs_engine_config c;
	struct umapfs_engine *e;
	umapfs_engine_config_init(&c);
	c.page_size = 4096;
	c.buffer_size = 1 << 20;
	c.log = tlog;
	c.sys = &sys;
	cr_assert_eq(umapfs_engine_create(&c, &e), 0);
	struct umapfs_extent x = { .kind = UMAPFS_EXTENT_FILE, .path = td_path(&d, "f"), .length = 8192 };
	struct umapfs_view_desc vd;
	struct umapfs_view *v1, *v2;
	umapfs_view_desc_init(&vd);
	vd.size = 8192;
	vd.extents = &x;
	vd.n_extents = 1;
	cr_assert_eq(umapfs_view_create(e, &vd, &v1), 0);
	cr_assert_eq(umapfs_view_create(e, &vd, &v2), 0);
	cr_assert_eq(tlog_count("refuses O_DIRECT"), 1, "%s", tlog_text());
	cr_assert_eq(umapfs_view_destroy(v1), 0);
	cr_assert_eq(umapfs_view_destroy(v2), 0);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	td_cleanup(&d);
}

/* Without io_uring (a sandbox that forbids it, or UMAPFS_NO_IO_URING=1) the
 * same reads go synchronously through the seam. */
Test(engine, without_io_uring_extents)
{
	setenv("UMAPFS_NO_IO_URING", "1", 1);
	check_stitched("/var/tmp", 16384, 8 * 16384, NULL);
	cr_assert_gt(tlog_count("synchronous I/O"), 0, "%s", tlog_text());
}
