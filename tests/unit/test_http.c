/* Unit tests for executors/http: a small HTTP server on a unix socket
 * (forked by the test) adds the fault cases a real daemon rarely shows:
 * error statuses, dropped connections, chunked streams, slow answers,
 * signals; plus headers, methods, bodies and escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "executors/http.h"
#include "executors/json.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/strbuf.h"

static char dir[] = "/tmp/pipe-http.XXXXXX";
static char sock[96];
static pid_t server;

/* ------------------------------------------------------------------ */
/* The server: one child per connection, requests answered by path */

static void say(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len) {
		ssize_t n = write(fd, s, len);

		if (n <= 0)
			_exit(0);
		s += n;
		len -= (size_t)n;
	}
}

/* One request: headers (and a Content-Length body) into req; 0 at EOF. */
static int read_request(int fd, struct strbuf *req)
{
	char *end;
	long body = 0;

	strbuf_reset(req);
	while (!(end = strstr(req->buf, "\r\n\r\n")))
		if (strbuf_read_fd(req, fd, 1) <= 0)
			return 0;
	if ((end = strcasestr(req->buf, "Content-Length:")))
		body = atol(end + 15);
	while ((long)(req->len - (size_t)(strstr(req->buf, "\r\n\r\n") + 4 -
					  req->buf)) < body)
		if (strbuf_read_fd(req, fd, (size_t)body) <= 0)
			return 0;
	return 1;
}

static void answer(int fd, const char *status, const char *body)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb,
		    "HTTP/1.1 %s\r\nContent-Length: %zu\r\nAPI-Version: "
		    "1.99\r\nContent-Type: text/plain\r\n\r\n%s",
		    status, strlen(body), body);
	say(fd, sb.buf);
	strbuf_release(&sb);
}

static void serve(int fd)
{
	struct strbuf req = STRBUF_INIT;

	while (read_request(fd, &req)) {
		if (strstr(req.buf, " /ok ")) {
			answer(fd, "200 OK", "hello");
		} else if (strstr(req.buf, " /echo ")) {
			answer(fd, "200 OK", req.buf);
		} else if (strstr(req.buf, " /err ")) {
			answer(fd, "500 Internal Server Error",
			       "{\"message\":\"boom\"}");
		} else if (strstr(req.buf, " /drop ")) {
			_exit(0);
		} else if (strstr(req.buf, " /stream ")) {
			say(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
				"chunked\r\n\r\n");
			for (int i = 0; i < 3; i++) {
				say(fd, "6\r\npiece\n\r\n");
				usleep(50000);
			}
			say(fd, "0\r\n\r\n");
		} else if (strstr(req.buf, " /raw ")) {
			/* as Docker's attach: no length, ends at close */
			say(fd, "HTTP/1.1 200 OK\r\nContent-Type: "
				"application/vnd.docker.raw-stream\r\n\r\n");
			say(fd, "raw bytes");
			_exit(0);
		} else if (strstr(req.buf, " /slow ")) {
			sleep(5);
			answer(fd, "200 OK", "late");
		} else {
			answer(fd, "404 Not Found", "no such page");
		}
	}
	_exit(0);
}

static void run_server(int lfd)
{
	setpgid(0, 0); /* its children go with it */
	signal(SIGCHLD, SIG_IGN);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			continue;
		if (!fork()) {
			close(lfd);
			serve(fd);
		}
		close(fd);
	}
}

static int setup(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int lfd;

	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(sock, sizeof(sock), "%s/s.sock", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(lfd, 64))
		return -1;
	fflush(NULL);
	server = fork();
	if (!server)
		run_server(lfd);
	close(lfd);
	return server < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	kill(-server, SIGKILL);
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	fs_remove_tree(dir);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The client */

static struct http *client(void)
{
	struct http_target t = {.unix_socket = sock};
	struct http *h;
	struct error err = ERROR_INIT;

	assert_int_equal(http_new(&h, &t, &err), 0);
	return h;
}

static struct http_xfer *get(struct http *h, const char *path)
{
	struct http_request req = {.method = "GET", .path = path};
	struct http_xfer *x;
	struct error err = ERROR_INIT;

	assert_int_equal(http_run(h, &req, &x, &err), 0);
	return x;
}

static void test_get_and_headers(void **state)
{
	struct http *h = client();
	struct http_xfer *x;

	(void)state;
	for (int i = 0; i < 3; i++) { /* one kept-alive connection */
		x = get(h, "/ok");
		assert_true(http_xfer_done(x));
		assert_int_equal(http_xfer_status(x), 200);
		assert_string_equal(http_xfer_body(x)->buf, "hello");
		assert_string_equal(http_xfer_error(x), "");
		assert_string_equal(http_xfer_header(x, "api-version"), "1.99");
		assert_string_equal(http_xfer_header(x, "Content-Type"),
				    "text/plain");
		assert_null(http_xfer_header(x, "X-None"));
		http_xfer_free(x);
	}
	x = get(h, "/nowhere");
	assert_int_equal(http_xfer_status(x), 404);
	http_xfer_free(x);
	assert_int_equal(http_running(h), 0);
	http_free(h);
}

static void test_methods_and_bodies(void **state)
{
	struct http *h = client();
	struct strbuf big = STRBUF_INIT;
	char *hdrs[] = {"X-Pipe: yes", NULL};
	struct http_request req = {.method = "POST",
				   .path = "/echo",
				   .content_type = "application/json",
				   .headers = hdrs};
	struct http_xfer *x;
	struct error err = ERROR_INIT;
	const char *b;

	(void)state;
	strbuf_addchars(&big, 'j', 4000);
	req.body = big.buf;
	req.body_len = big.len;
	assert_int_equal(http_run(h, &req, &x, &err), 0);
	b = http_xfer_body(x)->buf;
	assert_int_equal(strncmp(b, "POST /echo HTTP/1.1\r\n", 21), 0);
	assert_non_null(strstr(b, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(b, "X-Pipe: yes\r\n"));
	assert_non_null(strstr(b, "Content-Length: 4000\r\n"));
	assert_null(strcasestr(b, "Expect:")); /* no 100-continue wait */
	assert_non_null(strstr(b, big.buf));
	http_xfer_free(x);

	req = (struct http_request){.method = "DELETE", .path = "/echo"};
	assert_int_equal(http_run(h, &req, &x, &err), 0);
	assert_int_equal(strncmp(http_xfer_body(x)->buf, "DELETE /echo ", 13),
			 0);
	http_xfer_free(x);

	/* POST without a body: Content-Length 0 */
	req = (struct http_request){.method = "POST", .path = "/echo"};
	assert_int_equal(http_run(h, &req, &x, &err), 0);
	assert_non_null(strstr(http_xfer_body(x)->buf, "Content-Length: 0"));
	http_xfer_free(x);
	strbuf_release(&big);
	http_free(h);
}

/* A body read from a file (a slice of it), and requests signed with AWS
 * SigV4: the S3 client's needs. */
static void test_upload_and_sigv4(void **state)
{
	struct http_target t = {.unix_socket = sock,
				.aws_sigv4 = "aws:amz:eu-west-1:s3",
				.aws_key = "AKIDTEST",
				.aws_secret = "SECRETTEST"};
	char path[128],
		*hdrs[] = {"x-amz-content-sha256: UNSIGNED-PAYLOAD", NULL};
	struct http_upload up = {.offset = 3, .len = 5};
	struct http_request req = {.method = "PUT",
				   .path = "/echo",
				   .upload = &up,
				   .headers = hdrs};
	struct http *h;
	struct http_xfer *x;
	struct error err = ERROR_INIT;
	const char *b;

	(void)state;
	snprintf(path, sizeof(path), "%s/upload", dir);
	assert_int_equal(fs_write_atomic(path, "0123456789", 10, &err), 0);
	up.fd = open(path, O_RDONLY);
	assert_true(up.fd >= 0);
	assert_int_equal(http_new(&h, &t, &err), 0);
	for (int i = 0; i < 2; i++) { /* the second reads it again */
		assert_int_equal(http_run(h, &req, &x, &err), 0);
		b = http_xfer_body(x)->buf;
		assert_int_equal(strncmp(b, "PUT /echo HTTP/1.1\r\n", 20), 0);
		assert_non_null(strstr(b, "Content-Length: 5\r\n"));
		assert_non_null(strstr(b, "\r\n\r\n34567"));
		assert_non_null(strstr(b, "Authorization: AWS4-HMAC-SHA256 "
					  "Credential=AKIDTEST/"));
		assert_non_null(strstr(b, "/eu-west-1/s3/aws4_request"));
		assert_non_null(strstr(b, "x-amz-content-sha256"));
		assert_null(strstr(b, "SECRETTEST"));
		http_xfer_free(x);
	}
	/* another method with a file body; an empty slice */
	req.method = "POST";
	up.len = 0;
	assert_int_equal(http_run(h, &req, &x, &err), 0);
	b = http_xfer_body(x)->buf;
	assert_int_equal(strncmp(b, "POST /echo HTTP/1.1\r\n", 21), 0);
	assert_non_null(strstr(b, "Content-Length: 0\r\n"));
	http_xfer_free(x);
	close(up.fd);
	http_free(h);
}

struct seen {
	struct strbuf data;
	int pieces, responses, done;
	long status_at_response;
};

static void on_data(void *arg, const char *data, size_t len)
{
	struct seen *s = arg;

	strbuf_add(&s->data, data, len);
	s->pieces++;
}

static void on_response(void *arg, struct http_xfer *x)
{
	struct seen *s = arg;

	assert_int_equal(s->done, 0);
	s->responses++;
	s->status_at_response = http_xfer_status(x);
}

static void on_done(void *arg, struct http_xfer *x)
{
	struct seen *s = arg;

	(void)x;
	s->done++;
}

static struct http_xfer *stream(struct http *h, const char *path,
				struct seen *s)
{
	struct http_request req = {.method = "GET",
				   .path = path,
				   .on_data = on_data,
				   .data_arg = s,
				   .on_response = on_response};
	struct http_xfer *x;
	struct error err = ERROR_INIT;

	memset(s, 0, sizeof(*s));
	strbuf_init(&s->data, 0);
	x = http_start(h, &req, on_done, s);
	while (!http_xfer_done(x))
		assert_true(http_poll(h, -1, &err) >= 0);
	return x;
}

static void test_streaming(void **state)
{
	struct http *h = client();
	struct http_xfer *x;
	struct seen s;
	struct strbuf msg = STRBUF_INIT;

	(void)state;
	x = stream(h, "/stream", &s);
	assert_int_equal(http_xfer_status(x), 200);
	assert_string_equal(s.data.buf, "piece\npiece\npiece\n");
	assert_true(s.pieces >= 2); /* as it came */
	assert_int_equal(http_xfer_body(x)->len, 0);
	assert_int_equal(s.responses, 1);
	assert_int_equal(s.status_at_response, 200);
	assert_int_equal(s.done, 1);
	http_xfer_free(x);
	strbuf_release(&s.data);

	/* a body until the connection closes (Docker's attach) */
	x = stream(h, "/raw", &s);
	assert_int_equal(http_xfer_status(x), 200);
	assert_string_equal(s.data.buf, "raw bytes");
	assert_string_equal(http_xfer_error(x), "");
	http_xfer_free(x);
	strbuf_release(&s.data);

	/* an error status: its body is a message, kept, not streamed */
	x = stream(h, "/err", &s);
	assert_int_equal(http_xfer_status(x), 500);
	assert_int_equal(s.pieces, 0);
	assert_int_equal(s.responses, 1);
	json_error_message(http_xfer_body(x)->buf, http_xfer_body(x)->len,
			   &msg);
	assert_string_equal(msg.buf, "boom");
	http_xfer_free(x);
	strbuf_release(&s.data);
	strbuf_release(&msg);
	http_free(h);
}

static void test_transport_errors(void **state)
{
	struct http *h = client();
	struct http_target t = {.unix_socket = "/nonexistent/sock"};
	struct http *none;
	struct http_request req = {
		.method = "GET", .path = "/slow", .timeout_ms = 200};
	struct http_xfer *x;
	struct error err = ERROR_INIT;

	(void)state;
	x = get(h, "/drop");
	assert_int_equal(http_xfer_status(x), 0);
	assert_string_not_equal(http_xfer_error(x), "");
	http_xfer_free(x);

	assert_int_equal(http_run(h, &req, &x, &err), 0);
	assert_int_equal(http_xfer_status(x), 0);
	assert_non_null(strstr(http_xfer_error(x), "imed out"));
	http_xfer_free(x);
	http_free(h);

	assert_int_equal(http_new(&none, &t, &err), 0);
	x = get(none, "/ok");
	assert_string_equal(http_xfer_error(x), "No such file or directory");
	http_xfer_free(x);
	http_free(none);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* A signal ends http_poll() (1) and http_run() ("interrupted"). */
static void test_interrupted(void **state)
{
	struct http *h = client();
	struct http_request req = {.method = "GET", .path = "/slow"};
	struct http_xfer *x;
	struct error err = ERROR_INIT;
	struct sigaction sa, old;
	struct itimerval it = {.it_value = {.tv_usec = 100000},
			       .it_interval = {.tv_usec = 100000}};
	struct itimerval off = {{0, 0}, {0, 0}};
	int r;

	(void)state;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, &old);
	setitimer(ITIMER_REAL, &it, NULL);
	x = http_start(h, &req, NULL, NULL);
	do
		r = http_poll(h, -1, &err);
	while (r == 0 && !http_xfer_done(x));
	assert_int_equal(r, 1);
	assert_false(http_xfer_done(x));
	assert_int_equal(http_running(h), 1);
	http_xfer_free(x); /* aborts it */
	assert_int_equal(http_running(h), 0);

	assert_int_equal(http_run(h, &req, &x, &err), -1);
	assert_null(x);
	assert_int_equal(err.exit_code, EXIT_INTERRUPTED);
	assert_string_equal(err.msg.buf, "interrupted");
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	error_release(&err);
	/* a poll with nothing in flight returns at once */
	assert_int_equal(http_poll(h, -1, &err), 0);
	http_free(h); /* with nothing left: fine */
}

/* Many at once, freed while running: http_free aborts what is left. */
static void test_many_and_free(void **state)
{
	struct http *h = client();
	struct http_request slow = {.method = "GET", .path = "/slow"};
	struct http_request ok = {.method = "GET", .path = "/ok"};
	struct http_xfer *x[8];
	struct error err = ERROR_INIT;
	int done = 0;

	(void)state;
	for (int i = 0; i < 8; i++)
		x[i] = http_start(h, i % 2 ? &slow : &ok, NULL, NULL);
	assert_int_equal(http_running(h), 8);
	while (done < 4) {
		assert_true(http_poll(h, -1, &err) >= 0);
		done = 0;
		for (int i = 0; i < 8; i += 2)
			done += http_xfer_done(x[i]);
	}
	for (int i = 0; i < 8; i += 2) {
		assert_string_equal(http_xfer_body(x[i])->buf, "hello");
		http_xfer_free(x[i]);
	}
	assert_int_equal(http_running(h), 4);
	http_free(h);
}

static void test_escape(void **state)
{
	struct strbuf sb = STRBUF_INIT;

	(void)state;
	http_escape(&sb, "{\"label\":[\"pipe.workspace=/tmp/a b\"]}~-_.");
	assert_string_equal(sb.buf, "%7B%22label%22%3A%5B%22pipe.workspace%3D"
				    "%2Ftmp%2Fa%20b%22%5D%7D~-_.");
	strbuf_release(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_and_headers),
		cmocka_unit_test(test_methods_and_bodies),
		cmocka_unit_test(test_upload_and_sigv4),
		cmocka_unit_test(test_streaming),
		cmocka_unit_test(test_transport_errors),
		cmocka_unit_test(test_interrupted),
		cmocka_unit_test(test_many_and_free),
		cmocka_unit_test(test_escape),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
