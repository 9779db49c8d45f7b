/* The Kubernetes executor (executors/kubernetes.c). */
#ifndef EXECUTORS_KUBERNETES_H
#define EXECUTORS_KUBERNETES_H

#include "executors/executor.h"

extern const struct executor executor_kubernetes;

#endif
