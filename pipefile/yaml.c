/* The one door to libyaml: its event parser builds a small node tree with
 * 1-based line and byte column per node, applies anchors, aliases and merge
 * keys, marks duplicate keys, and refuses hostile input (alias bombs, deep
 * nesting, too many nodes) with located errors. */
#include "pipefile/internal.h"
#include "util/xalloc.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Every node and string of a document lives in an arena, freed at once. */
struct pf_arena {
	struct chunk *head;
	char *ptr;
	size_t left;
};

struct chunk {
	struct chunk *next;
	max_align_t data[];
};

#define CHUNK_SIZE (64u << 10)

/* Nodes and item arrays hold pointers and 32-bit fields: 8-byte alignment
 * is all they need (a node takes 40 bytes, not 48); strings need none and
 * are packed (at 100,000 stages the tree is most of a parse's memory). */
#define NODE_ALIGN ((size_t)8)

static void *take(struct pf_arena *a, size_t n, size_t align)
{
	size_t pad = (size_t)(-(uintptr_t)a->ptr & (align - 1));
	struct chunk *c;
	size_t size;
	void *p;

	if (!a->ptr || pad + n > a->left) {
		size = n > CHUNK_SIZE ? n : CHUNK_SIZE;
		c = xmalloc(sizeof(*c) + size);
		c->next = a->head;
		a->head = c;
		a->ptr = (char *)c->data;
		a->left = size;
		pad = 0;
	}
	p = a->ptr + pad;
	a->ptr += pad + n;
	a->left -= pad + n;
	return p;
}

static void *arena_alloc(struct pf_arena *a, size_t n)
{
	return take(a, n, NODE_ALIGN);
}

static char *arena_strdup(struct pf_arena *a, const char *s, size_t n)
{
	char *p = take(a, n + 1, 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* The arena back to mark: the chunks taken since go. */
static void arena_reset(struct pf_arena *a, const struct pf_arena *mark)
{
	while (a->head != mark->head) {
		struct chunk *c = a->head;

		a->head = c->next;
		free(c);
	}
	*a = *mark;
}

/* libyaml counts columns in characters; messages need bytes. For ASCII
 * text they agree. Otherwise walk from the last position: events come
 * nearly in order, so the walk stays short. */
struct markconv {
	const char *text;
	size_t len;
	int ascii;
	size_t line, start; /* cached line (0-based) and its offset */
	size_t ccol, cbyte; /* a known char column and its byte offset */
};

static void mark_pos(struct markconv *mc, const yaml_mark_t *m, int *line,
		     int *col)
{
	*line = (int)m->line + 1;
	if (mc->ascii) {
		*col = (int)m->column + 1;
		return;
	}
	while (mc->line < m->line) {
		const char *nl =
			memchr(mc->text + mc->start, '\n', mc->len - mc->start);
		if (!nl)
			break;
		mc->start = (size_t)(nl - mc->text) + 1;
		mc->line++;
		mc->ccol = mc->cbyte = 0;
	}
	while (mc->line > m->line) {
		size_t s = mc->start - 1;

		while (s > 0 && mc->text[s - 1] != '\n')
			s--;
		mc->start = s;
		mc->line--;
		mc->ccol = mc->cbyte = 0;
	}
	if (m->column < mc->ccol)
		mc->ccol = mc->cbyte = 0;
	while (mc->ccol < m->column && mc->start + mc->cbyte < mc->len) {
		mc->cbyte++;
		while (mc->start + mc->cbyte < mc->len &&
		       (mc->text[mc->start + mc->cbyte] & 0xc0) == 0x80)
			mc->cbyte++;
		mc->ccol++;
	}
	*col = (int)(mc->cbyte + (m->column - mc->ccol)) + 1;
}

/* An open collection. */
struct frame {
	struct ynode *node;
	size_t start; /* its first child in loader.items */
	char *anchor;
};

struct loader {
	const struct pf_src *src;
	struct error *err;
	struct pf_arena *arena;
	struct markconv mc;
	struct frame stack[PIPEFILE_MAX_DEPTH + 1];
	int depth;
	struct ynode **items; /* children of every open collection */
	size_t items_nr, items_alloc;
	struct strmap anchors;
	struct ynode *root;
	size_t nodes;	/* written in the file */
	size_t aliased; /* reached through aliases */
	int docs;
	const struct ystream *stream; /* or NULL */
	int streaming;		      /* inside the root's stages: */
	int hook_said_no;
	size_t anchors_set;
	struct pf_arena mark; /* the arena where the stages' pairs begin */
	size_t mark_anchors;
};

__attribute__((format(printf, 3, 4))) static int fail_at(struct loader *l,
							 const yaml_mark_t *m,
							 const char *fmt, ...)
{
	struct strbuf msg = STRBUF_INIT;
	int line, col;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&msg, fmt, ap);
	va_end(ap);
	mark_pos(&l->mc, m, &line, &col);
	pipefile_src_error(l->src, l->err, line, col, "%s", msg.buf);
	strbuf_release(&msg);
	return -1;
}

static struct ynode *new_node(struct loader *l, int kind, const yaml_mark_t *m)
{
	struct ynode *n = arena_alloc(l->arena, sizeof(*n));

	memset(n, 0, sizeof(*n));
	n->kind = (unsigned char)kind;
	n->weight = 1;
	mark_pos(&l->mc, m, &n->line, &n->col);
	l->nodes++;
	return n;
}

/* A collection's children, moved from the loader's stack to the arena. */
static struct ynode **copy_items(struct loader *l, struct ynode **v, size_t n)
{
	struct ynode **items = arena_alloc(l->arena, (n + 1) * sizeof(*v));

	if (n)
		memcpy(items, v, n * sizeof(*v));
	items[n] = NULL;
	return items;
}

static uint32_t add_weight(uint32_t a, uint32_t b)
{
	return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

/* A pair of the root's stages: mapping ended: to the hook, and its nodes
 * go unless an anchor was set since the last pair. */
static int stream_pair(struct loader *l)
{
	struct ynode **pair = l->items + l->items_nr - 2;

	if (l->stream->stage(l->stream->arg, pair[0], pair[1])) {
		l->hook_said_no = 1;
		return 1;
	}
	l->items_nr -= 2;
	if (l->anchors_set == l->mark_anchors)
		arena_reset(l->arena, &l->mark);
	else
		l->mark = *l->arena;
	l->mark_anchors = l->anchors_set;
	return 0;
}

static int add_child(struct loader *l, struct ynode *n)
{
	if (!l->depth) {
		l->root = n;
		return 0;
	}
	ALLOC_GROW(l->items, l->items_nr + 1, l->items_alloc);
	l->items[l->items_nr++] = n;
	if (l->streaming && l->depth == 2 &&
	    !((l->items_nr - l->stack[1].start) & 1))
		return stream_pair(l);
	return 0;
}

static void set_anchor(struct loader *l, const yaml_char_t *anchor,
		       struct ynode *n)
{
	if (anchor) {
		size_t len = strlen((const char *)anchor);
		char *name = arena_strdup(l->arena, (const char *)anchor, len);

		strmap_put(&l->anchors, name, n);
		l->anchors_set++;
	}
}

int pipefile_yaml_is_null(const struct ynode *n)
{
	return n->kind == YNODE_SCALAR && n->style == YSTYLE_PLAIN &&
	       (!n->nr || !strcmp(n->str, "~") || !strcmp(n->str, "null") ||
		!strcmp(n->str, "Null") || !strcmp(n->str, "NULL"));
}

static int on_scalar(struct loader *l, yaml_event_t *e)
{
	static const unsigned char styles[] = {
		[YAML_PLAIN_SCALAR_STYLE] = YSTYLE_PLAIN,
		[YAML_SINGLE_QUOTED_SCALAR_STYLE] = YSTYLE_SINGLE,
		[YAML_DOUBLE_QUOTED_SCALAR_STYLE] = YSTYLE_DOUBLE,
		[YAML_LITERAL_SCALAR_STYLE] = YSTYLE_BLOCK,
		[YAML_FOLDED_SCALAR_STYLE] = YSTYLE_BLOCK,
	};
	struct ynode *n = new_node(l, YNODE_SCALAR, &e->start_mark);
	size_t len = e->data.scalar.length;

	if ((size_t)e->data.scalar.style < ARRAY_SIZE(styles))
		n->style = styles[e->data.scalar.style];
	n->nr = (uint32_t)len;
	n->str =
		arena_strdup(l->arena, (const char *)e->data.scalar.value, len);
	set_anchor(l, e->data.scalar.anchor, n);
	return add_child(l, n);
}

static int on_start(struct loader *l, yaml_event_t *e, int kind)
{
	const yaml_char_t *anchor = kind == YNODE_MAP
					    ? e->data.mapping_start.anchor
					    : e->data.sequence_start.anchor;
	struct frame *f;

	if (l->depth >= PIPEFILE_MAX_DEPTH)
		return fail_at(l, &e->start_mark,
			       "nesting deeper than %d levels",
			       PIPEFILE_MAX_DEPTH);
	if (l->stream && l->depth == 1 && kind == YNODE_MAP && !anchor &&
	    l->stack[0].node->kind == YNODE_MAP && !l->root &&
	    ((l->items_nr - l->stack[0].start) & 1) &&
	    !strcmp(l->items[l->items_nr - 1]->str, "stages")) {
		if (l->stream->begin(l->stream->arg,
				     l->items + l->stack[0].start,
				     (l->items_nr - l->stack[0].start) / 2)) {
			l->hook_said_no = 1;
			return 1;
		}
		l->streaming = 1;
	}
	f = &l->stack[l->depth++];
	f->node = new_node(l, kind, &e->start_mark);
	f->start = l->items_nr;
	f->anchor = NULL;
	if (anchor)
		f->anchor = arena_strdup(l->arena, (const char *)anchor,
					 strlen((const char *)anchor));
	if (l->streaming && l->depth == 2) {
		l->mark = *l->arena;
		l->mark_anchors = l->anchors_set;
	}
	return 0;
}

static int on_alias(struct loader *l, yaml_event_t *e)
{
	const char *name = (const char *)e->data.alias.anchor;
	struct ynode *n = strmap_get(&l->anchors, name);
	size_t cap;

	if (!n)
		return fail_at(l, &e->start_mark,
			       "alias '*%s' names no anchor defined before it",
			       name);
	l->aliased += n->weight;
	cap = PIPEFILE_MAX_ALIAS_NODES + PIPEFILE_ALIAS_RATIO * l->nodes;
	if (l->aliased > cap)
		return fail_at(l, &e->start_mark,
			       "aliases expand to too many nodes (an alias "
			       "bomb?) at '*%s'",
			       name);
	return add_child(l, n);
}

/* Look for a repeated key among pairs[0..nr) (keys at even indices).
 * Small mappings compare pairwise; larger ones use a hash map, so that
 * 10,000 stages cost O(n). */
static void find_dup(struct ynode **pairs, size_t nr, uint32_t *dup,
		     uint32_t *first)
{
	struct strmap seen;

	*dup = *first = 0;
	if (nr <= 8) {
		for (size_t i = 1; i < nr; i++)
			for (size_t j = 0; j < i; j++)
				if (!strcmp(pairs[2 * i]->str,
					    pairs[2 * j]->str)) {
					*dup = (uint32_t)i + 1;
					*first = (uint32_t)j + 1;
					return;
				}
		return;
	}
	strmap_init(&seen, nr);
	for (size_t i = 0; i < nr; i++) {
		void *prev =
			strmap_put(&seen, pairs[2 * i]->str, (void *)(i + 1));
		if (prev) {
			*dup = (uint32_t)i + 1;
			*first = (uint32_t)(size_t)prev;
			break;
		}
	}
	strmap_release(&seen);
}

static int is_merge_key(const struct ynode *k)
{
	return k->style == YSTYLE_PLAIN && !strcmp(k->str, "<<");
}

/* Append the pairs of source map src that own (the mapping's own keys)
 * and out (pairs merged so far) do not have yet. */
static void merge_from(struct ynode *src, struct strmap *have,
		       struct ynode ***out, size_t *nr, size_t *alloc)
{
	for (uint32_t i = 0; i < src->nr; i++) {
		struct ynode *k = src->items[2 * i];

		if (strmap_get(have, k->str))
			continue;
		strmap_put(have, k->str, k);
		ALLOC_GROW(*out, *nr + 2, *alloc);
		(*out)[(*nr)++] = k;
		(*out)[(*nr)++] = src->items[2 * i + 1];
	}
}

/* A merge takes a mapping or a list of mappings; a repeated key inside
 * one is an error here, as the mapping vanishes into the merge. */
static int check_merge(struct loader *l, const struct ynode *v)
{
	const struct ynode *m = v, *k, *first;

	for (uint32_t i = 0; i < (v->kind == YNODE_SEQ ? v->nr : 1); i++) {
		if (v->kind == YNODE_SEQ)
			m = v->items[i];
		if (m->kind != YNODE_MAP)
			return pipefile_src_error(
				l->src, l->err, m->line, m->col,
				"'<<' merges a mapping or a list of mappings "
				"(e.g. '<<: *base')");
		if (!m->dup)
			continue;
		k = m->items[2 * (m->dup - 1)];
		first = m->items[2 * (m->dup_first - 1)];
		return pipefile_src_error(
			l->src, l->err, k->line, k->col,
			"duplicate key '%s' in a merged mapping (first at %s "
			"%d)",
			k->str, first->line == k->line ? "column" : "line",
			first->line == k->line ? first->col : first->line);
	}
	return 0;
}

/* Apply merge keys: the mapping's own keys win, then the sources in the
 * order listed; merged pairs take the place of the "<<" key. */
static int apply_merges(struct loader *l, struct ynode *map, struct ynode **own,
			size_t nr)
{
	struct ynode **out = NULL;
	size_t out_nr = 0, alloc = 0;
	struct strmap have;

	strmap_init(&have, nr * 2);
	for (size_t i = 0; i < nr; i++)
		if (!is_merge_key(own[2 * i]))
			strmap_put(&have, own[2 * i]->str, own[2 * i]);
	for (size_t i = 0; i < nr; i++) {
		struct ynode *k = own[2 * i], *v = own[2 * i + 1];

		if (!is_merge_key(k)) {
			ALLOC_GROW(out, out_nr + 2, alloc);
			out[out_nr++] = k;
			out[out_nr++] = v;
		} else if (check_merge(l, v)) {
			free(out);
			strmap_release(&have);
			return -1;
		} else if (v->kind == YNODE_MAP) {
			merge_from(v, &have, &out, &out_nr, &alloc);
		} else {
			for (uint32_t j = 0; j < v->nr; j++)
				merge_from(v->items[j], &have, &out, &out_nr,
					   &alloc);
		}
	}
	map->nr = (uint32_t)(out_nr / 2);
	map->items = copy_items(l, out, out_nr);
	free(out);
	strmap_release(&have);
	return 0;
}

static int has_merge_key(struct ynode **pairs, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		if (is_merge_key(pairs[2 * i]))
			return 1;
	return 0;
}

static int finish_map(struct loader *l, struct ynode *map, struct ynode **pairs,
		      size_t n)
{
	uint32_t dup, first;

	for (size_t i = 0; i < n; i += 2)
		if (pairs[i]->kind != YNODE_SCALAR)
			return pipefile_src_error(
				l->src, l->err, pairs[i]->line, pairs[i]->col,
				"mapping keys must be plain strings");
	find_dup(pairs, n / 2, &dup, &first);
	if (dup && is_merge_key(pairs[2 * (dup - 1)]))
		return pipefile_src_error(
			l->src, l->err, pairs[2 * (dup - 1)]->line,
			pairs[2 * (dup - 1)]->col,
			"more than one '<<' in a mapping (merge a list "
			"instead: '<<: [*a, *b]')");
	if (has_merge_key(pairs, n / 2)) {
		struct ynode *dk = dup ? pairs[2 * (dup - 1)] : NULL;
		struct ynode *fk = dup ? pairs[2 * (first - 1)] : NULL;

		if (apply_merges(l, map, pairs, n / 2))
			return -1;
		/* the own keys stay in the merged list; find them again */
		for (uint32_t i = 0; dk && i < map->nr; i++) {
			if (map->items[2 * i] == dk)
				map->dup = i + 1;
			if (map->items[2 * i] == fk)
				map->dup_first = i + 1;
		}
		return 0;
	}
	map->nr = (uint32_t)(n / 2);
	map->items = copy_items(l, pairs, n);
	map->dup = dup;
	map->dup_first = first;
	return 0;
}

static int on_end(struct loader *l)
{
	struct frame *f = &l->stack[--l->depth];
	struct ynode *n = f->node;
	struct ynode **kids = l->items ? l->items + f->start : NULL;
	size_t nr = l->items_nr - f->start;

	for (size_t i = 0; i < nr; i++)
		n->weight = add_weight(n->weight, kids[i]->weight);
	if (n->kind == YNODE_MAP) {
		if (finish_map(l, n, kids, nr))
			return -1;
	} else {
		n->nr = (uint32_t)nr;
		n->items = copy_items(l, kids, nr);
	}
	l->items_nr = f->start;
	if (f->anchor) {
		strmap_put(&l->anchors, f->anchor, n);
		l->anchors_set++;
	}
	if (l->streaming && l->depth == 1)
		l->streaming = 0; /* the stages mapping ended */
	return add_child(l, n);
}

static int on_event(struct loader *l, yaml_event_t *e)
{
	if (l->nodes > PIPEFILE_MAX_NODES)
		return fail_at(l, &e->start_mark,
			       "too many YAML nodes (more than %u)",
			       PIPEFILE_MAX_NODES);
	switch (e->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (l->docs++)
			return fail_at(l, &e->start_mark,
				       "more than one YAML document (a "
				       "Pipefile is one document: remove the "
				       "'---')");
		return 0;
	case YAML_SCALAR_EVENT:
		return on_scalar(l, e);
	case YAML_SEQUENCE_START_EVENT:
		return on_start(l, e, YNODE_SEQ);
	case YAML_MAPPING_START_EVENT:
		return on_start(l, e, YNODE_MAP);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		return on_end(l);
	case YAML_ALIAS_EVENT:
		return on_alias(l, e);
	default:
		return 0;
	}
}

/* True when byte col of line is a tab with only blanks before it. */
static int tab_indent(const struct pf_src *src, int line, int col)
{
	size_t len;
	const char *s = pipefile_src_line(src, line, &len);

	if (!s || col < 1 || (size_t)col > len || s[col - 1] != '\t')
		return 0;
	for (int i = 0; i < col - 1; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return 0;
	return 1;
}

static size_t count_chars(const struct pf_src *src)
{
	size_t n = 0;

	for (size_t i = 0; i < src->len; i++)
		n += ((unsigned char)src->text[i] & 0xc0) != 0x80;
	return n;
}

/* The reader (encoding, control characters) gives a byte offset, not a
 * mark. */
static int reader_error(struct loader *l, yaml_parser_t *p)
{
	const char *text = l->src->text;
	size_t off = p->problem_offset, start = 0;
	int line = 1;

	if (off > l->src->len)
		off = l->src->len;
	for (size_t i = 0; i < off; i++)
		if (text[i] == '\n') {
			line++;
			start = i + 1;
		}
	if (p->problem_value < 0)
		return pipefile_src_error(l->src, l->err, line,
					  (int)(off - start) + 1,
					  "YAML syntax error: %s", p->problem);
	return pipefile_src_error(l->src, l->err, line, (int)(off - start) + 1,
				  "YAML syntax error: %s (byte 0x%02x)",
				  p->problem,
				  (unsigned)p->problem_value & 0xff);
}

/* Turn libyaml's error into ours. A tab in the indentation and an
 * unclosed quote get words of their own; a problem found at the end of
 * the input is shown where the unfinished construct began. */
static int syntax_error(struct loader *l, yaml_parser_t *p)
{
	const yaml_mark_t *m = &p->problem_mark;
	const char *problem = p->problem ? p->problem : "cannot parse";
	struct strbuf msg = STRBUF_INIT;
	int at_end, line, col;

	if (p->error == YAML_MEMORY_ERROR) {
		fail_at(l, m, "out of memory while parsing YAML");
		return -1;
	}
	if (p->error == YAML_READER_ERROR)
		return reader_error(l, p);
	mark_pos(&l->mc, m, &line, &col);
	at_end = p->context && m->index >= count_chars(l->src);
	if (p->context && strstr(p->context, "quoted scalar") && at_end) {
		m = &p->context_mark;
		strbuf_addstr(&msg, "unclosed quote: this string never ends");
	} else if (tab_indent(l->src, line, col)) {
		strbuf_addstr(&msg, "tab character in the indentation (YAML "
				    "indents with spaces)");
	} else {
		strbuf_addf(&msg, "YAML syntax error: %s", problem);
		if (at_end) {
			strbuf_addf(&msg, " (%s that starts here)", p->context);
			m = &p->context_mark;
		} else if (p->context) {
			strbuf_addf(&msg, " (%s at line %zu)", p->context,
				    p->context_mark.line + 1);
		}
	}
	fail_at(l, m, "%s", msg.buf);
	strbuf_release(&msg);
	return -1;
}

static int is_ascii(const char *s, size_t n)
{
	unsigned char acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= (unsigned char)s[i];
	return !(acc & 0x80);
}

static int load(struct ydoc *doc, const struct pf_src *src,
		const struct ystream *stream, struct error *err)
{
	struct loader l = {.src = src, .err = err, .stream = stream};
	yaml_parser_t parser;
	yaml_event_t event;
	int ret = 0, done = 0;

	doc->root = NULL;
	doc->arena = xcalloc(1, sizeof(*doc->arena));
	l.arena = doc->arena;
	l.mc.text = src->text;
	l.mc.len = src->len;
	l.mc.ascii = is_ascii(src->text, src->len);
	strmap_init(&l.anchors, 0);
	if (!yaml_parser_initialize(&parser))
		return pipefile_src_error(src, err, 0, 0,
					  "cannot start the YAML parser");
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
	yaml_parser_set_input_string(&parser, (const unsigned char *)src->text,
				     src->len);
	while (!done) {
		if (!yaml_parser_parse(&parser, &event)) {
			ret = syntax_error(&l, &parser);
			break;
		}
		done = event.type == YAML_STREAM_END_EVENT;
		ret = on_event(&l, &event);
		yaml_event_delete(&event);
		if (ret)
			break;
	}
	yaml_parser_delete(&parser);
	free(l.items);
	strmap_release(&l.anchors);
	doc->root = ret ? NULL : l.root;
	return l.hook_said_no ? 1 : ret;
}

int pipefile_yaml_load(struct ydoc *doc, const struct pf_src *src,
		       struct error *err)
{
	return load(doc, src, NULL, err);
}

int pipefile_yaml_stream(struct ydoc *doc, const struct pf_src *src,
			 const struct ystream *s, struct error *err)
{
	return load(doc, src, s, err);
}

void pipefile_yaml_release(struct ydoc *doc)
{
	struct chunk *c, *next;

	if (!doc->arena)
		return;
	for (c = doc->arena->head; c; c = next) {
		next = c->next;
		free(c);
	}
	free(doc->arena);
	doc->arena = NULL;
	doc->root = NULL;
}

int pipefile_yaml_col_at(const struct ynode *n, const struct pf_src *src,
			 size_t off)
{
	size_t len;
	const char *s = pipefile_src_line(src, n->line, &len);
	size_t start = (size_t)n->col - 1;

	if (n->style == YSTYLE_SINGLE || n->style == YSTYLE_DOUBLE)
		start++;
	else if (n->style != YSTYLE_PLAIN)
		return n->col;
	if (!s || off > n->nr || start + off > len ||
	    memcmp(s + start, n->str, off))
		return n->col;
	return (int)(start + off) + 1;
}
