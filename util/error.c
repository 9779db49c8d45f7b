/* Error values with locations and a caret excerpt, printed in one place. */
#include "util/error.h"
#include "util/xalloc.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void error_init(struct error *err)
{
	err->exit_code = 0;
	err->file = NULL;
	err->line = err->col = 0;
	err->source_line = NULL;
	strbuf_init(&err->msg, 0);
}

void error_release(struct error *err)
{
	free(err->file);
	free(err->source_line);
	strbuf_release(&err->msg);
	error_init(err);
}

static void vset(struct error *err, int exit_code, const char *fmt, va_list ap)
{
	error_release(err);
	err->exit_code = exit_code ? exit_code : EXIT_FAILED;
	strbuf_vaddf(&err->msg, fmt, ap);
}

int error_set(struct error *err, int exit_code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	vset(err, exit_code, fmt, ap);
	va_end(ap);
	return -1;
}

int error_set_at(struct error *err, int exit_code, const char *file, int line,
		 int col, const char *source_line, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	vset(err, exit_code, fmt, ap);
	va_end(ap);
	err->file = file ? xstrdup(file) : NULL;
	err->line = line;
	err->col = col;
	err->source_line = source_line ? xstrdup(source_line) : NULL;
	return -1;
}

void error_prefix(struct error *err, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	/* context given twice on the way up ("stage 'a': stage 'a': ") */
	if (!strncmp(err->msg.buf, sb.buf, sb.len)) {
		strbuf_release(&sb);
		return;
	}
	strbuf_add(&sb, err->msg.buf, err->msg.len);
	strbuf_release(&err->msg);
	err->msg = sb;
}

void error_format(const struct error *err, struct strbuf *out)
{
	if (err->file) {
		strbuf_addstr(out, err->file);
		if (err->line > 0) {
			strbuf_addf(out, ":%d", err->line);
			if (err->col > 0)
				strbuf_addf(out, ":%d", err->col);
		}
		strbuf_addstr(out, ": ");
	}
	strbuf_add(out, err->msg.buf, err->msg.len);
}

/* The caret line copies the tabs of the source line so that the caret
 * lands under the right column whatever the terminal's tab width. */
static void print_excerpt(const struct error *err, FILE *fp)
{
	const char *s = err->source_line;
	struct strbuf num = STRBUF_INIT;
	struct strbuf pad = STRBUF_INIT;
	int i;

	strbuf_addf(&num, "%d", err->line);
	if (num.len < 5)
		strbuf_addchars(&pad, ' ', 5 - num.len);
	fprintf(fp, "%s%s | %s\n", pad.buf, num.buf, s);
	fprintf(fp, "%s", pad.buf);
	for (i = 0; i < (int)num.len; i++)
		fputc(' ', fp);
	fprintf(fp, " | ");
	for (i = 0; i + 1 < err->col && s[i]; i++)
		fputc(s[i] == '\t' ? '\t' : ' ', fp);
	fprintf(fp, "^\n");
	strbuf_release(&num);
	strbuf_release(&pad);
}

void error_print(const struct error *err, FILE *fp)
{
	struct strbuf sb = STRBUF_INIT;

	error_format(err, &sb);
	fprintf(fp, "pipe: error: %s\n", sb.buf);
	if (err->source_line && err->line > 0)
		print_excerpt(err, fp);
	strbuf_release(&sb);
}
