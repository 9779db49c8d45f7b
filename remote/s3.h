/* An S3 client for `pipe push/pull` (issue #16): objects under
 * s3://bucket/prefix put, got, listed and deleted over executors/http.h,
 * many at once on one event loop, large files in parallel multipart
 * uploads, with retries; secrets never appear in a message. */
#ifndef REMOTE_S3_H
#define REMOTE_S3_H

#include <stddef.h>

#include "util/error.h"
#include "util/strvec.h"

struct s3;

/* What the environment does not say; zero fields take the defaults. */
struct s3_opts {
	const char *endpoint; /* --endpoint; NULL: AWS_ENDPOINT_URL_S3,
			       * AWS_ENDPOINT_URL, else AWS itself */
	const char *region;   /* NULL: AWS_REGION, AWS_DEFAULT_REGION, the
			       * profile's region, else us-east-1 */
	const char *profile;  /* NULL: AWS_PROFILE, else "default" */
	long long part_size;  /* multipart part; 0: 8 MiB */
	long long multipart_threshold; /* larger files go in parts; 0: 8 MiB */
	int parallel;		 /* requests in flight for one call; 0: 4 */
	int attempts;		 /* per request, the first included; 0: 5 */
	long backoff_ms;	 /* the first retry's wait (doubled, jittered,
				  * at most 20 s); 0: 200 */
	long connect_timeout_ms; /* 0: 10 s */
};

/* Results of a transfer, besides failure. */
enum {
	S3_OK = 0,
	S3_EXISTS = 1,	/* a create-only put found the key there (412) */
	S3_MISSING = 2, /* head or get: no such key (404) */
};

/* What s3_head learns. */
struct s3_stat {
	long long size;
	char etag[80]; /* without the quotes */
};

/* One transfer of a batch: key (under the url's prefix) and local file. */
struct s3_xfer {
	const char *key;
	const char *path;
	int create_only; /* put: If-None-Match: *, S3_EXISTS when there */
	int result;	 /* out: S3_OK, S3_EXISTS, S3_MISSING, or -1 */
};

/* Open s3://bucket[/prefix] (o may be NULL). Reads the endpoint, region
 * and credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN; else the profile in AWS_SHARED_CREDENTIALS_FILE or
 * ~/.aws/credentials and AWS_CONFIG_FILE or ~/.aws/config). Sends
 * nothing. Fails with EXIT_USAGE on a bad url, EXIT_ENV without
 * credentials. */
int s3_open(struct s3 **out, const char *url, const struct s3_opts *o,
	    struct error *err);
/* NULL is fine; wipes the secrets. */
void s3_close(struct s3 *s3);

/* Each operation returns S3_* (>= 0) or -1 with err set: the operation,
 * the object's url, the HTTP status and S3's Code and Message ("put
 * 's3://b/p/k': HTTP 403 SignatureDoesNotMatch: ..."); EXIT_ENV for a
 * server that cannot be reached or refuses, EXIT_INTERRUPTED on a
 * signal. */
int s3_head(struct s3 *s3, const char *key, struct s3_stat *st,
	    struct error *err);
/* Files over the threshold go in parts (aborted on failure: no upload is
 * left behind). create_only: If-None-Match: *, S3_EXISTS when the key is
 * there already (for refs and content-addressed objects). */
int s3_put_file(struct s3 *s3, const char *key, const char *path,
		int create_only, struct error *err);
int s3_put_mem(struct s3 *s3, const char *key, const void *data, size_t len,
	       int create_only, struct error *err);
/* Into a temp file beside path, renamed over path once complete: an
 * interrupted download never leaves a partial file under path. */
int s3_get_file(struct s3 *s3, const char *key, const char *path,
		struct error *err);
/* Every key under prefix (relative to the url's prefix), in S3's order,
 * appended to keys; sizes (may be NULL) gets one "SIZE" per key. */
int s3_list(struct s3 *s3, const char *prefix, struct strvec *keys,
	    struct strvec *sizes, struct error *err);
/* Deleting a missing key is not an error (S3 answers 204 either way). */
int s3_delete(struct s3 *s3, const char *key, struct error *err);

/* Many transfers, at most parallel requests at once (0: the opts'), on
 * one event loop. Each v[i].result is set; returns 0 when none failed,
 * else -1 with the first failure in err (the others run to their end). */
int s3_batch_put_files(struct s3 *s3, struct s3_xfer *v, size_t n, int parallel,
		       struct error *err);
int s3_batch_get_files(struct s3 *s3, struct s3_xfer *v, size_t n, int parallel,
		       struct error *err);

/* Requests sent so far, retries included (for tests and reports). */
long s3_requests(const struct s3 *s3);

#endif
