/* The S3 client's transfers of files and listings: single and multipart
 * uploads (parts in parallel, aborted on failure), downloads to a temp
 * file renamed into place, paged listings, and batches of them. */
#include "remote/s3int.h"
#include "util/log.h"
#include "util/md5.h"
#include "util/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PARTS 10000

/* A local file's error: "put 's3://b/k': cannot read 'f': why". */
static void file_error(struct s3op *op, const char *what, const char *path,
		       int errnum)
{
	error_set(&op->err, EXIT_FAILED, "%s 's3://%s/%s': %s '%s': %s",
		  op->what, op->s3->cfg.bucket, op->key, what, path,
		  strerror(errnum));
	op->result = -1;
	op->failed = 1;
}

/* The same before any request: the operation ends at once. */
static void fail_now(struct s3op *op, const char *what, const char *path,
		     int errnum)
{
	file_error(op, what, path, errnum);
	op->ended = 1;
	if (op->finish)
		op->finish(op);
}

/* Every transfer's end: its file closed, a download's temp removed. */
static void cleanup(struct s3op *op)
{
	if (op->fd >= 0)
		close(op->fd);
	op->fd = -1;
	if (op->tmp)
		unlink(op->tmp);
}

/* ------------------------------------------------------------------ */
/* One request: head, delete, a put from memory */

static void head_done(struct s3req *r)
{
	struct s3op *op = r->op;
	const char *v;

	if (s3req_ok(r)) {
		v = http_xfer_header(r->x, "Content-Length");
		op->st->size = v ? atoll(v) : 0;
		v = http_xfer_header(r->x, "ETag");
		v = v ? v + strspn(v, "\"") : "";
		snprintf(op->st->etag, sizeof(op->st->etag), "%.*s",
			 (int)strcspn(v, "\""), v);
	} else if (http_xfer_status(r->x) == 404 && !*http_xfer_error(r->x)) {
		op->result = S3_MISSING;
	} else {
		s3op_fail(op, r);
	}
	s3req_end(r);
}

int s3_head(struct s3 *s3, const char *key, struct s3_stat *st,
	    struct error *err)
{
	char *full = s3_full_key(s3, key);
	struct s3op *op = s3op_new(s3, "head", full);
	struct s3_stat dummy;

	op->st = st ? st : &dummy;
	memset(op->st, 0, sizeof(*op->st));
	s3req_queue(s3req_new(op, "HEAD", full, NULL, head_done));
	free(full);
	return s3op_run(op, err);
}

static void delete_done(struct s3req *r)
{
	if (!s3req_ok(r) &&
	    !(http_xfer_status(r->x) == 404 && !*http_xfer_error(r->x)))
		s3op_fail(r->op, r);
	s3req_end(r);
}

int s3_delete(struct s3 *s3, const char *key, struct error *err)
{
	char *full = s3_full_key(s3, key);
	struct s3op *op = s3op_new(s3, "delete", full);

	s3req_queue(s3req_new(op, "DELETE", full, NULL, delete_done));
	free(full);
	return s3op_run(op, err);
}

int s3_put_mem(struct s3 *s3, const char *key, const void *data, size_t len,
	       int create_only, struct error *err)
{
	char *full = s3_full_key(s3, key);
	struct s3op *op = s3op_new(s3, "put", full);
	struct s3req *r = s3req_new(op, "PUT", full, NULL, s3_put_done);

	r->body = xmemdupz(data, len);
	r->body_len = len;
	if (create_only)
		strvec_push(&r->headers, "If-None-Match: *");
	s3req_queue(r);
	free(full);
	return s3op_run(op, err);
}

/* ------------------------------------------------------------------ */
/* Multipart upload: create, the parts, complete; abort on failure */

static void abort_done(struct s3req *r)
{
	struct s3op *op = r->op;

	if (!s3req_ok(r) && !(http_xfer_status(r->x) == 404))
		strbuf_addf(&op->err.msg,
			    " (and upload '%s' could not be aborted: HTTP %ld)",
			    op->upload_id, http_xfer_status(r->x));
	s3req_end(r);
}

static void upload_query(struct s3op *op, struct strbuf *q, int part)
{
	char num[16];
	const char *pairs[] = {"uploadId", op->upload_id, "partNumber", num};

	snprintf(num, sizeof(num), "%d", part);
	s3_canonical_query(q, pairs, part ? 2 : 1);
}

static void queue_abort(struct s3op *op)
{
	struct strbuf q = STRBUF_INIT;

	upload_query(op, &q, 0);
	s3req_queue(s3req_new(op, "DELETE", op->key, q.buf, abort_done));
	strbuf_release(&q);
}

/* The ETag S3 gives the object the upload completes: the MD5 of its
 * parts' MD5s (their ETags), then "-" and the number of parts. 0, or -1
 * when a part's ETag is not an MD5 (encrypted with SSE-KMS, say). */
static int multipart_etag(const struct s3op *op, struct strbuf *out)
{
	struct md5 c;
	unsigned char d[MD5_LEN];

	md5_init(&c);
	for (int i = 0; i < op->nparts; i++) {
		const char *e = op->etags[i] + strspn(op->etags[i], "\"");

		if (strspn(e, "0123456789abcdefABCDEF") != 2 * MD5_LEN ||
		    (e[2 * MD5_LEN] && e[2 * MD5_LEN] != '"'))
			return -1;
		for (int k = 0; k < MD5_LEN; k++) {
			unsigned v;

			sscanf(e + 2 * k, "%2x", &v);
			d[k] = (unsigned char)v;
		}
		md5_add(&c, d, MD5_LEN);
	}
	md5_final(&c, d);
	for (int k = 0; k < MD5_LEN; k++)
		strbuf_addf(out, "%02x", d[k]);
	strbuf_addf(out, "-%d", op->nparts);
	return 0;
}

/* The HEAD after a lost complete: the object there is the upload just
 * completed when it has its size and the ETag of exactly these parts
 * (an MD5 over the parts' MD5s: other bytes, or the same bytes in other
 * parts, give another), so the put succeeded. */
static void completed_done(struct s3req *r)
{
	struct s3op *op = r->op;
	struct strbuf want = STRBUF_INIT;
	const char *v, *etag = NULL;
	long long size = -1;
	size_t etag_len = 0;

	if (s3req_ok(r)) {
		/* one header at a time: the next call reuses the buffer */
		if ((v = http_xfer_header(r->x, "Content-Length")))
			size = atoll(v);
		etag = http_xfer_header(r->x, "ETag");
		etag = etag ? etag + strspn(etag, "\"") : "";
		etag_len = strcspn(etag, "\"");
	}
	if (size == op->size && !multipart_etag(op, &want) &&
	    etag_len == want.len && !strncasecmp(etag, want.buf, want.len)) {
		log_verbose("put 's3://%s/%s': the complete's answer was "
			    "lost; the object there is this upload (ETag %s)",
			    op->s3->cfg.bucket, op->key, want.buf);
	} else if (!s3req_ok(r) && http_xfer_status(r->x) != 404) {
		s3op_fail(op, r);
	} else {
		error_set(&op->err, EXIT_FAILED,
			  "put 's3://%s/%s': S3 no longer knows the upload "
			  "when it is completed (NoSuchUpload: completed by "
			  "a try whose answer was lost, or aborted), and the "
			  "object there is not it "
			  "(%s): put it again",
			  op->s3->cfg.bucket, op->key,
			  !s3req_ok(r) ? "there is none"
				       : "another size or ETag");
		op->result = -1;
		op->failed = 1;
		/* S3 said there is no such upload; should it be wrong, parts
		 * left would be billed: abort all the same (404 is fine) */
		queue_abort(op);
	}
	strbuf_release(&want);
	s3req_end(r);
}

/* The complete answered NoSuchUpload: a try of it whose answer was lost
 * may have done it. That try may be one of ours or curl's own (it sends
 * a request again, unseen, when a reused connection dies before the
 * answer), so the attempts do not tell; the HEAD does. */
static int lost_complete(struct s3req *r)
{
	const struct strbuf *body = http_xfer_body(r->x);
	struct strbuf code = STRBUF_INIT;
	int lost = http_xfer_status(r->x) == 404 && !*http_xfer_error(r->x) &&
		   s3_xml_pick(body->buf, body->len, "Code", &code) &&
		   !strcmp(code.buf, "NoSuchUpload");

	strbuf_release(&code);
	return lost;
}

static void complete_done(struct s3req *r)
{
	struct s3op *op = r->op;
	const struct strbuf *body = http_xfer_body(r->x);

	/* S3 may answer 200 and put the error in the body */
	if (s3req_ok(r) && !strstr(body->buf, "<Error>")) {
		s3req_end(r);
		return;
	}
	if (lost_complete(r)) {
		s3req_queue(
			s3req_new(op, "HEAD", op->key, NULL, completed_done));
		s3req_end(r);
		return;
	}
	if (http_xfer_status(r->x) == 412 && !*http_xfer_error(r->x))
		op->result = S3_EXISTS;
	else
		s3op_fail(op, r);
	queue_abort(op);
	s3req_end(r);
}

static void queue_complete(struct s3op *op)
{
	struct strbuf q = STRBUF_INIT, xml = STRBUF_INIT;
	struct s3req *r;

	upload_query(op, &q, 0);
	strbuf_addstr(&xml, "<CompleteMultipartUpload xmlns=\"http://s3."
			    "amazonaws.com/doc/2006-03-01/\">");
	for (int i = 0; i < op->nparts; i++) {
		strbuf_addf(&xml, "<Part><PartNumber>%d</PartNumber><ETag>",
			    i + 1);
		s3_xml_escape(&xml, op->etags[i]);
		strbuf_addstr(&xml, "</ETag></Part>");
	}
	strbuf_addstr(&xml, "</CompleteMultipartUpload>");
	r = s3req_new(op, "POST", op->key, q.buf, complete_done);
	strvec_push(&r->headers, "Content-Type: application/xml");
	if (op->create_only)
		strvec_push(&r->headers, "If-None-Match: *");
	r->body_len = xml.len;
	r->body = strbuf_detach(&xml, NULL);
	s3req_queue(r);
	strbuf_release(&q);
}

static void part_done(struct s3req *r)
{
	struct s3op *op = r->op;
	const char *etag;

	if (!r->x) {
		/* not sent: the upload had failed */
	} else if (!s3req_ok(r)) {
		s3op_fail(op, r);
	} else if (!(etag = http_xfer_header(r->x, "ETag")) || !*etag) {
		error_set(&op->err, EXIT_ENV,
			  "put 's3://%s/%s': part %d: no ETag in the answer",
			  op->s3->cfg.bucket, op->key, r->part);
		op->result = -1;
		op->failed = 1;
	} else {
		op->etags[r->part - 1] = xstrdup(etag);
	}
	if (--op->parts_left == 0) {
		if (op->failed)
			queue_abort(op);
		else
			queue_complete(op);
	}
	s3req_end(r);
}

static void queue_parts(struct s3op *op)
{
	long long ps = op->s3->o.part_size;

	/* S3 takes at most 10,000 parts: larger parts, in whole MiB */
	if ((op->size + ps - 1) / ps > MAX_PARTS)
		ps = ((op->size / MAX_PARTS >> 20) + 1) << 20;
	op->part_size = ps;
	op->nparts = (int)((op->size + ps - 1) / ps);
	op->parts_left = op->nparts;
	op->etags = xcalloc((size_t)op->nparts, sizeof(*op->etags));
	for (int i = 0; i < op->nparts; i++) {
		struct strbuf q = STRBUF_INIT;
		struct s3req *r;
		long long off = (long long)i * ps;

		upload_query(op, &q, i + 1);
		r = s3req_new(op, "PUT", op->key, q.buf, part_done);
		r->part = i + 1;
		r->upload.fd = op->fd;
		r->upload.offset = off;
		r->upload.len = op->size - off < ps ? op->size - off : ps;
		s3req_queue(r);
		strbuf_release(&q);
	}
}

static void create_done(struct s3req *r)
{
	struct s3op *op = r->op;
	const struct strbuf *body = http_xfer_body(r->x);
	struct strbuf id = STRBUF_INIT;

	if (!s3req_ok(r)) {
		s3op_fail(op, r);
	} else if (!s3_xml_pick(body->buf, body->len, "UploadId", &id) ||
		   !id.len) {
		error_set(&op->err, EXIT_ENV,
			  "put 's3://%s/%s': no UploadId in the answer",
			  op->s3->cfg.bucket, op->key);
		op->result = -1;
	} else {
		op->upload_id = strbuf_detach(&id, NULL);
		queue_parts(op);
	}
	strbuf_release(&id);
	s3req_end(r);
}

static void queue_create(struct s3op *op)
{
	const char *pairs[] = {"uploads", NULL};
	struct strbuf q = STRBUF_INIT;

	s3_canonical_query(&q, pairs, 1);
	s3req_queue(s3req_new(op, "POST", op->key, q.buf, create_done));
	strbuf_release(&q);
}

/* Create-only: a HEAD first, so that a large file already there is not
 * sent again (the complete also says If-None-Match, for a race). */
static void exists_done(struct s3req *r)
{
	struct s3op *op = r->op;

	if (s3req_ok(r))
		op->result = S3_EXISTS;
	else if (http_xfer_status(r->x) == 404 && !*http_xfer_error(r->x))
		queue_create(op);
	else
		s3op_fail(op, r);
	s3req_end(r);
}

/* ------------------------------------------------------------------ */
/* Files */

static void start_put(struct s3op *op, const char *path, int create_only)
{
	struct stat st;
	struct s3req *r;

	op->path = xstrdup(path);
	op->create_only = create_only;
	op->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (op->fd < 0 || fstat(op->fd, &st) || !S_ISREG(st.st_mode)) {
		fail_now(op, "cannot read", path, op->fd < 0 ? errno : EISDIR);
		return;
	}
	op->size = st.st_size;
	if (op->size > op->s3->o.multipart_threshold) {
		if (create_only)
			s3req_queue(s3req_new(op, "HEAD", op->key, NULL,
					      exists_done));
		else
			queue_create(op);
		return;
	}
	r = s3req_new(op, "PUT", op->key, NULL, s3_put_done);
	r->upload.fd = op->fd;
	r->upload.len = op->size;
	if (create_only)
		strvec_push(&r->headers, "If-None-Match: *");
	s3req_queue(r);
}

static void get_done(struct s3req *r)
{
	struct s3op *op = r->op;

	if (!s3req_ok(r) || r->out_errno) {
		if (http_xfer_status(r->x) == 404 && !*http_xfer_error(r->x))
			op->result = S3_MISSING;
		else
			s3op_fail(op, r);
	} else if (fsync(op->fd) || rename(op->tmp, op->path)) {
		file_error(op, "cannot write", op->path, errno);
	} else {
		free(op->tmp); /* renamed: nothing to remove */
		op->tmp = NULL;
	}
	s3req_end(r);
}

static void start_get(struct s3op *op, const char *path)
{
	struct s3req *r;

	op->path = xstrdup(path);
	op->tmp = xstrfmt("%s.s3-XXXXXX", path);
	op->fd = mkostemp(op->tmp, O_CLOEXEC);
	if (op->fd < 0) {
		int e = errno;

		free(op->tmp);
		op->tmp = NULL;
		fail_now(op, "cannot write", path, e);
		return;
	}
	r = s3req_new(op, "GET", op->key, NULL, get_done);
	r->out_fd = op->fd;
	s3req_queue(r);
}

/* One file transfer alone: finish only cleans up (s3op_run frees). */
static void single_finish(struct s3op *op)
{
	cleanup(op);
}

int s3_put_file(struct s3 *s3, const char *key, const char *path,
		int create_only, struct error *err)
{
	char *full = s3_full_key(s3, key);
	struct s3op *op = s3op_new(s3, "put", full);

	free(full);
	op->finish = single_finish;
	start_put(op, path, create_only);
	return s3op_run(op, err);
}

int s3_get_file(struct s3 *s3, const char *key, const char *path,
		struct error *err)
{
	char *full = s3_full_key(s3, key);
	struct s3op *op = s3op_new(s3, "get", full);

	free(full);
	op->finish = single_finish;
	start_get(op, path);
	return s3op_run(op, err);
}

/* ------------------------------------------------------------------ */
/* Batches: the next transfer starts when a request may */

struct batch {
	struct s3_xfer *v;
	size_t n, next;
	int put;
	struct error first;
};

static void batch_finish(struct s3op *op)
{
	struct batch *b = op->arg;
	struct s3_xfer *x = &b->v[op->index];

	cleanup(op);
	x->result = op->result;
	if (op->result < 0 && !b->first.exit_code)
		error_set(&b->first, op->err.exit_code, "%s", op->err.msg.buf);
	s3op_free(op);
}

static int batch_more(struct s3 *s3, void *arg)
{
	struct batch *b = arg;
	struct s3_xfer *x;
	struct s3op *op;
	char *full;

	if (b->next >= b->n)
		return 0;
	x = &b->v[b->next];
	full = s3_full_key(s3, x->key);
	op = s3op_new(s3, b->put ? "put" : "get", full);
	free(full);
	op->finish = batch_finish;
	op->arg = b;
	op->index = b->next++;
	if (b->put)
		start_put(op, x->path, x->create_only);
	else
		start_get(op, x->path);
	return 1;
}

static int batch(struct s3 *s3, struct s3_xfer *v, size_t n, int put,
		 int parallel, struct error *err)
{
	struct batch b = {.v = v, .n = n, .put = put};
	int ret;

	error_init(&b.first);
	for (size_t i = 0; i < n; i++)
		v[i].result = -1;
	s3->more = batch_more;
	s3->more_arg = &b;
	ret = s3_run(s3, parallel, err);
	s3->more = NULL;
	if (!ret && b.first.exit_code)
		ret = error_set(err, b.first.exit_code, "%s", b.first.msg.buf);
	error_release(&b.first);
	return ret;
}

int s3_batch_put_files(struct s3 *s3, struct s3_xfer *v, size_t n, int parallel,
		       struct error *err)
{
	return batch(s3, v, n, 1, parallel, err);
}

int s3_batch_get_files(struct s3 *s3, struct s3_xfer *v, size_t n, int parallel,
		       struct error *err)
{
	return batch(s3, v, n, 0, parallel, err);
}

/* ------------------------------------------------------------------ */
/* Listing, page after page */

static void list_request(struct s3op *op, const char *token);

static void list_done(struct s3req *r)
{
	struct s3op *op = r->op;
	const struct strbuf *body = http_xfer_body(r->x);
	struct s3_page page;
	size_t skip = strlen(op->s3->cfg.prefix);

	if (!s3req_ok(r)) {
		s3op_fail(op, r);
		s3req_end(r);
		return;
	}
	s3_page_init(&page);
	if (s3_parse_list(body->buf, body->len, &page)) {
		error_set(&op->err, EXIT_ENV,
			  "list 's3://%s/%s': not a ListObjectsV2 answer",
			  op->s3->cfg.bucket, op->key);
		op->result = -1;
	} else {
		for (size_t i = 0; i < page.keys.nr; i++) {
			const char *k = page.keys.v[i];

			if (strncmp(k, op->s3->cfg.prefix, skip))
				continue; /* not ours: S3 would not */
			strvec_push(op->keys, k + skip);
			if (op->sizes)
				strvec_push(op->sizes, page.sizes.v[i]);
		}
		if (page.truncated)
			list_request(op, page.next_token.buf);
	}
	s3_page_release(&page);
	s3req_end(r);
}

static void list_request(struct s3op *op, const char *token)
{
	const char *q[] = {"list-type",		 "2",  "prefix", op->key,
			   "continuation-token", token};
	struct strbuf query = STRBUF_INIT;

	s3_canonical_query(&query, q, token ? 3 : 2);
	s3req_queue(s3req_new(op, "GET", NULL, query.buf, list_done));
	strbuf_release(&query);
}

int s3_list(struct s3 *s3, const char *prefix, struct strvec *keys,
	    struct strvec *sizes, struct error *err)
{
	char *full = s3_full_key(s3, prefix ? prefix : "");
	struct s3op *op = s3op_new(s3, "list", full);

	op->keys = keys;
	op->sizes = sizes;
	list_request(op, NULL);
	free(full);
	return s3op_run(op, err);
}
