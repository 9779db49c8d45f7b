/* Lexical path handling for workspace-relative paths. */
#include "util/path.h"
#include "util/xalloc.h"

#include <string.h>

int path_normalize(const char *in, struct strbuf *out, const char **why)
{
	size_t start = out->len;
	int trailing;
	const char *p = in;

	if (!*in) {
		*why = "empty path";
		return -1;
	}
	if (*in == '/') {
		*why = "absolute path";
		return -1;
	}
	trailing = in[strlen(in) - 1] == '/';
	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n == 0 || (n == 1 && p[0] == '.')) {
			/* skip empty and "." components */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			char *slash;

			if (out->len == start) {
				strbuf_setlen(out, start);
				*why = "escapes the workspace";
				return -1;
			}
			out->buf[out->len] = '\0';
			slash = strrchr(out->buf + start, '/');
			strbuf_setlen(out, slash ? (size_t)(slash - out->buf)
						 : start);
		} else {
			if (out->len > start)
				strbuf_addch(out, '/');
			strbuf_add(out, p, n);
		}
		p += n;
		if (*p == '/')
			p++;
	}
	if (trailing && out->len > start)
		strbuf_addch(out, '/');
	return 0;
}

size_t path_trimmed_len(const char *s)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == '/')
		n--;
	return n;
}

int path_is_inside(const char *path, const char *dir)
{
	size_t dn = path_trimmed_len(dir), pn = path_trimmed_len(path);

	if (dn == 0)
		return 1;
	if (pn < dn || memcmp(path, dir, dn))
		return 0;
	return pn == dn || path[dn] == '/';
}

int path_overlaps(const char *a, const char *b)
{
	return path_is_inside(a, b) || path_is_inside(b, a);
}

char *path_join(const char *a, const char *b)
{
	struct strbuf sb = STRBUF_INIT;
	size_t an = path_trimmed_len(a);

	strbuf_add(&sb, a, an);
	while (*b == '/')
		b++;
	if (an && *b)
		strbuf_addch(&sb, '/');
	strbuf_addstr(&sb, b);
	return strbuf_detach(&sb, NULL);
}
