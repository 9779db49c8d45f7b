/* HTTP for the container executors: requests to a daemon over a unix
 * socket (Docker) or over TLS (Kubernetes), one at a time or many at once,
 * their bodies collected or streamed. The only door to libcurl. */
#ifndef EXECUTORS_HTTP_H
#define EXECUTORS_HTTP_H

#include <stddef.h>

#include "util/error.h"
#include "util/strbuf.h"

struct http;	  /* a target, its connections and requests in flight */
struct http_xfer; /* one request */

/* Where requests go and how. Strings are copied by http_new(). */
struct http_target {
	const char *base_url;	 /* "http://localhost", "https://h:6443" */
	const char *unix_socket; /* NULL: TCP to base_url's host */
	/* TLS (https:// only); the peer is always verified. PEM text. */
	const char *ca_pem;		/* NULL: the system's CAs */
	const char *cert_pem, *key_pem; /* client certificate; NULL: none */
	const char *bearer_token;	/* "Authorization: Bearer …"; never
					 * shown in a message */
	long connect_timeout_ms;	/* 0: 10 s */
	int insecure; /* 1: the peer is not verified (a kubeconfig's
		       * insecure-skip-tls-verify; the caller warns) */
	/* AWS Signature V4 (S3): "aws:amz:REGION:SERVICE" for curl, with
	 * the access key id and secret key; never shown in a message. The
	 * caller gives the query in canonical form (curl 7.88 signs it as
	 * it is). NULL: not signed. */
	const char *aws_sigv4, *aws_key, *aws_secret;
};

/* A request body read from a file: len bytes of fd from offset, by
 * pread (so that many uploads can share one fd; a retry starts over). */
struct http_upload {
	int fd;
	long long offset, len;
};

struct http_request {
	const char *method;	  /* "GET", "POST", "PUT", "DELETE"... */
	const char *path;	  /* appended to base_url; already escaped */
	const char *content_type; /* of the body; NULL: none */
	const char *body;	  /* NULL: empty */
	size_t body_len;
	char *const *headers; /* extra "Name: value", NULL-terminated */
	long timeout_ms;      /* the whole request; 0: none */
	/* The body from a file instead of body/body_len; NULL: none. The
	 * struct is copied; the fd must stay open until the request ends. */
	const struct http_upload *upload;
	/* Abort when less than 1 byte/s moves for this long; 0: never. */
	long stall_ms;
	/* Streaming: each piece of a 2xx response's body as it arrives
	 * (then not kept in the body; other statuses' bodies are kept). It
	 * must not start or free requests. */
	void (*on_data)(void *arg, const char *data, size_t len);
	void *data_arg;
	/* Called (with data_arg) once the response's headers are in, before
	 * done, from http_poll(): it may start requests. NULL: not called. */
	void (*on_response)(void *arg, struct http_xfer *x);
};

/* Called from http_poll() when a request has ended (response complete or
 * transport error). It may start new requests and free x. */
typedef void http_done_fn(void *arg, struct http_xfer *x);

int http_new(struct http **out, const struct http_target *t, struct error *err);
/* Aborts and frees requests still in flight; NULL is fine. */
void http_free(struct http *h);

/* Start a request; done (may be NULL) is called when it ends. The request
 * is copied. The xfer is the caller's: free it with http_xfer_free(), at
 * the latest from done. */
struct http_xfer *http_start(struct http *h, const struct http_request *req,
			     http_done_fn *done, void *arg);

/* Abort (if still running) and free; NULL is fine. Never calls done. */
void http_xfer_free(struct http_xfer *x);

/* After done (or on_response): the HTTP status (0 when no response came), the
 * body (unless streamed), a response header's value (case-insensitive name;
 * NULL when absent), and the transport error ("" when none), e.g. "couldn't
 * connect to server: No such file or directory". */
int http_xfer_done(const struct http_xfer *x);
long http_xfer_status(const struct http_xfer *x);
const struct strbuf *http_xfer_body(const struct http_xfer *x);
const char *http_xfer_header(const struct http_xfer *x, const char *name);
const char *http_xfer_error(const struct http_xfer *x);

/* Run the requests in flight for up to timeout_ms (-1: until one ends),
 * calling done for those that end. Returns 1 when a signal interrupted the
 * wait, 0 otherwise (something ended, or the time is up), -1 on error. */
int http_poll(struct http *h, int timeout_ms, struct error *err);

/* Number of requests in flight. */
int http_running(struct http *h);

/* Run one request to its end (other requests in flight progress too).
 * Returns 0 with the xfer in *out (the caller frees it), or -1 when a
 * signal interrupted it (message "interrupted"). A transport error or an
 * HTTP error status is not a failure here: look at the xfer. */
int http_run(struct http *h, const struct http_request *req,
	     struct http_xfer **out, struct error *err);

/* Percent-encode s for a URL query or path segment (RFC 3986 unreserved
 * characters stay). */
void http_escape(struct strbuf *out, const char *s);

#endif
