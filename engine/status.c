/* Reporting a run: the terminal implementation (a live "[7/12] running:
 * train, eval  0:42" line under the result lines), the plain one, and
 * the calls that feed a table and its tee. */
#include "engine/plan.h"
#include "engine/run.h"
#include "engine/status.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* One run reports at a time: the line on screen is the process's. */
static int shown;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void decided(struct status *st, const char *verb, const char *name,
		    const struct reasons *rs, const char *tail)
{
	struct strbuf sb = STRBUF_INIT;

	(void)st;
	strbuf_addf(&sb, "%s %s", verb, name);
	for (size_t i = 0; i < rs->nr && i < 3; i++) {
		strbuf_addstr(&sb, i ? ", " : ": ");
		reason_format(&rs->v[i], &sb);
	}
	if (rs->nr > 3)
		strbuf_addf(&sb, " (and %zu more)", rs->nr - 3);
	if (tail)
		strbuf_addf(&sb, " %s", tail);
	log_info("%s", sb.buf);
	strbuf_release(&sb);
}

static void ok(struct status *st, const char *name, long long datums_done,
	       size_t datums_skipped, long long ms)
{
	(void)st;
	if (datums_done >= 0)
		log_info("ok   %s (%zu datums: %lld processed, %zu skipped) "
			 "(%.2fs)",
			 name, (size_t)datums_done + datums_skipped,
			 datums_done, datums_skipped, (double)ms / 1000);
	else
		log_info("ok   %s (%.2fs)", name, (double)ms / 1000);
}

static void fresh(struct status *st, const char *name)
{
	(void)st;
	log_verbose("fresh %s", name);
}

static void failed(struct status *st, const char *name, const char *msg)
{
	(void)st;
	(void)name;
	if (msg)
		log_error("%s", msg);
}

static void skipped(struct status *st, const char *name, const char *code,
		    const char *msg)
{
	(void)st;
	(void)name;
	(void)code;
	if (msg)
		log_error("%s", msg);
}

static void summary(struct status *st, const struct run_summary *sum,
		    long long ms, int exit_code, const char *error)
{
	(void)st;
	(void)exit_code;
	(void)error;
	log_info("%zu ran, %zu cached, %zu fresh, %zu failed, %zu skipped in "
		 "%.2fs",
		 sum->ran, sum->cached, sum->fresh, sum->failed, sum->skipped,
		 (double)ms / 1000);
}

static void no_clear(struct status *st)
{
	(void)st;
}

const struct status_ops status_plain = {
	.decided = decided,
	.fresh = fresh,
	.ok = ok,
	.failed = failed,
	.skipped = skipped,
	.progress = NULL,
	.clear = no_clear,
	.summary = summary,
};

/* --- the terminal: the same lines, and the live one under them --- */

static void clear_line(void)
{
	if (shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		shown = 0;
	}
}

static void term_clear(struct status *st)
{
	(void)st;
	clear_line();
}

static void clear_arg(void *arg)
{
	(void)arg;
	clear_line();
}

static void progress(struct status *st, size_t finished, size_t total,
		     const struct status_running *v, size_t nr)
{
	struct strbuf sb = STRBUF_INIT;
	long long secs = (now_ms() - st->start_ms) / 1000;

	strbuf_addf(&sb, "\r\033[K[%zu/%zu] running: ", finished, total);
	/* three by name; a fourth only says there are more */
	for (size_t i = 0; i < nr; i++) {
		if (i == 3) {
			strbuf_addstr(&sb, ", ...");
			break;
		}
		strbuf_addf(&sb, "%s%s", i ? ", " : "", v[i].name);
		if (v[i].datums_total)
			strbuf_addf(&sb, " (%zu/%zu datums)", v[i].datums_done,
				    v[i].datums_total);
	}
	strbuf_addf(&sb, "  %lld:%02lld", secs / 60, secs % 60);
	fputs(sb.buf, stderr);
	fflush(stderr);
	shown = 1;
	strbuf_release(&sb);
}

const struct status_ops status_terminal = {
	.decided = decided,
	.fresh = fresh,
	.ok = ok,
	.failed = failed,
	.skipped = skipped,
	.progress = progress,
	.clear = term_clear,
	.summary = summary,
};

/* NO_COLOR (no-color.org): any non-empty value. CI: what CI services
 * set (CI=true, CI=1); "false" and "0" say it is not one. */
int status_can_redraw(void)
{
	const char *no_color = getenv("NO_COLOR"), *ci = getenv("CI");

	if (no_color && *no_color)
		return 0;
	if (ci && *ci && strcmp(ci, "false") && strcmp(ci, "0"))
		return 0;
	return isatty(1) && isatty(2);
}

void status_init(struct status *st, long long start_ms, FILE *events)
{
	memset(st, 0, sizeof(*st));
	st->events = events;
	if (events)
		st->ops = &status_json;
	else if (log_verbosity >= LOG_NORMAL && status_can_redraw())
		st->ops = &status_terminal;
	else
		st->ops = &status_plain;
	st->start_ms = start_ms;
}

void status_hook_output(struct status *st, void (**before_output)(void *),
			void **arg)
{
	if (st->ops != &status_terminal)
		return;
	log_before_print = clear_line;
	*before_output = clear_arg;
	*arg = NULL;
}

void status_release(struct status *st)
{
	if (st->ops->clear)
		st->ops->clear(st);
	if (st->ops == &status_terminal)
		log_before_print = NULL;
}

/* --- one call, to the table and its tee --- */

#define BOTH(hook, ...)                                                        \
	do {                                                                   \
		if (st->ops->hook)                                             \
			st->ops->hook(st, __VA_ARGS__);                        \
		if (st->tee && st->tee->hook)                                  \
			st->tee->hook(st, __VA_ARGS__);                        \
	} while (0)

void status_begin(struct status *st, const struct status_begin *b)
{
	BOTH(begin, b);
}

void status_decided(struct status *st, const char *verb, const char *name,
		    const struct reasons *rs, const char *tail)
{
	BOTH(decided, verb, name, rs, tail);
}

void status_fresh(struct status *st, const char *name)
{
	BOTH(fresh, name);
}

void status_unit_started(struct status *st, const struct status_unit *u)
{
	BOTH(unit_started, u);
}

void status_unit_finished(struct status *st, const struct status_unit *u)
{
	BOTH(unit_finished, u);
}

void status_ok(struct status *st, const char *name, long long datums_done,
	       size_t datums_skipped, long long ms)
{
	BOTH(ok, name, datums_done, datums_skipped, ms);
}

void status_failed(struct status *st, const char *name, const char *msg)
{
	BOTH(failed, name, msg);
}

void status_skipped(struct status *st, const char *name, const char *code,
		    const char *msg)
{
	BOTH(skipped, name, code, msg);
}

void status_summary(struct status *st, const struct run_summary *sum,
		    long long ms, int exit_code, const char *error)
{
	BOTH(summary, sum, ms, exit_code, error);
}
