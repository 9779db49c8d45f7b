/* --json output through jansson. */
#include "cli/json.h"
#include "engine/engine.h"
#include "engine/jobs.h"
#include "engine/run.h"
#include "pipefile/pipefile.h"

#include <jansson.h>
#include <stdio.h>
#include <time.h>

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

void cli_json_jobs(const struct job_rec *v, size_t nr)
{
	json_t *arr = json_array();

	for (size_t i = nr; i-- > 0;) {
		const struct job_rec *j = &v[i];
		json_t *o = json_object(), *d = json_object();
		char when[32];
		time_t t = (time_t)(j->started_ms / 1000);
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_object_set_new(o, "id", json_string(j->id));
		json_object_set_new(o, "stage", json_string(j->stage));
		json_object_set_new(o, "commit",
				    *j->commit ? json_string(j->commit)
					       : json_null());
		json_object_set_new(o, "started", json_string(when));
		json_object_set_new(o, "duration_ms",
				    json_integer(j->duration_ms));
		json_object_set_new(d, "processed",
				    json_integer((json_int_t)j->processed));
		json_object_set_new(d, "skipped",
				    json_integer((json_int_t)j->skipped));
		json_object_set_new(d, "total",
				    json_integer((json_int_t)j->total));
		json_object_set_new(o, "datums", d);
		json_object_set_new(o, "bytes_in",
				    json_integer((json_int_t)j->bytes_in));
		json_object_set_new(o, "bytes_out",
				    json_integer((json_int_t)j->bytes_out));
		json_object_set_new(o, "state", json_string(j->state));
		json_array_append_new(arr, o);
	}
	json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	putchar('\n');
	json_decref(arr);
}
