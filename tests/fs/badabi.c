/* A plugin built against a future ABI: the loader must refuse it. */
#include "umapfs/plugin.h"

static int bad_init(void *state, struct umapfs_plugin_host *host, const char *source,
		    const char *options)
{
	(void)state, (void)host, (void)source, (void)options;
	return -1;
}

__attribute__((visibility("default"))) const struct umapfs_plugin umapfs_plugin_entry = {
	.abi_version = 99,
	.struct_size = sizeof(struct umapfs_plugin),
	.name = "badabi",
	.description = "test plugin with a wrong ABI version",
	.init = bad_init,
};
