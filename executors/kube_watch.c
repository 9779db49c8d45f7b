/* List, then watch, Kubernetes objects of one kind and label selector on
 * the executors' loop: the list gives every object and a resourceVersion,
 * the watch streams changes after it, one JSON event per line. A dropped
 * stream resumes from the last version seen; 410 Gone (the version is too
 * old) lists again; while the API does not answer, retries back off, and
 * after LOST_MS of silence the executor is told. */
#include "executors/kube.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 3000
#define LOST_MS 90000
#define WATCH_SECONDS 240

struct kube_watch {
	char *path, *selector;
	kube_request_fn *req;
	kube_watch_fn *fn;
	kube_watch_lost_fn *lost;
	void *arg;
	char *rv; /* resume from here; NULL: list first */
	struct http_xfer *x;
	int watching; /* x is the watch stream, not the list */
	struct strbuf line;
	struct loop_timer retry;
	struct loop_timer parse; /* the lines that came, read outside curl */
	long long failing_since; /* 0: the last request worked */
	int backoff_ms;
	unsigned lists;
	unsigned active : 1, gone : 1;
	unsigned got_data : 1; /* the stream in flight has answered */
};

static void start_request(struct kube_watch *w);

static void set_rv(struct kube_watch *w, const char *rv)
{
	if (!rv)
		return;
	free(w->rv);
	w->rv = xstrdup(rv);
}

/* Again after a pause that grows while the API fails, or give up. */
static void again_later(struct kube_watch *w, const char *why)
{
	long long now = loop_now_ms();

	if (!w->failing_since)
		w->failing_since = now;
	if (now - w->failing_since >= LOST_MS) {
		w->active = 0;
		w->lost(w->arg, why);
		return;
	}
	log_verbose("kubernetes: %s; retrying in %d ms", why, w->backoff_ms);
	loop_timer_arm(&w->retry, now + w->backoff_ms);
	w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							   : w->backoff_ms * 2;
}

static void worked(struct kube_watch *w)
{
	w->failing_since = 0;
	w->backoff_ms = BACKOFF_MIN_MS;
}

static void on_event(struct kube_watch *w, const char *text, size_t len)
{
	struct error err = ERROR_INIT;
	struct json *ev = NULL;
	const char *type;
	const struct json *obj;

	if (json_parse(&ev, text, len, &err)) {
		error_release(&err);
		return;
	}
	type = json_get_str(ev, "type");
	obj = json_get(ev, "object");
	if (!type || !obj) {
		json_free(ev);
		return;
	}
	if (!strcmp(type, "ERROR")) {
		long long code = 0;

		json_get_int(obj, "code", &code);
		if (code == 410) {
			free(w->rv);
			w->rv = NULL;
			w->gone = 1;
		}
	} else {
		set_rv(w, json_get_str(obj, "metadata.resourceVersion"));
		if (strcmp(type, "BOOKMARK"))
			w->fn(w->arg, type, obj);
	}
	json_free(ev);
}

/* The complete lines that came: events for the executor, which may start
 * and free requests (so never from inside curl's data callback). */
static void parse_lines(struct kube_watch *w)
{
	char *nl;

	struct strbuf lines = STRBUF_INIT;
	size_t off = 0;

	loop_timer_disarm(&w->parse);
	/* the complete lines, taken out first: an event may stop the watch */
	nl = memrchr(w->line.buf, '\n', w->line.len);
	if (!nl)
		return;
	strbuf_add(&lines, w->line.buf, (size_t)(nl - w->line.buf) + 1);
	memmove(w->line.buf, nl + 1, w->line.len - lines.len);
	strbuf_setlen(&w->line, w->line.len - lines.len);
	while ((nl = memchr(lines.buf + off, '\n', lines.len - off))) {
		on_event(w, lines.buf + off, (size_t)(nl - lines.buf) - off);
		off = (size_t)(nl - lines.buf) + 1;
	}
	strbuf_release(&lines);
}

static void on_parse(void *arg)
{
	parse_lines(arg);
}

static void on_data(void *arg, const char *data, size_t len)
{
	struct kube_watch *w = arg;

	w->got_data = 1;
	strbuf_add(&w->line, data, len);
	if (memchr(data, '\n', len))
		loop_timer_arm(&w->parse, loop_now_ms());
}

static void listed(struct kube_watch *w, struct http_xfer *x)
{
	const struct strbuf *body = http_xfer_body(x);
	struct error err = ERROR_INIT;
	struct json *list = NULL;
	const struct json *items;

	if (json_parse(&list, body->buf, body->len, &err)) {
		error_release(&err);
		again_later(w, "the API's list could not be read");
		return;
	}
	worked(w);
	items = json_get(list, "items");
	for (size_t i = 0; i < json_array_len(items); i++)
		w->fn(w->arg, "ADDED", json_array_at(items, i));
	/* what went away while nobody watched is missing from it */
	w->fn(w->arg, "LISTED", list);
	set_rv(w, json_get_str(list, "metadata.resourceVersion"));
	json_free(list);
	if (w->active)
		start_request(w);
}

static void on_done(void *arg, struct http_xfer *x)
{
	struct kube_watch *w = arg;
	long st = http_xfer_status(x);
	struct strbuf why = STRBUF_INIT;
	int watching = w->watching;

	w->x = NULL;
	if (w->active && watching)
		parse_lines(w);
	strbuf_reset(&w->line);
	if (!w->active) {
		http_xfer_free(x);
		return;
	}
	/* a watch cut after its 200 (a proxy, a restart) resumes at once:
	 * the API answered */
	if (*http_xfer_error(x) && watching && (st == 200 || w->got_data)) {
		st = 200; /* cut after it answered: as a stream's end */
	} else if (*http_xfer_error(x)) {
		strbuf_addf(&why, "cannot reach the Kubernetes API: %s",
			    http_xfer_error(x));
	} else if (st == 401) {
		w->fn(w->arg, "UNAUTHORIZED", NULL);
		strbuf_addstr(&why, "the Kubernetes API said 401 Unauthorized");
	} else if (st == 410) {
		free(w->rv);
		w->rv = NULL;
	} else if (st == 429 || st >= 500) {
		strbuf_addf(&why, "the Kubernetes API answered %ld: ", st);
		json_error_message(http_xfer_body(x)->buf,
				   http_xfer_body(x)->len, &why);
	} else if (st != 200) {
		strbuf_addf(&why, "the Kubernetes API answered %ld: ", st);
		json_error_message(http_xfer_body(x)->buf,
				   http_xfer_body(x)->len, &why);
		w->active = 0;
		http_xfer_free(x);
		w->lost(w->arg, why.buf);
		strbuf_release(&why);
		return;
	} else if (!watching) {
		listed(w, x);
		http_xfer_free(x);
		strbuf_release(&why);
		return;
	}
	http_xfer_free(x);
	if (why.len) {
		again_later(w, why.buf);
	} else {
		/* the stream ended (its timeout, 410, the server going
		 * away): resume at once */
		worked(w);
		if (w->gone)
			log_verbose("kubernetes: watch of %s: 410 Gone: "
				    "listing again",
				    w->path);
		w->gone = 0;
		start_request(w);
	}
	strbuf_release(&why);
}

static void start_request(struct kube_watch *w)
{
	struct strbuf p = STRBUF_INIT;

	strbuf_addf(&p, "%s?labelSelector=", w->path);
	http_escape(&p, w->selector);
	w->watching = w->rv != NULL;
	w->got_data = 0;
	if (w->watching) {
		strbuf_addf(&p,
			    "&watch=1&allowWatchBookmarks=true"
			    "&timeoutSeconds=%d&resourceVersion=",
			    WATCH_SECONDS);
		http_escape(&p, w->rv);
	} else {
		w->lists++;
	}
	w->x = w->req(w->arg, "GET", p.buf, NULL,
		      w->watching ? (WATCH_SECONDS + 30) * 1000L : 60000L,
		      on_done, w, w->watching ? on_data : NULL);
	strbuf_release(&p);
}

static void on_retry(void *arg)
{
	struct kube_watch *w = arg;

	if (w->active && !w->x)
		start_request(w);
}

struct kube_watch *kube_watch_new(const char *path, const char *selector,
				  kube_request_fn *req, kube_watch_fn *fn,
				  kube_watch_lost_fn *lost, void *arg)
{
	struct kube_watch *w = xcalloc(1, sizeof(*w));

	w->path = xstrdup(path);
	w->selector = xstrdup(selector);
	w->req = req;
	w->fn = fn;
	w->lost = lost;
	w->arg = arg;
	w->backoff_ms = BACKOFF_MIN_MS;
	strbuf_init(&w->line, 0);
	loop_timer_init(&w->retry, on_retry, w);
	loop_timer_init(&w->parse, on_parse, w);
	return w;
}

void kube_watch_start(struct kube_watch *w)
{
	if (w->active)
		return;
	w->active = 1;
	w->failing_since = 0;
	if (!w->x)
		start_request(w);
}

void kube_watch_stop(struct kube_watch *w)
{
	if (!w)
		return;
	w->active = 0;
	loop_timer_disarm(&w->retry);
	loop_timer_disarm(&w->parse);
	http_xfer_free(w->x);
	w->x = NULL;
	strbuf_reset(&w->line);
}

void kube_watch_free(struct kube_watch *w)
{
	if (!w)
		return;
	kube_watch_stop(w);
	free(w->path);
	free(w->selector);
	free(w->rv);
	strbuf_release(&w->line);
	free(w);
}

unsigned kube_watch_lists(const struct kube_watch *w)
{
	return w->lists;
}
