/* What the files of the S3 client share: the pure parsers and encoders
 * (remote/s3parse.c; unit-tested and fuzzed), the configuration
 * (remote/s3cfg.c), and the request engine (remote/s3.c) that the
 * transfers (remote/s3xfer.c) run on. */
#ifndef REMOTE_S3INT_H
#define REMOTE_S3INT_H

#include <stddef.h>

#include "executors/http.h"
#include "remote/s3.h"
#include "util/error.h"
#include "util/strbuf.h"
#include "util/strvec.h"

/* ------------------------------------------------------------------ */
/* Pure parts (remote/s3parse.c) */

/* s3://bucket[/prefix] -> bucket, prefix ("" or ending in '/'). */
int s3_parse_url(const char *url, char **bucket, char **prefix,
		 struct error *err);

/* Percent-encode as SigV4 wants: all but A-Za-z0-9-_.~ with uppercase
 * hex; with keep_slash, '/' stays (an object key in a path). */
void s3_encode(struct strbuf *out, const char *s, int keep_slash);

/* The canonical query of n name/value pairs (pairs[2i], pairs[2i+1]; a
 * NULL value is written "name="): encoded, sorted by name then value,
 * joined by '&'. curl 7.88 signs the query as it is sent. */
void s3_canonical_query(struct strbuf *out, const char *const *pairs, size_t n);

/* The text of the first <name>...</name> in xml, entities decoded, into
 * out (reset first). Returns 1 when found, else 0. */
int s3_xml_pick(const char *xml, size_t len, const char *name,
		struct strbuf *out);

/* XML-escape s (&, <, >, ", ') onto out. */
void s3_xml_escape(struct strbuf *out, const char *s);

/* One page of a ListObjectsV2 answer. */
struct s3_page {
	struct strvec keys, sizes;
	int truncated;
	struct strbuf next_token; /* NextContinuationToken; "" when none */
};
void s3_page_init(struct s3_page *p);
void s3_page_release(struct s3_page *p);
/* Returns 0, or -1 when xml is not a ListBucketResult (a truncated page
 * without a token counts as bad: it would loop). */
int s3_parse_list(const char *xml, size_t len, struct s3_page *p);

/* INI files (~/.aws/credentials, ~/.aws/config): the value of key in
 * [section] into out. Indented lines (nested settings) are skipped; '#'
 * and ';' start comments. Returns 1 when found, else 0. */
int s3_ini_get(const char *text, size_t len, const char *section,
	       const char *key, struct strbuf *out);

/* Replace every occurrence of secret (when 4 bytes or longer) in sb by
 * "[redacted]". */
void s3_redact(struct strbuf *sb, const char *secret);

/* ------------------------------------------------------------------ */
/* Configuration (remote/s3cfg.c) */

struct s3_config {
	char *bucket, *prefix;
	char *base_url; /* "http://127.0.0.1:7070" (path style), or
			 * "https://BUCKET.s3.REGION.amazonaws.com" */
	char *region;
	int path_style;
	char *key_id, *secret, *token; /* secret and token: never shown */
};

int s3_config_load(struct s3_config *c, const char *url,
		   const struct s3_opts *o, struct error *err);
void s3_config_release(struct s3_config *c);

/* ------------------------------------------------------------------ */
/* The request engine (remote/s3.c) */

struct s3op;
struct s3req;
typedef void s3req_fn(struct s3req *r);

/* One S3 request, retried until it succeeds, fails for good, or its
 * attempts run out; then done is called with the last answer in x. */
struct s3req {
	struct s3op *op;
	const char *method;
	char *key;   /* the whole object key; NULL: the bucket */
	char *query; /* canonical; NULL: none */
	struct strvec headers;
	char *body; /* owned; NULL: none (an empty body) */
	size_t body_len;
	struct http_upload upload; /* fd -1: none */
	int out_fd;		   /* a 2xx body is written here; -1: kept */
	int out_errno;		   /* writing it failed */
	int part;		   /* multipart: the part number */
	int attempt;
	long long not_before; /* a retry's time */
	struct http_xfer *x;
	s3req_fn *done;
	struct s3req *next;
	struct s3req *fprev, *fnext; /* in flight */
};

/* A user-level operation: one or more requests, one result. */
struct s3op {
	struct s3 *s3;
	const char *what; /* "put", "get"... */
	char *key;	  /* the whole object key, for messages */
	int result;	  /* S3_* or -1 */
	struct error err;
	int pending; /* requests not ended */
	int ended;
	void (*finish)(struct s3op *op); /* once, when it has ended */
	void *arg;
	size_t index; /* in a batch */
	/* transfer state (remote/s3xfer.c) */
	int fd;
	char *path, *tmp;
	long long size, part_size;
	int create_only, nparts, parts_left, failed;
	int listed; /* its upload is to be aborted */
	char *upload_id;
	char **etags;
	struct s3_stat *st;
	struct strvec *keys, *sizes;
	char *list_prefix;
};

struct s3 {
	struct s3_config cfg;
	struct http *h;
	char *sigv4, *token_hdr;
	struct s3_opts o;
	struct s3req *ready, *ready_tail; /* to start now, in order */
	struct s3req *waiting;		  /* retries, each at its time */
	struct s3req *flying;		  /* in flight */
	int in_flight, limit;
	/* a batch's next operations, started when nothing is ready */
	int (*more)(struct s3 *s3, void *arg);
	void *more_arg;
	long requests;
	unsigned seed;
};

struct s3op *s3op_new(struct s3 *s3, const char *what, const char *key);
void s3op_free(struct s3op *op);
/* A request of op (key: the whole key, or NULL), queued to start. */
struct s3req *s3req_new(struct s3op *op, const char *method, const char *key,
			const char *query, s3req_fn *done);
void s3req_queue(struct s3req *r);
/* Frees r and its answer; the op ends when its last request has and
 * finish is then called. */
void s3req_end(struct s3req *r);
/* Set op's error from r's answer: op, url, status, S3's Code and
 * Message (or the transport error). Returns -1. */
int s3op_fail(struct s3op *op, struct s3req *r);
/* Run until every queued request (and every batch operation) has ended.
 * Returns 0, or -1 with err (a signal, or poll failing). */
int s3_run(struct s3 *s3, int limit, struct error *err);
/* Run op (queued) to its end and free it: its result, or -1 with its
 * error in err. */
int s3op_run(struct s3op *op, struct error *err);
/* The object key for a key under the url's prefix (caller frees). */
char *s3_full_key(const struct s3 *s3, const char *key);

/* The answer came and is a 2xx. */
int s3req_ok(struct s3req *r);
/* A PUT's end: S3_OK, S3_EXISTS on 412, or the failure. */
void s3_put_done(struct s3req *r);

#endif
