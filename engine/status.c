/* Reporting a run: the terminal implementation (a live "[7/12] running:
 * train, eval  0:42" line under the result lines) and the plain one. */
#include "engine/plan.h"
#include "engine/run.h"
#include "engine/status.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <stdio.h>
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

static void failed(struct status *st, const char *msg)
{
	(void)st;
	log_error("%s", msg);
}

static void summary(struct status *st, const struct run_summary *sum,
		    long long ms)
{
	(void)st;
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
	.ok = ok,
	.failed = failed,
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
	.ok = ok,
	.failed = failed,
	.progress = progress,
	.clear = term_clear,
	.summary = summary,
};

void status_init(struct status *st, long long start_ms)
{
	int tty = isatty(2) && log_verbosity >= LOG_NORMAL;

	st->ops = tty ? &status_terminal : &status_plain;
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
