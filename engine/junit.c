/* `pipe run --report FILE`: the run as JUnit XML for CI services. A
 * status table fed beside the one that talks (status.h); it keeps what
 * each stage did and writes the file, temp + rename, at the end of the
 * run, whether it succeeded, failed or was interrupted. */
#include "engine/run.h"
#include "engine/status.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The report's first two lines. The second says pipe wrote it and hashes
 * what follows it (HASH_HEX_LEN hex digits): a file that still opens so
 * and hashes so is a report pipe wrote, as it wrote it, and is replaced
 * without a word; anything else is the user's (junit_replaceable). */
#define XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define MARK_HEAD "<!-- a report pipe run wrote; xxh128 of the rest: "
#define MARK_TAIL " -->\n"

/* A failure carries this many lines of the end of its log. */
#define TAIL_LINES 50

enum jstate { J_NONE, J_OK, J_FAILED, J_SKIPPED };

struct jcase {
	char *name;
	enum jstate state;
	long long ms;
	char *message; /* a failure's or a skip's */
	char *log;     /* its log, or NULL */
	char *out;     /* system-out: "fresh", "restored from …", or NULL */
};

struct jstage {
	struct jcase c;	      /* the stage as one testcase */
	struct jcase *datums; /* the datums that ran: its own testsuite */
	size_t datums_nr, datums_alloc;
	long long started_ms;
};

struct junit {
	char *path;
	struct jstage *v;
	size_t nr;
	long long start_ms;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct jstage *find(struct status *st, const char *name)
{
	struct junit *ju = st->tee_data;

	for (size_t i = 0; name && i < ju->nr; i++)
		if (!strcmp(ju->v[i].c.name, name))
			return &ju->v[i];
	return NULL;
}

static void set_str(char **dst, const char *s)
{
	free(*dst);
	*dst = s ? xstrdup(s) : NULL;
}

static void begin(struct status *st, const struct status_begin *b)
{
	struct junit *ju = st->tee_data;

	ju->v = xcalloc(b->stages_nr + 1, sizeof(*ju->v));
	ju->nr = b->stages_nr;
	for (size_t i = 0; i < b->stages_nr; i++)
		ju->v[i].c.name = xstrdup(b->stages[i]);
}

static void decided(struct status *st, const char *verb, const char *name,
		    const struct reasons *rs, const char *tail)
{
	struct jstage *s = find(st, name);

	(void)rs;
	if (!s)
		return;
	s->started_ms = now_ms();
	if (!strcmp(verb, "cache")) {
		s->c.state = J_OK;
		/* tail: "(restored from 3f2a…)" */
		set_str(&s->c.out, tail ? tail : "restored from the run-cache");
	} else if (!strcmp(verb, "would run")) {
		s->c.state = J_SKIPPED;
		set_str(&s->c.message, "would run (pipe run -n)");
	}
}

static void fresh(struct status *st, const char *name)
{
	struct jstage *s = find(st, name);

	if (!s)
		return;
	s->c.state = J_OK;
	set_str(&s->c.out, "fresh: nothing to do");
}

static void unit_finished(struct status *st, const struct status_unit *u)
{
	struct jstage *s = find(st, u->stage);
	struct jcase *c = NULL;

	if (!s)
		return;
	if (!u->datum) {
		set_str(&s->c.log, u->log_path);
		return;
	}
	/* a retried datum: its last attempt counts */
	for (size_t i = 0; i < s->datums_nr && !c; i++)
		if (!strcmp(s->datums[i].name, u->datum))
			c = &s->datums[i];
	if (!c) {
		ALLOC_GROW(s->datums, s->datums_nr + 1, s->datums_alloc);
		c = &s->datums[s->datums_nr++];
		memset(c, 0, sizeof(*c));
		c->name = xstrdup(u->datum);
	}
	c->state = u->ok ? J_OK : J_FAILED;
	c->ms = u->ms;
	free(c->message);
	c->message = u->ok ? NULL
			   : xstrfmt("stage '%s' failed: datum '%s': %s",
				     u->stage, u->datum, u->message);
	set_str(&c->log, u->log_path);
}

static void ok(struct status *st, const char *name, long long datums_done,
	       size_t datums_skipped, long long ms)
{
	struct jstage *s = find(st, name);

	if (!s)
		return;
	s->c.state = J_OK;
	s->c.ms = ms;
	if (datums_done >= 0) {
		char *out = xstrfmt("%lld datums processed, %zu restored",
				    datums_done, datums_skipped);

		set_str(&s->c.out, out);
		free(out);
	}
}

static void failed(struct status *st, const char *name, const char *msg)
{
	struct jstage *s = find(st, name);

	if (!s)
		return;
	s->c.state = J_FAILED;
	s->c.ms = s->started_ms ? now_ms() - s->started_ms : 0;
	set_str(&s->c.message, msg ? msg : "interrupted");
}

static void skipped(struct status *st, const char *name, const char *code,
		    const char *msg)
{
	struct jstage *s = find(st, name);

	if (!s)
		return;
	s->c.state = J_SKIPPED;
	set_str(&s->c.message, msg ? msg : code);
}

/* --- XML --- */

/* Text XML 1.0 allows: valid UTF-8 without the C0 controls other than
 * tab and newlines; anything else becomes '?'. amp: escape &<>" too. */
static void add_text(struct strbuf *sb, const char *s, size_t len, int esc)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		unsigned c = p[i];
		size_t n = c < 0x80	      ? 1
			   : (c >> 5) == 0x6  ? 2
			   : (c >> 4) == 0xe  ? 3
			   : (c >> 3) == 0x1e ? 4
					      : 0;
		size_t k = 1;

		while (n > 1 && k < n && i + k < len &&
		       (p[i + k] & 0xc0) == 0x80)
			k++;
		if (!n || k < n || (n == 2 && c < 0xc2) || c > 0xf4 ||
		    (c < 0x20 && c != '\t' && c != '\n' && c != '\r')) {
			strbuf_addch(sb, '?');
			i += n > 1 ? k : 1;
			continue;
		}
		if (esc && c == '&')
			strbuf_addstr(sb, "&amp;");
		else if (esc && c == '<')
			strbuf_addstr(sb, "&lt;");
		else if (esc && c == '>')
			strbuf_addstr(sb, "&gt;");
		else if (esc && c == '"')
			strbuf_addstr(sb, "&quot;");
		else if (esc && (c == '\n' || c == '\r' || c == '\t'))
			strbuf_addf(sb, "&#%u;", c);
		else
			strbuf_add(sb, s + i, n);
		i += n;
	}
}

static void add_attr(struct strbuf *sb, const char *key, const char *val)
{
	strbuf_addf(sb, " %s=\"", key);
	add_text(sb, val, strlen(val), 1);
	strbuf_addch(sb, '"');
}

/* The last TAIL_LINES lines of the log as CDATA ("]]>" split in two). */
static void add_tail(struct strbuf *sb, const char *log)
{
	struct strbuf text = STRBUF_INIT, clean = STRBUF_INIT;
	const char *start, *p;
	size_t lines = 0;

	if (!log || strbuf_read_file(&text, log, 0) < 0 || !text.len) {
		strbuf_release(&text);
		return;
	}
	for (p = text.buf + text.len; p > text.buf; p--)
		if (p[-1] == '\n' && p != text.buf + text.len &&
		    ++lines == TAIL_LINES)
			break;
	start = p;
	add_text(&clean, start, text.buf + text.len - start, 0);
	strbuf_addstr(sb, "<![CDATA[");
	for (p = clean.buf; *p; p++) {
		if (!strncmp(p, "]]>", 3)) {
			strbuf_addstr(sb, "]]]]><![CDATA[>");
			p += 2;
		} else {
			strbuf_addch(sb, *p);
		}
	}
	strbuf_addstr(sb, "]]>");
	strbuf_release(&text);
	strbuf_release(&clean);
}

static void add_case(struct strbuf *sb, const char *classname,
		     const struct jcase *c)
{
	strbuf_addstr(sb, "    <testcase");
	add_attr(sb, "classname", classname);
	add_attr(sb, "name", c->name);
	strbuf_addf(sb, " time=\"%.3f\"", (double)c->ms / 1000);
	if (c->state == J_OK && !c->out) {
		strbuf_addstr(sb, "/>\n");
		return;
	}
	strbuf_addstr(sb, ">\n");
	if (c->state == J_FAILED) {
		strbuf_addstr(sb, "      <failure");
		add_attr(sb, "message", c->message ? c->message : "failed");
		strbuf_addstr(sb, ">");
		add_tail(sb, c->log);
		strbuf_addstr(sb, "</failure>\n");
	} else if (c->state != J_OK) {
		strbuf_addstr(sb, "      <skipped");
		add_attr(sb, "message", c->message ? c->message : "not run");
		strbuf_addstr(sb, "/>\n");
	}
	if (c->out) {
		strbuf_addstr(sb, "      <system-out>");
		add_text(sb, c->out, strlen(c->out), 1);
		strbuf_addstr(sb, "</system-out>\n");
	}
	strbuf_addstr(sb, "    </testcase>\n");
}

struct counts {
	size_t tests, failures, skipped;
	long long ms;
};

static void count(struct counts *n, const struct jcase *c)
{
	n->tests++;
	n->failures += c->state == J_FAILED;
	n->skipped += c->state == J_SKIPPED || c->state == J_NONE;
	n->ms += c->ms;
}

static void suite_open(struct strbuf *sb, const char *name,
		       const struct counts *n, const char *stamp)
{
	char host[256] = "localhost";

	gethostname(host, sizeof(host) - 1);
	strbuf_addstr(sb, "  <testsuite");
	add_attr(sb, "name", name);
	strbuf_addf(sb,
		    " tests=\"%zu\" failures=\"%zu\" errors=\"0\" "
		    "skipped=\"%zu\" time=\"%.3f\"",
		    n->tests, n->failures, n->skipped, (double)n->ms / 1000);
	add_attr(sb, "timestamp", stamp);
	add_attr(sb, "hostname", host);
	strbuf_addstr(sb, ">\n");
}

/* A datums stage that ran datums is a testsuite of them; its stage's own
 * failure (a merge) without a failed datum is one more testcase. */
static int own_suite(const struct jstage *s)
{
	return s->datums_nr > 0;
}

static void write_datums(struct strbuf *sb, const struct jstage *s,
			 const char *stamp)
{
	struct counts n = {0};
	char *cls = xstrfmt("pipe.%s", s->c.name);
	int extra = s->c.state == J_FAILED;

	for (size_t i = 0; i < s->datums_nr; i++) {
		count(&n, &s->datums[i]);
		extra &= s->datums[i].state != J_FAILED;
	}
	if (extra)
		count(&n, &s->c);
	suite_open(sb, cls, &n, stamp);
	for (size_t i = 0; i < s->datums_nr; i++)
		add_case(sb, cls, &s->datums[i]);
	if (extra)
		add_case(sb, cls, &s->c);
	strbuf_addstr(sb, "  </testsuite>\n");
	free(cls);
}

/* Pipe's own bytes at path: the header and a body that hashes as it says. */
static int own_report(const char *buf, size_t len)
{
	size_t head = strlen(XML_DECL) + strlen(MARK_HEAD);
	size_t mark = head + HASH_HEX_LEN + strlen(MARK_TAIL);
	char hex[HASH_HEX_LEN + 1];
	struct hash128 h;

	if (len < mark || memcmp(buf, XML_DECL, strlen(XML_DECL)) ||
	    memcmp(buf + strlen(XML_DECL), MARK_HEAD, strlen(MARK_HEAD)) ||
	    memcmp(buf + head + HASH_HEX_LEN, MARK_TAIL, strlen(MARK_TAIL)))
		return 0;
	hash_buf(buf + mark, len - mark, &h);
	hash_to_hex(&h, hex);
	return !memcmp(buf + head, hex, HASH_HEX_LEN);
}

int junit_replaceable(const char *path, struct error *err)
{
	struct stat sb;
	void *map = NULL;
	size_t len = 0;
	int own;

	if (lstat(path, &sb))
		return errno == ENOENT ? 0
				       : error_set(err, EXIT_ENV,
						   "cannot read '%s': %s", path,
						   strerror(errno));
	if (S_ISREG(sb.st_mode) && sb.st_size == 0)
		return 0; /* nothing to lose */
	if (!S_ISREG(sb.st_mode))
		return error_set(err, EXIT_USAGE,
				 "'%s' is not a file: --report writes a file "
				 "there; name another path",
				 path);
	if (fs_map(path, 0, &map, &len))
		return error_set(err, EXIT_ENV, "cannot read '%s': %s", path,
				 strerror(errno));
	own = own_report(map, len);
	if (map)
		munmap(map, len);
	if (own)
		return 0;
	return error_set(err, EXIT_USAGE,
			 "'%s' exists and is not a report pipe wrote (or it "
			 "was changed since): --report does not replace it; "
			 "move it away or name another file",
			 path);
}

static void render(const struct junit *ju, long long ms, struct strbuf *sb)
{
	struct counts all = {0}, top = {0};
	char stamp[32];
	time_t t = (time_t)(ju->start_ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	for (size_t i = 0; i < ju->nr; i++)
		if (!own_suite(&ju->v[i]))
			count(&top, &ju->v[i].c);
	all = top;
	for (size_t i = 0; i < ju->nr; i++)
		for (size_t k = 0; k < ju->v[i].datums_nr; k++)
			count(&all, &ju->v[i].datums[k]);
	strbuf_addf(sb,
		    "<testsuites name=\"pipe run\" tests=\"%zu\" "
		    "failures=\"%zu\" errors=\"0\" skipped=\"%zu\" "
		    "time=\"%.3f\">\n",
		    all.tests, all.failures, all.skipped, (double)ms / 1000);
	suite_open(sb, "pipe", &top, stamp);
	for (size_t i = 0; i < ju->nr; i++)
		if (!own_suite(&ju->v[i]))
			add_case(sb, "pipe", &ju->v[i].c);
	strbuf_addstr(sb, "  </testsuite>\n");
	for (size_t i = 0; i < ju->nr; i++)
		if (own_suite(&ju->v[i]))
			write_datums(sb, &ju->v[i], stamp);
	strbuf_addstr(sb, "</testsuites>\n");
}

/* The report: the declaration, pipe's mark (a hash of the rest), the rest. */
static void render_marked(const struct junit *ju, long long ms,
			  struct strbuf *sb)
{
	struct strbuf body = STRBUF_INIT;
	char hex[HASH_HEX_LEN + 1];
	struct hash128 h;

	render(ju, ms, &body);
	hash_buf(body.buf, body.len, &h);
	hash_to_hex(&h, hex);
	strbuf_addstr(sb, XML_DECL MARK_HEAD);
	strbuf_addstr(sb, hex);
	strbuf_addstr(sb, MARK_TAIL);
	strbuf_add(sb, body.buf, body.len);
	strbuf_release(&body);
}

static void summary(struct status *st, const struct run_summary *sum,
		    long long ms, int exit_code, const char *error)
{
	struct junit *ju = st->tee_data;
	struct strbuf sb = STRBUF_INIT;
	struct error err = ERROR_INIT;

	(void)sum;
	(void)exit_code;
	(void)error;
	render_marked(ju, ms, &sb);
	/* a file put there while the run ran is the user's too */
	if (junit_replaceable(ju->path, &err))
		log_warn("wrote no report: %s", err.msg.buf);
	else if (fs_write_atomic(ju->path, sb.buf, sb.len, &err))
		log_warn("cannot write the report '%s': %s", ju->path,
			 err.msg.buf);
	error_release(&err);
	strbuf_release(&sb);
}

static const struct status_ops junit_ops = {
	.begin = begin,
	.decided = decided,
	.fresh = fresh,
	.unit_finished = unit_finished,
	.ok = ok,
	.failed = failed,
	.skipped = skipped,
	.summary = summary,
};

void junit_attach(struct status *st, const char *path)
{
	struct junit *ju = xcalloc(1, sizeof(*ju));

	ju->path = xstrdup(path);
	ju->start_ms = now_ms();
	st->tee = &junit_ops;
	st->tee_data = ju;
}

static void case_release(struct jcase *c)
{
	free(c->name);
	free(c->message);
	free(c->log);
	free(c->out);
}

void junit_detach(struct status *st)
{
	struct junit *ju = st->tee_data;

	if (!ju)
		return;
	for (size_t i = 0; i < ju->nr; i++) {
		case_release(&ju->v[i].c);
		for (size_t k = 0; k < ju->v[i].datums_nr; k++)
			case_release(&ju->v[i].datums[k]);
		free(ju->v[i].datums);
	}
	free(ju->v);
	free(ju->path);
	free(ju);
	st->tee = NULL;
	st->tee_data = NULL;
}
