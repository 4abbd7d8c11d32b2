/*
 * The plugin ABI is append-only: these offsets and sizes are version 1 and
 * must never change.  A built plugin exports exactly one umapfs_ symbol.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "umapfs/plugin.h"

#if UINTPTR_MAX == UINT64_MAX
Test(abi, plugin_layout_v1)
{
	cr_assert_eq(UMAPFS_PLUGIN_ABI_VERSION, 1);
	cr_assert_str_eq(UMAPFS_PLUGIN_SYMBOL, "umapfs_plugin_entry");
	cr_assert_eq(offsetof(struct umapfs_plugin, abi_version), 0);
	cr_assert_eq(offsetof(struct umapfs_plugin, struct_size), 4);
	cr_assert_eq(offsetof(struct umapfs_plugin, name), 8);
	cr_assert_eq(offsetof(struct umapfs_plugin, description), 16);
	cr_assert_eq(offsetof(struct umapfs_plugin, state_size), 24);
	cr_assert_eq(offsetof(struct umapfs_plugin, init), 32);
	cr_assert_eq(offsetof(struct umapfs_plugin, fini), 40);
	cr_assert_eq(offsetof(struct umapfs_plugin, open_check), 48);
	cr_assert_eq(offsetof(struct umapfs_plugin, reserved), 56);
	cr_assert_eq(sizeof(struct umapfs_plugin), 120);
}

Test(abi, host_layout_v1)
{
	cr_assert_eq(offsetof(struct umapfs_plugin_host, abi_version), 0);
	cr_assert_eq(offsetof(struct umapfs_plugin_host, struct_size), 4);
	cr_assert_eq(offsetof(struct umapfs_plugin_host, engine), 8);
	cr_assert_eq(offsetof(struct umapfs_plugin_host, writable), 16);
	cr_assert_eq(offsetof(struct umapfs_plugin_host, log), 24);
	cr_assert_eq(offsetof(struct umapfs_plugin_host, publish), 32);
	cr_assert_eq(offsetof(struct umapfs_plugin_host, publish_text), 40);
	cr_assert_eq(offsetof(struct umapfs_plugin_host, host_private), 48);
	cr_assert_eq(sizeof(struct umapfs_plugin_host), 56);
}
#endif

static const char *raw_module(void)
{
	static char path[4096];
	const char *root = getenv("UMAPFS_BUILD_ROOT");
	cr_assert_not_null(root, "UMAPFS_BUILD_ROOT not set");
	snprintf(path, sizeof(path), "%s/plugins/raw/raw.so", root);
	return path;
}

Test(abi, raw_exports_one_symbol)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s'", raw_module());
	FILE *f = popen(cmd, "r");
	cr_assert_not_null(f);
	char line[512];
	int umapfs = 0, other = 0, entry = 0;
	while (fgets(line, sizeof(line), f)) {
		char type[8], name[400];
		if (sscanf(line, "%*s %7s %399s", type, name) != 2)
			continue;
		if (!strncmp(name, "__asan", 6) || !strncmp(name, "__odr_asan", 10) ||
		    !strncmp(name, "__ubsan", 7))
			continue;
		if (!strncmp(name, "umapfs_", 7)) {
			umapfs++;
			entry += !strcmp(name, "umapfs_plugin_entry");
		} else if (strcmp(name, "_init") && strcmp(name, "_fini") && strcmp(name, "_edata") &&
			   strcmp(name, "_end") && strcmp(name, "__bss_start")) {
			other++;
			fprintf(stderr, "unexpected export: %s", line);
		}
	}
	cr_assert_eq(pclose(f), 0, "nm failed");
	cr_assert_eq(umapfs, 1, "%d umapfs_ symbols exported", umapfs);
	cr_assert_eq(entry, 1);
	cr_assert_eq(other, 0);
}

Test(abi, raw_entry_values)
{
	/* RTLD_LAZY: the engine symbols it calls come from the daemon */
	void *h = dlopen(raw_module(), RTLD_LAZY | RTLD_LOCAL);
	cr_assert_not_null(h, "%s", dlerror());
	const struct umapfs_plugin *p = dlsym(h, UMAPFS_PLUGIN_SYMBOL);
	cr_assert_not_null(p);
	cr_assert_eq(p->abi_version, UMAPFS_PLUGIN_ABI_VERSION);
	cr_assert_eq(p->struct_size, sizeof(struct umapfs_plugin));
	cr_assert_str_eq(p->name, "raw");
	cr_assert_not_null(p->init);
	for (int i = 0; i < 8; i++)
		cr_assert_null(p->reserved[i]);
	dlclose(h);
}
