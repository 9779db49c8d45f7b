/* Workspace-relative path checks and helpers; libc only. */
#ifndef UTIL_PATH_H
#define UTIL_PATH_H

#include "util/strbuf.h"

/* Normalize a workspace-relative path into out: "a//b/./c/" -> "a/b/c/",
 * "a/b/../c" -> "a/c". A trailing '/' is kept (it marks a folder). "." and
 * "./" become "" (the workspace itself). Returns 0, or -1 with *why set to
 * "absolute path" or "escapes the workspace" (a ".." above the top), or
 * "empty path". */
int path_normalize(const char *in, struct strbuf *out, const char **why);

/* True when path equals dir or lies below it, on component boundaries.
 * Trailing slashes are ignored. "" (the workspace) contains everything. */
int path_is_inside(const char *path, const char *dir);

/* True when a and b overlap: equal, or one lies inside the other. */
int path_overlaps(const char *a, const char *b);

/* a + "/" + b without doubled slashes; caller frees. */
char *path_join(const char *a, const char *b);

/* Length of s without trailing slashes. */
size_t path_trimmed_len(const char *s);

#endif
