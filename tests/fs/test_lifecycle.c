/*
 * Writable mounts and the daemon's life: writes reach the backing files,
 * msync/fsync make them durable, SIGTERM unmounts cleanly (serving a
 * holder of a mapping until it leaves, losing nothing), SIGKILL gives
 * clients errors rather than hangs, and a new mount serves correct data.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"

#define SIZE (8u << 20)

static struct tmount m;
static char viewpath[512];

static void setup(void)
{
	tm_init(&m, "life");
	cr_assert_eq(pattern_file(tm_path(&m, "data.bin"), SIZE, 5), 0);
	write_text(tm_path(&m, "desc.txt"), "view v\ndata.bin 0 rest\n");
	snprintf(viewpath, sizeof(viewpath), "%s/v", m.mnt);
}

static void teardown(void)
{
	tm_cleanup(&m);
}

TestSuite(lifecycle, .init = setup, .fini = teardown, .timeout = 120);

static void backing_bytes(uint64_t off, void *buf, size_t len)
{
	int fd = open(tm_path(&m, "data.bin"), O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

Test(lifecycle, sigterm_idle_unmounts)
{
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "page_size=64K,buffer_size=4M"), 0, "%s",
		     tm_stderr(&m));
	kill(m.pid, SIGTERM);
	cr_assert_eq(tm_wait(&m, 20000), 0, "stderr: %s", tm_stderr(&m));
	cr_assert(!tm_is_mounted(m.mnt));
}

Test(lifecycle, writes_reach_backing_files)
{
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"),
			      "writable,page_size=64K,buffer_size=1M"), 0, "%s", tm_stderr(&m));
	struct stat st;
	cr_assert_eq(stat(viewpath, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0644);
	int fd = open(viewpath, O_RDWR);
	cr_assert_geq(fd, 0, "open: %s", strerror(errno));
	/* unaligned write() across a page boundary */
	char msg[100000];
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (char)(i * 7 + 1);
	cr_assert_eq(pwrite(fd, msg, sizeof(msg), 65536 - 333), (ssize_t)sizeof(msg));
	cr_assert_eq(fsync(fd), 0, "fsync: %s", strerror(errno));
	char back[sizeof(msg)];
	backing_bytes(65536 - 333, back, sizeof(back));
	cr_assert(memcmp(back, msg, sizeof(msg)) == 0, "write() not in the backing file after fsync");

	/* through a shared mapping, made durable by msync(MS_SYNC) */
	unsigned char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED, "mmap: %s", strerror(errno));
	for (size_t off = 3u << 20; off < (5u << 20); off += 4096)
		p[off + 17] = (unsigned char)(off >> 12);
	cr_assert_eq(msync(p, SIZE, MS_SYNC), 0, "msync: %s", strerror(errno));
	for (size_t off = 3u << 20; off < (5u << 20); off += 4096) {
		unsigned char b;
		backing_bytes(off + 17, &b, 1);
		cr_assert_eq(b, (unsigned char)(off >> 12), "byte at %zu not written back", off + 17);
	}
	/* the rest is untouched */
	unsigned char exp[4096], got[4096];
	pattern_fill(exp, sizeof(exp), 5, 7u << 20);
	backing_bytes(7u << 20, got, sizeof(got));
	cr_assert(memcmp(exp, got, sizeof(exp)) == 0);
	munmap(p, SIZE);
	close(fd);
	cr_assert_eq(tm_stop(&m), 0, "%s", tm_stderr(&m));
}

Test(lifecycle, sigterm_keeps_serving_until_last_user)
{
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"),
			      "writable,page_size=64K,buffer_size=2M"), 0, "%s", tm_stderr(&m));
	int fd = open(viewpath, O_RDWR);
	cr_assert_geq(fd, 0);
	unsigned char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	/* unsynced writes spread over the view, then the signal */
	for (size_t off = 0; off < SIZE; off += 8192)
		p[off] = (unsigned char)(0xA5 ^ (off >> 13));
	kill(m.pid, SIGTERM);
	usleep(300000);
	cr_assert_eq(tm_wait(&m, 0), -1, "daemon left while a mapping was held: %s", tm_stderr(&m));
	cr_assert(!tm_is_mounted(m.mnt), "not detached after SIGTERM");
	/* still served through the open file */
	unsigned char exp[4096], got[4096];
	pattern_fill(exp, sizeof(exp), 5, 6u << 20);
	exp[0] = (unsigned char)(0xA5 ^ ((6u << 20) >> 13));
	memcpy(got, p + (6u << 20), sizeof(got));
	cr_assert(memcmp(exp, got, sizeof(got)) == 0);
	p[SIZE - 1] = 0x5a; /* written after the signal too */
	munmap(p, SIZE);
	close(fd);
	cr_assert_eq(tm_wait(&m, 30000), 0, "exit status; stderr: %s", tm_stderr(&m));
	for (size_t off = 0; off < SIZE; off += 8192) {
		unsigned char b;
		backing_bytes(off, &b, 1);
		cr_assert_eq(b, (unsigned char)(0xA5 ^ (off >> 13)), "lost write at %zu", off);
	}
	unsigned char last;
	backing_bytes(SIZE - 1, &last, 1);
	cr_assert_eq(last, 0x5a);
}

Test(lifecycle, sigkill_errors_then_remount)
{
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "page_size=64K,buffer_size=2M"), 0, "%s",
		     tm_stderr(&m));
	int fd = open(viewpath, O_RDONLY);
	cr_assert_geq(fd, 0);
	unsigned char *p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	volatile unsigned char c = p[0];
	(void)c;
	kill(m.pid, SIGKILL);
	cr_assert_eq(tm_wait(&m, 10000), 128 + SIGKILL);
	char buf[4096];
	cr_assert_eq(pread(fd, buf, sizeof(buf), 5u << 20), -1);
	cr_assert_eq(errno, ENOTCONN, "pread after SIGKILL: %s", strerror(errno));
	/* an uncached mapped page: SIGBUS, not a hang */
	pid_t child = fork();
	if (child == 0) {
		volatile unsigned char x = p[SIZE - 4096];
		(void)x;
		_exit(0);
	}
	int st;
	cr_assert_eq(waitpid(child, &st, 0), child);
#ifdef __SANITIZE_ADDRESS__
	/* ASan catches the SIGBUS itself, reports it and aborts */
	cr_assert(WIFSIGNALED(st) && (WTERMSIG(st) == SIGBUS || WTERMSIG(st) == SIGABRT),
		  "status %x", st);
#else
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS, "status %x", st);
#endif
	munmap(p, SIZE);
	close(fd);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "fusermount3 -u '%s'", m.mnt);
	cr_assert_eq(system(cmd), 0);
	/* a new mount of the same source serves correct data */
	cr_assert_eq(tm_start(&m, tm_path(&m, "desc.txt"), "page_size=64K,buffer_size=2M"), 0, "%s",
		     tm_stderr(&m));
	fd = open(viewpath, O_RDONLY);
	cr_assert_geq(fd, 0);
	unsigned char exp[4096];
	pattern_fill(exp, sizeof(exp), 5, 5u << 20);
	cr_assert_eq(pread(fd, buf, sizeof(buf), 5u << 20), (ssize_t)sizeof(buf));
	cr_assert(memcmp(buf, exp, sizeof(buf)) == 0);
	close(fd);
	cr_assert_eq(tm_stop(&m), 0, "%s", tm_stderr(&m));
}
