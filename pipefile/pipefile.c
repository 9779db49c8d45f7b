/* Placeholder until the parser lands: pipefile_load() refuses. */
#include "pipefile/pipefile.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char pipefile_starter[] = "version: 1\n";

int pipefile_parse(struct pipefile **out, const char *name, const char *dir,
		   const char *text, size_t len, struct error *err)
{
	(void)dir;
	(void)text;
	(void)len;
	*out = NULL;
	return error_set(err, EXIT_USAGE, "%s: parser not built yet", name);
}

int pipefile_load(struct pipefile **out, const char *path, struct error *err)
{
	return pipefile_parse(out, path, NULL, NULL, 0, err);
}

void pipefile_free(struct pipefile *pf)
{
	free(pf);
}

const struct pf_stage *pipefile_find_stage(const struct pipefile *pf,
					   const char *name)
{
	for (size_t i = 0; pf && i < pf->nr; i++)
		if (!strcmp(pf->stages[i].name, name))
			return &pf->stages[i];
	return NULL;
}

int pipefile_error_at(const struct pipefile *pf, struct error *err, int line,
		      int col, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	error_set_at(err, EXIT_USAGE, pf->path, line, col, NULL, "%s", sb.buf);
	strbuf_release(&sb);
	return -1;
}

struct pf_params *pipefile_params_new(void)
{
	return NULL;
}

void pipefile_params_free(struct pf_params *pp)
{
	(void)pp;
}

int pipefile_params_get(struct pf_params *pp, const struct pf_param *p,
			struct strbuf *out, struct error *err)
{
	(void)pp;
	(void)out;
	return error_set(err, EXIT_USAGE, "param '%s': not built yet", p->key);
}
