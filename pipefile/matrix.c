/* Matrix stages: ${var} references and their substitution, and the walk
 * over every combination of a stage's matrix values. */
#include "pipefile/internal.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

static int is_name_start(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_name_char(int c)
{
	return is_name_start(c) || (c >= '0' && c <= '9');
}

static const struct pf_var *find_var(const struct pf_var *vars, size_t nr,
				     const char *name, size_t len)
{
	for (size_t i = 0; i < nr; i++)
		if (!strncmp(vars[i].name, name, len) && !vars[i].name[len])
			return &vars[i];
	return NULL;
}

static int in_env(const char *const *env, size_t nr, const char *name,
		  size_t len)
{
	size_t lo = 0, hi = nr;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strncmp(env[mid], name, len);

		if (!c && !env[mid][len])
			return 1;
		if (c < 0) /* c == 0: env[mid] is longer, so later */
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

long pipefile_find_undefined(const char *s, const struct pf_var *vars,
			     size_t nr, const char *const *env, size_t env_nr,
			     size_t *ref_len)
{
	for (const char *p = s; (p = strchr(p, '$'));) {
		const char *name, *end;
		size_t len;

		if (p[1] == '$' && p[2] == '{') {
			p += 3;
			continue;
		}
		if (p[1] != '{') {
			p++;
			continue;
		}
		name = p + 2;
		end = strchr(name, '}');
		if (!end) {
			*ref_len = 0;
			return p - s;
		}
		/* ${NAME:-default} and friends: NAME decides */
		for (len = 0; is_name_char(name[len]); len++)
			;
		if (!(len && is_name_start(*name) &&
		      (find_var(vars, nr, name, len) ||
		       !strncmp(name, "PIPE_", 5) ||
		       in_env(env, env_nr, name, len)))) {
			*ref_len = (size_t)(end - p) + 1;
			return p - s;
		}
		p = end + 1;
	}
	return -1;
}

static int add(struct strbuf *out, const char *s, size_t n, size_t max)
{
	if (n > max || out->len > max - n)
		return -1;
	strbuf_add(out, s, n);
	return 0;
}

int pipefile_substitute(struct strbuf *out, const char *s,
			const struct pf_var *vars, size_t nr, size_t max)
{
	const char *p;

	while ((p = strchr(s, '$'))) {
		const struct pf_var *v = NULL;
		const char *end = NULL;

		if (add(out, s, (size_t)(p - s), max))
			return -1;
		if (p[1] == '$' && p[2] == '{') {
			/* "$${" -> "${", the rest copied as it is */
			if (add(out, "$", 1, max))
				return -1;
			s = p + 2;
			continue;
		}
		if (p[1] == '{' && (end = strchr(p + 2, '}')))
			v = find_var(vars, nr, p + 2, (size_t)(end - p - 2));
		if (v) {
			if (add(out, v->value, strlen(v->value), max))
				return -1;
			s = end + 1;
		} else {
			if (add(out, "$", 1, max))
				return -1;
			s = p + 1;
		}
	}
	return add(out, s, strlen(s), max);
}

/* Values become part of stage names (and so of git refs) and of paths. */
static int value_ok(const char *v)
{
	if (!*v)
		return 0;
	for (; *v; v++)
		if (!is_name_char(*v) && !strchr(".+-", *v))
			return 0;
	return 1;
}

static int check_key(const struct ynode *k, const struct ynode *v,
		     const char *stage, const struct pf_src *src,
		     struct error *err)
{
	const char *key = k->str;

	if (!is_name_start(*key) || strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
						"abcdefghijklmnopqrstuvwxyz"
						"0123456789_") != k->nr)
		return pipefile_src_error(
			src, err, k->line, k->col,
			"bad matrix key '%s' in stage '%s' (use letters, "
			"digits and '_', not starting with a digit)",
			key, stage);
	if (v->kind != YNODE_SEQ || !v->nr)
		return pipefile_src_error(
			src, err, v->line, v->col,
			"matrix key '%s' in stage '%s' needs a non-empty list "
			"of values, e.g. [0.1, 0.01]",
			key, stage);
	for (uint32_t i = 0; i < v->nr; i++) {
		const struct ynode *x = v->items[i];

		if (x->kind != YNODE_SCALAR || !value_ok(x->str))
			return pipefile_src_error(
				src, err, x->line, x->col,
				"bad value for matrix key '%s' in stage '%s' "
				"(values become part of stage names: use "
				"letters, digits, '_', '.', '+' and '-')",
				key, stage);
	}
	return 0;
}

int pipefile_matrix_init(struct pf_matrix *m, const struct ynode *node,
			 const char *stage, const struct pf_src *src,
			 struct error *err)
{
	memset(m, 0, sizeof(*m));
	m->combos = 1;
	if (!node || pipefile_yaml_is_null(node))
		return 0;
	if (node->kind != YNODE_MAP || !node->nr)
		return pipefile_src_error(
			src, err, node->line, node->col,
			"'matrix' in stage '%s' must be a mapping of keys to "
			"lists of values, e.g. { lr: [0.1, 0.01] }",
			stage);
	m->nr = node->nr;
	m->keys = xcalloc(m->nr, sizeof(*m->keys));
	m->vals = xcalloc(m->nr, sizeof(*m->vals));
	m->idx = xcalloc(m->nr, sizeof(*m->idx));
	m->vars = xcalloc(m->nr, sizeof(*m->vars));
	for (size_t i = 0; i < m->nr; i++) {
		m->keys[i] = node->items[2 * i];
		m->vals[i] = node->items[2 * i + 1];
		if (check_key(m->keys[i], m->vals[i], stage, src, err))
			return -1;
		m->vars[i].name = m->keys[i]->str;
		if (m->combos > PIPEFILE_MAX_STAGES / m->vals[i]->nr)
			return pipefile_src_error(
				src, err, node->line, node->col,
				"the matrix of stage '%s' makes more than %u "
				"stages",
				stage, PIPEFILE_MAX_STAGES);
		m->combos *= m->vals[i]->nr;
	}
	return 0;
}

int pipefile_matrix_next(struct pf_matrix *m)
{
	size_t i;

	if (!m->started) {
		m->started = 1;
		for (i = 0; i < m->nr; i++)
			m->vars[i].value = m->vals[i]->items[0]->str;
		return 1;
	}
	/* an odometer: the last key turns fastest */
	for (i = m->nr; i-- > 0;) {
		if (++m->idx[i] < m->vals[i]->nr) {
			m->vars[i].value = m->vals[i]->items[m->idx[i]]->str;
			return 1;
		}
		m->idx[i] = 0;
		m->vars[i].value = m->vals[i]->items[0]->str;
	}
	return 0;
}

void pipefile_matrix_name(const struct pf_matrix *m, const char *base,
			  struct strbuf *out)
{
	strbuf_addstr(out, base);
	for (size_t i = 0; i < m->nr; i++)
		strbuf_addf(out, "%c%s=%s", i ? ',' : '@', m->vars[i].name,
			    m->vars[i].value);
}

void pipefile_matrix_release(struct pf_matrix *m)
{
	free(m->keys);
	free(m->vals);
	free(m->idx);
	free(m->vars);
	memset(m, 0, sizeof(*m));
}
