/* A growable string buffer: buf is never NULL and always NUL-terminated. */
#ifndef UTIL_STRBUF_H
#define UTIL_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
	size_t alloc;
	size_t len;
	char *buf;
};

extern char strbuf_slopbuf[];
#define STRBUF_INIT                                                            \
	{                                                                      \
		0, 0, strbuf_slopbuf                                           \
	}

void strbuf_init(struct strbuf *sb, size_t hint);
void strbuf_release(struct strbuf *sb);
/* Returns the buffer (caller frees) and leaves sb empty. */
char *strbuf_detach(struct strbuf *sb, size_t *len);
void strbuf_grow(struct strbuf *sb, size_t extra);
void strbuf_setlen(struct strbuf *sb, size_t len);
#define strbuf_reset(sb) strbuf_setlen((sb), 0)

void strbuf_add(struct strbuf *sb, const void *data, size_t len);
void strbuf_addstr(struct strbuf *sb, const char *s);
void strbuf_addch(struct strbuf *sb, int c);
void strbuf_addchars(struct strbuf *sb, int c, size_t n);
__attribute__((format(printf, 2, 3))) void strbuf_addf(struct strbuf *sb,
						       const char *fmt, ...);
__attribute__((format(printf, 2, 0))) void strbuf_vaddf(struct strbuf *sb,
							const char *fmt,
							va_list ap);
void strbuf_trim_trailing_newline(struct strbuf *sb);

/* A newly allocated formatted string (caller frees). */
__attribute__((format(printf, 1, 2))) char *xstrfmt(const char *fmt, ...);

/* Appends the whole file; returns 0, or -1 with errno set. */
int strbuf_read_file(struct strbuf *sb, const char *path, size_t hint);
/* Appends at most max bytes of fd; returns bytes read or -1. */
long strbuf_read_fd(struct strbuf *sb, int fd, size_t max);

#endif
