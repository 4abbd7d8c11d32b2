#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eutil.h"

/* Directories still to remove when the test's process exits (a failed assert). */
static char leftover[8][256];

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw);

static void rm_leftovers(void)
{
	for (int i = 0; i < 8; i++)
		if (leftover[i][0])
			nftw(leftover[i], rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void td_init(struct tdir *d, const char *base)
{
	static int registered;
	snprintf(d->path, sizeof(d->path), "%s/umapfs-engine-XXXXXX", base);
	cr_assert_not_null(mkdtemp(d->path), "mkdtemp %s: %s", d->path, strerror(errno));
	if (!registered++)
		atexit(rm_leftovers);
	for (int i = 0; i < 8; i++)
		if (!leftover[i][0]) {
			snprintf(leftover[i], sizeof(leftover[i]), "%s", d->path);
			break;
		}
}

const char *td_path(const struct tdir *d, const char *name)
{
	static __thread char bufs[8][320];
	static __thread int k;
	char *b = bufs[k++ & 7];
	snprintf(b, 320, "%s/%s", d->path, name);
	return b;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

void td_cleanup(struct tdir *d)
{
	if (d->path[0]) {
		nftw(d->path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
		for (int i = 0; i < 8; i++)
			if (strcmp(leftover[i], d->path) == 0)
				leftover[i][0] = 0;
	}
	d->path[0] = 0;
}

void pat_fill(void *buf, size_t len, uint64_t seed, uint64_t start)
{
	unsigned char *b = buf;
	for (size_t i = 0; i < len; i++)
		b[i] = pat_byte(seed, start + i);
}

void make_file(const char *path, uint64_t size, uint64_t seed)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0, "create %s: %s", path, strerror(errno));
	size_t chunk = 1 << 20;
	unsigned char *buf = malloc(chunk);
	cr_assert_not_null(buf);
	for (uint64_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? (size_t)(size - off) : chunk;
		pat_fill(buf, n, seed, off);
		cr_assert_eq(pwrite(fd, buf, n, (off_t)off), (ssize_t)n, "write %s", path);
	}
	free(buf);
	cr_assert_eq(close(fd), 0);
}

void file_read(const char *path, void *buf, size_t len, uint64_t off)
{
	int fd = open(path, O_RDONLY);
	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	size_t done = 0;
	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		cr_assert(r > 0, "pread %s: %zd", path, r);
		done += (size_t)r;
	}
	close(fd);
}

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_buf;
static size_t log_len;

void tlog(void *arg, int level, const char *msg)
{
	(void)arg, (void)level;
	pthread_mutex_lock(&log_lock);
	size_t n = strlen(msg);
	char *nb = realloc(log_buf, log_len + n + 2);
	if (nb) {
		log_buf = nb;
		memcpy(log_buf + log_len, msg, n);
		log_len += n;
		log_buf[log_len++] = '\n';
		log_buf[log_len] = 0;
	}
	pthread_mutex_unlock(&log_lock);
}

const char *tlog_text(void)
{
	return log_buf ? log_buf : "";
}

int tlog_count(const char *needle)
{
	int n = 0;
	pthread_mutex_lock(&log_lock);
	for (const char *p = log_buf; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	pthread_mutex_unlock(&log_lock);
	return n;
}

struct umapfs_engine *mk_engine(uint64_t page, uint64_t buffer, int policy)
{
	struct umapfs_engine_config c;
	struct umapfs_engine *e = NULL;
	umapfs_engine_config_init(&c);
	c.page_size = page;
	c.buffer_size = buffer;
	c.policy = policy;
	c.log = tlog;
	int r = umapfs_engine_create(&c, &e);
	cr_assert_eq(r, 0, "engine_create: %s (log: %s)", strerror(-r), tlog_text());
	return e;
}

struct umapfs_stats stats_of(struct umapfs_engine *e)
{
	struct umapfs_stats st;
	cr_assert_eq(umapfs_engine_stats(e, &st), 0);
	return st;
}
