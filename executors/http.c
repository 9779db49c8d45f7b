/* HTTP over libcurl's multi interface, driven by our own poll() (so that a
 * signal interrupts a wait, which curl_multi_poll() would swallow): many
 * requests at once on one connection pool, bodies collected or streamed.
 * Its sockets and timer are also registered with the executors' one loop
 * (executors/loop.c), so that requests progress while the engine waits on
 * every executor at once. */
#include "executors/http.h"
#include "executors/loop.h"
#include "util/dl.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

/* the typecheck macros would hide the calls through pointers below */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#ifndef PIPE_LIBCURL
#define PIPE_LIBCURL "libcurl.so.4"
#endif

/* libcurl is loaded when first needed, not when pipe starts: `pipe status`
 * needs neither it nor the dozens of libraries it pulls in, and loading
 * them costs more than the whole no-op check. Every function used here
 * is in this list (one missing fails the link: pipe is not linked with
 * the library). PIPE_LIBCURL is the soname the build found. */
#define CURL_API(X)                                                            \
	X(curl_easy_cleanup)                                                   \
	X(curl_easy_getinfo)                                                   \
	X(curl_easy_init)                                                      \
	X(curl_easy_setopt)                                                    \
	X(curl_easy_strerror)                                                  \
	X(curl_global_init)                                                    \
	X(curl_multi_add_handle)                                               \
	X(curl_multi_cleanup)                                                  \
	X(curl_multi_info_read)                                                \
	X(curl_multi_init)                                                     \
	X(curl_multi_remove_handle)                                            \
	X(curl_multi_setopt)                                                   \
	X(curl_multi_socket_action)                                            \
	X(curl_slist_append)                                                   \
	X(curl_slist_free_all)

#define X(f) static __typeof__(f) *p_##f;
CURL_API(X)
#undef X

static int load_libcurl(struct error *err)
{
	static int loaded;
	static const struct dl_fn fns[] = {
#define X(f) {#f, &p_##f},
		CURL_API(X)
#undef X
	};

	return dl_load(PIPE_LIBCURL, "Debian's libcurl4", fns,
		       sizeof(fns) / sizeof(fns[0]), &loaded, err);
}

/* From here on, the names call through the pointers. */
#define curl_easy_cleanup (*p_curl_easy_cleanup)
#undef curl_easy_getinfo
#define curl_easy_getinfo (*p_curl_easy_getinfo)
#define curl_easy_init (*p_curl_easy_init)
#undef curl_easy_setopt
#define curl_easy_setopt (*p_curl_easy_setopt)
#define curl_easy_strerror (*p_curl_easy_strerror)
#define curl_global_init (*p_curl_global_init)
#define curl_multi_add_handle (*p_curl_multi_add_handle)
#define curl_multi_cleanup (*p_curl_multi_cleanup)
#define curl_multi_info_read (*p_curl_multi_info_read)
#define curl_multi_init (*p_curl_multi_init)
#define curl_multi_remove_handle (*p_curl_multi_remove_handle)
#undef curl_multi_setopt
#define curl_multi_setopt (*p_curl_multi_setopt)
#define curl_multi_socket_action (*p_curl_multi_socket_action)
#define curl_slist_append (*p_curl_slist_append)
#define curl_slist_free_all (*p_curl_slist_free_all)

#define DEFAULT_CONNECT_MS 10000

struct sock {
	curl_socket_t fd;
	int what; /* CURL_POLL_IN, _OUT, _INOUT */
};

struct http {
	CURLM *multi;
	char *base_url, *unix_socket;
	char *ca_pem, *cert_pem, *key_pem, *auth;
	char *aws_sigv4, *aws_key, *aws_secret;
	long connect_timeout_ms;
	int insecure;
	struct sock *socks;
	size_t nr_socks, alloc_socks;
	struct pollfd *pfd;
	size_t alloc_pfd;
	long long timer_at;	 /* when curl wants a timeout call; -1: never */
	struct loop_timer timer; /* the same, in the executors' loop */
	int responses;		 /* xfers whose on_response is due */
	struct http_xfer *first; /* every xfer not yet freed */
	int in_flight;
};

struct http_xfer {
	struct http *h;
	struct http_xfer *prev, *next;
	CURL *easy;
	struct curl_slist *hdrs;
	char *url, *body;
	struct http_upload upload; /* fd -1: none */
	long long sent;		   /* of upload, this attempt */
	void (*on_data)(void *arg, const char *data, size_t len);
	void *data_arg;
	void (*on_response)(void *arg, struct http_xfer *x);
	http_done_fn *done_fn;
	void *done_arg;
	struct strbuf resp_body, resp_headers, scratch;
	char errbuf[CURL_ERROR_SIZE];
	char *error;
	long status;
	unsigned added : 1, done : 1;
	unsigned responded : 1, told : 1; /* headers in; on_response called */
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* ------------------------------------------------------------------ */
/* curl's callbacks: which sockets to watch, and when to call back */

static struct sock *find_sock(struct http *h, curl_socket_t fd)
{
	for (size_t i = 0; i < h->nr_socks; i++)
		if (h->socks[i].fd == fd)
			return &h->socks[i];
	return NULL;
}

static short poll_events(int what)
{
	short ev = 0;

	if (what & CURL_POLL_IN)
		ev |= POLLIN;
	if (what & CURL_POLL_OUT)
		ev |= POLLOUT;
	return ev;
}

static void on_loop_fd(void *arg, int fd, short revents);
static void on_loop_timer(void *arg);

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
		     void *socketp)
{
	struct http *h = userp;
	struct sock *s = find_sock(h, fd);

	(void)easy;
	(void)socketp;
	if (what == CURL_POLL_REMOVE) {
		if (s)
			*s = h->socks[--h->nr_socks];
		loop_fd_unwatch(fd);
		return 0;
	}
	if (!s) {
		ALLOC_GROW(h->socks, h->nr_socks + 1, h->alloc_socks);
		s = &h->socks[h->nr_socks++];
		s->fd = fd;
	}
	s->what = what;
	loop_fd_watch(fd, poll_events(what), on_loop_fd, h);
	return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct http *h = userp;

	(void)multi;
	h->timer_at = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	if (h->timer_at < 0)
		loop_timer_disarm(&h->timer);
	else
		loop_timer_arm(&h->timer, h->timer_at);
	return 0;
}

/* An error status's body is kept, not streamed: it is a message. */
static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct http_xfer *x = arg;
	long status = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (x->on_data && status >= 200 && status < 300)
		x->on_data(x->data_arg, data, size * n);
	else
		strbuf_add(&x->resp_body, data, size * n);
	return size * n;
}

/* Only the headers of the last response are kept (after a 100 Continue
 * or a redirect, a new status line starts over). */
static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct http_xfer *x = arg;

	long status = 0;

	if (size * n >= 5 && !strncmp(data, "HTTP/", 5))
		strbuf_reset(&x->resp_headers);
	strbuf_add(&x->resp_headers, data, size * n);
	/* the blank line that ends a final (not 1xx) response's headers */
	if (strspn(data, "\r\n") == size * n && x->on_response &&
	    !x->responded) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200) {
			x->status = status;
			x->responded = 1;
			x->h->responses++;
		}
	}
	return size * n;
}

/* ------------------------------------------------------------------ */
/* The client */

int http_new(struct http **out, const struct http_target *t, struct error *err)
{
	static int initialized;
	struct http *h;

	if (load_libcurl(err))
		return -1;
	if (!initialized && curl_global_init(CURL_GLOBAL_DEFAULT))
		return error_set(err, EXIT_ENV, "cannot initialize libcurl");
	initialized = 1;
	h = xcalloc(1, sizeof(*h));
	h->multi = curl_multi_init();
	if (!h->multi) {
		free(h);
		return error_set(err, EXIT_ENV, "cannot initialize libcurl");
	}
	h->base_url = xstrdup(t->base_url ? t->base_url : "http://localhost");
	h->unix_socket = dup_or_null(t->unix_socket);
	h->ca_pem = dup_or_null(t->ca_pem);
	h->cert_pem = dup_or_null(t->cert_pem);
	h->key_pem = dup_or_null(t->key_pem);
	h->insecure = t->insecure;
	h->aws_sigv4 = dup_or_null(t->aws_sigv4);
	h->aws_key = dup_or_null(t->aws_key);
	h->aws_secret = dup_or_null(t->aws_secret);
	if (t->bearer_token) {
		struct strbuf sb = STRBUF_INIT;

		strbuf_addf(&sb, "Authorization: Bearer %s", t->bearer_token);
		h->auth = strbuf_detach(&sb, NULL);
	}
	h->connect_timeout_ms = t->connect_timeout_ms > 0
					? t->connect_timeout_ms
					: DEFAULT_CONNECT_MS;
	h->timer_at = -1;
	loop_timer_init(&h->timer, on_loop_timer, h);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	*out = h;
	return 0;
}

static void free_secret(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}

void http_free(struct http *h)
{
	if (!h)
		return;
	while (h->first)
		http_xfer_free(h->first);
	curl_multi_cleanup(h->multi);
	for (size_t i = 0; i < h->nr_socks; i++)
		loop_fd_unwatch(h->socks[i].fd);
	loop_timer_disarm(&h->timer);
	free(h->base_url);
	free(h->unix_socket);
	free(h->ca_pem);
	free_secret(h->cert_pem);
	free_secret(h->key_pem);
	free_secret(h->auth);
	free(h->aws_sigv4);
	free_secret(h->aws_key);
	free_secret(h->aws_secret);
	free(h->socks);
	free(h->pfd);
	free(h);
}

int http_running(struct http *h)
{
	return h->in_flight;
}

/* ------------------------------------------------------------------ */
/* Requests */

static void set_blob(CURL *easy, CURLoption opt, char *pem)
{
	struct curl_blob blob = {
		.data = pem, .len = strlen(pem), .flags = CURL_BLOB_NOCOPY};

	curl_easy_setopt(easy, opt, &blob);
}

static void set_target(struct http_xfer *x)
{
	struct http *h = x->h;
	CURL *e = x->easy;

	if (h->unix_socket)
		curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, h->unix_socket);
	if (h->ca_pem)
		set_blob(e, CURLOPT_CAINFO_BLOB, h->ca_pem);
	if (h->cert_pem)
		set_blob(e, CURLOPT_SSLCERT_BLOB, h->cert_pem);
	if (h->key_pem)
		set_blob(e, CURLOPT_SSLKEY_BLOB, h->key_pem);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, h->insecure ? 0L : 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, h->insecure ? 0L : 2L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
	if (h->auth)
		x->hdrs = curl_slist_append(x->hdrs, h->auth);
	if (h->aws_sigv4) {
		curl_easy_setopt(e, CURLOPT_AWS_SIGV4, h->aws_sigv4);
		curl_easy_setopt(e, CURLOPT_USERNAME, h->aws_key);
		curl_easy_setopt(e, CURLOPT_PASSWORD, h->aws_secret);
	}
}

/* An upload's body, read from its file at the offset reached. */
static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
	struct http_xfer *x = arg;
	long long left = x->upload.len - x->sent;
	size_t want = size * n;
	ssize_t got;

	if (left <= 0)
		return 0;
	if ((long long)want > left)
		want = (size_t)left;
	do
		got = pread(x->upload.fd, buf, want,
			    (off_t)(x->upload.offset + x->sent));
	while (got < 0 && errno == EINTR);
	if (got <= 0) /* the file shrank or cannot be read */
		return CURL_READFUNC_ABORT;
	x->sent += got;
	return (size_t)got;
}

/* curl rewinds the body when it must send it again (a redirect, a
 * connection that closed before the request went out). */
static int on_seek(void *arg, curl_off_t offset, int origin)
{
	struct http_xfer *x = arg;

	if (origin != SEEK_SET || offset < 0 || offset > x->upload.len)
		return CURL_SEEKFUNC_FAIL;
	x->sent = offset;
	return CURL_SEEKFUNC_OK;
}

static void set_upload(struct http_xfer *x, const struct http_request *req)
{
	CURL *e = x->easy;

	x->upload = *req->upload;
	curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(e, CURLOPT_READDATA, x);
	curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
	curl_easy_setopt(e, CURLOPT_SEEKDATA, x);
	curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
			 (curl_off_t)x->upload.len);
}

static void set_method(struct http_xfer *x, const struct http_request *req)
{
	const char *m = req->method ? req->method : "GET";
	CURL *e = x->easy;

	if (req->upload) {
		set_upload(x, req);
		if (strcmp(m, "PUT"))
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
		return;
	}
	if (!strcmp(m, "GET") && !req->body) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
		return;
	}
	if (!strcmp(m, "HEAD")) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
		return;
	}
	if (req->body || strcmp(m, "DELETE")) {
		x->body = xmemdupz(req->body ? req->body : "", req->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)req->body_len);
	}
	if (strcmp(m, "POST"))
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
}

static void set_headers(struct http_xfer *x, const struct http_request *req)
{
	/* no "Expect: 100-continue": a daemon that does not answer it
	 * would cost a second per request */
	x->hdrs = curl_slist_append(x->hdrs, "Expect:");
	if (req->content_type) {
		strbuf_reset(&x->scratch);
		strbuf_addf(&x->scratch, "Content-Type: %s", req->content_type);
		x->hdrs = curl_slist_append(x->hdrs, x->scratch.buf);
	}
	for (char *const *p = req->headers; p && *p; p++)
		x->hdrs = curl_slist_append(x->hdrs, *p);
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
}

static struct http_xfer *xfer_new(struct http *h,
				  const struct http_request *req)
{
	struct http_xfer *x = xcalloc(1, sizeof(*x));
	struct strbuf url = STRBUF_INIT;

	x->h = h;
	x->upload.fd = -1;
	strbuf_init(&x->resp_body, 0);
	strbuf_init(&x->resp_headers, 0);
	strbuf_init(&x->scratch, 0);
	x->easy = curl_easy_init();
	if (!x->easy)
		abort(); /* out of memory */
	strbuf_addf(&url, "%s%s", h->base_url, req->path ? req->path : "/");
	x->url = strbuf_detach(&url, NULL);
	x->on_data = req->on_data;
	x->data_arg = req->data_arg;
	x->on_response = req->on_response;
	curl_easy_setopt(x->easy, CURLOPT_URL, x->url);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	if (req->timeout_ms > 0)
		curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, req->timeout_ms);
	if (req->stall_ms > 0) {
		long secs = (req->stall_ms + 999) / 1000;

		curl_easy_setopt(x->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(x->easy, CURLOPT_LOW_SPEED_TIME, secs);
	}
	set_target(x);
	set_method(x, req);
	set_headers(x, req);
	return x;
}

struct http_xfer *http_start(struct http *h, const struct http_request *req,
			     http_done_fn *done, void *arg)
{
	struct http_xfer *x = xfer_new(h, req);

	x->done_fn = done;
	x->done_arg = arg;
	x->next = h->first;
	if (h->first)
		h->first->prev = x;
	h->first = x;
	if (curl_multi_add_handle(h->multi, x->easy) == CURLM_OK) {
		x->added = 1;
		h->in_flight++;
	} else {
		/* reported as a transport error on the next poll */
		x->error = xstrdup("cannot start the request");
		h->timer_at = now_ms();
		loop_timer_arm(&h->timer, h->timer_at);
	}
	return x;
}

static void unadd(struct http_xfer *x)
{
	if (!x->added)
		return;
	curl_multi_remove_handle(x->h->multi, x->easy);
	x->added = 0;
	x->h->in_flight--;
}

void http_xfer_free(struct http_xfer *x)
{
	if (!x)
		return;
	unadd(x);
	if (x->prev)
		x->prev->next = x->next;
	else
		x->h->first = x->next;
	if (x->next)
		x->next->prev = x->prev;
	curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->hdrs);
	free(x->url);
	free(x->body);
	free(x->error);
	strbuf_release(&x->resp_body);
	strbuf_release(&x->resp_headers);
	strbuf_release(&x->scratch);
	free(x);
}

int http_xfer_done(const struct http_xfer *x)
{
	return x->done;
}

long http_xfer_status(const struct http_xfer *x)
{
	return x->status;
}

const struct strbuf *http_xfer_body(const struct http_xfer *x)
{
	return &x->resp_body;
}

const char *http_xfer_error(const struct http_xfer *x)
{
	return x->error ? x->error : "";
}

const char *http_xfer_header(const struct http_xfer *x, const char *name)
{
	struct http_xfer *mx = (struct http_xfer *)x;
	const char *p = x->resp_headers.buf;
	size_t nlen = strlen(name);

	while (*p) {
		size_t len = strcspn(p, "\r\n");

		if (len > nlen && p[nlen] == ':' &&
		    !strncasecmp(p, name, nlen)) {
			const char *v = p + nlen + 1;
			const char *end = p + len;

			v += strspn(v, " \t");
			while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
				end--;
			strbuf_reset(&mx->scratch);
			strbuf_add(&mx->scratch, v, (size_t)(end - v));
			return mx->scratch.buf;
		}
		p += len;
		p += strspn(p, "\r\n");
	}
	return NULL;
}

/* The transport error in words: the system's reason when the connection
 * was refused or the socket missing, else curl's. */
static char *describe_error(struct http_xfer *x, CURLcode res)
{
	struct strbuf sb = STRBUF_INIT;
	long os_errno = 0;

	curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os_errno);
	if (res == CURLE_COULDNT_CONNECT && os_errno)
		strbuf_addstr(&sb, strerror((int)os_errno));
	else if (x->errbuf[0])
		strbuf_addstr(&sb, x->errbuf);
	else
		strbuf_addstr(&sb, curl_easy_strerror(res));
	return strbuf_detach(&sb, NULL);
}

/* Hand every ended request to its done callback; returns how many. */
static int reap(struct http *h)
{
	CURLMsg *msg;
	int left, n = 0;

	while ((msg = curl_multi_info_read(h->multi, &left))) {
		struct http_xfer *x;
		char *priv = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		x = (struct http_xfer *)(void *)priv;
		if (msg->data.result != CURLE_OK)
			x->error = describe_error(x, msg->data.result);
		/* also when the transfer broke after the response began (a
		 * stream cut): the status that came, 0 when none did */
		if (!x->status)
			curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE,
					  &x->status);
		unadd(x);
		x->done = 1;
		n++;
		if (x->done_fn)
			x->done_fn(x->done_arg, x);
	}
	return n;
}

/* Requests that could not even be added end at once. */
static int reap_unadded(struct http *h)
{
	int n = 0;

	for (struct http_xfer *x = h->first, *next; x; x = next) {
		next = x->next;
		if (x->added || x->done)
			continue;
		x->done = 1;
		n++;
		if (x->done_fn) {
			x->done_fn(x->done_arg, x);
			next = h->first; /* the list may have changed */
		}
	}
	return n;
}

/* on_response, outside curl's callbacks (it may start requests). */
static int tell_responses(struct http *h)
{
	int n = 0;

	while (h->responses > 0) {
		struct http_xfer *x = h->first;

		while (x && !(x->responded && !x->told))
			x = x->next;
		if (!x)
			break;
		x->told = 1;
		h->responses--;
		n++;
		x->on_response(x->data_arg, x);
	}
	h->responses = 0;
	return n;
}

static int poll_timeout(struct http *h, long long now, long long until)
{
	long long t = until < 0 ? -1 : until - now;

	if (h->timer_at >= 0) {
		long long due = h->timer_at > now ? h->timer_at - now : 0;

		if (t < 0 || due < t)
			t = due;
	}
	if (t < -1)
		t = 0;
	return t > INT_MAX ? INT_MAX : (int)t;
}

static void act(struct http *h, size_t n)
{
	int running;

	for (size_t i = 0; i < n; i++) {
		int ev = 0;

		if (h->pfd[i].revents & POLLIN)
			ev |= CURL_CSELECT_IN;
		if (h->pfd[i].revents & POLLOUT)
			ev |= CURL_CSELECT_OUT;
		if (h->pfd[i].revents & (POLLERR | POLLHUP | POLLNVAL))
			ev |= CURL_CSELECT_ERR;
		if (ev)
			curl_multi_socket_action(h->multi, h->pfd[i].fd, ev,
						 &running);
	}
	if (h->timer_at >= 0 && now_ms() >= h->timer_at) {
		h->timer_at = -1;
		loop_timer_disarm(&h->timer);
		curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0,
					 &running);
	}
}

static size_t build_pollset(struct http *h)
{
	ALLOC_GROW(h->pfd, h->nr_socks, h->alloc_pfd);
	for (size_t i = 0; i < h->nr_socks; i++) {
		short ev = 0;

		if (h->socks[i].what & CURL_POLL_IN)
			ev |= POLLIN;
		if (h->socks[i].what & CURL_POLL_OUT)
			ev |= POLLOUT;
		h->pfd[i] = (struct pollfd){.fd = h->socks[i].fd, .events = ev};
	}
	return h->nr_socks;
}

/* Called back with what ended, after curl has acted. */
static void settle(struct http *h)
{
	tell_responses(h);
	reap_unadded(h);
	reap(h);
}

/* The executors' loop saw a socket of ours ready. */
static void on_loop_fd(void *arg, int fd, short revents)
{
	struct http *h = arg;
	int ev = 0, running;

	if (revents & POLLIN)
		ev |= CURL_CSELECT_IN;
	if (revents & POLLOUT)
		ev |= CURL_CSELECT_OUT;
	if (revents & (POLLERR | POLLHUP | POLLNVAL))
		ev |= CURL_CSELECT_ERR;
	curl_multi_socket_action(h->multi, fd, ev, &running);
	settle(h);
}

static void on_loop_timer(void *arg)
{
	struct http *h = arg;
	int running;

	h->timer_at = -1;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	settle(h);
}

int http_poll(struct http *h, int timeout_ms, struct error *err)
{
	long long until = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;

	for (;;) {
		long long now = now_ms();
		size_t n;
		int t, ended = tell_responses(h);

		ended += reap_unadded(h);
		ended += reap(h);
		if (ended)
			return 0;
		if (!h->in_flight || (until >= 0 && now >= until))
			return 0;
		t = poll_timeout(h, now, until);
		n = build_pollset(h);
		if (poll(h->pfd, (nfds_t)n, t) < 0) {
			if (errno == EINTR)
				return 1;
			return error_set(err, EXIT_ENV, "poll: %s",
					 strerror(errno));
		}
		act(h, n);
	}
}

int http_run(struct http *h, const struct http_request *req,
	     struct http_xfer **out, struct error *err)
{
	struct http_xfer *x = http_start(h, req, NULL, NULL);

	*out = NULL;
	while (!x->done) {
		int r = http_poll(h, -1, err);

		if (r) {
			http_xfer_free(x);
			if (r > 0)
				return error_set(err, EXIT_INTERRUPTED,
						 "interrupted");
			return -1;
		}
	}
	*out = x;
	return 0;
}

void http_escape(struct strbuf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("-._~", c)) {
			strbuf_addch(out, c);
		} else {
			strbuf_addch(out, '%');
			strbuf_addch(out, hex[c >> 4]);
			strbuf_addch(out, hex[c & 15]);
		}
	}
}
