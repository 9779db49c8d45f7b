/* The manifest of a stage commit: its declared outputs, its files with
 * their XXH3-128 hashes, and which of them live in the CAS. */
#include "store/internal.h"
#include "util/path.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANIFEST_HEADER "pipe-manifest 1\n"

void store_manifest_init(struct store_manifest *m)
{
	memset(m, 0, sizeof(*m));
}

void store_manifest_release(struct store_manifest *m)
{
	for (size_t i = 0; i < m->outputs_nr; i++)
		free(m->outputs[i]);
	free(m->outputs);
	for (size_t i = 0; i < m->dirs_nr; i++)
		free(m->dirs[i]);
	free(m->dirs);
	for (size_t i = 0; i < m->files_nr; i++)
		free(m->files[i].path);
	free(m->files);
	store_manifest_init(m);
}

static const char *const kind_names[] = {
	[STORE_BLOB] = "blob",
	[STORE_CAS] = "cas",
	[STORE_LINK] = "link",
};

void manifest_format(const struct store_manifest *m, struct strbuf *out)
{
	strbuf_addstr(out, MANIFEST_HEADER);
	for (size_t i = 0; i < m->outputs_nr; i++) {
		strbuf_addstr(out, "output ");
		store_escape(out, m->outputs[i], NULL);
		strbuf_addch(out, '\n');
	}
	for (size_t i = 0; i < m->dirs_nr; i++) {
		strbuf_addstr(out, "dir ");
		store_escape(out, m->dirs[i], NULL);
		strbuf_addch(out, '\n');
	}
	for (size_t i = 0; i < m->files_nr; i++) {
		const struct store_file *f = &m->files[i];

		strbuf_addf(out, "%s%s %s %llu ", kind_names[f->kind],
			    f->exec ? "+x" : "", f->hash, f->size);
		store_escape(out, f->path, NULL);
		strbuf_addch(out, '\n');
	}
}

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const struct store_file *)a)->path,
		      ((const struct store_file *)b)->path);
}

void manifest_sort(struct store_manifest *m)
{
	if (m->files_nr)
		qsort(m->files, m->files_nr, sizeof(*m->files), cmp_file);
}

const struct store_file *manifest_find(const struct store_manifest *m,
				       const char *path)
{
	struct store_file key = {.path = (char *)path};

	if (!m->files_nr)
		return NULL;
	return bsearch(&key, m->files, m->files_nr, sizeof(*m->files),
		       cmp_file);
}

void manifest_pointer(struct strbuf *out, const char *hash_hex,
		      unsigned long long size)
{
	strbuf_addf(out, "pipe-cas 1\nxxh128 %s\nsize %llu\n", hash_hex, size);
}

static void push_path(char ***v, size_t *nr, size_t *alloc, char *s)
{
	ALLOC_GROW(*v, *nr + 1, *alloc);
	(*v)[(*nr)++] = s;
}

/* "<kind>[+x] <hash> <size> <path>" */
static int parse_file(struct store_manifest *m, const char *line, size_t len,
		      struct strbuf *path)
{
	char kind[8], hash[HASH_HEX_LEN + 1];
	unsigned long long size;
	struct store_file *f;
	int n = 0, k;
	char *l = xstrndup(line, len);

	if (sscanf(l, "%7s %32s %llu %n", kind, hash, &size, &n) != 3 || !n ||
	    strlen(hash) != HASH_HEX_LEN ||
	    store_unescape(path, l + n, len - (size_t)n) || !path->len) {
		free(l);
		return -1;
	}
	free(l);
	for (k = 0; k < (int)ARRAY_SIZE(kind_names); k++)
		if (!strncmp(kind, kind_names[k], strlen(kind_names[k])))
			break;
	if (k == (int)ARRAY_SIZE(kind_names) ||
	    (strcmp(kind + strlen(kind_names[k]), "+x") &&
	     kind[strlen(kind_names[k])]))
		return -1;
	ALLOC_GROW(m->files, m->files_nr + 1, m->files_alloc);
	f = &m->files[m->files_nr++];
	f->path = strbuf_detach(path, NULL);
	f->kind = (enum store_file_kind)k;
	f->exec = kind[strlen(kind_names[k])] == '+';
	f->size = size;
	memcpy(f->hash, hash, sizeof(f->hash));
	return 0;
}

static int parse_line(struct store_manifest *m, const char *line, size_t len)
{
	struct strbuf sb = STRBUF_INIT;
	int ret = -1;

	/* no NUL: parse_file's sscanf and C strings stop at one */
	if (memchr(line, '\0', len))
		return -1;
	if (len > 7 && !memcmp(line, "output ", 7)) {
		if (!store_unescape(&sb, line + 7, len - 7) && sb.len) {
			push_path(&m->outputs, &m->outputs_nr,
				  &m->outputs_alloc, strbuf_detach(&sb, NULL));
			ret = 0;
		}
	} else if (len > 4 && !memcmp(line, "dir ", 4)) {
		if (!store_unescape(&sb, line + 4, len - 4) && sb.len) {
			push_path(&m->dirs, &m->dirs_nr, &m->dirs_alloc,
				  strbuf_detach(&sb, NULL));
			ret = 0;
		}
	} else {
		ret = parse_file(m, line, len, &sb);
	}
	strbuf_release(&sb);
	return ret;
}

/* A workspace path as pipe writes them: normalized, relative, not in
 * .pipe/, not the manifest. */
static int clean_path(const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	const char *why;
	int ok = !path_normalize(path, &sb, &why) && !strcmp(sb.buf, path) &&
		 path_trimmed_len(path) && !path_is_inside(path, ".pipe") &&
		 strcmp(path, STORE_MANIFEST);

	strbuf_release(&sb);
	return ok;
}

/* Paths in the order of a walk: byte order with '/' before every other
 * byte, trailing slashes ignored, so that what lies inside a path follows
 * it at once ("a", "a/x", "a-b"). */
static int cmp_walk(const char *a, const char *b)
{
	size_t an = path_trimmed_len(a), bn = path_trimmed_len(b);

	for (size_t i = 0; i < an && i < bn; i++) {
		unsigned x = a[i] == '/' ? 0 : (unsigned char)a[i] + 1u;
		unsigned y = b[i] == '/' ? 0 : (unsigned char)b[i] + 1u;

		if (x != y)
			return x < y ? -1 : 1;
	}
	return an < bn ? -1 : an > bn;
}

static int cmp_walk_p(const void *a, const void *b)
{
	return cmp_walk(*(char *const *)a, *(char *const *)b);
}

/* path lies in one of the outputs, sorted by cmp_walk and disjoint: then
 * only the last output not after path can hold it (any output between
 * that one and path would lie inside it). */
static int in_output(char *const *outs, size_t nr, const char *path)
{
	size_t lo = 0, hi = nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cmp_walk(outs[mid], path) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo && path_is_inside(path, outs[lo - 1]);
}

/* A manifest may come from another machine (pipe pull): restore must
 * never write outside the workspace or through a path it wrote. Sorted,
 * two outputs overlap only if two neighbours do: n log n for a manifest
 * of 10,000 outputs. */
static int manifest_check(const struct store_manifest *m, struct error *err)
{
	char **outs = xcalloc(m->outputs_nr + 1, sizeof(*outs));
	const char *bad = NULL;
	size_t n = m->outputs_nr;

	for (size_t i = 0; !bad && i < n; i++)
		if (!clean_path(outs[i] = m->outputs[i]))
			bad = m->outputs[i];
	if (!bad && n)
		qsort(outs, n, sizeof(*outs), cmp_walk_p);
	for (size_t i = 1; !bad && i < n; i++)
		if (path_overlaps(outs[i - 1], outs[i]))
			bad = outs[i];
	for (size_t i = 0; !bad && i < m->dirs_nr; i++)
		if (!clean_path(m->dirs[i]) || !in_output(outs, n, m->dirs[i]))
			bad = m->dirs[i];
	for (size_t i = 0; !bad && i < m->files_nr; i++)
		if (!clean_path(m->files[i].path) ||
		    !in_output(outs, n, m->files[i].path))
			bad = m->files[i].path;
	free(outs);
	if (bad)
		return error_set(err, EXIT_FAILED,
				 "'%s': unsafe or overlapping path '%s'",
				 STORE_MANIFEST, bad);
	return 0;
}

int manifest_parse(const char *buf, size_t len, struct store_manifest *m,
		   struct error *err)
{
	size_t hl = strlen(MANIFEST_HEADER);
	const char *p = buf + hl, *end = buf + len;

	store_manifest_init(m);
	if (len < hl || memcmp(buf, MANIFEST_HEADER, hl))
		return error_set(err, EXIT_FAILED,
				 "'%s' is not a pipe manifest (version 1)",
				 STORE_MANIFEST);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (!nl || parse_line(m, p, (size_t)(nl - p))) {
			error_set(err, EXIT_FAILED,
				  "'%s': malformed line '%.*s'", STORE_MANIFEST,
				  (int)((nl ? nl : end) - p), p);
			store_manifest_release(m);
			return -1;
		}
		p = nl + 1;
	}
	manifest_sort(m);
	if (manifest_check(m, err)) {
		store_manifest_release(m);
		return -1;
	}
	return 0;
}
