/* The one event loop of the executors (see executors/loop.h): a unit
 * table, file descriptors and timers, one poll() for all of them. */
#include "executors/loop.h"
#include "util/fs.h"
#include "util/xalloc.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINE_CAP 65536 /* a longer line without '\n' is cut */
#define DEFAULT_GRACE_MS 5000

struct watch {
	int fd;
	short events;
	loop_fd_fn *fn;
	void *arg;
	unsigned long serial; /* tells a new watch of a reused fd apart */
};

/* pipe is one program: one loop, for the whole process. */
static struct {
	struct loop_unit **units; /* started and not yet reported */
	size_t nr, alloc;
	struct watch *fds;
	size_t nr_fds, alloc_fds;
	unsigned long serial;
	struct loop_timer **timers; /* armed */
	size_t nr_timers, alloc_timers;
	struct pollfd *pfd;
	unsigned long *pserial;
	size_t alloc_pfd, alloc_pserial;
	struct strbuf out; /* prefixed lines on their way out */
} L = {.out = STRBUF_INIT};

long long loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* Output: lines with a prefix, written whole */

void loop_prefix_flush(struct strbuf *out, struct strbuf *pending,
		       const char *prefix)
{
	if (!pending->len)
		return;
	strbuf_addstr(out, prefix);
	strbuf_add(out, pending->buf, pending->len);
	strbuf_addch(out, '\n');
	strbuf_reset(pending);
}

void loop_prefix_lines(struct strbuf *out, struct strbuf *pending,
		       const char *prefix, const char *data, size_t len)
{
	const char *end = data + len;

	while (data < end) {
		const char *nl = memchr(data, '\n', (size_t)(end - data));

		if (!nl) {
			strbuf_add(pending, data, (size_t)(end - data));
			if (pending->len > LINE_CAP)
				loop_prefix_flush(out, pending, prefix);
			return;
		}
		strbuf_addstr(out, prefix);
		strbuf_add(out, pending->buf, pending->len);
		strbuf_add(out, data, (size_t)(nl - data) + 1);
		strbuf_reset(pending);
		data = nl + 1;
	}
}

void loop_format_duration(struct strbuf *out, long long ms)
{
	long long s = ms / 1000;

	if (ms < 1000) {
		strbuf_addf(out, "%lldms", ms);
	} else if (ms < 60000 && ms % 1000) {
		strbuf_addf(out, "%lld.%03lld", s, ms % 1000);
		while (out->buf[out->len - 1] == '0')
			strbuf_setlen(out, out->len - 1);
		strbuf_addch(out, 's');
	} else {
		if (s >= 3600)
			strbuf_addf(out, "%lldh", s / 3600);
		if (s % 3600 >= 60)
			strbuf_addf(out, "%lldm", s % 3600 / 60);
		if (s % 60)
			strbuf_addf(out, "%llds", s % 60);
	}
}

/* What is in L.out goes to fd to, after the caller's hook (a progress
 * line to clear). */
static void write_out(const struct loop_unit *u, int to)
{
	if (L.out.len && u->opt->before_output)
		u->opt->before_output(u->opt->output_arg);
	if (L.out.len)
		fs_write_all(to, L.out.buf, L.out.len);
	strbuf_reset(&L.out);
}

void loop_unit_output(struct loop_unit *u, int to, const char *data, size_t len)
{
	unit_log_write(&u->log, data, len);
	if (!u->opt->stream)
		return;
	loop_prefix_lines(&L.out, &u->pending[to], u->prefix, data, len);
	write_out(u, to);
}

void loop_unit_note(struct loop_unit *u, const char *msg)
{
	unit_log_note(&u->log, msg);
}

/* ------------------------------------------------------------------ */
/* Units */

struct loop_unit *loop_unit_add(const struct exec_unit *unit,
				const struct exec_options *opt,
				const struct loop_ops *ops,
				struct exec_ctx *owner, void *impl)
{
	struct loop_unit *u = xcalloc(1, sizeof(*u));
	struct strbuf sb = STRBUF_INIT;

	u->ops = ops;
	u->owner = owner;
	u->impl = impl;
	u->data = unit->data;
	u->opt = opt;
	unit_log_init(&u->log, unit->log_path, unit->log_max);
	for (int i = 0; i < 3; i++)
		strbuf_init(&u->pending[i], 0);
	strbuf_addf(&sb, "[%s] ",
		    unit->label ? unit->label
				: (unit->stage ? unit->stage : "?"));
	u->prefix = strbuf_detach(&sb, NULL);
	u->timeout_ms = unit->timeout_ms > 0 ? unit->timeout_ms : 0;
	u->exit_code = -1;
	u->started_ms = loop_now_ms();
	if (u->timeout_ms)
		u->deadline_ms = u->started_ms + u->timeout_ms;
	ALLOC_GROW(L.units, L.nr + 1, L.alloc);
	L.units[L.nr++] = u;
	return u;
}

static void set_message(struct loop_unit *u)
{
	struct strbuf sb = STRBUF_INIT;

	if (u->message)
		return;
	if (u->cancelled) {
		strbuf_addstr(&sb, "cancelled");
	} else if (u->timed_out) {
		strbuf_addstr(&sb, "timed out after ");
		loop_format_duration(&sb, u->timeout_ms);
	} else if (u->term_signal) {
		strbuf_addf(&sb, "killed by signal %d (%s)", u->term_signal,
			    strsignal(u->term_signal));
	} else {
		return;
	}
	u->message = strbuf_detach(&sb, NULL);
}

void loop_unit_end(struct loop_unit *u, int note_failure)
{
	if (u->ended)
		return;
	for (int to = 1; to <= 2; to++) {
		loop_prefix_flush(&L.out, &u->pending[to], u->prefix);
		write_out(u, to);
	}
	set_message(u);
	if (note_failure && u->message && u->exit_code < 0)
		unit_log_note(&u->log, u->message);
	unit_log_close(&u->log);
	u->duration_ms = loop_now_ms() - u->started_ms;
	u->live = 0;
	u->ended = 1;
}

static void unit_free(struct loop_unit *u)
{
	if (u->ops->release)
		u->ops->release(u);
	for (int i = 0; i < 3; i++)
		strbuf_release(&u->pending[i]);
	unit_log_close(&u->log);
	free(u->prefix);
	free(u->message);
	free(u);
}

static int grace(const struct loop_unit *u)
{
	return u->opt->grace_ms > 0 ? u->opt->grace_ms : DEFAULT_GRACE_MS;
}

/* TERM at a unit's deadline, KILL at the end of its grace period (once it
 * can take a signal: a container still being created cannot). */
static void unit_timers(long long now)
{
	for (size_t i = 0; i < L.nr; i++) {
		struct loop_unit *u = L.units[i];

		if (u->ended)
			continue;
		if (u->deadline_ms && now >= u->deadline_ms) {
			u->timed_out = 1;
			u->deadline_ms = 0;
			u->kill_ms = now + grace(u);
			if (u->live)
				u->ops->stop(u, SIGTERM);
		}
		if (u->kill_ms && now >= u->kill_ms && u->live) {
			u->kill_ms = 0;
			u->ops->stop(u, SIGKILL);
		}
	}
}

int loop_running(struct exec_ctx *ctx)
{
	int n = 0;

	for (size_t i = 0; i < L.nr; i++)
		n += !ctx || L.units[i]->owner == ctx;
	return n;
}

/* TERM every unit now and KILL it after the grace period; a second call
 * KILLs at once (a second Ctrl-C). A unit that cannot take a signal yet is
 * stopped by its executor when it could start (cancelled is set). */
void loop_cancel_all(struct exec_ctx *ctx)
{
	long long now = loop_now_ms();

	for (size_t i = 0; i < L.nr; i++) {
		struct loop_unit *u = L.units[i];

		if (u->ended || (ctx && u->owner != ctx))
			continue;
		if (u->cancelled) {
			u->kill_ms = now;
			if (u->live) {
				u->kill_ms = 0;
				u->ops->stop(u, SIGKILL);
			}
			continue;
		}
		u->cancelled = 1;
		u->deadline_ms = 0;
		if (u->live)
			u->ops->stop(u, SIGTERM);
		if (!u->kill_ms || u->kill_ms > now + grace(u))
			u->kill_ms = now + grace(u);
	}
}

void loop_close(struct exec_ctx *ctx)
{
	struct exec_done done[16];
	struct error err = ERROR_INIT;

	loop_cancel_all(ctx);
	while (loop_running(ctx)) {
		int n = loop_wait(ctx, -1, done, (int)ARRAY_SIZE(done), &err);

		if (n < 0)
			break;
		for (int i = 0; i < n; i++)
			free(done[i].message);
	}
	error_release(&err);
	loop_forget(ctx); /* only after a poll error */
}

void loop_forget(struct exec_ctx *ctx)
{
	for (size_t i = 0; i < L.nr;) {
		if (L.units[i]->owner != ctx) {
			i++;
			continue;
		}
		unit_free(L.units[i]);
		L.units[i] = L.units[--L.nr];
	}
}

/* Move ended units of ctx (NULL: any) to done[], at most max. */
static int collect(struct exec_ctx *ctx, struct exec_done *done, int max)
{
	int n = 0;

	for (size_t i = 0; i < L.nr && n < max;) {
		struct loop_unit *u = L.units[i];

		if (!u->ended || (ctx && u->owner != ctx)) {
			i++;
			continue;
		}
		done[n++] = (struct exec_done){
			.data = u->data,
			.exit_code = u->exit_code,
			.term_signal = u->term_signal,
			.timed_out = u->timed_out,
			.cancelled = u->cancelled,
			.oom_killed = u->oom_killed,
			.message = u->message,
			.duration_ms = u->duration_ms,
		};
		u->message = NULL;
		/* the table's order is kept: units are reported as they
		 * ended, and the first started first among equals */
		memmove(&L.units[i], &L.units[i + 1],
			(L.nr - i - 1) * sizeof(*L.units));
		L.nr--;
		unit_free(u);
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* File descriptors and timers */

static struct watch *find_watch(int fd)
{
	for (size_t i = 0; i < L.nr_fds; i++)
		if (L.fds[i].fd == fd)
			return &L.fds[i];
	return NULL;
}

void loop_fd_watch(int fd, short events, loop_fd_fn *fn, void *arg)
{
	struct watch *w = find_watch(fd);

	if (!w) {
		ALLOC_GROW(L.fds, L.nr_fds + 1, L.alloc_fds);
		w = &L.fds[L.nr_fds++];
	}
	*w = (struct watch){.fd = fd,
			    .events = events,
			    .fn = fn,
			    .arg = arg,
			    .serial = ++L.serial};
}

void loop_fd_unwatch(int fd)
{
	struct watch *w = find_watch(fd);

	if (w)
		*w = L.fds[--L.nr_fds];
}

void loop_timer_init(struct loop_timer *t, void (*fn)(void *arg), void *arg)
{
	t->fn = fn;
	t->arg = arg;
	t->at = -1;
	t->round = 0;
}

void loop_timer_disarm(struct loop_timer *t)
{
	if (t->at < 0)
		return;
	t->at = -1;
	for (size_t i = 0; i < L.nr_timers; i++)
		if (L.timers[i] == t) {
			L.timers[i] = L.timers[--L.nr_timers];
			return;
		}
}

void loop_timer_arm(struct loop_timer *t, long long at)
{
	loop_timer_disarm(t);
	t->at = at < 0 ? 0 : at;
	ALLOC_GROW(L.timers, L.nr_timers + 1, L.alloc_timers);
	L.timers[L.nr_timers++] = t;
}

/* Fire the timers that are due, each once a round (one armed again for
 * now waits for the next round, after a poll); a timer may arm or disarm
 * others, so the list is looked at afresh after each. */
static void run_timers(long long now)
{
	static unsigned long round;

	round++;
	for (size_t i = 0; i < L.nr_timers;) {
		struct loop_timer *t = L.timers[i];

		if (t->at > now || t->round == round) {
			i++;
			continue;
		}
		t->round = round;
		loop_timer_disarm(t);
		t->fn(t->arg);
		i = 0;
	}
}

static long long min_timeout(long long t, long long v)
{
	if (v < 0)
		v = 0;
	return t < 0 || v < t ? v : t;
}

static int poll_timeout(long long now, long long until)
{
	long long t = until < 0 ? -1 : min_timeout(-1, until - now);

	for (size_t i = 0; i < L.nr_timers; i++)
		t = min_timeout(t, L.timers[i]->at - now);
	for (size_t i = 0; i < L.nr; i++) {
		struct loop_unit *u = L.units[i];

		if (u->ended)
			continue;
		if (u->deadline_ms)
			t = min_timeout(t, u->deadline_ms - now);
		if (u->kill_ms && u->live)
			t = min_timeout(t, u->kill_ms - now);
	}
	return t > INT_MAX ? INT_MAX : (int)t;
}

static size_t build_pollset(void)
{
	ALLOC_GROW(L.pfd, L.nr_fds, L.alloc_pfd);
	ALLOC_GROW(L.pserial, L.nr_fds, L.alloc_pserial);
	for (size_t i = 0; i < L.nr_fds; i++) {
		L.pfd[i] = (struct pollfd){.fd = L.fds[i].fd,
					   .events = L.fds[i].events};
		L.pserial[i] = L.fds[i].serial;
	}
	return L.nr_fds;
}

/* A handler may unwatch and close other fds of this round, and a new one
 * may take the same number: only the watch that was polled is told. */
static void dispatch(size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct watch *w;

		if (!L.pfd[i].revents)
			continue;
		w = find_watch(L.pfd[i].fd);
		if (w && w->serial == L.pserial[i])
			w->fn(w->arg, w->fd, L.pfd[i].revents);
	}
}

/* ------------------------------------------------------------------ */
/* Waiting */

int loop_wait(struct exec_ctx *ctx, int timeout_ms, struct exec_done *done,
	      int max, struct error *err)
{
	long long until = timeout_ms < 0 ? -1 : loop_now_ms() + timeout_ms;
	int polled = 0;

	for (;;) {
		long long now = loop_now_ms();
		size_t nfds;
		int n;

		unit_timers(now);
		run_timers(now);
		n = collect(ctx, done, max);
		if (n || !loop_running(ctx) || max <= 0 ||
		    (polled && until >= 0 && now >= until))
			return n;
		nfds = build_pollset();
		if (poll(L.pfd, (nfds_t)nfds, poll_timeout(now, until)) < 0) {
			if (errno == EINTR)
				return 0; /* the engine looks at its flags */
			return error_set(err, EXIT_ENV, "poll: %s",
					 strerror(errno));
		}
		polled = 1;
		dispatch(nfds);
	}
}
