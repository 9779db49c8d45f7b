/* Glob patterns over workspace-relative paths: '*', '?' and '[...]' stay
 * inside one path component, '**' crosses folders (as in gitignore). */
#ifndef UTIL_GLOB_H
#define UTIL_GLOB_H

#include <stddef.h>

/* True when s contains any of * ? [ */
int glob_has_magic(const char *s);

/* Returns 0 when pattern is well formed, or -1 with *why and *offset
 * (0-based byte offset of the problem) set. */
int glob_check(const char *pattern, const char **why, int *offset);

/* True when path matches pattern. A trailing '/' on either is ignored. */
int glob_match(const char *pattern, const char *path);

/* Length of the leading part of pattern that has no magic, cut back to a
 * component boundary: "data/raw/x*.csv" -> 9 ("data/raw/"). Walking only
 * below this prefix finds every match. */
size_t glob_literal_prefix(const char *pattern);

/* True when some path at or below dir could match pattern: the pattern's
 * leading components match dir's components and then either ends, hits
 * '**', or has components left. Used to find which outputs a glob input
 * reads. */
int glob_match_under(const char *pattern, const char *dir);

#endif
