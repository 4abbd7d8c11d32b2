#include "rwutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void rng_init(struct rng *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
	return rng_next(r) % n;
}

void rng_bytes(struct rng *r, void *buf, size_t len)
{
	unsigned char *b = buf;
	while (len >= 8) {
		uint64_t v = rng_next(r);
		memcpy(b, &v, 8);
		b += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = rng_next(r);
		memcpy(b, &v, len);
	}
}

uint64_t rw_seed(void)
{
	const char *s = getenv("UMAPFS_RW_SEED");
	if (s && *s)
		return strtoull(s, NULL, 0);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t x = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^
		     ((uint64_t)getpid() << 32);
	return splitmix(&x) & 0xffffffffffffULL; /* short enough to type */
}

int file_read(const char *path, uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	int ret = 0;
	while (got < len) {
		ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
		if (r < 0) {
			ret = -errno;
			break;
		}
		if (r == 0) {
			ret = -EIO;
			break;
		}
		got += (size_t)r;
	}
	close(fd);
	return ret;
}

long long first_diff(const void *a, const void *b, size_t len)
{
	if (memcmp(a, b, len) == 0)
		return -1;
	const unsigned char *x = a, *y = b;
	for (size_t i = 0; i < len; i++)
		if (x[i] != y[i])
			return (long long)i;
	return -1;
}

int wait_child(pid_t pid, int ms)
{
	for (int waited = 0; waited <= ms; waited += 10) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return st;
		if (r < 0)
			return -1;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

int run_cmd(const char *dir, const char *log, int timeout_s, const char *cmd)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		setpgid(0, 0);
		if (chdir(dir) < 0)
			_exit(126);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	for (long waited = 0; waited <= (long)timeout_s * 1000; waited += 10) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(10000);
	}
	kill(-pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

int have_space(const char *path, uint64_t bytes)
{
	struct statvfs sv;
	if (statvfs(path, &sv) < 0)
		return 0;
	return (uint64_t)sv.f_bavail * sv.f_frsize >= bytes;
}
