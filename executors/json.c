/* JSON through jansson, behind an opaque type so that no other file names
 * jansson (the executors' API bodies, the commands' --json). A struct json
 * is a json_t. */
#include "executors/json.h"
#include "util/xalloc.h"

#include <jansson.h>
#include <string.h>

#define MESSAGE_CAP 300

static json_t *J(const struct json *j)
{
	return (json_t *)(void *)j;
}

static struct json *W(json_t *j)
{
	return (struct json *)(void *)j;
}

static json_t *must(json_t *j)
{
	if (!j)
		abort(); /* out of memory (strings are taken unchecked: a
			  * path that is not UTF-8 reaches the API, which names
			  * it) */
	return j;
}

int json_parse(struct json **out, const char *text, size_t len,
	       struct error *err)
{
	json_error_t je;
	json_t *j = json_loadb(text, len, JSON_DECODE_ANY, &je);

	*out = NULL;
	if (!j)
		return error_set(err, EXIT_ENV,
				 "invalid JSON at line %d, column %d: %s",
				 je.line, je.column, je.text);
	*out = W(j);
	return 0;
}

void json_free(struct json *j)
{
	if (j)
		json_decref(J(j));
}

const struct json *json_get(const struct json *j, const char *path)
{
	json_t *cur = J(j);
	struct strbuf key = STRBUF_INIT;

	while (cur && *path) {
		size_t len = strcspn(path, ".");

		strbuf_reset(&key);
		strbuf_add(&key, path, len);
		cur = json_is_object(cur) ? json_object_get(cur, key.buf)
					  : NULL;
		path += len;
		if (*path == '.')
			path++;
	}
	strbuf_release(&key);
	return W(cur);
}

const struct json *json_member(const struct json *j, const char *key)
{
	return W(json_is_object(J(j)) ? json_object_get(J(j), key) : NULL);
}

const char *json_member_str(const struct json *j, const char *key)
{
	json_t *v = J(json_member(j, key));

	return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *json_get_str(const struct json *j, const char *path)
{
	json_t *v = J(json_get(j, path));

	return json_is_string(v) ? json_string_value(v) : NULL;
}

int json_get_int(const struct json *j, const char *path, long long *out)
{
	json_t *v = J(json_get(j, path));

	if (!json_is_integer(v))
		return -1;
	*out = (long long)json_integer_value(v);
	return 0;
}

int json_get_bool(const struct json *j, const char *path)
{
	return json_is_true(J(json_get(j, path)));
}

size_t json_array_len(const struct json *j)
{
	return json_is_array(J(j)) ? json_array_size(J(j)) : 0;
}

const struct json *json_array_at(const struct json *j, size_t i)
{
	return json_is_array(J(j)) ? W(json_array_get(J(j), i)) : NULL;
}

struct json *json_new_object(void)
{
	return W(must(json_object()));
}

struct json *json_new_array(void)
{
	return W(must(json_array()));
}

/* The object that holds the last step of path, made on the way; key gets
 * that step. */
static json_t *parent_of(json_t *obj, const char *path, struct strbuf *key)
{
	for (;;) {
		size_t len = strcspn(path, ".");
		json_t *next;

		strbuf_reset(key);
		strbuf_add(key, path, len);
		if (!path[len])
			return obj;
		next = json_object_get(obj, key->buf);
		if (!json_is_object(next)) {
			next = must(json_object());
			json_object_set_new(obj, key->buf, next);
		}
		obj = next;
		path += len + 1;
	}
}

void json_set(struct json *obj, const char *path, struct json *val)
{
	struct strbuf key = STRBUF_INIT;
	json_t *parent = parent_of(J(obj), path, &key);

	json_object_set_new(parent, key.buf, J(val));
	strbuf_release(&key);
}

void json_set_str(struct json *obj, const char *path, const char *s)
{
	json_set(obj, path, W(must(json_string_nocheck(s))));
}

void json_set_int(struct json *obj, const char *path, long long v)
{
	json_set(obj, path, W(must(json_integer((json_int_t)v))));
}

void json_set_bool(struct json *obj, const char *path, int v)
{
	json_set(obj, path, W(json_boolean(v)));
}

void json_put(struct json *obj, const char *key, struct json *val)
{
	json_object_set_new(J(obj), key, J(val));
}

void json_put_str(struct json *obj, const char *key, const char *s)
{
	json_put(obj, key, W(s ? must(json_string_nocheck(s)) : json_null()));
}

void json_put_int(struct json *obj, const char *key, long long v)
{
	json_put(obj, key, W(must(json_integer((json_int_t)v))));
}

void json_push(struct json *arr, struct json *val)
{
	json_array_append_new(J(arr), J(val));
}

void json_push_str(struct json *arr, const char *s)
{
	json_push(arr, W(must(json_string_nocheck(s))));
}

static int dump_cb(const char *buf, size_t size, void *data)
{
	strbuf_add(data, buf, size);
	return 0;
}

void json_dump(const struct json *j, struct strbuf *out)
{
	json_dump_callback(J(j), dump_cb, out,
			   JSON_COMPACT | JSON_PRESERVE_ORDER |
				   JSON_ENCODE_ANY);
}

void json_dump_pretty(const struct json *j, struct strbuf *out)
{
	json_dump_callback(J(j), dump_cb, out,
			   JSON_INDENT(2) | JSON_PRESERVE_ORDER |
				   JSON_ENCODE_ANY);
}

void json_error_message(const char *body, size_t len, struct strbuf *out)
{
	json_t *j = json_loadb(body, len, JSON_DECODE_ANY, NULL);
	const char *msg = json_string_value(json_object_get(j, "message"));
	size_t n;

	if (msg && *msg) {
		strbuf_addstr(out, msg);
		json_decref(j);
		return;
	}
	json_decref(j);
	while (len && *body && strchr(" \t\r\n", *body)) {
		body++;
		len--;
	}
	/* body need not end in a NUL: look no further than len */
	for (n = 0; n < len && body[n] && body[n] != '\r' && body[n] != '\n';)
		n++;
	if (n > MESSAGE_CAP)
		n = MESSAGE_CAP;
	if (!n)
		strbuf_addstr(out, "(no message)");
	else
		strbuf_add(out, body, n);
}
