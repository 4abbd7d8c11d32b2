/*
 * Small helpers: configuration parsing, logging through the hook, and the
 * real system calls behind the umapfs_sys seam.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine_i.h"

static const char *const policy_names[] = {
	[UMAPFS_POLICY_FIFO] = "fifo",
	[UMAPFS_POLICY_CLOCK] = "clock",
	[UMAPFS_POLICY_LRU] = "lru",
};

/*
 * Map a policy name to its enum value.  Case-insensitive.  Returns the
 * policy, or -EINVAL for NULL or any other string.
 */
UMAPFS_EXPORT int umapfs_policy_parse(const char *name)
{
	if (!name)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(policy_names) / sizeof(policy_names[0]); i++)
		if (strcasecmp(name, policy_names[i]) == 0)
			return (int)i;
	return -EINVAL;
}

/* The lower-case name of a policy, or NULL when `policy` is not one. */
UMAPFS_EXPORT const char *umapfs_policy_name(int policy)
{
	if (policy < 0 || (size_t)policy >= sizeof(policy_names) / sizeof(policy_names[0]))
		return NULL;
	return policy_names[policy];
}

/*
 * Parse "<digits>[suffix]" where the suffix is one of K, M, G, T (any case),
 * optionally followed by "iB" or "B", meaning powers of 1024.  Leading and
 * trailing blanks are allowed; nothing else is.  Stores the value in *out and
 * returns 0; -EINVAL when it is not a size, -ERANGE when it overflows.
 */
UMAPFS_EXPORT int umapfs_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;
	const char *p = s;

	if (!s || !out)
		return -EINVAL;
	while (isspace((unsigned char)*p))
		p++;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	switch (toupper((unsigned char)*p)) {
	case 'K': shift = 10; p++; break;
	case 'M': shift = 20; p++; break;
	case 'G': shift = 30; p++; break;
	case 'T': shift = 40; p++; break;
	default: break;
	}
	if (shift) {
		if (p[0] == 'i' && (p[1] == 'B' || p[1] == 'b'))
			p += 2;
		else if (*p == 'B' || *p == 'b')
			p++;
	} else if (*p == 'B' || *p == 'b') {
		p++;
	}
	while (isspace((unsigned char)*p))
		p++;
	if (*p)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

/* Format a message and hand it to the configured log hook (if any). */
void elog(struct umapfs_engine *e, int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (!e || !e->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	e->cfg.log(e->cfg.log_arg, level, buf);
}

/* ---- the real calls behind the seam: -errno on failure ---- */

static int real_open(void *arg, const char *path, int flags, mode_t mode)
{
	(void)arg;
	int fd = open(path, flags, mode);
	return fd < 0 ? -errno : fd;
}

static ssize_t real_pread(void *arg, int fd, void *buf, size_t len, off_t off)
{
	(void)arg;
	ssize_t r = pread(fd, buf, len, off);
	return r < 0 ? -errno : r;
}

static ssize_t real_pwrite(void *arg, int fd, const void *buf, size_t len, off_t off)
{
	(void)arg;
	ssize_t r = pwrite(fd, buf, len, off);
	return r < 0 ? -errno : r;
}

static int real_fdatasync(void *arg, int fd)
{
	(void)arg;
	return fdatasync(fd) < 0 ? -errno : 0;
}

static int real_complete(void *arg, int is_write, int fd, uint64_t off, size_t len, int res)
{
	(void)arg, (void)is_write, (void)fd, (void)off, (void)len;
	return res;
}

/* Copy the caller's seam, replacing NULL members by the real calls. */
void sys_fill_defaults(struct umapfs_sys *out, const struct umapfs_sys *in)
{
	memset(out, 0, sizeof(*out));
	if (in)
		*out = *in;
	if (!out->open)
		out->open = real_open;
	if (!out->pread)
		out->pread = real_pread;
	if (!out->pwrite)
		out->pwrite = real_pwrite;
	if (!out->fdatasync)
		out->fdatasync = real_fdatasync;
	if (!out->complete)
		out->complete = real_complete;
}
