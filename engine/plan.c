/* Fingerprints and reasons. The key is an XXH3-128 over a tagged, ordered
 * encoding of everything that decides a stage's outputs (SPEC §2); the
 * same parts are kept in the state record so that a changed key can be
 * explained part by part. */
#include "engine/plan.h"
#include "engine/engine.h"
#include "engine/graph.h"
#include "engine/scan.h"
#include "engine/state.h"
#include "executors/executor.h"
#include "pipefile/pipefile.h"
#include "util/glob.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/path.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Reasons listed per input before the rest are summed up. */
#define MAX_FILE_REASONS 10

void reasons_add(struct reasons *rs, enum reason_kind kind, const char *path,
		 const char *old_value, const char *new_value)
{
	struct reason *r;

	ALLOC_GROW(rs->v, rs->nr + 1, rs->alloc);
	r = &rs->v[rs->nr++];
	r->kind = kind;
	r->path = path ? xstrdup(path) : NULL;
	r->old_value = old_value ? xstrdup(old_value) : NULL;
	r->new_value = new_value ? xstrdup(new_value) : NULL;
}

void reasons_release(struct reasons *rs)
{
	for (size_t i = 0; i < rs->nr; i++) {
		free(rs->v[i].path);
		free(rs->v[i].old_value);
		free(rs->v[i].new_value);
	}
	free(rs->v);
	rs->v = NULL;
	rs->nr = rs->alloc = 0;
}

static const struct {
	const char *name; /* for --json */
	const char *fmt;  /* %1 path, %2 old, %3 new: see reason_format */
} kinds[] = {
	[REASON_NEVER_RUN] = {"never_run", "never run"},
	[REASON_DEFINITION] = {"definition", "definition changed"},
	[REASON_FORCED] = {"forced", "forced"},
	[REASON_COMMAND] = {"command", "command changed"},
	[REASON_EXECUTOR] = {"executor", "executor changed"},
	[REASON_IMAGE] = {"image", "image"},
	[REASON_ENV] = {"env", "env"},
	[REASON_PARAM] = {"param", "param"},
	[REASON_MATRIX] = {"matrix", "matrix value"},
	[REASON_DATUMS] = {"datums", "datums changed"},
	[REASON_INPUT_CHANGED] = {"input_changed", "changed"},
	[REASON_INPUT_ADDED] = {"input_added", "added"},
	[REASON_INPUT_REMOVED] = {"input_removed", "removed"},
	[REASON_UPSTREAM] = {"upstream", "changed"},
	[REASON_OUTPUT_MODIFIED] = {"output_modified", "modified"},
	[REASON_OUTPUT_MISSING] = {"output_missing", "missing"},
	[REASON_OUTPUT_ADDED] = {"output_added", "declared"},
	[REASON_OUTPUT_DROPPED] = {"output_dropped", "no longer declared"},
};

const char *reason_kind_name(enum reason_kind kind)
{
	return kinds[kind].name;
}

void reason_format(const struct reason *r, struct strbuf *out)
{
	const char *p = r->path ? r->path : "";

	switch (r->kind) {
	case REASON_IMAGE:
		strbuf_addf(out, "image '%s' now %s", p,
			    r->new_value ? r->new_value : "missing");
		break;
	case REASON_ENV:
		strbuf_addf(out, "env '%s' %s", p,
			    !r->old_value   ? "added"
			    : !r->new_value ? "removed"
					    : "changed");
		break;
	case REASON_PARAM:
	case REASON_MATRIX:
		strbuf_addf(out, "%s '%s' %s -> %s", kinds[r->kind].fmt, p,
			    r->old_value ? r->old_value : "(none)",
			    r->new_value ? r->new_value : "(none)");
		break;
	case REASON_INPUT_CHANGED:
	case REASON_INPUT_ADDED:
	case REASON_INPUT_REMOVED:
		strbuf_addf(out, "input '%s' %s", p, kinds[r->kind].fmt);
		if (r->new_value)
			strbuf_addf(out, " (%s)", r->new_value);
		break;
	case REASON_UPSTREAM:
		strbuf_addf(out, "upstream '%s' changed", p);
		break;
	case REASON_OUTPUT_MODIFIED:
	case REASON_OUTPUT_MISSING:
	case REASON_OUTPUT_ADDED:
	case REASON_OUTPUT_DROPPED:
		strbuf_addf(out, "output '%s' %s", p, kinds[r->kind].fmt);
		break;
	default:
		strbuf_addstr(out, kinds[r->kind].fmt);
	}
}

/* --- fingerprints --- */

static void hash_cmd(const struct pf_stage *s, struct hash128 *out)
{
	struct hasher *h = hasher_new();

	if (s->cmd_kind == PF_CMD_SHELL) {
		hasher_add_str(h, "sh");
		hasher_add_str(h, s->cmd);
	} else {
		hasher_add_str(h, "argv");
		for (size_t i = 0; i < s->rare->argv.nr; i++)
			hasher_add_str(h, s->rare->argv.v[i]);
	}
	hasher_final(h, out);
	hasher_free(h);
}

static struct state_kv *copy_kvs(const struct pf_kvs *src, int hash_values)
{
	struct state_kv *v = xcalloc(src->nr + 1, sizeof(*v));

	for (size_t i = 0; i < src->nr; i++) {
		v[i].key = xstrdup(src->v[i].key);
		if (hash_values) {
			/* env values may hold secrets: keep only a hash */
			struct hash128 hv;
			char hex[HASH_HEX_LEN + 1];

			hash_buf(src->v[i].value, strlen(src->v[i].value), &hv);
			hash_to_hex(&hv, hex);
			v[i].value = xstrdup(hex);
		} else {
			v[i].value = xstrdup(src->v[i].value);
		}
	}
	return v;
}

/* A params file that cannot be read or lacks the key: point at the
 * key in the Pipefile (an error inside the file keeps its own place). */
static int param_error(struct engine *e, const struct pf_param *p,
		       struct error *err)
{
	char *msg;

	if (err->file || !p->line)
		return -1;
	msg = strbuf_detach(&err->msg, NULL);
	pipefile_error_at(e->pf, err, p->line, p->col, "%s", msg);
	err->exit_code = EXIT_USAGE;
	free(msg);
	return -1;
}

static int read_params(struct engine *e, const struct pf_stage *s,
		       struct stage_record *rec, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;

	rec->params = xcalloc(s->rare->params_nr + 1, sizeof(*rec->params));
	for (size_t i = 0; i < s->rare->params_nr; i++) {
		strbuf_reset(&sb);
		if (pipefile_params_get(e->params, &s->rare->params[i], &sb,
					err)) {
			strbuf_release(&sb);
			return param_error(e, &s->rare->params[i], err);
		}
		rec->params[i].key = xstrdup(s->rare->params[i].key);
		rec->params[i].value = strbuf_detach(&sb, NULL);
		rec->params_nr++;
	}
	strbuf_release(&sb);
	return 0;
}

/* True when an upstream stage of si writes something the input may read. */
static int produced_upstream(struct engine *e, size_t si,
			     const struct pf_path *in)
{
	const struct graph_node *n = &e->g->nodes[si];

	for (size_t d = 0; d < n->deps_nr; d++) {
		const struct pf_paths *outs =
			&e->pf->stages[n->deps[d]].outputs;

		for (size_t j = 0; j < outs->nr; j++) {
			const char *o = outs->v[j].path;

			if (in->is_glob ? glob_match_under(in->path, o)
					: path_overlaps(in->path, o))
				return 1;
		}
	}
	return 0;
}

static void take_files(struct state_path *p, struct scan_list *l)
{
	p->files = xcalloc(l->nr + 1, sizeof(*p->files));
	for (size_t i = 0; i < l->nr; i++) {
		p->files[i].path = xstrdup(l->v[i].path);
		p->files[i].hash = l->v[i].hash;
	}
	p->files_nr = p->files_alloc = l->nr;
}

/* Paths worth a walk ahead: folders and globs (a plain file costs a stat
 * or two in turn). */
static int walks(const struct pf_path *pp)
{
	size_t len = strlen(pp->path);

	return (pp->is_glob && glob_has_magic(pp->path)) ||
	       (len && pp->path[len - 1] == '/');
}

static void add_ahead(struct engine *e, const struct pf_paths *v, size_t *alloc)
{
	for (size_t i = 0; i < v->nr; i++) {
		struct scan_ahead *a;

		if (!walks(&v->v[i]))
			continue;
		ALLOC_GROW(e->ahead, e->ahead_nr + 1, *alloc);
		a = &e->ahead[e->ahead_nr++];
		memset(a, 0, sizeof(*a));
		a->path = v->v[i].path; /* looked up by this pointer */
		a->is_glob = v->v[i].is_glob;
	}
}

static int cmp_ahead(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct scan_ahead *)a)->path;
	uintptr_t y = (uintptr_t)((const struct scan_ahead *)b)->path;

	return x < y ? -1 : x > y;
}

void plan_scan_ahead(struct engine *e, const unsigned char *mark)
{
	size_t alloc = 0, done = 0;

	plan_scan_ahead_end(e);
	for (size_t si = 0; si < e->pf->nr; si++) {
		const struct pf_stage *s = &e->pf->stages[si];

		if (mark && !mark[si])
			continue;
		if (!s->rare->datums
			     .path) /* its inputs' file lists are needed */
			add_ahead(e, &s->inputs, &alloc);
		add_ahead(e, &s->outputs, &alloc);
	}
	/* worth threads only when there are paths enough to share out */
	if (e->ahead_nr < 4) {
		plan_scan_ahead_end(e);
		return;
	}
	qsort(e->ahead, e->ahead_nr, sizeof(*e->ahead), cmp_ahead);
	scan_ahead(e->sc, ".", e->ahead, e->ahead_nr);
	for (size_t i = 0; i < e->ahead_nr; i++)
		done += e->ahead[i].done;
	log_trace_phase("scanned ahead");
	log_verbose("scanned %zu of %zu folders and globs ahead", done,
		    e->ahead_nr);
}

void plan_scan_ahead_end(struct engine *e)
{
	free(e->ahead);
	e->ahead = NULL;
	e->ahead_nr = 0;
}

/* A plain file, as scan_path's quick case sees it: no glob, no folder. */
static int plain_file(const struct pf_path *pp)
{
	size_t len = strlen(pp->path);

	return len && pp->path[len - 1] != '/' &&
	       !(pp->is_glob && glob_has_magic(pp->path));
}

void plan_prestat(struct engine *e, const unsigned char *mark)
{
	const char **v = NULL;
	size_t n = 0, alloc = 0;

	for (size_t si = 0; si < e->pf->nr; si++) {
		const struct pf_stage *s = &e->pf->stages[si];

		if (mark && !mark[si])
			continue;
		/* an input an upstream stage writes is looked at only
		 * after that stage ran: not ahead */
		for (size_t i = 0; i < s->inputs.nr; i++)
			if (plain_file(&s->inputs.v[i]) &&
			    !produced_upstream(e, si, &s->inputs.v[i])) {
				ALLOC_GROW(v, n + 1, alloc);
				v[n++] = s->inputs.v[i].path;
			}
		for (size_t i = 0; i < s->outputs.nr; i++)
			if (plain_file(&s->outputs.v[i])) {
				ALLOC_GROW(v, n + 1, alloc);
				v[n++] = s->outputs.v[i].path;
			}
	}
	scan_prestat_start(v, n);
	free(v);
}

void plan_prestat_drop(struct engine *e, size_t si)
{
	const struct pf_stage *s = &e->pf->stages[si];

	for (size_t i = 0; i < s->outputs.nr; i++)
		scan_prestat_drop(s->outputs.v[i].path);
}

static const struct scan_ahead *find_ahead(const struct engine *e,
					   const struct pf_path *pp)
{
	struct scan_ahead key = {.path = pp->path};
	const struct scan_ahead *a;

	if (!e->ahead_nr)
		return NULL;
	a = bsearch(&key, e->ahead, e->ahead_nr, sizeof(key), cmp_ahead);
	return a && a->done ? a : NULL;
}

static int scan_one(struct engine *e, const struct pf_path *pp,
		    struct state_path *out, int keep_files, int *found,
		    struct error *err)
{
	struct scan_list l = {0};
	const struct scan_ahead *a;
	int ret;

	memset(out, 0, sizeof(*out));
	out->path = xstrdup(pp->path);
	if (!keep_files && !(pp->is_glob && glob_has_magic(pp->path))) {
		ret = scan_file(e->sc, pp->path, &out->hash, &out->bytes, err);
		if (ret) {
			*found = ret > 0;
			return ret < 0 ? -1 : 0;
		}
	}
	/* folders and globs only: a plain file is never walked ahead */
	a = keep_files ? NULL : find_ahead(e, pp);
	if (a) {
		scan_ahead_take(e->sc, a);
		out->hash = a->hash;
		out->bytes = a->bytes;
		*found = 1;
		return 0;
	}
	ret = scan_path(e->sc, ".", pp->path, pp->is_glob, &l, found,
			&out->hash, err);
	if (!ret && keep_files)
		take_files(out, &l);
	for (size_t i = 0; i < l.nr; i++)
		out->bytes += l.v[i].size;
	out->missing = !*found;
	scan_list_release(&l);
	return ret;
}

static int scan_inputs(struct engine *e, size_t si, struct stage_record *rec,
		       int with_files, struct error *err)
{
	const struct pf_stage *s = &e->pf->stages[si];
	/* the datums' files are sorted out of the inputs' lists */
	int keep = with_files || s->rare->datums.path;

	rec->inputs = xcalloc(s->inputs.nr + 1, sizeof(*rec->inputs));
	for (size_t i = 0; i < s->inputs.nr; i++) {
		const struct pf_path *in = &s->inputs.v[i];
		int found = 0;

		if (scan_one(e, in, &rec->inputs[i], keep, &found, err))
			return -1;
		rec->bytes_in += rec->inputs[i].bytes;
		rec->inputs_nr++;
		if (!found && !produced_upstream(e, si, in))
			return pipefile_error_at(
				e->pf, err, in->line, in->col,
				"input '%s' of stage '%s' %s and no stage "
				"writes it",
				in->path, s->name,
				in->is_glob ? "matches nothing"
					    : "does not exist");
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The declared outputs belong to the definition: a stage that now writes
 * one more path is stale, and the run-cache never hands it a commit made
 * for another set of outputs. In sorted order: their order means
 * nothing. */
static void hash_outputs(const struct pf_stage *s, struct hasher *h)
{
	const char **v = xcalloc(s->outputs.nr + 1, sizeof(*v));

	for (size_t i = 0; i < s->outputs.nr; i++)
		v[i] = s->outputs.v[i].path;
	qsort(v, s->outputs.nr, sizeof(*v), cmp_str);
	hasher_add_str(h, "outputs");
	for (size_t i = 0; i < s->outputs.nr; i++)
		hasher_add_str(h, v[i]);
	free(v);
}

static void compute_key(const struct pf_stage *s, const struct stage_record *r,
			struct hash128 *key)
{
	struct hasher *h = hasher_new();

	hasher_add_str(h, "pipe-key 2");
	hash_outputs(s, h);
	hasher_add_hash(h, &r->cmd);
	hasher_add_str(h, r->executor);
	hasher_add_str(h, r->image ? r->image : "");
	hasher_add_str(h, r->datums ? r->datums : "");
	for (size_t i = 0; i < r->env_nr; i++) {
		hasher_add_str(h, r->env[i].key);
		hasher_add_str(h, r->env[i].value);
	}
	hasher_add_str(h, "params");
	for (size_t i = 0; i < r->params_nr; i++) {
		hasher_add_str(h, r->params[i].key);
		hasher_add_str(h, r->params[i].value);
	}
	hasher_add_str(h, "matrix");
	for (size_t i = 0; i < r->matrix_nr; i++) {
		hasher_add_str(h, r->matrix[i].key);
		hasher_add_str(h, r->matrix[i].value);
	}
	hasher_add_str(h, "inputs");
	for (size_t i = 0; i < r->inputs_nr; i++) {
		hasher_add_str(h, r->inputs[i].path);
		hasher_add_str(h, r->inputs[i].missing ? "-" : "+");
		hasher_add_hash(h, &r->inputs[i].hash);
	}
	hasher_final(h, key);
	hasher_free(h);
}

/* True when f is one of the datums' matches or lies inside one. */
static int in_datum(const char *glob, const char *f)
{
	struct strbuf sb = STRBUF_INIT;
	int hit = glob_match(glob, f);

	strbuf_addstr(&sb, f);
	while (!hit) {
		char *slash = strrchr(sb.buf, '/');

		if (!slash)
			break;
		strbuf_setlen(&sb, (size_t)(slash - sb.buf));
		hit = glob_match(glob, sb.buf);
	}
	strbuf_release(&sb);
	return hit;
}

/* Files matched by the datums glob count only for their own datum: drop
 * them from the other inputs, and rehash what is left. */
static void drop_datum_files(struct state_path *p, const char *glob)
{
	struct hasher *h;
	size_t k = 0;

	for (size_t i = 0; i < p->files_nr; i++) {
		if (in_datum(glob, p->files[i].path))
			free(p->files[i].path);
		else
			p->files[k++] = p->files[i];
	}
	if (k == p->files_nr)
		return;
	p->files_nr = k;
	h = hasher_new();
	hasher_add_str(h, "without datums");
	for (size_t i = 0; i < k; i++) {
		hasher_add_str(h, p->files[i].path);
		hasher_add_hash(h, &p->files[i].hash);
	}
	hasher_final(h, &p->hash);
	hasher_free(h);
}

static int scan_datums(struct engine *e, const struct pf_stage *s,
		       struct stage_record *rec, struct error *err)
{
	struct strvec matches = STRVEC_INIT;
	struct hasher *all = hasher_new();
	int ret = 0;

	for (size_t i = 0; i < rec->inputs_nr; i++)
		drop_datum_files(&rec->inputs[i], s->rare->datums.path);
	compute_key(s, rec, &rec->key);
	if (scan_glob(".", s->rare->datums.path, &matches, err)) {
		ret = -1;
		goto out;
	}
	rec->datum_list = xcalloc(matches.nr + 1, sizeof(*rec->datum_list));
	rec->datum_alloc = matches.nr + 1;
	hasher_add_hash(all, &rec->key);
	for (size_t i = 0; i < matches.nr; i++) {
		struct state_datum *d = &rec->datum_list[rec->datum_nr];
		struct scan_list l = SCAN_LIST_INIT;
		struct hasher *h;
		int found = 0;

		if (scan_path(e->sc, ".", matches.v[i], 0, &l, &found,
			      &d->content, err)) {
			scan_list_release(&l);
			ret = -1;
			goto out;
		}
		scan_list_release(&l);
		if (!found)
			continue;
		d->path = xstrdup(matches.v[i]);
		h = hasher_new();
		hasher_add_str(h, "datum");
		hasher_add_hash(h, &rec->key);
		hasher_add_str(h, d->path);
		hasher_add_hash(h, &d->content);
		hasher_final(h, &d->key);
		hasher_free(h);
		hasher_add_hash(all, &d->key);
		rec->datum_nr++;
	}
	hasher_final(all, &rec->key);
out:
	hasher_free(all);
	strvec_clear(&matches);
	return ret;
}

int plan_fingerprint(struct engine *e, size_t si, struct stage_record **out,
		     int with_files, struct error *err)
{
	const struct pf_stage *s = &e->pf->stages[si];
	struct stage_record *rec = xcalloc(1, sizeof(*rec));

	*out = NULL;
	rec->name = xstrdup(s->name);
	hash_cmd(s, &rec->cmd);
	rec->executor = xstrdup(engine_executor_name(e, si));
	if (engine_image_id(e, si, &rec->image, err))
		goto fail;
	rec->datums =
		s->rare->datums.path ? xstrdup(s->rare->datums.path) : NULL;
	rec->env = copy_kvs(&s->env, 1);
	rec->env_nr = s->env.nr;
	rec->matrix = copy_kvs(&s->rare->matrix, 0);
	rec->matrix_nr = s->rare->matrix.nr;
	rec->has_files = with_files || s->rare->datums.path;
	if (read_params(e, s, rec, err) ||
	    scan_inputs(e, si, rec, with_files, err))
		goto fail;
	if (s->rare->datums.path) {
		if (scan_datums(e, s, rec, err))
			goto fail;
	} else {
		compute_key(s, rec, &rec->key);
	}
	*out = rec;
	return 0;
fail:
	error_prefix(err, "stage '%s': ", s->name);
	stage_record_free(rec);
	return -1;
}

int plan_hash_outputs(struct engine *e, size_t si, struct stage_record *rec,
		      struct error *err)
{
	const struct pf_stage *s = &e->pf->stages[si];

	rec->outputs = xcalloc(s->outputs.nr + 1, sizeof(*rec->outputs));
	rec->outputs_nr = 0;
	for (size_t i = 0; i < s->outputs.nr; i++) {
		int found = 0;

		if (scan_one(e, &s->outputs.v[i], &rec->outputs[i], 0, &found,
			     err))
			return -1;
		rec->outputs_nr++;
	}
	return 0;
}

/* --- comparing --- */

static const struct state_kv *find_kv(const struct state_kv *v, size_t n,
				      const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].key, key))
			return &v[i];
	return NULL;
}

static int str_differ(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

static void diff_kvs(struct reasons *rs, enum reason_kind kind,
		     const struct state_kv *o, size_t onr,
		     const struct state_kv *n, size_t nnr, int show_values)
{
	for (size_t i = 0; i < nnr; i++) {
		const struct state_kv *old = find_kv(o, onr, n[i].key);

		if (!old || strcmp(old->value, n[i].value))
			reasons_add(rs, kind, n[i].key,
				    old ? (show_values ? old->value : "")
					: NULL,
				    show_values ? n[i].value : "");
	}
	for (size_t i = 0; i < onr; i++)
		if (!find_kv(n, nnr, o[i].key))
			reasons_add(rs, kind, o[i].key,
				    show_values ? o[i].value : "", NULL);
}

static const struct state_path *find_path(const struct state_path *v, size_t n,
					  const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].path, path))
			return &v[i];
	return NULL;
}

/* Both file lists are sorted by path: a merge walk names each change. */
static void diff_files(struct reasons *rs, const struct state_path *o,
		       const struct state_path *n)
{
	size_t i = 0, j = 0, listed = 0, more = 0;

	state_path_files(o); /* malformed: as if none were known */
	while (i < o->files_nr || j < n->files_nr) {
		int c = i >= o->files_nr ? 1
			: j >= n->files_nr
				? -1
				: strcmp(o->files[i].path, n->files[j].path);
		enum reason_kind k;
		const char *p;

		if (c == 0) {
			int same = hash_equal(&o->files[i].hash,
					      &n->files[j].hash);

			p = n->files[j].path;
			i++, j++;
			if (same)
				continue;
			k = REASON_INPUT_CHANGED;
		} else if (c < 0) {
			k = REASON_INPUT_REMOVED;
			p = o->files[i++].path;
		} else {
			k = REASON_INPUT_ADDED;
			p = n->files[j++].path;
		}
		if (listed++ < MAX_FILE_REASONS)
			reasons_add(rs, k, p, NULL, NULL);
		else
			more++;
	}
	if (more) {
		struct strbuf sb = STRBUF_INIT;

		strbuf_addf(&sb, "and %zu more file%s", more,
			    more == 1 ? "" : "s");
		reasons_add(rs, REASON_INPUT_CHANGED, n->path, NULL, sb.buf);
		strbuf_release(&sb);
	}
	if (!listed) /* same files, other Merkle hash: types or modes */
		reasons_add(rs, REASON_INPUT_CHANGED, n->path, NULL, NULL);
}

static void diff_inputs(struct reasons *rs, const struct stage_record *o,
			const struct stage_record *n)
{
	for (size_t i = 0; i < n->inputs_nr; i++) {
		const struct state_path *np = &n->inputs[i];
		const struct state_path *op =
			find_path(o->inputs, o->inputs_nr, np->path);

		if (!op || op->missing != np->missing)
			reasons_add(rs,
				    np->missing ? REASON_INPUT_REMOVED
						: REASON_INPUT_ADDED,
				    np->path, NULL, NULL);
		else if (!hash_equal(&op->hash, &np->hash))
			diff_files(rs, op, np);
	}
	for (size_t i = 0; i < o->inputs_nr; i++)
		if (!find_path(n->inputs, n->inputs_nr, o->inputs[i].path))
			reasons_add(rs, REASON_INPUT_REMOVED, o->inputs[i].path,
				    NULL, NULL);
}

static void diff_datums(struct reasons *rs, const struct stage_record *o,
			const struct stage_record *n)
{
	size_t listed = 0, more = 0;

	for (size_t i = 0; i < n->datum_nr; i++) {
		const struct state_datum *d = &n->datum_list[i];
		const struct state_datum *od = state_find_datum(o, d->path);
		enum reason_kind k = REASON_INPUT_CHANGED;

		if (od && hash_equal(&od->content, &d->content))
			continue;
		if (!od)
			k = REASON_INPUT_ADDED;
		if (listed++ < MAX_FILE_REASONS)
			reasons_add(rs, k, d->path, NULL, NULL);
		else
			more++;
	}
	for (size_t i = 0; i < o->datum_nr; i++) {
		if (state_find_datum(n, o->datum_list[i].path))
			continue;
		if (listed++ < MAX_FILE_REASONS)
			reasons_add(rs, REASON_INPUT_REMOVED,
				    o->datum_list[i].path, NULL, NULL);
		else
			more++;
	}
	if (more) {
		struct strbuf sb = STRBUF_INIT;

		strbuf_addf(&sb, "and %zu more datum%s", more,
			    more == 1 ? "" : "s");
		reasons_add(rs, REASON_INPUT_CHANGED, n->datums, NULL, sb.buf);
		strbuf_release(&sb);
	}
}

/* Outputs declared now but not recorded, and recorded but not declared. */
static void diff_outputs(struct reasons *rs, const struct pf_stage *s,
			 const struct stage_record *o)
{
	for (size_t i = 0; i < s->outputs.nr; i++)
		if (!find_path(o->outputs, o->outputs_nr, s->outputs.v[i].path))
			reasons_add(rs, REASON_OUTPUT_ADDED,
				    s->outputs.v[i].path, NULL, NULL);
	for (size_t i = 0; i < o->outputs_nr; i++) {
		size_t k = 0;

		while (k < s->outputs.nr &&
		       strcmp(s->outputs.v[k].path, o->outputs[i].path))
			k++;
		if (k == s->outputs.nr)
			reasons_add(rs, REASON_OUTPUT_DROPPED,
				    o->outputs[i].path, NULL, NULL);
	}
}

static void diff_definition(struct reasons *rs, const struct pf_stage *s,
			    const struct stage_record *o,
			    const struct stage_record *n)
{
	size_t before = rs->nr;

	if (!hash_equal(&o->cmd, &n->cmd))
		reasons_add(rs, REASON_COMMAND, NULL, NULL, NULL);
	if (str_differ(o->executor, n->executor))
		reasons_add(rs, REASON_EXECUTOR, NULL, o->executor,
			    n->executor);
	if (str_differ(o->image, n->image))
		reasons_add(rs, REASON_IMAGE, s->image, o->image, n->image);
	if (str_differ(o->datums, n->datums))
		reasons_add(rs, REASON_DATUMS, NULL, o->datums, n->datums);
	diff_outputs(rs, s, o);
	diff_kvs(rs, REASON_ENV, o->env, o->env_nr, n->env, n->env_nr, 0);
	diff_kvs(rs, REASON_PARAM, o->params, o->params_nr, n->params,
		 n->params_nr, 1);
	diff_kvs(rs, REASON_MATRIX, o->matrix, o->matrix_nr, n->matrix,
		 n->matrix_nr, 1);
	diff_inputs(rs, o, n);
	diff_datums(rs, o, n);
	if (rs->nr == before)
		reasons_add(rs, REASON_DEFINITION, NULL, NULL, NULL);
}

/* 0 when path is declared as a folder ("out/") and something other than a
 * folder is there; 1 otherwise. */
static int not_a_folder(const char *path)
{
	size_t len = path_trimmed_len(path);
	struct stat sb;
	char *plain;
	int ok;

	if (!path[len])
		return 1;
	plain = xstrndup(path, len);
	ok = lstat(plain, &sb) || S_ISDIR(sb.st_mode);
	free(plain);
	return ok;
}

static void check_outputs(struct engine *e, size_t si,
			  const struct stage_record *o, struct reasons *rs,
			  struct error *err, int *failed)
{
	const struct pf_stage *s = &e->pf->stages[si];

	for (size_t i = 0; i < s->outputs.nr && !*failed; i++) {
		const struct pf_path *pp = &s->outputs.v[i];
		const struct state_path *rec =
			find_path(o->outputs, o->outputs_nr, pp->path);
		struct state_path now;
		int found = 0;

		if (!not_a_folder(pp->path)) {
			/* a file where a folder was declared: the stage wrote
			 * the other kind, or someone replaced it */
			reasons_add(rs, REASON_OUTPUT_MODIFIED, pp->path, NULL,
				    NULL);
			continue;
		}
		if (scan_one(e, pp, &now, 0, &found, err)) {
			*failed = 1;
			break;
		}
		if (!found)
			reasons_add(rs, REASON_OUTPUT_MISSING, pp->path, NULL,
				    NULL);
		else if (!rec || rec->missing ||
			 !hash_equal(&rec->hash, &now.hash))
			reasons_add(rs, REASON_OUTPUT_MODIFIED, pp->path, NULL,
				    NULL);
		free(now.path);
	}
}

int plan_check_outputs(struct engine *e, size_t si,
		       const struct stage_record *old, struct reasons *rs,
		       struct error *err)
{
	int failed = 0;

	check_outputs(e, si, old, rs, err, &failed);
	return failed ? -1 : 0;
}

int plan_compare(struct engine *e, size_t si, const struct stage_record *old,
		 const struct stage_record *cur, struct reasons *rs,
		 struct error *err)
{
	size_t before = rs->nr;
	int failed = 0;

	if (!old) {
		reasons_add(rs, REASON_NEVER_RUN, NULL, NULL, NULL);
		return 1;
	}
	if (!hash_equal(&old->key, &cur->key))
		diff_definition(rs, &e->pf->stages[si], old, cur);
	check_outputs(e, si, old, rs, err, &failed);
	if (failed)
		return -1;
	return rs->nr > before;
}

int plan_fingerprint_cmp(struct engine *e, size_t si,
			 const struct stage_record *old,
			 struct stage_record **out, struct error *err)
{
	if (plan_fingerprint(e, si, out, 0, err))
		return -1;
	if ((old && hash_equal(&old->key, &(*out)->key)) || (*out)->has_files)
		return 0;
	/* stale: the file lists name what changed, and are recorded (a
	 * datums stage has them already) */
	stage_record_free(*out);
	return plan_fingerprint(e, si, out, 1, err);
}
