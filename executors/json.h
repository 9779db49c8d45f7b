/* Small JSON helpers for the executors' API bodies (Docker, Kubernetes)
 * and the commands' --json output: parse and look up by dotted path, build
 * and dump. The only door to jansson. */
#ifndef EXECUTORS_JSON_H
#define EXECUTORS_JSON_H

#include <stddef.h>

#include "util/error.h"
#include "util/strbuf.h"

struct json; /* a JSON value; opaque */

/* Parse len bytes of text. Errors (EXIT_ENV): "invalid JSON at line L,
 * column C: WHY". The caller owns *out. */
int json_parse(struct json **out, const char *text, size_t len,
	       struct error *err);

/* Free a value made by json_parse(), json_new_object() or json_new_array();
 * NULL is fine. */
void json_free(struct json *j);

/* Look up "A.B.C" through nested objects ("" is j itself); a borrowed
 * value, or NULL when a step is missing or not an object. */
const struct json *json_get(const struct json *j, const char *path);

/* The member named key, taken as is (keys with dots: registry hosts);
 * borrowed; NULL when missing or j is not an object. */
const struct json *json_member(const struct json *j, const char *key);

/* The string at path, or NULL when missing or not a string. */
const char *json_get_str(const struct json *j, const char *path);

/* The string member key of object j (taken whole: label keys have
 * dots), or NULL. */
const char *json_member_str(const struct json *j, const char *key);

/* The integer at path into *out: 0, or -1 when missing or not an integer
 * (*out untouched). */
int json_get_int(const struct json *j, const char *path, long long *out);

/* 1 when the value at path is true, 0 otherwise. */
int json_get_bool(const struct json *j, const char *path);

/* An array's length (0 for a non-array) and its i-th value (borrowed;
 * NULL when out of range). */
size_t json_array_len(const struct json *j);
const struct json *json_array_at(const struct json *j, size_t i);

/* Building. json_set*() take a dotted path and create the objects on the
 * way; json_put*() take the key as is (keys with dots: labels). Values
 * passed as struct json * are taken over. */
struct json *json_new_object(void);
struct json *json_new_array(void);
void json_set(struct json *obj, const char *path, struct json *val);
void json_set_str(struct json *obj, const char *path, const char *s);
void json_set_int(struct json *obj, const char *path, long long v);
void json_set_bool(struct json *obj, const char *path, int v);
void json_put(struct json *obj, const char *key, struct json *val);
void json_put_str(struct json *obj, const char *key,
		  const char *s); /* NULL: null */
void json_put_int(struct json *obj, const char *key, long long v);
void json_push(struct json *arr, struct json *val);
void json_push_str(struct json *arr, const char *s);

/* Append j as compact JSON (keys in insertion order). */
void json_dump(const struct json *j, struct strbuf *out);
/* The same, indented by two spaces, for people (--json). */
void json_dump_pretty(const struct json *j, struct strbuf *out);

/* What an API error body says: the "message" member of a JSON object
 * (Docker, Kubernetes Status), else the body's first line, trimmed and cut
 * to 300 bytes; "" bodies give "(no message)". */
void json_error_message(const char *body, size_t len, struct strbuf *out);

#endif
