/* The pure part of remote/: ref object names on S3 (see remote.h). */
#include "remote/remote.h"

#include <string.h>

static int all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static int component_ok(const char *s, size_t n)
{
	if (!n || s[0] == '.' || (n >= 5 && !memcmp(s + n - 5, ".lock", 5)))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c == 0x7f || strchr("~^:?*[\\", c) ||
		    (c == '.' && i + 1 < n && s[i + 1] == '.') ||
		    (c == '@' && i + 1 < n && s[i + 1] == '{'))
			return 0;
	}
	return 1;
}

int remote_ref_suffix_ok(const char *suffix)
{
	const char *rest, *p;

	if (!strcmp(suffix, "runs"))
		return 1;
	if (!strncmp(suffix, "stages/", 7))
		rest = suffix + 7;
	else if (!strncmp(suffix, "datums/", 7))
		rest = suffix + 7;
	else
		return 0;
	if (!*rest)
		return 0;
	for (p = rest;; p++) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (!component_ok(p, n))
			return 0;
		if (!end)
			return 1;
		p = end;
	}
}

int remote_ref_key_parse(const char *key, char *ws, struct sgit_oid *oid,
			 const char **suffix)
{
	const char *p = key;

	if (strncmp(p, "refs/", 5))
		return -1;
	p += 5;
	if (strlen(p) < REMOTE_WS_LEN + 1 + SGIT_HEXSZ + 1 ||
	    !all_hex(p, REMOTE_WS_LEN) || p[REMOTE_WS_LEN] != '/')
		return -1;
	memcpy(ws, p, REMOTE_WS_LEN);
	ws[REMOTE_WS_LEN] = '\0';
	p += REMOTE_WS_LEN + 1;
	if (!all_hex(p, SGIT_HEXSZ) || p[SGIT_HEXSZ] != '/')
		return -1;
	{
		char hex[SGIT_HEXSZ + 1];

		memcpy(hex, p, SGIT_HEXSZ);
		hex[SGIT_HEXSZ] = '\0';
		if (sgit_oid_parse(hex, oid))
			return -1;
	}
	p += SGIT_HEXSZ + 1;
	if (!remote_ref_suffix_ok(p))
		return -1;
	*suffix = p;
	return 0;
}
