// All differentiable operations.
#pragma once

#include "autograd/grad_mode.h"
#include "core/random_kernels.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/grouped_matmul.h"
#include "ops/index.h"
#include "ops/matmul.h"
#include "ops/nn_ops.h"
#include "ops/reduce.h"
#include "ops/sort.h"
#include "ops/view.h"
