#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *tm_daemon(void)
{
	static char path[PATH_MAX];
	const char *root = getenv("UMAPFS_BUILD_ROOT");
	if (!root)
		root = ".";
	snprintf(path, sizeof(path), "%s/fs/umapfs", root);
	char pp[PATH_MAX];
	snprintf(pp, sizeof(pp), "%s/plugins", root);
	setenv("UMAPFS_PLUGIN_PATH", pp, 1);
	return path;
}

void tm_init(struct tmount *m, const char *tag)
{
	memset(m, 0, sizeof(*m));
	m->pid = -1;
	m->status = -1;
	snprintf(m->dir, sizeof(m->dir), "/var/tmp/umapfs-fs-%s-XXXXXX", tag);
	if (!mkdtemp(m->dir)) {
		perror("mkdtemp");
		abort();
	}
	snprintf(m->mnt, sizeof(m->mnt), "%s/mnt", m->dir);
	snprintf(m->err, sizeof(m->err), "%s/daemon.err", m->dir);
	mkdir(m->mnt, 0755);
}

const char *tm_path(const struct tmount *m, const char *name)
{
	static char bufs[8][PATH_MAX];
	static int i;
	char *b = bufs[i++ % 8];
	snprintf(b, PATH_MAX, "%s/%s", m->dir, name);
	return b;
}

int tm_is_mounted(const char *mnt)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return 0;
	char line[4096];
	int found = 0;
	while (fgets(line, sizeof(line), f)) {
		char mp[PATH_MAX];
		if (sscanf(line, "%*d %*d %*s %*s %4095s", mp) == 1 && strcmp(mp, mnt) == 0 &&
		    strstr(line, " - fuse.umapfs "))
			found = 1;
	}
	fclose(f);
	return found;
}

static pid_t spawn(struct tmount *m, const char *source, const char *opts)
{
	const char *daemon = tm_daemon();
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(m->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		/* mount-helper argument order: SOURCE MOUNTPOINT -o opts */
		if (opts)
			execl(daemon, "umapfs", "-f", source, m->mnt, "-o", opts, (char *)NULL);
		else
			execl(daemon, "umapfs", "-f", source, m->mnt, (char *)NULL);
		_exit(127);
	}
	return pid;
}

int tm_wait(struct tmount *m, int ms)
{
	if (m->pid <= 0)
		return m->status;
	for (int waited = 0; waited <= ms; waited += 10) {
		int st;
		pid_t r = waitpid(m->pid, &st, WNOHANG);
		if (r == m->pid) {
			m->pid = -1;
			m->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			return m->status;
		}
		usleep(10000);
	}
	return -1;
}

int tm_start(struct tmount *m, const char *source, const char *opts)
{
	m->status = -1;
	m->pid = spawn(m, source, opts);
	if (m->pid < 0)
		return -1;
	for (int i = 0; i < 3000; i++) {
		if (tm_is_mounted(m->mnt)) {
			/* the first request waits for INIT; make sure it is served */
			struct stat st;
			if (stat(m->mnt, &st) == 0)
				return 0;
		}
		if (tm_wait(m, 0) >= 0)
			return -1;
		usleep(10000);
	}
	return -1;
}

int tm_run_fail(struct tmount *m, const char *source, const char *opts)
{
	m->pid = spawn(m, source, opts);
	int st = tm_wait(m, 30000);
	if (st < 0) {
		kill(m->pid, SIGKILL);
		tm_wait(m, 5000);
		return -1;
	}
	return st;
}

int tm_stop(struct tmount *m)
{
	if (m->pid > 0 && tm_is_mounted(m->mnt)) {
		char cmd[PATH_MAX + 64];
		snprintf(cmd, sizeof(cmd), "fusermount3 -u '%s'", m->mnt);
		if (system(cmd) != 0)
			return -1;
	}
	return tm_wait(m, 30000);
}

const char *tm_stderr(const struct tmount *m)
{
	return slurp(m->err);
}

void tm_cleanup(struct tmount *m)
{
	char cmd[PATH_MAX + 64];
	if (tm_is_mounted(m->mnt)) {
		snprintf(cmd, sizeof(cmd), "fusermount3 -u -z '%s' 2>/dev/null", m->mnt);
		if (system(cmd) != 0) { /* already gone */
		}
	}
	if (m->pid > 0) {
		if (tm_wait(m, 5000) < 0) {
			kill(m->pid, SIGKILL);
			tm_wait(m, 5000);
		}
	}
	if (m->dir[0] && strncmp(m->dir, "/var/tmp/umapfs-fs-", 19) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", m->dir);
		if (system(cmd) != 0) {
		}
	}
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void pattern_fill(void *buf, size_t len, uint64_t seed, uint64_t start)
{
	unsigned char *b = buf;
	size_t i = 0;
	while (i < len) {
		uint64_t pos = start + i;
		uint64_t w = mix(seed * 0x100000001b3ull ^ (pos / 8));
		unsigned sh = (unsigned)(pos % 8);
		for (; sh < 8 && i < len; sh++, i++)
			b[i] = (unsigned char)(w >> (8 * sh));
	}
}

int pattern_file(const char *path, uint64_t size, uint64_t seed)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	size_t bs = 1 << 20;
	unsigned char *buf = malloc(bs);
	int ret = 0;
	for (uint64_t off = 0; off < size && buf; off += bs) {
		size_t l = size - off < bs ? (size_t)(size - off) : bs;
		pattern_fill(buf, l, seed, off);
		if (pwrite(fd, buf, l, (off_t)off) != (ssize_t)l) {
			ret = -EIO;
			break;
		}
	}
	if (!buf)
		ret = -ENOMEM;
	free(buf);
	if (fsync(fd) < 0 && ret == 0)
		ret = -errno;
	close(fd);
	return ret;
}

void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		abort();
	}
	fputs(text, f);
	fclose(f);
}

uint64_t proc_rss(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	char line[256];
	uint64_t kb = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;
		if (sscanf(line, "VmRSS: %llu kB", &v) == 1)
			kb = v;
	}
	fclose(f);
	return kb * 1024;
}

uint64_t stats_get(const char *text, const char *key)
{
	size_t kl = strlen(key);
	for (const char *p = text; p && *p;) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
			return strtoull(p + kl + 1, NULL, 10);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return UINT64_MAX;
}

const char *slurp(const char *path)
{
	static char buf[65536];
	buf[0] = 0;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return buf;
	size_t n = 0;
	ssize_t r;
	while (n + 1 < sizeof(buf) && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = 0;
	close(fd);
	return buf;
}
