/*
 * umapfs/ioctl.h: requests a program may send to a file of a umapfs mount.
 *
 * The kernel passes these to the daemon as FUSE ioctls: they work on any
 * file descriptor of a mounted view (opened read-only is enough) and need no
 * library.  A file that is not a umapfs view answers ENOTTY, so a program can
 * try the request and fall back to madvise(MADV_WILLNEED) elsewhere.
 */
#ifndef UMAPFS_IOCTL_H
#define UMAPFS_IOCTL_H

#include <linux/ioctl.h>
#include <stdint.h>

/* A byte range of a view. */
struct umapfs_ioc_range {
	uint64_t offset;
	uint64_t length;
};

/*
 * UMAPFS_IOC_PREFETCH: fill the view's pages covering the range in the
 * background, with as many reads in flight as the engine allows, and push
 * each into the kernel page cache whole as it is filled: the next access is a
 * page-cache hit, with no READ request per 4 KiB as MADV_WILLNEED on a FUSE
 * file costs.  Pages the kernel already holds whole are skipped.  Returns at
 * once (0); a range past the end of the view is clipped; errors: EINVAL
 * (length overflows), ENOTTY (not a view).  The pages count against the
 * mount's buffer_size like any others, pushing out older pages; one request
 * asks for at most buffer_size bytes (beyond that it would push out what it
 * just filled), the rest is ignored.
 */
#define UMAPFS_IOC_PREFETCH _IOW('u', 1, struct umapfs_ioc_range)

/* The most ranges one UMAPFS_IOC_PREFETCH_RANGES request carries (the struct is 4 KiB). */
#define UMAPFS_IOC_MAX_RANGES 255

/* Up to UMAPFS_IOC_MAX_RANGES ranges of one view; `reserved` must be 0. */
struct umapfs_ioc_ranges {
	uint32_t count;
	uint32_t reserved;
	struct umapfs_ioc_range range[UMAPFS_IOC_MAX_RANGES];
};

/*
 * UMAPFS_IOC_PREFETCH_RANGES: UMAPFS_IOC_PREFETCH of range[0 .. count), in
 * one request (one trip to the daemon, where a request per range costs one
 * each): for example the same rows of every frame of a cube.  Errors:
 * EINVAL (count above UMAPFS_IOC_MAX_RANGES, reserved not 0, a length that
 * overflows; no range is then asked for), ENOTTY (not a view).
 */
#define UMAPFS_IOC_PREFETCH_RANGES _IOW('u', 2, struct umapfs_ioc_ranges)

#endif
