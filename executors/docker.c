/* The Docker executor (SPEC §4): each unit is a container made and driven
 * through the Engine API over a unix socket, many at once on one libcurl
 * multi handle. Their multiplexed log streams are kept in the unit's log
 * and, on request, streamed with a "[label] " prefix, as local does.
 *
 * The workspace in the container. The working folder is /workspace, which
 * holds nothing of the host but these bind mounts (Mounts of type bind,
 * which fail on a missing source instead of creating it as root):
 *  - each input (ro_paths) read-only at its workspace-relative path. A glob
 *    input mounts what it matches: a folder whole only when everything in
 *    it matches, else its matches one by one (cover_dir), so a file the
 *    inputs do not name (.env beside "*.txt") stays out of sight. The
 *    workspace itself mounts each top-level entry, .pipe and .git aside.
 *    A missing input is not mounted: the command finds it missing, as it
 *    would locally;
 *  - each folder output (rw_paths ending in '/', or an existing folder)
 *    read-write, made on the host first, as the caller; so is a datum's
 *    private folder PIPE_OUT (from the unit's env), listed or not;
 *  - a file output cannot be bound before it exists (Docker would make a
 *    folder of it), so the folder that holds it in the container is a
 *    private staging folder, <workspace>/.pipe/tmp/docker-PID-N/K/, bound
 *    read-write. Once the container has exited (success, failure, timeout
 *    or cancel alike) the declared files, and only they, are renamed from
 *    staging into the workspace and the staging folder is removed; a file
 *    the command did not write leaves the workspace's as it was. Inputs
 *    and folder outputs inside such a folder are still bound on top
 *    (Docker mounts in order of path depth), and their mount points are
 *    made in the staging folder beforehand, so that the daemon creates
 *    nothing there (it would as root).
 * The command replaces the image's entrypoint, as Kubernetes' `command`
 * does: ["/bin/sh", "-c", cmd] or argv. The container runs as the caller's
 * uid:gid, with docker-init as PID 1 (so that TERM reaches the command and
 * a command that cannot run exits 127), no network unless the unit names
 * one, every capability dropped, no-new-privileges, memory and cpu limits
 * from the unit, and labels pipe.stage, pipe.job and pipe.workspace. Its
 * environment is the unit's only (not pipe's), with PIPE_STAGE and
 * PIPE_WORKSPACE=/workspace; values naming a host path in the workspace
 * are rewritten under /workspace.
 *
 * A unit goes create -> attach -> start -> wait -> inspect (only after exit
 * 137: was it OOMKilled?) -> done. Its output comes from the attach stream,
 * as docker run's does: multiplexed (8-byte frame headers, no TTY), in
 * place before the start, ending with the container; the logs endpoint
 * with follow=1 was the plan, but it loses the end of the output (seen
 * with Docker 20.10). The container is removed (force) in the background
 * once the unit is reported; close() waits for every removal. Timeouts and
 * cancel_all() send TERM through /kill, KILL after the grace
 * period. */
#include "executors/docker.h"
#include "executors/executor.h"
#include "executors/http.h"
#include "executors/json.h"
#include "executors/loop.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/glob.h"
#include "util/log.h"
#include "util/path.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/var/run/docker.sock"
#define PING_MS 10000
#define REQUEST_MS 120000	   /* create, start, inspect, kill, remove */
#define OUTPUT_AFTER_EXIT_MS 10000 /* the output stream's time to end */
#define OOM_TRIES 10		   /* inspections after an exit 137 */
#define OOM_RETRY_MS 100	   /* between them */
#define WS "/workspace"

enum step { CREATING, ATTACHING, STARTING, RUNNING, INSPECTING, FINISHED };

/* A file output, written in staging, moved into the workspace. */
struct staged {
	char *from, *to, *rel;
};

/* What is Docker's own in a unit; the rest (output, log, timeouts, the
 * report) is the loop's. The loop unit is live from the start until the
 * exit is seen. */
struct dunit {
	struct loop_unit *lu;
	struct exec_ctx *ctx;
	char *id; /* the container's, once created */
	struct docker_demux demux;
	enum step step;
	struct http_xfer *req, *out, *waiter;
	char *staging; /* this unit's staging root, or NULL */
	struct staged *staged;
	size_t nr_staged, alloc_staged;
	struct loop_timer out_timer;	 /* the output's time to end */
	struct loop_timer inspect_timer; /* look for OOMKilled again */
	int inspections;
	unsigned waited : 1, out_done : 1;
};

struct exec_ctx {
	struct exec_options opt;
	struct http *http;
	char *socket;
	char *api;	       /* "/v1.41": the negotiated version's prefix */
	struct http_xfer **bg; /* kills and removals in flight */
	size_t nr_bg, alloc_bg;
	unsigned seq;
	struct strvec swept; /* workspaces cleared of orphans */
};

/* ------------------------------------------------------------------ */
/* Exported helpers */

int docker_socket_path(const char *docker_host, struct strbuf *path,
		       struct error *err)
{
	if (!docker_host || !*docker_host) {
		strbuf_addstr(path, DEFAULT_SOCKET);
		return 0;
	}
	if (!strncmp(docker_host, "unix://", 7) && docker_host[7]) {
		strbuf_addstr(path, docker_host + 7);
		return 0;
	}
	return error_set(err, EXIT_ENV,
			 "DOCKER_HOST '%s' is not supported: only unix:// "
			 "sockets for now (tcp:// with TLS is planned)",
			 docker_host);
}

int docker_split_image(const char *image, struct strbuf *repo,
		       struct strbuf *tag, struct error *err)
{
	const char *at, *slash, *colon;

	if (!image || !*image ||
	    strspn(image, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			  "0123456789._-/:@") != strlen(image))
		return error_set(err, EXIT_USAGE, "invalid image name '%s'",
				 image ? image : "");
	at = strchr(image, '@');
	if (at) {
		strbuf_add(repo, image, (size_t)(at - image));
		strbuf_addstr(tag, at + 1);
		return 0;
	}
	slash = strrchr(image, '/');
	colon = strrchr(image, ':');
	if (colon && (!slash || colon > slash)) {
		strbuf_add(repo, image, (size_t)(colon - image));
		strbuf_addstr(tag, colon + 1);
	} else {
		strbuf_addstr(repo, image);
		strbuf_addstr(tag, "latest");
	}
	return 0;
}

void docker_demux_feed(struct docker_demux *d, const char *data, size_t len,
		       docker_demux_fn *fn, void *arg)
{
	while (len) {
		size_t take;

		if (!d->left && d->hdr_len < 8) {
			take = 8 - d->hdr_len < len ? 8 - d->hdr_len : len;
			memcpy(d->hdr + d->hdr_len, data, take);
			d->hdr_len += take;
			data += take;
			len -= take;
			if (d->hdr_len < 8)
				return;
			d->stream = d->hdr[0];
			d->left = (size_t)d->hdr[4] << 24 |
				  (size_t)d->hdr[5] << 16 |
				  (size_t)d->hdr[6] << 8 | d->hdr[7];
			d->hdr_len = 0;
			continue;
		}
		take = d->left < len ? d->left : len;
		fn(arg, d->stream, data, take);
		d->left -= take;
		data += take;
		len -= take;
	}
}

/* ------------------------------------------------------------------ */
/* Requests */

/* Why a request failed, in the daemon's words, or why it could not be
 * asked. */
static void describe_failure(struct exec_ctx *ctx, struct http_xfer *x,
			     struct strbuf *out)
{
	const struct strbuf *body = http_xfer_body(x);

	if (*http_xfer_error(x))
		strbuf_addf(out, "cannot reach the Docker daemon at %s: %s",
			    ctx->socket, http_xfer_error(x));
	else
		json_error_message(body->buf, body->len, out);
}

static struct http_xfer *api_start(struct exec_ctx *ctx, const char *method,
				   const char *path, const struct strbuf *body,
				   long timeout_ms, http_done_fn *fn, void *arg)
{
	struct strbuf full = STRBUF_INIT;
	struct http_request req = {
		.method = method,
		.timeout_ms = timeout_ms,
	};
	struct http_xfer *x;

	strbuf_addf(&full, "%s%s", ctx->api, path);
	req.path = full.buf;
	if (body) {
		req.content_type = "application/json";
		req.body = body->buf;
		req.body_len = body->len;
	}
	x = http_start(ctx->http, &req, fn, arg);
	strbuf_release(&full);
	return x;
}

/* Run one request to its end; transport errors become the "cannot reach"
 * error (EXIT_ENV). */
static int api_run(struct exec_ctx *ctx, struct http_request *req,
		   struct http_xfer **out, struct error *err)
{
	struct strbuf full = STRBUF_INIT;
	const char *path = req->path;
	int ret;

	strbuf_addf(&full, "%s%s", ctx->api, path);
	req->path = full.buf;
	ret = http_run(ctx->http, req, out, err);
	req->path = path;
	strbuf_release(&full);
	if (!ret && *http_xfer_error(*out)) {
		error_set(err, EXIT_ENV,
			  "cannot reach the Docker daemon at %s: %s",
			  ctx->socket, http_xfer_error(*out));
		http_xfer_free(*out);
		*out = NULL;
		return -1;
	}
	return ret;
}

/* A kill or a removal: nobody waits for its answer but close(). */
static void bg_done(void *arg, struct http_xfer *x)
{
	struct exec_ctx *ctx = arg;
	long st = http_xfer_status(x);

	if ((st < 200 || st >= 300) && st != 404 && st != 409) {
		struct strbuf sb = STRBUF_INIT;

		describe_failure(ctx, x, &sb);
		log_verbose("docker: %s", sb.buf);
		strbuf_release(&sb);
	}
	for (size_t i = 0; i < ctx->nr_bg; i++)
		if (ctx->bg[i] == x) {
			ctx->bg[i] = ctx->bg[--ctx->nr_bg];
			break;
		}
	http_xfer_free(x);
}

static void bg_request(struct exec_ctx *ctx, const char *method,
		       const char *path)
{
	struct http_xfer *x;

	x = api_start(ctx, method, path, NULL, REQUEST_MS, bg_done, ctx);
	ALLOC_GROW(ctx->bg, ctx->nr_bg + 1, ctx->alloc_bg);
	ctx->bg[ctx->nr_bg++] = x;
}

static void container_request(struct dunit *u, const char *method,
			      const char *what)
{
	struct strbuf path = STRBUF_INIT;

	strbuf_addf(&path, "/containers/%s%s", u->id, what);
	bg_request(u->ctx, method, path.buf);
	strbuf_release(&path);
}

/* TERM or KILL, when the container runs. */
static void send_signal(struct dunit *u, const char *sig)
{
	struct strbuf what = STRBUF_INIT;

	if (!u->lu->live || !u->id)
		return;
	strbuf_addf(&what, "/kill?signal=%s", sig);
	container_request(u, "POST", what.buf);
	strbuf_release(&what);
}

static void docker_stop(struct loop_unit *lu, int sig)
{
	send_signal(lu->impl, sig == SIGKILL ? "KILL" : "TERM");
}

/* ------------------------------------------------------------------ */
/* Output: the log and the terminal */

/* A piece of the container's stdout (1) or stderr (2; also 3, the
 * daemon's own errors). */
static void emit(void *arg, int stream, const char *data, size_t len)
{
	struct dunit *u = arg;

	loop_unit_output(u->lu, stream == 1 || stream == 0 ? 1 : 2, data, len);
}

static void on_output(void *arg, const char *data, size_t len)
{
	struct dunit *u = arg;

	docker_demux_feed(&u->demux, data, len, emit, u);
}

/* A line of pipe's own in the unit's log ("pipe: ..."). */
static void log_note(struct dunit *u, const char *msg)
{
	loop_unit_note(u->lu, msg);
}

/* ------------------------------------------------------------------ */
/* Units: from creation to the report */

static void set_message(struct dunit *u, const char *msg)
{
	if (!u->lu->message)
		u->lu->message = xstrdup(msg);
}

/* The declared file outputs, out of staging into the workspace. */
static void move_outputs(struct dunit *u)
{
	for (size_t i = 0; i < u->nr_staged; i++) {
		struct staged *s = &u->staged[i];
		struct stat st;
		int r;

		if (lstat(s->from, &st))
			continue;
		if (!lstat(s->to, &st) && S_ISDIR(st.st_mode))
			fs_remove_tree(s->to);
		fs_mkdir_parent(s->to, 0755);
		r = rename(s->from, s->to);
		if (r) {
			struct strbuf sb = STRBUF_INIT;

			strbuf_addf(&sb,
				    "cannot move output '%s' into the "
				    "workspace: %s",
				    s->rel, strerror(errno));
			log_note(u, sb.buf);
			log_warn("%s", sb.buf);
			strbuf_release(&sb);
		}
	}
	if (u->staging)
		fs_remove_tree(u->staging);
}

static void finish(struct dunit *u)
{
	if (u->step == FINISHED)
		return;
	http_xfer_free(u->req);
	http_xfer_free(u->out);
	http_xfer_free(u->waiter);
	u->req = u->out = u->waiter = NULL;
	loop_timer_disarm(&u->out_timer);
	loop_timer_disarm(&u->inspect_timer);
	move_outputs(u);
	loop_unit_end(u->lu, 1);
	u->step = FINISHED;
	if (u->id)
		container_request(u, "DELETE", "?force=1");
}

/* A request of the unit's failed: the daemon's message, verbatim. */
static void fail(struct dunit *u, struct http_xfer *x)
{
	struct strbuf sb = STRBUF_INIT;

	describe_failure(u->ctx, x, &sb);
	set_message(u, sb.buf);
	strbuf_release(&sb);
	finish(u);
}

static struct json *parse_body(struct http_xfer *x)
{
	const struct strbuf *body = http_xfer_body(x);
	struct error err = ERROR_INIT;
	struct json *j = NULL;

	if (json_parse(&j, body->buf, body->len, &err))
		j = NULL;
	error_release(&err);
	return j;
}

static void on_req(void *arg, struct http_xfer *x);

/* Both the exit code and the whole output are in: done, unless the exit
 * says the container may have been OOM-killed. */
static void inspect(struct dunit *u)
{
	struct strbuf path = STRBUF_INIT;

	strbuf_addf(&path, "/containers/%s/json", u->id);
	u->step = INSPECTING;
	u->inspections++;
	u->req =
		api_start(u->ctx, "GET", path.buf, NULL, REQUEST_MS, on_req, u);
	strbuf_release(&path);
}

static void exited(struct dunit *u)
{
	if (!u->waited || !u->out_done || u->step != RUNNING)
		return;
	u->lu->live = 0;
	if (u->lu->exit_code != 137) {
		finish(u);
		return;
	}
	inspect(u);
}

static void on_wait(void *arg, struct http_xfer *x)
{
	struct dunit *u = arg;
	struct json *j = NULL;
	long long code;
	const char *msg;

	if (http_xfer_status(x) != 200) {
		u->waiter = NULL;
		fail(u, x);
		http_xfer_free(x);
		return;
	}
	j = parse_body(x);
	if (!json_get_int(j, "StatusCode", &code))
		u->lu->exit_code = (int)code;
	msg = json_get_str(j, "Error.Message");
	if (msg && *msg)
		set_message(u, msg);
	json_free(j);
	http_xfer_free(x);
	u->waiter = NULL;
	u->waited = 1;
	if (!u->out_done)
		loop_timer_arm(&u->out_timer,
			       loop_now_ms() + OUTPUT_AFTER_EXIT_MS);
	exited(u);
}

/* The exit is in, the output stream has not ended in time. */
static void on_out_timeout(void *arg)
{
	struct dunit *u = arg;

	if (!u->waited || u->out_done)
		return;
	http_xfer_free(u->out);
	u->out = NULL;
	u->out_done = 1;
	log_note(u, "the container's output did not end");
	exited(u);
}

static void on_output_end(void *arg, struct http_xfer *x)
{
	struct dunit *u = arg;

	u->out = NULL;
	if (u->step == ATTACHING) {
		fail(u, x);
		http_xfer_free(x);
		return;
	}
	if (http_xfer_status(x) != 200 || *http_xfer_error(x)) {
		struct strbuf sb = STRBUF_INIT;

		strbuf_addstr(&sb, "cannot read the container's output: ");
		describe_failure(u->ctx, x, &sb);
		log_note(u, sb.buf);
		strbuf_release(&sb);
	}
	http_xfer_free(x);
	u->out_done = 1;
	loop_timer_disarm(&u->out_timer);
	exited(u);
}

/* The exit code: asked once the container runs (a container that has
 * already exited answers at once). */
static void wait_exit(struct dunit *u)
{
	struct strbuf path = STRBUF_INIT;

	strbuf_addf(&path, "/containers/%s/wait", u->id);
	u->waiter = api_start(u->ctx, "POST", path.buf, NULL, 0, on_wait, u);
	strbuf_release(&path);
}

/* The attach stream is in place: the container may start, none of its
 * output can be missed. */
static void on_attached(void *arg, struct http_xfer *x)
{
	struct dunit *u = arg;
	struct strbuf path = STRBUF_INIT;

	if (u->step != ATTACHING || http_xfer_status(x) != 200)
		return; /* a failure: on_output_end says why */
	if (u->lu->cancelled || u->lu->timed_out) {
		finish(u);
		return;
	}
	strbuf_addf(&path, "/containers/%s/start", u->id);
	u->step = STARTING;
	u->req = api_start(u->ctx, "POST", path.buf, NULL, REQUEST_MS, on_req,
			   u);
	strbuf_release(&path);
}

/* Its output, as `docker run` gets it: attached before the start, the
 * stream ends when the container does. (The logs endpoint with follow=1
 * loses the end of the output: seen with Docker 20.10.) */
static void attach(struct dunit *u)
{
	struct exec_ctx *ctx = u->ctx;
	struct strbuf path = STRBUF_INIT;
	struct http_request req = {.method = "POST"};

	strbuf_addf(&path, "%s/containers/%s/attach?stream=1&stdout=1&stderr=1",
		    ctx->api, u->id);
	req.path = path.buf;
	req.on_data = on_output;
	req.data_arg = u;
	req.on_response = on_attached;
	u->step = ATTACHING;
	u->out = http_start(ctx->http, &req, on_output_end, u);
	strbuf_release(&path);
}

static void created(struct dunit *u, struct http_xfer *x)
{
	struct json *j;
	const char *id;

	if (http_xfer_status(x) != 201) {
		fail(u, x);
		return;
	}
	j = parse_body(x);
	id = json_get_str(j, "Id");
	if (id)
		u->id = xstrdup(id);
	json_free(j);
	if (!u->id) {
		set_message(u, "the daemon answered no container id");
		finish(u);
		return;
	}
	if (u->lu->cancelled || u->lu->timed_out) {
		finish(u);
		return;
	}
	attach(u);
}

/* docker run's exit codes when the runtime cannot exec the command. */
static int start_failure_code(const char *msg)
{
	if (strstr(msg, "executable file not found") ||
	    strstr(msg, "no such file or directory"))
		return 127;
	if (strstr(msg, "permission denied"))
		return 126;
	return -1;
}

static void started(struct dunit *u, struct http_xfer *x)
{
	long st = http_xfer_status(x);

	if (st != 204 && st != 304) {
		struct strbuf sb = STRBUF_INIT;

		describe_failure(u->ctx, x, &sb);
		if (!*http_xfer_error(x))
			u->lu->exit_code = start_failure_code(sb.buf);
		set_message(u, sb.buf);
		log_note(u, sb.buf);
		strbuf_release(&sb);
		finish(u);
		return;
	}
	u->step = RUNNING;
	u->lu->live = 1;
	wait_exit(u);
	if (u->lu->cancelled || u->lu->timed_out)
		send_signal(u, "TERM");
}

/* The daemon may learn of the OOM kill after the exit (both come from
 * containerd, the OOM event from a watcher of its own): a KILL that pipe
 * did not send is looked at again, OOM_TRIES times at most. */
static void inspected(struct dunit *u, struct http_xfer *x)
{
	struct json *j = parse_body(x);
	int oom = json_get_bool(j, "State.OOMKilled");

	json_free(j);
	if (oom) {
		u->lu->oom_killed = 1;
		set_message(u, "out of memory (OOM-killed)");
	} else if (http_xfer_status(x) == 200 && !u->lu->timed_out &&
		   !u->lu->cancelled && u->inspections < OOM_TRIES) {
		loop_timer_arm(&u->inspect_timer, loop_now_ms() + OOM_RETRY_MS);
		return;
	}
	finish(u);
}

static void on_inspect_timer(void *arg)
{
	struct dunit *u = arg;

	if (u->lu->cancelled)
		finish(u);
	else
		inspect(u);
}

static void on_req(void *arg, struct http_xfer *x)
{
	struct dunit *u = arg;

	u->req = NULL;
	switch (u->step) {
	case CREATING:
		created(u, x);
		break;
	case STARTING:
		started(u, x);
		break;
	case INSPECTING:
		inspected(u, x);
		break;
	default:
		break;
	}
	http_xfer_free(x);
}

/* ------------------------------------------------------------------ */
/* Mounts */

struct mount {
	char *rel;    /* normalized, no trailing '/'; "" is /workspace */
	char *source; /* host path */
	unsigned rw : 1, dir : 1, staging : 1;
};

struct mounts {
	struct mount *v;
	size_t nr, alloc;
};

static void mounts_release(struct mounts *m)
{
	for (size_t i = 0; i < m->nr; i++) {
		free(m->v[i].rel);
		free(m->v[i].source);
	}
	free(m->v);
}

static char *host_path(const char *ws, const char *rel)
{
	return *rel ? path_join(ws, rel) : xstrdup(ws);
}

/* Add a mount unless its target is taken already. */
static void add_mount(struct mounts *m, const char *ws, const char *rel,
		      size_t rel_len, int rw, int dir)
{
	char *r = xstrndup(rel, rel_len);

	for (size_t i = 0; i < m->nr; i++)
		if (!strcmp(m->v[i].rel, r)) {
			free(r);
			return;
		}
	ALLOC_GROW(m->v, m->nr + 1, m->alloc);
	m->v[m->nr++] = (struct mount){
		.rel = r,
		.source = host_path(ws, r),
		.rw = rw,
		.dir = dir,
	};
}

static int normalize(const char *in, struct strbuf *out, struct error *err)
{
	const char *why;

	strbuf_reset(out);
	if (path_normalize(in, out, &why))
		return error_set(err, EXIT_USAGE, "path '%s': %s", in, why);
	return 0;
}

/* An input that exists: bound read-only. */
static void add_input(struct mounts *m, const char *ws, const char *rel,
		      size_t len)
{
	char *src = xstrndup(rel, len);
	char *host = host_path(ws, src);
	struct stat st;

	if (!stat(host, &st))
		add_mount(m, ws, rel, len, 0, S_ISDIR(st.st_mode));
	else
		log_verbose("docker: input '%s' does not exist: not mounted",
			    src);
	free(host);
	free(src);
}

/* The workspace itself: each top-level entry, .pipe and .git aside. */
static void add_top_level(struct mounts *m, const char *ws)
{
	DIR *d = opendir(ws);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		const char *n = de->d_name;

		if (strcmp(n, ".") && strcmp(n, "..") && strcmp(n, ".pipe") &&
		    strcmp(n, ".git"))
			add_input(m, ws, n, strlen(n));
	}
	if (d)
		closedir(d);
}

static char *sub_path(const char *rel, const char *name)
{
	return *rel ? path_join(rel, name) : xstrdup(name);
}

/* What a glob may show. A folder that holds anything the glob does not
 * match is never mounted whole, so "*.txt" mounts the workspace's .txt
 * files, not the workspace with its .env, and a glob of the csv files in
 * data/ those files, not data/ with its notes. Returns 1 when everything
 * in the folder rel ("" the workspace, which is never whole) matches: the
 * caller mounts it or the folder above; otherwise the matches in it are
 * mounted here, and each folder in it that may hold one in turn.
 * Symlinks are not followed. */
static int cover_dir(struct mounts *m, const char *ws, const char *pattern,
		     const char *rel)
{
	struct strvec names = STRVEC_INIT;
	char *host = host_path(ws, rel);
	DIR *d = opendir(host);
	unsigned char *whole;
	struct dirent *de;
	int all = *rel != '\0';

	while (d && (de = readdir(d))) {
		const char *n = de->d_name;

		if (strcmp(n, ".") && strcmp(n, "..") &&
		    (*rel || (strcmp(n, ".pipe") && strcmp(n, ".git"))))
			strvec_push(&names, n);
	}
	if (d)
		closedir(d); /* before going down: one open folder at a time */
	else
		all = 0;
	whole = xcalloc(names.nr + 1, 1);
	for (size_t i = 0; i < names.nr; i++) {
		char *sub = sub_path(rel, names.v[i]);
		char *subhost = host_path(ws, sub);
		struct stat st;

		if (lstat(subhost, &st))
			whole[i] = 0;
		else if (glob_match(pattern, sub))
			whole[i] = 1;
		else if (S_ISDIR(st.st_mode) && glob_match_under(pattern, sub))
			whole[i] =
				(unsigned char)cover_dir(m, ws, pattern, sub);
		all &= whole[i];
		free(subhost);
		free(sub);
	}
	for (size_t i = 0; !all && i < names.nr; i++) {
		if (whole[i]) {
			char *sub = sub_path(rel, names.v[i]);

			add_input(m, ws, sub, strlen(sub));
			free(sub);
		}
	}
	free(whole);
	free(host);
	strvec_clear(&names);
	return all;
}

/* A glob input: what it matches, below its literal prefix. */
static void add_glob(struct mounts *m, const char *ws, const char *pattern)
{
	size_t len = glob_literal_prefix(pattern);
	char *start, *host;
	struct stat st;

	while (len && pattern[len - 1] == '/')
		len--;
	start = xstrndup(pattern, len);
	host = host_path(ws, start);
	if (!lstat(host, &st) && S_ISDIR(st.st_mode) &&
	    cover_dir(m, ws, pattern, start))
		add_input(m, ws, start, len);
	free(host);
	free(start);
}

static int plan_inputs(struct mounts *m, const char *ws, char *const *paths,
		       struct error *err)
{
	struct strbuf rel = STRBUF_INIT;
	int ret = 0;

	for (; paths && *paths; paths++) {
		size_t len;

		if ((ret = normalize(*paths, &rel, err)))
			break;
		if (glob_has_magic(rel.buf)) {
			add_glob(m, ws, rel.buf);
			continue;
		}
		len = path_trimmed_len(rel.buf);
		if (!len)
			add_top_level(m, ws);
		else
			add_input(m, ws, rel.buf, len);
	}
	strbuf_release(&rel);
	return ret;
}

/* The unit's staging root, made on first use. */
static int staging_root(struct dunit *u, const char *ws, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;

	if (u->staging)
		return 0;
	strbuf_addf(&sb, "%s/.pipe/tmp/docker-%ld-%u", ws, (long)getpid(),
		    u->ctx->seq++);
	fs_remove_tree(sb.buf);
	if (fs_mkdir_p(sb.buf, 0755)) {
		error_set(err, EXIT_ENV, "cannot create '%s': %s", sb.buf,
			  strerror(errno));
		strbuf_release(&sb);
		return -1;
	}
	u->staging = strbuf_detach(&sb, NULL);
	return 0;
}

/* The staging folder bound at parent (made on first use); its index. */
static int staging_for(struct dunit *u, struct mounts *m, const char *ws,
		       const char *parent, struct error *err)
{
	struct strbuf dir = STRBUF_INIT;
	size_t k = 0;

	for (size_t i = 0; i < m->nr; i++) {
		if (m->v[i].staging && !strcmp(m->v[i].rel, parent))
			return (int)i;
		k += m->v[i].staging;
	}
	if (staging_root(u, ws, err))
		return -1;
	strbuf_addf(&dir, "%s/%zu", u->staging, k);
	if (fs_mkdir_p(dir.buf, 0755)) {
		error_set(err, EXIT_ENV, "cannot create '%s': %s", dir.buf,
			  strerror(errno));
		strbuf_release(&dir);
		return -1;
	}
	ALLOC_GROW(m->v, m->nr + 1, m->alloc);
	m->v[m->nr++] = (struct mount){
		.rel = xstrdup(parent),
		.source = strbuf_detach(&dir, NULL),
		.rw = 1,
		.dir = 1,
		.staging = 1,
	};
	return (int)m->nr - 1;
}

static int inside_folder_output(const struct mounts *m, const char *rel)
{
	for (size_t i = 0; i < m->nr; i++)
		if (m->v[i].rw && !m->v[i].staging &&
		    path_is_inside(rel, m->v[i].rel))
			return 1;
	return 0;
}

/* A file output: written in the staging folder bound at its parent. */
static int stage_file(struct dunit *u, struct mounts *m, const char *ws,
		      const char *rel, struct error *err)
{
	const char *slash = strrchr(rel, '/');
	char *parent = xstrndup(rel, slash ? (size_t)(slash - rel) : 0);
	int k = staging_for(u, m, ws, parent, err);
	struct staged *s;

	free(parent);
	if (k < 0)
		return -1;
	ALLOC_GROW(u->staged, u->nr_staged + 1, u->alloc_staged);
	s = &u->staged[u->nr_staged++];
	s->from = path_join(m->v[k].source, slash ? slash + 1 : rel);
	s->to = path_join(ws, rel);
	s->rel = xstrdup(rel);
	return 0;
}

static int plan_outputs(struct dunit *u, struct mounts *m, const char *ws,
			char *const *paths, struct error *err)
{
	struct strbuf rel = STRBUF_INIT;
	struct strvec files = STRVEC_INIT;
	int ret = 0;

	for (char *const *p = paths; p && *p && !ret; p++) {
		size_t len;
		char *host;
		struct stat st;

		if ((ret = normalize(*p, &rel, err)))
			break;
		len = path_trimmed_len(rel.buf);
		host = host_path(ws, len ? rel.buf : "");
		host[strlen(host) - (rel.len - len)] = '\0';
		if (len && rel.buf[rel.len - 1] != '/' &&
		    (stat(host, &st) || !S_ISDIR(st.st_mode))) {
			strvec_push_nodup(&files, xstrndup(rel.buf, len));
		} else if (fs_mkdir_p(host, 0755)) {
			ret = error_set(err, EXIT_ENV,
					"cannot create output folder '%s': %s",
					rel.buf, strerror(errno));
		} else {
			add_mount(m, ws, rel.buf, len, 1, 1);
		}
		free(host);
	}
	for (size_t i = 0; i < files.nr && !ret; i++)
		if (!inside_folder_output(m, files.v[i]))
			ret = stage_file(u, m, ws, files.v[i], err);
	strvec_clear(&files);
	strbuf_release(&rel);
	return ret;
}

/* Mount points inside staging folders, made by us rather than by the
 * daemon (which would make them as root). */
static void make_mount_points(const struct mounts *m)
{
	for (size_t i = 0; i < m->nr; i++) {
		for (size_t k = 0; k < m->nr; k++) {
			const struct mount *s = &m->v[k], *a = &m->v[i];
			const char *sub;
			char *stub;
			int fd;

			if (!s->staging || i == k || !strcmp(a->rel, s->rel) ||
			    !path_is_inside(a->rel, s->rel))
				continue;
			sub = a->rel + strlen(s->rel) + (*s->rel ? 1 : 0);
			stub = path_join(s->source, sub);
			if (a->dir) {
				fs_mkdir_p(stub, 0755);
			} else {
				fs_mkdir_parent(stub, 0755);
				fd = open(stub, O_WRONLY | O_CREAT | O_CLOEXEC,
					  0644);
				if (fd >= 0)
					close(fd);
			}
			free(stub);
		}
	}
}

static struct json *mounts_json(const struct mounts *m)
{
	struct json *arr = json_new_array();
	struct strbuf target = STRBUF_INIT;

	for (size_t i = 0; i < m->nr; i++) {
		struct json *o = json_new_object();

		strbuf_reset(&target);
		strbuf_addstr(&target, WS);
		if (*m->v[i].rel)
			strbuf_addf(&target, "/%s", m->v[i].rel);
		json_set_str(o, "Type", "bind");
		json_set_str(o, "Source", m->v[i].source);
		json_set_str(o, "Target", target.buf);
		json_set_bool(o, "ReadOnly", !m->v[i].rw);
		json_push(arr, o);
	}
	strbuf_release(&target);
	return arr;
}

/* ------------------------------------------------------------------ */
/* The container's definition */

/* KEY=VALUE, a VALUE naming the workspace or a path in it rewritten to
 * /workspace. */
static void push_env(struct json *arr, const char *e, const char *ws)
{
	const char *v = strchr(e, '=');
	size_t wl = strlen(ws);
	struct strbuf sb = STRBUF_INIT;

	if (v && !strncmp(v + 1, ws, wl) && (!v[1 + wl] || v[1 + wl] == '/')) {
		strbuf_add(&sb, e, (size_t)(v - e) + 1);
		strbuf_addf(&sb, WS "%s", v + 1 + wl);
		json_push_str(arr, sb.buf);
	} else {
		json_push_str(arr, e);
	}
	strbuf_release(&sb);
}

static struct json *env_json(const struct exec_unit *unit)
{
	struct json *arr = json_new_array();
	struct strvec own = STRVEC_INIT;

	strvec_pushf(&own, "PIPE_STAGE=%s", unit->stage ? unit->stage : "");
	strvec_push(&own, "PIPE_WORKSPACE=" WS);
	for (char *const *e = unit->env; e && *e; e++)
		if (!strvec_has_key(e + 1, *e) && !strvec_has_key(own.v, *e))
			push_env(arr, *e, unit->workspace);
	for (size_t i = 0; i < own.nr; i++)
		json_push_str(arr, own.v[i]);
	strvec_clear(&own);
	return arr;
}

static struct json *command_json(const struct exec_unit *unit)
{
	struct json *arr = json_new_array();

	if (unit->shell) {
		json_push_str(arr, "/bin/sh");
		json_push_str(arr, "-c");
		json_push_str(arr, unit->cmd);
	} else {
		for (char *const *a = unit->argv; *a; a++)
			json_push_str(arr, *a);
	}
	return arr;
}

static void set_host_config(struct json *c, const struct exec_unit *unit,
			    struct json *mounts)
{
	struct json *caps = json_new_array(), *sec = json_new_array();

	json_set(c, "HostConfig.Mounts", mounts);
	json_set_str(c, "HostConfig.NetworkMode",
		     unit->network && *unit->network ? unit->network : "none");
	json_push_str(caps, "ALL");
	json_set(c, "HostConfig.CapDrop", caps);
	json_push_str(sec, "no-new-privileges");
	json_set(c, "HostConfig.SecurityOpt", sec);
	json_set_bool(c, "HostConfig.Privileged", 0);
	json_set_bool(c, "HostConfig.Init", 1);
	if (unit->memory_bytes > 0) {
		json_set_int(c, "HostConfig.Memory", unit->memory_bytes);
		json_set_int(c, "HostConfig.MemorySwap", unit->memory_bytes);
	}
	if (unit->cpu_milli > 0)
		json_set_int(c, "HostConfig.NanoCpus",
			     unit->cpu_milli * 1000000LL);
	if (unit->gpu > 0) {
		struct json *reqs = json_new_array(), *r = json_new_object();
		struct json *caps_all = json_new_array(),
			    *gpu = json_new_array();

		json_push_str(gpu, "gpu");
		json_push(caps_all, gpu);
		json_set_int(r, "Count", unit->gpu);
		json_set(r, "Capabilities", caps_all);
		json_push(reqs, r);
		json_set(c, "HostConfig.DeviceRequests", reqs);
	}
}

static void create_body(const struct exec_unit *unit, struct json *mounts,
			struct strbuf *out)
{
	struct json *c = json_new_object(), *labels = json_new_object();
	struct strbuf user = STRBUF_INIT;

	strbuf_addf(&user, "%u:%u", (unsigned)getuid(), (unsigned)getgid());
	json_set_str(c, "Image", unit->image);
	json_set(c, "Entrypoint", command_json(unit));
	json_set(c, "Env", env_json(unit));
	json_set_str(c, "WorkingDir", WS);
	json_set_str(c, "User", user.buf);
	json_set_bool(c, "Tty", 0);
	json_set_bool(c, "OpenStdin", 0);
	json_set_bool(c, "AttachStdin", 0);
	json_put_str(labels, "pipe.stage", unit->stage ? unit->stage : "");
	json_put_str(labels, "pipe.job",
		     unit->label   ? unit->label
		     : unit->stage ? unit->stage
				   : "");
	json_put_str(labels, "pipe.workspace", unit->workspace);
	json_set(c, "Labels", labels);
	set_host_config(c, unit, mounts);
	json_dump(c, out);
	json_free(c);
	strbuf_release(&user);
}

/* ------------------------------------------------------------------ */
/* Starting */

static struct dunit *unit_new(struct exec_ctx *ctx)
{
	struct dunit *u = xcalloc(1, sizeof(*u));

	u->ctx = ctx;
	loop_timer_init(&u->out_timer, on_out_timeout, u);
	loop_timer_init(&u->inspect_timer, on_inspect_timer, u);
	return u;
}

static void unit_free(struct dunit *u)
{
	http_xfer_free(u->req);
	http_xfer_free(u->out);
	http_xfer_free(u->waiter);
	loop_timer_disarm(&u->out_timer);
	loop_timer_disarm(&u->inspect_timer);
	for (size_t i = 0; i < u->nr_staged; i++) {
		free(u->staged[i].from);
		free(u->staged[i].to);
		free(u->staged[i].rel);
	}
	free(u->staged);
	free(u->staging);
	free(u->id);
	free(u);
}

/* Reported, or dropped at close after an error: a unit that has not
 * finished is finished now (its container removed all the same). */
static void docker_release(struct loop_unit *lu)
{
	struct dunit *u = lu->impl;

	finish(u);
	unit_free(u);
}

static const struct loop_ops docker_ops = {
	.stop = docker_stop,
	.release = docker_release,
};

/* Containers of this workspace that a killed pipe left behind (pipe holds
 * the workspace's lock while it runs, so every one is an orphan, maybe
 * still writing to the workspace): removed before the first unit starts. */
static void sweep(struct exec_ctx *ctx, const char *ws)
{
	struct strbuf path = STRBUF_INIT, filters = STRBUF_INIT;
	struct http_request req = {.method = "GET", .timeout_ms = REQUEST_MS};
	struct http_xfer *x = NULL;
	struct error err = ERROR_INIT;
	struct json *j = NULL, *label;
	size_t n;

	for (size_t i = 0; i < ctx->swept.nr; i++)
		if (!strcmp(ctx->swept.v[i], ws))
			return;
	strvec_push(&ctx->swept, ws);
	label = json_new_array();
	strbuf_addf(&path, "pipe.workspace=%s", ws);
	json_push_str(label, path.buf);
	j = json_new_object();
	json_set(j, "label", label);
	json_dump(j, &filters);
	json_free(j);
	j = NULL;
	strbuf_reset(&path);
	strbuf_addstr(&path, "/containers/json?all=1&filters=");
	http_escape(&path, filters.buf);
	req.path = path.buf;
	if (!api_run(ctx, &req, &x, &err) && http_xfer_status(x) == 200)
		j = parse_body(x);
	n = json_array_len(j);
	if (n)
		log_warn("removing %zu container%s left in '%s' by an earlier "
			 "run",
			 n, n == 1 ? "" : "s", ws);
	/* one at a time, done before any new container starts */
	for (size_t i = 0; i < n; i++) {
		const char *id = json_get_str(json_array_at(j, i), "Id");

		http_xfer_free(x);
		x = NULL;
		strbuf_reset(&path);
		strbuf_addf(&path, "/containers/%s?force=1", id ? id : "");
		req.method = "DELETE";
		req.path = path.buf;
		if (id && api_run(ctx, &req, &x, &err))
			break;
	}
	json_free(j);
	http_xfer_free(x);
	error_release(&err);
	strbuf_release(&path);
	strbuf_release(&filters);
}

static int check_unit(const struct exec_unit *unit, struct error *err)
{
	if (!unit->workspace || unit->workspace[0] != '/')
		return error_set(err, EXIT_USAGE, "no workspace");
	if (!unit->image || !*unit->image)
		return error_set(err, EXIT_USAGE, "no image");
	if (unit->shell ? !unit->cmd || !*unit->cmd
			: !unit->argv || !unit->argv[0] || !*unit->argv[0])
		return error_set(err, EXIT_USAGE, "empty command");
	return 0;
}

/* The outputs, and the datum's private folder PIPE_OUT (a workspace path,
 * relative or not) whether the caller listed it or not. */
static void rw_paths(const struct exec_unit *unit, struct strvec *rw)
{
	const char *out = NULL;
	size_t wl = strlen(unit->workspace);

	strvec_pushv(rw, unit->rw_paths ? unit->rw_paths : strvec_empty);
	for (char *const *e = unit->env; e && *e; e++)
		if (!strncmp(*e, "PIPE_OUT=", 9))
			out = *e + 9;
	if (!out || !*out)
		return;
	if (*out == '/') {
		if (strncmp(out, unit->workspace, wl) || out[wl] != '/')
			return; /* not in the workspace: not ours to mount */
		out += wl + 1;
	}
	strvec_pushf(rw, "%s/", out);
}

static int docker_start(struct exec_ctx *ctx, const struct exec_unit *unit,
			struct error *err)
{
	struct mounts m = {0};
	struct dunit *u;
	struct strbuf body = STRBUF_INIT;
	struct strvec rw = STRVEC_INIT;
	int r;

	if (check_unit(unit, err))
		return -1;
	sweep(ctx, unit->workspace);
	u = unit_new(ctx);
	rw_paths(unit, &rw);
	r = plan_outputs(u, &m, unit->workspace, rw.v, err);
	strvec_clear(&rw);
	if (r || plan_inputs(&m, unit->workspace, unit->ro_paths, err)) {
		if (u->staging)
			fs_remove_tree(u->staging);
		mounts_release(&m);
		unit_free(u);
		return -1;
	}
	make_mount_points(&m);
	create_body(unit, mounts_json(&m), &body);
	mounts_release(&m);
	u->lu = loop_unit_add(unit, &ctx->opt, &docker_ops, ctx, u);
	u->step = CREATING;
	u->req = api_start(ctx, "POST", "/containers/create", &body, REQUEST_MS,
			   on_req, u);
	strbuf_release(&body);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Images */

/* The pull's progress: one JSON object a line; errors come in the
 * stream with status 200. */
struct pull {
	const char *image;
	struct strbuf line, error;
	char *last;
};

static void pull_line(struct pull *p, const char *line, size_t len)
{
	struct json *j = NULL;
	struct error err = ERROR_INIT;
	const char *msg, *id;

	if (json_parse(&j, line, len, &err)) {
		error_release(&err);
		return;
	}
	msg = json_get_str(j, "error");
	if (!msg)
		msg = json_get_str(j, "errorDetail.message");
	if (msg && !p->error.len) {
		strbuf_addstr(&p->error, msg);
	} else if ((msg = json_get_str(j, "status")) &&
		   !json_get(j, "progressDetail.current")) {
		struct strbuf sb = STRBUF_INIT;

		id = json_get_str(j, "id");
		if (id)
			strbuf_addf(&sb, "%s: ", id);
		strbuf_addstr(&sb, msg);
		if (!p->last || strcmp(p->last, sb.buf))
			log_info("pull %s: %s", p->image, sb.buf);
		free(p->last);
		p->last = strbuf_detach(&sb, NULL);
	}
	json_free(j);
}

static void on_pull_data(void *arg, const char *data, size_t len)
{
	struct pull *p = arg;
	char *nl;

	strbuf_add(&p->line, data, len);
	while ((nl = memchr(p->line.buf, '\n', p->line.len))) {
		size_t n = (size_t)(nl - p->line.buf);

		pull_line(p, p->line.buf, n);
		memmove(p->line.buf, nl + 1, p->line.len - n - 1);
		strbuf_setlen(&p->line, p->line.len - n - 1);
	}
}

static int pull(struct exec_ctx *ctx, const char *image, struct error *err)
{
	struct strbuf repo = STRBUF_INIT, tag = STRBUF_INIT, path = STRBUF_INIT;
	struct pull p = {.image = image};
	struct http_request req = {.method = "POST"};
	struct http_xfer *x = NULL;
	int ret = -1;

	strbuf_init(&p.line, 0);
	strbuf_init(&p.error, 0);
	if (docker_split_image(image, &repo, &tag, err))
		goto out;
	strbuf_addstr(&path, "/images/create?fromImage=");
	http_escape(&path, repo.buf);
	strbuf_addstr(&path, "&tag=");
	http_escape(&path, tag.buf);
	req.path = path.buf;
	req.on_data = on_pull_data;
	req.data_arg = &p;
	log_info("pulling image '%s'", image);
	if (api_run(ctx, &req, &x, err))
		goto out;
	if (p.line.len)
		pull_line(&p, p.line.buf, p.line.len);
	if (http_xfer_status(x) != 200)
		json_error_message(http_xfer_body(x)->buf,
				   http_xfer_body(x)->len, &p.error);
	if (p.error.len) {
		error_set(err, EXIT_ENV, "cannot pull image '%s': %s", image,
			  p.error.buf);
		goto out;
	}
	ret = 0;
out:
	http_xfer_free(x);
	strbuf_release(&repo);
	strbuf_release(&tag);
	strbuf_release(&path);
	strbuf_release(&p.line);
	strbuf_release(&p.error);
	free(p.last);
	return ret;
}

/* GET /images/NAME/json: 1 with its Id in id, 0 when there is no such
 * image, -1 on an error. */
static int inspect_image(struct exec_ctx *ctx, const char *image,
			 struct strbuf *id, struct error *err)
{
	struct strbuf path = STRBUF_INIT, msg = STRBUF_INIT;
	struct http_request req = {.method = "GET", .timeout_ms = REQUEST_MS};
	struct http_xfer *x = NULL;
	struct json *j = NULL;
	const char *s;
	int ret = -1;

	strbuf_addf(&path, "/images/%s/json", image);
	req.path = path.buf;
	if (api_run(ctx, &req, &x, err))
		goto out;
	if (http_xfer_status(x) == 404) {
		ret = 0;
		goto out;
	}
	j = parse_body(x);
	s = json_get_str(j, "Id");
	if (http_xfer_status(x) != 200 || !s) {
		json_error_message(http_xfer_body(x)->buf,
				   http_xfer_body(x)->len, &msg);
		error_set(err, EXIT_ENV, "image '%s': %s", image, msg.buf);
		goto out;
	}
	strbuf_addstr(id, s);
	ret = 1;
out:
	json_free(j);
	http_xfer_free(x);
	strbuf_release(&path);
	strbuf_release(&msg);
	return ret;
}

static int docker_resolve_image(struct exec_ctx *ctx, const char *image,
				struct strbuf *id, struct error *err)
{
	struct strbuf repo = STRBUF_INIT, tag = STRBUF_INIT;
	int r = docker_split_image(image, &repo, &tag, err);

	strbuf_release(&repo);
	strbuf_release(&tag);
	if (r)
		return -1;
	r = inspect_image(ctx, image, id, err);
	if (r)
		return r < 0 ? -1 : 0;
	if (pull(ctx, image, err))
		return -1;
	r = inspect_image(ctx, image, id, err);
	if (!r)
		return error_set(err, EXIT_ENV,
				 "cannot pull image '%s': not found after "
				 "the pull",
				 image);
	return r < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Opening and closing */

/* GET /_ping: the daemon answers, and with which API version. */
static int negotiate(struct exec_ctx *ctx, struct error *err)
{
	struct http_request req = {
		.method = "GET", .path = "/_ping", .timeout_ms = PING_MS};
	struct http_xfer *x = NULL;
	struct strbuf msg = STRBUF_INIT;
	const char *v;
	int ret = -1;

	if (api_run(ctx, &req, &x, err))
		goto out;
	if (http_xfer_status(x) != 200) {
		json_error_message(http_xfer_body(x)->buf,
				   http_xfer_body(x)->len, &msg);
		error_set(err, EXIT_ENV,
			  "cannot reach the Docker daemon at %s: HTTP %ld: %s",
			  ctx->socket, http_xfer_status(x), msg.buf);
		goto out;
	}
	v = http_xfer_header(x, "API-Version");
	free(ctx->api);
	if (v && *v && strspn(v, "0123456789.") == strlen(v)) {
		struct strbuf sb = STRBUF_INIT;

		strbuf_addf(&sb, "/v%s", v);
		ctx->api = strbuf_detach(&sb, NULL);
	} else {
		ctx->api = xstrdup(""); /* the daemon's own version */
	}
	log_debug("docker: %s, API %s", ctx->socket, v ? v : "(default)");
	ret = 0;
out:
	http_xfer_free(x);
	strbuf_release(&msg);
	return ret;
}

static void ctx_free(struct exec_ctx *ctx)
{
	while (ctx->nr_bg)
		http_xfer_free(ctx->bg[--ctx->nr_bg]);
	free(ctx->bg);
	http_free(ctx->http);
	strvec_clear(&ctx->swept);
	free(ctx->socket);
	free(ctx->api);
	free(ctx);
}

static int docker_open(struct exec_ctx **out, const struct exec_options *opt,
		       struct error *err)
{
	struct exec_ctx *ctx = xcalloc(1, sizeof(*ctx));
	struct strbuf sock = STRBUF_INIT;
	struct http_target t = {.base_url = "http://localhost"};

	*out = NULL;
	if (opt)
		ctx->opt = *opt;
	strvec_init(&ctx->swept);
	ctx->api = xstrdup("");
	if (docker_socket_path(getenv("DOCKER_HOST"), &sock, err))
		goto fail;
	ctx->socket = strbuf_detach(&sock, NULL);
	t.unix_socket = ctx->socket;
	if (http_new(&ctx->http, &t, err) || negotiate(ctx, err))
		goto fail;
	*out = ctx;
	return 0;
fail:
	strbuf_release(&sock);
	ctx_free(ctx);
	return -1;
}

static void docker_close(struct exec_ctx *ctx)
{
	struct error err = ERROR_INIT;

	if (!ctx)
		return;
	loop_close(ctx); /* what an error left is removed all the same */
	/* the removals of the containers, in the background until now */
	while (ctx->nr_bg && http_poll(ctx->http, -1, &err) >= 0)
		;
	error_release(&err);
	ctx_free(ctx);
}

/* Named in executors/registry.c. Waiting, counting and cancelling are the
 * loop's (executors/loop.h), the same for every executor. */
const struct executor executor_docker = {
	.name = "docker",
	.open = docker_open,
	.start = docker_start,
	.resolve_image = docker_resolve_image,
	.close = docker_close,
};
