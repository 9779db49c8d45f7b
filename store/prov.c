/* Provenance as git trailers: stage commits and run records written as
 * "Pipe-Key: value" lines and parsed back, every byte escaped safely. */
#include "store/internal.h"
#include "util/xalloc.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void store_escape(struct strbuf *out, const char *s, const char *extra)
{
	size_t len = strlen(s);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\')
			strbuf_addstr(out, "\\\\");
		else if (c == '\n')
			strbuf_addstr(out, "\\n");
		else if (c < 0x20 || c == 0x7f ||
			 (c == ' ' && (i == 0 || i == len - 1)) ||
			 (extra && strchr(extra, c)))
			strbuf_addf(out, "\\x%02x", c);
		else
			strbuf_addch(out, (char)c);
	}
}

static int hexdigit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int store_unescape(struct strbuf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		int hi, lo;

		if (s[i] != '\\') {
			strbuf_addch(out, s[i]);
			continue;
		}
		if (i + 1 < len && (s[i + 1] == '\\' || s[i + 1] == 'n')) {
			strbuf_addch(out, s[i + 1] == 'n' ? '\n' : '\\');
			i++;
			continue;
		}
		if (i + 3 >= len || s[i + 1] != 'x')
			return -1;
		hi = hexdigit((unsigned char)s[i + 2]);
		lo = hexdigit((unsigned char)s[i + 3]);
		if (hi < 0 || lo < 0)
			return -1;
		strbuf_addch(out, (char)(hi << 4 | lo));
		i += 3;
	}
	return 0;
}

void store_format_time(struct strbuf *out, long long t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char buf[64];

	gmtime_r(&tt, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	strbuf_addstr(out, buf);
}

/* RFC 3339: 2024-05-01T12:00:00Z, fractions ignored, "+hh:mm" offsets. */
int store_parse_time(const char *s, long long *out)
{
	struct tm tm = {0};
	int n = 0, oh = 0, om = 0;
	long long off = 0;
	const char *p;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
		return -1;
	p = s + n;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if ((*p == '+' || *p == '-') &&
	    sscanf(p + 1, "%2d:%2d", &oh, &om) == 2 && strlen(p) == 6)
		off = (*p == '+' ? 1 : -1) * (oh * 3600LL + om * 60LL);
	else if (strcmp(p, "Z"))
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = (long long)timegm(&tm) - off;
	return 0;
}

/* ---- trailer blocks ---------------------------------------------------- */

static size_t key_len(const char *line)
{
	return strspn(line, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "abcdefghijklmnopqrstuvwxyz0123456789-");
}

int trailers_parse(const char *msg, trailer_fn fn, void *data,
		   struct error *err)
{
	size_t len = strlen(msg);
	const char *block = NULL, *p, *end;
	char *key = NULL;
	int ret = -1;

	while (len && msg[len - 1] == '\n')
		len--;
	for (size_t i = len; i > 1; i--)
		if (msg[i - 1] == '\n' && msg[i - 2] == '\n') {
			block = msg + i;
			break;
		}
	if (!block)
		return error_set(err, EXIT_FAILED,
				 "commit message has no trailers");
	for (p = block; p < msg + len; p = end + 1) {
		size_t k;

		end = memchr(p, '\n', (size_t)(msg + len - p));
		if (!end)
			end = msg + len;
		k = key_len(p);
		if (!k || p + k >= end || p[k] != ':') {
			error_set(err, EXIT_FAILED, "malformed trailer '%.*s'",
				  (int)(end - p), p);
			goto out;
		}
		free(key);
		key = xstrndup(p, k);
		p += k + 1;
		if (p < end && *p == ' ')
			p++;
		if (fn(key, p, (size_t)(end - p), data, err))
			goto out;
	}
	ret = 0;
out:
	free(key);
	return ret;
}

static int kind_cb(const char *key, const char *value, size_t len, void *data,
		   struct error *err)
{
	char **kind = data;

	(void)err;
	if (!strcmp(key, "Pipe-Kind") && !*kind)
		*kind = xstrndup(value, len);
	return 0;
}

char *trailers_kind(const char *msg)
{
	struct error err = ERROR_INIT;
	char *kind = NULL;

	if (trailers_parse(msg, kind_cb, &kind, &err)) {
		free(kind);
		kind = NULL;
	}
	error_release(&err);
	return kind;
}

/* ---- field parsers, shared by stage commits and run records ------------ */

/* How a trailer's value lands in a struct: at an offset, by type. */
enum ftype { F_STR, F_ULL, F_LL, F_FN };
typedef int (*field_fn)(void *obj, const char *v, size_t len,
			struct error *err);
struct field {
	const char *key;
	enum ftype type;
	size_t off;
	field_fn fn;
};

static int unescaped(const char *v, size_t len, struct strbuf *out,
		     struct error *err)
{
	if (store_unescape(out, v, len)) {
		strbuf_release(out); /* what came before the bad escape */
		return error_set(err, EXIT_FAILED, "bad escape in '%.*s'",
				 (int)len, v);
	}
	return 0;
}

static int parse_ull(const char *v, size_t len, unsigned long long *out)
{
	char *end;
	char buf[32];

	if (!len || len >= sizeof(buf) || v[0] < '0' || v[0] > '9')
		return -1;
	memcpy(buf, v, len);
	buf[len] = '\0';
	errno = 0;
	*out = strtoull(buf, &end, 10);
	return errno || *end ? -1 : 0;
}

static int set_field(const struct field *f, void *obj, const char *v,
		     size_t len, struct error *err)
{
	char *at = (char *)obj + f->off;
	struct strbuf sb = STRBUF_INIT;
	unsigned long long n;

	switch (f->type) {
	case F_STR:
		if (unescaped(v, len, &sb, err))
			return -1;
		free(*(char **)(void *)at);
		*(char **)(void *)at = strbuf_detach(&sb, NULL);
		return 0;
	case F_ULL:
	case F_LL:
		if (parse_ull(v, len, &n) || (f->type == F_LL && n > LLONG_MAX))
			return error_set(err, EXIT_FAILED,
					 "bad number in '%s: %.*s'", f->key,
					 (int)len, v);
		if (f->type == F_ULL)
			*(unsigned long long *)(void *)at = n;
		else
			*(long long *)(void *)at = (long long)n;
		return 0;
	case F_FN:
		return f->fn(obj, v, len, err);
	}
	return 0;
}

/* Apply the trailer to the first field of table that names it; unknown
 * trailers go to extra. */
static int apply(const struct field *table, size_t n, void *obj,
		 struct store_kv **extra, size_t *nr, size_t *alloc,
		 const char *key, const char *v, size_t len, struct error *err)
{
	struct strbuf sb = STRBUF_INIT;

	for (size_t i = 0; i < n; i++)
		if (!strcmp(table[i].key, key))
			return set_field(&table[i], obj, v, len, err);
	if (unescaped(v, len, &sb, err))
		return -1;
	ALLOC_GROW(*extra, *nr + 1, *alloc);
	(*extra)[*nr].key = xstrdup(key);
	(*extra)[(*nr)++].value = strbuf_detach(&sb, NULL);
	return 0;
}

/* "<escaped text> <word>": split at the last space. */
static int split_last(const char *v, size_t len, struct strbuf *first,
		      const char **word, size_t *wlen, struct error *err)
{
	const char *sp = NULL;

	for (size_t i = len; i > 0; i--)
		if (v[i - 1] == ' ') {
			sp = v + i - 1;
			break;
		}
	if (!sp)
		return error_set(err, EXIT_FAILED,
				 "malformed trailer value '%.*s'", (int)len, v);
	*word = sp + 1;
	*wlen = (size_t)(v + len - sp - 1);
	return unescaped(v, (size_t)(sp - v), first, err);
}

static int copy_hex(char *dst, size_t want, const char *w, size_t wlen,
		    struct error *err)
{
	if (wlen != want || strspn(w, "0123456789abcdef") < want)
		return error_set(err, EXIT_FAILED, "bad hash '%.*s'", (int)wlen,
				 w);
	memcpy(dst, w, want);
	dst[want] = '\0';
	return 0;
}

static int f_key(void *obj, const char *v, size_t len, struct error *err)
{
	struct store_prov *p = obj;

	return copy_hex(p->key, HASH_HEX_LEN, v, len, err);
}

static int f_input(void *obj, const char *v, size_t len, struct error *err)
{
	struct store_prov *p = obj;
	struct strbuf path = STRBUF_INIT;
	char hash[HASH_HEX_LEN + 1];
	const char *w;
	size_t wlen;
	int ret = -1;

	if (!split_last(v, len, &path, &w, &wlen, err) &&
	    !copy_hex(hash, HASH_HEX_LEN, w, wlen, err)) {
		store_prov_add_input(p, path.buf, hash);
		ret = 0;
	}
	strbuf_release(&path);
	return ret;
}

static int f_upstream(void *obj, const char *v, size_t len, struct error *err)
{
	struct store_prov *p = obj;
	struct strbuf stage = STRBUF_INIT;
	char id[STORE_ID_SIZE];
	const char *w;
	size_t wlen;
	int ret = -1;

	if (!split_last(v, len, &stage, &w, &wlen, err) &&
	    !copy_hex(id, STORE_ID_LEN, w, wlen, err)) {
		store_prov_add_upstream(p, stage.buf, id);
		ret = 0;
	}
	strbuf_release(&stage);
	return ret;
}

static int f_param(void *obj, const char *v, size_t len, struct error *err)
{
	struct store_prov *p = obj;
	struct strbuf k = STRBUF_INIT, val = STRBUF_INIT;
	const char *eq = memchr(v, '=', len);
	int ret = -1;

	if (!eq)
		error_set(err, EXIT_FAILED, "malformed param '%.*s'", (int)len,
			  v);
	else if (!unescaped(v, (size_t)(eq - v), &k, err) &&
		 !unescaped(eq + 1, (size_t)(v + len - eq - 1), &val, err)) {
		store_prov_add_param(p, k.buf, val.buf);
		ret = 0;
	}
	strbuf_release(&k);
	strbuf_release(&val);
	return ret;
}

/* "<sha> [dirty]" into git_head and git_dirty, at the given offsets. */
static int git_head(char **head, int *dirty, const char *v, size_t len,
		    struct error *err)
{
	const char *sp = memchr(v, ' ', len);
	size_t n = sp ? (size_t)(sp - v) : len;

	if (sp && ((size_t)(v + len - sp) != 6 || memcmp(sp, " dirty", 6)))
		return error_set(err, EXIT_FAILED, "bad git head '%.*s'",
				 (int)len, v);
	free(*head);
	*head = xstrndup(v, n);
	*dirty = sp != NULL;
	return 0;
}

static int f_git_head(void *obj, const char *v, size_t len, struct error *err)
{
	struct store_prov *p = obj;

	return git_head(&p->git_head, &p->git_dirty, v, len, err);
}

static int time_field(long long *t, const char *v, size_t len,
		      struct error *err)
{
	char *s = xstrndup(v, len);
	int rc = store_parse_time(s, t);

	free(s);
	if (rc)
		return error_set(err, EXIT_FAILED, "bad time '%.*s'", (int)len,
				 v);
	return 0;
}

static int f_started(void *obj, const char *v, size_t len, struct error *err)
{
	return time_field(&((struct store_prov *)obj)->started, v, len, err);
}

static int f_datums(void *obj, const char *v, size_t len, struct error *err)
{
	struct store_prov *p = obj;
	unsigned long long n[3];
	const char *s = v, *end = v + len;

	for (int i = 0; i < 3; i++) {
		const char *e = i < 2 ? memchr(s, '/', (size_t)(end - s)) : end;

		if (!e || parse_ull(s, (size_t)(e - s), &n[i]))
			return error_set(err, EXIT_FAILED, "bad datums '%.*s'",
					 (int)len, v);
		s = e + 1;
	}
	p->datums_processed = n[0];
	p->datums_skipped = n[1];
	p->datums_total = n[2];
	return 0;
}

static int f_ignore(void *obj, const char *v, size_t len, struct error *err)
{
	(void)obj, (void)v, (void)len, (void)err;
	return 0;
}

#define PF(k, t, member, fn)                                                   \
	{                                                                      \
		k, t, offsetof(struct store_prov, member), fn                  \
	}
static const struct field prov_fields[] = {
	PF("Pipe-Kind", F_FN, stage, f_ignore),
	PF("Pipe-Stage", F_STR, stage, NULL),
	PF("Pipe-Key", F_FN, key, f_key),
	PF("Pipe-State", F_STR, state, NULL),
	PF("Pipe-Cached-From", F_STR, cached_from, NULL),
	PF("Pipe-Input", F_FN, inputs, f_input),
	PF("Pipe-Upstream", F_FN, upstreams, f_upstream),
	PF("Pipe-Param", F_FN, params, f_param),
	PF("Pipe-Image", F_STR, image, NULL),
	PF("Pipe-Executor", F_STR, executor, NULL),
	PF("Pipe-Git-Head", F_FN, git_head, f_git_head),
	PF("Pipe-Started", F_FN, started, f_started),
	PF("Pipe-Duration-Ms", F_LL, duration_ms, NULL),
	PF("Pipe-Datums", F_FN, datums_total, f_datums),
	PF("Pipe-Bytes-In", F_ULL, bytes_in, NULL),
	PF("Pipe-Bytes-Out", F_ULL, bytes_out, NULL),
};

/* ---- stage provenance ---------------------------------------------------- */

void store_prov_init(struct store_prov *p)
{
	memset(p, 0, sizeof(*p));
}

static void free_kvs(struct store_kv *kv, size_t nr)
{
	for (size_t i = 0; i < nr; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}

void store_prov_release(struct store_prov *p)
{
	for (size_t i = 0; i < p->inputs_nr; i++)
		free(p->inputs[i].path);
	free(p->inputs);
	for (size_t i = 0; i < p->upstreams_nr; i++)
		free(p->upstreams[i].stage);
	free(p->upstreams);
	free_kvs(p->params, p->params_nr);
	free_kvs(p->extra, p->extra_nr);
	free(p->stage);
	free(p->state);
	free(p->cached_from);
	free(p->image);
	free(p->executor);
	free(p->git_head);
	store_prov_init(p);
}

void store_prov_add_input(struct store_prov *p, const char *path,
			  const char *hash_hex)
{
	struct store_input *in;

	ALLOC_GROW(p->inputs, p->inputs_nr + 1, p->inputs_alloc);
	in = &p->inputs[p->inputs_nr++];
	in->path = xstrdup(path);
	snprintf(in->hash, sizeof(in->hash), "%s", hash_hex);
}

void store_prov_add_upstream(struct store_prov *p, const char *stage,
			     const char *commit)
{
	struct store_upstream *u;

	ALLOC_GROW(p->upstreams, p->upstreams_nr + 1, p->upstreams_alloc);
	u = &p->upstreams[p->upstreams_nr++];
	u->stage = xstrdup(stage);
	snprintf(u->commit, sizeof(u->commit), "%s", commit);
}

void store_prov_add_param(struct store_prov *p, const char *key,
			  const char *value)
{
	ALLOC_GROW(p->params, p->params_nr + 1, p->params_alloc);
	p->params[p->params_nr].key = xstrdup(key);
	p->params[p->params_nr++].value = xstrdup(value);
}

static void trailer(struct strbuf *out, const char *key, const char *value)
{
	strbuf_addf(out, "%s: ", key);
	store_escape(out, value, NULL);
	strbuf_addch(out, '\n');
}

static void trailer_git_head(struct strbuf *out, const char *head, int dirty)
{
	if (!head)
		return;
	strbuf_addstr(out, "Pipe-Git-Head: ");
	store_escape(out, head, " ");
	strbuf_addstr(out, dirty ? " dirty\n" : "\n");
}

static void trailer_opt(struct strbuf *out, const char *key, const char *value)
{
	if (value)
		trailer(out, key, value);
}

static void prov_lists(const struct store_prov *p, struct strbuf *out)
{
	for (size_t i = 0; i < p->inputs_nr; i++) {
		strbuf_addstr(out, "Pipe-Input: ");
		store_escape(out, p->inputs[i].path, NULL);
		strbuf_addf(out, " %s\n", p->inputs[i].hash);
	}
	for (size_t i = 0; i < p->upstreams_nr; i++) {
		strbuf_addstr(out, "Pipe-Upstream: ");
		store_escape(out, p->upstreams[i].stage, NULL);
		strbuf_addf(out, " %s\n", p->upstreams[i].commit);
	}
	for (size_t i = 0; i < p->params_nr; i++) {
		strbuf_addstr(out, "Pipe-Param: ");
		store_escape(out, p->params[i].key, "=");
		strbuf_addch(out, '=');
		store_escape(out, p->params[i].value, NULL);
		strbuf_addch(out, '\n');
	}
}

static void extras(struct strbuf *out, const struct store_kv *kv, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		if (key_len(kv[i].key) == strlen(kv[i].key) && *kv[i].key)
			trailer(out, kv[i].key, kv[i].value);
}

void store_prov_format(const struct store_prov *p, struct strbuf *out)
{
	const char *state = p->state ? p->state : "success";

	strbuf_addstr(out, "stage ");
	store_escape(out, p->stage ? p->stage : "", NULL);
	strbuf_addstr(out, ": ");
	store_escape(out, state, NULL);
	strbuf_addstr(out, "\n\nPipe-Kind: stage\n");
	trailer_opt(out, "Pipe-Stage", p->stage);
	if (p->key[0])
		strbuf_addf(out, "Pipe-Key: %s\n", p->key);
	trailer(out, "Pipe-State", state);
	trailer_opt(out, "Pipe-Cached-From", p->cached_from);
	prov_lists(p, out);
	trailer_opt(out, "Pipe-Image", p->image);
	trailer_opt(out, "Pipe-Executor", p->executor);
	trailer_git_head(out, p->git_head, p->git_dirty);
	if (p->started) {
		strbuf_addstr(out, "Pipe-Started: ");
		store_format_time(out, p->started);
		strbuf_addch(out, '\n');
	}
	strbuf_addf(out, "Pipe-Duration-Ms: %lld\n",
		    p->duration_ms > 0 ? p->duration_ms : 0);
	if (p->datums_total)
		strbuf_addf(out, "Pipe-Datums: %llu/%llu/%llu\n",
			    p->datums_processed, p->datums_skipped,
			    p->datums_total);
	strbuf_addf(out, "Pipe-Bytes-In: %llu\nPipe-Bytes-Out: %llu\n",
		    p->bytes_in, p->bytes_out);
	extras(out, p->extra, p->extra_nr);
}

static int prov_cb(const char *key, const char *value, size_t len, void *data,
		   struct error *err)
{
	struct store_prov *p = data;

	return apply(prov_fields, ARRAY_SIZE(prov_fields), p, &p->extra,
		     &p->extra_nr, &p->extra_alloc, key, value, len, err);
}

int store_prov_parse(const char *msg, struct store_prov *out, struct error *err)
{
	char *kind = trailers_kind(msg);
	int ok = kind && !strcmp(kind, "stage");

	free(kind);
	store_prov_init(out);
	if (!ok)
		return error_set(err, EXIT_FAILED, "not a stage commit");
	if (trailers_parse(msg, prov_cb, out, err)) {
		store_prov_release(out);
		return -1;
	}
	return 0;
}

/* ---- run records ----------------------------------------------------------
 */

void store_run_init(struct store_run *r)
{
	memset(r, 0, sizeof(*r));
}

void store_run_release(struct store_run *r)
{
	for (size_t i = 0; !r->names_borrowed && i < r->stages_nr; i++)
		free(r->stages[i].stage);
	free(r->stages);
	free_kvs(r->extra, r->extra_nr);
	free(r->state);
	free(r->git_head);
	store_run_init(r);
}

void store_run_add_stage(struct store_run *r, const char *stage,
			 const char *commit)
{
	ALLOC_GROW(r->stages, r->stages_nr + 1, r->stages_alloc);
	/* borrowed names stay so: the caller keeps stage as long */
	r->stages[r->stages_nr].stage =
		r->names_borrowed ? (char *)stage : xstrdup(stage);
	r->stages[r->stages_nr].ours = 0;
	snprintf(r->stages[r->stages_nr++].commit, STORE_ID_SIZE, "%s", commit);
}

/* Format 2: the stages are in the tree, the message has their count. */
void store_run_format(const struct store_run *r, struct strbuf *out)
{
	strbuf_addf(out, "run: %zu stage%s\n\nPipe-Kind: run\n", r->stages_nr,
		    r->stages_nr == 1 ? "" : "s");
	strbuf_addf(out, "Pipe-Run-Format: %d\nPipe-Stages: %zu\n",
		    STORE_RUN_FORMAT, r->stages_nr);
	trailer_opt(out, "Pipe-State", r->state);
	trailer_git_head(out, r->git_head, r->git_dirty);
	if (r->started) {
		strbuf_addstr(out, "Pipe-Started: ");
		store_format_time(out, r->started);
		strbuf_addch(out, '\n');
	}
	strbuf_addf(out, "Pipe-Duration-Ms: %lld\n",
		    r->duration_ms > 0 ? r->duration_ms : 0);
	extras(out, r->extra, r->extra_nr);
}

static int r_stage(void *obj, const char *v, size_t len, struct error *err)
{
	struct strbuf stage = STRBUF_INIT;
	char id[STORE_ID_SIZE];
	const char *w;
	size_t wlen;
	int ret = -1;

	if (!split_last(v, len, &stage, &w, &wlen, err) &&
	    !copy_hex(id, STORE_ID_LEN, w, wlen, err)) {
		store_run_add_stage(obj, stage.buf, id);
		ret = 0;
	}
	strbuf_release(&stage);
	return ret;
}

static int r_git_head(void *obj, const char *v, size_t len, struct error *err)
{
	struct store_run *r = obj;

	return git_head(&r->git_head, &r->git_dirty, v, len, err);
}

static int r_started(void *obj, const char *v, size_t len, struct error *err)
{
	return time_field(&((struct store_run *)obj)->started, v, len, err);
}

#define RF(k, t, member, fn)                                                   \
	{                                                                      \
		k, t, offsetof(struct store_run, member), fn                   \
	}
static const struct field run_fields[] = {
	RF("Pipe-Kind", F_FN, state, f_ignore),
	RF("Pipe-State", F_STR, state, NULL),
	RF("Pipe-Git-Head", F_FN, git_head, r_git_head),
	RF("Pipe-Started", F_FN, started, r_started),
	RF("Pipe-Duration-Ms", F_LL, duration_ms, NULL),
	RF("Pipe-Stage", F_FN, stages, r_stage),
	RF("Pipe-Run-Format", F_LL, format, NULL),
	RF("Pipe-Stages", F_LL, stage_count, NULL),
};

static int run_cb(const char *key, const char *value, size_t len, void *data,
		  struct error *err)
{
	struct store_run *r = data;

	return apply(run_fields, ARRAY_SIZE(run_fields), r, &r->extra,
		     &r->extra_nr, &r->extra_alloc, key, value, len, err);
}

int store_run_parse(const char *msg, struct store_run *out, struct error *err)
{
	char *kind = trailers_kind(msg);
	int ok = kind && !strcmp(kind, "run");

	free(kind);
	store_run_init(out);
	if (!ok)
		return error_set(err, EXIT_FAILED, "not a run record");
	if (trailers_parse(msg, run_cb, out, err)) {
		store_run_release(out);
		return -1;
	}
	if (!out->format) { /* format 1: the stages are in the message */
		out->format = 1;
		out->stage_count = (long long)out->stages_nr;
	}
	if (out->format > STORE_RUN_FORMAT)
		error_set(err, EXIT_FAILED,
			  "run record format %lld is newer than this pipe "
			  "reads",
			  out->format);
	else if (out->format > 1 && out->stages_nr)
		error_set(err, EXIT_FAILED,
			  "a run record of format %lld lists stages in its "
			  "message",
			  out->format);
	else
		return 0;
	store_run_release(out);
	return -1;
}
