/* Params files (YAML or JSON, DVC's params.yaml): the values of the keys a
 * stage names, as canonical text. Each file is read and parsed once. */
#include "pipefile/internal.h"
#include "pipefile/pipefile.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct params_file {
	char *path;
	struct strbuf text;
	struct ydoc doc;
	struct error err; /* set when it could not be read or parsed */
};

struct pf_params {
	struct params_file *files;
	size_t nr, alloc;
};

struct pf_params *pipefile_params_new(void)
{
	return xcalloc(1, sizeof(struct pf_params));
}

void pipefile_params_free(struct pf_params *pp)
{
	if (!pp)
		return;
	for (size_t i = 0; i < pp->nr; i++) {
		pipefile_yaml_release(&pp->files[i].doc);
		strbuf_release(&pp->files[i].text);
		error_release(&pp->files[i].err);
		free(pp->files[i].path);
	}
	free(pp->files);
	free(pp);
}

static struct params_file *load(struct pf_params *pp, const char *path)
{
	struct params_file *f;
	struct pf_src src;

	for (size_t i = 0; i < pp->nr; i++)
		if (!strcmp(pp->files[i].path, path))
			return &pp->files[i];
	ALLOC_GROW(pp->files, pp->nr + 1, pp->alloc);
	f = &pp->files[pp->nr++];
	memset(f, 0, sizeof(*f));
	f->path = xstrdup(path);
	strbuf_init(&f->text, 0);
	error_init(&f->err);
	if (strbuf_read_file(&f->text, path, 0)) {
		error_set(&f->err, EXIT_USAGE,
			  "cannot read params file '%s': %s", path,
			  strerror(errno));
		return f;
	}
	src.name = f->path;
	src.text = f->text.buf;
	src.len = f->text.len;
	pipefile_yaml_load(&f->doc, &src, &f->err);
	return f;
}

static void copy_error(struct error *dst, const struct error *src)
{
	error_set_at(dst, src->exit_code, src->file, src->line, src->col,
		     src->source_line, "%s", src->msg.buf);
}

/* Flow-style text for any node: the canonical form of a value. */
static void format_node(const struct ynode *n, struct strbuf *out)
{
	switch (n->kind) {
	case YNODE_SCALAR:
		if (n->style == YSTYLE_PLAIN)
			strbuf_addstr(out, n->str);
		else
			strbuf_addf(out, "\"%s\"", n->str);
		break;
	case YNODE_SEQ:
		strbuf_addch(out, '[');
		for (uint32_t i = 0; i < n->nr; i++) {
			if (i)
				strbuf_addstr(out, ", ");
			format_node(n->items[i], out);
		}
		strbuf_addch(out, ']');
		break;
	case YNODE_MAP:
		strbuf_addch(out, '{');
		for (uint32_t i = 0; i < n->nr; i++) {
			if (i)
				strbuf_addstr(out, ", ");
			format_node(n->items[2 * i], out);
			strbuf_addstr(out, ": ");
			format_node(n->items[2 * i + 1], out);
		}
		strbuf_addch(out, '}');
		break;
	}
}

/* Walk "a.b.c": at each level prefer the longest dotted key that exists,
 * so keys that themselves contain dots ("lr.decay") still resolve. */
static const struct ynode *lookup(const struct ynode *n, const char *key)
{
	if (!*key)
		return n;
	if (!n || n->kind != YNODE_MAP)
		return NULL;
	for (uint32_t i = 0; i < n->nr; i++) {
		const struct ynode *k = n->items[2 * i];
		size_t len;

		if (k->kind != YNODE_SCALAR)
			continue;
		len = strlen(k->str);
		if (!strncmp(key, k->str, len) &&
		    (key[len] == '\0' || key[len] == '.')) {
			const struct ynode *hit =
				lookup(n->items[2 * i + 1],
				       key[len] ? key + len + 1 : "");

			if (hit)
				return hit;
		}
	}
	return NULL;
}

int pipefile_params_get(struct pf_params *pp, const struct pf_param *p,
			struct strbuf *out, struct error *err)
{
	const char *file = p->file ? p->file : "params.yaml";
	struct params_file *f = load(pp, file);
	const struct ynode *v;

	if (f->err.exit_code) {
		copy_error(err, &f->err);
		return -1;
	}
	v = lookup(f->doc.root, p->key);
	if (!v)
		return error_set(err, EXIT_USAGE, "param '%s' is not in '%s'",
				 p->key, file);
	format_node(v, out);
	return 0;
}
