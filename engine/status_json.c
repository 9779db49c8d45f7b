/* `pipe run --json`: each thing the run does is one JSON object on one
 * line (README "pipe run --json"), through the JSON door. The plain
 * result lines still go to stderr, for the people reading a CI log. */
#include "engine/plan.h"
#include "engine/run.h"
#include "engine/status.h"
#include "executors/json.h"
#include "util/strbuf.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* The events' schema: a change that could break a reader bumps it. */
#define EVENTS_VERSION 1

struct json *status_reason_json(const struct reason *r)
{
	struct strbuf sb = STRBUF_INIT;
	struct json *o = json_new_object();

	reason_format(r, &sb);
	json_put_str(o, "kind", reason_kind_name(r->kind));
	json_put_str(o, "path", r->path);
	json_put_str(o, "old", r->old_value);
	json_put_str(o, "new", r->new_value);
	json_put_str(o, "message", sb.buf);
	strbuf_release(&sb);
	return o;
}

/* An event named kind, stamped with the time (UTC, ms). */
static struct json *event(const char *kind)
{
	struct json *o = json_new_object();
	struct timespec ts;
	struct tm tm;
	char when[40];
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);
	json_put_str(o, "event", kind);
	json_put_str(o, "time", when);
	return o;
}

/* One line, flushed: a reader sees each event as it happens. */
static void emit(struct status *st, struct json *o)
{
	struct strbuf sb = STRBUF_INIT;

	json_dump(o, &sb);
	strbuf_addch(&sb, '\n');
	fwrite(sb.buf, 1, sb.len, st->events);
	fflush(st->events);
	strbuf_release(&sb);
	json_free(o);
}

static void begin(struct status *st, const struct status_begin *b)
{
	struct json *o = event("run_start"), *t = json_new_array();

	json_put_int(o, "v", EVENTS_VERSION);
	json_put_str(o, "pipe_version", b->version);
	json_put_str(o, "workspace", b->workspace);
	for (size_t i = 0; i < b->targets_nr; i++)
		json_push_str(t, b->targets[i]);
	json_put(o, "targets", t);
	json_put_int(o, "jobs", b->jobs);
	json_set_bool(o, "dry_run", b->dry_run);
	json_put_int(o, "stages", (long long)b->stages_nr);
	emit(st, o);
}

static void planned(struct status *st, const char *verb, const char *name,
		    const struct reasons *rs)
{
	struct json *o = event("stage_planned"), *a = json_new_array();

	json_put_str(o, "stage", name);
	json_put_str(o, "verb", verb);
	for (size_t i = 0; rs && i < rs->nr; i++)
		json_push(a, status_reason_json(&rs->v[i]));
	json_put(o, "reasons", a);
	emit(st, o);
}

static void decided(struct status *st, const char *verb, const char *name,
		    const struct reasons *rs, const char *tail)
{
	struct json *o;
	const char *from;

	status_plain.decided(st, verb, name, rs, tail);
	if (strcmp(verb, "cache")) {
		planned(st, "run", name, rs);
		return;
	}
	planned(st, "cache", name, rs);
	o = event("stage_cached");
	json_put_str(o, "stage", name);
	/* tail: "(restored from 3f2a…)" */
	from = tail ? strstr(tail, "from ") : NULL;
	if (from) {
		struct strbuf id = STRBUF_INIT;

		from += 5;
		strbuf_add(&id, from, strcspn(from, ")"));
		json_put_str(o, "restored_from", id.buf);
		strbuf_release(&id);
	}
	emit(st, o);
}

static void fresh(struct status *st, const char *name)
{
	struct json *o;

	status_plain.fresh(st, name);
	planned(st, "fresh", name, NULL);
	o = event("stage_fresh");
	json_put_str(o, "stage", name);
	emit(st, o);
}

static struct json *unit_event(const char *kind, const struct status_unit *u)
{
	struct json *o = event(kind);

	json_put_str(o, "stage", u->stage);
	json_put_str(o, "datum", u->datum);
	json_put_int(o, "attempt", u->attempt);
	return o;
}

static void unit_started(struct status *st, const struct status_unit *u)
{
	emit(st, unit_event("unit_started", u));
}

static void unit_finished(struct status *st, const struct status_unit *u)
{
	struct json *o = unit_event("unit_finished", u);

	json_set_bool(o, "ok", u->ok);
	if (u->exit_code >= 0)
		json_put_int(o, "exit_code", u->exit_code);
	else
		json_put_str(o, "exit_code", NULL);
	json_put_str(o, "message", u->message);
	json_put_int(o, "duration_ms", u->ms);
	json_put_str(o, "log", u->log_path);
	emit(st, o);
}

static void ok(struct status *st, const char *name, long long datums_done,
	       size_t datums_skipped, long long ms)
{
	struct json *o = event("stage_ok");

	status_plain.ok(st, name, datums_done, datums_skipped, ms);
	json_put_str(o, "stage", name);
	json_put_int(o, "duration_ms", ms);
	if (datums_done >= 0) {
		struct json *d = json_new_object();

		json_put_int(d, "processed", datums_done);
		json_put_int(d, "skipped", (long long)datums_skipped);
		json_put(o, "datums", d);
	}
	emit(st, o);
}

static void failed(struct status *st, const char *name, const char *msg)
{
	struct json *o = event("stage_failed");

	status_plain.failed(st, name, msg);
	json_put_str(o, "stage", name);
	json_put_str(o, "message", msg ? msg : "interrupted");
	emit(st, o);
}

static void skipped(struct status *st, const char *name, const char *code,
		    const char *msg)
{
	struct json *o = event("stage_skipped");

	status_plain.skipped(st, name, code, msg);
	json_put_str(o, "stage", name);
	json_put_str(o, "reason", code);
	json_put_str(o, "message", msg);
	emit(st, o);
}

static void summary(struct status *st, const struct run_summary *sum,
		    long long ms, int exit_code, const char *error)
{
	struct json *o = event("run_end");

	status_plain.summary(st, sum, ms, exit_code, error);
	json_put_int(o, "ran", (long long)sum->ran);
	json_put_int(o, "cached", (long long)sum->cached);
	json_put_int(o, "fresh", (long long)sum->fresh);
	json_put_int(o, "failed", (long long)sum->failed);
	json_put_int(o, "skipped", (long long)sum->skipped);
	json_set_bool(o, "interrupted", sum->interrupted != 0);
	json_put_int(o, "duration_ms", ms);
	json_put_int(o, "exit_code", exit_code);
	json_put_str(o, "error", error);
	emit(st, o);
}

const struct status_ops status_json = {
	.begin = begin,
	.decided = decided,
	.fresh = fresh,
	.unit_started = unit_started,
	.unit_finished = unit_finished,
	.ok = ok,
	.failed = failed,
	.skipped = skipped,
	.progress = NULL,
	.clear = NULL,
	.summary = summary,
};
