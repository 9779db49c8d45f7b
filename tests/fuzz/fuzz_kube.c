/* Fuzz target: the Kubernetes executor's parts that see untrusted text.
 * The input (cut at its first NUL) as a Job's completedIndexes list
 * (kube_each_index), as a stage name (kube_job_name, kube_label_value:
 * DNS and label rules, length limits) and as a datum path in an env file
 * (kube_split_env: the sh quoting reads back to the same bytes), and as
 * a lone datum's path and command in a Job manifest (kube_job_manifest:
 * no abort, and the JSON carries the bytes). */
#include "executors/executor.h"
#include "executors/json.h"
#include "executors/kube.h"
#include "util/error.h"
#include "tests/fuzz/fuzz.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/xalloc.h"

#define KUBE_FZ_PREFIX "x:"

struct kube_fz_count {
	size_t limit, calls, max;
};

static void kube_fz_index(void *arg, size_t index)
{
	struct kube_fz_count *c = arg;

	if (index >= c->limit || ++c->calls > c->max)
		abort();
}

static int kube_fz_lower(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int kube_fz_alnum(char c)
{
	return kube_fz_lower(c) || (c >= 'A' && c <= 'Z');
}

/* A DNS-1123 label "pipe-...-ID" of at most 52 characters. */
static void kube_fz_name(const char *stage, const char *id, struct strbuf *sb)
{
	size_t n, idlen = strlen(id);

	strbuf_reset(sb);
	strbuf_addstr(sb, KUBE_FZ_PREFIX);
	kube_job_name(sb, stage, id);
	if (strncmp(sb->buf, KUBE_FZ_PREFIX "pipe-", 7))
		abort();
	n = sb->len - 2;
	if (n > 52 || n < 6 + idlen || sb->buf[sb->len - idlen - 1] != '-' ||
	    strcmp(sb->buf + sb->len - idlen, id))
		abort();
	if (!kube_fz_lower(sb->buf[2]) || !kube_fz_lower(sb->buf[sb->len - 1]))
		abort();
	for (size_t i = 2; i < sb->len; i++)
		if (!kube_fz_lower(sb->buf[i]) && sb->buf[i] != '-')
			abort();
}

static void kube_fz_label(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	size_t n;

	strbuf_addstr(&sb, KUBE_FZ_PREFIX);
	kube_label_value(&sb, s);
	if (strncmp(sb.buf, KUBE_FZ_PREFIX, 2) || strlen(sb.buf) != sb.len)
		abort();
	n = sb.len - 2;
	if (n > 63 || (n && (!kube_fz_alnum(sb.buf[2]) ||
			     !kube_fz_alnum(sb.buf[sb.len - 1]))))
		abort();
	for (size_t i = 2; i < sb.len; i++)
		if (!kube_fz_alnum(sb.buf[i]) && !strchr("._-", sb.buf[i]))
			abort();
	strbuf_release(&sb);
}

/* Undoes sh single quotes as sh would: "'a'\''b'" is "a'b"; the end of
 * text must follow. */
static void kube_fz_unquote(const char *p, const char *end, struct strbuf *out)
{
	if (p >= end || *p++ != '\'')
		abort();
	for (;;) {
		if (p >= end)
			abort();
		if (*p != '\'') {
			strbuf_addch(out, *p++);
			continue;
		}
		if (end - p >= 4 && !memcmp(p, "'\\''", 4)) {
			strbuf_addch(out, '\'');
			p += 4;
			continue;
		}
		p++;
		break;
	}
	if (p != end)
		abort();
}

static void kube_fz_env(const char *datum)
{
	char *kv = xstrfmt("PIPE_DATUM=%s", datum);
	char *e0[] = {"A=1", kv, NULL}, *e1[] = {"A=1", "PIPE_DATUM=", NULL};
	struct exec_unit u[2] = {{.stage = "s", .env = e0},
				 {.stage = "s", .env = e1}};
	struct strvec common = STRVEC_INIT;
	struct strbuf files[2], back = STRBUF_INIT;
	static const char head[] = "export PIPE_DATUM=";
	int own = kube_split_env(u, 2, &common, files);

	if (own != (*datum != '\0') || common.nr != 1 + !own)
		abort();
	if (own) {
		/* one line: export PIPE_DATUM='...'\n */
		if (files[0].len < sizeof(head) + 2 ||
		    memcmp(files[0].buf, head, sizeof(head) - 1) ||
		    files[0].buf[files[0].len - 1] != '\n')
			abort();
		kube_fz_unquote(files[0].buf + sizeof(head) - 1,
				files[0].buf + files[0].len - 1, &back);
		if (strcmp(back.buf, datum) || back.len != strlen(datum))
			abort();
	}
	strbuf_release(&files[0]);
	strbuf_release(&files[1]);
	strbuf_release(&back);
	strvec_clear(&common);
	free(kv);
}

/* Whether s is UTF-8, as JSON carries it. */
static int kube_fz_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned c = *p++, cp;
		int more = c < 0x80		   ? 0
			   : c >= 0xc2 && c < 0xe0 ? 1
			   : c >= 0xe0 && c < 0xf0 ? 2
			   : c >= 0xf0 && c < 0xf5 ? 3
						   : -1;

		if (more < 0)
			return 0;
		cp = c & (0x7f >> more);
		for (int i = 0; i < more; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (*p & 0x3f);
		}
		if ((more == 2 &&
		     (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) ||
		    (more == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
	}
	return 1;
}

/* got is want, as is or with each '$' doubled (escaped for the
 * kubelet's $(NAME) expansion). */
static int kube_fz_same(const char *got, const char *want)
{
	if (!got)
		return 0;
	if (!strcmp(got, want))
		return 1;
	for (; *want; want++, got++) {
		if (*want == '$' && *got++ != '$')
			return 0;
		if (*got != *want)
			return 0;
	}
	return !*got;
}

/* A Job of one datum whose path is s (and, when JSON can carry it, whose
 * command is s): made without an abort, dumped, parsed back, and the pod
 * gets s inline or by its env file. */
static void kube_fz_manifest(const char *s)
{
	char *kv = xstrfmt("PIPE_DATUM=%s", s);
	char *env[] = {"PIPE_OUT=.pipe/tmp/s/0", kv, NULL};
	char *ro[] = {"in/", kv + 11, NULL};
	char *rw[] = {".pipe/tmp/s/0/", NULL};
	int utf8 = kube_fz_utf8(s);
	struct exec_unit u = {.stage = "s",
			      .workspace = "/nonexistent/ws",
			      .shell = 1,
			      .cmd = utf8 ? s : "true",
			      .env = env,
			      .ro_paths = ro,
			      .rw_paths = rw,
			      .job_id = "0a1b2c3d4e5f"};
	struct strvec common = STRVEC_INIT;
	struct strbuf files[1], dump = STRBUF_INIT;
	struct kube_job_spec spec = {.name = "pipe-s-0a1b2c3d4e5f",
				     .namespace = "ns",
				     .workspace_label = "w",
				     .units = &u,
				     .n = 1,
				     .image = "i@sha256:0",
				     .uid = 1000,
				     .gid = 1000};
	struct json *job, *back = NULL;
	struct error err = ERROR_INIT;
	const struct json *c, *e;
	int own = kube_split_env(&u, 1, &common, files), inline_ok = 0;

	spec.common_env = common.v;
	if (own)
		spec.env_dir = ".pipe/k8s/pipe-s-0a1b2c3d4e5f";
	job = kube_job_manifest(&spec);
	json_dump(job, &dump);
	json_free(job);
	if (json_parse(&back, dump.buf, dump.len, &err))
		abort();
	c = json_get(json_array_at(json_get(back, "spec.template.spec."
						  "containers"),
				   0),
		     "command");
	e = json_get(json_array_at(json_get(back, "spec.template.spec."
						  "containers"),
				   0),
		     "env");
	if (utf8 &&
	    !kube_fz_same(
		    json_get_str(json_array_at(c, json_array_len(c) - 1), ""),
		    s))
		abort();
	for (size_t i = 0; i < json_array_len(e); i++) {
		const char *n = json_get_str(json_array_at(e, i), "name");

		if (n && !strcmp(n, "PIPE_DATUM"))
			inline_ok = kube_fz_same(
				json_get_str(json_array_at(e, i), "value"), s);
	}
	if (!inline_ok && !(own && strstr(files[0].buf, "PIPE_DATUM")))
		abort();
	json_free(back);
	error_release(&err);
	strbuf_release(&files[0]);
	strbuf_release(&dump);
	strvec_clear(&common);
	free(kv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[] = {0, 1, 7, 100};
	char *s = xmalloc(size + 1);
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;

	memcpy(s, data, size);
	s[size] = '\0';
	for (size_t i = 0; i < sizeof(limits) / sizeof(*limits); i++) {
		/* each item adds at most limit indexes */
		struct kube_fz_count c = {limits[i], 0,
					  limits[i] * (size / 2 + 1)};

		kube_each_index(s, limits[i], kube_fz_index, &c);
	}
	kube_fz_label(s);
	kube_fz_name(s, "0a1b2c3d4e5f", &a);
	kube_fz_name(s, "0a1b2c3d4e60", &b);
	if (!strcmp(a.buf, b.buf))
		abort();
	kube_fz_name(s, "0", &a);
	kube_fz_env(s);
	kube_fz_manifest(s);
	strbuf_release(&a);
	strbuf_release(&b);
	free(s);
	return 0;
}
