/*
 * Suite 'mapping': in-process mappings through userfaultfd (real files,
 * real io_uring; errors injected through the engine's umapfs_sys seam).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "umapfs/mapping.h"
#include "mutil.h"

#define KiB (UINT64_C(1) << 10)

#define MiB (UINT64_C(1) << 20)

/* Criterion workers leave through _exit: remove the scratch files after each test. */
TestSuite(mapping, .fini = rm_files);

static void quiet_log(void *arg, int level, const char *msg)
{
	(void)arg;
	if (level <= UMAPFS_LOG_ERR && getenv("MAPPING_TEST_VERBOSE"))
		fprintf(stderr, "log: %s\n", msg);
}

static void cfg_small(struct umapfs_engine_config *c, uint64_t ps, uint64_t buf)
{
	umapfs_engine_config_init(c);
	c->page_size = ps;
	c->buffer_size = buf;
	c->log = quiet_log;
}

/* ---- random multi-threaded reads ------------------------------------ */

struct rd_arg {
	const unsigned char *base, *ref;
	uint64_t len;
	unsigned seed;
	int bad;
};

static void *reader(void *p)
{
	struct rd_arg *a = p;
	unsigned s = a->seed;
	for (int i = 0; i < 800; i++) {
		uint64_t off = ((uint64_t)rand_r(&s) << 16 ^ (uint64_t)rand_r(&s)) % a->len;
		size_t n = 1 + rand_r(&s) % 300;
		if (off + n > a->len)
			n = a->len - off;
		if (memcmp(a->base + off, a->ref + off, n))
			a->bad++;
	}
	return NULL;
}

static void random_reads(uint64_t ps, uint64_t buf, uint64_t flen, uint64_t foff)
{
	unsigned char *ref;
	const char *path = mk_file("rand", flen, 7, &ref);
	struct umapfs_engine_config c;
	cfg_small(&c, ps, buf);
	struct umapfs_mapping *m;
	int r = umapfs_mapping_map_file(path, foff, 0, NULL, 0, &c, &m);
	cr_assert_eq(r, 0, "map_file: %s", strerror(-r));
	cr_assert_eq(umapfs_mapping_length(m), flen - foff);
	pthread_t t[4];
	struct rd_arg a[4];
	for (int i = 0; i < 4; i++) {
		a[i] = (struct rd_arg){ umapfs_mapping_addr(m), ref + foff, flen - foff, 11u + i, 0 };
		pthread_create(&t[i], NULL, reader, &a[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(a[i].bad, 0, "thread %d: %d mismatches", i, a[i].bad);
	}
	/* the tail of the last page past the end of the range reads as zeros */
	uint64_t len = flen - foff, end4 = (len + 4095) & ~UINT64_C(4095);
	const unsigned char *b = umapfs_mapping_addr(m);
	for (uint64_t i = len; i < end4; i++)
		cr_assert_eq(b[i], 0, "byte %llu past the end is %u", (unsigned long long)i, b[i]);
	cr_assert_eq(umapfs_mapping_last_error(m, NULL), 0);
	cr_assert_eq(umapfs_mapping_unmap(m), 0);
	free(ref);
}

Test(mapping, random_reads_64k, .timeout = 60)
{
	random_reads(64 * KiB, 2 * MiB, 6 * MiB + 1234, 0);
}

Test(mapping, random_reads_4k_offset, .timeout = 60)
{
	random_reads(4 * KiB, 512 * KiB, 2 * MiB + 77, 64 * KiB);
}

/* ---- read-write round trip ------------------------------------------ */

static void check_file(const char *path, const unsigned char *want, size_t len)
{
	unsigned char *got = malloc(len);
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, got, len, 0), (ssize_t)len);
	close(fd);
	for (size_t i = 0; i < len; i++)
		if (got[i] != want[i])
			cr_assert_fail("file byte %zu is %u, expected %u", i, got[i], want[i]);
	free(got);
}

Test(mapping, read_write_round_trip, .timeout = 60)
{
	const size_t flen = 4 * MiB + 100;
	unsigned char *ref;
	const char *path = mk_file("rw", flen, 3, &ref);
	struct umapfs_engine_config c;
	cfg_small(&c, 64 * KiB, 512 * KiB); /* 8 pages: dirty pages get evicted */
	struct umapfs_mapping *m;
	int r = umapfs_mapping_map_file(path, 0, 0, NULL, UMAPFS_MAPPING_WRITE, &c, &m);
	cr_assert_eq(r, 0, "map_file rw: %s", strerror(-r));
	unsigned char *b = umapfs_mapping_addr(m);
	unsigned s = 5;
	for (int i = 0; i < 600; i++) {
		size_t off = (size_t)rand_r(&s) * 7919 % flen, n = 1 + rand_r(&s) % 200;
		if (off + n > flen)
			n = flen - off;
		for (size_t k = 0; k < n; k++)
			b[off + k] = ref[off + k] = (unsigned char)(i + k);
		/* reads interleaved: other pages come and go */
		size_t o2 = (size_t)rand_r(&s) * 31 % flen;
		cr_assert_eq(b[o2], ref[o2], "read back at %zu", o2);
	}
	cr_assert_eq(umapfs_mapping_flush(m), 0);
	check_file(path, ref, flen);
	/* writes after a flush fault again and are not lost */
	for (size_t off = 0; off < flen; off += 65536 + 17)
		b[off] = ref[off] = (unsigned char)(b[off] ^ 0x5a);
	b[flen - 1] = ref[flen - 1] = 0xee;
	cr_assert_eq(umapfs_mapping_unmap(m), 0);
	check_file(path, ref, flen);
	free(ref);
}

/* ---- budget ------------------------------------------------------------ */

static size_t resident_pages(void *addr, size_t len)
{
	size_t n = (len + 4095) / 4096, cnt = 0;
	unsigned char *v = malloc(n);
	cr_assert_eq(mincore(addr, len, v), 0, "mincore: %s", strerror(errno));
	for (size_t i = 0; i < n; i++)
		cnt += v[i] & 1;
	free(v);
	return cnt;
}

Test(mapping, budget_bound, .timeout = 60)
{
	const uint64_t ps = 64 * KiB, buf = 1 * MiB, flen = 4 * buf;
	unsigned char *ref;
	const char *path = mk_file("budget", flen, 9, &ref);
	struct umapfs_engine_config c;
	cfg_small(&c, ps, buf);
	struct umapfs_mapping *m;
	cr_assert_eq(umapfs_mapping_map_file(path, 0, 0, NULL, 0, &c, &m), 0);
	unsigned char *b = umapfs_mapping_addr(m);
	size_t maxres = 0;
	uint64_t sum = 0, want = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t off = 0; off < flen; off += 4096) {
			sum += b[off];
			want += ref[off];
			if (off % ps == ps - 4096) {
				size_t rp = resident_pages(b, flen);
				if (rp > maxres)
					maxres = rp;
			}
		}
	}
	cr_assert_eq(sum, want);
	/* bound: the buffer's pages plus one page in flight */
	cr_assert_leq(maxres, (buf + ps) / 4096, "resident %zu x 4 KiB, buffer %llu x 4 KiB", maxres,
		      (unsigned long long)(buf / 4096));
	cr_assert_geq(maxres, buf / 4096 / 2, "resident %zu: the mapping did not keep pages", maxres);
	cr_assert_eq(umapfs_mapping_unmap(m), 0);
	free(ref);
}

/* ---- EIO → SIGBUS -------------------------------------------------------- */

static _Atomic uint64_t fail_off = UINT64_MAX;
static _Atomic int delay_ms;

static int seam_complete(void *arg, int is_write, int fd, uint64_t off, size_t len, int res)
{
	(void)arg, (void)fd;
	uint64_t f = atomic_load(&fail_off);
	if (!is_write && f >= off && f < off + len)
		return -EIO;
	int d = atomic_load(&delay_ms);
	if (!is_write && d)
		nanosleep(&(struct timespec){ d / 1000, (long)(d % 1000) * 1000000L }, NULL);
	return res;
}

static const struct umapfs_sys seam = { .complete = seam_complete };

static sigjmp_buf jb;
static void *volatile sig_addr;
static volatile int sig_no;

static void on_sig(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	sig_no = sig;
	sig_addr = si->si_addr;
	siglongjmp(jb, 1);
}

Test(mapping, eio_gives_sigbus_and_cause, .timeout = 60)
{
	const uint64_t ps = 64 * KiB;
	const char *path = mk_file("eio", 1 * MiB, 4, NULL);
	struct umapfs_engine_config c;
	cfg_small(&c, ps, 256 * KiB);
	c.sys = &seam;
	struct umapfs_mapping *m;
	cr_assert_eq(umapfs_mapping_map_file(path, 0, 0, NULL, 0, &c, &m), 0);
	volatile unsigned char *b = umapfs_mapping_addr(m);
	cr_assert_eq(b[0], byte_at(4, 0)); /* a good page first */
	atomic_store(&fail_off, 5 * ps + 100);
	struct sigaction sa = { .sa_sigaction = on_sig, .sa_flags = SA_SIGINFO }, old;
	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(jb, 1) == 0) {
		(void)b[5 * ps + 4096 + 3];
		cr_assert_fail("read of a failed page returned");
	}
	sigaction(SIGBUS, &old, NULL);
	cr_assert_eq(sig_no, SIGBUS);
	cr_assert_eq((char *)sig_addr, (char *)b + 5 * ps + 4096 + 3);
	uint64_t off = 0;
	cr_assert_eq(umapfs_mapping_last_error(m, &off), -EIO);
	cr_assert_eq(off, 5 * ps);
	/* other pages still work */
	cr_assert_eq(b[6 * ps + 1], byte_at(4, 6 * ps + 1));
	cr_assert_eq(umapfs_mapping_unmap(m), 0);
	atomic_store(&fail_off, UINT64_MAX);
}

/* The plain form: the default action of an unhandled failure is SIGBUS. */
Test(mapping, eio_default_action_is_sigbus, .signal = SIGBUS, .timeout = 60)
{
	const char *path = mk_file("eio2", 256 * KiB, 4, NULL);
	struct umapfs_engine_config c;
	cfg_small(&c, 4 * KiB, 64 * KiB);
	c.sys = &seam;
	atomic_store(&fail_off, 8192);
	struct umapfs_mapping *m;
	cr_assert_eq(umapfs_mapping_map_file(path, 0, 0, NULL, 0, &c, &m), 0);
	rm_files(); /* the engine holds the file open; this process dies of SIGBUS */
	volatile unsigned char *b = umapfs_mapping_addr(m);
	signal(SIGBUS, SIG_DFL); /* the default action, also under ASan (which catches SIGBUS) */
	(void)b[8192];
	cr_assert_fail("not reached");
}

/* ---- unmap while another thread faults ------------------------------------ */

static __thread sigjmp_buf tjb;
static void on_tsig(int sig, siginfo_t *si, void *uc)
{
	(void)si, (void)uc;
	siglongjmp(tjb, sig);
}

struct fault_arg {
	volatile unsigned char *b;
	uint64_t len, ps;
	_Atomic int started;
	int sig, bad;
	uint64_t pages_read;
};

static void *faulter(void *p)
{
	struct fault_arg *a = p;
	int s = sigsetjmp(tjb, 1);
	if (s) {
		a->sig = s;
		return NULL;
	}
	atomic_store(&a->started, 1);
	for (int pass = 0; pass < 100; pass++)
		for (uint64_t off = 0; off < a->len; off += a->ps) {
			if (a->b[off] != byte_at(6, off))
				a->bad++;
			a->pages_read++;
		}
	return NULL;
}

Test(mapping, unmap_while_faulting, .timeout = 60)
{
	const uint64_t ps = 64 * KiB;
	const char *path = mk_file("busy", 2 * MiB, 6, NULL);
	struct umapfs_engine_config c;
	cfg_small(&c, ps, 256 * KiB);
	c.sys = &seam;
	atomic_store(&delay_ms, 20);
	struct umapfs_mapping *m;
	cr_assert_eq(umapfs_mapping_map_file(path, 0, 0, NULL, 0, &c, &m), 0);
	struct sigaction sa = { .sa_sigaction = on_tsig, .sa_flags = SA_SIGINFO };
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	struct fault_arg a = { .b = umapfs_mapping_addr(m), .len = 2 * MiB, .ps = ps };
	pthread_t t;
	pthread_create(&t, NULL, faulter, &a);
	while (!atomic_load(&a.started))
		usleep(1000);
	usleep(100 * 1000);
	cr_assert_eq(umapfs_mapping_unmap(m), 0);
	pthread_join(t, NULL);
	atomic_store(&delay_ms, 0);
	cr_assert_eq(a.bad, 0, "%d wrong bytes before the unmap", a.bad);
	cr_assert(a.sig == SIGBUS || a.sig == SIGSEGV, "faulting thread got signal %d after %llu pages",
		  a.sig, (unsigned long long)a.pages_read);
	cr_assert_gt(a.pages_read, 0);
	if (getenv("MAPPING_TEST_VERBOSE"))
		fprintf(stderr, "unmap_while_faulting: signal %d after %llu pages\n", a.sig,
			(unsigned long long)a.pages_read);
}

/* ---- prefetch ------------------------------------------------------------------ */

static void pf_cb(void *arg, struct umapfs_view *v, uint64_t off, uint64_t len, int status)
{
	(void)v, (void)off, (void)len;
	atomic_store((_Atomic int *)arg, status == 0 ? 1 : status);
}

Test(mapping, prefetch_installs_pages, .timeout = 60)
{
	const uint64_t ps = 64 * KiB;
	const char *path = mk_file("pf", 2 * MiB, 8, NULL);
	struct umapfs_engine_config c;
	cfg_small(&c, ps, 1 * MiB);
	struct umapfs_mapping *m;
	cr_assert_eq(umapfs_mapping_map_file(path, 0, 0, NULL, 0, &c, &m), 0);
	unsigned char *b = umapfs_mapping_addr(m);
	_Atomic int done = 0;
	int efd = eventfd(0, EFD_CLOEXEC);
	cr_assert_eq(umapfs_mapping_prefetch(m, 512 * KiB, 512 * KiB, pf_cb, (void *)&done, efd), 0);
	uint64_t v;
	cr_assert_eq(read(efd, &v, 8), 8);
	cr_assert_eq(v, 1);
	while (!atomic_load(&done))
		usleep(1000);
	cr_assert_eq(atomic_load(&done), 1);
	/* installed without a fault: resident in the process */
	cr_assert_eq(resident_pages(b + 512 * KiB, 512 * KiB), 512 * KiB / 4096);
	cr_assert_eq(resident_pages(b, 512 * KiB), 0);
	for (uint64_t off = 512 * KiB; off < MiB; off += 777)
		cr_assert_eq(b[off], byte_at(8, off));
	/* larger than the buffer: -ENOSPC through the callback */
	done = 0;
	cr_assert_eq(umapfs_mapping_prefetch(m, 0, 2 * MiB, pf_cb, (void *)&done, -1), 0);
	cr_assert_eq(umapfs_mapping_unmap(m), 0); /* waits for it */
	cr_assert_eq(atomic_load(&done), -ENOSPC);
	close(efd);
}

/* ---- many mappings -------------------------------------------------------------- */

Test(mapping, two_thousand_mappings, .timeout = 100)
{
	enum { N = 2000 };
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	cr_assert_geq(rl.rlim_cur, 4 * N + 100, "RLIMIT_NOFILE hard limit %llu too small",
		      (unsigned long long)rl.rlim_cur);
	const char *path = mk_file("many", 64 * KiB, 2, NULL);
	struct umapfs_engine_config c;
	cfg_small(&c, 4 * KiB, 4 * MiB);
	c.io_threads = 1;
	struct umapfs_engine *e;
	cr_assert_eq(umapfs_engine_create(&c, &e), 0);
	static struct umapfs_view *v[N];
	static struct umapfs_mapping *m[N];
	for (int i = 0; i < N; i++) {
		struct umapfs_extent x = { .kind = UMAPFS_EXTENT_FILE, .path = path,
					   .file_offset = (uint64_t)(i % 16) * 4096, .length = 4096 };
		struct umapfs_view_desc d;
		umapfs_view_desc_init(&d);
		d.name = "many";
		d.size = 4096;
		d.extents = &x;
		d.n_extents = 1;
		cr_assert_eq(umapfs_view_create(e, &d, &v[i]), 0, "view %d", i);
		int r = umapfs_mapping_map_view(v[i], NULL, 0, &m[i]);
		cr_assert_eq(r, 0, "mapping %d: %s", i, strerror(-r));
	}
	for (int i = 0; i < N; i++) {
		const unsigned char *b = umapfs_mapping_addr(m[i]);
		uint64_t o = (uint64_t)(i % 16) * 4096 + (uint64_t)i % 4096;
		cr_assert_eq(b[i % 4096], byte_at(2, o), "mapping %d", i);
	}
	for (int i = 0; i < N; i++) {
		cr_assert_eq(umapfs_mapping_unmap(m[i]), 0);
		cr_assert_eq(umapfs_view_destroy(v[i]), 0);
	}
	cr_assert_eq(umapfs_engine_destroy(e), 0);
}

/* ---- bad input ---------------------------------------------------------------------- */

Test(mapping, bad_input, .timeout = 30)
{
	struct umapfs_mapping *m;
	struct umapfs_engine_config c;
	cfg_small(&c, 4 * KiB, 64 * KiB);
	cr_assert_eq(umapfs_mapping_map_file("/nonexistent/x", 0, 0, NULL, 0, &c, &m), -ENOENT);
	const char *path = mk_file("small", 8192, 1, NULL);
	cr_assert_eq(umapfs_mapping_map_file(path, 8192, 0, NULL, 0, &c, &m), -ERANGE);
	cr_assert_eq(umapfs_mapping_map_file(path, 0, 16384, NULL, 0, &c, &m), -ERANGE);
	cr_assert_eq(umapfs_mapping_map_file(path, 0, 0, (void *)0x1001, 0, &c, &m), -EINVAL);
	cr_assert_eq(umapfs_mapping_map_file(path, 0, 0, NULL, 0x100, &c, &m), -EINVAL);
}

/* ---- concurrent writers while pages are evicted ------------------------------------- */

struct wr_arg {
	unsigned char *b;
	size_t len;
	int id;
};

/* Thread id owns the bytes i with i % 4 == id: the final file is known. */
static void *writer(void *p)
{
	struct wr_arg *a = p;
	unsigned s = 100u + (unsigned)a->id;
	for (int i = 0; i < 700; i++) {
		size_t off = ((size_t)rand_r(&s) * 4099) % (a->len / 4) * 4 + (size_t)a->id;
		a->b[off] = (unsigned char)(off * 7 + 1);
	}
	return NULL;
}

Test(mapping, concurrent_writers_under_eviction, .timeout = 60)
{
	const size_t flen = 2 * MiB;
	const char *path = mk_file("mtw", flen, 12, NULL);
	struct umapfs_engine_config c;
	cfg_small(&c, 16 * KiB, 128 * KiB); /* 8 pages for 4 writers over 128 pages */
	struct umapfs_mapping *m;
	cr_assert_eq(umapfs_mapping_map_file(path, 0, 0, NULL, UMAPFS_MAPPING_WRITE, &c, &m), 0);
	unsigned char *b = umapfs_mapping_addr(m);
	pthread_t t[4];
	struct wr_arg a[4];
	for (int i = 0; i < 4; i++) {
		a[i] = (struct wr_arg){ b, flen, i };
		pthread_create(&t[i], NULL, writer, &a[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	/* expected: replay the writers' sequences over the original bytes */
	unsigned char *want = malloc(flen);
	for (size_t i = 0; i < flen; i++)
		want[i] = byte_at(12, i);
	for (int id = 0; id < 4; id++) {
		unsigned s = 100u + (unsigned)id;
		for (int i = 0; i < 700; i++) {
			size_t off = ((size_t)rand_r(&s) * 4099) % (flen / 4) * 4 + (size_t)id;
			want[off] = (unsigned char)(off * 7 + 1);
		}
	}
	for (size_t i = 0; i < flen; i += 1)
		if (b[i] != want[i])
			cr_assert_fail("mapped byte %zu is %u, want %u", i, b[i], want[i]);
	cr_assert_eq(umapfs_mapping_unmap(m), 0);
	check_file(path, want, flen);
	free(want);
}

/* ---- fork ---------------------------------------------------------------------------------- */

/* A child has no copy of the mapping (no silent zeros): its access is SIGSEGV. */
Test(mapping, child_after_fork_gets_no_copy, .timeout = 30)
{
	const char *path = mk_file("fork", 64 * KiB, 13, NULL);
	struct umapfs_engine_config c;
	cfg_small(&c, 4 * KiB, 64 * KiB);
	struct umapfs_mapping *m;
	cr_assert_eq(umapfs_mapping_map_file(path, 0, 0, NULL, 0, &c, &m), 0);
	volatile unsigned char *b = umapfs_mapping_addr(m);
	cr_assert_eq(b[5], byte_at(13, 5));
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		_exit(b[8192] == byte_at(13, 8192) ? 3 : 4);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "child status %#x", st);
	cr_assert_eq(b[8192], byte_at(13, 8192));
	cr_assert_eq(umapfs_mapping_unmap(m), 0);
}

/* ---- a caller's writable view -------------------------------------------------------------- */

Test(mapping, map_view_read_write, .timeout = 30)
{
	const size_t flen = 512 * KiB;
	unsigned char *ref;
	const char *path = mk_file("view", flen, 14, &ref);
	struct umapfs_engine_config c;
	cfg_small(&c, 16 * KiB, 128 * KiB);
	struct umapfs_engine *e;
	cr_assert_eq(umapfs_engine_create(&c, &e), 0);
	struct umapfs_extent x = { .kind = UMAPFS_EXTENT_FILE, .path = path, .length = flen };
	struct umapfs_view_desc d;
	umapfs_view_desc_init(&d);
	d.name = "view";
	d.size = flen;
	d.flags = UMAPFS_VIEW_WRITABLE;
	d.extents = &x;
	d.n_extents = 1;
	struct umapfs_view *v;
	cr_assert_eq(umapfs_view_create(e, &d, &v), 0);
	struct umapfs_mapping *m;
	cr_assert_eq(umapfs_mapping_map_view(v, NULL, UMAPFS_MAPPING_WRITE, &m), 0);
	cr_assert_eq(umapfs_mapping_view(m), v);
	unsigned char *b = umapfs_mapping_addr(m);
	for (size_t off = 3; off < flen; off += 5003)
		b[off] = ref[off] = (unsigned char)(off ^ 0xa5);
	cr_assert_eq(umapfs_mapping_unmap(m), 0);
	/* the view (still there) and the file both have the writes */
	unsigned char *got = malloc(flen);
	cr_assert_eq(umapfs_view_read(v, got, flen, 0), (ssize_t)flen);
	cr_assert_eq(memcmp(got, ref, flen), 0);
	free(got);
	check_file(path, ref, flen);
	/* a read-only view cannot be mapped read-write */
	cr_assert_eq(umapfs_view_destroy(v), 0);
	d.flags = 0;
	cr_assert_eq(umapfs_view_create(e, &d, &v), 0);
	cr_assert_eq(umapfs_mapping_map_view(v, NULL, UMAPFS_MAPPING_WRITE, &m), -EROFS);
	cr_assert_eq(umapfs_view_destroy(v), 0);
	cr_assert_eq(umapfs_engine_destroy(e), 0);
	free(ref);
}
