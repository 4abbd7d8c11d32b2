/*
 * The raw plugin: views that are concatenations of byte ranges of files.
 *
 * SOURCE is a text description (format in umapfs(1)):
 *
 *   # a comment
 *   view NAME [page_size=SIZE] [readonly]
 *   FILE OFFSET LENGTH        LENGTH may be "rest" or "-": to the end of FILE
 *   zero LENGTH               LENGTH zero bytes
 *
 * Relative FILE paths are relative to the description's directory; a path
 * with spaces is written in double quotes.  Every view is served by the
 * engine's own direct-I/O path: the plugin only describes extents.  Errors
 * name the description file and line; then no view is published.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "umapfs/plugin.h"

#define MAX_TOKENS 8

struct raw_state {
	struct umapfs_plugin_host *host;
	char **paths; /* every FILE path handed to the engine, freed at fini */
	size_t n_paths;
};

/* A view being read from the description. */
struct pending {
	char *name;
	int line;
	uint64_t page_size;
	int readonly;
	struct umapfs_extent *ext;
	char **paths; /* owned copies of FILE paths, one per extent (NULL for zero) */
	size_t n, cap;
	uint64_t size;
};

struct parser {
	struct raw_state *state;
	struct umapfs_plugin_host *host;
	const char *desc;  /* as given */
	char *dir;         /* directory of the description, for relative paths */
	int line;
	/* names of published views with their lines, for duplicate reports */
	char **names;
	int *lines;
	size_t n_names;
};

#define ERR(p, ...) (p)->host->log((p)->host, UMAPFS_LOG_ERR, __VA_ARGS__)

/*
 * Split a line into tokens in place: whitespace separates, '#' starts a
 * comment, "..." quotes (with \" and \\).  Returns the count, or -1 for an
 * unterminated quote or too many tokens.
 */
static int tokenize(char *s, char **tok)
{
	int n = 0;
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
			s++;
		if (!*s || *s == '#')
			return n;
		if (n == MAX_TOKENS)
			return -1;
		if (*s == '"') {
			char *out = ++s;
			tok[n++] = out;
			while (*s && *s != '"') {
				if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
					s++;
				*out++ = *s++;
			}
			if (*s != '"')
				return -1;
			s++;
			*out = 0;
			if (*s && *s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
				return -1;
			if (*s)
				s++;
		} else {
			tok[n++] = s;
			while (*s && *s != ' ' && *s != '\t' && *s != '\r' && *s != '\n' && *s != '#')
				s++;
			if (*s == '#') {
				*s = 0;
				return n;
			}
			if (*s)
				*s++ = 0;
		}
	}
}

/* A byte count: decimal with optional K/M/G/T suffix, or 0x hex. */
static int parse_num(const char *s, uint64_t *out)
{
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(s + 2, &end, 16);
		if (errno || end == s + 2 || *end)
			return -EINVAL;
		*out = v;
		return 0;
	}
	if (*s < '0' || *s > '9')
		return -EINVAL;
	return umapfs_parse_size(s, out);
}

static void pending_free(struct pending *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->paths[i]);
	free(v->paths);
	v->paths = NULL;
	free(v->ext);
	free(v->name);
	memset(v, 0, sizeof(*v));
}

static int pending_add(struct pending *v, int kind, char *path, uint64_t off, uint64_t len)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? 2 * v->cap : 8;
		struct umapfs_extent *e = realloc(v->ext, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		v->ext = e;
		char **p = realloc(v->paths, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		v->paths = p;
		v->cap = cap;
	}
	memset(&v->ext[v->n], 0, sizeof(v->ext[v->n]));
	v->ext[v->n].kind = kind;
	v->ext[v->n].path = path;
	v->ext[v->n].file_offset = off;
	v->ext[v->n].length = len;
	v->paths[v->n] = path;
	v->n++;
	v->size += len;
	return 0;
}

/* Create the engine view for a finished description and publish it. */
static int finish_view(struct parser *p, struct pending *v)
{
	if (!v->name)
		return 0;
	if (v->n == 0) {
		ERR(p, "%s:%d: view '%s' has no extents", p->desc, v->line, v->name);
		return -EINVAL;
	}
	if (v->size > UMAPFS_MAX_VIEW_SIZE) {
		ERR(p, "%s:%d: view '%s' is larger than %llu bytes", p->desc, v->line, v->name,
		    (unsigned long long)UMAPFS_MAX_VIEW_SIZE);
		return -EFBIG;
	}
	struct umapfs_view_desc d;
	umapfs_view_desc_init(&d);
	d.name = v->name;
	d.size = v->size;
	d.page_size = v->page_size;
	d.flags = p->host->writable && !v->readonly ? UMAPFS_VIEW_WRITABLE : 0;
	d.extents = v->ext;
	d.n_extents = v->n;
	/* The engine may keep pointers to the paths: they live until fini. */
	char **kept = realloc(p->state->paths, (p->state->n_paths + v->n) * sizeof(*kept));
	if (!kept)
		return -ENOMEM;
	p->state->paths = kept;
	for (size_t i = 0; i < v->n; i++) {
		if (v->paths[i])
			kept[p->state->n_paths++] = v->paths[i];
		v->paths[i] = NULL;
	}
	struct umapfs_view *view;
	int ret = umapfs_view_create(p->host->engine, &d, &view);
	if (ret < 0) {
		ERR(p, "%s:%d: view '%s': %s", p->desc, v->line, v->name, strerror(-ret));
		return ret;
	}
	ret = p->host->publish(p->host, v->name, view);
	if (ret < 0) {
		ERR(p, "%s:%d: view '%s': cannot publish it: %s", p->desc, v->line, v->name,
		    strerror(-ret));
		umapfs_view_destroy(view);
		return ret;
	}
	char **names = realloc(p->names, (p->n_names + 1) * sizeof(*names));
	int *lines = realloc(p->lines, (p->n_names + 1) * sizeof(*lines));
	if (names)
		p->names = names;
	if (lines)
		p->lines = lines;
	if (!names || !lines)
		return -ENOMEM;
	p->names[p->n_names] = v->name;
	p->lines[p->n_names] = v->line;
	p->n_names++;
	v->name = NULL; /* kept in p->names */
	return 0;
}

static int parse_view_line(struct parser *p, struct pending *v, char **tok, int nt)
{
	if (nt < 2) {
		ERR(p, "%s:%d: 'view' needs a name", p->desc, p->line);
		return -EINVAL;
	}
	const char *name = tok[1];
	if (strlen(name) > 255 || strchr(name, '/') || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0 || strcmp(name, ".umapfs") == 0) {
		ERR(p, "%s:%d: '%s' is not a valid file name for a view", p->desc, p->line, name);
		return -EINVAL;
	}
	for (size_t i = 0; i < p->n_names; i++) {
		if (strcmp(p->names[i], name) == 0) {
			ERR(p, "%s:%d: duplicate view name '%s' (first defined at line %d)", p->desc,
			    p->line, name, p->lines[i]);
			return -EEXIST;
		}
	}
	if (v->name && strcmp(v->name, name) == 0) {
		ERR(p, "%s:%d: duplicate view name '%s' (first defined at line %d)", p->desc, p->line,
		    name, v->line);
		return -EEXIST;
	}
	struct pending nv = { .line = p->line };
	for (int i = 2; i < nt; i++) {
		if (strncmp(tok[i], "page_size=", 10) == 0) {
			uint64_t ps;
			if (parse_num(tok[i] + 10, &ps) < 0 || ps < UMAPFS_MIN_PAGE_SIZE ||
			    ps > UMAPFS_MAX_PAGE_SIZE || (ps & (ps - 1))) {
				ERR(p, "%s:%d: %s: page size must be a power of two from 4K to 64M",
				    p->desc, p->line, tok[i]);
				return -EINVAL;
			}
			nv.page_size = ps;
		} else if (strcmp(tok[i], "readonly") == 0) {
			nv.readonly = 1;
		} else {
			ERR(p, "%s:%d: unknown view option '%s' (page_size=SIZE, readonly)", p->desc,
			    p->line, tok[i]);
			return -EINVAL;
		}
	}
	int ret = finish_view(p, v);
	pending_free(v);
	if (ret < 0)
		return ret;
	nv.name = strdup(name);
	if (!nv.name)
		return -ENOMEM;
	*v = nv;
	return 0;
}

static int parse_extent_line(struct parser *p, struct pending *v, char **tok, int nt)
{
	if (!v->name) {
		ERR(p, "%s:%d: extent outside a view (start with 'view NAME')", p->desc, p->line);
		return -EINVAL;
	}
	uint64_t len;
	if (strcmp(tok[0], "zero") == 0) {
		if (nt != 2) {
			ERR(p, "%s:%d: expected 'zero LENGTH'", p->desc, p->line);
			return -EINVAL;
		}
		if (parse_num(tok[1], &len) < 0 || len == 0) {
			ERR(p, "%s:%d: '%s' is not a positive length", p->desc, p->line, tok[1]);
			return -EINVAL;
		}
		return pending_add(v, UMAPFS_EXTENT_ZERO, NULL, 0, len);
	}
	if (nt != 3) {
		ERR(p, "%s:%d: expected 'FILE OFFSET LENGTH' (or 'zero LENGTH')", p->desc, p->line);
		return -EINVAL;
	}
	char *path;
	if (tok[0][0] == '/') {
		path = strdup(tok[0]);
	} else {
		path = malloc(strlen(p->dir) + strlen(tok[0]) + 2);
		if (path)
			sprintf(path, "%s/%s", p->dir, tok[0]);
	}
	if (!path)
		return -ENOMEM;
	struct stat st;
	if (stat(path, &st) < 0) {
		int e = errno;
		ERR(p, "%s:%d: %s: %s", p->desc, p->line, tok[0], strerror(e));
		free(path);
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		ERR(p, "%s:%d: %s: not a regular file", p->desc, p->line, tok[0]);
		free(path);
		return -EINVAL;
	}
	uint64_t off, fsize = (uint64_t)st.st_size;
	if (parse_num(tok[1], &off) < 0) {
		ERR(p, "%s:%d: '%s' is not an offset", p->desc, p->line, tok[1]);
		free(path);
		return -EINVAL;
	}
	if (strcmp(tok[2], "rest") == 0 || strcmp(tok[2], "-") == 0) {
		if (off >= fsize) {
			ERR(p, "%s:%d: %s: offset %llu is at or past the end of the file (%llu bytes)",
			    p->desc, p->line, tok[0], (unsigned long long)off,
			    (unsigned long long)fsize);
			free(path);
			return -ERANGE;
		}
		len = fsize - off;
	} else if (parse_num(tok[2], &len) < 0 || len == 0) {
		ERR(p, "%s:%d: '%s' is not a positive length (or 'rest')", p->desc, p->line, tok[2]);
		free(path);
		return -EINVAL;
	}
	if (off > fsize || len > fsize - off) {
		ERR(p, "%s:%d: %s: extent past end of file (offset %llu + length %llu > size %llu)",
		    p->desc, p->line, tok[0], (unsigned long long)off, (unsigned long long)len,
		    (unsigned long long)fsize);
		free(path);
		return -ERANGE;
	}
	int ret = pending_add(v, UMAPFS_EXTENT_FILE, path, off, len);
	if (ret < 0)
		free(path);
	return ret;
}

static int raw_init(void *state, struct umapfs_plugin_host *host, const char *source,
		    const char *options)
{
	struct raw_state *s = state;
	s->host = host;
	if (options && *options) {
		host->log(host, UMAPFS_LOG_ERR, "raw plugin: unknown option(s) '%s'", options);
		return -EINVAL;
	}
	FILE *f = fopen(source, "re");
	if (!f) {
		int e = errno;
		host->log(host, UMAPFS_LOG_ERR, "%s: %s", source, strerror(e));
		return -e;
	}
	struct parser p = { .state = s, .host = host, .desc = source };
	const char *slash = strrchr(source, '/');
	p.dir = slash ? strndup(source, (size_t)(slash - source)) : strdup(".");
	if (slash == source) {
		free(p.dir);
		p.dir = strdup("");
	}
	struct pending v = { 0 };
	char *line = NULL;
	size_t cap = 0;
	int ret = p.dir ? 0 : -ENOMEM;
	while (ret == 0 && getline(&line, &cap, f) >= 0) {
		p.line++;
		if (strlen(line) > 8192) {
			ERR(&p, "%s:%d: line too long", source, p.line);
			ret = -EINVAL;
			break;
		}
		char *tok[MAX_TOKENS];
		int nt = tokenize(line, tok);
		if (nt < 0) {
			ERR(&p, "%s:%d: unterminated quote or too many fields", source, p.line);
			ret = -EINVAL;
		} else if (nt == 0) {
			continue;
		} else if (strcmp(tok[0], "view") == 0) {
			ret = parse_view_line(&p, &v, tok, nt);
		} else {
			ret = parse_extent_line(&p, &v, tok, nt);
		}
	}
	if (ret == 0 && ferror(f)) {
		ret = -EIO;
		ERR(&p, "%s: read error", source);
	}
	if (ret == 0)
		ret = finish_view(&p, &v);
	if (ret == 0 && p.n_names == 0) {
		ERR(&p, "%s: no views (a description starts with 'view NAME')", source);
		ret = -EINVAL;
	}
	pending_free(&v);
	free(line);
	fclose(f);
	for (size_t i = 0; i < p.n_names; i++)
		free(p.names[i]);
	free(p.names);
	free(p.lines);
	free(p.dir);
	return ret;
}

static void raw_fini(void *state)
{
	struct raw_state *s = state;
	for (size_t i = 0; i < s->n_paths; i++)
		free(s->paths[i]);
	free(s->paths);
	s->paths = NULL;
	s->n_paths = 0;
}

__attribute__((visibility("default"))) const struct umapfs_plugin umapfs_plugin_entry = {
	.abi_version = UMAPFS_PLUGIN_ABI_VERSION,
	.struct_size = sizeof(struct umapfs_plugin),
	.name = "raw",
	.description = "views concatenated from byte ranges of files (a text description)",
	.state_size = sizeof(struct raw_state),
	.init = raw_init,
	.fini = raw_fini,
	.open_check = NULL,
};
