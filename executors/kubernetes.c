/* The Kubernetes executor: pipe stays a client, the cluster does the work.
 * A stage becomes one Indexed Job (one completion, or one per datum; the
 * cluster retries each index and runs parallelism of them at once); pipe
 * watches Jobs and pods on the executors' loop, streams each pod's log
 * into its unit, reports image pull failures, unschedulable pods, OOM
 * kills and timeouts as they happen, and deletes every Job it made (on
 * success, failure, timeout and Ctrl-C; a killed pipe's are deleted by
 * the next run). Images run pinned by digest (executors/oci.h). */
#include "executors/kube.h"
#include "executors/kubeauth.h"
#include "executors/kubernetes.h"
#include "executors/oci.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/kubecfg.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REQUEST_MS 30000
#define LOG_DRAIN_MS 3000 /* a finished pod's log, after its end is seen */
#define CREATE_TRIES 5
#define LIST_GRACE_MS 10000
#define UNSCHEDULABLE_MS 5000
#define LOG_RESUMES 120 /* a cut log stream: up to a minute or so */
/* A running pod's log is followed once it has run this long; one that
 * ends sooner is read once, ended. A followed log of a short pod keeps
 * a stream through the apiserver to the kubelet open after the pod ends
 * (the kubelet looks again after a second or more): for 200 pods of 0.1 s
 * that cost pipe 10% against a Job nobody reads the logs of. */
#define LOG_FOLLOW_AFTER_MS 2000
#define TS_LEN 29 /* 2026-12-04T19:52:02.123456789 */

struct kjob;

/* One completion index: a whole stage, or one datum. */
struct kunit {
	struct loop_unit *lu;
	struct kjob *job;
	size_t index;
	char *pod;	/* the pod whose log is streamed */
	char *log_base; /* absolute PIPE_OUT: the pods' log files beside it
			 * are "<log_base>-<pod>.log"; NULL: none */
	struct http_xfer *logx; /* that stream */
	struct loop_timer drain;
	struct loop_timer relog;  /* a cut log stream, asked for again */
	struct strbuf logline;	  /* a line of the log not complete yet */
	char last_ts[TS_LEN + 1]; /* the last log line's time, normalized */
	int log_resumes;
	int result; /* 0: open; 1: succeeded; 2: failed */
	int exit_code;
	char *reason; /* the last attempt's end: OOMKilled, DeadlineExceeded */
	unsigned pod_running : 1, drained : 1, resumed : 1, log_begun : 1;
};

struct kjob {
	struct exec_ctx *ctx;
	char *name;
	char *env_dir; /* absolute; NULL: none */
	struct kunit **units;
	size_t n, open; /* units, and those not ended */
	struct http_xfer *create;
	struct strbuf body; /* the manifest, kept for a retried create */
	int tries;
	struct loop_timer retry;
	long long created_ms;	   /* when the API said 201 */
	struct loop_timer unsched; /* a pod no node takes, for this long */
	struct strbuf unsched_msg;
	unsigned created : 1, deleting : 1;
};

struct exec_ctx {
	struct exec_options opt;
	const struct kube_config *kc;
	struct exec_kube kopt;
	struct kube_auth *auth;
	struct http *http;
	struct oci *oci;
	char *ns;
	char ws_label[17];
	struct kjob **jobs;
	size_t nr_jobs, alloc_jobs;
	struct kube_watch *wjobs, *wpods;
	unsigned swept : 1;
};

/* ------------------------------------------------------------------ */
/* Requests */

static struct http_xfer *request(void *arg, const char *method,
				 const char *path, const struct strbuf *body,
				 long timeout_ms, http_done_fn *done,
				 void *done_arg,
				 void (*on_data)(void *, const char *, size_t))
{
	struct exec_ctx *ctx = arg;
	struct strbuf bearer = STRBUF_INIT, hdr = STRBUF_INIT;
	struct error err = ERROR_INIT;
	char *headers[2] = {NULL, NULL};
	struct http_request req = {
		.method = method,
		.path = path,
		.timeout_ms = timeout_ms,
		.on_data = on_data,
		.data_arg = done_arg,
	};
	struct http_xfer *x;

	if (kube_auth_headers(ctx->auth, &bearer, &err))
		log_warn("kubernetes: %s", err.msg.buf);
	else if (bearer.len) {
		strbuf_addf(&hdr, "Authorization: Bearer %s", bearer.buf);
		headers[0] = hdr.buf;
		req.headers = headers;
	}
	error_release(&err);
	if (body) {
		req.content_type = "application/json";
		req.body = body->buf;
		req.body_len = body->len;
	}
	x = http_start(ctx->http, &req, done, done_arg);
	if (hdr.len)
		explicit_bzero(hdr.buf, hdr.len);
	if (bearer.len)
		explicit_bzero(bearer.buf, bearer.len);
	strbuf_release(&hdr);
	strbuf_release(&bearer);
	return x;
}

/* Run one request to its end; transport errors are EXIT_ENV. A 401 asks
 * the credentials once more (an expired exec credential). */
static int run_request(struct exec_ctx *ctx, const char *method,
		       const char *path, const struct strbuf *body,
		       struct http_xfer **out, struct error *err)
{
	for (int tries = 0;; tries++) {
		struct http_xfer *x = request(ctx, method, path, body,
					      REQUEST_MS, NULL, NULL, NULL);

		while (!http_xfer_done(x)) {
			int r = http_poll(ctx->http, -1, err);

			if (r) {
				if (r > 0)
					error_set(err, EXIT_INTERRUPTED,
						  "interrupted");
				http_xfer_free(x);
				return -1;
			}
		}
		if (*http_xfer_error(x)) {
			error_set(err, EXIT_ENV,
				  "cannot reach the Kubernetes API at %s: %s",
				  ctx->kc->server, http_xfer_error(x));
			http_xfer_free(x);
			return -1;
		}
		if (http_xfer_status(x) == 401 && !tries) {
			kube_auth_invalidate(ctx->auth);
			http_xfer_free(x);
			continue;
		}
		*out = x;
		return 0;
	}
}

static void api_message(struct http_xfer *x, struct strbuf *out)
{
	const struct strbuf *b = http_xfer_body(x);

	strbuf_addf(out,
		    "the Kubernetes API answered %ld: ", http_xfer_status(x));
	json_error_message(b->buf, b->len, out);
}

static void bg_done(void *arg, struct http_xfer *x)
{
	long st = http_xfer_status(x);

	(void)arg;
	if ((st < 200 || st >= 300) && st != 404) {
		struct strbuf sb = STRBUF_INIT;

		if (*http_xfer_error(x))
			strbuf_addstr(&sb, http_xfer_error(x));
		else
			api_message(x, &sb);
		log_verbose("kubernetes: deleting: %s", sb.buf);
		strbuf_release(&sb);
	}
	http_xfer_free(x);
}

static void bg_request(struct exec_ctx *ctx, const char *method,
		       const char *path)
{
	/* nobody keeps it: bg_done frees it; close waits for the http
	 * handle's requests to end */
	request(ctx, method, path, NULL, REQUEST_MS, bg_done, ctx, NULL);
}

/* The Job, and its pods at once (not when the garbage collector gets to
 * them): a Ctrl-C leaves nothing running. */
static void delete_job(struct exec_ctx *ctx, const char *name)
{
	struct strbuf p = STRBUF_INIT;

	strbuf_addf(&p,
		    "/apis/batch/v1/namespaces/%s/jobs/%s"
		    "?propagationPolicy=Background",
		    ctx->ns, name);
	bg_request(ctx, "DELETE", p.buf);
	strbuf_reset(&p);
	strbuf_addf(&p, "/api/v1/namespaces/%s/pods?labelSelector=", ctx->ns);
	http_escape(&p, "job-name=");
	strbuf_addstr(&p, name);
	bg_request(ctx, "DELETE", p.buf);
	strbuf_release(&p);
}

/* ------------------------------------------------------------------ */
/* Units and Jobs */

static struct kjob *find_job(struct exec_ctx *ctx, const char *name)
{
	for (size_t i = 0; name && i < ctx->nr_jobs; i++)
		if (!strcmp(ctx->jobs[i]->name, name))
			return ctx->jobs[i];
	return NULL;
}

static void job_free(struct kjob *j)
{
	http_xfer_free(j->create);
	loop_timer_disarm(&j->retry);
	loop_timer_disarm(&j->unsched);
	strbuf_release(&j->unsched_msg);
	if (j->env_dir) {
		fs_remove_tree(j->env_dir);
		free(j->env_dir);
	}
	strbuf_release(&j->body);
	for (size_t i = 0; j->units && i < j->n; i++) {
		if (!j->units[i])
			continue;
		http_xfer_free(j->units[i]->logx);
		loop_timer_disarm(&j->units[i]->drain);
		loop_timer_disarm(&j->units[i]->relog);
		free(j->units[i]->pod);
		free(j->units[i]->reason);
		strbuf_release(&j->units[i]->logline);
		free(j->units[i]->log_base);
		free(j->units[i]);
	}
	free(j->units);
	free(j->name);
	free(j);
}

/* The last unit of a Job has been reported: delete the Job, forget it,
 * stop watching when nothing is left. */
static void job_closed(struct kjob *j)
{
	struct exec_ctx *ctx = j->ctx;

	if (j->created && !j->deleting)
		delete_job(ctx, j->name);
	for (size_t i = 0; i < ctx->nr_jobs; i++)
		if (ctx->jobs[i] == j) {
			ctx->jobs[i] = ctx->jobs[--ctx->nr_jobs];
			break;
		}
	job_free(j);
	if (!ctx->nr_jobs) {
		kube_watch_stop(ctx->wjobs);
		kube_watch_stop(ctx->wpods);
	}
}

static void log_line(struct kunit *u, const char *line, size_t len);
static void drop_log_file(struct kunit *u);

static void unit_end(struct kunit *u)
{
	struct loop_unit *lu = u->lu;

	if (!lu || lu->ended)
		return;
	drop_log_file(u);
	http_xfer_free(u->logx);
	u->logx = NULL;
	loop_timer_disarm(&u->drain);
	loop_timer_disarm(&u->relog);
	if (u->logline.len) { /* a last line without '\n' */
		log_line(u, u->logline.buf, u->logline.len);
		strbuf_reset(&u->logline);
	}
	if (u->result == 1) {
		lu->exit_code = 0;
	} else {
		lu->exit_code = u->exit_code > 0 ? u->exit_code : -1;
		if (u->reason && !strcmp(u->reason, "OOMKilled"))
			lu->oom_killed = 1;
		if (u->reason && !strcmp(u->reason, "DeadlineExceeded") &&
		    !lu->message) {
			struct strbuf sb = STRBUF_INIT;

			lu->timed_out = 1;
			strbuf_addstr(&sb, "timed out after ");
			loop_format_duration(&sb, lu->timeout_ms);
			lu->message = strbuf_detach(&sb, NULL);
		}
		if (!lu->message && lu->exit_code < 0 && !lu->cancelled)
			lu->message = xstrfmt("the pod failed%s%s",
					      u->reason ? ": " : "",
					      u->reason ? u->reason : "");
	}
	loop_unit_end(lu, 1);
}

/* End u once its result is known and its log has been read (or had its
 * time to drain): the Job's watch may tell of the end before the pods'
 * watch shows the pod whose log is to be read. */
static void try_end(struct kunit *u)
{
	if (!u->result || !u->lu || u->lu->ended)
		return;
	if ((u->logx || !u->pod || u->relog.at >= 0) && !u->drained) {
		if (u->drain.at < 0)
			loop_timer_arm(&u->drain, loop_now_ms() + LOG_DRAIN_MS);
		return;
	}
	unit_end(u);
}

static void on_drain(void *arg)
{
	struct kunit *u = arg;

	u->drained = 1;
	try_end(u);
}

/* The whole Job failed (an image that cannot be pulled, a pod that
 * cannot be scheduled, an API error): every open unit says why. */
static void job_fail(struct kjob *j, const char *msg)
{
	for (size_t i = 0; i < j->n; i++) {
		struct kunit *u = j->units[i];

		if (!u->lu || u->lu->ended || u->result == 1)
			continue;
		if (!u->lu->message)
			u->lu->message = xstrdup(msg);
		u->result = 2;
		u->drained = 1;
		try_end(u);
	}
	if (j->created && !j->deleting) {
		j->deleting = 1;
		delete_job(j->ctx, j->name);
	}
}

static void kube_stop(struct loop_unit *lu, int sig)
{
	struct kunit *u = lu->impl;
	struct kjob *j = u->job;

	(void)sig;
	if (j->deleting)
		return;
	j->deleting = 1;
	if (j->created)
		delete_job(j->ctx, j->name);
	/* the Job is going: its units end now, their pods with it */
	for (size_t i = 0; i < j->n; i++) {
		struct kunit *x = j->units[i];

		if (x->lu && !x->lu->ended && x->result != 1) {
			x->lu->cancelled = 1;
			x->result = 2;
			x->drained = 1;
			unit_end(x);
		}
	}
}

static void kube_release(struct loop_unit *lu)
{
	struct kunit *u = lu->impl;
	struct kjob *j = u->job;

	/* u stays in the Job (events for its index may still come) until
	 * the Job is freed */
	http_xfer_free(u->logx);
	u->logx = NULL;
	loop_timer_disarm(&u->drain);
	loop_timer_disarm(&u->relog);
	u->lu = NULL;
	if (!--j->open)
		job_closed(j);
}

static const struct loop_ops kube_ops = {
	.stop = kube_stop,
	.release = kube_release,
};

/* ------------------------------------------------------------------ */
/* Logs */

/* Logs are asked for with timestamps, so that a stream cut before the pod
 * ended (the apiserver restarting) resumes where it stopped: each line's
 * "2026-12-04T19:52:02.123456789Z " is cut off, and kept (normalized to
 * nanoseconds, comparable as text) as the last one seen. */
static void norm_time(const char *ts, size_t len, char out[TS_LEN + 1])
{
	const char *dot = memchr(ts, '.', len);
	size_t sec =
		dot ? (size_t)(dot - ts) : len - (len && ts[len - 1] == 'Z');
	size_t k = 0;

	memset(out, '0', TS_LEN);
	out[TS_LEN] = '\0';
	memcpy(out, ts, sec < 19 ? sec : 19);
	out[19] = '.';
	for (const char *p = dot ? dot + 1 : ts + len;
	     p < ts + len && *p != 'Z' && k < 9; p++)
		out[20 + k++] = *p;
}

static void log_line(struct kunit *u, const char *line, size_t len)
{
	const char *sp = memchr(line, ' ', len);
	char ts[TS_LEN + 1];

	if (!sp || sp == line || line[0] < '0' || line[0] > '9') {
		loop_unit_output(u->lu, 1, line, len); /* no timestamp */
		return;
	}
	norm_time(line, (size_t)(sp - line), ts);
	if (u->resumed && strcmp(ts, u->last_ts) <= 0)
		return; /* seen before the stream was cut */
	memcpy(u->last_ts, ts, sizeof(ts));
	sp++;
	loop_unit_output(u->lu, 1, sp, len - (size_t)(sp - line));
}

static void on_log_data(void *arg, const char *data, size_t len)
{
	struct kunit *u = arg;
	const char *nl;

	if (!u->lu || u->lu->ended)
		return;
	while ((nl = memchr(data, '\n', len))) {
		size_t n = (size_t)(nl - data) + 1;

		if (u->logline.len) {
			strbuf_add(&u->logline, data, n);
			log_line(u, u->logline.buf, u->logline.len);
			strbuf_reset(&u->logline);
		} else {
			log_line(u, data, n);
		}
		data += n;
		len -= n;
	}
	strbuf_add(&u->logline, data, len);
}

static void start_log(struct kunit *u);

static void on_log_done(void *arg, struct http_xfer *x)
{
	struct kunit *u = arg;
	int cut = *http_xfer_error(x) != '\0';

	if (http_xfer_status(x) >= 300 && u->lu && !u->lu->ended) {
		struct strbuf sb = STRBUF_INIT;

		strbuf_addstr(&sb, "cannot read the pod's log: ");
		api_message(x, &sb);
		loop_unit_note(u->lu, sb.buf);
		strbuf_release(&sb);
	}
	if (u->logx == x) {
		u->logx = NULL;
		http_xfer_free(x);
	}
	if (u->logline.len && u->lu && !u->lu->ended && !cut) {
		log_line(u, u->logline.buf, u->logline.len);
		strbuf_reset(&u->logline);
	}
	/* cut while the pod runs (the API away): again, from the last line
	 * seen, after a pause that grows */
	if (cut && u->lu && !u->lu->ended && u->log_resumes < LOG_RESUMES) {
		int n = ++u->log_resumes;

		strbuf_reset(&u->logline);
		u->resumed = 1;
		loop_timer_arm(&u->relog,
			       loop_now_ms() + 250LL * (n < 8 ? n : 8));
		return;
	}
	u->drained = 1;
	try_end(u);
}

static void start_log(struct kunit *u)
{
	struct exec_ctx *ctx = u->job->ctx;
	struct strbuf p = STRBUF_INIT;

	u->log_begun = 1;
	strbuf_addf(&p,
		    "/api/v1/namespaces/%s/pods/%s/log?follow=true"
		    "&timestamps=true",
		    ctx->ns, u->pod);
	if (u->resumed && u->last_ts[0]) {
		/* whole seconds: what came again is skipped by its time */
		strbuf_addstr(&p, "&sinceTime=");
		strbuf_add(&p, u->last_ts, 19);
		strbuf_addstr(&p, "Z");
	}
	u->logx = request(ctx, "GET", p.buf, NULL, 0, on_log_done, u,
			  on_log_data);
	strbuf_release(&p);
}

/* The pod has ended: its log from the file its tee wrote (read whole,
 * then removed), or, when there is none (an image without tee), from the
 * API. */
static void read_ended_log(struct kunit *u)
{
	char *path;
	char buf[65536];
	ssize_t n;
	int fd;

	if (!u->log_base || !u->pod) {
		start_log(u);
		return;
	}
	path = xstrfmt("%s-%s.log", u->log_base, u->pod);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			log_verbose("kubernetes: %s: %s", path,
				    strerror(errno));
		free(path);
		start_log(u);
		return;
	}
	u->log_begun = 1;
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			loop_unit_note(u->lu, "cannot read the pod's log");
			break;
		}
		loop_unit_output(u->lu, 1, buf, (size_t)n);
	}
	close(fd);
	unlink(path);
	free(path);
	/* ended by the loop, once the pod's exit code is taken */
	loop_timer_arm(&u->drain, loop_now_ms());
}

/* A pod whose log was followed from the API: its file is not needed. */
static void drop_log_file(struct kunit *u)
{
	char *path;

	if (!u->log_base || !u->pod)
		return;
	path = xstrfmt("%s-%s.log", u->log_base, u->pod);
	unlink(path);
	free(path);
}

static void on_relog(void *arg)
{
	struct kunit *u = arg;

	if (u->lu && !u->lu->ended && !u->logx)
		start_log(u);
}

/* pod's log, now (it has ended) or once it has run LOG_FOLLOW_AFTER_MS */
static void follow_log(struct kunit *u, const char *pod, int now)
{
	if (u->pod) {
		struct strbuf note = STRBUF_INIT;

		strbuf_addf(&note, "retry in pod %s", pod);
		loop_unit_note(u->lu, note.buf);
		strbuf_release(&note);
		drop_log_file(u);
	}
	free(u->pod);
	u->pod = xstrdup(pod);
	http_xfer_free(u->logx);
	u->logx = NULL;
	loop_timer_disarm(&u->relog);
	u->drained = 0;
	u->resumed = 0;
	u->log_resumes = 0;
	u->log_begun = 0;
	u->last_ts[0] = '\0';
	strbuf_reset(&u->logline);
	if (now)
		read_ended_log(u);
	else
		loop_timer_arm(&u->relog, loop_now_ms() + LOG_FOLLOW_AFTER_MS);
}

/* ------------------------------------------------------------------ */
/* What the watches see */

static const char *const pull_failures[] = {
	"ErrImagePull",
	"ImagePullBackOff",
	"InvalidImageName",
	"ErrImageNeverPull",
	"CreateContainerConfigError",
	"CreateContainerError",
};

static int pull_failure(const char *reason)
{
	for (size_t i = 0; reason && i < ARRAY_SIZE(pull_failures); i++)
		if (!strcmp(reason, pull_failures[i]))
			return 1;
	return 0;
}

static size_t running_pods(const struct kjob *j)
{
	size_t n = 0;

	for (size_t i = 0; i < j->n; i++)
		n += j->units[i]->lu && j->units[i]->pod_running;
	return n;
}

/* A pod no node can take while none of its Job's pods runs (which could
 * make room) fails the Job: 1. */
static int unschedulable(struct kjob *j, const struct json *status)
{
	const struct json *conds = json_get(status, "conditions");

	for (size_t i = 0; i < json_array_len(conds); i++) {
		const struct json *c = json_array_at(conds, i);
		const char *type = json_get_str(c, "type");
		const char *st = json_get_str(c, "status");
		const char *reason = json_get_str(c, "reason");
		const char *msg = json_get_str(c, "message");

		if (!type || strcmp(type, "PodScheduled") || !st)
			continue;
		if (strcmp(st, "False") || !reason ||
		    strcmp(reason, "Unschedulable")) {
			loop_timer_disarm(&j->unsched); /* scheduled */
			return 0;
		}
		/* pods of this Job that run may make room when they end; a
		 * claim being bound, a node coming up: the scheduler tries
		 * again, so pipe gives it UNSCHEDULABLE_MS first */
		if (running_pods(j))
			return 0;
		strbuf_reset(&j->unsched_msg);
		strbuf_addf(&j->unsched_msg,
			    "no node can run the pod (FailedScheduling): %s",
			    msg ? msg : reason);
		if (j->unsched.at < 0)
			loop_timer_arm(&j->unsched,
				       loop_now_ms() + UNSCHEDULABLE_MS);
		return 0;
	}
	return 0;
}

static void on_unschedulable(void *arg)
{
	struct kjob *j = arg;

	if (!running_pods(j) && j->unsched_msg.len)
		job_fail(j, j->unsched_msg.buf);
}

static void on_pod(struct exec_ctx *ctx, const char *type,
		   const struct json *pod)
{
	const struct json *labels = json_get(pod, "metadata.labels");
	const char *job_name = NULL, *idx, *name;
	const struct json *cs, *st;
	struct kjob *j;
	struct kunit *u;
	unsigned long index;
	char *end;

	/* label keys have dots: looked up as keys, not paths */
	job_name = json_member_str(labels, "job-name");
	j = find_job(ctx, job_name);
	if (!j || j->deleting)
		return;
	idx = json_member_str(labels, KUBE_INDEX_LABEL);
	name = json_get_str(pod, "metadata.name");
	if (!idx || !name)
		return;
	index = strtoul(idx, &end, 10);
	if (end == idx || *end || index >= j->n)
		return;
	u = j->units[index];
	if (!u->lu || u->lu->ended)
		return;
	if (!strcmp(type, "DELETED")) {
		if (u->pod && !strcmp(u->pod, name))
			u->pod_running = 0;
		return;
	}
	st = json_get(pod, "status");
	if (unschedulable(j, st))
		return;
	cs = json_array_at(json_get(st, "containerStatuses"), 0);
	if (cs) {
		const char *wait = json_get_str(cs, "state.waiting.reason");
		long long code;

		if (pull_failure(wait)) {
			struct strbuf sb = STRBUF_INIT;
			const char *m =
				json_get_str(cs, "state.waiting.message");

			strbuf_addf(&sb, "cannot start the container (%s)",
				    wait);
			if (m)
				strbuf_addf(&sb, ": %s", m);
			job_fail(j, sb.buf);
			strbuf_release(&sb);
			return;
		}
		int ended = json_get(cs, "state.terminated") != NULL;

		if ((json_get(cs, "state.running") || ended) &&
		    (!u->pod || strcmp(u->pod, name)))
			follow_log(u, name, ended);
		else if (ended && !u->log_begun && u->pod &&
			 !strcmp(u->pod, name)) {
			loop_timer_disarm(&u->relog);
			read_ended_log(u); /* ended before it was followed */
		}
		u->pod_running = json_get(cs, "state.running") != NULL;
		if (!json_get_int(cs, "state.terminated.exitCode", &code)) {
			const char *r =
				json_get_str(cs, "state.terminated.reason");

			u->exit_code = (int)code;
			free(u->reason);
			u->reason = r ? xstrdup(r) : NULL;
		}
	}
	{
		const char *phase = json_get_str(st, "phase");
		const char *reason = json_get_str(st, "reason");

		if (phase && !strcmp(phase, "Failed") && reason &&
		    !strcmp(reason, "DeadlineExceeded")) {
			free(u->reason);
			u->reason = xstrdup(reason);
		}
	}
}

static void index_done(void *arg, size_t i)
{
	struct kunit *u = ((struct kjob *)arg)->units[i];

	if (!u->result)
		u->result = 1;
}

static void index_failed(void *arg, size_t i)
{
	struct kunit *u = ((struct kjob *)arg)->units[i];

	if (!u->result)
		u->result = 2;
}

static int condition(const struct json *status, const char *want,
		     const char **reason, const char **msg)
{
	const struct json *conds = json_get(status, "conditions");

	for (size_t i = 0; i < json_array_len(conds); i++) {
		const struct json *c = json_array_at(conds, i);
		const char *type = json_get_str(c, "type");
		const char *st = json_get_str(c, "status");

		if (type && !strcmp(type, want) && st && !strcmp(st, "True")) {
			*reason = json_get_str(c, "reason");
			*msg = json_get_str(c, "message");
			return 1;
		}
	}
	return 0;
}

static void on_job(struct exec_ctx *ctx, const char *type,
		   const struct json *job)
{
	struct kjob *j = find_job(ctx, json_get_str(job, "metadata.name"));
	const struct json *st = json_get(job, "status");
	const char *reason = NULL, *msg = NULL;

	if (!j || j->deleting)
		return;
	if (!strcmp(type, "DELETED")) {
		j->created = 0;
		job_fail(j, "the Job was deleted by someone else");
		return;
	}
	kube_each_index(json_get_str(st, "completedIndexes"), j->n, index_done,
			j);
	kube_each_index(json_get_str(st, "failedIndexes"), j->n, index_failed,
			j);
	if (condition(st, "Failed", &reason, &msg)) {
		for (size_t i = 0; i < j->n; i++) {
			struct kunit *u = j->units[i];

			if (u->lu && !u->result) {
				u->result = 2;
				if (!u->reason && reason)
					u->reason = xstrdup(reason);
			}
		}
	} else if (condition(st, "Complete", &reason, &msg)) {
		for (size_t i = 0; i < j->n; i++)
			index_done(j, i);
	}
	for (size_t i = 0; i < j->n; i++)
		try_end(j->units[i]);
}

/* After a (re-)list: a Job of ours missing from it was deleted while
 * nobody watched. One created just now may be missing from a list asked
 * for before it existed: it gets LIST_GRACE_MS. */
static void listed_jobs(struct exec_ctx *ctx, const struct json *list)
{
	const struct json *items = json_get(list, "items");
	long long now = loop_now_ms();

	for (size_t k = ctx->nr_jobs; k-- > 0;) {
		struct kjob *j = ctx->jobs[k];
		int found = 0;

		if (!j->created || j->deleting ||
		    now - j->created_ms < LIST_GRACE_MS)
			continue;
		for (size_t i = 0; i < json_array_len(items) && !found; i++) {
			const char *n = json_get_str(json_array_at(items, i),
						     "metadata.name");

			found = n && !strcmp(n, j->name);
		}
		if (!found) {
			j->created = 0;
			job_fail(j, "the Job was deleted by someone else");
		}
	}
}

static void on_watch_jobs(void *arg, const char *type, const struct json *obj)
{
	struct exec_ctx *ctx = arg;

	if (!strcmp(type, "UNAUTHORIZED"))
		kube_auth_invalidate(ctx->auth);
	else if (!strcmp(type, "LISTED"))
		listed_jobs(ctx, obj);
	else
		on_job(ctx, type, obj);
}

static void on_watch_pods(void *arg, const char *type, const struct json *obj)
{
	struct exec_ctx *ctx = arg;

	if (!strcmp(type, "UNAUTHORIZED"))
		kube_auth_invalidate(ctx->auth);
	else if (strcmp(type, "LISTED"))
		on_pod(ctx, type, obj);
}

static void on_lost(void *arg, const char *message)
{
	struct exec_ctx *ctx = arg;

	for (size_t i = ctx->nr_jobs; i-- > 0;)
		job_fail(ctx->jobs[i], message);
}

/* ------------------------------------------------------------------ */
/* Connecting */

static int connect_api(struct exec_ctx *ctx, struct error *err)
{
	const struct kube_config *kc = ctx->kc;
	struct http_target t = {
		.base_url = kc->server,
		.ca_pem = kc->ca_pem,
		.cert_pem = kc->cert_pem,
		.key_pem = kc->key_pem,
		.insecure = kc->insecure,
	};

	if (ctx->http)
		return 0;
	if (kc->insecure)
		log_warn("kubernetes: TLS is not verified for %s "
			 "(insecure-skip-tls-verify in %s)",
			 kc->server,
			 kc->source ? kc->source : "the kubeconfig");
	struct strbuf bearer = STRBUF_INIT;
	int ret;

	if (kube_auth_new(&ctx->auth, kc, err))
		return -1;
	/* an exec plugin runs now: its client certificate, if any */
	ret = kube_auth_headers(ctx->auth, &bearer, err);
	if (bearer.len)
		explicit_bzero(bearer.buf, bearer.len);
	strbuf_release(&bearer);
	if (ret)
		return -1;
	kube_auth_client_cert(ctx->auth, &t.cert_pem, &t.key_pem);
	return http_new(&ctx->http, &t, err);
}

/* The Jobs a killed pipe left in this workspace's name: deleted (the
 * workspace lock says no other pipe runs here). Also proves the API
 * answers: an unreachable cluster is EXIT_ENV before any Job. */
static int sweep(struct exec_ctx *ctx, struct error *err)
{
	struct strbuf p = STRBUF_INIT, sel = STRBUF_INIT;
	struct http_xfer *x = NULL;
	struct json *list = NULL;
	const struct json *items;
	int ret = -1;

	strbuf_addf(&sel, KUBE_LABEL_WORKSPACE "=%s", ctx->ws_label);
	strbuf_addf(&p, "/apis/batch/v1/namespaces/%s/jobs?labelSelector=",
		    ctx->ns);
	http_escape(&p, sel.buf);
	if (run_request(ctx, "GET", p.buf, NULL, &x, err))
		goto out;
	if (http_xfer_status(x) != 200) {
		struct strbuf m = STRBUF_INIT;

		api_message(x, &m);
		error_set(err, EXIT_ENV,
			  "kubernetes: cannot list Jobs in namespace '%s' at "
			  "%s: %s",
			  ctx->ns, ctx->kc->server, m.buf);
		strbuf_release(&m);
		goto out;
	}
	if (json_parse(&list, http_xfer_body(x)->buf, http_xfer_body(x)->len,
		       err))
		goto out;
	items = json_get(list, "items");
	for (size_t i = 0; i < json_array_len(items); i++) {
		const char *name =
			json_get_str(json_array_at(items, i), "metadata.name");

		if (name && !find_job(ctx, name)) {
			log_info("kubernetes: deleting Job '%s' left by an "
				 "earlier run",
				 name);
			delete_job(ctx, name);
		}
	}
	ctx->swept = 1;
	ret = 0;
out:
	json_free(list);
	http_xfer_free(x);
	strbuf_release(&p);
	strbuf_release(&sel);
	return ret;
}

static void start_watches(struct exec_ctx *ctx)
{
	struct strbuf p = STRBUF_INIT, sel = STRBUF_INIT;

	if (!ctx->wjobs) {
		strbuf_addf(&sel, KUBE_LABEL_WORKSPACE "=%s", ctx->ws_label);
		strbuf_addf(&p, "/apis/batch/v1/namespaces/%s/jobs", ctx->ns);
		ctx->wjobs = kube_watch_new(p.buf, sel.buf, request,
					    on_watch_jobs, on_lost, ctx);
		strbuf_reset(&p);
		strbuf_addf(&p, "/api/v1/namespaces/%s/pods", ctx->ns);
		ctx->wpods = kube_watch_new(p.buf, sel.buf, request,
					    on_watch_pods, on_lost, ctx);
	}
	kube_watch_start(ctx->wjobs);
	kube_watch_start(ctx->wpods);
	strbuf_release(&p);
	strbuf_release(&sel);
}

/* ------------------------------------------------------------------ */
/* Starting */

/* Pods run as non-root: the Pipefile's uid, else pipe's own, else (pipe
 * is root) the owner of the workspace. */
static int pod_user(struct exec_ctx *ctx, const char *ws, long long *uid,
		    long long *gid, struct error *err)
{
	struct stat st;

	*uid = ctx->kopt.uid;
	*gid = ctx->kopt.gid;
	if (*uid <= 0) {
		if (getuid())
			*uid = getuid();
		else if (!stat(ws, &st) && st.st_uid)
			*uid = st.st_uid;
	}
	if (*gid < 0) {
		if (getuid())
			*gid = getgid();
		else if (!stat(ws, &st) && st.st_uid)
			*gid = st.st_gid;
		else
			*gid = *uid;
	}
	if (*uid <= 0)
		return error_set(err, EXIT_USAGE,
				 "pods run as a non-root user, and pipe runs "
				 "as root in a workspace root owns: set "
				 "kubernetes.runAsUser in the Pipefile (the "
				 "owner of the workspace's files)");
	return 0;
}

/* The folders a pod writes (a datum's PIPE_OUT) belong to its user when
 * pipe, as root, made them for another. */
static void give_rw(const struct exec_unit *u, long long uid, long long gid)
{
	if (getuid() || uid == 0)
		return;
	for (char *const *p = u->rw_paths; p && *p; p++) {
		char *abs;

		if (strncmp(*p, ".pipe/", 6))
			continue;
		abs = xstrfmt("%s/%s", u->workspace, *p);
		if (chown(abs, (uid_t)uid, (gid_t)gid))
			log_verbose("kubernetes: chown %s: %s", abs,
				    strerror(errno));
		/* and the stage's folder that holds it (its pods' log files) */
		while (abs[strlen(abs) - 1] == '/')
			abs[strlen(abs) - 1] = '\0';
		*strrchr(abs, '/') = '\0';
		if (abs[strlen(abs) - 1] != '/' &&
		    chown(abs, (uid_t)uid, (gid_t)gid))
			log_verbose("kubernetes: chown %s: %s", abs,
				    strerror(errno));
		free(abs);
	}
}

static int write_env_files(struct kjob *j, const struct exec_unit *units,
			   struct strbuf *files, struct error *err)
{
	if (fs_mkdir_p(j->env_dir, 0755))
		return error_set(err, EXIT_ENV, "cannot create '%s': %s",
				 j->env_dir, strerror(errno));
	for (size_t i = 0; i < j->n; i++) {
		char *path = xstrfmt("%s/%zu", j->env_dir, i);
		/* read by the pod once: no fsync (10,000 datums) */
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			      0644);
		int r = fd < 0 || fs_write_all(fd, files[i].buf, files[i].len);

		if (fd >= 0 && close(fd))
			r = -1;

		free(path);
		if (r)
			return error_set(err, EXIT_ENV,
					 "cannot write the environment of "
					 "'%s': %s",
					 units[i].label ? units[i].label
							: units[i].stage,
					 strerror(errno));
	}
	return 0;
}

static void on_created(void *arg, struct http_xfer *x);

static void create_job(struct kjob *j)
{
	struct strbuf p = STRBUF_INIT;

	strbuf_addf(&p, "/apis/batch/v1/namespaces/%s/jobs", j->ctx->ns);
	j->tries++;
	j->create = request(j->ctx, "POST", p.buf, &j->body, REQUEST_MS,
			    on_created, j, NULL);
	strbuf_release(&p);
}

static void on_retry_create(void *arg)
{
	struct kjob *j = arg;

	if (!j->deleting)
		create_job(j);
}

static void on_created(void *arg, struct http_xfer *x)
{
	struct kjob *j = arg;
	long st = http_xfer_status(x);
	struct strbuf sb = STRBUF_INIT;

	j->create = NULL;
	if (st == 201 || st == 200) {
		j->created = 1;
		j->created_ms = loop_now_ms();
		http_xfer_free(x);
		if (j->deleting) /* cancelled while it was being made */
			delete_job(j->ctx, j->name);
		return;
	}
	if (j->deleting) {
		http_xfer_free(x);
		return;
	}
	if (st == 401 && j->tries < CREATE_TRIES)
		kube_auth_invalidate(j->ctx->auth);
	if ((*http_xfer_error(x) || st == 401 || st == 429 || st >= 500) &&
	    j->tries < CREATE_TRIES) {
		loop_timer_arm(&j->retry, loop_now_ms() + 250 * j->tries);
		http_xfer_free(x);
		return;
	}
	if (*http_xfer_error(x))
		strbuf_addf(&sb, "cannot reach the Kubernetes API at %s: %s",
			    j->ctx->kc->server, http_xfer_error(x));
	else {
		strbuf_addf(&sb, "cannot create Job '%s': ", j->name);
		api_message(x, &sb);
	}
	http_xfer_free(x);
	job_fail(j, sb.buf);
	strbuf_release(&sb);
}

static int kube_start_batch(struct exec_ctx *ctx, const struct exec_unit *units,
			    size_t n, int parallelism, struct error *err)
{
	const struct exec_unit *u0 = &units[0];
	struct kube_job_spec spec = {0};
	struct strvec common = STRVEC_INIT;
	struct strbuf name = STRBUF_INIT, *files;
	struct kjob *j;
	struct json *manifest;
	int own, file_logs;

	if (!n)
		return 0;
	if (!u0->image)
		return error_set(err, EXIT_USAGE,
				 "stage '%s': executor kubernetes needs an "
				 "image",
				 u0->stage);
	if (!ctx->kc) {
		if (ctx->opt.kube_err && ctx->opt.kube_err->exit_code) {
			const struct error *ke = ctx->opt.kube_err;

			error_set(err, ke->exit_code, "%s", ke->msg.buf);
			if (ke->file) {
				err->file = xstrdup(ke->file);
				err->line = ke->line;
				err->col = ke->col;
				err->source_line =
					ke->source_line
						? xstrdup(ke->source_line)
						: NULL;
			}
			return -1;
		}
		return error_set(err, EXIT_ENV,
				 "kubernetes: no cluster configured");
	}
	if (pod_user(ctx, u0->workspace, &spec.uid, &spec.gid, err) ||
	    connect_api(ctx, err) || (!ctx->swept && sweep(ctx, err)))
		return -1;
	kube_job_name(&name, u0->stage, u0->job_id ? u0->job_id : "0");
	j = xcalloc(1, sizeof(*j));
	j->ctx = ctx;
	j->name = strbuf_detach(&name, NULL);
	j->n = n;
	strbuf_init(&j->body, 0);
	strbuf_init(&j->unsched_msg, 0);
	loop_timer_init(&j->retry, on_retry_create, j);
	loop_timer_init(&j->unsched, on_unschedulable, j);
	files = xcalloc(n, sizeof(*files));
	own = kube_split_env(units, n, &common, files);
	if (own) {
		j->env_dir = xstrfmt("%s/.pipe/k8s/%s", u0->workspace, j->name);
		spec.env_dir = j->env_dir + strlen(u0->workspace) + 1;
		if (write_env_files(j, units, files, err)) {
			for (size_t i = 0; i < n; i++)
				strbuf_release(&files[i]);
			free(files);
			strvec_clear(&common);
			job_free(j);
			return -1;
		}
	}
	for (size_t i = 0; i < n; i++)
		strbuf_release(&files[i]);
	free(files);
	spec.name = j->name;
	spec.namespace = ctx->ns;
	spec.workspace_label = ctx->ws_label;
	spec.units = units;
	spec.n = n;
	spec.parallelism = parallelism;
	spec.image = u0->image;
	spec.kopt = &ctx->kopt;
	spec.common_env = common.v;
	spec.grace_s =
		ctx->opt.grace_ms > 0 ? (ctx->opt.grace_ms + 999) / 1000 : 5;
	for (size_t i = 0; i < n; i++)
		give_rw(&units[i], spec.uid, spec.gid);
	file_logs = kube_job_file_logs(&spec);
	manifest = kube_job_manifest(&spec);
	json_dump(manifest, &j->body);
	json_free(manifest);
	strvec_clear(&common);
	log_verbose("kubernetes: Job %s: %s", j->name, j->body.buf);

	j->units = xcalloc(n, sizeof(*j->units));
	for (size_t i = 0; i < n; i++) {
		struct exec_unit lu = units[i];
		struct kunit *u = xcalloc(1, sizeof(*u));

		/* the pod's own deadline counts from its start, not from
		 * the Job's: the loop keeps none */
		lu.timeout_ms = 0;
		u->job = j;
		u->index = i;
		u->exit_code = -1;
		loop_timer_init(&u->drain, on_drain, u);
		loop_timer_init(&u->relog, on_relog, u);
		strbuf_init(&u->logline, 0);
		if (file_logs) {
			u->log_base = xstrfmt("%s/%s", units[i].workspace,
					      units[i].rw_paths[0]);
			if (u->log_base[strlen(u->log_base) - 1] == '/')
				u->log_base[strlen(u->log_base) - 1] = '\0';
		}
		u->lu = loop_unit_add(&lu, &ctx->opt, &kube_ops, ctx, u);
		u->lu->timeout_ms = units[i].timeout_ms;
		u->lu->live = 1;
		j->units[i] = u;
	}
	j->open = n;
	ALLOC_GROW(ctx->jobs, ctx->nr_jobs + 1, ctx->alloc_jobs);
	ctx->jobs[ctx->nr_jobs++] = j;
	start_watches(ctx);
	create_job(j);
	return 0;
}

static int kube_start(struct exec_ctx *ctx, const struct exec_unit *unit,
		      struct error *err)
{
	return kube_start_batch(ctx, unit, 1, 1, err);
}

static int kube_resolve_image(struct exec_ctx *ctx, const char *image,
			      struct strbuf *id, struct error *err)
{
	if (!ctx->oci)
		ctx->oci = oci_new();
	return oci_resolve(ctx->oci, image, id, err);
}

static int kube_open(struct exec_ctx **out, const struct exec_options *opt,
		     struct error *err)
{
	struct exec_ctx *ctx;
	struct hash128 h;
	char hex[HASH_HEX_LEN + 1];
	char *cwd = getcwd(NULL, 0);

	if (!cwd)
		return error_set(err, EXIT_ENV,
				 "cannot read the current folder: %s",
				 strerror(errno));
	ctx = xcalloc(1, sizeof(*ctx));
	ctx->opt = *opt;
	ctx->kc = opt->kube;
	if (opt->kube_opts)
		ctx->kopt = *opt->kube_opts;
	else
		ctx->kopt.uid = ctx->kopt.gid = -1;
	ctx->ns = xstrdup(ctx->kopt.namespace		  ? ctx->kopt.namespace
			  : ctx->kc && ctx->kc->namespace ? ctx->kc->namespace
							  : "default");
	/* the workspace's Jobs carry a hash of its path */
	hash_buf(cwd, strlen(cwd), &h);
	free(cwd);
	hash_to_hex(&h, hex);
	memcpy(ctx->ws_label, hex, 16);
	ctx->ws_label[16] = '\0';
	*out = ctx;
	return 0;
}

static void kube_close(struct exec_ctx *ctx)
{
	if (!ctx)
		return;
	loop_close(ctx);
	kube_watch_free(ctx->wjobs);
	kube_watch_free(ctx->wpods);
	ctx->wjobs = ctx->wpods = NULL;
	while (ctx->nr_jobs)
		job_free(ctx->jobs[--ctx->nr_jobs]);
	/* what is left in flight are the deletions: answered before pipe
	 * exits (Ctrl-C included) */
	while (ctx->http && http_running(ctx->http)) {
		struct error err = ERROR_INIT;
		int r = http_poll(ctx->http, 1000, &err);

		error_release(&err);
		if (r < 0)
			break;
	}
	free(ctx->jobs);
	http_free(ctx->http);
	oci_free(ctx->oci);
	kube_auth_free(ctx->auth);
	free(ctx->ns);
	free(ctx);
}

const struct executor executor_kubernetes = {
	.name = "kubernetes",
	.own_retries = 1,
	.open = kube_open,
	.start = kube_start,
	.start_batch = kube_start_batch,
	.resolve_image = kube_resolve_image,
	.close = kube_close,
};
