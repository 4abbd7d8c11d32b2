/*
 * umapfs-stitch: write the pre-stitched native cube of a directory of frames
 * (the same bytes as a FITS mount's cube.f32: host-order float32 physical
 * values, planes in time order) and its index.txt.  This is what the sweep
 * reads with plain kernel mmap in the benchmark, and what it reads when no
 * mount is at hand.
 *
 *   umapfs-stitch FRAMES_DIR OUT_DIR      writes OUT_DIR/cube.f32, OUT_DIR/index.txt
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sweep.h"

int main(int argc, char **argv)
{
	if (argc != 3 || argv[1][0] == '-') {
		fprintf(argc == 2 && !strcmp(argv[1], "--help") ? stdout : stderr,
			"usage: umapfs-stitch FRAMES_DIR OUT_DIR\n"
			"writes OUT_DIR/cube.f32 (host-order float32, frames x rows x columns, time order)\n"
			"and OUT_DIR/index.txt (shape and frame times), as a FITS mount shows them\n");
		return argc == 2 && !strcmp(argv[1], "--help") ? 0 : 2;
	}
	char err[1024];
	struct sweep_cube c;
	int ret = sweep_cube_open(&c, argv[1], SWEEP_CFITSIO, NULL, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "umapfs-stitch: %s\n", err);
		sweep_cube_close(&c);
		return 1;
	}
	if (mkdir(argv[2], 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "umapfs-stitch: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	char path[4096], ipath[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/cube.f32", argv[2]);
	snprintf(ipath, sizeof(ipath), "%s/index.txt", argv[2]);
	snprintf(tmp, sizeof(tmp), "%s.part", path);
	long long npx = (long long)c.w * c.h;
	float *buf = malloc(npx * sizeof(float));
	FILE *o = fopen(tmp, "wb");
	if (!buf || !o) {
		fprintf(stderr, "umapfs-stitch: %s: %s\n", tmp, buf ? strerror(errno) : "out of memory");
		return 1;
	}
	int tty = isatty(2);
	for (long k = 0; k < c.n; k++) {
		if (sweep_read_frame(c.frames[k], buf, npx, err, sizeof(err))) {
			fprintf(stderr, "umapfs-stitch: %s\n", err);
			fclose(o);
			unlink(tmp);
			return 1;
		}
		if (fwrite(buf, sizeof(float), npx, o) != (size_t)npx) {
			fprintf(stderr, "umapfs-stitch: %s: %s\n", tmp, strerror(errno));
			fclose(o);
			unlink(tmp);
			return 1;
		}
		if (tty) {
			fprintf(stderr, "\rumapfs-stitch: frame %ld/%ld", k + 1, c.n);
			fflush(stderr);
		}
	}
	if (tty)
		fputc('\n', stderr);
	if (fflush(o) != 0 || fsync(fileno(o)) != 0 || fclose(o) != 0 || rename(tmp, path) != 0) {
		fprintf(stderr, "umapfs-stitch: %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return 1;
	}
	FILE *ix = fopen(ipath, "w");
	if (!ix) {
		fprintf(stderr, "umapfs-stitch: %s: %s\n", ipath, strerror(errno));
		return 1;
	}
	fprintf(ix, "# umapfs-stitch index of cube.f32: host-order float32, frames x rows x columns\n");
	fprintf(ix, "frames %ld\nrows %ld\ncolumns %ld\n# plane mjd-obs source\n", c.n, c.h, c.w);
	for (long k = 0; k < c.n; k++)
		fprintf(ix, "%ld %.17g %s\n", k, c.mjd[k], c.frames[k]);
	if (fclose(ix) != 0) {
		fprintf(stderr, "umapfs-stitch: %s: %s\n", ipath, strerror(errno));
		return 1;
	}
	printf("umapfs-stitch: %s: %ld frames of %ldx%ld\n", path, c.n, c.w, c.h);
	free(buf);
	sweep_cube_close(&c);
	return 0;
}
