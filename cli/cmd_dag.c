/* pipe dag: the stage graph as text, Graphviz dot, or Mermaid. */
#include "cli/cli.h"
#include "engine/graph.h"
#include "pipefile/pipefile.h"

#include <stdio.h>
#include <string.h>

static void print_text(const struct graph *g)
{
	for (size_t k = 0; k < g->nr; k++) {
		size_t i = g->order[k];
		const struct graph_node *n = &g->nodes[i];

		fputs(g->pf->stages[i].name, stdout);
		for (size_t j = 0; j < n->deps_nr; j++)
			printf("%s%s", j ? ", " : " <- ",
			       g->pf->stages[n->deps[j]].name);
		putchar('\n');
	}
}

/* Stage names may hold '@', '=' and ',' (matrix): quote them. */
static void print_quoted(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
	putchar('"');
}

static void print_dot(const struct graph *g)
{
	printf("digraph pipe {\n\trankdir=LR;\n\tnode [shape=box];\n");
	for (size_t k = 0; k < g->nr; k++) {
		size_t i = g->order[k];
		const struct graph_node *n = &g->nodes[i];

		putchar('\t');
		print_quoted(g->pf->stages[i].name);
		printf(";\n");
		for (size_t j = 0; j < n->deps_nr; j++) {
			putchar('\t');
			print_quoted(g->pf->stages[n->deps[j]].name);
			printf(" -> ");
			print_quoted(g->pf->stages[i].name);
			printf(";\n");
		}
	}
	printf("}\n");
}

static void print_mermaid(const struct graph *g)
{
	printf("flowchart LR\n");
	for (size_t k = 0; k < g->nr; k++) {
		size_t i = g->order[k];

		printf("  s%zu[", i);
		print_quoted(g->pf->stages[i].name);
		printf("]\n");
	}
	for (size_t k = 0; k < g->nr; k++) {
		size_t i = g->order[k];
		const struct graph_node *n = &g->nodes[i];

		for (size_t j = 0; j < n->deps_nr; j++)
			printf("  s%zu --> s%zu\n", n->deps[j], i);
	}
}

int cmd_dag(struct cli *cli)
{
	void (*print)(const struct graph *) = print_text;
	struct pipefile *pf = NULL;
	struct graph *g = NULL;
	struct error err = ERROR_INIT;
	int rc;

	for (int i = 1; i < cli->argc; i++) {
		if (!strcmp(cli->argv[i], "--dot"))
			print = print_dot;
		else if (!strcmp(cli->argv[i], "--mermaid"))
			print = print_mermaid;
		else
			return cli_usage_error(cli, "unknown option '%s'",
					       cli->argv[i]);
	}
	rc = cli_load_pipefile(cli, &pf);
	if (rc)
		return rc;
	if (graph_build(&g, pf, &err)) {
		rc = cli_fail(&err);
	} else {
		print(g);
		rc = EXIT_OK;
	}
	graph_free(g);
	pipefile_free(pf);
	return rc;
}
