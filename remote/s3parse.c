/* The S3 client's pure parts: url, SigV4's encodings, the few XML
 * elements pipe reads from S3's answers, and the AWS INI files. */
#include "remote/s3int.h"
#include "util/xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int s3_parse_url(const char *url, char **bucket, char **prefix,
		 struct error *err)
{
	const char *b, *slash;
	size_t blen;
	struct strbuf p = STRBUF_INIT;

	*bucket = *prefix = NULL;
	if (strncmp(url, "s3://", 5))
		goto bad;
	b = url + 5;
	slash = strchr(b, '/');
	blen = slash ? (size_t)(slash - b) : strlen(b);
	if (blen < 1 || blen > 255 ||
	    strspn(b, "abcdefghijklmnopqrstuvwxyz"
		      "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789.-_") < blen)
		goto bad;
	if (slash) {
		const char *s = slash + strspn(slash, "/");

		strbuf_addstr(&p, s);
		if (p.len && p.buf[p.len - 1] != '/')
			strbuf_addch(&p, '/');
	}
	*bucket = xstrndup(b, blen);
	*prefix = strbuf_detach(&p, NULL);
	return 0;
bad:
	return error_set(err, EXIT_USAGE,
			 "bad s3 url '%s': expected s3://BUCKET[/PREFIX]", url);
}

void s3_encode(struct strbuf *out, const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '~' || (keep_slash && c == '/')) {
			strbuf_addch(out, c);
		} else {
			strbuf_addch(out, '%');
			strbuf_addch(out, hex[c >> 4]);
			strbuf_addch(out, hex[c & 15]);
		}
	}
}

struct param {
	char *name, *value; /* encoded */
};

/* SigV4 sorts by the encoded name, then value (not by "name=value":
 * "a-b" would come before "a"). */
static int cmp_param(const void *a, const void *b)
{
	const struct param *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

void s3_canonical_query(struct strbuf *out, const char *const *pairs, size_t n)
{
	struct param *v = xcalloc(n ? n : 1, sizeof(*v));

	for (size_t i = 0; i < n; i++) {
		struct strbuf sb = STRBUF_INIT;

		s3_encode(&sb, pairs[2 * i], 0);
		v[i].name = strbuf_detach(&sb, NULL);
		if (pairs[2 * i + 1])
			s3_encode(&sb, pairs[2 * i + 1], 0);
		v[i].value = strbuf_detach(&sb, NULL);
	}
	qsort(v, n, sizeof(*v), cmp_param);
	for (size_t i = 0; i < n; i++) {
		/* a valueless parameter is "name=" */
		strbuf_addf(out, "%s%s=%s", i ? "&" : "", v[i].name,
			    v[i].value);
		free(v[i].name);
		free(v[i].value);
	}
	free(v);
}

/* ------------------------------------------------------------------ */
/* XML: the few elements read, found by name (no library: S3's answers
 * are flat, and only text content is needed) */

static void add_utf8(struct strbuf *out, unsigned long cp)
{
	if (cp < 0x80) {
		strbuf_addch(out, (int)cp);
	} else if (cp < 0x800) {
		strbuf_addch(out, (int)(0xC0 | (cp >> 6)));
		strbuf_addch(out, (int)(0x80 | (cp & 0x3F)));
	} else if (cp < 0x10000) {
		strbuf_addch(out, (int)(0xE0 | (cp >> 12)));
		strbuf_addch(out, (int)(0x80 | ((cp >> 6) & 0x3F)));
		strbuf_addch(out, (int)(0x80 | (cp & 0x3F)));
	} else {
		strbuf_addch(out, (int)(0xF0 | (cp >> 18)));
		strbuf_addch(out, (int)(0x80 | ((cp >> 12) & 0x3F)));
		strbuf_addch(out, (int)(0x80 | ((cp >> 6) & 0x3F)));
		strbuf_addch(out, (int)(0x80 | (cp & 0x3F)));
	}
}

/* One entity at s (after '&', up to end): its length through ';', or 0
 * when it is not one (then '&' is kept as it is). */
static size_t entity(const char *s, const char *end, struct strbuf *out)
{
	static const struct {
		const char *name;
		char c;
	} named[] = {{"amp;", '&'},
		     {"lt;", '<'},
		     {"gt;", '>'},
		     {"quot;", '"'},
		     {"apos;", '\''}};
	size_t left = (size_t)(end - s);

	for (size_t i = 0; i < ARRAY_SIZE(named); i++) {
		size_t n = strlen(named[i].name);

		if (left >= n && !memcmp(s, named[i].name, n)) {
			strbuf_addch(out, named[i].c);
			return n;
		}
	}
	if (left >= 3 && s[0] == '#') {
		int hexa = s[1] == 'x' || s[1] == 'X';
		size_t i = hexa ? 2 : 1;
		unsigned long cp = 0;

		for (; i < left && i < 10 && s[i] != ';'; i++) {
			int d = s[i] >= '0' && s[i] <= '9' ? s[i] - '0'
				: hexa && s[i] >= 'a' && s[i] <= 'f'
					? s[i] - 'a' + 10
				: hexa && s[i] >= 'A' && s[i] <= 'F'
					? s[i] - 'A' + 10
					: -1;
			if (d < 0)
				return 0;
			cp = cp * (hexa ? 16 : 10) + (unsigned long)d;
		}
		if (i >= left || s[i] != ';' || i == (hexa ? 2u : 1u) || !cp ||
		    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		add_utf8(out, cp);
		return i + 1;
	}
	return 0;
}

static void unescape(struct strbuf *out, const char *s, const char *end)
{
	while (s < end) {
		size_t n;

		if (*s == '&' && (n = entity(s + 1, end, out))) {
			s += 1 + n;
			continue;
		}
		strbuf_addch(out, *s++);
	}
}

/* The first <name>…</name> at or after *pos (before end): its text's
 * bounds; *pos moves past it. Returns 1 when found. */
static int find_elem(const char **pos, const char *end, const char *name,
		     const char **t0, const char **t1)
{
	size_t nlen = strlen(name);
	const char *p = *pos;

	for (;;) {
		const char *lt = memchr(p, '<', (size_t)(end - p)), *q;

		if (!lt)
			return 0;
		p = lt + 1;
		if ((size_t)(end - p) < nlen + 1 || memcmp(p, name, nlen))
			continue;
		q = p + nlen;
		if (*q == '/' && q + 1 < end && q[1] == '>') { /* <name/> */
			*t0 = *t1 = q;
			*pos = q + 2;
			return 1;
		}
		if (*q != '>' && *q != ' ')
			continue;
		q = memchr(q, '>', (size_t)(end - q));
		if (!q)
			return 0;
		*t0 = q + 1;
		for (p = *t0; p < end; p++) {
			if (*p == '<' && (size_t)(end - p) >= nlen + 3 &&
			    p[1] == '/' && !memcmp(p + 2, name, nlen) &&
			    p[2 + nlen] == '>') {
				*t1 = p;
				*pos = p + 3 + nlen;
				return 1;
			}
		}
		return 0;
	}
}

int s3_xml_pick(const char *xml, size_t len, const char *name,
		struct strbuf *out)
{
	const char *pos = xml, *t0, *t1;

	strbuf_reset(out);
	if (!find_elem(&pos, xml + len, name, &t0, &t1))
		return 0;
	unescape(out, t0, t1);
	return 1;
}

void s3_xml_escape(struct strbuf *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			strbuf_addstr(out, "&amp;");
			break;
		case '<':
			strbuf_addstr(out, "&lt;");
			break;
		case '>':
			strbuf_addstr(out, "&gt;");
			break;
		case '"':
			strbuf_addstr(out, "&quot;");
			break;
		case '\'':
			strbuf_addstr(out, "&apos;");
			break;
		default:
			strbuf_addch(out, *s);
		}
	}
}

void s3_page_init(struct s3_page *p)
{
	strvec_init(&p->keys);
	strvec_init(&p->sizes);
	strbuf_init(&p->next_token, 0);
	p->truncated = 0;
}

void s3_page_release(struct s3_page *p)
{
	strvec_clear(&p->keys);
	strvec_clear(&p->sizes);
	strbuf_release(&p->next_token);
}

int s3_parse_list(const char *xml, size_t len, struct s3_page *p)
{
	const char *end = xml + len, *pos = xml, *t0, *t1;
	struct strbuf sb = STRBUF_INIT;
	const char *lb = xml;

	if (!find_elem(&lb, end, "ListBucketResult", &t0, &t1))
		return -1;
	end = t1;
	pos = t0;
	while (find_elem(&pos, end, "Contents", &t0, &t1)) {
		if (!s3_xml_pick(t0, (size_t)(t1 - t0), "Key", &sb) ||
		    !sb.len || memchr(sb.buf, '\0', sb.len)) {
			strbuf_release(&sb);
			return -1;
		}
		strvec_push(&p->keys, sb.buf);
		if (!s3_xml_pick(t0, (size_t)(t1 - t0), "Size", &sb) ||
		    !sb.len || strspn(sb.buf, "0123456789") != sb.len) {
			strbuf_release(&sb);
			return -1;
		}
		strvec_push(&p->sizes, sb.buf);
	}
	/* the flags come after the Contents on AWS, before them elsewhere:
	 * looked for in the whole result, outside any Contents */
	p->truncated = s3_xml_pick(xml, len, "IsTruncated", &sb) &&
		       !strcmp(sb.buf, "true");
	s3_xml_pick(xml, len, "NextContinuationToken", &p->next_token);
	strbuf_release(&sb);
	if (p->truncated && !p->next_token.len)
		return -1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* INI */

static void trim(const char **s, const char **e)
{
	while (*s < *e && strchr(" \t\r", **s))
		(*s)++;
	while (*e > *s && strchr(" \t\r", (*e)[-1]))
		(*e)--;
}

int s3_ini_get(const char *text, size_t len, const char *section,
	       const char *key, struct strbuf *out)
{
	const char *p = text, *end = text + len;
	size_t klen = strlen(key), slen = strlen(section);
	int in = 0;

	strbuf_reset(out);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end, *s = p, *eq;

		p = nl ? nl + 1 : end;
		if (s < e && (*s == ' ' || *s == '\t'))
			continue; /* nested: "s3 =\n  addressing_style = .." */
		trim(&s, &e);
		if (s == e || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			const char *c = memchr(s, ']', (size_t)(e - s));
			const char *n0 = s + 1, *n1 = c ? c : s + 1;

			trim(&n0, &n1);
			in = c && (size_t)(n1 - n0) == slen &&
			     !memcmp(n0, section, slen);
			continue;
		}
		eq = memchr(s, '=', (size_t)(e - s));
		if (!in || !eq)
			continue;
		{
			const char *k1 = eq, *v0 = eq + 1, *v1 = e;

			trim(&s, &k1);
			trim(&v0, &v1);
			if ((size_t)(k1 - s) == klen &&
			    !strncasecmp(s, key, klen)) {
				strbuf_add(out, v0, (size_t)(v1 - v0));
				return 1;
			}
		}
	}
	return 0;
}

void s3_redact(struct strbuf *sb, const char *secret)
{
	size_t n = secret ? strlen(secret) : 0;
	struct strbuf out = STRBUF_INIT;
	const char *p, *hit;

	if (n < 4 || !strstr(sb->buf, secret))
		return;
	for (p = sb->buf; (hit = strstr(p, secret)); p = hit + n) {
		strbuf_add(&out, p, (size_t)(hit - p));
		strbuf_addstr(&out, "[redacted]");
	}
	strbuf_addstr(&out, p);
	strbuf_release(sb);
	*sb = out;
}
