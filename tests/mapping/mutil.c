#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mutil.h"

static char dir[128];
static char paths[16][256];
static int npaths;

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

void rm_files(void)
{
	if (dir[0])
		nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	dir[0] = 0;
	npaths = 0;
}

const char *mk_file(const char *name, size_t len, uint32_t seed, unsigned char **content)
{
	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/var/tmp/mapping-XXXXXX");
		if (!mkdtemp(dir)) {
			fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
			exit(2);
		}
		atexit(rm_files);
	}
	char *p = paths[npaths++ & 15];
	snprintf(p, 256, "%s/%s", dir, name);
	unsigned char *b = malloc(len ? len : 1);
	for (size_t i = 0; i < len; i++)
		b[i] = byte_at(seed, i);
	int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0 || write(fd, b, len) != (ssize_t)len) {
		fprintf(stderr, "%s: %s\n", p, strerror(errno));
		exit(2);
	}
	fsync(fd);
	close(fd);
	if (content)
		*content = b;
	else
		free(b);
	return p;
}
