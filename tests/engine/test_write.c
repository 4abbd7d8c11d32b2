/*
 * Writable views: writes land in the backing files after flush (checked
 * with pread), on eviction and on destroy; unaligned extents use the
 * buffered twin for their edges; whole-page writes skip the fill; the
 * `evicting` hook can add bytes or keep a page; a failed write-back keeps
 * the page dirty and returns the error; ops views write back through ops.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eutil.h"

struct wfx {
	struct tdir d;
	struct umapfs_engine *e;
	struct umapfs_view *v;
	struct umapfs_extent x[5];
	uint64_t size;
	unsigned char *model;
	unsigned char header[3000];
};

static void wfx_init(struct wfx *f, uint64_t page, uint64_t buffer, const struct umapfs_sys *sys)
{
	td_init(&f->d, "/var/tmp");
	make_file(td_path(&f->d, "a"), 400000, 1);
	make_file(td_path(&f->d, "b"), 300000, 2);
	pat_fill(f->header, sizeof(f->header), 3, 0);
	struct umapfs_extent x[] = {
		{ .kind = UMAPFS_EXTENT_MEMORY, .length = sizeof(f->header), .data = f->header },
		{ .kind = UMAPFS_EXTENT_FILE, .path = td_path(&f->d, "a"), .file_offset = 777, .length = 200001 },
		{ .kind = UMAPFS_EXTENT_FILE, .path = td_path(&f->d, "b"), .file_offset = 8192, .length = 131072 },
		{ .kind = UMAPFS_EXTENT_FILE, .path = td_path(&f->d, "a"), .file_offset = 201000, .length = 150000 },
		{ .kind = UMAPFS_EXTENT_FILE, .path = td_path(&f->d, "b"), .file_offset = 150000, .length = 150000 },
	};
	f->size = 0;
	for (int i = 0; i < 5; i++) {
		f->x[i] = x[i];
		f->size += x[i].length;
	}
	f->model = malloc(f->size);
	uint64_t pos = 0;
	for (int i = 0; i < 5; i++) {
		if (x[i].kind == UMAPFS_EXTENT_FILE)
			file_read(x[i].path, f->model + pos, x[i].length, x[i].file_offset);
		else
			memcpy(f->model + pos, x[i].data, x[i].length);
		pos += x[i].length;
	}
	struct umapfs_engine_config c;
	umapfs_engine_config_init(&c);
	c.page_size = page;
	c.buffer_size = buffer;
	c.log = tlog;
	c.sys = sys;
	cr_assert_eq(umapfs_engine_create(&c, &f->e), 0);
	struct umapfs_view_desc vd;
	umapfs_view_desc_init(&vd);
	vd.name = "w";
	vd.size = f->size;
	vd.flags = UMAPFS_VIEW_WRITABLE;
	vd.extents = f->x;
	vd.n_extents = 5;
	int r = umapfs_view_create(f->e, &vd, &f->v);
	cr_assert_eq(r, 0, "%s", tlog_text());
	cr_assert_eq(umapfs_view_writable(f->v), 1);
}

/* The files' bytes where the extents say, against the model. */
static void check_files(struct wfx *f)
{
	uint64_t pos = 0;
	for (int i = 0; i < 5; i++) {
		if (f->x[i].kind == UMAPFS_EXTENT_FILE) {
			unsigned char *b = malloc(f->x[i].length);
			file_read(f->x[i].path, b, f->x[i].length, f->x[i].file_offset);
			for (uint64_t k = 0; k < f->x[i].length; k++)
				cr_assert_eq(b[k], f->model[pos + k], "extent %d byte %lu (view %lu)", i,
					     (unsigned long)k, (unsigned long)(pos + k));
			free(b);
		}
		pos += f->x[i].length;
	}
}

static void check_view(struct wfx *f)
{
	unsigned char *b = malloc(f->size);
	cr_assert_eq(umapfs_view_read(f->v, b, f->size, 0), (ssize_t)f->size);
	cr_assert(memcmp(b, f->model, f->size) == 0, "view bytes differ from the model");
	free(b);
}

static void scribble(struct wfx *f, int n, unsigned seed, size_t maxlen)
{
	unsigned char *b = malloc(maxlen);
	for (int i = 0; i < n; i++) {
		uint64_t off = (uint64_t)rand_r(&seed) % f->size;
		size_t len = (size_t)rand_r(&seed) % maxlen + 1;
		if (len > f->size - off)
			len = (size_t)(f->size - off);
		pat_fill(b, len, 1000 + (unsigned)i, off);
		cr_assert_eq(umapfs_view_write(f->v, b, len, off), (ssize_t)len);
		memcpy(f->model + off, b, len);
	}
	free(b);
}

static void wfx_fini(struct wfx *f)
{
	cr_assert_eq(umapfs_engine_destroy(f->e), 0);
	free(f->model);
	td_cleanup(&f->d);
}

Test(engine, write_flush_round_trip)
{
	struct wfx f;
	wfx_init(&f, 16384, 64 * 16384, NULL);
	scribble(&f, 200, 1, 20000);
	struct umapfs_stats st = stats_of(f.e);
	cr_assert_gt(st.dirty_bytes, 0);
	cr_assert_eq(st.evictions, 0, "everything fits: only flush writes back");
	cr_assert_eq(umapfs_view_flush(f.v), 0);
	st = stats_of(f.e);
	cr_assert_eq(st.dirty_bytes, 0);
	cr_assert_gt(st.writebacks, 0);
	cr_assert_gt(st.bytes_written, 0);
	check_files(&f);
	check_view(&f);
	/* a second flush has nothing to do */
	uint64_t wb = st.writebacks;
	cr_assert_eq(umapfs_view_flush(f.v), 0);
	cr_assert_eq(stats_of(f.e).writebacks, wb);
	cr_assert_eq(umapfs_view_destroy(f.v), 0);
	wfx_fini(&f);
}

Test(engine, write_back_on_eviction)
{
	struct wfx f;
	wfx_init(&f, 4096, 5 * 4096, NULL);
	scribble(&f, 300, 2, 9000);
	struct umapfs_stats st = stats_of(f.e);
	cr_assert_gt(st.evictions, 0);
	cr_assert_gt(st.writebacks, 0, "evicted dirty pages were written back");
	cr_assert_leq(st.resident_bytes, 5 * 4096);
	check_view(&f); /* re-reads evicted pages from the files */
	cr_assert_eq(umapfs_view_flush(f.v), 0);
	check_files(&f);
	cr_assert_eq(umapfs_view_destroy(f.v), 0);
	wfx_fini(&f);
}

Test(engine, write_back_on_destroy)
{
	struct wfx f;
	wfx_init(&f, 65536, 32 * 65536, NULL);
	scribble(&f, 100, 3, 70000);
	cr_assert_gt(stats_of(f.e).dirty_bytes, 0);
	cr_assert_eq(umapfs_view_destroy(f.v), 0);
	check_files(&f);
	cr_assert_eq(stats_of(f.e).dirty_bytes, 0);
	wfx_fini(&f);
}

Test(engine, whole_page_write_skips_the_fill)
{
	struct wfx f;
	wfx_init(&f, 16384, 8 * 16384, NULL);
	unsigned char b[3 * 16384];
	pat_fill(b, sizeof(b), 77, 0);
	cr_assert_eq(umapfs_view_write(f.v, b, sizeof(b), 2 * 16384), (ssize_t)sizeof(b));
	memcpy(f.model + 2 * 16384, b, sizeof(b));
	struct umapfs_stats st = stats_of(f.e);
	cr_assert_eq(st.bytes_read, 0, "no backing read for whole-page writes");
	cr_assert_eq(st.fills, 0);
	cr_assert_eq(st.dirty_bytes, sizeof(b));
	/* a partial write does read the page */
	cr_assert_eq(umapfs_view_write(f.v, b, 10, 10 * 16384 + 5), 10);
	memcpy(f.model + 10 * 16384 + 5, b, 10);
	cr_assert_eq(stats_of(f.e).fills, 1);
	cr_assert_eq(umapfs_view_flush(f.v), 0);
	check_files(&f);
	cr_assert_eq(umapfs_view_write(f.v, b, 1, f.size), -EFBIG);
	cr_assert_eq(umapfs_view_write(f.v, b, 100, f.size - 10), 10);
	memcpy(f.model + f.size - 10, b, 10);
	cr_assert_eq(umapfs_view_destroy(f.v), 0);
	check_files(&f);
	wfx_fini(&f);
}

Test(engine, pin_unpin_dirty)
{
	struct wfx f;
	wfx_init(&f, 4096, 4 * 4096, NULL);
	struct umapfs_page_ref r;
	cr_assert_eq(umapfs_view_pin(f.v, 5000, &r), 0);
	cr_assert_eq(r.offset, 4096);
	memset(r.data, 0x5a, 100);
	memset(f.model + 4096, 0x5a, 100);
	umapfs_view_unpin(f.v, &r, 1);
	cr_assert_null(r.priv);
	cr_assert_eq(umapfs_view_flush(f.v), 0);
	check_files(&f);
	cr_assert_eq(umapfs_view_destroy(f.v), 0);
	wfx_fini(&f);
}

/* `evicting` copies newer bytes in (returns 1), or keeps a page (-EBUSY). */
static atomic_int keep_page = -1;
static int hook_evicting(void *arg, struct umapfs_view *v, uint64_t off, void *data, size_t len)
{
	struct wfx *f = arg;
	(void)v;
	if ((int)(off / 4096) == atomic_load(&keep_page))
		return -EBUSY;
	if (off == 0) {
		memset(data, 0x11, 16);
		memset(f->model, 0x11, 16);
		return 1;
	}
	(void)len;
	return 0;
}

Test(engine, evicting_hook_adds_bytes_and_keeps_pages)
{
	struct wfx f;
	wfx_init(&f, 4096, 3 * 4096, NULL);
	struct umapfs_view_hooks h = { .struct_size = sizeof(h), .arg = &f, .evicting = hook_evicting };
	cr_assert_eq(umapfs_view_set_hooks(f.v, &h), 0);
	unsigned char b[8];
	atomic_store(&keep_page, 1);
	for (int p = 0; p < 8; p++)
		cr_assert_eq(umapfs_view_read(f.v, b, 8, (uint64_t)p * 4096 + 3000), 8);
	/* page 1 was kept: a read of it is a hit */
	struct umapfs_stats st = stats_of(f.e);
	cr_assert_eq(umapfs_view_read(f.v, b, 8, 4096 + 3000), 8);
	cr_assert_eq(stats_of(f.e).hits, st.hits + 1);
	cr_assert_geq(st.writebacks, 1, "page 0's hook bytes were written back");
	atomic_store(&keep_page, -1);
	cr_assert_eq(umapfs_view_set_hooks(f.v, NULL), 0);
	cr_assert_eq(umapfs_view_destroy(f.v), 0);
	check_files(&f);
	wfx_fini(&f);
}

/* ---- failed write-back ---- */
static atomic_bool fail_writes;
static int wb_complete(void *arg, int is_write, int fd, uint64_t off, size_t len, int res)
{
	(void)arg, (void)fd, (void)off, (void)len;
	if (is_write && atomic_load(&fail_writes))
		return -EIO;
	return res;
}

Test(engine, failed_write_back_keeps_the_page_dirty)
{
	struct wfx f;
	struct umapfs_sys sys = { .complete = wb_complete };
	wfx_init(&f, 16384, 64 * 16384, &sys); /* holds the whole view */
	scribble(&f, 20, 9, 5000);
	uint64_t dirty = stats_of(f.e).dirty_bytes;
	atomic_store(&fail_writes, true);
	cr_assert_eq(umapfs_view_flush(f.v), -EIO);
	struct umapfs_stats st = stats_of(f.e);
	cr_assert_gt(st.writeback_errors, 0);
	cr_assert_eq(st.dirty_bytes, dirty, "pages stay dirty");
	check_view(&f); /* and resident with the new bytes */
	cr_assert_gt(tlog_count("write-back"), 0);
	atomic_store(&fail_writes, false);
	cr_assert_eq(umapfs_view_flush(f.v), 0);
	cr_assert_eq(stats_of(f.e).dirty_bytes, 0);
	check_files(&f);
	/* failing at destroy: the error is returned, the view is gone anyway */
	scribble(&f, 5, 10, 100);
	atomic_store(&fail_writes, true);
	cr_assert_eq(umapfs_view_destroy(f.v), -EIO);
	atomic_store(&fail_writes, false);
	cr_assert_eq(stats_of(f.e).dirty_bytes, 0);
	cr_assert_eq(stats_of(f.e).resident_bytes, 0);
	wfx_fini(&f);
}

Test(engine, failed_write_back_on_eviction_fails_the_reader)
{
	struct wfx f;
	struct umapfs_sys sys = { .complete = wb_complete };
	wfx_init(&f, 4096, 2 * 4096, &sys);
	unsigned char b[4096];
	memset(b, 1, sizeof(b));
	cr_assert_eq(umapfs_view_write(f.v, b, 4096, 0), 4096);
	cr_assert_eq(umapfs_view_write(f.v, b, 4096, 4096), 4096);
	atomic_store(&fail_writes, true);
	/* the buffer is two dirty pages that cannot be written back */
	cr_assert_eq(umapfs_view_read(f.v, b, 10, 10 * 4096), -EIO);
	cr_assert_eq(stats_of(f.e).dirty_bytes, 2 * 4096);
	atomic_store(&fail_writes, false);
	cr_assert_eq(umapfs_view_read(f.v, b, 10, 10 * 4096), 10);
	memset(f.model, 1, 2 * 4096);
	cr_assert_eq(umapfs_view_destroy(f.v), 0);
	check_files(&f);
	wfx_fini(&f);
}

/* ---- ops views ---- */
struct mem_store {
	unsigned char *bytes;
	atomic_int fills, writebacks, syncs, released;
};

static int ms_fill(void *arg, uint64_t off, void *buf, size_t len)
{
	struct mem_store *m = arg;
	memcpy(buf, m->bytes + off, len);
	atomic_fetch_add(&m->fills, 1);
	return 0;
}
static int ms_writeback(void *arg, uint64_t off, const void *buf, size_t len)
{
	struct mem_store *m = arg;
	memcpy(m->bytes + off, buf, len);
	atomic_fetch_add(&m->writebacks, 1);
	return 0;
}
static int ms_sync(void *arg)
{
	atomic_fetch_add(&((struct mem_store *)arg)->syncs, 1);
	return 0;
}
static void ms_release(void *arg)
{
	atomic_fetch_add(&((struct mem_store *)arg)->released, 1);
}

Test(engine, ops_view_fill_writeback_sync_release)
{
	static struct mem_store m;
	uint64_t size = 10 * 4096 + 100;
	m.bytes = malloc(size);
	pat_fill(m.bytes, size, 8, 0);
	struct umapfs_engine *e = mk_engine(4096, 4 * 4096, UMAPFS_POLICY_FIFO);
	struct umapfs_view_ops ops = { .struct_size = sizeof(ops), .fill = ms_fill,
				       .writeback = ms_writeback, .sync = ms_sync, .release = ms_release };
	struct umapfs_view_desc vd;
	struct umapfs_view *v;
	umapfs_view_desc_init(&vd);
	vd.size = size;
	vd.ops = &ops;
	vd.ops_arg = &m;
	vd.flags = UMAPFS_VIEW_WRITABLE;
	cr_assert_eq(umapfs_view_create(e, &vd, &v), 0);
	unsigned char b[200], want[200];
	cr_assert_eq(umapfs_view_read(v, b, 200, size - 150), 150);
	pat_fill(want, 150, 8, size - 150);
	cr_assert(memcmp(b, want, 150) == 0);
	memset(b, 0x77, 200);
	cr_assert_eq(umapfs_view_write(v, b, 200, 4000), 200);
	cr_assert_eq(umapfs_view_flush(v), 0);
	cr_assert_eq(atomic_load(&m.syncs), 1);
	cr_assert_geq(atomic_load(&m.writebacks), 2);
	for (int i = 0; i < 200; i++)
		cr_assert_eq(m.bytes[4000 + i], 0x77);
	cr_assert_eq(umapfs_view_destroy(v), 0);
	cr_assert_eq(atomic_load(&m.released), 1);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	free(m.bytes);
}

Test(engine, writes_into_zero_extents_are_discarded_with_a_warning)
{
	struct tdir d;
	td_init(&d, "/var/tmp");
	make_file(td_path(&d, "f"), 8192, 4);
	struct umapfs_engine *e = mk_engine(4096, 4 * 4096, UMAPFS_POLICY_FIFO);
	struct umapfs_extent x[] = {
		{ .kind = UMAPFS_EXTENT_FILE, .path = td_path(&d, "f"), .length = 8192 },
		{ .kind = UMAPFS_EXTENT_ZERO, .length = 4096 },
	};
	struct umapfs_view_desc vd;
	struct umapfs_view *v;
	umapfs_view_desc_init(&vd);
	vd.size = 3 * 4096;
	vd.extents = x;
	vd.n_extents = 2;
	vd.flags = UMAPFS_VIEW_WRITABLE;
	cr_assert_eq(umapfs_view_create(e, &vd, &v), 0);
	unsigned char b[4096];
	memset(b, 9, sizeof(b));
	cr_assert_eq(umapfs_view_write(v, b, 4096, 8192), 4096);
	cr_assert_eq(umapfs_view_flush(v), 0);
	cr_assert_eq(tlog_count("zero extent"), 1, "%s", tlog_text());
	cr_assert_eq(umapfs_view_destroy(v), 0);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	td_cleanup(&d);
}

/* Aligned pieces go out with O_DIRECT from the frame; unaligned edges buffered. */
static atomic_int direct_writes, edge_writes;
static int count_writes(void *arg, int is_write, int fd, uint64_t off, size_t len, int res)
{
	(void)arg, (void)fd;
	if (is_write) {
		if (off % 4096 == 0 && len % 4096 == 0)
			atomic_fetch_add(&direct_writes, 1);
		else
			atomic_fetch_add(&edge_writes, 1);
	}
	return res;
}

static void direct_middle_case(void)
{
	struct tdir d;
	td_init(&d, "/var/tmp");
	make_file(td_path(&d, "f"), 1 << 20, 31);
	struct umapfs_sys sys = { .complete = count_writes };
	struct umapfs_engine_config c;
	struct umapfs_engine *e;
	umapfs_engine_config_init(&c);
	c.page_size = 65536;
	c.buffer_size = 8 * 65536;
	c.sys = &sys;
	c.log = tlog;
	cr_assert_eq(umapfs_engine_create(&c, &e), 0);
	/* view offset 100 <-> file offset 4196: congruent mod 4 KiB, not aligned */
	struct umapfs_extent x[] = {
		{ .kind = UMAPFS_EXTENT_ZERO, .length = 100 },
		{ .kind = UMAPFS_EXTENT_FILE, .path = td_path(&d, "f"), .file_offset = 4196, .length = 300000 },
	};
	struct umapfs_view_desc vd;
	struct umapfs_view *v;
	umapfs_view_desc_init(&vd);
	vd.size = 300100;
	vd.extents = x;
	vd.n_extents = 2;
	vd.flags = UMAPFS_VIEW_WRITABLE;
	cr_assert_eq(umapfs_view_create(e, &vd, &v), 0);
	unsigned char *b = malloc(200000), *got = malloc(300000);
	pat_fill(b, 200000, 32, 0);
	cr_assert_eq(umapfs_view_write(v, b, 200000, 50000), 200000);
	cr_assert_eq(umapfs_view_flush(v), 0);
	cr_assert_gt(atomic_load(&direct_writes), 0, "aligned middles go O_DIRECT");
	cr_assert_gt(atomic_load(&edge_writes), 0, "unaligned edges go buffered");
	/* file bytes: pattern 31 except [50000-100+4196, +200000) = pattern 32 */
	file_read(td_path(&d, "f"), got, 300000, 4196);
	for (size_t i = 0; i < 300000; i++) {
		uint64_t vo = i + 100;
		unsigned char want = (vo >= 50000 && vo < 250000) ? b[vo - 50000] : pat_byte(31, 4196 + i);
		cr_assert_eq(got[i], want, "file byte %zu", i);
	}
	/* the bytes around the extent are untouched */
	unsigned char edge[200];
	file_read(td_path(&d, "f"), edge, 100, 4096);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(edge[i], pat_byte(31, 4096 + (uint64_t)i));
	cr_assert_eq(umapfs_view_destroy(v), 0);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	free(b);
	free(got);
	td_cleanup(&d);
}

Test(engine, write_back_direct_middle_buffered_edges) { direct_middle_case(); }

Test(engine, write_back_without_io_uring)
{
	setenv("UMAPFS_NO_IO_URING", "1", 1);
	direct_middle_case();
	cr_assert_gt(tlog_count("synchronous I/O"), 0);
}
