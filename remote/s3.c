/* The S3 client's request engine: signed requests over executors/http.h,
 * many in flight on one event loop within a bound, retried with backoff
 * and jitter; and the operations that are a single request or a chain. */
#include "remote/s3int.h"
#include "util/sha256.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PART (8LL << 20)
#define DEFAULT_PARALLEL 4
#define DEFAULT_ATTEMPTS 5
#define DEFAULT_BACKOFF_MS 200
#define MAX_WAIT_MS 20000
#define STALL_MS 60000
#define ABORT_MS 3000
#define UNSIGNED "x-amz-content-sha256: UNSIGNED-PAYLOAD"

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int s3_open(struct s3 **out, const char *url, const struct s3_opts *o,
	    struct error *err)
{
	struct s3 *s3 = xcalloc(1, sizeof(*s3));
	struct http_target t = {0};

	*out = NULL;
	if (s3_config_load(&s3->cfg, url, o, err)) {
		free(s3);
		return -1;
	}
	if (o)
		s3->o = *o;
	s3->o.endpoint = s3->o.region = s3->o.profile = NULL; /* not kept */
	if (s3->o.part_size <= 0)
		s3->o.part_size = DEFAULT_PART;
	if (s3->o.part_size < (5LL << 20))
		s3->o.part_size = 5LL << 20; /* S3's smallest part */
	if (s3->o.multipart_threshold <= 0)
		s3->o.multipart_threshold = DEFAULT_PART;
	if (s3->o.parallel <= 0)
		s3->o.parallel = DEFAULT_PARALLEL;
	if (s3->o.attempts <= 0)
		s3->o.attempts = DEFAULT_ATTEMPTS;
	if (s3->o.backoff_ms <= 0)
		s3->o.backoff_ms = DEFAULT_BACKOFF_MS;
	s3->sigv4 = xstrfmt("aws:amz:%s:s3", s3->cfg.region);
	if (s3->cfg.token)
		s3->token_hdr =
			xstrfmt("x-amz-security-token: %s", s3->cfg.token);
	t.base_url = s3->cfg.base_url;
	t.connect_timeout_ms = s3->o.connect_timeout_ms;
	t.aws_sigv4 = s3->sigv4;
	t.aws_key = s3->cfg.key_id;
	t.aws_secret = s3->cfg.secret;
	if (http_new(&s3->h, &t, err)) {
		s3_close(s3);
		return -1;
	}
	s3->seed = (unsigned)now_ms() ^ (unsigned)getpid();
	*out = s3;
	return 0;
}

void s3_close(struct s3 *s3)
{
	if (!s3)
		return;
	http_free(s3->h);
	s3_config_release(&s3->cfg);
	free(s3->sigv4);
	if (s3->token_hdr)
		explicit_bzero(s3->token_hdr, strlen(s3->token_hdr));
	free(s3->token_hdr);
	free(s3);
}

long s3_requests(const struct s3 *s3)
{
	return s3->requests;
}

char *s3_full_key(const struct s3 *s3, const char *key)
{
	return xstrfmt("%s%s", s3->cfg.prefix, key);
}

/* ------------------------------------------------------------------ */
/* Operations and their requests */

struct s3op *s3op_new(struct s3 *s3, const char *what, const char *key)
{
	struct s3op *op = xcalloc(1, sizeof(*op));

	op->s3 = s3;
	op->what = what;
	op->key = key ? xstrdup(key) : NULL;
	op->fd = -1;
	error_init(&op->err);
	return op;
}

void s3op_free(struct s3op *op)
{
	if (!op)
		return;
	free(op->key);
	free(op->path);
	free(op->tmp);
	free(op->upload_id);
	for (int i = 0; op->etags && i < op->nparts; i++)
		free(op->etags[i]);
	free(op->etags);
	free(op->list_prefix);
	error_release(&op->err);
	free(op);
}

struct s3req *s3req_new(struct s3op *op, const char *method, const char *key,
			const char *query, s3req_fn *done)
{
	struct s3req *r = xcalloc(1, sizeof(*r));

	r->op = op;
	r->method = method;
	r->key = key ? xstrdup(key) : NULL;
	r->query = query ? xstrdup(query) : NULL;
	strvec_init(&r->headers);
	r->upload.fd = -1;
	r->out_fd = -1;
	r->done = done;
	op->pending++;
	return r;
}

static void push_ready(struct s3 *s3, struct s3req *r)
{
	r->next = NULL;
	if (s3->ready_tail)
		s3->ready_tail->next = r;
	else
		s3->ready = r;
	s3->ready_tail = r;
}

void s3req_queue(struct s3req *r)
{
	push_ready(r->op->s3, r);
}

void s3req_end(struct s3req *r)
{
	struct s3op *op = r->op;

	http_xfer_free(r->x);
	free(r->key);
	free(r->query);
	strvec_clear(&r->headers);
	free(r->body);
	free(r);
	if (--op->pending == 0 && !op->ended) {
		op->ended = 1;
		if (op->finish)
			op->finish(op);
	}
}

/* A 2xx body streamed to a file (a download). */
static void on_data(void *arg, const char *data, size_t len)
{
	struct s3req *r = arg;

	while (len && !r->out_errno) {
		ssize_t n = write(r->out_fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r->out_errno = n < 0 ? errno : ENOSPC;
			break;
		}
		data += n;
		len -= (size_t)n;
	}
}

static void unfly(struct s3 *s3, struct s3req *r)
{
	if (r->fprev)
		r->fprev->fnext = r->fnext;
	else
		s3->flying = r->fnext;
	if (r->fnext)
		r->fnext->fprev = r->fprev;
	r->fprev = r->fnext = NULL;
	s3->in_flight--;
}

static int retryable(const struct s3req *r)
{
	long st = http_xfer_status(r->x);

	if (r->out_errno)
		return 0; /* our disk, not the server */
	if (*http_xfer_error(r->x))
		return 1; /* refused, reset, cut short, timed out */
	return st >= 500 || st == 429 || st == 408;
}

/* How long before the next attempt: the server's Retry-After (seconds)
 * when it gives one, else exponential backoff with jitter (half fixed,
 * half random, so that many clients do not come back at once). */
static long long retry_wait(struct s3 *s3, struct s3req *r)
{
	const char *ra = http_xfer_header(r->x, "Retry-After");
	long long w = s3->o.backoff_ms;
	char *end;

	if (ra && *ra) {
		long secs = strtol(ra, &end, 10);

		if (!*end && secs >= 0)
			return secs * 1000 > MAX_WAIT_MS ? MAX_WAIT_MS
							 : secs * 1000;
	}
	for (int i = 1; i < r->attempt && w < MAX_WAIT_MS; i++)
		w *= 2;
	if (w > MAX_WAIT_MS)
		w = MAX_WAIT_MS;
	return w / 2 + (long long)(rand_r(&s3->seed) % (unsigned)(w / 2 + 1));
}

static void on_done(void *arg, struct http_xfer *x)
{
	struct s3req *r = arg;
	struct s3 *s3 = r->op->s3;

	(void)x;
	unfly(s3, r);
	if (retryable(r) && r->attempt < s3->o.attempts) {
		r->not_before = now_ms() + retry_wait(s3, r);
		http_xfer_free(r->x);
		r->x = NULL;
		r->next = s3->waiting;
		s3->waiting = r;
		return;
	}
	r->done(r);
}

static void build_path(struct s3 *s3, struct s3req *r, struct strbuf *path)
{
	strbuf_addch(path, '/');
	if (s3->cfg.path_style) {
		s3_encode(path, s3->cfg.bucket, 0);
		if (r->key)
			strbuf_addch(path, '/');
	}
	if (r->key)
		s3_encode(path, r->key, 1);
	if (r->query)
		strbuf_addf(path, "?%s", r->query);
}

static void start(struct s3 *s3, struct s3req *r)
{
	struct strbuf path = STRBUF_INIT, sha = STRBUF_INIT;
	struct strvec hdrs = STRVEC_INIT;
	struct http_request req = {
		.method = r->method,
		.stall_ms = STALL_MS,
	};

	build_path(s3, r, &path);
	req.path = path.buf;
	/* curl 7.88 signs the payload hash this header gives, and S3
	 * insists on it: a memory body's own hash, else unsigned */
	if (r->upload.fd >= 0) {
		strvec_push(&hdrs, UNSIGNED);
		req.upload = &r->upload;
	} else {
		strbuf_addstr(&sha, "x-amz-content-sha256: ");
		sha256_hex(r->body ? r->body : "", r->body_len, &sha);
		strvec_push(&hdrs, sha.buf);
		req.body = r->body;
		req.body_len = r->body_len;
	}
	if (s3->token_hdr)
		strvec_push(&hdrs, s3->token_hdr);
	strvec_pushv(&hdrs, r->headers.v);
	req.headers = hdrs.v;
	if (r->out_fd >= 0) {
		/* a retry starts the file over */
		if (ftruncate(r->out_fd, 0) || lseek(r->out_fd, 0, SEEK_SET))
			r->out_errno = errno;
		req.on_data = on_data;
		req.data_arg = r;
	}
	r->attempt++;
	s3->requests++;
	s3->in_flight++;
	r->fnext = s3->flying;
	if (s3->flying)
		s3->flying->fprev = r;
	s3->flying = r;
	r->x = http_start(s3->h, &req, on_done, r);
	if (hdrs.nr && s3->token_hdr) /* the copy holds the token */
		for (size_t i = 0; i < hdrs.nr; i++)
			if (hdrs.v[i] && !strncmp(hdrs.v[i], "x-amz-sec", 9))
				explicit_bzero(hdrs.v[i], strlen(hdrs.v[i]));
	strvec_clear(&hdrs);
	strbuf_release(&path);
	strbuf_release(&sha);
}

/* Retries whose time has come go back to the ready queue; returns the
 * time of the next one still waiting (-1: none). */
static long long wake(struct s3 *s3)
{
	long long now = now_ms(), next = -1;
	struct s3req **pp = &s3->waiting;

	while (*pp) {
		struct s3req *r = *pp;

		if (r->not_before <= now) {
			*pp = r->next;
			push_ready(s3, r);
			continue;
		}
		if (next < 0 || r->not_before < next)
			next = r->not_before;
		pp = &r->next;
	}
	return next;
}

/* Start what may start: ready requests, then a batch's next operation. */
static void pump(struct s3 *s3)
{
	while (s3->in_flight < s3->limit) {
		struct s3req *r = s3->ready;

		if (!r) {
			if (!s3->more || !s3->more(s3, s3->more_arg))
				return;
			continue;
		}
		s3->ready = r->next;
		if (!s3->ready)
			s3->ready_tail = NULL;
		/* a part of an upload that has failed: not sent (done
		 * sees no answer) */
		if (r->op->failed && r->part) {
			r->done(r);
			continue;
		}
		start(s3, r);
	}
}

static void abort_end(struct s3req *r)
{
	s3req_end(r);
}

/* After a signal: abort the uploads in parts that were under way, for
 * a few seconds at most (S3 keeps, and bills, the parts of an upload
 * neither completed nor aborted). Not retried. */
static void abort_uploads(struct s3 *s3, struct strvec *kv)
{
	struct s3op *op = s3op_new(s3, "abort", NULL);
	long long until = now_ms() + ABORT_MS;
	struct error err = ERROR_INIT;

	for (size_t i = 0; i + 1 < kv->nr; i += 2) {
		const char *q[] = {"uploadId", kv->v[i + 1]};
		struct strbuf query = STRBUF_INIT;
		struct s3req *r;

		s3_canonical_query(&query, q, 1);
		r = s3req_new(op, "DELETE", kv->v[i], query.buf, abort_end);
		r->attempt = s3->o.attempts;
		s3req_queue(r);
		strbuf_release(&query);
	}
	while ((s3->ready || s3->in_flight) && now_ms() < until) {
		pump(s3);
		if (s3->in_flight &&
		    http_poll(s3->h, (int)(until - now_ms()), &err) < 0)
			break; /* a second signal interrupts only the wait */
	}
	while (s3->ready || s3->flying) { /* out of time */
		struct s3req *r = s3->flying ? s3->flying : s3->ready;

		if (r == s3->flying) {
			unfly(s3, r);
		} else {
			s3->ready = r->next;
			if (!s3->ready)
				s3->ready_tail = NULL;
		}
		s3req_end(r);
	}
	error_release(&err);
	s3op_free(op);
}

/* The uploads in parts of the requests in queue (key, id pairs). */
static void list_uploads(struct s3req *r, struct strvec *kv)
{
	for (; r; r = r->next)
		if (r->op->upload_id && !r->op->listed) {
			r->op->listed = 1;
			strvec_push(kv, r->op->key);
			strvec_push(kv, r->op->upload_id);
		}
}

/* After a signal: every request ends unanswered, its operation failed;
 * then the uploads in parts are aborted. */
static void drain(struct s3 *s3)
{
	struct strvec kv = STRVEC_INIT;

	s3->more = NULL;
	list_uploads(s3->ready, &kv);
	list_uploads(s3->waiting, &kv);
	for (struct s3req *r = s3->flying; r; r = r->fnext)
		list_uploads(&(struct s3req){.op = r->op}, &kv);
	while (s3->flying || s3->ready || s3->waiting) {
		struct s3req *r = s3->flying;

		if (r) {
			unfly(s3, r);
		} else if ((r = s3->ready)) {
			s3->ready = r->next;
			if (!s3->ready)
				s3->ready_tail = NULL;
		} else {
			r = s3->waiting;
			s3->waiting = r->next;
		}
		r->op->failed = 1;
		r->op->result = -1;
		if (!r->op->err.exit_code)
			error_set(&r->op->err, EXIT_INTERRUPTED, "interrupted");
		s3req_end(r);
	}
	abort_uploads(s3, &kv);
	strvec_clear(&kv);
}

int s3_run(struct s3 *s3, int limit, struct error *err)
{
	s3->limit = limit > 0 ? limit : s3->o.parallel;
	for (;;) {
		long long next = wake(s3), now;
		int t, rc;

		pump(s3);
		if (!s3->in_flight && !s3->ready && !s3->waiting)
			return 0;
		now = now_ms();
		t = next < 0 ? -1 : next > now ? (int)(next - now) : 0;
		if (!s3->in_flight) { /* only retries waiting */
			if (poll(NULL, 0, t) < 0 && errno == EINTR)
				rc = 1;
			else
				continue;
		} else {
			rc = http_poll(s3->h, t, err);
		}
		if (rc) {
			drain(s3);
			if (rc > 0)
				error_set(err, EXIT_INTERRUPTED, "interrupted");
			return -1;
		}
	}
}

static const char *reason(long status)
{
	static const struct {
		long status;
		const char *text;
	} t[] = {
		{400, "Bad Request"},
		{401, "Unauthorized"},
		{403, "Forbidden (wrong credentials, or no access)"},
		{404, "Not Found"},
		{405, "Method Not Allowed"},
		{409, "Conflict"},
		{412, "Precondition Failed"},
		{416, "Range Not Satisfiable"},
		{429, "Too Many Requests"},
		{500, "Internal Server Error"},
		{502, "Bad Gateway"},
		{503, "Service Unavailable"},
		{504, "Gateway Timeout"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		if (t[i].status == status)
			return t[i].text;
	return "";
}

int s3op_fail(struct s3op *op, struct s3req *r)
{
	struct s3 *s3 = op->s3;
	struct strbuf code = STRBUF_INIT, msg = STRBUF_INIT;
	long st = r->x ? http_xfer_status(r->x) : 0;
	const char *terr = r->x ? http_xfer_error(r->x) : "";
	const struct strbuf *body = r->x ? http_xfer_body(r->x) : NULL;
	strbuf_addf(&msg, "%s 's3://%s/%s': ", op->what, s3->cfg.bucket,
		    op->key ? op->key : "");
	if (r->out_errno) {
		strbuf_addf(&msg, "cannot write '%s': %s",
			    op->tmp ? op->tmp : "", strerror(r->out_errno));
	} else if (*terr) {
		strbuf_addf(&msg, "%s: %s", s3->cfg.base_url, terr);
	} else {
		strbuf_addf(&msg, "HTTP %ld", st);
		if (body && s3_xml_pick(body->buf, body->len, "Code", &code))
			strbuf_addf(&msg, " %s", code.buf);
		else /* a HEAD's answer has no body */
			strbuf_addf(&msg, " %s", reason(st));
		if (body && s3_xml_pick(body->buf, body->len, "Message", &code))
			strbuf_addf(&msg, ": %s", code.buf);
	}
	if (r->attempt > 1)
		strbuf_addf(&msg, " (%d attempts)", r->attempt);
	s3_redact(&msg, s3->cfg.secret);
	s3_redact(&msg, s3->cfg.token);
	if (!op->err.exit_code)
		error_set(&op->err,
			  (st >= 400 && st < 500 && st != 401 && st != 403 &&
			   !r->out_errno)
				  ? EXIT_FAILED
				  : EXIT_ENV,
			  "%s", msg.buf);
	op->result = -1;
	op->failed = 1;
	strbuf_release(&code);
	strbuf_release(&msg);
	return -1;
}

/* ------------------------------------------------------------------ */
/* Operations of one request or a chain of them */

int s3op_run(struct s3op *op, struct error *err)
{
	int ret;

	if (s3_run(op->s3, 0, err)) {
		s3op_free(op); /* drained: nothing refers to it */
		return -1;
	}
	ret = op->result;
	if (ret < 0)
		error_set(err, op->err.exit_code, "%s", op->err.msg.buf);
	s3op_free(op);
	return ret;
}

int s3req_ok(struct s3req *r)
{
	long st = http_xfer_status(r->x);

	return !*http_xfer_error(r->x) && st >= 200 && st < 300;
}

/* A PUT's answer: 412 to a create-only put means the key is there. */
void s3_put_done(struct s3req *r)
{
	if (http_xfer_status(r->x) == 412 && !*http_xfer_error(r->x))
		r->op->result = S3_EXISTS;
	else if (!s3req_ok(r))
		s3op_fail(r->op, r);
	s3req_end(r);
}
