/*
 * umapfs plugin ABI.
 *
 * A plugin is a shared module that exports exactly one symbol,
 * `umapfs_plugin_entry`, a `struct umapfs_plugin`.  Its first field is the
 * ABI version; fields are only ever appended (each marked with the version
 * that added it) and `struct_size` tells the host how much of the structure
 * the plugin knows.  The host refuses a plugin whose abi_version differs
 * from its own major version.
 *
 * At mount time the host creates the engine (page size, buffer, policy from
 * the mount options), allocates `state_size` zeroed bytes of private state
 * and calls init(state, host, source, options).  The plugin creates engine
 * views over its backing files and publishes each as a file of the mount.
 * A plugin never touches io_uring or FUSE: it describes views (extents) or
 * computes pages (umapfs_view_ops) and the engine does the I/O.
 */
#ifndef UMAPFS_PLUGIN_H
#define UMAPFS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "umapfs/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UMAPFS_PLUGIN_ABI_VERSION 1u
#define UMAPFS_PLUGIN_SYMBOL "umapfs_plugin_entry"

struct umapfs_plugin_host;

/*
 * What the host offers a plugin.  Allocated and owned by the host.
 */
struct umapfs_plugin_host {
	uint32_t abi_version; /* v1 */
	uint32_t struct_size; /* v1 */
	struct umapfs_engine *engine; /* v1: the mount's engine */
	int writable;                 /* v1: mounted read-write */

	/* v1: log a message (printf format) with a UMAPFS_LOG_* level. */
	void (*log)(struct umapfs_plugin_host *h, int level, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));

	/*
	 * v1: publish a view as a file named `name` at the mount's top level.
	 * The host takes ownership of the view (destroys it at unmount).
	 * Returns 0, -EEXIST for a duplicate name, -EINVAL for a bad name.
	 */
	int (*publish)(struct umapfs_plugin_host *h, const char *name, struct umapfs_view *view);

	/*
	 * v1: publish a small read-only text file (an index, a report).  The
	 * bytes are copied.  Returns 0 or -errno as publish().
	 */
	int (*publish_text)(struct umapfs_plugin_host *h, const char *name, const char *text,
			    size_t len);

	void *host_private; /* v1: the host's */
};

/*
 * A plugin module's description.  Export it as
 *   const struct umapfs_plugin umapfs_plugin_entry = { ... };
 */
struct umapfs_plugin {
	uint32_t abi_version; /* v1: UMAPFS_PLUGIN_ABI_VERSION */
	uint32_t struct_size; /* v1: sizeof(struct umapfs_plugin) */
	const char *name;     /* v1: "raw", "fits" */
	const char *description; /* v1: one line */
	size_t state_size;    /* v1: private state the host allocates (zeroed) */

	/*
	 * v1: set up the mount from SOURCE (a path) and the plugin's options
	 * (the comma-separated mount options the host did not consume, or "").
	 * Publishes the views.  Returns 0, or -errno after logging a message
	 * that names the file and the reason; the mount then does not start.
	 */
	int (*init)(void *state, struct umapfs_plugin_host *host, const char *source,
		    const char *options);

	/* v1: release everything init() made except published views. May be NULL. */
	void (*fini)(void *state);

	/*
	 * v1: may a file be opened with these open(2) flags?  Returns 0 or
	 * -errno (e.g. -EACCES for writes to a view without an exact inverse,
	 * after logging why).  May be NULL: then every publish is allowed.
	 */
	int (*open_check)(void *state, const char *name, int flags);

	void *reserved[8]; /* v1: spare, zero */
};

#ifdef __cplusplus
}
#endif
#endif
