/* A small glob matcher with '**', written for paths rather than using
 * fnmatch(3), whose FNM_PATHNAME has no '**'. */
#include "util/glob.h"

#include <string.h>

int glob_has_magic(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

int glob_check(const char *pattern, const char **why, int *offset)
{
	const char *p;

	for (p = pattern; *p; p++) {
		if (*p == '\\' && p[1]) {
			p++;
		} else if (*p == '[') {
			const char *q = p + 1;

			if (*q == '!' || *q == '^')
				q++;
			if (*q == ']')
				q++;
			while (*q && *q != ']' && *q != '/')
				q++;
			if (*q != ']') {
				*why = "unclosed '[' in glob";
				*offset = (int)(p - pattern);
				return -1;
			}
			p = q;
		} else if (*p == '*' && p[1] == '*' && p[2] == '*') {
			*why = "'***' in glob (use '**')";
			*offset = (int)(p - pattern);
			return -1;
		}
	}
	return 0;
}

/* Match one bracket expression at *pp against c; advances *pp past ']'. */
static int match_class(const char **pp, char c)
{
	const char *p = *pp + 1;
	int negate = 0, hit = 0;

	if (*p == '!' || *p == '^') {
		negate = 1;
		p++;
	}
	if (*p == ']') {
		hit |= c == ']';
		p++;
	}
	while (*p && *p != ']') {
		if (p[1] == '-' && p[2] && p[2] != ']') {
			hit |= c >= p[0] && c <= p[2];
			p += 3;
		} else {
			hit |= c == *p;
			p++;
		}
	}
	*pp = *p ? p + 1 : p;
	return negate ? !hit : hit;
}

static int match(const char *p, const char *s, const char *pend,
		 const char *send)
{
	while (p < pend) {
		if (p[0] == '*' && p + 1 < pend && p[1] == '*') {
			const char *rest = p + 2;

			/* "**" + "/" matches zero or more whole folders */
			if (rest < pend && *rest == '/') {
				rest++;
				for (const char *t = s;; t++) {
					if ((t == s || t[-1] == '/') &&
					    match(rest, t, pend, send))
						return 1;
					if (t >= send)
						return 0;
				}
			}
			for (const char *t = send;; t--) {
				if (match(rest, t, pend, send))
					return 1;
				if (t == s)
					return 0;
			}
		}
		if (*p == '*') {
			const char *rest = p + 1;

			for (const char *t = s;; t++) {
				if (match(rest, t, pend, send))
					return 1;
				if (t >= send || *t == '/')
					return 0;
			}
		}
		if (s >= send)
			return 0;
		if (*p == '?') {
			if (*s == '/')
				return 0;
			p++;
		} else if (*p == '[') {
			if (*s == '/' || !match_class(&p, *s))
				return 0;
		} else {
			if (*p == '\\' && p + 1 < pend)
				p++;
			if (*p != *s)
				return 0;
			p++;
		}
		s++;
	}
	return s == send;
}

int glob_match(const char *pattern, const char *path)
{
	size_t pn = strlen(pattern), sn = strlen(path);

	while (pn > 1 && pattern[pn - 1] == '/')
		pn--;
	while (sn > 1 && path[sn - 1] == '/')
		sn--;
	return match(pattern, path, pattern + pn, path + sn);
}

size_t glob_literal_prefix(const char *pattern)
{
	const char *m = strpbrk(pattern, "*?[\\");
	size_t n = m ? (size_t)(m - pattern) : strlen(pattern);

	while (n > 0 && pattern[n - 1] != '/')
		n--;
	return n;
}

/* Matches one pattern component [p, pe) against one path component. */
static int match_component(const char *p, const char *pe, const char *s,
			   const char *se)
{
	return match(p, s, pe, se);
}

int glob_match_under(const char *pattern, const char *dir)
{
	const char *p = pattern, *d = dir;

	if (glob_match(pattern, dir))
		return 1;
	while (*d) {
		const char *pe = strchrnul(p, '/'), *de = strchrnul(d, '/');

		if (pe - p == 2 && p[0] == '*' && p[1] == '*')
			return 1;
		if (!*p || !match_component(p, pe, d, de))
			return 0;
		p = *pe ? pe + 1 : pe;
		d = *de ? de + 1 : de;
	}
	/* dir is exhausted: anything left in the pattern can match below */
	return *p != '\0';
}
