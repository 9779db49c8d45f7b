/* --json output, through the one JSON door (executors/json.h). */
#include "cli/json.h"
#include "engine/engine.h"
#include "engine/jobs.h"
#include "engine/run.h"
#include "engine/status.h"
#include "executors/json.h"
#include "pipefile/pipefile.h"

#include <stdio.h>
#include <time.h>

/* Indented, one line at the end, on stdout. */
static void print(struct json *j)
{
	struct strbuf sb = STRBUF_INIT;

	json_dump_pretty(j, &sb);
	strbuf_addch(&sb, '\n');
	fwrite(sb.buf, 1, sb.len, stdout);
	strbuf_release(&sb);
	json_free(j);
}

void cli_json_status(const struct engine *e, const struct stage_status *v,
		     size_t nr)
{
	struct json *root = json_new_object(), *stages = json_new_array();

	for (size_t i = 0; i < nr; i++) {
		struct json *s = json_new_object(), *rs = json_new_array();

		json_put_str(s, "name", e->pf->stages[v[i].stage].name);
		json_put_str(s, "state", v[i].stale ? "stale" : "fresh");
		for (size_t k = 0; k < v[i].reasons.nr; k++)
			json_push(rs, status_reason_json(&v[i].reasons.v[k]));
		json_put(s, "reasons", rs);
		json_push(stages, s);
	}
	json_put(root, "stages", stages);
	print(root);
}

void cli_json_jobs(const struct job_rec *v, size_t nr)
{
	struct json *arr = json_new_array();

	for (size_t i = nr; i-- > 0;) {
		const struct job_rec *j = &v[i];
		struct json *o = json_new_object(), *d = json_new_object();
		char when[32];
		time_t t = (time_t)(j->started_ms / 1000);
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_put_str(o, "id", j->id);
		json_put_str(o, "stage", j->stage);
		json_put_str(o, "commit", *j->commit ? j->commit : NULL);
		json_put_str(o, "started", when);
		json_put_int(o, "duration_ms", j->duration_ms);
		json_put_int(d, "processed", (long long)j->processed);
		json_put_int(d, "skipped", (long long)j->skipped);
		json_put_int(d, "total", (long long)j->total);
		json_put(o, "datums", d);
		json_put_int(o, "bytes_in", (long long)j->bytes_in);
		json_put_int(o, "bytes_out", (long long)j->bytes_out);
		json_put_str(o, "state", j->state);
		json_push(arr, o);
	}
	print(arr);
}
