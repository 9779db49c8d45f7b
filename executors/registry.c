/* The executors the engine can pick by name (Pipefile `executor:`). */
#include "executors/docker.h"
#include "executors/executor.h"
#include "executors/kubernetes.h"
#include "util/xalloc.h"

#include <string.h>

static const struct executor *const executors[] = {
	&executor_local,
	&executor_docker,
	&executor_kubernetes,
};

const struct executor *executor_find(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(executors); i++)
		if (!strcmp(executors[i]->name, name))
			return executors[i];
	return NULL;
}
