/*
 * Signals and daemon death while a client holds a writable mapping.
 *
 *  - SIGTERM / SIGINT / SIGHUP with unsynced writes in a MAP_SHARED mapping (more
 *    dirty data than the mount's buffer): the daemon detaches the mount,
 *    keeps serving the client (reads and new writes through the mapping and
 *    the fd), and when the client unmaps and closes, exits 0 with every byte
 *    in the backing file.
 *  - A second SIGTERM while detached changes nothing.
 *  - SIGKILL: the client gets ENOTCONN/EIO from pread, msync and fsync, and
 *    SIGBUS from an uncached mapped page, never a hang (every client step
 *    runs in a child with a deadline); munmap and close return.  After
 *    fusermount3 -u, a new mount of the same source serves exactly the
 *    backing file, which holds every byte synced before the kill and the
 *    original bytes outside what was written.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rwutil.h"

#define SIZE (8u << 20)
#define SEED 31

static struct tmount m;
static char viewpath[512];

static void setup(void)
{
	tm_init(&m, "rw-sig");
	cr_assert_eq(pattern_file(tm_path(&m, "data.bin"), SIZE, SEED), 0);
	write_text(tm_path(&m, "desc.txt"), "view v\ndata.bin 0 rest\n");
	snprintf(viewpath, sizeof(viewpath), "%s/v", m.mnt);
}

static void teardown(void)
{
	tm_cleanup(&m);
}

TestSuite(signals, .init = setup, .fini = teardown, .timeout = 60);

static void check_backing_equals(const unsigned char *model, const char *what)
{
	unsigned char *got = malloc(SIZE);
	cr_assert(got);
	int r = file_read(tm_path(&m, "data.bin"), 0, got, SIZE);
	cr_assert_eq(r, 0, "%s", strerror(-r));
	long long d = first_diff(got, model, SIZE);
	cr_assert_eq(d, -1, "%s: backing file differs from what the client wrote at offset %lld "
		     "(got %02x, want %02x)", what, d, d >= 0 ? got[d] : 0, d >= 0 ? model[d] : 0);
	free(got);
}

/*
 * The client writes all over the view through the mapping and with
 * pwrite (no sync), the daemon gets `sig`, the client keeps working, then
 * leaves; nothing may be lost.
 */
static void stop_signal_case(int sig)
{
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "writable,page_size=64K,buffer_size=1M"),
		     0, "%s", tm_stderr(&m));
	unsigned char *model = malloc(SIZE);
	cr_assert(model);
	pattern_fill(model, SIZE, SEED, 0);
	struct rng r;
	rng_init(&r, 1000 + (uint64_t)sig);

	int fd = open(viewpath, O_RDWR);
	cr_assert_geq(fd, 0, "open: %s", strerror(errno));
	unsigned char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED, "mmap: %s", strerror(errno));
	/* 8x the buffer of unsynced mapped writes, and some write()s */
	for (size_t off = 0; off < SIZE; off += 4096) {
		size_t at = off + rng_below(&r, 4000);
		unsigned char v[96];
		rng_bytes(&r, v, sizeof(v));
		memcpy(p + at, v, sizeof(v));
		memcpy(model + at, v, sizeof(v));
	}
	for (int i = 0; i < 16; i++) {
		unsigned char v[10000];
		uint64_t at = rng_below(&r, SIZE - sizeof(v));
		rng_bytes(&r, v, sizeof(v));
		cr_assert_eq(pwrite(fd, v, sizeof(v), (off_t)at), (ssize_t)sizeof(v));
		memcpy(model + at, v, sizeof(v));
	}

	kill(m.pid, sig);
	/* detached within 10 s (it writes back first), and still running */
	for (int i = 0; i < 1000 && tm_is_mounted(m.mnt); i++)
		usleep(10000);
	cr_assert(!tm_is_mounted(m.mnt), "the mount was not detached after signal %d", sig);
	usleep(200000);
	cr_assert_eq(tm_wait(&m, 0), -1, "daemon exited while a writable mapping was held: %s",
		     tm_stderr(&m));
	/* a repeated signal while detached must not end it either */
	kill(m.pid, sig);
	usleep(100000);
	cr_assert_eq(tm_wait(&m, 0), -1, "second signal ended the daemon: %s", tm_stderr(&m));

	/* still served: reads match, new writes (mapped and write()) are taken */
	long long d = first_diff(p, model, SIZE);
	cr_assert_eq(d, -1, "after the signal the mapping reads wrong data at %lld", d);
	for (size_t off = 2048; off < SIZE; off += 65536) {
		p[off] = (unsigned char)~p[off];
		model[off] = p[off];
	}
	unsigned char v[5000];
	rng_bytes(&r, v, sizeof(v));
	cr_assert_eq(pwrite(fd, v, sizeof(v), SIZE - sizeof(v)), (ssize_t)sizeof(v), "pwrite after "
		     "the signal: %s", strerror(errno));
	memcpy(model + SIZE - sizeof(v), v, sizeof(v));
	unsigned char rb[5000];
	cr_assert_eq(pread(fd, rb, sizeof(rb), 123456), (ssize_t)sizeof(rb));
	cr_assert(memcmp(rb, model + 123456, sizeof(rb)) == 0, "pread after the signal: wrong data");

	/* the last user leaves: no msync, no fsync */
	cr_assert_eq(munmap(p, SIZE), 0);
	cr_assert_eq(close(fd), 0, "close: %s", strerror(errno));
	int st = tm_wait(&m, 30000);
	cr_assert_eq(st, 0, "daemon exit status %d after signal %d; stderr:\n%s", st, sig,
		     tm_stderr(&m));
	check_backing_equals(model, strsignal(sig));
	free(model);
}

Test(signals, sigterm_with_unsynced_mapping_loses_nothing)
{
	stop_signal_case(SIGTERM);
}

Test(signals, sigint_with_unsynced_mapping_loses_nothing)
{
	stop_signal_case(SIGINT);
}

Test(signals, sighup_with_unsynced_mapping_loses_nothing)
{
	stop_signal_case(SIGHUP); /* umapfs(1) treats SIGHUP as SIGTERM */
}

/* ---- SIGKILL -------------------------------------------------------------- */

static sigjmp_buf jb;
static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(jb, 1);
}

/* What the client saw after the kill, reported by the child through a pipe. */
struct after_kill {
	int pread_ret, pread_errno;
	int msync_ret, msync_errno;
	int fsync_ret, fsync_errno;
	int sigbus;        /* touching an uncached page raised SIGBUS */
	int touch_ok;      /* ... or it returned (a cached page) */
	int munmap_ret, close_ret;
	int done;
};

/* A dead connection: ENOTCONN, EIO, or ECONNABORTED (the daemon's watchdog aborts it). */
static int errno_ok(int e)
{
	return e == ENOTCONN || e == EIO || e == ECONNABORTED;
}

Test(signals, sigkill_gives_errors_not_hangs_and_remount_is_correct)
{
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "writable,page_size=64K,buffer_size=1M"),
		     0, "%s", tm_stderr(&m));
	unsigned char *expect = malloc(SIZE);
	cr_assert(expect);
	pattern_fill(expect, SIZE, SEED, 0);

	int fd = open(viewpath, O_RDWR);
	cr_assert_geq(fd, 0, "open: %s", strerror(errno));
	unsigned char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	/* region A [0, 2M): written and msync'ed: must survive the kill */
	for (size_t off = 0; off < (2u << 20); off += 512)
		p[off] = expect[off] = (unsigned char)(off >> 9) ^ 0x3c;
	cr_assert_eq(msync(p, 2u << 20, MS_SYNC), 0, "msync: %s", strerror(errno));
	/* region B [4M, 5M): written, not synced: may be lost, nothing else may change */
	for (size_t off = 4u << 20; off < (5u << 20); off += 512)
		p[off] = 0xee;

	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	kill(m.pid, SIGKILL);
	cr_assert_eq(tm_wait(&m, 10000), 128 + SIGKILL);

	pid_t child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		struct after_kill a;
		memset(&a, 0, sizeof(a));
		char buf[4096];
		errno = 0;
		a.pread_ret = (int)pread(fd, buf, sizeof(buf), 6u << 20);
		a.pread_errno = errno;
		errno = 0;
		a.msync_ret = msync(p, SIZE, MS_SYNC);
		a.msync_errno = errno;
		errno = 0;
		a.fsync_ret = fsync(fd);
		a.fsync_errno = errno;
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_sigbus;
		sigaction(SIGBUS, &sa, NULL);
		if (sigsetjmp(jb, 1) == 0) {
			volatile unsigned char x = p[SIZE - 100]; /* never touched: not cached */
			(void)x;
			a.touch_ok = 1;
		} else {
			a.sigbus = 1;
		}
		a.munmap_ret = munmap(p, SIZE);
		a.close_ret = close(fd);
		a.done = 1;
		if (write(pfd[1], &a, sizeof(a)) != (ssize_t)sizeof(a))
			_exit(3);
		_exit(0);
	}
	close(pfd[1]);
	int st = wait_child(child, 20000);
	cr_assert_neq(st, -1, "the client hung after the daemon was killed (pread/msync/fsync/"
		      "page fault/munmap/close did not return within 20 s)");
	struct after_kill a;
	memset(&a, 0, sizeof(a));
	cr_assert_eq(read(pfd[0], &a, sizeof(a)), (ssize_t)sizeof(a), "client status %x", st);
	close(pfd[0]);
	cr_assert(a.done);
	cr_assert(a.pread_ret == -1 && errno_ok(a.pread_errno), "pread after SIGKILL: %d (%s)",
		  a.pread_ret, strerror(a.pread_errno));
	cr_assert(a.msync_ret == -1 && errno_ok(a.msync_errno),
		  "msync(MS_SYNC) of unsynced writes after SIGKILL returned %d (%s): the application "
		  "must learn they were lost", a.msync_ret, strerror(a.msync_errno));
	cr_assert(a.fsync_ret == -1 && errno_ok(a.fsync_errno), "fsync after SIGKILL: %d (%s)",
		  a.fsync_ret, strerror(a.fsync_errno));
	cr_assert(a.sigbus, "touching an uncached page of a dead mount did not raise SIGBUS");
	munmap(p, SIZE); /* the parent's copy of the mapping */
	close(fd);

	char cmd[700];
	snprintf(cmd, sizeof(cmd), "fusermount3 -u '%s'", m.mnt);
	cr_assert_eq(run_cmd(m.dir, tm_path(&m, "cmd.log"), 20, cmd), 0, "fusermount3 -u on the dead "
		     "mount: %s", slurp(tm_path(&m, "cmd.log")));

	/* the backing file: A durable, B old or new, everything else untouched */
	unsigned char *got = malloc(SIZE);
	cr_assert(got);
	cr_assert_eq(file_read(tm_path(&m, "data.bin"), 0, got, SIZE), 0);
	long long d = first_diff(got, expect, 2u << 20);
	cr_assert_eq(d, -1, "msync'ed byte at %lld lost by SIGKILL", d);
	for (size_t off = 2u << 20; off < SIZE; off++) {
		int inb = off >= (4u << 20) && off < (5u << 20) && off % 512 == 0;
		if (inb)
			cr_assert(got[off] == expect[off] || got[off] == 0xee, "byte %zu: %02x", off,
				  got[off]);
		else
			cr_assert_eq(got[off], expect[off], "byte %zu changed though never written",
				     off);
	}

	/* a new mount of the same source serves exactly the backing file */
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "writable,page_size=64K,buffer_size=1M"),
		     0, "remount: %s", tm_stderr(&m));
	fd = open(viewpath, O_RDWR);
	cr_assert_geq(fd, 0);
	p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	d = first_diff(p, got, SIZE);
	cr_assert_eq(d, -1, "the new mount serves %02x at %lld, the backing file holds %02x",
		     d >= 0 ? p[d] : 0, d, d >= 0 ? got[d] : 0);
	munmap(p, SIZE);
	/* and it is writable again */
	cr_assert_eq(pwrite(fd, "ok", 2, 100), 2);
	cr_assert_eq(fsync(fd), 0);
	close(fd);
	cr_assert_eq(tm_stop(&m), 0, "%s", tm_stderr(&m));
	char two[2];
	cr_assert_eq(file_read(tm_path(&m, "data.bin"), 100, two, 2), 0);
	cr_assert(memcmp(two, "ok", 2) == 0);
	free(got);
	free(expect);
}

/*
 * The daemon's watchdog (a child that aborts the FUSE connection if the
 * daemon dies stuck) must abort only its own connection.  Connection
 * numbers are reused at once, so the watchdog is held stopped while its
 * daemon is killed, the dead mount unmounted and a new one made (usually
 * with the same number); when it runs, the new mount must be unaffected.
 */
Test(signals, late_watchdog_of_a_dead_daemon_spares_the_next_mount)
{
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "page_size=64K,buffer_size=1M"), 0, "%s",
		     tm_stderr(&m));
	struct stat st;
	cr_assert_eq(stat(m.mnt, &st), 0);
	dev_t dev_a = st.st_dev;
	char path[128];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)m.pid, (int)m.pid);
	int wd = atoi(slurp(path));
	cr_assert_gt(wd, 0, "the daemon has no watchdog child (%s: '%s')", path, slurp(path));
	cr_assert_eq(kill(wd, SIGSTOP), 0);
	kill(m.pid, SIGKILL);
	cr_assert_eq(tm_wait(&m, 10000), 128 + SIGKILL);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "fusermount3 -u '%s'", m.mnt);
	cr_assert_eq(run_cmd(m.dir, tm_path(&m, "cmd.log"), 20, cmd), 0, "%s",
		     slurp(tm_path(&m, "cmd.log")));

	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "page_size=64K,buffer_size=1M"), 0, "%s",
		     tm_stderr(&m));
	cr_assert_eq(stat(m.mnt, &st), 0);
	fprintf(stderr, "watchdog test: connection %u:%u, new mount %u:%u (%s)\n", major(dev_a),
		minor(dev_a), major(st.st_dev), minor(st.st_dev),
		dev_a == st.st_dev ? "same number: the case that matters" : "another number");
	kill(wd, SIGCONT);
	for (int i = 0; i < 300 && kill(wd, 0) == 0; i++)
		usleep(10000);
	usleep(100000);
	int fd = open(viewpath, O_RDONLY);
	cr_assert_geq(fd, 0, "open on the new mount after the old watchdog ran: %s", strerror(errno));
	unsigned char buf[4096], exp[4096];
	cr_assert_eq(pread(fd, buf, sizeof(buf), 1u << 20), (ssize_t)sizeof(buf),
		     "the old daemon's watchdog broke the new mount: %s", strerror(errno));
	pattern_fill(exp, sizeof(exp), SEED, 1u << 20);
	cr_assert(memcmp(buf, exp, sizeof(buf)) == 0);
	close(fd);
	cr_assert_eq(tm_stop(&m), 0, "new daemon: %s", tm_stderr(&m));
}
