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

static int in_output(const struct store_manifest *m, const char *path)
{
	for (size_t i = 0; i < m->outputs_nr; i++)
		if (path_is_inside(path, m->outputs[i]))
			return 1;
	return 0;
}

/* A manifest may come from another machine (pipe pull): restore must
 * never write outside the workspace or through a path it wrote. */
static int manifest_check(const struct store_manifest *m, struct error *err)
{
	const char *bad = NULL;

	for (size_t i = 0; !bad && i < m->outputs_nr; i++) {
		if (!clean_path(m->outputs[i]))
			bad = m->outputs[i];
		for (size_t j = 0; !bad && j < i; j++)
			if (path_overlaps(m->outputs[i], m->outputs[j]))
				bad = m->outputs[i];
	}
	for (size_t i = 0; !bad && i < m->dirs_nr; i++)
		if (!clean_path(m->dirs[i]) || !in_output(m, m->dirs[i]))
			bad = m->dirs[i];
	for (size_t i = 0; !bad && i < m->files_nr; i++)
		if (!clean_path(m->files[i].path) ||
		    !in_output(m, m->files[i].path))
			bad = m->files[i].path;
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
