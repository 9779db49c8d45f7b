/* --json output through jansson. */
#include "cli/json.h"
#include "engine/engine.h"
#include "engine/run.h"
#include "pipefile/pipefile.h"

#include <jansson.h>
#include <stdio.h>

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *reason_json(const struct reason *r)
{
	struct strbuf sb = STRBUF_INIT;
	json_t *o = json_object();

	reason_format(r, &sb);
	json_object_set_new(o, "kind", json_string(reason_kind_name(r->kind)));
	json_object_set_new(o, "path", str_or_null(r->path));
	json_object_set_new(o, "old", str_or_null(r->old_value));
	json_object_set_new(o, "new", str_or_null(r->new_value));
	json_object_set_new(o, "message", json_string(sb.buf));
	strbuf_release(&sb);
	return o;
}

void cli_json_status(const struct engine *e, const struct stage_status *v,
		     size_t nr)
{
	json_t *root = json_object(), *stages = json_array();

	for (size_t i = 0; i < nr; i++) {
		json_t *s = json_object(), *rs = json_array();

		json_object_set_new(
			s, "name", json_string(e->pf->stages[v[i].stage].name));
		json_object_set_new(
			s, "state",
			json_string(v[i].stale ? "stale" : "fresh"));
		for (size_t k = 0; k < v[i].reasons.nr; k++)
			json_array_append_new(rs,
					      reason_json(&v[i].reasons.v[k]));
		json_object_set_new(s, "reasons", rs);
		json_array_append_new(stages, s);
	}
	json_object_set_new(root, "stages", stages);
	json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	putchar('\n');
	json_decref(root);
}
